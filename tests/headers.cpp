/* Every public header compiles standalone in C++ and the library links. */
#include "iseg/iseg.h"
#include "iseg/mask.h"
#include "iseg/coco.h"
#include "iseg/match.h"
#include "iseg/image.h"
#include "iseg/plot.h"
#include "iseg/viz.h"
#include "iseg/panoptic.h"
#include "iseg/panoptic_fuse.h"
#include "iseg/loss.h"
#include "iseg/optim.h"
#include "iseg/augment.h"
#include "iseg/targets.h"
#include "iseg/tensor.h"
#include "iseg/nn.h"
#include "iseg/weights.h"
#include "iseg/model.h"
#include "iseg/dataset.h"
#include "iseg/synth.h"
#include "iseg/train.h"

#include <cstdio>
#include <cstring>

int main(void) {
    if (strcmp(iseg_version(), ISEG_VERSION_STRING) != 0) {
        fprintf(stderr, "version mismatch: %s vs %s\n", iseg_version(), ISEG_VERSION_STRING);
        return 1;
    }
    if (strcmp(iseg_status_str(ISEG_STATUS_EFORMAT), "malformed input") != 0) return 1;
    printf("headers ok (C++)\n");
    return 0;
}
