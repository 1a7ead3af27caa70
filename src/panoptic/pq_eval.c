/* pq_eval.c - the panoptic evaluator handle: load, run on the thread pool, reduce, report.
 *
 * Determinism: each image writes its events (true positives with their IoU in ascending
 * (gt_id, pred_id) order, false positives and negatives) to its own slot. The reduction then
 * replays the reference's floating-point order on one thread: images are split into n_workers
 * contiguous chunks as np.array_split does (the first N % k chunks get one more image), each
 * chunk sums its classes' IoU from 0.0 image by image, and chunk totals are added in chunk
 * order (ref: panopticapi pq_compute_multi_core, PQStat.__iadd__). */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "panoptic/pq_impl.h"

struct cat_acc {
    double   iou;
    uint64_t tp, fp, fn;
};

struct iseg_panoptic_eval {
    struct iseg_panoptic_eval_params p;
    struct iseg__pool               *pool;
    struct pq_file                   gt, pred;
    char                            *gt_dir, *pred_dir;
    size_t                          *pred_of; /* (n GT anns) */
    bool                             loaded, done;
    struct cat_acc                  *acc;     /* (n_cat) dataset totals */
    struct iseg_panoptic_cat_result *cres;    /* (n_cat) */
    struct iseg_panoptic_result      groups[ISEG_PANOPTIC_GROUP_COUNT];
    struct iseg_panoptic_timings     t;
    char                             err[2048];
};

static const char *const GROUP_NAMES[] = {"All", "Things", "Stuff"};
_Static_assert(ISEG_PANOPTIC_GROUP_COUNT == sizeof(GROUP_NAMES) / sizeof(GROUP_NAMES[0]),
               "group names");

const char *iseg_panoptic_group_name(enum iseg_panoptic_group g) {
    return (unsigned)g < ISEG_PANOPTIC_GROUP_COUNT ? GROUP_NAMES[g] : "?";
}

__attribute__((format(printf, 2, 3))) static void set_err(struct iseg_panoptic_eval *ev,
                                                         const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ev->err, sizeof(ev->err), fmt, ap);
    va_end(ap);
}

struct iseg_panoptic_eval_params iseg_panoptic_eval_default_params(void) {
    struct iseg_panoptic_eval_params p;
    memset(&p, 0, sizeof(p));
    p.boundary       = false;
    p.dilation_ratio = 0.02;
    p.n_threads      = 0;
    p.n_workers      = 2;
    return p;
}

enum iseg_status iseg_panoptic_eval_init(iseg_panoptic_eval_t *out,
                                         const struct iseg_panoptic_eval_params *p, char *err,
                                         size_t errlen) {
    ISEG_ASSERT(out && p);
    *out = NULL;
    if (!(p->dilation_ratio > 0 && p->dilation_ratio < 1)) {
        if (errlen) snprintf(err, errlen, "dilation ratio must be in (0, 1), got %g",
                             p->dilation_ratio);
        return ISEG_STATUS_EINVAL;
    }
    if (p->n_workers < 1 || p->n_threads < 0) {
        if (errlen) snprintf(err, errlen, "%s must be %s, got %d",
                             p->n_workers < 1 ? "n_workers" : "n_threads",
                             p->n_workers < 1 ? ">= 1" : ">= 0",
                             p->n_workers < 1 ? p->n_workers : p->n_threads);
        return ISEG_STATUS_EINVAL;
    }
    struct iseg_panoptic_eval *ev = iseg__calloc(1, sizeof(*ev));
    if (!ev) {
        if (errlen) snprintf(err, errlen, "out of memory");
        return ISEG_STATUS_ENOMEM;
    }
    ev->p = *p;
    *out  = ev;
    return ISEG_STATUS_OK;
}

static void unload(struct iseg_panoptic_eval *ev) {
    iseg__pq_file_free(&ev->gt);
    iseg__pq_file_free(&ev->pred);
    iseg__free(ev->gt_dir);
    iseg__free(ev->pred_dir);
    iseg__free(ev->pred_of);
    iseg__free(ev->acc);
    iseg__free(ev->cres);
    ev->gt_dir = ev->pred_dir = NULL;
    ev->pred_of               = NULL;
    ev->acc                   = NULL;
    ev->cres                  = NULL;
    ev->loaded = ev->done = false;
    memset(ev->groups, 0, sizeof(ev->groups));
}

void iseg_panoptic_eval_free(iseg_panoptic_eval_t ev) {
    if (!ev) return;
    unload(ev);
    iseg__pool_free(ev->pool);
    iseg__free(ev);
}

