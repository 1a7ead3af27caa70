/* test_rle.c - the COCO mask API: reference vectors from pycocotools (bit-exact), hand-worked
 * cases, hostile strings, and differential tests against naive bitmap implementations. */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF /* the naive frPoly below must round exactly as the reference */
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

#include <yajl/yajl_tree.h>

#include "iseg/mask.h"
#include "rle/rle_impl.h"
#include "test.h"

/* ---- helpers ---- */

static void rle_from_str(struct iseg_rle *r, const char *s, uint32_t h, uint32_t w) {
    ASSERT_OK(iseg_rle_from_string(r, s, strlen(s), h, w));
}

static void assert_rle_str(const struct iseg_rle *r, const char *want) {
    char  *s = NULL;
    size_t n = 0;
    ASSERT_OK(iseg_rle_to_string(r, &s, &n));
    ASSERT_EQ_U64(n, strlen(s));
    ASSERT_EQ_U64(n, iseg_rle_string_len(r));
    ASSERT_STREQ(s, want);
    iseg_free(s);
}

static void assert_counts(const struct iseg_rle *r, const uint32_t *want, size_t m) {
    ASSERT_EQ_U64(r->m, m);
    for (size_t i = 0; i < m; i++)
        ASSERT_MSG(r->cnts[i] == want[i], "cnts[%zu]: got %u, expected %u", i, r->cnts[i],
                   want[i]);
}

static bool rle_equal(const struct iseg_rle *a, const struct iseg_rle *b) {
    return a->h == b->h && a->w == b->w && a->m == b->m &&
           (a->m == 0 || memcmp(a->cnts, b->cnts, a->m * sizeof(uint32_t)) == 0);
}

/* Random column-major mask with runs of mean length ~ 1/p (so both short and long runs). */
static uint8_t *random_mask(uint64_t *rng, uint32_t h, uint32_t w, double p) {
    size_t   n = (size_t)h * w;
    uint8_t *m = malloc(n ? n : 1);
    ASSERT(m);
    uint8_t v = (uint8_t)(test_rand(rng) & 1);
    for (size_t i = 0; i < n; i++) {
        if (test_rand_unif(rng) < p) v ^= 1;
        m[i] = v;
    }
    return m;
}

/* Naive toBbox of a column-major bitmap: tight box, {0,0,0,0} when empty. */
static void naive_bbox(const uint8_t *m, uint32_t h, uint32_t w, double bb[4]) {
    uint32_t x0 = w, y0 = h, x1 = 0, y1 = 0;
    bool     any = false;
    for (uint32_t x = 0; x < w; x++)
        for (uint32_t y = 0; y < h; y++)
            if (m[(size_t)x * h + y]) {
                any = true;
                if (x < x0) x0 = x;
                if (x > x1) x1 = x;
                if (y < y0) y0 = y;
                if (y > y1) y1 = y;
            }
    if (!any) {
        bb[0] = bb[1] = bb[2] = bb[3] = 0;
        return;
    }
    bb[0] = x0;
    bb[1] = y0;
    bb[2] = x1 - x0 + 1;
    bb[3] = y1 - y0 + 1;
}

/* ---- reference vectors (pycocotools) ---- */

static yajl_val vectors_load(void) {
    const char *path = test_shared_path("data/coco-eval/mask_api_vectors.json");
    char       *txt  = test_read_file(path, NULL);
    char        err[512];
    yajl_val    root = yajl_tree_parse(txt, err, sizeof(err));
    free(txt);
    ASSERT_MSG(root && YAJL_IS_OBJECT(root), "cannot parse %s: %s", path, err);
    return root;
}

static yajl_val jget(yajl_val obj, const char *key) {
    const char *path[] = {key, NULL};
    yajl_val    v      = yajl_tree_get(obj, path, yajl_t_any);
    ASSERT_MSG(v, "missing key \"%s\"", key);
    return v;
}

static yajl_val jarr(yajl_val obj, const char *key) {
    yajl_val v = jget(obj, key);
    ASSERT_MSG(YAJL_IS_ARRAY(v), "\"%s\" is not an array", key);
    return v;
}

static size_t jlen(yajl_val arr) { return arr->u.array.len; }
static yajl_val jat(yajl_val arr, size_t i) { return arr->u.array.values[i]; }

/* The number exactly as written (strtod rounds correctly; Python wrote shortest reprs). */
static double jnum(yajl_val v) {
    ASSERT(YAJL_IS_NUMBER(v));
    return strtod(YAJL_GET_NUMBER(v), NULL);
}

static const char *jstr(yajl_val v) {
    ASSERT(YAJL_IS_STRING(v));
    return YAJL_GET_STRING(v);
}

static uint32_t jdim(yajl_val obj, const char *key) {
    double d = jnum(jget(obj, key));
    ASSERT(d >= 0 && d <= 1e6 && d == floor(d));
    return (uint32_t)d;
}

static void assert_bbox(const double got[4], yajl_val want) {
    ASSERT_EQ_U64(jlen(want), 4);
    for (size_t i = 0; i < 4; i++) ASSERT_EQ_DBL(got[i], jnum(jat(want, i)));
}

TEST(vectors_encode) {
    yajl_val root = vectors_load(), cases = jarr(root, "encode");
    ASSERT(jlen(cases) > 0);
    for (size_t c = 0; c < jlen(cases); c++) {
        yajl_val    v = jat(cases, c);
        uint32_t    h = jdim(v, "h"), w = jdim(v, "w");
        const char *rm = jstr(jget(v, "mask_rowmajor"));
        ASSERT_EQ_U64(strlen(rm), (size_t)h * w);
        /* row-major text -> column-major bytes */
        uint8_t *mask = malloc((size_t)h * w + 1);
        ASSERT(mask);
        for (uint32_t y = 0; y < h; y++)
            for (uint32_t x = 0; x < w; x++) {
                char ch = rm[(size_t)y * w + x];
                ASSERT(ch == '0' || ch == '1');
                mask[(size_t)x * h + y] = (uint8_t)(ch - '0');
            }
        struct iseg_rle r = {0};
        ASSERT_OK(iseg_rle_encode(&r, mask, h, w));
        assert_rle_str(&r, jstr(jget(v, "counts")));
        ASSERT_EQ_U64(iseg_rle_area(&r), (uint64_t)jnum(jget(v, "area")));
        double bb[4];
        iseg_rle_to_bbox(&r, bb);
        assert_bbox(bb, jget(v, "bbox"));
        /* decode the reference string back to the mask */
        struct iseg_rle r2 = {0};
        rle_from_str(&r2, jstr(jget(v, "counts")), h, w);
        ASSERT(rle_equal(&r, &r2));
        uint8_t *dec = malloc((size_t)h * w + 1);
        ASSERT(dec);
        ASSERT_OK(iseg_rle_decode(dec, &r2));
        ASSERT(memcmp(dec, mask, (size_t)h * w) == 0);
        free(dec);
        free(mask);
        iseg_rle_free(&r);
        iseg_rle_free(&r2);
    }
    yajl_tree_free(root);
}

