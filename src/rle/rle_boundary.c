/* rle_boundary.c - Boundary IoU support: dilation width and the inner boundary band of a mask,
 * with boundary-iou-api's mask_to_boundary semantics (specs/coco-eval.md section 7).
 *
 * band = mask AND NOT erode(mask, (2d+1)^2 square), everything outside the image counting as 0.
 * The square erosion is separable: a vertical erosion (per column, on runs: a run [s, e) of 1s
 * shrinks to [s+d, e-d), which also honours the top and bottom of the image because s >= 0 and
 * e <= h), then a horizontal erosion (AND of 2d+1 consecutive columns; columns outside the
 * mask's bounding box are all 0, which honours the left and right of the image). Only the
 * bounding box is touched: the vertically eroded columns go into one bitset of (bbox width) x
 * (bbox height) bits, the horizontal AND runs word-parallel with log2(2d+1) in-place doubling
 * passes, and the output RLE is emitted straight from the input runs minus the eroded runs.
 * Masks whose box is narrower or shorter than 2d+1 have an empty erosion: the band is the mask.
 */
#include <math.h>
#include <string.h>

#include "core/core_impl.h"
#include "iseg/mask.h"
#include "rle/rle_boundary_impl.h"

/* ---- dilation ---- */

/* h^2 + w^2 as the double nearest to the exact integer (Python converts its exact int once). */
static double diag_sq(uint32_t h, uint32_t w) {
    uint64_t h2 = (uint64_t)h * h, w2 = (uint64_t)w * w, s = h2 + w2;
    if (s >= h2) return (double)s;
    /* 65-bit sum: halve it, keeping the dropped bit as a sticky bit far below the 53-bit
     * rounding point, so the conversion still rounds once, to nearest. */
    uint64_t half = ((uint64_t)1 << 63) | (s >> 1) | (s & 1);
    return 2.0 * (double)half;
}

uint32_t iseg_boundary_dilation(uint32_t h, uint32_t w, double ratio) {
    if (!(ratio > 0)) return 1; /* NaN, negative, zero */
    /* ref: boundary-iou-api mask_to_boundary: int(round(dilation_ratio * img_diag)), where
     * round is half-to-even; C's round() would turn 12.5 (500x375) into 13. */
    double x = ratio * sqrt(diag_sq(h, w));
    if (x != x) return 1; /* inf * 0 (an empty image) */
    if (!(x < 4294967295.0)) return UINT32_MAX;
    double   f    = floor(x);
    double   frac = x - f; /* exact */
    uint64_t v    = (uint64_t)f;
    if (frac > 0.5 || (frac == 0.5 && (v & 1))) v++;
    if (v > UINT32_MAX) return UINT32_MAX;
    return v < 1 ? 1 : (uint32_t)v;
}

/* ---- walking the input ---- */

/* Maximal runs of 1s as linear ranges [a, b) (index x*h + y), clamped to n = h*w so that
 * counts that overshoot can never take us outside the image. Zero-length runs are skipped and
 * runs of 1s separated only by a zero-length run of 0s are joined: the vertical erosion needs
 * maximal runs. */
struct ones_iter {
    const uint32_t *cnts;
    size_t          m, i;
    uint64_t        pos, n;
};

static inline bool ones_next(struct ones_iter *it, uint64_t *a, uint64_t *b) {
    /* locals: the stores through a and b could otherwise alias it->pos */
    const uint32_t *cnts = it->cnts;
    size_t          i = it->i, m = it->m;
    uint64_t        pos = it->pos, n = it->n;
    for (; i + 1 < m && pos < n; i += 2) { /* i: a run of 0s, i + 1: a run of 1s */
        uint64_t s = pos + cnts[i], e = s + cnts[i + 1];
        pos        = e;
        if (e == s) continue;
        for (i += 2; i + 1 < m && cnts[i] == 0; i += 2) e += cnts[i + 1];
        if (s >= n) break;
        it->i   = i;
        it->pos = e;
        *a      = s;
        *b      = e < n ? e : n;
        return true;
    }
    it->i   = m;
    it->pos = n;
    return false;
}

