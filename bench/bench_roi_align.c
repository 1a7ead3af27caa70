/* bench_roi_align.c - Mask R-CNN's MultiScaleRoIAlign on real feature maps: the box head's
 * (the RPN proposals, 7x7) and the mask head's (the first 100 of them, 14x14), sampling 2,
 * P2..P5 of an `iseg dump` (fpn.p2..fpn.p5, rpn.proposals).
 *
 *   iseg dump IMAGE --model W --only fpn.p2,fpn.p3,fpn.p4,fpn.p5,rpn.proposals --out D.safetensors
 *   bench_roi_align D.safetensors [reps] [threads] [img_h]
 *
 * Not in the CMake targets yet; built by hand against a build's static library:
 *   cc -O3 -std=c11 -Isrc -Iinclude bench/bench_roi_align.c build/libiseg.a \
 *      -lyajl -lspng -ldeflate -ljpeg -lm -lpthread -o build/bench_roi_align
 *
 * Validates first: iseg__roi_align_levels (one pool run over all levels, straight into the
 * output) against iseg_roi_align_ref level by level, bit for bit; then times it against the
 * per-level iseg_roi_align calls plus the copy back into RoI order that it replaces, and
 * prints the medians (ms) of the wall time and of the process CPU time (all threads). img_h: the resized image height (default 800). */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "iseg/nn.h"
#include "iseg/weights.h"

#include "bench_util.h"
#include "nn/nn_impl.h"

static float *get(iseg_weights_t w, const char *name, int64_t *shape) {
    const struct iseg_weight *t = iseg_weights_find(w, name);
    if (!t) {
        fprintf(stderr, "missing %s\n", name);
        exit(2);
    }
    float *p = malloc(iseg_weight_numel(t) * sizeof(float));
    if (!p || iseg_weight_to_f32(p, t)) exit(2);
    for (int i = 0; i < t->ndim; i++) shape[i] = t->shape[i];
    return p;
}

struct pyr {
    const float *feat[4];
    int          H[4], W[4], C;
    float        scale[4];
    int          k_min;
};

/* what maskrcnn_infer.c's roi_pool did: per level, the level's RoIs into a buffer, copied back */
static void per_level(iseg_engine_t e, float *out, float *tmp, float *lb, int *idx,
                      const struct pyr *p, const int *lv, const float *boxes, int N, int S) {
    size_t per = (size_t)p->C * S * S;
    for (int l = 0; l < 4; l++) {
        int n = 0;
        for (int i = 0; i < N; i++)
            if (lv[i] == l) {
                idx[n] = i;
                memcpy(lb + 4 * n, boxes + 4 * i, 16);
                n++;
            }
        if (!n) continue;
        iseg_roi_align(e, tmp, p->feat[l], lb, n, p->C, p->H[l], p->W[l], S, S, p->scale[l], 2,
                       false);
        for (int j = 0; j < n; j++) memcpy(out + per * idx[j], tmp + per * j, per * sizeof(float));
    }
}

static void fused(iseg_engine_t e, float *out, const struct pyr *p, const int *lv,
                  const float *boxes, int N, int S) {
    iseg__roi_align_levels(e, out, p->feat, p->H, p->W, p->scale, 4, lv, boxes, N, p->C, S, S, 2,
                           false);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: bench_roi_align DUMP.safetensors [reps] [threads] [img_h]\n");
        return 2;
    }
    int reps = argc > 2 ? atoi(argv[2]) : 5, nth = argc > 3 ? atoi(argv[3]) : 2;
    int img_h = argc > 4 ? atoi(argv[4]) : 800;
    if (reps < 1 || reps > 99) reps = 5;
    iseg_weights_t w;
    char err[256];
    if (iseg_weights_load(&w, argv[1], err, sizeof(err))) {
        fprintf(stderr, "%s\n", err);
        return 2;
    }
    struct pyr p;
    for (int l = 0; l < 4; l++) {
        char    name[16];
        int64_t sh[4];
        snprintf(name, sizeof(name), "fpn.p%d", l + 2);
        p.feat[l] = get(w, name, sh);
        p.C = (int)sh[1], p.H[l] = (int)sh[2], p.W[l] = (int)sh[3];
        float approx = (float)((double)p.H[l] / (double)img_h);
        p.scale[l] = (float)pow(2.0, (double)roundf(log2f(approx)));
    }
    int64_t bs[2];
    float  *boxes = get(w, "rpn.proposals", bs);
    int     NB = (int)bs[0], NM = NB < 100 ? NB : 100;
    int     k_min = (int)(-log2f(p.scale[0])), k_max = (int)(-log2f(p.scale[3]));
    int    *lv = malloc(sizeof(int) * (size_t)NB), *idx = malloc(sizeof(int) * (size_t)NB);
    float  *lb = malloc(16 * (size_t)NB);
    iseg_roi_levels(lv, boxes, NB, k_min, k_max, 224.0f, 4, 1e-6f);
    iseg_engine_t e;
    if (iseg_engine_init(&e, nth)) return 2;
    int ok = 1;
    for (int pass = 0; pass < 2; pass++) {
        int    S = pass ? 14 : 7, N = pass ? NM : NB;
        size_t per = (size_t)p.C * S * S;
        float *a = malloc(per * N * sizeof(float)), *b = malloc(per * N * sizeof(float));
        float *tmp = malloc(per * N * sizeof(float));
        if (!a || !b || !tmp) return 2;
        /* validate: against the reference, level by level */
        for (int i = 0; i < N; i++)
            iseg_roi_align_ref(b + per * i, p.feat[lv[i]], boxes + 4 * i, 1, p.C, p.H[lv[i]],
                               p.W[lv[i]], S, S, p.scale[lv[i]], 2, false);
        fused(e, a, &p, lv, boxes, N, S);
        if (memcmp(a, b, per * N * sizeof(float))) {
            printf("FAILED: %dx%d not bit-identical to iseg_roi_align_ref\n", S, S);
            ok = 0;
        }
        double t[4][99];
        for (int r = 0; r < reps; r++) {
            double t0 = iseg__now(), c0 = bench_cpu_now();
            per_level(e, b, tmp, lb, idx, &p, lv, boxes, N, S);
            double t1 = iseg__now(), c1 = bench_cpu_now();
            fused(e, a, &p, lv, boxes, N, S);
            t[0][r] = (t1 - t0) * 1e3, t[1][r] = (iseg__now() - t1) * 1e3;
            t[2][r] = (c1 - c0) * 1e3, t[3][r] = (bench_cpu_now() - c1) * 1e3;
        }
        for (int i = 0; i < 4; i++) qsort(t[i], (size_t)reps, sizeof(double), bench_cmp_double);
        printf("%4d RoIs %2dx%-2d C %d, %d threads: per level + copy %7.2f ms (cpu %7.2f), "
               "fused %7.2f ms (cpu %7.2f)\n", N, S, S, p.C, nth, t[0][reps / 2],
               t[2][reps / 2], t[1][reps / 2], t[3][reps / 2]);
        free(a), free(b), free(tmp);
    }
    if (iseg_engine_take_error(e)) ok = 0;
    iseg_engine_free(e);
    iseg_weights_free(w);
    return ok ? 0 : 1;
}
