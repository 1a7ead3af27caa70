/* coco_match.c - per-image evaluation: IoU matrices and COCOeval.evaluateImg's matching for
 * every area range and IoU threshold at once.
 *
 * ref: pycocotools/cocoeval.py computeIoU, evaluateImg */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eval/coco_eval_impl.h"
#include "iseg/match.h"

/* ---- stable merge sort by descending key ---- */

void iseg__sort_desc_stable(int32_t *idx, const double *key, size_t n, int32_t *tmp) {
    if (n < 2) return;
    if (n <= 16) {
        for (size_t i = 1; i < n; i++) {
            int32_t v = idx[i];
            size_t  j = i;
            while (j > 0 && key[idx[j - 1]] < key[v]) {
                idx[j] = idx[j - 1];
                j--;
            }
            idx[j] = v;
        }
        return;
    }
    size_t h = n / 2;
    iseg__sort_desc_stable(idx, key, h, tmp);
    iseg__sort_desc_stable(idx + h, key, n - h, tmp);
    if (!(key[idx[h - 1]] < key[idx[h]])) return; /* already in order */
    memcpy(tmp, idx, h * sizeof(int32_t));
    size_t i = 0, j = h, o = 0;
    while (i < h && j < n) {
        /* take from the right only if strictly greater: ties keep the left (earlier) one */
        if (key[idx[j]] > key[tmp[i]]) idx[o++] = idx[j++];
        else idx[o++] = tmp[i++];
    }
    while (i < h) idx[o++] = tmp[i++];
}

/* ---- per-image work ---- */

struct eval_ctx {
    struct iseg_coco_eval *ev;
    size_t                 base;
    atomic_int             status;  /* first error status (ENOMEM) */
};

/* a group under construction: annotation indices */
struct grp_src {
    int32_t        k;
    const int32_t *g;   /* gt ann indices (file order within category order) */
    size_t         ng;
    const int32_t *d;
    size_t         nd_all;
};

static size_t align8(size_t x) { return (x + 7) & ~(size_t)7; }

static size_t grp_bytes(const struct iseg_coco_eval *ev, size_t nd, size_t ng) {
    size_t b = align8(nd * sizeof(double)) + align8(N_A * ev->T * nd) +
               align8(nd * sizeof(int32_t));
    if (ev->p.keep_matches)
        b += align8(ng * sizeof(int32_t)) + align8(nd * sizeof(int32_t)) +
             align8(nd * sizeof(double)) + align8(ng) + align8(ng);
    return b;
}

static void *carve(char **p, size_t bytes) {
    void *r = *p;
    *p += align8(bytes);
    return r;
}

/* Decode the masks (validated when loaded) whose need flag is set into buf, which holds the
 * sum of their string lengths in counts; the others get only their size (iseg_rle_iou_bb never
 * walks a pair whose boxes do not overlap). */
static void decode_masks(const struct coco_file *f, const int32_t *ids, size_t n,
                         const uint8_t *need, struct iseg_rle *out, uint32_t **buf) {
    for (size_t i = 0; i < n; i++) {
        const struct coco_ann *a = &f->anns[ids[i]];
        if (!need[i]) {
            out[i] = (struct iseg_rle){.h = a->mh, .w = a->mw};
            continue;
        }
        enum iseg_status st = iseg_rle_from_string_buf(&out[i], a->mask, a->mask_len, a->mh,
                                                       a->mw, *buf);
        ISEG_ASSERT(st == ISEG_STATUS_OK);
        *buf += a->mask_len;
    }
}

