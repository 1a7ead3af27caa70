/* npmean.c - numpy's float64 add.reduce, reproduced for bit-exact COCO stats.
 *
 * numpy sums a contiguous float64 vector in buffers of 8192 elements (NPY_BUFSIZE); each buffer
 * is summed with its pairwise routine (8 interleaved accumulators below 128 elements, recursive
 * halving above) and the buffer sums are added one after another. A plain loop or a pairwise sum
 * over the whole vector differs in the last bits. ref: numpy/core/src/umath/loops_utils.h.src */
#include "eval/coco_impl.h"

#define NP_BUFSIZE 8192
#define NP_PW_BLOCKSIZE 128

static double pairwise(const double *a, size_t n) {
    if (n < 8) {
        double s = 0.0;
        for (size_t i = 0; i < n; i++) s += a[i];
        return s;
    }
    if (n <= NP_PW_BLOCKSIZE) {
        double r[8];
        for (int j = 0; j < 8; j++) r[j] = a[j];
        size_t i;
        for (i = 8; i < n - (n % 8); i += 8)
            for (int j = 0; j < 8; j++) r[j] += a[i + j];
        double s = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        for (; i < n; i++) s += a[i];
        return s;
    }
    size_t n2 = n / 2;
    n2 -= n2 % 8;
    return pairwise(a, n2) + pairwise(a + n2, n - n2);
}

double iseg__np_sum(const double *a, size_t n) {
    double s = 0.0;
    for (size_t i = 0; i < n; i += NP_BUFSIZE) s += pairwise(a + i, n - i < NP_BUFSIZE ? n - i : NP_BUFSIZE);
    return s;
}

double iseg__np_mean(const double *a, size_t n) {
    if (n == 0) return -1.0;
    return iseg__np_sum(a, n) / (double)n;
}
