/* conv2d.c - 2-d convolution (torch Conv2d): GEMM of the packed weights (cout/g, cin/g kh kw)
 * with an im2col matrix (cin/g kh kw, oh ow) that is never materialised: the GEMM driver asks
 * for one (K block x N chunk) panel at a time and pack_im2col() gathers it straight from x.
 * Bias, residual and ReLU are applied in the GEMM epilogue. */
#include <stdlib.h>
#include <string.h>

#include "nn/nn_impl.h"

struct iseg_conv2d {
    struct iseg_conv2d_desc d;
    int                     M, K; /* per group: cout/g, cin/g kh kw */
    float                  *pa;   /* packed weights, groups of iseg__gemm_packed_a_size(M, K),
                                   * or NULL where Winograd is the only path (see init) */
    size_t                  pa_gs;
    float                  *bias; /* (cout) or NULL */
    struct iseg__wino      *wino; /* Winograd transform of the weights, or NULL */
    enum iseg_precision     prec;
    struct iseg__qweights   q;    /* BF16, INT8: the converted weights (pa and wino NULL) */
};

/* ---- Winograd selection ------------------------------------------------------------------- */

static _Atomic int g_wino_mode; /* enum iseg__wino_mode */

/* The tile of ISEG_WINO_AUTO. F(4,3): 4x fewer multiplies than direct (F(2,3): 2.25x); its NMSE
 * against the double-precision reference is ~1e-11 at the real layer scales (F(2,3) ~2e-13,
 * direct ~8e-14), far inside the 1e-7 bar, and the torchvision parity tests pass with it. */
#define WINO_AUTO_M 4

static _Atomic int g_wino_env; /* ISEG_WINOGRAD read */

void iseg__conv2d_set_wino(enum iseg__wino_mode mode) {
    g_wino_env  = 1;
    g_wino_mode = (int)mode;
}

/* ISEG_WINOGRAD=off|f2|f4 (before the first convolution is made): an internal switch for
 * before/after comparisons of whole models; iseg__conv2d_set_wino() overrides it */
static void wino_env(void) {
    if (g_wino_env) return;
    g_wino_env    = 1;
    const char *v = getenv("ISEG_WINOGRAD");
    if (!v) return;
    if (!strcmp(v, "off")) g_wino_mode = ISEG_WINO_OFF;
    else if (!strcmp(v, "f2")) g_wino_mode = ISEG_WINO_F2;
    else if (!strcmp(v, "f4")) g_wino_mode = ISEG_WINO_F4;
}

static bool wino_shape(const struct iseg_conv2d_desc *d) {
    return d->kh == 3 && d->kw == 3 && d->stride_h == 1 && d->stride_w == 1 && d->dil_h == 1 &&
           d->dil_w == 1 && d->groups == 1;
}

/* the tile size to build at init (0: none) */
static int wino_init_m(const struct iseg_conv2d_desc *d) {
    wino_env();
    if (!wino_shape(d)) return 0;
    switch ((enum iseg__wino_mode)g_wino_mode) {
    case ISEG_WINO_OFF: return 0;
    case ISEG_WINO_F2: return 2;
    case ISEG_WINO_F4: return 4;
    default: return d->cin >= 64 && d->cout >= 64 ? WINO_AUTO_M : 0;
    }
}

bool iseg__conv2d_winograd(const struct iseg_conv2d_desc *d) { return wino_init_m(d) != 0; }

int iseg__conv2d_wino_m(const iseg_conv2d_t c, int B, int h, int w) {
    if (!c->wino) return 0;
    int m = iseg__wino_m(c->wino);
    if (!c->pa) return m; /* no direct weights: Winograd whatever the mode and shape */
    enum iseg__wino_mode mode = (enum iseg__wino_mode)g_wino_mode;
    if (mode == ISEG_WINO_OFF) return 0;
    if (mode == ISEG_WINO_AUTO) {
        /* partial tiles cost whole ones: direct where the tiled area is over twice the map
         * (with F(4,3): where Winograd would do more than half the direct multiplies) */
        int oh, ow;
        iseg_conv2d_out_hw(&c->d, h, w, &oh, &ow);
        (void)B;
        long tiled = (long)iseg__ceil_div(oh, m) * m * iseg__ceil_div(ow, m) * m;
        if (tiled > 2L * oh * ow) return 0;
    }
    return m;
}

