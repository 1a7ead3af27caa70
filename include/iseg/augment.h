/*
 * augment.h - data augmentation for instance segmentation samples (image + boxes + RLE masks +
 * labels), driven by a small seeded PRNG so that every run is reproducible.
 *
 *   struct iseg_rng rng;
 *   iseg_rng_seed(&rng, 42);
 *   struct iseg_sample s = {0};
 *   if (iseg_sample_alloc(&s, 640, 480, 2) != ISEG_STATUS_OK) return 1;   // black RGB, 2 instances
 *   ... fill s.image.data, then for each i: s.inst[i].label, s.inst[i].box and
 *       iseg_rle_encode(&s.inst[i].mask, bitmap, 480, 640) ...
 *   if (iseg_rng_uniform(&rng) < 0.5) iseg_augment_hflip(&s);             // RandomHorizontalFlip
 *   iseg_augment_scale_jitter(&s, &rng, 0.8, 1.25);
 *   struct iseg_erase_params ep = iseg_erase_default_params();           // RandomErasing(p=0.5)
 *   iseg_augment_random_erase(&s, &rng, &ep, NULL);
 *   iseg_sample_free(&s);
 *
 * The sample: an 8-bit RGB image (c = 3, depth = 8; anything else is EINVAL) and n instances,
 * each with a box (x1, y1, x2, y2) in pixel coordinates (torchvision's convention: x2 = x1 + w
 * for a mask whose pixels span columns x1 .. x1 + w - 1), an RLE mask of the image's size
 * (ESHAPE otherwise; counts that do not sum to h*w are EFORMAT) and a label.
 *
 * Policies:
 * - Boxes are transformed exactly (flips: x1' = W - x2, x2' = W - x1, as torchvision; resize:
 *   multiplied by new/old size per axis, in float, as torchvision's resize_boxes), never
 *   recomputed from the masks, except when an occluder is subtracted from the masks
 *   (subtract_from_masks), where the box of a changed mask becomes its tight box
 *   [x, y, x + w, y + h] from iseg_rle_to_bbox().
 * - Occluders (random erasing, strips) change the pixels only: by default the masks keep the
 *   whole object, because a pole in front of a person does not change what the person is
 *   (amodal masks). With subtract_from_masks the occluded pixels are removed from every mask.
 * - Any operation that changes masks (resize, subtraction) then drops every instance whose mask
 *   became empty (its mask is freed; the others keep their order, n shrinks).
 * - On error the sample is unchanged (new masks are built before any old one is released).
 *
 * Ownership: an iseg_sample owns its image, its instance array and every mask (all allocated by
 * the library); release everything with iseg_sample_free(). Reentrant; an iseg_rng is not
 * thread-safe (use one per thread).
 */
#ifndef ISEG_AUGMENT_H
#define ISEG_AUGMENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "image.h"
#include "iseg.h"
#include "mask.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- PRNG: xoshiro256** seeded through splitmix64 ---- */
struct iseg_rng {
    uint64_t s[4];
};
/* Seed the generator (any seed, including 0, gives a valid state). */
void iseg_rng_seed(struct iseg_rng *r, uint64_t seed);
/* Next 64 random bits. */
uint64_t iseg_rng_next(struct iseg_rng *r);
/* Uniform double in [0, 1) with 53 random bits. */
double iseg_rng_uniform(struct iseg_rng *r);
/* Uniform integer in [0, n), unbiased; n must be >= 1. */
uint32_t iseg_rng_below(struct iseg_rng *r, uint32_t n);

/* ---- samples ---- */
struct iseg_instance {
    float           box[4]; /* x1, y1, x2, y2 */
    struct iseg_rle mask;   /* h x w of the image, owned by the sample */
    int64_t         label;
};

struct iseg_sample {
    struct iseg_image     image; /* 8-bit RGB */
    struct iseg_instance *inst;  /* (n), owned */
    size_t                n;
};

/* Allocate a black w x h RGB image and n zeroed instances (empty masks with h = w = 0: fill
 * them before augmenting). EINVAL/ELIMIT as iseg_image_alloc; ENOMEM. Free with
 * iseg_sample_free(). On error *s is zeroed. */
enum iseg_status iseg_sample_alloc(struct iseg_sample *s, uint32_t w, uint32_t h, size_t n);
/* Release the image, every mask and the instance array; zero *s. NULL is fine. */
void iseg_sample_free(struct iseg_sample *s);
/* Check the sample's contract (see the top of this file): EINVAL, ESHAPE or EFORMAT. */
enum iseg_status iseg_sample_validate(const struct iseg_sample *s);

/* ---- geometric ---- */
/* Mirror left-right: image, masks (in the RLE domain, without decoding) and boxes exactly.
 * Applying it twice gives back the same sample. Errors: as iseg_sample_validate; ENOMEM. */
