/* fuzz_jpeg.c - libFuzzer target for the JPEG reader (iseg_jpeg_read_mem_limits), the sniffing
 * reader (iseg_image_read_mem_limits) and iseg_image_to_rgb8.
 *
 *   CC=clang cmake -S . -B build-fuzz -DISEG_BUILD_FUZZ=ON -DISEG_BUILD_TESTS=OFF
 *   cmake --build build-fuzz --target fuzz_jpeg
 *   build-fuzz/fuzz_jpeg -max_total_time=240 /tmp/jpegcorpus tests/fuzz/corpus/fuzz_jpeg
 *
 * Hostile input must never crash, leak, print, hang or read out of bounds, and libjpeg must
 * never get to exit(). The limits are small so that a short header cannot ask for gigabytes
 * (libFuzzer would report that as an OOM). Checked: a failure leaves the image zeroed with a
 * terminated message naming "<memory>"; a success is 8-bit gray or RGB of the right size;
 * decoding is deterministic (a second decode gives the same status, message and pixels); the
 * sniffing reader agrees with the JPEG reader on data that starts like a JPEG; conversion to
 * RGB keeps every gray sample. libjpeg is not instrumented, so coverage guidance sees only our
 * code. Built with replay_main.c, the same entry point replays the seed corpus and
 * tests/crashers/fuzz_jpeg/ as a regression test. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_check.h"
#include "iseg/image.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    struct iseg_image_limits lim = iseg_image_default_limits();
    lim.max_width                = 2048;
    lim.max_height               = 2048;
    lim.max_pixels               = (uint64_t)1 << 18;

    struct iseg_image img = {0}, again = {0};
    char              err[256], err2[256];
    memset(err, 0x55, sizeof(err));
    enum iseg_status st = iseg_jpeg_read_mem_limits(data, size, &lim, &img, err, sizeof(err));
    CHECK(st == ISEG_STATUS_OK || st == ISEG_STATUS_EFORMAT || st == ISEG_STATUS_ELIMIT);
    if (st != ISEG_STATUS_OK) {
        CHECK(!img.data && !img.w && !img.h && !img.c && !img.depth);
        CHECK(memchr(err, 0, sizeof(err)) != NULL);
        CHECK(strncmp(err, "<memory>: ", 10) == 0);
    } else {
        CHECK(img.data && img.depth == 8 && (img.c == 1 || img.c == 3));
        CHECK(img.w >= 1 && img.h >= 1 && img.w <= lim.max_width && img.h <= lim.max_height &&
              (uint64_t)img.w * img.h <= lim.max_pixels);
    }

    /* deterministic, and the sniffing reader takes the same path for FF D8 FF */
    enum iseg_status st2 = size >= 3 && data[0] == 0xFF && data[1] == 0xD8 && data[2] == 0xFF
                               ? iseg_image_read_mem_limits(data, size, &lim, &again, err2,
                                                            sizeof(err2))
                               : iseg_jpeg_read_mem_limits(data, size, &lim, &again, err2,
                                                           sizeof(err2));
    CHECK(st2 == st);
    if (st == ISEG_STATUS_OK) {
        CHECK(again.w == img.w && again.h == img.h && again.c == img.c);
        CHECK(memcmp(again.data, img.data, iseg_image_nbytes(&img)) == 0);
    } else {
        CHECK(strcmp(err, err2) == 0);
    }
    iseg_image_free(&again);

    if (st == ISEG_STATUS_OK) {
        struct iseg_image rgb = {0};
        CHECK(iseg_image_to_rgb8(&rgb, &img) == ISEG_STATUS_OK);
        CHECK(rgb.w == img.w && rgb.h == img.h && rgb.c == 3 && rgb.depth == 8);
        if (img.c == 1) {
            const uint8_t *g = img.data, *p = rgb.data;
            size_t         n = (size_t)img.w * img.h;
            for (size_t i = 0; i < n; i++) CHECK(p[3 * i] == g[i] && p[3 * i + 2] == g[i]);
        } else {
            CHECK(memcmp(rgb.data, img.data, iseg_image_nbytes(&img)) == 0);
        }
        iseg_image_free(&rgb);
    }
    iseg_image_free(&img);
    return 0;
}
