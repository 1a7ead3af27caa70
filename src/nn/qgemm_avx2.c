/* qgemm_avx2.c - AVX2 parts of the word GEMM: the 4 x 16 int8 and (emulated) bf16 micro-kernels,
 * activation quantization into quad panels and rows, bf16 pair panels, the min/max scan, .
 *
 * int8 kernel: per k quad, two loads of B (16 words of 4 unsigned bytes) and four broadcasts of A
 * (4 signed bytes of one row) feed 8 vpmaddubsw (u8 x s8, adjacent pairs summed into int16:
 * exact, since |w| <= 63), 8 vpmaddwd by ones (pairs of int16 summed into int32: the 4-byte dot
 * product of each word) and 8 vpaddd into 8 accumulators. Compiled for AVX2 by function
 * attribute only; chosen at run time. */
#include "nn/nn_impl.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

#define TGT __attribute__((target("avx2,fma")))
#define MR  ISEG_QGEMM_MR
#define NR  ISEG_QGEMM_NR

TGT static inline void int8_tile(int kw, const uint32_t *a, const uint32_t *b, int32_t *acc,
                                 bool init) {
    __m256i c00, c01, c10, c11, c20, c21, c30, c31;
    if (init) {
        c00 = c01 = c10 = c11 = c20 = c21 = c30 = c31 = _mm256_setzero_si256();
    } else {
#define LOAD(r)                                                               \
    c##r##0 = _mm256_loadu_si256((const __m256i *)(acc + (r) * NR));          \
    c##r##1 = _mm256_loadu_si256((const __m256i *)(acc + (r) * NR + 8));
        LOAD(0) LOAD(1) LOAD(2) LOAD(3)
#undef LOAD
    }
    const __m256i ones = _mm256_set1_epi16(1);
#define ROW(r)                                                                                  \
    do {                                                                                        \
        __m256i ar = _mm256_set1_epi32((int)a[r]);                                              \
        c##r##0 = _mm256_add_epi32(c##r##0, _mm256_madd_epi16(_mm256_maddubs_epi16(b0, ar), ones)); \
        c##r##1 = _mm256_add_epi32(c##r##1, _mm256_madd_epi16(_mm256_maddubs_epi16(b1, ar), ones)); \
    } while (0)
    for (int k = 0; k < kw; k++) {
        __m256i b0 = _mm256_loadu_si256((const __m256i *)b);
        __m256i b1 = _mm256_loadu_si256((const __m256i *)(b + 8));
        ROW(0);
        ROW(1);
        ROW(2);
        ROW(3);
        a += MR;
        b += NR;
    }
#undef ROW
#define STORE(r)                                                   \
    _mm256_storeu_si256((__m256i *)(acc + (r) * NR), c##r##0);     \
    _mm256_storeu_si256((__m256i *)(acc + (r) * NR + 8), c##r##1);
    STORE(0) STORE(1) STORE(2) STORE(3)
#undef STORE
}

TGT void iseg__qkernel_int8_avx2(int kw, const uint32_t *a, const uint32_t *b, size_t b_ps,
                                 int n_nt, void *acc, bool init) {
    for (int nt = 0; nt < n_nt; nt++)
        int8_tile(kw, a, b + (size_t)nt * b_ps, (int32_t *)acc + (size_t)nt * MR * NR, init);
}

/* bf16 emulated: each word's halves widened to f32 (shift, mask), then the odd k's product and
 * the even k's added by two FMAs: one rounding each, vdpbf16ps's order */
TGT static inline void bf16_tile(int kw, const uint32_t *a, const uint32_t *b, float *acc,
                                 bool init) {
    __m256 c00, c01, c10, c11, c20, c21, c30, c31;
    if (init) {
        c00 = c01 = c10 = c11 = c20 = c21 = c30 = c31 = _mm256_setzero_ps();
    } else {
#define LOAD(r)                                           \
    c##r##0 = _mm256_loadu_ps(acc + (r) * NR);            \
    c##r##1 = _mm256_loadu_ps(acc + (r) * NR + 8);
        LOAD(0) LOAD(1) LOAD(2) LOAD(3)
#undef LOAD
    }
    const __m256i hm = _mm256_set1_epi32((int)0xffff0000u);
#define ROW(r)                                                                        \
    do {                                                                              \
        __m256i aw = _mm256_set1_epi32((int)a[r]);                                    \
        __m256  ah = _mm256_castsi256_ps(_mm256_and_si256(aw, hm));                   \
        __m256  al = _mm256_castsi256_ps(_mm256_slli_epi32(aw, 16));                  \
        c##r##0    = _mm256_fmadd_ps(al, b0l, _mm256_fmadd_ps(ah, b0h, c##r##0));     \
        c##r##1    = _mm256_fmadd_ps(al, b1l, _mm256_fmadd_ps(ah, b1h, c##r##1));     \
    } while (0)
    for (int k = 0; k < kw; k++) {
        __m256i b0 = _mm256_loadu_si256((const __m256i *)b);
        __m256i b1 = _mm256_loadu_si256((const __m256i *)(b + 8));
        __m256  b0h = _mm256_castsi256_ps(_mm256_and_si256(b0, hm));
        __m256  b0l = _mm256_castsi256_ps(_mm256_slli_epi32(b0, 16));
        __m256  b1h = _mm256_castsi256_ps(_mm256_and_si256(b1, hm));
        __m256  b1l = _mm256_castsi256_ps(_mm256_slli_epi32(b1, 16));
        ROW(0);
        ROW(1);
        ROW(2);
        ROW(3);
        a += MR;
        b += NR;
    }
#undef ROW
#define STORE(r)                                  \
    _mm256_storeu_ps(acc + (r) * NR, c##r##0);    \
    _mm256_storeu_ps(acc + (r) * NR + 8, c##r##1);
    STORE(0) STORE(1) STORE(2) STORE(3)
#undef STORE
}

TGT void iseg__qkernel_bf16_avx2(int kw, const uint32_t *a, const uint32_t *b, size_t b_ps,
                                 int n_nt, void *acc, bool init) {
    for (int nt = 0; nt < n_nt; nt++)
        bf16_tile(kw, a, b + (size_t)nt * b_ps, (float *)acc + (size_t)nt * MR * NR, init);
}

/* 8 floats quantized to int32 lanes 0..255: clamp(x inv, -zp, 255 - zp) (NaN -> -zp), rounded
 * to nearest even, + zp: iseg__qact_one() lane by lane. */
TGT static inline __m256i quant8(__m256 x, __m256 inv, __m256 lo, __m256 hi, __m256i zp) {
    __m256 v = _mm256_max_ps(_mm256_mul_ps(x, inv), lo); /* NaN (first operand) -> lo */
    v        = _mm256_min_ps(v, hi);
    return _mm256_add_epi32(_mm256_cvtps_epi32(v), zp);
}

TGT void iseg__qquads_avx2(uint32_t *dst, size_t dps, const float *src, size_t ld, size_t sps,
                           int np, int rows, int nq, const struct iseg__qact *p) {
    __m256  inv = _mm256_set1_ps(p->inv), lo = _mm256_set1_ps((float)-p->zp);
    __m256  hi = _mm256_set1_ps(255.0f - (float)p->zp);
    __m256i zp = _mm256_set1_epi32(p->zp);
    for (int t = 0; t < nq; t++) /* quads outer: the 4 rows are read along their length */
        for (int pi = 0; pi < np; pi++) {
            const float *sp = src + pi * sps;
            __m256i      w0 = _mm256_setzero_si256(), w1 = w0;
            for (int i = 0; i < 4; i++) {
                int     r = 4 * t + i;
                __m256i q0 = zp, q1 = zp; /* padding rows: quantized 0.0f */
                if (r < rows) {
                    q0 = quant8(_mm256_loadu_ps(sp + (size_t)r * ld), inv, lo, hi, zp);
                    q1 = quant8(_mm256_loadu_ps(sp + (size_t)r * ld + 8), inv, lo, hi, zp);
                }
                w0 = _mm256_or_si256(w0, _mm256_slli_epi32(q0, 8 * i));
                w1 = _mm256_or_si256(w1, _mm256_slli_epi32(q1, 8 * i));
            }
            uint32_t *dp = dst + pi * dps + (size_t)t * NR;
            _mm256_storeu_si256((__m256i *)dp, w0);
            _mm256_storeu_si256((__m256i *)(dp + 8), w1);
        }
}

/* iseg__bf16_bits() of 8 floats, in the low halves of the lanes */
TGT static inline __m256i bf16_bits8(__m256 v) {
    const __m256i one = _mm256_set1_epi32(1), bias = _mm256_set1_epi32(0x7fff);
    const __m256i quiet = _mm256_set1_epi32(0x00400000);
    __m256i       u = _mm256_castps_si256(v);
    __m256i r = _mm256_add_epi32(u, _mm256_add_epi32(bias, _mm256_and_si256(_mm256_srli_epi32(u, 16), one)));
    __m256  nan = _mm256_cmp_ps(v, v, _CMP_UNORD_Q); /* NaN: quieted, not rounded */
    r = _mm256_castps_si256(_mm256_blendv_ps(_mm256_castsi256_ps(r),
                                             _mm256_castsi256_ps(_mm256_or_si256(u, quiet)), nan));
    return _mm256_srli_epi32(r, 16);
}

TGT void iseg__bpairs_avx2(uint32_t *dst, size_t dps, const float *src, size_t ld, size_t sps,
                           int np, int rows, int nw) {
    __m256i z = _mm256_setzero_si256();
    for (int t = 0; t < nw; t++)
        for (int pi = 0; pi < np; pi++)
            for (int h = 0; h < NR; h += 8) {
                const float *sp = src + pi * sps + h;
                int          r0 = 2 * t, r1 = 2 * t + 1;
                __m256i lo = r0 < rows ? bf16_bits8(_mm256_loadu_ps(sp + (size_t)r0 * ld)) : z;
                __m256i hi = r1 < rows ? bf16_bits8(_mm256_loadu_ps(sp + (size_t)r1 * ld)) : z;
                _mm256_storeu_si256((__m256i *)(dst + pi * dps + (size_t)t * NR + h),
                                    _mm256_or_si256(lo, _mm256_slli_epi32(hi, 16)));
            }
}

TGT void iseg__qepi_avx2(const void *vacc, bool q8, float *c, size_t ldc, const float *c0,
                         size_t ldc0, const float *s, const int32_t *comp, const float *bias,
                         bool relu) {
    for (int r = 0; r < MR; r++) {
        __m256  sv = _mm256_set1_ps(q8 ? s[r] : 1.0f);
        __m256i cv = _mm256_set1_epi32(q8 ? comp[r] : 0);
        for (int h = 0; h < NR; h += 8) {
            __m256 v;
            if (q8) {
                __m256i a = _mm256_loadu_si256((const __m256i *)((const int32_t *)vacc + r * NR + h));
                v = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(a, cv)), sv);
            } else {
                v = _mm256_loadu_ps((const float *)vacc + r * NR + h);
            }
            if (c0) v = _mm256_add_ps(_mm256_loadu_ps(c0 + (size_t)r * ldc0 + h), v);
            if (bias) v = _mm256_add_ps(v, _mm256_set1_ps(bias[r]));
            if (relu) v = _mm256_max_ps(v, _mm256_setzero_ps());
            _mm256_storeu_ps(c + (size_t)r * ldc + h, v);
        }
    }
}

TGT void iseg__qact_row_avx2(uint8_t *dst, const float *x, size_t n, const struct iseg__qact *p) {
    __m256  inv = _mm256_set1_ps(p->inv), lo = _mm256_set1_ps((float)-p->zp);
    __m256  hi = _mm256_set1_ps(255.0f - (float)p->zp);
    __m256i zp = _mm256_set1_epi32(p->zp);
    size_t  i  = 0;
    for (; i + 32 <= n; i += 32) {
        __m256i q0 = quant8(_mm256_loadu_ps(x + i), inv, lo, hi, zp);
        __m256i q1 = quant8(_mm256_loadu_ps(x + i + 8), inv, lo, hi, zp);
        __m256i q2 = quant8(_mm256_loadu_ps(x + i + 16), inv, lo, hi, zp);
        __m256i q3 = quant8(_mm256_loadu_ps(x + i + 24), inv, lo, hi, zp);
        /* packs work per 128-bit lane: the permute restores the element order */
        __m256i s01 = _mm256_packs_epi32(q0, q1), s23 = _mm256_packs_epi32(q2, q3);
        __m256i u   = _mm256_packus_epi16(s01, s23);
        u = _mm256_permutevar8x32_epi32(u, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
        _mm256_storeu_si256((__m256i *)(dst + i), u);
    }
    for (; i < n; i++) dst[i] = iseg__qact_one(x[i], p);
}

TGT void iseg__minmax_avx2(const float *x, size_t n, float *lo, float *hi) {
    __m256 l = _mm256_set1_ps(*lo), h = _mm256_set1_ps(*hi);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 v = _mm256_loadu_ps(x + i);
        l        = _mm256_min_ps(v, l); /* NaN (first operand) -> l */
        h        = _mm256_max_ps(v, h);
    }
    float lb[8], hb[8];
    _mm256_storeu_ps(lb, l);
    _mm256_storeu_ps(hb, h);
    float a = lb[0], b = hb[0];
    for (int j = 1; j < 8; j++) {
        a = lb[j] < a ? lb[j] : a;
        b = hb[j] > b ? hb[j] : b;
    }
    for (; i < n; i++) {
        a = x[i] < a ? x[i] : a;
        b = x[i] > b ? x[i] : b;
    }
    *lo = a, *hi = b;
}

#else /* not x86-64 GCC/Clang: never selected */

void iseg__qkernel_int8_avx2(int kw, const uint32_t *a, const uint32_t *b, size_t b_ps,
                             int n_nt, void *acc, bool init) {
    (void)kw, (void)a, (void)b, (void)b_ps, (void)n_nt, (void)acc, (void)init;
    ISEG_ASSERT(!"AVX2 kernel called on a build without it");
}
void iseg__qkernel_bf16_avx2(int kw, const uint32_t *a, const uint32_t *b, size_t b_ps,
                             int n_nt, void *acc, bool init) {
    (void)kw, (void)a, (void)b, (void)b_ps, (void)n_nt, (void)acc, (void)init;
    ISEG_ASSERT(!"AVX2 kernel called on a build without it");
}

#endif
