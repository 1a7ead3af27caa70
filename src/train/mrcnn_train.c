/* mrcnn_train.c - Mask R-CNN training: parameters with torchvision's names, the training-mode
 * forward pass with saved activations, the five losses, and the backward pass.
 * ref: torchvision/models/detection/{transform,rpn,roi_heads}.py, ops/poolers.py (0.14). */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "iseg/loss.h"
#include "iseg/targets.h"
#include "iseg/train.h"
#include "models/maskrcnn_impl.h"
#include "nn/nn_impl.h" /* iseg__conv2d_init_ex */

#define TR_MAX_TENSORS 1536
#define TR_NAME_LEN 96
#define TR_BN_EPS 1e-5f
#define TR_BN_MOMENTUM 0.1f
#define TR_N_LOSSES 5

/* A named tensor: a parameter (g != NULL) or a buffer (batch-norm running statistics). */
struct tp {
    char    name[TR_NAME_LEN];
    int     ndim;
    int64_t shape[4];
    size_t  n;
    float  *w, *g;
};

/* A convolution with its optional bias and batch norm (affine + running statistics). The
 * weights are also packed into an inference convolution (fwd; Winograd where it applies),
 * repacked at every step; for stride-1 convolutions, adj is the convolution whose forward is
 * this one's backward-data (weights transposed and flipped, padding k - 1 - pad). */
struct tconv {
    struct iseg_conv2d_desc d;
    struct tp *w, *b;
    struct tp *gamma, *beta, *rmean, *rvar;
    iseg_conv2d_t fwd, adj;
    float        *adj_w; /* (cin, cout, kh, kw) */
};

struct tlin {
    int        in, out;
    struct tp *w, *b;
};

/* A residual block: c[0..nc-1] (basic: 2, bottleneck: 3) and an optional downsample. */
struct tblock {
    struct tconv c[3];
    int          nc;
    struct tconv down;
    bool         has_down;
};

/* What the forward pass keeps of one application of a tconv for its backward pass. */
struct cu {
    const struct tconv *L;
    const float        *x;      /* input (B, cin, h, w) */
    float              *z;      /* conv output before the norm (BN layers only) */
    float              *y;      /* output (B, cout, oh, ow) after norm, residual and ReLU */
    float              *mean;   /* batch mean (training BN) */
    float              *invstd; /* batch 1/std (training BN) or the frozen scale */
    int                 B, h, w, oh, ow;
    bool                relu;
};

/* One FPN level: data (F, H, W). */
struct lvl {
    float *d;
    int    H, W;
};

/* The activations of one step. */
struct step {
    struct cu  stem;
    float     *pool;
    int        pool_h, pool_w;
    struct cu  blk[MRCNN_MAX_BLOCKS][4]; /* c[0..2], down */
    struct lvl C[4];
    int        Cch[4];
    struct cu  inner[4], layer[4];
    float     *innerv[4]; /* top-down sums (level 3: the lateral itself) */
    struct lvl P[MRCNN_N_LEVELS];
    struct cu  rh[MRCNN_N_LEVELS], rc[MRCNN_N_LEVELS], rb[MRCNN_N_LEVELS];
    struct cu  mc[8], ml;
};

struct iseg_trainer {
    struct iseg_train_arch     ar;
    struct iseg_trainer_params p;
    iseg_engine_t              e;
    iseg_arena_t               a;
    struct iseg_rng            rng;
    struct tp                 *t;
    size_t                     nt;
    struct iseg_param         *params;
    size_t                     np;
    bool                       failed; /* registration ran out of room or memory */
    struct tconv               conv1;
    struct tblock              blocks[MRCNN_MAX_BLOCKS];
    int                        n_blocks;
    struct tconv               fpn_inner[4], fpn_layer[4];
    struct tconv               rpn_conv, rpn_cls, rpn_box;
    struct tlin                fc6, fc7, cls, box;
    struct tconv               mask_conv[8];
    int                        n_mask_conv;
    struct iseg_deconv2d_desc  dd;
    struct tp                 *dw, *db;
    struct tconv               mask_logits;
    struct tp                 *log_vars;
    struct step                s;
    char                       err[256];
};

