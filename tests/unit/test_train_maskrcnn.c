/* test_train_maskrcnn.c - the Mask R-CNN training step (iseg/train.h): losses, gradients and
 * batch-norm statistics against torch autograd (tests/golden/train/maskrcnn_step*.safetensors
 * from tools/make_train_maskrcnn_goldens.py: a small compact model in training mode, every
 * candidate sampled), save/load round trips, determinism, and that training reduces the loss. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "golden_st.h"
#include "iseg/model.h"
#include "iseg/optim.h"
#include "iseg/train.h"
#include "test.h"

const unsigned iseg_test_timeout_s = 300;

/* The golden's configuration: every anchor and every proposal is sampled. */
static struct iseg_trainer_params golden_params(void) {
    struct iseg_trainer_params p = iseg_trainer_default_params();
    p.min_size = 64;
    p.max_size = 1000;
    p.rpn_batch = 100000;
    p.box_batch = 100000;
    p.n_threads = 2;
    return p;
}

/* The golden's image and ground truth as a sample (masks from the 0/1 row-major planes). */
static void golden_sample(const struct st_file *f, struct iseg_sample *s) {
    size_t n, nb, nl, nm;
    double *img = st_get(f, "image", &n);
    double *boxes = st_get(f, "gt.boxes", &nb);
    double *labels = st_get(f, "gt.labels", &nl);
    const struct iseg_weight *mw = iseg_weights_find(f->w, "gt.masks");
    ASSERT(mw && mw->dtype == ISEG_DTYPE_U8 && mw->ndim == 3);
    nm = (size_t)mw->shape[0];
    const int H = (int)mw->shape[1], W = (int)mw->shape[2];
    ASSERT(n == (size_t)H * W * 3 && nb == 4 * nm && nl == nm);
    ASSERT_OK(iseg_sample_alloc(s, (uint32_t)W, (uint32_t)H, nm));
    for (size_t i = 0; i < n; i++) ((uint8_t *)s->image.data)[i] = (uint8_t)img[i];
    uint8_t *cm = malloc((size_t)H * W);
    ASSERT(cm);
    for (size_t k = 0; k < nm; k++) {
        const uint8_t *m = (const uint8_t *)mw->data + k * H * W;
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++) cm[(size_t)x * H + y] = m[(size_t)y * W + x];
        ASSERT_OK(iseg_rle_encode(&s->inst[k].mask, cm, (uint32_t)H, (uint32_t)W));
        for (int c = 0; c < 4; c++) s->inst[k].box[c] = (float)boxes[4 * k + c];
        s->inst[k].label = (int64_t)labels[k];
    }
    free(cm);
    free(img);
    free(boxes);
    free(labels);
}

static void load_golden_trainer(iseg_trainer_t *t, const struct iseg_trainer_params *p) {
    char path[4096], err[512];
    snprintf(path, sizeof(path), "%s/tests/golden/train/maskrcnn_step_init.safetensors",
             test_source_dir());
    if (access(path, R_OK)) TEST_SKIP("%s is absent (run tools/make_train_maskrcnn_goldens.py)", path);
    iseg_weights_t w;
    ASSERT_MSG(iseg_weights_load(&w, path, err, sizeof(err)) == ISEG_STATUS_OK, "%s", err);
    size_t missing = 99;
    ASSERT_MSG(iseg_trainer_from_weights(t, w, 0, p, 1, &missing, err, sizeof(err)) ==
                   ISEG_STATUS_OK, "%s", err);
    ASSERT_EQ_U64(missing, 0);
    iseg_weights_free(w);
}

/* max |a - b| <= tol * max |b| (+ a tiny floor for all-zero references) */
static void check_close(const char *what, const float *a, const double *b, size_t n, double tol) {
    double maxd = 0, maxr = 0;
    size_t at = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        if (!(d <= maxd)) {
            maxd = d;
            at = i;
        }
        if (fabs(b[i]) > maxr) maxr = fabs(b[i]);
    }
    ASSERT_MSG(maxd <= tol * maxr + 1e-9, "%s: max |diff| %.3g at %zu (%.9g vs %.9g), max |ref| %.3g",
               what, maxd, at, (double)a[at], b[at], maxr);
}

