/*
 * dataset.h - the training data pipeline: a COCO-format instance segmentation dataset with a
 * bad-data report, and a background loader that decodes and augments the next batch while the
 * current one trains (double buffering, as darknet's load_thread).
 *
 *   char err[512];
 *   iseg_dataset_t ds;
 *   struct iseg_dataset_params dp = iseg_dataset_default_params();
 *   if (iseg_dataset_open(&ds, "nuclei/train.json", "nuclei/train", &dp, err, sizeof(err))) {
 *       fprintf(stderr, "%s\n", err);   // "train.json: annotations[17] (id 23): category_id 99
 *       return 1;                       //  is not in categories"
 *   }
 *   char rep[4096];
 *   iseg_dataset_report_format(iseg_dataset_report(ds), rep, sizeof(rep));
 *   fputs(rep, stderr);                 // counts of dropped annotations, skipped images, examples
 *
 *   iseg_loader_t ld;
 *   struct iseg_loader_params lp = iseg_loader_default_params();
 *   lp.batch_size = 4; lp.seed = 42; lp.n_threads = 4;
 *   if (iseg_loader_init(&ld, ds, &lp, err, sizeof(err))) { ... }
 *   for (int step = 0; step < n_steps; step++) {
 *       const struct iseg_batch *b;
 *       if (iseg_loader_next(ld, &b, err, sizeof(err))) {    // blocks until the batch is ready
 *           fprintf(stderr, "%s\n", err);  // e.g. "x.png: decoded size 320x256 differs ..."
 *           break;
 *       }
 *       train_step(b->samples, b->n);   // batch k+1 is being prepared meanwhile
 *   }
 *   iseg_loader_free(ld);               // fine mid-epoch
 *   iseg_dataset_free(ds);
 *
 * Labels: category ids are mapped to contiguous labels 1..K in increasing id order (0 is the
 * background); iseg_dataset_category_id() maps back.
 *
 * Samples (iseg_dataset_load): the image decoded to 8-bit RGB (PNG or JPEG; gray, gray+alpha,
 * RGBA and 16-bit converted as iseg_image_to_rgb8 does) and one instance per kept annotation,
 * in file order, with its mask as an RLE at the image size and its box [x1, y1, x2, y2] the
 * *tight box of the mask* (iseg_rle_to_bbox: x2 = x + w), never the JSON "bbox": so box and
 * mask agree exactly, also after augmentation (flips map tight boxes to tight boxes; after a
 * resize the box is the scaled tight box, as torchvision scales its boxes).
 *
 * Crowd regions ("iscrowd" or "ignore" truthy) are not instances: they are validated as far as
 * the parser does, counted (ISEG_DATA_CROWD) and otherwise skipped, as torchvision's detection
 * reference drops them from training targets.
 *
 * Validation policy:
 * - Structural errors fail iseg_dataset_open with one message naming the file and the element:
 *   unreadable or malformed JSON (the evaluator's parser: "<file>:<line>:<col>: ..."), an
 *   annotation without image_id or category_id, an image_id not in "images", a category_id
 *   not in "categories" ("annotations[17] (id 23): category_id 99 is not in categories"),
 *   repeated image or category ids, an image without "file_name" or with a zero or too large
 *   width/height, and (unless skip_missing_images) image files missing on disk (the first is
 *   named, with the total count). EFORMAT, EIO (JSON unreadable; missing images) or ENOMEM.
 * - Per-annotation data problems drop the annotation and are counted in the report, each
 *   annotation under its first problem, with the first few as examples: no segmentation,
 *   a polygon ring with fewer than 3 points or an odd number of coordinates (or coordinates
 *   beyond the rasteriser's range), an RLE whose counts or string are invalid, an RLE whose
 *   size differs from the image's, an empty mask (zero area, e.g. a polygon outside the
 *   image), and a JSON "bbox" (when present) with w or h below 1 px or outside the image.
 * - Images: missing files are skipped and counted with skip_missing_images; images left with no
 *   instance are skipped (skip_empty_images, default true, as torchvision's reference does for
 *   training) or kept. A decoded size that differs from the JSON's width/height is found when
 *   the image is loaded: iseg_dataset_load returns ESHAPE naming the file.
 *
 * Order: the dataset's images are the kept ones sorted by increasing image id (torchvision's
 * CocoDetection order), indexed 0 .. iseg_dataset_size() - 1.
 *
 * Thread-safety: a dataset is immutable after iseg_dataset_open; every getter and
 * iseg_dataset_load may be called from any number of threads at once. A loader handle is not
 * thread-safe: use it from one thread (its own background threads are internal).
 */
