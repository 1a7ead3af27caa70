/* fuzz_panoptic_json.c - libFuzzer target for the COCO panoptic JSON loader and the PQ
 * evaluator behind it.
 *
 * Input: byte 0 chooses the mode, the rest is JSON.
 *   bit 0: Boundary PQ;  bit 1: see below;  bits 2-3: n_workers - 1 (1..4).
 * If the rest holds a 0 byte, the part before it is the ground truth and the part after it the
 * prediction. Otherwise the rest is the prediction, evaluated against a fixed ground truth
 * (bit 1 clear), or the ground truth, evaluated with a fixed prediction (bit 1 set).
 *
 * Both are loaded with iseg_panoptic_eval_load_mem as "gt.json" and "pred.json" (one thread).
 * The PNG folder (made once in a temporary directory) holds "a.png" (ground truth, 6 x 4) and
 * "b.png" (prediction): inputs naming them are evaluated for real; other names give EIO.
 * Checked: every status is one the API documents for that call, errors leave a message, and a
 * loaded pair evaluates twice to the same JSON report.
 *
 * Run: clang -g -O1 -fsanitize=fuzzer,address,undefined -Iinclude -Isrc src/core/ *.c ...
 *      tests/fuzz/fuzz_panoptic_json.c -lyajl -lspng -lpthread -lm -o fuzz_panoptic_json
 *      ./fuzz_panoptic_json -max_len=4096 CORPUS tests/fuzz/corpus/fuzz_panoptic_json
 * Built with replay_main.c, this entry point replays the seed corpus and
 * tests/crashers/fuzz_panoptic_json/ as a regression test. */
#define _POSIX_C_SOURCE 200809L
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "iseg/image.h"
#include "iseg/panoptic.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#include "fuzz_check.h"

static const char FIXED_GT[] =
    "{\"images\": [{\"id\": 1, \"width\": 6, \"height\": 4}],\n"
    " \"categories\": [{\"id\": 1, \"name\": \"person\", \"isthing\": 1},\n"
    "                  {\"id\": 2, \"name\": \"sky\", \"isthing\": 0}],\n"
    " \"annotations\": [{\"image_id\": 1, \"file_name\": \"a.png\", \"segments_info\": [\n"
    "   {\"id\": 1, \"category_id\": 1, \"iscrowd\": 0, \"area\": 6},\n"
    "   {\"id\": 2, \"category_id\": 1, \"iscrowd\": 1, \"area\": 4},\n"
    "   {\"id\": 3, \"category_id\": 2, \"iscrowd\": 0, \"area\": 12}]}]}\n";

static const char FIXED_PRED[] =
    "{\"annotations\": [{\"image_id\": 1, \"file_name\": \"b.png\", \"segments_info\": [\n"
    "   {\"id\": 7, \"category_id\": 1}, {\"id\": 8, \"category_id\": 2},\n"
    "   {\"id\": 9, \"category_id\": 1}]}]}\n";

/* 6 x 4 maps: ground truth person 1, crowd 2, sky 3 and VOID; prediction 7, 8, 9 and VOID */
static const uint32_t GT_IDS[24]   = {1, 1, 1, 3, 3, 3, 1, 1, 1, 3, 3, 3,
                                      2, 2, 0, 3, 3, 3, 2, 2, 0, 3, 3, 3};
static const uint32_t PRED_IDS[24] = {7, 7, 7, 8, 8, 8, 7, 7, 8, 8, 8, 8,
                                      9, 9, 9, 8, 8, 0, 9, 9, 0, 8, 8, 8};

static char g_dir[256];

static void write_png(const char *name, const uint32_t *ids) {
    struct iseg_image img = {0};
    CHECK(iseg_image_alloc(&img, 6, 4, 3, 8) == ISEG_STATUS_OK);
    uint8_t *px = img.data;
    for (int i = 0; i < 24; i++) {
        px[3 * i]     = (uint8_t)(ids[i] & 255);
        px[3 * i + 1] = (uint8_t)(ids[i] >> 8 & 255);
        px[3 * i + 2] = (uint8_t)(ids[i] >> 16 & 255);
    }
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", g_dir, name);
    CHECK(iseg_png_write(path, &img, NULL, 0) == ISEG_STATUS_OK);
    iseg_image_free(&img);
}

