/* pq_json.c - COCO panoptic JSON loader (yajl's tree API).
 *
 * Keeps only what pq_compute reads: per annotation image_id, file_name and segments_info
 * (id, category_id, iscrowd, area); the ground truth's categories (id, name, isthing); and the
 * "images" sizes, used to check the PNGs. Keys are looked up as Python's json.load keeps them:
 * the last occurrence of a repeated key wins.
 *
 * yajl's tree parser runs on the C library's allocator (it does not check its allocator's
 * NULL returns, so no failing hooks may be installed for it); its NULL result is checked. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yajl/yajl_tree.h>

#include "panoptic/pq_impl.h"

struct loader {
    struct pq_file *f;
    char           *err;
    size_t          errlen;
};

__attribute__((format(printf, 2, 3))) static enum iseg_status fail(struct loader *ld,
                                                                  const char *fmt, ...) {
    char    msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    snprintf(ld->err, ld->errlen, "%s: %s", ld->f->name, msg);
    return ISEG_STATUS_EFORMAT;
}

static enum iseg_status oom(struct loader *ld) {
    snprintf(ld->err, ld->errlen, "%s: out of memory", ld->f->name);
    return ISEG_STATUS_ENOMEM;
}

/* The value of key in object o (the last occurrence), or NULL. */
static yajl_val get(yajl_val o, const char *key) {
    yajl_val v = NULL;
    for (size_t i = 0; i < o->u.object.len; i++)
        if (strcmp(o->u.object.keys[i], key) == 0) v = o->u.object.values[i];
    return v;
}

/* An integral JSON number (as Python compares 5.0 == 5) within int64. */
static bool as_int(yajl_val v, int64_t *out) {
    if (!YAJL_IS_NUMBER(v)) return false;
    if (v->u.number.flags & YAJL_NUMBER_INT_VALID) {
        *out = v->u.number.i;
        return true;
    }
    if (v->u.number.flags & YAJL_NUMBER_DOUBLE_VALID) {
        double d = v->u.number.d;
        if (d == floor(d) && d >= -9.2e18 && d <= 9.2e18) {
            *out = (int64_t)d;
            return true;
        }
    }
    return false;
}

/* A JSON number or boolean as Python's arithmetic sees it (True == 1). */
static bool as_double(yajl_val v, double *out) {
    if (YAJL_IS_TRUE(v) || YAJL_IS_FALSE(v)) {
        *out = YAJL_IS_TRUE(v) ? 1.0 : 0.0;
        return true;
    }
    if (!YAJL_IS_NUMBER(v)) return false;
    if (v->u.number.flags & YAJL_NUMBER_INT_VALID) {
        *out = (double)v->u.number.i;
        return true;
    }
    if (v->u.number.flags & YAJL_NUMBER_DOUBLE_VALID) {
        *out = v->u.number.d;
        return true;
    }
    return false;
}

static const char *keep_str(struct loader *ld, const char *s) {
    struct pq_file *f = ld->f;
    if (f->n_strs == f->cap_strs) {
        size_t cap = f->cap_strs ? 2 * f->cap_strs : 64;
        char **p   = iseg__realloc_array(f->strs, cap, sizeof(*p));
        if (!p) return NULL;
        f->strs     = p;
        f->cap_strs = cap;
    }
    char *c = iseg__strdup(s);
    if (!c) return NULL;
    f->strs[f->n_strs++] = c;
    return c;
}

static bool get_imgid(struct loader *ld, yajl_val v, struct pq_imgid *out, bool *nomem) {
    memset(out, 0, sizeof(*out));
    *nomem = false;
    if (YAJL_IS_STRING(v)) {
        out->is_str = true;
        out->s      = keep_str(ld, v->u.string);
        if (!out->s) *nomem = true;
        return out->s != NULL;
    }
    return as_int(v, &out->i);
}

int iseg__pq_imgid_cmp(const struct pq_imgid *a, const struct pq_imgid *b) {
    if (a->is_str != b->is_str) return a->is_str ? 1 : -1;
    if (a->is_str) return strcmp(a->s, b->s);
    return a->i < b->i ? -1 : a->i > b->i;
}

const char *iseg__pq_imgid_str(const struct pq_imgid *id, char *buf, size_t n) {
    if (id->is_str) snprintf(buf, n, "\"%s\"", id->s);
    else snprintf(buf, n, "%lld", (long long)id->i);
    return buf;
}

static int cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static int cmp_size(const void *a, const void *b) {
    const struct pq_size *x = a, *y = b;
    /* ties stay in any order: entries repeated with different sizes are never checked */
    return iseg__pq_imgid_cmp(&x->image_id, &y->image_id);
}

