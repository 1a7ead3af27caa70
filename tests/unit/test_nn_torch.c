/* test_nn_torch.c - the engine's operators against torch 1.13 / torchvision 0.14 outputs stored
 * by tools/make_nn_goldens.py in tests/golden/nn/ (safetensors): float ops within 1e-5 absolute
 * plus 1e-5 relative, NMS keep lists, levels and anchors exactly. A tiny safetensors reader lives
 * here (the library's loader is tested on its own). Skips when a golden file is absent. */
#include "test.h"

#include "iseg/nn.h"

/* ---- minimal safetensors reader ---- */

struct st_file {
    char          *buf;    /* whole file */
    size_t         len;
    const char    *header; /* JSON, NUL-terminated copy */
    const uint8_t *data;
    size_t         data_len;
};

struct st_tensor {
    bool     f32;
    int      ndim;
    int64_t  shape[8];
    size_t   n;
    const void *p;
};

static void st_open(struct st_file *f, const char *name) {
    char path[4096];
    snprintf(path, sizeof(path), "%s/tests/golden/nn/%s", test_source_dir(), name);
    FILE *fp = fopen(path, "rb");
    if (!fp) TEST_SKIP("%s is absent (run tools/make_nn_goldens.py)", path);
    fclose(fp);
    f->buf = test_read_file(path, &f->len);
    ASSERT(f->len >= 8);
    uint64_t hl = 0;
    for (int i = 7; i >= 0; i--) hl = hl << 8 | (uint8_t)f->buf[i];
    ASSERT(hl <= f->len - 8);
    char *h = malloc(hl + 1);
    ASSERT(h);
    memcpy(h, f->buf + 8, hl);
    h[hl]       = 0;
    f->header   = h;
    f->data     = (const uint8_t *)f->buf + 8 + hl;
    f->data_len = f->len - 8 - hl;
}

static void st_close(struct st_file *f) {
    free(f->buf);
    free((void *)f->header);
}

static const char *skip_ws(const char *p) {
    while (*p == ' ' || *p == '\n' || *p == '\t' || *p == '\r') p++;
    return p;
}

/* parse "[a, b, ...]" of integers */
static int parse_ints(const char *p, int64_t *v, int max) {
    p = skip_ws(p);
    ASSERT(*p == '[');
    p++;
    int n = 0;
    for (;;) {
        p = skip_ws(p);
        if (*p == ']') return n;
        char *end;
        long long x = strtoll(p, &end, 10);
        ASSERT(end != p && n < max);
        v[n++] = x;
        p      = skip_ws(end);
        if (*p == ',') p++;
    }
}

static struct st_tensor st_get(const struct st_file *f, const char *name) {
    char key[256];
    snprintf(key, sizeof(key), "\"%s\":", name);
    const char *p = strstr(f->header, key);
    ASSERT_MSG(p, "golden tensor %s missing", name);
    p += strlen(key);
    const char *end = strchr(p, '}');
    ASSERT(end);
    struct st_tensor t;
    memset(&t, 0, sizeof(t));
    const char *dt = strstr(p, "\"dtype\"");
    const char *sh = strstr(p, "\"shape\"");
    const char *of = strstr(p, "\"data_offsets\"");
    ASSERT(dt && sh && of && dt < end && sh < end && of < end);
    dt = strchr(dt + 7, '"');
    ASSERT(dt);
    t.f32 = strncmp(dt, "\"F32\"", 5) == 0;
    ASSERT(t.f32 || strncmp(dt, "\"I64\"", 5) == 0);
    t.ndim = parse_ints(strchr(sh + 7, ':') + 1, t.shape, 8);
    int64_t offs[2];
    ASSERT_EQ_INT(parse_ints(strchr(of + 14, ':') + 1, offs, 2), 2);
    t.n = 1;
    for (int i = 0; i < t.ndim; i++) t.n *= (size_t)t.shape[i];
    ASSERT(offs[0] >= 0 && offs[1] >= offs[0] && (size_t)offs[1] <= f->data_len);
    ASSERT_EQ_U64((size_t)(offs[1] - offs[0]), t.n * (t.f32 ? 4 : 8));
    t.p = f->data + offs[0];
    return t;
}

