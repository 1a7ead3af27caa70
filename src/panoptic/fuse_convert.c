/* fuse_convert.c - panoptic format conversions: COCO panoptic <-> 2-channel PNGs, and COCO
 * panoptic -> COCO instances JSON (things, compressed RLE). Rules in panoptic_fuse.h. */
#define _POSIX_C_SOURCE 200809L
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "panoptic/fuse_impl.h"

struct iseg_panoptic_convert_params iseg_panoptic_convert_default_params(void) {
    struct iseg_panoptic_convert_params p = {
        .offset = ISEG_FUSE_OFFSET, .crowd_instance = 255, .void_category = 0,
        .results = false, .n_threads = 0,
    };
    return p;
}

/* ---- shared pieces ---- */

/* one per image: status, message and whatever the conversion produces */
struct cv_slot {
    enum iseg_status          st;
    char                      err[512];
    struct iseg_fuse_segment *segs;   /* from_2ch */
    size_t                    n_segs;
    char                    **counts; /* to_instances: RLE strings per segment (NULL: none) */
    uint64_t                 *area;   /* to_instances, per segment */
    uint32_t                 *bbox;   /* to_instances, 4 per segment */
    uint32_t                  h, w;
};

static void slot_free(struct cv_slot *s, size_t n_seg) {
    if (s->counts)
        for (size_t k = 0; k < n_seg; k++) iseg_free(s->counts[k]);
    iseg__free(s->counts);
    iseg__free(s->area);
    iseg__free(s->bbox);
    iseg__free(s->segs);
}

struct cv_ctx {
    const struct iseg_panoptic_convert_params *p;
    const struct iseg__fj_cats                *cats;
    const struct iseg__fj_ann                 *ann;   /* panoptic input */
    const struct iseg__fj_image               *im;    /* images (from_2ch; to_instances) */
    const size_t                              *order;
    size_t                                     n_im;
    const int32_t                             *cat_of; /* (65536) category id -> index or -1 */
    const char                                *in_dir;
    struct iseg__txn                          *txn;
    struct cv_slot                            *slots;
    atomic_size_t                              first_fail;
};

static void note_fail(struct cv_ctx *c, size_t i) {
    size_t cur = atomic_load(&c->first_fail);
    while (i < cur && !atomic_compare_exchange_weak(&c->first_fail, &cur, i)) {
    }
}

static char *join2(const char *dir, const char *name) {
    size_t n = strlen(dir) + strlen(name) + 2;
    char  *s = iseg__malloc(n);
    if (s) snprintf(s, n, "%s/%s", dir, name);
    return s;
}

/* Read the panoptic PNG of annotation a and map every pixel to the index of its segment in
 * a->seg (-1: VOID). PNG ids and segments_info must agree both ways. */
static enum iseg_status pan_png_segments(const char *dir, const struct iseg__fj_ann *a,
                                         uint32_t *h, uint32_t *w, int32_t **seg_of, char *err,
                                         size_t errlen) {
    struct iseg_image img  = {0};
    int64_t          *keys = NULL;
    size_t           *ord  = NULL;
    uint8_t          *seen = NULL;
    int32_t          *so   = NULL;
    char             *path = join2(dir, a->file_name);
    enum iseg_status  st   = ISEG_STATUS_OK;
    char              e2[384];
    *seg_of                = NULL;
    if (!path) goto nomem;
    st = iseg_png_read(path, &img, e2, sizeof(e2));
    if (st != ISEG_STATUS_OK) {
        snprintf(err, errlen, "%s (image %lld)", e2, (long long)a->image_id);
        goto out;
    }
    if (img.depth != 8 || img.c < 3) {
        snprintf(err, errlen, "%s: image %lld: expected an 8-bit RGB panoptic PNG, got %u "
                 "channels of %u bits", path, (long long)a->image_id, img.c, img.depth);
        st = ISEG_STATUS_EFORMAT;
        goto out;
    }
    size_t n = a->n_seg, npx = (size_t)img.w * img.h;
    keys     = iseg__malloc_array(n ? n : 1, sizeof(*keys));
    ord      = iseg__malloc_array(n ? n : 1, sizeof(*ord));
    seen     = iseg__calloc(n ? n : 1, 1);
    so       = iseg__malloc_array(npx, sizeof(*so));
    if (!keys || !ord || !seen || !so) goto nomem;
    for (size_t k = 0; k < n; k++) keys[k] = a->seg[k].id;
    if (!iseg__fj_sort_idx(ord, keys, n)) goto nomem;
    const uint8_t *px   = img.data;
    uint32_t       last = 0;
    int32_t        lidx = -1;
    for (size_t i = 0; i < npx; i++, px += img.c) {
        uint32_t id = (uint32_t)px[0] | (uint32_t)px[1] << 8 | (uint32_t)px[2] << 16;
        if (id == 0) {
            so[i] = -1;
            continue;
        }
        if (id != last || lidx < 0) {
            size_t lo = 0, hi = n;
            lidx      = -1;
            while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                if (keys[ord[mid]] == (int64_t)id) {
                    lidx = (int32_t)ord[mid];
                    break;
                }
                if (keys[ord[mid]] < (int64_t)id) lo = mid + 1;
                else hi = mid;
            }
            if (lidx < 0) {
                snprintf(err, errlen, "%s: image %lld: segment id %u (pixel x=%zu, y=%zu) is "
                         "not in its segments_info", path, (long long)a->image_id, id,
                         i % img.w, i / img.w);
                st = ISEG_STATUS_EFORMAT;
                goto out;
            }
            last       = id;
            seen[lidx] = 1;
        }
        so[i] = lidx;
    }
    for (size_t k = 0; k < n; k++)
        if (!seen[k]) {
            snprintf(err, errlen, "%s: image %lld: segment %lld of segments_info is not in the "
                     "PNG", path, (long long)a->image_id, (long long)a->seg[k].id);
            st = ISEG_STATUS_EFORMAT;
            goto out;
        }
    *h      = img.h;
    *w      = img.w;
    *seg_of = so;
    so      = NULL;
    goto out;
