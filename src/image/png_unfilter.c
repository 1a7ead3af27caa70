/* png_unfilter.c - undoing the PNG row filters for the fast decoder in png.c.
 *
 * The portable code handles every stride. On x86 with SSSE3, 3-byte pixels (8-bit RGB, the
 * panoptic PNGs) take vector kernels chosen at run time:
 *   Up      32 bytes per add with AVX2, else 16 (any pixel size);
 *   Sub     a prefix sum over five pixels per register (three shifted adds), plus the left
 *           pixel broadcast to all five;
 *   Paeth   where the row above has b == c (the pixel above equals the one above-left), the
 *           predictor is always a (|p - a| = |b - c| = 0 wins every comparison), so stretches
 *           where the row above is flat decode as Sub, five pixels at a time (ten per test of
 *           the row above with AVX2); the remaining pixels take the scalar predictor. Segment
 *           maps are flat almost everywhere.
 *   Average stays scalar (it is rare, and serial through a nonlinear step).
 * Every kernel gives exactly the bytes of the scalar code (tests/unit/test_image.c checks them
 * against each other on random rows of every filter type and width). */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "image/png_impl.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define UNFILTER_X86 1
#else
#define UNFILTER_X86 0
#endif

/* The Paeth predictor of the PNG spec, written as selects so that it compiles branch-free:
 * a (left) wins ties over b (above), b over c (upper left). */
static inline uint8_t paeth(uint8_t a, uint8_t b, uint8_t c) {
    int pa = b - c, pb = a - c, pc;
    pc     = pa + pb;
    pa     = pa < 0 ? -pa : pa;
    pb     = pb < 0 ? -pb : pb;
    pc     = pc < 0 ? -pc : pc;
    return pa <= pb ? (pa <= pc ? a : c) : (pb <= pc ? b : c);
}

/* dst[i] = a[i] + b[i] (mod 256) for i < n, eight bytes at a time in plain integers (lanes
 * kept apart by adding the low seven bits and fixing the top bit). */
static inline void add_bytes(uint8_t *restrict dst, const uint8_t *restrict a,
                             const uint8_t *restrict b, size_t n) {
    const uint64_t LOW7 = 0x7f7f7f7f7f7f7f7full, HIGH = 0x8080808080808080ull;
    size_t         i    = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t x, y;
        memcpy(&x, a + i, 8);
        memcpy(&y, b + i, 8);
        uint64_t z = ((x & LOW7) + (y & LOW7)) ^ ((x ^ y) & HIGH);
        memcpy(dst + i, &z, 8);
    }
    for (; i < n; i++) dst[i] = (uint8_t)(a[i] + b[i]);
}

/* The portable code: src holds the n filtered bytes, prev the row above already unfiltered
 * (NULL on the first row, which PNG treats as zeros). Inlined with a constant bpp. */