/* a copy as floats (aligned) */
static float *st_f32(const struct st_file *f, const char *name, struct st_tensor *out) {
    struct st_tensor t = st_get(f, name);
    ASSERT_MSG(t.f32, "%s: expected F32", name);
    float *v = malloc(t.n * sizeof(float) + 4);
    ASSERT(v);
    memcpy(v, t.p, t.n * sizeof(float));
    if (out) *out = t;
    return v;
}

static int64_t *st_i64(const struct st_file *f, const char *name, struct st_tensor *out) {
    struct st_tensor t = st_get(f, name);
    ASSERT_MSG(!t.f32, "%s: expected I64", name);
    int64_t *v = malloc(t.n * sizeof(int64_t) + 8);
    ASSERT(v);
    memcpy(v, t.p, t.n * sizeof(int64_t));
    if (out) *out = t;
    return v;
}

static void check_close(const char *what, const float *got, const float *want, size_t n,
                        double atol, double rtol) {
    double maxd = 0.0;
    size_t bad = n, nbad = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - want[i]);
        if (d > maxd) maxd = d;
        if (!(d <= atol + rtol * fabs((double)want[i]))) {
            if (bad == n) bad = i;
            nbad++;
        }
    }
    if (nbad)
        TEST_FAIL("%s: %zu of %zu values differ (max |diff| %g); first at %zu: %.9g vs torch %.9g",
                  what, nbad, n, maxd, bad, got[bad], want[bad]);
}

#define TOL 1e-5

/* ---- convolution ---- */

TEST(torch_conv2d) {
    struct st_file f;
    st_open(&f, "conv.safetensors");
    static const char *names[] = {"c3x3", "c7x7s2", "c1x1", "cdil2", "cgroups2", "cdepthwise"};
    iseg_engine_t e;
    ASSERT_OK(iseg_engine_init(&e, 2));
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        char             k[64];
        struct st_tensor tx, tw, ty;
        snprintf(k, sizeof(k), "%s.x", names[i]);
        float *x = st_f32(&f, k, &tx);
        snprintf(k, sizeof(k), "%s.w", names[i]);
        float *w = st_f32(&f, k, &tw);
        snprintf(k, sizeof(k), "%s.b", names[i]);
        float *b = st_f32(&f, k, NULL);
        snprintf(k, sizeof(k), "%s.y", names[i]);
        float *want = st_f32(&f, k, &ty);
        snprintf(k, sizeof(k), "%s.cfg", names[i]);
        int64_t *cfg = st_i64(&f, k, NULL);
        struct iseg_conv2d_desc d = iseg_conv2d_default_desc((int)tx.shape[1], (int)tw.shape[0], (int)cfg[0]);
        d.stride_h = d.stride_w = (int)cfg[1];
        d.pad_h = d.pad_w = (int)cfg[2];
        d.dil_h = d.dil_w = (int)cfg[3];
        d.groups          = (int)cfg[4];
        int B = (int)tx.shape[0], h = (int)tx.shape[2], wd = (int)tx.shape[3], oh, ow;
        iseg_conv2d_out_hw(&d, h, wd, &oh, &ow);
        ASSERT_EQ_INT(oh, ty.shape[2]);
        ASSERT_EQ_INT(ow, ty.shape[3]);
        float        *y = malloc(ty.n * sizeof(float));
        iseg_conv2d_t c;
        ASSERT_OK(iseg_conv2d_init(&c, &d, w, b));
        iseg_conv2d_forward(e, c, y, x, B, h, wd, NULL, ISEG_ACT_NONE);
        check_close(names[i], y, want, ty.n, TOL, TOL);
        iseg_conv2d_forward_ref(y, x, w, b, &d, B, h, wd, NULL, ISEG_ACT_NONE);
        check_close(names[i], y, want, ty.n, TOL, TOL);
        iseg_conv2d_free(c);
        free(x), free(w), free(b), free(want), free(cfg), free(y);
    }
    iseg_engine_free(e);
    st_close(&f);
}

