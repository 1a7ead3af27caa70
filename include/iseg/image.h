/*
 * image.h - in-memory raster images and PNG reading/writing.
 *
 *   struct iseg_image img = {0};
 *   char err[256];
 *   if (iseg_png_read("in.png", &img, err, sizeof(err)) != ISEG_STATUS_OK) {
 *       fprintf(stderr, "%s\n", err);         // e.g. "in.png: truncated PNG data (...)"
 *       return 1;
 *   }
 *   if (img.depth == 8 && img.c >= 3) {
 *       uint8_t *px = (uint8_t *)img.data + ((size_t)y * img.w + x) * img.c;
 *       px[0] = 255;                          // red channel of pixel (x, y)
 *   }
 *   enum iseg_status st = iseg_png_write("out.png", &img, err, sizeof(err));
 *   iseg_image_free(&img);
 *
 * Layout: pixels are stored row-major with interleaved channels; the sample of channel k of pixel
 * (x, y) is at index (y * w + x) * c + k, with no row padding. c is 1 (gray), 2 (gray + alpha),
 * 3 (RGB) or 4 (RGBA). depth is 8 (uint8_t samples) or 16 (uint16_t samples in host byte order).
 * Alpha is straight (not premultiplied).
 *
 * Ownership: an iseg_image owns `data` (allocated by the library; release it with
 * iseg_image_free()). Functions that fill an image through `out` expect a zeroed or freed struct
 * and never free what it held; on any error `out` is left zeroed.
 *
 * Errors: functions taking `err, errlen` write a one-line NUL-terminated message there on failure
 * (naming the file and what is wrong); err may be NULL when errlen is 0. Nothing is printed.
 *
 * Thread-safety: all functions are reentrant; distinct images may be used from distinct threads.
 */
#ifndef ISEG_IMAGE_H
#define ISEG_IMAGE_H

#include <stddef.h>
#include <stdint.h>

#include "iseg.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Largest w * h accepted by iseg_image_alloc() and, by default, by the PNG reader (2^28 pixels,
 * e.g. 16384 x 16384; 2 GiB as 16-bit RGBA). */
#define ISEG_IMAGE_MAX_PIXELS ((uint64_t)1 << 28)
/* Largest width or height the PNG reader accepts by default. */
#define ISEG_IMAGE_MAX_DIM ((uint32_t)1 << 20)

struct iseg_image {
    uint32_t w, h;  /* width (columns) and height (rows), both >= 1 in a valid image */
    uint32_t c;     /* channels: 1 gray, 2 gray+alpha, 3 RGB, 4 RGBA */
    uint32_t depth; /* bits per sample: 8 (uint8_t) or 16 (uint16_t, host order) */
    void    *data;  /* (h, w, c) samples, row-major, interleaved */
};

/* Allocate a w x h image of c channels and the given depth, all samples zero.
 * EINVAL if w or h is 0, c is not 1..4 or depth is not 8 or 16; ELIMIT if w * h exceeds
 * ISEG_IMAGE_MAX_PIXELS; ENOMEM. On error *img is zeroed. Free with iseg_image_free(). */
enum iseg_status iseg_image_alloc(struct iseg_image *img, uint32_t w, uint32_t h, uint32_t c,
                                  uint32_t depth);

/* Release img->data and zero *img. NULL or an already freed image is fine. */
void iseg_image_free(struct iseg_image *img);

/* Size of img->data in bytes: w * h * c * depth / 8 (0 for an empty image). */
size_t iseg_image_nbytes(const struct iseg_image *img);

/* Limits that the PNG reader enforces on hostile input (ELIMIT when exceeded). */
struct iseg_image_limits {
    uint32_t max_width;       /* widest image accepted */
    uint32_t max_height;      /* tallest image accepted */
    uint64_t max_pixels;      /* largest width * height accepted */
    size_t   max_chunk_bytes; /* largest ancillary chunk (text, ICC profile...) and their total */
};

/* ISEG_IMAGE_MAX_DIM, ISEG_IMAGE_MAX_PIXELS and 16 MiB of ancillary chunks. */
struct iseg_image_limits iseg_image_default_limits(void);

/* Read a PNG file into *out (allocated by the library; free with iseg_image_free()).
 * Supported: gray, gray+alpha, RGB and RGBA at 8 and 16 bits (16-bit stays 16-bit); gray at
 * 1, 2 and 4 bits (scaled to 8 bits, 0..255); palette images (expanded to RGB, or to RGBA when
 * the file has a tRNS chunk). A tRNS chunk on a gray or RGB image adds an alpha channel
 * (gray -> gray+alpha, RGB -> RGBA). Gamma and colour-space chunks are ignored; samples are
 * returned as stored. Interlaced (Adam7) files are de-interlaced.
 * Returns EIO if the file cannot be opened or read; EFORMAT for an empty file, a file that is
 * not a PNG, truncated or corrupt data; ELIMIT when the image exceeds the default limits;
 * ENOMEM. err receives "<path>: <what is wrong>". */
enum iseg_status iseg_png_read(const char *path, struct iseg_image *out, char *err,
                               size_t errlen);

/* As iseg_png_read(), from the n bytes at buf (not retained). Messages start with "<memory>". */
enum iseg_status iseg_png_read_mem(const void *buf, size_t n, struct iseg_image *out, char *err,
                                   size_t errlen);

/* As iseg_png_read_mem() with caller limits (NULL: the defaults). Use small limits for untrusted
 * input where a few bytes must not be able to ask for gigabytes. */
enum iseg_status iseg_png_read_mem_limits(const void *buf, size_t n,
                                          const struct iseg_image_limits *lim,
                                          struct iseg_image *out, char *err, size_t errlen);

/* Encode *img as a PNG (same channels and depth, not interlaced) into a new buffer: *buf is
 * allocated by the library (free with iseg_free()), *n receives its size.
 * EINVAL if img is not a valid image (see iseg_image_alloc()); ENOMEM. */
enum iseg_status iseg_png_write_mem(const struct iseg_image *img, void **buf, size_t *n,
                                    char *err, size_t errlen);

/* Write *img to a PNG file atomically: the data goes to "<path>.tmp.<pid>", which is then renamed
 * over path, so readers never see a partial file and on failure no file is left behind (an
 * existing file at path is untouched). path "-" writes to stdout.
 * EINVAL for an invalid image; EIO if the file cannot be written; ENOMEM. */
enum iseg_status iseg_png_write(const char *path, const struct iseg_image *img, char *err,
                                size_t errlen);

#ifdef __cplusplus
}
#endif

#endif /* ISEG_IMAGE_H */
