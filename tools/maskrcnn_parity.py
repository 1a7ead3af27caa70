#!/usr/bin/python3
"""Reference outputs of torchvision's Mask R-CNN on random weights, for iseg's parity tests.

Weights are not stored: every parameter is drawn from a counter-based generator (splitmix64 over
a hash of the tensor name) that tests/unit/maskrcnn_randw.h reproduces bit for bit in C, so a
golden file holds only the image, the generator's recipe, a few overridden tensors (class-logit
biases chosen so that detections occur) and torchvision's detections. Masks are stored as COCO
compressed RLE strings in the safetensors metadata.

    /usr/bin/python3 tools/maskrcnn_parity.py --arch v1 --min-size 96 --max-size 128 \
        --out tests/golden/maskrcnn/v1_small.safetensors
    /usr/bin/python3 tools/maskrcnn_parity.py --arch v2 --out /tmp/v2_800.safetensors   # 800 px
    /usr/bin/python3 tools/maskrcnn_parity.py --arch compact --bn-stats image --seed 7 \
        --image natural:120x160 --min-size 96 --max-size 128 --rpn-pre 200 --rpn-post 100 \
        --dets 20 --out tests/golden/maskrcnn/compact_small_image_bn.safetensors   # and v1

Needs Debian's python3-torch and python3-torchvision (1.13 / 0.14) and numpy.
"""
import argparse
import json
import math
import struct
import sys

import numpy as np

MASK64 = (1 << 64) - 1


def fnv1a64(s):
    h = 0xCBF29CE484222325
    for b in s.encode():
        h = ((h ^ b) * 0x100000001B3) & MASK64
    return h


def uniform01(seed, n):
    """n float32 values in [0, 1) with 24 random bits each (splitmix64 of seed + i)."""
    i = np.arange(1, n + 1, dtype=np.uint64)
    with np.errstate(over="ignore"):
        z = np.uint64(seed) + i * np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(40)).astype(np.float32) * np.float32(2.0 ** -24)


def draw(name, shape, center, half, seed):
    """center + half * (2u - 1), each step rounded to float32 (as the C generator does)."""
    n = int(np.prod(shape)) if len(shape) else 1
    u = uniform01(fnv1a64(name) ^ ((seed * 0x9E3779B97F4A7C15) & MASK64), n)
    v = (u * np.float32(2.0) - np.float32(1.0)) * np.float32(half) + np.float32(center)
    return v.astype(np.float32).reshape(shape)


# Gains (variance scale of the uniform init relative to fan-in) that keep activations of order
# one: the residual stream grows slowly, and the prediction layers give logits and box deltas
# of a size that neither saturates sigmoids nor hits the delta clamp.
HEAD_GAINS = [
    ("conv3.weight", 0.5),
    ("backbone.fpn", 0.5),
    ("rpn.head.cls_logits", 0.02),
    ("rpn.head.bbox_pred", 0.002),
    ("box_head.fc", 0.5),
    ("box_head.5", 0.5),
    ("box_head", 2.0),
    ("cls_score", 0.5),
    ("box_predictor.bbox_pred", 0.001),
    ("mask_fcn_logits", 0.05),
]


def recipe(name, shape, conv_gain, bn_modules, basic=False):
    """(center, half) of the uniform distribution of one parameter."""
    module, leaf = name.rsplit(".", 1)
    is_bn = module in bn_modules
    if leaf == "running_mean":
        return 0.0, 0.1
    if leaf == "running_var":
        return 1.0, 0.25
    if is_bn and leaf == "weight":
        return 1.0, 0.25
    if is_bn and leaf == "bias":
        return 0.0, 0.1
    if leaf == "bias":
        return 0.0, 0.05
    fan_in = int(np.prod(shape[1:]))
    if "conv5_mask" in name:  # ConvTranspose2d weight (in, out, kh, kw)
        fan_in = shape[0]
    gain = conv_gain
    if basic and ".layer" in name and name.endswith("conv2.weight"):
        gain = 0.5  # the last conv of a basic block, as conv3 of a bottleneck
    for pattern, g in HEAD_GAINS:
        if pattern in name:
            gain = g
            break
    return 0.0, float(np.float32(math.sqrt(3.0 * gain / fan_in)))


