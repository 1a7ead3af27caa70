/* dataset.c - a COCO instances dataset for training: the evaluator's JSON parser
 * (iseg__coco_parse), a second streaming pass for the images' file names, validation with a
 * bad-data report, every mask converted once at open into a compressed RLE string, and the
 * per-image sample builder. See include/iseg/dataset.h for the policies. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>


#include "eval/coco_impl.h"
#include "iseg/dataset.h"
#include "rle/rle_impl.h"

/* Builds the sample of image i from an already decoded image (any channels and depth; consumed
 * on every path): the entry point that the fuzz target shares with iseg_dataset_load. */
enum iseg_status iseg__dataset_build_sample(iseg_dataset_t ds, size_t i, struct iseg_image *img,
                                            struct iseg_sample *out, char *err, size_t errlen);

struct ds_cat {
    int64_t id;
    char   *name; /* owned, never NULL */
};

struct ds_img {
    int64_t  id;
    uint32_t w, h;
    size_t   json_index; /* position in "images" */
    char    *file_name;  /* owned */
    size_t   first, n;   /* kept instances: inst[first .. first + n) */
};

struct ds_inst {
    uint64_t off;   /* compressed RLE string at masks + off */
    uint32_t len;
    uint32_t label; /* 1..K */
};

struct iseg_dataset {
    char                      *name;       /* JSON path or name, for messages */
    char                      *images_dir; /* "" for none */
    struct ds_cat             *cats;       /* (n_cats) sorted by id; label = index + 1 */
    size_t                     n_cats;
    struct ds_img             *imgs;       /* (n_imgs) every image, sorted by id */
    size_t                     n_imgs;
    size_t                    *kept;       /* (n_kept) indices into imgs */
    size_t                     n_kept;
    struct ds_inst            *inst;       /* (n_inst) grouped by image, file order */
    size_t                     n_inst;
    char                      *masks;      /* every kept mask's string, back to back */
    struct iseg_dataset_report report;
};

static const char *const ISSUE_NAMES[] = {
    "missing_image", "empty_image",  "crowd",      "no_segmentation", "bad_polygon",
    "bad_rle",       "rle_size",     "empty_mask", "degenerate_box",  "box_outside",
};
_Static_assert(sizeof(ISSUE_NAMES) / sizeof(ISSUE_NAMES[0]) == ISEG_DATA_COUNT,
               "one name per enum iseg_data_issue");

const char *iseg_data_issue_name(enum iseg_data_issue k) {
    return (unsigned)k < ISEG_DATA_COUNT ? ISSUE_NAMES[k] : "?";
}

struct iseg_dataset_params iseg_dataset_default_params(void) {
    struct iseg_dataset_params p;
    memset(&p, 0, sizeof(p));
    p.skip_missing_images = false;
    p.skip_empty_images   = true;
    p.check_files         = true;
    p.n_threads           = 0;
    return p;
}

__attribute__((format(printf, 3, 4))) static void set_err(char *err, size_t errlen,
                                                         const char *fmt, ...) {
    if (!err || errlen == 0) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

__attribute__((format(printf, 3, 4))) static void add_issue(struct iseg_dataset_report *r,
                                                           enum iseg_data_issue k,
                                                           const char *fmt, ...) {
    size_t c = r->count[k]++;
    if (c >= ISEG_DATASET_N_EXAMPLES) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->example[k][c], ISEG_DATASET_EXAMPLE_LEN, fmt, ap);
    va_end(ap);
}

/* The images' file names come from a second streaming pass over the file
 * (iseg__coco_images_parse, shared with iseg_coco_images_read): the evaluator's parser keeps
 * only id, width and height. */

/* ---- sorting (iseg__id_pos tables, eval/coco_impl.h) ---- */

/* Index of id in the sorted table (n entries), or -1. */
static ptrdiff_t find_id(const struct iseg__id_pos *t, size_t n, int64_t id) {
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (t[mid].id < id) lo = mid + 1;
        else hi = mid;
    }
    return lo < n && t[lo].id == id ? (ptrdiff_t)lo : -1;
}

/* ---- mask conversion (parallel, one slot per annotation) ---- */

enum {
    ISSUE_OK    = 0xff,
    ISSUE_NOMEM = 0xfe,
};

/* sub-kinds, for the messages */
enum { POLY_ODD, POLY_FEW, POLY_RANGE, NOSEG_ABSENT, NOSEG_EMPTY };

