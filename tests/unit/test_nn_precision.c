/* test_nn_precision.c - the reduced-precision paths of convolution and linear layers.
 * INT8: bit-identical to the naive integer oracles (iseg_*_forward_int8_ref) on odd shapes
 * (tails, 1x1, dilation, groups, stride 2, K over several K blocks, M and N over several chunks,
 * signed and non-negative inputs, residual in place), with the portable and the AVX2 kernel,
 * for 1 and 3 threads; within the quantization error of the f32 oracle. BF16: equal (to f32
 * accumulation order) to the f32 oracle on bf16-rounded operands (never Winograd).
 * The quantizer and the bf16 rounding by hand. */
#include <float.h>

#include "test.h"

#include "iseg/nn.h"
#include "nn/nn_impl.h"

static float *rnd(size_t n, uint64_t *st, bool nonneg) {
    float *p = malloc((n ? n : 1) * sizeof(float));
    ASSERT(p);
    for (size_t i = 0; i < n; i++) {
        double u = test_rand_unif(st);
        p[i]     = (float)(nonneg ? (u < 0.3 ? 0.0 : u * 3.0) : u * 2.0 - 1.0);
    }
    return p;
}

static void assert_biteq(const float *got, const float *want, size_t n, const char *what) {
    for (size_t i = 0; i < n; i++)
        if (memcmp(&got[i], &want[i], sizeof(float)) != 0)
            TEST_FAIL("%s: element %zu: %.9g, oracle %.9g", what, i, got[i], want[i]);
}

static void round_bf16(float *p, size_t n) {
    for (size_t i = 0; i < n; i++) p[i] = iseg__bf16_round(p[i]);
}

/* ISAs whose word kernels differ: portable C, AVX2 when the CPU has it, AVX-512 (VNNI, BF16)
 * when the CPU has it (forcing an absent one falls back) */
static const enum iseg__gemm_isa ISAS[] = {ISEG_GEMM_ISA_C, ISEG_GEMM_ISA_AVX2,
                                           ISEG_GEMM_ISA_AVX512};

struct conv_case {
    int  cin, cout, k, stride, pad, dil, groups, B, h, w;
    bool res, relu, bias, nonneg;
};

static const struct conv_case CASES[] = {
    {16, 16, 1, 1, 0, 1, 1, 1, 5, 7, false, false, true, true},     /* 1x1 direct, x >= 0 */
    {3, 8, 1, 2, 0, 1, 1, 2, 9, 9, false, true, true, false},       /* 1x1 stride 2 */
    {5, 17, 3, 1, 1, 1, 1, 2, 11, 13, true, true, true, false},     /* 3x3, residual */
    {3, 9, 7, 2, 3, 1, 1, 1, 23, 19, false, true, false, false},    /* stem-like */
    {8, 12, 3, 1, 2, 2, 1, 1, 10, 9, false, false, true, true},     /* dilation 2 */
    {8, 6, 3, 2, 1, 1, 2, 2, 9, 12, false, true, true, false},      /* groups 2 */
    {12, 12, 3, 1, 1, 1, 12, 1, 8, 7, false, false, true, true},    /* depthwise */
    {1, 1, 3, 1, 1, 1, 1, 1, 1, 1, false, false, true, false},      /* 1x1 map, K 9 */
    {130, 33, 3, 1, 1, 1, 1, 1, 17, 21, true, false, true, true},   /* K 1170: 2 K blocks */
    {300, 20, 1, 1, 0, 1, 1, 1, 7, 9, false, true, true, false},    /* K 300 */
    {4, 300, 3, 1, 0, 1, 1, 1, 6, 5, false, false, true, true},     /* M 300: M chunks */
    {6, 10, 5, 3, 0, 2, 1, 1, 20, 17, false, true, true, false},    /* 5x5 stride 3 dil 2 */
    {7, 13, 3, 2, 1, 1, 1, 2, 15, 18, false, true, true, true},     /* stride 2, odd size */
    {24, 40, 1, 1, 0, 1, 1, 2, 19, 23, true, true, true, false},    /* N tails */
    {5, 9, 3, 1, 1, 1, 1, 1, 1, 400, false, false, true, true},     /* one row, N chunks */
    {64, 64, 3, 1, 1, 1, 1, 1, 40, 53, true, true, true, true},     /* a Winograd shape */
    {4, 8, 3, 1, 4, 1, 1, 1, 3, 5, false, false, true, false},      /* wide padding */
};
#define N_CASES (sizeof(CASES) / sizeof(CASES[0]))

