/* test_dataset.c - the COCO training dataset (validation report, samples) and the background
 * loader (determinism, epochs, shutdown, errors). Fixtures: tiny.json and bad.json in
 * tests/golden/dataset/, with the PNG images written into the test's scratch directory. */
#define _POSIX_C_SOURCE 200809L
#include <stdatomic.h>
#include <sys/stat.h>
#include <time.h>

#include "test.h"

#include "iseg/augment.h"
#include "iseg/dataset.h"
#include "iseg/image.h"
#include "iseg/mask.h"

/* ---- a counting allocator: leaks (the runner's children end with _exit, so LSan never runs
 * there) and injected allocation failures ---- */

static atomic_long g_live, g_n_alloc, g_fail_at = -1;

static bool should_fail(void) {
    long k = atomic_fetch_add(&g_n_alloc, 1);
    return k == atomic_load(&g_fail_at);
}
static void *cnt_malloc(size_t n, void *user) {
    (void)user;
    if (should_fail()) return NULL;
    void *p = malloc(n);
    if (p) atomic_fetch_add(&g_live, 1);
    return p;
}
static void *cnt_realloc(void *p, size_t n, void *user) {
    (void)user;
    if (should_fail()) return NULL;
    void *q = realloc(p, n);
    if (q && !p) atomic_fetch_add(&g_live, 1);
    return q;
}
static void cnt_free(void *p, void *user) {
    (void)user;
    if (!p) return;
    free(p);
    atomic_fetch_add(&g_live, -1);
}
static void leak_check_begin(void) {
    static const struct iseg_alloc a = {cnt_malloc, cnt_realloc, cnt_free, NULL};
    iseg_alloc_set(&a);
    atomic_store(&g_live, 0);
    atomic_store(&g_fail_at, -1);
}
static void leak_check_end(void) {
    ASSERT_MSG(atomic_load(&g_live) == 0, "%ld blocks leaked", atomic_load(&g_live));
    iseg_alloc_set(NULL);
}

/* ---- fixtures ---- */

static const char *golden(const char *name) {
    static char buf[4096];
    snprintf(buf, sizeof(buf), "%s/tests/golden/dataset/%s", test_source_dir(), name);
    return buf;
}

/* A w x h image of c channels and the given depth with a deterministic pattern, as a PNG at
 * dir/rel (creating dir/sub when rel has one directory). */
static void write_png(const char *dir, const char *rel, uint32_t w, uint32_t h, uint32_t c,
                      uint32_t depth) {
    char path[4096];
    const char *slash = strchr(rel, '/');
    if (slash) {
        snprintf(path, sizeof(path), "%s/%.*s", dir, (int)(slash - rel), rel);
        mkdir(path, 0755);
    }
    snprintf(path, sizeof(path), "%s/%s", dir, rel);
    struct iseg_image img = {0};
    ASSERT_OK(iseg_image_alloc(&img, w, h, c, depth));
    size_t n = (size_t)w * h * c;
    for (size_t i = 0; i < n; i++) {
        uint32_t v = (uint32_t)(i * 2654435761u >> 7);
        if (depth == 8) ((uint8_t *)img.data)[i] = (uint8_t)v;
        else ((uint16_t *)img.data)[i] = (uint16_t)v;
    }
    char err[512];
    ASSERT_MSG(iseg_png_write(path, &img, err, sizeof(err)) == ISEG_STATUS_OK, "%s", err);
    iseg_image_free(&img);
}

/* The images of tiny.json (and bad.json's a.png and b.png); skip names one to leave out. */
static void write_tiny_images(const char *dir, const char *skip) {
    if (!skip || strcmp(skip, "a.png")) write_png(dir, "a.png", 40, 30, 3, 8);
    if (!skip || strcmp(skip, "b.png")) write_png(dir, "b.png", 20, 16, 1, 8);
    if (!skip || strcmp(skip, "sub/c.png")) write_png(dir, "sub/c.png", 24, 24, 4, 16);
    if (!skip || strcmp(skip, "empty.png")) write_png(dir, "empty.png", 10, 10, 3, 8);
}

static iseg_dataset_t open_tiny(const struct iseg_dataset_params *p) {
    iseg_dataset_t ds = NULL;
    char           err[1024];
    enum iseg_status st = iseg_dataset_open(&ds, golden("tiny.json"), test_tmp_dir(), p, err,
                                            sizeof(err));
    ASSERT_MSG(st == ISEG_STATUS_OK, "open: %s (%s)", err, iseg_status_str(st));
    return ds;
}

static void assert_rle_eq(const struct iseg_rle *a, const struct iseg_rle *b) {
    ASSERT_EQ_U64(a->h, b->h);
    ASSERT_EQ_U64(a->w, b->w);
    size_t n = (size_t)a->h * a->w;
    uint8_t *ma = malloc(n ? n : 1), *mb = malloc(n ? n : 1);
    ASSERT(ma && mb);
    ASSERT_OK(iseg_rle_decode(ma, a));
    ASSERT_OK(iseg_rle_decode(mb, b));
    ASSERT_MSG(memcmp(ma, mb, n) == 0, "masks differ");
    free(ma);
    free(mb);
}

static void assert_tight_box(const struct iseg_instance *in) {
    double bb[4];
    iseg_rle_to_bbox(&in->mask, bb);
    ASSERT_EQ_DBL(in->box[0], (float)bb[0]);
    ASSERT_EQ_DBL(in->box[1], (float)bb[1]);
    ASSERT_EQ_DBL(in->box[2], (float)(bb[0] + bb[2]));
    ASSERT_EQ_DBL(in->box[3], (float)(bb[1] + bb[3]));
}

/* ---- dataset ---- */

