/* pq_image.c - Panoptic Quality of one image: PNG decode, (gt, pred) pair counts, boundary
 * bands, matching and the false positive / negative rules.
 *
 * ref: panopticapi/evaluation.py pq_compute_single_core; boundary-iou-api
 * boundary_iou/coco_panoptic_api/evaluation.py (Boundary PQ). The reference counts pairs with
 * np.unique over gt * 2^24 + pred; here pairs are counted run by run in a hash table and then
 * sorted, which gives the same ascending (gt_id, pred_id) order for the IoU sums.
 *
 * One pass over the rows (scan_rows): the two PNGs are read row by row in step (png_impl.h)
 * and each row pair is counted while hot in cache, run by run (AVX2 finds the run ends where
 * the CPU has it): RGB rows straight from the pixels, else as rows of ids. With --boundary the
 * id rows of the last d + 1 rows are kept and each boundary row is made and counted d rows
 * behind (a pixel's interior test needs d rows below it). The rare PNG the fast reader does
 * not take is decoded whole and then read the same way. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "iseg/image.h"
#include "iseg/mask.h"
#include "panoptic/pq_impl.h"

#if defined(__x86_64__)
#include <immintrin.h>
#define PQ_X86 1
#else
#define PQ_X86 0
#endif

#define ISEG_LITTLE_ENDIAN (__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__)

struct pq_pair {
    uint64_t key; /* gt_id << 32 | pred_id */
    uint64_t cnt;
};

/* ---- scratch ---- */

/* Id maps for h rows of w (h = 1 without boundaries) and the per-row buffers. */
static bool scratch_reserve(struct pq_scratch *s, size_t npx, size_t w) {
    if (npx > s->cap_px) {
        uint32_t *a = iseg__realloc_array(s->gt, npx, sizeof(uint32_t));
        if (a) s->gt = a;
        uint32_t *b = a ? iseg__realloc_array(s->pred, npx, sizeof(uint32_t)) : NULL;
        if (b) s->pred = b;
        if (!b) return false;
        s->cap_px = npx;
    }
    if (w > s->cap_w) {
        uint8_t *f = iseg__realloc_array(s->flag, w, 2);
        if (f) s->flag = f;
        uint32_t *c = f ? iseg__realloc_array(s->cnt, w, 2 * sizeof(uint32_t)) : NULL;
        if (c) s->cnt = c;
        uint32_t *r = c ? iseg__realloc_array(s->brow, w, 2 * sizeof(uint32_t)) : NULL;
        if (r) s->brow = r;
        uint32_t *st = r ? iseg__realloc_array(s->starts, w + 1, 2 * sizeof(uint32_t)) : NULL;
        if (st) s->starts = st;
        if (!st) return false;
        s->cap_w = w;
    }
    return true;
}

/* Whole boundary maps, for a marker segment only. */
static bool scratch_reserve_b(struct pq_scratch *s, size_t npx) {
    if (npx > s->cap_b) {
        uint32_t *a = iseg__realloc_array(s->gt_b, npx, sizeof(uint32_t));
        if (a) s->gt_b = a;
        uint32_t *b = a ? iseg__realloc_array(s->pred_b, npx, sizeof(uint32_t)) : NULL;
        if (b) s->pred_b = b;
        if (!b) return false;
        s->cap_b = npx;
    }
    return true;
}

void iseg__pq_scratch_free(struct pq_scratch *s) {
    if (!s) return;
    iseg__free(s->gt);
    iseg__free(s->pred);
    iseg__free(s->gt_b);
    iseg__free(s->pred_b);
    iseg__free(s->brow);
    iseg__free(s->starts);
    iseg__free(s->flag);
    iseg__free(s->cnt);
    iseg__free(s->pairs.key);
    iseg__free(s->pairs.val);
    iseg__free(s->bpairs.key);
    iseg__free(s->bpairs.val);
    iseg__png_rows_free(&s->png[0]);
    iseg__png_rows_free(&s->png[1]);
    iseg__buf_free(&s->file);
    memset(s, 0, sizeof(*s));
}

/* ---- pair counting: open addressing, a zero count marks an empty slot ---- */

static inline size_t hslot(uint64_t k, size_t mask) {
    return (size_t)((k * 0x9E3779B97F4A7C15ull) >> 32) & mask;
}

static bool hash_reset(struct pq_hash *h) {
    if (!h->key) {
        h->cap = 1024;
        h->key = iseg__malloc_array(h->cap, sizeof(uint64_t));
        h->val = h->key ? iseg__calloc(h->cap, sizeof(uint64_t)) : NULL;
        if (!h->val) {
            iseg__free(h->key);
            h->key = NULL;
            return false;
        }
    } else {
        memset(h->val, 0, h->cap * sizeof(uint64_t));
    }
    h->n = 0;
    return true;
}

static bool hash_grow(struct pq_hash *h) {
    size_t    cap  = 2 * h->cap;
    uint64_t *keys = iseg__malloc_array(cap, sizeof(uint64_t));
    uint64_t *vals = keys ? iseg__calloc(cap, sizeof(uint64_t)) : NULL;
    if (!vals) {
        iseg__free(keys);
        return false;
    }
    for (size_t i = 0; i < h->cap; i++) {
        if (!h->val[i]) continue;
        size_t j = hslot(h->key[i], cap - 1);
        while (vals[j]) j = (j + 1) & (cap - 1);
        keys[j] = h->key[i];
        vals[j] = h->val[i];
    }
    iseg__free(h->key);
    iseg__free(h->val);
    h->key = keys;
    h->val = vals;
    h->cap = cap;
    return true;
}

static inline bool hash_add(struct pq_hash *h, uint64_t k, uint64_t n) {
    if (2 * (h->n + 1) > h->cap && !hash_grow(h)) return false;
    size_t j = hslot(k, h->cap - 1);
    while (h->val[j] && h->key[j] != k) j = (j + 1) & (h->cap - 1);
    if (!h->val[j]) {
        h->key[j] = k;
        h->n++;
    }
    h->val[j] += n;
    return true;
}

static int cmp_pair(const void *a, const void *b) {
    uint64_t x = ((const struct pq_pair *)a)->key, y = ((const struct pq_pair *)b)->key;
    return x < y ? -1 : x > y;
}

