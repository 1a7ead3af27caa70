/* qgemm.c - the word GEMM of int8 and bf16 layers: weight conversion and packing, activation
 * quantization and rounding, the portable kernels, dispatch, and the threaded driver that
 * convolutions and linear layers share in reduced precision (see nn_impl.h for the arithmetic).
 *
 * Loop nest: work items (problem, M chunk, N chunk) run on the pool; inside an item, for each
 * K block of ISEG_QGEMM_KCW words: convert the B block (KCW x nc) once into word panels, then
 * each MR-row weight micro-panel (kept in L1) against the chunk's NR-column panels in one
 * kernel call, the sums kept per tile in the item's accumulator until the last block, whose
 * epilogue dequantizes. Every element is summed in the same order whatever the partition. */
#include <math.h>
#include <string.h>

#include "nn/nn_impl.h"

#define MR  ISEG_QGEMM_MR
#define NR  ISEG_QGEMM_NR
#define KCW ISEG_QGEMM_KCW
#define KCF 256 /* float rows packed at a time before conversion (a multiple of 4) */

#if defined(__x86_64__) && defined(__GNUC__)
#define HAVE_X86 1
#else
#define HAVE_X86 0
#endif

/* AVX2 helpers (qgemm_avx2.c) */
void iseg__qquads_avx2(uint32_t *dst, size_t dps, const float *src, size_t ld, size_t sps,
                       int np, int rows, int nq, const struct iseg__qact *p);
void iseg__qepi_avx2(const void *acc, bool q8, float *c, size_t ldc, const float *c0, size_t ldc0,
                     const float *s, const int32_t *comp, const float *bias, bool relu);
void iseg__qact_row_avx2(uint8_t *dst, const float *x, size_t n, const struct iseg__qact *p);
void iseg__minmax_avx2(const float *x, size_t n, float *lo, float *hi);

static bool use_avx2(void) { return iseg__gemm_kernel()->isa >= ISEG_GEMM_ISA_AVX2; }


/* The word of x[k stride] (low half) and x[(k + 1) stride] in bf16, each 0 past n. */
static inline uint32_t bf16_pair(const float *x, size_t stride, size_t k, size_t n) {
    uint32_t lo = k < n ? iseg__bf16_bits(x[k * stride]) : 0;
    uint32_t hi = k + 1 < n ? iseg__bf16_bits(x[(k + 1) * stride]) : 0;
    return lo | hi << 16;
}

/* ---- quantization ------------------------------------------------------------------------- */

float iseg__qweight_row(int8_t *q, const float *w, int K) {
    float mx = 0.0f;
    for (int k = 0; k < K; k++) {
        float a = fabsf(w[k]);
        if (a > mx) mx = a;
    }
    if (!(mx > 0.0f) || !isfinite(mx)) {
        memset(q, 0, (size_t)K);
        return 1.0f;
    }
    float inv = (float)ISEG_QW_MAX / mx;
    for (int k = 0; k < K; k++) {
        float v = rintf(w[k] * inv);
        v       = v > ISEG_QW_MAX ? ISEG_QW_MAX : v < -ISEG_QW_MAX ? -ISEG_QW_MAX : v;
        q[k]    = (int8_t)v;
    }
    return mx / (float)ISEG_QW_MAX;
}

void iseg__qweights_free(struct iseg__qweights *q) {
    iseg__free(q->pa);
    iseg__free(q->scale);
    iseg__free(q->wsum);
    memset(q, 0, sizeof(*q));
}

