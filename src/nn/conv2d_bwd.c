/* conv2d_bwd.c - training-time convolution, transposed convolution and linear layers:
 * forward passes on raw (unpacked, changing) weights and their backward passes, as im2col /
 * col2im around the engine's SGEMM. ref: torch's convolution_backward (CPU, slow path):
 * dW += dY col^T, dcol = W^T dY then col2im, db += sum dY.
 *
 * Scratch comes from the caller (sized by the *_scratch functions), so a training step makes
 * no allocation. Every sum has a fixed order (images in sequence, the SGEMM's fixed K
 * blocking), so results do not depend on the number of threads. */
#include <string.h>

#include "core/core_impl.h"
#include "iseg/nn.h"
#include "nn/nn_impl.h" /* iseg__engine_run */

/* Output pixels per GEMM: small images (the RoI heads' 14x14 maps) are batched, a chunk of
 * images side by side in the columns, so that one GEMM covers many of them. */
#define CHUNK_PIX 8192

static int chunk_images(size_t ohw) {
    size_t n = CHUNK_PIX / (ohw ? ohw : 1);
    return n < 1 ? 1 : (int)n;
}

/* Outputs o in [0, n_out) with 0 <= o * stride + off < n_in: [*lo, *hi). */
static void valid_range(int n_out, int n_in, int stride, int off, int *lo, int *hi) {
    int l = off >= 0 ? 0 : (-off + stride - 1) / stride;
    int h = n_in - 1 - off < 0 ? 0 : (n_in - 1 - off) / stride + 1;
    if (h > n_out) h = n_out;
    if (l > h) l = h;
    *lo = l;
    *hi = h;
}

/* im2col / col2im of a chunk of images: col (K, P) with K = cin_g kh kw, image i of the chunk
 * in columns [i ohw, (i + 1) ohw). One task per (image, input channel): each writes its own
 * rows of col (im2col) or its own plane of x (col2im), so the tasks never race. */
struct i2c {
    float                         *col;
    float                         *xw;  /* col2im target */
    const float                   *x;   /* im2col source */
    const struct iseg_conv2d_desc *d;
    int                            cin_g, h, w, oh, ow;
    size_t                         x_img, P; /* x floats per image; columns of col */
};

static void im2col_task(void *vctx, size_t item, int ith) {
    const struct i2c *c = vctx;
    const struct iseg_conv2d_desc *d = c->d;
    (void)ith;
    int img = (int)(item / (size_t)c->cin_g), ci = (int)(item % (size_t)c->cin_g);
    const float *xc = c->x + (size_t)img * c->x_img + (size_t)ci * c->h * c->w;
    size_t ohw = (size_t)c->oh * c->ow;
    for (int ky = 0; ky < d->kh; ky++)
        for (int kx = 0; kx < d->kw; kx++) {
            size_t k = ((size_t)ci * d->kh + ky) * d->kw + kx;
            float *row = c->col + k * c->P + (size_t)img * ohw;
            int xlo, xhi;
            valid_range(c->ow, c->w, d->stride_w, kx * d->dil_w - d->pad_w, &xlo, &xhi);
            for (int oy = 0; oy < c->oh; oy++) {
                float *r = row + (size_t)oy * c->ow;
                int iy = oy * d->stride_h - d->pad_h + ky * d->dil_h;
                if (iy < 0 || iy >= c->h || xlo >= xhi) {
                    memset(r, 0, (size_t)c->ow * sizeof(float));
                    continue;
                }
                for (int ox = 0; ox < xlo; ox++) r[ox] = 0.0f;
                const float *src = xc + (size_t)iy * c->w + (xlo * d->stride_w - d->pad_w +
                                                            kx * d->dil_w);
                if (d->stride_w == 1) {
                    memcpy(r + xlo, src, (size_t)(xhi - xlo) * sizeof(float));
                } else {
                    for (int ox = xlo; ox < xhi; ox++) r[ox] = src[(size_t)(ox - xlo) * d->stride_w];
                }
                for (int ox = xhi; ox < c->ow; ox++) r[ox] = 0.0f;
            }
        }
}

