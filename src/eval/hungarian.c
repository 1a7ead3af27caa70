/*
 * hungarian.c - maximum-weight assignment (Kuhn-Munkres with potentials, shortest augmenting
 * paths). Public API and tie rule: include/iseg/match.h.
 *
 * Reduction. Let s <= l be the two sides (rows when n_rows <= n_cols, otherwise columns: the
 * problem is then solved on the transpose). Every element of the short side is assigned to a
 * distinct element of the long side at minimum total cost, with
 *     cost(i, j) = -w   if the pair is allowed and w > 0,
 *     cost(i, j) =  0   otherwise (disallowed, or never worth matching),
 * and pairs of cost 0 are reported as unmatched. This is exact: any matching of positive allowed
 * pairs extends to a full assignment of the short side (s <= l leaves enough free partners) whose
 * extra pairs cost <= 0, and dropping the cost-0 pairs of a full assignment leaves a matching of
 * the same weight. So no padding or dummy columns are needed, and every cost is finite.
 *
 * Solver. Short-side elements i = 1..s are inserted in order. Potentials u (short side) and v
 * (long side) keep every reduced cost cost(i, j) - u[i] - v[j] >= 0 for the inserted elements and
 * zero on matched pairs. Inserting i is Dijkstra on reduced costs from i over alternating paths,
 * growing a tree of settled long-side elements until it reaches a free one; potentials are then
 * shifted by the settled distances and the path is flipped. Index 0 of the long side is a
 * virtual element standing for "the element being inserted" (p[0] = i), so that the search and
 * the potential update treat the root like any other settled element.
 *
 * Bounds: free long-side elements keep v = 0 and the others have v <= 0; with costs in [-C, 0]
 * this keeps every u and v within [-C, C] between insertions and within a few C during one, hence
 * ISEG_ASSIGN_WEIGHT_MAX rules out overflow and integer weights stay exact.
 */
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "core/core_impl.h"
#include "iseg/match.h"

/* The solver's working arrays, carved out of one scratch block. s <= l. */
struct hung {
    size_t   s, l;  /* short and long side */
    double  *cost;  /* (s, l) row-major, short side major */
    double  *u;     /* (s + 1) short-side potentials, index 0 unused by the caller */
    double  *v;     /* (l + 1) long-side potentials, index 0 = virtual root */
    double  *minv;  /* (l + 1) tentative reduced distance of each long-side element */
    int32_t *p;     /* (l + 1) p[j] = short-side element (1-based) matched to j, 0 = free */
    int32_t *way;   /* (l + 1) way[j] = previous long-side element on the path to j */
    uint8_t *used;  /* (l + 1) settled in the current search */
};

static bool add_ok(size_t a, size_t b, size_t *out) {
    if (a > SIZE_MAX - b) return false;
    *out = a + b;
    return true;
}

/* Scratch bytes for sides s <= l (both >= 1), including slack to align the doubles. */
static bool scratch_bytes(size_t s, size_t l, size_t *out) {
    size_t n_dbl, n_v, n_i32, b_dbl, b_i32, b;
    if (!iseg__mul_size_ok(s, l, &n_dbl)) return false;                      /* cost */
    if (!add_ok(n_dbl, s + 1, &n_dbl)) return false;                         /* u */
    if (!iseg__mul_size_ok(2, l + 1, &n_v)) return false;                    /* v, minv */
    if (!add_ok(n_dbl, n_v, &n_dbl)) return false;
    if (!iseg__mul_size_ok(2, l + 1, &n_i32)) return false;                  /* p, way */
    if (!iseg__mul_size_ok(n_dbl, sizeof(double), &b_dbl)) return false;
    if (!iseg__mul_size_ok(n_i32, sizeof(int32_t), &b_i32)) return false;
    if (!add_ok(b_dbl, b_i32, &b)) return false;
    if (!add_ok(b, l + 1, &b)) return false;                                 /* used */
    if (!add_ok(b, _Alignof(double) - 1, &b)) return false;
    *out = b;
    return true;
}