static enum iseg_status load_segments(struct loader *ld, yajl_val sv, size_t ai, bool is_gt,
                                      struct pq_ann *ann, int64_t **ids, size_t *ids_cap) {
    struct pq_file *f = ld->f;
    size_t          n = sv->u.array.len;
    if (f->n_seg + n > SIZE_MAX / sizeof(struct pq_seg) / 2) return oom(ld);
    struct pq_seg *segs = iseg__realloc_array(f->segs, f->n_seg + n + 1, sizeof(*segs));
    if (!segs) return oom(ld);
    f->segs      = segs;
    ann->seg_off = f->n_seg;
    ann->n_seg   = n;
    if (n > *ids_cap) {
        int64_t *p = iseg__realloc_array(*ids, n, sizeof(*p));
        if (!p) return oom(ld);
        *ids     = p;
        *ids_cap = n;
    }
    for (size_t j = 0; j < n; j++) {
        yajl_val       e = sv->u.array.values[j];
        struct pq_seg *s = &f->segs[f->n_seg + j];
        if (!YAJL_IS_OBJECT(e))
            return fail(ld, "annotations[%zu].segments_info[%zu]: expected an object", ai, j);
        yajl_val v;
        if (!as_int(v = get(e, "id"), &s->id))
            return fail(ld, "annotations[%zu].segments_info[%zu]: %s \"id\"", ai, j,
                        v ? "non-integer" : "missing");
        if (!as_int(v = get(e, "category_id"), &s->cat))
            return fail(ld, "annotations[%zu].segments_info[%zu] (segment %lld): %s "
                        "\"category_id\"", ai, j, (long long)s->id,
                        v ? "non-integer" : "missing");
        s->cat_idx = -1;
        double d;
        s->crowd = -1;
        if ((v = get(e, "iscrowd")) != NULL) {
            if (!as_double(v, &d))
                return fail(ld, "annotations[%zu].segments_info[%zu] (segment %lld): "
                            "\"iscrowd\" is not a number", ai, j, (long long)s->id);
            s->crowd = d == 1.0;
        } else if (is_gt) {
            return fail(ld, "annotations[%zu].segments_info[%zu] (segment %lld): missing "
                        "\"iscrowd\"", ai, j, (long long)s->id);
        }
        s->area = NAN;
        if (is_gt && (v = get(e, "area")) != NULL && !as_double(v, &s->area))
            return fail(ld, "annotations[%zu].segments_info[%zu] (segment %lld): \"area\" is "
                        "not a number", ai, j, (long long)s->id);
        (*ids)[j] = s->id;
    }
    /* Ids must be unique within an image (the reference would silently merge duplicates). */
    if (n > 1) qsort(*ids, n, sizeof(**ids), cmp_i64);
    for (size_t j = 1; j < n; j++)
        if ((*ids)[j] == (*ids)[j - 1])
            return fail(ld, "annotations[%zu]: segment id %lld appears twice in segments_info",
                        ai, (long long)(*ids)[j]);
    f->n_seg += n;
    return ISEG_STATUS_OK;
}

static enum iseg_status load_anns(struct loader *ld, yajl_val av, bool is_gt) {
    struct pq_file  *f   = ld->f;
    enum iseg_status st  = ISEG_STATUS_OK;
    int64_t         *ids = NULL;
    size_t           cap = 0;
    size_t           n   = av->u.array.len;
    f->anns              = iseg__calloc(n + 1, sizeof(*f->anns));
    if (!f->anns) return oom(ld);
    for (size_t i = 0; i < n; i++) {
        yajl_val       a   = av->u.array.values[i];
        struct pq_ann *ann = &f->anns[i];
        bool           nomem;
        ann->index = i;
        if (!YAJL_IS_OBJECT(a)) {
            st = fail(ld, "annotations[%zu]: expected an object", i);
            goto out;
        }
        yajl_val v = get(a, "image_id");
        if (!get_imgid(ld, v, &ann->image_id, &nomem)) {
            st = nomem ? oom(ld)
                       : fail(ld, "annotations[%zu]: %s \"image_id\" (an integer or a string)",
                              i, v ? "invalid" : "missing");
            goto out;
        }
        char idb[64];
        v = get(a, "file_name");
        if (!YAJL_IS_STRING(v)) {
            st = fail(ld, "annotations[%zu] (image %s): %s \"file_name\"", i,
                      iseg__pq_imgid_str(&ann->image_id, idb, sizeof(idb)),
                      v ? "non-string" : "missing");
            goto out;
        }
        if (!(ann->file_name = keep_str(ld, v->u.string))) {
            st = oom(ld);
            goto out;
        }
        v = get(a, "segments_info");
        if (!YAJL_IS_ARRAY(v)) {
            st = fail(ld, "annotations[%zu] (image %s): %s \"segments_info\" (an array)", i,
                      iseg__pq_imgid_str(&ann->image_id, idb, sizeof(idb)),
                      v ? "invalid" : "missing");
            goto out;
        }
        if ((st = load_segments(ld, v, i, is_gt, ann, &ids, &cap)) != ISEG_STATUS_OK) goto out;
        f->n_ann = i + 1;
    }
out:
    iseg__free(ids);
    return st;
}

