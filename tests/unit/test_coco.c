/* test_coco.c - COCO evaluation: reference stats bit for bit, determinism, hand-worked
 * semantics, and bad input. */
#include <yajl/yajl_tree.h>

#include "eval/coco_impl.h"
#include "iseg/coco.h"
#include "test.h"

/* ---- helpers ---- */

static iseg_coco_eval_t make_eval(enum iseg_iou_type it, int nth) {
    struct iseg_coco_eval_params p = iseg_coco_eval_default_params();
    p.iou_type                     = it;
    p.n_threads                    = nth;
    iseg_coco_eval_t ev;
    char             err[256];
    ASSERT_OK(iseg_coco_eval_init(&ev, &p, err, sizeof(err)));
    return ev;
}

static enum iseg_status run_mem(iseg_coco_eval_t ev, const char *gt, const char *dt) {
    enum iseg_status st =
        iseg_coco_eval_load_mem(ev, gt, strlen(gt), "gt.json", dt, strlen(dt), "dt.json");
    if (st != ISEG_STATUS_OK) return st;
    return iseg_coco_eval_run(ev);
}

static enum iseg_iou_type type_of(const char *key) {
    if (strcmp(key, "bbox") == 0) return ISEG_IOU_BBOX;
    if (strcmp(key, "boundary") == 0) return ISEG_IOU_BOUNDARY;
    return ISEG_IOU_SEGM;
}

/* Runs every case of an expected_stats.json; returns the number of cases checked. */
static int check_expected(const char *dir, const char *file, int nth) {
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s", dir, file);
    char   *text = test_read_file(path, NULL);
    char    errbuf[256];
    yajl_val root = yajl_tree_parse(text, errbuf, sizeof(errbuf));
    ASSERT_MSG(root && YAJL_IS_OBJECT(root), "%s: %s", path, errbuf);
    int n_cases = 0;
    for (size_t i = 0; i < root->u.object.len; i++) {
        const char *name = root->u.object.keys[i];
        yajl_val    c    = root->u.object.values[i];
        if (name[0] == '_' || !YAJL_IS_OBJECT(c)) continue;
        const char *gtp[] = {"gt", NULL};
        yajl_val    gtv   = yajl_tree_get(c, gtp, yajl_t_string);
        ASSERT(gtv);
        for (size_t j = 0; j < c->u.object.len; j++) {
            const char *kind = c->u.object.keys[j];
            yajl_val    v    = c->u.object.values[j];
            if (!YAJL_IS_OBJECT(v)) continue;
            const char *rp[] = {"results", NULL}, *sp[] = {"stats", NULL};
            yajl_val    res = yajl_tree_get(v, rp, yajl_t_string);
            yajl_val    st  = yajl_tree_get(v, sp, yajl_t_array);
            ASSERT(res && st && st->u.array.len == 12);
            char gt_path[4096], dt_path[4096];
            snprintf(gt_path, sizeof(gt_path), "%s/%s", dir, YAJL_GET_STRING(gtv));
            snprintf(dt_path, sizeof(dt_path), "%s/%s", dir, YAJL_GET_STRING(res));
            iseg_coco_eval_t ev = make_eval(type_of(kind), nth);
            enum iseg_status s  = iseg_coco_eval_load_files(ev, gt_path, dt_path);
            ASSERT_MSG(s == ISEG_STATUS_OK, "%s", iseg_coco_eval_last_error(ev));
            ASSERT_OK(iseg_coco_eval_run(ev));
            const double *got = iseg_coco_eval_stats(ev);
            for (int k = 0; k < 12; k++) {
                double want = YAJL_GET_DOUBLE(st->u.array.values[k]);
                if (YAJL_IS_INTEGER(st->u.array.values[k]))
                    want = (double)YAJL_GET_INTEGER(st->u.array.values[k]);
                ASSERT_MSG(memcmp(&got[k], &want, sizeof(double)) == 0,
                           "%s %s stat %d: got %.17g, expected %.17g", name, kind, k, got[k],
                           want);
            }
            iseg_coco_eval_free(ev);
            n_cases++;
        }
    }
    yajl_tree_free(root);
    free(text);
    return n_cases;
}

/* ---- the reference's numbers ---- */

TEST(expected_stats_bit_exact) {
    const char *dir = test_shared_path("data/coco-eval");
    int         n   = check_expected(dir, "expected_stats.json", 2);
    ASSERT_EQ_INT(n, 6);
}

TEST(expected_stats_synth_small_bit_exact) {
    const char *dir = test_shared_path("data/coco-eval/synth_small");
    int         n   = check_expected(dir, "expected_stats.json", 3);
    ASSERT_EQ_INT(n, 32);
}

