/* test_oom.c - out-of-memory injection in the SQLite style.
 *
 * An allocator installed with iseg_alloc_set() fails the N-th allocation counted from when it is
 * armed (once, or from then on: "persistent" mode), and for N = 1, 2, 3, ... a whole scenario
 * runs: COCO evaluation (init, load_mem, run, summary, json, free) for every IoU type, and the
 * RLE functions that allocate. Every step must then fail with ENOMEM and "out of memory" in its
 * message, or succeed with exactly the result of a run without failures (a failed shrinking
 * realloc is harmless), never crash, and give back every block: the hook counts outstanding
 * allocations, and the count must return to zero after each scenario. The loop stops at the
 * first N that the scenario never reaches. yajl allocates through the same hooks.
 *
 * With 2 threads the order of allocations is not deterministic, so that pass checks only that
 * nothing crashes or leaks. */
#include <pthread.h>

#include "iseg/coco.h"
#include "iseg/mask.h"
#include "test.h"

/* ---- the failing allocator ---- */

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static long            g_n_alloc; /* allocations attempted since oom_arm */
static long            g_fail_at; /* 0: never fail */
static bool            g_persist; /* fail every allocation from g_fail_at on */
static long            g_n_fail;  /* failures injected since oom_arm */
static long            g_live;    /* blocks allocated and not yet freed */

static bool should_fail(void) {
    pthread_mutex_lock(&g_lock);
    long n    = ++g_n_alloc;
    bool fail = g_fail_at > 0 && (n == g_fail_at || (g_persist && n > g_fail_at));
    if (fail) g_n_fail++;
    pthread_mutex_unlock(&g_lock);
    return fail;
}

static void live_add(long d) {
    pthread_mutex_lock(&g_lock);
    g_live += d;
    pthread_mutex_unlock(&g_lock);
}

static void *oom_malloc(size_t n, void *user) {
    (void)user;
    if (should_fail()) return NULL;
    void *p = malloc(n);
    if (p) live_add(1);
    return p;
}

static void *oom_realloc(void *p, size_t n, void *user) {
    (void)user;
    if (should_fail()) return NULL; /* like realloc: p stays valid */
    void *q = realloc(p, n);
    if (q && !p) live_add(1);
    return q;
}

static void oom_free(void *p, void *user) {
    (void)user;
    if (!p) return;
    free(p);
    live_add(-1);
}

static void oom_install(void) {
    static const struct iseg_alloc a = {oom_malloc, oom_realloc, oom_free, NULL};
    iseg_alloc_set(&a);
    g_live = 0;
}

static void oom_arm(long fail_at, bool persist) {
    pthread_mutex_lock(&g_lock);
    g_n_alloc = 0;
    g_n_fail  = 0;
    g_fail_at = fail_at;
    g_persist = persist;
    pthread_mutex_unlock(&g_lock);
}

/* Stop failing; returns the number of failures injected since oom_arm. */
static long oom_disarm(void) {
    pthread_mutex_lock(&g_lock);
    long n    = g_n_fail;
    g_fail_at = 0;
    pthread_mutex_unlock(&g_lock);
    return n;
}

static long oom_live(void) {
    pthread_mutex_lock(&g_lock);
    long n = g_live;
    pthread_mutex_unlock(&g_lock);
    return n;
}

/* ---- inputs ---- */

/* Two images (30x40 and 10x10), two categories; polygons (one with two rings, one without
 * "area"), an uncompressed RLE crowd region (the box x 0..9, y 20..25) and a compressed RLE
 * whose string needs JSON escapes (counts 44, 12, 44 are "\1<\1"). */
