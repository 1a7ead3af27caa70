/* test_image.c - iseg_image, PNG reading/writing (src/image/png.c) and the plotter (plot.c). */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <errno.h>
#include <sys/stat.h>
#include <unistd.h>

#include "iseg/image.h"
#include "image/png_impl.h"
#include "iseg/plot.h"
#include "test.h"

/* ---- helpers ---- */

/* The runner ends each test with _exit(), which skips LeakSanitizer's exit-time check, so the
 * tests that care about leaks ask for it explicitly. */
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
    ASSERT(fwrite(data, 1, n, f) == n);
    ASSERT(fclose(f) == 0);
}

static bool file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

/* Number of entries in dir whose name contains needle. */
static int count_entries(const char *dir, const char *needle) {
    DIR *d = opendir(dir);
    ASSERT(d);
    int            n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (strstr(e->d_name, needle)) n++;
    closedir(d);
    return n;
}

/* An image of random samples (8 or 16 bit). */
static void random_image(struct iseg_image *img, uint32_t w, uint32_t h, uint32_t c,
                         uint32_t depth, uint64_t seed) {
    ASSERT_OK(iseg_image_alloc(img, w, h, c, depth));
    size_t n = (size_t)w * h * c;
    for (size_t i = 0; i < n; i++) {
        uint64_t r = test_rand(&seed);
        if (depth == 8) ((uint8_t *)img->data)[i] = (uint8_t)r;
        else ((uint16_t *)img->data)[i] = (uint16_t)r;
    }
}

static void assert_same_image(const struct iseg_image *a, const struct iseg_image *b) {
    ASSERT_EQ_U64(a->w, b->w);
    ASSERT_EQ_U64(a->h, b->h);
    ASSERT_EQ_U64(a->c, b->c);
    ASSERT_EQ_U64(a->depth, b->depth);
    ASSERT_EQ_U64(iseg_image_nbytes(a), iseg_image_nbytes(b));
    ASSERT(memcmp(a->data, b->data, iseg_image_nbytes(a)) == 0);
}

static void roundtrip(uint32_t w, uint32_t h, uint32_t c, uint32_t depth, uint64_t seed) {
    struct iseg_image img = {0}, back = {0};
    char              err[512];
    random_image(&img, w, h, c, depth, seed);
    char name[64];
    snprintf(name, sizeof(name), "rt_%u_%u.png", (unsigned)c, (unsigned)depth);
    const char *path = tmp_path(name);
    ASSERT_OK(iseg_png_write(path, &img, err, sizeof(err)));
    ASSERT_OK(iseg_png_read(path, &back, err, sizeof(err)));
    assert_same_image(&img, &back);
    ASSERT_EQ_INT(count_entries(test_tmp_dir(), ".tmp."), 0);
    iseg_image_free(&back);

    /* the same through memory */
    void  *buf = NULL;
    size_t n   = 0;
    ASSERT_OK(iseg_png_write_mem(&img, &buf, &n, err, sizeof(err)));
    ASSERT_OK(iseg_png_read_mem(buf, n, &back, err, sizeof(err)));
    assert_same_image(&img, &back);
    iseg_free(buf);
    iseg_image_free(&back);
    iseg_image_free(&img);
}

/* A PNG file written by the library, for the damage tests below. */
static uint8_t *sample_png(size_t *n) {
    struct iseg_image img = {0};
    char              err[256];
    void             *buf = NULL;
    random_image(&img, 40, 30, 3, 8, 7);
    ASSERT_OK(iseg_png_write_mem(&img, &buf, n, err, sizeof(err)));
    iseg_image_free(&img);
    return buf;
}

/* ---- a minimal independent PNG writer (stored deflate blocks), to build the inputs the
 * library's own writer never produces: palettes, 1-bit gray, tRNS, interlacing. ---- */

struct bytes {
    uint8_t *d;
    size_t   n, cap;
};

static void put_bytes(struct bytes *b, const void *p, size_t n) {
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 64;
        b->d   = realloc(b->d, b->cap);
        ASSERT(b->d);
    }
    memcpy(b->d + b->n, p, n);
    b->n += n;
}

static void put_u32be(struct bytes *b, uint32_t v) {
    uint8_t q[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
    put_bytes(b, q, 4);
}

static uint32_t crc32_update(uint32_t crc, const uint8_t *p, size_t n) {
    crc = ~crc;
    for (size_t i = 0; i < n; i++) {
        crc ^= p[i];
        for (int k = 0; k < 8; k++) crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1)));
    }
    return ~crc;
}

static void put_chunk(struct bytes *b, const char *type, const uint8_t *data, size_t n) {
    put_u32be(b, (uint32_t)n);
    put_bytes(b, type, 4);
    if (n) put_bytes(b, data, n);
    uint32_t crc = crc32_update(0, (const uint8_t *)type, 4);
    crc          = crc32_update(crc, data, n);
    put_u32be(b, crc);
}

/* zlib stream of stored blocks holding raw[0..n) */
static void put_zlib_stored(struct bytes *z, const uint8_t *raw, size_t n) {
    uint8_t hdr[2] = {0x78, 0x01};
    put_bytes(z, hdr, 2);
    size_t off = 0;
    do {
        size_t  k     = n - off > 65535 ? 65535 : n - off;
        uint8_t bh[5] = {(uint8_t)(off + k == n), (uint8_t)k, (uint8_t)(k >> 8),
                         (uint8_t)~k, (uint8_t)(~k >> 8)};
        put_bytes(z, bh, 5);
        if (k) put_bytes(z, raw + off, k);
        off += k;
    } while (off < n);
    uint32_t a = 1, b = 0;
    for (size_t i = 0; i < n; i++) {
        a = (a + raw[i]) % 65521;
        b = (b + a) % 65521;
    }
    put_u32be(z, (b << 16) | a);
}

/* scan: the filtered scanlines (each starting with its filter byte), already interlaced when
 * interlace is 1. plte/trns may be NULL. Returns a malloc'ed file. */
static uint8_t *build_png(uint32_t w, uint32_t h, int depth, int ctype, int interlace,
                          const uint8_t *plte, size_t plte_n, const uint8_t *trns,
                          size_t trns_n, const uint8_t *scan, size_t scan_n, size_t *out_n) {
    struct bytes b = {0}, z = {0};
    put_bytes(&b, "\x89PNG\r\n\x1a\n", 8);
    uint8_t ihdr[13] = {(uint8_t)(w >> 24), (uint8_t)(w >> 16), (uint8_t)(w >> 8), (uint8_t)w,
                        (uint8_t)(h >> 24), (uint8_t)(h >> 16), (uint8_t)(h >> 8), (uint8_t)h,
                        (uint8_t)depth, (uint8_t)ctype, 0, 0, (uint8_t)interlace};
    put_chunk(&b, "IHDR", ihdr, 13);
    if (plte) put_chunk(&b, "PLTE", plte, plte_n);
    if (trns) put_chunk(&b, "tRNS", trns, trns_n);
    put_zlib_stored(&z, scan, scan_n);
    put_chunk(&b, "IDAT", z.d, z.n);
    put_chunk(&b, "IEND", NULL, 0);
    free(z.d);
    *out_n = b.n;
    return b.d;
}

/* ---- images ---- */

TEST(image_alloc) {
    struct iseg_image img;
    ASSERT_OK(iseg_image_alloc(&img, 7, 5, 3, 16));
    ASSERT_EQ_U64(img.w, 7);
    ASSERT_EQ_U64(img.h, 5);
    ASSERT_EQ_U64(img.c, 3);
    ASSERT_EQ_U64(img.depth, 16);
    ASSERT_EQ_U64(iseg_image_nbytes(&img), 7 * 5 * 3 * 2);
    for (size_t i = 0; i < iseg_image_nbytes(&img); i++) ASSERT(((uint8_t *)img.data)[i] == 0);
    iseg_image_free(&img);
    ASSERT(img.data == NULL && img.w == 0);
    iseg_image_free(&img); /* twice is fine */
    iseg_image_free(NULL);
    ASSERT_EQ_U64(iseg_image_nbytes(&img), 0);

    ASSERT_STATUS(iseg_image_alloc(&img, 0, 5, 1, 8), ISEG_STATUS_EINVAL);
    ASSERT(img.data == NULL && img.w == 0);
    ASSERT_STATUS(iseg_image_alloc(&img, 5, 5, 0, 8), ISEG_STATUS_EINVAL);
    ASSERT_STATUS(iseg_image_alloc(&img, 5, 5, 5, 8), ISEG_STATUS_EINVAL);
    ASSERT_STATUS(iseg_image_alloc(&img, 5, 5, 1, 12), ISEG_STATUS_EINVAL);
    ASSERT_STATUS(iseg_image_alloc(&img, 1u << 15, 1u << 14, 1, 8), ISEG_STATUS_ELIMIT);
    ASSERT_STATUS(iseg_image_alloc(&img, UINT32_MAX, UINT32_MAX, 4, 16), ISEG_STATUS_ELIMIT);
    ASSERT(img.data == NULL);
    /* exactly at the limit is accepted (as a size check: 256 MiB gray, then freed) */
    ASSERT_OK(iseg_image_alloc(&img, 1u << 14, 1u << 14, 1, 8));
    iseg_image_free(&img);
}

