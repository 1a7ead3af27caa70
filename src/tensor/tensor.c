/* tensor.c - dense f32 tensors: allocation, views, shape queries. */
#include <string.h>

#include "core/core_impl.h"
#include "iseg/tensor.h"

static void set_contiguous(struct iseg_tensor *t, int ndim, const int64_t *shape) {
    t->ndim = ndim;
    for (int i = 0; i < ISEG_TENSOR_MAX_DIMS; i++) t->shape[i] = i < ndim ? shape[i] : 1;
    int64_t s = 1;
    for (int i = ISEG_TENSOR_MAX_DIMS - 1; i >= 0; i--) {
        t->stride[i] = s;
        s *= t->shape[i];
    }
}

enum iseg_status iseg_tensor_init(struct iseg_tensor *t, int ndim, const int64_t *shape) {
    ISEG_ASSERT(t);
    memset(t, 0, sizeof(*t));
    if (ndim < 1 || ndim > ISEG_TENSOR_MAX_DIMS || !shape) return ISEG_STATUS_EINVAL;
    size_t n = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 1) return ISEG_STATUS_EINVAL;
        if ((uint64_t)shape[i] > SIZE_MAX || !iseg__mul_size_ok(n, (size_t)shape[i], &n))
            return ISEG_STATUS_ELIMIT;
    }
    /* strides are int64: keep the count representable there too */
    if (n > (size_t)INT64_MAX / sizeof(float)) return ISEG_STATUS_ELIMIT;
    float *d = iseg__calloc(n, sizeof(float));
    if (!d) return ISEG_STATUS_ENOMEM;
    set_contiguous(t, ndim, shape);
    t->data = d;
    t->owns = true;
    return ISEG_STATUS_OK;
}

struct iseg_tensor iseg_tensor_view(float *data, int ndim, const int64_t *shape) {
    struct iseg_tensor t;
    memset(&t, 0, sizeof(t));
    ISEG_ASSERT(ndim >= 1 && ndim <= ISEG_TENSOR_MAX_DIMS && shape);
    set_contiguous(&t, ndim, shape);
    t.data = data;
    t.owns = false;
    return t;
}

void iseg_tensor_free(struct iseg_tensor *t) {
    if (!t) return;
    if (t->owns) iseg__free(t->data);
    memset(t, 0, sizeof(*t));
}

size_t iseg_tensor_numel(const struct iseg_tensor *t) {
    if (t->ndim < 1) return 0;
    size_t n = 1;
    for (int i = 0; i < t->ndim; i++) n *= (size_t)t->shape[i];
    return n;
}

bool iseg_tensor_is_contiguous(const struct iseg_tensor *t) {
    int64_t s = 1;
    for (int i = t->ndim - 1; i >= 0; i--) {
        if (t->shape[i] != 1 && t->stride[i] != s) return false;
        s *= t->shape[i];
    }
    return true;
}
