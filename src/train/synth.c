/* synth.c - synthetic nuclei microscopy images with exact instance masks, and a writer for
 * small COCO datasets of them; see include/iseg/synth.h for the model. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "core/core_impl.h"
#include "iseg/synth.h"

#define PI 3.14159265358979323846

#define N_HARM 3          /* boundary harmonics 2, 3, 4 */
#define HARM_AMP 0.06     /* largest relative amplitude of each harmonic */
#define Q_MIN 0.6         /* smallest axis ratio b / a */
#define N_SPOT_MAX 3      /* nucleoli or chromatin clumps per nucleus */
#define PLACE_TRIES 50    /* positions tried per nucleus before it is skipped */
#define MAX_SIDE 16384
#define MAX_NUCLEI 10000
#define MAX_IMAGES 10000

static const char *const STYLE_NAMES[] = {"fluorescence", "brightfield"};
_Static_assert(ISEG_SYNTH_STYLE_COUNT == sizeof(STYLE_NAMES) / sizeof(STYLE_NAMES[0]),
               "one name per style");

const char *iseg_synth_style_name(enum iseg_synth_style s) {
    return (unsigned)s < ISEG_SYNTH_STYLE_COUNT ? STYLE_NAMES[s] : "?";
}

struct iseg_synth_params iseg_synth_default_params(void) {
    struct iseg_synth_params p = {
        .width      = 256,
        .height     = 256,
        .n_min      = 15,
        .n_max      = 40,
        .radius_min = 5.0,
        .radius_max = 14.0,
        .style      = ISEG_SYNTH_STYLE_FLUORESCENCE,
        .overlap    = 0.05,
        .cluster    = 0.3,
        .noise      = 0.02,
        .blur       = 0.8,
    };
    return p;
}

/* false for NaN */
static bool in_range(double x, double lo, double hi) { return x >= lo && x <= hi; }

enum iseg_status iseg_synth_params_check(const struct iseg_synth_params *p, char *err,
                                         size_t errlen) {
    ISEG_ASSERT(p);
    const char *what = NULL;
    char        buf[160];
    uint32_t    side = p->width < p->height ? p->width : p->height;
    if (p->width < 8 || p->height < 8 || p->width > MAX_SIDE || p->height > MAX_SIDE) {
        snprintf(buf, sizeof(buf), "size %ux%u is not within 8..%d per side", p->width,
                 p->height, MAX_SIDE);
        what = buf;
    } else if (p->n_min > p->n_max || p->n_max > MAX_NUCLEI) {
        snprintf(buf, sizeof(buf), "nuclei %u..%u: need n_min <= n_max <= %d", p->n_min,
                 p->n_max, MAX_NUCLEI);
        what = buf;
    } else if (!in_range(p->radius_min, 1.0, p->radius_max) ||
               !in_range(p->radius_max, 1.0, 0.5 * side)) {
        snprintf(buf, sizeof(buf), "radius %g..%g: need 1 <= min <= max <= %g", p->radius_min,
                 p->radius_max, 0.5 * side);
        what = buf;
    } else if ((unsigned)p->style >= ISEG_SYNTH_STYLE_COUNT) {
        what = "unknown style";
    } else if (!in_range(p->overlap, 0, 1) || !in_range(p->cluster, 0, 1) ||
               !in_range(p->noise, 0, 1)) {
        what = "overlap, cluster and noise must be within 0..1";
    } else if (!in_range(p->blur, 0, 10)) {
        what = "blur must be within 0..10";
    }
    if (what) {
        if (errlen) snprintf(err, errlen, "synth: %s", what);
        return ISEG_STATUS_EINVAL;
    }
    if ((uint64_t)p->width * p->height > ISEG_IMAGE_MAX_PIXELS) {
        if (errlen) snprintf(err, errlen, "synth: size %ux%u is too large", p->width, p->height);
        return ISEG_STATUS_ELIMIT;
    }
    return ISEG_STATUS_OK;
}

/* ---- random helpers ---- */

static double unif(struct iseg_rng *r, double lo, double hi) {
    return lo + (hi - lo) * iseg_rng_uniform(r);
}

