/* roi_align.c - RoIAlign with torchvision 0.14's CPU arithmetic (csrc/ops/cpu/roi_align_kernel.cpp)
 * and the FPN level mapper (ops/poolers.py LevelMapper).
 *
 * Per RoI: the sample grid is (oh gh) x (ow gw); each sample's four bilinear weights and taps
 * are computed once (channel independent) and reused over all channels, which are processed
 * several at a time in SIMD lanes (see "the fast path" below). Threads take (RoI, channel
 * group) items and every output value is computed the same way for any thread count. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nn/nn_impl.h"

#define PRECALC_MAX 16384 /* samples per RoI precomputed in scratch; beyond: computed inline */

struct roi_geom {
    float start_h, start_w, bin_h, bin_w;
    int   gh, gw;
    float count;
};

struct precalc {
    int   pos1, pos2, pos3, pos4;
    float w1, w2, w3, w4;
};

static struct roi_geom roi_geom(const float *box, int oh, int ow, float scale, int sampling,
                                bool aligned) {
    struct roi_geom g;
    float off   = aligned ? 0.5f : 0.0f;
    float sw    = box[0] * scale - off, sh = box[1] * scale - off;
    float ew    = box[2] * scale - off, eh = box[3] * scale - off;
    float rw    = ew - sw, rh = eh - sh;
    if (!aligned) {
        rw = rw > 1.0f ? rw : 1.0f;
        rh = rh > 1.0f ? rh : 1.0f;
    }
    g.start_h = sh;
    g.start_w = sw;
    g.bin_h   = rh / (float)oh;
    g.bin_w   = rw / (float)ow;
    g.gh      = sampling > 0 ? sampling : (int)ceilf(rh / (float)oh);
    g.gw      = sampling > 0 ? sampling : (int)ceilf(rw / (float)ow);
    int cnt   = g.gh * g.gw;
    g.count   = (float)(cnt > 1 ? cnt : 1);
    return g;
}

/* one sample at (y, x): torchvision's bilinear_interpolate pre-calculation */
static struct precalc sample_at(float y, float x, int H, int W) {
    struct precalc pc;
    memset(&pc, 0, sizeof(pc));
    if (y < -1.0f || y > (float)H || x < -1.0f || x > (float)W) return pc;
    if (y <= 0.0f) y = 0.0f;
    if (x <= 0.0f) x = 0.0f;
    int y_low = (int)y, x_low = (int)x, y_high, x_high;
    if (y_low >= H - 1) {
        y_high = y_low = H - 1;
        y              = (float)y_low;
    } else {
        y_high = y_low + 1;
    }
    if (x_low >= W - 1) {
        x_high = x_low = W - 1;
        x              = (float)x_low;
    } else {
        x_high = x_low + 1;
    }
    float ly = y - (float)y_low, lx = x - (float)x_low;
    float hy = 1.0f - ly, hx = 1.0f - lx;
    pc.w1   = hy * hx;
    pc.w2   = hy * lx;
    pc.w3   = ly * hx;
    pc.w4   = ly * lx;
    pc.pos1 = y_low * W + x_low;
    pc.pos2 = y_low * W + x_high;
    pc.pos3 = y_high * W + x_low;
    pc.pos4 = y_high * W + x_high;
    return pc;
}

static float sample_y(const struct roi_geom *g, int ph, int iy) {
    return g->start_h + (float)ph * g->bin_h + ((float)iy + 0.5f) * g->bin_h / (float)g->gh;
}
static float sample_x(const struct roi_geom *g, int pw, int ix) {
    return g->start_w + (float)pw * g->bin_w + ((float)ix + 0.5f) * g->bin_w / (float)g->gw;
}

static inline float apply(const struct precalc *pc, const float *f) {
    return pc->w1 * f[pc->pos1] + pc->w2 * f[pc->pos2] + pc->w3 * f[pc->pos3] +
           pc->w4 * f[pc->pos4];
}

/* ---- the fast path: channels in SIMD lanes -------------------------------------------------
 *
 * The sample positions, taps and weights of a RoI do not depend on the channel, and sampling is
 * separable into a y and an x part (torchvision's pre-calculation clamps each axis on its own).
 * Work items are (block of LANES channels, chunk of RoIs). A sample reads its four taps as
 * LANES-wide vectors of a channel-interleaved copy of the block's planes, in which cell (y, x)
 * holds the LANES channels side by side:
 *  - a level that the RoIs cover densely (the usual case: a thousand proposals on a few
 *    thousand cells) is copied whole, once per item: [H W][LANES];
 *  - otherwise each RoI gathers only the rows and columns that its taps touch into a tile
 *    [rows][columns][LANES].
 * Every sample is then LANES-wide multiplies and adds with exactly the scalar arithmetic of
 * each channel (w1 f1 + w2 f2 + w3 f3 + w4 f4 added to the bin's sum in sample order, then
 * / count), so the result is bit-identical to the reference whatever the path and thread.
 * Samples outside the map are skipped: they add w 0 f = +-0 to a sum that is never -0. */

