/* maskrcnn_rpn.c - the region proposal selection shared by inference and training:
 * per-level top-k of the objectness logits, box decoding, clipping, small-box removal and
 * torchvision's batched NMS dispatch.
 * ref: torchvision/models/detection/rpn.py RegionProposalNetwork.filter_proposals (0.14). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "models/maskrcnn_impl.h"
#include "nn/nn_impl.h" /* iseg__roi_align_levels */

struct scored {
    float v;
    int   i;
};

/* descending value, then ascending index */
static int cmp_scored_desc(const void *a, const void *b) {
    const struct scored *x = a, *y = b;
    if (x->v > y->v) return -1;
    if (x->v < y->v) return 1;
    return (x->i > y->i) - (x->i < y->i);
}

/* Indices of the k largest values (sorted descending, ties by index): quickselect on the
 * threshold then a sort of the survivors. s has n entries and is reordered. */
static void top_k(struct scored *s, int n, int k) {
    if (k >= n) {
        qsort(s, (size_t)n, sizeof(*s), cmp_scored_desc);
        return;
    }
    int lo = 0, hi = n - 1;
    while (lo < hi) {
        struct scored pivot = s[lo + (hi - lo) / 2];
        int i = lo, j = hi;
        while (i <= j) {
            while (cmp_scored_desc(&s[i], &pivot) < 0) i++;
            while (cmp_scored_desc(&s[j], &pivot) > 0) j--;
            if (i <= j) {
                struct scored t = s[i];
                s[i] = s[j];
                s[j] = t;
                i++;
                j--;
            }
        }
        if (k - 1 <= j) hi = j;
        else if (k - 1 >= i) lo = i;
        else break;
    }
    qsort(s, (size_t)k, sizeof(*s), cmp_scored_desc);
}

int mrcnn_batched_nms(iseg_arena_t a, int *keep, const float *boxes, const float *scores,
                      const int *idxs, int n, float thresh) {
    if (n == 0) return 0;
    if ((size_t)n * 4 > 4000) {
        int *scratch = iseg_arena_alloc(a, sizeof(int) * 2 * (size_t)n);
        if (!scratch) return -1;
        return iseg_batched_nms(keep, scratch, boxes, scores, idxs, n, thresh);
    }
    float maxc = -INFINITY;
    for (int i = 0; i < 4 * n; i++) maxc = fmaxf(maxc, boxes[i]);
    float *shifted = iseg_arena_alloc_f32(a, (size_t)4 * n);
    int *order = iseg_arena_alloc(a, sizeof(int) * (size_t)n);
    if (!shifted || !order) return -1;
    for (int i = 0; i < n; i++) {
        float off = (float)idxs[i] * (maxc + 1.0f);
        for (int k = 0; k < 4; k++) shifted[4 * i + k] = boxes[4 * i + k] + off;
    }
    return iseg_nms(keep, order, shifted, scores, n, thresh);
}

bool mrcnn_props_init(struct mrcnn_props *p, iseg_arena_t a, const int *level_hw, int pre) {
    int cap = 0;
    for (int l = 0; l < MRCNN_N_LEVELS; l++) {
        int n = level_hw[l] * MRCNN_N_ANCHORS;
        cap += n < pre ? n : pre;
    }
    memset(p, 0, sizeof(*p));
    p->a = a;
    p->pre = pre;
    p->boxes = iseg_arena_alloc_f32(a, (size_t)4 * cap + 4);
    p->scores = iseg_arena_alloc_f32(a, (size_t)cap + 1);
    p->lvl = iseg_arena_alloc(a, sizeof(int) * ((size_t)cap + 1));
    p->deltas = iseg_arena_alloc_f32(a, (size_t)4 * cap + 4);
    p->anchors = iseg_arena_alloc_f32(a, (size_t)4 * cap + 4);
    return p->boxes && p->scores && p->lvl && p->deltas && p->anchors;
}