TEST(dataset_labels_and_images) {
    leak_check_begin();
    write_tiny_images(test_tmp_dir(), NULL);
    iseg_dataset_t ds = open_tiny(NULL);
    /* categories 7, 3, 12 -> labels in increasing id order */
    ASSERT_EQ_U64(iseg_dataset_num_classes(ds), 3);
    ASSERT_EQ_INT(iseg_dataset_category_id(ds, 1), 3);
    ASSERT_EQ_INT(iseg_dataset_category_id(ds, 2), 7);
    ASSERT_EQ_INT(iseg_dataset_category_id(ds, 3), 12);
    ASSERT_STREQ(iseg_dataset_class_name(ds, 0), "background");
    ASSERT_STREQ(iseg_dataset_class_name(ds, 1), "cat");
    ASSERT_STREQ(iseg_dataset_class_name(ds, 2), "dog");
    ASSERT_STREQ(iseg_dataset_class_name(ds, 3), "bird");
    /* images by increasing id; id 8 has no annotation and is skipped by default */
    ASSERT_EQ_U64(iseg_dataset_size(ds), 3);
    ASSERT_EQ_INT(iseg_dataset_image_id(ds, 0), 2);
    ASSERT_EQ_INT(iseg_dataset_image_id(ds, 1), 5);
    ASSERT_EQ_INT(iseg_dataset_image_id(ds, 2), 10);
    ASSERT_STREQ(iseg_dataset_file_name(ds, 1), "sub/c.png");
    ASSERT_EQ_U64(iseg_dataset_image_width(ds, 2), 40);
    ASSERT_EQ_U64(iseg_dataset_image_height(ds, 2), 30);
    ASSERT_EQ_U64(iseg_dataset_num_instances(ds, 0), 2);
    ASSERT_EQ_U64(iseg_dataset_num_instances(ds, 1), 1);
    ASSERT_EQ_U64(iseg_dataset_num_instances(ds, 2), 2); /* the crowd region is not one */
    const struct iseg_dataset_report *r = iseg_dataset_report(ds);
    ASSERT_EQ_U64(r->n_images_json, 4);
    ASSERT_EQ_U64(r->n_annotations_json, 6);
    ASSERT_EQ_U64(r->n_images, 3);
    ASSERT_EQ_U64(r->n_instances, 5);
    ASSERT_EQ_U64(r->count[ISEG_DATA_CROWD], 1);
    ASSERT_EQ_U64(r->count[ISEG_DATA_EMPTY_IMAGE], 1);
    ASSERT_STRCONTAINS(r->example[ISEG_DATA_CROWD][0], "annotations[2] (id 3, image 10)");
    ASSERT_STRCONTAINS(r->example[ISEG_DATA_EMPTY_IMAGE][0], "images[3] (id 8)");
    for (int k = 0; k < ISEG_DATA_COUNT; k++)
        if (k != ISEG_DATA_CROWD && k != ISEG_DATA_EMPTY_IMAGE) ASSERT_EQ_U64(r->count[k], 0);
    iseg_dataset_free(ds);

    /* kept when asked */
    struct iseg_dataset_params p = iseg_dataset_default_params();
    p.skip_empty_images          = false;
    p.n_threads                  = 3;
    ds                           = open_tiny(&p);
    ASSERT_EQ_U64(iseg_dataset_size(ds), 4);
    ASSERT_EQ_INT(iseg_dataset_image_id(ds, 2), 8);
    ASSERT_EQ_U64(iseg_dataset_num_instances(ds, 2), 0);
    ASSERT_EQ_U64(iseg_dataset_report(ds)->count[ISEG_DATA_EMPTY_IMAGE], 0);
    struct iseg_sample s;
    char               err[512];
    ASSERT_OK(iseg_dataset_load(ds, 2, &s, err, sizeof(err)));
    ASSERT_EQ_U64(s.n, 0);
    ASSERT_EQ_U64(s.image.w, 10);
    iseg_sample_free(&s);
    iseg_dataset_free(ds);
    leak_check_end();
}

TEST(dataset_masks_boxes_images) {
    leak_check_begin();
    write_tiny_images(test_tmp_dir(), NULL);
    iseg_dataset_t     ds = open_tiny(NULL);
    struct iseg_sample s;
    char               err[512];
    struct iseg_rle    want = {0};

    /* image 2 (b.png, 8-bit gray 20x16): a compressed string (label 1) and counts (label 2) */
    ASSERT_MSG(iseg_dataset_load(ds, 0, &s, err, sizeof(err)) == ISEG_STATUS_OK, "%s", err);
    ASSERT_OK(iseg_sample_validate(&s));
    ASSERT_EQ_U64(s.image.w, 20);
    ASSERT_EQ_U64(s.image.h, 16);
    ASSERT_EQ_U64(s.image.c, 3);
    ASSERT_EQ_U64(s.image.depth, 8);
    struct iseg_image gray = {0};
    char              path[4096];
    snprintf(path, sizeof(path), "%s/b.png", test_tmp_dir());
    ASSERT_OK(iseg_png_read(path, &gray, err, sizeof(err)));
    for (size_t i = 0; i < 20 * 16; i++) {
        const uint8_t *px = (const uint8_t *)s.image.data + 3 * i;
        uint8_t        g  = ((const uint8_t *)gray.data)[i];
        ASSERT(px[0] == g && px[1] == g && px[2] == g);
    }
    iseg_image_free(&gray);
    ASSERT_EQ_U64(s.n, 2);
    const char *str = "S2790000000000000g0J@0000000a0";
    ASSERT_OK(iseg_rle_from_string(&want, str, strlen(str), 16, 20));
    assert_rle_eq(&s.inst[0].mask, &want);
    iseg_rle_free(&want);
    ASSERT_EQ_INT(s.inst[0].label, 1);
    const uint32_t cnts[] = {12, 4, 12, 4, 288};
    ASSERT_OK(iseg_rle_from_counts(&want, cnts, 5, 16, 20));
    assert_rle_eq(&s.inst[1].mask, &want);
    iseg_rle_free(&want);
    ASSERT_EQ_INT(s.inst[1].label, 2);
    ASSERT_EQ_DBL(s.inst[1].box[0], 0);
    ASSERT_EQ_DBL(s.inst[1].box[1], 12);
    ASSERT_EQ_DBL(s.inst[1].box[2], 2);
    ASSERT_EQ_DBL(s.inst[1].box[3], 16);
    for (size_t k = 0; k < s.n; k++) assert_tight_box(&s.inst[k]);
    iseg_sample_free(&s);

    /* image 5 (sub/c.png, 16-bit RGBA): one polygon, label 3; pixels v >> 8, alpha dropped */
    ASSERT_MSG(iseg_dataset_load(ds, 1, &s, err, sizeof(err)) == ISEG_STATUS_OK, "%s", err);
    struct iseg_image rgba = {0};
    snprintf(path, sizeof(path), "%s/sub/c.png", test_tmp_dir());
    ASSERT_OK(iseg_png_read(path, &rgba, err, sizeof(err)));
    ASSERT_EQ_U64(rgba.depth, 16);
    for (size_t i = 0; i < 24 * 24; i++)
        for (int ch = 0; ch < 3; ch++)
            ASSERT_EQ_U64(((const uint8_t *)s.image.data)[3 * i + (size_t)ch],
                          ((const uint16_t *)rgba.data)[4 * i + (size_t)ch] >> 8);
    iseg_image_free(&rgba);
    ASSERT_EQ_U64(s.n, 1);
    const double tri[] = {2.5, 2.5, 20.5, 4, 12, 21.25};
    ASSERT_OK(iseg_rle_from_poly(&want, tri, 3, 24, 24));
    assert_rle_eq(&s.inst[0].mask, &want);
    iseg_rle_free(&want);
    ASSERT_EQ_INT(s.inst[0].label, 3);
    assert_tight_box(&s.inst[0]);
    iseg_sample_free(&s);

    /* image 10 (a.png, RGB 40x30): a polygon (dog) and two rings merged (cat) */
    ASSERT_MSG(iseg_dataset_load(ds, 2, &s, err, sizeof(err)) == ISEG_STATUS_OK, "%s", err);
    ASSERT_EQ_U64(s.n, 2);
    const double sq[] = {5, 5, 20, 5, 20, 15, 5, 15};
    ASSERT_OK(iseg_rle_from_poly(&want, sq, 4, 30, 40));
    assert_rle_eq(&s.inst[0].mask, &want);
    iseg_rle_free(&want);
    ASSERT_EQ_INT(s.inst[0].label, 2);
    const double    r0[] = {22, 3, 32, 3, 32, 23, 22, 23}, r1[] = {25, 5, 28, 5, 28, 8};
    struct iseg_rle rings[2] = {{0}, {0}};
    ASSERT_OK(iseg_rle_from_poly(&rings[0], r0, 4, 30, 40));
    ASSERT_OK(iseg_rle_from_poly(&rings[1], r1, 3, 30, 40));
    ASSERT_OK(iseg_rle_merge(&want, rings, 2, false));
    assert_rle_eq(&s.inst[1].mask, &want);
    iseg_rle_free(&want);
    iseg_rle_free(&rings[0]);
    iseg_rle_free(&rings[1]);
    ASSERT_EQ_INT(s.inst[1].label, 1);
    for (size_t k = 0; k < s.n; k++) assert_tight_box(&s.inst[k]);
    iseg_sample_free(&s);
    iseg_dataset_free(ds);
    leak_check_end();
}

