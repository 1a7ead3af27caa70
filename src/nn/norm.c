/* norm.c - batch norm folding and inference batch norm, group norm.
 * ref: torch/csrc aten batch_norm_cpu (alpha = gamma / sqrt(var + eps), y = x alpha + beta'),
 * torchvision ops/misc.py FrozenBatchNorm2d, aten native_group_norm. */
#include <math.h>

#include "nn/nn_impl.h"

void iseg_bn_fold(float *weight, float *bias_out, const float *bias_in, const float *gamma,
                  const float *beta, const float *mean, const float *var, float eps, int cout,
                  size_t per_out) {
    for (int c = 0; c < cout; c++) {
        float scale = gamma[c] * (1.0f / sqrtf(var[c] + eps));
        float shift = beta[c] - mean[c] * scale;
        float *w    = weight + (size_t)c * per_out;
        for (size_t i = 0; i < per_out; i++) w[i] *= scale;
        bias_out[c] = bias_in ? bias_in[c] * scale + shift : shift;
    }
}

void iseg_batchnorm(float *y, const float *x, const float *gamma, const float *beta,
                    const float *mean, const float *var, float eps, int B, int C, size_t HW) {
    for (int b = 0; b < B; b++)
        for (int c = 0; c < C; c++) {
            float        alpha = (1.0f / sqrtf(var[c] + eps)) * gamma[c];
            float        shift = beta[c] - mean[c] * alpha;
            size_t       o     = ((size_t)b * C + c) * HW;
            const float *xp    = x + o;
            float       *yp    = y + o;
            for (size_t i = 0; i < HW; i++) yp[i] = xp[i] * alpha + shift;
        }
}

void iseg_batchnorm_ref(float *y, const float *x, const float *gamma, const float *beta,
                        const float *mean, const float *var, float eps, int B, int C, size_t HW) {
    for (int b = 0; b < B; b++)
        for (int c = 0; c < C; c++)
            for (size_t i = 0; i < HW; i++) {
                size_t o = ((size_t)b * C + c) * HW + i;
                y[o]     = (float)(((double)x[o] - mean[c]) / sqrt((double)var[c] + eps) * gamma[c] +
                               beta[c]);
            }
}

/* statistics of one (batch, group) in double: two passes for an exact-enough variance */
static void group_stats(const float *x, size_t n, double *mean, double *rstd, float eps) {
    double s = 0.0;
    for (size_t i = 0; i < n; i++) s += x[i];
    double m = s / (double)n, v = 0.0;
    for (size_t i = 0; i < n; i++) {
        double t = x[i] - m;
        v += t * t;
    }
    v /= (double)n;
    *mean = m;
    *rstd = 1.0 / sqrt(v + eps);
}

void iseg_groupnorm(float *y, const float *x, const float *gamma, const float *beta, float eps,
                    int B, int C, size_t HW, int groups) {
    ISEG_ASSERT(groups >= 1 && C % groups == 0);
    int cg = C / groups;
    for (int b = 0; b < B; b++)
        for (int g = 0; g < groups; g++) {
            size_t o = ((size_t)b * C + (size_t)g * cg) * HW;
            double mean, rstd;
            group_stats(x + o, (size_t)cg * HW, &mean, &rstd, eps);
            for (int j = 0; j < cg; j++) {
                int   c     = g * cg + j;
                /* y = x scale + shift with scale = rstd gamma, shift = beta - mean scale */
                float scale = (float)(rstd * (gamma ? gamma[c] : 1.0f));
                float shift = (float)((beta ? beta[c] : 0.0f) - mean * scale);
                const float *xp = x + o + (size_t)j * HW;
                float       *yp = y + o + (size_t)j * HW;
                for (size_t i = 0; i < HW; i++) yp[i] = xp[i] * scale + shift;
            }
        }
}

void iseg_groupnorm_ref(float *y, const float *x, const float *gamma, const float *beta,
                        float eps, int B, int C, size_t HW, int groups) {
    int cg = C / groups;
    for (int b = 0; b < B; b++)
        for (int g = 0; g < groups; g++) {
            size_t o = ((size_t)b * C + (size_t)g * cg) * HW, n = (size_t)cg * HW;
            double s = 0.0, ss = 0.0;
            for (size_t i = 0; i < n; i++) s += x[o + i];
            double m = s / (double)n;
            for (size_t i = 0; i < n; i++) ss += (x[o + i] - m) * (x[o + i] - m);
            double sd = sqrt(ss / (double)n + eps);
            for (size_t i = 0; i < n; i++) {
                int c    = g * cg + (int)(i / HW);
                y[o + i] = (float)((x[o + i] - m) / sd * (gamma ? gamma[c] : 1.0) +
                                   (beta ? beta[c] : 0.0));
            }
        }
}

/* ---- training: batch statistics and backward passes ---- */