const char *iseg_panoptic_eval_last_error(const iseg_panoptic_eval_t ev) {
    return ev ? ev->err : "";
}

/* ---- load ---- */

static enum iseg_status read_file(const char *path, char **out, size_t *len, char *err,
                                  size_t errlen) {
    *out = NULL;
    *len = 0;
    bool  is_stdin = strcmp(path, "-") == 0;
    FILE *f        = is_stdin ? stdin : fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return ISEG_STATUS_EIO;
    }
    struct iseg__buf b  = {0};
    enum iseg_status st = ISEG_STATUS_OK;
    for (;;) {
        if (!iseg__buf_reserve(&b, (size_t)1 << 16)) {
            snprintf(err, errlen, "%s: out of memory reading the file", path);
            st = ISEG_STATUS_ENOMEM;
            break;
        }
        size_t k = fread(b.data + b.len, 1, b.cap - b.len, f);
        b.len += k;
        if (ferror(f)) {
            /* EISDIR shows up here for a directory */
            snprintf(err, errlen, "%s: read error: %s", path, strerror(errno));
            st = ISEG_STATUS_EIO;
            break;
        }
        if (k == 0 || feof(f)) break;
    }
    if (!is_stdin) fclose(f);
    if (st != ISEG_STATUS_OK) {
        iseg__buf_free(&b);
        return st;
    }
    *out = b.data ? b.data : iseg__malloc(1);
    *len = b.len;
    if (!*out) {
        snprintf(err, errlen, "%s: out of memory", path);
        return ISEG_STATUS_ENOMEM;
    }
    return ISEG_STATUS_OK;
}

struct cat_ix {
    int64_t id;
    int32_t idx;
};

static int cmp_cat_ix(const void *a, const void *b) {
    int64_t x = ((const struct cat_ix *)a)->id, y = ((const struct cat_ix *)b)->id;
    return x < y ? -1 : x > y;
}

static void resolve_cats(struct pq_file *f, const struct cat_ix *ix, size_t n) {
    for (size_t i = 0; i < f->n_seg; i++) {
        size_t lo = 0, hi = n;
        while (lo < hi) {
            size_t mid = lo + (hi - lo) / 2;
            if (ix[mid].id < f->segs[i].cat) lo = mid + 1;
            else hi = mid;
        }
        f->segs[i].cat_idx = lo < n && ix[lo].id == f->segs[i].cat ? ix[lo].idx : -1;
    }
}

struct ann_ix {
    const struct pq_ann *a;
};

static int cmp_ann(const void *x, const void *y) {
    const struct pq_ann *a = ((const struct ann_ix *)x)->a, *b = ((const struct ann_ix *)y)->a;
    int c = iseg__pq_imgid_cmp(&a->image_id, &b->image_id);
    if (c) return c;
    return a->index < b->index ? -1 : a->index > b->index;
}

/* Pair every GT annotation with the last prediction of the same image_id (a Python dict). */
static enum iseg_status match_images(struct iseg_panoptic_eval *ev) {
    size_t         np = ev->pred.n_ann, ng = ev->gt.n_ann;
    struct ann_ix *ix = iseg__malloc_array(np + 1, sizeof(*ix));
    ev->pred_of       = iseg__malloc_array(ng + 1, sizeof(*ev->pred_of));
    if (!ix || !ev->pred_of) {
        iseg__free(ix);
        set_err(ev, "%s: out of memory", ev->pred.name);
        return ISEG_STATUS_ENOMEM;
    }
    for (size_t i = 0; i < np; i++) ix[i].a = &ev->pred.anns[i];
    qsort(ix, np, sizeof(*ix), cmp_ann);
    for (size_t i = 0; i < ng; i++) {
        const struct pq_ann *g  = &ev->gt.anns[i];
        size_t               lo = 0, hi = np;
        /* the last entry with this id: upper bound minus one */
        while (lo < hi) {
            size_t mid = lo + (hi - lo) / 2;
            if (iseg__pq_imgid_cmp(&ix[mid].a->image_id, &g->image_id) <= 0) lo = mid + 1;
            else hi = mid;
        }
        if (lo == 0 || iseg__pq_imgid_cmp(&ix[lo - 1].a->image_id, &g->image_id) != 0) {
            char idb[80];
            set_err(ev, "%s: image %s: no prediction for this image (%s annotations[%zu], %s)",
                    ev->pred.name, iseg__pq_imgid_str(&g->image_id, idb, sizeof(idb)),
                    ev->gt.name, i, g->file_name);
            iseg__free(ix);
            return ISEG_STATUS_EFORMAT;
        }
        ev->pred_of[i] = ix[lo - 1].a->index;
    }
    iseg__free(ix);
    return ISEG_STATUS_OK;
}

