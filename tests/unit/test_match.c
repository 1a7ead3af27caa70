/* test_match.c - iseg_assign_max_weight(): brute-force oracle on small inputs, an optimality
 * certificate (no negative residual cycle) on larger ones, hand-worked cases, the "count first"
 * weighting of the COCO evaluator, errors, scratch use and determinism. */
#include "test.h"

#include "iseg/match.h"

#define MAXN 7 /* largest side for the brute-force oracle */

/* ---- helpers ---- */

static bool pair_allowed(const uint8_t *ok, size_t k) { return !ok || ok[k]; }

/* Check that row_to_col is a valid matching of allowed, positive pairs and that its weight,
 * summed in row order, is bit-identical to total. Returns the number of matched pairs. */
static size_t check_matching(const double *w, const uint8_t *ok, size_t nr, size_t nc,
                             const int32_t *r2c, double total) {
    uint8_t *col_used = calloc(nc + 1, 1);
    ASSERT(col_used);
    double sum = 0.0;
    size_t n   = 0;
    for (size_t r = 0; r < nr; r++) {
        int32_t c = r2c[r];
        ASSERT_MSG(c >= -1 && c < (int64_t)nc, "row %zu: column %d out of range", r, (int)c);
        if (c < 0) continue;
        size_t k = r * nc + (size_t)c;
        ASSERT_MSG(pair_allowed(ok, k), "row %zu matched to disallowed column %d", r, (int)c);
        ASSERT_MSG(w[k] > 0, "row %zu matched to column %d of weight %g", r, (int)c, w[k]);
        ASSERT_MSG(!col_used[c], "column %d matched twice", (int)c);
        col_used[c] = 1;
        sum += w[k];
        n++;
    }
    free(col_used);
    ASSERT_EQ_DBL(sum, total);
    return n;
}

/* Run both entry points (allocating, and scratch filled with garbage, and with total == NULL);
 * they must agree bit for bit. Returns the status, fills r2c and *total. */
static enum iseg_status assign_all_ways(const double *w, const uint8_t *ok, size_t nr, size_t nc,
                                        int32_t *r2c, double *total) {
    enum iseg_status st = iseg_assign_max_weight(w, ok, nr, nc, r2c, total);

    size_t   bytes   = iseg_assign_scratch_size(nr, nc);
    /* +1 and an odd offset: the scratch API accepts any alignment */
    uint8_t *buf     = malloc(bytes + 1);
    int32_t *r2c_b   = malloc((nr + 1) * sizeof(*r2c_b));
    double   total_b = -1.0;
    ASSERT(buf && r2c_b);
    memset(buf, 0xff, bytes + 1); /* NaN bit patterns in every double */
    enum iseg_status st_b =
        iseg_assign_max_weight_scratch(w, ok, nr, nc, r2c_b, &total_b, bytes ? buf + 1 : NULL);
    ASSERT_STATUS(st_b, st);
    if (st == ISEG_STATUS_OK) {
        ASSERT(memcmp(r2c, r2c_b, nr * sizeof(*r2c)) == 0);
        ASSERT_EQ_DBL(total_b, *total);
        memset(r2c_b, 0x5a, (nr + 1) * sizeof(*r2c_b));
        ASSERT_OK(iseg_assign_max_weight(w, ok, nr, nc, r2c_b, NULL));
        ASSERT(memcmp(r2c, r2c_b, nr * sizeof(*r2c)) == 0);
    }
    free(buf);
    free(r2c_b);
    return st;
}

/* ---- brute-force oracle: enumerate every matching, rows in order ---- */

struct oracle {
    const double  *w;
    const uint8_t *ok;
    const double  *iou; /* lexicographic mode: maximise (count, sum of iou) instead of weight */
    size_t         nr, nc;
    uint8_t        col_used[MAXN];
    double         best;       /* best weight (or best iou sum at best_count) */
    size_t         best_count; /* lexicographic mode */
};

