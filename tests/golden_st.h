/* golden_st.h - golden tensors of the unit tests, read with the library's safetensors loader
 * (iseg/weights.h), converted to doubles.
 *
 *   struct st_file f;
 *   st_open(&f, "loss.safetensors");          // tests/golden/train/; skips the test if absent
 *   size_t n;
 *   double *x = st_get(&f, "bce.x", &n);       // F32, F64, I64 or U8; caller frees
 *   st_close(&f);
 */
#ifndef ISEG_TEST_GOLDEN_ST_H
#define ISEG_TEST_GOLDEN_ST_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "iseg/weights.h"
#include "test.h"

struct st_file {
    iseg_weights_t w;
};

static inline void st_open(struct st_file *f, const char *name) {
    char path[4096], err[512];
    snprintf(path, sizeof(path), "%s/tests/golden/train/%s", test_source_dir(), name);
    FILE *fp = fopen(path, "rb");
    if (!fp) TEST_SKIP("%s is absent (run tools/make_train_goldens.py)", path);
    fclose(fp);
    ASSERT_MSG(iseg_weights_load(&f->w, path, err, sizeof(err)) == ISEG_STATUS_OK, "%s", err);
}

static inline void st_close(struct st_file *f) {
    iseg_weights_free(f->w);
    f->w = NULL;
}

/* Tensor `name` converted to doubles (caller frees); *n receives its element count. Fails the
 * test when the tensor is missing or not F32, F64, I64 or U8. */
static inline double *st_get(const struct st_file *f, const char *name, size_t *n) {
    const struct iseg_weight *t = iseg_weights_find(f->w, name);
    ASSERT_MSG(t, "golden tensor %s missing", name);
    size_t cnt = iseg_weight_numel(t);
    double *v = malloc((cnt + 1) * sizeof(double));
    ASSERT(v);
    const char *src = t->data;
    for (size_t i = 0; i < cnt; i++) {
        if (t->dtype == ISEG_DTYPE_F32) {
            float x;
            memcpy(&x, src + 4 * i, 4);
            v[i] = x;
        } else if (t->dtype == ISEG_DTYPE_F64) {
            memcpy(&v[i], src + 8 * i, 8);
        } else if (t->dtype == ISEG_DTYPE_U8) {
            v[i] = (unsigned char)src[i];
        } else {
            ASSERT_MSG(t->dtype == ISEG_DTYPE_I64, "golden tensor %s: dtype %s", name,
                       iseg_dtype_name(t->dtype));
            int64_t x;
            memcpy(&x, src + 8 * i, 8);
            v[i] = (double)x;
        }
    }
    *n = cnt;
    return v;
}

#endif /* ISEG_TEST_GOLDEN_ST_H */
