#!/usr/bin/python3
"""End-to-end Mask R-CNN benchmark: torch (torchvision 0.14) and iseg side by side, per stage.

    /usr/bin/python3 bench/bench_maskrcnn.py [--iseg build/iseg] [--arch v1] [--sizes 800,320]
                                             [--threads 1,2] [--repeat 5]

Both run the same random weights (tools/maskrcnn_parity.py's recipe, so that about 100
detections occur) on the same natural-looking 480x640 image; torch's stages are timed by
calling torchvision's modules one after the other (checked to give model()'s detections), iseg's
with `iseg predict --timings --repeat N`. Medians after one warm-up run, in milliseconds; the
ratio column is torch / iseg (> 1: iseg is faster).
"""
import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tools"))

STAGES = ["transform", "backbone", "fpn", "rpn_head", "rpn_proposals", "box_roi_align",
          "box_head", "mask_roi_align", "mask_head", "paste", "total"]


def torch_stages(model, x):
    import torch
    from torchvision.models.detection.roi_heads import maskrcnn_inference
    from torchvision.models.detection.rpn import concat_box_prediction_layers
    t, t0 = {}, [time.perf_counter()]

    def lap(name):
        now = time.perf_counter()
        t[name] = (now - t0[0]) * 1e3
        t0[0] = now

    start = t0[0]
    with torch.no_grad():
        images, _ = model.transform([x])
        lap("transform")
        body = model.backbone.body(images.tensors)
        lap("backbone")
        feats = model.backbone.fpn(body)
        lap("fpn")
        fl = list(feats.values())
        obj, deltas = model.rpn.head(fl)
        lap("rpn_head")
        anchors = model.rpn.anchor_generator(images, fl)
        per_level = [o[0].shape[0] * o[0].shape[1] * o[0].shape[2] for o in obj]
        obj, deltas = concat_box_prediction_layers(obj, deltas)
        props = model.rpn.box_coder.decode(deltas, anchors).view(1, -1, 4)
        boxes, _ = model.rpn.filter_proposals(props, obj, images.image_sizes, per_level)
        lap("rpn_proposals")
        rh = model.roi_heads
        bf = rh.box_roi_pool(feats, boxes, images.image_sizes)
        lap("box_roi_align")
        cl, br = rh.box_predictor(rh.box_head(bf))
        b, s, lab = rh.postprocess_detections(cl, br, boxes, images.image_sizes)
        lap("box_head")
        mf = rh.mask_roi_pool(feats, b, images.image_sizes)
        lap("mask_roi_align")
        probs = maskrcnn_inference(rh.mask_predictor(rh.mask_head(mf)), lab)
        lap("mask_head")
        res = [{"boxes": b[0], "labels": lab[0], "scores": s[0], "masks": probs[0]}]
        res = model.transform.postprocess(res, images.image_sizes, [tuple(x.shape[-2:])])
        lap("paste")
    t["total"] = (time.perf_counter() - start) * 1e3
    return t, res[0]


def iseg_stages(iseg, img, weights, min_size, max_size, threads, repeat):
    cmd = [iseg, "predict", img, "--model", weights, "--min-size", str(min_size),
           "--max-size", str(max_size), "--threads", str(threads), "--timings",
           "--repeat", str(repeat + 1)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    t = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] in STAGES:
            t[parts[0]] = float(parts[1])
    return t


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--iseg", default=os.path.join(HERE, "..", "build", "iseg"))
    ap.add_argument("--arch", choices=["v1", "v2"], default="v1")
    ap.add_argument("--sizes", default="800,320")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--repeat", type=int, default=5)
    a = ap.parse_args()

    import numpy as np
    import torch
    import maskrcnn_parity as mp
    tmp = tempfile.mkdtemp(prefix="bench_maskrcnn.")
    weights, img_path = os.path.join(tmp, "w.pth"), os.path.join(tmp, "img.png")
    subprocess.run([sys.executable, os.path.join(HERE, "..", "tools", "maskrcnn_parity.py"),
                    "--arch", a.arch, "--image", "natural:480x640", "--seed", "2",
                    "--min-size", "320", "--max-size", "533",
                    "--out", os.path.join(tmp, "g.safetensors"), "--save-weights", weights,
                    "--save-image", img_path], check=True, capture_output=True)
    from PIL import Image
    img = np.array(Image.open(img_path).convert("RGB"))
    x = torch.from_numpy(img).permute(2, 0, 1).float() / 255.0
    sd = torch.load(weights)
    print("Mask R-CNN %s, 480x640 image, random weights (~100 detections); medians of %d runs, ms"
          % (a.arch, a.repeat))
    for size in (int(v) for v in a.sizes.split(",")):
        max_size = 1333 if size == 800 else int(round(size * 1333 / 800))
        import torchvision
        build = {"v1": torchvision.models.detection.maskrcnn_resnet50_fpn,
                 "v2": torchvision.models.detection.maskrcnn_resnet50_fpn_v2}[a.arch]
        model = build(weights=None, weights_backbone=None, min_size=size, max_size=max_size)
        model.load_state_dict(sd)
        model.eval()
        for th in (int(v) for v in a.threads.split(",")):
            torch.set_num_threads(th)
            with torch.no_grad():
                ref = model([x])[0]
            runs = []
            for r in range(a.repeat + 1):
                t, res = torch_stages(model, x)
                if r == 0:
                    assert torch.equal(res["boxes"], ref["boxes"]), "stage split differs"
                else:
                    runs.append(t)
            tt = {k: statistics.median(r[k] for r in runs) for k in STAGES}
            it = iseg_stages(a.iseg, img_path, weights, size, max_size, th, a.repeat)
            print("\n%d px, %d thread%s: %d detections" % (size, th, "s" if th > 1 else "",
                                                          len(ref["scores"])))
            print("  %-15s %9s %9s %7s" % ("stage", "torch", "iseg", "ratio"))
            for k in STAGES:
                iv = it.get(k, float("nan"))
                print("  %-15s %9.1f %9.1f %7.2f" % (k, tt[k], iv, tt[k] / iv if iv else 0))
    print("\n(ratio = torch / iseg; > 1 means iseg is faster)")


if __name__ == "__main__":
    main()
