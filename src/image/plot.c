/* plot.c - a tiny raster line plotter (precision-recall curves) with a built-in bitmap font.
 *
 * Coordinates: pixel (i, j) covers [i, i+1) x [j, j+1), so its centre is (i + 0.5, j + 0.5).
 * A 2-pixel line fills the pixels whose centres lie within a band of half-width 1 around it,
 * measured along the minor axis with slope compensation, so that horizontal, vertical and
 * diagonal lines all look equally heavy. No anti-aliasing: every pixel gets an exact series
 * colour, which keeps output deterministic and easy to test.
 */
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "core/core_impl.h"
#include "iseg/plot.h"

/* ---- font ----
 * Our own 5x7 design on an 8-row grid: capitals and digits use rows 0-6 (row 6 is the
 * baseline row), the last row holds the descenders of g, j, p, q, y and , ; _.
 * Glyphs for codes 32..127 in blocks of eight per line group, '#' = ink. Code 127 (a box) is
 * drawn for every byte outside printable ASCII. */
#define GLYPH_W    5
#define GLYPH_H    8
#define GLYPH_CAP  7 /* rows above the descender row */
#define GLYPH_ADV  6 /* horizontal advance: glyph + one column of spacing */
#define GLYPH_FIRST 32
#define GLYPH_COUNT 96
#define FONT_LINE_CHARS (8 * (GLYPH_W + 1) - 1)