/* Every accumulated number is identical for 1 and 7 threads. */
TEST(thread_count_determinism) {
    const char *dir = test_shared_path("data/coco-eval");
    char        gt[4096], dt[4096];
    snprintf(gt, sizeof(gt), "%s/synth500_gt.json", dir);
    snprintf(dt, sizeof(dt), "%s/synth500_results.json", dir);
    for (int it = 0; it < ISEG_IOU_COUNT; it++) {
        iseg_coco_eval_t a = make_eval((enum iseg_iou_type)it, 1);
        iseg_coco_eval_t b = make_eval((enum iseg_iou_type)it, 7);
        ASSERT_OK(iseg_coco_eval_load_files(a, gt, dt));
        ASSERT_OK(iseg_coco_eval_load_files(b, gt, dt));
        ASSERT_OK(iseg_coco_eval_run(a));
        ASSERT_OK(iseg_coco_eval_run(b));
        ASSERT(memcmp(iseg_coco_eval_stats(a), iseg_coco_eval_stats(b), 12 * sizeof(double)) == 0);
        size_t K = iseg_coco_eval_n_cats(a), T = iseg_coco_eval_n_iou_thrs(a);
        ASSERT_EQ_INT(K, 80);
        for (size_t t = 0; t < T; t++)
            for (size_t k = 0; k < K; k++)
                for (size_t ar = 0; ar < 4; ar++)
                    for (size_t m = 0; m < 3; m++) {
                        ASSERT(memcmp(iseg_coco_eval_precision(a, t, k, ar, m),
                                      iseg_coco_eval_precision(b, t, k, ar, m),
                                      ISEG_COCO_N_REC * sizeof(double)) == 0);
                        ASSERT_EQ_DBL(iseg_coco_eval_recall(a, t, k, ar, m),
                                      iseg_coco_eval_recall(b, t, k, ar, m));
                    }
        char *ja = iseg_coco_eval_summary(a), *jb = iseg_coco_eval_summary(b);
        ASSERT_STREQ(ja, jb);
        iseg_free(ja);
        iseg_free(jb);
        iseg_coco_eval_free(a);
        iseg_coco_eval_free(b);
    }
}

/* ---- hand-worked semantics ---- */

#define GT_HEAD                                                                              \
    "{\"images\": [{\"id\": 1, \"width\": 100, \"height\": 80}, {\"id\": 2, \"width\": 50, " \
    "\"height\": 50}], \"categories\": [{\"id\": 3, \"name\": \"cat\"}, {\"id\": 7, "        \
    "\"name\": \"dog\"}], \"annotations\": ["

/* One perfect detection: precision is 1/(1+2^-52) = 0x1.ffffffffffffep-1 at every recall
 * threshold (the reference's eps), so AP is not exactly 1. */
TEST(single_match_precision_eps) {
    const char *gt = GT_HEAD
        "{\"id\": 1, \"image_id\": 1, \"category_id\": 3, \"iscrowd\": 0, \"area\": 200,"
        " \"bbox\": [10, 10, 20, 10]}]}";
    const char *dt = "[{\"image_id\": 1, \"category_id\": 3, \"score\": 0.9, \"bbox\": [10, 10, 20, 10]}]";
    iseg_coco_eval_t ev = make_eval(ISEG_IOU_BBOX, 1);
    ASSERT_OK(run_mem(ev, gt, dt));
    const double *s   = iseg_coco_eval_stats(ev);
    double        one = 0x1.ffffffffffffep-1;
    const double *p   = iseg_coco_eval_precision(ev, 0, 0, 0, 2);
    for (int r = 0; r < ISEG_COCO_N_REC; r++) ASSERT_EQ_DBL(p[r], one);
    ASSERT(s[0] < 1 && s[0] > 0.9999999999999);
    ASSERT_EQ_DBL(s[8], 1.0);                    /* recall has no eps */
    ASSERT_EQ_DBL(s[3], s[0]);                   /* area 200 is small */
    ASSERT_EQ_DBL(s[4], -1.0);                   /* no medium GT */
    ASSERT_EQ_DBL(s[5], -1.0);                   /* no large GT */
    iseg_coco_eval_free(ev);
}

/* A ground truth of area exactly 1024 is both small and medium (inclusive ranges). */
TEST(area_ranges_inclusive) {
    const char *gt = GT_HEAD
        "{\"id\": 1, \"image_id\": 1, \"category_id\": 3, \"iscrowd\": 0, \"area\": 1024,"
        " \"bbox\": [0, 0, 32, 32]}]}";
    const char *dt = "[{\"image_id\": 1, \"category_id\": 3, \"score\": 0.5, \"bbox\": [0, 0, 32, 32]}]";
    iseg_coco_eval_t ev = make_eval(ISEG_IOU_BBOX, 2);
    ASSERT_OK(run_mem(ev, gt, dt));
    const double *s = iseg_coco_eval_stats(ev);
    ASSERT(s[3] > 0.99); /* small */
    ASSERT(s[4] > 0.99); /* medium */
    ASSERT_EQ_DBL(s[5], -1.0);
    iseg_coco_eval_free(ev);
}

/* Equal IoU with two ground truths: the later one wins; with --matches we can see which. */
TEST(iou_tie_later_gt_wins) {
    const char *gt = GT_HEAD
        "{\"id\": 11, \"image_id\": 1, \"category_id\": 3, \"iscrowd\": 0, \"area\": 100,"
        " \"bbox\": [0, 0, 10, 10]},"
        "{\"id\": 12, \"image_id\": 1, \"category_id\": 3, \"iscrowd\": 0, \"area\": 100,"
        " \"bbox\": [0, 0, 10, 10]}]}";
    const char *dt = "[{\"image_id\": 1, \"category_id\": 3, \"score\": 0.5, \"bbox\": [0, 0, 10, 10]}]";
    struct iseg_coco_eval_params p = iseg_coco_eval_default_params();
    p.iou_type                     = ISEG_IOU_BBOX;
    p.keep_matches                 = true;
    iseg_coco_eval_t ev;
    ASSERT_OK(iseg_coco_eval_init(&ev, &p, NULL, 0));
    ASSERT_OK(run_mem(ev, gt, dt));
    char path[4096];
    snprintf(path, sizeof(path), "%s/m.csv", test_tmp_dir());
    ASSERT_OK(iseg_coco_eval_write_matches(ev, path));
    char *csv = test_read_file(path, NULL);
    ASSERT_STRCONTAINS(csv, "1,3,1,0.5,12,1,1,tp,0.5\n");
    ASSERT_STRCONTAINS(csv, "1,3,,,11,,,fn,0.5\n");
    free(csv);
    /* recall at maxDets 100 is 1/2 at every threshold */
    ASSERT_EQ_DBL(iseg_coco_eval_stats(ev)[8], 0.5);
    iseg_coco_eval_free(ev);
}

