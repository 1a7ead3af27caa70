/* coco_prepare.c - from parsed files to an evaluation set: COCO()/loadRes()/_prepare semantics.
 *
 * ref: pycocotools/coco.py (createIndex, loadRes, annToRLE), cocoeval.py (_prepare) */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eval/coco_eval_impl.h"
#include "rle/rle_impl.h"

void iseg__ann_where(const struct iseg_coco_eval *ev, bool is_dt, size_t i, char *buf, size_t n) {
    const struct coco_file *f = is_dt ? &ev->dt : &ev->gt;
    const struct coco_ann  *a = &f->anns[i];
    if (is_dt) snprintf(buf, n, "%s: results[%zu] (image_id %lld)", f->name, i,
                        (long long)a->image_id);
    else if (a->flags & AF_ID)
        snprintf(buf, n, "%s: annotations[%zu] (id %lld)", f->name, i, (long long)a->id);
    else snprintf(buf, n, "%s: annotations[%zu]", f->name, i);
}

/* ---- sorting helpers ---- */

int iseg__cmp_id_pos(const void *a, const void *b) {
    const struct iseg__id_pos *x = a, *y = b;
    if (x->id != y->id) return x->id < y->id ? -1 : 1;
    return x->pos < y->pos ? -1 : x->pos > y->pos;
}

/* Sort a table of n elements of size sz by their int64 id (at offset 0), keeping for equal ids
 * the last one (a Python dict keyed by id). dropped receives elements removed (for freeing). */
static enum iseg_status sort_unique_last(void *table, size_t *n, size_t sz,
                                         void (*drop)(void *elem)) {
    size_t         cnt = *n;
    struct iseg__id_pos *ip  = iseg__malloc_array(cnt ? cnt : 1, sizeof(*ip));
    char          *tmp = iseg__malloc_array(cnt ? cnt : 1, sz);
    if (!ip || !tmp) {
        iseg__free(ip);
        iseg__free(tmp);
        return ISEG_STATUS_ENOMEM;
    }
    char *t = table;
    for (size_t i = 0; i < cnt; i++) {
        memcpy(&ip[i].id, t + i * sz, sizeof(int64_t));
        ip[i].pos = i;
    }
    qsort(ip, cnt, sizeof(*ip), iseg__cmp_id_pos);
    size_t k = 0;
    for (size_t i = 0; i < cnt; i++) {
        if (i + 1 < cnt && ip[i + 1].id == ip[i].id) {
            if (drop) drop(t + ip[i].pos * sz);
            continue;
        }
        memcpy(tmp + k * sz, t + ip[i].pos * sz, sz);
        k++;
    }
    if (k) memcpy(t, tmp, k * sz); /* fuzz fix: t is NULL for an empty table (memcpy UB) */
    *n = k;
    iseg__free(ip);
    iseg__free(tmp);
    return ISEG_STATUS_OK;
}

static void drop_cat(void *elem) {
    struct coco_cat *c = elem;
    iseg__free(c->name);
    c->name = NULL;
}

/* Binary search for id in a table sorted by an int64 id stored first in each element of
 * stride bytes (image and category tables, plain id arrays); the index or -1. */
static int32_t find_id(const void *table, size_t n, size_t stride, int64_t id) {
    const char *t  = table;
    size_t      lo = 0, hi = n;
    int64_t     v;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        memcpy(&v, t + mid * stride, sizeof(v));
        if (v < id) lo = mid + 1;
        else hi = mid;
    }
    if (lo == n) return -1;
    memcpy(&v, t + lo * stride, sizeof(v));
    return v == id ? (int32_t)lo : -1;
}

static int32_t find_img(const struct coco_file *gt, int64_t id) {
    return find_id(gt->imgs, gt->n_imgs, sizeof(*gt->imgs), id);
}

static int32_t find_cat(const struct coco_file *gt, int64_t id) {
    return find_id(gt->cats, gt->n_cats, sizeof(*gt->cats), id);
}

static bool in_sorted(const int64_t *v, size_t n, int64_t x) {
    return find_id(v, n, sizeof(*v), x) >= 0;
}

