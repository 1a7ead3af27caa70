/* test_loss.c - losses against torch 1.13 / torchvision 0.14 (tests/golden/train/loss.safetensors
 * from tools/make_train_goldens.py): losses and gradients within 1e-6 relative (the scale of an
 * element is max(|torch value|, 1e-3 * largest |value| of the tensor)); and every gradient
 * against central finite differences of the double-valued loss. Skips the golden tests when the
 * file is absent. */
#include "test.h"

#include "iseg/loss.h"

#include "golden_st.h"

static float *to_f32(const double *v, size_t n) {
    float *r = malloc((n + 1) * sizeof(float));
    ASSERT(r);
    for (size_t i = 0; i < n; i++) r[i] = (float)v[i];
    return r;
}

static int64_t *to_i64(const double *v, size_t n) {
    int64_t *r = malloc((n + 1) * sizeof(int64_t));
    ASSERT(r);
    for (size_t i = 0; i < n; i++) r[i] = (int64_t)v[i];
    return r;
}

/* |got - want| <= rtol * (|want| + max|want|*floor), reporting the worst element */
static double g_worst_rel = 0.0; /* largest |got - want| / max(|want|, floor * max|want|) seen */
static void check_close(const char *what, const float *got, const double *want, size_t n,
                        double rtol) {
    double mx = 0.0;
    for (size_t i = 0; i < n; i++) mx = fmax(mx, fabs(want[i]));
    for (size_t i = 0; i < n; i++) {
        double scale = fmax(fabs(want[i]), 1e-3 * mx), d = fabs((double)got[i] - want[i]);
        if (scale > 0 && d / scale > g_worst_rel) g_worst_rel = d / scale;
        if (!(d <= rtol * scale))
            TEST_FAIL("%s[%zu]: got %.9g, torch %.9g (rel %.3g > %g)", what, i, got[i], want[i],
                      d / scale, rtol);
    }
}

#define RTOL 1e-6

static const char *RED_NAME[] = {"none", "mean", "sum"};

/* Compare the loss (scalar, or per element for NONE) and gradient with "<case>.loss64" /
 * ".grad64" (torch in float64: the definition) at RTOL, and with torch's float32 results
 * ".loss" / ".grad" at RTOL32: torch's float evaluation itself is off by up to ~1e-5 relative
 * (e.g. log(1 + exp(-x)) in float for large x). */
#define RTOL32 5e-5
static double g_worst64 = 0.0, g_worst32 = 0.0;

static void check_case(const struct st_file *f, const char *c, double loss, const float *lo,
                       const float *grad, size_t n, size_t nlo) {
    for (int pass = 0; pass < 2; pass++) {
        const char *suf  = pass == 0 ? "64" : "";
        double      rtol = pass == 0 ? RTOL : RTOL32;
        char        k[128];
        size_t      nl, ng;
        g_worst_rel = pass == 0 ? g_worst64 : g_worst32;
        snprintf(k, sizeof(k), "%s.loss%s", c, suf);
        double *wl = st_get(f, k, &nl);
        if (lo) {
            ASSERT_EQ_U64(nl, nlo);
            check_close(k, lo, wl, nl, rtol);
            double s = 0;
            for (size_t i = 0; i < nl; i++) s += wl[i];
            float ls = (float)loss;
            check_close(k, &ls, &s, 1, rtol);
        } else {
            ASSERT_EQ_U64(nl, 1);
            float l = (float)loss;
            check_close(k, &l, wl, 1, rtol);
        }
        snprintf(k, sizeof(k), "%s.grad%s", c, suf);
        double *wg = st_get(f, k, &ng);
        ASSERT_EQ_U64(ng, n);
        check_close(k, grad, wg, n, rtol);
        free(wl);
        free(wg);
        if (pass == 0) g_worst64 = g_worst_rel;
        else g_worst32 = g_worst_rel;
    }
}

static void report(const char *what) {
    printf("  %s: worst relative difference to torch float64 %.3g, to torch float32 %.3g\n",
           what, g_worst64, g_worst32);
}

