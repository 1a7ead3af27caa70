/* gemm.c - blocked SGEMM: operand packing, the portable kernel, kernel dispatch and the threaded
 * driver shared by convolution, transposed convolution and linear layers.
 *
 * Loop nest (BLIS): work items (problem, M chunk, N chunk) run on the pool; inside an item,
 * for each K block of ISEG_GEMM_KC: pack B (KC x NC) once, then for each M block of MC_BLK
 * rows pack A if needed, then NR-column micro-panels (kept in L1) times MR-row micro-panels.
 * Each C element is the sum over K blocks in order of a sequential in-register sum: the same
 * arithmetic for any partition, hence bit-identical results for any number of threads. */
#include <stdatomic.h>
#include <string.h>

#include "nn/nn_impl.h"

#define MR     ISEG_GEMM_MR
#define KC     ISEG_GEMM_KC
#define MC_BLK 256 /* rows of A per cache block (A block MC_BLK x KC in L2) */

/* ---- kernels and dispatch ---------------------------------------------------------------- */

/* Portable kernel, NR 16. Plain multiply-add (the build does not contract to FMA). */
void iseg__kernel_c(int kc, const float *a, const float *b, float *c, size_t ldc,
                    const float *c0, size_t ldc0, const struct iseg__gemm_epi *epi) {
    enum { NR = 16 };
    float acc[MR][NR];
    memset(acc, 0, sizeof(acc));
    for (int k = 0; k < kc; k++) {
        for (int r = 0; r < MR; r++) {
            float ar = a[r];
            for (int j = 0; j < NR; j++) acc[r][j] += ar * b[j];
        }
        a += MR;
        b += NR;
    }
    const float *br = epi ? epi->bias_row : NULL, *bc = epi ? epi->bias_col : NULL;
    bool         relu = epi && epi->relu;
    for (int r = 0; r < MR; r++) {
        float       *cr  = c + (size_t)r * ldc;
        const float *c0r = c0 ? c0 + (size_t)r * ldc0 : NULL;
        for (int j = 0; j < NR; j++) {
            float v = c0r ? c0r[j] + acc[r][j] : acc[r][j];
            if (br) v += br[r];
            if (bc) v += bc[j];
            if (relu) v = v > 0.0f ? v : 0.0f;
            cr[j] = v;
        }
    }
}

static const struct iseg__gemm_kernel KERNELS[] = {
    {ISEG_GEMM_ISA_C, 16, iseg__kernel_c, "c"},
    {ISEG_GEMM_ISA_AVX2, 24, iseg__kernel_avx2, "avx2"},
    {ISEG_GEMM_ISA_AVX512, 48, iseg__kernel_avx512, "avx512"},
};

static atomic_int g_isa; /* 0: not chosen yet */

static enum iseg__gemm_isa best_isa(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
        __builtin_cpu_supports("fma"))
        return ISEG_GEMM_ISA_AVX512;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return ISEG_GEMM_ISA_AVX2;
#endif
    return ISEG_GEMM_ISA_C;
}

const struct iseg__gemm_kernel *iseg__gemm_kernel(void) {
    int isa = atomic_load(&g_isa);
    if (isa == 0) {
        isa = (int)best_isa();
        atomic_store(&g_isa, isa);
    }
    return &KERNELS[isa - 1];
}

const struct iseg__gemm_kernel *iseg__gemm_force(enum iseg__gemm_isa isa) {
    enum iseg__gemm_isa best = best_isa();
    if (isa == ISEG_GEMM_ISA_AUTO || isa > best) isa = best;
    atomic_store(&g_isa, (int)isa);
    return &KERNELS[isa - 1];
}

const struct iseg__gemm_kernel *iseg__gemm_kernel_nr(int nr) {
    const struct iseg__gemm_kernel *k = iseg__gemm_kernel();
    if (k->nr == nr) return k;
    /* packed for another kernel: the best one of that width */
    enum iseg__gemm_isa best = best_isa();
    for (int i = (int)(sizeof(KERNELS) / sizeof(KERNELS[0])) - 1; i >= 0; i--)
        if (KERNELS[i].nr == nr && KERNELS[i].isa <= best) return &KERNELS[i];
    ISEG_ASSERT(!"no kernel for this panel width");
    return k;
}