static void col2im_task(void *vctx, size_t item, int ith) {
    const struct i2c *c = vctx;
    const struct iseg_conv2d_desc *d = c->d;
    (void)ith;
    int img = (int)(item / (size_t)c->cin_g), ci = (int)(item % (size_t)c->cin_g);
    float *xc = c->xw + (size_t)img * c->x_img + (size_t)ci * c->h * c->w;
    size_t ohw = (size_t)c->oh * c->ow;
    for (int ky = 0; ky < d->kh; ky++)
        for (int kx = 0; kx < d->kw; kx++) {
            size_t k = ((size_t)ci * d->kh + ky) * d->kw + kx;
            const float *row = c->col + k * c->P + (size_t)img * ohw;
            int xlo, xhi;
            valid_range(c->ow, c->w, d->stride_w, kx * d->dil_w - d->pad_w, &xlo, &xhi);
            for (int oy = 0; oy < c->oh; oy++) {
                int iy = oy * d->stride_h - d->pad_h + ky * d->dil_h;
                if (iy < 0 || iy >= c->h) continue;
                const float *r = row + (size_t)oy * c->ow;
                float *dst = xc + (size_t)iy * c->w + (xlo * d->stride_w - d->pad_w + kx * d->dil_w);
                for (int ox = xlo; ox < xhi; ox++) dst[(size_t)(ox - xlo) * d->stride_w] += r[ox];
            }
        }
}

static void transpose(float *dst, const float *src, size_t rows, size_t cols) {
    for (size_t r = 0; r < rows; r++)
        for (size_t c = 0; c < cols; c++) dst[c * rows + r] = src[r * cols + c];
}

/* The same on the pool, in blocks of source columns. */
#define TR_BLOCK 64
struct tr_ctx {
    float       *dst;
    const float *src;
    size_t       rows, cols;
};

static void transpose_task(void *vctx, size_t item, int ith) {
    const struct tr_ctx *t = vctx;
    (void)ith;
    size_t c0 = item * TR_BLOCK, c1 = c0 + TR_BLOCK < t->cols ? c0 + TR_BLOCK : t->cols;
    for (size_t r = 0; r < t->rows; r++) {
        const float *s = t->src + r * t->cols;
        for (size_t c = c0; c < c1; c++) t->dst[c * t->rows + r] = s[c];
    }
}

static void transpose_pool(iseg_engine_t e, float *dst, const float *src, size_t rows,
                           size_t cols) {
    struct tr_ctx t = {dst, src, rows, cols};
    iseg__engine_run(e, (cols + TR_BLOCK - 1) / TR_BLOCK, transpose_task, &t);
}

size_t iseg_conv2d_train_scratch(const struct iseg_conv2d_desc *d, int h, int w) {
    int oh, ow;
    iseg_conv2d_out_hw(d, h, w, &oh, &ow);
    size_t K = (size_t)(d->cin / d->groups) * d->kh * d->kw, ohw = (size_t)oh * ow;
    size_t cout_g = (size_t)(d->cout / d->groups);
    size_t P = ohw * (size_t)chunk_images(ohw);
    /* col (K P), dcol / dY^T / the forward's output (max(K, cout_g) P), the chunk's dY
     * (cout_g P), W^T and dW^T (K cout_g each) */
    return K * P + (K > cout_g ? K : cout_g) * P + cout_g * P + 2 * K * cout_g;
}