TEST(dataset_bad_data_report) {
    leak_check_begin();
    write_tiny_images(test_tmp_dir(), NULL);
    iseg_dataset_t ds = NULL;
    char           err[1024];
    ASSERT_MSG(iseg_dataset_open(&ds, golden("bad.json"), test_tmp_dir(), NULL, err,
                                 sizeof(err)) == ISEG_STATUS_OK,
               "%s", err);
    const struct iseg_dataset_report *r = iseg_dataset_report(ds);
    ASSERT_EQ_U64(r->n_annotations_json, 13);
    ASSERT_EQ_U64(r->count[ISEG_DATA_NO_SEGMENTATION], 2);
    ASSERT_EQ_U64(r->count[ISEG_DATA_BAD_POLYGON], 3);
    ASSERT_EQ_U64(r->count[ISEG_DATA_BAD_RLE], 2);
    ASSERT_EQ_U64(r->count[ISEG_DATA_RLE_SIZE], 1);
    ASSERT_EQ_U64(r->count[ISEG_DATA_EMPTY_MASK], 1);
    ASSERT_EQ_U64(r->count[ISEG_DATA_DEGENERATE_BOX], 1);
    ASSERT_EQ_U64(r->count[ISEG_DATA_BOX_OUTSIDE], 1);
    ASSERT_EQ_U64(r->count[ISEG_DATA_CROWD], 1);
    ASSERT_EQ_U64(r->count[ISEG_DATA_EMPTY_IMAGE], 1);
    ASSERT_EQ_U64(r->count[ISEG_DATA_MISSING_IMAGE], 0);
    ASSERT_EQ_U64(r->n_images, 1);
    ASSERT_EQ_U64(r->n_instances, 1);
    ASSERT_STREQ(r->example[ISEG_DATA_NO_SEGMENTATION][0],
                 "annotations[1] (id 101, image 1): no \"segmentation\"");
    ASSERT_STREQ(r->example[ISEG_DATA_NO_SEGMENTATION][1],
                 "annotations[2] (id 102, image 1): empty polygon list");
    ASSERT_STREQ(r->example[ISEG_DATA_BAD_POLYGON][0],
                 "annotations[3] (id 103, image 1): polygon ring 0 has 2 points (3 needed)");
    ASSERT_STRCONTAINS(r->example[ISEG_DATA_BAD_POLYGON][1], "odd number of coordinates (5)");
    ASSERT_STRCONTAINS(r->example[ISEG_DATA_BAD_POLYGON][2], "annotations[12] (id 112, image 3)");
    ASSERT_STRCONTAINS(r->example[ISEG_DATA_BAD_RLE][0], "annotations[5] (id 105");
    ASSERT_STRCONTAINS(r->example[ISEG_DATA_BAD_RLE][1], "invalid RLE string");
    ASSERT_STRCONTAINS(r->example[ISEG_DATA_RLE_SIZE][0],
                       "RLE size [10, 10] differs from the image's [30, 40]");
    ASSERT_STRCONTAINS(r->example[ISEG_DATA_EMPTY_MASK][0], "(id 108, image 1): empty mask");
    ASSERT_STRCONTAINS(r->example[ISEG_DATA_DEGENERATE_BOX][0], "bbox [5, 5, 0.5, 10]");
    ASSERT_STRCONTAINS(r->example[ISEG_DATA_BOX_OUTSIDE][0], "outside the 40x30 image");
    ASSERT_STRCONTAINS(r->example[ISEG_DATA_EMPTY_IMAGE][0], "images[1] (id 3): b.png");
    char   text[4096];
    size_t need = iseg_dataset_report_format(r, text, sizeof(text));
    ASSERT(need > 0 && need < sizeof(text));
    ASSERT_EQ_U64(strlen(text), need);
    ASSERT_STRCONTAINS(text, "dataset: 1 images (2 in the JSON), 1 instances, 1 categories");
    ASSERT_STRCONTAINS(text, "bad_polygon      3 annotations dropped");
    ASSERT_STRCONTAINS(text, "empty_image      1 images skipped");
    char small[16];
    ASSERT_EQ_U64(iseg_dataset_report_format(r, small, sizeof(small)), need);
    ASSERT_EQ_U64(strlen(small), sizeof(small) - 1);
    fprintf(stderr, "%s", text);
    struct iseg_sample s;
    ASSERT_OK(iseg_dataset_load(ds, 0, &s, err, sizeof(err)));
    ASSERT_EQ_U64(s.n, 1);
    ASSERT_EQ_U64(iseg_rle_area(&s.inst[0].mask), 150);
    iseg_sample_free(&s);
    iseg_dataset_free(ds);
    leak_check_end();
}

