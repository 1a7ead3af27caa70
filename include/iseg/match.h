/*
 * match.h - optimal assignment: the maximum-weight matching between n_rows rows and n_cols
 * columns (Hungarian / Kuhn-Munkres algorithm), as used by the COCO evaluator's
 * "--matching hungarian" mode.
 *
 *   // 2 detections x 2 ground truths. Only pairs with IoU >= 0.5 may be matched, with weight
 *   // K + IoU where K = min(n_rows, n_cols) + 1 = 3: the number of matches is maximised first,
 *   // then the total IoU.
 *   const double iou[2 * 2] = {0.9, 0.6,    // detection 0 against gt 0, gt 1
 *                              0.7, 0.1};   // detection 1 against gt 0, gt 1
 *   double  w[4];
 *   uint8_t ok[4];
 *   for (int k = 0; k < 4; k++) { ok[k] = iou[k] >= 0.5; w[k] = 3.0 + iou[k]; }
 *   int32_t dt_to_gt[2];
 *   double  total;
 *   enum iseg_status st = iseg_assign_max_weight(w, ok, 2, 2, dt_to_gt, &total);
 *   // st == ISEG_STATUS_OK, dt_to_gt == {1, 0}, total == 3.6 + 3.7 (about 7.3).
 *   // Greedy matching in score order would take (0, 0) and leave detection 1 unmatched.
 *
 * Problem: w holds n_rows x n_cols weights, row-major (w[r * n_cols + c]); `allowed` has the same
 * layout, nonzero meaning that the pair may be matched (NULL: every pair is allowed). A matching
 * uses each row and each column at most once and only allowed pairs; its weight is the sum of the
 * weights of its pairs (unmatched rows and columns contribute 0). The functions return a matching
 * of maximum weight. Pairs of weight <= 0 never improve a matching and are never reported, so a
 * reported pair (r, c) is always allowed and has w[r * n_cols + c] > 0. Weights of disallowed
 * pairs are never read for their value (they may be NaN).
 *
 * Algorithm: shortest augmenting paths with row and column potentials (Kuhn-Munkres in the
 * Jonker-Volgenant / e-maxx formulation) on doubles, O(s^2 * l) time for s = min(n_rows, n_cols)
 * and l = max(n_rows, n_cols), O(s * l) memory. The potentials stay within a small multiple of
 * the largest weight, so for integer weights below 2^50 in magnitude every intermediate value is
 * an exact integer and the result is exactly optimal; for real weights it is optimal up to
 * rounding (tests check 1e-9 absolute on weights of order 1).
 *
 * Tie rule (which optimal matching is returned): the result is a pure function of the input
 * values, independent of scratch contents, threads and calls made before. The shorter side is
 * inserted one element at a time in increasing index order (the rows when n_rows <= n_cols,
 * otherwise the columns, i.e. the problem is solved on the transpose); each insertion is a
 * shortest augmenting path search that scans the longer side in increasing index order, settles
 * the lowest index among equally short candidates and only replaces a path label by a strictly
 * shorter one. Consequence: a single row (or a single column) is matched to its first entry of
 * maximal positive weight. No other promise is made between tied optima.
 *
 * Ownership: the caller owns every buffer; nothing is retained after a call returns. On error the
 * outputs (row_to_col, *total) are left unchanged. A NULL buffer where one is needed is a caller
 * bug and aborts through ISEG_ASSERT.
 *
 * Thread-safety: the functions are reentrant; concurrent calls need distinct scratch buffers.
 */
#ifndef ISEG_MATCH_H
#define ISEG_MATCH_H

#include <stddef.h>
#include <stdint.h>

#include "iseg.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Largest n_rows or n_cols accepted (indices are int32); larger gives ISEG_STATUS_ELIMIT. */
#define ISEG_ASSIGN_DIM_MAX ((size_t)INT32_MAX)
/* Largest weight accepted on an allowed pair, so that potentials can never overflow; larger gives
 * ISEG_STATUS_ELIMIT. Any finite negative weight is accepted. */
#define ISEG_ASSIGN_WEIGHT_MAX 1e200

/* Maximum-weight assignment. w: (n_rows, n_cols) weights, row-major. allowed: (n_rows, n_cols),
 * nonzero = the pair may be matched, or NULL for all pairs. Writes row_to_col[r] (n_rows entries)
 * = matched column or -1, and, when total is not NULL, *total = the sum of the matched weights
 * added in increasing row order starting from 0.0 (0.0 when nothing is matched).
 * n_rows or n_cols may be 0 (w and allowed are then not read and may be NULL; row_to_col may be
 * NULL when n_rows is 0). Allocates its scratch (see iseg_assign_scratch_size()) per call.
 * Returns ISEG_STATUS_EINVAL if an allowed pair has a NaN or infinite weight, ISEG_STATUS_ELIMIT
 * past the limits above (for both, the first offending pair in row-major order decides),
 * ISEG_STATUS_ENOMEM if allocation fails. */
enum iseg_status iseg_assign_max_weight(const double *w, const uint8_t *allowed, size_t n_rows,
                                        size_t n_cols, int32_t *row_to_col, double *total);

/* Bytes of scratch that iseg_assign_max_weight_scratch() needs for this size; any alignment is
 * fine. The size grows with each argument, so a buffer sized for the largest problem serves all
 * smaller ones. Returns 0 when no scratch is needed (n_rows or n_cols is 0) and also when the
 * size is past the limits (the call then returns ISEG_STATUS_ELIMIT without touching scratch). */
size_t iseg_assign_scratch_size(size_t n_rows, size_t n_cols);

/* iseg_assign_max_weight() without allocation: scratch points to at least
 * iseg_assign_scratch_size(n_rows, n_cols) writable bytes, owned by the caller, whose contents
 * on entry do not matter and on return are unspecified (NULL is fine when that size is 0).
 * Same results and status codes, except that it never returns ISEG_STATUS_ENOMEM. */
enum iseg_status iseg_assign_max_weight_scratch(const double *w, const uint8_t *allowed,
                                                size_t n_rows, size_t n_cols,
                                                int32_t *row_to_col, double *total,
                                                void *scratch);

#ifdef __cplusplus
}
#endif

#endif /* ISEG_MATCH_H */
