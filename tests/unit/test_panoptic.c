/* test_panoptic.c - Panoptic Quality and Boundary PQ (src/panoptic/pq_*.c): the reference's
 * expected numbers on real COCO data, one hand-made case per rule, thread-count determinism
 * and bad inputs. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <stdarg.h>
#include <sys/stat.h>

#include <yajl/yajl_tree.h>

#include "image/png_impl.h"
#include "panoptic/pq_impl.h"
#include "iseg/image.h"
#include "iseg/mask.h"
#include "iseg/panoptic.h"
#include "test.h"

/* ---- helpers ---- */

static char *tmp_path(const char *name) {
    static char buf[4][4096];
    static int  k;
    char       *p = buf[k++ & 3];
    snprintf(p, sizeof(buf[0]), "%s/%s", test_tmp_dir(), name);
    return p;
}

static void write_text(const char *path, const char *s) {
    FILE *f = fopen(path, "wb");
    ASSERT_MSG(f, "cannot create %s: %s", path, strerror(errno));
    ASSERT(fwrite(s, 1, strlen(s), f) == strlen(s));
    ASSERT(fclose(f) == 0);
}

/* An id map as an RGB PNG (id = R + 256 G + 256^2 B). */
static void write_ids(const char *path, uint32_t w, uint32_t h, const uint32_t *ids) {
    struct iseg_image img = {0};
    ASSERT_OK(iseg_image_alloc(&img, w, h, 3, 8));
    uint8_t *px = img.data;
    for (size_t i = 0; i < (size_t)w * h; i++) {
        px[3 * i]     = (uint8_t)(ids[i] & 255);
        px[3 * i + 1] = (uint8_t)(ids[i] >> 8 & 255);
        px[3 * i + 2] = (uint8_t)(ids[i] >> 16 & 255);
    }
    char err[256];
    enum iseg_status st = iseg_png_write(path, &img, err, sizeof(err));
    ASSERT_MSG(st == ISEG_STATUS_OK, "%s", err);
    iseg_image_free(&img);
}

struct seg {
    int64_t id;
    int     cat;
    int     crowd;
    long    area; /* < 0: the pixel count in the map */
};

struct json {
    char   s[65536];
    size_t n;
};

__attribute__((format(printf, 2, 3))) static void jf(struct json *j, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(j->s + j->n, sizeof(j->s) - j->n, fmt, ap);
    va_end(ap);
    ASSERT(k >= 0 && (size_t)k < sizeof(j->s) - j->n);
    j->n += (size_t)k;
}

static const char CATS[] =
    "[{\"id\": 1, \"name\": \"person\", \"isthing\": 1}, {\"id\": 2, \"name\": \"car\", "
    "\"isthing\": 1}, {\"id\": 3, \"name\": \"sky\", \"isthing\": 0}, {\"id\": 4, \"name\": "
    "\"road\", \"isthing\": 0}]";

static long count_id(const uint32_t *ids, size_t n, int64_t id) {
    long c = 0;
    for (size_t i = 0; i < n; i++) c += ids[i] == (uint64_t)id;
    return c;
}

static void segs_json(struct json *j, const struct seg *s, size_t n, const uint32_t *ids,
                      size_t npx) {
    jf(j, "[");
    for (size_t k = 0; k < n; k++) {
        long area = s[k].area >= 0 ? s[k].area : count_id(ids, npx, s[k].id);
        jf(j, "%s{\"id\": %lld, \"category_id\": %d, \"iscrowd\": %d, \"area\": %ld}",
           k ? ", " : "", (long long)s[k].id, s[k].cat, s[k].crowd, area);
    }
    jf(j, "]");
}

/* One image (id 7, "img.png") of w x h: ground truth and prediction maps and segments. */
struct pan_case {
    uint32_t          w, h;
    const uint32_t   *gt, *pred;
    const struct seg *gs, *ps;
    size_t            ng, np;
};

/* Write the case under the scratch dir: gt.json, pred.json, gt/img.png, pred/img.png. */
static void write_case(const struct pan_case *c) {
    mkdir(tmp_path("gt"), 0777);
    mkdir(tmp_path("pred"), 0777);
    size_t       npx = (size_t)c->w * c->h;
    struct json *j   = calloc(1, sizeof(*j));
    ASSERT(j);
    jf(j, "{\"images\": [{\"id\": 7, \"width\": %u, \"height\": %u, \"file_name\": \"img.jpg\"}], "
       "\"categories\": %s, \"annotations\": [{\"image_id\": 7, \"file_name\": \"img.png\", "
       "\"segments_info\": ", c->w, c->h, CATS);
    segs_json(j, c->gs, c->ng, c->gt, npx);
    jf(j, "}]}\n");
    write_text(tmp_path("gt.json"), j->s);
    j->n = 0;
    jf(j, "{\"annotations\": [{\"image_id\": 7, \"file_name\": \"img.png\", \"segments_info\": ");
    segs_json(j, c->ps, c->np, c->pred, npx);
    jf(j, "}]}\n");
    write_text(tmp_path("pred.json"), j->s);
    free(j);
    write_ids(tmp_path("gt/img.png"), c->w, c->h, c->gt);
    write_ids(tmp_path("pred/img.png"), c->w, c->h, c->pred);
}

static enum iseg_status eval_dir(bool boundary, int n_threads, iseg_panoptic_eval_t *ev) {
    struct iseg_panoptic_eval_params p = iseg_panoptic_eval_default_params();
    p.boundary                         = boundary;
    p.n_threads                        = n_threads;
    ASSERT_OK(iseg_panoptic_eval_init(ev, &p, NULL, 0));
    char gt_dir[4096], pred_dir[4096], gt_json[4096], pred_json[4096];
    snprintf(gt_dir, sizeof(gt_dir), "%s", tmp_path("gt"));
    snprintf(pred_dir, sizeof(pred_dir), "%s", tmp_path("pred"));
    snprintf(gt_json, sizeof(gt_json), "%s", tmp_path("gt.json"));
    snprintf(pred_json, sizeof(pred_json), "%s", tmp_path("pred.json"));
    enum iseg_status st = iseg_panoptic_eval_load(*ev, gt_json, gt_dir, pred_json, pred_dir);
    if (st == ISEG_STATUS_OK) st = iseg_panoptic_eval_run(*ev);
    return st;
}