def natural_image(h, w, seed):
    """A natural-looking RGB image: sky gradient, hills, textured ground and a few objects."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.zeros((h, w, 3), np.float32)
    sky = np.stack([0.45 + 0.3 * y / h, 0.6 + 0.25 * y / h, 0.95 - 0.1 * y / h], -1)
    img[:] = sky
    hill = h * (0.55 + 0.08 * np.sin(x / w * 6.3 + 1.0) + 0.04 * np.sin(x / w * 17.0))
    ground = y > hill
    noise = rng.random((h // 4 + 1, w // 4 + 1)).astype(np.float32)
    noise = np.kron(noise, np.ones((4, 4), np.float32))[:h, :w]
    g = np.stack([0.25 + 0.2 * noise, 0.45 + 0.25 * noise, 0.15 + 0.1 * noise], -1)
    img[ground] = g[ground]
    for _ in range(6):
        cx, cy = rng.uniform(0.1, 0.9) * w, rng.uniform(0.35, 0.9) * h
        rx, ry = rng.uniform(0.04, 0.15) * w, rng.uniform(0.05, 0.2) * h
        col = rng.uniform(0.05, 0.95, 3)
        inside = ((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2 < 1
        shade = 0.75 + 0.25 * (1 - (y - cy + ry) / (2 * ry))
        img[inside] = (col[None, :] * shade[inside][:, None])
    img += rng.normal(0, 0.02, img.shape).astype(np.float32)
    return (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)


def rle_string(mask):
    """COCO compressed RLE string of a binary (h, w) mask (column-major runs)."""
    flat = mask.T.reshape(-1).astype(np.uint8)
    counts, cur, run = [], 0, 0
    for v in flat:
        if v == cur:
            run += 1
        else:
            counts.append(run)
            cur, run = v, 1
    counts.append(run)
    out = []
    for i, c in enumerate(counts):
        x = c - counts[i - 2] if i > 2 else c
        more = True
        while more:
            ch = x & 0x1F
            x >>= 5
            more = (x != -1) if (ch & 0x10) else (x != 0)
            if more:
                ch |= 0x20
            out.append(chr(ch + 48))
    return "".join(out)


def write_safetensors(path, tensors, metadata):
    header, blobs, off = {}, [], 0
    for name, arr in tensors.items():
        arr = np.ascontiguousarray(arr)
        dt = {np.float32: "F32", np.int64: "I64", np.uint8: "U8"}[arr.dtype.type]
        b = arr.tobytes()
        header[name] = {"dtype": dt, "shape": list(arr.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    header["__metadata__"] = metadata
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def compact_model(num_classes=91, width=32, fpn=128, rep=256, mask_ch=128,
                  anchor_sizes=(16, 32, 64, 128, 256), **kw):
    """iseg's compact Mask R-CNN: a ResNet-18-like body (basic blocks 2-2-2-2, widths w..8w,
    batch norm), an FPN of `fpn` channels, v1 heads of reduced size. The module names are
    torchvision's, so iseg reads its state dict as a maskrcnn_resnet_fpn."""
    import torch.nn as nn
    from torchvision.models.detection import MaskRCNN
    from torchvision.models.detection.anchor_utils import AnchorGenerator
    from torchvision.models.detection.backbone_utils import BackboneWithFPN
    from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
    from torchvision.models.detection.mask_rcnn import MaskRCNNHeads, MaskRCNNPredictor
    from torchvision.ops.feature_pyramid_network import LastLevelMaxPool

    class Basic(nn.Module):
        def __init__(self, cin, cout, stride):
            super().__init__()
            self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(cout)
            self.relu = nn.ReLU(inplace=True)
            self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(cout)
            self.downsample = None
            if stride != 1 or cin != cout:
                self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                                nn.BatchNorm2d(cout))

        def forward(self, x):
            idn = x if self.downsample is None else self.downsample(x)
            y = self.relu(self.bn1(self.conv1(x)))
            return self.relu(self.bn2(self.conv2(y)) + idn)

    class Body(nn.Module):
        def __init__(self, w):
            super().__init__()
            self.conv1 = nn.Conv2d(3, w, 7, 2, 3, bias=False)
            self.bn1 = nn.BatchNorm2d(w)
            self.relu = nn.ReLU(inplace=True)
            self.maxpool = nn.MaxPool2d(3, 2, 1)
            cin = w
            for i in range(4):
                cout = w << i
                setattr(self, "layer%d" % (i + 1),
                        nn.Sequential(Basic(cin, cout, 1 if i == 0 else 2), Basic(cout, cout, 1)))
                cin = cout

    body = Body(width)
    backbone = BackboneWithFPN(body, {"layer%d" % (i + 1): str(i) for i in range(4)},
                               [width << i for i in range(4)], fpn, extra_blocks=LastLevelMaxPool())
    anchors = AnchorGenerator(tuple((s,) for s in anchor_sizes), ((0.5, 1.0, 2.0),) * 5)
    return MaskRCNN(backbone, num_classes=None, rpn_anchor_generator=anchors,
                    box_head=TwoMLPHead(fpn * 49, rep),
                    box_predictor=FastRCNNPredictor(rep, num_classes),
                    mask_head=MaskRCNNHeads(fpn, (mask_ch,) * 4, 1),
                    mask_predictor=MaskRCNNPredictor(mask_ch, mask_ch, num_classes), **kw)


