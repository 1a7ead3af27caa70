/* bench_conv.c - convolution throughput on the ResNet-50/FPN shapes of Mask R-CNN at 800x1088.
 *
 * Validates the optimised path against iseg_conv2d_forward_ref on a small shape with every
 * kernel the CPU has (exit 1 on NMSE > 1e-7), then times each shape with 1 and 2 threads
 * (median of N runs) and prints GFLOP/s (2 flop per multiply-add) against wall time and, for
 * shared machines, per CPU-second of all threads (the per-core efficiency), and the latter as
 * a percentage of the measured AVX2 FMA peak of one core (a register-only loop of 12
 * independent FMA chains, written in asm so that the compiler cannot merge them).
 *
 * Each shape also runs in int8 and bf16 (enum iseg_precision; rate in f32-equivalent FLOP,
 * nmse against the f32 reference: their rounding error).
 *
 *   bench_conv [reps] [max_threads] [shape-substring]
 * BENCH_WINO_PANELS=n: Winograd tiles per work item, in SGEMM panels (tuning). */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "iseg/nn.h"

#include "bench_util.h"
#include "nn/nn_impl.h"

static float *rnd(size_t n, unsigned *s) {
    float *p = malloc(n * sizeof(float));
    if (!p) exit(2);
    for (size_t i = 0; i < n; i++) {
        *s = *s * 1664525u + 1013904223u;
        p[i] = (float)((*s >> 8) * (1.0 / 16777216.0)) * 2.0f - 1.0f;
    }
    return p;
}

/* FLOP per CPU-second of one core at the AVX2 FMA peak (0 where unmeasurable) */
static double fma_peak(void) {
#if defined(__x86_64__) && defined(__GNUC__)
    __builtin_cpu_init();
    if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma")) return 0.0;
    double best = 0.0;
    for (int rep = 0; rep < 3; rep++) {
        long   n  = 20000000;
        double c0 = bench_cpu_now();
        __asm__ volatile("vxorps %%ymm0, %%ymm0, %%ymm0\n\tvxorps %%ymm1, %%ymm1, %%ymm1\n"
                         "1:\n\t"
                         "vfmadd231ps %%ymm0, %%ymm1, %%ymm4\n\tvfmadd231ps %%ymm0, %%ymm1, %%ymm5\n\t"
                         "vfmadd231ps %%ymm0, %%ymm1, %%ymm6\n\tvfmadd231ps %%ymm0, %%ymm1, %%ymm7\n\t"
                         "vfmadd231ps %%ymm0, %%ymm1, %%ymm8\n\tvfmadd231ps %%ymm0, %%ymm1, %%ymm9\n\t"
                         "vfmadd231ps %%ymm0, %%ymm1, %%ymm10\n\tvfmadd231ps %%ymm0, %%ymm1, %%ymm11\n\t"
                         "vfmadd231ps %%ymm0, %%ymm1, %%ymm12\n\tvfmadd231ps %%ymm0, %%ymm1, %%ymm13\n\t"
                         "vfmadd231ps %%ymm0, %%ymm1, %%ymm14\n\tvfmadd231ps %%ymm0, %%ymm1, %%ymm15\n\t"
                         "dec %0\n\tjnz 1b\n\tvzeroupper"
                         : "+r"(n)
                         :
                         : "xmm0", "xmm1", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10",
                           "xmm11", "xmm12", "xmm13", "xmm14", "xmm15", "cc");
        double f = 12.0 * 16.0 * 20000000.0 / (bench_cpu_now() - c0);
        if (f > best) best = f;
    }
    return best;
#else
    return 0.0;
#endif
}

