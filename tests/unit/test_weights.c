/* test_weights.c - safetensors and PyTorch checkpoint readers against checkpoints written by
 * torch itself (tests/golden/weights, made by tools/make_weights_goldens.py): names, order,
 * dtypes, shapes and exact bytes; the safetensors writer round trip; and hostile input (every
 * truncation, byte flips, hand-made corrupt headers and pickles). */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "iseg/weights.h"
#include "test.h"
#include "weights/weights_impl.h"

static const char *golden(const char *name) {
    static char buf[4096];
    snprintf(buf, sizeof(buf), "%s/tests/golden/weights/%s", test_source_dir(), name);
    return buf;
}

static iseg_weights_t load_ok(const char *path) {
    iseg_weights_t w = NULL;
    char           err[512];
    enum iseg_status st = iseg_weights_load(&w, path, err, sizeof(err));
    ASSERT_MSG(st == ISEG_STATUS_OK, "%s: %s", path, err);
    ASSERT(w);
    return w;
}

/* Same tensors, same order, same bytes. */
static void assert_same(iseg_weights_t got, iseg_weights_t want) {
    ASSERT_EQ_U64(iseg_weights_count(got), iseg_weights_count(want));
    for (size_t i = 0; i < iseg_weights_count(want); i++) {
        const struct iseg_weight *a = iseg_weights_at(got, i), *b = iseg_weights_at(want, i);
        ASSERT_STREQ(a->name, b->name);
        ASSERT_MSG(a->dtype == b->dtype, "%s: dtype %s, expected %s", a->name,
                   iseg_dtype_name(a->dtype), iseg_dtype_name(b->dtype));
        ASSERT_EQ_INT(a->ndim, b->ndim);
        for (int k = 0; k < a->ndim; k++) ASSERT_EQ_INT(a->shape[k], b->shape[k]);
        ASSERT_EQ_U64(a->nbytes, b->nbytes);
        ASSERT_EQ_U64(a->nbytes, iseg_weight_numel(a) * iseg_dtype_size(a->dtype));
        ASSERT_MSG(a->nbytes == 0 || memcmp(a->data, b->data, a->nbytes) == 0,
                   "%s: data differs", a->name);
        ASSERT(((uintptr_t)a->data & 63) == 0);
        ASSERT(iseg_weights_find(got, a->name) == a);
    }
}

TEST(dtype_names_and_sizes) {
    ASSERT_STREQ(iseg_dtype_name(ISEG_DTYPE_F32), "F32");
    ASSERT_STREQ(iseg_dtype_name(ISEG_DTYPE_BF16), "BF16");
    ASSERT_STREQ(iseg_dtype_name(ISEG_DTYPE_BOOL), "BOOL");
    ASSERT_STREQ(iseg_dtype_name(ISEG_DTYPE_COUNT), "?");
    ASSERT_EQ_U64(iseg_dtype_size(ISEG_DTYPE_F64), 8);
    ASSERT_EQ_U64(iseg_dtype_size(ISEG_DTYPE_I16), 2);
    ASSERT_EQ_U64(iseg_dtype_size(ISEG_DTYPE_COUNT), 0);
}

