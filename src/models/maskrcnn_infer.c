/* maskrcnn_infer.c - Mask R-CNN inference: transform, backbone, FPN, RPN, RoI heads, pasting.
 * ref: torchvision/models/detection/{transform,rpn,roi_heads,generalized_rcnn}.py (0.14). */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "models/maskrcnn_impl.h"
#include "nn/nn_impl.h" /* iseg__engine_run: the per-detection stages on the engine's pool */

struct iseg_infer {
    iseg_model_t             m;
    struct iseg_infer_params p;
    iseg_engine_t            e;
    iseg_arena_t             a;
    iseg_tensor_cb           cb;
    void                    *cb_user;
    struct iseg_infer_timings tm;
    char                     err[256];
};

struct iseg_infer_params iseg_infer_default_params(void) {
    struct iseg_infer_params p;
    memset(&p, 0, sizeof(p));
    p.min_size = 800;
    p.max_size = 1333;
    p.score_thresh = 0.05f;
    p.nms_thresh = 0.5f;
    p.detections_per_img = 100;
    p.rpn_pre_nms_top_n = 1000;
    p.rpn_post_nms_top_n = 1000;
    p.rpn_nms_thresh = 0.7f;
    p.mask_thresh = 0.5f;
    p.n_threads = 0;
    return p;
}

enum iseg_status iseg_infer_init(iseg_infer_t *ctx, const iseg_model_t m,
                                 struct iseg_infer_params p) {
    ISEG_ASSERT(ctx && m);
    *ctx = NULL;
    if (p.min_size < 1 || p.max_size < 1 || p.detections_per_img < 0 ||
        p.rpn_pre_nms_top_n < 1 || p.rpn_post_nms_top_n < 1 || !(p.score_thresh >= 0.0f) ||
        !(p.nms_thresh >= 0.0f) || !(p.rpn_nms_thresh >= 0.0f) || !(p.mask_thresh >= 0.0f) ||
        p.min_size > 16384 || p.max_size > 16384)
        return ISEG_STATUS_EINVAL;
    struct iseg_infer *c = iseg__calloc(1, sizeof(*c));
    if (!c) return ISEG_STATUS_ENOMEM;
    c->m = m;
    c->p = p;
    enum iseg_status st = iseg_engine_init(&c->e, p.n_threads);
    if (!st) st = iseg_arena_init(&c->a);
    if (st) {
        iseg_infer_free(c);
        return st;
    }
    *ctx = c;
    return ISEG_STATUS_OK;
}

void iseg_infer_free(iseg_infer_t c) {
    if (!c) return;
    iseg_engine_free(c->e);
    iseg_arena_free(c->a);
    iseg__free(c);
}

void iseg_infer_set_tensor_cb(iseg_infer_t c, iseg_tensor_cb cb, void *user) {
    c->cb = cb;
    c->cb_user = user;
}

const char *iseg_infer_last_error(const iseg_infer_t c) { return c->err; }

struct iseg_infer_timings iseg_infer_get_timings(const iseg_infer_t c) { return c->tm; }

/* milliseconds since *t0, and restart the clock */
static double lap(double *t0) {
    double t = iseg__now(), d = (t - *t0) * 1e3;
    *t0 = t;
    return d;
}

void iseg_detections_free(struct iseg_detections *d) {
    if (!d) return;
    for (size_t i = 0; i < d->n; i++) iseg_rle_free(&d->d[i].mask);
    iseg__free(d->d);
    memset(d, 0, sizeof(*d));
}

/* ---- helpers ------------------------------------------------------------------------------ */

static void emit(struct iseg_infer *c, const char *name, const float *data, int ndim,
                 int64_t d0, int64_t d1, int64_t d2, int64_t d3) {
    if (!c->cb) return;
    int64_t shape[4] = {d0, d1, d2, d3};
    c->cb(name, data, ndim, shape, c->cb_user);
}

/* A feature map (C, H, W), batch 1. */
struct fmap {
    float *d;
    int    C, H, W;
};

static float *alloc_f(struct iseg_infer *c, size_t n) {
    return iseg_arena_alloc_f32(c->a, n ? n : 1);
}

static bool conv(struct iseg_infer *c, struct fmap *y, const struct fmap *x, iseg_conv2d_t k,
                 const float *residual, enum iseg_act act) {
    const struct iseg_conv2d_desc *d = iseg_conv2d_get_desc(k);
    int oh, ow;
    iseg_conv2d_out_hw(d, x->H, x->W, &oh, &ow);
    y->C = d->cout;
    y->H = oh;
    y->W = ow;
    y->d = alloc_f(c, (size_t)y->C * oh * ow);
    if (!y->d) return false;
    iseg_conv2d_forward(c->e, k, y->d, x->d, 1, x->H, x->W, residual, act);
    return true;
}

/* Per-image batch norm of one channel, with iseg_batchnorm_train()'s arithmetic (the trainer's
 * forward pass: iseg__bn_moments, then its scale and shift), then the residual and the ReLU. */
struct ibn_task {
    float                  *y;
    const float            *z, *res;
    const struct mrcnn_ibn *bn;
    size_t                  HW;
    bool                    relu;
};