/* A crowd region absorbs any number of detections (ignored, neither TP nor FP); a non-crowd
 * ground truth matches once, the second detection on it is a FP. */
TEST(crowd_absorbs_detections) {
    const char *gt = GT_HEAD
        "{\"id\": 1, \"image_id\": 1, \"category_id\": 3, \"iscrowd\": 0, \"area\": 100,"
        " \"bbox\": [0, 0, 10, 10]},"
        "{\"id\": 2, \"image_id\": 1, \"category_id\": 3, \"iscrowd\": 1, \"area\": 1600,"
        " \"bbox\": [50, 0, 40, 40]}]}";
    const char *dt = "["
        "{\"image_id\": 1, \"category_id\": 3, \"score\": 0.9, \"bbox\": [60, 10, 10, 10]},"
        "{\"image_id\": 1, \"category_id\": 3, \"score\": 0.8, \"bbox\": [55, 5, 10, 10]},"
        "{\"image_id\": 1, \"category_id\": 3, \"score\": 0.7, \"bbox\": [0, 0, 10, 10]},"
        "{\"image_id\": 1, \"category_id\": 3, \"score\": 0.6, \"bbox\": [0, 0, 10, 10]}]";
    iseg_coco_eval_t ev = make_eval(ISEG_IOU_BBOX, 1);
    ASSERT_OK(run_mem(ev, gt, dt));
    /* IoU 0.5: the crowd dets are ignored, the first real det is a TP at precision 1 */
    const double *p = iseg_coco_eval_precision(ev, 0, 0, 0, 2);
    ASSERT_EQ_DBL(p[100], 0x1.ffffffffffffep-1);
    ASSERT_EQ_DBL(iseg_coco_eval_recall(ev, 0, 0, 0, 2), 1.0);
    /* maxDets 1: only the best detection per image and category: a crowd det, ignored */
    ASSERT_EQ_DBL(iseg_coco_eval_recall(ev, 0, 0, 0, 0), 0.0);
    iseg_coco_eval_free(ev);
}

/* maxDets applies per image AND category. */
TEST(max_dets_per_image_and_category) {
    const char *gt = GT_HEAD
        "{\"id\": 1, \"image_id\": 1, \"category_id\": 3, \"iscrowd\": 0, \"area\": 100,"
        " \"bbox\": [0, 0, 10, 10]},"
        "{\"id\": 2, \"image_id\": 1, \"category_id\": 7, \"iscrowd\": 0, \"area\": 100,"
        " \"bbox\": [20, 20, 10, 10]}]}";
    const char *dt = "["
        "{\"image_id\": 1, \"category_id\": 3, \"score\": 0.9, \"bbox\": [0, 0, 10, 10]},"
        "{\"image_id\": 1, \"category_id\": 7, \"score\": 0.8, \"bbox\": [20, 20, 10, 10]}]";
    iseg_coco_eval_t ev = make_eval(ISEG_IOU_BBOX, 1);
    ASSERT_OK(run_mem(ev, gt, dt));
    ASSERT_EQ_DBL(iseg_coco_eval_stats(ev)[6], 1.0); /* AR@1 finds both */
    iseg_coco_eval_free(ev);
}

/* Segm branch vs bbox branch of loadRes (chosen by results[0]): a detection that has a bbox
 * gets area = w*h, even in segm evaluation, and that area decides whether an unmatched
 * detection is ignored in an area range. */
TEST(loadres_branch_decides_area) {
    const char *gt = GT_HEAD
        "{\"id\": 1, \"image_id\": 1, \"category_id\": 3, \"iscrowd\": 0, \"area\": 100,"
        " \"bbox\": [0, 0, 10, 10], \"segmentation\": [[0, 0, 10, 0, 10, 10, 0, 10]]}]}";
    /* a false positive with a 50x50 mask (2500 px, outside 'small'), then an exact match */
    const char *dt_segm = "["
        "{\"image_id\": 1, \"category_id\": 3, \"score\": 0.9,"
        " \"segmentation\": [[40, 20, 90, 20, 90, 70, 40, 70]]},"
        "{\"image_id\": 1, \"category_id\": 3, \"score\": 0.8,"
        " \"segmentation\": [[0, 0, 10, 0, 10, 10, 0, 10]]}]";
    const char *dt_bbox = "["
        "{\"image_id\": 1, \"category_id\": 3, \"score\": 0.9, \"bbox\": [40, 20, 5, 5],"
        " \"segmentation\": [[40, 20, 90, 20, 90, 70, 40, 70]]},"
        "{\"image_id\": 1, \"category_id\": 3, \"score\": 0.8, \"bbox\": [0, 0, 10, 10],"
        " \"segmentation\": [[0, 0, 10, 0, 10, 10, 0, 10]]}]";
    /* segm branch: the FP's area is its mask's (2500): ignored in 'small' -> AP_small ~ 1 */
    iseg_coco_eval_t ev = make_eval(ISEG_IOU_SEGM, 1);
    ASSERT_OK(run_mem(ev, gt, dt_segm));
    ASSERT_EQ_DBL(iseg_coco_eval_precision(ev, 0, 0, 1, 2)[0], 0x1.ffffffffffffep-1);
    ASSERT_EQ_DBL(iseg_coco_eval_precision(ev, 0, 0, 0, 2)[0], 0.5 / (1 + 0x1p-53));
    iseg_coco_eval_free(ev);
    /* bbox branch: the FP's area is 5*5 = 25, small: it counts there -> precision 1/2 */
    ev = make_eval(ISEG_IOU_SEGM, 1);
    ASSERT_OK(run_mem(ev, gt, dt_bbox));
    ASSERT_EQ_DBL(iseg_coco_eval_precision(ev, 0, 0, 1, 2)[0], 1.0 / (2.0 + 0x1p-52));
    iseg_coco_eval_free(ev);
}

