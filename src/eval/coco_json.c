/* coco_json.c - streaming COCO JSON loader (yajl's event parser).
 *
 * Ground truth: {"images": [...], "annotations": [...], "categories": [...], ...};
 * results: [ {...}, ... ] (or {"annotations": [...]}). Only the fields the evaluator needs are
 * kept; everything else is skipped without building a tree, so memory stays near the size of
 * what is kept: numbers as doubles, RLE strings as their bytes, polygons as doubles. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <fcntl.h>
#include <float.h>
#include <sys/stat.h>
#include <unistd.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yajl/yajl_parse.h>

#include "eval/coco_impl.h"

/* ---- numbers ---- */

static const long double POW10L[28] = {
    1e0L,  1e1L,  1e2L,  1e3L,  1e4L,  1e5L,  1e6L,  1e7L,  1e8L,  1e9L,
    1e10L, 1e11L, 1e12L, 1e13L, 1e14L, 1e15L, 1e16L, 1e17L, 1e18L, 1e19L,
    1e20L, 1e21L, 1e22L, 1e23L, 1e24L, 1e25L, 1e26L, 1e27L};

static const double POW10[23] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                 1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                                 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

/* Clinger's fast path: a decimal with at most 15 significant digits... more precisely a mantissa
 * below 2^53 and a power of ten up to 22 is one correctly rounded IEEE multiplication or
 * division of two exact doubles. Everything else goes to strtod (also correctly rounded). */
bool iseg__parse_double(const char *s, size_t n, double *out) {
    size_t   i = 0;
    bool     neg = false;
    uint64_t mant = 0;
    int      n_dig = 0, exp10 = 0;
    if (i < n && s[i] == '-') {
        neg = true;
        i++;
    }
    size_t int_start = i;
    while (i < n && s[i] >= '0' && s[i] <= '9') {
        if (n_dig < 19) {
            mant = mant * 10 + (uint64_t)(s[i] - '0');
            if (mant) n_dig++;
        } else {
            goto slow;
        }
        i++;
    }
    if (i == int_start) goto slow;
    if (i < n && s[i] == '.') {
        i++;
        size_t frac_start = i;
        while (i < n && s[i] >= '0' && s[i] <= '9') {
            if (n_dig >= 19) goto slow;
            mant = mant * 10 + (uint64_t)(s[i] - '0');
            if (mant) n_dig++;
            exp10--;
            i++;
        }
        if (i == frac_start) goto slow;
    }
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        bool eneg = false;
        if (i < n && (s[i] == '+' || s[i] == '-')) eneg = s[i++] == '-';
        int e = 0;
        size_t es = i;
        while (i < n && s[i] >= '0' && s[i] <= '9') {
            if (e > 10000) goto slow;
            e = e * 10 + (s[i] - '0');
            i++;
        }
        if (i == es) goto slow;
        exp10 += eneg ? -e : e;
    }
    if (i != n) goto slow;
    if (mant <= ((uint64_t)1 << 53) && exp10 >= -22 && exp10 <= 22) {
        double d = (double)mant;
        d        = exp10 < 0 ? d / POW10[-exp10] : d * POW10[exp10];
        *out     = neg ? -d : d;
        return true;
    }
#if defined(__x86_64__) && LDBL_MANT_DIG == 64
    /* Up to 19 digits (float32 values printed with 17 digits are common in results): one
     * x87 extended operation on exact operands (10^27 < 2^64 * 2^27 is exact) is correctly
     * rounded to 64 bits; rounding that to 53 bits is then correct unless the 64-bit result
     * lies exactly halfway between two doubles (the low 11 bits are 0x400), where the exact
     * value could be on either side: those rare cases go to strtod. */
    if (exp10 >= -27 && exp10 <= 27) {
        long double m = (long double)mant, p = POW10L[exp10 < 0 ? -exp10 : exp10];
        long double r = exp10 < 0 ? m / p : m * p;
        uint64_t    bits;
        memcpy(&bits, &r, sizeof(bits)); /* the 64-bit significand comes first */
        if ((bits & 0x7ff) != 0x400 && mant != 0) {
            double d = (double)r;
            *out     = neg ? -d : d;
            return true;
        }
    }
#endif
slow:;
    char  buf[128];
    char *tmp = n < sizeof(buf) ? buf : iseg__malloc(n + 1);
    if (!tmp) {
        errno = ENOMEM; /* tells the caller this is no malformed number */
        return false;
    }
    memcpy(tmp, s, n);
    tmp[n]    = 0;
    char  *end;
    errno     = 0;
    double d  = strtod(tmp, &end);
    bool   ok = end == tmp + n && n > 0;
    if (tmp != buf) iseg__free(tmp);
    /* JSON allows huge exponents; like Python we accept inf on overflow */
    *out = d;
    return ok;
}

/* ---- parser state ---- */

enum frame {
    F_ROOT_MAP,    /* top-level object */
    F_SECTION,     /* array of images / annotations / categories / results */
    F_ELEM,        /* one element object */
    F_BBOX,        /* bbox array */
    F_POLYS,       /* segmentation: array of rings */
    F_RING,        /* one ring */
    F_RLE,         /* segmentation: {"size", "counts"} */
    F_RLE_SIZE,
    F_RLE_COUNTS,
};

enum section { SEC_NONE, SEC_IMAGES, SEC_ANNS, SEC_CATS };

enum key {
    K_OTHER, K_ID, K_IMAGE_ID, K_CATEGORY_ID, K_AREA, K_BBOX, K_SCORE, K_ISCROWD, K_IGNORE,
    K_SEGMENTATION, K_WIDTH, K_HEIGHT, K_NAME, K_SIZE, K_COUNTS,
};

#define MAX_DEPTH 16

struct pstate {
    struct coco_file *f;
    char             *err;
    size_t            errlen;
    bool              failed;
    enum frame        stack[MAX_DEPTH];
    int               depth;
    int               skip;        /* > 0: inside a value being skipped (nesting level) */
    enum section      section;
    enum key          key;         /* key of the value about to arrive in an F_ELEM/F_RLE */
    /* the element being built */
    struct coco_ann   ann;
    struct coco_img   img;
    struct coco_cat   cat;
    uint32_t          elem_flags;
    size_t            elem_index;  /* file-order index within its section */
    uint64_t          ring_off;    /* raw offset of the current ring's count */
    uint32_t          ring_n;
    uint32_t          size_n;
    uint64_t          counts_off;
    bool              rle_has_str;
    bool              rle_has_list;
};

static const char *section_name(const struct pstate *ps) {
    switch (ps->section) {
    case SEC_IMAGES: return "images";
    case SEC_CATS: return "categories";
    case SEC_ANNS: return ps->f->is_results ? "results" : "annotations";
    default: return "?";
    }
}

__attribute__((format(printf, 2, 3))) static int fail(struct pstate *ps, const char *fmt, ...) {
    if (ps->failed) return 0;
    ps->failed = true;
    char    msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (ps->section != SEC_NONE && ps->depth >= 2)
        snprintf(ps->err, ps->errlen, "%s: %s[%zu]: %s", ps->f->name, section_name(ps),
                 ps->elem_index, msg);
    else snprintf(ps->err, ps->errlen, "%s: %s", ps->f->name, msg);
    return 0;
}

