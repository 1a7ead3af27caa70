/* coco_accum.c - COCOeval.accumulate and summarize with numpy's exact arithmetic.
 *
 * ref: pycocotools/cocoeval.py accumulate, summarize */
#define _POSIX_C_SOURCE 200809L
#include <float.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eval/coco_eval_impl.h"

struct acc_ctx {
    struct iseg_coco_eval *ev;
    atomic_int             status;
};

/* One category: every (area, max dets, threshold).
 *
 * numpy computes tp/fp cumulative sums over all detections in score order, rc = tp/npig,
 * pr = tp/(fp + tp + eps), the right-to-left maximum envelope of pr, and samples it at
 * searchsorted(rc, recThrs). Only true positives matter for the result: an ignored detection
 * repeats its predecessor's (rc, pr), and a false positive lowers pr below its predecessor's,
 * so neither changes the envelope where it is sampled (the first index reaching each recall
 * threshold is a true positive, or index 0, whose envelope value is the maximum over all
 * true positives). So one pass over the detections in score order counts, for every (area,
 * threshold) at once, the false positives seen before each true positive; pr and rc are then
 * computed exactly as numpy does at the true positives only. A true positive matches a
 * distinct non-ignored ground truth, so there are at most npig of them. */
static bool accumulate_cat(struct iseg_coco_eval *ev, size_t k) {
    struct grp **gs = ev->kgrp + ev->kgrp_start[k];
    size_t       ng = ev->kgrp_start[k + 1] - ev->kgrp_start[k];
    if (ng == 0) return true; /* no evaluated image: precision/recall stay -1 */
    const size_t T = ev->T, AT = N_A * T;
    size_t       n = 0;
    uint64_t     npig[N_A] = {0};
    for (size_t i = 0; i < ng; i++) {
        n += gs[i]->nd;
        for (size_t a = 0; a < N_A; a++) npig[a] += gs[i]->npig[a];
    }
    uint64_t npig_max = 0; /* custom area ranges need not nest */
    for (size_t a = 0; a < N_A; a++) npig_max = npig[a] > npig_max ? npig[a] : npig_max;
    size_t fp_cap = 0; /* fp counts before each TP: (AT, npig[a]) */
    size_t fp_off[N_A * ISEG_COCO_MAX_IOU_THRS];
    for (size_t a = 0; a < N_A; a++)
        for (size_t t = 0; t < T; t++) {
            fp_off[a * T + t] = fp_cap;
            fp_cap += npig[a];
        }
    double   *score = iseg__malloc_array(n + 1, sizeof(double));
    int32_t  *ord   = iseg__malloc_array(2 * n + 2, sizeof(int32_t));
    const uint8_t **row = iseg__malloc_array(n + 1, sizeof(*row)); /* flags of entry */
    uint32_t *pos   = iseg__malloc_array(n + 1, sizeof(uint32_t)); /* position in its image */
    uint32_t *fpl   = iseg__malloc_array(fp_cap + 1, sizeof(uint32_t));
    uint64_t *tpc   = iseg__malloc_array(2 * AT, sizeof(uint64_t));
    double   *env   = iseg__malloc_array(2 * (npig_max + 1), sizeof(double)); /* pr, rc */
    bool      ok    = score && ord && row && pos && fpl && tpc && env;
    if (!ok) goto out;
    uint64_t *fpc = tpc + AT;
    size_t    j   = 0;
    for (size_t i = 0; i < ng; i++)
        for (uint32_t d = 0; d < gs[i]->nd; d++) {
            score[j] = gs[i]->scores[d];
            row[j]   = gs[i]->flags + (size_t)d * AT;
            pos[j]   = d;
            ord[j]   = (int32_t)j;
            j++;
        }
    /* np.argsort(-dtScores, kind='mergesort'): stable, ties in concatenation order */
    iseg__sort_desc_stable(ord, score, n, ord + n);
    for (size_t m = 0; m < N_M; m++) {
        uint32_t maxdet = ev->p.max_dets[m];
        memset(tpc, 0, 2 * AT * sizeof(uint64_t));
        size_t nd = 0;
        for (size_t q = 0; q < n; q++) {
            int32_t e = ord[q];
            if (pos[e] >= maxdet) continue;
            nd++;
            const uint8_t *f = row[e];
            for (size_t at = 0; at < AT; at++) {
                uint8_t v = f[at];
                if (v & DF_IG) continue;
                if (v & DF_TP) fpl[fp_off[at] + tpc[at]++] = (uint32_t)fpc[at];
                else fpc[at]++;
            }
        }
        for (size_t a = 0; a < N_A; a++) {
            if (npig[a] == 0) continue;
            const double dn = (double)npig[a];
            for (size_t t = 0; t < T; t++) {
                const size_t    at = a * T + t;
                const uint64_t  tp = tpc[at];
                const uint32_t *fb = fpl + fp_off[at];
                double         *pr = env, *rc = env + npig_max + 1;
                ISEG_ASSERT(tp <= npig[a]);
                for (uint64_t i = 0; i < tp; i++) {
                    double dtp = (double)(i + 1);
                    rc[i]      = dtp / dn;
                    /* tp / (fp + tp + np.spacing(1)) */
                    pr[i] = dtp / (((double)fb[i] + dtp) + DBL_EPSILON);
                }
                ev->recall[REC_IDX(ev, t, k, a, m)] = nd ? (double)tp / dn : 0;
                for (size_t q = tp; q-- > 1;)
                    if (pr[q] > pr[q - 1]) pr[q - 1] = pr[q];
                double *prec = ev->precision + PREC_IDX(ev, t, k, a, m);
                size_t  q    = 0;
                for (size_t r = 0; r < N_R; r++) {
                    while (q < tp && rc[q] < ev->rec_thrs[r]) q++;
                    prec[r] = q < tp ? pr[q] : 0;
                }
            }
        }
    }
out:
    iseg__free(score);
    iseg__free(ord);
    iseg__free(row);
    iseg__free(pos);
    iseg__free(fpl);
    iseg__free(tpc);
    iseg__free(env);
    return ok;
}