/* The table's pairs as a new array sorted by key. */
static bool hash_sorted(const struct pq_hash *h, struct pq_pair **out, size_t *n_out) {
    *out   = NULL;
    *n_out = 0;
    struct pq_pair *p = iseg__malloc_array(h->n + 1, sizeof(*p));
    if (!p) return false;
    size_t m = 0;
    for (size_t i = 0; i < h->cap; i++)
        if (h->val[i]) p[m++] = (struct pq_pair){h->key[i], h->val[i]};
    qsort(p, m, sizeof(*p), cmp_pair);
    *out   = p;
    *n_out = m;
    return true;
}

/* ---- segment lookup: (id, position) sorted by id ---- */

struct id_pos {
    int64_t id;
    size_t  pos;
};

static int cmp_id_pos(const void *a, const void *b) {
    int64_t x = ((const struct id_pos *)a)->id, y = ((const struct id_pos *)b)->id;
    return x < y ? -1 : x > y;
}

static struct id_pos *index_segs(const struct pq_seg *segs, size_t n) {
    struct id_pos *ix = iseg__malloc_array(n + 1, sizeof(*ix));
    if (!ix) return NULL;
    for (size_t i = 0; i < n; i++) ix[i] = (struct id_pos){segs[i].id, i};
    qsort(ix, n, sizeof(*ix), cmp_id_pos);
    return ix;
}

/* Position of id in segments_info, or SIZE_MAX. */
static size_t find_seg(const struct id_pos *ix, size_t n, int64_t id) {
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (ix[mid].id < id) lo = mid + 1;
        else hi = mid;
    }
    return lo < n && ix[lo].id == id ? ix[lo].pos : SIZE_MAX;
}

/* ---- row kernels: ids from pixels, runs of equal (gt, pred) pairs ----
 * Each has a portable body, inlined once as it is and once into an AVX2 function chosen at run
 * time; the explicit vector loops only skip ahead, so both give the same result. */

#if PQ_X86
#define AVX2 __attribute__((target("avx2")))
static bool have_avx2(void) {
    static int ok = -1; /* benign race: every thread computes the same value */
    int        v  = __atomic_load_n(&ok, __ATOMIC_RELAXED);
    if (v < 0) {
        __builtin_cpu_init();
        v = __builtin_cpu_supports("avx2") ? 1 : 0;
        __atomic_store_n(&ok, v, __ATOMIC_RELAXED);
    }
    return v;
}
#endif

#if PQ_X86
/* ids of 8-bit RGB pixels, eight from 24 bytes: two 16-byte loads 12 bytes apart (the second
 * ends at byte 27 of 3 w), one byte shuffle into 32-bit lanes. Returns the pixels done. */
static inline AVX2 uint32_t ids3_avx2(const uint8_t *restrict px, uint32_t w,
                                      uint32_t *restrict out) {
    const __m256i SH = _mm256_setr_epi8(0, 1, 2, -1, 3, 4, 5, -1, 6, 7, 8, -1, 9, 10, 11, -1, 0,
                                        1, 2, -1, 3, 4, 5, -1, 6, 7, 8, -1, 9, 10, 11, -1);
    uint32_t x = 0;
    for (; 3 * (size_t)x + 28 <= 3 * (size_t)w; x += 8) {
        __m128i lo = _mm_loadu_si128((const __m128i *)(const void *)(px + 3 * (size_t)x));
        __m128i hi = _mm_loadu_si128((const __m128i *)(const void *)(px + 3 * (size_t)x + 12));
        __m256i v  = _mm256_inserti128_si256(_mm256_castsi128_si256(lo), hi, 1);
        _mm256_storeu_si256((__m256i *)(void *)(out + x), _mm256_shuffle_epi8(v, SH));
    }
    return x;
}

/* Skip x ahead, eight at a time, while (g, p) == (gv, pv): stops at the first pixel that
 * differs, or with fewer than eight left. */
static inline AVX2 uint32_t skip_run_avx2(const uint32_t *g, const uint32_t *p, uint32_t x,
                                          uint32_t w, uint32_t gv, uint32_t pv) {
    __m256i G = _mm256_set1_epi32((int)gv), P = _mm256_set1_epi32((int)pv);
    for (; x + 8 <= w; x += 8) {
        __m256i a  = _mm256_loadu_si256((const __m256i *)(const void *)(g + x));
        __m256i b  = _mm256_loadu_si256((const __m256i *)(const void *)(p + x));
        __m256i eq = _mm256_and_si256(_mm256_cmpeq_epi32(a, G), _mm256_cmpeq_epi32(b, P));
        unsigned m = (unsigned)_mm256_movemask_ps(_mm256_castsi256_ps(eq));
        if (m != 0xffu) return x + (uint32_t)__builtin_ctz(~m);
    }
    return x;
}

/* Skip pixel x ahead, about ten at a time, while the 8-bit RGB pixels of both rows equal their
 * left neighbours (bytes compared with the bytes three before). Stops at the pixel holding the
 * first byte that differs, or with fewer than 32 bytes left. x >= 1. */
static inline AVX2 uint32_t skip_rgb_avx2(const uint8_t *g, const uint8_t *p, uint32_t x,
                                          uint32_t w) {
    size_t j = 3 * (size_t)x, n = 3 * (size_t)w;
    for (; j + 32 <= n; j += 32) {
        __m256i a  = _mm256_loadu_si256((const __m256i *)(const void *)(g + j));
        __m256i al = _mm256_loadu_si256((const __m256i *)(const void *)(g + j - 3));
        __m256i b  = _mm256_loadu_si256((const __m256i *)(const void *)(p + j));
        __m256i bl = _mm256_loadu_si256((const __m256i *)(const void *)(p + j - 3));
        unsigned m = (unsigned)_mm256_movemask_epi8(
            _mm256_and_si256(_mm256_cmpeq_epi8(a, al), _mm256_cmpeq_epi8(b, bl)));
        if (m != 0xffffffffu) return (uint32_t)((j + (size_t)__builtin_ctz(~m)) / 3);
    }
    return (uint32_t)(j / 3);
}