static enum key key_of(const unsigned char *k, size_t n) {
#define KEY(s, v) if (n == sizeof(s) - 1 && memcmp(k, s, n) == 0) return v
    KEY("id", K_ID);
    KEY("image_id", K_IMAGE_ID);
    KEY("category_id", K_CATEGORY_ID);
    KEY("area", K_AREA);
    KEY("bbox", K_BBOX);
    KEY("score", K_SCORE);
    KEY("iscrowd", K_ISCROWD);
    KEY("ignore", K_IGNORE);
    KEY("segmentation", K_SEGMENTATION);
    KEY("width", K_WIDTH);
    KEY("height", K_HEIGHT);
    KEY("name", K_NAME);
    KEY("size", K_SIZE);
    KEY("counts", K_COUNTS);
#undef KEY
    return K_OTHER;
}

static const char *key_name(enum key k) {
    static const char *const names[] = {"?",       "id",      "image_id",     "category_id",
                                        "area",    "bbox",    "score",        "iscrowd",
                                        "ignore",  "segmentation", "width",   "height",
                                        "name",    "size",    "counts"};
    return names[k];
}

static enum frame top(const struct pstate *ps) { return ps->stack[ps->depth - 1]; }

static int push(struct pstate *ps, enum frame fr) {
    if (ps->depth >= MAX_DEPTH) return fail(ps, "nesting too deep");
    ps->stack[ps->depth++] = fr;
    return 1;
}

/* Begin skipping the value that starts now (a map or array). */
static int skip_begin(struct pstate *ps) {
    ps->skip = 1;
    return 1;
}

/* A number is an integer id if it is integral and within int64. */
static bool num_to_int(const char *s, size_t n, int64_t *out) {
    size_t i   = 0;
    bool   neg = false;
    if (i < n && s[i] == '-') {
        neg = true;
        i++;
    }
    if (i == n) return false;
    uint64_t v = 0;
    size_t   j = i;
    for (; j < n && s[j] >= '0' && s[j] <= '9'; j++) {
        if (v > (UINT64_MAX - 9) / 10) return false;
        v = v * 10 + (uint64_t)(s[j] - '0');
    }
    if (j == n) {
        if (neg ? v > (uint64_t)INT64_MAX + 1 : v > (uint64_t)INT64_MAX) return false;
        *out = neg ? (int64_t)(0 - v) : (int64_t)v;
        return true;
    }
    /* 12.0 or 1e3: integral floats are accepted as Python compares them equal to ints */
    double d;
    if (!iseg__parse_double(s, n, &d)) return false;
    if (!(d >= -9.2e18 && d <= 9.2e18) || d != (double)(int64_t)d) return false;
    *out = (int64_t)d;
    return true;
}

/* "iscrowd" or "ignore" (numbers or booleans; Python only asks whether they are truthy) */
static void set_crowd_flag(struct pstate *ps, bool truthy) {
    if (ps->key == K_ISCROWD) {
        ps->elem_flags |= AF_ISCROWD;
        if (truthy) ps->elem_flags |= AF_CROWD;
    } else if (truthy) {
        ps->elem_flags |= AF_IGNORE;
    }
}

static int want_number(struct pstate *ps, const char *what) {
    return fail(ps, "\"%s\" must be a number", what);
}

/* ---- callbacks ---- */

static int number_value(struct pstate *ps, const char *s, size_t n) {
    if (ps->skip) return 1;
    if (ps->depth == 0) return fail(ps, "expected an object or an array at the top level");
    switch (top(ps)) {
    case F_ELEM: {
        int64_t iv;
        double  dv;
        switch (ps->key) {
        case K_ID:
        case K_IMAGE_ID:
        case K_CATEGORY_ID:
        case K_WIDTH:
        case K_HEIGHT:
            if (!num_to_int(s, n, &iv))
                return fail(ps, "\"%s\" must be an integer, got %.*s", key_name(ps->key),
                            (int)(n < 40 ? n : 40), s);
            if (ps->section == SEC_IMAGES) {
                if (ps->key == K_ID) {
                    ps->img.id = iv;
                    ps->elem_flags |= AF_ID;
                } else if (ps->key == K_WIDTH || ps->key == K_HEIGHT) {
                    if (iv < 0 || iv > 1000000)
                        return fail(ps, "\"%s\" out of range: %lld", key_name(ps->key),
                                    (long long)iv);
                    if (ps->key == K_WIDTH) {
                        ps->img.w = (uint32_t)iv;
                        ps->elem_flags |= AF_SIZE;
                    } else {
                        ps->img.h = (uint32_t)iv;
                        ps->elem_flags |= AF_AREA; /* reused: height seen */
                    }
                }
            } else if (ps->section == SEC_CATS) {
                if (ps->key == K_ID) {
                    ps->cat.id = iv;
                    ps->elem_flags |= AF_ID;
                }
            } else {
                if (ps->key == K_ID) {
                    ps->ann.id = iv;
                    ps->elem_flags |= AF_ID;
                } else if (ps->key == K_IMAGE_ID) {
                    ps->ann.image_id = iv;
                    ps->elem_flags |= AF_IMAGE_ID;
                } else if (ps->key == K_CATEGORY_ID) {
                    ps->ann.category_id = iv;
                    ps->elem_flags |= AF_CAT_ID;
                }
            }
            return 1;
        case K_AREA:
        case K_SCORE:
            if (ps->section != SEC_ANNS) return 1;
            if (!iseg__parse_double(s, n, &dv)) return want_number(ps, key_name(ps->key));
            if (ps->key == K_AREA) {
                ps->ann.area = dv;
                ps->elem_flags |= AF_AREA;
            } else {
                ps->ann.score = dv;
                ps->elem_flags |= AF_SCORE;
            }
            return 1;
        case K_ISCROWD:
        case K_IGNORE:
            if (ps->section != SEC_ANNS) return 1;
            if (!iseg__parse_double(s, n, &dv)) return want_number(ps, key_name(ps->key));
            set_crowd_flag(ps, dv != 0);
            return 1;
        case K_BBOX:
        case K_SEGMENTATION:
            if (ps->section != SEC_ANNS) return 1;
            return fail(ps, "\"%s\" must be %s", key_name(ps->key),
                        ps->key == K_BBOX ? "an array [x, y, w, h]"
                                          : "a list of polygons or an RLE object");
        default: return 1;
        }
    }
    case F_BBOX: {
        double dv;
        if (!iseg__parse_double(s, n, &dv)) return want_number(ps, "bbox");
        if (ps->ann.n_bbox >= 4) return fail(ps, "\"bbox\" has more than 4 numbers");
        ps->ann.bbox[ps->ann.n_bbox++] = dv;
        return 1;
    }
    case F_RING: {
        double dv;
        if (!iseg__parse_double(s, n, &dv)) return want_number(ps, "segmentation");
        if (ps->ring_n == UINT32_MAX) return fail(ps, "polygon too long");
        if (!iseg__buf_append(&ps->f->raw[0], &dv, sizeof(dv))) return fail(ps, "out of memory");
        ps->ring_n++;
        return 1;
    }
    case F_RLE_SIZE: {
        int64_t iv;
        if (!num_to_int(s, n, &iv) || iv < 0 || iv > 1000000)
            return fail(ps, "RLE \"size\" must hold two integers in [0, 1000000]");
        if (ps->size_n >= 2) return fail(ps, "RLE \"size\" must hold exactly two numbers");
        if (ps->size_n == 0) ps->ann.seg_h = (uint32_t)iv;
        else ps->ann.seg_w = (uint32_t)iv;
        ps->size_n++;
        return 1;
    }
    case F_RLE_COUNTS: {
        int64_t iv;
        if (!num_to_int(s, n, &iv) || iv < 0 || iv > (int64_t)UINT32_MAX)
            return fail(ps, "RLE \"counts\" must be non-negative integers, got %.*s",
                        (int)(n < 40 ? n : 40), s);
        uint32_t c = (uint32_t)iv;
        if (!iseg__buf_append(&ps->f->raw[0], &c, sizeof(c))) return fail(ps, "out of memory");
        ps->ann.seg_len++;
        return 1;
    }
    case F_RLE:
        if (ps->key == K_SIZE || ps->key == K_COUNTS)
            return fail(ps, "RLE \"%s\" must be %s", key_name(ps->key),
                        ps->key == K_SIZE ? "[height, width]" : "a string or a list");
        return 1;
    case F_POLYS: return fail(ps, "\"segmentation\" polygons must be lists of numbers");
    case F_ROOT_MAP: return 1;
    case F_SECTION: return fail(ps, "elements must be objects");
    }
    return 1;
}

