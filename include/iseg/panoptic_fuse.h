/*
 * panoptic_fuse.h - panoptic fusion (instance predictions + semantic segmentation -> COCO
 * panoptic) and conversions between panoptic formats.
 *
 *   struct iseg_fuse_params p = iseg_fuse_default_params();
 *   p.policy  = ISEG_FUSE_STUFF_PROTECTED;
 *   p.protect = "sky-other-merged,wall-other-merged";
 *   struct iseg_fuse_paths f = {
 *       .instances_json = "results.json", .semantic_dir = "sem/", .confidence_dir = "conf/",
 *       .images_json = "panoptic_val2017.json", .categories_json = "panoptic_coco_categories.json",
 *       .out_json = "fused.json", .out_dir = "fused/",
 *   };
 *   char err[512];
 *   struct iseg_fuse_summary s;
 *   if (iseg_fuse_files(&p, &f, &s, err, sizeof(err)) != ISEG_STATUS_OK)
 *       fprintf(stderr, "%s\n", err);        // e.g. "results.json: result 17: unknown category 999"
 *
 * Formats
 *   COCO panoptic: a JSON {"images", "annotations": [{"image_id", "file_name", "segments_info":
 *   [{"id", "category_id", "iscrowd", "area", "bbox"}]}], "categories": [{"id", "name",
 *   "isthing"}]} plus one 8-bit RGB PNG per image whose pixel encodes the segment id as
 *   R + 256 G + 256^2 B; id 0 is VOID.
 *   2-channel: one PNG per image, channel 0 = category id, channel 1 = instance id (gray+alpha,
 *   8-bit, or 16-bit when a value exceeds 255; when reading, channels 0 and 1 of a 2-, 3- or
 *   4-channel PNG at 8 or 16 bits). Category `void_category` (0) is VOID. The segment id of
 *   (category c, instance i) is c * offset + i (offset 1000, as panopticapi's converter forms
 *   `pan = OFFSET * ch0 + ch1`; panopticapi then draws random ids, iseg keeps this value so the
 *   result is deterministic). Stuff segments have instance 0; a crowd region of a thing class
 *   has instance `crowd_instance` (255).
 *
 * File names. An image of the images JSON with file_name "dir/000000139.jpg" has the base name
 * "000000139" (text after the last '/', extension removed). Input maps (semantic, confidence,
 * 2-channel) are looked up as DIR/<base>.png, then DIR/<image id>.png; outputs are written as
 * DIR/<base>.png, which is also the annotation's file_name.
 *
 * Fusion: segment ids. Every segment's id is category_id * 1000 + k: k = 1, 2, ... numbers the
 * kept instances of each thing class in the order they were kept (k > 999 gives ELIMIT), k = 0
 * for stuff. Category ids must be in [1, 16776] so that every id fits in 24 bits. (So ids
 * never collide with Boundary PQ's interior marker max_cat_id + 1, and a fused output converts
 * to the 2-channel format with the same numbers.) segments_info lists the instances in the
 * order they were kept, then the stuff segments by ascending category id; each has iscrowd 0,
 * area = its pixel count and bbox = [x, y, w, h] of its pixels (integers).
 *
 * Fusion: policies (per image of h x w pixels; "mask" is the instance's decoded RLE)
 *   instance-priority:
 *     1. Instances with score < score_thresh are dropped. The others are sorted by descending
 *        score; ties keep the order of the results file (a stable sort).
 *     2. In that order, each instance may take the pixels of its mask that no earlier kept
 *        instance took. Let area = |mask| and survive = |mask minus taken pixels|. It is kept
 *        iff area > 0, survive > 0 and (double)survive >= overlap_thresh * (double)area; a
 *        kept instance becomes a segment of exactly its surviving pixels; a dropped one takes
 *        nothing.
 *     3. Every pixel no instance took gets the class of the semantic map there if that class is
 *        a stuff category; a thing class, or a value that is no category, leaves it VOID. For
 *        each stuff class, its pixels form one segment if there are >= stuff_area of them;
 *        otherwise they become VOID.
 *   stuff-protected: the same, except that a pixel is *protected* when the semantic map labels
 *     it with a stuff class and either that class is listed in `protect` or (with a confidence
 *     map) its confidence value / 255.0 >= protect_thresh. In step 2 an instance never takes a
 *     protected pixel, and protected pixels of its mask do not count in survive (they do count
 *     in area). Protected pixels then go to their stuff class in step 3 (subject to
 *     stuff_area). This prevents "flying cars" painted over confident sky.
 *   Results must name a thing category of the categories file (EFORMAT otherwise; results of
 *   images not in the images file are also EFORMAT), with masks of the image's size (ESHAPE).
 *   Every image of the images file gets an annotation, also when it has no result.
 *
 * Outputs are all-or-nothing: PNGs are written to temporary files in out_dir (created if
 * missing), the JSON to a temporary file, and everything is renamed into place only when every
 * image succeeded. On error nothing new is left behind (a created out_dir is removed).
 *
 * Errors: functions taking err, errlen write one line naming the file, image or result and
 * what is wrong. Nothing is printed. Thread-safety: all functions are reentrant; the file
 * functions run their own worker threads (n_threads), and their output never depends on it.
 */
