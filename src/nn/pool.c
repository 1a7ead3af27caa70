/* pool.c - 2-d max pooling (torch max_pool2d, floor mode, padding as -inf, NaN propagates). */
#include <math.h>

#include "nn/nn_impl.h"

void iseg_maxpool2d_out_hw(int k, int stride, int pad, int h, int w, int *oh, int *ow) {
    ISEG_ASSERT(k >= 1 && stride >= 1 && pad >= 0 && 2 * pad <= k);
    ISEG_ASSERT(h + 2 * pad >= k && w + 2 * pad >= k);
    *oh = (h + 2 * pad - k) / stride + 1;
    *ow = (w + 2 * pad - k) / stride + 1;
}

struct pool_task {
    float       *y;
    const float *x;
    int          h, w, k, stride, pad, oh, ow;
};

/* one (b, c) plane */
static void pool_plane(void *ctx, size_t p, int ith) {
    (void)ith;
    const struct pool_task *t = ctx;
    const int h = t->h, w = t->w, k = t->k, stride = t->stride, pad = t->pad, oh = t->oh,
              ow = t->ow;
    /* columns whose window lies inside the row need no bounds checks */
    int ox_lo = (pad + stride - 1) / stride;                 /* first ox with ox s - pad >= 0 */
    int ox_hi = w - k + pad >= 0 ? (w - k + pad) / stride + 1 : 0; /* ox s - pad + k <= w */
    if (ox_hi > ow) ox_hi = ow;
    if (ox_lo > ox_hi) ox_lo = ox_hi;
    const float *xp = t->x + p * h * w;
    float       *yp = t->y + p * oh * ow;
    for (int oy = 0; oy < oh; oy++) {
        int y0 = oy * stride - pad, y1 = y0 + k;
        if (y0 < 0) y0 = 0;
        if (y1 > h) y1 = h;
        float *yr = yp + (size_t)oy * ow;
        for (int ox = 0; ox < ow; ox++) {
            int x0 = ox * stride - pad, x1 = x0 + k;
            if (ox < ox_lo || ox >= ox_hi) {
                if (x0 < 0) x0 = 0;
                if (x1 > w) x1 = w;
            }
            float m = -INFINITY;
            for (int iy = y0; iy < y1; iy++) {
                const float *xr = xp + (size_t)iy * w;
                for (int ix = x0; ix < x1; ix++) {
                    float v = xr[ix];
                    if (v > m || isnan(v)) m = v;
                }
            }
            yr[ox] = m;
        }
    }
}

void iseg_maxpool2d(iseg_engine_t e, float *y, const float *x, int B, int C, int h, int w, int k,
                    int stride, int pad) {
    struct pool_task t = {y, x, h, w, k, stride, pad, 0, 0};
    iseg_maxpool2d_out_hw(k, stride, pad, h, w, &t.oh, &t.ow);
    size_t n = (size_t)B * C;
    if (e) {
        iseg__engine_run(e, n, pool_plane, &t);
    } else {
        for (size_t p = 0; p < n; p++) pool_plane(&t, p, 0);
    }
}

void iseg_maxpool2d_ref(float *y, const float *x, int B, int C, int h, int w, int k, int stride,
                        int pad) {
    int oh, ow;
    iseg_maxpool2d_out_hw(k, stride, pad, h, w, &oh, &ow);
    for (size_t p = 0; p < (size_t)B * C; p++)
        for (int oy = 0; oy < oh; oy++)
            for (int ox = 0; ox < ow; ox++) {
                float m = -INFINITY;
                for (int ky = 0; ky < k; ky++)
                    for (int kx = 0; kx < k; kx++) {
                        int iy = oy * stride - pad + ky, ix = ox * stride - pad + kx;
                        if (iy < 0 || iy >= h || ix < 0 || ix >= w) continue;
                        float v = x[(p * h + iy) * w + ix];
                        if (v > m || isnan(v)) m = v;
                    }
                y[(p * oh + oy) * ow + ox] = m;
            }
}

void iseg_maxpool2d_bwd(float *dx, const float *dy, const float *x, int B, int C, int h, int w,
                        int k, int stride, int pad) {
    int oh, ow;
    iseg_maxpool2d_out_hw(k, stride, pad, h, w, &oh, &ow);
    for (size_t p = 0; p < (size_t)B * C; p++) {
        const float *xp = x + p * h * w;
        float       *dxp = dx + p * h * w;
        const float *dyp = dy + p * oh * ow;
        for (int oy = 0; oy < oh; oy++)
            for (int ox = 0; ox < ow; ox++) {
                /* torch's winner: starts at the window's first valid pixel, replaced by a
                 * strictly greater value or by any NaN (so the last NaN wins) */
                int y0 = oy * stride - pad, x0 = ox * stride - pad;
                int y1 = y0 + k < h ? y0 + k : h, x1 = x0 + k < w ? x0 + k : w;
                if (y0 < 0) y0 = 0;
                if (x0 < 0) x0 = 0;
                int   arg = y0 * w + x0;
                float m   = -INFINITY;
                for (int iy = y0; iy < y1; iy++)
                    for (int ix = x0; ix < x1; ix++) {
                        float v = xp[(size_t)iy * w + ix];
                        if (v > m || isnan(v)) {
                            m   = v;
                            arg = iy * w + ix;
                        }
                    }
                dxp[arg] += dyp[(size_t)oy * ow + ox];
            }
    }
}