static int on_number(void *ctx, const char *s, size_t n) {
    struct pstate *ps = ctx;
    errno             = 0;
    if (number_value(ps, s, n)) return 1;
    /* a long number whose parse buffer could not be allocated is no malformed number */
    if (errno == ENOMEM) snprintf(ps->err, ps->errlen, "%s: out of memory", ps->f->name);
    return 0;
}

static int on_string(void *ctx, const unsigned char *s, size_t n) {
    struct pstate *ps = ctx;
    if (ps->skip) return 1;
    if (ps->depth == 0) return fail(ps, "expected an object or an array at the top level");
    switch (top(ps)) {
    case F_ELEM:
        if (ps->section == SEC_CATS && ps->key == K_NAME) {
            if (ps->cat.name) return 1;
            ps->cat.name = iseg__malloc(n + 1);
            if (!ps->cat.name) return fail(ps, "out of memory");
            memcpy(ps->cat.name, s, n);
            ps->cat.name[n] = 0;
            return 1;
        }
        if (ps->section == SEC_ANNS || ps->section == SEC_IMAGES) {
            switch (ps->key) {
            case K_ID:
            case K_IMAGE_ID:
            case K_CATEGORY_ID:
            case K_WIDTH:
            case K_HEIGHT:
            case K_AREA:
            case K_SCORE:
                if (ps->section == SEC_IMAGES && (ps->key != K_ID && ps->key != K_WIDTH &&
                                                  ps->key != K_HEIGHT))
                    return 1;
                return fail(ps, "\"%s\" must be a number, got a string", key_name(ps->key));
            case K_BBOX:
                if (ps->section == SEC_IMAGES) return 1;
                return fail(ps, "\"bbox\" must be an array [x, y, w, h]");
            case K_SEGMENTATION:
                if (ps->section == SEC_IMAGES) return 1;
                return fail(ps, "\"segmentation\" must be a list of polygons or an RLE object");
            default: return 1;
            }
        }
        return 1;
    case F_RLE:
        if (ps->key == K_COUNTS) {
            if (ps->rle_has_str || ps->rle_has_list)
                return fail(ps, "RLE has two \"counts\"");
            if (n > UINT32_MAX) return fail(ps, "RLE string too long");
            ps->rle_has_str  = true;
            ps->ann.seg_off  = ps->f->raw[0].len;
            ps->ann.seg_len  = (uint32_t)n;
            ps->ann.seg_kind = SEG_RLE_STR;
            if (!iseg__buf_append(&ps->f->raw[0], s, n)) return fail(ps, "out of memory");
            return 1;
        }
        if (ps->key == K_SIZE) return fail(ps, "RLE \"size\" must be [height, width]");
        return 1;
    case F_BBOX: return fail(ps, "\"bbox\" must hold numbers");
    case F_RING:
    case F_POLYS: return fail(ps, "polygon coordinates must be numbers");
    case F_RLE_SIZE: return fail(ps, "RLE \"size\" must hold numbers");
    case F_RLE_COUNTS: return fail(ps, "RLE \"counts\" list must hold numbers");
    case F_SECTION: return fail(ps, "elements must be objects");
    case F_ROOT_MAP: return 1;
    }
    return 1;
}

static int on_null(void *ctx) {
    struct pstate *ps = ctx;
    if (ps->skip) return 1;
    if (ps->depth == 0) return fail(ps, "expected an object or an array at the top level");
    switch (top(ps)) {
    case F_ELEM:
    case F_RLE:
    case F_ROOT_MAP: return 1; /* null = absent */
    default: return fail(ps, "unexpected null");
    }
}

static int on_bool(void *ctx, int v) {
    struct pstate *ps = ctx;
    if (ps->skip) return 1;
    if (ps->depth == 0) return fail(ps, "expected an object or an array at the top level");
    if (top(ps) == F_ELEM && ps->section == SEC_ANNS) {
        if (ps->key == K_ISCROWD || ps->key == K_IGNORE) {
            set_crowd_flag(ps, v != 0);
            return 1;
        }
        if (ps->key == K_OTHER) return 1;
        return fail(ps, "\"%s\" must not be a boolean", key_name(ps->key));
    }
    if (top(ps) == F_ELEM || top(ps) == F_ROOT_MAP || top(ps) == F_RLE) return 1;
    return fail(ps, "unexpected boolean");
}

static void elem_begin(struct pstate *ps) {
    memset(&ps->ann, 0, sizeof(ps->ann));
    memset(&ps->img, 0, sizeof(ps->img));
    memset(&ps->cat, 0, sizeof(ps->cat));
    ps->elem_flags = 0;
    ps->key        = K_OTHER;
}

static int on_start_map(void *ctx) {
    struct pstate *ps = ctx;
    if (ps->skip) {
        ps->skip++;
        return 1;
    }
    if (ps->depth == 0) {
        if (ps->f->is_results) {
            /* {"annotations": [...]} is accepted as a results file too */
        }
        return push(ps, F_ROOT_MAP);
    }
    switch (top(ps)) {
    case F_ROOT_MAP: return skip_begin(ps); /* value of an unknown top-level key */
    case F_SECTION:
        elem_begin(ps);
        return push(ps, F_ELEM);
    case F_ELEM:
        if (ps->section == SEC_ANNS && ps->key == K_SEGMENTATION) {
            if (ps->ann.seg_kind != SEG_NONE) return fail(ps, "two \"segmentation\" fields");
            ps->size_n = 0;
            ps->rle_has_str = ps->rle_has_list = false;
            ps->key = K_OTHER;
            return push(ps, F_RLE);
        }
        if (ps->section == SEC_ANNS && ps->key == K_BBOX)
            return fail(ps, "\"bbox\" must be an array [x, y, w, h]");
        if (ps->key == K_ID || ps->key == K_IMAGE_ID || ps->key == K_CATEGORY_ID)
            return fail(ps, "\"%s\" must be a number", key_name(ps->key));
        return skip_begin(ps);
    case F_RLE: return skip_begin(ps);
    default: return fail(ps, "unexpected object");
    }
}