static struct ones_iter ones_begin(const struct iseg_rle *r) {
    struct ones_iter it = {r->cnts, r->m, 0, 0, (uint64_t)r->h * r->w};
    return it;
}

/* The same runs cut at column ends: column x, rows [s, e). The column is tracked by stepping,
 * not dividing, as most runs start in the same column as the previous one or the next. */
struct piece_iter {
    struct ones_iter runs;
    uint64_t         a, b;    /* rest of the current run */
    uint64_t         base, h; /* base = x * h */
    uint32_t         x;
};

static inline bool piece_next(struct piece_iter *it, uint32_t *x, uint32_t *s, uint32_t *e) {
    if (it->a >= it->b && !ones_next(&it->runs, &it->a, &it->b)) return false;
    uint64_t a = it->a, base = it->base, h = it->h;
    if (a - base >= h) {
        if (a - base < 4 * h) {
            do {
                base += h;
                it->x++;
            } while (a - base >= h);
        } else {
            it->x = (uint32_t)(a / h);
            base  = (uint64_t)it->x * h;
        }
        it->base = base;
    }
    uint64_t end = base + h < it->b ? base + h : it->b;
    *x           = it->x;
    *s           = (uint32_t)(a - base);
    *e           = (uint32_t)(end - base);
    it->a        = end;
    return true;
}

static struct piece_iter pieces_begin(const struct iseg_rle *r) {
    struct piece_iter it = {ones_begin(r), 0, 0, 0, r->h, 0};
    return it;
}

/* Bounding box of the 1s (inclusive) and the number of column pieces. */
struct fg_box {
    uint32_t x0, x1, y0, y1;
    size_t   n_piece;
};

static struct fg_box fg_box_of(const struct iseg_rle *r) {
    struct fg_box     bb = {UINT32_MAX, 0, UINT32_MAX, 0, 0};
    struct piece_iter it = pieces_begin(r);
    uint32_t          x, s, e;
    while (piece_next(&it, &x, &s, &e)) {
        if (bb.n_piece++ == 0) bb.x0 = x;
        bb.x1 = x;
        if (s < bb.y0) bb.y0 = s;
        if (e - 1 > bb.y1) bb.y1 = e - 1;
    }
    return bb;
}

/* ---- bitset columns ---- */

static void bits_set(uint64_t *col, uint32_t a, uint32_t b) { /* [a, b), a < b */
    uint32_t wa = a >> 6, wb = (b - 1) >> 6;
    uint64_t ma = ~(uint64_t)0 << (a & 63), mb = ~(uint64_t)0 >> (63 - ((b - 1) & 63));
    if (wa == wb) {
        col[wa] |= ma & mb;
        return;
    }
    col[wa] |= ma;
    for (uint32_t i = wa + 1; i < wb; i++) col[i] = ~(uint64_t)0;
    col[wb] |= mb;
}

/* First set (want = 1) or clear (want = 0) bit in [pos, hi), or hi. */
static uint32_t bits_next(const uint64_t *col, uint32_t pos, uint32_t hi, int want) {
    uint64_t flip = want ? 0 : ~(uint64_t)0;
    while (pos < hi) {
        uint64_t v = (col[pos >> 6] ^ flip) >> (pos & 63);
        if (v) {
            pos += (uint32_t)__builtin_ctzll(v);
            return pos < hi ? pos : hi;
        }
        pos = (pos | 63) + 1;
    }
    return hi;
}

/* ---- output ---- */

/* Appends runs of 1s in increasing order, merging touching ones, so the result is canonical. */
struct emitter {
    uint32_t *cnts;
    size_t    m, cap;
    uint64_t  end; /* end of the last run of 1s */
};

static void emit_ones(struct emitter *o, uint64_t a, uint64_t b) {
    if (a >= b) return;
    if (o->m > 0 && a == o->end) {
        o->cnts[o->m - 1] += (uint32_t)(b - a);
    } else {
        ISEG_ASSERT(o->m + 2 <= o->cap); /* the capacity bound is a proof, not a guess */
        o->cnts[o->m++] = (uint32_t)(a - o->end);
        o->cnts[o->m++] = (uint32_t)(b - a);
    }
    o->end = b;
}

