/* test_viz.c - overlay drawing (src/viz/draw.c), the bitmap font (font.c) and the COCO name
 * tables (coco_names.c). Pixel values are checked exactly, against numbers computed by hand or
 * against brute-force bitmap references written here. */
#define _POSIX_C_SOURCE 200809L
#include "iseg/image.h"
#include "iseg/mask.h"
#include "iseg/viz.h"
#include "test.h"

#ifndef ISEG_BINARY_DIR
#define ISEG_BINARY_DIR "."
#endif

/* ---- helpers ---- */

#define GUARD 4096 /* bytes of canary on each side of an image's pixels */

/* An 8-bit RGB image filled with (v, v, v) whose pixels sit between two canary zones, so that
 * out-of-bounds writes show up without a sanitizer too. Free with guarded_free(). */
static void guarded_image(struct iseg_image *img, uint32_t w, uint32_t h, uint8_t v) {
    size_t   n   = (size_t)w * h * 3;
    uint8_t *buf = malloc(n + 2 * GUARD);
    ASSERT(buf);
    memset(buf, 0xA5, GUARD);
    memset(buf + GUARD, v, n);
    memset(buf + GUARD + n, 0xA5, GUARD);
    *img = (struct iseg_image){.w = w, .h = h, .c = 3, .depth = 8, .data = buf + GUARD};
}

static void guarded_free(struct iseg_image *img) {
    uint8_t *buf = (uint8_t *)img->data - GUARD;
    size_t   n   = (size_t)img->w * img->h * 3;
    for (size_t i = 0; i < GUARD; i++) {
        ASSERT_MSG(buf[i] == 0xA5, "write %zu bytes before the image", GUARD - i);
        ASSERT_MSG(buf[GUARD + n + i] == 0xA5, "write %zu bytes after the image", i);
    }
    free(buf);
    memset(img, 0, sizeof(*img));
}

static const uint8_t *px(const struct iseg_image *img, uint32_t x, uint32_t y) {
    return (const uint8_t *)img->data + ((size_t)y * img->w + x) * 3;
}

#define ASSERT_PX(img, x, y, r, g, b)                                                          \
    do {                                                                                       \
        const uint8_t *p_ = px((img), (x), (y));                                               \
        if (p_[0] != (r) || p_[1] != (g) || p_[2] != (b))                                      \
            TEST_FAIL("pixel (%d, %d): got (%d, %d, %d), expected (%d, %d, %d)", (int)(x),     \
                      (int)(y), p_[0], p_[1], p_[2], (int)(r), (int)(g), (int)(b));            \
    } while (0)

/* RLE of a column-major h x w bitmap */
static void rle_of(struct iseg_rle *r, const uint8_t *bits, uint32_t h, uint32_t w) {
    ASSERT_OK(iseg_rle_encode(r, bits, h, w));
}

/* h x w bitmap (column-major) of the rectangle [x0, x1) x [y0, y1) */
static uint8_t *rect_bits(uint32_t h, uint32_t w, uint32_t x0, uint32_t y0, uint32_t x1,
                          uint32_t y1) {
    uint8_t *b = calloc((size_t)h * w, 1);
    ASSERT(b);
    for (uint32_t x = x0; x < x1; x++)
        for (uint32_t y = y0; y < y1; y++) b[(size_t)x * h + y] = 1;
    return b;
}

static struct iseg_viz_params only_masks(float alpha, int outline) {
    struct iseg_viz_params p = iseg_viz_default_params();
    p.mask_alpha             = alpha;
    p.outline_width          = outline;
    p.draw_boxes             = false;
    p.draw_labels            = false;
    return p;
}

/* ---- parameters and palette ---- */

TEST(viz_defaults) {
    struct iseg_viz_params p = iseg_viz_default_params();
    ASSERT_NEAR(p.mask_alpha, 0.45, 1e-7);
    ASSERT_EQ_INT(p.outline_width, 2);
    ASSERT_EQ_INT(p.box_width, 2);
    ASSERT_EQ_INT(p.text_scale, 0);
    ASSERT(p.draw_boxes && p.draw_masks && p.draw_labels);
}

TEST(viz_palette) {
    uint8_t a[3], b[3];
    for (int i = 0; i < ISEG_VIZ_N_COLORS; i++) {
        iseg_viz_color(i, a);
        for (int j = 0; j < i; j++) {
            iseg_viz_color(j, b);
            int d = abs(a[0] - b[0]) + abs(a[1] - b[1]) + abs(a[2] - b[2]);
            ASSERT_MSG(d >= 40, "colours %d and %d too close", i, j);
        }
        iseg_viz_color(i + ISEG_VIZ_N_COLORS, b);
        ASSERT(memcmp(a, b, 3) == 0);
        iseg_viz_color(i - 3 * ISEG_VIZ_N_COLORS, b);
        ASSERT(memcmp(a, b, 3) == 0);
    }
    iseg_viz_color(0, a);
    ASSERT(a[0] == 221 && a[1] == 52 && a[2] == 60);
    iseg_viz_color(-1, a);
    iseg_viz_color(ISEG_VIZ_N_COLORS - 1, b);
    ASSERT(memcmp(a, b, 3) == 0);
}

