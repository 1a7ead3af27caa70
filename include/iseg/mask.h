/*
 * mask.h - binary masks in COCO run-length encoding (RLE), bit-exact with the COCO mask API
 * (pycocotools `mask`, maskApi.c).
 *
 *   struct iseg_rle r = {0};
 *   const char *s = "0:f000000000000000000PV1";               // a 10x10 box in a 32x48 image
 *   if (iseg_rle_from_string(&r, s, strlen(s), 32, 48) == ISEG_STATUS_OK) {
 *       double bb[4];
 *       iseg_rle_to_bbox(&r, bb);                              // {0, 0, 10, 10}
 *       printf("area %llu\n", (unsigned long long)iseg_rle_area(&r));   // 100
 *   }
 *   iseg_rle_free(&r);
 *
 * Layout: a mask of h rows and w columns is flattened column-major (index x*h + y). `cnts` holds
 * m alternating run lengths starting with a run of 0s (the first count may be 0). A *valid* RLE
 * has counts summing to exactly h*w; every function that takes an RLE from outside the library
 * (strings, JSON) checks this, and the others assume it.
 *
 * Ownership: an iseg_rle owns its `cnts` array (allocated by the library; release with
 * iseg_rle_free()). Functions that write an RLE through `out` first free nothing: pass a zeroed
 * or freed struct. On error, `out` is left zeroed.
 *
 * Thread-safety: all functions are reentrant; distinct RLEs may be used from distinct threads.
 */
#ifndef ISEG_MASK_H
#define ISEG_MASK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "iseg.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Largest h*w accepted anywhere (2^31 pixels), so that every count and area fits in uint32. */
#define ISEG_RLE_MAX_PIXELS ((uint64_t)1 << 31)

struct iseg_rle {
    uint32_t  h, w; /* mask size: rows, columns */
    size_t    m;    /* number of counts */
    uint32_t *cnts; /* (m) run lengths, alternating 0s and 1s, column-major */
};

/* Release r->cnts and zero *r. NULL or an already freed RLE is fine. */
void iseg_rle_free(struct iseg_rle *r);

/* Deep copy. */
enum iseg_status iseg_rle_copy(struct iseg_rle *out, const struct iseg_rle *r);

/* Check that r->cnts sums to exactly h*w (EFORMAT otherwise) and h*w <= ISEG_RLE_MAX_PIXELS
 * (ELIMIT otherwise). */
enum iseg_status iseg_rle_validate(const struct iseg_rle *r);

/* Encode a column-major h x w mask of 0/1 bytes. As in maskApi, a new run starts whenever a byte
 * differs from the previous one (the "previous" before the first pixel is 0), so only 0/1 input
 * is meaningful. h*w may be 0: that gives the single count 0, as maskApi does. */
enum iseg_status iseg_rle_encode(struct iseg_rle *out, const uint8_t *mask, uint32_t h, uint32_t w);

/* Decode into a caller buffer of r->h * r->w bytes (column-major, values 0/1).
 * EFORMAT if the counts do not sum to h*w (nothing is written past the buffer). */
enum iseg_status iseg_rle_decode(uint8_t *mask, const struct iseg_rle *r);

/* Compressed COCO string (the `counts` string of a COCO RLE dict): 6 bits per character,
 * characters 48..111, counts after the first three delta-coded against cnts[i-2].
 * Returns a newly allocated NUL-terminated string in *out (free with iseg_free()), its length
 * in *len (may be NULL). Byte-identical to pycocotools' encode(). */
enum iseg_status iseg_rle_to_string(const struct iseg_rle *r, char **out, size_t *len);

/* Bytes iseg_rle_to_string would produce, without the NUL. */
size_t iseg_rle_string_len(const struct iseg_rle *r);

/* Write the string form into buf (no NUL); buf must hold iseg_rle_string_len(r) bytes.
 * Returns the number of bytes written. */
size_t iseg_rle_string_write(const struct iseg_rle *r, char *buf);

/* Parse a compressed COCO string of length len for an h x w mask. Hostile input is expected:
 * characters outside 48..111, a truncated final group, negative or overflowing counts, and
 * counts that do not sum to h*w all give EFORMAT; h*w over ISEG_RLE_MAX_PIXELS gives ELIMIT. */
enum iseg_status iseg_rle_from_string(struct iseg_rle *out, const char *s, size_t len,
                                      uint32_t h, uint32_t w);

/* As iseg_rle_from_string, but decodes into caller memory and never allocates: buf must hold
 * at least len counts (a string of len characters never has more). On success out->cnts points
 * into buf (do not iseg_rle_free it). */
enum iseg_status iseg_rle_from_string_buf(struct iseg_rle *out, const char *s, size_t len,
                                          uint32_t h, uint32_t w, uint32_t *buf);

