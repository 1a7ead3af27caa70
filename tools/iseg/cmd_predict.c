/* cmd_predict.c - `iseg predict` (Mask R-CNN inference to COCO results and overlay PNGs) and
 * `iseg dump` (named intermediate tensors for diffing against torch). */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "iseg/coco.h"
#include "iseg/image.h"
#include "iseg/model.h"
#include "iseg/viz.h"
#include "iseg/weights.h"

static const char PREDICT_USAGE[] =
    "usage: iseg predict IMAGE... --model PATH [options]\n"
    "       iseg predict --dataset GT.json --images DIR --model PATH [options]\n"
    "\n"
    "Runs Mask R-CNN (torchvision-compatible weights: .pth or .safetensors) on PNG/JPEG images\n"
    "and writes COCO results (compressed RLE masks, boxes, scores, category ids).\n"
    "\n"
    "options:\n"
    "  --model PATH          weights (state dict of maskrcnn_resnet50_fpn or _v2)\n"
    "  --arch NAME           auto (default), maskrcnn_resnet50_fpn, maskrcnn_resnet50_fpn_v2\n"
    "  --bn-stats S          what the backbone's batch norms normalise with: auto (default:\n"
    "                        the file's iseg.bn_stats, else running), running (torchvision's\n"
    "                        eval mode) or image (each image's own statistics, as iseg's\n"
    "                        trainer normalises; models it trains record this)\n"
    "  --precision P         fp32 (default), bf16 or int8: what the convolutions and fully\n"
    "                        connected layers compute in (bf16: operands rounded to bfloat16,\n"
    "                        f32 sums; int8: 1x1, strided and fully connected layers on 7-bit\n"
    "                        weights and 8-bit activations; the rest stays f32)\n"
    "  --out FILE            COCO results JSON (written atomically; '-' = stdout)\n"
    "  --viz OUT.png|DIR     overlay PNG (one image) or a directory of <name>.png overlays\n"
    "  --viz-thresh S        draw detections with score >= S (default 0.5)\n"
    "  --viz-style S         full (default: masks, boxes, labels) or masks (masks and outlines\n"
    "                        only, for crowded scenes such as cells)\n"
    "  --classes coco|FILE   label names for the overlay: coco or one name per line, line i\n"
    "                        naming label i (line 0 the background); default: the model's\n"
    "                        own names when its file has them, else coco\n"
    "  --score-thresh S      box score filter, strict > (default 0.05)\n"
    "  --mask-thresh S       mask probability threshold, strict > (default 0.5)\n"
    "  --max-dets N          detections per image (default 100)\n"
    "  --min-size N          shorter side after resizing (default 800)\n"
    "  --max-size N          longer side limit (default 1333)\n"
    "  --threads N           worker threads (default: all CPUs)\n"
    "  --timings             print the time of each stage of the model (ms) per image\n"
    "  --repeat N            run each image N times (benchmarks: with --timings, the median\n"
    "                        stage times of runs 2..N; the first is a warm-up)\n"
    "  --dataset GT.json     run on every image of a COCO file, with its image ids\n"
    "  --images DIR          directory of the dataset's images (with --dataset)\n"
    "\n"
    "In IMAGE mode the image id is the file name's numeric stem (000000397133.jpg -> 397133)\n"
    "or, when the stem is not a number, the image's position on the command line (1, 2, ...).\n"
    "Category ids are the model's labels (COCO ids for torchvision's COCO checkpoints), or\n"
    "the ids its file lists (iseg.category_ids); options not given take the model's defaults\n"
    "(torchvision's, or those its file records, e.g. a model trained at 512 px).\n";

struct classes {
    char      **names; /* owned (file) or borrowed (coco, the model's) */
    int         n;
    bool        owned;
    bool        free_array; /* the array is ours, its strings borrowed */
};

static const char *class_name(const struct classes *c, int label) {
    if (label >= 0 && label < c->n && c->names[label]) return c->names[label];
    return NULL;
}