/* Order the annotations of the evaluated images by (image, category, file order) with two
 * stable counting sorts. key_img[i] < 0 excludes annotation i. */
static enum iseg_status group_by_image(const struct coco_file *f, const int32_t *ann_e,
                                       size_t n_e, size_t n_cat, size_t **start_out,
                                       int32_t **list_out) {
    size_t  *start = iseg__calloc(n_e + 1, sizeof(size_t));
    size_t  *cstart = iseg__calloc(n_cat + 1, sizeof(size_t));
    int32_t *by_cat = iseg__malloc_array(f->n_anns ? f->n_anns : 1, sizeof(int32_t));
    int32_t *list   = iseg__malloc_array(f->n_anns ? f->n_anns : 1, sizeof(int32_t));
    if (!start || !cstart || !by_cat || !list) {
        iseg__free(start);
        iseg__free(cstart);
        iseg__free(by_cat);
        iseg__free(list);
        return ISEG_STATUS_ENOMEM;
    }
    size_t n_in = 0;
    for (size_t i = 0; i < f->n_anns; i++) {
        if (ann_e[i] < 0) continue;
        cstart[f->anns[i].cat_idx + 1]++;
        n_in++;
    }
    for (size_t c = 0; c < n_cat; c++) cstart[c + 1] += cstart[c];
    for (size_t i = 0; i < f->n_anns; i++) {
        if (ann_e[i] < 0) continue;
        by_cat[cstart[f->anns[i].cat_idx]++] = (int32_t)i;
    }
    for (size_t j = 0; j < n_in; j++) start[ann_e[by_cat[j]] + 1]++;
    for (size_t e = 0; e < n_e; e++) start[e + 1] += start[e];
    /* place, using cstart as a cursor array is no longer needed: reuse a copy of start */
    size_t *cur = iseg__malloc_array(n_e + 1, sizeof(size_t));
    if (!cur) {
        iseg__free(start);
        iseg__free(cstart);
        iseg__free(by_cat);
        iseg__free(list);
        return ISEG_STATUS_ENOMEM;
    }
    memcpy(cur, start, (n_e + 1) * sizeof(size_t));
    for (size_t j = 0; j < n_in; j++) list[cur[ann_e[by_cat[j]]]++] = by_cat[j];
    iseg__free(cur);
    iseg__free(cstart);
    iseg__free(by_cat);
    *start_out = start;
    *list_out  = list;
    return ISEG_STATUS_OK;
}

enum iseg_status iseg__coco_index(struct iseg_coco_eval *ev) {
    struct coco_file *gt = &ev->gt, *dt = &ev->dt;
    enum iseg_status  st;
    char              where[512];
    int32_t          *gt_e = NULL, *dt_e = NULL;

    /* COCO.createIndex: dicts keyed by id (the last duplicate wins); getImgIds/getCatIds then
     * sorted by COCOeval */
    if ((st = sort_unique_last(gt->imgs, &gt->n_imgs, sizeof(*gt->imgs), NULL)) != 0 ||
        (st = sort_unique_last(gt->cats, &gt->n_cats, sizeof(*gt->cats), drop_cat)) != 0)
        goto nomem;

    ev->img_to_e = iseg__malloc_array(gt->n_imgs ? gt->n_imgs : 1, sizeof(int32_t));
    ev->cat_to_k = iseg__malloc_array(gt->n_cats ? gt->n_cats : 1, sizeof(int32_t));
    ev->eimg     = iseg__malloc_array(gt->n_imgs ? gt->n_imgs : 1, sizeof(int32_t));
    ev->ecat     = iseg__malloc_array(gt->n_cats ? gt->n_cats : 1, sizeof(int32_t));
    if (!ev->img_to_e || !ev->cat_to_k || !ev->eimg || !ev->ecat) goto nomem;
    ev->n_eimg = 0;
    for (size_t i = 0; i < gt->n_imgs; i++) {
        bool in = !ev->has_img_filter ||
                  in_sorted(ev->img_filter, ev->n_img_filter, gt->imgs[i].id);
        ev->img_to_e[i] = in ? (int32_t)ev->n_eimg : -1;
        if (in) ev->eimg[ev->n_eimg++] = (int32_t)i;
    }
    ev->n_ecat = 0;
    for (size_t c = 0; c < gt->n_cats; c++) {
        bool in = !ev->has_cat_filter ||
                  in_sorted(ev->cat_filter, ev->n_cat_filter, gt->cats[c].id);
        ev->cat_to_k[c] = in ? (ev->p.use_cats ? (int32_t)ev->n_ecat : 0) : -1;
        if (in) ev->ecat[ev->n_ecat++] = (int32_t)c;
    }
    ev->K = ev->p.use_cats ? ev->n_ecat : 1;

