/*
 * train.h - training a ResNet-FPN Mask R-CNN in C: the forward pass in training mode, the five
 * losses of torchvision's Mask R-CNN, and the backward pass into every parameter.
 *
 *   struct iseg_train_arch ar = iseg_train_arch_compact(2);   // background + 1 class
 *   struct iseg_trainer_params tp = iseg_trainer_default_params();
 *   iseg_trainer_t t;
 *   char err[256];
 *   if (iseg_trainer_new(&t, &ar, &tp, 42, err, sizeof(err))) { fputs(err, stderr); return 1; }
 *   size_t np;
 *   const struct iseg_param *ps = iseg_trainer_params(t, &np);     // for optim.h
 *   iseg_optim_t opt;
 *   iseg_optim_sgd_init(&opt, ps, np, &sgd);
 *   for (each batch of B samples) {
 *       iseg_optim_zero_grad(opt);
 *       for (b = 0; b < B; b++) {
 *           struct iseg_train_losses l;
 *           iseg_trainer_step(t, &samples[b], 1.0f / B, &l);    // forward + backward
 *       }
 *       iseg_optim_step(opt);
 *   }
 *   iseg_trainer_save(t, "model.safetensors", NULL, true, NULL, 0, err, sizeof(err));
 *   iseg_optim_free(opt);
 *   iseg_trainer_free(t);
 *
 * The model is torchvision's MaskRCNN with a ResNet body (basic or bottleneck blocks) and batch
 * norm, an FPN (P2..P6, no norm), a one-conv RPN head, the two-fc box head and the
 * four-conv mask head (the "v1" heads). Tensors carry torchvision's state-dict names, so a
 * trained model is a state dict that iseg_model_init_from_file() (inference, BN folded), iseg
 * itself (--init) and torch's load_state_dict() all read.
 *
 * One step (ref: torchvision/models/detection/{transform,rpn,roi_heads}.py, 0.14):
 * - the sample is resized so that its short side is min_size (long side at most max_size), as
 *   GeneralizedRCNNTransform scales (the uint8 image bilinearly, masks nearest, boxes scaled;
 *   see iseg_augment_resize), normalised with the ImageNet mean/std and zero-padded to a
 *   multiple of 32;
 * - batch norm in training mode (batch statistics of the image, running statistics updated
 *   with momentum 0.1) unless frozen_bn;
 * - RPN: anchors matched to the ground truth (IoU 0.7 / 0.3 with low-quality matches),
 *   rpn_batch anchors sampled at rpn_pos_fraction positives; objectness BCE (mean over the
 *   sampled anchors) and smooth-L1 (beta 1/9) of the positives' deltas summed and divided by
 *   the number sampled;
 * - proposals: the top rpn_pre_nms of each level, decoded, clipped, NMS 0.7 per level, the
 *   first rpn_post_nms (no gradient flows through them); the ground-truth boxes appended;
 * - RoI heads: proposals matched at IoU 0.5, box_batch sampled at box_pos_fraction positives
 *   (kept in proposal order); cross-entropy over the sampled RoIs, smooth-L1 (beta 1/9) of the
 *   positives' class-specific deltas (weights 10, 10, 5, 5) divided by the number sampled;
 * - mask head on the positive RoIs: the loss on the ground-truth class's 28 x 28 channel
 *   against RoIAlign of the ground-truth mask (torchvision's BCE by default, or Dice, Jaccard,
 *   focal, or Jaccard + Dice 2:1).
 * The samplers draw from the trainer's PRNG (seeded at creation), so a run is reproducible.
 * With batch sizes above the number of candidates every candidate is taken, and the losses
 * and gradients equal torch autograd's (tests/unit/test_train_maskrcnn.c).
 *
 * Memory: activations live in an arena that grows to the largest image's need and is reused;
 * a step allocates nothing once it has seen its largest image. Thread-safety: a trainer is not
 * thread-safe; its operators run on its own engine (n_threads).
 */
#ifndef ISEG_TRAIN_H
#define ISEG_TRAIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "augment.h"
#include "iseg.h"
#include "optim.h"
#include "weights.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct iseg_trainer *iseg_trainer_t;