#ifndef ISEG_PANOPTIC_FUSE_H
#define ISEG_PANOPTIC_FUSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "iseg.h"
#include "mask.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Segment id = category * ISEG_FUSE_OFFSET + instance, in fusion and the 2-channel format. */
#define ISEG_FUSE_OFFSET 1000
/* Largest segment id an RGB panoptic PNG can hold. */
#define ISEG_FUSE_MAX_ID ((uint32_t)0xFFFFFF)

enum iseg_fuse_policy {
    ISEG_FUSE_INSTANCE_PRIORITY = 0, /* "instance-priority" */
    ISEG_FUSE_STUFF_PROTECTED   = 1, /* "stuff-protected" */
    ISEG_FUSE_POLICY_COUNT
};
/* "instance-priority", "stuff-protected"; "?" for other values. */
const char *iseg_fuse_policy_name(enum iseg_fuse_policy p);
/* Parse a policy name; EINVAL when unknown. */
enum iseg_status iseg_fuse_policy_from_name(const char *s, enum iseg_fuse_policy *out);

struct iseg_fuse_params {
    enum iseg_fuse_policy policy;         /* instance-priority */
    double                score_thresh;   /* 0.5: instances with a lower score are dropped */
    double                overlap_thresh; /* 0.5: in [0, 1], fraction of a mask that must survive */
    uint64_t              stuff_area;     /* 4096: smaller stuff segments become VOID */
    double                protect_thresh; /* 0.5: in [0, 1], confidence that protects stuff */
    const char           *protect;        /* comma-separated stuff category names or ids that are
                                             always protected (stuff-protected only); NULL: none */
    int                   n_threads;      /* 0: one per CPU */
};
struct iseg_fuse_params iseg_fuse_default_params(void);

struct iseg_fuse_category {
    int64_t     id;      /* in [1, 16776] */
    bool        isthing;
    const char *name;    /* may be NULL */
};

struct iseg_fuse_instance {
    int64_t                category_id;
    double                 score;
    const struct iseg_rle *mask; /* h x w */
};

struct iseg_fuse_segment {
    uint32_t id;
    int64_t  category_id;
    bool     iscrowd;
    uint64_t area;     /* pixels */
    uint32_t bbox[4];  /* x, y, w, h of its pixels */
};

/* Fuse one image in memory. semantic: (h, w) class ids, row-major; confidence: (h, w) values
 * 0..255, row-major, or NULL (stuff-protected then protects only the classes of p->protect).
 * Writes the segment id of every pixel to ids ((h, w), row-major, caller-allocated) and returns
 * the segments in *segs (allocated by the library, free with iseg_free(); NULL when there are
 * none) and their number in *n_segs. EINVAL for bad parameters or an unknown p->protect entry;
 * EFORMAT for an instance whose category is unknown or not a thing; ESHAPE for a mask of
 * another size; ELIMIT for a category id outside [1, 16776] or over 999 instances of a class;
 * ENOMEM. p->n_threads is ignored. */
enum iseg_status iseg_fuse_image(const struct iseg_fuse_params *p,
                                 const struct iseg_fuse_category *cats, size_t n_cats,
                                 const struct iseg_fuse_instance *inst, size_t n_inst,
                                 const uint16_t *semantic, const uint8_t *confidence, uint32_t h,
                                 uint32_t w, uint32_t *ids, struct iseg_fuse_segment **segs,
                                 size_t *n_segs, char *err, size_t errlen);

struct iseg_fuse_paths {
    const char *instances_json;  /* COCO results: [{image_id, category_id, score, segmentation}]
                                    with compressed or uncompressed RLE or polygons */
    const char *semantic_dir;    /* one PNG per image: 1 channel, 8 or 16 bits, class ids */
    const char *confidence_dir;  /* NULL, or one PNG per image: 1 channel, 8 bits */
    const char *images_json;     /* a JSON with "images": [{id, width, height, file_name}] */
    const char *categories_json; /* a list of categories, or a JSON with "categories" */
    const char *out_json;        /* COCO panoptic JSON to write ("-": stdout) */
    const char *out_dir;         /* directory for the panoptic PNGs */
};

