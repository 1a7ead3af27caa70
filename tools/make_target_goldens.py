#!/usr/bin/python3
"""Torchvision goldens of training-time target assignment (tests/unit/test_targets.c).

    /usr/bin/python3 tools/make_target_goldens.py tests/golden/nn/targets.safetensors

box_iou, the RPN matcher (0.7/0.3 with low-quality matches) and the proposal matcher
(0.5/0.5), and mask targets (project_masks_on_boxes, 28x28), on seeded random boxes with
deliberate ties. Needs Debian's python3-torch and python3-torchvision.
"""
import json
import struct
import sys

import torch
from torchvision.models.detection import _utils as det_utils
from torchvision.models.detection.roi_heads import project_masks_on_boxes
from torchvision.ops import box_iou

torch.manual_seed(11)
T = {}


def boxes(n, size=100.0):
    xy = torch.rand(n, 2) * size
    wh = torch.rand(n, 2) * size / 2 + 1
    return torch.cat([xy, xy + wh], 1)


gt = boxes(5)
pred = torch.cat([boxes(60), gt[:2] + 0.5, gt[2:3].clone(), gt[2:3].clone()])  # ties
iou = box_iou(gt, pred)
T["gt"], T["pred"], T["iou"] = gt, pred, iou
T["match_rpn"] = det_utils.Matcher(0.7, 0.3, allow_low_quality_matches=True)(iou).float()
T["match_roi"] = det_utils.Matcher(0.5, 0.5, allow_low_quality_matches=False)(iou).float()
# mask targets: 3 masks on a 40x50 image, 6 boxes
H, W = 40, 50
yy, xx = torch.meshgrid(torch.arange(H).float(), torch.arange(W).float(), indexing="ij")
masks = torch.stack([((xx - 15) ** 2 / 100 + (yy - 20) ** 2 / 64 < 1).float(),
                     ((xx > 30) & (xx < 45) & (yy > 5) & (yy < 30)).float(),
                     ((xx + yy) < 30).float()])
mboxes = torch.tensor([[5.0, 12.0, 25.0, 28.0], [30.5, 5.5, 45.0, 30.0], [0.0, 0.0, 30.0, 30.0],
                       [3.3, 10.1, 27.7, 30.9], [28.0, 2.0, 48.0, 33.0], [-2.0, -3.0, 10.0, 8.0]])
midx = torch.tensor([0, 1, 2, 0, 1, 2])
T["masks"], T["mask_boxes"], T["mask_gt_index"] = masks, mboxes, midx.float()
T["mask_targets"] = project_masks_on_boxes(masks, mboxes, midx, 28)

header, blobs, off = {}, [], 0
for name, t in T.items():
    data = t.contiguous().numpy().astype("<f4").tobytes()
    header[name] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [off, off + len(data)]}
    blobs.append(data)
    off += len(data)
header["__metadata__"] = {"torch": torch.__version__, "seed": "11"}
h = json.dumps(header, separators=(",", ":")).encode()
h += b" " * ((8 - len(h) % 8) % 8)
with open(sys.argv[1], "wb") as f:
    f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))
print("%s: %d tensors, %d bytes" % (sys.argv[1], len(T), 8 + len(h) + off))
