/* weights.c - the weights handle: format detection, the tensor table, materialising views into
 * one block, lookup by name, and dtype helpers. The readers live in safetensors.c and pth.c. */
#define _GNU_SOURCE /* MAP_POPULATE */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "weights/weights_impl.h"

struct iseg__weights_hooks iseg__weights_hooks = {
    .max_bytes      = ISEG_WEIGHTS_MAX_BYTES,
    .max_pickle_mem = (uint64_t)1 << 30,
    .skip_crc       = false,
};

#define BLOCK_ALIGN 64

static const char *const DTYPE_NAMES[] = {"F32", "F64", "F16", "BF16", "I64",
                                          "I32", "I16", "I8",  "U8",   "BOOL"};
static const size_t      DTYPE_SIZES[] = {4, 8, 2, 2, 8, 4, 2, 1, 1, 1};
_Static_assert(ISEG_DTYPE_COUNT == sizeof(DTYPE_NAMES) / sizeof(DTYPE_NAMES[0]),
               "one name per dtype");
_Static_assert(ISEG_DTYPE_COUNT == sizeof(DTYPE_SIZES) / sizeof(DTYPE_SIZES[0]),
               "one size per dtype");

const char *iseg_dtype_name(enum iseg_dtype t) {
    return (unsigned)t < ISEG_DTYPE_COUNT ? DTYPE_NAMES[t] : "?";
}

size_t iseg_dtype_size(enum iseg_dtype t) {
    return (unsigned)t < ISEG_DTYPE_COUNT ? DTYPE_SIZES[t] : 0;
}

enum iseg_status iseg__werr_set(struct iseg__werr *e, enum iseg_status st, const char *fmt, ...) {
    if (!e->buf || e->len == 0) return st;
    int k = snprintf(e->buf, e->len, "%s: ", e->name);
    if (k < 0) k = 0;
    if ((size_t)k < e->len) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(e->buf + k, e->len - (size_t)k, fmt, ap);
        va_end(ap);
    }
    return st;
}

uint64_t iseg__whash(const char *s, size_t n) {
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) h = (h ^ (uint8_t)s[i]) * 1099511628211ull;
    return h;
}

size_t iseg_weight_numel(const struct iseg_weight *t) {
    size_t n = 1;
    for (int k = 0; k < t->ndim; k++) n *= (size_t)t->shape[k];
    return n;
}

/* ---- the tensor table ---- */

enum iseg_status iseg__weights_add(struct iseg_weights *w, const char *name, size_t name_len,
                                   enum iseg_dtype dtype, int ndim, const int64_t *shape,
                                   const struct iseg__wsrc *src, struct iseg__werr *e) {
    if (ndim < 0 || ndim > ISEG_WEIGHT_MAX_DIMS)
        return iseg__werr_set(e, ISEG_STATUS_ELIMIT, "tensor '%.*s': %d dimensions (at most %d)",
                              (int)(name_len > 200 ? 200 : name_len), name, ndim,
                              ISEG_WEIGHT_MAX_DIMS);
    if (memchr(name, 0, name_len))
        return iseg__werr_set(e, ISEG_STATUS_EFORMAT, "tensor name contains a NUL byte");
    if (w->n == w->cap) {
        size_t cap = w->cap ? w->cap * 2 : 64;
        struct iseg_weight *t = iseg__realloc_array(w->t, cap, sizeof(*t));
        if (!t) goto oom;
        w->t = t;
        struct iseg__wsrc *s = iseg__realloc_array(w->src, cap, sizeof(*s));
        if (!s) goto oom;
        w->src = s;
        w->cap = cap;
    }
    char *nm = iseg__malloc(name_len + 1);
    if (!nm) goto oom;
    memcpy(nm, name, name_len);
    nm[name_len] = 0;
    struct iseg_weight *t = &w->t[w->n];
    memset(t, 0, sizeof(*t));
    t->name  = nm;
    t->dtype = dtype;
    t->ndim  = ndim;
    for (int k = 0; k < ndim; k++) t->shape[k] = shape[k];
    w->src[w->n] = *src;
    w->n++;
    return ISEG_STATUS_OK;
oom:
    return iseg__werr_set(e, ISEG_STATUS_ENOMEM, "out of memory");
}