static inline __attribute__((always_inline)) void
unfilter_scalar(uint8_t *restrict dst, const uint8_t *restrict src, const uint8_t *restrict prev,
                size_t n, size_t bpp, int filter) {
    size_t i;
    switch (filter) {
    case 0: /* None */
        memcpy(dst, src, n);
        break;
    case 1: { /* Sub; the left pixel stays in registers (bpp is a constant) */
        uint8_t left[8];
        for (i = 0; i < bpp; i++) left[i] = dst[i] = src[i];
        for (; i < n; i += bpp)
#pragma GCC unroll 8
            for (size_t k = 0; k < bpp; k++) left[k] = dst[i + k] = (uint8_t)(src[i + k] + left[k]);
        break;
    }
    case 2: /* Up */
        if (!prev) memcpy(dst, src, n);
        else add_bytes(dst, src, prev, n);
        break;
    case 3: /* Average */
        if (!prev) {
            for (i = 0; i < bpp; i++) dst[i] = src[i];
            for (; i < n; i++) dst[i] = (uint8_t)(src[i] + (dst[i - bpp] >> 1));
        } else {
            for (i = 0; i < bpp; i++) dst[i] = (uint8_t)(src[i] + (prev[i] >> 1));
            for (; i < n; i++) dst[i] = (uint8_t)(src[i] + ((dst[i - bpp] + prev[i]) >> 1));
        }
        break;
    default: /* Paeth; on the first row the predictor is always the left neighbour (Sub) */
        if (!prev) {
            for (i = 0; i < bpp; i++) dst[i] = src[i];
            for (; i < n; i++) dst[i] = (uint8_t)(src[i] + dst[i - bpp]);
        } else {
            uint8_t left[8], upleft[8];
            for (i = 0; i < bpp; i++) {
                left[i]   = dst[i] = (uint8_t)(src[i] + prev[i]);
                upleft[i] = prev[i];
            }
            for (; i < n; i += bpp)
#pragma GCC unroll 8
                for (size_t k = 0; k < bpp; k++) {
                    uint8_t up = prev[i + k];
                    left[k] = dst[i + k] = (uint8_t)(src[i + k] + paeth(left[k], up, upleft[k]));
                    upleft[k] = up;
                }
        }
        break;
    }
}

static void unfilter_scalar_any(uint8_t *restrict dst, const uint8_t *restrict src,
                                const uint8_t *restrict prev, size_t n, size_t bpp, int filter) {
    switch (bpp) { /* a constant stride per case lets the compiler specialise the loops */
    case 1: unfilter_scalar(dst, src, prev, n, 1, filter); break;
    case 2: unfilter_scalar(dst, src, prev, n, 2, filter); break;
    case 3: unfilter_scalar(dst, src, prev, n, 3, filter); break;
    case 4: unfilter_scalar(dst, src, prev, n, 4, filter); break;
    case 6: unfilter_scalar(dst, src, prev, n, 6, filter); break;
    default: unfilter_scalar(dst, src, prev, n, 8, filter); break;
    }
}

#if UNFILTER_X86

#define SSSE3 __attribute__((target("ssse3")))

/* Prefix sum of the five 3-byte pixels in bytes 0..14 (byte 15 holds a partial sum). */
static inline SSSE3 __m128i prefix5(__m128i x) {
    x = _mm_add_epi8(x, _mm_slli_si128(x, 3));
    x = _mm_add_epi8(x, _mm_slli_si128(x, 6));
    return _mm_add_epi8(x, _mm_slli_si128(x, 12));
}

/* The pixel in bytes 12..14 of x (or 0..2 with BCAST0) repeated over the register. */
static inline SSSE3 __m128i bcast_last(__m128i x) {
    return _mm_shuffle_epi8(x, _mm_setr_epi8(12, 13, 14, 12, 13, 14, 12, 13, 14, 12, 13, 14, 12,
                                             13, 14, 12));
}
static inline SSSE3 __m128i bcast_first(__m128i x) {
    return _mm_shuffle_epi8(x, _mm_setr_epi8(0, 1, 2, 0, 1, 2, 0, 1, 2, 0, 1, 2, 0, 1, 2, 0));
}

/* The already decoded pixel dst[-3..-1], repeated (reads dst[-4], also decoded, when i >= 4;
 * otherwise only the first pixel exists). */
static inline SSSE3 __m128i left_pixel(const uint8_t *row, size_t i) {
    uint32_t v;
    if (i >= 4) {
        memcpy(&v, row + i - 4, 4);
        v >>= 8;
    } else {
        v = (uint32_t)row[0] | (uint32_t)row[1] << 8 | (uint32_t)row[2] << 16;
    }
    return bcast_first(_mm_cvtsi32_si128((int)v));
}

static SSSE3 void up_ssse3(uint8_t *restrict dst, const uint8_t *restrict src,
                           const uint8_t *restrict prev, size_t n) {
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m128i x = _mm_loadu_si128((const __m128i *)(const void *)(src + i));
        __m128i y = _mm_loadu_si128((const __m128i *)(const void *)(prev + i));
        _mm_storeu_si128((__m128i *)(void *)(dst + i), _mm_add_epi8(x, y));
    }
    for (; i < n; i++) dst[i] = (uint8_t)(src[i] + prev[i]);
}

