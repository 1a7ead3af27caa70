/*
 * plot.h - a tiny raster line plotter for precision-recall curves and similar charts.
 *
 *   double recall[]    = {0.0, 0.5, 0.8, 1.0};
 *   double precision[] = {1.0, 0.9, 0.6, 0.0};
 *   struct iseg_plot_series s = {.label = "bbox AP 0.62", .x = recall, .y = precision, .n = 4};
 *   iseg_plot_default_palette(0, s.rgb);
 *   struct iseg_plot_params p = iseg_plot_default_params();
 *   p.title  = "Precision-recall (IoU 0.50)";
 *   p.xlabel = "recall";
 *   p.ylabel = "precision";
 *   char err[256];
 *   if (iseg_plot_lines_png("pr.png", &s, 1, &p, err, sizeof(err)) != ISEG_STATUS_OK)
 *       fprintf(stderr, "%s\n", err);
 *
 * The picture: white background, light grid and ticks at "nice" steps (0.0, 0.2, ..., 1.0 for
 * the default 0..1 axes) with labels, the title above, the axis labels below and to the left
 * (rotated), each series as a 2-pixel polyline clipped to the axes, and a legend box listing the
 * labelled series, placed in the corner of the axes that covers the fewest curve pixels.
 * Text uses a built-in 5x7 bitmap font covering printable ASCII; any other character (a UTF-8
 * sequence counts as one) is drawn as a box. Text that does not fit is cut at the border.
 * Output depends only on the inputs (no locale, no clock): the same call gives the same bytes.
 *
 * Points with a NaN or infinite coordinate are skipped and break the line; values outside the
 * axes are clipped. Thread-safety: all functions are reentrant.
 */
#ifndef ISEG_PLOT_H
#define ISEG_PLOT_H

#include <stddef.h>
#include <stdint.h>

#include "image.h"
#include "iseg.h"

#ifdef __cplusplus
extern "C" {
#endif

struct iseg_plot_series {
    const char   *label;  /* legend text; NULL: the series is not listed in the legend */
    const double *x, *y;  /* (n) data coordinates, borrowed for the duration of the call */
    size_t        n;      /* number of points; 1 draws a dot, 0 nothing */
    uint8_t       rgb[3]; /* line colour */
};

struct iseg_plot_params {
    int         width, height;          /* image size in pixels */
    const char *title, *xlabel, *ylabel; /* NULL or "" for none */
    double      xmin, xmax, ymin, ymax; /* axis ranges, see iseg_plot_lines() */
};

/* 640 x 480, no title or labels, both axes 0..1. */
struct iseg_plot_params iseg_plot_default_params(void);

/* Colour i of a built-in palette of 12 distinct colours that read well on white; i wraps. */
void iseg_plot_default_palette(size_t i, uint8_t rgb[3]);

/* Draw n_series line series into a newly allocated RGB 8-bit image of p->width x p->height
 * (out must be zeroed or freed; free with iseg_image_free()). p may be NULL for the defaults.
 * EINVAL for an axis range that is not finite, not increasing, or narrower than 1e-9 (absolute,
 * or relative to its largest value), or for an image too small to hold the axes (width below 120
 * or height below 100 always is); ELIMIT above 16384 pixels either way; ENOMEM.
 * On error *out is zeroed. */
enum iseg_status iseg_plot_lines(struct iseg_image *out, const struct iseg_plot_series *s,
                                 size_t n_series, const struct iseg_plot_params *p);

/* iseg_plot_lines() then iseg_png_write() (atomic); err receives "<path>: ..." on failure. */
enum iseg_status iseg_plot_lines_png(const char *path, const struct iseg_plot_series *s,
                                     size_t n_series, const struct iseg_plot_params *p,
                                     char *err, size_t errlen);

#ifdef __cplusplus
}
#endif

#endif /* ISEG_PLOT_H */
