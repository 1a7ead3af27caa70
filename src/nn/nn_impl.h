/* nn_impl.h - private parts of the inference engine: the engine's thread pool and scratch, and
 * the blocked SGEMM driver that convolution, transposed convolution and linear layers share. */
#ifndef ISEG_NN_IMPL_H
#define ISEG_NN_IMPL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/core_impl.h"
#include "iseg/nn.h"

/* ---- engine ------------------------------------------------------------------------------- */

struct iseg__scratch {
    void  *raw;   /* as allocated */
    float *p;     /* 64-byte aligned */
    size_t cap;   /* usable bytes at p */
};

struct iseg_engine {
    struct iseg__pool    *pool;
    int                   nth;
    struct iseg__scratch *thr;    /* (nth) per-thread scratch */
    struct iseg__scratch  shared; /* one buffer used by the calling thread (packed operands) */
    enum iseg_status      err;    /* sticky until iseg_engine_take_error() */
};

/* Grow every thread's scratch to at least nbytes (called on the calling thread before a pool
 * run, so workers never allocate). false (and ENOMEM recorded) on failure. */
bool   iseg__engine_reserve(iseg_engine_t e, size_t nbytes);
/* Per-thread scratch of worker ith (valid after iseg__engine_reserve()). */
float *iseg__engine_scratch(iseg_engine_t e, int ith);
/* The shared buffer, grown to nbytes; NULL (ENOMEM recorded) on failure. */
float *iseg__engine_shared(iseg_engine_t e, size_t nbytes);
/* Record a failure for iseg_engine_take_error(). */
void   iseg__engine_fail(iseg_engine_t e, enum iseg_status st);
/* Run fn over [0, n) on the engine's pool (inline with one thread). */
void   iseg__engine_run(iseg_engine_t e, size_t n, iseg__task_fn fn, void *ctx);

/* ---- batch norm ---------------------------------------------------------------------------- */

/* Statistics of one channel over B planes of HW floats, bstride floats apart, summed in double:
 * the mean, the sum of squared deviations from it, and 1 / sqrt(biased variance + eps). The
 * arithmetic of iseg_batchnorm_train(), which inference with per-image statistics shares. */
struct iseg__bn_moments {
    double mean, ssd, invstd;
};
struct iseg__bn_moments iseg__bn_moments(const float *x, int B, size_t bstride, size_t HW,
                                         float eps);

/* ---- SGEMM -------------------------------------------------------------------------------- */

/* Every kernel computes an MR x NR tile; A panels hold MR rows interleaved per k
 * (a[k * MR + r]), B panels NR columns per k (b[k * NR + j]); both are zero-padded. */
#define ISEG_GEMM_MR 8
/* K block: fixed (never derived from the thread count), so that every output element is summed
 * in the same order whatever the partition: within a block sequentially over k in one
 * accumulator, blocks added to C in order. */
#define ISEG_GEMM_KC 256

enum iseg__gemm_isa {
    ISEG_GEMM_ISA_AUTO = 0, /* best the CPU supports */
    ISEG_GEMM_ISA_C,        /* portable C, NR 16 */
    ISEG_GEMM_ISA_AVX2,     /* AVX2 + FMA, NR 24 */
    ISEG_GEMM_ISA_AVX512,   /* AVX-512F + FMA, NR 48 */
};

/* Fused epilogue of the last K block, applied in this order to acc (+ c0): + bias_row[r],
 * + bias_col[j], max(0, .). The pointers cover the full tile (MR rows, NR columns). */
struct iseg__gemm_epi {
    const float *bias_row; /* (MR) or NULL */
    const float *bias_col; /* (NR) or NULL */
    bool         relu;
};

/* c[r * ldc + j] = epi((c0 ? c0[r * ldc0 + j] : 0) + sum_k a[k MR + r] b[k NR + j]) for the
 * full tile; the sum runs over k in order in one accumulator per element; c0 may equal c;
 * epi NULL: none. */
typedef void (*iseg__gemm_kernel_fn)(int kc, const float *a, const float *b, float *c,
                                     size_t ldc, const float *c0, size_t ldc0,
                                     const struct iseg__gemm_epi *epi);

struct iseg__gemm_kernel {
    enum iseg__gemm_isa  isa;
    int                  nr;
    iseg__gemm_kernel_fn fn;
    const char          *name;
};