/* ---- packing ------------------------------------------------------------------------------ */

size_t iseg__gemm_packed_a_size(int M, int K) {
    return (size_t)iseg__ceil_div(M, MR) * MR * (size_t)K;
}

size_t iseg__gemm_packed_b_size(int N, int K, int nr) {
    return (size_t)iseg__ceil_div(N, nr) * (size_t)nr * (size_t)K;
}

/* Rows [m0, m0 + mc) and columns [k0, k0 + kc) of A into panels [ceil(mc/MR)][kc][MR]. */
static void pack_a_block(float *dst, const float *A, size_t lda, bool trans, int m0, int mc,
                         int k0, int kc) {
    for (int p = 0; p < mc; p += MR) {
        int    mv = mc - p < MR ? mc - p : MR;
        float *d  = dst + (size_t)p * kc;
        if (mv < MR) memset(d, 0, (size_t)kc * MR * sizeof(float));
        for (int r = 0; r < mv; r++) {
            size_t m = (size_t)(m0 + p + r);
            if (trans) {
                for (int k = 0; k < kc; k++) d[(size_t)k * MR + r] = A[(size_t)(k0 + k) * lda + m];
            } else {
                const float *src = A + m * lda + k0;
                for (int k = 0; k < kc; k++) d[(size_t)k * MR + r] = src[k];
            }
        }
    }
}

void iseg__gemm_pack_a(float *dst, const float *A, size_t lda, bool trans, int M, int K) {
    /* K block by K block, so that the A block of one K block is one contiguous stream */
    size_t mpad = (size_t)iseg__ceil_div(M, MR) * MR;
    for (int k0 = 0; k0 < K; k0 += KC) {
        int kc = K - k0 < KC ? K - k0 : KC;
        pack_a_block(dst + (size_t)k0 * mpad, A, lda, trans, 0, M, k0, kc);
    }
}

/* Columns [n0, n0 + nc) and rows [k0, k0 + kc) of B into panels [ceil(nc/nr)][kc][nr]. */
static void pack_b_block(float *dst, const float *B, size_t ldb, bool trans, int k0, int kc,
                         int n0, int nc, int nr) {
    for (int p = 0; p < nc; p += nr) {
        int    nv = nc - p < nr ? nc - p : nr;
        float *d  = dst + (size_t)p * kc;
        for (int k = 0; k < kc; k++, d += nr) {
            if (trans) {
                for (int j = 0; j < nv; j++) d[j] = B[(size_t)(n0 + p + j) * ldb + (size_t)(k0 + k)];
            } else {
                /* a loop, not memcpy: the rows are a few vectors long, and a library call
                 * per row cost more than the copy (training GEMMs pack long, thin B) */
                const float *src = B + (size_t)(k0 + k) * ldb + (size_t)(n0 + p);
                for (int j = 0; j < nv; j++) d[j] = src[j];
            }
            for (int j = nv; j < nr; j++) d[j] = 0.0f;
        }
    }
}

void iseg__gemm_pack_b(float *dst, const float *B, size_t ldb, bool trans, int K, int N, int nr) {
    pack_b_block(dst, B, ldb, trans, 0, K, 0, N, nr);
}

/* ---- driver ------------------------------------------------------------------------------- */

struct run_ctx {
    const struct iseg__gemm_desc   *d;
    const struct iseg__gemm_kernel *k;
    iseg_engine_t                   e;
    int                             nr, mc, nc, n_mch, n_nch;
    size_t                          a_floats, b_floats; /* per-thread scratch layout */
};

/* The epilogue on its own, for K = 0 (no kernel call to fuse it into). */
static void epilogue(const struct iseg__gemm_desc *d, float *c, int g, int m, int n, int mv,
                     int nv) {
    const float *br = d->bias_row ? d->bias_row + (size_t)g * d->M + m : NULL;
    const float *bc = d->bias_col ? d->bias_col + n : NULL;
    for (int r = 0; r < mv; r++) {
        float *cr = c + (size_t)r * d->ldc;
        if (br) {
            float v = br[r];
            for (int j = 0; j < nv; j++) cr[j] += v;
        }
        if (bc)
            for (int j = 0; j < nv; j++) cr[j] += bc[j];
        if (d->relu)
            for (int j = 0; j < nv; j++) cr[j] = cr[j] > 0.0f ? cr[j] : 0.0f;
    }
}

