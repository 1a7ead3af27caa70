/* fuse_json.c - reading the JSON inputs of panoptic fusion and conversion (yajl_tree: these
 * files are small, and a results file is held whole anyway), and writing JSON with yajl_gen.
 *
 * Every input is hostile: types are checked before use, sizes and ids are range-checked, and
 * each message names the file and the element ("results.json: result 17: ..."). */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "panoptic/fuse_impl.h"

/* ---- parsing ---- */

static bool depth_ok(const char *s, size_t n) {
    int  depth  = 0;
    bool in_str = false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (in_str) {
            if (c == '\\') i++;
            else if (c == '"') in_str = false;
        } else if (c == '"') {
            in_str = true;
        } else if (c == '[' || c == '{') {
            if (++depth > ISEG__FJ_MAX_DEPTH) return false;
        } else if (c == ']' || c == '}') {
            depth--;
        }
    }
    return true;
}

enum iseg_status iseg__fj_parse(const char *buf, size_t n, const char *name, yajl_val *out,
                                char *err, size_t errlen) {
    *out = NULL;
    if (memchr(buf, 0, n)) {
        snprintf(err, errlen, "%s: invalid JSON: NUL byte at offset %zu", name,
                 (size_t)((const char *)memchr(buf, 0, n) - buf));
        return ISEG_STATUS_EFORMAT;
    }
    if (!depth_ok(buf, n)) {
        snprintf(err, errlen, "%s: JSON nested deeper than %d levels", name, ISEG__FJ_MAX_DEPTH);
        return ISEG_STATUS_EFORMAT;
    }
    char *s = iseg__malloc(n + 1);
    if (!s) {
        snprintf(err, errlen, "%s: out of memory", name);
        return ISEG_STATUS_ENOMEM;
    }
    memcpy(s, buf, n);
    s[n]       = 0;
    char ybuf[256] = "";
    yajl_val v = yajl_tree_parse(s, ybuf, sizeof(ybuf));
    iseg__free(s);
    if (!v) {
        /* yajl's message spans lines (it quotes the input): keep the first */
        char *nl = strchr(ybuf, '\n');
        if (nl) *nl = 0;
        snprintf(err, errlen, "%s: invalid JSON: %s", name, ybuf[0] ? ybuf : "parse error");
        return ISEG_STATUS_EFORMAT;
    }
    *out = v;
    return ISEG_STATUS_OK;
}

enum iseg_status iseg__fj_read(const char *path, yajl_val *out, char *err, size_t errlen) {
    *out    = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return ISEG_STATUS_EIO;
    }
    struct iseg__buf b = {0};
    char             chunk[65536];
    size_t           k;
    enum iseg_status st = ISEG_STATUS_OK;
    while ((k = fread(chunk, 1, sizeof(chunk), f)) > 0) {
        if (!iseg__buf_append(&b, chunk, k)) {
            snprintf(err, errlen, "%s: out of memory", path);
            st = ISEG_STATUS_ENOMEM;
            break;
        }
    }
    if (st == ISEG_STATUS_OK && ferror(f)) {
        snprintf(err, errlen, "%s: read failed: %s", path, strerror(errno));
        st = ISEG_STATUS_EIO;
    }
    fclose(f);
    if (st == ISEG_STATUS_OK) st = iseg__fj_parse(b.data ? b.data : "", b.len, path, out, err, errlen);
    iseg__buf_free(&b);
    return st;
}

yajl_val iseg__fj_get(yajl_val obj, const char *key) {
    if (!YAJL_IS_OBJECT(obj)) return NULL;
    for (size_t i = obj->u.object.len; i-- > 0;)
        if (strcmp(obj->u.object.keys[i], key) == 0) return obj->u.object.values[i];
    return NULL;
}

bool iseg__fj_int(yajl_val v, int64_t *out) {
    if (!YAJL_IS_NUMBER(v)) return false;
    if (v->u.number.flags & YAJL_NUMBER_INT_VALID) {
        *out = v->u.number.i;
        return true;
    }
    if (v->u.number.flags & YAJL_NUMBER_DOUBLE_VALID) {
        double d = v->u.number.d;
        if (d == floor(d) && d >= -9.0e18 && d <= 9.0e18) {
            *out = (int64_t)d;
            return true;
        }
    }
    return false;
}