TEST(torch_bce) {
    struct st_file f;
    st_open(&f, "loss.safetensors");
    size_t n, n5;
    double *xd = st_get(&f, "bce.x", &n), *yd = st_get(&f, "bce.y", &n);
    double *wd = st_get(&f, "bce.w", &n5), *pwd = st_get(&f, "bce.pw", &n5);
    float  *x = to_f32(xd, n), *y = to_f32(yd, n), *w = to_f32(wd, n5), *pw = to_f32(pwd, n5);
    float   g[64], lo[64];
    for (int r = 0; r < 3; r++) {
        for (int weighted = 0; weighted < 2; weighted++) {
            struct iseg_bce_params p = iseg_bce_default_params();
            p.reduction              = (enum iseg_reduction)r;
            if (weighted) {
                p.weight = w, p.n_weight = n5;
                p.pos_weight = pw, p.n_pos_weight = n5;
            }
            double l = iseg_bce_logits_loss(g, r == 0 ? lo : NULL, x, y, n, &p);
            char   c[64];
            snprintf(c, sizeof(c), "bce.%s.%s", weighted ? "weighted" : "plain", RED_NAME[r]);
            check_case(&f, c, l, r == 0 ? lo : NULL, g, n, n);
        }
    }
    free(xd), free(yd), free(wd), free(pwd), free(x), free(y), free(w), free(pw);
    st_close(&f);
    report("bce");
}

TEST(torch_ce) {
    struct st_file f;
    st_open(&f, "loss.safetensors");
    size_t   nx, nt, nw;
    double  *xd = st_get(&f, "ce.x", &nx), *td = st_get(&f, "ce.t", &nt);
    double  *wd = st_get(&f, "ce.w", &nw);
    float   *x = to_f32(xd, nx), *w = to_f32(wd, nw);
    int64_t *t = to_i64(td, nt);
    size_t   N = nt, K = nw;
    ASSERT_EQ_U64(nx, N * K);
    float g[64], lo[16];
    for (int r = 0; r < 3; r++)
        for (int weighted = 0; weighted < 2; weighted++) {
            struct iseg_ce_params p = iseg_ce_default_params();
            p.reduction             = (enum iseg_reduction)r;
            p.weight                = weighted ? w : NULL;
            double l = iseg_softmax_ce_loss(g, r == 0 ? lo : NULL, x, t, N, K, 1, &p);
            char   c[64];
            snprintf(c, sizeof(c), "ce.%s.%s", weighted ? "weighted" : "plain", RED_NAME[r]);
            check_case(&f, c, l, r == 0 ? lo : NULL, g, nx, N);
        }
    /* dense (N, K, H, W) with ignore_index 255 */
    free(xd), free(td), free(x), free(t);
    xd = st_get(&f, "ce.dense.x", &nx);
    td = st_get(&f, "ce.dense.t", &nt);
    x  = to_f32(xd, nx);
    t  = to_i64(td, nt);
    struct iseg_ce_params p = iseg_ce_default_params();
    p.ignore_index          = 255;
    float  gd[128];
    double l = iseg_softmax_ce_loss(gd, NULL, x, t, 2, 4, 9, &p);
    check_case(&f, "ce.dense.mean", l, NULL, gd, nx, 0);
    free(xd), free(td), free(wd), free(x), free(t), free(w);
    st_close(&f);
    report("ce");
}

TEST(torch_smooth_l1) {
    struct st_file f;
    st_open(&f, "loss.safetensors");
    size_t n;
    double *xd = st_get(&f, "sl1.x", &n), *yd = st_get(&f, "sl1.y", &n);
    float  *x = to_f32(xd, n), *y = to_f32(yd, n), g[64], lo[64];
    static const struct {
        const char         *tag;
        float               beta;
        enum iseg_reduction r;
    } cs[] = {{"b9.sum", 1.0f / 9, ISEG_REDUCTION_SUM},
              {"b1.mean", 1.0f, ISEG_REDUCTION_MEAN},
              {"b0.mean", 0.0f, ISEG_REDUCTION_MEAN},
              {"b05.none", 0.5f, ISEG_REDUCTION_NONE}};
    for (size_t i = 0; i < sizeof(cs) / sizeof(cs[0]); i++) {
        bool   none = cs[i].r == ISEG_REDUCTION_NONE;
        double l    = iseg_smooth_l1_loss(g, none ? lo : NULL, x, y, n, cs[i].beta, cs[i].r);
        char   c[64];
        snprintf(c, sizeof(c), "sl1.%s", cs[i].tag);
        check_case(&f, c, l, none ? lo : NULL, g, n, n);
    }
    free(xd), free(yd), free(x), free(y);
    st_close(&f);
    report("smooth_l1");
}

