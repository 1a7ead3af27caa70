/* bench_boundary.c - iseg_rle_boundary (bbox bitset erosion) against iseg__rle_boundary_ref
 * (dense, direct definition) on random blob masks at COCO image size.
 *
 *   bench_boundary [n_masks] [h] [w]      defaults: 2000 480 640, d from the 0.02 ratio
 *
 * Validates every mask first (fast == ref, count for count), then times each variant and
 * prints the median over repeats of the time per mask. Single-threaded. */
#define _POSIX_C_SOURCE 200809L /* clock_gettime */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/core_impl.h"
#include "iseg/mask.h"
#include "rle/rle_boundary_impl.h"

#include "bench_util.h"

static uint64_t rng_next(uint64_t *s) { /* splitmix64 */
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z          = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z          = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
static double rng_unif(uint64_t *s) { return (double)(rng_next(s) >> 11) * 0x1p-53; }

/* A COCO-like object: 1 to 3 overlapping ellipses, radius log-uniform in [2, 200] px, so
 * small, medium and large objects all occur; now and then a hole. Column-major (x*h + y). */
static void gen_blob(uint8_t *m, uint32_t h, uint32_t w, uint64_t *s) {
    memset(m, 0, (size_t)h * w);
    double cx = rng_unif(s) * w, cy = rng_unif(s) * h;
    int    nb = 1 + (int)(rng_next(s) % 3);
    for (int b = 0; b < nb; b++) {
        double rx = exp(log(2.0) + rng_unif(s) * log(100.0));
        double ry = rx * (0.5 + rng_unif(s));
        double bx = cx + (rng_unif(s) - 0.5) * rx, by = cy + (rng_unif(s) - 0.5) * ry;
        for (uint32_t x = 0; x < w; x++) {
            double u = (x - bx) / rx;
            if (u * u > 1) continue;
            for (uint32_t y = 0; y < h; y++) {
                double t = (y - by) / ry;
                if (u * u + t * t <= 1) m[(size_t)x * h + y] = 1;
            }
        }
    }
    if (rng_next(s) % 4 == 0) { /* a pinhole at the centre */
        size_t hx = (size_t)(cx < w ? cx : w - 1), hy = (size_t)(cy < h ? cy : h - 1);
        m[hx * h + hy] = 0;
    }
}

typedef enum iseg_status (*boundary_fn)(struct iseg_rle *, const struct iseg_rle *, uint32_t);

/* median over n_rep repeats of the mean seconds per mask over masks[0, n) */
static double time_fn(boundary_fn fn, const struct iseg_rle *masks, size_t n, uint32_t d,
                      int n_rep) {
    double t[32];
    for (int r = 0; r < n_rep; r++) {
        double t0 = iseg__now();
        for (size_t i = 0; i < n; i++) {
            struct iseg_rle out = {0};
            if (fn(&out, &masks[i], d) != ISEG_STATUS_OK) {
                fprintf(stderr, "boundary failed\n");
                exit(1);
            }
            iseg_rle_free(&out);
        }
        t[r] = (iseg__now() - t0) / (double)n;
    }
    qsort(t, (size_t)n_rep, sizeof(t[0]), bench_cmp_double);
    return t[n_rep / 2];
}

int main(int argc, char **argv) {
    size_t   n = argc > 1 ? (size_t)atol(argv[1]) : 2000;
    uint32_t h = argc > 2 ? (uint32_t)atol(argv[2]) : 480;
    uint32_t w = argc > 3 ? (uint32_t)atol(argv[3]) : 640;
    if (n == 0 || h == 0 || w == 0) {
        fprintf(stderr, "usage: %s [n_masks > 0] [h > 0] [w > 0]\n", argv[0]);
        return 2;
    }
    uint32_t         d     = iseg_boundary_dilation(h, w, 0.02);
    uint8_t         *dense = malloc((size_t)h * w);
    struct iseg_rle *masks = calloc(n, sizeof(*masks));
    uint64_t         s     = 2024, area = 0, runs = 0;
    if (!dense || !masks) return 1;
    for (size_t i = 0; i < n; i++) {
        gen_blob(dense, h, w, &s);
        if (iseg_rle_encode(&masks[i], dense, h, w) != ISEG_STATUS_OK) return 1;
        area += iseg_rle_area(&masks[i]);
        runs += masks[i].m;
    }

    /* validate before timing */
    size_t n_ref = n < 200 ? n : 200;
    for (size_t i = 0; i < n_ref; i++) {
        struct iseg_rle a = {0}, b = {0};
        if (iseg_rle_boundary(&a, &masks[i], d) != ISEG_STATUS_OK ||
            iseg__rle_boundary_ref(&b, &masks[i], d) != ISEG_STATUS_OK || a.m != b.m ||
            memcmp(a.cnts, b.cnts, a.m * sizeof(*a.cnts)) != 0) {
            fprintf(stderr, "MISMATCH on mask %zu\n", i);
            return 1;
        }
        iseg_rle_free(&a);
        iseg_rle_free(&b);
    }
    printf("boundary %ux%u d=%u: %zu masks (mean area %.0f px, mean %.1f counts), "
           "validated %zu against ref\n",
           h, w, d, n, (double)area / (double)n, (double)runs / (double)n, n_ref);

    double t_fast = time_fn(iseg_rle_boundary, masks, n, d, 9);
    double t_ref  = time_fn(iseg__rle_boundary_ref, masks, n_ref < 50 ? n_ref : 50, d, 3);
    printf("  ref   %10.2f us/mask\n", t_ref * 1e6);
    printf("  fast  %10.2f us/mask   (%.0fx faster)\n", t_fast * 1e6, t_ref / t_fast);

    for (size_t i = 0; i < n; i++) iseg_rle_free(&masks[i]);
    free(masks);
    free(dense);
    return 0;
}