static iseg_panoptic_eval_t eval_case(const struct pan_case *c, bool boundary) {
    iseg_panoptic_eval_t ev;
    write_case(c);
    enum iseg_status st = eval_dir(boundary, 1, &ev);
    ASSERT_MSG(st == ISEG_STATUS_OK, "%s: %s", iseg_status_str(st),
               iseg_panoptic_eval_last_error(ev));
    return ev;
}

static struct iseg_panoptic_cat_result cat_res(iseg_panoptic_eval_t ev, int64_t id) {
    struct iseg_panoptic_cat_result r;
    for (size_t k = 0; k < iseg_panoptic_eval_n_cats(ev); k++) {
        iseg_panoptic_eval_cat_result(ev, k, &r);
        if (r.id == id) return r;
    }
    TEST_FAIL("category %lld not found", (long long)id);
}

static struct iseg_panoptic_result group(iseg_panoptic_eval_t ev, enum iseg_panoptic_group g) {
    struct iseg_panoptic_result r;
    iseg_panoptic_eval_result(ev, g, &r);
    return r;
}

#define ASSERT_TP_FP_FN(r, a, b, c)  \
    do {                             \
        ASSERT_EQ_U64((r).tp, (a));  \
        ASSERT_EQ_U64((r).fp, (b));  \
        ASSERT_EQ_U64((r).fn, (c));  \
    } while (0)

/* ---- the reference's expected numbers on COCO val2017 ground truth ---- */

static yajl_val load_expected(void) {
    size_t   n;
    char    *text = test_read_file(test_shared_path("data/panoptic/coco_sample/expected_pq.json"),
                                   &n);
    char     err[256];
    yajl_val v = yajl_tree_parse(text, err, sizeof(err));
    free(text);
    ASSERT_MSG(v, "expected_pq.json: %s", err);
    return v;
}

static double jnum(yajl_val root, const char *a, const char *b, const char *c, const char *d) {
    const char *path[] = {a, b, c, d, NULL};
    yajl_val    v      = yajl_tree_get(root, path, yajl_t_number);
    ASSERT_MSG(v, "expected_pq.json: %s/%s/%s/%s missing", a, b, c, d);
    return YAJL_GET_DOUBLE(v);
}

static iseg_panoptic_eval_t eval_sample(const char *pred_json, const char *pred_dir,
                                        bool boundary, int n_threads) {
    char gj[4096], gd[4096], pj[4096], pd[4096], rel[256];
    snprintf(gj, sizeof(gj), "%s",
             test_shared_path("data/panoptic/coco_sample/panoptic_examples.json"));
    snprintf(gd, sizeof(gd), "%s", test_shared_path("data/panoptic/coco_sample/panoptic_examples"));
    snprintf(rel, sizeof(rel), "data/panoptic/coco_sample/%s", pred_json);
    snprintf(pj, sizeof(pj), "%s", test_shared_path(rel));
    snprintf(rel, sizeof(rel), "data/panoptic/coco_sample/%s", pred_dir);
    snprintf(pd, sizeof(pd), "%s", test_shared_path(rel));
    struct iseg_panoptic_eval_params p = iseg_panoptic_eval_default_params();
    p.boundary                         = boundary;
    p.n_threads                        = n_threads;
    iseg_panoptic_eval_t ev;
    ASSERT_OK(iseg_panoptic_eval_init(&ev, &p, NULL, 0));
    enum iseg_status st = iseg_panoptic_eval_load(ev, gj, gd, pj, pd);
    if (st == ISEG_STATUS_OK) st = iseg_panoptic_eval_run(ev);
    ASSERT_MSG(st == ISEG_STATUS_OK, "%s", iseg_panoptic_eval_last_error(ev));
    return ev;
}

TEST(expected_gt_vs_gt) {
    iseg_panoptic_eval_t ev = eval_sample("panoptic_examples.json", "panoptic_examples", false, 2);
    struct iseg_panoptic_result r = group(ev, ISEG_PANOPTIC_ALL);
    ASSERT_EQ_DBL(r.pq, 1.0);
    ASSERT_EQ_DBL(r.sq, 1.0);
    ASSERT_EQ_DBL(r.rq, 1.0);
    ASSERT_EQ_U64(r.n, 8);
    iseg_panoptic_eval_free(ev);
}

static void check_expected(bool boundary) {
    yajl_val             exp = load_expected();
    iseg_panoptic_eval_t ev  = eval_sample("perturbed_pred.json", "perturbed_pred", boundary, 2);
    const char          *key = boundary ? "boundary_pq" : "pq";
    for (int g = 0; g < ISEG_PANOPTIC_GROUP_COUNT; g++) {
        const char                 *name = iseg_panoptic_group_name((enum iseg_panoptic_group)g);
        struct iseg_panoptic_result r    = group(ev, (enum iseg_panoptic_group)g);
        ASSERT_NEAR(r.pq, jnum(exp, "gt_vs_perturbed", key, name, "pq"), 1e-12);
        ASSERT_NEAR(r.sq, jnum(exp, "gt_vs_perturbed", key, name, "sq"), 1e-12);
        ASSERT_NEAR(r.rq, jnum(exp, "gt_vs_perturbed", key, name, "rq"), 1e-12);
        ASSERT_EQ_U64(r.n, (uint64_t)jnum(exp, "gt_vs_perturbed", key, name, "n"));
        /* in fact bit for bit */
        ASSERT_EQ_DBL(r.pq, jnum(exp, "gt_vs_perturbed", key, name, "pq"));
        ASSERT_EQ_DBL(r.sq, jnum(exp, "gt_vs_perturbed", key, name, "sq"));
        ASSERT_EQ_DBL(r.rq, jnum(exp, "gt_vs_perturbed", key, name, "rq"));
    }
    iseg_panoptic_eval_free(ev);
    yajl_tree_free(exp);
}

TEST(expected_gt_vs_perturbed_pq) { check_expected(false); }
TEST(expected_gt_vs_perturbed_boundary_pq) { check_expected(true); }