static const char GT_JSON[] =
    "{\"info\": {\"description\": \"oom test\", \"nested\": [1, {\"a\": null}]},\n"
    " \"images\": [{\"id\": 1, \"width\": 40, \"height\": 30, \"file_name\": \"a.png\"},\n"
    "            {\"id\": 2, \"width\": 10, \"height\": 10}],\n"
    " \"categories\": [{\"id\": 1, \"name\": \"cat\"}, {\"id\": 2, \"name\": \"dog \\\"x\\\"\"}],\n"
    " \"annotations\": [\n"
    "  {\"id\": 1, \"image_id\": 1, \"category_id\": 1, \"iscrowd\": 0, \"area\": 150,\n"
    "   \"bbox\": [5, 5, 15, 10], \"segmentation\": [[5, 5, 20, 5, 20, 15, 5, 15]]},\n"
    "  {\"id\": 2, \"image_id\": 1, \"category_id\": 2, \"iscrowd\": 0,\n"
    "   \"bbox\": [22, 3, 10, 20],\n"
    "   \"segmentation\": [[22, 3, 32, 3, 32, 23, 22, 23], [25, 5, 28, 5, 28, 8]]},\n"
    "  {\"id\": 3, \"image_id\": 1, \"category_id\": 1, \"iscrowd\": 1, \"area\": 60,\n"
    "   \"bbox\": [0, 20, 10, 6], \"segmentation\": {\"size\": [30, 40], \"counts\":\n"
    "   [20, 6, 24, 6, 24, 6, 24, 6, 24, 6, 24, 6, 24, 6, 24, 6, 24, 6, 24, 6, 904]}},\n"
    "  {\"id\": 4, \"image_id\": 2, \"category_id\": 2, \"iscrowd\": 0, \"area\": 12,\n"
    "   \"bbox\": [4, 0, 2, 10],\n"
    "   \"segmentation\": {\"size\": [10, 10], \"counts\": \"\\\\1<\\\\1\"}}\n"
    " ]}\n";

/* loadRes bbox branch: every result has a box and a segmentation; the last one's category is
 * not in the ground truth (dropped). */
static const char DT_BOTH_JSON[] =
    "[{\"image_id\": 1, \"category_id\": 1, \"score\": 0.9, \"bbox\": [5, 5, 14, 10],\n"
    "  \"segmentation\": [[5, 5, 19, 5, 19, 15, 5, 15]]},\n"
    " {\"image_id\": 1, \"category_id\": 1, \"score\": 0.8, \"bbox\": [1, 20, 8, 5],\n"
    "  \"segmentation\": {\"size\": [30, 40], \"counts\":\n"
    "   [50, 5, 25, 5, 25, 5, 25, 5, 25, 5, 25, 5, 25, 5, 25, 5, 935]}},\n"
    " {\"image_id\": 1, \"category_id\": 2, \"score\": 0.7, \"bbox\": [22, 3, 10, 18],\n"
    "  \"segmentation\": [[22, 3, 32, 3, 32, 21, 22, 21]], \"extra\": {\"k\": [true, false]}},\n"
    " {\"image_id\": 2, \"category_id\": 2, \"score\": 0.6, \"bbox\": [4, 0, 2, 10],\n"
    "  \"segmentation\": {\"size\": [10, 10], \"counts\": \"\\\\1<\\\\1\"}},\n"
    " {\"image_id\": 2, \"category_id\": 1, \"score\": 0.5, \"bbox\": [0, 0, 3, 3],\n"
    "  \"segmentation\": [[0, 0, 3, 0, 3, 3, 0, 3]]},\n"
    " {\"image_id\": 1, \"category_id\": 3, \"score\": 0.4, \"bbox\": [0, 0, 1, 1],\n"
    "  \"segmentation\": [[0, 0, 1, 0, 1, 1]]}]\n";

/* loadRes segm branch: segmentations only (areas and boxes come from the masks). */
static const char DT_SEGM_JSON[] =
    "{\"annotations\": [\n"
    " {\"image_id\": 1, \"category_id\": 1, \"score\": 0.9,\n"
    "  \"segmentation\": [[5, 5, 19, 5, 19, 15, 5, 15]]},\n"
    " {\"image_id\": 1, \"category_id\": 1, \"score\": 0.8,\n"
    "  \"segmentation\": {\"size\": [30, 40], \"counts\":\n"
    "   [50, 5, 25, 5, 25, 5, 25, 5, 25, 5, 25, 5, 25, 5, 25, 5, 935]}},\n"
    " {\"image_id\": 1, \"category_id\": 2, \"score\": 0.7,\n"
    "  \"segmentation\": [[22, 3, 32, 3, 32, 21, 22, 21], [24, 4, 26, 4, 26, 6]]},\n"
    " {\"image_id\": 2, \"category_id\": 2, \"score\": 0.6,\n"
    "  \"segmentation\": {\"size\": [10, 10], \"counts\": \"\\\\1<\\\\1\"}}]}\n";

/* ---- the evaluation scenario ---- */

struct eval_out {
    double stats[ISEG_COCO_N_STATS];
    char  *summary; /* malloc'ed copies (outside the hooks) */
    char  *json;
};