#define NR_MAX 48

/* Copies rows [m, m + mv) and columns [n, n + nv) between a tile (rows nr floats apart) and a
 * matrix whose columns may be split into images (see iseg__gemm_desc.n_img): in a run per
 * image, so that a tile that straddles two images lands in both. */
static void tile_io(float *tile, int nr, float *mat, size_t ld, ptrdiff_t is, int n_img, int m,
                    int n, int mv, int nv, bool to_mat) {
    for (int j = 0; j < nv;) {
        int col = n + j, img = 0, len = nv - j;
        if (n_img) {
            img = col / n_img;
            col = col % n_img;
            if (len > n_img - col) len = n_img - col;
        }
        float *p = mat + img * is + (size_t)m * ld + col;
        for (int r = 0; r < mv; r++) {
            if (to_mat) memcpy(p + (size_t)r * ld, tile + (size_t)r * nr + j, (size_t)len * sizeof(float));
            else memcpy(tile + (size_t)r * nr + j, p + (size_t)r * ld, (size_t)len * sizeof(float));
        }
        j += len;
    }
}

static void gemm_task(void *vctx, size_t item, int ith) {
    const struct run_ctx         *x = vctx;
    const struct iseg__gemm_desc *d = x->d;
    int nr  = x->nr;
    int ni  = (int)(item % (size_t)x->n_nch);
    int mi  = (int)(item / (size_t)x->n_nch % (size_t)x->n_mch);
    int bg  = (int)(item / ((size_t)x->n_nch * x->n_mch));
    int b   = bg / d->n_g, g = bg % d->n_g;
    int m0  = mi * x->mc, m1 = m0 + x->mc < d->M ? m0 + x->mc : d->M;
    int n0  = ni * x->nc, ncur = n0 + x->nc < d->N ? x->nc : d->N - n0;

    float *scr  = iseg__engine_scratch(x->e, ith);
    float *abuf = scr;
    float *bbuf = scr + x->a_floats;
    float *tile = bbuf + x->b_floats;

    float       *C  = d->C + b * d->c_bs + g * d->c_gs;
    const float *C0 = d->C0 ? d->C0 + b * d->c0_bs + g * d->c0_gs : NULL;
    iseg__gemm_kernel_fn kern = x->k->fn;
    bool  has_epi = d->bias_row || d->bias_col || d->relu;
    float br_pad[MR], bc_pad[NR_MAX]; /* bias of an edge tile, zero-padded to the full tile */

    for (int k0 = 0; k0 < d->K; k0 += KC) {
        int  kc    = d->K - k0 < KC ? d->K - k0 : KC;
        bool first = k0 == 0, last = k0 + kc >= d->K;
        const float *bpan;
        size_t       b_ps;
        if (d->pb) {
            bpan = d->pb + b * d->pb_bs + (size_t)(n0 / nr) * d->K * nr + (size_t)k0 * nr;
            b_ps = (size_t)d->K * nr;
        } else {
            d->pack_b(d->pack_ctx, b, g, bbuf, k0, kc, n0, ncur, nr);
            bpan = bbuf;
            b_ps = (size_t)kc * nr;
        }
        for (int mb = m0; mb < m1; mb += MC_BLK) {
            int          mbc = m1 - mb < MC_BLK ? m1 - mb : MC_BLK;
            const float *apan;
            size_t       a_ps;
            if (d->pa) {
                size_t mpad = (size_t)iseg__ceil_div(d->M, MR) * MR;
                apan = d->pa + g * d->pa_gs + (size_t)k0 * mpad + (size_t)mb * kc;
                a_ps = (size_t)kc * MR;
            } else {
                pack_a_block(abuf, d->A + g * d->pa_gs, d->lda, false, mb, mbc, k0, kc);
                apan = abuf;
                a_ps = (size_t)kc * MR;
            }
            for (int jr = 0; jr < ncur; jr += nr) {
                int          nv = ncur - jr < nr ? ncur - jr : nr;
                const float *bb = bpan + (size_t)(jr / nr) * b_ps;
                int          n  = n0 + jr;
                struct iseg__gemm_epi epi = {NULL, NULL, d->relu};
                if (last && d->bias_col) {
                    if (nv == nr) {
                        epi.bias_col = d->bias_col + n;
                    } else {
                        memcpy(bc_pad, d->bias_col + n, (size_t)nv * sizeof(float));
                        memset(bc_pad + nv, 0, (size_t)(nr - nv) * sizeof(float));
                        epi.bias_col = bc_pad;
                    }
                }
                /* the tile's columns within their image (n_img: possibly two images) */
                int  n_img = d->n_img, img = n_img ? n / n_img : 0, col = n_img ? n % n_img : n;
                bool split = n_img && col + nv > n_img;
                float       *Ci  = C + img * d->c_is;
                const float *C0i = C0 ? C0 + img * d->c0_is : NULL;
                for (int ir = 0; ir < mbc; ir += MR) {
                    int          mv = mbc - ir < MR ? mbc - ir : MR;
                    int          m  = mb + ir;
                    const float *a  = apan + (size_t)(ir / MR) * a_ps;
                    float       *c  = Ci + (size_t)m * d->ldc + col;
                    const float *s0 = first ? (C0i ? C0i + (size_t)m * d->ldc0 + col : NULL) : c;
                    size_t       l0 = first ? d->ldc0 : d->ldc;
                    if (last && d->bias_row) {
                        const float *br = d->bias_row + (size_t)g * d->M + m;
                        if (mv == MR) {
                            epi.bias_row = br;
                        } else {
                            memcpy(br_pad, br, (size_t)mv * sizeof(float));
                            memset(br_pad + mv, 0, (size_t)(MR - mv) * sizeof(float));
                            epi.bias_row = br_pad;
                        }
                    }
                    const struct iseg__gemm_epi *pe = last && has_epi ? &epi : NULL;
                    if (mv == MR && nv == nr && !split) {
                        kern(kc, a, bb, c, d->ldc, s0, l0, pe);
                    } else if (!split) {
                        /* edge tile: same kernel on a full tile, valid part copied */
                        if (s0)
                            for (int r = 0; r < mv; r++)
                                memcpy(tile + (size_t)r * nr, s0 + (size_t)r * l0,
                                       (size_t)nv * sizeof(float));
                        kern(kc, a, bb, tile, (size_t)nr, s0 ? tile : NULL, (size_t)nr, pe);
                        for (int r = 0; r < mv; r++)
                            memcpy(c + (size_t)r * d->ldc, tile + (size_t)r * nr,
                                   (size_t)nv * sizeof(float));
                    } else {
                        /* a tile across images: the same through the tile, run by run */
                        if (first && C0)
                            tile_io(tile, nr, (float *)(uintptr_t)C0, d->ldc0, d->c0_is, n_img,
                                    m, n, mv, nv, false);
                        else if (!first)
                            tile_io(tile, nr, C, d->ldc, d->c_is, n_img, m, n, mv, nv, false);
                        bool has0 = !first || C0;
                        kern(kc, a, bb, tile, (size_t)nr, has0 ? tile : NULL, (size_t)nr, pe);
                        tile_io(tile, nr, C, d->ldc, d->c_is, n_img, m, n, mv, nv, true);
                    }
                }
            }
        }
    }
}

