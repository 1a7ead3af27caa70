/* threadpool.c - a small pthread pool that hands out index ranges dynamically.
 *
 * Determinism comes from the callers: a task writes only to the slot of its own item, and every
 * reduction over items happens afterwards in item order on one thread. */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdatomic.h>
#include <unistd.h>

#include "core_impl.h"

struct iseg__pool {
    int             nth;
    pthread_t      *threads;
    pthread_mutex_t lock;
    pthread_cond_t  wake, done;
    /* current job */
    iseg__task_fn   fn;
    void           *ctx;
    size_t          n, chunk;
    atomic_size_t   next;
    unsigned        generation;
    int             n_busy;
    bool            quit;
};

struct worker_arg {
    struct iseg__pool *pool;
    int                ith;
};

static void run_items(struct iseg__pool *p, int ith) {
    for (;;) {
        size_t start = atomic_fetch_add(&p->next, p->chunk);
        if (start >= p->n) break;
        size_t end = start + p->chunk < p->n ? start + p->chunk : p->n;
        for (size_t i = start; i < end; i++) p->fn(p->ctx, i, ith);
    }
}

static void *worker_main(void *arg) {
    struct worker_arg *wa   = arg;
    struct iseg__pool *p    = wa->pool;
    int                ith  = wa->ith;
    unsigned           seen = 0;
    iseg__free(wa);
    pthread_mutex_lock(&p->lock);
    for (;;) {
        while (!p->quit && p->generation == seen) pthread_cond_wait(&p->wake, &p->lock);
        if (p->quit) break;
        seen = p->generation;
        pthread_mutex_unlock(&p->lock);
        run_items(p, ith);
        pthread_mutex_lock(&p->lock);
        if (--p->n_busy == 0) pthread_cond_signal(&p->done);
    }
    pthread_mutex_unlock(&p->lock);
    return NULL;
}

int iseg__pool_size(const struct iseg__pool *pool) { return pool ? pool->nth : 1; }

enum iseg_status iseg__pool_init(struct iseg__pool **out, int n_threads) {
    *out = NULL;
    if (n_threads < 1) n_threads = 1;
    if (n_threads > 256) n_threads = 256;
    struct iseg__pool *p = iseg__calloc(1, sizeof(*p));
    if (!p) return ISEG_STATUS_ENOMEM;
    p->nth = n_threads;
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->wake, NULL);
    pthread_cond_init(&p->done, NULL);
    atomic_init(&p->next, 0);
    if (n_threads > 1) {
        p->threads = iseg__calloc((size_t)n_threads - 1, sizeof(pthread_t));
        if (!p->threads) {
            p->nth = 1; /* no worker started: iseg__pool_free must join none */
            goto fail;
        }
        for (int i = 1; i < n_threads; i++) {
            struct worker_arg *wa = iseg__malloc(sizeof(*wa));
            if (!wa) {
                p->nth = i;
                goto fail;
            }
            wa->pool = p;
            wa->ith  = i;
            if (pthread_create(&p->threads[i - 1], NULL, worker_main, wa) != 0) {
                iseg__free(wa);
                p->nth = i;
                goto fail;
            }
        }
    }
    *out = p;
    return ISEG_STATUS_OK;
fail:
    iseg__pool_free(p);
    return ISEG_STATUS_ENOMEM;
}

void iseg__pool_free(struct iseg__pool *p) {
    if (!p) return;
    pthread_mutex_lock(&p->lock);
    p->quit = true;
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->lock);
    for (int i = 1; i < p->nth; i++) pthread_join(p->threads[i - 1], NULL);
    pthread_mutex_destroy(&p->lock);
    pthread_cond_destroy(&p->wake);
    pthread_cond_destroy(&p->done);
    iseg__free(p->threads);
    iseg__free(p);
}

void iseg__pool_run(struct iseg__pool *p, size_t n, size_t chunk, iseg__task_fn fn, void *ctx) {
    if (n == 0) return;
    if (chunk == 0) chunk = 1;
    if (!p || p->nth == 1 || n <= chunk) {
        for (size_t i = 0; i < n; i++) fn(ctx, i, 0);
        return;
    }
    pthread_mutex_lock(&p->lock);
    p->fn     = fn;
    p->ctx    = ctx;
    p->n      = n;
    p->chunk  = chunk;
    atomic_store(&p->next, 0);
    p->n_busy = p->nth - 1;
    p->generation++;
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->lock);
    run_items(p, 0);
    pthread_mutex_lock(&p->lock);
    while (p->n_busy > 0) pthread_cond_wait(&p->done, &p->lock);
    pthread_mutex_unlock(&p->lock);
}