/* ---- bad input ---- */

TEST(empty_results_is_zero_ap) {
    const char *gt = GT_HEAD
        "{\"id\": 1, \"image_id\": 1, \"category_id\": 3, \"iscrowd\": 0, \"area\": 100,"
        " \"bbox\": [0, 0, 10, 10], \"segmentation\": [[0, 0, 10, 0, 10, 10, 0, 10]]}]}";
    iseg_coco_eval_t ev = make_eval(ISEG_IOU_SEGM, 2);
    ASSERT_OK(run_mem(ev, gt, "[]"));
    const double *s = iseg_coco_eval_stats(ev);
    ASSERT_EQ_DBL(s[0], 0.0);
    ASSERT_EQ_DBL(s[8], 0.0);
    ASSERT_EQ_DBL(s[5], -1.0);
    iseg_coco_eval_free(ev);
}

TEST(result_for_unknown_image) {
    const char *gt = GT_HEAD "]}";
    const char *dt = "[{\"image_id\": 1, \"category_id\": 3, \"score\": 0.5, \"bbox\": [0,0,1,1]},"
                     " {\"image_id\": 99, \"category_id\": 3, \"score\": 0.5, \"bbox\": [0,0,1,1]}]";
    iseg_coco_eval_t ev = make_eval(ISEG_IOU_BBOX, 1);
    ASSERT_STATUS(run_mem(ev, gt, dt), ISEG_STATUS_EFORMAT);
    ASSERT_STRCONTAINS(iseg_coco_eval_last_error(ev), "dt.json: results[1]");
    ASSERT_STRCONTAINS(iseg_coco_eval_last_error(ev), "image_id 99 is not in the ground truth");
    iseg_coco_eval_free(ev);
}

TEST(result_unknown_category_dropped) {
    const char *gt = GT_HEAD
        "{\"id\": 1, \"image_id\": 1, \"category_id\": 3, \"iscrowd\": 0, \"area\": 100,"
        " \"bbox\": [0, 0, 10, 10]}]}";
    const char *dt = "[{\"image_id\": 1, \"category_id\": 3, \"score\": 0.5, \"bbox\": [0,0,10,10]},"
                     " {\"image_id\": 1, \"category_id\": 42, \"score\": 0.9, \"bbox\": [0,0,10,10]}]";
    iseg_coco_eval_t ev = make_eval(ISEG_IOU_BBOX, 1);
    ASSERT_OK(run_mem(ev, gt, dt));
    ASSERT_EQ_INT(iseg_coco_eval_n_dropped(ev), 1);
    ASSERT_EQ_DBL(iseg_coco_eval_stats(ev)[8], 1.0);
    iseg_coco_eval_free(ev);
}

TEST(gt_without_iscrowd) {
    const char *gt = GT_HEAD
        "{\"id\": 5, \"image_id\": 1, \"category_id\": 3, \"area\": 100,"
        " \"bbox\": [0, 0, 10, 10]}]}";
    iseg_coco_eval_t ev = make_eval(ISEG_IOU_BBOX, 1);
    ASSERT_STATUS(run_mem(ev, gt, "[]"), ISEG_STATUS_EFORMAT);
    ASSERT_STRCONTAINS(iseg_coco_eval_last_error(ev), "gt.json: annotations[0] (id 5): no \"iscrowd\"");
    iseg_coco_eval_free(ev);
}

/* pycocotools sends a ring of exactly 4 numbers to frBbox and raises; iseg rasterises the
 * degenerate 2-point polygon like any other ring. */
TEST(polygon_ring_of_four_numbers) {
    const char *gt = GT_HEAD
        "{\"id\": 1, \"image_id\": 1, \"category_id\": 3, \"iscrowd\": 0, \"area\": 100,"
        " \"bbox\": [0, 0, 10, 10], \"segmentation\": [[0, 0, 10, 10]]},"
        "{\"id\": 2, \"image_id\": 1, \"category_id\": 3, \"iscrowd\": 0, \"area\": 100,"
        " \"bbox\": [0, 0, 10, 10], \"segmentation\": [[20, 20, 30, 20, 30, 30, 20, 30]]}]}";
    const char *dt = "[{\"image_id\": 1, \"category_id\": 3, \"score\": 0.5,"
                     " \"segmentation\": [[20, 20, 30, 20, 30, 30, 20, 30]]}]";
    iseg_coco_eval_t ev = make_eval(ISEG_IOU_SEGM, 1);
    ASSERT_OK(run_mem(ev, gt, dt));
    ASSERT_EQ_DBL(iseg_coco_eval_stats(ev)[8], 0.5);
    iseg_coco_eval_free(ev);
}

