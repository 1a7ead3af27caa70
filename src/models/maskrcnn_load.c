/* maskrcnn_load.c - bind a torchvision Mask R-CNN state dict to the engine's operators.
 *
 * Every tensor the architecture needs is looked up by its current torchvision name, then by the
 * older name of the released checkpoints; its shape and dtype are checked; batch norms are folded
 * into the preceding convolution (ref: torchvision/ops/misc.py FrozenBatchNorm2d). Tensors left
 * over (apart from BatchNorm's num_batches_tracked) are reported as unexpected. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "models/maskrcnn_impl.h"
#include "nn/nn_impl.h" /* iseg__conv2d_winograd */

static const char *const arch_names[] = {"auto", "maskrcnn_resnet50_fpn",
                                         "maskrcnn_resnet50_fpn_v2", "maskrcnn_resnet_fpn"};
_Static_assert(sizeof(arch_names) / sizeof(*arch_names) == ISEG_ARCH_COUNT, "arch names");
static const char *const bn_stats_names[] = {"auto", "running", "image"};
_Static_assert(sizeof(bn_stats_names) / sizeof(*bn_stats_names) == ISEG_BN_STATS_COUNT,
               "bn_stats names");

const char *iseg_arch_name(enum iseg_arch a) {
    return (a >= 0 && a < ISEG_ARCH_COUNT) ? arch_names[a] : NULL;
}

enum iseg_arch iseg_arch_from_name(const char *name) {
    return (enum iseg_arch)iseg__name_index(arch_names, ISEG_ARCH_COUNT, name);
}

const char *iseg_bn_stats_name(enum iseg_bn_stats s) {
    return (s >= 0 && s < ISEG_BN_STATS_COUNT) ? bn_stats_names[s] : NULL;
}

enum iseg_bn_stats iseg_bn_stats_from_name(const char *name) {
    return (enum iseg_bn_stats)iseg__name_index(bn_stats_names, ISEG_BN_STATS_COUNT, name);
}

struct iseg_model_params iseg_model_default_params(void) {
    struct iseg_model_params p;
    memset(&p, 0, sizeof(p));
    p.arch = ISEG_ARCH_AUTO;
    p.bn_stats = ISEG_BN_STATS_AUTO;
    return p;
}

enum iseg_bn_stats iseg_model_bn_stats(const iseg_model_t m) { return m->bn_stats; }
enum iseg_precision iseg_model_precision(const iseg_model_t m) { return m->precision; }

enum iseg_arch iseg_model_arch(const iseg_model_t m) { return m->arch; }
int iseg_model_num_classes(const iseg_model_t m) { return m->num_classes; }

/* ---- the binder --------------------------------------------------------------------------- */

struct binder {
    iseg_weights_t w;
    const char    *prefix; /* "" or "model." for {"model": state_dict} checkpoints */
    bool          *used;   /* per tensor of w */
    size_t         n;
    char          *err;
    size_t         errlen;
    const char    *path;
    float         *tmp;    /* conversion scratch */
    size_t         tmp_cap;
    bool           image_bn; /* backbone batch norms with per-image statistics */
    enum iseg_precision prec;
};

/* The precision of one convolution of a model loaded in b->prec: the stem (3 input channels)
 * stays f32, and so do, in int8, the 3x3 convolutions that f32 runs with Winograd (faster
 * than int8 products on CPUs without VNNI, and exact) */
static enum iseg_precision conv_prec(const struct binder *b, const char *name,
                                     const struct iseg_conv2d_desc *d) {
    if (b->prec == ISEG_PRECISION_FP32 || strcmp(name, "backbone.body.conv1") == 0)
        return ISEG_PRECISION_FP32;
    if (b->prec == ISEG_PRECISION_INT8 && iseg__conv2d_winograd(d)) return ISEG_PRECISION_FP32;
    return b->prec;
}

/* The predictors (the last layers: RPN logits and deltas, box classes and deltas) are kept
 * out of int8, whose error there moves boxes and scores directly. */
static enum iseg_precision predictor_prec(const struct binder *b) {
    return b->prec == ISEG_PRECISION_INT8 ? ISEG_PRECISION_FP32 : b->prec;
}

