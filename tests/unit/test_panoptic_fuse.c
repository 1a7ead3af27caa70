/* test_panoptic_fuse.c - panoptic fusion (both policies, pixel-exact hand-made cases), the file
 * driver (outputs, thread-count determinism, bad inputs leave nothing behind) and the format
 * conversions (round trip and COCO AP of ground truth as results on the real COCO sample). */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <stdarg.h>
#include <sys/stat.h>
#include <unistd.h>

#include <yajl/yajl_tree.h>

#include "iseg/coco.h"
#include "iseg/image.h"
#include "iseg/mask.h"
#include "iseg/panoptic_fuse.h"
#include "test.h"

/* snprintf that fails the test on truncation */
static void bfmt(char *buf, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void bfmt(char *buf, size_t n, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(buf, n, fmt, ap);
    va_end(ap);
    ASSERT_MSG(k >= 0 && (size_t)k < n, "buffer too small for \"%s\"", fmt);
}

/* ---- the hand-made case (4 x 6 pixels) ----
 * categories: 1 person, 2 car (things); 10 sky, 11 road, 12 grass (stuff)
 * semantic (row-major, y down):            instances (file order):
 *   10 10 10 10 10  10                      I0 person 0.9  x 1..2, y 1..2
 *   10 10 10 10 10  10                      I1 car    0.8  x 2..3, y 1..3
 *   11 11 11 11 11 255                      I2 person 0.7  x 1..2, y 1
 *    1 11 11 11 11  12                      I3 car    0.3  x 0..5, y 0..3 (below score)
 *                                           I4 person 0.8  x 3..4, y 2..3 (ties I1: after it) */
#define H 4
#define W 6
static const uint16_t SEM[H * W] = {10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10,
                                    11, 11, 11, 11, 11, 255, 1, 11, 11, 11, 11, 12};
static const struct iseg_fuse_category CATS[] = {
    {1, true, "person"}, {2, true, "car"}, {10, false, "sky"}, {11, false, "road"},
    {12, false, "grass"}};
#define N_CATS 5
struct rect {
    int64_t cat;
    double  score;
    int     x0, y0, x1, y1;
};
static const struct rect INST[] = {{1, 0.9, 1, 1, 2, 2}, {2, 0.8, 2, 1, 3, 3}, {1, 0.7, 1, 1, 2, 1},
                                   {2, 0.3, 0, 0, 5, 3}, {1, 0.8, 3, 2, 4, 3}};
#define N_INST 5

static void rect_rle(struct iseg_rle *r, uint32_t h, uint32_t w, int x0, int y0, int x1, int y1) {
    uint8_t m[H * W * 16];
    ASSERT((size_t)h * w <= sizeof(m));
    memset(m, 0, sizeof(m));
    for (int x = x0; x <= x1; x++)
        for (int y = y0; y <= y1; y++) m[(size_t)x * h + (size_t)y] = 1; /* column-major */
    ASSERT_OK(iseg_rle_encode(r, m, h, w));
}

struct want_seg {
    uint32_t id;
    int64_t  cat;
    uint64_t area;
    uint32_t bbox[4];
};

static void check_segs(const struct iseg_fuse_segment *s, size_t n, const struct want_seg *want,
                       size_t n_want) {
    ASSERT_EQ_U64(n, n_want);
    for (size_t k = 0; k < n; k++) {
        ASSERT_EQ_U64(s[k].id, want[k].id);
        ASSERT_EQ_INT(s[k].category_id, want[k].cat);
        ASSERT_EQ_U64(s[k].area, want[k].area);
        ASSERT(!s[k].iscrowd);
        for (int j = 0; j < 4; j++) ASSERT_EQ_U64(s[k].bbox[j], want[k].bbox[j]);
    }
}

static void check_ids(const uint32_t *ids, const uint32_t *want, uint32_t h, uint32_t w) {
    for (uint32_t i = 0; i < h * w; i++)
        if (ids[i] != want[i])
            TEST_FAIL("pixel x=%u y=%u: got id %u, expected %u", i % w, i / w, ids[i], want[i]);
}

static void run_case(const struct iseg_fuse_params *p, const uint8_t *conf, const uint32_t *want,
                     const struct want_seg *wsegs, size_t n_wsegs) {
    struct iseg_rle           masks[N_INST];
    struct iseg_fuse_instance in[N_INST];
    for (int i = 0; i < N_INST; i++) {
        memset(&masks[i], 0, sizeof(masks[i]));
        rect_rle(&masks[i], H, W, INST[i].x0, INST[i].y0, INST[i].x1, INST[i].y1);
        in[i] = (struct iseg_fuse_instance){INST[i].cat, INST[i].score, &masks[i]};
    }
    uint32_t                  ids[H * W];
    struct iseg_fuse_segment *segs = NULL;
    size_t                    n    = 0;
    char                      err[256];
    ASSERT_OK(iseg_fuse_image(p, CATS, N_CATS, in, N_INST, SEM, conf, H, W, ids, &segs, &n, err,
                              sizeof(err)));
    check_ids(ids, want, H, W);
    check_segs(segs, n, wsegs, n_wsegs);
    iseg_free(segs);
    for (int i = 0; i < N_INST; i++) iseg_rle_free(&masks[i]);
}

/* I0 takes its 4 pixels; I1 keeps 4 of 6 (>= 0.5); I4 (tied with I1, later in the file) keeps 2
 * of 4 (exactly 0.5, kept); I2 keeps 0 of 2 (dropped); I3 is below the score threshold.
 * Stuff: sky 9 pixels, road 2 (= stuff_area 2, kept), grass 1 (VOID); the thing-labelled and
 * the 255 pixel stay VOID. */
static const uint32_t WANT_IP[H * W] = {
    10000, 10000, 10000, 10000, 10000, 10000,
    10000, 1001,  1001,  2001,  10000, 10000,
    11000, 1001,  1001,  2001,  1002,  0,
    0,     11000, 2001,  2001,  1002,  0};
static const struct want_seg WSEG_IP[] = {{1001, 1, 4, {1, 1, 2, 2}},
                                          {2001, 2, 4, {2, 1, 2, 3}},
                                          {1002, 1, 2, {4, 2, 1, 2}},
                                          {10000, 10, 9, {0, 0, 6, 2}},
                                          {11000, 11, 2, {0, 2, 2, 2}}};

TEST(fuse_instance_priority) {
    struct iseg_fuse_params p = iseg_fuse_default_params();
    p.stuff_area              = 2;
    run_case(&p, NULL, WANT_IP, WSEG_IP, 5);
    /* the confidence map is ignored by instance-priority */
    uint8_t conf[H * W];
    memset(conf, 255, sizeof(conf));
    run_case(&p, conf, WANT_IP, WSEG_IP, 5);
}

TEST(fuse_ties_keep_file_order) {
    /* if I4 came before I1 (it does not: equal scores keep file order), I1 would keep only 2 of
     * 6 pixels and be dropped; here we make I4's score higher to show the difference */
    struct iseg_rle           masks[N_INST];
    struct iseg_fuse_instance in[N_INST];
    for (int i = 0; i < N_INST; i++) {
        memset(&masks[i], 0, sizeof(masks[i]));
        rect_rle(&masks[i], H, W, INST[i].x0, INST[i].y0, INST[i].x1, INST[i].y1);
        in[i] = (struct iseg_fuse_instance){INST[i].cat, INST[i].score, &masks[i]};
    }
    in[4].score                 = 0.85;
    struct iseg_fuse_params p   = iseg_fuse_default_params();
    p.stuff_area                = 2;
    uint32_t                  ids[H * W];
    struct iseg_fuse_segment *segs = NULL;
    size_t                    n    = 0;
    char                      err[256];
    ASSERT_OK(iseg_fuse_image(&p, CATS, N_CATS, in, N_INST, SEM, NULL, H, W, ids, &segs, &n, err,
                              sizeof(err)));
    static const uint32_t want[H * W] = {
        10000, 10000, 10000, 10000, 10000, 10000,
        10000, 1001,  1001,  10000, 10000, 10000,
        11000, 1001,  1001,  1002,  1002,  0,
        0,     11000, 11000, 1002,  1002,  0};
    check_ids(ids, want, H, W);
    static const struct want_seg ws[] = {{1001, 1, 4, {1, 1, 2, 2}},
                                         {1002, 1, 4, {3, 2, 2, 2}},
                                         {10000, 10, 10, {0, 0, 6, 2}},
                                         {11000, 11, 3, {0, 2, 3, 2}}};
    check_segs(segs, n, ws, 4);
    iseg_free(segs);
    for (int i = 0; i < N_INST; i++) iseg_rle_free(&masks[i]);
}

TEST(fuse_overlap_and_stuff_area) {
    /* overlap 0.7: I1 (4/6) is dropped, so I4 keeps all 4 of its pixels; road then has 3 free
     * pixels (x=2, y=3 is no longer taken): kept with stuff_area 3 */
    struct iseg_fuse_params p = iseg_fuse_default_params();
    p.stuff_area              = 3;
    p.overlap_thresh          = 0.7;
    static const uint32_t want[H * W] = {
        10000, 10000, 10000, 10000, 10000, 10000,
        10000, 1001,  1001,  10000, 10000, 10000,
        11000, 1001,  1001,  1002,  1002,  0,
        0,     11000, 11000, 1002,  1002,  0};
    static const struct want_seg ws[] = {{1001, 1, 4, {1, 1, 2, 2}},
                                         {1002, 1, 4, {3, 2, 2, 2}},
                                         {10000, 10, 10, {0, 0, 6, 2}},
                                         {11000, 11, 3, {0, 2, 3, 2}}};
    run_case(&p, NULL, want, ws, 4);
    /* stuff_area 4: road (3 pixels) becomes VOID too */
    p.stuff_area = 4;
    static const uint32_t want4[H * W] = {
        10000, 10000, 10000, 10000, 10000, 10000,
        10000, 1001,  1001,  10000, 10000, 10000,
        0,     1001,  1001,  1002,  1002,  0,
        0,     0,     0,     1002,  1002,  0};
    run_case(&p, NULL, want4, ws, 3);
}

TEST(fuse_stuff_protected_confidence) {
    /* sky at (2,1) (confidence 200/255) and (3,1) (255) is protected: I0 keeps 3 of 4, I1 keeps
     * 3 of 6 (exactly 0.5), I2 keeps 0 (dropped), I4 keeps 2 of 4 */
    uint8_t conf[H * W] = {0};
    conf[1 * W + 2]     = 200;
    conf[1 * W + 3]     = 255;
    conf[1 * W + 4]     = 127; /* 127/255 < 0.5: not protected (nothing claims it anyway) */
    struct iseg_fuse_params p = iseg_fuse_default_params();
    p.policy                  = ISEG_FUSE_STUFF_PROTECTED;
    p.stuff_area              = 2;
    static const uint32_t want[H * W] = {
        10000, 10000, 10000, 10000, 10000, 10000,
        10000, 1001,  10000, 10000, 10000, 10000,
        11000, 1001,  1001,  2001,  1002,  0,
        0,     11000, 2001,  2001,  1002,  0};
    static const struct want_seg ws[] = {{1001, 1, 3, {1, 1, 2, 2}},
                                         {2001, 2, 3, {2, 2, 2, 2}},
                                         {1002, 1, 2, {4, 2, 1, 2}},
                                         {10000, 10, 11, {0, 0, 6, 2}},
                                         {11000, 11, 2, {0, 2, 2, 2}}};
    run_case(&p, conf, want, ws, 5);
    /* protect threshold 0.9: only (3,1) is protected; I0 then keeps all 4, I1 3 of 6 */
    p.protect_thresh = 0.9;
    static const uint32_t want9[H * W] = {
        10000, 10000, 10000, 10000, 10000, 10000,
        10000, 1001,  1001,  10000, 10000, 10000,
        11000, 1001,  1001,  2001,  1002,  0,
        0,     11000, 2001,  2001,  1002,  0};
    static const struct want_seg ws9[] = {{1001, 1, 4, {1, 1, 2, 2}},
                                          {2001, 2, 3, {2, 2, 2, 2}},
                                          {1002, 1, 2, {4, 2, 1, 2}},
                                          {10000, 10, 10, {0, 0, 6, 2}},
                                          {11000, 11, 2, {0, 2, 2, 2}}};
    run_case(&p, conf, want9, ws9, 5);
}

TEST(fuse_stuff_protected_list) {
    /* every sky pixel is protected (by name, or by id); no confidence map */
    struct iseg_fuse_params p = iseg_fuse_default_params();
    p.policy                  = ISEG_FUSE_STUFF_PROTECTED;
    p.stuff_area              = 2;
    static const uint32_t want[H * W] = {
        10000, 10000, 10000, 10000, 10000, 10000,
        10000, 10000, 10000, 10000, 10000, 10000,
        11000, 1001,  1001,  2001,  1002,  0,
        0,     11000, 2001,  2001,  1002,  0};
    static const struct want_seg ws[] = {{1001, 1, 2, {1, 2, 2, 1}},
                                         {2001, 2, 3, {2, 2, 2, 2}},
                                         {1002, 1, 2, {4, 2, 1, 2}},
                                         {10000, 10, 12, {0, 0, 6, 2}},
                                         {11000, 11, 2, {0, 2, 2, 2}}};
    p.protect = "sky";
    run_case(&p, NULL, want, ws, 5);
    p.protect = " 10 , grass";
    run_case(&p, NULL, want, ws, 5);
    /* without a list or confidence, stuff-protected equals instance-priority */
    p.protect = NULL;
    run_case(&p, NULL, WANT_IP, WSEG_IP, 5);
}

TEST(fuse_image_errors) {
    struct iseg_rle m = {0};
    rect_rle(&m, H, W, 0, 0, 1, 1);
    struct iseg_fuse_instance in   = {7, 0.9, &m};
    struct iseg_fuse_params   p    = iseg_fuse_default_params();
    uint32_t                  ids[H * W];
    struct iseg_fuse_segment *segs = NULL;
    size_t                    n    = 0;
    char                      err[256];
    ASSERT_STATUS(iseg_fuse_image(&p, CATS, N_CATS, &in, 1, SEM, NULL, H, W, ids, &segs, &n, err,
                                  sizeof(err)), ISEG_STATUS_EFORMAT);
    ASSERT_STRCONTAINS(err, "category 7 is unknown");
    in.category_id = 10;
    ASSERT_STATUS(iseg_fuse_image(&p, CATS, N_CATS, &in, 1, SEM, NULL, H, W, ids, &segs, &n, err,
                                  sizeof(err)), ISEG_STATUS_EFORMAT);
    ASSERT_STRCONTAINS(err, "not a thing");
    in.category_id = 1;
    ASSERT_STATUS(iseg_fuse_image(&p, CATS, N_CATS, &in, 1, SEM, NULL, H + 1, W, ids, &segs, &n,
                                  err, sizeof(err)), ISEG_STATUS_ESHAPE);
    p.policy  = ISEG_FUSE_STUFF_PROTECTED;
    p.protect = "sky,cloud";
    ASSERT_STATUS(iseg_fuse_image(&p, CATS, N_CATS, &in, 1, SEM, NULL, H, W, ids, &segs, &n, err,
                                  sizeof(err)), ISEG_STATUS_EINVAL);
    ASSERT_STRCONTAINS(err, "unknown category 'cloud'");
    p.protect = "person";
    ASSERT_STATUS(iseg_fuse_image(&p, CATS, N_CATS, &in, 1, SEM, NULL, H, W, ids, &segs, &n, err,
                                  sizeof(err)), ISEG_STATUS_EINVAL);
    p.protect        = NULL;
    p.overlap_thresh = 1.5;
    ASSERT_STATUS(iseg_fuse_image(&p, CATS, N_CATS, &in, 1, SEM, NULL, H, W, ids, &segs, &n, err,
                                  sizeof(err)), ISEG_STATUS_EINVAL);
    p.overlap_thresh = 0.5;
    struct iseg_fuse_category bad[] = {{0, false, "zero"}};
    ASSERT_STATUS(iseg_fuse_image(&p, bad, 1, NULL, 0, SEM, NULL, H, W, ids, &segs, &n, err,
                                  sizeof(err)), ISEG_STATUS_ELIMIT);
    ASSERT(segs == NULL && n == 0);
    iseg_rle_free(&m);
}

TEST(fuse_policy_names) {
    enum iseg_fuse_policy p;
    ASSERT_OK(iseg_fuse_policy_from_name("stuff-protected", &p));
    ASSERT_EQ_INT(p, ISEG_FUSE_STUFF_PROTECTED);
    ASSERT_STREQ(iseg_fuse_policy_name(ISEG_FUSE_INSTANCE_PRIORITY), "instance-priority");
    ASSERT_STATUS(iseg_fuse_policy_from_name("nope", &p), ISEG_STATUS_EINVAL);
}

/* ---- files ---- */

static void put_file(const char *path, const char *s) {
    FILE *f = fopen(path, "wb");
    ASSERT_MSG(f, "cannot write %s", path);
    fputs(s, f);
    fclose(f);
}

static bool exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

static void put_gray(const char *path, const uint16_t *v, uint32_t h, uint32_t w, uint32_t depth) {
    struct iseg_image img = {0};
    char              err[256];
    ASSERT_OK(iseg_image_alloc(&img, w, h, 1, depth));
    for (size_t i = 0; i < (size_t)h * w; i++) {
        if (depth == 8) ((uint8_t *)img.data)[i] = (uint8_t)v[i];
        else ((uint16_t *)img.data)[i] = v[i];
    }
    ASSERT_OK(iseg_png_write(path, &img, err, sizeof(err)));
    iseg_image_free(&img);
}

static uint32_t *read_ids(const char *path, uint32_t h, uint32_t w) {
    struct iseg_image img = {0};
    char              err[256];
    ASSERT_OK(iseg_png_read(path, &img, err, sizeof(err)));
    ASSERT(img.w == w && img.h == h && img.c == 3 && img.depth == 8);
    uint32_t      *ids = malloc((size_t)h * w * sizeof(*ids));
    const uint8_t *px  = img.data;
    for (size_t i = 0; i < (size_t)h * w; i++)
        ids[i] = px[3 * i] + 256u * px[3 * i + 1] + 65536u * px[3 * i + 2];
    iseg_image_free(&img);
    return ids;
}

static const char CATS_JSON[] =
    "[{\"id\": 1, \"name\": \"person\", \"isthing\": 1}, {\"id\": 2, \"name\": \"car\", "
    "\"isthing\": 1}, {\"id\": 10, \"name\": \"sky\", \"isthing\": 0}, {\"id\": 11, \"name\": "
    "\"road\", \"isthing\": 0}, {\"id\": 12, \"name\": \"grass\", \"isthing\": 0}]";

/* n_img copies of the hand-made case as images 1..n_img (a.jpg, b.jpg, ...), in dir */
static void make_case_files(const char *dir, int n_img, char *res_path, char *img_path,
                            char *cat_path, char *sem_dir, char *conf_dir) {
    char path[1024];
    bfmt(res_path, 1024, "%s/results.json", dir);
    bfmt(img_path, 1024, "%s/images.json", dir);
    bfmt(cat_path, 1024, "%s/categories.json", dir);
    bfmt(sem_dir, 1024, "%s/sem", dir);
    bfmt(conf_dir, 1024, "%s/conf", dir);
    ASSERT(mkdir(sem_dir, 0777) == 0 && mkdir(conf_dir, 0777) == 0);
    put_file(cat_path, CATS_JSON);
    char imgs[4096] = "{\"images\": [";
    char res[16384] = "[";
    for (int k = 0; k < n_img; k++) {
        char one[256];
        bfmt(one, sizeof(one), "%s{\"id\": %d, \"width\": %d, \"height\": %d, \"file_name\": \"%c.jpg\"}",
                k ? ", " : "", k + 1, W, H, 'a' + k);
        strcat(imgs, one);
        for (int i = 0; i < N_INST; i++) {
            struct iseg_rle r = {0};
            char           *s = NULL;
            rect_rle(&r, H, W, INST[i].x0, INST[i].y0, INST[i].x1, INST[i].y1);
            ASSERT_OK(iseg_rle_to_string(&r, &s, NULL));
            bfmt(one, sizeof(one), "%s{\"image_id\": %d, \"category_id\": %lld, \"score\": %g, "
                    "\"segmentation\": {\"size\": [%d, %d], \"counts\": \"%s\"}}",
                    (k || i) ? ", " : "", k + 1, (long long)INST[i].cat, INST[i].score, H, W, s);
            strcat(res, one);
            iseg_free(s);
            iseg_rle_free(&r);
        }
        /* the semantic map by base name for even images, by id for odd ones */
        if (k % 2 == 0) bfmt(path, sizeof(path), "%s/%c.png", sem_dir, 'a' + k);
        else bfmt(path, sizeof(path), "%s/%d.png", sem_dir, k + 1);
        put_gray(path, SEM, H, W, 8);
        uint16_t conf[H * W] = {0};
        conf[1 * W + 2]      = 200;
        conf[1 * W + 3]      = 255;
        bfmt(path, sizeof(path), "%s/%c.png", conf_dir, 'a' + k);
        put_gray(path, conf, H, W, 8);
    }
    strcat(imgs, "]}");
    strcat(res, "]");
    put_file(img_path, imgs);
    put_file(res_path, res);
}

static yajl_val load_json(const char *path) {
    char    *s = test_read_file(path, NULL);
    char     e[256];
    yajl_val v = yajl_tree_parse(s, e, sizeof(e));
    ASSERT_MSG(v, "%s: %s", path, e);
    free(s);
    return v;
}

static int64_t jint(yajl_val o, const char *key) {
    const char *p[] = {key, NULL};
    yajl_val    v   = yajl_tree_get(o, p, yajl_t_number);
    ASSERT_MSG(v && YAJL_IS_INTEGER(v), "no integer \"%s\"", key);
    return YAJL_GET_INTEGER(v);
}

static void check_json_segs(yajl_val ann, const struct want_seg *want, size_t n_want) {
    const char *p[] = {"segments_info", NULL};
    yajl_val    si  = yajl_tree_get(ann, p, yajl_t_array);
    ASSERT(si);
    ASSERT_EQ_U64(si->u.array.len, n_want);
    for (size_t k = 0; k < n_want; k++) {
        yajl_val s = si->u.array.values[k];
        ASSERT_EQ_INT(jint(s, "id"), want[k].id);
        ASSERT_EQ_INT(jint(s, "category_id"), want[k].cat);
        ASSERT_EQ_INT(jint(s, "area"), want[k].area);
        ASSERT_EQ_INT(jint(s, "iscrowd"), 0);
        const char *pb[] = {"bbox", NULL};
        yajl_val    bb   = yajl_tree_get(s, pb, yajl_t_array);
        ASSERT(bb && bb->u.array.len == 4);
        for (int j = 0; j < 4; j++)
            ASSERT_EQ_INT(YAJL_GET_INTEGER(bb->u.array.values[j]), want[k].bbox[j]);
    }
}

TEST(fuse_files_instance_priority) {
    const char *dir = test_tmp_dir();
    char res[1024], imgs[1024], cats[1024], sem[1024], conf[1024], out_json[1024], out_dir[1024];
    char path[1100];
    make_case_files(dir, 3, res, imgs, cats, sem, conf);
    bfmt(out_json, sizeof(out_json), "%s/pan.json", dir);
    bfmt(out_dir, sizeof(out_dir), "%s/pan", dir);
    struct iseg_fuse_params p = iseg_fuse_default_params();
    p.stuff_area              = 2;
    struct iseg_fuse_paths f  = {res, sem, NULL, imgs, cats, out_json, out_dir};
    struct iseg_fuse_summary s;
    char                     err[512];
    ASSERT_OK(iseg_fuse_files(&p, &f, &s, err, sizeof(err)));
    ASSERT_EQ_U64(s.n_images, 3);
    ASSERT_EQ_U64(s.n_results, 15);
    ASSERT_EQ_U64(s.n_below_score, 3);
    ASSERT_EQ_U64(s.n_overlap_drop, 3);
    ASSERT_EQ_U64(s.n_instances, 9);
    ASSERT_EQ_U64(s.n_stuff, 6);
    ASSERT_EQ_U64(s.n_stuff_small, 3);
    yajl_val    root = load_json(out_json);
    const char *pa[] = {"annotations", NULL}, *pi[] = {"images", NULL}, *pc[] = {"categories", NULL};
    yajl_val    anns = yajl_tree_get(root, pa, yajl_t_array);
    ASSERT(anns && anns->u.array.len == 3);
    ASSERT(yajl_tree_get(root, pi, yajl_t_array)->u.array.len == 3);
    ASSERT(yajl_tree_get(root, pc, yajl_t_array)->u.array.len == 5);
    for (int k = 0; k < 3; k++) {
        yajl_val    a    = anns->u.array.values[k];
        const char *pf[] = {"file_name", NULL};
        char        name[8];
        bfmt(name, sizeof(name), "%c.png", 'a' + k);
        ASSERT_EQ_INT(jint(a, "image_id"), k + 1);
        ASSERT_STREQ(YAJL_GET_STRING(yajl_tree_get(a, pf, yajl_t_string)), name);
        check_json_segs(a, WSEG_IP, 5);
        bfmt(path, sizeof(path), "%s/%s", out_dir, name);
        uint32_t *ids = read_ids(path, H, W);
        check_ids(ids, WANT_IP, H, W);
        free(ids);
    }
    yajl_tree_free(root);
}

TEST(fuse_files_stuff_protected_and_threads) {
    const char *dir = test_tmp_dir();
    char res[1024], imgs[1024], cats[1024], sem[1024], conf[1024], oj[2][1024], od[2][1024];
    char path[1100];
    make_case_files(dir, 5, res, imgs, cats, sem, conf);
    struct iseg_fuse_params p = iseg_fuse_default_params();
    p.policy                  = ISEG_FUSE_STUFF_PROTECTED;
    p.stuff_area              = 2;
    char err[512];
    for (int t = 0; t < 2; t++) {
        bfmt(oj[t], sizeof(oj[t]), "%s/pan%d.json", dir, t);
        bfmt(od[t], sizeof(od[t]), "%s/pan%d", dir, t);
        p.n_threads              = t == 0 ? 1 : 3;
        struct iseg_fuse_paths f = {res, sem, conf, imgs, cats, oj[t], od[t]};
        ASSERT_OK(iseg_fuse_files(&p, &f, NULL, err, sizeof(err)));
    }
    size_t n0, n1;
    char  *j0 = test_read_file(oj[0], &n0), *j1 = test_read_file(oj[1], &n1);
    ASSERT(n0 == n1 && memcmp(j0, j1, n0) == 0);
    free(j0);
    free(j1);
    static const uint32_t want[H * W] = {
        10000, 10000, 10000, 10000, 10000, 10000,
        10000, 1001,  10000, 10000, 10000, 10000,
        11000, 1001,  1001,  2001,  1002,  0,
        0,     11000, 2001,  2001,  1002,  0};
    for (int k = 0; k < 5; k++)
        for (int t = 0; t < 2; t++) {
            bfmt(path, sizeof(path), "%s/%c.png", od[t], 'a' + k);
            uint32_t *ids = read_ids(path, H, W);
            check_ids(ids, want, H, W);
            free(ids);
        }
    /* stuff-protected needs a confidence dir or a list */
    struct iseg_fuse_paths f = {res, sem, NULL, imgs, cats, oj[0], od[0]};
    ASSERT_STATUS(iseg_fuse_files(&p, &f, NULL, err, sizeof(err)), ISEG_STATUS_EINVAL);
}

TEST(fuse_files_16bit_semantic) {
    /* stuff class 300 only fits in a 16-bit map */
    const char *dir = test_tmp_dir();
    char        path[1100], out_json[1024], out_dir[1024], cats[1024], imgs[1024], res[1024];
    bfmt(cats, sizeof(cats), "%s/c.json", dir);
    bfmt(imgs, sizeof(imgs), "%s/i.json", dir);
    bfmt(res, sizeof(res), "%s/r.json", dir);
    bfmt(out_json, sizeof(out_json), "%s/o.json", dir);
    bfmt(out_dir, sizeof(out_dir), "%s/o", dir);
    put_file(cats, "{\"categories\": [{\"id\": 300, \"name\": \"wall\", \"isthing\": false}, "
                   "{\"id\": 5, \"name\": \"cat\", \"isthing\": true}]}");
    put_file(imgs, "{\"images\": [{\"id\": 7, \"width\": 3, \"height\": 2, \"file_name\": "
                   "\"x/y/img.jpg\"}]}");
    put_file(res, "[{\"image_id\": 7, \"category_id\": 5, \"score\": 0.9, \"segmentation\": "
                  "[[0, 0, 1, 0, 1, 2, 0, 2]]}]"); /* a polygon: pixel x = 0, both rows */
    bfmt(path, sizeof(path), "%s/sem", dir);
    ASSERT(mkdir(path, 0777) == 0);
    bfmt(path, sizeof(path), "%s/sem/img.png", dir);
    const uint16_t sem[6] = {300, 300, 300, 300, 300, 999};
    put_gray(path, sem, 2, 3, 16);
    struct iseg_fuse_params p = iseg_fuse_default_params();
    p.stuff_area              = 0;
    bfmt(path, sizeof(path), "%s/sem", dir);
    struct iseg_fuse_paths f = {res, path, NULL, imgs, cats, out_json, out_dir};
    char                   err[512];
    ASSERT_OK(iseg_fuse_files(&p, &f, NULL, err, sizeof(err)));
    bfmt(path, sizeof(path), "%s/img.png", out_dir);
    uint32_t       *ids     = read_ids(path, 2, 3);
    const uint32_t  want[6] = {5001, 300000, 300000, 5001, 300000, 0};
    check_ids(ids, want, 2, 3);
    free(ids);
}

/* error -> no output json, no output dir */
static void expect_fail(const struct iseg_fuse_params *p, const struct iseg_fuse_paths *f,
                        enum iseg_status want, const char *msg) {
    char err[512] = "";
    ASSERT_STATUS(iseg_fuse_files(p, f, NULL, err, sizeof(err)), want);
    ASSERT_STRCONTAINS(err, msg);
    ASSERT_MSG(!exists(f->out_json), "%s left behind", f->out_json);
    ASSERT_MSG(!exists(f->out_dir), "%s left behind", f->out_dir);
}

TEST(fuse_files_bad_inputs) {
    const char *dir = test_tmp_dir();
    char res[1024], imgs[1024], cats[1024], sem[1024], conf[1024], oj[1024], od[1024];
    char path[1100], path2[1100];
    make_case_files(dir, 3, res, imgs, cats, sem, conf);
    bfmt(oj, sizeof(oj), "%s/out.json", dir);
    bfmt(od, sizeof(od), "%s/out", dir);
    struct iseg_fuse_params p = iseg_fuse_default_params();
    struct iseg_fuse_paths  f = {res, sem, NULL, imgs, cats, oj, od};

    /* missing semantic PNG (image 3 = c.jpg: tried c.png and 3.png) */
    bfmt(path, sizeof(path), "%s/c.png", sem);
    bfmt(path2, sizeof(path2), "%s/c.moved", sem);
    ASSERT(rename(path, path2) == 0);
    expect_fail(&p, &f, ISEG_STATUS_EIO, "c.png: semantic map of image 3 not found");
    ASSERT(rename(path2, path) == 0);

    /* size mismatch */
    bfmt(path, sizeof(path), "%s/2.png", sem);
    uint16_t small[4] = {10, 10, 10, 10};
    put_gray(path, small, 2, 2, 8);
    expect_fail(&p, &f, ISEG_STATUS_ESHAPE, "semantic map of image 2 is 2x2, the image is 6x4");
    put_gray(path, SEM, H, W, 8);

    /* a 3-channel semantic map */
    {
        struct iseg_image img = {0};
        char              e[256];
        ASSERT_OK(iseg_image_alloc(&img, W, H, 3, 8));
        ASSERT_OK(iseg_png_write(path, &img, e, sizeof(e)));
        iseg_image_free(&img);
        expect_fail(&p, &f, ISEG_STATUS_EFORMAT, "expected a 1-channel (gray) PNG");
        put_gray(path, SEM, H, W, 8);
    }

    /* unknown category, stuff category, unknown image, bad mask size in the results */
    char bad[1024];
    bfmt(bad, sizeof(bad), "%s/bad.json", dir);
    struct iseg_fuse_paths fb = f;
    fb.instances_json         = bad;
    put_file(bad, "[{\"image_id\": 1, \"category_id\": 99, \"score\": 0.9, \"segmentation\": "
                  "{\"size\": [4, 6], \"counts\": \"0X0\"}}]");
    expect_fail(&p, &fb, ISEG_STATUS_EFORMAT, "result 0 (image 1): unknown category 99");
    put_file(bad, "[{\"image_id\": 1, \"category_id\": 11, \"score\": 0.9, \"segmentation\": "
                  "{\"size\": [4, 6], \"counts\": \"0X0\"}}]");
    expect_fail(&p, &fb, ISEG_STATUS_EFORMAT, "is a stuff class");
    put_file(bad, "[{\"image_id\": 42, \"category_id\": 1, \"score\": 0.9, \"segmentation\": "
                  "{\"size\": [4, 6], \"counts\": \"0X0\"}}]");
    expect_fail(&p, &fb, ISEG_STATUS_EFORMAT, "image 42 is not in the images file");
    put_file(bad, "[{\"image_id\": 1, \"category_id\": 1, \"score\": 0.9, \"segmentation\": "
                  "{\"size\": [6, 4], \"counts\": \"0X0\"}}]");
    expect_fail(&p, &fb, ISEG_STATUS_ESHAPE, "mask size [6, 4] differs");
    put_file(bad, "[{\"image_id\": 1, \"category_id\": 1, \"score\": 0.9, \"segmentation\": "
                  "{\"size\": [4, 6], \"counts\": \"zz\"}}]");
    expect_fail(&p, &fb, ISEG_STATUS_EFORMAT, "invalid RLE counts");
    put_file(bad, "[{\"image_id\": 1, \"category_id\": 1");
    expect_fail(&p, &fb, ISEG_STATUS_EFORMAT, "invalid JSON");
    put_file(bad, "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[");
    expect_fail(&p, &fb, ISEG_STATUS_EFORMAT, "nested deeper");
    fb.instances_json = "/nonexistent/results.json";
    expect_fail(&p, &fb, ISEG_STATUS_EIO, "cannot open");

    /* bad categories and images */
    struct iseg_fuse_paths fc = f;
    fc.categories_json        = bad;
    put_file(bad, "[{\"id\": 1, \"name\": \"a\"}]");
    expect_fail(&p, &fc, ISEG_STATUS_EFORMAT, "\"isthing\"");
    put_file(bad, "[{\"id\": 1, \"isthing\": 1}, {\"id\": 1, \"isthing\": 0}]");
    expect_fail(&p, &fc, ISEG_STATUS_EFORMAT, "duplicate category id 1");
    fc.images_json     = bad;
    fc.categories_json = cats;
    put_file(bad, "{\"images\": [{\"id\": 1, \"width\": 6, \"height\": 4, \"file_name\": "
                  "\"a.jpg\"}, {\"id\": 1, \"width\": 6, \"height\": 4, \"file_name\": "
                  "\"b.jpg\"}]}");
    expect_fail(&p, &fc, ISEG_STATUS_EFORMAT, "duplicate image id 1");
    put_file(bad, "{\"images\": [{\"id\": 1, \"width\": 6, \"height\": 4, \"file_name\": "
                  "\"a.jpg\"}, {\"id\": 2, \"width\": 6, \"height\": 4, \"file_name\": "
                  "\"d/a.png\"}]}");
    expect_fail(&p, &fc, ISEG_STATUS_EFORMAT, "base name \"a\"");

    /* protect list naming an unknown class */
    struct iseg_fuse_params pp = p;
    pp.policy                  = ISEG_FUSE_STUFF_PROTECTED;
    pp.protect                 = "sky,nebula";
    expect_fail(&pp, &f, ISEG_STATUS_EINVAL, "unknown category 'nebula'");

    /* unwritable outputs: a directory below a regular file; a JSON in a missing directory
     * (after every PNG was written: those must go away again) */
    struct iseg_fuse_paths fo = f;
    char                   od2[1100], oj2[1100];
    bfmt(od2, sizeof(od2), "%s/sub", res);
    fo.out_dir = od2;
    {
        char e[512];
        ASSERT_STATUS(iseg_fuse_files(&p, &fo, NULL, e, sizeof(e)), ISEG_STATUS_EIO);
        ASSERT_STRCONTAINS(e, "cannot create directory");
        ASSERT(!exists(oj));
    }
    bfmt(oj2, sizeof(oj2), "%s/missing/out.json", dir);
    fo.out_dir  = od;
    fo.out_json = oj2;
    expect_fail(&p, &fo, ISEG_STATUS_EIO, "missing/out.json");

    /* an existing output dir is kept, and so are files already in it */
    ASSERT(mkdir(od, 0777) == 0);
    bfmt(path, sizeof(path), "%s/keep.txt", od);
    put_file(path, "x");
    {
        char e[512];
        ASSERT_STATUS(iseg_fuse_files(&p, &fo, NULL, e, sizeof(e)), ISEG_STATUS_EIO);
        ASSERT(exists(path));
        bfmt(path2, sizeof(path2), "%s/a.png", od);
        ASSERT(!exists(path2));
    }
}

/* ---- conversions on the real COCO sample ---- */

TEST(convert_roundtrip_sample) {
    char        pj[1024], pd[1024], dir2[1024], rj[1024], rd[1024];
    const char *dir = test_tmp_dir();
    bfmt(pj, sizeof(pj), "%s", test_shared_path("data/panoptic/coco_sample/panoptic_examples.json"));
    bfmt(pd, sizeof(pd), "%s", test_shared_path("data/panoptic/coco_sample/panoptic_examples"));
    bfmt(dir2, sizeof(dir2), "%s/2ch", dir);
    bfmt(rj, sizeof(rj), "%s/rt.json", dir);
    bfmt(rd, sizeof(rd), "%s/rt", dir);
    struct iseg_panoptic_convert_params p = iseg_panoptic_convert_default_params();
    char                                err[512];
    ASSERT_OK(iseg_panoptic_convert_to_2ch(&p, pj, pd, dir2, err, sizeof(err)));
    ASSERT_OK(iseg_panoptic_convert_from_2ch(&p, dir2, pj, NULL, rj, rd, err, sizeof(err)));
    /* per image: the pixel partition is the same, with the same categories and crowd flags */
    yajl_val    a = load_json(pj), b = load_json(rj);
    const char *pa[] = {"annotations", NULL};
    yajl_val    aa = yajl_tree_get(a, pa, yajl_t_array), ba = yajl_tree_get(b, pa, yajl_t_array);
    ASSERT(aa && ba && aa->u.array.len == ba->u.array.len && aa->u.array.len == 2);
    for (size_t i = 0; i < aa->u.array.len; i++) {
        yajl_val    x = aa->u.array.values[i], y = ba->u.array.values[i];
        const char *pf[] = {"file_name", NULL}, *ps[] = {"segments_info", NULL};
        const char *fx = YAJL_GET_STRING(yajl_tree_get(x, pf, yajl_t_string));
        const char *fy = YAJL_GET_STRING(yajl_tree_get(y, pf, yajl_t_string));
        ASSERT_STREQ(fx, fy);
        ASSERT_EQ_INT(jint(x, "image_id"), jint(y, "image_id"));
        yajl_val sx = yajl_tree_get(x, ps, yajl_t_array), sy = yajl_tree_get(y, ps, yajl_t_array);
        ASSERT_EQ_U64(sx->u.array.len, sy->u.array.len);
        char px[1100], py[1100];
        bfmt(px, sizeof(px), "%s/%s", pd, fx);
        bfmt(py, sizeof(py), "%s/%s", rd, fy);
        struct iseg_image ix = {0};
        ASSERT_OK(iseg_png_read(px, &ix, err, sizeof(err)));
        uint32_t *idx = read_ids(px, ix.h, ix.w), *idy = read_ids(py, ix.h, ix.w);
        size_t    npx = (size_t)ix.w * ix.h;
        iseg_image_free(&ix);
        for (size_t k = 0; k < sx->u.array.len; k++) {
            yajl_val g = sx->u.array.values[k];
            int64_t  gid = jint(g, "id"), new_id = -1;
            uint64_t area = 0;
            for (size_t q = 0; q < npx; q++) {
                if (idx[q] != (uint32_t)gid) continue;
                if (new_id < 0) new_id = idy[q];
                ASSERT_EQ_INT(idy[q], new_id); /* one new segment per old one */
                area++;
            }
            ASSERT_EQ_INT(area, jint(g, "area"));
            /* the new segment: same category, crowd flag and area; id = cat * 1000 + inst */
            bool found = false;
            for (size_t j = 0; j < sy->u.array.len; j++) {
                yajl_val h = sy->u.array.values[j];
                if (jint(h, "id") != new_id) continue;
                found = true;
                ASSERT_EQ_INT(jint(h, "category_id"), jint(g, "category_id"));
                ASSERT_EQ_INT(jint(h, "iscrowd"), jint(g, "iscrowd"));
                ASSERT_EQ_INT(jint(h, "area"), jint(g, "area"));
                ASSERT_EQ_INT(new_id / 1000, jint(g, "category_id"));
            }
            ASSERT(found);
        }
        for (size_t q = 0; q < npx; q++) ASSERT_EQ_INT(idx[q] == 0, idy[q] == 0);
        free(idx);
        free(idy);
    }
    yajl_tree_free(a);
    yajl_tree_free(b);
}

TEST(convert_instances_sample_ap) {
    char        pj[1024], pd[1024], gt[1024], dt[1024];
    const char *dir = test_tmp_dir();
    bfmt(pj, sizeof(pj), "%s", test_shared_path("data/panoptic/coco_sample/panoptic_examples.json"));
    bfmt(pd, sizeof(pd), "%s", test_shared_path("data/panoptic/coco_sample/panoptic_examples"));
    bfmt(gt, sizeof(gt), "%s/gt.json", dir);
    bfmt(dt, sizeof(dt), "%s/dt.json", dir);
    struct iseg_panoptic_convert_params p = iseg_panoptic_convert_default_params();
    char                                err[512];
    ASSERT_OK(iseg_panoptic_convert_to_instances(&p, pj, pd, gt, err, sizeof(err)));
    p.results = true;
    p.n_threads = 2;
    ASSERT_OK(iseg_panoptic_convert_to_instances(&p, pj, pd, dt, err, sizeof(err)));
    struct iseg_coco_eval_params ep = iseg_coco_eval_default_params();
    ep.n_threads                    = 1;
    iseg_coco_eval_t ev;
    ASSERT_OK(iseg_coco_eval_init(&ev, &ep, err, sizeof(err)));
    ASSERT_MSG(iseg_coco_eval_load_files(ev, gt, dt) == ISEG_STATUS_OK, "%s",
               iseg_coco_eval_last_error(ev));
    ASSERT_OK(iseg_coco_eval_run(ev));
    const double *st = iseg_coco_eval_stats(ev);
    ASSERT_NEAR(st[0], 1.0, 1e-12); /* AP: 0.99999... because of the precision eps */
    ASSERT_NEAR(st[1], 1.0, 1e-12);
    ASSERT_NEAR(st[8], 1.0, 1e-12); /* AR100 */
    iseg_coco_eval_free(ev);
    /* things only, compressed RLE strings; the dataset keeps crowd regions */
    yajl_val    g    = load_json(gt);
    const char *pa[] = {"annotations", NULL}, *pc[] = {"categories", NULL};
    yajl_val    anns = yajl_tree_get(g, pa, yajl_t_array);
    ASSERT(anns && anns->u.array.len > 0);
    for (size_t i = 0; i < anns->u.array.len; i++) {
        const char *ps[] = {"segmentation", "counts", NULL};
        ASSERT(yajl_tree_get(anns->u.array.values[i], ps, yajl_t_string));
        ASSERT_EQ_INT(jint(anns->u.array.values[i], "id"), (int64_t)i + 1);
    }
    yajl_val cats = yajl_tree_get(g, pc, yajl_t_array);
    for (size_t i = 0; i < cats->u.array.len; i++)
        ASSERT_EQ_INT(jint(cats->u.array.values[i], "isthing"), 1);
    yajl_tree_free(g);
}

TEST(convert_2ch_16bit_and_errors) {
    /* a hand-made panoptic image with a category > 255 -> a 16-bit 2-channel PNG */
    const char *dir = test_tmp_dir();
    char        pj[1024], pd[1024], path[1100], od[1024], rj[1024], rd[1024];
    bfmt(pj, sizeof(pj), "%s/p.json", dir);
    bfmt(pd, sizeof(pd), "%s/p", dir);
    bfmt(od, sizeof(od), "%s/2ch", dir);
    bfmt(rj, sizeof(rj), "%s/r.json", dir);
    bfmt(rd, sizeof(rd), "%s/r", dir);
    ASSERT(mkdir(pd, 0777) == 0);
    put_file(pj, "{\"images\": [{\"id\": 3, \"width\": 2, \"height\": 2, \"file_name\": \"q.jpg\"}],"
                 " \"annotations\": [{\"image_id\": 3, \"file_name\": \"q.png\", \"segments_info\":"
                 " [{\"id\": 70000, \"category_id\": 300, \"iscrowd\": 0}, {\"id\": 5, "
                 "\"category_id\": 1, \"iscrowd\": 1}, {\"id\": 6, \"category_id\": 1, "
                 "\"iscrowd\": 0}]}], \"categories\": [{\"id\": 1, \"isthing\": 1}, {\"id\": 300,"
                 " \"isthing\": 0}]}");
    struct iseg_image img = {0};
    char              err[512];
    ASSERT_OK(iseg_image_alloc(&img, 2, 2, 3, 8));
    const uint32_t ids[4] = {70000, 5, 6, 0};
    uint8_t       *px     = img.data;
    for (int i = 0; i < 4; i++) {
        px[3 * i]     = ids[i] & 255;
        px[3 * i + 1] = (ids[i] >> 8) & 255;
        px[3 * i + 2] = ids[i] >> 16;
    }
    bfmt(path, sizeof(path), "%s/q.png", pd);
    ASSERT_OK(iseg_png_write(path, &img, err, sizeof(err)));
    iseg_image_free(&img);
    struct iseg_panoptic_convert_params p = iseg_panoptic_convert_default_params();
    ASSERT_OK(iseg_panoptic_convert_to_2ch(&p, pj, pd, od, err, sizeof(err)));
    bfmt(path, sizeof(path), "%s/q.png", od);
    ASSERT_OK(iseg_png_read(path, &img, err, sizeof(err)));
    ASSERT(img.c == 2 && img.depth == 16);
    const uint16_t *v       = img.data;
    const uint16_t  want[8] = {300, 0, 1, 255, 1, 1, 0, 0};
    for (int i = 0; i < 8; i++) ASSERT_EQ_INT(v[i], want[i]);
    iseg_image_free(&img);
    ASSERT_OK(iseg_panoptic_convert_from_2ch(&p, od, pj, NULL, rj, rd, err, sizeof(err)));
    bfmt(path, sizeof(path), "%s/q.png", rd);
    uint32_t      *got     = read_ids(path, 2, 2);
    const uint32_t want2[] = {300000, 1255, 1001, 0};
    check_ids(got, want2, 2, 2);
    free(got);
    yajl_val    r    = load_json(rj);
    const char *pa[] = {"annotations", NULL};
    yajl_val    si   = yajl_tree_get(yajl_tree_get(r, pa, yajl_t_array)->u.array.values[0],
                                     (const char *[]){"segments_info", NULL}, yajl_t_array);
    ASSERT(si && si->u.array.len == 3); /* sorted by id: 1001, 1255 (crowd), 300000 */
    ASSERT_EQ_INT(jint(si->u.array.values[0], "id"), 1001);
    ASSERT_EQ_INT(jint(si->u.array.values[0], "iscrowd"), 0);
    ASSERT_EQ_INT(jint(si->u.array.values[1], "id"), 1255);
    ASSERT_EQ_INT(jint(si->u.array.values[1], "iscrowd"), 1);
    ASSERT_EQ_INT(jint(si->u.array.values[2], "area"), 1);
    yajl_tree_free(r);

    /* errors: an id in the PNG missing from segments_info; a 2-channel category unknown;
     * an instance id >= offset */
    char bj[1024], bd[1024];
    bfmt(bj, sizeof(bj), "%s/b.json", dir);
    bfmt(bd, sizeof(bd), "%s/bout", dir);
    put_file(bj, "{\"annotations\": [{\"image_id\": 3, \"file_name\": \"q.png\", "
                 "\"segments_info\": [{\"id\": 70000, \"category_id\": 300}]}], \"categories\": "
                 "[{\"id\": 1, \"isthing\": 1}, {\"id\": 300, \"isthing\": 0}]}");
    ASSERT_STATUS(iseg_panoptic_convert_to_2ch(&p, bj, pd, bd, err, sizeof(err)),
                  ISEG_STATUS_EFORMAT);
    ASSERT_STRCONTAINS(err, "segment id 5 (pixel x=1, y=0) is not in its segments_info");
    ASSERT(!exists(bd));
    put_file(bj, "{\"images\": [{\"id\": 3, \"file_name\": \"q.jpg\"}], \"categories\": "
                 "[{\"id\": 1, \"isthing\": 1}]}");
    ASSERT_STATUS(iseg_panoptic_convert_from_2ch(&p, od, bj, NULL, rj, bd, err, sizeof(err)),
                  ISEG_STATUS_EFORMAT);
    ASSERT_STRCONTAINS(err, "unknown category 300");
    ASSERT(!exists(bd));
    p.offset = 200;
    ASSERT_STATUS(iseg_panoptic_convert_from_2ch(&p, od, pj, NULL, rj, bd, err, sizeof(err)),
                  ISEG_STATUS_ELIMIT);
    ASSERT_STRCONTAINS(err, "instance id >= offset");
    ASSERT(!exists(bd));
}

/* fused output evaluates with `iseg panoptic eval` (the CLI, when it was built beside us):
 * ground truth = the expected result of the hand-made case, so PQ must be exactly 1 */
TEST(fuse_then_panoptic_eval) {
#ifndef ISEG_BINARY_DIR
    TEST_SKIP("needs the iseg binary (CMake build)");
#else
    char exe[1024];
    bfmt(exe, sizeof(exe), "%s/iseg", ISEG_BINARY_DIR);
    if (access(exe, X_OK) != 0) TEST_SKIP("%s not built", exe);
    const char *dir = test_tmp_dir();
    char res[1024], imgs[1024], cats[1024], sem[1024], conf[1024], oj[1024], od[1024];
    char gj[1024], gd[1024], path[1100], cmd[8192], pq[1100];
    make_case_files(dir, 2, res, imgs, cats, sem, conf);
    bfmt(oj, sizeof(oj), "%s/pred.json", dir);
    bfmt(od, sizeof(od), "%s/pred", dir);
    bfmt(gj, sizeof(gj), "%s/gt.json", dir);
    bfmt(gd, sizeof(gd), "%s/gt", dir);
    bfmt(pq, sizeof(pq), "%s/pq.json", dir);
    ASSERT(mkdir(gd, 0777) == 0);
    /* ground truth: WANT_IP for both images */
    for (int k = 0; k < 2; k++) {
        struct iseg_image img = {0};
        char              err[256];
        ASSERT_OK(iseg_image_alloc(&img, W, H, 3, 8));
        uint8_t *px = img.data;
        for (int i = 0; i < H * W; i++) {
            px[3 * i]     = WANT_IP[i] & 255;
            px[3 * i + 1] = (WANT_IP[i] >> 8) & 255;
            px[3 * i + 2] = WANT_IP[i] >> 16;
        }
        bfmt(path, sizeof(path), "%s/%c.png", gd, 'a' + k);
        ASSERT_OK(iseg_png_write(path, &img, err, sizeof(err)));
        iseg_image_free(&img);
    }
    char segs[1024] = "";
    for (int s = 0; s < 5; s++) {
        char one[200];
        bfmt(one, sizeof(one), "%s{\"id\": %u, \"category_id\": %lld, \"iscrowd\": 0, \"area\": %llu, "
                "\"bbox\": [%u, %u, %u, %u]}", s ? ", " : "", WSEG_IP[s].id,
                (long long)WSEG_IP[s].cat, (unsigned long long)WSEG_IP[s].area,
                WSEG_IP[s].bbox[0], WSEG_IP[s].bbox[1], WSEG_IP[s].bbox[2], WSEG_IP[s].bbox[3]);
        strcat(segs, one);
    }
    char gjs[4096];
    bfmt(gjs, sizeof(gjs), "{\"images\": [{\"id\": 1, \"width\": 6, \"height\": 4, \"file_name\": \"a.jpg\"},"
            " {\"id\": 2, \"width\": 6, \"height\": 4, \"file_name\": \"b.jpg\"}], \"annotations\":"
            " [{\"image_id\": 1, \"file_name\": \"a.png\", \"segments_info\": [%s]}, {\"image_id\":"
            " 2, \"file_name\": \"b.png\", \"segments_info\": [%s]}], \"categories\": %s}",
            segs, segs, CATS_JSON);
    put_file(gj, gjs);
    int n = snprintf(cmd, sizeof(cmd), "'%s' panoptic fuse --instances '%s' --semantic-dir '%s' --images "
             "'%s' --categories '%s' --out-json '%s' --out-dir '%s' --stuff-area 2 >/dev/null && "
             "'%s' panoptic eval --gt-json '%s' --gt-dir '%s' --pred-json '%s' --pred-dir '%s' "
             "--json '%s' >/dev/null", exe, res, sem, imgs, cats, oj, od, exe, gj, gd, oj, od, pq);
    ASSERT(n > 0 && n < (int)sizeof(cmd));
    int rc = system(cmd);
    if (rc != 0) {
        /* the evaluator may not be in this build yet */
        bfmt(cmd, sizeof(cmd), "'%s' panoptic eval --help >/dev/null 2>&1", exe);
        if (system(cmd) != 0) TEST_SKIP("iseg panoptic eval is not available");
        TEST_FAIL("fuse + eval failed (exit %d): %s", rc, cmd);
    }
    yajl_val    r    = load_json(pq);
    const char *pp[] = {"All", "pq", NULL}, *pn[] = {"All", "n", NULL};
    yajl_val    v    = yajl_tree_get(r, pp, yajl_t_number);
    ASSERT(v);
    ASSERT_EQ_DBL(YAJL_GET_DOUBLE(v), 1.0);
    ASSERT_EQ_INT(YAJL_GET_INTEGER(yajl_tree_get(r, pn, yajl_t_number)), 4); /* grass never occurs */
    yajl_tree_free(r);
#endif
}

TEST_LIST = {
    TEST_ENTRY(fuse_instance_priority),
    TEST_ENTRY(fuse_ties_keep_file_order),
    TEST_ENTRY(fuse_overlap_and_stuff_area),
    TEST_ENTRY(fuse_stuff_protected_confidence),
    TEST_ENTRY(fuse_stuff_protected_list),
    TEST_ENTRY(fuse_image_errors),
    TEST_ENTRY(fuse_policy_names),
    TEST_ENTRY(fuse_files_instance_priority),
    TEST_ENTRY(fuse_files_stuff_protected_and_threads),
    TEST_ENTRY(fuse_files_16bit_semantic),
    TEST_ENTRY(fuse_files_bad_inputs),
    TEST_ENTRY(convert_roundtrip_sample),
    TEST_ENTRY(convert_instances_sample_ap),
    TEST_ENTRY(convert_2ch_16bit_and_errors),
    TEST_ENTRY(fuse_then_panoptic_eval),
    TEST_END,
};
