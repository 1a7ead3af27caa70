#!/usr/bin/env python3
"""Writes iseg's built-in demo dataset: examples/data/demo_gt.json (COCO ground truth) and
examples/data/demo_results.json (detections as compressed RLE + bbox + score).

Synthetic and deterministic (stdlib only, fixed seed): 48 images of common sizes, five shape
categories (one without ground truth), polygons with 8-40 vertices, a few multi-part objects and
crowd regions stored as uncompressed RLE; detections are jittered copies rasterised here (a
different rasteriser than COCO's, as a real model's masks would be), plus misses, duplicates,
class confusions and false positives. Usage: python3 tools/make_demo_data.py [OUT_DIR]
"""
import json
import math
import os
import random
import sys

CATS = [(1, "disc"), (2, "square"), (3, "triangle"), (5, "star"), (9, "blob")]
SIZES = [(640, 480), (480, 640), (640, 427), (500, 375), (612, 612)]


def shape(kind, cx, cy, r, rng):
    if kind == "disc":
        n, pts = rng.randint(16, 40), []
        for i in range(n):
            a = 2 * math.pi * i / n
            pts.append((cx + r * math.cos(a), cy + r * 0.8 * math.sin(a)))
        return pts
    if kind == "square":
        a0 = rng.uniform(0, math.pi / 2)
        return [(cx + r * math.cos(a0 + k * math.pi / 2), cy + r * math.sin(a0 + k * math.pi / 2)) for k in range(4)]
    if kind == "triangle":
        a0 = rng.uniform(0, 2 * math.pi)
        return [(cx + r * math.cos(a0 + k * 2 * math.pi / 3), cy + r * math.sin(a0 + k * 2 * math.pi / 3)) for k in range(3)]
    if kind == "star":
        pts = []
        for k in range(10):
            rr = r if k % 2 == 0 else r * 0.45
            a = k * math.pi / 5
            pts.append((cx + rr * math.cos(a), cy + rr * math.sin(a)))
        return pts
    n, pts = rng.randint(8, 24), []
    for i in range(n):
        a = 2 * math.pi * i / n
        rr = r * rng.uniform(0.6, 1.1)
        pts.append((cx + rr * math.cos(a), cy + rr * math.sin(a)))
    return pts


def clip(pts, w, h):
    return [(min(max(x, 0.0), w - 1.0), min(max(y, 0.0), h - 1.0)) for x, y in pts]


def poly_area(pts):
    s = 0.0
    for i in range(len(pts)):
        x0, y0 = pts[i]
        x1, y1 = pts[(i + 1) % len(pts)]
        s += x0 * y1 - x1 * y0
    return abs(s) / 2


def inside(px, py, pts):
    c = False
    n = len(pts)
    for i in range(n):
        x0, y0 = pts[i]
        x1, y1 = pts[(i + 1) % n]
        if (y0 > py) != (y1 > py) and px < (x1 - x0) * (py - y0) / (y1 - y0) + x0:
            c = not c
    return c


def rle_of_polys(polys, w, h):
    """pixel-centre rasterisation, column-major runs"""
    xs = [p[0] for q in polys for p in q]
    ys = [p[1] for q in polys for p in q]
    x0, x1 = max(0, int(min(xs))), min(w - 1, int(max(xs)) + 1)
    y0, y1 = max(0, int(min(ys))), min(h - 1, int(max(ys)) + 1)
    on = set()
    for x in range(x0, x1 + 1):
        for y in range(y0, y1 + 1):
            if any(inside(x + 0.5, y + 0.5, q) for q in polys):
                on.add(x * h + y)
    counts = []
    # walk runs over the sorted foreground indices
    cur = 0
    idxs = sorted(on)
    i = 0
    while i < len(idxs):
        j = i
        while j + 1 < len(idxs) and idxs[j + 1] == idxs[j] + 1:
            j += 1
        counts.append(idxs[i] - cur)
        counts.append(j - i + 1)
        cur = idxs[j] + 1
        i = j + 1
    counts.append(w * h - cur)
    return counts, len(idxs)


def rle_string(counts):
    out = []
    for i, x in enumerate(counts):
        if i > 2:
            x -= counts[i - 2]
        more = True
        while more:
            c = x & 0x1F
            x >>= 5
            more = (x != -1) if (c & 0x10) else (x != 0)
            if more:
                c |= 0x20
            out.append(chr(c + 48))
    return "".join(out)


