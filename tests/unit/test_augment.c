/* test_augment.c - augmentation: hand-checked flips of a 4x3 mask and its box, flips against a
 * brute-force bitmap flip on random masks, flip twice = identity, resize (bilinear image,
 * nearest masks, scaled boxes, dropped instances), random erasing and strip occlusion (region
 * in bounds, pixels, mask policies), determinism with a seed, and error paths. */
#include "test.h"

#include "iseg/augment.h"

/* a sample of w x h whose instance i has the row-major bitmap rows[i] ("1" = foreground) */
static void make_sample(struct iseg_sample *s, uint32_t w, uint32_t h, size_t n,
                        const char *const *rows) {
    ASSERT_OK(iseg_sample_alloc(s, w, h, n));
    uint8_t *px = s->image.data;
    for (uint32_t y = 0; y < h; y++)
        for (uint32_t x = 0; x < w; x++)
            for (uint32_t c = 0; c < 3; c++)
                px[((size_t)y * w + x) * 3 + c] = (uint8_t)(y * 16 + x * 3 + c);
    uint8_t *bm = malloc((size_t)w * h);
    ASSERT(bm);
    for (size_t i = 0; i < n; i++) {
        for (uint32_t y = 0; y < h; y++)
            for (uint32_t x = 0; x < w; x++) bm[(size_t)x * h + y] = rows[i][y * w + x] == '1';
        ASSERT_OK(iseg_rle_encode(&s->inst[i].mask, bm, h, w));
        iseg_rle_to_box_xyxy(&s->inst[i].mask, s->inst[i].box);
        s->inst[i].label = (int64_t)i + 1;
    }
    free(bm);
}

/* mask i equals the row-major bitmap `rows` and is canonical (as iseg_rle_encode makes it) */
static void expect_mask(const struct iseg_rle *r, uint32_t w, uint32_t h, const char *rows) {
    ASSERT_EQ_INT(r->w, w);
    ASSERT_EQ_INT(r->h, h);
    ASSERT_OK(iseg_rle_validate(r));
    uint8_t *bm = malloc((size_t)w * h);
    ASSERT(bm);
    for (uint32_t y = 0; y < h; y++)
        for (uint32_t x = 0; x < w; x++) bm[(size_t)x * h + y] = rows[y * w + x] == '1';
    struct iseg_rle e = {0};
    ASSERT_OK(iseg_rle_encode(&e, bm, h, w));
    ASSERT_EQ_U64(r->m, e.m);
    for (size_t i = 0; i < e.m; i++) ASSERT_EQ_U64(r->cnts[i], e.cnts[i]);
    iseg_rle_free(&e);
    free(bm);
}

static void expect_box(const float *b, float x1, float y1, float x2, float y2) {
    ASSERT_EQ_DBL(b[0], x1);
    ASSERT_EQ_DBL(b[1], y1);
    ASSERT_EQ_DBL(b[2], x2);
    ASSERT_EQ_DBL(b[3], y2);
}

/* w = 4 columns, h = 3 rows */
static const char *const MASK43[] = {"1100"
                                     "0100"
                                     "0110"};

TEST(hflip_4x3) {
    struct iseg_sample s;
    make_sample(&s, 4, 3, 1, MASK43);
    expect_box(s.inst[0].box, 0, 0, 3, 3);
    ASSERT_OK(iseg_augment_hflip(&s));
    expect_mask(&s.inst[0].mask, 4, 3,
                "0011"
                "0010"
                "0110");
    /* column-major 000 001 111 100: counts 5, 5, 2 */
    ASSERT_EQ_U64(s.inst[0].mask.m, 3);
    ASSERT_EQ_U64(s.inst[0].mask.cnts[0], 5);
    ASSERT_EQ_U64(s.inst[0].mask.cnts[1], 5);
    ASSERT_EQ_U64(s.inst[0].mask.cnts[2], 2);
    expect_box(s.inst[0].box, 1, 0, 4, 3); /* x1' = W - x2, x2' = W - x1 */
    const uint8_t *px = s.image.data;
    for (uint32_t y = 0; y < 3; y++)
        for (uint32_t x = 0; x < 4; x++)
            ASSERT_EQ_INT(px[(y * 4 + x) * 3 + 1], y * 16 + (3 - x) * 3 + 1);
    ASSERT_EQ_INT(s.inst[0].label, 1);
    iseg_sample_free(&s);
}