static const char FONT[GLYPH_COUNT / 8 * GLYPH_H][FONT_LINE_CHARS + 1] = {
    /*  ' '   '!'   '"'   '#'   '$'   '%'   '&'   '\'' */
    "..... ..#.. .#.#. .#.#. ..#.. ##... .##.. ..#..",
    "..... ..#.. .#.#. .#.#. .#### ##..# #..#. ..#..",
    "..... ..#.. .#.#. ##### #.#.. ...#. #.#.. .#...",
    "..... ..#.. ..... .#.#. .###. ..#.. .#... .....",
    "..... ..#.. ..... ##### ..#.# .#... #.#.# .....",
    "..... ..... ..... .#.#. ####. #..## #..#. .....",
    "..... ..#.. ..... .#.#. ..#.. ...## .##.# .....",
    "..... ..... ..... ..... ..... ..... ..... .....",
    /*  '('   ')'   '*'   '+'   ','   '-'   '.'   '/' */
    "...#. .#... ..... ..... ..... ..... ..... .....",
    "..#.. ..#.. ..#.. ..#.. ..... ..... ..... ....#",
    ".#... ...#. #.#.# ..#.. ..... ..... ..... ...#.",
    ".#... ...#. .###. ##### ..... ##### ..... ..#..",
    ".#... ...#. #.#.# ..#.. ..... ..... ..... .#...",
    "..#.. ..#.. ..#.. ..#.. .##.. ..... .##.. #....",
    "...#. .#... ..... ..... ..#.. ..... .##.. .....",
    "..... ..... ..... ..... .#... ..... ..... .....",
    /*  '0'   '1'   '2'   '3'   '4'   '5'   '6'   '7' */
    ".###. ..#.. .###. ##### ...#. ##### ..##. #####",
    "#...# .##.. #...# ...#. ..##. #.... .#... ....#",
    "#..## ..#.. ....# ..#.. .#.#. ####. #.... ...#.",
    "#.#.# ..#.. ...#. ...#. #..#. ....# ####. ..#..",
    "##..# ..#.. ..#.. ....# ##### ....# #...# .#...",
    "#...# ..#.. .#... #...# ...#. #...# #...# .#...",
    ".###. .###. ##### .###. ...#. .###. .###. .#...",
    "..... ..... ..... ..... ..... ..... ..... .....",
    /*  '8'   '9'   ':'   ';'   '<'   '='   '>'   '?' */
    ".###. .###. ..... ..... ...#. ..... .#... .###.",
    "#...# #...# .##.. .##.. ..#.. ..... ..#.. #...#",
    "#...# #...# .##.. .##.. .#... ##### ...#. ....#",
    ".###. .#### ..... ..... #.... ..... ....# ...#.",
    "#...# ....# .##.. .##.. .#... ##### ...#. ..#..",
    "#...# ...#. .##.. ..#.. ..#.. ..... ..#.. .....",
    ".###. .##.. ..... .#... ...#. ..... .#... ..#..",
    "..... ..... ..... ..... ..... ..... ..... .....",
    /*  '@'   'A'   'B'   'C'   'D'   'E'   'F'   'G' */
    ".###. .###. ####. .###. ###.. ##### ##### .###.",
    "#...# #...# #...# #...# #..#. #.... #.... #...#",
    "....# #...# #...# #.... #...# #.... #.... #....",
    ".##.# ##### ####. #.... #...# ####. ####. #.###",
    "#.#.# #...# #...# #.... #...# #.... #.... #...#",
    "#.#.# #...# #...# #...# #..#. #.... #.... #...#",
    ".###. #...# ####. .###. ###.. ##### #.... .####",
    "..... ..... ..... ..... ..... ..... ..... .....",
    /*  'H'   'I'   'J'   'K'   'L'   'M'   'N'   'O' */
    "#...# .###. ..### #...# #.... #...# #...# .###.",
    "#...# ..#.. ...#. #..#. #.... ##.## #...# #...#",
    "#...# ..#.. ...#. #.#.. #.... #.#.# ##..# #...#",
    "##### ..#.. ...#. ##... #.... #.#.# #.#.# #...#",
    "#...# ..#.. ...#. #.#.. #.... #...# #..## #...#",
    "#...# ..#.. #..#. #..#. #.... #...# #...# #...#",
    "#...# .###. .##.. #...# ##### #...# #...# .###.",
    "..... ..... ..... ..... ..... ..... ..... .....",
    /*  'P'   'Q'   'R'   'S'   'T'   'U'   'V'   'W' */
    "####. .###. ####. .#### ##### #...# #...# #...#",
    "#...# #...# #...# #.... ..#.. #...# #...# #...#",
    "#...# #...# #...# #.... ..#.. #...# #...# #...#",
    "####. #...# ####. .###. ..#.. #...# #...# #.#.#",
    "#.... #.#.# #.#.. ....# ..#.. #...# #...# #.#.#",
    "#.... #..#. #..#. ....# ..#.. #...# .#.#. #.#.#",
    "#.... .##.# #...# ####. ..#.. .###. ..#.. .#.#.",
    "..... ..... ..... ..... ..... ..... ..... .....",
    /*  'X'   'Y'   'Z'   '['   '\\'  ']'   '^'   '_' */
    "#...# #...# ##### .###. ..... .###. ..#.. .....",
    "#...# #...# ....# .#... #.... ...#. .#.#. .....",
    ".#.#. .#.#. ...#. .#... .#... ...#. #...# .....",
    "..#.. ..#.. ..#.. .#... ..#.. ...#. ..... .....",
    ".#.#. ..#.. .#... .#... ...#. ...#. ..... .....",
    "#...# ..#.. #.... .#... ....# ...#. ..... .....",
    "#...# ..#.. ##### .###. ..... .###. ..... .....",
    "..... ..... ..... ..... ..... ..... ..... #####",
    /*  '`'   'a'   'b'   'c'   'd'   'e'   'f'   'g' */
    ".#... ..... #.... ..... ....# ..... ..##. .....",
    "..#.. ..... #.... ..... ....# ..... .#..# .....",
    "...#. .###. ####. .###. .#### .###. .#... .####",
    "..... ....# #...# #.... #...# #...# ###.. #...#",
    "..... .#### #...# #.... #...# ##### .#... #...#",
    "..... #...# #...# #...# #...# #.... .#... .####",
    "..... .#### ####. .###. .#### .###. .#... ....#",
    "..... ..... ..... ..... ..... ..... ..... .###.",
    /*  'h'   'i'   'j'   'k'   'l'   'm'   'n'   'o' */
    "#.... ..#.. ...#. #.... .#... ..... ..... .....",
    "#.... ..... ..... #.... .#... ..... ..... .....",
    "#.##. .##.. ..##. #..#. .#... ##.#. #.##. .###.",
    "##..# ..#.. ...#. #.#.. .#... #.#.# ##..# #...#",
    "#...# ..#.. ...#. ##... .#... #.#.# #...# #...#",
    "#...# ..#.. ...#. #.#.. .#... #.#.# #...# #...#",
    "#...# .###. #..#. #..#. ..##. #.#.# #...# .###.",
    "..... ..... .##.. ..... ..... ..... ..... .....",
    /*  'p'   'q'   'r'   's'   't'   'u'   'v'   'w' */
    "..... ..... ..... ..... .#... ..... ..... .....",
    "..... ..... ..... ..... .#... ..... ..... .....",
    "####. .#### #.##. .#### ###.. #...# #...# #...#",
    "#...# #...# ##..# #.... .#... #...# #...# #...#",
    "#...# #...# #.... .###. .#... #...# #...# #.#.#",
    "####. .#### #.... ....# .#..# #..## .#.#. #.#.#",
    "#.... ....# #.... ####. ..##. .##.# ..#.. .#.#.",
    "#.... ....# ..... ..... ..... ..... ..... .....",
    /*  'x'   'y'   'z'   '{'   '|'   '}'   '~'   DEL */
    "..... ..... ..... ...## ..#.. ##... ..... #####",
    "..... ..... ..... ..#.. ..#.. ..#.. ..... #...#",
    "#...# #...# ##### ..#.. ..#.. ..#.. .#... #...#",
    ".#.#. #...# ...#. .#... ..#.. ...#. #.#.# #...#",
    "..#.. #...# ..#.. ..#.. ..#.. ..#.. ...#. #...#",
    ".#.#. .#### .#... ..#.. ..#.. ..#.. ..... #...#",
    "#...# ....# ##### ...## ..#.. ##... ..... #####",
    "..... .###. ..... ..... ..... ..... ..... .....",
};
_Static_assert(sizeof(FONT) / sizeof(FONT[0]) == GLYPH_COUNT / 8 * GLYPH_H, "12 blocks of 8 rows");