/* ---- masks ---- */

/* 8 x 6 image of gray 100; a 4 x 3 mask at x 2..5, y 1..3; colour 0 = (221, 52, 60);
 * alpha 0.45 -> A = round(0.45 * 256) = 115:
 *   R = (100 * 141 + 221 * 115 + 128) >> 8 = 39643 >> 8 = 154
 *   G = (100 * 141 +  52 * 115 + 128) >> 8 = 20208 >> 8 = 78
 *   B = (100 * 141 +  60 * 115 + 128) >> 8 = 21128 >> 8 = 82 */
TEST(viz_mask_fill_exact) {
    struct iseg_image img;
    guarded_image(&img, 8, 6, 100);
    uint8_t            *bits = rect_bits(6, 8, 2, 1, 6, 4);
    struct iseg_rle     r    = {0};
    rle_of(&r, bits, 6, 8);
    struct iseg_viz_det d = {.x = 0, .y = 0, .w = 0, .h = 0, .mask = &r, .score = -1, .color = 0};
    struct iseg_viz_params p = only_masks(0.45f, 0);
    ASSERT_OK(iseg_viz_overlay(&img, &d, 1, &p));
    for (uint32_t y = 0; y < 6; y++) {
        for (uint32_t x = 0; x < 8; x++) {
            if (bits[x * 6 + y]) ASSERT_PX(&img, x, y, 154, 78, 82);
            else ASSERT_PX(&img, x, y, 100, 100, 100);
        }
    }
    /* outline 1 on the same mask: the rectangle's border opaque, its 2 x 1 inside blended */
    guarded_free(&img);
    guarded_image(&img, 8, 6, 100);
    p = only_masks(0.45f, 1);
    ASSERT_OK(iseg_viz_overlay(&img, &d, 1, &p));
    for (uint32_t y = 0; y < 6; y++) {
        for (uint32_t x = 0; x < 8; x++) {
            bool in = bits[x * 6 + y], inner = x >= 3 && x <= 4 && y == 2;
            if (inner) ASSERT_PX(&img, x, y, 154, 78, 82);
            else if (in) ASSERT_PX(&img, x, y, 221, 52, 60);
            else ASSERT_PX(&img, x, y, 100, 100, 100);
        }
    }
    /* alpha 1 paints the colour, alpha 0 leaves the pixels */
    p = only_masks(1.0f, 0);
    ASSERT_OK(iseg_viz_overlay(&img, &d, 1, &p));
    ASSERT_PX(&img, 3, 2, 221, 52, 60);
    d.color = 1;
    p       = only_masks(0.0f, 0);
    ASSERT_OK(iseg_viz_overlay(&img, &d, 1, &p));
    ASSERT_PX(&img, 3, 2, 221, 52, 60);
    iseg_rle_free(&r);
    free(bits);
    guarded_free(&img);
}

/* Brute force: mask pixels with a pixel outside the mask or the image within distance t. */
static bool is_outline(const uint8_t *bits, uint32_t h, uint32_t w, uint32_t x, uint32_t y,
                       int t) {
    if (!bits[(size_t)x * h + y]) return false;
    for (int dx = -t; dx <= t; dx++) {
        for (int dy = -t; dy <= t; dy++) {
            if (dx * dx + dy * dy > t * t) continue;
            long xx = (long)x + dx, yy = (long)y + dy;
            if (xx < 0 || yy < 0 || xx >= (long)w || yy >= (long)h) return true;
            if (!bits[(size_t)xx * h + (size_t)yy]) return true;
        }
    }
    return false;
}

/* Random blobby masks of every kind of shape (holes, one-pixel lines, edges of the image) and
 * widths 1..5: the span-based outline equals the brute-force one, pixel for pixel. */