static int validate(void) {
    unsigned                seed = 1;
    struct iseg_conv2d_desc d    = iseg_conv2d_default_desc(37, 70, 3);
    d.stride_h = 2, d.dil_w = 2, d.pad_w = 2;
    int B = 2, h = 23, w = 31, oh, ow;
    iseg_conv2d_out_hw(&d, h, w, &oh, &ow);
    size_t ny = (size_t)B * d.cout * oh * ow;
    float *wt = rnd((size_t)d.cout * d.cin * 9, &seed), *b = rnd((size_t)d.cout, &seed);
    float *x = rnd((size_t)B * d.cin * h * w, &seed), *r = rnd(ny, &seed);
    float *y = malloc(ny * 4), *yr = malloc(ny * 4);
    iseg_conv2d_forward_ref(yr, x, wt, b, &d, B, h, w, r, ISEG_ACT_RELU);
    int bad = 0;
    for (int isa = ISEG_GEMM_ISA_C; isa <= ISEG_GEMM_ISA_AVX512; isa++) {
        const struct iseg__gemm_kernel *k = iseg__gemm_force((enum iseg__gemm_isa)isa);
        if ((int)k->isa != isa) continue;
        iseg_engine_t e;
        iseg_conv2d_t c;
        if (iseg_engine_init(&e, 2) || iseg_conv2d_init(&c, &d, wt, b)) exit(2);
        iseg_conv2d_forward(e, c, y, x, B, h, w, r, ISEG_ACT_RELU);
        double num = 0, den = 0;
        for (size_t i = 0; i < ny; i++) {
            num += ((double)y[i] - yr[i]) * ((double)y[i] - yr[i]);
            den += (double)yr[i] * yr[i];
        }
        printf("validate %-7s NMSE %.3g %s\n", k->name, num / den, num / den <= 1e-7 ? "ok" : "FAIL");
        bad |= !(num / den <= 1e-7);
        iseg_conv2d_free(c);
        iseg_engine_free(e);
    }
    iseg__gemm_force(ISEG_GEMM_ISA_AUTO);
    free(wt), free(b), free(x), free(r), free(y), free(yr);
    return bad;
}

struct shape {
    const char *name;
    int         cin, cout, k, stride, h, w, B;
};

/* ---- the RoI heads' other operators: timed the same way through a callback ---------------- */

struct op {
    const char *name;
    double      flop; /* 0: report ms only */
    void (*fn)(iseg_engine_t e, void *ctx);
    void *ctx;
};

static void time_op(const struct op *o, int reps, int max_t, double peak) {
    for (int nt = 1; nt <= max_t; nt++) {
        iseg_engine_t e;
        if (iseg_engine_init(&e, nt)) exit(2);
        o->fn(e, o->ctx); /* warm-up */
        double t[64], c0 = bench_cpu_now();
        int    n = reps < 64 ? reps : 64;
        for (int i = 0; i < n; i++) {
            double t0 = iseg__now();
            o->fn(e, o->ctx);
            t[i] = iseg__now() - t0;
        }
        double cpu = (bench_cpu_now() - c0) / n;
        qsort(t, (size_t)n, sizeof(double), bench_cmp_double);
        double med = t[n / 2];
        if (o->flop > 0)
            printf("%-34s %8d %10.2f %10.1f %14.1f %7.0f%%\n", o->name, nt, med * 1e3,
                   o->flop / med * 1e-9, o->flop / cpu * 1e-9,
                   peak > 0 ? 100.0 * o->flop / cpu / peak : 0.0);
        else
            printf("%-34s %8d %10.2f %10s %14s %8s   (cpu %.2f ms)\n", o->name, nt, med * 1e3, "-",
                   "-", "-", cpu * 1e3);
        fflush(stdout);
        if (iseg_engine_take_error(e)) exit(2);
        iseg_engine_free(e);
    }
}

struct deconv_ctx {
    iseg_deconv2d_t c;
    float          *y, *x;
    int             B, h, w;
};
static void run_deconv(iseg_engine_t e, void *v) {
    struct deconv_ctx *s = v;
    iseg_deconv2d_forward(e, s->c, s->y, s->x, s->B, s->h, s->w, ISEG_ACT_RELU);
}

struct linear_ctx {
    iseg_linear_t l;
    float        *y, *x;
    int           N;
};
static void run_linear(iseg_engine_t e, void *v) {
    struct linear_ctx *s = v;
    iseg_linear_forward(e, s->l, s->y, s->x, s->N, ISEG_ACT_RELU);
}

struct roi_ctx {
    float *out, *feat, *boxes;
    int    N, C, H, W, S;
    float  scale;
};
static void run_roi(iseg_engine_t e, void *v) {
    struct roi_ctx *s = v;
    iseg_roi_align(e, s->out, s->feat, s->boxes, s->N, s->C, s->H, s->W, s->S, s->S, s->scale, 2,
                   false);
}