static void check_small(const char *file, const char *format) {
    iseg_weights_t want = load_ok(golden("small.expected.safetensors"));
    iseg_weights_t w    = load_ok(golden(file));
    ASSERT_STREQ(iseg_weights_format(w), format);
    ASSERT_STREQ(iseg_weights_format(want), "safetensors");
    assert_same(w, want);
    /* a few values spelled out, independent of the expected file */
    const struct iseg_weight *t = iseg_weights_find(w, "model.view"); /* base.view(4,5)[1:, ::2] */
    ASSERT(t && t->dtype == ISEG_DTYPE_F32 && t->ndim == 2);
    ASSERT_EQ_INT(t->shape[0], 3);
    ASSERT_EQ_INT(t->shape[1], 3);
    const float *f = t->data;
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++)
            ASSERT_EQ_DBL(f[i * 3 + j], (5 + 5 * i + 2 * j) * 0.25 - 2.0);
    t = iseg_weights_find(w, "model.transposed"); /* arange(6).reshape(2,3).t() */
    ASSERT(t && t->ndim == 2 && t->shape[0] == 3 && t->shape[1] == 2);
    f = t->data;
    const float tr[6] = {0, 3, 1, 4, 2, 5};
    for (int i = 0; i < 6; i++) ASSERT_EQ_DBL(f[i], tr[i]);
    t = iseg_weights_find(w, "model.num_batches_tracked");
    ASSERT(t && t->ndim == 0 && t->dtype == ISEG_DTYPE_I64 && t->nbytes == 8);
    ASSERT_EQ_INT(*(const int64_t *)t->data, 7);
    ASSERT_EQ_U64(iseg_weight_numel(t), 1);
    t = iseg_weights_find(w, "model.empty");
    ASSERT(t && t->ndim == 2 && t->shape[0] == 0 && t->nbytes == 0);
    t = iseg_weights_find(w, "model.expanded"); /* stride 0 */
    ASSERT(t && t->shape[0] == 3 && ((const float *)t->data)[4] == 1.5f);
    ASSERT(iseg_weights_find(w, "optimizer.state.0.exp_avg"));
    ASSERT(iseg_weights_find(w, "param"));
    ASSERT(iseg_weights_find(w, "list.0"));
    ASSERT(!iseg_weights_find(w, "epoch"));
    ASSERT(!iseg_weights_find(w, "note"));
    ASSERT(!iseg_weights_metadata(w, "torch"));
    iseg_weights_free(w);
    iseg_weights_free(want);
}

TEST(small_zip) { check_small("small_zip.pth", "pth-zip"); }
TEST(small_legacy) { check_small("small_legacy.pth", "pth-legacy"); }
TEST(small_deflated) { check_small("small_deflated.pth", "pth-zip"); }
TEST(small_zip64) { check_small("small_zip64.pth", "pth-zip"); }

TEST(tiny_torchvision_like) {
    iseg_weights_t want = load_ok(golden("tiny_tv.expected.safetensors"));
    const char    *files[] = {"tiny_tv_legacy.pth", "tiny_tv_zip.pth", "tiny_tv_p4_legacy.pth",
                              "tiny_tv_p4_zip.pth"};
    for (int i = 0; i < 4; i++) {
        iseg_weights_t w = load_ok(golden(files[i]));
        assert_same(w, want);
        ASSERT_EQ_U64(iseg_weights_count(w), 8);
        ASSERT_STREQ(iseg_weights_at(w, 0)->name, "conv1.weight");
        ASSERT_STREQ(iseg_weights_at(w, 5)->name, "bn1.num_batches_tracked");
        ASSERT_EQ_INT(*(const int64_t *)iseg_weights_at(w, 5)->data, 100);
        iseg_weights_free(w);
    }
    iseg_weights_free(want);
}

TEST(to_f32) {
    iseg_weights_t w = load_ok(golden("small_zip.pth"));
    float          out[16];
    const struct iseg_weight *t = iseg_weights_find(w, "model.f16");
    ASSERT_OK(iseg_weight_to_f32(out, t));
    const float f16[6] = {0.5f, -1.25f, 65504.0f, 0x1.ff8p-15f /* 6.1e-5: subnormal */, 1.1920928955078125e-07f, -0.0f};
    for (int i = 0; i < 6; i++) ASSERT_EQ_DBL(out[i], f16[i]);
    ASSERT(signbit(out[5]));
    t = iseg_weights_find(w, "model.bf16");
    ASSERT_OK(iseg_weight_to_f32(out, t));
    ASSERT_EQ_DBL(out[0], 1.0);
    ASSERT_EQ_DBL(out[1], -3.5);
    ASSERT_NEAR(out[2], 1e30, 1e28);
    ASSERT(out[3] > 0 && out[3] < 1e-38f); /* subnormal survives */
    t = iseg_weights_find(w, "model.f64");
    ASSERT_OK(iseg_weight_to_f32(out, t));
    ASSERT_EQ_DBL(out[0], (double)(float)(1.0 / 3.0));
    ASSERT(isinf(out[1]) && out[1] < 0);
    ASSERT_EQ_DBL(out[3], 2.0);
    t = iseg_weights_find(w, "model.f32");
    ASSERT_OK(iseg_weight_to_f32(out, t));
    ASSERT(memcmp(out, t->data, t->nbytes) == 0);
    ASSERT_STATUS(iseg_weight_to_f32(out, iseg_weights_find(w, "model.i64")), ISEG_STATUS_EINVAL);
    iseg_weights_free(w);
}

