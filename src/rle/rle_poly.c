/* rle_poly.c - polygon and box rasterisation, bit-exact with maskApi's rleFrPoly / rleFrBbox.
 *
 * ref: shared/specs/coco-eval.md §5 "frPoly". The reference scales the ring by 5, draws every
 * edge as a dense digital line of points (u, v) in the x5 grid, and records a column boundary
 * a = X*h + Y for each pair of consecutive points whose u differ and whose
 * xd = (u' + .5)/5 - .5 is an integer column X in [0, w-1] (u' = the new u when moving left, the
 * new u - 1 when moving right); the sorted boundaries, with h*w appended, become the counts.
 *
 * Only the multiset of recorded boundaries matters (they are sorted), so instead of generating
 * the dense point list (5 points per pixel of perimeter, unbounded for far-away vertices) we
 * visit only the pairs that can record something:
 *  - "shallow" edges (dx >= dy): u = xs + t steps by exactly 1, so the pair (t, t+1) records
 *    iff xs + t = 5X + 2; we loop over those X directly;
 *  - "steep" edges (dy > dx): u(t) = (int)(xs + s*t + .5) is monotone in t, so the pair where u
 *    crosses a given value is found by binary search over t with the same floating-point
 *    expression, which keeps the result bit-identical;
 *  - pairs that straddle two edges (last point of one, first of the next) are checked as the
 *    reference does.
 * Work is O(k + crossings * log(edge length)) and memory O(crossings), whatever the coordinates.
 *
 * Every floating-point expression is evaluated as in the reference, one operation per statement
 * where a multiply meets an add, and contraction into FMA is switched off: an FMA would change
 * the last bit and with it the rounding of a pixel. */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

#include <math.h>
#include <string.h>

#include "core/core_impl.h"
#include "iseg/mask.h"

/* maskApi converts 5*x + .5 to int; outside this range that conversion is undefined behaviour
 * in the reference, and we report ISEG_STATUS_ELIMIT instead. */
#define SCALED_MIN (-2147483649.0)
#define SCALED_MAX 2147483648.0

/* One edge in the reference's normalised form: endpoints swapped (flip) so that the driving
 * coordinate increases from (xs, ys) to (xe, ye); points are t = 0..n. */
struct edge {
    int64_t xs, ys, xe, ye;
    int64_t n;     /* max(dx, dy): the edge has n + 1 points */
    double  s;     /* slope of the dependent coordinate per step of t */
    bool    steep; /* dy > dx: v = ys + t drives, u = (int)(xs + s*t + .5) */
    bool    flip;  /* traversal runs from t = n down to t = 0 */
};

/* (int)(base + s*t + .5) exactly as the reference evaluates it, without FMA. */
static int64_t lin(int64_t base, double s, int64_t t) {
    double st  = s * (double)t;
    double val = (double)base + st;
    val        = val + 0.5;
    return (int64_t)val; /* |val| < 2^33 by construction: defined */
}

/* (int)(5*c + .5) for a coordinate already checked to be in range. */
static int64_t scale5(double c) {
    double sc = 5.0 * c;
    sc        = sc + 0.5;
    return (int64_t)sc;
}

/* EINVAL if any coordinate is NaN or infinite (whatever else is wrong), else ELIMIT if any is
 * beyond the reference's int range, else OK. */
static enum iseg_status check_coords(const double *xy, size_t n) {
    for (size_t j = 0; j < n; j++)
        if (!isfinite(xy[j])) return ISEG_STATUS_EINVAL;
    for (size_t j = 0; j < n; j++) {
        double sc = 5.0 * xy[j];
        sc        = sc + 0.5;
        if (!(sc > SCALED_MIN && sc < SCALED_MAX)) return ISEG_STATUS_ELIMIT;
    }
    return ISEG_STATUS_OK;
}

static int64_t iabs64(int64_t a) { return a < 0 ? -a : a; }

