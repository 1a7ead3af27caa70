/* test_nn_grad.c - backward passes of the engine's non-GEMM operators.
 *
 * Three checks per op:
 *   1. torch autograd goldens (tests/golden/nn/grad.safetensors, tools/make_grad_goldens.py);
 *   2. for the nonlinear ops (sigmoid, softmax, batch norm, group norm) central finite
 *      differences of L = sum(dy * f(x)) with a double-precision forward written here;
 *   3. for the (piecewise) linear ops (ReLU, max pool, resizes, RoIAlign) the adjoint identity
 *      <dy, f(x)> = <f'(dy), x>, evaluated in double: exact up to float rounding. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "iseg/nn.h"
#include "iseg/weights.h"
#include "test.h"

static iseg_weights_t g_gold;

static const float *gold(const char *name, size_t *n) {
    if (!g_gold) {
        char path[512], err[512];
        snprintf(path, sizeof(path), "%s/tests/golden/nn/grad.safetensors", ISEG_SOURCE_DIR);
        if (iseg_weights_load(&g_gold, path, err, sizeof(err)) != ISEG_STATUS_OK)
            TEST_SKIP("%s", err);
    }
    const struct iseg_weight *t = iseg_weights_find(g_gold, name);
    ASSERT_MSG(t && t->dtype == ISEG_DTYPE_F32, "golden tensor %s missing", name);
    if (n) *n = iseg_weight_numel(t);
    return t->data;
}

static void gold_free(void) {
    iseg_weights_free(g_gold);
    g_gold = NULL;
}

static void close_to(const char *what, const float *got, const float *want, size_t n, double atol,
                     double rtol) {
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - want[i]);
        ASSERT_MSG(d <= atol + rtol * fabs(want[i]), "%s[%zu]: %.8g vs torch %.8g", what, i,
                   got[i], want[i]);
    }
}

static float *zeros(size_t n) { return calloc(n ? n : 1, sizeof(float)); }

static double dot(const float *a, const float *b, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += (double)a[i] * b[i];
    return s;
}

/* ---- 1. torch goldens ---------------------------------------------------------------------- */

TEST(relu_sigmoid_softmax_vs_torch) {
    size_t n;
    const float *x = gold("relu.x", &n), *dy = gold("relu.dy", NULL);
    float *y = zeros(n), *dx = zeros(n);
    iseg_relu(y, x, n);
    iseg_relu_bwd(dx, dy, y, n);
    close_to("relu dx", dx, gold("relu.dx", NULL), n, 0, 0);
    free(y);
    free(dx);
    x = gold("sigmoid.x", &n);
    dy = gold("sigmoid.dy", NULL);
    y = zeros(n);
    dx = zeros(n);
    iseg_sigmoid(y, x, n);
    iseg_sigmoid_bwd(dx, dy, y, n);
    close_to("sigmoid dx", dx, gold("sigmoid.dx", NULL), n, 1e-7, 1e-5);
    free(y);
    free(dx);
    x = gold("softmax.x", &n);
    dy = gold("softmax.dy", NULL);
    y = zeros(n);
    dx = zeros(n);
    iseg_softmax(y, x, 5, 7);
    iseg_softmax_bwd(dx, dy, y, 5, 7);
    close_to("softmax dx", dx, gold("softmax.dx", NULL), n, 1e-7, 1e-5);
    free(y);
    free(dx);
    gold_free();
}

TEST(maxpool_vs_torch) {
    struct { const char *name; int B, C, h, w, k, s, p; } cs[] = {
        {"maxpool3", 2, 3, 9, 11, 3, 2, 1}, {"maxpool2", 1, 2, 8, 6, 2, 2, 0}};
    for (size_t i = 0; i < 2; i++) {
        char k1[64], k2[64], k3[64];
        snprintf(k1, sizeof(k1), "%s.x", cs[i].name);
        snprintf(k2, sizeof(k2), "%s.dy", cs[i].name);
        snprintf(k3, sizeof(k3), "%s.dx", cs[i].name);
        size_t n;
        const float *x = gold(k1, &n);
        float *dx = zeros(n);
        iseg_maxpool2d_bwd(dx, gold(k2, NULL), x, cs[i].B, cs[i].C, cs[i].h, cs[i].w, cs[i].k,
                           cs[i].s, cs[i].p);
        close_to(cs[i].name, dx, gold(k3, NULL), n, 0, 0);
        free(dx);
    }
    gold_free();
}

