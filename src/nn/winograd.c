/* winograd.c - Winograd F(m x m, 3 x 3) convolution (Lavin & Gray) for stride-1, dilation-1,
 * ungrouped 3x3 convolutions: F(2,3) (4x4 input tiles, 16 positions) and F(4,3) (6x6 tiles,
 * 36 positions).
 *
 *   U = G g G^T    per (cout, cin), once at init, packed as 16 (36) SGEMM A operands
 *   V = B^T d B    per (cin, tile), on the fly, straight into SGEMM B panels
 *   M_xi = U_xi V_xi, one (cout x cin) . (cin x tiles) product per position xi
 *   y = A^T M A    per (cout, tile), fused with residual, bias and ReLU
 *
 * Work items are blocks of tiles (numbered across the whole batch, so that small RoI maps are
 * packed densely); one thread does a block from input transform to output. Every value is
 * computed by the same arithmetic whatever the block size and thread (the SGEMM kernel sums a
 * K block sequentially, blocks in order), so results are bit-identical for any thread count.
 * Padding is a gather mask (any pad, 0 included); partial tiles at the right and bottom read
 * zeros and write only their valid outputs. */
#include <string.h>

#include "nn/nn_impl.h"

#define MR     ISEG_GEMM_MR
#define KC     ISEG_GEMM_KC
#define MC_BLK 256 /* rows of U per cache block, as in gemm.c */
#define VL     8   /* tiles per transform group (one ymm) */
#define PANELS 8   /* NR-column panels of tiles per block at most */

struct iseg__wino {
    int    m, a;   /* output tile m x m, input tile a x a (a = m + 2) */
    int    cin, cout;
    size_t u_gs;   /* floats per position: iseg__gemm_packed_a_size(cout, cin) */
    float *u;      /* (a a) packed (cout x cin) matrices */
    float *tmp;    /* (a a cout cin) transform scratch kept by iseg__wino_update, or NULL */
};

/* ---- transforms: one definition for floats and for vectors -------------------------------- */

/* 1-d transforms with add/sub/scale operators; F(2,3): B^T (4 -> 4), A^T (4 -> 2); F(4,3):
 * B^T (6 -> 6), A^T (6 -> 4) (interpolation points 0, 1, -1, 2, -2, inf). */
#define BT2(ADD, SUB, MUL, d, r, s)                   \
    do {                                              \
        r[0 * (s)] = SUB(d[0 * (s)], d[2 * (s)]);     \
        r[1 * (s)] = ADD(d[1 * (s)], d[2 * (s)]);     \
        r[2 * (s)] = SUB(d[2 * (s)], d[1 * (s)]);     \
        r[3 * (s)] = SUB(d[1 * (s)], d[3 * (s)]);     \
    } while (0)
#define AT2(ADD, SUB, MUL, q, y, s, ys)                                 \
    do {                                                                \
        y[0 * (ys)] = ADD(ADD(q[0 * (s)], q[1 * (s)]), q[2 * (s)]);     \
        y[1 * (ys)] = SUB(SUB(q[1 * (s)], q[2 * (s)]), q[3 * (s)]);     \
    } while (0)
#define BT4(ADD, SUB, MUL, d, r, s)                                                       \
    do {                                                                                  \
        r[0 * (s)] = ADD(SUB(MUL(d[0 * (s)], 4.0f), MUL(d[2 * (s)], 5.0f)), d[4 * (s)]);  \
        r[1 * (s)] = SUB(ADD(d[3 * (s)], d[4 * (s)]), MUL(ADD(d[1 * (s)], d[2 * (s)]), 4.0f)); \
        r[2 * (s)] = ADD(SUB(d[4 * (s)], d[3 * (s)]), MUL(SUB(d[1 * (s)], d[2 * (s)]), 4.0f)); \
        r[3 * (s)] = ADD(SUB(d[4 * (s)], d[2 * (s)]), MUL(SUB(d[3 * (s)], d[1 * (s)]), 2.0f)); \
        r[4 * (s)] = SUB(SUB(d[4 * (s)], d[2 * (s)]), MUL(SUB(d[3 * (s)], d[1 * (s)]), 2.0f)); \
        r[5 * (s)] = ADD(SUB(MUL(d[1 * (s)], 4.0f), MUL(d[3 * (s)], 5.0f)), d[5 * (s)]);  \
    } while (0)
