/*
 * nn.h - the operators of the inference engine (f32, NCHW, batch-major), with torch semantics.
 *
 *   iseg_engine_t e;
 *   iseg_engine_init(&e, 0);                               // 0: one thread per CPU
 *   struct iseg_conv2d_desc d = iseg_conv2d_default_desc(64, 128, 3);   // 3x3, stride 1, pad 1
 *   iseg_conv2d_t conv;
 *   iseg_conv2d_init(&conv, &d, weight, bias);             // packs the weights once
 *   int oh, ow;
 *   iseg_conv2d_out_hw(&d, h, w, &oh, &ow);
 *   iseg_conv2d_forward(e, conv, y, x, 1, h, w, NULL, ISEG_ACT_RELU);  // y = relu(conv(x) + b)
 *   iseg_conv2d_free(conv);
 *   iseg_engine_free(e);
 *
 * Conventions (see ../../shared/STYLE.md 3.7): outputs come first, then inputs, then weights,
 * then configuration. Every buffer is a contiguous row-major f32 array whose shape is given in a
 * comment, e.g. x (B, C, H, W). Outputs are written, never accumulated, unless stated. Shape
 * contracts are checked with ISEG_ASSERT (caller bugs); only allocation can fail at run time.
 * Each operator has a `_ref` twin: a naive loop nest that is the oracle of the tests.
 *
 * Thread-safety: an engine runs one operator at a time (it is not reentrant); the objects made by
 * the _init functions are read-only after creation and may be shared by engines.
 */
#ifndef ISEG_NN_H
#define ISEG_NN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "iseg.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- engine: thread pool + per-thread scratch ------------------------------------------- */

typedef struct iseg_engine *iseg_engine_t;

/* n_threads <= 0: one per online CPU. ENOMEM. */
enum iseg_status iseg_engine_init(iseg_engine_t *e, int n_threads);
/* Join the threads and free the scratch; NULL is fine. */
void iseg_engine_free(iseg_engine_t e);
/* Number of threads (including the caller's). Results never depend on it (bit-identical). */
int  iseg_engine_threads(const iseg_engine_t e);
/* Status of the last operator that failed for lack of memory (scratch growth), then cleared:
 * operators return void; call this after a sequence of them. */
enum iseg_status iseg_engine_take_error(iseg_engine_t e);

enum iseg_act {
    ISEG_ACT_NONE = 0,
    ISEG_ACT_RELU = 1,
};

/* ---- precision ------------------------------------------------------------------------- */

/* What a convolution or linear layer computes in. Inputs and outputs stay f32 either way.
 *  FP32: f32 products and sums (the default; the torchvision parity of model.h).
 *  BF16: weights and activations rounded to bfloat16 (nearest, ties to even) before the
 *        products, sums in f32 over pairs of k: avx512_bf16's vdpbf16ps, which runs where the
 *        CPU has it (a bf16 product is exact in f32; each pair adds its odd k's product, then
 *        its even k's). Elsewhere an AVX2 (or portable) kernel takes the same steps with f32
 *        FMAs: the same numbers but for vdpbf16ps's flushing of denormals, and slower than
 *        FP32 (it is an emulation, for measuring bf16's accuracy). Never Winograd (rounded
 *        transformed tiles would cost F(4,3) about 100x the error of direct bf16 products).
 *  INT8: weights quantized per output channel, symmetric, |q| <= 63 (7 bits: AVX2's
 *        vpmaddubsw stays exact); activations quantized per call from the input tensor's
 *        range (dynamic calibration): unsigned bytes, zero point 0 for a non-negative tensor
 *        (after ReLU), 128 for a signed one; exact int32 sums of 4-byte dot products (VNNI's
 *        vpdpbusd where the CPU has AVX512_VNNI, else vpmaddubsw + vpmaddwd on AVX2, else
 *        portable C: the same integers), dequantized in the epilogue. Never Winograd.
 * Both are deterministic (any thread count gives the same bits) and have _ref oracles. */
enum iseg_precision {
    ISEG_PRECISION_FP32 = 0,
    ISEG_PRECISION_BF16,
    ISEG_PRECISION_INT8,
    ISEG_PRECISION_COUNT
};
/* "fp32", "bf16", "int8"; NULL when out of range. */
const char         *iseg_precision_name(enum iseg_precision p);
/* Inverse of iseg_precision_name(); ISEG_PRECISION_COUNT when unknown. */
enum iseg_precision iseg_precision_from_name(const char *name);

