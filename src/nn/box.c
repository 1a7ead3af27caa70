/* box.c - box coding (torchvision models/detection/_utils.py BoxCoder), clipping
 * (ops/boxes.py clip_boxes_to_image) and anchors (models/detection/anchor_utils.py
 * AnchorGenerator), in float with torchvision's operation order. */
#include <math.h>

#include "nn/nn_impl.h"

void iseg_box_decode(float *out, const float *deltas, const float *ref, int N,
                     const float weights[4], float clip) {
    for (int i = 0; i < N; i++) {
        const float *r = ref + 4 * (size_t)i, *d = deltas + 4 * (size_t)i;
        float w  = r[2] - r[0], h = r[3] - r[1];
        float cx = r[0] + 0.5f * w, cy = r[1] + 0.5f * h;
        float dx = d[0] / weights[0], dy = d[1] / weights[1];
        float dw = d[2] / weights[2], dh = d[3] / weights[3];
        dw = dw > clip ? clip : dw; /* torch.clamp(max=): NaN stays NaN */
        dh = dh > clip ? clip : dh;
        float pcx = dx * w + cx, pcy = dy * h + cy;
        float pw = expf(dw) * w, ph = expf(dh) * h;
        float hw = 0.5f * pw, hh = 0.5f * ph;
        float *o = out + 4 * (size_t)i;
        o[0] = pcx - hw;
        o[1] = pcy - hh;
        o[2] = pcx + hw;
        o[3] = pcy + hh;
    }
}

void iseg_box_encode(float *deltas, const float *target, const float *ref, int N,
                     const float weights[4]) {
    for (int i = 0; i < N; i++) {
        const float *p = ref + 4 * (size_t)i, *g = target + 4 * (size_t)i;
        float ew = p[2] - p[0], eh = p[3] - p[1];
        float ecx = p[0] + 0.5f * ew, ecy = p[1] + 0.5f * eh;
        float gw = g[2] - g[0], gh = g[3] - g[1];
        float gcx = g[0] + 0.5f * gw, gcy = g[1] + 0.5f * gh;
        float *d = deltas + 4 * (size_t)i;
        d[0] = weights[0] * (gcx - ecx) / ew;
        d[1] = weights[1] * (gcy - ecy) / eh;
        d[2] = weights[2] * logf(gw / ew);
        d[3] = weights[3] * logf(gh / eh);
    }
}

void iseg_box_clip(float *boxes, int N, float h, float w) {
    for (int i = 0; i < N; i++) {
        float *b = boxes + 4 * (size_t)i;
        for (int j = 0; j < 4; j++) {
            float hi = (j & 1) ? h : w;
            float v  = b[j];
            /* torch.clamp(min=0, max=hi): max(min(v, hi), 0), NaN propagates */
            if (v > hi) v = hi;
            if (v < 0.0f) v = 0.0f;
            b[j] = v;
        }
    }
}

void iseg_anchors(float *out, float size, const float *ratios, int n_ratios, int fh, int fw,
                  int stride_h, int stride_w) {
    ISEG_ASSERT(n_ratios >= 1 && n_ratios <= 64);
    float base[64][4];
    for (int r = 0; r < n_ratios; r++) {
        float hr = sqrtf(ratios[r]), wr = 1.0f / hr;
        float ws = wr * size, hs = hr * size;
        /* torch.round: half to even, which rintf does in the default rounding mode */
        base[r][0] = rintf(-ws / 2.0f);
        base[r][1] = rintf(-hs / 2.0f);
        base[r][2] = rintf(ws / 2.0f);
        base[r][3] = rintf(hs / 2.0f);
    }
    float *o = out;
    for (int y = 0; y < fh; y++)
        for (int x = 0; x < fw; x++) {
            float sx = (float)(x * stride_w), sy = (float)(y * stride_h);
            for (int r = 0; r < n_ratios; r++, o += 4) {
                o[0] = sx + base[r][0];
                o[1] = sy + base[r][1];
                o[2] = sx + base[r][2];
                o[3] = sy + base[r][3];
            }
        }
}