/* y (B, cout, oh, ow) (+)= conv(x) (+ bias) */
static void conv_fwd(iseg_engine_t e, float *y, const float *x, const float *wt,
                     const float *bias, const struct iseg_conv2d_desc *d, int B, int h, int w,
                     float *scratch, bool accumulate) {
    int oh, ow;
    iseg_conv2d_out_hw(d, h, w, &oh, &ow);
    int    G = d->groups, cin_g = d->cin / G, cout_g = d->cout / G;
    size_t K = (size_t)cin_g * d->kh * d->kw, ohw = (size_t)oh * ow;
    int    nbm = chunk_images(ohw);
    float *col = scratch, *yc = scratch + K * ohw * (size_t)nbm;
    for (int g = 0; g < G; g++) {
        const float *wg = wt + (size_t)g * cout_g * K;
        for (int b0 = 0; b0 < B; b0 += nbm) {
            int    nb = B - b0 < nbm ? B - b0 : nbm;
            size_t P = (size_t)nb * ohw;
            struct i2c c = {col, NULL, x + ((size_t)b0 * d->cin + (size_t)g * cin_g) * h * w, d,
                            cin_g, h, w, oh, ow, (size_t)d->cin * h * w, P};
            iseg__engine_run(e, (size_t)nb * cin_g, im2col_task, &c);
            float *y0 = y + ((size_t)b0 * d->cout + (size_t)g * cout_g) * ohw;
            if (nb == 1) {
                iseg_sgemm(e, cout_g, (int)ohw, (int)K, wg, (int)K, col, (int)ohw, y0, (int)ohw,
                           accumulate);
            } else {
                iseg_sgemm(e, cout_g, (int)P, (int)K, wg, (int)K, col, (int)P, yc, (int)P, false);
                for (int i = 0; i < nb; i++)
                    for (int co = 0; co < cout_g; co++) {
                        float *dst = y0 + ((size_t)i * d->cout + co) * ohw;
                        const float *src = yc + (size_t)co * P + (size_t)i * ohw;
                        if (accumulate)
                            for (size_t p = 0; p < ohw; p++) dst[p] += src[p];
                        else
                            memcpy(dst, src, ohw * sizeof(float));
                    }
            }
            if (bias)
                for (int i = 0; i < nb; i++)
                    for (int co = 0; co < cout_g; co++) {
                        float  bv = bias[g * cout_g + co];
                        float *yp = y0 + ((size_t)i * d->cout + co) * ohw;
                        for (size_t p = 0; p < ohw; p++) yp[p] += bv;
                    }
        }
    }
}

void iseg_conv2d_fwd_raw(iseg_engine_t e, float *y, const float *x, const float *weight,
                         const float *bias, const struct iseg_conv2d_desc *d, int B, int h,
                         int w, float *scratch) {
    ISEG_ASSERT(e && y && x && weight && d && scratch && d->groups >= 1);
    conv_fwd(e, y, x, weight, bias, d, B, h, w, scratch, false);
}

/* Per chunk of images: dW^T (K, cout_g) = col dY^T, added transposed to dW; dcol = W^T dY,
 * then col2im into dx; db += sum dY. */