struct iseg_conv2d_desc iseg_conv2d_default_desc(int cin, int cout, int k) {
    struct iseg_conv2d_desc d = {cin, cout, k, k, 1, 1, k / 2, k / 2, 1, 1, 1};
    return d;
}

static bool desc_ok(const struct iseg_conv2d_desc *d) {
    return d->cin >= 1 && d->cout >= 1 && d->kh >= 1 && d->kw >= 1 && d->stride_h >= 1 &&
           d->stride_w >= 1 && d->pad_h >= 0 && d->pad_w >= 0 && d->dil_h >= 1 &&
           d->dil_w >= 1 && d->groups >= 1 && d->cin % d->groups == 0 &&
           d->cout % d->groups == 0;
}

void iseg_conv2d_out_hw(const struct iseg_conv2d_desc *d, int h, int w, int *oh, int *ow) {
    int a = h + 2 * d->pad_h - d->dil_h * (d->kh - 1) - 1;
    int b = w + 2 * d->pad_w - d->dil_w * (d->kw - 1) - 1;
    ISEG_ASSERT(a >= 0 && b >= 0);
    *oh = a / d->stride_h + 1;
    *ow = b / d->stride_w + 1;
}

enum iseg_status iseg_conv2d_init(iseg_conv2d_t *out, const struct iseg_conv2d_desc *d,
                                  const float *weight, const float *bias) {
    return iseg__conv2d_init_ex(out, d, weight, bias, true);
}

static enum iseg_status conv_init(iseg_conv2d_t *out, const struct iseg_conv2d_desc *d,
                                  const float *weight, const float *bias, bool winograd,
                                  enum iseg_precision prec);

enum iseg_status iseg__conv2d_init_ex(iseg_conv2d_t *out, const struct iseg_conv2d_desc *d,
                                      const float *weight, const float *bias, bool winograd) {
    return conv_init(out, d, weight, bias, winograd, ISEG_PRECISION_FP32);
}

enum iseg_status iseg_conv2d_init_precision(iseg_conv2d_t *out, const struct iseg_conv2d_desc *d,
                                            const float *weight, const float *bias,
                                            enum iseg_precision p) {
    ISEG_ASSERT(out && d && weight);
    *out = NULL;
    if (p < 0 || p >= ISEG_PRECISION_COUNT || !desc_ok(d)) return ISEG_STATUS_EINVAL;
    return conv_init(out, d, weight, bias, true, p);
}

enum iseg_precision iseg_conv2d_precision(const iseg_conv2d_t c) { return c->prec; }

