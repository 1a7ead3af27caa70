/* coco_report.c - what the evaluator reports: the 12-line summary, the JSON document,
 * per-category results, matched pairs (CSV) and precision-recall curves (CSV + PNG). */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "eval/coco_eval_impl.h"
#include "iseg/plot.h"

static const char *const AREA_LBL[N_A] = {"all", "small", "medium", "large"};

/* The shortest of %.15g, %.16g, %.17g that reads back as the same double (CSV output: exact,
 * and 0.717 rather than 0.71699999999999997). */
static const char *fmt_g(char buf[32], double v) {
    for (int prec = 15; prec < 17; prec++) {
        snprintf(buf, 32, "%.*g", prec, v);
        if (strtod(buf, NULL) == v) return buf;
    }
    snprintf(buf, 32, "%.17g", v);
    return buf;
}

/* ' {:<18} {} @[ IoU={:<9} | area={:>6s} | maxDets={:>3d} ] = {:0.3f}' */
static bool summary_line(struct iseg__buf *b, const struct iseg_coco_eval *ev, bool ap,
                         int t_sel, size_t a, size_t m, double v) {
    char iou[32];
    if (t_sel < 0) snprintf(iou, sizeof(iou), "%0.2f:%0.2f", ev->iou_thrs[0], ev->iou_thrs[ev->T - 1]);
    else snprintf(iou, sizeof(iou), "%0.2f", ev->iou_thrs[t_sel]);
    return iseg__buf_printf(b, " %-18s %s @[ IoU=%-9s | area=%6s | maxDets=%3u ] = %0.3f\n",
                            ap ? "Average Precision" : "Average Recall", ap ? "(AP)" : "(AR)", iou,
                            AREA_LBL[a], ev->p.max_dets[m], v);
}

char *iseg_coco_eval_summary(const iseg_coco_eval_t ev) {
    ISEG_ASSERT(ev);
    struct iseg__buf b = {0};
    int t50 = -1, t75 = -1;
    for (size_t t = 0; t < ev->T; t++) {
        if (ev->iou_thrs[t] == 0.5 && t50 < 0) t50 = (int)t;
        if (ev->iou_thrs[t] == 0.75 && t75 < 0) t75 = (int)t;
    }
    const double *s  = ev->stats;
    bool          ok = true;
    ok = ok && summary_line(&b, ev, true, -1, 0, 2, s[0]);
    /* a threshold that is not evaluated is printed as the reference prints it: value -1 */
    if (t50 >= 0) ok = ok && summary_line(&b, ev, true, t50, 0, 2, s[1]);
    else ok = ok && iseg__buf_printf(&b, " %-18s %s @[ IoU=%-9s | area=%6s | maxDets=%3u ] = %0.3f\n",
                                     "Average Precision", "(AP)", "0.50", "all", ev->p.max_dets[2], s[1]);
    if (t75 >= 0) ok = ok && summary_line(&b, ev, true, t75, 0, 2, s[2]);
    else ok = ok && iseg__buf_printf(&b, " %-18s %s @[ IoU=%-9s | area=%6s | maxDets=%3u ] = %0.3f\n",
                                     "Average Precision", "(AP)", "0.75", "all", ev->p.max_dets[2], s[2]);
    for (size_t a = 1; a < N_A; a++) ok = ok && summary_line(&b, ev, true, -1, a, 2, s[2 + a]);
    for (size_t m = 0; m < N_M; m++) ok = ok && summary_line(&b, ev, false, -1, 0, m, s[6 + m]);
    for (size_t a = 1; a < N_A; a++) ok = ok && summary_line(&b, ev, false, -1, a, 2, s[8 + a]);
    if (!ok) {
        iseg__buf_free(&b);
        return NULL;
    }
    return b.data;
}

void iseg_coco_eval_cat_result(const iseg_coco_eval_t ev, size_t k,
                               struct iseg_coco_cat_result *out) {
    ISEG_ASSERT(ev && k < ev->K && ev->ran);
    memset(out, 0, sizeof(*out));
    out->id   = iseg_coco_eval_cat_id(ev, k);
    out->name = iseg_coco_eval_cat_name(ev, k);
    int t50 = -2, t75 = -2;
    for (size_t t = 0; t < ev->T; t++) {
        if (ev->iou_thrs[t] == 0.5 && t50 < 0) t50 = (int)t;
        if (ev->iou_thrs[t] == 0.75 && t75 < 0) t75 = (int)t;
    }
    out->ap   = iseg__coco_summary_value(ev, true, -1, 0, 2, (int)k);
    out->ap50 = t50 >= 0 ? iseg__coco_summary_value(ev, true, t50, 0, 2, (int)k) : -1;
    out->ap75 = t75 >= 0 ? iseg__coco_summary_value(ev, true, t75, 0, 2, (int)k) : -1;
    out->ar   = iseg__coco_summary_value(ev, false, -1, 0, 2, (int)k);
    for (size_t i = ev->kgrp_start[k]; i < ev->kgrp_start[k + 1]; i++) {
        const struct grp *g = ev->kgrp[i];
        out->n_gt += g->npig[0];
        out->n_dt += g->nd;
    }
}

