/* test_boundary.c - Boundary IoU: dilation width and the inner boundary band of an RLE mask.
 *
 * iseg_rle_boundary is checked against iseg__rle_boundary_ref (dense, direct definition) on
 * thousands of random masks, the reference against a third, literal implementation of
 * boundary-iou-api's recipe (pad with zeros, erode with a 3x3 square d times, subtract), and
 * both against a few small bands worked out by hand. */
#include "iseg/mask.h"
#include "rle/rle_boundary_impl.h"
#include "test.h"

/* ---- helpers ---- */

/* Canonical form as iseg_rle_encode produces it: m >= 1, counts sum to h*w, no zero-length
 * run except possibly the first. */
static void check_canonical(const struct iseg_rle *r, const char *what) {
    ASSERT_MSG(r->m >= 1 && r->cnts, "%s: empty counts", what);
    uint64_t sum = 0;
    for (size_t i = 0; i < r->m; i++) {
        ASSERT_MSG(i == 0 || r->cnts[i] > 0, "%s: zero-length run at %zu of %zu", what, i, r->m);
        sum += r->cnts[i];
    }
    ASSERT_MSG(sum == (uint64_t)r->h * r->w, "%s: counts sum to %llu, want %llu", what,
               (unsigned long long)sum, (unsigned long long)((uint64_t)r->h * r->w));
}

static void check_same(const struct iseg_rle *got, const struct iseg_rle *want, const char *what) {
    ASSERT_EQ_INT(got->h, want->h);
    ASSERT_EQ_INT(got->w, want->w);
    size_t i = 0;
    while (i < got->m && i < want->m && got->cnts[i] == want->cnts[i]) i++;
    if (got->m != want->m || i < got->m) {
        TEST_FAIL("%s (%ux%u): counts differ at index %zu of m=%zu/%zu: got %u, expected %u",
                  what, want->h, want->w, i, got->m, want->m, i < got->m ? got->cnts[i] : 0,
                  i < want->m ? want->cnts[i] : 0);
    }
}

/* Dense column-major masks, index x*h + y. */
static uint8_t *mask_alloc(uint32_t h, uint32_t w) {
    uint8_t *m = calloc((size_t)h * w + 1, 1);
    ASSERT(m);
    return m;
}

/* Runs fast and ref on a dense mask, checks they agree, are canonical and round-trip. */
static void check_mask(const uint8_t *mask, uint32_t h, uint32_t w, uint32_t d, const char *what) {
    struct iseg_rle r = {0}, fast = {0}, ref = {0}, again = {0};
    char            name[160];
    snprintf(name, sizeof(name), "%s %ux%u d=%u", what, h, w, d);
    ASSERT_OK(iseg_rle_encode(&r, mask, h, w));
    ASSERT_OK(iseg_rle_boundary(&fast, &r, d));
    ASSERT_OK(iseg__rle_boundary_ref(&ref, &r, d));
    check_canonical(&fast, name);
    check_canonical(&ref, name);
    check_same(&fast, &ref, name);

    /* canonical means identical to encode(decode(x)); the band is a subset of the mask */
    uint8_t *band = mask_alloc(h, w);
    ASSERT_OK(iseg_rle_decode(band, &fast));
    ASSERT_OK(iseg_rle_encode(&again, band, h, w));
    check_same(&fast, &again, name);
    for (size_t i = 0; i < (size_t)h * w; i++) {
        ASSERT_MSG(!band[i] || mask[i], "%s: band pixel %zu outside the mask", name, i);
    }
    free(band);
    iseg_rle_free(&again);
    iseg_rle_free(&ref);
    iseg_rle_free(&fast);
    iseg_rle_free(&r);
}