TEST(vectors_polygon) {
    yajl_val root = vectors_load(), cases = jarr(root, "polygon");
    ASSERT(jlen(cases) > 0);
    for (size_t c = 0; c < jlen(cases); c++) {
        yajl_val v = jat(cases, c);
        uint32_t h = jdim(v, "h"), w = jdim(v, "w");
        yajl_val polys = jarr(v, "polygons"), rings = jarr(v, "rings");
        ASSERT_EQ_U64(jlen(polys), jlen(rings));
        size_t           n  = jlen(polys);
        struct iseg_rle *rs = calloc(n, sizeof(*rs));
        ASSERT(rs);
        for (size_t i = 0; i < n; i++) {
            yajl_val p = jat(polys, i);
            ASSERT(YAJL_IS_ARRAY(p) && jlen(p) % 2 == 0);
            double *xy = malloc((jlen(p) + 1) * sizeof(double));
            ASSERT(xy);
            for (size_t j = 0; j < jlen(p); j++) xy[j] = jnum(jat(p, j));
            ASSERT_OK(iseg_rle_from_poly(&rs[i], xy, jlen(p) / 2, h, w));
            ASSERT_OK(iseg_rle_validate(&rs[i]));
            assert_rle_str(&rs[i], jstr(jat(rings, i)));
            free(xy);
        }
        struct iseg_rle merged = {0};
        ASSERT_OK(iseg_rle_merge(&merged, rs, n, false));
        assert_rle_str(&merged, jstr(jget(v, "merged")));
        ASSERT_EQ_U64(iseg_rle_area(&merged), (uint64_t)jnum(jget(v, "area")));
        double bb[4];
        iseg_rle_to_bbox(&merged, bb);
        assert_bbox(bb, jget(v, "bbox"));
        iseg_rle_free(&merged);
        for (size_t i = 0; i < n; i++) iseg_rle_free(&rs[i]);
        free(rs);
    }
    yajl_tree_free(root);
}

TEST(vectors_bbox) {
    yajl_val root = vectors_load(), cases = jarr(root, "bbox");
    ASSERT(jlen(cases) > 0);
    for (size_t c = 0; c < jlen(cases); c++) {
        yajl_val v = jat(cases, c), b = jarr(v, "bbox");
        uint32_t h = jdim(v, "h"), w = jdim(v, "w");
        ASSERT_EQ_U64(jlen(b), 4);
        double bb[4];
        for (size_t i = 0; i < 4; i++) bb[i] = jnum(jat(b, i));
        struct iseg_rle r = {0};
        ASSERT_OK(iseg_rle_from_bbox(&r, bb, h, w));
        assert_rle_str(&r, jstr(jget(v, "counts")));
        ASSERT_EQ_U64(iseg_rle_area(&r), (uint64_t)jnum(jget(v, "area")));
        iseg_rle_free(&r);
    }
    yajl_tree_free(root);
}

TEST(vectors_merge) {
    yajl_val root = vectors_load(), cases = jarr(root, "merge");
    ASSERT(jlen(cases) > 0);
    for (size_t c = 0; c < jlen(cases); c++) {
        yajl_val         v = jat(cases, c), in = jarr(v, "inputs");
        uint32_t         h = jdim(v, "h"), w = jdim(v, "w");
        size_t           n  = jlen(in);
        struct iseg_rle *rs = calloc(n + 1, sizeof(*rs));
        ASSERT(rs);
        for (size_t i = 0; i < n; i++) rle_from_str(&rs[i], jstr(jat(in, i)), h, w);
        struct iseg_rle u = {0}, x = {0};
        ASSERT_OK(iseg_rle_merge(&u, rs, n, false));
        ASSERT_OK(iseg_rle_merge(&x, rs, n, true));
        assert_rle_str(&u, jstr(jget(v, "union")));
        assert_rle_str(&x, jstr(jget(v, "intersection")));
        iseg_rle_free(&u);
        iseg_rle_free(&x);
        for (size_t i = 0; i < n; i++) iseg_rle_free(&rs[i]);
        free(rs);
    }
    yajl_tree_free(root);
}

TEST(vectors_iou_mask) {
    yajl_val root = vectors_load(), cases = jarr(root, "iou_mask");
    ASSERT(jlen(cases) > 0);
    for (size_t c = 0; c < jlen(cases); c++) {
        yajl_val v = jat(cases, c), jd = jarr(v, "dt"), jg = jarr(v, "gt");
        yajl_val jc = jarr(v, "iscrowd"), want = jarr(v, "iou_dt_by_gt");
        uint32_t h = jdim(v, "h"), w = jdim(v, "w");
        size_t   m = jlen(jd), n = jlen(jg);
        ASSERT_EQ_U64(jlen(jc), n);
        ASSERT_EQ_U64(jlen(want), m);
        struct iseg_rle *dt = calloc(m, sizeof(*dt)), *gt = calloc(n, sizeof(*gt));
        uint8_t         *crowd = calloc(n, 1);
        double          *o = calloc(m * n, sizeof(double)), *o2 = calloc(m * n, sizeof(double));
        ASSERT(dt && gt && crowd && o && o2);
        for (size_t d = 0; d < m; d++) rle_from_str(&dt[d], jstr(jat(jd, d)), h, w);
        for (size_t g = 0; g < n; g++) {
            rle_from_str(&gt[g], jstr(jat(jg, g)), h, w);
            crowd[g] = jnum(jat(jc, g)) != 0;
        }
        ASSERT_OK(iseg_rle_iou(dt, m, gt, n, crowd, o));
        /* the same through precomputed boxes and areas */
        double   *bb   = malloc((m + n) * 4 * sizeof(double));
        uint64_t *area = malloc((m + n) * sizeof(uint64_t));
        ASSERT(bb && area);
        for (size_t d = 0; d < m; d++) {
            iseg_rle_to_bbox(&dt[d], bb + 4 * d);
            area[d] = iseg_rle_area(&dt[d]);
        }
        for (size_t g = 0; g < n; g++) {
            iseg_rle_to_bbox(&gt[g], bb + 4 * (m + g));
            area[m + g] = iseg_rle_area(&gt[g]);
        }
        iseg_rle_iou_bb(dt, m, gt, n, crowd, bb, bb + 4 * m, area, area + m, o2);
        for (size_t d = 0; d < m; d++) {
            yajl_val row = jat(want, d);
            ASSERT_EQ_U64(jlen(row), n);
            for (size_t g = 0; g < n; g++) {
                double e = jnum(jat(row, g));
                ASSERT_EQ_DBL(o[g * m + d], e);
                ASSERT_EQ_DBL(o2[g * m + d], e);
                /* without the box pre-filter the value is the same on valid masks */
                ASSERT_EQ_DBL(iseg_rle_iou_pair(&dt[d], &gt[g], crowd[g] != 0), e);
            }
        }
        for (size_t d = 0; d < m; d++) iseg_rle_free(&dt[d]);
        for (size_t g = 0; g < n; g++) iseg_rle_free(&gt[g]);
        free(dt), free(gt), free(crowd), free(o), free(o2), free(bb), free(area);
    }
    yajl_tree_free(root);
}

TEST(vectors_iou_box) {
    yajl_val root = vectors_load(), cases = jarr(root, "iou_box");
    ASSERT(jlen(cases) > 0);
    for (size_t c = 0; c < jlen(cases); c++) {
        yajl_val v = jat(cases, c), jd = jarr(v, "dt"), jg = jarr(v, "gt");
        yajl_val jc = jarr(v, "iscrowd"), want = jarr(v, "iou_dt_by_gt");
        size_t   m = jlen(jd), n = jlen(jg);
        double  *dt = malloc(4 * m * sizeof(double)), *gt = malloc(4 * n * sizeof(double));
        double  *o     = malloc(m * n * sizeof(double));
        uint8_t *crowd = malloc(n);
        ASSERT(dt && gt && o && crowd);
        for (size_t d = 0; d < m; d++)
            for (size_t i = 0; i < 4; i++) dt[4 * d + i] = jnum(jat(jat(jd, d), i));
        for (size_t g = 0; g < n; g++) {
            for (size_t i = 0; i < 4; i++) gt[4 * g + i] = jnum(jat(jat(jg, g), i));
            crowd[g] = jnum(jat(jc, g)) != 0;
        }
        iseg_bbox_iou(dt, m, gt, n, crowd, o);
        for (size_t d = 0; d < m; d++)
            for (size_t g = 0; g < n; g++)
                ASSERT_EQ_DBL(o[g * m + d], jnum(jat(jat(want, d), g)));
        free(dt), free(gt), free(o), free(crowd);
    }
    yajl_tree_free(root);
}

/* ---- hand-worked cases ---- */

