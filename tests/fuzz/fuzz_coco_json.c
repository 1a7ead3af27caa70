/* fuzz_coco_json.c - libFuzzer target for the COCO JSON loader and the evaluator behind it.
 *
 * Input: byte 0 chooses the evaluation, the rest is JSON.
 *   bits 0-1: IoU type (0 segm, 1 bbox, 2 boundary, 3 segm);  bit 2: see below;
 *   bit 4: use_cats = false;  bit 5: Hungarian matching;  bit 6: keep_matches;
 *   bit 7: three IoU thresholds {0, 0.5, 1} instead of COCO's ten.
 * If the rest holds a 0 byte, the part before it is the ground truth and the part after it the
 * results. Otherwise the rest is the results, evaluated against a fixed small ground truth
 * (bit 2 clear), or the ground truth, evaluated with fixed small results (bit 2 set).
 *
 * Both are loaded with iseg_coco_eval_load_mem as "gt.json" and "dt.json" (one thread), and
 * evaluated when loading succeeds. Checked: every status is one the API documents for that
 * call; an error leaves a message naming gt.json or dt.json; a loaded pair evaluates without
 * error, twice with bit-identical results; the 12 stats, every precision and recall, and the
 * per-category results lie in [-1, 1]; the summary and the JSON report are produced.
 *
 * Memory: masks are run-length encoded, but polygon rasterisation, boundary bands and IoU
 * scale with the image size, which the loader allows up to 1000000 x 1000000 (and masks up to
 * 2^31 pixels). To keep each input in the fuzzer's memory and time budget, inputs holding any
 * JSON number (outside strings) of magnitude >= 10000 are skipped: widths, heights, RLE sizes
 * and coordinates then stay below 10000. The library's own limits are covered by unit tests.
 *
 * Run: clang -g -O1 -fsanitize=fuzzer,address,undefined ... ; ./fuzz_coco_json -max_len=4096
 * CORPUS tests/fuzz/corpus/fuzz_coco_json (a -dict with the COCO keys helps: yajl itself is not
 * instrumented). Built with replay_main.c, this entry point replays the seed corpus and
 * tests/crashers/fuzz_coco_json/ as a regression test. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "iseg/coco.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#include "fuzz_check.h"

#define MAX_MAGNITUDE 10000.0

/* Two images, two categories: polygons, an uncompressed RLE crowd region and a compressed RLE
 * (whose string "\1<\1" needs JSON escapes). */
static const char FIXED_GT[] =
    "{\"images\": [{\"id\": 1, \"width\": 40, \"height\": 30}, {\"id\": 2, \"width\": 10, "
    "\"height\": 10}],\n"
    " \"categories\": [{\"id\": 1, \"name\": \"cat\"}, {\"id\": 2, \"name\": \"dog\"}],\n"
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

static const char FIXED_DT[] =
    "[{\"image_id\": 1, \"category_id\": 1, \"score\": 0.9, \"bbox\": [5, 5, 14, 10],\n"
    "  \"segmentation\": [[5, 5, 19, 5, 19, 15, 5, 15]]},\n"
    " {\"image_id\": 1, \"category_id\": 2, \"score\": 0.7, \"bbox\": [22, 3, 10, 18],\n"
    "  \"segmentation\": [[22, 3, 32, 3, 32, 21, 22, 21]]},\n"
    " {\"image_id\": 2, \"category_id\": 2, \"score\": 0.6, \"bbox\": [4, 0, 2, 10],\n"
    "  \"segmentation\": {\"size\": [10, 10], \"counts\": \"\\\\1<\\\\1\"}}]\n";

/* True if some JSON number outside strings has magnitude >= MAX_MAGNITUDE (or is too long to
 * judge). Strings are tracked as JSON lexes them, so the numbers seen here are those the parser
 * sees, up to its first syntax error. */
static bool has_big_number(const char *s, size_t n) {
    bool in_str = false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (in_str) {
            if (c == '\\') i++;
            else if (c == '"') in_str = false;
            continue;
        }
        if (c == '"') {
            in_str = true;
            continue;
        }
        if (!(c == '-' || (c >= '0' && c <= '9'))) continue;
        size_t j = i;
        while (j < n && ((s[j] >= '0' && s[j] <= '9') || s[j] == '-' || s[j] == '+' ||
                         s[j] == '.' || s[j] == 'e' || s[j] == 'E'))
            j++;
        char tok[320];
        if (j - i >= sizeof(tok)) return true;
        memcpy(tok, s + i, j - i);
        tok[j - i] = 0;
        double v   = strtod(tok, NULL);
        if (!(v < MAX_MAGNITUDE && v > -MAX_MAGNITUDE)) return true;
        i = j - 1;
    }
    return false;
}

static bool valid_status(enum iseg_status st) {
    return st <= ISEG_STATUS_OK && st >= ISEG_STATUS_EINTERNAL;
}