#define AT4(ADD, SUB, MUL, q, y, s, ys)                                        \
    do {                                                                       \
        y[0 * (ys)] = ADD(ADD(q[0 * (s)], ADD(q[1 * (s)], q[2 * (s)])),        \
                          ADD(q[3 * (s)], q[4 * (s)]));                        \
        y[1 * (ys)] = ADD(SUB(q[1 * (s)], q[2 * (s)]), MUL(SUB(q[3 * (s)], q[4 * (s)]), 2.0f)); \
        y[2 * (ys)] = ADD(ADD(q[1 * (s)], q[2 * (s)]), MUL(ADD(q[3 * (s)], q[4 * (s)]), 4.0f)); \
        y[3 * (ys)] = ADD(ADD(SUB(q[1 * (s)], q[2 * (s)]),                     \
                              MUL(SUB(q[3 * (s)], q[4 * (s)]), 8.0f)),         \
                          q[5 * (s)]);                                         \
    } while (0)

/* 2-d: columns then rows. d, v: a x a row-major; t: scratch a x a; y: m x m. */
#define IN_TF(T, ADD, SUB, MUL, a, d, v)                                               \
    do {                                                                               \
        T t_[36];                                                                      \
        if ((a) == 4) {                                                                \
            for (int j_ = 0; j_ < 4; j_++) BT2(ADD, SUB, MUL, (d + j_), (t_ + j_), 4); \
            for (int i_ = 0; i_ < 4; i_++)                                             \
                BT2(ADD, SUB, MUL, (t_ + 4 * i_), (v + 4 * i_), 1);                    \
        } else {                                                                       \
            for (int j_ = 0; j_ < 6; j_++) BT4(ADD, SUB, MUL, (d + j_), (t_ + j_), 6); \
            for (int i_ = 0; i_ < 6; i_++)                                             \
                BT4(ADD, SUB, MUL, (t_ + 6 * i_), (v + 6 * i_), 1);                    \
        }                                                                              \
    } while (0)
#define OUT_TF(T, ADD, SUB, MUL, a, q, y)                                                 \
    do {                                                                                  \
        T t_[24];                                                                         \
        if ((a) == 4) {                                                                   \
            for (int j_ = 0; j_ < 4; j_++) AT2(ADD, SUB, MUL, (q + j_), (t_ + j_), 4, 4); \
            for (int i_ = 0; i_ < 2; i_++)                                                \
                AT2(ADD, SUB, MUL, (t_ + 4 * i_), (y + 2 * i_), 1, 1);                    \
        } else {                                                                          \
            for (int j_ = 0; j_ < 6; j_++) AT4(ADD, SUB, MUL, (q + j_), (t_ + j_), 6, 6); \
            for (int i_ = 0; i_ < 4; i_++)                                                \
                AT4(ADD, SUB, MUL, (t_ + 6 * i_), (y + 4 * i_), 1, 1);                    \
        }                                                                                 \
    } while (0)

#define SADD(x, y)  ((x) + (y))
#define SSUB(x, y)  ((x) - (y))
#define SMUL(x, c)  ((x) * (c))

/* ---- weights ------------------------------------------------------------------------------ */

static const double G2[4][3] = {{1, 0, 0}, {0.5, 0.5, 0.5}, {0.5, -0.5, 0.5}, {0, 0, 1}};
static const double G4[6][3] = {{1.0 / 4, 0, 0},
                                {-1.0 / 6, -1.0 / 6, -1.0 / 6},
                                {-1.0 / 6, 1.0 / 6, -1.0 / 6},
                                {1.0 / 24, 1.0 / 12, 1.0 / 6},
                                {1.0 / 24, -1.0 / 12, 1.0 / 6},
                                {0, 0, 1}};