TEST(vflip_4x3) {
    struct iseg_sample s;
    make_sample(&s, 4, 3, 1, MASK43);
    s.inst[0].box[1] = 0.5f; /* a box not from the mask: transformed exactly, not recomputed */
    ASSERT_OK(iseg_augment_vflip(&s));
    expect_mask(&s.inst[0].mask, 4, 3,
                "0110"
                "0100"
                "1100");
    expect_box(s.inst[0].box, 0, 0, 3, 2.5f);
    const uint8_t *px = s.image.data;
    for (uint32_t y = 0; y < 3; y++)
        for (uint32_t x = 0; x < 4; x++)
            ASSERT_EQ_INT(px[(y * 4 + x) * 3 + 2], (2 - y) * 16 + x * 3 + 2);
    iseg_sample_free(&s);
}

/* random masks (blobs, full columns, empty, full) against a bitmap flip; twice = identity */
TEST(flip_random_vs_bitmap) {
    uint64_t rs = 99;
    for (int it = 0; it < 300; it++) {
        uint32_t w = 1 + (uint32_t)(test_rand(&rs) % 9), h = 1 + (uint32_t)(test_rand(&rs) % 9);
        size_t   n = (size_t)(test_rand(&rs) % 4);
        struct iseg_sample s;
        ASSERT_OK(iseg_sample_alloc(&s, w, h, n));
        uint8_t *px = s.image.data;
        for (size_t i = 0; i < (size_t)w * h * 3; i++) px[i] = (uint8_t)test_rand(&rs);
        uint8_t *bm = malloc((size_t)w * h), *fl = malloc((size_t)w * h);
        uint8_t *dec = malloc((size_t)w * h);
        ASSERT(bm && fl && dec);
        struct iseg_rle orig[4];
        for (size_t i = 0; i < n; i++) {
            int      mode = (int)(test_rand(&rs) % 4);
            double   dens = test_rand_unif(&rs);
            for (size_t j = 0; j < (size_t)w * h; j++)
                bm[j] = mode == 0 ? 0 : mode == 1 ? 1 : test_rand_unif(&rs) < dens;
            ASSERT_OK(iseg_rle_encode(&s.inst[i].mask, bm, h, w));
            ASSERT_OK(iseg_rle_copy(&orig[i], &s.inst[i].mask));
            s.inst[i].box[0] = (float)(test_rand(&rs) % (w + 1));
            s.inst[i].box[2] = (float)w - 0.5f;
            s.inst[i].box[1] = 0.25f;
            s.inst[i].box[3] = (float)h;
        }
        uint8_t *img0 = malloc((size_t)w * h * 3);
        ASSERT(img0);
        memcpy(img0, px, (size_t)w * h * 3);
        for (int hv = 0; hv < 2; hv++) {
            ASSERT_OK(hv ? iseg_augment_vflip(&s) : iseg_augment_hflip(&s));
            ASSERT_EQ_U64(s.n, n); /* flips never drop */
            for (size_t i = 0; i < n; i++) {
                ASSERT_OK(iseg_rle_decode(bm, &orig[i]));
                for (uint32_t x = 0; x < w; x++)
                    for (uint32_t y = 0; y < h; y++)
                        fl[(size_t)x * h + y] =
                            hv ? bm[(size_t)x * h + (h - 1 - y)] : bm[(size_t)(w - 1 - x) * h + y];
                struct iseg_rle e = {0};
                ASSERT_OK(iseg_rle_encode(&e, fl, h, w));
                ASSERT_EQ_U64(s.inst[i].mask.m, e.m); /* canonical */
                ASSERT(memcmp(s.inst[i].mask.cnts, e.cnts, e.m * sizeof(uint32_t)) == 0);
                iseg_rle_free(&e);
            }
            ASSERT_OK(hv ? iseg_augment_vflip(&s) : iseg_augment_hflip(&s));
            for (size_t i = 0; i < n; i++) {
                ASSERT_EQ_U64(s.inst[i].mask.m, orig[i].m);
                ASSERT(memcmp(s.inst[i].mask.cnts, orig[i].cnts, orig[i].m * 4) == 0);
                ASSERT_EQ_DBL(s.inst[i].box[1], 0.25);
                ASSERT_EQ_DBL(s.inst[i].box[2], (float)w - 0.5f);
            }
            ASSERT(memcmp(px, img0, (size_t)w * h * 3) == 0);
        }
        for (size_t i = 0; i < n; i++) iseg_rle_free(&orig[i]);
        free(bm), free(fl), free(dec), free(img0);
        iseg_sample_free(&s);
    }
}

