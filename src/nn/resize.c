/* resize.c - nearest and bilinear resizing with torch 1.13's CPU index arithmetic
 * (aten/src/ATen/native/UpSample.h: nearest_idx, area_pixel_compute_source_index,
 * compute_source_index_and_lambda). The bilinear value is interpolated along x first, then
 * along y: (x00 wx0 + x01 wx1) wy0 + (x10 wx0 + x11 wx1) wy1, as torch's separable kernel. */
#include <math.h>
#include <string.h>

#include "nn/nn_impl.h"

/* ---- nearest ---- */

static int nearest_src(int dst, int in, int out) {
    if (out == in) return dst;
    if (out == 2 * in) return dst >> 1;
    float scale = (float)in / (float)out;
    int   s     = (int)floorf((float)dst * scale);
    return s < in - 1 ? s : in - 1;
}

static void nearest_impl(float *y, const float *x, int B, int C, int h, int w, int oh, int ow,
                         bool add) {
    ISEG_ASSERT(h >= 1 && w >= 1 && oh >= 1 && ow >= 1);
    /* column table on the stack for the common sizes, else per row recomputed */
    int  stack_tab[1024];
    int *tab = ow <= 1024 ? stack_tab : iseg__malloc_array((size_t)ow, sizeof(int));
    if (!tab) {
        /* no memory for the table: compute indices inline */
        for (size_t p = 0; p < (size_t)B * C; p++)
            for (int oy = 0; oy < oh; oy++) {
                const float *xr = x + (p * h + nearest_src(oy, h, oh)) * w;
                float       *yr = y + (p * oh + oy) * ow;
                for (int ox = 0; ox < ow; ox++) {
                    float v = xr[nearest_src(ox, w, ow)];
                    yr[ox]  = add ? yr[ox] + v : v;
                }
            }
        return;
    }
    for (int ox = 0; ox < ow; ox++) tab[ox] = nearest_src(ox, w, ow);
    for (size_t p = 0; p < (size_t)B * C; p++)
        for (int oy = 0; oy < oh; oy++) {
            const float *xr = x + (p * h + (size_t)nearest_src(oy, h, oh)) * w;
            float       *yr = y + (p * oh + oy) * ow;
            if (add) {
                for (int ox = 0; ox < ow; ox++) yr[ox] += xr[tab[ox]];
            } else {
                for (int ox = 0; ox < ow; ox++) yr[ox] = xr[tab[ox]];
            }
        }
    if (tab != stack_tab) iseg__free(tab);
}

void iseg_resize_nearest(float *y, const float *x, int B, int C, int h, int w, int oh, int ow) {
    nearest_impl(y, x, B, C, h, w, oh, ow, false);
}

void iseg_resize_nearest_add(float *y, const float *x, int B, int C, int h, int w, int oh,
                             int ow) {
    nearest_impl(y, x, B, C, h, w, oh, ow, true);
}

/* ---- bilinear ---- */

struct lin {
    int   i0, i1;
    float l0, l1;
};

static float lin_scale(int in, int out, float scale_factor) {
    if (scale_factor > 0.0f) return (float)(1.0 / (double)scale_factor);
    return (float)in / (float)out;
}

static struct lin lin_at(int dst, int in, int out, float scale) {
    struct lin r;
    if (in == out) {
        r.i0 = r.i1 = dst;
        r.l0        = 1.0f;
        r.l1        = 0.0f;
        return r;
    }
    float src = scale * ((float)dst + 0.5f) - 0.5f;
    if (src < 0.0f) src = 0.0f;
    int i0 = (int)src;
    if (i0 > in - 1) i0 = in - 1;
    float l1 = src - (float)i0;
    if (l1 > 1.0f) l1 = 1.0f;
    r.i0 = i0;
    r.i1 = i0 + (i0 < in - 1 ? 1 : 0);
    r.l1 = l1;
    r.l0 = 1.0f - l1;
    return r;
}

struct bil {
    const float      *x;
    float            *y;
    int               h, w, oh, ow;
    const struct lin *ty, *tx;
};

static void bil_task(void *vctx, size_t p, int ith) {
    const struct bil *s = vctx;
    (void)ith;
    const float *xp = s->x + p * s->h * s->w;
    float       *yp = s->y + p * s->oh * s->ow;
    for (int oy = 0; oy < s->oh; oy++) {
        struct lin   ly = s->ty[oy];
        const float *r0 = xp + (size_t)ly.i0 * s->w, *r1 = xp + (size_t)ly.i1 * s->w;
        float       *yr = yp + (size_t)oy * s->ow;
        for (int ox = 0; ox < s->ow; ox++) {
            struct lin lx = s->tx[ox];
            float      t0 = r0[lx.i0] * lx.l0 + r0[lx.i1] * lx.l1;
            float      t1 = r1[lx.i0] * lx.l0 + r1[lx.i1] * lx.l1;
            yr[ox]        = t0 * ly.l0 + t1 * ly.l1;
        }
    }
}

