/*
 * model.h - instance segmentation models: Mask R-CNN R50-FPN (torchvision v1 and v2) in C.
 *
 *   iseg_model_t m;
 *   char err[512];
 *   struct iseg_model_params mp = iseg_model_default_params();  // arch: detected from the file
 *   if (iseg_model_init_from_file(&m, "maskrcnn_resnet50_fpn_coco-bf2d0c1e.pth", mp, err,
 *                                 sizeof(err)) != ISEG_STATUS_OK) {
 *       fprintf(stderr, "%s\n", err);  // "...: backbone.body.conv1.weight: got [64,3,3,3], expected [64,3,7,7]"
 *       return 1;
 *   }
 *   struct iseg_infer_params ip = iseg_infer_default_params();  // torchvision's defaults
 *   iseg_infer_t ctx;
 *   iseg_infer_init(&ctx, m, ip);
 *   struct iseg_detections dets = {0};
 *   iseg_infer_run(ctx, &rgb8_image, &dets);     // boxes, scores, labels, RLE masks
 *   for (size_t i = 0; i < dets.n; i++) printf("%d %.3f\n", dets.d[i].label, dets.d[i].score);
 *   iseg_detections_free(&dets);
 *   iseg_infer_free(ctx);
 *   iseg_model_free(m);
 *
 * The computation follows torchvision 0.14's MaskRCNN in eval mode (transform, ResNet-50-FPN,
 * RPN, RoI heads, mask pasting; see shared/specs/maskrcnn-torchvision.md); with the same weights,
 * the detections agree with torchvision's (scores within 1e-4, boxes within 0.01 px, masks at
 * IoU >= 0.999), which tests/unit/test_maskrcnn.c checks.
 *
 * Weights: a state dict in safetensors or PyTorch .pth form (see weights.h), with the current
 * torchvision names or the older names of the released checkpoints. Every tensor is checked:
 * missing, unexpected, wrong shape or dtype is an EFORMAT error naming the tensor. Batch norms
 * are folded into the preceding convolutions at load, unless the backbone's normalise with each
 * image's own statistics (enum iseg_bn_stats below). The number of classes is taken from the
 * box predictor (91 for COCO; label 0 is the background). With ISEG_ARCH_AUTO, a ResNet-50 file
 * is v1 or v2 and any other ResNet-FPN (e.g. iseg's compact models) is
 * ISEG_ARCH_MASKRCNN_RESNET_FPN, its dimensions read from the tensor shapes.
 *
 * A safetensors file may describe its model in "__metadata__" (iseg writes these for the models
 * it trains): "iseg.anchor_sizes" ("16,32,64,128,256": the anchor size of P2..P6, default
 * torchvision's 32..512), "iseg.min_size", "iseg.max_size", "iseg.detections_per_img",
 * "iseg.score_thresh" (the inference defaults, see iseg_model_infer_params()),
 * "iseg.class_names" (comma-separated, label 0 first) and "iseg.category_ids" (comma-separated
 * dataset category id of each label).
 *
 * Thread-safety: a model is read-only after loading and may be shared by several inference
 * contexts; a context runs one image at a time.
 */
#ifndef ISEG_MODEL_H
#define ISEG_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "image.h"
#include "iseg.h"
#include "mask.h"
#include "nn.h"
#include "weights.h"