static void conv_bwd(iseg_engine_t e, float *dx, float *dw, float *db, const float *dy,
                     const float *x, const float *weight, const struct iseg_conv2d_desc *d,
                     int B, int h, int w, float *scratch) {
    int oh, ow;
    iseg_conv2d_out_hw(d, h, w, &oh, &ow);
    int    G = d->groups, cin_g = d->cin / G, cout_g = d->cout / G;
    size_t K = (size_t)cin_g * d->kh * d->kw, ohw = (size_t)oh * ow;
    int    nbm = chunk_images(ohw);
    size_t Pm = (size_t)nbm * ohw, big = K > (size_t)cout_g ? K : (size_t)cout_g;
    float *col = scratch, *dcol = col + K * Pm, *dyc = dcol + big * Pm, *wT = dyc + (size_t)cout_g * Pm;
    float *tmp = wT + K * cout_g;
    for (int g = 0; g < G; g++) {
        const float *wg = weight ? weight + (size_t)g * cout_g * K : NULL;
        if (dx) transpose(wT, wg, (size_t)cout_g, K);
        for (int b0 = 0; b0 < B; b0 += nbm) {
            int    nb = B - b0 < nbm ? B - b0 : nbm;
            size_t P = (size_t)nb * ohw;
            const float *dy0 = dy + ((size_t)b0 * d->cout + (size_t)g * cout_g) * ohw;
            /* the chunk's dY as (cout_g, P) */
            const float *dyp = dy0;
            if (nb > 1) {
                for (int i = 0; i < nb; i++)
                    for (int co = 0; co < cout_g; co++)
                        memcpy(dyc + (size_t)co * P + (size_t)i * ohw,
                               dy0 + ((size_t)i * d->cout + co) * ohw, ohw * sizeof(float));
                dyp = dyc;
            }
            if (dw) {
                struct i2c c = {col, NULL, x + ((size_t)b0 * d->cin + (size_t)g * cin_g) * h * w,
                                d, cin_g, h, w, oh, ow, (size_t)d->cin * h * w, P};
                iseg__engine_run(e, (size_t)nb * cin_g, im2col_task, &c);
                transpose_pool(e, dcol, dyp, (size_t)cout_g, P); /* dY^T (P, cout_g) */
                iseg_sgemm(e, (int)K, cout_g, (int)P, col, (int)P, dcol, cout_g, tmp, cout_g,
                           false);
                float *dwg = dw + (size_t)g * cout_g * K;
                for (int co = 0; co < cout_g; co++)
                    for (size_t k = 0; k < K; k++) dwg[(size_t)co * K + k] += tmp[k * cout_g + co];
            }
            if (dx) {
                iseg_sgemm(e, (int)K, (int)P, cout_g, wT, cout_g, dyp, (int)P, dcol, (int)P,
                           false);
                struct i2c c = {dcol, dx + ((size_t)b0 * d->cin + (size_t)g * cin_g) * h * w,
                                NULL, d, cin_g, h, w, oh, ow, (size_t)d->cin * h * w, P};
                iseg__engine_run(e, (size_t)nb * cin_g, col2im_task, &c);
            }
            if (db)
                for (int co = 0; co < cout_g; co++) {
                    float s = 0.0f;
                    for (size_t p = 0; p < P; p++) s += dyp[(size_t)co * P + p];
                    db[g * cout_g + co] += s;
                }
        }
    }
}

void iseg_conv2d_bwd(iseg_engine_t e, float *dx, float *dw, float *db, const float *dy,
                     const float *x, const float *weight, const struct iseg_conv2d_desc *d,
                     int B, int h, int w, float *scratch) {
    ISEG_ASSERT(e && dy && d && scratch && d->groups >= 1);
    ISEG_ASSERT(!dw || x);
    ISEG_ASSERT(!dx || weight);
    conv_bwd(e, dx, dw, db, dy, x, weight, d, B, h, w, scratch);
}

/* ---- transposed convolution: the adjoint of the convolution with the same geometry ---- */

/* The convolution whose backward-data is this transposed convolution: it maps the deconv's
 * output (cout channels) to its input (cin channels) and has the same weight layout. */
static struct iseg_conv2d_desc adjoint_desc(const struct iseg_deconv2d_desc *d) {
    struct iseg_conv2d_desc c;
    c.cin = d->cout;
    c.cout = d->cin;
    c.kh = d->kh;
    c.kw = d->kw;
    c.stride_h = d->stride_h;
    c.stride_w = d->stride_w;
    c.pad_h = d->pad_h;
    c.pad_w = d->pad_w;
    c.dil_h = d->dil_h;
    c.dil_w = d->dil_w;
    c.groups = d->groups;
    return c;
}

size_t iseg_deconv2d_train_scratch(const struct iseg_deconv2d_desc *d, int h, int w) {
    int oh, ow;
    iseg_deconv2d_out_hw(d, h, w, &oh, &ow);
    struct iseg_conv2d_desc c = adjoint_desc(d);
    /* the adjoint conv runs on (oh, ow) inputs and produces (h, w) */
    return iseg_conv2d_train_scratch(&c, oh, ow);
}