TEST(safetensors_round_trip) {
    iseg_weights_t w = load_ok(golden("small_legacy.pth"));
    char           path[4200], err[512];
    snprintf(path, sizeof(path), "%s/out.safetensors", test_tmp_dir());
    const char *meta[] = {"format", "pt", "quote\"key", "tab\tvalue\x01", NULL};
    ASSERT_OK(iseg_weights_save_safetensors(path, iseg_weights_at(w, 0), iseg_weights_count(w),
                                            meta, err, sizeof(err)));
    iseg_weights_t back = load_ok(path);
    assert_same(back, w);
    ASSERT_STREQ(iseg_weights_metadata(back, "format"), "pt");
    ASSERT_STREQ(iseg_weights_metadata(back, "quote\"key"), "tab\tvalue\x01");
    ASSERT(!iseg_weights_metadata(back, "missing"));
    size_t n;
    char  *raw = test_read_file(path, &n);
    ASSERT_EQ_U64((*(const uint64_t *)raw) % 8, 0); /* data 8-byte aligned */
    free(raw);
    iseg_weights_free(back);

    /* metadata written by Python's hand-made writer */
    iseg_weights_t py = load_ok(golden("small.expected.safetensors"));
    ASSERT_STREQ(iseg_weights_metadata(py, "source"), "make_weights_goldens.py");
    iseg_weights_free(py);

    /* duplicate names: EINVAL and no file */
    struct iseg_weight two[2] = {*iseg_weights_at(w, 0), *iseg_weights_at(w, 0)};
    char               p2[4200];
    snprintf(p2, sizeof(p2), "%s/dup.safetensors", test_tmp_dir());
    ASSERT_STATUS(iseg_weights_save_safetensors(p2, two, 2, NULL, err, sizeof(err)),
                  ISEG_STATUS_EINVAL);
    ASSERT_STRCONTAINS(err, "duplicate");
    ASSERT(access(p2, F_OK) != 0);
    /* nbytes that disagrees with the shape */
    two[1].name = "other";
    two[1].nbytes--;
    ASSERT_STATUS(iseg_weights_save_safetensors(p2, two, 2, NULL, err, sizeof(err)),
                  ISEG_STATUS_EINVAL);
    ASSERT(access(p2, F_OK) != 0);
    /* an unwritable directory: EIO, nothing left behind */
    ASSERT_STATUS(iseg_weights_save_safetensors("/nonexistent-dir/x.safetensors", two, 1, NULL,
                                                err, sizeof(err)),
                  ISEG_STATUS_EIO);
    ASSERT_STRCONTAINS(err, "/nonexistent-dir/x.safetensors: ");
    /* zero tensors is a valid file */
    ASSERT_OK(iseg_weights_save_safetensors(p2, NULL, 0, NULL, err, sizeof(err)));
    iseg_weights_t empty = load_ok(p2);
    ASSERT_EQ_U64(iseg_weights_count(empty), 0);
    ASSERT(!iseg_weights_find(empty, "x"));
    iseg_weights_free(empty);
    iseg_weights_free(w);
}

static enum iseg_status load_buf(const void *b, size_t n, char *err, size_t errlen) {
    iseg_weights_t w  = NULL;
    enum iseg_status st = iseg_weights_load_mem(&w, b, n, "t", err, errlen);
    if (st == ISEG_STATUS_OK) {
        ASSERT(w);
        iseg_weights_free(w);
    } else {
        ASSERT(w == NULL);
        ASSERT_MSG(strncmp(err, "t: ", 3) == 0 && strlen(err) > 4, "bad message '%s'", err);
    }
    return st;
}

static const char *const SMALL_FILES[] = {"small_zip.pth",      "small_legacy.pth",
                                          "small_deflated.pth", "small_zip64.pth",
                                          "small.expected.safetensors", "tiny_tv_legacy.pth",
                                          "tiny_tv_p4_legacy.pth", NULL};

