/* pq_image.c - Panoptic Quality of one image: PNG decode, (gt, pred) pair counts, boundary
 * bands, matching and the false positive / negative rules.
 *
 * ref: panopticapi/evaluation.py pq_compute_single_core; boundary-iou-api
 * boundary_iou/coco_panoptic_api/evaluation.py (Boundary PQ). The reference counts pairs with
 * np.unique over gt * 2^24 + pred; here pairs are counted run by run in a hash table and then
 * sorted, which gives the same ascending (gt_id, pred_id) order for the IoU sums. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "iseg/image.h"
#include "iseg/mask.h"
#include "panoptic/pq_impl.h"

#define ISEG_LITTLE_ENDIAN (__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__)

struct pq_pair {
    uint64_t key; /* gt_id << 32 | pred_id */
    uint64_t cnt;
};

/* ---- scratch ---- */

static bool scratch_reserve(struct pq_scratch *s, size_t npx, size_t w) {
    if (npx > s->cap_px) {
        uint32_t *a = iseg__realloc_array(s->gt, npx, sizeof(uint32_t));
        if (a) s->gt = a;
        uint32_t *b = a ? iseg__realloc_array(s->pred, npx, sizeof(uint32_t)) : NULL;
        if (b) s->pred = b;
        uint32_t *c = b ? iseg__realloc_array(s->gt_b, npx, sizeof(uint32_t)) : NULL;
        if (c) s->gt_b = c;
        uint32_t *d = c ? iseg__realloc_array(s->pred_b, npx, sizeof(uint32_t)) : NULL;
        if (d) s->pred_b = d;
        if (!d) return false;
        s->cap_px = npx;
    }
    if (w > s->cap_w) {
        uint8_t *f = iseg__realloc(s->flag, w);
        if (f) s->flag = f;
        uint32_t *c = f ? iseg__realloc_array(s->cnt, w, sizeof(uint32_t)) : NULL;
        if (c) s->cnt = c;
        if (!c) return false;
        s->cap_w = w;
    }
    return true;
}

void iseg__pq_scratch_free(struct pq_scratch *s) {
    if (!s) return;
    iseg__free(s->gt);
    iseg__free(s->pred);
    iseg__free(s->gt_b);
    iseg__free(s->pred_b);
    iseg__free(s->flag);
    iseg__free(s->cnt);
    iseg__free(s->flag_rows);
    iseg__free(s->hkey);
    iseg__free(s->hval);
    memset(s, 0, sizeof(*s));
}

/* ---- pair counting: open addressing, a zero count marks an empty slot ---- */

static inline size_t hslot(uint64_t k, size_t mask) {
    return (size_t)((k * 0x9E3779B97F4A7C15ull) >> 32) & mask;
}

static bool hash_reset(struct pq_scratch *s) {
    if (!s->hkey) {
        s->hcap = 1024;
        s->hkey = iseg__malloc_array(s->hcap, sizeof(uint64_t));
        s->hval = s->hkey ? iseg__calloc(s->hcap, sizeof(uint64_t)) : NULL;
        if (!s->hval) {
            iseg__free(s->hkey);
            s->hkey = NULL;
            return false;
        }
    } else {
        memset(s->hval, 0, s->hcap * sizeof(uint64_t));
    }
    s->hn = 0;
    return true;
}

static bool hash_add(struct pq_scratch *s, uint64_t k, uint64_t n) {
    if (2 * (s->hn + 1) > s->hcap) {
        size_t    cap  = 2 * s->hcap;
        uint64_t *keys = iseg__malloc_array(cap, sizeof(uint64_t));
        uint64_t *vals = keys ? iseg__calloc(cap, sizeof(uint64_t)) : NULL;
        if (!vals) {
            iseg__free(keys);
            return false;
        }
        for (size_t i = 0; i < s->hcap; i++) {
            if (!s->hval[i]) continue;
            size_t j = hslot(s->hkey[i], cap - 1);
            while (vals[j]) j = (j + 1) & (cap - 1);
            keys[j] = s->hkey[i];
            vals[j] = s->hval[i];
        }
        iseg__free(s->hkey);
        iseg__free(s->hval);
        s->hkey = keys;
        s->hval = vals;
        s->hcap = cap;
    }
    size_t j = hslot(k, s->hcap - 1);
    while (s->hval[j] && s->hkey[j] != k) j = (j + 1) & (s->hcap - 1);
    if (!s->hval[j]) {
        s->hkey[j] = k;
        s->hn++;
    }
    s->hval[j] += n;
    return true;
}