static void eval_out_free(struct eval_out *o) {
    free(o->summary);
    free(o->json);
    memset(o, 0, sizeof(*o));
}

static char *copy_str(const char *s) {
    size_t n = strlen(s) + 1;
    char  *c = malloc(n);
    ASSERT(c);
    memcpy(c, s, n);
    return c;
}

/* The "timings_s" part of the JSON report differs from run to run: compare up to it. */
static size_t json_stable_len(const char *j) {
    const char *t = strstr(j, "\"timings_s\"");
    return t ? (size_t)(t - j) : strlen(j);
}

static void check_nomem_msg(const char *what, enum iseg_status st, const char *msg) {
    ASSERT_MSG(st == ISEG_STATUS_ENOMEM, "%s: expected ENOMEM under injection, got %d (%s): %s",
               what, (int)st, iseg_status_str(st), msg);
    ASSERT_MSG(strstr(msg, "out of memory") != NULL, "%s: message \"%s\" lacks \"out of memory\"",
               what, msg);
}

/* One full evaluation from memory (GT_JSON and dt_json), or from the files paths[0] (GT) and
 * paths[1] (results) when paths is not NULL. Returns OK, or the ENOMEM of the step that failed (checked here: status and
 * message); any other failure fails the test. */
static enum iseg_status eval_scenario(enum iseg_iou_type it, int nth, const char *dt_json,
                                      const char *const *paths, struct eval_out *out) {
    struct iseg_coco_eval_params p = iseg_coco_eval_default_params();
    p.iou_type                     = it;
    p.n_threads                    = nth;
    iseg_coco_eval_t ev            = NULL;
    char             err[256];
    enum iseg_status st = iseg_coco_eval_init(&ev, &p, err, sizeof(err));
    if (st != ISEG_STATUS_OK) {
        check_nomem_msg("init", st, err);
        ASSERT(ev == NULL);
        return st;
    }
    if (paths) st = iseg_coco_eval_load_files(ev, paths[0], paths[1]);
    else
        st = iseg_coco_eval_load_mem(ev, GT_JSON, strlen(GT_JSON), "gt.json", dt_json,
                                     strlen(dt_json), "dt.json");
    if (st != ISEG_STATUS_OK) {
        check_nomem_msg(paths ? "load_files" : "load_mem", st, iseg_coco_eval_last_error(ev));
        goto out;
    }
    st = iseg_coco_eval_run(ev);
    if (st != ISEG_STATUS_OK) {
        check_nomem_msg("run", st, iseg_coco_eval_last_error(ev));
        goto out;
    }
    memcpy(out->stats, iseg_coco_eval_stats(ev), sizeof(out->stats));
    char *s = iseg_coco_eval_summary(ev);
    if (!s) {
        st = ISEG_STATUS_ENOMEM;
        goto out;
    }
    out->summary = copy_str(s);
    iseg_free(s);
    char *j = iseg_coco_eval_json(ev);
    if (!j) {
        st = ISEG_STATUS_ENOMEM;
        goto out;
    }
    out->json = copy_str(j);
    iseg_free(j);
out:
    iseg_coco_eval_free(ev);
    return st;
}

static void check_same_result(const struct eval_out *got, const struct eval_out *want, long n) {
    ASSERT_MSG(memcmp(got->stats, want->stats, sizeof(want->stats)) == 0,
               "N=%ld: stats differ from the run without failures", n);
    ASSERT_STREQ(got->summary, want->summary);
    size_t len = json_stable_len(want->json);
    ASSERT_MSG(json_stable_len(got->json) == len && memcmp(got->json, want->json, len) == 0,
               "N=%ld: JSON report differs:\n%s\nexpected:\n%s", n, got->json, want->json);
}

/* Run the scenario for N = 1, 2, ... until it completes without reaching N. Returns the number
 * of allocations of a complete run. */
