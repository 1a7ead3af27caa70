/* loader.c - the training loader: a background thread prepares batch k+1 (decode + augment, on a
 * pool of decode threads) while the caller trains on batch k, as darknet's load_thread does.
 *
 * Two batch buffers alternate: batch k lives in buf[k % 2]. The producer fills buf[k % 2] once
 * it is FREE; iseg_loader_next releases the batch the caller held (FREE again), waits until the
 * next one is READY and hands it out (HELD). Everything a batch contains is a function of
 * (seed, epoch, dataset index) only, so timing and thread counts never change the output. */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "core/core_impl.h"
#include "iseg/dataset.h"

enum buf_state { BUF_FREE, BUF_READY, BUF_HELD };

struct lbuf {
    struct iseg_batch  b;
    struct iseg_sample *samples;   /* (batch_size) */
    size_t             *index;     /* (batch_size) */
    enum iseg_status   *st;        /* (batch_size) per-sample status */
    char              (*msg)[512]; /* (batch_size) per-sample message */
    enum iseg_status    status;    /* first failing sample's status, in batch order */
    char                err[512];
    enum buf_state      state;
};

struct iseg_loader {
    iseg_dataset_t            ds;
    struct iseg_loader_params p;
    size_t                    n;       /* dataset size */
    size_t                    n_batches; /* per epoch */
    struct iseg__pool        *pool;
    pthread_t                 thread;
    bool                      started;
    pthread_mutex_t           lock;
    pthread_cond_t            cond;    /* any state change */
    bool                      stop;
    atomic_bool               stop_fast; /* read by the decode tasks without the lock */
    struct lbuf               buf[2];
    uint64_t                  next_take; /* sequence number of the next batch to hand out */
    int                       held;      /* buffer the caller holds, or -1 */
    uint64_t                  epoch;     /* of the batch handed out last */
    /* producer-only state */
    size_t                   *perm;      /* (n) order of the current epoch */
    uint64_t                  perm_epoch;
    bool                      perm_valid;
};

struct iseg_loader_params iseg_loader_default_params(void) {
    struct iseg_loader_params p;
    memset(&p, 0, sizeof(p));
    p.batch_size = 2;
    p.shuffle    = true;
    p.drop_last  = false;
    p.seed       = 0;
    p.n_threads  = 1;
    p.hflip_p    = 0.5;
    p.vflip_p    = 0;
    p.scale_min  = 1;
    p.scale_max  = 1;
    p.erase      = iseg_erase_default_params();
    p.erase.p    = 0;
    p.strip      = iseg_strip_default_params();
    p.strip.p    = 0;
    return p;
}

static uint64_t mix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* The augmentation stream of one sample: a hash of (seed, epoch, dataset index), so a sample's
 * augmentation never depends on the batch size, the order or the thread that decodes it. */
static uint64_t sample_seed(uint64_t seed, uint64_t epoch, size_t index) {
    uint64_t h = mix64(seed + 0x9e3779b97f4a7c15ull);
    h          = mix64(h ^ (epoch + 0x632be59bd9b4e019ull));
    return mix64(h ^ ((uint64_t)index + 0x85157af5ull));
}

/* Epoch e's order: Fisher-Yates driven by a PRNG seeded with seed ^ e (identity without
 * shuffle). */
static void make_perm(struct iseg_loader *ld, uint64_t epoch) {
    for (size_t i = 0; i < ld->n; i++) ld->perm[i] = i;
    if (ld->p.shuffle && ld->n > 1) {
        struct iseg_rng rng;
        iseg_rng_seed(&rng, ld->p.seed ^ epoch);
        for (size_t i = ld->n - 1; i > 0; i--) {
            size_t j    = i < UINT32_MAX ? iseg_rng_below(&rng, (uint32_t)(i + 1))
                                         : (size_t)(iseg_rng_next(&rng) % (i + 1));
            size_t t    = ld->perm[i];
            ld->perm[i] = ld->perm[j];
            ld->perm[j] = t;
        }
    }
    ld->perm_epoch = epoch;
    ld->perm_valid = true;
}

static enum iseg_status augment(const struct iseg_loader_params *p, struct iseg_sample *s,
                                struct iseg_rng *rng) {
    enum iseg_status st = ISEG_STATUS_OK;
    /* a draw per step whatever the probability, so enabling one step never shifts another's */
    if (iseg_rng_uniform(rng) < p->hflip_p) st = iseg_augment_hflip(s);
    if (st == ISEG_STATUS_OK && iseg_rng_uniform(rng) < p->vflip_p) st = iseg_augment_vflip(s);
    if (st == ISEG_STATUS_OK && !(p->scale_min == 1 && p->scale_max == 1))
        st = iseg_augment_scale_jitter(s, rng, p->scale_min, p->scale_max);
    if (st == ISEG_STATUS_OK && p->erase.p > 0)
        st = iseg_augment_random_erase(s, rng, &p->erase, NULL);
    if (st == ISEG_STATUS_OK && p->strip.p > 0)
        st = iseg_augment_strip_occlusion(s, rng, &p->strip);
    return st;
}

