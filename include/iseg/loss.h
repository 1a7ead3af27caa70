/*
 * loss.h - training losses with their gradients, matching PyTorch / torchvision definitions.
 *
 *   // Mask R-CNN box regression (torchvision roi_heads.fastrcnn_loss):
 *   //   box_loss = smooth_l1(pred, target, beta=1/9, reduction="sum") / labels.numel()
 *   double l = iseg_smooth_l1_loss(d_pred, NULL, pred, target, 4 * n_pos, 1.0f / 9,
 *                                  ISEG_REDUCTION_SUM);
 *   l /= (double)n_sampled;                         // the loss ...
 *   for (size_t i = 0; i < 4 * n_pos; i++)          // ... and its gradient, by the same count
 *       d_pred[i] = (float)(d_pred[i] / (double)n_sampled);
 *
 *   // classification: logits (N, K), integer targets (N)
 *   struct iseg_ce_params cp = iseg_ce_default_params();   // mean, ignore_index -100
 *   double ce = iseg_softmax_ce_loss(d_logits, NULL, logits, labels, N, K, 1, &cp);
 *
 * Conventions shared by every function here:
 * - Inputs are float; every per-element formula and every sum is evaluated in double, in index
 *   order (deterministic, independent of threads). The loss is returned as a double.
 * - Gradients are WRITTEN (not accumulated) into d_<input> (float, same shape as the input) when
 *   that pointer is not NULL: exactly what torch's backward of the reduced loss gives for a
 *   grad_output of 1. With ISEG_REDUCTION_NONE, d_x[i] is the derivative of element i's loss
 *   (torch's backward with grad_output = ones) and the return value is the sum of the
 *   per-element losses, which go to loss_out when it is not NULL.
 * - Shape contract violations (a class index out of range, a NULL input) are caller bugs and
 *   abort through ISEG_ASSERT. Nothing allocates; all functions are reentrant.
 */
#ifndef ISEG_LOSS_H
#define ISEG_LOSS_H

#include <stddef.h>
#include <stdint.h>

#include "iseg.h"

