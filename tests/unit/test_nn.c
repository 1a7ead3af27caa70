/* test_nn.c - the engine's operators against their naive _ref twins (NMSE <= 1e-7, ggml's
 * definition), on odd shapes and with every SGEMM kernel the CPU has; bit-identical results for
 * 1 and 3 threads; hand-computed cases (NMS ties and thresholds, RoIAlign samples outside the
 * map, torchvision's anchors); arena, tensor and out-of-memory behaviour. */
#include "test.h"

#include "iseg/nn.h"
#include "iseg/tensor.h"
#include "nn/nn_impl.h"

/* ---- helpers ---- */

static float *rnd(size_t n, uint64_t *st) {
    float *p = malloc((n ? n : 1) * sizeof(float));
    ASSERT(p);
    for (size_t i = 0; i < n; i++) p[i] = (float)(test_rand_unif(st) * 2.0 - 1.0);
    return p;
}

#define ASSERT_NMSE(got, want, n, what)                                                     \
    do {                                                                                    \
        double e_ = test_nmse(got, want, n);                                                     \
        if (!(e_ <= 1e-7)) {                                                                \
            size_t i_ = 0;                                                                  \
            while (i_ < (n) && fabsf((got)[i_] - (want)[i_]) <= 1e-5f * (1 + fabsf((want)[i_]))) i_++; \
            TEST_FAIL("%s: NMSE %g; first mismatch at %zu: %g vs %g", what, e_, i_,         \
                      i_ < (n) ? (got)[i_] : 0.0, i_ < (n) ? (want)[i_] : 0.0);             \
        }                                                                                   \
    } while (0)

#define ASSERT_BITEQ(a, b, n, what) \
    ASSERT_MSG(memcmp(a, b, (n) * sizeof(float)) == 0, "%s: results differ between thread counts", what)

static const enum iseg__gemm_isa ISAS[] = {ISEG_GEMM_ISA_C, ISEG_GEMM_ISA_AVX2,
                                           ISEG_GEMM_ISA_AVX512};
#define N_ISAS 3

/* the kernels this CPU really has (forcing an absent one falls back) */
static bool isa_available(enum iseg__gemm_isa isa) { return iseg__gemm_force(isa)->isa == isa; }

/* ---- GEMM ---- */

TEST(sgemm_vs_ref) {
    static const int shapes[][3] = {{1, 1, 1},   {8, 48, 256}, {7, 13, 5},    {9, 49, 257},
                                    {33, 100, 70}, {17, 5, 600}, {300, 64, 31}, {2, 130, 513}};
    uint64_t      st = 1;
    iseg_engine_t e1, e3;
    ASSERT_OK(iseg_engine_init(&e1, 1));
    ASSERT_OK(iseg_engine_init(&e3, 3));
    for (int ii = 0; ii < N_ISAS; ii++) {
        if (!isa_available(ISAS[ii])) continue;
        for (size_t s = 0; s < sizeof(shapes) / sizeof(shapes[0]); s++) {
            int    M = shapes[s][0], N = shapes[s][1], K = shapes[s][2];
            int    lda = K + 3, ldb = N + 1, ldc = N + 2;
            float *A = rnd((size_t)M * lda, &st), *B = rnd((size_t)K * ldb, &st);
            float *C0 = rnd((size_t)M * ldc, &st);
            for (int acc = 0; acc < 2; acc++) {
                float *C1 = malloc((size_t)M * ldc * 4), *C3 = malloc((size_t)M * ldc * 4);
                float *R  = malloc((size_t)M * ldc * 4);
                memcpy(C1, C0, (size_t)M * ldc * 4);
                memcpy(C3, C0, (size_t)M * ldc * 4);
                memcpy(R, C0, (size_t)M * ldc * 4);
                iseg_sgemm(e1, M, N, K, A, lda, B, ldb, C1, ldc, acc);
                iseg_sgemm(e3, M, N, K, A, lda, B, ldb, C3, ldc, acc);
                iseg_sgemm_ref(M, N, K, A, lda, B, ldb, R, ldc, acc);
                ASSERT_NMSE(C1, R, (size_t)M * ldc, "sgemm");
                ASSERT_BITEQ(C1, C3, (size_t)M * ldc, "sgemm");
                free(C1), free(C3), free(R);
            }
            free(A), free(B), free(C0);
        }
    }
    iseg__gemm_force(ISEG_GEMM_ISA_AUTO);
    ASSERT_OK(iseg_engine_take_error(e1));
    iseg_engine_free(e1);
    iseg_engine_free(e3);
}

/* ---- convolution ---- */

struct conv_case {
    int cin, cout, k, stride, pad, dil, groups, B, h, w;
    bool res, relu, bias;
};

static void check_conv(iseg_engine_t e1, iseg_engine_t e3, const struct conv_case *cc,
                       uint64_t *st) {
    struct iseg_conv2d_desc d = iseg_conv2d_default_desc(cc->cin, cc->cout, cc->k);
    d.stride_h = d.stride_w = cc->stride;
    d.pad_h = d.pad_w = cc->pad;
    d.dil_h = d.dil_w = cc->dil;
    d.groups          = cc->groups;
    int oh, ow;
    iseg_conv2d_out_hw(&d, cc->h, cc->w, &oh, &ow);
    size_t nw = (size_t)cc->cout * (cc->cin / cc->groups) * cc->k * cc->k;
    size_t nx = (size_t)cc->B * cc->cin * cc->h * cc->w, ny = (size_t)cc->B * cc->cout * oh * ow;
    float *w = rnd(nw, st), *b = rnd((size_t)cc->cout, st), *x = rnd(nx, st);
    float *r  = cc->res ? rnd(ny, st) : NULL;
    float *y1 = test_falloc_nan(ny), *y3 = test_falloc_nan(ny), *yr = test_falloc_nan(ny);
    iseg_conv2d_t c;
    ASSERT_OK(iseg_conv2d_init(&c, &d, w, cc->bias ? b : NULL));
    enum iseg_act act = cc->relu ? ISEG_ACT_RELU : ISEG_ACT_NONE;
    iseg_conv2d_forward(e1, c, y1, x, cc->B, cc->h, cc->w, r, act);
    iseg_conv2d_forward(e3, c, y3, x, cc->B, cc->h, cc->w, r, act);
    iseg_conv2d_forward_ref(yr, x, w, cc->bias ? b : NULL, &d, cc->B, cc->h, cc->w, r, act);
    char what[160];
    snprintf(what, sizeof(what), "conv %d->%d k%d s%d p%d d%d g%d B%d %dx%d res%d relu%d (%s)",
             cc->cin, cc->cout, cc->k, cc->stride, cc->pad, cc->dil, cc->groups, cc->B, cc->h,
             cc->w, cc->res, cc->relu, iseg__gemm_kernel()->name);
    ASSERT_NMSE(y1, yr, ny, what);
    ASSERT_BITEQ(y1, y3, ny, what);
    if (r) {
        /* y may alias the residual */
        memcpy(y3, r, ny * sizeof(float));
        iseg_conv2d_forward(e3, c, y3, x, cc->B, cc->h, cc->w, y3, act);
        ASSERT_NMSE(y3, yr, ny, what);
    }
    iseg_conv2d_free(c);
    free(w), free(b), free(x), free(r), free(y1), free(y3), free(yr);
}