TEST(invalid_rle_counts) {
    const char *gt = GT_HEAD
        "{\"id\": 1, \"image_id\": 1, \"category_id\": 3, \"iscrowd\": 0, \"area\": 100,"
        " \"bbox\": [0, 0, 10, 10], \"segmentation\": [[0, 0, 10, 0, 10, 10, 0, 10]]}]}";
    const char *dt_bad_char = "[{\"image_id\": 1, \"category_id\": 3, \"score\": 0.5,"
                              " \"segmentation\": {\"size\": [80, 100], \"counts\": \"ab~cd\"}}]";
    const char *dt_bad_sum  = "[{\"image_id\": 1, \"category_id\": 3, \"score\": 0.5,"
                              " \"segmentation\": {\"size\": [80, 100], \"counts\": \"05\"}}]";
    const char *gt_bad_list = GT_HEAD
        "{\"id\": 9, \"image_id\": 1, \"category_id\": 3, \"iscrowd\": 1, \"area\": 100,"
        " \"bbox\": [0, 0, 10, 10], \"segmentation\": {\"size\": [80, 100], \"counts\": [5, 6]}}]}";
    iseg_coco_eval_t ev = make_eval(ISEG_IOU_SEGM, 2);
    ASSERT_STATUS(run_mem(ev, gt, dt_bad_char), ISEG_STATUS_EFORMAT);
    ASSERT_STRCONTAINS(iseg_coco_eval_last_error(ev), "dt.json: results[0]");
    ASSERT_STRCONTAINS(iseg_coco_eval_last_error(ev), "invalid RLE");
    ASSERT_STATUS(run_mem(ev, gt, dt_bad_sum), ISEG_STATUS_EFORMAT);
    ASSERT_STRCONTAINS(iseg_coco_eval_last_error(ev), "invalid RLE");
    ASSERT_STATUS(run_mem(ev, gt_bad_list, "[]"), ISEG_STATUS_EFORMAT);
    ASSERT_STRCONTAINS(iseg_coco_eval_last_error(ev), "annotations[0] (id 9): RLE counts do not sum");
    iseg_coco_eval_free(ev);
}

/* GT id 0: the reference counts its matches as FPs; iseg evaluates it like any other id. */
TEST(gt_id_zero_is_evaluated) {
    const char *gt = GT_HEAD
        "{\"id\": 0, \"image_id\": 1, \"category_id\": 3, \"iscrowd\": 0, \"area\": 100,"
        " \"bbox\": [0, 0, 10, 10]}]}";
    const char *dt = "[{\"image_id\": 1, \"category_id\": 3, \"score\": 0.5, \"bbox\": [0,0,10,10]}]";
    iseg_coco_eval_t ev = make_eval(ISEG_IOU_BBOX, 1);
    ASSERT_OK(run_mem(ev, gt, dt));
    ASSERT_EQ_DBL(iseg_coco_eval_stats(ev)[8], 1.0);
    iseg_coco_eval_free(ev);
}

TEST(malformed_json) {
    iseg_coco_eval_t ev = make_eval(ISEG_IOU_SEGM, 1);
    ASSERT_STATUS(run_mem(ev, "{\"images\": [\n{\"id\": 1,, }]}", "[]"), ISEG_STATUS_EFORMAT);
    ASSERT_STRCONTAINS(iseg_coco_eval_last_error(ev), "gt.json:2:");
    ASSERT_STRCONTAINS(iseg_coco_eval_last_error(ev), "invalid JSON");
    ASSERT_STATUS(run_mem(ev, GT_HEAD "]}", "[{\"image_id\": \"1\"}]"), ISEG_STATUS_EFORMAT);
    ASSERT_STRCONTAINS(iseg_coco_eval_last_error(ev), "dt.json: results[0]: \"image_id\" must be a number");
    ASSERT_STATUS(run_mem(ev, GT_HEAD "]}", "{\"a\": 1"), ISEG_STATUS_EFORMAT);
    ASSERT_STATUS(run_mem(ev, GT_HEAD "]}", ""), ISEG_STATUS_EFORMAT);
    ASSERT_STATUS(run_mem(ev, "[1, 2]", "[]"), ISEG_STATUS_EFORMAT);
    ASSERT_STRCONTAINS(iseg_coco_eval_last_error(ev), "gt.json");
    ASSERT_STATUS(run_mem(ev, GT_HEAD "{\"id\": 1, \"image_id\": 1, \"category_id\": 3, "
                              "\"iscrowd\": 0, \"bbox\": [1, 2, 3]}]}", "[]"),
                  ISEG_STATUS_EFORMAT);
    ASSERT_STRCONTAINS(iseg_coco_eval_last_error(ev), "\"bbox\" must hold 4 numbers");
    /* run without a successful load */
    ASSERT_STATUS(iseg_coco_eval_run(ev), ISEG_STATUS_EBADSTATE);
    iseg_coco_eval_free(ev);
}