/* IoU matrix o[g*D + d] for the sorted, truncated detections. */
static bool compute_iou(struct iseg_coco_eval *ev, const int32_t *dts, size_t D,
                        const int32_t *gts, size_t G, const uint8_t *crowd, uint32_t dil,
                        double *o) {
    const struct coco_file *gt = &ev->gt, *dt = &ev->dt;
    if (D == 0 || G == 0) return true;
    if (ev->p.iou_type == ISEG_IOU_BBOX) {
        double *db = iseg__malloc_array(4 * (D + G), sizeof(double));
        if (!db) return false;
        for (size_t d = 0; d < D; d++) memcpy(db + 4 * d, dt->anns[dts[d]].bbox, 4 * sizeof(double));
        for (size_t g = 0; g < G; g++)
            memcpy(db + 4 * (D + g), gt->anns[gts[g]].bbox, 4 * sizeof(double));
        iseg_bbox_iou(db, D, db + 4 * D, G, crowd, o);
        iseg__free(db);
        return true;
    }
    bool             ok   = false;
    bool             bnd  = ev->p.iou_type == ISEG_IOU_BOUNDARY;
    struct iseg_rle *r    = iseg__calloc((D + G) * (bnd ? 2 : 1), sizeof(struct iseg_rle));
    double          *bb   = iseg__malloc_array(4 * (D + G), sizeof(double));
    uint64_t        *area = iseg__malloc_array(D + G, sizeof(uint64_t));
    uint8_t         *need = iseg__calloc(D + G, 1);
    uint32_t        *cbuf = NULL;
    if (!r || !bb || !area || !need) goto out;
    for (size_t d = 0; d < D; d++) {
        for (int j = 0; j < 4; j++) bb[4 * d + j] = dt->anns[dts[d]].mask_bb[j];
        area[d] = dt->anns[dts[d]].mask_area;
    }
    for (size_t g = 0; g < G; g++) {
        for (int j = 0; j < 4; j++) bb[4 * (D + g) + j] = gt->anns[gts[g]].mask_bb[j];
        area[D + g] = gt->anns[gts[g]].mask_area;
    }
    /* only masks in a pair whose boxes overlap are ever walked (rleIou's box pre-filter) */
    size_t nc = 0;
    for (size_t d = 0; d < D; d++)
        for (size_t g = 0; g < G; g++) {
            const double *a = bb + 4 * d, *b = bb + 4 * (D + g);
            double        iw = fmin(a[0] + a[2], b[0] + b[2]) - fmax(a[0], b[0]);
            double        ih = fmin(a[1] + a[3], b[1] + b[3]) - fmax(a[1], b[1]);
            if (iw > 0 && ih > 0) need[d] = need[D + g] = 1;
        }
    for (size_t d = 0; d < D; d++) nc += need[d] ? dt->anns[dts[d]].mask_len : 0;
    for (size_t g = 0; g < G; g++) nc += need[D + g] ? gt->anns[gts[g]].mask_len : 0;
    cbuf = iseg__malloc_array(nc + 1, sizeof(uint32_t));
    if (!cbuf) goto out;
    uint32_t *cur = cbuf;
    decode_masks(dt, dts, D, need, r, &cur);
    decode_masks(gt, gts, G, need + D, r + D, &cur);
    iseg_rle_iou_bb(r, D, r + D, G, crowd, bb, bb + 4 * D, area, area + D, o);
    if (bnd) {
        /* Boundary IoU: min(mask IoU, boundary IoU) for non-crowd ground truth; where the mask
         * IoU is <= 0 the minimum is the mask IoU, so those pairs need no boundary. Bands are
         * computed here, once per annotation (each is in one group), and only when needed. */
        struct iseg_rle *rb = r + D + G;
        for (size_t g = 0; g < G; g++) {
            if (crowd[g]) continue;
            for (size_t d = 0; d < D; d++) {
                double *v = &o[g * D + d];
                if (!(*v > 0)) continue;
                if (!rb[d].cnts && iseg_rle_boundary(&rb[d], &r[d], dil) != ISEG_STATUS_OK)
                    goto out;
                if (!rb[D + g].cnts &&
                    iseg_rle_boundary(&rb[D + g], &r[D + g], dil) != ISEG_STATUS_OK)
                    goto out;
                double b = iseg_rle_iou_pair(&rb[d], &rb[D + g], false);
                if (b < *v) *v = b;
            }
        }
    }
    ok = true;
out:
    if (r && bnd)
        for (size_t i = D + G; i < 2 * (D + G); i++) iseg_rle_free(&r[i]); /* owned bands */
    iseg__free(cbuf);
    iseg__free(need);
    iseg__free(r);
    iseg__free(bb);
    iseg__free(area);
    return ok;
}

/* Matching for one area range; writes flags for all thresholds. ious: o[g*D + d], g in
 * original order; gord: ground-truth positions sorted with non-ignored first. */