/* ---- GEMM ------------------------------------------------------------------------------ */

/* C (M, N) = A (M, K) . B (K, N) [+ C if accumulate], row-major with leading dimensions
 * lda, ldb, ldc (in elements). Threaded over the engine. */
void iseg_sgemm(iseg_engine_t e, int M, int N, int K, const float *A, int lda, const float *B,
                int ldb, float *C, int ldc, bool accumulate);
/* Naive oracle (double accumulation). */
void iseg_sgemm_ref(int M, int N, int K, const float *A, int lda, const float *B, int ldb,
                    float *C, int ldc, bool accumulate);

/* ---- convolution ----------------------------------------------------------------------- */

struct iseg_conv2d_desc {
    int cin, cout;          /* channels in and out */
    int kh, kw;             /* kernel */
    int stride_h, stride_w;
    int pad_h, pad_w;       /* zero padding on both sides */
    int dil_h, dil_w;       /* dilation */
    int groups;             /* cin and cout divisible by groups */
};
/* k x k, stride 1, padding k/2, dilation 1, 1 group. */
struct iseg_conv2d_desc iseg_conv2d_default_desc(int cin, int cout, int k);
/* Output size: (h + 2 pad - dil (k - 1) - 1) / stride + 1 (floor); asserts it is >= 1. */
void iseg_conv2d_out_hw(const struct iseg_conv2d_desc *d, int h, int w, int *oh, int *ow);

typedef struct iseg_conv2d *iseg_conv2d_t;
/* weight (cout, cin / groups, kh, kw) as torch stores it; bias (cout) or NULL. Both are copied
 * (packed for the kernels). EINVAL for an inconsistent desc; ENOMEM. */
enum iseg_status iseg_conv2d_init(iseg_conv2d_t *c, const struct iseg_conv2d_desc *d,
                                  const float *weight, const float *bias);
/* As iseg_conv2d_init() in a given precision (see enum iseg_precision). */
enum iseg_status iseg_conv2d_init_precision(iseg_conv2d_t *c, const struct iseg_conv2d_desc *d,
                                            const float *weight, const float *bias,
                                            enum iseg_precision p);
enum iseg_precision iseg_conv2d_precision(const iseg_conv2d_t c);
void iseg_conv2d_free(iseg_conv2d_t c); /* NULL is fine */
/* Replace the weights (and the bias: given exactly when init had one, EINVAL otherwise) of an
 * FP32 convolution c (EINVAL for another precision)
 * with new values of the same shape, repacked in place on e's threads (e may be NULL):
 * training repacks every step. The first call on a Winograd convolution allocates a transform
 * scratch (ENOMEM); later calls allocate nothing. */
enum iseg_status iseg_conv2d_set_weights(iseg_engine_t e, iseg_conv2d_t c, const float *weight,
                                         const float *bias);
/* The descriptor given at init (owned by c). */
const struct iseg_conv2d_desc *iseg_conv2d_get_desc(const iseg_conv2d_t c);
/* y (B, cout, oh, ow) = act(conv(x) + bias + residual); x (B, cin, h, w);
 * residual (B, cout, oh, ow) or NULL. y must not alias x (it may alias residual). */
void iseg_conv2d_forward(iseg_engine_t e, const iseg_conv2d_t c, float *y, const float *x, int B,
                         int h, int w, const float *residual, enum iseg_act act);
/* Naive oracle on the unpacked torch weight (double accumulation). */
void iseg_conv2d_forward_ref(float *y, const float *x, const float *weight, const float *bias,
                             const struct iseg_conv2d_desc *d, int B, int h, int w,
                             const float *residual, enum iseg_act act);

/* Oracle of an INT8 convolution: the same quantization (weights per channel, x per call over
 * the whole (B, cin, h, w) tensor), naive integer sums and the same f32 epilogue, hence
 * bit-identical to iseg_conv2d_forward() of a convolution made with ISEG_PRECISION_INT8. */
void iseg_conv2d_forward_int8_ref(float *y, const float *x, const float *weight,
                                  const float *bias, const struct iseg_conv2d_desc *d, int B,
                                  int h, int w, const float *residual, enum iseg_act act);

