/* fuse_io.c - all-or-nothing outputs (temporary files renamed at commit) and input map lookup
 * for panoptic fusion and conversion. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "panoptic/fuse_impl.h"

static char *path_join(const char *dir, const char *name, const char *suffix) {
    size_t n = (dir ? strlen(dir) + 1 : 0) + strlen(name) + strlen(suffix) + 1;
    char  *s = iseg__malloc(n);
    if (!s) return NULL;
    if (dir) snprintf(s, n, "%s/%s%s", dir, name, suffix);
    else snprintf(s, n, "%s%s", name, suffix);
    return s;
}

static char *tmp_name(const char *path) {
    char suffix[32];
    snprintf(suffix, sizeof(suffix), ".tmp.%ld", (long)getpid());
    return path_join(NULL, path, suffix);
}

enum iseg_status iseg__fj_find_map(const char *dir, const char *base, int64_t id, char **path,
                                   const char *what, char *err, size_t errlen) {
    char        idname[32];
    struct stat st;
    *path = NULL;
    snprintf(idname, sizeof(idname), "%lld", (long long)id);
    if (base && base[0]) {
        char *p = path_join(dir, base, ".png");
        if (!p) goto nomem;
        if (stat(p, &st) == 0) {
            *path = p;
            return ISEG_STATUS_OK;
        }
        iseg__free(p);
    }
    char *q = path_join(dir, idname, ".png");
    if (!q) goto nomem;
    if (stat(q, &st) == 0) {
        *path = q;
        return ISEG_STATUS_OK;
    }
    iseg__free(q);
    if (base && base[0])
        snprintf(err, errlen, "%s/%s.png: %s of image %lld not found (nor %s/%s.png)", dir, base,
                 what, (long long)id, dir, idname);
    else
        snprintf(err, errlen, "%s/%s.png: %s of image %lld not found", dir, idname, what,
                 (long long)id);
    return ISEG_STATUS_EIO;
nomem:
    snprintf(err, errlen, "%s: out of memory", dir);
    return ISEG_STATUS_ENOMEM;
}

enum iseg_status iseg__txn_begin(struct iseg__txn *t, const char *dir, size_t n_files, char *err,
                                 size_t errlen) {
    memset(t, 0, sizeof(*t));
    t->tmp   = iseg__calloc(n_files ? n_files : 1, sizeof(*t->tmp));
    t->final = iseg__calloc(n_files ? n_files : 1, sizeof(*t->final));
    t->dir   = dir ? iseg__strdup(dir) : NULL;
    t->n     = n_files;
    if (!t->tmp || !t->final || (dir && !t->dir)) {
        snprintf(err, errlen, "%s: out of memory", dir ? dir : "output");
        iseg__txn_abort(t);
        return ISEG_STATUS_ENOMEM;
    }
    if (!dir) return ISEG_STATUS_OK;
    struct stat st;
    if (stat(dir, &st) == 0) {
        if (!S_ISDIR(st.st_mode)) {
            snprintf(err, errlen, "%s: exists and is not a directory", dir);
            iseg__txn_abort(t);
            return ISEG_STATUS_EIO;
        }
        return ISEG_STATUS_OK;
    }
    if (mkdir(dir, 0777) != 0) {
        snprintf(err, errlen, "%s: cannot create directory: %s", dir, strerror(errno));
        iseg__txn_abort(t);
        return ISEG_STATUS_EIO;
    }
    t->created_dir = true;
    return ISEG_STATUS_OK;
}

static enum iseg_status write_file(const char *path, const char *shown, const void *data,
                                   size_t n, char *err, size_t errlen) {
    FILE *f = fopen(path, "wb");
    if (!f) {
        snprintf(err, errlen, "%s: cannot open for writing: %s", shown, strerror(errno));
        return ISEG_STATUS_EIO;
    }
    bool ok = fwrite(data, 1, n, f) == n;
    int  e  = errno;
    ok      = fflush(f) == 0 && ok;
    if (!ok) e = errno;
    ok = fclose(f) == 0 && ok;
    if (!ok) {
        snprintf(err, errlen, "%s: write failed: %s", shown, strerror(e ? e : errno));
        remove(path);
        return ISEG_STATUS_EIO;
    }
    return ISEG_STATUS_OK;
}

enum iseg_status iseg__txn_write(struct iseg__txn *t, size_t i, const char *name,
                                 const void *data, size_t n, char *err, size_t errlen) {
    ISEG_ASSERT(i < t->n && !t->final[i]);
    char *fin = path_join(t->dir, name, "");
    char *tmp = fin ? tmp_name(fin) : NULL;
    if (!tmp) {
        iseg__free(fin);
        snprintf(err, errlen, "%s: out of memory", name);
        return ISEG_STATUS_ENOMEM;
    }
    enum iseg_status st = write_file(tmp, fin, data, n, err, errlen);
    if (st != ISEG_STATUS_OK) {
        iseg__free(fin);
        iseg__free(tmp);
        return st;
    }
    t->final[i] = fin;
    t->tmp[i]   = tmp;
    return ISEG_STATUS_OK;
}

enum iseg_status iseg__txn_write_png(struct iseg__txn *t, size_t i, const char *name,
                                     const struct iseg_image *img, char *err, size_t errlen) {
    void  *buf = NULL;
    size_t n   = 0;
    char   e2[256];
    enum iseg_status st = iseg_png_write_mem(img, &buf, &n, e2, sizeof(e2));
    if (st != ISEG_STATUS_OK) {
        snprintf(err, errlen, "%s: cannot encode PNG: %s", name, e2);
        return st;
    }
    st = iseg__txn_write(t, i, name, buf, n, err, errlen);
    iseg_free(buf);
    return st;
}

static void txn_free(struct iseg__txn *t) {
    for (size_t i = 0; i < t->n; i++) {
        if (t->tmp) iseg__free(t->tmp[i]);
        if (t->final) iseg__free(t->final[i]);
    }
    iseg__free(t->tmp);
    iseg__free(t->final);
    iseg__free(t->dir);
    memset(t, 0, sizeof(*t));
}

void iseg__txn_abort(struct iseg__txn *t) {
    for (size_t i = 0; t->tmp && i < t->n; i++)
        if (t->tmp[i]) remove(t->tmp[i]);
    if (t->created_dir && t->dir) rmdir(t->dir); /* only removes it if nothing else is there */
    txn_free(t);
}

