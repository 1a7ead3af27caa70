/* test_jpeg.c - JPEG reading (src/image/jpeg.c), content sniffing and conversion to RGB
 * (src/image/convert.c).
 *
 * The JPEG inputs are made at test time with libjpeg's own compressor (allowed in tests only;
 * the library wraps libjpeg in jpeg.c alone), from flat 16 x 16 colour blocks whose interiors a
 * quality-100 encoder reproduces to within a couple of levels. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <fcntl.h>
#include <stdio.h> /* before jpeglib.h, which uses FILE */
#include <unistd.h>

#include <jpeglib.h>

#include "iseg/image.h"
#include "test.h"

/* The runner ends each test with _exit(), which skips LeakSanitizer's exit-time check, so the
 * tests of error paths ask for it explicitly. */
#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define HAVE_LSAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define HAVE_LSAN 1
#endif
#ifdef HAVE_LSAN
#include <sanitizer/lsan_interface.h>
static void check_leaks(void) { __lsan_do_leak_check(); }
#else
static void check_leaks(void) {}
#endif

/* ---- making JPEGs ---- */

struct jopts {
    int                    quality;     /* 0: 100 */
    bool                   progressive; /* jpeg_simple_progression() */
    bool                   arith;       /* arithmetic coding */
    bool                   subsample;   /* 4:2:0 chroma (else 4:4:4) */
    J_COLOR_SPACE          file_cs;     /* JCS_UNKNOWN: libjpeg's default for in_cs */
    const jpeg_scan_info  *scans;       /* custom scan script, or NULL */
    int                    n_scans;
};

/* Compress w x h pixels of comps interleaved 8-bit samples in colour space in_cs. Returns a
 * malloc'ed file (free with free()). libjpeg's default error handler exits: a failure there
 * fails the test. */
static uint8_t *make_jpeg(const uint8_t *px, int w, int h, int comps, J_COLOR_SPACE in_cs,
                          const struct jopts *o, size_t *n) {
    struct jpeg_compress_struct cinfo;
    struct jpeg_error_mgr       jerr;
    cinfo.err = jpeg_std_error(&jerr);
    jpeg_create_compress(&cinfo);
    unsigned char *buf  = NULL;
    unsigned long  size = 0;
    jpeg_mem_dest(&cinfo, &buf, &size);
    cinfo.image_width      = (JDIMENSION)w;
    cinfo.image_height     = (JDIMENSION)h;
    cinfo.input_components = comps;
    cinfo.in_color_space   = in_cs;
    jpeg_set_defaults(&cinfo);
    if (o->file_cs != JCS_UNKNOWN) jpeg_set_colorspace(&cinfo, o->file_cs);
    jpeg_set_quality(&cinfo, o->quality ? o->quality : 100, TRUE);
    for (int k = 0; k < cinfo.num_components; k++) {
        cinfo.comp_info[k].h_samp_factor = (k == 0 && o->subsample) ? 2 : 1;
        cinfo.comp_info[k].v_samp_factor = (k == 0 && o->subsample) ? 2 : 1;
    }
    if (o->progressive) jpeg_simple_progression(&cinfo);
    if (o->scans) {
        cinfo.scan_info = o->scans;
        cinfo.num_scans = o->n_scans;
    }
    cinfo.arith_code = o->arith ? TRUE : FALSE;
    jpeg_start_compress(&cinfo, TRUE);
    while (cinfo.next_scanline < cinfo.image_height) {
        JSAMPROW row = (JSAMPROW)(px + (size_t)cinfo.next_scanline * (size_t)w * (size_t)comps);
        jpeg_write_scanlines(&cinfo, &row, 1);
    }
    jpeg_finish_compress(&cinfo);
    jpeg_destroy_compress(&cinfo);
    *n = size;
    return buf;
}

/* A w x h picture of flat 16 x 16 blocks, block (bx, by) coloured by colors[(bx + 2*by) % k]. */
static uint8_t *blocks(int w, int h, int comps, const uint8_t (*colors)[4], int k) {
    uint8_t *px = malloc((size_t)w * h * comps);
    ASSERT(px);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int c = 0; c < comps; c++)
                px[((size_t)y * w + x) * comps + c] = colors[(x / 16 + 2 * (y / 16)) % k][c];
    return px;
}