#define LANES     8            /* channels per pass */
#define AX_MAX    1024         /* samples per axis */
#define BIN_MAX   4096         /* output bins */
#define TILE_MAX  (64 * 1024)  /* tile floats: (rows x columns x LANES) */
#define ROI_CHUNK 16           /* RoIs per work item when no level is copied whole */
#define MAP_MAX   (1 << 22)    /* floats of whole-level copies per thread (16 MiB) */

struct axis {
    int   lo, hi; /* tap rows (columns): indices into the tile's row (column) list */
    float l, h;   /* weights of hi and lo */
    bool  ok;
};

/* the valid samples of one axis, in order: offsets (floats) of the low and high tap rows
 * (columns) in the tile or level copy, and their weights */
struct tap {
    int   lo, hi;
    float l, h;
};

/* torchvision's per-axis pre-calculation of v (a y or an x) on an axis of n cells */
static struct axis axis_at(float v, int n) {
    struct axis a = {0, 0, 0.0f, 0.0f, false};
    if (v < -1.0f || v > (float)n) return a;
    if (v <= 0.0f) v = 0.0f;
    int lo = (int)v, hi;
    if (lo >= n - 1) {
        hi = lo = n - 1;
        v  = (float)lo;
    } else {
        hi = lo + 1;
    }
    a.lo = lo, a.hi = hi;
    a.l  = v - (float)lo;
    a.h  = 1.0f - a.l;
    a.ok = true;
    return a;
}

/* one pyramid level: its map (C, H, W), the scale from image to map coordinates, and whether
 * the items copy it whole (where, in the thread's scratch) */
struct level {
    const float *feat;
    int          H, W;
    float        scale;
    bool         whole;
    size_t       map_at; /* floats */
};

struct ra {
    iseg_engine_t e;
    float        *out;
    const float  *boxes;
    const int    *lv; /* (n_roi) level of each RoI, or NULL: all on level 0 */
    struct level  lev[ISEG_ROI_LEVELS_MAX];
    int           C, oh, ow, sampling, n_roi, n_cb, n_rc, rc_len;
    bool          aligned;
    int           simd;       /* 0 none, 2 AVX2 */
    size_t        map_floats; /* whole-level copies per thread */
    /* per RoI (phase 1): where its taps, bin counts and row/column lists live in the shared
     * buffer, and its tile shape (nrow 0: no valid sample; -1: the scalar path) */
    struct roi_plan *plan;
    int             *order; /* (n_roi) RoIs grouped by level, for the blocks (cache reuse) */
    char            *buf;
};

struct roi_plan {
    size_t ty, tx, y0, x0, rows, cols; /* byte offsets into ra.buf */
    int    nrow, ncol;
    float  count;
};

static inline const struct level *roi_level(const struct ra *s, size_t n) {
    return &s->lev[s->lv ? s->lv[n] : 0];
}

/* Maps the used cells of axis samples a[0..n) (values in [0, len)) to consecutive tile
 * indices in increasing order: idx (len) scratch, list receives the used cells. Returns the
 * count; a[i].lo/.hi become indices into the list. */
static int compact_axis(struct axis *a, int n, int *idx, int *list, int len) {
    int lo = len, hi = -1;
    for (int i = 0; i < n; i++)
        if (a[i].ok) {
            lo = a[i].lo < lo ? a[i].lo : lo;
            hi = a[i].hi > hi ? a[i].hi : hi;
        }
    if (hi < lo) return 0;
    for (int v = lo; v <= hi; v++) idx[v] = -1;
    for (int i = 0; i < n; i++)
        if (a[i].ok) idx[a[i].lo] = idx[a[i].hi] = 0;
    int m = 0;
    for (int v = lo; v <= hi; v++)
        if (idx[v] == 0) {
            idx[v]    = m;
            list[m++] = v;
        }
    for (int i = 0; i < n; i++)
        if (a[i].ok) a[i].lo = idx[a[i].lo], a[i].hi = idx[a[i].hi];
    return m;
}

static bool any_ok(const struct axis *a, int n) {
    for (int i = 0; i < n; i++)
        if (a[i].ok) return true;
    return false;
}

/* Phase 1, one RoI: its taps (in the reference's order: bin, then iy, then ix; valid samples
 * only) as offsets into its level's copy or into its tile, and weights. */
