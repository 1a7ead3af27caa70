/* roi_align.c - RoIAlign with torchvision 0.14's CPU arithmetic (csrc/ops/cpu/roi_align_kernel.cpp)
 * and the FPN level mapper (ops/poolers.py LevelMapper).
 *
 * Per RoI: the sample grid is (oh gh) x (ow gw); each sample's four bilinear weights and taps
 * are computed once (channel independent) and reused over all channels, which are processed
 * several at a time in SIMD lanes (see "the fast path" below). Threads take (RoI, channel
 * group) items and every output value is computed the same way for any thread count. */
#include <math.h>
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
 * So per RoI the rows and columns that any tap touches are collected, and for each block of LANES
 * channels those (row, column) cells are gathered once into a tile whose cell holds the LANES
 * channels side by side. Every sample is then LANES-wide loads and multiply-adds, with exactly
 * the scalar arithmetic of each channel (w1 f1 + w2 f2 + w3 f3 + w4 f4 added to the bin's sum
 * in sample order, then / count), so the result is bit-identical to the reference.
 * Samples outside the map are skipped: they add w 0 f = +-0 to a sum that is never -0. */

#define LANES   8            /* channels per pass */
#define GROUP_C 64           /* channels per work item */
#define AX_MAX  1024         /* samples per axis */
#define BIN_MAX 4096         /* output bins */
#define TILE_MAX (64 * 1024) /* tile floats: (rows x columns x LANES) */
#define ROI_CHUNK 16         /* RoIs per work item */

struct axis {
    int   lo, hi; /* tap rows (columns): indices into the tile's row (column) list */
    float l, h;   /* weights of hi and lo */
    bool  ok;
};

