/*
 * viz.h - drawing detections (masks, boxes, labels) over a photograph, for people to look at.
 *
 *   struct iseg_image photo = {0}, rgb = {0};
 *   char err[256];
 *   if (iseg_image_read("street.jpg", &photo, err, sizeof(err)) != ISEG_STATUS_OK ||
 *       iseg_image_to_rgb8(&rgb, &photo) != ISEG_STATUS_OK) { ... }
 *   struct iseg_viz_det d = {
 *       .x = 40, .y = 30, .w = 120, .h = 200,          // box, pixels
 *       .mask = &rle,                                  // rle.h == rgb.h, rle.w == rgb.w; or NULL
 *       .label = iseg_coco_category_name(1),           // "person"
 *       .score = 0.98f, .color = 0,
 *   };
 *   struct iseg_viz_params p = iseg_viz_default_params();
 *   iseg_viz_overlay(&rgb, &d, 1, &p);                 // draws in place
 *   iseg_png_write("overlay.png", &rgb, err, sizeof(err));
 *
 * What is drawn, per detection: the mask blended with the detection's colour, the mask's
 * outline in the opaque colour, the box as a rectangle inside its edges, and a tab of that
 * colour holding "label 0.98" in white, sitting on the box's top-left corner.
 * Order: detections are drawn by increasing score (ties and hidden scores keep the caller's
 * order, hidden scores first), so the most confident detection ends on top; all labels are
 * drawn after all masks and boxes, in the same order, so no mask ever covers a label.
 * Text uses the library's own 5 x 9 bitmap font (printable ASCII with descenders, 6 x 10 cells
 * at scale 1); any other character, a UTF-8 sequence counting as one, is drawn as a box.
 * Everything is clipped to the image; nothing depends on the locale.
 *
 * Images must be 8-bit RGB (c = 3, depth = 8; see iseg_image_to_rgb8()).
 * Thread-safety: all functions are reentrant; distinct images may be drawn from distinct threads.
 */
#ifndef ISEG_VIZ_H
#define ISEG_VIZ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "image.h"
#include "iseg.h"
#include "mask.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Largest outline_width and box_width, and largest text scale, iseg_viz_overlay() accepts. */
#define ISEG_VIZ_MAX_WIDTH 256
#define ISEG_VIZ_MAX_SCALE 64

/* Number of colours in the built-in palette. */
#define ISEG_VIZ_N_COLORS 20

struct iseg_viz_det {
    float                  x, y, w, h; /* box in pixels: left, top, width, height (COCO xywh) */
    const struct iseg_rle *mask;       /* or NULL; must have the image's h and w; borrowed */
    const char            *label;      /* or NULL; UTF-8; borrowed */
    float                  score;      /* shown with 2 decimals after the label; < 0: not shown */
    int                    color;      /* palette index, any int (see iseg_viz_color()) */
};

struct iseg_viz_params {
    float mask_alpha;    /* opacity of the mask fill, 0..1: out = in + alpha * (colour - in) */
    int   outline_width; /* mask outline thickness in pixels (0: none), <= ISEG_VIZ_MAX_WIDTH */
    int   box_width;     /* box line thickness in pixels (0: none), <= ISEG_VIZ_MAX_WIDTH */
    int   text_scale;    /* label pixel size multiplier; 0: from the image size (see below) */
    bool  draw_boxes;    /* draw the boxes */
    bool  draw_masks;    /* draw the masks: fill and outline */
    bool  draw_labels;   /* draw the label tabs (a detection with no label and a hidden score
                            gets no tab) */
};

/* mask_alpha 0.45, outline_width 2, box_width 2, text_scale 0 (automatic: the square root of
 * the pixel count / 640, rounded, at least 1; so 1 up to about 960 x 960, 2 for 1920 x 1080),
 * and all three draw flags true. */
struct iseg_viz_params iseg_viz_default_params(void);

/* Draw n detections into img (8-bit RGB, modified in place); p may be NULL for the defaults.
 * Mask fill, per channel: out = (in * (256 - A) + colour * A + 128) >> 8 with
 * A = round(mask_alpha * 256). Outline: the mask pixels within Euclidean distance
 * outline_width of a pixel that is not in the mask (pixels beyond the image are not in it);
 * outline_width 1 gives the pixels with a 4-neighbour outside the mask. Box: the pixels of
 * [round(x), round(x + w)) x [round(y), round(y + h)) (at least one pixel each way) within
 * box_width of its edges. Label tab: placed above the box's top-left corner, or just inside
 * the box when there is no room above; kept inside the image when it fits, clipped otherwise;
 * a box entirely outside the image gets no tab. Masks are read run by run (no bitmap); the
 * call allocates O(runs + image height + n) scratch.
 * Everything is checked before anything is drawn: EINVAL if img is not 8-bit RGB, a parameter
 * is out of range, a box has a NaN or infinite coordinate or a negative size, or a mask's h x w
 * differs from the image's; EFORMAT if a mask's counts do not sum to h * w; ENOMEM. On error
 * the image is untouched. */
enum iseg_status iseg_viz_overlay(struct iseg_image *img, const struct iseg_viz_det *dets,
                                  size_t n, const struct iseg_viz_params *p);

/* Palette colour i (wrapping; negative i fine) of ISEG_VIZ_N_COLORS distinct, saturated colours,
 * each dark enough that white text on it stays readable (contrast ratio >= 3.5). */
void iseg_viz_color(int i, uint8_t rgb[3]);

/* Draw text in colour rgb with its top-left corner at (x, y), each font pixel a scale x scale
 * square; '\n' starts a new line. Only the glyphs' pixels are drawn (no background). Clipped
 * to the image. EINVAL if img is not 8-bit RGB or scale is not 1..ISEG_VIZ_MAX_SCALE. */
enum iseg_status iseg_viz_text(struct iseg_image *img, int x, int y, const char *text, int scale,
                               const uint8_t rgb[3]);

/* Size in pixels of the ink box of text as iseg_viz_text() draws it: each character advances
 * 6 * scale, each line 10 * scale, less the trailing 1-pixel gap: a line of k characters is
 * (6k - 1) * scale wide and 9 * scale tall (descenders included). "" gives 0 x 0. */
void iseg_viz_text_size(const char *text, int scale, int *w, int *h);

/* Official COCO name of a category id ("person" for 1, ..., "toothbrush" for 90), as in the
 * COCO 2017 instances annotations; NULL for the ids COCO leaves unused (12, 26, 29, 30, 45, 66,
 * 68, 69, 71, 83) and for anything outside 1..90. Static string. */
const char *iseg_coco_category_name(int category_id);

/* torchvision's COCO label list for its detection models (the `categories` of
 * MaskRCNN_ResNet50_FPN_Weights.DEFAULT.meta): 91 static strings indexed by predicted label,
 * "__background__" at 0 and "N/A" for the unused ids. Label i equals COCO category id i.
 * *n receives 91 (n may be NULL). */
const char *const *iseg_coco_torchvision_labels(int *n);

#ifdef __cplusplus
}
#endif

#endif /* ISEG_VIZ_H */
