/* cmd_panoptic_eval.c - iseg panoptic eval: Panoptic Quality and Boundary PQ. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "iseg/panoptic.h"

static const char PANOPTIC_EVAL_USAGE[] =
    "usage: iseg panoptic eval --gt-json G.json --gt-dir GDIR --pred-json P.json --pred-dir PDIR\n"
    "                          [options]\n"
    "\n"
    "Panoptic Quality (PQ = SQ x RQ) as panopticapi's pq_compute computes it, bit for bit;\n"
    "with --boundary, Boundary PQ as boundary-iou-api computes it.\n"
    "\n"
    "  --gt-json FILE         ground truth (COCO panoptic JSON with categories); '-' = stdin\n"
    "  --gt-dir DIR           ground-truth PNGs (id = R + 256 G + 256^2 B)\n"
    "  --pred-json FILE       predictions (COCO panoptic JSON); '-' = stdin\n"
    "  --pred-dir DIR         prediction PNGs\n"
    "  --boundary             Boundary PQ: IoU = min(mask IoU, boundary IoU)\n"
    "  --dilation-ratio R     boundary band width as a fraction of the diagonal (0.02)\n"
    "  --threads N            worker threads (default: one per CPU); results do not depend on it\n"
    "  --workers K            summation order of the reference's K worker processes (default 2,\n"
    "                         the reference on a 2-core machine); changes only the last bits\n"
    "  --json OUT|-           write {All, Things, Stuff: {pq, sq, rq, n}, per_class}; '-' =\n"
    "                         stdout (the table then goes to stderr)\n"
    "  --per-class            also print PQ, SQ, RQ, TP, FP, FN for every category that has\n"
    "                         any (the others are left out of the means)\n";

static int parse_count(const char *opt, const char *v, long long lo, long long hi, int *out) {
    long long n;
    if (!cli_parse_int(v, lo, hi, &n))
        return cli_error("%s: expected an integer in [%lld, %lld], got '%s'", opt, lo, hi, v);
    *out = (int)n;
    return 0;
}

int cmd_panoptic_eval(int argc, char **argv) {
    struct iseg_panoptic_eval_params p = iseg_panoptic_eval_default_params();
    const char *gt_json = NULL, *gt_dir = NULL, *pred_json = NULL, *pred_dir = NULL;
    const char *json = NULL;
    bool        per_class = false, bad = false, have_ratio = false;
    int         rc = CLI_EXIT_ERR;
    iseg_panoptic_eval_t ev = NULL;
    char       *text = NULL, *doc = NULL;

    for (int i = 1; i < argc && !bad; i++) {
        const char *v = NULL;
        if (cli_flag(argv, i, "--help") || cli_flag(argv, i, "-h")) {
            fputs(PANOPTIC_EVAL_USAGE, stdout);
            return 0;
        } else if (cli_opt(argc, argv, &i, "--gt-json", &v, &bad)) gt_json = v;
        else if (cli_opt(argc, argv, &i, "--gt-dir", &v, &bad)) gt_dir = v;
        else if (cli_opt(argc, argv, &i, "--pred-json", &v, &bad)) pred_json = v;
        else if (cli_opt(argc, argv, &i, "--pred-dir", &v, &bad)) pred_dir = v;
        else if (cli_opt(argc, argv, &i, "--json", &v, &bad)) json = v;
        else if (cli_flag(argv, i, "--boundary")) p.boundary = true;
        else if (cli_flag(argv, i, "--per-class")) per_class = true;
        else if (cli_opt(argc, argv, &i, "--dilation-ratio", &v, &bad)) {
            if (!v) break;
            if (!cli_parse_double(v, &p.dilation_ratio)) {
                cli_error("--dilation-ratio: expected a number, got '%s'", v);
                goto out;
            }
            if (!(p.dilation_ratio > 0 && p.dilation_ratio < 1)) {
                cli_error("--dilation-ratio: must be in (0, 1), got %s", v);
                goto out;
            }
            have_ratio = true;
        } else if (cli_opt(argc, argv, &i, "--threads", &v, &bad)) {
            if (!v) break;
            if (parse_count("--threads", v, 0, 256, &p.n_threads)) goto out;
        } else if (cli_opt(argc, argv, &i, "--workers", &v, &bad)) {
            if (!v) break;
            if (parse_count("--workers", v, 1, 1024, &p.n_workers)) goto out;
        } else {
            cli_error("panoptic eval: unknown option '%s' (see iseg panoptic eval --help)",
                      argv[i]);
            goto out;
        }
    }
    if (bad) goto out;
    if (!gt_json || !gt_dir || !pred_json || !pred_dir) {
        fputs(PANOPTIC_EVAL_USAGE, stderr);
        cli_error("panoptic eval: --gt-json, --gt-dir, --pred-json and --pred-dir are required");
        goto out;
    }
    if (have_ratio && !p.boundary) {
        cli_error("--dilation-ratio: only meaningful with --boundary");
        goto out;
    }
    cli_install_log(false);
    p.progress = cli_progress;
    char err[512];
    if (iseg_panoptic_eval_init(&ev, &p, err, sizeof(err)) != ISEG_STATUS_OK) {
        cli_error("panoptic eval: %s", err);
        goto out;
    }
    if (iseg_panoptic_eval_load(ev, gt_json, gt_dir, pred_json, pred_dir) != ISEG_STATUS_OK ||
        iseg_panoptic_eval_run(ev) != ISEG_STATUS_OK) {
        cli_progress_end();
        cli_error("%s", iseg_panoptic_eval_last_error(ev));
        goto out;
    }
    cli_progress_end();
    bool json_stdout = json && strcmp(json, "-") == 0;
    if (json && !json_stdout && iseg_panoptic_eval_write_json(ev, json) != ISEG_STATUS_OK) {
        cli_error("%s", iseg_panoptic_eval_last_error(ev));
        goto out;
    }
    FILE *sout = json_stdout ? stderr : stdout;
    text       = iseg_panoptic_eval_summary(ev);
    doc        = json_stdout ? iseg_panoptic_eval_json(ev) : NULL;
    if (!text || (json_stdout && !doc)) {
        cli_error("out of memory");
        goto out;
    }
    fputs(text, sout);
    if (per_class) {
        fprintf(sout, "\n%-24s %6s %6s %6s %6s %7s %7s %7s\n", "category", "id", "PQ", "SQ", "RQ",
                "TP", "FP", "FN");
        for (size_t k = 0; k < iseg_panoptic_eval_n_cats(ev); k++) {
            struct iseg_panoptic_cat_result r;
            iseg_panoptic_eval_cat_result(ev, k, &r);
            if (!r.counted) continue; /* no tp, fp or fn: left out of the means */
            fprintf(sout, "%-24.24s %6lld %6.1f %6.1f %6.1f %7llu %7llu %7llu\n", r.name,
                    (long long)r.id, 100 * r.pq, 100 * r.sq, 100 * r.rq,
                    (unsigned long long)r.tp, (unsigned long long)r.fp,
                    (unsigned long long)r.fn);
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
    iseg_panoptic_eval_free(ev);
    return rc;
}
