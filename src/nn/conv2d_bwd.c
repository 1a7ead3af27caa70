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

/* col (K, ohw) with K = cin_g * kh * kw of one image and group; transposed: (ohw, K). */
static void im2col(float *col, const float *x, const struct iseg_conv2d_desc *d, int cin_g,
                   int h, int w, int oh, int ow, bool transposed) {
    size_t K = (size_t)cin_g * d->kh * d->kw, ohw = (size_t)oh * ow;
    for (int ci = 0; ci < cin_g; ci++)
        for (int ky = 0; ky < d->kh; ky++)
            for (int kx = 0; kx < d->kw; kx++) {
                size_t       k  = ((size_t)ci * d->kh + ky) * d->kw + kx;
                const float *xc = x + (size_t)ci * h * w;
                for (int oy = 0; oy < oh; oy++) {
                    int iy = oy * d->stride_h - d->pad_h + ky * d->dil_h;
                    for (int ox = 0; ox < ow; ox++) {
                        int   ix = ox * d->stride_w - d->pad_w + kx * d->dil_w;
                        float v  = (iy >= 0 && iy < h && ix >= 0 && ix < w)
                                       ? xc[(size_t)iy * w + ix]
                                       : 0.0f;
                        size_t p = (size_t)oy * ow + ox;
                        if (transposed) col[p * K + k] = v;
                        else col[k * ohw + p] = v;
                    }
                }
            }
}

/* x (cin_g, h, w) += the adjoint of im2col for col (K, ohw). */
static void col2im_add(float *x, const float *col, const struct iseg_conv2d_desc *d, int cin_g,
                       int h, int w, int oh, int ow) {
    size_t ohw = (size_t)oh * ow;
    for (int ci = 0; ci < cin_g; ci++)
        for (int ky = 0; ky < d->kh; ky++)
            for (int kx = 0; kx < d->kw; kx++) {
                size_t       k  = ((size_t)ci * d->kh + ky) * d->kw + kx;
                float       *xc = x + (size_t)ci * h * w;
                const float *cr = col + k * ohw;
                for (int oy = 0; oy < oh; oy++) {
                    int iy = oy * d->stride_h - d->pad_h + ky * d->dil_h;
                    if (iy < 0 || iy >= h) continue;
                    for (int ox = 0; ox < ow; ox++) {
                        int ix = ox * d->stride_w - d->pad_w + kx * d->dil_w;
                        if (ix >= 0 && ix < w) xc[(size_t)iy * w + ix] += cr[(size_t)oy * ow + ox];
                    }
                }
            }
}

static void transpose(float *dst, const float *src, size_t rows, size_t cols) {
    for (size_t r = 0; r < rows; r++)
        for (size_t c = 0; c < cols; c++) dst[c * rows + r] = src[r * cols + c];
}

size_t iseg_conv2d_train_scratch(const struct iseg_conv2d_desc *d, int h, int w) {
    int oh, ow;
    iseg_conv2d_out_hw(d, h, w, &oh, &ow);
    size_t K = (size_t)(d->cin / d->groups) * d->kh * d->kw, ohw = (size_t)oh * ow;
    size_t cout_g = (size_t)(d->cout / d->groups);
    /* col or colT (K ohw), dcol (K ohw), W^T of one group (K cout_g) */
    return 2 * K * ohw + K * cout_g;
}

