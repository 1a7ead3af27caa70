/* conv2d.c - 2-d convolution (torch Conv2d): GEMM of the packed weights (cout/g, cin/g kh kw)
 * with an im2col matrix (cin/g kh kw, oh ow) that is never materialised: the GEMM driver asks
 * for one (K block x N chunk) panel at a time and pack_im2col() gathers it straight from x.
 * Bias, residual and ReLU are applied in the GEMM epilogue. */
#include <string.h>

#include "nn/nn_impl.h"

struct iseg_conv2d {
    struct iseg_conv2d_desc d;
    int                     M, K; /* per group: cout/g, cin/g kh kw */
    float                  *pa;   /* packed weights, groups of iseg__gemm_packed_a_size(M, K) */
    size_t                  pa_gs;
    float                  *bias; /* (cout) or NULL */
};

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
    ISEG_ASSERT(out && d && weight);
    *out = NULL;
    if (!desc_ok(d)) return ISEG_STATUS_EINVAL;
    struct iseg_conv2d *c = iseg__calloc(1, sizeof(*c));
    if (!c) return ISEG_STATUS_ENOMEM;
    c->d     = *d;
    c->M     = d->cout / d->groups;
    c->K     = d->cin / d->groups * d->kh * d->kw;
    c->pa_gs = iseg__gemm_packed_a_size(c->M, c->K);
    c->pa    = iseg__malloc_array(c->pa_gs * (size_t)d->groups, sizeof(float));
    if (!c->pa) goto fail;
    for (int g = 0; g < d->groups; g++)
        iseg__gemm_pack_a(c->pa + g * c->pa_gs, weight + (size_t)g * c->M * c->K, (size_t)c->K,
                          false, c->M, c->K);
    if (bias) {
        c->bias = iseg__malloc_array((size_t)d->cout, sizeof(float));
        if (!c->bias) goto fail;
        memcpy(c->bias, bias, (size_t)d->cout * sizeof(float));
    }
    *out = c;
    return ISEG_STATUS_OK;
fail:
    iseg_conv2d_free(c);
    return ISEG_STATUS_ENOMEM;
}

void iseg_conv2d_free(iseg_conv2d_t c) {
    if (!c) return;
    iseg__free(c->pa);
    iseg__free(c->bias);
    iseg__free(c);
}

const struct iseg_conv2d_desc *iseg_conv2d_get_desc(const iseg_conv2d_t c) { return &c->d; }

/* ---- on-the-fly im2col ------------------------------------------------------------------- */

struct im2col {
    const struct iseg_conv2d_desc *d;
    const float                   *x; /* (B, cin, h, w) */
    int                            h, w, oh, ow, cin_g;
    bool                           direct; /* 1x1, stride 1, no padding: B is x itself */
};

/* one output row's run of columns of the chunk */
struct seg {
    int oy, ox, len, col;
};

#define SEG_MAX 512 /* output-row runs per chunk: at most nc + 1 */

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

/* Packs the im2col block (rows k0..k0+kc, columns n0..n0+nc) row by row: each row (ci, ky, kx)
 * is a few runs of one input row (long, contiguous for stride 1, so the loads stream), with
 * zeros where the kernel overhangs the image. */
static void pack_im2col(const void *vctx, int b, int g, float *dst, int k0, int kc, int n0,
                        int nc, int nr) {
    const struct im2col           *s = vctx;
    const struct iseg_conv2d_desc *d = s->d;
    size_t       hw = (size_t)s->h * s->w;
    const float *xg = s->x + ((size_t)b * d->cin + (size_t)g * s->cin_g) * hw;
    size_t       ps = (size_t)kc * nr;
    int          np = iseg__ceil_div(nc, nr), tail = np * nr - nc;
    float       *dtail = dst + (size_t)(np - 1) * ps + (nr - tail);
    if (s->direct) {
        for (int k = 0; k < kc; k++) {
            put_run(dst + (size_t)k * nr, ps, nr, 0, xg + (size_t)(k0 + k) * hw + (size_t)n0, nc);
            if (tail) memset(dtail + (size_t)k * nr, 0, (size_t)tail * sizeof(float));
        }
        return;
    }
    struct seg segs[SEG_MAX];
    int        nseg = 0;
    for (int col = 0; col < nc;) {
        int oy = (n0 + col) / s->ow, ox = (n0 + col) % s->ow;
        int len = s->ow - ox < nc - col ? s->ow - ox : nc - col;
        ISEG_ASSERT(nseg < SEG_MAX);
        segs[nseg++] = (struct seg){oy, ox, len, col};
        col += len;
    }
    float tmp[SEG_MAX]; /* one strided run, gathered */
    int   sw = d->stride_w, kk = d->kh * d->kw;
    int   ci = k0 / kk, r = k0 % kk, ky = r / d->kw, kx = r % d->kw;
    for (int k = 0; k < kc; k++) {
        float       *dk = dst + (size_t)k * nr;
        const float *xc = xg + (size_t)ci * hw;
        for (int si = 0; si < nseg; si++) {
            const struct seg *sg  = &segs[si];
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
    int oh, ow;
    iseg_conv2d_out_hw(d, h, w, &oh, &ow);
    struct im2col s = {d, x, h, w, oh, ow, d->cin / d->groups, false};
    s.direct = d->kh == 1 && d->kw == 1 && d->stride_h == 1 && d->stride_w == 1 &&
               d->pad_h == 0 && d->pad_w == 0;
    size_t ohw = (size_t)oh * ow;
    struct iseg__gemm_desc g;
    memset(&g, 0, sizeof(g));
    g.M = c->M, g.N = (int)ohw, g.K = c->K, g.n_b = B, g.n_g = d->groups;
    g.pa = c->pa, g.pa_gs = (ptrdiff_t)c->pa_gs;
    g.pack_b = pack_im2col, g.pack_ctx = &s;
    g.C = y, g.ldc = ohw, g.c_bs = (ptrdiff_t)((size_t)d->cout * ohw), g.c_gs = (ptrdiff_t)((size_t)c->M * ohw);
    if (residual) g.C0 = residual, g.ldc0 = ohw, g.c0_bs = g.c_bs, g.c0_gs = g.c_gs;
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