static enum iseg_status conv_init(iseg_conv2d_t *out, const struct iseg_conv2d_desc *d,
                                  const float *weight, const float *bias, bool winograd,
                                  enum iseg_precision prec) {
    ISEG_ASSERT(out && d && weight);
    *out = NULL;
    if (!desc_ok(d)) return ISEG_STATUS_EINVAL;
    struct iseg_conv2d *c = iseg__calloc(1, sizeof(*c));
    if (!c) return ISEG_STATUS_ENOMEM;
    c->d     = *d;
    c->prec  = prec;
    c->M     = d->cout / d->groups;
    c->K     = d->cin / d->groups * d->kh * d->kw;
    c->pa_gs = iseg__gemm_packed_a_size(c->M, c->K);
    if (bias) {
        c->bias = iseg__malloc_array((size_t)d->cout, sizeof(float));
        if (!c->bias) goto fail;
        memcpy(c->bias, bias, (size_t)d->cout * sizeof(float));
    }
    if (prec != ISEG_PRECISION_FP32) {
        /* the word GEMM; never Winograd (in bf16, rounding the transformed tiles would cost
         * F(4,3) ~100x the error of direct bf16 products: NMSE 3e-4 against 3e-6) */
        if (iseg__qweights_init(&c->q, iseg__qkind_of(prec), weight, c->M, c->K, d->groups))
            goto fail;
        *out = c;
        return ISEG_STATUS_OK;
    }
    int wm = winograd ? wino_init_m(d) : 0;
    if (wm && iseg__wino_init(&c->wino, wm, weight, d->cin, d->cout) != ISEG_STATUS_OK) goto fail;
    /* With ISEG_WINO_AUTO, Winograd runs on every map but the tiny ones where partial tiles
     * would cost over twice the direct multiplies (a few pixels a side, where either path
     * takes microseconds): those take Winograd too, and the direct weights, a quarter of the
     * transformed ones' size, are not kept (about 54 MB of Mask R-CNN's 3x3 layers). The
     * forced modes keep both, so that switching between them still works. */
    if (!(wm && g_wino_mode == ISEG_WINO_AUTO)) {
        c->pa = iseg__malloc_array(c->pa_gs * (size_t)d->groups, sizeof(float));
        if (!c->pa) goto fail;
        for (int g = 0; g < d->groups; g++)
            iseg__gemm_pack_a(c->pa + g * c->pa_gs, weight + (size_t)g * c->M * c->K,
                              (size_t)c->K, false, c->M, c->K);
    }
    *out = c;
    return ISEG_STATUS_OK;
fail:
    iseg_conv2d_free(c);
    return ISEG_STATUS_ENOMEM;
}

enum iseg_status iseg_conv2d_set_weights(iseg_engine_t e, iseg_conv2d_t c, const float *weight,
                                         const float *bias) {
    ISEG_ASSERT(c && weight);
    if (!bias != !c->bias || c->prec != ISEG_PRECISION_FP32) return ISEG_STATUS_EINVAL;
    if (bias) memcpy(c->bias, bias, (size_t)c->d.cout * sizeof(float));
    if (c->wino) {
        enum iseg_status st = iseg__wino_update(e, c->wino, weight);
        if (st) return st;
    }
    if (c->pa)
        for (int g = 0; g < c->d.groups; g++)
            iseg__gemm_pack_a(c->pa + g * c->pa_gs, weight + (size_t)g * c->M * c->K,
                              (size_t)c->K, false, c->M, c->K);
    return ISEG_STATUS_OK;
}

void iseg_conv2d_free(iseg_conv2d_t c) {
    if (!c) return;
    iseg__free(c->pa);
    iseg__free(c->bias);
    iseg__wino_free(c->wino);
    iseg__qweights_free(&c->q);
    iseg__free(c);
}

const struct iseg_conv2d_desc *iseg_conv2d_get_desc(const iseg_conv2d_t c) { return &c->d; }

/* ---- on-the-fly im2col ------------------------------------------------------------------- */

struct im2col {
    const struct iseg_conv2d_desc *d;
    const float                   *x; /* (B, cin, h, w) */
    int                            h, w, oh, ow, cin_g;
    bool                           direct;  /* 1x1, stride 1, no padding: B is x itself */
    bool                           batched; /* the columns are all images' pixels in a row */
    bool                           table;   /* batched, packed by pack_table() (one group g) */
    bool                           gather;  /* pack_table() may use AVX2 (int32 offsets fit) */
    int                            g;
};

/* one output row's run of columns of the chunk (of image img) */
struct seg {
    int img, oy, ox, len, col;
};

#define SEG_MAX   512  /* output-row runs per chunk: at most nc + 1 */
#define BATCH_OHW 1024 /* output pixels per image below which a batch is one GEMM */