TEST(conv2d_vs_ref) {
    static const struct conv_case cases[] = {
        {16, 16, 1, 1, 0, 1, 1, 1, 5, 7, false, false, true},    /* 1x1 direct */
        {3, 8, 1, 2, 0, 1, 1, 2, 9, 9, false, true, true},       /* 1x1 stride 2 */
        {5, 17, 3, 1, 1, 1, 1, 2, 11, 13, true, true, true},     /* 3x3, residual */
        {3, 9, 7, 2, 3, 1, 1, 1, 23, 19, false, true, false},    /* stem-like */
        {8, 12, 3, 1, 2, 2, 1, 1, 10, 9, false, false, true},    /* dilation 2 */
        {8, 6, 3, 2, 1, 1, 2, 2, 9, 12, false, true, true},      /* groups 2 */
        {12, 12, 3, 1, 1, 1, 12, 1, 8, 7, false, false, true},   /* depthwise */
        {1, 1, 3, 1, 1, 1, 1, 1, 1, 1, false, false, true},      /* 1x1 map */
        {70, 33, 3, 1, 1, 1, 1, 1, 17, 21, true, false, true},   /* tails, K > KC */
        {300, 20, 1, 1, 0, 1, 1, 1, 7, 9, false, true, true},    /* K = 300 */
        {4, 300, 3, 1, 0, 1, 1, 1, 6, 5, false, false, true},    /* M > MC_BLK */
        {6, 10, 5, 3, 0, 2, 1, 1, 20, 17, false, true, true},    /* 5x5 stride 3 dil 2 */
        {60, 19, 3, 1, 1, 1, 1, 1, 13, 29, true, true, true},    /* K 540: 3 K blocks, row runs */
        {16, 24, 3, 1, 1, 1, 1, 6, 7, 7, false, true, true},     /* head-like: 7x7, B 6 */
        {9, 16, 3, 1, 1, 1, 1, 3, 14, 14, true, false, false},   /* head-like: 14x14, B 3 */
        {7, 13, 3, 2, 1, 1, 1, 2, 15, 18, false, true, true},    /* 3x3 stride 2, odd size */
        {24, 40, 1, 1, 0, 1, 1, 2, 19, 23, true, true, true},    /* 1x1 direct, N tails */
        {5, 9, 3, 1, 1, 1, 1, 1, 1, 400, false, false, true},    /* one row, 400 columns */
        {5, 9, 3, 1, 1, 1, 1, 1, 400, 1, false, true, true},     /* one column, 400 rows */
        {4, 8, 3, 1, 4, 1, 1, 1, 3, 5, false, false, true},      /* padding wider than input */
    };
    uint64_t      st = 7;
    iseg_engine_t e1, e3;
    ASSERT_OK(iseg_engine_init(&e1, 1));
    ASSERT_OK(iseg_engine_init(&e3, 3));
    for (int ii = 0; ii < N_ISAS; ii++) {
        if (!isa_available(ISAS[ii])) continue;
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) check_conv(e1, e3, &cases[i], &st);
    }
    iseg__gemm_force(ISEG_GEMM_ISA_AUTO);
    ASSERT_OK(iseg_engine_take_error(e1));
    ASSERT_OK(iseg_engine_take_error(e3));
    iseg_engine_free(e1);
    iseg_engine_free(e3);
}

/* Winograd F(2,3) and F(4,3), forced on for any channel count: odd output sizes (partial tiles
 * at the right and bottom, maps smaller than one tile), padding 0, 1 and 2, residual + ReLU
 * (also in place), batches whose tiles run across images, K > KC and M > MC_BLK; against the
 * reference, with every kernel, bit-identical for 1 and 3 threads. */
TEST(conv2d_winograd_vs_ref) {
    static const struct conv_case cases[] = {
        {8, 8, 3, 1, 1, 1, 1, 1, 1, 1, false, false, true},     /* 1x1 output */
        {5, 9, 3, 1, 1, 1, 1, 2, 2, 3, true, true, true},       /* smaller than a tile */
        {7, 12, 3, 1, 1, 1, 1, 1, 13, 17, true, true, true},    /* 13x17: partial tiles */
        {7, 12, 3, 1, 0, 1, 1, 2, 15, 19, false, true, true},   /* pad 0: 13x17 */
        {6, 10, 3, 1, 0, 1, 1, 1, 3, 3, true, false, true},     /* pad 0: 1x1 output */
        {6, 10, 3, 1, 2, 1, 1, 1, 5, 6, false, true, false},    /* pad 2 */
        {16, 24, 3, 1, 1, 1, 1, 7, 7, 7, true, true, true},     /* box head: 7x7, B 7 */
        {9, 16, 3, 1, 1, 1, 1, 5, 14, 14, true, true, false},   /* mask head: 14x14, B 5 */
        {13, 11, 3, 1, 1, 1, 1, 3, 5, 9, false, false, true},   /* tiles across images */
        {70, 33, 3, 1, 1, 1, 1, 1, 17, 21, true, false, true},  /* channel tails */
        {300, 20, 3, 1, 1, 1, 1, 1, 9, 11, false, true, true},  /* K 300 > KC */
        {4, 300, 3, 1, 1, 1, 1, 1, 6, 5, true, true, true},     /* M 300 > MC_BLK */
        {64, 64, 3, 1, 1, 1, 1, 1, 40, 53, true, true, true},   /* many blocks */
        {3, 5, 3, 1, 1, 1, 1, 2, 1, 40, false, true, true},     /* one row */
        {3, 5, 3, 1, 1, 1, 1, 1, 37, 1, false, true, true},     /* one column */
    };
    static const enum iseg__wino_mode modes[] = {ISEG_WINO_F2, ISEG_WINO_F4};
    uint64_t      st = 31;
    iseg_engine_t e1, e3;
    ASSERT_OK(iseg_engine_init(&e1, 1));
    ASSERT_OK(iseg_engine_init(&e3, 3));
    for (int mi = 0; mi < 2; mi++) {
        iseg__conv2d_set_wino(modes[mi]);
        for (int ii = 0; ii < N_ISAS; ii++) {
            if (!isa_available(ISAS[ii])) continue;
            for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
                check_conv(e1, e3, &cases[i], &st);
        }
    }
    /* the switch really routes: a forced conv reports its tile, OFF none, AUTO only big ones */
    float wt[8 * 8 * 9] = {0};
    struct iseg_conv2d_desc d = iseg_conv2d_default_desc(8, 8, 3);
    iseg_conv2d_t c;
    iseg__conv2d_set_wino(ISEG_WINO_F4);
    ASSERT_OK(iseg_conv2d_init(&c, &d, wt, NULL));
    ASSERT_EQ_INT(iseg__conv2d_wino_m(c, 1, 9, 9), 4);
    iseg__conv2d_set_wino(ISEG_WINO_OFF);
    ASSERT_EQ_INT(iseg__conv2d_wino_m(c, 1, 9, 9), 0);
    iseg_conv2d_free(c);
    iseg__conv2d_set_wino(ISEG_WINO_AUTO);
    ASSERT_OK(iseg_conv2d_init(&c, &d, wt, NULL));
    ASSERT_EQ_INT(iseg__conv2d_wino_m(c, 1, 9, 9), 0); /* 8 channels: direct */
    iseg_conv2d_free(c);
    iseg__gemm_force(ISEG_GEMM_ISA_AUTO);
    ASSERT_OK(iseg_engine_take_error(e1));
    ASSERT_OK(iseg_engine_take_error(e3));
    iseg_engine_free(e1);
    iseg_engine_free(e3);
}

/* A batch of small images is one GEMM whose N runs over all images' pixels (columns packed
 * across image boundaries, tiles straddling two images): bit-identical to one call per image,
 * with every kernel, for 1 and 3 threads. */