static void ibn_channel(void *ctx, size_t c, int ith) {
    (void)ith;
    const struct ibn_task *t = ctx;
    const size_t HW = t->HW;
    const float *z = t->z + c * HW, *res = t->res ? t->res + c * HW : NULL;
    float *y = t->y + c * HW;
    struct iseg__bn_moments mo = iseg__bn_moments(z, 1, HW, HW, 1e-5f);
    float scale = (float)mo.invstd * t->bn->gamma[c];
    float shift = t->bn->beta[c] - (float)mo.mean * scale;
    for (size_t i = 0; i < HW; i++) { /* y may be z or res: element i is read before written */
        float o = z[i] * scale + shift;
        if (res) o += res[i];
        if (t->relu) o = o > 0.0f ? o : 0.0f;
        y[i] = o;
    }
}

/* y = act(gamma (z - mean) / sqrt(var + 1e-5) + beta (+ res)) with the mean and biased variance
 * of each of z's C channels over its HW positions (batch norm in training mode, one image), one
 * channel per work item on the engine's pool; y may be z or res. */
static void image_bn(struct iseg_infer *c, float *y, const float *z, const struct mrcnn_ibn *bn,
                     int C, size_t HW, const float *res, enum iseg_act act) {
    struct ibn_task t = {y, z, res, bn, HW, act == ISEG_ACT_RELU};
    iseg__engine_run(c->e, (size_t)C, ibn_channel, &t);
}

/* A backbone convolution and its batch norm: folded (bn->gamma NULL: conv() with the fused
 * epilogue) or with the image's own statistics (image_bn()). */
static bool conv_bn(struct iseg_infer *c, struct fmap *y, const struct fmap *x, iseg_conv2d_t k,
                    const struct mrcnn_ibn *bn, enum iseg_act act) {
    if (!bn->gamma) return conv(c, y, x, k, NULL, act);
    if (!conv(c, y, x, k, NULL, ISEG_ACT_NONE)) return false;
    image_bn(c, y->d, y->d, bn, y->C, (size_t)y->H * y->W, NULL, act);
    return true;
}

/* as conv(), into y's preallocated buffer (its size is checked) */
static void conv_into(struct iseg_infer *c, const struct fmap *y, const struct fmap *x,
                      iseg_conv2d_t k) {
    const struct iseg_conv2d_desc *d = iseg_conv2d_get_desc(k);
    int oh, ow;
    iseg_conv2d_out_hw(d, x->H, x->W, &oh, &ow);
    ISEG_ASSERT(y->C == d->cout && y->H == oh && y->W == ow);
    iseg_conv2d_forward(c->e, k, y->d, x->d, 1, x->H, x->W, NULL, ISEG_ACT_NONE);
}

/* ---- backbone and FPN --------------------------------------------------------------------- */

/* Sizes of C2..C5 for a padded input of (h, w): the stem, then each stage's first block. */
static void stage_dims(const iseg_model_t m, int h, int w, int dims[4][2]) {
    iseg_conv2d_out_hw(iseg_conv2d_get_desc(m->conv1), h, w, &h, &w);
    iseg_maxpool2d_out_hw(3, 2, 1, h, w, &h, &w);
    int bi = 0;
    for (int L = 0; L < 4; L++) {
        iseg_conv2d_out_hw(iseg_conv2d_get_desc(m->blocks[bi].conv1), h, w, &h, &w);
        iseg_conv2d_out_hw(iseg_conv2d_get_desc(m->blocks[bi].conv2), h, w, &h, &w);
        dims[L][0] = h;
        dims[L][1] = w;
        bi += m->cfg.n_blocks[L];
    }
}

/* Each layer's output C2..C5 is allocated before the layer's mark; everything else the layer
 * needs (the stem, block outputs, bottleneck temporaries) is released when it ends, so the
 * activation peak is the largest layer's working set plus the kept outputs. */