TEST(resize_vs_torch) {
    struct { const char *name; int B, C, h, w, oh, ow; bool bil; } cs[] = {
        {"nearest_up", 2, 3, 5, 7, 10, 14, false}, {"nearest_odd", 1, 2, 13, 9, 5, 7, false},
        {"bilinear_up", 2, 3, 6, 5, 14, 11, true}, {"bilinear_down", 1, 2, 30, 30, 13, 17, true}};
    for (size_t i = 0; i < 4; i++) {
        char k2[64], k3[64];
        snprintf(k2, sizeof(k2), "%s.dy", cs[i].name);
        snprintf(k3, sizeof(k3), "%s.dx", cs[i].name);
        size_t n;
        const float *want = gold(k3, &n);
        float *dx = zeros(n);
        if (cs[i].bil)
            iseg_resize_bilinear_bwd(dx, gold(k2, NULL), cs[i].B, cs[i].C, cs[i].h, cs[i].w,
                                     cs[i].oh, cs[i].ow, 0, 0);
        else
            iseg_resize_nearest_bwd(dx, gold(k2, NULL), cs[i].B, cs[i].C, cs[i].h, cs[i].w,
                                    cs[i].oh, cs[i].ow);
        close_to(cs[i].name, dx, want, n, 1e-6, 1e-5);
        free(dx);
    }
    gold_free();
}

TEST(roi_align_vs_torch) {
    struct { const char *name; int sr; bool aligned; } cs[] = {
        {"roialign_s2", 2, false}, {"roialign_adaptive_aligned", -1, true}};
    for (size_t i = 0; i < 2; i++) {
        char kb[64], k2[64], k3[64];
        snprintf(kb, sizeof(kb), "%s.boxes", cs[i].name);
        snprintf(k2, sizeof(k2), "%s.dy", cs[i].name);
        snprintf(k3, sizeof(k3), "%s.dx", cs[i].name);
        size_t n;
        const float *want = gold(k3, &n);
        float *dx = zeros(n);
        iseg_roi_align_bwd(dx, gold(k2, NULL), gold(kb, NULL), 4, 4, 12, 15, 3, 4, 0.5f,
                           cs[i].sr, cs[i].aligned);
        close_to(cs[i].name, dx, want, n, 1e-6, 1e-5);
        free(dx);
    }
    gold_free();
}

TEST(batchnorm_train_vs_torch) {
    size_t n;
    const float *x = gold("batchnorm.x", &n);
    float rm[3], rv[3], mean[3], invstd[3], dg[3] = {0}, db[3] = {0};
    memcpy(rm, gold("batchnorm.running_mean", NULL), sizeof(rm));
    memcpy(rv, gold("batchnorm.running_var", NULL), sizeof(rv));
    const float *g = gold("batchnorm.gamma", NULL), *b = gold("batchnorm.beta", NULL);
    float *y = zeros(n), *dx = zeros(n);
    iseg_batchnorm_train(y, mean, invstd, rm, rv, x, g, b, 0.1f, 1e-5f, 2, 3, 20);
    close_to("bn y", y, gold("batchnorm.y", NULL), n, 1e-5, 1e-5);
    close_to("bn running_mean", rm, gold("batchnorm.running_mean_after", NULL), 3, 1e-6, 1e-5);
    close_to("bn running_var", rv, gold("batchnorm.running_var_after", NULL), 3, 1e-6, 1e-5);
    iseg_batchnorm_bwd(dx, dg, db, gold("batchnorm.dy", NULL), x, mean, invstd, g, 2, 3, 20);
    close_to("bn dx", dx, gold("batchnorm.dx", NULL), n, 1e-5, 1e-4);
    close_to("bn dgamma", dg, gold("batchnorm.dgamma", NULL), 3, 1e-5, 1e-5);
    close_to("bn dbeta", db, gold("batchnorm.dbeta", NULL), 3, 1e-5, 1e-5);
    free(y);
    free(dx);
    gold_free();
}

