/* fuse_core.c - panoptic fusion of one image: instances by score, then stuff from the semantic
 * map (policies instance-priority and stuff-protected; definitions in panoptic_fuse.h). */
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "panoptic/fuse_impl.h"

static const char *const POLICY_NAMES[] = {"instance-priority", "stuff-protected"};
_Static_assert(ISEG_FUSE_POLICY_COUNT == sizeof(POLICY_NAMES) / sizeof(POLICY_NAMES[0]),
               "policy name table");

const char *iseg_fuse_policy_name(enum iseg_fuse_policy p) {
    return (unsigned)p < ISEG_FUSE_POLICY_COUNT ? POLICY_NAMES[p] : "?";
}

enum iseg_status iseg_fuse_policy_from_name(const char *s, enum iseg_fuse_policy *out) {
    for (int i = 0; i < ISEG_FUSE_POLICY_COUNT; i++)
        if (s && strcmp(s, POLICY_NAMES[i]) == 0) {
            *out = (enum iseg_fuse_policy)i;
            return ISEG_STATUS_OK;
        }
    return ISEG_STATUS_EINVAL;
}

struct iseg_fuse_params iseg_fuse_default_params(void) {
    struct iseg_fuse_params p = {
        .policy         = ISEG_FUSE_INSTANCE_PRIORITY,
        .score_thresh   = 0.5,
        .overlap_thresh = 0.5,
        .stuff_area     = 4096,
        .protect_thresh = 0.5,
        .protect        = NULL,
        .n_threads      = 0,
    };
    return p;
}

#define N_SEM 65536 /* semantic values are 8 or 16 bits */

struct iseg__fuse_prep {
    struct iseg_fuse_params          p;
    const struct iseg_fuse_category *cats;     /* (n_cats), not owned */
    size_t                           n_cats;
    size_t                          *by_id;    /* (n_cats) category indices sorted by id */
    int32_t                         *stuff_of; /* (N_SEM) semantic value -> stuff category index or -1 */
    uint8_t                         *always;   /* (n_cats) protected whatever the confidence */
    uint8_t                          conf_ok[256]; /* confidence value protects */
    bool                             protect;  /* policy stuff-protected */
};

void iseg__fuse_prep_free(struct iseg__fuse_prep *pp) {
    if (!pp) return;
    iseg__free(pp->by_id);
    iseg__free(pp->stuff_of);
    iseg__free(pp->always);
    iseg__free(pp);
}

static size_t cat_index(const struct iseg__fuse_prep *pp, int64_t id) {
    size_t lo = 0, hi = pp->n_cats;
    while (lo < hi) {
        size_t  mid = lo + (hi - lo) / 2;
        int64_t k   = pp->cats[pp->by_id[mid]].id;
        if (k == id) return pp->by_id[mid];
        if (k < id) lo = mid + 1;
        else hi = mid;
    }
    return SIZE_MAX;
}

/* Mark the categories named in a comma-separated list of names or ids (stuff only). */
static enum iseg_status parse_protect(struct iseg__fuse_prep *pp, const char *list, char *err,
                                      size_t errlen) {
    const char *s = list;
    while (*s) {
        while (*s == ' ' || *s == ',') s++;
        if (!*s) break;
        const char *e = s;
        while (*e && *e != ',') e++;
        size_t n = (size_t)(e - s);
        while (n > 0 && s[n - 1] == ' ') n--;
        size_t ci = SIZE_MAX;
        bool   digits = n > 0 && n < 19;
        for (size_t k = 0; k < n; k++) digits = digits && isdigit((unsigned char)s[k]);
        if (digits) {
            char num[20];
            memcpy(num, s, n);
            num[n] = 0;
            ci     = cat_index(pp, strtoll(num, NULL, 10));
        }
        for (size_t k = 0; k < pp->n_cats && ci == SIZE_MAX; k++) {
            const char *name = pp->cats[k].name;
            if (name && strlen(name) == n && memcmp(name, s, n) == 0) ci = k;
        }
        if (ci == SIZE_MAX) {
            snprintf(err, errlen, "protect: unknown category '%.*s'", (int)(n < 200 ? n : 200),
                     s);
            return ISEG_STATUS_EINVAL;
        }
        if (pp->cats[ci].isthing) {
            snprintf(err, errlen, "protect: category '%.*s' (%lld) is a thing class, not stuff",
                     (int)(n < 200 ? n : 200), s, (long long)pp->cats[ci].id);
            return ISEG_STATUS_EINVAL;
        }
        pp->always[ci] = 1;
        s              = e;
    }
    return ISEG_STATUS_OK;
}