static void oracle_rec(struct oracle *o, size_t r, double acc, size_t count) {
    if (r == o->nr) {
        if (o->iou) {
            if (count > o->best_count || (count == o->best_count && acc > o->best)) {
                o->best_count = count;
                o->best       = acc;
            }
        } else if (acc > o->best) {
            o->best = acc;
        }
        return;
    }
    oracle_rec(o, r + 1, acc, count); /* row r unmatched */
    for (size_t c = 0; c < o->nc; c++) {
        size_t k = r * o->nc + c;
        if (o->col_used[c] || !pair_allowed(o->ok, k)) continue;
        o->col_used[c] = 1;
        oracle_rec(o, r + 1, acc + (o->iou ? o->iou[k] : o->w[k]), count + 1);
        o->col_used[c] = 0;
    }
}

/* Maximum matching weight, the partial sums added in row order from 0.0 like *total. */
static double oracle_best(const double *w, const uint8_t *ok, size_t nr, size_t nc) {
    struct oracle o = {.w = w, .ok = ok, .nr = nr, .nc = nc, .best = 0.0};
    oracle_rec(&o, 0, 0.0, 0);
    return o.best;
}

/* ---- optimality certificate for larger inputs (integer weights, exact arithmetic) ----
 * Max-weight matching = min-cost circulation on s -> rows -> cols -> t -> s (unit capacities,
 * cost -w on row->col, t->s uncapacitated). A matching is optimal iff the residual graph has no
 * negative cycle, which Bellman-Ford detects in |V| rounds. */

struct edge {
    size_t a, b;
    double c;
};

static bool has_negative_cycle(const double *w, const uint8_t *ok, size_t nr, size_t nc,
                               const int32_t *r2c) {
    size_t       nv = 2 + nr + nc, ne = 0, cap = nr * nc + nr + nc + 2;
    struct edge *e  = malloc(cap * sizeof(*e));
    double      *d  = calloc(nv, sizeof(*d));
    uint8_t     *cm = calloc(nc + 1, 1);
    ASSERT(e && d && cm);
    const size_t S = 0, T = 1, R0 = 2, C0 = 2 + nr;
    size_t       n_match = 0;
    for (size_t r = 0; r < nr; r++) {
        if (r2c[r] >= 0) {
            cm[r2c[r]] = 1;
            n_match++;
        }
        e[ne++] = r2c[r] >= 0 ? (struct edge){R0 + r, S, 0.0} : (struct edge){S, R0 + r, 0.0};
    }
    for (size_t c = 0; c < nc; c++)
        e[ne++] = cm[c] ? (struct edge){T, C0 + c, 0.0} : (struct edge){C0 + c, T, 0.0};
    e[ne++] = (struct edge){T, S, 0.0};
    if (n_match) e[ne++] = (struct edge){S, T, 0.0};
    for (size_t r = 0; r < nr; r++) {
        for (size_t c = 0; c < nc; c++) {
            size_t k = r * nc + c;
            if (!pair_allowed(ok, k)) continue;
            if (r2c[r] == (int32_t)c) e[ne++] = (struct edge){C0 + c, R0 + r, w[k]};
            else e[ne++] = (struct edge){R0 + r, C0 + c, -w[k]};
        }
    }
    ASSERT(ne <= cap);
    bool changed = true;
    for (size_t round = 0; round < nv && changed; round++) {
        changed = false;
        for (size_t i = 0; i < ne; i++) {
            if (d[e[i].a] + e[i].c < d[e[i].b]) {
                d[e[i].b] = d[e[i].a] + e[i].c;
                changed   = true;
            }
        }
    }
    free(e);
    free(d);
    free(cm);
    return changed;
}

/* ---- random inputs ---- */

enum wmode { W_INT_SMALL, W_INT_TIES, W_INT_LARGE, W_REAL, W_REAL_TIES, W_COUNT };

static bool mode_is_int(enum wmode m) { return m <= W_INT_LARGE; }

/* Fill w and ok (ok may be left unused: *use_ok = false means pass NULL). Disallowed pairs get
 * junk, NaN and infinities included, which must never be read for their value. */
