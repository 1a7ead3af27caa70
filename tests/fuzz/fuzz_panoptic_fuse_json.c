/* fuzz_panoptic_fuse_json.c - libFuzzer target for the JSON readers of panoptic fusion and
 * conversion (src/panoptic/fuse_json.c) and the fusion of one image behind them.
 *
 * Input: byte 0 chooses the reader, the rest is JSON.
 *   byte0 % 4 == 0: categories (a list or {"categories"}); then a fusion prep with a protect
 *                   list taken from the first category's name;
 *   byte0 % 4 == 1: {"images"} (bit 2: sizes required, bit 3: file names required);
 *   byte0 % 4 == 2: a results list against two fixed images (7 x 5 and 3 x 3) and fixed
 *                   categories; the decoded masks are fused with both policies;
 *   byte0 % 4 == 3: panoptic {"annotations"}.
 * Checked: each status is one the readers document, an error leaves a message, a parsed value
 * re-serialises (iseg__fj_gen_value) to JSON that parses again, and fusion either succeeds
 * with segments that cover exactly the non-VOID pixels or fails with a message.
 *
 * Run: clang -g -O1 -fsanitize=fuzzer,address,undefined -Iinclude -Isrc <this file> (the sources
 * of src/core, src/rle, src/image and src/panoptic/fuse_*)
 * -lyajl -lspng -lm -lpthread; ./a.out -max_len=4096 CORPUS. Built with replay_main.c, this
 * entry point replays tests/crashers/fuzz_panoptic_fuse_json/ as a regression test. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "panoptic/fuse_impl.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#include "fuzz_check.h"

static const char FIXED_IMAGES[] =
    "{\"images\": [{\"id\": 1, \"width\": 7, \"height\": 5, \"file_name\": \"a.jpg\"},"
    " {\"id\": 2, \"width\": 3, \"height\": 3, \"file_name\": \"b.jpg\"}]}";
static const char FIXED_CATS[] =
    "[{\"id\": 1, \"name\": \"person\", \"isthing\": 1}, {\"id\": 2, \"name\": \"car\", "
    "\"isthing\": 1}, {\"id\": 3, \"name\": \"sky\", \"isthing\": 0}, {\"id\": 4, \"name\": "
    "\"road\", \"isthing\": 0}]";

static bool status_ok(enum iseg_status st) {
    return st == ISEG_STATUS_OK || st == ISEG_STATUS_EFORMAT || st == ISEG_STATUS_ESHAPE ||
           st == ISEG_STATUS_ELIMIT || st == ISEG_STATUS_ENOMEM || st == ISEG_STATUS_EINVAL;
}

static void check_reserialise(yajl_val v) {
    yajl_gen g = iseg__fj_gen_new();
    CHECK(g);
    CHECK(iseg__fj_gen_value(g, v));
    const unsigned char *buf;
    size_t               len;
    yajl_gen_get_buf(g, &buf, &len);
    yajl_val w = NULL;
    char     err[256];
    CHECK(iseg__fj_parse((const char *)buf, len, "re", &w, err, sizeof(err)) == ISEG_STATUS_OK);
    yajl_tree_free(w);
    yajl_gen_free(g);
}

static void fuse_results(const struct iseg__fj_image *im, const size_t *order, size_t n_im,
                         const struct iseg__fj_cats *cats, const struct iseg__fj_result *r,
                         size_t n_r, uint8_t mode) {
    for (int pol = 0; pol < 2; pol++) {
        struct iseg_fuse_params p = iseg_fuse_default_params();
        p.policy                  = pol ? ISEG_FUSE_STUFF_PROTECTED : ISEG_FUSE_INSTANCE_PRIORITY;
        p.stuff_area              = mode & 8 ? 0 : 3;
        p.overlap_thresh          = mode & 16 ? 0 : 0.5;
        p.protect                 = mode & 32 ? "road" : NULL;
        struct iseg__fuse_prep *pp = NULL;
        char                    err[512];
        CHECK(iseg__fuse_prep_init(&pp, &p, cats->v, cats->n, err, sizeof(err)) ==
              ISEG_STATUS_OK);
        for (size_t i = 0; i < n_im; i++) {
            size_t                     npx = (size_t)im[i].w * im[i].h, n_in = 0;
            uint16_t                   sem[64];
            uint8_t                    conf[64];
            uint32_t                   ids[64];
            struct iseg_fuse_instance  in[64];
            struct iseg_fuse_segment  *segs = NULL;
            size_t                     n_segs = 0;
            struct iseg_fuse_summary   cnt;
            CHECK(npx <= 64);
            for (size_t k = 0; k < npx; k++) {
                sem[k]  = (uint16_t)(k % 6); /* 0 and 5 are no category, 1, 2 things */
                conf[k] = (uint8_t)(k * 37);
            }
            for (size_t k = 0; k < n_r && n_in < 64; k++)
                if (r[k].img == i && r[k].mask.cnts)
                    in[n_in++] = (struct iseg_fuse_instance){r[k].category_id, r[k].score,
                                                             &r[k].mask};
            enum iseg_status st = iseg__fuse_run_image(pp, in, n_in, sem, conf, im[i].h, im[i].w,
                                                       ids, &segs, &n_segs, &cnt, err,
                                                       sizeof(err));
            CHECK(st == ISEG_STATUS_OK);
            uint64_t covered = 0, n_void = 0;
            for (size_t k = 0; k < n_segs; k++) covered += segs[k].area;
            for (size_t k = 0; k < npx; k++) n_void += ids[k] == 0;
            CHECK(covered + n_void == npx);
            iseg_free(segs);
        }
        iseg__fuse_prep_free(pp);
        (void)order;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    uint8_t     mode = data[0];
    const char *json = (const char *)data + 1;
    size_t      n    = size - 1;
    char        err[512];
    yajl_val    root = NULL;
    err[0]           = 0;
    enum iseg_status st = iseg__fj_parse(json, n, "fuzz.json", &root, err, sizeof(err));
    CHECK(st == ISEG_STATUS_OK || st == ISEG_STATUS_EFORMAT || st == ISEG_STATUS_ENOMEM);
    if (st != ISEG_STATUS_OK) {
        CHECK(strstr(err, "fuzz.json") != NULL);
        return 0;
    }
    check_reserialise(root);
    switch (mode % 4) {
    case 0: {
        struct iseg__fj_cats c = {0};
        st                     = iseg__fj_categories(root, "fuzz.json", &c, err, sizeof(err));
        CHECK(status_ok(st));
        if (st == ISEG_STATUS_OK) {
            for (size_t k = 0; k < c.n; k++) CHECK(iseg__fj_cat_find(&c, c.v[k].id) == k);
            struct iseg_fuse_params p = iseg_fuse_default_params();
            p.policy                  = ISEG_FUSE_STUFF_PROTECTED;
            p.protect                 = c.n && c.v[0].name ? c.v[0].name : "1";
            struct iseg__fuse_prep *pp = NULL;
            st = iseg__fuse_prep_init(&pp, &p, c.v, c.n, err, sizeof(err));
            CHECK(st == ISEG_STATUS_OK || st == ISEG_STATUS_EINVAL);
            iseg__fuse_prep_free(pp);
        } else {
            CHECK(err[0]);
        }
        iseg__fj_cats_free(&c);
        break;
    }
    case 1: {
        struct iseg__fj_image *im    = NULL;
        size_t                *order = NULL, n_im = 0;
        st = iseg__fj_images(root, "fuzz.json", mode & 4, mode & 8, &im, &order, &n_im, err,
                             sizeof(err));
        CHECK(status_ok(st));
        if (st == ISEG_STATUS_OK)
            for (size_t k = 0; k < n_im; k++)
                CHECK(iseg__fj_image_find(im, order, n_im, im[k].id) == k);
        else CHECK(err[0]);
        iseg__fj_images_free(im, order, n_im);
        break;
    }
    case 2: {
        yajl_val               ri = NULL, rc = NULL;
        struct iseg__fj_image *im = NULL;
        size_t                *order = NULL, n_im = 0, n_r = 0;
        struct iseg__fj_cats   c = {0};
        struct iseg__fj_result *r = NULL;
        CHECK(iseg__fj_parse(FIXED_IMAGES, strlen(FIXED_IMAGES), "i", &ri, err, sizeof(err)) ==
              ISEG_STATUS_OK);
        CHECK(iseg__fj_parse(FIXED_CATS, strlen(FIXED_CATS), "c", &rc, err, sizeof(err)) ==
              ISEG_STATUS_OK);
        CHECK(iseg__fj_images(ri, "i", true, true, &im, &order, &n_im, err, sizeof(err)) ==
              ISEG_STATUS_OK);
        CHECK(iseg__fj_categories(rc, "c", &c, err, sizeof(err)) == ISEG_STATUS_OK);
        st = iseg__fj_results(root, "fuzz.json", im, order, n_im, &c, mode & 4 ? 0.0 : 0.5, &r,
                              &n_r, err, sizeof(err));
        CHECK(status_ok(st));
        if (st == ISEG_STATUS_OK) fuse_results(im, order, n_im, &c, r, n_r, mode);
        else CHECK(err[0]);
        iseg__fj_results_free(r, n_r);
        iseg__fj_cats_free(&c);
        iseg__fj_images_free(im, order, n_im);
        yajl_tree_free(ri);
        yajl_tree_free(rc);
        break;
    }
    default: {
        struct iseg__fj_ann *a   = NULL;
        size_t               n_a = 0;
        st = iseg__fj_annotations(root, "fuzz.json", &a, &n_a, err, sizeof(err));
        CHECK(status_ok(st));
        if (st != ISEG_STATUS_OK) CHECK(err[0]);
        iseg__fj_annotations_free(a, n_a);
        break;
    }
    }
    yajl_tree_free(root);
    return 0;
}