static int load_classes(struct classes *c, const char *spec) {
    memset(c, 0, sizeof(*c));
    if (!spec || strcmp(spec, "coco") == 0) {
        int n;
        const char *const *v = iseg_coco_torchvision_labels(&n);
        c->names = (char **)v;
        c->n = n;
        return 0;
    }
    FILE *f = fopen(spec, "r");
    if (!f) return cli_error("%s: cannot open the class names file: %s", spec, strerror(errno));
    char line[512];
    int cap = 0;
    c->owned = true;
    while (fgets(line, sizeof(line), f)) {
        size_t l = strlen(line);
        while (l && (line[l - 1] == '\n' || line[l - 1] == '\r')) line[--l] = '\0';
        if (c->n == cap) {
            cap = cap ? 2 * cap : 128;
            char **q = realloc(c->names, (size_t)cap * sizeof(*q));
            if (!q) {
                fclose(f);
                return cli_error("out of memory");
            }
            c->names = q;
        }
        c->names[c->n] = strdup(line);
        if (!c->names[c->n++]) {
            fclose(f);
            return cli_error("out of memory");
        }
    }
    fclose(f);
    if (c->n == 0) return cli_error("%s: no class names", spec);
    return 0;
}

static void free_classes(struct classes *c) {
    if (c->owned)
        for (int i = 0; i < c->n; i++) free(c->names[i]);
    if (c->owned || c->free_array) free(c->names);
}

/* ---- results JSON, streamed to a temp file renamed at the end ---- */

struct out {
    FILE *f;
    char *path, *tmp;
    bool  first, to_stdout;
};

static int out_open(struct out *o, const char *path) {
    memset(o, 0, sizeof(*o));
    o->first = true;
    if (!path) return 0;
    if (strcmp(path, "-") == 0) {
        o->f = stdout;
        o->to_stdout = true;
    } else {
        size_t n = strlen(path) + 32;
        o->path = strdup(path);
        o->tmp = malloc(n);
        if (!o->path || !o->tmp) {
            free(o->path);
            free(o->tmp);
            o->path = o->tmp = NULL;
            return cli_error("out of memory");
        }
        snprintf(o->tmp, n, "%s.tmp.%d", path, (int)getpid());
        o->f = fopen(o->tmp, "wb");
        if (!o->f) {
            int rc = cli_error("%s: cannot write: %s", path, strerror(errno));
            free(o->path);
            free(o->tmp);
            o->path = o->tmp = NULL;
            return rc;
        }
    }
    fputc('[', o->f);
    return 0;
}

int cli_write_detections(FILE *f, bool *first, int64_t image_id,
                         const struct iseg_detections *d, const iseg_model_t m) {
    for (size_t i = 0; i < d->n; i++) {
        const struct iseg_detection *x = &d->d[i];
        char *s = NULL;
        size_t len = 0;
        if (iseg_rle_to_string(&x->mask, &s, &len) != ISEG_STATUS_OK)
            return cli_error("out of memory");
        fprintf(f,
                "%s\n{\"image_id\": %lld, \"category_id\": %lld, \"bbox\": [%.2f, %.2f, %.2f, "
                "%.2f], \"score\": %.6f, \"segmentation\": {\"size\": [%u, %u], "
                "\"counts\": \"",
                *first ? "" : ",", (long long)image_id,
                (long long)iseg_model_category_id(m, x->label), x->box[0], x->box[1],
                x->box[2] - x->box[0], x->box[3] - x->box[1], x->score, d->h, d->w);
        /* the RLE alphabet ('0'..'o') holds one character JSON escapes: the backslash */
        for (size_t k = 0; k < len; k++) {
            if (s[k] == '\\') fputc('\\', f);
            fputc(s[k], f);
        }
        fputs("\"}}", f);
        iseg_free(s);
        *first = false;
    }
    return 0;
}