/* The counter update of band_body, eight pixels a time (lrow NULL: counters only). Returns
 * the pixels done. */
static inline AVX2 uint32_t band_avx2_loop(uint32_t *restrict cnt, const uint8_t *restrict flag,
                                           const uint32_t *restrict row,
                                           const uint32_t *restrict up,
                                           const uint32_t *restrict lrow,
                                           uint32_t *restrict bout, uint32_t w, uint32_t span,
                                           uint32_t mark) {
    const __m256i ONE = _mm256_set1_epi32(1), LIM = _mm256_set1_epi32((int)(span - 1));
    const __m256i MARK = _mm256_set1_epi32((int)mark);
    uint32_t      x    = 0;
    for (; x + 8 <= w; x += 8) {
        int64_t f8;
        memcpy(&f8, flag + x, 8);
        __m256i f    = _mm256_cvtepi8_epi32(_mm_cvtsi64_si128(f8));
        __m256i same = _mm256_cmpeq_epi32(
            _mm256_loadu_si256((const __m256i *)(const void *)(row + x)),
            _mm256_loadu_si256((const __m256i *)(const void *)(up + x)));
        __m256i c = _mm256_loadu_si256((const __m256i *)(const void *)(cnt + x));
        c = _mm256_and_si256(_mm256_add_epi32(_mm256_and_si256(c, same), ONE), f);
        _mm256_storeu_si256((__m256i *)(void *)(cnt + x), c);
        if (lrow) {
            /* counts stay below 2^31 (rows), so a signed compare does */
            __m256i in = _mm256_cmpgt_epi32(c, LIM);
            __m256i l  = _mm256_loadu_si256((const __m256i *)(const void *)(lrow + x));
            _mm256_storeu_si256((__m256i *)(void *)(bout + x), _mm256_blendv_epi8(l, MARK, in));
        }
    }
    return x;
}
#endif

/* R + 256 G + 256^2 B of 8-bit colour, the sample itself for gray (c = 1 or 2): w ids. */
static inline __attribute__((always_inline)) void
ids_body(const uint8_t *restrict px, uint32_t c, uint32_t w, uint32_t *restrict out, bool avx2) {
    uint32_t x = 0;
    if (c == 3) {
#if PQ_X86
        if (avx2) x = ids3_avx2(px, w, out);
#else
        (void)avx2;
#endif
        for (; x < w; x++)
            out[x] = (uint32_t)px[3 * x] | (uint32_t)px[3 * x + 1] << 8 |
                     (uint32_t)px[3 * x + 2] << 16;
    } else if (c == 4) {
        /* alpha ignored, as the reference's rgb2id reads channels 0..2 */
        for (; x < w; x++) {
            uint32_t v;
            memcpy(&v, px + 4 * (size_t)x, sizeof(v));
            out[x] = ISEG_LITTLE_ENDIAN ? v & 0xffffffu
                                        : (uint32_t)px[4 * x] | (uint32_t)px[4 * x + 1] << 8 |
                                              (uint32_t)px[4 * x + 2] << 16;
        }
    } else {
        for (; x < w; x++) out[x] = px[(size_t)x * c];
    }
}

/* First x' > x with (g[x'], p[x']) != (g[x], p[x]), or w. */
static inline __attribute__((always_inline)) uint32_t
run_end(const uint32_t *g, const uint32_t *p, uint32_t x, uint32_t w, bool avx2) {
    uint32_t gv = g[x], pv = p[x];
    x++;
#if PQ_X86
    if (avx2) x = skip_run_avx2(g, p, x, w, gv, pv);
#else
    (void)avx2;
#endif
    while (x < w && g[x] == gv && p[x] == pv) x++;
    return x;
}

/* One map's state for its boundary rows (see boundary_map below for the rule). */
struct band {
    const struct id_pos *ix; /* the map's segments */
    size_t               n_ix;
    uint8_t             *flag; /* (w) this row's horizontal interior flags */
    uint32_t            *cnt;  /* (w) rows up to this one flagged with the same id */
    uint32_t            *bout; /* (w) the boundary row made */
    uint32_t            *start; /* (w + 1) this row's run starts, then w */
    uint32_t             n_start;
    bool                 have_last, last_seg;
    uint32_t             last;
};

/* Add the runs of (g[x], p[x]) over x < w to the table. With bg and bp, also list the runs
 * of g and of p alone (every such run starts where a pair run does). */
static inline __attribute__((always_inline)) bool
count_row_body(struct pq_hash *h, const uint32_t *g, const uint32_t *p, uint32_t w,
               struct band *bg, struct band *bp, bool avx2) {
    uint32_t gprev = ~g[0], pprev = ~p[0], ng = 0, np = 0;
    for (uint32_t x = 0; x < w;) {
        uint32_t gv = g[x], pv = p[x];
        if (bg) { /* branch-free appends */
            bg->start[ng] = x;
            ng += gv != gprev;
            bp->start[np] = x;
            np += pv != pprev;
            gprev = gv;
            pprev = pv;
        }
        uint32_t e = run_end(g, p, x, w, avx2);
        if (!hash_add(h, (uint64_t)gv << 32 | pv, e - x)) return false;
        x = e;
    }
    if (bg) {
        bg->start[ng] = w;
        bg->n_start   = ng;
        bp->start[np] = w;
        bp->n_start   = np;
    }
    return true;
}

static inline uint32_t rgb_id(const uint8_t *px) {
    return (uint32_t)px[0] | (uint32_t)px[1] << 8 | (uint32_t)px[2] << 16;
}

static inline bool same_rgb(const uint8_t *a, const uint8_t *b) {
    return a[0] == b[0] && a[1] == b[1] && a[2] == b[2];
}

/* count_row_body straight from two rows of 8-bit RGB pixels: ids only at run starts. */
static inline __attribute__((always_inline)) bool
count_rgb_body(struct pq_hash *h, const uint8_t *g, const uint8_t *p, uint32_t w, bool avx2) {
    for (uint32_t x = 0; x < w;) {
        uint32_t e = x + 1;
#if PQ_X86
        if (avx2) e = skip_rgb_avx2(g, p, e, w);
#else
        (void)avx2;
#endif
        while (e < w && same_rgb(g + 3 * (size_t)e, g + 3 * (size_t)e - 3) &&
               same_rgb(p + 3 * (size_t)e, p + 3 * (size_t)e - 3))
            e++;
        uint64_t key = (uint64_t)rgb_id(g + 3 * (size_t)x) << 32 | rgb_id(p + 3 * (size_t)x);
        if (!hash_add(h, key, e - x)) return false;
        x = e;
    }
    return true;
}

