/* bench_png.c - the PNG reader's fast decoder (libdeflate + our unfiltering) against libspng
 * alone (iseg__png_force_slow), on a set of PNG files.
 *
 *   bench_png [n_rep] file.png...      e.g. bench_png 5 /work/benchdata/pan500_gt/\*.png
 *
 * Loads every file into memory, validates first (both decoders: same status, same pixels),
 * then times decoding the whole set from memory with each and prints the median over n_rep
 * repeats and the ratio; then the row reader (iseg__png_rows_*, what the panoptic evaluator
 * uses: no image buffer), and the fast decoder with the portable unfiltering instead of the
 * vector kernels, to show what each part is worth. Single-threaded. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/core_impl.h"
#include "image/png_impl.h"
#include "iseg/image.h"

struct file {
    uint8_t *data;
    size_t   n;
};

static int cmp_dbl(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static bool load(const char *path, struct file *f) {
    FILE *fp = fopen(path, "rb");
    if (!fp) return false;
    fseek(fp, 0, SEEK_END);
    long n = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    f->data = malloc(n > 0 ? (size_t)n : 1);
    f->n    = n > 0 ? (size_t)n : 0;
    bool ok = f->data && fread(f->data, 1, f->n, fp) == f->n;
    fclose(fp);
    return ok;
}

/* median over n_rep repeats of the seconds to decode every file once */
static double time_set(const struct file *files, int n_files, bool slow, int n_rep) {
    double t[64];
    iseg__png_force_slow = slow;
    for (int r = 0; r < n_rep; r++) {
        double t0 = iseg__now();
        for (int i = 0; i < n_files; i++) {
            struct iseg_image img = {0};
            iseg_png_read_mem(files[i].data, files[i].n, &img, NULL, 0);
            iseg_image_free(&img);
        }
        t[r] = iseg__now() - t0;
    }
    iseg__png_force_slow = false;
    qsort(t, (size_t)n_rep, sizeof(t[0]), cmp_dbl);
    return t[n_rep / 2];
}

/* median seconds to read every file row by row (files the reader declines are skipped) */
static double time_rows(const struct file *files, int n_files, int n_rep) {
    double                t[64];
    struct iseg__png_rows r = {0};
    volatile uint8_t      sink = 0;
    for (int k = 0; k < n_rep; k++) {
        double t0 = iseg__now();
        for (int i = 0; i < n_files; i++) {
            if (!iseg__png_rows_open(&r, files[i].data, files[i].n)) continue;
            for (uint32_t y = 0; y < r.h; y++) sink ^= iseg__png_rows_next(&r)[0];
        }
        t[k] = iseg__now() - t0;
    }
    iseg__png_rows_free(&r);
    qsort(t, (size_t)n_rep, sizeof(t[0]), cmp_dbl);
    return t[n_rep / 2];
}

/* median seconds to inflate and unfilter every row (fast path only) with or without the
 * vector kernels */
static double time_unfilter(const struct file *files, int n_files, int simd, int n_rep) {
    double                t[64];
    struct iseg__png_rows r = {0};
    uint8_t              *rows = NULL;
    size_t                cap  = 0;
    for (int k = 0; k < n_rep; k++) {
        double t0 = iseg__now();
        for (int i = 0; i < n_files; i++) {
            /* the reader inflates; the rows are then unfiltered here from its raw buffer */
            if (!iseg__png_rows_open(&r, files[i].data, files[i].n)) continue;
            size_t rb = (size_t)r.w * r.c;
            if (2 * rb > cap) {
                free(rows);
                cap  = 2 * rb;
                rows = malloc(cap);
                if (!rows) return 0;
            }
            for (uint32_t y = 0; y < r.h; y++) {
                const uint8_t *src = r.raw + (size_t)y * (rb + 1);
                iseg__png_unfilter_row(rows + (y & 1) * rb, src + 1,
                                       y ? rows + ((y - 1) & 1) * rb : NULL, rb, r.c, src[0],
                                       simd);
            }
        }
        t[k] = iseg__now() - t0;
    }
    free(rows);
    iseg__png_rows_free(&r);
    qsort(t, (size_t)n_rep, sizeof(t[0]), cmp_dbl);
    return t[n_rep / 2];
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s n_rep file.png...\n", argv[0]);
        return 2;
    }
    int n_rep = atoi(argv[1]);
    if (n_rep < 1) n_rep = 1;
    if (n_rep > 64) n_rep = 64;
    int          n_files = argc - 2;
    struct file *files   = calloc((size_t)n_files, sizeof(*files));
    if (!files) return 1;
    size_t bytes = 0, pixels = 0;
    int    n_fast = 0;
    for (int i = 0; i < n_files; i++) {
        const char *path = argv[i + 2];
        if (!load(path, &files[i])) {
            fprintf(stderr, "%s: cannot read\n", path);
            return 1;
        }
        bytes += files[i].n;
        /* validate: the same status and pixels from both decoders */
        struct iseg_image a = {0}, b = {0};
        char              ea[512] = "", eb[512] = "";
        unsigned long     before = iseg__png_n_fast;
        enum iseg_status  sa = iseg_png_read_mem(files[i].data, files[i].n, &a, ea, sizeof(ea));
        n_fast += iseg__png_n_fast != before;
        iseg__png_force_slow = true;
        enum iseg_status sb  = iseg_png_read_mem(files[i].data, files[i].n, &b, eb, sizeof(eb));
        iseg__png_force_slow = false;
        bool same = sa == sb && strcmp(ea, eb) == 0 &&
                    (sa != ISEG_STATUS_OK ||
                     (a.w == b.w && a.h == b.h && a.c == b.c && a.depth == b.depth &&
                      memcmp(a.data, b.data, iseg_image_nbytes(&a)) == 0));
        if (!same) {
            fprintf(stderr, "%s: MISMATCH between the fast decoder and libspng\n", path);
            return 1;
        }
        pixels += (size_t)a.w * a.h;
        iseg_image_free(&a);
        iseg_image_free(&b);
    }
    printf("validated %d files (%d on the fast path), %.1f MB of PNG, %.1f Mpixel\n", n_files,
           n_fast, bytes / 1e6, pixels / 1e6);
    double t_slow = time_set(files, n_files, true, n_rep);
    double t_fast = time_set(files, n_files, false, n_rep);
    printf("libspng: %8.2f ms  (%.1f Mpixel/s)\n", t_slow * 1e3, pixels / t_slow / 1e6);
    printf("fast:    %8.2f ms  (%.1f Mpixel/s)\n", t_fast * 1e3, pixels / t_fast / 1e6);
    printf("speedup: %.2fx\n", t_slow / t_fast);
    double t_rows = time_rows(files, n_files, n_rep);
    printf("rows:    %8.2f ms  (%.1f Mpixel/s; row reader, files it takes)\n", t_rows * 1e3,
           pixels / t_rows / 1e6);
    double t_scalar = time_unfilter(files, n_files, 0, n_rep);
    double t_simd   = time_unfilter(files, n_files, ISEG__PNG_SIMD_ALL, n_rep);
    printf("inflate + unfilter, portable: %8.2f ms, vector: %8.2f ms (%.2fx)\n", t_scalar * 1e3,
           t_simd * 1e3, t_scalar / t_simd);
    for (int i = 0; i < n_files; i++) free(files[i].data);
    free(files);
    return 0;
}