static bool backbone(struct iseg_infer *c, const struct fmap *img, struct fmap feats[4]) {
    const iseg_model_t m = c->m;
    const int *n_blocks = m->cfg.n_blocks;
    /* C2: stride 4 after the stem (conv 7x7/2 + max pool 3x3/2) */
    int h = img->H, w = img->W;
    iseg_conv2d_out_hw(iseg_conv2d_get_desc(m->conv1), h, w, &h, &w);
    iseg_maxpool2d_out_hw(3, 2, 1, h, w, &h, &w);
    struct fmap x = {NULL, 0, 0, 0};
    int bi = 0;
    for (int L = 0; L < 4; L++) {
        /* the layer's output size: through the first block's convs (one of them strided) */
        const struct mrcnn_bottleneck *first = &m->blocks[bi];
        iseg_conv2d_out_hw(iseg_conv2d_get_desc(first->conv1), h, w, &h, &w);
        iseg_conv2d_out_hw(iseg_conv2d_get_desc(first->conv2), h, w, &h, &w);
        struct fmap *out = &feats[L];
        out->C = m->cfg.out[L];
        out->H = h;
        out->W = w;
        out->d = alloc_f(c, (size_t)out->C * h * w);
        if (!out->d) return false;
        struct iseg_arena_mark mark = iseg_arena_mark(c->a);
        if (L == 0) {
            /* the pooled stem outlives the stem's full-resolution output */
            struct fmap s1, pooled;
            int sh, sw;
            iseg_conv2d_out_hw(iseg_conv2d_get_desc(m->conv1), img->H, img->W, &sh, &sw);
            iseg_maxpool2d_out_hw(3, 2, 1, sh, sw, &pooled.H, &pooled.W);
            pooled.C = m->cfg.stem;
            pooled.d = alloc_f(c, (size_t)pooled.C * pooled.H * pooled.W);
            if (!pooled.d) return false;
            struct iseg_arena_mark ms = iseg_arena_mark(c->a);
            if (!conv_bn(c, &s1, img, m->conv1, &m->bn1, ISEG_ACT_RELU)) return false;
            emit(c, "backbone.stem", s1.d, 4, 1, s1.C, s1.H, s1.W);
            iseg_maxpool2d(c->e, pooled.d, s1.d, 1, s1.C, s1.H, s1.W, 3, 2, 1);
            iseg_arena_release(c->a, ms);
            x = pooled;
        }
        /* blocks before the last write into one buffer of the stage's output size: the first
         * from the stage input, the others in place (the output may alias the residual, which
         * is then the block's own input, read by conv1 before the last conv writes) */
        float *inter = NULL;
        if (n_blocks[L] > 1) {
            inter = alloc_f(c, (size_t)out->C * h * w);
            if (!inter) return false;
        }
        for (int k = 0; k < n_blocks[L]; k++, bi++) {
            const struct mrcnn_bottleneck *blk = &m->blocks[bi];
            bool final = k == n_blocks[L] - 1;
            /* bottleneck: relu(conv3(relu(conv2(relu(conv1 x)))) + idn);
             * basic block: relu(conv2(relu(conv1 x)) + idn) */
            iseg_conv2d_t last = blk->conv3 ? blk->conv3 : blk->conv2;
            struct iseg_arena_mark mb = iseg_arena_mark(c->a);
            struct fmap t1, t2, idn = x, y;
            if (blk->down && !conv_bn(c, &idn, &x, blk->down, &blk->bnd, ISEG_ACT_NONE))
                return false;
            if (!conv_bn(c, &t1, &x, blk->conv1, &blk->bn1, ISEG_ACT_RELU)) return false;
            t2 = t1;
            if (blk->conv3 && !conv_bn(c, &t2, &t1, blk->conv2, &blk->bn2, ISEG_ACT_RELU))
                return false;
            ISEG_ASSERT(t2.H == out->H && t2.W == out->W);
            y = *out;
            if (!final) y.d = inter;
            ISEG_ASSERT(y.d != x.d || idn.d == x.d); /* in place only over the residual */
            const struct mrcnn_ibn *lbn = blk->conv3 ? &blk->bn3 : &blk->bn2;
            if (!lbn->gamma) {
                iseg_conv2d_forward(c->e, last, y.d, t2.d, 1, t2.H, t2.W, idn.d, ISEG_ACT_RELU);
            } else { /* through a buffer of its own: y may be the residual */
                struct fmap z;
                if (!conv(c, &z, &t2, last, NULL, ISEG_ACT_NONE)) return false;
                image_bn(c, y.d, z.d, lbn, z.C, (size_t)z.H * z.W, idn.d, ISEG_ACT_RELU);
            }
            iseg_arena_release(c->a, mb);
            x = y;
        }
        iseg_arena_release(c->a, mark);
        x = *out;
        char name[32];
        snprintf(name, sizeof(name), "backbone.layer%d", L + 1);
        emit(c, name, out->d, 4, 1, out->C, out->H, out->W);
    }
    return true;
}

/* ref: torchvision/ops/feature_pyramid_network.py FeaturePyramidNetwork.forward.
 * P2..P6 are preallocated by the caller (below the backbone's data, which is then released). */
static bool fpn(struct iseg_infer *c, const struct fmap C[4], struct fmap P[MRCNN_N_LEVELS]) {
    const iseg_model_t m = c->m;
    struct fmap inner;
    if (!conv(c, &inner, &C[3], m->fpn_inner[3], NULL, ISEG_ACT_NONE)) return false;
    conv_into(c, &P[3], &inner, m->fpn_layer[3]);
    for (int i = 2; i >= 0; i--) {
        struct fmap lat;
        if (!conv(c, &lat, &C[i], m->fpn_inner[i], NULL, ISEG_ACT_NONE)) return false;
        /* last_inner = lateral + nearest(last_inner, size of lateral) */
        iseg_resize_nearest_add(lat.d, inner.d, 1, inner.C, inner.H, inner.W, lat.H, lat.W);
        inner = lat;
        conv_into(c, &P[i], &inner, m->fpn_layer[i]);
    }
    /* LastLevelMaxPool: max_pool2d(P5, kernel 1, stride 2) = every other pixel */
    struct fmap *p6 = &P[4];
    ISEG_ASSERT(p6->H == (P[3].H - 1) / 2 + 1 && p6->W == (P[3].W - 1) / 2 + 1);
    for (int ch = 0; ch < p6->C; ch++)
        for (int y = 0; y < p6->H; y++)
            for (int x = 0; x < p6->W; x++)
                p6->d[((size_t)ch * p6->H + y) * p6->W + x] =
                    P[3].d[((size_t)ch * P[3].H + 2 * y) * P[3].W + 2 * x];
    for (int i = 0; i < MRCNN_N_LEVELS; i++) {
        char name[16];
        snprintf(name, sizeof(name), "fpn.p%d", i + 2);
        emit(c, name, P[i].d, 4, 1, P[i].C, P[i].H, P[i].W);
    }
    return true;
}