struct conv_data {
    struct iseg_conv2d_desc d;
    int                     oh, ow;
    size_t                  nw, nx, ny;
    float                  *w, *b, *x, *r;
};

static struct conv_data conv_data(const struct conv_case *cc, uint64_t *st) {
    struct conv_data c;
    c.d          = iseg_conv2d_default_desc(cc->cin, cc->cout, cc->k);
    c.d.stride_h = c.d.stride_w = cc->stride;
    c.d.pad_h = c.d.pad_w = cc->pad;
    c.d.dil_h = c.d.dil_w = cc->dil;
    c.d.groups            = cc->groups;
    iseg_conv2d_out_hw(&c.d, cc->h, cc->w, &c.oh, &c.ow);
    c.nw = (size_t)cc->cout * (cc->cin / cc->groups) * cc->k * cc->k;
    c.nx = (size_t)cc->B * cc->cin * cc->h * cc->w;
    c.ny = (size_t)cc->B * cc->cout * c.oh * c.ow;
    c.w  = rnd(c.nw, st, false);
    c.b  = rnd((size_t)cc->cout, st, false);
    c.x  = rnd(c.nx, st, cc->nonneg);
    c.r  = cc->res ? rnd(c.ny, st, false) : NULL;
    return c;
}

static void conv_data_free(struct conv_data *c) { free(c->w), free(c->b), free(c->x), free(c->r); }

TEST(precision_names) {
    for (int p = 0; p < ISEG_PRECISION_COUNT; p++)
        ASSERT_EQ_INT(iseg_precision_from_name(iseg_precision_name((enum iseg_precision)p)), p);
    ASSERT_STREQ(iseg_precision_name(ISEG_PRECISION_INT8), "int8");
    ASSERT_EQ_INT(iseg_precision_from_name("fp16"), ISEG_PRECISION_COUNT);
    ASSERT_EQ_INT(iseg_precision_from_name(NULL), ISEG_PRECISION_COUNT);
    ASSERT(iseg_precision_name(ISEG_PRECISION_COUNT) == NULL);
}

TEST(bf16_round_hand) {
    /* 1 + 2^-8 is a tie: to even (1); 1 + 3 2^-8 a tie too: up to 1 + 2^-6 ... */
    ASSERT_EQ_DBL(iseg__bf16_round(1.0f + 0x1p-8f), 1.0);
    ASSERT_EQ_DBL(iseg__bf16_round(1.0f + 3 * 0x1p-8f), 1.0 + 0x1p-6);
    ASSERT_EQ_DBL(iseg__bf16_round(1.0f + 0x1p-8f + 0x1p-20f), 1.0 + 0x1p-7);
    ASSERT_EQ_DBL(iseg__bf16_round(-3.0f), -3.0);
    ASSERT_EQ_DBL(iseg__bf16_round(INFINITY), INFINITY);
    ASSERT(isnan(iseg__bf16_round(NAN)));
    /* a NaN whose payload lies only in the dropped bits stays a NaN (not infinity) */
    {
        union { uint32_t u; float f; } nl = {0xff800001u};
        uint16_t bits = iseg__bf16_bits(nl.f);
        ASSERT_MSG((bits & 0x7f80u) == 0x7f80u && (bits & 0x7fu) != 0 && (bits & 0x8000u),
                   "bf16 bits of NaN 0xff800001: 0x%04x", bits);
    }
    ASSERT_EQ_DBL(iseg__bf16_round(FLT_MAX), INFINITY); /* rounds past the largest bf16 */
    /* the AVX2 conversion of the word GEMM's panels equals the scalar one on random bit
     * patterns (NaNs included), odd row counts padding the last word with 0 */
    if (iseg__gemm_force(ISEG_GEMM_ISA_AVX2)->isa == ISEG_GEMM_ISA_AVX2) {
        enum { NR = ISEG_QGEMM_NR, ROWS = 63, NW = 32, NP = 2 };
        static float    src[NP * ROWS * NR];
        static uint32_t dst[NP * NW * NR];
        uint64_t        st = 3;
        for (int i = 0; i < NP * ROWS * NR; i++) {
            uint32_t u = (uint32_t)test_rand(&st);
            memcpy(&src[i], &u, 4);
        }
        iseg__bpairs_avx2(dst, (size_t)NW * NR, src, NR, (size_t)ROWS * NR, NP, ROWS, NW);
        for (int p = 0; p < NP; p++)
            for (int t = 0; t < NW; t++)
                for (int j = 0; j < NR; j++) {
                    uint32_t w = dst[((size_t)p * NW + t) * NR + j];
                    for (int h = 0; h < 2; h++) {
                        int      r    = 2 * t + h;
                        uint32_t want = r < ROWS ? iseg__bf16_bits(src[((size_t)p * ROWS + r) * NR + j]) : 0;
                        uint32_t got  = (w >> (16 * h)) & 0xffffu;
                        ASSERT_MSG(got == want, "panel %d row %d column %d: 0x%04x, scalar 0x%04x",
                                   p, r, j, got, want);
                    }
                }
    }
    iseg__gemm_force(ISEG_GEMM_ISA_AUTO);
}