static long eval_loop(enum iseg_iou_type it, const char *dt_json, const char *const *paths,
                      bool persist) {
    oom_install();
    struct eval_out want = {0};
    ASSERT_OK(eval_scenario(it, 1, dt_json, paths, &want));
    ASSERT_EQ_INT(oom_live(), 0);
    /* the scenario must be meaningful: some detections match */
    ASSERT_MSG(want.stats[0] > 0, "%s: AP %g", iseg_iou_type_name(it), want.stats[0]);

    long n_alloc = 0;
    for (long n = 1;; n++) {
        struct eval_out got = {0};
        oom_arm(n, persist);
        enum iseg_status st = eval_scenario(it, 1, dt_json, paths, &got);
        long             n_fail = oom_disarm();
        ASSERT_MSG(oom_live() == 0, "%s, N=%ld%s: %ld blocks leaked", iseg_iou_type_name(it), n,
                   persist ? " (persistent)" : "", oom_live());
        if (st == ISEG_STATUS_OK) check_same_result(&got, &want, n);
        eval_out_free(&got);
        if (n_fail == 0) {
            ASSERT_OK(st);
            n_alloc = n - 1;
            break;
        }
        ASSERT_MSG(n < 100000, "no end in sight");
    }
    eval_out_free(&want);
    iseg_alloc_set(NULL);
    return n_alloc;
}

TEST(oom_eval_segm) {
    long a = eval_loop(ISEG_IOU_SEGM, DT_BOTH_JSON, NULL, false);
    long b = eval_loop(ISEG_IOU_SEGM, DT_SEGM_JSON, NULL, false);
    ASSERT(a > 20 && b > 20);
}

TEST(oom_eval_bbox) {
    long a = eval_loop(ISEG_IOU_BBOX, DT_BOTH_JSON, NULL, false);
    long b = eval_loop(ISEG_IOU_BBOX, DT_SEGM_JSON, NULL, false);
    ASSERT(a > 20 && b > 20);
}

TEST(oom_eval_boundary) {
    long a = eval_loop(ISEG_IOU_BOUNDARY, DT_BOTH_JSON, NULL, false);
    long b = eval_loop(ISEG_IOU_BOUNDARY, DT_SEGM_JSON, NULL, false);
    ASSERT(a > 20 && b > 20);
}

static void write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "wb");
    ASSERT_MSG(f, "cannot write %s", path);
    ASSERT(fwrite(text, 1, strlen(text), f) == strlen(text));
    ASSERT(fclose(f) == 0);
}

/* Loading from files takes another path (read buffers, the file-splitting loader). */
TEST(oom_eval_files) {
    char gt[4096], dt[4096];
    snprintf(gt, sizeof(gt), "%s/gt.json", test_tmp_dir());
    snprintf(dt, sizeof(dt), "%s/dt.json", test_tmp_dir());
    write_file(gt, GT_JSON);
    write_file(dt, DT_BOTH_JSON);
    const char *const paths[2] = {gt, dt};
    for (int it = 0; it < ISEG_IOU_COUNT; it++) {
        ASSERT(eval_loop((enum iseg_iou_type)it, DT_BOTH_JSON, paths, false) > 20);
        eval_loop((enum iseg_iou_type)it, DT_BOTH_JSON, paths, true);
    }
}

/* Every allocation from the N-th on fails: the cleanup paths must cope with failures there too. */
TEST(oom_eval_persistent) {
    for (int it = 0; it < ISEG_IOU_COUNT; it++) {
        eval_loop((enum iseg_iou_type)it, DT_BOTH_JSON, NULL, true);
        eval_loop((enum iseg_iou_type)it, DT_SEGM_JSON, NULL, true);
    }
}

