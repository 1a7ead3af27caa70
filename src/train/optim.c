/* optim.c - SGD and AdamW as torch.optim 1.13 defines them, LR schedules, gradient clipping.
 *
 * Rounding: torch runs each tensor operation in float with its Python-float scalars cast to
 * float first, so the updates below do the same, one float rounding per torch operation, in
 * torch's order (ref: torch/optim/sgd.py _single_tensor_sgd, torch/optim/adamw.py
 * _single_tensor_adamw). torch's CPU kernels (built for AVX2/FMA) fuse `a + alpha * b` (add
 * with alpha) and `a + s * b * c` (addcmul) into one fused multiply-add; fmaf() does the same
 * rounding on every machine, which makes the updates bit-identical to torch 1.13 on the
 * goldens. Scalar bookkeeping (bias corrections, step sizes) stays in double as Python computes
 * it. Build without -ffast-math: the float temporaries matter. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "core/core_impl.h"
#include "iseg/optim.h"

enum optim_kind { OPTIM_SGD, OPTIM_ADAMW };

/* per-parameter state; arrays point into one block owned by the optimizer */
struct pstate {
    float *buf;      /* SGD momentum_buffer (n) or NULL */
    float *exp_avg;  /* AdamW (n) */
    float *exp_avg_sq;
    float *max_sq;   /* amsgrad only */
    float  step;     /* AdamW per-parameter step (float, as torch 1.13) */
    bool   present;  /* state exists (torch creates it lazily at the first step) */
};

struct iseg_optim {
    enum optim_kind          kind;
    struct iseg_sgd_params   sgd;
    struct iseg_adamw_params adamw;
    double                   lr;
    int64_t                  n_steps;
    size_t                   n_params;
    struct iseg_param       *params;
    struct pstate           *st;
    float                   *block;
    char                     name[96]; /* storage for iseg_optim_state_get's name */
};

struct iseg_sgd_params iseg_sgd_default_params(void) {
    struct iseg_sgd_params p = {0.01, 0.0, 0.0, 0.0, false};
    return p;
}

struct iseg_adamw_params iseg_adamw_default_params(void) {
    struct iseg_adamw_params p = {1e-3, 0.9, 0.999, 1e-8, 1e-2, false};
    return p;
}

/* copies params and allocates n_arrays floats per parameter element */
static enum iseg_status optim_alloc(iseg_optim_t *out, enum optim_kind kind,
                                    const struct iseg_param *params, size_t n_params,
                                    size_t n_arrays) {
    ISEG_ASSERT(out);
    *out = NULL;
    if (n_params > 0 && !params) return ISEG_STATUS_EINVAL;
    size_t total = 0;
    for (size_t i = 0; i < n_params; i++) {
        if (params[i].n > 0 && (!params[i].w || !params[i].g)) return ISEG_STATUS_EINVAL;
        if (params[i].n > SIZE_MAX / sizeof(float) - total) return ISEG_STATUS_ELIMIT;
        total += params[i].n;
    }
    size_t nfl;
    if (!iseg__mul_size_ok(total, n_arrays, &nfl)) return ISEG_STATUS_ELIMIT;
    struct iseg_optim *o = iseg__calloc(1, sizeof(*o));
    if (!o) return ISEG_STATUS_ENOMEM;
    o->kind     = kind;
    o->n_params = n_params;
    if (n_params > 0) {
        o->params = iseg__malloc_array(n_params, sizeof(*o->params));
        o->st     = iseg__calloc(n_params, sizeof(*o->st));
        if (!o->params || !o->st) goto out_free;
        memcpy(o->params, params, n_params * sizeof(*params));
    }
    if (nfl > 0) {
        o->block = iseg__calloc(nfl, sizeof(float));
        if (!o->block) goto out_free;
    }
    *out = o;
    return ISEG_STATUS_OK;
out_free:
    iseg_optim_free(o);
    return ISEG_STATUS_ENOMEM;
}