nomem:
    snprintf(err, errlen, "%s: out of memory", path ? path : dir);
    st = ISEG_STATUS_ENOMEM;
out:
    iseg_image_free(&img);
    iseg__free(keys);
    iseg__free(ord);
    iseg__free(seen);
    iseg__free(so);
    iseg__free(path);
    return st;
}

/* category id -> index table for ids < 65536 (2-channel values) */
static int32_t *cat_table(const struct iseg__fj_cats *c) {
    int32_t *t = iseg__malloc_array(65536, sizeof(*t));
    if (!t) return NULL;
    for (size_t v = 0; v < 65536; v++) t[v] = -1;
    for (size_t k = 0; k < c->n; k++)
        if (c->v[k].id < 65536) t[c->v[k].id] = (int32_t)k;
    return t;
}

static enum iseg_status check_cv_params(const struct iseg_panoptic_convert_params *p, char *err,
                                        size_t errlen) {
    if (p->offset < 1 || p->offset > 65536) {
        snprintf(err, errlen, "convert: offset %u is not in [1, 65536]", p->offset);
        return ISEG_STATUS_EINVAL;
    }
    if (p->crowd_instance > 65535 || p->void_category > 65535) {
        snprintf(err, errlen, "convert: crowd instance and void category must be < 65536");
        return ISEG_STATUS_EINVAL;
    }
    return ISEG_STATUS_OK;
}

