/* coco_images.c - the "images" list of a COCO file, read with yajl's event parser (nothing
 * else of the file is kept). One parser serves the public iseg_coco_images_read() (strict: every
 * image needs an integer id) and the training dataset reader, which has validated the file with
 * the evaluator's parser already and only needs the file names (iseg__coco_images_parse). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yajl/yajl_parse.h>

#include "core/core_impl.h"
#include "eval/coco_impl.h"

struct ip {
    int                     depth;      /* map/array nesting */
    bool                    in_images;  /* inside the top-level "images" array */
    bool                    images_key; /* last top-level key was "images" */
    bool                    seen;       /* the images array was found */
    int                     field;      /* 1 id, 2 file_name, 3 width, 4 height, 0 other */
    struct iseg_coco_image *v;
    size_t                  n, cap;
    bool                    has_id;
    bool                    open;       /* v[n] is being filled */
    bool                    strict;     /* an integer "id" is required */
    size_t                  stop_after; /* stop at the end of an images array with this many */
    bool                    oom, bad, nul, done;
    char                    msg[160];
};

static int on_start_map(void *ctx) {
    struct ip *p = ctx;
    p->depth++;
    if (p->in_images && p->depth == 3) {
        if (p->n == p->cap) {
            size_t nc = p->cap ? 2 * p->cap : 256;
            struct iseg_coco_image *q = iseg__realloc_array(p->v, nc, sizeof(*q));
            if (!q) {
                p->oom = true;
                return 0;
            }
            p->v = q;
            p->cap = nc;
        }
        memset(&p->v[p->n], 0, sizeof(p->v[p->n]));
        p->has_id = false;
        p->open = true;
    }
    return 1;
}

static int on_end_map(void *ctx) {
    struct ip *p = ctx;
    if (p->in_images && p->depth == 3) {
        struct iseg_coco_image *im = &p->v[p->n];
        if (p->strict && !p->has_id) {
            snprintf(p->msg, sizeof(p->msg), "images[%zu]: no integer \"id\"", p->n);
            p->bad = true;
            return 0;
        }
        if (p->strict && !im->file_name && !(im->file_name = iseg__strdup(""))) {
            p->oom = true;
            return 0;
        }
        p->n++;
        p->open = false;
    }
    p->depth--;
    return 1;
}

static int on_start_array(void *ctx) {
    struct ip *p = ctx;
    p->depth++;
    if (p->depth == 2 && p->images_key) {
        p->in_images = true;
        p->seen = true;
    }
    return 1;
}

static int on_end_array(void *ctx) {
    struct ip *p = ctx;
    if (p->depth == 2 && p->in_images) {
        p->in_images = false;
        if (p->n >= p->stop_after) {
            p->done = true; /* every image wanted: the rest of the file is not needed */
            return 0;
        }
    }
    p->depth--;
    return 1;
}

static int on_map_key(void *ctx, const unsigned char *k, size_t n) {
    struct ip *p = ctx;
    if (p->depth == 1) p->images_key = n == 6 && memcmp(k, "images", 6) == 0;
    if (p->in_images && p->depth == 3) {
        p->field = 0;
        if (n == 2 && !memcmp(k, "id", 2)) p->field = 1;
        else if (n == 9 && !memcmp(k, "file_name", 9)) p->field = 2;
        else if (n == 5 && !memcmp(k, "width", 5)) p->field = 3;
        else if (n == 6 && !memcmp(k, "height", 6)) p->field = 4;
    }
    return 1;
}

static int on_integer(void *ctx, long long v) {
    struct ip *p = ctx;
    if (!(p->in_images && p->depth == 3)) return 1;
    struct iseg_coco_image *im = &p->v[p->n];
    if (p->field == 1) {
        im->id = v;
        p->has_id = true;
    } else if (p->field == 3 || p->field == 4) {
        uint32_t u = v < 0 ? 0 : v > UINT32_MAX ? UINT32_MAX : (uint32_t)v;
        if (p->field == 3) im->width = u;
        else im->height = u;
    }
    p->field = 0;
    return 1;
}

static int on_double(void *ctx, double v) {
    struct ip *p = ctx;
    (void)v;
    if (p->strict && p->in_images && p->depth == 3 && p->field == 1) {
        snprintf(p->msg, sizeof(p->msg), "images[%zu]: \"id\" is not an integer", p->n);
        p->bad = true;
        return 0;
    }
    p->field = 0;
    return 1;
}

static int on_string(void *ctx, const unsigned char *s, size_t n) {
    struct ip *p = ctx;
    if (p->in_images && p->depth == 3 && p->field == 2) {
        struct iseg_coco_image *im = &p->v[p->n];
        if (memchr(s, 0, n)) {
            p->nul = true;
            return 0;
        }
        iseg__free(im->file_name);
        im->file_name = iseg__malloc(n + 1);
        if (!im->file_name) {
            p->oom = true;
            return 0;
        }
        memcpy(im->file_name, s, n);
        im->file_name[n] = '\0';
    }
    p->field = 0;
    return 1;
}