static int cmp_pair(const void *a, const void *b) {
    uint64_t x = ((const struct pq_pair *)a)->key, y = ((const struct pq_pair *)b)->key;
    return x < y ? -1 : x > y;
}

/* Count (a[i], b[i]) pairs over n pixels (n >= 1) into a new array sorted by key. */
static bool count_pairs(struct pq_scratch *s, const uint32_t *a, const uint32_t *b, size_t n,
                        struct pq_pair **out, size_t *n_out) {
    *out   = NULL;
    *n_out = 0;
    if (!hash_reset(s)) return false;
    uint64_t cur = ((uint64_t)a[0] << 32) | b[0], run = 0;
    for (size_t i = 0; i < n; i++) {
        uint64_t k = ((uint64_t)a[i] << 32) | b[i];
        if (k == cur) {
            run++;
            continue;
        }
        if (!hash_add(s, cur, run)) return false;
        cur = k;
        run = 1;
    }
    if (!hash_add(s, cur, run)) return false;
    struct pq_pair *p = iseg__malloc_array(s->hn + 1, sizeof(*p));
    if (!p) return false;
    size_t m = 0;
    for (size_t i = 0; i < s->hcap; i++)
        if (s->hval[i]) p[m++] = (struct pq_pair){s->hkey[i], s->hval[i]};
    qsort(p, m, sizeof(*p), cmp_pair);
    *out   = p;
    *n_out = m;
    return true;
}

static uint64_t pair_get(const struct pq_pair *p, size_t n, uint64_t g, uint64_t q) {
    uint64_t k  = (g << 32) | q;
    size_t   lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (p[mid].key < k) lo = mid + 1;
        else hi = mid;
    }
    return lo < n && p[lo].key == k ? p[lo].cnt : 0;
}

/* ---- segment lookup: (id, position) sorted by id ---- */

struct id_pos {
    int64_t id;
    size_t  pos;
};

static int cmp_id_pos(const void *a, const void *b) {
    int64_t x = ((const struct id_pos *)a)->id, y = ((const struct id_pos *)b)->id;
    return x < y ? -1 : x > y;
}

static struct id_pos *index_segs(const struct pq_seg *segs, size_t n) {
    struct id_pos *ix = iseg__malloc_array(n + 1, sizeof(*ix));
    if (!ix) return NULL;
    for (size_t i = 0; i < n; i++) ix[i] = (struct id_pos){segs[i].id, i};
    qsort(ix, n, sizeof(*ix), cmp_id_pos);
    return ix;
}

/* Position of id in segments_info, or SIZE_MAX. */
static size_t find_seg(const struct id_pos *ix, size_t n, int64_t id) {
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (ix[mid].id < id) lo = mid + 1;
        else hi = mid;
    }
    return lo < n && ix[lo].id == id ? ix[lo].pos : SIZE_MAX;
}

/* ---- PNG -> id map ---- */

/* Decode dir/file into *ids (scratch grown for it). R + 256 G + 256^2 B for 8-bit colour,
 * the sample itself for gray. */
