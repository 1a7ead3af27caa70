/* deconv2d.c - transposed convolution (torch ConvTranspose2d) as GEMM + col2im:
 * cols (cout/g kh kw, h w) = W_g^T . x_g, then every output pixel gathers its contributions
 * in a fixed (ky, kx) order, plus bias and ReLU. Images are processed in slices so that the
 * column buffer stays bounded. When the kernel equals the stride (no padding, dilation or
 * output padding) the taps never overlap: a slice is one GEMM over all its images' pixels and
 * col2im is a scatter. In bf16 and int8 the GEMM is the word GEMM (nn_impl.h). */
#include <string.h>

#include "nn/nn_impl.h"

#define COLS_MAX_FLOATS ((size_t)8 << 20) /* 32 MiB of columns per slice (at least 1 image) */

struct iseg_deconv2d {
    struct iseg_deconv2d_desc d;
    int                       M, K; /* per group: cout/g kh kw, cin/g */
    float                    *pa;   /* FP32 */
    size_t                    pa_gs;
    float                    *bias;
    enum iseg_precision       prec;
    struct iseg__qweights     q;    /* BF16, INT8: the GEMM's A (per group M x K), converted */
};

void iseg_deconv2d_out_hw(const struct iseg_deconv2d_desc *d, int h, int w, int *oh, int *ow) {
    *oh = (h - 1) * d->stride_h - 2 * d->pad_h + d->dil_h * (d->kh - 1) + d->out_pad_h + 1;
    *ow = (w - 1) * d->stride_w - 2 * d->pad_w + d->dil_w * (d->kw - 1) + d->out_pad_w + 1;
    ISEG_ASSERT(*oh >= 1 && *ow >= 1);
}

enum iseg_status iseg_deconv2d_init(iseg_deconv2d_t *out, const struct iseg_deconv2d_desc *d,
                                    const float *weight, const float *bias) {
    return iseg_deconv2d_init_precision(out, d, weight, bias, ISEG_PRECISION_FP32);
}

enum iseg_precision iseg_deconv2d_precision(const iseg_deconv2d_t c) { return c->prec; }

enum iseg_status iseg_deconv2d_init_precision(iseg_deconv2d_t *out,
                                              const struct iseg_deconv2d_desc *d,
                                              const float *weight, const float *bias,
                                              enum iseg_precision prec) {
    ISEG_ASSERT(out && d && weight);
    *out = NULL;
    if (prec < 0 || prec >= ISEG_PRECISION_COUNT) return ISEG_STATUS_EINVAL;
    if (d->cin < 1 || d->cout < 1 || d->kh < 1 || d->kw < 1 || d->stride_h < 1 ||
        d->stride_w < 1 || d->pad_h < 0 || d->pad_w < 0 || d->dil_h < 1 || d->dil_w < 1 ||
        d->groups < 1 || d->cin % d->groups || d->cout % d->groups || d->out_pad_h < 0 ||
        d->out_pad_w < 0 ||
        (d->out_pad_h >= d->stride_h && d->out_pad_h >= d->dil_h) ||
        (d->out_pad_w >= d->stride_w && d->out_pad_w >= d->dil_w))
        return ISEG_STATUS_EINVAL;
    struct iseg_deconv2d *c = iseg__calloc(1, sizeof(*c));
    if (!c) return ISEG_STATUS_ENOMEM;
    c->d     = *d;
    c->M     = d->cout / d->groups * d->kh * d->kw;
    c->K     = d->cin / d->groups;
    c->pa_gs = iseg__gemm_packed_a_size(c->M, c->K);
    c->prec  = prec;
    if (prec != ISEG_PRECISION_FP32) {
        /* A row-major for the word GEMM: element (m, k) of group g = W[g K + k][m] */
        size_t n  = (size_t)d->groups * c->M * c->K;
        float *wt = iseg__malloc_array(n, sizeof(float));
        if (!wt) goto fail;
        for (int g = 0; g < d->groups; g++)
            for (int m = 0; m < c->M; m++)
                for (int k = 0; k < c->K; k++)
                    wt[((size_t)g * c->M + m) * c->K + k] =
                        weight[((size_t)g * c->K + k) * c->M + m];
        enum iseg_status st =
            iseg__qweights_init(&c->q, iseg__qkind_of(prec), wt, c->M, c->K, d->groups);
        iseg__free(wt);
        if (st) goto fail;
    } else {
        c->pa = iseg__malloc_array(c->pa_gs * (size_t)d->groups, sizeof(float));
        if (!c->pa) goto fail;
        /* weight (cin, cout/g, kh, kw): group g's A (M, K) is element (m, k) = W[g K + k][m] */
        for (int g = 0; g < d->groups; g++)
            iseg__gemm_pack_a(c->pa + g * c->pa_gs, weight + (size_t)g * c->K * c->M,
                              (size_t)c->M, true, c->M, c->K);
    }
    if (bias) {
        c->bias = iseg__malloc_array((size_t)d->cout, sizeof(float));
        if (!c->bias) goto fail;
        memcpy(c->bias, bias, (size_t)d->cout * sizeof(float));
    }
    *out = c;
    return ISEG_STATUS_OK;
fail:
    iseg_deconv2d_free(c);
    return ISEG_STATUS_ENOMEM;
}