/* floor(a / 5) and ceil(a / 5) for any sign of a. */
static int64_t floor5(int64_t a) { return a >= 0 ? a / 5 : -((-a + 4) / 5); }
static int64_t ceil5(int64_t a) { return -floor5(-a); }

static void edge_init(struct edge *e, int64_t x0, int64_t y0, int64_t x1, int64_t y1) {
    int64_t dx = iabs64(x1 - x0), dy = iabs64(y0 - y1);
    e->steep   = dx < dy;
    e->flip    = (dx >= dy && x0 > x1) || (dx < dy && y0 > y1);
    if (e->flip) {
        e->xs = x1, e->ys = y1, e->xe = x0, e->ye = y0;
    } else {
        e->xs = x0, e->ys = y0, e->xe = x1, e->ye = y1;
    }
    e->n = e->steep ? dy : dx;
    if (e->n == 0) e->s = 0; /* the reference computes 0/0 here; its v is then never used */
    else e->s = e->steep ? (double)(e->xe - e->xs) / (double)dy
                         : (double)(e->ye - e->ys) / (double)dx;
}

static int64_t edge_u(const struct edge *e, int64_t t) {
    return e->steep ? lin(e->xs, e->s, t) : e->xs + t;
}

static int64_t edge_v(const struct edge *e, int64_t t) {
    return e->steep ? e->ys + t : lin(e->ys, e->s, t);
}

/* The boundary a = X*h + Y of column X whose run starts after y-grid value yraw. */
static uint32_t boundary(int64_t X, int64_t yraw, uint32_t h) {
    double yd = (double)yraw;
    yd        = (yd + .5) / 5 - .5;
    if (yd < 0) yd = 0;
    else if (yd > (double)h) yd = (double)h;
    yd = ceil(yd);
    return (uint32_t)((uint64_t)X * h + (uint64_t)yd);
}

/* The reference's test on a pair of consecutive points (prev, cur) with u_prev != u_cur:
 * appends a boundary to a (when a != NULL) and returns 1 when the pair records one. */
static size_t pair_record(int64_t u_prev, int64_t v_prev, int64_t u_cur, int64_t v_cur,
                          uint32_t h, uint32_t w, uint32_t *a) {
    if (u_prev == u_cur) return 0;
    double xd = (double)(u_cur < u_prev ? u_cur : u_cur - 1);
    xd        = (xd + .5) / 5 - .5;
    if (floor(xd) != xd || xd < 0 || xd > (double)(w - 1)) return 0;
    if (a) *a = boundary((int64_t)xd, v_cur < v_prev ? v_cur : v_prev, h);
    return 1;
}

/* Range [*lo, *hi] of columns X (clipped to [0, w-1]) with 5X+2 in [c0, c1]; empty if lo > hi. */
static void column_range(int64_t c0, int64_t c1, uint32_t w, int64_t *lo, int64_t *hi) {
    *lo = ceil5(c0 - 2);
    *hi = floor5(c1 - 2);
    if (*lo < 0) *lo = 0;
    if (*hi > (int64_t)w - 1) *hi = (int64_t)w - 1;
}

/* The largest t in [0, n) where a steep edge's u(t) is still on c's side of the crossing
 * between c and c + 1 (see edge_records), found from a real-valued guess corrected with the
 * exact expression; -1 if that takes more than a few steps. */
static int64_t crossing_guess(const struct edge *e, int64_t c) {
    bool   up = e->s > 0;
    double g  = ((double)c + 0.5 - (double)e->xs) / e->s;
    if (!(g >= 0)) g = 0;
    if (g > (double)(e->n - 1)) g = (double)(e->n - 1);
    int64_t t = (int64_t)g;
#define P(tt) (up ? edge_u(e, tt) <= c : edge_u(e, tt) >= c + 1)
    int steps = 0;
    if (P(t)) {
        while (t + 1 < e->n && P(t + 1)) {
            t++;
            if (++steps > 8) return -1;
        }
    } else {
        while (t > 0 && !P(t)) {
            t--;
            if (++steps > 8) return -1;
        }
    }
#undef P
    return t;
}

