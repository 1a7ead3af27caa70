/*
 * synth.h - synthetic microscopy images of cell nuclei with exact instance masks, so that the
 * project can ship its own sample image and tiny training sets (real data lives elsewhere).
 *
 *   struct iseg_rng rng;
 *   iseg_rng_seed(&rng, 7);
 *   struct iseg_synth_params p = iseg_synth_default_params();   // 256x256, 15..40 nuclei
 *   p.style = ISEG_SYNTH_STYLE_BRIGHTFIELD;
 *   struct iseg_sample s = {0};
 *   if (iseg_synth_nuclei(&s, &p, &rng) != ISEG_STATUS_OK) return 1;
 *   ... s.image is RGB8; s.inst[i].mask, .box (tight), .label (1) for i < s.n ...
 *   iseg_synth_png_write("nuclei.png", &s.image, err, sizeof(err));
 *   iseg_sample_free(&s);
 *
 *   // or a whole COCO dataset: out/images/synth_0000.png ... and out/synth.json
 *   size_t n_nuclei;
 *   iseg_synth_dataset_write("out", 100, &p, 42, &n_nuclei, err, sizeof(err));
 *
 * The model of an image:
 * - Nuclei are irregular ellipses: mean radius uniform in [radius_min, radius_max], axis ratio
 *   uniform in [0.6, 1], random orientation, and a boundary r(phi) modulated by harmonics 2..4
 *   of small random amplitude (a smooth, wobbly outline). A fraction `cluster` of them is
 *   placed touching an earlier nucleus; the others anywhere with at least half of their
 *   radius inside the image. A candidate whose overlap with any earlier nucleus exceeds
 *   `overlap` times the smaller of the two areas is moved (up to 50 tries, then skipped).
 * - Inside: per-nucleus brightness, chromatin-like fine value noise, a denser rim, and a few
 *   spots (dark nucleoli in fluorescence, dark chromatin clumps in brightfield).
 * - Fluorescence (DAPI/Hoechst-like): dark background with a little haze, bright nuclei, the
 *   same value in all three channels. Brightfield (H&E-like): light background with a faint
 *   pink eosin texture, purple nuclei by Beer-Lambert absorption of hematoxylin.
 * - Both: uneven illumination (a linear gradient and a mild vignette), a Gaussian blur of
 *   sigma `blur` (separable), then Gaussian sensor noise of standard deviation `noise`
 *   (fraction of full scale; signal dependent in fluorescence).
 *
 * Instances are the visible pixels of each nucleus, as in a label image: where nuclei overlap
 * the later one owns the pixel. A nucleus left with fewer than ISEG_SYNTH_MIN_AREA pixels is
 * dropped. Instance i has label 1, an RLE mask of the image's size (canonical: the same counts
 * iseg_rle_encode gives) and box [x, y, x + w, y + h] from iseg_rle_to_bbox(). Masks are
 * pairwise disjoint. So between n_min and n_max nuclei come out, fewer only when skipped (a
 * crowded image) or dropped (radius_min below about 2.5 px).
 *
 * Determinism: the output depends only on the parameters and the rng state (the same bytes
 * for the same seed on a given platform and libm). There is no global state.
 *
 * Errors: EINVAL for bad parameters (see iseg_synth_params); ELIMIT for an image larger than
 * ISEG_IMAGE_MAX_PIXELS; ENOMEM; the writers add EIO with a one-line message in err (err may
 * be NULL when errlen is 0).
 *
 * Thread-safety: reentrant; an iseg_rng is not thread-safe (use one per thread).
 */
#ifndef ISEG_SYNTH_H
#define ISEG_SYNTH_H

#include <stddef.h>
#include <stdint.h>

#include "augment.h"
#include "image.h"
#include "iseg.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Smallest number of visible pixels a nucleus keeps; smaller ones are dropped. */
#define ISEG_SYNTH_MIN_AREA 10