/* open_mem of json must fail with want and a message containing msg */
static void expect_open_error(const char *json, enum iseg_status want, const char *msg) {
    iseg_dataset_t ds = (iseg_dataset_t)1;
    char           err[1024];
    struct iseg_dataset_params p = iseg_dataset_default_params();
    p.check_files                = false;
    enum iseg_status st = iseg_dataset_open_mem(&ds, "x.json", json, strlen(json), "", &p, err,
                                                sizeof(err));
    ASSERT_MSG(st == want, "got %s (%s), expected %s for %s", iseg_status_str(st),
               st == ISEG_STATUS_OK ? "" : err, iseg_status_str(want), json);
    ASSERT(ds == NULL);
    ASSERT_STRCONTAINS(err, msg);
}

#define IMGS "\"images\": [{\"id\": 1, \"file_name\": \"a.png\", \"width\": 4, \"height\": 4}]"
#define CATS "\"categories\": [{\"id\": 1, \"name\": \"a\"}]"
#define POLY "\"segmentation\": [[0, 0, 3, 0, 3, 3]]"

TEST(dataset_structural_errors) {
    leak_check_begin();
    expect_open_error("{" IMGS ", " CATS ", \"annotations\": [{\"id\": 22, \"image_id\": 1, "
                      "\"category_id\": 1, " POLY "}, {\"id\": 23, \"image_id\": 1, "
                      "\"category_id\": 99, " POLY "}]}",
                      ISEG_STATUS_EFORMAT,
                      "x.json: annotations[1] (id 23): category_id 99 is not in categories");
    expect_open_error("{" IMGS ", " CATS ", \"annotations\": [{\"id\": 5, \"image_id\": 2, "
                      "\"category_id\": 1, " POLY "}]}",
                      ISEG_STATUS_EFORMAT,
                      "x.json: annotations[0] (id 5): image_id 2 is not in images");
    expect_open_error("{" IMGS ", " CATS ", \"annotations\": [{\"category_id\": 1, " POLY "}]}",
                      ISEG_STATUS_EFORMAT, "x.json: annotations[0]: no \"image_id\"");
    expect_open_error("{" IMGS ", " CATS ", \"annotations\": [{\"image_id\": 1, " POLY "}]}",
                      ISEG_STATUS_EFORMAT, "no \"category_id\"");
    expect_open_error("{\"images\": [{\"id\": 1, \"file_name\": \"a.png\", \"width\": 4, "
                      "\"height\": 4}, {\"id\": 1, \"file_name\": \"b.png\", \"width\": 4, "
                      "\"height\": 4}], " CATS ", \"annotations\": []}",
                      ISEG_STATUS_EFORMAT, "x.json: images[1]: id 1 repeats images[0]");
    expect_open_error("{" IMGS ", \"categories\": [{\"id\": 4}, {\"id\": 4}], "
                      "\"annotations\": []}",
                      ISEG_STATUS_EFORMAT, "categories[1]: id 4 repeats categories[0]");
    expect_open_error("{\"images\": [{\"id\": 7, \"width\": 4, \"height\": 4}], " CATS
                      ", \"annotations\": []}",
                      ISEG_STATUS_EFORMAT, "x.json: images[0] (id 7): no \"file_name\"");
    expect_open_error("{\"images\": [{\"id\": 7, \"file_name\": 3, \"width\": 4, "
                      "\"height\": 4}], " CATS ", \"annotations\": []}",
                      ISEG_STATUS_EFORMAT, "images[0] (id 7): no \"file_name\"");
    expect_open_error("{\"images\": [{\"id\": 7, \"file_name\": \"a\\u0000b\", \"width\": 4, "
                      "\"height\": 4}], " CATS ", \"annotations\": []}",
                      ISEG_STATUS_EFORMAT, "NUL");
    expect_open_error("{\"images\": [{\"id\": 7, \"file_name\": \"a.png\", \"width\": 0, "
                      "\"height\": 4}], " CATS ", \"annotations\": []}",
                      ISEG_STATUS_EFORMAT, "images[0] (id 7): size 0x4 is empty");
    expect_open_error("{" IMGS ", " CATS ", \"annotations\": [{\"image_id\": 1,}]}",
                      ISEG_STATUS_EFORMAT, "x.json:1:");
    expect_open_error("[1, 2]", ISEG_STATUS_EFORMAT, "x.json");
    expect_open_error("{\"other\": 1}", ISEG_STATUS_EFORMAT, "not COCO");
    expect_open_error("", ISEG_STATUS_EFORMAT, "x.json: empty input");

    /* an unreadable path */
    iseg_dataset_t ds;
    char           err[512];
    char           path[4096];
    snprintf(path, sizeof(path), "%s/nope.json", test_tmp_dir());
    ASSERT_STATUS(iseg_dataset_open(&ds, path, test_tmp_dir(), NULL, err, sizeof(err)),
                  ISEG_STATUS_EIO);
    ASSERT_STRCONTAINS(err, "nope.json");
    ASSERT(ds == NULL);
    ASSERT_STATUS(iseg_dataset_open(&ds, "-", NULL, NULL, err, sizeof(err)), ISEG_STATUS_EINVAL);
    ASSERT_STRCONTAINS(err, "standard input");

    /* file names after the other keys, an image id given as 1.0, "images" twice, an
     * absolute path, escapes in names: all fine */
    const char *ok = "{\"categories\": [{\"id\": 1}], \"images\": [{\"width\": 4, \"height\": 4, "
                     "\"id\": 1.0, \"file_name\": \"/abs/x\\\"y.png\"}], \"annotations\": [], "
                     "\"images\": [{\"file_name\": \"b.png\", \"id\": 2, \"width\": 3, "
                     "\"height\": 3, \"extra\": {\"file_name\": \"no\"}}]}";
    struct iseg_dataset_params p = iseg_dataset_default_params();
    p.check_files                = false;
    p.skip_empty_images          = false;
    ASSERT_MSG(iseg_dataset_open_mem(&ds, "ok.json", ok, strlen(ok), "dir", &p, err,
                                     sizeof(err)) == ISEG_STATUS_OK,
               "%s", err);
    ASSERT_EQ_U64(iseg_dataset_size(ds), 2);
    ASSERT_STREQ(iseg_dataset_file_name(ds, 0), "/abs/x\"y.png");
    ASSERT_STREQ(iseg_dataset_file_name(ds, 1), "b.png");
    ASSERT_STREQ(iseg_dataset_class_name(ds, 1), "");
    iseg_dataset_free(ds);
    leak_check_end();
}

