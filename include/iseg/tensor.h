/*
 * tensor.h - dense f32 tensors and the activation arena of the inference engine.
 *
 *   struct iseg_tensor t;
 *   int64_t shape[4] = {1, 3, 224, 224};                  // (B, C, H, W)
 *   if (iseg_tensor_init(&t, 4, shape) != ISEG_STATUS_OK) return;
 *   t.data[iseg_tensor_offset4(&t, 0, 2, 10, 20)] = 1.0f; // b=0, c=2, y=10, x=20
 *   iseg_tensor_free(&t);
 *
 *   iseg_arena_t a;
 *   iseg_arena_init(&a);
 *   for (each image) {
 *       float *x = iseg_arena_alloc_f32(a, n);             // 64-byte aligned, NULL on ENOMEM
 *       ...
 *       iseg_arena_reset(a);                               // rewind; keeps one block of the peak size
 *   }
 *   iseg_arena_free(a);
 *
 * Layout: row-major with strides in elements; the engine's ops take contiguous NCHW buffers
 * (stride of the last dimension 1). A tensor made by iseg_tensor_init() owns its data; one made by
 * iseg_tensor_view() borrows it.
 *
 * Thread-safety: tensors are plain data; an arena is used from one thread at a time.
 */
#ifndef ISEG_TENSOR_H
#define ISEG_TENSOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "iseg.h"

#ifdef __cplusplus
extern "C" {
#endif

#define ISEG_TENSOR_MAX_DIMS 4

struct iseg_tensor {
    float  *data;                         /* first element */
    int     ndim;                         /* 1..ISEG_TENSOR_MAX_DIMS */
    int64_t shape[ISEG_TENSOR_MAX_DIMS];  /* sizes; unused trailing entries are 1 */
    int64_t stride[ISEG_TENSOR_MAX_DIMS]; /* in elements */
    bool    owns;                         /* data was allocated by iseg_tensor_init() */
};

/* Allocate a zeroed contiguous tensor of ndim (1..4) dimensions, each >= 1.
 * EINVAL for a bad ndim or a dimension < 1; ELIMIT if the element count overflows; ENOMEM.
 * On error *t is zeroed. Release with iseg_tensor_free(). */
enum iseg_status iseg_tensor_init(struct iseg_tensor *t, int ndim, const int64_t *shape);

/* A contiguous view of data (not owned, not copied). */
struct iseg_tensor iseg_tensor_view(float *data, int ndim, const int64_t *shape);

/* Free owned data and zero *t; a view or a zeroed tensor is fine. */
void iseg_tensor_free(struct iseg_tensor *t);

/* Number of elements. */
size_t iseg_tensor_numel(const struct iseg_tensor *t);

/* True when the elements are laid out contiguously in row-major order. */
bool iseg_tensor_is_contiguous(const struct iseg_tensor *t);

/* Element offset of (i0, i1, i2, i3) in a 4-d tensor. */
static inline size_t iseg_tensor_offset4(const struct iseg_tensor *t, int64_t i0, int64_t i1,
                                         int64_t i2, int64_t i3) {
    return (size_t)(i0 * t->stride[0] + i1 * t->stride[1] + i2 * t->stride[2] +
                    i3 * t->stride[3]);
}

/* Activation arena: a bump allocator. Allocations live until iseg_arena_reset(), which rewinds
 * it; if the last pass needed more than one block, reset replaces them with a single block of the
 * peak size, so after the first (warm-up) pass of a given input size no further system allocation
 * happens. */
typedef struct iseg_arena *iseg_arena_t;

/* Create an empty arena; ENOMEM. */
enum iseg_status iseg_arena_init(iseg_arena_t *a);
/* Reserve at least nbytes up front (optional: allocation grows on demand). */
enum iseg_status iseg_arena_reserve(iseg_arena_t a, size_t nbytes);
/* nbytes of 64-byte-aligned, uninitialised memory; NULL on ENOMEM or overflow. */
void *iseg_arena_alloc(iseg_arena_t a, size_t nbytes);
/* n floats (64-byte aligned, uninitialised); NULL on ENOMEM or overflow. */
float *iseg_arena_alloc_f32(iseg_arena_t a, size_t n);
/* Bytes in use now, and the most in use since iseg_arena_init(). */
size_t iseg_arena_used(iseg_arena_t a);
size_t iseg_arena_peak(iseg_arena_t a);
/* Stack discipline inside a pass: iseg_arena_release(a, m) frees everything allocated since
 * m = iseg_arena_mark(a) (those pointers become invalid; older ones stay valid), so temporaries
 * of a layer can be recycled. Marks must be released in reverse order of taking them. */
struct iseg_arena_mark {
    void  *block;      /* private */
    size_t block_used; /* private */
    size_t used;       /* iseg_arena_used() at the mark */
};
struct iseg_arena_mark iseg_arena_mark(iseg_arena_t a);
void iseg_arena_release(iseg_arena_t a, struct iseg_arena_mark m);
/* Rewind: every pointer handed out becomes invalid. */
void iseg_arena_reset(iseg_arena_t a);
/* Release every block and the arena; NULL is fine. */
void iseg_arena_free(iseg_arena_t a);

#ifdef __cplusplus
}
#endif

#endif /* ISEG_TENSOR_H */
