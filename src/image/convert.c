/* convert.c - format-independent image helpers: reading a PNG or JPEG chosen by its content, and
 * converting any iseg_image to 8-bit RGB. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "core/core_impl.h"
#include "iseg/image.h"

static void set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void set_err(char *err, size_t errlen, const char *fmt, ...) {
    if (!err || errlen == 0) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

enum sniff { SNIFF_NONE, SNIFF_PNG, SNIFF_JPEG };

/* What the first n bytes (n may be short) say the data is. JPEG: SOI followed by the 0xFF of the
 * next marker, as PIL and file(1) check. */
static enum sniff sniff(const uint8_t *p, size_t n) {
    static const uint8_t PNG_SIG[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    if (n >= 8 && memcmp(p, PNG_SIG, 8) == 0) return SNIFF_PNG;
    if (n >= 3 && p[0] == 0xFF && p[1] == 0xD8 && p[2] == 0xFF) return SNIFF_JPEG;
    return SNIFF_NONE;
}

enum iseg_status iseg_image_read(const char *path, struct iseg_image *out, char *err,
                                 size_t errlen) {
    ISEG_ASSERT(path && out);
    memset(out, 0, sizeof(*out));
    FILE *f = fopen(path, "rb");
    if (!f) {
        set_err(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return ISEG_STATUS_EIO;
    }
    uint8_t head[8];
    size_t  k = fread(head, 1, sizeof(head), f);
    if (ferror(f)) {
        set_err(err, errlen, "%s: read error: %s", path, strerror(errno));
        fclose(f);
        return ISEG_STATUS_EIO;
    }
    fclose(f);
    /* The readers open the file again: simpler than passing the bytes on, and their messages
     * then name the file. */
    switch (sniff(head, k)) {
    case SNIFF_PNG:
        return iseg_png_read(path, out, err, errlen);
    case SNIFF_JPEG:
        return iseg_jpeg_read(path, out, err, errlen);
    default:
        set_err(err, errlen, "%s: %s", path,
                k == 0 ? "empty file (not a PNG or JPEG file)" : "not a PNG or JPEG file");
        return ISEG_STATUS_EFORMAT;
    }
}

enum iseg_status iseg_image_read_mem_limits(const void *buf, size_t n,
                                            const struct iseg_image_limits *lim,
                                            struct iseg_image *out, char *err, size_t errlen) {
    ISEG_ASSERT(out && (buf || n == 0));
    memset(out, 0, sizeof(*out));
    switch (sniff(buf, n)) {
    case SNIFF_PNG:
        return iseg_png_read_mem_limits(buf, n, lim, out, err, errlen);
    case SNIFF_JPEG:
        return iseg_jpeg_read_mem_limits(buf, n, lim, out, err, errlen);
    default:
        set_err(err, errlen, "<memory>: %s",
                n == 0 ? "empty file (not a PNG or JPEG file)" : "not a PNG or JPEG file");
        return ISEG_STATUS_EFORMAT;
    }
}

enum iseg_status iseg_image_to_rgb8(struct iseg_image *out, const struct iseg_image *in) {
    ISEG_ASSERT(out && in && out != in);
    memset(out, 0, sizeof(*out));
    if (!in->data || in->w == 0 || in->h == 0 || in->c < 1 || in->c > 4 ||
        (in->depth != 8 && in->depth != 16))
        return ISEG_STATUS_EINVAL;
    enum iseg_status st = iseg_image_alloc(out, in->w, in->h, 3, 8);
    if (st != ISEG_STATUS_OK) return st;
    size_t   n   = (size_t)in->w * in->h;
    uint32_t c   = in->c;
    uint8_t *dst = out->data;
    /* gray and gray+alpha replicate channel 0; RGB and RGBA take channels 0..2 */
    bool gray = c <= 2;
    if (in->depth == 8) {
        const uint8_t *src = in->data;
        for (size_t i = 0; i < n; i++, src += c, dst += 3) {
            dst[0] = src[0];
            dst[1] = src[gray ? 0 : 1];
            dst[2] = src[gray ? 0 : 2];
        }
    } else {
        const uint16_t *src = in->data;
        for (size_t i = 0; i < n; i++, src += c, dst += 3) {
            dst[0] = (uint8_t)(src[0] >> 8);
            dst[1] = (uint8_t)(src[gray ? 0 : 1] >> 8);
            dst[2] = (uint8_t)(src[gray ? 0 : 2] >> 8);
        }
    }
    return ISEG_STATUS_OK;
}