TEST(torch_step_parity) {
    struct iseg_trainer_params p = golden_params();
    iseg_trainer_t t;
    load_golden_trainer(&t, &p);
    struct st_file f;
    st_open(&f, "maskrcnn_step.safetensors");
    struct iseg_sample s;
    golden_sample(&f, &s);
    struct iseg_train_losses l;
    ASSERT_MSG(iseg_trainer_step(t, &s, 1.0f, &l) == ISEG_STATUS_OK, "%s",
               iseg_trainer_last_error(t));
    /* sampled counts */
    static const char *cn[4] = {"count.rpn_pos", "count.rpn_neg", "count.roi_pos", "count.roi_neg"};
    int got[4] = {l.rpn_pos, l.rpn_neg, l.roi_pos, l.roi_neg};
    for (int i = 0; i < 4; i++) {
        size_t n;
        double *v = st_get(&f, cn[i], &n);
        ASSERT_MSG(got[i] == (int)v[0], "%s: %d, torch %d", cn[i], got[i], (int)v[0]);
        free(v);
    }
    /* losses within 1e-4 relative */
    static const char *ln[5] = {"loss.loss_objectness", "loss.loss_rpn_box_reg",
                                "loss.loss_classifier", "loss.loss_box_reg", "loss.loss_mask"};
    double lv[5] = {l.objectness, l.rpn_box, l.classifier, l.box, l.mask};
    for (int i = 0; i < 5; i++) {
        size_t n;
        double *v = st_get(&f, ln[i], &n);
        ASSERT_MSG(fabs(lv[i] - v[0]) <= 1e-4 * fabs(v[0]), "%s: %.9g, torch %.9g", ln[i], lv[i],
                   v[0]);
        free(v);
    }
    /* every parameter gradient within 1e-4 of its largest element; running statistics */
    size_t n_grad = 0, n_bn = 0;
    for (size_t i = 0; i < iseg_trainer_tensor_count(t); i++) {
        struct iseg_train_tensor x = iseg_trainer_tensor(t, i);
        char name[160];
        size_t n;
        if (x.grad) {
            snprintf(name, sizeof(name), "grad.%s", x.name);
            double *g = st_get(&f, name, &n);
            ASSERT_EQ_U64(n, x.n);
            check_close(name, x.grad, g, n, 1e-4);
            free(g);
            n_grad++;
        } else {
            snprintf(name, sizeof(name), "after.%s", x.name);
            double *g = st_get(&f, name, &n);
            ASSERT_EQ_U64(n, x.n);
            check_close(name, x.data, g, n, 1e-5);
            free(g);
            n_bn++;
        }
    }
    size_t np;
    iseg_trainer_params(t, &np);
    ASSERT_EQ_U64(n_grad, np);
    ASSERT(n_grad >= 100 && n_bn == 40);
    iseg_sample_free(&s);
    st_close(&f);
    iseg_trainer_free(t);
}

/* a tiny architecture for fast tests */
static struct iseg_train_arch tiny_arch(void) {
    struct iseg_train_arch a = iseg_train_arch_compact(3);
    a.width = 8;
    a.fpn = 16;
    a.rep = 32;
    a.mask_ch = 16;
    for (int l = 0; l < 5; l++) a.anchor_sizes[l] = (float)(8 << l);
    return a;
}

static struct iseg_trainer_params tiny_params(void) {
    struct iseg_trainer_params p = iseg_trainer_default_params();
    p.min_size = 64;
    p.max_size = 128;
    p.n_threads = 2;
    return p;
}