/* ---- PNG round trips ---- */

TEST(png_roundtrip_gray8) { roundtrip(37, 23, 1, 8, 1); }
TEST(png_roundtrip_gray_alpha8) { roundtrip(5, 9, 2, 8, 2); }
TEST(png_roundtrip_rgb8) { roundtrip(64, 17, 3, 8, 3); }
TEST(png_roundtrip_rgba8) { roundtrip(19, 31, 4, 8, 4); }
TEST(png_roundtrip_gray16) { roundtrip(33, 12, 1, 16, 5); }
TEST(png_roundtrip_gray_alpha16) { roundtrip(3, 4, 2, 16, 6); }
TEST(png_roundtrip_rgb16) { roundtrip(11, 13, 3, 16, 7); }
TEST(png_roundtrip_rgba16) { roundtrip(8, 8, 4, 16, 8); }
TEST(png_roundtrip_1x1) { roundtrip(1, 1, 3, 8, 9); }

/* 16-bit samples are host order in memory and big-endian in the file, as PNG requires. */
TEST(png_16bit_file_is_big_endian) {
    struct iseg_image img = {0};
    char              err[256];
    ASSERT_OK(iseg_image_alloc(&img, 2, 1, 1, 16));
    ((uint16_t *)img.data)[0] = 0x1234;
    ((uint16_t *)img.data)[1] = 0xABCD;
    const char *path          = tmp_path("be.png");
    ASSERT_OK(iseg_png_write(path, &img, err, sizeof(err)));
    iseg_image_free(&img);
    /* rebuild the same image with our own stored-deflate writer and compare decoded pixels */
    uint8_t scan[5] = {0, 0x12, 0x34, 0xAB, 0xCD};
    size_t  n;
    uint8_t *png = build_png(2, 1, 16, 0, 0, NULL, 0, NULL, 0, scan, sizeof(scan), &n);
    ASSERT_OK(iseg_png_read_mem(png, n, &img, err, sizeof(err)));
    ASSERT_EQ_U64(((uint16_t *)img.data)[0], 0x1234);
    ASSERT_EQ_U64(((uint16_t *)img.data)[1], 0xABCD);
    struct iseg_image back = {0};
    ASSERT_OK(iseg_png_read(path, &back, err, sizeof(err)));
    assert_same_image(&img, &back);
    iseg_image_free(&back);
    iseg_image_free(&img);
    free(png);
}

TEST(png_write_overwrites_existing) {
    struct iseg_image a = {0}, b = {0}, back = {0};
    char              err[256];
    const char       *path = tmp_path("over.png");
    random_image(&a, 10, 10, 3, 8, 11);
    random_image(&b, 12, 7, 1, 8, 12);
    ASSERT_OK(iseg_png_write(path, &a, err, sizeof(err)));
    ASSERT_OK(iseg_png_write(path, &b, err, sizeof(err)));
    ASSERT_OK(iseg_png_read(path, &back, err, sizeof(err)));
    assert_same_image(&b, &back);
    iseg_image_free(&a);
    iseg_image_free(&b);
    iseg_image_free(&back);
}

/* ---- formats the writer does not produce ---- */

TEST(png_read_gray1_scaled) {
    uint8_t  scan[2] = {0, 0xB1}; /* 10110001 */
    size_t   n;
    uint8_t *png = build_png(8, 1, 1, 0, 0, NULL, 0, NULL, 0, scan, sizeof(scan), &n);
    struct iseg_image img = {0};
    char              err[256];
    ASSERT_OK(iseg_png_read_mem(png, n, &img, err, sizeof(err)));
    ASSERT_EQ_U64(img.c, 1);
    ASSERT_EQ_U64(img.depth, 8);
    const uint8_t want[8] = {255, 0, 255, 255, 0, 0, 0, 255};
    ASSERT(memcmp(img.data, want, 8) == 0);
    iseg_image_free(&img);
    free(png);
}

TEST(png_read_palette) {
    /* 2-bit indices 0 1 2 3 into a 4-entry palette */
    uint8_t  plte[12] = {255, 0, 0, 0, 255, 0, 0, 0, 255, 9, 8, 7};
    uint8_t  scan[2]  = {0, 0x1B};
    size_t   n;
    uint8_t *png = build_png(4, 1, 2, 3, 0, plte, 12, NULL, 0, scan, sizeof(scan), &n);
    struct iseg_image img = {0};
    char              err[256];
    ASSERT_OK(iseg_png_read_mem(png, n, &img, err, sizeof(err)));
    ASSERT_EQ_U64(img.c, 3);
    ASSERT_EQ_U64(img.depth, 8);
    ASSERT(memcmp(img.data, plte, 12) == 0);
    iseg_image_free(&img);
    free(png);

    /* with tRNS: expanded to RGBA, entries past the tRNS list are opaque */
    uint8_t trns[2] = {128, 0};
    png             = build_png(4, 1, 2, 3, 0, plte, 12, trns, 2, scan, sizeof(scan), &n);
    ASSERT_OK(iseg_png_read_mem(png, n, &img, err, sizeof(err)));
    ASSERT_EQ_U64(img.c, 4);
    const uint8_t want[16] = {255, 0, 0, 128, 0, 255, 0, 0, 0, 0, 255, 255, 9, 8, 7, 255};
    ASSERT(memcmp(img.data, want, 16) == 0);
    iseg_image_free(&img);
    free(png);

    /* indices past the palette decode as opaque black, as libpng does */
    png = build_png(4, 1, 2, 3, 0, plte, 6, NULL, 0, scan, sizeof(scan), &n);
    ASSERT_OK(iseg_png_read_mem(png, n, &img, err, sizeof(err)));
    const uint8_t want_short[12] = {255, 0, 0, 0, 255, 0, 0, 0, 0, 0, 0, 0};
    ASSERT(memcmp(img.data, want_short, 12) == 0);
    iseg_image_free(&img);
    free(png);
}

TEST(png_read_trns_key_adds_alpha) {
    /* 16-bit gray with key 0x0102: gray+alpha 16 */
    uint8_t  key16[2] = {0x01, 0x02};
    uint8_t  scan[5]  = {0, 0x01, 0x02, 0x01, 0x03};
    size_t   n;
    uint8_t *png = build_png(2, 1, 16, 0, 0, NULL, 0, key16, 2, scan, sizeof(scan), &n);
    struct iseg_image img = {0};
    char              err[256];
    ASSERT_OK(iseg_png_read_mem(png, n, &img, err, sizeof(err)));
    ASSERT_EQ_U64(img.c, 2);
    ASSERT_EQ_U64(img.depth, 16);
    const uint16_t want16[4] = {0x0102, 0, 0x0103, 65535};
    ASSERT(memcmp(img.data, want16, sizeof(want16)) == 0);
    iseg_image_free(&img);
    free(png);

    /* 2-bit gray with key 2 (scaled to 170) */
    uint8_t key2[2]  = {0, 2};
    uint8_t scan2[2] = {0, 0x1B}; /* 0 1 2 3 -> 0 85 170 255 */
    png              = build_png(4, 1, 2, 0, 0, NULL, 0, key2, 2, scan2, sizeof(scan2), &n);
    ASSERT_OK(iseg_png_read_mem(png, n, &img, err, sizeof(err)));
    ASSERT_EQ_U64(img.c, 2);
    const uint8_t want2[8] = {0, 255, 85, 255, 170, 0, 255, 255};
    ASSERT(memcmp(img.data, want2, 8) == 0);
    iseg_image_free(&img);
    free(png);

    /* 8-bit RGB with key (1, 2, 3): RGBA */
    uint8_t keyrgb[6] = {0, 1, 0, 2, 0, 3};
    uint8_t scan3[7]  = {0, 1, 2, 3, 1, 2, 4};
    png               = build_png(2, 1, 8, 2, 0, NULL, 0, keyrgb, 6, scan3, sizeof(scan3), &n);
    ASSERT_OK(iseg_png_read_mem(png, n, &img, err, sizeof(err)));
    ASSERT_EQ_U64(img.c, 4);
    const uint8_t want3[8] = {1, 2, 3, 0, 1, 2, 4, 255};
    ASSERT(memcmp(img.data, want3, 8) == 0);
    iseg_image_free(&img);
    free(png);
}