struct slot {
    char    *str;   /* owned compressed string (polygons, counts), or NULL */
    uint32_t len;
    uint8_t  issue; /* enum iseg_data_issue, ISSUE_OK or ISSUE_NOMEM */
    uint8_t  sub;
    uint32_t a, b;  /* details: ring index and size */
};

struct conv_ctx {
    const struct coco_file *f;
    const struct ds_img    *imgs;   /* sorted by id */
    const int32_t          *ann_img; /* (n_anns) index into imgs */
    struct slot            *slots;
};

static void set_issue(struct slot *s, int issue, int sub, uint32_t a, uint32_t b) {
    s->issue = (uint8_t)issue;
    s->sub   = (uint8_t)sub;
    s->a     = a;
    s->b     = b;
}

/* Polygons -> RLE (the union of the rings, as COCO.annToRLE). */
static void conv_poly(const struct coco_ann *a, const char *raw, uint32_t ih, uint32_t iw,
                      struct slot *s, struct iseg_rle *out) {
    if (a->seg_len == 0) {
        set_issue(s, ISEG_DATA_NO_SEGMENTATION, NOSEG_EMPTY, 0, 0);
        return;
    }
    struct iseg_rle *rings = iseg__calloc(a->seg_len, sizeof(*rings));
    double          *xy    = NULL;
    size_t           cap   = 0, off = 0;
    uint32_t         r     = 0;
    if (!rings) goto nomem;
    for (; r < a->seg_len; r++) {
        uint32_t n;
        memcpy(&n, raw + off, sizeof(n));
        off += sizeof(n);
        if (n % 2) {
            set_issue(s, ISEG_DATA_BAD_POLYGON, POLY_ODD, r, n);
            goto out;
        }
        if (n < 6) {
            set_issue(s, ISEG_DATA_BAD_POLYGON, POLY_FEW, r, n / 2);
            goto out;
        }
        if (n > cap) {
            double *q = iseg__realloc_array(xy, n, sizeof(*q));
            if (!q) goto nomem;
            xy  = q;
            cap = n;
        }
        memcpy(xy, raw + off, (size_t)n * sizeof(double)); /* raw is not aligned */
        off += (size_t)n * sizeof(double);
        enum iseg_status st = iseg_rle_from_poly(&rings[r], xy, n / 2, ih, iw);
        if (st == ISEG_STATUS_ENOMEM) goto nomem;
        if (st != ISEG_STATUS_OK) {
            set_issue(s, ISEG_DATA_BAD_POLYGON, POLY_RANGE, r, 0);
            goto out;
        }
    }
    if (iseg_rle_merge(out, rings, a->seg_len, false) != ISEG_STATUS_OK) goto nomem;
    goto out;
nomem:
    s->issue = ISSUE_NOMEM;
out:
    if (rings)
        for (uint32_t j = 0; j < a->seg_len; j++) iseg_rle_free(&rings[j]);
    iseg__free(rings);
    iseg__free(xy);
}