/* Store row k of the columns [col, col + len) of a B block: column j lives in panel j / nr at
 * lane j % nr of that panel's row k (dk = dst + k nr, panels ps floats apart). src NULL: zeros. */
static inline void put_run(float *dk, size_t ps, int nr, int col, const float *src, int len) {
    int    lane = col % nr;
    float *d    = dk + (size_t)(col / nr) * ps + lane;
    while (len > 0) {
        int n = nr - lane < len ? nr - lane : len;
        if (src) {
            memcpy(d, src, (size_t)n * sizeof(float));
            src += n;
        } else {
            memset(d, 0, (size_t)n * sizeof(float));
        }
        len -= n;
        d += ps - (size_t)lane; /* start of the next panel's row k */
        lane = 0;
    }
}

#define TAB_MAX 512 /* columns per chunk of the table packer (nc <= 8 NR) */

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

/* pack_table()'s row loop with AVX2 gathers of 8 columns, padding taps masked off (read as 0) */
__attribute__((target("avx2,fma"))) static void
pack_table_avx2(const float *x, const int32_t *b32, const uint32_t *msk, float *dst, int kc,
                int ncp, int nr, int ci, int ky, int kx, const struct iseg_conv2d_desc *d, int w,
                size_t hw) {
    size_t ps = (size_t)kc * nr;
    for (int k = 0; k < kc; k++) {
        int     delta = (int)((size_t)ci * hw) + ky * d->dil_h * w + kx * d->dil_w;
        int     bit   = ky * d->kw + kx;
        __m256i dv = _mm256_set1_epi32(delta), sh = _mm256_set1_epi32(31 - bit);
        for (int p0 = 0; p0 < ncp; p0 += nr) {
            float *dp = dst + (size_t)(p0 / nr) * ps + (size_t)k * nr;
            for (int j = 0; j < nr; j += 8) {
                __m256i b = _mm256_loadu_si256((const __m256i *)(b32 + p0 + j));
                __m256i m = _mm256_loadu_si256((const __m256i *)(msk + p0 + j));
                __m256  ok = _mm256_castsi256_ps(_mm256_sllv_epi32(m, sh)); /* sign: the tap bit */
                __m256  v  = _mm256_mask_i32gather_ps(_mm256_setzero_ps(), x,
                                                      _mm256_add_epi32(b, dv), ok, 4);
                _mm256_storeu_ps(dp + j, v);
            }
        }
        if (++kx == d->kw) {
            kx = 0;
            if (++ky == d->kh) {
                ky = 0;
                ci++;
            }
        }
    }
}
#endif

/* The batched packer for small images: output rows are only a few pixels long, so runs are too
 * short for memcpy. Instead a per-column table (where the column's receptive field starts in x,
 * and which of the kh kw taps fall inside its image) makes each element one indexed load. */