/* standard normal by Box-Muller; the second value of each pair is kept for the next call */
struct gauss {
    bool   has;
    double next;
};

static double gauss_next(struct gauss *g, struct iseg_rng *r) {
    if (g->has) {
        g->has = false;
        return g->next;
    }
    double u1 = 1.0 - iseg_rng_uniform(r); /* (0, 1]: log is finite */
    double u2 = iseg_rng_uniform(r);
    double m  = sqrt(-2.0 * log(u1));
    g->next   = m * sin(2.0 * PI * u2);
    g->has    = true;
    return m * cos(2.0 * PI * u2);
}

static float smoothstep(float e0, float e1, float x) {
    float t = (x - e0) / (e1 - e0);
    t       = t < 0 ? 0 : t > 1 ? 1 : t;
    return t * t * (3 - 2 * t);
}

/* ---- value noise: random values on a grid of `cell` px, smoothly interpolated ---- */

struct vnoise {
    uint32_t gw, gh;
    float    cell;
    float   *v; /* (gh, gw) in [-1, 1] */
};

static bool vnoise_init(struct vnoise *n, uint32_t w, uint32_t h, float cell,
                        struct iseg_rng *rng) {
    n->gw   = (uint32_t)((float)w / cell) + 2;
    n->gh   = (uint32_t)((float)h / cell) + 2;
    n->cell = cell;
    n->v    = iseg__malloc_array((size_t)n->gw * n->gh, sizeof(*n->v));
    if (!n->v) return false;
    for (size_t i = 0; i < (size_t)n->gw * n->gh; i++)
        n->v[i] = (float)(2.0 * iseg_rng_uniform(rng) - 1.0);
    return true;
}

/* x, y >= 0 and inside the image the grid was made for */
static float vnoise_at(const struct vnoise *n, float x, float y) {
    float    gx = x / n->cell, gy = y / n->cell;
    uint32_t ix = (uint32_t)gx, iy = (uint32_t)gy;
    if (ix > n->gw - 2) ix = n->gw - 2;
    if (iy > n->gh - 2) iy = n->gh - 2;
    float        sx = smoothstep(0, 1, gx - (float)ix), sy = smoothstep(0, 1, gy - (float)iy);
    const float *r0 = n->v + (size_t)iy * n->gw + ix, *r1 = r0 + n->gw;
    float        a = r0[0] + sx * (r0[1] - r0[0]), b = r1[0] + sx * (r1[1] - r1[0]);
    return a + sy * (b - a);
}

/* ---- nuclei ---- */

struct nucleus {
    double   cx, cy;            /* centre, px */
    double   a, b;              /* semi-axes */
    double   ct, st;            /* cos, sin of the orientation */
    double   amp[N_HARM], ph[N_HARM];
    double   r, rmax;           /* mean radius; bound on the boundary radius */
    float    bright;            /* signal (fluorescence) or stain density (brightfield) */
    int      n_spot;
    float    spot_u[N_SPOT_MAX], spot_v[N_SPOT_MAX], spot_r[N_SPOT_MAX]; /* nucleus frame */
    uint32_t x0, y0, x1, y1;    /* raster bbox when placed (inclusive); owned pixels inside */
    uint32_t area;              /* pixels owned now */
};

/* one pixel of a rasterised candidate */
struct cpix {
    uint32_t idx;  /* y * W + x */
    float    rho;  /* distance from the centre / boundary radius, 0..1 */
    float    u, v; /* position in the nucleus frame */
};