static bool get_num(yajl_val v, double *out) {
    if (!YAJL_IS_NUMBER(v)) return false;
    if (v->u.number.flags & YAJL_NUMBER_DOUBLE_VALID) *out = v->u.number.d;
    else if (v->u.number.flags & YAJL_NUMBER_INT_VALID) *out = (double)v->u.number.i;
    else return false;
    return isfinite(*out);
}

static size_t arr_len(yajl_val v) { return YAJL_IS_ARRAY(v) ? v->u.array.len : 0; }

/* ---- categories ---- */

bool iseg__fj_sort_idx(size_t *idx, const int64_t *key, size_t n) {
    /* a bottom-up merge sort on indices: O(n log n) and stable */
    size_t *tmp = iseg__malloc_array(n ? n : 1, sizeof(*tmp));
    if (!tmp) return false;
    for (size_t i = 0; i < n; i++) idx[i] = i;
    for (size_t width = 1; width < n; width *= 2) {
        for (size_t lo = 0; lo < n; lo += 2 * width) {
            size_t mid = lo + width < n ? lo + width : n;
            size_t hi  = lo + 2 * width < n ? lo + 2 * width : n;
            size_t a = lo, b = mid, k = lo;
            while (a < mid && b < hi) tmp[k++] = key[idx[b]] < key[idx[a]] ? idx[b++] : idx[a++];
            while (a < mid) tmp[k++] = idx[a++];
            while (b < hi) tmp[k++] = idx[b++];
        }
        memcpy(idx, tmp, n * sizeof(*idx));
    }
    iseg__free(tmp);
    return true;
}

static size_t find_sorted(const size_t *order, size_t n, int64_t id,
                          int64_t (*key)(const void *, size_t), const void *arr) {
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t  mid = lo + (hi - lo) / 2;
        int64_t k   = key(arr, order[mid]);
        if (k == id) return order[mid];
        if (k < id) lo = mid + 1;
        else hi = mid;
    }
    return SIZE_MAX;
}

static int64_t cat_key(const void *arr, size_t i) {
    return ((const struct iseg_fuse_category *)arr)[i].id;
}
static int64_t img_key(const void *arr, size_t i) {
    return ((const struct iseg__fj_image *)arr)[i].id;
}

size_t iseg__fj_cat_find(const struct iseg__fj_cats *c, int64_t id) {
    return find_sorted(c->by_id, c->n, id, cat_key, c->v);
}

void iseg__fj_cats_free(struct iseg__fj_cats *c) {
    iseg__free(c->v);
    iseg__free(c->obj);
    iseg__free(c->by_id);
    memset(c, 0, sizeof(*c));
}

