/* rle.c - COCO run-length encoded masks: encode, decode, area, boxes, merge and IoU.
 *
 * Semantics are those of the COCO mask API (maskApi.c, pycocotools), reproduced bit for bit on
 * valid RLEs; ref: shared/specs/coco-eval.md §4.3 (IoU) and §5 (mask API). Where maskApi has
 * undefined or broken behaviour (uint32 wrap-around, RLEs with zero-length runs in the middle on
 * both sides of a merge or IoU), we compute the mathematically intended result instead; each such
 * place says so. */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF /* bbIou must not fuse w*h into an FMA (last-bit differences) */
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

#include <math.h>
#include <string.h>

#include "core/core_impl.h"
#include "iseg/mask.h"
#include "rle/rle_impl.h"

/* ---- small helpers ---- */

static const struct iseg_rle RLE_ZERO;

/* h*w with the library-wide limit: ELIMIT when over ISEG_RLE_MAX_PIXELS. */
static enum iseg_status pixels_ok(uint32_t h, uint32_t w, uint64_t *n) {
    *n = (uint64_t)h * (uint64_t)w;
    return *n > ISEG_RLE_MAX_PIXELS ? ISEG_STATUS_ELIMIT : ISEG_STATUS_OK;
}

/* Sum of m counts, stopping early once it passes `limit` (so it never overflows). */
static uint64_t counts_sum(const uint32_t *cnts, size_t m, uint64_t limit) {
    uint64_t s = 0;
    for (size_t i = 0; i < m; i++) {
        s += cnts[i];
        if (s > limit) break;
    }
    return s;
}

/* Allocate a struct iseg_rle with m counts (NULL cnts when m == 0). */
static enum iseg_status rle_alloc(struct iseg_rle *r, uint32_t h, uint32_t w, size_t m) {
    *r = RLE_ZERO;
    if (m > 0) {
        r->cnts = iseg__malloc_array(m, sizeof(*r->cnts));
        if (!r->cnts) return ISEG_STATUS_ENOMEM;
    }
    r->h = h;
    r->w = w;
    r->m = m;
    return ISEG_STATUS_OK;
}

/* ---- lifetime ---- */

void iseg_rle_free(struct iseg_rle *r) {
    if (!r) return;
    iseg__free(r->cnts);
    *r = RLE_ZERO;
}

enum iseg_status iseg_rle_copy(struct iseg_rle *out, const struct iseg_rle *r) {
    ISEG_ASSERT(out && r);
    ISEG_ASSERT(r->m == 0 || r->cnts);
    struct iseg_rle  res;
    enum iseg_status st = rle_alloc(&res, r->h, r->w, r->m);
    if (st != ISEG_STATUS_OK) {
        *out = RLE_ZERO;
        return st;
    }
    if (r->m > 0) memcpy(res.cnts, r->cnts, r->m * sizeof(*r->cnts));
    *out = res;
    return ISEG_STATUS_OK;
}

enum iseg_status iseg_rle_validate(const struct iseg_rle *r) {
    ISEG_ASSERT(r);
    ISEG_ASSERT(r->m == 0 || r->cnts);
    uint64_t         n;
    enum iseg_status st = pixels_ok(r->h, r->w, &n);
    if (st != ISEG_STATUS_OK) return st;
    return counts_sum(r->cnts, r->m, n) == n ? ISEG_STATUS_OK : ISEG_STATUS_EFORMAT;
}

enum iseg_status iseg_rle_from_counts(struct iseg_rle *out, const uint32_t *cnts, size_t m,
                                      uint32_t h, uint32_t w) {
    ISEG_ASSERT(out);
    ISEG_ASSERT(m == 0 || cnts);
    *out = RLE_ZERO;
    uint64_t         n;
    enum iseg_status st = pixels_ok(h, w, &n);
    if (st != ISEG_STATUS_OK) return st;
    if (counts_sum(cnts, m, n) != n) return ISEG_STATUS_EFORMAT;
    struct iseg_rle res;
    st = rle_alloc(&res, h, w, m);
    if (st != ISEG_STATUS_OK) return st;
    if (m > 0) memcpy(res.cnts, cnts, m * sizeof(*cnts));
    *out = res;
    return ISEG_STATUS_OK;
}

/* ---- encode / decode ---- */

/* First index >= j where mask differs from v (or n). Long runs go 8 bytes at a time. */
static size_t run_end(const uint8_t *mask, size_t j, size_t n, uint8_t v) {
    const uint64_t pat = (uint64_t)v * 0x0101010101010101ull;
    while (n - j >= 8) {
        uint64_t x;
        memcpy(&x, mask + j, sizeof(x));
        if (x != pat) break;
        j += 8;
    }
    while (j < n && mask[j] == v) j++;
    return j;
}

