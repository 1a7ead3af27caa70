/* augment.c - data augmentation on (image, boxes, RLE masks, labels) samples; see
 * include/iseg/augment.h for the policies. */
#include <math.h>
#include <string.h>

#include "core/core_impl.h"
#include "iseg/augment.h"

/* ---- PRNG ---- */

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z          = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z          = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

void iseg_rng_seed(struct iseg_rng *r, uint64_t seed) {
    ISEG_ASSERT(r);
    /* splitmix64 never yields four zero words in a row, so the state is valid */
    for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&seed);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t iseg_rng_next(struct iseg_rng *r) {
    ISEG_ASSERT(r);
    uint64_t *s = r->s, res = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return res;
}

double iseg_rng_uniform(struct iseg_rng *r) {
    return (double)(iseg_rng_next(r) >> 11) * 0x1.0p-53;
}

uint32_t iseg_rng_below(struct iseg_rng *r, uint32_t n) {
    ISEG_ASSERT(n >= 1);
    /* Lemire's multiply-shift with rejection: unbiased */
    uint64_t m = (iseg_rng_next(r) >> 32) * (uint64_t)n;
    uint32_t l = (uint32_t)m;
    if (l < n) {
        uint32_t t = (uint32_t)(-n) % n;
        while (l < t) {
            m = (iseg_rng_next(r) >> 32) * (uint64_t)n;
            l = (uint32_t)m;
        }
    }
    return (uint32_t)(m >> 32);
}

/* uniform in [lo, hi] inclusive */
static uint32_t rng_range(struct iseg_rng *r, uint32_t lo, uint32_t hi) {
    uint64_t span = (uint64_t)hi - lo + 1;
    if (span > UINT32_MAX) return lo + (uint32_t)(iseg_rng_next(r) >> 32);
    return lo + iseg_rng_below(r, (uint32_t)span);
}

/* ---- samples ---- */

enum iseg_status iseg_sample_alloc(struct iseg_sample *s, uint32_t w, uint32_t h, size_t n) {
    ISEG_ASSERT(s);
    memset(s, 0, sizeof(*s));
    enum iseg_status st = iseg_image_alloc(&s->image, w, h, 3, 8);
    if (st != ISEG_STATUS_OK) return st;
    if (n > 0) {
        s->inst = iseg__calloc(n, sizeof(*s->inst));
        if (!s->inst) {
            iseg_image_free(&s->image);
            return ISEG_STATUS_ENOMEM;
        }
    }
    s->n = n;
    return ISEG_STATUS_OK;
}

void iseg_sample_free(struct iseg_sample *s) {
    if (!s) return;
    for (size_t i = 0; i < s->n; i++) iseg_rle_free(&s->inst[i].mask);
    iseg__free(s->inst);
    iseg_image_free(&s->image);
    memset(s, 0, sizeof(*s));
}

enum iseg_status iseg_sample_validate(const struct iseg_sample *s) {
    ISEG_ASSERT(s);
    const struct iseg_image *im = &s->image;
    if (!im->data || im->c != 3 || im->depth != 8 || im->w == 0 || im->h == 0)
        return ISEG_STATUS_EINVAL;
    if (s->n > 0 && !s->inst) return ISEG_STATUS_EINVAL;
    for (size_t i = 0; i < s->n; i++) {
        const struct iseg_rle *r = &s->inst[i].mask;
        if (r->h != im->h || r->w != im->w) return ISEG_STATUS_ESHAPE;
        if (r->m > 0 && !r->cnts) return ISEG_STATUS_EFORMAT;
        enum iseg_status st = iseg_rle_validate(r);
        if (st != ISEG_STATUS_OK) return st;
    }
    return ISEG_STATUS_OK;
}

/* Replace every mask by news[i] (taking ownership), then drop instances with empty masks.
 * When recompute_box, a mask whose area changed gets its tight box. */
static void commit_masks(struct iseg_sample *s, struct iseg_rle *news, bool recompute_box) {
    size_t k = 0;
    for (size_t i = 0; i < s->n; i++) {
        struct iseg_instance *in = &s->inst[i];
        uint64_t old_area        = iseg_rle_area(&in->mask);
        iseg_rle_free(&in->mask);
        in->mask      = news[i];
        uint64_t area = iseg_rle_area(&in->mask);
        if (area == 0) {
            iseg_rle_free(&in->mask);
            continue;
        }
        if (recompute_box && area != old_area) iseg_rle_to_box_xyxy(&in->mask, in->box);
        s->inst[k++] = *in;
    }
    s->n = k;
}

