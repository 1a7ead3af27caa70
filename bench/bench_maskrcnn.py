#!/usr/bin/python3
"""End-to-end Mask R-CNN benchmark: torch (torchvision 0.14), iseg and ONNX Runtime side by side.

    /usr/bin/python3 bench/bench_maskrcnn.py [--iseg build/iseg] [--arch v1] [--sizes 800,320]
                                             [--threads 1,2] [--repeat 5] [--[no-]ort]
                                             [--precisions fp32,bf16,int8]
                                             [--[no-]ort-profile] [--onnx-cache DIR]

All three run the same random weights (tools/maskrcnn_parity.py's recipe, so that about 100
detections occur) on the same natural-looking 480x640 image. torch's stages are timed by calling
torchvision's modules one after the other (checked to give model()'s detections), iseg's with
`iseg predict --timings --repeat N`. ONNX Runtime (npm onnxruntime-node, bench/ort/run.js) runs
the model exported by torch.onnx.export (opset 11, one file per size, cached in --onnx-cache) on
the same float image tensor, with intra-op threads = N; its detections are checked against
torch's. With --ort-profile a second ORT session with its profiler on gives per-stage kernel
times, grouped by the exporter's node names (an approximation: see bench/ort/run.js).
Medians after one warm-up run, in milliseconds; ratios are peer / iseg (> 1: iseg is faster).
See bench/README.md for what it needs.
"""
import argparse
import json
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


def iseg_stages(iseg, img, weights, min_size, max_size, threads, repeat, precision="fp32"):
    cmd = [iseg, "predict", img, "--model", weights, "--min-size", str(min_size),
           "--max-size", str(max_size), "--threads", str(threads), "--timings",
           "--repeat", str(repeat + 1), "--precision", precision]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    t = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] in STAGES:
            t[parts[0]] = float(parts[1])
    return t


ORT_DIR = os.path.join(HERE, "ort")
OPSET = 11


def export_onnx(arch, weights, size, max_size, x, path):
    """torch.onnx.export of the model for this size, input = one float CHW image of x's shape.

    Runs in a child process (the export is slow, chatty and memory-hungry); written to
    path + ".tmp" and renamed, so that an interrupted export leaves no cache entry."""
    code = (
        "import sys, warnings, torch, torchvision\n"
        "warnings.simplefilter('ignore')\n"
        "arch, w, size, mx, c, h, wd, out = sys.argv[1:]\n"
        "build = {'v1': torchvision.models.detection.maskrcnn_resnet50_fpn,\n"
        "         'v2': torchvision.models.detection.maskrcnn_resnet50_fpn_v2}[arch]\n"
        "m = build(weights=None, weights_backbone=None, min_size=int(size), max_size=int(mx))\n"
        "m.load_state_dict(torch.load(w)); m.eval()\n"
        "x = torch.rand(int(c), int(h), int(wd))\n"
        "torch.onnx.export(m, ([x],), out, opset_version=%d, input_names=['image'],\n"
        "                  output_names=['boxes', 'labels', 'scores', 'masks'])\n" % OPSET)
    tmp = path + ".tmp"
    c, h, w = x.shape
    r = subprocess.run([sys.executable, "-c", code, arch, weights, str(size), str(max_size),
                        str(c), str(h), str(w), tmp], capture_output=True, text=True)
    if r.returncode:
        sys.stderr.write(r.stderr[-4000:])
        raise SystemExit("torch.onnx.export failed (size %d)" % size)
    os.replace(tmp, path)