TEST(groupnorm_vs_torch) {
    size_t n;
    const float *x = gold("groupnorm.x", &n);
    const float *g = gold("groupnorm.gamma", NULL), *b = gold("groupnorm.beta", NULL);
    float *y = zeros(n), *dx = zeros(n), dg[6] = {0}, db[6] = {0};
    iseg_groupnorm(y, x, g, b, 1e-5f, 2, 6, 20, 3);
    close_to("gn y", y, gold("groupnorm.y", NULL), n, 1e-5, 1e-5);
    iseg_groupnorm_bwd(dx, dg, db, gold("groupnorm.dy", NULL), x, g, 1e-5f, 2, 6, 20, 3);
    close_to("gn dx", dx, gold("groupnorm.dx", NULL), n, 1e-5, 1e-4);
    close_to("gn dgamma", dg, gold("groupnorm.dgamma", NULL), 6, 1e-5, 1e-5);
    close_to("gn dbeta", db, gold("groupnorm.dbeta", NULL), 6, 1e-5, 1e-5);
    free(y);
    free(dx);
    gold_free();
}

static void gemm_case(iseg_engine_t e, const char *name, int kind, int cin, int cout, int k,
                      int st, int pd, int dl, int gr, int op, int B, int h, int w) {
    char key[64];
#define G(field) (snprintf(key, sizeof(key), "%s." field, name), gold(key, NULL))
    size_t nx, ny, nw;
    snprintf(key, sizeof(key), "%s.x", name);
    const float *x = gold(key, &nx);
    snprintf(key, sizeof(key), "%s.y", name);
    const float *ywant = gold(key, &ny);
    snprintf(key, sizeof(key), "%s.w", name);
    const float *wt = gold(key, &nw);
    const float *b = G("b"), *dy = G("dy");
    float *y = zeros(ny), *dx = zeros(nx), *dw = zeros(nw), *db = zeros((size_t)cout);
    float *scratch = NULL;
    if (kind == 0) {
        struct iseg_conv2d_desc d = {cin, cout, k, k, st, st, pd, pd, dl, dl, gr};
        scratch = zeros(iseg_conv2d_train_scratch(&d, h, w));
        iseg_conv2d_fwd_raw(e, y, x, wt, b, &d, B, h, w, scratch);
        iseg_conv2d_bwd(e, dx, dw, db, dy, x, wt, &d, B, h, w, scratch);
    } else if (kind == 1) {
        struct iseg_deconv2d_desc d = {cin, cout, k, k, st, st, pd, pd, op, op, 1, 1, 1};
        scratch = zeros(iseg_deconv2d_train_scratch(&d, h, w));
        iseg_deconv2d_fwd_raw(e, y, x, wt, b, &d, B, h, w, scratch);
        iseg_deconv2d_bwd(e, dx, dw, db, dy, x, wt, &d, B, h, w, scratch);
    } else {
        scratch = zeros(iseg_linear_train_scratch(B, cin, cout));
        iseg_linear_fwd_raw(e, y, x, wt, b, B, cin, cout, scratch);
        iseg_linear_bwd(e, dx, dw, db, dy, x, wt, B, cin, cout, scratch);
    }
    char what[80];
    snprintf(what, sizeof(what), "%s y", name);
    close_to(what, y, ywant, ny, 1e-5, 1e-4);
    snprintf(what, sizeof(what), "%s dx", name);
    close_to(what, dx, G("dx"), nx, 1e-5, 1e-4);
    snprintf(what, sizeof(what), "%s dw", name);
    close_to(what, dw, G("dw"), nw, 1e-5, 1e-4);
    snprintf(what, sizeof(what), "%s db", name);
    close_to(what, db, G("db"), (size_t)cout, 1e-5, 1e-4);
#undef G
    free(y);
    free(dx);
    free(dw);
    free(db);
    free(scratch);
}

