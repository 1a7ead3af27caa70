#!/usr/bin/python3
"""bench_train.py - one Mask R-CNN training step (forward + backward, one image), torch 1.13
against iseg (bench_train), same model, same image, same size, same threads, in one run.

    /usr/bin/python3 bench/bench_train.py --bench build/bench_train [--threads 2] [--steps 5]
        [--size 512] [--width 32 --fpn 64 --rep 256 --mask 64]

The image is iseg's synthetic nuclei sample (bench_train --save-sample writes it as a COCO
dataset); torch reads its PNG and decodes the COCO RLE masks itself. Both sides use
torchvision's training defaults (256 anchors, 512 RoIs per image) and random initialisation,
so the sampled sets differ in content but not in size. Prints the median step time of each
and the ratio torch / iseg (> 1: iseg is faster).
"""
import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time

import numpy as np


def rle_decode(counts, h, w):
    """COCO compressed RLE string -> (h, w) uint8 mask (column-major runs)."""
    cnts, p = [], 0
    while p < len(counts):
        x, k, more = 0, 0, True
        while more:
            c = ord(counts[p]) - 48
            x |= (c & 0x1F) << (5 * k)
            more = bool(c & 0x20)
            p += 1
            k += 1
            if not more and (c & 0x10):
                x |= -1 << (5 * k)
        if len(cnts) > 2:
            x += cnts[-2]
        cnts.append(x)
    flat = np.zeros(h * w, np.uint8)
    pos, val = 0, 0
    for n in cnts:
        flat[pos:pos + n] = val
        pos += n
        val ^= 1
    return flat.reshape(w, h).T


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bench", required=True, help="path of iseg's bench_train")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--width", type=int, default=32)
    ap.add_argument("--fpn", type=int, default=64)
    ap.add_argument("--rep", type=int, default=256)
    ap.add_argument("--mask", type=int, default=64)
    a = ap.parse_args()

    import torch
    from PIL import Image
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
    from maskrcnn_parity import compact_model

    arch = ["--width", str(a.width), "--fpn", str(a.fpn), "--rep", str(a.rep), "--mask",
            str(a.mask), "--size", str(a.size), "--threads", str(a.threads)]
    with tempfile.TemporaryDirectory() as tmp:
        out = subprocess.run([a.bench, "--steps", str(a.steps), "--save-sample", tmp] + arch,
                             check=True, capture_output=True, text=True).stdout
        ds = json.load(open(os.path.join(tmp, "synth.json")))
        im = ds["images"][0]
        img = np.array(Image.open(os.path.join(tmp, im["file_name"])).convert("RGB"))
    m = re.search(r"^\s+step\s+([0-9.]+) ms", out, re.M)
    iseg_ms = float(m.group(1))

    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    model = compact_model(num_classes=2, width=a.width, fpn=a.fpn, rep=a.rep, mask_ch=a.mask,
                          min_size=a.size, max_size=2 * a.size)
    model.train()
    x = torch.from_numpy(img).permute(2, 0, 1).float() / 255
    masks, boxes = [], []
    for an in ds["annotations"]:
        s = an["segmentation"]
        masks.append(rle_decode(s["counts"], s["size"][0], s["size"][1]))
        bx, by, bw, bh = an["bbox"]
        boxes.append([bx, by, bx + bw, by + bh])
    target = {"boxes": torch.tensor(boxes, dtype=torch.float32),
              "labels": torch.ones(len(boxes), dtype=torch.int64),
              "masks": torch.from_numpy(np.stack(masks))}
    times = []
    for s in range(a.steps + 1):
        model.zero_grad()
        t0 = time.perf_counter()
        losses = model([x], [target])
        sum(losses.values()).backward()
        dt = (time.perf_counter() - t0) * 1e3
        if s:
            times.append(dt)
    torch_ms = float(np.median(times))
    print(out.rstrip())
    print("torch %s training step: %.1f ms (median of %d, %d threads)" %
          (torch.__version__, torch_ms, a.steps, a.threads))
    print("iseg step %.1f ms: torch / iseg = %.2fx" % (iseg_ms, torch_ms / iseg_ms))


if __name__ == "__main__":
    main()