static void transform(iseg_engine_t e, struct iseg__wino *w, const float *weight, float *tmp);

enum iseg_status iseg__wino_init(struct iseg__wino **out, int m, const float *weight, int cin,
                                 int cout) {
    ISEG_ASSERT(m == 2 || m == 4);
    *out                 = NULL;
    struct iseg__wino *w = iseg__calloc(1, sizeof(*w));
    if (!w) return ISEG_STATUS_ENOMEM;
    w->m = m, w->a = m + 2, w->cin = cin, w->cout = cout;
    int a  = w->a;
    w->u_gs = iseg__gemm_packed_a_size(cout, cin);
    w->u    = iseg__malloc_array(w->u_gs * (size_t)(a * a), sizeof(float));
    size_t n   = (size_t)cout * cin;
    float *tmp = iseg__malloc_array(n * (size_t)(a * a), sizeof(float)); /* [xi][co][ci] */
    if (!w->u || !tmp) {
        iseg__free(tmp);
        iseg__wino_free(w);
        return ISEG_STATUS_ENOMEM;
    }
    transform(NULL, w, weight, tmp);
    iseg__free(tmp);
    *out = w;
    return ISEG_STATUS_OK;
}

enum iseg_status iseg__wino_update(iseg_engine_t e, struct iseg__wino *w, const float *weight) {
    if (!w->tmp) {
        w->tmp = iseg__malloc_array((size_t)w->cout * w->cin * (size_t)(w->a * w->a),
                                    sizeof(float));
        if (!w->tmp) return ISEG_STATUS_ENOMEM;
    }
    transform(e, w, weight, w->tmp);
    return ISEG_STATUS_OK;
}

/* U = G g G^T of every (cout, cin) 3x3 kernel, packed per position; tmp (a a cout cin).
 * Tasks: blocks of kernels, then the a a positions' packing. */
#define WT_BLOCK 1024
struct wt_ctx {
    struct iseg__wino *w;
    const float       *weight;
    float             *tmp;
};

static void transform_task(void *vctx, size_t item, int ith) {
    const struct wt_ctx *c = vctx;
    (void)ith;
    const struct iseg__wino *w = c->w;
    const int a = w->a;
    size_t    n = (size_t)w->cout * w->cin;
    size_t    o0 = item * WT_BLOCK, o1 = o0 + WT_BLOCK < n ? o0 + WT_BLOCK : n;
    const double(*G)[3] = w->m == 2 ? G2 : G4;
    for (size_t oc = o0; oc < o1; oc++) {
        const float *g = c->weight + oc * 9;
        double       t[6][3]; /* G g */
        for (int i = 0; i < a; i++)
            for (int l = 0; l < 3; l++)
                t[i][l] = G[i][0] * g[l] + G[i][1] * g[3 + l] + G[i][2] * g[6 + l];
        for (int i = 0; i < a; i++)
            for (int j = 0; j < a; j++)
                c->tmp[(size_t)(i * a + j) * n + oc] =
                    (float)(t[i][0] * G[j][0] + t[i][1] * G[j][1] + t[i][2] * G[j][2]);
    }
}

static void pack_task(void *vctx, size_t xi, int ith) {
    const struct wt_ctx *c = vctx;
    (void)ith;
    const struct iseg__wino *w = c->w;
    size_t n = (size_t)w->cout * w->cin;
    iseg__gemm_pack_a(w->u + xi * w->u_gs, c->tmp + xi * n, (size_t)w->cin, false, w->cout,
                      w->cin);
}

static void transform(iseg_engine_t e, struct iseg__wino *w, const float *weight, float *tmp) {
    struct wt_ctx c = {w, weight, tmp};
    size_t n = (size_t)w->cout * w->cin, nb = (n + WT_BLOCK - 1) / WT_BLOCK;
    size_t np = (size_t)(w->a * w->a);
    if (e) {
        iseg__engine_run(e, nb, transform_task, &c);
        iseg__engine_run(e, np, pack_task, &c);
    } else {
        for (size_t i = 0; i < nb; i++) transform_task(&c, i, 0);
        for (size_t i = 0; i < np; i++) pack_task(&c, i, 0);
    }
}