struct iseg_fuse_summary {
    size_t n_images;
    size_t n_results;        /* results in the file */
    size_t n_below_score;    /* dropped by score_thresh */
    size_t n_overlap_drop;   /* dropped by overlap_thresh */
    size_t n_instances;      /* kept instance segments */
    size_t n_stuff;          /* stuff segments */
    size_t n_stuff_small;    /* stuff segments voided by stuff_area */
};

/* Fuse every image of paths->images_json and write paths->out_json and paths->out_dir
 * (all-or-nothing, see above). summary may be NULL. Errors: EINVAL (parameters, e.g.
 * stuff-protected with neither a confidence dir nor a protect list), EIO (unreadable or missing
 * file, unwritable output), EFORMAT (malformed JSON or PNG, unknown image or category, duplicate
 * image ids or output names), ESHAPE (a map or mask whose size is not the image's), ELIMIT,
 * ENOMEM. */
enum iseg_status iseg_fuse_files(const struct iseg_fuse_params *p,
                                 const struct iseg_fuse_paths *paths,
                                 struct iseg_fuse_summary *summary, char *err, size_t errlen);

/* ---- conversions ---- */

struct iseg_panoptic_convert_params {
    uint32_t offset;         /* 1000: 2-channel segment id = category * offset + instance */
    uint32_t crowd_instance; /* 255: the instance id of crowd regions in the 2-channel format */
    uint32_t void_category;  /* 0: the category id of VOID pixels in the 2-channel format */
    bool     results;        /* to_instances: write a results list (score 1.0, no crowd, no
                                bbox) instead of a ground-truth dataset */
    int      n_threads;      /* 0: one per CPU */
};
struct iseg_panoptic_convert_params iseg_panoptic_convert_default_params(void);

/* COCO panoptic (pan_json + pan_dir) -> 2-channel PNGs in out_dir, one per annotation, named as
 * its file_name. Instance ids: per image and category, in segments_info order, thing segments
 * get 1, 2, ... (skipping crowd_instance), crowd thing segments get crowd_instance (several
 * crowd regions of one class merge), the first stuff segment of a class gets 0 and further ones
 * 1, 2, .... Categories come from pan_json. Every non-zero id in a PNG must be in its
 * segments_info and vice versa (EFORMAT). All-or-nothing like iseg_fuse_files(). */
enum iseg_status iseg_panoptic_convert_to_2ch(const struct iseg_panoptic_convert_params *p,
                                              const char *pan_json, const char *pan_dir,
                                              const char *out_dir, char *err, size_t errlen);

/* 2-channel PNGs (in_dir, looked up per image of images_json) -> COCO panoptic out_json +
 * out_dir. Segment id = category * offset + instance (ELIMIT if instance >= offset or the id
 * exceeds ISEG_FUSE_MAX_ID); iscrowd = 1 for a thing class with instance crowd_instance;
 * segments_info sorted by id. categories_json may be NULL: the categories of images_json are
 * used. Unknown categories in a PNG are EFORMAT; a PNG whose size differs from the image's is
 * ESHAPE. */
enum iseg_status iseg_panoptic_convert_from_2ch(const struct iseg_panoptic_convert_params *p,
                                                const char *in_dir, const char *images_json,
                                                const char *categories_json,
                                                const char *out_json, const char *out_dir,
                                                char *err, size_t errlen);

/* COCO panoptic -> COCO instances JSON (things only, masks as compressed RLE). Default: a
 * dataset {"images" (copied, or made from the PNG sizes), "annotations": [{"id" (1, 2, ... in
 * file order), "image_id", "category_id", "segmentation": {"size": [h, w], "counts"}, "area",
 * "bbox", "iscrowd"}], "categories" (the thing categories)}. With p->results: a results list
 * [{"image_id", "category_id", "segmentation", "score": 1.0}] of the non-crowd thing segments;
 * without "bbox", so that loadRes takes areas from the masks. Written atomically. */
enum iseg_status iseg_panoptic_convert_to_instances(const struct iseg_panoptic_convert_params *p,
                                                    const char *pan_json, const char *pan_dir,
                                                    const char *out_json, char *err,
                                                    size_t errlen);

#ifdef __cplusplus
}
#endif

#endif /* ISEG_PANOPTIC_FUSE_H */