/* The kernel in use (chosen on first call with __builtin_cpu_supports). */
const struct iseg__gemm_kernel *iseg__gemm_kernel(void);
/* Force a kernel (tests, benchmarks); an ISA the CPU lacks falls back to the best available.
 * Returns the kernel now in use. Not thread-safe: call between operators. */
const struct iseg__gemm_kernel *iseg__gemm_force(enum iseg__gemm_isa isa);
/* The kernel of a given NR (objects remember the NR of their packing). */
const struct iseg__gemm_kernel *iseg__gemm_kernel_nr(int nr);

void iseg__kernel_c(int kc, const float *a, const float *b, float *c, size_t ldc,
                    const float *c0, size_t ldc0, const struct iseg__gemm_epi *epi);
void iseg__kernel_avx2(int kc, const float *a, const float *b, float *c, size_t ldc,
                       const float *c0, size_t ldc0, const struct iseg__gemm_epi *epi);
void iseg__kernel_avx512(int kc, const float *a, const float *b, float *c, size_t ldc,
                         const float *c0, size_t ldc0, const struct iseg__gemm_epi *epi);

/* Pack A (M, K) into MR-row panels, K block by K block: block k0 (of kc = min(KC, K - k0)
 * columns) starts at dst + k0 * Mpad and holds [Mpad / MR][kc][MR], Mpad = ceil(M/MR) MR.
 * trans: element (m, k) is A[k * lda + m] instead of A[m * lda + k]. */
size_t iseg__gemm_packed_a_size(int M, int K); /* floats */
void   iseg__gemm_pack_a(float *dst, const float *A, size_t lda, bool trans, int M, int K);
/* Pack B (K, N) into NR-column panels for the full K: dst [ceil(N/NR)][K][NR].
 * trans: element (k, n) is B[n * ldb + k]. */
size_t iseg__gemm_packed_b_size(int N, int K, int nr); /* floats */
void   iseg__gemm_pack_b(float *dst, const float *B, size_t ldb, bool trans, int K, int N, int nr);

/* Packs the B block (k0..k0+kc, n0..n0+nc) of problem (b, g) into dst as NR-column panels
 * [ceil(nc/nr)][kc][nr], zero-padded. */
typedef void (*iseg__pack_b_fn)(const void *ctx, int b, int g, float *dst, int k0, int kc, int n0,
                                int nc, int nr);

/* A batched, grouped GEMM with a fused epilogue:
 *   C[b,g] (M, N) = C0[b,g] + A[g] (M, K) . B[b,g] (K, N), then + bias, then relu.
 * Pointers of problem (b, g) are base + b * *_bs + g * *_gs (in floats). */
struct iseg__gemm_desc {
    int M, N, K, n_b, n_g;
    /* A: prepacked (pa, iseg__gemm_pack_a layout) or row-major (A, lda) packed per block */
    const float *pa;
    ptrdiff_t    pa_gs;
    const float *A;
    size_t       lda;
    /* B: prepacked (pb, full-K panels of nr columns) or packed per block by pack_b */
    const float    *pb;
    ptrdiff_t       pb_bs;
    int             pb_nr;
    iseg__pack_b_fn pack_b;
    const void     *pack_ctx;
    /* C, and C0 (NULL for none; may equal C) */
    float      *C;
    size_t      ldc;
    ptrdiff_t   c_bs, c_gs;
    const float *C0;
    size_t      ldc0;
    ptrdiff_t   c0_bs, c0_gs;
    /* n_img > 0: the N columns are images of n_img columns each (a batch seen as one long N):
     * element (m, n) of C lives at C + (n / n_img) * c_is + m * ldc + n % n_img, likewise C0
     * with c0_is; 0: plain rows (C + m * ldc + n). bias_col is indexed by n either way. */
    int         n_img;
    ptrdiff_t   c_is, c0_is;
    /* epilogue */
    const float *bias_row; /* (M) per group: bias_row + g * M, or NULL */
    const float *bias_col; /* (N) or NULL */
    bool         relu;
};
/* Run it on the engine. Records ENOMEM (and leaves C unspecified) if scratch cannot grow. */
void iseg__gemm_run(iseg_engine_t e, const struct iseg__gemm_desc *d);