    gt_e = iseg__malloc_array(gt->n_anns ? gt->n_anns : 1, sizeof(int32_t));
    dt_e = iseg__malloc_array(dt->n_anns ? dt->n_anns : 1, sizeof(int32_t));
    if (!gt_e || !dt_e) goto nomem;

    size_t n_gt_orphan = 0, n_gt_zero_id = 0;
    for (size_t i = 0; i < gt->n_anns; i++) {
        struct coco_ann *a = &gt->anns[i];
        gt_e[i]            = -1;
        iseg__ann_where(ev, false, i, where, sizeof(where));
        if (!(a->flags & AF_ID)) {
            iseg__ev_error(ev, "%s: no \"id\"", where);
            goto bad;
        }
        if (!(a->flags & AF_IMAGE_ID) || !(a->flags & AF_CAT_ID)) {
            iseg__ev_error(ev, "%s: no \"%s\"", where,
                           (a->flags & AF_IMAGE_ID) ? "category_id" : "image_id");
            goto bad;
        }
        a->img_idx = find_img(gt, a->image_id);
        a->cat_idx = find_cat(gt, a->category_id);
        if (a->img_idx < 0 || a->cat_idx < 0) {
            n_gt_orphan++; /* never loaded by COCOeval (getAnnIds filters by image and cat) */
            continue;
        }
        if (ev->img_to_e[a->img_idx] < 0 || ev->cat_to_k[a->cat_idx] < 0) continue;
        if (!(a->flags & AF_ISCROWD)) {
            iseg__ev_error(ev, "%s: no \"iscrowd\" (the reference evaluator raises KeyError)",
                           where);
            goto bad;
        }
        if (ev->p.iou_type == ISEG_IOU_BBOX && !(a->flags & AF_BBOX)) {
            iseg__ev_error(ev, "%s: no \"bbox\" (needed for --iou-type bbox)", where);
            goto bad;
        }
        if (ev->p.iou_type != ISEG_IOU_BBOX && a->seg_kind == SEG_NONE) {
            iseg__ev_error(ev, "%s: no \"segmentation\" (needed for --iou-type %s)", where,
                           iseg_iou_type_name(ev->p.iou_type));
            goto bad;
        }
        if (a->id == 0) n_gt_zero_id++;
        gt_e[i] = ev->img_to_e[a->img_idx];
    }
    if (n_gt_orphan)
        iseg__log(ISEG_LOG_INFO,
                  "%s: %zu annotations refer to unknown images or categories and are not "
                  "evaluated", gt->name, n_gt_orphan);
    if (n_gt_zero_id)
        iseg__log(ISEG_LOG_WARN,
                  "%s: %zu annotations have id 0; iseg evaluates them correctly, the reference "
                  "evaluator would count their matches as false positives", gt->name,
                  n_gt_zero_id);