enum iseg_status iseg__qweights_init(struct iseg__qweights *q, enum iseg__qkind kind,
                                     const float *w, int M, int K, int n_g) {
    ISEG_ASSERT(q && w && M >= 1 && K >= 1 && n_g >= 1);
    memset(q, 0, sizeof(*q));
    int kpw = iseg__qkind_kpw(kind);
    q->kind = kind, q->M = M, q->K = K, q->Kw = iseg__ceil_div(K, kpw), q->n_g = n_g;
    q->pa_gs    = (size_t)iseg__ceil_div(M, MR) * MR * (size_t)q->Kw;
    size_t rows = (size_t)n_g * M;
    q->pa       = iseg__calloc(q->pa_gs * (size_t)n_g, sizeof(uint32_t));
    int8_t *row = NULL;
    if (kind == ISEG_QKIND_INT8) {
        q->scale = iseg__malloc_array(rows, sizeof(float));
        q->wsum  = iseg__malloc_array(rows, sizeof(int32_t));
        row      = iseg__malloc_array((size_t)q->Kw * 4, 1);
    }
    if (!q->pa || (kind == ISEG_QKIND_INT8 && (!q->scale || !q->wsum || !row))) {
        iseg__free(row);
        iseg__qweights_free(q);
        return ISEG_STATUS_ENOMEM;
    }
    for (int g = 0; g < n_g; g++)
        for (int m = 0; m < M; m++) {
            size_t       r  = (size_t)g * M + m;
            const float *wr = w + r * K;
            /* panel m / MR, lane m % MR: word t holds k = kpw t.., the lowest k first */
            uint32_t *dst = q->pa + g * q->pa_gs + (size_t)(m / MR) * q->Kw * MR + m % MR;
            if (kind == ISEG_QKIND_BF16) {
                for (int t = 0; t < q->Kw; t++)
                    dst[(size_t)t * MR] = bf16_pair(wr, 1, 2 * (size_t)t, (size_t)K);
                continue;
            }
            memset(row, 0, (size_t)q->Kw * 4);
            q->scale[r] = iseg__qweight_row(row, wr, K);
            int32_t s = 0;
            for (int k = 0; k < K; k++) s += row[k];
            q->wsum[r] = s;
            for (int t = 0; t < q->Kw; t++) {
                uint32_t v = 0;
                for (int i = 0; i < 4; i++) v |= (uint32_t)(uint8_t)row[4 * t + i] << (8 * i);
                dst[(size_t)t * MR] = v;
            }
        }
    iseg__free(row);
    return ISEG_STATUS_OK;
}

struct iseg__qact iseg__qact_from_range(float lo, float hi) {
    struct iseg__qact p;
    if (!(lo == lo)) lo = 0.0f;
    if (!(hi == hi)) hi = 0.0f;
    if (lo >= 0.0f) {
        p.zp    = 0;
        p.scale = hi > 0.0f && isfinite(hi) ? hi / 255.0f : 1.0f;
        p.inv   = hi > 0.0f && isfinite(hi) ? 255.0f / hi : 1.0f;
    } else {
        float m = -lo > hi ? -lo : hi;
        p.zp    = 128;
        p.scale = isfinite(m) ? m / 127.0f : 1.0f;
        p.inv   = isfinite(m) ? 127.0f / m : 1.0f;
    }
    return p;
}

struct iseg__qact iseg__qact_of_ref(const float *x, size_t n) {
    float lo = 0.0f, hi = 0.0f;
    bool  any = false;
    for (size_t i = 0; i < n; i++) {
        float v = x[i];
        if (v != v) continue;
        if (!any || v < lo) lo = v;
        if (!any || v > hi) hi = v;
        any = true;
    }
    return iseg__qact_from_range(lo, hi);
}

struct iseg__qact iseg__qact_of(iseg_engine_t e, const float *x, size_t n) {
    float lo, hi;
    iseg__minmax(e, x, n, &lo, &hi);
    return iseg__qact_from_range(lo, hi);
}

struct minmax_ctx {
    const float *x;
    size_t       n, chunk;
    float       *lo, *hi; /* per thread */
};

