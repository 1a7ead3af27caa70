#!/usr/bin/python3
"""make_nn_goldens.py - torch/torchvision reference outputs for tests/unit/test_nn_torch.c.

Run with Debian's interpreter (torch 1.13, torchvision 0.14):
    /usr/bin/python3 tools/make_nn_goldens.py [outdir]      # default tests/golden/nn

Writes one safetensors file per operator family (written by hand: 8-byte little-endian header
length, JSON header {name: {dtype, shape, data_offsets}}, raw little-endian bytes). Integer
configuration travels as I64 tensors named "<case>.cfg". Seeded; small (well under 1 MB).
"""
import json
import math
import os
import struct
import sys

import torch
import torch.nn.functional as F
import torchvision
from torchvision.models.detection._utils import BoxCoder
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.image_list import ImageList
from torchvision.ops import boxes as box_ops
from torchvision.ops import roi_align
from torchvision.ops.poolers import LevelMapper

SEED = 1234


def save(path, tensors):
    header, blobs, off = {}, [], 0
    for name, t in tensors.items():
        t = t.detach().contiguous()
        if t.dtype == torch.float32:
            dt = "F32"
        elif t.dtype == torch.int64:
            dt = "I64"
        else:
            raise ValueError(f"{name}: dtype {t.dtype}")
        raw = t.numpy().tobytes()
        header[name] = {"dtype": dt, "shape": list(t.shape), "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    header["__metadata__"] = {"torch": torch.__version__, "torchvision": torchvision.__version__,
                              "seed": str(SEED)}
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def i64(*v):
    return torch.tensor(v, dtype=torch.int64)


def rnd(*shape):
    return torch.randn(*shape, dtype=torch.float32)