static bool glyph_ink(unsigned char ch, int row, int col) {
    unsigned g = (ch >= GLYPH_FIRST && ch < GLYPH_FIRST + GLYPH_COUNT) ? ch - GLYPH_FIRST
                                                                      : GLYPH_COUNT - 1;
    return FONT[(g / 8) * GLYPH_H + (unsigned)row][(g % 8) * (GLYPH_W + 1) + (unsigned)col] == '#';
}

/* ---- canvas ---- */

struct canvas {
    uint8_t *px;             /* (h, w, 3) */
    int      w, h;
    int      x0, y0, x1, y1; /* clip rectangle, [x0, x1) x [y0, y1) */
};

static const uint8_t WHITE[3]  = {255, 255, 255};
static const uint8_t INK[3]    = {25, 25, 25};
static const uint8_t FRAME[3]  = {70, 70, 70};
static const uint8_t GRID[3]   = {228, 228, 228};
static const uint8_t BORDER[3] = {190, 190, 190};

static void clip_set(struct canvas *c, int x0, int y0, int x1, int y1) {
    c->x0 = x0 < 0 ? 0 : x0;
    c->y0 = y0 < 0 ? 0 : y0;
    c->x1 = x1 > c->w ? c->w : x1;
    c->y1 = y1 > c->h ? c->h : y1;
}

static void clip_reset(struct canvas *c) { clip_set(c, 0, 0, c->w, c->h); }

static void put(struct canvas *c, int x, int y, const uint8_t rgb[3]) {
    if (x < c->x0 || x >= c->x1 || y < c->y0 || y >= c->y1) return;
    uint8_t *p = c->px + ((size_t)y * (size_t)c->w + (size_t)x) * 3;
    p[0]       = rgb[0];
    p[1]       = rgb[1];
    p[2]       = rgb[2];
}

static void fill_rect(struct canvas *c, int x0, int y0, int x1, int y1, const uint8_t rgb[3]) {
    for (int y = y0; y < y1; y++)
        for (int x = x0; x < x1; x++) put(c, x, y, rgb);
}

static void hline(struct canvas *c, int x0, int x1, int y, const uint8_t rgb[3]) {
    fill_rect(c, x0, y, x1 + 1, y + 1, rgb);
}

static void vline(struct canvas *c, int x, int y0, int y1, const uint8_t rgb[3]) {
    fill_rect(c, x, y0, x + 1, y1 + 1, rgb);
}

/* ---- text ---- */

/* UTF-8 continuation bytes take no room, so each non-ASCII character shows as one box. */
static bool is_cont(char ch) { return ((unsigned char)ch & 0xC0) == 0x80; }

/* Width in pixels of s drawn at the given scale (no trailing spacing column). */
static int text_width(const char *s, int scale) {
    int n = 0;
    for (; s && *s && n < 4096; s++) n += !is_cont(*s); /* nothing wider fits an image */
    return n ? (n * GLYPH_ADV - 1) * scale : 0;
}

static int text_height(int scale) { return GLYPH_H * scale; }

/* Draw s with its top-left corner at (x, y); each font pixel becomes a scale x scale square. */
static void draw_text(struct canvas *c, int x, int y, const char *s, int scale,
                      const uint8_t rgb[3]) {
    if (!s) return;
    for (; *s && x < c->x1; s++) {
        if (is_cont(*s)) continue;
        int gx = x;
        x += GLYPH_ADV * scale;
        if (gx + GLYPH_W * scale <= c->x0) continue;
        for (int r = 0; r < GLYPH_H; r++)
            for (int k = 0; k < GLYPH_W; k++)
                if (glyph_ink((unsigned char)*s, r, k))
                    fill_rect(c, gx + k * scale, y + r * scale, gx + (k + 1) * scale,
                              y + (r + 1) * scale, rgb);
    }
}

/* Draw s rotated a quarter turn counter-clockwise (reading upwards). (x, y) is the top-left
 * corner of the rotated text box, which is text_height() wide and text_width() tall. */