static int on_other(void *ctx) {
    ((struct ip *)ctx)->field = 0;
    return 1;
}
static int on_bool(void *ctx, int b) {
    (void)b;
    return on_other(ctx);
}

static const yajl_callbacks CB = {
    .yajl_null = on_other,
    .yajl_boolean = on_bool,
    .yajl_integer = on_integer,
    .yajl_double = on_double,
    .yajl_string = on_string,
    .yajl_start_map = on_start_map,
    .yajl_map_key = on_map_key,
    .yajl_end_map = on_end_map,
    .yajl_start_array = on_start_array,
    .yajl_end_array = on_end_array,
};

void iseg_coco_images_free(struct iseg_coco_image *v, size_t n) {
    if (!v) return;
    for (size_t i = 0; i < n; i++) iseg__free(v[i].file_name);
    iseg__free(v);
}

enum iseg_status iseg__coco_images_parse(const char *name, const char *path, const char *data,
                                        size_t len, bool strict, size_t stop_after,
                                        struct iseg_coco_image **out, size_t *n_out, char *err,
                                        size_t errlen) {
    ISEG_ASSERT(name && (path || data) && out && n_out);
    *out = NULL;
    *n_out = 0;
    FILE *f = NULL;
    if (!data && !(f = fopen(path, "rb"))) {
        if (err && errlen)
            snprintf(err, errlen, strict ? "%s: cannot open" : "%s: cannot open: %s", name,
                     strerror(errno));
        return ISEG_STATUS_EIO;
    }
    struct ip p;
    memset(&p, 0, sizeof(p));
    p.strict = strict;
    p.stop_after = stop_after;
    yajl_handle h = yajl_alloc(&CB, NULL, &p);
    if (!h) {
        if (f) fclose(f);
        return ISEG_STATUS_ENOMEM;
    }
    if (!strict) yajl_config(h, yajl_dont_validate_strings, 1);
    enum iseg_status st = ISEG_STATUS_OK;
    yajl_status ys = yajl_status_ok;
    bool io_error = false;
    if (data) {
        ys = yajl_parse(h, (const unsigned char *)data, len);
    } else {
        unsigned char buf[1 << 16];
        size_t got;
        while (ys == yajl_status_ok && (got = fread(buf, 1, sizeof(buf), f)) > 0)
            ys = yajl_parse(h, buf, got);
        if (ferror(f)) io_error = true;
    }
    if (ys == yajl_status_ok && !io_error) ys = yajl_complete_parse(h);
    if (io_error) {
        st = ISEG_STATUS_EIO;
        if (err && errlen) snprintf(err, errlen, "%s: read error", name);
    } else if (p.oom) {
        st = ISEG_STATUS_ENOMEM;
        if (err && errlen) snprintf(err, errlen, "%s: out of memory", name);
    } else if (p.nul) {
        st = ISEG_STATUS_EFORMAT;
        if (err && errlen)
            snprintf(err, errlen, "%s: images[%zu]: \"file_name\" holds a NUL character", name,
                     p.n);
    } else if (p.bad) {
        st = ISEG_STATUS_EFORMAT;
        if (err && errlen) snprintf(err, errlen, "%s: %s", name, p.msg);
    } else if (ys != yajl_status_ok && !p.done) {
        st = ISEG_STATUS_EFORMAT;
        if (!strict) {
            /* the evaluator's parser accepted the file: it changed on disk meanwhile */
            if (err && errlen)
                snprintf(err, errlen, "%s: invalid JSON while reading the images' file names",
                         name);
        } else {
            unsigned char *m = yajl_get_error(h, 0, NULL, 0);
            if (err && errlen) {
                snprintf(err, errlen, "%s: invalid JSON: %s", name, m ? (const char *)m : "?");
                char *nl = strchr(err, '\n');
                if (nl) *nl = '\0';
            }
            if (m) yajl_free_error(h, m);
        }
    } else if (strict && !p.seen) {
        st = ISEG_STATUS_EFORMAT;
        if (err && errlen) snprintf(err, errlen, "%s: no \"images\" list", name);
    }
    yajl_free(h);
    if (f) fclose(f);
    if (st != ISEG_STATUS_OK) {
        if (p.open) iseg__free(p.v[p.n].file_name);
        iseg_coco_images_free(p.v, p.n);
        return st;
    }
    *out = p.v;
    *n_out = p.n;
    return ISEG_STATUS_OK;
}

enum iseg_status iseg_coco_images_read(const char *path, struct iseg_coco_image **out,
                                       size_t *n, char *err, size_t errlen) {
    ISEG_ASSERT(path && out && n);
    return iseg__coco_images_parse(path, path, NULL, 0, true, SIZE_MAX, out, n, err, errlen);
}