enum iseg_status iseg_optim_sgd_init(iseg_optim_t *out, const struct iseg_param *params,
                                     size_t n_params, const struct iseg_sgd_params *p) {
    ISEG_ASSERT(out && p);
    *out = NULL;
    if (!(p->lr >= 0) || !(p->momentum >= 0) || !(p->weight_decay >= 0) ||
        !isfinite(p->dampening))
        return ISEG_STATUS_EINVAL;
    if (p->nesterov && (p->momentum <= 0 || p->dampening != 0)) return ISEG_STATUS_EINVAL;
    bool             mom = p->momentum != 0;
    enum iseg_status st  = optim_alloc(out, OPTIM_SGD, params, n_params, mom ? 1 : 0);
    if (st != ISEG_STATUS_OK) return st;
    iseg_optim_t o = *out;
    o->sgd         = *p;
    o->lr          = p->lr;
    float *q       = o->block;
    for (size_t i = 0; i < n_params && mom; i++) {
        o->st[i].buf = q;
        q += params[i].n;
    }
    return ISEG_STATUS_OK;
}

enum iseg_status iseg_optim_adamw_init(iseg_optim_t *out, const struct iseg_param *params,
                                       size_t n_params, const struct iseg_adamw_params *p) {
    ISEG_ASSERT(out && p);
    *out = NULL;
    if (!(p->lr >= 0) || !(p->eps >= 0) || !(p->beta1 >= 0 && p->beta1 < 1) ||
        !(p->beta2 >= 0 && p->beta2 < 1) || !(p->weight_decay >= 0))
        return ISEG_STATUS_EINVAL;
    enum iseg_status st = optim_alloc(out, OPTIM_ADAMW, params, n_params, p->amsgrad ? 3 : 2);
    if (st != ISEG_STATUS_OK) return st;
    iseg_optim_t o = *out;
    o->adamw       = *p;
    o->lr          = p->lr;
    float *q       = o->block;
    for (size_t i = 0; i < n_params; i++) {
        size_t n            = params[i].n;
        o->st[i].exp_avg    = q;
        o->st[i].exp_avg_sq = q + n;
        q += 2 * n;
        if (p->amsgrad) {
            o->st[i].max_sq = q;
            q += n;
        }
    }
    return ISEG_STATUS_OK;
}

void iseg_optim_free(iseg_optim_t o) {
    if (!o) return;
    iseg__free(o->block);
    iseg__free(o->st);
    iseg__free(o->params);
    iseg__free(o);
}

/* ref: torch/optim/sgd.py _single_tensor_sgd (1.13) */
static void sgd_step(iseg_optim_t o) {
    const struct iseg_sgd_params *p = &o->sgd;
    float wd = (float)p->weight_decay, mom = (float)p->momentum;
    float damp1 = (float)(1.0 - p->dampening), neg_lr = (float)(-o->lr);
    bool  has_wd = p->weight_decay != 0, has_mom = p->momentum != 0;
    for (size_t i = 0; i < o->n_params; i++) {
        float         *w = o->params[i].w;
        const float   *g = o->params[i].g;
        struct pstate *s = &o->st[i];
        bool first       = !s->present;
        for (size_t j = 0; j < o->params[i].n; j++) {
            float d = g[j];
            if (has_wd) d = fmaf(wd, w[j], d);            /* grad.add(param, alpha=wd) */
            if (has_mom) {
                float b;
                if (first) b = d;                          /* buf = clone(d_p) */
                else {
                    b = s->buf[j] * mom;                   /* buf.mul_(momentum) */
                    b = fmaf(damp1, d, b);                    /* .add_(d_p, alpha=1-dampening) */
                }
                s->buf[j] = b;
                d         = p->nesterov ? fmaf(mom, b, d) : b; /* d_p.add(buf, alpha=momentum) */
            }
            w[j] = fmaf(neg_lr, d, w[j]);                     /* param.add_(d_p, alpha=-lr) */
        }
        if (has_mom) s->present = true;
    }
}