struct tap {
    int   o[4]; /* tile offsets (floats) of the four taps */
    float w[4];
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

struct ra {
    iseg_engine_t e;
    float        *out;
    const float  *feat, *boxes;
    int           C, H, W, oh, ow, sampling, n_roi, n_cb, n_rc;
    float         scale;
    bool          aligned;
    int           simd; /* 0 none, 2 AVX2 */
    /* per RoI (phase 1): where its taps, bin counts and row/column lists live in the shared
     * buffer, and its tile shape (nrow 0: no valid sample; -1: the scalar path) */
    struct roi_plan *plan;
    char            *buf;
};

struct roi_plan {
    size_t taps, bin_n, rows, cols; /* byte offsets into ra.buf */
    int    nrow, ncol;
    float  count;
};

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

/* Phase 1, one RoI: its taps (in the reference's order: bin, then iy, then ix; valid samples
 * only) as tile offsets and weights. */
static void plan_task(void *vctx, size_t n, int ith) {
    const struct ra  *s  = vctx;
    struct roi_plan  *pl = &s->plan[n];
    if (pl->nrow < 0 || pl->ncol == 0) return; /* scalar, or no samples at all */
    struct roi_geom g  = roi_geom(s->boxes + 4 * n, s->oh, s->ow, s->scale, s->sampling, s->aligned);
    int             ny = s->oh * g.gh, nx = s->ow * g.gw;
    struct axis    *ay = (struct axis *)iseg__engine_scratch(s->e, ith), *ax = ay + ny;
    int            *idx  = (int *)(ax + nx);
    int            *rows = (int *)(s->buf + pl->rows), *cols = (int *)(s->buf + pl->cols);
    for (int ph = 0; ph < s->oh; ph++)
        for (int iy = 0; iy < g.gh; iy++) ay[ph * g.gh + iy] = axis_at(sample_y(&g, ph, iy), s->H);
    for (int pw = 0; pw < s->ow; pw++)
        for (int ix = 0; ix < g.gw; ix++) ax[pw * g.gw + ix] = axis_at(sample_x(&g, pw, ix), s->W);
    int nrow = compact_axis(ay, ny, idx, rows, s->H);
    int ncol = compact_axis(ax, nx, idx, cols, s->W);
    pl->count = g.count;
    if ((size_t)nrow * ncol * LANES > TILE_MAX) {
        pl->nrow = -1;
        return;
    }
    pl->nrow = nrow, pl->ncol = ncol;
    struct tap *tp    = (struct tap *)(s->buf + pl->taps);
    int        *bin_n = (int *)(s->buf + pl->bin_n);
    for (int ph = 0; ph < s->oh; ph++)
        for (int pw = 0; pw < s->ow; pw++) {
            int cnt = 0;
            for (int iy = 0; iy < g.gh; iy++) {
                const struct axis *a = &ay[ph * g.gh + iy];
                if (!a->ok) continue;
                for (int ix = 0; ix < g.gw; ix++) {
                    const struct axis *b = &ax[pw * g.gw + ix];
                    if (!b->ok) continue;
                    tp->o[0] = (a->lo * ncol + b->lo) * LANES;
                    tp->o[1] = (a->lo * ncol + b->hi) * LANES;
                    tp->o[2] = (a->hi * ncol + b->lo) * LANES;
                    tp->o[3] = (a->hi * ncol + b->hi) * LANES;
                    tp->w[0] = a->h * b->h;
                    tp->w[1] = a->h * b->l;
                    tp->w[2] = a->l * b->h;
                    tp->w[3] = a->l * b->l;
                    tp++, cnt++;
                }
            }
            bin_n[ph * s->ow + pw] = cnt;
        }
}

/* One block of nl <= LANES channels (planes f, hw apart) of one RoI, portable: gather the
 * tile (cell (r, c) holds the channels at (rows[r], cols[c]), unused lanes 0), sample every
 * bin, write the planes out (ohw apart). */
static void block_c(float *tile, float *obuf, const float *f, size_t hw, int W, int nl,
                    const int *rows, int nrow, const int *cols, int ncol, const struct tap *taps,
                    const int *bin_n, int nbin, float count, float *out, size_t ohw) {
    if (nl < LANES) memset(tile, 0, (size_t)nrow * ncol * LANES * sizeof(float));
    for (int l = 0; l < nl; l++)
        for (int r = 0; r < nrow; r++) {
            const float *fr = f + (size_t)l * hw + (size_t)rows[r] * W;
            float       *t  = tile + (size_t)r * ncol * LANES + l;
            for (int c = 0; c < ncol; c++) t[(size_t)c * LANES] = fr[cols[c]];
        }
    const struct tap *tp = taps;
    for (int b = 0; b < nbin; b++) {
        float v[LANES];
        for (int l = 0; l < LANES; l++) v[l] = 0.0f;
        for (int i = 0; i < bin_n[b]; i++, tp++)
            for (int l = 0; l < LANES; l++)
                v[l] += tp->w[0] * tile[tp->o[0] + l] + tp->w[1] * tile[tp->o[1] + l] +
                        tp->w[2] * tile[tp->o[2] + l] + tp->w[3] * tile[tp->o[3] + l];
        for (int l = 0; l < LANES; l++) obuf[(size_t)b * LANES + l] = v[l] / count;
    }
    for (int l = 0; l < nl; l++) {
        float *o = out + (size_t)l * ohw;
        for (int b = 0; b < nbin; b++) o[b] = obuf[(size_t)b * LANES + l];
    }
}

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

#define AVX2 __attribute__((target("avx2")))

/* r[i] (8 floats of row i) -> r[j] = column j */
AVX2 static inline void transpose8(__m256 r[8]) {
    __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
    __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
    __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);
    __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
    __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE);
    __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE);
    __m256 u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE);
    __m256 u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
    r[0] = _mm256_permute2f128_ps(u0, u4, 0x20);
    r[1] = _mm256_permute2f128_ps(u1, u5, 0x20);
    r[2] = _mm256_permute2f128_ps(u2, u6, 0x20);
    r[3] = _mm256_permute2f128_ps(u3, u7, 0x20);
    r[4] = _mm256_permute2f128_ps(u0, u4, 0x31);
    r[5] = _mm256_permute2f128_ps(u1, u5, 0x31);
    r[6] = _mm256_permute2f128_ps(u2, u6, 0x31);
    r[7] = _mm256_permute2f128_ps(u3, u7, 0x31);
}

/* block_c() with AVX2: 8x8 transposes where 8 used columns are consecutive, mul + add per
 * lane (never fused: the reference rounds each product) */
