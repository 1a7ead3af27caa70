/* pth.c - PyTorch checkpoints: the zip layout (torch.save since 1.6) and the legacy layout
 * (before 1.6, or _use_new_zipfile_serialization=False).
 *
 * zip:    <dir>/data.pkl is the object pickle; its persistent ids
 *         ('storage', torch.FloatStorage, key, location, numel) name entries <dir>/data/<key>
 *         holding the raw little-endian storage. Entries are stored or deflated; zip64 records
 *         are understood. ref: torch/serialization.py _save/_load, APPNOTE.TXT 4.3.
 * legacy: five things back to back: a pickle of the magic number 0x1950a86a20f9469cfc6c, one
 *         of the protocol version 1001, one of the sys_info dict, the object pickle (persistent
 *         ids ('storage', type, key, location, numel, view_metadata)), a pickle of the list of
 *         storage keys; then per key an int64 element count and the data.
 *         ref: torch/serialization.py _legacy_save/_legacy_load.
 * Both share the storage table below and the pickle machine (pickle.c). */
#include <stdio.h>
#include <string.h>

#include <libdeflate.h>

#include "weights/weights_impl.h"

struct storage {
    const char     *key; /* points into the pickle */
    size_t          key_len;
    enum iseg_dtype dtype;
    const uint8_t  *data; /* NULL until located */
    uint64_t        nbytes;
};

struct pth {
    struct storage *s;
    size_t          n, cap;
    size_t         *hash; /* slot -> index + 1 */
    size_t          hash_cap;
    uint8_t       **owned; /* decompressed entries */
    size_t          n_owned;
    struct iseg__pk *pk;
};

static void pth_free(struct pth *t) {
    for (size_t i = 0; i < t->n_owned; i++) iseg__free(t->owned[i]);
    iseg__free(t->owned);
    iseg__free(t->s);
    iseg__free(t->hash);
    iseg__pk_free(t->pk);
}

static size_t *table_slot(struct pth *t, const char *key, size_t len) {
    size_t h = (size_t)iseg__whash(key, len) & (t->hash_cap - 1);
    while (t->hash[h]) {
        const struct storage *s = &t->s[t->hash[h] - 1];
        if (s->key_len == len && memcmp(s->key, key, len) == 0) break;
        h = (h + 1) & (t->hash_cap - 1);
    }
    return &t->hash[h];
}

static bool table_grow(struct pth *t) {
    size_t cap = t->hash_cap ? t->hash_cap * 2 : 64;
    size_t *h  = iseg__calloc(cap, sizeof(*h));
    if (!h) return false;
    iseg__free(t->hash);
    t->hash     = h;
    t->hash_cap = cap;
    for (size_t i = 0; i < t->n; i++) *table_slot(t, t->s[i].key, t->s[i].key_len) = i + 1;
    return true;
}

static const struct storage *table_find(struct pth *t, const char *key, size_t len,
                                        size_t *index) {
    if (!t->hash_cap) return NULL;
    size_t k = *table_slot(t, key, len);
    if (!k) return NULL;
    *index = k - 1;
    return &t->s[k - 1];
}

static bool str_is(const struct iseg__pkv *v, const char *s) {
    return (v->type == ISEG__PK_STR || v->type == ISEG__PK_BYTES) && v->u.s.n == strlen(s) &&
           memcmp(v->u.s.p, s, v->u.s.n) == 0;
}