static bool match_area(struct iseg_coco_eval *ev, struct grp *gr, size_t a, size_t D, size_t G,
                       const double *ious, const uint8_t *crowd, const uint8_t *gt_ig,
                       const size_t *gord, const double *dt_area, int32_t *gtm,
                       int32_t *dtm) {
    const double lo = ev->p.area_rng[a][0], hi = ev->p.area_rng[a][1];
    bool         hung = ev->p.matching == ISEG_MATCHING_HUNGARIAN;
    for (size_t t = 0; t < ev->T; t++) {
        /* flags are detection-major: (D, N_A, T) */
        uint8_t *fl = gr->flags + a * ev->T + t;
        const size_t fstride = N_A * ev->T;
        for (size_t g = 0; g < G; g++) gtm[g] = -1;
        for (size_t d = 0; d < D; d++) dtm[d] = -1;
        double thr = ev->iou_thrs[t] < 1 - 1e-10 ? ev->iou_thrs[t] : 1 - 1e-10;
        if (hung && D > 0 && G > 0) {
            /* optimal matching against the non-ignored ground truth (they come first) */
            size_t G0 = 0;
            while (G0 < G && !gt_ig[gord[G0]]) G0++;
            if (G0 > 0) {
                double  *w     = iseg__malloc_array(D * G0, sizeof(double));
                uint8_t *allow = iseg__malloc(D * G0);
                int32_t *r2c   = iseg__malloc_array(D, sizeof(int32_t));
                bool     ok    = w && allow && r2c;
                if (ok) {
                    double K = (double)(D < G0 ? D : G0) + 1;
                    for (size_t d = 0; d < D; d++)
                        for (size_t j = 0; j < G0; j++) {
                            double v         = ious[gord[j] * D + d];
                            allow[d * G0 + j] = v >= thr;
                            w[d * G0 + j]     = K + (v >= 0 ? v : 0);
                        }
                    ok = iseg_assign_max_weight(w, allow, D, G0, r2c, NULL) == ISEG_STATUS_OK;
                }
                if (ok)
                    for (size_t d = 0; d < D; d++)
                        if (r2c[d] >= 0) {
                            dtm[d]         = r2c[d];
                            gtm[r2c[d]]    = (int32_t)d;
                        }
                iseg__free(w);
                iseg__free(allow);
                iseg__free(r2c);
                if (!ok) return false;
            }
        }
        for (size_t d = 0; d < D; d++) {
            if (dtm[d] >= 0) continue;
            double best = thr;
            long   m    = -1;
            for (size_t j = 0; j < G; j++) {
                size_t g = gord[j];
                if (hung && !gt_ig[g]) continue; /* already assigned optimally */
                if (gtm[j] >= 0 && !crowd[g]) continue;
                if (m > -1 && !gt_ig[gord[m]] && gt_ig[g]) break;
                double v = ious[g * D + d];
                if (v < best) continue;
                best = v;
                m    = (long)j;
            }
            if (m == -1) continue;
            dtm[d] = (int32_t)m;
            gtm[m] = (int32_t)d;
        }
        for (size_t d = 0; d < D; d++) {
            uint8_t f = 0;
            if (dtm[d] >= 0) {
                f = DF_TP;
                if (gt_ig[gord[dtm[d]]]) f |= DF_IG;
            } else if (dt_area[d] < lo || dt_area[d] > hi) {
                f = DF_IG;
            }
            fl[d * fstride] = f;
        }
        if (ev->p.keep_matches && a == 0 && t == ev->match_t) {
            for (size_t d = 0; d < D; d++) {
                gr->m_gt[d]  = dtm[d];
                gr->m_iou[d] = dtm[d] >= 0 ? ious[gord[dtm[d]] * D + d] : 0;
            }
            for (size_t j = 0; j < G; j++) {
                gr->gt_matched[j] = gtm[j] >= 0;
                gr->gt_ig[j]      = gt_ig[gord[j]];
            }
        }
    }
    return true;
}