TEST(torch_deconv2d) {
    struct st_file f;
    st_open(&f, "conv.safetensors");
    static const char *names[] = {"d2x2s2", "d3x3s2"};
    iseg_engine_t e;
    ASSERT_OK(iseg_engine_init(&e, 2));
    for (size_t i = 0; i < 2; i++) {
        char             k[64];
        struct st_tensor tx, tw, ty;
        snprintf(k, sizeof(k), "%s.x", names[i]);
        float *x = st_f32(&f, k, &tx);
        snprintf(k, sizeof(k), "%s.w", names[i]);
        float *w = st_f32(&f, k, &tw);
        snprintf(k, sizeof(k), "%s.b", names[i]);
        float *b = st_f32(&f, k, NULL);
        snprintf(k, sizeof(k), "%s.y", names[i]);
        float *want = st_f32(&f, k, &ty);
        snprintf(k, sizeof(k), "%s.cfg", names[i]);
        int64_t *cfg = st_i64(&f, k, NULL);
        int      g   = (int)cfg[5];
        struct iseg_deconv2d_desc d = {(int)tw.shape[0], (int)tw.shape[1] * g, (int)cfg[0], (int)cfg[0],
                                       (int)cfg[1], (int)cfg[1], (int)cfg[2], (int)cfg[2],
                                       (int)cfg[3], (int)cfg[3], (int)cfg[4], (int)cfg[4], g};
        int B = (int)tx.shape[0], h = (int)tx.shape[2], wd = (int)tx.shape[3], oh, ow;
        iseg_deconv2d_out_hw(&d, h, wd, &oh, &ow);
        ASSERT_EQ_INT(oh, ty.shape[2]);
        ASSERT_EQ_INT(ow, ty.shape[3]);
        float          *y = malloc(ty.n * sizeof(float));
        iseg_deconv2d_t c;
        ASSERT_OK(iseg_deconv2d_init(&c, &d, w, b));
        iseg_deconv2d_forward(e, c, y, x, B, h, wd, ISEG_ACT_NONE);
        check_close(names[i], y, want, ty.n, TOL, TOL);
        iseg_deconv2d_forward_ref(y, x, w, b, &d, B, h, wd, ISEG_ACT_NONE);
        check_close(names[i], y, want, ty.n, TOL, TOL);
        iseg_deconv2d_free(c);
        free(x), free(w), free(b), free(want), free(cfg), free(y);
    }
    iseg_engine_free(e);
    st_close(&f);
}

/* ---- normalisation, pooling, resizing, linear, softmax ---- */

TEST(torch_norms) {
    struct st_file f;
    st_open(&f, "misc.safetensors");
    struct st_tensor tx;
    float *x = st_f32(&f, "bn.x", &tx), *g = st_f32(&f, "bn.gamma", NULL);
    float *b = st_f32(&f, "bn.beta", NULL), *m = st_f32(&f, "bn.mean", NULL);
    float *v = st_f32(&f, "bn.var", NULL), *want = st_f32(&f, "bn.y", NULL);
    float *y = malloc(tx.n * sizeof(float));
    int    B = (int)tx.shape[0], C = (int)tx.shape[1];
    size_t HW = (size_t)tx.shape[2] * tx.shape[3];
    iseg_batchnorm(y, x, g, b, m, v, 1e-5f, B, C, HW);
    check_close("batchnorm", y, want, tx.n, TOL, TOL);
    iseg_batchnorm_ref(y, x, g, b, m, v, 1e-5f, B, C, HW);
    check_close("batchnorm_ref", y, want, tx.n, TOL, TOL);
    free(want);
    want         = st_f32(&f, "gn.y", NULL);
    int64_t *cfg = st_i64(&f, "gn.cfg", NULL);
    iseg_groupnorm(y, x, g, b, 1e-5f, B, C, HW, (int)cfg[0]);
    check_close("groupnorm", y, want, tx.n, TOL, TOL);
    iseg_groupnorm_ref(y, x, g, b, 1e-5f, B, C, HW, (int)cfg[0]);
    check_close("groupnorm_ref", y, want, tx.n, TOL, TOL);
    free(x), free(g), free(b), free(m), free(v), free(want), free(y), free(cfg);
    st_close(&f);
}