/* 64 x 80 image with three filled rectangles (labels 1, 2, 1) on a gradient */
static void rect_sample(struct iseg_sample *s, int shift) {
    const int W = 80, H = 64;
    ASSERT_OK(iseg_sample_alloc(s, W, H, 3));
    uint8_t *px = s->image.data;
    static const int r[3][4] = {{6, 8, 26, 30}, {40, 10, 70, 28}, {20, 36, 44, 60}};
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++)
            for (int c = 0; c < 3; c++) px[(y * W + x) * 3 + c] = (uint8_t)(40 + x / 2 + c * 10);
    uint8_t *cm = calloc((size_t)W * H, 1);
    ASSERT(cm);
    for (int i = 0; i < 3; i++) {
        memset(cm, 0, (size_t)W * H);
        int x1 = r[i][0] + shift, y1 = r[i][1], x2 = r[i][2] + shift, y2 = r[i][3];
        for (int y = y1; y < y2; y++)
            for (int x = x1; x < x2; x++) {
                cm[(size_t)x * H + y] = 1;
                for (int c = 0; c < 3; c++) px[(y * W + x) * 3 + c] = (uint8_t)(200 - 60 * i + c);
            }
        ASSERT_OK(iseg_rle_encode(&s->inst[i].mask, cm, H, W));
        s->inst[i].box[0] = (float)x1;
        s->inst[i].box[1] = (float)y1;
        s->inst[i].box[2] = (float)x2;
        s->inst[i].box[3] = (float)y2;
        s->inst[i].label = i == 1 ? 2 : 1;
    }
    free(cm);
}

static double step_on(iseg_trainer_t t, int shift, float scale) {
    struct iseg_sample s;
    rect_sample(&s, shift);
    struct iseg_train_losses l;
    ASSERT_MSG(iseg_trainer_step(t, &s, scale, &l) == ISEG_STATUS_OK, "%s",
               iseg_trainer_last_error(t));
    ASSERT(isfinite(l.total) && l.total > 0);
    ASSERT_EQ_INT(l.n_gt, 3);
    iseg_sample_free(&s);
    return l.total;
}

TEST(deterministic_and_batch_scaling) {
    struct iseg_train_arch a = tiny_arch();
    struct iseg_trainer_params p = tiny_params();
    iseg_trainer_t t1, t2;
    char err[256];
    ASSERT_OK(iseg_trainer_new(&t1, &a, &p, 5, err, sizeof(err)));
    p.n_threads = 1;
    ASSERT_OK(iseg_trainer_new(&t2, &a, &p, 5, err, sizeof(err)));
    /* the same seed: the same initialisation and sampling, whatever the thread count */
    double l1 = step_on(t1, 0, 1.0f), l2 = step_on(t2, 0, 1.0f);
    ASSERT_EQ_DBL(l1, l2);
    size_t n1, n2;
    const struct iseg_param *p1 = iseg_trainer_params(t1, &n1), *p2 = iseg_trainer_params(t2, &n2);
    ASSERT_EQ_U64(n1, n2);
    for (size_t i = 0; i < n1; i++) {
        ASSERT(memcmp(p1[i].w, p2[i].w, p1[i].n * sizeof(float)) == 0);
        ASSERT(memcmp(p1[i].g, p2[i].g, p1[i].n * sizeof(float)) == 0);
    }
    /* gradients accumulate, scaled: two half-weighted steps of two samples */
    iseg_trainer_zero_grad(t1);
    iseg_trainer_zero_grad(t2);
    step_on(t1, 0, 0.5f);
    step_on(t1, 3, 0.5f);
    step_on(t2, 0, 0.5f);
    step_on(t2, 3, 0.5f);
    for (size_t i = 0; i < n1; i++)
        ASSERT(memcmp(p1[i].g, p2[i].g, p1[i].n * sizeof(float)) == 0);
    iseg_trainer_free(t1);
    iseg_trainer_free(t2);
}