/* persistent_load for both layouts: ('storage', type, key, location, numel[, view_metadata]) */
static struct iseg__pkv *persload(void *user, struct iseg__pkv *pid, struct iseg__werr *e,
                                  enum iseg_status *st) {
    struct pth *t = user;
    *st           = ISEG_STATUS_EFORMAT;
    if (pid->type != ISEG__PK_TUPLE || (pid->u.seq.n != 5 && pid->u.seq.n != 6) ||
        !str_is(pid->u.seq.v[0], "storage")) {
        iseg__werr_set(e, ISEG_STATUS_EFORMAT, "persistent id is not a storage");
        return NULL;
    }
    struct iseg__pkv *const *a = pid->u.seq.v;
    enum iseg_dtype          dtype;
    if (a[1]->type != ISEG__PK_GLOBAL || !iseg__pk_storage_dtype(a[1]->u.g, &dtype)) {
        iseg__werr_set(e, ISEG_STATUS_EFORMAT, "storage type is not a torch.*Storage class");
        return NULL;
    }
    if (a[2]->type != ISEG__PK_STR && a[2]->type != ISEG__PK_BYTES) {
        iseg__werr_set(e, ISEG_STATUS_EFORMAT, "storage key is not a string");
        return NULL;
    }
    const char *key = a[2]->u.s.p;
    size_t      len = a[2]->u.s.n, index;
    int64_t     view_offset = 0;
    if (pid->u.seq.n == 6 && a[5]->type != ISEG__PK_NONE) {
        /* legacy storage view: (view_key, offset, size) into the root storage */
        const struct iseg__pkv *vm = a[5];
        if (vm->type != ISEG__PK_TUPLE || vm->u.seq.n != 3 || vm->u.seq.v[1]->type != ISEG__PK_INT ||
            vm->u.seq.v[1]->u.i < 0) {
            iseg__werr_set(e, ISEG_STATUS_EFORMAT, "bad storage view metadata");
            return NULL;
        }
        view_offset = vm->u.seq.v[1]->u.i;
    }
    const struct storage *s = table_find(t, key, len, &index);
    if (s) {
        if (s->dtype != dtype) {
            iseg__werr_set(e, ISEG_STATUS_EFORMAT, "storage '%.64s' used with two dtypes",
                           s->key);
            return NULL;
        }
    } else {
        if (2 * (t->n + 1) > t->hash_cap && !table_grow(t)) goto oom;
        if (t->n == t->cap) {
            size_t          cap = t->cap ? t->cap * 2 : 64;
            struct storage *q   = iseg__realloc_array(t->s, cap, sizeof(*q));
            if (!q) goto oom;
            t->s   = q;
            t->cap = cap;
        }
        index       = t->n++;
        t->s[index] = (struct storage){key, len, dtype, NULL, 0};
        *table_slot(t, key, len) = index + 1;
    }
    struct iseg__pkv *v = iseg__pk_new(t->pk, ISEG__PK_STORAGE);
    if (!v) goto oom;
    v->u.st.index  = index;
    v->u.st.dtype  = dtype;
    v->u.st.offset = view_offset;
    return v;
oom:
    *st = ISEG_STATUS_ENOMEM;
    iseg__werr_set(e, ISEG_STATUS_ENOMEM, "out of memory");
    return NULL;
}

/* Point every tensor source at its storage's data. */
static enum iseg_status resolve(struct iseg_weights *w, struct pth *t, struct iseg__werr *e) {
    for (size_t i = 0; i < w->n; i++) {
        struct iseg__wsrc    *src = &w->src[i];
        const struct storage *s   = &t->s[src->storage];
        if (!s->data)
            return iseg__werr_set(e, ISEG_STATUS_EFORMAT, "tensor '%.200s': storage '%.*s' has no data",
                                  w->t[i].name, (int)(s->key_len > 64 ? 64 : s->key_len), s->key);
        src->base   = s->data;
        src->nbytes = s->nbytes;
    }
    return ISEG_STATUS_OK;
}

static enum iseg_status pth_init(struct pth *t, struct iseg__werr *e) {
    memset(t, 0, sizeof(*t));
    if (iseg__pk_init(&t->pk, persload, t))
        return iseg__werr_set(e, ISEG_STATUS_ENOMEM, "out of memory");
    return ISEG_STATUS_OK;
}

/* ---- zip ---- */

struct zentry {
    const char *name;
    size_t      name_len;
    uint16_t    flags, method;
    uint32_t    crc;
    uint64_t    csize, usize, lho;
};

static uint64_t rd(const uint8_t *p, int k) {
    uint64_t v = 0;
    for (int i = k - 1; i >= 0; i--) v = v << 8 | p[i];
    return v;
}

struct zip {
    const uint8_t *buf;
    size_t         n;
    struct zentry *ent;
    size_t         n_ent;
    size_t        *hash; /* slot -> index + 1 */
    size_t         hash_cap;
};