TEST(conv_deconv_linear_vs_torch) {
    iseg_engine_t e;
    ASSERT_OK(iseg_engine_init(&e, 2));
    gemm_case(e, "conv3", 0, 3, 5, 3, 1, 1, 1, 1, 0, 2, 9, 11);
    gemm_case(e, "conv_s2", 0, 4, 6, 3, 2, 1, 1, 2, 0, 2, 10, 9);
    gemm_case(e, "conv_dil", 0, 2, 3, 3, 1, 2, 2, 1, 0, 2, 8, 8);
    gemm_case(e, "conv1x1", 0, 6, 4, 1, 1, 0, 1, 1, 0, 2, 5, 7);
    gemm_case(e, "conv7s2", 0, 3, 4, 7, 2, 3, 1, 1, 0, 2, 15, 13);
    gemm_case(e, "deconv2", 1, 4, 3, 2, 2, 0, 1, 1, 0, 2, 5, 6);
    gemm_case(e, "deconv3", 1, 3, 2, 3, 2, 1, 1, 1, 1, 2, 4, 5);
    gemm_case(e, "linear", 2, 13, 5, 0, 0, 0, 0, 0, 0, 7, 0, 0);
    iseg_engine_free(e);
    gold_free();
}

/* ---- 2. finite differences in double (nonlinear ops) ----------------------------------------- */

static uint64_t g_rng = 88172645463325252ull;
static double urand(void) { /* xorshift64, uniform in [-1, 1) */
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 7;
    g_rng ^= g_rng << 17;
    return (double)(g_rng >> 11) / 9007199254740992.0 * 2.0 - 1.0;
}

enum fd_op { FD_SIGMOID, FD_SOFTMAX, FD_BN, FD_GN };
#define FD_B 2
#define FD_C 4
#define FD_HW 6
#define FD_N (FD_B * FD_C * FD_HW)

/* the forward in double */
static void fwd_f64(enum fd_op op, double *y, const double *x, const double *gm,
                    const double *bt) {
    if (op == FD_SIGMOID) {
        for (int i = 0; i < FD_N; i++) y[i] = 1.0 / (1.0 + exp(-x[i]));
    } else if (op == FD_SOFTMAX) { /* rows of FD_HW */
        for (int r = 0; r < FD_N / FD_HW; r++) {
            double mx = -INFINITY, s = 0;
            for (int k = 0; k < FD_HW; k++) mx = fmax(mx, x[r * FD_HW + k]);
            for (int k = 0; k < FD_HW; k++) s += exp(x[r * FD_HW + k] - mx);
            for (int k = 0; k < FD_HW; k++) y[r * FD_HW + k] = exp(x[r * FD_HW + k] - mx) / s;
        }
    } else if (op == FD_BN) { /* per channel over (B, HW) */
        for (int c = 0; c < FD_C; c++) {
            double sum = 0, v = 0;
            for (int b = 0; b < FD_B; b++)
                for (int i = 0; i < FD_HW; i++) sum += x[(b * FD_C + c) * FD_HW + i];
            double m = sum / (FD_B * FD_HW);
            for (int b = 0; b < FD_B; b++)
                for (int i = 0; i < FD_HW; i++) {
                    double t = x[(b * FD_C + c) * FD_HW + i] - m;
                    v += t * t;
                }
            double is = 1.0 / sqrt(v / (FD_B * FD_HW) + 1e-5);
            for (int b = 0; b < FD_B; b++)
                for (int i = 0; i < FD_HW; i++) {
                    int q = (b * FD_C + c) * FD_HW + i;
                    y[q] = (x[q] - m) * is * gm[c] + bt[c];
                }
        }
    } else { /* group norm, 2 groups: per (batch, group) */
        int cg = FD_C / 2;
        for (int b = 0; b < FD_B; b++)
            for (int gi = 0; gi < 2; gi++) {
                const double *xp = x + (b * FD_C + gi * cg) * FD_HW;
                double sum = 0, v = 0;
                for (int i = 0; i < cg * FD_HW; i++) sum += xp[i];
                double m = sum / (cg * FD_HW);
                for (int i = 0; i < cg * FD_HW; i++) v += (xp[i] - m) * (xp[i] - m);
                double is = 1.0 / sqrt(v / (cg * FD_HW) + 1e-5);
                for (int j = 0; j < cg; j++)
                    for (int i = 0; i < FD_HW; i++) {
                        int q = (b * FD_C + gi * cg + j) * FD_HW + i;
                        y[q] = (x[q] - m) * is * gm[gi * cg + j] + bt[gi * cg + j];
                    }
            }
    }
}

