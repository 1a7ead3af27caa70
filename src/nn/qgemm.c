/* qgemm.c - the int8 GEMM: weight quantization and packing, activation quantization, the
 * portable kernel, and the threaded driver that convolutions and linear layers share in int8
 * precision (see nn_impl.h for the arithmetic).
 *
 * Loop nest: work items (problem, M chunk, N chunk) run on the pool; inside an item, for each
 * K block of ISEG_QGEMM_KCQ quads: quantize the B block (KCQ x nc) once into quad panels, then
 * every MR-row weight micro-panel (kept in L1) against every NR-column panel, the int32 sums
 * kept per tile in the item's accumulator until the last block, whose epilogue dequantizes.
 * The sums are exact integers, so the result never depends on the partition. */
#include <math.h>
#include <string.h>

#include "nn/nn_impl.h"

#define MR  ISEG_QGEMM_MR
#define NR  ISEG_QGEMM_NR
#define KCQ ISEG_QGEMM_KCQ
#define KCF 256 /* float rows packed at a time before quantization */

#if defined(__x86_64__) && defined(__GNUC__)
#define HAVE_X86 1
#else
#define HAVE_X86 0
#endif

/* AVX2 helpers (qgemm_avx2.c) */
void iseg__qquads_avx2(uint32_t *dst, const float *src, int rows, int nq,
                       const struct iseg__qact *p);
void iseg__qact_row_avx2(uint8_t *dst, const float *x, size_t n, const struct iseg__qact *p);
void iseg__minmax_avx2(const float *x, size_t n, float *lo, float *hi);
void iseg__bf16_round_avx2(float *x, size_t n);

static bool use_avx2(void) { return iseg__gemm_kernel()->isa >= ISEG_GEMM_ISA_AVX2; }

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