static void draw_shape(struct nucleus *nu, const struct iseg_synth_params *p,
                       struct iseg_rng *rng) {
    nu->r    = unif(rng, p->radius_min, p->radius_max);
    double q = unif(rng, Q_MIN, 1.0), th = unif(rng, 0, PI);
    nu->a    = nu->r / sqrt(q);
    nu->b    = nu->r * sqrt(q);
    nu->ct   = cos(th);
    nu->st   = sin(th);
    double s = 0;
    for (int j = 0; j < N_HARM; j++) {
        nu->amp[j] = unif(rng, 0, HARM_AMP);
        nu->ph[j]  = unif(rng, 0, 2 * PI);
        s += nu->amp[j];
    }
    nu->rmax = nu->a * (1 + s);
    /* varying brightness: a few dim nuclei, most bright */
    nu->bright = (float)unif(rng, 0.45, 1.0);
    nu->n_spot = (int)iseg_rng_below(rng, N_SPOT_MAX + 1);
    for (int k = 0; k < nu->n_spot; k++) {
        double ang = unif(rng, 0, 2 * PI), d = unif(rng, 0, 0.55);
        nu->spot_u[k] = (float)(d * nu->a * cos(ang));
        nu->spot_v[k] = (float)(d * nu->b * sin(ang));
        nu->spot_r[k] = (float)(nu->r * unif(rng, 0.12, 0.25));
    }
}

/* boundary radius at angle phi of the nucleus frame: ellipse times the harmonic wobble */
static double boundary(const struct nucleus *nu, double phi) {
    double c = nu->b * cos(phi), s = nu->a * sin(phi);
    double re = nu->a * nu->b / sqrt(c * c + s * s), wob = 1;
    for (int j = 0; j < N_HARM; j++) wob += nu->amp[j] * cos((j + 2) * phi + nu->ph[j]);
    return re * wob;
}

/* Pixels of nu inside a W x H image, into px (room for the bbox); returns their number. */
static size_t rasterise(struct cpix *px, struct nucleus *nu, uint32_t W, uint32_t H) {
    double fx0 = floor(nu->cx - nu->rmax), fy0 = floor(nu->cy - nu->rmax);
    double fx1 = ceil(nu->cx + nu->rmax), fy1 = ceil(nu->cy + nu->rmax);
    nu->x0     = fx0 < 0 ? 0 : (uint32_t)fx0;
    nu->y0     = fy0 < 0 ? 0 : (uint32_t)fy0;
    nu->x1     = fx1 > W - 1 ? W - 1 : (uint32_t)fx1;
    nu->y1     = fy1 > H - 1 ? H - 1 : (uint32_t)fy1;
    size_t n   = 0;
    for (uint32_t y = nu->y0; y <= nu->y1; y++) {
        for (uint32_t x = nu->x0; x <= nu->x1; x++) {
            double dx = x + 0.5 - nu->cx, dy = y + 0.5 - nu->cy;
            double u = dx * nu->ct + dy * nu->st, v = -dx * nu->st + dy * nu->ct;
            double d = sqrt(u * u + v * v);
            if (d > nu->rmax) continue;
            double rb = boundary(nu, atan2(v, u));
            if (d > rb) continue;
            px[n].idx = y * W + x;
            px[n].rho = (float)(d / rb);
            px[n].u   = (float)u;
            px[n].v   = (float)v;
            n++;
        }
    }
    return n;
}

/* Signal of a nucleus pixel: brightness times chromatin texture, a denser rim and spots
 * (darker nucleoli in fluorescence, denser clumps in brightfield). */
static float nucleus_value(const struct nucleus *nu, const struct cpix *c, uint32_t W,
                           const struct vnoise *fine, const struct vnoise *finer,
                           bool fluorescence) {
    float x = (float)(c->idx % W), y = (float)(c->idx / W);
    float t = 0.6f * vnoise_at(fine, x, y) + 0.4f * vnoise_at(finer, x, y);
    float v = 0.8f + 0.28f * t + 0.2f * smoothstep(0.6f, 1.0f, c->rho);
    for (int k = 0; k < nu->n_spot; k++) {
        float du = c->u - nu->spot_u[k], dv = c->v - nu->spot_v[k], sr = nu->spot_r[k];
        float g  = expf(-(du * du + dv * dv) / (2 * sr * sr));
        v += (fluorescence ? -0.4f : 0.35f) * g;
    }
    v *= nu->bright;
    return v < 0 ? 0 : v;
}

/* ---- masks from the label image ---- */

/* Canonical RLE of the pixels labelled id (column-major, as iseg_rle_encode), scanning only
 * the bbox that holds them. */