static bool json_str(struct iseg__buf *b, const char *s) {
    if (!iseg__buf_append(b, "\"", 1)) return false;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        bool ok;
        if (*p == '"' || *p == '\\') ok = iseg__buf_printf(b, "\\%c", *p);
        else if (*p < 0x20) ok = iseg__buf_printf(b, "\\u%04x", *p);
        else ok = iseg__buf_append(b, p, 1);
        if (!ok) return false;
    }
    return iseg__buf_append(b, "\"", 1);
}

char *iseg_coco_eval_json(const iseg_coco_eval_t ev) {
    ISEG_ASSERT(ev);
    struct iseg__buf b  = {0};
    bool             ok = iseg__buf_printf(&b, "{\n  \"iou_type\": \"%s\",\n  \"stats\": [",
                                           iseg_iou_type_name(ev->p.iou_type));
    for (int i = 0; i < ISEG_COCO_N_STATS && ok; i++)
        ok = iseg__buf_printf(&b, "%s%.17g", i ? ", " : "", ev->stats[i]);
    ok = ok && iseg__buf_printf(&b, "],\n  \"per_category\": [");
    for (size_t k = 0; ev->ran && k < ev->K && ok; k++) {
        struct iseg_coco_cat_result r;
        iseg_coco_eval_cat_result(ev, k, &r);
        ok = ok && iseg__buf_printf(&b, "%s\n    {\"id\": %lld, \"name\": ", k ? "," : "",
                                    (long long)r.id);
        ok = ok && json_str(&b, r.name);
        ok = ok && iseg__buf_printf(&b,
                                    ", \"ap\": %.17g, \"ap50\": %.17g, \"ap75\": %.17g, "
                                    "\"ar\": %.17g, \"n_gt\": %zu, \"n_dt\": %zu}",
                                    r.ap, r.ap50, r.ap75, r.ar, r.n_gt, r.n_dt);
    }
    const struct iseg_coco_timings *t = &ev->timings;
    ok = ok && iseg__buf_printf(&b,
                                "%s],\n  \"timings_s\": {\"load\": %.6f, \"prepare\": %.6f, "
                                "\"evaluate\": %.6f, \"accumulate\": %.6f, \"total\": %.6f}\n}\n",
                                ev->K && ev->ran ? "\n  " : "", t->load, t->prepare, t->evaluate,
                                t->accumulate, t->total);
    if (!ok) {
        iseg__buf_free(&b);
        return NULL;
    }
    return b.data;
}

enum iseg_status iseg_coco_eval_write_json(iseg_coco_eval_t ev, const char *path) {
    ISEG_ASSERT(ev && path);
    char *doc = iseg_coco_eval_json(ev);
    if (!doc) {
        iseg__ev_error(ev, "%s: out of memory", path);
        return ISEG_STATUS_ENOMEM;
    }
    enum iseg_status st = iseg__write_file_atomic(path, doc, strlen(doc), ev->err, sizeof(ev->err));
    iseg__free(doc);
    return st;
}

/* Dice from IoU: non-crowd 2 IoU / (1 + IoU); crowd IoU is |d & g| / |d|. */
static double dice_of(const struct iseg_coco_eval *ev, const struct coco_ann *d,
                      const struct coco_ann *g, double iou) {
    if (!(g->flags & AF_CROWD)) return 2 * iou / (1 + iou);
    double ad, ag;
    if (ev->p.iou_type == ISEG_IOU_BBOX) {
        ad = d->bbox[2] * d->bbox[3];
        ag = g->bbox[2] * g->bbox[3];
    } else {
        ad = d->mask_area;
        ag = g->mask_area;
    }
    return ad + ag > 0 ? 2 * iou * ad / (ad + ag) : 0;
}

