/*
 * iseg.h - version, status codes, logging and allocation hooks shared by every iseg module.
 *
 *   #include <iseg/iseg.h>
 *   enum iseg_status st = iseg_rle_from_string(&r, s, n, h, w);
 *   if (st != ISEG_STATUS_OK) fprintf(stderr, "%s\n", iseg_status_str(st));
 *
 * Library code never prints and never exits: every action returns an enum iseg_status, and
 * handles keep a detailed message for the last error (see e.g. iseg_coco_last_error()).
 * Diagnostics that are not errors (warnings about deviations from the reference tools) go to
 * the log callback set with iseg_log_set(); by default they are dropped.
 */
#ifndef ISEG_ISEG_H
#define ISEG_ISEG_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#define ISEG_VERSION_MAJOR 0
#define ISEG_VERSION_MINOR 1
#define ISEG_VERSION_PATCH 0
#define ISEG_VERSION_STRING "0.1.0"

enum iseg_status {
    ISEG_STATUS_OK        = 0,
    ISEG_STATUS_EINVAL    = -1, /* invalid argument or option value */
    ISEG_STATUS_ENOMEM    = -2, /* allocation failed */
    ISEG_STATUS_EIO       = -3, /* file could not be read or written */
    ISEG_STATUS_EFORMAT   = -4, /* malformed input data (JSON, RLE, PNG, ...) */
    ISEG_STATUS_ESHAPE    = -5, /* sizes do not agree */
    ISEG_STATUS_ELIMIT    = -6, /* input exceeds a documented limit */
    ISEG_STATUS_EBADSTATE = -7, /* handle is in an error state or used out of order */
    ISEG_STATUS_EINTERNAL = -8, /* a bug: please report */
};

/* Short static description of a status code; never NULL. */
const char *iseg_status_str(enum iseg_status s);

/* Version string of the linked library, e.g. "0.1.0". */
const char *iseg_version(void);

enum iseg_log_level {
    ISEG_LOG_DEBUG = 0,
    ISEG_LOG_INFO  = 1,
    ISEG_LOG_WARN  = 2,
    ISEG_LOG_ERROR = 3,
};

typedef void (*iseg_log_fn)(enum iseg_log_level level, const char *msg, void *user);

/* Route library diagnostics to fn (NULL drops them, the default). Not thread-safe: call it once
 * at start-up. The callback itself may be called from worker threads, serialised by a lock. */
void iseg_log_set(iseg_log_fn fn, void *user);

/* Allocation hooks. Every allocation the library makes goes through these functions, which makes
 * out-of-memory injection tests possible. Set them before any other call; NULL fields fall back
 * to the C library. The functions must be thread-safe. */
struct iseg_alloc {
    void *(*malloc_fn)(size_t size, void *user);
    void *(*realloc_fn)(void *p, size_t size, void *user);
    void  (*free_fn)(void *p, void *user);
    void  *user;
};
void iseg_alloc_set(const struct iseg_alloc *a);

/* Free memory that the library returned to the caller (strings, arrays). NULL is fine. */
void iseg_free(void *p);

#ifdef __cplusplus
}
#endif

#endif /* ISEG_ISEG_H */