TEST(every_truncation_fails_cleanly) {
    for (int f = 0; SMALL_FILES[f]; f++) {
        size_t n;
        char  *buf = test_read_file(golden(SMALL_FILES[f]), &n);
        char   err[512];
        ASSERT_OK(load_buf(buf, n, err, sizeof(err)));
        for (size_t len = 0; len < n; len++) {
            /* a fresh copy of exactly len bytes, so ASan sees any over-read */
            char *cut = malloc(len ? len : 1);
            memcpy(cut, buf, len);
            enum iseg_status st = load_buf(cut, len, err, sizeof(err));
            ASSERT_MSG(st != ISEG_STATUS_OK, "%s cut to %zu bytes loaded", SMALL_FILES[f], len);
            free(cut);
        }
        free(buf);
    }
}

TEST(byte_flips_never_crash) {
    /* pass 1 switches off the zip CRC-32 checks so that flips reach the pickle inside */
    for (int pass = 0; pass < 2; pass++) {
        iseg__weights_hooks.skip_crc = pass == 1;
        for (int f = 0; SMALL_FILES[f]; f++) {
            size_t n;
            char  *buf = test_read_file(golden(SMALL_FILES[f]), &n);
            char   err[512];
            if (pass == 1 && memcmp(buf, "PK", 2) != 0) {
                free(buf);
                continue;
            }
            const uint8_t flips[] = {0xff, 0x01, 0x80};
            for (size_t i = 0; i < n; i++) {
                uint8_t x = flips[(i + (size_t)pass) % 3];
                buf[i]    = (char)(buf[i] ^ x);
                load_buf(buf, n, err, sizeof(err));
                buf[i] = (char)(buf[i] ^ x);
            }
            free(buf);
        }
    }
    iseg__weights_hooks.skip_crc = false;
}

/* ---- hand-made safetensors ---- */

static enum iseg_status st_try(const char *header, size_t data_len, char *err, size_t errlen) {
    size_t   hn = strlen(header), n = 8 + hn + data_len;
    uint8_t *b  = calloc(1, n);
    for (int k = 0; k < 8; k++) b[k] = (uint8_t)((uint64_t)hn >> (8 * k));
    memcpy(b + 8, header, hn);
    enum iseg_status st = load_buf(b, n, err, errlen);
    free(b);
    return st;
}

TEST(safetensors_corrupt_headers) {
    char err[512];
    ASSERT_OK(st_try("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, err,
                     sizeof(err)));
    ASSERT_OK(st_try("{\"__metadata__\":{\"k\":\"v\"},\"s\":{\"dtype\":\"I64\",\"shape\":[],"
                     "\"data_offsets\":[0,8]}}  ", 8, err, sizeof(err)));
    ASSERT_OK(st_try("{}", 0, err, sizeof(err)));
    struct {
        const char *h;
        size_t      data;
        const char *msg;
    } bad[] = {
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 4, "past the end"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
         "\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}", 16, "duplicate"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 8, "do not hold"},
        {"{\"a\":{\"dtype\":\"F8_E4M3\",\"shape\":[2],\"data_offsets\":[0,2]}}", 2, "dtype"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8, "contiguous"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 8, "tensors use"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
         "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 8, "contiguous"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4],\"x\":1}}", 4, "unknown"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", 4, "integer"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1.0],\"data_offsets\":[0,4]}}", 4, "integer"},
        {"{\"a\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", 4, "missing"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,4]}}", 4,
         "dimensions"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,4294967296],"
         "\"data_offsets\":[0,4]}}", 4, "overflows"},
        {"{\"__metadata__\":{\"k\":1}}", 0, "strings"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}} x", 4, "trailing"},
        {"{\"a\\ud800\":1}", 0, "surrogate"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}", 4, "expected"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        enum iseg_status st = st_try(bad[i].h, bad[i].data, err, sizeof(err));
        ASSERT_MSG(st == ISEG_STATUS_EFORMAT, "case %zu: status %d (%s)", i, (int)st, err);
        ASSERT_MSG(strstr(err, bad[i].msg), "case %zu: '%s' lacks '%s'", i, err, bad[i].msg);
    }
    /* header size past the end, and over the 100 MB limit */
    uint8_t b[16] = {0xf0, 0, 0, 0, 0, 0, 0, 0, '{', '}'};
    ASSERT_STATUS(load_buf(b, 16, err, sizeof(err)), ISEG_STATUS_EFORMAT);
    ASSERT_STRCONTAINS(err, "header");
    b[4] = 1;
    ASSERT_STATUS(load_buf(b, 16, err, sizeof(err)), ISEG_STATUS_ELIMIT);
    /* a header of 640 bytes starts with 80 02, like a pickle: still safetensors */
    char h640[641];
    memset(h640, ' ', 640);
    h640[640] = 0;
    memcpy(h640, "{\"x\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[0,2]}}", 53);
    ASSERT_OK(st_try(h640, 2, err, sizeof(err)));
    /* escaped names decode */
    ASSERT_OK(st_try("{\"a\\u00e9\\n\\ud83d\\ude00\":{\"dtype\":\"U8\",\"shape\":[1],"
                     "\"data_offsets\":[0,1]}}", 1, err, sizeof(err)));
}