static const uint8_t COLORS[4][4] = {
    {200, 30, 40, 0}, {20, 180, 60, 0}, {30, 60, 220, 0}, {240, 240, 240, 0}};

/* Every pixel at least `margin` pixels inside its 16 x 16 block matches want within tol. */
static void check_blocks(const struct iseg_image *img, int comps_want, const uint8_t (*want)[4],
                         int k, int margin, int tol) {
    ASSERT_EQ_INT(img->depth, 8);
    ASSERT_EQ_INT(img->c, comps_want);
    const uint8_t *px = img->data;
    int            worst = 0;
    for (uint32_t y = 0; y < img->h; y++) {
        for (uint32_t x = 0; x < img->w; x++) {
            if ((int)(x % 16) < margin || (int)(x % 16) >= 16 - margin ||
                (int)(y % 16) < margin || (int)(y % 16) >= 16 - margin)
                continue;
            const uint8_t *w = want[(x / 16 + 2 * (y / 16)) % (uint32_t)k];
            for (int c = 0; c < comps_want; c++) {
                int d = abs((int)px[((size_t)y * img->w + x) * img->c + c] - (int)w[c]);
                if (d > worst) worst = d;
                ASSERT_MSG(d <= tol, "pixel (%u, %u) channel %d: got %d, expected %d (tol %d)",
                           (unsigned)x, (unsigned)y, c,
                           px[((size_t)y * img->w + x) * img->c + c], w[c], tol);
            }
        }
    }
}

static char *tmp_path(const char *name) {
    static char buf[4][4096];
    static int  k;
    char       *p = buf[k++ & 3];
    snprintf(p, sizeof(buf[0]), "%s/%s", test_tmp_dir(), name);
    return p;
}

static void write_bytes(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    ASSERT_MSG(f, "cannot create %s: %s", path, strerror(errno));
    ASSERT(n == 0 || fwrite(data, 1, n, f) == n);
    ASSERT(fclose(f) == 0);
}

static void assert_zeroed(const struct iseg_image *img) {
    ASSERT(img->data == NULL && img->w == 0 && img->h == 0 && img->c == 0 && img->depth == 0);
}

static uint8_t *rgb_file(size_t *n, const struct jopts *o) {
    uint8_t *px  = blocks(48, 32, 3, COLORS, 4);
    uint8_t *jpg = make_jpeg(px, 48, 32, 3, JCS_RGB, o, n);
    free(px);
    return jpg;
}

/* ---- decoding ---- */

TEST(jpeg_rgb_444) {
    struct jopts      o   = {0};
    size_t            n   = 0;
    uint8_t          *jpg = rgb_file(&n, &o);
    struct iseg_image img = {0};
    char              err[256];
    ASSERT_OK(iseg_jpeg_read_mem(jpg, n, &img, err, sizeof(err)));
    ASSERT_EQ_INT(img.w, 48);
    ASSERT_EQ_INT(img.h, 32);
    check_blocks(&img, 3, COLORS, 4, 0, 3);
    iseg_image_free(&img);
    free(jpg);
}

TEST(jpeg_rgb_420) {
    struct jopts      o   = {.subsample = true};
    size_t            n   = 0;
    uint8_t          *jpg = rgb_file(&n, &o);
    struct iseg_image img = {0};
    char              err[256];
    ASSERT_OK(iseg_jpeg_read_mem(jpg, n, &img, err, sizeof(err)));
    /* chroma is interpolated across block edges (fancy upsampling): look 2 pixels inside */
    check_blocks(&img, 3, COLORS, 4, 2, 3);
    iseg_image_free(&img);
    free(jpg);
}