TEST(viz_outline_matches_brute_force) {
    uint64_t seed = 7;
    for (int trial = 0; trial < 60; trial++) {
        uint32_t w = 1 + (uint32_t)(test_rand(&seed) % 40), h = 1 + (uint32_t)(test_rand(&seed) % 30);
        int      t = 1 + (int)(test_rand(&seed) % 5);
        uint8_t *bits = calloc((size_t)w * h, 1);
        ASSERT(bits);
        /* union of random discs and rectangles, then random pixel noise */
        int nshapes = 1 + (int)(test_rand(&seed) % 5);
        for (int s = 0; s < nshapes; s++) {
            double cx = test_rand_unif(&seed) * w, cy = test_rand_unif(&seed) * h;
            double rr = 1 + test_rand_unif(&seed) * 12;
            bool   disc = test_rand(&seed) & 1;
            for (uint32_t x = 0; x < w; x++)
                for (uint32_t y = 0; y < h; y++) {
                    double dx = x - cx, dy = y - cy;
                    bool   in = disc ? dx * dx + dy * dy <= rr * rr
                                     : fabs(dx) <= rr && fabs(dy) <= rr / 2;
                    if (in) bits[(size_t)x * h + y] = 1;
                }
        }
        for (int k = 0; k < (int)(w * h / 10); k++)
            bits[test_rand(&seed) % ((size_t)w * h)] ^= 1;
        if (trial == 0) memset(bits, 1, (size_t)w * h); /* full mask: all on the image border */
        struct iseg_rle r = {0};
        rle_of(&r, bits, h, w);
        struct iseg_image img;
        guarded_image(&img, w, h, 0);
        struct iseg_viz_det    d = {.mask = &r, .score = -1, .color = 2};
        struct iseg_viz_params p = only_masks(0.0f, t);
        ASSERT_OK(iseg_viz_overlay(&img, &d, 1, &p));
        uint8_t c[3];
        iseg_viz_color(2, c);
        for (uint32_t x = 0; x < w; x++) {
            for (uint32_t y = 0; y < h; y++) {
                bool want = is_outline(bits, h, w, x, y, t);
                bool got  = px(&img, x, y)[0] == c[0];
                ASSERT_MSG(want == got, "trial %d (%ux%u, t=%d): pixel (%u, %u) outline %d, "
                                        "expected %d", trial, (unsigned)w, (unsigned)h, t,
                           (unsigned)x, (unsigned)y, got, want);
            }
        }
        guarded_free(&img);
        iseg_rle_free(&r);
        free(bits);
    }
}

/* A non-canonical RLE (runs of 0 zeros between runs of ones) outlines like its canonical form. */
TEST(viz_outline_noncanonical_rle) {
    /* 6 x 3 image, column-major: rows 0..2 of column 1 set, written as three 1-pixel runs of
     * ones separated by empty runs of zeros */
    uint32_t          cnts[] = {6, 1, 0, 1, 0, 1, 0, 0, 9};
    struct iseg_rle   r      = {.h = 6, .w = 3, .m = 9, .cnts = cnts};
    struct iseg_image img;
    guarded_image(&img, 3, 6, 0);
    struct iseg_viz_det    d = {.mask = &r, .score = -1, .color = 0};
    struct iseg_viz_params p = only_masks(0.0f, 1);
    ASSERT_OK(iseg_viz_overlay(&img, &d, 1, &p));
    /* every pixel of a 1-wide column is on the outline */
    for (uint32_t y = 0; y < 3; y++) ASSERT_PX(&img, 1, y, 221, 52, 60);
    for (uint32_t y = 3; y < 6; y++) ASSERT_PX(&img, 1, y, 0, 0, 0);
    guarded_free(&img);
}

/* ---- boxes ---- */

static bool in_box_band(int64_t x, int64_t y, int64_t x0, int64_t y0, int64_t x1, int64_t y1,
                        int64_t bw) {
    if (x < x0 || x >= x1 || y < y0 || y >= y1) return false;
    return x < x0 + bw || x >= x1 - bw || y < y0 + bw || y >= y1 - bw;
}

TEST(viz_box_edges) {
    struct iseg_image img;
    guarded_image(&img, 12, 10, 0);
    struct iseg_viz_params p = iseg_viz_default_params();
    p.draw_labels            = false;
    p.box_width              = 1;
    /* [2.4, 6.6) rounds to columns 2..6, [1, 5) to rows 1..4 */
    struct iseg_viz_det d = {.x = 2.4f, .y = 1.0f, .w = 4.2f, .h = 4.0f, .score = 0.5f,
                             .color = 1};
    ASSERT_OK(iseg_viz_overlay(&img, &d, 1, &p));
    for (int64_t y = 0; y < 10; y++)
        for (int64_t x = 0; x < 12; x++) {
            if (in_box_band(x, y, 2, 1, 7, 5, 1)) ASSERT_PX(&img, x, y, 30, 120, 200);
            else ASSERT_PX(&img, x, y, 0, 0, 0);
        }
    ASSERT_PX(&img, 2, 1, 30, 120, 200);
    ASSERT_PX(&img, 6, 4, 30, 120, 200);
    ASSERT_PX(&img, 3, 2, 0, 0, 0);
    guarded_free(&img);

    /* width 2 (the default), and a box too small for its band: filled */
    guarded_image(&img, 12, 10, 0);
    p.box_width = 2;
    struct iseg_viz_det ds[2] = {
        {.x = 1, .y = 1, .w = 8, .h = 7, .score = -1, .color = 1},
        {.x = 10, .y = 8, .w = 0.2f, .h = 1.4f, .score = -1, .color = 0}, /* 1 x 1 */
    };
    ASSERT_OK(iseg_viz_overlay(&img, ds, 2, &p));
    for (int64_t y = 0; y < 10; y++)
        for (int64_t x = 0; x < 12; x++) {
            if (x == 10 && y == 8) ASSERT_PX(&img, x, y, 221, 52, 60);
            else if (in_box_band(x, y, 1, 1, 9, 8, 2)) ASSERT_PX(&img, x, y, 30, 120, 200);
            else ASSERT_PX(&img, x, y, 0, 0, 0);
        }
    guarded_free(&img);
}