static void plan_task(void *vctx, size_t n, int ith) {
    const struct ra  *s  = vctx;
    struct roi_plan  *pl = &s->plan[n];
    if (pl->nrow < 0 || pl->ncol == 0) return; /* scalar, or no samples at all */
    const struct level *lv = roi_level(s, n);
    struct roi_geom g  = roi_geom(s->boxes + 4 * n, s->oh, s->ow, lv->scale, s->sampling, s->aligned);
    int             ny = s->oh * g.gh, nx = s->ow * g.gw;
    struct axis    *ay = (struct axis *)iseg__engine_scratch(s->e, ith), *ax = ay + ny;
    int            *idx  = (int *)(ax + nx);
    int            *rows = (int *)(s->buf + pl->rows), *cols = (int *)(s->buf + pl->cols);
    for (int ph = 0; ph < s->oh; ph++)
        for (int iy = 0; iy < g.gh; iy++) ay[ph * g.gh + iy] = axis_at(sample_y(&g, ph, iy), lv->H);
    for (int pw = 0; pw < s->ow; pw++)
        for (int ix = 0; ix < g.gw; ix++) ax[pw * g.gw + ix] = axis_at(sample_x(&g, pw, ix), lv->W);
    pl->count = g.count;
    int stride; /* cells per row of the copy the taps index */
    if (lv->whole) {
        pl->nrow = pl->ncol = any_ok(ay, ny) && any_ok(ax, nx) ? 1 : 0;
        stride   = lv->W;
    } else {
        int nrow = compact_axis(ay, ny, idx, rows, lv->H);
        int ncol = compact_axis(ax, nx, idx, cols, lv->W);
        if ((size_t)nrow * ncol * LANES > TILE_MAX) {
            pl->nrow = -1;
            return;
        }
        pl->nrow = nrow, pl->ncol = ncol;
        stride   = ncol;
    }
    if (!pl->nrow) return;
    /* bin row ph's valid y samples are ty[y0[ph] .. y0[ph + 1]), likewise x */
    struct tap *ty = (struct tap *)(s->buf + pl->ty), *tx = (struct tap *)(s->buf + pl->tx);
    int        *y0 = (int *)(s->buf + pl->y0), *x0 = (int *)(s->buf + pl->x0);
    int         k  = 0;
    for (int ph = 0; ph < s->oh; ph++) {
        y0[ph] = k;
        for (int iy = 0; iy < g.gh; iy++) {
            const struct axis *a = &ay[ph * g.gh + iy];
            if (a->ok)
                ty[k++] = (struct tap){a->lo * stride * LANES, a->hi * stride * LANES, a->l, a->h};
        }
    }
    y0[s->oh] = k, k = 0;
    for (int pw = 0; pw < s->ow; pw++) {
        x0[pw] = k;
        for (int ix = 0; ix < g.gw; ix++) {
            const struct axis *b = &ax[pw * g.gw + ix];
            if (b->ok) tx[k++] = (struct tap){b->lo * LANES, b->hi * LANES, b->l, b->h};
        }
    }
    x0[s->ow] = k;
}

/* ---- phase 2 kernels: copy (whole level or tile), sample, write out ---------------------- */

/* The tile of nl <= LANES channels (planes f, hw apart): cell (r, c) holds the channels at
 * (rows[r], cols[c]), unused lanes 0. A whole level is the tile of every row and column. */
static void tile_c(float *tile, const float *f, size_t hw, int W, int nl, const int *rows,
                   int nrow, const int *cols, int ncol) {
    if (nl < LANES) memset(tile, 0, (size_t)nrow * ncol * LANES * sizeof(float));
    for (int l = 0; l < nl; l++)
        for (int r = 0; r < nrow; r++) {
            const float *fr = f + (size_t)l * hw + (size_t)(rows ? rows[r] : r) * W;
            float       *t  = tile + (size_t)r * ncol * LANES + l;
            for (int c = 0; c < ncol; c++) t[(size_t)c * LANES] = fr[cols ? cols[c] : c];
        }
}

/* The taps of a RoI, read from its copy at base */
struct roi_taps {
    const struct tap *ty, *tx;
    const int        *y0, *x0;
    int               oh, ow;
    float             count;
};

/* Every bin of one RoI: obuf (oh ow, LANES). Bin (ph, pw) sums its samples y-major like the
 * reference: the y samples of bin row ph outside, the x samples of each bin inside. */
static void bins_c(float *obuf, const float *base, const struct roi_taps *t) {
    for (int ph = 0; ph < t->oh; ph++) {
        float *acc = obuf + (size_t)ph * t->ow * LANES;
        for (int i = 0; i < t->ow * LANES; i++) acc[i] = 0.0f;
        for (int yi = t->y0[ph]; yi < t->y0[ph + 1]; yi++) {
            const struct tap *a  = &t->ty[yi];
            const float      *r0 = base + a->lo, *r1 = base + a->hi;
            for (int pw = 0; pw < t->ow; pw++)
                for (int xi = t->x0[pw]; xi < t->x0[pw + 1]; xi++) {
                    const struct tap *b = &t->tx[xi];
                    float w0 = a->h * b->h, w1 = a->h * b->l, w2 = a->l * b->h, w3 = a->l * b->l;
                    for (int l = 0; l < LANES; l++)
                        acc[pw * LANES + l] += w0 * r0[b->lo + l] + w1 * r0[b->hi + l] +
                                               w2 * r1[b->lo + l] + w3 * r1[b->hi + l];
                }
        }
        for (int i = 0; i < t->ow * LANES; i++) acc[i] = acc[i] / t->count;
    }
}