/* ---- hand-made pickles (legacy layout) ---- */

static size_t put(uint8_t *b, size_t at, const void *s, size_t n) {
    memcpy(b + at, s, n);
    return at + n;
}

#define S(lit) lit, sizeof(lit) - 1

/* magic, protocol, sys_info, then `obj` as the object pickle, then `keys` and `tail`. */
static size_t legacy(uint8_t *b, const char *obj, size_t obj_n, const char *keys, size_t keys_n,
                     const void *tail, size_t tail_n) {
    size_t at = 0;
    at = put(b, at, S("\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19."));
    at = put(b, at, S("\x80\x02M\xe9\x03."));
    at = put(b, at, S("\x80\x02}(X\x0d\x00\x00\x00little_endian\x88u."));
    at = put(b, at, obj, obj_n);
    at = put(b, at, keys, keys_n);
    return put(b, at, tail, tail_n);
}

TEST(pickle_hand_made) {
    uint8_t b[1024];
    char    err[512];
    /* {"w": _rebuild_tensor_v2(('storage', FloatStorage, '0', 'cpu', 2), 0, (2,), (1,),
     *  False, OrderedDict())} */
    const char obj[] = "\x80\x02}X\x01\x00\x00\x00w"
                       "ctorch._utils\n_rebuild_tensor_v2\n"
                       "((X\x07\x00\x00\x00storagectorch\nFloatStorage\nX\x01\x00\x00\x00"
                       "0X\x03\x00\x00\x00" "cpuK\x02Ntq\x00QK\x00K\x02\x85K\x01\x85\x89"
                       "ccollections\nOrderedDict\n)RtRs.";
    const char keys[] = "\x80\x02]X\x01\x00\x00\x00\x30\x61.";
    const uint8_t data[] = {2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x80, 0x3f, 0, 0, 0, 0x40};
    size_t n = legacy(b, S(obj), S(keys), data, sizeof(data));
    iseg_weights_t w;
    ASSERT_OK(iseg_weights_load_mem(&w, b, n, "t", err, sizeof(err)));
    const struct iseg_weight *t = iseg_weights_find(w, "w");
    ASSERT(t && t->ndim == 1 && t->shape[0] == 2);
    ASSERT_EQ_DBL(((const float *)t->data)[1], 2.0);
    iseg_weights_free(w);
    /* wrong magic */
    b[6] ^= 1;
    ASSERT_STATUS(load_buf(b, n, err, sizeof(err)), ISEG_STATUS_EFORMAT);
    ASSERT_STRCONTAINS(err, "magic");
    b[6] ^= 1;
    /* storage of 3 elements for 2 bytes of file: past the end */
    b[n - sizeof(data)] = 3;
    ASSERT_STATUS(load_buf(b, n, err, sizeof(err)), ISEG_STATUS_EFORMAT);
    ASSERT_STRCONTAINS(err, "past the end");
    /* storage of 1 element under a view of 2 */
    uint8_t short_data[] = {1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x80, 0x3f};
    n = legacy(b, S(obj), S(keys), short_data, sizeof(short_data));
    ASSERT_STATUS(load_buf(b, n, err, sizeof(err)), ISEG_STATUS_EFORMAT);
    ASSERT_STRCONTAINS(err, "beyond its storage");
    /* a key list naming an unknown storage */
    n = legacy(b, S(obj), S("\x80\x02]X\x01\x00\x00\x00\x31\x61."), data, sizeof(data));
    ASSERT_STATUS(load_buf(b, n, err, sizeof(err)), ISEG_STATUS_EFORMAT);
    ASSERT_STRCONTAINS(err, "names no storage");

    /* unknown globals are named */
    const char evil[] = "\x80\x02}X\x01\x00\x00\x00w" "cos\nsystem\nX\x02\x00\x00\x00id\x85Rs.";
    n = legacy(b, S(evil), S(keys), data, sizeof(data));
    ASSERT_STATUS(load_buf(b, n, err, sizeof(err)), ISEG_STATUS_EFORMAT);
    ASSERT_STRCONTAINS(err, "global 'os.system' is not allowed");
    ASSERT_STRCONTAINS(err, "object pickle: offset ");
    const char evil2[] = "\x80\x04\x8c\x08" "builtins\x8c\x04\x65val\x93)R.";
    n = legacy(b, S(evil2), S(keys), data, sizeof(data));
    ASSERT_STATUS(load_buf(b, n, err, sizeof(err)), ISEG_STATUS_EFORMAT);
    ASSERT_STRCONTAINS(err, "builtins.eval");

    /* stack underflow, bad memo, unsupported opcode, not a dict, deep nesting */
    const struct {
        const char *p;
        size_t      n;
        const char *msg;
    } bad[] = {
        {S("\x80\x02t."), "MARK"},
        {S("\x80\x02h\x05."), "never stored"},
        {S("\x80\x02Nr\xff\xff\xff\x7f."), "out of range"},
        {S("\x80\x02\x01."), "opcode 0x01"},
        {S("\x80\x02N."), "not a dict"},
        {S("\x80\x02\x86."), "underflow"},
        {S("\x80\x02]q\x00h\x00" "a."), "not a dict"},
        {S("\x80\x02}X\x00\x00\x00\x08s."), "truncated"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        n = legacy(b, bad[i].p, bad[i].n, S(keys), data, sizeof(data));
        ASSERT_STATUS(load_buf(b, n, err, sizeof(err)), ISEG_STATUS_EFORMAT);
        ASSERT_MSG(strstr(err, bad[i].msg), "case %zu: '%s' lacks '%s'", i, err, bad[i].msg);
    }
    /* a self-referencing dict: {"a": <itself>} must stop at the depth limit */
    const char cyc[] = "\x80\x02}q\x00X\x01\x00\x00\x00" "ah\x00s.";
    n = legacy(b, S(cyc), S(keys), data, sizeof(data));
    ASSERT_STATUS(load_buf(b, n, err, sizeof(err)), ISEG_STATUS_ELIMIT);
    /* and a DAG doubling at each of 30 levels must stop at the visit limit:
     * L0 = {}, Li = {"a": L(i-1), "b": L(i-1)}, root = {"x": L30} */
    uint8_t dag[2048];
    size_t  at = put(dag, 0, S("\x80\x02}X\x01\x00\x00\x00x}q\x00" "0"));
    for (int i = 1; i <= 30; i++) {
        uint8_t lvl[] = {'}', 'q', (uint8_t)i, '(', 'X', 1, 0, 0, 0, 'a', 'h', (uint8_t)(i - 1),
                         'X', 1, 0, 0, 0, 'b', 'h', (uint8_t)(i - 1), 'u', '0'};
        at = put(dag, at, lvl, i < 30 ? sizeof(lvl) : sizeof(lvl) - 1);
    }
    at = put(dag, at, S("s."));
    uint8_t big[4096];
    n = legacy(big, (const char *)dag, at, S(keys), data, sizeof(data));
    ASSERT_STATUS(load_buf(big, n, err, sizeof(err)), ISEG_STATUS_ELIMIT);
    ASSERT_STRCONTAINS(err, "nested values");
}

/* Corrupt zip: a flipped data byte is a CRC error; an EOCD pointing past the end is caught. */
TEST(zip_corruption) {
    size_t n;
    char  *buf = test_read_file(golden("small_zip.pth"), &n);
    char   err[512];
    /* the data of entry small_zip/data/0 follows its name; flip one byte of it */
    char *at = NULL;
    for (size_t i = 0; i + 16 < n; i++)
        if (memcmp(buf + i, "small_zip/data/0", 16) == 0 && buf[i + 16] != '/') {
            at = buf + i + 16;
            break;
        }
    ASSERT(at);
    size_t       off = (size_t)(at - buf);
    const uint8_t *lh = (const uint8_t *)buf + off - 16 - 30;
    ASSERT(lh[0] == 'P' && lh[1] == 'K' && lh[2] == 3);
    size_t data_off = off + (size_t)(lh[28] | lh[29] << 8);
    buf[data_off] ^= 0x10;
    ASSERT_STATUS(load_buf(buf, n, err, sizeof(err)), ISEG_STATUS_EFORMAT);
    ASSERT_STRCONTAINS(err, "CRC");
    buf[data_off] ^= 0x10;
    ASSERT_OK(load_buf(buf, n, err, sizeof(err)));
    /* central directory offset past the end of the file */
    size_t eocd = n - 22;
    ASSERT(memcmp(buf + eocd, "PK\x05\x06", 4) == 0);
    buf[eocd + 19] = 0x7f;
    ASSERT_STATUS(load_buf(buf, n, err, sizeof(err)), ISEG_STATUS_EFORMAT);
    ASSERT_STRCONTAINS(err, "outside the file");
    free(buf);
    /* not a checkpoint at all */
    ASSERT_STATUS(load_buf("hello world", 11, err, sizeof(err)), ISEG_STATUS_EFORMAT);
    ASSERT_STRCONTAINS(err, "not a safetensors file or a PyTorch checkpoint");
    iseg_weights_t w;
    ASSERT_STATUS(iseg_weights_load(&w, "/nonexistent/x.pth", err, sizeof(err)), ISEG_STATUS_EIO);
    ASSERT(w == NULL);
    ASSERT_STRCONTAINS(err, "/nonexistent/x.pth: cannot open");
}

/* ---- out-of-memory injection: the k-th allocation fails, for k = 1, 2, ... ---- */

static long g_n_alloc, g_fail_at, g_live;

static void *oom_malloc(size_t n, void *user) {
    (void)user;
    if (++g_n_alloc == g_fail_at) return NULL;
    void *p = malloc(n);
    if (p) g_live++;
    return p;
}

static void *oom_realloc(void *p, size_t n, void *user) {
    (void)user;
    if (++g_n_alloc == g_fail_at) return NULL;
    void *q = realloc(p, n);
    if (q && !p) g_live++;
    return q;
}

static void oom_free(void *p, void *user) {
    (void)user;
    if (p) g_live--;
    free(p);
}

TEST(out_of_memory_injection) {
    const char *files[] = {"small_zip.pth", "small_legacy.pth", "small_deflated.pth",
                           "small.expected.safetensors", NULL};
    struct iseg_alloc a = {oom_malloc, oom_realloc, oom_free, NULL};
    iseg_alloc_set(&a);
    char out[4200];
    snprintf(out, sizeof(out), "%s/oom.safetensors", test_tmp_dir());
    for (int f = 0; files[f]; f++) {
        size_t n;
        char  *buf = test_read_file(golden(files[f]), &n);
        for (g_fail_at = 1;; g_fail_at++) {
            g_n_alloc = 0;
            char           err[512];
            iseg_weights_t w  = NULL;
            enum iseg_status st = iseg_weights_load_mem(&w, buf, n, "m", err, sizeof(err));
            if (st == ISEG_STATUS_OK) {
                const char *meta[] = {"k", "v", NULL};
                st = iseg_weights_save_safetensors(out, iseg_weights_at(w, 0),
                                                   iseg_weights_count(w), meta, err, sizeof(err));
                iseg_weights_free(w);
            }
            ASSERT_MSG(st == ISEG_STATUS_OK || st == ISEG_STATUS_ENOMEM || st == ISEG_STATUS_ELIMIT,
                       "%s, allocation %ld fails: %s", files[f], g_fail_at, err);
            if (st != ISEG_STATUS_OK) ASSERT_STRCONTAINS(err, "memory");
            ASSERT_MSG(g_live == 0, "%s, allocation %ld fails: %ld blocks leaked", files[f],
                       g_fail_at, g_live);
            if (g_n_alloc < g_fail_at) {
                ASSERT_OK(st); /* the failure was never reached */
                break;
            }
        }
        free(buf);
    }
    iseg_alloc_set(NULL);
}

/* Optional: a full torchvision Mask R-CNN state dict in both layouts (skipped without
 * torchvision). */
TEST(torchvision_maskrcnn) {
    if (system("/usr/bin/python3 -c 'import torchvision' >/dev/null 2>&1") != 0)
        TEST_SKIP("/usr/bin/python3 cannot import torchvision");
    char cmd[9000];
    snprintf(cmd, sizeof(cmd),
             "cd '%s' && /usr/bin/python3 -c \"import torch, torchvision\n"
             "torch.manual_seed(0)\n"
             "m = torchvision.models.detection.maskrcnn_resnet50_fpn(weights=None, "
             "weights_backbone=None)\n"
             "sd = m.state_dict()\n"
             "# the released checkpoint has frozen batch norms: no num_batches_tracked\n"
             "sd = type(sd)((k, v) for k, v in sd.items() if not k.endswith('num_batches_tracked'))\n"
             "torch.save(sd, 'zip.pth')\n"
             "torch.save(sd, 'legacy.pth', _use_new_zipfile_serialization=False)\n"
             "open('n.txt', 'w').write('%%d %%d' %% (len(sd), sum(v.numel() for v in sd.values() "
             "if v.is_floating_point())))\n\"",
             test_tmp_dir());
    ASSERT_MSG(system(cmd) == 0, "python failed");
    char path[4200];
    snprintf(path, sizeof(path), "%s/n.txt", test_tmp_dir());
    char *nums = test_read_file(path, NULL);
    long long n_tensors = 0, n_floats = 0;
    ASSERT(sscanf(nums, "%lld %lld", &n_tensors, &n_floats) == 2);
    free(nums);
    ASSERT_EQ_INT(n_tensors, 307);
    const char *files[] = {"zip.pth", "legacy.pth"};
    for (int f = 0; f < 2; f++) {
        snprintf(path, sizeof(path), "%s/%s", test_tmp_dir(), files[f]);
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        iseg_weights_t w = load_ok(path);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        double dt = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
        ASSERT_EQ_U64(iseg_weights_count(w), 307);
        long long floats = 0;
        for (size_t i = 0; i < iseg_weights_count(w); i++) {
            const struct iseg_weight *t = iseg_weights_at(w, i);
            if (t->dtype == ISEG_DTYPE_F32) floats += (long long)iseg_weight_numel(t);
        }
        ASSERT_EQ_INT(floats, n_floats);
        ASSERT(floats > 44500000 && floats < 44520000); /* 44.51 M */
        const struct iseg_weight *c1 = iseg_weights_find(w, "backbone.body.conv1.weight");
        ASSERT(c1 && c1->ndim == 4 && c1->shape[0] == 64 && c1->shape[1] == 3 &&
               c1->shape[2] == 7 && c1->shape[3] == 7);
        fprintf(stderr, "  %s: %zu tensors, %lld floats, loaded in %.3f s\n", files[f],
                iseg_weights_count(w), floats, dt);
        iseg_weights_free(w);
        remove(path);
    }
}

TEST_LIST = {
    TEST_ENTRY(dtype_names_and_sizes),
    TEST_ENTRY(small_zip),
    TEST_ENTRY(small_legacy),
    TEST_ENTRY(small_deflated),
    TEST_ENTRY(small_zip64),
    TEST_ENTRY(tiny_torchvision_like),
    TEST_ENTRY(to_f32),
    TEST_ENTRY(safetensors_round_trip),
    TEST_ENTRY(every_truncation_fails_cleanly),
    TEST_ENTRY(byte_flips_never_crash),
    TEST_ENTRY(safetensors_corrupt_headers),
    TEST_ENTRY(pickle_hand_made),
    TEST_ENTRY(zip_corruption),
    TEST_ENTRY(out_of_memory_injection),
    TEST_ENTRY(torchvision_maskrcnn),
    TEST_END,
};