void iseg__gemm_run(iseg_engine_t e, const struct iseg__gemm_desc *d) {
    ISEG_ASSERT(d->M >= 0 && d->N >= 0 && d->K >= 0 && d->n_b >= 1 && d->n_g >= 1);
    if (d->M == 0 || d->N == 0) return;
    if (d->K == 0) {
        /* no products: C = C0 (+ epilogue) */
        ISEG_ASSERT(!d->n_img);
        for (int b = 0; b < d->n_b; b++)
            for (int g = 0; g < d->n_g; g++) {
                float       *C  = d->C + b * d->c_bs + g * d->c_gs;
                const float *C0 = d->C0 ? d->C0 + b * d->c0_bs + g * d->c0_gs : NULL;
                for (int m = 0; m < d->M; m++) {
                    for (int n = 0; n < d->N; n++)
                        C[(size_t)m * d->ldc + n] = C0 ? C0[(size_t)m * d->ldc0 + n] : 0.0f;
                }
                epilogue(d, C, g, 0, 0, d->M, d->N);
            }
        return;
    }
    ISEG_ASSERT(d->pa || d->A);
    ISEG_ASSERT(d->pb || d->pack_b);
    struct run_ctx x;
    memset(&x, 0, sizeof(x));
    x.d  = d;
    x.e  = e;
    x.k  = d->pb ? iseg__gemm_kernel_nr(d->pb_nr) : iseg__gemm_kernel();
    x.nr = x.k->nr;
    int nth = e->nth;
    /* N chunks: prepacked B costs nothing to split, packed B is packed once per chunk */
    int nc_def = d->pb ? 16 * x.nr : 8 * x.nr;
    x.nc       = d->N < nc_def ? iseg__ceil_div(d->N, x.nr) * x.nr : nc_def;
    if (d->pb && !d->pa) x.nc = iseg__ceil_div(d->N, x.nr) * x.nr; /* A packing: split M */
    x.n_nch = iseg__ceil_div(d->N, x.nc);
    /* M chunks only when the other dimensions do not give every thread several items */
    int  n_bg   = d->n_b * d->n_g;
    long others = (long)n_bg * x.n_nch;
    x.n_mch     = 1;
    x.mc        = d->M;
    if (nth > 1 && others < 4L * nth) {
        int want = (int)((4L * nth + others - 1) / others);
        int mp   = iseg__ceil_div(d->M, MR);
        if (want > mp) want = mp;
        x.mc    = iseg__ceil_div(mp, want) * MR;
        x.n_mch = iseg__ceil_div(d->M, x.mc);
    } else if (!d->pa && d->M > MC_BLK) {
        /* A is packed per item: spread it anyway so that items stay small */
        x.mc    = MC_BLK;
        x.n_mch = iseg__ceil_div(d->M, x.mc);
    }
    x.a_floats = d->pa ? 0 : (size_t)MC_BLK * KC;
    x.b_floats = d->pb ? 0 : (size_t)x.nc * KC;
    size_t bytes = (x.a_floats + x.b_floats + (size_t)MR * x.nr) * sizeof(float);
    if (!iseg__engine_reserve(e, bytes)) return;
    size_t n_items = (size_t)n_bg * x.n_mch * x.n_nch;
    iseg__engine_run(e, n_items, gemm_task, &x);
}

