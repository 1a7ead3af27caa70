/* coco_impl.h - the COCO evaluator's private data model (never installed). */
#ifndef ISEG_COCO_IMPL_H
#define ISEG_COCO_IMPL_H

#include <stdbool.h>
#include <stdint.h>

#include "core/core_impl.h"
#include "iseg/coco.h"
#include "iseg/mask.h"

struct coco_img {
    int64_t  id;
    uint32_t h, w;
};

struct coco_cat {
    int64_t id;
    char   *name;
};

enum seg_kind {
    SEG_NONE = 0,
    SEG_POLY,        /* raw: per ring uint32 n_numbers, then n doubles */
    SEG_RLE_STR,     /* raw: string bytes */
    SEG_RLE_COUNTS,  /* raw: uint32 counts */
};

enum ann_flag {
    AF_ID       = 1 << 0,
    AF_IMAGE_ID = 1 << 1,
    AF_CAT_ID   = 1 << 2,
    AF_AREA     = 1 << 3,
    AF_SCORE    = 1 << 4,
    AF_ISCROWD  = 1 << 5, /* field present */
    AF_CROWD    = 1 << 6, /* value truthy */
    AF_IGNORE   = 1 << 7, /* "ignore" present and truthy */
    AF_SIZE     = 1 << 8, /* RLE size seen */
    AF_BBOX     = 1 << 9, /* bbox present and non-empty */
    AF_SEG_DROPPED = 1 << 10, /* segmentation not kept (bbox evaluation) */
};

/* One ground-truth annotation or one result, in file order. */
struct coco_ann {
    int64_t  id, image_id, category_id;
    double   area;       /* GT: from the JSON; DT: as loadRes sets it */
    double   bbox[4];    /* from the JSON (or toBbox of the mask for segm-branch results) */
    double   score;
    uint64_t seg_off;    /* into raw buffer raw_id of its file */
    uint32_t seg_len;    /* bytes (string), counts (list), or rings (polygons) */
    uint32_t seg_h, seg_w;
    uint32_t flags;
    uint8_t  seg_kind;
    uint8_t  n_bbox;     /* numbers seen in bbox */
    uint8_t  raw_id;
    bool     mask_owned;
    int32_t  img_idx;    /* index into the sorted image table, -1 unknown */
    int32_t  cat_idx;    /* index into the sorted category table, -1 unknown */
    /* prepared for evaluation */
    char    *mask;       /* compressed RLE string (owned unless it points into raw) */
    uint32_t mask_len;
    uint32_t mh, mw;     /* mask size */
    uint32_t mask_area;
    uint32_t mask_bb[4]; /* toBbox of the mask (the IoU pre-filter uses these) */
};

#define COCO_MAX_RAW 64

struct coco_file {
    const char      *name;
    struct coco_ann *anns;
    size_t           n_anns, cap_anns;
    struct coco_img *imgs;   /* GT only */
    size_t           n_imgs, cap_imgs;
    struct coco_cat *cats;   /* GT only */
    size_t           n_cats, cap_cats;
    struct iseg__buf raw[COCO_MAX_RAW]; /* segmentation data; one buffer per parsed piece */
    size_t           n_raw;
    bool             is_results;
    bool             no_seg;     /* bbox evaluation: GT segmentation is not kept; a result's
                                    is dropped when the result has a bbox */
    bool             seg_dropped; /* some result's segmentation was dropped */
};

#define COCO_PARSE_RESULTS 1u /* a results file (else ground truth) */
#define COCO_PARSE_NO_SEG  2u /* see coco_file.no_seg */

static inline const char *coco_ann_seg(const struct coco_file *f, const struct coco_ann *a) {
    return f->raw[a->raw_id].data + a->seg_off;
}

/* Parse a GT (is_results = false) or results file. data may be NULL to read path ("-": stdin).
 * On error, err holds "<file>: <where>: <what>". A results file that is a JSON array is split
 * into up to n_pieces pieces parsed concurrently on pool (NULL: sequentially). */
struct iseg__pool;
/* An id and its position in file order; iseg__cmp_id_pos sorts by id, then position (stable
 * for repeated ids), so a sorted table finds ids by binary search and reports duplicates. */
struct iseg__id_pos {
    int64_t id;
    size_t  pos;
};
int iseg__cmp_id_pos(const void *a, const void *b);

enum iseg_status iseg__coco_parse(struct coco_file *f, const char *path, const char *data,
                                  size_t len, unsigned mode, char *err, size_t errlen);
/* Parse GT and results files together, splitting large results arrays into pieces, all on
 * the pool's threads. */
enum iseg_status iseg__coco_parse_pair(struct coco_file *gt, const char *gt_path,
                                       struct coco_file *dt, const char *dt_path,
                                       unsigned no_seg, struct iseg__pool *pool, char *err,
                                       size_t errlen);
void iseg__coco_file_free(struct coco_file *f);

/* The "images" list of a COCO file (the file at path, or data of len bytes when data is not
 * NULL; name is used in messages). strict: as iseg_coco_images_read() (an integer "id" per image,
 * a missing "file_name" as "", no "images" list an error); otherwise ids are not checked and a
 * missing "file_name" is NULL (for callers that validated the file with iseg__coco_parse). A
 * "file_name" holding a NUL is EFORMAT. Parsing stops at the end of an "images" array once
 * stop_after images have been read (SIZE_MAX: the whole file). Free with
 * iseg_coco_images_free(). */
enum iseg_status iseg__coco_images_parse(const char *name, const char *path, const char *data,
                                        size_t len, bool strict, size_t stop_after,
                                        struct iseg_coco_image **out, size_t *n, char *err,
                                        size_t errlen);

/* Smallest piece of a results array worth parsing on its own thread (8 MiB; tests lower it). */
extern uint64_t iseg__coco_piece_min;

/* Fast exact decimal -> double (correctly rounded, as Python's float()). */
bool iseg__parse_double(const char *s, size_t n, double *out);

/* numpy's np.mean of a float64 vector: 8192-element chunks, each pairwise-summed. */
double iseg__np_mean(const double *a, size_t n);
double iseg__np_sum(const double *a, size_t n);

#endif /* ISEG_COCO_IMPL_H */