enum iseg_status iseg_coco_eval_write_matches(iseg_coco_eval_t ev, const char *path) {
    ISEG_ASSERT(ev && path);
    if (!ev->ran || !ev->p.keep_matches) {
        iseg__ev_error(ev, "%s: matches need params.keep_matches and a completed run", path);
        return ISEG_STATUS_EBADSTATE;
    }
    struct iseg__buf b = {0};
    bool ok = iseg__buf_printf(&b, "image_id,category_id,dt_id,score,gt_id,iou,dice,"
                                   "status,iou_threshold\n");
    /* the threshold is a label: 0.9, not linspace's exact 0.8999999999999999 */
    char thr_s[32];
    snprintf(thr_s, sizeof(thr_s), "%.10g", ev->iou_thrs[ev->match_t]);
    for (size_t e = 0; e < ev->n_eimg && ok; e++) {
        const struct img_res *r = &ev->res[e];
        int64_t img_id = ev->gt.imgs[ev->eimg[e]].id;
        for (size_t i = 0; i < r->n_grp && ok; i++) {
            const struct grp *g = &r->grps[i];
            for (uint32_t d = 0; d < g->nd && ok; d++) {
                const struct coco_ann *da = &ev->dt.anns[g->dt_ann[d]];
                uint8_t f = g->flags[(size_t)d * N_A * ev->T + ev->match_t]; /* area all */
                const char *status = (f & DF_IG) ? "ignored" : (f & DF_TP) ? "tp" : "fp";
                char f1[32], f2[32], f3[32];
                ok = iseg__buf_printf(&b, "%lld,%lld,%lld,%s,", (long long)img_id,
                                      (long long)da->category_id, (long long)da->id,
                                      fmt_g(f1, da->score));
                if (ok && g->m_gt[d] >= 0) {
                    const struct coco_ann *ga = &ev->gt.anns[g->gt_ann[g->m_gt[d]]];
                    ok = iseg__buf_printf(&b, "%lld,%s,%s,%s,%s\n", (long long)ga->id,
                                          fmt_g(f2, g->m_iou[d]),
                                          fmt_g(f3, dice_of(ev, da, ga, g->m_iou[d])), status,
                                          thr_s);
                } else if (ok) {
                    ok = iseg__buf_printf(&b, ",,,%s,%s\n", status, thr_s);
                }
            }
            for (uint32_t j = 0; j < g->ng && ok; j++) {
                if (g->gt_ig[j] || g->gt_matched[j]) continue;
                const struct coco_ann *ga = &ev->gt.anns[g->gt_ann[j]];
                ok = iseg__buf_printf(&b, "%lld,%lld,,,%lld,,,fn,%s\n", (long long)img_id,
                                      (long long)ga->category_id, (long long)ga->id, thr_s);
            }
        }
    }
    if (!ok) {
        iseg__buf_free(&b);
        iseg__ev_error(ev, "%s: out of memory", path);
        return ISEG_STATUS_ENOMEM;
    }
    enum iseg_status st = iseg__write_file_atomic(path, b.data, b.len, ev->err, sizeof(ev->err));
    iseg__buf_free(&b);
    return st;
}

/* mean over categories of precision[t, r, k, 0, 2] (valid categories only) */
static void mean_curve(const struct iseg_coco_eval *ev, int t_sel, double *y) {
    for (size_t r = 0; r < N_R; r++) {
        double s = 0;
        size_t n = 0;
        size_t t0 = t_sel < 0 ? 0 : (size_t)t_sel, t1 = t_sel < 0 ? ev->T : (size_t)t_sel + 1;
        for (size_t t = t0; t < t1; t++)
            for (size_t k = 0; k < ev->K; k++) {
                double v = ev->precision[PREC_IDX(ev, t, k, 0, 2) + r];
                if (v > -1) {
                    s += v;
                    n++;
                }
            }
        y[r] = n ? s / (double)n : 0;
    }
}

