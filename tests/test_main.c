/* test_main.c - runs the tests of one module, each in a forked child with a timeout. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "test.h"

#ifndef ISEG_SOURCE_DIR
#define ISEG_SOURCE_DIR "."
#endif

static char g_tmp[8192];

const char *test_source_dir(void) { return ISEG_SOURCE_DIR; }

const char *test_shared_dir(void) {
    static char buf[4096];
    const char *env = getenv("ISEG_SHARED_DIR");
    if (env && *env) snprintf(buf, sizeof(buf), "%s", env);
    else snprintf(buf, sizeof(buf), "%s/../shared", ISEG_SOURCE_DIR);
    struct stat st;
    if (stat(buf, &st) != 0 || !S_ISDIR(st.st_mode)) return NULL;
    return buf;
}

const char *test_shared_path(const char *rel) {
    static char buf[8192 + 16];
    const char *dir = test_shared_dir();
    if (!dir) TEST_SKIP("../shared is absent (set ISEG_SHARED_DIR)");
    snprintf(buf, sizeof(buf), "%.4096s/%.4096s", dir, rel);
    struct stat st;
    if (stat(buf, &st) != 0) TEST_SKIP("%s is absent", buf);
    return buf;
}

const char *test_tmp_dir(void) { return g_tmp; }

char *test_read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) TEST_FAIL("cannot open %s: %s", path, strerror(errno));
    size_t cap = 1 << 16, n = 0;
    char  *buf = malloc(cap);
    ASSERT(buf);
    for (;;) {
        if (n + 1 >= cap) {
            cap *= 2;
            buf = realloc(buf, cap);
            ASSERT(buf);
        }
        size_t k = fread(buf + n, 1, cap - n - 1, f);
        n += k;
        if (k == 0) break;
    }
    fclose(f);
    buf[n] = 0;
    if (len) *len = n;
    return buf;
}

uint64_t test_rand(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z          = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z          = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

double test_rand_unif(uint64_t *s) { return (double)(test_rand(s) >> 11) * 0x1p-53; }

float *test_falloc_nan(size_t n) {
    float *p = malloc((n ? n : 1) * sizeof(float));
    ASSERT(p);
    for (size_t i = 0; i < n; i++) p[i] = NAN;
    return p;
}

double test_nmse(const float *got, const float *want, size_t n) {
    double num = 0.0, den = 0.0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)got[i] - want[i];
        num += d * d;
        den += (double)want[i] * want[i];
    }
    if (den == 0.0) return num == 0.0 ? 0.0 : INFINITY;
    return num / den;
}

static int rm_rf(const char *path) {
    char cmd[8192 + 32];
    snprintf(cmd, sizeof(cmd), "rm -rf '%.8000s'", path);
    return system(cmd);
}

static int run_one(const struct iseg_test *t, const char *argv0, unsigned timeout_s) {
    snprintf(g_tmp, sizeof(g_tmp), "%.4000s.tmp.%.200s.%ld", argv0, t->name, (long)getpid());
    rm_rf(g_tmp);
    if (mkdir(g_tmp, 0755) != 0) {
        fprintf(stderr, "cannot create %s\n", g_tmp);
        return 1;
    }
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid == 0) {
        alarm(timeout_s);
        t->fn();
        fflush(stdout);
        fflush(stderr);
        exit(0); /* not _exit: LeakSanitizer checks at exit in sanitizer builds */
    }
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
    int rc;
    if (WIFEXITED(status)) rc = WEXITSTATUS(status);
    else {
        int sig = WTERMSIG(status);
        fprintf(stderr, "  FAIL: killed by signal %d%s\n", sig,
                sig == SIGALRM ? " (timeout)" : "");
        rc = 1;
    }
    if (rc == 0) rm_rf(g_tmp);
    return rc;
}

/* A module whose tests are heavy (e.g. model parity against torch) defines its own. */
__attribute__((weak)) const unsigned iseg_test_timeout_s = 120;

int main(int argc, char **argv) {
    unsigned    timeout = iseg_test_timeout_s;
    const char *mult    = getenv("ISEG_TEST_TIMEOUT_MULTIPLIER");
    if (mult && atoi(mult) > 0) timeout *= (unsigned)atoi(mult);
    int n_pass = 0, n_fail = 0, n_skip = 0;
    for (const struct iseg_test *t = iseg_test_list; t->name; t++) {
        if (argc > 1) {
            bool want = false;
            for (int i = 1; i < argc; i++) want = want || strcmp(argv[i], t->name) == 0;
            if (!want) continue;
        }
        double t0 = 0;
        {
            struct timespec ts;
            clock_gettime(CLOCK_MONOTONIC, &ts);
            t0 = (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
        }
        int rc = run_one(t, argv[0], timeout);
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        double dt = (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9 - t0;
        if (rc == 0) {
            n_pass++;
            printf("ok    %-40s %7.3fs\n", t->name, dt);
        } else if (rc == TEST_SKIP_CODE) {
            n_skip++;
            printf("skip  %-40s\n", t->name);
        } else {
            n_fail++;
            printf("FAIL  %-40s (tmp dir kept: %s)\n", t->name, g_tmp);
        }
        fflush(stdout);
    }
    printf("%d passed, %d failed, %d skipped\n", n_pass, n_fail, n_skip);
    if (n_pass + n_fail == 0 && n_skip == 0) {
        printf("no test matched\n");
        return 1;
    }
    return n_fail ? 1 : 0;
}
