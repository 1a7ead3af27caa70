/* fuzz_png.c - libFuzzer target for the PNG reader (iseg_png_read_mem_limits).
 *
 *   cmake -S . -B build-fuzz -DCMAKE_C_COMPILER=clang -DISEG_BUILD_FUZZ=ON
 *   cmake --build build-fuzz --target fuzz_png
 *   build-fuzz/fuzz_png -max_total_time=240 /tmp/pngcorpus tests/fuzz/corpus/fuzz_png
 *
 * Hostile input must never crash, leak or read out of bounds. The limits are small so that a
 * 40-byte header cannot ask for gigabytes (which libFuzzer would report as an OOM). Every input
 * is decoded twice, by the fast decoder (with libspng behind it) and by libspng alone
 * (iseg__png_force_slow): both must give the same status and message, and the same pixels.
 * Every image that decodes must also survive a write/read round trip unchanged: a cheap
 * differential check of the writer against the reader; and the row-by-row reader of the
 * panoptic evaluator (iseg__png_rows_*) must give the same rows whenever it takes the file.
 *
 * libspng itself is not instrumented, so coverage guidance sees only our code; to let random
 * mutations reach past the chunk checksums into the decoder, every chunk CRC is recomputed
 * before decoding (bad CRCs are covered by the unit tests). Built with replay_main.c, the same entry point replays the
 * seed corpus and tests/crashers/fuzz_png/ as a regression test. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_check.h"
#include "image/png_impl.h"
#include "iseg/image.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint32_t crc32_png(const uint8_t *p, size_t n) {
    uint32_t crc = 0xFFFFFFFFu;
    for (size_t i = 0; i < n; i++) {
        crc ^= p[i];
        for (int k = 0; k < 8; k++) crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1)));
    }
    return ~crc;
}

/* Rewrite the CRC of every complete chunk after the 8-byte signature. */
static void fix_crcs(uint8_t *d, size_t n) {
    size_t off = 8;
    while (off + 12 <= n) {
        uint32_t len = (uint32_t)d[off] << 24 | (uint32_t)d[off + 1] << 16 |
                       (uint32_t)d[off + 2] << 8 | d[off + 3];
        if (len > n - off - 12) break;
        uint32_t crc = crc32_png(d + off + 4, (size_t)len + 4);
        uint8_t *c   = d + off + 8 + len;
        c[0] = (uint8_t)(crc >> 24), c[1] = (uint8_t)(crc >> 16);
        c[2] = (uint8_t)(crc >> 8), c[3] = (uint8_t)crc;
        off += (size_t)len + 12;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    uint8_t *buf = malloc(size ? size : 1);
    if (!buf) return 0;
    if (size) memcpy(buf, data, size);
    fix_crcs(buf, size);
    struct iseg_image_limits lim = iseg_image_default_limits();
    lim.max_width                = 4096;
    lim.max_height               = 4096;
    lim.max_pixels               = (uint64_t)1 << 20; /* 8 MiB as 16-bit RGBA */
    lim.max_chunk_bytes          = (size_t)1 << 20;

    struct iseg_image img = {0}, slow = {0};
    char              err[256], err_slow[256];
    enum iseg_status  st = iseg_png_read_mem_limits(buf, size, &lim, &img, err, sizeof(err));
    iseg__png_force_slow = true;
    enum iseg_status st_slow =
        iseg_png_read_mem_limits(buf, size, &lim, &slow, err_slow, sizeof(err_slow));
    iseg__png_force_slow = false;
    free(buf);
    CHECK(st == st_slow);
    if (st == ISEG_STATUS_OK) {
        CHECK(img.w == slow.w && img.h == slow.h && img.c == slow.c && img.depth == slow.depth);
        CHECK(memcmp(img.data, slow.data, iseg_image_nbytes(&img)) == 0);
    } else {
        CHECK(strcmp(err, err_slow) == 0);
    }
    iseg_image_free(&slow);
    if (st != ISEG_STATUS_OK) {
        /* on failure the output is zeroed and the message is a terminated string */
        if (img.data || img.w || img.h || memchr(err, 0, sizeof(err)) == NULL) abort();
        return 0;
    }
    if (img.c < 1 || img.c > 4 || (img.depth != 8 && img.depth != 16) ||
        iseg_image_nbytes(&img) == 0)
        abort();

    /* the panoptic evaluator's row reader gives the same rows when it takes the file (only
     * images that decoded within the small limits above reach here, so it cannot allocate
     * much); it reads from the CRC-fixed copy as the decoders did */
    if (img.depth == 8) {
        uint8_t *again = malloc(size ? size : 1);
        if (!again) abort();
        if (size) memcpy(again, data, size);
        fix_crcs(again, size);
        struct iseg__png_rows rows = {0};
        if (iseg__png_rows_open(&rows, again, size)) {
            CHECK(rows.w == img.w && rows.h == img.h && rows.c == img.c);
            size_t rb = (size_t)img.w * img.c;
            for (uint32_t y = 0; y < img.h; y++) {
                const uint8_t *row = iseg__png_rows_next(&rows);
                CHECK(row && memcmp(row, (const uint8_t *)img.data + y * rb, rb) == 0);
            }
        }
        iseg__png_rows_free(&rows);
        free(again);
    }

    void  *png = NULL;
    size_t n   = 0;
    if (iseg_png_write_mem(&img, &png, &n, err, sizeof(err)) == ISEG_STATUS_OK) {
        struct iseg_image back = {0};
        if (iseg_png_read_mem(png, n, &back, err, sizeof(err)) != ISEG_STATUS_OK) abort();
        if (back.w != img.w || back.h != img.h || back.c != img.c || back.depth != img.depth ||
            memcmp(back.data, img.data, iseg_image_nbytes(&img)) != 0)
            abort();
        iseg_image_free(&back);
        iseg_free(png);
    }
    iseg_image_free(&img);
    return 0;
}