static void free_rles(struct iseg_rle *r, size_t n) {
    if (!r) return;
    for (size_t i = 0; i < n; i++) iseg_rle_free(&r[i]);
    iseg__free(r);
}

/* ---- flips in the RLE domain ----
 * A mask is cut into vertical pieces (column x, first row y, length l) of foreground, in
 * column-major order; a flip maps pieces to pieces and reorders them, and the RLE is rebuilt
 * from the sorted pieces. Cost O(m + w), no h*w bitmap. */
struct piece {
    uint32_t x, y, l;
};

static enum iseg_status rle_flip(struct iseg_rle *out, const struct iseg_rle *r, bool horizontal) {
    uint32_t h = r->h, w = r->w;
    memset(out, 0, sizeof(*out));
    /* pass 1: count pieces */
    size_t   np  = 0;
    uint64_t pos = 0;
    for (size_t i = 0; i < r->m; i++) {
        uint64_t c = r->cnts[i];
        if (i & 1) {
            for (uint64_t a = pos, e = pos + c; a < e;) {
                uint64_t y = a % h, l = h - y < e - a ? h - y : e - a;
                a += l;
                np++;
            }
        }
        pos += c;
    }
    size_t mcap;
    if (!iseg__mul_size_ok(np, 2, &mcap)) return ISEG_STATUS_ENOMEM;
    struct piece *pc = np ? iseg__malloc_array(np, sizeof(*pc)) : NULL;
    uint32_t *cnts = iseg__malloc_array(mcap + 2, sizeof(*cnts));
    if ((np && !pc) || !cnts) {
        iseg__free(pc);
        iseg__free(cnts);
        return ISEG_STATUS_ENOMEM;
    }
    /* pass 2: collect */
    size_t k = 0;
    pos      = 0;
    for (size_t i = 0; i < r->m; i++) {
        uint64_t c = r->cnts[i];
        if (i & 1) {
            for (uint64_t a = pos, e = pos + c; a < e;) {
                uint64_t y = a % h, l = h - y < e - a ? h - y : e - a;
                pc[k].x = (uint32_t)(a / h);
                pc[k].y = (uint32_t)y;
                pc[k].l = (uint32_t)l;
                k++;
                a += l;
            }
        }
        pos += c;
    }
    /* pass 3: emit the flipped pieces in increasing order of their new start. Groups of pieces
     * share a column; hflip reverses the group order, vflip the order inside each group. */
    size_t   m    = 0;
    uint64_t cur  = 0; /* end of the last emitted foreground */
    bool     open = false;
    cnts[m++]     = 0;
    for (size_t g = 0; g < np;) {
        /* next group in emission order: [gs, ge) */
        size_t gs, ge;
        if (horizontal) {
            size_t last = np - 1 - g; /* groups taken from the end */
            gs          = last;
            while (gs > 0 && pc[gs - 1].x == pc[last].x) gs--;
            ge = last + 1;
        } else {
            gs = g;
            ge = g;
            while (ge < np && pc[ge].x == pc[gs].x) ge++;
        }
        for (size_t t = 0; t < ge - gs; t++) {
            const struct piece *q = horizontal ? &pc[gs + t] : &pc[ge - 1 - t];
            uint64_t nx = horizontal ? (uint64_t)(w - 1 - q->x) : q->x;
            uint64_t ny = horizontal ? q->y : (uint64_t)(h - q->y - q->l);
            uint64_t st = nx * h + ny;
            if (open && st == cur) {
                cnts[m - 1] += q->l; /* touches the previous piece: extend its run */
            } else {
                if (open) cnts[m++] = 0;
                cnts[m - 1] = (uint32_t)(st - cur);
                cnts[m++]   = q->l;
                open        = true;
            }
            cur = st + q->l;
        }
        g += ge - gs;
    }
    uint64_t n = (uint64_t)h * w;
    if (cur < n) {
        if (open) cnts[m++] = 0;
        cnts[m - 1] = (uint32_t)(n - cur);
    }
    iseg__free(pc);
    out->h    = h;
    out->w    = w;
    out->m    = m;
    out->cnts = cnts;
    return ISEG_STATUS_OK;
}