TEST(torch_focal) {
    struct st_file f;
    st_open(&f, "loss.safetensors");
    size_t  n;
    double *xd = st_get(&f, "focal.x", &n), *yd = st_get(&f, "focal.y", &n);
    double *sd = st_get(&f, "focal.ysoft", &n);
    float  *x = to_f32(xd, n), *y = to_f32(yd, n), *ys = to_f32(sd, n), g[64], lo[64];
    for (int r = 0; r < 3; r++) {
        double l = iseg_sigmoid_focal_loss(g, r == 0 ? lo : NULL, x, y, n, 0.25f, 2.0f,
                                           (enum iseg_reduction)r);
        char   c[64];
        snprintf(c, sizeof(c), "focal.default.%s", RED_NAME[r]);
        check_case(&f, c, l, r == 0 ? lo : NULL, g, n, n);
    }
    double l = iseg_sigmoid_focal_loss(g, NULL, x, y, n, -1.0f, 0.0f, ISEG_REDUCTION_SUM);
    check_case(&f, "focal.noalpha.sum", l, NULL, g, n, 0);
    l = iseg_sigmoid_focal_loss(g, NULL, x, ys, n, 0.5f, 1.5f, ISEG_REDUCTION_MEAN);
    check_case(&f, "focal.soft.mean", l, NULL, g, n, 0);
    free(xd), free(yd), free(sd), free(x), free(y), free(ys);
    st_close(&f);
    report("focal");
}

TEST(torch_dice_jaccard) {
    struct st_file f;
    st_open(&f, "loss.safetensors");
    size_t  n;
    double *xd = st_get(&f, "dice.x", &n), *td = st_get(&f, "dice.t", &n);
    float  *x = to_f32(xd, n), *t = to_f32(td, n), g[256], lo[3];
    size_t  N = 3, P = n / 3;
    double  l = iseg_dice_loss(g, lo, x, t, N, P, ISEG_DICE_EPS_DEFAULT);
    check_case(&f, "dice.dice", l, NULL, g, n, 0);
    l = iseg_jaccard_loss(g, NULL, x, t, N, P, 1.0);
    check_case(&f, "dice.jaccard", l, NULL, g, n, 0);
    l = iseg_dice_jaccard_loss(g, NULL, x, t, N, P, ISEG_DICE_EPS_DEFAULT,
                               ISEG_JACCARD_WEIGHT_DEFAULT, ISEG_DICE_WEIGHT_DEFAULT);
    check_case(&f, "dice.combo", l, NULL, g, n, 0);
    l = iseg_dice_jaccard_loss(g, NULL, x, t, N, P, 1e-3, 2.0, 1.0);
    check_case(&f, "dice.combo_eps1e-3", l, NULL, g, n, 0);
    ASSERT_EQ_DBL(iseg_dice_loss(NULL, NULL, x, t, 0, P, 1.0), 0.0);
    free(xd), free(td), free(x), free(t);
    st_close(&f);
    report("dice/jaccard");
}

TEST(torch_maskrcnn_mask_loss) {
    struct st_file f;
    st_open(&f, "loss.safetensors");
    size_t   n, nt, nl;
    double  *xd = st_get(&f, "mrcnn.x", &n), *td = st_get(&f, "mrcnn.t", &nt);
    double  *ld = st_get(&f, "mrcnn.labels", &nl);
    float   *x = to_f32(xd, n), *t = to_f32(td, nt), *g = malloc(n * sizeof(float));
    int64_t *lab = to_i64(ld, nl);
    size_t   N = nl, M = 7, K = n / (N * M * M);
    ASSERT_EQ_U64(K, 3);
    double l = iseg_maskrcnn_mask_loss(g, x, t, lab, N, K, M);
    check_case(&f, "mrcnn", l, NULL, g, n, 0);
    /* every other channel has exactly zero gradient */
    for (size_t b = 0; b < N; b++)
        for (size_t k = 0; k < K; k++)
            if ((int64_t)k != lab[b])
                for (size_t j = 0; j < M * M; j++) ASSERT(g[(b * K + k) * M * M + j] == 0.0f);
    ASSERT_EQ_DBL(iseg_maskrcnn_mask_loss(NULL, x, t, lab, 0, K, M), 0.0);
    free(xd), free(td), free(ld), free(x), free(t), free(g), free(lab);
    st_close(&f);
    report("maskrcnn");
}