static int on_map_key(void *ctx, const unsigned char *k, size_t n) {
    struct pstate *ps = ctx;
    if (ps->skip) return 1;
    switch (top(ps)) {
    case F_ROOT_MAP:
        ps->section = SEC_NONE;
        if (n == 6 && memcmp(k, "images", 6) == 0 && !ps->f->is_results) ps->section = SEC_IMAGES;
        else if (n == 11 && memcmp(k, "annotations", 11) == 0) ps->section = SEC_ANNS;
        else if (n == 10 && memcmp(k, "categories", 10) == 0 && !ps->f->is_results)
            ps->section = SEC_CATS;
        return 1;
    case F_ELEM:
    case F_RLE:
        ps->key = key_of(k, n);
        /* loadRes overwrites a result's id and area: whatever they hold is not an error */
        if (ps->f->is_results && top(ps) == F_ELEM && (ps->key == K_ID || ps->key == K_AREA))
            ps->key = K_OTHER;
        return 1;
    default: return fail(ps, "internal: key in non-object");
    }
}

static int finish_elem(struct pstate *ps) {
    struct coco_file *f = ps->f;
    if (ps->section == SEC_IMAGES) {
        if (!(ps->elem_flags & AF_ID)) return fail(ps, "image without \"id\"");
        if (!(ps->elem_flags & AF_SIZE) || !(ps->elem_flags & AF_AREA))
            return fail(ps, "image %lld without \"width\" and \"height\"", (long long)ps->img.id);
        if (f->n_imgs == f->cap_imgs) {
            size_t cap = f->cap_imgs ? 2 * f->cap_imgs : 1024;
            void  *p   = iseg__realloc_array(f->imgs, cap, sizeof(*f->imgs));
            if (!p) return fail(ps, "out of memory");
            f->imgs     = p;
            f->cap_imgs = cap;
        }
        f->imgs[f->n_imgs++] = ps->img;
    } else if (ps->section == SEC_CATS) {
        if (!(ps->elem_flags & AF_ID)) {
            iseg__free(ps->cat.name);
            ps->cat.name = NULL;
            return fail(ps, "category without \"id\"");
        }
        if (f->n_cats == f->cap_cats) {
            size_t cap = f->cap_cats ? 2 * f->cap_cats : 128;
            void  *p   = iseg__realloc_array(f->cats, cap, sizeof(*f->cats));
            if (!p) {
                iseg__free(ps->cat.name);
                ps->cat.name = NULL;
                return fail(ps, "out of memory");
            }
            f->cats     = p;
            f->cap_cats = cap;
        }
        f->cats[f->n_cats++] = ps->cat;
        ps->cat.name         = NULL;
    } else {
        ps->ann.flags = ps->elem_flags;
        /* bbox evaluation keeps no GT masks, and no masks of results that have a bbox (a
         * segm-branch file needs them for the areas: coco_prepare re-parses then) */
        if (f->no_seg && ps->ann.seg_kind != SEG_NONE &&
            (!f->is_results || (ps->elem_flags & AF_BBOX))) {
            f->raw[0].len    = (size_t)ps->ann.seg_off;
            ps->ann.seg_kind = SEG_NONE;
            ps->ann.seg_len  = 0;
            if (f->is_results) f->seg_dropped = true;
            else ps->ann.flags |= AF_SEG_DROPPED;
        }
        if (f->n_anns == f->cap_anns) {
            size_t cap = f->cap_anns ? 2 * f->cap_anns : 4096;
            void  *p   = iseg__realloc_array(f->anns, cap, sizeof(*f->anns));
            if (!p) return fail(ps, "out of memory");
            f->anns     = p;
            f->cap_anns = cap;
        }
        f->anns[f->n_anns++] = ps->ann;
    }
    ps->elem_index++;
    return 1;
}

static int on_end_map(void *ctx) {
    struct pstate *ps = ctx;
    if (ps->skip) {
        ps->skip--;
        return 1;
    }
    enum frame fr = top(ps);
    ps->depth--;
    if (fr == F_ELEM) {
        if (ps->section == SEC_NONE) return 1;
        return finish_elem(ps);
    }
    if (fr == F_RLE) {
        if (ps->size_n != 2) return fail(ps, "RLE \"size\" must be [height, width]");
        if (!ps->rle_has_str && !ps->rle_has_list) return fail(ps, "RLE without \"counts\"");
        ps->elem_flags |= AF_SIZE;
        ps->key = K_OTHER;
    }
    return 1;
}

static int on_start_array(void *ctx) {
    struct pstate *ps = ctx;
    if (ps->skip) {
        ps->skip++;
        return 1;
    }
    if (ps->depth == 0) {
        if (!ps->f->is_results)
            return fail(ps, "ground truth must be an object with \"images\", \"annotations\" "
                            "and \"categories\"");
        ps->section    = SEC_ANNS;
        ps->elem_index = 0;
        return push(ps, F_SECTION);
    }
    switch (top(ps)) {
    case F_ROOT_MAP:
        if (ps->section == SEC_NONE) return skip_begin(ps);
        ps->elem_index = 0;
        return push(ps, F_SECTION);
    case F_ELEM:
        if (ps->section != SEC_ANNS) return skip_begin(ps);
        if (ps->key == K_BBOX) {
            if (ps->elem_flags & AF_BBOX) return fail(ps, "two \"bbox\" fields");
            ps->ann.n_bbox = 0;
            return push(ps, F_BBOX);
        }
        if (ps->key == K_SEGMENTATION) {
            if (ps->ann.seg_kind != SEG_NONE) return fail(ps, "two \"segmentation\" fields");
            ps->ann.seg_kind = SEG_POLY;
            ps->ann.seg_off  = ps->f->raw[0].len;
            ps->ann.seg_len  = 0;
            return push(ps, F_POLYS);
        }
        if (ps->key == K_ID || ps->key == K_IMAGE_ID || ps->key == K_CATEGORY_ID ||
            ps->key == K_AREA || ps->key == K_SCORE)
            return fail(ps, "\"%s\" must be a number", key_name(ps->key));
        return skip_begin(ps);
    case F_POLYS: {
        uint32_t zero = 0;
        ps->ring_off  = ps->f->raw[0].len;
        ps->ring_n    = 0;
        if (!iseg__buf_append(&ps->f->raw[0], &zero, sizeof(zero))) return fail(ps, "out of memory");
        if (ps->ann.seg_len == UINT32_MAX) return fail(ps, "too many polygons");
        ps->ann.seg_len++;
        return push(ps, F_RING);
    }
    case F_RLE:
        if (ps->key == K_SIZE) {
            if (ps->size_n) return fail(ps, "RLE has two \"size\" fields");
            return push(ps, F_RLE_SIZE);
        }
        if (ps->key == K_COUNTS) {
            if (ps->rle_has_str || ps->rle_has_list) return fail(ps, "RLE has two \"counts\"");
            ps->rle_has_list = true;
            ps->ann.seg_kind = SEG_RLE_COUNTS;
            ps->ann.seg_off  = ps->f->raw[0].len;
            ps->ann.seg_len  = 0;
            return push(ps, F_RLE_COUNTS);
        }
        return skip_begin(ps);
    case F_SECTION: return fail(ps, "elements must be objects");
    case F_RING:
        return fail(ps, "\"segmentation\" must be a list of polygons (lists of numbers)");
    default: return fail(ps, "unexpected array");
    }
}