/* Band of a hand-written RLE against hand-worked counts (both implementations). */
static void check_counts(uint32_t h, uint32_t w, const uint32_t *in, size_t m_in, uint32_t d,
                         const uint32_t *want, size_t m_want, const char *what) {
    struct iseg_rle r = {h, w, m_in, (uint32_t *)in}, got = {0};
    struct iseg_rle exp = {h, w, m_want, (uint32_t *)want};
    ASSERT_OK(iseg_rle_boundary(&got, &r, d));
    check_same(&got, &exp, what);
    iseg_rle_free(&got);
    ASSERT_OK(iseg__rle_boundary_ref(&got, &r, d));
    check_same(&got, &exp, what);
    iseg_rle_free(&got);
}

static uint32_t rand_below(uint64_t *s, uint32_t n) { return (uint32_t)(test_rand(s) % n); }

static void fill_rect(uint8_t *m, uint32_t h, uint32_t w, int64_t x0, int64_t y0, int64_t x1,
                      int64_t y1, uint8_t v) { /* inclusive, clipped */
    for (int64_t x = x0 < 0 ? 0 : x0; x <= x1 && x < w; x++) {
        for (int64_t y = y0 < 0 ? 0 : y0; y <= y1 && y < h; y++) m[x * h + y] = v;
    }
}

static void fill_ellipse(uint8_t *m, uint32_t h, uint32_t w, double cx, double cy, double rx,
                         double ry, uint8_t v) {
    for (uint32_t x = 0; x < w; x++) {
        for (uint32_t y = 0; y < h; y++) {
            double u = (x - cx) / rx, t = (y - cy) / ry;
            if (u * u + t * t <= 1) m[(size_t)x * h + y] = v;
        }
    }
}

enum gen_kind {
    GEN_BLOBS, GEN_NOISE, GEN_HOLES, GEN_BORDER, GEN_LINES, GEN_PIXELS, GEN_FULL, GEN_EMPTY,
    GEN_RECTS, GEN_COUNT
};
static const char *const GEN_NAMES[] = {"blobs", "noise", "holes", "border", "lines",
                                        "pixels", "full", "empty", "rects"};
_Static_assert(sizeof(GEN_NAMES) / sizeof(GEN_NAMES[0]) == GEN_COUNT, "GEN_NAMES");