/* ---- public SGEMM ------------------------------------------------------------------------- */

struct dense_b {
    const float *B;
    size_t       ldb;
};

static void pack_dense_b(const void *ctx, int b, int g, float *dst, int k0, int kc, int n0, int nc,
                         int nr) {
    const struct dense_b *s = ctx;
    (void)b;
    (void)g;
    pack_b_block(dst, s->B, s->ldb, false, k0, kc, n0, nc, nr);
}

void iseg_sgemm(iseg_engine_t e, int M, int N, int K, const float *A, int lda, const float *B,
                int ldb, float *C, int ldc, bool accumulate) {
    ISEG_ASSERT(e && M >= 0 && N >= 0 && K >= 0);
    ISEG_ASSERT(lda >= K && ldb >= N && ldc >= N);
    struct dense_b         s = {B, (size_t)ldb};
    struct iseg__gemm_desc d;
    memset(&d, 0, sizeof(d));
    d.M = M, d.N = N, d.K = K, d.n_b = 1, d.n_g = 1;
    d.A = A, d.lda = (size_t)lda;
    d.pack_b = pack_dense_b, d.pack_ctx = &s;
    d.C = C, d.ldc = (size_t)ldc;
    if (accumulate) d.C0 = C, d.ldc0 = (size_t)ldc;
    iseg__gemm_run(e, &d);
}

void iseg_sgemm_ref(int M, int N, int K, const float *A, int lda, const float *B, int ldb,
                    float *C, int ldc, bool accumulate) {
    for (int m = 0; m < M; m++)
        for (int n = 0; n < N; n++) {
            double s = 0.0;
            for (int k = 0; k < K; k++) s += (double)A[(size_t)m * lda + k] * B[(size_t)k * ldb + n];
            float *c = &C[(size_t)m * ldc + n];
            *c       = accumulate ? (float)((double)*c + s) : (float)s;
        }
}