TEST(summary_and_json) {
    iseg_panoptic_eval_t ev = eval_sample("perturbed_pred.json", "perturbed_pred", false, 1);
    char *s = iseg_panoptic_eval_summary(ev);
    ASSERT_STREQ(s, "          |    PQ     SQ     RQ     N\n"
                    "--------------------------------------\n"
                    "All       |  68.6   77.0   69.3     9\n"
                    "Things    |  79.4   98.2   80.9     4\n"
                    "Stuff     |  60.0   60.0   60.0     5\n");
    iseg_free(s);
    char *doc = iseg_panoptic_eval_json(ev);
    char  err[256];
    yajl_val v = yajl_tree_parse(doc, err, sizeof(err));
    ASSERT_MSG(v, "report is not JSON: %s", err);
    const char *p_all[] = {"All", "pq", NULL};
    ASSERT_EQ_DBL(YAJL_GET_DOUBLE(yajl_tree_get(v, p_all, yajl_t_number)),
                  group(ev, ISEG_PANOPTIC_ALL).pq);
    const char *p_cls[] = {"per_class", "1", "rq", NULL};
    ASSERT(yajl_tree_get(v, p_cls, yajl_t_number));
    yajl_tree_free(v);
    iseg_free(doc);
    iseg_panoptic_eval_free(ev);
}

/* ---- one case per rule ---- */

/* IoU exactly 0.5 is not a match (strict >); 2/3 is. */
TEST(iou_half_is_not_a_match) {
    const uint32_t   gt[]   = {1, 1, 2, 2, 2, 2};
    const uint32_t   pred[] = {5, 5, 5, 5, 6, 6};
    const struct seg gs[]   = {{1, 1, 0, -1}, {2, 2, 0, -1}};
    const struct seg ps[]   = {{5, 1, 0, -1}, {6, 2, 0, -1}};
    /* person: inter 2, union 4 + 2 - 2 = 4 -> 0.5: fp + fn. car: inter 2, union 2 + 4 - 2 = 4 */
    struct pan_case c = {6, 1, gt, pred, gs, ps, 2, 2};
    iseg_panoptic_eval_t ev = eval_case(&c, false);
    struct iseg_panoptic_cat_result r = cat_res(ev, 1);
    ASSERT_TP_FP_FN(r, 0, 1, 1);
    ASSERT_EQ_DBL(r.pq, 0.0);
    r = cat_res(ev, 2);
    ASSERT_TP_FP_FN(r, 0, 1, 1);
    iseg_panoptic_eval_free(ev);

    const uint32_t pred2[] = {5, 5, 5, 6, 6, 6};
    c.pred = pred2; /* person: inter 2, union 3 + 2 - 2 = 3 -> 2/3 */
    ev = eval_case(&c, false);
    r  = cat_res(ev, 1);
    ASSERT_TP_FP_FN(r, 1, 0, 0);
    ASSERT_EQ_DBL(r.iou_sum, 2.0 / 3.0);
    ASSERT_EQ_DBL(r.sq, 2.0 / 3.0);
    ASSERT_EQ_DBL(r.rq, 1.0);
    r = cat_res(ev, 2); /* car: inter 3, union 3 + 4 - 3 = 4 -> 0.75 */
    ASSERT_TP_FP_FN(r, 1, 0, 0);
    ASSERT_EQ_DBL(r.iou_sum, 0.75);
    iseg_panoptic_eval_free(ev);
}

/* Prediction pixels on ground-truth VOID leave the union. */
TEST(void_leaves_the_union) {
    const uint32_t   gt[]   = {1, 1, 0, 0, 0, 3};
    const uint32_t   pred[] = {5, 5, 5, 5, 5, 6};
    const struct seg gs[]   = {{1, 1, 0, -1}, {3, 3, 0, -1}};
    const struct seg ps[]   = {{5, 1, 0, -1}, {6, 3, 0, -1}};
    /* inter 2, union 5 + 2 - 2 - 3 = 2 -> IoU 1 (0.4 without the VOID rule) */
    struct pan_case      c  = {6, 1, gt, pred, gs, ps, 2, 2};
    iseg_panoptic_eval_t ev = eval_case(&c, false);
    struct iseg_panoptic_cat_result r = cat_res(ev, 1);
    ASSERT_TP_FP_FN(r, 1, 0, 0);
    ASSERT_EQ_DBL(r.iou_sum, 1.0);
    iseg_panoptic_eval_free(ev);
}

/* The ground-truth area is the JSON's, not the PNG's. */
TEST(gt_area_from_json) {
    const uint32_t   gt[]   = {1, 1, 1, 1, 3, 3};
    const uint32_t   pred[] = {5, 5, 5, 5, 6, 6};
    const struct seg gs[]   = {{1, 1, 0, 7}, {3, 3, 0, -1}};
    const struct seg ps[]   = {{5, 1, 0, -1}, {6, 3, 0, -1}};
    /* inter 4, union 4 + 7 - 4 = 7 -> 4/7 (1.0 with the PNG's area) */
    struct pan_case      c  = {6, 1, gt, pred, gs, ps, 2, 2};
    iseg_panoptic_eval_t ev = eval_case(&c, false);
    struct iseg_panoptic_cat_result r = cat_res(ev, 1);
    ASSERT_TP_FP_FN(r, 1, 0, 0);
    ASSERT_EQ_DBL(r.iou_sum, 4.0 / 7.0);
    iseg_panoptic_eval_free(ev);
}

/* Crowd ground truth never matches; an unmatched prediction more than half on VOID plus the
 * crowd region of its own class is ignored, half or less is a false positive. */
