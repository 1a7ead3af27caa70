/* test_targets.c - training-time target assignment against torchvision
 * (tests/golden/nn/targets.safetensors, tools/make_target_goldens.py) and the sampler's rules. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "iseg/targets.h"
#include "iseg/weights.h"
#include "test.h"

static iseg_weights_t load_gold(void) {
    char path[512], err[512];
    snprintf(path, sizeof(path), "%s/tests/golden/nn/targets.safetensors", ISEG_SOURCE_DIR);
    iseg_weights_t g = NULL;
    if (iseg_weights_load(&g, path, err, sizeof(err)) != ISEG_STATUS_OK) TEST_SKIP("%s", err);
    return g;
}

static const float *t(iseg_weights_t g, const char *name, size_t *n) {
    const struct iseg_weight *w = iseg_weights_find(g, name);
    ASSERT_MSG(w != NULL, "golden %s missing", name);
    if (n) *n = iseg_weight_numel(w);
    return w->data;
}

TEST(box_iou_and_matchers_vs_torchvision) {
    iseg_weights_t g = load_gold();
    size_t ng, np;
    const float *gt = t(g, "gt", &ng), *pred = t(g, "pred", &np);
    int M = (int)ng / 4, N = (int)np / 4;
    float *iou = calloc((size_t)M * N, sizeof(float));
    iseg_box_iou(iou, gt, M, pred, N);
    const float *want = t(g, "iou", NULL);
    for (int i = 0; i < M * N; i++)
        ASSERT_MSG(fabsf(iou[i] - want[i]) <= 1e-6f, "iou[%d] %.8g vs %.8g", i, iou[i], want[i]);
    /* the matchers run on torchvision's own IoU so that ties are exactly as there */
    int *m = calloc((size_t)N, sizeof(int));
    float *scratch = calloc((size_t)(M + N), sizeof(float));
    const float *rpn = t(g, "match_rpn", NULL), *roi = t(g, "match_roi", NULL);
    iseg_match(m, want, M, N, 0.7f, 0.3f, true, scratch);
    int low_quality = 0;
    for (int i = 0; i < N; i++) {
        ASSERT_MSG(m[i] == (int)rpn[i], "rpn match[%d] %d vs %d", i, m[i], (int)rpn[i]);
        low_quality += m[i] >= 0;
    }
    ASSERT(low_quality >= M); /* every gt has at least one anchor (low-quality matches) */
    iseg_match(m, want, M, N, 0.5f, 0.5f, false, scratch);
    for (int i = 0; i < N; i++)
        ASSERT_MSG(m[i] == (int)roi[i], "roi match[%d] %d vs %d", i, m[i], (int)roi[i]);
    free(iou);
    free(m);
    free(scratch);
    iseg_weights_free(g);
}

TEST(mask_targets_vs_torchvision) {
    iseg_weights_t g = load_gold();
    size_t nm;
    const float *masks = t(g, "masks", &nm), *boxes = t(g, "mask_boxes", NULL);
    const float *gi = t(g, "mask_gt_index", NULL), *want = t(g, "mask_targets", NULL);
    enum { H = 40, W = 50, P = 6, S = 28 };
    struct iseg_rle r[3] = {{0}};
    for (int k = 0; k < 3; k++) {
        uint8_t *bm = malloc(H * W); /* column-major */
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++) bm[x * H + y] = masks[(size_t)k * H * W + y * W + x] > 0.5f;
        ASSERT_OK(iseg_rle_encode(&r[k], bm, H, W));
        free(bm);
    }
    int idx[P];
    for (int p = 0; p < P; p++) idx[p] = (int)gi[p];
    float *out = calloc((size_t)P * S * S, sizeof(float)), *scratch = calloc(H * W, sizeof(float));
    iseg_engine_t e;
    ASSERT_OK(iseg_engine_init(&e, 2));
    ASSERT_OK(iseg_project_masks(e, out, r, idx, boxes, P, S, scratch));
    for (int i = 0; i < P * S * S; i++)
        ASSERT_MSG(fabsf(out[i] - want[i]) <= 1e-6f, "target[%d] %.8g vs %.8g", i, out[i],
                   want[i]);
    /* a mask of another size is refused */
    struct iseg_rle bad = {0};
    uint8_t z[4] = {0};
    ASSERT_OK(iseg_rle_encode(&bad, z, 2, 2));
    struct iseg_rle two[2] = {r[0], bad};
    int bi[2] = {0, 1};
    ASSERT(iseg_project_masks(e, out, two, bi, boxes, 2, S, scratch) == ISEG_STATUS_EINVAL);
    iseg_rle_free(&bad);
    for (int k = 0; k < 3; k++) iseg_rle_free(&r[k]);
    iseg_engine_free(e);
    free(out);
    free(scratch);
    iseg_weights_free(g);
}