static void remove_dir(void) {
    char path[512];
    snprintf(path, sizeof(path), "%s/a.png", g_dir);
    remove(path);
    snprintf(path, sizeof(path), "%s/b.png", g_dir);
    remove(path);
    rmdir(g_dir);
}

static void setup(void) {
    if (g_dir[0]) return;
    const char *tmp = getenv("TMPDIR");
    snprintf(g_dir, sizeof(g_dir), "%s/fuzz_panoptic.XXXXXX", tmp && *tmp ? tmp : "/tmp");
    CHECK(mkdtemp(g_dir) != NULL);
    write_png("a.png", GT_IDS);
    write_png("b.png", PRED_IDS);
    atexit(remove_dir);
}

static bool load_status_ok(enum iseg_status st) {
    return st == ISEG_STATUS_OK || st == ISEG_STATUS_EFORMAT || st == ISEG_STATUS_ENOMEM;
}

static bool run_status_ok(enum iseg_status st) {
    return st == ISEG_STATUS_OK || st == ISEG_STATUS_EFORMAT || st == ISEG_STATUS_EIO ||
           st == ISEG_STATUS_ESHAPE || st == ISEG_STATUS_ELIMIT || st == ISEG_STATUS_ENOMEM;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    setup();
    uint8_t     mode = data[0];
    const char *rest = (const char *)data + 1;
    size_t      n    = size - 1;
    const char *gt = FIXED_GT, *pred = FIXED_PRED;
    size_t      gn = sizeof(FIXED_GT) - 1, pn = sizeof(FIXED_PRED) - 1;
    const char *nul = memchr(rest, 0, n);
    if (nul) {
        gt   = rest;
        gn   = (size_t)(nul - rest);
        pred = nul + 1;
        pn   = n - gn - 1;
    } else if (mode & 2) {
        gt = rest;
        gn = n;
    } else {
        pred = rest;
        pn   = n;
    }
    struct iseg_panoptic_eval_params p = iseg_panoptic_eval_default_params();
    p.boundary                         = mode & 1;
    p.n_threads                        = 1;
    p.n_workers                        = 1 + (mode >> 2 & 3);
    iseg_panoptic_eval_t ev;
    CHECK(iseg_panoptic_eval_init(&ev, &p, NULL, 0) == ISEG_STATUS_OK);
    enum iseg_status st = iseg_panoptic_eval_load_mem(ev, gt, gn, "gt.json", g_dir, pred, pn,
                                                      "pred.json", g_dir);
    CHECK(load_status_ok(st));
    if (st != ISEG_STATUS_OK) {
        const char *msg = iseg_panoptic_eval_last_error(ev);
        CHECK(msg[0] && (strstr(msg, "gt.json") || strstr(msg, "pred.json")));
        iseg_panoptic_eval_free(ev);
        return 0;
    }
    st = iseg_panoptic_eval_run(ev);
    CHECK(run_status_ok(st));
    if (st != ISEG_STATUS_OK) {
        CHECK(iseg_panoptic_eval_last_error(ev)[0]);
        iseg_panoptic_eval_free(ev);
        return 0;
    }
    char *j1 = iseg_panoptic_eval_json(ev), *s = iseg_panoptic_eval_summary(ev);
    CHECK(j1 && s);
    for (int g = 0; g < ISEG_PANOPTIC_GROUP_COUNT; g++) {
        struct iseg_panoptic_result r;
        iseg_panoptic_eval_result(ev, (enum iseg_panoptic_group)g, &r);
        CHECK(r.n <= iseg_panoptic_eval_n_cats(ev));
    }
    CHECK(iseg_panoptic_eval_run(ev) == ISEG_STATUS_OK);
    char *j2 = iseg_panoptic_eval_json(ev);
    CHECK(j2 && strcmp(j1, j2) == 0);
    iseg_free(j1);
    iseg_free(j2);
    iseg_free(s);
    iseg_panoptic_eval_free(ev);
    return 0;
}