TEST(png_read_interlaced) {
    /* 5x5 8-bit gray, pixel value 10*y + x, serialised in the seven Adam7 passes */
    static const int X0[7] = {0, 4, 0, 2, 0, 1, 0}, Y0[7] = {0, 0, 4, 0, 2, 0, 1};
    static const int DX[7] = {8, 8, 4, 4, 2, 2, 1}, DY[7] = {8, 8, 8, 4, 4, 2, 2};
    struct bytes     scan = {0};
    for (int p = 0; p < 7; p++) {
        if (X0[p] >= 5 || Y0[p] >= 5) continue; /* empty pass: no scanlines at all */
        for (int y = Y0[p]; y < 5; y += DY[p]) {
            uint8_t f = 0;
            put_bytes(&scan, &f, 1);
            for (int x = X0[p]; x < 5; x += DX[p]) {
                uint8_t v = (uint8_t)(10 * y + x);
                put_bytes(&scan, &v, 1);
            }
        }
    }
    size_t   n;
    uint8_t *png = build_png(5, 5, 8, 0, 1, NULL, 0, NULL, 0, scan.d, scan.n, &n);
    struct iseg_image img = {0};
    char              err[256];
    ASSERT_OK(iseg_png_read_mem(png, n, &img, err, sizeof(err)));
    for (int y = 0; y < 5; y++)
        for (int x = 0; x < 5; x++) ASSERT_EQ_INT(((uint8_t *)img.data)[y * 5 + x], 10 * y + x);
    iseg_image_free(&img);
    free(png);
    free(scan.d);
}

/* ---- bad input ---- */

TEST(png_read_truncated) {
    size_t   n;
    uint8_t *png = sample_png(&n);
    /* cut inside the signature, inside IHDR, right after IHDR, mid-IDAT, and before IEND */
    size_t cuts[] = {5, 20, 33, 45, n / 2, n - 12};
    for (size_t k = 0; k < sizeof(cuts) / sizeof(cuts[0]); k++) {
        const char *path = tmp_path("truncated.png");
        write_bytes(path, png, cuts[k]);
        struct iseg_image img = {0};
        char              err[512];
        ASSERT_STATUS(iseg_png_read(path, &img, err, sizeof(err)), ISEG_STATUS_EFORMAT);
        ASSERT_STRCONTAINS(err, path);
        ASSERT_STRCONTAINS(err, "truncated");
        ASSERT(img.data == NULL && img.w == 0);
    }
    free(png);
    check_leaks();
}

TEST(png_read_not_png) {
    const char *path = tmp_path("notes.txt");
    const char *text = "this is a text file, certainly not a PNG image\n";
    write_bytes(path, text, strlen(text));
    struct iseg_image img = {0};
    char              err[512];
    ASSERT_STATUS(iseg_png_read(path, &img, err, sizeof(err)), ISEG_STATUS_EFORMAT);
    ASSERT_STRCONTAINS(err, path);
    ASSERT_STRCONTAINS(err, "not a PNG");
    ASSERT(img.data == NULL);
    /* a JPEG header, in memory */
    const uint8_t jpg[] = {0xFF, 0xD8, 0xFF, 0xE0, 0, 16, 'J', 'F', 'I', 'F', 0};
    ASSERT_STATUS(iseg_png_read_mem(jpg, sizeof(jpg), &img, err, sizeof(err)),
                  ISEG_STATUS_EFORMAT);
    ASSERT_STRCONTAINS(err, "<memory>");
    ASSERT_STRCONTAINS(err, "not a PNG");
}

TEST(png_read_empty) {
    const char *path = tmp_path("empty.png");
    write_bytes(path, "", 0);
    struct iseg_image img = {0};
    char              err[512];
    ASSERT_STATUS(iseg_png_read(path, &img, err, sizeof(err)), ISEG_STATUS_EFORMAT);
    ASSERT_STRCONTAINS(err, path);
    ASSERT_STRCONTAINS(err, "empty");
    ASSERT_STATUS(iseg_png_read_mem(NULL, 0, &img, err, sizeof(err)), ISEG_STATUS_EFORMAT);
}

TEST(png_read_missing) {
    const char       *path = tmp_path("no_such_file.png");
    struct iseg_image img  = {0};
    char              err[512];
    ASSERT_STATUS(iseg_png_read(path, &img, err, sizeof(err)), ISEG_STATUS_EIO);
    ASSERT_STRCONTAINS(err, path);
    ASSERT(img.data == NULL);
    /* a directory cannot be read either */
    ASSERT_STATUS(iseg_png_read(test_tmp_dir(), &img, err, sizeof(err)), ISEG_STATUS_EIO);
    ASSERT_STRCONTAINS(err, test_tmp_dir());
    /* err may be NULL */
    ASSERT_STATUS(iseg_png_read(path, &img, NULL, 0), ISEG_STATUS_EIO);
}

TEST(png_read_corrupt) {
    size_t   n;
    uint8_t *png = sample_png(&n);
    /* flip a bit in the IDAT payload: caught by the chunk CRC */
    png[50] ^= 0x10;
    const char *path = tmp_path("corrupt.png");
    write_bytes(path, png, n);
    struct iseg_image img = {0};
    char              err[512];
    ASSERT_STATUS(iseg_png_read(path, &img, err, sizeof(err)), ISEG_STATUS_EFORMAT);
    ASSERT_STRCONTAINS(err, path);
    ASSERT_STRCONTAINS(err, "corrupt");
    ASSERT(img.data == NULL);
    png[50] ^= 0x10;
    /* a bad IHDR: width 0 */
    memset(png + 16, 0, 4);
    ASSERT_STATUS(iseg_png_read_mem(png, n, &img, err, sizeof(err)), ISEG_STATUS_EFORMAT);
    free(png);
    check_leaks();
}

TEST(png_read_limits) {
    size_t   n;
    uint8_t *png = sample_png(&n); /* 40 x 30 */
    struct iseg_image        img = {0};
    char                     err[512];
    struct iseg_image_limits lim = iseg_image_default_limits();
    ASSERT_EQ_U64(lim.max_pixels, ISEG_IMAGE_MAX_PIXELS);
    lim.max_pixels = 40 * 30 - 1;
    ASSERT_STATUS(iseg_png_read_mem_limits(png, n, &lim, &img, err, sizeof(err)),
                  ISEG_STATUS_ELIMIT);
    ASSERT_STRCONTAINS(err, "too large");
    ASSERT_STRCONTAINS(err, "40 x 30");
    ASSERT(img.data == NULL);
    lim            = iseg_image_default_limits();
    lim.max_height = 29;
    ASSERT_STATUS(iseg_png_read_mem_limits(png, n, &lim, &img, err, sizeof(err)),
                  ISEG_STATUS_ELIMIT);
    lim.max_height = 30;
    ASSERT_OK(iseg_png_read_mem_limits(png, n, &lim, &img, err, sizeof(err)));
    iseg_image_free(&img);
    free(png);

    /* a 40-byte file claiming 100000 x 100000 pixels fails before allocating anything */
    size_t   m;
    uint8_t  scan[2] = {0, 0};
    uint8_t *big     = build_png(100000, 100000, 8, 0, 0, NULL, 0, NULL, 0, scan, 2, &m);
    const char *path = tmp_path("huge.png");
    write_bytes(path, big, m);
    ASSERT_STATUS(iseg_png_read(path, &img, err, sizeof(err)), ISEG_STATUS_ELIMIT);
    ASSERT_STRCONTAINS(err, path);
    ASSERT_STRCONTAINS(err, "too large");
    free(big);
}