static void conv_fwd(iseg_engine_t e, float *y, const float *x, const float *wt,
                     const float *bias, const struct iseg_conv2d_desc *d, int B, int h, int w,
                     float *scratch, bool accumulate) {
    int oh, ow;
    iseg_conv2d_out_hw(d, h, w, &oh, &ow);
    int    G = d->groups, cin_g = d->cin / G, cout_g = d->cout / G;
    size_t K = (size_t)cin_g * d->kh * d->kw, ohw = (size_t)oh * ow;
    float *col = scratch;
    for (int b = 0; b < B; b++)
        for (int g = 0; g < G; g++) {
            const float *xg = x + ((size_t)b * d->cin + (size_t)g * cin_g) * h * w;
            float       *yg = y + ((size_t)b * d->cout + (size_t)g * cout_g) * ohw;
            im2col(col, xg, d, cin_g, h, w, oh, ow, false);
            iseg_sgemm(e, cout_g, (int)ohw, (int)K, wt + (size_t)g * cout_g * K, (int)K, col,
                       (int)ohw, yg, (int)ohw, accumulate);
            if (bias)
                for (int co = 0; co < cout_g; co++) {
                    float bv = bias[g * cout_g + co];
                    for (size_t p = 0; p < ohw; p++) yg[(size_t)co * ohw + p] += bv;
                }
        }
}

void iseg_conv2d_fwd_raw(iseg_engine_t e, float *y, const float *x, const float *weight,
                         const float *bias, const struct iseg_conv2d_desc *d, int B, int h,
                         int w, float *scratch) {
    ISEG_ASSERT(e && y && x && weight && d && scratch && d->groups >= 1);
    conv_fwd(e, y, x, weight, bias, d, B, h, w, scratch, false);
}

/* dW (cout, K) += dY col^T; dx += col2im(W^T dY); db += sum dY */
static void conv_bwd(iseg_engine_t e, float *dx, float *dw, float *db, const float *dy,
                     const float *x, const float *weight, const struct iseg_conv2d_desc *d,
                     int B, int h, int w, float *scratch) {
    int oh, ow;
    iseg_conv2d_out_hw(d, h, w, &oh, &ow);
    int    G = d->groups, cin_g = d->cin / G, cout_g = d->cout / G;
    size_t K = (size_t)cin_g * d->kh * d->kw, ohw = (size_t)oh * ow;
    float *col = scratch, *dcol = scratch + K * ohw, *wT = dcol + K * ohw;
    for (int g = 0; g < G; g++) {
        const float *wg = weight + (size_t)g * cout_g * K;
        if (dx) transpose(wT, wg, (size_t)cout_g, K);
        for (int b = 0; b < B; b++) {
            const float *dyg = dy + ((size_t)b * d->cout + (size_t)g * cout_g) * ohw;
            if (dw) {
                const float *xg = x + ((size_t)b * d->cin + (size_t)g * cin_g) * h * w;
                im2col(col, xg, d, cin_g, h, w, oh, ow, true);
                iseg_sgemm(e, cout_g, (int)K, (int)ohw, dyg, (int)ohw, col, (int)K,
                           dw + (size_t)g * cout_g * K, (int)K, true);
            }
            if (dx) {
                iseg_sgemm(e, (int)K, (int)ohw, cout_g, wT, cout_g, dyg, (int)ohw, dcol,
                           (int)ohw, false);
                col2im_add(dx + ((size_t)b * d->cin + (size_t)g * cin_g) * h * w, dcol, d,
                           cin_g, h, w, oh, ow);
            }
            if (db)
                for (int co = 0; co < cout_g; co++) {
                    float s = 0.0f;
                    for (size_t p = 0; p < ohw; p++) s += dyg[(size_t)co * ohw + p];
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
    /* the adjoint conv runs on (oh, ow) inputs and produces (h, w); plus one output image
     * for the accumulating backward-data */
    return iseg_conv2d_train_scratch(&c, oh, ow) + (size_t)d->cin * h * w;
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
    size_t conv_scratch = iseg_conv2d_train_scratch(&c, oh, ow);
    if (dx) {
        /* dx = adjoint conv forward of dy, accumulated */
        float *tmp = scratch + conv_scratch;
        for (int b = 0; b < B; b++) {
            conv_fwd(e, tmp, dy + (size_t)b * d->cout * oh * ow, weight, NULL, &c, 1, oh, ow,
                     scratch, false);
            float *dxb = dx + (size_t)b * d->cin * h * w;
            for (size_t i = 0; i < (size_t)d->cin * h * w; i++) dxb[i] += tmp[i];
        }
    }
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