static void gen_mask(uint8_t *m, uint32_t h, uint32_t w, enum gen_kind kind, uint64_t *s) {
    size_t n = (size_t)h * w;
    memset(m, 0, n);
    switch (kind) {
    case GEN_BLOBS: {
        int nb = 1 + (int)rand_below(s, 5);
        for (int i = 0; i < nb; i++) {
            double cx = test_rand_unif(s) * (w + 4) - 2, cy = test_rand_unif(s) * (h + 4) - 2;
            double rx = 0.5 + test_rand_unif(s) * w * 0.6, ry = 0.5 + test_rand_unif(s) * h * 0.6;
            fill_ellipse(m, h, w, cx, cy, rx, ry, 1);
        }
        break;
    }
    case GEN_NOISE: {
        double p = test_rand_unif(s);
        for (size_t i = 0; i < n; i++) m[i] = test_rand_unif(s) < p;
        break;
    }
    case GEN_HOLES: {
        fill_ellipse(m, h, w, w / 2.0, h / 2.0, w * 0.45 + 0.5, h * 0.45 + 0.5, 1);
        if (test_rand(s) & 1) memset(m, 1, n);
        uint32_t nh = 1 + rand_below(s, 6);
        for (uint32_t i = 0; i < nh; i++) {
            int64_t x = rand_below(s, w), y = rand_below(s, h), r = rand_below(s, 3);
            fill_rect(m, h, w, x - r, y - r, x + r, y + r, 0);
        }
        break;
    }
    case GEN_BORDER: { /* a rectangle glued to a random subset of the four borders */
        unsigned sides = (unsigned)rand_below(s, 16);
        int64_t  x0    = (sides & 1) ? 0 : rand_below(s, w);
        int64_t  x1    = (sides & 2) ? w - 1 : rand_below(s, w);
        int64_t  y0    = (sides & 4) ? 0 : rand_below(s, h);
        int64_t  y1    = (sides & 8) ? h - 1 : rand_below(s, h);
        fill_rect(m, h, w, x0, y0, x1, y1, 1);
        break;
    }
    case GEN_LINES: {
        uint32_t nl = 1 + rand_below(s, 4);
        for (uint32_t i = 0; i < nl; i++) {
            uint32_t t = rand_below(s, 3), thick = rand_below(s, 3);
            if (t == 0) { /* horizontal */
                int64_t y = rand_below(s, h);
                fill_rect(m, h, w, 0, y, w - 1, y + thick, 1);
            } else if (t == 1) { /* vertical */
                int64_t x = rand_below(s, w);
                fill_rect(m, h, w, x, 0, x + thick, h - 1, 1);
            } else { /* diagonal */
                int64_t off = (int64_t)rand_below(s, h + w) - w;
                for (int64_t x = 0; x < w; x++) {
                    fill_rect(m, h, w, x, x + off, x, x + off + thick, 1);
                }
            }
        }
        break;
    }
    case GEN_PIXELS: {
        uint32_t np = 1 + (test_rand(s) & 1 ? 0 : rand_below(s, 5));
        for (uint32_t i = 0; i < np; i++) m[rand_below(s, (uint32_t)n)] = 1;
        break;
    }
    case GEN_FULL: memset(m, 1, n); break;
    case GEN_EMPTY: break;
    case GEN_RECTS: {
        uint32_t nr = 1 + rand_below(s, 4);
        for (uint32_t i = 0; i < nr; i++) {
            int64_t x = rand_below(s, w), y = rand_below(s, h);
            fill_rect(m, h, w, x, y, x + rand_below(s, w), y + rand_below(s, h), (uint8_t)(i != 3));
        }
        break;
    }
    case GEN_COUNT: break;
    }
}

/* boundary-iou-api, literally: pad with a 1-px zero frame, erode with a 3x3 square d times,
 * crop, subtract. Independent of both implementations under test. */
static uint8_t *band_iterated(const uint8_t *mask, uint32_t h, uint32_t w, uint32_t d) {
    size_t   H = (size_t)h + 2, W = (size_t)w + 2;
    uint8_t *a = calloc(H * W, 1), *b = calloc(H * W, 1), *band = mask_alloc(h, w);
    ASSERT(a && b);
    for (size_t x = 0; x < w; x++) {
        for (size_t y = 0; y < h; y++) a[(x + 1) * H + y + 1] = mask[x * h + y];
    }
    for (uint32_t it = 0; it < d; it++) {
        memset(b, 0, H * W);
        for (size_t x = 1; x + 1 < W; x++) {
            for (size_t y = 1; y + 1 < H; y++) {
                uint8_t v = 1;
                for (size_t xx = x - 1; xx <= x + 1; xx++) {
                    for (size_t yy = y - 1; yy <= y + 1; yy++) v &= a[xx * H + yy];
                }
                b[x * H + y] = v;
            }
        }
        uint8_t *t = a;
        a          = b;
        b          = t;
    }
    for (size_t x = 0; x < w; x++) {
        for (size_t y = 0; y < h; y++) band[x * h + y] = mask[x * h + y] && !a[(x + 1) * H + y + 1];
    }
    free(a);
    free(b);
    return band;
}

/* ---- dilation ---- */

TEST(boundary_dilation_table) {
    /* specs/coco-eval.md section 7, ratio 0.02 */
    static const uint32_t cases[][3] = {
        {500, 375, 12}, {640, 480, 16}, {640, 427, 15}, {427, 640, 15}, {640, 425, 15},
        {640, 360, 15}, {612, 612, 17}, {640, 512, 16}, {800, 600, 20}, {1333, 800, 31},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        ASSERT_EQ_INT(iseg_boundary_dilation(cases[i][0], cases[i][1], 0.02), cases[i][2]);
    }
}