TEST(encode_hand) {
    struct iseg_rle r = {0};
    /* empty 3x4 */
    uint8_t z[12] = {0};
    ASSERT_OK(iseg_rle_encode(&r, z, 3, 4));
    assert_counts(&r, (const uint32_t[]){12}, 1);
    ASSERT_EQ_U64(iseg_rle_area(&r), 0);
    double bb[4];
    iseg_rle_to_bbox(&r, bb);
    for (int i = 0; i < 4; i++) ASSERT_EQ_DBL(bb[i], 0.0);
    assert_rle_str(&r, "<"); /* 12 + 48 */
    iseg_rle_free(&r);
    ASSERT(r.cnts == NULL && r.m == 0);
    iseg_rle_free(&r); /* freeing twice is fine */
    iseg_rle_free(NULL);

    /* full 3x4: first count 0, even m */
    uint8_t f[12];
    memset(f, 1, sizeof(f));
    ASSERT_OK(iseg_rle_encode(&r, f, 3, 4));
    assert_counts(&r, (const uint32_t[]){0, 12}, 2);
    ASSERT_EQ_U64(iseg_rle_area(&r), 12);
    iseg_rle_to_bbox(&r, bb);
    ASSERT_EQ_DBL(bb[0], 0.0);
    ASSERT_EQ_DBL(bb[1], 0.0);
    ASSERT_EQ_DBL(bb[2], 4.0);
    float xyxy[4];
    iseg_rle_to_box_xyxy(&r, xyxy); /* x2 = x + w, y2 = y + h */
    ASSERT(xyxy[0] == 0.0f && xyxy[1] == 0.0f && xyxy[2] == 4.0f && xyxy[3] == 3.0f);
    ASSERT_EQ_DBL(bb[3], 3.0);
    assert_rle_str(&r, "0<");
    iseg_rle_free(&r);

    /* h*w == 0: the single count 0, string "0" */
    ASSERT_OK(iseg_rle_encode(&r, NULL, 0, 7));
    assert_counts(&r, (const uint32_t[]){0}, 1);
    assert_rle_str(&r, "0");
    ASSERT_OK(iseg_rle_validate(&r));
    iseg_rle_free(&r);
    ASSERT_OK(iseg_rle_from_string(&r, "0", 1, 5, 0));
    assert_counts(&r, (const uint32_t[]){0}, 1);
    iseg_rle_free(&r);
    ASSERT_OK(iseg_rle_from_string(&r, "", 0, 0, 0)); /* no counts at all also sums to 0 */
    ASSERT_EQ_U64(r.m, 0);
    iseg_rle_free(&r);

    /* odd m (ends with zeros) and even m (ends with ones); h = 1 */
    uint8_t a[4] = {0, 1, 1, 0}, b[3] = {0, 1, 1};
    ASSERT_OK(iseg_rle_encode(&r, a, 1, 4));
    assert_counts(&r, (const uint32_t[]){1, 2, 1}, 3);
    iseg_rle_to_bbox(&r, bb); /* columns 1..2 of a 1-row image */
    ASSERT_EQ_DBL(bb[0], 1.0);
    ASSERT_EQ_DBL(bb[1], 0.0);
    ASSERT_EQ_DBL(bb[2], 2.0);
    ASSERT_EQ_DBL(bb[3], 1.0);
    iseg_rle_free(&r);
    ASSERT_OK(iseg_rle_encode(&r, b, 3, 1));
    assert_counts(&r, (const uint32_t[]){1, 2}, 2);
    iseg_rle_to_bbox(&r, bb); /* rows 1..2 of a 1-column image */
    ASSERT_EQ_DBL(bb[0], 0.0);
    ASSERT_EQ_DBL(bb[1], 1.0);
    ASSERT_EQ_DBL(bb[2], 1.0);
    ASSERT_EQ_DBL(bb[3], 2.0);
    iseg_rle_free(&r);

    /* maskApi starts a new run on any byte change, so 2 after 1 is a new run */
    uint8_t c[4] = {1, 2, 2, 0};
    ASSERT_OK(iseg_rle_encode(&r, c, 2, 2));
    assert_counts(&r, (const uint32_t[]){0, 1, 2, 1}, 4);
    iseg_rle_free(&r);

    /* h*w over the limit */
    ASSERT_STATUS(iseg_rle_encode(&r, z, 65536, 65536), ISEG_STATUS_ELIMIT);
    ASSERT(r.cnts == NULL && r.m == 0);
}

TEST(string_hand) {
    struct iseg_rle r = {0};
    /* first three counts raw, then deltas against cnts[i-2]: [1,2,3,4] -> 1,2,3,(4-2) */
    ASSERT_OK(iseg_rle_from_counts(&r, (const uint32_t[]){1, 2, 3, 4}, 4, 10, 1));
    assert_rle_str(&r, "1232");
    iseg_rle_free(&r);
    /* a negative delta: [1,5,1,2] -> 2-5 = -3 = 0x1d -> 'M' */
    ASSERT_OK(iseg_rle_from_counts(&r, (const uint32_t[]){1, 5, 1, 2}, 4, 9, 1));
    assert_rle_str(&r, "151M");
    iseg_rle_free(&r);
    rle_from_str(&r, "151M", 3, 3);
    assert_counts(&r, (const uint32_t[]){1, 5, 1, 2}, 4);
    iseg_rle_free(&r);
    /* 16 has bit 0x10 in its only group, so it needs a second group: "`0";
     * 40 = 8 + 1*32 -> 'X','1'; the delta 16 - 40 = -24 = 8 - 32 -> groups 8 (more), then
     * 0x1f (sign) -> 'X','O' */
    ASSERT_OK(iseg_rle_from_counts(&r, (const uint32_t[]){16, 40, 1, 16}, 4, 73, 1));
    assert_rle_str(&r, "`0X11XO");
    iseg_rle_free(&r);
    rle_from_str(&r, "`0X11XO", 73, 1);
    assert_counts(&r, (const uint32_t[]){16, 40, 1, 16}, 4);
    iseg_rle_free(&r);
    /* padded groups (zero continuation) are accepted: '1'|0x20 = 'Q', then '0' */
    rle_from_str(&r, "Q0", 1, 1);
    assert_counts(&r, (const uint32_t[]){1}, 1);
    iseg_rle_free(&r);
    /* string_write agrees with to_string */
    ASSERT_OK(iseg_rle_from_counts(&r, (const uint32_t[]){0, 100000, 3, 7}, 4, 100010, 1));
    char   buf[64];
    size_t n = iseg_rle_string_write(&r, buf);
    ASSERT_EQ_U64(n, iseg_rle_string_len(&r));
    buf[n] = 0;
    assert_rle_str(&r, buf);
    struct iseg_rle r2 = {0};
    rle_from_str(&r2, buf, 100010, 1);
    ASSERT(rle_equal(&r, &r2));
    iseg_rle_free(&r);
    iseg_rle_free(&r2);
}

