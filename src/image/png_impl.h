/* png_impl.h - internals of png.c shared with its tests, fuzz target and benchmark; never
 * installed. */
#ifndef ISEG_PNG_IMPL_H
#define ISEG_PNG_IMPL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* When true, the PNG reader skips its own fast decoder (libdeflate + our unfiltering) and
 * always decodes through libspng. For differential tests and benchmarks only: set it before
 * any decoding starts, never while other threads decode. */
extern bool iseg__png_force_slow;

/* Images the fast decoder has produced on this thread, so tests can tell which path ran. */
extern _Thread_local unsigned long iseg__png_n_fast;

/* Undo one row's filter (0..4): src holds the n filtered bytes, prev the row above already
 * unfiltered (NULL on the first row), bpp the bytes per pixel (1, 2, 3, 4, 6 or 8). simd caps
 * the vector kernels (png_unfilter.c) that may run where the CPU has them: ISEG__PNG_SIMD_ALL
 * for the decoder, 1 for SSSE3 only, 0 for the portable code (tests). The bytes are the same
 * either way. */
#define ISEG__PNG_SIMD_ALL 2
void iseg__png_unfilter_row(uint8_t *restrict dst, const uint8_t *restrict src,
                            const uint8_t *restrict prev, size_t n, size_t bpp, int filter,
                            int simd);

/* Row-by-row reading of the 8-bit PNGs the fast decoder takes, for callers that use each row
 * once (the panoptic evaluator): the image data is inflated whole, then each row is unfiltered
 * into a two-row buffer, so no image-sized pixel buffer is written. Zero-initialise; buffers
 * are kept from one open to the next (one reader per thread). */
struct libdeflate_decompressor;
struct iseg__png_rows {
    uint32_t w, h, c; /* after a successful open: size and channels (1..4, 8-bit samples) */
    /* private */
    size_t                          rowbytes, raw_cap, idat_cap, row_cap;
    uint32_t                        y; /* next row */
    uint8_t                        *raw, *idat, *rows;
    struct libdeflate_decompressor *dec;
};

/* Take the PNG file in buf (n bytes) for reading with the default limits. False when the fast
 * decoder does not take it whole (16-bit, palette, interlaced, an unusual chunk, corrupt data,
 * no memory, iseg__png_force_slow, ...): iseg_png_read and friends then decode it through
 * libspng, which also gives any error. */
bool iseg__png_rows_open(struct iseg__png_rows *r, const void *buf, size_t n);
/* The next row (w * c bytes, valid until the next call); only h calls per open. */
const uint8_t *iseg__png_rows_next(struct iseg__png_rows *r);
void           iseg__png_rows_free(struct iseg__png_rows *r);

#endif /* ISEG_PNG_IMPL_H */