TEST(crowd_and_void_false_positive_rule) {
    /* 10 x 1: crowd person (id 9) on 0..3, VOID 4..5, sky 6..9 */
    const uint32_t gt[] = {9, 9, 9, 9, 0, 0, 3, 3, 3, 3};
    /* pred 5 (person): 3 crowd + 1 void + 0 = 4 px, all ignored region -> ignored.
     * pred 6 (car): 1 crowd px + 1 void px + 2 sky px: (1 void) / 4 = 0.25 -> fp (crowd is
     * another class). pred 7 (sky) covers 2 sky px: 2 / 4 = 0.5 -> fn + fp (IoU 0.5). */
    const uint32_t   pred[] = {5, 5, 5, 6, 5, 6, 6, 6, 7, 7};
    const struct seg gs[]   = {{9, 1, 1, -1}, {3, 3, 0, -1}};
    const struct seg ps[]   = {{5, 1, 0, -1}, {6, 2, 0, -1}, {7, 3, 0, -1}};
    struct pan_case      c  = {10, 1, gt, pred, gs, ps, 2, 3};
    iseg_panoptic_eval_t ev = eval_case(&c, false);
    struct iseg_panoptic_cat_result r = cat_res(ev, 1);
    ASSERT_TP_FP_FN(r, 0, 0, 0);
    ASSERT(!r.counted);
    r = cat_res(ev, 2);
    ASSERT_TP_FP_FN(r, 0, 1, 0);
    r = cat_res(ev, 3);
    ASSERT_TP_FP_FN(r, 0, 1, 1);
    iseg_panoptic_eval_free(ev);

    /* exactly half on VOID + crowd is not "more than half": a false positive */
    const uint32_t pred2[] = {5, 6, 6, 6, 5, 6, 5, 5, 7, 7};
    c.pred = pred2; /* pred 5: crowd 1 + void 1 + sky 2 -> 2/4 = 0.5 -> fp */
    ev     = eval_case(&c, false);
    r      = cat_res(ev, 1);
    ASSERT_TP_FP_FN(r, 0, 1, 0);
    iseg_panoptic_eval_free(ev);
}

/* With several crowd segments of one class, only the last listed counts for the FP rule. */
TEST(last_crowd_segment_wins) {
    /* crowd person 8 on 0..3, crowd person 9 on 4..7, sky 8..9 */
    const uint32_t gt[] = {8, 8, 8, 8, 9, 9, 9, 9, 3, 3};
    /* pred 5 (person) on crowd 8; pred 6 (person) on crowd 9 */
    const uint32_t   pred[] = {5, 5, 5, 5, 6, 6, 6, 6, 7, 7};
    const struct seg gs[]   = {{8, 1, 1, -1}, {9, 1, 1, -1}, {3, 3, 0, -1}};
    const struct seg ps[]   = {{5, 1, 0, -1}, {6, 1, 0, -1}, {7, 3, 0, -1}};
    struct pan_case      c  = {10, 1, gt, pred, gs, ps, 3, 3};
    iseg_panoptic_eval_t ev = eval_case(&c, false);
    struct iseg_panoptic_cat_result r = cat_res(ev, 1);
    ASSERT_TP_FP_FN(r, 0, 1, 0); /* pred 5 is a false positive: crowd 9 is the region */
    iseg_panoptic_eval_free(ev);

    const struct seg gs2[] = {{9, 1, 1, -1}, {8, 1, 1, -1}, {3, 3, 0, -1}};
    c.gs                   = gs2; /* now crowd 8 is the last: pred 6 becomes the fp */
    ev                     = eval_case(&c, false);
    r                      = cat_res(ev, 1);
    ASSERT_TP_FP_FN(r, 0, 1, 0);
    iseg_panoptic_eval_free(ev);
}

/* Classes without tp, fp and fn are left out of the means; classes with only errors count with
 * zeros, SQ included. */
TEST(class_exclusion_and_zero_sq) {
    /* person matched (IoU 1), car missed (fn), sky matched with IoU 0.75, road absent */
    const uint32_t   gt[]   = {1, 1, 2, 2, 3, 3, 3, 3};
    const uint32_t   pred[] = {5, 5, 0, 0, 7, 7, 7, 0};
    const struct seg gs[]   = {{1, 1, 0, -1}, {2, 2, 0, -1}, {3, 3, 0, -1}};
    const struct seg ps[]   = {{5, 1, 0, -1}, {7, 3, 0, -1}};
    struct pan_case      c  = {8, 1, gt, pred, gs, ps, 3, 2};
    iseg_panoptic_eval_t ev = eval_case(&c, false);
    struct iseg_panoptic_result all = group(ev, ISEG_PANOPTIC_ALL);
    ASSERT_EQ_U64(all.n, 3);
    ASSERT_EQ_DBL(all.pq, (1.0 + 0.0 + 0.75) / 3);
    ASSERT_EQ_DBL(all.sq, (1.0 + 0.0 + 0.75) / 3); /* the car's SQ of 0 is averaged in */
    ASSERT_EQ_DBL(all.rq, (1.0 + 0.0 + 1.0) / 3);
    struct iseg_panoptic_result th = group(ev, ISEG_PANOPTIC_THINGS);
    ASSERT_EQ_U64(th.n, 2);
    ASSERT_EQ_DBL(th.sq, 0.5);
    struct iseg_panoptic_result st = group(ev, ISEG_PANOPTIC_STUFF);
    ASSERT_EQ_U64(st.n, 1); /* road: no tp, fp or fn */
    ASSERT(!cat_res(ev, 4).counted);
    ASSERT_EQ_DBL(st.pq, 0.75);
    iseg_panoptic_eval_free(ev);
}