bool mrcnn_props_add_level(struct mrcnn_props *p, int l, const float *obj, const float *dmap,
                           int H, int W, float size, int stride_h, int stride_w) {
    static const float ratios[MRCNN_N_ANCHORS] = {0.5f, 1.0f, 2.0f};
    struct iseg_arena_mark mark = iseg_arena_mark(p->a);
    int HW = H * W, na = HW * MRCNN_N_ANCHORS;
    struct scored *s = iseg_arena_alloc(p->a, sizeof(*s) * (size_t)na);
    if (!s) return false;
    /* objectness (A, H, W) -> flattened (H, W, A) */
    for (int a = 0; a < MRCNN_N_ANCHORS; a++)
        for (int q = 0; q < HW; q++) {
            s[q * MRCNN_N_ANCHORS + a].v = obj[(size_t)a * HW + q];
            s[q * MRCNN_N_ANCHORS + a].i = q * MRCNN_N_ANCHORS + a;
        }
    int k = na < p->pre ? na : p->pre;
    top_k(s, na, k);
    float base[MRCNN_N_ANCHORS * 4];
    iseg_anchors(base, size, ratios, MRCNN_N_ANCHORS, 1, 1, 1, 1);
    int n = p->n;
    for (int j = 0; j < k; j++) {
        int idx = s[j].i, a = idx % MRCNN_N_ANCHORS, q = idx / MRCNN_N_ANCHORS;
        int y = q / W, x = q % W;
        float sx = (float)(x * stride_w), sy = (float)(y * stride_h);
        float *an = p->anchors + 4 * (n + j);
        an[0] = sx + base[4 * a + 0];
        an[1] = sy + base[4 * a + 1];
        an[2] = sx + base[4 * a + 2];
        an[3] = sy + base[4 * a + 3];
        for (int c = 0; c < 4; c++) p->deltas[4 * (n + j) + c] = dmap[(size_t)(a * 4 + c) * HW + q];
        p->scores[n + j] = s[j].v;
        p->lvl[n + j] = l;
    }
    p->n = n + k;
    iseg_arena_release(p->a, mark);
    return true;
}

bool mrcnn_props_finish(struct mrcnn_props *p, int img_h, int img_w, float nms_thresh, int post,
                        float **out_boxes, int *out_n) {
    const float clip = (float)log(1000.0 / 16);
    const float w1[4] = {1, 1, 1, 1};
    int n = p->n;
    float *boxes = p->boxes, *scores = p->scores;
    int *lvl = p->lvl;
    iseg_box_decode(boxes, p->deltas, p->anchors, n, w1, clip);
    iseg_sigmoid(scores, scores, (size_t)n);
    iseg_box_clip(boxes, n, (float)img_h, (float)img_w);
    /* remove small boxes (side < 1e-3) and scores < 0 (never: sigmoid), compacting */
    int kept = 0;
    for (int i = 0; i < n; i++) {
        float w = boxes[4 * i + 2] - boxes[4 * i], hh = boxes[4 * i + 3] - boxes[4 * i + 1];
        if (!(w >= 1e-3f && hh >= 1e-3f) || !(scores[i] >= 0.0f)) continue;
        memmove(boxes + 4 * kept, boxes + 4 * i, 4 * sizeof(float));
        scores[kept] = scores[i];
        lvl[kept] = lvl[i];
        kept++;
    }
    int *keep = iseg_arena_alloc(p->a, sizeof(int) * (size_t)(kept ? kept : 1));
    if (!keep) return false;
    int nk = mrcnn_batched_nms(p->a, keep, boxes, scores, lvl, kept, nms_thresh);
    if (nk < 0) return false;
    if (nk > post) nk = post;
    float *props = iseg_arena_alloc_f32(p->a, (size_t)4 * (nk ? nk : 1));
    if (!props) return false;
    for (int i = 0; i < nk; i++) memcpy(props + 4 * i, boxes + 4 * keep[i], 4 * sizeof(float));
    *out_boxes = props;
    *out_n = nk;
    return true;
}

void mrcnn_resized_size(int H0, int W0, int min_size, int max_size, int *oh, int *ow) {
    /* ref: transform.py _resize_image_and_masks: scale in float32, size floored in double;
     * python's `800.0 / tensor` is Tensor.__rtruediv__: reciprocal() * 800, in float32 */
    float mn = (float)(H0 < W0 ? H0 : W0), mx = (float)(H0 > W0 ? H0 : W0);
    volatile float r1 = 1.0f / mn, r2 = 1.0f / mx;
    float s1 = r1 * (float)min_size, s2 = r2 * (float)max_size;
    float scale = s1 < s2 ? s1 : s2;
    *oh = (int)floor((double)H0 * (double)scale);
    *ow = (int)floor((double)W0 * (double)scale);
}

void mrcnn_roi_pool(iseg_engine_t e, float *out, int *levels, float scales[4], int *n_lv,
                    const float *const feats[4], const int H[4], const int W[4], int C,
                    const float *boxes, int N, int S, int img_h) {
    for (int l = 0; l < 4; l++) {
        /* _infer_scale: 2 ** round(log2(feature size / image size)), from the height */
        float approx = (float)((double)H[l] / (double)img_h);
        scales[l] = (float)pow(2.0, (double)roundf(log2f(approx)));
    }
    int k_min = (int)(-log2f(scales[0])), k_max = (int)(-log2f(scales[3]));
    *n_lv = k_max - k_min + 1 < 4 ? k_max - k_min + 1 : 4;
    if (N == 0) return;
    iseg_roi_levels(levels, boxes, N, k_min, k_max, 224.0f, 4, 1e-6f);
    /* every level in one pass on the pool, each RoI straight into its place in out */
    iseg__roi_align_levels(e, out, feats, H, W, scales, *n_lv, levels, boxes, N, C, S, S, 2,
                           false);
}