static void conv_task(void *vctx, size_t i, int ith) {
    (void)ith;
    struct conv_ctx        *c   = vctx;
    const struct coco_ann  *a   = &c->f->anns[i];
    const struct ds_img    *img = &c->imgs[c->ann_img[i]];
    struct slot            *s   = &c->slots[i];
    const char             *raw = c->f->raw[a->raw_id].data ? coco_ann_seg(c->f, a) : NULL;
    s->issue                    = ISSUE_OK;
    if (a->flags & (AF_CROWD | AF_IGNORE)) {
        set_issue(s, ISEG_DATA_CROWD, 0, 0, 0);
        return;
    }
    struct iseg_rle  m    = {0};
    uint64_t         area = 0;
    enum iseg_status st;
    switch (a->seg_kind) {
    case SEG_POLY:
        conv_poly(a, raw, img->h, img->w, s, &m);
        if (s->issue != ISSUE_OK) return;
        area = iseg_rle_area(&m);
        break;
    case SEG_RLE_STR:
    case SEG_RLE_COUNTS:
        if (a->seg_h != img->h || a->seg_w != img->w) {
            set_issue(s, ISEG_DATA_RLE_SIZE, 0, a->seg_h, a->seg_w);
            return;
        }
        if (a->seg_kind == SEG_RLE_STR) {
            double bb[4];
            st = iseg__rle_string_scan(raw, a->seg_len, img->h, img->w, &area, bb);
        } else {
            /* raw is not aligned for uint32 */
            uint32_t *cn = iseg__malloc_array(a->seg_len ? a->seg_len : 1, sizeof(*cn));
            if (!cn) {
                s->issue = ISSUE_NOMEM;
                return;
            }
            if (a->seg_len) memcpy(cn, raw, (size_t)a->seg_len * sizeof(*cn));
            st = iseg_rle_from_counts(&m, cn, a->seg_len, img->h, img->w);
            iseg__free(cn);
            if (st == ISEG_STATUS_OK) area = iseg_rle_area(&m);
        }
        if (st == ISEG_STATUS_ENOMEM) {
            s->issue = ISSUE_NOMEM;
            return;
        }
        if (st != ISEG_STATUS_OK) {
            set_issue(s, ISEG_DATA_BAD_RLE, a->seg_kind == SEG_RLE_STR, 0, 0);
            return;
        }
        break;
    default: set_issue(s, ISEG_DATA_NO_SEGMENTATION, NOSEG_ABSENT, 0, 0); return;
    }
    if (area == 0) {
        set_issue(s, ISEG_DATA_EMPTY_MASK, 0, 0, 0);
        goto out;
    }
    if (a->flags & AF_BBOX) {
        const double *bb = a->bbox;
        if (!(bb[2] >= 1) || !(bb[3] >= 1)) {
            set_issue(s, ISEG_DATA_DEGENERATE_BOX, 0, 0, 0);
            goto out;
        }
        if (!(bb[0] + bb[2] > 0 && bb[1] + bb[3] > 0 && bb[0] < img->w && bb[1] < img->h)) {
            set_issue(s, ISEG_DATA_BOX_OUTSIDE, 0, 0, 0);
            goto out;
        }
    }
    if (a->seg_kind != SEG_RLE_STR) {
        /* strings are kept as they are; polygons and counts are stored compressed */
        size_t len;
        if (iseg_rle_to_string(&m, &s->str, &len) != ISEG_STATUS_OK || len > UINT32_MAX) {
            iseg__free(s->str);
            s->str   = NULL;
            s->issue = ISSUE_NOMEM;
            goto out;
        }
        s->len = (uint32_t)len;
    } else {
        s->len = a->seg_len;
    }
out:
    iseg_rle_free(&m);
}

/* The message of a dropped annotation, for the report. */
static void describe(char *buf, size_t n, const struct coco_ann *a, const struct slot *s,
                     const struct ds_img *img) {
    switch (s->issue) {
    case ISEG_DATA_CROWD:
        snprintf(buf, n, "%s", a->flags & AF_CROWD ? "iscrowd" : "ignore");
        break;
    case ISEG_DATA_NO_SEGMENTATION:
        snprintf(buf, n, "%s",
                 s->sub == NOSEG_EMPTY ? "empty polygon list" : "no \"segmentation\"");
        break;
    case ISEG_DATA_BAD_POLYGON:
        if (s->sub == POLY_ODD)
            snprintf(buf, n, "polygon ring %u has an odd number of coordinates (%u)", s->a, s->b);
        else if (s->sub == POLY_FEW)
            snprintf(buf, n, "polygon ring %u has %u point%s (3 needed)", s->a, s->b,
                     s->b == 1 ? "" : "s");
        else snprintf(buf, n, "polygon ring %u has coordinates out of range", s->a);
        break;
    case ISEG_DATA_BAD_RLE:
        snprintf(buf, n, "%s",
                 s->sub ? "invalid RLE string (bad characters, or counts not summing to h*w)"
                        : "RLE counts do not sum to height*width");
        break;
    case ISEG_DATA_RLE_SIZE:
        snprintf(buf, n, "RLE size [%u, %u] differs from the image's [%u, %u]", s->a, s->b,
                 img->h, img->w);
        break;
    case ISEG_DATA_EMPTY_MASK: snprintf(buf, n, "empty mask"); break;
    case ISEG_DATA_DEGENERATE_BOX:
        snprintf(buf, n, "bbox [%g, %g, %g, %g] is narrower than 1 px", a->bbox[0], a->bbox[1],
                 a->bbox[2], a->bbox[3]);
        break;
    case ISEG_DATA_BOX_OUTSIDE:
        snprintf(buf, n, "bbox [%g, %g, %g, %g] is outside the %ux%u image", a->bbox[0],
                 a->bbox[1], a->bbox[2], a->bbox[3], img->w, img->h);
        break;
    default: snprintf(buf, n, "?"); break;
    }
}

/* ---- open ---- */

static char *join_path(const char *dir, const char *name) {
    size_t dl = dir ? strlen(dir) : 0, nl = strlen(name);
    if (dl == 0 || name[0] == '/') return iseg__strdup(name);
    bool  slash = dir[dl - 1] == '/';
    char *p     = iseg__malloc(dl + nl + 2);
    if (!p) return NULL;
    memcpy(p, dir, dl);
    if (!slash) p[dl++] = '/';
    memcpy(p + dl, name, nl + 1);
    return p;
}