TEST(string_errors) {
    struct iseg_rle r = {0};
    uint32_t buf[32];
    /* both decoders: allocating, and into a caller buffer */
#define BAD(str, hh, ww, want)                                                           \
    do {                                                                                 \
        r.m = 99;                                                                        \
        ASSERT_STATUS(iseg_rle_from_string(&r, str, sizeof(str) - 1, hh, ww), want);     \
        ASSERT(r.cnts == NULL && r.m == 0 && r.h == 0 && r.w == 0);                      \
        r.m = 99;                                                                        \
        ASSERT_STATUS(iseg_rle_from_string_buf(&r, str, sizeof(str) - 1, hh, ww, buf),   \
                      want);                                                             \
        ASSERT(r.cnts == NULL && r.m == 0 && r.h == 0 && r.w == 0);                      \
    } while (0)
    BAD("1 1", 2, 1, ISEG_STATUS_EFORMAT);       /* character below 48 */
    BAD("1p", 2, 1, ISEG_STATUS_EFORMAT);        /* 'p' = 112, above 111 */
    BAD("1\x80", 2, 1, ISEG_STATUS_EFORMAT);     /* high byte */
    BAD("1\0" "1", 2, 1, ISEG_STATUS_EFORMAT);   /* NUL inside the given length */
    BAD("1P", 2, 1, ISEG_STATUS_EFORMAT);        /* truncated: 'P' = 0x20 asks for more */
    BAD("P", 0, 0, ISEG_STATUS_EFORMAT);         /* truncated, even for an empty image */
    BAD("@", 16, 1, ISEG_STATUS_EFORMAT);        /* -16: a negative first count */
    BAD("11M", 3, 1, ISEG_STATUS_EFORMAT);       /* third count -3 (not delta-coded) */
    BAD("1112M", 5, 1, ISEG_STATUS_EFORMAT);     /* cnts[4] = 1 + (-3) < 0 */
    BAD("5", 4, 1, ISEG_STATUS_EFORMAT);         /* sum 5 > 4 */
    BAD("3", 4, 1, ISEG_STATUS_EFORMAT);         /* sum 3 < 4 */
    BAD("", 4, 1, ISEG_STATUS_EFORMAT);          /* nothing for 4 pixels */
    BAD("11", 1, 1, ISEG_STATUS_EFORMAT);        /* too many counts */
    /* 2^33 in one value: bigger than any uint32 count */
    BAD("PPPPPP8", 4, 1, ISEG_STATUS_EFORMAT);
    /* sum overflow: [2^32-1, 3] sums to 2 in uint32 arithmetic, but not in ours */
    BAD("oooooo33", 2, 1, ISEG_STATUS_EFORMAT);
    BAD("oooooo3oooooo3", 2, 1, ISEG_STATUS_EFORMAT);
    /* 13 groups: longer than any 32-bit count can need */
    BAD("PPPPPPPPPPPP0", 2, 1, ISEG_STATUS_EFORMAT);
    /* 12 groups of padding are still accepted */
    rle_from_str(&r, "QPPPPPPPPPP0", 1, 1);
    assert_counts(&r, (const uint32_t[]){1}, 1);
    iseg_rle_free(&r);
    /* h*w over the limit */
    BAD("0", 65536, 65536, ISEG_STATUS_ELIMIT);
    /* exactly the limit is allowed: one run of 2^31 zeros (group values 0,0,0,0,0,0,2) */
    rle_from_str(&r, "PPPPPP2", 32768, 65536);
    assert_counts(&r, (const uint32_t[]){2147483648u}, 1);
    ASSERT_OK(iseg_rle_validate(&r));
    iseg_rle_free(&r);
#undef BAD
}

TEST(validate_decode_counts) {
    struct iseg_rle r = {0};
    uint32_t        c[] = {2, 3, 1};
    r.h = 2, r.w = 3, r.m = 3, r.cnts = c;
    ASSERT_OK(iseg_rle_validate(&r));
    uint8_t buf[8];
    memset(buf, 0xAA, sizeof(buf));
    ASSERT_OK(iseg_rle_decode(buf, &r));
    const uint8_t want[] = {0, 0, 1, 1, 1, 0, 0xAA, 0xAA};
    ASSERT(memcmp(buf, want, sizeof(want)) == 0);
    /* sum mismatch: nothing written */
    c[2] = 3;
    ASSERT_STATUS(iseg_rle_validate(&r), ISEG_STATUS_EFORMAT);
    memset(buf, 0xAA, sizeof(buf));
    ASSERT_STATUS(iseg_rle_decode(buf, &r), ISEG_STATUS_EFORMAT);
    for (size_t i = 0; i < sizeof(buf); i++) ASSERT_EQ_INT(buf[i], 0xAA);
    /* counts whose uint32 sum would wrap to h*w */
    uint32_t wrap[] = {0xFFFFFFFFu, 7};
    r.m = 2, r.cnts = wrap;
    ASSERT_STATUS(iseg_rle_validate(&r), ISEG_STATUS_EFORMAT);
    r.h = 65536, r.w = 65536;
    ASSERT_STATUS(iseg_rle_validate(&r), ISEG_STATUS_ELIMIT);

    struct iseg_rle o = {0};
    ASSERT_STATUS(iseg_rle_from_counts(&o, c, 3, 2, 3), ISEG_STATUS_EFORMAT);
    ASSERT(o.cnts == NULL && o.m == 0);
    ASSERT_STATUS(iseg_rle_from_counts(&o, c, 3, 65536, 65536), ISEG_STATUS_ELIMIT);
    c[2] = 1;
    ASSERT_OK(iseg_rle_from_counts(&o, c, 3, 2, 3));
    assert_counts(&o, c, 3);
    ASSERT(o.cnts != c);
    struct iseg_rle cp = {0};
    ASSERT_OK(iseg_rle_copy(&cp, &o));
    ASSERT(rle_equal(&cp, &o) && cp.cnts != o.cnts);
    iseg_rle_free(&cp);
    iseg_rle_free(&o);
    /* an empty RLE (0x0, m = 0) copies to an empty RLE */
    struct iseg_rle e = {0};
    ASSERT_OK(iseg_rle_copy(&cp, &e));
    ASSERT(cp.m == 0 && cp.cnts == NULL);
}

TEST(to_bbox_edge_cases) {
    double bb[4];
    /* a trailing 0-run is dropped; a run spanning columns gives full height */
    struct iseg_rle r = {0};
    uint32_t        c1[] = {2, 3, 7}; /* h = 3, w = 4: pixels 2..4 -> (x0,y2), (x1,y0), (x1,y1) */
    r.h = 3, r.w = 4, r.m = 3, r.cnts = c1;
    iseg_rle_to_bbox(&r, bb);
    ASSERT_EQ_DBL(bb[0], 0.0);
    ASSERT_EQ_DBL(bb[1], 0.0);
    ASSERT_EQ_DBL(bb[2], 2.0);
    ASSERT_EQ_DBL(bb[3], 3.0);
    /* a single count: m rounds down to 0 */
    uint32_t c2[] = {12};
    r.m = 1, r.cnts = c2;
    iseg_rle_to_bbox(&r, bb);
    ASSERT_EQ_DBL(bb[0], 0.0);
    ASSERT_EQ_DBL(bb[2], 0.0);
    /* zero-length foreground runs only: the reference's uint32 wrap-around, reproduced */
    uint32_t c3[] = {5, 0, 7};
    r.m = 3, r.cnts = c3;
    iseg_rle_to_bbox(&r, bb);
    ASSERT_EQ_DBL(bb[0], 4.0);
    ASSERT_EQ_DBL(bb[1], 3.0);
    ASSERT_EQ_DBL(bb[2], 4294967293.0);
    ASSERT_EQ_DBL(bb[3], 4294967294.0);
    /* zero-length foreground runs are skipped next to real ones */
    uint32_t c4[] = {4, 0, 2, 1, 5};
    r.m = 5, r.cnts = c4;
    iseg_rle_to_bbox(&r, bb); /* pixel 6 = (x2, y0) */
    ASSERT_EQ_DBL(bb[0], 2.0);
    ASSERT_EQ_DBL(bb[1], 0.0);
    ASSERT_EQ_DBL(bb[2], 1.0);
    ASSERT_EQ_DBL(bb[3], 1.0);
}

