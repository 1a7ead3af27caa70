/* png.c - iseg_image allocation and PNG reading/writing; the only file that talks to libspng
 * and libdeflate.
 *
 * Reading has two decoders. The fast one handles the common case (8/16-bit gray, gray+alpha,
 * RGB, RGBA; not interlaced; no tRNS, PLTE or other chunk that libspng interprets): it walks the
 * chunks itself, inflates all of IDAT in one call to libdeflate and undoes the row filters
 * (png_unfilter.c: portable loops, and vector kernels for 3-byte pixels). The same steps also
 * serve the row reader of png_impl.h, which unfilters one row at a time into a two-row buffer
 * for callers that consume rows as they come. It never reports an error: on anything it does
 * not fully vouch for, valid but unusual or corrupt, it returns nothing and libspng decodes the
 * file from scratch, so every error status and message comes from one place and stays what it
 * always was. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <libdeflate.h>
#include <spng.h>

#include "core/core_impl.h"
#include "iseg/image.h"
#include "image/png_impl.h"

bool                        iseg__png_force_slow = false;
_Thread_local unsigned long iseg__png_n_fast;

/* ---- images ---- */

static bool image_shape_ok(uint32_t w, uint32_t h, uint32_t c, uint32_t depth) {
    return w > 0 && h > 0 && c >= 1 && c <= 4 && (depth == 8 || depth == 16);
}

/* Bytes of a w x h x c image at depth bits; false on overflow of size_t. */
static bool image_bytes(uint32_t w, uint32_t h, uint32_t c, uint32_t depth, size_t *out) {
    size_t n;
    return iseg__mul_size_ok((size_t)w, (size_t)h, &n) && iseg__mul_size_ok(n, (size_t)c, &n) &&
           iseg__mul_size_ok(n, (size_t)depth / 8, out);
}

/* Allocate without zeroing: the decoder overwrites every byte. */
static enum iseg_status image_alloc_raw(struct iseg_image *img, uint32_t w, uint32_t h,
                                        uint32_t c, uint32_t depth, uint64_t max_pixels) {
    memset(img, 0, sizeof(*img));
    if (!image_shape_ok(w, h, c, depth)) return ISEG_STATUS_EINVAL;
    if ((uint64_t)w * h > max_pixels) return ISEG_STATUS_ELIMIT;
    size_t n;
    if (!image_bytes(w, h, c, depth, &n)) return ISEG_STATUS_ELIMIT;
    void *p = iseg__malloc(n);
    if (!p) return ISEG_STATUS_ENOMEM;
    img->w     = w;
    img->h     = h;
    img->c     = c;
    img->depth = depth;
    img->data  = p;
    return ISEG_STATUS_OK;
}

enum iseg_status iseg_image_alloc(struct iseg_image *img, uint32_t w, uint32_t h, uint32_t c,
                                  uint32_t depth) {
    ISEG_ASSERT(img);
    enum iseg_status st = image_alloc_raw(img, w, h, c, depth, ISEG_IMAGE_MAX_PIXELS);
    if (st == ISEG_STATUS_OK) memset(img->data, 0, iseg_image_nbytes(img));
    return st;
}

void iseg_image_free(struct iseg_image *img) {
    if (!img) return;
    iseg__free(img->data);
    memset(img, 0, sizeof(*img));
}

size_t iseg_image_nbytes(const struct iseg_image *img) {
    size_t n;
    if (!img || !img->data || !image_bytes(img->w, img->h, img->c, img->depth, &n)) return 0;
    return n;
}

struct iseg_image_limits iseg_image_default_limits(void) {
    struct iseg_image_limits lim = {
        .max_width       = ISEG_IMAGE_MAX_DIM,
        .max_height      = ISEG_IMAGE_MAX_DIM,
        .max_pixels      = ISEG_IMAGE_MAX_PIXELS,
        .max_chunk_bytes = (size_t)16 << 20,
    };
    return lim;
}

/* ---- libspng glue ---- */

/* libspng's allocator table has no user pointer, so route it through the library hooks with
 * plain wrappers; this keeps OOM injection meaningful for PNG code too. libspng reports some
 * allocation failures inside zlib as stream errors, so the wrappers also note any failure (per
 * thread, since contexts never cross threads) and errors are then reported as ENOMEM. */
