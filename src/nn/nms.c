/* nms.c - non-maximum suppression with torchvision 0.14's CPU arithmetic
 * (csrc/ops/cpu/nms_kernel.cpp): stable sort by score descending, float IoU
 * inter / (area_i + area_j - inter), suppression when IoU > threshold.
 *
 * Batched NMS runs the same greedy pass inside each group (torchvision's _batched_nms_vanilla;
 * its coordinate-offset trick for small inputs gives the same keep set except where shifting
 * the coordinates changes the rounding of an IoU that sits exactly at the threshold), and
 * returns the kept boxes in the global score order. */
#include <math.h>
#include <string.h>

#include "nn/nn_impl.h"

/* torch's descending sort puts NaN first; ties keep index order (stable) */
static bool before(const float *scores, int a, int b) {
    float sa = scores[a], sb = scores[b];
    bool  na = isnan(sa), nb = isnan(sb);
    if (na != nb) return na;
    if (!na && sa != sb) return sa > sb;
    return a < b;
}

static bool before_group(const int *idxs, int a, int b) { return idxs[a] < idxs[b]; }

/* bottom-up stable merge sort of v (n) using tmp (n); key: scores, or groups when idxs != NULL */
static void merge_sort(int *v, int *tmp, int n, const float *scores, const int *idxs) {
    int *src = v, *dst = tmp;
    for (int width = 1; width < n; width *= 2) {
        for (int lo = 0; lo < n; lo += 2 * width) {
            int mid = lo + width < n ? lo + width : n;
            int hi  = lo + 2 * width < n ? lo + 2 * width : n;
            int i = lo, j = mid, k = lo;
            while (i < mid && j < hi) {
                /* take from the right only when strictly before: stability */
                bool right = idxs ? before_group(idxs, src[j], src[i])
                                  : before(scores, src[j], src[i]);
                dst[k++] = right ? src[j++] : src[i++];
            }
            while (i < mid) dst[k++] = src[i++];
            while (j < hi) dst[k++] = src[j++];
        }
        int *t = src;
        src    = dst;
        dst    = t;
    }
    if (src != v) memcpy(v, src, (size_t)(unsigned)n * sizeof(int));
}

static inline float box_area(const float *b) { return (b[2] - b[0]) * (b[3] - b[1]); }

/* IoU exactly as torchvision computes it */
static inline float iou(const float *a, float area_a, const float *b) {
    float xx1 = fmaxf(a[0], b[0]), yy1 = fmaxf(a[1], b[1]);
    float xx2 = fminf(a[2], b[2]), yy2 = fminf(a[3], b[3]);
    float w = xx2 - xx1, h = yy2 - yy1;
    w = w > 0.0f ? w : 0.0f;
    h = h > 0.0f ? h : 0.0f;
    float inter = w * h;
    return inter / (area_a + box_area(b) - inter);
}

/* greedy pass over ord (n, sorted): suppressed entries become -1; returns kept count */
static int greedy(int *ord, int n, const float *boxes, float thr) {
    int kept = 0;
    for (int a = 0; a < n; a++) {
        int i = ord[a];
        if (i < 0) continue;
        kept++;
        const float *bi = boxes + 4 * (size_t)i;
        float        ai = box_area(bi);
        for (int c = a + 1; c < n; c++) {
            int j = ord[c];
            if (j < 0) continue;
            if (iou(bi, ai, boxes + 4 * (size_t)j) > thr) ord[c] = -1;
        }
    }
    return kept;
}

int iseg_nms(int *keep, int *order, const float *boxes, const float *scores, int N,
             float iou_thresh) {
    ISEG_ASSERT(N >= 0);
    if (N == 0) return 0;
    for (int i = 0; i < N; i++) order[i] = i;
    merge_sort(order, keep, N, scores, NULL);
    greedy(order, N, boxes, iou_thresh);
    int k = 0;
    for (int a = 0; a < N; a++)
        if (order[a] >= 0) keep[k++] = order[a];
    return k;
}

int iseg_batched_nms(int *keep, int *scratch, const float *boxes, const float *scores,
                     const int *idxs, int N, float iou_thresh) {
    ISEG_ASSERT(N >= 0);
    if (N == 0) return 0;
    int *glob = scratch, *byg = scratch + N;
    for (int i = 0; i < N; i++) glob[i] = i;
    merge_sort(glob, keep, N, scores, NULL);
    memcpy(byg, glob, (size_t)(unsigned)N * sizeof(int));
    merge_sort(byg, keep, N, NULL, idxs); /* stable: score order inside each group */
    for (int a = 0; a < N;) {
        int b = a + 1;
        while (b < N && idxs[byg[b]] == idxs[byg[a]]) b++;
        greedy(byg + a, b - a, boxes, iou_thresh);
        a = b;
    }
    /* flags in keep, then the kept boxes in global order */
    memset(keep, 0, (size_t)(unsigned)N * sizeof(int));
    for (int a = 0; a < N; a++)
        if (byg[a] >= 0) keep[byg[a]] = 1;
    int k = 0;
    for (int a = 0; a < N; a++)
        if (keep[glob[a]]) byg[k++] = glob[a];
    memcpy(keep, byg, (size_t)(unsigned)k * sizeof(int));
    return k;
}

int iseg_nms_ref(int *keep, const float *boxes, const float *scores, int N, float iou_thresh) {
    /* selection by repeated arg-max (no sort), suppression checked against every kept box */
    unsigned char *used = iseg__calloc((size_t)N + 1, 1);
    ISEG_ASSERT(used);
    int k = 0;
    for (;;) {
        int best = -1;
        for (int i = 0; i < N; i++)
            if (!used[i] && (best < 0 || before(scores, i, best))) best = i;
        if (best < 0) break;
        used[best] = 1;
        bool drop  = false;
        for (int t = 0; t < k && !drop; t++) {
            const float *bk = boxes + 4 * (size_t)keep[t];
            drop            = iou(bk, box_area(bk), boxes + 4 * (size_t)best) > iou_thresh;
        }
        if (!drop) keep[k++] = best;
    }
    iseg__free(used);
    return k;
}