/* Boundaries recorded by the pairs inside one edge. With a == NULL returns an upper bound on
 * their number (exact for shallow edges); otherwise writes them and returns how many. */
static size_t edge_records(const struct edge *e, uint32_t h, uint32_t w, uint32_t *a) {
    if (e->n == 0) return 0;
    int64_t lo, hi;
    if (!e->steep) {
        /* u = xs + t: the pair (t, t+1) has xd = xs + t whatever the direction. */
        column_range(e->xs, e->xs + e->n - 1, w, &lo, &hi);
        if (lo > hi) return 0;
        if (!a) return (size_t)(hi - lo + 1);
        size_t k = 0;
        for (int64_t X = lo; X <= hi; X++) {
            int64_t t  = 5 * X + 2 - e->xs;
            int64_t v0 = edge_v(e, t), v1 = edge_v(e, t + 1);
            a[k++]     = boundary(X, v0 < v1 ? v0 : v1, h);
        }
        return k;
    }
    /* Steep: u moves by at most one per step (|s| < 1) except for rounding at 2^32-long edges,
     * which the search below also handles. A pair records only if its xd lies between its two
     * u values, so search, for each candidate column value c, the pair where u crosses from c to
     * c+1 (or back), then apply the reference's test to that pair as traversed. */
    int64_t u0 = edge_u(e, 0), un = edge_u(e, e->n);
    if (u0 == un) return 0;
    bool    up  = un > u0;
    int64_t ulo = up ? u0 : un, uhi = up ? un : u0;
    column_range(ulo, uhi - 1, w, &lo, &hi);
    if (lo > hi) return 0;
    if (!a) return (size_t)(hi - lo + 1);
    size_t  k      = 0;
    int64_t t_last = -1;
    for (int64_t X = lo; X <= hi; X++) {
        int64_t c = 5 * X + 2;
        /* largest t in [0, n) with u(t) <= c (up) or u(t) >= c + 1 (down): the predicate
         * holds on a prefix of t because u is monotone. Start from the real-valued crossing
         * t ~ (c + .5 - xs) / s and correct it with the exact expression (usually 0-2 steps);
         * fall back to bisection if the guess is far off. */
        int64_t tl = crossing_guess(e, c);
        if (tl < 0) {
            tl = 0;
            int64_t th = e->n;
            while (th - tl > 1) {
                int64_t mid = tl + (th - tl) / 2;
                int64_t um  = edge_u(e, mid);
                if (up ? um <= c : um >= c + 1) tl = mid;
                else th = mid;
            }
        }
        if (tl == t_last) continue;
        t_last     = tl;
        int64_t ua = edge_u(e, tl), ub = edge_u(e, tl + 1);
        int64_t va = e->ys + tl, vb = va + 1;
        /* traversal order: t increasing unless flipped */
        if (e->flip) k += pair_record(ub, vb, ua, va, h, w, a + k);
        else k += pair_record(ua, va, ub, vb, h, w, a + k);
    }
    return k;
}

/* First and last point of an edge in traversal order. A zero-length edge has one point whose v
 * the reference leaves undefined (0/0 slope); its pairs never record, and we use ys. */
static void edge_ends(const struct edge *e, int64_t *uf, int64_t *vf, int64_t *ul, int64_t *vl) {
    int64_t tf = e->flip ? e->n : 0, tl = e->flip ? 0 : e->n;
    *uf = edge_u(e, tf);
    *vf = edge_v(e, tf);
    *ul = edge_u(e, tl);
    *vl = edge_v(e, tl);
}