TEST(torch_maxpool) {
    struct st_file f;
    st_open(&f, "misc.safetensors");
    struct st_tensor tx, ty;
    float   *x = st_f32(&f, "maxpool.x", &tx), *want = st_f32(&f, "maxpool.y", &ty);
    int64_t *cfg = st_i64(&f, "maxpool.cfg", NULL);
    float   *y   = malloc(ty.n * sizeof(float));
    int      oh, ow;
    iseg_maxpool2d_out_hw((int)cfg[0], (int)cfg[1], (int)cfg[2], (int)tx.shape[2], (int)tx.shape[3], &oh, &ow);
    ASSERT_EQ_INT(oh, ty.shape[2]);
    ASSERT_EQ_INT(ow, ty.shape[3]);
    iseg_maxpool2d(NULL, y, x, (int)tx.shape[0], (int)tx.shape[1], (int)tx.shape[2], (int)tx.shape[3],
                   (int)cfg[0], (int)cfg[1], (int)cfg[2]);
    check_close("maxpool", y, want, ty.n, 0, 0);
    free(x), free(want), free(cfg), free(y);
    st_close(&f);
}

TEST(torch_resize) {
    struct st_file f;
    st_open(&f, "misc.safetensors");
    struct st_tensor tx, ty;
    float *x = st_f32(&f, "resize.x", &tx);
    int    B = (int)tx.shape[0], C = (int)tx.shape[1], h = (int)tx.shape[2], w = (int)tx.shape[3];
    iseg_engine_t e;
    ASSERT_OK(iseg_engine_init(&e, 2));
    static const char *nn[] = {"nearest.y", "nearest2.y"};
    for (int i = 0; i < 2; i++) {
        float *want = st_f32(&f, nn[i], &ty), *y = malloc(ty.n * sizeof(float));
        iseg_resize_nearest(y, x, B, C, h, w, (int)ty.shape[2], (int)ty.shape[3]);
        check_close(nn[i], y, want, ty.n, 0, 0);
        for (size_t j = 0; j < ty.n; j++) y[j] = 1.0f;
        iseg_resize_nearest_add(y, x, B, C, h, w, (int)ty.shape[2], (int)ty.shape[3]);
        for (size_t j = 0; j < ty.n; j++) y[j] -= 1.0f;
        check_close(nn[i], y, want, ty.n, 1e-6, 1e-6);
        free(want), free(y);
    }
    static const char *bl[] = {"bilinear.y", "bilinear_rs.y", "bilinear_sf.y"};
    for (int i = 0; i < 3; i++) {
        float *want = st_f32(&f, bl[i], &ty), *y = malloc(ty.n * sizeof(float));
        float  sf   = i == 2 ? 2.0f : 0.0f; /* recompute_scale_factor=True behaves as size */
        iseg_resize_bilinear(e, y, x, B, C, h, w, (int)ty.shape[2], (int)ty.shape[3], sf, sf);
        check_close(bl[i], y, want, ty.n, TOL, TOL);
        iseg_resize_bilinear_ref(y, x, B, C, h, w, (int)ty.shape[2], (int)ty.shape[3], sf, sf);
        check_close(bl[i], y, want, ty.n, TOL, TOL);
        free(want), free(y);
    }
    iseg_engine_free(e);
    free(x);
    st_close(&f);
}

TEST(torch_linear_softmax_sigmoid) {
    struct st_file f;
    st_open(&f, "misc.safetensors");
    struct st_tensor tx, tw, ty;
    float *x = st_f32(&f, "linear.x", &tx), *w = st_f32(&f, "linear.w", &tw);
    float *b = st_f32(&f, "linear.b", NULL), *want = st_f32(&f, "linear.y", &ty);
    float *y = malloc(ty.n * sizeof(float));
    iseg_engine_t e;
    ASSERT_OK(iseg_engine_init(&e, 2));
    iseg_linear_t l;
    ASSERT_OK(iseg_linear_init(&l, (int)tw.shape[1], (int)tw.shape[0], w, b));
    iseg_linear_forward(e, l, y, x, (int)tx.shape[0], ISEG_ACT_NONE);
    check_close("linear", y, want, ty.n, TOL, TOL);
    iseg_linear_forward_ref(y, x, w, b, (int)tx.shape[0], (int)tw.shape[1], (int)tw.shape[0], ISEG_ACT_NONE);
    check_close("linear_ref", y, want, ty.n, TOL, TOL);
    iseg_linear_free(l);
    iseg_engine_free(e);
    free(x), free(w), free(b), free(want), free(y);
    struct st_tensor ts;
    float *xs = st_f32(&f, "softmax.x", &ts), *ws = st_f32(&f, "softmax.y", NULL);
    float *ys = malloc(ts.n * sizeof(float));
    iseg_softmax(ys, xs, (size_t)ts.shape[0], (int)ts.shape[1]);
    check_close("softmax", ys, ws, ts.n, TOL, TOL);
    free(ws);
    ws = st_f32(&f, "sigmoid.y", NULL);
    iseg_sigmoid(ys, xs, ts.n);
    check_close("sigmoid", ys, ws, ts.n, TOL, TOL);
    free(xs), free(ws), free(ys);
    st_close(&f);
}