static void pack_table(const struct im2col *s, float *dst, int k0, int kc, int n0, int nc, int nr) {
    const struct iseg_conv2d_desc *d = s->d;
    size_t       hw = (size_t)s->h * s->w, ohw = (size_t)s->oh * s->ow;
    size_t       is = (size_t)d->cin * hw;
    size_t       ps = (size_t)kc * nr;
    ptrdiff_t    base[TAB_MAX];
    uint32_t     msk[TAB_MAX];
    for (int col = 0; col < nc; col++) {
        size_t n = (size_t)n0 + col, img = n / ohw, p = n % ohw;
        int    iy0 = (int)(p / s->ow) * d->stride_h - d->pad_h;
        int    ix0 = (int)(p % s->ow) * d->stride_w - d->pad_w;
        base[col]  = (ptrdiff_t)(img * is) + (ptrdiff_t)iy0 * s->w + ix0;
        uint32_t m = 0;
        for (int ky = 0; ky < d->kh; ky++) {
            int iy = iy0 + ky * d->dil_h;
            for (int kx = 0; kx < d->kw; kx++) {
                int ix = ix0 + kx * d->dil_w;
                if (iy >= 0 && iy < s->h && ix >= 0 && ix < s->w) m |= 1u << (ky * d->kw + kx);
            }
        }
        msk[col] = m;
    }
    int kk = d->kh * d->kw;
    int ci = k0 / kk, r = k0 % kk, ky = r / d->kw, kx = r % d->kw;
    /* the group's channels; x[0] stands in for a padding tap so that the load is unconditional */
    const float *x = s->x + (size_t)s->g * s->cin_g * hw;
#if defined(__x86_64__) && defined(__GNUC__)
    if (s->gather && nr % 8 == 0) {
        int32_t b32[TAB_MAX];
        int     ncp = iseg__ceil_div(nc, nr) * nr;
        for (int col = 0; col < ncp; col++) {
            b32[col] = col < nc ? (int32_t)base[col] : 0;
            if (col >= nc) msk[col] = 0; /* the zero padding of the last panel */
        }
        pack_table_avx2(x, b32, msk, dst, kc, ncp, nr, ci, ky, kx, d, s->w, hw);
        return;
    }
#endif
    for (int k = 0; k < kc; k++) {
        ptrdiff_t delta = (ptrdiff_t)ci * hw + (ptrdiff_t)ky * d->dil_h * s->w + kx * d->dil_w;
        int       bit   = ky * d->kw + kx;
        for (int p0 = 0; p0 < nc; p0 += nr) {
            float *dp = dst + (size_t)(p0 / nr) * ps + (size_t)k * nr;
            int    nv = nc - p0 < nr ? nc - p0 : nr;
            for (int j = 0; j < nv; j++) {
                int       col = p0 + j;
                bool      ok  = (msk[col] >> bit) & 1u;
                ptrdiff_t i   = ok ? base[col] + delta : 0;
                float     v   = x[i];
                dp[j]         = ok ? v : 0.0f;
            }
            for (int j = nv; j < nr; j++) dp[j] = 0.0f;
        }
        if (++kx == d->kw) {
            kx = 0;
            if (++ky == d->kh) {
                ky = 0;
                ci++;
            }
        }
    }
}

/* Packs the im2col block (rows k0..k0+kc, columns n0..n0+nc) row by row: each row (ci, ky, kx)
 * is a few runs of one input row (long, contiguous for stride 1, so the loads stream), with
 * zeros where the kernel overhangs the image. */
