/* coco_eval.c - COCO evaluation: loading semantics, per-image matching, accumulation and
 * summary, reproducing pycocotools' COCOeval bit for bit.
 *
 * Pipeline: parse both files concurrently -> index images/categories -> prepare every
 * annotation in parallel (polygons rasterised once, RLEs validated, areas and boxes, boundary
 * bands) -> evaluate images in parallel (IoU, greedy matching for every area range and IoU
 * threshold) -> accumulate categories in parallel -> summarise. Every parallel step writes only
 * to per-item slots, and every reduction runs in a fixed order, so results do not depend on
 * the number of threads.
 * ref: pycocotools/cocoeval.py (COCOeval.evaluate, evaluateImg, accumulate, summarize) */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eval/coco_eval_impl.h"
#include "iseg/match.h"

static const char *const IOU_TYPE_NAMES[] = {"segm", "bbox", "boundary"};
_Static_assert(sizeof(IOU_TYPE_NAMES) / sizeof(IOU_TYPE_NAMES[0]) == ISEG_IOU_COUNT,
               "one name per IoU type");

const char *iseg_iou_type_name(enum iseg_iou_type t) {
    return (unsigned)t < ISEG_IOU_COUNT ? IOU_TYPE_NAMES[t] : "?";
}

struct iseg_coco_eval_params iseg_coco_eval_default_params(void) {
    struct iseg_coco_eval_params p;
    memset(&p, 0, sizeof(p));
    p.iou_type       = ISEG_IOU_SEGM;
    p.max_dets[0]    = 1;
    p.max_dets[1]    = 10;
    p.max_dets[2]    = 100;
    p.area_rng[0][0] = 0;
    p.area_rng[0][1] = 1e10;
    p.area_rng[1][0] = 0;
    p.area_rng[1][1] = 1024; /* 32^2 */
    p.area_rng[2][0] = 1024;
    p.area_rng[2][1] = 9216; /* 96^2 */
    p.area_rng[3][0] = 9216;
    p.area_rng[3][1] = 1e10;
    p.use_cats       = true;
    p.dilation_ratio = 0.02;
    p.matching       = ISEG_MATCHING_COCO;
    p.match_iou      = 0.5;
    return p;
}

/* ---- error helpers ---- */

__attribute__((format(printf, 2, 3))) void iseg__ev_error(struct iseg_coco_eval *ev,
                                                          const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ev->err, sizeof(ev->err), fmt, ap);
    va_end(ap);
}

const char *iseg_coco_eval_last_error(const iseg_coco_eval_t ev) { return ev ? ev->err : ""; }

/* ---- init / free ---- */

static int cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

/* sorted unique copy (p.imgIds = list(np.unique(imgIds))) */
static int64_t *unique_sorted(const int64_t *v, size_t n, size_t *n_out) {
    int64_t *c = iseg__malloc_array(n ? n : 1, sizeof(int64_t));
    if (!c) return NULL;
    memcpy(c, v, n * sizeof(int64_t));
    qsort(c, n, sizeof(int64_t), cmp_i64);
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (k == 0 || c[k - 1] != c[i]) c[k++] = c[i];
    *n_out = k;
    return c;
}