static int on_end_array(void *ctx) {
    struct pstate *ps = ctx;
    if (ps->skip) {
        ps->skip--;
        return 1;
    }
    enum frame fr = top(ps);
    ps->depth--;
    switch (fr) {
    case F_SECTION:
        if (ps->depth > 0) ps->section = SEC_NONE;
        return 1;
    case F_BBOX:
        if (ps->ann.n_bbox != 0 && ps->ann.n_bbox != 4)
            return fail(ps, "\"bbox\" must hold 4 numbers, got %d", ps->ann.n_bbox);
        if (ps->ann.n_bbox == 4) ps->elem_flags |= AF_BBOX;
        return 1;
    case F_RING:
        memcpy(ps->f->raw[0].data + ps->ring_off, &ps->ring_n, sizeof(ps->ring_n));
        return 1;
    case F_RLE_SIZE: return 1;
    default: return 1;
    }
}

static const yajl_callbacks CALLBACKS = {
    .yajl_null        = on_null,
    .yajl_boolean     = on_bool,
    .yajl_number      = on_number,
    .yajl_string      = on_string,
    .yajl_start_map   = on_start_map,
    .yajl_map_key     = on_map_key,
    .yajl_end_map     = on_end_map,
    .yajl_start_array = on_start_array,
    .yajl_end_array   = on_end_array,
};

/* yajl's allocator hooks route through ours (for OOM injection).
 * OOM fix (found by tests/unit/test_oom.c): yajl 2.1 never checks what its allocator returns
 * (yajl_alloc, yajl_buf, the byte stack dereference NULL at once), so these hooks never return
 * NULL to it. A failed allocation instead longjmps back to the guarded yajl call (y_call),
 * which frees every block yajl still holds, listed here because yajl's own state may be half
 * updated, and reports ENOMEM. None of our callbacks is on the stack then: they never call
 * into yajl. */
#define Y_MAX_BLOCKS 32 /* yajl 2.1 holds at most 8 blocks at a time */

struct yguard {
    jmp_buf jb;
    void   *blocks[Y_MAX_BLOCKS];
    int     n_blocks;
};

static void *y_malloc(void *ctx, size_t n) {
    struct yguard *g = ctx;
    void          *p = g->n_blocks < Y_MAX_BLOCKS ? iseg__malloc(n) : NULL;
    if (!p) longjmp(g->jb, 1);
    g->blocks[g->n_blocks++] = p;
    return p;
}
static void *y_realloc(void *ctx, void *p, size_t n) {
    struct yguard *g = ctx;
    if (!p) return y_malloc(ctx, n);
    void *q = iseg__realloc(p, n);
    if (!q) longjmp(g->jb, 1); /* p is still listed, and freed by y_release */
    for (int i = 0; i < g->n_blocks; i++)
        if (g->blocks[i] == p) g->blocks[i] = q;
    return q;
}
static void y_free(void *ctx, void *p) {
    struct yguard *g = ctx;
    if (!p) return;
    for (int i = 0; i < g->n_blocks; i++)
        if (g->blocks[i] == p) {
            g->blocks[i] = g->blocks[--g->n_blocks];
            break;
        }
    iseg__free(p);
}
/* after an allocation failure: free what yajl holds (instead of yajl_free) */
static void y_release(struct yguard *g) {
    for (int i = 0; i < g->n_blocks; i++) iseg__free(g->blocks[i]);
    g->n_blocks = 0;
}

enum y_op { Y_ALLOC, Y_PARSE, Y_COMPLETE, Y_ERROR };

/* One yajl call under the guard; false if an allocation failed (then nothing is returned).
 * setjmp sits in this small function so that no caller's locals are live across longjmp. */
static bool y_call(struct yguard *g, enum y_op op, void *ps, yajl_handle *h,
                   const unsigned char *p, size_t n, yajl_status *ys, unsigned char **msg) {
    if (setjmp(g->jb)) return false;
    switch (op) {
    case Y_ALLOC: {
        yajl_alloc_funcs af = {y_malloc, y_realloc, y_free, g};
        *h                  = yajl_alloc(&CALLBACKS, &af, ps);
        if (*h) yajl_config(*h, yajl_dont_validate_strings, 1);
        break;
    }
    case Y_PARSE: *ys = yajl_parse(*h, p, n); break;
    case Y_COMPLETE: *ys = yajl_complete_parse(*h); break;
    case Y_ERROR: *msg = yajl_get_error(*h, 0, NULL, 0); break;
    }
    return true;
}

void iseg__coco_file_free(struct coco_file *f) {
    if (!f) return;
    for (size_t i = 0; i < f->n_anns; i++) {
        if (f->anns[i].mask_owned) iseg__free(f->anns[i].mask);
    }
    for (size_t i = 0; i < f->n_cats; i++) iseg__free(f->cats[i].name);
    iseg__free(f->anns);
    iseg__free(f->imgs);
    iseg__free(f->cats);
    for (size_t i = 0; i < COCO_MAX_RAW; i++) iseg__buf_free(&f->raw[i]);
    memset(f, 0, sizeof(*f));
}

/* ---- the parsing driver ---- */

#define CHUNK (1 << 20)

/* Where bytes come from: memory, a seekable file (pread), or a stream (stdin). */
struct source {
    const char *data; /* memory, or NULL */
    int         fd;   /* file descriptor when data is NULL */
    bool        seekable;
};

/* Line and column of byte offset off, for messages (re-reads the file up to off). */
static void line_col(const struct source *src, uint64_t off, size_t *line, size_t *col) {
    *line = 1;
    *col  = 1;
    char    buf[65536];
    uint64_t pos = 0;
    while (pos < off) {
        size_t      want = off - pos < sizeof(buf) ? (size_t)(off - pos) : sizeof(buf);
        const char *p;
        if (src->data) {
            p = src->data + pos;
        } else {
            if (!src->seekable) return;
            ssize_t n = pread(src->fd, buf, want, (off_t)pos);
            if (n <= 0) return;
            want = (size_t)n;
            p    = buf;
        }
        for (size_t i = 0; i < want; i++) {
            if (p[i] == '\n') {
                (*line)++;
                *col = 1;
            } else {
                (*col)++;
            }
        }
        pos += want;
    }
}

/* Parse bytes [start, end) of src, wrapped in prefix and suffix (used to parse one piece of
 * a results array as an array of its own). end == UINT64_MAX: to the end of the input.
 * On a syntax error *err_off is the absolute offset of the error (UINT64_MAX if unknown). */