static void random_input(uint64_t *rng, enum wmode mode, size_t nr, size_t nc, double *w,
                         uint8_t *ok, bool *use_ok) {
    static const double density[] = {0.15, 0.4, 0.7, 0.9, 1.0};
    double              p         = density[test_rand(rng) % 5];
    *use_ok                       = test_rand(rng) % 4 != 0;
    for (size_t k = 0; k < nr * nc; k++) {
        double x;
        switch (mode) {
        case W_INT_SMALL: x = (double)((int)(test_rand(rng) % 15) - 5); break;
        case W_INT_TIES: x = (double)(test_rand(rng) % 3); break;
        case W_INT_LARGE:
            x = (double)((int64_t)(test_rand(rng) % ((uint64_t)1 << 41)) - ((int64_t)1 << 39));
            break;
        case W_REAL: x = 2.0 * test_rand_unif(rng) - 0.7; break;
        default: x = 0.1 * (double)((int)(test_rand(rng) % 7) - 2); break;
        }
        w[k]  = x;
        ok[k] = test_rand_unif(rng) < p ? (uint8_t)(1 + test_rand(rng) % 255) : 0;
        if (*use_ok && !ok[k]) {
            static const double junk[] = {NAN, INFINITY, -INFINITY, 1e300, 5.0};
            w[k]                       = junk[test_rand(rng) % 5];
        }
    }
}

/* ---- tests ---- */

TEST(match_vs_bruteforce) {
    uint64_t rng = 12345;
    double   w[MAXN * MAXN];
    uint8_t  ok[MAXN * MAXN];
    int32_t  r2c[MAXN + 1];
    for (int it = 0; it < 20000; it++) {
        size_t     nr   = test_rand(&rng) % (MAXN + 1);
        size_t     nc   = test_rand(&rng) % (MAXN + 1);
        enum wmode mode = (enum wmode)(test_rand(&rng) % W_COUNT);
        bool       use_ok;
        random_input(&rng, mode, nr, nc, w, ok, &use_ok);
        const uint8_t *okp   = use_ok ? ok : NULL;
        double         total = -123.0;
        r2c[nr]              = 0x7777; /* sentinel: nothing is written past n_rows */
        ASSERT_OK(assign_all_ways(w, okp, nr, nc, r2c, &total));
        ASSERT_EQ_INT(r2c[nr], 0x7777);
        check_matching(w, okp, nr, nc, r2c, total);
        double best = oracle_best(w, okp, nr, nc);
        if (mode_is_int(mode)) {
            ASSERT_MSG(total == best, "iteration %d (%zux%zu, mode %d): total %.17g, optimum %.17g",
                       it, nr, nc, (int)mode, total, best);
        } else {
            ASSERT_MSG(fabs(total - best) <= 1e-9,
                       "iteration %d (%zux%zu, mode %d): total %.17g, optimum %.17g", it, nr, nc,
                       (int)mode, total, best);
        }
    }
}

TEST(match_certificate_medium) {
    uint64_t rng = 777;
    enum { NMAX = 40 };
    static double  w[NMAX * NMAX];
    static uint8_t ok[NMAX * NMAX];
    int32_t        r2c[NMAX];
    for (int it = 0; it < 300; it++) {
        size_t     nr   = 1 + test_rand(&rng) % NMAX;
        size_t     nc   = 1 + test_rand(&rng) % NMAX;
        enum wmode mode = (enum wmode)(test_rand(&rng) % 3); /* integer modes: exact check */
        bool       use_ok;
        random_input(&rng, mode, nr, nc, w, ok, &use_ok);
        const uint8_t *okp = use_ok ? ok : NULL;
        double         total;
        ASSERT_OK(assign_all_ways(w, okp, nr, nc, r2c, &total));
        check_matching(w, okp, nr, nc, r2c, total);
        ASSERT_MSG(!has_negative_cycle(w, okp, nr, nc, r2c),
                   "iteration %d (%zux%zu, mode %d): matching is not optimal", it, nr, nc,
                   (int)mode);
    }
}