/* After a failed step the handle stays usable: the same step succeeds once memory is back. */
TEST(oom_eval_retry_after_failure) {
    for (int it = 0; it < ISEG_IOU_COUNT; it++) {
        oom_install();
        struct eval_out want = {0};
        ASSERT_OK(eval_scenario((enum iseg_iou_type)it, 1, DT_BOTH_JSON, NULL, &want));
        struct iseg_coco_eval_params p = iseg_coco_eval_default_params();
        p.iou_type                     = (enum iseg_iou_type)it;
        p.n_threads                    = 1;
        for (long n = 1;; n++) {
            iseg_coco_eval_t ev;
            ASSERT_OK(iseg_coco_eval_init(&ev, &p, NULL, 0));
            oom_arm(n, false);
            enum iseg_status st = iseg_coco_eval_load_mem(ev, GT_JSON, strlen(GT_JSON),
                                                          "gt.json", DT_BOTH_JSON,
                                                          strlen(DT_BOTH_JSON), "dt.json");
            if (st == ISEG_STATUS_OK) st = iseg_coco_eval_run(ev);
            long n_fail = oom_disarm();
            if (st != ISEG_STATUS_OK) {
                ASSERT_STATUS(st, ISEG_STATUS_ENOMEM);
                /* retry the whole load + run without failures */
                ASSERT_OK(iseg_coco_eval_load_mem(ev, GT_JSON, strlen(GT_JSON), "gt.json",
                                                  DT_BOTH_JSON, strlen(DT_BOTH_JSON), "dt.json"));
                ASSERT_OK(iseg_coco_eval_run(ev));
            }
            ASSERT_MSG(memcmp(iseg_coco_eval_stats(ev), want.stats, sizeof(want.stats)) == 0,
                       "%s, N=%ld: stats differ after a retry", iseg_iou_type_name(p.iou_type),
                       n);
            /* run() alone may be retried too */
            oom_arm(n, false);
            st = iseg_coco_eval_run(ev);
            oom_disarm();
            if (st != ISEG_STATUS_OK) {
                ASSERT_STATUS(st, ISEG_STATUS_ENOMEM);
                ASSERT_OK(iseg_coco_eval_run(ev));
            }
            ASSERT(memcmp(iseg_coco_eval_stats(ev), want.stats, sizeof(want.stats)) == 0);
            iseg_coco_eval_free(ev);
            ASSERT_EQ_INT(oom_live(), 0);
            if (n_fail == 0) break;
        }
        eval_out_free(&want);
        iseg_alloc_set(NULL);
    }
}

/* Two threads: parsing runs concurrently and work is spread over the pool, so the N-th
 * allocation is a different one each time. Only "no crash, no leak, ENOMEM or OK" is checked. */
TEST(oom_eval_two_threads) {
    for (int it = 0; it < ISEG_IOU_COUNT; it++) {
        oom_install();
        for (long n = 1;; n++) {
            oom_arm(n, false);
            struct iseg_coco_eval_params p = iseg_coco_eval_default_params();
            p.iou_type                     = (enum iseg_iou_type)it;
            p.n_threads                    = 2;
            iseg_coco_eval_t ev            = NULL;
            enum iseg_status st            = iseg_coco_eval_init(&ev, &p, NULL, 0);
            if (st == ISEG_STATUS_OK)
                st = iseg_coco_eval_load_mem(ev, GT_JSON, strlen(GT_JSON), "gt.json",
                                             DT_BOTH_JSON, strlen(DT_BOTH_JSON), "dt.json");
            if (st == ISEG_STATUS_OK) st = iseg_coco_eval_run(ev);
            if (st == ISEG_STATUS_OK) {
                char *s = iseg_coco_eval_summary(ev), *j = iseg_coco_eval_json(ev);
                iseg_free(s);
                iseg_free(j);
            }
            iseg_coco_eval_free(ev);
            long n_fail = oom_disarm();
            ASSERT_MSG(st == ISEG_STATUS_OK || st == ISEG_STATUS_ENOMEM,
                       "%s, N=%ld: status %d (%s)", iseg_iou_type_name(p.iou_type), n, (int)st,
                       iseg_status_str(st));
            ASSERT_MSG(oom_live() == 0, "%s, N=%ld: %ld blocks leaked",
                       iseg_iou_type_name(p.iou_type), n, oom_live());
            if (n_fail == 0) break;
            ASSERT_MSG(n < 100000, "no end in sight");
        }
        iseg_alloc_set(NULL);
    }
}

/* Numbers of 128 characters or more take the loader's slow path, which allocates. */
TEST(oom_long_numbers) {
    static const char head[] =
        "{\"images\": [{\"id\": 1, \"width\": 40, \"height\": 30}],\n"
        " \"categories\": [{\"id\": 1}],\n"
        " \"annotations\": [{\"id\": 1, \"image_id\": 1, \"category_id\": 1, \"iscrowd\": 0,\n"
        "   \"area\": 150.";
    static const char tail[] =
        ", \"segmentation\": [[5, 5, 20, 5, 20, 15, 5, 15]]}]}";
    char gt[sizeof(head) + 200 + sizeof(tail)];
    snprintf(gt, sizeof(gt), "%s%0200d%s", head, 0, tail);
    static const char dt[] = "[{\"image_id\": 1, \"category_id\": 1, \"score\": 0.5,\n"
                             "  \"segmentation\": [[5, 5, 20, 5, 20, 15, 5, 15]]}]";
    struct iseg_coco_eval_params p = iseg_coco_eval_default_params();
    p.n_threads                    = 1;
    oom_install();
    for (long n = 1;; n++) {
        iseg_coco_eval_t ev;
        ASSERT_OK(iseg_coco_eval_init(&ev, &p, NULL, 0));
        oom_arm(n, false);
        enum iseg_status st =
            iseg_coco_eval_load_mem(ev, gt, strlen(gt), "gt.json", dt, strlen(dt), "dt.json");
        long n_fail = oom_disarm();
        if (st != ISEG_STATUS_OK) check_nomem_msg("load_mem", st, iseg_coco_eval_last_error(ev));
        iseg_coco_eval_free(ev);
        ASSERT_EQ_INT(oom_live(), 0);
        if (n_fail == 0) {
            ASSERT_OK(st);
            break;
        }
    }
    iseg_alloc_set(NULL);
}

