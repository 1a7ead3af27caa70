/* safetensors.c - safetensors reader and writer.
 *
 * Layout: u64 little-endian N, N bytes of JSON header (possibly padded with spaces), then the
 * data. The header is {"name": {"dtype": "F32", "shape": [..], "data_offsets": [b, e]}, ...,
 * "__metadata__": {"key": "value", ...}} with offsets relative to the data start.
 * ref: https://github.com/huggingface/safetensors (README "Format").
 *
 * The header is parsed by a small JSON reader that knows exactly this shape (objects two
 * levels deep, strings, arrays of non-negative integers): no recursion, no tree. Validation
 * follows the reference implementation: header size bounds, known dtypes, shape product x dtype
 * size == end - begin, offsets that tile the data region exactly, unique names. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "weights/weights_impl.h"

#define HEADER_MAX ((uint64_t)100 << 20) /* the reference reader's limit */
#define NAME_MAX_LEN 4096

/* ---- a JSON reader for the header ---- */

struct jp {
    const uint8_t     *p, *end, *start;
    struct iseg__werr *e;
    char              *str; /* last decoded string (NUL-terminated) */
    size_t             str_len, str_cap;
};

static enum iseg_status jfail(struct jp *j, const char *what) {
    return iseg__werr_set(j->e, ISEG_STATUS_EFORMAT, "header: offset %zu: %s",
                          (size_t)(j->p - j->start) + 8, what);
}

static void jws(struct jp *j) {
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r'))
        j->p++;
}

static bool jeat(struct jp *j, char c) {
    jws(j);
    if (j->p < j->end && *j->p == (uint8_t)c) {
        j->p++;
        return true;
    }
    return false;
}

static bool jput(struct jp *j, const void *s, size_t n) {
    if (j->str_len + n + 1 > j->str_cap) {
        size_t cap = j->str_cap ? j->str_cap : 64;
        while (cap < j->str_len + n + 1) cap *= 2;
        char *q = iseg__realloc(j->str, cap);
        if (!q) return false;
        j->str     = q;
        j->str_cap = cap;
    }
    memcpy(j->str + j->str_len, s, n);
    j->str_len += n;
    j->str[j->str_len] = 0;
    return true;
}

static int hex4(const uint8_t *p) {
    int v = 0;
    for (int k = 0; k < 4; k++) {
        int c = p[k], d;
        if (c >= '0' && c <= '9') d = c - '0';
        else if (c >= 'a' && c <= 'f') d = c - 'a' + 10;
        else if (c >= 'A' && c <= 'F') d = c - 'A' + 10;
        else return -1;
        v = v * 16 + d;
    }
    return v;
}