static void draw_text_up(struct canvas *c, int x, int y, const char *s, int scale,
                         const uint8_t rgb[3]) {
    int tw = text_width(s, scale);
    if (tw == 0) return;
    int pos = 0; /* x offset of the glyph along the unrotated text */
    for (; *s; s++) {
        if (is_cont(*s)) continue;
        for (int r = 0; r < GLYPH_H; r++)
            for (int k = 0; k < GLYPH_W; k++) {
                if (!glyph_ink((unsigned char)*s, r, k)) continue;
                /* unrotated pixel (u, v) maps to (x + v, y + tw - 1 - u) */
                int u = pos + k * scale, v = r * scale;
                fill_rect(c, x + v, y + tw - u - scale, x + v + scale, y + tw - u, rgb);
            }
        pos += GLYPH_ADV * scale;
    }
}

/* ---- lines ---- */

#define LINE_HALF_WIDTH 1.0 /* lines are 2 px wide */

/* Fill the 2x2 pixels whose centres lie in [x - hw, x + hw) x [y - hw, y + hw): caps and
 * joins. Its half-open rule matches the segment band, so staircase corners stay square. */
static void stamp(struct canvas *c, double x, double y, const uint8_t rgb[3]) {
    int i0 = (int)ceil(x - LINE_HALF_WIDTH - 0.5), i1 = (int)ceil(x + LINE_HALF_WIDTH - 0.5);
    int j0 = (int)ceil(y - LINE_HALF_WIDTH - 0.5), j1 = (int)ceil(y + LINE_HALF_WIDTH - 0.5);
    fill_rect(c, i0, j0, i1, j1, rgb);
}

/* Clip the segment to [xa, xb] x [ya, yb] (Liang-Barsky); false when nothing is left. */
static bool clip_segment(double *x0, double *y0, double *x1, double *y1, double xa, double ya,
                         double xb, double yb) {
    double t0 = 0, t1 = 1, dx = *x1 - *x0, dy = *y1 - *y0;
    double p[4] = {-dx, dx, -dy, dy};
    double q[4] = {*x0 - xa, xb - *x0, *y0 - ya, yb - *y0};
    for (int k = 0; k < 4; k++) {
        if (p[k] == 0) {
            if (q[k] < 0) return false;
            continue;
        }
        double t = q[k] / p[k];
        if (p[k] < 0) {
            if (t > t1) return false;
            if (t > t0) t0 = t;
        } else {
            if (t < t0) return false;
            if (t < t1) t1 = t;
        }
    }
    double ax = *x0 + t0 * dx, ay = *y0 + t0 * dy;
    double bx = *x0 + t1 * dx, by = *y0 + t1 * dy;
    *x0 = ax, *y0 = ay, *x1 = bx, *y1 = by;
    return true;
}

/* A 2-pixel segment between pixel-space points (centres at half-integers). */
static void draw_segment(struct canvas *c, double x0, double y0, double x1, double y1,
                         const uint8_t rgb[3]) {
    /* Clip a little outside the clip rectangle so the band and caps still reach its edges. */
    if (!clip_segment(&x0, &y0, &x1, &y1, c->x0 - 3.0, c->y0 - 3.0, c->x1 + 3.0, c->y1 + 3.0))
        return;
    double dx = x1 - x0, dy = y1 - y0;
    if (fabs(dx) >= fabs(dy) && dx != 0) {
        double m  = dy / dx;
        double ht = LINE_HALF_WIDTH * sqrt(1 + m * m);
        int    i0 = (int)ceil(fmin(x0, x1) - 0.5), i1 = (int)floor(fmax(x0, x1) - 0.5);
        for (int i = i0; i <= i1; i++) {
            double y = y0 + (i + 0.5 - x0) * m;
            for (int j = (int)ceil(y - ht - 0.5); j < (int)ceil(y + ht - 0.5); j++)
                put(c, i, j, rgb);
        }
    } else if (dy != 0) {
        double m  = dx / dy;
        double ht = LINE_HALF_WIDTH * sqrt(1 + m * m);
        int    j0 = (int)ceil(fmin(y0, y1) - 0.5), j1 = (int)floor(fmax(y0, y1) - 0.5);
        for (int j = j0; j <= j1; j++) {
            double x = x0 + (j + 0.5 - y0) * m;
            for (int i = (int)ceil(x - ht - 0.5); i < (int)ceil(x + ht - 0.5); i++)
                put(c, i, j, rgb);
        }
    }
    stamp(c, x0, y0, rgb);
    stamp(c, x1, y1, rgb);
}

/* ---- axes ---- */

#define MAX_TICKS 32

struct ticks {
    int    n;
    double v[MAX_TICKS];
    int    decimals; /* digits after the point in the labels */
};