def bbox_of(counts, h):
    xs, ys, xe, ye, pos, any_ = 10**9, 10**9, -1, -1, 0, False
    for i, c in enumerate(counts):
        if i % 2 == 1 and c > 0:
            s, e = pos, pos + c - 1
            xs, xe = min(xs, s // h), max(xe, e // h)
            if s // h != e // h:
                ys, ye = 0, h - 1
            else:
                ys, ye = min(ys, s % h), max(ye, e % h)
            any_ = True
        pos += c
    return [float(xs), float(ys), float(xe - xs + 1), float(ye - ys + 1)] if any_ else [0.0, 0.0, 0.0, 0.0]


def main():
    out_dir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "examples", "data")
    rng = random.Random(20261126)
    images, anns, results = [], [], []
    ann_id = 1
    for i in range(48):
        w, h = SIZES[i % len(SIZES)]
        img_id = 1000 + 7 * i
        images.append({"id": img_id, "width": w, "height": h, "file_name": "demo_%04d.png" % i})
        for _ in range(rng.randint(0, 7)):
            cid, kind = CATS[rng.randrange(4)]  # the last category has no ground truth
            r = rng.choice([rng.uniform(6, 16), rng.uniform(18, 50), rng.uniform(55, 140)])
            cx, cy = rng.uniform(0, w), rng.uniform(0, h)
            parts = [clip(shape(kind, cx, cy, r, rng), w, h)]
            if rng.random() < 0.12:
                parts.append(clip(shape(kind, cx + 2.2 * r, cy, r * 0.5, rng), w, h))
            area = sum(poly_area(p) for p in parts)
            if area < 4:
                continue
            xs = [p[0] for q in parts for p in q]
            ys = [p[1] for q in parts for p in q]
            anns.append({"id": ann_id, "image_id": img_id, "category_id": cid, "iscrowd": 0,
                         "area": round(area, 2),
                         "bbox": [round(min(xs), 2), round(min(ys), 2), round(max(xs) - min(xs), 2), round(max(ys) - min(ys), 2)],
                         "segmentation": [[round(v, 2) for p in q for v in p] for q in parts]})
            ann_id += 1
            # detections of this object
            if rng.random() < 0.12:
                continue  # missed
            for dup in range(2 if rng.random() < 0.1 else 1):
                j = r * (0.05 if dup == 0 else 0.25)
                dparts = [clip([(x + rng.gauss(0, j) + rng.uniform(-j, j), y + rng.gauss(0, j)) for x, y in p], w, h) for p in parts]
                counts, area_px = rle_of_polys(dparts, w, h)
                if area_px == 0:
                    continue
                dcid = cid if rng.random() > 0.04 else CATS[rng.randrange(5)][0]
                results.append({"image_id": img_id, "category_id": dcid,
                                "segmentation": {"size": [h, w], "counts": rle_string(counts)},
                                "bbox": bbox_of(counts, h),
                                "score": round(rng.uniform(0.3, 0.99) * (0.6 if dup else 1.0), 3)})
        if rng.random() < 0.15:
            # a crowd region, uncompressed RLE as in COCO
            cx, cy, r = rng.uniform(100, w - 100), rng.uniform(100, h - 100), rng.uniform(40, 80)
            counts, area_px = rle_of_polys([shape("blob", cx, cy, r, rng)], w, h)
            anns.append({"id": ann_id, "image_id": img_id, "category_id": 9 if rng.random() < 0.5 else 1,
                         "iscrowd": 1, "area": float(area_px), "bbox": bbox_of(counts, h),
                         "segmentation": {"size": [h, w], "counts": counts}})
            ann_id += 1
        for _ in range(rng.randint(0, 3)):
            # false positives, the last category included
            cid, kind = CATS[rng.randrange(5)]
            r = rng.uniform(8, 60)
            counts, area_px = rle_of_polys([clip(shape(kind, rng.uniform(0, w), rng.uniform(0, h), r, rng), w, h)], w, h)
            if area_px:
                results.append({"image_id": img_id, "category_id": cid,
                                "segmentation": {"size": [h, w], "counts": rle_string(counts)},
                                "bbox": bbox_of(counts, h), "score": round(rng.uniform(0.05, 0.6), 3)})
    gt = {"info": {"description": "iseg demo data (synthetic, tools/make_demo_data.py)"},
          "images": images, "annotations": anns,
          "categories": [{"id": c, "name": n, "supercategory": "shape"} for c, n in CATS]}
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "demo_gt.json"), "w") as f:
        json.dump(gt, f, separators=(",", ":"))
    with open(os.path.join(out_dir, "demo_results.json"), "w") as f:
        json.dump(results, f, separators=(",", ":"))
    print("images=%d annotations=%d results=%d" % (len(images), len(anns), len(results)))


if __name__ == "__main__":
    main()