enum iseg_status iseg_coco_eval_init(iseg_coco_eval_t *out, const struct iseg_coco_eval_params *p,
                                     char *err, size_t errlen) {
    char  dummy[8];
    if (!err) {
        err    = dummy;
        errlen = sizeof(dummy);
    }
    err[0] = 0;
    *out   = NULL;
    ISEG_ASSERT(p);
#define BAD(...)                                \
    do {                                        \
        snprintf(err, errlen, __VA_ARGS__);     \
        return ISEG_STATUS_EINVAL;              \
    } while (0)
    if ((unsigned)p->iou_type >= ISEG_IOU_COUNT) BAD("unknown IoU type %d", (int)p->iou_type);
    if (p->n_iou_thrs > ISEG_COCO_MAX_IOU_THRS)
        BAD("at most %d IoU thresholds", ISEG_COCO_MAX_IOU_THRS);
    for (size_t i = 0; i < p->n_iou_thrs; i++)
        if (!(p->iou_thrs[i] >= 0 && p->iou_thrs[i] <= 1))
            BAD("IoU threshold %g is not in [0, 1]", p->iou_thrs[i]);
    for (int m = 0; m < ISEG_COCO_N_MAXDET; m++) {
        if (p->max_dets[m] == 0) BAD("max dets must be positive");
        if (m && p->max_dets[m] <= p->max_dets[m - 1]) BAD("max dets must be increasing");
    }
    for (int a = 0; a < ISEG_COCO_N_AREA; a++)
        if (!(p->area_rng[a][0] <= p->area_rng[a][1])) BAD("area range %d is empty or NaN", a);
    if (!(p->dilation_ratio > 0 && p->dilation_ratio < 1))
        BAD("dilation ratio must be in (0, 1), got %g", p->dilation_ratio);
    if (p->matching != ISEG_MATCHING_COCO && p->matching != ISEG_MATCHING_HUNGARIAN)
        BAD("unknown matching mode %d", (int)p->matching);
    if (p->n_threads < 0) BAD("thread count must be >= 0");
#undef BAD
    struct iseg_coco_eval *ev = iseg__calloc(1, sizeof(*ev));
    if (!ev) goto nomem;
    ev->p = *p;
    if (p->n_iou_thrs == 0) {
        /* np.linspace(.5, 0.95, 10): start + i*step, the last one exactly 0.95 */
        ev->T         = 10;
        double step   = (0.95 - 0.5) / 9.0;
        for (int i = 0; i < 9; i++) ev->iou_thrs[i] = 0.5 + (double)i * step;
        ev->iou_thrs[9] = 0.95;
    } else {
        ev->T = p->n_iou_thrs;
        memcpy(ev->iou_thrs, p->iou_thrs, ev->T * sizeof(double));
    }
    memcpy(ev->p.iou_thrs, ev->iou_thrs, sizeof(ev->iou_thrs));
    ev->p.n_iou_thrs = ev->T;
    /* np.linspace(0, 1, 101) = i * 0.01 (not i / 100) */
    for (int i = 0; i < ISEG_COCO_N_REC - 1; i++) ev->rec_thrs[i] = (double)i * 0.01;
    ev->rec_thrs[ISEG_COCO_N_REC - 1] = 1.0;
    /* the matches CSV reports one threshold; 0.9 must find linspace's 0.8999999999999999 */
    ev->match_t = SIZE_MAX;
    for (size_t t = 0; t < ev->T && ev->match_t == SIZE_MAX; t++)
        if (fabs(ev->iou_thrs[t] - p->match_iou) < 1e-9) ev->match_t = t;
    if (ev->match_t == SIZE_MAX) {
        if (p->keep_matches) {
            snprintf(err, errlen, "match IoU %g is not one of the IoU thresholds", p->match_iou);
            iseg_coco_eval_free(ev);
            return ISEG_STATUS_EINVAL;
        }
        ev->match_t = 0;
    }
    ev->p.cat_ids = NULL;
    ev->p.img_ids = NULL;
    if (p->cat_ids) {
        ev->cat_filter = unique_sorted(p->cat_ids, p->n_cat_ids, &ev->n_cat_filter);
        if (!ev->cat_filter) goto nomem;
        ev->has_cat_filter = true;
    }
    if (p->img_ids) {
        ev->img_filter = unique_sorted(p->img_ids, p->n_img_ids, &ev->n_img_filter);
        if (!ev->img_filter) goto nomem;
        ev->has_img_filter = true;
    }
    int nth = p->n_threads ? p->n_threads : iseg__cpu_count();
    if (iseg__pool_init(&ev->pool, nth) != ISEG_STATUS_OK) goto nomem;
    for (int i = 0; i < ISEG_COCO_N_STATS; i++) ev->stats[i] = -1;
    *out = ev;
    return ISEG_STATUS_OK;
nomem:
    snprintf(err, errlen, "out of memory");
    iseg_coco_eval_free(ev);
    return ISEG_STATUS_ENOMEM;
}