/* Ticks at multiples of a 1-2-5 step giving about `target` intervals over [lo, hi]. */
static void nice_ticks(double lo, double hi, int target, struct ticks *t) {
    double raw  = (hi - lo) / target;
    double mag  = pow(10, floor(log10(raw)));
    double norm = raw / mag;
    double step = (norm <= 1 + 1e-9 ? 1 : norm <= 2 + 1e-9 ? 2 : norm <= 5 + 1e-9 ? 5 : 10) * mag;
    double eps  = (hi - lo) * 1e-9;
    double k0 = ceil((lo - eps) / step), k1 = floor((hi + eps) / step);
    t->n        = 0;
    for (double k = k0; k <= k1 && t->n < MAX_TICKS; k++) {
        double v = k * step;
        if (fabs(v) < step * 1e-9) v = 0; /* no "-0.0" */
        t->v[t->n++] = v;
    }
    int d       = -(int)floor(log10(step) + 1e-9);
    t->decimals = d < 0 ? 0 : d > 9 ? 9 : d;
}

/* Format v with d decimals without printf's %f, whose decimal point follows the C locale. */
static void format_tick(double v, int d, char *buf, size_t len) {
    double scale = pow(10, d);
    if (!(fabs(v) * scale < 9e15)) {
        snprintf(buf, len, "%.3g", v);
        return;
    }
    long long q    = llround(v * scale);
    bool      neg  = q < 0;
    long long a    = neg ? -q : q;
    long long p10  = llround(scale);
    long long ipart = a / p10, fpart = a % p10;
    if (d == 0) snprintf(buf, len, "%s%lld", neg ? "-" : "", ipart);
    else snprintf(buf, len, "%s%lld.%0*lld", neg ? "-" : "", ipart, d, fpart);
}

/* ---- layout ---- */

struct layout {
    int ts;             /* text scale: each font pixel is ts x ts (2 at 640x480) */
    int pad, gap, tick; /* spacing around the axes, between text blocks, tick length */
    int L, R, T, B;     /* axes frame: columns L..R, rows T..B inclusive */
    struct ticks xt, yt;
    char xlab[MAX_TICKS][32], ylab[MAX_TICKS][32];
};

static bool has_text(const char *s) { return s && *s; }

/* Place the frame given the tick labels for `target` intervals per axis. */
static void place_frame(const struct iseg_plot_params *p, struct layout *ly, int target) {
    nice_ticks(p->xmin, p->xmax, target, &ly->xt);
    nice_ticks(p->ymin, p->ymax, target, &ly->yt);
    int ytw = 0, xtw_last = 0;
    for (int i = 0; i < ly->yt.n; i++) {
        format_tick(ly->yt.v[i], ly->yt.decimals, ly->ylab[i], sizeof(ly->ylab[i]));
        int w = text_width(ly->ylab[i], ly->ts);
        if (w > ytw) ytw = w;
    }
    for (int i = 0; i < ly->xt.n; i++) {
        format_tick(ly->xt.v[i], ly->xt.decimals, ly->xlab[i], sizeof(ly->xlab[i]));
        xtw_last = text_width(ly->xlab[i], ly->ts);
    }
    int th = text_height(ly->ts);
    ly->T  = ly->pad + (has_text(p->title) ? th + ly->pad : th / 2);
    ly->B  = p->height - 1 - ly->pad - ly->tick - ly->gap - th -
            (has_text(p->xlabel) ? ly->gap + th : 0);
    ly->L = ly->pad + (has_text(p->ylabel) ? th + ly->gap : 0) + ytw + ly->gap + ly->tick;
    int right = xtw_last / 2 + ly->pad;
    if (right < 2 * ly->pad) right = 2 * ly->pad;
    ly->R = p->width - 1 - right;
}

/* Do neighbouring tick labels keep clear of each other? */
static bool ticks_fit(const struct iseg_plot_params *p, const struct layout *ly) {
    int wmax = 0;
    for (int i = 0; i < ly->xt.n; i++) {
        int w = text_width(ly->xlab[i], ly->ts);
        if (w > wmax) wmax = w;
    }
    double xsp = ly->xt.n > 1
                     ? (ly->xt.v[1] - ly->xt.v[0]) / (p->xmax - p->xmin) * (ly->R - ly->L)
                     : 1e9;
    double ysp = ly->yt.n > 1
                     ? (ly->yt.v[1] - ly->yt.v[0]) / (p->ymax - p->ymin) * (ly->B - ly->T)
                     : 1e9;
    return xsp >= wmax + 2 * ly->gap && ysp >= text_height(ly->ts) + ly->gap;
}

