/* cmd_train.c - `iseg train`: Mask R-CNN training on a COCO-format dataset with progress,
 * per-epoch validation (segm AP through the evaluator), the best model kept, and atomic,
 * resumable checkpoints. */
#define _POSIX_C_SOURCE 200809L /* open_memstream */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "iseg/coco.h"
#include "iseg/dataset.h"
#include "iseg/image.h"
#include "iseg/model.h"
#include "iseg/optim.h"
#include "iseg/train.h"
#include "iseg/weights.h"

static const char TRAIN_USAGE[] =
    "usage: iseg train --train-json T.json --train-images DIR\n"
    "                  [--val-json V.json --val-images DIR] [--arch ARCH] [--epochs E]\n"
    "                  [--batch B] [--lr LR] [--size S] [--threads N] [--init PATH]\n"
    "                  [--resume CKPT] --out MODEL.safetensors [options]\n"
    "\n"
    "Trains a Mask R-CNN (ResNet-FPN, torchvision's layout and losses) on a COCO instances\n"
    "dataset. Each epoch ends with a checkpoint and, with a validation set, its segm AP (maxDets\n"
    "100 and 500); the model with the best AP is written to --out (without a validation set,\n"
    "the latest). Ctrl-C or --time-limit stop cleanly with a checkpoint: --resume CKPT continues\n"
    "exactly where the run stopped (same batches, same sampler draws).\n"
    "\n"
    "model:\n"
    "  --arch A              compact (default: ResNet-18-like width 32, FPN 128, ~6 M parameters),\n"
    "                        resnet18, resnet50; with --init the architecture is the file's\n"
    "  --width N, --fpn N, --rep N, --mask-ch N\n"
    "                        override the widths (stem, FPN, box head, mask head)\n"
    "  --init PATH           start from a state dict (.safetensors or torchvision .pth); class-\n"
    "                        specific layers are re-initialised when the class count differs\n"
    "  --frozen-bn           FrozenBatchNorm (use with pretrained backbones)\n"
    "  --mask-loss L         bce (default, torchvision), dice, jaccard, focal, jaccard_dice\n"
    "  --uncertainty         learn the weights of the five losses (Kendall et al. 2018)\n"
    "schedule:\n"
    "  --epochs E            (default 12)   --batch B   images per step (default 2);\n"
    "                        --epochs 0 with --init: no training, only the validation and\n"
    "                        --out (e.g. a model from a checkpoint)\n"
    "  --optimizer O         sgd (default; momentum 0.9, weight decay 1e-4) or adamw (wd 0.05)\n"
    "  --lr LR               base learning rate (sgd 0.02, adamw 1e-4)\n"
    "  --momentum M, --weight-decay W\n"
    "  --warmup N            warm-up iterations from 0.001 lr (default min(1000, one epoch))\n"
    "  --schedule S          cosine (default), step (x0.1 at 2/3 and 8/9 of the epochs), constant\n"
    "  --clip N              clip the gradient norm at N (default off)\n"
    "data:\n"
    "  --size S              short side of the training images (default 512)\n"
    "  --max-size S          long side limit (default 2 x --size)\n"
    "  --crop S              train on random crops of at most S x S of the resized images\n"
    "  --hflip P, --vflip P  flip probabilities (default 0.5, 0)\n"
    "  --scale-jitter A,B    random rescale in [A, B) before resizing (default off)\n"
    "  --erase P             random erasing probability (default 0)\n"
    "  --strips P            strip occlusion probability (default 0)\n"
    "  --rpn-batch N, --box-batch N   sampled anchors / RoIs per image (256, 512)\n"
    "run:\n"
    "  --threads N           compute threads (default: every CPU)\n"
    "  --seed S              (default 0) data order, augmentation, initialisation, sampling\n"
    "  --checkpoint PATH     (default OUT.ckpt.safetensors)\n"
    "  --checkpoint-every M  also checkpoint every M minutes (default 10)\n"
    "  --time-limit M        stop with a checkpoint after M minutes\n"
    "  --max-steps N         stop after N steps of this run (tests, benchmarks)\n"
    "  --val-every E         validate every E epochs (default 1)\n"
    "  --f32                 write --out as float32 (default: float16 weights)\n";

static volatile sig_atomic_t g_stop;

static void on_sigint(int sig) {
    (void)sig;
    g_stop = 1;
}

struct topts {
    const char *train_json, *train_images, *val_json, *val_images, *arch, *init, *resume, *out;
    const char *ckpt, *optimizer, *schedule, *mask_loss;
    long long   epochs, batch, size, max_size, crop, rep, mask_ch, threads, seed, warmup, width, fpn, rpn_batch,
        box_batch, val_every, max_steps;
    double lr, momentum, wd, clip, hflip, vflip, jitter[2], erase, strips, ckpt_every, time_limit;
    bool   frozen_bn, uncertainty, f32, bad;
};