TEST(training_reduces_the_loss) {
    struct iseg_train_arch a = tiny_arch();
    struct iseg_trainer_params p = tiny_params();
    iseg_trainer_t t;
    char err[256];
    ASSERT_OK(iseg_trainer_new(&t, &a, &p, 11, err, sizeof(err)));
    size_t np;
    const struct iseg_param *ps = iseg_trainer_params(t, &np);
    struct iseg_sgd_params sp = iseg_sgd_default_params();
    sp.lr = 0.01;
    sp.momentum = 0.9;
    iseg_optim_t opt;
    ASSERT_OK(iseg_optim_sgd_init(&opt, ps, np, &sp));
    double first = 0, last = 0;
    for (int it = 0; it < 40; it++) {
        iseg_optim_zero_grad(opt);
        double l = step_on(t, it % 2, 1.0f);
        iseg_clip_grad_norm(ps, np, 10.0);
        iseg_optim_step(opt);
        if (it < 5) first += l / 5;
        if (it >= 35) last += l / 5;
    }
    ASSERT_MSG(last < 0.5 * first, "loss %.4f -> %.4f", first, last);
    iseg_optim_free(opt);
    iseg_trainer_free(t);
}

TEST(save_and_reload) {
    struct iseg_train_arch a = tiny_arch();
    struct iseg_trainer_params p = tiny_params();
    iseg_trainer_t t;
    char err[512];
    ASSERT_OK(iseg_trainer_new(&t, &a, &p, 3, err, sizeof(err)));
    step_on(t, 0, 1.0f); /* running statistics move */
    char path[4096], path16[4096];
    snprintf(path, sizeof(path), "%s/m.safetensors", test_tmp_dir());
    snprintf(path16, sizeof(path16), "%s/m16.safetensors", test_tmp_dir());
    const char *md[] = {"iseg.class_names", "__background__,a,b", "iseg.category_ids", "0,7,9",
                        NULL};
    ASSERT_OK(iseg_trainer_save(t, path, md, false, NULL, 0, err, sizeof(err)));
    ASSERT_OK(iseg_trainer_save(t, path16, md, true, NULL, 0, err, sizeof(err)));
    /* the trainer reads back every tensor exactly */
    iseg_weights_t w;
    ASSERT_OK(iseg_weights_load(&w, path, err, sizeof(err)));
    iseg_trainer_t t2;
    size_t missing = 1;
    ASSERT_MSG(iseg_trainer_from_weights(&t2, w, 0, &p, 3, &missing, err, sizeof(err)) == 0,
               "%s", err);
    ASSERT_EQ_U64(missing, 0);
    ASSERT_EQ_U64(iseg_trainer_tensor_count(t2), iseg_trainer_tensor_count(t));
    for (size_t i = 0; i < iseg_trainer_tensor_count(t); i++) {
        struct iseg_train_tensor x = iseg_trainer_tensor(t, i), y = iseg_trainer_tensor(t2, i);
        ASSERT_STREQ(x.name, y.name);
        ASSERT(memcmp(x.data, y.data, x.n * sizeof(float)) == 0);
    }
    struct iseg_train_arch a2 = iseg_trainer_arch(t2);
    ASSERT(a2.width == 8 && a2.fpn == 16 && a2.rep == 32 && a2.mask_ch == 16);
    ASSERT_EQ_DBL(a2.anchor_sizes[4], 128);
    /* fine-tuning on another label set: class-specific layers re-initialised */
    iseg_trainer_t t3;
    ASSERT_OK(iseg_trainer_from_weights(&t3, w, 5, &p, 3, &missing, err, sizeof(err)));
    struct iseg_train_tensor cs;
    ASSERT(iseg_trainer_find(t3, "roi_heads.box_predictor.cls_score.weight", &cs));
    ASSERT_EQ_INT(cs.shape[0], 5);
    iseg_trainer_free(t3);
    iseg_weights_free(w);
    /* the inference model reads both files, with the metadata; the batch norms normalise each
     * image by its own statistics, as the training forward pass did */
    const char *paths[2] = {path, path16};
    for (int k = 0; k < 2; k++) {
        iseg_model_t m;
        ASSERT_MSG(iseg_model_init_from_file(&m, paths[k], iseg_model_default_params(), err,
                                             sizeof(err)) == 0, "%s", err);
        ASSERT_EQ_INT(iseg_model_num_classes(m), 3);
        ASSERT_STREQ(iseg_model_class_name(m, 2), "b");
        ASSERT_EQ_INT(iseg_model_category_id(m, 1), 7);
        ASSERT_EQ_INT(iseg_model_infer_params(m).min_size, 64);
        ASSERT(iseg_model_bn_stats(m) == ISEG_BN_STATS_IMAGE);
        iseg_model_free(m);
    }
    /* with frozen batch norm the running statistics are what the forward pass used */
    struct iseg_trainer_params pf = p;
    pf.frozen_bn = true;
    iseg_trainer_t tf;
    ASSERT_OK(iseg_trainer_new(&tf, &a, &pf, 3, err, sizeof(err)));
    ASSERT_OK(iseg_trainer_save(tf, path, md, false, NULL, 0, err, sizeof(err)));
    iseg_model_t mf;
    ASSERT_OK(iseg_model_init_from_file(&mf, path, iseg_model_default_params(), err, sizeof(err)));
    ASSERT(iseg_model_bn_stats(mf) == ISEG_BN_STATS_RUNNING);
    iseg_model_free(mf);
    iseg_trainer_free(tf);
    iseg_trainer_free(t2);
    iseg_trainer_free(t);
}

