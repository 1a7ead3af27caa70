/* fuzz_safetensors.c - libFuzzer target for the safetensors reader and writer.
 *
 *   CC=clang cmake -S . -B build-wfuzz -DISEG_BUILD_FUZZ=ON -DISEG_BUILD_TESTS=OFF
 *   cmake --build build-wfuzz --target fuzz_safetensors
 *   build-wfuzz/fuzz_safetensors -max_total_time=300 /tmp/stcorpus tests/fuzz/corpus/fuzz_safetensors
 *
 * Hostile input must never crash, leak or read out of bounds; a failed load leaves no handle
 * and a "<name>: ..." message. Every file that loads must satisfy the handle's invariants and
 * survive a write/read round trip unchanged (a differential check of the writer against the
 * reader). The byte limit is lowered so that small inputs cannot ask for gigabytes. Built with
 * replay_main.c, the same entry point replays the seed corpus and tests/crashers/. */
#define _POSIX_C_SOURCE 200809L
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fuzz_check.h"
#include "iseg/weights.h"
#include "weights/weights_impl.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_handle(iseg_weights_t w) {
    size_t n = iseg_weights_count(w);
    for (size_t i = 0; i < n; i++) {
        const struct iseg_weight *t = iseg_weights_at(w, i);
        CHECK(t && t->name && t->ndim >= 0 && t->ndim <= ISEG_WEIGHT_MAX_DIMS);
        CHECK(t->nbytes == iseg_weight_numel(t) * iseg_dtype_size(t->dtype));
        CHECK(iseg_weights_find(w, t->name) == t);
        CHECK(t->data != NULL);
        /* touch every byte (ASan checks the block) */
        volatile uint8_t acc = 0;
        for (size_t k = 0; k < t->nbytes; k++) acc ^= ((const uint8_t *)t->data)[k];
        (void)acc;
    }
    CHECK(iseg_weights_at(w, n) == NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    iseg__weights_hooks.max_bytes      = (uint64_t)64 << 20;
    iseg__weights_hooks.max_pickle_mem = (uint64_t)64 << 20;
    iseg_weights_t   w = NULL;
    char             err[512];
    enum iseg_status st = iseg_weights_load_mem(&w, data, size, "f", err, sizeof(err));
    if (st != ISEG_STATUS_OK) {
        CHECK(w == NULL);
        CHECK(memchr(err, 0, sizeof(err)) != NULL && strncmp(err, "f: ", 3) == 0);
        return 0;
    }
    check_handle(w);
    if (strcmp(iseg_weights_format(w), "safetensors") == 0) {
        char path[64];
        snprintf(path, sizeof(path), "/tmp/fuzz_safetensors.%ld.safetensors", (long)getpid());
        const char *meta[] = {"a", "b", NULL};
        CHECK(iseg_weights_save_safetensors(path, iseg_weights_at(w, 0), iseg_weights_count(w),
                                            meta, err, sizeof(err)) == ISEG_STATUS_OK);
        iseg_weights_t back = NULL;
        CHECK(iseg_weights_load(&back, path, err, sizeof(err)) == ISEG_STATUS_OK);
        remove(path);
        CHECK(iseg_weights_count(back) == iseg_weights_count(w));
        for (size_t i = 0; i < iseg_weights_count(w); i++) {
            const struct iseg_weight *a = iseg_weights_at(w, i), *b = iseg_weights_at(back, i);
            CHECK(strcmp(a->name, b->name) == 0 && a->dtype == b->dtype && a->ndim == b->ndim);
            CHECK(memcmp(a->shape, b->shape, sizeof(a->shape[0]) * (size_t)a->ndim) == 0);
            CHECK(a->nbytes == b->nbytes && memcmp(a->data, b->data, a->nbytes) == 0);
        }
        CHECK(iseg_weights_metadata(back, "a") && strcmp(iseg_weights_metadata(back, "a"), "b") == 0);
        iseg_weights_free(back);
    }
    iseg_weights_free(w);
    return 0;
}