struct run {
    struct topts              o;
    iseg_dataset_t            ds;
    iseg_trainer_t            tr;
    iseg_optim_t              opt;
    iseg_loader_t             ld;
    size_t                    K;
    char                     *class_names, *category_ids; /* metadata strings */
    char                     *gt_json;                    /* validation ground truth */
    size_t                    gt_len;
    struct iseg_coco_image   *vimg;
    size_t                    nv;
    uint64_t                  next_batch;                 /* global batch index */
    double                    best_ap;
    long long                 best_epoch;
    double                    last_ap[2];
    char                      ckpt_path[4096];
};

/* ---- metadata ---------------------------------------------------------------------------- */

static int build_class_meta(struct run *r) {
    size_t cap = 64, cap2 = 64;
    for (size_t k = 1; k <= r->K - 1; k++) cap += strlen(iseg_dataset_class_name(r->ds, k)) + 1;
    cap2 += 24 * r->K;
    r->class_names = malloc(cap);
    r->category_ids = malloc(cap2);
    if (!r->class_names || !r->category_ids) return cli_error("out of memory");
    size_t a = (size_t)snprintf(r->class_names, cap, "__background__");
    size_t b = (size_t)snprintf(r->category_ids, cap2, "0");
    for (size_t k = 1; k < r->K; k++) {
        const char *n = iseg_dataset_class_name(r->ds, k);
        a += (size_t)snprintf(r->class_names + a, cap - a, ",%s", n);
        b += (size_t)snprintf(r->category_ids + b, cap2 - b, ",%lld",
                              (long long)iseg_dataset_category_id(r->ds, k));
    }
    return 0;
}

/* ---- checkpoints --------------------------------------------------------------------------- */

static int save_checkpoint(struct run *r) {
    size_t ns = iseg_optim_state_count(r->opt);
    struct iseg_weight *ex = calloc(ns ? ns : 1, sizeof(*ex));
    char (*names)[96] = calloc(ns ? ns : 1, sizeof(*names));
    if (!ex || !names) {
        free(ex);
        free(names);
        return cli_error("out of memory");
    }
    for (size_t i = 0; i < ns; i++) {
        struct iseg_optim_state s = iseg_optim_state_get(r->opt, i);
        snprintf(names[i], sizeof(names[i]), "opt.%s", s.name);
        ex[i].name = names[i];
        ex[i].dtype = ISEG_DTYPE_F32;
        ex[i].ndim = 1;
        ex[i].shape[0] = (int64_t)s.n;
        ex[i].data = s.data;
        ex[i].nbytes = s.n * sizeof(float);
    }
    const struct iseg_rng *g = iseg_trainer_rng(r->tr);
    char nb[32], best[64], be[32], rng[96];
    snprintf(nb, sizeof(nb), "%" PRIu64, r->next_batch);
    snprintf(best, sizeof(best), "%.17g", r->best_ap);
    snprintf(be, sizeof(be), "%lld", r->best_epoch);
    snprintf(rng, sizeof(rng), "%016" PRIx64 ",%016" PRIx64 ",%016" PRIx64 ",%016" PRIx64,
             g->s[0], g->s[1], g->s[2], g->s[3]);
    const char *md[] = {"iseg.class_names", r->class_names, "iseg.category_ids", r->category_ids,
                        "iseg.train.next_batch", nb, "iseg.train.best_ap", best,
                        "iseg.train.best_epoch", be, "iseg.train.rng", rng,
                        "iseg.train.optimizer", r->o.optimizer, NULL};
    char err[1024];
    enum iseg_status st =
        iseg_trainer_save(r->tr, r->ckpt_path, md, false, ex, ns, err, sizeof(err));
    free(ex);
    free(names);
    if (st) return cli_error("%s", err);
    return 0;
}

static int restore_checkpoint(struct run *r, iseg_weights_t w) {
    const char *v;
    if ((v = iseg_weights_metadata(w, "iseg.train.next_batch")))
        r->next_batch = strtoull(v, NULL, 10);
    if ((v = iseg_weights_metadata(w, "iseg.train.best_ap"))) r->best_ap = strtod(v, NULL);
    if ((v = iseg_weights_metadata(w, "iseg.train.best_epoch"))) r->best_epoch = strtoll(v, NULL, 10);
    if ((v = iseg_weights_metadata(w, "iseg.train.optimizer")) && strcmp(v, r->o.optimizer))
        return cli_error("%s: checkpoint of a %s run, not %s", r->o.resume, v, r->o.optimizer);
    if ((v = iseg_weights_metadata(w, "iseg.train.rng"))) {
        struct iseg_rng *g = iseg_trainer_rng(r->tr);
        if (sscanf(v, "%" SCNx64 ",%" SCNx64 ",%" SCNx64 ",%" SCNx64, &g->s[0], &g->s[1],
                   &g->s[2], &g->s[3]) != 4)
            return cli_error("%s: bad iseg.train.rng", r->o.resume);
    }
    for (size_t i = 0; i < iseg_weights_count(w); i++) {
        const struct iseg_weight *x = iseg_weights_at(w, i);
        if (strncmp(x->name, "opt.", 4)) continue;
        size_t n = iseg_weight_numel(x);
        float *buf = malloc((n ? n : 1) * sizeof(float));
        if (!buf) return cli_error("out of memory");
        enum iseg_status st = iseg_weight_to_f32(buf, x);
        if (!st) st = iseg_optim_state_set(r->opt, x->name + 4, buf, n);
        free(buf);
        if (st) return cli_error("%s: %s: cannot restore (%s)", r->o.resume, x->name,
                                 iseg_status_str(st));
    }
    return 0;
}

