/* fuse_run.c - iseg_fuse_files: fusion of a whole dataset from files (images in parallel,
 * outputs all-or-nothing). */
#define _POSIX_C_SOURCE 200809L
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "panoptic/fuse_impl.h"

struct fuse_slot {
    enum iseg_status          st;
    char                      err[512];
    struct iseg_fuse_segment *segs;
    size_t                    n_segs;
    struct iseg_fuse_summary  cnt;
};

struct fuse_ctx {
    const struct iseg_fuse_paths *f;
    const struct iseg__fuse_prep *pp;
    const struct iseg__fj_image  *im;
    const struct iseg__fj_result *res;
    const size_t                 *res_off; /* (n_im + 1) */
    const size_t                 *res_idx; /* results grouped by image, file order */
    struct iseg__txn             *txn;
    struct fuse_slot             *slots;
    atomic_size_t                 first_fail; /* lowest failed image index (SIZE_MAX: none) */
};

void iseg__fj_ids_to_rgb(const uint32_t *ids, uint8_t *rgb, size_t npx) {
    for (size_t i = 0; i < npx; i++) {
        rgb[3 * i + 0] = (uint8_t)(ids[i] & 0xFF);
        rgb[3 * i + 1] = (uint8_t)((ids[i] >> 8) & 0xFF);
        rgb[3 * i + 2] = (uint8_t)((ids[i] >> 16) & 0xFF);
    }
}

static void note_fail(struct fuse_ctx *c, size_t i) {
    size_t cur = atomic_load(&c->first_fail);
    while (i < cur && !atomic_compare_exchange_weak(&c->first_fail, &cur, i)) {
    }
}

/* Read a 1-channel map of the image's size; 16-bit allowed unless only8. */
enum iseg_status iseg__fj_read_map(const char *dir, const struct iseg__fj_image *im,
                                   const char *what, bool only8, uint32_t want_c,
                                   struct iseg_image *img, char *err, size_t errlen) {
    char *path = NULL;
    enum iseg_status st = iseg__fj_find_map(dir, im->base, im->id, &path, what, err, errlen);
    if (st != ISEG_STATUS_OK) return st;
    char e2[384];
    st = iseg_png_read(path, img, e2, sizeof(e2));
    if (st != ISEG_STATUS_OK) {
        snprintf(err, errlen, "%s", e2);
    } else if (want_c == 1 ? img->c != 1 : img->c < want_c) {
        snprintf(err, errlen, "%s: %s of image %lld: expected %s, got %u channels", path, what,
                 (long long)im->id, want_c == 1 ? "a 1-channel (gray) PNG" : "2 or more channels",
                 img->c);
        st = ISEG_STATUS_EFORMAT;
    } else if (only8 && img->depth != 8) {
        snprintf(err, errlen, "%s: %s of image %lld: expected 8 bits per sample, got %u", path,
                 what, (long long)im->id, img->depth);
        st = ISEG_STATUS_EFORMAT;
    } else if (im->w && (img->w != im->w || img->h != im->h)) {
        snprintf(err, errlen, "%s: %s of image %lld is %ux%u, the image is %ux%u", path, what,
                 (long long)im->id, img->w, img->h, im->w, im->h);
        st = ISEG_STATUS_ESHAPE;
    }
    if (st != ISEG_STATUS_OK) iseg_image_free(img);
    iseg__free(path);
    return st;
}