def weights_digest(sd):
    import hashlib
    h = hashlib.sha256()
    for k in sorted(sd):
        h.update(k.encode())
        h.update(sd[k].contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def ort_run(model, x_path, shape, threads, repeat, profile_repeat):
    cmd = ["node", os.path.join(ORT_DIR, "run.js"), "--model", model, "--input", x_path,
           "--shape", ",".join(str(v) for v in shape), "--threads", str(threads),
           "--repeat", str(repeat), "--warmup", "1", "--dets", "100"]
    if profile_repeat:
        cmd += ["--profile", "--profile-repeat", str(profile_repeat)]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode:
        sys.stderr.write(r.stderr[-4000:])
        raise SystemExit("bench/ort/run.js failed")
    return json.loads(r.stdout.strip().splitlines()[-1])


def agreement(ref, o):
    """ORT's detections against torch's: counts, and the top 10 (both sorted by score)."""
    n_t, n_o = len(ref["scores"]), o["n_det"]
    k = min(10, n_t, n_o)
    ts = ref["scores"][:k].tolist()
    ds = max((abs(a - b) for a, b in zip(ts, o["scores"][:k])), default=0.0)
    tb = ref["boxes"][:k].reshape(-1).tolist()
    db = max((abs(a - b) for a, b in zip(tb, o["boxes"][:4 * k])), default=0.0)
    same_lab = ref["labels"][:k].tolist() == o["labels"][:k]
    ok = abs(n_t - n_o) <= 3 and ds <= 1e-3
    return ("detections: torch %d, ort %d; top-%d |d score| %.2g, |d box| %.2g px, labels %s -> %s"
            % (n_t, n_o, k, ds, db, "same" if same_lab else "DIFFER", "OK" if ok else "MISMATCH"))


def fmt(v, w=9, p=1):
    return ("%*." + str(p) + "f") % (w, v) if v == v and v is not None else "%*s" % (w, "-")


def ratio(a, b):
    return a / b if a == a and b == b and b else float("nan")


def blas_path():
    """The BLAS library torch runs on, from this process's memory map (Debian's torch links
    libblas.so.3, which is the reference BLAS unless an alternative such as OpenBLAS is set)."""
    try:
        with open("/proc/self/maps") as f:
            libs = {ln.split()[-1] for ln in f if "blas" in ln.rsplit("/", 1)[-1]}
    except OSError:
        return None
    libs = sorted(os.path.realpath(v) for v in libs if v.startswith("/"))
    return libs[0] if libs else None


def set_blas_threads(path, n):
    """torch.set_num_threads does not reach an OpenBLAS that torch was not built for."""
    if path and "openblas" in path:
        import ctypes
        ctypes.CDLL(path).openblas_set_num_threads(n)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--iseg", default=os.path.join(HERE, "..", "build", "iseg"))
    ap.add_argument("--arch", choices=["v1", "v2"], default="v1")
    ap.add_argument("--sizes", default="800,320")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--precisions", default="fp32",
                    help="iseg precisions to run, e.g. fp32,bf16,int8: one column each (the "
                         "ratios are against the first)")
    have_ort = os.path.isdir(os.path.join(ORT_DIR, "node_modules", "onnxruntime-node"))
    ap.add_argument("--ort", action=argparse.BooleanOptionalAction, default=have_ort,
                    help="ONNX Runtime as a peer (default: on when bench/ort/node_modules/"
                         "onnxruntime-node exists: cd bench/ort && npm install)")
    ap.add_argument("--ort-profile", action=argparse.BooleanOptionalAction, default=True,
                    help="per-stage ORT times from its profiler (a second ORT session)")
    ap.add_argument("--ort-profile-repeat", type=int, default=2, metavar="R",
                    help="profiled runs after one warm-up (default %(default)s)")
    ap.add_argument("--onnx-cache", default=os.environ.get("ISEG_BENCH_ONNX_CACHE",
                                                           "/work/benchdata/onnx"),
                    help="where the exported models are kept (default %(default)s)")
    ap.add_argument("--torch-blas", metavar="DIR",
                    help="run torch with the libblas.so.3 in DIR (LD_LIBRARY_PATH; e.g. Debian's "
                         "/usr/lib/x86_64-linux-gnu/openblas-pthread)")
    a = ap.parse_args()
    if a.torch_blas:
        d = os.path.abspath(a.torch_blas)
        if os.environ.get("LD_LIBRARY_PATH", "").split(":")[0] != d:
            env = dict(os.environ, LD_LIBRARY_PATH=":".join(
                v for v in (d, os.environ.get("LD_LIBRARY_PATH")) if v))
            os.execve(sys.executable, [sys.executable] + sys.argv, env)
    if a.ort and not have_ort:
        raise SystemExit("--ort: run `npm install` in %s first" % ORT_DIR)

    import numpy as np
    import torch
    import torchvision
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
    x_path = os.path.join(tmp, "x.f32")
    x.contiguous().numpy().astype("<f4").tofile(x_path)
    sd = torch.load(weights)
    digest = weights_digest(sd)
    ort_ver = ""
    if a.ort:
        with open(os.path.join(ORT_DIR, "node_modules", "onnxruntime-node", "package.json")) as f:
            ort_ver = ", onnxruntime-node " + json.load(f)["version"]
    print("Mask R-CNN %s, 480x640 image, random weights (~100 detections); medians of %d runs, ms"
          % (a.arch, a.repeat))
    blas = blas_path()
    print("torch %s (BLAS %s), torchvision %s%s; %s"
          % (torch.__version__, blas or "?", torchvision.__version__, ort_ver,
             os.uname().nodename))
    for size in (int(v) for v in a.sizes.split(",")):
        max_size = 1333 if size == 800 else int(round(size * 1333 / 800))
        onnx_path = None
        if a.ort:
            os.makedirs(a.onnx_cache, exist_ok=True)
            onnx_path = os.path.join(a.onnx_cache, "maskrcnn_%s_%d_%d_%dx%d_opset%d_torch%s_%s.onnx"
                                     % (a.arch, size, max_size, x.shape[1], x.shape[2], OPSET,
                                        torch.__version__, digest))
            if not os.path.exists(onnx_path):
                t0 = time.perf_counter()
                export_onnx(a.arch, weights, size, max_size, x, onnx_path)
                print("\n(exported %s in %.0f s)" % (onnx_path, time.perf_counter() - t0))
        build = {"v1": torchvision.models.detection.maskrcnn_resnet50_fpn,
                 "v2": torchvision.models.detection.maskrcnn_resnet50_fpn_v2}[a.arch]
        model = build(weights=None, weights_backbone=None, min_size=size, max_size=max_size)
        model.load_state_dict(sd)
        model.eval()
        for th in (int(v) for v in a.threads.split(",")):
            load0 = os.getloadavg()[0]
            torch.set_num_threads(th)
            set_blas_threads(blas, th)
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
            precs = a.precisions.split(",")
            its = [iseg_stages(a.iseg, img_path, weights, size, max_size, th, a.repeat, p)
                   for p in precs]
            it = its[0]
            o = None
            if a.ort:
                o = ort_run(onnx_path, x_path, tuple(x.shape), th, a.repeat,
                            a.ort_profile_repeat if a.ort_profile else 0)
            load1 = os.getloadavg()[0]
            print("\n%d px, %d thread%s: %d detections (load average %.2f before, %.2f after)"
                  % (size, th, "s" if th > 1 else "", len(ref["scores"]), load0, load1))
            ost = (o or {}).get("stages", {})
            head = "  %-15s %9s %9s %10s" % ("stage", "torch", "iseg", "torch/iseg")
            if ost:
                head += " %9s %9s" % ("ort*", "ort/iseg")
            for p in precs[1:]:
                head += " %9s %10s" % ("iseg " + p, "torch/" + p)
            print(head)
            for k in STAGES:
                iv = it.get(k, float("nan"))
                line = "  %-15s %s %s %s" % (k, fmt(tt[k]), fmt(iv), fmt(ratio(tt[k], iv), 10, 2))
                if ost:
                    ov = ost.get("model_run" if k == "total" else k,
                                 float("nan") if k == "total" else 0.0)
                    line += " %s %s" % (fmt(ov), fmt(ratio(ov, iv), 9, 2))
                for o_it in its[1:]:
                    pv = o_it.get(k, float("nan"))
                    line += " %s %s" % (fmt(pv), fmt(ratio(tt[k], pv), 10, 2))
                print(line)
            if o:
                print("  ORT whole model (no profiler, median of %d): %.1f ms; ort/iseg %.2f,"
                      " torch/ort %.2f" % (len(o["runs_ms"]), o["median_ms"],
                                           ratio(o["median_ms"], iv),
                                           ratio(tt["total"], o["median_ms"])))
                print("  ORT " + agreement(ref, o))
    print("\n(ratios = peer / iseg; > 1 means iseg is faster)")
    if a.ort and a.ort_profile:
        print("(ort*: ORT's profiler (median of %d profiled runs), kernel times grouped into stages"
              "\n by the exported node names, see bench/ort/run.js; total = its model_run)"
              % a.ort_profile_repeat)


if __name__ == "__main__":
    main()