static bool is_file(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0 && !S_ISDIR(sb.st_mode);
}

static void ann_where(char *buf, size_t n, const struct coco_ann *a, size_t i) {
    if (a->flags & AF_ID) snprintf(buf, n, "annotations[%zu] (id %lld)", i, (long long)a->id);
    else snprintf(buf, n, "annotations[%zu]", i);
}

void iseg_dataset_free(iseg_dataset_t ds) {
    if (!ds) return;
    for (size_t i = 0; i < ds->n_cats; i++) iseg__free(ds->cats[i].name);
    for (size_t i = 0; i < ds->n_imgs; i++) iseg__free(ds->imgs[i].file_name);
    iseg__free(ds->cats);
    iseg__free(ds->imgs);
    iseg__free(ds->kept);
    iseg__free(ds->inst);
    iseg__free(ds->masks);
    iseg__free(ds->name);
    iseg__free(ds->images_dir);
    iseg__free(ds);
}

/* Categories: sorted by id, unique; labels 1..K. */
static enum iseg_status build_cats(iseg_dataset_t ds, struct coco_file *f, struct iseg__id_pos **out,
                                   char *err, size_t errlen) {
    size_t         n  = f->n_cats;
    struct iseg__id_pos *ip = iseg__malloc_array(n ? n : 1, sizeof(*ip));
    ds->cats          = iseg__calloc(n ? n : 1, sizeof(*ds->cats));
    if (!ip || !ds->cats) {
        iseg__free(ip);
        return ISEG_STATUS_ENOMEM;
    }
    for (size_t i = 0; i < n; i++) ip[i] = (struct iseg__id_pos){f->cats[i].id, i};
    qsort(ip, n, sizeof(*ip), iseg__cmp_id_pos);
    for (size_t i = 0; i + 1 < n; i++) {
        if (ip[i].id == ip[i + 1].id) {
            set_err(err, errlen, "%s: categories[%zu]: id %lld repeats categories[%zu]",
                    ds->name, ip[i + 1].pos, (long long)ip[i].id, ip[i].pos);
            iseg__free(ip);
            return ISEG_STATUS_EFORMAT;
        }
    }
    for (size_t i = 0; i < n; i++) {
        struct coco_cat *c = &f->cats[ip[i].pos];
        ds->cats[i].id     = c->id;
        ds->cats[i].name   = iseg__strdup(c->name ? c->name : "");
        ds->n_cats         = i + 1;
        if (!ds->cats[i].name) {
            iseg__free(ip);
            return ISEG_STATUS_ENOMEM;
        }
    }
    *out = ip;
    return ISEG_STATUS_OK;
}

/* Images: sorted by id, unique, with a file name and a usable size. */
static enum iseg_status build_imgs(iseg_dataset_t ds, struct coco_file *f,
                                   struct iseg_coco_image *names, size_t n_names,
                                   struct iseg__id_pos **out, char *err, size_t errlen) {
    size_t n = f->n_imgs;
    if (n_names != n) {
        set_err(err, errlen, "%s: internal: %zu images, %zu file names", ds->name, n, n_names);
        return ISEG_STATUS_EINTERNAL;
    }
    struct iseg__id_pos *ip = iseg__malloc_array(n ? n : 1, sizeof(*ip));
    ds->imgs          = iseg__calloc(n ? n : 1, sizeof(*ds->imgs));
    if (!ip || !ds->imgs) {
        iseg__free(ip);
        return ISEG_STATUS_ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        const struct coco_img *im = &f->imgs[i];
        if (!names[i].file_name) {
            set_err(err, errlen, "%s: images[%zu] (id %lld): no \"file_name\"", ds->name, i,
                    (long long)im->id);
            goto bad;
        }
        if (im->w == 0 || im->h == 0 || (uint64_t)im->w * im->h > ISEG_IMAGE_MAX_PIXELS) {
            set_err(err, errlen, "%s: images[%zu] (id %lld): size %ux%u is %s", ds->name, i,
                    (long long)im->id, im->w, im->h,
                    im->w == 0 || im->h == 0 ? "empty" : "too large");
            goto bad;
        }
        ip[i] = (struct iseg__id_pos){im->id, i};
    }
    qsort(ip, n, sizeof(*ip), iseg__cmp_id_pos);
    for (size_t i = 0; i + 1 < n; i++) {
        if (ip[i].id == ip[i + 1].id) {
            set_err(err, errlen, "%s: images[%zu]: id %lld repeats images[%zu]", ds->name,
                    ip[i + 1].pos, (long long)ip[i].id, ip[i].pos);
            goto bad;
        }
    }
    for (size_t i = 0; i < n; i++) {
        struct ds_img *d = &ds->imgs[i];
        size_t         j = ip[i].pos;
        d->id            = f->imgs[j].id;
        d->w             = f->imgs[j].w;
        d->h             = f->imgs[j].h;
        d->json_index    = j;
        d->file_name     = names[j].file_name; /* moved */
        names[j].file_name = NULL;
    }
    ds->n_imgs = n;
    *out       = ip;
    return ISEG_STATUS_OK;
bad:
    iseg__free(ip);
    return ISEG_STATUS_EFORMAT;
}