AVX2 static void block_avx2(float *tile, float *obuf, const float *f, size_t hw, int W, int nl,
                            const int *rows, int nrow, const int *cols, int ncol,
                            const struct tap *taps, const int *bin_n, int nbin, float count,
                            float *out, size_t ohw) {
    if (nl < LANES) {
        block_c(tile, obuf, f, hw, W, nl, rows, nrow, cols, ncol, taps, bin_n, nbin, count, out,
                ohw);
        return;
    }
    for (int r = 0; r < nrow; r++) {
        const float *fr = f + (size_t)rows[r] * W;
        float       *t  = tile + (size_t)r * ncol * LANES;
        int          c  = 0;
        while (c < ncol) {
            if (c + 8 <= ncol && cols[c + 7] == cols[c] + 7) {
                __m256 v[8];
                for (int l = 0; l < 8; l++) v[l] = _mm256_loadu_ps(fr + (size_t)l * hw + cols[c]);
                transpose8(v);
                for (int j = 0; j < 8; j++) _mm256_storeu_ps(t + (size_t)(c + j) * LANES, v[j]);
                c += 8;
            } else {
                const float *p = fr + cols[c];
                _mm256_storeu_ps(t + (size_t)c * LANES,
                                 _mm256_setr_ps(p[0], p[hw], p[2 * hw], p[3 * hw], p[4 * hw],
                                                p[5 * hw], p[6 * hw], p[7 * hw]));
                c++;
            }
        }
    }
    const struct tap *tp  = taps;
    __m256            cnt = _mm256_set1_ps(count);
    for (int b = 0; b < nbin; b++) {
        __m256 v = _mm256_setzero_ps();
        for (int i = 0; i < bin_n[b]; i++, tp++) {
            __m256 s = _mm256_mul_ps(_mm256_broadcast_ss(&tp->w[0]), _mm256_loadu_ps(tile + tp->o[0]));
            s = _mm256_add_ps(s, _mm256_mul_ps(_mm256_broadcast_ss(&tp->w[1]), _mm256_loadu_ps(tile + tp->o[1])));
            s = _mm256_add_ps(s, _mm256_mul_ps(_mm256_broadcast_ss(&tp->w[2]), _mm256_loadu_ps(tile + tp->o[2])));
            s = _mm256_add_ps(s, _mm256_mul_ps(_mm256_broadcast_ss(&tp->w[3]), _mm256_loadu_ps(tile + tp->o[3])));
            v = _mm256_add_ps(v, s);
        }
        _mm256_storeu_ps(obuf + (size_t)b * LANES, _mm256_div_ps(v, cnt));
    }
    int b = 0;
    for (; b + 8 <= nbin; b += 8) {
        __m256 v[8];
        for (int j = 0; j < 8; j++) v[j] = _mm256_loadu_ps(obuf + (size_t)(b + j) * LANES);
        transpose8(v);
        for (int l = 0; l < 8; l++) _mm256_storeu_ps(out + (size_t)l * ohw + b, v[l]);
    }
    for (; b < nbin; b++)
        for (int l = 0; l < LANES; l++) out[(size_t)l * ohw + b] = obuf[(size_t)b * LANES + l];
}
#endif