/* The prediction file's parse, possibly on a thread of its own. */
struct parse_job {
    struct pq_file  *f;
    const char      *buf, *name;
    size_t           len;
    enum iseg_status st;
    char             err[2048];
};

static void *parse_main(void *arg) {
    struct parse_job *pj = arg;
    pj->st = iseg__pq_parse(pj->f, pj->buf, pj->len, pj->name, false, pj->err, sizeof(pj->err));
    return NULL;
}

enum iseg_status iseg_panoptic_eval_load_mem(iseg_panoptic_eval_t ev, const char *gt_json,
                                             size_t gt_len, const char *gt_name,
                                             const char *gt_dir, const char *pred_json,
                                             size_t pred_len, const char *pred_name,
                                             const char *pred_dir) {
    ISEG_ASSERT(ev && (gt_json || !gt_len) && (pred_json || !pred_len) && gt_name &&
                pred_name && gt_dir && pred_dir);
    double t0 = iseg__now();
    unload(ev);
    ev->err[0]          = 0;
    /* The two files parse at the same time when more than one thread may run; the ground
     * truth's error still wins, as when they parse one after the other. */
    struct parse_job pj = {.f = &ev->pred, .buf = pred_json ? pred_json : "", .len = pred_len,
                           .name = pred_name};
    int       nth      = ev->p.n_threads ? ev->p.n_threads : iseg__cpu_count();
    pthread_t th;
    bool      threaded = nth > 1 && pthread_create(&th, NULL, parse_main, &pj) == 0;
    enum iseg_status st = iseg__pq_parse(&ev->gt, gt_json ? gt_json : "", gt_len, gt_name, true,
                                         ev->err, sizeof(ev->err));
    if (threaded) pthread_join(th, NULL);
    else if (st == ISEG_STATUS_OK) parse_main(&pj);
    if (st == ISEG_STATUS_OK && pj.st != ISEG_STATUS_OK) {
        st = pj.st;
        snprintf(ev->err, sizeof(ev->err), "%s", pj.err);
    }
    if (st != ISEG_STATUS_OK) goto fail;
    ev->gt_dir   = iseg__strdup(gt_dir);
    ev->pred_dir = iseg__strdup(pred_dir);
    ev->acc      = iseg__calloc(ev->gt.n_cat + 1, sizeof(*ev->acc));
    ev->cres     = iseg__calloc(ev->gt.n_cat + 1, sizeof(*ev->cres));
    struct cat_ix *ix = iseg__malloc_array(ev->gt.n_cat + 1, sizeof(*ix));
    if (!ev->gt_dir || !ev->pred_dir || !ev->acc || !ev->cres || !ix) {
        iseg__free(ix);
        set_err(ev, "%s: out of memory", gt_name);
        st = ISEG_STATUS_ENOMEM;
        goto fail;
    }
    for (size_t k = 0; k < ev->gt.n_cat; k++) ix[k] = (struct cat_ix){ev->gt.cats[k].id, (int32_t)k};
    qsort(ix, ev->gt.n_cat, sizeof(*ix), cmp_cat_ix);
    resolve_cats(&ev->gt, ix, ev->gt.n_cat);
    resolve_cats(&ev->pred, ix, ev->gt.n_cat);
    iseg__free(ix);
    if ((st = match_images(ev)) != ISEG_STATUS_OK) goto fail;
    ev->loaded = true;
    ev->t.load = iseg__now() - t0;
    return ISEG_STATUS_OK;
fail:
    unload(ev);
    return st;
}

enum iseg_status iseg_panoptic_eval_load(iseg_panoptic_eval_t ev, const char *gt_json,
                                         const char *gt_dir, const char *pred_json,
                                         const char *pred_dir) {
    ISEG_ASSERT(ev && gt_json && gt_dir && pred_json && pred_dir);
    if (strcmp(gt_json, "-") == 0 && strcmp(pred_json, "-") == 0) {
        set_err(ev, "ground truth and prediction cannot both be read from stdin");
        return ISEG_STATUS_EINVAL;
    }
    char            *g = NULL, *p = NULL;
    size_t           gn = 0, pn = 0;
    enum iseg_status st = read_file(gt_json, &g, &gn, ev->err, sizeof(ev->err));
    if (st == ISEG_STATUS_OK) st = read_file(pred_json, &p, &pn, ev->err, sizeof(ev->err));
    if (st == ISEG_STATUS_OK)
        st = iseg_panoptic_eval_load_mem(ev, g, gn, gt_json, gt_dir, p, pn, pred_json, pred_dir);
    else unload(ev);
    iseg__free(g);
    iseg__free(p);
    return st;
}