/* Boxes half or wholly outside, huge and tiny coordinates: only in-image pixels change. */
TEST(viz_clipping) {
    struct iseg_image img;
    guarded_image(&img, 9, 7, 0);
    struct iseg_viz_params p = iseg_viz_default_params();
    p.box_width              = 3;
    p.text_scale             = 3;
    struct iseg_viz_det ds[] = {
        {.x = -5, .y = -5, .w = 8, .h = 8, .label = "person", .score = 0.98f, .color = 0},
        {.x = 6, .y = 4, .w = 100, .h = 100, .label = "dog", .score = 0.5f, .color = 1},
        {.x = -1e30f, .y = -1e30f, .w = 3e30f, .h = 3e30f, .label = "all", .score = 0.1f},
        {.x = 1e30f, .y = 1e30f, .w = 1, .h = 1, .label = "far", .score = 0.2f, .color = 3},
        {.x = -100, .y = 3, .w = 50, .h = 2, .label = "left", .score = 0.3f, .color = 4},
        {.x = 3, .y = 3, .w = 0, .h = 0, .label = "\xC3\xA9t\xC3\xA9 \xFF", .score = 2.5f},
    };
    ASSERT_OK(iseg_viz_overlay(&img, ds, sizeof(ds) / sizeof(ds[0]), &p));
    /* the box at (-5, -5) .. (3, 3) with width 3 shows its right and bottom bands */
    guarded_free(&img);

    /* one box: the bands that fall inside are exact */
    guarded_image(&img, 9, 7, 0);
    p.draw_labels = false;
    ASSERT_OK(iseg_viz_overlay(&img, ds, 1, &p));
    for (int64_t y = 0; y < 7; y++)
        for (int64_t x = 0; x < 9; x++) {
            if (in_box_band(x, y, -5, -5, 3, 3, 3)) ASSERT_PX(&img, x, y, 221, 52, 60);
            else ASSERT_PX(&img, x, y, 0, 0, 0);
        }
    guarded_free(&img);
}

/* ---- labels and text ---- */

TEST(viz_text_size) {
    int w = -1, h = -1;
    iseg_viz_text_size("", 1, &w, &h);
    ASSERT(w == 0 && h == 0);
    iseg_viz_text_size("a", 1, &w, &h);
    ASSERT(w == 5 && h == 9);
    iseg_viz_text_size("ab", 2, &w, &h);
    ASSERT(w == 22 && h == 18);
    iseg_viz_text_size("a\nbcd", 1, &w, &h);
    ASSERT(w == 17 && h == 19);
    /* one UTF-8 sequence is one character; a stray byte is one too */
    iseg_viz_text_size("\xC3\xA9", 1, &w, &h);
    ASSERT(w == 5);
    iseg_viz_text_size("\xE2\x82\xAC\x80x", 1, &w, &h);
    ASSERT(w == 17);
}

/* Letter 'T' at (x, y) = (2, 1), scale 2: its top bar is rows 1..2, columns 2..11; its stem
 * columns 6..7 down to row 14; the pixel beside the stem stays. */