TEST(conv2d_batched_equals_per_image) {
    struct {
        int cin, cout, k, stride, pad, dil, groups, B, h, w;
        bool residual;
    } cases[] = {
        {20, 24, 3, 1, 1, 1, 1, 9, 7, 7, false},  /* box head: 49 columns, tiles straddle */
        {9, 16, 3, 1, 1, 1, 1, 5, 14, 14, true},  /* mask head, residual */
        {16, 8, 1, 1, 0, 1, 1, 7, 5, 3, true},    /* 1x1 direct, runs across images */
        {8, 12, 3, 2, 1, 2, 1, 4, 9, 8, false},   /* stride 2, dilation 2 */
        {8, 6, 3, 1, 1, 1, 2, 3, 6, 5, false},    /* groups 2 (row-run packer) */
        {300, 10, 3, 1, 1, 1, 1, 3, 4, 4, false}, /* K 2700: many K blocks */
    };
    uint64_t      st = 23;
    iseg_engine_t e1, e3;
    ASSERT_OK(iseg_engine_init(&e1, 1));
    ASSERT_OK(iseg_engine_init(&e3, 3));
    for (int ii = 0; ii < N_ISAS; ii++) {
        if (!isa_available(ISAS[ii])) continue;
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
            struct iseg_conv2d_desc d = iseg_conv2d_default_desc(cases[i].cin, cases[i].cout, cases[i].k);
            d.stride_h = d.stride_w = cases[i].stride;
            d.pad_h = d.pad_w = cases[i].pad;
            d.dil_h = d.dil_w = cases[i].dil;
            d.groups          = cases[i].groups;
            int B = cases[i].B, h = cases[i].h, w = cases[i].w, oh, ow;
            iseg_conv2d_out_hw(&d, h, w, &oh, &ow);
            size_t nw = (size_t)d.cout * (d.cin / d.groups) * d.kh * d.kw;
            size_t xs = (size_t)d.cin * h * w, ys = (size_t)d.cout * oh * ow, ny = B * ys;
            float *wt = rnd(nw, &st), *b = rnd((size_t)d.cout, &st), *x = rnd(B * xs, &st);
            float *res = cases[i].residual ? rnd(ny, &st) : NULL;
            float *y1 = test_falloc_nan(ny), *y3 = test_falloc_nan(ny), *yp = test_falloc_nan(ny), *yr = test_falloc_nan(ny);
            iseg_conv2d_t c;
            ASSERT_OK(iseg_conv2d_init(&c, &d, wt, b));
            iseg_conv2d_forward(e1, c, y1, x, B, h, w, res, ISEG_ACT_RELU);
            iseg_conv2d_forward(e3, c, y3, x, B, h, w, res, ISEG_ACT_RELU);
            for (int k = 0; k < B; k++)
                iseg_conv2d_forward(e3, c, yp + k * ys, x + k * xs, 1, h, w, res ? res + k * ys : NULL,
                                    ISEG_ACT_RELU);
            iseg_conv2d_forward_ref(yr, x, wt, b, &d, B, h, w, res, ISEG_ACT_RELU);
            ASSERT_NMSE(y1, yr, ny, "conv2d batched");
            ASSERT_BITEQ(y1, y3, ny, "conv2d batched");
            ASSERT_MSG(memcmp(y1, yp, ny * sizeof(float)) == 0,
                       "case %zu: batched differs from per-image", i);
            iseg_conv2d_free(c);
            free(wt), free(b), free(x), free(res), free(y1), free(y3), free(yp), free(yr);
        }
    }
    iseg__gemm_force(ISEG_GEMM_ISA_AUTO);
    ASSERT_OK(iseg_engine_take_error(e1));
    ASSERT_OK(iseg_engine_take_error(e3));
    iseg_engine_free(e1);
    iseg_engine_free(e3);
}

/* kernel == stride: one GEMM over the batch and a scatter; the same per image, and exactly
 * (0 + tap) + bias of the reference's one tap per pixel (checked against the ref in double) */
TEST(deconv2d_no_overlap) {
    struct {
        int cin, cout, k, g, B, h, w;
        bool bias;
    } cases[] = {
        {16, 12, 2, 1, 5, 14, 14, true}, /* mask head */
        {8, 6, 2, 2, 3, 5, 7, true},     /* groups 2 */
        {5, 4, 3, 1, 2, 4, 3, false},    /* 3x3/3, no bias */
    };
    uint64_t      st = 29;
    iseg_engine_t e1, e3;
    ASSERT_OK(iseg_engine_init(&e1, 1));
    ASSERT_OK(iseg_engine_init(&e3, 3));
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct iseg_deconv2d_desc d = {cases[i].cin, cases[i].cout, cases[i].k, cases[i].k,
                                       cases[i].k, cases[i].k, 0, 0, 0, 0, 1, 1, cases[i].g};
        int B = cases[i].B, h = cases[i].h, w = cases[i].w, oh, ow;
        iseg_deconv2d_out_hw(&d, h, w, &oh, &ow);
        ASSERT(oh == h * d.kh && ow == w * d.kw);
        size_t nw = (size_t)d.cin * (d.cout / d.groups) * d.kh * d.kw;
        size_t xs = (size_t)d.cin * h * w, ys = (size_t)d.cout * oh * ow, ny = B * ys;
        float *wt = rnd(nw, &st), *b = cases[i].bias ? rnd((size_t)d.cout, &st) : NULL;
        float *x = rnd(B * xs, &st);
        float *y1 = test_falloc_nan(ny), *y3 = test_falloc_nan(ny), *yp = test_falloc_nan(ny), *yr = test_falloc_nan(ny);
        iseg_deconv2d_t c;
        ASSERT_OK(iseg_deconv2d_init(&c, &d, wt, b));
        for (int act = 0; act < 2; act++) {
            enum iseg_act a = act ? ISEG_ACT_RELU : ISEG_ACT_NONE;
            iseg_deconv2d_forward(e1, c, y1, x, B, h, w, a);
            iseg_deconv2d_forward(e3, c, y3, x, B, h, w, a);
            for (int k = 0; k < B; k++) iseg_deconv2d_forward(e1, c, yp + k * ys, x + k * xs, 1, h, w, a);
            iseg_deconv2d_forward_ref(yr, x, wt, b, &d, B, h, w, a);
            ASSERT_NMSE(y1, yr, ny, "deconv2d no overlap");
            ASSERT_BITEQ(y1, y3, ny, "deconv2d no overlap");
            ASSERT_MSG(memcmp(y1, yp, ny * sizeof(float)) == 0, "case %zu: batch differs", i);
        }
        iseg_deconv2d_free(c);
        free(wt), free(b), free(x), free(y1), free(y3), free(yp), free(yr);
    }
    ASSERT_OK(iseg_engine_take_error(e1));
    iseg_engine_free(e1);
    iseg_engine_free(e3);
}

TEST(conv2d_bad_desc) {
    struct iseg_conv2d_desc d = iseg_conv2d_default_desc(6, 4, 3);
    d.groups                  = 4; /* 6 not divisible by 4 */
    float         w[216]      = {0};
    iseg_conv2d_t c           = (iseg_conv2d_t)1;
    ASSERT_STATUS(iseg_conv2d_init(&c, &d, w, NULL), ISEG_STATUS_EINVAL);
    ASSERT(c == NULL);
    d = iseg_conv2d_default_desc(6, 4, 3);
    ASSERT_OK(iseg_conv2d_init(&c, &d, w, NULL));
    ASSERT_EQ_INT(iseg_conv2d_get_desc(c)->pad_h, 1);
    int oh, ow;
    iseg_conv2d_out_hw(iseg_conv2d_get_desc(c), 5, 8, &oh, &ow);
    ASSERT_EQ_INT(oh, 5);
    ASSERT_EQ_INT(ow, 8);
    iseg_conv2d_free(c);
}

/* ---- transposed convolution ---- */