void iseg_deconv2d_free(iseg_deconv2d_t c) {
    if (!c) return;
    iseg__free(c->pa);
    iseg__free(c->bias);
    iseg__qweights_free(&c->q);
    iseg__free(c);
}

struct dense {
    const float *x; /* (B, cin, h w) */
    size_t       hw, bs, gs;
};

static void pack_x(const void *vctx, int b, int g, float *dst, int k0, int kc, int n0, int nc,
                   int nr) {
    const struct dense *s  = vctx;
    const float        *xg = s->x + (size_t)b * s->bs + (size_t)g * s->gs;
    for (int p = 0; p < nc; p += nr) {
        int    nv = nc - p < nr ? nc - p : nr;
        float *dp = dst + (size_t)p * kc;
        for (int k = 0; k < kc; k++, dp += nr) {
            memcpy(dp, xg + (size_t)(k0 + k) * s->hw + (size_t)(n0 + p), (size_t)nv * sizeof(float));
            for (int j = nv; j < nr; j++) dp[j] = 0.0f;
        }
    }
}

struct col2im {
    const struct iseg_deconv2d *c;
    const float                *cols; /* (nb, cout kh kw, h w) */
    float                      *y;    /* (nb, cout, oh, ow) */
    int                         h, w, oh, ow;
    bool                        relu;
};

/* one (image, output channel) plane; per pixel the taps are summed in (ky, kx) order */
static void col2im_task(void *vctx, size_t item, int ith) {
    const struct col2im             *s = vctx;
    const struct iseg_deconv2d_desc *d = &s->c->d;
    (void)ith;
    int          co   = (int)(item % (size_t)d->cout);
    size_t       b    = item / (size_t)d->cout;
    size_t       hw   = (size_t)s->h * s->w;
    size_t       kk   = (size_t)d->kh * d->kw;
    const float *cb   = s->cols + (b * d->cout + (size_t)co) * kk * hw;
    float       *yp   = s->y + (b * d->cout + (size_t)co) * (size_t)s->oh * s->ow;
    float        bias = s->c->bias ? s->c->bias[co] : 0.0f;
    for (int oy = 0; oy < s->oh; oy++)
        for (int ox = 0; ox < s->ow; ox++) {
            float acc = 0.0f;
            for (int ky = 0; ky < d->kh; ky++) {
                int ty = oy + d->pad_h - ky * d->dil_h;
                if (ty < 0 || ty % d->stride_h) continue;
                int iy = ty / d->stride_h;
                if (iy >= s->h) continue;
                for (int kx = 0; kx < d->kw; kx++) {
                    int tx = ox + d->pad_w - kx * d->dil_w;
                    if (tx < 0 || tx % d->stride_w) continue;
                    int ix = tx / d->stride_w;
                    if (ix >= s->w) continue;
                    acc += cb[((size_t)ky * d->kw + kx) * hw + (size_t)iy * s->w + ix];
                }
            }
            float v = acc + bias;
            if (s->relu && v < 0.0f) v = 0.0f;
            yp[(size_t)oy * s->ow + ox] = v;
        }
}

/* cols = A . B for a slice: the SGEMM on the packed weights, or the word GEMM (bf16, int8:
 * the activations of x quantized over the whole input, so that every slice shares a scale) */
static void cols_gemm(iseg_engine_t e, const iseg_deconv2d_t c, const struct iseg__qact *act,
                      int N, int n_b, iseg__pack_b_fn pack, const void *ctx, float *cols,
                      size_t ldc, ptrdiff_t c_bs) {
    const struct iseg_deconv2d_desc *d = &c->d;
    if (c->prec != ISEG_PRECISION_FP32) {
        struct iseg__qgemm_desc q;
        memset(&q, 0, sizeof(q));
        q.M = c->M, q.N = N, q.K = c->K, q.n_b = n_b, q.n_g = d->groups;
        q.w = &c->q, q.act = *act, q.pack_b = pack, q.pack_ctx = ctx;
        q.C = cols, q.ldc = ldc, q.c_bs = c_bs, q.c_gs = (ptrdiff_t)((size_t)c->M * ldc);
        iseg__qgemm_run(e, &q);
        return;
    }
    struct iseg__gemm_desc g;
    memset(&g, 0, sizeof(g));
    g.M = c->M, g.N = N, g.K = c->K, g.n_b = n_b, g.n_g = d->groups;
    g.pa = c->pa, g.pa_gs = (ptrdiff_t)c->pa_gs;
    g.pack_b = pack, g.pack_ctx = ctx;
    g.C = cols, g.ldc = ldc, g.c_bs = c_bs, g.c_gs = (ptrdiff_t)((size_t)c->M * ldc);
    iseg__gemm_run(e, &g);
}