/* ---- run ---- */

struct run_ctx {
    struct iseg_panoptic_eval *ev;
    struct pq_job              job;
    struct pq_scratch         *scratch; /* (n threads) */
    struct pq_img_result      *res;     /* (n images) */
    atomic_size_t              n_done;
    size_t                     n;
};

static void image_task(void *arg, size_t i, int ith) {
    struct run_ctx *rc = arg;
    iseg__pq_image(&rc->job, i, &rc->scratch[ith], &rc->res[i]);
    size_t done = atomic_fetch_add(&rc->n_done, 1) + 1;
    /* progress only from the calling thread (worker 0 of the pool) */
    if (ith == 0 && rc->ev->p.progress)
        rc->ev->p.progress("evaluate", done, rc->n, rc->ev->p.progress_user);
}

/* PQStat.pq_average: classes in GT category order, optionally only things or stuff. */
static void average(struct iseg_panoptic_eval *ev, enum iseg_panoptic_group g) {
    double pq = 0, sq = 0, rq = 0;
    size_t n  = 0;
    for (size_t k = 0; k < ev->gt.n_cat; k++) {
        const struct pq_cat *c = &ev->gt.cats[k];
        if (g == ISEG_PANOPTIC_THINGS && !c->isthing) continue;
        if (g == ISEG_PANOPTIC_STUFF && c->isthing) continue;
        const struct cat_acc *a = &ev->acc[k];
        struct iseg_panoptic_cat_result *r = &ev->cres[k];
        r->id      = c->id;
        r->name    = c->name;
        r->isthing = c->isthing;
        r->iou_sum = a->iou;
        r->tp      = a->tp;
        r->fp      = a->fp;
        r->fn      = a->fn;
        if (a->tp + a->fp + a->fn == 0) {
            r->counted = false;
            r->pq = r->sq = r->rq = 0.0;
            continue;
        }
        n++;
        /* ref: iou / (tp + 0.5 * fp + 0.5 * fn), evaluated left to right */
        double den = (double)a->tp + 0.5 * (double)a->fp + 0.5 * (double)a->fn;
        r->counted = true;
        r->pq      = a->iou / den;
        r->sq      = a->tp != 0 ? a->iou / (double)a->tp : 0.0;
        r->rq      = (double)a->tp / den;
        pq += r->pq;
        sq += r->sq;
        rq += r->rq;
    }
    struct iseg_panoptic_result *out = &ev->groups[g];
    out->n  = n;
    out->pq = n ? pq / (double)n : 0.0;
    out->sq = n ? sq / (double)n : 0.0;
    out->rq = n ? rq / (double)n : 0.0;
}

enum iseg_status iseg_panoptic_eval_run(iseg_panoptic_eval_t ev) {
    ISEG_ASSERT(ev);
    if (!ev->loaded) {
        set_err(ev, "nothing loaded: call iseg_panoptic_eval_load first");
        return ISEG_STATUS_EBADSTATE;
    }
    double t0 = iseg__now();
    ev->done  = false;
    ev->err[0] = 0;
    enum iseg_status st = ISEG_STATUS_OK;
    if (!ev->pool) {
        int nth = ev->p.n_threads ? ev->p.n_threads : iseg__cpu_count();
        if ((st = iseg__pool_init(&ev->pool, nth)) != ISEG_STATUS_OK) {
            set_err(ev, "out of memory starting %d threads", nth);
            return st;
        }
    }
    size_t         n   = ev->gt.n_ann;
    int            nth = iseg__pool_size(ev->pool);
    struct run_ctx rc  = {.ev = ev, .n = n};
    rc.job = (struct pq_job){
        .gt = &ev->gt, .pred = &ev->pred, .gt_dir = ev->gt_dir, .pred_dir = ev->pred_dir,
        .pred_of = ev->pred_of, .boundary = ev->p.boundary,
        .dilation_ratio = ev->p.dilation_ratio, .mark = 0xffffffffu,
        .have_cats = ev->gt.n_cat > 0};
    if (ev->gt.n_cat > 0) {
        /* boundary-iou-api: np.amax(category ids) + 1, stored in a uint32 id map */
        int64_t m = ev->gt.cats[0].id;
        for (size_t k = 1; k < ev->gt.n_cat; k++)
            if (ev->gt.cats[k].id > m) m = ev->gt.cats[k].id;
        rc.job.mark = (uint32_t)((uint64_t)m + 1);
    }
    atomic_init(&rc.n_done, 0);
    rc.scratch = iseg__calloc((size_t)nth, sizeof(*rc.scratch));
    rc.res     = iseg__calloc(n + 1, sizeof(*rc.res));
    if (!rc.scratch || !rc.res) {
        set_err(ev, "out of memory");
        st = ISEG_STATUS_ENOMEM;
        goto out;
    }
    iseg__pool_run(ev->pool, n, 1, image_task, &rc);
    for (size_t i = 0; i < n; i++)
        if (rc.res[i].st != ISEG_STATUS_OK) {
            st = rc.res[i].st;
            set_err(ev, "%s", rc.res[i].err ? rc.res[i].err : "out of memory");
            goto out;
        }

