/* fuzz_check.h - the invariant check shared by the libFuzzer targets: a failed check prints
 * the location and aborts, which libFuzzer reports as a crash (and the replay tests fail). */
#ifndef ISEG_FUZZ_CHECK_H
#define ISEG_FUZZ_CHECK_H

#include <stdio.h>
#include <stdlib.h>

#define CHECK(x)                                                                   \
    do {                                                                           \
        if (!(x)) {                                                                \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #x);  \
            abort();                                                               \
        }                                                                          \
    } while (0)

#endif /* ISEG_FUZZ_CHECK_H */
