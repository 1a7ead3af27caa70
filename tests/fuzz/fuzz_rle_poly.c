/* fuzz_rle_poly.c - libFuzzer target for iseg_rle_from_poly and iseg_rle_from_bbox.
 *
 * Input: byte 0 = h, byte 1 = w (0..63), byte 2 = how the rest becomes coordinates:
 *   mode 0: one signed byte per coordinate, / 4   (quarter pixels around the image)
 *   mode 1: one signed byte per coordinate, / 10  (decimal fractions, as in COCO json)
 *   mode 2: two bytes per coordinate, int16 / 16  (far outside the image too)
 *   mode 3: eight bytes per coordinate, a raw double (huge, negative, NaN, inf, subnormal)
 * at most 64 points. Contract checked: non-finite coordinates give EINVAL, coordinates whose
 * 5x+0.5 leaves the int32 range give ELIMIT, everything else succeeds with counts summing to
 * h*w; for modest coordinates the result must equal a literal dense re-implementation of
 * maskApi's rleFrPoly (the differential oracle, as in tests/unit/test_rle.c). */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "iseg/mask.h"
#include "rle/rle_impl.h"

#include "fuzz_check.h"

#define MAX_POINTS 64


static double get_coord(const uint8_t *p, int mode) {
    switch (mode) {
    case 0: return (double)(int8_t)p[0] / 4;
    case 1: return (double)(int8_t)p[0] / 10;
    case 2: return (double)(int16_t)(uint16_t)(p[0] | (p[1] << 8)) / 16;
    default: {
        double d;
        memcpy(&d, p, sizeof(d));
        return d;
    }
    }
}

static void check_poly(const double *xy, size_t k, uint32_t h, uint32_t w) {
    bool nonfinite = false, out_of_range = false, modest = true;
    for (size_t j = 0; j < 2 * k; j++) {
        if (!isfinite(xy[j])) nonfinite = true;
        else if (!(5.0 * xy[j] + 0.5 > -2147483649.0 && 5.0 * xy[j] + 0.5 < 2147483648.0))
            out_of_range = true;
        if (!(fabs(xy[j]) < 1000)) modest = false;
    }
    struct iseg_rle  r  = {0};
    enum iseg_status st = iseg_rle_from_poly(&r, xy, k, h, w);
    if (st != ISEG_STATUS_OK) {
        CHECK(r.cnts == NULL && r.m == 0 && r.h == 0 && r.w == 0);
        CHECK((st == ISEG_STATUS_EINVAL && nonfinite) ||
              (st == ISEG_STATUS_ELIMIT && out_of_range && !nonfinite));
        return;
    }
    CHECK(!nonfinite && !out_of_range);
    CHECK(r.h == h && r.w == w && r.m >= 1);
    CHECK(iseg_rle_validate(&r) == ISEG_STATUS_OK); /* sum(counts) == h*w */
    for (size_t i = 1; i < r.m; i++) CHECK(r.cnts[i] > 0); /* only the first may be 0 */
    CHECK(iseg_rle_area(&r) <= (uint64_t)h * w);
    double bb[4];
    iseg_rle_to_bbox(&r, bb);
    CHECK(bb[0] >= 0 && bb[1] >= 0 && bb[0] + bb[2] <= w && bb[1] + bb[3] <= h);
    if (modest && (uint64_t)h * w > 0) {
        struct iseg_rle want;
        CHECK(iseg__rle_from_poly_ref(&want, xy, k, h, w) == ISEG_STATUS_OK);
        CHECK(want.m == r.m && memcmp(want.cnts, r.cnts, r.m * sizeof(uint32_t)) == 0);
        iseg_rle_free(&want);
    }
    iseg_rle_free(&r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 3) return 0;
    uint32_t h = data[0] & 63, w = data[1] & 63;
    int      mode = data[2] & 3;
    size_t   step = mode == 0 || mode == 1 ? 1 : mode == 2 ? 2 : 8;
    data += 3;
    size -= 3;
    size_t n_coord = size / step;
    if (n_coord > 2 * MAX_POINTS) n_coord = 2 * MAX_POINTS;
    size_t k = n_coord / 2;
    double xy[2 * MAX_POINTS] = {0};
    for (size_t j = 0; j < 2 * k; j++) xy[j] = get_coord(data + j * step, mode);

    check_poly(xy, k, h, w);

    /* the first four coordinates as a box */
    if (k >= 2) {
        struct iseg_rle  r  = {0};
        enum iseg_status st = iseg_rle_from_bbox(&r, xy, h, w);
        if (st == ISEG_STATUS_OK) {
            CHECK(iseg_rle_validate(&r) == ISEG_STATUS_OK);
            iseg_rle_free(&r);
        } else {
            CHECK(st == ISEG_STATUS_EINVAL || st == ISEG_STATUS_ELIMIT);
            CHECK(r.cnts == NULL && r.m == 0);
        }
    }
    return 0;
}