/* ---- validation ---------------------------------------------------------------------------- */

static int evaluate(const struct run *r, const char *dt, size_t dt_len, const uint32_t md[3],
                    double *ap, double *ap50) {
    struct iseg_coco_eval_params p = iseg_coco_eval_default_params();
    p.iou_type = ISEG_IOU_SEGM;
    p.n_threads = (int)r->o.threads;
    memcpy(p.max_dets, md, sizeof(p.max_dets));
    iseg_coco_eval_t ev;
    char err[512];
    if (iseg_coco_eval_init(&ev, &p, err, sizeof(err))) return cli_error("eval: %s", err);
    int rc = 0;
    if (iseg_coco_eval_load_mem(ev, r->gt_json, r->gt_len, r->o.val_json, dt, dt_len,
                                "<detections>") ||
        iseg_coco_eval_run(ev)) {
        rc = cli_error("validation: %s", iseg_coco_eval_last_error(ev));
    } else {
        *ap = iseg_coco_eval_stats(ev)[0];
        *ap50 = iseg_coco_eval_stats(ev)[1];
    }
    iseg_coco_eval_free(ev);
    return rc;
}

/* segm AP at maxDets 100 and 500 of the current weights on the validation set */
static int validate(struct run *r, double ap[2], double ap50[2]) {
    char tmp[4200], err[1024];
    snprintf(tmp, sizeof(tmp), "%s.val.%d.safetensors", r->ckpt_path, (int)getpid());
    const char *md[] = {"iseg.class_names", r->class_names, "iseg.category_ids", r->category_ids,
                        NULL};
    if (iseg_trainer_save(r->tr, tmp, md, false, NULL, 0, err, sizeof(err)))
        return cli_error("%s", err);
    iseg_model_t m;
    enum iseg_status st = iseg_model_init_from_file(&m, tmp, iseg_model_default_params(), err,
                                                    sizeof(err));
    unlink(tmp);
    if (st) return cli_error("%s", err);
    struct iseg_infer_params ip = iseg_model_infer_params(m);
    ip.detections_per_img = 500;
    ip.n_threads = (int)r->o.threads;
    iseg_infer_t ctx;
    if (iseg_infer_init(&ctx, m, ip)) {
        iseg_model_free(m);
        return cli_error("out of memory");
    }
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    int rc = f ? 0 : cli_error("out of memory");
    bool first = true;
    if (f) fputc('[', f);
    for (size_t k = 0; k < r->nv && !rc; k++) {
        char path[4096];
        snprintf(path, sizeof(path), "%s/%s", r->o.val_images, r->vimg[k].file_name);
        struct iseg_image img = {0};
        struct iseg_detections d = {0};
        if (iseg_image_read(path, &img, err, sizeof(err))) {
            rc = cli_error("%s", err);
        } else if (iseg_infer_run(ctx, &img, &d)) {
            rc = cli_error("%s: %s", path, iseg_infer_last_error(ctx));
        } else {
            rc = cli_write_detections(f, &first, r->vimg[k].id, &d, m);
        }
        iseg_detections_free(&d);
        iseg_image_free(&img);
        cli_progress("validate", k + 1, r->nv, NULL);
    }
    cli_progress_end();
    if (f) {
        fputc(']', f);
        fclose(f);
    }
    static const uint32_t md100[3] = {1, 10, 100}, md500[3] = {1, 100, 500};
    if (!rc) rc = evaluate(r, buf, len, md100, &ap[0], &ap50[0]);
    if (!rc) rc = evaluate(r, buf, len, md500, &ap[1], &ap50[1]);
    free(buf);
    iseg_infer_free(ctx);
    iseg_model_free(m);
    return rc;
}

/* The end of epoch e (0: --epochs 0): with a validation set (every --val-every epochs and at
 * the last), the AP, and --out when it is the best so far; without one, --out. */
