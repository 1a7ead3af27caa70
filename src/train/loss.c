/* loss.c - training losses and their gradients (see include/iseg/loss.h).
 *
 * Every per-element formula is evaluated in double from the float inputs and every sum runs in
 * index order, so a loss is a deterministic double function of its float inputs: the tests
 * check the gradients against central finite differences of exactly these functions. */
#include <math.h>

#include "core/core_impl.h"
#include "iseg/loss.h"

/* grad_output of a reduction: torch's backward of mean is 1/n per element */
static double reduction_scale(enum iseg_reduction r, double n) {
    ISEG_ASSERT(r >= 0 && r < ISEG_REDUCTION_COUNT);
    return r == ISEG_REDUCTION_MEAN ? 1.0 / n : 1.0;
}

static double reduce(enum iseg_reduction r, double sum, double n) {
    return r == ISEG_REDUCTION_MEAN ? sum / n : sum;
}

static double sigmoid(double x) {
    /* the branch keeps exp() from overflowing for large |x| */
    if (x >= 0) return 1.0 / (1.0 + exp(-x));
    double e = exp(x);
    return e / (1.0 + e);
}

/* softplus(-x) = log(1 + exp(-x)), stable: max(-x, 0) + log1p(exp(-|x|)) */
static double softplus_neg(double x) { return fmax(-x, 0.0) + log1p(exp(-fabs(x))); }

/* ---- binary cross-entropy with logits ---- */

struct iseg_bce_params iseg_bce_default_params(void) {
    struct iseg_bce_params p = {NULL, 0, NULL, 0, ISEG_REDUCTION_MEAN};
    return p;
}

/* one element: returns the loss, *g its derivative w.r.t. x (before weight and reduction).
 * ref: aten/src/ATen/native/Loss.cpp binary_cross_entropy_with_logits(_backward) */
static double bce_elem(double x, double y, double pw, double *g) {
    double lw = 1.0 + (pw - 1.0) * y;
    *g        = (1.0 - y) - lw * sigmoid(-x);
    return (1.0 - y) * x + lw * softplus_neg(x);
}

double iseg_bce_logits_loss(float *d_x, float *loss_out, const float *x, const float *y, size_t n,
                            const struct iseg_bce_params *p) {
    struct iseg_bce_params def = iseg_bce_default_params();
    if (!p) p = &def;
    ISEG_ASSERT(n == 0 || (x && y));
    ISEG_ASSERT(!p->weight || (p->n_weight > 0 && n % p->n_weight == 0));
    ISEG_ASSERT(!p->pos_weight || (p->n_pos_weight > 0 && n % p->n_pos_weight == 0));
    double scale = reduction_scale(p->reduction, (double)n);
    double sum   = 0.0;
    for (size_t i = 0; i < n; i++) {
        double pw = p->pos_weight ? (double)p->pos_weight[i % p->n_pos_weight] : 1.0;
        double w  = p->weight ? (double)p->weight[i % p->n_weight] : 1.0;
        double g, l = w * bce_elem(x[i], y[i], pw, &g);
        sum += l;
        if (d_x) d_x[i] = (float)(w * g * scale);
        if (loss_out && p->reduction == ISEG_REDUCTION_NONE) loss_out[i] = (float)l;
    }
    return reduce(p->reduction, sum, (double)n);
}

/* ---- softmax cross-entropy ---- */

struct iseg_ce_params iseg_ce_default_params(void) {
    struct iseg_ce_params p = {NULL, -100, ISEG_REDUCTION_MEAN};
    return p;
}

