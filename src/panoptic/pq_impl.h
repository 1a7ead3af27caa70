/* pq_impl.h - private structures of the panoptic evaluator (never installed).
 *
 * pq_json.c loads the two COCO panoptic JSONs into flat tables, pq_image.c evaluates one image
 * (PNG decode, pair counting, boundary bands, matching) into a per-image event list, and
 * pq_eval.c owns the handle, runs images on the thread pool and reduces the events in the
 * reference's summation order. */
#ifndef ISEG_PQ_IMPL_H
#define ISEG_PQ_IMPL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/core_impl.h"
#include "image/png_impl.h"
#include "iseg/panoptic.h"

/* An image id as Python compares them: an integer (integral JSON numbers) or a string. */
struct pq_imgid {
    bool        is_str;
    int64_t     i;
    const char *s; /* into the file's string storage when is_str */
};

struct pq_seg {
    int64_t id;
    int64_t cat;     /* category_id */
    int32_t cat_idx; /* index into the GT categories, -1 when unknown */
    int8_t  crowd;   /* 1 when iscrowd == 1, 0 otherwise, -1 when absent */
    double  area;    /* JSON "area"; NaN when absent */
};

struct pq_ann {
    struct pq_imgid image_id;
    const char     *file_name;
    size_t          seg_off, n_seg; /* into pq_file.segs */
    size_t          index;          /* position in "annotations" */
};

struct pq_cat {
    int64_t     id;
    const char *name;
    bool        isthing;
};

struct pq_size {
    struct pq_imgid image_id;
    uint32_t        w, h;
};

struct pq_file {
    char           *name; /* for messages */
    struct pq_ann  *anns;
    size_t          n_ann;
    struct pq_seg  *segs;
    size_t          n_seg;
    struct pq_cat  *cats; /* ground truth only; unique ids, first position, last value */
    size_t          n_cat;
    struct pq_size *sizes; /* "images" entries with width and height, sorted by id */
    size_t          n_size;
    char          **strs; /* owned strings */
    size_t          n_strs, cap_strs;
};

/* Parse one panoptic JSON (buf holds len bytes). is_gt: categories are required.
 * On error writes "<name>: <where>: <what>" to err. */
enum iseg_status iseg__pq_parse(struct pq_file *f, const char *buf, size_t len,
                                const char *name, bool is_gt, char *err, size_t errlen);
void iseg__pq_file_free(struct pq_file *f);
int  iseg__pq_imgid_cmp(const struct pq_imgid *a, const struct pq_imgid *b);
/* "139" or "\"name\"" into buf */
const char *iseg__pq_imgid_str(const struct pq_imgid *id, char *buf, size_t n);

/* One accounting event of an image: a true positive (iou) or a false positive/negative. */
enum pq_ev_kind { PQ_EV_TP = 0, PQ_EV_FP = 1, PQ_EV_FN = 2 };
struct pq_event {
    uint32_t cat_idx;
    uint32_t kind;
    double   iou;
};

/* What evaluating one image produces. */
struct pq_img_result {
    struct pq_event *ev;
    size_t           n_ev;
    enum iseg_status st;
    char            *err; /* message when st != OK (allocated) */
};

/* Pair counts: open addressing keyed by gt_id << 32 | pred_id, a zero count marks an empty
 * slot. */
struct pq_hash {
    uint64_t *key, *val;
    size_t    cap, n;
};

/* Per-thread scratch, grown on demand and kept from image to image. */
struct pq_scratch {
    uint32_t *gt, *pred;     /* the last rows of the id maps: 1, d + 1 with boundaries, or H */
    uint32_t *gt_b, *pred_b; /* (H, W) whole boundary maps, only for a marker segment (rare) */
    uint32_t *brow;          /* (2 W) the boundary rows of gt and pred */
    uint8_t  *flag;          /* (2 W) per-row flags of gt and pred */
    uint32_t *cnt;           /* (2 W) per-column run counters of gt and pred */
    uint32_t *starts;        /* (2 (W + 1)) run starts of a gt row and a pred row */
    size_t    cap_px, cap_w, cap_b;
    struct pq_hash pairs, bpairs;
    struct iseg__png_rows png[2]; /* gt, pred readers */
    struct iseg__buf      file;   /* the PNG file being read */
};

/* Everything the image workers read. */
struct pq_job {
    const struct pq_file *gt, *pred;
    const char           *gt_dir, *pred_dir;
    const size_t         *pred_of; /* (n GT anns) index of the matched prediction */
    bool                  boundary;
    double                dilation_ratio;
    uint32_t              mark; /* interior marker of boundary maps: largest cat id + 1 */
    bool                  have_cats;
};

/* When true, the row kernels of pq_image.c take their portable form even where the CPU has
 * AVX2 (the results are the same). For tests: set it before an evaluation starts. */
extern bool iseg__pq_force_scalar;

/* Evaluate GT annotation i. Fills *res (events or an error). */
void iseg__pq_image(const struct pq_job *job, size_t i, struct pq_scratch *s,
                    struct pq_img_result *res);
void iseg__pq_scratch_free(struct pq_scratch *s);

#endif /* ISEG_PQ_IMPL_H */