/* obuf (nbin, LANES) -> nl output planes ohw apart */
static void out_c(float *out, size_t ohw, const float *obuf, int nbin, int nl) {
    for (int l = 0; l < nl; l++) {
        float *o = out + (size_t)l * ohw;
        for (int b = 0; b < nbin; b++) o[b] = obuf[(size_t)b * LANES + l];
    }
}

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

#include "nn/avx2_transpose.h"

#define AVX2 __attribute__((target("avx2")))

/* tile_c() for nl = LANES: 8x8 transposes where 8 used columns are consecutive (rows, cols
 * NULL: all of them) */
AVX2 static void tile_avx2(float *tile, const float *f, size_t hw, int W, const int *rows,
                           int nrow, const int *cols, int ncol) {
    for (int r = 0; r < nrow; r++) {
        const float *fr = f + (size_t)(rows ? rows[r] : r) * W;
        float       *t  = tile + (size_t)r * ncol * LANES;
        int          c  = 0;
        while (c < ncol) {
            int x = cols ? cols[c] : c;
            if (c + 8 <= ncol && (!cols || cols[c + 7] == x + 7)) {
                __m256 v[8];
                for (int l = 0; l < 8; l++) v[l] = _mm256_loadu_ps(fr + (size_t)l * hw + x);
                iseg__transpose8_avx2(v);
                for (int j = 0; j < 8; j++) _mm256_storeu_ps(t + (size_t)(c + j) * LANES, v[j]);
                c += 8;
            } else {
                const float *p = fr + x;
                _mm256_storeu_ps(t + (size_t)c * LANES,
                                 _mm256_setr_ps(p[0], p[hw], p[2 * hw], p[3 * hw], p[4 * hw],
                                                p[5 * hw], p[6 * hw], p[7 * hw]));
                c++;
            }
        }
    }
}

/* bins_c() with AVX2: mul + add per lane (never fused: the reference rounds each product;
 * the weights' products are the reference's too, hy hx etc. rounded once) */
AVX2 static void bins_avx2(float *obuf, const float *base, const struct roi_taps *t) {
    __m256 cnt = _mm256_set1_ps(t->count);
    for (int ph = 0; ph < t->oh; ph++) {
        float *acc = obuf + (size_t)ph * t->ow * LANES;
        for (int pw = 0; pw < t->ow; pw++) _mm256_storeu_ps(acc + pw * LANES, _mm256_setzero_ps());
        for (int yi = t->y0[ph]; yi < t->y0[ph + 1]; yi++) {
            const struct tap *a  = &t->ty[yi];
            const float      *r0 = base + a->lo, *r1 = base + a->hi;
            __m256            ah = _mm256_set1_ps(a->h), al = _mm256_set1_ps(a->l);
            for (int pw = 0; pw < t->ow; pw++) {
                __m256 v = _mm256_loadu_ps(acc + pw * LANES);
                for (int xi = t->x0[pw]; xi < t->x0[pw + 1]; xi++) {
                    const struct tap *b  = &t->tx[xi];
                    __m256            bh = _mm256_broadcast_ss(&b->h), bl = _mm256_broadcast_ss(&b->l);
                    __m256 s = _mm256_mul_ps(_mm256_mul_ps(ah, bh), _mm256_loadu_ps(r0 + b->lo));
                    s = _mm256_add_ps(s, _mm256_mul_ps(_mm256_mul_ps(ah, bl), _mm256_loadu_ps(r0 + b->hi)));
                    s = _mm256_add_ps(s, _mm256_mul_ps(_mm256_mul_ps(al, bh), _mm256_loadu_ps(r1 + b->lo)));
                    s = _mm256_add_ps(s, _mm256_mul_ps(_mm256_mul_ps(al, bl), _mm256_loadu_ps(r1 + b->hi)));
                    v = _mm256_add_ps(v, s);
                }
                _mm256_storeu_ps(acc + pw * LANES, v);
            }
        }
        for (int pw = 0; pw < t->ow; pw++)
            _mm256_storeu_ps(acc + pw * LANES, _mm256_div_ps(_mm256_loadu_ps(acc + pw * LANES), cnt));
    }
}