double iseg_softmax_ce_loss(float *d_logits, float *loss_out, const float *logits,
                            const int64_t *target, size_t N, size_t K, size_t S,
                            const struct iseg_ce_params *p) {
    struct iseg_ce_params def = iseg_ce_default_params();
    if (!p) p = &def;
    ISEG_ASSERT(p->reduction >= 0 && p->reduction < ISEG_REDUCTION_COUNT);
    ISEG_ASSERT(K > 0 && S > 0);
    ISEG_ASSERT(N == 0 || (logits && target));
    /* pass 1: the weighted count (torch's total_weight), needed for the mean's gradient */
    double total_w = 0.0;
    for (size_t i = 0; i < N * S; i++) {
        int64_t t = target[i];
        if (t == p->ignore_index) continue;
        ISEG_ASSERT(t >= 0 && (uint64_t)t < K);
        total_w += p->weight ? (double)p->weight[t] : 1.0;
    }
    double scale = p->reduction == ISEG_REDUCTION_MEAN ? 1.0 / total_w : 1.0;
    double sum   = 0.0;
    for (size_t b = 0; b < N; b++) {
        for (size_t s = 0; s < S; s++) {
            const float *xs = logits + b * K * S + s; /* (K) with stride S */
            float       *ds = d_logits ? d_logits + b * K * S + s : NULL;
            int64_t      t  = target[b * S + s];
            if (t == p->ignore_index) {
                if (ds)
                    for (size_t k = 0; k < K; k++) ds[k * S] = 0.0f;
                if (loss_out && p->reduction == ISEG_REDUCTION_NONE) loss_out[b * S + s] = 0.0f;
                continue;
            }
            double mx = -INFINITY;
            for (size_t k = 0; k < K; k++) mx = fmax(mx, (double)xs[k * S]);
            double z = 0.0;
            for (size_t k = 0; k < K; k++) z += exp((double)xs[k * S] - mx);
            double lse = mx + log(z);
            double w   = p->weight ? (double)p->weight[t] : 1.0;
            double l   = -w * ((double)xs[(size_t)t * S] - lse);
            sum += l;
            if (loss_out && p->reduction == ISEG_REDUCTION_NONE) loss_out[b * S + s] = (float)l;
            if (ds) {
                /* d l / d x_k = w (softmax_k - [k == t]) */
                for (size_t k = 0; k < K; k++) {
                    double sm = exp((double)xs[k * S] - lse);
                    ds[k * S] = (float)(scale * w * (sm - (k == (size_t)t ? 1.0 : 0.0)));
                }
            }
        }
    }
    if (p->reduction == ISEG_REDUCTION_MEAN) {
        if (total_w == 0.0 && d_logits) /* torch: NaN loss, zero gradients */
            for (size_t i = 0; i < N * K * S; i++) d_logits[i] = 0.0f;
        return sum / total_w;
    }
    return sum;
}

/* ---- smooth L1 ---- */

double iseg_smooth_l1_loss(float *d_x, float *loss_out, const float *x, const float *y, size_t n,
                           float beta, enum iseg_reduction reduction) {
    ISEG_ASSERT(n == 0 || (x && y));
    ISEG_ASSERT(beta >= 0.0f);
    double scale = reduction_scale(reduction, (double)n);
    double b     = beta;
    double sum   = 0.0;
    for (size_t i = 0; i < n; i++) {
        /* torch evaluates the difference in float; so do we, then widen */
        double d = (double)(x[i] - y[i]), z = fabs(d), l, g;
        if (b == 0.0) { /* torch switches to l1_loss: gradient sign(d) */
            l = z;
            g = (d > 0) - (d < 0);
        } else if (z < b) {
            l = 0.5 * d * d / b;
            g = d / b;
        } else {
            l = z - 0.5 * b;
            g = d > 0 ? 1.0 : -1.0;
        }
        sum += l;
        if (d_x) d_x[i] = (float)(g * scale);
        if (loss_out && reduction == ISEG_REDUCTION_NONE) loss_out[i] = (float)l;
    }
    return reduce(reduction, sum, (double)n);
}

/* ---- sigmoid focal loss ---- */

double iseg_sigmoid_focal_loss(float *d_x, float *loss_out, const float *x, const float *y,
                               size_t n, float alpha, float gamma, enum iseg_reduction reduction) {
    ISEG_ASSERT(n == 0 || (x && y));
    ISEG_ASSERT(gamma >= 0.0f);
    double scale = reduction_scale(reduction, (double)n);
    double a = alpha, gm = gamma, sum = 0.0;
    for (size_t i = 0; i < n; i++) {
        double xi = x[i], yi = y[i], p = sigmoid(xi);
        double dce, ce = bce_elem(xi, yi, 1.0, &dce); /* dce = p - y */
        double pt = p * yi + (1.0 - p) * (1.0 - yi), q = 1.0 - pt;
        double mod = pow(q, gm);
        double l   = ce * mod;
        /* d/dx (1 - p_t)^gamma = -gamma (1 - p_t)^(gamma - 1) p (1 - p) (2y - 1); the term is
         * absent for gamma = 0 (where torch's pow backward is 0 as well) */
        double dmod = gm == 0.0 ? 0.0 : -gm * pow(q, gm - 1.0) * p * (1.0 - p) * (2.0 * yi - 1.0);
        double g    = dce * mod + ce * dmod;
        if (a >= 0) {
            double at = a * yi + (1.0 - a) * (1.0 - yi);
            l *= at;
            g *= at;
        }
        sum += l;
        if (d_x) d_x[i] = (float)(g * scale);
        if (loss_out && reduction == ISEG_REDUCTION_NONE) loss_out[i] = (float)l;
    }
    return reduce(reduction, sum, (double)n);
}