static enum iseg_status open_common(iseg_dataset_t *out, const char *name, const char *path,
                                    const char *json, size_t len, const char *images_dir,
                                    const struct iseg_dataset_params *params, char *err,
                                    size_t errlen) {
    ISEG_ASSERT(out && name);
    *out = NULL;
    if (err && errlen) err[0] = 0;
    struct iseg_dataset_params p = params ? *params : iseg_dataset_default_params();
    if (p.n_threads < 0) {
        set_err(err, errlen, "dataset: n_threads must be >= 0, got %d", p.n_threads);
        return ISEG_STATUS_EINVAL;
    }
    char             perr[1024];
    struct coco_file f;
    struct iseg_coco_image *names = NULL;
    size_t                  n_names = 0;
    struct iseg__id_pos   *cat_ip = NULL, *img_ip = NULL;
    int32_t         *ann_img = NULL, *ann_cat = NULL;
    struct slot     *slots   = NULL;
    struct iseg__pool *pool  = NULL;
    size_t            *count = NULL;
    enum iseg_status st;

    iseg_dataset_t ds = iseg__calloc(1, sizeof(*ds));
    if (!ds) return ISEG_STATUS_ENOMEM;
    ds->name       = iseg__strdup(name);
    ds->images_dir = iseg__strdup(images_dir ? images_dir : "");
    if (!ds->name || !ds->images_dir) {
        iseg_dataset_free(ds);
        return ISEG_STATUS_ENOMEM;
    }
    /* the evaluator's parser: fast, fuzzed, precise messages */
    st = iseg__coco_parse(&f, ds->name, json, len, 0, perr, sizeof(perr));
    if (st != ISEG_STATUS_OK) {
        set_err(err, errlen, "%s", perr);
        iseg_dataset_free(ds);
        return st;
    }
    st = iseg__coco_images_parse(ds->name, path, json, len, false, f.n_imgs, &names, &n_names,
                                 err, errlen);
    if (st != ISEG_STATUS_OK) goto fail;
    struct iseg_dataset_report *rep = &ds->report;
    rep->n_images_json      = f.n_imgs;
    rep->n_annotations_json = f.n_anns;
    rep->n_categories       = f.n_cats;
    if ((st = build_cats(ds, &f, &cat_ip, err, errlen)) != ISEG_STATUS_OK) goto fail;
    if ((st = build_imgs(ds, &f, names, n_names, &img_ip, err, errlen)) != ISEG_STATUS_OK)
        goto fail;

    /* structural checks on the annotations, in file order: the first error is reported */
    size_t na = f.n_anns;
    ann_img   = iseg__malloc_array(na ? na : 1, sizeof(*ann_img));
    ann_cat   = iseg__malloc_array(na ? na : 1, sizeof(*ann_cat));
    slots     = iseg__calloc(na ? na : 1, sizeof(*slots));
    if (!ann_img || !ann_cat || !slots) goto nomem;
    for (size_t i = 0; i < na; i++) {
        const struct coco_ann *a = &f.anns[i];
        char                   where[96];
        ann_where(where, sizeof(where), a, i);
        if (!(a->flags & AF_IMAGE_ID) || !(a->flags & AF_CAT_ID)) {
            set_err(err, errlen, "%s: %s: no \"%s\"", ds->name, where,
                    !(a->flags & AF_IMAGE_ID) ? "image_id" : "category_id");
            st = ISEG_STATUS_EFORMAT;
            goto fail;
        }
        ptrdiff_t ii = find_id(img_ip, ds->n_imgs, a->image_id);
        if (ii < 0) {
            set_err(err, errlen, "%s: %s: image_id %lld is not in images", ds->name, where,
                    (long long)a->image_id);
            st = ISEG_STATUS_EFORMAT;
            goto fail;
        }
        ptrdiff_t ci = find_id(cat_ip, ds->n_cats, a->category_id);
        if (ci < 0) {
            set_err(err, errlen, "%s: %s: category_id %lld is not in categories", ds->name,
                    where, (long long)a->category_id);
            st = ISEG_STATUS_EFORMAT;
            goto fail;
        }
        ann_img[i] = (int32_t)ii;
        ann_cat[i] = (int32_t)ci;
    }

    /* every mask, converted once (in parallel, each annotation into its own slot) */
    if (iseg__pool_init(&pool, p.n_threads ? p.n_threads : iseg__cpu_count()) != ISEG_STATUS_OK)
        goto nomem;
    struct conv_ctx cc = {.f = &f, .imgs = ds->imgs, .ann_img = ann_img, .slots = slots};
    iseg__pool_run(pool, na, 64, conv_task, &cc);
    iseg__pool_free(pool);
    pool = NULL;
    for (size_t i = 0; i < na; i++)
        if (slots[i].issue == ISSUE_NOMEM) goto nomem;

    /* the report, in file order; kept instances counted per image */
    count = iseg__calloc(ds->n_imgs ? ds->n_imgs : 1, sizeof(*count));
    if (!count) goto nomem;
    size_t   n_inst = 0;
    uint64_t bytes  = 0;
    for (size_t i = 0; i < na; i++) {
        const struct coco_ann *a = &f.anns[i];
        struct slot           *s = &slots[i];
        if (s->issue == ISSUE_OK) {
            count[ann_img[i]]++;
            n_inst++;
            bytes += s->len;
            continue;
        }
        char where[96], what[160];
        if (a->flags & AF_ID)
            snprintf(where, sizeof(where), "annotations[%zu] (id %lld, image %lld)", i,
                     (long long)a->id, (long long)a->image_id);
        else snprintf(where, sizeof(where), "annotations[%zu] (image %lld)", i,
                      (long long)a->image_id);
        describe(what, sizeof(what), a, s, &ds->imgs[ann_img[i]]);
        add_issue(rep, (enum iseg_data_issue)s->issue, "%s: %s", where, what);
    }

    /* image files */
    ds->kept = iseg__malloc_array(ds->n_imgs ? ds->n_imgs : 1, sizeof(*ds->kept));
    if (!ds->kept) goto nomem;
    size_t n_missing = 0, first_missing = SIZE_MAX;
    for (size_t i = 0; i < ds->n_imgs; i++) {
        struct ds_img *im = &ds->imgs[i];
        bool           ok = true;
        if (p.check_files) {
            char *fp = join_path(ds->images_dir, im->file_name);
            if (!fp) goto nomem;
            ok = is_file(fp);
            iseg__free(fp);
        }
        if (!ok) {
            if (n_missing++ == 0) first_missing = i;
            add_issue(rep, ISEG_DATA_MISSING_IMAGE, "images[%zu] (id %lld): %s%s%s not found",
                      im->json_index, (long long)im->id, ds->images_dir,
                      ds->images_dir[0] && im->file_name[0] != '/' ? "/" : "", im->file_name);
            continue;
        }
        if (count[i] == 0 && p.skip_empty_images) {
            add_issue(rep, ISEG_DATA_EMPTY_IMAGE, "images[%zu] (id %lld): %s: no instance",
                      im->json_index, (long long)im->id, im->file_name);
            continue;
        }
        ds->kept[ds->n_kept++] = i;
    }
    if (n_missing && !p.skip_missing_images) {
        const struct ds_img *im = &ds->imgs[first_missing];
        set_err(err, errlen,
                "%s: images[%zu] (id %lld): image file %s%s%s not found (%zu of %zu images "
                "missing)",
                ds->name, im->json_index, (long long)im->id, ds->images_dir,
                ds->images_dir[0] && im->file_name[0] != '/' ? "/" : "", im->file_name,
                n_missing, ds->n_imgs);
        st = ISEG_STATUS_EIO;
        goto fail;
    }

    /* instances grouped by image (file order within an image), masks back to back */
    size_t total = 0;
    for (size_t i = 0; i < ds->n_imgs; i++) {
        ds->imgs[i].first = total;
        total += count[i];
        count[i] = ds->imgs[i].first; /* becomes the fill cursor */
    }
    ds->inst  = iseg__malloc_array(n_inst ? n_inst : 1, sizeof(*ds->inst));
    ds->masks = iseg__malloc(bytes ? (size_t)bytes : 1);
    if (!ds->inst || !ds->masks || bytes > SIZE_MAX) goto nomem;
    uint64_t off = 0;
    for (size_t i = 0; i < na; i++) {
        struct slot *s = &slots[i];
        if (s->issue != ISSUE_OK) continue;
        const struct coco_ann *a   = &f.anns[i];
        struct ds_inst        *d   = &ds->inst[count[ann_img[i]]++];
        const char            *src = s->str ? s->str : coco_ann_seg(&f, a);
        if (s->len) memcpy(ds->masks + off, src, s->len);
        d->off   = off;
        d->len   = s->len;
        d->label = (uint32_t)ann_cat[i] + 1;
        off += s->len;
        ds->imgs[ann_img[i]].n++;
    }
    ds->n_inst = n_inst;
    rep->n_images = ds->n_kept;
    for (size_t k = 0; k < ds->n_kept; k++) rep->n_instances += ds->imgs[ds->kept[k]].n;
    st = ISEG_STATUS_OK;
    goto done;
nomem:
    set_err(err, errlen, "%s: out of memory", ds->name);
    st = ISEG_STATUS_ENOMEM;
fail:
    iseg_dataset_free(ds);
    ds = NULL;
done:
    if (slots)
        for (size_t i = 0; i < f.n_anns; i++) iseg__free(slots[i].str);
    iseg__free(slots);
    iseg__free(ann_img);
    iseg__free(ann_cat);
    iseg__free(count);
    iseg__free(cat_ip);
    iseg__free(img_ip);
    iseg__pool_free(pool);
    iseg_coco_images_free(names, n_names);
    iseg__coco_file_free(&f);
    *out = ds;
    return st;
}