/* A string into j->str (UTF-8; escapes decoded). */
static enum iseg_status jstring(struct jp *j) {
    if (!jeat(j, '"')) return jfail(j, "expected a string");
    j->str_len = 0;
    if (!jput(j, "", 0)) goto oom;
    for (;;) {
        const uint8_t *s = j->p;
        while (j->p < j->end && *j->p != '"' && *j->p != '\\' && *j->p >= 0x20) j->p++;
        if (!jput(j, s, (size_t)(j->p - s))) goto oom;
        if (j->p >= j->end) return jfail(j, "unterminated string");
        if (*j->p == '"') {
            j->p++;
            break;
        }
        if (*j->p < 0x20) return jfail(j, "control character in a string");
        if (j->end - j->p < 2) return jfail(j, "unterminated string");
        uint8_t c = j->p[1], ch = 0;
        j->p += 2;
        switch (c) {
        case '"': ch = '"'; break;
        case '\\': ch = '\\'; break;
        case '/': ch = '/'; break;
        case 'b': ch = '\b'; break;
        case 'f': ch = '\f'; break;
        case 'n': ch = '\n'; break;
        case 'r': ch = '\r'; break;
        case 't': ch = '\t'; break;
        case 'u': {
            if (j->end - j->p < 4) return jfail(j, "bad \\u escape");
            int cp = hex4(j->p);
            if (cp < 0) return jfail(j, "bad \\u escape");
            j->p += 4;
            if (cp >= 0xd800 && cp < 0xdc00) { /* surrogate pair */
                if (j->end - j->p < 6 || j->p[0] != '\\' || j->p[1] != 'u')
                    return jfail(j, "unpaired surrogate");
                int lo = hex4(j->p + 2);
                if (lo < 0xdc00 || lo > 0xdfff) return jfail(j, "unpaired surrogate");
                j->p += 6;
                cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
            } else if (cp >= 0xdc00 && cp < 0xe000) {
                return jfail(j, "unpaired surrogate");
            }
            if (cp == 0) return jfail(j, "NUL character in a string");
            uint8_t u[4];
            size_t  k;
            if (cp < 0x80) u[0] = (uint8_t)cp, k = 1;
            else if (cp < 0x800) u[0] = (uint8_t)(0xc0 | cp >> 6), u[1] = (uint8_t)(0x80 | (cp & 0x3f)), k = 2;
            else if (cp < 0x10000)
                u[0] = (uint8_t)(0xe0 | cp >> 12), u[1] = (uint8_t)(0x80 | (cp >> 6 & 0x3f)),
                u[2] = (uint8_t)(0x80 | (cp & 0x3f)), k = 3;
            else
                u[0] = (uint8_t)(0xf0 | cp >> 18), u[1] = (uint8_t)(0x80 | (cp >> 12 & 0x3f)),
                u[2] = (uint8_t)(0x80 | (cp >> 6 & 0x3f)), u[3] = (uint8_t)(0x80 | (cp & 0x3f)),
                k = 4;
            if (!jput(j, u, k)) goto oom;
            continue;
        }
        default: return jfail(j, "bad escape in a string");
        }
        if (!jput(j, &ch, 1)) goto oom;
        if (j->str_len > (size_t)HEADER_MAX) return jfail(j, "string too long");
    }
    if (j->str_len > (size_t)HEADER_MAX) return jfail(j, "string too long");
    return ISEG_STATUS_OK;
oom:
    return iseg__werr_set(j->e, ISEG_STATUS_ENOMEM, "out of memory");
}

/* A non-negative integer without sign, fraction or exponent (as the reference requires). */
static enum iseg_status juint(struct jp *j, uint64_t *out) {
    jws(j);
    if (j->p >= j->end || *j->p < '0' || *j->p > '9')
        return jfail(j, "expected a non-negative integer");
    uint64_t v = 0;
    while (j->p < j->end && *j->p >= '0' && *j->p <= '9') {
        if (v > (UINT64_MAX - 9) / 10) return jfail(j, "integer too large");
        v = v * 10 + (uint64_t)(*j->p++ - '0');
    }
    if (j->p < j->end && (*j->p == '.' || *j->p == 'e' || *j->p == 'E'))
        return jfail(j, "expected an integer");
    *out = v;
    return ISEG_STATUS_OK;
}

/* [n, n, ...] with at most cap entries. */
static enum iseg_status juints(struct jp *j, uint64_t *v, int cap, int *n, const char *what) {
    *n = 0;
    if (!jeat(j, '[')) return jfail(j, what);
    if (jeat(j, ']')) return ISEG_STATUS_OK;
    for (;;) {
        if (*n >= cap) return jfail(j, what);
        enum iseg_status st = juint(j, &v[(*n)++]);
        if (st) return st;
        if (jeat(j, ']')) return ISEG_STATUS_OK;
        if (!jeat(j, ',')) return jfail(j, what);
    }
}

static bool dtype_from_name(const char *s, enum iseg_dtype *t) {
    for (int k = 0; k < ISEG_DTYPE_COUNT; k++)
        if (strcmp(s, iseg_dtype_name((enum iseg_dtype)k)) == 0) {
            *t = (enum iseg_dtype)k;
            return true;
        }
    return false;
}

struct entry {
    uint64_t begin, end;
    size_t   i; /* tensor index */
};

static int cmp_entry(const void *a, const void *b) {
    const struct entry *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end) return x->end < y->end ? -1 : 1;
    return x->i < y->i ? -1 : x->i > y->i;
}