TEST(qact_hand) {
    struct iseg__qact p = iseg__qact_from_range(0.0f, 2.55f);
    ASSERT_EQ_INT(p.zp, 0);
    ASSERT_EQ_INT(iseg__qact_one(0.0f, &p), 0);
    ASSERT_EQ_INT(iseg__qact_one(2.55f, &p), 255);
    ASSERT_EQ_INT(iseg__qact_one(1.0f, &p), 100);
    ASSERT_EQ_INT(iseg__qact_one(-1.0f, &p), 0);   /* clamped */
    ASSERT_EQ_INT(iseg__qact_one(NAN, &p), 0);
    p = iseg__qact_from_range(-1.27f, 0.5f);
    ASSERT_EQ_INT(p.zp, 128);
    ASSERT_EQ_INT(iseg__qact_one(0.0f, &p), 128);
    ASSERT_EQ_INT(iseg__qact_one(-1.27f, &p), 1);
    ASSERT_EQ_INT(iseg__qact_one(1.27f, &p), 255);
    ASSERT_EQ_INT(iseg__qact_one(5.0f, &p), 255);
    ASSERT_EQ_INT(iseg__qact_one(NAN, &p), 0);
    p = iseg__qact_from_range(0.0f, 0.0f); /* all zeros */
    ASSERT_EQ_INT(iseg__qact_one(0.0f, &p), 0);
    /* weights: symmetric, |q| <= 63 */
    float  w[5] = {0.5f, -1.0f, 0.25f, 0.0f, 1.0f / 126};
    int8_t q[5];
    float  s = iseg__qweight_row(q, w, 5);
    ASSERT_EQ_DBL(s, 1.0f / 63);
    ASSERT_EQ_INT(q[0], 32); /* 31.5 to even */
    ASSERT_EQ_INT(q[1], -63);
    ASSERT_EQ_INT(q[3], 0);
    ASSERT_EQ_INT(q[4], 0); /* 0.5 to even */
    /* min / max on threads, NaN ignored */
    iseg_engine_t e;
    ASSERT_OK(iseg_engine_init(&e, 3));
    enum { N = 300000 };
    float *x = calloc(N, sizeof(float));
    ASSERT(x);
    x[7] = NAN, x[123456] = -4.0f, x[N - 1] = 9.0f;
    float lo, hi;
    iseg__minmax(e, x, N, &lo, &hi);
    ASSERT_EQ_DBL(lo, -4.0);
    ASSERT_EQ_DBL(hi, 9.0);
    free(x);
    iseg_engine_free(e);
}