#ifndef ISEG_DATASET_H
#define ISEG_DATASET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "augment.h"
#include "iseg.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct iseg_dataset *iseg_dataset_t;
typedef struct iseg_loader  *iseg_loader_t;

/* ---- dataset ---- */

struct iseg_dataset_params {
    bool skip_missing_images; /* default false: a listed image missing on disk fails open */
    bool skip_empty_images;   /* default true: images with no instance left are skipped */
    bool check_files;         /* default true: stat every image file at open */
    int  n_threads;           /* mask conversion at open; 0 (default): every CPU */
};

/* The defaults above. */
struct iseg_dataset_params iseg_dataset_default_params(void);

/* Kinds of bad data that are dropped or skipped and counted (never errors). */
enum iseg_data_issue {
    ISEG_DATA_MISSING_IMAGE = 0, /* image file not on disk (skip_missing_images) */
    ISEG_DATA_EMPTY_IMAGE,       /* image without instances, skipped (skip_empty_images) */
    ISEG_DATA_CROWD,             /* crowd/ignore annotation: not an instance */
    ISEG_DATA_NO_SEGMENTATION,   /* no "segmentation", or an empty polygon list */
    ISEG_DATA_BAD_POLYGON,       /* ring with < 3 points, odd coordinate count, huge values */
    ISEG_DATA_BAD_RLE,           /* counts not summing to h*w, invalid string */
    ISEG_DATA_RLE_SIZE,          /* RLE "size" differs from the image's height, width */
    ISEG_DATA_EMPTY_MASK,        /* zero-area mask */
    ISEG_DATA_DEGENERATE_BOX,    /* JSON bbox with w < 1 or h < 1 */
    ISEG_DATA_BOX_OUTSIDE,       /* JSON bbox not intersecting the image */
    ISEG_DATA_COUNT
};

/* Short static name of an issue ("missing_image", ...); "?" when out of range. */
const char *iseg_data_issue_name(enum iseg_data_issue k);

#define ISEG_DATASET_N_EXAMPLES 3   /* examples kept per issue */
#define ISEG_DATASET_EXAMPLE_LEN 200

struct iseg_dataset_report {
    size_t n_images_json;      /* entries of "images" */
    size_t n_annotations_json; /* entries of "annotations" */
    size_t n_categories;       /* K */
    size_t n_images;           /* images kept: iseg_dataset_size() */
    size_t n_instances;        /* instances over the kept images */
    size_t count[ISEG_DATA_COUNT];
    /* the first examples of each issue in file order, e.g.
     * "annotations[4] (id 5, image 2): polygon ring 0 has 2 points" */
    char example[ISEG_DATA_COUNT][ISEG_DATASET_N_EXAMPLES][ISEG_DATASET_EXAMPLE_LEN];
};

/* Read the COCO instances JSON at json_path (a file, read twice: "-" is EINVAL); image files
 * are images_dir/file_name (file_name as is when absolute; images_dir NULL or "": relative to
 * the working directory). Validates as
 * the top of this file says. On success *ds is a new handle (free with iseg_dataset_free());
 * on error *ds is NULL and err (may be NULL when errlen is 0) holds one line.
 * EINVAL for bad params; EIO; EFORMAT; ELIMIT; ENOMEM. */
enum iseg_status iseg_dataset_open(iseg_dataset_t *ds, const char *json_path,
                                   const char *images_dir,
                                   const struct iseg_dataset_params *params, char *err,
                                   size_t errlen);

/* As iseg_dataset_open(), from the len bytes of JSON at json (not retained); name is used in
 * messages in place of the path. */
enum iseg_status iseg_dataset_open_mem(iseg_dataset_t *ds, const char *name, const char *json,
                                       size_t len, const char *images_dir,
                                       const struct iseg_dataset_params *params, char *err,
                                       size_t errlen);

/* Release everything. NULL is fine. No loader may still use the dataset. */
void iseg_dataset_free(iseg_dataset_t ds);

/* What was dropped and skipped at open; owned by the dataset. */
const struct iseg_dataset_report *iseg_dataset_report(iseg_dataset_t ds);

/* Format the report as a few lines of text into buf (always NUL-terminated when n > 0).
 * Returns the length the full text needs, as snprintf. */
size_t iseg_dataset_report_format(const struct iseg_dataset_report *r, char *buf, size_t n);