static enum iseg_status flip(struct iseg_sample *s, bool horizontal) {
    enum iseg_status st = iseg_sample_validate(s);
    if (st != ISEG_STATUS_OK) return st;
    struct iseg_rle *news = NULL;
    if (s->n) {
        news = iseg__calloc(s->n, sizeof(*news));
        if (!news) return ISEG_STATUS_ENOMEM;
    }
    for (size_t i = 0; i < s->n; i++) {
        st = rle_flip(&news[i], &s->inst[i].mask, horizontal);
        if (st != ISEG_STATUS_OK) {
            free_rles(news, s->n);
            return st;
        }
    }
    /* nothing can fail from here on */
    uint32_t W = s->image.w, H = s->image.h;
    uint8_t *px = s->image.data;
    if (horizontal) {
        for (uint32_t y = 0; y < H; y++) {
            uint8_t *row = px + (size_t)y * W * 3;
            for (uint32_t a = 0, b = W - 1; a < b; a++, b--)
                for (int c = 0; c < 3; c++) {
                    uint8_t t          = row[a * 3 + c];
                    row[a * 3 + c]     = row[(size_t)b * 3 + c];
                    row[(size_t)b * 3 + c] = t;
                }
        }
    } else {
        size_t rb = (size_t)W * 3;
        for (uint32_t a = 0, b = H - 1; a < b; a++, b--) {
            uint8_t *ra = px + a * rb, *rb_ = px + (size_t)b * rb;
            for (size_t j = 0; j < rb; j++) {
                uint8_t t = ra[j];
                ra[j]     = rb_[j];
                rb_[j]    = t;
            }
        }
    }
    for (size_t i = 0; i < s->n; i++) {
        float *bx = s->inst[i].box;
        if (horizontal) {
            /* ref: torchvision references/detection/transforms.py RandomHorizontalFlip */
            float x1 = (float)W - bx[2], x2 = (float)W - bx[0];
            bx[0] = x1;
            bx[2] = x2;
        } else {
            float y1 = (float)H - bx[3], y2 = (float)H - bx[1];
            bx[1] = y1;
            bx[3] = y2;
        }
        iseg_rle_free(&s->inst[i].mask);
        s->inst[i].mask = news[i];
    }
    iseg__free(news);
    return ISEG_STATUS_OK;
}

enum iseg_status iseg_augment_hflip(struct iseg_sample *s) { return flip(s, true); }
enum iseg_status iseg_augment_vflip(struct iseg_sample *s) { return flip(s, false); }

/* ---- resize ---- */

/* torch's nearest source index (aten UpSample.h nearest_idx, float scale) */
static uint32_t nearest_idx(uint32_t o, uint32_t in, uint32_t out) {
    if (in == out) return o;
    if (out == 2 * in) return o >> 1;
    float    scale = (float)in / (float)out;
    uint32_t i     = (uint32_t)floorf((float)o * scale);
    return i < in - 1 ? i : in - 1;
}

/* torch's bilinear, align_corners = False: source coordinate and the two taps */
struct tap {
    uint32_t i0, i1;
    float    l0, l1;
};
static void linear_taps(struct tap *t, uint32_t out, uint32_t in) {
    float scale = (float)in / (float)out;
    for (uint32_t o = 0; o < out; o++) {
        float src = scale * ((float)o + 0.5f) - 0.5f;
        if (src < 0) src = 0;
        uint32_t i0 = (uint32_t)src;
        if (i0 > in - 1) i0 = in - 1;
        t[o].i0 = i0;
        t[o].i1 = i0 + (i0 < in - 1 ? 1 : 0);
        t[o].l1 = src - (float)i0;
        t[o].l0 = 1.0f - t[o].l1;
    }
}