static bool make_layout(const struct iseg_plot_params *p, struct layout *ly) {
    /* Text scale 2 at 640x480 (text about as tall as matplotlib's default), 1 for small images,
     * growing with larger ones; all spacing follows it. */
    double k  = fmin(p->width / 640.0, p->height / 480.0);
    int    ts = (int)lround(2 * k);
    ly->ts    = ts < 1 ? 1 : ts;
    ly->pad   = 6 * ly->ts;
    ly->gap   = 3 * ly->ts;
    ly->tick  = (5 * ly->ts + 1) / 2;
    /* Fewer, coarser ticks until their labels stop colliding. */
    for (int target = 5; target >= 1; target--) {
        place_frame(p, ly, target);
        if (ticks_fit(p, ly)) break;
    }
    return ly->R - ly->L >= 40 && ly->B - ly->T >= 40;
}

/* Pixel-space coordinates of a data point: xmin maps to the centre of frame column L. */
static double map_x(const struct iseg_plot_params *p, const struct layout *ly, double x) {
    double v = ly->L + 0.5 + (x - p->xmin) / (p->xmax - p->xmin) * (ly->R - ly->L);
    /* Keep absurd values finite and small enough for int conversion after clipping; the
     * slope error this introduces is far below a pixel for anything near the axes. */
    return v < -1e7 ? -1e7 : v > 1e7 ? 1e7 : v;
}

static double map_y(const struct iseg_plot_params *p, const struct layout *ly, double y) {
    double v = ly->B + 0.5 - (y - p->ymin) / (p->ymax - p->ymin) * (ly->B - ly->T);
    return v < -1e7 ? -1e7 : v > 1e7 ? 1e7 : v;
}

static void draw_axes(struct canvas *c, const struct iseg_plot_params *p,
                      const struct layout *ly) {
    int tick = ly->tick, gap = ly->gap;
    for (int i = 0; i < ly->xt.n; i++) {
        int x = ly->L + (int)lround((ly->xt.v[i] - p->xmin) / (p->xmax - p->xmin) *
                                    (ly->R - ly->L));
        vline(c, x, ly->T + 1, ly->B - 1, GRID);
        vline(c, x, ly->B + 1, ly->B + tick, FRAME);
        int tw = text_width(ly->xlab[i], ly->ts);
        draw_text(c, x - tw / 2, ly->B + tick + gap, ly->xlab[i], ly->ts, INK);
    }
    for (int i = 0; i < ly->yt.n; i++) {
        int y = ly->B - (int)lround((ly->yt.v[i] - p->ymin) / (p->ymax - p->ymin) *
                                    (ly->B - ly->T));
        hline(c, ly->L + 1, ly->R - 1, y, GRID);
        hline(c, ly->L - tick, ly->L - 1, y, FRAME);
        int tw = text_width(ly->ylab[i], ly->ts);
        /* centre the digits (cap height), not the descender row, on the tick */
        draw_text(c, ly->L - tick - gap - tw, y - GLYPH_CAP * ly->ts / 2, ly->ylab[i],
                  ly->ts, INK);
    }
    hline(c, ly->L, ly->R, ly->T, FRAME);
    hline(c, ly->L, ly->R, ly->B, FRAME);
    vline(c, ly->L, ly->T, ly->B, FRAME);
    vline(c, ly->R, ly->T, ly->B, FRAME);
}

static void draw_labels(struct canvas *c, const struct iseg_plot_params *p,
                        const struct layout *ly) {
    int pad = ly->pad, gap = ly->gap, tick = ly->tick;
    int cx  = (ly->L + ly->R) / 2, cy = (ly->T + ly->B) / 2;
    if (has_text(p->title)) {
        int bold = (ly->ts + 1) / 2;
        int tw   = text_width(p->title, ly->ts) + bold;
        int x    = cx - tw / 2;
        if (x + tw > p->width - pad) x = p->width - pad - tw;
        if (x < pad) x = pad;
        /* bold: strike twice, half a font pixel apart */
        draw_text(c, x, pad, p->title, ly->ts, INK);
        draw_text(c, x + bold, pad, p->title, ly->ts, INK);
    }
    if (has_text(p->xlabel)) {
        int tw = text_width(p->xlabel, ly->ts);
        int y  = ly->B + tick + gap + text_height(ly->ts) + gap;
        draw_text(c, cx - tw / 2, y, p->xlabel, ly->ts, INK);
    }
    if (has_text(p->ylabel)) {
        int tw = text_width(p->ylabel, ly->ts);
        draw_text_up(c, pad, cy - tw / 2, p->ylabel, ly->ts, INK);
    }
}