static void pack_im2col(const void *vctx, int b, int g, float *dst, int k0, int kc, int n0,
                        int nc, int nr) {
    const struct im2col           *s = vctx;
    const struct iseg_conv2d_desc *d = s->d;
    size_t       hw = (size_t)s->h * s->w, ohw = (size_t)s->oh * s->ow;
    size_t       is = (size_t)d->cin * hw; /* image stride of x */
    const float *xg = s->x + ((size_t)b * d->cin + (size_t)g * s->cin_g) * hw;
    size_t       ps = (size_t)kc * nr;
    int          np = iseg__ceil_div(nc, nr), tail = np * nr - nc;
    float       *dtail = dst + (size_t)(np - 1) * ps + (nr - tail);
    if (s->table) {
        ISEG_ASSERT(b == 0 && g == s->g);
        pack_table(s, dst, k0, kc, n0, nc, nr);
        return;
    }
    if (s->direct && !s->batched) {
        for (int k = 0; k < kc; k++) {
            put_run(dst + (size_t)k * nr, ps, nr, 0, xg + (size_t)(k0 + k) * hw + (size_t)n0, nc);
            if (tail) memset(dtail + (size_t)k * nr, 0, (size_t)tail * sizeof(float));
        }
        return;
    }
    struct seg segs[SEG_MAX];
    int        nseg = 0;
    for (int col = 0; col < nc;) {
        /* batched: column n0 + col is pixel p of image img (b is 0) */
        size_t n = (size_t)n0 + col, img = s->batched ? n / ohw : 0, p = s->batched ? n % ohw : n;
        int    oy = (int)(p / s->ow), ox = (int)(p % s->ow);
        int    room = s->direct ? (int)(ohw - p) : s->ow - ox;
        int    len  = room < nc - col ? room : nc - col;
        ISEG_ASSERT(nseg < SEG_MAX);
        segs[nseg++] = (struct seg){(int)img, oy, ox, len, col};
        col += len;
    }
    if (s->direct) {
        for (int k = 0; k < kc; k++) {
            for (int si = 0; si < nseg; si++) {
                const struct seg *sg = &segs[si];
                const float *src = xg + sg->img * is + (size_t)(k0 + k) * hw +
                                   (size_t)sg->oy * s->ow + sg->ox;
                put_run(dst + (size_t)k * nr, ps, nr, sg->col, src, sg->len);
            }
            if (tail) memset(dtail + (size_t)k * nr, 0, (size_t)tail * sizeof(float));
        }
        return;
    }
    float tmp[SEG_MAX]; /* one strided run, gathered */
    int   sw = d->stride_w, kk = d->kh * d->kw;
    int   ci = k0 / kk, r = k0 % kk, ky = r / d->kw, kx = r % d->kw;
    for (int k = 0; k < kc; k++) {
        float *dk = dst + (size_t)k * nr;
        for (int si = 0; si < nseg; si++) {
            const struct seg *sg  = &segs[si];
            const float      *xc  = xg + sg->img * is + (size_t)ci * hw;
            int               len = sg->len;
            int               iy  = sg->oy * d->stride_h - d->pad_h + ky * d->dil_h;
            if (iy < 0 || iy >= s->h) {
                put_run(dk, ps, nr, sg->col, NULL, len);
                continue;
            }
            const float *row = xc + (size_t)iy * s->w;
            int          ix0 = sg->ox * sw - d->pad_w + kx * d->dil_w;
            /* valid t: 0 <= ix0 + t sw < w (divisions only at the borders) */
            int t_lo = 0, t_hi = len;
            if (ix0 < 0) t_lo = (-ix0 + sw - 1) / sw;
            if (ix0 + (len - 1) * sw >= s->w) t_hi = ix0 >= s->w ? 0 : (s->w - 1 - ix0) / sw + 1;
            if (t_hi > len) t_hi = len;
            if (t_lo > t_hi) t_lo = t_hi;
            if (t_lo) put_run(dk, ps, nr, sg->col, NULL, t_lo);
            if (t_hi > t_lo) {
                const float *src = row + ix0 + t_lo * sw;
                if (sw != 1) {
                    for (int t = 0; t < t_hi - t_lo; t++) tmp[t] = src[(size_t)t * sw];
                    src = tmp;
                }
                put_run(dk, ps, nr, sg->col + t_lo, src, t_hi - t_lo);
            }
            if (t_hi < len) put_run(dk, ps, nr, sg->col + t_hi, NULL, len - t_hi);
        }
        if (tail) memset(dtail + (size_t)k * nr, 0, (size_t)tail * sizeof(float));
        if (++kx == d->kw) {
            kx = 0;
            if (++ky == d->kh) {
                ky = 0;
                ci++;
            }
        }
    }
}