TEST(crop_4x3) {
    static const char *const two[] = {"1100"
                                      "0100"
                                      "0110",
                                      "0000"
                                      "0000"
                                      "0001"};
    struct iseg_sample s;
    make_sample(&s, 4, 3, 2, two);
    /* the 2x2 window at (1, 1): instance 0 keeps "10" "11" with a tight box, instance 1 is
     * left without pixels and dropped */
    ASSERT_OK(iseg_augment_crop(&s, 1, 1, 2, 2));
    ASSERT_EQ_U64(s.n, 1);
    ASSERT_EQ_INT(s.image.w, 2);
    ASSERT_EQ_INT(s.image.h, 2);
    expect_mask(&s.inst[0].mask, 2, 2, "1011");
    expect_box(s.inst[0].box, 0, 0, 2, 2);
    ASSERT_EQ_INT(s.inst[0].label, 1);
    const uint8_t *px = s.image.data;
    ASSERT_EQ_INT(px[0], 1 * 16 + 1 * 3); /* pixel (1, 1) of the original, channel 0 */
    ASSERT_EQ_INT(px[(1 * 2 + 1) * 3 + 2], 2 * 16 + 2 * 3 + 2);
    /* outside the image */
    ASSERT_STATUS(iseg_augment_crop(&s, 1, 0, 2, 2), ISEG_STATUS_EINVAL);
    ASSERT_STATUS(iseg_augment_crop(&s, 0, 0, 0, 1), ISEG_STATUS_EINVAL);
    iseg_sample_free(&s);
}

TEST(random_crop_vs_bitmap) {
    uint64_t rs = 7;
    for (int it = 0; it < 200; it++) {
        uint32_t w = 1 + (uint32_t)(test_rand(&rs) % 12), h = 1 + (uint32_t)(test_rand(&rs) % 12);
        size_t   n = (size_t)(test_rand(&rs) % 4);
        struct iseg_sample s;
        ASSERT_OK(iseg_sample_alloc(&s, w, h, n));
        uint8_t *bm = malloc((size_t)w * h * 4 + 1), *img0 = malloc((size_t)w * h * 3);
        ASSERT(bm && img0);
        uint8_t *px = s.image.data;
        for (size_t i = 0; i < (size_t)w * h * 3; i++) px[i] = img0[i] = (uint8_t)test_rand(&rs);
        for (size_t i = 0; i < n; i++) {
            uint8_t *b = bm + i * w * h;
            for (size_t j = 0; j < (size_t)w * h; j++) b[j] = test_rand_unif(&rs) < 0.3;
            b[test_rand(&rs) % ((size_t)w * h)] = 1; /* never empty */
            ASSERT_OK(iseg_rle_encode(&s.inst[i].mask, b, h, w));
            iseg_rle_to_box_xyxy(&s.inst[i].mask, s.inst[i].box);
            s.inst[i].label = (int64_t)i + 1;
        }
        uint32_t mw = 1 + (uint32_t)(test_rand(&rs) % 12), mh = 1 + (uint32_t)(test_rand(&rs) % 12);
        struct iseg_rng r1, r2;
        iseg_rng_seed(&r1, (uint64_t)it);
        r2 = r1;
        ASSERT_OK(iseg_augment_random_crop(&s, &r1, mw, mh));
        uint32_t cw = w < mw ? w : mw, ch = h < mh ? h : mh;
        uint32_t x0 = iseg_rng_below(&r2, w - cw + 1), y0 = iseg_rng_below(&r2, h - ch + 1);
        ASSERT_EQ_INT(s.image.w, cw);
        ASSERT_EQ_INT(s.image.h, ch);
        const uint8_t *q = s.image.data;
        for (uint32_t y = 0; y < ch; y++)
            ASSERT(memcmp(q + (size_t)y * cw * 3, img0 + ((size_t)(y0 + y) * w + x0) * 3,
                          (size_t)cw * 3) == 0);
        /* the kept instances, in order, are the non-empty crops, with tight boxes */
        size_t k = 0;
        uint8_t *cut = malloc((size_t)cw * ch);
        ASSERT(cut);
        for (size_t i = 0; i < n; i++) {
            const uint8_t *b = bm + i * w * h;
            size_t area = 0;
            for (uint32_t x = 0; x < cw; x++)
                for (uint32_t y = 0; y < ch; y++)
                    area += cut[(size_t)x * ch + y] = b[(size_t)(x0 + x) * h + y0 + y];
            if (!area) continue;
            ASSERT(k < s.n);
            ASSERT_EQ_INT(s.inst[k].label, (int64_t)i + 1);
            struct iseg_rle e = {0};
            ASSERT_OK(iseg_rle_encode(&e, cut, ch, cw));
            ASSERT_EQ_U64(s.inst[k].mask.m, e.m);
            ASSERT(memcmp(s.inst[k].mask.cnts, e.cnts, e.m * sizeof(uint32_t)) == 0);
            float tb[4];
            iseg_rle_to_box_xyxy(&e, tb);
            expect_box(s.inst[k].box, tb[0], tb[1], tb[2], tb[3]);
            iseg_rle_free(&e);
            k++;
        }
        ASSERT_EQ_U64(s.n, k);
        free(cut), free(bm), free(img0);
        iseg_sample_free(&s);
    }
}

