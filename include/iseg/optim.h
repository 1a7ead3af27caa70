/*
 * optim.h - optimizers (torch.optim.SGD, torch.optim.AdamW), learning-rate schedules and
 * gradient clipping, matching PyTorch 1.13's update rules.
 *
 *   struct iseg_param ps[2] = {{w1, g1, n1}, {w2, g2, n2}};   // weights and their gradients
 *   struct iseg_sgd_params sp = iseg_sgd_default_params();
 *   sp.lr = 0.02; sp.momentum = 0.9; sp.weight_decay = 1e-4;
 *   iseg_optim_t opt;
 *   if (iseg_optim_sgd_init(&opt, ps, 2, &sp) != ISEG_STATUS_OK) return 1;
 *
 *   int64_t ms[] = {16, 22};                                   // torchvision detection recipe
 *   struct iseg_lr_schedule sch = iseg_lr_schedule_default(0.02);
 *   sch.warmup_iters = 1000; sch.warmup_factor = 1e-3;
 *   sch.decay = ISEG_LR_MULTISTEP; sch.milestones = ms; sch.n_milestones = 2; sch.gamma = 0.1;
 *   for (int64_t it = 0, epoch = 0; epoch < 26; epoch++)
 *       for (int64_t b = 0; b < n_batches; b++, it++) {
 *           iseg_optim_zero_grad(opt);
 *           ... forward / backward into g1, g2 ...
 *           iseg_clip_grad_norm(ps, 2, 10.0);                 // optional
 *           iseg_optim_set_lr(opt, iseg_lr_schedule_get(&sch, it, epoch));
 *           iseg_optim_step(opt);
 *       }
 *   iseg_optim_free(opt);
 *
 * Parameters are (w, g, n) triples the caller owns; the optimizer owns only its state (momentum
 * buffers, Adam moments), allocated once at init: iseg_optim_step never allocates. Updates run
 * in element order with torch's operation order and float rounding per operation (fused
 * multiply-adds where torch's AVX2 kernels fuse them), bit-identical to torch 1.13 on the
 * tests' trajectories. Hyper-parameters are doubles, like Python floats in torch.
 *
 * Checkpoints: the state is a list of named float arrays with torch's state_dict names,
 * "param.<i>.momentum_buffer" (SGD), "param.<i>.step", "param.<i>.exp_avg",
 * "param.<i>.exp_avg_sq", "param.<i>.max_exp_avg_sq" (AdamW); enumerate them with
 * iseg_optim_state_count / iseg_optim_state_get and restore with iseg_optim_state_set.
 *
 * Thread-safety: a handle is not thread-safe; distinct handles may be used from distinct threads.
 */
#ifndef ISEG_OPTIM_H
#define ISEG_OPTIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "iseg.h"