static void acc_task(void *vctx, size_t k, int ith) {
    (void)ith;
    struct acc_ctx *c = vctx;
    if (!accumulate_cat(c->ev, k)) atomic_store(&c->status, (int)ISEG_STATUS_ENOMEM);
}

enum iseg_status iseg__coco_accumulate(struct iseg_coco_eval *ev) {
    size_t n_rec = ev->T * ev->K * N_A * N_M;
    ev->recall    = iseg__malloc_array(n_rec ? n_rec : 1, sizeof(double));
    ev->precision = iseg__malloc_array(n_rec ? n_rec * N_R : 1, sizeof(double));
    /* the summary's flattened selections never exceed T*R*K values */
    ev->sum_buf   = iseg__malloc_array(ev->T * ev->K * N_R + 1, sizeof(double));
    if (!ev->recall || !ev->precision || !ev->sum_buf) goto nomem;
    for (size_t i = 0; i < n_rec; i++) ev->recall[i] = -1;
    for (size_t i = 0; i < n_rec * N_R; i++) ev->precision[i] = -1;
    struct acc_ctx c = {.ev = ev};
    atomic_init(&c.status, 0);
    iseg__pool_run(ev->pool, ev->K, 1, acc_task, &c);
    if (atomic_load(&c.status) != 0) goto nomem;
    return ISEG_STATUS_OK;
nomem:
    iseg__ev_error(ev, "out of memory while accumulating");
    return ISEG_STATUS_ENOMEM;
}

/* COCOeval.summarize's _summarize: s = precision[t, :, k, a, m] (or recall[t, k, a, m]),
 * flattened in C order (t, r, k) / (t, k), entries > -1 kept, np.mean; -1 when empty.
 * t_sel < 0 selects every threshold, k_only < 0 every category. */
