/* rle_string.c - the compressed COCO RLE string (the `counts` string of a COCO RLE dict).
 *
 * Format (ref: shared/specs/coco-eval.md §5, maskApi rleToString/rleFrString): each count x is
 * written as a little-endian sequence of 5-bit groups, one character per group (group + 48, so
 * characters 48..111); bit 0x20 of a group means "more groups follow"; the last group's bit 0x10 is
 * the sign. Counts with index i > 2 are written as the difference x - cnts[i-2] (the first three
 * are raw). The encoder emits the shortest form; the decoder also accepts padded forms of up to
 * MAX_GROUPS groups and rejects everything a hostile string could use to overflow. */
#include <string.h>

#include "core/core_impl.h"
#include "iseg/mask.h"
#include "rle/rle_impl.h"

/* A count fits in 32 bits and a delta in 33 (signed), i.e. at most 7 groups in the shortest form;
 * 12 groups (60 bits) keep every shift below 64 while tolerating zero padding. */
#define MAX_GROUPS 12

/* The value written for count i: cnts[i], or cnts[i] - cnts[i-2] for i > 2, as a two's
 * complement 64-bit pattern (unsigned, so that no signed overflow or shift is ever involved). */
static uint64_t coded_value(const uint32_t *cnts, size_t i) {
    uint64_t x = cnts[i];
    if (i > 2) x -= cnts[i - 2]; /* wraps to the two's complement of a negative delta */
    return x;
}

/* Emit the groups of x; buf may be NULL to only count them. Returns the number of characters. */
static size_t put_value(uint64_t x, char *buf) {
    size_t n = 0;
    for (;;) {
        unsigned c   = (unsigned)(x & 0x1f);
        bool     neg = (x >> 63) != 0;
        x            = (x >> 5) | (neg ? ~(UINT64_MAX >> 5) : 0); /* arithmetic shift */
        bool more    = (c & 0x10) ? x != UINT64_MAX : x != 0;
        if (more) c |= 0x20;
        if (buf) buf[n] = (char)(c + 48);
        n++;
        if (!more) return n;
    }
}

size_t iseg_rle_string_len(const struct iseg_rle *r) {
    ISEG_ASSERT(r);
    ISEG_ASSERT(r->m == 0 || r->cnts);
    size_t n = 0;
    for (size_t i = 0; i < r->m; i++) n += put_value(coded_value(r->cnts, i), NULL);
    return n;
}

size_t iseg_rle_string_write(const struct iseg_rle *r, char *buf) {
    ISEG_ASSERT(r);
    ISEG_ASSERT(r->m == 0 || (r->cnts && buf));
    size_t n = 0;
    for (size_t i = 0; i < r->m; i++) n += put_value(coded_value(r->cnts, i), buf + n);
    return n;
}

enum iseg_status iseg_rle_to_string(const struct iseg_rle *r, char **out, size_t *len) {
    ISEG_ASSERT(r && out);
    *out = NULL;
    if (len) *len = 0;
    size_t n = iseg_rle_string_len(r);
    if (n == SIZE_MAX) return ISEG_STATUS_ENOMEM;
    char *s = iseg__malloc(n + 1);
    if (!s) return ISEG_STATUS_ENOMEM;
    size_t k = iseg_rle_string_write(r, s);
    ISEG_ASSERT(k == n);
    s[n] = '\0';
    *out = s;
    if (len) *len = n;
    return ISEG_STATUS_OK;
}

/* Read the value starting at s[*p] (a 64-bit two's complement pattern, not yet un-delta'd);
 * false if a character is out of range, the value has too many groups, or it is truncated. */
static inline bool read_value(const char *s, size_t len, size_t *p, uint64_t *out) {
    unsigned c = (unsigned char)s[*p] - 48u;
    if (c < 0x20) { /* the common case: one group */
        (*p)++;
        *out = (c & 0x10) ? (uint64_t)c | (UINT64_MAX << 5) : c;
        return true;
    }
    uint64_t x     = 0;
    unsigned shift = 0, k = 0;
    do {
        if (*p >= len) return false; /* truncated: the last group asks for more */
        c = (unsigned char)s[(*p)++] - 48u;
        if (c > 63 || ++k > MAX_GROUPS) return false;
        x |= (uint64_t)(c & 0x1f) << shift;
        shift += 5;
    } while (c & 0x20);
    if (c & 0x10) x |= UINT64_MAX << shift; /* sign-extend; shift <= 60 */
    *out = x;
    return true;
}

/* Un-delta value i (x += cnts[i-2] for i > 2) and check it: x is then the count as a 64-bit
 * two's complement number; a negative count shows up as a value >= 2^63 and the magnitude is
 * below 2^61, so no wrap-around can hide one. */