void iseg__coco_free_results(struct iseg_coco_eval *ev) {
    if (ev->res) {
        for (size_t i = 0; i < ev->n_eimg; i++) iseg__free(ev->res[i].block);
    }
    iseg__free(ev->res);
    ev->res = NULL;
    iseg__free(ev->kgrp_start);
    iseg__free(ev->kgrp);
    ev->kgrp_start = NULL;
    ev->kgrp       = NULL;
    iseg__free(ev->precision);
    iseg__free(ev->recall);
    iseg__free(ev->sum_buf);
    ev->sum_buf   = NULL;
    ev->precision = ev->recall = NULL;
    ev->ran                    = false;
}

static void free_loaded(struct iseg_coco_eval *ev) {
    iseg__coco_free_results(ev);
    iseg__coco_file_free(&ev->gt);
    iseg__coco_file_free(&ev->dt);
    iseg__free(ev->eimg);
    iseg__free(ev->ecat);
    iseg__free(ev->img_to_e);
    iseg__free(ev->cat_to_k);
    iseg__free(ev->gt_start);
    iseg__free(ev->gt_list);
    iseg__free(ev->dt_start);
    iseg__free(ev->dt_list);
    ev->eimg = ev->ecat = ev->img_to_e = ev->cat_to_k = NULL;
    ev->gt_start = ev->dt_start = NULL;
    ev->gt_list = ev->dt_list = NULL;
    ev->n_eimg = ev->K = ev->n_ecat = 0;
    ev->loaded                     = false;
}

void iseg_coco_eval_free(iseg_coco_eval_t ev) {
    if (!ev) return;
    free_loaded(ev);
    iseg__pool_free(ev->pool);
    iseg__free(ev->cat_filter);
    iseg__free(ev->img_filter);
    iseg__free(ev);
}

/* ---- loading ---- */

struct parse_job {
    struct coco_file *f;
    const char       *path;
    const char       *data;
    size_t            len;
    bool              is_results;
    unsigned          no_seg;
    char              err[1024];
    enum iseg_status  st;
};

static void *parse_thread(void *arg) {
    struct parse_job *j = arg;
    j->st = iseg__coco_parse(j->f, j->path, j->data, j->len,
                             (j->is_results ? COCO_PARSE_RESULTS : 0) | j->no_seg, j->err,
                             sizeof(j->err));
    return NULL;
}

/* index, check and prepare what was parsed */
static enum iseg_status finish_load(struct iseg_coco_eval *ev) {
    double           t1 = iseg__now();
    enum iseg_status st = iseg__coco_index(ev);
    if (st == ISEG_STATUS_OK) st = iseg__coco_prepare(ev);
    ev->timings.prepare = iseg__now() - t1;
    if (st != ISEG_STATUS_OK) {
        free_loaded(ev);
        return st;
    }
    ev->loaded = true;
    return ISEG_STATUS_OK;
}

static enum iseg_status load_both(struct iseg_coco_eval *ev, struct parse_job *jg,
                                  struct parse_job *jd) {
    free_loaded(ev);
    ev->err[0] = 0;
    double    t0 = iseg__now();
    pthread_t th;
    bool      threaded = iseg__pool_size(ev->pool) > 1 &&
                    pthread_create(&th, NULL, parse_thread, jd) == 0;
    parse_thread(jg);
    if (threaded) pthread_join(th, NULL);
    else parse_thread(jd);
    ev->timings.load = iseg__now() - t0;
    if (jg->st != ISEG_STATUS_OK) {
        iseg__ev_error(ev, "%s", jg->err);
        iseg__coco_file_free(&ev->dt);
        return jg->st;
    }
    if (jd->st != ISEG_STATUS_OK) {
        iseg__ev_error(ev, "%s", jd->err);
        iseg__coco_file_free(&ev->gt);
        return jd->st;
    }
    return finish_load(ev);
}