/* Transposed convolution (torch ConvTranspose2d); pad_h/w is torch's `padding`, out_pad its
 * `output_padding`. Output size: (h - 1) stride - 2 pad + dil (k - 1) + out_pad + 1. */
struct iseg_deconv2d_desc {
    int cin, cout, kh, kw, stride_h, stride_w, pad_h, pad_w, out_pad_h, out_pad_w, dil_h, dil_w,
        groups;
};
void iseg_deconv2d_out_hw(const struct iseg_deconv2d_desc *d, int h, int w, int *oh, int *ow);
typedef struct iseg_deconv2d *iseg_deconv2d_t;
/* weight (cin, cout / groups, kh, kw) as torch stores it; bias (cout) or NULL. Both are copied
 * (packed). EINVAL for an inconsistent desc (torch's output_padding rule included); ENOMEM. */
enum iseg_status iseg_deconv2d_init(iseg_deconv2d_t *c, const struct iseg_deconv2d_desc *d,
                                    const float *weight, const float *bias);
/* As iseg_deconv2d_init() in a given precision (enum iseg_precision; INT8: each (output
 * channel, tap) row of the weights has its own scale). */
enum iseg_status iseg_deconv2d_init_precision(iseg_deconv2d_t *c,
                                              const struct iseg_deconv2d_desc *d,
                                              const float *weight, const float *bias,
                                              enum iseg_precision p);
enum iseg_precision iseg_deconv2d_precision(const iseg_deconv2d_t c);
void iseg_deconv2d_free(iseg_deconv2d_t c); /* NULL is fine */
/* y (B, cout, oh, ow) = act(deconv(x) + bias); x (B, cin, h, w). */
void iseg_deconv2d_forward(iseg_engine_t e, const iseg_deconv2d_t c, float *y, const float *x,
                           int B, int h, int w, enum iseg_act act);
/* Naive scatter oracle (double accumulation). */
void iseg_deconv2d_forward_ref(float *y, const float *x, const float *weight, const float *bias,
                               const struct iseg_deconv2d_desc *d, int B, int h, int w,
                               enum iseg_act act);

/* ---- fully connected ------------------------------------------------------------------- */

typedef struct iseg_linear *iseg_linear_t;
/* weight (out, in) as torch stores it; bias (out) or NULL. Both are copied (packed for the
 * kernel the CPU runs). EINVAL for in or out < 1; ENOMEM. */
enum iseg_status iseg_linear_init(iseg_linear_t *l, int in, int out, const float *weight,
                                  const float *bias);
/* As iseg_linear_init() in a given precision (see enum iseg_precision). */
enum iseg_status iseg_linear_init_precision(iseg_linear_t *l, int in, int out,
                                            const float *weight, const float *bias,
                                            enum iseg_precision p);
enum iseg_precision iseg_linear_precision(const iseg_linear_t l);
void iseg_linear_free(iseg_linear_t l); /* NULL is fine */
/* y (N, out) = act(x (N, in) . weight^T + bias). */
void iseg_linear_forward(iseg_engine_t e, const iseg_linear_t l, float *y, const float *x, int N,
                         enum iseg_act act);
/* Naive oracle (double accumulation). */
void iseg_linear_forward_ref(float *y, const float *x, const float *weight, const float *bias,
                             int N, int in, int out, enum iseg_act act);

/* Oracle of an INT8 linear layer (x quantized per call over the whole (N, in) matrix, weights
 * per output), bit-identical to iseg_linear_forward() of one made with ISEG_PRECISION_INT8. */
void iseg_linear_forward_int8_ref(float *y, const float *x, const float *weight,
                                  const float *bias, int N, int in, int out, enum iseg_act act);

/* ---- normalisation --------------------------------------------------------------------- */

/* Fold an inference batch norm (or torchvision's FrozenBatchNorm2d) that follows a conv into
 * the conv, as torchvision computes it: scale = gamma * rsqrt(var + eps), shift = beta -
 * mean * scale; weight (cout, per_out) rows *= scale; bias_out = bias_in * scale + shift
 * (bias_in NULL: shift). bias_out (cout). */
void iseg_bn_fold(float *weight, float *bias_out, const float *bias_in, const float *gamma,
                  const float *beta, const float *mean, const float *var, float eps, int cout,
                  size_t per_out);