static bool eval_group(struct iseg_coco_eval *ev, const struct grp_src *src, uint32_t dil,
                       struct grp *gr) {
    const struct coco_file *gt = &ev->gt, *dt = &ev->dt;
    size_t   D_all = src->nd_all, G = src->ng, D = gr->nd;
    bool     ok    = false;
    int32_t *dord  = iseg__malloc_array(2 * D_all + 1, sizeof(int32_t));
    double  *score = iseg__malloc_array(D_all + 1, sizeof(double));
    double  *ious  = iseg__malloc_array(D * G + 1, sizeof(double));
    uint8_t *crowd = iseg__malloc(2 * G + 1);
    size_t  *gord  = iseg__malloc_array(G + 1, sizeof(size_t));
    int32_t *gtm   = iseg__malloc_array(G + 1, sizeof(int32_t));
    int32_t *dtm   = iseg__malloc_array(D + 1, sizeof(int32_t));
    double  *darea = iseg__malloc_array(D + 1, sizeof(double));
    if (!dord || !score || !ious || !crowd || !gord || !gtm || !dtm || !darea) goto out;
    uint8_t *gt_ig = crowd + G;
    /* detections sorted by descending score (stable), truncated to max_dets[-1] */
    for (size_t i = 0; i < D_all; i++) {
        dord[i]  = (int32_t)i;
        score[i] = dt->anns[src->d[i]].score;
    }
    iseg__sort_desc_stable(dord, score, D_all, dord + D_all);
    for (size_t i = 0; i < D; i++) {
        int32_t ai    = src->d[dord[i]];
        gr->dt_ann[i] = ai;
        gr->scores[i] = dt->anns[ai].score;
        darea[i]      = dt->anns[ai].area;
    }
    for (size_t g = 0; g < G; g++) crowd[g] = (gt->anns[src->g[g]].flags & AF_CROWD) != 0;
    if (!compute_iou(ev, gr->dt_ann, D, src->g, G, crowd, dil, ious)) goto out;
    /* the reference's ignore flag: iscrowd (boundary-iou-api: ignore OR iscrowd) */
    bool or_ignore = ev->p.iou_type == ISEG_IOU_BOUNDARY;
    for (size_t a = 0; a < N_A; a++) {
        const double lo = ev->p.area_rng[a][0], hi = ev->p.area_rng[a][1];
        uint32_t     npig = 0;
        for (size_t g = 0; g < G; g++) {
            const struct coco_ann *ga = &gt->anns[src->g[g]];
            bool ig = crowd[g] || (or_ignore && (ga->flags & AF_IGNORE)) || ga->area < lo ||
                      ga->area > hi;
            gt_ig[g] = ig;
            npig += !ig;
        }
        gr->npig[a] = npig;
        /* stable: non-ignored first, file order kept */
        size_t j = 0;
        for (size_t g = 0; g < G; g++)
            if (!gt_ig[g]) gord[j++] = g;
        for (size_t g = 0; g < G; g++)
            if (gt_ig[g]) gord[j++] = g;
        if (ev->p.keep_matches && a == 0)
            for (size_t q = 0; q < G; q++) gr->gt_ann[q] = src->g[gord[q]];
        if (!match_area(ev, gr, a, D, G, ious, crowd, gt_ig, gord, darea, gtm, dtm)) goto out;
    }
    ok = true;
out:
    iseg__free(dord);
    iseg__free(score);
    iseg__free(ious);
    iseg__free(crowd);
    iseg__free(gord);
    iseg__free(gtm);
    iseg__free(dtm);
    iseg__free(darea);
    return ok;
}

static size_t count_groups(const struct iseg_coco_eval *ev, size_t e, struct grp_src *out) {
    const struct coco_file *gt = &ev->gt, *dt = &ev->dt;
    const int32_t *gl = ev->gt_list + ev->gt_start[e], *dl = ev->dt_list + ev->dt_start[e];
    size_t ng = ev->gt_start[e + 1] - ev->gt_start[e], nd = ev->dt_start[e + 1] - ev->dt_start[e];
    if (ng == 0 && nd == 0) return 0;
    if (!ev->p.use_cats) {
        if (out) *out = (struct grp_src){0, gl, ng, dl, nd};
        return 1;
    }
    size_t i = 0, j = 0, n = 0;
    while (i < ng || j < nd) {
        int32_t ci = i < ng ? gt->anns[gl[i]].cat_idx : INT32_MAX;
        int32_t cj = j < nd ? dt->anns[dl[j]].cat_idx : INT32_MAX;
        int32_t c  = ci < cj ? ci : cj;
        size_t  i0 = i, j0 = j;
        while (i < ng && gt->anns[gl[i]].cat_idx == c) i++;
        while (j < nd && dt->anns[dl[j]].cat_idx == c) j++;
        if (out) out[n] = (struct grp_src){ev->cat_to_k[c], gl + i0, i - i0, dl + j0, j - j0};
        n++;
    }
    return n;
}