static void draw_series(struct canvas *c, const struct iseg_plot_params *p,
                        const struct layout *ly, const struct iseg_plot_series *s) {
    ISEG_ASSERT(s->n == 0 || (s->x && s->y));
    bool   have_prev = false;
    double px = 0, py = 0;
    for (size_t i = 0; i < s->n; i++) {
        if (!isfinite(s->x[i]) || !isfinite(s->y[i])) {
            have_prev = false; /* a gap in the data breaks the line */
            continue;
        }
        double x = map_x(p, ly, s->x[i]), y = map_y(p, ly, s->y[i]);
        if (have_prev) draw_segment(c, px, py, x, y, s->rgb);
        else draw_segment(c, x, y, x, y, s->rgb); /* a lone point still shows as a dot */
        px = x, py = y, have_prev = true;
    }
}

/* ---- legend ---- */

static size_t count_ink(const struct canvas *c, int x0, int y0, int x1, int y1) {
    size_t n = 0;
    x0 = x0 < 0 ? 0 : x0, y0 = y0 < 0 ? 0 : y0;
    x1 = x1 > c->w ? c->w : x1, y1 = y1 > c->h ? c->h : y1;
    for (int y = y0; y < y1; y++)
        for (int x = x0; x < x1; x++) {
            const uint8_t *q = c->px + ((size_t)y * (size_t)c->w + (size_t)x) * 3;
            if (memcmp(q, WHITE, 3) != 0 && memcmp(q, GRID, 3) != 0) n++;
        }
    return n;
}

static void draw_legend(struct canvas *c, const struct layout *ly,
                        const struct iseg_plot_series *s, size_t n_series) {
    size_t n_lab = 0;
    int    tw    = 0;
    for (size_t i = 0; i < n_series; i++) {
        if (!s[i].label) continue;
        n_lab++;
        int w = text_width(s[i].label, ly->ts);
        if (w > tw) tw = w;
    }
    if (n_lab == 0) return;
    int ts = ly->ts;
    int pad = (7 * ts + 1) / 2, swatch = 12 * ts, gap = (7 * ts + 1) / 2, margin = 5 * ts;
    int lead = (5 * ts + 1) / 2; /* between rows */
    int pitch = text_height(ts) + lead;
    int max_w = ly->R - ly->L - 1 - 2 * margin, max_h = ly->B - ly->T - 1 - 2 * margin;
    /* Rows that fit; if some labelled series do not, the last row says how many. */
    int fit = (max_h - 2 * pad + lead) / pitch;
    if (fit < 1 || max_w < 2 * pad + swatch) return; /* no room for a legend at all */
    size_t rows = n_lab < (size_t)fit ? n_lab : (size_t)fit;
    char more[48] = "";
    if (rows < n_lab) {
        snprintf(more, sizeof(more), "(+%zu more)", n_lab - rows + 1);
        int w = text_width(more, ts);
        if (w > tw) tw = w;
    }
    int bw = pad + swatch + gap + tw + pad, bh = 2 * pad + (int)rows * pitch - lead;
    if (bw > max_w) bw = max_w;

    /* Try the corners of the axes, lower left first (empty for most PR curves), and keep the
     * one hiding the fewest curve pixels. */
    int xl = ly->L + 1 + margin, xr = ly->R - margin - bw;
    int yt = ly->T + 1 + margin, yb = ly->B - margin - bh;
    int cand[4][2] = {{xl, yb}, {xr, yb}, {xr, yt}, {xl, yt}};
    int    best = 0;
    size_t best_ink = SIZE_MAX;
    for (int k = 0; k < 4; k++) {
        size_t ink = count_ink(c, cand[k][0], cand[k][1], cand[k][0] + bw, cand[k][1] + bh);
        if (ink < best_ink) best_ink = ink, best = k;
    }
    int x0 = cand[best][0], y0 = cand[best][1];
    fill_rect(c, x0, y0, x0 + bw, y0 + bh, WHITE);
    hline(c, x0, x0 + bw - 1, y0, BORDER);
    hline(c, x0, x0 + bw - 1, y0 + bh - 1, BORDER);
    vline(c, x0, y0, y0 + bh - 1, BORDER);
    vline(c, x0 + bw - 1, y0, y0 + bh - 1, BORDER);

    clip_set(c, x0 + 1, y0 + 1, x0 + bw - 1, y0 + bh - 1);
    size_t row = 0;
    for (size_t i = 0; i < n_series && row < rows; i++) {
        if (!s[i].label) continue;
        int y = y0 + pad + (int)row * pitch;
        if (more[0] && row == rows - 1) {
            draw_text(c, x0 + pad + swatch + gap, y, more, ts, INK);
            break;
        }
        /* swatch centred on the capital letters */
        double sy = y + GLYPH_CAP * ts / 2.0;
        draw_segment(c, x0 + pad + 1.0, sy, x0 + pad + swatch - 1.0, sy, s[i].rgb);
        draw_text(c, x0 + pad + swatch + gap, y, s[i].label, ts, INK);
        row++;
    }
    clip_reset(c);
}

