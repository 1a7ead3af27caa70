/* test.h - the tiny test harness shared by every tests/unit/test_<module>.c.
 *
 *   TEST(rle_area) { ASSERT_EQ_U64(iseg_rle_area(&r), 100); }
 *   TEST_LIST = { TEST_ENTRY(rle_area), TEST_END };
 *
 * Each module is its own executable; test_main.c runs every test (or the ones named on the
 * command line) in a forked child with a timeout, so a crash fails one test, not the run.
 * A failing assertion prints both sides and the location and exits non-zero. Assertions are on
 * in every build type. TEST_SKIP() exits with 77 (counted as skipped, not failed). */
#ifndef ISEG_TEST_H
#define ISEG_TEST_H

#undef NDEBUG
#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "iseg/iseg.h"

struct iseg_test {
    const char *name;
    void (*fn)(void);
};

#define TEST(name) static void test_##name(void)
#define TEST_ENTRY(name) {#name, test_##name}
#define TEST_END {NULL, NULL}
#define TEST_LIST const struct iseg_test iseg_test_list[]
extern const struct iseg_test iseg_test_list[];

/* Per-test timeout in seconds (default 120, times $ISEG_TEST_TIMEOUT_MULTIPLIER); a module may
 * define `const unsigned iseg_test_timeout_s = N;` to change it. */
extern const unsigned iseg_test_timeout_s;

#define TEST_SKIP_CODE 77
#define TEST_SKIP(...)                                      \
    do {                                                    \
        fprintf(stderr, "  SKIP: ");                        \
        fprintf(stderr, __VA_ARGS__);                       \
        fprintf(stderr, "\n");                              \
        exit(TEST_SKIP_CODE);                               \
    } while (0)

#define TEST_FAIL_AT(file, line, ...)                       \
    do {                                                    \
        fprintf(stderr, "  FAIL %s:%d: ", file, line);      \
        fprintf(stderr, __VA_ARGS__);                       \
        fprintf(stderr, "\n");                              \
        exit(1);                                            \
    } while (0)
#define TEST_FAIL(...) TEST_FAIL_AT(__FILE__, __LINE__, __VA_ARGS__)

#define ASSERT(x) \
    do { if (!(x)) TEST_FAIL("assertion failed: %s", #x); } while (0)
#define ASSERT_MSG(x, ...) \
    do { if (!(x)) TEST_FAIL(__VA_ARGS__); } while (0)
#define ASSERT_OK(st)                                                                   \
    do {                                                                                \
        enum iseg_status st_ = (st);                                                    \
        if (st_ != ISEG_STATUS_OK)                                                      \
            TEST_FAIL("%s returned %d (%s)", #st, (int)st_, iseg_status_str(st_));      \
    } while (0)
#define ASSERT_STATUS(st, want)                                                         \
    do {                                                                                \
        enum iseg_status st_ = (st), w_ = (want);                                       \
        if (st_ != w_)                                                                  \
            TEST_FAIL("%s returned %d (%s), expected %d (%s)", #st, (int)st_,           \
                      iseg_status_str(st_), (int)w_, iseg_status_str(w_));              \
    } while (0)
#define ASSERT_EQ_INT(a, b)                                                             \
    do {                                                                                \
        long long a_ = (long long)(a), b_ = (long long)(b);                             \
        if (a_ != b_) TEST_FAIL("%s == %s: got %lld, expected %lld", #a, #b, a_, b_);   \
    } while (0)
#define ASSERT_EQ_U64(a, b)                                                             \
    do {                                                                                \
        unsigned long long a_ = (unsigned long long)(a), b_ = (unsigned long long)(b);  \
        if (a_ != b_) TEST_FAIL("%s == %s: got %llu, expected %llu", #a, #b, a_, b_);   \
    } while (0)
/* bit-for-bit equality of doubles (NaN equal to NaN of the same bits) */
#define ASSERT_EQ_DBL(a, b)                                                             \
    do {                                                                                \
        double a_ = (a), b_ = (b);                                                      \
        if (memcmp(&a_, &b_, sizeof(double)) != 0 && !(a_ == b_ && a_ != 0))            \
            TEST_FAIL("%s == %s: got %.17g (%a), expected %.17g (%a)", #a, #b, a_, a_,  \
                      b_, b_);                                                          \
    } while (0)
#define ASSERT_NEAR(a, b, tol)                                                          \
    do {                                                                                \
        double a_ = (a), b_ = (b), t_ = (tol);                                          \
        if (!(fabs(a_ - b_) <= t_))                                                     \
            TEST_FAIL("%s ~= %s: got %.17g, expected %.17g (tol %g)", #a, #b, a_, b_,   \
                      t_);                                                              \
    } while (0)
#define ASSERT_STREQ(a, b)                                                              \
    do {                                                                                \
        const char *a_ = (a), *b_ = (b);                                                \
        if (!a_ || !b_ || strcmp(a_, b_) != 0)                                          \
            TEST_FAIL("%s == %s: got \"%s\", expected \"%s\"", #a, #b, a_ ? a_ : "(null)", \
                      b_ ? b_ : "(null)");                                              \
    } while (0)
#define ASSERT_STRCONTAINS(hay, needle)                                                 \
    do {                                                                                \
        const char *h_ = (hay), *n_ = (needle);                                         \
        if (!h_ || !strstr(h_, n_))                                                     \
            TEST_FAIL("%s: \"%s\" does not contain \"%s\"", #hay, h_ ? h_ : "(null)", n_); \
    } while (0)

/* Path of ../shared (beside the project), or NULL when absent. ISEG_SHARED_DIR overrides. */
const char *test_shared_dir(void);
/* Path to a file under ../shared, or TEST_SKIP when ../shared or the file is missing.
 * Returns a static buffer valid until the next call. */
const char *test_shared_path(const char *rel);
/* Path of the project source tree and of a per-test scratch directory (created, empty). */
const char *test_source_dir(void);
const char *test_tmp_dir(void);
/* Read a whole file (NUL-terminated); fails the test if unreadable. Caller frees with free(). */
char *test_read_file(const char *path, size_t *len);
/* Deterministic PRNG (splitmix64). */
uint64_t test_rand(uint64_t *state);
double   test_rand_unif(uint64_t *state); /* [0, 1) */
/* n floats set to NaN (outputs must be written, not accumulated); fails the test on ENOMEM. */
float   *test_falloc_nan(size_t n);
/* Normalised mean squared error sum (got - want)^2 / sum want^2 (ggml's definition; 0 when
 * both are zero, inf when only want is). */
double   test_nmse(const float *got, const float *want, size_t n);

#endif /* ISEG_TEST_H */
