/*
 * panoptic.h - Panoptic Quality (PQ = SQ x RQ) and Boundary PQ of COCO panoptic predictions,
 * equal to panopticapi's pq_compute (and boundary-iou-api for Boundary PQ) to the last bit.
 *
 *   struct iseg_panoptic_eval_params p = iseg_panoptic_eval_default_params();
 *   p.boundary = false;                                  // true: Boundary PQ
 *   iseg_panoptic_eval_t ev;
 *   if (iseg_panoptic_eval_init(&ev, &p, NULL, 0) != ISEG_STATUS_OK) return 1;
 *   if (iseg_panoptic_eval_load(ev, "gt.json", "gt_png", "pred.json", "pred_png") !=
 *           ISEG_STATUS_OK ||
 *       iseg_panoptic_eval_run(ev) != ISEG_STATUS_OK) {
 *       fprintf(stderr, "%s\n", iseg_panoptic_eval_last_error(ev));
 *   } else {
 *       struct iseg_panoptic_result all;
 *       iseg_panoptic_eval_result(ev, ISEG_PANOPTIC_ALL, &all);
 *       printf("PQ %.1f over %zu classes\n", 100 * all.pq, all.n);
 *   }
 *   iseg_panoptic_eval_free(ev);
 *
 * Inputs (COCO panoptic format): a JSON with "annotations" (one per image: "image_id",
 * "file_name", "segments_info": [{"id", "category_id", "iscrowd", "area"}, ...]) and, for the
 * ground truth, "categories" ([{"id", "name", "isthing"}, ...]), plus a folder of PNGs whose
 * pixels hold segment ids as R + 256 G + 256^2 B (8-bit RGB or RGBA, alpha ignored; palette
 * PNGs are expanded to RGB; 8 or 16-bit gray PNGs are read as the id itself, an extension).
 * Id 0 is VOID unless segments_info lists it.
 *
 * Semantics (panopticapi pq_compute; details in ../shared/specs/coco-eval.md, sections 6-7):
 *   - images are the ground-truth "annotations", in file order; each needs a prediction with
 *     the same image_id (the last one wins when several exist; extra predictions are ignored).
 *     Categories and isthing come from the ground-truth JSON only.
 *   - a prediction segment's area is its pixel count in the PNG; a ground-truth segment's area
 *     is its JSON "area". Pairs (g, p) of a non-crowd ground truth and a prediction of the same
 *     category have IoU = |g & p| / (area(p) + area(g) - |g & p| - |p & VOID|) and match when
 *     IoU > 0.5 (strictly). Matched pairs are true positives (their IoU is summed per class),
 *     unmatched non-crowd ground truth are false negatives, unmatched predictions are false
 *     positives unless more than half of them lies on VOID plus the crowd region of their class
 *     (the last crowd segment of a class in segments_info order defines it).
 *   - per class: PQ = iou_sum / (tp + fp/2 + fn/2), SQ = iou_sum / tp (0 without tp),
 *     RQ = tp / (tp + fp/2 + fn/2). Classes with tp + fp + fn == 0 are left out; All, Things and
 *     Stuff are plain means over the remaining classes, summed in ground-truth category order.
 *   - Boundary PQ: IoU becomes min(mask IoU, boundary IoU) where each segment's boundary is its
 *     inner band of d = max(1, round_half_even(dilation_ratio * image diagonal)) pixels
 *     (iseg_boundary_dilation()) and the boundary IoU subtracts the prediction boundary's
 *     overlap with ground-truth VOID from the union, as boundary-iou-api does (including its
 *     "largest category id + 1" interior marker).
 *   - floating-point order: the reference splits the images into n_workers contiguous chunks
 *     (np.array_split) and adds per-chunk sums in chunk order; iseg reproduces that order for
 *     params.n_workers (2, the reference on a 2-core machine), so results are bit-identical to
 *     it and never depend on params.n_threads.
 *
 * Errors (EFORMAT unless said otherwise; the message names the file, the image and the
 * segment): a ground-truth image without prediction; a prediction PNG id missing from its
 * segments_info, or a segments_info id missing from the PNG; a prediction category not in the
 * ground-truth categories; unreadable (EIO) or corrupt PNGs; ground-truth and prediction PNGs of
 * different sizes (ESHAPE), or a ground-truth PNG whose size differs from its entry in the
 * ground-truth "images" (ESHAPE); malformed JSON or missing fields. Where iseg differs from the
 * reference: duplicate segment ids within one segments_info are an error (the reference
 * silently merges them); an empty Things or Stuff group gives pq = sq = rq = 0 with n = 0
 * (the reference raises ZeroDivisionError); ground-truth segments with unknown categories count
 * for no class (as in the reference, where they go to a class it never reports).
 *
 * Thread-safety: an evaluator handle must be used from one thread at a time; it runs its own
 * worker threads (params.n_threads).
 */
#ifndef ISEG_PANOPTIC_H
#define ISEG_PANOPTIC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "iseg.h"