def conv_cases():
    out = {}
    # name: (B, cin, cout, h, w, k, stride, pad, dil, groups)
    cases = {
        "c3x3": (2, 5, 7, 9, 11, 3, 1, 1, 1, 1),
        "c7x7s2": (1, 3, 8, 19, 17, 7, 2, 3, 1, 1),
        "c1x1": (1, 16, 9, 6, 7, 1, 1, 0, 1, 1),
        "cdil2": (1, 4, 6, 10, 9, 3, 2, 2, 2, 1),
        "cgroups2": (2, 6, 4, 7, 8, 3, 1, 1, 1, 2),
        "cdepthwise": (1, 8, 8, 9, 6, 3, 1, 1, 1, 8),
    }
    for n, (B, ci, co, h, w, k, s, p, d, g) in cases.items():
        x, wt, b = rnd(B, ci, h, w), rnd(co, ci // g, k, k), rnd(co)
        out[n + ".x"], out[n + ".w"], out[n + ".b"] = x, wt, b
        out[n + ".y"] = F.conv2d(x, wt, b, stride=s, padding=p, dilation=d, groups=g)
        out[n + ".cfg"] = i64(k, s, p, d, g)
    # transposed: (B, cin, cout, h, w, k, stride, pad, out_pad, dil, groups)
    dcases = {"d2x2s2": (2, 6, 5, 4, 5, 2, 2, 0, 0, 1, 1), "d3x3s2": (1, 4, 3, 5, 6, 3, 2, 1, 1, 1, 1)}
    for n, (B, ci, co, h, w, k, s, p, op, d, g) in dcases.items():
        x, wt, b = rnd(B, ci, h, w), rnd(ci, co // g, k, k), rnd(co)
        out[n + ".x"], out[n + ".w"], out[n + ".b"] = x, wt, b
        out[n + ".y"] = F.conv_transpose2d(x, wt, b, stride=s, padding=p, output_padding=op,
                                           dilation=d, groups=g)
        out[n + ".cfg"] = i64(k, s, p, op, d, g)
    return out


def misc_cases():
    out = {}
    x = rnd(2, 6, 5, 7)
    g, b, m, v = rnd(6), rnd(6), rnd(6), torch.rand(6) + 0.1
    out.update({"bn.x": x, "bn.gamma": g, "bn.beta": b, "bn.mean": m, "bn.var": v})
    out["bn.y"] = F.batch_norm(x, m, v, g, b, training=False, eps=1e-5)
    out["gn.x"], out["gn.gamma"], out["gn.beta"] = x, g, b
    out["gn.y"] = F.group_norm(x, 3, g, b, eps=1e-5)
    out["gn.cfg"] = i64(3)
    xp = rnd(2, 3, 11, 10)
    out["maxpool.x"] = xp
    out["maxpool.y"] = F.max_pool2d(xp, 3, 2, 1)
    out["maxpool.cfg"] = i64(3, 2, 1)
    xr = rnd(1, 3, 7, 9)
    out["resize.x"] = xr
    out["nearest.y"] = F.interpolate(xr, size=(13, 20), mode="nearest")
    out["nearest2.y"] = F.interpolate(xr, size=(3, 4), mode="nearest")
    out["bilinear.y"] = F.interpolate(xr, size=(12, 5), mode="bilinear", align_corners=False)
    # the transform's path: scale_factor with recompute_scale_factor=True (size = floor(in * s))
    out["bilinear_rs.y"] = F.interpolate(xr, scale_factor=1.7, mode="bilinear",
                                         align_corners=False, recompute_scale_factor=True)
    # scale_factor kept: the sampling scale is 1 / s
    out["bilinear_sf.y"] = F.interpolate(xr, scale_factor=2.0, mode="bilinear", align_corners=False)
    xl, wl, bl = rnd(5, 37), rnd(19, 37), rnd(19)
    out.update({"linear.x": xl, "linear.w": wl, "linear.b": bl, "linear.y": F.linear(xl, wl, bl)})
    xs = rnd(4, 91) * 3
    out["softmax.x"], out["softmax.y"] = xs, F.softmax(xs, -1)
    out["sigmoid.y"] = torch.sigmoid(xs)
    return out


def det_cases():
    out = {}
    C, H, W, N = 3, 12, 15, 10
    feat = rnd(1, C, H, W)
    xy = torch.rand(N, 2) * torch.tensor([70.0, 56.0]) - 8
    wh = torch.rand(N, 2) * torch.tensor([40.0, 30.0]) + 0.5
    boxes = torch.cat([xy, xy + wh], 1)
    boxes[0] = torch.tensor([-20.0, -20.0, -5.0, -6.0])   # outside: samples < -1 dropped
    boxes[1] = torch.tensor([50.0, 40.0, 75.0, 62.0])     # past the bottom-right border
    boxes[2] = torch.tensor([10.0, 10.0, 10.5, 10.2])     # tiny: roi size clamped to 1
    out["roi.feat"], out["roi.boxes"] = feat[0], boxes
    rois = torch.cat([torch.zeros(N, 1), boxes], 1)
    out["roi_a.y"] = roi_align(feat, rois, (7, 7), 0.25, 2, False)
    out["roi_b.y"] = roi_align(feat, rois, (7, 7), 0.25, 2, True)
    out["roi_c.y"] = roi_align(feat, rois, (5, 4), 0.25, -1, False)
    out["roi_a.cfg"], out["roi_b.cfg"], out["roi_c.cfg"] = i64(7, 7, 2, 0), i64(7, 7, 2, 1), i64(5, 4, -1, 0)
    out["roi.scale"] = torch.tensor([0.25])

    # NMS: random boxes, quantised scores (ties), and an exact IoU = 0.5 pair
    M = 60
    xy = torch.rand(M, 2) * 50
    wh = torch.rand(M, 2) * 25 + 3
    nb = torch.cat([xy, xy + wh], 1)
    ns = torch.randint(0, 12, (M,)).float() / 12
    nb[0], nb[1], ns[0], ns[1] = torch.tensor([0.0, 0, 10, 10]), torch.tensor([0.0, 0, 10, 5]), 0.99, 0.98
    nb[2], ns[2] = torch.tensor([0.0, 0, 10, 10]), 0.99   # exact duplicate of 0 with a tied score
    idxs = torch.randint(0, 3, (M,))
    out["nms.boxes"], out["nms.scores"], out["nms.idxs"] = nb, ns, idxs
    for t in (0.5, 0.7, 0.3):
        tag = str(int(round(t * 10)))
        out["nms.keep" + tag] = box_ops.nms(nb, ns, t)
        out["bnms.keep" + tag] = box_ops.batched_nms(nb, ns, idxs, t)
    out["nms.thr"] = torch.tensor([0.5, 0.7, 0.3])

    # box coder
    P = 16
    ref = torch.cat([torch.rand(P, 2) * 50, torch.rand(P, 2) * 50 + 60], 1)
    tgt = torch.cat([torch.rand(P, 2) * 50, torch.rand(P, 2) * 50 + 60], 1)
    d = rnd(P, 4)
    d[0, 2] = 9.0  # beyond the clip
    out["box.ref"], out["box.tgt"], out["box.deltas"] = ref, tgt, d
    for tag, w in (("w10", (10.0, 10.0, 5.0, 5.0)), ("w1", (1.0, 1.0, 1.0, 1.0))):
        bc = BoxCoder(w)
        out["box.decode_" + tag] = bc.decode_single(d, ref)
        out["box.encode_" + tag] = bc.encode_single(tgt, ref)
    cb = torch.cat([torch.rand(P, 2) * 140 - 20, torch.rand(P, 2) * 140 - 20], 1)
    out["box.clip_in"] = cb
    out["box.clip_out"] = box_ops.clip_boxes_to_image(cb, (70, 90))
    out["box.clip_hw"] = i64(70, 90)

    # anchors: sizes 32/64, ratios 0.5/1/2, padded image 64x96, feature maps 16x24 and 8x12
    ag = AnchorGenerator(((32,), (64,)), ((0.5, 1.0, 2.0),) * 2)
    il = ImageList(torch.zeros(1, 3, 64, 96), [(60, 90)])
    fm = [torch.zeros(1, 1, 16, 24), torch.zeros(1, 1, 8, 12)]
    out["anchors.out"] = ag(il, fm)[0]
    out["anchors.cfg"] = i64(64, 96, 16, 24, 8, 12)

    lb = torch.cat([torch.zeros(P, 2), torch.rand(P, 2) * 900 + 1], 1)
    lm = LevelMapper(2, 5)
    out["levels.boxes"] = lb
    out["levels.y"] = lm([lb]).to(torch.int64)
    return out


def main():
    outdir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "..", "tests", "golden", "nn")
    os.makedirs(outdir, exist_ok=True)
    torch.manual_seed(SEED)
    torch.set_num_threads(1)
    save(os.path.join(outdir, "conv.safetensors"), conv_cases())
    save(os.path.join(outdir, "misc.safetensors"), misc_cases())
    save(os.path.join(outdir, "det.safetensors"), det_cases())


if __name__ == "__main__":
    main()