static void hung_carve(struct hung *h, size_t s, size_t l, void *scratch) {
    uintptr_t a   = (uintptr_t)scratch;
    size_t    pad = (size_t)((_Alignof(double) - a % _Alignof(double)) % _Alignof(double));
    double   *d   = (double *)(void *)((unsigned char *)scratch + pad);
    h->s          = s;
    h->l          = l;
    h->cost       = d;
    h->u          = h->cost + s * l;
    h->v          = h->u + (s + 1);
    h->minv       = h->v + (l + 1);
    /* the doubles end at a multiple of 8 bytes from an aligned start: int32 is aligned too */
    h->p          = (int32_t *)(void *)(h->minv + (l + 1));
    h->way        = h->p + (l + 1);
    h->used       = (uint8_t *)(h->way + (l + 1));
}

/* Fill h->cost from the caller's (n_rows, n_cols) input, validating allowed weights. */
static enum iseg_status hung_fill(struct hung *h, const double *w, const uint8_t *allowed,
                                  size_t n_rows, size_t n_cols, bool transposed) {
    for (size_t r = 0; r < n_rows; r++) {
        for (size_t c = 0; c < n_cols; c++) {
            size_t k = r * n_cols + c;
            double x = 0.0;
            if (!allowed || allowed[k]) {
                double wk = w[k];
                if (!isfinite(wk)) return ISEG_STATUS_EINVAL;
                if (wk > ISEG_ASSIGN_WEIGHT_MAX) return ISEG_STATUS_ELIMIT;
                if (wk > 0.0) x = -wk;
            }
            if (transposed) h->cost[c * h->l + r] = x;
            else h->cost[k] = x;
        }
    }
    return ISEG_STATUS_OK;
}

/* Minimum-cost assignment of every short-side element; result in h->p. */
static enum iseg_status hung_solve(struct hung *h) {
    const size_t s = h->s, l = h->l;
    double *const  u = h->u, *const v = h->v, *const minv = h->minv;
    int32_t *const p = h->p, *const way = h->way;
    uint8_t *const used = h->used;

    for (size_t i = 0; i <= s; i++) u[i] = 0.0;
    for (size_t j = 0; j <= l; j++) {
        v[j]   = 0.0;
        p[j]   = 0;
        way[j] = 0;
    }

    for (size_t i = 1; i <= s; i++) {
        p[0]      = (int32_t)i;
        v[0]      = 0.0; /* the root's potential is never read: reset it so it stays bounded */
        size_t j0 = 0; /* the settled long-side element whose partner is expanded next */
        for (size_t j = 0; j <= l; j++) {
            minv[j] = INFINITY;
            used[j] = 0;
        }
        do {
            used[j0]             = 1;
            const size_t  i0     = (size_t)p[j0];
            const double *cost_i = h->cost + (i0 - 1) * l; /* cost_i[j - 1], j = 1..l */
            const double  u_i    = u[i0];
            double        delta  = INFINITY;
            size_t        j1     = 0;
            /* relax the edges of i0, then settle the closest unsettled element (the lowest
             * index among equals: strict comparisons in increasing j give the tie rule) */
            for (size_t j = 1; j <= l; j++) {
                if (used[j]) continue;
                double cur = cost_i[j - 1] - u_i - v[j];
                if (cur < minv[j]) {
                    minv[j] = cur;
                    way[j]  = (int32_t)j0;
                }
                if (minv[j] < delta) {
                    delta = minv[j];
                    j1    = j;
                }
            }
            /* unreachable: an unsettled free element always exists (s <= l) and costs are
             * finite, so delta is finite; guard anyway rather than index with j1 = 0 */
            if (j1 == 0) return ISEG_STATUS_EINTERNAL;
            /* shift potentials so that the settled tree stays tight (reduced cost 0) */
            for (size_t j = 0; j <= l; j++) {
                if (used[j]) {
                    u[(size_t)p[j]] += delta;
                    v[j] -= delta;
                } else {
                    minv[j] -= delta;
                }
            }
            j0 = j1;
        } while (p[j0] != 0);
        /* flip the alternating path from the free element j0 back to the root */
        do {
            size_t jp = (size_t)way[j0];
            p[j0]     = p[jp];
            j0        = jp;
        } while (j0 != 0);
    }
    return ISEG_STATUS_OK;
}