TEST(dataset_missing_image) {
    leak_check_begin();
    write_tiny_images(test_tmp_dir(), "b.png");
    iseg_dataset_t ds;
    char           err[1024];
    ASSERT_STATUS(iseg_dataset_open(&ds, golden("tiny.json"), test_tmp_dir(), NULL, err,
                                    sizeof(err)),
                  ISEG_STATUS_EIO);
    ASSERT(ds == NULL);
    ASSERT_STRCONTAINS(err, "tiny.json: images[1] (id 2): image file ");
    ASSERT_STRCONTAINS(err, "/b.png not found (1 of 4 images missing)");

    struct iseg_dataset_params p = iseg_dataset_default_params();
    p.skip_missing_images        = true;
    ds                           = open_tiny(&p);
    ASSERT_EQ_U64(iseg_dataset_size(ds), 2);
    ASSERT_EQ_INT(iseg_dataset_image_id(ds, 0), 5);
    const struct iseg_dataset_report *r = iseg_dataset_report(ds);
    ASSERT_EQ_U64(r->count[ISEG_DATA_MISSING_IMAGE], 1);
    ASSERT_STRCONTAINS(r->example[ISEG_DATA_MISSING_IMAGE][0], "images[1] (id 2): ");
    iseg_dataset_free(ds);

    /* without the stat at open, the load reports it */
    p             = iseg_dataset_default_params();
    p.check_files = false;
    ds            = open_tiny(&p);
    ASSERT_EQ_U64(iseg_dataset_size(ds), 3);
    struct iseg_sample s;
    ASSERT_STATUS(iseg_dataset_load(ds, 0, &s, err, sizeof(err)), ISEG_STATUS_EIO);
    ASSERT_STRCONTAINS(err, "b.png");
    ASSERT(s.n == 0 && s.image.data == NULL);
    iseg_dataset_free(ds);
    leak_check_end();
}

TEST(dataset_wrong_image_size) {
    leak_check_begin();
    write_tiny_images(test_tmp_dir(), "b.png");
    write_png(test_tmp_dir(), "b.png", 21, 16, 3, 8);
    iseg_dataset_t     ds = open_tiny(NULL);
    struct iseg_sample s;
    char               err[1024];
    ASSERT_STATUS(iseg_dataset_load(ds, 0, &s, err, sizeof(err)), ISEG_STATUS_ESHAPE);
    ASSERT_STRCONTAINS(err, "b.png: decoded size 21x16 differs from the JSON's 20x16");
    ASSERT_STRCONTAINS(err, "images[1], id 2");
    ASSERT(s.n == 0 && s.image.data == NULL);
    ASSERT_OK(iseg_dataset_load(ds, 1, &s, err, sizeof(err)));
    iseg_sample_free(&s);
    iseg_dataset_free(ds);
    leak_check_end();
}

TEST(dataset_oom) {
    /* every allocation of open and load failing in turn: ENOMEM or OK, never a leak */
    write_tiny_images(test_tmp_dir(), NULL);
    size_t len;
    char  *js = test_read_file(golden("bad.json"), &len);
    struct iseg_dataset_params p = iseg_dataset_default_params();
    p.n_threads                  = 1;
    p.skip_empty_images          = false;
    leak_check_begin();
    long n_ok = 0;
    for (long n = 0; n < 2000 && n_ok < 3; n++) {
        atomic_store(&g_n_alloc, 0);
        atomic_store(&g_fail_at, n);
        iseg_dataset_t   ds;
        char             err[1024];
        enum iseg_status st = iseg_dataset_open_mem(&ds, "bad.json", js, len, test_tmp_dir(), &p,
                                                    err, sizeof(err));
        ASSERT_MSG(st == ISEG_STATUS_OK || st == ISEG_STATUS_ENOMEM, "N=%ld: %s", n, err);
        if (st == ISEG_STATUS_OK) {
            for (size_t i = 0; i < iseg_dataset_size(ds); i++) {
                struct iseg_sample s;
                st = iseg_dataset_load(ds, i, &s, err, sizeof(err));
                ASSERT_MSG(st == ISEG_STATUS_OK || st == ISEG_STATUS_ENOMEM, "N=%ld: %s", n, err);
                iseg_sample_free(&s);
            }
            iseg_dataset_free(ds);
        }
        if (atomic_load(&g_n_alloc) <= n) n_ok++; /* no failure was injected: done */
        ASSERT_MSG(atomic_load(&g_live) == 0, "N=%ld: %ld blocks leaked", n,
                   atomic_load(&g_live));
    }
    ASSERT(n_ok > 0);
    fprintf(stderr, "%ld allocations in open + load, each failed once\n",
            (long)atomic_load(&g_n_alloc));
    atomic_store(&g_fail_at, -1);
    leak_check_end();
    free(js);
}

/* ---- loader ---- */

#define N_GEN 13

