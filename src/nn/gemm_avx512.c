/* gemm_avx512.c - the AVX-512 SGEMM micro-kernel: an 8 x 48 tile in 24 zmm accumulators.
 *
 * Per k: three 16-float loads of B and eight broadcasts of A feed 24 FMAs, so the two FMA
 * pipes stay busy with 24 independent chains (latency 4). Compiled for AVX-512 by function
 * attribute only; the dispatcher calls it when the CPU reports avx512f, avx512vl and fma.
 * The last K block applies the epilogue in registers (same order as the other kernels).
 * Built once more against SIMDe for the tests (ISEG_GEMM_SIMDE: iseg__kernel_avx512_simde). */
#include "nn/nn_impl.h"

#if defined(ISEG_GEMM_SIMDE) /* tests: the same source on SIMDe's portable AVX-512 */
#define SIMDE_ENABLE_NATIVE_ALIASES
#include <simde/x86/avx512.h>
#define TGT
#define KNAME(x) x##_simde
#define HAVE_AVX512 1
#elif defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define TGT      __attribute__((target("avx512f,avx512vl,fma")))
#define KNAME(x) x
#define HAVE_AVX512 1
#else
#define HAVE_AVX512 0
#endif

#if HAVE_AVX512

void KNAME(iseg__kernel_avx512)(int kc, const float *a, const float *b, float *c, size_t ldc,
                                const float *c0, size_t ldc0, const struct iseg__gemm_epi *epi);

TGT void KNAME(iseg__kernel_avx512)(int kc, const float *a, const float *b, float *c, size_t ldc,
                                    const float *c0, size_t ldc0,
                                    const struct iseg__gemm_epi *epi) {
    const float *br = epi ? epi->bias_row : NULL, *bc = epi ? epi->bias_col : NULL;
    bool         relu = epi && epi->relu;
    __m512 c00 = _mm512_setzero_ps(), c01 = c00, c02 = c00, c10 = c00, c11 = c00, c12 = c00;
    __m512 c20 = c00, c21 = c00, c22 = c00, c30 = c00, c31 = c00, c32 = c00;
    __m512 c40 = c00, c41 = c00, c42 = c00, c50 = c00, c51 = c00, c52 = c00;
    __m512 c60 = c00, c61 = c00, c62 = c00, c70 = c00, c71 = c00, c72 = c00;
#define ROW(r)                                       \
    do {                                             \
        __m512 ar = _mm512_set1_ps(a[r]);            \
        c##r##0   = _mm512_fmadd_ps(ar, b0, c##r##0); \
        c##r##1   = _mm512_fmadd_ps(ar, b1, c##r##1); \
        c##r##2   = _mm512_fmadd_ps(ar, b2, c##r##2); \
    } while (0)
#pragma GCC unroll 4
    for (int k = 0; k < kc; k++) {
        __m512 b0 = _mm512_loadu_ps(b), b1 = _mm512_loadu_ps(b + 16), b2 = _mm512_loadu_ps(b + 32);
        _mm_prefetch((const char *)(b + 8 * 48), _MM_HINT_T0);
        ROW(0);
        ROW(1);
        ROW(2);
        ROW(3);
        ROW(4);
        ROW(5);
        ROW(6);
        ROW(7);
        a += 8;
        b += 48;
    }
#undef ROW
    /* the order of the epilogue is fixed: (acc + c0) + bias_row + bias_col, then ReLU */
    __m512 bc0 = _mm512_setzero_ps(), bc1 = bc0, bc2 = bc0, zero = bc0;
    if (bc) bc0 = _mm512_loadu_ps(bc), bc1 = _mm512_loadu_ps(bc + 16), bc2 = _mm512_loadu_ps(bc + 32);
#define STORE(r)                                                                      \
    do {                                                                              \
        float *cr = c + (size_t)(r) * ldc;                                            \
        if (c0) {                                                                     \
            const float *sr = c0 + (size_t)(r) * ldc0;                                \
            c##r##0         = _mm512_add_ps(_mm512_loadu_ps(sr), c##r##0);           \
            c##r##1         = _mm512_add_ps(_mm512_loadu_ps(sr + 16), c##r##1);      \
            c##r##2         = _mm512_add_ps(_mm512_loadu_ps(sr + 32), c##r##2);      \
        }                                                                             \
        if (br) {                                                                     \
            __m512 v = _mm512_set1_ps(br[r]);                                         \
            c##r##0  = _mm512_add_ps(c##r##0, v);                                     \
            c##r##1  = _mm512_add_ps(c##r##1, v);                                     \
            c##r##2  = _mm512_add_ps(c##r##2, v);                                     \
        }                                                                             \
        if (bc) {                                                                     \
            c##r##0 = _mm512_add_ps(c##r##0, bc0);                                    \
            c##r##1 = _mm512_add_ps(c##r##1, bc1);                                    \
            c##r##2 = _mm512_add_ps(c##r##2, bc2);                                    \
        }                                                                             \
        if (relu) {                                                                   \
            c##r##0 = _mm512_max_ps(c##r##0, zero);                                   \
            c##r##1 = _mm512_max_ps(c##r##1, zero);                                   \
            c##r##2 = _mm512_max_ps(c##r##2, zero);                                   \
        }                                                                             \
        _mm512_storeu_ps(cr, c##r##0);                                                \
        _mm512_storeu_ps(cr + 16, c##r##1);                                           \
        _mm512_storeu_ps(cr + 32, c##r##2);                                           \
    } while (0)
    STORE(0);
    STORE(1);
    STORE(2);
    STORE(3);
    STORE(4);
    STORE(5);
    STORE(6);
    STORE(7);
#undef STORE
}

#else /* not x86-64 GCC/Clang: never selected */

void iseg__kernel_avx512(int kc, const float *a, const float *b, float *c, size_t ldc,
                         const float *c0, size_t ldc0, const struct iseg__gemm_epi *epi) {
    (void)kc, (void)a, (void)b, (void)c, (void)ldc, (void)c0, (void)ldc0, (void)epi;
    ISEG_ASSERT(!"AVX-512 kernel called on a build without it");
}

#endif
