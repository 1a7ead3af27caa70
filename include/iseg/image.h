/*
 * image.h - in-memory raster images, PNG reading/writing and JPEG reading.
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

/* ---- JPEG reading (src/image/jpeg.c, libjpeg-turbo) ----
 *
 * Output is always 8-bit: c = 1 for grayscale files, c = 3 (RGB) for everything else. YCbCr
 * and RGB files decode as libjpeg's defaults give them (ISLOW IDCT, fancy upsampling: the same
 * pixels as PIL's Image.open().convert("RGB")); CMYK and YCCK files (Adobe-inverted or not) are
 * converted to RGB with PIL's formula, R = (255 - C) * (255 - K) / 255 rounded. Progressive and
 * arithmetic-coded files are fine; 12-bit and lossless files give EFORMAT.
 * EXIF orientation is ignored: pixels come back as stored, as torchvision's read_image() and
 * PIL's Image.open() do by default (apply ImageOps.exif_transpose on the Python side to match).
 * Damaged data: a file that ends early (truncated anywhere, even just its final EOI marker) is
 * EFORMAT "<path>: Premature end of JPEG file", never a half-grey image; other libjpeg warnings
 * ("Corrupt JPEG data: ... extraneous bytes") are ignored, as PIL and browsers do, and the
 * pixels libjpeg produces are returned. More than ISEG_JPEG_MAX_SCANS scans is EFORMAT.
 * The size limits (ELIMIT) are checked on the header, before any image memory is allocated.
 * libjpeg's own working memory comes from malloc(), not from the iseg_alloc_set() hooks. */

/* Largest number of scans accepted in one JPEG (progressive files have about 10); a bound on
 * the work a small hostile file can cause. */
#define ISEG_JPEG_MAX_SCANS 256

/* Read a JPEG file into *out (8-bit, c = 1 or 3; free with iseg_image_free()).
 * EIO if the file cannot be opened or read; EFORMAT for an empty, non-JPEG, truncated or
 * corrupt file or an unsupported kind of JPEG; ELIMIT beyond the default limits; ENOMEM.
 * err receives "<path>: <what is wrong>", e.g. "photo.jpg: Premature end of JPEG file". */
enum iseg_status iseg_jpeg_read(const char *path, struct iseg_image *out, char *err,
                                size_t errlen);

/* As iseg_jpeg_read(), from the n bytes at buf (not retained). Messages start with "<memory>". */
enum iseg_status iseg_jpeg_read_mem(const void *buf, size_t n, struct iseg_image *out,
                                    char *err, size_t errlen);

/* As iseg_jpeg_read_mem() with caller limits (NULL: the defaults; max_chunk_bytes is unused). */
enum iseg_status iseg_jpeg_read_mem_limits(const void *buf, size_t n,
                                           const struct iseg_image_limits *lim,
                                           struct iseg_image *out, char *err, size_t errlen);

/* ---- any supported format (src/image/convert.c) ---- */

/* Read a PNG or JPEG file, chosen by its content (the PNG signature or the JPEG SOI marker
 * FF D8 FF), not by its name; otherwise EFORMAT "<path>: not a PNG or JPEG file". Output and
 * errors as iseg_png_read() / iseg_jpeg_read(). */
enum iseg_status iseg_image_read(const char *path, struct iseg_image *out, char *err,
                                 size_t errlen);

/* As iseg_image_read(), from the n bytes at buf (not retained), with caller limits (NULL: the
 * defaults). Messages start with "<memory>". */
enum iseg_status iseg_image_read_mem_limits(const void *buf, size_t n,
                                            const struct iseg_image_limits *lim,
                                            struct iseg_image *out, char *err, size_t errlen);

/* Convert any valid image (gray, gray+alpha, RGB, RGBA; 8 or 16 bits) to a new 8-bit RGB image
 * in *out (zeroed or freed; free with iseg_image_free()), as PIL's convert("RGB"): gray is
 * replicated, alpha is dropped (not composited), 16-bit samples become v >> 8 (PIL does the same
 * for 16-bit gray+alpha, RGB and RGBA PNGs; for 16-bit gray PIL clamps to 255 instead, which
 * turns most such images white: we keep v >> 8 there too). An 8-bit RGB input is copied.
 * in and out must be distinct. EINVAL for an invalid image; ENOMEM. */
enum iseg_status iseg_image_to_rgb8(struct iseg_image *out, const struct iseg_image *in);

#ifdef __cplusplus
}
#endif

#endif /* ISEG_IMAGE_H */