/* ---- word GEMM: int8 and bf16 (qgemm.c, qgemm_avx2.c, qgemm_avx512.c) ----------------------
 *
 * C (M, N) = W (M, K) . X (K, N) with the SGEMM's epilogue, on operands packed in 32-bit words
 * along k: in INT8, 4 k per word (signed weight bytes, unsigned activation bytes), exact int32
 * sums, dequantized in the epilogue; in BF16, 2 k per word (bfloat16 pairs, the even k in the
 * low half), f32 sums. These are the operand formats of AVX-512's vpdpbusd (VNNI) and
 * vdpbf16ps (BF16), whose kernels run where the CPU has them; AVX2 and portable kernels compute
 * the same (int8: the same integers; bf16: the same steps, odd k then even k of each pair added
 * with one rounding each, as vdpbf16ps; it also flushes denormals, which they do not).
 * INT8 weights are quantized per row (output channel) symmetrically to |q| <= ISEG_QW_MAX, the
 * activations per tensor (scale and zero point: 0 for non-negative tensors, 128 for signed).
 * The 7-bit weight range keeps AVX2's vpmaddubsw (u8 x s8 pairs summed into saturating int16)
 * exact: 2 * 255 * 63 < 32767. */
#define ISEG_QW_MAX     63
#define ISEG_QGEMM_MR   4   /* rows of a tile (weights, broadcast) */
#define ISEG_QGEMM_NR   16  /* columns of a tile (activations: one zmm, two ymm of words) */
#define ISEG_QGEMM_KCW  256 /* words per K block (1024 k in int8, 512 in bf16) */

enum iseg__qkind { ISEG_QKIND_INT8 = 0, ISEG_QKIND_BF16 };
static inline int iseg__qkind_kpw(enum iseg__qkind k) { return k == ISEG_QKIND_INT8 ? 4 : 2; }
/* The word format of a reduced precision (BF16 or INT8). */
static inline enum iseg__qkind iseg__qkind_of(enum iseg_precision p) {
    return p == ISEG_PRECISION_INT8 ? ISEG_QKIND_INT8 : ISEG_QKIND_BF16;
}

/* For nt < n_nt: tile nt's accumulator acc + nt MR NR (int32 for INT8, float for BF16; MR x NR
 * row-major) = (init ? 0 : itself) + sum over kw words of a . b, with a [kw][MR] words and tile
 * nt's b at b + nt b_ps, [kw][NR] words. */
typedef void (*iseg__qkernel_fn)(int kw, const uint32_t *a, const uint32_t *b, size_t b_ps,
                                 int n_nt, void *acc, bool init);
struct iseg__qkernel {
    enum iseg__qkind    kind;
    enum iseg__gemm_isa isa;
    iseg__qkernel_fn    fn;
    const char         *name;
};
void iseg__qkernel_int8_c(int kw, const uint32_t *a, const uint32_t *b, size_t b_ps, int n_nt,
                          void *acc, bool init);
void iseg__qkernel_int8_avx2(int kw, const uint32_t *a, const uint32_t *b, size_t b_ps,
                             int n_nt, void *acc, bool init);
void iseg__qkernel_int8_avx512(int kw, const uint32_t *a, const uint32_t *b, size_t b_ps,
                               int n_nt, void *acc, bool init); /* avx512f + avx512vnni */
void iseg__qkernel_bf16_c(int kw, const uint32_t *a, const uint32_t *b, size_t b_ps, int n_nt,
                          void *acc, bool init);
void iseg__qkernel_bf16_avx2(int kw, const uint32_t *a, const uint32_t *b, size_t b_ps,
                             int n_nt, void *acc, bool init);
void iseg__qkernel_bf16_avx512(int kw, const uint32_t *a, const uint32_t *b, size_t b_ps,
                               int n_nt, void *acc, bool init); /* avx512f + avx512bf16 */
/* AVX2 conversion of np panels of NR-column float rows (src + p sps, rows x NR, ld apart) into
 * bf16 pair words (dst + p dps, [nw][NR]): word (t, j) holds rows 2t (low half) and 2t + 1 as
 * iseg__bf16_bits() (rows past `rows`: 0). */
void iseg__bpairs_avx2(uint32_t *dst, size_t dps, const float *src, size_t ld, size_t sps,
                       int np, int rows, int nw);
/* The kernel of a kind in use: the best the CPU has, within the ISA iseg__gemm_force() set
 * (ISEG_GEMM_ISA_C: portable; AVX2; AVX512: the AVX-512 kernel when the CPU has VNNI (int8) or
 * BF16 (bf16), else AVX2). */
const struct iseg__qkernel *iseg__qkernel(enum iseg__qkind kind);