    /* loadRes: the branch is chosen by the first result only */
    ev->dt_bbox_branch = dt->n_anns > 0 && (dt->anns[0].flags & AF_BBOX);
    if (dt->n_anns > 0 && !ev->dt_bbox_branch && dt->anns[0].seg_kind == SEG_NONE) {
        iseg__ev_error(ev, "%s: results[0] has neither a non-empty \"bbox\" nor a "
                           "\"segmentation\"", dt->name);
        goto bad;
    }
    ev->n_dropped = 0;
    for (size_t i = 0; i < dt->n_anns; i++) {
        struct coco_ann *a = &dt->anns[i];
        dt_e[i]            = -1;
        a->id              = (int64_t)i + 1; /* loadRes: ids 1..N in file order */
        iseg__ann_where(ev, true, i, where, sizeof(where));
        if (!(a->flags & AF_IMAGE_ID)) {
            snprintf(where, sizeof(where), "%s: results[%zu]", dt->name, i);
            iseg__ev_error(ev, "%s: no \"image_id\"", where);
            goto bad;
        }
        if (!(a->flags & AF_CAT_ID)) {
            iseg__ev_error(ev, "%s: no \"category_id\"", where);
            goto bad;
        }
        if (!(a->flags & AF_SCORE)) {
            iseg__ev_error(ev, "%s: no \"score\"", where);
            goto bad;
        }
        if (isnan(a->score)) {
            iseg__ev_error(ev, "%s: \"score\" is NaN", where);
            goto bad;
        }
        a->img_idx = find_img(gt, a->image_id);
        if (a->img_idx < 0) {
            iseg__ev_error(ev, "%s: image_id %lld is not in the ground truth %s (the reference "
                               "evaluator fails its assertion)", where, (long long)a->image_id,
                           gt->name);
            goto bad;
        }
        if (ev->dt_bbox_branch && !(a->flags & AF_BBOX)) {
            iseg__ev_error(ev, "%s: no \"bbox\" with 4 numbers, but results[0] has one (all "
                               "results must then have one)", where);
            goto bad;
        }
        if (!ev->dt_bbox_branch && a->seg_kind == SEG_NONE) {
            iseg__ev_error(ev, "%s: no \"segmentation\", but results[0] has one and no bbox "
                               "(all results must then have one)", where);
            goto bad;
        }
        a->flags &= ~(uint32_t)(AF_CROWD | AF_IGNORE); /* loadRes: iscrowd = 0 */
        a->cat_idx = find_cat(gt, a->category_id);
        if (a->cat_idx < 0) {
            ev->n_dropped++;
            continue;
        }
        if (ev->img_to_e[a->img_idx] < 0 || ev->cat_to_k[a->cat_idx] < 0) continue;
        if (ev->dt_bbox_branch) a->area = a->bbox[2] * a->bbox[3];
        dt_e[i] = ev->img_to_e[a->img_idx];
    }
    if (ev->n_dropped)
        iseg__log(ISEG_LOG_INFO,
                  "%s: %zu results have categories not in the ground truth and are dropped "
                  "(as the reference does)", dt->name, ev->n_dropped);

    if ((st = group_by_image(gt, gt_e, ev->n_eimg, gt->n_cats, &ev->gt_start, &ev->gt_list)) ||
        (st = group_by_image(dt, dt_e, ev->n_eimg, gt->n_cats, &ev->dt_start, &ev->dt_list)))
        goto nomem;
    iseg__free(gt_e);
    iseg__free(dt_e);
    return ISEG_STATUS_OK;
nomem:
    iseg__free(gt_e);
    iseg__free(dt_e);
    iseg__ev_error(ev, "out of memory while indexing %s", gt->name);
    return ISEG_STATUS_ENOMEM;
bad:
    iseg__free(gt_e);
    iseg__free(dt_e);
    return ISEG_STATUS_EFORMAT;
}

/* ---- preparing masks ---- */

enum prep_err {
    PE_OK = 0,
    PE_NOMEM,
    PE_POLY_ODD,
    PE_POLY_BAD,
    PE_RLE_STR,
    PE_RLE_COUNTS,
    PE_LIMIT,
    PE_ZERO_SIZE,
};

struct prep_ctx {
    struct iseg_coco_eval *ev;
    size_t                 n_gt;   /* items [0, n_gt) are GT, then DT */
    uint8_t               *errs;   /* per item */
    size_t                 n_items;
    size_t                 base;   /* first item of the current batch */
};