static void fuse_task(void *ctxp, size_t i, int ith) {
    (void)ith;
    struct fuse_ctx             *c    = ctxp;
    struct fuse_slot            *s    = &c->slots[i];
    const struct iseg__fj_image *im   = &c->im[i];
    struct iseg_image            sem  = {0}, conf = {0}, out = {0};
    uint16_t                    *sem16 = NULL;
    uint32_t                    *ids   = NULL;
    struct iseg_fuse_instance   *inst  = NULL;
    char                        *name  = NULL;
    size_t                       npx   = (size_t)im->w * im->h;
    if (i > atomic_load(&c->first_fail)) return; /* an earlier image failed: stop early */
    s->st = iseg__fj_read_map(c->f->semantic_dir, im, "semantic map", false, 1, &sem, s->err,
                              sizeof(s->err));
    if (s->st == ISEG_STATUS_OK && c->f->confidence_dir)
        s->st = iseg__fj_read_map(c->f->confidence_dir, im, "confidence map", true, 1, &conf,
                                  s->err, sizeof(s->err));
    if (s->st != ISEG_STATUS_OK) goto out;
    size_t n_inst = c->res_off[i + 1] - c->res_off[i];
    sem16         = iseg__malloc_array(npx, sizeof(*sem16));
    ids           = iseg__malloc_array(npx, sizeof(*ids));
    inst          = iseg__malloc_array(n_inst ? n_inst : 1, sizeof(*inst));
    name          = iseg__malloc(strlen(im->base) + 5);
    if (!sem16 || !ids || !inst || !name) goto nomem;
    sprintf(name, "%s.png", im->base);
    if (sem.depth == 8)
        for (size_t k = 0; k < npx; k++) sem16[k] = ((const uint8_t *)sem.data)[k];
    else memcpy(sem16, sem.data, npx * sizeof(*sem16));
    for (size_t k = 0; k < n_inst; k++) {
        const struct iseg__fj_result *r = &c->res[c->res_idx[c->res_off[i] + k]];
        inst[k].category_id             = r->category_id;
        inst[k].score                   = r->score;
        inst[k].mask                    = &r->mask;
    }
    char e2[400];
    s->st = iseg__fuse_run_image(c->pp, inst, n_inst, sem16, conf.data, im->h, im->w, ids,
                                 &s->segs, &s->n_segs, &s->cnt, e2, sizeof(e2));
    if (s->st != ISEG_STATUS_OK) {
        snprintf(s->err, sizeof(s->err), "image %lld: %s", (long long)im->id, e2);
        goto out;
    }
    s->st = iseg_image_alloc(&out, im->w, im->h, 3, 8);
    if (s->st != ISEG_STATUS_OK) goto nomem;
    iseg__fj_ids_to_rgb(ids, out.data, npx);
    s->st = iseg__txn_write_png(c->txn, i, name, &out, s->err, sizeof(s->err));
    goto out;
nomem:
    s->st = ISEG_STATUS_ENOMEM;
    snprintf(s->err, sizeof(s->err), "image %lld: out of memory", (long long)im->id);
out:
    if (s->st != ISEG_STATUS_OK) note_fail(c, i);
    iseg_image_free(&sem);
    iseg_image_free(&conf);
    iseg_image_free(&out);
    iseg__free(sem16);
    iseg__free(ids);
    iseg__free(inst);
    iseg__free(name);
}

bool iseg__fj_gen_segments(yajl_gen g, const struct iseg_fuse_segment *s, size_t n) {
    bool ok = yajl_gen_array_open(g) == yajl_gen_status_ok;
    for (size_t k = 0; k < n && ok; k++) {
        ok = yajl_gen_map_open(g) == yajl_gen_status_ok && iseg__fj_gen_str(g, "id") &&
             iseg__fj_gen_int(g, s[k].id) && iseg__fj_gen_str(g, "category_id") &&
             iseg__fj_gen_int(g, s[k].category_id) && iseg__fj_gen_str(g, "iscrowd") &&
             iseg__fj_gen_int(g, s[k].iscrowd) && iseg__fj_gen_str(g, "area") &&
             iseg__fj_gen_int(g, (long long)s[k].area) && iseg__fj_gen_str(g, "bbox") &&
             yajl_gen_array_open(g) == yajl_gen_status_ok;
        for (int j = 0; j < 4 && ok; j++) ok = iseg__fj_gen_int(g, s[k].bbox[j]);
        ok = ok && yajl_gen_array_close(g) == yajl_gen_status_ok &&
             yajl_gen_map_close(g) == yajl_gen_status_ok;
    }
    return ok && yajl_gen_array_close(g) == yajl_gen_status_ok;
}

static bool nonempty_list(const char *s) {
    for (; s && *s; s++)
        if (*s != ' ' && *s != ',') return true;
    return false;
}

