/* jpeg.c - JPEG reading; the only file that talks to libjpeg(-turbo).
 *
 * libjpeg reports errors by calling error_exit(), whose default prints and exit()s, and reports
 * warnings through emit_message(), whose default prints to stderr. Both are replaced: errors
 * format libjpeg's message into the decoder state and longjmp() back to decode(), which frees
 * everything and returns a status; warnings are dropped, except "Premature end of JPEG file"
 * (the data ran out and libjpeg would pad the rest of the image with grey), which we treat as
 * an error so that a truncated download never passes for a photograph.
 *
 * Decisions, documented in image.h: output is 8-bit gray (c = 1) or RGB (c = 3); CMYK/YCCK are
 * converted to RGB with PIL's formula; EXIF orientation is ignored; the size limits are checked
 * on the header before jpeg_start_decompress() allocates anything large. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <jpeglib.h>
#include <jerror.h>

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

/* ---- libjpeg error manager ---- */

struct jerr {
    struct jpeg_error_mgr pub; /* first: libjpeg casts cinfo->err to this */
    jmp_buf               jb;
    enum iseg_status      st;
    char                  msg[JMSG_LENGTH_MAX + 64];
};

static void on_error_exit(j_common_ptr ci) {
    struct jerr *e = (struct jerr *)ci->err;
    e->st = e->pub.msg_code == JERR_OUT_OF_MEMORY ? ISEG_STATUS_ENOMEM : ISEG_STATUS_EFORMAT;
    e->pub.format_message(ci, e->msg);
    longjmp(e->jb, 1);
}

/* level -1: a warning; 0 and up: trace messages. Nothing is ever printed. */
static void on_emit_message(j_common_ptr ci, int level) {
    struct jerr *e = (struct jerr *)ci->err;
    if (level >= 0) return;
    e->pub.num_warnings++;
    if (e->pub.msg_code == JWRN_JPEG_EOF) {
        /* libjpeg would insert a fake EOI and return grey rows: stop here instead. Leaving
         * through longjmp from a warning is as safe as from error_exit, since the decoder is
         * destroyed right after. */
        e->st = ISEG_STATUS_EFORMAT;
        e->pub.format_message(ci, e->msg);
        longjmp(e->jb, 1);
    }
}

static void on_output_message(j_common_ptr ci) { (void)ci; }

/* Called by libjpeg once per iMCU row while it reads the data (all the scans of a progressive
 * file are consumed inside jpeg_start_decompress()); bounds the work of files with thousands of
 * tiny scans, each of which costs a pass over the whole coefficient buffer. */
static void on_progress(j_common_ptr ci) {
    j_decompress_ptr d = (j_decompress_ptr)ci;
    if (d->input_scan_number > ISEG_JPEG_MAX_SCANS) {
        struct jerr *e = (struct jerr *)ci->err;
        e->st          = ISEG_STATUS_EFORMAT;
        snprintf(e->msg, sizeof(e->msg), "too many scans in the JPEG file (more than %d)",
                 ISEG_JPEG_MAX_SCANS);
        longjmp(e->jb, 1);
    }
}

/* ---- CMYK ---- */

/* PIL's MULDIV255: a * b / 255 rounded, exact for a, b in 0..255. */
static inline uint8_t muldiv255(unsigned a, unsigned b) {
    unsigned t = a * b + 128;
    return (uint8_t)(((t >> 8) + t) >> 8);
}

/* One row of w CMYK samples (as libjpeg returns them) to RGB. Adobe files (the only common
 * kind, written by Photoshop) store inverted CMYK, which PIL reads as "CMYK;I" and converts
 * with R = (255 - K) - (255 - K) * C / 255; the same arithmetic on the same values here. */
static void cmyk_row_to_rgb(uint8_t *rgb, const uint8_t *cmyk, uint32_t w, bool inverted) {
    for (uint32_t x = 0; x < w; x++) {
        unsigned c = cmyk[4 * x], m = cmyk[4 * x + 1], y = cmyk[4 * x + 2], k = cmyk[4 * x + 3];
        if (inverted) c = 255 - c, m = 255 - m, y = 255 - y, k = 255 - k;
        unsigned nk    = 255 - k;
        rgb[3 * x]     = (uint8_t)(nk - muldiv255(c, nk));
        rgb[3 * x + 1] = (uint8_t)(nk - muldiv255(m, nk));
        rgb[3 * x + 2] = (uint8_t)(nk - muldiv255(y, nk));
    }
}