/* ---- public API ---- */

struct iseg_plot_params iseg_plot_default_params(void) {
    struct iseg_plot_params p = {
        .width  = 640,
        .height = 480,
        .title  = NULL,
        .xlabel = NULL,
        .ylabel = NULL,
        .xmin   = 0.0,
        .xmax   = 1.0,
        .ymin   = 0.0,
        .ymax   = 1.0,
    };
    return p;
}

/* Our own choice of 12 hues, dark enough to read on white and spread around the wheel. */
static const uint8_t PALETTE[][3] = {
    {31, 100, 200},  /* blue */
    {220, 60, 40},   /* red */
    {30, 150, 70},   /* green */
    {240, 150, 0},   /* orange */
    {130, 70, 190},  /* purple */
    {0, 170, 185},   /* teal */
    {205, 50, 150},  /* magenta */
    {125, 85, 45},   /* brown */
    {110, 110, 110}, /* grey */
    {160, 170, 0},   /* olive */
    {20, 45, 120},   /* navy */
    {250, 120, 130}, /* salmon */
};

void iseg_plot_default_palette(size_t i, uint8_t rgb[3]) {
    const uint8_t *c = PALETTE[i % (sizeof(PALETTE) / sizeof(PALETTE[0]))];
    rgb[0]           = c[0];
    rgb[1]           = c[1];
    rgb[2]           = c[2];
}

#define PLOT_MAX_SIDE 16384

/* A usable axis range: finite, increasing, and wide enough relative to its values that ticks
 * at 9 decimals or fewer can tell its ends apart (this also keeps tick arithmetic exact). */
static bool range_ok(double lo, double hi) {
    double span = hi - lo;
    return isfinite(lo) && isfinite(hi) && lo < hi && isfinite(span) && span >= 1e-9 &&
           span >= 1e-9 * fmax(fabs(lo), fabs(hi));
}

enum iseg_status iseg_plot_lines(struct iseg_image *out, const struct iseg_plot_series *s,
                                 size_t n_series, const struct iseg_plot_params *p) {
    ISEG_ASSERT(out);
    ISEG_ASSERT(s || n_series == 0);
    memset(out, 0, sizeof(*out));
    struct iseg_plot_params dflt = iseg_plot_default_params();
    if (!p) p = &dflt;
    if (p->width > PLOT_MAX_SIDE || p->height > PLOT_MAX_SIDE) return ISEG_STATUS_ELIMIT;
    if (p->width < 120 || p->height < 100) return ISEG_STATUS_EINVAL;
    if (!range_ok(p->xmin, p->xmax) || !range_ok(p->ymin, p->ymax)) return ISEG_STATUS_EINVAL;

    struct layout *ly = iseg__malloc(sizeof(*ly));
    if (!ly) return ISEG_STATUS_ENOMEM;
    enum iseg_status st = ISEG_STATUS_OK;
    if (!make_layout(p, ly)) {
        st = ISEG_STATUS_EINVAL;
        goto out_free_layout;
    }
    st = iseg_image_alloc(out, (uint32_t)p->width, (uint32_t)p->height, 3, 8);
    if (st != ISEG_STATUS_OK) goto out_free_layout;

    struct canvas c = {.px = out->data, .w = p->width, .h = p->height};
    clip_reset(&c);
    memset(out->data, 255, iseg_image_nbytes(out));
    draw_axes(&c, p, ly);
    /* Curves may run one pixel outside the frame, so a 2-pixel line on an axis (precision 1.0,
     * recall 0.0) stays fully visible. */
    clip_set(&c, ly->L - 1, ly->T - 1, ly->R + 2, ly->B + 2);
    for (size_t i = 0; i < n_series; i++) draw_series(&c, p, ly, &s[i]);
    clip_reset(&c);
    draw_legend(&c, ly, s, n_series);
    draw_labels(&c, p, ly);

out_free_layout:
    iseg__free(ly);
    return st;
}

enum iseg_status iseg_plot_lines_png(const char *path, const struct iseg_plot_series *s,
                                     size_t n_series, const struct iseg_plot_params *p,
                                     char *err, size_t errlen) {
    ISEG_ASSERT(path);
    struct iseg_image img = {0};
    enum iseg_status  st  = iseg_plot_lines(&img, s, n_series, p);
    if (st != ISEG_STATUS_OK) {
        if (err && errlen)
            snprintf(err, errlen, "%s: cannot draw the plot: %s", path, iseg_status_str(st));
        return st;
    }
    st = iseg_png_write(path, &img, err, errlen);
    iseg_image_free(&img);
    return st;
}