enum iseg_status iseg_rle_encode(struct iseg_rle *out, const uint8_t *mask, uint32_t h,
                                 uint32_t w) {
    ISEG_ASSERT(out);
    *out = RLE_ZERO;
    uint64_t         n64;
    enum iseg_status st = pixels_ok(h, w, &n64);
    if (st != ISEG_STATUS_OK) return st;
    size_t n = (size_t)n64;
    ISEG_ASSERT(n == 0 || mask);

    /* A run starts whenever a byte differs from the previous one; the "previous" before pixel 0
     * is 0, so a mask starting with 1 gets a first count of 0. Counting pass first, so the
     * counts array is allocated once at its exact size (maskApi allocates h*w+1 counts, which
     * is 8 GiB for the largest mask). */
    size_t e = run_end(mask, 0, n, 0), m = 1;
    while (e < n) {
        e = run_end(mask, e, n, mask[e]);
        m++;
    }
    struct iseg_rle res;
    st = rle_alloc(&res, h, w, m);
    if (st != ISEG_STATUS_OK) return st;
    e           = run_end(mask, 0, n, 0);
    res.cnts[0] = (uint32_t)e; /* counts are <= h*w <= 2^31 */
    size_t k    = 1;
    while (e < n) {
        size_t j      = e;
        e             = run_end(mask, j, n, mask[j]);
        res.cnts[k++] = (uint32_t)(e - j);
    }
    ISEG_ASSERT(k == m);
    *out = res;
    return ISEG_STATUS_OK;
}

enum iseg_status iseg_rle_decode(uint8_t *mask, const struct iseg_rle *r) {
    /* Validate before writing anything, so a bad RLE never writes past the buffer. */
    enum iseg_status st = iseg_rle_validate(r);
    if (st != ISEG_STATUS_OK) return st;
    ISEG_ASSERT(mask || (uint64_t)r->h * r->w == 0);
    size_t  pos = 0;
    uint8_t v   = 0;
    for (size_t j = 0; j < r->m; j++) {
        memset(mask + pos, v, r->cnts[j]);
        pos += r->cnts[j];
        v ^= 1;
    }
    return ISEG_STATUS_OK;
}

/* ---- area and box ---- */

uint64_t iseg_rle_area(const struct iseg_rle *r) {
    ISEG_ASSERT(r);
    ISEG_ASSERT(r->m == 0 || r->cnts);
    uint64_t a = 0;
    for (size_t j = 1; j < r->m; j += 2) a += r->cnts[j];
    return a;
}

void iseg_rle_to_bbox(const struct iseg_rle *r, double bb[4]) {
    ISEG_ASSERT(r && bb);
    ISEG_ASSERT(r->m == 0 || r->cnts);
    /* a trailing 0-run (odd m) never matters: only odd-indexed (foreground) runs are fed */
    struct iseg__bbox_acc acc;
    iseg__bbox_acc_init(&acc, r->h, r->w);
    uint32_t cc = 0;
    for (size_t j = 0; j < r->m; j++) {
        uint32_t start = cc;
        cc += r->cnts[j];
        if ((j & 1) && r->cnts[j] != 0) iseg__bbox_acc_run(&acc, start, r->cnts[j]);
    }
    iseg__bbox_acc_finish(&acc, r->m, bb);
}

void iseg_rle_to_box_xyxy(const struct iseg_rle *r, float box[4]) {
    double bb[4];
    iseg_rle_to_bbox(r, bb);
    box[0] = (float)bb[0];
    box[1] = (float)bb[1];
    box[2] = (float)(bb[0] + bb[2]);
    box[3] = (float)(bb[1] + bb[3]);
}

/* ---- merge ---- */

/* Cursor over the runs of one RLE that skips zero-length runs: `left` pixels remain in the
 * current run of value `v`; left == 0 only once the RLE is exhausted. */
struct run_cursor {
    const uint32_t *cnts;
    size_t          m, j;
    uint32_t        left;
    int             v;
};

static void cursor_skip_empty(struct run_cursor *c) {
    while (c->left == 0 && c->j + 1 < c->m) {
        c->left = c->cnts[++c->j];
        c->v ^= 1;
    }
}

static void cursor_init(struct run_cursor *c, const uint32_t *cnts, size_t m) {
    c->cnts = cnts;
    c->m    = m;
    c->j    = 0;
    c->left = m > 0 ? cnts[0] : 0;
    c->v    = 0;
    cursor_skip_empty(c);
}

/* Union or intersection of two RLEs of the same size into out (capacity >= ma + mb + 1).
 * Output is canonical: a count is emitted only where the result changes value, so only the first
 * count can be 0. Returns the number of counts (>= 1). */