TEST(resize) {
    static const char *const m2[] = {"1100"
                                     "0100"
                                     "0110",
                                     "0000"
                                     "0001"
                                     "0000"};
    struct iseg_sample s;
    make_sample(&s, 4, 3, 2, m2);
    /* same size: unchanged */
    uint8_t img0[36];
    memcpy(img0, s.image.data, 36);
    ASSERT_OK(iseg_augment_resize(&s, 4, 3));
    ASSERT(memcmp(img0, s.image.data, 36) == 0);
    expect_mask(&s.inst[0].mask, 4, 3, m2[0]);
    /* 2x: every pixel becomes a 2x2 block; boxes doubled */
    ASSERT_OK(iseg_augment_resize(&s, 8, 6));
    ASSERT_EQ_U64(s.n, 2);
    expect_mask(&s.inst[0].mask, 8, 6,
                "11110000"
                "11110000"
                "00110000"
                "00110000"
                "00111100"
                "00111100");
    expect_box(s.inst[0].box, 0, 0, 6, 6);
    expect_box(s.inst[1].box, 6, 2, 8, 4);
    /* down to 2 x 1: nearest picks source column floor(x * 4) = 0, 4; row 0: the single-pixel
     * instance (column 7, row 2-3) vanishes and is dropped */
    ASSERT_OK(iseg_augment_resize(&s, 2, 1));
    ASSERT_EQ_U64(s.n, 1);
    ASSERT_EQ_INT(s.inst[0].label, 1);
    expect_mask(&s.inst[0].mask, 2, 1, "10");
    ASSERT_EQ_INT(s.image.w, 2);
    ASSERT_EQ_INT(s.image.h, 1);
    iseg_sample_free(&s);

    /* bilinear, align_corners = False: [0, 100] -> [0, 25, 75, 100] (torch's values) */
    ASSERT_OK(iseg_sample_alloc(&s, 2, 1, 0));
    uint8_t *px = s.image.data;
    for (int c = 0; c < 3; c++) px[c] = 0, px[3 + c] = 100;
    ASSERT_OK(iseg_augment_resize(&s, 4, 1));
    px = s.image.data;
    ASSERT_EQ_INT(px[0], 0);
    ASSERT_EQ_INT(px[3], 25);
    ASSERT_EQ_INT(px[6], 75);
    ASSERT_EQ_INT(px[9], 100);
    /* a constant image stays constant under any resize */
    memset(s.image.data, 77, 12);
    ASSERT_OK(iseg_augment_resize(&s, 7, 5));
    for (size_t i = 0; i < 7 * 5 * 3; i++) ASSERT_EQ_INT(((uint8_t *)s.image.data)[i], 77);
    ASSERT_STATUS(iseg_augment_resize(&s, 0, 5), ISEG_STATUS_EINVAL);
    iseg_sample_free(&s);
}