TEST(conv2d_int8_vs_ref) {
    uint64_t      st = 11;
    iseg_engine_t e1, e3;
    ASSERT_OK(iseg_engine_init(&e1, 1));
    ASSERT_OK(iseg_engine_init(&e3, 3));
    for (size_t ii = 0; ii < sizeof(ISAS) / sizeof(ISAS[0]); ii++) {
        if (iseg__gemm_force(ISAS[ii])->isa != ISAS[ii]) continue;
        for (size_t i = 0; i < N_CASES; i++) {
            const struct conv_case *cc = &CASES[i];
            struct conv_data        c  = conv_data(cc, &st);
            float *y1 = test_falloc_nan(c.ny), *y3 = test_falloc_nan(c.ny), *yr = test_falloc_nan(c.ny), *yf = test_falloc_nan(c.ny);
            iseg_conv2d_t conv;
            ASSERT_OK(iseg_conv2d_init_precision(&conv, &c.d, c.w, cc->bias ? c.b : NULL,
                                                 ISEG_PRECISION_INT8));
            ASSERT_EQ_INT(iseg_conv2d_precision(conv), ISEG_PRECISION_INT8);
            enum iseg_act act = cc->relu ? ISEG_ACT_RELU : ISEG_ACT_NONE;
            const float  *b   = cc->bias ? c.b : NULL;
            iseg_conv2d_forward(e1, conv, y1, c.x, cc->B, cc->h, cc->w, c.r, act);
            iseg_conv2d_forward(e3, conv, y3, c.x, cc->B, cc->h, cc->w, c.r, act);
            iseg_conv2d_forward_int8_ref(yr, c.x, c.w, b, &c.d, cc->B, cc->h, cc->w, c.r, act);
            iseg_conv2d_forward_ref(yf, c.x, c.w, b, &c.d, cc->B, cc->h, cc->w, c.r, act);
            char what[160];
            snprintf(what, sizeof(what), "int8 conv %d->%d k%d s%d p%d d%d g%d B%d %dx%d (%s)",
                     cc->cin, cc->cout, cc->k, cc->stride, cc->pad, cc->dil, cc->groups, cc->B,
                     cc->h, cc->w, iseg__gemm_kernel()->name);
            assert_biteq(y1, yr, c.ny, what);
            assert_biteq(y3, yr, c.ny, what);
            /* 7-bit weights and 8-bit inputs on uniform data: NMSE ~1e-4 */
            double err = test_nmse(y1, yf, c.ny);
            ASSERT_MSG(err < 2e-3, "%s: NMSE %g against f32", what, err);
            if (c.r) { /* y may alias the residual */
                memcpy(y3, c.r, c.ny * sizeof(float));
                iseg_conv2d_forward(e3, conv, y3, c.x, cc->B, cc->h, cc->w, y3, act);
                assert_biteq(y3, yr, c.ny, what);
            }
            /* the weights of an int8 convolution are not replaceable */
            ASSERT_STATUS(iseg_conv2d_set_weights(e1, conv, c.w, b), ISEG_STATUS_EINVAL);
            iseg_conv2d_free(conv);
            conv_data_free(&c);
            free(y1), free(y3), free(yr), free(yf);
        }
    }
    iseg__gemm_force(ISEG_GEMM_ISA_AUTO);
    ASSERT_OK(iseg_engine_take_error(e1));
    ASSERT_OK(iseg_engine_take_error(e3));
    iseg_engine_free(e1);
    iseg_engine_free(e3);
}

TEST(conv2d_bf16_vs_ref) {
    uint64_t      st = 13;
    iseg_engine_t e1, e3;
    ASSERT_OK(iseg_engine_init(&e1, 1));
    ASSERT_OK(iseg_engine_init(&e3, 3));
    for (size_t ii = 0; ii < sizeof(ISAS) / sizeof(ISAS[0]); ii++)
    for (size_t i = 0; i < N_CASES; i++) {
        if (iseg__gemm_force(ISAS[ii])->isa != ISAS[ii]) break;
        const struct conv_case *cc = &CASES[i];
        struct conv_data        c  = conv_data(cc, &st);
        float *y1 = test_falloc_nan(c.ny), *y3 = test_falloc_nan(c.ny), *yr = test_falloc_nan(c.ny), *yf = test_falloc_nan(c.ny);
        iseg_conv2d_t conv;
        const float  *b = cc->bias ? c.b : NULL;
        ASSERT_OK(iseg_conv2d_init_precision(&conv, &c.d, c.w, b, ISEG_PRECISION_BF16));
        enum iseg_act act = cc->relu ? ISEG_ACT_RELU : ISEG_ACT_NONE;
        iseg_conv2d_forward(e1, conv, y1, c.x, cc->B, cc->h, cc->w, c.r, act);
        iseg_conv2d_forward(e3, conv, y3, c.x, cc->B, cc->h, cc->w, c.r, act);
        iseg_conv2d_forward_ref(yf, c.x, c.w, b, &c.d, cc->B, cc->h, cc->w, c.r, act);
        round_bf16(c.w, c.nw);
        round_bf16(c.x, c.nx);
        iseg_conv2d_forward_ref(yr, c.x, c.w, b, &c.d, cc->B, cc->h, cc->w, c.r, act);
        char what[160];
        snprintf(what, sizeof(what), "bf16 conv %d->%d k%d s%d B%d %dx%d (%s)", cc->cin,
                 cc->cout, cc->k, cc->stride, cc->B, cc->h, cc->w,
                 iseg__qkernel(ISEG_QKIND_BF16)->name);
        ASSERT_MSG(memcmp(y1, y3, c.ny * sizeof(float)) == 0, "%s: threads differ", what);
        double e_r = test_nmse(y1, yr, c.ny), e_f = test_nmse(y1, yf, c.ny);
        /* exactly the rounded operands, summed in f32 (never Winograd) */
        ASSERT_MSG(!iseg__conv2d_wino_m(conv, cc->B, cc->h, cc->w), "%s: Winograd", what);
        ASSERT_MSG(e_r < 1e-10, "%s: NMSE %g against the rounded-operand oracle", what, e_r);
        ASSERT_MSG(e_f < 1e-4, "%s: NMSE %g against f32", what, e_f);
        ASSERT_MSG(e_f > 0.0, "%s: bit-identical to f32: nothing was rounded", what);
        iseg_conv2d_free(conv);
        conv_data_free(&c);
        free(y1), free(y3), free(yr), free(yf);
    }
    iseg__gemm_force(ISEG_GEMM_ISA_AUTO);
    ASSERT_OK(iseg_engine_take_error(e1));
    iseg_engine_free(e1);
    iseg_engine_free(e3);
}