/* ---- soft Dice / Jaccard ---- */

/* one instance: loss w_j * Jaccard + w_d * Dice over P pixels; gradient into d (may be NULL),
 * multiplied by gscale (1/N for the mean over instances) */
static double dice_jaccard_one(float *d, const float *x, const float *t, size_t P, double eps,
                               double wj, double wd, double gscale) {
    double I = 0.0, sp = 0.0, st = 0.0;
    for (size_t j = 0; j < P; j++) {
        double p = sigmoid(x[j]);
        I += p * t[j];
        sp += p;
        st += t[j];
    }
    double dden = sp + st + eps;          /* Dice denominator */
    double jden = sp + st - I + eps;      /* Jaccard denominator (union) */
    double dice = 1.0 - (2.0 * I + eps) / dden;
    double jac  = 1.0 - (I + eps) / jden;
    if (d) {
        for (size_t j = 0; j < P; j++) {
            double p = sigmoid(x[j]), tj = t[j];
            /* dDice/dp = -(2 t dden - (2I + eps)) / dden^2
             * dJac/dp  = -(t jden - (I + eps)(1 - t)) / jden^2 */
            double gd = -(2.0 * tj * dden - (2.0 * I + eps)) / (dden * dden);
            double gj = -(tj * jden - (I + eps) * (1.0 - tj)) / (jden * jden);
            d[j]      = (float)(gscale * (wd * gd + wj * gj) * p * (1.0 - p));
        }
    }
    return wj * jac + wd * dice;
}

double iseg_dice_jaccard_loss(float *d_x, float *loss_out, const float *x, const float *t,
                              size_t N, size_t P, double eps, double w_jaccard, double w_dice) {
    ISEG_ASSERT(N == 0 || P == 0 || (x && t));
    if (N == 0) return 0.0;
    double sum = 0.0;
    for (size_t i = 0; i < N; i++) {
        double l = dice_jaccard_one(d_x ? d_x + i * P : NULL, x + i * P, t + i * P, P, eps,
                                    w_jaccard, w_dice, 1.0 / (double)N);
        if (loss_out) loss_out[i] = (float)l;
        sum += l;
    }
    return sum / (double)N;
}

double iseg_dice_loss(float *d_x, float *loss_out, const float *x, const float *t, size_t N,
                      size_t P, double eps) {
    return iseg_dice_jaccard_loss(d_x, loss_out, x, t, N, P, eps, 0.0, 1.0);
}

double iseg_jaccard_loss(float *d_x, float *loss_out, const float *x, const float *t, size_t N,
                         size_t P, double eps) {
    return iseg_dice_jaccard_loss(d_x, loss_out, x, t, N, P, eps, 1.0, 0.0);
}

/* ---- Mask R-CNN mask loss ----
 * ref: torchvision/models/detection/roi_heads.py maskrcnn_loss (0.14) */
double iseg_maskrcnn_mask_loss(float *d_logits, const float *logits, const float *targets,
                               const int64_t *labels, size_t N, size_t K, size_t M) {
    ISEG_ASSERT(N == 0 || (logits && targets && labels));
    size_t MM = M * M;
    if (d_logits)
        for (size_t i = 0; i < N * K * MM; i++) d_logits[i] = 0.0f;
    if (N == 0 || MM == 0) return 0.0;
    double scale = 1.0 / ((double)N * (double)MM), sum = 0.0;
    for (size_t b = 0; b < N; b++) {
        ISEG_ASSERT(labels[b] >= 0 && (uint64_t)labels[b] < K);
        size_t       off = (b * K + (size_t)labels[b]) * MM;
        const float *x = logits + off, *y = targets + b * MM;
        for (size_t j = 0; j < MM; j++) {
            double g;
            sum += bce_elem(x[j], y[j], 1.0, &g);
            if (d_logits) d_logits[off + j] = (float)(g * scale);
        }
    }
    return sum * scale;
}

/* ---- uncertainty weighting ---- */

double iseg_uncertainty_weighting(double *d_losses, float *d_s, const double *losses,
                                  const float *s, size_t n) {
    ISEG_ASSERT(n == 0 || (losses && s));
    double L = 0.0;
    for (size_t i = 0; i < n; i++) {
        double e = exp(-(double)s[i]);
        L += e * losses[i] + (double)s[i];
        if (d_losses) d_losses[i] = e;
        if (d_s) d_s[i] = (float)(1.0 - e * losses[i]);
    }
    return L;
}