static size_t merge2(uint32_t *out, const uint32_t *a, size_t ma, const uint32_t *b, size_t mb,
                     bool intersect) {
    struct run_cursor ca, cb;
    cursor_init(&ca, a, ma);
    cursor_init(&cb, b, mb);
    size_t   n  = 0;
    uint32_t cc = 0; /* length of the output run being built */
    int      vo = 0; /* its value */
    while (ca.left > 0 && cb.left > 0) {
        uint32_t c = ca.left < cb.left ? ca.left : cb.left;
        int      v = intersect ? (ca.v & cb.v) : (ca.v | cb.v);
        if (v != vo) {
            out[n++] = cc;
            cc       = 0;
            vo       = v;
        }
        cc += c;
        ca.left -= c;
        cb.left -= c;
        cursor_skip_empty(&ca);
        cursor_skip_empty(&cb);
    }
    out[n++] = cc;
    return n;
}

enum iseg_status iseg_rle_merge(struct iseg_rle *out, const struct iseg_rle *rs, size_t n,
                                bool intersect) {
    ISEG_ASSERT(out);
    ISEG_ASSERT(n == 0 || rs);
    if (n == 0) {
        *out = RLE_ZERO;
        return ISEG_STATUS_OK;
    }
    if (n == 1) return iseg_rle_copy(out, &rs[0]);

    uint32_t h = rs[0].h, w = rs[0].w;
    size_t   cap = 1; /* every intermediate result has at most sum(m) + 1 counts */
    for (size_t i = 0; i < n; i++) {
        ISEG_ASSERT(rs[i].m == 0 || rs[i].cnts);
        if (rs[i].h != h || rs[i].w != w) {
            /* maskApi: sizes differ -> an empty 0x0 RLE */
            *out = RLE_ZERO;
            return ISEG_STATUS_OK;
        }
        if (cap > SIZE_MAX - rs[i].m) {
            *out = RLE_ZERO;
            return ISEG_STATUS_ENOMEM;
        }
        cap += rs[i].m;
    }

    /* Two ping-pong buffers; the result is merged pairwise, left to right, as maskApi does. */
    uint32_t *buf[2];
    buf[0] = iseg__malloc_array(cap, sizeof(uint32_t));
    buf[1] = iseg__malloc_array(cap, sizeof(uint32_t));
    if (!buf[0] || !buf[1]) {
        iseg__free(buf[0]);
        iseg__free(buf[1]);
        *out = RLE_ZERO;
        return ISEG_STATUS_ENOMEM;
    }
    int    cur = 0;
    size_t m   = merge2(buf[cur], rs[0].cnts, rs[0].m, rs[1].cnts, rs[1].m, intersect);
    for (size_t i = 2; i < n; i++) {
        m   = merge2(buf[cur ^ 1], buf[cur], m, rs[i].cnts, rs[i].m, intersect);
        cur = cur ^ 1;
    }
    iseg__free(buf[cur ^ 1]);
    /* Give back the unused tail; if shrinking fails the larger block is still good. */
    uint32_t *shrunk = iseg__realloc_array(buf[cur], m, sizeof(uint32_t));
    if (shrunk) buf[cur] = shrunk;
    out->h    = h;
    out->w    = w;
    out->m    = m;
    out->cnts = buf[cur];
    return ISEG_STATUS_OK;
}

/* ---- IoU ---- */

/* |a & b| for two RLEs of the same size, walking only the foreground runs of both in one pass.
 * Zero-length runs are harmless (they overlap nothing). */
static uint64_t rle_inter(const uint32_t *a, size_t ma, const uint32_t *b, size_t mb) {
    if (ma < 2 || mb < 2) return 0;
    uint64_t inter = 0;
    uint64_t sa = a[0], sb = b[0]; /* start of the current foreground runs a[ia], b[ib] */
    size_t   ia = 1, ib = 1;
    while (ia < ma && ib < mb) {
        uint64_t ea = sa + a[ia], eb = sb + b[ib];
        uint64_t lo = sa > sb ? sa : sb;
        uint64_t hi = ea < eb ? ea : eb;
        if (hi > lo) inter += hi - lo;
        if (ea <= eb) {
            if (ia + 1 >= ma) break;
            sa = ea + a[ia + 1];
            ia += 2;
        } else {
            if (ib + 1 >= mb) break;
            sb = eb + b[ib + 1];
            ib += 2;
        }
    }
    return inter;
}

/* IoU of one box pair exactly as maskApi's bbIou (fmin/fmax; each product its own statement so
 * that no compiler contracts it into an FMA, which would change the last bit). */