/* Boundary PQ: min(mask IoU, boundary IoU) with boundaries from the RLE mask API. */
TEST(boundary_is_min_of_mask_and_band) {
    enum { W = 40, H = 30 };
    static uint32_t gt[W * H], pred[W * H];
    uint8_t        *mg = calloc(W * H, 1), *mp = calloc(W * H, 1);
    ASSERT(mg && mp);
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            bool ing = x >= 5 && x < 30 && y >= 4 && y < 24;
            bool inp = x >= 6 && x < 30 && y >= 4 && y < 24;
            gt[y * W + x]   = ing ? 1 : 3;
            pred[y * W + x] = inp ? 5 : 6;
            mg[x * H + y]   = ing; /* column-major for the RLE */
            mp[x * H + y]   = inp;
        }
    const struct seg gs[] = {{1, 1, 0, -1}, {3, 3, 0, -1}};
    const struct seg ps[] = {{5, 1, 0, -1}, {6, 3, 0, -1}};
    struct pan_case  c    = {W, H, gt, pred, gs, ps, 2, 2};
    iseg_panoptic_eval_t ev = eval_case(&c, true);

    struct iseg_rle rg = {0}, rp = {0}, bg = {0}, bp = {0};
    ASSERT_OK(iseg_rle_encode(&rg, mg, H, W));
    ASSERT_OK(iseg_rle_encode(&rp, mp, H, W));
    uint32_t d = iseg_boundary_dilation(H, W, 0.02);
    ASSERT_EQ_U64(d, 1);
    ASSERT_OK(iseg_rle_boundary(&bg, &rg, d));
    ASSERT_OK(iseg_rle_boundary(&bp, &rp, d));
    double mask_iou = iseg_rle_iou_pair(&rp, &rg, false);
    double band_iou = iseg_rle_iou_pair(&bp, &bg, false);
    ASSERT_MSG(band_iou < mask_iou && band_iou > 0.5, "band %g mask %g", band_iou, mask_iou);
    struct iseg_panoptic_cat_result r = cat_res(ev, 1);
    ASSERT_TP_FP_FN(r, 1, 0, 0);
    ASSERT_NEAR(r.iou_sum, band_iou, 1e-15);
    iseg_panoptic_eval_free(ev);
    ev = eval_case(&c, false);
    ASSERT_NEAR(cat_res(ev, 1).iou_sum, mask_iou, 1e-15);
    iseg_panoptic_eval_free(ev);
    iseg_rle_free(&rg);
    iseg_rle_free(&rp);
    iseg_rle_free(&bg);
    iseg_rle_free(&bp);
    free(mg);
    free(mp);
}

/* boundary-iou-api marks segment interiors with (largest category id + 1) = 5 here while it
 * walks segments_info; a segment whose id is 5 then also takes the interiors of the segments
 * listed before it as its mask. Expected numbers: the reference's algorithm (restated in
 * Python with numpy and OpenCV) on these six images. */
TEST(boundary_marker_id_collision) {
    mkdir(tmp_path("gt"), 0777);
    mkdir(tmp_path("pred"), 0777);
    struct json *gj = calloc(1, sizeof(*gj)), *pj = calloc(1, sizeof(*pj));
    ASSERT(gj && pj);
    jf(gj, "{\"categories\": %s, \"annotations\": [", CATS);
    jf(pj, "{\"annotations\": [");
    for (int n = 0; n < 6; n++) {
        uint32_t  w = 80, h = 60 + 3 * (uint32_t)n;
        uint32_t *g = calloc((size_t)w * h, 4), *p = calloc((size_t)w * h, 4);
        ASSERT(g && p);
        uint32_t pid = n % 2 ? 5 : 15;
        for (uint32_t y = 0; y < h; y++)
            for (uint32_t x = 0; x < w; x++) {
                uint32_t v = y < h / 2 ? 3 : 4;
                if (y >= 10 && y < 30 && x >= 10 && x < 35) v = 5;
                if (y >= 35 && y < 50 && x >= 40 && x < 70) v = 6;
                if (y >= 5 && y < 8 && x >= 60 && x < 75) v = 0;
                g[y * w + x] = v;
                v = y < h / 2 + 1 ? 13 : 14;
                if (y >= 11 && y < 30 && x >= 11 && x < 36) v = pid;
                if (y >= 34 && y < 50 && x >= 41 && x < 70) v = 16;
                p[y * w + x] = v;
            }
        struct seg gs[4] = {{3, 3, 0, -1}, {4, 4, 0, -1}, {5, 1, 0, -1}, {6, 2, 0, -1}};
        struct seg ps[4] = {{13, 3, 0, -1}, {14, 4, 0, -1}, {pid, 1, 0, -1}, {16, 2, 0, -1}};
        if (n % 3 == 0) { /* the marker id first */
            struct seg t = gs[2];
            gs[2] = gs[1], gs[1] = gs[0], gs[0] = t;
        }
        if (n % 4 == 1) {
            struct seg t = ps[2];
            ps[2] = ps[1], ps[1] = ps[0], ps[0] = t;
        }
        char name[64], path[4200];
        snprintf(name, sizeof(name), "%d.png", n);
        jf(gj, "%s{\"image_id\": %d, \"file_name\": \"%s\", \"segments_info\": ", n ? ", " : "",
           n, name);
        segs_json(gj, gs, 4, g, (size_t)w * h);
        jf(gj, "}");
        jf(pj, "%s{\"image_id\": %d, \"file_name\": \"%s\", \"segments_info\": ", n ? ", " : "",
           n, name);
        segs_json(pj, ps, 4, p, (size_t)w * h);
        jf(pj, "}");
        snprintf(path, sizeof(path), "%s/%s", tmp_path("gt"), name);
        write_ids(path, w, h, g);
        snprintf(path, sizeof(path), "%s/%s", tmp_path("pred"), name);
        write_ids(path, w, h, p);
        free(g);
        free(p);
    }
    jf(gj, "]}\n");
    jf(pj, "]}\n");
    write_text(tmp_path("gt.json"), gj->s);
    write_text(tmp_path("pred.json"), pj->s);
    free(gj);
    free(pj);
    iseg_panoptic_eval_t ev;
    ASSERT_OK(eval_dir(true, 3, &ev));
    struct iseg_panoptic_result r = group(ev, ISEG_PANOPTIC_ALL);
    ASSERT_EQ_DBL(r.pq, 0.5121710254271473);
    ASSERT_EQ_DBL(r.sq, 0.6726901511102075);
    ASSERT_EQ_DBL(r.rq, 0.7916666666666667);
    r = group(ev, ISEG_PANOPTIC_THINGS);
    ASSERT_EQ_DBL(r.pq, 0.368129218900675);
    ASSERT_EQ_DBL(r.sq, 0.6891674702667951);
    ASSERT_EQ_DBL(r.rq, 0.5833333333333334);
    r = group(ev, ISEG_PANOPTIC_STUFF);
    ASSERT_EQ_DBL(r.pq, 0.6562128319536197);
    ASSERT_EQ_DBL(r.rq, 1.0);
    iseg_panoptic_eval_free(ev);
}

/* ---- determinism ---- */

static uint32_t rnd(uint64_t *s, uint32_t n) { return (uint32_t)(test_rand(s) % n); }