static int cmp_cstr(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* annotation file names must differ (they name the outputs) */
static enum iseg_status check_ann_names(const struct iseg__fj_ann *a, size_t n, const char *name,
                                        char *err, size_t errlen) {
    const char **v = iseg__malloc_array(n ? n : 1, sizeof(*v));
    if (!v) {
        snprintf(err, errlen, "%s: out of memory", name);
        return ISEG_STATUS_ENOMEM;
    }
    for (size_t i = 0; i < n; i++) v[i] = a[i].file_name;
    qsort(v, n, sizeof(*v), cmp_cstr);
    for (size_t i = 1; i < n; i++)
        if (strcmp(v[i], v[i - 1]) == 0) {
            snprintf(err, errlen, "%s: two annotations have the file_name \"%s\"", name, v[i]);
            iseg__free(v);
            return ISEG_STATUS_EFORMAT;
        }
    iseg__free(v);
    return ISEG_STATUS_OK;
}

/* ---- panoptic -> 2-channel ---- */

static void to2ch_task(void *cp, size_t i, int ith) {
    (void)ith;
    struct cv_ctx             *c   = cp;
    struct cv_slot            *s   = &c->slots[i];
    const struct iseg__fj_ann *a   = &c->ann[i];
    int32_t                   *so  = NULL;
    uint32_t                  *cnt = NULL, *val_c = NULL, *val_i = NULL;
    struct iseg_image          out = {0};
    uint32_t                   h = 0, w = 0;
    if (i > atomic_load(&c->first_fail)) return;
    size_t n = a->n_seg;
    cnt      = iseg__calloc(c->cats->n ? c->cats->n : 1, sizeof(*cnt));
    val_c    = iseg__malloc_array(n ? n : 1, sizeof(*val_c));
    val_i    = iseg__malloc_array(n ? n : 1, sizeof(*val_i));
    if (!cnt || !val_c || !val_i) goto nomem;
    /* instance ids in segments_info order */
    uint32_t maxv = c->p->void_category;
    for (size_t k = 0; k < n; k++) {
        const struct iseg__fj_seg *g  = &a->seg[k];
        size_t                     ci = iseg__fj_cat_find(c->cats, g->category_id);
        if (ci == SIZE_MAX || g->category_id > 65535) {
            snprintf(s->err, sizeof(s->err), "image %lld: segment %lld: %s category %lld",
                     (long long)a->image_id, (long long)g->id,
                     ci == SIZE_MAX ? "unknown" : "2-channel PNGs cannot hold",
                     (long long)g->category_id);
            s->st = ci == SIZE_MAX ? ISEG_STATUS_EFORMAT : ISEG_STATUS_ELIMIT;
            goto out;
        }
        uint32_t inst;
        if (!c->cats->v[ci].isthing) {
            inst = cnt[ci]++;
        } else if (g->iscrowd) {
            inst = c->p->crowd_instance;
        } else {
            inst = ++cnt[ci];
            if (inst == c->p->crowd_instance) inst = ++cnt[ci];
        }
        if (inst > 65535) {
            snprintf(s->err, sizeof(s->err), "image %lld: more than 65535 segments of category "
                     "%lld", (long long)a->image_id, (long long)g->category_id);
            s->st = ISEG_STATUS_ELIMIT;
            goto out;
        }
        val_c[k] = (uint32_t)g->category_id;
        val_i[k] = inst;
        if (val_c[k] > maxv) maxv = val_c[k];
        if (inst > maxv) maxv = inst;
    }
    s->st = pan_png_segments(c->in_dir, a, &h, &w, &so, s->err, sizeof(s->err));
    if (s->st != ISEG_STATUS_OK) goto out;
    uint32_t depth = maxv > 255 ? 16 : 8;
    if (iseg_image_alloc(&out, w, h, 2, depth) != ISEG_STATUS_OK) goto nomem;
    size_t npx = (size_t)w * h;
    for (size_t px = 0; px < npx; px++) {
        uint32_t vc = so[px] < 0 ? c->p->void_category : val_c[so[px]];
        uint32_t vi = so[px] < 0 ? 0 : val_i[so[px]];
        if (depth == 8) {
            ((uint8_t *)out.data)[2 * px]     = (uint8_t)vc;
            ((uint8_t *)out.data)[2 * px + 1] = (uint8_t)vi;
        } else {
            ((uint16_t *)out.data)[2 * px]     = (uint16_t)vc;
            ((uint16_t *)out.data)[2 * px + 1] = (uint16_t)vi;
        }
    }
    s->st = iseg__txn_write_png(c->txn, i, a->file_name, &out, s->err, sizeof(s->err));
    goto out;
nomem:
    s->st = ISEG_STATUS_ENOMEM;
    snprintf(s->err, sizeof(s->err), "image %lld: out of memory", (long long)a->image_id);
out:
    if (s->st != ISEG_STATUS_OK) note_fail(c, i);
    iseg_image_free(&out);
    iseg__free(so);
    iseg__free(cnt);
    iseg__free(val_c);
    iseg__free(val_i);
}

static enum iseg_status run_pool(struct cv_ctx *c, size_t n, iseg__task_fn fn, int n_threads,
                                 char *err, size_t errlen) {
    struct iseg__pool *pool = NULL;
    if (iseg__pool_init(&pool, n_threads > 0 ? n_threads : iseg__cpu_count()) !=
        ISEG_STATUS_OK) {
        snprintf(err, errlen, "out of memory");
        return ISEG_STATUS_ENOMEM;
    }
    atomic_init(&c->first_fail, SIZE_MAX);
    iseg__pool_run(pool, n, 1, fn, c);
    iseg__pool_free(pool);
    size_t fail = atomic_load(&c->first_fail);
    if (fail == SIZE_MAX) return ISEG_STATUS_OK;
    snprintf(err, errlen, "%s", c->slots[fail].err);
    return c->slots[fail].st;
}

enum iseg_status iseg_panoptic_convert_to_2ch(const struct iseg_panoptic_convert_params *p,
                                              const char *pan_json, const char *pan_dir,
                                              const char *out_dir, char *err, size_t errlen) {
    yajl_val             root  = NULL;
    struct iseg__fj_cats cats  = {0};
    struct iseg__fj_ann *ann   = NULL;
    size_t               n_ann = 0;
    struct cv_slot      *slots = NULL;
    struct iseg__txn     txn   = {0};
    enum iseg_status     st;
    if ((st = check_cv_params(p, err, errlen)) != ISEG_STATUS_OK) return st;
    if ((st = iseg__fj_read(pan_json, &root, err, errlen)) != ISEG_STATUS_OK ||
        (st = iseg__fj_categories(root, pan_json, &cats, err, errlen)) != ISEG_STATUS_OK ||
        (st = iseg__fj_annotations(root, pan_json, &ann, &n_ann, err, errlen)) !=
            ISEG_STATUS_OK ||
        (st = check_ann_names(ann, n_ann, pan_json, err, errlen)) != ISEG_STATUS_OK)
        goto out;
    slots = iseg__calloc(n_ann ? n_ann : 1, sizeof(*slots));
    if (!slots) {
        snprintf(err, errlen, "out of memory");
        st = ISEG_STATUS_ENOMEM;
        goto out;
    }
    if ((st = iseg__txn_begin(&txn, out_dir, n_ann, err, errlen)) != ISEG_STATUS_OK) goto out;
    struct cv_ctx c = {.p = p, .cats = &cats, .ann = ann, .in_dir = pan_dir, .txn = &txn,
                       .slots = slots};
    st = run_pool(&c, n_ann, to2ch_task, p->n_threads, err, errlen);
    if (st != ISEG_STATUS_OK) iseg__txn_abort(&txn);
    else st = iseg__txn_commit(&txn, NULL, NULL, 0, err, errlen);
out:
    iseg__free(slots);
    iseg__fj_annotations_free(ann, n_ann);
    iseg__fj_cats_free(&cats);
    yajl_tree_free(root);
    return st;
}

/* ---- 2-channel -> panoptic ---- */

static bool push_id(uint32_t **v, size_t *n, size_t *cap, uint32_t id) {
    /* insert into a sorted set */
    size_t lo = 0, hi = *n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if ((*v)[mid] == id) return true;
        if ((*v)[mid] < id) lo = mid + 1;
        else hi = mid;
    }
    if (*n == *cap) {
        size_t nc = *cap ? 2 * *cap : 64;
        void  *q  = iseg__realloc_array(*v, nc, sizeof(**v));
        if (!q) return false;
        *v   = q;
        *cap = nc;
    }
    memmove(*v + lo + 1, *v + lo, (*n - lo) * sizeof(**v));
    (*v)[lo] = id;
    (*n)++;
    return true;
}

