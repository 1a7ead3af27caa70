/* cmd_panoptic_fuse.c - iseg panoptic fuse / iseg panoptic convert: thin clients of
 * include/iseg/panoptic_fuse.h. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "iseg/panoptic_fuse.h"

static const char FUSE_USAGE[] =
    "usage: iseg panoptic fuse --instances RES.json --semantic-dir DIR --images IMGS.json\n"
    "                          --categories CATS.json --out-json OUT.json --out-dir OUTDIR\n"
    "                          [options]\n"
    "\n"
    "Merge instance predictions with a semantic segmentation into COCO panoptic format.\n"
    "\n"
    "  --instances FILE       COCO results: [{image_id, category_id, score, segmentation}]\n"
    "                         (RLE or polygons; categories must be things)\n"
    "  --semantic-dir DIR     per image a 1-channel PNG (8 or 16 bits) of class ids, named\n"
    "                         <file_name without extension>.png, else <image id>.png\n"
    "  --images FILE          JSON with \"images\": [{id, width, height, file_name}] (e.g. the\n"
    "                         ground-truth instances or panoptic JSON); every image is fused\n"
    "  --categories FILE      categories with isthing (a list, or a JSON with \"categories\")\n"
    "  --out-json FILE        COCO panoptic JSON to write ('-' = stdout)\n"
    "  --out-dir DIR          panoptic PNGs (id = R + 256 G + 256^2 B), created if missing;\n"
    "                         nothing is written unless every image succeeds\n"
    "  --policy P             instance-priority (default) or stuff-protected\n"
    "  --score-thresh T       drop instances with score < T (0.5)\n"
    "  --overlap-thresh T     drop an instance if less than T of its mask survives (0.5)\n"
    "  --stuff-area N         stuff segments of fewer than N pixels become VOID (4096)\n"
    "  --confidence-dir DIR   stuff-protected: per image a 1-channel 8-bit PNG; confidence is\n"
    "                         value/255\n"
    "  --protect-thresh T     stuff-protected: stuff pixels with confidence >= T are protected\n"
    "                         from instances (0.5)\n"
    "  --protect LIST         stuff-protected: stuff classes (names or ids, comma-separated)\n"
    "                         that are always protected, e.g. sky-other-merged,wall-other-merged\n"
    "  --threads N            worker threads (default: one per CPU); output does not depend on it\n"
    "\n"
    "Policies. instance-priority: instances with score >= T, by descending score (ties in file\n"
    "order), each takes the pixels of its mask no earlier instance took, and is kept iff\n"
    "taken/|mask| >= overlap-thresh; remaining pixels get the semantic class if it is stuff\n"
    "(thing or unknown classes stay VOID); each stuff class with < stuff-area pixels becomes\n"
    "VOID. stuff-protected: the same, but instances cannot take protected pixels (semantic\n"
    "class is stuff and listed in --protect, or its confidence >= --protect-thresh); those\n"
    "count as lost for the overlap rule.\n"
    "Segment ids: category * 1000 + k, k = 1, 2, ... per thing class in keeping order, k = 0 for\n"
    "stuff; segments_info lists instances in keeping order, then stuff by category id.\n";

static const char CONVERT_USAGE[] =
    "usage: iseg panoptic convert --to 2ch|panoptic|instances [options]\n"
    "\n"
    "  --to 2ch        COCO panoptic -> 2-channel PNGs (channel 0 category, channel 1 instance)\n"
    "                  needs --pan-json, --pan-dir, --out-dir\n"
    "  --to panoptic   2-channel PNGs -> COCO panoptic (segment id = category * offset +\n"
    "                  instance); needs --in-dir, --images, --out-json, --out-dir\n"
    "  --to instances  COCO panoptic -> COCO instances JSON (things, compressed RLE)\n"
    "                  needs --pan-json, --pan-dir, --out-json\n"
    "\n"
    "  --pan-json FILE       COCO panoptic JSON (with categories)\n"
    "  --pan-dir DIR         its PNGs\n"
    "  --in-dir DIR          2-channel PNGs: <file_name without extension>.png or <id>.png\n"
    "  --images FILE         JSON with \"images\" (ids, file names, optional sizes)\n"
    "  --categories FILE     categories with isthing (default: those of --images)\n"
    "  --out-json FILE       JSON to write ('-' = stdout)\n"
    "  --out-dir DIR         PNGs to write (created if missing; all-or-nothing)\n"
    "  --offset N            2ch -> panoptic: id = category * N + instance (1000)\n"
    "  --crowd-instance N    instance id of crowd regions in 2-channel PNGs (255)\n"
    "  --void-category N     category id of VOID pixels in 2-channel PNGs (0)\n"
    "  --results             instances: write a results list (score 1.0, crowd skipped, no\n"
    "                        bbox) instead of a ground-truth dataset\n"
    "  --threads N           worker threads (default: one per CPU)\n"
    "\n"
    "2-channel PNGs are written as gray+alpha, 8-bit, or 16-bit when a value exceeds 255.\n"
    "panoptic -> 2ch numbers thing instances 1, 2, ... per class in segments_info order\n"
    "(skipping the crowd id); crowd regions get --crowd-instance; stuff gets 0 (then 1, 2...).\n";

static bool parse_thresh(const char *opt, const char *v, double lo, double hi, double *out) {
    if (!cli_parse_double(v, out) || !(*out >= lo && *out <= hi)) {
        cli_error("%s: expected a number in [%g, %g], got '%s'", opt, lo, hi, v);
        return false;
    }
    return true;
}

static bool parse_threads(const char *v, int *out) {
    long long n;
    if (!cli_parse_int(v, 0, 256, &n)) {
        cli_error("--threads: expected an integer in [0, 256], got '%s'", v);
        return false;
    }
    *out = (int)n;
    return true;
}

int cmd_panoptic_fuse(int argc, char **argv) {
    struct iseg_fuse_params p = iseg_fuse_default_params();
    struct iseg_fuse_paths  f = {0};
    bool                    bad = false, have_conf_opts = false;
    for (int i = 1; i < argc && !bad; i++) {
        const char *v = NULL;
        if (cli_flag(argv, i, "--help") || cli_flag(argv, i, "-h")) {
            fputs(FUSE_USAGE, stdout);
            return 0;
        } else if (cli_opt(argc, argv, &i, "--instances", &v, &bad)) f.instances_json = v;
        else if (cli_opt(argc, argv, &i, "--semantic-dir", &v, &bad)) f.semantic_dir = v;
        else if (cli_opt(argc, argv, &i, "--confidence-dir", &v, &bad)) f.confidence_dir = v;
        else if (cli_opt(argc, argv, &i, "--images", &v, &bad)) f.images_json = v;
        else if (cli_opt(argc, argv, &i, "--categories", &v, &bad)) f.categories_json = v;
        else if (cli_opt(argc, argv, &i, "--out-json", &v, &bad)) f.out_json = v;
        else if (cli_opt(argc, argv, &i, "--out-dir", &v, &bad)) f.out_dir = v;
        else if (cli_opt(argc, argv, &i, "--protect", &v, &bad)) p.protect = v;
        else if (cli_opt(argc, argv, &i, "--policy", &v, &bad)) {
            if (v && iseg_fuse_policy_from_name(v, &p.policy) != ISEG_STATUS_OK)
                return cli_error("--policy: expected instance-priority or stuff-protected, "
                                 "got '%s'", v);
        } else if (cli_opt(argc, argv, &i, "--score-thresh", &v, &bad)) {
            if (v && !cli_parse_double(v, &p.score_thresh))
                return cli_error("--score-thresh: expected a number, got '%s'", v);
        } else if (cli_opt(argc, argv, &i, "--overlap-thresh", &v, &bad)) {
            if (v && !parse_thresh("--overlap-thresh", v, 0, 1, &p.overlap_thresh))
                return CLI_EXIT_ERR;
        } else if (cli_opt(argc, argv, &i, "--protect-thresh", &v, &bad)) {
            if (v && !parse_thresh("--protect-thresh", v, 0, 1, &p.protect_thresh))
                return CLI_EXIT_ERR;
            have_conf_opts = true;
        } else if (cli_opt(argc, argv, &i, "--stuff-area", &v, &bad)) {
            long long n;
            if (v && !cli_parse_int(v, 0, (long long)1 << 40, &n))
                return cli_error("--stuff-area: expected a non-negative integer, got '%s'", v);
            if (v) p.stuff_area = (uint64_t)n;
        } else if (cli_opt(argc, argv, &i, "--threads", &v, &bad)) {
            if (v && !parse_threads(v, &p.n_threads)) return CLI_EXIT_ERR;
        } else {
            return cli_error("panoptic fuse: unknown option '%s' (see iseg panoptic fuse --help)",
                             argv[i]);
        }
    }
    if (bad) return CLI_EXIT_ERR;
    if (!f.instances_json || !f.semantic_dir || !f.images_json || !f.categories_json ||
        !f.out_json || !f.out_dir) {
        fputs(FUSE_USAGE, stderr);
        return cli_error("panoptic fuse: --instances, --semantic-dir, --images, --categories, "
                         "--out-json and --out-dir are required");
    }
    if (p.policy != ISEG_FUSE_STUFF_PROTECTED &&
        (f.confidence_dir || p.protect || have_conf_opts))
        return cli_error("panoptic fuse: --confidence-dir, --protect and --protect-thresh need "
                         "--policy stuff-protected");
    cli_install_log(false);
    struct iseg_fuse_summary s;
    char                     err[1024];
    if (iseg_fuse_files(&p, &f, &s, err, sizeof(err)) != ISEG_STATUS_OK)
        return cli_error("%s", err);
    FILE *out = strcmp(f.out_json, "-") == 0 ? stderr : stdout;
    fprintf(out, "fused %zu images (%s): %zu instance segments kept of %zu results "
            "(%zu below --score-thresh, %zu dropped by --overlap-thresh), %zu stuff segments "
            "(%zu voided by --stuff-area)\n", s.n_images, iseg_fuse_policy_name(p.policy),
            s.n_instances, s.n_results, s.n_below_score, s.n_overlap_drop, s.n_stuff,
            s.n_stuff_small);
    return 0;
}

int cmd_panoptic_convert(int argc, char **argv) {
    struct iseg_panoptic_convert_params p = iseg_panoptic_convert_default_params();
    const char *to = NULL, *pan_json = NULL, *pan_dir = NULL, *in_dir = NULL, *images = NULL;
    const char *cats = NULL, *out_json = NULL, *out_dir = NULL;
    bool        bad  = false;
    for (int i = 1; i < argc && !bad; i++) {
        const char *v = NULL;
        long long   n;
        if (cli_flag(argv, i, "--help") || cli_flag(argv, i, "-h")) {
            fputs(CONVERT_USAGE, stdout);
            return 0;
        } else if (cli_opt(argc, argv, &i, "--to", &v, &bad)) to = v;
        else if (cli_opt(argc, argv, &i, "--pan-json", &v, &bad)) pan_json = v;
        else if (cli_opt(argc, argv, &i, "--pan-dir", &v, &bad)) pan_dir = v;
        else if (cli_opt(argc, argv, &i, "--in-dir", &v, &bad)) in_dir = v;
        else if (cli_opt(argc, argv, &i, "--images", &v, &bad)) images = v;
        else if (cli_opt(argc, argv, &i, "--categories", &v, &bad)) cats = v;
        else if (cli_opt(argc, argv, &i, "--out-json", &v, &bad)) out_json = v;
        else if (cli_opt(argc, argv, &i, "--out-dir", &v, &bad)) out_dir = v;
        else if (cli_flag(argv, i, "--results")) p.results = true;
        else if (cli_opt(argc, argv, &i, "--offset", &v, &bad)) {
            if (v && !cli_parse_int(v, 1, 65536, &n))
                return cli_error("--offset: expected an integer in [1, 65536], got '%s'", v);
            if (v) p.offset = (uint32_t)n;
        } else if (cli_opt(argc, argv, &i, "--crowd-instance", &v, &bad)) {
            if (v && !cli_parse_int(v, 0, 65535, &n))
                return cli_error("--crowd-instance: expected an integer in [0, 65535], got '%s'",
                                 v);
            if (v) p.crowd_instance = (uint32_t)n;
        } else if (cli_opt(argc, argv, &i, "--void-category", &v, &bad)) {
            if (v && !cli_parse_int(v, 0, 65535, &n))
                return cli_error("--void-category: expected an integer in [0, 65535], got '%s'",
                                 v);
            if (v) p.void_category = (uint32_t)n;
        } else if (cli_opt(argc, argv, &i, "--threads", &v, &bad)) {
            if (v && !parse_threads(v, &p.n_threads)) return CLI_EXIT_ERR;
        } else {
            return cli_error("panoptic convert: unknown option '%s' (see iseg panoptic convert "
                             "--help)", argv[i]);
        }
    }
    if (bad) return CLI_EXIT_ERR;
    char             err[1024];
    enum iseg_status st;
    if (!to) {
        fputs(CONVERT_USAGE, stderr);
        return cli_error("panoptic convert: --to is required");
    }
    if (strcmp(to, "2ch") == 0) {
        if (!pan_json || !pan_dir || !out_dir)
            return cli_error("panoptic convert --to 2ch: --pan-json, --pan-dir and --out-dir "
                             "are required");
        st = iseg_panoptic_convert_to_2ch(&p, pan_json, pan_dir, out_dir, err, sizeof(err));
    } else if (strcmp(to, "panoptic") == 0) {
        if (!in_dir || !images || !out_json || !out_dir)
            return cli_error("panoptic convert --to panoptic: --in-dir, --images, --out-json "
                             "and --out-dir are required");
        st = iseg_panoptic_convert_from_2ch(&p, in_dir, images, cats, out_json, out_dir, err,
                                            sizeof(err));
    } else if (strcmp(to, "instances") == 0) {
        if (!pan_json || !pan_dir || !out_json)
            return cli_error("panoptic convert --to instances: --pan-json, --pan-dir and "
                             "--out-json are required");
        st = iseg_panoptic_convert_to_instances(&p, pan_json, pan_dir, out_json, err,
                                                sizeof(err));
    } else {
        return cli_error("--to: expected 2ch, panoptic or instances, got '%s'", to);
    }
    if (st != ISEG_STATUS_OK) return cli_error("%s", err);
    return 0;
}