static void minmax_range(const float *x, size_t n, float *lo, float *hi) {
#if HAVE_X86
    if (use_avx2()) {
        iseg__minmax_avx2(x, n, lo, hi);
        return;
    }
#endif
    float l = *lo, h = *hi;
    for (size_t i = 0; i < n; i++) {
        float v = x[i];
        l       = v < l ? v : l; /* NaN never compares: ignored */
        h       = v > h ? v : h;
    }
    *lo = l, *hi = h;
}

static void minmax_task(void *vctx, size_t item, int ith) {
    struct minmax_ctx *c  = vctx;
    size_t             i0 = item * c->chunk;
    size_t             n  = c->n - i0 < c->chunk ? c->n - i0 : c->chunk;
    minmax_range(c->x + i0, n, &c->lo[ith], &c->hi[ith]);
}

void iseg__minmax(iseg_engine_t e, const float *x, size_t n, float *lo, float *hi) {
    float l[64], h[64];
    int   nth = e && e->nth <= 64 ? e->nth : 1;
    for (int i = 0; i < nth; i++) l[i] = INFINITY, h[i] = -INFINITY;
    struct minmax_ctx c = {x, n, (size_t)1 << 16, l, h};
    if (nth > 1 && n > c.chunk) iseg__engine_run(e, (n + c.chunk - 1) / c.chunk, minmax_task, &c);
    else minmax_range(x, n, &l[0], &h[0]);
    *lo = INFINITY, *hi = -INFINITY;
    for (int i = 0; i < nth; i++) {
        if (l[i] < *lo) *lo = l[i];
        if (h[i] > *hi) *hi = h[i];
    }
    if (*lo > *hi) *lo = *hi = 0.0f; /* empty or all NaN */
}

/* np panels of words, dps words apart, each [nq][NR]: from np panels of NR-column float rows
 * (src + p sps, rows x NR, ld apart): byte i of word (t, j) is row 4t + i quantized (rows past
 * `rows` as 0.0f). */
static void qquads(uint32_t *dst, size_t dps, const float *src, size_t ld, size_t sps, int np,
                   int rows, int nq, const struct iseg__qact *p) {
#if HAVE_X86
    if (use_avx2()) {
        iseg__qquads_avx2(dst, dps, src, ld, sps, np, rows, nq, p);
        return;
    }
#endif
    uint8_t zq = iseg__qact_one(0.0f, p);
    for (int pi = 0; pi < np; pi++)
        for (int t = 0; t < nq; t++)
            for (int j = 0; j < NR; j++) {
                uint32_t v = 0;
                for (int i = 0; i < 4; i++) {
                    int     r = 4 * t + i;
                    const float *sr = src + pi * sps + (size_t)r * ld;
                    uint8_t      b  = r < rows ? iseg__qact_one(sr[j], p) : zq;
                    v |= (uint32_t)b << (8 * i);
                }
                dst[pi * dps + (size_t)t * NR + j] = v;
            }
}

/* As qquads() for bf16: word (t, j) holds rows 2t (low half) and 2t + 1 rounded to bf16. */
static void bpairs(uint32_t *dst, size_t dps, const float *src, size_t ld, size_t sps, int np,
                   int rows, int nw) {
#if HAVE_X86
    if (use_avx2()) {
        iseg__bpairs_avx2(dst, dps, src, ld, sps, np, rows, nw);
        return;
    }
#endif
    for (int pi = 0; pi < np; pi++)
        for (int t = 0; t < nw; t++)
            for (int j = 0; j < NR; j++)
                dst[pi * dps + (size_t)t * NR + j] =
                    bf16_pair(src + pi * sps + j, ld, 2 * (size_t)t, (size_t)rows);
}

struct qrows_ctx {
    enum iseg__qkind         kind;
    uint32_t                *dst;
    size_t                   ld;
    const float             *x;
    int                      N, K;
    const struct iseg__qact *p;
};

