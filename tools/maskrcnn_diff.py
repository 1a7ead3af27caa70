#!/usr/bin/python3
"""Diff `iseg dump` against torchvision, tensor by tensor.

    build/iseg dump photo.png --model weights.pth --out dump.safetensors
    /usr/bin/python3 tools/maskrcnn_diff.py dump.safetensors --model weights.pth --image photo.png

Runs torchvision's Mask R-CNN (the architecture recognised from the tensor names, as iseg does)
on the same image with the same weights, captures the same named intermediates (input,
backbone.stem, backbone.layer1..4, fpn.p2..p6, rpn.head.p2..p6, rpn.proposals,
roi.box_features, roi.box_predictions, roi.mask_features, mask.logits) and prints, for each
tensor in the dump, its shape, the largest absolute difference and the largest value. Tensors
whose rows follow a selection (proposals, RoI features) are compared row by row as far as both
agree on the selection. Needs Debian's python3-torch, python3-torchvision and python3-pil.
"""
import argparse
import json
import struct
import sys

import numpy as np


def read_safetensors(path):
    with open(path, "rb") as f:
        b = f.read()
    n = struct.unpack("<Q", b[:8])[0]
    h = json.loads(b[8:8 + n])
    out = {}
    for k, v in h.items():
        if k == "__metadata__":
            continue
        s, e = v["data_offsets"]
        assert v["dtype"] == "F32", k
        out[k] = np.frombuffer(b[8 + n + s:8 + n + e], dtype=np.float32).reshape(v["shape"])
    return out


def torch_intermediates(model, x):
    import torch
    from torchvision.models.detection.rpn import concat_box_prediction_layers
    t = {}
    with torch.no_grad():
        images, _ = model.transform([x])
        t["input"] = images.tensors
        body = model.backbone.body
        y = body.relu(body.bn1(body.conv1(images.tensors)))
        t["backbone.stem"] = y
        y = body.maxpool(y)
        feats = {}
        for i, name in enumerate(["layer1", "layer2", "layer3", "layer4"]):
            y = getattr(body, name)(y)
            t["backbone." + name] = y
            feats[str(i)] = y
        fpn = model.backbone.fpn(feats)
        for i, v in enumerate(fpn.values()):
            t["fpn.p%d" % (i + 2)] = v
        fl = list(fpn.values())
        obj, deltas = model.rpn.head(fl)
        for i, (o, d) in enumerate(zip(obj, deltas)):
            t["rpn.head.p%d" % (i + 2)] = torch.cat([o, d], 1)
        anchors = model.rpn.anchor_generator(images, fl)
        per_level = [o[0].shape[0] * o[0].shape[1] * o[0].shape[2] for o in obj]
        o2, d2 = concat_box_prediction_layers(obj, deltas)
        props = model.rpn.box_coder.decode(d2, anchors).view(1, -1, 4)
        boxes, _ = model.rpn.filter_proposals(props, o2, images.image_sizes, per_level)
        t["rpn.proposals"] = boxes[0]
        rh = model.roi_heads
        bf = rh.box_roi_pool(fpn, boxes, images.image_sizes)
        t["roi.box_features"] = bf
        cl, br = rh.box_predictor(rh.box_head(bf))
        t["roi.box_predictions"] = torch.cat([cl, br], 1)
        b, s, lab = rh.postprocess_detections(cl, br, boxes, images.image_sizes)
        mf = rh.mask_roi_pool(fpn, b, images.image_sizes)
        t["roi.mask_features"] = mf
        logits = rh.mask_predictor(rh.mask_head(mf))
        idx = torch.arange(logits.shape[0])
        t["mask.logits"] = logits[idx, lab[0]][:, :, :, None]
    return {k: v.numpy() for k, v in t.items()}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("dump")
    ap.add_argument("--model", required=True, help="the weights given to iseg dump (.pth)")
    ap.add_argument("--image", required=True)
    ap.add_argument("--min-size", type=int, default=800)
    ap.add_argument("--max-size", type=int, default=1333)
    a = ap.parse_args()

    import torch
    import torchvision
    from PIL import Image
    sd = torch.load(a.model, map_location="cpu")
    if "model" in sd and isinstance(sd["model"], dict):
        sd = sd["model"]
    v2 = "roi_heads.box_head.5.weight" in sd
    build = (torchvision.models.detection.maskrcnn_resnet50_fpn_v2 if v2
             else torchvision.models.detection.maskrcnn_resnet50_fpn)
    num_classes = sd["roi_heads.box_predictor.cls_score.weight"].shape[0]
    model = build(weights=None, weights_backbone=None, num_classes=num_classes,
                  min_size=a.min_size, max_size=a.max_size)
    model.load_state_dict(sd)  # the old names of released checkpoints are remapped by torchvision
    model.eval()
    img = np.array(Image.open(a.image).convert("RGB"))
    x = torch.from_numpy(img).permute(2, 0, 1).float() / 255.0
    ref = torch_intermediates(model, x)
    got = read_safetensors(a.dump)
    print("%-22s %-22s %12s %12s" % ("tensor", "shape", "max |diff|", "max |torch|"))
    worst = 0.0
    for name, g in got.items():
        if name not in ref:
            print("%-22s %-22s %12s" % (name, str(list(g.shape)), "(no torch twin)"))
            continue
        r = ref[name].reshape(-1, *ref[name].shape[1:]) if ref[name].ndim else ref[name]
        g2 = g.reshape(r.shape) if g.size == r.size else g
        if g2.shape != r.shape:  # selections of different lengths: compare the common rows
            n = min(g2.shape[0], r.shape[0])
            g2 = g2[:n].reshape(n, *r.shape[1:]) if g2[:n].size == r[:n].size else None
            r = r[:n]
            if g2 is None:
                print("%-22s %-22s %12s" % (name, str(list(g.shape)), "shape differs"))
                continue
        d = float(np.abs(g2 - r).max()) if r.size else 0.0
        worst = max(worst, d / (float(np.abs(r).max()) + 1e-12) if r.size else 0.0)
        print("%-22s %-22s %12.3g %12.3g" % (name, str(list(g.shape)), d,
                                             float(np.abs(r).max()) if r.size else 0.0))
    print("largest difference relative to the tensor's scale: %.3g" % worst)


if __name__ == "__main__":
    main()