/* Weights (n_g groups of M rows x K) converted and packed once. */
struct iseg__qweights {
    enum iseg__qkind kind;
    int              M, K, Kw, n_g; /* Kw: words per row */
    uint32_t        *pa;    /* per group [ceil(M/MR)][Kw][MR] words, zero-padded */
    size_t           pa_gs; /* words per group */
    float           *scale; /* INT8 (n_g M): w ~ scale * q; NULL for BF16 */
    int32_t         *wsum;  /* INT8 (n_g M): sum of each row's q (zero-point correction) */
};
/* ENOMEM; q is zeroed on failure. w (n_g M, K) row-major. */
enum iseg_status iseg__qweights_init(struct iseg__qweights *q, enum iseg__qkind kind,
                                     const float *w, int M, int K, int n_g);
void             iseg__qweights_free(struct iseg__qweights *q);
/* One INT8 row: q[k] = rint(w[k] * (ISEG_QW_MAX / max|w|)), returns the scale max|w| /
 * ISEG_QW_MAX (1 for an all-zero row). The operator and its _ref share it. */
float iseg__qweight_row(int8_t *q, const float *w, int K);

/* Per-tensor activation quantization: q = clamp(rint(x * inv) + zp, 0, 255). */
struct iseg__qact {
    float scale, inv;
    int   zp;
};
/* From the tensor's range: lo >= 0: zp 0, 255 levels over [0, hi]; else zp 128, 127 levels
 * each side of 0 over max(-lo, hi). */
struct iseg__qact iseg__qact_from_range(float lo, float hi);
static inline uint8_t iseg__qact_one(float x, const struct iseg__qact *p) {
    float v = x * p->inv, lo = (float)-p->zp, hi = 255.0f - (float)p->zp;
    v = v > lo ? v : lo; /* NaN -> lo, as _mm256_max_ps(v, lo) */
    v = v < hi ? v : hi;
    return (uint8_t)((int)__builtin_rintf(v) + p->zp);
}
/* The parameters for a tensor x (n) from its range found by a plain loop (the _ref oracles';
 * the operators use iseg__minmax()). */
struct iseg__qact iseg__qact_of_ref(const float *x, size_t n);
/* The parameters for a tensor x (n) from its range (iseg__minmax, on e's threads). */
struct iseg__qact iseg__qact_of(iseg_engine_t e, const float *x, size_t n);
/* Smallest and largest of x (n) on the engine's threads (NaN ignored). */
void iseg__minmax(iseg_engine_t e, const float *x, size_t n, float *lo, float *hi);
/* x (N, K) converted into rows of ld >= ceil(K / kpw) words (INT8: quantized with p; BF16:
 * rounded pairs), the padding being the conversion of 0.0f; on e's threads. */
void iseg__qrows(iseg_engine_t e, enum iseg__qkind kind, uint32_t *dst, size_t ld, const float *x,
                 int N, int K, const struct iseg__qact *p);

/* The word GEMM: C[b,g] (M, N) = C0 + dequant(W . X), + bias, relu (that order); dequant:
 * INT8 (acc - zp wsum) * (act.scale * w.scale), BF16 the sum itself. X: float blocks from
 * pack_b (as the SGEMM packs them, nr ISEG_QGEMM_NR), converted by the driver; or a row-major
 * float matrix B, converted straight from its rows; or converted columns (qb: column n's words
 * at qb + n qb_ld, e.g. from iseg__qrows). c_trans: element (m, n) of C (and C0) is at
 * n * ldc + m. Bit-identical for any thread count. */
struct iseg__qgemm_desc {
    int                          M, N, K, n_b, n_g;
    const struct iseg__qweights *w;
    struct iseg__qact            act; /* INT8 */
    iseg__pack_b_fn              pack_b;
    const void                  *pack_ctx;
    const float                 *B; /* or row-major (K, N) at B + b b_bs + g b_gs, ldb apart */
    size_t                       ldb;
    ptrdiff_t                    b_bs, b_gs;
    const uint32_t              *qb;
    size_t                       qb_ld;
    float                       *C;
    size_t                       ldc;
    ptrdiff_t                    c_bs, c_gs;
    bool                         c_trans;
    const float                 *C0;
    size_t                       ldc0;
    ptrdiff_t                    c0_bs, c0_gs;
    const float                 *bias; /* (n_g M) or NULL */
    bool                         relu;
};
void iseg__qgemm_run(iseg_engine_t e, const struct iseg__qgemm_desc *d);

/* ---- bf16 ---------------------------------------------------------------------------------- */