/* Architecture of a new model (torchvision module layout). */
struct iseg_train_arch {
    int   num_classes;     /* K, including the background (>= 2) */
    bool  bottleneck;      /* Bottleneck blocks (ResNet-50 style) or basic blocks */
    int   n_blocks[4];     /* blocks per stage */
    int   width;           /* stem channels; stage L has width << L channels (basic) or
                              width << L inner and 4 width << L output channels (bottleneck) */
    int   fpn;             /* FPN channels */
    int   rep;             /* box head representation size */
    int   mask_ch;         /* mask head channels */
    float anchor_sizes[5]; /* anchor size of P2..P6 */
};
/* iseg's compact model: basic blocks 2-2-2-2, width 32, FPN 128, box head 256, mask head 128,
 * anchors 16..256 (as tools/maskrcnn_parity.py compact_model()). */
struct iseg_train_arch iseg_train_arch_compact(int num_classes);

enum iseg_mask_loss {
    ISEG_MASK_LOSS_BCE = 0,      /* torchvision's maskrcnn_loss */
    ISEG_MASK_LOSS_DICE,         /* soft Dice per RoI, mean */
    ISEG_MASK_LOSS_JACCARD,      /* soft Jaccard per RoI, mean */
    ISEG_MASK_LOSS_FOCAL,        /* sigmoid focal (alpha 0.25, gamma 2), mean over pixels */
    ISEG_MASK_LOSS_JACCARD_DICE, /* 2 Jaccard + 1 Dice */
    ISEG_MASK_LOSS_COUNT
};
/* "bce", "dice", "jaccard", "focal", "jaccard_dice"; NULL out of range. */
const char *iseg_mask_loss_name(enum iseg_mask_loss l);
/* Inverse; ISEG_MASK_LOSS_COUNT when unknown. */
enum iseg_mask_loss iseg_mask_loss_from_name(const char *name);

struct iseg_trainer_params {
    int    min_size, max_size;      /* image scaling (default 512, 1024) */
    int    crop_size;               /* > 0: then a random crop of at most crop_size squared
                                       (iseg_augment_random_crop, the trainer's PRNG): the
                                       cost of a step is bounded; default 0 (whole image) */
    int    rpn_batch;               /* anchors sampled per image (256) */
    double rpn_pos_fraction;        /* (0.5) */
    int    rpn_pre_nms, rpn_post_nms; /* proposals per level before NMS, in all after (2000) */
    float  rpn_nms_thresh;          /* (0.7) */
    int    box_batch;               /* RoIs sampled per image (512) */
    double box_pos_fraction;        /* (0.25) */
    enum iseg_mask_loss mask_loss;  /* (BCE) */
    bool   uncertainty_weighting;   /* learn one log-variance per loss (Kendall et al. 2018):
                                       L = sum exp(-s_i) L_i + s_i; s is the parameter
                                       "iseg.loss_log_vars" (5); default false */
    bool   frozen_bn;               /* FrozenBatchNorm2d (running statistics, no learning) in
                                       place of training-mode batch norm (default false) */
    int    n_threads;               /* engine threads; <= 0: one per CPU (default 0) */
};
/* The defaults above. */
struct iseg_trainer_params iseg_trainer_default_params(void);

/* A new model with torchvision's initialisation (ResNet convs Kaiming-normal fan-out, BN 1/0,
 * FPN Kaiming-uniform a=1, RPN normal 0.01, linear layers torch's default, mask head
 * Kaiming-normal), drawn from a PRNG seeded with seed, which then drives the samplers.
 * EINVAL for a bad arch or params (message in err); ENOMEM. */
enum iseg_status iseg_trainer_new(iseg_trainer_t *t, const struct iseg_train_arch *arch,
                                  const struct iseg_trainer_params *p, uint64_t seed, char *err,
                                  size_t errlen);
/* A model initialised from a state dict (safetensors or .pth, torchvision names, old names of
 * the FPN/RPN/mask head accepted), e.g. a torchvision checkpoint or an iseg model: its
 * architecture is read from the tensors (v1 heads with BN in the backbone only; v2 models are
 * EINVAL). num_classes > 0 different from the file's re-initialises the class-specific layers
 * (box predictor, mask logits) for fine-tuning on another label set; 0 keeps them.
 * Tensors missing from the file keep their fresh initialisation and are counted in
 * *n_missing (may be NULL); unexpected tensors or wrong shapes are EFORMAT naming the tensor. */