static void bench_others(int reps, int max_t, const char *only, double peak) {
    unsigned seed = 9;
    if (!only || strstr("deconv 256->256 2x2/2 @14x14 x100", only)) {
        struct iseg_deconv2d_desc d = {256, 256, 2, 2, 2, 2, 0, 0, 0, 0, 1, 1, 1};
        struct deconv_ctx         s = {NULL, NULL, NULL, 100, 14, 14};
        float *wt = rnd((size_t)256 * 256 * 4, &seed), *b = rnd(256, &seed);
        s.x = rnd((size_t)s.B * 256 * 196, &seed);
        s.y = malloc((size_t)s.B * 256 * 784 * sizeof(float));
        if (!s.y || iseg_deconv2d_init(&s.c, &d, wt, b)) exit(2);
        struct op o = {"deconv 256->256 2x2/2 @14x14 x100", 2.0 * 100 * 196 * 256 * 1024.0,
                       run_deconv, &s};
        time_op(&o, reps, max_t, peak);
        iseg_deconv2d_free(s.c);
        free(wt), free(b), free(s.x), free(s.y);
    }
    static const struct { const char *name; int N, in, out; } lin[] = {
        {"fc6 linear 12544->1024 x1000", 1000, 12544, 1024},
        {"fc7 linear 1024->1024 x1000", 1000, 1024, 1024},
    };
    for (int i = 0; i < 2; i++) {
        if (only && !strstr(lin[i].name, only)) continue;
        struct linear_ctx s = {NULL, NULL, NULL, lin[i].N};
        float *wt = rnd((size_t)lin[i].in * lin[i].out, &seed), *b = rnd((size_t)lin[i].out, &seed);
        s.x = rnd((size_t)lin[i].N * lin[i].in, &seed);
        s.y = malloc((size_t)lin[i].N * lin[i].out * sizeof(float));
        if (!s.y) exit(2);
        for (int p = 0; p < ISEG_PRECISION_COUNT; p++) {
            if (iseg_linear_init_precision(&s.l, lin[i].in, lin[i].out, wt, b,
                                           (enum iseg_precision)p))
                exit(2);
            char name[64];
            snprintf(name, sizeof(name), "%s %s", lin[i].name,
                     iseg_precision_name((enum iseg_precision)p));
            struct op o = {name, 2.0 * lin[i].N * (double)lin[i].in * lin[i].out, run_linear, &s};
            time_op(&o, reps, max_t, peak);
            iseg_linear_free(s.l);
        }
        free(wt), free(b), free(s.x), free(s.y);
    }
    /* RoIAlign on a P2-sized map (256 x 200 x 272, scale 1/4): boxes of 56..112 pixels, the
     * sizes the level mapper sends to P2's neighbours (14..28 cells on their level) */
    static const struct { const char *name; int N, S; } ra[] = {
        {"roi_align 1000 RoIs 7x7 @200x272", 1000, 7},
        {"roi_align 100 RoIs 14x14 @200x272", 100, 14},
    };
    for (int i = 0; i < 2; i++) {
        if (only && !strstr(ra[i].name, only)) continue;
        struct roi_ctx s = {NULL, NULL, NULL, ra[i].N, 256, 200, 272, ra[i].S, 0.25f};
        s.feat  = rnd((size_t)s.C * s.H * s.W, &seed);
        s.boxes = malloc((size_t)s.N * 4 * sizeof(float));
        s.out   = malloc((size_t)s.N * s.C * s.S * s.S * sizeof(float));
        if (!s.boxes || !s.out) exit(2);
        for (int n = 0; n < s.N; n++) {
            float *bx = s.boxes + 4 * n, r[4];
            for (int k = 0; k < 4; k++) {
                seed = seed * 1664525u + 1013904223u;
                r[k] = (float)((seed >> 8) * (1.0 / 16777216.0));
            }
            float bw = 56 + 56 * r[2], bh = 56 + 56 * r[3];
            bx[0] = r[0] * (1088 - bw), bx[1] = r[1] * (800 - bh);
            bx[2] = bx[0] + bw, bx[3] = bx[1] + bh;
        }
        struct op o = {ra[i].name, 0, run_roi, &s};
        time_op(&o, reps, max_t, peak);
        free(s.feat), free(s.boxes), free(s.out);
    }
}