/* Build the mask of an annotation (COCO.annToRLE with the image size of the ground truth). */
static enum prep_err ann_mask(const struct coco_file *f, const struct coco_ann *a, uint32_t ih,
                              uint32_t iw, struct iseg_rle *out) {
    enum iseg_status st;
    /* fuzz fix: a file without segmentation data has a NULL raw buffer, and NULL + 0 is UB;
     * nothing reads raw then (no rings, no counts) */
    const char      *raw = f->raw[a->raw_id].data ? coco_ann_seg(f, a) : NULL;
    switch (a->seg_kind) {
    case SEG_POLY: {
        if ((uint64_t)ih * iw > ISEG_RLE_MAX_PIXELS) return PE_LIMIT;
        if (a->seg_len == 0) {
            /* an empty polygon list: an empty mask (the reference raises IndexError) */
            uint32_t zero = ih * iw;
            st = iseg_rle_from_counts(out, &zero, 1, ih, iw);
            return st == ISEG_STATUS_OK ? PE_OK : PE_NOMEM;
        }
        struct iseg_rle *rings = iseg__calloc(a->seg_len, sizeof(*rings));
        if (!rings) return PE_NOMEM;
        enum prep_err pe  = PE_OK;
        size_t        off = 0;
        double       *xy  = NULL;
        size_t        cap = 0;
        for (uint32_t r = 0; r < a->seg_len && pe == PE_OK; r++) {
            uint32_t n;
            memcpy(&n, raw + off, sizeof(n));
            off += sizeof(n);
            if (n % 2) {
                pe = PE_POLY_ODD;
                break;
            }
            if (n > cap) {
                double *p = iseg__realloc_array(xy, n, sizeof(double));
                if (!p) {
                    pe = PE_NOMEM;
                    break;
                }
                xy  = p;
                cap = n;
            }
            if (n) memcpy(xy, raw + off, (size_t)n * sizeof(double)); /* fuzz fix: xy NULL */
            off += (size_t)n * sizeof(double);
            st = iseg_rle_from_poly(&rings[r], xy, n / 2, ih, iw);
            if (st == ISEG_STATUS_ENOMEM) pe = PE_NOMEM;
            else if (st == ISEG_STATUS_ELIMIT) pe = PE_LIMIT;
            else if (st != ISEG_STATUS_OK) pe = PE_POLY_BAD;
        }
        if (pe == PE_OK) {
            st = iseg_rle_merge(out, rings, a->seg_len, false);
            if (st != ISEG_STATUS_OK) pe = PE_NOMEM;
        }
        for (uint32_t r = 0; r < a->seg_len; r++) iseg_rle_free(&rings[r]);
        iseg__free(rings);
        iseg__free(xy);
        return pe;
    }
    case SEG_RLE_COUNTS: {
        uint32_t *c = iseg__malloc_array(a->seg_len ? a->seg_len : 1, sizeof(uint32_t));
        if (!c) return PE_NOMEM;
        if (a->seg_len) memcpy(c, raw, (size_t)a->seg_len * sizeof(uint32_t)); /* fuzz fix */
        st = iseg_rle_from_counts(out, c, a->seg_len, a->seg_h, a->seg_w);
        iseg__free(c);
        if (st == ISEG_STATUS_OK) return PE_OK;
        return st == ISEG_STATUS_ENOMEM ? PE_NOMEM : st == ISEG_STATUS_ELIMIT ? PE_LIMIT
                                                                              : PE_RLE_COUNTS;
    }
    case SEG_RLE_STR: /* prepare_one scans strings instead */
        ISEG_ASSERT(a->seg_kind != SEG_RLE_STR);
        return PE_RLE_STR;
    default: {
        /* a bbox-branch result without segmentation: loadRes makes the box polygon
         * [x1, y1, x1, y2, x2, y2, x2, y1] */
        if ((uint64_t)ih * iw > ISEG_RLE_MAX_PIXELS) return PE_LIMIT;
        double x1 = a->bbox[0], y1 = a->bbox[1];
        double x2 = a->bbox[0] + a->bbox[2], y2 = a->bbox[1] + a->bbox[3];
        double xy[8] = {x1, y1, x1, y2, x2, y2, x2, y1};
        st = iseg_rle_from_poly(out, xy, 4, ih, iw);
        return st == ISEG_STATUS_OK ? PE_OK : st == ISEG_STATUS_ENOMEM ? PE_NOMEM : PE_POLY_BAD;
    }
    }
}