#ifdef __cplusplus
extern "C" {
#endif

enum iseg_reduction {
    ISEG_REDUCTION_NONE  = 0, /* per-element losses (to loss_out); returns their sum */
    ISEG_REDUCTION_MEAN  = 1, /* torch "mean" (a weighted mean where torch has one) */
    ISEG_REDUCTION_SUM   = 2, /* torch "sum" */
    ISEG_REDUCTION_COUNT = 3,
};

/* ---- binary cross-entropy with logits (torch.nn.functional.binary_cross_entropy_with_logits) ----
 * l_i = w_i * [(1 - y_i) x_i + lw_i * (log1p(exp(-|x_i|)) + max(-x_i, 0))],
 * lw_i = 1 + (pos_weight_i - 1) y_i; without pos_weight this is max(x,0) - x y + log1p(exp(-|x|)).
 * weight and pos_weight broadcast over the trailing dimension like torch tensors of shape
 * (n_weight,) / (n_pos_weight,): element i uses weight[i % n_weight]; the lengths must divide n.
 * Mean divides by n (torch's mean is unweighted in the count). */
struct iseg_bce_params {
    const float        *weight;       /* (n_weight) or NULL */
    size_t              n_weight;
    const float        *pos_weight;   /* (n_pos_weight) or NULL */
    size_t              n_pos_weight;
    enum iseg_reduction reduction;    /* default MEAN */
};
/* Defaults: no weights, mean. */
struct iseg_bce_params iseg_bce_default_params(void);
/* BCE with logits over n elements x (logits) and y (targets in [0, 1], soft targets allowed).
 * Returns the reduced loss; writes d_x (n) and, for NONE, loss_out (n) when not NULL.
 * n == 0 with MEAN gives NaN (torch's mean of nothing) and writes nothing. */
double iseg_bce_logits_loss(float *d_x, float *loss_out, const float *x, const float *y, size_t n,
                            const struct iseg_bce_params *p);

/* ---- softmax cross-entropy (torch.nn.functional.cross_entropy with class indices) ----
 * logits (N, K, S), targets (N, S): S = 1 for plain classification, S = H*W for dense
 * prediction (torch's (N, K, H, W) layout). l = -w[t] * log_softmax(x)[t]; targets equal to
 * ignore_index contribute 0 loss and 0 gradient. MEAN = sum(l) / sum(w[t] over non-ignored),
 * torch's weighted mean; when every target is ignored that is 0/0 = NaN (as torch) and all
 * gradients are 0. A target outside [0, K) that is not ignore_index aborts (torch raises). */
struct iseg_ce_params {
    const float        *weight;       /* (K) class weights or NULL */
    int64_t             ignore_index; /* default -100 */
    enum iseg_reduction reduction;    /* default MEAN */
};
/* Defaults: no class weights, ignore_index -100, mean. */
struct iseg_ce_params iseg_ce_default_params(void);
/* Returns the reduced loss; writes d_logits (N*K*S) and, for NONE, loss_out (N*S). */
double iseg_softmax_ce_loss(float *d_logits, float *loss_out, const float *logits,
                            const int64_t *target, size_t N, size_t K, size_t S,
                            const struct iseg_ce_params *p);

/* ---- smooth L1 (torch.nn.functional.smooth_l1_loss) ----
 * d = x - y: 0.5 d^2 / beta where |d| < beta, |d| - 0.5 beta elsewhere; beta = 0 is L1 (as torch,
 * with gradient sign(d), 0 at d = 0). Gradient d/beta inside, sign(d) outside (torch's backward).
 * torchvision's detection heads use beta = 1/9 with SUM, then divide by a count: call with
 * ISEG_REDUCTION_SUM and divide the result and d_x by that count (see the example above).
 * Returns the reduced loss (MEAN of 0 elements: NaN); writes d_x (n), loss_out (n, NONE). */
double iseg_smooth_l1_loss(float *d_x, float *loss_out, const float *x, const float *y, size_t n,
                           float beta, enum iseg_reduction reduction);

/* ---- sigmoid focal loss (torchvision.ops.sigmoid_focal_loss, 0.14) ----
 * p = sigmoid(x), ce = bce_with_logits(x, y), p_t = p y + (1 - p)(1 - y),
 * l = ce (1 - p_t)^gamma, times alpha_t = alpha y + (1 - alpha)(1 - y) when alpha >= 0.
 * torchvision's defaults: alpha 0.25, gamma 2, reduction "none" (RetinaNet sums, then divides
 * by the number of foreground anchors). Returns the reduced loss; writes d_x, loss_out (NONE). */
double iseg_sigmoid_focal_loss(float *d_x, float *loss_out, const float *x, const float *y,
                               size_t n, float alpha, float gamma, enum iseg_reduction reduction);

/* ---- soft Dice / Jaccard on sigmoid probabilities, per instance ----
 * x: logits (N, P) (N instances of P pixels each), t: targets (N, P) in [0, 1]; p = sigmoid(x),
 * I = sum p t, Sp = sum p, St = sum t over one instance's pixels:
 *   Dice_i    = 1 - (2 I + eps) / (Sp + St + eps)
 *   Jaccard_i = 1 - (I + eps) / (Sp + St - I + eps)
 * The loss is the mean over the N instances (N == 0 gives 0 and writes nothing). eps smooths
 * empty masks; ISEG_DICE_EPS_DEFAULT = 1.0, the common choice. loss_out (N, may be NULL)
 * receives the per-instance losses (for the composite, w_j Jaccard_i + w_d Dice_i). */
#define ISEG_DICE_EPS_DEFAULT 1.0
/* Soft Dice loss; writes d_x (N*P) when not NULL. */
double iseg_dice_loss(float *d_x, float *loss_out, const float *x, const float *t, size_t N,
                      size_t P, double eps);
/* Soft Jaccard (IoU) loss; writes d_x (N*P) when not NULL. */
double iseg_jaccard_loss(float *d_x, float *loss_out, const float *x, const float *t, size_t N,
                         size_t P, double eps);
/* w_jaccard * Jaccard + w_dice * Dice (both means over instances); the usual weights are
 * 2 : 1 (ISEG_JACCARD_WEIGHT_DEFAULT, ISEG_DICE_WEIGHT_DEFAULT). Writes d_x (N*P). */
#define ISEG_JACCARD_WEIGHT_DEFAULT 2.0
#define ISEG_DICE_WEIGHT_DEFAULT    1.0
double iseg_dice_jaccard_loss(float *d_x, float *loss_out, const float *x, const float *t,
                              size_t N, size_t P, double eps, double w_jaccard, double w_dice);

/* ---- Mask R-CNN class-specific mask loss (torchvision roi_heads.maskrcnn_loss) ----
 * logits (N, K, M, M), targets (N, M, M), labels (N) in [0, K): BCE with logits between the
 * label's channel and the target, mean over the N*M*M elements. d_logits (N*K*M*M) is written
 * whole: zero in every other channel. N == 0 returns 0 (torchvision: mask_logits.sum() * 0). */
double iseg_maskrcnn_mask_loss(float *d_logits, const float *logits, const float *targets,
                               const int64_t *labels, size_t N, size_t K, size_t M);

/* ---- multi-task weighting with learned uncertainty (Kendall, Gal & Cipolla, CVPR 2018) ----
 * L = sum_i exp(-s_i) L_i + s_i, with s_i = log sigma_i^2 learned (a float parameter).
 * Writes d_losses[i] = exp(-s_i) (the scale to apply to task i's gradients) and
 * d_s[i] = 1 - exp(-s_i) L_i (the gradient of s_i); either may be NULL. Returns L. */
double iseg_uncertainty_weighting(double *d_losses, float *d_s, const double *losses,
                                  const float *s, size_t n);

#ifdef __cplusplus
}
#endif

#endif /* ISEG_LOSS_H */