TEST(deconv2d_vs_ref) {
    struct {
        int cin, cout, k, s, p, op, dil, g, B, h, w;
    } cases[] = {
        {8, 6, 2, 2, 0, 0, 1, 1, 2, 7, 5},  /* mask head 2x2/2 */
        {5, 7, 3, 2, 1, 1, 1, 1, 1, 6, 9},  /* 3x3/2 pad 1 out_pad 1 */
        {4, 6, 3, 1, 1, 0, 2, 2, 2, 5, 4},  /* dilation 2, groups 2 */
        {3, 2, 4, 3, 2, 2, 1, 1, 1, 3, 3},  /* k 4 stride 3 */
    };
    uint64_t      st = 3;
    iseg_engine_t e1, e3;
    ASSERT_OK(iseg_engine_init(&e1, 1));
    ASSERT_OK(iseg_engine_init(&e3, 3));
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct iseg_deconv2d_desc d = {cases[i].cin, cases[i].cout, cases[i].k, cases[i].k,
                                       cases[i].s,   cases[i].s,    cases[i].p, cases[i].p,
                                       cases[i].op,  cases[i].op,   cases[i].dil, cases[i].dil,
                                       cases[i].g};
        int B = cases[i].B, h = cases[i].h, w = cases[i].w, oh, ow;
        iseg_deconv2d_out_hw(&d, h, w, &oh, &ow);
        size_t nw = (size_t)d.cin * (d.cout / d.groups) * d.kh * d.kw;
        size_t nx = (size_t)B * d.cin * h * w, ny = (size_t)B * d.cout * oh * ow;
        float *wt = rnd(nw, &st), *b = rnd((size_t)d.cout, &st), *x = rnd(nx, &st);
        float *y1 = test_falloc_nan(ny), *y3 = test_falloc_nan(ny), *yr = test_falloc_nan(ny);
        iseg_deconv2d_t c;
        ASSERT_OK(iseg_deconv2d_init(&c, &d, wt, b));
        iseg_deconv2d_forward(e1, c, y1, x, B, h, w, ISEG_ACT_RELU);
        iseg_deconv2d_forward(e3, c, y3, x, B, h, w, ISEG_ACT_RELU);
        iseg_deconv2d_forward_ref(yr, x, wt, b, &d, B, h, w, ISEG_ACT_RELU);
        ASSERT_NMSE(y1, yr, ny, "deconv2d");
        ASSERT_BITEQ(y1, y3, ny, "deconv2d");
        iseg_deconv2d_free(c);
        free(wt), free(b), free(x), free(y1), free(y3), free(yr);
    }
    ASSERT_OK(iseg_engine_take_error(e1));
    iseg_engine_free(e1);
    iseg_engine_free(e3);
}

/* ---- linear ---- */

TEST(linear_vs_ref) {
    static const int shapes[][3] = {{1, 1, 1},     {5, 37, 50},  {64, 300, 97},
                                    {300, 49, 16}, {37, 261, 403}, {3, 700, 25}};
    uint64_t      st = 11;
    iseg_engine_t e1, e3;
    ASSERT_OK(iseg_engine_init(&e1, 1));
    ASSERT_OK(iseg_engine_init(&e3, 3));
    for (int ii = 0; ii < N_ISAS; ii++) {
        if (!isa_available(ISAS[ii])) continue;
        for (size_t s = 0; s < sizeof(shapes) / sizeof(shapes[0]); s++) {
            int    N = shapes[s][0], in = shapes[s][1], out = shapes[s][2];
            float *w = rnd((size_t)out * in, &st), *b = rnd((size_t)out, &st);
            float *x = rnd((size_t)N * in, &st);
            float *y1 = test_falloc_nan((size_t)N * out), *y3 = test_falloc_nan((size_t)N * out);
            float *yr = test_falloc_nan((size_t)N * out);
            iseg_linear_t l;
            ASSERT_OK(iseg_linear_init(&l, in, out, w, s & 1 ? NULL : b));
            iseg_linear_forward(e1, l, y1, x, N, ISEG_ACT_RELU);
            iseg_linear_forward(e3, l, y3, x, N, ISEG_ACT_RELU);
            iseg_linear_forward_ref(yr, x, w, s & 1 ? NULL : b, N, in, out, ISEG_ACT_RELU);
            ASSERT_NMSE(y1, yr, (size_t)N * out, "linear");
            ASSERT_BITEQ(y1, y3, (size_t)N * out, "linear");
            iseg_linear_free(l);
            free(w), free(b), free(x), free(y1), free(y3), free(yr);
        }
    }
    iseg__gemm_force(ISEG_GEMM_ISA_AUTO);
    iseg_engine_free(e1);
    iseg_engine_free(e3);
}

/* ---- normalisation and element-wise ---- */

TEST(norms_vs_ref) {
    uint64_t st = 5;
    int      B = 2, C = 12;
    size_t   HW = 37, n = (size_t)B * C * HW;
    float   *x = rnd(n, &st), *g = rnd((size_t)C, &st), *be = rnd((size_t)C, &st);
    float   *m = rnd((size_t)C, &st), *v = rnd((size_t)C, &st);
    for (int c = 0; c < C; c++) v[c] = v[c] * v[c] + 0.1f;
    float *y = test_falloc_nan(n), *yr = test_falloc_nan(n);
    iseg_batchnorm(y, x, g, be, m, v, 1e-5f, B, C, HW);
    iseg_batchnorm_ref(yr, x, g, be, m, v, 1e-5f, B, C, HW);
    ASSERT_NMSE(y, yr, n, "batchnorm");
    for (int groups = 1; groups <= 12; groups *= 2) {
        if (C % groups) continue;
        iseg_groupnorm(y, x, g, be, 1e-5f, B, C, HW, groups);
        iseg_groupnorm_ref(yr, x, g, be, 1e-5f, B, C, HW, groups);
        ASSERT_NMSE(y, yr, n, "groupnorm");
        iseg_groupnorm(y, x, NULL, NULL, 1e-5f, B, C, HW, groups);
        iseg_groupnorm_ref(yr, x, NULL, NULL, 1e-5f, B, C, HW, groups);
        ASSERT_NMSE(y, yr, n, "groupnorm (no affine)");
    }
    /* in place */
    memcpy(y, x, n * sizeof(float));
    iseg_batchnorm(y, y, g, be, m, v, 1e-5f, B, C, HW);
    iseg_batchnorm_ref(yr, x, g, be, m, v, 1e-5f, B, C, HW);
    ASSERT_NMSE(y, yr, n, "batchnorm in place");
    free(x), free(g), free(be), free(m), free(v), free(y), free(yr);
}

TEST(bn_fold_matches_conv_then_bn) {
    uint64_t                st = 9;
    struct iseg_conv2d_desc d  = iseg_conv2d_default_desc(4, 6, 3);
    int                     h = 7, w = 6;
    size_t                  nw = 6 * 4 * 9, ny = 6 * 7 * 6;
    float *wt = rnd(nw, &st), *b = rnd(6, &st), *x = rnd(4 * 7 * 6, &st);
    float *g = rnd(6, &st), *be = rnd(6, &st), *m = rnd(6, &st), *v = rnd(6, &st);
    for (int c = 0; c < 6; c++) v[c] = v[c] * v[c] + 0.5f;
    float *ya = test_falloc_nan(ny), *yb = test_falloc_nan(ny), bf[6];
    iseg_conv2d_forward_ref(ya, x, wt, b, &d, 1, h, w, NULL, ISEG_ACT_NONE);
    iseg_batchnorm_ref(ya, ya, g, be, m, v, 1e-5f, 1, 6, 42);
    iseg_bn_fold(wt, bf, b, g, be, m, v, 1e-5f, 6, 36);
    iseg_conv2d_forward_ref(yb, x, wt, bf, &d, 1, h, w, NULL, ISEG_ACT_NONE);
    ASSERT_NMSE(yb, ya, ny, "bn_fold");
    free(wt), free(b), free(x), free(g), free(be), free(m), free(v), free(ya), free(yb);
}

TEST(eltwise) {
    float x[6] = {-2.0f, -0.0f, 0.5f, 3.0f, 1.0f, 1.0f}, y[6], z[6];
    iseg_relu(y, x, 6);
    ASSERT(y[0] == 0.0f && y[1] == 0.0f && y[2] == 0.5f && y[3] == 3.0f);
    iseg_add(z, x, y, 6);
    ASSERT(z[0] == -2.0f && z[3] == 6.0f);
    iseg_sigmoid(y, x, 6);
    ASSERT_NEAR(y[2], 1.0 / (1.0 + exp(-0.5)), 1e-7);
    ASSERT_NEAR(y[0], 1.0 / (1.0 + exp(2.0)), 1e-7);
    iseg_softmax(z, x, 2, 3);
    ASSERT_NEAR(z[0] + z[1] + z[2], 1.0, 1e-6);
    ASSERT_NEAR(z[2], exp(0.5) / (exp(-2.0) + exp(0.0) + exp(0.5)), 1e-7);
    ASSERT_NEAR(z[3], exp(2.0) / (exp(2.0) + 2.0), 1e-7);
    /* in place, large logits do not overflow */
    float big[3] = {1000.0f, 1000.0f, -1000.0f};
    iseg_softmax(big, big, 1, 3);
    ASSERT(big[0] == 0.5f && big[1] == 0.5f && big[2] == 0.0f);
}