static enum iseg_status zip_directory(struct zip *z, struct iseg__werr *e) {
    const uint8_t *b = z->buf;
    size_t         n = z->n;
    if (n < 22) return iseg__werr_set(e, ISEG_STATUS_EFORMAT, "zip: file of %zu bytes", n);
    /* end of central directory: the last signature within 22 + 65535 bytes of the end */
    size_t eocd = SIZE_MAX;
    size_t lo   = n - 22 > 65535 ? n - 22 - 65535 : 0;
    for (size_t i = n - 22 + 1; i-- > lo;)
        if (rd(b + i, 4) == 0x06054b50 && i + 22 + rd(b + i + 20, 2) <= n) {
            eocd = i;
            break;
        }
    if (eocd == SIZE_MAX)
        return iseg__werr_set(e, ISEG_STATUS_EFORMAT,
                              "zip: no end of central directory (truncated file?)");
    uint64_t count = rd(b + eocd + 10, 2), cd_size = rd(b + eocd + 12, 4),
             cd_off = rd(b + eocd + 16, 4);
    if (rd(b + eocd + 4, 2) != 0 || rd(b + eocd + 6, 2) != 0)
        return iseg__werr_set(e, ISEG_STATUS_EFORMAT, "zip: multi-disk archives are not supported");
    if (count == 0xffff || cd_size == 0xffffffff || cd_off == 0xffffffff) {
        /* zip64: locator just before the EOCD, pointing at the zip64 EOCD record */
        if (eocd < 20 || rd(b + eocd - 20, 4) != 0x07064b50)
            return iseg__werr_set(e, ISEG_STATUS_EFORMAT, "zip: zip64 locator missing");
        uint64_t z64 = rd(b + eocd - 20 + 8, 8);
        if (n < 56 || z64 > n - 56 || rd(b + z64, 4) != 0x06064b50)
            return iseg__werr_set(e, ISEG_STATUS_EFORMAT, "zip: bad zip64 end of central directory");
        count   = rd(b + z64 + 32, 8);
        cd_size = rd(b + z64 + 40, 8);
        cd_off  = rd(b + z64 + 48, 8);
    }
    if (cd_off > n || cd_size > n - cd_off || count > cd_size / 46)
        return iseg__werr_set(e, ISEG_STATUS_EFORMAT,
                              "zip: central directory (%llu entries, %llu bytes at %llu) outside "
                              "the file of %zu bytes",
                              (unsigned long long)count, (unsigned long long)cd_size,
                              (unsigned long long)cd_off, n);
    z->ent = iseg__malloc_array(count ? (size_t)count : 1, sizeof(*z->ent));
    if (!z->ent) return iseg__werr_set(e, ISEG_STATUS_ENOMEM, "out of memory");
    size_t cap = 16;
    while (cap < 2 * count) cap *= 2;
    z->hash = iseg__calloc(cap, sizeof(size_t));
    if (!z->hash) return iseg__werr_set(e, ISEG_STATUS_ENOMEM, "out of memory");
    z->hash_cap = cap;

    const uint8_t *p = b + cd_off, *end = b + cd_off + cd_size;
    for (uint64_t i = 0; i < count; i++) {
        if (end - p < 46 || rd(p, 4) != 0x02014b50)
            return iseg__werr_set(e, ISEG_STATUS_EFORMAT, "zip: central directory entry %llu is "
                                  "corrupt", (unsigned long long)i);
        struct zentry *z_ = &z->ent[i];
        size_t         nl = (size_t)rd(p + 28, 2), xl = (size_t)rd(p + 30, 2),
               cl = (size_t)rd(p + 32, 2);
        if ((size_t)(end - p) - 46 < nl + xl + cl)
            return iseg__werr_set(e, ISEG_STATUS_EFORMAT, "zip: central directory entry %llu is "
                                  "truncated", (unsigned long long)i);
        z_->flags    = (uint16_t)rd(p + 8, 2);
        z_->method   = (uint16_t)rd(p + 10, 2);
        z_->crc      = (uint32_t)rd(p + 16, 4);
        z_->csize    = rd(p + 20, 4);
        z_->usize    = rd(p + 24, 4);
        z_->lho      = rd(p + 42, 4);
        z_->name     = (const char *)p + 46;
        z_->name_len = nl;
        /* zip64 extra field: the 0xffffffff fields, in this order */
        const uint8_t *x = p + 46 + nl, *xe = x + xl;
        while (xe - x >= 4) {
            size_t id = (size_t)rd(x, 2), sz = (size_t)rd(x + 2, 2);
            if ((size_t)(xe - x) - 4 < sz) break;
            if (id == 0x0001) {
                const uint8_t *f = x + 4, *fe = x + 4 + sz;
                uint64_t      *fields[3] = {&z_->usize, &z_->csize, &z_->lho};
                for (int k = 0; k < 3; k++) {
                    if (*fields[k] != 0xffffffff) continue;
                    if (fe - f < 8)
                        return iseg__werr_set(e, ISEG_STATUS_EFORMAT, "zip: short zip64 field");
                    *fields[k] = rd(f, 8);
                    f += 8;
                }
            }
            x += 4 + sz;
        }
        p += 46 + nl + xl + cl;
        size_t h = (size_t)iseg__whash(z_->name, nl) & (cap - 1);
        while (z->hash[h]) h = (h + 1) & (cap - 1);
        z->hash[h] = (size_t)i + 1;
        z->n_ent   = (size_t)i + 1;
    }
    return ISEG_STATUS_OK;
}

