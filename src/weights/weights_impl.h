/* weights_impl.h - private interface between the weights loader (weights.c), its format readers
 * (safetensors.c, pth.c) and the restricted pickle machine (pickle.c). Never installed. */
#ifndef ISEG_WEIGHTS_IMPL_H
#define ISEG_WEIGHTS_IMPL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/core_impl.h"
#include "iseg/weights.h"

/* ---- test hooks (fuzz targets lower the limits so that tiny inputs cannot ask for GiBs) ---- */
struct iseg__weights_hooks {
    uint64_t max_bytes;      /* total tensor bytes (default ISEG_WEIGHTS_MAX_BYTES) */
    uint64_t max_pickle_mem; /* pickle machine memory (default 1 GiB) */
    bool     skip_crc;       /* do not verify zip CRC-32s (lets mutations reach the pickle) */
};
extern struct iseg__weights_hooks iseg__weights_hooks;

/* ---- errors: "<name>: <where>: <what>" into a caller buffer ---- */
struct iseg__werr {
    const char *name; /* file name for messages */
    char       *buf;
    size_t      len;
};
/* Formats the message (prefixed with "<name>: ") and returns st. */
enum iseg_status iseg__werr_set(struct iseg__werr *e, enum iseg_status st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* ---- the handle ---- */

/* Where a tensor's elements come from until iseg__weights_finish() copies them into the block:
 * element (i0, i1, ...) is at base + (offset + sum i_k * stride[k]) * dtype size, and every
 * element must lie in [base, base + nbytes). For .pth files base is filled in once the storage
 * `storage` has been located (after the pickle, for the legacy layout). */
struct iseg__wsrc {
    const uint8_t *base;
    uint64_t       nbytes;
    int64_t        offset;                       /* elements */
    int64_t        stride[ISEG_WEIGHT_MAX_DIMS]; /* elements */
    size_t         storage;                      /* index in the reader's storage table */
};

struct iseg_weights {
    struct iseg_weight *t;     /* (n) names and data owned here */
    struct iseg__wsrc  *src;   /* (n) until finish */
    size_t              n, cap;
    void               *block; /* all tensor data, 64-byte aligned per tensor */
    char              **meta;  /* (2 * n_meta) key, value, ... */
    size_t              n_meta;
    const char         *format;
    size_t             *index; /* open-addressing hash of names: slot -> i + 1 (0 = empty) */
    size_t              index_cap;
};

/* Append a tensor (data not yet copied). name is copied. src->stride and src->offset are
 * given; base/nbytes may be set later. ndim > ISEG_WEIGHT_MAX_DIMS is ELIMIT. */
enum iseg_status iseg__weights_add(struct iseg_weights *w, const char *name, size_t name_len,
                                   enum iseg_dtype dtype, int ndim, const int64_t *shape,
                                   const struct iseg__wsrc *src, struct iseg__werr *e);
/* Check every source against its storage, allocate the block, copy (materialising views),
 * build the name index (duplicate names are EFORMAT), free the sources. */
enum iseg_status iseg__weights_finish(struct iseg_weights *w, struct iseg__werr *e);

/* FNV-1a, for the name index and the readers' tables. */
uint64_t iseg__whash(const char *s, size_t n);

/* ---- format readers: fill w from a whole file in memory (tensors via iseg__weights_add, then
 * iseg__weights_finish before returning: buf and any decompressed data live only during the
 * call). ---- */
enum iseg_status iseg__safetensors_read(struct iseg_weights *w, const uint8_t *buf, size_t n,
                                        struct iseg__werr *e);
enum iseg_status iseg__pth_zip_read(struct iseg_weights *w, const uint8_t *buf, size_t n,
                                    struct iseg__werr *e);
enum iseg_status iseg__pth_legacy_read(struct iseg_weights *w, const uint8_t *buf, size_t n,
                                       struct iseg__werr *e);

/* ---- restricted pickle machine (pickle.c) ---- */

enum iseg__pk_type {
    ISEG__PK_NONE = 0,
    ISEG__PK_BOOL,
    ISEG__PK_INT,     /* fits int64 */
    ISEG__PK_BIGINT,  /* LONG1/LONG4 wider than 64 bits: raw little-endian bytes in s */
    ISEG__PK_FLOAT,
    ISEG__PK_STR,     /* unicode (UTF-8) or py2 str */
    ISEG__PK_BYTES,
    ISEG__PK_TUPLE,
    ISEG__PK_LIST,
    ISEG__PK_DICT,    /* items: key, value, key, value ... in insertion order */
    ISEG__PK_GLOBAL,  /* an allowed global; g says which */
    ISEG__PK_STORAGE, /* result of persistent_load */
    ISEG__PK_TENSOR,
    ISEG__PK_OBJECT,  /* an inert object (argparse.Namespace, torch.device, ...): never a tensor */
    ISEG__PK_MARK,    /* internal */
};

/* The allow-list. The *STORAGE entries give a dtype. */
enum iseg__pk_global {
    ISEG__G_ORDERED_DICT = 0,
    ISEG__G_REBUILD_TENSOR,
    ISEG__G_REBUILD_TENSOR_V2,
    ISEG__G_REBUILD_PARAMETER,
    ISEG__G_REBUILD_PARAMETER_STATE,
    ISEG__G_REBUILD_FROM_TYPE_V2,
    ISEG__G_TORCH_SIZE,
    ISEG__G_STORAGE_F32,
    ISEG__G_STORAGE_F64,
    ISEG__G_STORAGE_F16,
    ISEG__G_STORAGE_BF16,
    ISEG__G_STORAGE_I64,
    ISEG__G_STORAGE_I32,
    ISEG__G_STORAGE_I16,
    ISEG__G_STORAGE_I8,
    ISEG__G_STORAGE_U8,
    ISEG__G_STORAGE_BOOL,
    ISEG__G_INERT, /* classes and functions whose result is an opaque non-tensor value */
    ISEG__G_COUNT
};

struct iseg__pkv;
struct iseg__pk_tensor {
    struct iseg__pkv *storage; /* ISEG__PK_STORAGE */
    int64_t           offset;  /* elements */
    int               ndim;
    int64_t           shape[ISEG_WEIGHT_MAX_DIMS];
    int64_t           stride[ISEG_WEIGHT_MAX_DIMS];
};

struct iseg__pkv {
    enum iseg__pk_type type;
    union {
        bool    b;
        int64_t i;
        double  f;
        struct {
            const char *p;
            size_t      n;
        } s;                     /* STR, BYTES, BIGINT */
        struct {
            struct iseg__pkv **v;
            size_t             n, cap; /* DICT: n counts slots (2 per item) */
        } seq;
        enum iseg__pk_global g;
        struct {
            size_t          index; /* reader's storage table */
            enum iseg_dtype dtype;
            int64_t         offset; /* elements (legacy storage views) */
        } st;
        struct iseg__pk_tensor *t;
    } u;
};

/* persistent_load: turn a persistent id into a value (normally ISEG__PK_STORAGE); NULL with
 * the error set in e on failure. */
typedef struct iseg__pkv *(*iseg__pk_persload_fn)(void *user, struct iseg__pkv *pid,
                                                  struct iseg__werr *e, enum iseg_status *st);

struct iseg__pk; /* machine: arena (shared by consecutive pickles), stack, memo */
enum iseg_status iseg__pk_init(struct iseg__pk **pk, iseg__pk_persload_fn fn, void *user);
void             iseg__pk_free(struct iseg__pk *pk);
/* Run one pickle from buf[*pos] to its STOP; *pos moves past it. Values may point into buf,
 * which must outlive them. where names the pickle in messages ("archive/data.pkl"). */
enum iseg_status iseg__pk_load(struct iseg__pk *pk, const uint8_t *buf, size_t n, size_t *pos,
                               const char *where, struct iseg__pkv **out, struct iseg__werr *e);
/* Allocate a value in the machine's arena (for persistent_load); NULL on ENOMEM/limit. */
struct iseg__pkv *iseg__pk_new(struct iseg__pk *pk, enum iseg__pk_type type);
/* dtype of a *Storage global; false for other globals. */
bool iseg__pk_storage_dtype(enum iseg__pk_global g, enum iseg_dtype *dtype);

/* Walk the unpickled object: every tensor reached through dicts (str/int keys), lists and
 * tuples is added to w with its dotted name; src.storage = the storage's table index.
 * Non-tensor leaves are skipped. The root must be a dict. */
enum iseg_status iseg__pk_flatten(struct iseg_weights *w, const struct iseg__pkv *root,
                                  struct iseg__werr *e);

#endif /* ISEG_WEIGHTS_IMPL_H */