/* ---- pooling and resizing ---- */

TEST(maxpool_vs_ref) {
    uint64_t st = 13;
    iseg_engine_t e3;
    ASSERT_OK(iseg_engine_init(&e3, 3));
    struct {
        int k, s, p, h, w;
    } cases[] = {{3, 2, 1, 9, 12}, {3, 2, 1, 8, 7}, {1, 2, 0, 5, 6}, {2, 2, 0, 7, 7}, {3, 1, 1, 1, 1}};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int oh, ow, B = 2, C = 3;
        iseg_maxpool2d_out_hw(cases[i].k, cases[i].s, cases[i].p, cases[i].h, cases[i].w, &oh, &ow);
        size_t nx = (size_t)B * C * cases[i].h * cases[i].w, ny = (size_t)B * C * oh * ow;
        float *x = rnd(nx, &st), *y = test_falloc_nan(ny), *yr = test_falloc_nan(ny);
        if (i == 0) x[5] = NAN;
        iseg_maxpool2d_ref(yr, x, B, C, cases[i].h, cases[i].w, cases[i].k, cases[i].s, cases[i].p);
        iseg_maxpool2d(NULL, y, x, B, C, cases[i].h, cases[i].w, cases[i].k, cases[i].s,
                       cases[i].p);
        ASSERT_MSG(memcmp(y, yr, ny * sizeof(float)) == 0, "maxpool case %zu", i);
        memset(y, 0, ny * sizeof(float));
        iseg_maxpool2d(e3, y, x, B, C, cases[i].h, cases[i].w, cases[i].k, cases[i].s,
                       cases[i].p);
        ASSERT_MSG(memcmp(y, yr, ny * sizeof(float)) == 0, "maxpool case %zu, 3 threads", i);
        free(x), free(y), free(yr);
    }
    iseg_engine_free(e3);
}

TEST(resize_nearest) {
    /* 3 -> 7: src = min(floor(dst * 3/7), 2) = 0 0 0 1 1 2 2; 2 -> 4: dst >> 1 */
    float x[6] = {1, 2, 3, 4, 5, 6}; /* (1, 1, 2, 3) */
    float y[28];
    iseg_resize_nearest(y, x, 1, 1, 2, 3, 4, 7);
    static const float want_row0[7] = {1, 1, 1, 2, 2, 3, 3};
    for (int i = 0; i < 7; i++) {
        ASSERT(y[i] == want_row0[i]);
        ASSERT(y[7 + i] == want_row0[i]);
        ASSERT(y[14 + i] == want_row0[i] + 3);
    }
    iseg_resize_nearest_add(y, x, 1, 1, 2, 3, 4, 7);
    ASSERT(y[27] == 12.0f);
    ASSERT(y[0] == 2.0f);
}

TEST(resize_bilinear_vs_ref) {
    uint64_t      st = 17;
    iseg_engine_t e1, e3;
    ASSERT_OK(iseg_engine_init(&e1, 1));
    ASSERT_OK(iseg_engine_init(&e3, 3));
    struct {
        int h, w, oh, ow;
        float sh, sw;
    } cases[] = {{5, 7, 11, 3, 0, 0}, {8, 8, 16, 16, 2.0f, 2.0f}, {9, 4, 9, 13, 0, 0},
                 {30, 29, 1, 1, 0, 0}, {6, 6, 6, 6, 0.5f, 0.5f}};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int    B = 2, C = 3;
        size_t nx = (size_t)B * C * cases[i].h * cases[i].w, ny = (size_t)B * C * cases[i].oh * cases[i].ow;
        float *x = rnd(nx, &st), *y1 = test_falloc_nan(ny), *y3 = test_falloc_nan(ny), *yr = test_falloc_nan(ny);
        iseg_resize_bilinear(e1, y1, x, B, C, cases[i].h, cases[i].w, cases[i].oh, cases[i].ow,
                             cases[i].sh, cases[i].sw);
        iseg_resize_bilinear(e3, y3, x, B, C, cases[i].h, cases[i].w, cases[i].oh, cases[i].ow,
                             cases[i].sh, cases[i].sw);
        iseg_resize_bilinear_ref(yr, x, B, C, cases[i].h, cases[i].w, cases[i].oh, cases[i].ow,
                                 cases[i].sh, cases[i].sw);
        ASSERT_NMSE(y1, yr, ny, "bilinear");
        ASSERT_BITEQ(y1, y3, ny, "bilinear");
        if (cases[i].h == cases[i].oh && cases[i].w == cases[i].ow)
            ASSERT(memcmp(y1, x, nx * sizeof(float)) == 0); /* same size: a copy */
        free(x), free(y1), free(y3), free(yr);
    }
    /* hand case: 2 -> 4 along x: src = 0.5 (dst + 0.5) - 0.5 = -0.25 -> 0, 0.25, 0.75, 1.25 */
    float x[2] = {0.0f, 4.0f}, y[4];
    iseg_resize_bilinear(e1, y, x, 1, 1, 1, 2, 1, 4, 0, 0);
    ASSERT(y[0] == 0.0f && y[1] == 1.0f && y[2] == 3.0f && y[3] == 4.0f);
    iseg_engine_free(e1);
    iseg_engine_free(e3);
}

/* ---- detection ops ---- */

TEST(roi_align_vs_ref) {
    uint64_t      st = 19;
    int           C = 5, H = 13, W = 17, N = 9;
    float        *feat = rnd((size_t)C * H * W, &st);
    float         boxes[9 * 4];
    iseg_engine_t e1, e3;
    ASSERT_OK(iseg_engine_init(&e1, 1));
    ASSERT_OK(iseg_engine_init(&e3, 3));
    for (int i = 0; i < N; i++) {
        float x1 = (float)(test_rand_unif(&st) * 80 - 10), y1 = (float)(test_rand_unif(&st) * 60 - 10);
        boxes[4 * i]     = x1;
        boxes[4 * i + 1] = y1;
        boxes[4 * i + 2] = x1 + (float)(test_rand_unif(&st) * 60);
        boxes[4 * i + 3] = y1 + (float)(test_rand_unif(&st) * 50);
    }
    /* one tiny box and one far outside */
    boxes[0] = 3, boxes[1] = 3, boxes[2] = 3.5f, boxes[3] = 3.2f;
    boxes[4] = 200, boxes[5] = 200, boxes[6] = 260, boxes[7] = 230;
    for (int sr = 0; sr <= 2; sr++)
        for (int al = 0; al < 2; al++) {
            int    oh = 7, ow = 6;
            size_t n = (size_t)N * C * oh * ow;
            float *y1 = test_falloc_nan(n), *y3 = test_falloc_nan(n), *yr = test_falloc_nan(n);
            iseg_roi_align(e1, y1, feat, boxes, N, C, H, W, oh, ow, 0.25f, sr, al);
            iseg_roi_align(e3, y3, feat, boxes, N, C, H, W, oh, ow, 0.25f, sr, al);
            iseg_roi_align_ref(yr, feat, boxes, N, C, H, W, oh, ow, 0.25f, sr, al);
            ASSERT_NMSE(y1, yr, n, "roi_align");
            ASSERT_BITEQ(y1, y3, n, "roi_align");
            /* the far box samples only outside the map (y > H): zeros */
            for (size_t i = (size_t)C * oh * ow; i < 2 * (size_t)C * oh * ow; i++) ASSERT(y1[i] == 0.0f);
            free(y1), free(y3), free(yr);
        }
    free(feat);
    iseg_engine_free(e1);
    iseg_engine_free(e3);
}