/* N_GEN images (g<i>.png, (16 + i) x (12 + i), RGB) with 1..3 polygons each; 2 categories. */
static iseg_dataset_t open_generated(const char *bad_png) {
    const char *dir = test_tmp_dir();
    size_t      cap = 1 << 16, len = 0;
    char       *js  = malloc(cap);
    ASSERT(js);
    len += (size_t)snprintf(js + len, cap - len,
                            "{\"categories\": [{\"id\": 1, \"name\": \"a\"}, {\"id\": 2, "
                            "\"name\": \"b\"}], \"images\": [");
    for (int i = 0; i < N_GEN; i++) {
        char name[32];
        snprintf(name, sizeof(name), "g%d.png", i);
        uint32_t w = 16 + (uint32_t)i, h = 12 + (uint32_t)i;
        if (bad_png && strcmp(bad_png, name) == 0) write_png(dir, name, w + 1, h, 3, 8);
        else write_png(dir, name, w, h, 3, 8);
        len += (size_t)snprintf(js + len, cap - len,
                                "%s{\"id\": %d, \"file_name\": \"%s\", \"width\": %u, "
                                "\"height\": %u}",
                                i ? ", " : "", 100 + i, name, w, h);
    }
    len += (size_t)snprintf(js + len, cap - len, "], \"annotations\": [");
    int id = 1;
    for (int i = 0; i < N_GEN; i++) {
        for (int k = 0; k <= i % 3; k++, id++) {
            double x = 1 + 3 * k, y = 1 + 2 * k;
            len += (size_t)snprintf(js + len, cap - len,
                                    "%s{\"id\": %d, \"image_id\": %d, \"category_id\": %d, "
                                    "\"segmentation\": [[%g, %g, %g, %g, %g, %g, %g, %g]]}",
                                    id > 1 ? ", " : "", id, 100 + i, 1 + (k + i) % 2, x, y,
                                    x + 8 + i % 4, y, x + 8 + i % 4, y + 6 + k, x + 1, y + 7);
        }
    }
    len += (size_t)snprintf(js + len, cap - len, "]}");
    ASSERT(len < cap);
    iseg_dataset_t ds;
    char           err[1024];
    ASSERT_MSG(iseg_dataset_open_mem(&ds, "gen.json", js, len, dir, NULL, err, sizeof(err)) ==
                   ISEG_STATUS_OK,
               "%s", err);
    free(js);
    ASSERT_EQ_U64(iseg_dataset_size(ds), N_GEN);
    return ds;
}

static uint64_t fnv(uint64_t h, const void *p, size_t n) {
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 0x100000001b3ull;
    return h;
}

/* A hash over every byte of a batch: indices, pixels, boxes, labels, masks. */
static uint64_t batch_hash(const struct iseg_batch *b) {
    uint64_t h = 0xcbf29ce484222325ull;
    h          = fnv(h, &b->n, sizeof(b->n));
    h          = fnv(h, &b->epoch, sizeof(b->epoch));
    h          = fnv(h, &b->step, sizeof(b->step));
    for (size_t j = 0; j < b->n; j++) {
        const struct iseg_sample *s = &b->samples[j];
        ASSERT_OK(iseg_sample_validate(s));
        h = fnv(h, &b->index[j], sizeof(b->index[j]));
        h = fnv(h, &s->image.w, sizeof(s->image.w));
        h = fnv(h, &s->image.h, sizeof(s->image.h));
        h = fnv(h, s->image.data, iseg_image_nbytes(&s->image));
        h = fnv(h, &s->n, sizeof(s->n));
        for (size_t k = 0; k < s->n; k++) {
            h = fnv(h, s->inst[k].box, sizeof(s->inst[k].box));
            h = fnv(h, &s->inst[k].label, sizeof(s->inst[k].label));
            h = fnv(h, s->inst[k].mask.cnts, s->inst[k].mask.m * sizeof(uint32_t));
        }
    }
    return h;
}

static struct iseg_loader_params aug_params(uint64_t seed, int n_threads) {
    struct iseg_loader_params p = iseg_loader_default_params();
    p.batch_size                = 4;
    p.seed                      = seed;
    p.n_threads                 = n_threads;
    p.hflip_p                   = 0.5;
    p.vflip_p                   = 0.3;
    p.scale_min                 = 0.5;
    p.scale_max                 = 1.5;
    p.erase.p                   = 0.5;
    p.strip.p                   = 0.5;
    return p;
}

/* Hashes of the next n batches. */
static void run_loader(iseg_dataset_t ds, const struct iseg_loader_params *p, size_t n,
                       uint64_t *hashes, size_t *order) {
    iseg_loader_t ld;
    char          err[512];
    ASSERT_MSG(iseg_loader_init(&ld, ds, p, err, sizeof(err)) == ISEG_STATUS_OK, "%s", err);
    size_t pos = 0;
    for (size_t k = 0; k < n; k++) {
        const struct iseg_batch *b;
        ASSERT_MSG(iseg_loader_next(ld, &b, err, sizeof(err)) == ISEG_STATUS_OK, "%s", err);
        hashes[k] = batch_hash(b);
        if (order)
            for (size_t j = 0; j < b->n; j++) order[pos++] = b->index[j];
    }
    iseg_loader_free(ld);
}

TEST(loader_deterministic) {
    leak_check_begin();
    iseg_dataset_t ds = open_generated(NULL);
    enum { NB = 8 }; /* two epochs of 4 batches */
    uint64_t a[NB], b[NB], c[NB], d[NB];
    struct iseg_loader_params p1 = aug_params(42, 1), p3 = aug_params(42, 3);
    run_loader(ds, &p1, NB, a, NULL);
    run_loader(ds, &p3, NB, b, NULL); /* other thread count, other timing */
    for (int k = 0; k < NB; k++) ASSERT_EQ_U64(a[k], b[k]);
    struct iseg_loader_params q = aug_params(43, 2);
    run_loader(ds, &q, NB, c, NULL);
    int same = 0;
    for (int k = 0; k < NB; k++) same += a[k] == c[k];
    ASSERT_EQ_INT(same, 0);
    /* the same order without shuffling, but other augmentations */
    struct iseg_loader_params n1 = aug_params(1, 2), n2 = aug_params(2, 2);
    n1.shuffle = n2.shuffle = false;
    size_t o1[2 * N_GEN], o2[2 * N_GEN];
    run_loader(ds, &n1, NB, c, o1);
    run_loader(ds, &n2, NB, d, o2);
    for (int k = 0; k < 2 * N_GEN; k++) {
        ASSERT_EQ_U64(o1[k], (size_t)k % N_GEN);
        ASSERT_EQ_U64(o2[k], (size_t)k % N_GEN);
    }
    same = 0;
    for (int k = 0; k < NB; k++) same += c[k] == d[k];
    ASSERT(same < NB);
    /* a loader started at batch 5 (epoch 1, step 1) hands out batches 5, 6, 7 of the run */
    struct iseg_loader_params r = aug_params(42, 2);
    r.start_batch = 5;
    run_loader(ds, &r, NB - 5, c, NULL);
    for (int k = 5; k < NB; k++) ASSERT_EQ_U64(c[k - 5], a[k]);
    iseg_dataset_free(ds);
    leak_check_end();
}