/* Transposed convolution in bf16 and int8: the mask head's 2x2/2 (no overlap, slices of many
 * images) and overlapping ones (padding, dilation, groups, output padding); against the f32
 * oracle (bf16: on rounded operands), bit-identical for 1 and 3 threads. */
TEST(deconv2d_precision_vs_ref) {
    static const struct iseg_deconv2d_desc ds[] = {
        {16, 12, 2, 2, 2, 2, 0, 0, 0, 0, 1, 1, 1},  /* mask head */
        {6, 9, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 1},    /* overlapping, output padding */
        {8, 6, 3, 2, 1, 2, 1, 0, 0, 1, 2, 1, 2},    /* dilation, groups */
    };
    static const int dims[][3] = {{7, 5, 4}, {2, 6, 7}, {3, 5, 5}}; /* B, h, w */
    uint64_t      st = 31;
    iseg_engine_t e1, e3;
    ASSERT_OK(iseg_engine_init(&e1, 1));
    ASSERT_OK(iseg_engine_init(&e3, 3));
    for (size_t ii = 0; ii < sizeof(ISAS) / sizeof(ISAS[0]); ii++) {
        if (iseg__gemm_force(ISAS[ii])->isa != ISAS[ii]) continue;
        for (size_t i = 0; i < sizeof(ds) / sizeof(ds[0]); i++)
            for (int p = ISEG_PRECISION_BF16; p < ISEG_PRECISION_COUNT; p++) {
                const struct iseg_deconv2d_desc *d = &ds[i];
                int B = dims[i][0], h = dims[i][1], w = dims[i][2], oh, ow;
                iseg_deconv2d_out_hw(d, h, w, &oh, &ow);
                size_t nw = (size_t)d->cin * (d->cout / d->groups) * d->kh * d->kw;
                size_t nx = (size_t)B * d->cin * h * w, ny = (size_t)B * d->cout * oh * ow;
                float *wt = rnd(nw, &st, false), *b = rnd((size_t)d->cout, &st, false);
                float *x = rnd(nx, &st, i == 0); /* the mask head's input follows a ReLU */
                float *y1 = test_falloc_nan(ny), *y3 = test_falloc_nan(ny), *yr = test_falloc_nan(ny);
                iseg_deconv2d_t c;
                ASSERT_OK(iseg_deconv2d_init_precision(&c, d, wt, b, (enum iseg_precision)p));
                ASSERT_EQ_INT(iseg_deconv2d_precision(c), p);
                iseg_deconv2d_forward(e1, c, y1, x, B, h, w, ISEG_ACT_RELU);
                iseg_deconv2d_forward(e3, c, y3, x, B, h, w, ISEG_ACT_RELU);
                char what[96];
                snprintf(what, sizeof(what), "%s deconv %zu (%s)",
                         iseg_precision_name((enum iseg_precision)p), i, iseg__gemm_kernel()->name);
                ASSERT_MSG(memcmp(y1, y3, ny * sizeof(float)) == 0, "%s: threads differ", what);
                if (p == ISEG_PRECISION_BF16) {
                    round_bf16(wt, nw);
                    round_bf16(x, nx);
                }
                iseg_deconv2d_forward_ref(yr, x, wt, b, d, B, h, w, ISEG_ACT_RELU);
                double err = test_nmse(y1, yr, ny);
                ASSERT_MSG(err < (p == ISEG_PRECISION_BF16 ? 1e-10 : 2e-3), "%s: NMSE %g", what,
                           err);
                iseg_deconv2d_free(c);
                free(wt), free(b), free(x), free(y1), free(y3), free(yr);
            }
    }
    iseg__gemm_force(ISEG_GEMM_ISA_AUTO);
    ASSERT_OK(iseg_engine_take_error(e1));
    iseg_engine_free(e1);
    iseg_engine_free(e3);
}

