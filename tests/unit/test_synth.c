/* test_synth.c - synthetic nuclei: determinism with a seed, instance masks (disjoint,
 * canonical, area >= ISEG_SYNTH_MIN_AREA, tight boxes, label 1, counts), contrast of nuclei
 * against the background in both styles, parameter errors, and a 3-image COCO dataset written
 * by iseg_synth_dataset_write (what `iseg synth --out` calls) read back by iseg_dataset_open. */
#include "test.h"

#include "iseg/dataset.h"
#include "iseg/synth.h"

static void gen(struct iseg_sample *s, const struct iseg_synth_params *p, uint64_t seed) {
    struct iseg_rng rng;
    iseg_rng_seed(&rng, seed);
    ASSERT_OK(iseg_synth_nuclei(s, p, &rng));
}

static bool same_sample(const struct iseg_sample *a, const struct iseg_sample *b) {
    if (a->n != b->n || a->image.w != b->image.w || a->image.h != b->image.h) return false;
    if (memcmp(a->image.data, b->image.data, iseg_image_nbytes(&a->image)) != 0) return false;
    for (size_t i = 0; i < a->n; i++) {
        const struct iseg_rle *ra = &a->inst[i].mask, *rb = &b->inst[i].mask;
        if (ra->m != rb->m || memcmp(ra->cnts, rb->cnts, ra->m * sizeof(*ra->cnts)) != 0)
            return false;
        if (memcmp(a->inst[i].box, b->inst[i].box, sizeof(a->inst[i].box)) != 0) return false;
    }
    return true;
}

TEST(synth_deterministic) {
    struct iseg_synth_params p = iseg_synth_default_params();
    for (int style = 0; style < ISEG_SYNTH_STYLE_COUNT; style++) {
        p.style                = (enum iseg_synth_style)style;
        struct iseg_sample a   = {0}, b = {0}, c = {0};
        gen(&a, &p, 5);
        gen(&b, &p, 5);
        gen(&c, &p, 6);
        ASSERT(a.n > 0);
        ASSERT_MSG(same_sample(&a, &b), "%s: same seed gave different samples",
                   iseg_synth_style_name(p.style));
        ASSERT_MSG(memcmp(a.image.data, c.image.data, iseg_image_nbytes(&a.image)) != 0,
                   "%s: seeds 5 and 6 gave the same image", iseg_synth_style_name(p.style));
        iseg_sample_free(&a);
        iseg_sample_free(&b);
        iseg_sample_free(&c);
    }
}

/* every instance: valid canonical mask, >= ISEG_SYNTH_MIN_AREA pixels, not shared with another
 * instance, box = tight box, label 1 */
static void check_instances(const struct iseg_sample *s) {
    uint32_t W = s->image.w, H = s->image.h;
    ASSERT_OK(iseg_sample_validate(s));
    uint8_t *owner = calloc((size_t)W * H, 1), *bm = malloc((size_t)W * H);
    ASSERT(owner && bm);
    for (size_t i = 0; i < s->n; i++) {
        const struct iseg_instance *in = &s->inst[i];
        ASSERT_EQ_INT(in->label, 1);
        ASSERT_OK(iseg_rle_decode(bm, &in->mask));
        uint64_t area = 0;
        for (size_t k = 0; k < (size_t)W * H; k++) {
            if (!bm[k]) continue;
            ASSERT_MSG(!owner[k], "instance %zu shares pixel %zu with an earlier one", i, k);
            owner[k] = 1;
            area++;
        }
        ASSERT_EQ_U64(area, iseg_rle_area(&in->mask));
        ASSERT_MSG(area >= ISEG_SYNTH_MIN_AREA, "instance %zu has %llu pixels", i,
                   (unsigned long long)area);
        struct iseg_rle re = {0};
        ASSERT_OK(iseg_rle_encode(&re, bm, H, W));
        ASSERT_EQ_U64(re.m, in->mask.m);
        ASSERT(memcmp(re.cnts, in->mask.cnts, re.m * sizeof(*re.cnts)) == 0);
        iseg_rle_free(&re);
        double bb[4];
        iseg_rle_to_bbox(&in->mask, bb);
        ASSERT_EQ_DBL(in->box[0], bb[0]);
        ASSERT_EQ_DBL(in->box[1], bb[1]);
        ASSERT_EQ_DBL(in->box[2], bb[0] + bb[2]);
        ASSERT_EQ_DBL(in->box[3], bb[1] + bb[3]);
    }
    free(bm);
    free(owner);
}