static size_t find_id(const uint32_t *v, size_t n, uint32_t id) {
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (v[mid] == id) return mid;
        if (v[mid] < id) lo = mid + 1;
        else hi = mid;
    }
    return SIZE_MAX;
}

static void from2ch_task(void *cp, size_t i, int ith) {
    (void)ith;
    struct cv_ctx               *c   = cp;
    struct cv_slot              *s   = &c->slots[i];
    const struct iseg__fj_image *im  = &c->im[i];
    struct iseg_image            in  = {0}, out = {0};
    uint32_t                    *ids = NULL, *set = NULL;
    size_t                       n_set = 0, cap = 0;
    char                        *name  = NULL;
    if (i > atomic_load(&c->first_fail)) return;
    s->st = iseg__fj_read_map(c->in_dir, im, "2-channel PNG", false, 2, &in, s->err,
                              sizeof(s->err));
    if (s->st != ISEG_STATUS_OK) goto out;
    size_t npx = (size_t)in.w * in.h;
    ids        = iseg__malloc_array(npx, sizeof(*ids));
    name       = iseg__malloc(strlen(im->base) + 5);
    if (!ids || !name) goto nomem;
    sprintf(name, "%s.png", im->base);
    uint32_t last = UINT32_MAX;
    for (size_t px = 0; px < npx; px++) {
        uint32_t vc, vi;
        if (in.depth == 8) {
            vc = ((const uint8_t *)in.data)[px * in.c];
            vi = ((const uint8_t *)in.data)[px * in.c + 1];
        } else {
            vc = ((const uint16_t *)in.data)[px * in.c];
            vi = ((const uint16_t *)in.data)[px * in.c + 1];
        }
        if (vc == c->p->void_category) {
            ids[px] = 0;
            continue;
        }
        if (c->cat_of[vc] < 0) {
            snprintf(s->err, sizeof(s->err), "image %lld: unknown category %u at pixel x=%zu, "
                     "y=%zu of its 2-channel PNG", (long long)im->id, vc, px % in.w, px / in.w);
            s->st = ISEG_STATUS_EFORMAT;
            goto out;
        }
        uint64_t id = (uint64_t)vc * c->p->offset + vi;
        if (vi >= c->p->offset || id > ISEG_FUSE_MAX_ID) {
            snprintf(s->err, sizeof(s->err), "image %lld: category %u, instance %u at pixel "
                     "x=%zu, y=%zu: %s", (long long)im->id, vc, vi, px % in.w, px / in.w,
                     vi >= c->p->offset ? "instance id >= offset"
                                        : "segment id does not fit in 24 bits");
            s->st = ISEG_STATUS_ELIMIT;
            goto out;
        }
        ids[px] = (uint32_t)id;
        if (id != last && !push_id(&set, &n_set, &cap, (uint32_t)id)) goto nomem;
        last = (uint32_t)id;
    }
    s->segs = iseg__calloc(n_set ? n_set : 1, sizeof(*s->segs));
    if (!s->segs) goto nomem;
    s->n_segs = n_set;
    for (size_t k = 0; k < n_set; k++) {
        uint32_t vc = set[k] / c->p->offset, vi = set[k] % c->p->offset;
        s->segs[k].id          = set[k];
        s->segs[k].category_id = vc;
        s->segs[k].iscrowd     = c->cats->v[c->cat_of[vc]].isthing && vi == c->p->crowd_instance;
        s->segs[k].bbox[0]     = UINT32_MAX;
        s->segs[k].bbox[1]     = UINT32_MAX;
    }
    /* area and bbox (bbox[2], bbox[3] hold max x, max y until the end) */
    size_t li = SIZE_MAX;
    last      = 0;
    for (uint32_t y = 0; y < in.h; y++)
        for (uint32_t x = 0; x < in.w; x++) {
            uint32_t id = ids[(size_t)y * in.w + x];
            if (!id) continue;
            if (id != last) {
                li   = find_id(set, n_set, id);
                last = id;
            }
            struct iseg_fuse_segment *g = &s->segs[li];
            g->area++;
            if (x < g->bbox[0]) g->bbox[0] = x;
            if (y < g->bbox[1]) g->bbox[1] = y;
            if (x > g->bbox[2]) g->bbox[2] = x;
            if (y > g->bbox[3]) g->bbox[3] = y;
        }
    for (size_t k = 0; k < n_set; k++) {
        s->segs[k].bbox[2] = s->segs[k].bbox[2] - s->segs[k].bbox[0] + 1;
        s->segs[k].bbox[3] = s->segs[k].bbox[3] - s->segs[k].bbox[1] + 1;
    }
    if (iseg_image_alloc(&out, in.w, in.h, 3, 8) != ISEG_STATUS_OK) goto nomem;
    iseg__fj_ids_to_rgb(ids, out.data, npx);
    s->st = iseg__txn_write_png(c->txn, i, name, &out, s->err, sizeof(s->err));
    goto out;
nomem:
    s->st = ISEG_STATUS_ENOMEM;
    snprintf(s->err, sizeof(s->err), "image %lld: out of memory", (long long)im->id);
out:
    if (s->st != ISEG_STATUS_OK) note_fail(c, i);
    iseg_image_free(&in);
    iseg_image_free(&out);
    iseg__free(ids);
    iseg__free(set);
    iseg__free(name);
}