enum iseg_status iseg_dataset_open(iseg_dataset_t *ds, const char *json_path,
                                   const char *images_dir,
                                   const struct iseg_dataset_params *params, char *err,
                                   size_t errlen) {
    ISEG_ASSERT(ds && json_path);
    if (strcmp(json_path, "-") == 0) {
        /* the file is read twice (the second time for the file names) */
        *ds = NULL;
        set_err(err, errlen, "dataset: the JSON must be a file, not standard input");
        return ISEG_STATUS_EINVAL;
    }
    return open_common(ds, json_path, json_path, NULL, 0, images_dir, params, err, errlen);
}

enum iseg_status iseg_dataset_open_mem(iseg_dataset_t *ds, const char *name, const char *json,
                                       size_t len, const char *images_dir,
                                       const struct iseg_dataset_params *params, char *err,
                                       size_t errlen) {
    ISEG_ASSERT(ds && name && (json || len == 0));
    if (len == 0) {
        *ds = NULL;
        set_err(err, errlen, "%s: empty input", name);
        return ISEG_STATUS_EFORMAT;
    }
    return open_common(ds, name, NULL, json, len, images_dir, params, err, errlen);
}

/* ---- getters ---- */

const struct iseg_dataset_report *iseg_dataset_report(iseg_dataset_t ds) {
    ISEG_ASSERT(ds);
    return &ds->report;
}