static enum iseg_status parse_range(struct coco_file *f, const struct source *src,
                                    uint64_t start, uint64_t end, const char *prefix,
                                    const char *suffix, char *err, size_t errlen,
                                    uint64_t *err_off, bool *syntax) {
    struct pstate ps;
    memset(&ps, 0, sizeof(ps));
    ps.f      = f;
    ps.err    = err;
    ps.errlen = errlen;
    err[0]    = 0;
    *err_off  = UINT64_MAX;
    *syntax   = false;
    struct yguard g;
    memset(&g, 0, sizeof(g));
    yajl_handle h   = NULL;
    bool        oom = false;
    if (!y_call(&g, Y_ALLOC, &ps, &h, NULL, 0, NULL, NULL) || !h) {
        y_release(&g);
        snprintf(err, errlen, "%s: out of memory", f->name);
        return ISEG_STATUS_ENOMEM;
    }
    enum iseg_status st    = ISEG_STATUS_OK;
    unsigned char   *chunk = NULL;
    yajl_status      ys    = yajl_status_ok;
    uint64_t         pos   = start, cur_start = 0;
    bool             any   = false, in_data = false;
    if (prefix && *prefix &&
        !y_call(&g, Y_PARSE, &ps, &h, (const unsigned char *)prefix, strlen(prefix), &ys, NULL))
        goto nomem;
    if (!src->data) {
        chunk = iseg__malloc(CHUNK);
        if (!chunk) goto nomem;
    }
    while (ys == yajl_status_ok && pos < end) {
        size_t               want = end - pos < CHUNK ? (size_t)(end - pos) : CHUNK;
        const unsigned char *p;
        size_t               n;
        if (src->data) {
            p = (const unsigned char *)src->data + pos;
            n = want;
        } else {
            ssize_t r = src->seekable ? pread(src->fd, chunk, want, (off_t)pos)
                                      : read(src->fd, chunk, want);
            if (r < 0) {
                if (errno == EINTR) continue;
                snprintf(err, errlen, "%s: read error: %s", f->name, strerror(errno));
                st = ISEG_STATUS_EIO;
                goto out;
            }
            if (r == 0) break;
            p = chunk;
            n = (size_t)r;
        }
        any       = true;
        cur_start = pos;
        in_data   = true;
        if (!y_call(&g, Y_PARSE, &ps, &h, p, n, &ys, NULL)) goto nomem;
        if (ys == yajl_status_ok) pos += n;
    }
    if (ys == yajl_status_ok && !any && start == 0) {
        snprintf(err, errlen, "%s: empty file", f->name);
        st = ISEG_STATUS_EFORMAT;
        goto out;
    }
    if (ys == yajl_status_ok && suffix && *suffix) {
        in_data = false;
        if (!y_call(&g, Y_PARSE, &ps, &h, (const unsigned char *)suffix, strlen(suffix), &ys,
                    NULL))
            goto nomem;
    }
    if (ys == yajl_status_ok) {
        in_data = false;
        if (!y_call(&g, Y_COMPLETE, &ps, &h, NULL, 0, &ys, NULL)) goto nomem;
        if (ys != yajl_status_ok) *err_off = pos;
    } else if (in_data) {
        /* yajl has consumed the offending byte: point at it */
        size_t used = yajl_get_bytes_consumed(h);
        *err_off    = cur_start + (used > 0 ? used - 1 : 0);
    }
    if (ys != yajl_status_ok) {
        if (ps.failed) {
            st = strstr(err, "out of memory") ? ISEG_STATUS_ENOMEM : ISEG_STATUS_EFORMAT;
        } else {
            unsigned char *msg = NULL;
            if (!y_call(&g, Y_ERROR, &ps, &h, NULL, 0, NULL, &msg)) goto nomem;
            char clean[200];
            snprintf(clean, sizeof(clean), "%s", msg ? (const char *)msg : "syntax error");
            for (char *c = clean; *c; c++)
                if (*c == '\n' || *c == '\r') *c = ' ';
            size_t cl = strlen(clean);
            while (cl && clean[cl - 1] == ' ') clean[--cl] = 0;
            snprintf(err, errlen, "invalid JSON: %s", clean);
            if (msg) yajl_free_error(h, msg);
            *syntax = true;
            st      = ISEG_STATUS_EFORMAT;
        }
    }
    goto out;
nomem:
    oom = true;
    snprintf(err, errlen, "%s: out of memory", f->name);
    st = ISEG_STATUS_ENOMEM;
out:
    iseg__free(ps.cat.name);
    iseg__free(chunk);
    if (oom) y_release(&g); /* yajl's state may be half updated: free its blocks directly */
    else yajl_free(h);
    return st;
}

static enum iseg_status parse_whole(struct coco_file *f, const struct source *src,
                                    uint64_t len, char *err, size_t errlen) {
    uint64_t         off;
    bool             syntax;
    enum iseg_status st = parse_range(f, src, 0, len, NULL, NULL, err, errlen, &off, &syntax);
    if (st == ISEG_STATUS_OK && !f->is_results && f->n_imgs == 0 && f->n_anns == 0 &&
        f->n_cats == 0) {
        /* an object without any of the sections is most likely not a COCO file */
        snprintf(err, errlen,
                 "%s: no \"images\", \"annotations\" or \"categories\": not COCO ground truth",
                 f->name);
        st = ISEG_STATUS_EFORMAT;
    }
    if (st != ISEG_STATUS_OK && syntax) {
        char msg[256];
        snprintf(msg, sizeof(msg), "%s", err);
        if (off != UINT64_MAX && (src->data || src->seekable)) {
            size_t line, col;
            line_col(src, off, &line, &col);
            snprintf(err, errlen, "%s:%zu:%zu: %s", f->name, line, col, msg);
        } else if (off != UINT64_MAX) {
            snprintf(err, errlen, "%s: byte %llu: %s", f->name, (unsigned long long)off, msg);
        } else {
            snprintf(err, errlen, "%s: %s", f->name, msg);
        }
    }
    return st;
}

static void reset_file(struct coco_file *f, const char *path, unsigned mode) {
    memset(f, 0, sizeof(*f));
    f->name       = path;
    f->is_results = (mode & COCO_PARSE_RESULTS) != 0;
    f->no_seg     = (mode & COCO_PARSE_NO_SEG) != 0;
    f->n_raw      = 1;
}

enum iseg_status iseg__coco_parse(struct coco_file *f, const char *path, const char *data,
                                  size_t len, unsigned mode, char *err, size_t errlen) {
    reset_file(f, path, mode);
    struct source src = {.data = data, .fd = -1};
    if (data) {
        enum iseg_status st;
        if (len == 0) {
            snprintf(err, errlen, "%s: empty input", path);
            st = ISEG_STATUS_EFORMAT;
        } else {
            st = parse_whole(f, &src, len, err, errlen);
        }
        if (st != ISEG_STATUS_OK) {
            iseg__coco_file_free(f);
            f->name = path;
        }
        return st;
    }
    bool is_stdin = strcmp(path, "-") == 0;
    int  fd       = is_stdin ? STDIN_FILENO : open(path, O_RDONLY);
    if (fd < 0) {
        snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return ISEG_STATUS_EIO;
    }
    struct stat sb;
    src.fd       = fd;
    src.seekable = fstat(fd, &sb) == 0 && S_ISREG(sb.st_mode);
    if (!is_stdin && fstat(fd, &sb) == 0 && S_ISDIR(sb.st_mode)) {
        snprintf(err, errlen, "%s: is a directory", path);
        close(fd);
        return ISEG_STATUS_EIO;
    }
    enum iseg_status st = parse_whole(f, &src, UINT64_MAX, err, errlen);
    if (!is_stdin) close(fd);
    if (st != ISEG_STATUS_OK) {
        iseg__coco_file_free(f);
        f->name = path;
    }
    return st;
}