static void fd_check(enum fd_op op, const char *name) {
    double x[FD_N], dy[FD_N], gm[FD_C], bt[FD_C], yp[FD_N], ym[FD_N];
    float xf[FD_N], dyf[FD_N], yf[FD_N], dxf[FD_N] = {0}, gmf[FD_C], btf[FD_C];
    float dgf[FD_C] = {0}, dbf[FD_C] = {0}, mean[FD_C], invstd[FD_C];
    for (int i = 0; i < FD_N; i++) {
        xf[i] = (float)(2.0 * urand());
        x[i] = xf[i];
        dyf[i] = (float)urand();
        dy[i] = dyf[i];
    }
    for (int c = 0; c < FD_C; c++) {
        gmf[c] = (float)(1.0 + 0.5 * urand());
        btf[c] = (float)(0.3 * urand());
        gm[c] = gmf[c];
        bt[c] = btf[c];
    }
    switch (op) {
    case FD_SIGMOID:
        iseg_sigmoid(yf, xf, FD_N);
        iseg_sigmoid_bwd(dxf, dyf, yf, FD_N);
        break;
    case FD_SOFTMAX:
        iseg_softmax(yf, xf, FD_N / FD_HW, FD_HW);
        iseg_softmax_bwd(dxf, dyf, yf, FD_N / FD_HW, FD_HW);
        break;
    case FD_BN:
        iseg_batchnorm_train(yf, mean, invstd, NULL, NULL, xf, gmf, btf, 0.1f, 1e-5f, FD_B, FD_C,
                             FD_HW);
        iseg_batchnorm_bwd(dxf, dgf, dbf, dyf, xf, mean, invstd, gmf, FD_B, FD_C, FD_HW);
        break;
    case FD_GN:
        iseg_groupnorm_bwd(dxf, dgf, dbf, dyf, xf, gmf, 1e-5f, FD_B, FD_C, FD_HW, 2);
        break;
    }
    const double h = 1e-6;
    for (int i = 0; i < FD_N; i++) {
        double s = x[i];
        x[i] = s + h;
        fwd_f64(op, yp, x, gm, bt);
        x[i] = s - h;
        fwd_f64(op, ym, x, gm, bt);
        x[i] = s;
        double num = 0;
        for (int k = 0; k < FD_N; k++) num += dy[k] * (yp[k] - ym[k]);
        num /= 2 * h;
        ASSERT_MSG(fabs(num - dxf[i]) <= 1e-5 + 1e-4 * fabs(num),
                   "%s: dx[%d] %.8g vs finite difference %.8g", name, i, dxf[i], num);
    }
    if (op == FD_BN || op == FD_GN) /* parameter gradients */
        for (int c = 0; c < FD_C; c++)
            for (int which = 0; which < 2; which++) {
                double *p = which ? &bt[c] : &gm[c], s = *p;
                *p = s + h;
                fwd_f64(op, yp, x, gm, bt);
                *p = s - h;
                fwd_f64(op, ym, x, gm, bt);
                *p = s;
                double num = 0;
                for (int k = 0; k < FD_N; k++) num += dy[k] * (yp[k] - ym[k]);
                num /= 2 * h;
                float got = which ? dbf[c] : dgf[c];
                ASSERT_MSG(fabs(num - got) <= 1e-5 + 1e-4 * fabs(num),
                           "%s: d%s[%d] %.8g vs finite difference %.8g", name,
                           which ? "beta" : "gamma", c, got, num);
            }
}