/* ---- RPN ---------------------------------------------------------------------------------- */

/* ref: rpn.py RegionProposalNetwork.forward + filter_proposals (test mode).
 * Writes up to post_nms_top_n proposals (N, 4) in resized-image coordinates. */
static bool rpn(struct iseg_infer *c, const struct fmap P[MRCNN_N_LEVELS], int img_h, int img_w,
                int pad_h, int pad_w, float **out_boxes, int *out_n) {
    const iseg_model_t m = c->m;
    int level_hw[MRCNN_N_LEVELS];
    for (int l = 0; l < MRCNN_N_LEVELS; l++) level_hw[l] = P[l].H * P[l].W;
    struct mrcnn_props pr;
    if (!mrcnn_props_init(&pr, c->a, level_hw, c->p.rpn_pre_nms_top_n)) return false;
    double t0 = iseg__now();
    for (int l = 0; l < MRCNN_N_LEVELS; l++) {
        struct iseg_arena_mark mark = iseg_arena_mark(c->a);
        struct fmap h = P[l], t;
        for (int i = 0; i < m->n_rpn_conv; i++) {
            if (!conv(c, &t, &h, m->rpn_conv[i], NULL, ISEG_ACT_RELU)) return false;
            h = t;
        }
        struct fmap o;
        if (!conv(c, &o, &h, m->rpn_out, NULL, ISEG_ACT_NONE)) return false;
        c->tm.rpn_head += lap(&t0);
        char name[32];
        snprintf(name, sizeof(name), "rpn.head.p%d", l + 2);
        emit(c, name, o.d, 4, 1, o.C, o.H, o.W);
        /* channels 0..2 objectness, 3..14 deltas */
        if (!mrcnn_props_add_level(&pr, l, o.d, o.d + (size_t)MRCNN_N_ANCHORS * o.H * o.W, o.H,
                                   o.W, m->cfg.anchor_sizes[l], pad_h / o.H, pad_w / o.W))
            return false;
        iseg_arena_release(c->a, mark);
        c->tm.rpn_proposals += lap(&t0);
    }
    float *props;
    int nk;
    if (!mrcnn_props_finish(&pr, img_h, img_w, c->p.rpn_nms_thresh, c->p.rpn_post_nms_top_n,
                            &props, &nk))
        return false;
    emit(c, "rpn.proposals", props, 2, nk, 4, 1, 1);
    c->tm.rpn_proposals += lap(&t0);
    *out_boxes = props;
    *out_n = nk;
    return true;
}

/* ---- RoI pooling ---------------------------------------------------------------------------- */

/* ref: torchvision/ops/poolers.py MultiScaleRoIAlign over P2..P5: out (N, F, S, S). */
static bool roi_pool(struct iseg_infer *c, float *out, const struct fmap P[MRCNN_N_LEVELS],
                     const float *boxes, int N, int S, int img_h, int img_w) {
    (void)img_w;
    if (N == 0) return true;
    int *levels = iseg_arena_alloc(c->a, sizeof(int) * (size_t)N);
    if (!levels) return false;
    const float *feats[4];
    int H[4], W[4], n_lv;
    float scales[4];
    for (int l = 0; l < 4; l++) feats[l] = P[l].d, H[l] = P[l].H, W[l] = P[l].W;
    mrcnn_roi_pool(c->e, out, levels, scales, &n_lv, feats, H, W, P[0].C, boxes, N, S, img_h);
    return true;
}

/* ---- RoI heads -------------------------------------------------------------------------------- */

struct det {
    float box[4]; /* resized-image coordinates */
    float score;
    int   label;
};