/* ---- kernel == stride: taps never overlap ------------------------------------------------ */

/* B of the whole slice as one GEMM: column n = image (n / hw), pixel (n % hw) */
struct dense_batch {
    const float *x; /* (nb, cin, h w) */
    size_t       hw, bs, gs;
};

static void pack_x_batch(const void *vctx, int b, int g, float *dst, int k0, int kc, int n0,
                         int nc, int nr) {
    const struct dense_batch *s = vctx;
    (void)b;
    const float *xg = s->x + (size_t)g * s->gs;
    size_t       ps = (size_t)kc * nr;
    for (int k = 0; k < kc; k++) {
        float *dk = dst + (size_t)k * nr;
        for (int col = 0; col < nc;) {
            size_t n = (size_t)n0 + col, img = n / s->hw, p = n % s->hw;
            int    len = (int)(s->hw - p) < nc - col ? (int)(s->hw - p) : nc - col;
            const float *src = xg + img * s->bs + (size_t)(k0 + k) * s->hw + p;
            /* the run into panels: column col at panel col / nr, lane col % nr */
            while (len > 0) {
                int    lane = col % nr, m = nr - lane < len ? nr - lane : len;
                float *dp   = dk + (size_t)(col / nr) * ps + lane;
                memcpy(dp, src, (size_t)m * sizeof(float));
                src += m, col += m, len -= m;
            }
        }
        int np = iseg__ceil_div(nc, nr), tail = np * nr - nc;
        if (tail) memset(dk + (size_t)(np - 1) * ps + (nr - tail), 0, (size_t)tail * sizeof(float));
    }
}

struct scatter {
    const struct iseg_deconv2d *c;
    const float                *cols; /* (groups M, nb hw): row co kh kw + ky kw + kx */
    size_t                      ldc;
    float                      *y; /* (nb, cout, oh, ow) */
    int                         h, w, oh, ow;
    bool                        relu;
};

/* one (image, output channel) plane: each output pixel has exactly one tap, (ky, kx) =
 * (oy % kh, ox % kw); the arithmetic is col2im_task()'s: (0 + tap) + bias, then ReLU */
static void scatter_task(void *vctx, size_t item, int ith) {
    const struct scatter            *s = vctx;
    const struct iseg_deconv2d_desc *d = &s->c->d;
    (void)ith;
    int    co = (int)(item % (size_t)d->cout);
    size_t b  = item / (size_t)d->cout, hw = (size_t)s->h * s->w;
    int    kh = d->kh, kw = d->kw;
    float  bias = s->c->bias ? s->c->bias[co] : 0.0f;
    float *yp   = s->y + (b * d->cout + (size_t)co) * (size_t)s->oh * s->ow;
    for (int oy = 0; oy < s->oh; oy++) {
        int    ky = oy % kh, iy = oy / kh;
        float *yr = yp + (size_t)oy * s->ow;
        for (int kx = 0; kx < kw; kx++) {
            const float *src = s->cols + ((size_t)co * kh * kw + (size_t)ky * kw + kx) * s->ldc +
                               b * hw + (size_t)iy * s->w;
            for (int ix = 0; ix < s->w; ix++) {
                float v = (0.0f + src[ix]) + bias;
                if (s->relu && v < 0.0f) v = 0.0f;
                yr[(size_t)ix * kw + kx] = v;
            }
        }
    }
}

static void forward_no_overlap(iseg_engine_t e, const iseg_deconv2d_t c, float *y, const float *x,
                               int B, int h, int w, bool relu, const struct iseg__qact *act) {
    const struct iseg_deconv2d_desc *d = &c->d;
    size_t hw        = (size_t)h * w;
    size_t per_image = (size_t)d->groups * c->M * hw;
    int    nb        = per_image >= COLS_MAX_FLOATS ? 1 : (int)(COLS_MAX_FLOATS / per_image);
    if (nb > B) nb = B;
    if ((size_t)nb * hw > INT32_MAX) nb = (int)(INT32_MAX / hw);
    float *cols = iseg__engine_shared(e, (size_t)nb * per_image * sizeof(float));
    if (!cols) return;
    int oh = h * d->kh, ow = w * d->kw;
    for (int b0 = 0; b0 < B; b0 += nb) {
        int                n = B - b0 < nb ? B - b0 : nb;
        size_t             ldc = (size_t)n * hw;
        struct dense_batch s   = {x + (size_t)b0 * d->cin * hw, hw, (size_t)d->cin * hw,
                                  (size_t)c->K * hw};
        cols_gemm(e, c, act, (int)ldc, 1, pack_x_batch, &s, cols, ldc, 0);
        struct scatter sc = {c, cols, ldc, y + (size_t)b0 * d->cout * oh * ow, h, w, oh, ow, relu};
        iseg__engine_run(e, (size_t)n * d->cout, scatter_task, &sc);
    }
}