TEST(boundary_dilation_half_even) {
    /* expected values from Python: max(1, int(round(r * math.sqrt(h**2 + w**2)))) */
    static const struct {
        uint32_t h, w;
        double   ratio;
        uint32_t want;
    } cases[] = {
        {3, 4, 0.5, 2},     /* 2.5 -> 2 */
        {3, 4, 1.5, 8},     /* 7.5 -> 8 */
        {3, 4, 0.3, 2},     /* 1.5 -> 2 */
        {3, 4, 0.7, 4},     /* 3.5 -> 4 */
        {6, 8, 0.25, 2},    /* 2.5 -> 2 */
        {6, 8, 0.35, 4},    /* 3.5 -> 4 */
        {6, 8, 0.45, 4},    /* 4.5 -> 4 */
        {5, 12, 0.5, 6},    /* 6.5 -> 6 */
        {20, 21, 0.5, 14},  /* 14.5 -> 14 */
        {20, 21, 0.1, 3},   /* 2.9000000000000004 */
        {0, 25, 0.1, 2},    /* 2.5 -> 2 */
        {0, 25, 0.02, 1},   /* 0.5 -> 0 -> 1 */
        {3, 4, 0.1, 1},     /* 0.5 -> 0 -> 1 */
        {0, 0, 0.02, 1},
        {1, 1, 0.02, 1},
        {65536, 65536, 0.02, 1854},
        /* h^2 + w^2 >= 2^64 */
        {UINT32_MAX, UINT32_MAX, 0.02, 121480020},
        {UINT32_MAX, UINT32_MAX, 1e-9, 6},
        {UINT32_MAX, UINT32_MAX, 3e-10, 2},
        {UINT32_MAX, 0, 1e-9, 4},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        uint32_t got = iseg_boundary_dilation(cases[i].h, cases[i].w, cases[i].ratio);
        ASSERT_MSG(got == cases[i].want, "%ux%u ratio %.17g: got %u, expected %u", cases[i].h,
                   cases[i].w, cases[i].ratio, got, cases[i].want);
    }
}

TEST(boundary_dilation_bad_ratio) {
    ASSERT_EQ_INT(iseg_boundary_dilation(640, 480, NAN), 1);
    ASSERT_EQ_INT(iseg_boundary_dilation(640, 480, -0.02), 1);
    ASSERT_EQ_INT(iseg_boundary_dilation(640, 480, -INFINITY), 1);
    ASSERT_EQ_INT(iseg_boundary_dilation(640, 480, 0.0), 1);
    ASSERT_EQ_INT(iseg_boundary_dilation(640, 480, 1e-300), 1);
    ASSERT_EQ_U64(iseg_boundary_dilation(640, 480, INFINITY), UINT32_MAX);
    ASSERT_EQ_U64(iseg_boundary_dilation(640, 480, 1e300), UINT32_MAX);
    ASSERT_EQ_U64(iseg_boundary_dilation(UINT32_MAX, UINT32_MAX, 1.0), UINT32_MAX);
    ASSERT_EQ_INT(iseg_boundary_dilation(0, 0, INFINITY), 1); /* inf * 0 is NaN: no band wider */
}

/* ---- hand-worked bands ---- */

