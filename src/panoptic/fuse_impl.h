/* fuse_impl.h - private helpers of panoptic fusion and conversion (never installed):
 * reading the small COCO/panoptic JSON files with yajl_tree, writing JSON, output transactions. */
#ifndef ISEG_FUSE_IMPL_H
#define ISEG_FUSE_IMPL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <yajl/yajl_gen.h>
#include <yajl/yajl_tree.h>

#include "core/core_impl.h"
#include "iseg/image.h"
#include "iseg/mask.h"
#include "iseg/panoptic_fuse.h"

/* Deepest JSON nesting accepted (COCO files need 5; yajl_tree frees recursively). */
#define ISEG__FJ_MAX_DEPTH 64
/* Largest category id: id * 1000 + 999 must fit in 24 bits. */
#define ISEG__FJ_MAX_CAT_ID ((int64_t)((ISEG_FUSE_MAX_ID - 999) / ISEG_FUSE_OFFSET))

struct iseg__fj_image {
    int64_t     id;
    uint32_t    w, h;      /* 0 when the JSON has no size */
    const char *file_name; /* into the tree; NULL when absent */
    char       *base;      /* base name without extension (allocated), or NULL */
    yajl_val    obj;       /* the image object, copied to outputs */
};

struct iseg__fj_cats {
    struct iseg_fuse_category *v;   /* (n) */
    yajl_val                  *obj; /* (n) the category objects, copied to outputs */
    size_t                     n;
    size_t                    *by_id; /* (n) indices sorted by id */
};

struct iseg__fj_result {
    size_t          img;   /* index into the images */
    int64_t         category_id;
    double          score;
    struct iseg_rle mask;  /* decoded when score >= the threshold, else zeroed */
};

struct iseg__fj_seg {
    int64_t id, category_id;
    bool    iscrowd;
};

struct iseg__fj_ann {
    int64_t              image_id;
    const char          *file_name; /* into the tree */
    struct iseg__fj_seg *seg;       /* (n_seg) */
    size_t               n_seg;
};

/* Parse n bytes of JSON (no NUL inside; need not be NUL-terminated). name is used in messages.
 * EFORMAT for invalid JSON or nesting deeper than ISEG__FJ_MAX_DEPTH. */
enum iseg_status iseg__fj_parse(const char *buf, size_t n, const char *name, yajl_val *out,
                                char *err, size_t errlen);
/* Read and parse a file (EIO if unreadable). */
enum iseg_status iseg__fj_read(const char *path, yajl_val *out, char *err, size_t errlen);

/* Member of an object (the last one when a key repeats, as Python's json); NULL if absent. */
yajl_val iseg__fj_get(yajl_val obj, const char *key);
/* An integer (or a number with an integral value) in int64 range. */
bool iseg__fj_int(yajl_val v, int64_t *out);

/* Categories from a list, or from the "categories" member of an object. Checks: objects with
 * an integer id in [1, ISEG__FJ_MAX_CAT_ID], unique; isthing 0/1 (or a boolean) present. */
enum iseg_status iseg__fj_categories(yajl_val root, const char *name, struct iseg__fj_cats *out,
                                     char *err, size_t errlen);
void iseg__fj_cats_free(struct iseg__fj_cats *c);
/* Index of category id, or SIZE_MAX. */
size_t iseg__fj_cat_find(const struct iseg__fj_cats *c, int64_t id);

/* The "images" member of root: unique integer ids; with need_size, width and height >= 1;
 * with need_name, a file_name whose base name is non-empty and unique. *order receives the
 * image indices sorted by id (for iseg__fj_image_find). */
enum iseg_status iseg__fj_images(yajl_val root, const char *name, bool need_size, bool need_name,
                                 struct iseg__fj_image **out, size_t **order, size_t *n,
                                 char *err, size_t errlen);
void iseg__fj_images_free(struct iseg__fj_image *im, size_t *order, size_t n);
size_t iseg__fj_image_find(const struct iseg__fj_image *im, const size_t *order, size_t n,
                           int64_t id);

/* A COCO results list for fusion: each result's image must be in im (with a size), its
 * category a thing of cats. Masks of results with score >= score_thresh are decoded. */
enum iseg_status iseg__fj_results(yajl_val root, const char *name,
                                  const struct iseg__fj_image *im, const size_t *order,
                                  size_t n_im, const struct iseg__fj_cats *cats,
                                  double score_thresh, struct iseg__fj_result **out, size_t *n,
                                  char *err, size_t errlen);
void iseg__fj_results_free(struct iseg__fj_result *r, size_t n);

/* The "annotations" of a COCO panoptic JSON. */
enum iseg_status iseg__fj_annotations(yajl_val root, const char *name, struct iseg__fj_ann **out,
                                      size_t *n, char *err, size_t errlen);