TEST(sampler_counts_order_determinism) {
    enum { N = 1000 };
    int labels[N], pos[N], neg[N], scratch[N];
    for (int i = 0; i < N; i++) labels[i] = i % 10 == 0 ? 1 + i % 3 : i % 7 == 0 ? -1 : 0;
    int n_lab_pos = 0, n_lab_neg = 0;
    for (int i = 0; i < N; i++) {
        n_lab_pos += labels[i] >= 1;
        n_lab_neg += labels[i] == 0;
    }
    struct iseg_rng rng;
    iseg_rng_seed(&rng, 5);
    int np, nn;
    /* RPN: 256 at half positives: 100 positives exist, all drawn; 156 negatives */
    iseg_sample_pos_neg(pos, &np, neg, &nn, labels, N, 256, 0.5f, &rng, scratch);
    ASSERT(n_lab_pos == 100 && np == 100 && nn == 156);
    for (int i = 0; i < np; i++) ASSERT(labels[pos[i]] >= 1 && (i == 0 || pos[i] > pos[i - 1]));
    for (int i = 0; i < nn; i++) ASSERT(labels[neg[i]] == 0 && (i == 0 || neg[i] > neg[i - 1]));
    /* RoI heads: 512 at a quarter positives: 100 < 128 positives, 412 negatives */
    iseg_sample_pos_neg(pos, &np, neg, &nn, labels, N, 512, 0.25f, &rng, scratch);
    ASSERT(np == 100 && nn == 412);
    /* few negatives: all of them */
    iseg_sample_pos_neg(pos, &np, neg, &nn, labels, 30, 512, 0.25f, &rng, scratch);
    ASSERT(np == 3 && nn < 30);
    /* too many positives: floor(batch fraction) of them, drawn uniformly */
    int hist[N] = {0};
    for (int i = 0; i < N; i++) labels[i] = i < 400 ? 1 : 0;
    for (int rep = 0; rep < 200; rep++) {
        iseg_sample_pos_neg(pos, &np, neg, &nn, labels, N, 256, 0.5f, &rng, scratch);
        ASSERT(np == 128 && nn == 128);
        for (int i = 0; i < np; i++) hist[pos[i]]++;
    }
    /* each positive is drawn with probability 128/400: expected 64 of 200 */
    int lo = 1000, hi = 0;
    for (int i = 0; i < 400; i++) {
        lo = hist[i] < lo ? hist[i] : lo;
        hi = hist[i] > hi ? hist[i] : hi;
    }
    ASSERT_MSG(lo > 30 && hi < 110, "draw counts %d..%d (expected around 64)", lo, hi);
    /* the same seed draws the same samples */
    struct iseg_rng a, b;
    iseg_rng_seed(&a, 77);
    iseg_rng_seed(&b, 77);
    int pos2[N], neg2[N], np2, nn2;
    iseg_sample_pos_neg(pos, &np, neg, &nn, labels, N, 256, 0.5f, &a, scratch);
    iseg_sample_pos_neg(pos2, &np2, neg2, &nn2, labels, N, 256, 0.5f, &b, scratch);
    ASSERT(np == np2 && nn == nn2 && !memcmp(pos, pos2, sizeof(int) * (size_t)np) &&
           !memcmp(neg, neg2, sizeof(int) * (size_t)nn));
}

TEST_LIST = {
    TEST_ENTRY(box_iou_and_matchers_vs_torchvision),
    TEST_ENTRY(mask_targets_vs_torchvision),
    TEST_ENTRY(sampler_counts_order_determinism),
    TEST_END,
};
