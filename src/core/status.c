/* status.c - status strings, version, logging, allocation hooks, small utilities. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core_impl.h"

static const char *const STATUS_NAMES[] = {
    "ok",
    "invalid argument",
    "out of memory",
    "input/output error",
    "malformed input",
    "sizes do not agree",
    "input exceeds a limit",
    "handle in error state",
    "internal error",
};
_Static_assert(sizeof(STATUS_NAMES) / sizeof(STATUS_NAMES[0]) == 1 - ISEG_STATUS_EINTERNAL,
               "one name per status");

const char *iseg_status_str(enum iseg_status s) {
    int i = -(int)s;
    if (i < 0 || i > -(int)ISEG_STATUS_EINTERNAL) return "unknown status";
    return STATUS_NAMES[i];
}

const char *iseg_version(void) { return ISEG_VERSION_STRING; }

/* ---- logging ---- */
static iseg_log_fn     g_log_fn;
static void           *g_log_user;
static pthread_mutex_t g_log_lock = PTHREAD_MUTEX_INITIALIZER;

void iseg_log_set(iseg_log_fn fn, void *user) {
    g_log_fn   = fn;
    g_log_user = user;
}

void iseg__log(enum iseg_log_level level, const char *fmt, ...) {
    if (!g_log_fn) return;
    char    msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    pthread_mutex_lock(&g_log_lock);
    g_log_fn(level, msg, g_log_user);
    pthread_mutex_unlock(&g_log_lock);
}

void iseg__assert_fail(const char *file, int line, const char *expr) {
    fprintf(stderr, "iseg: assertion failed at %s:%d: %s\n", file, line, expr);
    fflush(stderr);
    abort();
}

/* ---- allocation ---- */
static struct iseg_alloc g_alloc;

void iseg_alloc_set(const struct iseg_alloc *a) {
    if (a) g_alloc = *a;
    else memset(&g_alloc, 0, sizeof(g_alloc));
}

void *iseg__malloc(size_t n) {
    if (n == 0) n = 1;
    return g_alloc.malloc_fn ? g_alloc.malloc_fn(n, g_alloc.user) : malloc(n);
}

void *iseg__calloc(size_t n, size_t size) {
    size_t bytes;
    if (!iseg__mul_size_ok(n, size, &bytes)) return NULL;
    void *p = iseg__malloc(bytes);
    if (p) memset(p, 0, bytes ? bytes : 1);
    return p;
}

void *iseg__realloc(void *p, size_t n) {
    if (n == 0) n = 1;
    return g_alloc.realloc_fn ? g_alloc.realloc_fn(p, n, g_alloc.user) : realloc(p, n);
}

void iseg__free(void *p) {
    if (!p) return;
    if (g_alloc.free_fn) g_alloc.free_fn(p, g_alloc.user);
    else free(p);
}

void iseg_free(void *p) { iseg__free(p); }

void *iseg__malloc_array(size_t n, size_t size) {
    size_t bytes;
    if (!iseg__mul_size_ok(n, size, &bytes)) return NULL;
    return iseg__malloc(bytes);
}

void *iseg__realloc_array(void *p, size_t n, size_t size) {
    size_t bytes;
    if (!iseg__mul_size_ok(n, size, &bytes)) return NULL;
    return iseg__realloc(p, bytes);
}

char *iseg__strdup(const char *s) {
    size_t n = strlen(s) + 1;
    char  *p = iseg__malloc(n);
    if (p) memcpy(p, s, n);
    return p;
}

int iseg__name_index(const char *const *names, int n, const char *name) {
    for (int i = 0; i < n; i++)
        if (name && strcmp(name, names[i]) == 0) return i;
    return n;
}

/* ---- growable buffer ---- */
bool iseg__buf_reserve(struct iseg__buf *b, size_t extra) {
    if (b->cap - b->len >= extra) return true;
    size_t need = b->len + extra;
    if (need < b->len) return false;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < need) {
        if (cap > SIZE_MAX / 2) return false;
        cap *= 2;
    }
    char *p = iseg__realloc(b->data, cap);
    if (!p) return false;
    b->data = p;
    b->cap  = cap;
    return true;
}

bool iseg__buf_append(struct iseg__buf *b, const void *p, size_t n) {
    if (!iseg__buf_reserve(b, n + 1)) return false;
    memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = 0;
    return true;
}

bool iseg__buf_printf(struct iseg__buf *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    char tmp[256];
    int  n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    if (n < 0) return false;
    if ((size_t)n < sizeof(tmp)) return iseg__buf_append(b, tmp, (size_t)n);
    if (!iseg__buf_reserve(b, (size_t)n + 1)) return false;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return true;
}

void iseg__buf_free(struct iseg__buf *b) {
    iseg__free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

double iseg__now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int iseg__cpu_count(void) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : (int)n;
}

enum iseg_status iseg__read_file_magic(const char *path, const void *magic, size_t magic_len,
                                       struct iseg__buf *out, char *err, size_t errlen) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        if (err && errlen) snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return ISEG_STATUS_EIO;
    }
    enum iseg_status st = ISEG_STATUS_OK;
    for (;;) {
        if (!iseg__buf_reserve(out, (size_t)1 << 16)) {
            if (err && errlen) snprintf(err, errlen, "%s: out of memory reading the file", path);
            st = ISEG_STATUS_ENOMEM;
            break;
        }
        size_t k = fread(out->data + out->len, 1, out->cap - out->len, f);
        out->len += k;
        if (ferror(f)) {
            if (err && errlen)
                snprintf(err, errlen, "%s: read error: %s", path, strerror(errno));
            st = ISEG_STATUS_EIO;
            break;
        }
        if (k == 0 || feof(f)) break;
        if (out->len >= magic_len && memcmp(out->data, magic, magic_len) != 0) break;
    }
    fclose(f);
    return st;
}

enum iseg_status iseg__write_file_atomic(const char *path, const void *data, size_t n,
                                         char *errbuf, size_t errlen) {
    if (strcmp(path, "-") == 0) {
        if (fwrite(data, 1, n, stdout) != n || fflush(stdout) != 0) {
            snprintf(errbuf, errlen, "<stdout>: write failed: %s", strerror(errno));
            return ISEG_STATUS_EIO;
        }
        return ISEG_STATUS_OK;
    }
    size_t plen = strlen(path);
    char  *tmp  = iseg__malloc(plen + 32);
    if (!tmp) {
        snprintf(errbuf, errlen, "%s: out of memory", path);
        return ISEG_STATUS_ENOMEM;
    }
    snprintf(tmp, plen + 32, "%s.tmp.%ld", path, (long)getpid());
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        snprintf(errbuf, errlen, "%s: cannot open for writing: %s", path, strerror(errno));
        iseg__free(tmp);
        return ISEG_STATUS_EIO;
    }
    bool ok = fwrite(data, 1, n, f) == n;
    ok      = (fflush(f) == 0) && ok;
    ok      = (fclose(f) == 0) && ok;
    if (!ok || rename(tmp, path) != 0) {
        snprintf(errbuf, errlen, "%s: write failed: %s", path, strerror(errno));
        remove(tmp);
        iseg__free(tmp);
        return ISEG_STATUS_EIO;
    }
    iseg__free(tmp);
    return ISEG_STATUS_OK;
}
