/* cmd_convert.c - iseg convert: any supported weights file (PyTorch .pth zip or legacy,
 * safetensors) to safetensors. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "iseg/weights.h"

static const char CONVERT_USAGE[] =
    "usage: iseg convert IN OUT.safetensors [--f32] [--meta KEY=VALUE]...\n"
    "\n"
    "Convert weights to safetensors. IN is recognised by content: a PyTorch checkpoint saved\n"
    "by torch.save (zip, torch >= 1.6, or the legacy layout before it) or a safetensors file.\n"
    "Nested dicts are flattened with dotted names (\"model.backbone...\"); values that are not\n"
    "tensors are dropped. Checkpoints are read without Python: only the pickle globals that\n"
    "rebuild tensors and containers are accepted. OUT is written atomically. The metadata of a\n"
    "safetensors IN is kept.\n"
    "\n"
    "  --f32             store floating tensors (F64, F16, BF16) as F32; integer tensors are kept\n"
    "  --meta KEY=VALUE  set a metadata entry (repeatable), e.g. iseg.detections_per_img=500\n";

int cmd_convert(int argc, char **argv) {
    const char *in = NULL, *out = NULL;
    bool        f32 = false, bad = false;
    const char **set = calloc((size_t)argc + 1, sizeof(char *));
    int          n_set = 0;
    if (!set) return cli_error("out of memory");
    for (int i = 1; i < argc; i++) {
        const char *v;
        if (cli_flag(argv, i, "--help") || cli_flag(argv, i, "-h")) {
            fputs(CONVERT_USAGE, stdout);
            return 0;
        } else if (cli_flag(argv, i, "--f32")) {
            f32 = true;
        } else if (cli_opt(argc, argv, &i, "--meta", &v, &bad)) {
            if (!strchr(v, '=') || v[0] == '=') {
                free(set);
                return cli_error("--meta: expected KEY=VALUE, got '%s'", v);
            }
            set[n_set++] = v;
        } else if (bad) {
            free(set);
            return CLI_EXIT_ERR;
        } else if (argv[i][0] == '-' && argv[i][1] != 0) {
            fputs(CONVERT_USAGE, stderr);
            free(set);
            return cli_error("convert: unknown option '%s'", argv[i]);
        } else if (!in) {
            in = argv[i];
        } else if (!out) {
            out = argv[i];
        } else {
            fputs(CONVERT_USAGE, stderr);
            free(set);
            return cli_error("convert: unexpected argument '%s'", argv[i]);
        }
    }
    if (!in || !out) {
        fputs(CONVERT_USAGE, stderr);
        free(set);
        return cli_error("convert: expected IN and OUT");
    }

    int                 rc = CLI_EXIT_ERR;
    char                err[1024];
    iseg_weights_t      w     = NULL;
    struct iseg_weight *t     = NULL;
    void              **owned = NULL;
    const char        **meta  = NULL;
    char              **keys  = NULL;
    if (iseg_weights_load(&w, in, err, sizeof(err)) != ISEG_STATUS_OK) {
        cli_error("%s", err);
        goto out;
    }
    size_t n = iseg_weights_count(w);
    t        = calloc(n ? n : 1, sizeof(*t));
    owned    = calloc(n ? n : 1, sizeof(*owned));
    if (!t || !owned) {
        cli_error("%s: out of memory", in);
        goto out;
    }
    unsigned long long params = 0, bytes = 0;
    for (size_t i = 0; i < n; i++) {
        t[i] = *iseg_weights_at(w, i);
        params += iseg_weight_numel(&t[i]);
        bool fl = t[i].dtype == ISEG_DTYPE_F64 || t[i].dtype == ISEG_DTYPE_F16 ||
                  t[i].dtype == ISEG_DTYPE_BF16;
        if (f32 && fl) {
            size_t numel = iseg_weight_numel(&t[i]);
            float *p     = malloc(numel ? numel * sizeof(float) : 1);
            if (!p) {
                cli_error("%s: %s: out of memory", in, t[i].name);
                goto out;
            }
            owned[i] = p;
            iseg_weight_to_f32(p, &t[i]);
            t[i].dtype  = ISEG_DTYPE_F32;
            t[i].data   = p;
            t[i].nbytes = numel * sizeof(float);
        }
        bytes += t[i].nbytes;
    }
    /* the input's metadata, then --meta entries (replacing a key of the same name) */
    size_t nm = iseg_weights_metadata_count(w);
    meta = calloc(2 * (nm + (size_t)n_set) + 5, sizeof(char *));
    keys = calloc((size_t)n_set + 1, sizeof(char *));
    if (!meta || !keys) {
        cli_error("out of memory");
        goto out;
    }
    size_t k = 0;
    for (int j = 0; j < n_set; j++) {
        size_t kl = (size_t)(strchr(set[j], '=') - set[j]);
        if (!(keys[j] = strndup(set[j], kl))) {
            cli_error("out of memory");
            goto out;
        }
    }
    bool has_format = false;
    for (size_t i = 0; i < nm; i++) {
        const char *val, *key = iseg_weights_metadata_at(w, i, &val);
        bool replaced = false;
        for (int j = 0; j < n_set; j++) replaced = replaced || !strcmp(keys[j], key);
        if (replaced) continue;
        has_format = has_format || !strcmp(key, "format");
        meta[k++] = key;
        meta[k++] = val;
    }
    for (int j = 0; j < n_set; j++) {
        /* a later --meta of the same key wins */
        bool later = false;
        for (int q = j + 1; q < n_set; q++) later = later || !strcmp(keys[q], keys[j]);
        if (later) continue;
        meta[k++] = keys[j];
        meta[k++] = strchr(set[j], '=') + 1;
    }
    if (!has_format && nm == 0) {
        meta[k++] = "format";
        meta[k++] = "pt";
        meta[k++] = "iseg_source_format";
        meta[k++] = iseg_weights_format(w);
    }
    meta[k] = NULL;
    if (iseg_weights_save_safetensors(out, t, n, meta, err, sizeof(err)) != ISEG_STATUS_OK) {
        cli_error("%s", err);
        goto out;
    }
    printf("%s: %zu tensors, %llu parameters (%.2f M), %llu bytes of data (from %s, %s)\n", out,
           n, params, (double)params / 1e6, bytes, in, iseg_weights_format(w));
    rc = CLI_EXIT_OK;
out:
    if (owned)
        for (size_t i = 0; i < iseg_weights_count(w); i++) free(owned[i]);
    free(owned);
    free(t);
    free(meta);
    if (keys)
        for (int j = 0; j < n_set; j++) free(keys[j]);
    free(keys);
    free(set);
    iseg_weights_free(w);
    return rc;
}