static void qrows_task(void *vctx, size_t item, int ith) {
    const struct qrows_ctx *c = vctx;
    (void)ith;
    uint32_t    *d = c->dst + item * c->ld;
    const float *x = c->x + item * (size_t)c->K;
    if (c->kind == ISEG_QKIND_BF16) {
        for (size_t t = 0; t < c->ld; t++) d[t] = bf16_pair(x, 1, 2 * t, (size_t)c->K);
        return;
    }
    uint8_t *db = (uint8_t *)d, zq = iseg__qact_one(0.0f, c->p);
#if HAVE_X86
    if (use_avx2()) {
        iseg__qact_row_avx2(db, x, (size_t)c->K, c->p);
    } else
#endif
    {
        for (int k = 0; k < c->K; k++) db[k] = iseg__qact_one(x[k], c->p);
    }
    for (size_t k = (size_t)c->K; k < 4 * c->ld; k++) db[k] = zq;
}

void iseg__qrows(iseg_engine_t e, enum iseg__qkind kind, uint32_t *dst, size_t ld, const float *x,
                 int N, int K, const struct iseg__qact *p) {
    ISEG_ASSERT(ld >= (size_t)iseg__ceil_div(K, iseg__qkind_kpw(kind)));
    struct qrows_ctx c = {kind, dst, ld, x, N, K, p};
    iseg__engine_run(e, (size_t)N, qrows_task, &c);
}

/* ---- kernels ------------------------------------------------------------------------------ */

void iseg__qkernel_int8_c(int kw, const uint32_t *a, const uint32_t *b, size_t b_ps, int n_nt,
                          void *vacc, bool init) {
    for (int nt = 0; nt < n_nt; nt++) {
        int32_t        *acc = (int32_t *)vacc + (size_t)nt * MR * NR;
        const uint32_t *bt  = b + (size_t)nt * b_ps;
        if (init) memset(acc, 0, MR * NR * sizeof(int32_t));
        for (int t = 0; t < kw; t++)
            for (int r = 0; r < MR; r++) {
                uint32_t aw = a[(size_t)t * MR + r];
                for (int j = 0; j < NR; j++) {
                    uint32_t bw = bt[(size_t)t * NR + j];
                    int32_t  v  = 0;
                    for (int i = 0; i < 4; i++)
                        v += (int32_t)(int8_t)(aw >> (8 * i)) * (int32_t)(uint8_t)(bw >> (8 * i));
                    acc[r * NR + j] += v;
                }
            }
    }
}

static inline float bf16_lo(uint32_t w) {
    union { uint32_t u; float f; } v = {w << 16};
    return v.f;
}
static inline float bf16_hi(uint32_t w) {
    union { uint32_t u; float f; } v = {w & 0xffff0000u};
    return v.f;
}

void iseg__qkernel_bf16_c(int kw, const uint32_t *a, const uint32_t *b, size_t b_ps, int n_nt,
                          void *vacc, bool init) {
    for (int nt = 0; nt < n_nt; nt++) {
        float          *acc = (float *)vacc + (size_t)nt * MR * NR;
        const uint32_t *bt  = b + (size_t)nt * b_ps;
        if (init)
            for (int i = 0; i < MR * NR; i++) acc[i] = 0.0f;
        for (int t = 0; t < kw; t++)
            for (int r = 0; r < MR; r++) {
                uint32_t aw = a[(size_t)t * MR + r];
                for (int j = 0; j < NR; j++) {
                    uint32_t bw = bt[(size_t)t * NR + j];
                    /* vdpbf16ps: the odd k's product, then the even k's, each rounded once
                     * (the products of bf16 values are exact in f32) */
                    float v = acc[r * NR + j] + bf16_hi(aw) * bf16_hi(bw);
                    acc[r * NR + j] = v + bf16_lo(aw) * bf16_lo(bw);
                }
            }
    }
}

