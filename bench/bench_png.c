/* bench_png.c - the PNG reader's fast decoder (libdeflate + our unfiltering) against libspng
 * alone (iseg__png_force_slow), on a set of PNG files.
 *
 *   bench_png [n_rep] file.png...      e.g. bench_png 5 /work/benchdata/pan500_gt/\*.png
 *
 * Loads every file into memory, validates first (both decoders: same status, same pixels),
 * then times decoding the whole set from memory with each and prints the median over n_rep
 * repeats and the ratio. Single-threaded. */
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
    for (int i = 0; i < n_files; i++) free(files[i].data);
    free(files);
    return 0;
}