static enum iseg_status fail(struct iseg_trainer *t, char *err, size_t errlen,
                             enum iseg_status st, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static enum iseg_status fail(struct iseg_trainer *t, char *err, size_t errlen,
                             enum iseg_status st, const char *fmt, ...) {
    char buf[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    if (t) snprintf(t->err, sizeof(t->err), "%s", buf);
    if (err && errlen) snprintf(err, errlen, "%s", buf);
    return st;
}

/* ---- names and defaults --------------------------------------------------------------------- */

static const char *const mask_loss_names[ISEG_MASK_LOSS_COUNT] = {"bce", "dice", "jaccard",
                                                                  "focal", "jaccard_dice"};

const char *iseg_mask_loss_name(enum iseg_mask_loss l) {
    return l >= 0 && l < ISEG_MASK_LOSS_COUNT ? mask_loss_names[l] : NULL;
}

enum iseg_mask_loss iseg_mask_loss_from_name(const char *name) {
    for (int i = 0; i < ISEG_MASK_LOSS_COUNT; i++)
        if (name && !strcmp(name, mask_loss_names[i])) return (enum iseg_mask_loss)i;
    return ISEG_MASK_LOSS_COUNT;
}

struct iseg_train_arch iseg_train_arch_compact(int num_classes) {
    struct iseg_train_arch a;
    memset(&a, 0, sizeof(a));
    a.num_classes = num_classes;
    a.bottleneck = false;
    for (int L = 0; L < 4; L++) a.n_blocks[L] = 2;
    a.width = 32;
    a.fpn = 128;
    a.rep = 256;
    a.mask_ch = 128;
    for (int l = 0; l < MRCNN_N_LEVELS; l++) a.anchor_sizes[l] = (float)(16 << l);
    return a;
}

struct iseg_trainer_params iseg_trainer_default_params(void) {
    struct iseg_trainer_params p;
    memset(&p, 0, sizeof(p));
    p.min_size = 512;
    p.max_size = 1024;
    p.rpn_batch = 256;
    p.rpn_pos_fraction = 0.5;
    p.rpn_pre_nms = 2000;
    p.rpn_post_nms = 2000;
    p.rpn_nms_thresh = 0.7f;
    p.box_batch = 512;
    p.box_pos_fraction = 0.25;
    p.mask_loss = ISEG_MASK_LOSS_BCE;
    return p;
}

/* ---- parameter registry --------------------------------------------------------------------- */

static struct tp *add_t(struct iseg_trainer *t, bool param, int ndim, const int64_t *shape,
                        const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static struct tp *add_t(struct iseg_trainer *t, bool param, int ndim, const int64_t *shape,
                        const char *fmt, ...) {
    if (t->failed || t->nt == TR_MAX_TENSORS) {
        t->failed = true;
        return NULL;
    }
    struct tp *p = &t->t[t->nt];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->name, sizeof(p->name), fmt, ap);
    va_end(ap);
    p->ndim = ndim;
    p->n = 1;
    for (int i = 0; i < ndim; i++) {
        p->shape[i] = shape[i];
        p->n *= (size_t)shape[i];
    }
    p->w = iseg__calloc(p->n, sizeof(float));
    p->g = param ? iseg__calloc(p->n, sizeof(float)) : NULL;
    if (!p->w || (param && !p->g)) {
        iseg__free(p->w);
        iseg__free(p->g);
        t->failed = true;
        return NULL;
    }
    t->nt++;
    return p;
}

/* name.weight (+ name.bias), and bn.{weight,bias,running_mean,running_var} when bn != NULL */
static void add_conv(struct iseg_trainer *t, struct tconv *c, struct iseg_conv2d_desc d,
                     const char *name, bool bias, const char *bn) {
    memset(c, 0, sizeof(*c));
    c->d = d;
    int64_t ws[4] = {d.cout, d.cin / d.groups, d.kh, d.kw}, bs[1] = {d.cout};
    c->w = add_t(t, true, 4, ws, "%s.weight", name);
    if (bias) c->b = add_t(t, true, 1, bs, "%s.bias", name);
    if (bn) {
        bool learn = !t->p.frozen_bn;
        c->gamma = add_t(t, learn, 1, bs, "%s.weight", bn);
        c->beta = add_t(t, learn, 1, bs, "%s.bias", bn);
        c->rmean = add_t(t, false, 1, bs, "%s.running_mean", bn);
        c->rvar = add_t(t, false, 1, bs, "%s.running_var", bn);
    }
}

static void add_lin(struct iseg_trainer *t, struct tlin *l, int in, int out, const char *name) {
    int64_t ws[2] = {out, in}, bs[1] = {out};
    l->in = in;
    l->out = out;
    l->w = add_t(t, true, 2, ws, "%s.weight", name);
    l->b = add_t(t, true, 1, bs, "%s.bias", name);
}

static void build(struct iseg_trainer *t) {
    const struct iseg_train_arch *a = &t->ar;
    const int F = a->fpn, K = a->num_classes, A = MRCNN_N_ANCHORS;
    add_conv(t, &t->conv1, mrcnn_conv_desc(3, a->width, 7, 2, 3), "backbone.body.conv1", false,
             "backbone.body.bn1");
    int cin = a->width, bi = 0;
    for (int L = 0; L < 4; L++) {
        int width = a->width << L, cout = a->bottleneck ? 4 * width : width;
        for (int k = 0; k < a->n_blocks[L]; k++, bi++) {
            struct tblock *blk = &t->blocks[bi];
            int stride = (k == 0 && L > 0) ? 2 : 1;
            char c[TR_NAME_LEN], n[TR_NAME_LEN];
            blk->nc = a->bottleneck ? 3 : 2;
            for (int j = 0; j < blk->nc; j++) {
                struct iseg_conv2d_desc d;
                if (a->bottleneck)
                    d = j == 0   ? mrcnn_conv_desc(cin, width, 1, 1, 0)
                        : j == 1 ? mrcnn_conv_desc(width, width, 3, stride, 1)
                                 : mrcnn_conv_desc(width, cout, 1, 1, 0);
                else
                    d = j == 0 ? mrcnn_conv_desc(cin, cout, 3, stride, 1)
                               : mrcnn_conv_desc(cout, cout, 3, 1, 1);
                snprintf(c, sizeof(c), "backbone.body.layer%d.%d.conv%d", L + 1, k, j + 1);
                snprintf(n, sizeof(n), "backbone.body.layer%d.%d.bn%d", L + 1, k, j + 1);
                add_conv(t, &blk->c[j], d, c, false, n);
            }
            blk->has_down = k == 0 && (stride != 1 || cin != cout);
            if (blk->has_down) {
                snprintf(c, sizeof(c), "backbone.body.layer%d.0.downsample.0", L + 1);
                snprintf(n, sizeof(n), "backbone.body.layer%d.0.downsample.1", L + 1);
                add_conv(t, &blk->down, mrcnn_conv_desc(cin, cout, 1, stride, 0), c, false, n);
            }
            cin = cout;
        }
    }
    t->n_blocks = bi;
    for (int i = 0; i < 4; i++) {
        char c[TR_NAME_LEN];
        int out = a->bottleneck ? 4 * (a->width << i) : a->width << i;
        snprintf(c, sizeof(c), "backbone.fpn.inner_blocks.%d.0", i);
        add_conv(t, &t->fpn_inner[i], mrcnn_conv_desc(out, F, 1, 1, 0), c, true, NULL);
        snprintf(c, sizeof(c), "backbone.fpn.layer_blocks.%d.0", i);
        add_conv(t, &t->fpn_layer[i], mrcnn_conv_desc(F, F, 3, 1, 1), c, true, NULL);
    }
    add_conv(t, &t->rpn_conv, mrcnn_conv_desc(F, F, 3, 1, 1), "rpn.head.conv.0.0", true, NULL);
    add_conv(t, &t->rpn_cls, mrcnn_conv_desc(F, A, 1, 1, 0), "rpn.head.cls_logits", true, NULL);
    add_conv(t, &t->rpn_box, mrcnn_conv_desc(F, 4 * A, 1, 1, 0), "rpn.head.bbox_pred", true, NULL);
    add_lin(t, &t->fc6, F * 49, a->rep, "roi_heads.box_head.fc6");
    add_lin(t, &t->fc7, a->rep, a->rep, "roi_heads.box_head.fc7");
    add_lin(t, &t->cls, a->rep, K, "roi_heads.box_predictor.cls_score");
    add_lin(t, &t->box, a->rep, 4 * K, "roi_heads.box_predictor.bbox_pred");
    t->n_mask_conv = 4;
    for (int i = 0; i < t->n_mask_conv; i++) {
        char c[TR_NAME_LEN];
        snprintf(c, sizeof(c), "roi_heads.mask_head.%d.0", i);
        add_conv(t, &t->mask_conv[i], mrcnn_conv_desc(i ? a->mask_ch : F, a->mask_ch, 3, 1, 1), c,
                 true, NULL);
    }
    struct iseg_deconv2d_desc dd = {a->mask_ch, a->mask_ch, 2, 2, 2, 2, 0, 0, 0, 0, 1, 1, 1};
    t->dd = dd;
    int64_t dws[4] = {a->mask_ch, a->mask_ch, 2, 2}, dbs[1] = {a->mask_ch};
    t->dw = add_t(t, true, 4, dws, "roi_heads.mask_predictor.conv5_mask.weight");
    t->db = add_t(t, true, 1, dbs, "roi_heads.mask_predictor.conv5_mask.bias");
    add_conv(t, &t->mask_logits, mrcnn_conv_desc(a->mask_ch, K, 1, 1, 0),
             "roi_heads.mask_predictor.mask_fcn_logits", true, NULL);
    if (t->p.uncertainty_weighting) {
        int64_t s[1] = {TR_N_LOSSES};
        t->log_vars = add_t(t, true, 1, s, "iseg.loss_log_vars");
    }
}

/* ---- initialisation (torchvision's) --------------------------------------------------------- */

static double randn(struct iseg_rng *r) {
    double u1 = iseg_rng_uniform(r), u2 = iseg_rng_uniform(r);
    if (u1 < 1e-300) u1 = 1e-300;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

static void fill_normal(struct tp *p, double std, struct iseg_rng *r) {
    for (size_t i = 0; i < p->n; i++) p->w[i] = (float)(std * randn(r));
}

static void fill_uniform(struct tp *p, double bound, struct iseg_rng *r) {
    for (size_t i = 0; i < p->n; i++) p->w[i] = (float)(bound * (2.0 * iseg_rng_uniform(r) - 1.0));
}

static void fill_const(struct tp *p, float v) {
    if (p)
        for (size_t i = 0; i < p->n; i++) p->w[i] = v;
}

/* kaiming_normal_(mode="fan_out", nonlinearity="relu"): std sqrt(2 / fan_out) */
static void kaiming_fan_out(struct tp *p, struct iseg_rng *r) {
    double fan_out = (double)p->shape[0] * (double)(p->n / (size_t)(p->shape[0] * p->shape[1]));
    fill_normal(p, sqrt(2.0 / fan_out), r);
}

static void init_bn_conv(struct tconv *c, struct iseg_rng *r) {
    kaiming_fan_out(c->w, r);
    fill_const(c->gamma, 1.0f);
    fill_const(c->beta, 0.0f);
    fill_const(c->rmean, 0.0f);
    fill_const(c->rvar, 1.0f);
}

/* nn.Linear's default: kaiming_uniform_(a = sqrt(5)) = U(+-1/sqrt(fan_in)), bias likewise */
static void init_linear(struct tlin *l, struct iseg_rng *r) {
    double bound = 1.0 / sqrt((double)l->in);
    fill_uniform(l->w, bound, r);
    fill_uniform(l->b, bound, r);
}

static void init_all(struct iseg_trainer *t) {
    struct iseg_rng *r = &t->rng;
    init_bn_conv(&t->conv1, r);
    for (int b = 0; b < t->n_blocks; b++) {
        for (int j = 0; j < t->blocks[b].nc; j++) init_bn_conv(&t->blocks[b].c[j], r);
        if (t->blocks[b].has_down) init_bn_conv(&t->blocks[b].down, r);
    }
    for (int i = 0; i < 4; i++) { /* kaiming_uniform_(a = 1): U(+-sqrt(3 / fan_in)) */
        struct tconv *c[2] = {&t->fpn_inner[i], &t->fpn_layer[i]};
        for (int j = 0; j < 2; j++) {
            double fan_in = (double)(c[j]->w->n / (size_t)c[j]->w->shape[0]);
            fill_uniform(c[j]->w, sqrt(3.0 / fan_in), r);
            fill_const(c[j]->b, 0.0f);
        }
    }
    const struct tconv *rpn[3] = {&t->rpn_conv, &t->rpn_cls, &t->rpn_box};
    for (int i = 0; i < 3; i++) {
        fill_normal(rpn[i]->w, 0.01, r);
        fill_const(rpn[i]->b, 0.0f);
    }
    init_linear(&t->fc6, r);
    init_linear(&t->fc7, r);
    init_linear(&t->cls, r);
    init_linear(&t->box, r);
    for (int i = 0; i < t->n_mask_conv; i++) {
        kaiming_fan_out(t->mask_conv[i].w, r);
        fill_const(t->mask_conv[i].b, 0.0f);
    }
    kaiming_fan_out(t->dw, r);
    fill_const(t->db, 0.0f);
    kaiming_fan_out(t->mask_logits.w, r);
    fill_const(t->mask_logits.b, 0.0f);
    fill_const(t->log_vars, 0.0f);
}

/* ---- creation ------------------------------------------------------------------------------- */

static bool arch_ok(const struct iseg_train_arch *a) {
    if (a->num_classes < 2 || a->num_classes > 100000 || a->width < 1 || a->width > 4096 ||
        a->fpn < 1 || a->fpn > 4096 || a->rep < 1 || a->rep > 65536 || a->mask_ch < 1 ||
        a->mask_ch > 4096)
        return false;
    int total = 0;
    for (int L = 0; L < 4; L++) {
        if (a->n_blocks[L] < 1) return false;
        total += a->n_blocks[L];
    }
    for (int l = 0; l < MRCNN_N_LEVELS; l++)
        if (!(a->anchor_sizes[l] > 0 && a->anchor_sizes[l] < 1e5f)) return false;
    return total <= MRCNN_MAX_BLOCKS;
}

static bool params_ok(const struct iseg_trainer_params *p) {
    return p->min_size >= 32 && p->max_size >= p->min_size && p->max_size <= 4096 &&
           p->crop_size >= 0 && p->crop_size <= 16384 &&
           p->rpn_batch >= 1 && p->rpn_pos_fraction > 0 && p->rpn_pos_fraction <= 1 &&
           p->rpn_pre_nms >= 1 && p->rpn_post_nms >= 1 && p->rpn_nms_thresh >= 0 &&
           p->box_batch >= 1 && p->box_pos_fraction > 0 && p->box_pos_fraction <= 1 &&
           p->mask_loss >= 0 && p->mask_loss < ISEG_MASK_LOSS_COUNT;
}

static size_t tconv_list(struct iseg_trainer *t, struct tconv **out) {
    size_t n = 0;
    out[n++] = &t->conv1;
    for (int b = 0; b < t->n_blocks; b++) {
        for (int j = 0; j < t->blocks[b].nc; j++) out[n++] = &t->blocks[b].c[j];
        if (t->blocks[b].has_down) out[n++] = &t->blocks[b].down;
    }
    for (int i = 0; i < 4; i++) {
        out[n++] = &t->fpn_inner[i];
        out[n++] = &t->fpn_layer[i];
    }
    out[n++] = &t->rpn_conv;
    out[n++] = &t->rpn_cls;
    out[n++] = &t->rpn_box;
    for (int i = 0; i < t->n_mask_conv; i++) out[n++] = &t->mask_conv[i];
    out[n++] = &t->mask_logits;
    return n;
}

#define TR_MAX_CONVS (4 * MRCNN_MAX_BLOCKS + 32)

/* Pack the current weights into the inference convolutions (made at the first step). */
static enum iseg_status pack_convs(struct iseg_trainer *t) {
    struct tconv *list[TR_MAX_CONVS];
    size_t n = tconv_list(t, list);
    for (size_t i = 0; i < n; i++) {
        struct tconv *c = list[i];
        const float *b = c->b ? c->b->w : NULL;
        /* Winograd up to 128 x 128 channels: beyond, the maps are small (stride 16, 32) and
         * transforming the weights at every step costs more than the multiplies it saves */
        bool wino = (long)c->d.cin * c->d.cout <= 128L * 128;
        enum iseg_status st = c->fwd ? iseg_conv2d_set_weights(t->e, c->fwd, c->w->w, b)
                                     : iseg__conv2d_init_ex(&c->fwd, &c->d, c->w->w, b, wino);
        if (st) return st;
        const struct iseg_conv2d_desc *d = &c->d;
        if (d->stride_h != 1 || d->stride_w != 1 || d->dil_h != 1 || d->dil_w != 1 ||
            d->groups != 1 || d->pad_h > d->kh - 1 || d->pad_w > d->kw - 1)
            continue;
        if (!c->adj_w && !(c->adj_w = iseg__malloc_array(c->w->n, sizeof(float))))
            return ISEG_STATUS_ENOMEM;
        const int kh = d->kh, kw = d->kw;
        for (int co = 0; co < d->cout; co++)
            for (int ci = 0; ci < d->cin; ci++)
                for (int y = 0; y < kh; y++)
                    for (int x = 0; x < kw; x++)
                        c->adj_w[(((size_t)ci * d->cout + co) * kh + kh - 1 - y) * kw + kw - 1 -
                                 x] = c->w->w[(((size_t)co * d->cin + ci) * kh + y) * kw + x];
        if (c->adj) {
            st = iseg_conv2d_set_weights(t->e, c->adj, c->adj_w, NULL);
        } else {
            struct iseg_conv2d_desc a = *d;
            a.cin = d->cout;
            a.cout = d->cin;
            a.pad_h = kh - 1 - d->pad_h;
            a.pad_w = kw - 1 - d->pad_w;
            st = iseg__conv2d_init_ex(&c->adj, &a, c->adj_w, NULL, wino);
        }
        if (st) return st;
    }
    return ISEG_STATUS_OK;
}

void iseg_trainer_free(iseg_trainer_t t) {
    if (!t) return;
    struct tconv *list[TR_MAX_CONVS];
    size_t nc = tconv_list(t, list);
    for (size_t i = 0; i < nc; i++) {
        iseg_conv2d_free(list[i]->fwd);
        iseg_conv2d_free(list[i]->adj);
        iseg__free(list[i]->adj_w);
    }
    for (size_t i = 0; i < t->nt; i++) {
        iseg__free(t->t[i].w);
        iseg__free(t->t[i].g);
    }
    iseg__free(t->t);
    iseg__free(t->params);
    iseg_engine_free(t->e);
    iseg_arena_free(t->a);
    iseg__free(t);
}

enum iseg_status iseg_trainer_new(iseg_trainer_t *out, const struct iseg_train_arch *arch,
                                  const struct iseg_trainer_params *p, uint64_t seed, char *err,
                                  size_t errlen) {
    ISEG_ASSERT(out && arch && p);
    *out = NULL;
    if (!arch_ok(arch)) return fail(NULL, err, errlen, ISEG_STATUS_EINVAL, "bad architecture");
    if (!params_ok(p))
        return fail(NULL, err, errlen, ISEG_STATUS_EINVAL, "bad training parameters");
    struct iseg_trainer *t = iseg__calloc(1, sizeof(*t));
    if (!t) return fail(NULL, err, errlen, ISEG_STATUS_ENOMEM, "out of memory");
    t->ar = *arch;
    t->p = *p;
    iseg_rng_seed(&t->rng, seed);
    t->t = iseg__calloc(TR_MAX_TENSORS, sizeof(struct tp));
    enum iseg_status st = t->t ? ISEG_STATUS_OK : ISEG_STATUS_ENOMEM;
    if (!st) st = iseg_engine_init(&t->e, p->n_threads);
    if (!st) st = iseg_arena_init(&t->a);
    if (!st) {
        build(t);
        if (t->failed) st = ISEG_STATUS_ENOMEM;
    }
    if (!st) {
        for (size_t i = 0; i < t->nt; i++) t->np += t->t[i].g != NULL;
        t->params = iseg__calloc(t->np ? t->np : 1, sizeof(*t->params));
        if (!t->params) st = ISEG_STATUS_ENOMEM;
    }
    if (st) {
        iseg_trainer_free(t);
        return fail(NULL, err, errlen, st, "cannot create the trainer: %s", iseg_status_str(st));
    }
    for (size_t i = 0, k = 0; i < t->nt; i++)
        if (t->t[i].g) t->params[k++] = (struct iseg_param){t->t[i].w, t->t[i].g, t->t[i].n};
    init_all(t);
    *out = t;
    return ISEG_STATUS_OK;
}

/* The pre-Conv2dNormActivation name of a tensor, or "" when it has none. */
static void legacy_name(const char *name, char *out, size_t n) {
    int i, k = 0;
    char rest[32];
    out[0] = '\0';
    if (sscanf(name, "backbone.fpn.inner_blocks.%d.0.%31s%n", &i, rest, &k) == 2 && k)
        snprintf(out, n, "backbone.fpn.inner_blocks.%d.%s", i, rest);
    else if (sscanf(name, "backbone.fpn.layer_blocks.%d.0.%31s%n", &i, rest, &k) == 2 && k)
        snprintf(out, n, "backbone.fpn.layer_blocks.%d.%s", i, rest);
    else if (sscanf(name, "rpn.head.conv.0.0.%31s%n", rest, &k) == 1 && k)
        snprintf(out, n, "rpn.head.conv.%s", rest);
    else if (sscanf(name, "roi_heads.mask_head.%d.0.%31s%n", &i, rest, &k) == 2 && k)
        snprintf(out, n, "roi_heads.mask_head.mask_fcn%d.%s", i + 1, rest);
}

static bool class_specific(const char *name) {
    return !strncmp(name, "roi_heads.box_predictor.", 24) ||
           !strncmp(name, "roi_heads.mask_predictor.mask_fcn_logits.", 41);
}

static bool ends_with(const char *s, const char *suffix) {
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && !strcmp(s + a - b, suffix);
}

enum iseg_status iseg_trainer_from_weights(iseg_trainer_t *out, const iseg_weights_t w,
                                           int num_classes, const struct iseg_trainer_params *p,
                                           uint64_t seed, size_t *n_missing, char *err,
                                           size_t errlen) {
    ISEG_ASSERT(out && w && p);
    *out = NULL;
    struct mrcnn_cfg g;
    struct iseg_infer_params ip;
    enum iseg_status st = mrcnn_cfg_read(w, &g, &ip, err, errlen);
    if (st) return st;
    if (g.head_bn || g.rpn_convs != 1 || g.box_convs || g.box_fcs != 2 || g.mask_convs != 4)
        return fail(NULL, err, errlen, ISEG_STATUS_EINVAL,
                    "training supports ResNet-FPN Mask R-CNN with v1 heads (this state dict has "
                    "%s heads)", g.head_bn ? "v2" : "other");
    struct iseg_train_arch a;
    memset(&a, 0, sizeof(a));
    a.num_classes = num_classes > 0 ? num_classes : g.num_classes;
    a.bottleneck = g.bottleneck;
    a.width = g.stem;
    for (int L = 0; L < 4; L++) {
        a.n_blocks[L] = g.n_blocks[L];
        int want = a.bottleneck ? 4 * (g.stem << L) : g.stem << L;
        if (g.out[L] != want || (a.bottleneck && g.width[L] != g.stem << L))
            return fail(NULL, err, errlen, ISEG_STATUS_EINVAL,
                        "layer%d: widths %d/%d do not follow the stem's %d (unsupported)", L + 1,
                        g.width[L], g.out[L], g.stem);
    }
    a.fpn = g.fpn;
    a.rep = g.rep;
    a.mask_ch = g.mask_ch;
    memcpy(a.anchor_sizes, g.anchor_sizes, sizeof(a.anchor_sizes));
    iseg_trainer_t t;
    if ((st = iseg_trainer_new(&t, &a, p, seed, err, errlen))) return st;
    bool reinit = num_classes > 0 && num_classes != g.num_classes;
    size_t nw = iseg_weights_count(w), missing = 0;
    bool *used = iseg__calloc(nw ? nw : 1, sizeof(bool));
    if (!used) {
        iseg_trainer_free(t);
        return fail(NULL, err, errlen, ISEG_STATUS_ENOMEM, "out of memory");
    }
    for (size_t i = 0; i < t->nt && !st; i++) {
        struct tp *q = &t->t[i];
        const struct iseg_weight *x = iseg_weights_find(w, q->name);
        if (!x) {
            char alt[TR_NAME_LEN];
            legacy_name(q->name, alt, sizeof(alt));
            if (alt[0]) x = iseg_weights_find(w, alt);
        }
        if (x) used[x - iseg_weights_at(w, 0)] = true;
        if (reinit && class_specific(q->name)) continue;
        if (!x) {
            missing++;
            continue;
        }
        bool same = x->ndim == q->ndim;
        for (int d = 0; same && d < q->ndim; d++) same = x->shape[d] == q->shape[d];
        if (!same)
            st = fail(t, err, errlen, ISEG_STATUS_EFORMAT, "%s: shape differs from the model's",
                      x->name);
        else if (iseg_weight_to_f32(q->w, x))
            st = fail(t, err, errlen, ISEG_STATUS_EFORMAT, "%s: not a floating-point tensor",
                      x->name);
    }
    for (size_t i = 0; i < nw && !st; i++) {
        const struct iseg_weight *x = iseg_weights_at(w, i);
        if (used[i] || ends_with(x->name, "num_batches_tracked") ||
            !strncmp(x->name, "opt.", 4) || !strncmp(x->name, "train.", 6))
            continue;
        st = fail(t, err, errlen, ISEG_STATUS_EFORMAT, "%s: unexpected tensor", x->name);
    }
    iseg__free(used);
    if (st) {
        iseg_trainer_free(t);
        return st;
    }
    if (n_missing) *n_missing = missing;
    *out = t;
    return ISEG_STATUS_OK;
}

struct iseg_train_arch iseg_trainer_arch(const iseg_trainer_t t) { return t->ar; }

const struct iseg_param *iseg_trainer_params(const iseg_trainer_t t, size_t *n) {
    *n = t->np;
    return t->params;
}

size_t iseg_trainer_tensor_count(const iseg_trainer_t t) { return t->nt; }

struct iseg_train_tensor iseg_trainer_tensor(const iseg_trainer_t t, size_t i) {
    ISEG_ASSERT(i < t->nt);
    const struct tp *q = &t->t[i];
    return (struct iseg_train_tensor){q->name, q->ndim, q->shape, q->w, q->g, q->n};
}

bool iseg_trainer_find(const iseg_trainer_t t, const char *name, struct iseg_train_tensor *out) {
    for (size_t i = 0; i < t->nt; i++)
        if (!strcmp(t->t[i].name, name)) {
            *out = iseg_trainer_tensor(t, i);
            return true;
        }
    return false;
}

void iseg_trainer_zero_grad(iseg_trainer_t t) {
    for (size_t i = 0; i < t->np; i++) memset(t->params[i].g, 0, t->params[i].n * sizeof(float));
}

const char *iseg_trainer_last_error(const iseg_trainer_t t) { return t->err; }

/* ---- layers: forward with saved activations, backward --------------------------------------- */

static float *A(struct iseg_trainer *t, size_t n) { return iseg_arena_alloc_f32(t->a, n ? n : 1); }

static float *A0(struct iseg_trainer *t, size_t n) {
    float *p = A(t, n);
    if (p) memset(p, 0, (n ? n : 1) * sizeof(float));
    return p;
}

static size_t cu_n(const struct cu *u) { return (size_t)u->B * u->L->d.cout * u->oh * u->ow; }

/* y = act(norm(conv(x)) + res) */
static bool cu_fwd(struct iseg_trainer *t, struct cu *u, const struct tconv *L, const float *x,
                   int B, int h, int w, const float *res, bool relu) {
    memset(u, 0, sizeof(*u));
    u->L = L;
    u->x = x;
    u->B = B;
    u->h = h;
    u->w = w;
    u->relu = relu;
    iseg_conv2d_out_hw(&L->d, h, w, &u->oh, &u->ow);
    size_t n = cu_n(u), HW = (size_t)u->oh * u->ow;
    int C = L->d.cout;
    float *z = A(t, n), *y = z;
    if (!z) return false;
    if (L->gamma) {
        y = A(t, n);
        u->mean = A(t, (size_t)C);
        u->invstd = A(t, (size_t)C);
        if (!y || !u->mean || !u->invstd) return false;
    }
    /* ReLU in the GEMM epilogue where nothing comes between the convolution and it */
    bool fused = relu && !L->gamma && !res;
    iseg_conv2d_forward(t->e, L->fwd, z, x, B, h, w, NULL, fused ? ISEG_ACT_RELU : ISEG_ACT_NONE);
    if (L->gamma && t->p.frozen_bn) {
        /* FrozenBatchNorm2d: scale = w * rsqrt(rv + eps), shift = b - rm * scale */
        for (int c = 0; c < C; c++) {
            float s = L->gamma->w[c] / sqrtf(L->rvar->w[c] + TR_BN_EPS);
            u->invstd[c] = s;
            u->mean[c] = L->beta->w[c] - L->rmean->w[c] * s;
        }
        for (int b = 0; b < B; b++)
            for (int c = 0; c < C; c++) {
                size_t o = ((size_t)b * C + c) * HW;
                for (size_t i = 0; i < HW; i++) y[o + i] = z[o + i] * u->invstd[c] + u->mean[c];
            }
    } else if (L->gamma) {
        iseg_batchnorm_train(y, u->mean, u->invstd, L->rmean->w, L->rvar->w, z, L->gamma->w,
                             L->beta->w, TR_BN_MOMENTUM, TR_BN_EPS, B, C, HW);
    }
    if (res) iseg_add(y, y, res, n);
    if (relu && !fused) iseg_relu(y, y, n);
    u->z = L->gamma ? z : NULL;
    u->y = y;
    return true;
}

/* dx (may be NULL) += d/dx, parameters' gradients +=, dres (may be NULL) += d/dres */
static bool cu_bwd(struct iseg_trainer *t, const struct cu *u, const float *dy, float *dx,
                   float *dres) {
    const struct tconv *L = u->L;
    size_t n = cu_n(u), HW = (size_t)u->oh * u->ow;
    int C = L->d.cout;
    struct iseg_arena_mark mk = iseg_arena_mark(t->a);
    const float *du = dy;
    if (u->relu) {
        float *d = A0(t, n);
        if (!d) return false;
        iseg_relu_bwd(d, dy, u->y, n);
        du = d;
    }
    if (dres) iseg_add(dres, dres, du, n);
    const float *dz = du;
    if (L->gamma) {
        float *d = A0(t, n);
        if (!d) return false;
        if (t->p.frozen_bn) {
            for (int b = 0; b < u->B; b++)
                for (int c = 0; c < C; c++) {
                    size_t o = ((size_t)b * C + c) * HW;
                    for (size_t i = 0; i < HW; i++) d[o + i] = du[o + i] * u->invstd[c];
                }
        } else {
            iseg_batchnorm_bwd(d, L->gamma->g, L->beta->g, du, u->z, u->mean, u->invstd,
                               L->gamma->w, u->B, C, HW);
        }
        dz = d;
    }
    float *scr = A(t, iseg_conv2d_train_scratch(&L->d, u->h, u->w));
    if (!scr) return false;
    /* backward-data as the adjoint convolution's forward, accumulated through its residual */
    if (dx && L->adj) {
        iseg_conv2d_forward(t->e, L->adj, dx, dz, u->B, u->oh, u->ow, dx, ISEG_ACT_NONE);
        dx = NULL;
    }
    iseg_conv2d_bwd(t->e, dx, L->w->g, L->b ? L->b->g : NULL, dz, u->x, L->w->w, &L->d, u->B,
                    u->h, u->w, scr);
    iseg_arena_release(t->a, mk);
    return true;
}

static void relu_inplace_bwd(float *d, const float *y, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!(y[i] > 0.0f)) d[i] = 0.0f;
}

/* ---- backbone and FPN ----------------------------------------------------------------------- */

static bool backbone_fwd(struct iseg_trainer *t, const float *img, int H, int W) {
    struct step *s = &t->s;
    if (!cu_fwd(t, &s->stem, &t->conv1, img, 1, H, W, NULL, true)) return false;
    int C = t->ar.width;
    iseg_maxpool2d_out_hw(3, 2, 1, s->stem.oh, s->stem.ow, &s->pool_h, &s->pool_w);
    s->pool = A(t, (size_t)C * s->pool_h * s->pool_w);
    if (!s->pool) return false;
    iseg_maxpool2d(t->e, s->pool, s->stem.y, 1, C, s->stem.oh, s->stem.ow, 3, 2, 1);
    const float *x = s->pool;
    int h = s->pool_h, w = s->pool_w, bi = 0;
    for (int L = 0; L < 4; L++) {
        for (int k = 0; k < t->ar.n_blocks[L]; k++, bi++) {
            const struct tblock *blk = &t->blocks[bi];
            struct cu *u = s->blk[bi];
            const float *idn = x;
            if (blk->has_down) {
                if (!cu_fwd(t, &u[3], &blk->down, x, 1, h, w, NULL, false)) return false;
                idn = u[3].y;
            }
            const float *in = x;
            int ih = h, iw = w;
            for (int j = 0; j < blk->nc; j++) {
                bool last = j == blk->nc - 1;
                if (!cu_fwd(t, &u[j], &blk->c[j], in, 1, ih, iw, last ? idn : NULL, true))
                    return false;
                in = u[j].y;
                ih = u[j].oh;
                iw = u[j].ow;
            }
            x = in;
            h = ih;
            w = iw;
        }
        s->C[L] = (struct lvl){(float *)x, h, w};
        s->Cch[L] = t->blocks[bi - 1].c[t->blocks[bi - 1].nc - 1].d.cout;
    }
    return true;
}

/* dC[L] (gradients of C2..C5) -> parameter gradients */
static bool backbone_bwd(struct iseg_trainer *t, float *const dC[4]) {
    struct step *s = &t->s;
    int bi = t->n_blocks - 1;
    const float *dcur = dC[3];
    for (int L = 3; L >= 0; L--) {
        for (int k = t->ar.n_blocks[L] - 1; k >= 0; k--, bi--) {
            const struct tblock *blk = &t->blocks[bi];
            const struct cu *u = s->blk[bi];
            size_t nin = (size_t)blk->c[0].d.cin * u[0].h * u[0].w;
            float *dx = A0(t, nin);
            if (!dx) return false;
            struct iseg_arena_mark mk = iseg_arena_mark(t->a);
            float *didn = dx;
            if (blk->has_down && !(didn = A0(t, cu_n(&u[3])))) return false;
            const float *d = dcur;
            for (int j = blk->nc - 1; j >= 0; j--) {
                float *dj = j ? A0(t, cu_n(&u[j - 1])) : dx;
                if (!dj) return false;
                if (!cu_bwd(t, &u[j], d, dj, j == blk->nc - 1 ? didn : NULL)) return false;
                d = dj;
            }
            if (blk->has_down && !cu_bwd(t, &u[3], didn, dx, NULL)) return false;
            iseg_arena_release(t->a, mk);
            /* the block's input is the previous stage's output C[L-1] as well */
            if (k == 0 && L > 0) iseg_add(dx, dx, dC[L - 1], nin);
            dcur = dx;
        }
    }
    /* max pool, then the stem (no gradient for the image) */
    size_t ns = cu_n(&s->stem);
    float *dstem = A0(t, ns);
    if (!dstem) return false;
    iseg_maxpool2d_bwd(dstem, dcur, s->stem.y, 1, t->ar.width, s->stem.oh, s->stem.ow, 3, 2, 1);
    return cu_bwd(t, &s->stem, dstem, NULL, NULL);
}

static bool fpn_fwd(struct iseg_trainer *t) {
    struct step *s = &t->s;
    const int F = t->ar.fpn;
    for (int i = 3; i >= 0; i--) {
        if (!cu_fwd(t, &s->inner[i], &t->fpn_inner[i], s->C[i].d, 1, s->C[i].H, s->C[i].W, NULL,
                    false))
            return false;
        float *v = s->inner[i].y;
        if (i < 3) {
            size_t n = cu_n(&s->inner[i]);
            if (!(v = A(t, n))) return false;
            memcpy(v, s->inner[i].y, n * sizeof(float));
            iseg_resize_nearest_add(v, s->innerv[i + 1], 1, F, s->C[i + 1].H, s->C[i + 1].W,
                                    s->C[i].H, s->C[i].W);
        }
        s->innerv[i] = v;
        if (!cu_fwd(t, &s->layer[i], &t->fpn_layer[i], v, 1, s->C[i].H, s->C[i].W, NULL, false))
            return false;
        s->P[i] = (struct lvl){s->layer[i].y, s->C[i].H, s->C[i].W};
    }
    /* LastLevelMaxPool: max_pool2d(P5, 1, 2) = every other pixel */
    struct lvl *p6 = &s->P[4], *p5 = &s->P[3];
    p6->H = (p5->H - 1) / 2 + 1;
    p6->W = (p5->W - 1) / 2 + 1;
    if (!(p6->d = A(t, (size_t)F * p6->H * p6->W))) return false;
    for (int c = 0; c < F; c++)
        for (int y = 0; y < p6->H; y++)
            for (int x = 0; x < p6->W; x++)
                p6->d[((size_t)c * p6->H + y) * p6->W + x] =
                    p5->d[((size_t)c * p5->H + 2 * y) * p5->W + 2 * x];
    return true;
}

/* dP (P2..P6, modified) -> dC (allocated here) and parameter gradients */
static bool fpn_bwd(struct iseg_trainer *t, float *const dP[MRCNN_N_LEVELS], float *dC[4]) {
    struct step *s = &t->s;
    const int F = t->ar.fpn;
    const struct lvl *p6 = &s->P[4], *p5 = &s->P[3];
    for (int c = 0; c < F; c++)
        for (int y = 0; y < p6->H; y++)
            for (int x = 0; x < p6->W; x++)
                dP[3][((size_t)c * p5->H + 2 * y) * p5->W + 2 * x] +=
                    dP[4][((size_t)c * p6->H + y) * p6->W + x];
    float *dinner[4];
    for (int i = 0; i < 4; i++) {
        dC[i] = A0(t, (size_t)s->Cch[i] * s->C[i].H * s->C[i].W);
        dinner[i] = A0(t, (size_t)F * s->C[i].H * s->C[i].W);
        if (!dC[i] || !dinner[i]) return false;
    }
    for (int i = 0; i < 4; i++) {
        if (!cu_bwd(t, &s->layer[i], dP[i], dinner[i], NULL)) return false;
        if (i > 0)
            iseg_resize_nearest_bwd(dinner[i], dinner[i - 1], 1, F, s->C[i].H, s->C[i].W,
                                    s->C[i - 1].H, s->C[i - 1].W);
        if (!cu_bwd(t, &s->inner[i], dinner[i], dC[i], NULL)) return false;
    }
    return true;
}

/* ---- multi-level RoIAlign (ops/poolers.py MultiScaleRoIAlign over P2..P5) ------------------- */

struct mroi {
    int   *levels;
    float  scales[4];
    int    n_lv;
};

static bool mroi_fwd(struct iseg_trainer *t, struct mroi *m, float *out, const float *boxes,
                     int N, int S, int img_h) {
    struct step *s = &t->s;
    m->levels = iseg_arena_alloc(t->a, sizeof(int) * (size_t)(N ? N : 1));
    if (!m->levels) return false;
    const float *feats[4];
    int H[4], W[4];
    for (int l = 0; l < 4; l++) feats[l] = s->P[l].d, H[l] = s->P[l].H, W[l] = s->P[l].W;
    mrcnn_roi_pool(t->e, out, m->levels, m->scales, &m->n_lv, feats, H, W, t->ar.fpn, boxes, N,
                   S, img_h);
    return true;
}

static bool mroi_bwd(struct iseg_trainer *t, const struct mroi *m, float *const dP[],
                     const float *dout, const float *boxes, int N, int S) {
    struct step *s = &t->s;
    const int F = t->ar.fpn;
    size_t per = (size_t)F * S * S;
    struct iseg_arena_mark mk = iseg_arena_mark(t->a);
    float *lb = A(t, (size_t)4 * N), *tmp = A(t, per * (size_t)N);
    if (!lb || !tmp) return false;
    for (int l = 0; l < m->n_lv; l++) {
        int n = 0;
        for (int i = 0; i < N; i++)
            if (m->levels[i] == l) {
                memcpy(lb + 4 * n, boxes + 4 * i, 4 * sizeof(float));
                memcpy(tmp + per * n, dout + per * i, per * sizeof(float));
                n++;
            }
        if (n)
            iseg_roi_align_bwd(dP[l], tmp, lb, n, F, s->P[l].H, s->P[l].W, S, S, m->scales[l], 2,
                               false);
    }
    iseg_arena_release(t->a, mk);
    return true;
}

/* ---- the step ------------------------------------------------------------------------------- */

/* merge two increasing index lists */
static int merge_sorted(int *out, const int *a, int na, const int *b, int nb) {
    int i = 0, j = 0, k = 0;
    while (i < na || j < nb) out[k++] = (j >= nb || (i < na && a[i] < b[j])) ? a[i++] : b[j++];
    return k;
}

/* Mask loss on the label channel of each RoI: d (N, K, M*M) written whole. */
static double mask_loss(struct iseg_trainer *t, float *d, const float *logits,
                        const float *targets, const int64_t *labels, int N, int K) {
    const size_t P = 784;
    if (t->p.mask_loss == ISEG_MASK_LOSS_BCE)
        return iseg_maskrcnn_mask_loss(d, logits, targets, labels, (size_t)N, (size_t)K, 28);
    float *x = A(t, (size_t)N * P), *dx = A(t, (size_t)N * P);
    if (!x || !dx) return NAN;
    for (int i = 0; i < N; i++)
        memcpy(x + i * P, logits + ((size_t)i * K + labels[i]) * P, P * sizeof(float));
    double l;
    switch (t->p.mask_loss) {
    case ISEG_MASK_LOSS_DICE:
        l = iseg_dice_loss(dx, NULL, x, targets, (size_t)N, P, ISEG_DICE_EPS_DEFAULT);
        break;
    case ISEG_MASK_LOSS_JACCARD:
        l = iseg_jaccard_loss(dx, NULL, x, targets, (size_t)N, P, ISEG_DICE_EPS_DEFAULT);
        break;
    case ISEG_MASK_LOSS_FOCAL:
        l = iseg_sigmoid_focal_loss(dx, NULL, x, targets, (size_t)N * P, 0.25f, 2.0f,
                                    ISEG_REDUCTION_MEAN);
        break;
    default:
        l = iseg_dice_jaccard_loss(dx, NULL, x, targets, (size_t)N, P, ISEG_DICE_EPS_DEFAULT,
                                   ISEG_JACCARD_WEIGHT_DEFAULT, ISEG_DICE_WEIGHT_DEFAULT);
        break;
    }
    memset(d, 0, sizeof(float) * (size_t)N * K * P);
    for (int i = 0; i < N; i++)
        memcpy(d + ((size_t)i * K + labels[i]) * P, dx + i * P, P * sizeof(float));
    return l;
}

/* milliseconds since *t0, and restart the clock */
static double lap(double *t0) {
    double t = iseg__now(), d = (t - *t0) * 1e3;
    *t0 = t;
    return d;
}

static void scale_f(float *x, size_t n, float s) {
    for (size_t i = 0; i < n; i++) x[i] *= s;
}

enum iseg_status iseg_trainer_step(iseg_trainer_t t, struct iseg_sample *smp, float grad_scale,
                                   struct iseg_train_losses *out) {
    ISEG_ASSERT(t && smp && out);
    memset(out, 0, sizeof(*out));
    t->err[0] = '\0';
    enum iseg_status st = iseg_sample_validate(smp);
    if (st) return fail(t, NULL, 0, st, "invalid sample: %s", iseg_status_str(st));
    const int K = t->ar.num_classes, F = t->ar.fpn, A_ = MRCNN_N_ANCHORS;
    for (size_t i = 0; i < smp->n; i++)
        if (smp->inst[i].label < 1 || smp->inst[i].label >= K)
            return fail(t, NULL, 0, ISEG_STATUS_EINVAL,
                        "instance %zu: label %lld outside 1..%d", i,
                        (long long)smp->inst[i].label, K - 1);
    int oh, ow;
    mrcnn_resized_size((int)smp->image.h, (int)smp->image.w, t->p.min_size, t->p.max_size, &oh,
                       &ow);
    if (oh < 1 || ow < 1 || oh > 16384 || ow > 16384)
        return fail(t, NULL, 0, ISEG_STATUS_ELIMIT, "image of %ux%u cannot be resized for training",
                    smp->image.w, smp->image.h);
    if ((oh != (int)smp->image.h || ow != (int)smp->image.w) &&
        (st = iseg_augment_resize(smp, (uint32_t)ow, (uint32_t)oh)))
        return fail(t, NULL, 0, st, "resizing the sample: %s", iseg_status_str(st));
    if (t->p.crop_size > 0) {
        if ((st = iseg_augment_random_crop(smp, &t->rng, (uint32_t)t->p.crop_size,
                                           (uint32_t)t->p.crop_size)))
            return fail(t, NULL, 0, st, "cropping the sample: %s", iseg_status_str(st));
        oh = (int)smp->image.h;
        ow = (int)smp->image.w;
    }
    const int M = (int)smp->n;
    out->n_gt = M;
    out->height = oh;
    out->width = ow;
    iseg_arena_reset(t->a);
    double t0 = iseg__now();
    if ((st = pack_convs(t))) return fail(t, NULL, 0, st, "packing the weights: %s",
                                          iseg_status_str(st));
    struct step *s = &t->s;
    memset(s, 0, sizeof(*s));
    /* ---- input: normalised, zero-padded to a multiple of 32 ---- */
    static const float mean[3] = {0.485f, 0.456f, 0.406f}, stdv[3] = {0.229f, 0.224f, 0.225f};
    int ph = (oh + 31) / 32 * 32, pw = (ow + 31) / 32 * 32;
    float *img = A0(t, (size_t)3 * ph * pw);
    float *gtb = A(t, (size_t)4 * (M ? M : 1));
    int64_t *gtl = iseg_arena_alloc(t->a, sizeof(int64_t) * (size_t)(M ? M : 1));
    struct iseg_rle *gtm = iseg_arena_alloc(t->a, sizeof(struct iseg_rle) * (size_t)(M ? M : 1));
    if (!img || !gtb || !gtl || !gtm) goto oom;
    for (int y = 0; y < oh; y++)
        for (int x = 0; x < ow; x++) {
            const uint8_t *px = (const uint8_t *)smp->image.data + ((size_t)y * ow + x) * 3;
            for (int c = 0; c < 3; c++)
                img[((size_t)c * ph + y) * pw + x] = ((float)px[c] / 255.0f - mean[c]) / stdv[c];
        }
    for (int i = 0; i < M; i++) {
        memcpy(gtb + 4 * i, smp->inst[i].box, 4 * sizeof(float));
        gtl[i] = smp->inst[i].label;
        gtm[i] = smp->inst[i].mask;
    }
    /* ---- backbone, FPN (after packing the weights) ---- */
    if (!backbone_fwd(t, img, ph, pw) || !fpn_fwd(t)) goto oom;
    out->ms_fwd_backbone = lap(&t0);
    /* ---- RPN head and proposals ---- */
    int level_hw[MRCNN_N_LEVELS], NA = 0;
    for (int l = 0; l < MRCNN_N_LEVELS; l++) {
        struct lvl *P = &s->P[l];
        if (!cu_fwd(t, &s->rh[l], &t->rpn_conv, P->d, 1, P->H, P->W, NULL, true) ||
            !cu_fwd(t, &s->rc[l], &t->rpn_cls, s->rh[l].y, 1, P->H, P->W, NULL, false) ||
            !cu_fwd(t, &s->rb[l], &t->rpn_box, s->rh[l].y, 1, P->H, P->W, NULL, false))
            goto oom;
        level_hw[l] = P->H * P->W;
        NA += level_hw[l] * A_;
    }
    float *props;
    int NP;
    {
        struct mrcnn_props pr;
        if (!mrcnn_props_init(&pr, t->a, level_hw, t->p.rpn_pre_nms)) goto oom;
        for (int l = 0; l < MRCNN_N_LEVELS; l++)
            if (!mrcnn_props_add_level(&pr, l, s->rc[l].y, s->rb[l].y, s->P[l].H, s->P[l].W,
                                       t->ar.anchor_sizes[l], ph / s->P[l].H, pw / s->P[l].W))
                goto oom;
        if (!mrcnn_props_finish(&pr, oh, ow, t->p.rpn_nms_thresh, t->p.rpn_post_nms, &props, &NP))
            goto oom;
    }
    /* ---- RPN losses ---- */
    float *anchors = A(t, (size_t)4 * NA), *obj = A(t, (size_t)NA), *del = A(t, (size_t)4 * NA);
    float *dobj = A0(t, (size_t)NA), *ddel = A0(t, (size_t)4 * NA);
    int *alab = iseg_arena_alloc(t->a, sizeof(int) * (size_t)NA);
    int *amatch = iseg_arena_alloc(t->a, sizeof(int) * (size_t)NA);
    int *pos = iseg_arena_alloc(t->a, sizeof(int) * (size_t)NA);
    int *neg = iseg_arena_alloc(t->a, sizeof(int) * (size_t)NA);
    if (!anchors || !obj || !del || !dobj || !ddel || !alab || !amatch || !pos || !neg) goto oom;
    {
        static const float ratios[MRCNN_N_ANCHORS] = {0.5f, 1.0f, 2.0f};
        int o = 0;
        for (int l = 0; l < MRCNN_N_LEVELS; l++) {
            int H = s->P[l].H, W = s->P[l].W, HW = H * W;
            iseg_anchors(anchors + 4 * (size_t)o, t->ar.anchor_sizes[l], ratios, A_, H, W, ph / H,
                         pw / W);
            for (int q = 0; q < HW; q++)
                for (int a = 0; a < A_; a++) {
                    int i = o + q * A_ + a;
                    obj[i] = s->rc[l].y[(size_t)a * HW + q];
                    for (int c = 0; c < 4; c++)
                        del[4 * (size_t)i + c] = s->rb[l].y[(size_t)(a * 4 + c) * HW + q];
                }
            o += HW * A_;
        }
    }
    struct iseg_arena_mark mk = iseg_arena_mark(t->a);
    if (M > 0) {
        float *iou = A(t, (size_t)M * NA), *scr = A(t, (size_t)M + NA);
        if (!iou || !scr) goto oom;
        iseg_box_iou(iou, gtb, M, anchors, NA);
        iseg_match(amatch, iou, M, NA, 0.7f, 0.3f, true, scr);
        for (int i = 0; i < NA; i++)
            alab[i] = amatch[i] >= 0 ? 1 : amatch[i] == ISEG_MATCH_BELOW ? 0 : -1;
    } else {
        for (int i = 0; i < NA; i++) alab[i] = 0;
    }
    iseg_arena_release(t->a, mk);
    int npos, nneg;
    {
        int *scr = iseg_arena_alloc(t->a, sizeof(int) * (size_t)NA);
        if (!scr) goto oom;
        iseg_sample_pos_neg(pos, &npos, neg, &nneg, alab, NA, t->p.rpn_batch,
                            (float)t->p.rpn_pos_fraction, &t->rng, scr);
    }
    out->rpn_pos = npos;
    out->rpn_neg = nneg;
    int ns = npos + nneg;
    float *x = A(t, (size_t)ns), *yv = A(t, (size_t)ns), *dx = A(t, (size_t)ns);
    float *pd = A(t, (size_t)4 * npos), *td = A(t, (size_t)4 * npos), *dd = A(t, (size_t)4 * npos);
    float *mg = A(t, (size_t)4 * npos);
    if (!x || !yv || !dx || !pd || !td || !dd || !mg) goto oom;
    for (int i = 0; i < npos; i++) {
        x[i] = obj[pos[i]];
        yv[i] = 1.0f;
        memcpy(pd + 4 * i, del + 4 * (size_t)pos[i], 16);
        memcpy(mg + 4 * i, gtb + 4 * amatch[pos[i]], 16);
    }
    for (int i = 0; i < nneg; i++) {
        x[npos + i] = obj[neg[i]];
        yv[npos + i] = 0.0f;
    }
    double L[TR_N_LOSSES];
    struct iseg_bce_params bp = iseg_bce_default_params();
    L[0] = ns ? iseg_bce_logits_loss(dx, NULL, x, yv, (size_t)ns, &bp) : 0.0;
    {
        float *pa = A(t, (size_t)4 * npos);
        if (!pa) goto oom;
        for (int i = 0; i < npos; i++) memcpy(pa + 4 * i, anchors + 4 * (size_t)pos[i], 16);
        const float w1[4] = {1, 1, 1, 1};
        iseg_box_encode(td, mg, pa, npos, w1);
    }
    L[1] = npos ? iseg_smooth_l1_loss(dd, NULL, pd, td, (size_t)4 * npos, 1.0f / 9,
                                      ISEG_REDUCTION_SUM) / ns
                : 0.0;
    if (npos) scale_f(dd, (size_t)4 * npos, 1.0f / (float)ns);
    out->ms_fwd_rpn = lap(&t0);
    /* ---- RoI sampling ---- */
    int NR = NP + M;
    float *rois = A(t, (size_t)4 * (NR ? NR : 1));
    int *rlab = iseg_arena_alloc(t->a, sizeof(int) * (size_t)(NR ? NR : 1));
    int *rmatch = iseg_arena_alloc(t->a, sizeof(int) * (size_t)(NR ? NR : 1));
    int *rpos = iseg_arena_alloc(t->a, sizeof(int) * (size_t)(NR ? NR : 1));
    int *rneg = iseg_arena_alloc(t->a, sizeof(int) * (size_t)(NR ? NR : 1));
    int *sel = iseg_arena_alloc(t->a, sizeof(int) * (size_t)(NR ? NR : 1));
    if (!rois || !rlab || !rmatch || !rpos || !rneg || !sel) goto oom;
    memcpy(rois, props, sizeof(float) * 4 * (size_t)NP);
    memcpy(rois + 4 * (size_t)NP, gtb, sizeof(float) * 4 * (size_t)M);
    mk = iseg_arena_mark(t->a);
    if (M > 0) {
        float *iou = A(t, (size_t)M * NR), *scr = A(t, (size_t)M + NR);
        if (!iou || !scr) goto oom;
        iseg_box_iou(iou, gtb, M, rois, NR);
        iseg_match(rmatch, iou, M, NR, 0.5f, 0.5f, false, scr);
        for (int i = 0; i < NR; i++)
            rlab[i] = rmatch[i] >= 0 ? (int)gtl[rmatch[i]] : rmatch[i] == ISEG_MATCH_BELOW ? 0 : -1;
    } else {
        for (int i = 0; i < NR; i++) rlab[i] = 0;
    }
    iseg_arena_release(t->a, mk);
    int rnp, rnn;
    {
        int *scr = iseg_arena_alloc(t->a, sizeof(int) * (size_t)(NR ? NR : 1));
        if (!scr) goto oom;
        iseg_sample_pos_neg(rpos, &rnp, rneg, &rnn, rlab, NR, t->p.box_batch,
                            (float)t->p.box_pos_fraction, &t->rng, scr);
    }
    out->roi_pos = rnp;
    out->roi_neg = rnn;
    int S = merge_sorted(sel, rpos, rnp, rneg, rnn);
    float *sb = A(t, (size_t)4 * S);
    int64_t *sl = iseg_arena_alloc(t->a, sizeof(int64_t) * (size_t)(S ? S : 1));
    if (!sb || !sl) goto oom;
    for (int i = 0; i < S; i++) {
        memcpy(sb + 4 * i, rois + 4 * (size_t)sel[i], 16);
        sl[i] = rlab[sel[i]];
    }
    /* ---- box head ---- */
    const int rep = t->ar.rep, in6 = F * 49;
    /* one scratch size for the four linear layers (in <= max(in6, rep), out <= max(rep, 4K)) */
    const size_t lin_scratch =
        iseg_linear_train_scratch(S, in6 > rep ? in6 : rep, rep > 4 * K ? rep : 4 * K);
    struct mroi bm;
    float *feat = A(t, (size_t)S * in6), *h6 = A(t, (size_t)S * rep), *h7 = A(t, (size_t)S * rep);
    float *logits = A(t, (size_t)S * K), *reg = A(t, (size_t)S * 4 * K);
    float *dlog = A0(t, (size_t)S * K), *dreg = A0(t, (size_t)S * 4 * K);
    if (!feat || !h6 || !h7 || !logits || !reg || !dlog || !dreg) goto oom;
    if (S > 0) {
        if (!mroi_fwd(t, &bm, feat, sb, S, 7, oh)) goto oom;
        mk = iseg_arena_mark(t->a);
        float *scr = A(t, lin_scratch);
        if (!scr) goto oom;
        iseg_linear_fwd_raw(t->e, h6, feat, t->fc6.w->w, t->fc6.b->w, S, in6, rep, scr);
        iseg_relu(h6, h6, (size_t)S * rep);
        iseg_linear_fwd_raw(t->e, h7, h6, t->fc7.w->w, t->fc7.b->w, S, rep, rep, scr);
        iseg_relu(h7, h7, (size_t)S * rep);
        iseg_linear_fwd_raw(t->e, logits, h7, t->cls.w->w, t->cls.b->w, S, rep, K, scr);
        iseg_linear_fwd_raw(t->e, reg, h7, t->box.w->w, t->box.b->w, S, rep, 4 * K, scr);
        iseg_arena_release(t->a, mk);
        struct iseg_ce_params cp = iseg_ce_default_params();
        L[2] = iseg_softmax_ce_loss(dlog, NULL, logits, sl, (size_t)S, (size_t)K, 1, &cp);
    } else {
        L[2] = 0.0;
    }
    /* box regression of the positives, their own class's deltas */
    float *bp_ = A(t, (size_t)4 * rnp), *bt = A(t, (size_t)4 * rnp), *bd = A(t, (size_t)4 * rnp);
    float *bg = A(t, (size_t)4 * rnp), *bpr = A(t, (size_t)4 * rnp);
    int *prow = iseg_arena_alloc(t->a, sizeof(int) * (size_t)(rnp ? rnp : 1));
    if (!bp_ || !bt || !bd || !bg || !bpr || !prow) goto oom;
    int np_ = 0;
    for (int i = 0; i < S; i++)
        if (sl[i] > 0) {
            prow[np_] = i;
            memcpy(bp_ + 4 * np_, reg + ((size_t)i * K + sl[i]) * 4, 16);
            memcpy(bg + 4 * np_, gtb + 4 * rmatch[sel[i]], 16);
            memcpy(bpr + 4 * np_, sb + 4 * i, 16);
            np_++;
        }
    {
        const float w[4] = {10, 10, 5, 5};
        iseg_box_encode(bt, bg, bpr, np_, w);
    }
    L[3] = np_ ? iseg_smooth_l1_loss(bd, NULL, bp_, bt, (size_t)4 * np_, 1.0f / 9,
                                     ISEG_REDUCTION_SUM) / S
               : 0.0;
    out->ms_fwd_box = lap(&t0);
    /* ---- mask head on the positives ---- */
    const int MC = t->ar.mask_ch;
    struct mroi mm;
    float *mfeat = NULL, *up = NULL, *mlogits_d = NULL, *xlast = NULL;
    int64_t *ml = iseg_arena_alloc(t->a, sizeof(int64_t) * (size_t)(np_ ? np_ : 1));
    int *mgt = iseg_arena_alloc(t->a, sizeof(int) * (size_t)(np_ ? np_ : 1));
    if (!ml || !mgt) goto oom;
    for (int j = 0; j < np_; j++) {
        ml[j] = sl[prow[j]];
        mgt[j] = rmatch[sel[prow[j]]];
    }
    L[4] = 0.0;
    if (np_ > 0) {
        mfeat = A(t, (size_t)np_ * F * 196);
        if (!mfeat || !mroi_fwd(t, &mm, mfeat, bpr, np_, 14, oh)) goto oom;
        const float *xm = mfeat;
        for (int i = 0; i < t->n_mask_conv; i++) {
            if (!cu_fwd(t, &s->mc[i], &t->mask_conv[i], xm, np_, 14, 14, NULL, true)) goto oom;
            xm = s->mc[i].y;
        }
        xlast = (float *)xm;
        up = A(t, (size_t)np_ * MC * 784);
        if (!up) goto oom;
        mk = iseg_arena_mark(t->a);
        float *scr = A(t, iseg_deconv2d_train_scratch(&t->dd, 14, 14));
        if (!scr) goto oom;
        iseg_deconv2d_fwd_raw(t->e, up, xlast, t->dw->w, t->db->w, &t->dd, np_, 14, 14, scr);
        iseg_arena_release(t->a, mk);
        iseg_relu(up, up, (size_t)np_ * MC * 784);
        if (!cu_fwd(t, &s->ml, &t->mask_logits, up, np_, 28, 28, NULL, false)) goto oom;
        float *targets = A(t, (size_t)np_ * 784);
        mlogits_d = A(t, (size_t)np_ * K * 784);
        if (!targets || !mlogits_d) goto oom;
        mk = iseg_arena_mark(t->a);
        float *scr2 = A(t, (size_t)oh * ow);
        if (!scr2) goto oom;
        if ((st = iseg_project_masks(t->e, targets, gtm, mgt, bpr, np_, 28, scr2)))
            return fail(t, NULL, 0, st, "mask targets: %s", iseg_status_str(st));
        iseg_arena_release(t->a, mk);
        L[4] = mask_loss(t, mlogits_d, s->ml.y, targets, ml, np_, K);
    }
    out->ms_fwd_mask = lap(&t0);
    /* ---- weighting ---- */
    double wgt[TR_N_LOSSES];
    out->objectness = L[0];
    out->rpn_box = L[1];
    out->classifier = L[2];
    out->box = L[3];
    out->mask = L[4];
    if (t->log_vars) {
        float ds[TR_N_LOSSES];
        out->total = iseg_uncertainty_weighting(wgt, ds, L, t->log_vars->w, TR_N_LOSSES);
        for (int i = 0; i < TR_N_LOSSES; i++) t->log_vars->g[i] += grad_scale * ds[i];
    } else {
        out->total = 0.0;
        for (int i = 0; i < TR_N_LOSSES; i++) {
            wgt[i] = 1.0;
            out->total += L[i];
        }
    }
    /* ---- backward: RoI heads into dP ---- */
    float *dP[MRCNN_N_LEVELS];
    for (int l = 0; l < MRCNN_N_LEVELS; l++)
        if (!(dP[l] = A0(t, (size_t)F * s->P[l].H * s->P[l].W))) goto oom;
    if (np_ > 0) {
        scale_f(mlogits_d, (size_t)np_ * K * 784, grad_scale * (float)wgt[4]);
        mk = iseg_arena_mark(t->a);
        size_t nu = (size_t)np_ * MC * 784;
        float *dup = A0(t, nu), *dx4 = A0(t, (size_t)np_ * MC * 196);
        if (!dup || !dx4 || !cu_bwd(t, &s->ml, mlogits_d, dup, NULL)) goto oom;
        relu_inplace_bwd(dup, up, nu);
        float *scr = A(t, iseg_deconv2d_train_scratch(&t->dd, 14, 14));
        if (!scr) goto oom;
        iseg_deconv2d_bwd(t->e, dx4, t->dw->g, t->db->g, dup, xlast, t->dw->w, &t->dd, np_, 14,
                          14, scr);
        const float *d = dx4;
        for (int i = t->n_mask_conv - 1; i >= 0; i--) {
            float *di = A0(t, (size_t)np_ * (i ? MC : F) * 196);
            if (!di || !cu_bwd(t, &s->mc[i], d, di, NULL)) goto oom;
            d = di;
        }
        if (!mroi_bwd(t, &mm, dP, d, bpr, np_, 14)) goto oom;
        iseg_arena_release(t->a, mk);
    }
    out->ms_bwd_mask = lap(&t0);
    if (S > 0) {
        scale_f(dlog, (size_t)S * K, grad_scale * (float)wgt[2]);
        for (int j = 0; j < np_; j++)
            for (int c = 0; c < 4; c++)
                dreg[((size_t)prow[j] * K + ml[j]) * 4 + c] =
                    bd[4 * j + c] / (float)S * grad_scale * (float)wgt[3];
        mk = iseg_arena_mark(t->a);
        float *dh7 = A0(t, (size_t)S * rep), *dh6 = A0(t, (size_t)S * rep);
        float *dfeat = A0(t, (size_t)S * in6);
        float *scr = A(t, lin_scratch);
        if (!dh7 || !dh6 || !dfeat || !scr) goto oom;
        iseg_linear_bwd(t->e, dh7, t->cls.w->g, t->cls.b->g, dlog, h7, t->cls.w->w, S, rep, K, scr);
        iseg_linear_bwd(t->e, dh7, t->box.w->g, t->box.b->g, dreg, h7, t->box.w->w, S, rep, 4 * K,
                        scr);
        relu_inplace_bwd(dh7, h7, (size_t)S * rep);
        iseg_linear_bwd(t->e, dh6, t->fc7.w->g, t->fc7.b->g, dh7, h6, t->fc7.w->w, S, rep, rep,
                        scr);
        relu_inplace_bwd(dh6, h6, (size_t)S * rep);
        iseg_linear_bwd(t->e, dfeat, t->fc6.w->g, t->fc6.b->g, dh6, feat, t->fc6.w->w, S, in6, rep,
                        scr);
        if (!mroi_bwd(t, &bm, dP, dfeat, sb, S, 7)) goto oom;
        iseg_arena_release(t->a, mk);
    }
    out->ms_bwd_box = lap(&t0);
    /* ---- backward: RPN head into dP ---- */
    {
        float so = grad_scale * (float)wgt[0], sd = grad_scale * (float)wgt[1];
        for (int i = 0; i < npos; i++) {
            dobj[pos[i]] += dx[i] * so;
            for (int c = 0; c < 4; c++) ddel[4 * (size_t)pos[i] + c] += dd[4 * i + c] * sd;
        }
        for (int i = 0; i < nneg; i++) dobj[neg[i]] += dx[npos + i] * so;
        int o = 0;
        for (int l = 0; l < MRCNN_N_LEVELS; l++) {
            int HW = level_hw[l];
            mk = iseg_arena_mark(t->a);
            float *dc = A(t, (size_t)A_ * HW), *db = A(t, (size_t)4 * A_ * HW);
            float *dh = A0(t, (size_t)F * HW);
            if (!dc || !db || !dh) goto oom;
            for (int q = 0; q < HW; q++)
                for (int a = 0; a < A_; a++) {
                    int i = o + q * A_ + a;
                    dc[(size_t)a * HW + q] = dobj[i];
                    for (int c = 0; c < 4; c++)
                        db[(size_t)(a * 4 + c) * HW + q] = ddel[4 * (size_t)i + c];
                }
            if (!cu_bwd(t, &s->rc[l], dc, dh, NULL) || !cu_bwd(t, &s->rb[l], db, dh, NULL) ||
                !cu_bwd(t, &s->rh[l], dh, dP[l], NULL))
                goto oom;
            iseg_arena_release(t->a, mk);
            o += HW * A_;
        }
    }
    out->ms_bwd_rpn = lap(&t0);
    /* ---- backward: FPN, backbone ---- */
    float *dC[4];
    if (!fpn_bwd(t, dP, dC) || !backbone_bwd(t, dC)) goto oom;
    out->ms_bwd_backbone = lap(&t0);
    if ((st = iseg_engine_take_error(t->e))) return fail(t, NULL, 0, st, "%s", iseg_status_str(st));
    return ISEG_STATUS_OK;
oom:
    return fail(t, NULL, 0, ISEG_STATUS_ENOMEM, "out of memory in a training step (arena %zu MB)",
                iseg_arena_used(t->a) >> 20);
}

/* ---- saving --------------------------------------------------------------------------------- */

static uint16_t f32_to_f16(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    uint32_t sign = (x >> 16) & 0x8000u, ex = (x >> 23) & 0xffu, man = x & 0x7fffffu;
    if (ex == 0xff) return (uint16_t)(sign | 0x7c00u | (man ? 0x200u : 0u));
    int e = (int)ex - 127 + 15;
    if (e >= 31) return (uint16_t)(sign | 0x7c00u);
    if (e <= 0) { /* subnormal: value / 2^-24, rounded half to even */
        if (e < -10) return (uint16_t)sign;
        uint32_t m = man | 0x800000u, shift = (uint32_t)(14 - e);
        uint32_t h = m >> shift, rem = m & ((1u << shift) - 1), mid = 1u << (shift - 1);
        if (rem > mid || (rem == mid && (h & 1))) h++;
        return (uint16_t)(sign | h);
    }
    uint32_t h = sign | ((uint32_t)e << 10) | (man >> 13), rem = man & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (h & 1))) h++; /* a carry rounds into the exponent */
    return (uint16_t)h;
}