#ifdef ISEG_HAVE_SIMDE
void iseg__kernel_avx512_simde(int kc, const float *a, const float *b, float *c, size_t ldc,
                               const float *c0, size_t ldc0, const struct iseg__gemm_epi *epi);
void iseg__qkernel_int8_avx512_simde(int kw, const uint32_t *a, const uint32_t *b, size_t b_ps,
                                     int n_nt, void *acc, bool init);
void iseg__qkernel_bf16_avx512_simde(int kw, const uint32_t *a, const uint32_t *b, size_t b_ps,
                                     int n_nt, void *acc, bool init);
#endif

/* Every kernel against the portable one on random words: 1..7 column tiles (the AVX-512
 * kernels' groups of three and their remainders), K of 1 word and more, init and accumulate.
 * int8: bit-identical. bf16: the AVX2 emulation bit-identical (the same steps); the AVX-512
 * kernel under SIMDe (whose emulation adds a pair's products in the other order) within f32
 * rounding. The AVX-512 kernels run natively where the CPU has VNNI / BF16, else through SIMDe
 * when the build found it (libsimde-dev). */
TEST(word_kernels_vs_portable) {
    struct kern {
        enum iseg__qkind kind;
        iseg__qkernel_fn fn;
        const char      *name;
        bool             exact;
    } ks[6];
    int nk = 0;
    for (int kind = 0; kind < 2; kind++) {
        iseg__gemm_force(ISEG_GEMM_ISA_AVX2);
        const struct iseg__qkernel *k = iseg__qkernel((enum iseg__qkind)kind);
        if (k->isa == ISEG_GEMM_ISA_AVX2) ks[nk++] = (struct kern){k->kind, k->fn, k->name, true};
        iseg__gemm_force(ISEG_GEMM_ISA_AVX512);
        k = iseg__qkernel((enum iseg__qkind)kind);
        if (k->isa == ISEG_GEMM_ISA_AVX512)
            ks[nk++] = (struct kern){k->kind, k->fn, k->name, kind == ISEG_QKIND_INT8};
    }
    iseg__gemm_force(ISEG_GEMM_ISA_AUTO);
#ifdef ISEG_HAVE_SIMDE
    ks[nk++] = (struct kern){ISEG_QKIND_INT8, iseg__qkernel_int8_avx512_simde, "int8 avx512-vnni (SIMDe)", true};
    ks[nk++] = (struct kern){ISEG_QKIND_BF16, iseg__qkernel_bf16_avx512_simde, "bf16 avx512-bf16 (SIMDe)", false};
#else
    printf("    (SIMDe not found: the AVX-512 kernels are checked only where the CPU has them)\n");
#endif
    enum { MR = ISEG_QGEMM_MR, NR = ISEG_QGEMM_NR, KW = 37, NT = 7 };
    static uint32_t a[KW * MR], b[NT * KW * NR];
    static int32_t  acc0[NT * MR * NR], acc1[NT * MR * NR], acc2[NT * MR * NR];
    uint64_t st = 23;
    for (int i = 0; i < nk; i++) {
        const struct kern *k = &ks[i];
        iseg__qkernel_fn   ref = k->kind == ISEG_QKIND_INT8 ? iseg__qkernel_int8_c : iseg__qkernel_bf16_c;
        for (int kw = 1; kw <= KW; kw += 12)
            for (int nt = 1; nt <= NT; nt++)
                for (int init = 1; init >= 0; init--) {
                    for (int j = 0; j < KW * MR; j++) a[j] = (uint32_t)test_rand(&st);
                    for (int j = 0; j < NT * KW * NR; j++) b[j] = (uint32_t)test_rand(&st);
                    if (k->kind == ISEG_QKIND_INT8) {
                        for (int j = 0; j < KW * MR; j++) a[j] &= 0x3f3f3f3fu; /* |w| <= 63 */
                        for (int j = 0; j < NT * MR * NR; j++) acc0[j] = (int32_t)(test_rand(&st) % 20001) - 10000;
                    } else {
                        /* bf16 halves of unit scale: exponent 126..128, random sign/mantissa */
                        for (int j = 0; j < KW * MR; j++) a[j] = (a[j] & 0x807f807fu) | 0x3f003f80u;
                        for (int j = 0; j < NT * KW * NR; j++) b[j] = (b[j] & 0x807f807fu) | 0x3f803f00u;
                        for (int j = 0; j < NT * MR * NR; j++) {
                            float f = (float)test_rand_unif(&st);
                            memcpy(&acc0[j], &f, 4);
                        }
                    }
                    memcpy(acc1, acc0, sizeof(acc0));
                    memcpy(acc2, acc0, sizeof(acc0));
                    ref(kw, a, b, (size_t)KW * NR, nt, acc1, init);
                    k->fn(kw, a, b, (size_t)KW * NR, nt, acc2, init);
                    for (int j = 0; j < NT * MR * NR; j++) {
                        bool in = j < nt * MR * NR;
                        if (!in) {
                            ASSERT_MSG(acc2[j] == acc0[j], "%s: tile past n_nt written", k->name);
                            continue;
                        }
                        if (k->exact) {
                            ASSERT_MSG(acc2[j] == acc1[j], "%s kw %d nt %d init %d: element %d: %d, portable %d",
                                       k->name, kw, nt, init, j, acc2[j], acc1[j]);
                        } else {
                            float x, y;
                            memcpy(&x, &acc2[j], 4);
                            memcpy(&y, &acc1[j], 4);
                            ASSERT_MSG(fabsf(x - y) <= 1e-5f * (float)(kw + 1) * 4.0f,
                                       "%s kw %d nt %d: element %d: %g, portable %g", k->name, kw, nt, j, x, y);
                        }
                    }
                }
        printf("    %s: ok\n", k->name);
    }
}