static void check_error(iseg_coco_eval_t ev) {
    const char *msg = iseg_coco_eval_last_error(ev);
    CHECK(msg && msg[0]);
    CHECK(strstr(msg, "gt.json") || strstr(msg, "dt.json"));
}

static bool in_unit(double v) { return v >= -1.0 && v <= 1.0; }

static void check_results(iseg_coco_eval_t ev) {
    const double *s = iseg_coco_eval_stats(ev);
    for (int i = 0; i < ISEG_COCO_N_STATS; i++) CHECK(in_unit(s[i]));
    size_t T = iseg_coco_eval_n_iou_thrs(ev), K = iseg_coco_eval_n_cats(ev);
    for (size_t t = 0; t < T; t++)
        for (size_t k = 0; k < K; k++)
            for (size_t a = 0; a < ISEG_COCO_N_AREA; a++)
                for (size_t m = 0; m < ISEG_COCO_N_MAXDET; m++) {
                    CHECK(in_unit(iseg_coco_eval_recall(ev, t, k, a, m)));
                    const double *p = iseg_coco_eval_precision(ev, t, k, a, m);
                    CHECK(p);
                    for (size_t r = 0; r < ISEG_COCO_N_REC; r++) CHECK(in_unit(p[r]));
                }
    for (size_t k = 0; k < K; k++) {
        struct iseg_coco_cat_result cr;
        iseg_coco_eval_cat_result(ev, k, &cr);
        CHECK(cr.name);
        CHECK(in_unit(cr.ap) && in_unit(cr.ap50) && in_unit(cr.ap75) && in_unit(cr.ar));
    }
    char *sum = iseg_coco_eval_summary(ev);
    char *js  = iseg_coco_eval_json(ev);
    CHECK(sum && js);
    CHECK(strstr(js, "\"stats\"") != NULL);
    iseg_free(sum);
    iseg_free(js);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    uint8_t     ctrl = data[0];
    const char *in   = (const char *)data + 1;
    size_t      n    = size - 1;
    if (has_big_number(in, n)) return 0;

    const char *gt, *dt;
    size_t      gt_len, dt_len;
    const char *nul = memchr(in, 0, n);
    if (nul) {
        gt     = in;
        gt_len = (size_t)(nul - in);
        dt     = nul + 1;
        dt_len = n - gt_len - 1;
    } else if (ctrl & 4) {
        gt     = in;
        gt_len = n;
        dt     = FIXED_DT;
        dt_len = sizeof(FIXED_DT) - 1;
    } else {
        gt     = FIXED_GT;
        gt_len = sizeof(FIXED_GT) - 1;
        dt     = in;
        dt_len = n;
    }

    struct iseg_coco_eval_params p = iseg_coco_eval_default_params();
    p.iou_type                     = (enum iseg_iou_type)((ctrl & 3) % ISEG_IOU_COUNT);
    p.n_threads                    = 1;
    p.use_cats                     = !(ctrl & 0x10);
    p.matching     = (ctrl & 0x20) ? ISEG_MATCHING_HUNGARIAN : ISEG_MATCHING_COCO;
    p.keep_matches = (ctrl & 0x40) != 0;
    if (ctrl & 0x80) {
        p.n_iou_thrs  = 3;
        p.iou_thrs[0] = 0.0;
        p.iou_thrs[1] = 0.5;
        p.iou_thrs[2] = 1.0;
    }
    iseg_coco_eval_t ev;
    char             err[256];
    CHECK(iseg_coco_eval_init(&ev, &p, err, sizeof(err)) == ISEG_STATUS_OK);

    enum iseg_status st = iseg_coco_eval_load_mem(ev, gt, gt_len, "gt.json", dt, dt_len,
                                                  "dt.json");
    CHECK(valid_status(st));
    if (st != ISEG_STATUS_OK) {
        /* data errors only: the arguments were fine and memory is plentiful */
        CHECK(st == ISEG_STATUS_EFORMAT || st == ISEG_STATUS_ELIMIT);
        check_error(ev);
        /* nothing is loaded after a failed load */
        CHECK(iseg_coco_eval_run(ev) == ISEG_STATUS_EBADSTATE);
        iseg_coco_eval_free(ev);
        return 0;
    }
    CHECK(iseg_coco_eval_last_error(ev)[0] == 0);

    st = iseg_coco_eval_run(ev);
    CHECK(st == ISEG_STATUS_OK);
    check_results(ev);
    double first[ISEG_COCO_N_STATS];
    memcpy(first, iseg_coco_eval_stats(ev), sizeof(first));
    /* a second run starts from scratch and gives the same numbers */
    CHECK(iseg_coco_eval_run(ev) == ISEG_STATUS_OK);
    CHECK(memcmp(first, iseg_coco_eval_stats(ev), sizeof(first)) == 0);
    iseg_coco_eval_free(ev);
    return 0;
}