void iseg__wino_free(struct iseg__wino *w) {
    if (!w) return;
    iseg__free(w->u);
    iseg__free(w->tmp);
    iseg__free(w);
}

int iseg__wino_m(const struct iseg__wino *w) { return w->m; }

/* ---- forward ------------------------------------------------------------------------------ */

struct wctx {
    const struct iseg__wino        *w;
    iseg_engine_t                   e;
    const struct iseg__gemm_kernel *k;
    const float                    *x, *bias, *res;
    float                          *y;
    int  h, wd, oh, ow, pad_h, pad_w, ntx, nty;
    long tpi, T;     /* tiles per image, in all */
    int  nt, nr, np; /* tiles per block (np panels of nr) */
    int  mpad;
    bool relu, avx2;
    size_t v_floats, m_floats; /* per-thread scratch: V, M, then a table per tile */
    size_t vps, mps;           /* floats between positions in V and M */
};

/* where tile t's input window starts (offset into x, channel 0) and which of its a rows and a
 * columns lie inside the image (bit i); tiles past the end: no valid taps */
static void tile_in(const struct wctx *s, long t, int a, int m, long *base, unsigned *rb,
                    unsigned *cb) {
    *base = 0, *rb = 0, *cb = 0;
    if (t >= s->T) return;
    long img = t / s->tpi, r = t % s->tpi;
    int  iy0 = (int)(r / s->ntx) * m - s->pad_h, ix0 = (int)(r % s->ntx) * m - s->pad_w;
    *base = img * (long)s->w->cin * s->h * s->wd + (long)iy0 * s->wd + ix0;
    for (int i = 0; i < 8; i++) { /* columns a.., for the plain 8-float loads of F(4,3) */
        if (i < a && iy0 + i >= 0 && iy0 + i < s->h) *rb |= 1u << i;
        if (ix0 + i >= 0 && ix0 + i < s->wd) *cb |= 1u << i;
    }
}

/* where tile t's outputs start in y (channel 0) and how many rows and columns are valid */
static void tile_out(const struct wctx *s, long t, int m, long *base, int *ny, int *nx) {
    long img = t / s->tpi, r = t % s->tpi;
    int  oy0 = (int)(r / s->ntx) * m, ox0 = (int)(r % s->ntx) * m;
    *base = img * (long)s->w->cout * s->oh * s->ow + (long)oy0 * s->ow + ox0;
    *ny   = s->oh - oy0 < m ? s->oh - oy0 : m;
    *nx   = s->ow - ox0 < m ? s->ow - ox0 : m;
}

/* V panel row of position xi, channel ci, block-local tile tl (a multiple of VL) */
static inline float *v_at(const struct wctx *s, float *V, int xi, int ci, int tl) {
    return V + xi * s->vps + ((size_t)(tl / s->nr) * s->w->cin + ci) * s->nr + tl % s->nr;
}

static inline float epi(const struct wctx *s, float v, long o, float b) {
    if (s->res) v = s->res[o] + v;
    v = v + b;
    return s->relu && !(v > 0.0f) ? 0.0f : v;
}

static void in_group_c(const struct wctx *s, float *V, long t0, int tl) {
    int a = s->w->a, m = s->w->m, cin = s->w->cin;
    size_t hw = (size_t)s->h * s->wd;
    for (int l = 0; l < VL; l++) {
        long     base;
        unsigned rb, cb;
        tile_in(s, t0 + l, a, m, &base, &rb, &cb);
        for (int ci = 0; ci < cin; ci++) {
            float d[36], v[36];
            for (int i = 0; i < a; i++)
                for (int j = 0; j < a; j++)
                    d[i * a + j] = (rb >> i & cb >> j & 1u)
                                       ? s->x[base + (long)(ci * hw) + (long)i * s->wd + j]
                                       : 0.0f;
            IN_TF(float, SADD, SSUB, SMUL, a, d, v);
            for (int xi = 0; xi < a * a; xi++) v_at(s, V, xi, ci, tl)[l] = v[xi];
        }
    }
}