static enum prep_err store_string(const struct iseg_rle *r, char **s, uint32_t *len) {
    size_t n = iseg_rle_string_len(r);
    if (n > UINT32_MAX) return PE_LIMIT;
    char *p = iseg__malloc(n + 1);
    if (!p) return PE_NOMEM;
    iseg_rle_string_write(r, p);
    p[n] = 0;
    *s   = p;
    *len = (uint32_t)n;
    return PE_OK;
}

static enum prep_err prepare_one(struct iseg_coco_eval *ev, bool is_dt, struct coco_ann *a) {
    const struct coco_file *f   = is_dt ? &ev->dt : &ev->gt;
    const struct coco_img  *img = &ev->gt.imgs[a->img_idx];
    enum iseg_iou_type      it  = ev->p.iou_type;
    /* bbox evaluation needs masks only for segm-branch results (area, toBbox) */
    bool need_mask = it != ISEG_IOU_BBOX || (is_dt && !ev->dt_bbox_branch);
    bool gt_no_area = !is_dt && !(a->flags & AF_AREA);
    if (gt_no_area && it == ISEG_IOU_BBOX) a->area = a->bbox[2] * a->bbox[3];
    if (!need_mask) return PE_OK;
    struct iseg_rle m = {0};
    uint64_t        area;
    double          bb[4];
    enum prep_err   pe = PE_OK;
    if (a->seg_kind == SEG_RLE_STR) {
        /* compressed strings are checked, measured and boxed in one pass and kept as they are */
        enum iseg_status st = iseg__rle_string_scan(coco_ann_seg(f, a), a->seg_len, a->seg_h,
                                                    a->seg_w, &area, bb);
        if (st != ISEG_STATUS_OK) return st == ISEG_STATUS_ELIMIT ? PE_LIMIT : PE_RLE_STR;
        a->mh = a->seg_h;
        a->mw = a->seg_w;
    } else {
        pe = ann_mask(f, a, img->h, img->w, &m);
        if (pe != PE_OK) return pe;
        area  = iseg_rle_area(&m);
        iseg_rle_to_bbox(&m, bb);
        a->mh = m.h;
        a->mw = m.w;
    }
    a->mask_area = (uint32_t)area;
    for (int j = 0; j < 4; j++) a->mask_bb[j] = (uint32_t)bb[j];
    if (is_dt && !ev->dt_bbox_branch) {
        a->area = (double)area; /* loadRes segm branch: area = rleArea */
        if (!(a->flags & AF_BBOX)) memcpy(a->bbox, bb, sizeof(a->bbox));
    }
    if (gt_no_area) a->area = (double)area;
    if (it != ISEG_IOU_BBOX) {
        if (a->seg_kind == SEG_RLE_STR) {
            a->mask       = (char *)coco_ann_seg(f, a);
            a->mask_len   = a->seg_len;
            a->mask_owned = false;
        } else {
            pe = store_string(&m, &a->mask, &a->mask_len);
            a->mask_owned = pe == PE_OK;
        }
    }
    iseg_rle_free(&m);
    return pe;
}

static void prep_task(void *vctx, size_t item, int ith) {
    (void)ith;
    struct prep_ctx       *c  = vctx;
    struct iseg_coco_eval *ev = c->ev;
    size_t                 i  = c->base + item;
    bool                   is_dt = i >= c->n_gt;
    size_t                 ai = is_dt ? (size_t)ev->dt_list[i - c->n_gt] : (size_t)ev->gt_list[i];
    struct coco_ann       *a  = is_dt ? &ev->dt.anns[ai] : &ev->gt.anns[ai];
    c->errs[i]                = (uint8_t)prepare_one(ev, is_dt, a);
}