enum iseg_status iseg_coco_eval_load_files(iseg_coco_eval_t ev, const char *gt_path,
                                           const char *dt_path) {
    ISEG_ASSERT(ev && gt_path && dt_path);
    if (strcmp(gt_path, "-") == 0 && strcmp(dt_path, "-") == 0) {
        iseg__ev_error(ev, "ground truth and results cannot both be read from stdin");
        return ISEG_STATUS_EINVAL;
    }
    free_loaded(ev);
    ev->err[0]          = 0;
    double           t0 = iseg__now();
    unsigned no_seg = ev->p.iou_type == ISEG_IOU_BBOX ? COCO_PARSE_NO_SEG : 0;
    enum iseg_status st = iseg__coco_parse_pair(&ev->gt, gt_path, &ev->dt, dt_path, no_seg,
                                                ev->pool, ev->err, sizeof(ev->err));
    if (st == ISEG_STATUS_OK && ev->dt.seg_dropped && ev->dt.n_anns > 0 &&
        !(ev->dt.anns[0].flags & AF_BBOX)) {
        /* a segm-branch results file (results[0] has no bbox) in which some results have a
         * bbox: loadRes takes every area from the mask, so parse it again keeping them all */
        iseg__coco_file_free(&ev->dt);
        st = iseg__coco_parse(&ev->dt, dt_path, NULL, 0, COCO_PARSE_RESULTS, ev->err,
                              sizeof(ev->err));
        if (st != ISEG_STATUS_OK) iseg__coco_file_free(&ev->gt);
    }
    ev->timings.load    = iseg__now() - t0;
    if (st != ISEG_STATUS_OK) return st;
    return finish_load(ev);
}

enum iseg_status iseg_coco_eval_load_mem(iseg_coco_eval_t ev, const char *gt_json, size_t gt_len,
                                         const char *gt_name, const char *dt_json, size_t dt_len,
                                         const char *dt_name) {
    ISEG_ASSERT(ev && gt_json && dt_json);
    struct parse_job jg = {.f          = &ev->gt,
                           .path       = gt_name ? gt_name : "<ground truth>",
                           .data       = gt_json,
                           .len        = gt_len,
                           .is_results = false};
    struct parse_job jd = {.f          = &ev->dt,
                           .path       = dt_name ? dt_name : "<results>",
                           .data       = dt_json,
                           .len        = dt_len,
                           .is_results = true};
    return load_both(ev, &jg, &jd);
}

/* ---- getters ---- */

const double *iseg_coco_eval_stats(const iseg_coco_eval_t ev) { return ev->stats; }
size_t iseg_coco_eval_n_iou_thrs(const iseg_coco_eval_t ev) { return ev->T; }
size_t iseg_coco_eval_n_cats(const iseg_coco_eval_t ev) { return ev->K; }
const double *iseg_coco_eval_iou_thrs(const iseg_coco_eval_t ev) { return ev->iou_thrs; }
const double *iseg_coco_eval_rec_thrs(const iseg_coco_eval_t ev) { return ev->rec_thrs; }
size_t iseg_coco_eval_n_dropped(const iseg_coco_eval_t ev) { return ev->n_dropped; }
struct iseg_coco_timings iseg_coco_eval_timings(const iseg_coco_eval_t ev) { return ev->timings; }

int64_t iseg_coco_eval_cat_id(const iseg_coco_eval_t ev, size_t k) {
    if (!ev->p.use_cats || k >= ev->K) return -1;
    return ev->gt.cats[ev->ecat[k]].id;
}

const char *iseg_coco_eval_cat_name(const iseg_coco_eval_t ev, size_t k) {
    if (!ev->p.use_cats || k >= ev->K) return "all";
    const char *n = ev->gt.cats[ev->ecat[k]].name;
    return n ? n : "";
}

const double *iseg_coco_eval_precision(const iseg_coco_eval_t ev, size_t t, size_t k, size_t a,
                                       size_t m) {
    if (!ev->ran || t >= ev->T || k >= ev->K || a >= ISEG_COCO_N_AREA || m >= ISEG_COCO_N_MAXDET)
        return NULL;
    return ev->precision + PREC_IDX(ev, t, k, a, m);
}

double iseg_coco_eval_recall(const iseg_coco_eval_t ev, size_t t, size_t k, size_t a, size_t m) {
    if (!ev->ran || t >= ev->T || k >= ev->K || a >= ISEG_COCO_N_AREA || m >= ISEG_COCO_N_MAXDET)
        return -1;
    return ev->recall[REC_IDX(ev, t, k, a, m)];
}