static void emit_finish(struct emitter *o, struct iseg_rle *out, const struct iseg_rle *r) {
    uint64_t n = (uint64_t)r->h * r->w;
    if (o->m == 0 || o->end < n) {
        ISEG_ASSERT(o->m < o->cap);
        o->cnts[o->m++] = (uint32_t)(n - o->end);
    }
    out->h    = r->h;
    out->w    = r->w;
    out->m    = o->m;
    out->cnts = o->cnts;
}

static enum iseg_status emit_begin(struct emitter *o, size_t cap) {
    o->cnts = iseg__malloc_array(cap, sizeof(*o->cnts));
    o->m    = 0;
    o->cap  = cap;
    o->end  = 0;
    return o->cnts ? ISEG_STATUS_OK : ISEG_STATUS_ENOMEM;
}

/* ---- the band ---- */

enum iseg_status iseg_rle_boundary(struct iseg_rle *out, const struct iseg_rle *r, uint32_t d) {
    ISEG_ASSERT(out && r && (r->cnts || r->m == 0));
    memset(out, 0, sizeof(*out));
    if ((uint64_t)r->h * r->w > ISEG_RLE_MAX_PIXELS) return ISEG_STATUS_ELIMIT;

    struct fg_box    bb = fg_box_of(r);
    struct emitter   o;
    enum iseg_status st;
    uint64_t         k = 2 * (uint64_t)d + 1; /* side of the structuring square */
    uint64_t         a, b;

    if (bb.n_piece == 0 || bb.x1 - bb.x0 + 1 < k || bb.y1 - bb.y0 + 1 < k) {
        /* Nothing survives the erosion: the band is the mask itself, re-emitted canonically. */
        if ((st = emit_begin(&o, 2 * bb.n_piece + 2)) != ISEG_STATUS_OK) return st;
        struct ones_iter it = ones_begin(r);
        while (ones_next(&it, &a, &b)) emit_ones(&o, a, b);
        emit_finish(&o, out, r);
        return ISEG_STATUS_OK;
    }

    uint32_t  hb = bb.y1 - bb.y0 + 1, wb = bb.x1 - bb.x0 + 1;
    size_t    nw = ((size_t)hb + 63) / 64, n_word;
    uint64_t *bits; /* (wb, nw): column x - x0, bit y - y0 */
    if (!iseg__mul_size_ok(nw, wb, &n_word)) return ISEG_STATUS_ENOMEM;
    if (!(bits = iseg__calloc(n_word, sizeof(*bits)))) return ISEG_STATUS_ENOMEM;

    /* Vertical erosion: each column run [s, e) keeps [s+d, e-d). */
    struct piece_iter pi = pieces_begin(r);
    uint32_t          x, s, e;
    while (piece_next(&pi, &x, &s, &e)) {
        if (e - s >= k) bits_set(bits + (size_t)(x - bb.x0) * nw, s + d - bb.y0, e - d - bb.y0);
    }

    /* Horizontal erosion, in place: after the pass of span p, column j holds the AND of
     * columns j..j+2p-1 (valid for j <= wb - 2p; each step reads only columns not yet
     * rewritten). The last pass joins two overlapping spans p <= k < 2p into span k. Then
     * column j holds the erosion of image column x0 + d + j, for j in [0, wb - k]. */
    uint64_t p = 1;
    for (; 2 * p <= k; p *= 2) {
        size_t n_and = (size_t)(wb - 2 * p + 1) * nw, off = (size_t)p * nw;
        for (size_t i = 0; i < n_and; i++) bits[i] &= bits[i + off];
    }
    size_t n_col = (size_t)(wb - k + 1);
    if (k > p) {
        size_t n_and = n_col * nw, off = (size_t)(k - p) * nw;
        for (size_t i = 0; i < n_and; i++) bits[i] &= bits[i + off];
    }