/* y (B, C, HW) = (x - mean) / sqrt(var + eps) * gamma + beta (inference batch norm); y may be x. */
void iseg_batchnorm(float *y, const float *x, const float *gamma, const float *beta,
                    const float *mean, const float *var, float eps, int B, int C, size_t HW);
/* Oracle: the formula above in double. */
void iseg_batchnorm_ref(float *y, const float *x, const float *gamma, const float *beta,
                        const float *mean, const float *var, float eps, int B, int C, size_t HW);
/* Group norm: y (B, C, HW), statistics per (batch, group) in double; gamma/beta (C) or NULL. */
void iseg_groupnorm(float *y, const float *x, const float *gamma, const float *beta, float eps,
                    int B, int C, size_t HW, int groups);
/* Oracle: the textbook formula in double (biased variance). */
void iseg_groupnorm_ref(float *y, const float *x, const float *gamma, const float *beta,
                        float eps, int B, int C, size_t HW, int groups);

/* ---- element-wise ---------------------------------------------------------------------- */

/* y = max(x, 0); y may be x. */
void iseg_relu(float *y, const float *x, size_t n);
/* y = a + b; y may alias a or b. */
void iseg_add(float *y, const float *a, const float *b, size_t n);
/* y = 1 / (1 + exp(-x)); y may be x. */
void iseg_sigmoid(float *y, const float *x, size_t n);
/* Softmax over the last dimension: y (N, K) from x (N, K); y may be x. As torch: subtract the
 * row max, exponentiate, multiply by the reciprocal of the sum. */
void iseg_softmax(float *y, const float *x, size_t N, int K);

/* ---- pooling and resizing -------------------------------------------------------------- */

/* Max pooling (floor mode, padding counts as -inf, NaN propagates): y (B, C, oh, ow),
 * x (B, C, h, w), oh = (h + 2 pad - k) / stride + 1. The B C planes are shared out over the
 * engine's threads (e NULL: the calling thread alone); the result does not depend on them. */
void iseg_maxpool2d_out_hw(int k, int stride, int pad, int h, int w, int *oh, int *ow);
void iseg_maxpool2d(iseg_engine_t e, float *y, const float *x, int B, int C, int h, int w, int k,
                    int stride, int pad);
/* Naive oracle (bit-identical to iseg_maxpool2d). */
void iseg_maxpool2d_ref(float *y, const float *x, int B, int C, int h, int w, int k, int stride,
                        int pad);

/* Nearest resize as torch's interpolate(mode="nearest", size=(oh, ow)):
 * src = min(floor(dst * (float)in / out), in - 1). y (B, C, oh, ow). */
void iseg_resize_nearest(float *y, const float *x, int B, int C, int h, int w, int oh, int ow);
/* y (B, C, oh, ow) += nearest resize of x: the FPN top-down add without a temporary. */
void iseg_resize_nearest_add(float *y, const float *x, int B, int C, int h, int w, int oh, int ow);

/* Bilinear resize, align_corners=False, no antialias, torch's arithmetic (float):
 * scale = in / out as float (or 1 / scale_factor when scale_h/scale_w > 0 is given, as torch
 * does for interpolate(scale_factor=s) without recompute_scale_factor);
 * src = max(scale * (dst + 0.5) - 0.5, 0); i0 = (int)src; i1 = i0 + (i0 < in - 1);
 * l1 = src - i0; l0 = 1 - l1. y (B, C, oh, ow). */
void iseg_resize_bilinear(iseg_engine_t e, float *y, const float *x, int B, int C, int h, int w,
                          int oh, int ow, float scale_factor_h, float scale_factor_w);
/* Naive oracle: the same arithmetic per pixel, single-threaded. */
void iseg_resize_bilinear_ref(float *y, const float *x, int B, int C, int h, int w, int oh,
                              int ow, float scale_factor_h, float scale_factor_w);

/* ---- detection ops --------------------------------------------------------------------- */

/* RoIAlign (torchvision.ops.roi_align, one image): out (N, C, oh, ow) from feat (C, H, W) and
 * boxes (N, 4) as x1, y1, x2, y2 in image coordinates. spatial_scale maps them to the feature
 * map; aligned subtracts half a pixel; sampling_ratio <= 0 means adaptive
 * (ceil(roi_size / out_size)). */