static enum iseg_status read_ids(const char *dir, const char *file, struct pq_scratch *s,
                                 bool is_gt, uint32_t *w, uint32_t *h, char *path, size_t plen,
                                 char *err, size_t errlen) {
    snprintf(path, plen, "%s%s%s", dir, dir[0] ? "/" : "", file);
    struct iseg_image img = {0};
    enum iseg_status  st  = iseg_png_read(path, &img, err, errlen);
    if (st != ISEG_STATUS_OK) return st;
    if (img.c >= 3 && img.depth != 8) {
        snprintf(err, errlen, "%s: 16-bit colour PNG: panoptic ids are R + 256 G + 256^2 B of "
                 "8-bit samples", path);
        iseg_image_free(&img);
        return ISEG_STATUS_EFORMAT;
    }
    size_t npx = (size_t)img.w * img.h;
    /* both maps of an image must fit: grow for the larger of this one and what is there */
    if (!scratch_reserve(s, npx, img.w)) {
        snprintf(err, errlen, "%s: out of memory for a %u x %u image", path, img.w, img.h);
        iseg_image_free(&img);
        return ISEG_STATUS_ENOMEM;
    }
    uint32_t *out = is_gt ? s->gt : s->pred;
    if (img.c == 3) {
        const uint8_t *px = img.data;
        size_t         i  = 0;
        if (ISEG_LITTLE_ENDIAN && npx > 0) {
            /* one unaligned 4-byte load per pixel (the 4th byte is the next pixel's R, masked
             * off); the last pixel has no 4th byte and is done below */
            for (; i + 1 < npx; i++) {
                uint32_t v;
                memcpy(&v, px + 3 * i, sizeof(v));
                out[i] = v & 0xffffffu;
            }
        }
        for (; i < npx; i++)
            out[i] = (uint32_t)px[3 * i] | (uint32_t)px[3 * i + 1] << 8 |
                     (uint32_t)px[3 * i + 2] << 16;
    } else if (img.c == 4) {
        /* alpha ignored, as the reference's rgb2id reads channels 0..2 */
        const uint8_t *px = img.data;
        for (size_t i = 0; i < npx; i++) {
            uint32_t v;
            memcpy(&v, px + 4 * i, sizeof(v));
            out[i] = ISEG_LITTLE_ENDIAN ? v & 0xffffffu
                                        : (uint32_t)px[4 * i] | (uint32_t)px[4 * i + 1] << 8 |
                                              (uint32_t)px[4 * i + 2] << 16;
        }
    } else if (img.depth == 8) {
        const uint8_t *px = img.data;
        for (size_t i = 0; i < npx; i++) out[i] = px[i * img.c];
    } else {
        const uint16_t *px = img.data;
        for (size_t i = 0; i < npx; i++) out[i] = px[i * img.c];
    }
    *w = img.w;
    *h = img.h;
    iseg_image_free(&img);
    return ISEG_STATUS_OK;
}

/* ---- boundary id maps ---- */

/* B = L, except that interior pixels of the listed segments (every pixel of their
 * (2d+1)^2 window lies in the image and has the same id) become mark: boundary-iou-api's map,
 * where each segment's inner band of width d keeps its id. A pixel is interior iff the
 * horizontal window around it is uniform in each of the 2d+1 rows around it and the rows
 * agree; a per-row pass finds uniform horizontal windows, and per-column counters of
 * consecutive such rows with equal ids finish the square. */
static void boundary_map(const uint32_t *L, uint32_t *B, uint32_t w, uint32_t h, uint32_t d,
                         uint32_t mark, const struct id_pos *ix, size_t n_ix, uint8_t *flag,
                         uint32_t *cnt) {
    size_t npx = (size_t)w * h;
    memcpy(B, L, npx * sizeof(*B));
    memset(cnt, 0, (size_t)w * sizeof(*cnt));
    uint64_t span = 2 * (uint64_t)d + 1;
    if (span > w || span > h) return; /* no pixel can be interior */
    bool     have_last = false, last_seg = false;
    uint32_t last      = 0;
    for (uint32_t y = 0; y < h; y++) {
        const uint32_t *row = L + (size_t)y * w;
        uint32_t        x   = 0;
        while (x < w) {
            uint32_t a = x, v = row[x];
            while (x < w && row[x] == v) x++;
            if (!have_last || v != last) {
                last      = v;
                last_seg  = find_seg(ix, n_ix, v) != SIZE_MAX;
                have_last = true;
            }
            /* flag = inside a segment's horizontal run, at least d pixels from its ends */
            memset(flag + a, 0, x - a);
            if (last_seg && (uint64_t)a + 2 * (uint64_t)d < x) memset(flag + a + d, 1, x - a - 2 * d);
        }
        /* cnt[x] = how many rows up to this one are flagged with the same id (branch-free so
         * that it vectorises); a pixel d rows up is interior once 2d + 1 rows agree */
        const uint32_t *up = y ? row - w : row;
        for (x = 0; x < w; x++) {
            uint32_t same = (uint32_t)(row[x] == up[x]);
            cnt[x]        = (uint32_t)flag[x] * (1 + same * cnt[x]);
        }
        uint32_t *brow = y >= d ? B + (size_t)(y - d) * w : NULL;
        for (x = 0; x < w; x++)
            if (cnt[x] >= span) brow[x] = mark;
    }
}