    /* reduction in the reference's order */
    size_t          n_cat = ev->gt.n_cat, k_w = (size_t)ev->p.n_workers;
    struct cat_acc *w     = iseg__calloc(n_cat + 1, sizeof(*w));
    if (!w) {
        set_err(ev, "out of memory");
        st = ISEG_STATUS_ENOMEM;
        goto out;
    }
    memset(ev->acc, 0, (n_cat + 1) * sizeof(*ev->acc));
    size_t base = n / k_w, extra = n % k_w, start = 0;
    for (size_t chunk = 0; chunk < k_w; chunk++) {
        size_t len = base + (chunk < extra);
        memset(w, 0, (n_cat + 1) * sizeof(*w));
        for (size_t i = start; i < start + len; i++)
            for (size_t e = 0; e < rc.res[i].n_ev; e++) {
                const struct pq_event *x = &rc.res[i].ev[e];
                struct cat_acc        *a = &w[x->cat_idx];
                if (x->kind == PQ_EV_TP) {
                    a->tp++;
                    a->iou += x->iou;
                } else if (x->kind == PQ_EV_FP) {
                    a->fp++;
                } else {
                    a->fn++;
                }
            }
        for (size_t k = 0; k < n_cat; k++) {
            ev->acc[k].iou += w[k].iou;
            ev->acc[k].tp += w[k].tp;
            ev->acc[k].fp += w[k].fp;
            ev->acc[k].fn += w[k].fn;
        }
        start += len;
    }
    iseg__free(w);
    /* Things and Stuff first, All last: All's per-class results cover every category */
    average(ev, ISEG_PANOPTIC_THINGS);
    average(ev, ISEG_PANOPTIC_STUFF);
    average(ev, ISEG_PANOPTIC_ALL);
    ev->done = true;
out:
    if (rc.scratch)
        for (int t = 0; t < nth; t++) iseg__pq_scratch_free(&rc.scratch[t]);
    if (rc.res)
        for (size_t i = 0; i < n; i++) {
            iseg__free(rc.res[i].ev);
            iseg__free(rc.res[i].err);
        }
    iseg__free(rc.scratch);
    iseg__free(rc.res);
    ev->t.run = iseg__now() - t0;
    return st;
}

/* ---- results ---- */

void iseg_panoptic_eval_result(const iseg_panoptic_eval_t ev, enum iseg_panoptic_group g,
                               struct iseg_panoptic_result *out) {
    ISEG_ASSERT(ev && out && (unsigned)g < ISEG_PANOPTIC_GROUP_COUNT);
    if (!ev->done) {
        memset(out, 0, sizeof(*out));
        return;
    }
    *out = ev->groups[g];
}

size_t iseg_panoptic_eval_n_cats(const iseg_panoptic_eval_t ev) {
    ISEG_ASSERT(ev);
    return ev->loaded ? ev->gt.n_cat : 0;
}

void iseg_panoptic_eval_cat_result(const iseg_panoptic_eval_t ev, size_t k,
                                   struct iseg_panoptic_cat_result *out) {
    ISEG_ASSERT(ev && out && k < iseg_panoptic_eval_n_cats(ev));
    memset(out, 0, sizeof(*out));
    if (!ev->done) {
        out->id      = ev->gt.cats[k].id;
        out->name    = ev->gt.cats[k].name;
        out->isthing = ev->gt.cats[k].isthing;
        return;
    }
    *out = ev->cres[k];
}