/* out_c() for nl = LANES: 8x8 transposes */
AVX2 static void out_avx2(float *out, size_t ohw, const float *obuf, int nbin) {
    int b = 0;
    for (; b + 8 <= nbin; b += 8) {
        __m256 v[8];
        for (int j = 0; j < 8; j++) v[j] = _mm256_loadu_ps(obuf + (size_t)(b + j) * LANES);
        iseg__transpose8_avx2(v);
        for (int l = 0; l < 8; l++) _mm256_storeu_ps(out + (size_t)l * ohw + b, v[l]);
    }
    for (; b < nbin; b++)
        for (int l = 0; l < LANES; l++) out[(size_t)l * ohw + b] = obuf[(size_t)b * LANES + l];
}
#endif

static void make_tile(const struct ra *s, float *tile, const float *f, size_t hw, int W, int nl,
                      const int *rows, int nrow, const int *cols, int ncol) {
#if defined(__x86_64__) && defined(__GNUC__)
    if (s->simd && nl == LANES) {
        tile_avx2(tile, f, hw, W, rows, nrow, cols, ncol);
        return;
    }
#endif
    (void)s;
    tile_c(tile, f, hw, W, nl, rows, nrow, cols, ncol);
}

/* The scalar path for channels [c_lo, c_hi) of RoI n (huge grids, tiles or outputs) */
static void ra_scalar(const struct ra *s, size_t n, int c_lo, int c_hi, int ith) {
    const struct level *lv = roi_level(s, n);
    struct roi_geom  g  = roi_geom(s->boxes + 4 * n, s->oh, s->ow, lv->scale, s->sampling, s->aligned);
    int              H = lv->H, W = lv->W;
    size_t           hw = (size_t)H * W, ohw = (size_t)s->oh * s->ow;
    float           *o  = s->out + n * (size_t)s->C * ohw;
    long             ns = (long)s->oh * s->ow * g.gh * g.gw;
    if (ns <= PRECALC_MAX) {
        struct precalc *pcs = (struct precalc *)iseg__engine_scratch(s->e, ith);
        struct precalc *pc  = pcs;
        for (int ph = 0; ph < s->oh; ph++)
            for (int pw = 0; pw < s->ow; pw++)
                for (int iy = 0; iy < g.gh; iy++) {
                    float y = sample_y(&g, ph, iy);
                    for (int ix = 0; ix < g.gw; ix++) *pc++ = sample_at(y, sample_x(&g, pw, ix), H, W);
                }
        int per_bin = g.gh * g.gw;
        for (int c = c_lo; c < c_hi; c++) {
            const float *f = lv->feat + (size_t)c * hw;
            float       *oc = o + (size_t)c * ohw;
            pc              = pcs;
            for (size_t b = 0; b < ohw; b++) {
                float v = 0.0f;
                for (int i = 0; i < per_bin; i++, pc++) v += apply(pc, f);
                oc[b] = v / g.count;
            }
        }
        return;
    }
    /* very large adaptive grids: the same arithmetic, samples recomputed per channel */
    for (int c = c_lo; c < c_hi; c++) {
        const float *f = lv->feat + (size_t)c * hw;
        for (int ph = 0; ph < s->oh; ph++)
            for (int pw = 0; pw < s->ow; pw++) {
                float v = 0.0f;
                for (int iy = 0; iy < g.gh; iy++) {
                    float y = sample_y(&g, ph, iy);
                    for (int ix = 0; ix < g.gw; ix++) {
                        struct precalc pc = sample_at(y, sample_x(&g, pw, ix), H, W);
                        v += apply(&pc, f);
                    }
                }
                o[(size_t)c * ohw + (size_t)ph * s->ow + pw] = v / g.count;
            }
    }
}

/* Phase 2, item (channel block, chunk of RoIs): channel-block major, so that the threads work
 * on the same few planes at a time; the RoIs in level order (each level copied whole at its
 * first RoI, if it is copied), each written to its own place in out. */