/* The channel-block path (8 channels per pass, 8x8 transposes where 8 used columns are
 * consecutive, a partial last block) is bit-identical to the reference, which has
 * torchvision's arithmetic; RoIs of every size on a map wide enough for the transposes. */
TEST(roi_align_blocks_bitexact) {
    uint64_t      st = 31;
    int           C = 21, H = 37, W = 53, N = 40;
    float        *feat = rnd((size_t)C * H * W, &st);
    float        *boxes = malloc(4 * (size_t)N * sizeof(float));
    iseg_engine_t e1, e3;
    ASSERT(boxes);
    ASSERT_OK(iseg_engine_init(&e1, 1));
    ASSERT_OK(iseg_engine_init(&e3, 3));
    for (int i = 0; i < N; i++) {
        float bw = (float)(test_rand_unif(&st) * (i < 20 ? 60 : 220));
        float bh = (float)(test_rand_unif(&st) * (i < 20 ? 60 : 160));
        float x1 = (float)(test_rand_unif(&st) * 230 - 15), y1 = (float)(test_rand_unif(&st) * 160 - 15);
        boxes[4 * i] = x1, boxes[4 * i + 1] = y1, boxes[4 * i + 2] = x1 + bw, boxes[4 * i + 3] = y1 + bh;
    }
    /* the whole map, and one partly outside it on every side */
    boxes[0] = 0, boxes[1] = 0, boxes[2] = 4 * W, boxes[3] = 4 * H;
    boxes[4] = -30, boxes[5] = -30, boxes[6] = 4 * W + 30, boxes[7] = 4 * H + 30;
    static const int sizes[][2] = {{7, 7}, {14, 14}, {3, 5}};
    for (int si = 0; si < 3; si++)
        for (int sr = 0; sr <= 2; sr += 2)
            for (int al = 0; al < 2; al++) {
                int    oh = sizes[si][0], ow = sizes[si][1];
                size_t n  = (size_t)N * C * oh * ow;
                float *y1 = test_falloc_nan(n), *y3 = test_falloc_nan(n), *yr = test_falloc_nan(n);
                iseg_roi_align(e1, y1, feat, boxes, N, C, H, W, oh, ow, 0.25f, sr, al);
                iseg_roi_align(e3, y3, feat, boxes, N, C, H, W, oh, ow, 0.25f, sr, al);
                iseg_roi_align_ref(yr, feat, boxes, N, C, H, W, oh, ow, 0.25f, sr, al);
                ASSERT_BITEQ(y1, y3, n, "roi_align blocks");
                ASSERT_MSG(memcmp(y1, yr, n * sizeof(float)) == 0,
                           "roi_align %dx%d sr %d aligned %d: not bit-identical to the reference",
                           oh, ow, sr, al);
                free(y1), free(y3), free(yr);
            }
    ASSERT_OK(iseg_engine_take_error(e1));
    free(feat), free(boxes);
    iseg_engine_free(e1);
    iseg_engine_free(e3);
}

/* MultiScaleRoIAlign in one call (iseg__roi_align_levels): every RoI bit-identical to the
 * reference on its own level, for 1 and 3 threads, with a level that its RoIs cover densely
 * (copied whole per channel block), one with a few small RoIs (gathered tiles), one without
 * RoIs, a partial channel block and RoIs partly or wholly outside their map. */
TEST(roi_align_levels_bitexact) {
    uint64_t      st = 47;
    int           C = 13, N = 60, oh = 7, ow = 7;
    const int     H[3] = {40, 20, 10}, W[3] = {52, 26, 13};
    const float   scales[3] = {0.25f, 0.125f, 0.0625f};
    float        *feat[3], *boxes = malloc(4 * (size_t)N * sizeof(float));
    int          *lv = malloc((size_t)N * sizeof(int));
    iseg_engine_t e1, e3;
    ASSERT(boxes && lv);
    for (int l = 0; l < 3; l++) feat[l] = rnd((size_t)C * H[l] * W[l], &st);
    ASSERT_OK(iseg_engine_init(&e1, 1));
    ASSERT_OK(iseg_engine_init(&e3, 3));
    for (int i = 0; i < N; i++) {
        /* level 0: 54 RoIs of up to 60 pixels (dense); level 1: 6 tiny ones; level 2: none */
        int   l  = i % 10 == 9 ? 1 : 0;
        float bw = (float)(test_rand_unif(&st) * (l ? 6 : 60) + 0.5);
        float bh = (float)(test_rand_unif(&st) * (l ? 6 : 60) + 0.5);
        float x1 = (float)(test_rand_unif(&st) * 230 - 15), y1 = (float)(test_rand_unif(&st) * 175 - 15);
        boxes[4 * i] = x1, boxes[4 * i + 1] = y1, boxes[4 * i + 2] = x1 + bw, boxes[4 * i + 3] = y1 + bh;
        lv[i] = l;
    }
    boxes[4 * 1] = 400, boxes[4 * 1 + 1] = 300, boxes[4 * 1 + 2] = 460, boxes[4 * 1 + 3] = 330;
    const float *fc[3] = {feat[0], feat[1], feat[2]};
    for (int sr = 0; sr <= 2; sr += 2)
        for (int al = 0; al < 2; al++) {
            size_t per = (size_t)C * oh * ow, n = per * N;
            float *y1 = test_falloc_nan(n), *y3 = test_falloc_nan(n), *yr = test_falloc_nan(n);
            iseg__roi_align_levels(e1, y1, fc, H, W, scales, 3, lv, boxes, N, C, oh, ow, sr, al);
            iseg__roi_align_levels(e3, y3, fc, H, W, scales, 3, lv, boxes, N, C, oh, ow, sr, al);
            for (int i = 0; i < N; i++)
                iseg_roi_align_ref(yr + per * i, feat[lv[i]], boxes + 4 * i, 1, C, H[lv[i]],
                                   W[lv[i]], oh, ow, scales[lv[i]], sr, al);
            ASSERT_BITEQ(y1, y3, n, "roi_align levels");
            ASSERT_MSG(memcmp(y1, yr, n * sizeof(float)) == 0,
                       "roi_align levels sr %d aligned %d: not bit-identical to the reference", sr,
                       al);
            free(y1), free(y3), free(yr);
        }
    ASSERT_OK(iseg_engine_take_error(e1));
    ASSERT_OK(iseg_engine_take_error(e3));
    for (int l = 0; l < 3; l++) free(feat[l]);
    free(boxes), free(lv);
    iseg_engine_free(e1);
    iseg_engine_free(e3);
}

TEST(roi_align_hand) {
    /* feat (1, 2, 2) = [[0, 1], [2, 3]]: value(y, x) = 2 y + x inside, clamped at the edges */
    float         feat[4] = {0, 1, 2, 3}, out[4];
    iseg_engine_t e;
    ASSERT_OK(iseg_engine_init(&e, 1));
    /* box (0,0)-(1,1), 1x1 output, 2x2 samples at 0.25/0.75: mean of 2y + x = 1.5 */
    float b1[4] = {0, 0, 1, 1};
    iseg_roi_align(e, out, feat, b1, 1, 1, 2, 2, 1, 1, 1.0f, 2, false);
    ASSERT(out[0] == 1.5f);
    /* aligned: box shifted by -0.5: samples at -0.25 (clamped to 0) and 0.25 on each axis */
    iseg_roi_align(e, out, feat, b1, 1, 1, 2, 2, 1, 1, 1.0f, 2, true);
    ASSERT_NEAR(out[0], (0.0 + 0.25 + 0.5 + 0.75) / 4, 1e-7);
    /* samples with y < -1 contribute 0 (but still count): box (-6,-6)-(-2,-2) is all outside */
    float b2[4] = {-6, -6, -2, -2};
    iseg_roi_align(e, out, feat, b2, 1, 1, 2, 2, 1, 1, 1.0f, 2, false);
    ASSERT(out[0] == 0.0f);
    /* box (-1.5,0)-(0.5,1): x samples at -1.0 (kept: not < -1, clamped to 0) and 0.0 */
    float b3[4] = {-1.5f, 0, 0.5f, 1};
    iseg_roi_align(e, out, feat, b3, 1, 1, 2, 2, 1, 1, 1.0f, 2, false);
    ASSERT(out[0] == 1.0f); /* x = 0 for both, y at 0.25 and 0.75: mean of 2y = 1 */
    /* x samples at -1.25 (dropped) and -0.25 (clamped): (0 + 0 + 2*0.25 + 2*0.75) / 4 = 0.5 */
    float b4[4] = {-2.0f, 0, 0.5f, 1};
    iseg_roi_align(e, out, feat, b4, 1, 1, 2, 2, 1, 1, 1.0f, 2, false);
    ASSERT_NEAR(out[0], 0.5, 1e-7);
    iseg_engine_free(e);
}