struct fill_ctx {
    struct iseg_loader *ld;
    struct lbuf        *buf;
    uint64_t            epoch;
};

static void fill_task(void *vctx, size_t j, int ith) {
    (void)ith;
    struct fill_ctx    *c   = vctx;
    struct lbuf        *b   = c->buf;
    struct iseg_sample *s   = &b->samples[j];
    size_t              idx = b->index[j];
    if (atomic_load(&c->ld->stop_fast)) {
        b->st[j] = ISEG_STATUS_EBADSTATE;
        return;
    }
    b->st[j] = iseg_dataset_load(c->ld->ds, idx, s, b->msg[j], sizeof(b->msg[j]));
    if (b->st[j] != ISEG_STATUS_OK) return;
    struct iseg_rng rng;
    iseg_rng_seed(&rng, sample_seed(c->ld->p.seed, c->epoch, idx));
    b->st[j] = augment(&c->ld->p, s, &rng);
    if (b->st[j] != ISEG_STATUS_OK) {
        snprintf(b->msg[j], sizeof(b->msg[j]), "%s: augmentation failed: %s",
                 iseg_dataset_file_name(c->ld->ds, idx), iseg_status_str(b->st[j]));
        iseg_sample_free(s);
    }
}

static void release(struct lbuf *b) {
    for (size_t j = 0; j < b->b.n; j++) iseg_sample_free(&b->samples[j]);
    b->b.n    = 0;
    b->status = ISEG_STATUS_OK;
    b->err[0] = 0;
}

/* Prepare batch number seq into b (unlocked: b is FREE, only this thread touches it). */
static void produce(struct iseg_loader *ld, struct lbuf *b, uint64_t seq) {
    uint64_t epoch = seq / ld->n_batches;
    size_t   step  = (size_t)(seq % ld->n_batches);
    if (!ld->perm_valid || ld->perm_epoch != epoch) make_perm(ld, epoch);
    size_t start = step * ld->p.batch_size;
    size_t n     = ld->n - start < ld->p.batch_size ? ld->n - start : ld->p.batch_size;
    for (size_t j = 0; j < n; j++) {
        b->index[j] = ld->perm[start + j];
        memset(&b->samples[j], 0, sizeof(b->samples[j]));
        b->st[j]     = ISEG_STATUS_OK;
        b->msg[j][0] = 0;
    }
    struct fill_ctx c = {.ld = ld, .buf = b, .epoch = epoch};
    iseg__pool_run(ld->pool, n, 1, fill_task, &c);
    b->b.samples = b->samples;
    b->b.index   = b->index;
    b->b.n       = n;
    b->b.epoch   = epoch;
    b->b.step    = step;
    b->status    = ISEG_STATUS_OK;
    b->err[0]    = 0;
    for (size_t j = 0; j < n; j++) {
        if (b->st[j] != ISEG_STATUS_OK) {
            b->status = b->st[j];
            snprintf(b->err, sizeof(b->err), "%s", b->msg[j]);
            break;
        }
    }
}

static void *producer_main(void *arg) {
    struct iseg_loader *ld  = arg;
    uint64_t            seq = ld->p.start_batch;
    pthread_mutex_lock(&ld->lock);
    for (;;) {
        struct lbuf *b = &ld->buf[seq % 2];
        while (!ld->stop && b->state != BUF_FREE) pthread_cond_wait(&ld->cond, &ld->lock);
        if (ld->stop) break;
        pthread_mutex_unlock(&ld->lock);
        produce(ld, b, seq);
        pthread_mutex_lock(&ld->lock);
        b->state = BUF_READY;
        pthread_cond_broadcast(&ld->cond);
        seq++;
    }
    pthread_mutex_unlock(&ld->lock);
    return NULL;
}

static void free_bufs(struct iseg_loader *ld) {
    for (int k = 0; k < 2; k++) {
        struct lbuf *b = &ld->buf[k];
        if (b->samples) release(b);
        iseg__free(b->samples);
        iseg__free(b->index);
        iseg__free(b->st);
        iseg__free(b->msg);
    }
}

