/* rle_boundary_impl.h - private entry points of rle_boundary.c (never installed). */
#ifndef ISEG_RLE_BOUNDARY_IMPL_H
#define ISEG_RLE_BOUNDARY_IMPL_H

#include <stdint.h>

#include "iseg/mask.h"

/* Reference for iseg_rle_boundary: decodes to a dense h*w bitmap and applies the definition
 * directly (a foreground pixel is boundary iff a background pixel, or the virtual zero frame
 * around the image, lies within chessboard distance d). O(h*w*d^2); the oracle for tests and
 * bench, never used by the library. Same contract as iseg_rle_boundary: canonical output,
 * ENOMEM with *out zeroed. */
enum iseg_status iseg__rle_boundary_ref(struct iseg_rle *out, const struct iseg_rle *r,
                                        uint32_t d);

#endif /* ISEG_RLE_BOUNDARY_IMPL_H */