static void out_group_c(const struct wctx *s, const float *Mb, long t0, int tl) {
    int    a = s->w->a, m = s->w->m, cout = s->w->cout;
    size_t ohw = (size_t)s->oh * s->ow, ms = s->mps;
    for (int l = 0; l < VL && t0 + l < s->T; l++) {
        long base;
        int  ny, nx;
        tile_out(s, t0 + l, m, &base, &ny, &nx);
        for (int co = 0; co < cout; co++) {
            float q[36], yv[16], b = s->bias ? s->bias[co] : 0.0f;
            for (int xi = 0; xi < a * a; xi++) q[xi] = Mb[xi * ms + (size_t)co * s->nt + tl + l];
            OUT_TF(float, SADD, SSUB, SMUL, a, q, yv);
            for (int i = 0; i < ny; i++)
                for (int j = 0; j < nx; j++) {
                    long o = base + (long)(co * ohw) + (long)i * s->ow + j;
                    s->y[o] = epi(s, yv[i * m + j], o, b);
                }
        }
    }
}

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

#include "nn/avx2_transpose.h"

#define TGT __attribute__((target("avx2,fma")))
#define VADD(x, y) _mm256_add_ps(x, y)
#define VSUB(x, y) _mm256_sub_ps(x, y)
#define VMUL(x, c) _mm256_mul_ps(x, _mm256_set1_ps(c))

/* one tile's input window: offset of its top-left tap in x (channel 0), a mask per row (all
 * ones where the row lies inside the image) and one over the columns (0..a-1 inside the image) */
struct tin {
    long    off;
    int32_t rmask[6];
    int32_t cmask[8];
    bool    full; /* every tap inside the image: plain loads */
};

/* 8 rows of 4 floats (xmm) -> 4 vectors of 8 lanes: d[j][l] = row l, column j */
TGT static inline void tr8x4(const __m128 *r, __m256 *d) {
    __m256 a0 = _mm256_insertf128_ps(_mm256_castps128_ps256(r[0]), r[4], 1);
    __m256 a1 = _mm256_insertf128_ps(_mm256_castps128_ps256(r[1]), r[5], 1);
    __m256 a2 = _mm256_insertf128_ps(_mm256_castps128_ps256(r[2]), r[6], 1);
    __m256 a3 = _mm256_insertf128_ps(_mm256_castps128_ps256(r[3]), r[7], 1);
    __m256 t0 = _mm256_unpacklo_ps(a0, a1), t1 = _mm256_unpackhi_ps(a0, a1);
    __m256 t2 = _mm256_unpacklo_ps(a2, a3), t3 = _mm256_unpackhi_ps(a2, a3);
    d[0] = _mm256_shuffle_ps(t0, t2, 0x44);
    d[1] = _mm256_shuffle_ps(t0, t2, 0xEE);
    d[2] = _mm256_shuffle_ps(t1, t3, 0x44);
    d[3] = _mm256_shuffle_ps(t1, t3, 0xEE);
}

/* The block's input transform, channel by channel (each channel's rows stream through L1):
 * per group of VL tiles and row, one masked load per tile (padding and tiles past the end read
 * 0), a transpose to tiles-in-lanes, the transform on vectors, one store per position into the
 * panels. */
