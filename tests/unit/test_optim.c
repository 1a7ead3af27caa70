/* test_optim.c - SGD / AdamW trajectories, optimizer state names, LR schedules and gradient
 * clipping against torch 1.13 (tests/golden/train/optim.safetensors from
 * tools/make_train_goldens.py). Weights after each of 6 steps agree within 1e-6 relative (scale
 * of an element: max(|torch|, 1e-3 * largest |value|)), and on x86-64 they are in fact
 * bit-identical; LR values within 1e-12 relative; clip_grad_norm_ within 1e-6 relative. */
#include "test.h"

#include "iseg/optim.h"

#include "golden_st.h"

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
#define N0 12 /* (3, 4) */
#define N1 5  /* (5,) */
#define NP (N0 + N1)
#define STEPS 6

struct fixture {
    struct st_file    f;
    double           *w0, *grads, *lrs;
    float             w[NP], g[NP];
    struct iseg_param ps[2];
};

static void fx_open(struct fixture *x) {
    size_t n;
    st_open(&x->f, "optim.safetensors");
    x->w0 = st_get(&x->f, "w0", &n);
    ASSERT_EQ_U64(n, NP);
    x->grads = st_get(&x->f, "grads", &n);
    ASSERT_EQ_U64(n, STEPS * NP);
    x->lrs = st_get(&x->f, "lrs", &n);
    ASSERT_EQ_U64(n, STEPS);
    for (int i = 0; i < NP; i++) x->w[i] = (float)x->w0[i];
    x->ps[0] = (struct iseg_param){x->w, x->g, N0};
    x->ps[1] = (struct iseg_param){x->w + N0, x->g + N0, N1};
}

static void fx_close(struct fixture *x) {
    free(x->w0), free(x->grads), free(x->lrs);
    st_close(&x->f);
}

static void set_grad(struct fixture *x, int step) {
    for (int i = 0; i < NP; i++) x->g[i] = (float)x->grads[step * NP + i];
}

/* run STEPS steps and compare the trajectory and the final state with "<name>.*" */
static void run_case(const char *name, bool adam, const void *params, bool lr_sched) {
    struct fixture x;
    fx_open(&x);
    iseg_optim_t o;
    if (adam) ASSERT_OK(iseg_optim_adamw_init(&o, x.ps, 2, params));
    else ASSERT_OK(iseg_optim_sgd_init(&o, x.ps, 2, params));
    char    k[160];
    size_t  n;
    snprintf(k, sizeof(k), "%s.traj", name);
    double *traj = st_get(&x.f, k, &n);
    ASSERT_EQ_U64(n, STEPS * NP);
    for (int s = 0; s < STEPS; s++) {
        set_grad(&x, s);
        if (lr_sched) iseg_optim_set_lr(o, x.lrs[s]);
        iseg_optim_step(o);
        snprintf(k, sizeof(k), "%s step %d", name, s + 1);
        check_close(k, x.w, traj + s * NP, NP, RTOL);
    }
    ASSERT_EQ_INT(iseg_optim_step_count(o), STEPS);
    /* every state tensor torch has, under the same name, and no other */
    size_t nst = iseg_optim_state_count(o), found = 0;
    for (size_t i = 0; i < nst; i++) {
        struct iseg_optim_state st = iseg_optim_state_get(o, i);
        snprintf(k, sizeof(k), "%s.state.%s", name, st.name);
        double *want = st_get(&x.f, k, &n);
        ASSERT_EQ_U64(st.n, n);
        check_close(k, st.data, want, n, RTOL);
        free(want);
        found++;
    }
    /* count torch's state tensors for this case */
    size_t want_n = 0;
    snprintf(k, sizeof(k), "%s.state.", name);
    for (size_t i = 0; i < iseg_weights_count(x.f.w); i++)
        want_n += strncmp(iseg_weights_at(x.f.w, i)->name, k, strlen(k)) == 0;
    ASSERT_EQ_U64(found, want_n);
    free(traj);
    iseg_optim_free(o);
    fx_close(&x);
}