static void block_task(void *vctx, size_t item, int ith) {
    const struct ra *s  = vctx;
    int              cb = (int)(item / (size_t)s->n_rc), rc = (int)(item % (size_t)s->n_rc);
    int              c0 = cb * LANES, nl = s->C - c0 < LANES ? s->C - c0 : LANES;
    size_t           ohw = (size_t)s->oh * s->ow;
    float *maps = iseg__engine_scratch(s->e, ith), *tile = maps + s->map_floats;
    float *obuf = tile + TILE_MAX;
    int    k0 = rc * s->rc_len, k1 = k0 + s->rc_len < s->n_roi ? k0 + s->rc_len : s->n_roi;
    int    copied = -1; /* the last level copied whole */
    for (int k = k0; k < k1; k++) {
        int                    n  = s->order[k];
        const struct roi_plan *pl = &s->plan[n];
        const struct level    *lv = roi_level(s, (size_t)n);
        size_t                 hw = (size_t)lv->H * lv->W;
        float                 *o  = s->out + ((size_t)n * s->C + c0) * ohw;
        if (pl->nrow < 0) {
            ra_scalar(s, (size_t)n, c0, c0 + nl, ith);
            continue;
        }
        if (pl->nrow == 0) { /* no sample inside the map: the sums stay 0 */
            for (int l = 0; l < nl; l++) memset(o + (size_t)l * ohw, 0, ohw * sizeof(float));
            continue;
        }
        struct roi_taps t = {(const struct tap *)(s->buf + pl->ty),
                             (const struct tap *)(s->buf + pl->tx), (const int *)(s->buf + pl->y0),
                             (const int *)(s->buf + pl->x0), s->oh, s->ow, pl->count};
        const float      *f     = lv->feat + (size_t)c0 * hw;
        const float      *base  = tile;
        if (lv->whole) {
            base = maps + lv->map_at;
            if (copied != (int)(lv - s->lev)) {
                make_tile(s, maps + lv->map_at, f, hw, lv->W, nl, NULL, lv->H, NULL, lv->W);
                copied = (int)(lv - s->lev);
            }
        } else {
            make_tile(s, tile, f, hw, lv->W, nl, (const int *)(s->buf + pl->rows), pl->nrow,
                      (const int *)(s->buf + pl->cols), pl->ncol);
        }
#if defined(__x86_64__) && defined(__GNUC__)
        if (s->simd) {
            bins_avx2(obuf, base, &t);
            if (nl == LANES) out_avx2(o, ohw, obuf, (int)ohw);
            else out_c(o, ohw, obuf, (int)ohw, nl);
            continue;
        }
#endif
        bins_c(obuf, base, &t);
        out_c(o, ohw, obuf, (int)ohw, nl);
    }
}

struct roi_key {
    uint64_t key;
    int      n;
};

static int cmp_key(const void *a, const void *b) {
    const struct roi_key *x = a, *y = b;
    if (x->key != y->key) return x->key < y->key ? -1 : 1;
    return (x->n > y->n) - (x->n < y->n);
}

/* bits of v spread to the even positions */
static uint64_t spread(uint32_t v) {
    uint64_t x = v & 0xFFFFu;
    x = (x | x << 8) & 0x00FF00FFu;
    x = (x | x << 4) & 0x0F0F0F0Fu;
    x = (x | x << 2) & 0x33333333u;
    x = (x | x << 1) & 0x55555555u;
    return x;
}

/* The order in which the items visit the RoIs: by level, then along a Z curve of their
 * centres (cells of 4 x 4 map pixels), so that consecutive RoIs, which overlap where the
 * proposals cluster, find each other's taps still in cache. Any order gives the same bits. */
static void roi_order(struct ra *s, struct roi_key *keys) {
    int N = s->n_roi;
    for (int n = 0; n < N; n++) {
        const struct level *lv = roi_level(s, (size_t)n);
        const float        *b  = s->boxes + 4 * n;
        float cx = (b[0] + b[2]) * 0.5f * lv->scale / 4.0f, cy = (b[1] + b[3]) * 0.5f * lv->scale / 4.0f;
        uint32_t qx = cx > 0.0f ? (cx < 65535.0f ? (uint32_t)cx : 65535u) : 0u;
        uint32_t qy = cy > 0.0f ? (cy < 65535.0f ? (uint32_t)cy : 65535u) : 0u;
        keys[n] = (struct roi_key){(uint64_t)(lv - s->lev) << 40 | spread(qy) << 1 | spread(qx), n};
    }
    qsort(keys, (size_t)N, sizeof(*keys), cmp_key);
    for (int n = 0; n < N; n++) s->order[n] = keys[n].n;
}