void iseg_conv2d_forward(iseg_engine_t e, const iseg_conv2d_t c, float *y, const float *x, int B,
                         int h, int w, const float *residual, enum iseg_act act) {
    ISEG_ASSERT(e && c && y && x && B >= 1 && h >= 1 && w >= 1);
    ISEG_ASSERT(y != x);
    const struct iseg_conv2d_desc *d = &c->d;
    if (iseg__conv2d_wino_m(c, B, h, w)) {
        iseg__wino_forward(e, c->wino, d, y, x, B, h, w, c->bias, residual,
                           act == ISEG_ACT_RELU);
        return;
    }
    int oh, ow;
    iseg_conv2d_out_hw(d, h, w, &oh, &ow);
    struct im2col s = {d, x, h, w, oh, ow, d->cin / d->groups, false, false, false, false, 0};
    s.direct = d->kh == 1 && d->kw == 1 && d->stride_h == 1 && d->stride_w == 1 &&
               d->pad_h == 0 && d->pad_w == 0;
    size_t ohw = (size_t)oh * ow;
    if (c->prec != ISEG_PRECISION_FP32) {
        /* image by image (the word GEMM has no batched columns) */
        struct iseg__qgemm_desc q;
        memset(&q, 0, sizeof(q));
        if (c->prec == ISEG_PRECISION_INT8)
            q.act = iseg__qact_of(e, x, (size_t)B * d->cin * h * w);
        q.M = c->M, q.N = (int)ohw, q.K = c->K, q.n_b = B, q.n_g = d->groups;
        q.w = &c->q;
        if (s.direct) { /* 1x1: B is x itself */
            q.B = x, q.ldb = ohw, q.b_bs = (ptrdiff_t)((size_t)d->cin * ohw);
            q.b_gs = (ptrdiff_t)((size_t)s.cin_g * ohw);
        } else {
            q.pack_b = pack_im2col, q.pack_ctx = &s;
        }
        q.C = y, q.ldc = ohw, q.c_bs = (ptrdiff_t)((size_t)d->cout * ohw);
        q.c_gs = (ptrdiff_t)((size_t)c->M * ohw);
        if (residual) q.C0 = residual, q.ldc0 = ohw, q.c0_bs = q.c_bs, q.c0_gs = q.c_gs;
        q.bias = c->bias, q.relu = act == ISEG_ACT_RELU;
        iseg__qgemm_run(e, &q);
        return;
    }
    /* Small images (the RoI heads: 7x7, 14x14) would give the kernel short, mostly padded
     * column chunks one image at a time: the whole batch becomes one GEMM whose N runs over
     * every image's pixels, packed across image boundaries. Each element's sum is the same
     * (K blocks in order), so the result is bit-identical to the per-image GEMM. */
    s.batched = B > 1 && ohw < BATCH_OHW && (size_t)B * ohw <= INT32_MAX;
    struct iseg__gemm_desc g;
    memset(&g, 0, sizeof(g));
    g.M = c->M, g.N = (int)ohw, g.K = c->K, g.n_b = B, g.n_g = d->groups;
    g.pa = c->pa, g.pa_gs = (ptrdiff_t)c->pa_gs;
    g.pack_b = pack_im2col, g.pack_ctx = &s;
    g.C = y, g.ldc = ohw, g.c_bs = (ptrdiff_t)((size_t)d->cout * ohw), g.c_gs = (ptrdiff_t)((size_t)c->M * ohw);
    if (residual) g.C0 = residual, g.ldc0 = ohw, g.c0_bs = g.c_bs, g.c0_gs = g.c_gs;
    if (s.batched) {
        g.N = (int)((size_t)B * ohw), g.n_b = 1;
        g.n_img = (int)ohw, g.c_is = g.c_bs, g.c0_is = g.c0_bs;
        s.table = !s.direct && d->kh * d->kw <= 32 && d->groups == 1;
#if defined(__x86_64__) && defined(__GNUC__)
        __builtin_cpu_init();
        s.gather = s.table && __builtin_cpu_supports("avx2") &&
                   (size_t)B * d->cin * h * w < (size_t)INT32_MAX;
#endif
    }
    g.bias_row = c->bias;
    g.relu     = act == ISEG_ACT_RELU;
    iseg__gemm_run(e, &g);
}