    /* Output bound: each eroded run cuts one column piece once more, so the band has at most
     * n_piece + n_erun runs of 1s. */
    size_t n_erun = 0;
    for (size_t j = 0; j < n_col; j++) {
        const uint64_t *col   = bits + j * nw;
        uint64_t        carry = 0;
        for (size_t i = 0; i < nw; i++) {
            uint64_t rise = col[i] & ~((col[i] << 1) | carry); /* mostly 0: skip the count */
            if (rise) n_erun += (size_t)__builtin_popcountll(rise);
            carry = col[i] >> 63;
        }
    }
    if ((st = emit_begin(&o, 2 * (bb.n_piece + n_erun) + 2)) != ISEG_STATUS_OK) goto out_free_bits;

    /* band = mask minus the eroded runs, column piece by column piece. */
    uint32_t ex0 = bb.x0 + d, ex1 = bb.x1 - d; /* columns with a (possibly) non-empty erosion */
    pi           = pieces_begin(r);
    while (piece_next(&pi, &x, &s, &e)) {
        uint64_t base = (uint64_t)x * r->h;
        if (x < ex0 || x > ex1 || e - s < k) {
            emit_ones(&o, base + s, base + e);
            continue;
        }
        /* eroded rows of this piece lie in [s+d, e-d) */
        const uint64_t *col = bits + (size_t)(x - ex0) * nw;
        uint32_t        lo = s + d - bb.y0, hi = e - d - bb.y0, cur = s;
        while ((lo = bits_next(col, lo, hi, 1)) < hi) {
            uint32_t q = bits_next(col, lo, hi, 0);
            emit_ones(&o, base + cur, base + bb.y0 + lo);
            cur = bb.y0 + q;
            lo  = q;
        }
        emit_ones(&o, base + cur, base + e);
    }
    emit_finish(&o, out, r);
    st = ISEG_STATUS_OK;

out_free_bits:
    iseg__free(bits);
    return st;
}

/* ---- reference ---- */

enum iseg_status iseg__rle_boundary_ref(struct iseg_rle *out, const struct iseg_rle *r,
                                        uint32_t d) {
    ISEG_ASSERT(out && r && (r->cnts || r->m == 0));
    memset(out, 0, sizeof(*out));
    uint64_t n = (uint64_t)r->h * r->w;
    if (n > ISEG_RLE_MAX_PIXELS) return ISEG_STATUS_ELIMIT;

    enum iseg_status st   = ISEG_STATUS_ENOMEM;
    uint8_t         *mask = iseg__calloc((size_t)n, 1);     /* (w, h) */
    uint8_t         *band = iseg__calloc((size_t)n, 1);     /* (w, h) */
    uint32_t        *cnts = iseg__malloc_array((size_t)n + 1, sizeof(*cnts));
    if (!mask || !band || !cnts) goto out_free;

    uint64_t pos = 0;
    for (size_t i = 0; i < r->m && pos < n; i++) {
        for (uint32_t j = 0; j < r->cnts[i] && pos < n; j++) mask[pos++] = (uint8_t)(i & 1);
    }

    int64_t h = r->h, w = r->w, dd = d;
    for (int64_t x = 0; x < w; x++) {
        for (int64_t y = 0; y < h; y++) {
            if (!mask[x * h + y]) continue;
            /* the zero frame is within reach when the square pokes out of the image */
            bool is_band = x - dd < 0 || y - dd < 0 || x + dd >= w || y + dd >= h;
            for (int64_t xx = x - dd; xx <= x + dd && !is_band; xx++) {
                for (int64_t yy = y - dd; yy <= y + dd && !is_band; yy++) {
                    if (!mask[xx * h + yy]) is_band = true;
                }
            }
            band[x * h + y] = is_band;
        }
    }

    /* encode as maskApi's rleEncode: a new run whenever the value changes, starting from 0 */
    size_t   m    = 0;
    uint32_t c    = 0;
    uint8_t  prev = 0;
    for (uint64_t j = 0; j < n; j++) {
        if (band[j] != prev) {
            cnts[m++] = c;
            c         = 0;
            prev      = band[j];
        }
        c++;
    }
    cnts[m++] = c;

    out->h    = r->h;
    out->w    = r->w;
    out->m    = m;
    out->cnts = cnts;
    cnts      = NULL;
    st        = ISEG_STATUS_OK;

out_free:
    iseg__free(cnts);
    iseg__free(band);
    iseg__free(mask);
    return st;
}