/* The message of a failed evaluation names the problem. */
TEST(oom_message) {
    oom_install();
    struct iseg_coco_eval_params p = iseg_coco_eval_default_params();
    p.n_threads                    = 1;
    iseg_coco_eval_t ev;
    char             err[256];
    /* the first allocation of init */
    oom_arm(1, true);
    ASSERT_STATUS(iseg_coco_eval_init(&ev, &p, err, sizeof(err)), ISEG_STATUS_ENOMEM);
    oom_disarm();
    ASSERT_STRCONTAINS(err, "out of memory");
    ASSERT(ev == NULL);
    /* from the first allocation of loading on */
    ASSERT_OK(iseg_coco_eval_init(&ev, &p, err, sizeof(err)));
    oom_arm(1, true);
    ASSERT_STATUS(iseg_coco_eval_load_mem(ev, GT_JSON, strlen(GT_JSON), "gt.json", DT_BOTH_JSON,
                                          strlen(DT_BOTH_JSON), "dt.json"),
                  ISEG_STATUS_ENOMEM);
    oom_disarm();
    ASSERT_STRCONTAINS(iseg_coco_eval_last_error(ev), "out of memory");
    ASSERT_STRCONTAINS(iseg_coco_eval_last_error(ev), "gt.json");
    /* from the first allocation of run on */
    ASSERT_OK(iseg_coco_eval_load_mem(ev, GT_JSON, strlen(GT_JSON), "gt.json", DT_BOTH_JSON,
                                      strlen(DT_BOTH_JSON), "dt.json"));
    oom_arm(1, true);
    ASSERT_STATUS(iseg_coco_eval_run(ev), ISEG_STATUS_ENOMEM);
    oom_disarm();
    ASSERT_STRCONTAINS(iseg_coco_eval_last_error(ev), "out of memory");
    iseg_coco_eval_free(ev);
    ASSERT_EQ_INT(oom_live(), 0);
    iseg_alloc_set(NULL);
}

/* ---- the RLE functions ---- */

static bool rle_zeroed(const struct iseg_rle *r) {
    return r->h == 0 && r->w == 0 && r->m == 0 && r->cnts == NULL;
}

static bool rle_equal(const struct iseg_rle *a, const struct iseg_rle *b) {
    return a->h == b->h && a->w == b->w && a->m == b->m &&
           (a->m == 0 || memcmp(a->cnts, b->cnts, a->m * sizeof(uint32_t)) == 0);
}

enum rle_op { OP_MERGE, OP_INTERSECT, OP_FROM_STRING, OP_FROM_POLY, OP_BOUNDARY, OP_COUNT };
static const char *const OP_NAMES[] = {"merge", "intersect", "from_string", "from_poly",
                                       "boundary"};
_Static_assert(sizeof(OP_NAMES) / sizeof(OP_NAMES[0]) == OP_COUNT, "one name per op");

/* Inputs are built before arming; ins[0..2] are three 20x24 masks. */
struct rle_inputs {
    struct iseg_rle ins[3];
    char           *str;
    size_t          str_len;
};

static const double POLY[] = {2.5, 1.0, 18.0, 3.0, 16.5, 19.0, 9.0, 22.5, 1.0, 12.0};