struct iseg_rng *iseg_trainer_rng(iseg_trainer_t t) { return &t->rng; }

struct iseg_trainer_params iseg_trainer_get_params(const iseg_trainer_t t) { return t->p; }

enum iseg_status iseg_trainer_save(const iseg_trainer_t t, const char *path,
                                   const char *const *metadata, bool f16,
                                   const struct iseg_weight *extra, size_t n_extra, char *err,
                                   size_t errlen) {
    ISEG_ASSERT(t && path);
    size_t nm = 0;
    while (metadata && metadata[nm]) nm++;
    const char **md = iseg__calloc(nm + 10, sizeof(char *));
    struct iseg_weight *w = iseg__calloc(t->nt + n_extra, sizeof(*w));
    uint16_t **half = iseg__calloc(t->nt, sizeof(uint16_t *));
    char anchors[128], mins[16], maxs[16];
    enum iseg_status st = md && w && half ? ISEG_STATUS_OK : ISEG_STATUS_ENOMEM;
    size_t k = 0;
    for (size_t i = 0; i < t->nt && !st; i++) {
        const struct tp *q = &t->t[i];
        /* running statistics stay F32: a variance may exceed F16's range */
        bool h = f16 && q->g;
        struct iseg_weight *x = &w[k++];
        x->name = q->name;
        x->ndim = q->ndim;
        memcpy(x->shape, q->shape, sizeof(q->shape));
        x->dtype = h ? ISEG_DTYPE_F16 : ISEG_DTYPE_F32;
        x->nbytes = q->n * (h ? 2 : 4);
        x->data = q->w;
        if (h) {
            if (!(half[i] = iseg__malloc_array(q->n, sizeof(uint16_t)))) {
                st = ISEG_STATUS_ENOMEM;
                break;
            }
            for (size_t j = 0; j < q->n; j++) half[i][j] = f32_to_f16(q->w[j]);
            x->data = half[i];
        }
    }
    if (!st) {
        const float *a = t->ar.anchor_sizes;
        snprintf(anchors, sizeof(anchors), "%g,%g,%g,%g,%g", a[0], a[1], a[2], a[3], a[4]);
        snprintf(mins, sizeof(mins), "%d", t->p.min_size);
        snprintf(maxs, sizeof(maxs), "%d", t->p.max_size);
        size_t j = 0;
        md[j++] = "iseg.anchor_sizes";
        md[j++] = anchors;
        md[j++] = "iseg.min_size";
        md[j++] = mins;
        md[j++] = "iseg.max_size";
        md[j++] = maxs;
        /* batch norm in training mode normalises each image by its own statistics (one image
         * per forward pass): inference does the same unless the caller says otherwise */
        bool has_bn = false;
        for (size_t i = 0; i + 1 < nm; i += 2)
            has_bn = has_bn || !strcmp(metadata[i], "iseg.bn_stats");
        if (!has_bn) {
            md[j++] = "iseg.bn_stats";
            md[j++] = t->p.frozen_bn ? "running" : "image";
        }
        for (size_t i = 0; i < nm; i++) md[j++] = metadata[i];
        md[j] = NULL;
        for (size_t i = 0; i < n_extra; i++) w[k++] = extra[i];
        st = iseg_weights_save_safetensors(path, w, k, md, err, errlen);
    } else if (err && errlen) {
        snprintf(err, errlen, "%s: out of memory", path);
    }
    if (half)
        for (size_t i = 0; i < t->nt; i++) iseg__free(half[i]);
    iseg__free(half);
    iseg__free(w);
    iseg__free(md);
    return st;
}