/* Uncompressed RLE (the `counts` list of a COCO RLE dict, used for crowd regions).
 * The counts must sum to h*w (EFORMAT otherwise). */
enum iseg_status iseg_rle_from_counts(struct iseg_rle *out, const uint32_t *cnts, size_t m,
                                      uint32_t h, uint32_t w);

/* Foreground pixel count: the sum of odd-indexed counts. */
uint64_t iseg_rle_area(const struct iseg_rle *r);

/* Bounding box [x, y, width, height] as pycocotools' toBbox (PyPI version) computes it;
 * {0,0,0,0} for an empty mask. */
void iseg_rle_to_bbox(const struct iseg_rle *r, double bb[4]);
/* The same box as torchvision's [x1, y1, x2, y2] floats: x2 = x + width, y2 = y + height
 * (the tight box of the mask's pixels, as detection targets use it). */
void iseg_rle_to_box_xyxy(const struct iseg_rle *r, float box[4]);

/* Rasterise one polygon ring of k points (xy holds 2k doubles: x0,y0,x1,y1,...) exactly as
 * maskApi's rleFrPoly does (5x supersampled edges, column crossings). k may be 0..any (k < 3
 * gives an empty mask); vertices may lie outside the image. EINVAL if any coordinate is NaN or
 * infinite; ELIMIT if any has 5x+0.5 outside the int32 range (|x| > ~4.29e8, undefined in
 * maskApi). h*w == 0 gives the single count 0. Cost grows with the column crossings, not with
 * the length of the edges. */
enum iseg_status iseg_rle_from_poly(struct iseg_rle *out, const double *xy, size_t k,
                                    uint32_t h, uint32_t w);

/* Box [x, y, width, height] -> RLE, as rleFrBbox (the box as a 4-point polygon). */
enum iseg_status iseg_rle_from_bbox(struct iseg_rle *out, const double bb[4], uint32_t h,
                                    uint32_t w);

/* Union (intersect = false) or intersection (true) of n RLEs, canonical output. As maskApi:
 * n == 0 gives a zeroed RLE; if sizes differ, the result is an empty 0x0 RLE. n == 1 copies. */
enum iseg_status iseg_rle_merge(struct iseg_rle *out, const struct iseg_rle *rs, size_t n,
                                bool intersect);

/* IoU of m detections against n ground truths, o[g*m + d] (gt-major, as maskApi).
 * A pair whose bounding boxes do not overlap gets 0 without walking the masks; sizes that differ
 * give -1; for a crowd ground truth (iscrowd[g] != 0; iscrowd may be NULL) the union is the
 * detection's area. Boxes are computed internally; use iseg_rle_iou_bb to pass them. */
enum iseg_status iseg_rle_iou(const struct iseg_rle *dt, size_t m, const struct iseg_rle *gt,
                              size_t n, const uint8_t *iscrowd, double *o);

/* As iseg_rle_iou with precomputed boxes (dt_bb: 4m, gt_bb: 4n doubles from iseg_rle_to_bbox)
 * and areas (dt_area: m, gt_area: n, from iseg_rle_area). Never allocates. */
void iseg_rle_iou_bb(const struct iseg_rle *dt, size_t m, const struct iseg_rle *gt, size_t n,
                     const uint8_t *iscrowd, const double *dt_bb, const double *gt_bb,
                     const uint64_t *dt_area, const uint64_t *gt_area, double *o);

/* IoU of one pair (no box pre-filter): |d & g| / |d | g|, or |d & g| / |d| when crowd.
 * Returns -1 when the sizes differ, 0 when the intersection is empty. */
double iseg_rle_iou_pair(const struct iseg_rle *d, const struct iseg_rle *g, bool crowd);

/* Box IoU, o[g*m + d], boxes [x,y,w,h]; crowd union = detection area (bbIou semantics). */
void iseg_bbox_iou(const double *dt, size_t m, const double *gt, size_t n,
                   const uint8_t *iscrowd, double *o);

/* Boundary IoU support (boundary-iou-api semantics).
 * Dilation in pixels for an h x w image: max(1, round_half_even(ratio * sqrt(h^2 + w^2))). */
uint32_t iseg_boundary_dilation(uint32_t h, uint32_t w, double ratio);

/* Inner boundary band of width d: foreground pixels with a background pixel (or the virtual
 * 1-pixel zero frame around the image) within chessboard distance d; i.e. mask minus its
 * erosion by a (2d+1)^2 square. Output has the input's size and is canonical. d = 0 gives an
 * empty band. ELIMIT when h*w exceeds ISEG_RLE_MAX_PIXELS, ENOMEM (with *out zeroed). */
enum iseg_status iseg_rle_boundary(struct iseg_rle *out, const struct iseg_rle *r, uint32_t d);

#ifdef __cplusplus
}
#endif

#endif /* ISEG_MASK_H */