TGT static void in_block_avx2(const struct wctx *s, float *V, struct tin *tb, long t0, int ntp) {
    int    a = s->w->a, m = s->w->m, cin = s->w->cin;
    size_t hw = (size_t)s->h * s->wd;
    for (int tl = 0; tl < ntp; tl++) {
        unsigned rb, cb;
        tile_in(s, t0 + tl, a, m, &tb[tl].off, &rb, &cb);
        for (int i = 0; i < 6; i++) tb[tl].rmask[i] = (rb >> i & 1u) ? -1 : 0;
        for (int j = 0; j < 8; j++) tb[tl].cmask[j] = j < a && (cb >> j & 1u) ? -1 : 0;
        unsigned need = a == 4 ? 0xFu : 0xFFu; /* the columns a load reads */
        tb[tl].full   = rb == (1u << a) - 1 && (cb & need) == need;
    }
    size_t ps = s->vps;
    for (int ci = 0; ci < cin; ci++) {
        const float *xc = s->x + ci * hw;
        for (int tl = 0; tl < ntp; tl += VL) {
            const struct tin *tg = tb + tl;
            __m256 d[36], v[36];
            for (int i = 0; i < a; i++) {
                const float *row = xc + (long)i * s->wd;
                if (a == 4) {
                    __m128 r[VL];
                    for (int l = 0; l < VL; l++) {
                        if (tg[l].full) {
                            r[l] = _mm_loadu_ps(row + tg[l].off);
                            continue;
                        }
                        __m128i mk = _mm_and_si128(_mm_loadu_si128((const __m128i *)tg[l].cmask),
                                                   _mm_set1_epi32(tg[l].rmask[i]));
                        r[l] = _mm_maskload_ps(row + tg[l].off, mk);
                    }
                    tr8x4(r, d + i * 4);
                } else {
                    __m256 r[VL];
                    for (int l = 0; l < VL; l++) {
                        if (tg[l].full) { /* columns 6, 7: the next ones of the row, unused */
                            r[l] = _mm256_loadu_ps(row + tg[l].off);
                            continue;
                        }
                        __m256i mk = _mm256_and_si256(
                            _mm256_loadu_si256((const __m256i *)tg[l].cmask),
                            _mm256_set1_epi32(tg[l].rmask[i]));
                        r[l] = _mm256_maskload_ps(row + tg[l].off, mk);
                    }
                    /* the first 6 columns (a = 6 input rows of the tile) */
                    iseg__transpose8_avx2(r);
                    for (int k = 0; k < 6; k++) d[i * 6 + k] = r[k];
                }
            }
            IN_TF(__m256, VADD, VSUB, VMUL, a, d, v);
            float *vd = v_at(s, V, 0, ci, tl);
            for (int xi = 0; xi < a * a; xi++) _mm256_storeu_ps(vd + xi * ps, v[xi]);
        }
    }
}

/* y row i of VL tiles side by side (m = 2: 16 columns, m = 4: 32) from the m per-column
 * vectors: interleave so that tile l's column j lands at l m + j */
TGT static void out_row_store(const struct wctx *s, const __m256 *yr, int m, long o, __m256 b) {
    __m256 r[4];
    if (m == 2) {
        __m256 lo = _mm256_unpacklo_ps(yr[0], yr[1]), hi = _mm256_unpackhi_ps(yr[0], yr[1]);
        r[0] = _mm256_permute2f128_ps(lo, hi, 0x20);
        r[1] = _mm256_permute2f128_ps(lo, hi, 0x31);
    } else {
        __m256 t0 = _mm256_unpacklo_ps(yr[0], yr[1]), t1 = _mm256_unpacklo_ps(yr[2], yr[3]);
        __m256 t2 = _mm256_unpackhi_ps(yr[0], yr[1]), t3 = _mm256_unpackhi_ps(yr[2], yr[3]);
        __m256 u0 = _mm256_shuffle_ps(t0, t1, 0x44), u1 = _mm256_shuffle_ps(t0, t1, 0xEE);
        __m256 u2 = _mm256_shuffle_ps(t2, t3, 0x44), u3 = _mm256_shuffle_ps(t2, t3, 0xEE);
        r[0] = _mm256_permute2f128_ps(u0, u1, 0x20);
        r[1] = _mm256_permute2f128_ps(u2, u3, 0x20);
        r[2] = _mm256_permute2f128_ps(u0, u1, 0x31);
        r[3] = _mm256_permute2f128_ps(u2, u3, 0x31);
    }
    __m256 zero = _mm256_setzero_ps();
    for (int k = 0; k < m; k++) {
        float *p = s->y + o + 8 * k;
        __m256 v = r[k];
        if (s->res) v = _mm256_add_ps(_mm256_loadu_ps(s->res + o + 8 * k), v);
        v = _mm256_add_ps(v, b);
        if (s->relu) v = _mm256_max_ps(v, zero);
        _mm256_storeu_ps(p, v);
    }
}