static const struct zentry *zip_find(const struct zip *z, const char *name, size_t len) {
    size_t h = (size_t)iseg__whash(name, len) & (z->hash_cap - 1);
    while (z->hash[h]) {
        const struct zentry *en = &z->ent[z->hash[h] - 1];
        if (en->name_len == len && memcmp(en->name, name, len) == 0) return en;
        h = (h + 1) & (z->hash_cap - 1);
    }
    return NULL;
}

/* The bytes of an entry: a pointer into the file (stored) or a new buffer in *owned
 * (deflated). */
static enum iseg_status zip_read(const struct zip *z, const struct zentry *en,
                                 const uint8_t **data, uint8_t **owned, struct iseg__werr *e) {
    const int nl = (int)(en->name_len > 200 ? 200 : en->name_len);
    *owned       = NULL;
    if (en->flags & 1)
        return iseg__werr_set(e, ISEG_STATUS_EFORMAT, "%.*s: encrypted zip entry", nl, en->name);
    if (en->lho > z->n || z->n - en->lho < 30 || rd(z->buf + en->lho, 4) != 0x04034b50)
        return iseg__werr_set(e, ISEG_STATUS_EFORMAT, "%.*s: bad local header offset %llu", nl,
                              en->name, (unsigned long long)en->lho);
    uint64_t off = en->lho + 30 + rd(z->buf + en->lho + 26, 2) + rd(z->buf + en->lho + 28, 2);
    if (off > z->n || en->csize > z->n - off)
        return iseg__werr_set(e, ISEG_STATUS_EFORMAT,
                              "%.*s: %llu bytes at offset %llu past the end of the file (%zu "
                              "bytes; truncated?)", nl, en->name, (unsigned long long)en->csize,
                              (unsigned long long)off, z->n);
    if (en->usize > iseg__weights_hooks.max_bytes)
        return iseg__werr_set(e, ISEG_STATUS_ELIMIT, "%.*s: entry of %llu bytes", nl, en->name,
                              (unsigned long long)en->usize);
    const uint8_t *src = z->buf + off;
    if (en->method == 0) {
        if (en->csize != en->usize)
            return iseg__werr_set(e, ISEG_STATUS_EFORMAT, "%.*s: stored entry with two sizes", nl,
                                  en->name);
        *data = src;
    } else if (en->method == 8) {
        /* deflate expands at most 1032:1; refuse bombs before allocating */
        if (en->usize / 1032 > en->csize + 1)
            return iseg__werr_set(e, ISEG_STATUS_EFORMAT, "%.*s: %llu bytes cannot inflate to %llu",
                                  nl, en->name, (unsigned long long)en->csize,
                                  (unsigned long long)en->usize);
        uint8_t *out = iseg__malloc(en->usize ? (size_t)en->usize : 1);
        if (!out) return iseg__werr_set(e, ISEG_STATUS_ENOMEM, "out of memory");
        struct libdeflate_decompressor *d = libdeflate_alloc_decompressor();
        if (!d) {
            iseg__free(out);
            return iseg__werr_set(e, ISEG_STATUS_ENOMEM, "out of memory");
        }
        enum libdeflate_result res =
            libdeflate_deflate_decompress(d, src, (size_t)en->csize, out, (size_t)en->usize, NULL);
        libdeflate_free_decompressor(d);
        if (res != LIBDEFLATE_SUCCESS) {
            iseg__free(out);
            return iseg__werr_set(e, ISEG_STATUS_EFORMAT, "%.*s: corrupt deflate stream", nl,
                                  en->name);
        }
        *data = *owned = out;
    } else {
        return iseg__werr_set(e, ISEG_STATUS_EFORMAT, "%.*s: compression method %u not supported",
                              nl, en->name, en->method);
    }
    if (!iseg__weights_hooks.skip_crc &&
        libdeflate_crc32(0, *data, (size_t)en->usize) != en->crc) {
        iseg__free(*owned);
        *owned = NULL;
        return iseg__werr_set(e, ISEG_STATUS_EFORMAT, "%.*s: CRC-32 mismatch (corrupt file)", nl,
                              en->name);
    }
    return ISEG_STATUS_OK;
}