enum iseg_status iseg_augment_resize(struct iseg_sample *s, uint32_t new_w, uint32_t new_h) {
    enum iseg_status st = iseg_sample_validate(s);
    if (st != ISEG_STATUS_OK) return st;
    if (new_w == 0 || new_h == 0) return ISEG_STATUS_EINVAL;
    uint32_t W = s->image.w, H = s->image.h;
    if ((uint64_t)new_w * new_h > ISEG_IMAGE_MAX_PIXELS) return ISEG_STATUS_ELIMIT;
    struct iseg_image img   = {0};
    struct iseg_rle  *news  = NULL;
    uint8_t          *src   = NULL, *dst = NULL;
    struct tap       *tx    = NULL, *ty = NULL;
    st                      = iseg_image_alloc(&img, new_w, new_h, 3, 8);
    if (st != ISEG_STATUS_OK) return st;
    st = ISEG_STATUS_ENOMEM;
    tx = iseg__malloc_array(new_w, sizeof(*tx));
    ty = iseg__malloc_array(new_h, sizeof(*ty));
    if (!tx || !ty) goto out_free;
    if (s->n) {
        news = iseg__calloc(s->n, sizeof(*news));
        src  = iseg__malloc_array((size_t)W, H);
        dst  = iseg__malloc_array((size_t)new_w, new_h);
        if (!news || !src || !dst) goto out_free;
    }
    /* masks: decode, nearest, encode (column-major) */
    for (size_t i = 0; i < s->n; i++) {
        st = iseg_rle_decode(src, &s->inst[i].mask);
        if (st != ISEG_STATUS_OK) goto out_free;
        for (uint32_t x = 0; x < new_w; x++) {
            const uint8_t *col = src + (size_t)nearest_idx(x, W, new_w) * H;
            uint8_t       *d   = dst + (size_t)x * new_h;
            for (uint32_t y = 0; y < new_h; y++) d[y] = col[nearest_idx(y, H, new_h)];
        }
        st = iseg_rle_encode(&news[i], dst, new_h, new_w);
        if (st != ISEG_STATUS_OK) goto out_free;
    }
    /* image: separable bilinear in float, as torch's CPU kernel (2-tap products) */
    linear_taps(tx, new_w, W);
    linear_taps(ty, new_h, H);
    const uint8_t *ip = s->image.data;
    uint8_t       *op = img.data;
    for (uint32_t y = 0; y < new_h; y++) {
        const uint8_t *r0 = ip + (size_t)ty[y].i0 * W * 3, *r1 = ip + (size_t)ty[y].i1 * W * 3;
        for (uint32_t x = 0; x < new_w; x++)
            for (int c = 0; c < 3; c++) {
                size_t a = (size_t)tx[x].i0 * 3 + c, b = (size_t)tx[x].i1 * 3 + c;
                float  v = ty[y].l0 * (tx[x].l0 * r0[a] + tx[x].l1 * r0[b]) +
                          ty[y].l1 * (tx[x].l0 * r1[a] + tx[x].l1 * r1[b]);
                v = nearbyintf(v); /* torch.round: half to even */
                op[((size_t)y * new_w + x) * 3 + c] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
            }
    }
    /* commit: boxes scaled as torchvision resize_boxes (ratio = new / old, float) */
    float rw = (float)new_w / (float)W, rh = (float)new_h / (float)H;
    for (size_t i = 0; i < s->n; i++) {
        float *bx = s->inst[i].box;
        bx[0] *= rw;
        bx[2] *= rw;
        bx[1] *= rh;
        bx[3] *= rh;
    }
    if (s->n) commit_masks(s, news, false);
    iseg_image_free(&s->image);
    s->image = img;
    iseg__free(news);
    iseg__free(src);
    iseg__free(dst);
    iseg__free(tx);
    iseg__free(ty);
    return ISEG_STATUS_OK;
out_free:
    free_rles(news, s->n);
    iseg__free(src);
    iseg__free(dst);
    iseg__free(tx);
    iseg__free(ty);
    iseg_image_free(&img);
    return st;
}

/* ---- crop ---- */