TEST(finite_differences_nonlinear) {
    fd_check(FD_SIGMOID, "sigmoid");
    fd_check(FD_SOFTMAX, "softmax");
    fd_check(FD_BN, "batchnorm");
    fd_check(FD_GN, "groupnorm");
}

/* ---- 3. adjoint identity (piecewise linear ops) ----------------------------------------------- */

static void rand_fill(float *p, size_t n) {
    for (size_t i = 0; i < n; i++) p[i] = (float)urand();
}

static void adjoint_ok(const char *name, const float *x, const float *fx, const float *dy,
                       const float *dx, size_t nx, size_t ny) {
    double a = dot(dy, fx, ny), b = dot(dx, x, nx);
    double scale = 0;
    for (size_t i = 0; i < ny; i++) scale += fabs((double)dy[i] * fx[i]);
    ASSERT_MSG(fabs(a - b) <= 1e-5 * (scale + 1), "%s: <dy, f(x)> %.10g vs <f'(dy), x> %.10g",
               name, a, b);
}

TEST(adjoint_piecewise_linear) {
    iseg_engine_t e;
    ASSERT_OK(iseg_engine_init(&e, 2));
    enum { B = 2, C = 3, H = 17, W = 13 };
    size_t nx = (size_t)B * C * H * W;
    float *x = zeros(nx), *dx = zeros(nx), *y = zeros(4 * nx), *dy = zeros(4 * nx);
    rand_fill(x, nx);
    /* relu */
    iseg_relu(y, x, nx);
    rand_fill(dy, nx);
    iseg_relu_bwd(dx, dy, y, nx);
    adjoint_ok("relu", x, y, dy, dx, nx, nx);
    /* max pool, several geometries */
    int pools[3][3] = {{3, 2, 1}, {2, 2, 0}, {3, 1, 1}};
    for (int i = 0; i < 3; i++) {
        int oh, ow;
        iseg_maxpool2d_out_hw(pools[i][0], pools[i][1], pools[i][2], H, W, &oh, &ow);
        size_t ny = (size_t)B * C * oh * ow;
        iseg_maxpool2d(NULL, y, x, B, C, H, W, pools[i][0], pools[i][1], pools[i][2]);
        rand_fill(dy, ny);
        memset(dx, 0, nx * sizeof(float));
        iseg_maxpool2d_bwd(dx, dy, x, B, C, H, W, pools[i][0], pools[i][1], pools[i][2]);
        adjoint_ok("maxpool", x, y, dy, dx, nx, ny);
    }
    /* resizes up, down and odd */
    int sizes[4][2] = {{34, 26}, {8, 5}, {23, 31}, {17, 13}};
    for (int i = 0; i < 4; i++) {
        int oh = sizes[i][0], ow = sizes[i][1];
        size_t ny = (size_t)B * C * oh * ow;
        rand_fill(dy, ny);
        iseg_resize_nearest(y, x, B, C, H, W, oh, ow);
        memset(dx, 0, nx * sizeof(float));
        iseg_resize_nearest_bwd(dx, dy, B, C, H, W, oh, ow);
        adjoint_ok("nearest", x, y, dy, dx, nx, ny);
        iseg_resize_bilinear(e, y, x, B, C, H, W, oh, ow, 0, 0);
        memset(dx, 0, nx * sizeof(float));
        iseg_resize_bilinear_bwd(dx, dy, B, C, H, W, oh, ow, 0, 0);
        adjoint_ok("bilinear", x, y, dy, dx, nx, ny);
    }
    /* RoIAlign over one feature map (C, H, W), boxes inside, across and outside the border */
    const float boxes[5 * 4] = {1, 2, 20, 30, -8, -5, 9, 7, 10.5f, 3.25f, 11, 3.5f,
                                30, 40, 60, 70, 0, 0, 26, 34};
    size_t nf = (size_t)C * H * W;
    for (int sr = -1; sr <= 2; sr += 3)
        for (int al = 0; al < 2; al++) {
            size_t ny = (size_t)5 * C * 7 * 7;
            iseg_roi_align(e, y, x, boxes, 5, C, H, W, 7, 7, 0.5f, sr, al);
            rand_fill(dy, ny);
            memset(dx, 0, nx * sizeof(float));
            iseg_roi_align_bwd(dx, dy, boxes, 5, C, H, W, 7, 7, 0.5f, sr, al);
            adjoint_ok("roi_align", x, y, dy, dx, nf, ny);
        }
    free(x);
    free(dx);
    free(y);
    free(dy);
    iseg_engine_free(e);
}