TEST(scale_jitter_deterministic) {
    uint32_t sizes[2][2];
    for (int run = 0; run < 2; run++) {
        struct iseg_rng rng;
        iseg_rng_seed(&rng, 7);
        struct iseg_sample s;
        make_sample(&s, 4, 3, 1, MASK43);
        ASSERT_OK(iseg_augment_scale_jitter(&s, &rng, 2.0, 5.0));
        ASSERT(s.image.w >= 8 && s.image.w <= 20);
        ASSERT(s.image.h >= 6 && s.image.h <= 15);
        ASSERT_OK(iseg_sample_validate(&s));
        sizes[run][0] = s.image.w, sizes[run][1] = s.image.h;
        ASSERT_STATUS(iseg_augment_scale_jitter(&s, &rng, 0.0, 1.0), ISEG_STATUS_EINVAL);
        iseg_sample_free(&s);
    }
    ASSERT(sizes[0][0] == sizes[1][0] && sizes[0][1] == sizes[1][1]);
}

TEST(rng) {
    struct iseg_rng a, b;
    iseg_rng_seed(&a, 0);
    iseg_rng_seed(&b, 0);
    for (int i = 0; i < 100; i++) ASSERT_EQ_U64(iseg_rng_next(&a), iseg_rng_next(&b));
    iseg_rng_seed(&b, 1);
    ASSERT(iseg_rng_next(&a) != iseg_rng_next(&b));
    unsigned hist[5] = {0};
    for (int i = 0; i < 5000; i++) {
        double u = iseg_rng_uniform(&a);
        ASSERT(u >= 0.0 && u < 1.0);
        uint32_t k = iseg_rng_below(&a, 5);
        ASSERT(k < 5);
        hist[k]++;
    }
    for (int k = 0; k < 5; k++) ASSERT(hist[k] > 850 && hist[k] < 1150);
    ASSERT_EQ_INT(iseg_rng_below(&a, 1), 0);
}

static const char *const BIG[] = {
    /* 10 x 8: instance 1 a block in the middle, instance 2 a 2x2 square */
    "0000000000"
    "0011111100"
    "0011111100"
    "0011111100"
    "0011111100"
    "0000000000"
    "0000000000"
    "0000000000",
    "0000000000"
    "0000000000"
    "0000000000"
    "0000000000"
    "0000000000"
    "0000000000"
    "0000000110"
    "0000000110"};