void iseg_deconv2d_fwd_raw(iseg_engine_t e, float *y, const float *x, const float *weight,
                           const float *bias, const struct iseg_deconv2d_desc *d, int B, int h,
                           int w, float *scratch) {
    ISEG_ASSERT(e && y && x && weight && d && scratch);
    int oh, ow;
    iseg_deconv2d_out_hw(d, h, w, &oh, &ow);
    struct iseg_conv2d_desc c = adjoint_desc(d);
    int ch, cw;
    iseg_conv2d_out_hw(&c, oh, ow, &ch, &cw);
    ISEG_ASSERT(ch == h && cw == w);
    memset(y, 0, sizeof(float) * (size_t)B * d->cout * oh * ow);
    /* y = adjoint-conv's backward-data applied to x */
    conv_bwd(e, y, NULL, NULL, x, NULL, weight, &c, B, oh, ow, scratch);
    if (bias)
        for (int b = 0; b < B; b++)
            for (int co = 0; co < d->cout; co++) {
                float *yc = y + ((size_t)b * d->cout + co) * oh * ow;
                for (size_t p = 0; p < (size_t)oh * ow; p++) yc[p] += bias[co];
            }
}

void iseg_deconv2d_bwd(iseg_engine_t e, float *dx, float *dw, float *db, const float *dy,
                       const float *x, const float *weight, const struct iseg_deconv2d_desc *d,
                       int B, int h, int w, float *scratch) {
    ISEG_ASSERT(e && dy && d && scratch);
    int oh, ow;
    iseg_deconv2d_out_hw(d, h, w, &oh, &ow);
    struct iseg_conv2d_desc c = adjoint_desc(d);
    if (dx) /* dx += the adjoint conv's forward of dy */
        conv_fwd(e, dx, dy, weight, NULL, &c, B, oh, ow, scratch, true);
    if (dw) /* the adjoint conv's weight gradient with input dy and output gradient x */
        conv_bwd(e, NULL, dw, NULL, x, dy, NULL, &c, B, oh, ow, scratch);
    if (db)
        for (int b = 0; b < B; b++)
            for (int co = 0; co < d->cout; co++) {
                const float *g = dy + ((size_t)b * d->cout + co) * oh * ow;
                float        s = 0.0f;
                for (size_t p = 0; p < (size_t)oh * ow; p++) s += g[p];
                db[co] += s;
            }
}

/* ---- linear ---- */

size_t iseg_linear_train_scratch(int N, int in, int out) {
    size_t a = (size_t)in * out, b = (size_t)out * N;
    return a > b ? a : b;
}

void iseg_linear_fwd_raw(iseg_engine_t e, float *y, const float *x, const float *weight,
                         const float *bias, int N, int in, int out, float *scratch) {
    ISEG_ASSERT(e && y && x && weight && scratch);
    transpose(scratch, weight, (size_t)out, (size_t)in); /* W^T (in, out) */
    iseg_sgemm(e, N, out, in, x, in, scratch, out, y, out, false);
    if (bias)
        for (int n = 0; n < N; n++)
            for (int o = 0; o < out; o++) y[(size_t)n * out + o] += bias[o];
}

void iseg_linear_bwd(iseg_engine_t e, float *dx, float *dw, float *db, const float *dy,
                     const float *x, const float *weight, int N, int in, int out,
                     float *scratch) {
    ISEG_ASSERT(e && dy && scratch);
    if (dx) {
        ISEG_ASSERT(weight);
        iseg_sgemm(e, N, in, out, dy, out, weight, in, dx, in, true);
    }
    if (dw) {
        ISEG_ASSERT(x);
        transpose(scratch, dy, (size_t)N, (size_t)out); /* dY^T (out, N) */
        iseg_sgemm(e, out, in, N, scratch, N, x, in, dw, in, true);
    }
    if (db)
        for (int n = 0; n < N; n++)
            for (int o = 0; o < out; o++) db[o] += dy[(size_t)n * out + o];
}
