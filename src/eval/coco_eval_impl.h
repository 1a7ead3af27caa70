/* coco_eval_impl.h - the evaluator handle, shared by coco_eval.c, coco_prepare.c,
 * coco_match.c, coco_accum.c and coco_report.c (never installed). */
#ifndef ISEG_COCO_EVAL_IMPL_H
#define ISEG_COCO_EVAL_IMPL_H

#include "eval/coco_impl.h"

#define N_A ISEG_COCO_N_AREA
#define N_M ISEG_COCO_N_MAXDET
#define N_R ISEG_COCO_N_REC

/* detection flags per (area range, IoU threshold, detection) */
#define DF_TP 1 /* matched to a ground truth */
#define DF_IG 2 /* ignored */

/* One (image, category) pair that has ground truth or detections: COCOeval.evaluateImg's
 * output for all area ranges at once. */
struct grp {
    int32_t  k;              /* category index (0 when pooled) */
    uint32_t nd;             /* detections kept (sorted by score, at most max_dets[2]) */
    uint32_t ng;             /* ground truths of the pair */
    uint32_t npig[N_A];      /* non-ignored ground truths per area range */
    double  *scores;         /* (nd) */
    uint8_t *flags;          /* (nd, N_A, T) DF_* */
    int32_t *dt_ann;         /* (nd) index into dt anns */
    /* with keep_matches, at threshold match_t and area range 0: */
    int32_t *gt_ann;         /* (ng) index into gt anns, in COCO's order (non-ignored first) */
    int32_t *m_gt;           /* (nd) position in gt_ann, or -1 */
    double  *m_iou;          /* (nd) IoU with the matched ground truth */
    uint8_t *gt_ig;          /* (ng) ignored in area range 0 */
    uint8_t *gt_matched;     /* (ng) */
};

struct img_res {
    size_t      n_grp;
    struct grp *grps;
    void       *block;       /* one allocation holding grps and their arrays */
};

struct iseg_coco_eval {
    struct iseg_coco_eval_params p;
    size_t             T;
    double             iou_thrs[ISEG_COCO_MAX_IOU_THRS];
    double             rec_thrs[N_R];
    size_t             match_t;
    int64_t           *cat_filter, *img_filter;
    size_t             n_cat_filter, n_img_filter;
    bool               has_cat_filter, has_img_filter;
    struct iseg__pool *pool;
    char               err[1024];

    bool               loaded, ran;
    struct coco_file   gt, dt;
    bool               dt_bbox_branch;  /* loadRes took its bbox branch (results[0] has a bbox) */
    size_t             n_dropped;       /* results with unknown categories */
    /* evaluation set */
    int32_t           *eimg;            /* (n_eimg) image table indices, ascending id */
    size_t             n_eimg;
    int32_t           *ecat;            /* (n_ecat) category table indices, ascending id */
    size_t             n_ecat;
    size_t             K;               /* n_ecat, or 1 when pooled */
    int32_t           *img_to_e;        /* (gt.n_imgs) -> eval image or -1 */
    int32_t           *cat_to_k;        /* (gt.n_cats) -> k (0 when pooled) or -1 */
    /* annotations per evaluated image, sorted by (category, file order) */
    size_t            *gt_start, *dt_start;  /* (n_eimg + 1) */
    int32_t           *gt_list, *dt_list;
    /* results */
    struct img_res    *res;             /* (n_eimg) */
    size_t            *kgrp_start;      /* (K + 1) */
    struct grp       **kgrp;            /* groups of each category in image order */
    double            *precision;       /* (T, K, A, M, R) */
    double            *recall;          /* (T, K, A, M) */
    double            *sum_buf;         /* (T * K * R) scratch for the summary means */
    double             stats[ISEG_COCO_N_STATS];
    struct iseg_coco_timings timings;
};

#define REC_IDX(ev, t, k, a, m) ((((size_t)(t) * (ev)->K + (k)) * N_A + (a)) * N_M + (m))
#define PREC_IDX(ev, t, k, a, m) (REC_IDX(ev, t, k, a, m) * N_R)

void iseg__ev_error(struct iseg_coco_eval *ev, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* coco_eval.c: free what a run produced (results, groups, precision/recall); safe to repeat */
void iseg__coco_free_results(struct iseg_coco_eval *ev);

/* coco_prepare.c: index images and categories, check the annotations, build the evaluation
 * set; then prepare every annotation (masks, areas, boxes, boundaries) in parallel. */
enum iseg_status iseg__coco_index(struct iseg_coco_eval *ev);
enum iseg_status iseg__coco_prepare(struct iseg_coco_eval *ev);
/* "annotations[12] (id 34)" or "results[5]" for messages */
void iseg__ann_where(const struct iseg_coco_eval *ev, bool is_dt, size_t i, char *buf, size_t n);

/* coco_match.c: evaluate every image (IoU + matching). */
enum iseg_status iseg__coco_evaluate(struct iseg_coco_eval *ev);

/* coco_accum.c: accumulate precision/recall and compute the 12 stats. */
enum iseg_status iseg__coco_accumulate(struct iseg_coco_eval *ev);
void iseg__coco_summarize(struct iseg_coco_eval *ev);
/* mean of precision (ap) or recall over the selected thresholds (t_sel < 0: all), numpy order */
double iseg__coco_summary_value(const struct iseg_coco_eval *ev, bool ap, int t_sel, size_t a,
                                size_t m, int k_only);

/* stable sort of idx[0..n) by key descending (ties keep their order); scratch holds n ints */
void iseg__sort_desc_stable(int32_t *idx, const double *key, size_t n, int32_t *scratch);

#endif /* ISEG_COCO_EVAL_IMPL_H */