/* ref: torch/optim/adamw.py _single_tensor_adamw (1.13, capturable = False) */
static void adamw_step(iseg_optim_t o) {
    const struct iseg_adamw_params *p = &o->adamw;
    float decay = (float)(1.0 - o->lr * p->weight_decay);
    float b1 = (float)p->beta1, b1c = (float)(1.0 - p->beta1);
    float b2 = (float)p->beta2, b2c = (float)(1.0 - p->beta2);
    float eps = (float)p->eps;
    for (size_t i = 0; i < o->n_params; i++) {
        float         *w = o->params[i].w;
        const float   *g = o->params[i].g;
        struct pstate *s = &o->st[i];
        s->present       = true;
        s->step += 1.0f;                                  /* step_t += 1 */
        double step    = s->step;
        double bc1     = 1.0 - pow(p->beta1, step);
        double bc2     = 1.0 - pow(p->beta2, step);
        float  nstep   = (float)(-(o->lr / bc1));         /* value = -step_size */
        float  bc2sqrt = (float)sqrt(bc2);
        float *m = s->exp_avg, *v = s->exp_avg_sq, *mx = s->max_sq;
        for (size_t j = 0; j < o->params[i].n; j++) {
            float gj = g[j];
            w[j]     = w[j] * decay;                      /* param.mul_(1 - lr * wd) */
            m[j]     = m[j] * b1;                         /* exp_avg.mul_(beta1) */
            m[j]     = fmaf(b1c, gj, m[j]);                  /* .add_(grad, alpha=1-beta1) */
            v[j]     = v[j] * b2;                         /* exp_avg_sq.mul_(beta2) */
            v[j]     = fmaf(b2c * gj, gj, v[j]);             /* .addcmul_(grad, grad, 1-beta2) */
            float vv = v[j];
            if (mx) {
                mx[j] = fmaxf(mx[j], v[j]);               /* torch.maximum(max, v, out=max) */
                vv    = mx[j];
            }
            float denom = sqrtf(vv) / bc2sqrt;            /* (v.sqrt() / bc2_sqrt) */
            denom       = denom + eps;                    /* .add_(eps) */
            w[j]        = w[j] + nstep * m[j] / denom;    /* param.addcdiv_(m, denom, -step) */
        }
    }
}

void iseg_optim_step(iseg_optim_t o) {
    ISEG_ASSERT(o);
    if (o->kind == OPTIM_SGD) sgd_step(o);
    else adamw_step(o);
    o->n_steps++;
}

void iseg_optim_zero_grad(iseg_optim_t o) {
    ISEG_ASSERT(o);
    for (size_t i = 0; i < o->n_params; i++)
        if (o->params[i].n) memset(o->params[i].g, 0, o->params[i].n * sizeof(float));
}

void iseg_optim_set_lr(iseg_optim_t o, double lr) {
    ISEG_ASSERT(o);
    o->lr = lr;
}

double iseg_optim_get_lr(const iseg_optim_t o) {
    ISEG_ASSERT(o);
    return o->lr;
}

int64_t iseg_optim_step_count(const iseg_optim_t o) {
    ISEG_ASSERT(o);
    return o->n_steps;
}

/* ---- state enumeration ---- */

/* names per parameter, in torch's key order; the count present for this optimizer */
static const char *const SGD_KEYS[]   = {"momentum_buffer"};
static const char *const ADAMW_KEYS[] = {"step", "exp_avg", "exp_avg_sq", "max_exp_avg_sq"};

static size_t keys_per_param(const struct iseg_optim *o) {
    if (o->kind == OPTIM_SGD) return o->sgd.momentum != 0 ? 1 : 0;
    return o->adamw.amsgrad ? 4 : 3;
}

static const char *key_name(const struct iseg_optim *o, size_t k) {
    return o->kind == OPTIM_SGD ? SGD_KEYS[k] : ADAMW_KEYS[k];
}

/* pointer and size of key k of parameter i */
static float *key_data(struct iseg_optim *o, size_t i, size_t k, size_t *n) {
    struct pstate *s = &o->st[i];
    *n               = o->params[i].n;
    if (o->kind == OPTIM_SGD) return s->buf;
    switch (k) {
    case 0: *n = 1; return &s->step;
    case 1: return s->exp_avg;
    case 2: return s->exp_avg_sq;
    default: return s->max_sq;
    }
}

size_t iseg_optim_state_count(const iseg_optim_t o) {
    ISEG_ASSERT(o);
    size_t c = 0, kp = keys_per_param(o);
    for (size_t i = 0; i < o->n_params; i++)
        if (o->st[i].present) c += kp;
    return c;
}

struct iseg_optim_state iseg_optim_state_get(const iseg_optim_t o, size_t idx) {
    ISEG_ASSERT(o);
    size_t kp = keys_per_param(o);
    for (size_t i = 0; i < o->n_params; i++) {
        if (!o->st[i].present) continue;
        if (idx < kp) {
            struct iseg_optim_state r;
            snprintf(o->name, sizeof(o->name), "param.%zu.%s", i, key_name(o, idx));
            r.name = o->name;
            r.data = key_data(o, i, idx, &r.n);
            return r;
        }
        idx -= kp;
    }
    iseg__assert_fail(__FILE__, __LINE__, "state index out of range");
    struct iseg_optim_state none = {NULL, NULL, 0};
    return none;
}