#ifdef __cplusplus
extern "C" {
#endif

/* One parameter tensor: n weights and their gradient, both owned by the caller. */
struct iseg_param {
    float *w; /* (n) weights, updated in place by iseg_optim_step */
    float *g; /* (n) gradient, read by iseg_optim_step */
    size_t n;
};

typedef struct iseg_optim *iseg_optim_t;

/* torch.optim.SGD (maximize = False, dampening as given; torch's default dampening is 0). */
struct iseg_sgd_params {
    double lr;           /* default 0.01 (torch requires it; this is only a placeholder) */
    double momentum;     /* default 0 */
    double dampening;    /* default 0 */
    double weight_decay; /* default 0: L2 penalty added to the gradient */
    bool   nesterov;     /* default false; needs momentum > 0 and dampening == 0 */
};
/* torch's defaults (lr 0.01, everything else 0 / false). */
struct iseg_sgd_params iseg_sgd_default_params(void);

/* torch.optim.AdamW (decoupled weight decay, maximize = False). */
struct iseg_adamw_params {
    double lr;           /* default 1e-3 */
    double beta1, beta2; /* default 0.9, 0.999 */
    double eps;          /* default 1e-8 */
    double weight_decay; /* default 1e-2 */
    bool   amsgrad;      /* default false */
};
/* torch's defaults: lr 1e-3, betas (0.9, 0.999), eps 1e-8, weight_decay 1e-2, amsgrad false. */
struct iseg_adamw_params iseg_adamw_default_params(void);

/* Create an SGD optimizer over n_params parameters (the array is copied; the w/g buffers are
 * not). EINVAL for bad hyper-parameters (negative lr/momentum/decay, nesterov without
 * momentum or with dampening, a NULL buffer); ENOMEM. Free with iseg_optim_free(). */
enum iseg_status iseg_optim_sgd_init(iseg_optim_t *out, const struct iseg_param *params,
                                     size_t n_params, const struct iseg_sgd_params *p);
/* Create an AdamW optimizer (see iseg_optim_sgd_init). EINVAL for lr < 0, eps < 0,
 * betas outside [0, 1), weight_decay < 0 or a NULL buffer; ENOMEM. */
enum iseg_status iseg_optim_adamw_init(iseg_optim_t *out, const struct iseg_param *params,
                                       size_t n_params, const struct iseg_adamw_params *p);
/* Release the optimizer and its state. NULL is fine. */
void iseg_optim_free(iseg_optim_t o);

/* One update of every parameter from its current gradient. Never allocates. */
void iseg_optim_step(iseg_optim_t o);
/* Set every parameter gradient to zero. */
void iseg_optim_zero_grad(iseg_optim_t o);
/* Learning rate used by the next iseg_optim_step (a schedule sets it before each step). */
void   iseg_optim_set_lr(iseg_optim_t o, double lr);
double iseg_optim_get_lr(const iseg_optim_t o);
/* Number of iseg_optim_step calls since init (restored state does not change it). */
int64_t iseg_optim_step_count(const iseg_optim_t o);

/* One state tensor. name is owned by the optimizer (valid until the next call on the handle);
 * data points at the optimizer's own array (read it to save a checkpoint). */
struct iseg_optim_state {
    const char  *name; /* e.g. "param.3.exp_avg" */
    const float *data; /* (n) */
    size_t       n;
};
/* Number of state tensors present now. As in torch, state appears lazily: SGD with momentum has
 * no momentum buffers before its first step (and none at all without momentum); AdamW has
 * step, exp_avg, exp_avg_sq (and max_exp_avg_sq with amsgrad) per parameter after its first. */
size_t iseg_optim_state_count(const iseg_optim_t o);
/* State tensor i (0 <= i < iseg_optim_state_count), parameter-major in torch's key order.
 * "param.<i>.step" is one float, the per-parameter step count (a float tensor in torch 1.13). */
struct iseg_optim_state iseg_optim_state_get(const iseg_optim_t o, size_t i);
/* Restore one named state tensor (copied in) and mark it present. EINVAL for a name this
 * optimizer does not have, ESHAPE when n differs from the parameter's size (1 for "step").
 * For AdamW, restore all of one parameter's tensors before stepping. */
enum iseg_status iseg_optim_state_set(iseg_optim_t o, const char *name, const float *data,
                                      size_t n);

/* ---- gradient clipping (torch.nn.utils.clip_grad_norm_, norm_type 2) ----
 * total = sqrt(sum of g^2 over every element of every gradient), summed in double in parameter
 * then element order; clip_coef = max_norm / (total + 1e-6); when clip_coef < 1 every gradient
 * is multiplied by it (as float). Returns total. A non-finite total behaves as torch with
 * error_if_nonfinite = False: the gradients are scaled by the NaN/0 coefficient, so check the
 * return value and skip the step. */
double iseg_clip_grad_norm(const struct iseg_param *params, size_t n_params, double max_norm);

/* ---- learning-rate schedules ----
 * lr = warmup(warmup_step) * decayed(decay_step), where
 *   warmup(i) = warmup_factor + (1 - warmup_factor) * min(i, warmup_iters) / warmup_iters
 *     (torch LinearLR(start_factor = warmup_factor, total_iters = warmup_iters) closed form, the
 *     torchvision detection reference's warm-up; 1 when warmup_iters is 0), and
 *   decayed(e) = base_lr                                          ISEG_LR_CONSTANT
 *   decayed(e) = base_lr * gamma^(number of milestones <= e)      ISEG_LR_MULTISTEP (MultiStepLR)
 *   decayed(e) = eta_min + (base_lr - eta_min) * (1 + cos(pi * e / t_max)) / 2
 *                                                                 ISEG_LR_COSINE (closed form of
 *                                                                 CosineAnnealingLR)
 * The two steps are separate because torchvision's reference warms up per iteration (in epoch 0)
 * and decays per epoch: pass (global iteration, epoch). For a per-iteration schedule pass the
 * iteration twice. */
enum iseg_lr_decay {
    ISEG_LR_CONSTANT  = 0,
    ISEG_LR_MULTISTEP = 1,
    ISEG_LR_COSINE    = 2,
    ISEG_LR_DECAY_COUNT = 3,
};
struct iseg_lr_schedule {
    double             base_lr;
    int64_t            warmup_iters;  /* 0: no warm-up */
    double             warmup_factor; /* starting factor, default 1e-3 */
    enum iseg_lr_decay decay;
    const int64_t     *milestones;    /* (n_milestones) increasing, MULTISTEP; not owned */
    size_t             n_milestones;
    double             gamma;         /* MULTISTEP factor, default 0.1 */
    int64_t            t_max;         /* COSINE period (half a cosine), > 0 */
    double             eta_min;       /* COSINE floor, default 0 */
};
/* Defaults: base_lr as given, no warm-up (factor 1e-3 once warmup_iters is set), constant. */
struct iseg_lr_schedule iseg_lr_schedule_default(double base_lr);
/* Learning rate for a warm-up step and a decay step (both >= 0); see above. */
double iseg_lr_schedule_get(const struct iseg_lr_schedule *s, int64_t warmup_step,
                            int64_t decay_step);

#ifdef __cplusplus
}
#endif

#endif /* ISEG_OPTIM_H */