/* Elements of the tensor and the largest element index it touches (relative to base);
 * false when a size or stride is negative or the arithmetic overflows. *span = 0 for an empty
 * tensor, else max index + 1. */
static bool tensor_extent(const struct iseg_weight *t, const struct iseg__wsrc *s,
                          uint64_t *numel, uint64_t *span) {
    uint64_t n = 1, hi = 0;
    bool     empty = false;
    if (s->offset < 0) return false;
    for (int k = 0; k < t->ndim; k++) {
        if (t->shape[k] < 0 || s->stride[k] < 0) return false;
        if (t->shape[k] == 0) empty = true;
        if (__builtin_mul_overflow(n, (uint64_t)t->shape[k], &n)) return false;
    }
    if (empty) {
        *numel = 0;
        *span  = 0;
        return true;
    }
    for (int k = 0; k < t->ndim; k++) {
        uint64_t d;
        if (__builtin_mul_overflow((uint64_t)(t->shape[k] - 1), (uint64_t)s->stride[k], &d) ||
            __builtin_add_overflow(hi, d, &hi))
            return false;
    }
    if (__builtin_add_overflow(hi, (uint64_t)s->offset, &hi) ||
        __builtin_add_overflow(hi, 1, &hi))
        return false;
    *numel = n;
    *span  = hi;
    return true;
}

/* Copy a strided view into a contiguous buffer: the innermost dimension runs as a loop (or a
 * memcpy when its stride is 1), the outer ones as an odometer. */
static void copy_strided(uint8_t *dst, const struct iseg_weight *t, const struct iseg__wsrc *s,
                         size_t es) {
    int nd = t->ndim;
    if (nd == 0) {
        memcpy(dst, s->base + (size_t)s->offset * es, es);
        return;
    }
    int64_t idx[ISEG_WEIGHT_MAX_DIMS] = {0};
    size_t  inner = (size_t)t->shape[nd - 1], istride = (size_t)s->stride[nd - 1];
    size_t  outer = 1;
    for (int k = 0; k < nd - 1; k++) outer *= (size_t)t->shape[k];
    for (size_t o = 0; o < outer; o++) {
        size_t off = (size_t)s->offset;
        for (int k = 0; k < nd - 1; k++) off += (size_t)idx[k] * (size_t)s->stride[k];
        const uint8_t *p = s->base + off * es;
        if (istride == 1) {
            memcpy(dst, p, inner * es);
            dst += inner * es;
        } else {
            for (size_t i = 0; i < inner; i++, dst += es) memcpy(dst, p + i * istride * es, es);
        }
        for (int k = nd - 2; k >= 0; k--) {
            if (++idx[k] < t->shape[k]) break;
            idx[k] = 0;
        }
    }
}

static bool is_contiguous(const struct iseg_weight *t, const struct iseg__wsrc *s) {
    int64_t want = 1;
    for (int k = t->ndim - 1; k >= 0; k--) {
        if (t->shape[k] != 1 && s->stride[k] != want) return false;
        want *= t->shape[k];
    }
    return true;
}

static enum iseg_status build_index(struct iseg_weights *w, struct iseg__werr *e) {
    size_t cap = 16;
    while (cap < w->n * 2) cap *= 2;
    w->index = iseg__calloc(cap, sizeof(size_t));
    if (!w->index) return iseg__werr_set(e, ISEG_STATUS_ENOMEM, "out of memory");
    w->index_cap = cap;
    for (size_t i = 0; i < w->n; i++) {
        const char *nm = w->t[i].name;
        size_t      ln = strlen(nm);
        size_t      h  = (size_t)iseg__whash(nm, ln) & (cap - 1);
        while (w->index[h]) {
            if (strcmp(w->t[w->index[h] - 1].name, nm) == 0)
                return iseg__werr_set(e, ISEG_STATUS_EFORMAT, "duplicate tensor name '%.200s'",
                                      nm);
            h = (h + 1) & (cap - 1);
        }
        w->index[h] = i + 1;
    }
    return ISEG_STATUS_OK;
}