/* The bfloat16 nearest x (ties to even), as its 16 bits; a NaN stays a NaN (quieted: its
 * payload may lie in the bits that are dropped). */
static inline uint16_t iseg__bf16_bits(float x) {
    union { float f; uint32_t u; } v = {x};
    if ((v.u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((v.u | 0x00400000u) >> 16);
    return (uint16_t)((v.u + 0x7fffu + ((v.u >> 16) & 1u)) >> 16);
}
/* x rounded to the nearest bfloat16, as a float. */
static inline float iseg__bf16_round(float x) {
    union { uint32_t u; float f; } v = {(uint32_t)iseg__bf16_bits(x) << 16};
    return v.f;
}

/* ---- Winograd (winograd.c) ---------------------------------------------------------------- */

/* F(m x m, 3 x 3), m 2 or 4, for 3x3 stride-1 dilation-1 ungrouped convolutions (any padding):
 * the weights (cout, cin, 3, 3) transformed once into (m + 2)^2 packed SGEMM A operands. */
struct iseg__wino;
enum iseg_status iseg__wino_init(struct iseg__wino **w, int m, const float *weight, int cin,
                                 int cout);
void iseg__wino_free(struct iseg__wino *w);
/* Transform new weights of the same shape in place, on e's threads (NULL: the caller's); the
 * first call allocates a scratch of the transformed size, kept for later calls. ENOMEM. */
enum iseg_status iseg__wino_update(iseg_engine_t e, struct iseg__wino *w, const float *weight);
/* iseg_conv2d_init() with the Winograd path allowed (as it) or not: training repacks its
 * weights every step, and the weight transform costs more than it saves on small maps of many
 * channels. */
enum iseg_status iseg__conv2d_init_ex(iseg_conv2d_t *out, const struct iseg_conv2d_desc *d,
                                      const float *weight, const float *bias, bool winograd);
int  iseg__wino_m(const struct iseg__wino *w);
/* y = act(conv(x) + residual + bias) like iseg_conv2d_forward (residual may alias y);
 * bit-identical for any thread count. Records ENOMEM if scratch cannot grow. */
void iseg__wino_forward(iseg_engine_t e, const struct iseg__wino *w,
                        const struct iseg_conv2d_desc *d, float *y, const float *x, int B, int h,
                        int wd, const float *bias, const float *residual, bool relu);
/* Tiles per work item, in SGEMM panels (0: the default); benchmarks only. */
void iseg__wino_set_panels(int panels);

/* Which convolutions use Winograd (tests, benchmarks; not thread-safe, call between operators).
 * A convolution picks its transform at init, and whether to use it at each forward. */
enum iseg__wino_mode {
    ISEG_WINO_AUTO = 0, /* F(4,3) for eligible layers (cin, cout >= 64), which then keep no
                         * direct weights: Winograd on every shape */
    ISEG_WINO_OFF,      /* never (no transform is built) */
    ISEG_WINO_F2,       /* F(2,3) for every 3x3 stride-1 ungrouped convolution, any shape */
    ISEG_WINO_F4,       /* F(4,3) likewise */
};
void iseg__conv2d_set_wino(enum iseg__wino_mode mode);
/* Whether an FP32 convolution of this shape would be built with a Winograd transform. */
bool iseg__conv2d_winograd(const struct iseg_conv2d_desc *d);
/* The Winograd tile size a convolution would use for this input (0: direct). */
int  iseg__conv2d_wino_m(const iseg_conv2d_t c, int B, int h, int w);

/* ---- RoIAlign over a pyramid (roi_align.c) ------------------------------------------------ */

#define ISEG_ROI_LEVELS_MAX 8

/* MultiScaleRoIAlign: RoI n is pooled from level levels[n] (feats[l] (C, H[l], W[l]), image to
 * map scale scales[l]) into out + n C oh ow, every level in one pool run. Each RoI's values
 * are bit-identical to iseg_roi_align() on its level (and so to iseg_roi_align_ref()), for any
 * thread count. */
void iseg__roi_align_levels(iseg_engine_t e, float *out, const float *const *feats, const int *H,
                            const int *W, const float *scales, int n_lv, const int *levels,
                            const float *boxes, int N, int C, int oh, int ow, int sampling_ratio,
                            bool aligned);

static inline int iseg__ceil_div(int a, int b) { return (a + b - 1) / b; }

#endif /* ISEG_NN_IMPL_H */