/* ---- decoding ---- */

/* lim is never NULL here (a parameter reassigned before setjmp() could be clobbered). */
static enum iseg_status decode(const uint8_t *buf, size_t n, const struct iseg_image_limits *lim,
                               const char *name, struct iseg_image *out, char *err,
                               size_t errlen) {
    memset(out, 0, sizeof(*out));
    if (n == 0) {
        set_err(err, errlen, "%s: empty file (not a JPEG)", name);
        return ISEG_STATUS_EFORMAT;
    }
    if (n < 2 || buf[0] != 0xFF || buf[1] != 0xD8) {
        set_err(err, errlen, "%s: not a JPEG file (no SOI marker)", name);
        return ISEG_STATUS_EFORMAT;
    }

    struct jpeg_decompress_struct cinfo;
    struct jpeg_progress_mgr      progress;
    struct jerr                   jerr;
    /* written after setjmp() and read after longjmp(): must be volatile */
    uint8_t *volatile row   = NULL;
    volatile bool      made = false;

    memset(&cinfo, 0, sizeof(cinfo));
    cinfo.err                  = jpeg_std_error(&jerr.pub);
    jerr.pub.error_exit        = on_error_exit;
    jerr.pub.emit_message      = on_emit_message;
    jerr.pub.output_message    = on_output_message;
    jerr.st                    = ISEG_STATUS_OK;
    jerr.msg[0]                = '\0';
    progress.progress_monitor  = on_progress;
    if (setjmp(jerr.jb)) {
        set_err(err, errlen, "%s: %s", name, jerr.msg);
        goto out_destroy;
    }
    jpeg_create_decompress(&cinfo);
    made           = true;
    cinfo.progress = &progress;
    /* jpeg_mem_src takes an unsigned long size; buffers beyond that are not JPEGs we read */
    if ((uint64_t)n > (uint64_t)(unsigned long)-1) {
        jerr.st = ISEG_STATUS_ELIMIT;
        set_err(err, errlen, "%s: JPEG data too large (%zu bytes)", name, n);
        goto out_destroy;
    }
    jpeg_mem_src(&cinfo, buf, (unsigned long)n);
    jpeg_read_header(&cinfo, TRUE);

    uint32_t w = cinfo.image_width, h = cinfo.image_height;
    if (w == 0 || h == 0) { /* libjpeg refuses these itself; never allocate 0 bytes */
        jerr.st = ISEG_STATUS_EFORMAT;
        set_err(err, errlen, "%s: empty JPEG image (%" PRIu32 " x %" PRIu32 ")", name, w, h);
        goto out_destroy;
    }
    if (w > lim->max_width || h > lim->max_height || (uint64_t)w * h > lim->max_pixels) {
        jerr.st = ISEG_STATUS_ELIMIT;
        set_err(err, errlen,
                "%s: image too large: %" PRIu32 " x %" PRIu32 " exceeds the limit "
                "(%" PRIu32 " x %" PRIu32 ", %" PRIu64 " pixels)",
                name, w, h, lim->max_width, lim->max_height, lim->max_pixels);
        goto out_destroy;
    }

    uint32_t c;
    bool     cmyk = false;
    switch (cinfo.jpeg_color_space) {
    case JCS_GRAYSCALE:
        cinfo.out_color_space = JCS_GRAYSCALE;
        c                     = 1;
        break;
    case JCS_YCbCr:
    case JCS_RGB:
        cinfo.out_color_space = JCS_RGB;
        c                     = 3;
        break;
    case JCS_CMYK:
    case JCS_YCCK:
        cinfo.out_color_space = JCS_CMYK; /* libjpeg converts YCCK to CMYK; we go on to RGB */
        c                     = 3;
        cmyk                  = true;
        break;
    default:
        jerr.st = ISEG_STATUS_EFORMAT;
        set_err(err, errlen, "%s: unsupported JPEG colour space (%d components)", name,
                cinfo.num_components);
        goto out_destroy;
    }

    /* Not zeroed (libjpeg writes every row, and on error the image is freed): a few hostile
     * header bytes can ask for a large image, and zeroing would touch all of its pages before
     * the missing data is noticed. */
    size_t nbytes;
    void  *data = NULL;
    if (iseg__mul_size_ok((size_t)w * h, c, &nbytes)) data = iseg__malloc(nbytes);
    if (!data) {
        jerr.st = ISEG_STATUS_ENOMEM;
        set_err(err, errlen, "%s: out of memory allocating a %" PRIu32 " x %" PRIu32 " image",
                name, w, h);
        goto out_destroy;
    }
    *out = (struct iseg_image){.w = w, .h = h, .c = c, .depth = 8, .data = data};
    if (cmyk) {
        row = iseg__malloc_array(w, 4);
        if (!row) {
            jerr.st = ISEG_STATUS_ENOMEM;
            set_err(err, errlen, "%s: out of memory", name);
            goto out_destroy;
        }
    }

    jpeg_start_decompress(&cinfo);
    if (cinfo.output_width != w || cinfo.output_height != h ||
        cinfo.output_components != (int)(cmyk ? 4 : c)) {
        jerr.st = ISEG_STATUS_EINTERNAL;
        set_err(err, errlen, "%s: internal error: libjpeg output %u x %u x %d, expected %" PRIu32
                             " x %" PRIu32 " x %" PRIu32,
                name, (unsigned)cinfo.output_width, (unsigned)cinfo.output_height,
                cinfo.output_components, w, h, cmyk ? 4 : c);
        goto out_destroy;
    }
    bool     inverted = cinfo.saw_Adobe_marker;
    uint8_t *px       = out->data;
    size_t   stride   = (size_t)w * c;
    while (cinfo.output_scanline < h) {
        uint32_t   y  = cinfo.output_scanline;
        JSAMPROW   rp = cmyk ? row : px + (size_t)y * stride;
        JDIMENSION k  = jpeg_read_scanlines(&cinfo, &rp, 1);
        if (k != 1) { /* cannot happen with a memory source (it never suspends) */
            jerr.st = ISEG_STATUS_EINTERNAL;
            set_err(err, errlen, "%s: internal error: libjpeg suspended", name);
            goto out_destroy;
        }
        if (cmyk) cmyk_row_to_rgb(px + (size_t)y * stride, row, w, inverted);
    }
    /* Reads up to EOI: a file whose pixels are complete but whose end is missing still counts
     * as truncated (the PNG reader treats a missing IEND the same way). */
    jpeg_finish_decompress(&cinfo);
    jerr.st = ISEG_STATUS_OK;

out_destroy:
    if (made) jpeg_destroy_decompress(&cinfo);
    iseg__free(row);
    if (jerr.st != ISEG_STATUS_OK) iseg_image_free(out);
    return jerr.st;
}

