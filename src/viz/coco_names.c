/* coco_names.c - COCO category names: by official category id, and torchvision's label list.
 *
 * COCO numbers its 80 "things" categories 1..90 with 10 gaps (ids 12, 26, 29, 30, 45, 66, 68,
 * 69, 71, 83, which the 2014 paper's 91-category list had and the released annotations do not).
 * torchvision's detection models predict a label in 0..90 that equals the category id, with 0
 * for the background; its list has "N/A" at the gaps. The names below are exactly torchvision's
 * (MaskRCNN_ResNet50_FPN_Weights.DEFAULT.meta["categories"]), which match the "name" fields of
 * instances_val2017.json. */
#include <stddef.h>

#include "iseg/viz.h"

#define N_LABELS 91

static const char *const LABELS[N_LABELS] = {
    "__background__", "person", "bicycle", "car", /* 0.. */
    "motorcycle", "airplane", "bus", "train", /* 4.. */
    "truck", "boat", "traffic light", "fire hydrant", /* 8.. */
    "N/A", "stop sign", "parking meter", "bench", /* 12.. */
    "bird", "cat", "dog", "horse", /* 16.. */
    "sheep", "cow", "elephant", "bear", /* 20.. */
    "zebra", "giraffe", "N/A", "backpack", /* 24.. */
    "umbrella", "N/A", "N/A", "handbag", /* 28.. */
    "tie", "suitcase", "frisbee", "skis", /* 32.. */
    "snowboard", "sports ball", "kite", "baseball bat", /* 36.. */
    "baseball glove", "skateboard", "surfboard", "tennis racket", /* 40.. */
    "bottle", "N/A", "wine glass", "cup", /* 44.. */
    "fork", "knife", "spoon", "bowl", /* 48.. */
    "banana", "apple", "sandwich", "orange", /* 52.. */
    "broccoli", "carrot", "hot dog", "pizza", /* 56.. */
    "donut", "cake", "chair", "couch", /* 60.. */
    "potted plant", "bed", "N/A", "dining table", /* 64.. */
    "N/A", "N/A", "toilet", "N/A", /* 68.. */
    "tv", "laptop", "mouse", "remote", /* 72.. */
    "keyboard", "cell phone", "microwave", "oven", /* 76.. */
    "toaster", "sink", "refrigerator", "N/A", /* 80.. */
    "book", "clock", "vase", "scissors", /* 84.. */
    "teddy bear", "hair drier", "toothbrush", /* 88.. */
};

_Static_assert(sizeof(LABELS) / sizeof(LABELS[0]) == N_LABELS, "91 torchvision labels");

const char *iseg_coco_category_name(int category_id) {
    if (category_id < 1 || category_id >= N_LABELS) return NULL;
    const char *s = LABELS[category_id];
    /* the unused ids are the "N/A" entries */
    return s[0] == 'N' && s[1] == '/' ? NULL : s;
}

const char *const *iseg_coco_torchvision_labels(int *n) {
    if (n) *n = N_LABELS;
    return LABELS;
}