enum iseg_status iseg__fuse_check_params(const struct iseg_fuse_params *p, char *err,
                                         size_t errlen) {
    if ((unsigned)p->policy >= ISEG_FUSE_POLICY_COUNT) {
        snprintf(err, errlen, "unknown fusion policy %d", (int)p->policy);
        return ISEG_STATUS_EINVAL;
    }
    if (isnan(p->score_thresh)) {
        snprintf(err, errlen, "score threshold is NaN");
        return ISEG_STATUS_EINVAL;
    }
    if (!(p->overlap_thresh >= 0 && p->overlap_thresh <= 1)) {
        snprintf(err, errlen, "overlap threshold %g is not in [0, 1]", p->overlap_thresh);
        return ISEG_STATUS_EINVAL;
    }
    if (!(p->protect_thresh >= 0 && p->protect_thresh <= 1)) {
        snprintf(err, errlen, "protect threshold %g is not in [0, 1]", p->protect_thresh);
        return ISEG_STATUS_EINVAL;
    }
    return ISEG_STATUS_OK;
}

enum iseg_status iseg__fuse_prep_init(struct iseg__fuse_prep **out, const struct iseg_fuse_params *p,
                                      const struct iseg_fuse_category *cats, size_t n_cats,
                                      char *err, size_t errlen) {
    *out                = NULL;
    enum iseg_status st = iseg__fuse_check_params(p, err, errlen);
    if (st != ISEG_STATUS_OK) return st;
    for (size_t i = 0; i < n_cats; i++)
        if (cats[i].id < 1 || cats[i].id > (int64_t)((ISEG_FUSE_MAX_ID - 999) / ISEG_FUSE_OFFSET)) {
            snprintf(err, errlen, "category id %lld outside [1, %u]", (long long)cats[i].id,
                     (ISEG_FUSE_MAX_ID - 999) / ISEG_FUSE_OFFSET);
            return ISEG_STATUS_ELIMIT;
        }
    struct iseg__fuse_prep *pp = iseg__calloc(1, sizeof(*pp));
    if (!pp) goto nomem;
    pp->p        = *p;
    pp->cats     = cats;
    pp->n_cats   = n_cats;
    pp->protect  = p->policy == ISEG_FUSE_STUFF_PROTECTED;
    pp->by_id    = iseg__malloc_array(n_cats ? n_cats : 1, sizeof(*pp->by_id));
    pp->always   = iseg__calloc(n_cats ? n_cats : 1, sizeof(*pp->always));
    pp->stuff_of = iseg__malloc_array(N_SEM, sizeof(*pp->stuff_of));
    if (!pp->by_id || !pp->always || !pp->stuff_of) goto nomem;
    int64_t *keys = iseg__malloc_array(n_cats ? n_cats : 1, sizeof(*keys));
    if (!keys) goto nomem;
    for (size_t i = 0; i < n_cats; i++) keys[i] = cats[i].id;
    bool sorted = iseg__fj_sort_idx(pp->by_id, keys, n_cats);
    iseg__free(keys);
    if (!sorted) goto nomem;
    for (size_t i = 1; i < n_cats; i++)
        if (cats[pp->by_id[i]].id == cats[pp->by_id[i - 1]].id) {
            snprintf(err, errlen, "duplicate category id %lld", (long long)cats[pp->by_id[i]].id);
            iseg__fuse_prep_free(pp);
            return ISEG_STATUS_EINVAL;
        }
    for (size_t v = 0; v < N_SEM; v++) pp->stuff_of[v] = -1;
    for (size_t i = 0; i < n_cats; i++)
        if (!cats[i].isthing) pp->stuff_of[cats[i].id] = (int32_t)i;
    for (int v = 0; v < 256; v++) pp->conf_ok[v] = (double)v / 255.0 >= p->protect_thresh;
    if (pp->protect && p->protect) {
        st = parse_protect(pp, p->protect, err, errlen);
        if (st != ISEG_STATUS_OK) {
            iseg__fuse_prep_free(pp);
            return st;
        }
    }
    *out = pp;
    return ISEG_STATUS_OK;
nomem:
    iseg__fuse_prep_free(pp);
    snprintf(err, errlen, "out of memory");
    return ISEG_STATUS_ENOMEM;
}

