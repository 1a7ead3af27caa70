/* draw.c - detection overlays: mask fill and outline, boxes, label tabs (iseg_viz_overlay).
 *
 * Masks are never expanded to a bitmap. The RLE (column-major) is turned into per-column spans
 * of foreground rows, which is what both the fill and the outline need:
 *   fill:    every pixel of every span is blended;
 *   outline: a mask pixel is "interior" when every pixel within distance t (outline_width) is
 *            in the mask. The disc of radius t is, column by column, a vertical segment of
 *            half-height r(dx) = floor(sqrt(t^2 - dx^2)), so the interior of column x is the
 *            intersection over dx in [-t, t] of column x + dx eroded by r(dx) (a span [a, b)
 *            eroded by r is [a + r, b - r)); the outline is the column's spans minus that.
 * Everything works on short span lists: O(t * spans) per column. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/core_impl.h"
#include "iseg/viz.h"

/* Chosen for iseg: distinct neighbouring hues, each dark enough for white text (WCAG contrast
 * ratio against white between 3.7 and 7.7). */
static const uint8_t PALETTE[ISEG_VIZ_N_COLORS][3] = {
    {221, 52, 60},  /* red */
    {30, 120, 200}, /* blue */
    {40, 150, 70},  /* green */
    {210, 100, 10}, /* orange */
    {140, 70, 190}, /* purple */
    {0, 140, 140},  /* teal */
    {210, 40, 130}, /* pink */
    {120, 130, 20}, /* olive */
    {70, 80, 200},  /* indigo */
    {160, 90, 50},  /* brown */
    {0, 130, 190},  /* cerulean */
    {180, 40, 180}, /* magenta */
    {200, 80, 40},  /* rust */
    {30, 130, 100}, /* sea green */
    {110, 60, 150}, /* plum */
    {190, 110, 0},  /* ochre */
    {80, 110, 140}, /* slate */
    {170, 30, 80},  /* wine */
    {60, 140, 40},  /* leaf */
    {100, 90, 220}, /* violet */
};

static const uint8_t WHITE[3] = {255, 255, 255};

void iseg_viz_color(int i, uint8_t rgb[3]) {
    ISEG_ASSERT(rgb);
    int k = i % ISEG_VIZ_N_COLORS;
    if (k < 0) k += ISEG_VIZ_N_COLORS;
    memcpy(rgb, PALETTE[k], 3);
}

struct iseg_viz_params iseg_viz_default_params(void) {
    struct iseg_viz_params p = {
        .mask_alpha    = 0.45f,
        .outline_width = 2,
        .box_width     = 2,
        .text_scale    = 0,
        .draw_boxes    = true,
        .draw_masks    = true,
        .draw_labels   = true,
    };
    return p;
}

/* ---- pixels ---- */

static inline uint8_t *pixel(struct iseg_image *img, uint32_t x, uint32_t y) {
    return (uint8_t *)img->data + ((size_t)y * img->w + x) * 3;
}

/* Fill [x0, x1) x [y0, y1), clipped to the image. */
static void fill_rect(struct iseg_image *img, int64_t x0, int64_t y0, int64_t x1, int64_t y1,
                      const uint8_t rgb[3]) {
    if (x0 < 0) x0 = 0;
    if (y0 < 0) y0 = 0;
    if (x1 > img->w) x1 = img->w;
    if (y1 > img->h) y1 = img->h;
    for (int64_t y = y0; y < y1; y++) {
        uint8_t *p = pixel(img, (uint32_t)x0, (uint32_t)y);
        for (int64_t x = x0; x < x1; x++, p += 3) p[0] = rgb[0], p[1] = rgb[1], p[2] = rgb[2];
    }
}

/* ---- mask spans ---- */

struct span {
    uint32_t a, b; /* rows [a, b) */
};

/* Per-column spans of one mask: column x owns sp[first[x] .. first[x + 1]). */
struct spans {
    struct span *sp;    /* (cap) */
    size_t      *first; /* (w + 1) */
    size_t       cap;
};

/* Upper bound on the spans of r: each run of 1s, plus one per column boundary it crosses. */
static size_t spans_bound(const struct iseg_rle *r) { return r->m / 2 + (size_t)r->w + 1; }

/* Build the spans of a validated RLE whose spans fit s->cap. Touching spans (a 0-length run of
 * 0s in between, allowed in a non-canonical RLE) are merged, since the erosion must see one
 * span there. */
