/*
 * targets.h - training-time target assignment of two-stage detectors, as torchvision does it
 * (models/detection/_utils.py Matcher, BalancedPositiveNegativeSampler; roi_heads.py
 * project_masks_on_boxes).
 *
 *   // RPN: anchors (N, 4) against ground-truth boxes (M, 4)
 *   iseg_box_iou(iou, gt, M, anchors, N);                       // iou (M, N)
 *   iseg_match(matches, iou, M, N, 0.7f, 0.3f, true, scratch);  // matches (N): gt or -1/-2
 *   for (i...) labels[i] = matches[i] >= 0 ? 1 : matches[i] == ISEG_MATCH_BELOW ? 0 : -1;
 *   iseg_sample_pos_neg(pos, &n_pos, neg, &n_neg, labels, N, 256, 0.5f, &rng, scratch);
 *
 * Thread-safety: plain functions of their arguments (the rng is the caller's).
 */
#ifndef ISEG_TARGETS_H
#define ISEG_TARGETS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "augment.h"
#include "iseg.h"
#include "mask.h"
#include "nn.h"

#ifdef __cplusplus
extern "C" {
#endif

#define ISEG_MATCH_BELOW (-1)   /* best quality < low threshold: background */
#define ISEG_MATCH_BETWEEN (-2) /* low <= best quality < high: ignored */

/* torchvision.ops.box_iou: out (M, N), areas (x2 - x1)(y2 - y1), inter / union (0 when the
 * union is 0). */
void iseg_box_iou(float *out, const float *a, int M, const float *b, int N);

/* Matcher(high, low, allow_low_quality): for each prediction n the ground truth with the best
 * quality (first on ties), or ISEG_MATCH_BELOW / ISEG_MATCH_BETWEEN; with allow_low_quality,
 * every prediction that has the highest quality of some ground truth (ties included) keeps its
 * best ground truth. quality (M, N) with M >= 1; matches (N); scratch: M + N floats. */
void iseg_match(int *matches, const float *quality, int M, int N, float high, float low,
                bool allow_low_quality, float *scratch);

/* BalancedPositiveNegativeSampler(batch, pos_fraction): labels (N) >= 1 positive, 0 negative,
 * < 0 ignored. Draws min(#pos, floor(batch pos_fraction)) positives and
 * min(#neg, batch - drawn positives) negatives uniformly without replacement; pos and neg
 * receive the drawn indices in increasing order (as torchvision's torch.where over the masks).
 * scratch: N ints. pos and neg need room for N each. */
void iseg_sample_pos_neg(int *pos, int *n_pos, int *neg, int *n_neg, const int *labels, int N,
                         int batch, float pos_fraction, struct iseg_rng *rng, int *scratch);

/* Mask targets (torchvision project_masks_on_boxes): for each of the P boxes (x1, y1, x2, y2,
 * image coordinates), RoIAlign (spatial scale 1, adaptive sampling, aligned false) of its
 * ground-truth mask gt_masks[gt_index[p]] as a 0/1 float image, at S x S. targets (P, S, S).
 * scratch: h * w floats (one decoded mask). Masks are decoded once per distinct ground truth
 * when the boxes are grouped by gt_index (any order works). EINVAL if a mask's size differs
 * from the first one's. */
enum iseg_status iseg_project_masks(iseg_engine_t e, float *targets, const struct iseg_rle *gt_masks,
                                    const int *gt_index, const float *boxes, int P, int S,
                                    float *scratch);

#ifdef __cplusplus
}
#endif

#endif /* ISEG_TARGETS_H */