TEST(viz_text_pixels) {
    struct iseg_image img;
    guarded_image(&img, 16, 20, 0);
    const uint8_t white[3] = {255, 255, 255};
    ASSERT_OK(iseg_viz_text(&img, 2, 1, "T", 2, white));
    for (uint32_t x = 2; x < 12; x++) ASSERT_PX(&img, x, 1, 255, 255, 255);
    for (uint32_t x = 2; x < 12; x++) ASSERT_PX(&img, x, 2, 255, 255, 255);
    for (uint32_t y = 3; y < 15; y++) {
        ASSERT_PX(&img, 6, y, 255, 255, 255);
        ASSERT_PX(&img, 7, y, 255, 255, 255);
        ASSERT_PX(&img, 5, y, 0, 0, 0);
        ASSERT_PX(&img, 8, y, 0, 0, 0);
    }
    ASSERT_PX(&img, 6, 15, 0, 0, 0);
    ASSERT_PX(&img, 1, 1, 0, 0, 0);
    ASSERT_PX(&img, 12, 1, 0, 0, 0);
    /* glyph ink count equals the number of set bits times scale^2 */
    int n = 0;
    for (uint32_t y = 0; y < 20; y++)
        for (uint32_t x = 0; x < 16; x++) n += px(&img, x, y)[0] == 255;
    ASSERT_EQ_INT(n, (5 + 6) * 4);
    guarded_free(&img);

    /* clipped everywhere, never out of bounds */
    guarded_image(&img, 7, 5, 0);
    static const char *texts[] = {"Hello, world!", "gjpqy\n|||", "\xF0\x9F\x98\x80 ok", "~"};
    for (int t = 0; t < 4; t++)
        for (int x = -40; x <= 10; x += 3)
            for (int y = -30; y <= 8; y += 2) ASSERT_OK(iseg_viz_text(&img, x, y, texts[t], 3, white));
    ASSERT_OK(iseg_viz_text(&img, 2147483600, 2147483600, "far", 64, white));
    ASSERT_OK(iseg_viz_text(&img, -2147483647, -2147483647, "far", 64, white));
    ASSERT_STATUS(iseg_viz_text(&img, 0, 0, "x", 0, white), ISEG_STATUS_EINVAL);
    ASSERT_STATUS(iseg_viz_text(&img, 0, 0, "x", ISEG_VIZ_MAX_SCALE + 1, white),
                  ISEG_STATUS_EINVAL);
    guarded_free(&img);
}

/* Label "a" (no score) on a box at (10, 30), scale 1: text 5 x 9, tab 9 x 11 (2 px padding
 * left and right, 1 px above and below) at x 10..18, y 19..29, just above the box. The text
 * starts at (12, 20); 'a' row 2 is ".###." -> white at x 13..15, y 22. */
TEST(viz_label_tab) {
    struct iseg_image img;
    guarded_image(&img, 80, 60, 0);
    struct iseg_viz_params p = iseg_viz_default_params();
    p.text_scale             = 1;
    p.draw_boxes             = false;
    struct iseg_viz_det d    = {.x = 10, .y = 30, .w = 20, .h = 20, .label = "a", .score = -1,
                                .color = 2};
    ASSERT_OK(iseg_viz_overlay(&img, &d, 1, &p));
    for (uint32_t y = 0; y < 60; y++)
        for (uint32_t x = 0; x < 80; x++) {
            bool in_tab = x >= 10 && x <= 18 && y >= 19 && y <= 29;
            if (!in_tab) ASSERT_PX(&img, x, y, 0, 0, 0);
        }
    ASSERT_PX(&img, 10, 19, 40, 150, 70); /* tab corners: the colour */
    ASSERT_PX(&img, 18, 29, 40, 150, 70);
    ASSERT_PX(&img, 12, 22, 40, 150, 70); /* 'a' row 2: .###. */
    for (uint32_t x = 13; x <= 15; x++) ASSERT_PX(&img, x, 22, 255, 255, 255);
    ASSERT_PX(&img, 16, 22, 40, 150, 70);
    ASSERT_PX(&img, 16, 23, 255, 255, 255); /* row 3: ....# */
    guarded_free(&img);

    /* box at the top: the tab goes inside, from the box's top edge */
    guarded_image(&img, 80, 60, 0);
    d.y = 4;
    ASSERT_OK(iseg_viz_overlay(&img, &d, 1, &p));
    ASSERT_PX(&img, 10, 4, 40, 150, 70);
    ASSERT_PX(&img, 18, 14, 40, 150, 70);
    ASSERT_PX(&img, 13, 7, 255, 255, 255);
    ASSERT_PX(&img, 10, 3, 0, 0, 0);
    ASSERT_PX(&img, 10, 15, 0, 0, 0);
    guarded_free(&img);

    /* box at the right edge: the tab moves left to stay whole */
    guarded_image(&img, 80, 60, 0);
    d.x = 76;
    d.y = 30;
    ASSERT_OK(iseg_viz_overlay(&img, &d, 1, &p));
    ASSERT_PX(&img, 71, 19, 40, 150, 70);
    ASSERT_PX(&img, 79, 29, 40, 150, 70);
    ASSERT_PX(&img, 70, 19, 0, 0, 0);
    guarded_free(&img);

    /* the text: "label 0.98" with the score rounded to 2 decimals; no label, no score: no tab */
    guarded_image(&img, 80, 60, 0);
    struct iseg_viz_det ds[2] = {
        {.x = 10, .y = 30, .w = 20, .h = 20, .label = "a", .score = 0.976f, .color = 2},
        {.x = 40, .y = 30, .w = 20, .h = 20, .label = NULL, .score = -1, .color = 3},
    };
    ASSERT_OK(iseg_viz_overlay(&img, ds, 2, &p));
    struct iseg_image ref;
    guarded_image(&ref, 80, 60, 0);
    int tw, th;
    iseg_viz_text_size("a 0.98", 1, &tw, &th);
    uint8_t g[3];
    iseg_viz_color(2, g);
    for (int y = 30 - (th + 2); y < 30; y++)
        for (int x = 10; x < 10 + tw + 4; x++) memcpy((uint8_t *)ref.data + (y * 80 + x) * 3, g, 3);
    const uint8_t white[3] = {255, 255, 255};
    ASSERT_OK(iseg_viz_text(&ref, 12, 30 - th - 1, "a 0.98", 1, white));
    ASSERT(memcmp(img.data, ref.data, 80 * 60 * 3) == 0);
    guarded_free(&ref);
    guarded_free(&img);
}