TEST(match_greedy_suboptimal_3x3) {
    /* Global greedy takes the 9 and is left with 1 + 1 = 11; the optimum is 8 + 8 + 1 = 17. */
    const double w[9] = {9, 8, 1,
                         8, 1, 1,
                         1, 1, 1};
    int32_t      r2c[3];
    double       total;
    ASSERT_OK(assign_all_ways(w, NULL, 3, 3, r2c, &total));
    ASSERT_EQ_INT(r2c[0], 1);
    ASSERT_EQ_INT(r2c[1], 0);
    ASSERT_EQ_INT(r2c[2], 2);
    ASSERT_EQ_DBL(total, 17.0);

    /* Zeros and a mask: row 1 can only use column 0, which row 0 must give up. */
    const double  w2[9]  = {8, 7, 0,
                            7, 9, 0,
                            0, 0, 5};
    const uint8_t ok2[9] = {1, 1, 1,
                            1, 0, 1,
                            1, 1, 1};
    ASSERT_OK(assign_all_ways(w2, ok2, 3, 3, r2c, &total));
    ASSERT_EQ_INT(r2c[0], 1);
    ASSERT_EQ_INT(r2c[1], 0);
    ASSERT_EQ_INT(r2c[2], 2);
    ASSERT_EQ_DBL(total, 19.0);
}

TEST(match_header_example) {
    const double iou[2 * 2] = {0.9, 0.6, 0.7, 0.1};
    double       w[4];
    uint8_t      ok[4];
    for (int k = 0; k < 4; k++) {
        ok[k] = iou[k] >= 0.5;
        w[k]  = 3.0 + iou[k];
    }
    int32_t dt_to_gt[2];
    double  total;
    ASSERT_OK(iseg_assign_max_weight(w, ok, 2, 2, dt_to_gt, &total));
    ASSERT_EQ_INT(dt_to_gt[0], 1);
    ASSERT_EQ_INT(dt_to_gt[1], 0);
    ASSERT_EQ_DBL(total, 0.0 + w[1] + w[2]);
    ASSERT_NEAR(total, 7.3, 1e-12);
}

TEST(match_all_disallowed) {
    const double  w[6]  = {1, 2, 3, 4, 5, 6};
    const uint8_t ok[6] = {0};
    int32_t       r2c[3] = {5, 5, 5};
    double        total  = -1;
    ASSERT_OK(assign_all_ways(w, ok, 2, 3, r2c, &total));
    ASSERT_EQ_INT(r2c[0], -1);
    ASSERT_EQ_INT(r2c[1], -1);
    ASSERT_EQ_DBL(total, 0.0);
    ASSERT(!signbit(total));

    /* allowed but never worth it: negative and zero weights */
    const double w2[6] = {-1, 0, -3, 0, -0.0, -6};
    ASSERT_OK(assign_all_ways(w2, NULL, 3, 2, r2c, &total));
    ASSERT_EQ_INT(r2c[0], -1);
    ASSERT_EQ_INT(r2c[1], -1);
    ASSERT_EQ_INT(r2c[2], -1);
    ASSERT_EQ_DBL(total, 0.0);
}