static const struct iseg__qkernel QKERNELS[2][3] = {
    {{ISEG_QKIND_INT8, ISEG_GEMM_ISA_C, iseg__qkernel_int8_c, "int8 c"},
     {ISEG_QKIND_INT8, ISEG_GEMM_ISA_AVX2, iseg__qkernel_int8_avx2, "int8 avx2"},
     {ISEG_QKIND_INT8, ISEG_GEMM_ISA_AVX512, iseg__qkernel_int8_avx512, "int8 avx512-vnni"}},
    {{ISEG_QKIND_BF16, ISEG_GEMM_ISA_C, iseg__qkernel_bf16_c, "bf16 c"},
     {ISEG_QKIND_BF16, ISEG_GEMM_ISA_AVX2, iseg__qkernel_bf16_avx2, "bf16 avx2 (emulated)"},
     {ISEG_QKIND_BF16, ISEG_GEMM_ISA_AVX512, iseg__qkernel_bf16_avx512, "bf16 avx512-bf16"}},
};

static bool has_avx512_kind(enum iseg__qkind kind) {
#if HAVE_X86
    __builtin_cpu_init();
    if (!__builtin_cpu_supports("avx512f")) return false;
    return kind == ISEG_QKIND_INT8 ? __builtin_cpu_supports("avx512vnni")
                                   : __builtin_cpu_supports("avx512bf16");
#else
    (void)kind;
    return false;
#endif
}

const struct iseg__qkernel *iseg__qkernel(enum iseg__qkind kind) {
    enum iseg__gemm_isa isa = iseg__gemm_kernel()->isa;
    if (isa == ISEG_GEMM_ISA_AVX512 && !has_avx512_kind(kind)) isa = ISEG_GEMM_ISA_AVX2;
    if (isa == ISEG_GEMM_ISA_AVX2 && !use_avx2()) isa = ISEG_GEMM_ISA_C;
    return &QKERNELS[kind][isa - 1];
}

/* ---- driver ------------------------------------------------------------------------------- */

struct qrun {
    const struct iseg__qgemm_desc *d;
    iseg_engine_t                  e;
    iseg__qkernel_fn               kern;
    int                            kpw, mc, nc, n_mch, n_nch;
    size_t                         acc_words, qb_words; /* per-thread scratch layout */
};

static void epilogue(const struct qrun *x, const void *vacc, int b, int g, int m, int n, int mv,
                     int nv) {
    const struct iseg__qgemm_desc *d = x->d;
    float       *C  = d->C + b * d->c_bs + g * d->c_gs;
    const float *C0 = d->C0 ? d->C0 + b * d->c0_bs + g * d->c0_gs : NULL;
    bool         q8 = d->w->kind == ISEG_QKIND_INT8;
#if HAVE_X86
    if (use_avx2() && !d->c_trans && mv == MR && nv == NR) {
        float   s[MR];
        int32_t comp[MR];
        for (int r = 0; r < MR; r++) {
            size_t mm = (size_t)g * d->M + m + r;
            s[r]      = q8 ? d->act.scale * d->w->scale[mm] : 1.0f;
            comp[r]   = q8 ? d->act.zp * d->w->wsum[mm] : 0;
        }
        iseg__qepi_avx2(vacc, q8, C + (size_t)m * d->ldc + n, d->ldc,
                        C0 ? C0 + (size_t)m * d->ldc0 + n : NULL, d->ldc0, s, comp,
                        d->bias ? d->bias + (size_t)g * d->M + m : NULL, d->relu);
        return;
    }
#endif
    for (int r = 0; r < mv; r++) {
        size_t  mm   = (size_t)g * d->M + m + r;
        float   s    = q8 ? d->act.scale * d->w->scale[mm] : 1.0f;
        int32_t comp = q8 ? d->act.zp * d->w->wsum[mm] : 0;
        float   bias = d->bias ? d->bias[mm] : 0.0f;
        for (int j = 0; j < nv; j++) {
            size_t mi = (size_t)(m + r), ni = (size_t)(n + j);
            float  v  = q8 ? (float)(((const int32_t *)vacc)[r * NR + j] - comp) * s
                           : ((const float *)vacc)[r * NR + j];
            if (C0) v = C0[d->c_trans ? ni * d->ldc0 + mi : mi * d->ldc0 + ni] + v;
            if (d->bias) v += bias;
            if (d->relu) v = v > 0.0f ? v : 0.0f;
            C[d->c_trans ? ni * d->ldc + mi : mi * d->ldc + ni] = v;
        }
    }
}

