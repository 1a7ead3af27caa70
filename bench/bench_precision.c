/* bench_precision.c - what reduced precision costs and gains on a model: each precision's
 * median time per image, and how far its detections are from the fp32 ones.
 *
 *   bench_precision --model M [--threads 2] [--repeat 3] [--min-score 0.5] IMAGE...
 *
 * Runs every image in fp32, bf16 and int8 (iseg_model_params.precision; --repeat runs per image
 * after one warm-up, the median kept). For the accuracy cost, each fp32 detection of score >=
 * --min-score is matched to the detection of the same label with the largest mask IoU in the
 * other precision's output; printed: the median and 5th percentile of those IoUs, the share
 * matched at IoU >= 0.5, and the number of detections >= --min-score. The change in segm AP
 * comes from a real evaluation (iseg predict --precision P --dataset ..., then iseg eval). */
#define _POSIX_C_SOURCE 200809L /* clock_gettime in bench_util.h */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "iseg/image.h"
#include "iseg/mask.h"
#include "iseg/model.h"

#include "bench_util.h"
#include "core/core_impl.h" /* iseg__now */

/* IoUs of the fp32 detections (score >= min) against their best match in o */
static size_t match_ious(double *out, const struct iseg_detections *f,
                         const struct iseg_detections *o, float min) {
    size_t n = 0;
    for (size_t i = 0; i < f->n; i++) {
        if (f->d[i].score < min) continue;
        double best = 0.0;
        for (size_t j = 0; j < o->n; j++) {
            if (o->d[j].label != f->d[i].label) continue;
            double v = iseg_rle_iou_pair(&o->d[j].mask, &f->d[i].mask, false);
            if (v > best) best = v;
        }
        out[n++] = best;
    }
    return n;
}

int main(int argc, char **argv) {
    const char *model = NULL;
    int         threads = 2, repeat = 3;
    float       min_score = 0.5f;
    int         first_img = argc;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--model") && i + 1 < argc) model = argv[++i];
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--repeat") && i + 1 < argc) repeat = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--min-score") && i + 1 < argc) min_score = (float)atof(argv[++i]);
        else if (argv[i][0] == '-') {
            fprintf(stderr, "bench_precision: unknown option %s\n", argv[i]);
            return 2;
        } else {
            first_img = i;
            break;
        }
    }
    int n_img = argc - first_img;
    if (!model || n_img < 1 || repeat < 1) {
        fprintf(stderr, "usage: bench_precision --model M [--threads N] [--repeat R] "
                        "[--min-score S] IMAGE...\n");
        return 2;
    }
    struct iseg_image *imgs = calloc((size_t)n_img, sizeof(*imgs));
    struct iseg_detections(*dets)[ISEG_PRECISION_COUNT] = calloc((size_t)n_img, sizeof(*dets));
    double *times = calloc((size_t)n_img * ISEG_PRECISION_COUNT, sizeof(double));
    double *runs  = calloc((size_t)repeat, sizeof(double));
    if (!imgs || !dets || !times || !runs) return 1;
    char err[1024];
    for (int k = 0; k < n_img; k++) {
        struct iseg_image raw = {0};
        if (iseg_image_read(argv[first_img + k], &raw, err, sizeof(err))) {
            fprintf(stderr, "%s\n", err);
            return 1;
        }
        if (raw.depth != 8) {
            if (iseg_image_to_rgb8(&imgs[k], &raw)) return 1;
            iseg_image_free(&raw);
        } else {
            imgs[k] = raw;
        }
    }
    printf("%s, %d image%s, %d thread%s, medians of %d runs after a warm-up\n", model, n_img,
           n_img > 1 ? "s" : "", threads, threads > 1 ? "s" : "", repeat);
    for (int p = 0; p < ISEG_PRECISION_COUNT; p++) {
        struct iseg_model_params mp = iseg_model_default_params();
        mp.precision                = (enum iseg_precision)p;
        iseg_model_t m;
        if (iseg_model_init_from_file(&m, model, mp, err, sizeof(err))) {
            fprintf(stderr, "%s\n", err);
            return 1;
        }
        struct iseg_infer_params ip = iseg_model_infer_params(m);
        ip.n_threads                = threads;
        iseg_infer_t ctx;
        if (iseg_infer_init(&ctx, m, ip)) return 1;
        for (int k = 0; k < n_img; k++) {
            for (int r = 0; r <= repeat; r++) {
                iseg_detections_free(&dets[k][p]);
                double t0 = iseg__now();
                if (iseg_infer_run(ctx, &imgs[k], &dets[k][p])) {
                    fprintf(stderr, "%s: %s\n", argv[first_img + k], iseg_infer_last_error(ctx));
                    return 1;
                }
                if (r) runs[r - 1] = iseg__now() - t0;
            }
            qsort(runs, (size_t)repeat, sizeof(double), bench_cmp_double);
            times[(size_t)k * ISEG_PRECISION_COUNT + p] = runs[repeat / 2];
        }
        iseg_infer_free(ctx);
        iseg_model_free(m);
    }
    size_t cap = 0;
    for (int k = 0; k < n_img; k++) cap += dets[k][0].n;
    double *ious = malloc((cap ? cap : 1) * sizeof(double));
    if (!ious) return 1;
    printf("\n%-10s %12s %9s %10s %10s %12s %12s\n", "precision", "ms/image", "fp32/p",
           "median IoU", "5% IoU", "IoU >= 0.5", "detections");
    for (int p = 0; p < ISEG_PRECISION_COUNT; p++) {
        double t = 0.0, t32 = 0.0;
        size_t n = 0, nd = 0;
        for (int k = 0; k < n_img; k++) {
            t += times[(size_t)k * ISEG_PRECISION_COUNT + p];
            t32 += times[(size_t)k * ISEG_PRECISION_COUNT];
            n += match_ious(ious + n, &dets[k][0], &dets[k][p], min_score);
            for (size_t i = 0; i < dets[k][p].n; i++) nd += dets[k][p].d[i].score >= min_score;
        }
        qsort(ious, n, sizeof(double), bench_cmp_double);
        size_t good = 0;
        for (size_t i = 0; i < n; i++) good += ious[i] >= 0.5;
        printf("%-10s %12.1f %9.2f %10.4f %10.4f %11.1f%% %12zu\n",
               iseg_precision_name((enum iseg_precision)p), 1e3 * t / n_img, t32 / t,
               n ? ious[n / 2] : 0.0, n ? ious[n / 20] : 0.0, n ? 100.0 * good / n : 0.0, nd);
    }
    printf("\n(IoU: each fp32 detection of score >= %.2f against the same-label detection of\n"
           " that precision with the largest mask IoU)\n", min_score);
    for (int k = 0; k < n_img; k++) {
        for (int p = 0; p < ISEG_PRECISION_COUNT; p++) iseg_detections_free(&dets[k][p]);
        iseg_image_free(&imgs[k]);
    }
    free(imgs), free(dets), free(times), free(runs), free(ious);
    return 0;
}