enum iseg_status iseg_optim_state_set(iseg_optim_t o, const char *name, const float *data,
                                      size_t n) {
    ISEG_ASSERT(o && name);
    static const char prefix[] = "param.";
    if (strncmp(name, prefix, sizeof(prefix) - 1) != 0) return ISEG_STATUS_EINVAL;
    const char *q = name + sizeof(prefix) - 1;
    size_t      i = 0;
    if (*q < '0' || *q > '9') return ISEG_STATUS_EINVAL;
    for (; *q >= '0' && *q <= '9'; q++) {
        if (i > (SIZE_MAX - 9) / 10) return ISEG_STATUS_EINVAL;
        i = i * 10 + (size_t)(*q - '0');
    }
    if (*q++ != '.' || i >= o->n_params) return ISEG_STATUS_EINVAL;
    size_t kp = keys_per_param(o);
    for (size_t k = 0; k < kp; k++) {
        if (strcmp(q, key_name(o, k)) != 0) continue;
        size_t want;
        float *dst = key_data(o, i, k, &want);
        if (n != want) return ISEG_STATUS_ESHAPE;
        if (n) {
            ISEG_ASSERT(data);
            memcpy(dst, data, n * sizeof(float));
        }
        o->st[i].present = true;
        return ISEG_STATUS_OK;
    }
    return ISEG_STATUS_EINVAL;
}

/* ---- gradient clipping ---- */

/* ref: torch/nn/utils/clip_grad.py clip_grad_norm_ (1.13) */
double iseg_clip_grad_norm(const struct iseg_param *params, size_t n_params, double max_norm) {
    ISEG_ASSERT(n_params == 0 || params);
    double ss = 0.0;
    for (size_t i = 0; i < n_params; i++)
        for (size_t j = 0; j < params[i].n; j++) {
            double g = params[i].g[j];
            ss += g * g;
        }
    double total = sqrt(ss);
    /* torch: total is a float tensor; clip_coef = max_norm / (total + 1e-6) runs as
     * (total + 1e-6).reciprocal() * max_norm (Tensor.__rdiv__), each in float */
    float tf   = (float)total;
    float coef = (1.0f / (tf + 1e-6f)) * (float)max_norm;
    /* applied when < 1, and (as torch's clamp) when NaN */
    if (!(coef >= 1.0f))
        for (size_t i = 0; i < n_params; i++)
            for (size_t j = 0; j < params[i].n; j++) params[i].g[j] *= coef;
    return total;
}

/* ---- LR schedules ---- */

struct iseg_lr_schedule iseg_lr_schedule_default(double base_lr) {
    struct iseg_lr_schedule s;
    memset(&s, 0, sizeof(s));
    s.base_lr       = base_lr;
    s.warmup_factor = 1e-3;
    s.decay         = ISEG_LR_CONSTANT;
    s.gamma         = 0.1;
    s.t_max         = 1;
    return s;
}

double iseg_lr_schedule_get(const struct iseg_lr_schedule *s, int64_t warmup_step,
                            int64_t decay_step) {
    ISEG_ASSERT(s && warmup_step >= 0 && decay_step >= 0);
    ISEG_ASSERT(s->decay >= 0 && s->decay < ISEG_LR_DECAY_COUNT);
    double lr = s->base_lr;
    if (s->decay == ISEG_LR_MULTISTEP) {
        ISEG_ASSERT(s->n_milestones == 0 || s->milestones);
        /* ref: MultiStepLR._get_closed_form_lr: gamma ** bisect_right(milestones, epoch) */
        int k = 0;
        for (size_t i = 0; i < s->n_milestones; i++) k += s->milestones[i] <= decay_step;
        lr = s->base_lr * pow(s->gamma, k);
    } else if (s->decay == ISEG_LR_COSINE) {
        ISEG_ASSERT(s->t_max > 0);
        /* ref: CosineAnnealingLR._get_closed_form_lr */
        const double pi = 3.14159265358979323846;
        lr = s->eta_min + (s->base_lr - s->eta_min) *
                              (1.0 + cos(pi * (double)decay_step / (double)s->t_max)) / 2.0;
    }
    if (s->warmup_iters > 0) {
        /* ref: LinearLR._get_closed_form_lr with end_factor 1 */
        int64_t i = warmup_step < s->warmup_iters ? warmup_step : s->warmup_iters;
        lr *= s->warmup_factor +
              (1.0 - s->warmup_factor) * (double)i / (double)s->warmup_iters;
    }
    return lr;
}