int main(int argc, char **argv) {
    int reps  = argc > 1 ? atoi(argv[1]) : 5;
    int max_t = argc > 2 ? atoi(argv[2]) : 2;
    const char *only = argc > 3 ? argv[3] : NULL;
    if (validate()) return 1;
    double peak = fma_peak();
    printf("AVX2 FMA peak of one core: %.1f GFLOP/cpu-s\n", peak * 1e-9);
    static const struct shape shapes[] = {
        {"stem 3->64 7x7/2 @800x1088", 3, 64, 7, 2, 800, 1088, 1},
        {"64->64 3x3 @200x272", 64, 64, 3, 1, 200, 272, 1},
        {"256->256 3x3 @200x272 (FPN P2)", 256, 256, 3, 1, 200, 272, 1},
        {"256->64 1x1 @200x272", 256, 64, 1, 1, 200, 272, 1},
        {"64->256 1x1 @200x272", 64, 256, 1, 1, 200, 272, 1},
        {"128->128 3x3/2 @200x272", 128, 128, 3, 2, 200, 272, 1},
        {"512->128 1x1 @100x136", 512, 128, 1, 1, 100, 136, 1},
        {"128->128 3x3 @100x136", 128, 128, 3, 1, 100, 136, 1},
        {"256->256 3x3 @100x136 (FPN P3)", 256, 256, 3, 1, 100, 136, 1},
        {"1024->256 1x1 @50x68", 1024, 256, 1, 1, 50, 68, 1},
        {"256->256 3x3 @25x34 (FPN P5)", 256, 256, 3, 1, 25, 34, 1},
        {"512->512 3x3 @25x34", 512, 512, 3, 1, 25, 34, 1},
        {"box head 256->256 3x3 @7x7 x1000", 256, 256, 3, 1, 7, 7, 1000},
        {"mask head 256->256 3x3 @14x14 x100", 256, 256, 3, 1, 14, 14, 100},
    };
    /* 3x3 stride-1 shapes run three ways: direct, Winograd F(2,3) and F(4,3) (forced); rate is
     * direct-equivalent FLOP (the direct count over the time), "x" the CPU-time speed-up over
     * direct at the same thread count, nmse against the reference on a crop of the shape (real
     * channel counts, at most 2 x 24 x 30 pixels) */
    static const struct {
        enum iseg__wino_mode mode;
        enum iseg_precision  prec;
        const char          *name;
    } algos[] = {{ISEG_WINO_OFF, ISEG_PRECISION_FP32, "direct"},
                 {ISEG_WINO_OFF, ISEG_PRECISION_INT8, "int8"},
                 {ISEG_WINO_OFF, ISEG_PRECISION_BF16, "bf16"},
                 {ISEG_WINO_F2, ISEG_PRECISION_FP32, "F(2,3)"},
                 {ISEG_WINO_F4, ISEG_PRECISION_FP32, "F(4,3)"}};
    const char *pe = getenv("BENCH_WINO_PANELS");
    if (pe) iseg__wino_set_panels(atoi(pe));
    printf("kernel %s, KC %d, reps %d (median)\n", iseg__gemm_kernel()->name, ISEG_GEMM_KC, reps);
    printf("%-34s %-7s %7s %9s %9s %12s %7s %6s %9s\n", "shape", "algo", "threads", "ms",
           "GFLOP/s", "GFLOP/cpu-s", "%peak", "x", "nmse");
    unsigned seed = 5;
    for (size_t s = 0; s < sizeof(shapes) / sizeof(shapes[0]); s++) {
        const struct shape     *sh = &shapes[s];
        if (only && !strstr(sh->name, only)) continue;
        struct iseg_conv2d_desc d  = iseg_conv2d_default_desc(sh->cin, sh->cout, sh->k);
        d.stride_h = d.stride_w = sh->stride;
        int oh, ow;
        iseg_conv2d_out_hw(&d, sh->h, sh->w, &oh, &ow);
        float *wt = rnd((size_t)sh->cout * sh->cin * sh->k * sh->k, &seed);
        float *b  = rnd((size_t)sh->cout, &seed);
        float *x  = rnd((size_t)sh->B * sh->cin * sh->h * sh->w, &seed);
        float *y  = malloc((size_t)sh->B * sh->cout * oh * ow * sizeof(float));
        if (!y) return 2;
        double flop = 2.0 * sh->B * sh->cout * (double)oh * ow * sh->cin * sh->k * sh->k;
        bool   wino = sh->k == 3 && sh->stride == 1;
        double cpu_direct[8] = {0};
        /* the crop for the accuracy check, and its reference */
        int    cb = sh->B < 2 ? sh->B : 2, chh = sh->h < 24 ? sh->h : 24, cw = sh->w < 30 ? sh->w : 30;
        int    coh, cow;
        iseg_conv2d_out_hw(&d, chh, cw, &coh, &cow);
        size_t cny = (size_t)cb * sh->cout * coh * cow;
        float *cx = malloc((size_t)cb * sh->cin * chh * cw * sizeof(float));
        float *cy = malloc(cny * sizeof(float)), *cr = malloc(cny * sizeof(float));
        if (!cx || !cy || !cr) return 2;
        for (size_t i = 0; i < (size_t)cb * sh->cin * chh * cw; i++) {
            size_t im = i / ((size_t)sh->cin * chh * cw), r = i % ((size_t)sh->cin * chh * cw);
            size_t ci = r / ((size_t)chh * cw), p = r % ((size_t)chh * cw);
            cx[i] = x[((im * sh->cin + ci) * sh->h + p / cw) * sh->w + p % cw];
        }
        iseg_conv2d_forward_ref(cr, cx, wt, b, &d, cb, chh, cw, NULL, ISEG_ACT_NONE);
        for (int ai = 0; ai < (wino ? 5 : 3); ai++) {
            iseg__conv2d_set_wino(algos[ai].mode);
            iseg_conv2d_t c;
            if (iseg_conv2d_init_precision(&c, &d, wt, b, algos[ai].prec)) return 2;
            double err = 0.0;
            {
                iseg_engine_t e;
                if (iseg_engine_init(&e, 1)) return 2;
                iseg_conv2d_forward(e, c, cy, cx, cb, chh, cw, NULL, ISEG_ACT_NONE);
                double num = 0, den = 0;
                for (size_t i = 0; i < cny; i++) {
                    num += ((double)cy[i] - cr[i]) * ((double)cy[i] - cr[i]);
                    den += (double)cr[i] * cr[i];
                }
                err = num / den;
                iseg_engine_free(e);
            }
            for (int nt = 1; nt <= max_t && nt <= 8; nt++) {
                iseg_engine_t e;
                if (iseg_engine_init(&e, nt)) return 2;
                iseg_conv2d_forward(e, c, y, x, sh->B, sh->h, sh->w, NULL, ISEG_ACT_RELU); /* warm-up */
                double t[64], c0 = bench_cpu_now();
                int    n = reps < 64 ? reps : 64;
                for (int i = 0; i < n; i++) {
                    double t0 = iseg__now();
                    iseg_conv2d_forward(e, c, y, x, sh->B, sh->h, sh->w, NULL, ISEG_ACT_RELU);
                    t[i] = iseg__now() - t0;
                }
                double cpu = (bench_cpu_now() - c0) / n;
                if (ai == 0) cpu_direct[nt - 1] = cpu;
                qsort(t, (size_t)n, sizeof(double), bench_cmp_double);
                double med = t[n / 2];
                printf("%-34s %-7s %7d %9.2f %9.1f %12.1f %6.0f%% %6.2f %9.2g\n", sh->name,
                       algos[ai].name, nt, med * 1e3, flop / med * 1e-9, flop / cpu * 1e-9,
                       peak > 0 ? 100.0 * flop / cpu / peak : 0.0, cpu_direct[nt - 1] / cpu, err);
                fflush(stdout);
                if (iseg_engine_take_error(e)) return 2;
                iseg_engine_free(e);
            }
            iseg_conv2d_free(c);
        }
        iseg__conv2d_set_wino(ISEG_WINO_AUTO);
        free(wt), free(b), free(x), free(y), free(cx), free(cy), free(cr);
    }
    bench_others(reps, max_t, only, peak);
    return 0;
}