void iseg_resize_bilinear(iseg_engine_t e, float *y, const float *x, int B, int C, int h, int w,
                          int oh, int ow, float scale_factor_h, float scale_factor_w) {
    ISEG_ASSERT(e && h >= 1 && w >= 1 && oh >= 1 && ow >= 1);
    struct lin *tab = (struct lin *)iseg__engine_shared(e, ((size_t)oh + ow) * sizeof(struct lin));
    if (!tab) return;
    float sh = lin_scale(h, oh, scale_factor_h), sw = lin_scale(w, ow, scale_factor_w);
    for (int i = 0; i < oh; i++) tab[i] = lin_at(i, h, oh, sh);
    for (int i = 0; i < ow; i++) tab[oh + i] = lin_at(i, w, ow, sw);
    struct bil s = {x, y, h, w, oh, ow, tab, tab + oh};
    iseg__engine_run(e, (size_t)B * C, bil_task, &s);
}

void iseg_resize_bilinear_ref(float *y, const float *x, int B, int C, int h, int w, int oh,
                              int ow, float scale_factor_h, float scale_factor_w) {
    float sh = lin_scale(h, oh, scale_factor_h), sw = lin_scale(w, ow, scale_factor_w);
    for (size_t p = 0; p < (size_t)B * C; p++)
        for (int oy = 0; oy < oh; oy++)
            for (int ox = 0; ox < ow; ox++) {
                struct lin   ly = lin_at(oy, h, oh, sh), lx = lin_at(ox, w, ow, sw);
                const float *xp = x + p * h * w;
                float x00 = xp[(size_t)ly.i0 * w + lx.i0], x01 = xp[(size_t)ly.i0 * w + lx.i1];
                float x10 = xp[(size_t)ly.i1 * w + lx.i0], x11 = xp[(size_t)ly.i1 * w + lx.i1];
                y[(p * oh + oy) * ow + ox] =
                    (x00 * lx.l0 + x01 * lx.l1) * ly.l0 + (x10 * lx.l0 + x11 * lx.l1) * ly.l1;
            }
}

/* ---- backward passes: accumulate (+=) into dx ---- */

void iseg_resize_nearest_bwd(float *dx, const float *dy, int B, int C, int h, int w, int oh,
                             int ow) {
    ISEG_ASSERT(h >= 1 && w >= 1 && oh >= 1 && ow >= 1);
    for (size_t p = 0; p < (size_t)B * C; p++)
        for (int oy = 0; oy < oh; oy++) {
            float       *dxr = dx + (p * h + (size_t)nearest_src(oy, h, oh)) * w;
            const float *dyr = dy + (p * oh + oy) * ow;
            for (int ox = 0; ox < ow; ox++) dxr[nearest_src(ox, w, ow)] += dyr[ox];
        }
}

void iseg_resize_bilinear_bwd(float *dx, const float *dy, int B, int C, int h, int w, int oh,
                              int ow, float scale_factor_h, float scale_factor_w) {
    ISEG_ASSERT(h >= 1 && w >= 1 && oh >= 1 && ow >= 1);
    float sh = lin_scale(h, oh, scale_factor_h), sw = lin_scale(w, ow, scale_factor_w);
    for (size_t p = 0; p < (size_t)B * C; p++)
        for (int oy = 0; oy < oh; oy++) {
            struct lin   ly  = lin_at(oy, h, oh, sh);
            float       *r0  = dx + (p * h + (size_t)ly.i0) * w;
            float       *r1  = dx + (p * h + (size_t)ly.i1) * w;
            const float *dyr = dy + (p * oh + oy) * ow;
            for (int ox = 0; ox < ow; ox++) {
                struct lin lx = lin_at(ox, w, ow, sw);
                float      g  = dyr[ox];
                r0[lx.i0] += ly.l0 * lx.l0 * g;
                r0[lx.i1] += ly.l0 * lx.l1 * g;
                r1[lx.i0] += ly.l1 * lx.l0 * g;
                r1[lx.i1] += ly.l1 * lx.l1 * g;
            }
        }
}