TEST(merge_hand) {
    struct iseg_rle a = {0}, b = {0}, o = {0};
    uint8_t         ma[6] = {0, 1, 1, 0, 0, 1}, mb[6] = {1, 1, 0, 0, 1, 1};
    ASSERT_OK(iseg_rle_encode(&a, ma, 2, 3));
    ASSERT_OK(iseg_rle_encode(&b, mb, 2, 3));
    struct iseg_rle rs[2] = {a, b};
    ASSERT_OK(iseg_rle_merge(&o, rs, 2, false));
    assert_counts(&o, (const uint32_t[]){0, 3, 1, 2}, 4); /* 1 1 1 0 1 1 */
    iseg_rle_free(&o);
    ASSERT_OK(iseg_rle_merge(&o, rs, 2, true));
    assert_counts(&o, (const uint32_t[]){1, 1, 3, 1}, 4); /* 0 1 0 0 0 1 */
    iseg_rle_free(&o);
    /* n == 0: zeroed; n == 1: a copy, even of a non-canonical RLE */
    o.m = 5;
    ASSERT_OK(iseg_rle_merge(&o, NULL, 0, false));
    ASSERT(o.m == 0 && o.cnts == NULL && o.h == 0 && o.w == 0);
    uint32_t        nc[] = {1, 0, 2, 3};
    struct iseg_rle r1   = {.h = 2, .w = 3, .m = 4, .cnts = nc};
    ASSERT_OK(iseg_rle_merge(&o, &r1, 1, false));
    assert_counts(&o, nc, 4);
    iseg_rle_free(&o);
    /* non-canonical inputs (zero-length runs inside) give canonical output */
    struct iseg_rle rs2[2] = {r1, a};
    ASSERT_OK(iseg_rle_merge(&o, rs2, 2, false)); /* r1 = 0 0 0 1 1 1 */
    assert_counts(&o, (const uint32_t[]){1, 5}, 2);
    iseg_rle_free(&o);
    /* size mismatch: an empty 0x0 RLE, as maskApi */
    struct iseg_rle c = {0};
    ASSERT_OK(iseg_rle_encode(&c, ma, 3, 2));
    struct iseg_rle rs3[3] = {a, b, c};
    ASSERT_OK(iseg_rle_merge(&o, rs3, 3, false));
    ASSERT(o.h == 0 && o.w == 0 && o.m == 0 && o.cnts == NULL);
    ASSERT_OK(iseg_rle_merge(&o, rs3, 3, true));
    ASSERT(o.h == 0 && o.w == 0 && o.m == 0 && o.cnts == NULL);
    /* h*w == 0 */
    struct iseg_rle e1 = {0}, e2 = {0};
    ASSERT_OK(iseg_rle_encode(&e1, NULL, 0, 3));
    ASSERT_OK(iseg_rle_encode(&e2, NULL, 0, 3));
    struct iseg_rle rs4[2] = {e1, e2};
    ASSERT_OK(iseg_rle_merge(&o, rs4, 2, false));
    assert_counts(&o, (const uint32_t[]){0}, 1);
    iseg_rle_free(&o);
    iseg_rle_free(&e1), iseg_rle_free(&e2);
    iseg_rle_free(&a), iseg_rle_free(&b), iseg_rle_free(&c);
}

TEST(iou_hand) {
    /* 4x4 masks: d = columns 0..1 (8 px), g = columns 1..2 (8 px) */
    uint8_t md[16] = {0}, mg[16] = {0}, me[16] = {0};
    for (int i = 0; i < 8; i++) md[i] = 1;
    for (int i = 4; i < 12; i++) mg[i] = 1;
    me[15] = 1; /* single pixel at (3, 3) */
    struct iseg_rle d = {0}, g = {0}, e = {0}, s = {0};
    ASSERT_OK(iseg_rle_encode(&d, md, 4, 4));
    ASSERT_OK(iseg_rle_encode(&g, mg, 4, 4));
    ASSERT_OK(iseg_rle_encode(&e, me, 4, 4));
    ASSERT_OK(iseg_rle_encode(&s, md, 2, 8)); /* same bytes, other size */
    ASSERT_EQ_DBL(iseg_rle_iou_pair(&d, &g, false), 4.0 / 12.0);
    ASSERT_EQ_DBL(iseg_rle_iou_pair(&d, &g, true), 4.0 / 8.0); /* crowd: union = area(d) */
    ASSERT_EQ_DBL(iseg_rle_iou_pair(&d, &e, false), 0.0);
    ASSERT_EQ_DBL(iseg_rle_iou_pair(&d, &s, false), -1.0);

    struct iseg_rle dts[3] = {d, e, s}, gts[2] = {g, d};
    uint8_t         crowd[2] = {1, 0};
    double          o[6];
    ASSERT_OK(iseg_rle_iou(dts, 3, gts, 2, crowd, o));
    ASSERT_EQ_DBL(o[0 * 3 + 0], 0.5);       /* d vs crowd g */
    ASSERT_EQ_DBL(o[0 * 3 + 1], 0.0);       /* e vs g: boxes apart */
    ASSERT_EQ_DBL(o[0 * 3 + 2], -1.0);      /* size mismatch, boxes overlap */
    ASSERT_EQ_DBL(o[1 * 3 + 0], 1.0);       /* d vs d */
    ASSERT_EQ_DBL(o[1 * 3 + 1], 0.0);
    ASSERT_EQ_DBL(o[1 * 3 + 2], -1.0);
    ASSERT_OK(iseg_rle_iou(dts, 3, gts, 2, NULL, o)); /* iscrowd NULL: nobody is crowd */
    ASSERT_EQ_DBL(o[0], 4.0 / 12.0);

    /* the pre-filter comes first: a size mismatch with disjoint boxes is 0, not -1 */
    uint8_t ms[16] = {0};
    ms[15]         = 1; /* (x3, y3) of a 4x4 ... */
    struct iseg_rle s2 = {0};
    ASSERT_OK(iseg_rle_encode(&s2, ms, 8, 2)); /* ... read as 8x2: pixel (x1, y7) */
    ASSERT_EQ_DBL(iseg_rle_iou_pair(&d, &s2, false), -1.0);
    ASSERT_OK(iseg_rle_iou(&s2, 1, &e, 1, NULL, o)); /* boxes (1,7,1,1) vs (3,3,1,1) */
    ASSERT_EQ_DBL(o[0], 0.0);

    /* iou_bb trusts the boxes: disjoint boxes give 0 even for identical masks, and the box
     * IoU value itself is kept when it is not positive */
    double   bb_d[4] = {0, 0, 1, 1}, bb_g[4] = {2, 2, 1, 1};
    uint64_t ad = 8, ag = 8;
    iseg_rle_iou_bb(&d, 1, &d, 1, NULL, bb_d, bb_g, &ad, &ag, o);
    ASSERT_EQ_DBL(o[0], 0.0);
    double bb_big[4] = {0, 0, 4, 4};
    iseg_rle_iou_bb(&d, 1, &d, 1, NULL, bb_big, bb_big, &ad, &ag, o);
    ASSERT_EQ_DBL(o[0], 1.0);
    /* masks that do not touch but boxes overlap: walked, i == 0 -> 0 */
    uint8_t m1[16] = {0}, m2[16] = {0};
    m1[0] = m1[5] = 1; /* (0,0), (1,1) */
    m2[1] = m2[4] = 1; /* (0,1), (1,0) */
    struct iseg_rle r1 = {0}, r2 = {0};
    ASSERT_OK(iseg_rle_encode(&r1, m1, 4, 4));
    ASSERT_OK(iseg_rle_encode(&r2, m2, 4, 4));
    ASSERT_OK(iseg_rle_iou(&r1, 1, &r2, 1, NULL, o));
    ASSERT_EQ_DBL(o[0], 0.0);
    /* m == 0 or n == 0 is a no-op */
    ASSERT_OK(iseg_rle_iou(NULL, 0, &r2, 1, NULL, NULL));
    ASSERT_OK(iseg_rle_iou(&r1, 1, NULL, 0, NULL, NULL));

    /* box IoU: crowd union is the detection's area */
    double bd[4] = {0, 0, 2, 2}, bg[8] = {1, 1, 2, 2, 1, 1, 2, 2};
    uint8_t bc[2] = {0, 1};
    double  bo[2];
    iseg_bbox_iou(bd, 1, bg, 2, bc, bo);
    ASSERT_EQ_DBL(bo[0], 1.0 / 7.0);
    ASSERT_EQ_DBL(bo[1], 1.0 / 4.0);
    double bt[4] = {2, 0, 1, 1}; /* touching edge: w == 0 -> 0 */
    iseg_bbox_iou(bd, 1, bt, 1, NULL, bo);
    ASSERT_EQ_DBL(bo[0], 0.0);

    iseg_rle_free(&d), iseg_rle_free(&g), iseg_rle_free(&e), iseg_rle_free(&s);
    iseg_rle_free(&s2), iseg_rle_free(&r1), iseg_rle_free(&r2);
}