/* ---- parallel parsing of results arrays ---- */

uint64_t iseg__coco_piece_min = 8u << 20;

/* Pieces of a results array: bytes [start, end) parsed as "[" + piece + "]" (the first piece
 * has its own "[", the last its own "]"). Split points are guessed by looking for "}, {"
 * near evenly spaced offsets; a guess inside a string or a nested value makes some piece
 * fail to parse, and then the whole file is parsed again sequentially, so a wrong guess costs
 * time, never correctness. */
struct piece {
    struct coco_file  f;
    const char       *path;
    struct source     src;
    uint64_t          start, end;
    const char       *prefix, *suffix;
    enum iseg_status  st;
    char              err[1024];
    bool              whole; /* the ground truth, parsed in one piece */
    unsigned          mode;
};

static void piece_task(void *ctx, size_t i, int ith) {
    (void)ith;
    struct piece *p = &((struct piece *)ctx)[i];
    if (p->whole) {
        p->st = iseg__coco_parse(&p->f, p->path, NULL, 0, p->mode, p->err, sizeof(p->err));
        return;
    }
    uint64_t off;
    bool     syntax;
    p->st = parse_range(&p->f, &p->src, p->start, p->end, p->prefix, p->suffix, p->err,
                        sizeof(p->err), &off, &syntax);
}

/* Find "}" ws* "," ws* "{" at or after off; returns the offset of the ',' and of the '{'. */
static bool find_split(int fd, uint64_t off, uint64_t size, uint64_t *comma, uint64_t *brace) {
    char    buf[1 << 16];
    ssize_t n = pread(fd, buf, sizeof(buf), (off_t)off);
    if (n <= 0) return false;
    for (ssize_t i = 0; i < n; i++) {
        if (buf[i] != '}') continue;
        ssize_t j = i + 1;
        while (j < n && (buf[j] == ' ' || buf[j] == '\n' || buf[j] == '\r' || buf[j] == '\t')) j++;
        if (j >= n || buf[j] != ',') continue;
        ssize_t c = j++;
        while (j < n && (buf[j] == ' ' || buf[j] == '\n' || buf[j] == '\r' || buf[j] == '\t')) j++;
        if (j >= n || buf[j] != '{') continue;
        *comma = off + (uint64_t)c;
        *brace = off + (uint64_t)j;
        return *brace < size;
    }
    return false;
}

/* Append n elements of size sz from src to *dst (length *dn); false on ENOMEM. */
static bool append_table(void **dst, size_t *dn, size_t *dcap, const void *src, size_t n,
                         size_t sz) {
    if (n == 0) return true;
    if (*dn + n > *dcap) {
        void *p = iseg__realloc_array(*dst, *dn + n, sz);
        if (!p) return false;
        *dst  = p;
        *dcap = *dn + n;
    }
    memcpy((char *)*dst + *dn * sz, src, n * sz);
    *dn += n;
    return true;
}

/* Move the pieces' images, categories, annotations and raw buffers into one file, in piece
 * order (piece i's segmentation data becomes raw buffer i). */
static enum iseg_status merge_pieces(struct coco_file *out, struct piece *pc, size_t n) {
    struct coco_file *f = &pc[0].f;
    for (size_t i = 1; i < n; i++) {
        struct coco_file *g = &pc[i].f;
        size_t            k = f->n_anns;
        if (!append_table((void **)&f->imgs, &f->n_imgs, &f->cap_imgs, g->imgs, g->n_imgs,
                          sizeof(*g->imgs)) ||
            !append_table((void **)&f->cats, &f->n_cats, &f->cap_cats, g->cats, g->n_cats,
                          sizeof(*g->cats)) ||
            !append_table((void **)&f->anns, &f->n_anns, &f->cap_anns, g->anns, g->n_anns,
                          sizeof(*g->anns)))
            return ISEG_STATUS_ENOMEM;
        for (size_t j = k; j < f->n_anns; j++) f->anns[j].raw_id = (uint8_t)i;
        f->raw[i] = g->raw[0];
        memset(&g->raw[0], 0, sizeof(g->raw[0]));
        g->n_cats = 0; /* the names moved */
        iseg__coco_file_free(g);
    }
    f->n_raw = n;
    *out     = *f;
    memset(f, 0, sizeof(*f));
    return ISEG_STATUS_OK;
}

/* Split points of a ground-truth file: the commas between elements of its top-level
 * "annotations" array, the first one after each multiple of step. An exact scan (strings and
 * nesting are followed), so the pieces "[0, comma)]}" and "{"annotations":[ (comma, next)]}"
 * are valid JSON. Returns the number of commas written (at most cap). */
static size_t scan_gt_splits(int fd, uint64_t size, uint64_t step, uint64_t *commas,
                             size_t cap) {
    char     buf[1 << 16], key[16];
    size_t   n_out = 0, klen = 0;
    int      depth = 0;
    bool     in_str = false, esc = false, cap_key = false, after_key = false, is_ann = false;
    bool     in_ann = false;
    uint64_t next = step;
    for (uint64_t off = 0; off < size && n_out < cap;) {
        ssize_t r = pread(fd, buf, sizeof(buf), (off_t)off);
        if (r <= 0) break;
        for (ssize_t i = 0; i < r; i++) {
            char c = buf[i];
            if (in_str) {
                if (esc) esc = false;
                else if (c == '\\') esc = true;
                else if (c == '"') {
                    in_str = false;
                    if (cap_key) {
                        cap_key   = false;
                        after_key = true;
                        is_ann    = klen == 11 && memcmp(key, "annotations", 11) == 0;
                    }
                } else if (cap_key) {
                    if (klen < sizeof(key)) key[klen++] = c;
                    else klen = sizeof(key) + 1; /* too long to be a key we want */
                }
                continue;
            }
            switch (c) {
            case '"':
                in_str = true;
                if (depth == 1 && !after_key) {
                    cap_key = true;
                    klen    = 0;
                }
                break;
            case ':': break;
            case '{':
            case '[':
                if (depth == 1 && after_key && is_ann && c == '[' && !in_ann && n_out == 0)
                    in_ann = true;
                after_key = false;
                depth++;
                break;
            case '}':
            case ']':
                depth--;
                if (in_ann && depth == 1) return n_out; /* the end of the annotations */
                break;
            case ',':
                if (depth == 1) after_key = false;
                if (in_ann && depth == 2 && off + (uint64_t)i >= next) {
                    commas[n_out++] = off + (uint64_t)i;
                    next            = off + (uint64_t)i + step;
                    if (n_out == cap) return n_out;
                }
                break;
            case ' ': case '\n': case '\r': case '\t': break;
            default:
                if (depth == 1 && after_key) after_key = false; /* a scalar value */
            }
        }
        off += (uint64_t)r;
    }
    return in_ann ? 0 : n_out; /* unterminated: let the sequential parse report it */
}

