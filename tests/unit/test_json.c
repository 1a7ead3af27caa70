/* test_json.c - the loader's number parser: bit-identical to strtod (correctly rounded, as
 * Python's float() is) on every kind of decimal found in COCO files. */
#include <float.h>

#include "eval/coco_impl.h"
#include "test.h"

static void check(const char *s) {
    double want = strtod(s, NULL), got = 0;
    ASSERT_MSG(iseg__parse_double(s, strlen(s), &got), "%s: not parsed", s);
    ASSERT_MSG(memcmp(&want, &got, sizeof(double)) == 0, "%s: got %.17g (%a), strtod %.17g (%a)",
               s, got, got, want, want);
}

TEST(parse_double_hand_cases) {
    const char *cases[] = {"0", "-0", "-0.0", "1", "12.50", "1e2", "1E+2", "2.5e-3", "321.02",
                           "0.8999999999999999", "0.9", "37.220802307128906",
                           "9007199254740993", "18446744073709551615", "1e22", "1e23",
                           "1.7976931348623157e308", "4.9e-324", "123456789012345678901234567890",
                           "0.000000000000000000000000000001", "1e-400", "5e-324",
                           /* halfway cases for the extended-precision path */
                           "9007199254740993.0", "0.30000000000000004", "1.00000000000000011102230246251565404236316680908203125",
                           NULL};
    for (int i = 0; cases[i]; i++) check(cases[i]);
    double d;
    ASSERT(!iseg__parse_double("", 0, &d));
    ASSERT(!iseg__parse_double("-", 1, &d));
    ASSERT(!iseg__parse_double("abc", 3, &d));
}

TEST(parse_double_random_vs_strtod) {
    uint64_t s = 42;
    char     buf[64];
    for (int i = 0; i < 400000; i++) {
        switch (test_rand(&s) % 5) {
        case 0: { /* float32 values printed with 17 digits, as detectors write them */
            float f = (float)(test_rand_unif(&s) * 1000.0);
            snprintf(buf, sizeof(buf), "%.17g", (double)f);
            break;
        }
        case 1: /* polygon coordinates with 2 decimals */
            snprintf(buf, sizeof(buf), "%u.%02u", (unsigned)(test_rand(&s) % 2000),
                     (unsigned)(test_rand(&s) % 100));
            break;
        case 2: /* up to 19 significant digits */
            snprintf(buf, sizeof(buf), "%llu.%llu", (unsigned long long)(test_rand(&s) % 100000),
                     (unsigned long long)(test_rand(&s) % 100000000000000ull));
            break;
        case 3:
            snprintf(buf, sizeof(buf), "%llue-%d",
                     (unsigned long long)(test_rand(&s) >> (test_rand(&s) % 60)),
                     (int)(test_rand(&s) % 30));
            break;
        default:
            snprintf(buf, sizeof(buf), "%.*g", (int)(test_rand(&s) % 19) + 1,
                     test_rand_unif(&s) * 1e4);
        }
        check(buf);
    }
}

TEST_LIST = {
    TEST_ENTRY(parse_double_hand_cases),
    TEST_ENTRY(parse_double_random_vs_strtod),
    TEST_END,
};