#ifdef __cplusplus
extern "C" {
#endif

struct iseg_panoptic_eval_params {
    bool   boundary;       /* Boundary PQ instead of PQ */
    double dilation_ratio; /* boundary band: fraction of the image diagonal (0.02) */
    int    n_threads;      /* 0: one per CPU; results never depend on it */
    int    n_workers;      /* summation order of the reference's worker processes (2); >= 1 */
    /* progress: stage ("load", "evaluate"), items done and total; called from the calling
     * thread. NULL: silent. */
    void (*progress)(const char *stage, size_t done, size_t total, void *user);
    void  *progress_user;
};

/* boundary false, dilation_ratio 0.02, n_threads 0, n_workers 2, no progress. */
struct iseg_panoptic_eval_params iseg_panoptic_eval_default_params(void);

typedef struct iseg_panoptic_eval *iseg_panoptic_eval_t;

/* Create an evaluator; params are copied. EINVAL for bad params (dilation_ratio not in (0, 1),
 * n_workers < 1, n_threads < 0), with the reason in err (errlen bytes, err may be NULL); *ev is
 * then NULL. ENOMEM. Free with iseg_panoptic_eval_free() (NULL is fine). */
enum iseg_status iseg_panoptic_eval_init(iseg_panoptic_eval_t *ev,
                                         const struct iseg_panoptic_eval_params *p, char *err,
                                         size_t errlen);
void iseg_panoptic_eval_free(iseg_panoptic_eval_t ev);

/* Message for the last error, naming the file, image and segment at fault; "" if none. The
 * string belongs to the handle and lives until its next call. */
const char *iseg_panoptic_eval_last_error(const iseg_panoptic_eval_t ev);

/* Parse the ground-truth and prediction JSONs and pair every ground-truth image with its
 * prediction; the PNGs are read by run from gt_dir and pred_dir. A second call replaces what
 * was loaded. EIO for an unreadable JSON, EFORMAT for malformed content or a missing
 * prediction, ENOMEM. */
enum iseg_status iseg_panoptic_eval_load(iseg_panoptic_eval_t ev, const char *gt_json,
                                         const char *gt_dir, const char *pred_json,
                                         const char *pred_dir);

/* The same with both JSONs in memory (len bytes each, not retained); gt_name and pred_name are
 * used in messages. */
enum iseg_status iseg_panoptic_eval_load_mem(iseg_panoptic_eval_t ev, const char *gt_json,
                                             size_t gt_len, const char *gt_name,
                                             const char *gt_dir, const char *pred_json,
                                             size_t pred_len, const char *pred_name,
                                             const char *pred_dir);

/* Read every PNG pair and compute the metrics. EBADSTATE when nothing is loaded; the errors
 * listed at the top otherwise (the one of the first failing image in file order). */
enum iseg_status iseg_panoptic_eval_run(iseg_panoptic_eval_t ev);

enum iseg_panoptic_group {
    ISEG_PANOPTIC_ALL    = 0,
    ISEG_PANOPTIC_THINGS = 1, /* categories with isthing == 1 */
    ISEG_PANOPTIC_STUFF  = 2, /* the others */
    ISEG_PANOPTIC_GROUP_COUNT
};
/* "All", "Things", "Stuff" */
const char *iseg_panoptic_group_name(enum iseg_panoptic_group g);

struct iseg_panoptic_result {
    double pq, sq, rq; /* fractions (multiply by 100 for the usual table) */
    size_t n;          /* classes averaged */
};
/* The mean over a group of classes. Valid after run (zeros before). */
void iseg_panoptic_eval_result(const iseg_panoptic_eval_t ev, enum iseg_panoptic_group g,
                               struct iseg_panoptic_result *out);

struct iseg_panoptic_cat_result {
    int64_t     id;
    const char *name;     /* "" when the category has no name; owned by the handle */
    bool        isthing;
    bool        counted;  /* tp + fp + fn > 0 (otherwise pq, sq, rq are 0 and left out) */
    double      pq, sq, rq;
    double      iou_sum;  /* sum of the true positives' IoU */
    uint64_t    tp, fp, fn;
};
/* Number of ground-truth categories (duplicated ids count once) and the result of the k-th,
 * in ground-truth order. Valid after run. */
size_t iseg_panoptic_eval_n_cats(const iseg_panoptic_eval_t ev);
void   iseg_panoptic_eval_cat_result(const iseg_panoptic_eval_t ev, size_t k,
                                     struct iseg_panoptic_cat_result *out);

/* The reference's table: a header "          |    PQ     SQ     RQ     N", a rule, and the
 * All, Things and Stuff rows (percentages, "%5.1f"). Newly allocated; free with iseg_free().
 * NULL on ENOMEM. */
char *iseg_panoptic_eval_summary(const iseg_panoptic_eval_t ev);

/* The JSON report: {"All": {"pq", "sq", "rq", "n"}, "Things": {...}, "Stuff": {...},
 * "per_class": {"<id>": {"pq", "sq", "rq", "tp", "fp", "fn"}}, "boundary": bool} with
 * fractions printed as %.17g. Newly allocated; free with iseg_free(). NULL on ENOMEM. */
char *iseg_panoptic_eval_json(const iseg_panoptic_eval_t ev);

/* Write iseg_panoptic_eval_json() to path atomically ("-" = stdout). EIO, ENOMEM. */
enum iseg_status iseg_panoptic_eval_write_json(iseg_panoptic_eval_t ev, const char *path);

/* Seconds spent loading the JSONs and in the last run. */
struct iseg_panoptic_timings {
    double load, run;
};
struct iseg_panoptic_timings iseg_panoptic_eval_timings(const iseg_panoptic_eval_t ev);

#ifdef __cplusplus
}
#endif

#endif /* ISEG_PANOPTIC_H */