TEST(random_erase) {
    struct iseg_erase_params p = iseg_erase_default_params();
    p.p                        = 1.0;
    p.value[0] = 1, p.value[1] = 2, p.value[2] = 3;
    uint32_t first[4] = {0};
    for (uint64_t seed = 1; seed <= 200; seed++) {
        struct iseg_rng rng;
        iseg_rng_seed(&rng, seed);
        struct iseg_sample s;
        make_sample(&s, 10, 8, 2, BIG);
        uint8_t img0[240];
        memcpy(img0, s.image.data, 240);
        uint32_t r[4];
        ASSERT_OK(iseg_augment_random_erase(&s, &rng, &p, r));
        if (seed == 1) memcpy(first, r, sizeof(r));
        if (r[2] == 0) { /* all 10 attempts failed: nothing changed */
            ASSERT(memcmp(img0, s.image.data, 240) == 0);
            iseg_sample_free(&s);
            continue;
        }
        ASSERT(r[0] + r[2] <= 10 && r[1] + r[3] <= 8 && r[2] < 10 && r[3] < 8);
        const uint8_t *px = s.image.data;
        for (uint32_t y = 0; y < 8; y++)
            for (uint32_t x = 0; x < 10; x++) {
                bool in = x >= r[0] && x < r[0] + r[2] && y >= r[1] && y < r[1] + r[3];
                for (int c = 0; c < 3; c++) {
                    size_t k = (y * 10 + x) * 3 + c;
                    ASSERT_EQ_INT(px[k], in ? (uint8_t)(c + 1) : img0[k]);
                }
            }
        /* default policy: masks and boxes unchanged */
        ASSERT_EQ_U64(s.n, 2);
        expect_mask(&s.inst[0].mask, 10, 8, BIG[0]);
        expect_box(s.inst[0].box, 2, 1, 8, 5);
        iseg_sample_free(&s);
    }
    /* same seed, same region */
    struct iseg_rng rng;
    iseg_rng_seed(&rng, 1);
    struct iseg_sample s;
    make_sample(&s, 10, 8, 2, BIG);
    uint32_t r[4];
    ASSERT_OK(iseg_augment_random_erase(&s, &rng, &p, r));
    ASSERT(memcmp(r, first, sizeof(r)) == 0);
    iseg_sample_free(&s);
    /* p = 0: never */
    p.p = 0.0;
    make_sample(&s, 10, 8, 2, BIG);
    ASSERT_OK(iseg_augment_random_erase(&s, &rng, &p, r));
    ASSERT(r[2] == 0 && r[3] == 0);
    p.p         = 1.0;
    p.scale_min = 0.5; /* bad: min > max */
    ASSERT_STATUS(iseg_augment_random_erase(&s, &rng, &p, r), ISEG_STATUS_EINVAL);
    iseg_sample_free(&s);
}

TEST(random_erase_subtract) {
    struct iseg_erase_params p = iseg_erase_default_params();
    p.p = 1.0, p.subtract_from_masks = true, p.fill = ISEG_FILL_RANDOM;
    p.scale_min = 0.1, p.scale_max = 0.3;
    int n_dropped = 0, n_shrunk = 0;
    for (uint64_t seed = 1; seed <= 300; seed++) {
        struct iseg_rng rng;
        iseg_rng_seed(&rng, seed);
        struct iseg_sample s;
        make_sample(&s, 10, 8, 2, BIG);
        uint32_t r[4];
        ASSERT_OK(iseg_augment_random_erase(&s, &rng, &p, r));
        ASSERT_OK(iseg_sample_validate(&s));
        /* expected: each mask minus the rectangle; dropped when empty */
        size_t k = 0;
        for (int i = 0; i < 2; i++) {
            char rows[81];
            memcpy(rows, BIG[i], 81);
            for (uint32_t y = 0; y < 8; y++)
                for (uint32_t x = 0; x < 10; x++)
                    if (x >= r[0] && x < r[0] + r[2] && y >= r[1] && y < r[1] + r[3])
                        rows[y * 10 + x] = '0';
            if (!strchr(rows, '1')) {
                n_dropped++;
                continue;
            }
            ASSERT(k < s.n);
            ASSERT_EQ_INT(s.inst[k].label, i + 1);
            expect_mask(&s.inst[k].mask, 10, 8, rows);
            double bb[4];
            iseg_rle_to_bbox(&s.inst[k].mask, bb);
            if (strcmp(rows, BIG[i]) != 0) { /* changed: tight box of what remains */
                n_shrunk++;
                expect_box(s.inst[k].box, (float)bb[0], (float)bb[1], (float)(bb[0] + bb[2]),
                           (float)(bb[1] + bb[3]));
            }
            k++;
        }
        ASSERT_EQ_U64(s.n, k);
        iseg_sample_free(&s);
    }
    ASSERT(n_dropped > 0 && n_shrunk > 0); /* both paths exercised */
}