TEST(torch_sgd) {
    struct iseg_sgd_params p = iseg_sgd_default_params();
    p.lr                     = 0.1;
    run_case("sgd_plain", false, &p, false);
    p.lr = 0.05, p.momentum = 0.9, p.weight_decay = 1e-2;
    run_case("sgd_mom_wd", false, &p, false);
    p.nesterov = true, p.weight_decay = 1e-3;
    run_case("sgd_nesterov", false, &p, false);
    p = iseg_sgd_default_params();
    p.lr = 0.05, p.momentum = 0.8, p.dampening = 0.1;
    run_case("sgd_damp", false, &p, false);
    printf("  sgd: worst relative difference to torch %.3g\n", g_worst_rel);
}

TEST(torch_adamw) {
    struct iseg_adamw_params p = iseg_adamw_default_params();
    p.lr                       = 1e-2;
    run_case("adamw_default", true, &p, false);
    p.beta1 = 0.8, p.beta2 = 0.99, p.eps = 1e-6, p.weight_decay = 0.1, p.amsgrad = true;
    run_case("adamw_ams", true, &p, false);
    p = iseg_adamw_default_params();
    p.weight_decay = 0.05;
    run_case("adamw_lr", true, &p, true);
    printf("  adamw: worst relative difference to torch %.3g\n", g_worst_rel);
}

/* save the state after 3 steps, restore it into a fresh optimizer (and fresh weights), finish:
 * bit-identical to an uninterrupted run */
static void resume_case(bool adam) {
    struct fixture a, b;
    fx_open(&a);
    fx_open(&b);
    struct iseg_sgd_params   sp = iseg_sgd_default_params();
    struct iseg_adamw_params ap = iseg_adamw_default_params();
    sp.momentum = 0.9, sp.nesterov = true, sp.weight_decay = 1e-4;
    ap.amsgrad  = true;
    iseg_optim_t oa, ob;
    if (adam) ASSERT_OK(iseg_optim_adamw_init(&oa, a.ps, 2, &ap));
    else ASSERT_OK(iseg_optim_sgd_init(&oa, a.ps, 2, &sp));
    ASSERT_EQ_U64(iseg_optim_state_count(oa), 0); /* lazily created, as torch */
    for (int s = 0; s < 3; s++) {
        set_grad(&a, s);
        iseg_optim_step(oa);
    }
    ASSERT_EQ_U64(iseg_optim_state_count(oa), adam ? 8 : 2);
    if (adam) ASSERT_OK(iseg_optim_adamw_init(&ob, b.ps, 2, &ap));
    else ASSERT_OK(iseg_optim_sgd_init(&ob, b.ps, 2, &sp));
    memcpy(b.w, a.w, sizeof(a.w));
    for (size_t i = 0; i < iseg_optim_state_count(oa); i++) {
        struct iseg_optim_state st = iseg_optim_state_get(oa, i);
        ASSERT_OK(iseg_optim_state_set(ob, st.name, st.data, st.n));
    }
    ASSERT_EQ_U64(iseg_optim_state_count(ob), iseg_optim_state_count(oa));
    for (int s = 3; s < STEPS; s++) {
        set_grad(&a, s);
        set_grad(&b, s);
        iseg_optim_step(oa);
        iseg_optim_step(ob);
    }
    ASSERT(memcmp(a.w, b.w, sizeof(a.w)) == 0);
    /* bad names and sizes */
    float z[N0] = {0};
    ASSERT_STATUS(iseg_optim_state_set(ob, "param.2.exp_avg", z, N0), ISEG_STATUS_EINVAL);
    ASSERT_STATUS(iseg_optim_state_set(ob, "param.0.bogus", z, N0), ISEG_STATUS_EINVAL);
    ASSERT_STATUS(iseg_optim_state_set(ob, "param.x.exp_avg", z, N0), ISEG_STATUS_EINVAL);
    ASSERT_STATUS(iseg_optim_state_set(ob, "state.0.exp_avg", z, N0), ISEG_STATUS_EINVAL);
    ASSERT_STATUS(iseg_optim_state_set(ob, adam ? "param.0.exp_avg" : "param.0.momentum_buffer",
                                       z, N1),
                  ISEG_STATUS_ESHAPE);
    if (adam) ASSERT_STATUS(iseg_optim_state_set(ob, "param.1.step", z, 2), ISEG_STATUS_ESHAPE);
    iseg_optim_free(oa);
    iseg_optim_free(ob);
    fx_close(&a);
    fx_close(&b);
}