enum iseg_status iseg_panoptic_convert_from_2ch(const struct iseg_panoptic_convert_params *p,
                                                const char *in_dir, const char *images_json,
                                                const char *categories_json,
                                                const char *out_json, const char *out_dir,
                                                char *err, size_t errlen) {
    yajl_val               root_i = NULL, root_c = NULL;
    struct iseg__fj_cats   cats   = {0};
    struct iseg__fj_image *im     = NULL;
    size_t                *order  = NULL, n_im = 0;
    struct cv_slot        *slots  = NULL;
    int32_t               *cat_of = NULL;
    struct iseg__txn       txn    = {0};
    yajl_gen               g      = NULL;
    enum iseg_status       st;
    if ((st = check_cv_params(p, err, errlen)) != ISEG_STATUS_OK) return st;
    if ((st = iseg__fj_read(images_json, &root_i, err, errlen)) != ISEG_STATUS_OK ||
        (st = iseg__fj_images(root_i, images_json, false, true, &im, &order, &n_im, err,
                              errlen)) != ISEG_STATUS_OK)
        goto out;
    if (categories_json) {
        if ((st = iseg__fj_read(categories_json, &root_c, err, errlen)) != ISEG_STATUS_OK ||
            (st = iseg__fj_categories(root_c, categories_json, &cats, err, errlen)) !=
                ISEG_STATUS_OK)
            goto out;
    } else if ((st = iseg__fj_categories(root_i, images_json, &cats, err, errlen)) !=
               ISEG_STATUS_OK) {
        goto out;
    }
    slots  = iseg__calloc(n_im ? n_im : 1, sizeof(*slots));
    cat_of = cat_table(&cats);
    if (!slots || !cat_of) goto nomem;
    if ((st = iseg__txn_begin(&txn, out_dir, n_im, err, errlen)) != ISEG_STATUS_OK) goto out;
    struct cv_ctx c = {.p = p, .cats = &cats, .im = im, .order = order, .n_im = n_im,
                       .cat_of = cat_of, .in_dir = in_dir, .txn = &txn, .slots = slots};
    st = run_pool(&c, n_im, from2ch_task, p->n_threads, err, errlen);
    if (st != ISEG_STATUS_OK) {
        iseg__txn_abort(&txn);
        goto out;
    }
    g       = iseg__fj_gen_new();
    bool ok = g && yajl_gen_map_open(g) == yajl_gen_status_ok && iseg__fj_gen_str(g, "images") &&
              yajl_gen_array_open(g) == yajl_gen_status_ok;
    for (size_t i = 0; i < n_im && ok; i++) ok = iseg__fj_gen_value(g, im[i].obj);
    ok = ok && yajl_gen_array_close(g) == yajl_gen_status_ok &&
         iseg__fj_gen_str(g, "annotations") && yajl_gen_array_open(g) == yajl_gen_status_ok;
    for (size_t i = 0; i < n_im && ok; i++) {
        char *name = iseg__malloc(strlen(im[i].base) + 5);
        ok         = name != NULL;
        if (name) sprintf(name, "%s.png", im[i].base);
        ok = ok && yajl_gen_map_open(g) == yajl_gen_status_ok &&
             iseg__fj_gen_str(g, "image_id") && iseg__fj_gen_int(g, im[i].id) &&
             iseg__fj_gen_str(g, "file_name") && iseg__fj_gen_str(g, name) &&
             iseg__fj_gen_str(g, "segments_info") &&
             iseg__fj_gen_segments(g, slots[i].segs, slots[i].n_segs) &&
             yajl_gen_map_close(g) == yajl_gen_status_ok;
        iseg__free(name);
    }
    ok = ok && yajl_gen_array_close(g) == yajl_gen_status_ok &&
         iseg__fj_gen_str(g, "categories") && yajl_gen_array_open(g) == yajl_gen_status_ok;
    for (size_t k = 0; k < cats.n && ok; k++) ok = iseg__fj_gen_value(g, cats.obj[k]);
    ok = ok && yajl_gen_array_close(g) == yajl_gen_status_ok &&
         yajl_gen_map_close(g) == yajl_gen_status_ok;
    if (!ok) {
        iseg__txn_abort(&txn);
        goto nomem;
    }
    const unsigned char *jbuf;
    size_t               jlen;
    yajl_gen_get_buf(g, &jbuf, &jlen);
    st = iseg__txn_commit(&txn, out_json, (const char *)jbuf, jlen, err, errlen);
    goto out;
nomem:
    snprintf(err, errlen, "out of memory");
    st = ISEG_STATUS_ENOMEM;
out:
    if (g) yajl_gen_free(g);
    if (slots)
        for (size_t i = 0; i < n_im; i++) slot_free(&slots[i], 0);
    iseg__free(slots);
    iseg__free(cat_of);
    iseg__fj_images_free(im, order, n_im);
    iseg__fj_cats_free(&cats);
    yajl_tree_free(root_i);
    yajl_tree_free(root_c);
    return st;
}