TEST(jpeg_gray) {
    static const uint8_t G[4][4] = {{0}, {255}, {77}, {160}};
    uint8_t             *px      = blocks(40, 24, 1, G, 4); /* partial blocks at the edges */
    size_t               n       = 0;
    struct jopts         o       = {0};
    uint8_t             *jpg     = make_jpeg(px, 40, 24, 1, JCS_GRAYSCALE, &o, &n);
    struct iseg_image    img     = {0};
    char                 err[256];
    ASSERT_OK(iseg_jpeg_read_mem(jpg, n, &img, err, sizeof(err)));
    ASSERT_EQ_INT(img.w, 40);
    ASSERT_EQ_INT(img.h, 24);
    check_blocks(&img, 1, G, 4, 0, 1);
    iseg_image_free(&img);
    free(jpg);
    free(px);
}

/* Progressive coding is lossless on the quantised coefficients, so the pixels equal the
 * baseline file's exactly; the same holds for arithmetic coding. */
TEST(jpeg_progressive_and_arith_match_baseline) {
    struct jopts      base = {.subsample = true}, prog = {.subsample = true, .progressive = true},
                 arith = {.subsample = true, .arith = true};
    size_t            n1 = 0, n2 = 0, n3 = 0;
    uint8_t          *j1 = rgb_file(&n1, &base), *j2 = rgb_file(&n2, &prog);
    uint8_t          *j3 = rgb_file(&n3, &arith);
    struct iseg_image a = {0}, b = {0}, c = {0};
    char              err[256];
    ASSERT(memcmp(j1, j2, n1 < n2 ? n1 : n2) != 0);
    ASSERT_OK(iseg_jpeg_read_mem(j1, n1, &a, err, sizeof(err)));
    ASSERT_OK(iseg_jpeg_read_mem(j2, n2, &b, err, sizeof(err)));
    ASSERT_OK(iseg_jpeg_read_mem(j3, n3, &c, err, sizeof(err)));
    ASSERT(memcmp(a.data, b.data, iseg_image_nbytes(&a)) == 0);
    ASSERT(memcmp(a.data, c.data, iseg_image_nbytes(&a)) == 0);
    iseg_image_free(&a);
    iseg_image_free(&b);
    iseg_image_free(&c);
    free(j1);
    free(j2);
    free(j3);
}

/* R = K' * C' / 255 on the stored (Adobe-inverted) samples, as PIL's CMYK -> RGB. */
static void cmyk_case(J_COLOR_SPACE file_cs) {
    static const uint8_t CMYK[4][4] = {
        {255, 255, 255, 255}, /* stored inverted: no ink -> white */
        {255, 128, 0, 255},   /* -> (255, 128, 0) */
        {200, 100, 50, 128},  /* -> round(200*128/255) = 100, 50, 25 */
        {0, 0, 0, 0},         /* full ink -> black */
    };
    static const uint8_t WANT[4][4] = {{255, 255, 255}, {255, 128, 0}, {100, 50, 25}, {0, 0, 0}};
    uint8_t             *px         = blocks(32, 32, 4, CMYK, 4);
    size_t               n          = 0;
    struct jopts         o          = {.file_cs = file_cs};
    uint8_t             *jpg        = make_jpeg(px, 32, 32, 4, JCS_CMYK, &o, &n);
    struct iseg_image    img        = {0};
    char                 err[256];
    ASSERT_OK(iseg_jpeg_read_mem(jpg, n, &img, err, sizeof(err)));
    check_blocks(&img, 3, WANT, 4, 0, 3);
    iseg_image_free(&img);
    free(jpg);
    free(px);
}

TEST(jpeg_cmyk) { cmyk_case(JCS_CMYK); }
TEST(jpeg_ycck) { cmyk_case(JCS_YCCK); }

TEST(jpeg_unsupported_colour_space) {
    uint8_t           px[16 * 16 * 2];
    memset(px, 100, sizeof(px));
    size_t            n   = 0;
    struct jopts      o   = {.file_cs = JCS_UNKNOWN};
    uint8_t          *jpg = make_jpeg(px, 16, 16, 2, JCS_UNKNOWN, &o, &n);
    struct iseg_image img = {0};
    char              err[256];
    ASSERT_STATUS(iseg_jpeg_read_mem(jpg, n, &img, err, sizeof(err)), ISEG_STATUS_EFORMAT);
    ASSERT_STREQ(err, "<memory>: unsupported JPEG colour space (2 components)");
    assert_zeroed(&img);
    free(jpg);
    check_leaks();
}