TEST(state_save_resume) {
    resume_case(false);
    resume_case(true);
}

TEST(optim_init_errors) {
    float             w[2] = {0}, g[2] = {0};
    struct iseg_param ps[1] = {{w, g, 2}}, bad[1] = {{w, NULL, 2}};
    iseg_optim_t      o     = (iseg_optim_t)1;
    struct iseg_sgd_params sp = iseg_sgd_default_params();
    sp.nesterov               = true; /* needs momentum */
    ASSERT_STATUS(iseg_optim_sgd_init(&o, ps, 1, &sp), ISEG_STATUS_EINVAL);
    ASSERT(o == NULL);
    sp.momentum = 0.9, sp.dampening = 0.1; /* nesterov needs dampening 0 */
    ASSERT_STATUS(iseg_optim_sgd_init(&o, ps, 1, &sp), ISEG_STATUS_EINVAL);
    sp = iseg_sgd_default_params();
    sp.lr = -1;
    ASSERT_STATUS(iseg_optim_sgd_init(&o, ps, 1, &sp), ISEG_STATUS_EINVAL);
    sp = iseg_sgd_default_params();
    ASSERT_STATUS(iseg_optim_sgd_init(&o, bad, 1, &sp), ISEG_STATUS_EINVAL);
    struct iseg_adamw_params ap = iseg_adamw_default_params();
    ap.beta2                    = 1.0;
    ASSERT_STATUS(iseg_optim_adamw_init(&o, ps, 1, &ap), ISEG_STATUS_EINVAL);
    ap = iseg_adamw_default_params();
    ASSERT_OK(iseg_optim_adamw_init(&o, ps, 1, &ap));
    ASSERT_NEAR(iseg_optim_get_lr(o), 1e-3, 0);
    g[0] = 1, g[1] = 2;
    iseg_optim_zero_grad(o);
    ASSERT(g[0] == 0 && g[1] == 0);
    iseg_optim_free(o);
    ASSERT_OK(iseg_optim_sgd_init(&o, NULL, 0, &sp)); /* no parameters is fine */
    iseg_optim_step(o);
    ASSERT_EQ_U64(iseg_optim_state_count(o), 0);
    iseg_optim_free(o);
    iseg_optim_free(NULL);
}

TEST(torch_clip_grad_norm) {
    struct st_file f;
    st_open(&f, "optim.safetensors");
    size_t  n, nt;
    double *g0 = st_get(&f, "clip.input", &n);
    ASSERT_EQ_U64(n, 12 + 7 + 8);
    static const char *tags[] = {"clip", "noclip"};
    double             mx[]   = {1.0, 1e3};
    for (int c = 0; c < 2; c++) {
        float             g[27], w[27] = {0};
        for (size_t i = 0; i < n; i++) g[i] = (float)g0[i];
        struct iseg_param ps[3] = {{w, g, 12}, {w + 12, g + 12, 7}, {w + 19, g + 19, 8}};
        double            tot   = iseg_clip_grad_norm(ps, 3, mx[c]);
        char              k[64];
        snprintf(k, sizeof(k), "%s.total", tags[c]);
        double *wt = st_get(&f, k, &nt);
        float   tf = (float)tot;
        check_close(k, &tf, wt, 1, RTOL);
        snprintf(k, sizeof(k), "%s.g", tags[c]);
        double *wg = st_get(&f, k, &nt);
        check_close(k, g, wg, n, RTOL);
        if (c == 1)
            for (size_t i = 0; i < n; i++) ASSERT(g[i] == (float)g0[i]); /* untouched */
        free(wt), free(wg);
    }
    free(g0);
    st_close(&f);
    /* the clipped norm is max_norm (up to the 1e-6 guard) */
    float             g[3] = {3, 4, 0};
    struct iseg_param p1   = {g, g, 3};
    ASSERT_NEAR(iseg_clip_grad_norm(&p1, 1, 1.0), 5.0, 0);
    ASSERT_NEAR(sqrt((double)g[0] * g[0] + (double)g[1] * g[1]), 1.0, 1e-6);
    ASSERT_EQ_DBL(iseg_clip_grad_norm(NULL, 0, 1.0), 0.0);
}

