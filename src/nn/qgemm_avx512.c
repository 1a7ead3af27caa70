/* qgemm_avx512.c - AVX-512 kernels of the word GEMM: int8 with VNNI (vpdpbusd: 4 u8 x s8
 * products summed into each int32 lane, exact) and bf16 with AVX512_BF16 (vdpbf16ps: 2 bf16
 * products added into each f32 lane). A tile is 4 rows x 16 columns (one zmm per row); the
 * kernel runs up to three column tiles at once, 12 accumulators, so that each weight broadcast
 * feeds three dot products and 12 independent chains cover the instructions' latency.
 * Compiled for AVX-512 by function attribute only; the dispatcher calls them when the CPU
 * reports avx512f and avx512vnni (int8) or avx512bf16 (bf16).
 *
 * The same source also builds against SIMDe's portable AVX-512 (ISEG_QGEMM_SIMDE, tests only),
 * so that the kernels are checked on CPUs without AVX-512: their functions are then named
 * *_simde. */
#include <string.h>

#include "nn/nn_impl.h"

#if defined(ISEG_QGEMM_SIMDE)
#define SIMDE_ENABLE_NATIVE_ALIASES
#include <simde/x86/avx512.h>
#define TGT
#define KNAME(x) x##_simde
#define HAVE_AVX512 1
#elif defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define TGT_INT8 __attribute__((target("avx512f,avx512vnni")))
#define TGT_BF16 __attribute__((target("avx512f,avx512bf16")))
#define KNAME(x) x
#define HAVE_AVX512 1
#else
#define HAVE_AVX512 0
#endif

#ifdef TGT
#define TGT_INT8 TGT
#define TGT_BF16 TGT
#endif

#define MR ISEG_QGEMM_MR
#define NR ISEG_QGEMM_NR

#if HAVE_AVX512

void KNAME(iseg__qkernel_int8_avx512)(int kw, const uint32_t *a, const uint32_t *b, size_t b_ps,
                                      int n_nt, void *acc, bool init);
void KNAME(iseg__qkernel_bf16_avx512)(int kw, const uint32_t *a, const uint32_t *b, size_t b_ps,
                                      int n_nt, void *acc, bool init);

/* T (1..3) column tiles from b, b + b_ps, b + 2 b_ps into acc, acc + MR NR, ... */
#define DEFINE_TILES(NAME, TGTA, VT, ZERO, LOADV, STOREV, DOT)                                  \
    TGTA static inline void NAME(int kw, const uint32_t *a, const uint32_t *b, size_t b_ps,     \
                                 void *vacc, bool init, int T) {                                \
        VT     c[MR][3];                                                                        \
        char  *acc = vacc;                                                                      \
        for (int r = 0; r < MR; r++)                                                            \
            for (int t = 0; t < 3; t++)                                                         \
                c[r][t] = init || t >= T ? ZERO : LOADV(acc + ((size_t)t * MR + r) * NR * 4);  \
        for (int k = 0; k < kw; k++) {                                                          \
            __m512i bv[3];                                                                      \
            for (int t = 0; t < 3; t++)                                                         \
                if (t < T) bv[t] = _mm512_loadu_si512((const void *)(b + t * b_ps + (size_t)k * NR)); \
            for (int r = 0; r < MR; r++) {                                                      \
                __m512i av = _mm512_set1_epi32((int)a[(size_t)k * MR + r]);                     \
                for (int t = 0; t < 3; t++)                                                     \
                    if (t < T) c[r][t] = DOT(c[r][t], bv[t], av);                               \
            }                                                                                   \
        }                                                                                       \
        for (int r = 0; r < MR; r++)                                                            \
            for (int t = 0; t < T; t++) STOREV(acc + ((size_t)t * MR + r) * NR * 4, c[r][t]);  \
    }

/* vpdpbusd: the first source unsigned (the activations), the second signed (the weights) */
#define INT8_DOT(c, bv, av) _mm512_dpbusd_epi32(c, bv, av)
#define INT8_LOAD(p)        _mm512_loadu_si512((const void *)(p))
#define INT8_STORE(p, v)    _mm512_storeu_si512((void *)(p), v)
DEFINE_TILES(int8_tiles, TGT_INT8, __m512i, _mm512_setzero_si512(), INT8_LOAD, INT8_STORE,
             INT8_DOT)

TGT_BF16 static inline __m512bh as_bh(__m512i v) {
    __m512bh r;
    memcpy(&r, &v, sizeof(r));
    return r;
}
#define BF16_DOT(c, bv, av) _mm512_dpbf16_ps(c, as_bh(bv), as_bh(av))
#define BF16_LOAD(p)        _mm512_loadu_ps((const void *)(p))
#define BF16_STORE(p, v)    _mm512_storeu_ps((void *)(p), v)
DEFINE_TILES(bf16_tiles, TGT_BF16, __m512, _mm512_setzero_ps(), BF16_LOAD, BF16_STORE, BF16_DOT)

/* the kernel: column tiles in groups of three, the remainder as one group of one or two */
#define DEFINE_KERNEL(NAME, TGTA, TILES, ACC_T)                                                \
    TGTA void KNAME(NAME)(int kw, const uint32_t *a, const uint32_t *b, size_t b_ps, int n_nt,   \
                          void *acc, bool init) {                                              \
        for (int nt = 0; nt < n_nt; nt += 3) {                                                 \
            int         T = n_nt - nt < 3 ? n_nt - nt : 3;                                     \
            const uint32_t *bt = b + nt * b_ps;                                                \
            ACC_T      *at = (ACC_T *)acc + (size_t)nt * MR * NR;                              \
            if (T == 3) TILES(kw, a, bt, b_ps, at, init, 3);                                   \
            else if (T == 2) TILES(kw, a, bt, b_ps, at, init, 2);                              \
            else TILES(kw, a, bt, b_ps, at, init, 1);                                          \
        }                                                                                      \
    }
DEFINE_KERNEL(iseg__qkernel_int8_avx512, TGT_INT8, int8_tiles, int32_t)
DEFINE_KERNEL(iseg__qkernel_bf16_avx512, TGT_BF16, bf16_tiles, float)

#else /* no AVX-512 compiler support: never selected */

void iseg__qkernel_int8_avx512(int kw, const uint32_t *a, const uint32_t *b, size_t b_ps,
                               int n_nt, void *acc, bool init) {
    (void)kw, (void)a, (void)b, (void)b_ps, (void)n_nt, (void)acc, (void)init;
    ISEG_ASSERT(!"AVX-512 kernel called on a build without it");
}
void iseg__qkernel_bf16_avx512(int kw, const uint32_t *a, const uint32_t *b, size_t b_ps,
                               int n_nt, void *acc, bool init) {
    (void)kw, (void)a, (void)b, (void)b_ps, (void)n_nt, (void)acc, (void)init;
    ISEG_ASSERT(!"AVX-512 kernel called on a build without it");
}

#endif
