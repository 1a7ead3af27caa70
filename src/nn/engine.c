/* engine.c - the inference engine: a thread pool and per-thread scratch that only grows.
 *
 * Workers never allocate: an operator computes its per-thread scratch need and grows every
 * thread's buffer on the calling thread before it starts the pool, so a failure is recorded
 * once (ENOMEM for iseg_engine_take_error()) and the operator returns without computing. */
#include <string.h>

#include "nn/nn_impl.h"

static bool scratch_grow(struct iseg__scratch *s, size_t nbytes) {
    if (nbytes <= s->cap) return true;
    /* grow geometrically so that a slowly rising need does not reallocate every call */
    size_t want = s->cap + s->cap / 2;
    if (want < nbytes) want = nbytes;
    if (want > SIZE_MAX - 64) return false;
    void *raw = iseg__malloc(want + 64);
    if (!raw) return false;
    iseg__free(s->raw);
    s->raw = raw;
    s->p   = (float *)(((uintptr_t)raw + 63) & ~(uintptr_t)63);
    s->cap = want;
    return true;
}

enum iseg_status iseg_engine_init(iseg_engine_t *out, int n_threads) {
    ISEG_ASSERT(out);
    *out = NULL;
    if (n_threads <= 0) n_threads = iseg__cpu_count();
    if (n_threads > 256) n_threads = 256;
    struct iseg_engine *e = iseg__calloc(1, sizeof(*e));
    if (!e) return ISEG_STATUS_ENOMEM;
    e->thr = iseg__calloc((size_t)n_threads, sizeof(*e->thr));
    if (!e->thr) goto fail;
    if (iseg__pool_init(&e->pool, n_threads) != ISEG_STATUS_OK) goto fail;
    e->nth = iseg__pool_size(e->pool);
    (void)iseg__gemm_kernel(); /* pick the kernel now, on one thread */
    *out = e;
    return ISEG_STATUS_OK;
fail:
    iseg__free(e->thr);
    iseg__free(e);
    return ISEG_STATUS_ENOMEM;
}

void iseg_engine_free(iseg_engine_t e) {
    if (!e) return;
    iseg__pool_free(e->pool);
    for (int i = 0; i < e->nth; i++) iseg__free(e->thr[i].raw);
    iseg__free(e->thr);
    iseg__free(e->shared.raw);
    iseg__free(e);
}

int iseg_engine_threads(const iseg_engine_t e) { return e ? e->nth : 1; }

enum iseg_status iseg_engine_take_error(iseg_engine_t e) {
    enum iseg_status st = e->err;
    e->err              = ISEG_STATUS_OK;
    return st;
}

void iseg__engine_fail(iseg_engine_t e, enum iseg_status st) {
    if (e->err == ISEG_STATUS_OK) e->err = st;
}

bool iseg__engine_reserve(iseg_engine_t e, size_t nbytes) {
    for (int i = 0; i < e->nth; i++) {
        if (!scratch_grow(&e->thr[i], nbytes)) {
            iseg__engine_fail(e, ISEG_STATUS_ENOMEM);
            return false;
        }
    }
    return true;
}

float *iseg__engine_scratch(iseg_engine_t e, int ith) { return e->thr[ith].p; }

float *iseg__engine_shared(iseg_engine_t e, size_t nbytes) {
    if (!scratch_grow(&e->shared, nbytes)) {
        iseg__engine_fail(e, ISEG_STATUS_ENOMEM);
        return NULL;
    }
    return e->shared.p;
}

void iseg__engine_run(iseg_engine_t e, size_t n, iseg__task_fn fn, void *ctx) {
    iseg__pool_run(e->pool, n, 1, fn, ctx);
}

static const char *const precision_names[] = {"fp32", "bf16", "int8"};
_Static_assert(sizeof(precision_names) / sizeof(*precision_names) == ISEG_PRECISION_COUNT,
               "precision names");

const char *iseg_precision_name(enum iseg_precision p) {
    return (p >= 0 && p < ISEG_PRECISION_COUNT) ? precision_names[p] : NULL;
}

enum iseg_precision iseg_precision_from_name(const char *name) {
    return (enum iseg_precision)iseg__name_index(precision_names, ISEG_PRECISION_COUNT, name);
}