/* ---- the fast decoder against libspng (src/image/png_impl.h) ---- */

/* Decode with both decoders: same status, same message, same pixels. Returns the fast result
 * (caller frees) and whether the fast decoder produced it. */
static enum iseg_status decode_both(const uint8_t *png, size_t n,
                                    const struct iseg_image_limits *lim,
                                    struct iseg_image *img, bool *took_fast) {
    char              e_fast[512] = "", e_slow[512] = "";
    struct iseg_image slow        = {0};
    unsigned long     before      = iseg__png_n_fast;
    enum iseg_status  st = iseg_png_read_mem_limits(png, n, lim, img, e_fast, sizeof(e_fast));
    if (took_fast) *took_fast = iseg__png_n_fast != before;
    iseg__png_force_slow = true;
    enum iseg_status st_slow =
        iseg_png_read_mem_limits(png, n, lim, &slow, e_slow, sizeof(e_slow));
    iseg__png_force_slow = false;
    ASSERT_EQ_INT(st, st_slow);
    if (st == ISEG_STATUS_OK) assert_same_image(img, &slow);
    else ASSERT_MSG(strcmp(e_fast, e_slow) == 0, "'%s' vs '%s'", e_fast, e_slow);
    iseg_image_free(&slow);
    return st;
}

static uint8_t paeth_ref(int a, int b, int c) {
    int p = a + b - c, pa = abs(p - a), pb = abs(p - b), pc = abs(p - c);
    return (uint8_t)(pa <= pb && pa <= pc ? a : pb <= pc ? b : c);
}

/* Filter h rows of px (file byte order, rowbytes each) with filter (y + shift) % 5 on row y. */
static uint8_t *filter_rows(const uint8_t *px, uint32_t h, size_t rowbytes, size_t bpp,
                            int shift, size_t *scan_n) {
    *scan_n      = (size_t)h * (rowbytes + 1);
    uint8_t *out = malloc(*scan_n);
    ASSERT(out);
    for (uint32_t y = 0; y < h; y++) {
        const uint8_t *x = px + (size_t)y * rowbytes, *up = y ? x - rowbytes : NULL;
        uint8_t       *o = out + (size_t)y * (rowbytes + 1);
        int            f = (int)((y + (uint32_t)shift) % 5);
        o[0]             = (uint8_t)f;
        for (size_t i = 0; i < rowbytes; i++) {
            int a = i >= bpp ? x[i - bpp] : 0, b = up ? up[i] : 0;
            int c = up && i >= bpp ? up[i - bpp] : 0, pred = 0;
            if (f == 1) pred = a;
            if (f == 2) pred = b;
            if (f == 3) pred = (a + b) / 2;
            if (f == 4) pred = paeth_ref(a, b, c);
            o[1 + i] = (uint8_t)(x[i] - pred);
        }
    }
    return out;
}

/* Like build_png, for the fast decoder's types: the zlib stream split over n_idat IDAT chunks,
 * with an unknown ancillary chunk before and after them when extra is set. */
static uint8_t *build_png_split(uint32_t w, uint32_t h, int depth, int ctype,
                                const uint8_t *scan, size_t scan_n, size_t n_idat, bool extra,
                                size_t *out_n) {
    struct bytes b = {0}, z = {0};
    put_bytes(&b, "\x89PNG\r\n\x1a\n", 8);
    uint8_t ihdr[13] = {(uint8_t)(w >> 24), (uint8_t)(w >> 16), (uint8_t)(w >> 8), (uint8_t)w,
                        (uint8_t)(h >> 24), (uint8_t)(h >> 16), (uint8_t)(h >> 8), (uint8_t)h,
                        (uint8_t)depth, (uint8_t)ctype, 0, 0, 0};
    put_chunk(&b, "IHDR", ihdr, 13);
    if (extra) put_chunk(&b, "prVt", (const uint8_t *)"hello", 5);
    put_zlib_stored(&z, scan, scan_n);
    size_t off = 0;
    for (size_t k = 0; k < n_idat; k++) {
        size_t end = k + 1 == n_idat ? z.n : z.n * (k + 1) / n_idat;
        put_chunk(&b, "IDAT", z.d + off, end - off);
        off = end;
    }
    if (extra) put_chunk(&b, "zzZz", NULL, 0);
    put_chunk(&b, "IEND", NULL, 0);
    free(z.d);
    *out_n = b.n;
    return b.d;
}

/* Recompute the CRC of every complete chunk (after deliberate damage). */
static void fix_crcs(uint8_t *d, size_t n) {
    size_t off = 8;
    while (off + 12 <= n) {
        uint32_t len = (uint32_t)d[off] << 24 | (uint32_t)d[off + 1] << 16 |
                       (uint32_t)d[off + 2] << 8 | d[off + 3];
        if (len > n - off - 12) break;
        uint32_t crc = crc32_update(0, d + off + 4, (size_t)len + 4);
        uint8_t *c   = d + off + 8 + len;
        c[0] = (uint8_t)(crc >> 24), c[1] = (uint8_t)(crc >> 16);
        c[2] = (uint8_t)(crc >> 8), c[3] = (uint8_t)crc;
        off += (size_t)len + 12;
    }
}

TEST(png_fast_all_types_and_filters) {
    static const int      CTYPE[4] = {0, 2, 4, 6}, CHANNELS[4] = {1, 3, 2, 4};
    static const uint32_t DIMS[][2] = {{1, 1}, {1, 9}, {9, 1}, {13, 5}, {31, 11}, {2, 64}};
    uint64_t              seed      = 99;
    int                   n_fast    = 0;
    for (int t = 0; t < 4; t++)
        for (int depth = 8; depth <= 16; depth += 8)
            for (size_t d = 0; d < sizeof(DIMS) / sizeof(DIMS[0]); d++)
                for (int shift = 0; shift < 5; shift++) {
                    uint32_t w = DIMS[d][0], h = DIMS[d][1];
                    size_t   bpp = (size_t)CHANNELS[t] * depth / 8, rowbytes = w * bpp;
                    uint8_t *px  = malloc(rowbytes * h);
                    ASSERT(px);
                    /* mostly smooth with some noise, so every predictor branch is taken */
                    for (size_t i = 0; i < rowbytes * h; i++)
                        px[i] = (uint8_t)(test_rand(&seed) % 4 ? i * 7 / 3 : test_rand(&seed));
                    size_t   scan_n, n;
                    uint8_t *scan = filter_rows(px, h, rowbytes, bpp, shift, &scan_n);
                    uint8_t *png  = build_png_split(w, h, depth, CTYPE[t], scan, scan_n,
                                                    1 + (size_t)shift % 3, shift == 4, &n);
                    struct iseg_image img = {0};
                    bool              fast;
                    ASSERT_OK(decode_both(png, n, NULL, &img, &fast));
                    n_fast += fast;
                    ASSERT(fast);
                    ASSERT_EQ_U64(img.c, CHANNELS[t]);
                    ASSERT_EQ_U64(img.depth, depth);
                    /* against the source pixels directly */
                    for (size_t i = 0; i < rowbytes * h; i += depth / 8) {
                        uint32_t want = depth == 8 ? px[i] : (uint32_t)px[i] << 8 | px[i + 1];
                        uint32_t got  = depth == 8 ? ((uint8_t *)img.data)[i]
                                                   : ((uint16_t *)img.data)[i / 2];
                        ASSERT_EQ_U64(got, want);
                    }
                    iseg_image_free(&img);
                    free(png);
                    free(scan);
                    free(px);
                }
    ASSERT(n_fast == 4 * 2 * 6 * 5);
}

/* Files the library writes itself (real deflate streams) take the fast path. */
TEST(png_fast_written_files) {
    for (uint32_t c = 1; c <= 4; c++)
        for (uint32_t depth = 8; depth <= 16; depth += 8) {
            struct iseg_image img = {0}, back = {0};
            char              err[256];
            void             *buf = NULL;
            size_t            n   = 0;
            random_image(&img, 57, 33, c, depth, c * 100 + depth);
            /* a smooth half, so the writer picks a mix of filters */
            size_t half = iseg_image_nbytes(&img) / 2;
            for (size_t i = 0; i < half; i++) ((uint8_t *)img.data)[i] = (uint8_t)(i / 5);
            ASSERT_OK(iseg_png_write_mem(&img, &buf, &n, err, sizeof(err)));
            bool fast;
            ASSERT_OK(decode_both(buf, n, NULL, &back, &fast));
            ASSERT(fast);
            assert_same_image(&img, &back);
            iseg_image_free(&back);
            iseg_image_free(&img);
            iseg_free(buf);
        }
}