/* Number of images (kept ones). */
size_t iseg_dataset_size(iseg_dataset_t ds);
/* K, the number of categories; labels are 1..K. */
size_t iseg_dataset_num_classes(iseg_dataset_t ds);
/* COCO category id of label 1..K (ISEG_ASSERT otherwise). */
int64_t iseg_dataset_category_id(iseg_dataset_t ds, size_t label);
/* Name of label 1..K ("" when the JSON has none); owned by the dataset. Label 0 gives
 * "background". */
const char *iseg_dataset_class_name(iseg_dataset_t ds, size_t label);
/* Image id, file name (as in the JSON; owned by the dataset), JSON width and height, and the
 * number of instances of image i < iseg_dataset_size(). */
int64_t     iseg_dataset_image_id(iseg_dataset_t ds, size_t i);
const char *iseg_dataset_file_name(iseg_dataset_t ds, size_t i);
uint32_t    iseg_dataset_image_width(iseg_dataset_t ds, size_t i);
uint32_t    iseg_dataset_image_height(iseg_dataset_t ds, size_t i);
size_t      iseg_dataset_num_instances(iseg_dataset_t ds, size_t i);

/* Read and decode image i and build its sample in *out (zeroed or freed; free with
 * iseg_sample_free()): RGB8 image, instances in file order with label, RLE mask and tight box.
 * EIO (unreadable file), EFORMAT (not a valid PNG/JPEG), ELIMIT, ESHAPE (decoded size differs
 * from the JSON's), ENOMEM; err holds "<path>: <what>". On error *out is zeroed. Thread-safe. */
enum iseg_status iseg_dataset_load(iseg_dataset_t ds, size_t i, struct iseg_sample *out,
                                   char *err, size_t errlen);

/* ---- loader ---- */

struct iseg_loader_params {
    size_t   batch_size;         /* default 2 */
    bool     shuffle;            /* default true: epoch e is a permutation seeded by seed ^ e */
    bool     drop_last;          /* default false: the last batch of an epoch may be smaller */
    uint64_t seed;               /* default 0 */
    int      n_threads;          /* decode threads; 0: every CPU; default 1 */
    uint64_t start_batch;        /* first batch handed out, counted over epochs
                                    (epoch * batches per epoch + step): resumes a run with
                                    the very batches it would have seen; default 0 */
    /* augmentation, applied in this order to each sample */
    double   hflip_p;            /* default 0.5 */
    double   vflip_p;            /* default 0 */
    double   scale_min, scale_max; /* scale jitter when not both 1; default 1, 1 (off) */
    struct iseg_erase_params erase; /* iseg_erase_default_params() with p = 0 (off) */
    struct iseg_strip_params strip; /* iseg_strip_default_params() with p = 0 (off) */
};

/* The defaults above. */
struct iseg_loader_params iseg_loader_default_params(void);

/* One batch; owned by the loader, valid until the next iseg_loader_next or iseg_loader_free.
 * The caller may modify the samples (they are released by the loader). */
struct iseg_batch {
    struct iseg_sample *samples;  /* (n) */
    size_t             *index;    /* (n) dataset index of each sample */
    size_t              n;        /* batch_size, or fewer for an epoch's last batch */
    uint64_t            epoch;    /* 0-based */
    size_t              step;     /* batch index within the epoch */
};

/* Start a loader over ds (which must outlive it) and its background thread, which begins to
 * prepare the first batch at once. Batches never span epochs; epochs follow one another
 * without end. Sample j of epoch e is augmented with a PRNG seeded from (seed, e, dataset
 * index), so the batches are the same for any timing and thread count.
 * EINVAL for bad params or a dataset with no image (or fewer than batch_size with
 * drop_last), with a message; ENOMEM; EINTERNAL if a thread cannot be started. */
enum iseg_status iseg_loader_init(iseg_loader_t *ld, iseg_dataset_t ds,
                                  const struct iseg_loader_params *params, char *err,
                                  size_t errlen);

/* Release the batch returned last, wait for the next one and return it in *batch. If a sample
 * of that batch failed to load or augment, returns its status (and the message in err) and
 * *batch is NULL; that batch is skipped and the next call returns the following one. */
enum iseg_status iseg_loader_next(iseg_loader_t ld, const struct iseg_batch **batch, char *err,
                                  size_t errlen);

/* Epoch of the batch returned last (0 before the first). */
uint64_t iseg_loader_epoch(iseg_loader_t ld);
/* Batches per epoch. */
size_t iseg_loader_num_batches(iseg_loader_t ld);

/* Stop the background thread (waiting at most for the samples being decoded), release every
 * batch. NULL is fine. */
void iseg_loader_free(iseg_loader_t ld);

#ifdef __cplusplus
}
#endif

#endif /* ISEG_DATASET_H */
