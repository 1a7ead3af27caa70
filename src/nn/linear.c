/* linear.c - fully connected layer (torch Linear): y = x . W^T + b through the blocked SGEMM,
 * with W^T packed once into column panels for the kernel chosen at init. */
#include <string.h>

#include "nn/nn_impl.h"

struct iseg_linear {
    int    in, out, nr;
    float *pb;   /* W^T (in, out) in panels of nr columns */
    float *bias; /* (out) or NULL */
};

enum iseg_status iseg_linear_init(iseg_linear_t *out, int in, int n_out, const float *weight,
                                  const float *bias) {
    ISEG_ASSERT(out && weight);
    *out = NULL;
    if (in < 1 || n_out < 1) return ISEG_STATUS_EINVAL;
    struct iseg_linear *l = iseg__calloc(1, sizeof(*l));
    if (!l) return ISEG_STATUS_ENOMEM;
    l->in  = in;
    l->out = n_out;
    l->nr  = iseg__gemm_kernel()->nr;
    l->pb  = iseg__malloc_array(iseg__gemm_packed_b_size(n_out, in, l->nr), sizeof(float));
    if (!l->pb) goto fail;
    /* B (in, out) element (k, n) = W[n][k]: the transposed layout */
    iseg__gemm_pack_b(l->pb, weight, (size_t)in, true, in, n_out, l->nr);
    if (bias) {
        l->bias = iseg__malloc_array((size_t)n_out, sizeof(float));
        if (!l->bias) goto fail;
        memcpy(l->bias, bias, (size_t)n_out * sizeof(float));
    }
    *out = l;
    return ISEG_STATUS_OK;
fail:
    iseg_linear_free(l);
    return ISEG_STATUS_ENOMEM;
}

void iseg_linear_free(iseg_linear_t l) {
    if (!l) return;
    iseg__free(l->pb);
    iseg__free(l->bias);
    iseg__free(l);
}

void iseg_linear_forward(iseg_engine_t e, const iseg_linear_t l, float *y, const float *x, int N,
                         enum iseg_act act) {
    ISEG_ASSERT(e && l && y && x && N >= 0);
    struct iseg__gemm_desc g;
    memset(&g, 0, sizeof(g));
    g.M = N, g.N = l->out, g.K = l->in, g.n_b = 1, g.n_g = 1;
    g.A = x, g.lda = (size_t)l->in;
    g.pb = l->pb, g.pb_nr = l->nr;
    g.C = y, g.ldc = (size_t)l->out;
    g.bias_col = l->bias;
    g.relu     = act == ISEG_ACT_RELU;
    iseg__gemm_run(e, &g);
}

void iseg_linear_forward_ref(float *y, const float *x, const float *weight, const float *bias,
                             int N, int in, int out, enum iseg_act act) {
    for (int n = 0; n < N; n++)
        for (int o = 0; o < out; o++) {
            double s = bias ? bias[o] : 0.0;
            for (int k = 0; k < in; k++) s += (double)x[(size_t)n * in + k] * weight[(size_t)o * in + k];
            float v = (float)s;
            if (act == ISEG_ACT_RELU && v < 0.0f) v = 0.0f;
            y[(size_t)n * out + o] = v;
        }
}