enum iseg_status iseg__weights_finish(struct iseg_weights *w, struct iseg__werr *e) {
    enum iseg_status st = build_index(w, e);
    if (st) return st;
    uint64_t total = 0;
    for (size_t i = 0; i < w->n; i++) {
        struct iseg_weight      *t = &w->t[i];
        const struct iseg__wsrc *s = &w->src[i];
        size_t                   es = iseg_dtype_size(t->dtype);
        uint64_t                 numel, span, nbytes, end;
        if (!tensor_extent(t, s, &numel, &span) || __builtin_mul_overflow(numel, es, &nbytes))
            return iseg__werr_set(e, ISEG_STATUS_EFORMAT,
                                  "tensor '%.200s': invalid shape, stride or offset", t->name);
        if (numel && (__builtin_mul_overflow(span, es, &end) || end > s->nbytes || !s->base))
            return iseg__werr_set(e, ISEG_STATUS_EFORMAT,
                                  "tensor '%.200s': view of %llu bytes beyond its storage of "
                                  "%llu bytes", t->name, (unsigned long long)(numel ? span * es : 0),
                                  (unsigned long long)s->nbytes);
        if (nbytes > iseg__weights_hooks.max_bytes ||
            total + nbytes + BLOCK_ALIGN > iseg__weights_hooks.max_bytes)
            return iseg__werr_set(e, ISEG_STATUS_ELIMIT,
                                  "tensor '%.200s': total tensor data over %llu bytes", t->name,
                                  (unsigned long long)iseg__weights_hooks.max_bytes);
        t->nbytes = (size_t)nbytes;
        total += (nbytes + BLOCK_ALIGN - 1) / BLOCK_ALIGN * BLOCK_ALIGN;
    }
    if (total > SIZE_MAX - BLOCK_ALIGN)
        return iseg__werr_set(e, ISEG_STATUS_ELIMIT, "tensor data too large");
    uint8_t *raw = iseg__malloc((size_t)total + BLOCK_ALIGN);
    if (!raw) return iseg__werr_set(e, ISEG_STATUS_ENOMEM, "out of memory (%llu bytes of tensors)",
                                    (unsigned long long)total);
    w->block = raw;
    uint8_t *p = (uint8_t *)(((uintptr_t)raw + BLOCK_ALIGN - 1) & ~(uintptr_t)(BLOCK_ALIGN - 1));
    for (size_t i = 0; i < w->n; i++) {
        struct iseg_weight      *t  = &w->t[i];
        const struct iseg__wsrc *s  = &w->src[i];
        size_t                   es = iseg_dtype_size(t->dtype);
        t->data = p;
        if (t->nbytes) {
            if (is_contiguous(t, s)) memcpy(p, s->base + (size_t)s->offset * es, t->nbytes);
            else copy_strided(p, t, s, es);
        }
        p += (t->nbytes + BLOCK_ALIGN - 1) / BLOCK_ALIGN * BLOCK_ALIGN;
    }
    iseg__free(w->src);
    w->src = NULL;
    return ISEG_STATUS_OK;
}

/* ---- loading ---- */

static bool is_safetensors(const uint8_t *b, size_t n) {
    if (n < 10) return false;
    uint64_t h = 0;
    for (int k = 7; k >= 0; k--) h = h << 8 | b[k];
    size_t i = 8;
    while (i < n && i < 8 + 64 && (b[i] == ' ' || b[i] == '\n' || b[i] == '\t' || b[i] == '\r'))
        i++;
    return h >= 2 && i < n && b[i] == '{';
}

