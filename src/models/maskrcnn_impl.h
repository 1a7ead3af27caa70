/* maskrcnn_impl.h - Mask R-CNN R50-FPN internals shared by the loader, forward pass and
 * post-processing (never installed). */
#ifndef ISEG_MASKRCNN_IMPL_H
#define ISEG_MASKRCNN_IMPL_H

#include "core/core_impl.h"
#include "iseg/model.h"
#include "iseg/nn.h"
#include "iseg/tensor.h"
#include "iseg/weights.h"

#define MRCNN_MAX_BLOCKS 64 /* residual blocks over the four stages (ResNet-50: 16) */
#define MRCNN_N_LEVELS 5  /* P2..P6 */
#define MRCNN_N_ANCHORS 3 /* aspect ratios per location */

/* A batch norm applied with each image's own statistics (ISEG_BN_STATS_IMAGE): its affine
 * parameters (C each); gamma NULL when the batch norm is folded into its convolution. */
struct mrcnn_ibn {
    float *gamma, *beta;
};

/* A residual block: a bottleneck (1x1, 3x3 with the stride, 1x1) or a basic block (3x3 with
 * the stride, 3x3; conv3 NULL), as torchvision's ResNet builds them. */
struct mrcnn_bottleneck {
    iseg_conv2d_t conv1, conv2, conv3; /* backbone.body.layerL.B.conv{1,2,3} (+ bn folded) */
    iseg_conv2d_t down;                /* backbone.body.layerL.0.downsample.{0,1}, or NULL */
    struct mrcnn_ibn bn1, bn2, bn3, bnd; /* per-image batch norms (gamma NULL: folded) */
};

/* The dimensions of a ResNet-FPN Mask R-CNN, read from the weights (or fixed by the arch). */
struct mrcnn_cfg {
    bool  bottleneck;     /* Bottleneck (ResNet-50) or BasicBlock (ResNet-18-like) */
    int   n_blocks[4];    /* blocks per stage */
    int   stem;           /* conv1 output channels */
    int   width[4];       /* each stage's block width (bottleneck: the 3x3 width) */
    int   out[4];         /* each stage's output channels */
    int   fpn;            /* FPN channels */
    int   rpn_convs;      /* 3x3 convs of the RPN head (v1: 1, v2: 2) */
    int   box_convs;      /* v2: 4 conv+BN+ReLU before the fc */
    int   box_fcs;        /* v1: fc6, fc7; v2: 1 */
    int   rep;            /* box head representation size */
    int   mask_convs;     /* mask head 3x3 convs */
    int   mask_ch;        /* their channels */
    int   num_classes;
    bool  head_bn;        /* v2: batch norms after the FPN and head convs */
    float anchor_sizes[MRCNN_N_LEVELS];
};

struct iseg_model {
    enum iseg_arch   arch;
    struct mrcnn_cfg cfg;
    int              num_classes; /* K, including background */
    int              hidden;      /* box head representation size (1024) */
    enum iseg_bn_stats bn_stats;  /* RUNNING (folded) or IMAGE */
    enum iseg_precision precision; /* of the convolutions and linear layers (see load) */
    /* from the weights file's metadata (safetensors "__metadata__"), when present */
    struct iseg_infer_params infer; /* defaults for this model */
    char           **class_names;   /* (num_classes) or NULL */
    int64_t         *category_ids;  /* (num_classes) or NULL: label -> dataset category id */
    /* backbone */
    iseg_conv2d_t           conv1; /* backbone.body.conv1 + bn1 */
    struct mrcnn_ibn        bn1;   /* its batch norm when per image */
    struct mrcnn_bottleneck blocks[MRCNN_MAX_BLOCKS];
    /* FPN: 1x1 laterals and 3x3 outputs (v2: BN folded) */
    iseg_conv2d_t fpn_inner[4], fpn_layer[4];
    /* RPN head: 1 (v1) or 2 (v2) 3x3 convs + ReLU, then cls_logits (3) and bbox_pred (12) fused
     * into one 1x1 conv of 15 outputs: channels 0..2 logits, 3..14 deltas */
    iseg_conv2d_t rpn_conv[2];
    int           n_rpn_conv;
    iseg_conv2d_t rpn_out;
    /* box head: v1 fc6 + fc7; v2 four 3x3 conv+BN+ReLU then one fc */
    iseg_conv2d_t box_conv[4];
    int           n_box_conv;
    iseg_linear_t box_fc[2];
    int           n_box_fc;
    /* box predictor fused: K class logits then 4 K deltas */
    iseg_linear_t box_pred;
    /* mask head: 4 x (3x3 conv + ReLU), deconv 2x2/2 + ReLU, 1x1 logits per class */
    iseg_conv2d_t   mask_conv[8];
    iseg_deconv2d_t mask_deconv;
    float          *mask_logit_w; /* (K, mask_ch) */
    float          *mask_logit_b; /* (K) */
};