static enum iseg_status fail(struct binder *b, enum iseg_status st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static enum iseg_status fail(struct binder *b, enum iseg_status st, const char *fmt, ...) {
    if (b->err && b->errlen) {
        int k = snprintf(b->err, b->errlen, "%s: ", b->path ? b->path : "<weights>");
        if (k < 0 || (size_t)k >= b->errlen) return st;
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(b->err + k, b->errlen - (size_t)k, fmt, ap);
        va_end(ap);
    }
    return st;
}

static const struct iseg_weight *lookup(struct binder *b, const char *name) {
    char full[256];
    snprintf(full, sizeof(full), "%s%s", b->prefix, name);
    const struct iseg_weight *t = iseg_weights_find(b->w, full);
    if (t) b->used[t - iseg_weights_at(b->w, 0)] = true;
    return t;
}

static void shape_str(char *buf, size_t n, int ndim, const int64_t *shape) {
    size_t k = 0;
    k += (size_t)snprintf(buf + k, n - k, "[");
    for (int i = 0; i < ndim && k < n; i++)
        k += (size_t)snprintf(buf + k, n - k, i ? ",%lld" : "%lld", (long long)shape[i]);
    if (k < n) snprintf(buf + k, n - k, "]");
}

/* Fetch tensor `name` (or `alt`, may be NULL) with the expected shape as f32 into a new buffer.
 * Missing: EFORMAT unless optional (then *out = NULL and OK). */
static enum iseg_status fetch(struct binder *b, float **out, const char *name, const char *alt,
                              bool optional, int ndim, ...) {
    int64_t shape[4];
    va_list ap;
    va_start(ap, ndim);
    for (int i = 0; i < ndim; i++) shape[i] = va_arg(ap, int64_t);
    va_end(ap);
    *out = NULL;
    const struct iseg_weight *t = lookup(b, name);
    if (!t && alt) t = lookup(b, alt);
    char want[96], got[96];
    shape_str(want, sizeof(want), ndim, shape);
    if (!t) {
        if (optional) return ISEG_STATUS_OK;
        return fail(b, ISEG_STATUS_EFORMAT, "%s%s: missing (expected %s)", b->prefix, name, want);
    }
    bool ok = t->ndim == ndim;
    for (int i = 0; ok && i < ndim; i++) ok = t->shape[i] == shape[i];
    if (!ok) {
        shape_str(got, sizeof(got), t->ndim, t->shape);
        return fail(b, ISEG_STATUS_EFORMAT, "%s: got %s, expected %s", t->name, got, want);
    }
    if (t->dtype != ISEG_DTYPE_F32 && t->dtype != ISEG_DTYPE_F16 && t->dtype != ISEG_DTYPE_BF16 &&
        t->dtype != ISEG_DTYPE_F64)
        return fail(b, ISEG_STATUS_EFORMAT, "%s: dtype %s, expected a floating type (F32)",
                    t->name, iseg_dtype_name(t->dtype));
    size_t n = iseg_weight_numel(t);
    float *p = iseg__malloc_array(n ? n : 1, sizeof(float));
    if (!p) return fail(b, ISEG_STATUS_ENOMEM, "%s: out of memory", t->name);
    enum iseg_status st = iseg_weight_to_f32(p, t);
    if (st != ISEG_STATUS_OK) {
        iseg__free(p);
        return fail(b, st, "%s: cannot convert to f32", t->name);
    }
    for (size_t i = 0; i < n; i++)
        if (!isfinite(p[i])) {
            iseg__free(p);
            return fail(b, ISEG_STATUS_EFORMAT, "%s: element %zu is not finite", t->name, i);
        }
    *out = p;
    return ISEG_STATUS_OK;
}

#define TRY(x)                                   \
    do {                                         \
        enum iseg_status st_ = (x);              \
        if (st_ != ISEG_STATUS_OK) return st_;   \
    } while (0)

/* A conv named `name` (alt: older name) with optional bias, followed by an optional batch norm
 * `bn` (weight, bias, running_mean, running_var; eps 1e-5), folded into the conv; or, with
 * per-image statistics (b->image_bn) and ibn, its weight and bias kept in *ibn. */
static enum iseg_status bind_conv(struct binder *b, iseg_conv2d_t *out, struct mrcnn_ibn *ibn,
                                  const char *name, const char *alt, const char *bn, bool bias,
                                  struct iseg_conv2d_desc d) {
    char wn[192], wa[192], bnn[192], ban[192];
    float *w = NULL, *bb = NULL, *g = NULL, *be = NULL, *mu = NULL, *var = NULL;
    enum iseg_status st;
    snprintf(wn, sizeof(wn), "%s.weight", name);
    if (alt) snprintf(wa, sizeof(wa), "%s.weight", alt);
    st = fetch(b, &w, wn, alt ? wa : NULL, false, 4, (int64_t)d.cout,
               (int64_t)(d.cin / d.groups), (int64_t)d.kh, (int64_t)d.kw);
    if (st) goto out;
    if (bias) {
        snprintf(bnn, sizeof(bnn), "%s.bias", name);
        if (alt) snprintf(ban, sizeof(ban), "%s.bias", alt);
        st = fetch(b, &bb, bnn, alt ? ban : NULL, false, 1, (int64_t)d.cout);
        if (st) goto out;
    }
    if (bn) {
        float **dst[4] = {&g, &be, &mu, &var};
        const char *suf[4] = {"weight", "bias", "running_mean", "running_var"};
        for (int i = 0; i < 4; i++) {
            snprintf(bnn, sizeof(bnn), "%s.%s", bn, suf[i]);
            st = fetch(b, dst[i], bnn, NULL, false, 1, (int64_t)d.cout);
            if (st) goto out;
        }
        snprintf(bnn, sizeof(bnn), "%s.num_batches_tracked", bn);
        (void)lookup(b, bnn); /* training statistic: ignored */
    }
    if (bn && b->image_bn && ibn) { /* applied per image by the forward pass */
        ibn->gamma = g;
        ibn->beta = be;
        g = be = NULL;
    } else if (bn) {
        float *fb = iseg__malloc_array((size_t)d.cout, sizeof(float));
        if (!fb) {
            st = fail(b, ISEG_STATUS_ENOMEM, "%s: out of memory", name);
            goto out;
        }
        iseg_bn_fold(w, fb, bb, g, be, mu, var, 1e-5f, d.cout,
                     (size_t)(d.cin / d.groups) * (size_t)d.kh * (size_t)d.kw);
        iseg__free(bb);
        bb = fb;
    }
    st = iseg_conv2d_init_precision(out, &d, w, bb, conv_prec(b, name, &d));
    if (st) fail(b, st, "%s: cannot prepare the convolution", name);
out:
    iseg__free(w);
    iseg__free(bb);
    iseg__free(g);
    iseg__free(be);
    iseg__free(mu);
    iseg__free(var);
    return st;
}

static enum iseg_status bind_backbone(struct binder *b, iseg_model_t m) {
    const struct mrcnn_cfg *g = &m->cfg;
    TRY(bind_conv(b, &m->conv1, &m->bn1, "backbone.body.conv1", NULL, "backbone.body.bn1",
                  false, mrcnn_conv_desc(3, g->stem, 7, 2, 3)));
    int cin = g->stem, bi = 0;
    for (int L = 0; L < 4; L++) {
        int width = g->width[L], cout = g->out[L];
        for (int k = 0; k < g->n_blocks[L]; k++, bi++) {
            struct mrcnn_bottleneck *blk = &m->blocks[bi];
            int stride = (k == 0 && L > 0) ? 2 : 1;
            char c[96], n[96];
            snprintf(c, sizeof(c), "backbone.body.layer%d.%d.conv1", L + 1, k);
            snprintf(n, sizeof(n), "backbone.body.layer%d.%d.bn1", L + 1, k);
            if (g->bottleneck)
                TRY(bind_conv(b, &blk->conv1, &blk->bn1, c, NULL, n, false,
                              mrcnn_conv_desc(cin, width, 1, 1, 0)));
            else /* basic block: the stride is in the first 3x3 */
                TRY(bind_conv(b, &blk->conv1, &blk->bn1, c, NULL, n, false,
                              mrcnn_conv_desc(cin, width, 3, stride, 1)));
            snprintf(c, sizeof(c), "backbone.body.layer%d.%d.conv2", L + 1, k);
            snprintf(n, sizeof(n), "backbone.body.layer%d.%d.bn2", L + 1, k);
            if (g->bottleneck)
                TRY(bind_conv(b, &blk->conv2, &blk->bn2, c, NULL, n, false,
                              mrcnn_conv_desc(width, width, 3, stride, 1)));
            else
                TRY(bind_conv(b, &blk->conv2, &blk->bn2, c, NULL, n, false,
                              mrcnn_conv_desc(width, cout, 3, 1, 1)));
            if (g->bottleneck) {
                snprintf(c, sizeof(c), "backbone.body.layer%d.%d.conv3", L + 1, k);
                snprintf(n, sizeof(n), "backbone.body.layer%d.%d.bn3", L + 1, k);
                TRY(bind_conv(b, &blk->conv3, &blk->bn3, c, NULL, n, false,
                              mrcnn_conv_desc(width, cout, 1, 1, 0)));
            }
            if (k == 0 && (stride != 1 || cin != cout)) {
                snprintf(c, sizeof(c), "backbone.body.layer%d.0.downsample.0", L + 1);
                snprintf(n, sizeof(n), "backbone.body.layer%d.0.downsample.1", L + 1);
                TRY(bind_conv(b, &blk->down, &blk->bnd, c, NULL, n, false,
                              mrcnn_conv_desc(cin, cout, 1, stride, 0)));
            }
            cin = cout;
        }
    }
    return ISEG_STATUS_OK;
}

static enum iseg_status bind_fpn(struct binder *b, iseg_model_t m) {
    bool v2 = m->cfg.head_bn;
    int  F = m->cfg.fpn;
    for (int i = 0; i < 4; i++) {
        char c[96], alt[96], n[96];
        snprintf(c, sizeof(c), "backbone.fpn.inner_blocks.%d.0", i);
        snprintf(alt, sizeof(alt), "backbone.fpn.inner_blocks.%d", i);
        snprintf(n, sizeof(n), "backbone.fpn.inner_blocks.%d.1", i);
        TRY(bind_conv(b, &m->fpn_inner[i], NULL, c, v2 ? NULL : alt, v2 ? n : NULL, !v2,
                      mrcnn_conv_desc(m->cfg.out[i], F, 1, 1, 0)));
        snprintf(c, sizeof(c), "backbone.fpn.layer_blocks.%d.0", i);
        snprintf(alt, sizeof(alt), "backbone.fpn.layer_blocks.%d", i);
        snprintf(n, sizeof(n), "backbone.fpn.layer_blocks.%d.1", i);
        TRY(bind_conv(b, &m->fpn_layer[i], NULL, c, v2 ? NULL : alt, v2 ? n : NULL, !v2,
                      mrcnn_conv_desc(F, F, 3, 1, 1)));
    }
    return ISEG_STATUS_OK;
}

static enum iseg_status bind_rpn(struct binder *b, iseg_model_t m) {
    int F = m->cfg.fpn;
    bool v2 = m->cfg.rpn_convs == 2;
    m->n_rpn_conv = m->cfg.rpn_convs;
    for (int i = 0; i < m->n_rpn_conv; i++) {
        char c[64];
        snprintf(c, sizeof(c), "rpn.head.conv.%d.0", i);
        TRY(bind_conv(b, &m->rpn_conv[i], NULL, c, v2 ? NULL : "rpn.head.conv", NULL, true,
                      mrcnn_conv_desc(F, F, 3, 1, 1)));
    }
    /* cls_logits (3) and bbox_pred (12) as one 1x1 conv of 15 outputs */
    float *cw = NULL, *cb = NULL, *bw = NULL, *bb = NULL, *w = NULL, *bias = NULL;
    enum iseg_status st;
    if ((st = fetch(b, &cw, "rpn.head.cls_logits.weight", NULL, false, 4, (int64_t)3,
                    (int64_t)F, (int64_t)1, (int64_t)1)) ||
        (st = fetch(b, &cb, "rpn.head.cls_logits.bias", NULL, false, 1, (int64_t)3)) ||
        (st = fetch(b, &bw, "rpn.head.bbox_pred.weight", NULL, false, 4, (int64_t)12,
                    (int64_t)F, (int64_t)1, (int64_t)1)) ||
        (st = fetch(b, &bb, "rpn.head.bbox_pred.bias", NULL, false, 1, (int64_t)12)))
        goto out;
    w = iseg__malloc_array((size_t)15 * F, sizeof(float));
    bias = iseg__malloc_array(15, sizeof(float));
    if (!w || !bias) {
        st = fail(b, ISEG_STATUS_ENOMEM, "rpn.head: out of memory");
        goto out;
    }
    memcpy(w, cw, (size_t)3 * F * sizeof(float));
    memcpy(w + (size_t)3 * F, bw, (size_t)12 * F * sizeof(float));
    memcpy(bias, cb, 3 * sizeof(float));
    memcpy(bias + 3, bb, 12 * sizeof(float));
    struct iseg_conv2d_desc d = mrcnn_conv_desc(F, 15, 1, 1, 0);
    st = iseg_conv2d_init_precision(&m->rpn_out, &d, w, bias, predictor_prec(b));
    if (st) fail(b, st, "rpn.head: cannot prepare the convolution");
out:
    iseg__free(cw);
    iseg__free(cb);
    iseg__free(bw);
    iseg__free(bb);
    iseg__free(w);
    iseg__free(bias);
    return st;
}

static enum iseg_status bind_linear(struct binder *b, iseg_linear_t *out, const char *name,
                                    int in, int nout) {
    char wn[128], bn[128];
    float *w = NULL, *bias = NULL;
    snprintf(wn, sizeof(wn), "%s.weight", name);
    snprintf(bn, sizeof(bn), "%s.bias", name);
    enum iseg_status st = fetch(b, &w, wn, NULL, false, 2, (int64_t)nout, (int64_t)in);
    if (!st) st = fetch(b, &bias, bn, NULL, false, 1, (int64_t)nout);
    if (!st) {
        st = iseg_linear_init_precision(out, in, nout, w, bias, b->prec);
        if (st) fail(b, st, "%s: cannot prepare the layer", name);
    }
    iseg__free(w);
    iseg__free(bias);
    return st;
}

static enum iseg_status bind_heads(struct binder *b, iseg_model_t m) {
    const struct mrcnn_cfg *g = &m->cfg;
    bool v2 = g->head_bn;
    int K = m->num_classes, F = g->fpn, R = g->rep, MC = g->mask_ch;
    m->hidden = R;
    m->n_box_conv = g->box_convs;
    for (int i = 0; i < g->box_convs; i++) {
        char c[64], n[64];
        snprintf(c, sizeof(c), "roi_heads.box_head.%d.0", i);
        snprintf(n, sizeof(n), "roi_heads.box_head.%d.1", i);
        TRY(bind_conv(b, &m->box_conv[i], NULL, c, NULL, n, false,
                      mrcnn_conv_desc(F, F, 3, 1, 1)));
    }
    m->n_box_fc = g->box_fcs;
    if (g->box_convs) {
        char fcn[64];
        snprintf(fcn, sizeof(fcn), "roi_heads.box_head.%d", g->box_convs + 1);
        TRY(bind_linear(b, &m->box_fc[0], fcn, F * 7 * 7, R));
    } else {
        TRY(bind_linear(b, &m->box_fc[0], "roi_heads.box_head.fc6", F * 7 * 7, R));
        TRY(bind_linear(b, &m->box_fc[1], "roi_heads.box_head.fc7", R, R));
    }
    /* predictor: cls_score (K) and bbox_pred (4K) fused */
    float *cw = NULL, *cb = NULL, *bw = NULL, *bb = NULL, *w = NULL, *bias = NULL;
    enum iseg_status st;
    if ((st = fetch(b, &cw, "roi_heads.box_predictor.cls_score.weight", NULL, false, 2,
                                (int64_t)K, (int64_t)R)) ||
        (st = fetch(b, &cb, "roi_heads.box_predictor.cls_score.bias", NULL, false, 1,
                    (int64_t)K)) ||
        (st = fetch(b, &bw, "roi_heads.box_predictor.bbox_pred.weight", NULL, false, 2,
                    (int64_t)4 * K, (int64_t)R)) ||
        (st = fetch(b, &bb, "roi_heads.box_predictor.bbox_pred.bias", NULL, false, 1,
                    (int64_t)4 * K)))
        goto out;
    w = iseg__malloc_array((size_t)5 * K * R, sizeof(float));
    bias = iseg__malloc_array((size_t)5 * K, sizeof(float));
    if (!w || !bias) {
        st = fail(b, ISEG_STATUS_ENOMEM, "roi_heads.box_predictor: out of memory");
        goto out;
    }
    memcpy(w, cw, (size_t)K * R * sizeof(float));
    memcpy(w + (size_t)K * R, bw, (size_t)4 * K * R * sizeof(float));
    memcpy(bias, cb, (size_t)K * sizeof(float));
    memcpy(bias + K, bb, (size_t)4 * K * sizeof(float));
    st = iseg_linear_init_precision(&m->box_pred, R, 5 * K, w, bias, predictor_prec(b));
    if (st) {
        fail(b, st, "roi_heads.box_predictor: cannot prepare the layer");
        goto out;
    }
    /* mask head */
    for (int i = 0; i < g->mask_convs; i++) {
        char c[64], alt[64], n[64];
        snprintf(c, sizeof(c), "roi_heads.mask_head.%d.0", i);
        snprintf(alt, sizeof(alt), "roi_heads.mask_head.mask_fcn%d", i + 1);
        snprintf(n, sizeof(n), "roi_heads.mask_head.%d.1", i);
        st = bind_conv(b, &m->mask_conv[i], NULL, c, v2 ? NULL : alt, v2 ? n : NULL, !v2,
                       mrcnn_conv_desc(i ? MC : F, MC, 3, 1, 1));
        if (st) goto out;
    }
    {
        float *dw = NULL, *db = NULL;
        st = fetch(b, &dw, "roi_heads.mask_predictor.conv5_mask.weight", NULL, false, 4,
                   (int64_t)MC, (int64_t)MC, (int64_t)2, (int64_t)2);
        if (!st)
            st = fetch(b, &db, "roi_heads.mask_predictor.conv5_mask.bias", NULL, false, 1,
                       (int64_t)MC);
        if (!st) {
            struct iseg_deconv2d_desc d = {MC, MC, 2, 2, 2, 2, 0, 0, 0, 0, 1, 1, 1};
            st = iseg_deconv2d_init_precision(&m->mask_deconv, &d, dw, db, b->prec);
            if (st) fail(b, st, "roi_heads.mask_predictor.conv5_mask: cannot prepare");
        }
        iseg__free(dw);
        iseg__free(db);
        if (st) goto out;
    }
    st = fetch(b, &m->mask_logit_w, "roi_heads.mask_predictor.mask_fcn_logits.weight", NULL,
               false, 4, (int64_t)K, (int64_t)MC, (int64_t)1, (int64_t)1);
    if (!st)
        st = fetch(b, &m->mask_logit_b, "roi_heads.mask_predictor.mask_fcn_logits.bias", NULL,
                   false, 1, (int64_t)K);
out:
    iseg__free(cw);
    iseg__free(cb);
    iseg__free(bw);
    iseg__free(bb);
    iseg__free(w);
    iseg__free(bias);
    return st;
}

void iseg_model_free(iseg_model_t m) {
    if (!m) return;
    iseg_conv2d_free(m->conv1);
    iseg__free(m->bn1.gamma);
    iseg__free(m->bn1.beta);
    for (int i = 0; i < MRCNN_MAX_BLOCKS; i++) {
        struct mrcnn_ibn *ib[4] = {&m->blocks[i].bn1, &m->blocks[i].bn2, &m->blocks[i].bn3,
                                   &m->blocks[i].bnd};
        for (int k = 0; k < 4; k++) {
            iseg__free(ib[k]->gamma);
            iseg__free(ib[k]->beta);
        }
        iseg_conv2d_free(m->blocks[i].conv1);
        iseg_conv2d_free(m->blocks[i].conv2);
        iseg_conv2d_free(m->blocks[i].conv3);
        iseg_conv2d_free(m->blocks[i].down);
    }
    for (int i = 0; i < 4; i++) {
        iseg_conv2d_free(m->fpn_inner[i]);
        iseg_conv2d_free(m->fpn_layer[i]);
        iseg_conv2d_free(m->box_conv[i]);
    }
    for (int i = 0; i < 8; i++) iseg_conv2d_free(m->mask_conv[i]);
    for (int i = 0; i < 2; i++) {
        iseg_conv2d_free(m->rpn_conv[i]);
        iseg_linear_free(m->box_fc[i]);
    }
    iseg_conv2d_free(m->rpn_out);
    iseg_linear_free(m->box_pred);
    iseg_deconv2d_free(m->mask_deconv);
    iseg__free(m->mask_logit_w);
    iseg__free(m->mask_logit_b);
    if (m->class_names)
        for (int i = 0; i < m->num_classes; i++) iseg__free(m->class_names[i]);
    iseg__free(m->class_names);
    iseg__free(m->category_ids);
    iseg__free(m);
}

static void cfg_defaults(struct mrcnn_cfg *g) {
    static const float sizes[MRCNN_N_LEVELS] = {32, 64, 128, 256, 512};
    memcpy(g->anchor_sizes, sizes, sizeof(sizes));
}

/* torchvision's ResNet-50-FPN, v1 or v2 */
static void cfg_r50(struct mrcnn_cfg *g, bool v2, int K) {
    static const int nb[4] = {3, 4, 6, 3};
    memset(g, 0, sizeof(*g));
    cfg_defaults(g);
    g->bottleneck = true;
    g->stem = 64;
    for (int L = 0; L < 4; L++) {
        g->n_blocks[L] = nb[L];
        g->width[L] = 64 << L;
        g->out[L] = 256 << L;
    }
    g->fpn = 256;
    g->rpn_convs = v2 ? 2 : 1;
    g->box_convs = v2 ? 4 : 0;
    g->box_fcs = v2 ? 1 : 2;
    g->rep = 1024;
    g->mask_convs = 4;
    g->mask_ch = 256;
    g->head_bn = v2;
    g->num_classes = K;
}

static const struct iseg_weight *peek(struct binder *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static const struct iseg_weight *peek(struct binder *b, const char *fmt, ...) {
    char name[160], full[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof(name), fmt, ap);
    va_end(ap);
    snprintf(full, sizeof(full), "%s%s", b->prefix, name);
    return iseg_weights_find(b->w, full);
}

static int dim0(const struct iseg_weight *t) {
    return t && t->ndim >= 1 && t->shape[0] >= 1 && t->shape[0] <= 65536 ? (int)t->shape[0] : 0;
}

/* Dimensions of a ResNet-FPN Mask R-CNN from its tensors; the binder then checks every shape. */
static enum iseg_status cfg_infer(struct binder *b, struct mrcnn_cfg *g, int K) {
    memset(g, 0, sizeof(*g));
    cfg_defaults(g);
    g->num_classes = K;
    g->stem = dim0(peek(b, "backbone.body.conv1.weight"));
    g->bottleneck = peek(b, "backbone.body.layer1.0.conv3.weight") != NULL;
    int total = 0;
    for (int L = 0; L < 4; L++) {
        int k = 0;
        while (total + k < MRCNN_MAX_BLOCKS && peek(b, "backbone.body.layer%d.%d.conv1.weight", L + 1, k))
            k++;
        if (k == 0)
            return fail(b, ISEG_STATUS_EFORMAT, "backbone.body.layer%d.0.conv1.weight: missing",
                        L + 1);
        g->n_blocks[L] = k;
        total += k;
        g->width[L] = dim0(peek(b, "backbone.body.layer%d.0.conv1.weight", L + 1));
        g->out[L] = dim0(peek(b, g->bottleneck ? "backbone.body.layer%d.0.conv3.weight"
                                               : "backbone.body.layer%d.0.conv2.weight", L + 1));
    }
    const struct iseg_weight *fi = peek(b, "backbone.fpn.inner_blocks.0.0.weight");
    if (!fi) fi = peek(b, "backbone.fpn.inner_blocks.0.weight");
    g->fpn = dim0(fi);
    g->head_bn = peek(b, "backbone.fpn.inner_blocks.0.1.weight") != NULL;
    g->rpn_convs = peek(b, "rpn.head.conv.1.0.weight") ? 2 : 1;
    if (peek(b, "roi_heads.box_head.0.0.weight")) {
        while (g->box_convs < 4 && peek(b, "roi_heads.box_head.%d.0.weight", g->box_convs))
            g->box_convs++;
        g->box_fcs = 1;
        g->rep = dim0(peek(b, "roi_heads.box_head.%d.weight", g->box_convs + 1));
    } else {
        g->box_fcs = 2;
        g->rep = dim0(peek(b, "roi_heads.box_head.fc6.weight"));
    }
    while (g->mask_convs < 8 && (peek(b, "roi_heads.mask_head.%d.0.weight", g->mask_convs) ||
                                 peek(b, "roi_heads.mask_head.mask_fcn%d.weight", g->mask_convs + 1)))
        g->mask_convs++;
    const struct iseg_weight *m0 = peek(b, "roi_heads.mask_head.0.0.weight");
    if (!m0) m0 = peek(b, "roi_heads.mask_head.mask_fcn1.weight");
    g->mask_ch = dim0(m0);
    if (!g->stem || !g->fpn || !g->rep || !g->mask_ch || !g->mask_convs)
        return fail(b, ISEG_STATUS_EFORMAT,
                    "not a ResNet-FPN Mask R-CNN state dict (stem %d, FPN %d, box head %d, mask "
                    "head %d channels)", g->stem, g->fpn, g->rep, g->mask_ch);
    for (int L = 0; L < 4; L++)
        if (!g->width[L] || !g->out[L])
            return fail(b, ISEG_STATUS_EFORMAT, "backbone.body.layer%d: cannot read its widths",
                        L + 1);
    return ISEG_STATUS_OK;
}

static bool is_r50(const struct mrcnn_cfg *g) {
    struct mrcnn_cfg r;
    cfg_r50(&r, g->head_bn, g->num_classes);
    return g->bottleneck && !memcmp(g->n_blocks, r.n_blocks, sizeof(r.n_blocks)) &&
           g->stem == 64 && !memcmp(g->width, r.width, sizeof(r.width)) &&
           !memcmp(g->out, r.out, sizeof(r.out)) && g->fpn == 256 && g->rep == 1024 &&
           g->mask_ch == 256 && g->mask_convs == 4 && g->rpn_convs == r.rpn_convs &&
           g->box_convs == r.box_convs;
}

/* comma-separated numbers; returns how many were read (at most cap) or -1 */
static int parse_list(const char *s, double *v, int cap) {
    int n = 0;
    while (s && *s) {
        char *end;
        double x = strtod(s, &end);
        if (end == s || n == cap) return -1;
        v[n++] = x;
        s = *end == ',' ? end + 1 : end;
        if (*end && *end != ',') return -1;
    }
    return n;
}

static enum iseg_status read_metadata(struct binder *b, iseg_model_t m) {
    const iseg_weights_t w = b->w;
    const char *v;
    double x[MRCNN_N_LEVELS];
    m->infer = iseg_infer_default_params();
    m->bn_stats = ISEG_BN_STATS_RUNNING;
    if ((v = iseg_weights_metadata(w, "iseg.bn_stats"))) {
        enum iseg_bn_stats s = iseg_bn_stats_from_name(v);
        if (s != ISEG_BN_STATS_RUNNING && s != ISEG_BN_STATS_IMAGE)
            return fail(b, ISEG_STATUS_EFORMAT,
                        "metadata iseg.bn_stats: expected \"running\" or \"image\", got '%s'", v);
        m->bn_stats = s;
    }
    if ((v = iseg_weights_metadata(w, "iseg.anchor_sizes"))) {
        if (parse_list(v, x, MRCNN_N_LEVELS) != MRCNN_N_LEVELS)
            return fail(b, ISEG_STATUS_EFORMAT, "metadata iseg.anchor_sizes: expected 5 sizes");
        for (int i = 0; i < MRCNN_N_LEVELS; i++) {
            if (!(x[i] > 0 && x[i] < 1e5))
                return fail(b, ISEG_STATUS_EFORMAT, "metadata iseg.anchor_sizes: bad size");
            m->cfg.anchor_sizes[i] = (float)x[i];
        }
    }
    struct { const char *key; int *dst; int lo, hi; } ints[] = {
        {"iseg.min_size", &m->infer.min_size, 1, 16384},
        {"iseg.max_size", &m->infer.max_size, 1, 16384},
        {"iseg.detections_per_img", &m->infer.detections_per_img, 0, 100000}};
    for (size_t i = 0; i < sizeof(ints) / sizeof(*ints); i++)
        if ((v = iseg_weights_metadata(w, ints[i].key))) {
            if (parse_list(v, x, 1) != 1 || x[0] < ints[i].lo || x[0] > ints[i].hi)
                return fail(b, ISEG_STATUS_EFORMAT, "metadata %s: bad value '%s'", ints[i].key, v);
            *ints[i].dst = (int)x[0];
        }
    if ((v = iseg_weights_metadata(w, "iseg.score_thresh"))) {
        if (parse_list(v, x, 1) != 1 || !(x[0] >= 0 && x[0] <= 1))
            return fail(b, ISEG_STATUS_EFORMAT, "metadata iseg.score_thresh: bad value '%s'", v);
        m->infer.score_thresh = (float)x[0];
    }
    int K = m->num_classes;
    if ((v = iseg_weights_metadata(w, "iseg.class_names"))) {
        m->class_names = iseg__calloc((size_t)K, sizeof(char *));
        if (!m->class_names) return fail(b, ISEG_STATUS_ENOMEM, "out of memory");
        const char *p = v;
        for (int k = 0; k < K; k++) {
            const char *c = strchr(p, ',');
            size_t len = c ? (size_t)(c - p) : strlen(p);
            if (!*p && !c)
                return fail(b, ISEG_STATUS_EFORMAT, "metadata iseg.class_names: %d names for %d "
                            "classes", k, K);
            m->class_names[k] = iseg__malloc(len + 1);
            if (!m->class_names[k]) return fail(b, ISEG_STATUS_ENOMEM, "out of memory");
            memcpy(m->class_names[k], p, len);
            m->class_names[k][len] = '\0';
            p = c ? c + 1 : p + len;
        }
    }
    if ((v = iseg_weights_metadata(w, "iseg.category_ids"))) {
        m->category_ids = iseg__calloc((size_t)K, sizeof(int64_t));
        if (!m->category_ids) return fail(b, ISEG_STATUS_ENOMEM, "out of memory");
        const char *p = v;
        for (int k = 0; k < K; k++) {
            char *end;
            long long id = strtoll(p, &end, 10);
            if (end == p || (*end && *end != ','))
                return fail(b, ISEG_STATUS_EFORMAT, "metadata iseg.category_ids: bad list");
            m->category_ids[k] = id;
            p = *end ? end + 1 : end;
        }
    }
    return ISEG_STATUS_OK;
}

const char *iseg_model_class_name(const iseg_model_t m, int label) {
    return m->class_names && label >= 0 && label < m->num_classes ? m->class_names[label] : NULL;
}

int64_t iseg_model_category_id(const iseg_model_t m, int label) {
    return m->category_ids && label >= 0 && label < m->num_classes ? m->category_ids[label]
                                                                   : label;
}

struct iseg_infer_params iseg_model_infer_params(const iseg_model_t m) { return m->infer; }

static enum iseg_status init_from_weights(iseg_model_t *out, const iseg_weights_t w,
                                          struct iseg_model_params p, const char *path,
                                          char *err, size_t errlen) {
    *out = NULL;
    if (err && errlen) err[0] = '\0';
    struct binder b = {.w = w, .prefix = "", .err = err, .errlen = errlen, .path = path};
    if (p.arch < 0 || p.arch >= ISEG_ARCH_COUNT)
        return fail(&b, ISEG_STATUS_EINVAL, "unknown architecture %d", (int)p.arch);
    if (p.bn_stats < 0 || p.bn_stats >= ISEG_BN_STATS_COUNT)
        return fail(&b, ISEG_STATUS_EINVAL, "unknown batch-norm statistics %d", (int)p.bn_stats);
    if (p.precision < 0 || p.precision >= ISEG_PRECISION_COUNT)
        return fail(&b, ISEG_STATUS_EINVAL, "unknown precision %d", (int)p.precision);
    b.prec = p.precision;
    b.n = iseg_weights_count(w);
    if (!iseg_weights_find(w, "backbone.body.conv1.weight")) {
        static const char *const prefixes[] = {"model.", "state_dict.", "module."};
        for (size_t i = 0; i < sizeof(prefixes) / sizeof(*prefixes); i++) {
            char name[64];
            snprintf(name, sizeof(name), "%sbackbone.body.conv1.weight", prefixes[i]);
            if (iseg_weights_find(w, name)) b.prefix = prefixes[i];
        }
    }
    if (!peek(&b, "backbone.body.conv1.weight") ||
        (!peek(&b, "roi_heads.box_head.fc6.weight") && !peek(&b, "roi_heads.box_head.0.0.weight")))
        return fail(&b, ISEG_STATUS_EFORMAT,
                    "not a Mask R-CNN state dict (no backbone.body.conv1.weight or box head; "
                    "%zu tensors)", b.n);
    const struct iseg_weight *cls = peek(&b, "roi_heads.box_predictor.cls_score.weight");
    if (!cls || cls->ndim != 2 || cls->shape[0] < 2 || cls->shape[0] > 100000)
        return fail(&b, ISEG_STATUS_EFORMAT,
                    "roi_heads.box_predictor.cls_score.weight: missing or not (K, representation)");
    int K = (int)cls->shape[0];
    iseg_model_t m = iseg__calloc(1, sizeof(*m));
    b.used = iseg__calloc(b.n ? b.n : 1, sizeof(bool));
    if (!m || !b.used) {
        iseg__free(m);
        iseg__free(b.used);
        return fail(&b, ISEG_STATUS_ENOMEM, "out of memory");
    }
    m->num_classes = K;
    enum iseg_status st = ISEG_STATUS_OK;
    enum iseg_arch arch = p.arch;
    if (arch == ISEG_ARCH_MASKRCNN_R50_FPN || arch == ISEG_ARCH_MASKRCNN_R50_FPN_V2) {
        cfg_r50(&m->cfg, arch == ISEG_ARCH_MASKRCNN_R50_FPN_V2, K);
    } else {
        if ((st = cfg_infer(&b, &m->cfg, K))) goto fail;
        if (arch == ISEG_ARCH_AUTO)
            arch = is_r50(&m->cfg) ? (m->cfg.head_bn ? ISEG_ARCH_MASKRCNN_R50_FPN_V2
                                                     : ISEG_ARCH_MASKRCNN_R50_FPN)
                                   : ISEG_ARCH_MASKRCNN_RESNET_FPN;
    }
    m->arch = arch;
    if ((st = read_metadata(&b, m))) goto fail;
    if (p.bn_stats != ISEG_BN_STATS_AUTO) m->bn_stats = p.bn_stats;
    b.image_bn = m->bn_stats == ISEG_BN_STATS_IMAGE;
    m->precision = p.precision;
    if ((st = bind_backbone(&b, m)) || (st = bind_fpn(&b, m)) || (st = bind_rpn(&b, m)) ||
        (st = bind_heads(&b, m)))
        goto fail;
    size_t plen = strlen(b.prefix);
    for (size_t i = 0; i < b.n; i++) {
        const struct iseg_weight *t = iseg_weights_at(w, i);
        if (b.used[i] || strncmp(t->name, b.prefix, plen) != 0) continue;
        const char *nb = strstr(t->name, "num_batches_tracked");
        if (nb && nb[strlen("num_batches_tracked")] == '\0') continue;
        char got[96];
        shape_str(got, sizeof(got), t->ndim, t->shape);
        st = fail(&b, ISEG_STATUS_EFORMAT, "%s: unexpected tensor %s for %s", t->name, got,
                  iseg_arch_name(arch));
        goto fail;
    }
    iseg__free(b.used);
    *out = m;
    return ISEG_STATUS_OK;
fail:
    iseg__free(b.used);
    iseg_model_free(m);
    return st;
}

enum iseg_status iseg_model_init_from_weights(iseg_model_t *m, const iseg_weights_t w,
                                              struct iseg_model_params p, char *err,
                                              size_t errlen) {
    ISEG_ASSERT(m && w);
    return init_from_weights(m, w, p, NULL, err, errlen);
}

enum iseg_status iseg_model_init_from_file(iseg_model_t *m, const char *path,
                                           struct iseg_model_params p, char *err,
                                           size_t errlen) {
    ISEG_ASSERT(m && path);
    *m = NULL;
    iseg_weights_t w = NULL;
    enum iseg_status st = iseg_weights_load(&w, path, err, errlen);
    if (st) return st;
    st = init_from_weights(m, w, p, path, err, errlen);
    iseg_weights_free(w);
    return st;
}

enum iseg_status mrcnn_cfg_read(const iseg_weights_t w, struct mrcnn_cfg *g,
                                struct iseg_infer_params *infer, char *err, size_t errlen) {
    struct binder b = {.w = w, .prefix = "", .err = err, .errlen = errlen};
    b.n = iseg_weights_count(w);
    const struct iseg_weight *cls = peek(&b, "roi_heads.box_predictor.cls_score.weight");
    if (!peek(&b, "backbone.body.conv1.weight") || !cls || cls->ndim != 2 || cls->shape[0] < 2 ||
        cls->shape[0] > 100000)
        return fail(&b, ISEG_STATUS_EFORMAT,
                    "not a Mask R-CNN state dict (backbone.body.conv1.weight or "
                    "roi_heads.box_predictor.cls_score.weight missing or malformed)");
    iseg_model_t m = iseg__calloc(1, sizeof(*m));
    if (!m) return fail(&b, ISEG_STATUS_ENOMEM, "out of memory");
    m->num_classes = (int)cls->shape[0];
    enum iseg_status st = cfg_infer(&b, &m->cfg, m->num_classes);
    if (!st) st = read_metadata(&b, m);
    if (!st) {
        *g = m->cfg;
        if (infer) *infer = m->infer;
    }
    iseg_model_free(m);
    return st;
}
