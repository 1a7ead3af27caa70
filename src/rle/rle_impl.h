/* rle_impl.h - helpers shared by the RLE sources (never installed). */
#ifndef ISEG_RLE_IMPL_H
#define ISEG_RLE_IMPL_H

#include <stdint.h>

#include "core/core_impl.h"

/* toBbox of the PyPI pycocotools (ppwwyyxx/cocoapi), fed one run at a time: zero-length
 * foreground runs are skipped, a run that spans columns widens the box to full height, and the
 * arithmetic is uint32 as in the reference, so an RLE whose foreground runs all have zero length
 * gives the reference's wrapped-around box {w, h, 2^32-w+1, 2^32-h+1}. A trailing 0-run is
 * dropped by the caller (only foreground runs are fed); an RLE with fewer than two counts has
 * the box {0, 0, 0, 0}. */
struct iseg__bbox_acc {
    uint32_t h, w, xs, ys, ye;
    uint32_t col_start; /* flat index of the first pixel of the current run's column */
    uint32_t last_end;  /* flat index of the last pixel of the last run */
    bool     any;
};

static inline void iseg__bbox_acc_init(struct iseg__bbox_acc *b, uint32_t h, uint32_t w) {
    b->h   = h;
    b->w   = w;
    b->xs  = w;
    b->ys  = h;
    b->ye        = 0;
    b->col_start = 0;
    b->last_end  = 0;
    b->any       = false;
}

/* A foreground run of len pixels starting at flat index start (len > 0), fed in increasing
 * order: the first run gives the left column and the last one the right column, so columns
 * are followed incrementally instead of dividing for every run. */
static inline void iseg__bbox_acc_run(struct iseg__bbox_acc *b, uint32_t start, uint32_t len) {
    uint32_t h = b->h;
    ISEG_ASSERT(h != 0); /* a non-empty run in an h == 0 mask: counts do not sum to h*w */
    if (!b->any) {
        b->any       = true;
        b->xs        = start / h;
        b->col_start = b->xs * h;
    } else {
        uint32_t d = start - b->col_start;
        if (d >= 8 * (uint64_t)h) b->col_start = start - d % h;
        else
            while (start - b->col_start >= h) b->col_start += h;
    }
    uint32_t y_s = start - b->col_start, y_e = y_s + (len - 1);
    if (y_e >= h) { /* the run wraps into another column */
        b->ys = 0;
        b->ye = h - 1;
    } else {
        if (y_s < b->ys) b->ys = y_s;
        if (y_e > b->ye) b->ye = y_e;
    }
    b->last_end = start + (len - 1);
}

/* m: the number of counts of the RLE */
static inline void iseg__bbox_acc_finish(const struct iseg__bbox_acc *b, size_t m, double bb[4]) {
    if (m < 2) {
        bb[0] = bb[1] = bb[2] = bb[3] = 0;
        return;
    }
    uint32_t xe = b->any ? b->last_end / b->h : 0;
    bb[0]       = (double)b->xs;
    bb[1]       = (double)b->ys;
    bb[2]       = (double)(uint32_t)(xe - b->xs + 1);
    bb[3]       = (double)(uint32_t)(b->ye - b->ys + 1);
}

/* Check a compressed RLE string for an h x w mask (exactly as iseg_rle_from_string does) and
 * compute its area and toBbox box in the same pass, without decoding it into memory. */
enum iseg_status iseg__rle_string_scan(const char *s, size_t len, uint32_t h, uint32_t w,
                                       uint64_t *area, double bb[4]);

/* maskApi's rleFrPoly written out literally (rle_poly_ref.c): the oracle for
 * iseg_rle_from_poly. Coordinates must be below 1e6 in magnitude (ELIMIT otherwise). */
struct iseg_rle;
enum iseg_status iseg__rle_from_poly_ref(struct iseg_rle *out, const double *xy, size_t k,
                                         uint32_t h, uint32_t w);

#endif /* ISEG_RLE_IMPL_H */
