/* rle_poly_ref.c - maskApi's rleFrPoly written out literally (the dense point list in the x5
 * grid), as the oracle for the crossing-based iseg_rle_from_poly in tests and fuzzing.
 * Never optimised. Memory grows with the polygon's perimeter in the x5 grid, so it refuses
 * (ELIMIT) polygons whose point list would exceed 2^24 points.
 * ref: shared/specs/coco-eval.md §5 frPoly */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

#include <math.h>
#include <stdlib.h>

#include "core/core_impl.h"
#include "iseg/mask.h"
#include "rle/rle_impl.h"

#define REF_MAX_POINTS ((size_t)1 << 24)

static int cmp_u32(const void *pa, const void *pb) {
    uint32_t a = *(const uint32_t *)pa, b = *(const uint32_t *)pb;
    return (a > b) - (a < b);
}

static int64_t iabs(int64_t a) { return a < 0 ? -a : a; }

enum iseg_status iseg__rle_from_poly_ref(struct iseg_rle *out, const double *xy, size_t k,
                                         uint32_t h, uint32_t w) {
    *out = (struct iseg_rle){0};
    for (size_t j = 0; j < 2 * k; j++)
        if (!(fabs(xy[j]) < 1e6)) return ISEG_STATUS_ELIMIT;
    enum iseg_status st = ISEG_STATUS_ENOMEM;
    int64_t *x = iseg__malloc_array(k + 1, sizeof(int64_t));
    int64_t *y = iseg__malloc_array(k + 1, sizeof(int64_t));
    int64_t *u = NULL, *v = NULL;
    uint32_t *a = NULL, *b = NULL;
    if (!x || !y) goto out;
    /* 1. scale by 5 with C truncation, close the ring */
    for (size_t j = 0; j < k; j++) {
        double sx = 5.0 * xy[2 * j];
        sx        = sx + .5;
        double sy = 5.0 * xy[2 * j + 1];
        sy        = sy + .5;
        x[j]      = (int64_t)sx;
        y[j]      = (int64_t)sy;
    }
    if (k > 0) {
        x[k] = x[0];
        y[k] = y[0];
    }
    size_t m = 0;
    for (size_t j = 0; j < k; j++) {
        int64_t dx = iabs(x[j] - x[j + 1]), dy = iabs(y[j] - y[j + 1]);
        m += (size_t)(dx > dy ? dx : dy) + 1;
    }
    if (m > REF_MAX_POINTS) {
        st = ISEG_STATUS_ELIMIT;
        goto out;
    }
    u = iseg__malloc_array(m + 1, sizeof(int64_t));
    v = iseg__malloc_array(m + 1, sizeof(int64_t));
    if (!u || !v) goto out;
    /* 2. a dense digital line per edge */
    m = 0;
    for (size_t j = 0; j < k; j++) {
        int64_t xs = x[j], xe = x[j + 1], ys = y[j], ye = y[j + 1];
        int64_t dx = iabs(xe - xs), dy = iabs(ys - ye), t;
        bool    flip = (dx >= dy && xs > xe) || (dx < dy && ys > ye);
        if (flip) {
            t  = xs;
            xs = xe;
            xe = t;
            t  = ys;
            ys = ye;
            ye = t;
        }
        /* a zero-length edge: the reference's 0/0 slope gives a v that is never used */
        double s = dx >= dy ? (dx ? (double)(ye - ys) / (double)dx : 0)
                            : (double)(xe - xs) / (double)dy;
        int64_t n = dx >= dy ? dx : dy;
        for (int64_t d = 0; d <= n; d++) {
            t          = flip ? n - d : d;
            double val = s * (double)t;
            if (dx >= dy) {
                u[m]   = t + xs;
                val    = (double)ys + val;
                val    = val + .5;
                v[m++] = (int64_t)val;
            } else {
                v[m]   = t + ys;
                val    = (double)xs + val;
                val    = val + .5;
                u[m++] = (int64_t)val;
            }
        }
    }
    /* 3. column crossings */
    a = iseg__malloc_array(m + 1, sizeof(uint32_t));
    b = iseg__malloc_array(m + 1, sizeof(uint32_t));
    if (!a || !b) goto out;
    size_t na = 0;
    for (size_t j = 1; j < m; j++) {
        if (u[j] == u[j - 1]) continue;
        double xd = (double)(u[j] < u[j - 1] ? u[j] : u[j] - 1);
        xd        = (xd + .5) / 5 - .5;
        if (floor(xd) != xd || xd < 0 || xd > (double)w - 1) continue;
        double yd = (double)(v[j] < v[j - 1] ? v[j] : v[j - 1]);
        yd        = (yd + .5) / 5 - .5;
        if (yd < 0) yd = 0;
        else if (yd > h) yd = h;
        yd      = ceil(yd);
        a[na++] = (uint32_t)((uint64_t)xd * h + (uint64_t)yd);
    }
    /* 4. append h*w, sort, differences, fold zero differences */
    a[na++] = h * w;
    qsort(a, na, sizeof(uint32_t), cmp_u32);
    uint32_t p = 0;
    for (size_t j = 0; j < na; j++) {
        uint32_t t = a[j];
        a[j] -= p;
        p = t;
    }
    size_t j = 0, nb = 0;
    b[nb++] = a[j++];
    while (j < na) {
        if (a[j] > 0) {
            b[nb++] = a[j++];
        } else {
            j++;
            if (j < na) b[nb - 1] += a[j++];
        }
    }
    st = iseg_rle_from_counts(out, b, nb, h, w);
out:
    iseg__free(x);
    iseg__free(y);
    iseg__free(u);
    iseg__free(v);
    iseg__free(a);
    iseg__free(b);
    return st;
}