enum iseg_status iseg_fuse_files(const struct iseg_fuse_params *p,
                                 const struct iseg_fuse_paths *f,
                                 struct iseg_fuse_summary *summary, char *err, size_t errlen) {
    yajl_val                root_c = NULL, root_i = NULL, root_r = NULL;
    struct iseg__fj_cats    cats   = {0};
    struct iseg__fj_image  *im     = NULL;
    size_t                 *order  = NULL, n_im = 0;
    struct iseg__fj_result *res    = NULL;
    size_t                  n_res  = 0, *res_off = NULL, *res_idx = NULL;
    struct iseg__fuse_prep *pp     = NULL;
    struct iseg__pool      *pool   = NULL;
    struct fuse_slot       *slots  = NULL;
    struct iseg__txn        txn    = {0};
    bool                    in_txn = false;
    yajl_gen                g      = NULL;
    enum iseg_status        st;
    struct iseg_fuse_summary sum   = {0};

    if (summary) memset(summary, 0, sizeof(*summary));
    if (!f->instances_json || !f->semantic_dir || !f->images_json || !f->categories_json ||
        !f->out_json || !f->out_dir) {
        snprintf(err, errlen, "fuse: instances, semantic dir, images, categories, output JSON "
                 "and output dir are all required");
        return ISEG_STATUS_EINVAL;
    }
    st = iseg__fuse_check_params(p, err, errlen);
    if (st != ISEG_STATUS_OK) return st;
    if (p->policy == ISEG_FUSE_STUFF_PROTECTED && !f->confidence_dir && !nonempty_list(p->protect)) {
        snprintf(err, errlen, "fuse: policy stuff-protected needs a confidence dir or a list of "
                 "protected classes");
        return ISEG_STATUS_EINVAL;
    }
    if ((st = iseg__fj_read(f->categories_json, &root_c, err, errlen)) != ISEG_STATUS_OK ||
        (st = iseg__fj_categories(root_c, f->categories_json, &cats, err, errlen)) !=
            ISEG_STATUS_OK)
        goto out;
    {
        char e2[400];
        st = iseg__fuse_prep_init(&pp, p, cats.v, cats.n, e2, sizeof(e2));
        if (st != ISEG_STATUS_OK) {
            snprintf(err, errlen, "%s: %s", f->categories_json, e2);
            goto out;
        }
    }
    if ((st = iseg__fj_read(f->images_json, &root_i, err, errlen)) != ISEG_STATUS_OK ||
        (st = iseg__fj_images(root_i, f->images_json, true, true, &im, &order, &n_im, err,
                              errlen)) != ISEG_STATUS_OK ||
        (st = iseg__fj_read(f->instances_json, &root_r, err, errlen)) != ISEG_STATUS_OK ||
        (st = iseg__fj_results(root_r, f->instances_json, im, order, n_im, &cats,
                               p->score_thresh, &res, &n_res, err, errlen)) != ISEG_STATUS_OK)
        goto out;

    /* group results by image, keeping file order within an image */
    res_off = iseg__calloc(n_im + 1, sizeof(*res_off));
    res_idx = iseg__malloc_array(n_res ? n_res : 1, sizeof(*res_idx));
    slots   = iseg__calloc(n_im ? n_im : 1, sizeof(*slots));
    if (!res_off || !res_idx || !slots) goto nomem;
    for (size_t r = 0; r < n_res; r++) res_off[res[r].img + 1]++;
    for (size_t i = 0; i < n_im; i++) res_off[i + 1] += res_off[i];
    {
        size_t *fill = iseg__malloc_array(n_im ? n_im : 1, sizeof(*fill));
        if (!fill) goto nomem;
        memcpy(fill, res_off, n_im * sizeof(*fill));
        for (size_t r = 0; r < n_res; r++) res_idx[fill[res[r].img]++] = r;
        iseg__free(fill);
    }

    if ((st = iseg__txn_begin(&txn, f->out_dir, n_im, err, errlen)) != ISEG_STATUS_OK) goto out;
    in_txn = true;
    if (iseg__pool_init(&pool, p->n_threads > 0 ? p->n_threads : iseg__cpu_count()) !=
        ISEG_STATUS_OK)
        goto nomem;
    struct fuse_ctx ctx = {.f = f, .pp = pp, .im = im, .res = res, .res_off = res_off,
                           .res_idx = res_idx, .txn = &txn, .slots = slots};
    atomic_init(&ctx.first_fail, SIZE_MAX);
    iseg__pool_run(pool, n_im, 1, fuse_task, &ctx);
    size_t fail = atomic_load(&ctx.first_fail);
    if (fail != SIZE_MAX) {
        st = slots[fail].st;
        snprintf(err, errlen, "%s", slots[fail].err);
        goto out;
    }

    /* the JSON, in image order */
    g = iseg__fj_gen_new();
    if (!g) goto nomem;
    bool ok = yajl_gen_map_open(g) == yajl_gen_status_ok && iseg__fj_gen_str(g, "images") &&
              yajl_gen_array_open(g) == yajl_gen_status_ok;
    for (size_t i = 0; i < n_im && ok; i++) ok = iseg__fj_gen_value(g, im[i].obj);
    ok = ok && yajl_gen_array_close(g) == yajl_gen_status_ok &&
         iseg__fj_gen_str(g, "annotations") && yajl_gen_array_open(g) == yajl_gen_status_ok;
    for (size_t i = 0; i < n_im && ok; i++) {
        char *name = iseg__malloc(strlen(im[i].base) + 5);
        if (!name) goto nomem;
        sprintf(name, "%s.png", im[i].base);
        ok = yajl_gen_map_open(g) == yajl_gen_status_ok && iseg__fj_gen_str(g, "image_id") &&
             iseg__fj_gen_int(g, im[i].id) && iseg__fj_gen_str(g, "file_name") &&
             iseg__fj_gen_str(g, name) && iseg__fj_gen_str(g, "segments_info") &&
             iseg__fj_gen_segments(g, slots[i].segs, slots[i].n_segs) &&
             yajl_gen_map_close(g) == yajl_gen_status_ok;
        iseg__free(name);
        sum.n_below_score += slots[i].cnt.n_below_score;
        sum.n_overlap_drop += slots[i].cnt.n_overlap_drop;
        sum.n_instances += slots[i].cnt.n_instances;
        sum.n_stuff += slots[i].cnt.n_stuff;
        sum.n_stuff_small += slots[i].cnt.n_stuff_small;
    }
    ok = ok && yajl_gen_array_close(g) == yajl_gen_status_ok &&
         iseg__fj_gen_str(g, "categories") && yajl_gen_array_open(g) == yajl_gen_status_ok;
    for (size_t k = 0; k < cats.n && ok; k++) ok = iseg__fj_gen_value(g, cats.obj[k]);
    ok = ok && yajl_gen_array_close(g) == yajl_gen_status_ok &&
         yajl_gen_map_close(g) == yajl_gen_status_ok;
    if (!ok) goto nomem;
    const unsigned char *jbuf;
    size_t               jlen;
    yajl_gen_get_buf(g, &jbuf, &jlen);
    in_txn = false;
    st     = iseg__txn_commit(&txn, f->out_json, (const char *)jbuf, jlen, err, errlen);
    if (st != ISEG_STATUS_OK) goto out;
    sum.n_images  = n_im;
    sum.n_results = n_res;
    if (summary) *summary = sum;
    goto out;
nomem:
    snprintf(err, errlen, "out of memory");
    st = ISEG_STATUS_ENOMEM;
out:
    if (in_txn) iseg__txn_abort(&txn);
    if (g) yajl_gen_free(g);
    iseg__pool_free(pool);
    if (slots)
        for (size_t i = 0; i < n_im; i++) iseg__free(slots[i].segs);
    iseg__free(slots);
    iseg__free(res_off);
    iseg__free(res_idx);
    iseg__fj_results_free(res, n_res);
    iseg__fuse_prep_free(pp);
    iseg__fj_images_free(im, order, n_im);
    iseg__fj_cats_free(&cats);
    yajl_tree_free(root_c);
    yajl_tree_free(root_i);
    yajl_tree_free(root_r);
    return st;
}