/* ---- polygons ---- */

/* The reference rasteriser written out literally from the spec (dense point list), as the
 * oracle for the library's crossing-based version. Coordinates must be small. */
static void naive_frpoly(struct iseg_rle *r, const double *xy, size_t k, uint32_t h, uint32_t w) {
    ASSERT_OK(iseg__rle_from_poly_ref(r, xy, k, h, w));
}

TEST(poly_hand) {
    struct iseg_rle r = {0};
    double          pt[6] = {3.2, 4.7, 10, 2, 5, 9};
    /* k = 0, 1, 2: no area (a 2-point ring goes there and back: its boundaries cancel) */
    for (size_t k = 0; k <= 2; k++) {
        ASSERT_OK(iseg_rle_from_poly(&r, k ? pt : NULL, k, 12, 16));
        assert_counts(&r, (const uint32_t[]){12 * 16}, 1);
        iseg_rle_free(&r);
    }
    /* a 10x10 axis-aligned square at (2,3): the pixels (2..11, 3..12) of a 20x20 image */
    double sq[8] = {2, 3, 12, 3, 12, 13, 2, 13};
    ASSERT_OK(iseg_rle_from_poly(&r, sq, 4, 20, 20));
    ASSERT_EQ_U64(iseg_rle_area(&r), 100);
    double bb[4];
    iseg_rle_to_bbox(&r, bb);
    ASSERT_EQ_DBL(bb[0], 2.0);
    ASSERT_EQ_DBL(bb[1], 3.0);
    ASSERT_EQ_DBL(bb[2], 10.0);
    ASSERT_EQ_DBL(bb[3], 10.0);
    iseg_rle_free(&r);
    /* from_bbox is the same polygon */
    double box[4] = {2, 3, 10, 10};
    ASSERT_OK(iseg_rle_from_bbox(&r, box, 20, 20));
    ASSERT_EQ_U64(iseg_rle_area(&r), 100);
    iseg_rle_free(&r);
    /* a square entirely outside the image (negative and beyond w, h): empty */
    double out1[8] = {-9, -9, -3, -9, -3, -3, -9, -3};
    double out2[8] = {30, 30, 40, 30, 40, 40, 30, 40};
    ASSERT_OK(iseg_rle_from_poly(&r, out1, 4, 20, 20));
    ASSERT_EQ_U64(iseg_rle_area(&r), 0);
    iseg_rle_free(&r);
    ASSERT_OK(iseg_rle_from_poly(&r, out2, 4, 20, 20));
    ASSERT_EQ_U64(iseg_rle_area(&r), 0);
    iseg_rle_free(&r);
    /* a polygon covering the image and beyond is clipped: the whole 20x20 image */
    double big[8] = {-50, -50, 70, -50, 70, 70, -50, 70};
    ASSERT_OK(iseg_rle_from_poly(&r, big, 4, 20, 20));
    ASSERT_EQ_U64(iseg_rle_area(&r), 400);
    ASSERT_OK(iseg_rle_validate(&r));
    iseg_rle_free(&r);
    /* h*w == 0 */
    ASSERT_OK(iseg_rle_from_poly(&r, sq, 4, 0, 20));
    assert_counts(&r, (const uint32_t[]){0}, 1);
    iseg_rle_free(&r);
    ASSERT_OK(iseg_rle_from_poly(&r, sq, 4, 20, 0));
    assert_counts(&r, (const uint32_t[]){0}, 1);
    iseg_rle_free(&r);
    /* non-finite coordinates: EINVAL; beyond the int range of the reference: ELIMIT */
    double bad[8] = {2, 3, 12, 3, 12, 13, 2, 13};
    bad[5]        = NAN;
    r.m           = 7;
    ASSERT_STATUS(iseg_rle_from_poly(&r, bad, 4, 20, 20), ISEG_STATUS_EINVAL);
    ASSERT(r.m == 0 && r.cnts == NULL);
    bad[5] = -INFINITY;
    ASSERT_STATUS(iseg_rle_from_poly(&r, bad, 4, 20, 20), ISEG_STATUS_EINVAL);
    bad[5] = 1e300;
    ASSERT_STATUS(iseg_rle_from_poly(&r, bad, 4, 20, 20), ISEG_STATUS_ELIMIT);
    bad[5] = -429496730; /* 5x = -2147483650 */
    ASSERT_STATUS(iseg_rle_from_poly(&r, bad, 4, 20, 20), ISEG_STATUS_ELIMIT);
    bad[4] = NAN;
    ASSERT_STATUS(iseg_rle_from_bbox(&r, bad + 4, 20, 20), ISEG_STATUS_EINVAL);
    ASSERT_STATUS(iseg_rle_from_poly(&r, sq, 4, 65536, 65536), ISEG_STATUS_ELIMIT);
    /* far but valid coordinates work and cost nothing like the dense reference would */
    double far[8] = {-4e8, 5, 4e8, 5, 4e8, 4e8, -4e8, 4e8};
    ASSERT_OK(iseg_rle_from_poly(&r, far, 4, 20, 20));
    ASSERT_OK(iseg_rle_validate(&r));
    ASSERT_EQ_U64(iseg_rle_area(&r), 20 * 15);
    iseg_rle_free(&r);
}

/* Random polygon: mixes in-image, negative and beyond-image vertices, repeated vertices,
 * axis-parallel and 45-degree edges, and fractional coordinates with .1/.5 endings. */
static size_t random_poly(uint64_t *rng, double *xy, size_t k_max, uint32_t h, uint32_t w) {
    size_t k    = (size_t)(test_rand(rng) % (k_max + 1));
    int    mode = (int)(test_rand(rng) % 4);
    for (size_t j = 0; j < k; j++) {
        double x = test_rand_unif(rng) * (w + 12.0) - 6.0;
        double y = test_rand_unif(rng) * (h + 12.0) - 6.0;
        if (mode == 1) x = floor(x * 2) / 2, y = floor(y * 2) / 2; /* half-integers */
        if (mode == 2) x = floor(x * 10) / 10, y = floor(y * 10) / 10;
        if (j > 0 && test_rand(rng) % 6 == 0) { /* repeat, or share one coordinate */
            int c = (int)(test_rand(rng) % 4);
            if (c == 0) x = xy[2 * j - 2], y = xy[2 * j - 1];
            if (c == 1) x = xy[2 * j - 2];
            if (c == 2) y = xy[2 * j - 1];
            if (c == 3) { /* a 45-degree step */
                double d = floor(test_rand_unif(rng) * 8) - 4;
                x = xy[2 * j - 2] + d, y = xy[2 * j - 1] + d;
            }
        }
        xy[2 * j] = x, xy[2 * j + 1] = y;
    }
    return k;
}

TEST(poly_vs_naive) {
    uint64_t rng = 42;
    double   xy[2 * 24];
    for (int it = 0; it < 6000; it++) {
        uint32_t h = 1 + (uint32_t)(test_rand(&rng) % 40);
        uint32_t w = 1 + (uint32_t)(test_rand(&rng) % 40);
        size_t   k = random_poly(&rng, xy, 24, h, w);
        struct iseg_rle got = {0}, want = {0};
        ASSERT_OK(iseg_rle_from_poly(&got, xy, k, h, w));
        naive_frpoly(&want, xy, k, h, w);
        if (k < 3) ASSERT_EQ_U64(iseg_rle_area(&got), 0); /* as documented in mask.h */
        if (!rle_equal(&got, &want)) {
            fprintf(stderr, "  iteration %d, h=%u w=%u k=%zu:", it, h, w, k);
            for (size_t j = 0; j < 2 * k; j++) fprintf(stderr, " %.17g", xy[j]);
            fprintf(stderr, "\n");
            assert_counts(&got, want.cnts, want.m);
        }
        iseg_rle_free(&got);
        iseg_rle_free(&want);
    }
    /* large images: many boundaries (the library's radix sort, up to 3 passes) */
    for (int it = 0; it < 40; it++) {
        uint32_t h = 1 + (uint32_t)(test_rand(&rng) % 3000);
        uint32_t w = 1 + (uint32_t)(test_rand(&rng) % 3000);
        size_t   k = random_poly(&rng, xy, 24, h, w);
        struct iseg_rle got = {0}, want = {0};
        ASSERT_OK(iseg_rle_from_poly(&got, xy, k, h, w));
        naive_frpoly(&want, xy, k, h, w);
        ASSERT(rle_equal(&got, &want));
        iseg_rle_free(&got);
        iseg_rle_free(&want);
    }
}