/* ---- damaged and hostile input ---- */

static void truncations(const uint8_t *jpg, size_t n) {
    char err[256];
    for (size_t k = 0; k < n; k++) {
        struct iseg_image img = {0};
        err[0]                = '\0';
        enum iseg_status st   = iseg_jpeg_read_mem(jpg, k, &img, err, sizeof(err));
        ASSERT_MSG(st == ISEG_STATUS_EFORMAT, "prefix of %zu / %zu bytes: %s (%s)", k, n,
                   iseg_status_str(st), err);
        assert_zeroed(&img);
        if (k == 0) ASSERT_STREQ(err, "<memory>: empty file (not a JPEG)");
        else if (k == 1) ASSERT_STREQ(err, "<memory>: not a JPEG file (no SOI marker)");
        else ASSERT_STREQ(err, "<memory>: Premature end of JPEG file");
    }
    struct iseg_image img = {0};
    ASSERT_OK(iseg_jpeg_read_mem(jpg, n, &img, err, sizeof(err)));
    iseg_image_free(&img);
}

TEST(jpeg_truncated_every_length) {
    static const uint8_t C[2][4] = {{10, 200, 30}, {250, 250, 0}};
    uint8_t             *px      = blocks(16, 16, 3, C, 2);
    struct jopts         base = {.quality = 80}, prog = {.quality = 80, .progressive = true};
    size_t               n1 = 0, n2 = 0;
    uint8_t             *j1 = make_jpeg(px, 16, 16, 3, JCS_RGB, &base, &n1);
    uint8_t             *j2 = make_jpeg(px, 16, 16, 3, JCS_RGB, &prog, &n2);
    truncations(j1, n1);
    truncations(j2, n2);
    free(j1);
    free(j2);
    free(px);
    check_leaks();
}

TEST(jpeg_garbage) {
    char              err[256];
    struct iseg_image img = {0};
    ASSERT_STATUS(iseg_jpeg_read_mem("hello", 5, &img, err, sizeof(err)), ISEG_STATUS_EFORMAT);
    ASSERT_STREQ(err, "<memory>: not a JPEG file (no SOI marker)");
    assert_zeroed(&img);
    /* a SOI followed by noise, many times over */
    uint64_t seed = 42;
    uint8_t  buf[300];
    for (int t = 0; t < 300; t++) {
        size_t n = 2 + (size_t)(test_rand(&seed) % (sizeof(buf) - 2));
        for (size_t i = 0; i < n; i++) buf[i] = (uint8_t)test_rand(&seed);
        buf[0] = 0xFF, buf[1] = 0xD8;
        if (t & 1) buf[2] = 0xFF;
        ASSERT_STATUS(iseg_jpeg_read_mem(buf, n, &img, err, sizeof(err)), ISEG_STATUS_EFORMAT);
        assert_zeroed(&img);
        ASSERT(strncmp(err, "<memory>: ", 10) == 0 && strlen(err) > 10);
    }
    /* a valid file with its entropy-coded data scrambled still decodes or fails cleanly */
    struct jopts o   = {.quality = 90};
    size_t       n   = 0;
    uint8_t     *jpg = rgb_file(&n, &o);
    for (int t = 0; t < 200; t++) {
        uint8_t *copy = malloc(n);
        ASSERT(copy);
        memcpy(copy, jpg, n);
        for (int k = 0; k < 4; k++) copy[test_rand(&seed) % n] = (uint8_t)test_rand(&seed);
        enum iseg_status st = iseg_jpeg_read_mem(copy, n, &img, err, sizeof(err));
        ASSERT(st == ISEG_STATUS_OK || st == ISEG_STATUS_EFORMAT || st == ISEG_STATUS_ELIMIT);
        if (st == ISEG_STATUS_OK) {
            ASSERT(img.data && img.depth == 8 && (img.c == 1 || img.c == 3));
            iseg_image_free(&img);
        } else {
            assert_zeroed(&img);
        }
        free(copy);
    }
    free(jpg);
    check_leaks();
}