enum iseg_status iseg_jpeg_read_mem_limits(const void *buf, size_t n,
                                           const struct iseg_image_limits *lim,
                                           struct iseg_image *out, char *err, size_t errlen) {
    ISEG_ASSERT(out && (buf || n == 0));
    struct iseg_image_limits dflt = iseg_image_default_limits();
    return decode(buf, n, lim ? lim : &dflt, "<memory>", out, err, errlen);
}

enum iseg_status iseg_jpeg_read_mem(const void *buf, size_t n, struct iseg_image *out,
                                    char *err, size_t errlen) {
    return iseg_jpeg_read_mem_limits(buf, n, NULL, out, err, errlen);
}

enum iseg_status iseg_jpeg_read(const char *path, struct iseg_image *out, char *err,
                                size_t errlen) {
    ISEG_ASSERT(path && out);
    memset(out, 0, sizeof(*out));
    struct iseg__buf buf = {0};
    enum iseg_status st  = iseg__read_file_magic(path, "\xFF\xD8", 2, &buf, err, errlen);
    if (st == ISEG_STATUS_OK) {
        struct iseg_image_limits dflt = iseg_image_default_limits();
        st = decode((const uint8_t *)buf.data, buf.len, &dflt, path, out, err, errlen);
    }
    iseg__buf_free(&buf);
    return st;
}