TEST(missing_file) {
    iseg_coco_eval_t ev = make_eval(ISEG_IOU_SEGM, 1);
    ASSERT_STATUS(iseg_coco_eval_load_files(ev, "/nonexistent/gt.json", "/nonexistent/dt.json"),
                  ISEG_STATUS_EIO);
    ASSERT_STRCONTAINS(iseg_coco_eval_last_error(ev), "/nonexistent/gt.json: cannot open");
    iseg_coco_eval_free(ev);
}

TEST(bbox_branch_needs_bbox_everywhere) {
    const char *gt = GT_HEAD "]}";
    const char *dt = "[{\"image_id\": 1, \"category_id\": 3, \"score\": 0.5, \"bbox\": [0,0,1,1]},"
                     " {\"image_id\": 1, \"category_id\": 3, \"score\": 0.5,"
                     "  \"segmentation\": [[0, 0, 5, 0, 5, 5]]}]";
    iseg_coco_eval_t ev = make_eval(ISEG_IOU_SEGM, 1);
    ASSERT_STATUS(run_mem(ev, gt, dt), ISEG_STATUS_EFORMAT);
    ASSERT_STRCONTAINS(iseg_coco_eval_last_error(ev), "results[1]");
    iseg_coco_eval_free(ev);
}

TEST(bad_params) {
    struct iseg_coco_eval_params p = iseg_coco_eval_default_params();
    iseg_coco_eval_t             ev;
    char                         err[128];
    p.max_dets[1] = 200;
    ASSERT_STATUS(iseg_coco_eval_init(&ev, &p, err, sizeof(err)), ISEG_STATUS_EINVAL);
    ASSERT(ev == NULL);
    ASSERT_STRCONTAINS(err, "increasing");
    p            = iseg_coco_eval_default_params();
    p.n_iou_thrs = 1;
    p.iou_thrs[0] = 1.5;
    ASSERT_STATUS(iseg_coco_eval_init(&ev, &p, err, sizeof(err)), ISEG_STATUS_EINVAL);
    p = iseg_coco_eval_default_params();
    p.dilation_ratio = -1;
    ASSERT_STATUS(iseg_coco_eval_init(&ev, &p, err, sizeof(err)), ISEG_STATUS_EINVAL);
}

/* The Hungarian mode never finds fewer matches than greedy COCO matching. */
TEST(hungarian_matching_mode) {
    /* greedy: det A (score .9) takes GT1 (IoU .9 > .6), det B then has only GT1 (taken) ->
     * one TP at IoU .5; optimal: A-GT2, B-GT1 -> two TPs */
    const char *gt = GT_HEAD
        "{\"id\": 1, \"image_id\": 1, \"category_id\": 3, \"iscrowd\": 0, \"area\": 100,"
        " \"bbox\": [0, 0, 10, 10]},"
        "{\"id\": 2, \"image_id\": 1, \"category_id\": 3, \"iscrowd\": 0, \"area\": 100,"
        " \"bbox\": [3, 0, 10, 10]}]}";
    const char *dt = "["
        "{\"image_id\": 1, \"category_id\": 3, \"score\": 0.9, \"bbox\": [1, 0, 10, 10]},"
        "{\"image_id\": 1, \"category_id\": 3, \"score\": 0.8, \"bbox\": [0, 0, 9, 10]}]";
    struct iseg_coco_eval_params p = iseg_coco_eval_default_params();
    p.iou_type = ISEG_IOU_BBOX;
    iseg_coco_eval_t coco, hung;
    ASSERT_OK(iseg_coco_eval_init(&coco, &p, NULL, 0));
    p.matching = ISEG_MATCHING_HUNGARIAN;
    ASSERT_OK(iseg_coco_eval_init(&hung, &p, NULL, 0));
    ASSERT_OK(run_mem(coco, gt, dt));
    ASSERT_OK(run_mem(hung, gt, dt));
    ASSERT_EQ_DBL(iseg_coco_eval_recall(coco, 0, 0, 0, 2), 0.5);
    ASSERT_EQ_DBL(iseg_coco_eval_recall(hung, 0, 0, 0, 2), 1.0);
    iseg_coco_eval_free(coco);
    iseg_coco_eval_free(hung);
}