static void spans_build(struct spans *s, const struct iseg_rle *r) {
    size_t   ns = 0, next_col = 0;
    uint64_t pos = 0;
    uint32_t h   = r->h;
    for (size_t i = 0; i < r->m; i++) {
        uint64_t len = r->cnts[i];
        if (i % 2 == 1) {
            uint64_t at = pos, left = len;
            while (left > 0) {
                size_t   x = (size_t)(at / h);
                uint32_t y = (uint32_t)(at % h);
                uint64_t k = left < (uint64_t)(h - y) ? left : (uint64_t)(h - y);
                while (next_col <= x) s->first[next_col++] = ns;
                if (ns > s->first[x] && s->sp[ns - 1].b == y) {
                    s->sp[ns - 1].b = (uint32_t)(y + k);
                } else {
                    ISEG_ASSERT(ns < s->cap);
                    s->sp[ns++] = (struct span){y, (uint32_t)(y + k)};
                }
                at += k;
                left -= k;
            }
        }
        pos += len;
    }
    while (next_col <= r->w) s->first[next_col++] = ns;
}

/* out = in eroded by r (spans shorter than 2r + 1 vanish); returns the count. */
static size_t erode(struct span *out, const struct span *in, size_t n, uint32_t r) {
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (in[i].b - in[i].a > 2 * r) out[k++] = (struct span){in[i].a + r, in[i].b - r};
    return k;
}

/* out = a ∩ (b eroded by r); all lists sorted and disjoint. out may not alias a or b. */
static size_t intersect_eroded(struct span *out, const struct span *a, size_t na,
                               const struct span *b, size_t nb, uint32_t r) {
    size_t i = 0, j = 0, k = 0;
    while (i < na && j < nb) {
        if (b[j].b - b[j].a <= 2 * r) {
            j++;
            continue;
        }
        uint32_t lo = a[i].a > b[j].a + r ? a[i].a : b[j].a + r;
        uint32_t hi = a[i].b < b[j].b - r ? a[i].b : b[j].b - r;
        if (lo < hi) out[k++] = (struct span){lo, hi};
        if (a[i].b < b[j].b - r) i++;
        else j++;
    }
    return k;
}

static void blend_mask(struct iseg_image *img, const struct spans *s, const uint8_t rgb[3],
                       uint32_t A) {
    if (A == 0) return;
    uint32_t inv = 256 - A, c0 = rgb[0] * A + 128, c1 = rgb[1] * A + 128, c2 = rgb[2] * A + 128;
    for (uint32_t x = 0; x < img->w; x++) {
        for (size_t i = s->first[x]; i < s->first[x + 1]; i++) {
            for (uint32_t y = s->sp[i].a; y < s->sp[i].b; y++) {
                uint8_t *p = pixel(img, x, y);
                p[0]       = (uint8_t)((p[0] * inv + c0) >> 8);
                p[1]       = (uint8_t)((p[1] * inv + c1) >> 8);
                p[2]       = (uint8_t)((p[2] * inv + c2) >> 8);
            }
        }
    }
}

/* Paint the outline of width t (>= 1): per column, the spans minus the interior. cur and tmp
 * hold at least h / 2 + 1 spans each (the most a column can have). */
static void draw_outline(struct iseg_image *img, const struct spans *s, uint32_t t,
                         const uint8_t rgb[3], struct span *cur, struct span *tmp) {
    uint32_t W = img->w;
    for (uint32_t x = 0; x < W; x++) {
        const struct span *col = s->sp + s->first[x];
        size_t             n   = s->first[x + 1] - s->first[x];
        if (n == 0) continue;
        size_t ni = 0;
        /* columns beyond the image are empty: near the left/right edges nothing is interior */
        if (x >= t && (uint64_t)x + t < W) {
            ni = erode(cur, col, n, t);
            for (uint32_t dx = 1; dx <= t && ni > 0; dx++) {
                uint32_t r = (uint32_t)sqrt((double)t * t - (double)dx * dx);
                while ((uint64_t)(r + 1) * (r + 1) + (uint64_t)dx * dx <= (uint64_t)t * t) r++;
                while ((uint64_t)r * r + (uint64_t)dx * dx > (uint64_t)t * t) r--;
                for (int side = -1; side <= 1 && ni > 0; side += 2) {
                    uint32_t xx = side < 0 ? x - dx : x + dx;
                    ni          = intersect_eroded(tmp, cur, ni, s->sp + s->first[xx],
                                                   s->first[xx + 1] - s->first[xx], r);
                    struct span *sw = cur;
                    cur             = tmp;
                    tmp             = sw;
                }
            }
        }
        /* col minus interior (interior is a subset of col) */
        size_t j = 0;
        for (size_t i = 0; i < n; i++) {
            uint32_t y = col[i].a;
            while (j < ni && cur[j].a < col[i].b) {
                for (; y < cur[j].a; y++) memcpy(pixel(img, x, y), rgb, 3);
                y = cur[j].b;
                j++;
            }
            for (; y < col[i].b; y++) memcpy(pixel(img, x, y), rgb, 3);
        }
    }
}