/* Walk all edges of the ring; count (a == NULL) or write the recorded boundaries. */
static size_t ring_records(const double *xy, size_t k, uint32_t h, uint32_t w, uint32_t *a,
                           bool *overflow) {
    size_t  total = 0;
    int64_t u_prev = 0, v_prev = 0;
    for (size_t j = 0; j < k; j++) {
        size_t      j1 = j + 1 < k ? j + 1 : 0; /* the ring is closed */
        struct edge e;
        edge_init(&e, scale5(xy[2 * j]), scale5(xy[2 * j + 1]), scale5(xy[2 * j1]),
                  scale5(xy[2 * j1 + 1]));
        int64_t uf, vf, ul, vl;
        edge_ends(&e, &uf, &vf, &ul, &vl);
        size_t add = 0;
        if (j > 0) add += pair_record(u_prev, v_prev, uf, vf, h, w, a ? a + total : NULL);
        add += edge_records(&e, h, w, a ? a + total + add : NULL);
        if (total > SIZE_MAX - add) {
            *overflow = true;
            return 0;
        }
        total += add;
        u_prev = ul;
        v_prev = vl;
    }
    return total;
}

/* Sort n values, all <= max, ascending; tmp holds n values. LSD radix sort with 11-bit digits
 * (2 passes for images up to 4M pixels), insertion sort for short arrays. */
static void insertion_sort_u32(uint32_t *a, size_t n) {
    for (size_t i = 1; i < n; i++) {
        uint32_t v = a[i];
        size_t   j = i;
        for (; j > 0 && a[j - 1] > v; j--) a[j] = a[j - 1];
        a[j] = v;
    }
}

/* Sort the boundaries a = X*h + Y (plus the final h*w). A polygon records about two boundaries
 * per column it spans, so a counting sort by column X over the columns spanned, followed by an
 * insertion sort that only has to order the few boundaries within each column, is linear.
 * Sparse inputs (far fewer boundaries than columns spanned) use an 11-bit radix sort. */
/* tmp holds 2n values */
static void sort_u32(uint32_t *a, uint32_t *tmp, size_t n, uint32_t max, uint32_t h) {
    if (n < 48) {
        insertion_sort_u32(a, n);
        return;
    }
    /* column keys X = a / h without a division per element: a double product is within one
     * of the quotient (a < 2^32, exact in a double), and one comparison corrects it */
    const double inv_h = 1.0 / (double)h;
    uint32_t    *key   = tmp + n;
    uint32_t     xmin = UINT32_MAX, xmax = 0;
    for (size_t i = 0; i < n - 1; i++) { /* the last one is h*w, column w */
        uint32_t x = (uint32_t)((double)a[i] * inv_h);
        if ((uint64_t)x * h > a[i]) x--;
        else if ((uint64_t)(x + 1) * h <= a[i]) x++;
        key[i] = x;
        if (x < xmin) xmin = x;
        if (x > xmax) xmax = x;
    }
    size_t span = (size_t)(xmax - xmin) + 1;
    if (xmin <= xmax && span <= 4 * n && span <= 8192) {
        uint32_t cnt[8192 + 1];
        memset(cnt, 0, (span + 1) * sizeof(cnt[0]));
        for (size_t i = 0; i < n - 1; i++) cnt[key[i] - xmin + 1]++;
        for (size_t d = 1; d <= span; d++) cnt[d] += cnt[d - 1];
        for (size_t i = 0; i < n - 1; i++) tmp[cnt[key[i] - xmin]++] = a[i];
        memcpy(a, tmp, (n - 1) * sizeof(*a));
        /* a[n-1] = h*w is the largest value and already last */
        insertion_sort_u32(a, n - 1);
        return;
    }
    size_t    cnt[1 << 11];
    uint32_t *src = a, *dst = tmp;
    for (unsigned shift = 0; shift < 32 && (max >> shift) != 0; shift += 11) {
        memset(cnt, 0, sizeof(cnt));
        for (size_t i = 0; i < n; i++) cnt[(src[i] >> shift) & 0x7ff]++;
        size_t pos = 0;
        for (size_t d = 0; d < (1 << 11); d++) {
            size_t c = cnt[d];
            cnt[d]   = pos;
            pos += c;
        }
        for (size_t i = 0; i < n; i++) dst[cnt[(src[i] >> shift) & 0x7ff]++] = src[i];
        uint32_t *t = src;
        src         = dst;
        dst         = t;
    }
    if (src != a) memcpy(a, src, n * sizeof(*a));
}