enum iseg_status iseg__fj_categories(yajl_val root, const char *name, struct iseg__fj_cats *out,
                                     char *err, size_t errlen) {
    memset(out, 0, sizeof(*out));
    yajl_val list = YAJL_IS_ARRAY(root) ? root : iseg__fj_get(root, "categories");
    if (!YAJL_IS_ARRAY(list)) {
        snprintf(err, errlen, "%s: expected a list of categories or an object with "
                 "\"categories\"", name);
        return ISEG_STATUS_EFORMAT;
    }
    size_t   n    = list->u.array.len;
    int64_t *keys = NULL;
    out->v        = iseg__malloc_array(n ? n : 1, sizeof(*out->v));
    out->obj      = iseg__malloc_array(n ? n : 1, sizeof(*out->obj));
    out->by_id    = iseg__malloc_array(n ? n : 1, sizeof(*out->by_id));
    keys          = iseg__malloc_array(n ? n : 1, sizeof(*keys));
    if (!out->v || !out->obj || !out->by_id || !keys) {
        snprintf(err, errlen, "%s: out of memory", name);
        iseg__free(keys);
        iseg__fj_cats_free(out);
        return ISEG_STATUS_ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        yajl_val c  = list->u.array.values[i];
        yajl_val th = iseg__fj_get(c, "isthing");
        int64_t  id, t = -1;
        if (!YAJL_IS_OBJECT(c)) {
            snprintf(err, errlen, "%s: category %zu: not an object", name, i);
            goto bad;
        }
        if (!iseg__fj_int(iseg__fj_get(c, "id"), &id)) {
            snprintf(err, errlen, "%s: category %zu: missing or non-integer \"id\"", name, i);
            goto bad;
        }
        if (id < 1 || id > ISEG__FJ_MAX_CAT_ID) {
            snprintf(err, errlen, "%s: category %zu: id %lld outside [1, %lld] (segment ids "
                     "category * 1000 + k must fit in 24 bits)", name, i, (long long)id,
                     (long long)ISEG__FJ_MAX_CAT_ID);
            iseg__free(keys);
            iseg__fj_cats_free(out);
            return ISEG_STATUS_ELIMIT;
        }
        if (YAJL_IS_TRUE(th)) t = 1;
        else if (YAJL_IS_FALSE(th)) t = 0;
        else if (!iseg__fj_int(th, &t)) t = -1;
        if (t != 0 && t != 1) {
            snprintf(err, errlen, "%s: category %lld: missing or invalid \"isthing\" (0 or 1)",
                     name, (long long)id);
            goto bad;
        }
        out->v[i].id      = id;
        out->v[i].isthing = t == 1;
        out->v[i].name    = YAJL_GET_STRING(iseg__fj_get(c, "name"));
        out->obj[i]       = c;
        keys[i]           = id;
    }
    out->n = n;
    if (!iseg__fj_sort_idx(out->by_id, keys, n)) {
        snprintf(err, errlen, "%s: out of memory", name);
        iseg__free(keys);
        iseg__fj_cats_free(out);
        return ISEG_STATUS_ENOMEM;
    }
    for (size_t i = 1; i < n; i++)
        if (keys[out->by_id[i]] == keys[out->by_id[i - 1]]) {
            snprintf(err, errlen, "%s: duplicate category id %lld", name,
                     (long long)keys[out->by_id[i]]);
            goto bad;
        }
    iseg__free(keys);
    return ISEG_STATUS_OK;
bad:
    iseg__free(keys);
    iseg__fj_cats_free(out);
    return ISEG_STATUS_EFORMAT;
}

/* ---- images ---- */

char *iseg__fj_base_name(const char *file_name) {
    const char *b = strrchr(file_name, '/');
    b             = b ? b + 1 : file_name;
    const char *dot = strrchr(b, '.');
    size_t      n   = dot && dot != b ? (size_t)(dot - b) : strlen(b);
    char       *s   = iseg__malloc(n + 1);
    if (!s) return NULL;
    memcpy(s, b, n);
    s[n] = 0;
    return s;
}

void iseg__fj_images_free(struct iseg__fj_image *im, size_t *order, size_t n) {
    if (im)
        for (size_t i = 0; i < n; i++) iseg__free(im[i].base);
    iseg__free(im);
    iseg__free(order);
}

size_t iseg__fj_image_find(const struct iseg__fj_image *im, const size_t *order, size_t n,
                           int64_t id) {
    return find_sorted(order, n, id, img_key, im);
}

