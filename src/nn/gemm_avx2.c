/* gemm_avx2.c - the AVX2 + FMA SGEMM micro-kernel: an 8 x 24 tile computed as two 4 x 24
 * halves. Each half keeps 12 ymm accumulators, three B vectors and one broadcast A register
 * (16 in all); per k it issues 3 loads + 4 broadcasts for 12 FMAs, so the two FMA pipes stay
 * fed with 12 independent chains (latency 4). The B micro-panel (KC x 24) stays in L1 and is
 * read once per half; the A micro-panel streams from L2.
 * The last K block applies the epilogue (bias per row, bias per column, ReLU) in registers
 * before the only store, so C is never swept a second time.
 * Compiled for AVX2 by function attribute only; chosen at run time. */
#include "nn/nn_impl.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

#define TGT __attribute__((target("avx2,fma")))
#define NR  24

TGT static inline void half(int kc, const float *a, const float *b, float *c, size_t ldc,
                            const float *c0, size_t ldc0, const float *br, const float *bc,
                            bool relu) {
    __m256 c00 = _mm256_setzero_ps(), c01 = c00, c02 = c00, c10 = c00, c11 = c00, c12 = c00;
    __m256 c20 = c00, c21 = c00, c22 = c00, c30 = c00, c31 = c00, c32 = c00;
#define ROW(r)                                         \
    do {                                               \
        __m256 ar = _mm256_broadcast_ss(a + (r));      \
        c##r##0   = _mm256_fmadd_ps(ar, b0, c##r##0); \
        c##r##1   = _mm256_fmadd_ps(ar, b1, c##r##1); \
        c##r##2   = _mm256_fmadd_ps(ar, b2, c##r##2); \
    } while (0)
    for (int k = 0; k < kc; k++) {
        __m256 b0 = _mm256_loadu_ps(b), b1 = _mm256_loadu_ps(b + 8), b2 = _mm256_loadu_ps(b + 16);
        ROW(0);
        ROW(1);
        ROW(2);
        ROW(3);
        a += ISEG_GEMM_MR;
        b += NR;
    }
#undef ROW
    /* the order of the epilogue is fixed: (acc + c0) + bias_row + bias_col, then ReLU */
    __m256 bc0 = _mm256_setzero_ps(), bc1 = bc0, bc2 = bc0, zero = bc0;
    if (bc) bc0 = _mm256_loadu_ps(bc), bc1 = _mm256_loadu_ps(bc + 8), bc2 = _mm256_loadu_ps(bc + 16);
#define STORE(r)                                                                \
    do {                                                                        \
        float *cr = c + (size_t)(r) * ldc;                                      \
        if (c0) {                                                               \
            const float *sr = c0 + (size_t)(r) * ldc0;                          \
            c##r##0         = _mm256_add_ps(_mm256_loadu_ps(sr), c##r##0);     \
            c##r##1         = _mm256_add_ps(_mm256_loadu_ps(sr + 8), c##r##1); \
            c##r##2         = _mm256_add_ps(_mm256_loadu_ps(sr + 16), c##r##2); \
        }                                                                       \
        if (br) {                                                               \
            __m256 v = _mm256_broadcast_ss(br + (r));                           \
            c##r##0  = _mm256_add_ps(c##r##0, v);                               \
            c##r##1  = _mm256_add_ps(c##r##1, v);                               \
            c##r##2  = _mm256_add_ps(c##r##2, v);                               \
        }                                                                       \
        if (bc) {                                                               \
            c##r##0 = _mm256_add_ps(c##r##0, bc0);                              \
            c##r##1 = _mm256_add_ps(c##r##1, bc1);                              \
            c##r##2 = _mm256_add_ps(c##r##2, bc2);                              \
        }                                                                       \
        if (relu) {                                                             \
            c##r##0 = _mm256_max_ps(c##r##0, zero);                             \
            c##r##1 = _mm256_max_ps(c##r##1, zero);                             \
            c##r##2 = _mm256_max_ps(c##r##2, zero);                             \
        }                                                                       \
        _mm256_storeu_ps(cr, c##r##0);                                          \
        _mm256_storeu_ps(cr + 8, c##r##1);                                      \
        _mm256_storeu_ps(cr + 16, c##r##2);                                     \
    } while (0)
    STORE(0);
    STORE(1);
    STORE(2);
    STORE(3);
#undef STORE
}

TGT void iseg__kernel_avx2(int kc, const float *a, const float *b, float *c, size_t ldc,
                           const float *c0, size_t ldc0, const struct iseg__gemm_epi *epi) {
    const float *br = epi ? epi->bias_row : NULL, *bc = epi ? epi->bias_col : NULL;
    bool         relu = epi && epi->relu;
    half(kc, a, b, c, ldc, c0, ldc0, br, bc, relu);
    half(kc, a + 4, b, c + 4 * ldc, ldc, c0 ? c0 + 4 * ldc0 : NULL, ldc0, br ? br + 4 : NULL, bc,
         relu);
}

#else /* not x86-64 GCC/Clang: never selected */

void iseg__kernel_avx2(int kc, const float *a, const float *b, float *c, size_t ldc,
                       const float *c0, size_t ldc0, const struct iseg__gemm_epi *epi) {
    (void)kc, (void)a, (void)b, (void)c, (void)ldc, (void)c0, (void)ldc0, (void)epi;
    ISEG_ASSERT(!"AVX2 kernel called on a build without it");
}

#endif