/* Convolutions are linear in x and in w: <dy, conv(x; w)> = <dx, x> = <dw, w> (no bias). */
TEST(adjoint_conv_deconv_linear) {
    iseg_engine_t e;
    ASSERT_OK(iseg_engine_init(&e, 3));
    struct iseg_conv2d_desc cs[] = {
        {6, 8, 3, 3, 1, 1, 1, 1, 1, 1, 1}, {6, 4, 3, 3, 2, 2, 1, 1, 1, 1, 2},
        {4, 4, 3, 3, 1, 1, 2, 2, 2, 2, 4}, {5, 7, 1, 1, 1, 1, 0, 0, 1, 1, 1},
        {3, 5, 5, 3, 2, 1, 2, 1, 1, 1, 1}};
    const int B = 2, h = 11, w = 9;
    for (size_t i = 0; i < sizeof(cs) / sizeof(*cs); i++) {
        const struct iseg_conv2d_desc *d = &cs[i];
        int oh, ow;
        iseg_conv2d_out_hw(d, h, w, &oh, &ow);
        size_t nx = (size_t)B * d->cin * h * w, ny = (size_t)B * d->cout * oh * ow;
        size_t nw = (size_t)d->cout * (d->cin / d->groups) * d->kh * d->kw;
        float *x = zeros(nx), *wt = zeros(nw), *y = zeros(ny), *dy = zeros(ny);
        float *dx = zeros(nx), *dw = zeros(nw);
        float *scratch = zeros(iseg_conv2d_train_scratch(d, h, w));
        rand_fill(x, nx);
        rand_fill(wt, nw);
        rand_fill(dy, ny);
        iseg_conv2d_fwd_raw(e, y, x, wt, NULL, d, B, h, w, scratch);
        iseg_conv2d_bwd(e, dx, dw, NULL, dy, x, wt, d, B, h, w, scratch);
        adjoint_ok("conv dx", x, y, dy, dx, nx, ny);
        adjoint_ok("conv dw", wt, y, dy, dw, nw, ny);
        /* the raw forward equals the reference */
        float *yref = zeros(ny);
        iseg_conv2d_forward_ref(yref, x, wt, NULL, d, B, h, w, NULL, ISEG_ACT_NONE);
        close_to("conv fwd_raw vs ref", y, yref, ny, 1e-4, 1e-4);
        /* the transposed convolution with the same geometry is the adjoint of the conv */
        struct iseg_deconv2d_desc dd = {d->cout, d->cin, d->kh, d->kw, d->stride_h, d->stride_w,
                                        d->pad_h, d->pad_w, 0, 0, d->dil_h, d->dil_w,
                                        d->groups};
        int th, tw;
        iseg_deconv2d_out_hw(&dd, oh, ow, &th, &tw);
        if (th <= h && th >= h - d->stride_h + 1 && tw <= w && tw >= w - d->stride_w + 1) {
            dd.out_pad_h = h - th;
            dd.out_pad_w = w - tw;
            float *t = zeros(nx), *ds = zeros(iseg_deconv2d_train_scratch(&dd, oh, ow));
            float *gdy = zeros(ny), *gw = zeros(nw);
            iseg_deconv2d_fwd_raw(e, t, dy, wt, NULL, &dd, B, oh, ow, ds);
            /* <x, deconv(dy)> = <conv(x), dy> */
            double a = dot(x, t, nx), b = dot(y, dy, ny);
            ASSERT_MSG(fabs(a - b) <= 1e-4 * (fabs(a) + 1), "deconv adjoint %.9g vs %.9g", a, b);
            iseg_deconv2d_bwd(e, gdy, gw, NULL, x, dy, wt, &dd, B, oh, ow, ds);
            adjoint_ok("deconv dx", dy, t, x, gdy, ny, nx);
            adjoint_ok("deconv dw", wt, t, x, gw, nw, nx);
            free(t);
            free(ds);
            free(gdy);
            free(gw);
        }
        free(yref);
        free(x);
        free(wt);
        free(y);
        free(dy);
        free(dx);
        free(dw);
        free(scratch);
    }
    /* linear */
    const int N = 9, in = 31, out = 17;
    float *x = zeros((size_t)N * in), *wt = zeros((size_t)out * in), *y = zeros((size_t)N * out);
    float *dy = zeros((size_t)N * out), *dx = zeros((size_t)N * in), *dw = zeros((size_t)out * in);
    float *scratch = zeros(iseg_linear_train_scratch(N, in, out));
    rand_fill(x, (size_t)N * in);
    rand_fill(wt, (size_t)out * in);
    rand_fill(dy, (size_t)N * out);
    iseg_linear_fwd_raw(e, y, x, wt, NULL, N, in, out, scratch);
    iseg_linear_bwd(e, dx, dw, NULL, dy, x, wt, N, in, out, scratch);
    adjoint_ok("linear dx", x, y, dy, dx, (size_t)N * in, (size_t)N * out);
    adjoint_ok("linear dw", wt, y, dy, dw, (size_t)out * in, (size_t)N * out);
    free(x);
    free(wt);
    free(y);
    free(dy);
    free(dx);
    free(dw);
    free(scratch);
    iseg_engine_free(e);
}

