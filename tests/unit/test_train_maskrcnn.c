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

TEST_LIST = {
    TEST_ENTRY(torch_step_parity),
    TEST_END,
};