enum iseg_status iseg_augment_crop(struct iseg_sample *s, uint32_t x0, uint32_t y0, uint32_t cw,
                                   uint32_t ch) {
    enum iseg_status st = iseg_sample_validate(s);
    if (st != ISEG_STATUS_OK) return st;
    uint32_t W = s->image.w, H = s->image.h;
    if (cw == 0 || ch == 0 || x0 > W || y0 > H || cw > W - x0 || ch > H - y0)
        return ISEG_STATUS_EINVAL;
    struct iseg_image img  = {0};
    struct iseg_rle  *news = NULL;
    uint8_t          *src  = NULL, *dst = NULL;
    st                     = iseg_image_alloc(&img, cw, ch, 3, 8);
    if (st != ISEG_STATUS_OK) return st;
    st = ISEG_STATUS_ENOMEM;
    if (s->n) {
        news = iseg__calloc(s->n, sizeof(*news));
        src  = iseg__malloc_array((size_t)W, H);
        dst  = iseg__malloc_array((size_t)cw, ch);
        if (!news || !src || !dst) goto out_free;
    }
    /* masks are column-major: a crop is a run of ch bytes from each kept column */
    for (size_t i = 0; i < s->n; i++) {
        st = iseg_rle_decode(src, &s->inst[i].mask);
        if (st != ISEG_STATUS_OK) goto out_free;
        for (uint32_t x = 0; x < cw; x++)
            memcpy(dst + (size_t)x * ch, src + (size_t)(x0 + x) * H + y0, ch);
        st = iseg_rle_encode(&news[i], dst, ch, cw);
        if (st != ISEG_STATUS_OK) goto out_free;
    }
    const uint8_t *ip = s->image.data;
    for (uint32_t y = 0; y < ch; y++)
        memcpy((uint8_t *)img.data + (size_t)y * cw * 3, ip + ((size_t)(y0 + y) * W + x0) * 3,
               (size_t)cw * 3);
    /* boxes shifted and clipped; those of cut masks become their tight boxes */
    for (size_t i = 0; i < s->n; i++) {
        float *bx = s->inst[i].box;
        bx[0] = fminf(fmaxf(bx[0] - (float)x0, 0.0f), (float)cw);
        bx[2] = fminf(fmaxf(bx[2] - (float)x0, 0.0f), (float)cw);
        bx[1] = fminf(fmaxf(bx[1] - (float)y0, 0.0f), (float)ch);
        bx[3] = fminf(fmaxf(bx[3] - (float)y0, 0.0f), (float)ch);
    }
    if (s->n) commit_masks(s, news, true);
    iseg_image_free(&s->image);
    s->image = img;
    iseg__free(news);
    iseg__free(src);
    iseg__free(dst);
    return ISEG_STATUS_OK;
out_free:
    free_rles(news, s->n);
    iseg__free(src);
    iseg__free(dst);
    iseg_image_free(&img);
    return st;
}

enum iseg_status iseg_augment_random_crop(struct iseg_sample *s, struct iseg_rng *rng,
                                          uint32_t max_w, uint32_t max_h) {
    ISEG_ASSERT(s && rng);
    if (max_w == 0 || max_h == 0) return ISEG_STATUS_EINVAL;
    enum iseg_status st = iseg_sample_validate(s);
    if (st != ISEG_STATUS_OK) return st;
    uint32_t cw = s->image.w < max_w ? s->image.w : max_w;
    uint32_t ch = s->image.h < max_h ? s->image.h : max_h;
    /* a draw per axis whatever the sizes, so that the stream does not depend on them */
    uint32_t x0 = iseg_rng_below(rng, s->image.w - cw + 1);
    uint32_t y0 = iseg_rng_below(rng, s->image.h - ch + 1);
    if (cw == s->image.w && ch == s->image.h) return ISEG_STATUS_OK;
    return iseg_augment_crop(s, x0, y0, cw, ch);
}

enum iseg_status iseg_augment_scale_jitter(struct iseg_sample *s, struct iseg_rng *rng,
                                           double min_scale, double max_scale) {
    ISEG_ASSERT(s && rng);
    if (!(min_scale > 0 && min_scale <= max_scale && isfinite(max_scale)))
        return ISEG_STATUS_EINVAL;
    enum iseg_status st = iseg_sample_validate(s);
    if (st != ISEG_STATUS_OK) return st;
    double r  = min_scale + (max_scale - min_scale) * iseg_rng_uniform(rng);
    double nw = floor((double)s->image.w * r), nh = floor((double)s->image.h * r);
    if (nw > (double)UINT32_MAX || nh > (double)UINT32_MAX) return ISEG_STATUS_ELIMIT;
    return iseg_augment_resize(s, nw < 1 ? 1 : (uint32_t)nw, nh < 1 ? 1 : (uint32_t)nh);
}

/* ---- occlusion ---- */