/* ---- detection ops ---- */

TEST(torch_roi_align) {
    struct st_file f;
    st_open(&f, "det.safetensors");
    struct st_tensor tf, tb, ty;
    float *feat = st_f32(&f, "roi.feat", &tf), *boxes = st_f32(&f, "roi.boxes", &tb);
    float *sc   = st_f32(&f, "roi.scale", NULL);
    iseg_engine_t e;
    ASSERT_OK(iseg_engine_init(&e, 2));
    static const char *names[] = {"roi_a", "roi_b", "roi_c"};
    for (int i = 0; i < 3; i++) {
        char k[64];
        snprintf(k, sizeof(k), "%s.y", names[i]);
        float *want = st_f32(&f, k, &ty), *y = malloc(ty.n * sizeof(float));
        snprintf(k, sizeof(k), "%s.cfg", names[i]);
        int64_t *cfg = st_i64(&f, k, NULL);
        int      N = (int)tb.shape[0], C = (int)tf.shape[0], H = (int)tf.shape[1], W = (int)tf.shape[2];
        iseg_roi_align(e, y, feat, boxes, N, C, H, W, (int)cfg[0], (int)cfg[1], sc[0], (int)cfg[2], cfg[3] != 0);
        check_close(names[i], y, want, ty.n, TOL, TOL);
        iseg_roi_align_ref(y, feat, boxes, N, C, H, W, (int)cfg[0], (int)cfg[1], sc[0], (int)cfg[2], cfg[3] != 0);
        check_close(names[i], y, want, ty.n, TOL, TOL);
        free(want), free(y), free(cfg);
    }
    iseg_engine_free(e);
    free(feat), free(boxes), free(sc);
    st_close(&f);
}

TEST(torch_nms) {
    struct st_file f;
    st_open(&f, "det.safetensors");
    struct st_tensor tb;
    float   *boxes = st_f32(&f, "nms.boxes", &tb), *scores = st_f32(&f, "nms.scores", NULL);
    float   *thr   = st_f32(&f, "nms.thr", NULL);
    int64_t *idx64 = st_i64(&f, "nms.idxs", NULL);
    int      N     = (int)tb.shape[0];
    int     *idxs = malloc((size_t)N * sizeof(int)), *keep = malloc((size_t)N * sizeof(int));
    int     *scr  = malloc(2 * (size_t)N * sizeof(int));
    for (int i = 0; i < N; i++) idxs[i] = (int)idx64[i];
    for (int t = 0; t < 3; t++) {
        int tag = (int)lround(thr[t] * 10);
        for (int batched = 0; batched < 2; batched++) {
            char k[64];
            snprintf(k, sizeof(k), "%s.keep%d", batched ? "bnms" : "nms", tag);
            struct st_tensor tk;
            int64_t         *want = st_i64(&f, k, &tk);
            int              n    = batched ? iseg_batched_nms(keep, scr, boxes, scores, idxs, N, thr[t])
                                            : iseg_nms(keep, scr, boxes, scores, N, thr[t]);
            ASSERT_MSG((size_t)n == tk.n, "%s: kept %d, torch %zu", k, n, tk.n);
            for (int i = 0; i < n; i++) ASSERT_MSG(keep[i] == want[i], "%s[%d]: %d vs torch %lld", k, i, keep[i], (long long)want[i]);
            if (!batched) {
                n = iseg_nms_ref(keep, boxes, scores, N, thr[t]);
                ASSERT((size_t)n == tk.n);
                for (int i = 0; i < n; i++) ASSERT(keep[i] == want[i]);
            }
            free(want);
        }
    }
    free(boxes), free(scores), free(thr), free(idx64), free(idxs), free(keep), free(scr);
    st_close(&f);
}

