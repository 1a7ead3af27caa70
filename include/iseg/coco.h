/*
 * coco.h - COCO instance-segmentation evaluation (AP/AR for segm, bbox and Boundary IoU) that
 * reproduces pycocotools' COCOeval bit for bit, on many threads, in bounded memory.
 *
 *   struct iseg_coco_eval_params p = iseg_coco_eval_default_params();
 *   p.iou_type = ISEG_IOU_SEGM;
 *   iseg_coco_eval_t ev;
 *   if (iseg_coco_eval_init(&ev, &p, NULL, 0) != ISEG_STATUS_OK) return 1;
 *   if (iseg_coco_eval_load_files(ev, "gt.json", "results.json") != ISEG_STATUS_OK ||
 *       iseg_coco_eval_run(ev) != ISEG_STATUS_OK) {
 *       fprintf(stderr, "%s\n", iseg_coco_eval_last_error(ev));
 *   } else {
 *       const double *stats = iseg_coco_eval_stats(ev);     // 12 numbers, as COCOeval.stats
 *       printf("AP %.3f\n", stats[0]);
 *   }
 *   iseg_coco_eval_free(ev);
 *
 * Semantics (see the README, "Evaluation semantics"): ground truth and results are loaded as
 * pycocotools' COCO() and loadRes() do (including the loadRes branch chosen by the first result,
 * which decides the detection areas), matching is COCOeval.evaluateImg's greedy matching, and
 * accumulate/summarize reproduce numpy's arithmetic, including its summation order. Where the
 * reference crashes or silently misbehaves, iseg reports an error or documents its result:
 *   - empty results list: evaluated as "no detections" (AP 0 where ground truth exists);
 *   - results for image ids not in the ground truth: EFORMAT naming the result;
 *   - results with category ids not in the ground truth: dropped, as the reference does (counted,
 *     see iseg_coco_eval_n_dropped());
 *   - ground-truth annotation without `iscrowd`: EFORMAT naming the annotation;
 *   - polygon ring of exactly 4 numbers (2 points): rasterised as a polygon (the reference raises);
 *   - invalid RLE counts (bad characters, sums not equal to h*w): EFORMAT naming the annotation;
 *   - ground-truth annotation id 0: evaluated correctly (the reference counts its matches as
 *     false positives); a warning is logged.
 *
 * Thread-safety: an evaluator handle must be used from one thread at a time; it runs its own
 * worker threads (params.n_threads). Results never depend on the number of threads.
 */
#ifndef ISEG_COCO_H
#define ISEG_COCO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "iseg.h"