/* Fill the rectangle [x0, x0 + rw) x [y0, y0 + rh) of the image. */
static void fill_rect(struct iseg_sample *s, struct iseg_rng *rng, uint32_t x0, uint32_t y0,
                      uint32_t rw, uint32_t rh, enum iseg_fill fill, const uint8_t value[3]) {
    uint32_t W  = s->image.w;
    uint8_t *px = s->image.data;
    for (uint32_t y = y0; y < y0 + rh; y++)
        for (uint32_t x = x0; x < x0 + rw; x++) {
            uint8_t *p = px + ((size_t)y * W + x) * 3;
            for (int c = 0; c < 3; c++)
                p[c] = fill == ISEG_FILL_RANDOM ? (uint8_t)(iseg_rng_next(rng) >> 56) : value[c];
        }
}

/* masks minus the occluded pixels (occ, column-major h*w); boxes of changed masks recomputed */
static enum iseg_status subtract_occluder(struct iseg_sample *s, const uint8_t *occ) {
    uint32_t         W = s->image.w, H = s->image.h;
    size_t           n = (size_t)W * H;
    enum iseg_status st;
    if (s->n == 0) return ISEG_STATUS_OK;
    struct iseg_rle *news = iseg__calloc(s->n, sizeof(*news));
    uint8_t         *buf  = iseg__malloc(n);
    if (!news || !buf) {
        st = ISEG_STATUS_ENOMEM;
        goto out_free;
    }
    for (size_t i = 0; i < s->n; i++) {
        st = iseg_rle_decode(buf, &s->inst[i].mask);
        if (st != ISEG_STATUS_OK) goto out_free;
        for (size_t j = 0; j < n; j++) buf[j] &= (uint8_t)!occ[j];
        st = iseg_rle_encode(&news[i], buf, H, W);
        if (st != ISEG_STATUS_OK) goto out_free;
    }
    commit_masks(s, news, true);
    iseg__free(news);
    iseg__free(buf);
    return ISEG_STATUS_OK;
out_free:
    free_rles(news, s->n);
    iseg__free(buf);
    return st;
}

struct iseg_erase_params iseg_erase_default_params(void) {
    struct iseg_erase_params p;
    memset(&p, 0, sizeof(p));
    p.p            = 0.5;
    p.scale_min    = 0.02;
    p.scale_max    = 0.33;
    p.ratio_min    = 0.3;
    p.ratio_max    = 3.3;
    p.fill         = ISEG_FILL_VALUE;
    p.max_attempts = 10;
    return p;
}

static double rng_unif(struct iseg_rng *r, double lo, double hi) {
    return lo + (hi - lo) * iseg_rng_uniform(r);
}

enum iseg_status iseg_augment_random_erase(struct iseg_sample *s, struct iseg_rng *rng,
                                           const struct iseg_erase_params *p,
                                           uint32_t region[4]) {
    ISEG_ASSERT(s && rng && p);
    if (region) memset(region, 0, 4 * sizeof(*region));
    if (!(p->p >= 0 && p->p <= 1) || !(p->scale_min >= 0 && p->scale_min <= p->scale_max) ||
        !(p->scale_max <= 1) || !(p->ratio_min > 0 && p->ratio_min <= p->ratio_max) ||
        !isfinite(p->ratio_max) || p->max_attempts < 0 ||
        (p->fill != ISEG_FILL_VALUE && p->fill != ISEG_FILL_RANDOM))
        return ISEG_STATUS_EINVAL;
    enum iseg_status st = iseg_sample_validate(s);
    if (st != ISEG_STATUS_OK) return st;
    /* ref: torchvision/transforms/transforms.py RandomErasing.forward / get_params (0.14) */
    if (!(iseg_rng_uniform(rng) < p->p)) return ISEG_STATUS_OK;
    uint32_t W = s->image.w, H = s->image.h;
    double   area = (double)W * H, lr0 = log(p->ratio_min), lr1 = log(p->ratio_max);
    for (int a = 0; a < p->max_attempts; a++) {
        double ea     = area * rng_unif(rng, p->scale_min, p->scale_max);
        double aspect = exp(rng_unif(rng, lr0, lr1));
        double hh = nearbyint(sqrt(ea * aspect)), ww = nearbyint(sqrt(ea / aspect));
        if (!(hh < H && ww < W)) continue;
        uint32_t eh = (uint32_t)hh, ew = (uint32_t)ww;
        uint32_t y0 = iseg_rng_below(rng, H - eh + 1), x0 = iseg_rng_below(rng, W - ew + 1);
        uint8_t *occ = NULL;
        if (p->subtract_from_masks && s->n) {
            occ = iseg__calloc((size_t)W * H, 1);
            if (!occ) return ISEG_STATUS_ENOMEM;
            /* mark first, so that an ENOMEM below leaves the pixels untouched too */
            for (uint32_t x = x0; x < x0 + ew; x++) memset(occ + (size_t)x * H + y0, 1, eh);
            st = subtract_occluder(s, occ);
            iseg__free(occ);
            if (st != ISEG_STATUS_OK) return st;
        }
        fill_rect(s, rng, x0, y0, ew, eh, p->fill, p->value);
        if (region) {
            region[0] = x0;
            region[1] = y0;
            region[2] = ew;
            region[3] = eh;
        }
        return ISEG_STATUS_OK;
    }
    return ISEG_STATUS_OK;
}