static enum iseg_status mask_from_labels(struct iseg_rle *out, const int32_t *lab, uint32_t W,
                                         uint32_t H, int32_t id, const struct nucleus *nu) {
    uint32_t bw = nu->x1 - nu->x0 + 1, bh = nu->y1 - nu->y0 + 1;
    /* at most ceil(bh / 2) runs per column, two counts each, and the final zeros */
    uint32_t *c = iseg__malloc_array((size_t)bw * (bh + 1) + 1, sizeof(*c));
    if (!c) return ISEG_STATUS_ENOMEM;
    size_t   m   = 0;
    uint64_t pos = 0, total = (uint64_t)W * H; /* pos: end of the last run of ones */
    for (uint32_t x = nu->x0; x <= nu->x1; x++) {
        for (uint32_t y = nu->y0; y <= nu->y1; y++) {
            if (lab[(size_t)y * W + x] != id) continue;
            uint32_t y_end = y;
            while (y_end + 1 <= nu->y1 && lab[(size_t)(y_end + 1) * W + x] == id) y_end++;
            uint64_t start = (uint64_t)x * H + y, len = y_end - y + 1;
            /* a run ending at the last row continues at row 0 of the next column */
            if (m > 0 && start == pos) {
                c[m - 1] += (uint32_t)len;
            } else {
                c[m++] = (uint32_t)(start - pos);
                c[m++] = (uint32_t)len;
            }
            pos = start + len;
            y   = y_end;
        }
    }
    if (pos < total) c[m++] = (uint32_t)(total - pos);
    uint32_t *shrunk = iseg__realloc_array(c, m, sizeof(*c));
    out->h           = H;
    out->w           = W;
    out->m           = m;
    out->cnts        = shrunk ? shrunk : c;
    return ISEG_STATUS_OK;
}

/* ---- image formation ---- */

/* separable Gaussian blur of one (H, W) plane in place; tmp holds W * H floats */
static void blur_plane(float *a, float *tmp, uint32_t W, uint32_t H, const float *k, int rad) {
    for (uint32_t y = 0; y < H; y++) {
        const float *row = a + (size_t)y * W;
        for (uint32_t x = 0; x < W; x++) {
            float s = 0;
            for (int d = -rad; d <= rad; d++) {
                int64_t xx = (int64_t)x + d;
                xx         = xx < 0 ? 0 : xx >= W ? W - 1 : xx;
                s += k[d + rad] * row[xx];
            }
            tmp[(size_t)y * W + x] = s;
        }
    }
    for (uint32_t y = 0; y < H; y++) {
        for (uint32_t x = 0; x < W; x++) {
            float s = 0;
            for (int d = -rad; d <= rad; d++) {
                int64_t yy = (int64_t)y + d;
                yy         = yy < 0 ? 0 : yy >= H ? H - 1 : yy;
                s += k[d + rad] * tmp[(size_t)yy * W + x];
            }
            a[(size_t)y * W + x] = s;
        }
    }
}