static int cmp_str_ptr(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

enum iseg_status iseg__fj_images(yajl_val root, const char *name, bool need_size, bool need_name,
                                 struct iseg__fj_image **out, size_t **order, size_t *n_out,
                                 char *err, size_t errlen) {
    *out            = NULL;
    *order          = NULL;
    *n_out          = 0;
    yajl_val list   = iseg__fj_get(root, "images");
    enum iseg_status st = ISEG_STATUS_EFORMAT;
    if (!YAJL_IS_ARRAY(list)) {
        snprintf(err, errlen, "%s: missing \"images\" list", name);
        return ISEG_STATUS_EFORMAT;
    }
    size_t                 n     = list->u.array.len;
    struct iseg__fj_image *im    = iseg__calloc(n ? n : 1, sizeof(*im));
    size_t                *ord   = iseg__malloc_array(n ? n : 1, sizeof(*ord));
    int64_t               *keys  = iseg__malloc_array(n ? n : 1, sizeof(*keys));
    const char           **names = iseg__malloc_array(n ? n : 1, sizeof(*names));
    if (!im || !ord || !keys || !names) goto nomem;
    for (size_t i = 0; i < n; i++) {
        yajl_val o = list->u.array.values[i];
        int64_t  w = 0, h = 0;
        if (!YAJL_IS_OBJECT(o)) {
            snprintf(err, errlen, "%s: image %zu: not an object", name, i);
            goto fail;
        }
        if (!iseg__fj_int(iseg__fj_get(o, "id"), &im[i].id)) {
            snprintf(err, errlen, "%s: image %zu: missing or non-integer \"id\"", name, i);
            goto fail;
        }
        yajl_val wv = iseg__fj_get(o, "width"), hv = iseg__fj_get(o, "height");
        if (wv || hv || need_size) {
            if (!iseg__fj_int(wv, &w) || !iseg__fj_int(hv, &h) || w < 1 || h < 1 ||
                w > ISEG_IMAGE_MAX_DIM || h > ISEG_IMAGE_MAX_DIM ||
                (uint64_t)w * (uint64_t)h > ISEG_IMAGE_MAX_PIXELS) {
                snprintf(err, errlen, "%s: image %lld: missing or invalid \"width\"/\"height\"",
                         name, (long long)im[i].id);
                goto fail;
            }
        }
        im[i].w         = (uint32_t)w;
        im[i].h         = (uint32_t)h;
        im[i].obj       = o;
        im[i].file_name = YAJL_GET_STRING(iseg__fj_get(o, "file_name"));
        if (im[i].file_name) {
            im[i].base = iseg__fj_base_name(im[i].file_name);
            if (!im[i].base) goto nomem;
        }
        if (need_name && (!im[i].base || !im[i].base[0])) {
            snprintf(err, errlen, "%s: image %lld: missing or empty \"file_name\"", name,
                     (long long)im[i].id);
            goto fail;
        }
        keys[i]  = im[i].id;
        names[i] = im[i].base ? im[i].base : "";
    }
    if (!iseg__fj_sort_idx(ord, keys, n)) goto nomem;
    for (size_t i = 1; i < n; i++)
        if (keys[ord[i]] == keys[ord[i - 1]]) {
            snprintf(err, errlen, "%s: duplicate image id %lld", name, (long long)keys[ord[i]]);
            goto fail;
        }
    if (need_name) {
        qsort(names, n, sizeof(*names), cmp_str_ptr);
        for (size_t i = 1; i < n; i++)
            if (strcmp(names[i], names[i - 1]) == 0) {
                snprintf(err, errlen, "%s: two images have the base name \"%s\" (their output "
                         "PNGs would collide)", name, names[i]);
                goto fail;
            }
    }
    iseg__free(keys);
    iseg__free(names);
    *out   = im;
    *order = ord;
    *n_out = n;
    return ISEG_STATUS_OK;
nomem:
    snprintf(err, errlen, "%s: out of memory", name);
    st = ISEG_STATUS_ENOMEM;
fail:
    iseg__fj_images_free(im, ord, n);
    iseg__free(keys);
    iseg__free(names);
    return st;
}

/* ---- results ---- */

void iseg__fj_results_free(struct iseg__fj_result *r, size_t n) {
    if (r)
        for (size_t i = 0; i < n; i++) iseg_rle_free(&r[i].mask);
    iseg__free(r);
}

/* segmentation -> RLE of size h x w */
static enum iseg_status decode_segm(yajl_val seg, uint32_t h, uint32_t w, struct iseg_rle *out,
                                    char *what, size_t wlen) {
    enum iseg_status st;
    if (YAJL_IS_OBJECT(seg)) {
        yajl_val size = iseg__fj_get(seg, "size"), counts = iseg__fj_get(seg, "counts");
        int64_t  sh, sw;
        if (arr_len(size) != 2 || !iseg__fj_int(size->u.array.values[0], &sh) ||
            !iseg__fj_int(size->u.array.values[1], &sw)) {
            snprintf(what, wlen, "segmentation \"size\" is not [h, w]");
            return ISEG_STATUS_EFORMAT;
        }
        if (sh != (int64_t)h || sw != (int64_t)w) {
            snprintf(what, wlen, "mask size [%lld, %lld] differs from the image's [%u, %u]",
                     (long long)sh, (long long)sw, h, w);
            return ISEG_STATUS_ESHAPE;
        }
        if (YAJL_IS_STRING(counts)) {
            st = iseg_rle_from_string(out, counts->u.string, strlen(counts->u.string), h, w);
        } else if (YAJL_IS_ARRAY(counts)) {
            size_t    m = counts->u.array.len;
            uint32_t *c = iseg__malloc_array(m ? m : 1, sizeof(*c));
            if (!c) return ISEG_STATUS_ENOMEM;
            for (size_t k = 0; k < m; k++) {
                int64_t x;
                if (!iseg__fj_int(counts->u.array.values[k], &x) || x < 0 || x > UINT32_MAX) {
                    iseg__free(c);
                    snprintf(what, wlen, "RLE count %zu is not a count", k);
                    return ISEG_STATUS_EFORMAT;
                }
                c[k] = (uint32_t)x;
            }
            st = iseg_rle_from_counts(out, c, m, h, w);
            iseg__free(c);
        } else {
            snprintf(what, wlen, "segmentation has no \"counts\"");
            return ISEG_STATUS_EFORMAT;
        }
        if (st != ISEG_STATUS_OK && st != ISEG_STATUS_ENOMEM)
            snprintf(what, wlen, "invalid RLE counts (%s)", iseg_status_str(st));
        return st;
    }
    if (YAJL_IS_ARRAY(seg)) {
        /* polygons: the union of the rings */
        size_t           n  = seg->u.array.len;
        struct iseg_rle *rs = iseg__calloc(n ? n : 1, sizeof(*rs));
        double          *xy = NULL;
        st                  = ISEG_STATUS_OK;
        if (!rs) return ISEG_STATUS_ENOMEM;
        for (size_t k = 0; k < n && st == ISEG_STATUS_OK; k++) {
            yajl_val ring = seg->u.array.values[k];
            size_t   m    = arr_len(ring);
            if (!YAJL_IS_ARRAY(ring) || m % 2) {
                snprintf(what, wlen, "polygon %zu is not a list of x, y pairs", k);
                st = ISEG_STATUS_EFORMAT;
                break;
            }
            iseg__free(xy);
            xy = iseg__malloc_array(m ? m : 1, sizeof(*xy));
            if (!xy) {
                st = ISEG_STATUS_ENOMEM;
                break;
            }
            for (size_t j = 0; j < m; j++)
                if (!get_num(ring->u.array.values[j], &xy[j])) {
                    snprintf(what, wlen, "polygon %zu: coordinate %zu is not a number", k, j);
                    st = ISEG_STATUS_EFORMAT;
                    break;
                }
            if (st == ISEG_STATUS_OK) {
                st = iseg_rle_from_poly(&rs[k], xy, m / 2, h, w);
                if (st != ISEG_STATUS_OK && st != ISEG_STATUS_ENOMEM)
                    snprintf(what, wlen, "polygon %zu cannot be rasterised (%s)", k,
                             iseg_status_str(st));
            }
        }
        if (st == ISEG_STATUS_OK) {
            if (n == 0) {
                uint64_t hw = (uint64_t)h * w;
                uint32_t c  = (uint32_t)hw;
                st          = iseg_rle_from_counts(out, &c, 1, h, w);
            } else {
                st = iseg_rle_merge(out, rs, n, false);
            }
        }
        for (size_t k = 0; k < n; k++) iseg_rle_free(&rs[k]);
        iseg__free(rs);
        iseg__free(xy);
        return st;
    }
    snprintf(what, wlen, "missing or invalid \"segmentation\"");
    return ISEG_STATUS_EFORMAT;
}

enum iseg_status iseg__fj_results(yajl_val root, const char *name,
                                  const struct iseg__fj_image *im, const size_t *order,
                                  size_t n_im, const struct iseg__fj_cats *cats,
                                  double score_thresh, struct iseg__fj_result **out, size_t *n_out,
                                  char *err, size_t errlen) {
    *out   = NULL;
    *n_out = 0;
    if (!YAJL_IS_ARRAY(root)) {
        snprintf(err, errlen, "%s: expected a list of results", name);
        return ISEG_STATUS_EFORMAT;
    }
    size_t                  n = root->u.array.len;
    struct iseg__fj_result *r = iseg__calloc(n ? n : 1, sizeof(*r));
    if (!r) {
        snprintf(err, errlen, "%s: out of memory", name);
        return ISEG_STATUS_ENOMEM;
    }
    enum iseg_status st = ISEG_STATUS_OK;
    for (size_t i = 0; i < n; i++) {
        yajl_val o = root->u.array.values[i];
        int64_t  img_id, cat_id;
        char     what[200];
        if (!YAJL_IS_OBJECT(o)) {
            snprintf(err, errlen, "%s: result %zu: not an object", name, i);
            st = ISEG_STATUS_EFORMAT;
            break;
        }
        if (!iseg__fj_int(iseg__fj_get(o, "image_id"), &img_id) ||
            !iseg__fj_int(iseg__fj_get(o, "category_id"), &cat_id) ||
            !get_num(iseg__fj_get(o, "score"), &r[i].score)) {
            snprintf(err, errlen, "%s: result %zu: needs integer \"image_id\" and "
                     "\"category_id\" and a numeric \"score\"", name, i);
            st = ISEG_STATUS_EFORMAT;
            break;
        }
        size_t ii = iseg__fj_image_find(im, order, n_im, img_id);
        if (ii == SIZE_MAX) {
            snprintf(err, errlen, "%s: result %zu: image %lld is not in the images file", name, i,
                     (long long)img_id);
            st = ISEG_STATUS_EFORMAT;
            break;
        }
        size_t ci = iseg__fj_cat_find(cats, cat_id);
        if (ci == SIZE_MAX) {
            snprintf(err, errlen, "%s: result %zu (image %lld): unknown category %lld", name, i,
                     (long long)img_id, (long long)cat_id);
            st = ISEG_STATUS_EFORMAT;
            break;
        }
        if (!cats->v[ci].isthing) {
            snprintf(err, errlen, "%s: result %zu (image %lld): category %lld (%s) is a stuff "
                     "class; instances must be things", name, i, (long long)img_id,
                     (long long)cat_id, cats->v[ci].name ? cats->v[ci].name : "?");
            st = ISEG_STATUS_EFORMAT;
            break;
        }
        r[i].img         = ii;
        r[i].category_id = cat_id;
        if (r[i].score < score_thresh) continue;
        what[0] = 0;
        st = decode_segm(iseg__fj_get(o, "segmentation"), im[ii].h, im[ii].w, &r[i].mask, what,
                         sizeof(what));
        if (st != ISEG_STATUS_OK) {
            if (st == ISEG_STATUS_ENOMEM) snprintf(err, errlen, "%s: out of memory", name);
            else snprintf(err, errlen, "%s: result %zu (image %lld): %s", name, i,
                          (long long)img_id, what);
            break;
        }
    }
    if (st != ISEG_STATUS_OK) {
        iseg__fj_results_free(r, n);
        return st;
    }
    *out   = r;
    *n_out = n;
    return ISEG_STATUS_OK;
}

/* ---- panoptic annotations ---- */

void iseg__fj_annotations_free(struct iseg__fj_ann *a, size_t n) {
    if (a)
        for (size_t i = 0; i < n; i++) iseg__free(a[i].seg);
    iseg__free(a);
}

enum iseg_status iseg__fj_annotations(yajl_val root, const char *name, struct iseg__fj_ann **out,
                                      size_t *n_out, char *err, size_t errlen) {
    *out          = NULL;
    *n_out        = 0;
    yajl_val list = iseg__fj_get(root, "annotations");
    if (!YAJL_IS_ARRAY(list)) {
        snprintf(err, errlen, "%s: missing \"annotations\" list", name);
        return ISEG_STATUS_EFORMAT;
    }
    size_t               n = list->u.array.len;
    struct iseg__fj_ann *a = iseg__calloc(n ? n : 1, sizeof(*a));
    if (!a) goto nomem;
    for (size_t i = 0; i < n; i++) {
        yajl_val o = list->u.array.values[i], si = iseg__fj_get(o, "segments_info");
        if (!YAJL_IS_OBJECT(o) || !iseg__fj_int(iseg__fj_get(o, "image_id"), &a[i].image_id)) {
            snprintf(err, errlen, "%s: annotation %zu: missing or non-integer \"image_id\"", name,
                     i);
            goto bad;
        }
        a[i].file_name = YAJL_GET_STRING(iseg__fj_get(o, "file_name"));
        if (!a[i].file_name || !a[i].file_name[0] || strchr(a[i].file_name, '/')) {
            snprintf(err, errlen, "%s: image %lld: missing \"file_name\" (or it has a '/')",
                     name, (long long)a[i].image_id);
            goto bad;
        }
        if (!YAJL_IS_ARRAY(si)) {
            snprintf(err, errlen, "%s: image %lld: missing \"segments_info\" list", name,
                     (long long)a[i].image_id);
            goto bad;
        }
        size_t m  = si->u.array.len;
        a[i].seg  = iseg__calloc(m ? m : 1, sizeof(*a[i].seg));
        if (!a[i].seg) goto nomem;
        a[i].n_seg = m;
        for (size_t k = 0; k < m; k++) {
            yajl_val s = si->u.array.values[k], c = iseg__fj_get(s, "iscrowd");
            struct iseg__fj_seg *g = &a[i].seg[k];
            int64_t crowd = 0;
            if (!iseg__fj_int(iseg__fj_get(s, "id"), &g->id) ||
                !iseg__fj_int(iseg__fj_get(s, "category_id"), &g->category_id)) {
                snprintf(err, errlen, "%s: image %lld: segment %zu: needs integer \"id\" and "
                         "\"category_id\"", name, (long long)a[i].image_id, k);
                goto bad;
            }
            if (g->id < 1 || g->id > (int64_t)ISEG_FUSE_MAX_ID) {
                snprintf(err, errlen, "%s: image %lld: segment id %lld outside [1, %u]", name,
                         (long long)a[i].image_id, (long long)g->id, ISEG_FUSE_MAX_ID);
                goto bad;
            }
            if (c && !YAJL_IS_TRUE(c) && !YAJL_IS_FALSE(c) && !iseg__fj_int(c, &crowd)) {
                snprintf(err, errlen, "%s: image %lld: segment %lld: invalid \"iscrowd\"", name,
                         (long long)a[i].image_id, (long long)g->id);
                goto bad;
            }
            g->iscrowd = YAJL_IS_TRUE(c) || crowd != 0;
            for (size_t j = 0; j < k; j++)
                if (a[i].seg[j].id == g->id) {
                    snprintf(err, errlen, "%s: image %lld: duplicate segment id %lld", name,
                             (long long)a[i].image_id, (long long)g->id);
                    goto bad;
                }
        }
    }
    *out   = a;
    *n_out = n;
    return ISEG_STATUS_OK;
nomem:
    snprintf(err, errlen, "%s: out of memory", name);
    iseg__fj_annotations_free(a, n);
    return ISEG_STATUS_ENOMEM;
bad:
    iseg__fj_annotations_free(a, n);
    return ISEG_STATUS_EFORMAT;
}

/* ---- writing ---- */

yajl_gen iseg__fj_gen_new(void) {
    yajl_gen g = yajl_gen_alloc(NULL);
    if (g) yajl_gen_config(g, yajl_gen_validate_utf8, 0);
    return g;
}

bool iseg__fj_gen_str(yajl_gen g, const char *s) {
    return yajl_gen_string(g, (const unsigned char *)s, strlen(s)) == yajl_gen_status_ok;
}

bool iseg__fj_gen_int(yajl_gen g, long long x) {
    return yajl_gen_integer(g, x) == yajl_gen_status_ok;
}

bool iseg__fj_gen_value(yajl_gen g, yajl_val v) {
    if (!v) return yajl_gen_null(g) == yajl_gen_status_ok;
    switch (v->type) {
    case yajl_t_string: return iseg__fj_gen_str(g, v->u.string);
    case yajl_t_number:
        return yajl_gen_number(g, v->u.number.r, strlen(v->u.number.r)) == yajl_gen_status_ok;
    case yajl_t_true: return yajl_gen_bool(g, 1) == yajl_gen_status_ok;
    case yajl_t_false: return yajl_gen_bool(g, 0) == yajl_gen_status_ok;
    case yajl_t_null: return yajl_gen_null(g) == yajl_gen_status_ok;
    case yajl_t_array:
        if (yajl_gen_array_open(g) != yajl_gen_status_ok) return false;
        for (size_t i = 0; i < v->u.array.len; i++)
            if (!iseg__fj_gen_value(g, v->u.array.values[i])) return false;
        return yajl_gen_array_close(g) == yajl_gen_status_ok;
    case yajl_t_object:
        if (yajl_gen_map_open(g) != yajl_gen_status_ok) return false;
        for (size_t i = 0; i < v->u.object.len; i++)
            if (!iseg__fj_gen_str(g, v->u.object.keys[i]) ||
                !iseg__fj_gen_value(g, v->u.object.values[i]))
                return false;
        return yajl_gen_map_close(g) == yajl_gen_status_ok;
    default: return false;
    }
}