/* A k x k convolution with a stride and a padding (dilation 1, one group). */
static inline struct iseg_conv2d_desc mrcnn_conv_desc(int cin, int cout, int k, int stride,
                                                      int pad) {
    struct iseg_conv2d_desc d = iseg_conv2d_default_desc(cin, cout, k);
    d.stride_h = d.stride_w = stride;
    d.pad_h = d.pad_w = pad;
    return d;
}

/* The dimensions of a ResNet-FPN Mask R-CNN state dict (plain torchvision names) and its
 * inference defaults from the metadata; EFORMAT with a message naming what is missing. */
enum iseg_status mrcnn_cfg_read(const iseg_weights_t w, struct mrcnn_cfg *g,
                                struct iseg_infer_params *infer, char *err, size_t errlen);

/* ---- region proposals (maskrcnn_rpn.c), shared by inference and training ---- */

/* torchvision.ops.batched_nms as it dispatches on the CPU: for up to 1000 boxes the coordinate
 * trick (boxes offset by idx * (max + 1) in float, one NMS), otherwise one NMS per group.
 * Returns the number kept (keep in score order), -1 when the arena is exhausted. */
int mrcnn_batched_nms(iseg_arena_t a, int *keep, const float *boxes, const float *scores,
                      const int *idxs, int n, float thresh);

/* Proposal candidates gathered level by level (rpn.py filter_proposals). */
struct mrcnn_props {
    iseg_arena_t a;
    int          pre; /* pre_nms_top_n per level */
    int          n;   /* candidates so far */
    float       *boxes, *scores, *deltas, *anchors;
    int         *lvl;
};
/* Room for the top `pre` of each level; level_hw[l] = H * W of level l. false on ENOMEM. */
bool mrcnn_props_init(struct mrcnn_props *p, iseg_arena_t a, const int *level_hw, int pre);
/* Add level l's top-k anchors by objectness logit (obj (A, H, W); dmap (4 A, H, W) deltas,
 * anchor-major), with their anchors (size, strides) and deltas. */
bool mrcnn_props_add_level(struct mrcnn_props *p, int l, const float *obj, const float *dmap,
                           int H, int W, float size, int stride_h, int stride_w);
/* Decode, sigmoid, clip to the image, drop boxes with a side < 1e-3, batched NMS per level,
 * keep the first `post`: *out_boxes (out_n, 4) from the arena. */
bool mrcnn_props_finish(struct mrcnn_props *p, int img_h, int img_w, float nms_thresh, int post,
                        float **out_boxes, int *out_n);

/* MultiScaleRoIAlign over P2..P5 (ops/poolers.py; sampling ratio 2, not aligned): level l's
 * scale is 2^round(log2(H[l] / img_h)), RoI n goes to levels[n] by torchvision's LevelMapper
 * (canonical 224 at level 4), out (N, C, S, S). scales (4) and *n_lv (levels in use) are
 * written too, for a backward pass. levels holds N ints. */
void mrcnn_roi_pool(iseg_engine_t e, float *out, int *levels, float scales[4], int *n_lv,
                    const float *const feats[4], const int H[4], const int W[4], int C,
                    const float *boxes, int N, int S, int img_h);

/* The image size GeneralizedRCNNTransform resizes an H0 x W0 image to (its float32
 * arithmetic): short side min_size unless the long side would exceed max_size. */
void mrcnn_resized_size(int H0, int W0, int min_size, int max_size, int *oh, int *ow);

#endif /* ISEG_MASKRCNN_IMPL_H */
