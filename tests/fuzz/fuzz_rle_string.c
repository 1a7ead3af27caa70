/* fuzz_rle_string.c - libFuzzer target for iseg_rle_from_string.
 *
 * Input: byte 0 = h, byte 1 = w (0..255; h = w = 255 means 65536 x 65536, over the pixel limit;
 * h = 254 means 2^20 rows), the rest is the string. A rejected string must leave the output
 * zeroed with EFORMAT/ELIMIT; an accepted one must be a valid RLE that survives the round trips
 * string -> RLE -> string and RLE -> mask -> RLE, with consistent area, box and self-IoU. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "iseg/mask.h"

#include "fuzz_check.h"

/* decode only masks up to this many pixels (the fuzzer's memory is limited) */
#define MAX_DECODE ((uint64_t)1 << 22)

static bool rle_equal(const struct iseg_rle *a, const struct iseg_rle *b) {
    return a->h == b->h && a->w == b->w && a->m == b->m &&
           (a->m == 0 || memcmp(a->cnts, b->cnts, a->m * sizeof(uint32_t)) == 0);
}

static void check_mask(const struct iseg_rle *r) {
    uint64_t n = (uint64_t)r->h * r->w;
    if (n > MAX_DECODE) return;
    uint8_t *mask = malloc(n ? (size_t)n : 1);
    CHECK(mask);
    CHECK(iseg_rle_decode(mask, r) == ISEG_STATUS_OK);
    uint64_t area = 0;
    for (uint64_t i = 0; i < n; i++) {
        CHECK(mask[i] <= 1);
        area += mask[i];
    }
    CHECK(area == iseg_rle_area(r));

    /* re-encoding gives the canonical form, which merging with itself also gives */
    struct iseg_rle enc = {0}, mrg = {0};
    CHECK(iseg_rle_encode(&enc, mask, r->h, r->w) == ISEG_STATUS_OK);
    CHECK(iseg_rle_area(&enc) == area);
    const struct iseg_rle two[2] = {*r, *r};
    CHECK(iseg_rle_merge(&mrg, two, 2, false) == ISEG_STATUS_OK);
    CHECK(rle_equal(&enc, &mrg));

    /* the box of the canonical form is the tight box of the mask */
    double bb[4];
    iseg_rle_to_bbox(&enc, bb);
    if (area == 0) {
        CHECK(bb[0] == 0 && bb[1] == 0 && bb[2] == 0 && bb[3] == 0);
    } else {
        uint32_t x0 = r->w, y0 = r->h, x1 = 0, y1 = 0;
        for (uint32_t x = 0; x < r->w; x++)
            for (uint32_t y = 0; y < r->h; y++)
                if (mask[(size_t)x * r->h + y]) {
                    if (x < x0) x0 = x;
                    if (x > x1) x1 = x;
                    if (y < y0) y0 = y;
                    if (y > y1) y1 = y;
                }
        CHECK(bb[0] == x0 && bb[1] == y0 && bb[2] == x1 - x0 + 1 && bb[3] == y1 - y0 + 1);
    }

    /* self-IoU, with and without the crowd rule */
    double want = area ? 1.0 : 0.0;
    CHECK(iseg_rle_iou_pair(r, &enc, false) == want);
    CHECK(iseg_rle_iou_pair(&enc, r, true) == want);
    double o = -2;
    CHECK(iseg_rle_iou(&enc, 1, &enc, 1, NULL, &o) == ISEG_STATUS_OK);
    CHECK(o == want);
    iseg_rle_free(&enc);
    iseg_rle_free(&mrg);
    free(mask);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 2) return 0;
    uint32_t h = data[0], w = data[1];
    if (h == 255 && w == 255) h = w = 65536;
    else if (h == 254) h = 1u << 20;
    const char *s   = (const char *)data + 2;
    size_t      len = size - 2;

    struct iseg_rle  r  = {0};
    enum iseg_status st = iseg_rle_from_string(&r, s, len, h, w);
    if (st != ISEG_STATUS_OK) {
        CHECK(st == ISEG_STATUS_EFORMAT || st == ISEG_STATUS_ELIMIT);
        CHECK(r.cnts == NULL && r.m == 0 && r.h == 0 && r.w == 0);
        return 0;
    }
    CHECK(r.h == h && r.w == w);
    CHECK(iseg_rle_validate(&r) == ISEG_STATUS_OK);
    CHECK(iseg_rle_area(&r) <= (uint64_t)h * w);

    /* string round trip: the shortest form is unique, so an input of the same length as our
     * encoding is byte-identical to it (longer inputs used zero padding in some group) */
    char  *s2 = NULL;
    size_t n2 = 0;
    CHECK(iseg_rle_to_string(&r, &s2, &n2) == ISEG_STATUS_OK);
    CHECK(n2 == iseg_rle_string_len(&r) && n2 <= len && strlen(s2) == n2);
    if (n2 == len) CHECK(memcmp(s2, s, len) == 0);
    struct iseg_rle r2 = {0};
    CHECK(iseg_rle_from_string(&r2, s2, n2, h, w) == ISEG_STATUS_OK);
    CHECK(rle_equal(&r, &r2));

    check_mask(&r);

    iseg_free(s2);
    iseg_rle_free(&r2);
    iseg_rle_free(&r);
    return 0;
}