struct bbox_acc {
    uint32_t x0, y0, x1, y1; /* inclusive */
};
static inline void bb_add(struct bbox_acc *b, uint32_t x, uint32_t y) {
    if (x < b->x0) b->x0 = x;
    if (y < b->y0) b->y0 = y;
    if (x > b->x1) b->x1 = x;
    if (y > b->y1) b->y1 = y;
}
static const struct bbox_acc BB_EMPTY = {UINT32_MAX, UINT32_MAX, 0, 0};

static bool push_seg(struct iseg_fuse_segment **v, size_t *n, size_t *cap,
                     const struct iseg_fuse_segment *s) {
    if (*n == *cap) {
        size_t nc = *cap ? 2 * *cap : 16;
        void  *q  = iseg__realloc_array(*v, nc, sizeof(**v));
        if (!q) return false;
        *v   = q;
        *cap = nc;
    }
    (*v)[(*n)++] = *s;
    return true;
}

static void set_bbox(struct iseg_fuse_segment *s, const struct bbox_acc *b) {
    s->bbox[0] = b->x0;
    s->bbox[1] = b->y0;
    s->bbox[2] = b->x1 - b->x0 + 1;
    s->bbox[3] = b->y1 - b->y0 + 1;
}

/* order[] of instance indices by descending score, ties in input order (stable merge sort) */
static void sort_by_score(size_t *idx, size_t *tmp, size_t n, const struct iseg_fuse_instance *in) {
    for (size_t width = 1; width < n; width *= 2) {
        for (size_t lo = 0; lo < n; lo += 2 * width) {
            size_t mid = lo + width < n ? lo + width : n;
            size_t hi  = lo + 2 * width < n ? lo + 2 * width : n;
            size_t a = lo, b = mid, k = lo;
            while (a < mid && b < hi)
                tmp[k++] = in[idx[b]].score > in[idx[a]].score ? idx[b++] : idx[a++];
            while (a < mid) tmp[k++] = idx[a++];
            while (b < hi) tmp[k++] = idx[b++];
        }
        memcpy(idx, tmp, n * sizeof(*idx));
    }
}