/* ref: roi_heads.py RoIHeads.postprocess_detections */
static bool box_head(struct iseg_infer *c, const struct fmap P[MRCNN_N_LEVELS], const float *props,
                     int N, int img_h, int img_w, struct det **out, int *out_n) {
    const iseg_model_t m = c->m;
    int K = m->num_classes;
    *out_n = 0;
    if (N == 0) return true;
    double t0 = iseg__now();
    const int F = m->cfg.fpn;
    float *feat = alloc_f(c, (size_t)N * F * 49);
    if (!feat || !roi_pool(c, feat, P, props, N, 7, img_h, img_w)) return false;
    c->tm.box_roi_align += lap(&t0);
    emit(c, "roi.box_features", feat, 4, N, F, 7, 7);
    float *x = feat;
    for (int i = 0; i < m->n_box_conv; i++) {
        float *y = alloc_f(c, (size_t)N * F * 49);
        if (!y) return false;
        iseg_conv2d_forward(c->e, m->box_conv[i], y, x, N, 7, 7, NULL, ISEG_ACT_RELU);
        x = y;
    }
    int in = F * 49;
    for (int i = 0; i < m->n_box_fc; i++) {
        float *y = alloc_f(c, (size_t)N * m->hidden);
        if (!y) return false;
        iseg_linear_forward(c->e, m->box_fc[i], y, x, N, ISEG_ACT_RELU);
        x = y;
        in = m->hidden;
    }
    (void)in;
    float *pred = alloc_f(c, (size_t)N * 5 * K);
    if (!pred) return false;
    iseg_linear_forward(c->e, m->box_pred, pred, x, N, ISEG_ACT_NONE);
    emit(c, "roi.box_predictions", pred, 2, N, 5 * K, 1, 1);
    /* softmax over the K class logits of each row; deltas follow them */
    float *prob = alloc_f(c, (size_t)N * K);
    float *deltas = alloc_f(c, (size_t)N * K * 4);
    float *ref = alloc_f(c, (size_t)N * K * 4);
    float *dec = alloc_f(c, (size_t)N * K * 4);
    if (!prob || !deltas || !ref || !dec) return false;
    for (int i = 0; i < N; i++) {
        memcpy(prob + (size_t)i * K, pred + (size_t)i * 5 * K, (size_t)K * sizeof(float));
        memcpy(deltas + (size_t)i * K * 4, pred + (size_t)i * 5 * K + K,
               (size_t)K * 4 * sizeof(float));
        for (int k = 0; k < K; k++) memcpy(ref + ((size_t)i * K + k) * 4, props + 4 * i, 16);
    }
    iseg_softmax(prob, prob, (size_t)N, K);
    const float wts[4] = {10, 10, 5, 5};
    iseg_box_decode(dec, deltas, ref, N * K, wts, (float)log(1000.0 / 16));
    iseg_box_clip(dec, N * K, (float)img_h, (float)img_w);
    /* candidates: (proposal, class >= 1) with score > thresh and both sides >= 1e-2 */
    int cap = N * (K - 1);
    float *cb = alloc_f(c, (size_t)4 * cap);
    float *cs = alloc_f(c, (size_t)cap);
    int *cl = iseg_arena_alloc(c->a, sizeof(int) * (size_t)cap);
    if (!cb || !cs || !cl) return false;
    int n = 0;
    for (int i = 0; i < N; i++)
        for (int k = 1; k < K; k++) {
            float s = prob[(size_t)i * K + k];
            if (!(s > c->p.score_thresh)) continue;
            const float *b = dec + ((size_t)i * K + k) * 4;
            if (!(b[2] - b[0] >= 1e-2f && b[3] - b[1] >= 1e-2f)) continue;
            memcpy(cb + 4 * n, b, 16);
            cs[n] = s;
            cl[n] = k;
            n++;
        }
    int *keep = iseg_arena_alloc(c->a, sizeof(int) * (size_t)(n ? n : 1));
    if (!keep) return false;
    int nk = mrcnn_batched_nms(c->a, keep, cb, cs, cl, n, c->p.nms_thresh);
    if (nk < 0) return false;
    if (nk > c->p.detections_per_img) nk = c->p.detections_per_img;
    struct det *d = iseg_arena_alloc(c->a, sizeof(*d) * (size_t)(nk ? nk : 1));
    if (!d) return false;
    for (int i = 0; i < nk; i++) {
        memcpy(d[i].box, cb + 4 * keep[i], 16);
        d[i].score = cs[keep[i]];
        d[i].label = cl[keep[i]];
    }
    *out = d;
    *out_n = nk;
    c->tm.box_head += lap(&t0);
    return true;
}

/* The 1x1 mask logits of detection i's label: channels summed in order, then the bias. */
struct logits_ctx {
    iseg_model_t      m;
    const struct det *d;
    const float      *up; /* (D, MC, 28 28) */
    float            *probs;
};

static void logits_task(void *vctx, size_t i, int ith) {
    const struct logits_ctx *x = vctx;
    (void)ith;
    const int MC = x->m->cfg.mask_ch;
    const float *w = x->m->mask_logit_w + (size_t)x->d[i].label * MC;
    float *o = x->probs + i * 784;
    const float *f = x->up + i * MC * 784;
    for (int p = 0; p < 784; p++) o[p] = 0.0f;
    for (int ch = 0; ch < MC; ch++) {
        float wc = w[ch];
        const float *fc = f + (size_t)ch * 784;
        for (int p = 0; p < 784; p++) o[p] += wc * fc[p];
    }
    float b = x->m->mask_logit_b[x->d[i].label];
    for (int p = 0; p < 784; p++) o[p] += b;
}