TEST(boundary_hand_worked) {
    /* 5x5 all ones, d=1: the outer ring (the inner 3x3 survives the erosion). Column-major:
     * col0 5 ones + col1 top, then 3 zeros, col1 bottom + col2 top, ... */
    static const uint32_t full5[] = {0, 25};
    static const uint32_t ring5[] = {0, 6, 3, 2, 3, 2, 3, 6};
    check_counts(5, 5, full5, 2, 1, ring5, 8, "5x5 full d=1");
    /* d=2: only the centre (2,2) is 3 away from the frame; d=3: all of it is band */
    static const uint32_t centre5[] = {0, 12, 1, 12};
    check_counts(5, 5, full5, 2, 2, centre5, 4, "5x5 full d=2");
    check_counts(5, 5, full5, 2, 3, full5, 2, "5x5 full d=3");

    /* 7x7 image, 5x5 square at rows/cols 1..5: d=1 gives the square's ring; d=2 removes only
     * the centre pixel (3,3), whose 5x5 neighbourhood is exactly the square. */
    static const uint32_t sq7[]    = {8, 5, 2, 5, 2, 5, 2, 5, 2, 5, 8};
    static const uint32_t ring7[]  = {8, 5, 2, 1, 3, 1, 2, 1, 3, 1, 2, 1, 3, 1, 2, 5, 8};
    static const uint32_t hole7[]  = {8, 5, 2, 5, 2, 2, 1, 2, 2, 5, 2, 5, 8};
    check_counts(7, 7, sq7, 11, 1, ring7, 17, "7x7 square d=1");
    check_counts(7, 7, sq7, 11, 2, hole7, 13, "7x7 square d=2");
    check_counts(7, 7, sq7, 11, 3, sq7, 11, "7x7 square d=3");

    /* 7x7 all ones with a pinhole at (3,3), d=1: the border ring plus the 3x3 ring around the
     * hole; the pixels at distance 1 of both (rows/cols 1..5 minus 2..4) are eroded away. */
    static const uint32_t pin7[]  = {0, 24, 1, 24};
    static const uint32_t bpin7[] = {0, 8, 5, 2, 1, 3, 1, 2, 1, 1, 1, 1, 1, 2, 1, 3, 1, 2, 5, 8};
    check_counts(7, 7, pin7, 4, 1, bpin7, 20, "7x7 pinhole d=1");

    /* tiny images */
    static const uint32_t one1[] = {0, 1}, zero1[] = {1}, empty[] = {0};
    check_counts(1, 1, one1, 2, 1, one1, 2, "1x1 one");
    check_counts(1, 1, zero1, 1, 1, zero1, 1, "1x1 zero");
    check_counts(0, 0, empty, 1, 1, empty, 1, "0x0");
    check_counts(0, 7, empty, 1, 3, empty, 1, "0x7");
    static const uint32_t row[] = {2, 5, 3}; /* 1x10 */
    check_counts(1, 10, row, 3, 1, row, 3, "1x10 segment");
    check_counts(10, 1, row, 3, 1, row, 3, "10x1 segment");

    /* d = 0 erodes nothing away: the band is empty */
    static const uint32_t none25[] = {25};
    check_counts(5, 5, full5, 2, 0, none25, 1, "5x5 full d=0");
}

TEST(boundary_noncanonical_input) {
    /* zero-length runs in the input; the output must still be canonical */
    static const uint32_t in[]   = {2, 1, 0, 2, 4}; /* 3x3, ones at 2..4 */
    static const uint32_t want[] = {2, 3, 4};
    check_counts(3, 3, in, 5, 1, want, 3, "3x3 split run");
    static const uint32_t in0[]   = {0, 0, 3, 0, 6};
    static const uint32_t want0[] = {9};
    check_counts(3, 3, in0, 5, 1, want0, 1, "3x3 zero-length ones runs");
    /* a 7x7 square given with every column's run split in two */
    static const uint32_t in7[] = {8, 2, 0, 3, 2, 5, 2, 1, 0, 4, 2, 5, 2, 5, 8};
    static const uint32_t ring7[] = {8, 5, 2, 1, 3, 1, 2, 1, 3, 1, 2, 1, 3, 1, 2, 5, 8};
    check_counts(7, 7, in7, 15, 1, ring7, 17, "7x7 square split runs d=1");
}