/* Detections are drawn by increasing score: the best one ends on top whatever the input order;
 * labels come after every mask and box. */
TEST(viz_draw_order) {
    uint8_t        *bits = rect_bits(10, 10, 0, 0, 10, 10);
    struct iseg_rle r    = {0};
    rle_of(&r, bits, 10, 10);
    struct iseg_viz_params p = only_masks(1.0f, 0);
    for (int flip = 0; flip < 2; flip++) {
        struct iseg_image img;
        guarded_image(&img, 10, 10, 0);
        struct iseg_viz_det ds[3] = {
            {.mask = &r, .score = 0.9f, .color = 0},
            {.mask = &r, .score = 0.3f, .color = 1},
            {.mask = &r, .score = -1, .color = 2},
        };
        if (flip) {
            struct iseg_viz_det t = ds[0];
            ds[0]                 = ds[2];
            ds[2]                 = t;
        }
        ASSERT_OK(iseg_viz_overlay(&img, ds, 3, &p));
        ASSERT_PX(&img, 5, 5, 221, 52, 60);
        guarded_free(&img);
    }
    iseg_rle_free(&r);
    free(bits);
}

/* ---- errors and degenerate input ---- */

TEST(viz_errors) {
    struct iseg_image img;
    guarded_image(&img, 8, 6, 77);
    uint8_t        *bits = rect_bits(6, 8, 1, 1, 3, 3);
    struct iseg_rle ok = {0}, wrong = {0};
    rle_of(&ok, bits, 6, 8);
    rle_of(&wrong, bits, 8, 6); /* 8 x 6 data for a 6 x 8 mask: wrong size */
    struct iseg_viz_det ds[2] = {
        {.x = 1, .y = 1, .w = 3, .h = 3, .mask = &ok, .label = "x", .score = 0.5f},
        {.x = 1, .y = 1, .w = 3, .h = 3, .mask = &wrong, .label = "y", .score = 0.6f},
    };
    ASSERT_STATUS(iseg_viz_overlay(&img, ds, 2, NULL), ISEG_STATUS_EINVAL);
    /* counts that do not add up */
    uint32_t        bad_cnts[] = {3, 2};
    struct iseg_rle bad        = {.h = 6, .w = 8, .m = 2, .cnts = bad_cnts};
    ds[1].mask                 = &bad;
    ASSERT_STATUS(iseg_viz_overlay(&img, ds, 2, NULL), ISEG_STATUS_EFORMAT);
    ds[1].mask = NULL;
    ds[1].w    = NAN;
    ASSERT_STATUS(iseg_viz_overlay(&img, ds, 2, NULL), ISEG_STATUS_EINVAL);
    ds[1].w = -1;
    ASSERT_STATUS(iseg_viz_overlay(&img, ds, 2, NULL), ISEG_STATUS_EINVAL);
    ds[1].w = INFINITY;
    ASSERT_STATUS(iseg_viz_overlay(&img, ds, 2, NULL), ISEG_STATUS_EINVAL);
    /* nothing was drawn by the failed calls */
    for (size_t i = 0; i < 8 * 6 * 3; i++) ASSERT(((uint8_t *)img.data)[i] == 77);

    struct iseg_viz_params p = iseg_viz_default_params();
    ds[1].w                  = 3;
    p.mask_alpha             = 1.5f;
    ASSERT_STATUS(iseg_viz_overlay(&img, ds, 2, &p), ISEG_STATUS_EINVAL);
    p.mask_alpha = NAN;
    ASSERT_STATUS(iseg_viz_overlay(&img, ds, 2, &p), ISEG_STATUS_EINVAL);
    p               = iseg_viz_default_params();
    p.outline_width = -1;
    ASSERT_STATUS(iseg_viz_overlay(&img, ds, 2, &p), ISEG_STATUS_EINVAL);
    p.outline_width = ISEG_VIZ_MAX_WIDTH + 1;
    ASSERT_STATUS(iseg_viz_overlay(&img, ds, 2, &p), ISEG_STATUS_EINVAL);
    p            = iseg_viz_default_params();
    p.box_width  = -2;
    ASSERT_STATUS(iseg_viz_overlay(&img, ds, 2, &p), ISEG_STATUS_EINVAL);
    p            = iseg_viz_default_params();
    p.text_scale = -1;
    ASSERT_STATUS(iseg_viz_overlay(&img, ds, 2, &p), ISEG_STATUS_EINVAL);
    for (size_t i = 0; i < 8 * 6 * 3; i++) ASSERT(((uint8_t *)img.data)[i] == 77);

    /* not 8-bit RGB */
    struct iseg_image gray = {0};
    ASSERT_OK(iseg_image_alloc(&gray, 8, 6, 1, 8));
    ASSERT_STATUS(iseg_viz_overlay(&gray, ds, 1, NULL), ISEG_STATUS_EINVAL);
    const uint8_t white[3] = {255, 255, 255};
    ASSERT_STATUS(iseg_viz_text(&gray, 0, 0, "x", 1, white), ISEG_STATUS_EINVAL);
    iseg_image_free(&gray);
    struct iseg_image rgb16 = {0};
    ASSERT_OK(iseg_image_alloc(&rgb16, 8, 6, 3, 16));
    ASSERT_STATUS(iseg_viz_overlay(&rgb16, ds, 1, NULL), ISEG_STATUS_EINVAL);
    iseg_image_free(&rgb16);

    /* nothing to draw, NULL and empty masks, masks with no outline: fine */
    ASSERT_OK(iseg_viz_overlay(&img, NULL, 0, NULL));
    uint8_t        *none = calloc(6 * 8, 1);
    struct iseg_rle empty = {0};
    rle_of(&empty, none, 6, 8);
    struct iseg_viz_det e[2] = {{.mask = &empty, .score = -1}, {.mask = NULL, .score = -1}};
    p = only_masks(0.45f, 2);
    ASSERT_OK(iseg_viz_overlay(&img, e, 2, &p));
    for (size_t i = 0; i < 8 * 6 * 3; i++) ASSERT(((uint8_t *)img.data)[i] == 77);
    ASSERT_OK(iseg_viz_overlay(&img, ds, 1, NULL));
    iseg_rle_free(&empty);
    free(none);
    iseg_rle_free(&ok);
    iseg_rle_free(&wrong);
    free(bits);
    guarded_free(&img);
}