/* What the fast decoder leaves to libspng still decodes (and the same either way). */
TEST(png_fast_declines_unusual) {
    struct iseg_image img = {0};
    bool              fast;
    size_t            n;
    uint8_t           scan3[7] = {0, 1, 2, 3, 1, 2, 4};
    uint8_t           key[6]   = {0, 1, 0, 2, 0, 3};
    uint8_t *png = build_png(2, 1, 8, 2, 0, NULL, 0, key, 6, scan3, sizeof(scan3), &n); /* tRNS */
    ASSERT_OK(decode_both(png, n, NULL, &img, &fast));
    ASSERT(!fast);
    ASSERT_EQ_U64(img.c, 4);
    iseg_image_free(&img);
    free(png);
    uint8_t scan1[2] = {0, 0xB1};
    png              = build_png(8, 1, 1, 0, 0, NULL, 0, NULL, 0, scan1, 2, &n); /* 1-bit */
    ASSERT_OK(decode_both(png, n, NULL, &img, &fast));
    ASSERT(!fast);
    iseg_image_free(&img);
    free(png);
    uint8_t scan_i[2] = {0, 7}; /* interlaced 1x1: one pass */
    png               = build_png(1, 1, 8, 0, 1, NULL, 0, NULL, 0, scan_i, 2, &n);
    ASSERT_OK(decode_both(png, n, NULL, &img, &fast));
    ASSERT(!fast);
    iseg_image_free(&img);
    free(png);
    /* bytes after IEND */
    uint8_t scan[4] = {0, 1, 2, 3};
    png             = build_png(3, 1, 8, 0, 0, NULL, 0, NULL, 0, scan, 4, &n);
    png             = realloc(png, n + 3);
    memcpy(png + n, "xyz", 3);
    decode_both(png, n + 3, NULL, &img, NULL);
    iseg_image_free(&img);
    free(png);
}

TEST(png_fast_corrupt) {
    size_t   n;
    uint8_t *png = sample_png(&n);
    struct iseg_image img = {0};
    bool              fast;
    char              err[512];
    ASSERT_OK(decode_both(png, n, NULL, &img, &fast));
    ASSERT(fast);
    iseg_image_free(&img);
    /* a bit flip in IDAT: the CRC catches it */
    png[50] ^= 0x10;
    ASSERT_STATUS(decode_both(png, n, NULL, &img, NULL), ISEG_STATUS_EFORMAT);
    ASSERT_STATUS(iseg_png_read_mem(png, n, &img, err, sizeof(err)), ISEG_STATUS_EFORMAT);
    ASSERT_STRCONTAINS(err, "corrupt");
    png[50] ^= 0x10;
    /* every truncation, through a file so the message names it */
    const char *path = tmp_path("cut.png");
    for (size_t cut = 0; cut < n; cut++) {
        /* (libspng accepts a few cuts inside IEND: both decoders must agree on those too) */
        enum iseg_status st = decode_both(png, cut, NULL, &img, NULL);
        iseg_image_free(&img);
        ASSERT_MSG(cut > n - 12 || st == ISEG_STATUS_EFORMAT, "cut %zu of %zu: %d", cut, n, st);
        if (cut % 97 == 0 || cut == n - 12) {
            write_bytes(path, png, cut);
            ASSERT_STATUS(iseg_png_read(path, &img, err, sizeof(err)), ISEG_STATUS_EFORMAT);
            ASSERT_STRCONTAINS(err, path);
        }
    }
    /* damage anywhere with the CRCs made valid again: the zlib header, the deflate data, the
     * Adler-32, IHDR fields, chunk names and lengths */
    uint8_t *bad = malloc(n);
    ASSERT(bad);
    uint64_t seed = 5;
    for (int k = 0; k < 3000; k++) {
        memcpy(bad, png, n);
        size_t at = 8 + (size_t)(k < (int)n - 8 ? k : (int)(test_rand(&seed) % (n - 8)));
        bad[at] ^= (uint8_t)(1u << (test_rand(&seed) % 8));
        fix_crcs(bad, n);
        decode_both(bad, n, NULL, &img, NULL);
        iseg_image_free(&img);
    }
    free(bad);
    free(png);
    check_leaks();
}

TEST(png_fast_bad_streams) {
    struct iseg_image img = {0};
    char              err[512];
    size_t            n;
    uint8_t scan[9] = {0, 10, 20, 1, 30, 40, 5, 1, 2}; /* 2x1 RGB16: filter 0, then... */
    /* a filter type above 4 */
    uint8_t scan_f[7] = {5, 1, 2, 3, 4, 5, 6};
    uint8_t *png      = build_png(2, 1, 8, 2, 0, NULL, 0, NULL, 0, scan_f, 7, &n);
    ASSERT_STATUS(decode_both(png, n, NULL, &img, NULL), ISEG_STATUS_EFORMAT);
    free(png);
    /* too little and too much image data */
    png = build_png(2, 1, 8, 2, 0, NULL, 0, NULL, 0, scan, 6, &n);
    ASSERT_STATUS(decode_both(png, n, NULL, &img, NULL), ISEG_STATUS_EFORMAT);
    ASSERT_STATUS(iseg_png_read_mem(png, n, &img, err, sizeof(err)), ISEG_STATUS_EFORMAT);
    ASSERT_STRCONTAINS(err, "<memory>");
    free(png);
    png = build_png(2, 1, 8, 2, 0, NULL, 0, NULL, 0, scan, 9, &n);
    decode_both(png, n, NULL, &img, NULL);
    iseg_image_free(&img);
    free(png);
    /* a bad zlib header and a bad Adler-32, CRCs valid */
    png = build_png(2, 1, 8, 2, 0, NULL, 0, NULL, 0, scan, 7, &n);
    size_t idat = 33 + 8; /* the zlib stream starts after IDAT's length and name */
    ASSERT(memcmp(png + 33 + 4, "IDAT", 4) == 0);
    png[idat] = 0x79;
    fix_crcs(png, n);
    ASSERT_STATUS(decode_both(png, n, NULL, &img, NULL), ISEG_STATUS_EFORMAT);
    png[idat] = 0x78;
    size_t adler = idat + 2 + 5 + 7 + 3;
    png[adler] ^= 1;
    fix_crcs(png, n);
    ASSERT_STATUS(decode_both(png, n, NULL, &img, NULL), ISEG_STATUS_EFORMAT);
    ASSERT_STATUS(iseg_png_read_mem(png, n, &img, err, sizeof(err)), ISEG_STATUS_EFORMAT);
    ASSERT_STRCONTAINS(err, "corrupt");
    png[adler] ^= 1;
    fix_crcs(png, n);
    ASSERT_OK(decode_both(png, n, NULL, &img, NULL));
    iseg_image_free(&img);
    free(png);
    check_leaks();
}

TEST(png_fast_limits) {
    size_t   n;
    uint8_t *png = sample_png(&n); /* 40 x 30 */
    struct iseg_image        img = {0};
    struct iseg_image_limits lim = iseg_image_default_limits();
    lim.max_pixels               = 40 * 30 - 1;
    ASSERT_STATUS(decode_both(png, n, &lim, &img, NULL), ISEG_STATUS_ELIMIT);
    lim            = iseg_image_default_limits();
    lim.max_width  = 39;
    ASSERT_STATUS(decode_both(png, n, &lim, &img, NULL), ISEG_STATUS_ELIMIT);
    lim            = iseg_image_default_limits();
    lim.max_chunk_bytes = 16; /* IDAT is larger: libspng decides */
    decode_both(png, n, &lim, &img, NULL);
    iseg_image_free(&img);
    free(png);
    /* a huge header with a valid CRC: refused before any allocation */
    uint8_t  scan[2] = {0, 0};
    uint8_t *big     = build_png(100000, 100000, 8, 0, 0, NULL, 0, NULL, 0, scan, 2, &n);
    ASSERT_STATUS(decode_both(big, n, NULL, &img, NULL), ISEG_STATUS_ELIMIT);
    free(big);
}

/* ---- writing failures ---- */