struct iseg_strip_params iseg_strip_default_params(void) {
    struct iseg_strip_params p;
    memset(&p, 0, sizeof(p));
    p.p         = 0.5;
    p.n_min     = 1;
    p.n_max     = 3;
    p.width_min = 2;
    p.width_max = 8;
    p.orient    = ISEG_STRIP_RANDOM;
    p.fill      = ISEG_FILL_VALUE;
    p.value[0] = p.value[1] = p.value[2] = 128;
    return p;
}

enum iseg_status iseg_augment_strip_occlusion(struct iseg_sample *s, struct iseg_rng *rng,
                                              const struct iseg_strip_params *p) {
    ISEG_ASSERT(s && rng && p);
    if (!(p->p >= 0 && p->p <= 1) || p->n_min > p->n_max || p->width_min == 0 ||
        p->width_min > p->width_max || p->orient < 0 || p->orient > ISEG_STRIP_RANDOM ||
        (p->fill != ISEG_FILL_VALUE && p->fill != ISEG_FILL_RANDOM))
        return ISEG_STATUS_EINVAL;
    enum iseg_status st = iseg_sample_validate(s);
    if (st != ISEG_STATUS_OK) return st;
    if (!(iseg_rng_uniform(rng) < p->p)) return ISEG_STATUS_OK;
    uint32_t W = s->image.w, H = s->image.h;
    bool     vertical = p->orient == ISEG_STRIP_VERTICAL ||
                    (p->orient == ISEG_STRIP_RANDOM && (iseg_rng_next(rng) >> 63));
    uint32_t k = rng_range(rng, p->n_min, p->n_max);
    uint32_t D = vertical ? W : H; /* the dimension across the bars */
    /* draw every bar first (offset, thickness), so pixels and masks see the same bars */
    uint32_t *bars = k ? iseg__malloc_array(k, 2 * sizeof(uint32_t)) : NULL;
    if (k && !bars) return ISEG_STATUS_ENOMEM;
    for (uint32_t b = 0; b < k; b++) {
        uint32_t t = rng_range(rng, p->width_min, p->width_max);
        if (t > D) t = D;
        bars[2 * b]     = iseg_rng_below(rng, D - t + 1);
        bars[2 * b + 1] = t;
    }
    if (p->subtract_from_masks && s->n && k) {
        uint8_t *occ = iseg__calloc((size_t)W * H, 1);
        if (!occ) {
            iseg__free(bars);
            return ISEG_STATUS_ENOMEM;
        }
        for (uint32_t b = 0; b < k; b++) {
            uint32_t o = bars[2 * b], t = bars[2 * b + 1];
            if (vertical) memset(occ + (size_t)o * H, 1, (size_t)t * H);
            else
                for (uint32_t x = 0; x < W; x++) memset(occ + (size_t)x * H + o, 1, t);
        }
        st = subtract_occluder(s, occ);
        iseg__free(occ);
        if (st != ISEG_STATUS_OK) {
            iseg__free(bars);
            return st;
        }
    }
    for (uint32_t b = 0; b < k; b++) {
        uint32_t o = bars[2 * b], t = bars[2 * b + 1];
        if (vertical) fill_rect(s, rng, o, 0, t, H, p->fill, p->value);
        else fill_rect(s, rng, 0, o, W, t, p->fill, p->value);
    }
    iseg__free(bars);
    return ISEG_STATUS_OK;
}