static bool eval_image(struct iseg_coco_eval *ev, size_t e) {
    struct img_res *res = &ev->res[e];
    size_t          n   = count_groups(ev, e, NULL);
    if (n == 0) return true;
    struct grp_src *src = iseg__malloc_array(n, sizeof(*src));
    if (!src) return false;
    count_groups(ev, e, src);
    size_t bytes = align8(n * sizeof(struct grp));
    for (size_t i = 0; i < n; i++) {
        size_t nd = src[i].nd_all < ev->p.max_dets[N_M - 1] ? src[i].nd_all
                                                            : ev->p.max_dets[N_M - 1];
        bytes += grp_bytes(ev, nd, src[i].ng);
    }
    char *blk = iseg__malloc(bytes);
    if (!blk) {
        iseg__free(src);
        return false;
    }
    res->block = blk;
    res->grps  = carve(&blk, n * sizeof(struct grp));
    res->n_grp = n;
    bool ok    = true;
    /* Boundary IoU band width from the image size (boundary-iou-api: the GT image's) */
    const struct coco_img *img = &ev->gt.imgs[ev->eimg[e]];
    uint32_t dil = ev->p.iou_type == ISEG_IOU_BOUNDARY
                       ? iseg_boundary_dilation(img->h, img->w, ev->p.dilation_ratio)
                       : 0;
    for (size_t i = 0; i < n && ok; i++) {
        struct grp *gr = &res->grps[i];
        memset(gr, 0, sizeof(*gr));
        gr->k  = src[i].k;
        gr->ng = (uint32_t)src[i].ng;
        gr->nd = (uint32_t)(src[i].nd_all < ev->p.max_dets[N_M - 1] ? src[i].nd_all
                                                                    : ev->p.max_dets[N_M - 1]);
        gr->scores = carve(&blk, gr->nd * sizeof(double));
        gr->flags  = carve(&blk, N_A * ev->T * gr->nd);
        gr->dt_ann = carve(&blk, gr->nd * sizeof(int32_t));
        if (ev->p.keep_matches) {
            gr->gt_ann     = carve(&blk, gr->ng * sizeof(int32_t));
            gr->m_gt       = carve(&blk, gr->nd * sizeof(int32_t));
            gr->m_iou      = carve(&blk, gr->nd * sizeof(double));
            gr->gt_ig      = carve(&blk, gr->ng);
            gr->gt_matched = carve(&blk, gr->ng);
        }
        ok = eval_group(ev, &src[i], dil, gr);
    }
    iseg__free(src);
    return ok;
}

static void eval_task(void *vctx, size_t item, int ith) {
    (void)ith;
    struct eval_ctx *c = vctx;
    if (!eval_image(c->ev, c->base + item)) atomic_store(&c->status, (int)ISEG_STATUS_ENOMEM);
}

enum iseg_status iseg__coco_evaluate(struct iseg_coco_eval *ev) {
    ev->res = iseg__calloc(ev->n_eimg ? ev->n_eimg : 1, sizeof(struct img_res));
    if (!ev->res) goto nomem;
    struct eval_ctx c = {.ev = ev};
    atomic_init(&c.status, 0);
    size_t batch = 1024;
    for (c.base = 0; c.base < ev->n_eimg; c.base += batch) {
        size_t n = ev->n_eimg - c.base < batch ? ev->n_eimg - c.base : batch;
        iseg__pool_run(ev->pool, n, 4, eval_task, &c);
        if (atomic_load(&c.status) != 0) goto nomem;
        if (ev->p.progress) ev->p.progress("evaluate", c.base + n, ev->n_eimg, ev->p.progress_user);
    }
    /* groups of each category, in image order */
    ev->kgrp_start = iseg__calloc(ev->K + 1, sizeof(size_t));
    if (!ev->kgrp_start) goto nomem;
    size_t total = 0;
    for (size_t e = 0; e < ev->n_eimg; e++)
        for (size_t i = 0; i < ev->res[e].n_grp; i++) {
            ev->kgrp_start[ev->res[e].grps[i].k + 1]++;
            total++;
        }
    for (size_t k = 0; k < ev->K; k++) ev->kgrp_start[k + 1] += ev->kgrp_start[k];
    ev->kgrp = iseg__malloc_array(total ? total : 1, sizeof(struct grp *));
    size_t *cur = iseg__malloc_array(ev->K + 1, sizeof(size_t));
    if (!ev->kgrp || !cur) {
        iseg__free(cur);
        goto nomem;
    }
    memcpy(cur, ev->kgrp_start, (ev->K + 1) * sizeof(size_t));
    for (size_t e = 0; e < ev->n_eimg; e++)
        for (size_t i = 0; i < ev->res[e].n_grp; i++) {
            struct grp *g         = &ev->res[e].grps[i];
            ev->kgrp[cur[g->k]++] = g;
        }
    iseg__free(cur);
    return ISEG_STATUS_OK;
nomem:
    iseg__ev_error(ev, "out of memory during evaluation");
    return ISEG_STATUS_ENOMEM;
}