TEST(strip_occlusion) {
    struct iseg_strip_params p = iseg_strip_default_params();
    p.p = 1.0, p.orient = ISEG_STRIP_VERTICAL, p.n_min = 2, p.n_max = 2;
    p.width_min = 1, p.width_max = 1;
    struct iseg_rng rng;
    iseg_rng_seed(&rng, 5);
    struct iseg_sample s;
    make_sample(&s, 10, 8, 2, BIG);
    ASSERT_OK(iseg_augment_strip_occlusion(&s, &rng, &p));
    /* 1 or 2 full grey columns (bars may overlap), masks unchanged */
    const uint8_t *px = s.image.data;
    int cols = 0;
    for (uint32_t x = 0; x < 10; x++) {
        int grey = 0;
        for (uint32_t y = 0; y < 8; y++) grey += px[(y * 10 + x) * 3] == 128 &&
                                                 px[(y * 10 + x) * 3 + 2] == 128;
        ASSERT(grey == 0 || grey == 8);
        cols += grey == 8;
    }
    ASSERT(cols == 1 || cols == 2);
    expect_mask(&s.inst[0].mask, 10, 8, BIG[0]);
    iseg_sample_free(&s);

    /* horizontal railings subtracted from the masks; all masks stay valid h x w RLEs */
    p.orient = ISEG_STRIP_HORIZONTAL, p.subtract_from_masks = true;
    p.n_min = 1, p.n_max = 3, p.width_min = 1, p.width_max = 3;
    for (uint64_t seed = 0; seed < 100; seed++) {
        iseg_rng_seed(&rng, seed);
        make_sample(&s, 10, 8, 2, BIG);
        ASSERT_OK(iseg_augment_strip_occlusion(&s, &rng, &p));
        ASSERT_OK(iseg_sample_validate(&s));
        px = s.image.data;
        bool bar[8];
        for (uint32_t y = 0; y < 8; y++) bar[y] = px[y * 30] == 128 && px[y * 30 + 1] == 128;
        for (size_t i = 0; i < s.n; i++) {
            uint8_t bm[80];
            ASSERT_OK(iseg_rle_decode(bm, &s.inst[i].mask));
            for (uint32_t x = 0; x < 10; x++)
                for (uint32_t y = 0; y < 8; y++) {
                    bool want = BIG[s.inst[i].label - 1][y * 10 + x] == '1' && !bar[y];
                    ASSERT_EQ_INT(bm[x * 8 + y], want);
                }
        }
        iseg_sample_free(&s);
    }
    p.width_min = 0;
    make_sample(&s, 10, 8, 0, NULL);
    ASSERT_STATUS(iseg_augment_strip_occlusion(&s, &rng, &p), ISEG_STATUS_EINVAL);
    iseg_sample_free(&s);
}

TEST(errors_leave_sample_unchanged) {
    struct iseg_sample s;
    make_sample(&s, 4, 3, 1, MASK43);
    s.inst[0].mask.h = 2; /* wrong size */
    ASSERT_STATUS(iseg_augment_hflip(&s), ISEG_STATUS_ESHAPE);
    ASSERT_STATUS(iseg_augment_resize(&s, 8, 6), ISEG_STATUS_ESHAPE);
    ASSERT_EQ_INT(s.image.w, 4);
    s.inst[0].mask.h = 3;
    s.inst[0].mask.cnts[0]++; /* counts no longer sum to h*w */
    ASSERT_STATUS(iseg_augment_vflip(&s), ISEG_STATUS_EFORMAT);
    s.inst[0].mask.cnts[0]--;
    s.image.c = 4;
    ASSERT_STATUS(iseg_augment_hflip(&s), ISEG_STATUS_EINVAL);
    s.image.c = 3;
    ASSERT_OK(iseg_sample_validate(&s));
    iseg_sample_free(&s);
    iseg_sample_free(&s); /* twice is fine */
    iseg_sample_free(NULL);
}

TEST_LIST = {
    TEST_ENTRY(hflip_4x3),
    TEST_ENTRY(vflip_4x3),
    TEST_ENTRY(flip_random_vs_bitmap),
    TEST_ENTRY(crop_4x3),
    TEST_ENTRY(random_crop_vs_bitmap),
    TEST_ENTRY(resize),
    TEST_ENTRY(scale_jitter_deterministic),
    TEST_ENTRY(rng),
    TEST_ENTRY(random_erase),
    TEST_ENTRY(random_erase_subtract),
    TEST_ENTRY(strip_occlusion),
    TEST_ENTRY(errors_leave_sample_unchanged),
    TEST_END,
};