static uint8_t to_u8(double v) {
    v = floor(v * 255.0 + 0.5);
    return (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
}

/* Turn the nuclear signal dens (H, W) into the RGB image: background, illumination, blur,
 * noise. planes holds 3 * W * H floats, tmp W * H. */
static void render(struct iseg_image *img, const float *dens, float *planes, float *tmp,
                   const struct iseg_synth_params *p, struct iseg_rng *rng,
                   const struct vnoise *haze, const struct vnoise *mid) {
    uint32_t W = p->width, H = p->height;
    size_t   N = (size_t)W * H;
    bool     fl = p->style == ISEG_SYNTH_STYLE_FLUORESCENCE;
    /* uneven illumination: a linear gradient and a vignette */
    double g_amp = fl ? 0.35 : 0.12, v_amp = fl ? 0.5 : 0.15;
    double gx = unif(rng, -g_amp, g_amp), gy = unif(rng, -g_amp, g_amp);
    double vig = unif(rng, 0, v_amp);
    double bg = unif(rng, 0.05, 0.10), gain = unif(rng, 0.75, 0.9);
    double e_mean = unif(rng, 0.08, 0.2);
    int    n_pl   = fl ? 1 : 3;
    /* optical densities per unit stain (R, G, B): hematoxylin and eosin (Ruifrok-Johnston
     * colour deconvolution vectors), scaled to look like a typical H&E slide */
    static const float OD_H[3] = {0.65f * 1.6f, 0.70f * 1.6f, 0.29f * 1.6f};
    static const float OD_E[3] = {0.07f * 0.9f, 0.99f * 0.9f, 0.11f * 0.9f};
    static const float WHITE[3] = {0.96f, 0.93f, 0.95f};
    for (uint32_t y = 0; y < H; y++) {
        for (uint32_t x = 0; x < W; x++) {
            size_t i  = (size_t)y * W + x;
            float  xn = ((float)x + 0.5f) / (float)W - 0.5f;
            float  yn = ((float)y + 0.5f) / (float)H - 0.5f;
            float  il = (float)(1 + gx * xn + gy * yn - vig * (xn * xn + yn * yn));
            float  hz = vnoise_at(haze, (float)x, (float)y);
            if (fl) {
                planes[i] = il * (float)(bg * (1 + 0.5 * hz) + gain * dens[i]);
            } else {
                float md = vnoise_at(mid, (float)x, (float)y);
                float e  = (float)e_mean * (1 + 0.6f * hz + 0.3f * md);
                float h  = dens[i] + 0.02f;
                for (int c = 0; c < 3; c++)
                    planes[c * N + i] = il * WHITE[c] * expf(-(h * OD_H[c] + e * OD_E[c]));
            }
        }
    }
    if (p->blur > 0) {
        float k[64];
        int   rad = (int)ceil(3 * p->blur);
        if (rad > 31) rad = 31;
        float s = 0;
        for (int d = -rad; d <= rad; d++) {
            k[d + rad] = expf(-(float)(d * d) / (float)(2 * p->blur * p->blur));
            s += k[d + rad];
        }
        for (int d = 0; d <= 2 * rad; d++) k[d] /= s;
        for (int c = 0; c < n_pl; c++) blur_plane(planes + c * N, tmp, W, H, k, rad);
    }
    struct gauss g  = {0};
    uint8_t     *px = img->data;
    for (size_t i = 0; i < N; i++) {
        if (fl) {
            /* shot noise grows with the signal; the three channels stay equal */
            double v = planes[i];
            v += p->noise * (0.5 + (v > 0 ? v : 0)) * gauss_next(&g, rng);
            px[3 * i] = px[3 * i + 1] = px[3 * i + 2] = to_u8(v);
        } else {
            for (int c = 0; c < 3; c++)
                px[3 * i + c] = to_u8(planes[c * N + i] + p->noise * gauss_next(&g, rng));
        }
    }
}

enum iseg_status iseg_synth_nuclei(struct iseg_sample *out, const struct iseg_synth_params *p,
                                   struct iseg_rng *rng) {
    ISEG_ASSERT(out && p && rng);
    memset(out, 0, sizeof(*out));
    enum iseg_status st = iseg_synth_params_check(p, NULL, 0);
    if (st != ISEG_STATUS_OK) return st;
    uint32_t W = p->width, H = p->height;
    size_t   N = (size_t)W * H;
    bool     fl = p->style == ISEG_SYNTH_STYLE_FLUORESCENCE;
    /* the largest candidate's bbox bounds the scratch list */
    double   rmax_all = p->radius_max / sqrt(Q_MIN) * (1 + N_HARM * HARM_AMP);
    size_t   side     = (size_t)(2 * rmax_all) + 3, n_cpix = side * side;

    struct vnoise   fine = {0}, finer = {0}, haze = {0}, mid = {0};
    int32_t        *lab     = iseg__calloc(N, sizeof(*lab));      /* (H, W) 0 or nucleus + 1 */
    float          *dens    = iseg__calloc(N, sizeof(*dens));     /* (H, W) nuclear signal */
    float          *planes  = iseg__malloc_array(3 * N, sizeof(*planes)); /* (C, H, W) */
    float          *tmp     = iseg__malloc_array(N, sizeof(*tmp));
    struct cpix    *cpx     = iseg__malloc_array(n_cpix, sizeof(*cpx));
    struct nucleus *nuc     = iseg__calloc(p->n_max ? p->n_max : 1, sizeof(*nuc));
    uint32_t       *ovl     = iseg__calloc(p->n_max ? p->n_max : 1, sizeof(*ovl));
    uint32_t       *touched = iseg__malloc_array(p->n_max ? p->n_max : 1, sizeof(*touched));
    st                      = ISEG_STATUS_ENOMEM;
    if (!lab || !dens || !planes || !tmp || !cpx || !nuc || !ovl || !touched) goto out_free;
    if (!vnoise_init(&fine, W, H, 3.0f, rng) || !vnoise_init(&finer, W, H, 1.6f, rng) ||
        !vnoise_init(&haze, W, H, 48.0f, rng) || !vnoise_init(&mid, W, H, 12.0f, rng))
        goto out_free;

    /* place nuclei one by one; a later one owns the pixels it shares with earlier ones */
    uint32_t n_target = p->n_min + iseg_rng_below(rng, p->n_max - p->n_min + 1);
    uint32_t n_placed = 0;
    for (uint32_t k = 0; k < n_target; k++) {
        struct nucleus *nu = &nuc[n_placed];
        draw_shape(nu, p, rng);
        double lo = 0.5 * nu->r, hx = W - 0.5 * nu->r, hy = H - 0.5 * nu->r;
        size_t n  = 0;
        bool   ok = false;
        for (int t = 0; t < PLACE_TRIES && !ok; t++) {
            if (n_placed > 0 && iseg_rng_uniform(rng) < p->cluster) {
                /* touching an earlier nucleus */
                const struct nucleus *o = &nuc[iseg_rng_below(rng, n_placed)];
                double ang = unif(rng, 0, 2 * PI), d = (o->r + nu->r) * unif(rng, 0.85, 1.05);
                nu->cx     = o->cx + d * cos(ang);
                nu->cy     = o->cy + d * sin(ang);
                if (!in_range(nu->cx, lo, hx) || !in_range(nu->cy, lo, hy)) continue;
            } else {
                nu->cx = unif(rng, lo, hx);
                nu->cy = unif(rng, lo, hy);
            }
            n = rasterise(cpx, nu, W, H);
            /* overlap with each earlier nucleus, relative to the smaller of the two */
            size_t n_t = 0;
            for (size_t i = 0; i < n; i++) {
                int32_t l = lab[cpx[i].idx];
                if (l > 0 && ovl[l - 1]++ == 0) touched[n_t++] = (uint32_t)(l - 1);
            }
            ok = true;
            for (size_t i = 0; i < n_t; i++) {
                uint32_t j     = touched[i];
                double   small = (double)(nuc[j].area < n ? nuc[j].area : n);
                if (ovl[j] > p->overlap * small) ok = false;
                ovl[j] = 0;
            }
        }
        if (!ok) continue;
        int32_t id = (int32_t)n_placed + 1;
        for (size_t i = 0; i < n; i++) {
            uint32_t idx = cpx[i].idx;
            if (lab[idx] > 0) nuc[lab[idx] - 1].area--;
            lab[idx]  = id;
            dens[idx] = nucleus_value(nu, &cpx[i], W, &fine, &finer, fl);
        }
        nu->area = (uint32_t)n;
        n_placed++;
    }

    /* drop nuclei left with too few visible pixels */
    size_t n_keep = 0;
    for (uint32_t j = 0; j < n_placed; j++) n_keep += nuc[j].area >= ISEG_SYNTH_MIN_AREA;
    st = iseg_sample_alloc(out, W, H, n_keep);
    if (st != ISEG_STATUS_OK) goto out_free;
    render(&out->image, dens, planes, tmp, p, rng, &haze, &mid);
    size_t k = 0;
    for (uint32_t j = 0; j < n_placed; j++) {
        if (nuc[j].area < ISEG_SYNTH_MIN_AREA) continue;
        struct iseg_instance *in = &out->inst[k];
        st = mask_from_labels(&in->mask, lab, W, H, (int32_t)j + 1, &nuc[j]);
        if (st != ISEG_STATUS_OK) {
            iseg_sample_free(out);
            goto out_free;
        }
        iseg_rle_to_box_xyxy(&in->mask, in->box);
        in->label  = 1;
        k++;
    }

out_free:
    iseg__free(fine.v);
    iseg__free(finer.v);
    iseg__free(haze.v);
    iseg__free(mid.v);
    iseg__free(touched);
    iseg__free(ovl);
    iseg__free(nuc);
    iseg__free(cpx);
    iseg__free(tmp);
    iseg__free(planes);
    iseg__free(dens);
    iseg__free(lab);
    return st;
}

/* ---- files ---- */

enum iseg_status iseg_synth_png_write(const char *path, const struct iseg_image *img, char *err,
                                      size_t errlen) {
    ISEG_ASSERT(path && img);
    if (!img->data || img->c != 3 || img->depth != 8 || img->w == 0 || img->h == 0) {
        if (errlen) snprintf(err, errlen, "%s: not an 8-bit RGB image", path);
        return ISEG_STATUS_EINVAL;
    }
    const uint8_t *px = img->data;
    size_t         N  = (size_t)img->w * img->h;
    bool           grey = true;
    for (size_t i = 0; i < N && grey; i++)
        grey = px[3 * i] == px[3 * i + 1] && px[3 * i] == px[3 * i + 2];
    if (!grey) return iseg_png_write(path, img, err, errlen);
    struct iseg_image g  = {0};
    enum iseg_status  st = iseg_image_alloc(&g, img->w, img->h, 1, 8);
    if (st != ISEG_STATUS_OK) {
        if (errlen) snprintf(err, errlen, "%s: %s", path, iseg_status_str(st));
        return st;
    }
    uint8_t *gp = g.data;
    for (size_t i = 0; i < N; i++) gp[i] = px[3 * i];
    st = iseg_png_write(path, &g, err, errlen);
    iseg_image_free(&g);
    return st;
}

static enum iseg_status ensure_dir(const char *dir, char *err, size_t errlen) {
    struct stat sb;
    if (stat(dir, &sb) == 0) {
        if (S_ISDIR(sb.st_mode)) return ISEG_STATUS_OK;
        if (errlen) snprintf(err, errlen, "%s: exists and is not a directory", dir);
        return ISEG_STATUS_EIO;
    }
    if (mkdir(dir, 0777) != 0 && errno != EEXIST) {
        if (errlen) snprintf(err, errlen, "%s: cannot create directory: %s", dir, strerror(errno));
        return ISEG_STATUS_EIO;
    }
    return ISEG_STATUS_OK;
}

/* Append the annotations of one image (COCO ids from *ann_id) to b. */
static bool append_annotations(struct iseg__buf *b, const struct iseg_sample *s, size_t image_id,
                               size_t *ann_id, bool *first) {
    for (size_t i = 0; i < s->n; i++) {
        const struct iseg_rle *r = &s->inst[i].mask;
        double                 bb[4];
        iseg_rle_to_bbox(r, bb);
        bool ok = iseg__buf_printf(b,
                                   "%s\n    {\"id\": %zu, \"image_id\": %zu, \"category_id\": 1, "
                                   "\"segmentation\": {\"size\": [%u, %u], \"counts\": \"",
                                   *first ? "" : ",", ++*ann_id, image_id, r->h, r->w);
        *first = false;
        /* the RLE alphabet (48..111) holds one character JSON must escape: the backslash */
        size_t len = iseg_rle_string_len(r);
        if (!ok || !iseg__buf_reserve(b, 2 * len + 1)) return false;
        char *dst = b->data + b->len, *src = dst + len;
        iseg_rle_string_write(r, src);
        for (size_t k = 0; k < len; k++) {
            char ch = src[k];
            if (ch == '\\') *dst++ = '\\';
            *dst++ = ch;
        }
        b->len = (size_t)(dst - b->data);
        ok     = iseg__buf_printf(b,
                                  "\"}, \"area\": %llu, \"bbox\": [%.17g, %.17g, %.17g, %.17g], "
                                  "\"iscrowd\": 0}",
                                  (unsigned long long)iseg_rle_area(r), bb[0], bb[1], bb[2], bb[3]);
        if (!ok) return false;
    }
    return true;
}

enum iseg_status iseg_synth_dataset_write(const char *dir, size_t count,
                                          const struct iseg_synth_params *p, uint64_t seed,
                                          size_t *n_nuclei, char *err, size_t errlen) {
    ISEG_ASSERT(dir && p);
    if (n_nuclei) *n_nuclei = 0;
    if (count < 1 || count > MAX_IMAGES) {
        if (errlen) snprintf(err, errlen, "synth: image count %zu is not within 1..%d", count,
                             MAX_IMAGES);
        return ISEG_STATUS_EINVAL;
    }
    enum iseg_status st = iseg_synth_params_check(p, err, errlen);
    if (st != ISEG_STATUS_OK) return st;

    size_t             dl   = strlen(dir) + 64;
    char              *path = iseg__malloc(dl);
    struct iseg__buf   imgs = {0}, anns = {0}, doc = {0};
    struct iseg_sample s    = {0};
    if (!path) goto nomem;
    if ((st = ensure_dir(dir, err, errlen)) != ISEG_STATUS_OK) goto out_free;
    snprintf(path, dl, "%s/images", dir);
    if ((st = ensure_dir(path, err, errlen)) != ISEG_STATUS_OK) goto out_free;

    size_t ann_id = 0;
    bool   first  = true;
    for (size_t i = 0; i < count; i++) {
        struct iseg_rng rng;
        iseg_rng_seed(&rng, seed + i);
        st = iseg_synth_nuclei(&s, p, &rng);
        if (st != ISEG_STATUS_OK) {
            if (errlen) snprintf(err, errlen, "synth: image %zu: %s", i, iseg_status_str(st));
            goto out_free;
        }
        snprintf(path, dl, "%s/images/synth_%04zu.png", dir, i);
        if ((st = iseg_synth_png_write(path, &s.image, err, errlen)) != ISEG_STATUS_OK)
            goto out_free;
        bool ok = iseg__buf_printf(&imgs,
                                   "%s\n    {\"id\": %zu, \"file_name\": "
                                   "\"images/synth_%04zu.png\", \"width\": %u, \"height\": %u}",
                                   i ? "," : "", i + 1, i, p->width, p->height);
        if (!ok || !append_annotations(&anns, &s, i + 1, &ann_id, &first)) goto nomem;
        iseg_sample_free(&s);
    }
    bool ok = iseg__buf_printf(&doc,
                               "{\n  \"info\": {\"description\": \"iseg synthetic nuclei (%s, "
                               "seed %llu)\"},\n  \"images\": [",
                               iseg_synth_style_name(p->style), (unsigned long long)seed);
    ok = ok && iseg__buf_append(&doc, imgs.data, imgs.len);
    ok = ok && iseg__buf_printf(&doc, "\n  ],\n  \"categories\": [\n    {\"id\": 1, \"name\": "
                                      "\"nucleus\", \"supercategory\": \"cell\"}\n  ],\n"
                                      "  \"annotations\": [");
    ok = ok && (anns.len == 0 || iseg__buf_append(&doc, anns.data, anns.len));
    ok = ok && iseg__buf_printf(&doc, "\n  ]\n}\n");
    if (!ok) goto nomem;
    snprintf(path, dl, "%s/synth.json", dir);
    st = iseg__write_file_atomic(path, doc.data, doc.len, err, errlen);
    if (st == ISEG_STATUS_OK && n_nuclei) *n_nuclei = ann_id;
    goto out_free;

nomem:
    st = ISEG_STATUS_ENOMEM;
    if (errlen) snprintf(err, errlen, "%s: out of memory", dir);
out_free:
    iseg_sample_free(&s);
    iseg__buf_free(&doc);
    iseg__buf_free(&anns);
    iseg__buf_free(&imgs);
    iseg__free(path);
    return st;
}
