/* cmd_synth.c - iseg synth: synthetic nuclei microscopy images, one PNG or a small COCO
 * instance segmentation dataset (iseg_synth_dataset_write). */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "iseg/synth.h"

static const char SYNTH_USAGE[] =
    "usage: iseg synth --out DIR [--count N] [options]\n"
    "       iseg synth --image OUT.png [options]\n"
    "\n"
    "Generate synthetic microscopy images of cell nuclei with exact instance masks.\n"
    "--out writes DIR/images/synth_0000.png ... and DIR/synth.json (COCO instances, one\n"
    "category \"nucleus\", compressed RLE masks), ready for 'iseg eval' and training; image i\n"
    "uses seed S + i, so '--image' with seed S gives the dataset's first image.\n"
    "\n"
    "  --out DIR            dataset directory (created if missing)\n"
    "  --count N            images in the dataset, 1..10000 (default 10)\n"
    "  --image OUT.png      write one image only\n"
    "  --size WxH           image size (default 256x256)\n"
    "  --seed S             random seed (default 0)\n"
    "  --style NAME         fluorescence (default: bright nuclei on black, grey) or\n"
    "                       brightfield (purple H&E-like nuclei on a light background)\n"
    "  --min-nuclei A       nuclei per image, uniform in A..B (default 15..40)\n"
    "  --max-nuclei B\n";

static bool parse_size(const char *s, uint32_t *w, uint32_t *h) {
    char         *end;
    unsigned long a = strtoul(s, &end, 10);
    if (end == s || (*end != 'x' && *end != 'X')) return false;
    const char   *t = end + 1;
    unsigned long b = strtoul(t, &end, 10);
    if (end == t || *end || a > UINT32_MAX || b > UINT32_MAX) return false;
    *w = (uint32_t)a;
    *h = (uint32_t)b;
    return true;
}

int cmd_synth(int argc, char **argv) {
    const char              *out_dir = NULL, *image = NULL, *val;
    long long                count = 10, seed = 0, v;
    struct iseg_synth_params p   = iseg_synth_default_params();
    bool                     bad = false;
    for (int i = 1; i < argc && !bad; i++) {
        if (cli_flag(argv, i, "--help") || cli_flag(argv, i, "-h")) {
            fputs(SYNTH_USAGE, stdout);
            return 0;
        } else if (cli_opt(argc, argv, &i, "--out", &val, &bad)) {
            out_dir = val;
        } else if (cli_opt(argc, argv, &i, "--image", &val, &bad)) {
            image = val;
        } else if (cli_opt(argc, argv, &i, "--count", &val, &bad)) {
            if (val && !cli_parse_int(val, 1, 10000, &count))
                return cli_error("synth: --count '%s': expected 1..10000", val);
        } else if (cli_opt(argc, argv, &i, "--size", &val, &bad)) {
            if (val && !parse_size(val, &p.width, &p.height))
                return cli_error("synth: --size '%s': expected WxH, e.g. 256x256", val);
        } else if (cli_opt(argc, argv, &i, "--seed", &val, &bad)) {
            if (val && !cli_parse_int(val, 0, INT64_MAX, &seed))
                return cli_error("synth: --seed '%s': expected a non-negative integer", val);
        } else if (cli_opt(argc, argv, &i, "--style", &val, &bad)) {
            if (!val) continue;
            int k = 0;
            while (k < ISEG_SYNTH_STYLE_COUNT &&
                   strcmp(val, iseg_synth_style_name((enum iseg_synth_style)k)) != 0)
                k++;
            if (k == ISEG_SYNTH_STYLE_COUNT)
                return cli_error("synth: --style '%s': expected fluorescence or brightfield",
                                 val);
            p.style = (enum iseg_synth_style)k;
        } else if (cli_opt(argc, argv, &i, "--min-nuclei", &val, &bad)) {
            if (val && !cli_parse_int(val, 0, 10000, &v))
                return cli_error("synth: --min-nuclei '%s': expected 0..10000", val);
            if (val) p.n_min = (uint32_t)v;
        } else if (cli_opt(argc, argv, &i, "--max-nuclei", &val, &bad)) {
            if (val && !cli_parse_int(val, 0, 10000, &v))
                return cli_error("synth: --max-nuclei '%s': expected 0..10000", val);
            if (val) p.n_max = (uint32_t)v;
        } else {
            fputs(SYNTH_USAGE, stderr);
            return cli_error("synth: unknown option '%s'", argv[i]);
        }
    }
    if (bad) return CLI_EXIT_ERR;
    if (!out_dir == !image) {
        fputs(SYNTH_USAGE, stderr);
        return cli_error("synth: expected exactly one of --out DIR and --image OUT.png");
    }
    char err[512];
    if (iseg_synth_params_check(&p, err, sizeof(err)) != ISEG_STATUS_OK)
        return cli_error("%s", err);

    if (out_dir) {
        size_t n_nuclei;
        if (iseg_synth_dataset_write(out_dir, (size_t)count, &p, (uint64_t)seed, &n_nuclei, err,
                                     sizeof(err)) != ISEG_STATUS_OK)
            return cli_error("%s", err);
        printf("%s/synth.json: %lld images, %zu nuclei (%s %ux%u, seed %lld)\n", out_dir, count,
               n_nuclei, iseg_synth_style_name(p.style), p.width, p.height, seed);
        return CLI_EXIT_OK;
    }
    struct iseg_rng rng;
    iseg_rng_seed(&rng, (uint64_t)seed);
    struct iseg_sample s  = {0};
    enum iseg_status   st = iseg_synth_nuclei(&s, &p, &rng);
    if (st != ISEG_STATUS_OK) return cli_error("synth: %s", iseg_status_str(st));
    st = iseg_synth_png_write(image, &s.image, err, sizeof(err));
    size_t n = s.n;
    iseg_sample_free(&s);
    if (st != ISEG_STATUS_OK) return cli_error("%s", err);
    /* with "-" the PNG is on stdout: the summary goes to stderr */
    fprintf(strcmp(image, "-") == 0 ? stderr : stdout,
            "%s: 1 image, %zu nuclei (%s %ux%u, seed %lld)\n", image, n,
            iseg_synth_style_name(p.style), p.width, p.height, seed);
    return CLI_EXIT_OK;
}