/* Offset of the first SOFn marker's height field, by walking the markers. */
static size_t sof_offset(const uint8_t *jpg, size_t n) {
    size_t off = 2;
    while (off + 4 <= n) {
        ASSERT(jpg[off] == 0xFF);
        uint8_t m = jpg[off + 1];
        if (m >= 0xC0 && m <= 0xCF && m != 0xC4 && m != 0xC8 && m != 0xCC) return off + 5;
        off += 2 + ((size_t)jpg[off + 2] << 8 | jpg[off + 3]);
    }
    TEST_FAIL("no SOF marker");
}

static size_t g_max_request;
static void  *count_malloc(size_t n, void *user) {
    (void)user;
    if (n > g_max_request) g_max_request = n;
    return malloc(n);
}
static void *count_realloc(void *p, size_t n, void *user) {
    (void)user;
    if (n > g_max_request) g_max_request = n;
    return realloc(p, n);
}
static void count_free(void *p, void *user) {
    (void)user;
    free(p);
}

TEST(jpeg_huge_declared_size) {
    struct jopts o   = {0};
    size_t       n   = 0;
    uint8_t     *jpg = rgb_file(&n, &o);
    size_t       at  = sof_offset(jpg, n);
    /* 60000 x 60000: 3.6e9 pixels, beyond the 2^28 default; the data is far too short */
    jpg[at] = 0xEA, jpg[at + 1] = 0x60, jpg[at + 2] = 0xEA, jpg[at + 3] = 0x60;
    struct iseg_alloc hooks = {count_malloc, count_realloc, count_free, NULL};
    iseg_alloc_set(&hooks);
    g_max_request         = 0;
    struct iseg_image img = {0};
    char              err[256];
    ASSERT_STATUS(iseg_jpeg_read_mem(jpg, n, &img, err, sizeof(err)), ISEG_STATUS_ELIMIT);
    ASSERT_STREQ(err, "<memory>: image too large: 60000 x 60000 exceeds the limit (1048576 x "
                      "1048576, 268435456 pixels)");
    assert_zeroed(&img);
    ASSERT_MSG(g_max_request < 4096, "allocated %zu bytes", g_max_request);
    iseg_alloc_set(NULL);

    /* caller limits: width, height and pixel count each apply */
    free(jpg);
    jpg                          = rgb_file(&n, &o); /* 48 x 32 */
    struct iseg_image_limits lim = iseg_image_default_limits();
    lim.max_width                = 47;
    ASSERT_STATUS(iseg_jpeg_read_mem_limits(jpg, n, &lim, &img, err, sizeof(err)),
                  ISEG_STATUS_ELIMIT);
    lim            = iseg_image_default_limits();
    lim.max_height = 31;
    ASSERT_STATUS(iseg_jpeg_read_mem_limits(jpg, n, &lim, &img, err, sizeof(err)),
                  ISEG_STATUS_ELIMIT);
    lim            = iseg_image_default_limits();
    lim.max_pixels = 48 * 32 - 1;
    ASSERT_STATUS(iseg_jpeg_read_mem_limits(jpg, n, &lim, &img, err, sizeof(err)),
                  ISEG_STATUS_ELIMIT);
    ASSERT_STRCONTAINS(err, "48 x 32 exceeds the limit");
    lim.max_pixels = 48 * 32;
    ASSERT_OK(iseg_jpeg_read_mem_limits(jpg, n, &lim, &img, err, sizeof(err)));
    iseg_image_free(&img);
    free(jpg);
    check_leaks();
}

/* More scans than ISEG_JPEG_MAX_SCANS: a legal progressive script with one scan per
 * coefficient and component, each refined once (1 + 3 * 63 * 2 = 379 scans). */