TEST(match_single_row_and_column) {
    /* 1 x N: the first column of maximal positive weight (tie rule) */
    const double w[6] = {3, -1, 5, 5, 2, 5};
    int32_t      r2c[6];
    double       total;
    ASSERT_OK(assign_all_ways(w, NULL, 1, 6, r2c, &total));
    ASSERT_EQ_INT(r2c[0], 2);
    ASSERT_EQ_DBL(total, 5.0);
    const uint8_t ok[6] = {1, 1, 0, 1, 1, 1};
    ASSERT_OK(assign_all_ways(w, ok, 1, 6, r2c, &total));
    ASSERT_EQ_INT(r2c[0], 3);
    ASSERT_EQ_DBL(total, 5.0);

    /* N x 1: the first row of maximal positive weight, the other rows unmatched */
    ASSERT_OK(assign_all_ways(w, NULL, 6, 1, r2c, &total));
    for (int r = 0; r < 6; r++) ASSERT_EQ_INT(r2c[r], r == 2 ? 0 : -1);
    ASSERT_EQ_DBL(total, 5.0);
    ASSERT_OK(assign_all_ways(w, ok, 6, 1, r2c, &total));
    for (int r = 0; r < 6; r++) ASSERT_EQ_INT(r2c[r], r == 3 ? 0 : -1);

    /* 1 x 1 */
    const double one = 0.25, neg = -0.25;
    ASSERT_OK(assign_all_ways(&one, NULL, 1, 1, r2c, &total));
    ASSERT_EQ_INT(r2c[0], 0);
    ASSERT_EQ_DBL(total, 0.25);
    ASSERT_OK(assign_all_ways(&neg, NULL, 1, 1, r2c, &total));
    ASSERT_EQ_INT(r2c[0], -1);
    ASSERT_EQ_DBL(total, 0.0);
}

TEST(match_empty) {
    int32_t r2c[4] = {9, 9, 9, 9};
    double  total  = -1;
    /* 0 x N: nothing to write, w may be NULL */
    ASSERT_EQ_U64(iseg_assign_scratch_size(0, 5), 0);
    ASSERT_OK(iseg_assign_max_weight(NULL, NULL, 0, 5, NULL, &total));
    ASSERT_EQ_DBL(total, 0.0);
    total = -1;
    ASSERT_OK(iseg_assign_max_weight_scratch(NULL, NULL, 0, 5, r2c, &total, NULL));
    ASSERT_EQ_DBL(total, 0.0);
    ASSERT_EQ_INT(r2c[0], 9);
    /* N x 0: every row unmatched */
    ASSERT_EQ_U64(iseg_assign_scratch_size(3, 0), 0);
    total = -1;
    ASSERT_OK(iseg_assign_max_weight(NULL, NULL, 3, 0, r2c, &total));
    ASSERT_EQ_INT(r2c[0], -1);
    ASSERT_EQ_INT(r2c[1], -1);
    ASSERT_EQ_INT(r2c[2], -1);
    ASSERT_EQ_INT(r2c[3], 9);
    ASSERT_EQ_DBL(total, 0.0);
    /* 0 x 0 */
    ASSERT_OK(iseg_assign_max_weight(NULL, NULL, 0, 0, NULL, NULL));
}

/* Kuhn's augmenting-path maximum-cardinality matching: an independent count for the test. */
static bool kuhn_try(const uint8_t *ok, size_t nc, size_t r, int32_t *col_row, uint8_t *seen) {
    for (size_t c = 0; c < nc; c++) {
        if (!ok[r * nc + c] || seen[c]) continue;
        seen[c] = 1;
        if (col_row[c] < 0 || kuhn_try(ok, nc, (size_t)col_row[c], col_row, seen)) {
            col_row[c] = (int32_t)r;
            return true;
        }
    }
    return false;
}

static size_t max_cardinality(const uint8_t *ok, size_t nr, size_t nc) {
    int32_t *col_row = malloc((nc + 1) * sizeof(*col_row));
    uint8_t *seen    = malloc(nc + 1);
    ASSERT(col_row && seen);
    for (size_t c = 0; c < nc; c++) col_row[c] = -1;
    size_t n = 0;
    for (size_t r = 0; r < nr; r++) {
        memset(seen, 0, nc + 1);
        n += kuhn_try(ok, nc, r, col_row, seen);
    }
    free(col_row);
    free(seen);
    return n;
}

/* Random IoU-like matrix: each row overlaps a few columns, some heavily. */
static void random_iou(uint64_t *rng, size_t nr, size_t nc, double thr, double *iou, double *w,
                       uint8_t *ok) {
    const double K = (double)(nr < nc ? nr : nc) + 1.0;
    for (size_t k = 0; k < nr * nc; k++) {
        double x = test_rand(rng) % 4 == 0 ? test_rand_unif(rng) : 0.3 * test_rand_unif(rng);
        if (test_rand(rng) % 16 == 0) x = thr; /* exactly at the threshold */
        iou[k] = x;
        ok[k]  = x >= thr;
        w[k]   = ok[k] ? K + x : 0.0;
    }
}

