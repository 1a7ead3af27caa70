/* core_impl.h - private helpers shared by the library's modules (never installed). */
#ifndef ISEG_CORE_IMPL_H
#define ISEG_CORE_IMPL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "iseg/iseg.h"

/* Caller bugs (never data errors): report file:line and the expression, then abort. */
void iseg__assert_fail(const char *file, int line, const char *expr);
#define ISEG_ASSERT(x) \
    do { if (!(x)) iseg__assert_fail(__FILE__, __LINE__, #x); } while (0)

/* Allocation through the hooks of iseg_alloc_set(). */
void *iseg__malloc(size_t n);
void *iseg__calloc(size_t n, size_t size);
void *iseg__realloc(void *p, size_t n);
void  iseg__free(void *p);
/* n * size with overflow check; NULL on overflow or ENOMEM. */
void *iseg__malloc_array(size_t n, size_t size);
void *iseg__realloc_array(void *p, size_t n, size_t size);
static inline bool iseg__mul_size_ok(size_t a, size_t b, size_t *out) {
    if (b != 0 && a > SIZE_MAX / b) return false;
    *out = a * b;
    return true;
}
char *iseg__strdup(const char *s);
/* Index of name in names[0..n) (NULL and unknown names: n): the *_from_name lookups. */
int   iseg__name_index(const char *const *names, int n, const char *name);

/* Log through the callback of iseg_log_set(). */
void iseg__log(enum iseg_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Growable byte buffer. */
struct iseg__buf {
    char  *data;
    size_t len, cap;
};
bool iseg__buf_reserve(struct iseg__buf *b, size_t extra);
bool iseg__buf_append(struct iseg__buf *b, const void *p, size_t n);
bool iseg__buf_printf(struct iseg__buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void iseg__buf_free(struct iseg__buf *b);

/* Monotonic clock in seconds. */
double iseg__now(void);

/* Thread pool. Work items [0, n) are handed out dynamically; fn must write results only to
 * per-item slots so that results never depend on the number of threads. ith identifies the
 * worker (0..nth-1) for per-thread scratch. A pool of 1 thread runs everything inline. */
struct iseg__pool;
enum iseg_status iseg__pool_init(struct iseg__pool **pool, int n_threads);
void iseg__pool_free(struct iseg__pool *pool);
int  iseg__pool_size(const struct iseg__pool *pool);
typedef void (*iseg__task_fn)(void *ctx, size_t item, int ith);
/* Run fn for every item in [0, n); returns when all are done. chunk: items taken at a time. */
void iseg__pool_run(struct iseg__pool *pool, size_t n, size_t chunk, iseg__task_fn fn, void *ctx);
/* Number of online CPUs (>= 1). */
int iseg__cpu_count(void);

/* Read the file at path into *out (an empty, zeroed buffer; the caller frees it with
 * iseg__buf_free), stopping early once its first magic_len bytes differ from magic (the decoder
 * then reports what the file is not, without the whole file read). EIO ("<path>: cannot open:
 * ...", "<path>: read error: ...") or ENOMEM, with the message in err. */
enum iseg_status iseg__read_file_magic(const char *path, const void *magic, size_t magic_len,
                                       struct iseg__buf *out, char *err, size_t errlen);

/* Write a file atomically: data goes to "<path>.tmp.<pid>", which is renamed over path.
 * path "-" writes to stdout. errbuf receives a message on failure. */
enum iseg_status iseg__write_file_atomic(const char *path, const void *data, size_t n,
                                         char *errbuf, size_t errlen);

#endif /* ISEG_CORE_IMPL_H */
