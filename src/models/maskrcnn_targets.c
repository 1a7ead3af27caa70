/* maskrcnn_targets.c - training-time target assignment (see iseg/targets.h).
 * ref: torchvision/ops/boxes.py box_iou; models/detection/_utils.py Matcher,
 * BalancedPositiveNegativeSampler; models/detection/roi_heads.py project_masks_on_boxes. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/core_impl.h"
#include "iseg/targets.h"

void iseg_box_iou(float *out, const float *a, int M, const float *b, int N) {
    for (int i = 0; i < M; i++) {
        const float *p = a + 4 * i;
        float area1 = (p[2] - p[0]) * (p[3] - p[1]);
        for (int j = 0; j < N; j++) {
            const float *q = b + 4 * j;
            float area2 = (q[2] - q[0]) * (q[3] - q[1]);
            float w = fminf(p[2], q[2]) - fmaxf(p[0], q[0]);
            float h = fminf(p[3], q[3]) - fmaxf(p[1], q[1]);
            w = w > 0.0f ? w : 0.0f;
            h = h > 0.0f ? h : 0.0f;
            float inter = w * h;
            /* as torch: 0 / 0 is NaN for two degenerate boxes */
            out[(size_t)i * N + j] = inter / (area1 + area2 - inter);
        }
    }
}

/* torch's max: NaN wins (the first NaN), else the first maximum */
static inline bool beats(float v, float best) { return isnan(v) ? !isnan(best) : v > best; }

void iseg_match(int *matches, const float *quality, int M, int N, float high, float low,
                bool allow_low_quality, float *scratch) {
    ISEG_ASSERT(M >= 1 && N >= 0 && low <= high);
    float *best = scratch;         /* (N) best quality of each prediction */
    float *highest = scratch + N;  /* (M) highest quality of each ground truth */
    for (int n = 0; n < N; n++) {
        int   arg = 0;
        float v = quality[n];
        for (int m = 1; m < M; m++) {
            float q = quality[(size_t)m * N + n];
            if (beats(q, v)) {
                v = q;
                arg = m;
            }
        }
        best[n] = v;
        matches[n] = arg;
    }
    if (allow_low_quality)
        for (int m = 0; m < M; m++) {
            const float *row = quality + (size_t)m * N;
            float h = N ? row[0] : 0.0f;
            for (int n = 1; n < N; n++)
                if (beats(row[n], h)) h = row[n];
            highest[m] = h;
        }
    /* thresholds; low-quality matches keep their argmax (all_matches in torchvision) */
    for (int n = 0; n < N; n++) {
        float v = best[n];
        int   keep = matches[n];
        if (v < low) matches[n] = ISEG_MATCH_BELOW;
        else if (v >= low && v < high) matches[n] = ISEG_MATCH_BETWEEN;
        if (allow_low_quality && matches[n] < 0) {
            for (int m = 0; m < M; m++)
                if (quality[(size_t)m * N + n] == highest[m]) {
                    matches[n] = keep;
                    break;
                }
        }
    }
}

static int cmp_int(const void *a, const void *b) {
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

/* draw k of the n values in v (reordered) without replacement: a partial Fisher-Yates shuffle;
 * the drawn values end up in v[0..k), sorted */
static void draw(int *v, int n, int k, struct iseg_rng *rng) {
    for (int i = 0; i < k; i++) {
        int j = i + (int)iseg_rng_below(rng, (uint32_t)(n - i));
        int t = v[i];
        v[i] = v[j];
        v[j] = t;
    }
    qsort(v, (size_t)k, sizeof(int), cmp_int);
}

void iseg_sample_pos_neg(int *pos, int *n_pos, int *neg, int *n_neg, const int *labels, int N,
                         int batch, float pos_fraction, struct iseg_rng *rng, int *scratch) {
    ISEG_ASSERT(N >= 0 && batch >= 0 && rng && scratch);
    int np = 0, nn = 0;
    for (int i = 0; i < N; i++) {
        if (labels[i] >= 1) pos[np++] = i;
        else if (labels[i] == 0) neg[nn++] = i;
    }
    (void)scratch;
    int want_pos = (int)((float)batch * pos_fraction);
    int kp = np < want_pos ? np : want_pos;
    int kn = batch - kp < nn ? batch - kp : nn;
    draw(pos, np, kp, rng);
    draw(neg, nn, kn, rng);
    *n_pos = kp;
    *n_neg = kn;
}

enum iseg_status iseg_project_masks(iseg_engine_t e, float *targets,
                                    const struct iseg_rle *gt_masks, const int *gt_index,
                                    const float *boxes, int P, int S, float *scratch) {
    ISEG_ASSERT(e && P >= 0 && S >= 1);
    if (P == 0) return ISEG_STATUS_OK;
    uint32_t h = gt_masks[gt_index[0]].h, w = gt_masks[gt_index[0]].w;
    int decoded = -1;
    for (int p = 0; p < P; p++) {
        int g = gt_index[p];
        const struct iseg_rle *r = &gt_masks[g];
        if (r->h != h || r->w != w) return ISEG_STATUS_EINVAL;
        if (g != decoded) {
            /* runs, column-major, into a row-major float image */
            size_t pos = 0;
            for (size_t k = 0; k < r->m; k++) {
                float v = (float)(k & 1);
                for (uint32_t t = 0; t < r->cnts[k]; t++, pos++) {
                    if (pos >= (size_t)h * w) return ISEG_STATUS_EFORMAT;
                    size_t x = pos / h, y = pos % h;
                    scratch[y * w + x] = v;
                }
            }
            if (pos != (size_t)h * w) return ISEG_STATUS_EFORMAT;
            decoded = g;
        }
        iseg_roi_align(e, targets + (size_t)p * S * S, scratch, boxes + 4 * p, 1, 1, (int)h,
                       (int)w, S, S, 1.0f, -1, false);
    }
    return ISEG_STATUS_OK;
}