void iseg_roi_align(iseg_engine_t e, float *out, const float *feat, const float *boxes, int N,
                    int C, int H, int W, int oh, int ow, float spatial_scale, int sampling_ratio,
                    bool aligned);
/* Naive oracle: the same per-sample arithmetic, recomputed for every channel. */
void iseg_roi_align_ref(float *out, const float *feat, const float *boxes, int N, int C, int H,
                        int W, int oh, int ow, float spatial_scale, int sampling_ratio,
                        bool aligned);
/* FPN level of each box (torchvision LevelMapper): floor(k0 + log2(sqrt(area) / s0) + eps)
 * clamped to [k_min, k_max], minus k_min. area = (x2 - x1) (y2 - y1). levels (N). */
void iseg_roi_levels(int *levels, const float *boxes, int N, int k_min, int k_max,
                     float canonical_scale, int canonical_level, float eps);

/* Non-maximum suppression (torchvision.ops.nms): visit boxes by score descending (ties by
 * index, NaN first as torch sorts), drop a box whose IoU with a kept box is > iou_thresh (areas
 * (x2-x1)(y2-y1), float arithmetic as torchvision; torch compares with the threshold as a
 * double, which differs only when an IoU equals float(thr) and float(thr) > thr).
 * keep (N) receives the kept indices in visiting order; returns how many. ENOMEM-free: scratch
 * is the caller's: order (N) ints. */
int iseg_nms(int *keep, int *order, const float *boxes, const float *scores, int N,
             float iou_thresh);
/* Batched NMS: boxes of different groups (idxs) never suppress each other; keep in order of
 * decreasing score (ties by index). IoUs use the boxes' own coordinates (torchvision's
 * per-group path; its offset trick can round an IoU at the threshold differently).
 * scratch (2 N) ints. */
int iseg_batched_nms(int *keep, int *scratch, const float *boxes, const float *scores,
                     const int *idxs, int N, float iou_thresh);
/* Oracle: repeated arg-max selection, each candidate checked against every kept box. */
int iseg_nms_ref(int *keep, const float *boxes, const float *scores, int N, float iou_thresh);

/* Box coder (torchvision BoxCoder): decode deltas (N, 4) [dx, dy, dw, dh] against ref boxes
 * (N, 4) with weights (wx, wy, ww, wh); dw, dh clamped at clip (log(1000/16) by default).
 * out (N, 4) x1 y1 x2 y2. */
void iseg_box_decode(float *out, const float *deltas, const float *ref, int N,
                     const float weights[4], float clip);
/* Inverse: deltas (N, 4) that map ref onto target. */
void iseg_box_encode(float *deltas, const float *target, const float *ref, int N,
                     const float weights[4]);
/* Clamp x to [0, w] and y to [0, h] in place; boxes (N, 4). */
void iseg_box_clip(float *boxes, int N, float h, float w);
/* Anchors of one feature level (torchvision AnchorGenerator): for each location (row-major, y
 * then x) and each ratio r: base = round([-ws, -hs, ws, hs] / 2) with hs = sqrt(r) * size,
 * ws = (1 / sqrt(r)) * size (float), shifted by (x * stride_w, y * stride_h). out (fh * fw * n_ratios, 4). */
void iseg_anchors(float *out, float size, const float *ratios, int n_ratios, int fh, int fw,
                  int stride_h, int stride_w);

/* ---- backward passes (training) --------------------------------------------------------
 * Each ACCUMULATES (+=) into its gradient outputs (callers zero them once per step), takes the
 * forward's saved tensors as documented, and is checked against torch autograd and against
 * central finite differences in double precision (tests/unit/test_nn_grad.c). */

/* dx (n) += dy where the forward output y > 0 (torch's threshold_backward). */
void iseg_relu_bwd(float *dx, const float *dy, const float *y, size_t n);
/* dx (n) += dy y (1 - y), y the forward output. */
void iseg_sigmoid_bwd(float *dx, const float *dy, const float *y, size_t n);
/* dx (N, K) += y (dy - sum_k dy y), y the forward output. */
void iseg_softmax_bwd(float *dx, const float *dy, const float *y, size_t N, int K);
/* dx (B, C, h, w) += dy routed to each window's winner (torch's rule: the first maximum in
 * row-major window order; a NaN wins). x is the forward input. */