enum iseg_status iseg__fuse_run_image(const struct iseg__fuse_prep *pp,
                                      const struct iseg_fuse_instance *inst, size_t n_inst,
                                      const uint16_t *sem, const uint8_t *conf, uint32_t h,
                                      uint32_t w, uint32_t *ids, struct iseg_fuse_segment **segs,
                                      size_t *n_segs, struct iseg_fuse_summary *cnt, char *err,
                                      size_t errlen) {
    const struct iseg_fuse_params *p   = &pp->p;
    size_t                         npx = (size_t)h * w;
    size_t                        *order = NULL, *tmp = NULL;
    uint32_t                      *k_of  = NULL; /* (n_cats) instances kept per category */
    uint64_t                      *sarea = NULL; /* (n_cats) stuff pixels per category */
    struct bbox_acc               *sbb   = NULL; /* (n_cats) */
    uint32_t                      *sid   = NULL; /* (n_cats) stuff segment id, 0: VOID */
    struct iseg_fuse_segment      *v     = NULL;
    size_t                         nv = 0, cap = 0, n_ord = 0;
    enum iseg_status               st = ISEG_STATUS_OK;
    *segs   = NULL;
    *n_segs = 0;
    memset(cnt, 0, sizeof(*cnt));
    order = iseg__malloc_array(n_inst ? n_inst : 1, sizeof(*order));
    tmp   = iseg__malloc_array(n_inst ? n_inst : 1, sizeof(*tmp));
    k_of  = iseg__calloc(pp->n_cats ? pp->n_cats : 1, sizeof(*k_of));
    sarea = iseg__calloc(pp->n_cats ? pp->n_cats : 1, sizeof(*sarea));
    sbb   = iseg__malloc_array(pp->n_cats ? pp->n_cats : 1, sizeof(*sbb));
    sid   = iseg__calloc(pp->n_cats ? pp->n_cats : 1, sizeof(*sid));
    if (!order || !tmp || !k_of || !sarea || !sbb || !sid) goto nomem;

    /* validate every instance first, so that errors do not depend on scores */
    for (size_t i = 0; i < n_inst; i++) {
        size_t ci = cat_index(pp, inst[i].category_id);
        if (ci == SIZE_MAX || !pp->cats[ci].isthing) {
            snprintf(err, errlen, "instance %zu: category %lld is %s", i,
                     (long long)inst[i].category_id, ci == SIZE_MAX ? "unknown" : "not a thing");
            st = ISEG_STATUS_EFORMAT;
            goto out;
        }
        if (inst[i].score >= p->score_thresh) {
            const struct iseg_rle *m = inst[i].mask;
            if (!m || m->h != h || m->w != w) {
                snprintf(err, errlen, "instance %zu: mask size [%u, %u] differs from the "
                         "image's [%u, %u]", i, m ? m->h : 0, m ? m->w : 0, h, w);
                st = ISEG_STATUS_ESHAPE;
                goto out;
            }
            order[n_ord++] = i;
        } else {
            cnt->n_below_score++;
        }
    }
    sort_by_score(order, tmp, n_ord, inst);
    memset(ids, 0, npx * sizeof(*ids));

    /* 1. instances in score order; a pixel is protected iff its semantic class is stuff and
     * the class is always protected or its confidence is high enough */
#define PROTECTED(px)                                                                      \
    (pp->protect && pp->stuff_of[sem[px]] >= 0 &&                                          \
     (pp->always[pp->stuff_of[sem[px]]] || (conf && pp->conf_ok[conf[px]])))
    for (size_t o = 0; o < n_ord; o++) {
        const struct iseg_fuse_instance *in = &inst[order[o]];
        const struct iseg_rle           *m  = in->mask;
        uint64_t area = 0, survive = 0;
        size_t   pos  = 0;
        for (size_t j = 0; j < m->m; j++) {
            uint32_t c = m->cnts[j];
            if (j & 1) {
                uint32_t x = (uint32_t)(pos / h), y = (uint32_t)(pos % h);
                for (uint32_t q = 0; q < c; q++) {
                    size_t px = (size_t)y * w + x;
                    area++;
                    if (!ids[px] && !PROTECTED(px)) survive++;
                    if (++y == h) {
                        y = 0;
                        x++;
                    }
                }
            }
            pos += c;
        }
        if (area == 0 || survive == 0 || !((double)survive >= p->overlap_thresh * (double)area)) {
            cnt->n_overlap_drop++;
            continue;
        }
        size_t ci = cat_index(pp, in->category_id);
        if (k_of[ci] == ISEG_FUSE_OFFSET - 1) {
            snprintf(err, errlen, "more than %d instances of category %lld", ISEG_FUSE_OFFSET - 1,
                     (long long)in->category_id);
            st = ISEG_STATUS_ELIMIT;
            goto out;
        }
        uint32_t id = (uint32_t)in->category_id * ISEG_FUSE_OFFSET + ++k_of[ci];
        struct bbox_acc bb = BB_EMPTY;
        pos                = 0;
        for (size_t j = 0; j < m->m; j++) {
            uint32_t c = m->cnts[j];
            if (j & 1) {
                uint32_t x = (uint32_t)(pos / h), y = (uint32_t)(pos % h);
                for (uint32_t q = 0; q < c; q++) {
                    size_t px = (size_t)y * w + x;
                    if (!ids[px] && !PROTECTED(px)) {
                        ids[px] = id;
                        bb_add(&bb, x, y);
                    }
                    if (++y == h) {
                        y = 0;
                        x++;
                    }
                }
            }
            pos += c;
        }
        struct iseg_fuse_segment s = {.id = id, .category_id = in->category_id, .area = survive};
        set_bbox(&s, &bb);
        if (!push_seg(&v, &nv, &cap, &s)) goto nomem;
        cnt->n_instances++;
    }
#undef PROTECTED

    /* 2. stuff: untaken pixels of a stuff class, per class, if there are enough of them */
    for (size_t i = 0; i < pp->n_cats; i++) sbb[i] = BB_EMPTY;
    for (size_t px = 0; px < npx; px++) {
        if (ids[px]) continue;
        int32_t sf = pp->stuff_of[sem[px]];
        if (sf >= 0) sarea[sf]++;
    }
    for (size_t r = 0; r < pp->n_cats; r++) {
        size_t ci = pp->by_id[r];
        if (pp->cats[ci].isthing || sarea[ci] == 0) continue;
        if (sarea[ci] < p->stuff_area) {
            cnt->n_stuff_small++;
            continue;
        }
        sid[ci] = (uint32_t)pp->cats[ci].id * ISEG_FUSE_OFFSET;
    }
    for (uint32_t y = 0; y < h; y++)
        for (uint32_t x = 0; x < w; x++) {
            size_t px = (size_t)y * w + x;
            if (ids[px]) continue;
            int32_t sf = pp->stuff_of[sem[px]];
            if (sf >= 0 && sid[sf]) {
                ids[px] = sid[sf];
                bb_add(&sbb[sf], x, y);
            }
        }
    for (size_t r = 0; r < pp->n_cats; r++) {
        size_t ci = pp->by_id[r];
        if (!sid[ci]) continue;
        struct iseg_fuse_segment s = {.id = sid[ci], .category_id = pp->cats[ci].id,
                                      .area = sarea[ci]};
        set_bbox(&s, &sbb[ci]);
        if (!push_seg(&v, &nv, &cap, &s)) goto nomem;
        cnt->n_stuff++;
    }
    *segs   = v;
    *n_segs = nv;
    v       = NULL;
    goto out;
nomem:
    snprintf(err, errlen, "out of memory");
    st = ISEG_STATUS_ENOMEM;
out:
    iseg__free(v);
    iseg__free(order);
    iseg__free(tmp);
    iseg__free(k_of);
    iseg__free(sarea);
    iseg__free(sbb);
    iseg__free(sid);
    return st;
}

enum iseg_status iseg_fuse_image(const struct iseg_fuse_params *p,
                                 const struct iseg_fuse_category *cats, size_t n_cats,
                                 const struct iseg_fuse_instance *inst, size_t n_inst,
                                 const uint16_t *semantic, const uint8_t *confidence, uint32_t h,
                                 uint32_t w, uint32_t *ids, struct iseg_fuse_segment **segs,
                                 size_t *n_segs, char *err, size_t errlen) {
    struct iseg__fuse_prep  *pp = NULL;
    struct iseg_fuse_summary cnt;
    *segs   = NULL;
    *n_segs = 0;
    if ((uint64_t)h * w > ISEG_IMAGE_MAX_PIXELS) {
        snprintf(err, errlen, "image of %u x %u pixels exceeds the limit", w, h);
        return ISEG_STATUS_ELIMIT;
    }
    enum iseg_status st = iseg__fuse_prep_init(&pp, p, cats, n_cats, err, errlen);
    if (st != ISEG_STATUS_OK) return st;
    st = iseg__fuse_run_image(pp, inst, n_inst, semantic, confidence, h, w, ids, segs, n_segs,
                              &cnt, err, errlen);
    iseg__fuse_prep_free(pp);
    return st;
}