TEST(match_count_first) {
    uint64_t     rng = 99;
    const double thr = 0.5;
    /* small: maximal count, then maximal total IoU among those, against the oracle */
    {
        double  iou[MAXN * MAXN], w[MAXN * MAXN];
        uint8_t ok[MAXN * MAXN];
        int32_t r2c[MAXN];
        for (int it = 0; it < 5000; it++) {
            size_t nr = test_rand(&rng) % (MAXN + 1), nc = test_rand(&rng) % (MAXN + 1);
            random_iou(&rng, nr, nc, thr, iou, w, ok);
            double total;
            ASSERT_OK(assign_all_ways(w, ok, nr, nc, r2c, &total));
            size_t n      = check_matching(w, ok, nr, nc, r2c, total);
            double iou_at = 0.0;
            for (size_t r = 0; r < nr; r++)
                if (r2c[r] >= 0) iou_at += iou[r * nc + (size_t)r2c[r]];
            struct oracle o = {.ok = ok, .iou = iou, .nr = nr, .nc = nc};
            oracle_rec(&o, 0, 0.0, 0);
            ASSERT_EQ_U64(n, o.best_count);
            ASSERT_NEAR(iou_at, o.best, 1e-9);
        }
    }
    /* up to a few hundred: the count equals the maximum cardinality (Kuhn) */
    {
        enum { NMAX = 300 };
        double  *iou = malloc(NMAX * NMAX * sizeof(double));
        double  *w   = malloc(NMAX * NMAX * sizeof(double));
        uint8_t *ok  = malloc(NMAX * NMAX);
        int32_t *r2c = malloc(NMAX * sizeof(int32_t));
        ASSERT(iou && w && ok && r2c);
        for (int it = 0; it < 40; it++) {
            size_t nr = 1 + test_rand(&rng) % (it < 35 ? 100 : NMAX);
            size_t nc = 1 + test_rand(&rng) % (it < 35 ? 100 : NMAX);
            random_iou(&rng, nr, nc, thr, iou, w, ok);
            double total;
            ASSERT_OK(iseg_assign_max_weight(w, ok, nr, nc, r2c, &total));
            size_t n = check_matching(w, ok, nr, nc, r2c, total);
            ASSERT_EQ_U64(n, max_cardinality(ok, nr, nc));
        }
        free(iou);
        free(w);
        free(ok);
        free(r2c);
    }
}

TEST(match_large_consistent) {
    enum { NR = 200, NC = 150 };
    uint64_t rng = 4242;
    double  *w   = malloc(NR * NC * sizeof(double));
    double  *wt  = malloc(NR * NC * sizeof(double));
    uint8_t *ok  = malloc(NR * NC);
    uint8_t *okt = malloc(NR * NC);
    int32_t  r2c[NR], r2c2[NR], c2r[NC];
    ASSERT(w && wt && ok && okt);

    /* real weights with a mask: consistent, deterministic, and the transpose agrees */
    for (size_t k = 0; k < NR * NC; k++) {
        w[k]  = 2.0 * test_rand_unif(&rng) - 0.5;
        ok[k] = test_rand(&rng) % 3 != 0;
    }
    for (size_t r = 0; r < NR; r++) {
        for (size_t c = 0; c < NC; c++) {
            wt[c * NR + r]  = w[r * NC + c];
            okt[c * NR + r] = ok[r * NC + c];
        }
    }
    double total, total2, total_t;
    ASSERT_OK(assign_all_ways(w, ok, NR, NC, r2c, &total));
    size_t n = check_matching(w, ok, NR, NC, r2c, total);
    ASSERT(n > 100);
    ASSERT_OK(iseg_assign_max_weight(w, ok, NR, NC, r2c2, &total2));
    ASSERT(memcmp(r2c, r2c2, sizeof(r2c)) == 0);
    ASSERT_EQ_DBL(total, total2);
    ASSERT_OK(assign_all_ways(wt, okt, NC, NR, c2r, &total_t));
    check_matching(wt, okt, NC, NR, c2r, total_t);
    ASSERT_NEAR(total_t, total, 1e-9);

    /* integer weights: certified optimal, and the transpose reaches exactly the same total */
    for (size_t k = 0; k < NR * NC; k++) {
        w[k] = (double)((int)(test_rand(&rng) % 1000) - 200);
        size_t r = k / NC, c = k % NC;
        wt[c * NR + r] = w[k];
    }
    ASSERT_OK(assign_all_ways(w, ok, NR, NC, r2c, &total));
    check_matching(w, ok, NR, NC, r2c, total);
    ASSERT(!has_negative_cycle(w, ok, NR, NC, r2c));
    ASSERT_OK(assign_all_ways(wt, okt, NC, NR, c2r, &total_t));
    check_matching(wt, okt, NC, NR, c2r, total_t);
    ASSERT(!has_negative_cycle(wt, okt, NC, NR, c2r));
    ASSERT_EQ_DBL(total_t, total);

    free(w);
    free(wt);
    free(ok);
    free(okt);
}