/* ---- panoptic -> instances ---- */

static void toinst_task(void *cp, size_t i, int ith) {
    (void)ith;
    struct cv_ctx             *c    = cp;
    struct cv_slot            *s    = &c->slots[i];
    const struct iseg__fj_ann *a    = &c->ann[i];
    int32_t                   *so   = NULL;
    uint8_t                   *mask = NULL;
    uint32_t                   h = 0, w = 0;
    if (i > atomic_load(&c->first_fail)) return;
    size_t n = a->n_seg;
    for (size_t k = 0; k < n; k++)
        if (iseg__fj_cat_find(c->cats, a->seg[k].category_id) == SIZE_MAX) {
            snprintf(s->err, sizeof(s->err), "image %lld: segment %lld: unknown category %lld",
                     (long long)a->image_id, (long long)a->seg[k].id,
                     (long long)a->seg[k].category_id);
            s->st = ISEG_STATUS_EFORMAT;
            goto out;
        }
    s->st = pan_png_segments(c->in_dir, a, &h, &w, &so, s->err, sizeof(s->err));
    if (s->st != ISEG_STATUS_OK) goto out;
    if (c->im) {
        size_t ii = iseg__fj_image_find(c->im, c->order, c->n_im, a->image_id);
        if (ii == SIZE_MAX) {
            snprintf(s->err, sizeof(s->err), "image %lld: annotated but not in \"images\"",
                     (long long)a->image_id);
            s->st = ISEG_STATUS_EFORMAT;
            goto out;
        }
        if (c->im[ii].w && (c->im[ii].w != w || c->im[ii].h != h)) {
            snprintf(s->err, sizeof(s->err), "image %lld: its PNG is %ux%u, \"images\" says "
                     "%ux%u", (long long)a->image_id, w, h, c->im[ii].w, c->im[ii].h);
            s->st = ISEG_STATUS_ESHAPE;
            goto out;
        }
    }
    s->h      = h;
    s->w      = w;
    s->counts = iseg__calloc(n ? n : 1, sizeof(*s->counts));
    s->area   = iseg__calloc(n ? n : 1, sizeof(*s->area));
    s->bbox   = iseg__calloc(n ? 4 * n : 1, sizeof(*s->bbox));
    mask      = iseg__malloc((size_t)h * w);
    if (!s->counts || !s->area || !s->bbox || !mask) goto nomem;
    for (size_t k = 0; k < n; k++) {
        size_t ci = iseg__fj_cat_find(c->cats, a->seg[k].category_id);
        if (!c->cats->v[ci].isthing) continue;
        /* column-major mask of segment k */
        uint32_t x0 = UINT32_MAX, y0 = UINT32_MAX, x1 = 0, y1 = 0;
        uint64_t area = 0;
        for (uint32_t x = 0; x < w; x++)
            for (uint32_t y = 0; y < h; y++) {
                bool on                     = so[(size_t)y * w + x] == (int32_t)k;
                mask[(size_t)x * h + y]     = on;
                if (!on) continue;
                area++;
                if (x < x0) x0 = x;
                if (y < y0) y0 = y;
                if (x > x1) x1 = x;
                if (y > y1) y1 = y;
            }
        struct iseg_rle r = {0};
        if (iseg_rle_encode(&r, mask, h, w) != ISEG_STATUS_OK) goto nomem;
        enum iseg_status e = iseg_rle_to_string(&r, &s->counts[k], NULL);
        iseg_rle_free(&r);
        if (e != ISEG_STATUS_OK) goto nomem;
        s->area[k]         = area;
        s->bbox[4 * k]     = x0;
        s->bbox[4 * k + 1] = y0;
        s->bbox[4 * k + 2] = x1 - x0 + 1;
        s->bbox[4 * k + 3] = y1 - y0 + 1;
    }
    goto out;
nomem:
    s->st = ISEG_STATUS_ENOMEM;
    snprintf(s->err, sizeof(s->err), "image %lld: out of memory", (long long)a->image_id);
out:
    if (s->st != ISEG_STATUS_OK) note_fail(c, i);
    iseg__free(so);
    iseg__free(mask);
}