static enum iseg_status read_metadata(struct iseg_weights *w, struct jp *j) {
    if (w->meta) return jfail(j, "duplicate __metadata__");
    if (!jeat(j, '{')) return jfail(j, "__metadata__ is not an object of strings");
    if (jeat(j, '}')) return ISEG_STATUS_OK;
    size_t cap = 0;
    for (;;) {
        enum iseg_status st = jstring(j);
        if (st) return st;
        if (w->n_meta == cap) {
            cap       = cap ? cap * 2 : 8;
            char **m  = iseg__realloc_array(w->meta, cap, 2 * sizeof(char *));
            if (!m) goto oom;
            w->meta = m;
        }
        for (size_t i = 0; i < w->n_meta; i++)
            if (strcmp(w->meta[2 * i], j->str) == 0) return jfail(j, "duplicate __metadata__ key");
        char *k = iseg__strdup(j->str);
        if (!k) goto oom;
        w->meta[2 * w->n_meta]     = k;
        w->meta[2 * w->n_meta + 1] = NULL;
        w->n_meta++;
        if (!jeat(j, ':')) return jfail(j, "expected ':'");
        jws(j);
        if (j->p >= j->end || *j->p != '"') return jfail(j, "__metadata__ values must be strings");
        if ((st = jstring(j))) return st;
        if (!(w->meta[2 * w->n_meta - 1] = iseg__strdup(j->str))) goto oom;
        if (jeat(j, '}')) return ISEG_STATUS_OK;
        if (!jeat(j, ',')) return jfail(j, "expected ',' or '}'");
    }
oom:
    return iseg__werr_set(j->e, ISEG_STATUS_ENOMEM, "out of memory");
}