static enum iseg_status plot_curves(struct iseg_coco_eval *ev, const char *path,
                                    const char *title, int k) {
    double y[3][N_R];
    int    tsel[3] = {-2, -2, -1};
    for (size_t t = 0; t < ev->T; t++) {
        if (ev->iou_thrs[t] == 0.5) tsel[0] = (int)t;
        if (ev->iou_thrs[t] == 0.75) tsel[1] = (int)t;
    }
    static const char *const labels[3] = {"IoU=0.50", "IoU=0.75", "IoU=0.50:0.95"};
    struct iseg_plot_series  s[3];
    size_t                   ns = 0;
    for (int i = 0; i < 3; i++) {
        if (tsel[i] == -2) continue;
        if (k < 0) mean_curve(ev, tsel[i], y[ns]);
        else {
            size_t t0 = tsel[i] < 0 ? 0 : (size_t)tsel[i];
            size_t t1 = tsel[i] < 0 ? ev->T : (size_t)tsel[i] + 1;
            for (size_t r = 0; r < N_R; r++) {
                double acc = 0;
                for (size_t t = t0; t < t1; t++) {
                    double v = ev->precision[PREC_IDX(ev, t, (size_t)k, 0, 2) + r];
                    acc += v > -1 ? v : 0;
                }
                y[ns][r] = acc / (double)(t1 - t0);
            }
        }
        s[ns].label = labels[i];
        s[ns].x     = ev->rec_thrs;
        s[ns].y     = y[ns];
        s[ns].n     = N_R;
        iseg_plot_default_palette(ns, s[ns].rgb);
        ns++;
    }
    struct iseg_plot_params pp = iseg_plot_default_params();
    pp.title                   = title;
    pp.xlabel                  = "recall";
    pp.ylabel                  = "precision";
    return iseg_plot_lines_png(path, s, ns, &pp, ev->err, sizeof(ev->err));
}

enum iseg_status iseg_coco_eval_write_plots(iseg_coco_eval_t ev, const char *dir,
                                            bool per_category) {
    ISEG_ASSERT(ev && dir);
    if (!ev->ran) {
        iseg__ev_error(ev, "%s: no completed run to plot", dir);
        return ISEG_STATUS_EBADSTATE;
    }
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
        iseg__ev_error(ev, "%s: cannot create directory: %s", dir, strerror(errno));
        return ISEG_STATUS_EIO;
    }
    size_t           dl = strlen(dir) + 64;
    char            *path = iseg__malloc(dl);
    struct iseg__buf b    = {0};
    if (!path) goto nomem;
    /* CSV: every category and threshold */
    bool ok = iseg__buf_printf(&b, "category_id,category,iou_threshold,recall,precision\n");
    for (size_t k = 0; k < ev->K && ok; k++)
        for (size_t t = 0; t < ev->T && ok; t++) {
            const double *p = ev->precision + PREC_IDX(ev, t, k, 0, 2);
            if (p[0] <= -1) continue;
            for (size_t r = 0; r < N_R && ok; r++) {
                ok = iseg__buf_printf(&b, "%lld,", (long long)iseg_coco_eval_cat_id(ev, k));
                const char *nm = iseg_coco_eval_cat_name(ev, k);
                ok = ok && iseg__buf_append(&b, "\"", 1);
                for (const char *c = nm; *c && ok; c++)
                    ok = *c == '"' ? iseg__buf_append(&b, "\"\"", 2) : iseg__buf_append(&b, c, 1);
                char f1[32];
                ok = ok && iseg__buf_printf(&b, "\",%.2f,%.2f,%s\n", ev->iou_thrs[t],
                                            ev->rec_thrs[r], fmt_g(f1, p[r]));
            }
        }
    if (!ok) goto nomem;
    snprintf(path, dl, "%s/pr_curves.csv", dir);
    enum iseg_status st = iseg__write_file_atomic(path, b.data, b.len, ev->err, sizeof(ev->err));
    if (st != ISEG_STATUS_OK) goto out;
    snprintf(path, dl, "%s/pr_curves.png", dir);
    char title[160];
    snprintf(title, sizeof(title), "%s: mean over categories, AP %.3f",
             iseg_iou_type_name(ev->p.iou_type), ev->stats[0]);
    st = plot_curves(ev, path, title, -1);
    for (size_t k = 0; per_category && ev->p.use_cats && k < ev->K && st == ISEG_STATUS_OK; k++) {
        if (ev->precision[PREC_IDX(ev, 0, k, 0, 2)] <= -1) continue;
        struct iseg_coco_cat_result cr;
        iseg_coco_eval_cat_result(ev, k, &cr);
        snprintf(path, dl, "%s/pr_%lld.png", dir, (long long)cr.id);
        snprintf(title, sizeof(title), "%.60s (id %lld): AP %.3f", cr.name, (long long)cr.id, cr.ap);
        st = plot_curves(ev, path, title, (int)k);
    }
out:
    iseg__free(path);
    iseg__buf_free(&b);
    return st;
nomem:
    iseg__free(path);
    iseg__buf_free(&b);
    iseg__ev_error(ev, "%s: out of memory", dir);
    return ISEG_STATUS_ENOMEM;
}