struct iseg_panoptic_timings iseg_panoptic_eval_timings(const iseg_panoptic_eval_t ev) {
    ISEG_ASSERT(ev);
    return ev->t;
}

char *iseg_panoptic_eval_summary(const iseg_panoptic_eval_t ev) {
    ISEG_ASSERT(ev);
    struct iseg__buf b  = {0};
    bool             ok = true;
    /* ref: print_panoptic_results "{:10s}| {:>5s}  {:>5s}  {:>5s} {:>5s}", "-" * 38 */
    ok &= iseg__buf_printf(&b, "%-10s| %5s  %5s  %5s %5s\n", "", "PQ", "SQ", "RQ", "N");
    ok &= iseg__buf_printf(&b, "%.38s\n", "--------------------------------------");
    for (int g = 0; g < ISEG_PANOPTIC_GROUP_COUNT; g++) {
        struct iseg_panoptic_result r;
        iseg_panoptic_eval_result(ev, (enum iseg_panoptic_group)g, &r);
        ok &= iseg__buf_printf(&b, "%-10s| %5.1f  %5.1f  %5.1f %5zu\n", GROUP_NAMES[g],
                               100 * r.pq, 100 * r.sq, 100 * r.rq, r.n);
    }
    if (!ok || !iseg__buf_append(&b, "", 1)) {
        iseg__buf_free(&b);
        return NULL;
    }
    return b.data;
}

/* %.17g, or null for a value JSON cannot hold */
static bool put_num(struct iseg__buf *b, const char *key, double v, const char *sep) {
    if (isfinite(v)) return iseg__buf_printf(b, "\"%s\": %.17g%s", key, v, sep);
    return iseg__buf_printf(b, "\"%s\": null%s", key, sep);
}

char *iseg_panoptic_eval_json(const iseg_panoptic_eval_t ev) {
    ISEG_ASSERT(ev);
    struct iseg__buf b  = {0};
    bool             ok = iseg__buf_printf(&b, "{\n");
    for (int g = 0; g < ISEG_PANOPTIC_GROUP_COUNT; g++) {
        struct iseg_panoptic_result r;
        iseg_panoptic_eval_result(ev, (enum iseg_panoptic_group)g, &r);
        ok &= iseg__buf_printf(&b, "  \"%s\": {", GROUP_NAMES[g]);
        ok &= put_num(&b, "pq", r.pq, ", ") && put_num(&b, "sq", r.sq, ", ") &&
              put_num(&b, "rq", r.rq, ", ");
        ok &= iseg__buf_printf(&b, "\"n\": %zu},\n", r.n);
    }
    ok &= iseg__buf_printf(&b, "  \"per_class\": {");
    size_t nc = iseg_panoptic_eval_n_cats(ev);
    for (size_t k = 0; k < nc; k++) {
        struct iseg_panoptic_cat_result r;
        iseg_panoptic_eval_cat_result(ev, k, &r);
        ok &= iseg__buf_printf(&b, "%s\n    \"%lld\": {", k ? "," : "", (long long)r.id);
        ok &= put_num(&b, "pq", r.pq, ", ") && put_num(&b, "sq", r.sq, ", ") &&
              put_num(&b, "rq", r.rq, ", ");
        ok &= iseg__buf_printf(&b, "\"tp\": %llu, \"fp\": %llu, \"fn\": %llu}",
                               (unsigned long long)r.tp, (unsigned long long)r.fp,
                               (unsigned long long)r.fn);
    }
    ok &= iseg__buf_printf(&b, "%s},\n  \"boundary\": %s\n}\n", nc ? "\n  " : "",
                           ev->p.boundary ? "true" : "false");
    if (!ok || !iseg__buf_append(&b, "", 1)) {
        iseg__buf_free(&b);
        return NULL;
    }
    return b.data;
}

enum iseg_status iseg_panoptic_eval_write_json(iseg_panoptic_eval_t ev, const char *path) {
    ISEG_ASSERT(ev && path);
    char *doc = iseg_panoptic_eval_json(ev);
    if (!doc) {
        set_err(ev, "%s: out of memory", path);
        return ISEG_STATUS_ENOMEM;
    }
    char             msg[1024];
    enum iseg_status st = iseg__write_file_atomic(path, doc, strlen(doc), msg, sizeof(msg));
    if (st != ISEG_STATUS_OK) set_err(ev, "%s", msg);
    iseg_free(doc);
    return st;
}