TEST(torch_uncertainty_weighting) {
    struct st_file f;
    st_open(&f, "loss.safetensors");
    size_t  n;
    double *L = st_get(&f, "kendall.L", &n), *sd = st_get(&f, "kendall.s", &n);
    double *wl = st_get(&f, "kendall.loss", &n), *wdl = st_get(&f, "kendall.dL", &n);
    double *wds = st_get(&f, "kendall.ds", &n);
    float  *s = to_f32(sd, 3), ds[3];
    double  dl[3];
    double  tot = iseg_uncertainty_weighting(dl, ds, L, s, 3);
    ASSERT_NEAR(tot, wl[0], 1e-12 * fabs(wl[0]));
    for (int i = 0; i < 3; i++) {
        ASSERT_NEAR(dl[i], wdl[i], 1e-12 * fabs(wdl[i]));
        ASSERT_NEAR(ds[i], wds[i], 1e-6 * fabs(wds[i]) + 1e-7);
    }
    free(L), free(sd), free(wl), free(wdl), free(wds), free(s);
    st_close(&f);
}

/* ---- central finite differences ----
 * Inputs are multiples of 2^-14 below 2^9 in magnitude and the step is h = 2^-12, so x +- h are
 * exact floats and the loss (a double function of its float inputs) is differentiated exactly
 * up to the O(h^2) truncation: the check is 1e-6 of the largest gradient plus 1e-5 relative. */

#define FD_H 0x1p-12

struct fd_ctx {
    int                 kind;
    const float        *y;
    const int64_t      *t;
    size_t              n, N, K, S, M;
    float               beta, alpha, gamma;
    double              eps, wj, wd;
    enum iseg_reduction r;
    struct iseg_bce_params bce;
    struct iseg_ce_params  ce;
};

enum { FD_BCE, FD_CE, FD_SL1, FD_FOCAL, FD_DICE, FD_MRCNN };

static double fd_eval(const struct fd_ctx *c, float *d, const float *x) {
    switch (c->kind) {
    case FD_BCE: return iseg_bce_logits_loss(d, NULL, x, c->y, c->n, &c->bce);
    case FD_CE: return iseg_softmax_ce_loss(d, NULL, x, c->t, c->N, c->K, c->S, &c->ce);
    case FD_SL1: return iseg_smooth_l1_loss(d, NULL, x, c->y, c->n, c->beta, c->r);
    case FD_FOCAL: return iseg_sigmoid_focal_loss(d, NULL, x, c->y, c->n, c->alpha, c->gamma, c->r);
    case FD_DICE:
        return iseg_dice_jaccard_loss(d, NULL, x, c->y, c->N, c->n / c->N, c->eps, c->wj, c->wd);
    default: return iseg_maskrcnn_mask_loss(d, x, c->y, c->t, c->N, c->K, c->M);
    }
}

static float q14(uint64_t *rs, double scale) {
    double v = (test_rand_unif(rs) * 2 - 1) * scale;
    return (float)(nearbyint(v * 16384.0) / 16384.0);
}