TEST(boundary_noncanonical_random) {
    /* random masks whose runs are cut by zero-length runs give the band of the canonical RLE */
    uint64_t s = 31337;
    for (int i = 0; i < 1000; i++) {
        uint32_t h = 1 + rand_below(&s, 40), w = 1 + rand_below(&s, 40), d = 1 + rand_below(&s, 8);
        uint8_t *m = mask_alloc(h, w);
        gen_mask(m, h, w, (enum gen_kind)rand_below(&s, GEN_COUNT), &s);
        struct iseg_rle r = {0}, want = {0}, got = {0};
        ASSERT_OK(iseg_rle_encode(&r, m, h, w));
        ASSERT_OK(iseg_rle_boundary(&want, &r, d));
        uint32_t       *cut = malloc((3 * r.m + 1) * sizeof(*cut));
        size_t          m2  = 0;
        ASSERT(cut);
        for (size_t j = 0; j < r.m; j++) {
            if (r.cnts[j] >= 2 && rand_below(&s, 3) == 0) { /* c -> a, 0, c - a */
                uint32_t a  = 1 + rand_below(&s, r.cnts[j] - 1);
                cut[m2++] = a;
                cut[m2++] = 0;
                cut[m2++] = r.cnts[j] - a;
            } else {
                cut[m2++] = r.cnts[j];
            }
        }
        struct iseg_rle rc = {h, w, m2, cut};
        ASSERT_OK(iseg_rle_boundary(&got, &rc, d));
        check_same(&got, &want, "cut runs");
        iseg_rle_free(&got);
        ASSERT_OK(iseg__rle_boundary_ref(&got, &rc, d));
        check_same(&got, &want, "cut runs (ref)");
        iseg_rle_free(&got);
        iseg_rle_free(&want);
        iseg_rle_free(&r);
        free(cut);
        free(m);
    }
}

TEST(boundary_bad_sums_stay_in_bounds) {
    /* Callers validate, but counts that do not sum to h*w must still never take either
     * implementation out of bounds: both read them as truncated at, or zero-padded to, h*w. */
    uint64_t s = 8080;
    for (int i = 0; i < 500; i++) {
        uint32_t h = 1 + rand_below(&s, 30), w = 1 + rand_below(&s, 30), d = rand_below(&s, 6);
        size_t   m = 1 + rand_below(&s, 40);
        uint32_t cnts[40];
        for (size_t j = 0; j < m; j++) {
            cnts[j] = rand_below(&s, 4) == 0 ? 0 : rand_below(&s, 2 * h * w / (uint32_t)m + 2);
        }
        if (i % 50 == 0) cnts[0] = UINT32_MAX;
        if (i % 50 == 1 && m > 1) cnts[1] = UINT32_MAX;
        struct iseg_rle r = {h, w, m, cnts}, fast = {0}, ref = {0};
        ASSERT_OK(iseg_rle_boundary(&fast, &r, d));
        ASSERT_OK(iseg__rle_boundary_ref(&ref, &r, d));
        check_canonical(&fast, "bad sums");
        check_same(&fast, &ref, "bad sums");
        iseg_rle_free(&ref);
        iseg_rle_free(&fast);
    }
}

TEST(boundary_huge_d) {
    uint64_t s = 7;
    for (int i = 0; i < 50; i++) {
        uint32_t h = 1 + rand_below(&s, 40), w = 1 + rand_below(&s, 40);
        uint8_t *m = mask_alloc(h, w);
        gen_mask(m, h, w, (enum gen_kind)rand_below(&s, GEN_COUNT), &s);
        struct iseg_rle r = {0}, band = {0};
        ASSERT_OK(iseg_rle_encode(&r, m, h, w));
        ASSERT_OK(iseg_rle_boundary(&band, &r, UINT32_MAX));
        check_same(&band, &r, "d = UINT32_MAX");
        iseg_rle_free(&band);
        ASSERT_OK(iseg_rle_boundary(&band, &r, UINT32_MAX / 2));
        check_same(&band, &r, "d = UINT32_MAX / 2");
        iseg_rle_free(&band);
        iseg_rle_free(&r);
        free(m);
    }
}