/* boundary-iou-api marks interiors with (largest category id + 1) while walking segments_info;
 * a segment whose id equals that marker therefore takes, as its mask, its own pixels plus the
 * interiors of the segments listed before it. Its band area is computed here from that mask
 * (rare: only for a segment id equal to the marker). */
static enum iseg_status marker_segment_area(const uint32_t *L, const uint32_t *B, uint32_t w,
                                            uint32_t h, uint32_t d, uint32_t mark,
                                            const struct id_pos *ix, size_t n_ix, size_t pos,
                                            uint64_t *area) {
    size_t   npx  = (size_t)w * h;
    uint8_t *mask = iseg__malloc(npx ? npx : 1);
    if (!mask) return ISEG_STATUS_ENOMEM;
    for (uint32_t y = 0; y < h; y++)
        for (uint32_t x = 0; x < w; x++) {
            size_t   i = (size_t)y * w + x;
            uint8_t  m = L[i] == mark;
            if (!m && B[i] == mark) m = find_seg(ix, n_ix, L[i]) < pos;
            mask[(size_t)x * h + y] = m; /* column-major for the RLE */
        }
    struct iseg_rle r = {0}, b = {0};
    enum iseg_status st = iseg_rle_encode(&r, mask, h, w);
    iseg__free(mask);
    if (st == ISEG_STATUS_OK) st = iseg_rle_boundary(&b, &r, d);
    if (st == ISEG_STATUS_OK) *area = iseg_rle_area(&b);
    iseg_rle_free(&r);
    iseg_rle_free(&b);
    return st;
}

/* ---- one image ---- */

struct img_ctx {
    const struct pq_job  *job;
    const struct pq_ann  *ga, *pa;
    struct pq_img_result *res;
    char                  idbuf[80];
    char                  gpath[1024], ppath[1024];
};

__attribute__((format(printf, 4, 5))) static void set_error(struct img_ctx *c,
                                                           enum iseg_status st,
                                                           const char *file, const char *fmt,
                                                           ...) {
    char    msg[600], full[1800];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    snprintf(full, sizeof(full), "%s: image %s: %s", file, c->idbuf, msg);
    c->res->st  = st;
    c->res->err = iseg__strdup(full);
}

/* A PNG reader message "<path>: <what>" becomes "<path>: image <id>: <what>". */
static void png_error(struct img_ctx *c, enum iseg_status st, const char *path,
                      const char *err) {
    size_t n = strlen(path);
    if (strncmp(err, path, n) == 0 && err[n] == ':' && err[n + 1] == ' ') err += n + 2;
    set_error(c, st, path, "%s", err);
}

static void add_event(struct pq_img_result *r, int32_t cat_idx, enum pq_ev_kind kind,
                      double iou) {
    r->ev[r->n_ev++] = (struct pq_event){(uint32_t)cat_idx, (uint32_t)kind, iou};
}

/* Most segment ids listed in a "JSON but not PNG" message. */
#define MAX_LISTED 8