void iseg_conv2d_forward_ref(float *y, const float *x, const float *weight, const float *bias,
                             const struct iseg_conv2d_desc *d, int B, int h, int w,
                             const float *residual, enum iseg_act act) {
    int oh, ow;
    iseg_conv2d_out_hw(d, h, w, &oh, &ow);
    int cin_g = d->cin / d->groups, cout_g = d->cout / d->groups;
    for (int b = 0; b < B; b++)
        for (int co = 0; co < d->cout; co++) {
            int g = co / cout_g;
            for (int oy = 0; oy < oh; oy++)
                for (int ox = 0; ox < ow; ox++) {
                    double s = 0.0;
                    for (int ci = 0; ci < cin_g; ci++)
                        for (int ky = 0; ky < d->kh; ky++) {
                            int iy = oy * d->stride_h - d->pad_h + ky * d->dil_h;
                            if (iy < 0 || iy >= h) continue;
                            for (int kx = 0; kx < d->kw; kx++) {
                                int ix = ox * d->stride_w - d->pad_w + kx * d->dil_w;
                                if (ix < 0 || ix >= w) continue;
                                float xv = x[(((size_t)b * d->cin + g * cin_g + ci) * h + iy) * w + ix];
                                float wv = weight[(((size_t)co * cin_g + ci) * d->kh + ky) * d->kw + kx];
                                s += (double)xv * wv;
                            }
                        }
                    size_t o = (((size_t)b * d->cout + co) * oh + oy) * ow + ox;
                    if (bias) s += bias[co];
                    if (residual) s += residual[o];
                    float v = (float)s;
                    if (act == ISEG_ACT_RELU && v < 0.0f) v = 0.0f;
                    y[o] = v;
                }
        }
}

void iseg_conv2d_forward_int8_ref(float *y, const float *x, const float *weight,
                                  const float *bias, const struct iseg_conv2d_desc *d, int B,
                                  int h, int w, const float *residual, enum iseg_act act) {
    int oh, ow;
    iseg_conv2d_out_hw(d, h, w, &oh, &ow);
    int    cin_g = d->cin / d->groups, cout_g = d->cout / d->groups;
    int    K     = cin_g * d->kh * d->kw;
    struct iseg__qact p  = iseg__qact_of_ref(x, (size_t)B * d->cin * h * w);
    int8_t           *qw = iseg__malloc_array((size_t)K, 1);
    ISEG_ASSERT(qw);
    for (int co = 0; co < d->cout; co++) {
        int   g  = co / cout_g;
        float sw = iseg__qweight_row(qw, weight + (size_t)co * K, K);
        for (int b = 0; b < B; b++)
            for (int oy = 0; oy < oh; oy++)
                for (int ox = 0; ox < ow; ox++) {
                    int32_t acc = 0; /* sum of q_w (q_x - zp): padding taps quantize 0.0f */
                    for (int ci = 0; ci < cin_g; ci++)
                        for (int ky = 0; ky < d->kh; ky++)
                            for (int kx = 0; kx < d->kw; kx++) {
                                int   iy = oy * d->stride_h - d->pad_h + ky * d->dil_h;
                                int   ix = ox * d->stride_w - d->pad_w + kx * d->dil_w;
                                bool  in = iy >= 0 && iy < h && ix >= 0 && ix < w;
                                size_t xi = (((size_t)b * d->cin + g * cin_g + ci) * h + iy) * w + ix;
                                float  xv = in ? x[xi] : 0.0f;
                                int   qx = iseg__qact_one(xv, &p);
                                acc += qw[(ci * d->kh + ky) * d->kw + kx] * (qx - p.zp);
                            }
                    size_t o = (((size_t)b * d->cout + co) * oh + oy) * ow + ox;
                    float  v = (float)acc * (p.scale * sw);
                    if (residual) v = residual[o] + v;
                    if (bias) v += bias[co];
                    if (act == ISEG_ACT_RELU && v < 0.0f) v = 0.0f;
                    y[o] = v;
                }
    }
    iseg__free(qw);
}