/* ---- COCO names ---- */

TEST(coco_names) {
    ASSERT_STREQ(iseg_coco_category_name(1), "person");
    ASSERT_STREQ(iseg_coco_category_name(2), "bicycle");
    ASSERT_STREQ(iseg_coco_category_name(13), "stop sign");
    ASSERT_STREQ(iseg_coco_category_name(67), "dining table");
    ASSERT_STREQ(iseg_coco_category_name(90), "toothbrush");
    static const int unused[] = {12, 26, 29, 30, 45, 66, 68, 69, 71, 83};
    for (size_t i = 0; i < sizeof(unused) / sizeof(unused[0]); i++)
        ASSERT(iseg_coco_category_name(unused[i]) == NULL);
    ASSERT(iseg_coco_category_name(0) == NULL);
    ASSERT(iseg_coco_category_name(91) == NULL);
    ASSERT(iseg_coco_category_name(-1) == NULL);
    ASSERT(iseg_coco_category_name(1 << 30) == NULL);
    int n_named = 0;
    for (int id = 1; id <= 90; id++) n_named += iseg_coco_category_name(id) != NULL;
    ASSERT_EQ_INT(n_named, 80);

    int                n  = 0;
    const char *const *tv = iseg_coco_torchvision_labels(&n);
    ASSERT_EQ_INT(n, 91);
    ASSERT(iseg_coco_torchvision_labels(NULL) == tv);
    ASSERT_STREQ(tv[0], "__background__");
    ASSERT_STREQ(tv[12], "N/A");
    ASSERT_STREQ(tv[90], "toothbrush");
    for (int id = 1; id <= 90; id++) {
        const char *name = iseg_coco_category_name(id);
        ASSERT_STREQ(tv[id], name ? name : "N/A");
    }
}

/* ---- a picture to look at ---- */

/* A synthetic street scene with three detections at the default parameters, written to
 * <build>/viz_demo.png (and a 2x version, where the automatic text scale is 2) for a person to
 * check that labels read well and colours look right. */