TEST(match_errors) {
    double  w[4]   = {1, 2, 3, 4};
    uint8_t ok[4]  = {1, 0, 1, 1};
    int32_t r2c[2] = {7, 7};
    double  total  = 42;
    const double bad[] = {NAN, INFINITY, -INFINITY};
    for (int b = 0; b < 3; b++) {
        w[2] = bad[b];
        ASSERT_STATUS(assign_all_ways(w, ok, 2, 2, r2c, &total), ISEG_STATUS_EINVAL);
        ASSERT_EQ_INT(r2c[0], 7); /* outputs untouched on error */
        ASSERT_EQ_INT(r2c[1], 7);
        ASSERT_EQ_DBL(total, 42.0);
        /* the same junk on a disallowed pair is ignored */
        w[2] = 3;
        w[1] = bad[b];
        ASSERT_OK(assign_all_ways(w, ok, 2, 2, r2c, &total));
        ASSERT_EQ_INT(r2c[0], 0);
        ASSERT_EQ_INT(r2c[1], 1);
        ASSERT_EQ_DBL(total, 5.0);
        w[1]   = 2;
        r2c[0] = r2c[1] = 7;
        total           = 42;
    }
    /* weight limit: only large positive weights are refused */
    w[3] = 2 * ISEG_ASSIGN_WEIGHT_MAX;
    ASSERT_STATUS(assign_all_ways(w, NULL, 2, 2, r2c, &total), ISEG_STATUS_ELIMIT);
    ASSERT_EQ_INT(r2c[0], 7);
    w[3] = ISEG_ASSIGN_WEIGHT_MAX;
    ASSERT_OK(assign_all_ways(w, NULL, 2, 2, r2c, &total));
    ASSERT_EQ_INT(r2c[1], 1);
    ASSERT_EQ_DBL(total, 1.0 + ISEG_ASSIGN_WEIGHT_MAX);
    w[3] = -1e300;
    ASSERT_OK(assign_all_ways(w, NULL, 2, 2, r2c, &total));
    ASSERT_EQ_INT(r2c[0], 1);
    ASSERT_EQ_INT(r2c[1], 0);
    ASSERT_EQ_DBL(total, 5.0);
    /* size limits: refused before anything is read */
    ASSERT_EQ_U64(iseg_assign_scratch_size(1, ISEG_ASSIGN_DIM_MAX + 1), 0);
    ASSERT_EQ_U64(iseg_assign_scratch_size(ISEG_ASSIGN_DIM_MAX, ISEG_ASSIGN_DIM_MAX), 0);
    ASSERT_STATUS(iseg_assign_max_weight(w, NULL, 1, ISEG_ASSIGN_DIM_MAX + 1, r2c, &total),
                  ISEG_STATUS_ELIMIT);
    ASSERT_STATUS(iseg_assign_max_weight(w, NULL, ISEG_ASSIGN_DIM_MAX, ISEG_ASSIGN_DIM_MAX, r2c,
                                         &total),
                  ISEG_STATUS_ELIMIT);
}