TEST(loader_epochs) {
    leak_check_begin();
    iseg_dataset_t            ds = open_generated(NULL);
    struct iseg_loader_params p  = iseg_loader_default_params();
    p.batch_size                 = 4;
    p.seed                       = 7;
    p.n_threads                  = 2;
    iseg_loader_t ld;
    char          err[512];
    ASSERT_OK(iseg_loader_init(&ld, ds, &p, err, sizeof(err)));
    ASSERT_EQ_U64(iseg_loader_num_batches(ld), 4); /* 4 + 4 + 4 + 1 */
    ASSERT_EQ_U64(iseg_loader_epoch(ld), 0);
    size_t order[3][N_GEN];
    for (int e = 0; e < 3; e++) {
        size_t pos = 0;
        for (size_t k = 0; k < 4; k++) {
            const struct iseg_batch *b;
            ASSERT_OK(iseg_loader_next(ld, &b, err, sizeof(err)));
            ASSERT_EQ_U64(b->epoch, (uint64_t)e);
            ASSERT_EQ_U64(b->step, k);
            ASSERT_EQ_U64(b->n, k < 3 ? 4 : 1);
            ASSERT_EQ_U64(iseg_loader_epoch(ld), (uint64_t)e);
            for (size_t j = 0; j < b->n; j++) {
                order[e][pos++] = b->index[j];
                /* the sample is the image the index says (before augmentation: flips keep
                 * the size) */
                ASSERT_EQ_U64(b->samples[j].image.w, iseg_dataset_image_width(ds, b->index[j]));
                ASSERT_EQ_U64(b->samples[j].n, iseg_dataset_num_instances(ds, b->index[j]));
            }
        }
        /* a permutation */
        int seen[N_GEN] = {0};
        for (int i = 0; i < N_GEN; i++) seen[order[e][i]]++;
        for (int i = 0; i < N_GEN; i++) ASSERT_EQ_INT(seen[i], 1);
    }
    ASSERT(memcmp(order[0], order[1], sizeof(order[0])) != 0);
    ASSERT(memcmp(order[1], order[2], sizeof(order[0])) != 0);
    iseg_loader_free(ld);

    p.drop_last = true;
    ASSERT_OK(iseg_loader_init(&ld, ds, &p, err, sizeof(err)));
    ASSERT_EQ_U64(iseg_loader_num_batches(ld), 3);
    for (int k = 0; k < 4; k++) {
        const struct iseg_batch *b;
        ASSERT_OK(iseg_loader_next(ld, &b, err, sizeof(err)));
        ASSERT_EQ_U64(b->n, 4);
        ASSERT_EQ_U64(b->epoch, (uint64_t)(k / 3));
    }
    iseg_loader_free(ld);

    /* bad parameters */
    struct iseg_loader_params bad = iseg_loader_default_params();
    bad.batch_size                = 0;
    ASSERT_STATUS(iseg_loader_init(&ld, ds, &bad, err, sizeof(err)), ISEG_STATUS_EINVAL);
    ASSERT(ld == NULL);
    ASSERT_STRCONTAINS(err, "batch_size");
    bad            = iseg_loader_default_params();
    bad.batch_size = 14;
    bad.drop_last  = true;
    ASSERT_STATUS(iseg_loader_init(&ld, ds, &bad, err, sizeof(err)), ISEG_STATUS_EINVAL);
    bad           = iseg_loader_default_params();
    bad.scale_min = 0;
    ASSERT_STATUS(iseg_loader_init(&ld, ds, &bad, err, sizeof(err)), ISEG_STATUS_EINVAL);
    bad         = iseg_loader_default_params();
    bad.hflip_p = 1.5;
    ASSERT_STATUS(iseg_loader_init(&ld, ds, &bad, err, sizeof(err)), ISEG_STATUS_EINVAL);
    iseg_dataset_free(ds);
    leak_check_end();
}

TEST(loader_augment_is_the_augment_api) {
    leak_check_begin();
    /* hflip with p = 1 and nothing else: each sample is iseg_augment_hflip of the loaded one */
    iseg_dataset_t            ds = open_generated(NULL);
    struct iseg_loader_params p  = iseg_loader_default_params();
    p.batch_size                 = 5;
    p.hflip_p                    = 1;
    iseg_loader_t ld;
    char          err[512];
    ASSERT_OK(iseg_loader_init(&ld, ds, &p, err, sizeof(err)));
    const struct iseg_batch *b;
    ASSERT_OK(iseg_loader_next(ld, &b, err, sizeof(err)));
    for (size_t j = 0; j < b->n; j++) {
        struct iseg_sample s;
        ASSERT_OK(iseg_dataset_load(ds, b->index[j], &s, err, sizeof(err)));
        ASSERT_OK(iseg_augment_hflip(&s));
        ASSERT_EQ_U64(s.n, b->samples[j].n);
        ASSERT(memcmp(s.image.data, b->samples[j].image.data, iseg_image_nbytes(&s.image)) == 0);
        for (size_t k = 0; k < s.n; k++) {
            assert_rle_eq(&s.inst[k].mask, &b->samples[j].inst[k].mask);
            ASSERT(memcmp(s.inst[k].box, b->samples[j].inst[k].box, sizeof(s.inst[k].box)) == 0);
            assert_tight_box(&b->samples[j].inst[k]); /* flips keep boxes tight */
        }
        iseg_sample_free(&s);
    }
    iseg_loader_free(ld);
    iseg_dataset_free(ds);
    leak_check_end();
}

TEST(loader_shutdown_mid_epoch) {
    leak_check_begin();
    iseg_dataset_t            ds = open_generated(NULL);
    struct iseg_loader_params p  = aug_params(5, 3);
    char                      err[512];
    for (int taken = 0; taken < 4; taken++) {
        iseg_loader_t ld;
        ASSERT_OK(iseg_loader_init(&ld, ds, &p, err, sizeof(err)));
        for (int k = 0; k < taken; k++) {
            const struct iseg_batch *b;
            ASSERT_OK(iseg_loader_next(ld, &b, err, sizeof(err)));
        }
        iseg_loader_free(ld); /* the producer may be mid-batch */
    }
    iseg_loader_free(NULL);
    iseg_dataset_free(ds);
    leak_check_end();
}