enum iseg_status iseg_trainer_from_weights(iseg_trainer_t *t, const iseg_weights_t w,
                                           int num_classes, const struct iseg_trainer_params *p,
                                           uint64_t seed, size_t *n_missing, char *err,
                                           size_t errlen);
void iseg_trainer_free(iseg_trainer_t t); /* NULL is fine */

/* The architecture (as read or given). */
struct iseg_train_arch iseg_trainer_arch(const iseg_trainer_t t);

/* The trainable parameters (weights and gradient buffers owned by the trainer) in a fixed
 * order, for optim.h; *n receives the count. Valid until iseg_trainer_free(). */
const struct iseg_param *iseg_trainer_params(const iseg_trainer_t t, size_t *n);

/* Every named tensor: the parameters (grad != NULL) and the batch-norm running statistics
 * (grad == NULL). */
struct iseg_train_tensor {
    const char    *name;
    int            ndim;
    const int64_t *shape;
    float         *data;
    float         *grad; /* NULL for buffers */
    size_t         n;
};
size_t                   iseg_trainer_tensor_count(const iseg_trainer_t t);
struct iseg_train_tensor iseg_trainer_tensor(const iseg_trainer_t t, size_t i);
/* By name; false when absent. */
bool iseg_trainer_find(const iseg_trainer_t t, const char *name, struct iseg_train_tensor *out);

/* Zero every gradient. */
void iseg_trainer_zero_grad(iseg_trainer_t t);

struct iseg_train_losses {
    double objectness, rpn_box, classifier, box, mask; /* torchvision's loss_* names */
    double total;          /* the weighted sum that was differentiated */
    int    rpn_pos, rpn_neg; /* sampled anchors */
    int    roi_pos, roi_neg; /* sampled RoIs */
    int    n_gt;           /* ground-truth instances after resizing */
    int    height, width;  /* resized image */
    /* wall time of the step's parts in milliseconds: forward backbone + FPN (with the packing
     * of the weights for the step's convolutions), RPN (head,
     * proposals, anchor targets), box head, mask head (with its targets); backward of the
     * mask head, box head, RPN head, FPN + backbone */
    double ms_fwd_backbone, ms_fwd_rpn, ms_fwd_box, ms_fwd_mask;
    double ms_bwd_mask, ms_bwd_box, ms_bwd_rpn, ms_bwd_backbone;
};

/* Forward and backward of one sample: gradients += grad_scale * d(total)/d(parameter)
 * (grad_scale 1/B averages a batch of B images). The sample is resized in place when its size
 * differs from the training size. Labels must be in 1 .. K-1 (EINVAL otherwise, with a
 * message); a sample without instances trains the RPN and box classifier on background only.
 * ENOMEM. Non-finite losses are reported in *out, not refused: the caller decides. */
enum iseg_status iseg_trainer_step(iseg_trainer_t t, struct iseg_sample *s, float grad_scale,
                                   struct iseg_train_losses *out);

/* Write the model as a safetensors state dict (parameters and running statistics; the
 * parameters F16 when f16, else F32; running statistics always F32) atomically, with metadata
 * (NULL or key, value, ..., NULL) plus the model's own (iseg.anchor_sizes, iseg.min_size,
 * iseg.max_size, and iseg.bn_stats = "image" (inference normalises each image by its own
 * statistics, as the training forward pass does) or "running" with frozen_bn, unless metadata
 * sets it), and n_extra further tensors (e.g. a checkpoint's optimizer state, named
 * "opt.*" or "train.*" so that iseg_trainer_from_weights() skips them). */
enum iseg_status iseg_trainer_save(const iseg_trainer_t t, const char *path,
                                   const char *const *metadata, bool f16,
                                   const struct iseg_weight *extra, size_t n_extra, char *err,
                                   size_t errlen);

/* The PRNG of the samplers (to save and restore with a checkpoint). */
struct iseg_rng *iseg_trainer_rng(iseg_trainer_t t);
/* The training parameters in use. */
struct iseg_trainer_params iseg_trainer_get_params(const iseg_trainer_t t);

/* Message of the last failure. */
const char *iseg_trainer_last_error(const iseg_trainer_t t);

#ifdef __cplusplus
}
#endif

#endif /* ISEG_TRAIN_H */