static int end_epoch(struct run *r, long long e, bool last) {
    const struct topts *o = &r->o;
    char err[2048];
    int rc;
    if (o->val_json && !(e % o->val_every == 0 || last)) return 0;
    if (!o->val_json) {
        const char *md[] = {"iseg.class_names", r->class_names, "iseg.category_ids",
                            r->category_ids, NULL};
        if (iseg_trainer_save(r->tr, o->out, md, !o->f32, NULL, 0, err, sizeof(err)))
            return cli_error("%s", err);
        return 0;
    }
    double ap[2], ap50[2];
    if ((rc = validate(r, ap, ap50))) return rc;
    r->last_ap[0] = ap[0];
    r->last_ap[1] = ap[1];
    bool best = ap[0] > r->best_ap;
    fprintf(stderr, "epoch %lld: val segm AP %.4f (AP50 %.4f) at maxDets 100, %.4f at 500%s\n", e,
            ap[0], ap50[0], ap[1], best && e ? " - best so far" : "");
    if (!best) return 0;
    r->best_ap = ap[0];
    r->best_epoch = e;
    char a1[32], a2[32], es[32];
    snprintf(a1, sizeof(a1), "%.4f", ap[0]);
    snprintf(a2, sizeof(a2), "%.4f", ap[1]);
    snprintf(es, sizeof(es), "%lld", e);
    const char *md[] = {"iseg.class_names", r->class_names, "iseg.category_ids", r->category_ids,
                        "iseg.train.val_segm_ap", a1, "iseg.train.val_segm_ap_500", a2,
                        "iseg.train.epoch", es, NULL};
    if (iseg_trainer_save(r->tr, o->out, md, !o->f32, NULL, 0, err, sizeof(err)))
        return cli_error("%s", err);
    return 0;
}

/* ---- the run ----------------------------------------------------------------------------- */

static int read_file(const char *path, char **out, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return cli_error("%s: cannot open: %s", path, strerror(errno));
    char *buf = NULL;
    size_t cap = 0, len = 0;
    for (;;) {
        if (len + 65536 > cap) {
            cap = cap ? 2 * cap : 1 << 20;
            char *q = realloc(buf, cap);
            if (!q) {
                free(buf);
                fclose(f);
                return cli_error("out of memory");
            }
            buf = q;
        }
        size_t k = fread(buf + len, 1, cap - len, f);
        len += k;
        if (k == 0) break;
    }
    bool bad = ferror(f);
    fclose(f);
    if (bad) {
        free(buf);
        return cli_error("%s: read error", path);
    }
    *out = buf;
    *n = len;
    return 0;
}