enum iseg_status iseg_rle_from_poly(struct iseg_rle *out, const double *xy, size_t k, uint32_t h,
                                    uint32_t w) {
    ISEG_ASSERT(out);
    ISEG_ASSERT(k == 0 || xy);
    *out          = (struct iseg_rle){0};
    uint64_t n_px = (uint64_t)h * (uint64_t)w;
    if (n_px > ISEG_RLE_MAX_PIXELS) return ISEG_STATUS_ELIMIT;
    if (k > SIZE_MAX / 2) return ISEG_STATUS_EINVAL;
    enum iseg_status st = check_coords(xy, 2 * k);
    if (st != ISEG_STATUS_OK) return st;
    uint32_t *cnts;
    size_t    m;
    if (n_px == 0) {
        /* An empty image: the single count 0 (the reference produces that for h == 0 and
         * counts that do not sum to 0 for w == 0). */
        cnts = iseg__malloc(sizeof(*cnts));
        if (!cnts) return ISEG_STATUS_ENOMEM;
        cnts[0] = 0;
        m       = 1;
        goto done;
    }

    bool   overflow = false;
    size_t n_max    = ring_records(xy, k, h, w, NULL, &overflow);
    if (overflow || n_max == SIZE_MAX) return ISEG_STATUS_ENOMEM;
    /* one block: the boundaries (n_max + 1), then the sort's scratch and keys (2 (n_max + 1)) */
    size_t n_cap;
    if (!iseg__mul_size_ok(n_max + 1, 3, &n_cap)) return ISEG_STATUS_ENOMEM;
    cnts = iseg__malloc_array(n_cap, sizeof(*cnts));
    if (!cnts) return ISEG_STATUS_ENOMEM;
    size_t n = ring_records(xy, k, h, w, cnts, &overflow);
    ISEG_ASSERT(!overflow && n <= n_max);
    cnts[n++] = (uint32_t)n_px;
    sort_u32(cnts, cnts + n_max + 1, n, (uint32_t)n_px, h);

    /* Successive differences (the first stays), then fold zero differences: two boundaries at
     * the same place cancel, so the difference after a zero joins the previous count. In place:
     * the write index never passes the read index. */
    uint32_t prev = 0;
    for (size_t j = 0; j < n; j++) {
        uint32_t t = cnts[j];
        cnts[j] -= prev;
        prev = t;
    }
    m = 1;
    for (size_t j = 1; j < n;) {
        if (cnts[j] > 0) {
            cnts[m++] = cnts[j++];
        } else {
            j++;
            if (j < n) cnts[m - 1] += cnts[j++];
        }
    }
    uint32_t *shrunk = iseg__realloc_array(cnts, m, sizeof(*cnts));
    if (shrunk) cnts = shrunk;

done:
    out->h    = h;
    out->w    = w;
    out->m    = m;
    out->cnts = cnts;
    return ISEG_STATUS_OK;
}

enum iseg_status iseg_rle_from_bbox(struct iseg_rle *out, const double bb[4], uint32_t h,
                                    uint32_t w) {
    ISEG_ASSERT(out && bb);
    /* rleFrBbox: corners (xs,ys), (xs,ye), (xe,ye), (xe,ys) with xe = x + width. */
    double xs = bb[0], ys = bb[1];
    double xe = xs + bb[2], ye = ys + bb[3];
    double xy[8] = {xs, ys, xs, ye, xe, ye, xe, ys};
    return iseg_rle_from_poly(out, xy, 4, h, w);
}