enum iseg_status iseg_weights_load_mem(iseg_weights_t *out, const void *buf, size_t n,
                                       const char *name, char *err, size_t errlen) {
    ISEG_ASSERT(out);
    ISEG_ASSERT(buf || n == 0);
    struct iseg__werr e = {name ? name : "<memory>", err, errlen};
    if (err && errlen) err[0] = 0;
    *out = NULL;
    struct iseg_weights *w = iseg__calloc(1, sizeof(*w));
    if (!w) return iseg__werr_set(&e, ISEG_STATUS_ENOMEM, "out of memory");
    const uint8_t   *b = buf;
    enum iseg_status st;
    /* safetensors before legacy pickles: a header size such as 640 starts with 80 02 like
     * a pickle, while a legacy checkpoint has a fixed magic byte (0xf9) where safetensors has
     * its '{' */
    if (n >= 4 && memcmp(b, "PK\x03\x04", 4) == 0) {
        w->format = "pth-zip";
        st        = iseg__pth_zip_read(w, b, n, &e);
    } else if (is_safetensors(b, n)) {
        w->format = "safetensors";
        st        = iseg__safetensors_read(w, b, n, &e);
    } else if (n >= 2 && b[0] == 0x80 && b[1] >= 2 && b[1] <= 5) {
        w->format = "pth-legacy";
        st        = iseg__pth_legacy_read(w, b, n, &e);
    } else if (n >= 262 && memcmp(b + 257, "ustar", 5) == 0) {
        st = iseg__werr_set(&e, ISEG_STATUS_EFORMAT,
                            "a tar checkpoint (torch < 0.4) is not supported; re-save it with a "
                            "newer torch");
    } else if (n >= 4 && memcmp(b, "PK\x05\x06", 4) == 0) {
        st = iseg__werr_set(&e, ISEG_STATUS_EFORMAT, "empty zip archive");
    } else {
        st = iseg__werr_set(&e, ISEG_STATUS_EFORMAT,
                            "not a safetensors file or a PyTorch checkpoint (%zu bytes)", n);
    }
    if (st != ISEG_STATUS_OK) {
        iseg_weights_free(w);
        return st;
    }
    *out = w;
    return ISEG_STATUS_OK;
}

enum iseg_status iseg_weights_load(iseg_weights_t *out, const char *path, char *err,
                                   size_t errlen) {
    ISEG_ASSERT(out && path);
    struct iseg__werr e = {path, err, errlen};
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return iseg__werr_set(&e, ISEG_STATUS_EIO, "cannot open: %s", strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        int errn = errno;
        close(fd);
        return iseg__werr_set(&e, ISEG_STATUS_EIO, "not a regular file%s%s",
                              errn ? ": " : "", errn ? strerror(errn) : "");
    }
    if ((uint64_t)sb.st_size > SIZE_MAX / 2) {
        close(fd);
        return iseg__werr_set(&e, ISEG_STATUS_ELIMIT, "file too large");
    }
    size_t n = (size_t)sb.st_size;
    if (n == 0) {
        close(fd);
        return iseg__werr_set(&e, ISEG_STATUS_EFORMAT, "empty file");
    }
    /* Tensors are copied out once, so a read-only mapping avoids a second full copy of the
     * file; MAP_POPULATE reads it in one go instead of one fault per page. */
    int flags = MAP_PRIVATE;
#ifdef MAP_POPULATE
    flags |= MAP_POPULATE;
#endif
    void *map = mmap(NULL, n, PROT_READ, flags, fd, 0);
    if (map == MAP_FAILED) {
        /* e.g. a file system without mmap: read it */
        uint8_t *buf = iseg__malloc(n);
        if (!buf) {
            close(fd);
            return iseg__werr_set(&e, ISEG_STATUS_ENOMEM, "out of memory (%zu bytes)", n);
        }
        size_t got = 0;
        while (got < n) {
            ssize_t k = read(fd, buf + got, n - got);
            if (k < 0 && errno == EINTR) continue;
            if (k <= 0) {
                int errn = errno;
                close(fd);
                iseg__free(buf);
                return iseg__werr_set(&e, ISEG_STATUS_EIO, "read failed: %s",
                                      k == 0 ? "unexpected end of file" : strerror(errn));
            }
            got += (size_t)k;
        }
        close(fd);
        enum iseg_status st = iseg_weights_load_mem(out, buf, n, path, err, errlen);
        iseg__free(buf);
        return st;
    }
    close(fd);
    enum iseg_status st = iseg_weights_load_mem(out, map, n, path, err, errlen);
    munmap(map, n);
    return st;
}