enum iseg_status iseg__txn_commit(struct iseg__txn *t, const char *json_path, const char *json,
                                  size_t json_len, char *err, size_t errlen) {
    char            *jtmp = NULL;
    enum iseg_status st   = ISEG_STATUS_OK;
    bool to_stdout        = json_path && strcmp(json_path, "-") == 0;
    if (json_path && !to_stdout) {
        jtmp = tmp_name(json_path);
        if (!jtmp) {
            snprintf(err, errlen, "%s: out of memory", json_path);
            iseg__txn_abort(t);
            return ISEG_STATUS_ENOMEM;
        }
        st = write_file(jtmp, json_path, json, json_len, err, errlen);
        if (st != ISEG_STATUS_OK) {
            iseg__free(jtmp);
            iseg__txn_abort(t);
            return st;
        }
    }
    for (size_t i = 0; i < t->n; i++) {
        if (!t->tmp[i]) continue;
        if (rename(t->tmp[i], t->final[i]) != 0) {
            snprintf(err, errlen, "%s: cannot rename into place: %s", t->final[i],
                     strerror(errno));
            if (jtmp) remove(jtmp);
            iseg__free(jtmp);
            iseg__txn_abort(t);
            return ISEG_STATUS_EIO;
        }
        iseg__free(t->tmp[i]);
        t->tmp[i] = NULL;
    }
    if (jtmp && rename(jtmp, json_path) != 0) {
        snprintf(err, errlen, "%s: cannot rename into place: %s", json_path, strerror(errno));
        remove(jtmp);
        st = ISEG_STATUS_EIO;
    }
    if (to_stdout && (fwrite(json, 1, json_len, stdout) != json_len || fflush(stdout) != 0)) {
        snprintf(err, errlen, "<stdout>: write failed: %s", strerror(errno));
        st = ISEG_STATUS_EIO;
    }
    iseg__free(jtmp);
    txn_free(t);
    return st;
}