/* skip(i) may exclude non-smooth points */
static void fd_check(const char *what, const struct fd_ctx *c, float *x, size_t nx,
                     bool (*skip)(const struct fd_ctx *, const float *, size_t)) {
    float *g  = malloc(nx * sizeof(float));
    float *xx = malloc(nx * sizeof(float));
    ASSERT(g && xx);
    fd_eval(c, g, x);
    double gmax = 0;
    for (size_t i = 0; i < nx; i++) gmax = fmax(gmax, fabs(g[i]));
    size_t checked = 0;
    for (size_t i = 0; i < nx; i++) {
        if (skip && skip(c, x, i)) continue;
        memcpy(xx, x, nx * sizeof(float));
        xx[i]     = (float)(x[i] + FD_H);
        ASSERT((double)xx[i] == (double)x[i] + FD_H);
        double fp = fd_eval(c, NULL, xx);
        xx[i]     = (float)(x[i] - FD_H);
        double fm = fd_eval(c, NULL, xx);
        double fd = (fp - fm) / (2 * FD_H);
        if (!(fabs(fd - g[i]) <= 1e-6 * gmax + 1e-5 * fabs(fd)))
            TEST_FAIL("%s: d/dx[%zu] analytic %.9g, finite difference %.9g", what, i, g[i], fd);
        checked++;
    }
    ASSERT(checked > nx / 2);
    free(g);
    free(xx);
}

static bool sl1_skip(const struct fd_ctx *c, const float *x, size_t i) {
    double d = (double)x[i] - c->y[i];
    return fabs(fabs(d) - c->beta) < 2 * FD_H;
}

TEST(fd_gradients) {
    uint64_t rs = 12345;
    enum { n = 48 };
    float   x[n], y[n], ys[n], w[6], pw[6];
    int64_t t[n];
    for (size_t i = 0; i < n; i++) {
        x[i]  = q14(&rs, 4.0);
        y[i]  = test_rand_unif(&rs) < 0.4 ? 1.0f : 0.0f;
        ys[i] = (float)test_rand_unif(&rs);
    }
    for (int i = 0; i < 6; i++) w[i] = 0.5f + (float)i / 4, pw[i] = 0.25f + (float)i / 2;
    for (int r = 0; r < 3; r++) {
        struct fd_ctx c;
        memset(&c, 0, sizeof(c));
        c.kind = FD_BCE, c.y = ys, c.n = n, c.r = (enum iseg_reduction)r;
        c.bce           = iseg_bce_default_params();
        c.bce.reduction = c.r;
        fd_check("bce", &c, x, n, NULL);
        c.bce.weight = w, c.bce.n_weight = 6, c.bce.pos_weight = pw, c.bce.n_pos_weight = 6;
        fd_check("bce weighted", &c, x, n, NULL);

        c.kind = FD_SL1, c.y = ys, c.r = (enum iseg_reduction)r;
        float betas[] = {1.0f / 9, 1.0f, 0.0f};
        for (int b = 0; b < 3; b++) {
            c.beta = betas[b];
            fd_check("smooth_l1", &c, x, n, sl1_skip);
        }
        c.kind = FD_FOCAL, c.y = y, c.alpha = 0.25f, c.gamma = 2.0f;
        fd_check("focal", &c, x, n, NULL);
        c.y = ys, c.alpha = 0.5f, c.gamma = 1.5f;
        fd_check("focal soft", &c, x, n, NULL);
        c.alpha = -1.0f, c.gamma = 0.0f;
        fd_check("focal gamma 0", &c, x, n, NULL);

        /* CE: (4, 3, 4) with one ignored target, weighted or not */
        c.kind = FD_CE, c.N = 4, c.K = 3, c.S = 4;
        for (int i = 0; i < 16; i++) t[i] = (int64_t)(test_rand(&rs) % 3);
        t[5]           = -100;
        c.t            = t;
        c.ce           = iseg_ce_default_params();
        c.ce.reduction = c.r;
        fd_check("ce", &c, x, 48, NULL);
        c.ce.weight = w;
        fd_check("ce weighted", &c, x, 48, NULL);
    }
    struct fd_ctx c;
    memset(&c, 0, sizeof(c));
    c.kind = FD_DICE, c.y = y, c.n = n, c.N = 3, c.eps = 1.0;
    double ws[][2] = {{0, 1}, {1, 0}, {2, 1}};
    for (int k = 0; k < 3; k++) {
        c.wj = ws[k][0], c.wd = ws[k][1];
        fd_check("dice/jaccard", &c, x, n, NULL);
    }
    c.eps = 1e-3, c.y = ys;
    fd_check("dice/jaccard eps 1e-3", &c, x, n, NULL);
    /* mask loss: N 2, K 3, M 2: (2, 3, 2, 2) logits, only the labels' channels move */
    int64_t lab[2] = {2, 0};
    c.kind = FD_MRCNN, c.y = y, c.t = lab, c.N = 2, c.K = 3, c.M = 2;
    fd_check("maskrcnn", &c, x, 24, NULL);
}