static void check_lr(const char *what, double got, double want) {
    if (!(fabs(got - want) <= 1e-12 * fabs(want)))
        TEST_FAIL("%s: got %.17g, torch %.17g", what, got, want);
}

TEST(torch_lr_schedules) {
    struct st_file f;
    st_open(&f, "optim.safetensors");
    size_t  n;
    double *cfg = st_get(&f, "lr.cfg", &n);
    int64_t iters = (int64_t)cfg[0], epochs = (int64_t)cfg[1], wi = (int64_t)cfg[2];
    int64_t ms[2] = {2, 4};
    for (int c = 0; c < 2; c++) {
        struct iseg_lr_schedule s = iseg_lr_schedule_default(0.02);
        s.warmup_iters            = wi;
        s.warmup_factor           = 1.0 / 1000;
        if (c == 0) {
            s.decay = ISEG_LR_MULTISTEP, s.milestones = ms, s.n_milestones = 2, s.gamma = 0.1;
        } else {
            s.decay = ISEG_LR_COSINE, s.t_max = epochs;
        }
        double *want = st_get(&f, c == 0 ? "lr.multistep" : "lr.cosine", &n);
        ASSERT_EQ_U64(n, (size_t)(iters * epochs));
        for (int64_t it = 0; it < iters * epochs; it++) {
            char k[64];
            snprintf(k, sizeof(k), "%s iteration %lld", c == 0 ? "multistep" : "cosine",
                     (long long)it);
            check_lr(k, iseg_lr_schedule_get(&s, it, it / iters), want[it]);
        }
        free(want);
    }
    /* per-iteration cosine with eta_min, past t_max (the cosine comes back up, as torch) */
    struct iseg_lr_schedule s = iseg_lr_schedule_default(0.1);
    s.decay = ISEG_LR_COSINE, s.t_max = 6, s.eta_min = 1e-3;
    double *want = st_get(&f, "lr.cosine_eta", &n);
    for (size_t i = 0; i < n; i++) {
        char k[64];
        snprintf(k, sizeof(k), "cosine eta_min step %zu", i);
        /* torch's recursive form drifts from the closed form by rounding only */
        if (!(fabs(iseg_lr_schedule_get(&s, (int64_t)i, (int64_t)i) - want[i]) <= 1e-12 * 0.1))
            TEST_FAIL("%s: got %.17g, torch %.17g", k,
                      iseg_lr_schedule_get(&s, (int64_t)i, (int64_t)i), want[i]);
    }
    free(want);
    free(cfg);
    st_close(&f);
    /* no warm-up, constant */
    s = iseg_lr_schedule_default(0.5);
    ASSERT_EQ_DBL(iseg_lr_schedule_get(&s, 0, 0), 0.5);
    ASSERT_EQ_DBL(iseg_lr_schedule_get(&s, 100, 100), 0.5);
}

TEST_LIST = {
    TEST_ENTRY(torch_sgd),
    TEST_ENTRY(torch_adamw),
    TEST_ENTRY(state_save_resume),
    TEST_ENTRY(optim_init_errors),
    TEST_ENTRY(torch_clip_grad_norm),
    TEST_ENTRY(torch_lr_schedules),
    TEST_END,
};