/* Sub for 3-byte pixels; dst[0..2] is already decoded. Five pixels per step; each 16-byte
 * store also writes the next step's first byte, which that step rewrites. */
static SSSE3 void sub3_ssse3(uint8_t *restrict dst, const uint8_t *restrict src, size_t n) {
    size_t i = 3;
    if (i + 16 <= n) {
        __m128i carry = left_pixel(dst, i);
        for (; i + 16 <= n; i += 15) {
            __m128i x = prefix5(_mm_loadu_si128((const __m128i *)(const void *)(src + i)));
            x         = _mm_add_epi8(x, carry);
            _mm_storeu_si128((__m128i *)(void *)(dst + i), x);
            carry = bcast_last(x);
        }
    }
    for (; i < n; i++) dst[i] = (uint8_t)(src[i] + dst[i - 3]);
}

/* One step of Paeth for 3-byte pixels from byte i (i + 16 <= n): five pixels where the row
 * above is flat (b == c) decode as Sub; otherwise Sub up to the first pixel with b != c, then
 * that pixel with the predictor. carry: the left pixel repeated, when *have_carry. */
static inline SSSE3 void paeth3_step(uint8_t *restrict dst, const uint8_t *restrict src,
                                     const uint8_t *restrict prev, size_t *pi, __m128i *carry,
                                     bool *have_carry) {
    size_t   i = *pi;
    __m128i  b = _mm_loadu_si128((const __m128i *)(const void *)(prev + i));
    __m128i  c = _mm_loadu_si128((const __m128i *)(const void *)(prev + i - 3));
    unsigned m = (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(b, c)) & 0x7fffu;
    if (m == 0x7fffu) {
        if (!*have_carry) *carry = left_pixel(dst, i);
        __m128i x = prefix5(_mm_loadu_si128((const __m128i *)(const void *)(src + i)));
        x         = _mm_add_epi8(x, *carry);
        _mm_storeu_si128((__m128i *)(void *)(dst + i), x);
        *carry      = bcast_last(x);
        *have_carry = true;
        *pi         = i + 15;
        return;
    }
    size_t k   = (size_t)__builtin_ctz(~m & 0x7fffu) / 3;
    size_t end = i + 3 * k;
    for (; i < end; i++) dst[i] = (uint8_t)(src[i] + dst[i - 3]);
    for (size_t e = i + 3; i < e; i++)
        dst[i] = (uint8_t)(src[i] + paeth(dst[i - 3], prev[i], prev[i - 3]));
    *have_carry = false;
    *pi         = i;
}

/* Paeth for 3-byte pixels with a row above; dst[0..2] is already decoded. */
static SSSE3 void paeth3_ssse3(uint8_t *restrict dst, const uint8_t *restrict src,
                               const uint8_t *restrict prev, size_t n) {
    size_t  i          = 3;
    __m128i carry      = _mm_setzero_si128();
    bool    have_carry = false;
    while (i + 16 <= n) paeth3_step(dst, src, prev, &i, &carry, &have_carry);
    for (; i < n; i++) dst[i] = (uint8_t)(src[i] + paeth(dst[i - 3], prev[i], prev[i - 3]));
}