/* Parse the pieces [p0, p0 + n) of one file and merge them into *out; if any fails, parse
 * the whole file again sequentially for the exact result or message. */
static enum iseg_status finish_pieces(struct coco_file *out, struct piece *pc, size_t n,
                                      const char *path, unsigned mode, char *err,
                                      size_t errlen) {
    bool ok = true;
    for (size_t i = 0; i < n; i++) ok = ok && pc[i].st == ISEG_STATUS_OK;
    if (ok && n > 1) return merge_pieces(out, pc, n);
    if (ok) {
        *out = pc[0].f;
        memset(&pc[0].f, 0, sizeof(pc[0].f));
        return ISEG_STATUS_OK;
    }
    if (n == 1) {
        snprintf(err, errlen, "%s", pc[0].err);
        return pc[0].st;
    }
    /* a split guess was wrong, or the file has an error */
    return iseg__coco_parse(out, path, NULL, 0, mode, err, errlen);
}

static bool first_char_is(int fd, char want) {
    char     c = 0;
    ssize_t  r;
    uint64_t o = 0;
    while ((r = pread(fd, &c, 1, (off_t)o)) == 1 &&
           (c == ' ' || c == '\n' || c == '\r' || c == '\t'))
        o++;
    return r == 1 && c == want;
}

enum iseg_status iseg__coco_parse_pair(struct coco_file *gt, const char *gt_path,
                                       struct coco_file *dt, const char *dt_path,
                                       unsigned no_seg, struct iseg__pool *pool, char *err,
                                       size_t errlen) {
    int              nth = iseg__pool_size(pool);
    enum iseg_status st  = ISEG_STATUS_OK;
    struct piece    *pc  = NULL;
    int              gfd = -1, dfd = -1;
    size_t           ng = 0, np = 0;
    const unsigned   gmode = no_seg, dmode = COCO_PARSE_RESULTS | no_seg;
    memset(gt, 0, sizeof(*gt));
    memset(dt, 0, sizeof(*dt));
    /* regular files can be split: a results array at "}, {" guesses, the GT's annotations
     * array at exact element boundaries; stdin is parsed in one piece */
    struct stat gs, ds;
    uint64_t    gsize = 0, dsize = 0;
    if (strcmp(gt_path, "-") != 0 && (gfd = open(gt_path, O_RDONLY)) >= 0 &&
        fstat(gfd, &gs) == 0 && S_ISREG(gs.st_mode))
        gsize = (uint64_t)gs.st_size;
    if (strcmp(dt_path, "-") != 0 && (dfd = open(dt_path, O_RDONLY)) >= 0 &&
        fstat(dfd, &ds) == 0 && S_ISREG(ds.st_mode))
        dsize = (uint64_t)ds.st_size;
    /* yajl handles GT (numbers) about 1.7x slower per byte than results (strings) */
    uint64_t gwork  = gsize * 17 / 10;
    uint64_t target = (dsize + gwork) / (uint64_t)(2 * nth) + 1;
    if (target < iseg__coco_piece_min) target = iseg__coco_piece_min;
    size_t max_d = nth > 1 && dsize > target && first_char_is(dfd, '[')
                       ? (size_t)(dsize / target) + 1 : 1;
    size_t max_g = nth > 1 && gwork > target && first_char_is(gfd, '{')
                       ? (size_t)(gwork / target) + 1 : 1;
    if (max_d > COCO_MAX_RAW) max_d = COCO_MAX_RAW;
    if (max_g > COCO_MAX_RAW) max_g = COCO_MAX_RAW;
    pc = iseg__calloc(max_g + max_d + 1, sizeof(*pc));
    if (!pc) {
        snprintf(err, errlen, "out of memory");
        st = ISEG_STATUS_ENOMEM;
        goto out;
    }
    /* ground-truth pieces */
    uint64_t gsplit[COCO_MAX_RAW];
    size_t   n_gsplit = max_g > 1 ? scan_gt_splits(gfd, gsize, gsize / max_g + 1, gsplit,
                                                   max_g - 1)
                                  : 0;
    if (n_gsplit == 0) {
        pc[0].whole = true;
        pc[0].path  = gt_path;
        pc[0].mode  = gmode;
        ng          = 1;
    } else {
        uint64_t start = 0;
        for (size_t i = 0; i <= n_gsplit; i++) {
            struct piece *p = &pc[ng++];
            p->path   = gt_path;
            p->mode   = gmode;
            p->start  = start;
            p->end    = i < n_gsplit ? gsplit[i] : UINT64_MAX;
            p->prefix = i ? "{\"annotations\":[" : NULL;
            p->suffix = i < n_gsplit ? "]}" : NULL;
            if (i < n_gsplit) start = gsplit[i] + 1;
            reset_file(&p->f, gt_path, gmode);
            p->src = (struct source){.data = NULL, .fd = gfd, .seekable = true};
        }
    }
    /* results pieces */
    np = ng;
    if (max_d > 1) {
        uint64_t    prev_start  = 0;
        const char *prev_prefix = NULL;
        for (size_t i = 1; i < max_d; i++) {
            uint64_t comma, brace, at = dsize / max_d * i;
            if (at <= prev_start || !find_split(dfd, at, dsize, &comma, &brace)) continue;
            if (comma <= prev_start) continue;
            struct piece *p = &pc[np++];
            p->start  = prev_start;
            p->end    = comma;
            p->prefix = prev_prefix;
            p->suffix = "]";
            prev_start  = brace;
            prev_prefix = "[";
        }
        struct piece *p = &pc[np++];
        p->start  = prev_start;
        p->end    = UINT64_MAX;
        p->prefix = prev_prefix;
        for (size_t i = ng; i < np; i++) {
            pc[i].path = dt_path;
            pc[i].mode = dmode;
            reset_file(&pc[i].f, dt_path, dmode);
            pc[i].src = (struct source){.data = NULL, .fd = dfd, .seekable = true};
        }
    } else {
        struct piece *p = &pc[np++];
        p->whole = true;
        p->path  = dt_path;
        p->mode  = dmode;
    }
    iseg__pool_run(pool, np, 1, piece_task, pc);
    st = finish_pieces(gt, pc, ng, gt_path, gmode, err, errlen);
    if (st == ISEG_STATUS_OK && !gt->is_results && gt->n_imgs == 0 && gt->n_anns == 0 &&
        gt->n_cats == 0) {
        snprintf(err, errlen,
                 "%s: no \"images\", \"annotations\" or \"categories\": not COCO ground truth",
                 gt_path);
        st = ISEG_STATUS_EFORMAT;
    }
    if (st == ISEG_STATUS_OK) st = finish_pieces(dt, pc + ng, np - ng, dt_path, dmode, err, errlen);
    if (st == ISEG_STATUS_ENOMEM && !err[0]) snprintf(err, errlen, "out of memory");
out:
    for (size_t i = 0; pc && i < np; i++) iseg__coco_file_free(&pc[i].f);
    iseg__free(pc);
    if (gfd >= 0) close(gfd);
    if (dfd >= 0) close(dfd);
    if (st != ISEG_STATUS_OK) {
        iseg__coco_file_free(gt);
        iseg__coco_file_free(dt);
        gt->name = gt_path;
        dt->name = dt_path;
    }
    return st;
}