void iseg__pq_image(const struct pq_job *job, size_t i, struct pq_scratch *s,
                    struct pq_img_result *res) {
    struct img_ctx c = {.job = job, .res = res};
    c.ga             = &job->gt->anns[i];
    c.pa             = &job->pred->anns[job->pred_of[i]];
    memset(res, 0, sizeof(*res));
    iseg__pq_imgid_str(&c.ga->image_id, c.idbuf, sizeof(c.idbuf));

    const struct pq_seg *gs = job->gt->segs + c.ga->seg_off, *ps = job->pred->segs + c.pa->seg_off;
    size_t               ng = c.ga->n_seg, np = c.pa->n_seg;
    struct id_pos       *gix = NULL, *pix = NULL;
    struct pq_pair      *pairs = NULL, *bpairs = NULL, *labels = NULL;
    size_t               n_pairs = 0, n_bpairs = 0;
    uint64_t            *parea = NULL, *pvoid = NULL, *gbarea = NULL, *pbarea = NULL;
    uint8_t             *gmatched = NULL, *pmatched = NULL;
    struct { int64_t cat, id; } *crowd = NULL;
    size_t               n_crowd = 0;
    char                 err[700];
    uint32_t             gw, gh, pw, ph;
    enum iseg_status     st;

    st = read_ids(job->gt_dir, c.ga->file_name, s, true, &gw, &gh, c.gpath, sizeof(c.gpath), err,
                  sizeof(err));
    if (st != ISEG_STATUS_OK) {
        png_error(&c, st, c.gpath, err);
        return;
    }
    st = read_ids(job->pred_dir, c.pa->file_name, s, false, &pw, &ph, c.ppath, sizeof(c.ppath),
                  err, sizeof(err));
    if (st != ISEG_STATUS_OK) {
        png_error(&c, st, c.ppath, err);
        return;
    }
    if (pw != gw || ph != gh) {
        set_error(&c, ISEG_STATUS_ESHAPE, c.ppath, "size %u x %u differs from the ground truth "
                  "%s (%u x %u)", pw, ph, c.gpath, gw, gh);
        return;
    }
    /* the ground truth's "images" entry, when it has a usable size, must agree with the PNG */
    const struct pq_file *gf = job->gt;
    size_t lo = 0, hi = gf->n_size;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (iseg__pq_imgid_cmp(&gf->sizes[mid].image_id, &c.ga->image_id) < 0) lo = mid + 1;
        else hi = mid;
    }
    if (lo < gf->n_size && iseg__pq_imgid_cmp(&gf->sizes[lo].image_id, &c.ga->image_id) == 0) {
        const struct pq_size *sz = &gf->sizes[lo];
        bool agree = true; /* entries repeated with different sizes are not checked */
        for (size_t k = lo + 1;
             k < gf->n_size && iseg__pq_imgid_cmp(&gf->sizes[k].image_id, &c.ga->image_id) == 0;
             k++)
            agree &= gf->sizes[k].w == sz->w && gf->sizes[k].h == sz->h;
        if (agree && (sz->w != gw || sz->h != gh)) {
            set_error(&c, ISEG_STATUS_ESHAPE, c.gpath, "size %u x %u differs from the %s "
                      "\"images\" entry (%u x %u)", gw, gh, gf->name, sz->w, sz->h);
            return;
        }
    }
    size_t npx = (size_t)gw * gh;

    res->ev  = iseg__malloc_array(ng + np + 1, sizeof(*res->ev));
    gix      = index_segs(gs, ng);
    pix      = index_segs(ps, np);
    parea    = iseg__calloc(np + 1, sizeof(*parea));
    pvoid    = iseg__calloc(np + 1, sizeof(*pvoid));
    gbarea   = iseg__calloc(ng + 1, sizeof(*gbarea));
    pbarea   = iseg__calloc(np + 1, sizeof(*pbarea));
    gmatched = iseg__calloc(ng + 1, 1);
    pmatched = iseg__calloc(np + 1, 1);
    crowd    = iseg__malloc_array(ng + 1, sizeof(*crowd));
    if (!res->ev || !gix || !pix || !parea || !pvoid || !gbarea || !pbarea || !gmatched ||
        !pmatched || !crowd)
        goto nomem;
    if (!count_pairs(s, s->gt, s->pred, npx, &pairs, &n_pairs)) goto nomem;

    /* Prediction sanity, in ascending PNG id order as np.unique reports them. */
    labels = iseg__malloc_array(n_pairs + 1, sizeof(*labels));
    if (!labels) goto nomem;
    for (size_t k = 0; k < n_pairs; k++)
        labels[k] = (struct pq_pair){pairs[k].key & 0xffffffffu, pairs[k].cnt};
    qsort(labels, n_pairs, sizeof(*labels), cmp_pair);
    for (size_t k = 0; k < n_pairs;) {
        uint64_t id = labels[k].key, cnt = 0;
        while (k < n_pairs && labels[k].key == id) cnt += labels[k++].cnt;
        size_t j = find_seg(pix, np, (int64_t)id);
        if (j == SIZE_MAX) {
            if (id == 0) continue; /* VOID */
            set_error(&c, ISEG_STATUS_EFORMAT, c.ppath, "segment %llu (RGB %u,%u,%u) is in the "
                      "PNG but not in %s segments_info", (unsigned long long)id,
                      (unsigned)(id & 255), (unsigned)(id >> 8 & 255), (unsigned)(id >> 16 & 255),
                      job->pred->name);
            goto out;
        }
        parea[j] = cnt;
        if (ps[j].cat_idx < 0) {
            set_error(&c, ISEG_STATUS_EFORMAT, job->pred->name, "segment %llu has unknown "
                      "category_id %lld (not in %s categories)", (unsigned long long)id,
                      (long long)ps[j].cat, job->gt->name);
            goto out;
        }
    }
    {
        char   list[200] = "";
        size_t n_missing = 0, len = 0;
        for (size_t j = 0; j < np; j++) {
            if (parea[j]) continue;
            if (n_missing++ < MAX_LISTED && len < sizeof(list))
                len += (size_t)snprintf(list + len, sizeof(list) - len, "%s%lld",
                                        n_missing > 1 ? ", " : "", (long long)ps[j].id);
        }
        if (n_missing) {
            set_error(&c, ISEG_STATUS_EFORMAT, job->pred->name, "segment%s %s%s in "
                      "segments_info but not in the PNG %s", n_missing > 1 ? "s" : "", list,
                      n_missing > MAX_LISTED ? ", ... are" : n_missing > 1 ? " are" : " is",
                      c.ppath);
            goto out;
        }
    }
    /* prediction pixels on ground-truth VOID (gt id 0): the first pairs */
    for (size_t k = 0; k < n_pairs && (pairs[k].key >> 32) == 0; k++) {
        size_t j = find_seg(pix, np, (int64_t)(pairs[k].key & 0xffffffffu));
        if (j != SIZE_MAX) pvoid[j] = pairs[k].cnt;
    }

    if (job->boundary) {
        uint32_t d      = iseg_boundary_dilation(gh, gw, job->dilation_ratio);
        size_t   g_mark = find_seg(gix, ng, job->mark), p_mark = find_seg(pix, np, job->mark);
        boundary_map(s->gt, s->gt_b, gw, gh, d, job->mark, gix, ng, s->flag, s->cnt);
        boundary_map(s->pred, s->pred_b, gw, gh, d, job->mark, pix, np, s->flag, s->cnt);
        /* all pairs: the band areas are marginals of this table, interiors included */
        if (!count_pairs(s, s->gt_b, s->pred_b, npx, &bpairs, &n_bpairs)) goto nomem;
        for (size_t k = 0; k < n_bpairs; k++) {
            size_t jg = find_seg(gix, ng, (int64_t)(bpairs[k].key >> 32));
            size_t jp = find_seg(pix, np, (int64_t)(bpairs[k].key & 0xffffffffu));
            if (jg != SIZE_MAX) gbarea[jg] += bpairs[k].cnt;
            if (jp != SIZE_MAX) pbarea[jp] += bpairs[k].cnt;
        }
        if (g_mark != SIZE_MAX &&
            marker_segment_area(s->gt, s->gt_b, gw, gh, d, job->mark, gix, ng, g_mark,
                                &gbarea[g_mark]) != ISEG_STATUS_OK)
            goto nomem;
        if (p_mark != SIZE_MAX &&
            marker_segment_area(s->pred, s->pred_b, gw, gh, d, job->mark, pix, np, p_mark,
                                &pbarea[p_mark]) != ISEG_STATUS_OK)
            goto nomem;
    }

    /* Matching: every (gt, pred) pair in ascending order. */
    for (size_t k = 0; k < n_pairs; k++) {
        uint64_t g = pairs[k].key >> 32, p = pairs[k].key & 0xffffffffu;
        size_t   jg = find_seg(gix, ng, (int64_t)g), jp;
        if (jg == SIZE_MAX || (jp = find_seg(pix, np, (int64_t)p)) == SIZE_MAX) continue;
        if (gs[jg].crowd == 1 || gs[jg].cat != ps[jp].cat) continue;
        if (isnan(gs[jg].area)) {
            set_error(&c, ISEG_STATUS_EFORMAT, job->gt->name, "segment %llu has no \"area\" "
                      "(needed to match prediction segment %llu)", (unsigned long long)g,
                      (unsigned long long)p);
            goto out;
        }
        /* ref: union = area(p) + area(g) - inter - |p & VOID|, left to right */
        double inter = (double)pairs[k].cnt;
        double uni   = (double)parea[jp] + gs[jg].area - inter - (double)pvoid[jp];
        double iou   = inter / uni;
        if (job->boundary) {
            double bi = (double)pair_get(bpairs, n_bpairs, g, p);
            double bu = (double)pbarea[jp] + (double)gbarea[jg] - bi -
                        (double)pair_get(bpairs, n_bpairs, 0, p);
            double biou = bi / bu;
            if (biou < iou) iou = biou; /* Python's min(iou, biou) keeps iou on ties and NaN */
        }
        if (iou > 0.5) {
            add_event(res, ps[jp].cat_idx, PQ_EV_TP, iou);
            gmatched[jg] = pmatched[jp] = 1;
        }
    }
    /* False negatives; crowd regions by class (the last one listed wins). */
    for (size_t j = 0; j < ng; j++) {
        if (gmatched[j]) continue;
        if (gs[j].crowd == 1) {
            size_t q = 0;
            while (q < n_crowd && crowd[q].cat != gs[j].cat) q++;
            crowd[q].cat = gs[j].cat;
            crowd[q].id  = gs[j].id;
            if (q == n_crowd) n_crowd++;
            continue;
        }
        if (gs[j].cat_idx >= 0) add_event(res, gs[j].cat_idx, PQ_EV_FN, 0.0);
    }
    /* False positives, unless more than half lies on VOID plus the class's crowd region. */
    for (size_t j = 0; j < np; j++) {
        if (pmatched[j]) continue;
        uint64_t inter = pvoid[j];
        for (size_t q = 0; q < n_crowd; q++)
            if (crowd[q].cat == ps[j].cat && crowd[q].id >= 0 && crowd[q].id <= UINT32_MAX)
                inter += pair_get(pairs, n_pairs, (uint64_t)crowd[q].id, (uint64_t)ps[j].id);
        if ((double)inter / (double)parea[j] > 0.5) continue;
        add_event(res, ps[j].cat_idx, PQ_EV_FP, 0.0);
    }
    goto out;

nomem:
    set_error(&c, ISEG_STATUS_ENOMEM, c.gpath, "out of memory");
out:
    if (res->st != ISEG_STATUS_OK) {
        iseg__free(res->ev);
        res->ev   = NULL;
        res->n_ev = 0;
    }
    iseg__free(gix);
    iseg__free(pix);
    iseg__free(pairs);
    iseg__free(bpairs);
    iseg__free(labels);
    iseg__free(parea);
    iseg__free(pvoid);
    iseg__free(gbarea);
    iseg__free(pbarea);
    iseg__free(gmatched);
    iseg__free(pmatched);
    iseg__free(crowd);
}