/* n images of random rectangles over stuff halves; predictions are jittered copies. */
static void write_random_dataset(int n) {
    mkdir(tmp_path("gt"), 0777);
    mkdir(tmp_path("pred"), 0777);
    uint64_t     seed = 12345;
    struct json *gj = calloc(1, sizeof(*gj)), *pj = calloc(1, sizeof(*pj));
    ASSERT(gj && pj);
    jf(gj, "{\"categories\": %s, \"annotations\": [", CATS);
    jf(pj, "{\"annotations\": [");
    for (int i = 0; i < n; i++) {
        uint32_t  w = 30 + rnd(&seed, 40), h = 20 + rnd(&seed, 40);
        uint32_t *g = calloc((size_t)w * h, 4), *p = calloc((size_t)w * h, 4);
        ASSERT(g && p);
        for (uint32_t y = 0; y < h; y++)
            for (uint32_t x = 0; x < w; x++) {
                g[y * w + x] = y < h / 2 ? 100 : 200;
                p[y * w + x] = y < h / 2 + rnd(&seed, 2) ? 300 : 400;
            }
        struct seg gs[8] = {{100, 3, 0, -1}, {200, 4, 0, -1}}, ps[8] = {{300, 3, 0, -1},
                                                                         {400, 4, 0, -1}};
        size_t ng = 2, np = 2;
        int    k  = 1 + (int)rnd(&seed, 5);
        for (int r = 0; r < k; r++) {
            uint32_t x0 = rnd(&seed, w - 8), y0 = rnd(&seed, h - 8), rw = 3 + rnd(&seed, 8),
                     rh = 3 + rnd(&seed, 8);
            int      cat = 1 + (int)rnd(&seed, 2), crowd = rnd(&seed, 6) == 0;
            int      dx = (int)rnd(&seed, 3) - 1, dy = (int)rnd(&seed, 3) - 1;
            for (uint32_t y = y0; y < y0 + rh && y < h; y++)
                for (uint32_t x = x0; x < x0 + rw && x < w; x++) {
                    g[y * w + x] = 10 + (uint32_t)r;
                    uint32_t px = (uint32_t)((int)x + dx), py = (uint32_t)((int)y + dy);
                    if (px < w && py < h && rnd(&seed, 20)) p[py * w + px] = 20 + (uint32_t)r;
                }
            gs[ng++] = (struct seg){10 + r, cat, crowd, -1};
            ps[np++] = (struct seg){20 + r, rnd(&seed, 8) ? cat : 3 - cat, 0, -1};
        }
        /* drop segments that were painted over */
        size_t ngk = 0, npk = 0;
        for (size_t q = 0; q < ng; q++)
            if (count_id(g, (size_t)w * h, gs[q].id)) gs[ngk++] = gs[q];
        for (size_t q = 0; q < np; q++)
            if (count_id(p, (size_t)w * h, ps[q].id)) ps[npk++] = ps[q];
        char name[64], path[4200];
        snprintf(name, sizeof(name), "%d.png", i);
        jf(gj, "%s{\"image_id\": %d, \"file_name\": \"%s\", \"segments_info\": ", i ? ", " : "",
           i, name);
        segs_json(gj, gs, ngk, g, (size_t)w * h);
        jf(gj, "}");
        jf(pj, "%s{\"image_id\": %d, \"file_name\": \"%s\", \"segments_info\": ", i ? ", " : "",
           i, name);
        segs_json(pj, ps, npk, p, (size_t)w * h);
        jf(pj, "}");
        snprintf(path, sizeof(path), "%s/%s", tmp_path("gt"), name);
        write_ids(path, w, h, g);
        snprintf(path, sizeof(path), "%s/%s", tmp_path("pred"), name);
        write_ids(path, w, h, p);
        free(g);
        free(p);
    }
    jf(gj, "]}\n");
    jf(pj, "]}\n");
    write_text(tmp_path("gt.json"), gj->s);
    write_text(tmp_path("pred.json"), pj->s);
    free(gj);
    free(pj);
}

TEST(thread_count_determinism) {
    write_random_dataset(40);
    for (int b = 0; b < 2; b++) {
        iseg_panoptic_eval_t e1, e7;
        ASSERT_OK(eval_dir(b, 1, &e1));
        ASSERT_OK(eval_dir(b, 7, &e7));
        ASSERT(group(e1, ISEG_PANOPTIC_ALL).n > 0);
        for (int g = 0; g < ISEG_PANOPTIC_GROUP_COUNT; g++) {
            struct iseg_panoptic_result a = group(e1, (enum iseg_panoptic_group)g),
                                        z = group(e7, (enum iseg_panoptic_group)g);
            ASSERT_EQ_DBL(a.pq, z.pq);
            ASSERT_EQ_DBL(a.sq, z.sq);
            ASSERT_EQ_DBL(a.rq, z.rq);
            ASSERT_EQ_U64(a.n, z.n);
        }
        for (size_t k = 0; k < iseg_panoptic_eval_n_cats(e1); k++) {
            struct iseg_panoptic_cat_result a, z;
            iseg_panoptic_eval_cat_result(e1, k, &a);
            iseg_panoptic_eval_cat_result(e7, k, &z);
            ASSERT_EQ_DBL(a.iou_sum, z.iou_sum);
            ASSERT_TP_FP_FN(a, z.tp, z.fp, z.fn);
        }
        char *j1 = iseg_panoptic_eval_json(e1), *j7 = iseg_panoptic_eval_json(e7);
        ASSERT_STREQ(j1, j7);
        iseg_free(j1);
        iseg_free(j7);
        iseg_panoptic_eval_free(e1);
        iseg_panoptic_eval_free(e7);
    }
}

/* Rewrite the n images of write_random_dataset in another PNG layout carrying the same ids:
 * 4 RGBA (random alpha, ignored), 1 16-bit gray, 2 16-bit gray+alpha (ids below 65536). */