struct iseg__bn_moments iseg__bn_moments(const float *x, int B, size_t bstride, size_t HW,
                                         float eps) {
    size_t n = (size_t)B * HW;
    double s = 0.0;
    for (int b = 0; b < B; b++) {
        const float *xp = x + (size_t)b * bstride;
        for (size_t i = 0; i < HW; i++) s += xp[i];
    }
    double m = s / (double)n, v = 0.0;
    for (int b = 0; b < B; b++) {
        const float *xp = x + (size_t)b * bstride;
        for (size_t i = 0; i < HW; i++) {
            double t = xp[i] - m;
            v += t * t;
        }
    }
    struct iseg__bn_moments mo = {m, v, 1.0 / sqrt(v / (double)n + eps)};
    return mo;
}

void iseg_batchnorm_train(float *y, float *save_mean, float *save_invstd, float *running_mean,
                          float *running_var, const float *x, const float *gamma,
                          const float *beta, float momentum, float eps, int B, int C,
                          size_t HW) {
    size_t n = (size_t)B * HW;
    ISEG_ASSERT(n >= 1);
    for (int c = 0; c < C; c++) {
        struct iseg__bn_moments mo = iseg__bn_moments(x + (size_t)c * HW, B, (size_t)C * HW, HW,
                                                      eps);
        double m = mo.mean, v = mo.ssd, invstd = mo.invstd;
        save_mean[c] = (float)m;
        save_invstd[c] = (float)invstd;
        if (running_mean) running_mean[c] = (1.0f - momentum) * running_mean[c] + momentum * (float)m;
        if (running_var && n > 1)
            running_var[c] = (1.0f - momentum) * running_var[c] +
                             momentum * (float)(v / (double)(n - 1));
        float scale = (float)invstd * (gamma ? gamma[c] : 1.0f);
        float shift = (beta ? beta[c] : 0.0f) - (float)m * scale;
        for (int b = 0; b < B; b++) {
            const float *xp = x + ((size_t)b * C + c) * HW;
            float       *yp = y + ((size_t)b * C + c) * HW;
            for (size_t i = 0; i < HW; i++) yp[i] = xp[i] * scale + shift;
        }
    }
}

void iseg_batchnorm_bwd(float *dx, float *dgamma, float *dbeta, const float *dy, const float *x,
                        const float *save_mean, const float *save_invstd, const float *gamma,
                        int B, int C, size_t HW) {
    size_t n = (size_t)B * HW;
    for (int c = 0; c < C; c++) {
        double m = save_mean[c], is = save_invstd[c], sdy = 0.0, sdyx = 0.0;
        for (int b = 0; b < B; b++) {
            size_t o = ((size_t)b * C + c) * HW;
            for (size_t i = 0; i < HW; i++) {
                sdy += dy[o + i];
                sdyx += dy[o + i] * ((x[o + i] - m) * is);
            }
        }
        if (dgamma) dgamma[c] += (float)sdyx;
        if (dbeta) dbeta[c] += (float)sdy;
        if (!dx) continue;
        double k = is * (gamma ? gamma[c] : 1.0), mdy = sdy / (double)n, mdyx = sdyx / (double)n;
        for (int b = 0; b < B; b++) {
            size_t o = ((size_t)b * C + c) * HW;
            for (size_t i = 0; i < HW; i++) {
                double xh = (x[o + i] - m) * is;
                dx[o + i] += (float)(k * (dy[o + i] - mdy - xh * mdyx));
            }
        }
    }
}

void iseg_groupnorm_bwd(float *dx, float *dgamma, float *dbeta, const float *dy, const float *x,
                        const float *gamma, float eps, int B, int C, size_t HW, int groups) {
    ISEG_ASSERT(groups >= 1 && C % groups == 0);
    int    cg = C / groups;
    size_t n  = (size_t)cg * HW;
    for (int b = 0; b < B; b++)
        for (int g = 0; g < groups; g++) {
            size_t o = ((size_t)b * C + (size_t)g * cg) * HW;
            double mean, rstd;
            group_stats(x + o, n, &mean, &rstd, eps);
            double s1 = 0.0, s2 = 0.0; /* sums of dxhat and dxhat * xhat */
            for (int j = 0; j < cg; j++) {
                int    c  = g * cg + j;
                double gm = gamma ? gamma[c] : 1.0, sdy = 0.0, sdyx = 0.0;
                for (size_t i = 0; i < HW; i++) {
                    size_t q  = o + (size_t)j * HW + i;
                    double xh = (x[q] - mean) * rstd;
                    sdy += dy[q];
                    sdyx += dy[q] * xh;
                }
                if (dgamma) dgamma[c] += (float)sdyx;
                if (dbeta) dbeta[c] += (float)sdy;
                s1 += gm * sdy;
                s2 += gm * sdyx;
            }
            if (!dx) continue;
            double m1 = s1 / (double)n, m2 = s2 / (double)n;
            for (int j = 0; j < cg; j++) {
                int    c  = g * cg + j;
                double gm = gamma ? gamma[c] : 1.0;
                for (size_t i = 0; i < HW; i++) {
                    size_t q  = o + (size_t)j * HW + i;
                    double xh = (x[q] - mean) * rstd;
                    dx[q] += (float)(rstd * (gm * dy[q] - m1 - xh * m2));
                }
            }
        }
}