TEST(bad_input) {
    struct iseg_train_arch a = tiny_arch();
    struct iseg_trainer_params p = tiny_params();
    iseg_trainer_t t;
    char err[512];
    a.num_classes = 1;
    ASSERT_STATUS(iseg_trainer_new(&t, &a, &p, 3, err, sizeof(err)), ISEG_STATUS_EINVAL);
    a = tiny_arch();
    p.min_size = 0;
    ASSERT_STATUS(iseg_trainer_new(&t, &a, &p, 3, err, sizeof(err)), ISEG_STATUS_EINVAL);
    p = tiny_params();
    ASSERT_OK(iseg_trainer_new(&t, &a, &p, 3, err, sizeof(err)));
    struct iseg_sample s;
    struct iseg_train_losses l;
    rect_sample(&s, 0);
    s.inst[1].label = 3; /* K = 3: labels 1..2 */
    ASSERT_STATUS(iseg_trainer_step(t, &s, 1.0f, &l), ISEG_STATUS_EINVAL);
    ASSERT_STRCONTAINS(iseg_trainer_last_error(t), "label 3");
    iseg_sample_free(&s);
    /* no instances: background only, finite */
    ASSERT_OK(iseg_sample_alloc(&s, 70, 50, 0));
    ASSERT_OK(iseg_trainer_step(t, &s, 1.0f, &l));
    ASSERT(isfinite(l.total) && l.rpn_pos == 0 && l.roi_pos == 0 && l.mask == 0);
    iseg_sample_free(&s);
    /* a state dict that is not a Mask R-CNN */
    char path[4096];
    snprintf(path, sizeof(path), "%s/bad.safetensors", test_tmp_dir());
    float v = 1;
    struct iseg_weight one = {"x.weight", ISEG_DTYPE_F32, 1, {1}, &v, 4};
    ASSERT_OK(iseg_weights_save_safetensors(path, &one, 1, NULL, err, sizeof(err)));
    iseg_weights_t w;
    ASSERT_OK(iseg_weights_load(&w, path, err, sizeof(err)));
    iseg_trainer_t t2;
    ASSERT_STATUS(iseg_trainer_from_weights(&t2, w, 0, &p, 1, NULL, err, sizeof(err)),
                  ISEG_STATUS_EFORMAT);
    ASSERT_STRCONTAINS(err, "not a Mask R-CNN");
    iseg_weights_free(w);
    iseg_trainer_free(t);
}

TEST_LIST = {
    TEST_ENTRY(torch_step_parity),
    TEST_ENTRY(deterministic_and_batch_scaling),
    TEST_ENTRY(training_reduces_the_loss),
    TEST_ENTRY(save_and_reload),
    TEST_ENTRY(bad_input),
    TEST_END,
};