TEST(linear_int8_bf16_vs_ref) {
    static const int shapes[][3] = {/* N, in, out */
                                    {1, 1, 1},    {7, 13, 5},    {33, 100, 70}, {5, 1027, 9},
                                    {130, 64, 300}, {200, 2053, 37}, {3, 4, 4}};
    uint64_t      st = 17;
    iseg_engine_t e1, e3;
    ASSERT_OK(iseg_engine_init(&e1, 1));
    ASSERT_OK(iseg_engine_init(&e3, 3));
    for (size_t ii = 0; ii < sizeof(ISAS) / sizeof(ISAS[0]); ii++) {
        if (iseg__gemm_force(ISAS[ii])->isa != ISAS[ii]) continue;
        for (size_t s = 0; s < sizeof(shapes) / sizeof(shapes[0]); s++)
            for (int nonneg = 0; nonneg < 2; nonneg++) {
                int    N = shapes[s][0], in = shapes[s][1], out = shapes[s][2];
                size_t ny = (size_t)N * out;
                float *x = rnd((size_t)N * in, &st, nonneg), *w = rnd((size_t)out * in, &st, false);
                float *b = rnd((size_t)out, &st, false);
                float *y1 = test_falloc_nan(ny), *y3 = test_falloc_nan(ny), *yr = test_falloc_nan(ny), *yf = test_falloc_nan(ny);
                char   what[120];
                snprintf(what, sizeof(what), "linear %d x %d -> %d, x%s (%s)", N, in, out,
                         nonneg ? " >= 0" : " signed", iseg__gemm_kernel()->name);
                iseg_linear_t l;
                ASSERT_OK(iseg_linear_init_precision(&l, in, out, w, b, ISEG_PRECISION_INT8));
                ASSERT_EQ_INT(iseg_linear_precision(l), ISEG_PRECISION_INT8);
                iseg_linear_forward(e1, l, y1, x, N, ISEG_ACT_RELU);
                iseg_linear_forward(e3, l, y3, x, N, ISEG_ACT_RELU);
                iseg_linear_forward_int8_ref(yr, x, w, b, N, in, out, ISEG_ACT_RELU);
                iseg_linear_forward_ref(yf, x, w, b, N, in, out, ISEG_ACT_RELU);
                assert_biteq(y1, yr, ny, what);
                assert_biteq(y3, yr, ny, what);
                ASSERT_MSG(test_nmse(y1, yf, ny) < 2e-3, "%s: NMSE %g", what, test_nmse(y1, yf, ny));
                iseg_linear_free(l);
                /* bf16: the f32 oracle on rounded operands */
                ASSERT_OK(iseg_linear_init_precision(&l, in, out, w, b, ISEG_PRECISION_BF16));
                iseg_linear_forward(e1, l, y1, x, N, ISEG_ACT_NONE);
                iseg_linear_forward(e3, l, y3, x, N, ISEG_ACT_NONE);
                ASSERT_MSG(memcmp(y1, y3, ny * sizeof(float)) == 0, "bf16 %s: threads differ", what);
                round_bf16(x, (size_t)N * in);
                round_bf16(w, (size_t)out * in);
                iseg_linear_forward_ref(yr, x, w, b, N, in, out, ISEG_ACT_NONE);
                ASSERT_MSG(test_nmse(y3, yr, ny) < 1e-10, "bf16 %s: NMSE %g", what, test_nmse(y3, yr, ny));
                iseg_linear_free(l);
                free(x), free(w), free(b), free(y1), free(y3), free(yr), free(yf);
            }
    }
    iseg__gemm_force(ISEG_GEMM_ISA_AUTO);
    iseg_linear_t l;
    float         w1 = 1.0f;
    ASSERT_STATUS(iseg_linear_init_precision(&l, 1, 1, &w1, NULL, ISEG_PRECISION_COUNT),
                  ISEG_STATUS_EINVAL);
    ASSERT_OK(iseg_engine_take_error(e1));
    ASSERT_OK(iseg_engine_take_error(e3));
    iseg_engine_free(e1);
    iseg_engine_free(e3);
}