enum iseg_status iseg__safetensors_read(struct iseg_weights *w, const uint8_t *buf, size_t n,
                                        struct iseg__werr *e) {
    if (n < 8) return iseg__werr_set(e, ISEG_STATUS_EFORMAT, "header: file of %zu bytes", n);
    uint64_t hn = 0;
    for (int k = 7; k >= 0; k--) hn = hn << 8 | buf[k];
    if (hn > HEADER_MAX)
        return iseg__werr_set(e, ISEG_STATUS_ELIMIT, "header: %llu bytes (at most %llu)",
                              (unsigned long long)hn, (unsigned long long)HEADER_MAX);
    if (hn > n - 8)
        return iseg__werr_set(e, ISEG_STATUS_EFORMAT,
                              "header: %llu bytes but the file has only %zu after the size",
                              (unsigned long long)hn, n - 8);
    const uint8_t *data   = buf + 8 + hn;
    uint64_t       data_n = n - 8 - hn;

    struct jp        j  = {buf + 8, buf + 8 + hn, buf + 8, e, NULL, 0, 0};
    struct entry    *en = NULL;
    size_t           en_cap = 0;
    enum iseg_status st     = ISEG_STATUS_OK;
    if (!jeat(&j, '{')) {
        st = jfail(&j, "header is not a JSON object");
        goto out;
    }
    if (!jeat(&j, '}')) {
        for (;;) {
            if ((st = jstring(&j))) goto out;
            if (!jeat(&j, ':')) {
                st = jfail(&j, "expected ':'");
                goto out;
            }
            if (strcmp(j.str, "__metadata__") == 0) {
                if ((st = read_metadata(w, &j))) goto out;
            } else {
                if (j.str_len > NAME_MAX_LEN) {
                    st = jfail(&j, "tensor name too long");
                    goto out;
                }
                char *name = iseg__strdup(j.str);
                if (!name) {
                    st = iseg__werr_set(e, ISEG_STATUS_ENOMEM, "out of memory");
                    goto out;
                }
                uint64_t        shape[ISEG_WEIGHT_MAX_DIMS + 1], off[3];
                int             ndim = -1, noff = -1;
                enum iseg_dtype dt   = ISEG_DTYPE_COUNT;
                if (!jeat(&j, '{')) {
                    st = jfail(&j, "tensor entry is not an object");
                } else {
                    do {
                        if ((st = jstring(&j))) break;
                        if (!jeat(&j, ':')) {
                            st = jfail(&j, "expected ':'");
                        } else if (strcmp(j.str, "dtype") == 0 && dt == ISEG_DTYPE_COUNT) {
                            if ((st = jstring(&j))) break;
                            if (!dtype_from_name(j.str, &dt))
                                st = iseg__werr_set(e, ISEG_STATUS_EFORMAT,
                                                    "tensor '%.200s': unsupported dtype '%.32s'",
                                                    name, j.str);
                        } else if (strcmp(j.str, "shape") == 0 && ndim < 0) {
                            st = juints(&j, shape, ISEG_WEIGHT_MAX_DIMS + 1, &ndim,
                                        "shape must be a list of at most 8 integers");
                            if (!st && ndim > ISEG_WEIGHT_MAX_DIMS)
                                st = jfail(&j, "too many dimensions");
                        } else if (strcmp(j.str, "data_offsets") == 0 && noff < 0) {
                            st = juints(&j, off, 3, &noff, "data_offsets must be [begin, end]");
                            if (!st && noff != 2) st = jfail(&j, "data_offsets must be [begin, end]");
                        } else {
                            st = jfail(&j, "unknown or repeated field in a tensor entry");
                        }
                        if (st) break;
                    } while (jeat(&j, ','));
                    if (!st && !jeat(&j, '}')) st = jfail(&j, "expected ',' or '}'");
                    if (!st && (dt == ISEG_DTYPE_COUNT || ndim < 0 || noff < 0))
                        st = iseg__werr_set(e, ISEG_STATUS_EFORMAT,
                                            "tensor '%.200s': missing dtype, shape or data_offsets",
                                            name);
                }
                /* shape x dtype size == end - begin, within the data */
                uint64_t numel = 1, nbytes;
                for (int k = 0; !st && k < ndim; k++)
                    if (shape[k] > (uint64_t)INT64_MAX ||
                        __builtin_mul_overflow(numel, shape[k], &numel))
                        st = iseg__werr_set(e, ISEG_STATUS_EFORMAT, "tensor '%.200s': shape overflows",
                                            name);
                if (!st && (__builtin_mul_overflow(numel, iseg_dtype_size(dt), &nbytes) ||
                            off[1] < off[0] || off[1] - off[0] != nbytes))
                    st = iseg__werr_set(e, ISEG_STATUS_EFORMAT,
                                        "tensor '%.200s': data_offsets [%llu, %llu] do not hold "
                                        "%llu elements of %s", name, (unsigned long long)off[0],
                                        (unsigned long long)off[1], (unsigned long long)numel,
                                        iseg_dtype_name(dt));
                if (!st && off[1] > data_n)
                    st = iseg__werr_set(e, ISEG_STATUS_EFORMAT,
                                        "tensor '%.200s': data_offsets end %llu past the end of "
                                        "the data (%llu bytes)", name,
                                        (unsigned long long)off[1], (unsigned long long)data_n);
                if (!st) {
                    struct iseg__wsrc src = {0};
                    int64_t           sh[ISEG_WEIGHT_MAX_DIMS];
                    int64_t           stride = 1;
                    for (int k = ndim - 1; k >= 0; k--) {
                        sh[k]         = (int64_t)shape[k];
                        src.stride[k] = stride;
                        stride *= shape[k] ? (int64_t)shape[k] : 1;
                    }
                    src.base   = data + off[0];
                    src.nbytes = nbytes;
                    st = iseg__weights_add(w, name, strlen(name), dt, ndim, sh, &src, e);
                }
                iseg__free(name);
                if (st) goto out;
                if (w->n > en_cap) {
                    en_cap = en_cap ? en_cap * 2 : 64;
                    struct entry *q = iseg__realloc_array(en, en_cap, sizeof(*en));
                    if (!q) {
                        st = iseg__werr_set(e, ISEG_STATUS_ENOMEM, "out of memory");
                        goto out;
                    }
                    en = q;
                }
                en[w->n - 1] = (struct entry){off[0], off[1], w->n - 1};
            }
            if (jeat(&j, '}')) break;
            if (!jeat(&j, ',')) {
                st = jfail(&j, "expected ',' or '}'");
                goto out;
            }
        }
    }
    jws(&j);
    if (j.p != j.end) {
        st = jfail(&j, "trailing bytes after the header object");
        goto out;
    }
    /* the tensors must tile the data region exactly (no gaps, no overlaps) */
    if (w->n) qsort(en, w->n, sizeof(*en), cmp_entry);
    uint64_t at = 0;
    for (size_t i = 0; i < w->n; i++) {
        if (en[i].begin != at) {
            st = iseg__werr_set(e, ISEG_STATUS_EFORMAT,
                                "tensor '%.200s': data_offsets begin %llu, expected %llu "
                                "(tensors must be contiguous and not overlap)",
                                w->t[en[i].i].name, (unsigned long long)en[i].begin,
                                (unsigned long long)at);
            goto out;
        }
        at = en[i].end;
    }
    if (at != data_n)
        st = iseg__werr_set(e, ISEG_STATUS_EFORMAT,
                            "data: %llu bytes after the header but the tensors use %llu",
                            (unsigned long long)data_n, (unsigned long long)at);
    else
        st = iseg__weights_finish(w, e);
out:
    iseg__free(en);
    iseg__free(j.str);
    return st;
}