#ifdef __cplusplus
extern "C" {
#endif

enum iseg_iou_type {
    ISEG_IOU_SEGM     = 0, /* mask IoU */
    ISEG_IOU_BBOX     = 1, /* box IoU */
    ISEG_IOU_BOUNDARY = 2, /* min(mask IoU, Boundary IoU) for non-crowd ground truth */
    ISEG_IOU_COUNT
};
/* "segm", "bbox", "boundary" */
const char *iseg_iou_type_name(enum iseg_iou_type t);

enum iseg_matching {
    ISEG_MATCHING_COCO      = 0, /* COCOeval's greedy matching in score order (the reference) */
    ISEG_MATCHING_HUNGARIAN = 1, /* NOT COCO: per image, category and IoU threshold, an optimal
                                    one-to-one matching of detections to non-ignored ground truth
                                    that maximises the number of matches, then their total IoU;
                                    leftover detections may then match ignored (crowd or
                                    out-of-range) ground truth greedily, as in COCO, and are
                                    ignored if they do. */
};

#define ISEG_COCO_MAX_IOU_THRS 64
#define ISEG_COCO_N_AREA 4
#define ISEG_COCO_N_MAXDET 3
#define ISEG_COCO_N_REC 101
#define ISEG_COCO_N_STATS 12

/* progress callback: stage name ("load", "prepare", "evaluate", "accumulate"), items done/total.
 * Called from the thread that called the library function. */
typedef void (*iseg_progress_fn)(const char *stage, size_t done, size_t total, void *user);

struct iseg_coco_eval_params {
    enum iseg_iou_type iou_type;
    int                n_threads;      /* 0: one per CPU */
    size_t             n_iou_thrs;     /* 0: COCO's ten thresholds 0.50:0.05:0.95 */
    double             iou_thrs[ISEG_COCO_MAX_IOU_THRS];
    uint32_t           max_dets[ISEG_COCO_N_MAXDET];    /* {1, 10, 100}; ascending */
    double             area_rng[ISEG_COCO_N_AREA][2];   /* all, small, medium, large (inclusive) */
    const int64_t     *cat_ids;        /* evaluate only these categories (NULL: all in the GT) */
    size_t             n_cat_ids;
    const int64_t     *img_ids;        /* evaluate only these images (NULL: all in the GT) */
    size_t             n_img_ids;
    bool               use_cats;       /* false: pool all categories (COCOeval useCats=0) */
    double             dilation_ratio; /* Boundary IoU band: 0.02 of the image diagonal */
    enum iseg_matching matching;
    bool               keep_matches;   /* keep matched pairs for iseg_coco_eval_write_matches */
    double             match_iou;      /* threshold reported by write_matches (default 0.5); with
                                          keep_matches it must be one of the thresholds (within
                                          1e-9, so 0.9 finds 0.8999999999999999) */
    iseg_progress_fn   progress;       /* NULL: silent */
    void              *progress_user;
};

struct iseg_coco_eval_params iseg_coco_eval_default_params(void);

typedef struct iseg_coco_eval *iseg_coco_eval_t;

/* Create an evaluator. Parameters are copied (cat_ids/img_ids too). EINVAL for bad params, with
 * the reason written to err (errlen bytes; err may be NULL); *ev is then NULL. */
enum iseg_status iseg_coco_eval_init(iseg_coco_eval_t *ev, const struct iseg_coco_eval_params *p,
                                     char *err, size_t errlen);
void iseg_coco_eval_free(iseg_coco_eval_t ev);

/* Detailed message for the last error (names the file and the annotation); "" if none. */
const char *iseg_coco_eval_last_error(const iseg_coco_eval_t ev);

/* Load ground truth and results (both files are parsed concurrently). Either path may be "-"
 * for stdin. A second call replaces what was loaded. */
enum iseg_status iseg_coco_eval_load_files(iseg_coco_eval_t ev, const char *gt_path,
                                           const char *dt_path);
/* The same from memory buffers; name is used in error messages. */
enum iseg_status iseg_coco_eval_load_mem(iseg_coco_eval_t ev, const char *gt_json, size_t gt_len,
                                         const char *gt_name, const char *dt_json, size_t dt_len,
                                         const char *dt_name);

/* Evaluate, accumulate and summarise. EBADSTATE if nothing is loaded. */
enum iseg_status iseg_coco_eval_run(iseg_coco_eval_t ev);

/* The 12 COCO stats (AP, AP50, AP75, APs, APm, APl, AR1, AR10, AR100, ARs, ARm, ARl);
 * -1 where no valid entry exists. Valid after run. */
const double *iseg_coco_eval_stats(const iseg_coco_eval_t ev);

/* The summary in pycocotools' layout (12 lines), newly allocated; free with iseg_free(). */
char *iseg_coco_eval_summary(const iseg_coco_eval_t ev);

/* Dimensions of the accumulated arrays. */
size_t iseg_coco_eval_n_iou_thrs(const iseg_coco_eval_t ev);
size_t iseg_coco_eval_n_cats(const iseg_coco_eval_t ev); /* 1 when use_cats is false */
int64_t iseg_coco_eval_cat_id(const iseg_coco_eval_t ev, size_t k);     /* -1 when pooled */
const char *iseg_coco_eval_cat_name(const iseg_coco_eval_t ev, size_t k);
const double *iseg_coco_eval_iou_thrs(const iseg_coco_eval_t ev);
const double *iseg_coco_eval_rec_thrs(const iseg_coco_eval_t ev);         /* 101 values */

/* precision[t, :, k, a, m]: pointer to ISEG_COCO_N_REC values (-1 when undefined), as
 * COCOeval.eval['precision']; recall[t, k, a, m] as eval['recall']. */
const double *iseg_coco_eval_precision(const iseg_coco_eval_t ev, size_t t, size_t k, size_t a,
                                       size_t m);
double iseg_coco_eval_recall(const iseg_coco_eval_t ev, size_t t, size_t k, size_t a, size_t m);

/* Per-category summary (area all, max_dets[2]): AP over all thresholds, AP at 0.5 and 0.75
 * (-1 if that threshold is not evaluated), AR; numbers of non-crowd GT and of detections. */
struct iseg_coco_cat_result {
    int64_t     id;
    const char *name;
    double      ap, ap50, ap75, ar;
    size_t      n_gt, n_dt;
};
void iseg_coco_eval_cat_result(const iseg_coco_eval_t ev, size_t k,
                               struct iseg_coco_cat_result *out);

/* Results dropped because their category is not in the ground truth. */
size_t iseg_coco_eval_n_dropped(const iseg_coco_eval_t ev);

/* Seconds spent in each stage of the last load/run. */
struct iseg_coco_timings {
    double load, prepare, evaluate, accumulate, total;
};
struct iseg_coco_timings iseg_coco_eval_timings(const iseg_coco_eval_t ev);

/* The JSON report: {"iou_type", "stats" (%.17g), "per_category", "timings_s"}. Newly allocated;
 * free with iseg_free(). */
char *iseg_coco_eval_json(const iseg_coco_eval_t ev);

/* Write iseg_coco_eval_json() to path atomically (temp file, then rename); "-" = stdout. */
enum iseg_status iseg_coco_eval_write_json(iseg_coco_eval_t ev, const char *path);

/* CSV of matches at IoU threshold params.match_iou (area all, max_dets[2]): one row per
 * detection (tp, fp or ignored, with its ground truth, IoU and Dice) and per unmatched
 * non-ignored ground truth (fn). Columns: image_id, category_id, dt_id (the result's position
 * in its file + 1, the id loadRes gives it), score, gt_id, iou, dice, status, iou_threshold.
 * Needs params.keep_matches. Written atomically ("-" = stdout). */
enum iseg_status iseg_coco_eval_write_matches(iseg_coco_eval_t ev, const char *path);

/* Precision-recall curves: DIR/pr_curves.csv (every category and threshold, area all,
 * max_dets[2]) and DIR/pr_curves.png (mean over categories at IoU 0.50, 0.75 and the
 * 0.50:0.95 average); with per_category, also DIR/pr_<cat id>.png for each category. */
enum iseg_status iseg_coco_eval_write_plots(iseg_coco_eval_t ev, const char *dir,
                                            bool per_category);

/* One entry of a COCO file's "images" list. */
struct iseg_coco_image {
    int64_t  id;
    char    *file_name; /* as written in the file ("" when absent) */
    uint32_t width, height;
};

/* Read the "images" list of a COCO instances (or panoptic) JSON file, streaming: annotations are
 * skipped without being stored. *out is allocated by the library (free with
 * iseg_coco_images_free()). EIO, EFORMAT (not JSON, no "images" list, an image without an
 * integer "id"), ENOMEM; err receives "<path>: <what>". */
enum iseg_status iseg_coco_images_read(const char *path, struct iseg_coco_image **out,
                                       size_t *n, char *err, size_t errlen);
void iseg_coco_images_free(struct iseg_coco_image *images, size_t n);

#ifdef __cplusplus
}
#endif

#endif /* ISEG_COCO_H */