enum iseg_status iseg__coco_prepare(struct iseg_coco_eval *ev) {
    size_t n_gt = ev->gt_start[ev->n_eimg], n_dt = ev->dt_start[ev->n_eimg];
    struct prep_ctx c = {.ev = ev, .n_gt = n_gt, .n_items = n_gt + n_dt};
    c.errs = iseg__calloc(c.n_items ? c.n_items : 1, 1);
    if (!c.errs) {
        iseg__ev_error(ev, "out of memory");
        return ISEG_STATUS_ENOMEM;
    }
    size_t batch = 8192;
    for (c.base = 0; c.base < c.n_items; c.base += batch) {
        size_t n = c.n_items - c.base < batch ? c.n_items - c.base : batch;
        iseg__pool_run(ev->pool, n, 16, prep_task, &c);
        if (ev->p.progress) ev->p.progress("prepare", c.base + n, c.n_items, ev->p.progress_user);
    }
    /* report the first failure in file order (GT before results), whatever the thread count */
    enum iseg_status st = ISEG_STATUS_OK;
    size_t first = SIZE_MAX, first_ann = 0;
    bool   first_dt = false;
    for (size_t i = 0; i < c.n_items; i++) {
        if (!c.errs[i]) continue;
        bool   is_dt = i >= n_gt;
        size_t ai    = is_dt ? (size_t)ev->dt_list[i - n_gt] : (size_t)ev->gt_list[i];
        if (first == SIZE_MAX || is_dt < first_dt || (is_dt == first_dt && ai < first_ann)) {
            first     = i;
            first_ann = ai;
            first_dt  = is_dt;
        }
    }
    if (first != SIZE_MAX) {
        char where[512];
        iseg__ann_where(ev, first_dt, first_ann, where, sizeof(where));
        const struct coco_ann *a = first_dt ? &ev->dt.anns[first_ann] : &ev->gt.anns[first_ann];
        const struct coco_img *img = &ev->gt.imgs[a->img_idx];
        st = ISEG_STATUS_EFORMAT;
        switch ((enum prep_err)c.errs[first]) {
        case PE_NOMEM:
            iseg__ev_error(ev, "%s: out of memory", where);
            st = ISEG_STATUS_ENOMEM;
            break;
        case PE_POLY_ODD:
            iseg__ev_error(ev, "%s: a polygon has an odd number of coordinates", where);
            break;
        case PE_POLY_BAD:
            iseg__ev_error(ev, "%s: a polygon has a coordinate that is NaN or infinite", where);
            break;
        case PE_RLE_STR:
            iseg__ev_error(ev, "%s: invalid RLE counts string for size [%u, %u] (bad "
                               "characters, or counts that do not sum to height*width)",
                           where, a->seg_h, a->seg_w);
            break;
        case PE_RLE_COUNTS:
            iseg__ev_error(ev, "%s: RLE counts do not sum to height*width = %u*%u", where,
                           a->seg_h, a->seg_w);
            break;
        case PE_LIMIT: {
            uint32_t h = a->seg_kind == SEG_RLE_STR || a->seg_kind == SEG_RLE_COUNTS ? a->seg_h
                                                                                     : img->h;
            uint32_t w = a->seg_kind == SEG_RLE_STR || a->seg_kind == SEG_RLE_COUNTS ? a->seg_w
                                                                                     : img->w;
            if ((uint64_t)h * w > ISEG_RLE_MAX_PIXELS)
                iseg__ev_error(ev, "%s: mask of %ux%u pixels exceeds the limit of 2^31 pixels",
                               where, h, w);
            else
                iseg__ev_error(ev, "%s: a polygon coordinate is out of range (|x| > 4.29e8)",
                               where);
            st = ISEG_STATUS_ELIMIT;
            break;
        }
        default: iseg__ev_error(ev, "%s: internal error", where); st = ISEG_STATUS_EINTERNAL;
        }
    }
    iseg__free(c.errs);
    return st;
}