TEST(synth_instances) {
    struct iseg_synth_params p = iseg_synth_default_params();
    for (uint64_t seed = 0; seed < 6; seed++) {
        p.style = seed & 1 ? ISEG_SYNTH_STYLE_BRIGHTFIELD : ISEG_SYNTH_STYLE_FLUORESCENCE;
        struct iseg_sample s = {0};
        gen(&s, &p, seed);
        check_instances(&s);
        /* the default image is roomy: no nucleus is skipped or dropped */
        ASSERT_MSG(s.n >= p.n_min && s.n <= p.n_max, "seed %llu: %zu nuclei, want %u..%u",
                   (unsigned long long)seed, s.n, p.n_min, p.n_max);
        iseg_sample_free(&s);
    }
    /* crowded and clustered, with overlap allowed: fewer may come out, never more */
    p              = iseg_synth_default_params();
    p.width        = 96;
    p.height       = 64;
    p.n_min        = 30;
    p.n_max        = 60;
    p.overlap      = 0.5;
    p.cluster      = 1.0;
    p.radius_min   = 1.0;
    struct iseg_sample s = {0};
    gen(&s, &p, 11);
    check_instances(&s);
    ASSERT(s.n <= p.n_max);
    iseg_sample_free(&s);
    /* exact counts, and no nucleus at all */
    p       = iseg_synth_default_params();
    p.n_min = p.n_max = 7;
    gen(&s, &p, 3);
    ASSERT_EQ_INT(s.n, 7);
    iseg_sample_free(&s);
    p.n_min = p.n_max = 0;
    gen(&s, &p, 3);
    ASSERT_EQ_INT(s.n, 0);
    ASSERT(s.image.data);
    iseg_sample_free(&s);
}

/* mean of channel c (or of all three when c < 0) over nucleus or background pixels */
static void means(const struct iseg_sample *s, int c, double *nuc, double *bg) {
    uint32_t W = s->image.w, H = s->image.h;
    uint8_t *in = calloc((size_t)W * H, 1), *bm = malloc((size_t)W * H);
    ASSERT(in && bm);
    for (size_t i = 0; i < s->n; i++) {
        ASSERT_OK(iseg_rle_decode(bm, &s->inst[i].mask));
        for (size_t k = 0; k < (size_t)W * H; k++) in[k] |= bm[k];
    }
    const uint8_t *px = s->image.data;
    double         sum[2] = {0, 0}, cnt[2] = {0, 0};
    for (uint32_t y = 0; y < H; y++)
        for (uint32_t x = 0; x < W; x++) {
            const uint8_t *q = px + ((size_t)y * W + x) * 3;
            double         v = c < 0 ? (q[0] + q[1] + q[2]) / 3.0 : q[c];
            int            f = in[(size_t)x * H + y]; /* masks are column-major */
            sum[f] += v;
            cnt[f] += 1;
        }
    ASSERT(cnt[0] > 0 && cnt[1] > 0);
    *bg  = sum[0] / cnt[0];
    *nuc = sum[1] / cnt[1];
    free(bm);
    free(in);
}

TEST(synth_contrast) {
    struct iseg_synth_params p = iseg_synth_default_params();
    for (uint64_t seed = 0; seed < 4; seed++) {
        struct iseg_sample s = {0};
        double             nuc, bg;
        p.style = ISEG_SYNTH_STYLE_FLUORESCENCE;
        gen(&s, &p, seed);
        means(&s, -1, &nuc, &bg);
        ASSERT_MSG(nuc > bg + 60, "fluorescence: nuclei %.1f, background %.1f", nuc, bg);
        ASSERT_MSG(bg < 60, "fluorescence: background %.1f is not dark", bg);
        const uint8_t *px = s.image.data;
        for (size_t k = 0; k < (size_t)s.image.w * s.image.h; k++)
            ASSERT(px[3 * k] == px[3 * k + 1] && px[3 * k] == px[3 * k + 2]);
        iseg_sample_free(&s);

        p.style = ISEG_SYNTH_STYLE_BRIGHTFIELD;
        gen(&s, &p, seed);
        means(&s, -1, &nuc, &bg);
        ASSERT_MSG(nuc < bg - 60, "brightfield: nuclei %.1f, background %.1f", nuc, bg);
        ASSERT_MSG(bg > 180, "brightfield: background %.1f is not light", bg);
        /* purple: more blue than green inside nuclei */
        double b_nuc, g_nuc, dummy;
        means(&s, 2, &b_nuc, &dummy);
        means(&s, 1, &g_nuc, &dummy);
        ASSERT_MSG(b_nuc > g_nuc + 20, "brightfield nuclei: blue %.1f, green %.1f", b_nuc, g_nuc);
        iseg_sample_free(&s);
    }
}