static int parse_args(int argc, char **argv, struct topts *o) {
    memset(o, 0, sizeof(*o));
    o->arch = NULL;
    o->optimizer = "sgd";
    o->schedule = "cosine";
    o->mask_loss = "bce";
    o->epochs = 12;
    o->batch = 2;
    o->size = 512;
    o->warmup = -1;
    o->lr = -1;
    o->momentum = 0.9;
    o->wd = -1;
    o->hflip = 0.5;
    o->jitter[0] = o->jitter[1] = 1.0;
    o->ckpt_every = 10;
    o->val_every = 1;
    o->rpn_batch = 256;
    o->box_batch = 512;
    struct { const char *name; long long *dst, lo, hi; } ints[] = {
        {"--epochs", &o->epochs, 0, 100000},     {"--batch", &o->batch, 1, 1024},
        {"--size", &o->size, 32, 4096},          {"--max-size", &o->max_size, 32, 8192},
        {"--crop", &o->crop, 32, 8192},          {"--rep", &o->rep, 1, 65536},
        {"--mask-ch", &o->mask_ch, 1, 4096},
        {"--threads", &o->threads, 0, 1024},     {"--seed", &o->seed, 0, INT64_MAX},
        {"--warmup", &o->warmup, 0, 1000000000}, {"--width", &o->width, 1, 1024},
        {"--fpn", &o->fpn, 1, 4096},             {"--rpn-batch", &o->rpn_batch, 1, 1000000},
        {"--box-batch", &o->box_batch, 1, 1000000}, {"--val-every", &o->val_every, 1, 100000},
        {"--max-steps", &o->max_steps, 1, INT64_MAX}};
    struct { const char *name; double *dst; } dbls[] = {
        {"--lr", &o->lr}, {"--momentum", &o->momentum}, {"--weight-decay", &o->wd},
        {"--clip", &o->clip}, {"--hflip", &o->hflip}, {"--vflip", &o->vflip},
        {"--erase", &o->erase}, {"--strips", &o->strips}, {"--checkpoint-every", &o->ckpt_every},
        {"--time-limit", &o->time_limit}};
    for (int i = 1; i < argc; i++) {
        const char *v;
        bool hit = false;
        for (size_t k = 0; k < sizeof(ints) / sizeof(*ints) && !hit; k++)
            if (cli_opt(argc, argv, &i, ints[k].name, &v, &o->bad)) {
                hit = true;
                if (!cli_parse_int(v, ints[k].lo, ints[k].hi, ints[k].dst))
                    return cli_error("%s: bad value '%s'", ints[k].name, v);
            }
        for (size_t k = 0; k < sizeof(dbls) / sizeof(*dbls) && !hit; k++)
            if (cli_opt(argc, argv, &i, dbls[k].name, &v, &o->bad)) {
                hit = true;
                if (!cli_parse_double(v, dbls[k].dst) || !(*dbls[k].dst >= 0))
                    return cli_error("%s: bad value '%s'", dbls[k].name, v);
            }
        if (hit) continue;
        if (cli_opt(argc, argv, &i, "--train-json", &v, &o->bad)) o->train_json = v;
        else if (cli_opt(argc, argv, &i, "--train-images", &v, &o->bad)) o->train_images = v;
        else if (cli_opt(argc, argv, &i, "--val-json", &v, &o->bad)) o->val_json = v;
        else if (cli_opt(argc, argv, &i, "--val-images", &v, &o->bad)) o->val_images = v;
        else if (cli_opt(argc, argv, &i, "--arch", &v, &o->bad)) o->arch = v;
        else if (cli_opt(argc, argv, &i, "--init", &v, &o->bad)) o->init = v;
        else if (cli_opt(argc, argv, &i, "--resume", &v, &o->bad)) o->resume = v;
        else if (cli_opt(argc, argv, &i, "--out", &v, &o->bad)) o->out = v;
        else if (cli_opt(argc, argv, &i, "--checkpoint", &v, &o->bad)) o->ckpt = v;
        else if (cli_opt(argc, argv, &i, "--optimizer", &v, &o->bad)) o->optimizer = v;
        else if (cli_opt(argc, argv, &i, "--schedule", &v, &o->bad)) o->schedule = v;
        else if (cli_opt(argc, argv, &i, "--mask-loss", &v, &o->bad)) o->mask_loss = v;
        else if (cli_opt(argc, argv, &i, "--scale-jitter", &v, &o->bad)) {
            if (cli_parse_doubles(v, o->jitter, 2) != 2 || !(o->jitter[0] > 0) ||
                !(o->jitter[0] <= o->jitter[1]))
                return cli_error("--scale-jitter: expected A,B with 0 < A <= B, got '%s'", v);
        } else if (cli_flag(argv, i, "--frozen-bn")) o->frozen_bn = true;
        else if (cli_flag(argv, i, "--uncertainty")) o->uncertainty = true;
        else if (cli_flag(argv, i, "--f32")) o->f32 = true;
        else if (cli_flag(argv, i, "--help") || cli_flag(argv, i, "-h")) {
            fputs(TRAIN_USAGE, stdout);
            return -1;
        } else {
            fputs(TRAIN_USAGE, stderr);
            return cli_error("train: unknown option '%s'", argv[i]);
        }
        if (o->bad) return CLI_EXIT_ERR;
    }
    if (o->bad) return CLI_EXIT_ERR;
    if (!o->train_json || !o->train_images || !o->out) {
        fputs(TRAIN_USAGE, stderr);
        return cli_error("train: --train-json, --train-images and --out are required");
    }
    if (!o->val_json != !o->val_images)
        return cli_error("train: --val-json and --val-images go together");
    if (o->epochs == 0 && (!o->init || o->resume))
        return cli_error("train: --epochs 0 (no training: validation and --out only) needs --init "
                         "and no --resume");
    if (strcmp(o->optimizer, "sgd") && strcmp(o->optimizer, "adamw"))
        return cli_error("--optimizer: sgd or adamw, not '%s'", o->optimizer);
    if (strcmp(o->schedule, "cosine") && strcmp(o->schedule, "step") &&
        strcmp(o->schedule, "constant"))
        return cli_error("--schedule: cosine, step or constant, not '%s'", o->schedule);
    if (iseg_mask_loss_from_name(o->mask_loss) == ISEG_MASK_LOSS_COUNT)
        return cli_error("--mask-loss: bce, dice, jaccard, focal or jaccard_dice, not '%s'",
                         o->mask_loss);
    if (o->hflip > 1 || o->vflip > 1 || o->erase > 1 || o->strips > 1)
        return cli_error("probabilities must lie in [0, 1]");
    bool adam = !strcmp(o->optimizer, "adamw");
    if (o->lr < 0) o->lr = adam ? 1e-4 : 0.02;
    if (o->wd < 0) o->wd = adam ? 0.05 : 1e-4;
    if (!o->max_size) o->max_size = 2 * o->size;
    if (o->max_size < o->size) return cli_error("--max-size must be >= --size");
    return 0;
}