void iseg__fj_annotations_free(struct iseg__fj_ann *a, size_t n);

/* idx[] = 0..n-1 stably sorted by key[idx[]]; false on ENOMEM. */
bool iseg__fj_sort_idx(size_t *idx, const int64_t *key, size_t n);

/* Base name of a file name: after the last '/', without the last extension. Allocated. */
char *iseg__fj_base_name(const char *file_name);

/* Emit a parsed value with yajl_gen (numbers keep their original text). */
bool iseg__fj_gen_value(yajl_gen g, yajl_val v);
bool iseg__fj_gen_str(yajl_gen g, const char *s);
bool iseg__fj_gen_int(yajl_gen g, long long x);

/* ---- output transaction: files are written to temporaries, renamed at commit ---- */
struct iseg__txn {
    char  *dir;         /* output directory (NULL: no directory) */
    bool   created_dir; /* we created it: removed on abort */
    char **tmp;         /* (n) temporary paths (NULL: slot unused) */
    char **final;       /* (n) final paths */
    size_t n;
};
/* Create dir if missing (EIO when impossible) and n_files empty slots. */
enum iseg_status iseg__txn_begin(struct iseg__txn *t, const char *dir, size_t n_files, char *err,
                                 size_t errlen);
/* Write data to the temporary of slot i, final name DIR/name (or name itself when dir is NULL
 * and the transaction has no directory). Thread-safe for distinct slots. */
enum iseg_status iseg__txn_write(struct iseg__txn *t, size_t i, const char *name,
                                 const void *data, size_t n, char *err, size_t errlen);
/* Write an image as PNG into slot i. */
enum iseg_status iseg__txn_write_png(struct iseg__txn *t, size_t i, const char *name,
                                     const struct iseg_image *img, char *err, size_t errlen);
/* Write json (json_path "-" = stdout, NULL = none) and rename every temporary into place.
 * Always releases t (on failure, as iseg__txn_abort). */
enum iseg_status iseg__txn_commit(struct iseg__txn *t, const char *json_path, const char *json,
                                  size_t json_len, char *err, size_t errlen);
/* Remove every temporary (and the directory if we created it). Frees t. */
void iseg__txn_abort(struct iseg__txn *t);

/* Locate DIR/<base>.png, else DIR/<id>.png; EIO naming both when neither exists. *path is
 * allocated. */
enum iseg_status iseg__fj_find_map(const char *dir, const char *base, int64_t id, char **path,
                                   const char *what, char *err, size_t errlen);

/* A yajl generator with the default allocator; NULL on ENOMEM. */
yajl_gen iseg__fj_gen_new(void);

/* Segment ids -> RGB samples (R + 256 G + 256^2 B), npx pixels. */
void iseg__fj_ids_to_rgb(const uint32_t *ids, uint8_t *rgb, size_t npx);
/* Read the map of image im from dir (see iseg__fj_find_map); want_c == 1: exactly one channel,
 * else at least want_c channels; only8: 8-bit only; when im has a size, the map must have it
 * (ESHAPE). what names the map in messages. */
enum iseg_status iseg__fj_read_map(const char *dir, const struct iseg__fj_image *im,
                                   const char *what, bool only8, uint32_t want_c,
                                   struct iseg_image *img, char *err, size_t errlen);
/* Emit segments_info. */
bool iseg__fj_gen_segments(yajl_gen g, const struct iseg_fuse_segment *s, size_t n);

/* ---- fusion of one image with prepared tables (fuse_core.c) ---- */
struct iseg__fuse_prep;
enum iseg_status iseg__fuse_check_params(const struct iseg_fuse_params *p, char *err,
                                         size_t errlen);
/* Check p, index cats (kept by pointer: they must outlive the prep) and resolve p->protect. */
enum iseg_status iseg__fuse_prep_init(struct iseg__fuse_prep **out,
                                      const struct iseg_fuse_params *p,
                                      const struct iseg_fuse_category *cats, size_t n_cats,
                                      char *err, size_t errlen);
void iseg__fuse_prep_free(struct iseg__fuse_prep *pp);
/* iseg_fuse_image() with a prep; cnt receives this image's counts. Thread-safe. */
enum iseg_status iseg__fuse_run_image(const struct iseg__fuse_prep *pp,
                                      const struct iseg_fuse_instance *inst, size_t n_inst,
                                      const uint16_t *sem, const uint8_t *conf, uint32_t h,
                                      uint32_t w, uint32_t *ids, struct iseg_fuse_segment **segs,
                                      size_t *n_segs, struct iseg_fuse_summary *cnt, char *err,
                                      size_t errlen);

#endif /* ISEG_FUSE_IMPL_H */