static int out_write(struct out *o, int64_t image_id, const struct iseg_detections *d,
                     const iseg_model_t m) {
    if (!o->f) return 0;
    int rc = cli_write_detections(o->f, &o->first, image_id, d, m);
    if (rc) return rc;
    if (ferror(o->f)) return cli_error("%s: write error", o->path ? o->path : "stdout");
    return 0;
}

static int out_close(struct out *o, bool ok) {
    int rc = 0;
    if (o->f) {
        if (ok) fputs("\n]\n", o->f);
        if (o->to_stdout) fflush(o->f);
        else {
            bool bad = ferror(o->f) != 0;
            if (fclose(o->f) != 0) bad = true;
            if (ok && bad) rc = cli_error("%s: write error", o->path);
            if (ok && !bad && rename(o->tmp, o->path) != 0)
                rc = cli_error("%s: cannot write: %s", o->path, strerror(errno));
            if (!ok || rc) unlink(o->tmp);
        }
    }
    free(o->path);
    free(o->tmp);
    return rc;
}

/* ---- overlay ---- */

static bool is_dir(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

static const char *base_name(const char *p) {
    const char *b = strrchr(p, '/');
    return b ? b + 1 : p;
}

static int write_viz(const char *viz, bool viz_dir, const char *img_path,
                     const struct iseg_image *img, const struct iseg_detections *d,
                     float thresh, bool masks_only, const struct classes *cls) {
    struct iseg_image rgb = {0};
    if (iseg_image_to_rgb8(&rgb, img) != ISEG_STATUS_OK) return cli_error("out of memory");
    struct iseg_viz_det *v = calloc(d->n ? d->n : 1, sizeof(*v));
    char (*labels)[64] = calloc(d->n ? d->n : 1, 64);
    if (!v || !labels) {
        iseg_image_free(&rgb);
        free(v);
        free(labels);
        return cli_error("out of memory");
    }
    size_t n = 0;
    /* lowest score first so that the best detection is drawn on top */
    for (size_t k = d->n; k-- > 0;) {
        const struct iseg_detection *x = &d->d[k];
        if (!(x->score >= thresh)) continue;
        const char *name = class_name(cls, x->label);
        if (name) snprintf(labels[n], 64, "%s", name);
        else snprintf(labels[n], 64, "class %d", x->label);
        v[n].x = x->box[0];
        v[n].y = x->box[1];
        v[n].w = x->box[2] - x->box[0];
        v[n].h = x->box[3] - x->box[1];
        v[n].mask = &x->mask;
        v[n].label = labels[n];
        v[n].score = x->score;
        v[n].color = (int)k;
        n++;
    }
    int rc = 0;
    struct iseg_viz_params vp = iseg_viz_default_params();
    if (masks_only) vp.draw_boxes = vp.draw_labels = false;
    enum iseg_status st = iseg_viz_overlay(&rgb, v, n, &vp);
    if (st != ISEG_STATUS_OK) rc = cli_error("overlay: %s", iseg_status_str(st));
    if (!rc) {
        char path[PATH_MAX];
        if (viz_dir) {
            const char *b = base_name(img_path);
            const char *dot = strrchr(b, '.');
            int stem = dot ? (int)(dot - b) : (int)strlen(b);
            snprintf(path, sizeof(path), "%s/%.*s.png", viz, stem, b);
        } else {
            snprintf(path, sizeof(path), "%s", viz);
        }
        char err[512];
        if (iseg_png_write(path, &rgb, err, sizeof(err)) != ISEG_STATUS_OK)
            rc = cli_error("%s", err);
    }
    iseg_image_free(&rgb);
    free(v);
    free(labels);
    return rc;
}

/* numeric stem of a file name, or -1 */
static int64_t numeric_stem(const char *path) {
    const char *b = base_name(path);
    const char *dot = strrchr(b, '.');
    size_t len = dot ? (size_t)(dot - b) : strlen(b);
    if (len == 0 || len > 18) return -1;
    int64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        if (b[i] < '0' || b[i] > '9') return -1;
        v = v * 10 + (b[i] - '0');
    }
    return v;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* one line per stage: the median over the repeats, in ms */
static void print_timings(FILE *f, const char *path, const struct iseg_infer_timings *tm, int n) {
    static const char *const names[] = {"transform", "backbone", "fpn", "rpn_head",
                                        "rpn_proposals", "box_roi_align", "box_head",
                                        "mask_roi_align", "mask_head", "paste", "total"};
    const size_t n_stages = sizeof(names) / sizeof(*names);
    _Static_assert(sizeof(struct iseg_infer_timings) == 11 * sizeof(double), "stage table");
    double *v = malloc((size_t)n * sizeof(double));
    if (!v) return;
    fprintf(f, "%s: stage times (ms, median of %d)\n", path, n);
    for (size_t k = 0; k < n_stages; k++) {
        for (int r = 0; r < n; r++) v[r] = ((const double *)&tm[r])[k];
        qsort(v, (size_t)n, sizeof(double), cmp_double);
        double med = n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
        fprintf(f, "  %-15s %9.1f\n", names[k], med);
    }
    free(v);
}

/* options not given on the command line are -1 until the model's defaults fill them */
static struct iseg_infer_params unset_params(void) {
    struct iseg_infer_params p = iseg_infer_default_params();
    p.min_size = p.max_size = p.detections_per_img = -1;
    p.score_thresh = p.mask_thresh = -1.0f;
    return p;
}

/* the model's defaults (torchvision's, or its file's metadata), then the user's options */
static struct iseg_infer_params merged_params(const iseg_model_t m, struct iseg_infer_params u) {
    struct iseg_infer_params p = iseg_model_infer_params(m);
    if (u.min_size >= 0) p.min_size = u.min_size;
    if (u.max_size >= 0) p.max_size = u.max_size;
    if (u.detections_per_img >= 0) p.detections_per_img = u.detections_per_img;
    if (u.score_thresh >= 0) p.score_thresh = u.score_thresh;
    if (u.mask_thresh >= 0) p.mask_thresh = u.mask_thresh;
    p.n_threads = u.n_threads;
    return p;
}

struct common_opts {
    const char *model, *arch, *bn_stats, *precision;
    struct iseg_infer_params ip;
    bool bad;
};

/* options shared by predict and dump; returns true when argv[*i] was one of them */
static bool common_opt(int argc, char **argv, int *i, struct common_opts *o) {
    const char *v;
    long long n;
    double x;
    if (cli_opt(argc, argv, i, "--model", &v, &o->bad)) {
        o->model = v;
        return true;
    }
    if (cli_opt(argc, argv, i, "--arch", &v, &o->bad)) {
        o->arch = v;
        return true;
    }
    if (cli_opt(argc, argv, i, "--bn-stats", &v, &o->bad)) {
        o->bn_stats = v;
        return true;
    }
    if (cli_opt(argc, argv, i, "--precision", &v, &o->bad)) {
        o->precision = v;
        return true;
    }
    if (cli_opt(argc, argv, i, "--threads", &v, &o->bad)) {
        if (v && !cli_parse_int(v, 0, 1024, &n)) o->bad = cli_error("--threads: bad value '%s'", v);
        else if (v) o->ip.n_threads = (int)n;
        return true;
    }
    if (cli_opt(argc, argv, i, "--min-size", &v, &o->bad)) {
        if (v && !cli_parse_int(v, 1, 16384, &n)) o->bad = cli_error("--min-size: bad value '%s'", v);
        else if (v) o->ip.min_size = (int)n;
        return true;
    }
    if (cli_opt(argc, argv, i, "--max-size", &v, &o->bad)) {
        if (v && !cli_parse_int(v, 1, 16384, &n)) o->bad = cli_error("--max-size: bad value '%s'", v);
        else if (v) o->ip.max_size = (int)n;
        return true;
    }
    if (cli_opt(argc, argv, i, "--max-dets", &v, &o->bad)) {
        if (v && !cli_parse_int(v, 0, 100000, &n)) o->bad = cli_error("--max-dets: bad value '%s'", v);
        else if (v) o->ip.detections_per_img = (int)n;
        return true;
    }
    if (cli_opt(argc, argv, i, "--score-thresh", &v, &o->bad)) {
        if (v && (!cli_parse_double(v, &x) || !(x >= 0 && x <= 1)))
            o->bad = cli_error("--score-thresh: bad value '%s' (0..1)", v);
        else if (v) o->ip.score_thresh = (float)x;
        return true;
    }
    if (cli_opt(argc, argv, i, "--mask-thresh", &v, &o->bad)) {
        if (v && (!cli_parse_double(v, &x) || !(x >= 0 && x <= 1)))
            o->bad = cli_error("--mask-thresh: bad value '%s' (0..1)", v);
        else if (v) o->ip.mask_thresh = (float)x;
        return true;
    }
    return false;
}

static int load_model(const struct common_opts *o, iseg_model_t *m) {
    if (!o->model) return cli_error("--model is required (a .pth or .safetensors state dict)");
    struct iseg_model_params mp = iseg_model_default_params();
    if (o->arch) {
        mp.arch = iseg_arch_from_name(o->arch);
        if (mp.arch == ISEG_ARCH_COUNT)
            return cli_error("--arch: unknown architecture '%s' (auto, maskrcnn_resnet50_fpn, "
                             "maskrcnn_resnet50_fpn_v2)", o->arch);
    }
    if (o->bn_stats) {
        mp.bn_stats = iseg_bn_stats_from_name(o->bn_stats);
        if (mp.bn_stats == ISEG_BN_STATS_COUNT)
            return cli_error("--bn-stats: auto, running or image, not '%s'", o->bn_stats);
    }
    if (o->precision) {
        mp.precision = iseg_precision_from_name(o->precision);
        if (mp.precision == ISEG_PRECISION_COUNT)
            return cli_error("--precision: fp32, bf16 or int8, not '%s'", o->precision);
    }
    char err[1024];
    if (iseg_model_init_from_file(m, o->model, mp, err, sizeof(err)) != ISEG_STATUS_OK)
        return cli_error("%s", err);
    return 0;
}

static int read_image(const char *path, struct iseg_image *img) {
    char err[1024];
    if (iseg_image_read(path, img, err, sizeof(err)) != ISEG_STATUS_OK)
        return cli_error("%s", err);
    if (img->depth != 8) {
        struct iseg_image rgb = {0};
        enum iseg_status st = iseg_image_to_rgb8(&rgb, img);
        iseg_image_free(img);
        if (st != ISEG_STATUS_OK) return cli_error("%s: out of memory", path);
        *img = rgb;
    }
    return 0;
}

int cmd_predict(int argc, char **argv) {
    struct common_opts o = {0};
    o.ip = unset_params();
    const char *out_path = NULL, *viz = NULL, *classes = NULL, *dataset = NULL, *images = NULL;
    double viz_thresh = 0.5;
    bool   viz_masks_only = false;
    bool timings = false;
    long long repeat = 1;
    const char **inputs = calloc((size_t)argc, sizeof(*inputs));
    int n_inputs = 0;
    if (!inputs) return cli_error("out of memory");
    for (int i = 1; i < argc && !o.bad; i++) {
        const char *v;
        if (cli_flag(argv, i, "--help") || cli_flag(argv, i, "-h")) {
            fputs(PREDICT_USAGE, stdout);
            free(inputs);
            return 0;
        }
        if (common_opt(argc, argv, &i, &o)) continue;
        if (cli_opt(argc, argv, &i, "--out", &v, &o.bad)) out_path = v;
        else if (cli_opt(argc, argv, &i, "--viz", &v, &o.bad)) viz = v;
        else if (cli_opt(argc, argv, &i, "--classes", &v, &o.bad)) classes = v;
        else if (cli_opt(argc, argv, &i, "--dataset", &v, &o.bad)) dataset = v;
        else if (cli_opt(argc, argv, &i, "--images", &v, &o.bad)) images = v;
        else if (cli_flag(argv, i, "--timings")) timings = true;
        else if (cli_opt(argc, argv, &i, "--repeat", &v, &o.bad)) {
            if (v && !cli_parse_int(v, 1, 1000, &repeat))
                o.bad = cli_error("--repeat: bad value '%s' (1..1000)", v);
        } else if (cli_opt(argc, argv, &i, "--viz-style", &v, &o.bad)) {
            if (v && !strcmp(v, "masks")) viz_masks_only = true;
            else if (v && strcmp(v, "full")) o.bad = cli_error("--viz-style: full or masks, not '%s'", v);
        } else if (cli_opt(argc, argv, &i, "--viz-thresh", &v, &o.bad)) {
            if (v && (!cli_parse_double(v, &viz_thresh) || !(viz_thresh >= 0 && viz_thresh <= 1)))
                o.bad = cli_error("--viz-thresh: bad value '%s' (0..1)", v);
        } else if (argv[i][0] == '-' && argv[i][1] != '\0')
            o.bad = cli_error("predict: unknown option '%s' (see iseg predict --help)", argv[i]);
        else inputs[n_inputs++] = argv[i];
    }
    int rc = 0;
    struct iseg_coco_image *ds = NULL;
    size_t n_ds = 0;
    iseg_model_t m = NULL;
    iseg_infer_t ctx = NULL;
    struct classes cls = {0};
    struct out out = {0};
    bool out_open_done = false;
    if (o.bad) {
        rc = CLI_EXIT_ERR;
        goto done;
    }
    if (dataset && n_inputs) {
        rc = cli_error("predict: give either IMAGE... or --dataset, not both");
        goto done;
    }
    if (!dataset && !n_inputs) {
        rc = cli_error("predict: no input images (see iseg predict --help)");
        goto done;
    }
    if (dataset && !images) {
        rc = cli_error("predict: --dataset needs --images DIR");
        goto done;
    }
    if (dataset) {
        char err[1024];
        if (iseg_coco_images_read(dataset, &ds, &n_ds, err, sizeof(err)) != ISEG_STATUS_OK) {
            rc = cli_error("%s", err);
            goto done;
        }
    }
    size_t n_img = dataset ? n_ds : (size_t)n_inputs;
    bool viz_dir = false;
    if (viz) {
        viz_dir = is_dir(viz);
        if (!viz_dir && n_img > 1) {
            rc = cli_error("--viz %s: not a directory (needed for %zu images)", viz, n_img);
            goto done;
        }
    }
    /* fail on a missing image before spending a second on loading the model */
    for (size_t k = 0; k < n_img; k++) {
        char pathbuf[PATH_MAX];
        const char *path = inputs[k];
        if (dataset) {
            snprintf(pathbuf, sizeof(pathbuf), "%s/%s", images, ds[k].file_name);
            path = pathbuf;
        }
        FILE *f = fopen(path, "rb");
        if (!f) {
            rc = cli_error("%s: cannot open: %s", path, strerror(errno));
            goto done;
        }
        fclose(f);
    }
    if ((rc = load_model(&o, &m))) goto done;
    if (!classes && iseg_model_class_name(m, 0)) {
        /* the model names its classes (its file's metadata) */
        cls.n = iseg_model_num_classes(m);
        cls.names = calloc((size_t)cls.n, sizeof(char *));
        if (!cls.names) {
            rc = cli_error("out of memory");
            goto done;
        }
        for (int k = 0; k < cls.n; k++) cls.names[k] = (char *)iseg_model_class_name(m, k);
        cls.owned = false;
        cls.free_array = true;
    } else if ((rc = load_classes(&cls, classes))) {
        goto done;
    }
    if (iseg_infer_init(&ctx, m, merged_params(m, o.ip)) != ISEG_STATUS_OK) {
        rc = cli_error("cannot create the inference context (out of memory)");
        goto done;
    }
    if ((rc = out_open(&out, out_path))) goto done;
    out_open_done = true;
    double t_all = cli_now();
    for (size_t k = 0; k < n_img; k++) {
        char pathbuf[PATH_MAX];
        const char *path;
        int64_t image_id;
        if (dataset) {
            snprintf(pathbuf, sizeof(pathbuf), "%s/%s", images, ds[k].file_name);
            path = pathbuf;
            image_id = ds[k].id;
        } else {
            path = inputs[k];
            int64_t s = numeric_stem(path);
            image_id = s >= 0 ? s : (int64_t)k + 1;
        }
        struct iseg_image img = {0};
        if ((rc = read_image(path, &img))) break;
        struct iseg_detections d = {0};
        double dt = 0;
        enum iseg_status st = ISEG_STATUS_OK;
        struct iseg_infer_timings *tm = calloc((size_t)repeat, sizeof(*tm));
        if (!tm) {
            rc = cli_error("out of memory");
            iseg_image_free(&img);
            break;
        }
        for (long long r = 0; r < repeat && st == ISEG_STATUS_OK; r++) {
            iseg_detections_free(&d);
            double t0 = cli_now();
            st = iseg_infer_run(ctx, &img, &d);
            dt = cli_now() - t0;
            tm[r] = iseg_infer_get_timings(ctx);
        }
        if (st != ISEG_STATUS_OK) {
            rc = cli_error("%s: %s", path, iseg_infer_last_error(ctx));
            iseg_image_free(&img);
            free(tm);
            break;
        }
        /* with several runs the first is a warm-up (arena and scratch sizing) */
        if (timings)
            print_timings(out.to_stdout ? stderr : stdout, path, tm + (repeat > 1),
                          (int)(repeat - (repeat > 1)));
        free(tm);
        rc = out_write(&out, image_id, &d, m);
        if (!rc && viz) rc = write_viz(viz, viz_dir, path, &img, &d, (float)viz_thresh, viz_masks_only, &cls);
        if (!rc) {
            size_t above = 0;
            for (size_t j = 0; j < d.n; j++) above += d.d[j].score >= viz_thresh;
            if (dataset) cli_progress("predict", k + 1, n_img, NULL);
            else
                fprintf(out.to_stdout ? stderr : stdout,
                        "%s: %zu detections (%zu with score >= %.2f) in %.2f s\n", path, d.n,
                        above, viz_thresh, dt);
        }
        iseg_detections_free(&d);
        iseg_image_free(&img);
        if (rc) break;
    }
    if (!rc && dataset) {
        cli_progress_end();
        fprintf(out.to_stdout ? stderr : stdout, "%zu images in %.1f s\n", n_img,
                cli_now() - t_all);
    }
done:
    if (out_open_done) {
        int rc2 = out_close(&out, rc == 0);
        if (!rc) rc = rc2;
    }
    if (!rc && out_path && strcmp(out_path, "-") != 0) printf("wrote %s\n", out_path);
    iseg_infer_free(ctx);
    iseg_model_free(m);
    free_classes(&cls);
    iseg_coco_images_free(ds, n_ds);
    free(inputs);
    return rc;
}

/* ---- dump ---- */

static const char DUMP_USAGE[] =
    "usage: iseg dump IMAGE --model PATH --out DUMP.safetensors [--only NAME,...] [options]\n"
    "\n"
    "Runs the model on one image and writes its named intermediate tensors (input, backbone.stem,\n"
    "backbone.layer1..4, fpn.p2..p6, rpn.head.p2..p6, rpn.proposals, roi.box_features,\n"
    "roi.box_predictions, roi.mask_features, mask.logits) as float32 safetensors, for diffing\n"
    "against torch. --only keeps the listed names. Takes the model options of iseg predict.\n";

struct dump {
    struct iseg_weight *t;
    size_t n, cap;
    const char *only;
    bool oom;
};

static bool wanted(const char *only, const char *name) {
    if (!only) return true;
    size_t l = strlen(name);
    for (const char *p = only; *p;) {
        const char *c = strchr(p, ',');
        size_t k = c ? (size_t)(c - p) : strlen(p);
        if (k == l && strncmp(p, name, l) == 0) return true;
        p += k + (c ? 1 : 0);
    }
    return false;
}

static void dump_cb(const char *name, const float *data, int ndim, const int64_t *shape,
                    void *user) {
    struct dump *d = user;
    if (d->oom || !wanted(d->only, name)) return;
    if (d->n == d->cap) {
        size_t nc = d->cap ? 2 * d->cap : 32;
        struct iseg_weight *q = realloc(d->t, nc * sizeof(*q));
        if (!q) {
            d->oom = true;
            return;
        }
        d->t = q;
        d->cap = nc;
    }
    size_t numel = 1;
    struct iseg_weight *w = &d->t[d->n];
    memset(w, 0, sizeof(*w));
    w->ndim = ndim;
    for (int i = 0; i < ndim; i++) {
        w->shape[i] = shape[i];
        numel *= (size_t)shape[i];
    }
    w->dtype = ISEG_DTYPE_F32;
    w->nbytes = numel * sizeof(float);
    void *copy = malloc(w->nbytes ? w->nbytes : 1);
    char *nm = strdup(name);
    if (!copy || !nm) {
        free(copy);
        free(nm);
        d->oom = true;
        return;
    }
    memcpy(copy, data, w->nbytes);
    w->data = copy;
    w->name = nm;
    d->n++;
}

int cmd_dump(int argc, char **argv) {
    struct common_opts o = {0};
    o.ip = unset_params();
    const char *out_path = NULL, *input = NULL;
    struct dump d = {0};
    for (int i = 1; i < argc && !o.bad; i++) {
        const char *v;
        if (cli_flag(argv, i, "--help") || cli_flag(argv, i, "-h")) {
            fputs(DUMP_USAGE, stdout);
            return 0;
        }
        if (common_opt(argc, argv, &i, &o)) continue;
        if (cli_opt(argc, argv, &i, "--out", &v, &o.bad)) out_path = v;
        else if (cli_opt(argc, argv, &i, "--only", &v, &o.bad)) d.only = v;
        else if (argv[i][0] == '-' && argv[i][1] != '\0')
            o.bad = cli_error("dump: unknown option '%s' (see iseg dump --help)", argv[i]);
        else if (input) o.bad = cli_error("dump: one image at a time");
        else input = argv[i];
    }
    if (o.bad) return CLI_EXIT_ERR;
    if (!input) return cli_error("dump: no input image (see iseg dump --help)");
    if (!out_path) return cli_error("dump: --out DUMP.safetensors is required");
    iseg_model_t m = NULL;
    iseg_infer_t ctx = NULL;
    struct iseg_image img = {0};
    struct iseg_detections dets = {0};
    int rc = load_model(&o, &m);
    if (!rc && iseg_infer_init(&ctx, m, merged_params(m, o.ip)) != ISEG_STATUS_OK)
        rc = cli_error("cannot create the inference context (out of memory)");
    if (!rc) rc = read_image(input, &img);
    if (!rc) {
        iseg_infer_set_tensor_cb(ctx, dump_cb, &d);
        if (iseg_infer_run(ctx, &img, &dets) != ISEG_STATUS_OK)
            rc = cli_error("%s: %s", input, iseg_infer_last_error(ctx));
        else if (d.oom) rc = cli_error("out of memory");
    }
    if (!rc) {
        char err[1024];
        if (iseg_weights_save_safetensors(out_path, d.t, d.n, NULL, err, sizeof(err)) !=
            ISEG_STATUS_OK)
            rc = cli_error("%s", err);
        else printf("wrote %zu tensors to %s (%zu detections)\n", d.n, out_path, dets.n);
    }
    for (size_t i = 0; i < d.n; i++) {
        free((void *)d.t[i].name);
        free((void *)d.t[i].data);
    }
    free(d.t);
    iseg_detections_free(&dets);
    iseg_image_free(&img);
    iseg_infer_free(ctx);
    iseg_model_free(m);
    return rc;
}