/* Row y of a map (up: row y - 1, or row itself when y = 0; its runs in b->start): update the
 * flags and counters,
 * and when lrow (row y - d) is given, write it to b->bout with its interior pixels set to
 * mark. Segment lookups are cached across runs of the same id. */
static inline __attribute__((always_inline)) void
band_body(struct band *b, const uint32_t *restrict row, const uint32_t *restrict up,
          const uint32_t *restrict lrow, uint32_t w, uint32_t d, uint32_t span, uint32_t mark,
          bool avx2) {
    uint8_t *restrict flag = b->flag;
    uint32_t *restrict cnt = b->cnt, *restrict bout = b->bout;
    /* flag = 0xff inside a segment's horizontal run, at least d pixels from its ends */
    memset(flag, 0, w);
    for (uint32_t k = 0; k < b->n_start; k++) {
        uint32_t a = b->start[k], x = b->start[k + 1], v = row[a];
        if (!b->have_last || v != b->last) {
            b->last      = v;
            b->last_seg  = find_seg(b->ix, b->n_ix, v) != SIZE_MAX;
            b->have_last = true;
        }
        if (b->last_seg && (uint64_t)a + 2 * (uint64_t)d < x)
            memset(flag + a + d, 0xff, x - a - 2 * d);
    }
    /* cnt = flagged ? (same id as the row above ? cnt + 1 : 1) : 0, in masks */
    uint32_t x = 0;
#if PQ_X86
    if (avx2) x = band_avx2_loop(cnt, flag, row, up, lrow, bout, w, span, mark);
#endif
    for (; x < w; x++) {
        uint32_t f    = (uint32_t)(int32_t)(int8_t)flag[x];
        uint32_t same = 0u - (uint32_t)(row[x] == up[x]);
        uint32_t k    = ((cnt[x] & same) + 1) & f;
        cnt[x]        = k;
        if (lrow) bout[x] = k >= span ? mark : lrow[x];
    }
}

static void ids_scalar(const uint8_t *px, uint32_t c, uint32_t w, uint32_t *out) {
    ids_body(px, c, w, out, false);
}
static bool count_row_scalar(struct pq_hash *h, const uint32_t *g, const uint32_t *p,
                             uint32_t w, struct band *bg, struct band *bp) {
    return count_row_body(h, g, p, w, bg, bp, false);
}
static bool count_rgb_scalar(struct pq_hash *h, const uint8_t *g, const uint8_t *p,
                             uint32_t w) {
    return count_rgb_body(h, g, p, w, false);
}
static void band_scalar(struct band *b, const uint32_t *row, const uint32_t *up,
                        const uint32_t *lrow, uint32_t w, uint32_t d, uint32_t span,
                        uint32_t mark) {
    band_body(b, row, up, lrow, w, d, span, mark, false);
}
#if PQ_X86
static AVX2 void ids_avx2(const uint8_t *px, uint32_t c, uint32_t w, uint32_t *out) {
    ids_body(px, c, w, out, true);
}
static AVX2 bool count_row_avx2(struct pq_hash *h, const uint32_t *g, const uint32_t *p,
                                uint32_t w, struct band *bg, struct band *bp) {
    return count_row_body(h, g, p, w, bg, bp, true);
}
static AVX2 bool count_rgb_avx2(struct pq_hash *h, const uint8_t *g, const uint8_t *p,
                                uint32_t w) {
    return count_rgb_body(h, g, p, w, true);
}
static AVX2 void band_avx2(struct band *b, const uint32_t *row, const uint32_t *up,
                           const uint32_t *lrow, uint32_t w, uint32_t d, uint32_t span,
                           uint32_t mark) {
    band_body(b, row, up, lrow, w, d, span, mark, true);
}
#endif

/* The kernels for this CPU. */
struct row_ops {
    void (*ids)(const uint8_t *px, uint32_t c, uint32_t w, uint32_t *out);
    bool (*count)(struct pq_hash *h, const uint32_t *g, const uint32_t *p, uint32_t w,
                  struct band *bg, struct band *bp);
    bool (*count_rgb)(struct pq_hash *h, const uint8_t *g, const uint8_t *p, uint32_t w);
    void (*band)(struct band *b, const uint32_t *row, const uint32_t *up, const uint32_t *lrow,
                 uint32_t w, uint32_t d, uint32_t span, uint32_t mark);
};

bool iseg__pq_force_scalar = false;

static struct row_ops row_ops(void) {
#if PQ_X86
    if (!iseg__pq_force_scalar && have_avx2())
        return (struct row_ops){ids_avx2, count_row_avx2, count_rgb_avx2, band_avx2};
#endif
    return (struct row_ops){ids_scalar, count_row_scalar, count_rgb_scalar, band_scalar};
}

static uint64_t pair_get(const struct pq_pair *p, size_t n, uint64_t g, uint64_t q) {
    uint64_t k  = (g << 32) | q;
    size_t   lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (p[mid].key < k) lo = mid + 1;
        else hi = mid;
    }
    return lo < n && p[lo].key == k ? p[lo].cnt : 0;
}

/* ---- PNG -> rows of ids ---- */

/* One PNG being read row by row: through the fast row reader, or decoded whole (img). */
struct id_src {
    struct iseg__png_rows *png; /* NULL: img */
    struct iseg_image      img;
    uint32_t               w, h, y;
};