static _Thread_local bool g_alloc_failed;

static void *note_failure(void *p) {
    if (!p) g_alloc_failed = true;
    return p;
}
static void *spng_malloc_cb(size_t n) { return note_failure(iseg__malloc(n)); }
static void *spng_realloc_cb(void *p, size_t n) { return note_failure(iseg__realloc(p, n)); }
static void *spng_calloc_cb(size_t n, size_t size) { return note_failure(iseg__calloc(n, size)); }
static void  spng_free_cb(void *p) { iseg__free(p); }

static spng_ctx *ctx_new(int flags) {
    struct spng_alloc a = {
        .malloc_fn  = spng_malloc_cb,
        .realloc_fn = spng_realloc_cb,
        .calloc_fn  = spng_calloc_cb,
        .free_fn    = spng_free_cb,
    };
    g_alloc_failed = false;
    return spng_ctx_new2(&a, flags);
}

static void set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void set_err(char *err, size_t errlen, const char *fmt, ...) {
    if (!err || errlen == 0) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* Map a libspng decoder error to a status and a message "<name>: ...". */
static enum iseg_status decode_error(int rc, const char *name, char *err, size_t errlen) {
    if (g_alloc_failed) rc = SPNG_EMEM;
    switch (rc) {
    case SPNG_IO_EOF:
    case SPNG_EOF:
    case SPNG_EIDAT_TOO_SHORT:
        set_err(err, errlen, "%s: truncated PNG data (%s)", name, spng_strerror(rc));
        return ISEG_STATUS_EFORMAT;
    case SPNG_ESIGNATURE:
        set_err(err, errlen, "%s: not a PNG file (bad signature)", name);
        return ISEG_STATUS_EFORMAT;
    case SPNG_EUSER_WIDTH:
    case SPNG_EUSER_HEIGHT:
    case SPNG_ECHUNK_LIMITS:
    case SPNG_EOVERFLOW:
        set_err(err, errlen, "%s: PNG too large (%s)", name, spng_strerror(rc));
        return ISEG_STATUS_ELIMIT;
    case SPNG_EMEM:
    case SPNG_EZLIB_INIT: /* zlib could not allocate its state */
        /* libspng also reports exceeded chunk limits as EMEM */
        set_err(err, errlen, "%s: %s", name,
                g_alloc_failed ? "out of memory" : "out of memory or PNG chunk limit exceeded");
        return ISEG_STATUS_ENOMEM;
    default:
        set_err(err, errlen, "%s: corrupt PNG data (%s)", name, spng_strerror(rc));
        return ISEG_STATUS_EFORMAT;
    }
}

/* How a PNG colour type / bit depth maps to our layout and to a libspng output format. */
struct decode_plan {
    uint32_t c, depth; /* what the decoder produces */
    int      fmt;      /* libspng output format */
    int      flags;    /* libspng decode flags */
    bool     gray_trns; /* add alpha from the tRNS gray key ourselves (c becomes 2) */
};

static bool plan_decode(const struct spng_ihdr *ih, bool has_trns, struct decode_plan *p) {
    memset(p, 0, sizeof(*p));
    bool d16 = ih->bit_depth == 16;
    switch (ih->color_type) {
    case SPNG_COLOR_TYPE_GRAYSCALE:
        /* SPNG_FMT_PNG keeps 8 and 16-bit samples as they are (host order); G8 scales 1/2/4-bit
         * samples up to 0..255. libspng has no gray+alpha output for a tRNS key, so we expand. */
        p->c         = 1;
        p->depth     = d16 ? 16 : 8;
        p->fmt       = ih->bit_depth >= 8 ? SPNG_FMT_PNG : SPNG_FMT_G8;
        p->gray_trns = has_trns;
        return true;
    case SPNG_COLOR_TYPE_TRUECOLOR:
        p->c     = has_trns ? 4 : 3;
        p->depth = d16 ? 16 : 8;
        if (has_trns) {
            p->fmt   = d16 ? SPNG_FMT_RGBA16 : SPNG_FMT_RGBA8;
            p->flags = SPNG_DECODE_TRNS;
        } else {
            p->fmt = SPNG_FMT_PNG;
        }
        return true;
    case SPNG_COLOR_TYPE_INDEXED:
        p->c     = has_trns ? 4 : 3;
        p->depth = 8;
        p->fmt   = has_trns ? SPNG_FMT_RGBA8 : SPNG_FMT_RGB8;
        p->flags = has_trns ? SPNG_DECODE_TRNS : 0;
        return true;
    case SPNG_COLOR_TYPE_GRAYSCALE_ALPHA:
        p->c     = 2;
        p->depth = d16 ? 16 : 8;
        p->fmt   = SPNG_FMT_PNG;
        return true;
    case SPNG_COLOR_TYPE_TRUECOLOR_ALPHA:
        p->c     = 4;
        p->depth = d16 ? 16 : 8;
        p->fmt   = SPNG_FMT_PNG;
        return true;
    default:
        return false;
    }
}

/* Expand a 1-channel image in place to gray+alpha: alpha is 0 where the sample equals key. */
static enum iseg_status add_gray_key_alpha(struct iseg_image *img, uint32_t key) {
    struct iseg_image ga;
    enum iseg_status  st = image_alloc_raw(&ga, img->w, img->h, 2, img->depth, UINT64_MAX);
    if (st != ISEG_STATUS_OK) return st;
    size_t n = (size_t)img->w * img->h;
    if (img->depth == 8) {
        const uint8_t *src = img->data;
        uint8_t       *dst = ga.data;
        for (size_t i = 0; i < n; i++) {
            dst[2 * i]     = src[i];
            dst[2 * i + 1] = src[i] == key ? 0 : 255;
        }
    } else {
        const uint16_t *src = img->data;
        uint16_t       *dst = ga.data;
        for (size_t i = 0; i < n; i++) {
            dst[2 * i]     = src[i];
            dst[2 * i + 1] = src[i] == key ? 0 : 65535;
        }
    }
    iseg_image_free(img);
    *img = ga;
    return ISEG_STATUS_OK;
}

/* ---- the fast decoder ---- */

static uint32_t be32(const uint8_t *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static bool is_letter(uint8_t c) { return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z'); }

/* An ancillary chunk the fast decoder may skip: a well-formed name (four letters, reserved bit
 * clear) that libspng does not interpret. Chunks libspng parses can fail its checks (bad
 * values, duplicates, wrong position), so those go to libspng. */
static bool skippable_chunk(const uint8_t *type) {
    static const char KNOWN[][5] = {"cHRM", "gAMA", "iCCP", "sBIT", "sRGB", "bKGD", "hIST",
                                    "tRNS", "pHYs", "sPLT", "tIME", "iTXt", "tEXt", "zTXt",
                                    "oFFs", "pCAL", "sCAL", "eXIf", "sTER", "acTL", "fcTL",
                                    "fdAT", "dSIG", "gIFg", "gIFx", "gIFt"};
    for (int i = 0; i < 4; i++)
        if (!is_letter(type[i])) return false;
    if (!(type[0] & 0x20) || (type[2] & 0x20)) return false; /* critical, or reserved bit set */
    for (size_t i = 0; i < sizeof(KNOWN) / sizeof(KNOWN[0]); i++)
        if (memcmp(type, KNOWN[i], 4) == 0) return false;
    return true;
}

/* libdeflate has one global allocator; point it at the library hooks once, before the first
 * decompressor exists, so OOM injection reaches it too. */
static void *deflate_malloc_cb(size_t n) { return iseg__malloc(n); }
static void  deflate_free_cb(void *p) { iseg__free(p); }
static pthread_once_t g_deflate_once = PTHREAD_ONCE_INIT;
static void deflate_init(void) { libdeflate_set_memory_allocator(deflate_malloc_cb, deflate_free_cb); }

/* Unfilter h rows of raw (each a filter byte and rowbytes data bytes) into dst (h x rowbytes),
 * then bring 16-bit samples to host order. False on a filter type above 4. */
static bool unfilter_image(uint8_t *restrict dst, const uint8_t *restrict raw, uint32_t h,
                           size_t rowbytes, size_t bpp, bool swap16) {
    for (uint32_t y = 0; y < h; y++) {
        const uint8_t *src  = raw + (size_t)y * (rowbytes + 1);
        uint8_t       *row  = dst + (size_t)y * rowbytes;
        const uint8_t *prev = y ? row - rowbytes : NULL;
        if (src[0] > 4) return false;
        iseg__png_unfilter_row(row, src + 1, prev, rowbytes, bpp, src[0], ISEG__PNG_SIMD_ALL);
        /* the row above is no longer needed as a predictor: bring it to host order */
        if (swap16 && y) {
            uint8_t *p = row - rowbytes;
            for (size_t i = 0; i < rowbytes; i += 2) {
                uint16_t v = (uint16_t)(p[i] << 8 | p[i + 1]);
                memcpy(p + i, &v, 2);
            }
        }
    }
    if (swap16) {
        uint8_t *p = dst + (size_t)(h - 1) * rowbytes;
        for (size_t i = 0; i < rowbytes; i += 2) {
            uint16_t v = (uint16_t)(p[i] << 8 | p[i + 1]);
            memcpy(p + i, &v, 2);
        }
    }
    return true;
}

/* What the fast decoder learns from the chunks before inflating. */
struct fast_hdr {
    uint32_t w, h, c, depth;
    size_t   bpp, rowbytes, raw_n;               /* raw_n: inflated bytes, filter bytes included */
    size_t   idat_first, idat_bytes, n_idat;     /* the IDAT run */
};

/* Check the header and walk the chunks: skippable ones, one run of IDAT, skippable ones, IEND
 * at the very end, every CRC matching. False on anything the fast decoder does not take. */
static bool fast_parse(const uint8_t *buf, size_t n, const struct iseg_image_limits *lim,
                       struct fast_hdr *hd) {
    memset(hd, 0, sizeof(*hd));
    /* signature (checked by the caller), then IHDR */
    if (n < 8 + 25 || be32(buf + 8) != 13 || memcmp(buf + 12, "IHDR", 4) != 0) return false;
    if (libdeflate_crc32(0, buf + 12, 17) != be32(buf + 29)) return false;
    const uint8_t *ih = buf + 16;
    uint32_t       w = be32(ih), h = be32(ih + 4);
    uint32_t       depth = ih[8], ctype = ih[9];
    if (w == 0 || h == 0 || w > INT32_MAX || h > INT32_MAX) return false;
    if ((depth != 8 && depth != 16) || ih[10] != 0 || ih[11] != 0 || ih[12] != 0) return false;
    uint32_t c;
    switch (ctype) {
    case 0: c = 1; break;
    case 2: c = 3; break;
    case 4: c = 2; break;
    case 6: c = 4; break;
    default: return false;
    }
    if (w > lim->max_width || h > lim->max_height || (uint64_t)w * h > lim->max_pixels)
        return false;

    size_t off = 33, idat_first = 0, idat_bytes = 0, n_idat = 0;
    int    phase = 0; /* 0: before IDAT, 1: in the IDAT run, 2: after it */
    for (;;) {
        if (n - off < 12) return false;
        uint32_t       len  = be32(buf + off);
        const uint8_t *type = buf + off + 4;
        if (len > INT32_MAX || len > n - off - 12 || len > lim->max_chunk_bytes) return false;
        if (libdeflate_crc32(0, type, (size_t)len + 4) != be32(type + 4 + len)) return false;
        bool is_idat = memcmp(type, "IDAT", 4) == 0;
        if (is_idat) {
            if (phase == 2) return false;
            if (phase == 0) idat_first = off;
            phase = 1;
            idat_bytes += len;
            n_idat++;
        } else if (phase > 0 && memcmp(type, "IEND", 4) == 0) {
            if (len != 0 || off + 12 != n) return false;
            break;
        } else if (skippable_chunk(type)) {
            if (phase == 1) phase = 2;
        } else {
            return false;
        }
        off += (size_t)len + 12;
    }

    size_t bpp = (size_t)c * depth / 8, rowbytes, raw_n;
    if (!iseg__mul_size_ok(w, bpp, &rowbytes) || !iseg__mul_size_ok(rowbytes + 1, h, &raw_n))
        return false;
    *hd = (struct fast_hdr){.w = w, .h = h, .c = c, .depth = depth, .bpp = bpp,
                            .rowbytes = rowbytes, .raw_n = raw_n, .idat_first = idat_first,
                            .idat_bytes = idat_bytes, .n_idat = n_idat};
    return true;
}

/* Inflate the IDAT run into raw (exactly hd->raw_n bytes). *idat is a buffer (of capacity
 * *idat_cap, grown here) for gathering several IDAT payloads into one stream. */
static bool fast_inflate(const uint8_t *buf, const struct fast_hdr *hd,
                         struct libdeflate_decompressor *dec, uint8_t *raw, uint8_t **idat,
                         size_t *idat_cap) {
    const uint8_t *zin = buf + hd->idat_first + 8;
    if (hd->n_idat > 1) {
        if (hd->idat_bytes > *idat_cap || !*idat) {
            size_t   cap = hd->idat_bytes ? hd->idat_bytes : 1;
            uint8_t *p   = iseg__malloc(cap);
            if (!p) return false;
            iseg__free(*idat);
            *idat     = p;
            *idat_cap = cap;
        }
        size_t at = 0;
        for (size_t p = hd->idat_first; at < hd->idat_bytes; p += be32(buf + p) + (size_t)12) {
            size_t len = be32(buf + p);
            memcpy(*idat + at, buf + p + 8, len);
            at += len;
        }
        zin = *idat;
    }
    /* exactly raw_n bytes out (NULL out count: anything shorter fails) and all of IDAT used */
    size_t used = 0;
    return libdeflate_zlib_decompress_ex(dec, zin, hd->idat_bytes, raw, hd->raw_n, &used,
                                         NULL) == LIBDEFLATE_SUCCESS &&
           used == hd->idat_bytes;
}

/* Decode buf with the fast decoder. True with *out filled, or false with nothing allocated and
 * *out zeroed: the caller then lets libspng decide (it also reports every error). */
static bool decode_fast(const uint8_t *buf, size_t n, const struct iseg_image_limits *lim,
                        struct iseg_image *out) {
    memset(out, 0, sizeof(*out));
    struct fast_hdr hd;
    if (!fast_parse(buf, n, lim, &hd)) return false;
    if (image_alloc_raw(out, hd.w, hd.h, hd.c, hd.depth, lim->max_pixels) != ISEG_STATUS_OK)
        return false;

    bool                            ok   = false;
    uint8_t                        *idat = NULL, *raw = NULL;
    size_t                          idat_cap = 0;
    struct libdeflate_decompressor *dec  = NULL;
    raw = iseg__malloc(hd.raw_n);
    pthread_once(&g_deflate_once, deflate_init);
    dec = raw ? libdeflate_alloc_decompressor() : NULL;
    if (!dec || !fast_inflate(buf, &hd, dec, raw, &idat, &idat_cap)) goto out;
    ok = unfilter_image(out->data, raw, hd.h, hd.rowbytes, hd.bpp, hd.depth == 16);
    if (ok) iseg__png_n_fast++;
out:
    libdeflate_free_decompressor(dec);
    iseg__free(raw);
    iseg__free(idat);
    if (!ok) iseg_image_free(out);
    return ok;
}

/* ---- row-by-row reading (png_impl.h) ---- */

bool iseg__png_rows_open(struct iseg__png_rows *r, const void *buf, size_t n) {
    static const uint8_t SIG[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    struct iseg_image_limits lim = iseg_image_default_limits();
    struct fast_hdr          hd;
    r->w = r->h = r->c = 0;
    if (iseg__png_force_slow || n < 8 || memcmp(buf, SIG, 8) != 0 ||
        !fast_parse(buf, n, &lim, &hd) || hd.depth != 8)
        return false;
    if (hd.raw_n > r->raw_cap || !r->raw) {
        uint8_t *p = iseg__malloc(hd.raw_n);
        if (!p) return false;
        iseg__free(r->raw);
        r->raw     = p;
        r->raw_cap = hd.raw_n;
    }
    if (hd.rowbytes > r->row_cap || !r->rows) {
        uint8_t *p = iseg__malloc_array(2, hd.rowbytes);
        if (!p) return false;
        iseg__free(r->rows);
        r->rows    = p;
        r->row_cap = hd.rowbytes;
    }
    if (!r->dec) {
        pthread_once(&g_deflate_once, deflate_init);
        r->dec = libdeflate_alloc_decompressor();
        if (!r->dec) return false;
    }
    if (!fast_inflate(buf, &hd, r->dec, r->raw, &r->idat, &r->idat_cap)) return false;
    /* every filter type up front, so that reading rows cannot fail */
    for (uint32_t y = 0; y < hd.h; y++)
        if (r->raw[(size_t)y * (hd.rowbytes + 1)] > 4) return false;
    r->w        = hd.w;
    r->h        = hd.h;
    r->c        = hd.c;
    r->rowbytes = hd.rowbytes;
    r->y        = 0;
    iseg__png_n_fast++;
    return true;
}

const uint8_t *iseg__png_rows_next(struct iseg__png_rows *r) {
    ISEG_ASSERT(r->y < r->h);
    const uint8_t *src  = r->raw + (size_t)r->y * (r->rowbytes + 1);
    uint8_t       *dst  = r->rows + (r->y & 1) * r->rowbytes;
    const uint8_t *prev = r->y ? r->rows + ((r->y - 1) & 1) * r->rowbytes : NULL;
    iseg__png_unfilter_row(dst, src + 1, prev, r->rowbytes, r->c, src[0],
                           ISEG__PNG_SIMD_ALL);
    r->y++;
    return dst;
}

void iseg__png_rows_free(struct iseg__png_rows *r) {
    if (!r) return;
    libdeflate_free_decompressor(r->dec);
    iseg__free(r->raw);
    iseg__free(r->idat);
    iseg__free(r->rows);
    memset(r, 0, sizeof(*r));
}

static enum iseg_status decode(const void *buf, size_t n, const struct iseg_image_limits *lim,
                               const char *name, struct iseg_image *out, char *err,
                               size_t errlen) {
    memset(out, 0, sizeof(*out));
    struct iseg_image_limits dflt = iseg_image_default_limits();
    if (!lim) lim = &dflt;
    if (n == 0) {
        set_err(err, errlen, "%s: empty file (not a PNG)", name);
        return ISEG_STATUS_EFORMAT;
    }
    static const uint8_t SIG[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    if (memcmp(buf, SIG, n < 8 ? n : 8) != 0) {
        set_err(err, errlen, "%s: not a PNG file (bad signature)", name);
        return ISEG_STATUS_EFORMAT;
    }
    if (!iseg__png_force_slow && decode_fast(buf, n, lim, out)) return ISEG_STATUS_OK;

    enum iseg_status st  = ISEG_STATUS_OK;
    spng_ctx        *ctx = ctx_new(0);
    if (!ctx) {
        set_err(err, errlen, "%s: out of memory", name);
        return ISEG_STATUS_ENOMEM;
    }
    int rc = spng_set_png_buffer(ctx, buf, n);
    if (rc == SPNG_OK) rc = spng_set_chunk_limits(ctx, lim->max_chunk_bytes, lim->max_chunk_bytes);
    if (rc != SPNG_OK) {
        st = decode_error(rc, name, err, errlen);
        goto out_free_ctx;
    }

    struct spng_ihdr ih;
    rc = spng_get_ihdr(ctx, &ih);
    if (rc != SPNG_OK) {
        st = decode_error(rc, name, err, errlen);
        goto out_free_ctx;
    }
    /* Check the limits here rather than through spng_set_image_limits() so that the message can
     * give the size; nothing large has been allocated yet. */
    if (ih.width > lim->max_width || ih.height > lim->max_height ||
        (uint64_t)ih.width * ih.height > lim->max_pixels) {
        set_err(err, errlen,
                "%s: image too large: %" PRIu32 " x %" PRIu32 " exceeds the limit "
                "(%" PRIu32 " x %" PRIu32 ", %" PRIu64 " pixels)",
                name, ih.width, ih.height, lim->max_width, lim->max_height, lim->max_pixels);
        st = ISEG_STATUS_ELIMIT;
        goto out_free_ctx;
    }

    /* Reading tRNS makes libspng parse every chunk before the image data, so this is also where
     * truncated or corrupt headers show up. */
    struct spng_trns trns;
    rc = spng_get_trns(ctx, &trns);
    if (rc != SPNG_OK && rc != SPNG_ECHUNKAVAIL) {
        st = decode_error(rc, name, err, errlen);
        goto out_free_ctx;
    }
    bool has_trns = rc == SPNG_OK;
    struct decode_plan plan;
    if (!plan_decode(&ih, has_trns, &plan)) {
        set_err(err, errlen, "%s: unsupported PNG colour type %u", name, (unsigned)ih.color_type);
        st = ISEG_STATUS_EFORMAT;
        goto out_free_ctx;
    }

    size_t need;
    rc = spng_decoded_image_size(ctx, plan.fmt, &need);
    if (rc != SPNG_OK) {
        st = decode_error(rc, name, err, errlen);
        goto out_free_ctx;
    }
    st = image_alloc_raw(out, ih.width, ih.height, plan.c, plan.depth, lim->max_pixels);
    if (st != ISEG_STATUS_OK) {
        set_err(err, errlen, "%s: %s allocating a %" PRIu32 " x %" PRIu32 " image", name,
                iseg_status_str(st), ih.width, ih.height);
        goto out_free_ctx;
    }
    if (need != iseg_image_nbytes(out)) {
        /* our plan and libspng disagree on the layout: never decode into a wrong-sized buffer */
        set_err(err, errlen, "%s: internal error: decoded size %zu, expected %zu", name, need,
                iseg_image_nbytes(out));
        st = ISEG_STATUS_EINTERNAL;
        goto out_free_image;
    }
    rc = spng_decode_image(ctx, out->data, need, plan.fmt, plan.flags);
    if (rc != SPNG_OK) {
        st = decode_error(rc, name, err, errlen);
        goto out_free_image;
    }
    /* The pixels are complete, but a file cut short after them (no IEND) is still a truncated
     * file: report it. Other problems in trailing ancillary chunks do not affect the pixels. */
    rc = spng_decode_chunks(ctx);
    if (rc == SPNG_IO_EOF || rc == SPNG_EOF) {
        st = decode_error(rc, name, err, errlen);
        goto out_free_image;
    }
    if (plan.gray_trns) {
        /* The key is stored at the file's bit depth; G8 scales 1/2/4-bit samples by
         * 255 / (2^d - 1), an integer for these depths, so scale the key the same way. */
        uint32_t key = trns.gray;
        if (ih.bit_depth < 8) key = key * (255u / ((1u << ih.bit_depth) - 1u));
        st = add_gray_key_alpha(out, key);
        if (st != ISEG_STATUS_OK) {
            set_err(err, errlen, "%s: out of memory", name);
            goto out_free_image;
        }
    }
    spng_ctx_free(ctx);
    return ISEG_STATUS_OK;

out_free_image:
    iseg_image_free(out);
out_free_ctx:
    spng_ctx_free(ctx);
    return st;
}

enum iseg_status iseg_png_read_mem_limits(const void *buf, size_t n,
                                          const struct iseg_image_limits *lim,
                                          struct iseg_image *out, char *err, size_t errlen) {
    ISEG_ASSERT(out && (buf || n == 0));
    return decode(buf, n, lim, "<memory>", out, err, errlen);
}

enum iseg_status iseg_png_read_mem(const void *buf, size_t n, struct iseg_image *out, char *err,
                                   size_t errlen) {
    return iseg_png_read_mem_limits(buf, n, NULL, out, err, errlen);
}

enum iseg_status iseg_png_read(const char *path, struct iseg_image *out, char *err,
                               size_t errlen) {
    ISEG_ASSERT(path && out);
    memset(out, 0, sizeof(*out));
    struct iseg__buf buf = {0};
    enum iseg_status st  = iseg__read_file_magic(path, "\x89PNG\r\n\x1a\n", 8, &buf, err, errlen);
    if (st == ISEG_STATUS_OK) {
        st = decode(buf.data, buf.len, NULL, path, out, err, errlen);
    }
    iseg__buf_free(&buf);
    return st;
}

/* ---- writing ---- */

static const uint8_t COLOR_TYPE[5] = {
    0,
    SPNG_COLOR_TYPE_GRAYSCALE,
    SPNG_COLOR_TYPE_GRAYSCALE_ALPHA,
    SPNG_COLOR_TYPE_TRUECOLOR,
    SPNG_COLOR_TYPE_TRUECOLOR_ALPHA,
};

/* The encoder only fails for lack of memory (zlib's init included) or through a bug of ours. */
static enum iseg_status encode_status(int rc) {
    return g_alloc_failed || rc == SPNG_EMEM || rc == SPNG_EZLIB_INIT ? ISEG_STATUS_ENOMEM : ISEG_STATUS_EINTERNAL;
}

enum iseg_status iseg_png_write_mem(const struct iseg_image *img, void **buf, size_t *n,
                                    char *err, size_t errlen) {
    ISEG_ASSERT(img && buf && n);
    *buf = NULL;
    *n   = 0;
    if (!img->data || !image_shape_ok(img->w, img->h, img->c, img->depth)) {
        set_err(err, errlen, "invalid image (%" PRIu32 " x %" PRIu32 ", %" PRIu32
                             " channels, depth %" PRIu32 ")",
                img->w, img->h, img->c, img->depth);
        return ISEG_STATUS_EINVAL;
    }
    if (img->w > INT32_MAX || img->h > INT32_MAX) {
        set_err(err, errlen, "image too large for PNG (%" PRIu32 " x %" PRIu32 ")", img->w,
                img->h);
        return ISEG_STATUS_ELIMIT;
    }
    spng_ctx *ctx = ctx_new(SPNG_CTX_ENCODER);
    if (!ctx) {
        set_err(err, errlen, "out of memory");
        return ISEG_STATUS_ENOMEM;
    }
    enum iseg_status st = ISEG_STATUS_OK;
    struct spng_ihdr ih = {
        .width      = img->w,
        .height     = img->h,
        .bit_depth  = (uint8_t)img->depth,
        .color_type = COLOR_TYPE[img->c],
    };
    int rc = spng_set_option(ctx, SPNG_ENCODE_TO_BUFFER, 1);
    if (rc == SPNG_OK) rc = spng_set_ihdr(ctx, &ih);
    /* SPNG_FMT_PNG: samples in the PNG's own layout, 16-bit ones in host order */
    if (rc == SPNG_OK)
        rc = spng_encode_image(ctx, img->data, iseg_image_nbytes(img), SPNG_FMT_PNG,
                               SPNG_ENCODE_FINALIZE);
    if (rc != SPNG_OK) {
        st = encode_status(rc);
        set_err(err, errlen, "PNG encoding failed: %s", spng_strerror(rc));
        goto out_free_ctx;
    }
    /* The buffer was allocated through our hooks, so the caller can release it with iseg_free. */
    *buf = spng_get_png_buffer(ctx, n, &rc);
    if (!*buf || rc != SPNG_OK) {
        iseg__free(*buf);
        *buf = NULL;
        *n   = 0;
        st   = encode_status(rc == SPNG_OK ? SPNG_EMEM : rc);
        set_err(err, errlen, "PNG encoding failed: %s", spng_strerror(rc));
    }
out_free_ctx:
    spng_ctx_free(ctx);
    return st;
}

enum iseg_status iseg_png_write(const char *path, const struct iseg_image *img, char *err,
                                size_t errlen) {
    ISEG_ASSERT(path && img);
    void            *png = NULL;
    size_t           n   = 0;
    char             msg[256];
    enum iseg_status st  = iseg_png_write_mem(img, &png, &n, msg, sizeof(msg));
    if (st != ISEG_STATUS_OK) {
        set_err(err, errlen, "%s: %s", path, msg);
        return st;
    }
    /* iseg__write_file_atomic removes its temporary file on every failure path. */
    char tmp_err[1024] = "";
    st = iseg__write_file_atomic(path, png, n, tmp_err, sizeof(tmp_err));
    if (st != ISEG_STATUS_OK) set_err(err, errlen, "%s", tmp_err);
    iseg__free(png);
    return st;
}