static void rewrite_dataset(int n, uint32_t c) {
    uint64_t seed = 77;
    for (int i = 0; i < n; i++)
        for (int k = 0; k < 2; k++) {
            char path[4200], err[256];
            snprintf(path, sizeof(path), "%s/%d.png", tmp_path(k ? "pred" : "gt"), i);
            struct iseg_image rgb = {0}, out = {0};
            ASSERT_OK(iseg_png_read(path, &rgb, err, sizeof(err)));
            ASSERT(rgb.c == 3 && rgb.depth == 8);
            ASSERT_OK(iseg_image_alloc(&out, rgb.w, rgb.h, c, c == 4 ? 8 : 16));
            const uint8_t *px = rgb.data;
            for (size_t j = 0; j < (size_t)rgb.w * rgb.h; j++) {
                uint32_t id = px[3 * j] | (uint32_t)px[3 * j + 1] << 8 |
                              (uint32_t)px[3 * j + 2] << 16;
                if (c == 4) {
                    memcpy((uint8_t *)out.data + 4 * j, px + 3 * j, 3);
                    ((uint8_t *)out.data)[4 * j + 3] = (uint8_t)rnd(&seed, 256);
                } else {
                    ASSERT(id < 65536);
                    ((uint16_t *)out.data)[c * j] = (uint16_t)id;
                    if (c == 2) ((uint16_t *)out.data)[c * j + 1] = (uint16_t)rnd(&seed, 65536);
                }
            }
            ASSERT_OK(iseg_png_write(path, &out, err, sizeof(err)));
            iseg_image_free(&rgb);
            iseg_image_free(&out);
        }
}

static char *eval_json(bool boundary, int n_threads) {
    iseg_panoptic_eval_t ev;
    enum iseg_status     st = eval_dir(boundary, n_threads, &ev);
    ASSERT_MSG(st == ISEG_STATUS_OK, "%s", iseg_panoptic_eval_last_error(ev));
    char *j = iseg_panoptic_eval_json(ev);
    ASSERT(j);
    iseg_panoptic_eval_free(ev);
    return j;
}

/* The PNGs are read row by row through the fast reader, or decoded whole when it declines
 * (libspng, 16-bit), and counted with the AVX2 or the portable row kernels: every route gives
 * the same ids and so the same results. */
TEST(png_layouts_agree) {
    enum { N = 24 };
    write_random_dataset(N);
    char *want[2] = {eval_json(false, 2), eval_json(true, 3)};
    iseg__png_force_slow = true; /* no evaluation is running */
    char *slow[2]        = {eval_json(false, 2), eval_json(true, 1)};
    iseg__png_force_slow = false;
    iseg__pq_force_scalar = true; /* the portable row kernels */
    char *scalar[2]       = {eval_json(false, 1), eval_json(true, 2)};
    iseg__pq_force_scalar = false;
    for (int b = 0; b < 2; b++) {
        ASSERT_STREQ(slow[b], want[b]);
        ASSERT_STREQ(scalar[b], want[b]);
        iseg_free(slow[b]);
        iseg_free(scalar[b]);
    }
    static const uint32_t LAYOUT[] = {4, 1, 2};
    for (size_t l = 0; l < sizeof(LAYOUT) / sizeof(LAYOUT[0]); l++) {
        write_random_dataset(N);
        rewrite_dataset(N, LAYOUT[l]);
        for (int b = 0; b < 2; b++) {
            char *got = eval_json(b, 2);
            ASSERT_MSG(strcmp(got, want[b]) == 0, "layout %u boundary %d", LAYOUT[l], b);
            iseg_free(got);
        }
    }
    iseg_free(want[0]);
    iseg_free(want[1]);
}

/* ---- bad inputs ---- */

static const uint32_t BGT[]   = {1, 1, 3, 3};
static const uint32_t BPRED[] = {5, 5, 6, 6};
static const struct seg BGS[] = {{1, 1, 0, -1}, {3, 3, 0, -1}};
static const struct seg BPS[] = {{5, 1, 0, -1}, {6, 3, 0, -1}};

static void expect_error(enum iseg_status want, const char *n1, const char *n2,
                         const char *n3) {
    iseg_panoptic_eval_t ev;
    enum iseg_status     st  = eval_dir(false, 2, &ev);
    const char          *msg = iseg_panoptic_eval_last_error(ev);
    ASSERT_MSG(st == want, "got %s (%s), expected %s", iseg_status_str(st), msg,
               iseg_status_str(want));
    ASSERT_STRCONTAINS(msg, n1);
    if (n2) ASSERT_STRCONTAINS(msg, n2);
    if (n3) ASSERT_STRCONTAINS(msg, n3);
    iseg_panoptic_eval_free(ev);
}

TEST(error_missing_prediction) {
    struct pan_case c = {4, 1, BGT, BPRED, BGS, BPS, 2, 2};
    write_case(&c);
    write_text(tmp_path("pred.json"), "{\"annotations\": [{\"image_id\": 8, \"file_name\": "
                                      "\"img.png\", \"segments_info\": []}]}");
    expect_error(ISEG_STATUS_EFORMAT, "pred.json: image 7", "no prediction", "gt.json");
}

TEST(error_png_id_not_in_json) {
    const uint32_t pred[] = {5, 5, 6, 0x030201};
    struct pan_case c     = {4, 1, BGT, pred, BGS, BPS, 2, 2};
    write_case(&c);
    expect_error(ISEG_STATUS_EFORMAT, "img.png: image 7", "segment 197121 (RGB 1,2,3)",
                 "not in");
}

TEST(error_json_id_not_in_png) {
    const struct seg ps[] = {{5, 1, 0, -1}, {6, 3, 0, -1}, {77, 1, 0, 3}};
    struct pan_case  c    = {4, 1, BGT, BPRED, BGS, ps, 2, 3};
    write_case(&c);
    expect_error(ISEG_STATUS_EFORMAT, "pred.json: image 7", "segment 77 is in segments_info",
                 "not in the PNG");
}

TEST(error_unknown_category) {
    const struct seg ps[] = {{5, 1, 0, -1}, {6, 42, 0, -1}};
    struct pan_case  c    = {4, 1, BGT, BPRED, BGS, ps, 2, 2};
    write_case(&c);
    expect_error(ISEG_STATUS_EFORMAT, "pred.json: image 7", "segment 6",
                 "unknown category_id 42");
}

