/* cmd_eval.c - iseg eval: COCO evaluation from the command line. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "iseg/coco.h"

static const char EVAL_USAGE[] =
    "usage: iseg eval --gt GT.json --dt RESULTS.json [options]\n"
    "\n"
    "COCO evaluation with pycocotools' exact semantics: the same 12 numbers, bit for bit.\n"
    "\n"
    "  --gt FILE              ground truth (COCO instances JSON); '-' reads stdin\n"
    "  --dt FILE              results (list of {image_id, category_id, score, bbox and/or\n"
    "                         segmentation}); '-' reads stdin\n"
    "  --iou-type T           segm (default), bbox or boundary (Boundary IoU)\n"
    "  --threads N            worker threads (default: one per CPU); results do not depend on it\n"
    "  --json OUT|-           write {iou_type, stats, per_category, timings_s}; '-' = stdout\n"
    "                         (the summary then goes to stderr)\n"
    "  --max-dets A,B,C       default 1,10,100 (increasing)\n"
    "  --iou-thrs T1,T2,...   default 0.50:0.05:0.95 as np.linspace computes them\n"
    "  --area-rng L:H,L:H,L:H,L:H  all, small, medium, large (default 0:1e10,0:1024,1024:9216,9216:1e10)\n"
    "  --cats ID,...          evaluate only these category ids\n"
    "  --imgs ID,...          evaluate only these image ids\n"
    "  --use-cats 0|1         0 pools all categories (default 1)\n"
    "  --dilation-ratio R     Boundary IoU band width as a fraction of the diagonal (0.02)\n"
    "  --per-category         print a per-category table (AP, AP50, AP75, AR100, #gt, #dt)\n"
    "  --plot DIR             write DIR/pr_curves.csv and DIR/pr_curves.png (with\n"
    "                         --per-category also DIR/pr_<id>.png)\n"
    "  --matches OUT.csv      one row per detection and missed ground truth at IoU 0.5\n"
    "                         (area all, max dets C): ids (dt_id = position in the results\n"
    "                         file + 1, as loadRes numbers them), IoU, Dice, tp/fp/ignored/fn\n"
    "  --matches-iou T        threshold for --matches (default 0.5; must be one of --iou-thrs)\n"
    "  --matching M           coco (default, the reference) or hungarian (NOT COCO: optimal\n"
    "                         one-to-one matching per image, category and threshold)\n"
    "  -v, --verbose          report dropped results and other notes\n";

int cmd_eval(int argc, char **argv) {
    struct iseg_coco_eval_params p = iseg_coco_eval_default_params();
    const char *gt = NULL, *dt = NULL, *json = NULL, *plot = NULL, *matches = NULL;
    bool        per_cat = false, verbose = false, bad = false;
    int64_t    *cats = NULL, *imgs = NULL;
    int         rc   = CLI_EXIT_ERR;
    iseg_coco_eval_t ev = NULL;
    char       *text = NULL, *doc = NULL;

    for (int i = 1; i < argc && !bad; i++) {
        const char *v = NULL;
        if (cli_flag(argv, i, "--help") || cli_flag(argv, i, "-h")) {
            fputs(EVAL_USAGE, stdout);
            return 0;
        } else if (cli_opt(argc, argv, &i, "--gt", &v, &bad)) gt = v;
        else if (cli_opt(argc, argv, &i, "--dt", &v, &bad)) dt = v;
        else if (cli_opt(argc, argv, &i, "--json", &v, &bad)) json = v;
        else if (cli_opt(argc, argv, &i, "--plot", &v, &bad)) plot = v;
        else if (cli_opt(argc, argv, &i, "--matches", &v, &bad)) matches = v;
        else if (cli_flag(argv, i, "--per-category")) per_cat = true;
        else if (cli_flag(argv, i, "--verbose") || cli_flag(argv, i, "-v")) verbose = true;
        else if (cli_opt(argc, argv, &i, "--iou-type", &v, &bad)) {
            if (!v) break;
            if (strcmp(v, "segm") == 0) p.iou_type = ISEG_IOU_SEGM;
            else if (strcmp(v, "bbox") == 0) p.iou_type = ISEG_IOU_BBOX;
            else if (strcmp(v, "boundary") == 0) p.iou_type = ISEG_IOU_BOUNDARY;
            else {
                cli_error("--iou-type: expected segm, bbox or boundary, got '%s'", v);
                goto out;
            }
        } else if (cli_opt(argc, argv, &i, "--threads", &v, &bad)) {
            long long n;
            if (!v) break;
            if (!cli_parse_int(v, 0, 256, &n)) {
                cli_error("--threads: expected an integer in [0, 256], got '%s'", v);
                goto out;
            }
            p.n_threads = (int)n;
        } else if (cli_opt(argc, argv, &i, "--max-dets", &v, &bad)) {
            double m[ISEG_COCO_N_MAXDET + 1];
            if (!v) break;
            if (cli_parse_doubles(v, m, ISEG_COCO_N_MAXDET + 1) != ISEG_COCO_N_MAXDET) {
                cli_error("--max-dets: expected three comma-separated integers, got '%s'", v);
                goto out;
            }
            for (int k = 0; k < ISEG_COCO_N_MAXDET; k++) {
                if (!(m[k] >= 1 && m[k] <= 1e9) || m[k] != (double)(uint32_t)m[k]) {
                    cli_error("--max-dets: '%s' is not a positive integer list", v);
                    goto out;
                }
                p.max_dets[k] = (uint32_t)m[k];
            }
        } else if (cli_opt(argc, argv, &i, "--iou-thrs", &v, &bad)) {
            if (!v) break;
            int n = cli_parse_doubles(v, p.iou_thrs, ISEG_COCO_MAX_IOU_THRS);
            if (n <= 0) {
                cli_error("--iou-thrs: expected up to %d comma-separated numbers, got '%s'",
                          ISEG_COCO_MAX_IOU_THRS, v);
                goto out;
            }
            p.n_iou_thrs = (size_t)n;
        } else if (cli_opt(argc, argv, &i, "--area-rng", &v, &bad)) {
            if (!v) break;
            const char *s = v;
            for (int a = 0; a < ISEG_COCO_N_AREA; a++) {
                char *end;
                p.area_rng[a][0] = strtod(s, &end);
                if (end == s || *end != ':') goto bad_area;
                s = end + 1;
                p.area_rng[a][1] = strtod(s, &end);
                if (end == s || (a < ISEG_COCO_N_AREA - 1 ? *end != ',' : *end != 0)) goto bad_area;
                s = end + 1;
            }
            continue;
        bad_area:
            cli_error("--area-rng: expected four LO:HI ranges separated by commas, got '%s'", v);
            goto out;
        } else if (cli_opt(argc, argv, &i, "--cats", &v, &bad)) {
            if (!v) break;
            free(cats);
            cats = NULL;
            if (cli_parse_ids(v, &cats, &p.n_cat_ids) != 0) {
                cli_error("--cats: expected comma-separated integer ids, got '%s'", v);
                goto out;
            }
            p.cat_ids = cats;
        } else if (cli_opt(argc, argv, &i, "--imgs", &v, &bad)) {
            if (!v) break;
            free(imgs);
            imgs = NULL;
            if (cli_parse_ids(v, &imgs, &p.n_img_ids) != 0) {
                cli_error("--imgs: expected comma-separated integer ids, got '%s'", v);
                goto out;
            }
            p.img_ids = imgs;
        } else if (cli_opt(argc, argv, &i, "--use-cats", &v, &bad)) {
            if (!v) break;
            if (strcmp(v, "0") != 0 && strcmp(v, "1") != 0) {
                cli_error("--use-cats: expected 0 or 1, got '%s'", v);
                goto out;
            }
            p.use_cats = v[0] == '1';
        } else if (cli_opt(argc, argv, &i, "--dilation-ratio", &v, &bad)) {
            if (!v) break;
            if (!cli_parse_double(v, &p.dilation_ratio)) {
                cli_error("--dilation-ratio: expected a number, got '%s'", v);
                goto out;
            }
        } else if (cli_opt(argc, argv, &i, "--matches-iou", &v, &bad)) {
            if (!v) break;
            if (!cli_parse_double(v, &p.match_iou)) {
                cli_error("--matches-iou: expected a number, got '%s'", v);
                goto out;
            }
        } else if (cli_opt(argc, argv, &i, "--matching", &v, &bad)) {
            if (!v) break;
            if (strcmp(v, "coco") == 0) p.matching = ISEG_MATCHING_COCO;
            else if (strcmp(v, "hungarian") == 0) p.matching = ISEG_MATCHING_HUNGARIAN;
            else {
                cli_error("--matching: expected coco or hungarian, got '%s'", v);
                goto out;
            }
        } else {
            cli_error("eval: unknown option '%s' (see iseg eval --help)", argv[i]);
            goto out;
        }
    }
    if (bad) goto out;
    if (!gt || !dt) {
        fputs(EVAL_USAGE, stderr);
        cli_error("eval: --gt and --dt are required");
        goto out;
    }
    /* values the library would reject: say which option is wrong */
    for (int k = 1; k < ISEG_COCO_N_MAXDET; k++)
        if (p.max_dets[k] <= p.max_dets[k - 1]) {
            cli_error("--max-dets: must be increasing, got %u,%u,%u", p.max_dets[0],
                      p.max_dets[1], p.max_dets[2]);
            goto out;
        }
    for (size_t t = 0; t < p.n_iou_thrs; t++)
        if (!(p.iou_thrs[t] >= 0 && p.iou_thrs[t] <= 1)) {
            cli_error("--iou-thrs: %g is not in [0, 1]", p.iou_thrs[t]);
            goto out;
        }
    for (int a = 0; a < ISEG_COCO_N_AREA; a++)
        if (!(p.area_rng[a][0] <= p.area_rng[a][1])) {
            cli_error("--area-rng: range %d (%g:%g) is empty", a, p.area_rng[a][0],
                      p.area_rng[a][1]);
            goto out;
        }
    if (!(p.dilation_ratio > 0 && p.dilation_ratio < 1)) {
        cli_error("--dilation-ratio: must be in (0, 1), got %g", p.dilation_ratio);
        goto out;
    }
    p.keep_matches = matches != NULL;
    cli_install_log(verbose);
    p.progress = cli_progress;
    char err[512];
    if (iseg_coco_eval_init(&ev, &p, err, sizeof(err)) != ISEG_STATUS_OK) {
        if (strstr(err, "match IoU")) cli_error("--matches-iou: %s", err);
        else cli_error("eval: %s", err);
        goto out;
    }
    if (iseg_coco_eval_load_files(ev, gt, dt) != ISEG_STATUS_OK ||
        iseg_coco_eval_run(ev) != ISEG_STATUS_OK) {
        cli_error("%s", iseg_coco_eval_last_error(ev));
        goto out;
    }
    cli_progress_end();
    /* output files first (each written atomically), so that a failure leaves no summary */
    bool json_stdout = json && strcmp(json, "-") == 0;
    if ((json && !json_stdout && iseg_coco_eval_write_json(ev, json) != ISEG_STATUS_OK) ||
        (matches && iseg_coco_eval_write_matches(ev, matches) != ISEG_STATUS_OK) ||
        (plot && iseg_coco_eval_write_plots(ev, plot, per_cat) != ISEG_STATUS_OK)) {
        cli_error("%s", iseg_coco_eval_last_error(ev));
        goto out;
    }
    FILE *sout = json_stdout ? stderr : stdout;
    text       = iseg_coco_eval_summary(ev);
    doc        = json_stdout ? iseg_coco_eval_json(ev) : NULL;
    if (!text || (json_stdout && !doc)) {
        cli_error("out of memory");
        goto out;
    }
    fputs(text, sout);
    if (per_cat) {
        fprintf(sout, "\n%-24s %6s %7s %7s %7s %7s %7s %7s\n", "category", "id", "AP", "AP50",
                "AP75", "AR100", "#gt", "#dt");
        for (size_t k = 0; k < iseg_coco_eval_n_cats(ev); k++) {
            struct iseg_coco_cat_result r;
            iseg_coco_eval_cat_result(ev, k, &r);
            fprintf(sout, "%-24.24s %6lld %7.3f %7.3f %7.3f %7.3f %7zu %7zu\n", r.name,
                    (long long)r.id, r.ap, r.ap50, r.ap75, r.ar, r.n_gt, r.n_dt);
        }
    }
    if (doc) fputs(doc, stdout);
    if (fflush(stdout) != 0 || ferror(stdout)) {
        cli_error("<stdout>: write failed: %s", strerror(errno));
        goto out;
    }
    rc = 0;
out:
    iseg_free(text);
    iseg_free(doc);
    free(cats);
    free(imgs);
    iseg_coco_eval_free(ev);
    return rc;
}