static bool keep_owned(struct pth *t, uint8_t *p) {
    uint8_t **o = iseg__realloc_array(t->owned, t->n_owned + 1, sizeof(*o));
    if (!o) return false;
    t->owned              = o;
    t->owned[t->n_owned++] = p;
    return true;
}

enum iseg_status iseg__pth_zip_read(struct iseg_weights *w, const uint8_t *buf, size_t n,
                                    struct iseg__werr *e) {
    struct zip       z = {buf, n, NULL, 0, NULL, 0};
    struct pth       t;
    enum iseg_status st = pth_init(&t, e);
    char            *name = NULL;
    if (st) return st;
    if ((st = zip_directory(&z, e))) goto out;

    /* the pickle is "<dir>/data.pkl" with a one-level prefix (the archive's name) */
    const struct zentry *pkl = NULL;
    for (size_t i = 0; i < z.n_ent && !pkl; i++) {
        const struct zentry *en = &z.ent[i];
        const char          *sl = memchr(en->name, '/', en->name_len);
        if (sl && sl > en->name && (size_t)(en->name + en->name_len - sl) == 9 &&
            memcmp(sl, "/data.pkl", 9) == 0)
            pkl = en;
    }
    if (!pkl) {
        st = iseg__werr_set(e, ISEG_STATUS_EFORMAT,
                            "zip: no <dir>/data.pkl entry (not a torch.save checkpoint)");
        goto out;
    }
    size_t plen = pkl->name_len - 8; /* "<dir>/" */
    if (!(name = iseg__malloc(plen + 64 + 4096))) {
        st = iseg__werr_set(e, ISEG_STATUS_ENOMEM, "out of memory");
        goto out;
    }
    memcpy(name, pkl->name, plen);

    /* torch >= 1.12 records the byte order; the data is little-endian unless it says so */
    memcpy(name + plen, "byteorder", 9);
    const struct zentry *bo = zip_find(&z, name, plen + 9);
    if (bo) {
        const uint8_t *d;
        uint8_t       *own;
        if ((st = zip_read(&z, bo, &d, &own, e))) goto out;
        bool little = bo->usize == 6 && memcmp(d, "little", 6) == 0;
        iseg__free(own);
        if (!little) {
            st = iseg__werr_set(e, ISEG_STATUS_EFORMAT, "big-endian checkpoints are not supported");
            goto out;
        }
    }

    const uint8_t *pd;
    uint8_t       *pown;
    if ((st = zip_read(&z, pkl, &pd, &pown, e))) goto out;
    if (pown && !keep_owned(&t, pown)) {
        iseg__free(pown);
        st = iseg__werr_set(e, ISEG_STATUS_ENOMEM, "out of memory");
        goto out;
    }
    char where[256];
    snprintf(where, sizeof(where), "%.*s", (int)(pkl->name_len > 200 ? 200 : pkl->name_len),
             pkl->name);
    struct iseg__pkv *root;
    size_t            pos = 0;
    if ((st = iseg__pk_load(t.pk, pd, (size_t)pkl->usize, &pos, where, &root, e))) goto out;
    if ((st = iseg__pk_flatten(w, root, e))) goto out;

    /* locate the storages: "<dir>/data/<key>" */
    for (size_t i = 0; i < t.n; i++) {
        struct storage *s = &t.s[i];
        if (s->key_len > 4000) {
            st = iseg__werr_set(e, ISEG_STATUS_EFORMAT, "storage key too long");
            goto out;
        }
        memcpy(name + plen, "data/", 5);
        memcpy(name + plen + 5, s->key, s->key_len);
        const struct zentry *en = zip_find(&z, name, plen + 5 + s->key_len);
        if (!en) {
            st = iseg__werr_set(e, ISEG_STATUS_EFORMAT, "%.*s: storage entry missing",
                                (int)(plen + 5 + (s->key_len > 64 ? 64 : s->key_len)), name);
            goto out;
        }
        uint8_t *own;
        if ((st = zip_read(&z, en, &s->data, &own, e))) goto out;
        if (own && !keep_owned(&t, own)) {
            iseg__free(own);
            st = iseg__werr_set(e, ISEG_STATUS_ENOMEM, "out of memory");
            goto out;
        }
        s->nbytes = en->usize;
    }
    if ((st = resolve(w, &t, e))) goto out;
    /* copy now: stored storages point into buf, deflated ones into t.owned */
    st = iseg__weights_finish(w, e);
out:
    iseg__free(name);
    iseg__free(z.ent);
    iseg__free(z.hash);
    pth_free(&t);
    return st;
}