TEST(jpeg_too_many_scans) {
    static jpeg_scan_info scans[1 + 3 * 63 * 2];
    int                   k = 0;
    scans[k++]              = (jpeg_scan_info){3, {0, 1, 2, 0}, 0, 0, 0, 0};
    for (int al = 1; al >= 0; al--)
        for (int comp = 0; comp < 3; comp++)
            for (int s = 1; s <= 63; s++)
                scans[k++] = (jpeg_scan_info){1, {comp, 0, 0, 0}, s, s, al == 1 ? 0 : 1, al};
    ASSERT(k > ISEG_JPEG_MAX_SCANS);
    struct jopts      o   = {.scans = scans, .n_scans = k};
    size_t            n   = 0;
    uint8_t          *jpg = rgb_file(&n, &o);
    struct iseg_image img = {0};
    char              err[256];
    ASSERT_STATUS(iseg_jpeg_read_mem(jpg, n, &img, err, sizeof(err)), ISEG_STATUS_EFORMAT);
    ASSERT_STREQ(err, "<memory>: too many scans in the JPEG file (more than 256)");
    assert_zeroed(&img);
    free(jpg);
    check_leaks();
}

/* libjpeg warnings (here "extraneous bytes before marker 0xd9") are neither printed nor fatal. */
TEST(jpeg_warnings_silent) {
    struct jopts o   = {0};
    size_t       n   = 0;
    uint8_t     *jpg = rgb_file(&n, &o);
    ASSERT(jpg[n - 2] == 0xFF && jpg[n - 1] == 0xD9);
    uint8_t *bad = malloc(n + 3);
    ASSERT(bad);
    memcpy(bad, jpg, n - 2);
    memcpy(bad + n - 2, "\x12\x34\x56\xFF\xD9", 5);

    fflush(stderr);
    int         saved = dup(2);
    const char *path  = tmp_path("stderr.txt");
    int         fd    = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    ASSERT(saved >= 0 && fd >= 0);
    dup2(fd, 2);
    close(fd);
    struct iseg_image a = {0}, b = {0};
    char              err[256];
    enum iseg_status  st = iseg_jpeg_read_mem(bad, n + 3, &a, err, sizeof(err));
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    ASSERT_OK(st);
    size_t len = 0;
    char  *txt = test_read_file(path, &len);
    ASSERT_MSG(len == 0, "printed: %s", txt);
    free(txt);
    ASSERT_OK(iseg_jpeg_read_mem(jpg, n, &b, err, sizeof(err)));
    ASSERT(memcmp(a.data, b.data, iseg_image_nbytes(&a)) == 0);
    iseg_image_free(&a);
    iseg_image_free(&b);
    free(bad);
    free(jpg);
}

TEST(jpeg_read_file) {
    struct jopts o   = {0};
    size_t       n   = 0;
    uint8_t     *jpg = rgb_file(&n, &o);
    const char  *ok  = tmp_path("photo.jpg");
    write_bytes(ok, jpg, n);
    struct iseg_image img = {0};
    char              err[512], want[512];
    ASSERT_OK(iseg_jpeg_read(ok, &img, err, sizeof(err)));
    check_blocks(&img, 3, COLORS, 4, 0, 3);
    iseg_image_free(&img);

    const char *cut = tmp_path("cut.jpg");
    write_bytes(cut, jpg, n / 2);
    ASSERT_STATUS(iseg_jpeg_read(cut, &img, err, sizeof(err)), ISEG_STATUS_EFORMAT);
    snprintf(want, sizeof(want), "%s: Premature end of JPEG file", cut);
    ASSERT_STREQ(err, want);
    assert_zeroed(&img);

    const char *missing = tmp_path("missing.jpg");
    ASSERT_STATUS(iseg_jpeg_read(missing, &img, err, sizeof(err)), ISEG_STATUS_EIO);
    snprintf(want, sizeof(want), "%s: cannot open: ", missing);
    ASSERT(strncmp(err, want, strlen(want)) == 0);
    assert_zeroed(&img);

    const char *text = tmp_path("text.jpg");
    write_bytes(text, "not a jpeg at all", 17);
    ASSERT_STATUS(iseg_jpeg_read(text, &img, err, sizeof(err)), ISEG_STATUS_EFORMAT);
    snprintf(want, sizeof(want), "%s: not a JPEG file (no SOI marker)", text);
    ASSERT_STREQ(err, want);
    /* err may be NULL when errlen is 0 */
    ASSERT_STATUS(iseg_jpeg_read(text, &img, NULL, 0), ISEG_STATUS_EFORMAT);
    free(jpg);
    check_leaks();
}