TEST(torch_box_coder_clip) {
    struct st_file f;
    st_open(&f, "det.safetensors");
    struct st_tensor tr;
    float *ref = st_f32(&f, "box.ref", &tr), *tgt = st_f32(&f, "box.tgt", NULL);
    float *d   = st_f32(&f, "box.deltas", NULL);
    int    N   = (int)tr.shape[0];
    float *o   = malloc((size_t)N * 16);
    static const float W10[4] = {10, 10, 5, 5}, W1[4] = {1, 1, 1, 1};
    float clip = (float)log(1000.0 / 16);
    for (int wi = 0; wi < 2; wi++) {
        char k[64];
        snprintf(k, sizeof(k), "box.decode_%s", wi ? "w1" : "w10");
        float *want = st_f32(&f, k, NULL);
        iseg_box_decode(o, d, ref, N, wi ? W1 : W10, clip);
        check_close(k, o, want, (size_t)N * 4, TOL, TOL);
        free(want);
        snprintf(k, sizeof(k), "box.encode_%s", wi ? "w1" : "w10");
        want = st_f32(&f, k, NULL);
        iseg_box_encode(o, tgt, ref, N, wi ? W1 : W10);
        check_close(k, o, want, (size_t)N * 4, TOL, TOL);
        free(want);
    }
    float   *cb = st_f32(&f, "box.clip_in", NULL), *want = st_f32(&f, "box.clip_out", NULL);
    int64_t *hw = st_i64(&f, "box.clip_hw", NULL);
    iseg_box_clip(cb, N, (float)hw[0], (float)hw[1]);
    check_close("clip", cb, want, (size_t)N * 4, 0, 0);
    free(ref), free(tgt), free(d), free(o), free(cb), free(want), free(hw);
    st_close(&f);
}

TEST(torch_anchors_levels) {
    struct st_file f;
    st_open(&f, "det.safetensors");
    struct st_tensor ta;
    float   *want = st_f32(&f, "anchors.out", &ta);
    int64_t *cfg  = st_i64(&f, "anchors.cfg", NULL); /* padded h, w, then (fh, fw) per level */
    float    ratios[3] = {0.5f, 1.0f, 2.0f};
    float   *got       = malloc(ta.n * sizeof(float));
    size_t   off       = 0;
    for (int lv = 0; lv < 2; lv++) {
        int fh = (int)cfg[2 + 2 * lv], fw = (int)cfg[3 + 2 * lv];
        /* torchvision: stride = image size // feature size */
        iseg_anchors(got + off, 32.0f * (float)(1 << lv), ratios, 3, fh, fw, (int)(cfg[0] / fh),
                     (int)(cfg[1] / fw));
        off += (size_t)fh * fw * 3 * 4;
    }
    ASSERT_EQ_U64(off, ta.n);
    check_close("anchors", got, want, ta.n, 0, 0);
    struct st_tensor tl;
    float   *lb = st_f32(&f, "levels.boxes", &tl);
    int64_t *wl = st_i64(&f, "levels.y", NULL);
    int      N = (int)tl.shape[0], lv[64];
    ASSERT(N <= 64);
    iseg_roi_levels(lv, lb, N, 2, 5, 224.0f, 4, 1e-6f);
    for (int i = 0; i < N; i++) ASSERT_MSG(lv[i] == wl[i], "level %d: %d vs torch %lld", i, lv[i], (long long)wl[i]);
    free(want), free(cfg), free(got), free(lb), free(wl);
    st_close(&f);
}

TEST_LIST = {
    TEST_ENTRY(torch_conv2d),
    TEST_ENTRY(torch_deconv2d),
    TEST_ENTRY(torch_norms),
    TEST_ENTRY(torch_maxpool),
    TEST_ENTRY(torch_resize),
    TEST_ENTRY(torch_linear_softmax_sigmoid),
    TEST_ENTRY(torch_roi_align),
    TEST_ENTRY(torch_nms),
    TEST_ENTRY(torch_box_coder_clip),
    TEST_ENTRY(torch_anchors_levels),
    TEST_END,
};