/* where tile t's outputs go */
struct tout {
    long off;
    int  ny, nx;
};

/* The block's output transform, output channel by channel (M streams along the tiles) */
TGT static void out_block_avx2(const struct wctx *s, const float *Mb, struct tout *tb, long t0,
                               int tc) {
    int    a = s->w->a, m = s->w->m, cout = s->w->cout;
    size_t ohw = (size_t)s->oh * s->ow, ms = s->mps;
    for (int tl = 0; tl < tc; tl++) tile_out(s, t0 + tl, m, &tb[tl].off, &tb[tl].ny, &tb[tl].nx);
    for (int co = 0; co < cout; co++) {
        float        b  = s->bias ? s->bias[co] : 0.0f;
        __m256       bv = _mm256_set1_ps(b);
        const float *mc = Mb + (size_t)co * s->nt;
        long         oc = (long)(co * ohw);
        for (int tl = 0; tl < tc; tl += VL) {
            const struct tout *tg = tb + tl;
            int    nv = tc - tl < VL ? tc - tl : VL;
            __m256 q[36], yv[16];
            for (int xi = 0; xi < a * a; xi++) q[xi] = _mm256_loadu_ps(mc + xi * ms + tl);
            OUT_TF(__m256, VADD, VSUB, VMUL, a, q, yv);
            /* fast: VL whole tiles side by side in one tile row */
            if (nv == VL && tg[VL - 1].off == tg[0].off + (VL - 1) * m &&
                (t0 + tl) % s->tpi % s->ntx + VL <= s->ntx && tg[0].ny == m && tg[VL - 1].nx == m) {
                for (int i = 0; i < m; i++)
                    out_row_store(s, yv + i * m, m, tg[0].off + oc + (long)i * s->ow, bv);
                continue;
            }
            float tmp[16][VL];
            for (int k = 0; k < m * m; k++) _mm256_storeu_ps(tmp[k], yv[k]);
            for (int l = 0; l < nv; l++)
                for (int i = 0; i < tg[l].ny; i++)
                    for (int j = 0; j < tg[l].nx; j++) {
                        long o  = tg[l].off + oc + (long)i * s->ow + j;
                        s->y[o] = epi(s, tmp[i * m + j][l], o, b);
                    }
        }
    }
}
#endif

static void wino_task(void *vctx, size_t item, int ith) {
    const struct wctx       *s = vctx;
    const struct iseg__wino *w = s->w;
    int    a2 = w->a * w->a, nr = s->nr, nt = s->nt, cin = w->cin, mpad = s->mpad;
    long   t0 = (long)item * nt;
    int    tc  = s->T - t0 < nt ? (int)(s->T - t0) : nt;
    int    ntp = iseg__ceil_div(tc, nr) * nr; /* columns in use (tiles past the end are 0) */
    float *V   = iseg__engine_scratch(s->e, ith), *Mb = V + s->v_floats;
#if defined(__x86_64__) && defined(__GNUC__)
    if (s->avx2)
        in_block_avx2(s, V, (struct tin *)(void *)(Mb + s->m_floats), t0, ntp);
    else
#endif
        for (int tl = 0; tl < ntp; tl += VL) in_group_c(s, V, t0 + tl, tl);
    size_t               ms   = s->mps;
    iseg__gemm_kernel_fn kern = s->k->fn;
    for (int xi = 0; xi < a2; xi++) {
        const float *U  = w->u + (size_t)xi * w->u_gs;
        const float *Vx = V + xi * s->vps;
        float       *Mx = Mb + (size_t)xi * ms;
        for (int k0 = 0; k0 < cin; k0 += KC) {
            int kc = cin - k0 < KC ? cin - k0 : KC;
            for (int mb = 0; mb < mpad; mb += MC_BLK) {
                int mbc = mpad - mb < MC_BLK ? mpad - mb : MC_BLK;
                for (int jr = 0; jr < ntp; jr += nr) {
                    const float *bp = Vx + ((size_t)(jr / nr) * cin + k0) * nr;
                    for (int ir = mb; ir < mb + mbc; ir += MR) {
                        float *c = Mx + (size_t)ir * nt + jr;
                        kern(kc, U + (size_t)k0 * mpad + (size_t)ir * kc, bp, c, (size_t)nt,
                             k0 ? c : NULL, (size_t)nt, NULL);
                    }
                }
            }
        }
    }
#if defined(__x86_64__) && defined(__GNUC__)
    if (s->avx2)
        out_block_avx2(s, Mb, (struct tout *)(void *)(Mb + s->m_floats), t0, tc);
    else
#endif
        for (int tl = 0; tl < tc; tl += VL) out_group_c(s, Mb, t0 + tl, tl);
}