#ifdef __cplusplus
extern "C" {
#endif

enum iseg_arch {
    ISEG_ARCH_AUTO = 0,              /* detect from the tensor names */
    ISEG_ARCH_MASKRCNN_R50_FPN,      /* torchvision maskrcnn_resnet50_fpn */
    ISEG_ARCH_MASKRCNN_R50_FPN_V2,   /* torchvision maskrcnn_resnet50_fpn_v2 */
    ISEG_ARCH_MASKRCNN_RESNET_FPN,   /* any torchvision-style ResNet-FPN Mask R-CNN with v1 heads:
                                        basic or bottleneck blocks, any depth and widths, FPN,
                                        box and mask head sizes read from the weights */
    ISEG_ARCH_COUNT
};
/* "maskrcnn_resnet50_fpn", "maskrcnn_resnet50_fpn_v2", "maskrcnn_resnet_fpn", "auto"; NULL
 * when out of range. */
const char *iseg_arch_name(enum iseg_arch a);
/* Inverse of iseg_arch_name(); ISEG_ARCH_COUNT when unknown. */
enum iseg_arch iseg_arch_from_name(const char *name);

/* What the backbone's batch norms normalise with at inference. */
enum iseg_bn_stats {
    ISEG_BN_STATS_AUTO = 0, /* the file's metadata "iseg.bn_stats" ("running" or "image");
                               running when absent */
    ISEG_BN_STATS_RUNNING,  /* the running statistics, as torchvision in eval mode (folded into
                               the convolutions: no cost) */
    ISEG_BN_STATS_IMAGE,    /* each image's own statistics: batch norm as in training mode with
                               one image per batch (mean and biased variance of each channel over
                               the zero-padded image), the affine parameters learned. This is
                               how iseg's trainer normalises (one image per forward pass), so
                               models it trains are written with iseg.bn_stats = "image". Costs
                               one pass over each backbone activation. The heads' batch norms
                               (v2) always use their running statistics. */
    ISEG_BN_STATS_COUNT
};
/* "auto", "running", "image"; NULL when out of range. */
const char *iseg_bn_stats_name(enum iseg_bn_stats s);
/* Inverse of iseg_bn_stats_name(); ISEG_BN_STATS_COUNT when unknown. */
enum iseg_bn_stats iseg_bn_stats_from_name(const char *name);

struct iseg_model_params {
    enum iseg_arch     arch;     /* ISEG_ARCH_AUTO by default */
    enum iseg_bn_stats bn_stats; /* ISEG_BN_STATS_AUTO by default */
    /* ISEG_PRECISION_FP32 by default (torchvision parity). BF16: every convolution, linear
     * layer and the mask head's transposed convolution in bf16 (nn.h), but the stem; the
     * per-class mask logits stay f32. INT8: the 1x1 and strided convolutions (backbone, FPN
     * laterals), the box head's fully connected layers and the mask head's transposed
     * convolution in int8; the stem, the 3x3 stride-1 convolutions that f32 runs with
     * Winograd, the predictors (RPN, box, mask logits) stay f32. */
    enum iseg_precision precision;
};
struct iseg_model_params iseg_model_default_params(void);

typedef struct iseg_model *iseg_model_t;

/* Load and check weights from a file (safetensors or .pth). err: "<path>: <tensor>: <what>". */
enum iseg_status iseg_model_init_from_file(iseg_model_t *m, const char *path,
                                           struct iseg_model_params p, char *err, size_t errlen);
/* As above from loaded weights (copied: w may be freed afterwards). */
enum iseg_status iseg_model_init_from_weights(iseg_model_t *m, const iseg_weights_t w,
                                              struct iseg_model_params p, char *err,
                                              size_t errlen);
void iseg_model_free(iseg_model_t m);
enum iseg_arch iseg_model_arch(const iseg_model_t m);
/* The statistics the model's backbone normalises with: RUNNING or IMAGE. */
enum iseg_bn_stats iseg_model_bn_stats(const iseg_model_t m);
/* The precision the model was loaded in (iseg_model_params.precision). */
enum iseg_precision iseg_model_precision(const iseg_model_t m);
/* Number of classes including the background (91 for COCO checkpoints). */
int iseg_model_num_classes(const iseg_model_t m);
/* Name of a label from the file's metadata, or NULL (use e.g. iseg_coco_torchvision_labels()). */
const char *iseg_model_class_name(const iseg_model_t m, int label);
/* Dataset category id of a label (the metadata's, else the label itself). */
int64_t iseg_model_category_id(const iseg_model_t m, int label);

/* Inference settings; the defaults are torchvision's. */
struct iseg_infer_params {
    int   min_size;           /* 800: shorter side after resizing */
    int   max_size;           /* 1333: longer side limit */
    float score_thresh;       /* 0.05: box score filter (strict >) */
    float nms_thresh;         /* 0.5: per-class NMS IoU */
    int   detections_per_img; /* 100 */
    int   rpn_pre_nms_top_n;  /* 1000 per level */
    int   rpn_post_nms_top_n; /* 1000 */
    float rpn_nms_thresh;     /* 0.7 */
    float mask_thresh;        /* 0.5: pasted probability > thresh is foreground */
    int   n_threads;          /* 0: one per CPU */
};
struct iseg_infer_params iseg_infer_default_params(void);
/* The defaults for a model: torchvision's, overridden by the file's metadata (see above). */
struct iseg_infer_params iseg_model_infer_params(const iseg_model_t m);

/* One detection in original image coordinates. */
struct iseg_detection {
    float           box[4]; /* x1, y1, x2, y2 (pixels, float) */
    float           score;
    int             label;  /* class index (COCO category id for COCO checkpoints) */
    struct iseg_rle mask;   /* h x w of the input image; owned by the detections */
};
struct iseg_detections {
    size_t                 n;
    struct iseg_detection *d; /* by decreasing score */
    uint32_t               h, w;
};
/* Free every mask and the array; zero *d. */
void iseg_detections_free(struct iseg_detections *d);

/* Named intermediate tensors, for `iseg dump` and parity debugging: name such as
 * "backbone.layer1", "fpn.p2", "rpn.proposals", "roi.box_features", "mask.logits";
 * shape (ndim <= 4). The data is valid only during the call. */
typedef void (*iseg_tensor_cb)(const char *name, const float *data, int ndim,
                               const int64_t *shape, void *user);

typedef struct iseg_infer *iseg_infer_t;

/* An inference context (thread pool, activation arena). EINVAL for bad params; ENOMEM. */
enum iseg_status iseg_infer_init(iseg_infer_t *ctx, const iseg_model_t m,
                                 struct iseg_infer_params p);
void iseg_infer_free(iseg_infer_t ctx);
/* Set (or clear with NULL) the intermediate-tensor callback. */
void iseg_infer_set_tensor_cb(iseg_infer_t ctx, iseg_tensor_cb cb, void *user);
/* Run the model on an image (8-bit; gray, gray+alpha, RGB or RGBA: converted to RGB as PIL does).
 * *out must be zeroed or freed; it receives the detections. EINVAL for an invalid image; ELIMIT
 * for an image over ISEG_IMAGE_MAX_PIXELS; ENOMEM. */
enum iseg_status iseg_infer_run(iseg_infer_t ctx, const struct iseg_image *img,
                                struct iseg_detections *out);
/* Wall time of each stage of the last iseg_infer_run(), in milliseconds (the stages of
 * torchvision's model, for side-by-side benchmarks). */
struct iseg_infer_timings {
    double transform;     /* to float, normalise, resize, pad */
    double backbone;      /* ResNet-50 */
    double fpn;           /* FPN P2..P6 */
    double rpn_head;      /* RPN convs on every level */
    double rpn_proposals; /* top-k, decode, clip, NMS */
    double box_roi_align; /* MultiScaleRoIAlign 7x7 of the proposals */
    double box_head;      /* box head, predictor, post-processing and NMS */
    double mask_roi_align;/* MultiScaleRoIAlign 14x14 of the detections */
    double mask_head;     /* mask head, deconvolution, logits */
    double paste;         /* pasting masks into the image, RLE */
    double total;         /* the whole call */
};
struct iseg_infer_timings iseg_infer_get_timings(const iseg_infer_t ctx);

/* Detail of the last error of the context ("" when none). */
const char *iseg_infer_last_error(const iseg_infer_t ctx);

#ifdef __cplusplus
}
#endif

#endif /* ISEG_MODEL_H */