/* The f32 AVX-512 SGEMM kernel (8 x 48 tile), which this machine may lack, through SIMDe:
 * against a double-precision sum with every epilogue combination and K of 1, 7 and 256. */
TEST(sgemm_avx512_kernel_simde) {
#ifndef ISEG_HAVE_SIMDE
    TEST_SKIP("SIMDe not found (libsimde-dev): the AVX-512 SGEMM kernel is checked only where "
              "the CPU has it (test_nn)");
#else
    enum { MR = ISEG_GEMM_MR, NR = 48, KC = 256, LDC = NR + 5 };
    static float a[KC * MR], b[KC * NR], c[MR * LDC], c0[MR * LDC], br[MR], bc[NR];
    uint64_t st = 29;
    for (int i = 0; i < KC * MR; i++) a[i] = (float)(test_rand_unif(&st) * 2 - 1);
    for (int i = 0; i < KC * NR; i++) b[i] = (float)(test_rand_unif(&st) * 2 - 1);
    for (int i = 0; i < MR * LDC; i++) c0[i] = (float)(test_rand_unif(&st) * 2 - 1);
    for (int i = 0; i < MR; i++) br[i] = (float)test_rand_unif(&st);
    for (int i = 0; i < NR; i++) bc[i] = (float)test_rand_unif(&st);
    static const int kcs[] = {1, 7, KC};
    for (int ki = 0; ki < 3; ki++)
        for (int v = 0; v < 16; v++) {
            int  kc = kcs[ki];
            bool has_c0 = v & 1, has_br = v & 2, has_bc = v & 4, relu = v & 8;
            struct iseg__gemm_epi epi = {has_br ? br : NULL, has_bc ? bc : NULL, relu};
            for (int i = 0; i < MR * LDC; i++) c[i] = NAN;
            iseg__kernel_avx512_simde(kc, a, b, c, LDC, has_c0 ? c0 : NULL, LDC,
                                      (has_br || has_bc || relu) ? &epi : NULL);
            for (int r = 0; r < MR; r++)
                for (int j = 0; j < NR; j++) {
                    double sum = 0.0;
                    for (int k = 0; k < kc; k++) sum += (double)a[k * MR + r] * b[k * NR + j];
                    if (has_c0) sum += c0[r * LDC + j];
                    if (has_br) sum += br[r];
                    if (has_bc) sum += bc[j];
                    if (relu && sum < 0) sum = 0;
                    ASSERT_MSG(fabs(c[r * LDC + j] - sum) <= 1e-5 * (kc + 4),
                               "kc %d variant %d (%d, %d): %g, expected %g", kc, v, r, j,
                               c[r * LDC + j], sum);
                }
            for (int r = 0; r < MR; r++) /* nothing past the tile's columns */
                for (int j = NR; j < LDC; j++) ASSERT(isnan(c[r * LDC + j]));
        }
#endif
}

TEST_LIST = {
    TEST_ENTRY(precision_names),
    TEST_ENTRY(bf16_round_hand),
    TEST_ENTRY(qact_hand),
    TEST_ENTRY(conv2d_int8_vs_ref),
    TEST_ENTRY(conv2d_bf16_vs_ref),
    TEST_ENTRY(linear_int8_bf16_vs_ref),
    TEST_ENTRY(deconv2d_precision_vs_ref),
    TEST_ENTRY(word_kernels_vs_portable),
    TEST_ENTRY(sgemm_avx512_kernel_simde),
    TEST_END,
};