/* ---- random differential tests ---- */

TEST(random_round_trip) {
    uint64_t rng = 7;
    for (int it = 0; it < 400; it++) {
        uint32_t h = (uint32_t)(test_rand(&rng) % 50), w = (uint32_t)(test_rand(&rng) % 50);
        double   p = it % 3 == 0 ? 0.5 : it % 3 == 1 ? 0.05 : 0.005;
        uint8_t *mask = random_mask(&rng, h, w, p);
        struct iseg_rle r = {0}, r2 = {0};
        ASSERT_OK(iseg_rle_encode(&r, mask, h, w));
        ASSERT_OK(iseg_rle_validate(&r));
        char  *s = NULL;
        size_t n = 0;
        ASSERT_OK(iseg_rle_to_string(&r, &s, &n));
        ASSERT_OK(iseg_rle_from_string(&r2, s, n, h, w));
        {
            /* the non-allocating decoder gives the same counts */
            uint32_t       *buf = malloc((n + 1) * sizeof(uint32_t));
            struct iseg_rle rb;
            ASSERT(buf);
            ASSERT_OK(iseg_rle_from_string_buf(&rb, s, n, h, w, buf));
            ASSERT(rb.m == r2.m && rb.cnts == (rb.m ? buf : NULL));
            ASSERT(rb.m == 0 || memcmp(rb.cnts, r2.cnts, rb.m * sizeof(uint32_t)) == 0);
            free(buf);
        }
        ASSERT(rle_equal(&r, &r2));
        uint8_t *dec = malloc((size_t)h * w + 1);
        ASSERT(dec);
        ASSERT_OK(iseg_rle_decode(dec, &r2));
        ASSERT((size_t)h * w == 0 || memcmp(dec, mask, (size_t)h * w) == 0);
        /* area and box against the bitmap */
        uint64_t area = 0;
        for (size_t i = 0; i < (size_t)h * w; i++) area += mask[i];
        ASSERT_EQ_U64(iseg_rle_area(&r), area);
        double bb[4], nb[4];
        iseg_rle_to_bbox(&r, bb);
        naive_bbox(mask, h, w, nb);
        for (int i = 0; i < 4; i++) ASSERT_EQ_DBL(bb[i], nb[i]);
        iseg_free(s);
        free(dec);
        free(mask);
        iseg_rle_free(&r);
        iseg_rle_free(&r2);
    }
    /* large counts (multi-group values, big negative deltas) */
    for (int it = 0; it < 200; it++) {
        uint32_t c[9];
        uint64_t sum = 0;
        for (int i = 0; i < 9; i++) {
            c[i] = (uint32_t)(test_rand(&rng) % (it % 2 ? 3000000u : 70u));
            sum += c[i];
        }
        struct iseg_rle r = {0}, r2 = {0};
        ASSERT_OK(iseg_rle_from_counts(&r, c, 9, (uint32_t)sum, 1));
        char *s = NULL;
        ASSERT_OK(iseg_rle_to_string(&r, &s, NULL));
        rle_from_str(&r2, s, (uint32_t)sum, 1);
        ASSERT(rle_equal(&r, &r2));
        iseg_free(s);
        iseg_rle_free(&r);
        iseg_rle_free(&r2);
    }
}

TEST(random_iou_merge_vs_bitmap) {
    uint64_t rng = 99;
    enum { M = 6, N = 5 };
    for (int it = 0; it < 150; it++) {
        uint32_t        h    = 1 + (uint32_t)(test_rand(&rng) % 30);
        uint32_t        w    = 1 + (uint32_t)(test_rand(&rng) % 30);
        size_t          n_px = (size_t)h * w;
        uint8_t        *md[M], *mg[N];
        struct iseg_rle dt[M], gt[N];
        uint8_t         crowd[N];
        for (int d = 0; d < M; d++) {
            /* sparse and dense masks, some empty, some full */
            double p = d == 0 ? 0.0 : d == 1 ? 1.0 : 0.02 + 0.2 * test_rand_unif(&rng);
            md[d]    = random_mask(&rng, h, w, p);
            if (d == 0) memset(md[d], 0, n_px);
            if (d == 1) memset(md[d], 1, n_px);
            ASSERT_OK(iseg_rle_encode(&dt[d], md[d], h, w));
        }
        for (int g = 0; g < N; g++) {
            mg[g] = random_mask(&rng, h, w, 0.02 + 0.3 * test_rand_unif(&rng));
            ASSERT_OK(iseg_rle_encode(&gt[g], mg[g], h, w));
            crowd[g] = (uint8_t)(test_rand(&rng) % 3 == 0);
        }
        double o[M * N];
        ASSERT_OK(iseg_rle_iou(dt, M, gt, N, crowd, o));
        for (int g = 0; g < N; g++)
            for (int d = 0; d < M; d++) {
                uint64_t i = 0, u = 0, ad = 0;
                for (size_t p = 0; p < n_px; p++) {
                    i += md[d][p] & mg[g][p];
                    u += md[d][p] | mg[g][p];
                    ad += md[d][p];
                }
                double want = i == 0 ? 0.0 : (double)i / (double)(crowd[g] ? ad : u);
                ASSERT_EQ_DBL(o[g * M + d], want);
                ASSERT_EQ_DBL(iseg_rle_iou_pair(&dt[d], &gt[g], crowd[g] != 0), want);
            }
        /* merge of all gts against bitwise OR / AND, re-encoded (merge output is canonical) */
        uint8_t *mu = malloc(n_px), *mi = malloc(n_px);
        ASSERT(mu && mi);
        for (size_t p = 0; p < n_px; p++) {
            mu[p] = 0, mi[p] = 1;
            for (int g = 0; g < N; g++) mu[p] |= mg[g][p], mi[p] &= mg[g][p];
        }
        struct iseg_rle ru = {0}, ri = {0}, eu = {0}, ei = {0};
        ASSERT_OK(iseg_rle_merge(&ru, gt, N, false));
        ASSERT_OK(iseg_rle_merge(&ri, gt, N, true));
        ASSERT_OK(iseg_rle_encode(&eu, mu, h, w));
        ASSERT_OK(iseg_rle_encode(&ei, mi, h, w));
        ASSERT(rle_equal(&ru, &eu));
        ASSERT(rle_equal(&ri, &ei));
        iseg_rle_free(&ru), iseg_rle_free(&ri), iseg_rle_free(&eu), iseg_rle_free(&ei);
        free(mu), free(mi);
        for (int d = 0; d < M; d++) iseg_rle_free(&dt[d]), free(md[d]);
        for (int g = 0; g < N; g++) iseg_rle_free(&gt[g]), free(mg[g]);
    }
}

/* ---- allocation failure ---- */

static long g_fail_at = -1, g_n_alloc, g_live;
static void *oom_malloc(size_t n, void *user) {
    (void)user;
    if (g_fail_at >= 0 && g_n_alloc++ == g_fail_at) return NULL;
    void *p = malloc(n);
    if (p) g_live++;
    return p;
}
static void *oom_realloc(void *p, size_t n, void *user) {
    (void)user;
    if (g_fail_at >= 0 && g_n_alloc++ == g_fail_at) return NULL;
    void *q = realloc(p, n);
    if (q && !p) g_live++;
    return q;
}
static void oom_free(void *p, void *user) {
    (void)user;
    if (p) g_live--;
    free(p);
}

