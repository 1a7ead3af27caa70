/* fuzz_dataset.c - libFuzzer target for the training dataset's conversion layer: the
 * images' file-name pass, the structural checks, every annotation's mask conversion and
 * validation (the JSON itself goes through iseg__coco_parse, which fuzz_coco_json covers), and
 * the sample builder behind iseg_dataset_load.
 *
 * Input: byte 0 holds flags (bit 0: keep images without instances; bit 1: two conversion
 * threads), the rest is the JSON, opened with iseg_dataset_open_mem as "fuzz.json" without
 * touching the disk (check_files = false). Every kept image of at most 2^16 pixels is then built
 * into a sample from a zero image of the JSON's size (and from one of the wrong size: ESHAPE).
 * Checked: only documented statuses; an error names fuzz.json; the report adds up; labels lie
 * in 1..K; every sample validates, its masks are non-empty, each box is the tight box of its
 * mask and lies in the image.
 *
 * As fuzz_coco_json, inputs holding a JSON number of magnitude >= 10000 are skipped, so that
 * sizes and coordinates stay small.
 *
 * Run: ./fuzz_dataset -max_len=4096 tests/fuzz/corpus/fuzz_dataset. Built with replay_main.c,
 * this entry point replays the seed corpus as a regression test. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "iseg/dataset.h"
#include "iseg/image.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* src/train/dataset.c: the sample of kept image i from a decoded image (consumed). */
enum iseg_status iseg__dataset_build_sample(iseg_dataset_t ds, size_t i, struct iseg_image *img,
                                            struct iseg_sample *out, char *err, size_t errlen);

#include "fuzz_check.h"

/* Any number outside strings with 5 or more integer digits. */
static int has_big_number(const char *s, size_t n) {
    int in_str = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (in_str) {
            if (c == '\\') i++;
            else if (c == '"') in_str = 0;
            continue;
        }
        if (c == '"') {
            in_str = 1;
            continue;
        }
        if (c >= '0' && c <= '9') {
            size_t j = i;
            while (j < n && s[j] >= '0' && s[j] <= '9') j++;
            if (j - i >= 5) return 1;
            if (j < n && (s[j] == 'e' || s[j] == 'E')) return 1;
            /* skip the fraction */
            if (j < n && s[j] == '.') {
                j++;
                while (j < n && s[j] >= '0' && s[j] <= '9') j++;
                if (j < n && (s[j] == 'e' || s[j] == 'E')) return 1;
            }
            i = j - 1;
        }
    }
    return 0;
}

static void check_sample(iseg_dataset_t ds, size_t i) {
    uint32_t w = iseg_dataset_image_width(ds, i), h = iseg_dataset_image_height(ds, i);
    if ((uint64_t)w * h > (1u << 16)) return;
    char               err[512];
    struct iseg_image  img = {0};
    struct iseg_sample s;
    /* the wrong size first */
    CHECK(iseg_image_alloc(&img, w + 1, h, 1, 8) == ISEG_STATUS_OK);
    CHECK(iseg__dataset_build_sample(ds, i, &img, &s, err, sizeof(err)) == ISEG_STATUS_ESHAPE);
    CHECK(img.data == NULL && s.n == 0 && s.image.data == NULL && strstr(err, "decoded size"));
    CHECK(iseg_image_alloc(&img, w, h, 1, 16) == ISEG_STATUS_OK);
    enum iseg_status st = iseg__dataset_build_sample(ds, i, &img, &s, err, sizeof(err));
    CHECK(img.data == NULL);
    if (st == ISEG_STATUS_ENOMEM) return;
    CHECK(st == ISEG_STATUS_OK);
    CHECK(iseg_sample_validate(&s) == ISEG_STATUS_OK);
    CHECK(s.image.c == 3 && s.image.depth == 8 && s.image.w == w && s.image.h == h);
    CHECK(s.n == iseg_dataset_num_instances(ds, i));
    size_t k_max = iseg_dataset_num_classes(ds);
    for (size_t k = 0; k < s.n; k++) {
        const struct iseg_instance *in = &s.inst[k];
        CHECK(in->label >= 1 && (size_t)in->label <= k_max);
        CHECK(iseg_rle_area(&in->mask) > 0);
        double bb[4];
        iseg_rle_to_bbox(&in->mask, bb);
        CHECK(in->box[0] == (float)bb[0] && in->box[1] == (float)bb[1]);
        CHECK(in->box[2] == (float)(bb[0] + bb[2]) && in->box[3] == (float)(bb[1] + bb[3]));
        CHECK(in->box[0] >= 0 && in->box[1] >= 0 && in->box[2] <= (float)w &&
              in->box[3] <= (float)h && in->box[2] > in->box[0] && in->box[3] > in->box[1]);
    }
    iseg_sample_free(&s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    uint8_t     flags = data[0];
    const char *json  = (const char *)data + 1;
    size_t      len   = size - 1;
    if (has_big_number(json, len)) return 0;
    struct iseg_dataset_params p = iseg_dataset_default_params();
    p.check_files                = false;
    p.skip_empty_images          = !(flags & 1);
    p.n_threads                  = flags & 2 ? 2 : 1;
    iseg_dataset_t   ds          = NULL;
    char             err[1024];
    err[0]                       = 0;
    enum iseg_status st = iseg_dataset_open_mem(&ds, "fuzz.json", len ? json : "", len, "imgs",
                                                &p, err, sizeof(err));
    if (st != ISEG_STATUS_OK) {
        CHECK(st == ISEG_STATUS_EFORMAT || st == ISEG_STATUS_ELIMIT || st == ISEG_STATUS_ENOMEM);
        CHECK(ds == NULL);
        CHECK(strncmp(err, "fuzz.json", 9) == 0);
        return 0;
    }
    const struct iseg_dataset_report *r = iseg_dataset_report(ds);
    size_t n = iseg_dataset_size(ds), dropped = 0, total = 0;
    CHECK(r->n_images == n && n <= r->n_images_json);
    CHECK(r->n_categories == iseg_dataset_num_classes(ds));
    for (int k = ISEG_DATA_CROWD; k < ISEG_DATA_COUNT; k++) dropped += r->count[k];
    CHECK(r->count[ISEG_DATA_MISSING_IMAGE] == 0);
    CHECK(r->count[ISEG_DATA_EMPTY_IMAGE] + n == r->n_images_json);
    for (size_t i = 0; i < n; i++) {
        size_t ni = iseg_dataset_num_instances(ds, i);
        CHECK(ni > 0 || !p.skip_empty_images);
        CHECK(iseg_dataset_file_name(ds, i) != NULL);
        if (i) CHECK(iseg_dataset_image_id(ds, i - 1) < iseg_dataset_image_id(ds, i));
        total += ni;
    }
    CHECK(total == r->n_instances);
    /* with every image kept, every annotation is an instance or a dropped one */
    if (!p.skip_empty_images) CHECK(total + dropped == r->n_annotations_json);
    for (size_t k = 1; k <= iseg_dataset_num_classes(ds); k++) {
        CHECK(iseg_dataset_class_name(ds, k) != NULL);
        if (k > 1) CHECK(iseg_dataset_category_id(ds, k - 1) < iseg_dataset_category_id(ds, k));
    }
    char   text[512];
    size_t need = iseg_dataset_report_format(r, text, sizeof(text));
    CHECK(strlen(text) == (need < sizeof(text) ? need : sizeof(text) - 1));
    for (size_t i = 0; i < n && i < 8; i++) check_sample(ds, i);
    iseg_dataset_free(ds);
    return 0;
}