/* ref: roi_heads.py mask branch + maskrcnn_inference: probs (D, 28, 28) of each label. */
static bool mask_head(struct iseg_infer *c, const struct fmap P[MRCNN_N_LEVELS],
                      const struct det *d, int D, int img_h, int img_w, float **out) {
    const iseg_model_t m = c->m;
    const int F = m->cfg.fpn, MC = m->cfg.mask_ch;
    /* the output first; the head's activations above it are released at the end, and its
     * convolutions alternate between two buffers */
    float *probs = alloc_f(c, (size_t)D * 784);
    if (!probs) return false;
    struct iseg_arena_mark mark = iseg_arena_mark(c->a);
    size_t per = (size_t)(F > MC ? F : MC) * 196;
    float *boxes = alloc_f(c, (size_t)4 * D);
    float *buf[2] = {alloc_f(c, (size_t)D * per), alloc_f(c, (size_t)D * per)};
    if (!boxes || !buf[0] || !buf[1]) return false;
    float *x = buf[0];
    for (int i = 0; i < D; i++) memcpy(boxes + 4 * i, d[i].box, 16);
    double t0 = iseg__now();
    if (!roi_pool(c, x, P, boxes, D, 14, img_h, img_w)) return false;
    c->tm.mask_roi_align += lap(&t0);
    emit(c, "roi.mask_features", x, 4, D, F, 14, 14);
    for (int i = 0; i < m->cfg.mask_convs; i++) {
        float *y = buf[(i + 1) & 1];
        iseg_conv2d_forward(c->e, m->mask_conv[i], y, x, D, 14, 14, NULL, ISEG_ACT_RELU);
        x = y;
    }
    float *up = alloc_f(c, (size_t)D * MC * 784);
    if (!up) return false;
    iseg_deconv2d_forward(c->e, m->mask_deconv, up, x, D, 14, 14, ISEG_ACT_RELU);
    /* 1x1 logits of the predicted label only, one detection per task */
    struct logits_ctx lc = {m, d, up, probs};
    iseg__engine_run(c->e, (size_t)D, logits_task, &lc);
    emit(c, "mask.logits", probs, 3, D, 28, 28, 1);
    iseg_sigmoid(probs, probs, (size_t)D * 784);
    iseg_arena_release(c->a, mark);
    *out = probs;
    c->tm.mask_head += lap(&t0);
    return true;
}

/* ---- pasting ---------------------------------------------------------------------------------- */

struct runs {
    uint32_t *cnts;
    size_t    m, cap;
    uint8_t   cur; /* value of the open run */
};

static bool runs_add(struct runs *r, uint8_t v, uint32_t len) {
    if (!len) return true;
    if (v != r->cur) {
        if (r->m == r->cap) {
            size_t nc = r->cap ? 2 * r->cap : 64;
            uint32_t *p = iseg__realloc_array(r->cnts, nc, sizeof(uint32_t));
            if (!p) return false;
            r->cnts = p;
            r->cap = nc;
        }
        r->cnts[r->m++] = 0;
        r->cur = v;
    }
    r->cnts[r->m - 1] += len;
    return true;
}

/* ref: roi_heads.py paste_masks_in_image (padding 1): the 28x28 probabilities, padded to 30x30,
 * are resized bilinearly onto the expanded, truncated box and thresholded. Builds the RLE
 * (column-major) directly. */
struct row_tap {
    int   i0, i1; /* source rows (of the padded 30x30 mask) */
    float l0, l1;
};

/* rt and bits: scratch of at least H entries each (the caller's, per thread) */
static enum iseg_status paste(struct iseg_rle *out, const float *prob28, const float box[4],
                              int H, int W, float thresh, struct row_tap *rt, uint8_t *bits) {
    float pad[30 * 30];
    memset(pad, 0, sizeof(pad));
    for (int y = 0; y < 28; y++) memcpy(pad + (y + 1) * 30 + 1, prob28 + y * 28, 28 * 4);
    const float scale = (float)(30.0 / 28.0);
    float w_half = (box[2] - box[0]) * 0.5f, h_half = (box[3] - box[1]) * 0.5f;
    float x_c = (box[2] + box[0]) * 0.5f, y_c = (box[3] + box[1]) * 0.5f;
    w_half *= scale;
    h_half *= scale;
    /* .to(int64): truncation toward zero */
    int64_t bx0 = (int64_t)(x_c - w_half), bx1 = (int64_t)(x_c + w_half);
    int64_t by0 = (int64_t)(y_c - h_half), by1 = (int64_t)(y_c + h_half);
    int64_t w = bx1 - bx0 + 1, h = by1 - by0 + 1;
    if (w < 1) w = 1;
    if (h < 1) h = 1;
    int64_t x0 = bx0 > 0 ? bx0 : 0, x1 = bx1 + 1 < W ? bx1 + 1 : W;
    int64_t y0 = by0 > 0 ? by0 : 0, y1 = by1 + 1 < H ? by1 + 1 : H;
    /* torch's upsample_bilinear2d, align_corners False: scale = in / out (float) */
    const float sh = 30.0f / (float)h, sw = 30.0f / (float)w;
    /* counts start with a (possibly empty) run of zeros */
    struct runs r = {0};
    enum iseg_status st = ISEG_STATUS_OK;
    /* the rows' source taps and weights do not depend on the column: once per mask */
    int64_t ny = y1 > y0 ? y1 - y0 : 0;
    r.cnts = iseg__malloc_array(64, sizeof(uint32_t));
    if (!r.cnts) goto oom;
    for (int64_t y = y0; y < y1; y++) {
        int64_t oy = y - by0;
        float srcy = sh * ((float)oy + 0.5f) - 0.5f;
        if (srcy < 0) srcy = 0;
        int iy0 = (int)srcy;
        struct row_tap *t = &rt[y - y0];
        t->i0 = iy0;
        t->i1 = iy0 + (iy0 < 29 ? 1 : 0);
        t->l1 = srcy - (float)iy0;
        t->l0 = 1.0f - t->l1;
    }
    r.cap = 64;
    r.m = 1;
    r.cnts[0] = 0;
    r.cur = 0;
    for (int64_t x = 0; x < W; x++) {
        if (x < x0 || x >= x1 || y0 >= y1) {
            if (!runs_add(&r, 0, (uint32_t)H)) goto oom;
            continue;
        }
        int64_t ox = x - bx0; /* column in the resized mask */
        float srcx = sw * ((float)ox + 0.5f) - 0.5f;
        if (srcx < 0) srcx = 0;
        int ix0 = (int)srcx;
        int ix1 = ix0 + (ix0 < 29 ? 1 : 0);
        float lx1 = srcx - (float)ix0, lx0 = 1.0f - lx1;
        /* the column's x interpolation of the 30 source rows once (torch's inner sums, the
         * same products in the same order), then each output row's y interpolation of two */
        float colv[30];
        for (int i = 0; i < 30; i++) colv[i] = lx0 * pad[i * 30 + ix0] + lx1 * pad[i * 30 + ix1];
        for (int64_t j = 0; j < ny; j++) {
            const struct row_tap *t = &rt[j];
            float v = t->l0 * colv[t->i0] + t->l1 * colv[t->i1];
            bits[j] = v > thresh;
        }
        if (!runs_add(&r, 0, (uint32_t)y0)) goto oom;
        for (int64_t j = 0; j < ny;) {
            int64_t k = j + 1;
            while (k < ny && bits[k] == bits[j]) k++;
            if (!runs_add(&r, bits[j], (uint32_t)(k - j))) goto oom;
            j = k;
        }
        if (!runs_add(&r, 0, (uint32_t)(H - y1))) goto oom;
    }
    out->h = (uint32_t)H;
    out->w = (uint32_t)W;
    out->m = r.m;
    out->cnts = r.cnts;
    return st;
oom:
    iseg__free(r.cnts);
    return ISEG_STATUS_ENOMEM;
}