TEST(fd_uncertainty_weighting) {
    double L[3] = {0.7, 2.5, 0.05}, dl[3], h = 1e-6;
    float  s[3] = {0.25f, -1.0f, 2.0f}, ds[3];
    iseg_uncertainty_weighting(dl, ds, L, s, 3);
    for (int i = 0; i < 3; i++) {
        double Lp[3], Lm[3];
        memcpy(Lp, L, sizeof(L));
        memcpy(Lm, L, sizeof(L));
        Lp[i] += h, Lm[i] -= h;
        double fd = (iseg_uncertainty_weighting(NULL, NULL, Lp, s, 3) -
                     iseg_uncertainty_weighting(NULL, NULL, Lm, s, 3)) / (2 * h);
        ASSERT_NEAR(dl[i], fd, 1e-8);
        float sp[3], sm[3];
        memcpy(sp, s, sizeof(s));
        memcpy(sm, s, sizeof(s));
        sp[i] += (float)FD_H, sm[i] -= (float)FD_H;
        fd = (iseg_uncertainty_weighting(NULL, NULL, L, sp, 3) -
              iseg_uncertainty_weighting(NULL, NULL, L, sm, 3)) / (2 * FD_H);
        ASSERT_NEAR(ds[i], fd, 1e-6);
    }
}

/* edge cases: empty input, all targets ignored (NaN loss, zero gradient, as torch) */
TEST(loss_edge_cases) {
    float   x[6] = {1, 2, 3, 4, 5, 6}, g[6];
    int64_t t[2] = {-100, -100};
    struct iseg_ce_params p = iseg_ce_default_params();
    double  l = iseg_softmax_ce_loss(g, NULL, x, t, 2, 3, 1, &p);
    ASSERT(isnan(l));
    for (int i = 0; i < 6; i++) ASSERT(g[i] == 0.0f);
    p.reduction = ISEG_REDUCTION_SUM;
    ASSERT_EQ_DBL(iseg_softmax_ce_loss(g, NULL, x, t, 2, 3, 1, &p), 0.0);
    ASSERT(isnan(iseg_smooth_l1_loss(NULL, NULL, NULL, NULL, 0, 1.0f, ISEG_REDUCTION_MEAN)));
    ASSERT_EQ_DBL(iseg_smooth_l1_loss(NULL, NULL, NULL, NULL, 0, 1.0f, ISEG_REDUCTION_SUM), 0.0);
    /* huge logits stay finite */
    float xb[2] = {-200.0f, 200.0f}, yb[2] = {1.0f, 0.0f};
    l = iseg_bce_logits_loss(g, NULL, xb, yb, 2, NULL);
    ASSERT_NEAR(l, 200.0, 1e-9);
    ASSERT_NEAR(g[0], -0.5, 1e-7);
    ASSERT_NEAR(g[1], 0.5, 1e-7);
    /* dice of a perfect, confident prediction is ~0; an empty prediction of an empty target 0 */
    float xp[4] = {30, 30, -30, -30}, tp[4] = {1, 1, 0, 0};
    ASSERT_NEAR(iseg_dice_loss(NULL, NULL, xp, tp, 1, 4, 1.0), 0.0, 1e-12);
    float xn[2] = {-40, -40}, tn[2] = {0, 0};
    ASSERT_NEAR(iseg_jaccard_loss(NULL, NULL, xn, tn, 1, 2, 1.0), 0.0, 1e-12);
}

TEST_LIST = {
    TEST_ENTRY(torch_bce),
    TEST_ENTRY(torch_ce),
    TEST_ENTRY(torch_smooth_l1),
    TEST_ENTRY(torch_focal),
    TEST_ENTRY(torch_dice_jaccard),
    TEST_ENTRY(torch_maskrcnn_mask_loss),
    TEST_ENTRY(torch_uncertainty_weighting),
    TEST_ENTRY(fd_gradients),
    TEST_ENTRY(fd_uncertainty_weighting),
    TEST_ENTRY(loss_edge_cases),
    TEST_END,
};