enum iseg_status iseg_augment_hflip(struct iseg_sample *s);
/* Mirror top-bottom, as iseg_augment_hflip. */
enum iseg_status iseg_augment_vflip(struct iseg_sample *s);
/* Resize to new_w x new_h: the image bilinearly (torch F.interpolate bilinear,
 * align_corners = False, no antialias, rounded half-to-even to uint8 as torchvision does for
 * uint8 tensors), masks with torch's "nearest" (src = floor(dst * in / out)) on the decoded
 * bitmap, then re-encoded; boxes scaled by new/old per axis. Instances whose mask vanishes are
 * dropped. EINVAL for a zero size; errors of iseg_sample_validate; ELIMIT; ENOMEM. */
enum iseg_status iseg_augment_resize(struct iseg_sample *s, uint32_t new_w, uint32_t new_h);
/* Scale jitter: r uniform in [min_scale, max_scale), new size (int)(w * r) x (int)(h * r)
 * (at least 1), as torchvision's reference ScaleJitter truncates; then iseg_augment_resize.
 * EINVAL unless 0 < min_scale <= max_scale. */
enum iseg_status iseg_augment_scale_jitter(struct iseg_sample *s, struct iseg_rng *rng,
                                           double min_scale, double max_scale);

/* Crop to the cw x ch window at (x0, y0) (inside the image; EINVAL otherwise): image, masks
 * (decoded column by column, re-encoded), boxes shifted and clipped; the box of a mask the
 * window cuts becomes its tight box. Instances left without pixels are dropped. ENOMEM. */
enum iseg_status iseg_augment_crop(struct iseg_sample *s, uint32_t x0, uint32_t y0, uint32_t cw,
                                   uint32_t ch);
/* RandomCrop: a window of min(w, max_w) x min(h, max_h) at a uniform position (two draws
 * always); nothing changes when the image fits. EINVAL for a zero size. */
enum iseg_status iseg_augment_random_crop(struct iseg_sample *s, struct iseg_rng *rng,
                                          uint32_t max_w, uint32_t max_h);

/* ---- occlusion ---- */
enum iseg_fill {
    ISEG_FILL_VALUE  = 0, /* the constant colour `value` */
    ISEG_FILL_RANDOM = 1, /* an independent uniform byte per pixel and channel */
};

/* torchvision.transforms.RandomErasing semantics on the uint8 image. */
struct iseg_erase_params {
    double         p;                    /* probability of erasing, default 0.5 */
    double         scale_min, scale_max; /* erased area / image area, default 0.02, 0.33 */
    double         ratio_min, ratio_max; /* aspect h / w, log-uniform, default 0.3, 3.3 */
    enum iseg_fill fill;                 /* default ISEG_FILL_VALUE */
    uint8_t        value[3];             /* default 0, 0, 0 */
    int            max_attempts;         /* default 10, as torchvision */
    bool           subtract_from_masks;  /* default false: masks unchanged */
};
/* The defaults above. */
struct iseg_erase_params iseg_erase_default_params(void);
/* With probability p, try up to max_attempts times: area = H W U(scale), aspect = exp(U(log
 * ratio)), h = round(sqrt(area aspect)), w = round(sqrt(area / aspect)) (half to even, as
 * Python's round), accepted when h < H and w < W; then top-left (x, y) uniform over the valid
 * positions, and the rectangle is filled. region (may be NULL) receives x, y, w, h of the
 * erased rectangle, all 0 when nothing was erased. EINVAL for bad parameters; ENOMEM. */
enum iseg_status iseg_augment_random_erase(struct iseg_sample *s, struct iseg_rng *rng,
                                           const struct iseg_erase_params *p,
                                           uint32_t region[4]);

enum iseg_strip_orient {
    ISEG_STRIP_HORIZONTAL = 0, /* rows: railings */
    ISEG_STRIP_VERTICAL   = 1, /* columns: poles */
    ISEG_STRIP_RANDOM     = 2, /* one of the two, chosen per call with probability 1/2 */
};

/* Thin full-length bars across the image, mimicking poles and railings. */
struct iseg_strip_params {
    double                 p;                    /* probability of applying, default 0.5 */
    uint32_t               n_min, n_max;         /* number of bars, uniform, default 1..3 */
    uint32_t               width_min, width_max; /* bar thickness in pixels, default 2..8 */
    enum iseg_strip_orient orient;               /* default ISEG_STRIP_RANDOM */
    enum iseg_fill         fill;                 /* default ISEG_FILL_VALUE */
    uint8_t                value[3];             /* default 128, 128, 128 */
    bool                   subtract_from_masks;  /* default false: masks unchanged */
};
/* The defaults above. */
struct iseg_strip_params iseg_strip_default_params(void);
/* With probability p, paint k bars (k uniform in [n_min, n_max]), each of thickness uniform in
 * [width_min, width_max] (clipped to the image) at a uniform offset where it fits. Bars may
 * overlap. EINVAL for bad parameters (n_min > n_max, width_min 0 or > width_max); ENOMEM. */
enum iseg_status iseg_augment_strip_occlusion(struct iseg_sample *s, struct iseg_rng *rng,
                                              const struct iseg_strip_params *p);

#ifdef __cplusplus
}
#endif

#endif /* ISEG_AUGMENT_H */