def legacy_names(sd):
    """The tensor names of torchvision's 2019 checkpoints (before Conv2dNormActivation)."""
    import collections
    import re
    out = collections.OrderedDict()
    for k, v in sd.items():
        if k.endswith("num_batches_tracked"):
            continue
        k = re.sub(r"^backbone\.fpn\.(inner|layer)_blocks\.(\d)\.0\.", r"backbone.fpn.\1_blocks.\2.", k)
        k = re.sub(r"^rpn\.head\.conv\.0\.0\.", "rpn.head.conv.", k)
        k = re.sub(r"^roi_heads\.mask_head\.(\d)\.0\.",
                   lambda m: "roi_heads.mask_head.mask_fcn%d." % (int(m.group(1)) + 1), k)
        out[k] = v
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--arch", choices=["v1", "v2", "compact"], default="v1")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--image", default="natural:480x640",
                    help="natural:HxW (generated) or a PNG/JPEG path")
    ap.add_argument("--min-size", type=int, default=800)
    ap.add_argument("--max-size", type=int, default=1333)
    ap.add_argument("--rpn-pre", type=int, default=1000)
    ap.add_argument("--rpn-post", type=int, default=1000)
    ap.add_argument("--dets", type=int, default=100)
    ap.add_argument("--conv-gain", type=float, default=2.0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--save-weights", help="also write the weights here (.safetensors or .pth)")
    ap.add_argument("--legacy", action="store_true",
                    help="save .pth weights as torchvision's released checkpoints are: the old "
                         "tensor names, no num_batches_tracked, torch's legacy (non-zip) format")
    ap.add_argument("--bn-stats", choices=["running", "image"], default="running",
                    help="image: the backbone's batch norms in training mode (each image's own "
                         "statistics), as iseg's trainer normalises and models it trains record "
                         "(iseg.bn_stats)")
    ap.add_argument("--save-image", help="also write the input image here (PNG)")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()

    import torch
    import torchvision
    torch.set_num_threads(a.threads)
    kw = dict(min_size=a.min_size, max_size=a.max_size, rpn_pre_nms_top_n_test=a.rpn_pre,
              rpn_post_nms_top_n_test=a.rpn_post, box_detections_per_img=a.dets)
    if a.arch == "compact":
        model = compact_model(**kw)
    else:
        build = {"v1": torchvision.models.detection.maskrcnn_resnet50_fpn,
                 "v2": torchvision.models.detection.maskrcnn_resnet50_fpn_v2}[a.arch]
        model = build(weights=None, weights_backbone=None, **kw)
    model.eval()
    sd = model.state_dict()
    spec = []
    new_sd = {}
    bn_modules = {k[: -len(".running_mean")] for k in sd if k.endswith(".running_mean")}
    for name, t in sd.items():
        if t.dtype != torch.float32:
            new_sd[name] = t  # num_batches_tracked
            continue
        center, half = recipe(name, tuple(t.shape), a.conv_gain, bn_modules,
                              basic=a.arch == "compact")
        new_sd[name] = torch.from_numpy(draw(name, tuple(t.shape), center, half, a.seed))
        spec.append("%s|%s|%.9g|%.9g" % (name, ",".join(str(d) for d in t.shape), center, half))
    # class-logit biases: background neutral, a handful of classes favoured so that detections
    # with varied scores occur on random weights
    K = sd["roi_heads.box_predictor.cls_score.bias"].shape[0]
    bias = np.zeros(K, np.float32)
    for k, v in zip((1, 3, 18, 44, 62, 17), (3.0, 2.6, 2.2, 1.8, 1.5, 1.2)):
        if k < K:
            bias[k] = v
    overrides = {"roi_heads.box_predictor.cls_score.bias": bias}
    for k, v in overrides.items():
        new_sd[k] = torch.from_numpy(v.copy())
    model.load_state_dict(new_sd)
    if a.bn_stats == "image":
        bns = [mod for mod in model.backbone.body.modules()
               if isinstance(mod, torch.nn.modules.batchnorm._BatchNorm)]
        if not bns:
            sys.exit("--bn-stats image: the backbone has no trainable batch norms")
        for mod in bns:
            mod.train()

    if a.image.startswith("natural:"):
        hh, ww = (int(v) for v in a.image.split(":")[1].split("x"))
        img = natural_image(hh, ww, a.seed)
    else:
        from PIL import Image
        img = np.array(Image.open(a.image).convert("RGB"))
    x = torch.from_numpy(img).permute(2, 0, 1).float() / 255.0
    with torch.no_grad():
        out = model([x])[0]
    boxes = out["boxes"].numpy().astype(np.float32)
    scores = out["scores"].numpy().astype(np.float32)
    labels = out["labels"].numpy().astype(np.int64)
    masks = (out["masks"][:, 0] > 0.5).numpy()
    meta = {
        "format": "iseg-maskrcnn-parity-1",
        "torch": torch.__version__, "torchvision": torchvision.__version__,
        "arch": {"v1": "maskrcnn_resnet50_fpn", "v2": "maskrcnn_resnet50_fpn_v2",
                 "compact": "maskrcnn_resnet_fpn"}[a.arch],
        "seed": str(a.seed), "min_size": str(a.min_size), "max_size": str(a.max_size),
        "rpn_pre_nms_top_n": str(a.rpn_pre), "rpn_post_nms_top_n": str(a.rpn_post),
        "detections_per_img": str(a.dets), "spec": "\n".join(spec),
        "n_dets": str(len(scores)),
    }
    if a.arch == "compact":  # the model file's own description (iseg reads it)
        meta["iseg.anchor_sizes"] = "16,32,64,128,256"
    if a.bn_stats == "image":
        meta["iseg.bn_stats"] = "image"
    for i in range(len(scores)):
        meta["mask.%d" % i] = rle_string(masks[i])
    tensors = {"image": img, "boxes": boxes.reshape(-1, 4), "scores": scores, "labels": labels}
    for k, v in overrides.items():
        tensors["override." + k] = v
    write_safetensors(a.out, tensors, meta)
    if a.save_image:
        from PIL import Image
        Image.fromarray(img).save(a.save_image)
    if a.save_weights:
        if a.save_weights.endswith(".pth") and a.legacy:
            torch.save(legacy_names(model.state_dict()), a.save_weights,
                       _use_new_zipfile_serialization=False)
        elif a.save_weights.endswith(".pth"):
            torch.save(model.state_dict(), a.save_weights)
        else:
            write_safetensors(a.save_weights, {k: v.numpy() for k, v in model.state_dict().items()
                                                if v.dtype == torch.float32},
                              {k: v for k, v in meta.items() if k.startswith("iseg.")})
    print("%s: %d detections, scores %s, labels %s" % (
        a.out, len(scores), np.round(scores[:8], 3).tolist(), labels[:8].tolist()),
        file=sys.stderr)


if __name__ == "__main__":
    main()
