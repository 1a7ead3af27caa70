/* bench_util.h - small helpers shared by the C benchmarks. */
#ifndef ISEG_BENCH_UTIL_H
#define ISEG_BENCH_UTIL_H

#include <time.h>

/* process CPU time (all threads): on a loaded machine, steadier than the wall time */
static inline double bench_cpu_now(void) {
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* qsort comparator of doubles, ascending */
static inline int bench_cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

#endif /* ISEG_BENCH_UTIL_H */