static int g_wino_panels; /* 0: PANELS (benchmarks may tune it) */
void iseg__wino_set_panels(int p) { g_wino_panels = p; }

void iseg__wino_forward(iseg_engine_t e, const struct iseg__wino *w,
                        const struct iseg_conv2d_desc *d, float *y, const float *x, int B, int h,
                        int wd, const float *bias, const float *residual, bool relu) {
    ISEG_ASSERT(d->kh == 3 && d->kw == 3 && d->stride_h == 1 && d->stride_w == 1 &&
                d->dil_h == 1 && d->dil_w == 1 && d->groups == 1 && d->cin == w->cin &&
                d->cout == w->cout);
    struct wctx s;
    memset(&s, 0, sizeof(s));
    s.w = w, s.e = e, s.k = iseg__gemm_kernel();
    s.x = x, s.y = y, s.bias = bias, s.res = residual, s.relu = relu;
    s.h = h, s.wd = wd, s.pad_h = d->pad_h, s.pad_w = d->pad_w;
    iseg_conv2d_out_hw(d, h, wd, &s.oh, &s.ow);
    int m = w->m, a2 = w->a * w->a;
    s.ntx = iseg__ceil_div(s.ow, m), s.nty = iseg__ceil_div(s.oh, m);
    s.tpi = (long)s.ntx * s.nty, s.T = (long)B * s.tpi;
    s.nr = s.k->nr, s.mpad = iseg__ceil_div(w->cout, MR) * MR;
    /* blocks of up to PANELS panels, as many as a multiple of the thread count (any partition
     * gives the same bits; this one only balances the load) */
    int  nth = e->nth, pmax = g_wino_panels > 0 ? g_wino_panels : PANELS;
    long P = (s.T + s.nr - 1) / s.nr;
    long nb = (P + (long)nth * pmax - 1) / ((long)nth * pmax) * nth;
    if (nb > P) nb = P;
    s.np = (int)((P + nb - 1) / nb), s.nt = s.np * s.nr;
    /* positions a few cache lines apart mod 4 KiB, so that the a^2 streams of the transforms
     * do not all fall into one L1 set */
    s.vps      = (size_t)s.np * w->cin * s.nr + 16;
    s.mps      = (size_t)s.mpad * s.nt + 16;
    s.v_floats = (size_t)a2 * s.vps;
    s.m_floats = (size_t)a2 * s.mps;
    size_t t_floats = (size_t)s.nt * 24; /* >= sizeof(struct tin), sizeof(struct tout) */
#if defined(__x86_64__) && defined(__GNUC__)
    __builtin_cpu_init();
    s.avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#endif
    if (!iseg__engine_reserve(e, (s.v_floats + s.m_floats + t_floats) * sizeof(float))) return;
    size_t n_items = (size_t)((s.T + s.nt - 1) / s.nt);
    iseg__engine_run(e, n_items, wino_task, &s);
}