TEST(boundary_elimit) {
    static uint32_t       cnt[] = {0};
    const struct iseg_rle r     = {65536, 65537, 1, cnt};
    struct iseg_rle       out   = {1, 1, 1, cnt}; /* garbage: must come back zeroed */
    ASSERT_STATUS(iseg_rle_boundary(&out, &r, 3), ISEG_STATUS_ELIMIT);
    ASSERT(out.cnts == NULL && out.m == 0 && out.h == 0 && out.w == 0);
}

/* ---- randomised: fast against ref ---- */

TEST(boundary_random_vs_ref) {
    uint64_t s       = 0x5eed;
    int      n_masks = 6000;
    for (int i = 0; i < n_masks; i++) {
        uint32_t h, w, shape = rand_below(&s, 10);
        if (shape == 0) { /* tiny */
            h = 1 + rand_below(&s, 4);
            w = 1 + rand_below(&s, 4);
        } else if (shape == 1) { /* a single row or column */
            h = 1;
            w = 1 + rand_below(&s, 80);
            if (test_rand(&s) & 1) {
                h = w;
                w = 1;
            }
        } else if (shape <= 3) { /* thin: one side below 2d for most d */
            h = 1 + rand_below(&s, 12);
            w = 1 + rand_below(&s, 90);
            if (test_rand(&s) & 1) {
                uint32_t t = h;
                h          = w;
                w          = t;
            }
        } else if (shape <= 8) {
            h = 1 + rand_below(&s, 60);
            w = 1 + rand_below(&s, 60);
        } else {
            h = 60 + rand_below(&s, 80);
            w = 60 + rand_below(&s, 80);
        }
        /* d = 1..25, mostly small; 0 now and then; capped to keep the reference quick */
        uint32_t d = rand_below(&s, 4) == 0 ? 1 + rand_below(&s, 25) : 1 + rand_below(&s, 6);
        if (rand_below(&s, 50) == 0) d = 0;
        while (d > 1 && (uint64_t)h * w * (2 * d + 1) * (2 * d + 1) > 8000000) d /= 2;

        enum gen_kind kind = (enum gen_kind)rand_below(&s, GEN_COUNT);
        uint8_t      *m    = mask_alloc(h, w);
        gen_mask(m, h, w, kind, &s);
        check_mask(m, h, w, d, GEN_NAMES[kind]);
        free(m);
    }
}

TEST(boundary_every_d_on_shapes) {
    /* every d in 1..25 on a fixed set of masks: ellipse, noisy ellipse, full with holes */
    uint64_t s = 99;
    for (uint32_t d = 1; d <= 25; d++) {
        for (int kind = 0; kind < GEN_COUNT; kind++) {
            uint32_t h = 40 + rand_below(&s, 30), w = 40 + rand_below(&s, 30);
            uint8_t *m = mask_alloc(h, w);
            gen_mask(m, h, w, (enum gen_kind)kind, &s);
            check_mask(m, h, w, d, GEN_NAMES[kind]);
            free(m);
        }
    }
}

TEST(boundary_coco_size_vs_ref) {
    /* a few masks at COCO image size with the real d (640x480 -> 16) */
    uint64_t s = 1234;
    uint32_t h = 480, w = 640, d = iseg_boundary_dilation(h, w, 0.02);
    ASSERT_EQ_INT(d, 16);
    static const enum gen_kind kinds[] = {GEN_BLOBS, GEN_HOLES, GEN_BORDER, GEN_RECTS,
                                          GEN_LINES, GEN_FULL, GEN_EMPTY, GEN_BLOBS};
    for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
        uint8_t *m = mask_alloc(h, w);
        gen_mask(m, h, w, kinds[i], &s);
        check_mask(m, h, w, d, GEN_NAMES[kinds[i]]);
        free(m);
    }
}