TEST(json_report_and_plots) {
    const char *dir = test_shared_path("data/coco-eval");
    char        gt[4096], dt[4096], out[4096];
    snprintf(gt, sizeof(gt), "%s/val2014_100_gt.json", dir);
    snprintf(dt, sizeof(dt), "%s/val2014_100_segm_results.json", dir);
    iseg_coco_eval_t ev = make_eval(ISEG_IOU_SEGM, 2);
    ASSERT_OK(iseg_coco_eval_load_files(ev, gt, dt));
    ASSERT_OK(iseg_coco_eval_run(ev));
    char *doc = iseg_coco_eval_json(ev);
    ASSERT(doc);
    char    errbuf[128];
    yajl_val root = yajl_tree_parse(doc, errbuf, sizeof(errbuf));
    ASSERT_MSG(root, "report is not JSON: %s", errbuf);
    const char *sp[] = {"stats", NULL}, *cp[] = {"per_category", NULL}, *tp[] = {"iou_type", NULL};
    yajl_val st = yajl_tree_get(root, sp, yajl_t_array);
    ASSERT(st && st->u.array.len == 12);
    ASSERT_EQ_DBL(YAJL_GET_DOUBLE(st->u.array.values[0]), 0.3195452758576433);
    yajl_val pc = yajl_tree_get(root, cp, yajl_t_array);
    ASSERT(pc && pc->u.array.len == iseg_coco_eval_n_cats(ev));
    ASSERT_STREQ(YAJL_GET_STRING(yajl_tree_get(root, tp, yajl_t_string)), "segm");
    yajl_tree_free(root);
    iseg_free(doc);
    snprintf(out, sizeof(out), "%s/plots", test_tmp_dir());
    ASSERT_OK(iseg_coco_eval_write_plots(ev, out, true));
    snprintf(out, sizeof(out), "%s/plots/pr_curves.png", test_tmp_dir());
    size_t n;
    char  *png = test_read_file(out, &n);
    ASSERT(n > 1000 && memcmp(png, "\x89PNG", 4) == 0);
    free(png);
    snprintf(out, sizeof(out), "%s/plots/pr_1.png", test_tmp_dir());
    png = test_read_file(out, &n);
    ASSERT(n > 1000);
    free(png);
    char *sum = iseg_coco_eval_summary(ev);
    ASSERT_STRCONTAINS(sum, " Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ] = 0.320\n");
    ASSERT_STRCONTAINS(sum, " Average Recall     (AR) @[ IoU=0.50:0.95 | area= large | maxDets=100 ] = 0.381\n");
    iseg_free(sum);
    iseg_coco_eval_free(ev);
}

static void write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "wb");
    ASSERT(f);
    ASSERT(fwrite(text, 1, strlen(text), f) == strlen(text));
    ASSERT(fclose(f) == 0);
}

/* bbox evaluation drops masks while parsing files; a segm-branch results file (results[0] has
 * no bbox) needs them for the areas even when later results have a bbox. Files and memory
 * (which keeps everything) must agree. */
TEST(bbox_eval_segm_branch_file) {
    const char *gt = GT_HEAD
        "{\"id\": 1, \"image_id\": 1, \"category_id\": 3, \"iscrowd\": 0, \"area\": 100,"
        " \"bbox\": [0, 0, 10, 10], \"segmentation\": [[0, 0, 10, 0, 10, 10, 0, 10]]}]}";
    /* the second result's bbox is small but its mask is 2500 px: segm branch -> area 2500 */
    const char *dt = "["
        "{\"image_id\": 1, \"category_id\": 3, \"score\": 0.5,"
        " \"segmentation\": [[0, 0, 10, 0, 10, 10, 0, 10]]},"
        "{\"image_id\": 1, \"category_id\": 3, \"score\": 0.9, \"bbox\": [40, 20, 5, 5],"
        " \"segmentation\": [[40, 20, 90, 20, 90, 70, 40, 70]]}]";
    char gp[4096], dp[4096];
    snprintf(gp, sizeof(gp), "%s/gt.json", test_tmp_dir());
    snprintf(dp, sizeof(dp), "%s/dt.json", test_tmp_dir());
    write_text(gp, gt);
    write_text(dp, dt);
    iseg_coco_eval_t a = make_eval(ISEG_IOU_BBOX, 2), b = make_eval(ISEG_IOU_BBOX, 1);
    ASSERT_OK(iseg_coco_eval_load_files(a, gp, dp));
    ASSERT_OK(iseg_coco_eval_run(a));
    ASSERT_OK(run_mem(b, gt, dt));
    ASSERT(memcmp(iseg_coco_eval_stats(a), iseg_coco_eval_stats(b), 12 * sizeof(double)) == 0);
    /* the FP (area 2500) is ignored in 'small', so AP small is ~1 */
    ASSERT_EQ_DBL(iseg_coco_eval_precision(a, 0, 0, 1, 2)[0], 0x1.ffffffffffffep-1);
    iseg_coco_eval_free(a);
    iseg_coco_eval_free(b);
}

/* Large results arrays are parsed in pieces on several threads; the result must not depend on
 * it, including when a guessed split point lies inside a string (the file is then parsed again
 * in one piece). */