static int make_trainer(struct run *r) {
    const struct topts *o = &r->o;
    struct iseg_trainer_params tp = iseg_trainer_default_params();
    tp.min_size = (int)o->size;
    tp.max_size = (int)o->max_size;
    tp.crop_size = (int)o->crop;
    tp.rpn_batch = (int)o->rpn_batch;
    tp.box_batch = (int)o->box_batch;
    tp.mask_loss = iseg_mask_loss_from_name(o->mask_loss);
    tp.uncertainty_weighting = o->uncertainty;
    tp.frozen_bn = o->frozen_bn;
    tp.n_threads = (int)o->threads;
    char err[1024];
    const char *from = o->resume ? o->resume : o->init;
    if (from) {
        iseg_weights_t w;
        if (iseg_weights_load(&w, from, err, sizeof(err))) return cli_error("%s", err);
        size_t missing = 0;
        enum iseg_status st = iseg_trainer_from_weights(&r->tr, w, (int)r->K, &tp,
                                                        (uint64_t)o->seed, &missing, err,
                                                        sizeof(err));
        int rc = st ? cli_error("%s: %s", from, err) : 0;
        if (!rc && missing)
            fprintf(stderr, "iseg: %s: %zu tensors not in the file keep their initialisation\n",
                    from, missing);
        if (!rc) {
            size_t np;
            const struct iseg_param *ps = iseg_trainer_params(r->tr, &np);
            if (!strcmp(o->optimizer, "adamw")) {
                struct iseg_adamw_params ap = iseg_adamw_default_params();
                ap.lr = o->lr;
                ap.weight_decay = o->wd;
                if (iseg_optim_adamw_init(&r->opt, ps, np, &ap)) rc = cli_error("bad optimizer");
            } else {
                struct iseg_sgd_params sp = iseg_sgd_default_params();
                sp.lr = o->lr;
                sp.momentum = o->momentum;
                sp.weight_decay = o->wd;
                if (iseg_optim_sgd_init(&r->opt, ps, np, &sp)) rc = cli_error("bad optimizer");
            }
        }
        if (!rc && o->resume) rc = restore_checkpoint(r, w);
        iseg_weights_free(w);
        return rc;
    }
    struct iseg_train_arch a = iseg_train_arch_compact((int)r->K);
    const char *arch = o->arch ? o->arch : "compact";
    if (!strcmp(arch, "resnet18") || !strcmp(arch, "resnet50")) {
        a.width = 64;
        a.fpn = 256;
        a.rep = 1024;
        a.mask_ch = 256;
        for (int l = 0; l < 5; l++) a.anchor_sizes[l] = (float)(32 << l);
        if (!strcmp(arch, "resnet50")) {
            static const int nb[4] = {3, 4, 6, 3};
            a.bottleneck = true;
            memcpy(a.n_blocks, nb, sizeof(nb));
        }
    } else if (strcmp(arch, "compact")) {
        return cli_error("--arch: compact, resnet18 or resnet50, not '%s'", arch);
    }
    if (o->width) a.width = (int)o->width;
    if (o->fpn) a.fpn = (int)o->fpn;
    if (o->rep) a.rep = (int)o->rep;
    if (o->mask_ch) a.mask_ch = (int)o->mask_ch;
    if (iseg_trainer_new(&r->tr, &a, &tp, (uint64_t)o->seed, err, sizeof(err)))
        return cli_error("%s", err);
    size_t np;
    const struct iseg_param *ps = iseg_trainer_params(r->tr, &np);
    enum iseg_status st;
    if (!strcmp(o->optimizer, "adamw")) {
        struct iseg_adamw_params ap = iseg_adamw_default_params();
        ap.lr = o->lr;
        ap.weight_decay = o->wd;
        st = iseg_optim_adamw_init(&r->opt, ps, np, &ap);
    } else {
        struct iseg_sgd_params sp = iseg_sgd_default_params();
        sp.lr = o->lr;
        sp.momentum = o->momentum;
        sp.weight_decay = o->wd;
        st = iseg_optim_sgd_init(&r->opt, ps, np, &sp);
    }
    return st ? cli_error("optimizer: %s", iseg_status_str(st)) : 0;
}