size_t iseg_dataset_size(iseg_dataset_t ds) {
    ISEG_ASSERT(ds);
    return ds->n_kept;
}

size_t iseg_dataset_num_classes(iseg_dataset_t ds) {
    ISEG_ASSERT(ds);
    return ds->n_cats;
}

int64_t iseg_dataset_category_id(iseg_dataset_t ds, size_t label) {
    ISEG_ASSERT(ds && label >= 1 && label <= ds->n_cats);
    return ds->cats[label - 1].id;
}

const char *iseg_dataset_class_name(iseg_dataset_t ds, size_t label) {
    ISEG_ASSERT(ds && label <= ds->n_cats);
    return label == 0 ? "background" : ds->cats[label - 1].name;
}

static const struct ds_img *kept_img(iseg_dataset_t ds, size_t i) {
    ISEG_ASSERT(ds && i < ds->n_kept);
    return &ds->imgs[ds->kept[i]];
}

int64_t iseg_dataset_image_id(iseg_dataset_t ds, size_t i) { return kept_img(ds, i)->id; }
const char *iseg_dataset_file_name(iseg_dataset_t ds, size_t i) {
    return kept_img(ds, i)->file_name;
}
uint32_t iseg_dataset_image_width(iseg_dataset_t ds, size_t i) { return kept_img(ds, i)->w; }
uint32_t iseg_dataset_image_height(iseg_dataset_t ds, size_t i) { return kept_img(ds, i)->h; }
size_t   iseg_dataset_num_instances(iseg_dataset_t ds, size_t i) { return kept_img(ds, i)->n; }