/* Run op with the i-th allocation failing, for i = 0, 1, ... until it succeeds; every failure
 * must be ENOMEM with a zeroed output and nothing leaked. */
#define OOM_LOOP(out, call)                                                               \
    do {                                                                                  \
        for (long i_ = 0;; i_++) {                                                        \
            g_fail_at = i_, g_n_alloc = 0;                                                \
            long oom_live_ = g_live;                                                      \
            memset(&(out), 0x5A, sizeof(out));                                            \
            enum iseg_status oom_st_ = (call);                                            \
            g_fail_at                = -1;                                                \
            if (oom_st_ == ISEG_STATUS_OK) {                                              \
                iseg_rle_free(&(out));                                                    \
                ASSERT_EQ_INT(g_live, oom_live_);                                         \
                break;                                                                    \
            }                                                                             \
            ASSERT_STATUS(oom_st_, ISEG_STATUS_ENOMEM);                                   \
            ASSERT((out).cnts == NULL && (out).m == 0 && (out).h == 0 && (out).w == 0);   \
            ASSERT_EQ_INT(g_live, oom_live_);                                             \
            ASSERT(i_ < 100);                                                             \
        }                                                                                 \
    } while (0)

TEST(out_of_memory) {
    struct iseg_alloc al = {oom_malloc, oom_realloc, oom_free, NULL};
    iseg_alloc_set(&al);
    uint64_t rng = 5;
    uint8_t *mask = random_mask(&rng, 20, 30, 0.1);
    struct iseg_rle rs[3] = {{0}}, out;
    for (int i = 0; i < 3; i++) {
        uint8_t *mi = random_mask(&rng, 20, 30, 0.1);
        ASSERT_OK(iseg_rle_encode(&rs[i], mi, 20, 30));
        free(mi);
    }
    long live0 = g_live;
    OOM_LOOP(out, iseg_rle_encode(&out, mask, 20, 30));
    OOM_LOOP(out, iseg_rle_merge(&out, rs, 3, false));
    OOM_LOOP(out, iseg_rle_merge(&out, rs, 1, true));
    OOM_LOOP(out, iseg_rle_copy(&out, &rs[0]));
    char *s = NULL;
    ASSERT_OK(iseg_rle_to_string(&rs[1], &s, NULL));
    OOM_LOOP(out, iseg_rle_from_string(&out, s, strlen(s), 20, 30));
    OOM_LOOP(out, iseg_rle_from_counts(&out, rs[2].cnts, rs[2].m, 20, 30));
    double poly[10] = {1, 1, 25, 3, 28, 18, 10, 19, 2, 9};
    OOM_LOOP(out, iseg_rle_from_poly(&out, poly, 5, 20, 30));
    double box[4] = {3, 4, 10, 8};
    OOM_LOOP(out, iseg_rle_from_bbox(&out, box, 20, 30));
    /* to_string and iou: outputs that are not RLEs */
    for (long i = 0;; i++) {
        g_fail_at = i, g_n_alloc = 0;
        char            *s2 = (char *)1;
        size_t           n2 = 7;
        enum iseg_status st = iseg_rle_to_string(&rs[0], &s2, &n2);
        g_fail_at           = -1;
        if (st == ISEG_STATUS_OK) {
            iseg_free(s2);
            break;
        }
        ASSERT_STATUS(st, ISEG_STATUS_ENOMEM);
        ASSERT(s2 == NULL && n2 == 0);
    }
    double o[9];
    for (long i = 0;; i++) {
        g_fail_at = i, g_n_alloc = 0;
        enum iseg_status st = iseg_rle_iou(rs, 3, rs, 3, NULL, o);
        g_fail_at           = -1;
        if (st == ISEG_STATUS_OK) break;
        ASSERT_STATUS(st, ISEG_STATUS_ENOMEM);
    }
    ASSERT_EQ_DBL(o[0], 1.0);
    iseg_free(s);
    ASSERT_EQ_INT(g_live, live0);
    for (int i = 0; i < 3; i++) iseg_rle_free(&rs[i]);
    free(mask);
    iseg_alloc_set(NULL);
}

/* The one-pass scan (check, area, box) used by the evaluator agrees with decoding, on valid
 * strings and on corrupted ones. */
TEST(string_scan_matches_decode) {
    uint64_t seed = 7;
    for (int it = 0; it < 3000; it++) {
        uint32_t h = 1 + (uint32_t)(test_rand(&seed) % 40), w = 1 + (uint32_t)(test_rand(&seed) % 40);
        uint8_t *mask = malloc((size_t)h * w);
        ASSERT(mask);
        int kind = (int)(test_rand(&seed) % 3);
        for (size_t i = 0; i < (size_t)h * w; i++)
            mask[i] = kind == 0 ? (uint8_t)(test_rand(&seed) % 2)
                      : kind == 1 ? (uint8_t)(test_rand(&seed) % 17 == 0) : 0;
        struct iseg_rle r = {0};
        ASSERT_OK(iseg_rle_encode(&r, mask, h, w));
        char  *str;
        size_t n;
        ASSERT_OK(iseg_rle_to_string(&r, &str, &n));
        /* corrupt some of them */
        if (test_rand(&seed) % 3 == 0 && n > 0) str[test_rand(&seed) % n] = (char)(test_rand(&seed) % 128);
        struct iseg_rle d = {0};
        enum iseg_status st1 = iseg_rle_from_string(&d, str, n, h, w);
        uint64_t area = 0;
        double   bb[4];
        enum iseg_status st2 = iseg__rle_string_scan(str, n, h, w, &area, bb);
        ASSERT_EQ_INT(st1, st2);
        if (st1 == ISEG_STATUS_OK) {
            double want[4];
            iseg_rle_to_bbox(&d, want);
            ASSERT_EQ_U64(area, iseg_rle_area(&d));
            for (int j = 0; j < 4; j++) ASSERT_EQ_DBL(bb[j], want[j]);
        }
        iseg_rle_free(&d);
        iseg_rle_free(&r);
        iseg_free(str);
        free(mask);
    }
    /* zero-length foreground runs: the reference's wrapped box, from both */
    struct iseg_rle z = {0};
    uint32_t        zc[3] = {5, 0, 7};
    ASSERT_OK(iseg_rle_from_counts(&z, zc, 3, 3, 4));
    char *zs;
    size_t zn;
    ASSERT_OK(iseg_rle_to_string(&z, &zs, &zn));
    double   want[4], got[4];
    uint64_t area;
    iseg_rle_to_bbox(&z, want);
    ASSERT_OK(iseg__rle_string_scan(zs, zn, 3, 4, &area, got));
    for (int j = 0; j < 4; j++) ASSERT_EQ_DBL(got[j], want[j]);
    iseg_free(zs);
    iseg_rle_free(&z);
}

TEST_LIST = {
    TEST_ENTRY(vectors_encode),
    TEST_ENTRY(vectors_polygon),
    TEST_ENTRY(vectors_bbox),
    TEST_ENTRY(vectors_merge),
    TEST_ENTRY(vectors_iou_mask),
    TEST_ENTRY(vectors_iou_box),
    TEST_ENTRY(encode_hand),
    TEST_ENTRY(string_hand),
    TEST_ENTRY(string_errors),
    TEST_ENTRY(validate_decode_counts),
    TEST_ENTRY(to_bbox_edge_cases),
    TEST_ENTRY(merge_hand),
    TEST_ENTRY(iou_hand),
    TEST_ENTRY(poly_hand),
    TEST_ENTRY(poly_vs_naive),
    TEST_ENTRY(random_round_trip),
    TEST_ENTRY(random_iou_merge_vs_bitmap),
    TEST_ENTRY(out_of_memory),
    TEST_ENTRY(string_scan_matches_decode),
    TEST_END,
};
