/* maskrcnn_impl.h - Mask R-CNN R50-FPN internals shared by the loader, forward pass and
 * post-processing (never installed). */
#ifndef ISEG_MASKRCNN_IMPL_H
#define ISEG_MASKRCNN_IMPL_H

#include "core/core_impl.h"
#include "iseg/model.h"
#include "iseg/nn.h"
#include "iseg/tensor.h"

#define MRCNN_N_BLOCKS 16 /* ResNet-50: 3 + 4 + 6 + 3 bottlenecks */
#define MRCNN_N_LEVELS 5  /* P2..P6 */
#define MRCNN_N_ANCHORS 3 /* aspect ratios per location */

struct mrcnn_bottleneck {
    iseg_conv2d_t conv1, conv2, conv3; /* backbone.body.layerL.B.conv{1,2,3} (+ bn folded) */
    iseg_conv2d_t down;                /* backbone.body.layerL.0.downsample.{0,1}, or NULL */
};

struct iseg_model {
    enum iseg_arch arch;
    int            num_classes; /* K, including background */
    int            hidden;      /* box head representation size (1024) */
    /* backbone */
    iseg_conv2d_t           conv1; /* backbone.body.conv1 + bn1 */
    struct mrcnn_bottleneck blocks[MRCNN_N_BLOCKS];
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
    iseg_conv2d_t   mask_conv[4];
    iseg_deconv2d_t mask_deconv;
    float          *mask_logit_w; /* (K, 256) */
    float          *mask_logit_b; /* (K) */
};

#endif /* ISEG_MASKRCNN_IMPL_H */