void iseg_weights_free(iseg_weights_t w) {
    if (!w) return;
    for (size_t i = 0; i < w->n; i++) iseg__free((void *)w->t[i].name);
    for (size_t i = 0; i < 2 * w->n_meta; i++) iseg__free(w->meta[i]);
    iseg__free(w->meta);
    iseg__free(w->t);
    iseg__free(w->src);
    iseg__free(w->block);
    iseg__free(w->index);
    iseg__free(w);
}

size_t iseg_weights_count(const iseg_weights_t w) { return w ? w->n : 0; }

const struct iseg_weight *iseg_weights_at(const iseg_weights_t w, size_t i) {
    ISEG_ASSERT(w);
    return i < w->n ? &w->t[i] : NULL;
}

const struct iseg_weight *iseg_weights_find(const iseg_weights_t w, const char *name) {
    ISEG_ASSERT(w && name);
    if (!w->index_cap) return NULL;
    size_t h = (size_t)iseg__whash(name, strlen(name)) & (w->index_cap - 1);
    while (w->index[h]) {
        const struct iseg_weight *t = &w->t[w->index[h] - 1];
        if (strcmp(t->name, name) == 0) return t;
        h = (h + 1) & (w->index_cap - 1);
    }
    return NULL;
}

size_t iseg_weights_metadata_count(const iseg_weights_t w) { return w ? w->n_meta : 0; }

const char *iseg_weights_metadata_at(const iseg_weights_t w, size_t i, const char **value) {
    if (!w || i >= w->n_meta) return NULL;
    if (value) *value = w->meta[2 * i + 1];
    return w->meta[2 * i];
}

const char *iseg_weights_metadata(const iseg_weights_t w, const char *key) {
    ISEG_ASSERT(w && key);
    for (size_t i = 0; i < w->n_meta; i++)
        if (strcmp(w->meta[2 * i], key) == 0) return w->meta[2 * i + 1];
    return NULL;
}

const char *iseg_weights_format(const iseg_weights_t w) {
    ISEG_ASSERT(w);
    return w->format;
}

/* ---- conversion ---- */

static float f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, e = (h >> 10) & 0x1f, m = h & 0x3ff, bits;
    if (e == 0x1f) {
        bits = sign | 0x7f800000u | (m << 13); /* inf, nan */
    } else if (e != 0) {
        bits = sign | ((e + 112) << 23) | (m << 13);
    } else if (m == 0) {
        bits = sign;
    } else { /* subnormal: normalise */
        int sh = 0;
        while (!(m & 0x400)) m <<= 1, sh++;
        bits = sign | ((uint32_t)(113 - sh) << 23) | ((m & 0x3ff) << 13);
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

enum iseg_status iseg_weight_to_f32(float *out, const struct iseg_weight *t) {
    ISEG_ASSERT(out && t);
    size_t         n = iseg_weight_numel(t);
    const uint8_t *p = t->data;
    switch (t->dtype) {
    case ISEG_DTYPE_F32: memcpy(out, p, n * 4); return ISEG_STATUS_OK;
    case ISEG_DTYPE_F64:
        for (size_t i = 0; i < n; i++) {
            double d;
            memcpy(&d, p + 8 * i, 8);
            out[i] = (float)d;
        }
        return ISEG_STATUS_OK;
    case ISEG_DTYPE_F16:
        for (size_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, p + 2 * i, 2);
            out[i] = f16_to_f32(h);
        }
        return ISEG_STATUS_OK;
    case ISEG_DTYPE_BF16:
        for (size_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, p + 2 * i, 2);
            uint32_t bits = (uint32_t)h << 16;
            memcpy(&out[i], &bits, 4);
        }
        return ISEG_STATUS_OK;
    default: return ISEG_STATUS_EINVAL;
    }
}