enum iseg_status iseg_panoptic_convert_to_instances(const struct iseg_panoptic_convert_params *p,
                                                    const char *pan_json, const char *pan_dir,
                                                    const char *out_json, char *err,
                                                    size_t errlen) {
    yajl_val               root  = NULL;
    struct iseg__fj_cats   cats  = {0};
    struct iseg__fj_ann   *ann   = NULL;
    struct iseg__fj_image *im    = NULL;
    size_t                *order = NULL, n_im = 0, n_ann = 0;
    struct cv_slot        *slots = NULL;
    struct iseg__txn       txn   = {0};
    yajl_gen               g     = NULL;
    enum iseg_status       st;
    if ((st = check_cv_params(p, err, errlen)) != ISEG_STATUS_OK) return st;
    if ((st = iseg__fj_read(pan_json, &root, err, errlen)) != ISEG_STATUS_OK ||
        (st = iseg__fj_categories(root, pan_json, &cats, err, errlen)) != ISEG_STATUS_OK ||
        (st = iseg__fj_annotations(root, pan_json, &ann, &n_ann, err, errlen)) !=
            ISEG_STATUS_OK)
        goto out;
    if (iseg__fj_get(root, "images") &&
        (st = iseg__fj_images(root, pan_json, false, false, &im, &order, &n_im, err, errlen)) !=
            ISEG_STATUS_OK)
        goto out;
    slots = iseg__calloc(n_ann ? n_ann : 1, sizeof(*slots));
    if (!slots) goto nomem;
    struct cv_ctx c = {.p = p, .cats = &cats, .ann = ann, .im = im, .order = order,
                       .n_im = n_im, .in_dir = pan_dir, .slots = slots};
    if ((st = run_pool(&c, n_ann, toinst_task, p->n_threads, err, errlen)) != ISEG_STATUS_OK)
        goto out;

    g       = iseg__fj_gen_new();
    bool ok = g != NULL;
    if (!p->results) {
        ok = ok && yajl_gen_map_open(g) == yajl_gen_status_ok && iseg__fj_gen_str(g, "images") &&
             yajl_gen_array_open(g) == yajl_gen_status_ok;
        if (im) {
            for (size_t i = 0; i < n_im && ok; i++) ok = iseg__fj_gen_value(g, im[i].obj);
        } else {
            for (size_t i = 0; i < n_ann && ok; i++)
                ok = yajl_gen_map_open(g) == yajl_gen_status_ok && iseg__fj_gen_str(g, "id") &&
                     iseg__fj_gen_int(g, ann[i].image_id) && iseg__fj_gen_str(g, "width") &&
                     iseg__fj_gen_int(g, slots[i].w) && iseg__fj_gen_str(g, "height") &&
                     iseg__fj_gen_int(g, slots[i].h) && iseg__fj_gen_str(g, "file_name") &&
                     iseg__fj_gen_str(g, ann[i].file_name) &&
                     yajl_gen_map_close(g) == yajl_gen_status_ok;
        }
        ok = ok && yajl_gen_array_close(g) == yajl_gen_status_ok &&
             iseg__fj_gen_str(g, "annotations");
    }
    ok             = ok && yajl_gen_array_open(g) == yajl_gen_status_ok;
    long long next = 1;
    for (size_t i = 0; i < n_ann && ok; i++) {
        for (size_t k = 0; k < ann[i].n_seg && ok; k++) {
            const struct iseg__fj_seg *sg = &ann[i].seg[k];
            if (!slots[i].counts[k] || (p->results && sg->iscrowd)) continue;
            ok = yajl_gen_map_open(g) == yajl_gen_status_ok;
            if (!p->results) ok = ok && iseg__fj_gen_str(g, "id") && iseg__fj_gen_int(g, next++);
            ok = ok && iseg__fj_gen_str(g, "image_id") && iseg__fj_gen_int(g, ann[i].image_id) &&
                 iseg__fj_gen_str(g, "category_id") && iseg__fj_gen_int(g, sg->category_id) &&
                 iseg__fj_gen_str(g, "segmentation") &&
                 yajl_gen_map_open(g) == yajl_gen_status_ok && iseg__fj_gen_str(g, "size") &&
                 yajl_gen_array_open(g) == yajl_gen_status_ok &&
                 iseg__fj_gen_int(g, slots[i].h) && iseg__fj_gen_int(g, slots[i].w) &&
                 yajl_gen_array_close(g) == yajl_gen_status_ok &&
                 iseg__fj_gen_str(g, "counts") && iseg__fj_gen_str(g, slots[i].counts[k]) &&
                 yajl_gen_map_close(g) == yajl_gen_status_ok;
            if (p->results) {
                ok = ok && iseg__fj_gen_str(g, "score") &&
                     yajl_gen_number(g, "1.0", 3) == yajl_gen_status_ok;
            } else {
                const uint32_t *bb = &slots[i].bbox[4 * k];
                ok = ok && iseg__fj_gen_str(g, "area") &&
                     iseg__fj_gen_int(g, (long long)slots[i].area[k]) &&
                     iseg__fj_gen_str(g, "bbox") &&
                     yajl_gen_array_open(g) == yajl_gen_status_ok && iseg__fj_gen_int(g, bb[0]) &&
                     iseg__fj_gen_int(g, bb[1]) && iseg__fj_gen_int(g, bb[2]) &&
                     iseg__fj_gen_int(g, bb[3]) && yajl_gen_array_close(g) == yajl_gen_status_ok &&
                     iseg__fj_gen_str(g, "iscrowd") && iseg__fj_gen_int(g, sg->iscrowd);
            }
            ok = ok && yajl_gen_map_close(g) == yajl_gen_status_ok;
        }
    }
    ok = ok && yajl_gen_array_close(g) == yajl_gen_status_ok;
    if (!p->results) {
        ok = ok && iseg__fj_gen_str(g, "categories") &&
             yajl_gen_array_open(g) == yajl_gen_status_ok;
        for (size_t k = 0; k < cats.n && ok; k++)
            if (cats.v[k].isthing) ok = iseg__fj_gen_value(g, cats.obj[k]);
        ok = ok && yajl_gen_array_close(g) == yajl_gen_status_ok &&
             yajl_gen_map_close(g) == yajl_gen_status_ok;
    }
    if (!ok) goto nomem;
    const unsigned char *jbuf;
    size_t               jlen;
    yajl_gen_get_buf(g, &jbuf, &jlen);
    if ((st = iseg__txn_begin(&txn, NULL, 0, err, errlen)) != ISEG_STATUS_OK) goto out;
    st = iseg__txn_commit(&txn, out_json, (const char *)jbuf, jlen, err, errlen);
    goto out;
nomem:
    snprintf(err, errlen, "out of memory");
    st = ISEG_STATUS_ENOMEM;
out:
    if (g) yajl_gen_free(g);
    if (slots)
        for (size_t i = 0; i < n_ann; i++) slot_free(&slots[i], ann[i].n_seg);
    iseg__free(slots);
    iseg__fj_images_free(im, order, n_im);
    iseg__fj_annotations_free(ann, n_ann);
    iseg__fj_cats_free(&cats);
    yajl_tree_free(root);
    return st;
}