TEST(roi_levels) {
    /* torchvision LevelMapper: k = floor(4 + log2(sqrt(area) / 224) + 1e-6) in [2, 5] */
    float boxes[5 * 4] = {0, 0, 224, 224, 0, 0, 112, 112, 0, 0, 111, 111, 0, 0, 1000, 1000, 0, 0, 0, 0};
    int   lv[5];
    iseg_roi_levels(lv, boxes, 5, 2, 5, 224.0f, 4, 1e-6f);
    ASSERT_EQ_INT(lv[0], 2);
    ASSERT_EQ_INT(lv[1], 1);
    ASSERT_EQ_INT(lv[2], 0);
    ASSERT_EQ_INT(lv[3], 3);
    ASSERT_EQ_INT(lv[4], 0);
}

TEST(nms_hand) {
    /* ties: boxes 0 and 1 are identical with equal scores: the lower index wins */
    float boxes[5 * 4] = {0, 0, 10, 10, 0, 0, 10, 10, 0, 0, 10, 5, 20, 20, 30, 30, 0, 0, 10, 5.0001f};
    float scores[5]    = {0.9f, 0.9f, 0.8f, 0.95f, 0.1f};
    int   keep[5], order[5], k;
    /* IoU(box0, box2) = 50 / 100 = 0.5 exactly: not suppressed at 0.5 (strict >) */
    k = iseg_nms(keep, order, boxes, scores, 5, 0.5f);
    ASSERT_EQ_INT(k, 3);
    ASSERT_EQ_INT(keep[0], 3);
    ASSERT_EQ_INT(keep[1], 0);
    ASSERT_EQ_INT(keep[2], 2);
    /* box 4 (IoU with 0 just above 0.5) is suppressed by box 0 */
    int kr[5];
    ASSERT_EQ_INT(iseg_nms_ref(kr, boxes, scores, 5, 0.5f), 3);
    ASSERT(memcmp(kr, keep, 3 * sizeof(int)) == 0);
    /* below the limit: box 2 goes too */
    k = iseg_nms(keep, order, boxes, scores, 5, 0.4999f);
    ASSERT_EQ_INT(k, 2);
    /* batched: box 2 and 4 in another group survive box 0, ties still by index */
    int idxs[5] = {0, 0, 1, 0, 1}, scr[10];
    k = iseg_batched_nms(keep, scr, boxes, scores, idxs, 5, 0.3f);
    ASSERT_EQ_INT(k, 3);
    ASSERT_EQ_INT(keep[0], 3);
    ASSERT_EQ_INT(keep[1], 0);
    ASSERT_EQ_INT(keep[2], 2);
    ASSERT_EQ_INT(iseg_nms(keep, order, boxes, scores, 0, 0.5f), 0);
}

TEST(nms_vs_ref) {
    uint64_t st = 23;
    int      N  = 300;
    float   *boxes = malloc((size_t)N * 16), *scores = malloc((size_t)N * 4);
    int     *keep = malloc((size_t)N * 4), *kr = malloc((size_t)N * 4), *order = malloc((size_t)N * 8);
    int     *idxs = malloc((size_t)N * 4), *kb = malloc((size_t)N * 4);
    ASSERT(boxes && scores && keep && kr && order && idxs && kb);
    for (int i = 0; i < N; i++) {
        float x = (float)(test_rand_unif(&st) * 100), y = (float)(test_rand_unif(&st) * 100);
        boxes[4 * i] = x, boxes[4 * i + 1] = y;
        boxes[4 * i + 2] = x + 5 + (float)(test_rand_unif(&st) * 30);
        boxes[4 * i + 3] = y + 5 + (float)(test_rand_unif(&st) * 30);
        scores[i] = (float)(int)(test_rand_unif(&st) * 50) / 50.0f; /* many ties */
        idxs[i]   = (int)(test_rand_unif(&st) * 4);
    }
    for (int t = 0; t < 3; t++) {
        float thr = 0.3f + 0.2f * (float)t;
        int   k   = iseg_nms(keep, order, boxes, scores, N, thr);
        ASSERT_EQ_INT(k, iseg_nms_ref(kr, boxes, scores, N, thr));
        ASSERT(memcmp(keep, kr, (size_t)k * sizeof(int)) == 0);
        /* batched = per-group NMS merged by score (ties by index) */
        int kbn = iseg_batched_nms(kb, order, boxes, scores, idxs, N, thr);
        int tot = 0;
        for (int g = 0; g < 4; g++) {
            int cnt = 0;
            for (int i = 0; i < N; i++) if (idxs[i] == g) cnt++;
            float *bg = malloc((size_t)cnt * 16 + 16), *sg = malloc((size_t)cnt * 4 + 4);
            int   *map = malloc((size_t)cnt * 4 + 4), *kg = malloc((size_t)cnt * 4 + 4);
            int    c = 0;
            for (int i = 0; i < N; i++)
                if (idxs[i] == g) {
                    memcpy(bg + 4 * c, boxes + 4 * i, 16);
                    sg[c] = scores[i];
                    map[c++] = i;
                }
            int kk = iseg_nms_ref(kg, bg, sg, cnt, thr);
            for (int j = 0; j < kk; j++) {
                int found = 0;
                for (int q = 0; q < kbn; q++) found += kb[q] == map[kg[j]];
                ASSERT_EQ_INT(found, 1);
            }
            tot += kk;
            free(bg), free(sg), free(map), free(kg);
        }
        ASSERT_EQ_INT(kbn, tot);
        for (int q = 1; q < kbn; q++)
            ASSERT(scores[kb[q - 1]] > scores[kb[q]] ||
                   (scores[kb[q - 1]] == scores[kb[q]] && kb[q - 1] < kb[q]));
    }
    free(boxes), free(scores), free(keep), free(kr), free(order), free(idxs), free(kb);
}

TEST(anchors_torchvision) {
    /* torchvision AnchorGenerator(((32,),), ((0.5, 1.0, 2.0),)).cell_anchors */
    static const float base[3][4] = {{-23, -11, 23, 11}, {-16, -16, 16, 16}, {-11, -23, 11, 23}};
    float ratios[3] = {0.5f, 1.0f, 2.0f}, out[2 * 3 * 3 * 4];
    iseg_anchors(out, 32.0f, ratios, 3, 2, 3, 4, 4);
    for (int y = 0; y < 2; y++)
        for (int x = 0; x < 3; x++)
            for (int r = 0; r < 3; r++) {
                const float *o = out + ((y * 3 + x) * 3 + r) * 4;
                ASSERT(o[0] == base[r][0] + 4 * x && o[1] == base[r][1] + 4 * y);
                ASSERT(o[2] == base[r][2] + 4 * x && o[3] == base[r][3] + 4 * y);
            }
}