/* The same with AVX2: one 32-byte test of the row above covers ten pixels (two Sub steps). */
__attribute__((target("avx2"))) static void paeth3_avx2(uint8_t *restrict dst,
                                                         const uint8_t *restrict src,
                                                         const uint8_t *restrict prev,
                                                         size_t n) {
    size_t  i          = 3;
    __m128i carry      = _mm_setzero_si128();
    bool    have_carry = false;
    while (i + 35 <= n) {
        __m256i  b = _mm256_loadu_si256((const __m256i *)(const void *)(prev + i));
        __m256i  c = _mm256_loadu_si256((const __m256i *)(const void *)(prev + i - 3));
        unsigned m = (unsigned)_mm256_movemask_epi8(_mm256_cmpeq_epi8(b, c)) & 0x3fffffffu;
        if (m != 0x3fffffffu) {
            paeth3_step(dst, src, prev, &i, &carry, &have_carry);
            continue;
        }
        if (!have_carry) carry = left_pixel(dst, i);
        __m128i x = prefix5(_mm_loadu_si128((const __m128i *)(const void *)(src + i)));
        x         = _mm_add_epi8(x, carry);
        _mm_storeu_si128((__m128i *)(void *)(dst + i), x);
        __m128i y = prefix5(_mm_loadu_si128((const __m128i *)(const void *)(src + i + 15)));
        y         = _mm_add_epi8(y, bcast_last(x));
        _mm_storeu_si128((__m128i *)(void *)(dst + i + 15), y);
        carry      = bcast_last(y);
        have_carry = true;
        i += 30;
    }
    while (i + 16 <= n) paeth3_step(dst, src, prev, &i, &carry, &have_carry);
    for (; i < n; i++) dst[i] = (uint8_t)(src[i] + paeth(dst[i - 3], prev[i], prev[i - 3]));
}

__attribute__((target("avx2"))) static void up_avx2(uint8_t *restrict dst,
                                                     const uint8_t *restrict src,
                                                     const uint8_t *restrict prev, size_t n) {
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        __m256i x = _mm256_loadu_si256((const __m256i *)(const void *)(src + i));
        __m256i y = _mm256_loadu_si256((const __m256i *)(const void *)(prev + i));
        _mm256_storeu_si256((__m256i *)(void *)(dst + i), _mm256_add_epi8(x, y));
    }
    up_ssse3(dst + i, src + i, prev + i, n - i);
}

/* 0: no vector kernels, 1: SSSE3, 2: SSSE3 and AVX2. */
static int simd_level(void) {
    static int level = -1; /* benign race: every thread computes the same value */
    int        v     = __atomic_load_n(&level, __ATOMIC_RELAXED);
    if (v < 0) {
        __builtin_cpu_init();
        v = !__builtin_cpu_supports("ssse3") ? 0 : __builtin_cpu_supports("avx2") ? 2 : 1;
        __atomic_store_n(&level, v, __ATOMIC_RELAXED);
    }
    return v;
}

/* True when a vector kernel did the row. */
static bool unfilter_simd(uint8_t *restrict dst, const uint8_t *restrict src,
                          const uint8_t *restrict prev, size_t n, size_t bpp, int filter,
                          int max_level) {
    int level = simd_level();
    if (level > max_level) level = max_level;
    if (level == 0) return false;
    if (filter == 2 && prev) {
        if (level == 2) up_avx2(dst, src, prev, n);
        else up_ssse3(dst, src, prev, n);
        return true;
    }
    if (bpp != 3 || (filter != 1 && filter != 4)) return false;
    if (filter == 1 || !prev) { /* Paeth on the first row is Sub */
        memcpy(dst, src, 3);
        sub3_ssse3(dst, src, n);
    } else {
        for (int k = 0; k < 3; k++) dst[k] = (uint8_t)(src[k] + prev[k]);
        if (level == 2) paeth3_avx2(dst, src, prev, n);
        else paeth3_ssse3(dst, src, prev, n);
    }
    return true;
}
#endif /* UNFILTER_X86 */

void iseg__png_unfilter_row(uint8_t *restrict dst, const uint8_t *restrict src,
                            const uint8_t *restrict prev, size_t n, size_t bpp, int filter,
                            int simd) {
#if UNFILTER_X86
    if (simd > 0 && unfilter_simd(dst, src, prev, n, bpp, filter, simd)) return;
#else
    (void)simd;
#endif
    unfilter_scalar_any(dst, src, prev, n, bpp, filter);
}