static void fmt_time(char *buf, size_t n, double s) {
    if (!(s >= 0) || s > 1e7) {
        snprintf(buf, n, "--:--");
        return;
    }
    long t = (long)s;
    if (t >= 3600) snprintf(buf, n, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
    else snprintf(buf, n, "%ld:%02ld", t / 60, t % 60);
}

struct meter {
    double sum[6];
    size_t n;
};

int cmd_train(int argc, char **argv) {
    struct run r;
    memset(&r, 0, sizeof(r));
    r.best_ap = -1;
    r.best_epoch = -1;
    int rc = parse_args(argc, argv, &r.o);
    if (rc) return rc < 0 ? 0 : rc;
    const struct topts *o = &r.o;
    if (o->ckpt) snprintf(r.ckpt_path, sizeof(r.ckpt_path), "%s", o->ckpt);
    else snprintf(r.ckpt_path, sizeof(r.ckpt_path), "%s.ckpt.safetensors", o->out);
    cli_install_log(false);
    char err[2048];
    struct iseg_dataset_params dp = iseg_dataset_default_params();
    dp.n_threads = (int)o->threads;
    if (iseg_dataset_open(&r.ds, o->train_json, o->train_images, &dp, err, sizeof(err)))
        return cli_error("%s", err);
    {
        char rep[4096];
        iseg_dataset_report_format(iseg_dataset_report(r.ds), rep, sizeof(rep));
        fprintf(stderr, "%s: %s", o->train_json, rep);
    }
    r.K = iseg_dataset_num_classes(r.ds) + 1;
    if ((rc = build_class_meta(&r))) goto done;
    if (o->val_json) {
        if ((rc = read_file(o->val_json, &r.gt_json, &r.gt_len))) goto done;
        if (iseg_coco_images_read(o->val_json, &r.vimg, &r.nv, err, sizeof(err))) {
            rc = cli_error("%s", err);
            goto done;
        }
    }
    if ((rc = make_trainer(&r))) goto done;
    if (o->epochs == 0) { /* no training: no loader, no schedule */
        if ((rc = end_epoch(&r, 0, true)) == 0)
            fprintf(stderr, "done: model %s\n", o->out);
        goto done;
    }
    struct iseg_loader_params lp = iseg_loader_default_params();
    lp.batch_size = (size_t)o->batch;
    lp.seed = (uint64_t)o->seed;
    lp.n_threads = 1;
    lp.hflip_p = o->hflip;
    lp.vflip_p = o->vflip;
    lp.scale_min = o->jitter[0];
    lp.scale_max = o->jitter[1];
    lp.erase.p = o->erase;
    lp.strip.p = o->strips;
    lp.start_batch = r.next_batch;
    if (iseg_loader_init(&r.ld, r.ds, &lp, err, sizeof(err))) {
        rc = cli_error("%s", err);
        goto done;
    }
    const size_t nb = iseg_loader_num_batches(r.ld);
    const uint64_t total = (uint64_t)o->epochs * nb;
    struct iseg_lr_schedule sch = iseg_lr_schedule_default(o->lr);
    sch.warmup_iters = o->warmup >= 0 ? o->warmup : (int64_t)(nb - 1 < 1000 ? nb - 1 : 1000);
    int64_t ms[2] = {(o->epochs * 2 + 2) / 3, (o->epochs * 8 + 8) / 9};
    if (!strcmp(o->schedule, "cosine")) {
        sch.decay = ISEG_LR_COSINE;
        sch.t_max = (int64_t)total;
    } else if (!strcmp(o->schedule, "step")) {
        sch.decay = ISEG_LR_MULTISTEP;
        sch.milestones = ms;
        sch.n_milestones = 2;
    }
    {
        struct iseg_train_arch a = iseg_trainer_arch(r.tr);
        size_t np, nparam = 0;
        const struct iseg_param *ps = iseg_trainer_params(r.tr, &np);
        for (size_t i = 0; i < np; i++) nparam += ps[i].n;
        fprintf(stderr,
                "model: %s blocks %d-%d-%d-%d, width %d, FPN %d, %zu classes, %.2f M parameters\n"
                "training: %lld epochs x %zu steps of %lld images, %s lr %g (%s, warm-up %lld), "
                "size %lld/%lld, seed %lld%s\n",
                a.bottleneck ? "bottleneck" : "basic", a.n_blocks[0], a.n_blocks[1],
                a.n_blocks[2], a.n_blocks[3], a.width, a.fpn, r.K - 1, (double)nparam / 1e6,
                o->epochs, nb, o->batch, o->optimizer, o->lr, o->schedule,
                (long long)sch.warmup_iters, o->size, o->max_size, o->seed,
                r.next_batch ? " (resumed)" : "");
        if (r.next_batch)
            fprintf(stderr, "resuming at epoch %" PRIu64 " step %" PRIu64 " (best AP %.4f)\n",
                    r.next_batch / nb + 1, r.next_batch % nb + 1, r.best_ap);
    }
    signal(SIGINT, on_sigint);
    const bool tty = isatty(STDERR_FILENO);
    const double t_start = cli_now();
    double t_ckpt = t_start, t_line = 0;
    long long steps = 0, nonfinite = 0, images = 0;
    struct meter mt = {{0}, 0};
    bool stopped = false;
    while (r.next_batch < total) {
        if (g_stop || (o->time_limit > 0 && cli_now() - t_start > o->time_limit * 60) ||
            (o->max_steps && steps >= o->max_steps)) {
            stopped = true;
            break;
        }
        const struct iseg_batch *b;
        if (iseg_loader_next(r.ld, &b, err, sizeof(err))) {
            cli_progress_end();
            fprintf(stderr, "\niseg: warning: batch skipped: %s\n", err);
            r.next_batch++;
            continue;
        }
        const uint64_t epoch = r.next_batch / nb;
        iseg_optim_zero_grad(r.opt);
        double l[6] = {0};
        bool finite = true;
        for (size_t j = 0; j < b->n && !rc; j++) {
            struct iseg_train_losses tl;
            if (iseg_trainer_step(r.tr, &b->samples[j], 1.0f / (float)b->n, &tl)) {
                rc = cli_error("%s: %s", iseg_dataset_file_name(r.ds, b->index[j]),
                               iseg_trainer_last_error(r.tr));
                break;
            }
            double v[6] = {tl.total, tl.objectness, tl.rpn_box, tl.classifier, tl.box, tl.mask};
            for (int k = 0; k < 6; k++) l[k] += v[k] / (double)b->n;
            finite = finite && isfinite(tl.total);
        }
        if (rc) break;
        size_t np;
        const struct iseg_param *ps = iseg_trainer_params(r.tr, &np);
        double gn = o->clip > 0 ? iseg_clip_grad_norm(ps, np, o->clip) : 0.0;
        if (!finite || !isfinite(gn)) {
            if (++nonfinite >= 20) {
                rc = cli_error("20 steps with non-finite losses: lower the learning rate "
                               "(--lr) or clip the gradients (--clip)");
                break;
            }
        } else {
            nonfinite = 0;
            iseg_optim_set_lr(r.opt, iseg_lr_schedule_get(&sch, (int64_t)r.next_batch,
                                                         (int64_t)r.next_batch));
            iseg_optim_step(r.opt);
            for (int k = 0; k < 6; k++) mt.sum[k] += l[k];
            mt.n++;
        }
        r.next_batch++;
        steps++;
        images += (long long)b->n;
        /* progress */
        double now = cli_now(), el = now - t_start;
        double eta = el / (double)steps * (double)(total - r.next_batch);
        size_t step_in = (size_t)(r.next_batch - epoch * nb);
        if (tty || now - t_line > 30 || step_in == nb) {
            char es[32], ts[32];
            fmt_time(es, sizeof(es), el);
            fmt_time(ts, sizeof(ts), eta);
            double n = mt.n ? (double)mt.n : 1;
            char bar[24];
            int fill = (int)((double)step_in / (double)nb * 20);
            for (int k = 0; k < 20; k++) bar[k] = k < fill ? '#' : '.';
            bar[20] = 0;
            fprintf(stderr,
                    "%sepoch %" PRIu64 "/%lld [%s] %zu/%zu loss %.3f (obj %.3f rpn %.3f cls %.3f "
                    "box %.3f mask %.3f) lr %.2g %.2f img/s %s ETA %s%s",
                    tty ? "\r\033[K" : "", epoch + 1, o->epochs, bar, step_in, nb, mt.sum[0] / n,
                    mt.sum[1] / n, mt.sum[2] / n, mt.sum[3] / n, mt.sum[4] / n, mt.sum[5] / n,
                    iseg_optim_get_lr(r.opt), (double)images / el, es, ts, tty ? "" : "\n");
            fflush(stderr);
            t_line = now;
        }
        bool epoch_end = r.next_batch % nb == 0;
        if (epoch_end) {
            if (tty) fputc('\n', stderr);
            memset(&mt, 0, sizeof(mt));
            if ((rc = end_epoch(&r, (long long)(r.next_batch / nb), r.next_batch == total)))
                break;
        }
        if (epoch_end || now - t_ckpt > o->ckpt_every * 60) {
            if ((rc = save_checkpoint(&r))) break;
            t_ckpt = cli_now();
        }
    }
    if (tty) fputc('\n', stderr);
    if (!rc && stopped) {
        if ((rc = save_checkpoint(&r)) == 0)
            fprintf(stderr, "stopped after %lld steps (epoch %" PRIu64 ", step %" PRIu64
                            "); continue with --resume %s\n",
                    steps, r.next_batch / nb + 1, r.next_batch % nb + 1, r.ckpt_path);
    } else if (!rc) {
        if (o->val_json)
            fprintf(stderr, "done: best val segm AP %.4f (epoch %lld), model %s\n", r.best_ap,
                    r.best_epoch, o->out);
        else
            fprintf(stderr, "done: model %s\n", o->out);
    }
done:
    iseg_loader_free(r.ld);
    iseg_optim_free(r.opt);
    iseg_trainer_free(r.tr);
    iseg_dataset_free(r.ds);
    iseg_coco_images_free(r.vimg, r.nv);
    free(r.gt_json);
    free(r.class_names);
    free(r.category_ids);
    return rc;
}
