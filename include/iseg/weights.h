/*
 * weights.h - named tensors from safetensors files and PyTorch checkpoints (.pth), read in C.
 *
 *   iseg_weights_t w;
 *   char err[512];
 *   if (iseg_weights_load(&w, "maskrcnn_resnet50_fpn_coco-bf2d0c1e.pth", err, sizeof(err))) {
 *       fprintf(stderr, "%s\n", err);   // e.g. "x.pth: archive/data/17: storage truncated (...)"
 *       return 1;
 *   }
 *   const struct iseg_weight *t = iseg_weights_find(w, "backbone.body.conv1.weight");
 *   // t->dtype == ISEG_DTYPE_F32, t->ndim == 4, t->shape = {64, 3, 7, 7}, t->data contiguous
 *   iseg_weights_save_safetensors("out.safetensors", iseg_weights_at(w, 0),
 *                                 iseg_weights_count(w), NULL, err, sizeof(err));
 *   iseg_weights_free(w);
 *
 * Formats (recognised by content, not by file name):
 * - safetensors: u64 little-endian header size, a JSON header {"name": {"dtype", "shape",
 *   "data_offsets": [begin, end]}, "__metadata__": {string: string}}, then the raw data.
 * - PyTorch zip checkpoints (torch.save since 1.6): a zip of <dir>/data.pkl (a pickle whose
 *   persistent ids name storages) and <dir>/data/<key> (raw little-endian storages). Stored and
 *   deflated entries are read.
 * - PyTorch legacy checkpoints (torch.save before 1.6, or _use_new_zipfile_serialization=False):
 *   magic, protocol and sys-info pickles, the object pickle, the storage key list, then each
 *   storage as an int64 element count followed by its data.
 * The pickle reader is a restricted machine: it knows the opcodes of protocols 0-5 that
 * torch.save emits and only the globals that rebuild tensors and containers
 * (torch._utils._rebuild_tensor_v2, collections.OrderedDict, torch.*Storage, ...); anything else
 * is an EFORMAT error naming the global. Nested dictionaries (e.g. {"model": state_dict,
 * "optimizer": ...}) are flattened with dotted names ("model.backbone..."), integer keys and
 * list/tuple positions spelled in decimal ("optimizer.state.0.exp_avg", "anchors.1"); values
 * that are not tensors (numbers, strings, None, argparse.Namespace, ...) are skipped. Views
 * (offsets, strides, including stride 0) are materialised as contiguous copies. Tensor order is
 * the file's: dict insertion order for checkpoints, header order for safetensors.
 *
 * Files are hostile: every size, offset, shape and stride is checked against the file and against
 * ISEG_WEIGHTS_MAX_BYTES; errors are EFORMAT (corrupt), ELIMIT (over a limit), EIO, ENOMEM, and
 * err receives "<path>: <where>: <what>".
 *
 * Ownership: the weights handle owns every name and data buffer; pointers stay valid until
 * iseg_weights_free(). Thread-safety: a loaded handle is read-only and may be shared.
 */
#ifndef ISEG_WEIGHTS_H
#define ISEG_WEIGHTS_H

#include <stddef.h>
#include <stdint.h>

#include "iseg.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Largest total tensor data accepted (16 GiB). */
#define ISEG_WEIGHTS_MAX_BYTES ((uint64_t)1 << 34)
#define ISEG_WEIGHT_MAX_DIMS 8

enum iseg_dtype {
    ISEG_DTYPE_F32 = 0,
    ISEG_DTYPE_F64,
    ISEG_DTYPE_F16,
    ISEG_DTYPE_BF16,
    ISEG_DTYPE_I64,
    ISEG_DTYPE_I32,
    ISEG_DTYPE_I16,
    ISEG_DTYPE_I8,
    ISEG_DTYPE_U8,
    ISEG_DTYPE_BOOL,
    ISEG_DTYPE_COUNT
};

/* "F32", "F64", "F16", "BF16", "I64", ... (safetensors spelling); "?" when out of range. */
const char *iseg_dtype_name(enum iseg_dtype t);
/* Bytes per element (0 when out of range). */
size_t iseg_dtype_size(enum iseg_dtype t);

struct iseg_weight {
    const char     *name;                        /* e.g. "backbone.body.conv1.weight" */
    enum iseg_dtype dtype;
    int             ndim;                        /* 0 (scalar) .. ISEG_WEIGHT_MAX_DIMS */
    int64_t         shape[ISEG_WEIGHT_MAX_DIMS];
    const void     *data;                        /* contiguous row-major, little-endian,
                                                    64-byte aligned */
    size_t          nbytes;                      /* numel * dtype size */
};

typedef struct iseg_weights *iseg_weights_t;

/* Load a safetensors file or a PyTorch checkpoint. On error *w is NULL. */
enum iseg_status iseg_weights_load(iseg_weights_t *w, const char *path, char *err,
                                   size_t errlen);
/* As iseg_weights_load() from memory (copied as needed; buf may be freed afterwards); name is
 * used in messages (NULL: "<memory>"). */
enum iseg_status iseg_weights_load_mem(iseg_weights_t *w, const void *buf, size_t n,
                                       const char *name, char *err, size_t errlen);
void iseg_weights_free(iseg_weights_t w);

/* Tensors in file order; iseg_weights_at(w, 0) is the start of an array of all of them
 * (NULL when i >= count). iseg_weights_count(NULL) is 0. */
size_t iseg_weights_count(const iseg_weights_t w);
const struct iseg_weight *iseg_weights_at(const iseg_weights_t w, size_t i);
/* Tensor by exact name, or NULL. */
const struct iseg_weight *iseg_weights_find(const iseg_weights_t w, const char *name);
/* Value of a safetensors "__metadata__" key, or NULL (always NULL for .pth files). */
const char *iseg_weights_metadata(const iseg_weights_t w, const char *key);
/* Number of metadata entries, and entry i in file order: its key (returned) and value (*value,
 * when value is not NULL); NULL when i is out of range. */
size_t      iseg_weights_metadata_count(const iseg_weights_t w);
const char *iseg_weights_metadata_at(const iseg_weights_t w, size_t i, const char **value);
/* "safetensors", "pth-zip" or "pth-legacy". */
const char *iseg_weights_format(const iseg_weights_t w);

/* Convert the elements of a floating tensor (F32, F64, F16, BF16) to f32 into out (numel floats).
 * EINVAL for integer and bool tensors. */
enum iseg_status iseg_weight_to_f32(float *out, const struct iseg_weight *t);
/* Number of elements (1 for a scalar). */
size_t iseg_weight_numel(const struct iseg_weight *t);

/* Write n tensors as a safetensors file, atomically (temp file + rename; no partial file on
 * error). metadata: NULL or a NULL-terminated array of key, value, key, value, ..., NULL strings
 * stored in "__metadata__". Names must be unique (EINVAL otherwise). */
enum iseg_status iseg_weights_save_safetensors(const char *path, const struct iseg_weight *t,
                                               size_t n, const char *const *metadata,
                                               char *err, size_t errlen);

#ifdef __cplusplus
}
#endif

#endif /* ISEG_WEIGHTS_H */