static void demo(uint32_t W, uint32_t H, const char *name) {
    struct iseg_image img = {0};
    ASSERT_OK(iseg_image_alloc(&img, W, H, 3, 8));
    for (uint32_t y = 0; y < H; y++)
        for (uint32_t x = 0; x < W; x++) {
            uint8_t *q   = (uint8_t *)img.data + ((size_t)y * W + x) * 3;
            double   fy  = (double)y / H, fx = (double)x / W;
            bool     sky = fy < 0.55;
            q[0] = (uint8_t)(sky ? 150 + 60 * fy : 95 + 30 * fx);
            q[1] = (uint8_t)(sky ? 190 + 40 * fy : 90 + 20 * fx);
            q[2] = (uint8_t)(sky ? 235 : 80 + 10 * fy);
        }
    double s = W / 640.0;
    /* person: a head disc and a body polygon; dog: an ellipse; bicycle: two wheels */
    uint8_t *b[3];
    for (int k = 0; k < 3; k++) b[k] = calloc((size_t)W * H, 1);
    for (uint32_t x = 0; x < W; x++)
        for (uint32_t y = 0; y < H; y++) {
            double X = x / s, Y = y / s;
            size_t i = (size_t)x * H + y;
            if ((X - 200) * (X - 200) + (Y - 95) * (Y - 95) < 22 * 22) b[0][i] = 1;
            if (Y > 115 && Y < 400 && fabs(X - 200) < 38 + (Y - 115) * 0.08) b[0][i] = 1;
            if ((X - 390) * (X - 390) / (70.0 * 70) + (Y - 330) * (Y - 330) / (38.0 * 38) < 1)
                b[1][i] = 1;
            if ((X - 360) * (X - 360) / (18.0 * 18) + (Y - 285) * (Y - 285) / (25.0 * 25) < 1)
                b[1][i] = 1;
            for (int wheel = 0; wheel < 2; wheel++) {
                double cx = wheel ? 590 : 500, dd = (X - cx) * (X - cx) + (Y - 330) * (Y - 330);
                if (dd < 42 * 42 && dd > 34 * 34) b[2][i] = 1;
            }
            if (Y > 290 && Y < 298 && X > 500 && X < 590) b[2][i] = 1;
        }
    struct iseg_rle r[3] = {{0}};
    for (int k = 0; k < 3; k++) rle_of(&r[k], b[k], H, W);
    static const int cat[3] = {1, 18, 2}; /* person, dog, bicycle */
    static const float score[3] = {0.98f, 0.87f, 0.56f};
    struct iseg_viz_det ds[3];
    for (int k = 0; k < 3; k++) {
        double bb[4];
        iseg_rle_to_bbox(&r[k], bb); /* boxes hug the masks, as a model's would */
        ds[k] = (struct iseg_viz_det){.x = (float)bb[0], .y = (float)bb[1], .w = (float)bb[2],
                                      .h = (float)bb[3], .mask = &r[k],
                                      .label = iseg_coco_category_name(cat[k]),
                                      .score = score[k], .color = k};
    }
    ASSERT_OK(iseg_viz_overlay(&img, ds, 3, NULL));
    const uint8_t ink[3] = {20, 20, 20};
    ASSERT_OK(iseg_viz_text(&img, 8, (int)(H - 24 * s), "iseg viz: AaBbGgJjPpQqYy 0123456789 "
                                                        "!?#%&*()[]{}<>/\\|@$^~_", 1, ink));
    char path[4096], err[512];
    snprintf(path, sizeof(path), "%s/%s", ISEG_BINARY_DIR, name);
    ASSERT_OK(iseg_png_write(path, &img, err, sizeof(err)));
    for (int k = 0; k < 3; k++) {
        iseg_rle_free(&r[k]);
        free(b[k]);
    }
    iseg_image_free(&img);
}

TEST(viz_demo_png) {
    demo(640, 427, "viz_demo.png");
    demo(1280, 854, "viz_demo_2x.png");
}

TEST_LIST = {
    TEST_ENTRY(viz_defaults),
    TEST_ENTRY(viz_palette),
    TEST_ENTRY(viz_mask_fill_exact),
    TEST_ENTRY(viz_outline_matches_brute_force),
    TEST_ENTRY(viz_outline_noncanonical_rle),
    TEST_ENTRY(viz_box_edges),
    TEST_ENTRY(viz_clipping),
    TEST_ENTRY(viz_text_size),
    TEST_ENTRY(viz_text_pixels),
    TEST_ENTRY(viz_label_tab),
    TEST_ENTRY(viz_draw_order),
    TEST_ENTRY(viz_errors),
    TEST_ENTRY(coco_names),
    TEST_ENTRY(viz_demo_png),
    TEST_END,
};