size_t iseg_dataset_report_format(const struct iseg_dataset_report *r, char *buf, size_t n) {
    ISEG_ASSERT(r && (buf || n == 0));
    struct iseg__buf b = {0};
    bool ok = iseg__buf_printf(&b,
                               "dataset: %zu images (%zu in the JSON), %zu instances, "
                               "%zu categories, %zu annotations in the JSON\n",
                               r->n_images, r->n_images_json, r->n_instances, r->n_categories,
                               r->n_annotations_json);
    for (int k = 0; k < ISEG_DATA_COUNT && ok; k++) {
        if (!r->count[k]) continue;
        const char *what = k == ISEG_DATA_MISSING_IMAGE || k == ISEG_DATA_EMPTY_IMAGE
                               ? "images skipped"
                               : "annotations dropped";
        ok = iseg__buf_printf(&b, "  %-16s %zu %s\n", ISSUE_NAMES[k], r->count[k], what);
        for (size_t e = 0; e < r->count[k] && e < ISEG_DATASET_N_EXAMPLES && ok; e++)
            ok = iseg__buf_printf(&b, "    %s\n", r->example[k][e]);
    }
    size_t need = ok ? b.len : 0;
    if (n) {
        size_t c = need < n ? need : n - 1;
        if (c) memcpy(buf, b.data, c);
        buf[c] = 0;
    }
    iseg__buf_free(&b);
    return need;
}

/* ---- samples ---- */

/* what: the name messages start with */
static enum iseg_status build_sample(iseg_dataset_t ds, size_t i, struct iseg_image *img,
                                     struct iseg_sample *out, const char *what, char *err,
                                     size_t errlen) {
    ISEG_ASSERT(ds && img && out);
    const struct ds_img *im = kept_img(ds, i);
    enum iseg_status     st = ISEG_STATUS_OK;
    memset(out, 0, sizeof(*out));
    if (img->w != im->w || img->h != im->h) {
        set_err(err, errlen, "%s: decoded size %ux%u differs from the JSON's %ux%u (%s: "
                "images[%zu], id %lld)", what, img->w, img->h, im->w, im->h,
                ds->name, im->json_index, (long long)im->id);
        iseg_image_free(img);
        return ISEG_STATUS_ESHAPE;
    }
    if (img->c == 3 && img->depth == 8) {
        out->image = *img; /* moved */
        memset(img, 0, sizeof(*img));
    } else {
        st = iseg_image_to_rgb8(&out->image, img);
        iseg_image_free(img);
        if (st != ISEG_STATUS_OK) goto fail;
    }
    if (im->n) {
        out->inst = iseg__calloc(im->n, sizeof(*out->inst));
        if (!out->inst) {
            st = ISEG_STATUS_ENOMEM;
            goto fail;
        }
    }
    for (size_t k = 0; k < im->n; k++) {
        const struct ds_inst *d = &ds->inst[im->first + k];
        struct iseg_instance *o = &out->inst[k];
        /* validated at open: only ENOMEM can happen here */
        st = iseg_rle_from_string(&o->mask, ds->masks + d->off, d->len, im->h, im->w);
        if (st != ISEG_STATUS_OK) goto fail;
        out->n = k + 1;
        iseg_rle_to_box_xyxy(&o->mask, o->box);
        o->label  = d->label;
    }
    return ISEG_STATUS_OK;
fail:
    iseg_sample_free(out);
    set_err(err, errlen, "%s: %s", what, iseg_status_str(st));
    return st;
}

enum iseg_status iseg__dataset_build_sample(iseg_dataset_t ds, size_t i, struct iseg_image *img,
                                            struct iseg_sample *out, char *err, size_t errlen) {
    return build_sample(ds, i, img, out, kept_img(ds, i)->file_name, err, errlen);
}

enum iseg_status iseg_dataset_load(iseg_dataset_t ds, size_t i, struct iseg_sample *out,
                                   char *err, size_t errlen) {
    ISEG_ASSERT(ds && out);
    const struct ds_img *im = kept_img(ds, i);
    memset(out, 0, sizeof(*out));
    char *path = join_path(ds->images_dir, im->file_name);
    if (!path) {
        set_err(err, errlen, "%s: out of memory", im->file_name);
        return ISEG_STATUS_ENOMEM;
    }
    struct iseg_image img = {0};
    enum iseg_status  st  = iseg_image_read(path, &img, err, errlen);
    if (st == ISEG_STATUS_OK) st = build_sample(ds, i, &img, out, path, err, errlen);
    iseg__free(path);
    return st;
}