/* ---- sniffing ---- */

TEST(image_read_sniffs_content) {
    char              err[512], want[512];
    struct iseg_image img = {0}, png_img = {0};
    struct jopts      o   = {0};
    size_t            n   = 0;
    uint8_t          *jpg = rgb_file(&n, &o);
    const char       *jp  = tmp_path("really_a_jpeg.png"); /* the name does not matter */
    write_bytes(jp, jpg, n);
    ASSERT_OK(iseg_image_read(jp, &img, err, sizeof(err)));
    ASSERT_EQ_INT(img.c, 3);
    check_blocks(&img, 3, COLORS, 4, 0, 3);

    /* a PNG of that image goes through the PNG reader */
    void  *png  = NULL;
    size_t pn   = 0;
    ASSERT_OK(iseg_png_write_mem(&img, &png, &pn, err, sizeof(err)));
    const char *pp = tmp_path("really_a_png.jpg");
    write_bytes(pp, png, pn);
    ASSERT_OK(iseg_image_read(pp, &png_img, err, sizeof(err)));
    ASSERT(png_img.w == img.w && png_img.h == img.h && png_img.c == 3);
    ASSERT(memcmp(png_img.data, img.data, iseg_image_nbytes(&img)) == 0);
    iseg_image_free(&png_img);

    /* the same from memory */
    ASSERT_OK(iseg_image_read_mem_limits(png, pn, NULL, &png_img, err, sizeof(err)));
    ASSERT(memcmp(png_img.data, img.data, iseg_image_nbytes(&img)) == 0);
    iseg_image_free(&png_img);
    ASSERT_OK(iseg_image_read_mem_limits(jpg, n, NULL, &png_img, err, sizeof(err)));
    ASSERT(memcmp(png_img.data, img.data, iseg_image_nbytes(&img)) == 0);
    iseg_image_free(&png_img);
    struct iseg_image_limits lim = iseg_image_default_limits();
    lim.max_pixels               = 100;
    ASSERT_STATUS(iseg_image_read_mem_limits(png, pn, &lim, &png_img, err, sizeof(err)),
                  ISEG_STATUS_ELIMIT);
    ASSERT_STATUS(iseg_image_read_mem_limits(jpg, n, &lim, &png_img, err, sizeof(err)),
                  ISEG_STATUS_ELIMIT);
    ASSERT_STATUS(iseg_image_read_mem_limits("GIF89a", 6, NULL, &png_img, err, sizeof(err)),
                  ISEG_STATUS_EFORMAT);
    ASSERT_STREQ(err, "<memory>: not a PNG or JPEG file");
    ASSERT_STATUS(iseg_image_read_mem_limits(NULL, 0, NULL, &png_img, err, sizeof(err)),
                  ISEG_STATUS_EFORMAT);
    assert_zeroed(&png_img);

    /* errors keep the path and the reader's own words */
    const char *cut = tmp_path("cut.jpeg");
    write_bytes(cut, jpg, n - 1);
    ASSERT_STATUS(iseg_image_read(cut, &png_img, err, sizeof(err)), ISEG_STATUS_EFORMAT);
    snprintf(want, sizeof(want), "%s: Premature end of JPEG file", cut);
    ASSERT_STREQ(err, want);
    const char *gif = tmp_path("a.gif");
    write_bytes(gif, "GIF89a\x01\x00\x01\x00", 10);
    ASSERT_STATUS(iseg_image_read(gif, &png_img, err, sizeof(err)), ISEG_STATUS_EFORMAT);
    snprintf(want, sizeof(want), "%s: not a PNG or JPEG file", gif);
    ASSERT_STREQ(err, want);
    const char *empty = tmp_path("empty.jpg");
    write_bytes(empty, "", 0);
    ASSERT_STATUS(iseg_image_read(empty, &png_img, err, sizeof(err)), ISEG_STATUS_EFORMAT);
    ASSERT_STRCONTAINS(err, "empty file");
    ASSERT_STATUS(iseg_image_read(tmp_path("nope.png"), &png_img, err, sizeof(err)),
                  ISEG_STATUS_EIO);
    assert_zeroed(&png_img);

    iseg_free(png);
    iseg_image_free(&img);
    free(jpg);
    check_leaks();
}