double iseg__coco_summary_value(const struct iseg_coco_eval *ev, bool ap, int t_sel, size_t a,
                                size_t m, int k_only) {
    size_t  k0 = k_only < 0 ? 0 : (size_t)k_only, k1 = k_only < 0 ? ev->K : (size_t)k_only + 1;
    size_t  t0 = t_sel < 0 ? 0 : (size_t)t_sel, t1 = t_sel < 0 ? ev->T : (size_t)t_sel + 1;
    double *s = ev->sum_buf; /* T*R*K doubles, allocated by accumulate */
    size_t  n = 0;
    for (size_t t = t0; t < t1; t++) {
        if (ap) {
            for (size_t r = 0; r < N_R; r++)
                for (size_t k = k0; k < k1; k++) {
                    double v = ev->precision[PREC_IDX(ev, t, k, a, m) + r];
                    if (v > -1) s[n++] = v;
                }
        } else {
            for (size_t k = k0; k < k1; k++) {
                double v = ev->recall[REC_IDX(ev, t, k, a, m)];
                if (v > -1) s[n++] = v;
            }
        }
    }
    return n ? iseg__np_mean(s, n) : -1;
}

/* index of an IoU threshold equal to v (np.where(iouThr == p.iouThrs)), or -2 if none */
static int thr_index(const struct iseg_coco_eval *ev, double v) {
    for (size_t t = 0; t < ev->T; t++)
        if (ev->iou_thrs[t] == v) return (int)t;
    return -2;
}

void iseg__coco_summarize(struct iseg_coco_eval *ev) {
    int    t50 = thr_index(ev, 0.5), t75 = thr_index(ev, 0.75);
    double *s  = ev->stats;
    s[0]  = iseg__coco_summary_value(ev, true, -1, 0, 2, -1);
    s[1]  = t50 >= 0 ? iseg__coco_summary_value(ev, true, t50, 0, 2, -1) : -1;
    s[2]  = t75 >= 0 ? iseg__coco_summary_value(ev, true, t75, 0, 2, -1) : -1;
    s[3]  = iseg__coco_summary_value(ev, true, -1, 1, 2, -1);
    s[4]  = iseg__coco_summary_value(ev, true, -1, 2, 2, -1);
    s[5]  = iseg__coco_summary_value(ev, true, -1, 3, 2, -1);
    s[6]  = iseg__coco_summary_value(ev, false, -1, 0, 0, -1);
    s[7]  = iseg__coco_summary_value(ev, false, -1, 0, 1, -1);
    s[8]  = iseg__coco_summary_value(ev, false, -1, 0, 2, -1);
    s[9]  = iseg__coco_summary_value(ev, false, -1, 1, 2, -1);
    s[10] = iseg__coco_summary_value(ev, false, -1, 2, 2, -1);
    s[11] = iseg__coco_summary_value(ev, false, -1, 3, 2, -1);
}

enum iseg_status iseg_coco_eval_run(iseg_coco_eval_t ev) {
    ISEG_ASSERT(ev);
    if (!ev->loaded) {
        iseg__ev_error(ev, "nothing loaded: call iseg_coco_eval_load_files first");
        return ISEG_STATUS_EBADSTATE;
    }
    ev->err[0] = 0;
    iseg__coco_free_results(ev); /* run() may be called again: start from scratch */
    double t0 = iseg__now();
    enum iseg_status st = iseg__coco_evaluate(ev);
    double t1 = iseg__now();
    ev->timings.evaluate = t1 - t0;
    if (st != ISEG_STATUS_OK) return st;
    st = iseg__coco_accumulate(ev);
    if (st != ISEG_STATUS_OK) return st;
    iseg__coco_summarize(ev);
    ev->timings.accumulate = iseg__now() - t1;
    ev->timings.total = ev->timings.load + ev->timings.prepare + ev->timings.evaluate +
                        ev->timings.accumulate;
    ev->ran = true;
    return ISEG_STATUS_OK;
}