#define NEXT_COUNT(x, i, prev2)                   \
    do {                                          \
        if ((i) > 2) (x) += (prev2);              \
        if ((x) > UINT32_MAX) return false;       \
    } while (0)

/* Decode and check len characters into cnts, which holds at least len values (every value
 * takes at least one character). Returns false on any malformed input; *m_out = values. */
static bool decode_into(const char *s, size_t len, uint64_t n_px, uint32_t *cnts,
                        size_t *m_out) {
    uint64_t total = 0;
    size_t   p = 0, m = 0;
    while (p < len) {
        uint64_t x;
        if (!read_value(s, len, &p, &x)) return false;
        NEXT_COUNT(x, m, m > 2 ? cnts[m - 2] : 0);
        cnts[m++] = (uint32_t)x;
        total += x;
        if (total > n_px) return false;
    }
    if (total != n_px || (n_px > 0 && m == 0)) return false;
    *m_out = m;
    return true;
}

static bool scan(const char *s, size_t len, uint32_t h, uint32_t w, uint64_t *area,
                 double bb[4]) {
    uint64_t              n_px = (uint64_t)h * w, total = 0, fg = 0;
    uint32_t              c0 = 0, c1 = 0; /* cnts[i-2], cnts[i-1] */
    size_t                p = 0, m = 0;
    struct iseg__bbox_acc acc;
    iseg__bbox_acc_init(&acc, h, w);
    while (p < len) {
        uint64_t x;
        if (!read_value(s, len, &p, &x)) return false;
        NEXT_COUNT(x, m, c0);
        if ((m & 1) && x) {
            if (total + x > n_px) return false;
            iseg__bbox_acc_run(&acc, (uint32_t)total, (uint32_t)x);
            fg += x;
        }
        total += x;
        if (total > n_px) return false;
        c0 = c1;
        c1 = (uint32_t)x;
        m++;
    }
    if (total != n_px || (n_px > 0 && m == 0)) return false;
    *area = fg;
    iseg__bbox_acc_finish(&acc, m, bb);
    return true;
}

enum iseg_status iseg__rle_string_scan(const char *s, size_t len, uint32_t h, uint32_t w,
                                       uint64_t *area, double bb[4]) {
    ISEG_ASSERT(len == 0 || s);
    if ((uint64_t)h * w > ISEG_RLE_MAX_PIXELS) return ISEG_STATUS_ELIMIT;
    return scan(s, len, h, w, area, bb) ? ISEG_STATUS_OK : ISEG_STATUS_EFORMAT;
}

enum iseg_status iseg_rle_from_string_buf(struct iseg_rle *out, const char *s, size_t len,
                                          uint32_t h, uint32_t w, uint32_t *buf) {
    ISEG_ASSERT(out);
    ISEG_ASSERT(len == 0 || (s && buf));
    *out          = (struct iseg_rle){0};
    uint64_t n_px = (uint64_t)h * (uint64_t)w;
    if (n_px > ISEG_RLE_MAX_PIXELS) return ISEG_STATUS_ELIMIT;
    size_t m;
    if (!decode_into(s, len, n_px, buf, &m)) return ISEG_STATUS_EFORMAT;
    *out = (struct iseg_rle){.h = h, .w = w, .m = m, .cnts = m ? buf : NULL};
    return ISEG_STATUS_OK;
}

enum iseg_status iseg_rle_from_string(struct iseg_rle *out, const char *s, size_t len,
                                      uint32_t h, uint32_t w) {
    ISEG_ASSERT(out);
    ISEG_ASSERT(len == 0 || s);
    *out          = (struct iseg_rle){0};
    uint64_t n_px = (uint64_t)h * (uint64_t)w;
    if (n_px > ISEG_RLE_MAX_PIXELS) return ISEG_STATUS_ELIMIT;
    /* Count value terminators (characters without the "more" bit) to allocate the exact
     * size. decode_into stores a value only at a terminator it accepts, and every such
     * character is counted here, so m values of room suffice even for hostile strings. */
    size_t m = 0;
    for (size_t p = 0; p < len; p++) m += (((unsigned char)s[p] - 48u) & 0x20u) == 0;
    uint32_t *cnts = iseg__malloc_array(m ? m : 1, sizeof(*cnts));
    if (!cnts) return ISEG_STATUS_ENOMEM;
    size_t got;
    if (!decode_into(s, len, n_px, cnts, &got)) {
        iseg__free(cnts);
        return ISEG_STATUS_EFORMAT;
    }
    if (got == 0) {
        iseg__free(cnts);
        cnts = NULL;
    }
    out->h    = h;
    out->w    = w;
    out->m    = got;
    out->cnts = cnts;
    return ISEG_STATUS_OK;
}