/* The whole file into b; false on any failure (the PNG reader then reports it). */
static bool slurp(const char *path, struct iseg__buf *b) {
    FILE *f = fopen(path, "rb");
    if (!f) return false;
    struct stat st;
    bool        ok = fstat(fileno(f), &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0;
    if (ok) {
        size_t n = (size_t)st.st_size;
        b->len   = 0;
        /* one byte more than the size, so that reading it whole meets end of file */
        ok = (uint64_t)st.st_size < SIZE_MAX && iseg__buf_reserve(b, n + 1);
        if (ok) {
            b->len = fread(b->data, 1, n + 1, f);
            ok     = b->len == n && !ferror(f);
        }
    }
    fclose(f);
    return ok;
}

/* Open dir/file as source k (0 gt, 1 pred). 16-bit colour is refused: panoptic ids are made
 * of 8-bit samples. */
static enum iseg_status open_ids(const char *dir, const char *file, struct pq_scratch *s, int k,
                                 struct id_src *src, char *path, size_t plen, char *err,
                                 size_t errlen) {
    snprintf(path, plen, "%s%s%s", dir, dir[0] ? "/" : "", file);
    memset(src, 0, sizeof(*src));
    if (slurp(path, &s->file) && iseg__png_rows_open(&s->png[k], s->file.data, s->file.len)) {
        src->png = &s->png[k];
        src->w   = s->png[k].w;
        src->h   = s->png[k].h;
        return ISEG_STATUS_OK;
    }
    enum iseg_status st = iseg_png_read(path, &src->img, err, errlen);
    if (st != ISEG_STATUS_OK) return st;
    if (src->img.c >= 3 && src->img.depth != 8) {
        snprintf(err, errlen, "%s: 16-bit colour PNG: panoptic ids are R + 256 G + 256^2 B of "
                 "8-bit samples", path);
        iseg_image_free(&src->img);
        return ISEG_STATUS_EFORMAT;
    }
    src->w = src->img.w;
    src->h = src->img.h;
    return ISEG_STATUS_OK;
}

/* The next row's ids into out. */
static void src_row(struct id_src *src, const struct row_ops *ops, uint32_t *out) {
    uint32_t w = src->w;
    if (src->png) {
        ops->ids(iseg__png_rows_next(src->png), src->png->c, w, out);
    } else if (src->img.depth == 8) {
        size_t stride = (size_t)w * src->img.c;
        ops->ids((const uint8_t *)src->img.data + src->y * stride, src->img.c, w, out);
    } else { /* 16-bit gray or gray+alpha: the sample */
        const uint16_t *px = (const uint16_t *)src->img.data + (size_t)src->y * w * src->img.c;
        for (uint32_t x = 0; x < w; x++) out[x] = px[(size_t)x * src->img.c];
    }
    src->y++;
}

/* ---- boundary id maps ---- */

/* B = L, except that interior pixels of the listed segments (every pixel of their
 * (2d+1)^2 window lies in the image and has the same id) become mark: boundary-iou-api's map,
 * where each segment's inner band of width d keeps its id. A pixel is interior iff the
 * horizontal window around it is uniform in each of the 2d+1 rows around it and the rows
 * agree; a per-row pass finds uniform horizontal windows, and per-column counters of
 * consecutive such rows with equal ids finish the square. This whole-map form is what a
 * marker segment's area needs; scan_rows makes the same rows one at a time (band_body). */
static void boundary_map(const uint32_t *L, uint32_t *B, uint32_t w, uint32_t h, uint32_t d,
                         uint32_t mark, const struct id_pos *ix, size_t n_ix, uint8_t *flag,
                         uint32_t *cnt) {
    size_t npx = (size_t)w * h;
    memcpy(B, L, npx * sizeof(*B));
    memset(cnt, 0, (size_t)w * sizeof(*cnt));
    uint64_t span = 2 * (uint64_t)d + 1;
    if (span > w || span > h) return; /* no pixel can be interior */
    bool     have_last = false, last_seg = false;
    uint32_t last      = 0;
    for (uint32_t y = 0; y < h; y++) {
        const uint32_t *row = L + (size_t)y * w;
        uint32_t        x   = 0;
        while (x < w) {
            uint32_t a = x, v = row[x];
            while (x < w && row[x] == v) x++;
            if (!have_last || v != last) {
                last      = v;
                last_seg  = find_seg(ix, n_ix, v) != SIZE_MAX;
                have_last = true;
            }
            /* flag = inside a segment's horizontal run, at least d pixels from its ends */
            memset(flag + a, 0, x - a);
            if (last_seg && (uint64_t)a + 2 * (uint64_t)d < x) memset(flag + a + d, 1, x - a - 2 * d);
        }
        /* cnt[x] = how many rows up to this one are flagged with the same id (branch-free so
         * that it vectorises); a pixel d rows up is interior once 2d + 1 rows agree */
        const uint32_t *up = y ? row - w : row;
        for (x = 0; x < w; x++) {
            uint32_t same = (uint32_t)(row[x] == up[x]);
            cnt[x]        = (uint32_t)flag[x] * (1 + same * cnt[x]);
        }
        uint32_t *brow = y >= d ? B + (size_t)(y - d) * w : NULL;
        for (x = 0; x < w; x++)
            if (cnt[x] >= span) brow[x] = mark;
    }
}

/* boundary-iou-api marks interiors with (largest category id + 1) while walking segments_info;
 * a segment whose id equals that marker therefore takes, as its mask, its own pixels plus the
 * interiors of the segments listed before it. Its band area is computed here from that mask
 * (rare: only for a segment id equal to the marker). */
static enum iseg_status marker_segment_area(const uint32_t *L, const uint32_t *B, uint32_t w,
                                            uint32_t h, uint32_t d, uint32_t mark,
                                            const struct id_pos *ix, size_t n_ix, size_t pos,
                                            uint64_t *area) {
    size_t   npx  = (size_t)w * h;
    uint8_t *mask = iseg__malloc(npx ? npx : 1);
    if (!mask) return ISEG_STATUS_ENOMEM;
    for (uint32_t y = 0; y < h; y++)
        for (uint32_t x = 0; x < w; x++) {
            size_t   i = (size_t)y * w + x;
            uint8_t  m = L[i] == mark;
            if (!m && B[i] == mark) m = find_seg(ix, n_ix, L[i]) < pos;
            mask[(size_t)x * h + y] = m; /* column-major for the RLE */
        }
    struct iseg_rle r = {0}, b = {0};
    enum iseg_status st = iseg_rle_encode(&r, mask, h, w);
    iseg__free(mask);
    if (st == ISEG_STATUS_OK) st = iseg_rle_boundary(&b, &r, d);
    if (st == ISEG_STATUS_OK) *area = iseg_rle_area(&b);
    iseg_rle_free(&r);
    iseg_rle_free(&b);
    return st;
}

/* ---- the pass over the rows ---- */

/* Read both maps row by row (w x h) and count their (gt, pred) pairs into s->pairs; with
 * boundaries, count the boundary maps' pairs into s->bpairs too, each boundary row d rows
 * behind. The id rows live in s->gt and s->pred, row y at y % keep: keep = 1 without
 * boundaries, at least d + 1 (and 2) with them, h to keep the whole maps. */
static bool scan_rows(struct pq_scratch *s, struct id_src *gsrc, struct id_src *psrc, uint32_t w,
                      uint32_t h, uint32_t keep, bool boundary, uint32_t d, uint32_t mark,
                      const struct id_pos *gix, size_t ng, const struct id_pos *pix, size_t np) {
    const struct row_ops ops = row_ops();
    if (!hash_reset(&s->pairs) || (boundary && !hash_reset(&s->bpairs))) return false;
    uint64_t    span     = 2 * (uint64_t)d + 1;
    bool        interior = boundary && span <= w && span <= h; /* else no pixel is interior */
    struct band bg       = {.ix = gix, .n_ix = ng, .flag = s->flag, .cnt = s->cnt,
                            .bout = s->brow, .start = s->starts};
    struct band bp       = {.ix = pix, .n_ix = np, .flag = s->flag + w, .cnt = s->cnt + w,
                            .bout = s->brow + w, .start = s->starts + w + 1};
    if (interior) memset(s->cnt, 0, 2 * (size_t)w * sizeof(*s->cnt));
    if (!boundary && gsrc->png && psrc->png && gsrc->png->c == 3 && psrc->png->c == 3) {
        /* the common case needs no id rows at all */
        for (uint32_t y = 0; y < h; y++) {
            const uint8_t *g = iseg__png_rows_next(gsrc->png);
            const uint8_t *p = iseg__png_rows_next(psrc->png);
            if (!ops.count_rgb(&s->pairs, g, p, w)) return false;
        }
        return true;
    }
    for (uint32_t y = 0; y < h; y++) {
        size_t    at = (size_t)(y % keep) * w;
        uint32_t *g = s->gt + at, *p = s->pred + at;
        src_row(gsrc, &ops, g);
        src_row(psrc, &ops, p);
        if (!ops.count(&s->pairs, g, p, w, interior ? &bg : NULL, interior ? &bp : NULL))
            return false;
        if (!interior) { /* the boundary maps are the id maps */
            if (boundary && !ops.count(&s->bpairs, g, p, w, NULL, NULL)) return false;
            continue;
        }
        size_t          up = (size_t)((y ? y - 1 : 0) % keep) * w;
        size_t          lr = y >= d ? (size_t)((y - d) % keep) * w : 0;
        ops.band(&bg, g, s->gt + up, y >= d ? s->gt + lr : NULL, w, d, (uint32_t)span, mark);
        ops.band(&bp, p, s->pred + up, y >= d ? s->pred + lr : NULL, w, d, (uint32_t)span, mark);
        if (y >= d && !ops.count(&s->bpairs, bg.bout, bp.bout, w, NULL, NULL)) return false;
    }
    if (interior) /* the last d rows have no interior pixels */
        for (uint32_t r = h - d; r < h; r++) {
            size_t at = (size_t)(r % keep) * w;
            if (!ops.count(&s->bpairs, s->gt + at, s->pred + at, w, NULL, NULL)) return false;
        }
    return true;
}

/* ---- one image ---- */

struct img_ctx {
    const struct pq_job  *job;
    const struct pq_ann  *ga, *pa;
    struct pq_img_result *res;
    char                  idbuf[80];
    char                  gpath[1024], ppath[1024];
};

__attribute__((format(printf, 4, 5))) static void set_error(struct img_ctx *c,
                                                           enum iseg_status st,
                                                           const char *file, const char *fmt,
                                                           ...) {
    char    msg[600], full[1800];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    snprintf(full, sizeof(full), "%s: image %s: %s", file, c->idbuf, msg);
    c->res->st  = st;
    c->res->err = iseg__strdup(full);
}

/* A PNG reader message "<path>: <what>" becomes "<path>: image <id>: <what>". */
static void png_error(struct img_ctx *c, enum iseg_status st, const char *path,
                      const char *err) {
    size_t n = strlen(path);
    if (strncmp(err, path, n) == 0 && err[n] == ':' && err[n + 1] == ' ') err += n + 2;
    set_error(c, st, path, "%s", err);
}

static void add_event(struct pq_img_result *r, int32_t cat_idx, enum pq_ev_kind kind,
                      double iou) {
    r->ev[r->n_ev++] = (struct pq_event){(uint32_t)cat_idx, (uint32_t)kind, iou};
}

/* Most segment ids listed in a "JSON but not PNG" message. */
#define MAX_LISTED 8

void iseg__pq_image(const struct pq_job *job, size_t i, struct pq_scratch *s,
                    struct pq_img_result *res) {
    struct img_ctx c = {.job = job, .res = res};
    c.ga             = &job->gt->anns[i];
    c.pa             = &job->pred->anns[job->pred_of[i]];
    memset(res, 0, sizeof(*res));
    iseg__pq_imgid_str(&c.ga->image_id, c.idbuf, sizeof(c.idbuf));

    const struct pq_seg *gs = job->gt->segs + c.ga->seg_off, *ps = job->pred->segs + c.pa->seg_off;
    size_t               ng = c.ga->n_seg, np = c.pa->n_seg;
    struct id_pos       *gix = NULL, *pix = NULL;
    struct pq_pair      *pairs = NULL, *bpairs = NULL, *labels = NULL;
    size_t               n_pairs = 0, n_bpairs = 0;
    uint64_t            *parea = NULL, *pvoid = NULL, *gbarea = NULL, *pbarea = NULL;
    uint8_t             *gmatched = NULL, *pmatched = NULL;
    struct { int64_t cat, id; } *crowd = NULL;
    size_t               n_crowd = 0;
    char                 err[700];
    uint32_t             gw, gh, pw, ph, d = 0;
    struct id_src        gsrc = {0}, psrc = {0};
    enum iseg_status     st;

    st = open_ids(job->gt_dir, c.ga->file_name, s, 0, &gsrc, c.gpath, sizeof(c.gpath), err,
                  sizeof(err));
    if (st != ISEG_STATUS_OK) {
        png_error(&c, st, c.gpath, err);
        goto out;
    }
    st = open_ids(job->pred_dir, c.pa->file_name, s, 1, &psrc, c.ppath, sizeof(c.ppath), err,
                  sizeof(err));
    if (st != ISEG_STATUS_OK) {
        png_error(&c, st, c.ppath, err);
        goto out;
    }
    gw = gsrc.w, gh = gsrc.h, pw = psrc.w, ph = psrc.h;
    if (pw != gw || ph != gh) {
        set_error(&c, ISEG_STATUS_ESHAPE, c.ppath, "size %u x %u differs from the ground truth "
                  "%s (%u x %u)", pw, ph, c.gpath, gw, gh);
        goto out;
    }
    /* the ground truth's "images" entry, when it has a usable size, must agree with the PNG */
    const struct pq_file *gf = job->gt;
    size_t lo = 0, hi = gf->n_size;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (iseg__pq_imgid_cmp(&gf->sizes[mid].image_id, &c.ga->image_id) < 0) lo = mid + 1;
        else hi = mid;
    }
    if (lo < gf->n_size && iseg__pq_imgid_cmp(&gf->sizes[lo].image_id, &c.ga->image_id) == 0) {
        const struct pq_size *sz = &gf->sizes[lo];
        bool agree = true; /* entries repeated with different sizes are not checked */
        for (size_t k = lo + 1;
             k < gf->n_size && iseg__pq_imgid_cmp(&gf->sizes[k].image_id, &c.ga->image_id) == 0;
             k++)
            agree &= gf->sizes[k].w == sz->w && gf->sizes[k].h == sz->h;
        if (agree && (sz->w != gw || sz->h != gh)) {
            set_error(&c, ISEG_STATUS_ESHAPE, c.gpath, "size %u x %u differs from the %s "
                      "\"images\" entry (%u x %u)", gw, gh, gf->name, sz->w, sz->h);
            goto out;
        }
    }
    size_t npx = (size_t)gw * gh;
    /* id rows kept: one; with boundaries the d + 1 that the band needs, or the whole maps for
     * a segment whose id is the interior marker (rare, see marker_segment_area) */
    uint32_t keep = 1;
    if (job->boundary) {
        d           = iseg_boundary_dilation(gh, gw, job->dilation_ratio);
        bool marked = false;
        for (size_t k = 0; k < ng; k++) marked |= gs[k].id == (int64_t)job->mark;
        for (size_t k = 0; k < np; k++) marked |= ps[k].id == (int64_t)job->mark;
        keep = d + 1 > 2 ? d + 1 : 2;
        if (marked || keep > gh) keep = gh;
    }
    if (!scratch_reserve(s, (size_t)keep * gw, gw)) {
        set_error(&c, ISEG_STATUS_ENOMEM, c.gpath, "out of memory for a %u x %u image", gw, gh);
        goto out;
    }

    res->ev  = iseg__malloc_array(ng + np + 1, sizeof(*res->ev));
    gix      = index_segs(gs, ng);
    pix      = index_segs(ps, np);
    parea    = iseg__calloc(np + 1, sizeof(*parea));
    pvoid    = iseg__calloc(np + 1, sizeof(*pvoid));
    gbarea   = iseg__calloc(ng + 1, sizeof(*gbarea));
    pbarea   = iseg__calloc(np + 1, sizeof(*pbarea));
    gmatched = iseg__calloc(ng + 1, 1);
    pmatched = iseg__calloc(np + 1, 1);
    crowd    = iseg__malloc_array(ng + 1, sizeof(*crowd));
    if (!res->ev || !gix || !pix || !parea || !pvoid || !gbarea || !pbarea || !gmatched ||
        !pmatched || !crowd)
        goto nomem;
    if (!scan_rows(s, &gsrc, &psrc, gw, gh, keep, job->boundary, d, job->mark, gix, ng, pix, np) ||
        !hash_sorted(&s->pairs, &pairs, &n_pairs) ||
        (job->boundary && !hash_sorted(&s->bpairs, &bpairs, &n_bpairs)))
        goto nomem;

    /* Prediction sanity, in ascending PNG id order as np.unique reports them. */
    labels = iseg__malloc_array(n_pairs + 1, sizeof(*labels));
    if (!labels) goto nomem;
    for (size_t k = 0; k < n_pairs; k++)
        labels[k] = (struct pq_pair){pairs[k].key & 0xffffffffu, pairs[k].cnt};
    qsort(labels, n_pairs, sizeof(*labels), cmp_pair);
    for (size_t k = 0; k < n_pairs;) {
        uint64_t id = labels[k].key, cnt = 0;
        while (k < n_pairs && labels[k].key == id) cnt += labels[k++].cnt;
        size_t j = find_seg(pix, np, (int64_t)id);
        if (j == SIZE_MAX) {
            if (id == 0) continue; /* VOID */
            set_error(&c, ISEG_STATUS_EFORMAT, c.ppath, "segment %llu (RGB %u,%u,%u) is in the "
                      "PNG but not in %s segments_info", (unsigned long long)id,
                      (unsigned)(id & 255), (unsigned)(id >> 8 & 255), (unsigned)(id >> 16 & 255),
                      job->pred->name);
            goto out;
        }
        parea[j] = cnt;
        if (ps[j].cat_idx < 0) {
            set_error(&c, ISEG_STATUS_EFORMAT, job->pred->name, "segment %llu has unknown "
                      "category_id %lld (not in %s categories)", (unsigned long long)id,
                      (long long)ps[j].cat, job->gt->name);
            goto out;
        }
    }
    {
        char   list[200] = "";
        size_t n_missing = 0, len = 0;
        for (size_t j = 0; j < np; j++) {
            if (parea[j]) continue;
            if (n_missing++ < MAX_LISTED && len < sizeof(list))
                len += (size_t)snprintf(list + len, sizeof(list) - len, "%s%lld",
                                        n_missing > 1 ? ", " : "", (long long)ps[j].id);
        }
        if (n_missing) {
            set_error(&c, ISEG_STATUS_EFORMAT, job->pred->name, "segment%s %s%s in "
                      "segments_info but not in the PNG %s", n_missing > 1 ? "s" : "", list,
                      n_missing > MAX_LISTED ? ", ... are" : n_missing > 1 ? " are" : " is",
                      c.ppath);
            goto out;
        }
    }
    /* prediction pixels on ground-truth VOID (gt id 0): the first pairs */
    for (size_t k = 0; k < n_pairs && (pairs[k].key >> 32) == 0; k++) {
        size_t j = find_seg(pix, np, (int64_t)(pairs[k].key & 0xffffffffu));
        if (j != SIZE_MAX) pvoid[j] = pairs[k].cnt;
    }

    if (job->boundary) {
        /* the band areas are marginals of the boundary pair table, interiors included */
        for (size_t k = 0; k < n_bpairs; k++) {
            size_t jg = find_seg(gix, ng, (int64_t)(bpairs[k].key >> 32));
            size_t jp = find_seg(pix, np, (int64_t)(bpairs[k].key & 0xffffffffu));
            if (jg != SIZE_MAX) gbarea[jg] += bpairs[k].cnt;
            if (jp != SIZE_MAX) pbarea[jp] += bpairs[k].cnt;
        }
        size_t g_mark = find_seg(gix, ng, job->mark), p_mark = find_seg(pix, np, job->mark);
        if ((g_mark != SIZE_MAX || p_mark != SIZE_MAX) && !scratch_reserve_b(s, npx)) goto nomem;
        if (g_mark != SIZE_MAX) {
            boundary_map(s->gt, s->gt_b, gw, gh, d, job->mark, gix, ng, s->flag, s->cnt);
            if (marker_segment_area(s->gt, s->gt_b, gw, gh, d, job->mark, gix, ng, g_mark,
                                    &gbarea[g_mark]) != ISEG_STATUS_OK)
                goto nomem;
        }
        if (p_mark != SIZE_MAX) {
            boundary_map(s->pred, s->pred_b, gw, gh, d, job->mark, pix, np, s->flag, s->cnt);
            if (marker_segment_area(s->pred, s->pred_b, gw, gh, d, job->mark, pix, np, p_mark,
                                    &pbarea[p_mark]) != ISEG_STATUS_OK)
                goto nomem;
        }
    }

    /* Matching: every (gt, pred) pair in ascending order. */
    for (size_t k = 0; k < n_pairs; k++) {
        uint64_t g = pairs[k].key >> 32, p = pairs[k].key & 0xffffffffu;
        size_t   jg = find_seg(gix, ng, (int64_t)g), jp;
        if (jg == SIZE_MAX || (jp = find_seg(pix, np, (int64_t)p)) == SIZE_MAX) continue;
        if (gs[jg].crowd == 1 || gs[jg].cat != ps[jp].cat) continue;
        if (isnan(gs[jg].area)) {
            set_error(&c, ISEG_STATUS_EFORMAT, job->gt->name, "segment %llu has no \"area\" "
                      "(needed to match prediction segment %llu)", (unsigned long long)g,
                      (unsigned long long)p);
            goto out;
        }
        /* ref: union = area(p) + area(g) - inter - |p & VOID|, left to right */
        double inter = (double)pairs[k].cnt;
        double uni   = (double)parea[jp] + gs[jg].area - inter - (double)pvoid[jp];
        double iou   = inter / uni;
        if (job->boundary) {
            double bi = (double)pair_get(bpairs, n_bpairs, g, p);
            double bu = (double)pbarea[jp] + (double)gbarea[jg] - bi -
                        (double)pair_get(bpairs, n_bpairs, 0, p);
            double biou = bi / bu;
            if (biou < iou) iou = biou; /* Python's min(iou, biou) keeps iou on ties and NaN */
        }
        if (iou > 0.5) {
            add_event(res, ps[jp].cat_idx, PQ_EV_TP, iou);
            gmatched[jg] = pmatched[jp] = 1;
        }
    }
    /* False negatives; crowd regions by class (the last one listed wins). */
    for (size_t j = 0; j < ng; j++) {
        if (gmatched[j]) continue;
        if (gs[j].crowd == 1) {
            size_t q = 0;
            while (q < n_crowd && crowd[q].cat != gs[j].cat) q++;
            crowd[q].cat = gs[j].cat;
            crowd[q].id  = gs[j].id;
            if (q == n_crowd) n_crowd++;
            continue;
        }
        if (gs[j].cat_idx >= 0) add_event(res, gs[j].cat_idx, PQ_EV_FN, 0.0);
    }
    /* False positives, unless more than half lies on VOID plus the class's crowd region. */
    for (size_t j = 0; j < np; j++) {
        if (pmatched[j]) continue;
        uint64_t inter = pvoid[j];
        for (size_t q = 0; q < n_crowd; q++)
            if (crowd[q].cat == ps[j].cat && crowd[q].id >= 0 && crowd[q].id <= UINT32_MAX)
                inter += pair_get(pairs, n_pairs, (uint64_t)crowd[q].id, (uint64_t)ps[j].id);
        if ((double)inter / (double)parea[j] > 0.5) continue;
        add_event(res, ps[j].cat_idx, PQ_EV_FP, 0.0);
    }
    goto out;

nomem:
    set_error(&c, ISEG_STATUS_ENOMEM, c.gpath, "out of memory");
out:
    if (res->st != ISEG_STATUS_OK) {
        iseg__free(res->ev);
        res->ev   = NULL;
        res->n_ev = 0;
    }
    iseg__free(gix);
    iseg__free(pix);
    iseg__free(pairs);
    iseg__free(bpairs);
    iseg__free(labels);
    iseg__free(parea);
    iseg__free(pvoid);
    iseg__free(gbarea);
    iseg__free(pbarea);
    iseg__free(gmatched);
    iseg__free(pmatched);
    iseg__free(crowd);
    iseg_image_free(&gsrc.img);
    iseg_image_free(&psrc.img);
}