void iseg_deconv2d_forward(iseg_engine_t e, const iseg_deconv2d_t c, float *y, const float *x,
                           int B, int h, int w, enum iseg_act act) {
    ISEG_ASSERT(e && c && y && x && B >= 1 && h >= 1 && w >= 1);
    const struct iseg_deconv2d_desc *d = &c->d;
    struct iseg__qact qa = {1.0f, 1.0f, 0};
    if (c->prec == ISEG_PRECISION_INT8)
        qa = iseg__qact_of(e, x, (size_t)B * d->cin * h * w);
    /* the mask head's 2x2 stride-2 upsampling: one GEMM per slice and a scatter, no col2im */
    if (d->kh == d->stride_h && d->kw == d->stride_w && d->pad_h == 0 && d->pad_w == 0 &&
        d->dil_h == 1 && d->dil_w == 1 && d->out_pad_h == 0 && d->out_pad_w == 0) {
        forward_no_overlap(e, c, y, x, B, h, w, act == ISEG_ACT_RELU, &qa);
        return;
    }
    int oh, ow;
    iseg_deconv2d_out_hw(d, h, w, &oh, &ow);
    size_t hw        = (size_t)h * w;
    size_t per_image = (size_t)d->groups * c->M * hw;
    int    nb        = per_image >= COLS_MAX_FLOATS ? 1 : (int)(COLS_MAX_FLOATS / per_image);
    if (nb > B) nb = B;
    float *cols = iseg__engine_shared(e, (size_t)nb * per_image * sizeof(float));
    if (!cols) return;
    for (int b0 = 0; b0 < B; b0 += nb) {
        int          n  = B - b0 < nb ? B - b0 : nb;
        struct dense s  = {x + (size_t)b0 * d->cin * hw, hw, (size_t)d->cin * hw,
                           (size_t)c->K * hw};
        cols_gemm(e, c, &qa, (int)hw, n, pack_x, &s, cols, hw, (ptrdiff_t)per_image);
        struct col2im ci = {c, cols, y + (size_t)b0 * d->cout * oh * ow, h, w, oh, ow,
                            act == ISEG_ACT_RELU};
        iseg__engine_run(e, (size_t)n * d->cout, col2im_task, &ci);
    }
}

void iseg_deconv2d_forward_ref(float *y, const float *x, const float *weight, const float *bias,
                               const struct iseg_deconv2d_desc *d, int B, int h, int w,
                               enum iseg_act act) {
    int oh, ow;
    iseg_deconv2d_out_hw(d, h, w, &oh, &ow);
    int     cin_g = d->cin / d->groups, cout_g = d->cout / d->groups;
    size_t  n     = (size_t)B * d->cout * oh * ow;
    double *acc   = iseg__calloc(n, sizeof(double));
    ISEG_ASSERT(acc);
    for (int b = 0; b < B; b++)
        for (int ci = 0; ci < d->cin; ci++) {
            int g = ci / cin_g;
            for (int iy = 0; iy < h; iy++)
                for (int ix = 0; ix < w; ix++) {
                    float xv = x[(((size_t)b * d->cin + ci) * h + iy) * w + ix];
                    for (int j = 0; j < cout_g; j++)
                        for (int ky = 0; ky < d->kh; ky++) {
                            int oy = iy * d->stride_h - d->pad_h + ky * d->dil_h;
                            if (oy < 0 || oy >= oh) continue;
                            for (int kx = 0; kx < d->kw; kx++) {
                                int ox = ix * d->stride_w - d->pad_w + kx * d->dil_w;
                                if (ox < 0 || ox >= ow) continue;
                                float wv = weight[(((size_t)ci * cout_g + j) * d->kh + ky) * d->kw + kx];
                                int   co = g * cout_g + j;
                                acc[(((size_t)b * d->cout + co) * oh + oy) * ow + ox] += (double)xv * wv;
                            }
                        }
                }
        }
    for (size_t i = 0; i < n; i++) {
        int   co = (int)(i / ((size_t)oh * ow) % (size_t)d->cout);
        float v  = (float)(acc[i] + (bias ? bias[co] : 0.0));
        if (act == ISEG_ACT_RELU && v < 0.0f) v = 0.0f;
        y[i] = v;
    }
    iseg__free(acc);
}