/* ---- conversion to 8-bit RGB ---- */

TEST(image_to_rgb8) {
    /* 2 x 1 pixels: samples chosen so that every channel is distinguishable */
    static const uint16_t S16[8] = {0x0000, 0x01FF, 0x8000, 0xFF00, 0x1234, 0xABCD, 0xFFFF, 7};
    static const uint8_t  S8[8]  = {0, 1, 128, 255, 18, 171, 255, 7};
    for (uint32_t depth = 8; depth <= 16; depth += 8) {
        for (uint32_t c = 1; c <= 4; c++) {
            struct iseg_image in = {0}, out = {0};
            ASSERT_OK(iseg_image_alloc(&in, 2, 1, c, depth));
            for (uint32_t i = 0; i < 2 * c; i++) {
                if (depth == 8) ((uint8_t *)in.data)[i] = S8[i];
                else ((uint16_t *)in.data)[i] = S16[i];
            }
            ASSERT_OK(iseg_image_to_rgb8(&out, &in));
            ASSERT(out.w == 2 && out.h == 1 && out.c == 3 && out.depth == 8);
            const uint8_t *o = out.data;
            for (uint32_t x = 0; x < 2; x++) {
                for (uint32_t k = 0; k < 3; k++) {
                    uint32_t src  = x * c + (c <= 2 ? 0 : k); /* gray replicated, alpha dropped */
                    unsigned want = depth == 8 ? S8[src] : (unsigned)(S16[src] >> 8);
                    ASSERT_MSG(o[x * 3 + k] == want, "c=%u depth=%u pixel %u channel %u: %u != %u",
                               (unsigned)c, (unsigned)depth, (unsigned)x, (unsigned)k,
                               o[x * 3 + k], want);
                }
            }
            iseg_image_free(&out);
            iseg_image_free(&in);
        }
    }
    struct iseg_image bad = {.w = 2, .h = 2, .c = 5, .depth = 8, .data = (void *)S8}, out = {0};
    ASSERT_STATUS(iseg_image_to_rgb8(&out, &bad), ISEG_STATUS_EINVAL);
    bad.c     = 3;
    bad.depth = 12;
    ASSERT_STATUS(iseg_image_to_rgb8(&out, &bad), ISEG_STATUS_EINVAL);
    bad.depth = 8;
    bad.data  = NULL;
    ASSERT_STATUS(iseg_image_to_rgb8(&out, &bad), ISEG_STATUS_EINVAL);
    assert_zeroed(&out);
}

TEST_LIST = {
    TEST_ENTRY(jpeg_rgb_444),
    TEST_ENTRY(jpeg_rgb_420),
    TEST_ENTRY(jpeg_gray),
    TEST_ENTRY(jpeg_progressive_and_arith_match_baseline),
    TEST_ENTRY(jpeg_cmyk),
    TEST_ENTRY(jpeg_ycck),
    TEST_ENTRY(jpeg_unsupported_colour_space),
    TEST_ENTRY(jpeg_truncated_every_length),
    TEST_ENTRY(jpeg_garbage),
    TEST_ENTRY(jpeg_huge_declared_size),
    TEST_ENTRY(jpeg_too_many_scans),
    TEST_ENTRY(jpeg_warnings_silent),
    TEST_ENTRY(jpeg_read_file),
    TEST_ENTRY(image_read_sniffs_content),
    TEST_ENTRY(image_to_rgb8),
    TEST_END,
};