static enum iseg_status load_cats(struct loader *ld, yajl_val cv) {
    struct pq_file *f = ld->f;
    size_t          n = cv->u.array.len;
    f->cats           = iseg__calloc(n + 1, sizeof(*f->cats));
    if (!f->cats) return oom(ld);
    for (size_t i = 0; i < n; i++) {
        yajl_val c = cv->u.array.values[i];
        if (!YAJL_IS_OBJECT(c)) return fail(ld, "categories[%zu]: expected an object", i);
        struct pq_cat cat;
        yajl_val      v;
        double        d;
        if (!as_int(v = get(c, "id"), &cat.id))
            return fail(ld, "categories[%zu]: %s \"id\"", i, v ? "non-integer" : "missing");
        if (!as_double(v = get(c, "isthing"), &d))
            return fail(ld, "categories[%zu] (id %lld): %s \"isthing\"", i, (long long)cat.id,
                        v ? "non-numeric" : "missing");
        cat.isthing = d == 1.0;
        cat.name    = "";
        if (YAJL_IS_STRING(v = get(c, "name")) && !(cat.name = keep_str(ld, v->u.string)))
            return oom(ld);
        /* a repeated id keeps its first position and takes the last values (a Python dict) */
        size_t k = 0;
        while (k < f->n_cat && f->cats[k].id != cat.id) k++;
        f->cats[k] = cat;
        if (k == f->n_cat) f->n_cat++;
    }
    return ISEG_STATUS_OK;
}

static enum iseg_status load_sizes(struct loader *ld, yajl_val iv) {
    struct pq_file *f = ld->f;
    size_t          n = iv->u.array.len;
    f->sizes          = iseg__calloc(n + 1, sizeof(*f->sizes));
    if (!f->sizes) return oom(ld);
    for (size_t i = 0; i < n; i++) {
        yajl_val e = iv->u.array.values[i];
        int64_t  w, h;
        bool     nomem;
        if (!YAJL_IS_OBJECT(e)) continue;
        struct pq_size *s = &f->sizes[f->n_size];
        if (!as_int(get(e, "width"), &w) || !as_int(get(e, "height"), &h) || w < 1 || h < 1 ||
            w > UINT32_MAX || h > UINT32_MAX)
            continue; /* the reference never reads "images": only usable sizes are checked */
        if (!get_imgid(ld, get(e, "id"), &s->image_id, &nomem)) {
            if (nomem) return oom(ld);
            continue;
        }
        s->w = (uint32_t)w;
        s->h = (uint32_t)h;
        f->n_size++;
    }
    qsort(f->sizes, f->n_size, sizeof(*f->sizes), cmp_size);
    return ISEG_STATUS_OK;
}

enum iseg_status iseg__pq_parse(struct pq_file *f, const char *buf, size_t len,
                                const char *name, bool is_gt, char *err, size_t errlen) {
    memset(f, 0, sizeof(*f));
    struct loader    ld = {f, err, errlen};
    enum iseg_status st = ISEG_STATUS_OK;
    yajl_val         root = NULL;
    f->name               = iseg__strdup(name);
    if (!f->name) {
        snprintf(err, errlen, "%s: out of memory", name);
        return ISEG_STATUS_ENOMEM;
    }
    if (memchr(buf, 0, len)) return fail(&ld, "invalid JSON: contains a NUL byte");
    char *text = iseg__malloc(len + 1);
    if (!text) return oom(&ld);
    memcpy(text, buf, len);
    text[len] = 0;
    char yerr[256];
    yerr[0] = 0;
    root    = yajl_tree_parse(text, yerr, sizeof(yerr));
    iseg__free(text);
    if (!root) {
        if (!yerr[0]) return oom(&ld);
        /* yajl's message spans lines (it quotes the text around the error): keep the first */
        char *nl = strchr(yerr, '\n');
        if (nl) *nl = 0;
        size_t k = strlen(yerr);
        while (k > 0 && (yerr[k - 1] == ' ' || yerr[k - 1] == '\r')) yerr[--k] = 0;
        return fail(&ld, "invalid JSON: %s", yerr);
    }
    if (!YAJL_IS_OBJECT(root)) {
        st = fail(&ld, "expected a JSON object at the top level");
        goto out;
    }
    yajl_val v = get(root, "annotations");
    if (!YAJL_IS_ARRAY(v)) {
        st = fail(&ld, "%s \"annotations\" (an array)", v ? "invalid" : "missing");
        goto out;
    }
    if ((st = load_anns(&ld, v, is_gt)) != ISEG_STATUS_OK) goto out;
    if (is_gt) {
        v = get(root, "categories");
        if (!YAJL_IS_ARRAY(v)) {
            st = fail(&ld, "%s \"categories\" (an array)", v ? "invalid" : "missing");
            goto out;
        }
        if ((st = load_cats(&ld, v)) != ISEG_STATUS_OK) goto out;
        v = get(root, "images");
        if (YAJL_IS_ARRAY(v) && (st = load_sizes(&ld, v)) != ISEG_STATUS_OK) goto out;
    }
out:
    yajl_tree_free(root);
    return st;
}

void iseg__pq_file_free(struct pq_file *f) {
    if (!f) return;
    for (size_t i = 0; i < f->n_strs; i++) iseg__free(f->strs[i]);
    iseg__free(f->strs);
    iseg__free(f->name);
    iseg__free(f->anns);
    iseg__free(f->segs);
    iseg__free(f->cats);
    iseg__free(f->sizes);
    memset(f, 0, sizeof(*f));
}
