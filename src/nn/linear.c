/* linear.c - fully connected layer (torch Linear): y = x . W^T + b through the blocked SGEMM,
 * with W^T packed once into column panels for the kernel chosen at init. */
#include <string.h>

#include "nn/nn_impl.h"

struct iseg_linear {
    int                   in, out, nr;
    float                *pb;   /* FP32: W^T (in, out) in panels of nr columns */
    float                *bias; /* (out) or NULL */
    enum iseg_precision   prec;
    struct iseg__qweights q;    /* BF16, INT8: W (out, in) converted (per output) */
};

enum iseg_status iseg_linear_init(iseg_linear_t *out, int in, int n_out, const float *weight,
                                  const float *bias) {
    return iseg_linear_init_precision(out, in, n_out, weight, bias, ISEG_PRECISION_FP32);
}

enum iseg_precision iseg_linear_precision(const iseg_linear_t l) { return l->prec; }

enum iseg_status iseg_linear_init_precision(iseg_linear_t *out, int in, int n_out,
                                            const float *weight, const float *bias,
                                            enum iseg_precision p) {
    ISEG_ASSERT(out && weight);
    *out = NULL;
    if (in < 1 || n_out < 1 || p < 0 || p >= ISEG_PRECISION_COUNT) return ISEG_STATUS_EINVAL;
    struct iseg_linear *l = iseg__calloc(1, sizeof(*l));
    if (!l) return ISEG_STATUS_ENOMEM;
    l->in   = in;
    l->out  = n_out;
    l->prec = p;
    l->nr   = iseg__gemm_kernel()->nr;
    if (p != ISEG_PRECISION_FP32) {
        if (iseg__qweights_init(&l->q, iseg__qkind_of(p), weight, n_out, in, 1)) goto fail;
    } else {
        l->pb = iseg__malloc_array(iseg__gemm_packed_b_size(n_out, in, l->nr), sizeof(float));
        if (!l->pb) goto fail;
        /* B (in, out) element (k, n) = W[n][k]: the transposed layout */
        iseg__gemm_pack_b(l->pb, weight, (size_t)in, true, in, n_out, l->nr);
    }
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
    iseg__qweights_free(&l->q);
    iseg__free(l);
}

void iseg_linear_forward(iseg_engine_t e, const iseg_linear_t l, float *y, const float *x, int N,
                         enum iseg_act act) {
    ISEG_ASSERT(e && l && y && x && N >= 0);
    if (l->prec != ISEG_PRECISION_FP32) {
        /* y^T (out, N) = W . x^T: the weights are the kernel's rows, x's rows its columns,
         * converted once into rows of whole words */
        if (N == 0) return;
        struct iseg__qgemm_desc q;
        memset(&q, 0, sizeof(q));
        if (l->prec == ISEG_PRECISION_INT8) q.act = iseg__qact_of(e, x, (size_t)N * l->in);
        q.M = l->out, q.N = N, q.K = l->in, q.n_b = 1, q.n_g = 1, q.w = &l->q;
        q.qb_ld     = (size_t)l->q.Kw;
        uint32_t *qx = (uint32_t *)iseg__engine_shared(e, q.qb_ld * (size_t)N * 4);
        if (!qx) return;
        iseg__qrows(e, l->q.kind, qx, q.qb_ld, x, N, l->in, &q.act);
        q.qb = qx;
        q.C = y, q.ldc = (size_t)l->out, q.c_trans = true;
        q.bias = l->bias, q.relu = act == ISEG_ACT_RELU;
        iseg__qgemm_run(e, &q);
        return;
    }
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

void iseg_linear_forward_int8_ref(float *y, const float *x, const float *weight,
                                  const float *bias, int N, int in, int out, enum iseg_act act) {
    struct iseg__qact p  = iseg__qact_of_ref(x, (size_t)N * in);
    int8_t           *qw = iseg__malloc_array((size_t)in, 1);
    ISEG_ASSERT(qw);
    for (int o = 0; o < out; o++) {
        float sw = iseg__qweight_row(qw, weight + (size_t)o * in, in);
        for (int n = 0; n < N; n++) {
            int32_t acc = 0;
            for (int k = 0; k < in; k++)
                acc += qw[k] * (iseg__qact_one(x[(size_t)n * in + k], &p) - p.zp);
            float v = (float)acc * (p.scale * sw);
            if (bias) v += bias[o];
            if (act == ISEG_ACT_RELU && v < 0.0f) v = 0.0f;
            y[(size_t)n * out + o] = v;
        }
    }
    iseg__free(qw);
}
