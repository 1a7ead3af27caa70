/* bench_train.c - time of one Mask R-CNN training step (forward + backward of one image) by
 * part, on a synthetic nuclei image (iseg/synth.h) or any image of a COCO dataset. Pair it with
 * bench/bench_train.py (the same model, image and size in torch) for the ratio.
 *
 *   bench_train [--size 512] [--threads 2] [--steps 5] [--width 32 --fpn 128 --rep 256 --mask 128]
 *               [--image-size 256] [--crop 0] [--seed 1] [--save-sample DIR]
 * Prints the median of --steps steps after one warm-up step (arena sizing). --save-sample writes
 * the synthetic sample as DIR/sample.png + DIR/sample.json (COCO) for the torch side. */
#define _POSIX_C_SOURCE 200809L /* clock_gettime */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "iseg/synth.h"
#include "iseg/train.h"

#include "bench_util.h"

int main(int argc, char **argv) {
    int size = 512, threads = 2, steps = 5, img = 256, seed = 1, crop = 0;
    struct iseg_train_arch ar = iseg_train_arch_compact(2);
    const char *save = NULL;
    for (int i = 1; i + 1 < argc; i += 2) {
        const char *k = argv[i];
        int v = atoi(argv[i + 1]);
        if (!strcmp(k, "--size")) size = v;
        else if (!strcmp(k, "--threads")) threads = v;
        else if (!strcmp(k, "--steps")) steps = v;
        else if (!strcmp(k, "--width")) ar.width = v;
        else if (!strcmp(k, "--fpn")) ar.fpn = v;
        else if (!strcmp(k, "--rep")) ar.rep = v;
        else if (!strcmp(k, "--mask")) ar.mask_ch = v;
        else if (!strcmp(k, "--image-size")) img = v;
        else if (!strcmp(k, "--seed")) seed = v;
        else if (!strcmp(k, "--crop")) crop = v;
        else if (!strcmp(k, "--save-sample")) save = argv[i + 1];
        else {
            fprintf(stderr, "bench_train: unknown option %s\n", k);
            return 2;
        }
    }
    if (steps < 1 || steps > 1000) return 2;
    char err[512];
    struct iseg_synth_params sp = iseg_synth_default_params();
    sp.width = sp.height = (uint32_t)img;
    sp.n_min = sp.n_max = 40;
    if (save) {
        size_t n_nuclei = 0;
        if (iseg_synth_dataset_write(save, 1, &sp, (uint64_t)seed, &n_nuclei, err, sizeof(err))) {
            fprintf(stderr, "bench_train: %s\n", err);
            return 1;
        }
    }
    struct iseg_trainer_params tp = iseg_trainer_default_params();
    tp.min_size = size;
    tp.max_size = 2 * size;
    tp.n_threads = threads;
    tp.crop_size = crop;
    iseg_trainer_t t;
    if (iseg_trainer_new(&t, &ar, &tp, 1, err, sizeof(err))) {
        fprintf(stderr, "bench_train: %s\n", err);
        return 1;
    }
    double *ms = calloc((size_t)steps * 9, sizeof(double));
    if (!ms) return 1;
    struct iseg_train_losses l = {0};
    for (int s = -1; s < steps; s++) {
        /* the same sample each step (the dataset writer's first image: seed + 0) */
        struct iseg_rng rng;
        iseg_rng_seed(&rng, (uint64_t)seed);
        struct iseg_sample smp;
        if (iseg_synth_nuclei(&smp, &sp, &rng)) return 1;
        iseg_trainer_zero_grad(t);
        if (iseg_trainer_step(t, &smp, 1.0f, &l)) {
            fprintf(stderr, "bench_train: %s\n", iseg_trainer_last_error(t));
            return 1;
        }
        iseg_sample_free(&smp);
        if (s < 0) continue;
        double v[9] = {l.ms_fwd_backbone, l.ms_fwd_rpn, l.ms_fwd_box, l.ms_fwd_mask,
                       l.ms_bwd_mask, l.ms_bwd_box, l.ms_bwd_rpn, l.ms_bwd_backbone, 0};
        for (int k = 0; k < 8; k++) v[8] += v[k];
        for (int k = 0; k < 9; k++) ms[(size_t)k * steps + s] = v[k];
    }
    static const char *names[9] = {"fwd backbone+FPN", "fwd RPN", "fwd box head",
                                   "fwd mask head", "bwd mask head", "bwd box head",
                                   "bwd RPN", "bwd FPN+backbone", "step"};
    printf("iseg training step, %dx%d image -> %dx%d, %d nuclei, %d threads, width %d FPN %d "
           "rep %d mask %d; RoIs %d pos %d neg, anchors %d pos %d neg\n",
           img, img, l.width, l.height, l.n_gt, threads, ar.width, ar.fpn, ar.rep, ar.mask_ch,
           l.roi_pos, l.roi_neg, l.rpn_pos, l.rpn_neg);
    for (int k = 0; k < 9; k++) {
        qsort(ms + (size_t)k * steps, (size_t)steps, sizeof(double), bench_cmp_double);
        printf("  %-18s %9.1f ms\n", names[k], ms[(size_t)k * steps + steps / 2]);
    }
    free(ms);
    iseg_trainer_free(t);
    return 0;
}