enum iseg_synth_style {
    ISEG_SYNTH_STYLE_FLUORESCENCE = 0, /* dark background, bright grey nuclei (DAPI, Hoechst) */
    ISEG_SYNTH_STYLE_BRIGHTFIELD  = 1, /* light background, purple nuclei (H&E) */
    ISEG_SYNTH_STYLE_COUNT
};

/* "fluorescence", "brightfield"; "?" when out of range. */
const char *iseg_synth_style_name(enum iseg_synth_style s);

struct iseg_synth_params {
    uint32_t              width, height;          /* default 256 x 256; each 8 .. 16384 */
    uint32_t              n_min, n_max;           /* nuclei, uniform; default 15..40; <= 10000 */
    double                radius_min, radius_max; /* mean radius in px; default 5..14; >= 1,
                                                     radius_max <= min(width, height) / 2 */
    enum iseg_synth_style style;                  /* default ISEG_SYNTH_STYLE_FLUORESCENCE */
    double                overlap;                /* allowed overlap fraction, 0..1; default 0.05 */
    double                cluster;                /* fraction placed touching, 0..1; default 0.3 */
    double                noise;                  /* noise std, 0..1 of full scale; default 0.02 */
    double                blur;                   /* Gaussian sigma in px, 0..10; default 0.8 */
};

/* The defaults above. */
struct iseg_synth_params iseg_synth_default_params(void);

/* Check p against the ranges above: ISEG_STATUS_OK, or EINVAL with a one-line reason in err
 * ("n_min 9 > n_max 3"), or ELIMIT for width * height over ISEG_IMAGE_MAX_PIXELS. */
enum iseg_status iseg_synth_params_check(const struct iseg_synth_params *p, char *err,
                                         size_t errlen);

/* Generate one image and its instances into *out (zeroed or freed; free with
 * iseg_sample_free()), drawing from rng. EINVAL for bad params; ELIMIT; ENOMEM. On error *out
 * is zeroed (rng has advanced). */
enum iseg_status iseg_synth_nuclei(struct iseg_sample *out, const struct iseg_synth_params *p,
                                   struct iseg_rng *rng);

/* Write an 8-bit RGB image as a PNG, atomically (as iseg_png_write): as 8-bit grey when the
 * three channels are equal at every pixel (fluorescence; smaller, and read back as the same
 * RGB by iseg_dataset_load), else as RGB. EINVAL for an image that is not 8-bit RGB; EIO;
 * ENOMEM. */
enum iseg_status iseg_synth_png_write(const char *path, const struct iseg_image *img, char *err,
                                      size_t errlen);

/* Write a COCO instance segmentation dataset of count images (1 .. 10000): image i (0-based)
 * is iseg_synth_nuclei() with an rng seeded by iseg_rng_seed(&rng, seed + i), written by
 * iseg_synth_png_write() to dir/images/synth_%04d.png; then dir/synth.json, atomically, with
 * images (id i + 1, file_name "images/synth_%04d.png", width, height), one category
 * {id 1, name "nucleus"} and one annotation per instance (id from 1, category_id 1,
 * segmentation as a compressed RLE {"size": [h, w], "counts": iseg_rle_to_string()}, area,
 * bbox [x, y, w, h], iscrowd 0). Open it with iseg_dataset_open(&ds, "dir/synth.json", "dir",
 * ...). dir and dir/images are created when missing (not their parents). *n_nuclei (may be
 * NULL) receives the number of annotations. EINVAL for bad params or count; EIO; ELIMIT;
 * ENOMEM; err receives "<path>: <what>". Files written before an error are left in place. */
enum iseg_status iseg_synth_dataset_write(const char *dir, size_t count,
                                          const struct iseg_synth_params *p, uint64_t seed,
                                          size_t *n_nuclei, char *err, size_t errlen);

#ifdef __cplusplus
}
#endif

#endif /* ISEG_SYNTH_H */