TEST(png_write_unwritable) {
    struct iseg_image img = {0};
    char              err[512];
    random_image(&img, 4, 4, 3, 8, 21);
    /* a directory that does not exist */
    const char *path = tmp_path("no/such/dir/out.png");
    ASSERT_STATUS(iseg_png_write(path, &img, err, sizeof(err)), ISEG_STATUS_EIO);
    ASSERT_STRCONTAINS(err, path);
    ASSERT(!file_exists(tmp_path("no")));
    /* the target is a directory: the temporary file is written, the rename fails, and the
     * temporary file must be gone */
    const char *dir = tmp_path("adir");
    ASSERT(mkdir(dir, 0755) == 0);
    ASSERT_STATUS(iseg_png_write(dir, &img, err, sizeof(err)), ISEG_STATUS_EIO);
    ASSERT_STRCONTAINS(err, dir);
    ASSERT_EQ_INT(count_entries(test_tmp_dir(), ".tmp."), 0);
    ASSERT_EQ_INT(count_entries(test_tmp_dir(), "adir"), 1);
    iseg_image_free(&img);
}

TEST(png_write_invalid_image) {
    char              err[512];
    struct iseg_image img = {0};
    const char       *path = tmp_path("bad.png");
    ASSERT_STATUS(iseg_png_write(path, &img, err, sizeof(err)), ISEG_STATUS_EINVAL);
    ASSERT_STRCONTAINS(err, path);
    uint8_t px[16] = {0};
    img            = (struct iseg_image){.w = 2, .h = 2, .c = 5, .depth = 8, .data = px};
    ASSERT_STATUS(iseg_png_write(path, &img, err, sizeof(err)), ISEG_STATUS_EINVAL);
    img = (struct iseg_image){.w = 2, .h = 2, .c = 1, .depth = 4, .data = px};
    ASSERT_STATUS(iseg_png_write(path, &img, err, sizeof(err)), ISEG_STATUS_EINVAL);
    ASSERT(!file_exists(path));
    ASSERT_EQ_INT(count_entries(test_tmp_dir(), ".tmp."), 0);
}

/* Out-of-memory injection: fail the k-th allocation for k = 0, 1, ... until the call succeeds;
 * every failure must be ENOMEM with nothing leaked (LSan checks the child at exit). */
static long g_alloc_left;
static void *failing_malloc(size_t n, void *user) {
    (void)user;
    return g_alloc_left-- > 0 ? malloc(n) : NULL;
}
static void *failing_realloc(void *p, size_t n, void *user) {
    (void)user;
    return g_alloc_left-- > 0 ? realloc(p, n) : NULL;
}
static void plain_free(void *p, void *user) {
    (void)user;
    free(p);
}

TEST(png_and_plot_oom) {
    struct iseg_image img = {0};
    random_image(&img, 9, 7, 4, 16, 31);
    const char *path = tmp_path("oom.png");
    char        err[512];
    ASSERT_OK(iseg_png_write(path, &img, err, sizeof(err)));
    struct iseg_alloc a = {failing_malloc, failing_realloc, plain_free, NULL};
    iseg_alloc_set(&a);
    bool all_ok = false;
    for (long k = 0; k < 10000 && !all_ok; k++) {
        enum iseg_status  st;
        struct iseg_image back = {0};
        int               n_ok = 0;
        g_alloc_left           = k;
        st                     = iseg_png_write(path, &img, err, sizeof(err));
        ASSERT_MSG(st == ISEG_STATUS_OK || st == ISEG_STATUS_ENOMEM, "write k=%ld: %d %s", k, st, err);
        n_ok += st == ISEG_STATUS_OK;
        g_alloc_left = k;
        st           = iseg_png_read(path, &back, err, sizeof(err));
        ASSERT_MSG(st == ISEG_STATUS_OK || st == ISEG_STATUS_ENOMEM, "read k=%ld: %d %s", k,
                   st, err);
        if (st == ISEG_STATUS_OK) assert_same_image(&img, &back);
        else ASSERT(back.data == NULL);
        n_ok += st == ISEG_STATUS_OK;
        iseg_image_free(&back);
        g_alloc_left = k;
        double                  x[2] = {0, 1}, y[2] = {1, 0};
        struct iseg_plot_series s    = {.label = "a", .x = x, .y = y, .n = 2, .rgb = {1, 2, 3}};
        st                           = iseg_plot_lines(&back, &s, 1, NULL);
        ASSERT_MSG(st == ISEG_STATUS_OK || st == ISEG_STATUS_ENOMEM, "plot k=%ld: %d", k, st);
        n_ok += st == ISEG_STATUS_OK;
        iseg_image_free(&back);
        all_ok = n_ok == 3;
    }
    iseg_alloc_set(NULL);
    ASSERT(all_ok);
    ASSERT_EQ_INT(count_entries(test_tmp_dir(), ".tmp."), 0);
    iseg_image_free(&img);
    check_leaks();
}

/* ---- plotting ---- */

static size_t count_colour(const struct iseg_image *img, const uint8_t rgb[3]) {
    size_t         n = 0;
    const uint8_t *p = img->data;
    for (size_t i = 0; i < (size_t)img->w * img->h; i++)
        if (p[3 * i] == rgb[0] && p[3 * i + 1] == rgb[1] && p[3 * i + 2] == rgb[2]) n++;
    return n;
}

static const uint8_t *pixel(const struct iseg_image *img, uint32_t x, uint32_t y) {
    return (const uint8_t *)img->data + ((size_t)y * img->w + x) * 3;
}

#define N_PR 101
static double g_recall[N_PR], g_prec[3][N_PR];

static void pr_series(struct iseg_plot_series s[3]) {
    static const char *labels[3] = {"bbox AP 0.62", "segm AP 0.55", "staircase"};
    for (int i = 0; i < N_PR; i++) {
        double r    = i / 100.0;
        g_recall[i] = r;
        g_prec[0][i] = 1 - r * r * r * r;
        g_prec[1][i] = 0.9 - 0.8 * r * r;
        g_prec[2][i] = i < 70 ? 0.8 - 0.2 * ((i / 10) % 2) : 0.0;
    }
    for (int k = 0; k < 3; k++) {
        s[k] = (struct iseg_plot_series){.label = labels[k], .x = g_recall, .y = g_prec[k],
                                         .n = N_PR};
        iseg_plot_default_palette((size_t)k, s[k].rgb);
    }
}

TEST(plot_palette) {
    uint8_t c[12][3];
    for (size_t i = 0; i < 12; i++) iseg_plot_default_palette(i, c[i]);
    for (size_t i = 0; i < 12; i++) {
        ASSERT(!(c[i][0] == 255 && c[i][1] == 255 && c[i][2] == 255)); /* not the background */
        for (size_t j = 0; j < i; j++) ASSERT(memcmp(c[i], c[j], 3) != 0);
    }
    uint8_t w[3];
    iseg_plot_default_palette(12, w);
    ASSERT(memcmp(w, c[0], 3) == 0);
}

TEST(plot_basic) {
    struct iseg_plot_series s[3];
    pr_series(s);
    struct iseg_plot_params p = iseg_plot_default_params();
    ASSERT_EQ_INT(p.width, 640);
    ASSERT_EQ_INT(p.height, 480);
    ASSERT(p.xmin == 0 && p.xmax == 1 && p.ymin == 0 && p.ymax == 1);
    p.title  = "Precision-recall";
    p.xlabel = "recall";
    p.ylabel = "precision";
    struct iseg_image img = {0};
    ASSERT_OK(iseg_plot_lines(&img, s, 3, &p));
    ASSERT_EQ_U64(img.w, 640);
    ASSERT_EQ_U64(img.h, 480);
    ASSERT_EQ_U64(img.c, 3);
    ASSERT_EQ_U64(img.depth, 8);
    /* white background: the corners, and most of the picture */
    static const uint8_t white[3] = {255, 255, 255};
    ASSERT(memcmp(pixel(&img, 0, 0), white, 3) == 0);
    ASSERT(memcmp(pixel(&img, 639, 0), white, 3) == 0);
    ASSERT(memcmp(pixel(&img, 0, 479), white, 3) == 0);
    ASSERT(memcmp(pixel(&img, 639, 479), white, 3) == 0);
    ASSERT(count_colour(&img, white) > 640 * 480 / 2);
    /* every series is drawn: far more pixels of its colour than the legend swatch has */
    for (int k = 0; k < 3; k++) {
        size_t n = count_colour(&img, s[k].rgb);
        ASSERT_MSG(n > 600, "series %d: only %zu pixels of its colour", k, n);
    }
    /* some dark text/axes pixels exist */
    size_t dark = 0;
    for (size_t i = 0; i < 640 * 480; i++) dark += ((uint8_t *)img.data)[3 * i] < 100 &&
                                                    ((uint8_t *)img.data)[3 * i + 1] < 100 &&
                                                    ((uint8_t *)img.data)[3 * i + 2] < 100;
    ASSERT(dark > 1000);
    iseg_image_free(&img);

    /* other sizes and no parameters at all */
    p.width  = 300;
    p.height = 200;
    ASSERT_OK(iseg_plot_lines(&img, s, 3, &p));
    ASSERT_EQ_U64(img.w, 300);
    ASSERT_EQ_U64(img.h, 200);
    iseg_image_free(&img);
    ASSERT_OK(iseg_plot_lines(&img, NULL, 0, NULL));
    ASSERT_EQ_U64(img.w, 640);
    iseg_image_free(&img);
}