void iseg_maxpool2d_bwd(float *dx, const float *dy, const float *x, int B, int C, int h, int w,
                        int k, int stride, int pad);
/* dx (B, C, h, w) += the adjoint of the resizes above (same index and weight arithmetic). */
void iseg_resize_nearest_bwd(float *dx, const float *dy, int B, int C, int h, int w, int oh,
                             int ow);
void iseg_resize_bilinear_bwd(float *dx, const float *dy, int B, int C, int h, int w, int oh,
                              int ow, float scale_factor_h, float scale_factor_w);
/* dfeat (C, H, W) += the adjoint of iseg_roi_align() for dout (N, C, oh, ow). */
void iseg_roi_align_bwd(float *dfeat, const float *dout, const float *boxes, int N, int C, int H,
                        int W, int oh, int ow, float spatial_scale, int sampling_ratio,
                        bool aligned);
/* Training-mode batch norm: statistics over (B, HW) per channel (biased variance, in double),
 * y = (x - mean) invstd gamma + beta; saves mean and invstd (C) for the backward pass; updates
 * running_mean/var (NULL: not kept) with torch's momentum rule (unbiased variance). */
void iseg_batchnorm_train(float *y, float *save_mean, float *save_invstd, float *running_mean,
                          float *running_var, const float *x, const float *gamma,
                          const float *beta, float momentum, float eps, int B, int C,
                          size_t HW);
/* dx (B, C, HW), dgamma, dbeta (C) += gradients of iseg_batchnorm_train(); any may be NULL. */
void iseg_batchnorm_bwd(float *dx, float *dgamma, float *dbeta, const float *dy, const float *x,
                        const float *save_mean, const float *save_invstd, const float *gamma,
                        int B, int C, size_t HW);
/* dx, dgamma, dbeta += gradients of iseg_groupnorm() (statistics recomputed from x). */
void iseg_groupnorm_bwd(float *dx, float *dgamma, float *dbeta, const float *dy, const float *x,
                        const float *gamma, float eps, int B, int C, size_t HW, int groups);

/* Training-time convolution on raw weights (they change every step, so they are not packed):
 * the same results as iseg_conv2d_forward_ref() up to summation order. scratch: at least
 * iseg_conv2d_train_scratch(d, h, w) floats (the caller's, so a step allocates nothing). */
size_t iseg_conv2d_train_scratch(const struct iseg_conv2d_desc *d, int h, int w);
void iseg_conv2d_fwd_raw(iseg_engine_t e, float *y, const float *x, const float *weight,
                         const float *bias, const struct iseg_conv2d_desc *d, int B, int h,
                         int w, float *scratch);
/* dx (B, cin, h, w), dw (cout, cin/groups, kh, kw), db (cout) += the gradients of the
 * convolution for dy (B, cout, oh, ow); any output may be NULL (dw needs x, dx needs weight). */
void iseg_conv2d_bwd(iseg_engine_t e, float *dx, float *dw, float *db, const float *dy,
                     const float *x, const float *weight, const struct iseg_conv2d_desc *d,
                     int B, int h, int w, float *scratch);
/* The same for the transposed convolution (weight (cin, cout/groups, kh, kw)). */
size_t iseg_deconv2d_train_scratch(const struct iseg_deconv2d_desc *d, int h, int w);
void iseg_deconv2d_fwd_raw(iseg_engine_t e, float *y, const float *x, const float *weight,
                           const float *bias, const struct iseg_deconv2d_desc *d, int B, int h,
                           int w, float *scratch);
void iseg_deconv2d_bwd(iseg_engine_t e, float *dx, float *dw, float *db, const float *dy,
                       const float *x, const float *weight, const struct iseg_deconv2d_desc *d,
                       int B, int h, int w, float *scratch);
/* And for the linear layer y (N, out) = x (N, in) W^T + b, W (out, in). */
size_t iseg_linear_train_scratch(int N, int in, int out);
void iseg_linear_fwd_raw(iseg_engine_t e, float *y, const float *x, const float *weight,
                         const float *bias, int N, int in, int out, float *scratch);
void iseg_linear_bwd(iseg_engine_t e, float *dx, float *dw, float *db, const float *dy,
                     const float *x, const float *weight, int N, int in, int out,
                     float *scratch);

#ifdef __cplusplus
}
#endif

#endif /* ISEG_NN_H */
