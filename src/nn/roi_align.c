/* roi_align.c - RoIAlign with torchvision 0.14's CPU arithmetic (csrc/ops/cpu/roi_align_kernel.cpp)
 * and the FPN level mapper (ops/poolers.py LevelMapper).
 *
 * Per RoI: the sample grid is (oh gh) x (ow gw); each sample's four bilinear weights and indices
 * are computed once (channel independent) and reused over all channels. Threads take whole RoIs,
 * so every output value is computed the same way for any thread count. */
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

struct ra {
    iseg_engine_t e;
    float        *out;
    const float  *feat, *boxes;
    int           C, H, W, oh, ow, sampling;
    float         scale;
    bool          aligned;
};

static void ra_task(void *vctx, size_t n, int ith) {
    const struct ra *s  = vctx;
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
        for (int c = 0; c < s->C; c++) {
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
    for (int c = 0; c < s->C; c++) {
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

void iseg_roi_align(iseg_engine_t e, float *out, const float *feat, const float *boxes, int N,
                    int C, int H, int W, int oh, int ow, float spatial_scale, int sampling_ratio,
                    bool aligned) {
    ISEG_ASSERT(e && N >= 0 && C >= 1 && H >= 1 && W >= 1 && oh >= 1 && ow >= 1);
    if (N == 0) return;
    if (!iseg__engine_reserve(e, PRECALC_MAX * sizeof(struct precalc))) return;
    struct ra s = {e, out, feat, boxes, C, H, W, oh, ow, sampling_ratio, spatial_scale, aligned};
    iseg__engine_run(e, (size_t)N, ra_task, &s);
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