/* ---- writer ---- */

static bool put_json_string(struct iseg__buf *b, const char *s) {
    if (!iseg__buf_append(b, "\"", 1)) return false;
    for (const char *p = s; *p; p++) {
        unsigned char c = (unsigned char)*p;
        bool          ok;
        if (c == '"' || c == '\\') {
            char esc[2] = {'\\', (char)c};
            ok          = iseg__buf_append(b, esc, 2);
        } else if (c < 0x20) {
            ok = iseg__buf_printf(b, "\\u%04x", c);
        } else {
            ok = iseg__buf_append(b, p, 1);
        }
        if (!ok) return false;
    }
    return iseg__buf_append(b, "\"", 1);
}

enum iseg_status iseg_weights_save_safetensors(const char *path, const struct iseg_weight *t,
                                               size_t n, const char *const *metadata,
                                               char *err, size_t errlen) {
    ISEG_ASSERT(path);
    ISEG_ASSERT(t || n == 0);
    struct iseg__werr e   = {path, err, errlen};
    struct iseg__buf  h   = {0};
    size_t           *idx = NULL;
    char             *tmp = NULL;
    FILE             *f   = NULL;
    enum iseg_status  st  = ISEG_STATUS_OK;
    if (err && errlen) err[0] = 0;

    /* names must be unique: a hash of indices */
    size_t cap = 16;
    while (cap < 2 * n) cap *= 2;
    if (!(idx = iseg__calloc(cap, sizeof(size_t)))) goto oom;
    for (size_t i = 0; i < n; i++) {
        const struct iseg_weight *w = &t[i];
        if (!w->name || strcmp(w->name, "__metadata__") == 0) {
            st = iseg__werr_set(&e, ISEG_STATUS_EINVAL, "tensor %zu: invalid name", i);
            goto out;
        }
        if ((unsigned)w->dtype >= ISEG_DTYPE_COUNT || w->ndim < 0 ||
            w->ndim > ISEG_WEIGHT_MAX_DIMS) {
            st = iseg__werr_set(&e, ISEG_STATUS_EINVAL, "tensor '%.200s': invalid dtype or ndim",
                                w->name);
            goto out;
        }
        uint64_t numel = 1, nb;
        for (int k = 0; k < w->ndim; k++)
            if (w->shape[k] < 0 || __builtin_mul_overflow(numel, (uint64_t)w->shape[k], &numel)) {
                st = iseg__werr_set(&e, ISEG_STATUS_EINVAL, "tensor '%.200s': invalid shape",
                                    w->name);
                goto out;
            }
        if (__builtin_mul_overflow(numel, iseg_dtype_size(w->dtype), &nb) || nb != w->nbytes ||
            (nb && !w->data)) {
            st = iseg__werr_set(&e, ISEG_STATUS_EINVAL,
                                "tensor '%.200s': nbytes %zu does not match its shape and dtype",
                                w->name, w->nbytes);
            goto out;
        }
        size_t hh = (size_t)iseg__whash(w->name, strlen(w->name)) & (cap - 1);
        while (idx[hh]) {
            if (strcmp(t[idx[hh] - 1].name, w->name) == 0) {
                st = iseg__werr_set(&e, ISEG_STATUS_EINVAL, "duplicate tensor name '%.200s'",
                                    w->name);
                goto out;
            }
            hh = (hh + 1) & (cap - 1);
        }
        idx[hh] = i + 1;
    }

    /* header: __metadata__ first (as the reference writer does), then tensors in order */
    if (!iseg__buf_append(&h, "{", 1)) goto oom;
    bool first = true;
    if (metadata && metadata[0]) {
        if (!iseg__buf_printf(&h, "\"__metadata__\":{")) goto oom;
        for (size_t k = 0; metadata[k]; k += 2) {
            if (!metadata[k + 1]) {
                st = iseg__werr_set(&e, ISEG_STATUS_EINVAL, "metadata key '%.200s' has no value",
                                    metadata[k]);
                goto out;
            }
            for (size_t m = 0; m < k; m += 2)
                if (strcmp(metadata[m], metadata[k]) == 0) {
                    st = iseg__werr_set(&e, ISEG_STATUS_EINVAL, "duplicate metadata key '%.200s'",
                                        metadata[k]);
                    goto out;
                }
            if ((k && !iseg__buf_append(&h, ",", 1)) || !put_json_string(&h, metadata[k]) ||
                !iseg__buf_append(&h, ":", 1) || !put_json_string(&h, metadata[k + 1]))
                goto oom;
        }
        if (!iseg__buf_append(&h, "}", 1)) goto oom;
        first = false;
    }
    uint64_t off = 0;
    for (size_t i = 0; i < n; i++) {
        const struct iseg_weight *w = &t[i];
        if ((!first && !iseg__buf_append(&h, ",", 1)) || !put_json_string(&h, w->name) ||
            !iseg__buf_printf(&h, ":{\"dtype\":\"%s\",\"shape\":[", iseg_dtype_name(w->dtype)))
            goto oom;
        first = false;
        for (int k = 0; k < w->ndim; k++)
            if (!iseg__buf_printf(&h, "%s%lld", k ? "," : "", (long long)w->shape[k])) goto oom;
        if (!iseg__buf_printf(&h, "],\"data_offsets\":[%llu,%llu]}", (unsigned long long)off,
                              (unsigned long long)(off + w->nbytes)))
            goto oom;
        off += w->nbytes;
    }
    if (!iseg__buf_append(&h, "}", 1)) goto oom;
    while (h.len % 8) /* the data starts 8-byte aligned; padding with spaces is allowed */
        if (!iseg__buf_append(&h, " ", 1)) goto oom;
    uint8_t len8[8];
    for (int k = 0; k < 8; k++) len8[k] = (uint8_t)((uint64_t)h.len >> (8 * k));

    /* stream header and tensors to a temporary file, then rename it over path */
    size_t plen = strlen(path);
    if (!(tmp = iseg__malloc(plen + 32))) goto oom;
    snprintf(tmp, plen + 32, "%s.tmp.%ld", path, (long)getpid());
    if (!(f = fopen(tmp, "wb"))) {
        st = iseg__werr_set(&e, ISEG_STATUS_EIO, "cannot open for writing: %s", strerror(errno));
        iseg__free(tmp);
        tmp = NULL;
        goto out;
    }
    bool ok = fwrite(len8, 1, 8, f) == 8 && fwrite(h.data, 1, h.len, f) == h.len;
    for (size_t i = 0; ok && i < n; i++)
        ok = t[i].nbytes == 0 || fwrite(t[i].data, 1, t[i].nbytes, f) == t[i].nbytes;
    ok    = (fflush(f) == 0) && ok;
    int errn = errno;
    ok    = (fclose(f) == 0) && ok;
    f     = NULL;
    if (!ok || rename(tmp, path) != 0) {
        if (ok) errn = errno;
        st = iseg__werr_set(&e, ISEG_STATUS_EIO, "write failed: %s", strerror(errn));
        remove(tmp);
    }
    goto out;
oom:
    st = iseg__werr_set(&e, ISEG_STATUS_ENOMEM, "out of memory");
out:
    if (f) {
        fclose(f);
        remove(tmp);
    }
    iseg__free(tmp);
    iseg__free(idx);
    iseg__buf_free(&h);
    return st;
}
