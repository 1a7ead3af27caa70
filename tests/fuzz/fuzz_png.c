/* fuzz_png.c - libFuzzer target for the PNG reader (iseg_png_read_mem_limits).
 *
 *   cmake -S . -B build-fuzz -DCMAKE_C_COMPILER=clang -DISEG_BUILD_FUZZ=ON
 *   cmake --build build-fuzz --target fuzz_png
 *   build-fuzz/fuzz_png -max_total_time=240 /tmp/pngcorpus tests/fuzz/corpus/fuzz_png
 *
 * Hostile input must never crash, leak or read out of bounds. The limits are small so that a
 * 40-byte header cannot ask for gigabytes (which libFuzzer would report as an OOM). Every image
 * that decodes must also survive a write/read round trip unchanged: a cheap differential check
 * of the writer against the reader. Built with replay_main.c, the same entry point replays the
 * seed corpus and tests/crashers/fuzz_png/ as a regression test. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "iseg/image.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    struct iseg_image_limits lim = iseg_image_default_limits();
    lim.max_width                = 4096;
    lim.max_height               = 4096;
    lim.max_pixels               = (uint64_t)1 << 20; /* 8 MiB as 16-bit RGBA */
    lim.max_chunk_bytes          = (size_t)1 << 20;

    struct iseg_image img = {0};
    char              err[256];
    enum iseg_status  st = iseg_png_read_mem_limits(data, size, &lim, &img, err, sizeof(err));
    if (st != ISEG_STATUS_OK) {
        /* on failure the output is zeroed and the message is a terminated string */
        if (img.data || img.w || img.h || memchr(err, 0, sizeof(err)) == NULL) abort();
        return 0;
    }
    if (img.c < 1 || img.c > 4 || (img.depth != 8 && img.depth != 16) ||
        iseg_image_nbytes(&img) == 0)
        abort();

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