TEST(loader_reports_sample_errors) {
    leak_check_begin();
    /* g5.png has the wrong size: the batch holding it fails with its message, the others
     * come through, and the loader goes on */
    iseg_dataset_t            ds = open_generated("g5.png");
    struct iseg_loader_params p  = iseg_loader_default_params();
    p.batch_size                 = 4;
    p.shuffle                    = false;
    p.n_threads                  = 2;
    iseg_loader_t ld;
    char          err[512];
    ASSERT_OK(iseg_loader_init(&ld, ds, &p, err, sizeof(err)));
    const struct iseg_batch *b;
    ASSERT_OK(iseg_loader_next(ld, &b, err, sizeof(err)));
    ASSERT_EQ_U64(b->index[0], 0);
    ASSERT_STATUS(iseg_loader_next(ld, &b, err, sizeof(err)), ISEG_STATUS_ESHAPE);
    ASSERT(b == NULL);
    ASSERT_STRCONTAINS(err, "g5.png: decoded size 22x17 differs from the JSON's 21x17");
    ASSERT_OK(iseg_loader_next(ld, &b, err, sizeof(err)));
    ASSERT_EQ_U64(b->step, 2);
    ASSERT_EQ_U64(b->index[0], 8);
    iseg_loader_free(ld);
    iseg_dataset_free(ds);
    leak_check_end();
}

/* ---- the shared nuclei data (skipped when ../shared is absent) ---- */

/* Occurrences of "\"image_id\": <id>," in the JSON text (json.dumps layout). */
static size_t count_anns(const char *js, int64_t id) {
    char pat[64];
    snprintf(pat, sizeof(pat), "\"image_id\": %lld,", (long long)id);
    size_t n = 0, pl = strlen(pat);
    for (const char *p = strstr(js, pat); p; p = strstr(p + pl, pat)) n++;
    return n;
}

static void nuclei_split(const char *split, size_t want_images, size_t want_instances) {
    char rel[64], dir_rel[64];
    snprintf(rel, sizeof(rel), "data/nuclei/%s.json", split);
    snprintf(dir_rel, sizeof(dir_rel), "data/nuclei/%s", split);
    char json[4096], dir[4096];
    snprintf(json, sizeof(json), "%s", test_shared_path(rel));
    snprintf(dir, sizeof(dir), "%s", test_shared_path(dir_rel));
    iseg_dataset_t             ds;
    char                       err[1024];
    struct iseg_dataset_params dp = iseg_dataset_default_params();
    dp.n_threads                  = 2;
    double t0                     = (double)clock() / CLOCKS_PER_SEC;
    ASSERT_MSG(iseg_dataset_open(&ds, json, dir, &dp, err, sizeof(err)) == ISEG_STATUS_OK, "%s",
               err);
    double t1 = (double)clock() / CLOCKS_PER_SEC;
    char   text[4096];
    iseg_dataset_report_format(iseg_dataset_report(ds), text, sizeof(text));
    fprintf(stderr, "nuclei/%s (open %.2f s cpu):\n%s", split, t1 - t0, text);
    const struct iseg_dataset_report *r = iseg_dataset_report(ds);
    ASSERT_EQ_U64(r->n_images_json, want_images);
    ASSERT_EQ_U64(r->n_annotations_json, want_instances);
    ASSERT_EQ_U64(iseg_dataset_num_classes(ds), 1);
    ASSERT_STREQ(iseg_dataset_class_name(ds, 1), "nucleus");
    size_t len;
    char  *js = test_read_file(json, &len);
    size_t n  = iseg_dataset_size(ds);
    size_t total = 0;
    for (size_t i = 0; i < n; i++) total += iseg_dataset_num_instances(ds, i);
    ASSERT_EQ_U64(total, r->n_instances);
    /* a few samples: instance counts against the JSON text, masks against the label PNGs */
    for (size_t i = 0; i < n; i += n / 5 + 1) {
        int64_t id = iseg_dataset_image_id(ds, i);
        ASSERT_EQ_U64(iseg_dataset_num_instances(ds, i), count_anns(js, id));
        struct iseg_sample s;
        ASSERT_MSG(iseg_dataset_load(ds, i, &s, err, sizeof(err)) == ISEG_STATUS_OK, "%s", err);
        ASSERT_OK(iseg_sample_validate(&s));
        ASSERT_EQ_U64(s.n, count_anns(js, id));
        const char *fn = iseg_dataset_file_name(ds, i); /* images/<x>.png -> labels/<x>.png */
        ASSERT(strncmp(fn, "images/", 7) == 0);
        char lab_path[8192];
        snprintf(lab_path, sizeof(lab_path), "%s/labels/%s", dir, fn + 7);
        struct iseg_image lab = {0};
        ASSERT_MSG(iseg_png_read(lab_path, &lab, err, sizeof(err)) == ISEG_STATUS_OK, "%s", err);
        ASSERT(lab.w == s.image.w && lab.h == s.image.h && lab.c == 1);
        size_t   np   = (size_t)lab.w * lab.h;
        uint8_t *un   = calloc(np, 1), *m = malloc(np);
        ASSERT(un && m);
        for (size_t k = 0; k < s.n; k++) {
            ASSERT_EQ_INT(s.inst[k].label, 1);
            assert_tight_box(&s.inst[k]);
            ASSERT_OK(iseg_rle_decode(m, &s.inst[k].mask)); /* column-major */
            for (size_t q = 0; q < np; q++) un[q] |= m[q];
        }
        size_t diff = 0;
        for (uint32_t y = 0; y < lab.h; y++)
            for (uint32_t x = 0; x < lab.w; x++) {
                size_t   rm = (size_t)y * lab.w + x;
                uint32_t v  = lab.depth == 16 ? ((uint16_t *)lab.data)[rm]
                                              : ((uint8_t *)lab.data)[rm];
                diff += (v != 0) != (un[(size_t)x * lab.h + y] != 0);
            }
        ASSERT_MSG(diff == 0, "%s: union of masks differs from the label map in %zu pixels",
                   fn, diff);
        free(un);
        free(m);
        iseg_image_free(&lab);
        iseg_sample_free(&s);
    }
    free(js);
    iseg_dataset_free(ds);
}

TEST(dataset_nuclei) {
    nuclei_split("val", 69, 2547);
    nuclei_split("train", 533, 23468);
}

TEST_LIST = {
    TEST_ENTRY(dataset_labels_and_images),
    TEST_ENTRY(dataset_masks_boxes_images),
    TEST_ENTRY(dataset_bad_data_report),
    TEST_ENTRY(dataset_structural_errors),
    TEST_ENTRY(dataset_missing_image),
    TEST_ENTRY(dataset_wrong_image_size),
    TEST_ENTRY(dataset_oom),
    TEST_ENTRY(loader_deterministic),
    TEST_ENTRY(loader_epochs),
    TEST_ENTRY(loader_augment_is_the_augment_api),
    TEST_ENTRY(loader_shutdown_mid_epoch),
    TEST_ENTRY(loader_reports_sample_errors),
    TEST_ENTRY(dataset_nuclei),
    TEST_END,
};
