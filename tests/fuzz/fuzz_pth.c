/* fuzz_pth.c - libFuzzer target for the PyTorch checkpoint readers (zip and legacy layouts)
 * and the restricted pickle machine behind them.
 *
 *   CC=clang cmake -S . -B build-wfuzz -DISEG_BUILD_FUZZ=ON -DISEG_BUILD_TESTS=OFF
 *   cmake --build build-wfuzz --target fuzz_pth
 *   build-wfuzz/fuzz_pth -max_total_time=300 /tmp/pthcorpus tests/fuzz/corpus/fuzz_pth
 *
 * Hostile input must never crash, leak, read out of bounds or run away: a failed load leaves
 * no handle and a "<name>: ..." message; a loaded one satisfies the handle's invariants.
 * Zip CRC-32 checks are switched off (iseg__weights_hooks.skip_crc) so that mutations reach
 * the pickle inside data.pkl; the legacy layout starts with a pickle, so it is fuzzed directly.
 * The byte and pickle-memory limits are lowered so small inputs cannot ask for gigabytes. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_check.h"
#include "iseg/weights.h"
#include "weights/weights_impl.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    iseg__weights_hooks.max_bytes      = (uint64_t)64 << 20;
    iseg__weights_hooks.max_pickle_mem = (uint64_t)64 << 20;
    iseg__weights_hooks.skip_crc       = true;
    iseg_weights_t   w = NULL;
    char             err[512];
    enum iseg_status st = iseg_weights_load_mem(&w, data, size, "f", err, sizeof(err));
    if (st != ISEG_STATUS_OK) {
        CHECK(w == NULL);
        CHECK(memchr(err, 0, sizeof(err)) != NULL && strncmp(err, "f: ", 3) == 0);
        return 0;
    }
    size_t n = iseg_weights_count(w);
    for (size_t i = 0; i < n; i++) {
        const struct iseg_weight *t = iseg_weights_at(w, i);
        CHECK(t && t->name && t->ndim >= 0 && t->ndim <= ISEG_WEIGHT_MAX_DIMS);
        CHECK(t->nbytes == iseg_weight_numel(t) * iseg_dtype_size(t->dtype));
        CHECK(iseg_weights_find(w, t->name) == t);
        volatile uint8_t acc = 0;
        for (size_t k = 0; k < t->nbytes; k++) acc ^= ((const uint8_t *)t->data)[k];
        (void)acc;
        if (t->dtype == ISEG_DTYPE_F32 || t->dtype == ISEG_DTYPE_F16) {
            float *f = malloc(iseg_weight_numel(t) * sizeof(float) + 1);
            CHECK(f && iseg_weight_to_f32(f, t) == ISEG_STATUS_OK);
            free(f);
        }
    }
    iseg_weights_free(w);
    return 0;
}