TEST(boundary_ref_vs_iterated_erosion) {
    uint64_t s = 42;
    for (int i = 0; i < 600; i++) {
        uint32_t h = 1 + rand_below(&s, 30), w = 1 + rand_below(&s, 30);
        uint32_t d = rand_below(&s, 12);
        uint8_t *m = mask_alloc(h, w);
        gen_mask(m, h, w, (enum gen_kind)rand_below(&s, GEN_COUNT), &s);
        uint8_t        *want = band_iterated(m, h, w, d);
        struct iseg_rle r = {0}, ref = {0}, exp = {0};
        ASSERT_OK(iseg_rle_encode(&r, m, h, w));
        ASSERT_OK(iseg__rle_boundary_ref(&ref, &r, d));
        ASSERT_OK(iseg_rle_encode(&exp, want, h, w));
        check_same(&ref, &exp, "ref vs iterated 3x3 erosion");
        iseg_rle_free(&exp);
        iseg_rle_free(&ref);
        iseg_rle_free(&r);
        free(want);
        free(m);
    }
}

/* ---- allocation failure ---- */

static long g_alloc_left;

static void *failing_malloc(size_t n, void *user) {
    (void)user;
    if (g_alloc_left-- <= 0) return NULL;
    return malloc(n);
}
static void *failing_realloc(void *p, size_t n, void *user) {
    (void)user;
    if (g_alloc_left-- <= 0) return NULL;
    return realloc(p, n);
}
static void plain_free(void *p, void *user) {
    (void)user;
    free(p);
}

TEST(boundary_enomem) {
    uint32_t h = 50, w = 60;
    uint8_t *m = mask_alloc(h, w);
    uint64_t s = 5;
    gen_mask(m, h, w, GEN_HOLES, &s);
    struct iseg_rle r = {0}, want = {0};
    ASSERT_OK(iseg_rle_encode(&r, m, h, w));
    ASSERT_OK(iseg_rle_boundary(&want, &r, 4));

    const struct iseg_alloc hooks = {failing_malloc, failing_realloc, plain_free, NULL};
    iseg_alloc_set(&hooks);
    for (int which = 0; which < 2; which++) {
        for (long budget = 0;; budget++) {
            struct iseg_rle out = {0};
            g_alloc_left        = budget;
            enum iseg_status st = which ? iseg__rle_boundary_ref(&out, &r, 4)
                                        : iseg_rle_boundary(&out, &r, 4);
            if (st == ISEG_STATUS_OK) {
                check_same(&out, &want, "after allocation failures");
                iseg_rle_free(&out);
                break;
            }
            ASSERT_STATUS(st, ISEG_STATUS_ENOMEM);
            ASSERT(out.cnts == NULL && out.m == 0 && out.h == 0 && out.w == 0);
            ASSERT(budget < 10);
        }
    }
    iseg_alloc_set(NULL);
    iseg_rle_free(&want);
    iseg_rle_free(&r);
    free(m);
}

TEST_LIST = {
    TEST_ENTRY(boundary_dilation_table),
    TEST_ENTRY(boundary_dilation_half_even),
    TEST_ENTRY(boundary_dilation_bad_ratio),
    TEST_ENTRY(boundary_hand_worked),
    TEST_ENTRY(boundary_noncanonical_input),
    TEST_ENTRY(boundary_noncanonical_random),
    TEST_ENTRY(boundary_bad_sums_stay_in_bounds),
    TEST_ENTRY(boundary_huge_d),
    TEST_ENTRY(boundary_elimit),
    TEST_ENTRY(boundary_random_vs_ref),
    TEST_ENTRY(boundary_every_d_on_shapes),
    TEST_ENTRY(boundary_coco_size_vs_ref),
    TEST_ENTRY(boundary_ref_vs_iterated_erosion),
    TEST_ENTRY(boundary_enomem),
    TEST_END,
};
