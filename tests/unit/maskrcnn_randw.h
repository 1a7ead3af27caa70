/* maskrcnn_randw.h - the random weights of tools/maskrcnn_parity.py, regenerated in C.
 *
 * A golden file's "spec" metadata lists one tensor per line as "name|d0,d1,..|center|half";
 * each element is center + half * (2u - 1) with u from splitmix64 over a hash of the name, every
 * step rounded to float32 exactly as numpy does. Tensors stored as "override.<name>" in the
 * golden replace the drawn ones. The result is written as a safetensors file that the model
 * loads like any checkpoint. */
#ifndef ISEG_MASKRCNN_RANDW_H
#define ISEG_MASKRCNN_RANDW_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "iseg/weights.h"

static uint64_t randw_fnv1a64(const char *s) {
    uint64_t h = 0xCBF29CE484222325ull;
    for (; *s; s++) h = (h ^ (uint8_t)*s) * 0x100000001B3ull;
    return h;
}

static void randw_draw(float *out, size_t n, const char *name, float center, float half,
                       uint64_t seed) {
    uint64_t base = randw_fnv1a64(name) ^ (seed * 0x9E3779B97F4A7C15ull);
    for (size_t i = 0; i < n; i++) {
        uint64_t z = base + (uint64_t)(i + 1) * 0x9E3779B97F4A7C15ull;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        z ^= z >> 31;
        volatile float u = (float)(z >> 40) * (1.0f / 16777216.0f);
        volatile float t = u * 2.0f - 1.0f;
        volatile float v = t * half;
        out[i] = v + center;
    }
}

/* Write the weights described by golden g to path. Returns 0 on success. */
static int randw_write(const char *path, const iseg_weights_t g, char *err, size_t errlen) {
    const char *spec = iseg_weights_metadata(g, "spec");
    const char *seeds = iseg_weights_metadata(g, "seed");
    if (!spec || !seeds) {
        snprintf(err, errlen, "golden has no spec/seed metadata");
        return -1;
    }
    uint64_t seed = (uint64_t)strtoull(seeds, NULL, 10);
    size_t cap = 512, n = 0;
    struct iseg_weight *t = calloc(cap, sizeof(*t));
    int rc = -1;
    const char *p = spec;
    while (p && *p) {
        const char *eol = strchr(p, '\n');
        size_t len = eol ? (size_t)(eol - p) : strlen(p);
        char line[512];
        if (len >= sizeof(line)) goto out;
        memcpy(line, p, len);
        line[len] = '\0';
        p = eol ? eol + 1 : NULL;
        char *f1 = strchr(line, '|');
        char *f2 = f1 ? strchr(f1 + 1, '|') : NULL;
        char *f3 = f2 ? strchr(f2 + 1, '|') : NULL;
        if (!f3) goto out;
        *f1 = *f2 = *f3 = '\0';
        if (n == cap) goto out;
        struct iseg_weight *w = &t[n];
        w->name = strdup(line);
        w->dtype = ISEG_DTYPE_F32;
        size_t numel = 1;
        for (char *d = f1 + 1; *d;) {
            w->shape[w->ndim++] = strtoll(d, &d, 10);
            numel *= (size_t)w->shape[w->ndim - 1];
            if (*d == ',') d++;
        }
        float center = strtof(f2 + 1, NULL), half = strtof(f3 + 1, NULL);
        float *data = malloc(numel * sizeof(float));
        char oname[600];
        snprintf(oname, sizeof(oname), "override.%s", line);
        const struct iseg_weight *o = iseg_weights_find(g, oname);
        if (o && iseg_weight_numel(o) == numel) iseg_weight_to_f32(data, o);
        else randw_draw(data, numel, line, center, half, seed);
        w->data = data;
        w->nbytes = numel * sizeof(float);
        n++;
    }
    /* the model's own description travels with the weights */
    static const char *const keys[] = {"iseg.anchor_sizes", "iseg.min_size", "iseg.max_size",
                                       "iseg.class_names", "iseg.category_ids", "iseg.bn_stats"};
    enum { nk = (int)(sizeof(keys) / sizeof(*keys)) };
    const char *meta[2 * nk + 1];
    int nm = 0;
    for (int k = 0; k < nk; k++) {
        const char *v = iseg_weights_metadata(g, keys[k]);
        if (v) {
            meta[nm++] = keys[k];
            meta[nm++] = v;
        }
    }
    meta[nm] = NULL;
    rc = iseg_weights_save_safetensors(path, t, n, meta, err, errlen) == ISEG_STATUS_OK ? 0 : -1;
out:
    if (rc && !err[0]) snprintf(err, errlen, "malformed spec line %zu", n);
    for (size_t i = 0; i < n; i++) {
        free((void *)t[i].name);
        free((void *)t[i].data);
    }
    free(t);
    return rc;
}

#endif /* ISEG_MASKRCNN_RANDW_H */