TEST(results_parsed_in_pieces) {
    const char *dir = test_shared_path("data/coco-eval");
    char        gt[4096], dt[4096];
    snprintf(gt, sizeof(gt), "%s/synth500_gt.json", dir);
    snprintf(dt, sizeof(dt), "%s/synth500_results.json", dir);
    iseg_coco_eval_t one = make_eval(ISEG_IOU_SEGM, 1);
    ASSERT_OK(iseg_coco_eval_load_files(one, gt, dt));
    ASSERT_OK(iseg_coco_eval_run(one));
    iseg__coco_piece_min = 64 << 10;
    iseg_coco_eval_t many = make_eval(ISEG_IOU_SEGM, 5);
    ASSERT_OK(iseg_coco_eval_load_files(many, gt, dt));
    ASSERT_OK(iseg_coco_eval_run(many));
    ASSERT(memcmp(iseg_coco_eval_stats(one), iseg_coco_eval_stats(many), 12 * sizeof(double)) == 0);
    /* a ground truth with an error in the middle of its annotations: the same message */
    {
        size_t n;
        char  *text = test_read_file(gt, &n);
        char   bad_gt[4096];
        snprintf(bad_gt, sizeof(bad_gt), "%s/bad_gt.json", test_tmp_dir());
        char *ann = strstr(text, "\"annotations\"");
        ASSERT(ann);
        char *at = strstr(ann + (text + n - ann) / 2, "\"iscrowd\"");
        ASSERT(at);
        memcpy(at + 1, "iscrowX", 7); /* that annotation has no iscrowd now */
        write_text(bad_gt, text);
        ASSERT_STATUS(iseg_coco_eval_load_files(one, bad_gt, dt), ISEG_STATUS_EFORMAT);
        ASSERT_STATUS(iseg_coco_eval_load_files(many, bad_gt, dt), ISEG_STATUS_EFORMAT);
        ASSERT_STREQ(iseg_coco_eval_last_error(one), iseg_coco_eval_last_error(many));
        ASSERT_STRCONTAINS(iseg_coco_eval_last_error(one), "no \"iscrowd\"");
        memcpy(at + 1, "iscrowd\"", 8);
        at[0] = '#'; /* a syntax error */
        write_text(bad_gt, text);
        ASSERT_STATUS(iseg_coco_eval_load_files(one, bad_gt, dt), ISEG_STATUS_EFORMAT);
        ASSERT_STATUS(iseg_coco_eval_load_files(many, bad_gt, dt), ISEG_STATUS_EFORMAT);
        ASSERT_STREQ(iseg_coco_eval_last_error(one), iseg_coco_eval_last_error(many));
        ASSERT_STRCONTAINS(iseg_coco_eval_last_error(one), "invalid JSON");
        free(text);
    }
    iseg_coco_eval_free(many);
    iseg_coco_eval_free(one);

    /* a results file whose strings contain "}, {" everywhere, and an error late in the file */
    char gp[4096], dp[4096];
    snprintf(gp, sizeof(gp), "%s/gt.json", test_tmp_dir());
    snprintf(dp, sizeof(dp), "%s/dt.json", test_tmp_dir());
    write_text(gp, GT_HEAD
               "{\"id\": 1, \"image_id\": 1, \"category_id\": 3, \"iscrowd\": 0, \"area\": 100,"
               " \"bbox\": [0, 0, 10, 10]}]}");
    FILE *f = fopen(dp, "wb");
    ASSERT(f);
    fputs("[", f);
    for (int i = 0; i < 20000; i++)
        fprintf(f, "%s{\"image_id\": 1, \"category_id\": 3, \"score\": %d.5e-5, \"note\": "
                   "\"}, {\\\"x\\\": [}, {]\", \"bbox\": [0, 0, 10, %d]}", i ? ", " : "", i, 9 + i % 3);
    fputs("]", f);
    ASSERT(fclose(f) == 0);
    iseg__coco_piece_min = 16 << 10;
    iseg_coco_eval_t a = make_eval(ISEG_IOU_BBOX, 4), b = make_eval(ISEG_IOU_BBOX, 1);
    ASSERT_OK(iseg_coco_eval_load_files(a, gp, dp));
    ASSERT_OK(iseg_coco_eval_run(a));
    ASSERT_OK(iseg_coco_eval_load_files(b, gp, dp));
    ASSERT_OK(iseg_coco_eval_run(b));
    ASSERT(memcmp(iseg_coco_eval_stats(a), iseg_coco_eval_stats(b), 12 * sizeof(double)) == 0);
    ASSERT_EQ_DBL(iseg_coco_eval_stats(a)[8], 1.0);
    /* the message for a late syntax error is the same as a sequential parse gives */
    f = fopen(dp, "r+b");
    ASSERT(f);
    ASSERT(fseek(f, -200, SEEK_END) == 0);
    fputc('#', f);
    ASSERT(fclose(f) == 0);
    ASSERT_STATUS(iseg_coco_eval_load_files(a, gp, dp), ISEG_STATUS_EFORMAT);
    ASSERT_STATUS(iseg_coco_eval_load_files(b, gp, dp), ISEG_STATUS_EFORMAT);
    ASSERT_STREQ(iseg_coco_eval_last_error(a), iseg_coco_eval_last_error(b));
    ASSERT_STRCONTAINS(iseg_coco_eval_last_error(a), "dt.json:1:");
    iseg_coco_eval_free(a);
    iseg_coco_eval_free(b);
}

TEST_LIST = {
    TEST_ENTRY(expected_stats_bit_exact),
    TEST_ENTRY(expected_stats_synth_small_bit_exact),
    TEST_ENTRY(thread_count_determinism),
    TEST_ENTRY(single_match_precision_eps),
    TEST_ENTRY(area_ranges_inclusive),
    TEST_ENTRY(iou_tie_later_gt_wins),
    TEST_ENTRY(crowd_absorbs_detections),
    TEST_ENTRY(max_dets_per_image_and_category),
    TEST_ENTRY(loadres_branch_decides_area),
    TEST_ENTRY(empty_results_is_zero_ap),
    TEST_ENTRY(result_for_unknown_image),
    TEST_ENTRY(result_unknown_category_dropped),
    TEST_ENTRY(gt_without_iscrowd),
    TEST_ENTRY(polygon_ring_of_four_numbers),
    TEST_ENTRY(invalid_rle_counts),
    TEST_ENTRY(gt_id_zero_is_evaluated),
    TEST_ENTRY(malformed_json),
    TEST_ENTRY(missing_file),
    TEST_ENTRY(bbox_branch_needs_bbox_everywhere),
    TEST_ENTRY(bad_params),
    TEST_ENTRY(hungarian_matching_mode),
    TEST_ENTRY(json_report_and_plots),
    TEST_ENTRY(bbox_eval_segm_branch_file),
    TEST_ENTRY(results_parsed_in_pieces),
    TEST_END,
};