/* ---- legacy ---- */

static const uint8_t MAGIC[10] = {0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19};

enum iseg_status iseg__pth_legacy_read(struct iseg_weights *w, const uint8_t *buf, size_t n,
                                       struct iseg__werr *e) {
    struct pth       t;
    enum iseg_status st = pth_init(&t, e);
    if (st) return st;
    size_t            pos = 0;
    struct iseg__pkv *v, *root, *keys;

    if ((st = iseg__pk_load(t.pk, buf, n, &pos, "magic number", &v, e))) goto out;
    if (v->type != ISEG__PK_BIGINT || v->u.s.n != sizeof(MAGIC) ||
        memcmp(v->u.s.p, MAGIC, sizeof(MAGIC)) != 0) {
        st = iseg__werr_set(e, ISEG_STATUS_EFORMAT,
                            "magic number: not a PyTorch checkpoint (wrong magic number)");
        goto out;
    }
    if ((st = iseg__pk_load(t.pk, buf, n, &pos, "protocol version", &v, e))) goto out;
    if (v->type != ISEG__PK_INT || v->u.i != 1001) {
        st = iseg__werr_set(e, ISEG_STATUS_EFORMAT, "protocol version: %lld, expected 1001",
                            v->type == ISEG__PK_INT ? (long long)v->u.i : -1LL);
        goto out;
    }
    if ((st = iseg__pk_load(t.pk, buf, n, &pos, "sys_info", &v, e))) goto out;
    if (v->type != ISEG__PK_DICT) {
        st = iseg__werr_set(e, ISEG_STATUS_EFORMAT, "sys_info: not a dict");
        goto out;
    }
    for (size_t i = 0; i + 1 < v->u.seq.n; i += 2)
        if (str_is(v->u.seq.v[i], "little_endian") && v->u.seq.v[i + 1]->type == ISEG__PK_BOOL &&
            !v->u.seq.v[i + 1]->u.b) {
            st = iseg__werr_set(e, ISEG_STATUS_EFORMAT, "big-endian checkpoints are not supported");
            goto out;
        }
    if ((st = iseg__pk_load(t.pk, buf, n, &pos, "object pickle", &root, e))) goto out;
    if ((st = iseg__pk_flatten(w, root, e))) goto out;
    if ((st = iseg__pk_load(t.pk, buf, n, &pos, "storage keys", &keys, e))) goto out;
    if (keys->type != ISEG__PK_LIST) {
        st = iseg__werr_set(e, ISEG_STATUS_EFORMAT, "storage keys: not a list");
        goto out;
    }
    for (size_t i = 0; i < keys->u.seq.n; i++) {
        const struct iseg__pkv *k = keys->u.seq.v[i];
        size_t                  index;
        const struct storage   *s = NULL;
        if (k->type == ISEG__PK_STR || k->type == ISEG__PK_BYTES)
            s = table_find(&t, k->u.s.p, k->u.s.n, &index);
        if (!s) {
            st = iseg__werr_set(e, ISEG_STATUS_EFORMAT, "storage keys: key %zu names no storage",
                                i);
            goto out;
        }
        if (t.s[index].data) {
            st = iseg__werr_set(e, ISEG_STATUS_EFORMAT, "storage keys: key %zu repeated", i);
            goto out;
        }
        const int kl = (int)(s->key_len > 64 ? 64 : s->key_len);
        if (n - pos < 8) {
            st = iseg__werr_set(e, ISEG_STATUS_EFORMAT,
                                "storage '%.*s': truncated size at offset %zu", kl, s->key, pos);
            goto out;
        }
        uint64_t count = rd(buf + pos, 8), nbytes;
        pos += 8;
        if (__builtin_mul_overflow(count, iseg_dtype_size(s->dtype), &nbytes) ||
            nbytes > n - pos) {
            st = iseg__werr_set(e, ISEG_STATUS_EFORMAT,
                                "storage '%.*s': %llu elements of %s at offset %zu past the end "
                                "of the file (%zu bytes; truncated?)", kl, s->key,
                                (unsigned long long)count, iseg_dtype_name(s->dtype), pos, n);
            goto out;
        }
        t.s[index].data   = buf + pos;
        t.s[index].nbytes = nbytes;
        pos += (size_t)nbytes;
    }
    if ((st = resolve(w, &t, e))) goto out;
    st = iseg__weights_finish(w, e);
out:
    pth_free(&t);
    return st;
}