static void rle_inputs_init(struct rle_inputs *in) {
    ASSERT_OK(iseg_rle_from_poly(&in->ins[0], POLY, 5, 20, 24));
    const double bb1[4] = {3, 4, 10, 12}, bb2[4] = {8, 0, 12, 20};
    ASSERT_OK(iseg_rle_from_bbox(&in->ins[1], bb1, 20, 24));
    ASSERT_OK(iseg_rle_from_bbox(&in->ins[2], bb2, 20, 24));
    ASSERT_OK(iseg_rle_to_string(&in->ins[0], &in->str, &in->str_len));
}

static void rle_inputs_free(struct rle_inputs *in) {
    for (int i = 0; i < 3; i++) iseg_rle_free(&in->ins[i]);
    iseg_free(in->str);
}

static enum iseg_status rle_op_run(enum rle_op op, const struct rle_inputs *in,
                                   struct iseg_rle *out) {
    switch (op) {
    case OP_MERGE: return iseg_rle_merge(out, in->ins, 3, false);
    case OP_INTERSECT: return iseg_rle_merge(out, in->ins, 2, true);
    case OP_FROM_STRING: return iseg_rle_from_string(out, in->str, in->str_len, 20, 24);
    case OP_FROM_POLY: return iseg_rle_from_poly(out, POLY, 5, 20, 24);
    case OP_BOUNDARY: return iseg_rle_boundary(out, &in->ins[0], 2);
    default: TEST_FAIL("bad op %d", (int)op);
    }
}

static void rle_loop(enum rle_op op, bool persist) {
    oom_install();
    struct rle_inputs in = {0};
    rle_inputs_init(&in);
    struct iseg_rle want = {0};
    ASSERT_OK(rle_op_run(op, &in, &want));
    ASSERT(iseg_rle_area(&want) > 0);
    long base = oom_live();
    for (long n = 1;; n++) {
        struct iseg_rle got = {0};
        oom_arm(n, persist);
        enum iseg_status st     = rle_op_run(op, &in, &got);
        long             n_fail = oom_disarm();
        if (st == ISEG_STATUS_OK) {
            ASSERT_MSG(rle_equal(&got, &want), "%s, N=%ld: result differs", OP_NAMES[op], n);
        } else {
            ASSERT_MSG(st == ISEG_STATUS_ENOMEM, "%s, N=%ld: status %d (%s)", OP_NAMES[op], n,
                       (int)st, iseg_status_str(st));
            ASSERT_MSG(rle_zeroed(&got), "%s, N=%ld: output not zeroed on error", OP_NAMES[op], n);
        }
        iseg_rle_free(&got);
        ASSERT_MSG(oom_live() == base, "%s, N=%ld: %ld blocks leaked", OP_NAMES[op], n,
                   oom_live() - base);
        if (n_fail == 0) {
            ASSERT_OK(st);
            ASSERT_MSG(n > 1, "%s allocates nothing", OP_NAMES[op]);
            break;
        }
    }
    iseg_rle_free(&want);
    rle_inputs_free(&in);
    ASSERT_EQ_INT(oom_live(), 0);
    iseg_alloc_set(NULL);
}

TEST(oom_rle) {
    for (int op = 0; op < OP_COUNT; op++) {
        rle_loop((enum rle_op)op, false);
        rle_loop((enum rle_op)op, true);
    }
}

/* The allocator itself: counting and failing work as the loops above assume. */
TEST(oom_hook_self_check) {
    oom_install();
    oom_arm(2, false);
    struct iseg_rle r = {0};
    const double    bb[4] = {1, 1, 3, 3};
    ASSERT_OK(iseg_rle_from_bbox(&r, bb, 8, 8));    /* 1st: ok (2nd, the shrink, fails) */
    ASSERT_EQ_INT(oom_disarm(), 1);
    ASSERT_EQ_INT(oom_live(), 1);
    iseg_rle_free(&r);
    ASSERT_EQ_INT(oom_live(), 0);
    iseg_alloc_set(NULL);
}

TEST_LIST = {
    TEST_ENTRY(oom_hook_self_check),
    TEST_ENTRY(oom_message),
    TEST_ENTRY(oom_rle),
    TEST_ENTRY(oom_eval_segm),
    TEST_ENTRY(oom_eval_bbox),
    TEST_ENTRY(oom_eval_boundary),
    TEST_ENTRY(oom_eval_persistent),
    TEST_ENTRY(oom_eval_files),
    TEST_ENTRY(oom_eval_retry_after_failure),
    TEST_ENTRY(oom_eval_two_threads),
    TEST_ENTRY(oom_long_numbers),
    TEST_END,
};
