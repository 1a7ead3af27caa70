/* coco_eval.c - evaluate a results file against COCO ground truth with the public API only,
 * and print AP per category.
 *
 *   build/example_coco_eval examples/data/demo_gt.json examples/data/demo_results.json [segm|bbox|boundary]
 */
#include <stdio.h>
#include <string.h>

#include <iseg/coco.h>

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s GT.json RESULTS.json [segm|bbox|boundary]\n", argv[0]);
        return 2;
    }
    struct iseg_coco_eval_params p = iseg_coco_eval_default_params();
    if (argc > 3 && strcmp(argv[3], "bbox") == 0) p.iou_type = ISEG_IOU_BBOX;
    if (argc > 3 && strcmp(argv[3], "boundary") == 0) p.iou_type = ISEG_IOU_BOUNDARY;

    char             err[256];
    iseg_coco_eval_t ev;
    if (iseg_coco_eval_init(&ev, &p, err, sizeof(err)) != ISEG_STATUS_OK) {
        fprintf(stderr, "%s\n", err);
        return 2;
    }
    if (iseg_coco_eval_load_files(ev, argv[1], argv[2]) != ISEG_STATUS_OK ||
        iseg_coco_eval_run(ev) != ISEG_STATUS_OK) {
        fprintf(stderr, "%s\n", iseg_coco_eval_last_error(ev));
        iseg_coco_eval_free(ev);
        return 2;
    }
    const double *s = iseg_coco_eval_stats(ev);
    printf("%s AP %.4f  AP50 %.4f  AP75 %.4f  AR100 %.4f\n", iseg_iou_type_name(p.iou_type), s[0],
           s[1], s[2], s[8]);
    for (size_t k = 0; k < iseg_coco_eval_n_cats(ev); k++) {
        struct iseg_coco_cat_result r;
        iseg_coco_eval_cat_result(ev, k, &r);
        if (r.ap < 0) continue; /* no ground truth for this category */
        printf("  %-20s AP %.4f over %zu objects\n", r.name, r.ap, r.n_gt);
    }
    /* precision at recall 0.5, IoU 0.5, all areas, maxDets 100, first category */
    const double *prec = iseg_coco_eval_precision(ev, 0, 0, 0, 2);
    if (prec) printf("precision of '%s' at recall 0.50, IoU 0.50: %.4f\n",
                     iseg_coco_eval_cat_name(ev, 0), prec[50]);
    iseg_coco_eval_free(ev);
    return 0;
}