/* ---- boxes and labels ---- */

struct ibox {
    int64_t x0, y0, x1, y1; /* [x0, x1) x [y0, y1), at least 1 x 1 */
};

static int64_t round_coord(double v) {
    if (v < -1e9) v = -1e9;
    if (v > 1e9) v = 1e9;
    return (int64_t)floor(v + 0.5);
}

static struct ibox box_pixels(const struct iseg_viz_det *d) {
    struct ibox b;
    b.x0 = round_coord(d->x);
    b.y0 = round_coord(d->y);
    b.x1 = round_coord((double)d->x + d->w);
    b.y1 = round_coord((double)d->y + d->h);
    if (b.x1 <= b.x0) b.x1 = b.x0 + 1;
    if (b.y1 <= b.y0) b.y1 = b.y0 + 1;
    return b;
}

static void draw_box(struct iseg_image *img, const struct ibox *b, int64_t bw,
                     const uint8_t rgb[3]) {
    /* a box narrower than two bands is filled, never drawn beyond its edges */
    int64_t top = b->y0 + bw < b->y1 ? b->y0 + bw : b->y1;
    int64_t bot = b->y1 - bw > b->y0 ? b->y1 - bw : b->y0;
    int64_t lft = b->x0 + bw < b->x1 ? b->x0 + bw : b->x1;
    int64_t rgt = b->x1 - bw > b->x0 ? b->x1 - bw : b->x0;
    fill_rect(img, b->x0, b->y0, b->x1, top, rgb);
    fill_rect(img, b->x0, bot, b->x1, b->y1, rgb);
    fill_rect(img, b->x0, b->y0, lft, b->y1, rgb);
    fill_rect(img, rgt, b->y0, b->x1, b->y1, rgb);
}

/* "label 0.98", "label", "0.98" or "" into buf. Formatted by hand: printf's %f follows the
 * locale's decimal point. */
static void label_text(char *buf, size_t cap, const struct iseg_viz_det *d) {
    const char *label = d->label ? d->label : "";
    bool        score = d->score >= 0; /* false for NaN too */
    if (!score) {
        snprintf(buf, cap, "%.200s", label);
        return;
    }
    double v      = d->score > 1e6 ? 1e6 : d->score;
    long   hund   = (long)floor(v * 100 + 0.5);
    snprintf(buf, cap, "%.200s%s%ld.%02ld", label, *label ? " " : "", hund / 100, hund % 100);
}

static void draw_label(struct iseg_image *img, const struct ibox *b, const char *text,
                       int scale, const uint8_t rgb[3]) {
    if (b->x1 <= 0 || b->y1 <= 0 || b->x0 >= img->w || b->y0 >= img->h) return;
    int tw, th;
    iseg_viz_text_size(text, scale, &tw, &th);
    int64_t pad_x = 2 * (int64_t)scale, pad_y = scale;
    int64_t w = tw + 2 * pad_x, h = th + 2 * pad_y, W = img->w, H = img->h;
    /* on the box's top edge, or inside the box when there is no room above */
    int64_t left = b->x0, top = b->y0 - h;
    if (top < 0) top = b->y0 < 0 ? 0 : b->y0;
    if (left + w > W) left = W - w;
    if (left < 0) left = 0;
    if (top + h > H) top = H - h;
    if (top < 0) top = 0;
    fill_rect(img, left, top, left + w, top + h, rgb);
    if (left + pad_x < W && top + pad_y < H && left + pad_x <= INT32_MAX &&
        top + pad_y <= INT32_MAX)
        iseg_viz_text(img, (int)(left + pad_x), (int)(top + pad_y), text, scale, WHITE);
}

/* ---- the overlay ---- */

struct order_key {
    double key; /* score, or -1 when hidden */
    size_t i;
};

static int cmp_order(const void *pa, const void *pb) {
    const struct order_key *a = pa, *b = pb;
    if (a->key != b->key) return a->key < b->key ? -1 : 1;
    return a->i < b->i ? -1 : a->i > b->i;
}

