/* gemm_avx2.c - the AVX2 + FMA SGEMM micro-kernel: an 8 x 16 tile computed as two 4 x 16
 * halves (8 ymm accumulators each, within the 16 registers), reading the B panel twice from L1.
 * Compiled for AVX2 by function attribute only; chosen at run time. */
#include "nn/nn_impl.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

#define TGT __attribute__((target("avx2,fma")))

TGT static void half(int kc, const float *a, const float *b, float *c, size_t ldc,
                     const float *c0, size_t ldc0) {
    __m256 c00 = _mm256_setzero_ps(), c01 = c00, c10 = c00, c11 = c00;
    __m256 c20 = c00, c21 = c00, c30 = c00, c31 = c00;
    for (int k = 0; k < kc; k++) {
        __m256 b0 = _mm256_loadu_ps(b), b1 = _mm256_loadu_ps(b + 8);
        __m256 a0 = _mm256_broadcast_ss(a), a1 = _mm256_broadcast_ss(a + 1);
        c00 = _mm256_fmadd_ps(a0, b0, c00);
        c01 = _mm256_fmadd_ps(a0, b1, c01);
        c10 = _mm256_fmadd_ps(a1, b0, c10);
        c11 = _mm256_fmadd_ps(a1, b1, c11);
        __m256 a2 = _mm256_broadcast_ss(a + 2), a3 = _mm256_broadcast_ss(a + 3);
        c20 = _mm256_fmadd_ps(a2, b0, c20);
        c21 = _mm256_fmadd_ps(a2, b1, c21);
        c30 = _mm256_fmadd_ps(a3, b0, c30);
        c31 = _mm256_fmadd_ps(a3, b1, c31);
        a += ISEG_GEMM_MR;
        b += 16;
    }
#define STORE(r)                                                                 \
    do {                                                                         \
        float *cr = c + (size_t)(r) * ldc;                                       \
        if (c0) {                                                                \
            const float *sr = c0 + (size_t)(r) * ldc0;                           \
            c##r##0         = _mm256_add_ps(_mm256_loadu_ps(sr), c##r##0);      \
            c##r##1         = _mm256_add_ps(_mm256_loadu_ps(sr + 8), c##r##1);  \
        }                                                                        \
        _mm256_storeu_ps(cr, c##r##0);                                           \
        _mm256_storeu_ps(cr + 8, c##r##1);                                       \
    } while (0)
    STORE(0);
    STORE(1);
    STORE(2);
    STORE(3);
#undef STORE
}

TGT void iseg__kernel_avx2(int kc, const float *a, const float *b, float *c, size_t ldc,
                           const float *c0, size_t ldc0) {
    half(kc, a, b, c, ldc, c0, ldc0);
    half(kc, a + 4, b, c + 4 * ldc, ldc, c0 ? c0 + 4 * ldc0 : NULL, ldc0);
}

#else /* not x86-64 GCC/Clang: never selected */

void iseg__kernel_avx2(int kc, const float *a, const float *b, float *c, size_t ldc,
                       const float *c0, size_t ldc0) {
    (void)kc, (void)a, (void)b, (void)c, (void)ldc, (void)c0, (void)ldc0;
    ISEG_ASSERT(!"AVX2 kernel called on a build without it");
}

#endif