TEST(box_coder) {
    float ref[8]   = {10, 20, 50, 60, 0, 0, 16, 8};
    float tgt[8]   = {12, 18, 47, 70, 1, 2, 15, 9};
    float w1[4]    = {1, 1, 1, 1}, w10[4] = {10, 10, 5, 5};
    float d[8], back[8];
    for (int wi = 0; wi < 2; wi++) {
        const float *w = wi ? w10 : w1;
        iseg_box_encode(d, tgt, ref, 2, w);
        iseg_box_decode(back, d, ref, 2, w, logf(1000.0f / 16.0f));
        for (int i = 0; i < 8; i++) ASSERT_NEAR(back[i], tgt[i], 1e-4);
    }
    /* hand: ref (0,0,16,8) centre (8,4); dx = 0.5 -> cx 16; dw = log 2 -> w 32 */
    float dd[4] = {0.5f, 0.0f, logf(2.0f), 0.0f}, o[4];
    iseg_box_decode(o, dd, ref + 4, 1, w1, 4.135f);
    ASSERT_NEAR(o[0], 0.0, 1e-5);
    ASSERT_NEAR(o[2], 32.0, 1e-5);
    ASSERT(o[1] == 0.0f && o[3] == 8.0f);
    /* dw clamped at clip */
    float dc[4] = {0, 0, 100.0f, 0};
    iseg_box_decode(o, dc, ref + 4, 1, w1, 1.0f);
    ASSERT_NEAR(o[2] - o[0], 16.0 * exp(1.0), 1e-3);
    float cb[8] = {-5, 3, 120, 90, 10, -1, 20, 200};
    iseg_box_clip(cb, 2, 80.0f, 100.0f);
    ASSERT(cb[0] == 0 && cb[1] == 3 && cb[2] == 100 && cb[3] == 80);
    ASSERT(cb[4] == 10 && cb[5] == 0 && cb[6] == 20 && cb[7] == 80);
}

/* ---- tensors, arena, engine errors ---- */

TEST(tensor_basics) {
    struct iseg_tensor t;
    int64_t            shape[4] = {2, 3, 4, 5};
    ASSERT_OK(iseg_tensor_init(&t, 4, shape));
    ASSERT_EQ_U64(iseg_tensor_numel(&t), 120);
    ASSERT(iseg_tensor_is_contiguous(&t));
    ASSERT_EQ_U64(iseg_tensor_offset4(&t, 1, 2, 3, 4), 119);
    ASSERT(t.data[119] == 0.0f && t.owns);
    iseg_tensor_free(&t);
    ASSERT(t.data == NULL);
    int64_t bad[2] = {3, 0};
    ASSERT_STATUS(iseg_tensor_init(&t, 2, bad), ISEG_STATUS_EINVAL);
    ASSERT_STATUS(iseg_tensor_init(&t, 5, shape), ISEG_STATUS_EINVAL);
    int64_t huge[4] = {INT64_MAX / 2, 4, 4, 4};
    ASSERT_STATUS(iseg_tensor_init(&t, 4, huge), ISEG_STATUS_ELIMIT);
    float              buf[6];
    int64_t            s2[2] = {2, 3};
    struct iseg_tensor v     = iseg_tensor_view(buf, 2, s2);
    ASSERT(!v.owns && v.stride[0] == 3 && v.stride[1] == 1 && v.shape[2] == 1);
    ASSERT_EQ_U64(iseg_tensor_numel(&v), 6);
    iseg_tensor_free(&v);
}

TEST(arena) {
    iseg_arena_t a;
    ASSERT_OK(iseg_arena_init(&a));
    for (int pass = 0; pass < 3; pass++) {
        size_t total = 0;
        for (int i = 0; i < 40; i++) {
            size_t n = (size_t)(i * 7919 % 50000) + 1;
            char  *p = iseg_arena_alloc(a, n);
            ASSERT(p && ((uintptr_t)p & 63) == 0);
            memset(p, i, n);
            total += n;
        }
        float *f = iseg_arena_alloc_f32(a, 3000000); /* forces a new block on pass 0 */
        ASSERT(f && ((uintptr_t)f & 63) == 0);
        f[2999999] = 1.0f;
        ASSERT(iseg_arena_used(a) >= total + 12000000);
        ASSERT(iseg_arena_peak(a) >= iseg_arena_used(a));
        iseg_arena_reset(a);
        ASSERT_EQ_U64(iseg_arena_used(a), 0);
    }
    ASSERT(iseg_arena_alloc_f32(a, SIZE_MAX / 2) == NULL);
    iseg_arena_free(a);
    ASSERT_OK(iseg_arena_init(&a));
    ASSERT_OK(iseg_arena_reserve(a, 1000));
    ASSERT(iseg_arena_alloc(a, 900));
    iseg_arena_free(a);
}

static int g_fail_after = -1;
static void *failing_malloc(size_t n, void *u) {
    (void)u;
    if (g_fail_after == 0) return NULL;
    if (g_fail_after > 0) g_fail_after--;
    return malloc(n);
}
static void *failing_realloc(void *p, size_t n, void *u) {
    (void)u;
    if (g_fail_after == 0) return NULL;
    return realloc(p, n);
}
static void plain_free(void *p, void *u) {
    (void)u;
    free(p);
}

TEST(engine_enomem) {
    struct iseg_alloc al = {failing_malloc, failing_realloc, plain_free, NULL};
    iseg_alloc_set(&al);
    iseg_engine_t e;
    ASSERT_OK(iseg_engine_init(&e, 2));
    ASSERT_EQ_INT(iseg_engine_threads(e), 2);
    struct iseg_conv2d_desc d = iseg_conv2d_default_desc(2, 3, 3);
    float w[54] = {0}, x[2 * 16] = {0}, y[3 * 16];
    iseg_conv2d_t c;
    ASSERT_OK(iseg_conv2d_init(&c, &d, w, NULL));
    g_fail_after = 0; /* scratch growth fails */
    iseg_conv2d_forward(e, c, y, x, 1, 4, 4, NULL, ISEG_ACT_NONE);
    g_fail_after = -1;
    ASSERT_STATUS(iseg_engine_take_error(e), ISEG_STATUS_ENOMEM);
    ASSERT_OK(iseg_engine_take_error(e)); /* cleared */
    iseg_conv2d_forward(e, c, y, x, 1, 4, 4, NULL, ISEG_ACT_NONE);
    ASSERT_OK(iseg_engine_take_error(e));
    ASSERT(y[0] == 0.0f);
    iseg_conv2d_free(c);
    /* init failures free what they took */
    for (int k = 0; k < 3; k++) {
        g_fail_after = k;
        enum iseg_status st = iseg_conv2d_init(&c, &d, w, w);
        g_fail_after        = -1;
        if (st == ISEG_STATUS_OK) iseg_conv2d_free(c);
        else ASSERT_STATUS(st, ISEG_STATUS_ENOMEM);
    }
    iseg_conv2d_free(NULL);
    iseg_engine_free(e);
    iseg_alloc_set(NULL);
}

TEST_LIST = {
    TEST_ENTRY(sgemm_vs_ref),
    TEST_ENTRY(conv2d_vs_ref),
    TEST_ENTRY(conv2d_batched_equals_per_image),
    TEST_ENTRY(conv2d_winograd_vs_ref),
    TEST_ENTRY(deconv2d_no_overlap),
    TEST_ENTRY(conv2d_bad_desc),
    TEST_ENTRY(deconv2d_vs_ref),
    TEST_ENTRY(linear_vs_ref),
    TEST_ENTRY(norms_vs_ref),
    TEST_ENTRY(bn_fold_matches_conv_then_bn),
    TEST_ENTRY(eltwise),
    TEST_ENTRY(maxpool_vs_ref),
    TEST_ENTRY(resize_nearest),
    TEST_ENTRY(resize_bilinear_vs_ref),
    TEST_ENTRY(roi_align_vs_ref),
    TEST_ENTRY(roi_align_blocks_bitexact),
    TEST_ENTRY(roi_align_levels_bitexact),
    TEST_ENTRY(roi_align_hand),
    TEST_ENTRY(roi_levels),
    TEST_ENTRY(nms_hand),
    TEST_ENTRY(nms_vs_ref),
    TEST_ENTRY(anchors_torchvision),
    TEST_ENTRY(box_coder),
    TEST_ENTRY(tensor_basics),
    TEST_ENTRY(arena),
    TEST_ENTRY(engine_enomem),
    TEST_END,
};
