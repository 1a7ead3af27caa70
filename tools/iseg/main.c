/* main.c - the iseg command-line tool: a thin client of the public API. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "iseg/iseg.h"

static const char USAGE[] =
    "iseg " ISEG_VERSION_STRING " - instance segmentation in C\n"
    "\n"
    "usage: iseg <command> [options]\n"
    "\n"
    "commands:\n"
    "  eval      COCO evaluation (AP/AR for segm, bbox, boundary), bit-exact with pycocotools\n"
    "  panoptic  panoptic segmentation: eval (PQ, Boundary PQ), fuse, convert\n"
    "  predict   Mask R-CNN inference (torchvision weights) to COCO results and overlays\n"
    "  dump      a model's intermediate tensors on one image, for diffing against torch\n"
    "  convert   weights (PyTorch .pth, safetensors) to safetensors\n"
    "  train     Mask R-CNN training on a COCO dataset (checkpoints, validation AP)\n"
    "  synth     synthetic nuclei microscopy images and COCO datasets with exact masks\n"
    "  version   print the version\n"
    "  help      this text; 'iseg <command> --help' for a command's options\n";

int cli_error(const char *fmt, ...) {
    cli_progress_end();
    va_list ap;
    va_start(ap, fmt);
    fputs("iseg: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return CLI_EXIT_ERR;
}

bool cli_flag(char **argv, int i, const char *name) { return strcmp(argv[i], name) == 0; }

bool cli_opt(int argc, char **argv, int *i, const char *name, const char **val, bool *bad) {
    const char *a = argv[*i];
    size_t      n = strlen(name);
    if (strncmp(a, name, n) != 0) return false;
    if (a[n] == '=') {
        *val = a + n + 1;
        return true;
    }
    if (a[n] != 0) return false;
    if (*i + 1 >= argc) {
        cli_error("%s needs a value", name);
        *bad = true;
        *val = NULL;
        return true;
    }
    *val = argv[++*i];
    return true;
}

bool cli_parse_int(const char *s, long long lo, long long hi, long long *out) {
    char *end;
    errno       = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) return false;
    *out = v;
    return true;
}

bool cli_parse_double(const char *s, double *out) {
    char *end;
    errno    = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end) return false;
    *out = v;
    return true;
}

int cli_parse_doubles(const char *s, double *out, int cap) {
    int         n = 0;
    const char *p = s;
    while (*p) {
        char *end;
        errno    = 0;
        double v = strtod(p, &end);
        if (errno || end == p || n >= cap) return -1;
        out[n++] = v;
        if (*end == ',') p = end + 1;
        else if (*end == 0) p = end;
        else return -1;
    }
    return n;
}

int cli_parse_ids(const char *s, int64_t **out, size_t *n_out) {
    size_t cap = 16, n = 0;
    int64_t *v = malloc(cap * sizeof(*v));
    if (!v) return -1;
    const char *p = s;
    while (*p) {
        char *end;
        errno = 0;
        long long x = strtoll(p, &end, 10);
        if (errno || end == p || (*end && *end != ',')) {
            free(v);
            return -1;
        }
        if (n == cap) {
            cap *= 2;
            int64_t *q = realloc(v, cap * sizeof(*v));
            if (!q) {
                free(v);
                return -1;
            }
            v = q;
        }
        v[n++] = x;
        p = *end ? end + 1 : end;
    }
    *out   = v;
    *n_out = n;
    return 0;
}

/* ---- progress ---- */
static double g_prog_start, g_prog_last;
static bool   g_prog_shown;

double cli_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

void cli_progress(const char *stage, size_t done, size_t total, void *user) {
    (void)user;
    if (!isatty(STDERR_FILENO)) return;
    double t = cli_now();
    if (g_prog_start == 0) g_prog_start = t;
    /* only for long runs, at most 10 updates a second */
    if (t - g_prog_start < 1.0 || (t - g_prog_last < 0.1 && done < total)) return;
    g_prog_last = t;
    int    width = 30;
    int    fill  = total ? (int)((double)done / (double)total * width) : width;
    char   bar[64];
    for (int i = 0; i < width; i++) bar[i] = i < fill ? '#' : '.';
    bar[width] = 0;
    fprintf(stderr, "\r%-10s [%s] %zu/%zu", stage, bar, done, total);
    g_prog_shown = true;
    fflush(stderr);
}

void cli_progress_end(void) {
    if (g_prog_shown) fprintf(stderr, "\r\033[K");
    g_prog_shown = false;
}

static void log_cb(enum iseg_log_level level, const char *msg, void *user) {
    bool verbose = user != NULL;
    if (level < ISEG_LOG_WARN && !verbose) return;
    cli_progress_end();
    fprintf(stderr, "iseg: %s%s\n", level >= ISEG_LOG_WARN ? "warning: " : "", msg);
}

void cli_install_log(bool verbose) { iseg_log_set(log_cb, verbose ? (void *)1 : NULL); }

int main(int argc, char **argv) {
    if (argc < 2) {
        fputs(USAGE, stderr);
        return CLI_EXIT_ERR;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "eval") == 0) return cmd_eval(argc - 1, argv + 1);
    if (strcmp(cmd, "panoptic") == 0) return cmd_panoptic(argc - 1, argv + 1);
    if (strcmp(cmd, "convert") == 0) return cmd_convert(argc - 1, argv + 1);
    if (strcmp(cmd, "predict") == 0) return cmd_predict(argc - 1, argv + 1);
    if (strcmp(cmd, "dump") == 0) return cmd_dump(argc - 1, argv + 1);
    if (strcmp(cmd, "synth") == 0) return cmd_synth(argc - 1, argv + 1);
    if (strcmp(cmd, "train") == 0) return cmd_train(argc - 1, argv + 1);
    if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0) {
        printf("iseg %s\n", iseg_version());
        return 0;
    }
    if (strcmp(cmd, "help") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0) {
        fputs(USAGE, stdout);
        return 0;
    }
    fputs(USAGE, stderr);
    return cli_error("unknown command '%s'", cmd);
}