/* The scalar path for channels [c_lo, c_hi) of RoI n (huge grids, tiles or outputs) */
static void ra_scalar(const struct ra *s, size_t n, int c_lo, int c_hi, int ith) {
    struct roi_geom  g  = roi_geom(s->boxes + 4 * n, s->oh, s->ow, s->scale, s->sampling, s->aligned);
    size_t           hw = (size_t)s->H * s->W, ohw = (size_t)s->oh * s->ow;
    float           *o  = s->out + n * (size_t)s->C * ohw;
    long             ns = (long)s->oh * s->ow * g.gh * g.gw;
    if (ns <= PRECALC_MAX) {
        struct precalc *pcs = (struct precalc *)iseg__engine_scratch(s->e, ith);
        struct precalc *pc  = pcs;
        for (int ph = 0; ph < s->oh; ph++)
            for (int pw = 0; pw < s->ow; pw++)
                for (int iy = 0; iy < g.gh; iy++) {
                    float y = sample_y(&g, ph, iy);
                    for (int ix = 0; ix < g.gw; ix++) *pc++ = sample_at(y, sample_x(&g, pw, ix), s->H, s->W);
                }
        int per_bin = g.gh * g.gw;
        for (int c = c_lo; c < c_hi; c++) {
            const float *f = s->feat + (size_t)c * hw;
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
        const float *f = s->feat + (size_t)c * hw;
        for (int ph = 0; ph < s->oh; ph++)
            for (int pw = 0; pw < s->ow; pw++) {
                float v = 0.0f;
                for (int iy = 0; iy < g.gh; iy++) {
                    float y = sample_y(&g, ph, iy);
                    for (int ix = 0; ix < g.gw; ix++) {
                        struct precalc pc = sample_at(y, sample_x(&g, pw, ix), s->H, s->W);
                        v += apply(&pc, f);
                    }
                }
                o[(size_t)c * ohw + (size_t)ph * s->ow + pw] = v / g.count;
            }
    }
}

/* Phase 2, item (channel block, chunk of RoIs): channel-block major, so that the threads work
 * on the same few planes at a time and the RoIs' windows of them stay in cache. */
static void block_task(void *vctx, size_t item, int ith) {
    const struct ra *s  = vctx;
    int              cb = (int)(item / (size_t)s->n_rc), rc = (int)(item % (size_t)s->n_rc);
    int              c0 = cb * LANES, nl = s->C - c0 < LANES ? s->C - c0 : LANES;
    size_t           hw = (size_t)s->H * s->W, ohw = (size_t)s->oh * s->ow;
    float *tile = iseg__engine_scratch(s->e, ith), *obuf = tile + TILE_MAX;
    int    n1   = (rc + 1) * ROI_CHUNK < s->n_roi ? (rc + 1) * ROI_CHUNK : s->n_roi;
    for (int n = rc * ROI_CHUNK; n < n1; n++) {
        const struct roi_plan *pl = &s->plan[n];
        float                 *o  = s->out + ((size_t)n * s->C + c0) * ohw;
        if (pl->nrow < 0) {
            ra_scalar(s, (size_t)n, c0, c0 + nl, ith);
            continue;
        }
        if (pl->nrow == 0) { /* no sample inside the map: the sums stay 0 */
            for (int l = 0; l < nl; l++) memset(o + (size_t)l * ohw, 0, ohw * sizeof(float));
            continue;
        }
        const struct tap *taps  = (const struct tap *)(s->buf + pl->taps);
        const int        *bin_n = (const int *)(s->buf + pl->bin_n);
        const int        *rows  = (const int *)(s->buf + pl->rows);
        const int        *cols  = (const int *)(s->buf + pl->cols);
#if defined(__x86_64__) && defined(__GNUC__)
        if (s->simd) {
            block_avx2(tile, obuf, s->feat + (size_t)c0 * hw, hw, s->W, nl, rows, pl->nrow, cols,
                       pl->ncol, taps, bin_n, (int)ohw, pl->count, o, ohw);
            continue;
        }
#endif
        block_c(tile, obuf, s->feat + (size_t)c0 * hw, hw, s->W, nl, rows, pl->nrow, cols,
                pl->ncol, taps, bin_n, (int)ohw, pl->count, o, ohw);
    }
}

void iseg_roi_align(iseg_engine_t e, float *out, const float *feat, const float *boxes, int N,
                    int C, int H, int W, int oh, int ow, float spatial_scale, int sampling_ratio,
                    bool aligned) {
    ISEG_ASSERT(e && N >= 0 && C >= 1 && H >= 1 && W >= 1 && oh >= 1 && ow >= 1);
    if (N == 0) return;
    struct ra s;
    memset(&s, 0, sizeof(s));
    s.e = e, s.out = out, s.feat = feat, s.boxes = boxes, s.C = C, s.H = H, s.W = W;
    s.oh = oh, s.ow = ow, s.sampling = sampling_ratio, s.scale = spatial_scale;
    s.aligned = aligned, s.n_roi = N;
    s.n_cb = iseg__ceil_div(C, LANES), s.n_rc = iseg__ceil_div(N, ROI_CHUNK);
#if defined(__x86_64__) && defined(__GNUC__)
    __builtin_cpu_init();
    s.simd = __builtin_cpu_supports("avx2") ? 2 : 0;
#endif
    /* the plans' sizes (on this thread: cheap), then their buffer */
    size_t ohw = (size_t)oh * ow, total, ax_max = 0;
    struct roi_plan tmp;
    for (int pass = 0; pass < 2; pass++) {
        size_t at = (size_t)N * sizeof(struct roi_plan);
        for (int n = 0; n < N; n++) {
            struct roi_geom g = roi_geom(boxes + 4 * n, oh, ow, spatial_scale, sampling_ratio, aligned);
            struct roi_plan *pl = pass ? &s.plan[n] : &tmp;
            memset(pl, 0, sizeof(*pl));
            long ny = (long)oh * g.gh, nx = (long)ow * g.gw;
            if (g.gh <= 0 || g.gw <= 0) continue; /* no samples: nrow 0, zeros */
            if (ohw > BIN_MAX || ny > AX_MAX || nx > AX_MAX || ny * nx > PRECALC_MAX) {
                pl->nrow = -1;
                continue;
            }
            if ((size_t)(ny + nx) > ax_max) ax_max = (size_t)(ny + nx);
            pl->taps  = at, at += (size_t)ny * nx * sizeof(struct tap);
            pl->bin_n = at, at += ohw * sizeof(int);
            pl->rows  = at, at += 2 * (size_t)ny * sizeof(int);
            pl->cols  = at, at += 2 * (size_t)nx * sizeof(int);
            pl->ncol  = 1; /* to plan (nrow 0, ncol 0: nothing inside the map) */
        }
        if (!pass) {
            total = at;
            s.buf = (char *)iseg__engine_shared(e, total);
            if (!s.buf) return;
            s.plan = (struct roi_plan *)s.buf;
        }
    }
    size_t need = (TILE_MAX + (size_t)BIN_MAX * LANES) * sizeof(float);
    size_t plan_need = ax_max * sizeof(struct axis) + (size_t)(H > W ? H : W) * sizeof(int);
    if (plan_need > need) need = plan_need;
    if (need < PRECALC_MAX * sizeof(struct precalc)) need = PRECALC_MAX * sizeof(struct precalc);
    if (!iseg__engine_reserve(e, need)) return;
    /* phase 1: the plans; phase 2: the channel blocks */
    iseg__engine_run(e, (size_t)N, plan_task, &s);
    iseg__engine_run(e, (size_t)s.n_cb * s.n_rc, block_task, &s);
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