static int auto_scale(const struct iseg_image *img) {
    double s = floor(sqrt((double)img->w * img->h) / 640.0 + 0.5);
    return s < 1 ? 1 : s > ISEG_VIZ_MAX_SCALE ? ISEG_VIZ_MAX_SCALE : (int)s;
}

enum iseg_status iseg_viz_overlay(struct iseg_image *img, const struct iseg_viz_det *dets,
                                  size_t n, const struct iseg_viz_params *p) {
    ISEG_ASSERT(img && (dets || n == 0));
    struct iseg_viz_params dflt = iseg_viz_default_params();
    if (!p) p = &dflt;
    if (!img->data || img->c != 3 || img->depth != 8 || img->w == 0 || img->h == 0)
        return ISEG_STATUS_EINVAL;
    if (!(p->mask_alpha >= 0 && p->mask_alpha <= 1) || p->outline_width < 0 ||
        p->outline_width > ISEG_VIZ_MAX_WIDTH || p->box_width < 0 ||
        p->box_width > ISEG_VIZ_MAX_WIDTH || p->text_scale < 0 ||
        p->text_scale > ISEG_VIZ_MAX_SCALE)
        return ISEG_STATUS_EINVAL;

    /* check everything first, so that an error leaves the image untouched */
    size_t span_cap = 0;
    for (size_t i = 0; i < n; i++) {
        const struct iseg_viz_det *d = &dets[i];
        if (!isfinite(d->x) || !isfinite(d->y) || !isfinite(d->w) || !isfinite(d->h) ||
            d->w < 0 || d->h < 0)
            return ISEG_STATUS_EINVAL;
        if (!d->mask) continue;
        if (d->mask->h != img->h || d->mask->w != img->w) return ISEG_STATUS_EINVAL;
        enum iseg_status st = iseg_rle_validate(d->mask);
        if (st != ISEG_STATUS_OK) return st;
        if (spans_bound(d->mask) > span_cap) span_cap = spans_bound(d->mask);
    }

    enum iseg_status  st    = ISEG_STATUS_ENOMEM;
    struct order_key *order = iseg__malloc_array(n ? n : 1, sizeof(*order));
    struct spans      s     = {.cap = span_cap};
    s.sp                    = iseg__malloc_array(span_cap ? span_cap : 1, sizeof(*s.sp));
    s.first                 = iseg__malloc_array((size_t)img->w + 1, sizeof(*s.first));
    size_t       col_cap    = (size_t)img->h / 2 + 2;
    struct span *cur        = iseg__malloc_array(col_cap, sizeof(*cur));
    struct span *tmp        = iseg__malloc_array(col_cap, sizeof(*tmp));
    if (!order || !s.sp || !s.first || !cur || !tmp) goto out_free;

    for (size_t i = 0; i < n; i++) {
        float sc = dets[i].score;
        order[i] = (struct order_key){sc >= 0 ? (double)sc : -1.0, i};
    }
    qsort(order, n, sizeof(*order), cmp_order);

    uint32_t A = (uint32_t)lrintf(p->mask_alpha * 256.0f);
    for (size_t k = 0; k < n; k++) {
        const struct iseg_viz_det *d = &dets[order[k].i];
        uint8_t                    rgb[3];
        iseg_viz_color(d->color, rgb);
        if (p->draw_masks && d->mask) {
            spans_build(&s, d->mask);
            blend_mask(img, &s, rgb, A);
            if (p->outline_width > 0)
                draw_outline(img, &s, (uint32_t)p->outline_width, rgb, cur, tmp);
        }
        if (p->draw_boxes && p->box_width > 0) {
            struct ibox b = box_pixels(d);
            draw_box(img, &b, p->box_width, rgb);
        }
    }
    if (p->draw_labels) {
        int scale = p->text_scale ? p->text_scale : auto_scale(img);
        for (size_t k = 0; k < n; k++) {
            const struct iseg_viz_det *d = &dets[order[k].i];
            char                       text[256];
            label_text(text, sizeof(text), d);
            if (!text[0]) continue;
            uint8_t rgb[3];
            iseg_viz_color(d->color, rgb);
            struct ibox b = box_pixels(d);
            draw_label(img, &b, text, scale, rgb);
        }
    }
    st = ISEG_STATUS_OK;

out_free:
    iseg__free(tmp);
    iseg__free(cur);
    iseg__free(s.first);
    iseg__free(s.sp);
    iseg__free(order);
    return st;
}