static double bbox_iou_one(const double *D, const double *G, bool crowd) {
    double ga = G[2] * G[3];
    double da = D[2] * D[3];
    double w  = fmin(D[2] + D[0], G[2] + G[0]) - fmax(D[0], G[0]);
    if (w <= 0) return 0;
    double h = fmin(D[3] + D[1], G[3] + G[1]) - fmax(D[1], G[1]);
    if (h <= 0) return 0;
    double i = w * h;
    double u;
    if (crowd) {
        u = da;
    } else {
        u = da + ga;
        u = u - i;
    }
    return i / u;
}

void iseg_bbox_iou(const double *dt, size_t m, const double *gt, size_t n,
                   const uint8_t *iscrowd, double *o) {
    ISEG_ASSERT((m == 0 || dt) && (n == 0 || gt) && (m == 0 || n == 0 || o));
    for (size_t g = 0; g < n; g++) {
        bool crowd = iscrowd && iscrowd[g];
        for (size_t d = 0; d < m; d++) o[g * m + d] = bbox_iou_one(dt + 4 * d, gt + 4 * g, crowd);
    }
}

/* Mask IoU of a pair of equal size from the intersection and the two areas. */
static double iou_from_inter(uint64_t inter, uint64_t d_area, uint64_t g_area, bool crowd) {
    if (inter == 0) return 0;
    /* maskApi walks both masks for the union; for valid RLEs it equals this, and it is exact:
     * every quantity is <= 2^31, so the conversions to double are exact too. */
    uint64_t u = crowd ? d_area : d_area + g_area - inter;
    return (double)inter / (double)u;
}

double iseg_rle_iou_pair(const struct iseg_rle *d, const struct iseg_rle *g, bool crowd) {
    ISEG_ASSERT(d && g);
    ISEG_ASSERT((d->m == 0 || d->cnts) && (g->m == 0 || g->cnts));
    if (d->h != g->h || d->w != g->w) return -1;
    uint64_t inter = rle_inter(d->cnts, d->m, g->cnts, g->m);
    return iou_from_inter(inter, iseg_rle_area(d), iseg_rle_area(g), crowd);
}

void iseg_rle_iou_bb(const struct iseg_rle *dt, size_t m, const struct iseg_rle *gt, size_t n,
                     const uint8_t *iscrowd, const double *dt_bb, const double *gt_bb,
                     const uint64_t *dt_area, const uint64_t *gt_area, double *o) {
    if (m == 0 || n == 0) return;
    ISEG_ASSERT(dt && gt && dt_bb && gt_bb && dt_area && gt_area && o);
    for (size_t g = 0; g < n; g++) {
        const struct iseg_rle *G     = &gt[g];
        bool                   crowd = iscrowd && iscrowd[g];
        for (size_t d = 0; d < m; d++) {
            const struct iseg_rle *D = &dt[d];
            /* maskApi pre-filters with the box IoU (crowd-aware, as here) and keeps that value
             * (0, or whatever non-positive value bbIou gave) unless it is > 0. */
            double bo = bbox_iou_one(dt_bb + 4 * d, gt_bb + 4 * g, crowd);
            if (!(bo > 0)) {
                o[g * m + d] = bo;
                continue;
            }
            if (D->h != G->h || D->w != G->w) {
                o[g * m + d] = -1;
                continue;
            }
            uint64_t inter = rle_inter(D->cnts, D->m, G->cnts, G->m);
            o[g * m + d]   = iou_from_inter(inter, dt_area[d], gt_area[g], crowd);
        }
    }
}

enum iseg_status iseg_rle_iou(const struct iseg_rle *dt, size_t m, const struct iseg_rle *gt,
                              size_t n, const uint8_t *iscrowd, double *o) {
    if (m == 0 || n == 0) return ISEG_STATUS_OK;
    ISEG_ASSERT(dt && gt && o);
    size_t k = m + n, nb;
    if (k < m || !iseg__mul_size_ok(k, 4, &nb)) return ISEG_STATUS_ENOMEM;
    double   *bb   = iseg__malloc_array(nb, sizeof(double));
    uint64_t *area = iseg__malloc_array(k, sizeof(uint64_t));
    if (!bb || !area) {
        iseg__free(bb);
        iseg__free(area);
        return ISEG_STATUS_ENOMEM;
    }
    for (size_t d = 0; d < m; d++) {
        iseg_rle_to_bbox(&dt[d], bb + 4 * d);
        area[d] = iseg_rle_area(&dt[d]);
    }
    for (size_t g = 0; g < n; g++) {
        iseg_rle_to_bbox(&gt[g], bb + 4 * (m + g));
        area[m + g] = iseg_rle_area(&gt[g]);
    }
    iseg_rle_iou_bb(dt, m, gt, n, iscrowd, bb, bb + 4 * m, area, area + m, o);
    iseg__free(bb);
    iseg__free(area);
    return ISEG_STATUS_OK;
}