TEST(error_duplicate_segment_id) {
    const struct seg ps[] = {{5, 1, 0, -1}, {6, 3, 0, -1}, {5, 1, 0, -1}};
    struct pan_case  c    = {4, 1, BGT, BPRED, BGS, ps, 2, 3};
    write_case(&c);
    expect_error(ISEG_STATUS_EFORMAT, "pred.json", "annotations[0]", "segment id 5 appears twice");
}

TEST(error_png_missing_or_corrupt) {
    struct pan_case c = {4, 1, BGT, BPRED, BGS, BPS, 2, 2};
    write_case(&c);
    ASSERT(remove(tmp_path("pred/img.png")) == 0);
    expect_error(ISEG_STATUS_EIO, "pred/img.png: image 7", "cannot open", NULL);
    write_text(tmp_path("pred/img.png"), "\x89PNG\r\n\x1a\nnot really");
    expect_error(ISEG_STATUS_EFORMAT, "pred/img.png: image 7", NULL, NULL);
    write_text(tmp_path("gt/img.png"), "GIF89a");
    expect_error(ISEG_STATUS_EFORMAT, "gt/img.png: image 7", "not a PNG", NULL);
}

TEST(error_png_sizes) {
    struct pan_case c = {4, 1, BGT, BPRED, BGS, BPS, 2, 2};
    write_case(&c);
    const uint32_t pred2[] = {5, 5, 6, 6, 6, 6, 6, 6};
    write_ids(tmp_path("pred/img.png"), 4, 2, pred2);
    expect_error(ISEG_STATUS_ESHAPE, "pred/img.png: image 7", "size 4 x 2 differs", "4 x 1");
    /* the ground-truth PNG disagrees with its "images" entry */
    write_ids(tmp_path("pred/img.png"), 2, 2, BPRED);
    write_ids(tmp_path("gt/img.png"), 2, 2, BGT);
    expect_error(ISEG_STATUS_ESHAPE, "gt/img.png: image 7", "differs from the", "(4 x 1)");
}

TEST(error_malformed_json) {
    struct pan_case c = {4, 1, BGT, BPRED, BGS, BPS, 2, 2};
    write_case(&c);
    static const char *const bad[][3] = {
        {"{\"annotations\": [", "invalid JSON", NULL},
        {"[1, 2]", "top level", NULL},
        {"{\"annotations\": 3, \"categories\": []}", "\"annotations\"", NULL},
        {"{\"annotations\": [], \"categories\": [{\"id\": 1}]}", "categories[0]", "isthing"},
        {"{\"annotations\": [{\"image_id\": 1}], \"categories\": []}", "annotations[0]",
         "file_name"},
        {"{\"annotations\": [{\"image_id\": 1, \"file_name\": \"a.png\", \"segments_info\": "
         "[{\"id\": 1, \"category_id\": 1, \"area\": 3}]}], \"categories\": []}",
         "segments_info[0]", "iscrowd"},
        {"{\"annotations\": [{\"image_id\": 1, \"file_name\": \"a.png\", \"segments_info\": "
         "[{\"id\": \"x\"}]}], \"categories\": []}", "segments_info[0]", "\"id\""},
    };
    for (size_t k = 0; k < sizeof(bad) / sizeof(bad[0]); k++) {
        write_text(tmp_path("gt.json"), bad[k][0]);
        expect_error(ISEG_STATUS_EFORMAT, "gt.json", bad[k][1], bad[k][2]);
    }
    write_text(tmp_path("gt.json"), "{}");
    ASSERT(remove(tmp_path("gt.json")) == 0);
    expect_error(ISEG_STATUS_EIO, "gt.json", "cannot open", NULL);
}

TEST(bad_params_and_state) {
    struct iseg_panoptic_eval_params p = iseg_panoptic_eval_default_params();
    iseg_panoptic_eval_t ev;
    char err[128];
    p.n_workers = 0;
    ASSERT_STATUS(iseg_panoptic_eval_init(&ev, &p, err, sizeof(err)), ISEG_STATUS_EINVAL);
    ASSERT(ev == NULL);
    ASSERT_STRCONTAINS(err, "n_workers");
    p = iseg_panoptic_eval_default_params();
    p.dilation_ratio = 0;
    ASSERT_STATUS(iseg_panoptic_eval_init(&ev, &p, err, sizeof(err)), ISEG_STATUS_EINVAL);
    p = iseg_panoptic_eval_default_params();
    ASSERT_OK(iseg_panoptic_eval_init(&ev, &p, NULL, 0));
    ASSERT_STATUS(iseg_panoptic_eval_run(ev), ISEG_STATUS_EBADSTATE);
    ASSERT_STRCONTAINS(iseg_panoptic_eval_last_error(ev), "nothing loaded");
    iseg_panoptic_eval_free(ev);
    iseg_panoptic_eval_free(NULL);
}

TEST_LIST = {
    TEST_ENTRY(expected_gt_vs_gt),
    TEST_ENTRY(expected_gt_vs_perturbed_pq),
    TEST_ENTRY(expected_gt_vs_perturbed_boundary_pq),
    TEST_ENTRY(summary_and_json),
    TEST_ENTRY(iou_half_is_not_a_match),
    TEST_ENTRY(void_leaves_the_union),
    TEST_ENTRY(gt_area_from_json),
    TEST_ENTRY(crowd_and_void_false_positive_rule),
    TEST_ENTRY(last_crowd_segment_wins),
    TEST_ENTRY(class_exclusion_and_zero_sq),
    TEST_ENTRY(boundary_is_min_of_mask_and_band),
    TEST_ENTRY(boundary_marker_id_collision),
    TEST_ENTRY(thread_count_determinism),
    TEST_ENTRY(png_layouts_agree),
    TEST_ENTRY(error_missing_prediction),
    TEST_ENTRY(error_png_id_not_in_json),
    TEST_ENTRY(error_json_id_not_in_png),
    TEST_ENTRY(error_unknown_category),
    TEST_ENTRY(error_duplicate_segment_id),
    TEST_ENTRY(error_png_missing_or_corrupt),
    TEST_ENTRY(error_png_sizes),
    TEST_ENTRY(error_malformed_json),
    TEST_ENTRY(bad_params_and_state),
    TEST_END,
};