size_t iseg_assign_scratch_size(size_t n_rows, size_t n_cols) {
    if (n_rows == 0 || n_cols == 0) return 0;
    if (n_rows > ISEG_ASSIGN_DIM_MAX || n_cols > ISEG_ASSIGN_DIM_MAX) return 0;
    size_t s = n_rows <= n_cols ? n_rows : n_cols, l = n_rows <= n_cols ? n_cols : n_rows, b;
    return scratch_bytes(s, l, &b) ? b : 0;
}

enum iseg_status iseg_assign_max_weight_scratch(const double *w, const uint8_t *allowed,
                                                size_t n_rows, size_t n_cols,
                                                int32_t *row_to_col, double *total,
                                                void *scratch) {
    ISEG_ASSERT(n_rows == 0 || row_to_col != NULL);
    if (n_rows > ISEG_ASSIGN_DIM_MAX || n_cols > ISEG_ASSIGN_DIM_MAX) return ISEG_STATUS_ELIMIT;
    if (n_rows == 0 || n_cols == 0) {
        for (size_t r = 0; r < n_rows; r++) row_to_col[r] = -1;
        if (total) *total = 0.0;
        return ISEG_STATUS_OK;
    }
    ISEG_ASSERT(w != NULL);

    const bool   transposed = n_rows > n_cols;
    const size_t s          = transposed ? n_cols : n_rows;
    const size_t l          = transposed ? n_rows : n_cols;
    size_t       bytes;
    if (!scratch_bytes(s, l, &bytes)) return ISEG_STATUS_ELIMIT;
    ISEG_ASSERT(scratch != NULL);

    struct hung h;
    hung_carve(&h, s, l, scratch);
    enum iseg_status st = hung_fill(&h, w, allowed, n_rows, n_cols, transposed);
    if (st != ISEG_STATUS_OK) return st;
    st = hung_solve(&h);
    if (st != ISEG_STATUS_OK) return st;

    /* Report the pairs of negative cost (allowed, w > 0); cost-0 pairs mean "unmatched". */
    for (size_t r = 0; r < n_rows; r++) row_to_col[r] = -1;
    for (size_t j = 1; j <= l; j++) {
        if (h.p[j] == 0) continue;
        size_t i = (size_t)h.p[j];
        if (!(h.cost[(i - 1) * l + (j - 1)] < 0.0)) continue;
        if (transposed) row_to_col[j - 1] = (int32_t)(i - 1);
        else row_to_col[i - 1] = (int32_t)(j - 1);
    }
    if (total) {
        double sum = 0.0;
        for (size_t r = 0; r < n_rows; r++) {
            if (row_to_col[r] >= 0) sum += w[r * n_cols + (size_t)row_to_col[r]];
        }
        *total = sum;
    }
    return ISEG_STATUS_OK;
}

enum iseg_status iseg_assign_max_weight(const double *w, const uint8_t *allowed, size_t n_rows,
                                        size_t n_cols, int32_t *row_to_col, double *total) {
    size_t bytes   = iseg_assign_scratch_size(n_rows, n_cols);
    void  *scratch = NULL;
    if (bytes > 0) {
        scratch = iseg__malloc(bytes);
        if (!scratch) return ISEG_STATUS_ENOMEM;
    }
    enum iseg_status st = iseg_assign_max_weight_scratch(w, allowed, n_rows, n_cols, row_to_col,
                                                         total, scratch);
    iseg__free(scratch);
    return st;
}
