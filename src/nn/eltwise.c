/* eltwise.c - element-wise operators: ReLU, add, sigmoid, last-dimension softmax.
 * Softmax follows torch's CPU kernel: subtract the row max, exponentiate and sum in order,
 * multiply by the reciprocal of the sum. */
#include <math.h>

#include "nn/nn_impl.h"

void iseg_relu(float *y, const float *x, size_t n) {
    for (size_t i = 0; i < n; i++) y[i] = x[i] > 0.0f ? x[i] : 0.0f;
}

void iseg_add(float *y, const float *a, const float *b, size_t n) {
    for (size_t i = 0; i < n; i++) y[i] = a[i] + b[i];
}

void iseg_sigmoid(float *y, const float *x, size_t n) {
    for (size_t i = 0; i < n; i++) y[i] = 1.0f / (1.0f + expf(-x[i]));
}

void iseg_softmax(float *y, const float *x, size_t N, int K) {
    ISEG_ASSERT(K >= 1);
    for (size_t r = 0; r < N; r++) {
        const float *xr = x + r * (size_t)K;
        float       *yr = y + r * (size_t)K;
        float        mx = xr[0];
        for (int k = 1; k < K; k++) mx = xr[k] > mx ? xr[k] : mx;
        float s = 0.0f;
        for (int k = 0; k < K; k++) {
            float v = expf(xr[k] - mx);
            yr[k]   = v;
            s += v;
        }
        float inv = 1.0f / s;
        for (int k = 0; k < K; k++) yr[k] *= inv;
    }
}

/* ---- backward passes: accumulate (+=) into dx ---- */

void iseg_relu_bwd(float *dx, const float *dy, const float *y, size_t n) {
    /* torch's threshold_backward: the gradient passes where the output is > 0 */
    for (size_t i = 0; i < n; i++)
        if (y[i] > 0.0f) dx[i] += dy[i];
}

void iseg_sigmoid_bwd(float *dx, const float *dy, const float *y, size_t n) {
    for (size_t i = 0; i < n; i++) dx[i] += dy[i] * (1.0f - y[i]) * y[i];
}

void iseg_softmax_bwd(float *dx, const float *dy, const float *y, size_t N, int K) {
    ISEG_ASSERT(K >= 1);
    for (size_t r = 0; r < N; r++) {
        const float *dyr = dy + r * (size_t)K, *yr = y + r * (size_t)K;
        float       *dxr = dx + r * (size_t)K;
        float        s   = 0.0f;
        for (int k = 0; k < K; k++) s += dyr[k] * yr[k];
        for (int k = 0; k < K; k++) dxr[k] += yr[k] * (dyr[k] - s);
    }
}