/* The B block (words kw0..kw0+kwc, columns n0..n0+nc) of problem (b, g) as word panels
 * [ceil(nc/NR)][kwc][NR]. fbuf: KCF x ceil(nc/NR) NR floats. */
static void pack_qb(const struct qrun *x, uint32_t *dst, float *fbuf, int b, int g, int kw0,
                    int kwc, int n0, int nc) {
    const struct iseg__qgemm_desc *d   = x->d;
    int                            np  = iseg__ceil_div(nc, NR), kpw = x->kpw;
    bool                           q8  = d->w->kind == ISEG_QKIND_INT8;
    if (d->qb) {
        uint32_t zw = q8 ? 0x01010101u * iseg__qact_one(0.0f, &d->act) : 0;
        for (int p = 0; p < np; p++) {
            uint32_t *dp = dst + (size_t)p * kwc * NR;
            for (int j = 0; j < NR; j++) {
                int col = n0 + p * NR + j;
                if (col >= n0 + nc) {
                    for (int t = 0; t < kwc; t++) dp[(size_t)t * NR + j] = zw;
                    continue;
                }
                const uint32_t *src = d->qb + (size_t)col * d->qb_ld + kw0;
                for (int t = 0; t < kwc; t++) dp[(size_t)t * NR + j] = src[t];
            }
        }
        return;
    }
    /* float rows in slices of KCF, each converted into its words: straight from a row-major B
     * (whole panels), else from the float panels pack_b makes */
    int k_lo = kpw * kw0, k_hi = kpw * (kw0 + kwc), k_end = k_hi < d->K ? k_hi : d->K;
    const float *B = d->B ? d->B + b * d->b_bs + g * d->b_gs : NULL;
    for (int k = k_lo; k < k_hi; k += KCF) {
        int rows = k_end - k < KCF ? k_end - k : KCF; /* real rows (the rest: padding) */
        int nw   = (k_hi - k < KCF ? k_hi - k : KCF) / kpw;
        size_t    dps = (size_t)kwc * NR;
        uint32_t *dw  = dst + (size_t)((k - k_lo) / kpw) * NR;
        int       p0  = B ? nc / NR : 0; /* whole panels converted straight from B */
        if (p0) {
            const float *src = B + (size_t)k * d->ldb + n0;
            if (q8) qquads(dw, dps, src, d->ldb, NR, p0, rows, nw, &d->act);
            else bpairs(dw, dps, src, d->ldb, NR, p0, rows, nw);
            if (p0 == np) continue;
        }
        /* the rest through float panels */
        if (B) iseg__gemm_pack_b(fbuf, B + (size_t)k * d->ldb + n0 + p0 * NR, d->ldb, false, rows,
                                 nc - p0 * NR, NR);
        else d->pack_b(d->pack_ctx, b, g, fbuf, k, rows, n0, nc, NR);
        size_t sps = (size_t)rows * NR;
        if (q8) qquads(dw + p0 * dps, dps, fbuf, NR, sps, np - p0, rows, nw, &d->act);
        else bpairs(dw + p0 * dps, dps, fbuf, NR, sps, np - p0, rows, nw);
    }
}