enum iseg_status iseg_loader_init(iseg_loader_t *out, iseg_dataset_t ds,
                                  const struct iseg_loader_params *params, char *err,
                                  size_t errlen) {
    ISEG_ASSERT(out && ds);
    *out = NULL;
    if (err && errlen) err[0] = 0;
    struct iseg_loader_params p = params ? *params : iseg_loader_default_params();
    size_t                    n = iseg_dataset_size(ds);
    const char               *bad = NULL;
    if (p.batch_size == 0) bad = "batch_size must be >= 1";
    else if (p.n_threads < 0) bad = "n_threads must be >= 0";
    else if (!(p.hflip_p >= 0 && p.hflip_p <= 1) || !(p.vflip_p >= 0 && p.vflip_p <= 1))
        bad = "flip probabilities must lie in [0, 1]";
    else if (!(p.scale_min > 0 && p.scale_min <= p.scale_max && p.scale_max < 1e6))
        bad = "scale jitter needs 0 < scale_min <= scale_max";
    else if (n == 0) bad = "the dataset has no image";
    else if (p.drop_last && n < p.batch_size) bad = "fewer images than batch_size with drop_last";
    if (bad) {
        if (err && errlen) snprintf(err, errlen, "loader: %s", bad);
        return ISEG_STATUS_EINVAL;
    }
    struct iseg_loader *ld = iseg__calloc(1, sizeof(*ld));
    if (!ld) return ISEG_STATUS_ENOMEM;
    ld->ds        = ds;
    ld->p         = p;
    ld->n         = n;
    ld->n_batches = p.drop_last ? n / p.batch_size : (n + p.batch_size - 1) / p.batch_size;
    ld->held      = -1;
    ld->next_take = p.start_batch;
    atomic_init(&ld->stop_fast, false);
    pthread_mutex_init(&ld->lock, NULL);
    pthread_cond_init(&ld->cond, NULL);
    enum iseg_status st = ISEG_STATUS_ENOMEM;
    ld->perm            = iseg__malloc_array(n, sizeof(*ld->perm));
    if (!ld->perm) goto fail;
    for (int k = 0; k < 2; k++) {
        struct lbuf *b = &ld->buf[k];
        b->samples     = iseg__calloc(p.batch_size, sizeof(*b->samples));
        b->index       = iseg__calloc(p.batch_size, sizeof(*b->index));
        b->st          = iseg__calloc(p.batch_size, sizeof(*b->st));
        b->msg         = iseg__calloc(p.batch_size, sizeof(*b->msg));
        if (!b->samples || !b->index || !b->st || !b->msg) goto fail;
        b->state = BUF_FREE;
    }
    if (iseg__pool_init(&ld->pool, p.n_threads ? p.n_threads : iseg__cpu_count()) !=
        ISEG_STATUS_OK)
        goto fail;
    if (pthread_create(&ld->thread, NULL, producer_main, ld) != 0) {
        st = ISEG_STATUS_EINTERNAL;
        if (err && errlen) snprintf(err, errlen, "loader: cannot start the loading thread");
        goto fail;
    }
    ld->started = true;
    *out        = ld;
    return ISEG_STATUS_OK;
fail:
    if (st == ISEG_STATUS_ENOMEM && err && errlen) snprintf(err, errlen, "loader: out of memory");
    iseg_loader_free(ld);
    return st;
}

enum iseg_status iseg_loader_next(iseg_loader_t ld, const struct iseg_batch **batch, char *err,
                                  size_t errlen) {
    ISEG_ASSERT(ld && batch);
    *batch = NULL;
    pthread_mutex_lock(&ld->lock);
    if (ld->held >= 0) {
        /* the caller is done with it: free its samples, then let the producer refill it */
        struct lbuf *h = &ld->buf[ld->held];
        pthread_mutex_unlock(&ld->lock);
        release(h);
        pthread_mutex_lock(&ld->lock);
        h->state = BUF_FREE;
        ld->held = -1;
        pthread_cond_broadcast(&ld->cond);
    }
    int          k = (int)(ld->next_take % 2);
    struct lbuf *b = &ld->buf[k];
    while (b->state != BUF_READY) pthread_cond_wait(&ld->cond, &ld->lock);
    b->state = BUF_HELD;
    ld->held = k;
    ld->next_take++;
    ld->epoch = b->b.epoch;
    pthread_mutex_unlock(&ld->lock);
    if (b->status != ISEG_STATUS_OK) {
        if (err && errlen) snprintf(err, errlen, "%s", b->err);
        return b->status; /* the batch stays HELD and is released by the next call */
    }
    *batch = &b->b;
    return ISEG_STATUS_OK;
}

uint64_t iseg_loader_epoch(iseg_loader_t ld) {
    ISEG_ASSERT(ld);
    pthread_mutex_lock(&ld->lock);
    uint64_t e = ld->epoch;
    pthread_mutex_unlock(&ld->lock);
    return e;
}

size_t iseg_loader_num_batches(iseg_loader_t ld) {
    ISEG_ASSERT(ld);
    return ld->n_batches;
}

void iseg_loader_free(iseg_loader_t ld) {
    if (!ld) return;
    if (ld->started) {
        pthread_mutex_lock(&ld->lock);
        ld->stop = true;
        atomic_store(&ld->stop_fast, true); /* samples not yet started are skipped */
        pthread_cond_broadcast(&ld->cond);
        pthread_mutex_unlock(&ld->lock);
        pthread_join(ld->thread, NULL);
    }
    iseg__pool_free(ld->pool);
    free_bufs(ld);
    iseg__free(ld->perm);
    pthread_mutex_destroy(&ld->lock);
    pthread_cond_destroy(&ld->cond);
    iseg__free(ld);
}