/* Both entry points: plans sized and laid out here, then the two pool runs. */
static void roi_align_run(struct ra *s, int n_lv) {
    iseg_engine_t e  = s->e;
    int           N  = s->n_roi, oh = s->oh, ow = s->ow;
#if defined(__x86_64__) && defined(__GNUC__)
    __builtin_cpu_init();
    s->simd = __builtin_cpu_supports("avx2") ? 2 : 0;
#endif
    /* the plans' sizes (on this thread: cheap), then their buffer; meanwhile the cells that
     * each level's tiles would gather, at most */
    size_t ohw = (size_t)oh * ow, total = 0, ax_max = 0;
    double cells[ISEG_ROI_LEVELS_MAX] = {0};
    int    hw_max = 1;
    for (int l = 0; l < n_lv; l++) {
        int m = s->lev[l].H > s->lev[l].W ? s->lev[l].H : s->lev[l].W;
        if (m > hw_max) hw_max = m;
    }
    struct roi_plan tmp;
    struct roi_key *keys = NULL;
    for (int pass = 0; pass < 2; pass++) {
        /* plans (N), the order (N), sort keys (N), then each RoI's taps and lists */
        size_t at = (size_t)N * (sizeof(struct roi_plan) + sizeof(int));
        at        = (at + 15) & ~(size_t)15;
        size_t keys_at = at;
        at += (size_t)N * sizeof(struct roi_key);
        for (int n = 0; n < N; n++) {
            const struct level *lv = roi_level(s, (size_t)n);
            struct roi_geom g = roi_geom(s->boxes + 4 * n, oh, ow, lv->scale, s->sampling, s->aligned);
            struct roi_plan *pl = pass ? &s->plan[n] : &tmp;
            memset(pl, 0, sizeof(*pl));
            long ny = (long)oh * g.gh, nx = (long)ow * g.gw;
            if (g.gh <= 0 || g.gw <= 0) continue; /* no samples: nrow 0, zeros */
            if (ohw > BIN_MAX || ny > AX_MAX || nx > AX_MAX || ny * nx > PRECALC_MAX) {
                pl->nrow = -1;
                continue;
            }
            if ((size_t)(ny + nx) > ax_max) ax_max = (size_t)(ny + nx);
            pl->ty    = at, at += (size_t)ny * sizeof(struct tap);
            pl->tx    = at, at += (size_t)nx * sizeof(struct tap);
            pl->y0    = at, at += (size_t)(oh + 1) * sizeof(int);
            pl->x0    = at, at += (size_t)(ow + 1) * sizeof(int);
            pl->rows  = at, at += 2 * (size_t)ny * sizeof(int);
            pl->cols  = at, at += 2 * (size_t)nx * sizeof(int);
            pl->ncol  = 1; /* to plan (nrow 0, ncol 0: nothing inside the map) */
            if (!pass) { /* rows (columns): two per sample, the RoI's extent plus 2, the map */
                double r = fmin(fmin(2.0 * ny, ceil(g.bin_h * oh) + 2.0), lv->H);
                double c = fmin(fmin(2.0 * nx, ceil(g.bin_w * ow) + 2.0), lv->W);
                cells[lv - s->lev] += r * c;
            }
        }
        if (!pass) {
            total  = at;
            s->buf = (char *)iseg__engine_shared(e, total);
            if (!s->buf) return;
            s->plan  = (struct roi_plan *)s->buf;
            s->order = (int *)(s->plan + N);
            keys     = (struct roi_key *)(s->buf + keys_at);
        }
    }
    /* a level is copied whole (per item) where its RoIs' tiles would gather over half its
     * cells: the copy streams through the planes once with full-width transposes */
    bool any_whole = false;
    s->map_floats  = 0;
    for (int l = 0; l < n_lv; l++) {
        struct level *lv = &s->lev[l];
        size_t        hw = (size_t)lv->H * lv->W;
        lv->whole = 2.0 * cells[l] >= (double)hw && hw * LANES <= MAP_MAX - s->map_floats;
        if (!lv->whole) continue;
        lv->map_at = s->map_floats;
        s->map_floats += (hw * LANES + 15) & ~(size_t)15;
        any_whole = true;
    }
    /* items: with whole-level copies, few big RoI chunks (each copies the levels it needs), as
     * many as give every thread a couple of items; else chunks of ROI_CHUNK RoIs */
    s->n_cb = iseg__ceil_div(s->C, LANES);
    if (any_whole) {
        s->n_rc = iseg__ceil_div(2 * e->nth, s->n_cb);
        if (s->n_rc > N) s->n_rc = N;
        s->rc_len = iseg__ceil_div(N, s->n_rc);
    } else {
        s->rc_len = ROI_CHUNK;
    }
    s->n_rc = iseg__ceil_div(N, s->rc_len);
    roi_order(s, keys);
    size_t need      = (s->map_floats + TILE_MAX + (size_t)BIN_MAX * LANES) * sizeof(float);
    size_t plan_need = ax_max * sizeof(struct axis) + (size_t)hw_max * sizeof(int);
    if (plan_need > need) need = plan_need;
    if (need < PRECALC_MAX * sizeof(struct precalc)) need = PRECALC_MAX * sizeof(struct precalc);
    if (!iseg__engine_reserve(e, need)) return;
    /* phase 1: the plans; phase 2: the channel blocks */
    iseg__engine_run(e, (size_t)N, plan_task, s);
    iseg__engine_run(e, (size_t)s->n_cb * s->n_rc, block_task, s);
}

void iseg_roi_align(iseg_engine_t e, float *out, const float *feat, const float *boxes, int N,
                    int C, int H, int W, int oh, int ow, float spatial_scale, int sampling_ratio,
                    bool aligned) {
    ISEG_ASSERT(e && N >= 0 && C >= 1 && H >= 1 && W >= 1 && oh >= 1 && ow >= 1);
    if (N == 0) return;
    struct ra s;
    memset(&s, 0, sizeof(s));
    s.e = e, s.out = out, s.boxes = boxes, s.C = C, s.oh = oh, s.ow = ow;
    s.sampling = sampling_ratio, s.aligned = aligned, s.n_roi = N;
    s.lev[0] = (struct level){feat, H, W, spatial_scale, false, 0};
    roi_align_run(&s, 1);
}