static void *failing_malloc(size_t n, void *user) {
    (void)n;
    (void)user;
    return NULL;
}

TEST(match_enomem) {
    const double w[4] = {1, 2, 3, 5};
    int32_t      r2c[2] = {7, 7};
    double       total  = 42;
    /* the test runs in its own process: changing the global hooks is safe */
    struct iseg_alloc a = {.malloc_fn = failing_malloc};
    iseg_alloc_set(&a);
    ASSERT_STATUS(iseg_assign_max_weight(w, NULL, 2, 2, r2c, &total), ISEG_STATUS_ENOMEM);
    ASSERT_EQ_INT(r2c[0], 7);
    ASSERT_EQ_DBL(total, 42.0);
    /* empty problems allocate nothing */
    ASSERT_OK(iseg_assign_max_weight(w, NULL, 2, 0, r2c, &total));
    /* the scratch variant does not allocate */
    uint8_t buf[512];
    ASSERT(iseg_assign_scratch_size(2, 2) <= sizeof(buf));
    ASSERT_OK(iseg_assign_max_weight_scratch(w, NULL, 2, 2, r2c, &total, buf));
    ASSERT_EQ_INT(r2c[0], 0);
    ASSERT_EQ_INT(r2c[1], 1);
    ASSERT_EQ_DBL(total, 6.0);
    iseg_alloc_set(NULL);
}

TEST(match_scratch_reuse) {
    /* one buffer sized for the largest problem serves every smaller one, dirty from before */
    enum { NMAX = 60 };
    size_t bytes = iseg_assign_scratch_size(NMAX, NMAX);
    for (size_t a = 1; a <= NMAX; a++) {
        ASSERT(iseg_assign_scratch_size(a, NMAX) <= bytes);
        ASSERT(iseg_assign_scratch_size(NMAX, a) <= bytes);
        ASSERT(iseg_assign_scratch_size(a, a) <= iseg_assign_scratch_size(a, a + 1));
        ASSERT(iseg_assign_scratch_size(a, a) <= iseg_assign_scratch_size(a + 1, a));
    }
    uint8_t *buf = malloc(bytes);
    ASSERT(buf);
    static double  w[NMAX * NMAX];
    static uint8_t ok[NMAX * NMAX];
    int32_t        r2c[NMAX], r2c_ref[NMAX];
    uint64_t       rng = 5;
    for (int it = 0; it < 200; it++) {
        size_t nr = 1 + test_rand(&rng) % NMAX, nc = 1 + test_rand(&rng) % NMAX;
        bool   use_ok;
        random_input(&rng, (enum wmode)(test_rand(&rng) % W_COUNT), nr, nc, w, ok, &use_ok);
        double t, t_ref;
        ASSERT_OK(iseg_assign_max_weight_scratch(w, use_ok ? ok : NULL, nr, nc, r2c, &t, buf));
        ASSERT_OK(iseg_assign_max_weight(w, use_ok ? ok : NULL, nr, nc, r2c_ref, &t_ref));
        ASSERT(memcmp(r2c, r2c_ref, nr * sizeof(*r2c)) == 0);
        ASSERT_EQ_DBL(t, t_ref);
    }
    free(buf);
}

TEST_LIST = {
    TEST_ENTRY(match_vs_bruteforce),
    TEST_ENTRY(match_certificate_medium),
    TEST_ENTRY(match_greedy_suboptimal_3x3),
    TEST_ENTRY(match_header_example),
    TEST_ENTRY(match_all_disallowed),
    TEST_ENTRY(match_single_row_and_column),
    TEST_ENTRY(match_empty),
    TEST_ENTRY(match_count_first),
    TEST_ENTRY(match_large_consistent),
    TEST_ENTRY(match_errors),
    TEST_ENTRY(match_enomem),
    TEST_ENTRY(match_scratch_reuse),
    TEST_END,
};