TEST(synth_bad_params) {
    struct iseg_synth_params d = iseg_synth_default_params(), p;
    ASSERT_OK(iseg_synth_params_check(&d, NULL, 0));
    struct iseg_synth_params bad[12];
    int                      n = 0;
    p = d, p.width = 4, bad[n++] = p;
    p = d, p.height = 20000, bad[n++] = p;
    p = d, p.n_min = 9, p.n_max = 3, bad[n++] = p;
    p = d, p.n_max = 10001, bad[n++] = p;
    p = d, p.radius_min = 0.5, bad[n++] = p;
    p = d, p.radius_min = 20, p.radius_max = 10, bad[n++] = p;
    p = d, p.radius_max = 129, bad[n++] = p;
    p = d, p.radius_min = NAN, bad[n++] = p;
    p = d, p.style = ISEG_SYNTH_STYLE_COUNT, bad[n++] = p;
    p = d, p.overlap = 1.5, bad[n++] = p;
    p = d, p.noise = -0.1, bad[n++] = p;
    p = d, p.blur = 11, bad[n++] = p;
    for (int i = 0; i < n; i++) {
        char err[200] = "";
        ASSERT_STATUS(iseg_synth_params_check(&bad[i], err, sizeof(err)), ISEG_STATUS_EINVAL);
        ASSERT_STRCONTAINS(err, "synth: ");
        struct iseg_rng rng;
        iseg_rng_seed(&rng, 1);
        struct iseg_sample s;
        memset(&s, 0xab, sizeof(s));
        ASSERT_STATUS(iseg_synth_nuclei(&s, &bad[i], &rng), ISEG_STATUS_EINVAL);
        ASSERT(s.image.data == NULL && s.inst == NULL && s.n == 0);
    }
    char err[200] = "";
    ASSERT_STATUS(iseg_synth_params_check(&bad[2], err, sizeof(err)), ISEG_STATUS_EINVAL);
    ASSERT_STRCONTAINS(err, "nuclei 9..3");
    ASSERT_STATUS(iseg_synth_dataset_write(test_tmp_dir(), 0, &d, 0, NULL, err, sizeof(err)),
                  ISEG_STATUS_EINVAL);
    ASSERT_STRCONTAINS(err, "image count 0");
    /* a file where the directory should be */
    char path[1024];
    snprintf(path, sizeof(path), "%s/file", test_tmp_dir());
    FILE *f = fopen(path, "w");
    ASSERT(f);
    fclose(f);
    ASSERT_STATUS(iseg_synth_dataset_write(path, 1, &d, 0, NULL, err, sizeof(err)),
                  ISEG_STATUS_EIO);
    ASSERT_STRCONTAINS(err, "not a directory");
    /* not an RGB8 image */
    struct iseg_image g = {0};
    ASSERT_OK(iseg_image_alloc(&g, 4, 4, 1, 8));
    snprintf(path, sizeof(path), "%s/g.png", test_tmp_dir());
    ASSERT_STATUS(iseg_synth_png_write(path, &g, err, sizeof(err)), ISEG_STATUS_EINVAL);
    iseg_image_free(&g);
}

TEST(synth_dataset_roundtrip) {
    struct iseg_synth_params p = iseg_synth_default_params();
    p.width                    = 160;
    p.height                   = 128;
    p.radius_max               = 12;
    for (int style = 0; style < ISEG_SYNTH_STYLE_COUNT; style++) {
        p.style = (enum iseg_synth_style)style;
        char dir[1024], json[1100], err[512];
        snprintf(dir, sizeof(dir), "%s/ds_%s", test_tmp_dir(), iseg_synth_style_name(p.style));
        snprintf(json, sizeof(json), "%s/synth.json", dir);
        size_t n_nuclei = 0;
        enum iseg_status st = iseg_synth_dataset_write(dir, 3, &p, 42, &n_nuclei, err, sizeof(err));
        ASSERT_MSG(st == ISEG_STATUS_OK, "%s", err);
        ASSERT(n_nuclei > 0);

        iseg_dataset_t ds;
        st = iseg_dataset_open(&ds, json, dir, NULL, err, sizeof(err));
        ASSERT_MSG(st == ISEG_STATUS_OK, "%s", err);
        const struct iseg_dataset_report *r = iseg_dataset_report(ds);
        ASSERT_EQ_U64(r->n_images_json, 3);
        ASSERT_EQ_U64(r->n_images, 3);
        ASSERT_EQ_U64(r->n_annotations_json, n_nuclei);
        ASSERT_EQ_U64(r->n_instances, n_nuclei);
        ASSERT_EQ_U64(r->n_categories, 1);
        for (int k = 0; k < ISEG_DATA_COUNT; k++)
            ASSERT_MSG(r->count[k] == 0, "%s: %zu", iseg_data_issue_name(k), r->count[k]);
        ASSERT_STREQ(iseg_dataset_class_name(ds, 1), "nucleus");
        ASSERT_STREQ(iseg_dataset_file_name(ds, 1), "images/synth_0001.png");

        /* image i is the generator's output for seed 42 + i, pixels and masks */
        for (size_t i = 0; i < 3; i++) {
            struct iseg_sample got = {0}, want = {0};
            st = iseg_dataset_load(ds, i, &got, err, sizeof(err));
            ASSERT_MSG(st == ISEG_STATUS_OK, "%s", err);
            gen(&want, &p, 42 + i);
            ASSERT_MSG(same_sample(&got, &want), "%s image %zu differs from the generator",
                       iseg_synth_style_name(p.style), i);
            iseg_sample_free(&got);
            iseg_sample_free(&want);
        }
        iseg_dataset_free(ds);
    }
}

TEST_LIST = {
    TEST_ENTRY(synth_deterministic),
    TEST_ENTRY(synth_instances),
    TEST_ENTRY(synth_contrast),
    TEST_ENTRY(synth_bad_params),
    TEST_ENTRY(synth_dataset_roundtrip),
    TEST_END,
};