enum iseg_status iseg__qweights_init(struct iseg__qweights *q, const float *w, int M, int K,
                                     int n_g) {
    ISEG_ASSERT(q && w && M >= 1 && K >= 1 && n_g >= 1);
    memset(q, 0, sizeof(*q));
    q->M = M, q->K = K, q->Kq = iseg__ceil_div(K, 4), q->n_g = n_g;
    q->pa_gs = (size_t)iseg__ceil_div(M, MR) * MR * (size_t)q->Kq;
    size_t rows = (size_t)n_g * M;
    q->pa    = iseg__calloc(q->pa_gs * (size_t)n_g, sizeof(uint32_t));
    q->scale = iseg__malloc_array(rows, sizeof(float));
    q->wsum  = iseg__malloc_array(rows, sizeof(int32_t));
    int8_t *row = iseg__malloc_array((size_t)q->Kq * 4, 1);
    if (!q->pa || !q->scale || !q->wsum || !row) {
        iseg__free(row);
        iseg__qweights_free(q);
        return ISEG_STATUS_ENOMEM;
    }
    for (int g = 0; g < n_g; g++)
        for (int m = 0; m < M; m++) {
            size_t r = (size_t)g * M + m;
            memset(row, 0, (size_t)q->Kq * 4);
            q->scale[r] = iseg__qweight_row(row, w + r * K, K);
            int32_t s = 0;
            for (int k = 0; k < K; k++) s += row[k];
            q->wsum[r] = s;
            /* panel m / MR, lane m % MR: word kq holds k 4kq..4kq+3, low byte first */
            uint32_t *dst = q->pa + g * q->pa_gs + (size_t)(m / MR) * q->Kq * MR + m % MR;
            for (int t = 0; t < q->Kq; t++) {
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

/* dst[t][j] (nq x NR words) from the float panel src (rows x NR): byte i of word (t, j) is row
 * 4t + i quantized (rows past `rows` as 0.0f). */
static void qquads(uint32_t *dst, const float *src, int rows, int nq, const struct iseg__qact *p) {
#if HAVE_X86
    if (use_avx2()) {
        iseg__qquads_avx2(dst, src, rows, nq, p);
        return;
    }
#endif
    uint8_t zq = iseg__qact_one(0.0f, p);
    for (int t = 0; t < nq; t++)
        for (int j = 0; j < NR; j++) {
            uint32_t v = 0;
            for (int i = 0; i < 4; i++) {
                int     r = 4 * t + i;
                uint8_t b = r < rows ? iseg__qact_one(src[(size_t)r * NR + j], p) : zq;
                v |= (uint32_t)b << (8 * i);
            }
            dst[(size_t)t * NR + j] = v;
        }
}

struct qrows_ctx {
    uint8_t                 *dst;
    size_t                   ld;
    const float             *x;
    int                      N, K;
    const struct iseg__qact *p;
};

static void qrows_task(void *vctx, size_t item, int ith) {
    const struct qrows_ctx *c = vctx;
    (void)ith;
    uint8_t     *d  = c->dst + item * c->ld;
    const float *x  = c->x + item * (size_t)c->K;
    uint8_t      zq = iseg__qact_one(0.0f, c->p);
#if HAVE_X86
    if (use_avx2()) {
        iseg__qact_row_avx2(d, x, (size_t)c->K, c->p);
    } else
#endif
    {
        for (int k = 0; k < c->K; k++) d[k] = iseg__qact_one(x[k], c->p);
    }
    for (size_t k = (size_t)c->K; k < c->ld; k++) d[k] = zq;
}

void iseg__qact_rows(iseg_engine_t e, uint8_t *dst, size_t ld, const float *x, int N, int K,
                     const struct iseg__qact *p) {
    struct qrows_ctx c = {dst, ld, x, N, K, p};
    iseg__engine_run(e, (size_t)N, qrows_task, &c);
}

/* ---- kernels ------------------------------------------------------------------------------ */

void iseg__qkernel_c(int kq, const uint32_t *a, const uint32_t *b, int32_t *acc, bool init) {
    int32_t s[MR][NR];
    for (int r = 0; r < MR; r++)
        for (int j = 0; j < NR; j++) s[r][j] = init ? 0 : acc[r * NR + j];
    for (int t = 0; t < kq; t++) {
        for (int r = 0; r < MR; r++) {
            uint32_t aw = a[r];
            for (int j = 0; j < NR; j++) {
                uint32_t bw = b[j];
                int32_t  v  = 0;
                for (int i = 0; i < 4; i++)
                    v += (int32_t)(int8_t)(aw >> (8 * i)) * (int32_t)(uint8_t)(bw >> (8 * i));
                s[r][j] += v;
            }
        }
        a += MR;
        b += NR;
    }
    for (int r = 0; r < MR; r++)
        for (int j = 0; j < NR; j++) acc[r * NR + j] = s[r][j];
}

iseg__qkernel_fn iseg__qkernel(void) {
    return use_avx2() ? iseg__qkernel_avx2 : iseg__qkernel_c;
}

/* ---- bf16 --------------------------------------------------------------------------------- */

void iseg__bf16_round_n(float *x, size_t n) {
#if HAVE_X86
    if (use_avx2()) {
        iseg__bf16_round_avx2(x, n);
        return;
    }
#endif
    for (size_t i = 0; i < n; i++) x[i] = iseg__bf16_round(x[i]);
}

/* ---- driver ------------------------------------------------------------------------------- */

struct qrun {
    const struct iseg__qgemm_desc *d;
    iseg_engine_t                  e;
    iseg__qkernel_fn               kern;
    int                            mc, nc, n_mch, n_nch;
    size_t                         acc_words, qb_words; /* per-thread scratch layout */
};

static void epilogue(const struct qrun *x, const int32_t *acc, int b, int g, int m, int n, int mv,
                     int nv) {
    const struct iseg__qgemm_desc *d = x->d;
    float       *C  = d->C + b * d->c_bs + g * d->c_gs;
    const float *C0 = d->C0 ? d->C0 + b * d->c0_bs + g * d->c0_gs : NULL;
    for (int r = 0; r < mv; r++) {
        size_t  mm   = (size_t)g * d->M + m + r;
        float   s    = d->act.scale * d->w->scale[mm];
        int32_t comp = d->act.zp * d->w->wsum[mm];
        float   bias = d->bias ? d->bias[mm] : 0.0f;
        for (int j = 0; j < nv; j++) {
            size_t mi = (size_t)(m + r), ni = (size_t)(n + j);
            float  v  = (float)(acc[r * NR + j] - comp) * s;
            if (C0) v = C0[d->c_trans ? ni * d->ldc0 + mi : mi * d->ldc0 + ni] + v;
            if (d->bias) v += bias;
            if (d->relu) v = v > 0.0f ? v : 0.0f;
            C[d->c_trans ? ni * d->ldc + mi : mi * d->ldc + ni] = v;
        }
    }
}

/* The B block (quads kq0..kq0+kqc, columns n0..n0+nc) of problem (b, g) as quad panels
 * [ceil(nc/NR)][kqc][NR] words. fbuf: KCF x ceil(nc/NR) NR floats. */
static void pack_qb(const struct qrun *x, uint32_t *dst, float *fbuf, int b, int g, int kq0,
                    int kqc, int n0, int nc) {
    const struct iseg__qgemm_desc *d = x->d;
    int                            np = iseg__ceil_div(nc, NR);
    if (d->qb) {
        uint32_t zw = 0x01010101u * iseg__qact_one(0.0f, &d->act);
        for (int p = 0; p < np; p++) {
            uint32_t *dp = dst + (size_t)p * kqc * NR;
            for (int j = 0; j < NR; j++) {
                int col = n0 + p * NR + j;
                if (col >= n0 + nc) {
                    for (int t = 0; t < kqc; t++) dp[(size_t)t * NR + j] = zw;
                    continue;
                }
                const uint8_t *src = d->qb + (size_t)col * d->qb_ld + (size_t)kq0 * 4;
                for (int t = 0; t < kqc; t++) {
                    uint32_t v;
                    memcpy(&v, src + 4 * t, 4);
                    dp[(size_t)t * NR + j] = v;
                }
            }
        }
        return;
    }
    /* float rows k0.. in slices of KCF (a multiple of 4), each quantized into its quads */
    int k_end = 4 * (kq0 + kqc) < d->K ? 4 * (kq0 + kqc) : d->K;
    for (int k = 4 * kq0; k < 4 * (kq0 + kqc); k += KCF) {
        int rows = k_end - k < KCF ? k_end - k : KCF; /* real rows (the rest: padding) */
        int nq   = 4 * (kq0 + kqc) - k < KCF ? (4 * (kq0 + kqc) - k) / 4 : KCF / 4;
        if (rows > 0) d->pack_b(d->pack_ctx, b, g, fbuf, k, rows, n0, nc, NR);
        for (int p = 0; p < np; p++)
            qquads(dst + (size_t)p * kqc * NR + (size_t)(k / 4 - kq0) * NR,
                   fbuf + (size_t)p * (rows > 0 ? rows : 0) * NR, rows > 0 ? rows : 0, nq,
                   &d->act);
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

    int32_t  *acc  = (int32_t *)iseg__engine_scratch(x->e, ith);
    uint32_t *qbuf = (uint32_t *)(acc + x->acc_words);
    float    *fbuf = (float *)(qbuf + x->qb_words);
    int       Kq   = d->w->Kq;
    const uint32_t *wa = d->w->pa + g * d->w->pa_gs + (size_t)(m0 / MR) * Kq * MR;

    for (int kq0 = 0; kq0 < Kq; kq0 += KCQ) {
        int kqc = Kq - kq0 < KCQ ? Kq - kq0 : KCQ;
        pack_qb(x, qbuf, fbuf, b, g, kq0, kqc, n0, nc);
        for (int mt = 0; mt < n_mt; mt++) {
            const uint32_t *a = wa + (size_t)mt * Kq * MR + (size_t)kq0 * MR;
            for (int nt = 0; nt < n_nt; nt++)
                x->kern(kqc, a, qbuf + (size_t)nt * kqc * NR,
                        acc + ((size_t)mt * n_nt + nt) * MR * NR, kq0 == 0);
        }
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
    ISEG_ASSERT(d->qb || d->pack_b);
    if (d->M == 0 || d->N == 0) return;
    struct qrun x;
    memset(&x, 0, sizeof(x));
    x.d    = d;
    x.e    = e;
    x.kern = iseg__qkernel();
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
    x.qb_words   = (size_t)x.nc * KCQ;
    size_t bytes = (x.acc_words + x.qb_words) * 4 + (size_t)KCF * x.nc * sizeof(float);
    if (!iseg__engine_reserve(e, bytes)) return;
    iseg__engine_run(e, (size_t)d->n_b * d->n_g * x.n_mch * x.n_nch, qgemm_task, &x);
}