TEST(plot_deterministic) {
    struct iseg_plot_series s[3];
    pr_series(s);
    struct iseg_plot_params p = iseg_plot_default_params();
    p.title                   = "same bytes";
    struct iseg_image a = {0}, b = {0};
    ASSERT_OK(iseg_plot_lines(&a, s, 3, &p));
    ASSERT_OK(iseg_plot_lines(&b, s, 3, &p));
    assert_same_image(&a, &b);
    const char *p1 = tmp_path("plot1.png"), *p2 = tmp_path("plot2.png");
    char        err[512];
    ASSERT_OK(iseg_plot_lines_png(p1, s, 3, &p, err, sizeof(err)));
    ASSERT_OK(iseg_plot_lines_png(p2, s, 3, &p, err, sizeof(err)));
    size_t n1, n2;
    char  *f1 = test_read_file(p1, &n1), *f2 = test_read_file(p2, &n2);
    ASSERT_EQ_U64(n1, n2);
    ASSERT(memcmp(f1, f2, n1) == 0);
    /* the file holds exactly the image */
    struct iseg_image back = {0};
    ASSERT_OK(iseg_png_read(p1, &back, err, sizeof(err)));
    assert_same_image(&a, &back);
    free(f1);
    free(f2);
    iseg_image_free(&a);
    iseg_image_free(&b);
    iseg_image_free(&back);
    check_leaks();
}

TEST(plot_clipping_and_bad_points) {
    /* a series entirely outside the axes and one full of NaN/inf/huge values: no crash, and
     * the outside one leaves no pixel (no label, so no legend swatch either) */
    double x1[3] = {2, 3, 4}, y1[3] = {0.5, 0.5, 0.5};
    double x2[8] = {0, NAN, 0.5, INFINITY, 0.7, 1e300, -1e300, 0.9};
    double y2[8] = {0.5, 0.5, 1e308, 0.2, -INFINITY, 0.3, 0.4, NAN};
    struct iseg_plot_series s[2] = {
        {.label = NULL, .x = x1, .y = y1, .n = 3, .rgb = {10, 200, 30}},
        {.label = NULL, .x = x2, .y = y2, .n = 8, .rgb = {200, 10, 30}},
    };
    struct iseg_image img = {0};
    ASSERT_OK(iseg_plot_lines(&img, s, 2, NULL));
    ASSERT_EQ_U64(count_colour(&img, s[0].rgb), 0);
    ASSERT(count_colour(&img, s[1].rgb) > 0);
    iseg_image_free(&img);

    /* a single point still shows */
    double                  px = 0.5, py = 0.5;
    struct iseg_plot_series one = {.label = "dot", .x = &px, .y = &py, .n = 1, .rgb = {1, 2, 3}};
    ASSERT_OK(iseg_plot_lines(&img, &one, 1, NULL));
    ASSERT(count_colour(&img, one.rgb) > 0);
    iseg_image_free(&img);
}

TEST(plot_other_ranges_and_long_text) {
    double x[4] = {-50, 0, 120, 250}, y[4] = {0.001, 0.004, 0.002, 0.003};
    struct iseg_plot_series s = {
        .label = "a very long legend label that will not fit in the box at all, \xc3\xa9t\xc3\xa9",
        .x     = x,
        .y     = y,
        .n     = 4,
        .rgb   = {0, 0, 200}};
    struct iseg_plot_params p = iseg_plot_default_params();
    p.xmin = -50, p.xmax = 250, p.ymin = 0, p.ymax = 0.005;
    p.title = "a title much too long for the picture, which must simply be cut at the border";
    struct iseg_image img = {0};
    ASSERT_OK(iseg_plot_lines(&img, &s, 1, &p));
    ASSERT(count_colour(&img, s.rgb) > 300);
    iseg_image_free(&img);
    /* many series: the legend says how many it could not list */
    struct iseg_plot_series many[40];
    for (int i = 0; i < 40; i++) {
        many[i] = s;
        many[i].label = "series";
        iseg_plot_default_palette((size_t)i, many[i].rgb);
    }
    ASSERT_OK(iseg_plot_lines(&img, many, 40, &p));
    iseg_image_free(&img);
}

TEST(plot_invalid_params) {
    struct iseg_plot_params p;
    struct iseg_image       img = {0};
    p = iseg_plot_default_params(), p.xmin = 1, p.xmax = 1;
    ASSERT_STATUS(iseg_plot_lines(&img, NULL, 0, &p), ISEG_STATUS_EINVAL);
    p = iseg_plot_default_params(), p.ymax = NAN;
    ASSERT_STATUS(iseg_plot_lines(&img, NULL, 0, &p), ISEG_STATUS_EINVAL);
    p = iseg_plot_default_params(), p.xmin = -INFINITY;
    ASSERT_STATUS(iseg_plot_lines(&img, NULL, 0, &p), ISEG_STATUS_EINVAL);
    p = iseg_plot_default_params(), p.xmin = -1e308, p.xmax = 1e308; /* range overflows */
    ASSERT_STATUS(iseg_plot_lines(&img, NULL, 0, &p), ISEG_STATUS_EINVAL);
    p = iseg_plot_default_params(), p.xmin = 0, p.xmax = 4.9e-324; /* denormal span */
    ASSERT_STATUS(iseg_plot_lines(&img, NULL, 0, &p), ISEG_STATUS_EINVAL);
    p = iseg_plot_default_params(), p.ymin = 1e17, p.ymax = 1e17 + 64; /* relative span 6e-16 */
    ASSERT_STATUS(iseg_plot_lines(&img, NULL, 0, &p), ISEG_STATUS_EINVAL);
    p = iseg_plot_default_params(), p.ymin = 1e6, p.ymax = 1e6 + 1; /* fine */
    ASSERT_OK(iseg_plot_lines(&img, NULL, 0, &p));
    iseg_image_free(&img);
    p = iseg_plot_default_params(), p.width = 50;
    ASSERT_STATUS(iseg_plot_lines(&img, NULL, 0, &p), ISEG_STATUS_EINVAL);
    p = iseg_plot_default_params(), p.height = -3;
    ASSERT_STATUS(iseg_plot_lines(&img, NULL, 0, &p), ISEG_STATUS_EINVAL);
    p = iseg_plot_default_params(), p.width = 20000;
    ASSERT_STATUS(iseg_plot_lines(&img, NULL, 0, &p), ISEG_STATUS_ELIMIT);
    ASSERT(img.data == NULL);
    /* the PNG variant reports the path */
    char        err[512];
    const char *path = tmp_path("never.png");
    p                = iseg_plot_default_params(), p.width = 50;
    ASSERT_STATUS(iseg_plot_lines_png(path, NULL, 0, &p, err, sizeof(err)), ISEG_STATUS_EINVAL);
    ASSERT_STRCONTAINS(err, path);
    ASSERT(!file_exists(path));
    p = iseg_plot_default_params();
    ASSERT_STATUS(iseg_plot_lines_png(tmp_path("no/dir/p.png"), NULL, 0, &p, err, sizeof(err)),
                  ISEG_STATUS_EIO);
    ASSERT_STRCONTAINS(err, "no/dir/p.png");
}

/* ---- row unfiltering: the vector kernels against the portable code ---- */