/* Pasting on the engine's pool: every detection's RLE is independent of the others. */
struct paste_ctx {
    struct iseg_detections *out;
    const float            *probs;
    enum iseg_status       *st;
    int                     H, W;
    float                   thresh;
    struct row_tap         *rt;   /* (threads, H) */
    uint8_t                *bits; /* (threads, H) */
};

static void paste_task(void *vctx, size_t i, int ith) {
    const struct paste_ctx *x = vctx;
    (void)ith;
    struct iseg_detection *o = &x->out->d[i];
    x->st[i] = paste(&o->mask, x->probs + i * 784, o->box, x->H, x->W, x->thresh,
                     x->rt + (size_t)ith * x->H, x->bits + (size_t)ith * x->H);
}

/* ---- the whole model -------------------------------------------------------------------------- */

static enum iseg_status to_rgb_normalised(struct iseg_infer *c, const struct iseg_image *img,
                                          float **out) {
    static const float mean[3] = {0.485f, 0.456f, 0.406f}, stdv[3] = {0.229f, 0.224f, 0.225f};
    size_t HW = (size_t)img->w * img->h;
    float *x = alloc_f(c, 3 * HW);
    if (!x) return ISEG_STATUS_ENOMEM;
    const uint8_t *px = img->data;
    for (size_t i = 0; i < HW; i++) {
        uint8_t rgb[3];
        const uint8_t *p = px + i * img->c;
        if (img->c >= 3) {
            rgb[0] = p[0];
            rgb[1] = p[1];
            rgb[2] = p[2];
        } else {
            rgb[0] = rgb[1] = rgb[2] = p[0];
        }
        for (int ch = 0; ch < 3; ch++)
            x[ch * HW + i] = ((float)rgb[ch] / 255.0f - mean[ch]) / stdv[ch];
    }
    *out = x;
    return ISEG_STATUS_OK;
}