static void qgemm_task(void *vctx, size_t item, int ith) {
    const struct qrun             *x = vctx;
    const struct iseg__qgemm_desc *d = x->d;
    int ni = (int)(item % (size_t)x->n_nch);
    int mi = (int)(item / (size_t)x->n_nch % (size_t)x->n_mch);
    int bg = (int)(item / ((size_t)x->n_nch * x->n_mch));
    int b = bg / d->n_g, g = bg % d->n_g;
    int m0 = mi * x->mc, mv_all = d->M - m0 < x->mc ? d->M - m0 : x->mc;
    int n0 = ni * x->nc, nc = d->N - n0 < x->nc ? d->N - n0 : x->nc;
    int n_mt = iseg__ceil_div(mv_all, MR), n_nt = iseg__ceil_div(nc, NR);

    uint32_t *acc  = (uint32_t *)iseg__engine_scratch(x->e, ith);
    uint32_t *qbuf = acc + x->acc_words;
    float    *fbuf = (float *)(qbuf + x->qb_words);
    int       Kw   = d->w->Kw;
    const uint32_t *wa = d->w->pa + g * d->w->pa_gs + (size_t)(m0 / MR) * Kw * MR;

    for (int kw0 = 0; kw0 < Kw; kw0 += KCW) {
        int kwc = Kw - kw0 < KCW ? Kw - kw0 : KCW;
        pack_qb(x, qbuf, fbuf, b, g, kw0, kwc, n0, nc);
        for (int mt = 0; mt < n_mt; mt++)
            x->kern(kwc, wa + (size_t)mt * Kw * MR + (size_t)kw0 * MR, qbuf, (size_t)kwc * NR,
                    n_nt, acc + (size_t)mt * n_nt * MR * NR, kw0 == 0);
    }
    for (int mt = 0; mt < n_mt; mt++)
        for (int nt = 0; nt < n_nt; nt++) {
            int m = m0 + mt * MR, n = n0 + nt * NR;
            int mv = d->M - m < MR ? d->M - m : MR, nv = n0 + nc - n < NR ? n0 + nc - n : NR;
            epilogue(x, acc + ((size_t)mt * n_nt + nt) * MR * NR, b, g, m, n, mv, nv);
        }
}

void iseg__qgemm_run(iseg_engine_t e, const struct iseg__qgemm_desc *d) {
    ISEG_ASSERT(d->M >= 0 && d->N >= 0 && d->K >= 1 && d->n_b >= 1 && d->n_g >= 1);
    ISEG_ASSERT(d->w && d->w->M == d->M && d->w->K == d->K && d->w->n_g == d->n_g);
    ISEG_ASSERT(d->qb || d->pack_b || d->B);
    if (d->M == 0 || d->N == 0) return;
    struct qrun x;
    memset(&x, 0, sizeof(x));
    x.d    = d;
    x.e    = e;
    x.kern = iseg__qkernel(d->w->kind)->fn;
    x.kpw  = iseg__qkind_kpw(d->w->kind);
    int nth = e->nth;
    x.nc    = d->N < 8 * NR ? iseg__ceil_div(d->N, NR) * NR : 8 * NR;
    x.mc    = d->M < 256 ? iseg__ceil_div(d->M, MR) * MR : 256;
    /* enough items for every thread: narrower N chunks, then M chunks */
    for (;;) {
        x.n_nch = iseg__ceil_div(d->N, x.nc);
        x.n_mch = iseg__ceil_div(d->M, x.mc);
        long items = (long)d->n_b * d->n_g * x.n_mch * x.n_nch;
        if (nth == 1 || items >= 4L * nth) break;
        if (x.nc > 2 * NR) x.nc -= NR;
        else if (x.mc > 4 * MR) x.mc = iseg__ceil_div(x.mc / 2, MR) * MR;
        else break;
    }
    x.acc_words  = (size_t)x.mc * x.nc;
    x.qb_words   = (size_t)x.nc * KCW;
    size_t bytes = (x.acc_words + x.qb_words) * 4 + (size_t)KCF * x.nc * sizeof(float);
    if (!iseg__engine_reserve(e, bytes)) return;
    iseg__engine_run(e, (size_t)d->n_b * d->n_g * x.n_mch * x.n_nch, qgemm_task, &x);
}