/* A row of n bytes of pixels (bpp bytes each) in one of several shapes: random, runs of equal
 * pixels of random lengths (flat stretches, as in segment maps), or all zero. */
static void shaped_row(uint8_t *r, size_t n, size_t bpp, int shape, uint64_t *seed) {
    if (shape == 2) {
        memset(r, 0, n);
        return;
    }
    for (size_t i = 0; i < n; i += bpp) {
        bool fresh = shape == 0 || i == 0 || test_rand(seed) % 23 == 0;
        for (size_t k = 0; k < bpp && i + k < n; k++)
            r[i + k] = fresh ? (uint8_t)test_rand(seed) : r[i + k - bpp];
    }
}

TEST(png_unfilter_simd_matches_scalar) {
    static const size_t BPP[] = {1, 2, 3, 4, 6, 8};
    uint64_t            seed  = 2024;
    for (size_t b = 0; b < sizeof(BPP) / sizeof(BPP[0]); b++)
        for (size_t w = 1; w <= 300; w += w < 40 ? 1 : 37) {
            size_t   bpp = BPP[b], n = w * bpp;
            /* exact sizes, so that the sanitizers see any access past a row */
            uint8_t *src = malloc(n), *prev = malloc(n), *a = malloc(n), *want = malloc(n);
            ASSERT(src && prev && a && want);
            for (int filter = 0; filter <= 4; filter++)
                for (int shape = 0; shape < 9; shape++) {
                    shaped_row(prev, n, bpp, shape % 3, &seed);
                    shaped_row(src, n, bpp, shape / 3, &seed);
                    for (int first = 0; first <= 1; first++) {
                        const uint8_t *pv = first ? NULL : prev;
                        memset(want, 0x55, n);
                        iseg__png_unfilter_row(want, src, pv, n, bpp, filter, 0);
                        /* every kernel level the CPU has: SSSE3 only, then AVX2 too */
                        for (int level = 1; level <= ISEG__PNG_SIMD_ALL; level++) {
                            memset(a, 0xAA, n);
                            iseg__png_unfilter_row(a, src, pv, n, bpp, filter, level);
                            ASSERT_MSG(memcmp(a, want, n) == 0,
                                       "bpp %zu w %zu filter %d shape %d level %d", bpp, w,
                                       filter, shape, level);
                        }
                        /* and against the spec's arithmetic */
                        for (size_t i = 0; i < n; i++) {
                            int l = i >= bpp ? want[i - bpp] : 0, u = pv ? pv[i] : 0;
                            int ul = pv && i >= bpp ? pv[i - bpp] : 0, pred = 0;
                            if (filter == 1) pred = l;
                            if (filter == 2) pred = u;
                            if (filter == 3) pred = (l + u) / 2;
                            if (filter == 4) pred = paeth_ref(l, u, ul);
                            ASSERT_EQ_U64(want[i], (uint8_t)(src[i] + pred));
                        }
                    }
                }
            free(src);
            free(prev);
            free(a);
            free(want);
        }
}

/* The row reader gives the rows of the whole-image decoder, reusing its buffers across files
 * of different sizes, and declines what it does not take. */
TEST(png_rows_reader) {
    static const int      CTYPE[4] = {0, 2, 4, 6}, CHANNELS[4] = {1, 3, 2, 4};
    static const uint32_t DIMS[][2] = {{1, 1}, {40, 3}, {9, 1}, {13, 5}, {101, 11}, {2, 64}};
    struct iseg__png_rows r         = {0};
    uint64_t              seed      = 7;
    for (int t = 0; t < 4; t++)
        for (size_t d = 0; d < sizeof(DIMS) / sizeof(DIMS[0]); d++)
            for (int shift = 0; shift < 5; shift++) {
                uint32_t w = DIMS[d][0], h = DIMS[d][1];
                size_t   bpp = (size_t)CHANNELS[t], rowbytes = w * bpp;
                uint8_t *px  = malloc(rowbytes * h);
                ASSERT(px);
                for (uint32_t y = 0; y < h; y++)
                    shaped_row(px + y * rowbytes, rowbytes, bpp, (int)((y + d) % 2), &seed);
                size_t   scan_n, n;
                uint8_t *scan = filter_rows(px, h, rowbytes, bpp, shift, &scan_n);
                uint8_t *png  = build_png_split(w, h, 8, CTYPE[t], scan, scan_n,
                                                1 + (size_t)shift % 3, shift == 4, &n);
                ASSERT(iseg__png_rows_open(&r, png, n));
                ASSERT_EQ_U64(r.w, w);
                ASSERT_EQ_U64(r.h, h);
                ASSERT_EQ_U64(r.c, (uint64_t)CHANNELS[t]);
                for (uint32_t y = 0; y < h; y++)
                    ASSERT(memcmp(iseg__png_rows_next(&r), px + y * rowbytes, rowbytes) == 0);
                /* a filter type above 4 anywhere: declined before any row is read */
                scan[(size_t)(h - 1) * (rowbytes + 1)] = 5;
                free(png);
                png = build_png_split(w, h, 8, CTYPE[t], scan, scan_n, 1, false, &n);
                ASSERT(!iseg__png_rows_open(&r, png, n));
                free(png);
                free(scan);
                free(px);
            }
    /* 16-bit, corrupt and non-PNG input are left to the whole-image decoder */
    uint8_t  scan16[5] = {0, 1, 2, 3, 4}, scan8[4] = {0, 1, 2, 3};
    size_t   n;
    uint8_t *png = build_png_split(2, 1, 16, 0, scan16, 5, 1, false, &n);
    ASSERT(!iseg__png_rows_open(&r, png, n));
    free(png);
    png = build_png_split(3, 1, 8, 0, scan8, 4, 1, false, &n);
    ASSERT(iseg__png_rows_open(&r, png, n));
    png[n - 20] ^= 1; /* inside IDAT: the CRC no longer matches */
    ASSERT(!iseg__png_rows_open(&r, png, n));
    ASSERT(!iseg__png_rows_open(&r, png, 7));
    free(png);
    iseg__png_rows_free(&r);
    check_leaks();
}

TEST_LIST = {
    TEST_ENTRY(image_alloc),
    TEST_ENTRY(png_roundtrip_gray8),
    TEST_ENTRY(png_roundtrip_gray_alpha8),
    TEST_ENTRY(png_roundtrip_rgb8),
    TEST_ENTRY(png_roundtrip_rgba8),
    TEST_ENTRY(png_roundtrip_gray16),
    TEST_ENTRY(png_roundtrip_gray_alpha16),
    TEST_ENTRY(png_roundtrip_rgb16),
    TEST_ENTRY(png_roundtrip_rgba16),
    TEST_ENTRY(png_roundtrip_1x1),
    TEST_ENTRY(png_16bit_file_is_big_endian),
    TEST_ENTRY(png_write_overwrites_existing),
    TEST_ENTRY(png_read_gray1_scaled),
    TEST_ENTRY(png_read_palette),
    TEST_ENTRY(png_read_trns_key_adds_alpha),
    TEST_ENTRY(png_read_interlaced),
    TEST_ENTRY(png_read_truncated),
    TEST_ENTRY(png_read_not_png),
    TEST_ENTRY(png_read_empty),
    TEST_ENTRY(png_read_missing),
    TEST_ENTRY(png_read_corrupt),
    TEST_ENTRY(png_read_limits),
    TEST_ENTRY(png_fast_all_types_and_filters),
    TEST_ENTRY(png_fast_written_files),
    TEST_ENTRY(png_fast_declines_unusual),
    TEST_ENTRY(png_fast_corrupt),
    TEST_ENTRY(png_fast_bad_streams),
    TEST_ENTRY(png_fast_limits),
    TEST_ENTRY(png_unfilter_simd_matches_scalar),
    TEST_ENTRY(png_rows_reader),
    TEST_ENTRY(png_write_unwritable),
    TEST_ENTRY(png_write_invalid_image),
    TEST_ENTRY(png_and_plot_oom),
    TEST_ENTRY(plot_palette),
    TEST_ENTRY(plot_basic),
    TEST_ENTRY(plot_deterministic),
    TEST_ENTRY(plot_clipping_and_bad_points),
    TEST_ENTRY(plot_other_ranges_and_long_text),
    TEST_ENTRY(plot_invalid_params),
    TEST_END,
};