enum iseg_status iseg_infer_run(iseg_infer_t c, const struct iseg_image *img,
                                struct iseg_detections *out) {
    ISEG_ASSERT(c && img && out);
    memset(out, 0, sizeof(*out));
    c->err[0] = '\0';
    if (!img->data || img->w < 1 || img->h < 1 || img->c < 1 || img->c > 4 || img->depth != 8) {
        snprintf(c->err, sizeof(c->err), "image must be 8-bit with 1 to 4 channels");
        return ISEG_STATUS_EINVAL;
    }
    if ((uint64_t)img->w * img->h > ISEG_IMAGE_MAX_PIXELS) {
        snprintf(c->err, sizeof(c->err), "image of %ux%u pixels is over the limit", img->w,
                 img->h);
        return ISEG_STATUS_ELIMIT;
    }
    const int H0 = (int)img->h, W0 = (int)img->w;
    memset(&c->tm, 0, sizeof(c->tm));
    double t_start = iseg__now(), t0 = t_start;
    iseg_arena_reset(c->a);
    enum iseg_status st = ISEG_STATUS_ENOMEM;
    float *x0;
    int oh, ow;
    mrcnn_resized_size(H0, W0, c->p.min_size, c->p.max_size, &oh, &ow);
    if (oh < 1 || ow < 1 || oh > 16384 || ow > 16384) {
        snprintf(c->err, sizeof(c->err),
                 "image of %dx%d pixels resizes to %dx%d at min_size %d, max_size %d (too "
                 "elongated or too large)", W0, H0, ow, oh, c->p.min_size, c->p.max_size);
        return ISEG_STATUS_ELIMIT;
    }
    int ph = (oh + 31) / 32 * 32, pw = (ow + 31) / 32 * 32;
    /* P2..P6 first: everything the backbone and FPN allocate after them is released once the
     * pyramid is built */
    struct fmap C[4], P[MRCNN_N_LEVELS];
    {
        int dims[4][2];
        stage_dims(c->m, ph, pw, dims);
        for (int l = 0; l < MRCNN_N_LEVELS; l++) {
            P[l].C = c->m->cfg.fpn;
            P[l].H = l < 4 ? dims[l][0] : (dims[3][0] - 1) / 2 + 1;
            P[l].W = l < 4 ? dims[l][1] : (dims[3][1] - 1) / 2 + 1;
            P[l].d = alloc_f(c, (size_t)P[l].C * P[l].H * P[l].W);
            if (!P[l].d) goto oom;
        }
    }
    struct iseg_arena_mark pyramid = iseg_arena_mark(c->a);
    if (to_rgb_normalised(c, img, &x0)) goto oom;
    struct fmap in = {alloc_f(c, (size_t)3 * ph * pw), 3, ph, pw};
    float *rs = alloc_f(c, (size_t)3 * oh * ow);
    if (!in.d || !rs) goto oom;
    iseg_resize_bilinear(c->e, rs, x0, 1, 3, H0, W0, oh, ow, 0.0f, 0.0f);
    memset(in.d, 0, sizeof(float) * 3 * (size_t)ph * pw);
    for (int ch = 0; ch < 3; ch++)
        for (int y = 0; y < oh; y++)
            memcpy(in.d + ((size_t)ch * ph + y) * pw, rs + ((size_t)ch * oh + y) * ow,
                   (size_t)ow * sizeof(float));
    emit(c, "input", in.d, 4, 1, 3, ph, pw);
    c->tm.transform = lap(&t0);
    if (!backbone(c, &in, C)) goto oom;
    c->tm.backbone = lap(&t0);
    if (!fpn(c, C, P)) goto oom;
    iseg_arena_release(c->a, pyramid);
    c->tm.fpn = lap(&t0);
    float *props;
    int N;
    if (!rpn(c, P, oh, ow, ph, pw, &props, &N)) goto oom;
    struct det *d = NULL;
    int D = 0;
    if (!box_head(c, P, props, N, oh, ow, &d, &D)) goto oom;
    float *probs = NULL;
    if (D > 0 && !mask_head(c, P, d, D, oh, ow, &probs)) goto oom;
    if ((st = iseg_engine_take_error(c->e)) != ISEG_STATUS_OK) goto fail;
    t0 = iseg__now();
    /* ref: transform.py postprocess: boxes * (original / resized), masks pasted */
    float rh = (float)H0 / (float)oh, rw = (float)W0 / (float)ow;
    out->h = (uint32_t)H0;
    out->w = (uint32_t)W0;
    if (D > 0) {
        out->d = iseg__calloc((size_t)D, sizeof(*out->d));
        if (!out->d) goto oom;
    }
    for (int i = 0; i < D; i++) {
        struct iseg_detection *o = &out->d[i];
        o->box[0] = d[i].box[0] * rw;
        o->box[1] = d[i].box[1] * rh;
        o->box[2] = d[i].box[2] * rw;
        o->box[3] = d[i].box[3] * rh;
        o->score = d[i].score;
        o->label = d[i].label;
    }
    if (D > 0) {
        /* masks zeroed by calloc: iseg_detections_free() is safe on the ones that failed */
        enum iseg_status *pst = iseg_arena_alloc(c->a, sizeof(*pst) * (size_t)D);
        if (!pst) goto oom;
        out->n = (size_t)D;
        size_t nth = (size_t)iseg_engine_threads(c->e);
        struct row_tap *rt = iseg_arena_alloc(c->a, sizeof(struct row_tap) * nth * (size_t)H0);
        uint8_t *bits = iseg_arena_alloc(c->a, nth * (size_t)H0);
        if (!rt || !bits) goto oom;
        struct paste_ctx pc = {out, probs, pst, H0, W0, c->p.mask_thresh, rt, bits};
        iseg__engine_run(c->e, (size_t)D, paste_task, &pc);
        for (int i = 0; i < D; i++)
            if (pst[i]) {
                st = pst[i];
                goto fail;
            }
    }
    c->tm.paste = lap(&t0);
    /* nothing of the arena outlives the call: rewind now, so that the first image already
     * leaves one block of the peak size behind and the next allocates nothing */
    iseg_arena_reset(c->a);
    c->tm.total = (iseg__now() - t_start) * 1e3;
    return ISEG_STATUS_OK;
oom:
    st = ISEG_STATUS_ENOMEM;
fail:
    if (!c->err[0]) snprintf(c->err, sizeof(c->err), "%s", iseg_status_str(st));
    iseg_detections_free(out);
    return st;
}