/* Backward passes accumulate: calling twice doubles the gradient. */
TEST(backward_accumulates) {
    float x[6] = {1, -2, 3, -4, 5, 0.5f}, y[6], dy[6] = {1, 1, 1, 1, 1, 1}, dx[6] = {0};
    iseg_relu(y, x, 6);
    iseg_relu_bwd(dx, dy, y, 6);
    iseg_relu_bwd(dx, dy, y, 6);
    const float want[6] = {2, 0, 2, 0, 2, 2};
    for (int i = 0; i < 6; i++) ASSERT(dx[i] == want[i]);
}

TEST_LIST = {
    TEST_ENTRY(relu_sigmoid_softmax_vs_torch),
    TEST_ENTRY(maxpool_vs_torch),
    TEST_ENTRY(resize_vs_torch),
    TEST_ENTRY(roi_align_vs_torch),
    TEST_ENTRY(batchnorm_train_vs_torch),
    TEST_ENTRY(groupnorm_vs_torch),
    TEST_ENTRY(conv_deconv_linear_vs_torch),
    TEST_ENTRY(finite_differences_nonlinear),
    TEST_ENTRY(adjoint_piecewise_linear),
    TEST_ENTRY(adjoint_conv_deconv_linear),
    TEST_ENTRY(backward_accumulates),
    TEST_END,
};