void iseg__roi_align_levels(iseg_engine_t e, float *out, const float *const *feats, const int *H,
                            const int *W, const float *scales, int n_lv, const int *levels,
                            const float *boxes, int N, int C, int oh, int ow, int sampling_ratio,
                            bool aligned) {
    ISEG_ASSERT(e && N >= 0 && C >= 1 && oh >= 1 && ow >= 1);
    ISEG_ASSERT(n_lv >= 1 && n_lv <= ISEG_ROI_LEVELS_MAX);
    if (N == 0) return;
    struct ra s;
    memset(&s, 0, sizeof(s));
    s.e = e, s.out = out, s.boxes = boxes, s.lv = levels, s.C = C, s.oh = oh, s.ow = ow;
    s.sampling = sampling_ratio, s.aligned = aligned, s.n_roi = N;
    for (int l = 0; l < n_lv; l++) {
        ISEG_ASSERT(H[l] >= 1 && W[l] >= 1);
        s.lev[l] = (struct level){feats[l], H[l], W[l], scales[l], false, 0};
    }
    for (int n = 0; n < N; n++) ISEG_ASSERT(levels[n] >= 0 && levels[n] < n_lv);
    roi_align_run(&s, n_lv);
}

void iseg_roi_align_ref(float *out, const float *feat, const float *boxes, int N, int C, int H,
                        int W, int oh, int ow, float spatial_scale, int sampling_ratio,
                        bool aligned) {
    for (int n = 0; n < N; n++) {
        struct roi_geom g = roi_geom(boxes + 4 * n, oh, ow, spatial_scale, sampling_ratio, aligned);
        for (int c = 0; c < C; c++)
            for (int ph = 0; ph < oh; ph++)
                for (int pw = 0; pw < ow; pw++) {
                    float v = 0.0f;
                    for (int iy = 0; iy < g.gh; iy++)
                        for (int ix = 0; ix < g.gw; ix++) {
                            struct precalc pc =
                                sample_at(sample_y(&g, ph, iy), sample_x(&g, pw, ix), H, W);
                            v += apply(&pc, feat + (size_t)c * H * W);
                        }
                    out[(((size_t)n * C + c) * oh + ph) * ow + pw] = v / g.count;
                }
    }
}

void iseg_roi_levels(int *levels, const float *boxes, int N, int k_min, int k_max,
                     float canonical_scale, int canonical_level, float eps) {
    for (int i = 0; i < N; i++) {
        const float *b    = boxes + 4 * i;
        float        area = (b[2] - b[0]) * (b[3] - b[1]);
        float        s    = sqrtf(area);
        float        lv   = floorf((float)canonical_level + log2f(s / canonical_scale) + eps);
        /* NaN (degenerate boxes with negative area) maps to the lowest level */
        int l = isnan(lv) || lv < (float)k_min ? k_min : lv > (float)k_max ? k_max : (int)lv;
        levels[i]         = l - k_min;
    }
}

/* Backward of RoIAlign (torchvision roi_align_backward_kernel): each output bin's gradient,
 * divided by the sample count, is scattered to the four taps of every sample. Sequential over
 * RoIs (their footprints overlap), so the sum order is fixed. */
void iseg_roi_align_bwd(float *dfeat, const float *dout, const float *boxes, int N, int C, int H,
                        int W, int oh, int ow, float spatial_scale, int sampling_ratio,
                        bool aligned) {
    ISEG_ASSERT(N >= 0 && C >= 1 && H >= 1 && W >= 1 && oh >= 1 && ow >= 1);
    size_t hw = (size_t)H * W, ohw = (size_t)oh * ow;
    for (int n = 0; n < N; n++) {
        struct roi_geom g =
            roi_geom(boxes + 4 * n, oh, ow, spatial_scale, sampling_ratio, aligned);
        for (int ph = 0; ph < oh; ph++)
            for (int pw = 0; pw < ow; pw++)
                for (int iy = 0; iy < g.gh; iy++) {
                    float y = sample_y(&g, ph, iy);
                    for (int ix = 0; ix < g.gw; ix++) {
                        float x = sample_x(&g, pw, ix);
                        if (y < -1.0f || y > (float)H || x < -1.0f || x > (float)W) continue;
                        struct precalc pc = sample_at(y, x, H, W);
                        for (int c = 0; c < C; c++) {
                            float  gv = dout[((size_t)n * C + c) * ohw + (size_t)ph * ow + pw] /
                                       g.count;
                            float *f  = dfeat + (size_t)c * hw;
                            f[pc.pos1] += pc.w1 * gv;
                            f[pc.pos2] += pc.w2 * gv;
                            f[pc.pos3] += pc.w3 * gv;
                            f[pc.pos4] += pc.w4 * gv;
                        }
                    }
                }
    }
}
