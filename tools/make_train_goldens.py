#!/usr/bin/python3
"""make_train_goldens.py - torch/torchvision references for tests/unit/test_loss.c and
tests/unit/test_optim.c (losses with gradients, SGD/AdamW trajectories, LR schedules,
clip_grad_norm_).

Run with Debian's interpreter (torch 1.13, torchvision 0.14):
    /usr/bin/python3 tools/make_train_goldens.py [outdir]      # default tests/golden/train

Writes loss.safetensors and optim.safetensors (safetensors written by hand: 8-byte
little-endian header length, JSON header {name: {dtype, shape, data_offsets}}, raw
little-endian bytes). Dtypes: F32 (torch's own float results), F64 (LR values, double inputs),
I64 (targets, configuration). Seeded; a few tens of KB.
"""
import json
import math
import os
import struct
import sys

import torch
import torch.nn.functional as F
import torchvision
from torchvision.ops import sigmoid_focal_loss

SEED = 20240611


def save(path, tensors):
    header, blobs, off = {}, [], 0
    dts = {torch.float32: "F32", torch.float64: "F64", torch.int64: "I64"}
    for name, t in tensors.items():
        t = t.detach().contiguous()
        raw = t.numpy().tobytes()
        header[name] = {"dtype": dts[t.dtype], "shape": list(t.shape),
                        "data_offsets": [off, off + len(raw)]}
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


RED = {"none": 0, "mean": 1, "sum": 2}


def run(out, name, fn, *inputs):
    """fn(*inputs) -> loss (any shape); store loss and d loss.sum() / d input[0], as torch
    computes them in float32 (".loss", ".grad") and, from the same float inputs converted to
    float64, in double (".loss64", ".grad64": the definition without float rounding)."""
    for suffix, dt in (("", torch.float32), ("64", torch.float64)):
        ins = [t.to(dt) if t.is_floating_point() else t for t in inputs]
        x = ins[0].clone().requires_grad_(True)
        loss = fn(x, *ins[1:])
        loss.backward(torch.ones_like(loss))
        out[name + ".loss" + suffix] = loss.detach().reshape(-1)
        out[name + ".grad" + suffix] = x.grad


def loss_cases():
    out = {}
    # BCE with logits: x (6, 5); weight and pos_weight broadcast over the last dim
    x = torch.randn(6, 5) * 3
    y = torch.rand(6, 5)
    y[:3] = (y[:3] > 0.5).float()
    w, pw = torch.rand(5) + 0.5, torch.rand(5) * 3 + 0.1
    out.update({"bce.x": x, "bce.y": y, "bce.w": w, "bce.pw": pw})
    for red in ("mean", "sum", "none"):
        run(out, "bce.plain." + red,
            lambda a, b, r=red: F.binary_cross_entropy_with_logits(a, b, reduction=r), x, y)
        run(out, "bce.weighted." + red,
            lambda a, b, r=red: F.binary_cross_entropy_with_logits(a, b, weight=w.to(a.dtype),
                                                                   pos_weight=pw.to(a.dtype),
                                                                   reduction=r), x, y)
    # softmax cross-entropy: (N, K) with ignored targets and class weights; dense (N, K, H, W)
    xc = torch.randn(7, 5) * 2
    tc = i64(0, 4, -100, 2, 2, 1, 3)
    wc = torch.rand(5) + 0.2
    out.update({"ce.x": xc, "ce.t": tc, "ce.w": wc})
    for red in ("mean", "sum", "none"):
        run(out, "ce.plain." + red, lambda a, t, r=red: F.cross_entropy(a, t, reduction=r), xc, tc)
        run(out, "ce.weighted." + red,
            lambda a, t, r=red: F.cross_entropy(a, t, weight=wc.to(a.dtype), reduction=r), xc, tc)
    xd = torch.randn(2, 4, 3, 3)
    td = torch.randint(0, 4, (2, 3, 3))
    td[0, 1, 1] = 255
    out.update({"ce.dense.x": xd, "ce.dense.t": td})
    run(out, "ce.dense.mean", lambda a, t: F.cross_entropy(a, t, ignore_index=255), xd, td)
    # smooth L1
    xs, ys = torch.randn(40), torch.randn(40)
    out.update({"sl1.x": xs, "sl1.y": ys})
    for tag, beta, red in (("b9.sum", 1.0 / 9, "sum"), ("b1.mean", 1.0, "mean"),
                           ("b0.mean", 0.0, "mean"), ("b05.none", 0.5, "none")):
        run(out, "sl1." + tag, lambda a, b, be=beta, r=red: F.smooth_l1_loss(a, b, reduction=r,
                                                                            beta=be), xs, ys)
    # sigmoid focal loss (torchvision.ops)
    xf = torch.randn(50) * 2
    yf = (torch.rand(50) > 0.7).float()
    ysoft = torch.rand(50)
    out.update({"focal.x": xf, "focal.y": yf, "focal.ysoft": ysoft})
    for red in ("none", "mean", "sum"):
        run(out, "focal.default." + red,
            lambda a, b, r=red: sigmoid_focal_loss(a, b, 0.25, 2, reduction=r), xf, yf)
    run(out, "focal.noalpha.sum", lambda a, b: sigmoid_focal_loss(a, b, -1, 0, reduction="sum"),
        xf, yf)
    run(out, "focal.soft.mean",
        lambda a, b: sigmoid_focal_loss(a, b, 0.5, 1.5, reduction="mean"), xf, ysoft)

    # soft Dice / Jaccard on sigmoid probabilities, per instance, mean over instances
    def dj(a, t, eps, wj, wd):
        p = torch.sigmoid(a)
        inter = (p * t).sum(1)
        sp, st = p.sum(1), t.sum(1)
        dice = 1 - (2 * inter + eps) / (sp + st + eps)
        jac = 1 - (inter + eps) / (sp + st - inter + eps)
        return (wj * jac + wd * dice).mean()

    xm = torch.randn(3, 64) * 2
    tm = (torch.rand(3, 64) > 0.6).float()
    tm[2] = 0  # an empty target: eps decides
    out.update({"dice.x": xm, "dice.t": tm})
    run(out, "dice.dice", lambda a, t: dj(a, t, 1.0, 0.0, 1.0), xm, tm)
    run(out, "dice.jaccard", lambda a, t: dj(a, t, 1.0, 1.0, 0.0), xm, tm)
    run(out, "dice.combo", lambda a, t: dj(a, t, 1.0, 2.0, 1.0), xm, tm)
    run(out, "dice.combo_eps1e-3", lambda a, t: dj(a, t, 1e-3, 2.0, 1.0), xm, tm)
    # Mask R-CNN mask loss: ref torchvision/models/detection/roi_heads.py maskrcnn_loss
    N, K, M = 4, 3, 7
    xk = torch.randn(N, K, M, M) * 2
    tk = (torch.rand(N, M, M) > 0.5).float()
    lk = i64(2, 0, 2, 1)
    out.update({"mrcnn.x": xk, "mrcnn.t": tk, "mrcnn.labels": lk})
    run(out, "mrcnn", lambda a, t: F.binary_cross_entropy_with_logits(a[torch.arange(N), lk], t),
        xk, tk)
    # uncertainty weighting (Kendall et al. 2018), in double
    L = torch.tensor([0.7, 2.5, 0.05], dtype=torch.float64, requires_grad=True)
    s = torch.tensor([0.3, -1.2, 2.0], dtype=torch.float32)
    s64 = s.double().requires_grad_(True)
    tot = (torch.exp(-s64) * L + s64).sum()
    tot.backward()
    out.update({"kendall.L": L.detach(), "kendall.s": s, "kendall.loss": tot.detach().reshape(1),
                "kendall.dL": L.grad, "kendall.ds": s64.grad})
    return out


def optim_cases():
    out = {}
    shapes = [(3, 4), (5,)]
    steps = 6
    w0 = [torch.randn(*sh) for sh in shapes]
    grads = [[torch.randn(*sh) for sh in shapes] for _ in range(steps)]
    lrs = [0.05, 0.04, 0.03, 0.03, 0.01, 0.02]  # a changing LR, set before each step
    out["w0"] = torch.cat([w.reshape(-1) for w in w0])
    out["grads"] = torch.stack([torch.cat([g.reshape(-1) for g in gs]) for gs in grads])
    out["lrs"] = torch.tensor(lrs, dtype=torch.float64)
    cases = {
        "sgd_plain": (torch.optim.SGD, dict(lr=0.1)),
        "sgd_mom_wd": (torch.optim.SGD, dict(lr=0.05, momentum=0.9, weight_decay=1e-2)),
        "sgd_nesterov": (torch.optim.SGD, dict(lr=0.05, momentum=0.9, nesterov=True,
                                                weight_decay=1e-3)),
        "sgd_damp": (torch.optim.SGD, dict(lr=0.05, momentum=0.8, dampening=0.1)),
        "adamw_default": (torch.optim.AdamW, dict(lr=1e-2)),
        "adamw_ams": (torch.optim.AdamW, dict(lr=1e-2, betas=(0.8, 0.99), eps=1e-6,
                                               weight_decay=0.1, amsgrad=True)),
        "adamw_lr": (torch.optim.AdamW, dict(lr=lrs[0], weight_decay=0.05)),
    }
    for name, (cls, kw) in cases.items():
        ps = [w.clone().requires_grad_(True) for w in w0]
        opt = cls(ps, **kw)
        traj = []
        for k in range(steps):
            if name == "adamw_lr":
                for g in opt.param_groups:
                    g["lr"] = lrs[k]
            for p, g in zip(ps, grads[k]):
                p.grad = g.clone()
            opt.step()
            traj.append(torch.cat([p.detach().reshape(-1) for p in ps]))
        out[name + ".traj"] = torch.stack(traj)
        sd = opt.state_dict()["state"]
        for i in sd:
            for key, v in sd[i].items():
                if v is None:
                    continue
                out[f"{name}.state.param.{i}.{key}"] = v.reshape(-1).float()
    # gradient clipping
    gl = [torch.randn(4, 3), torch.randn(7), torch.randn(2, 2, 2)]
    out["clip.input"] = torch.cat([g.reshape(-1) for g in gl])
    for tag, mx in (("clip", 1.0), ("noclip", 1e3)):
        ps = [torch.zeros_like(g, requires_grad=True) for g in gl]
        for p, g in zip(ps, gl):
            p.grad = g.clone()
        tot = torch.nn.utils.clip_grad_norm_(ps, mx)
        out[tag + ".total"] = tot.reshape(1)
        out[tag + ".g"] = torch.cat([p.grad.reshape(-1) for p in ps])
    # LR schedules as torchvision's detection reference runs them: LinearLR warm-up stepped
    # per iteration in epoch 0 (warmup_iters = min(1000, len(loader) - 1)), the main scheduler
    # stepped per epoch. ref: torchvision references/detection/engine.py, train.py (0.14)
    iters, epochs, base = 5, 7, 0.02
    for tag, mk in (("multistep", lambda o: torch.optim.lr_scheduler.MultiStepLR(
                        o, milestones=[2, 4], gamma=0.1)),
                    ("cosine", lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(
                        o, T_max=epochs))):
        p = torch.zeros(1, requires_grad=True)
        o = torch.optim.SGD([p], lr=base)
        main = mk(o)
        lrs_seen = []
        for ep in range(epochs):
            warm = None
            if ep == 0:
                warm = torch.optim.lr_scheduler.LinearLR(o, start_factor=1.0 / 1000,
                                                         total_iters=min(1000, iters - 1))
            for _ in range(iters):
                lrs_seen.append(o.param_groups[0]["lr"])
                o.step()
                if warm is not None:
                    warm.step()
            main.step()
        out["lr." + tag] = torch.tensor(lrs_seen, dtype=torch.float64)
    out["lr.cfg"] = i64(iters, epochs, min(1000, iters - 1))
    # cosine with eta_min beyond T_max, stepped per iteration (recursive form)
    p = torch.zeros(1, requires_grad=True)
    o = torch.optim.SGD([p], lr=0.1)
    sch = torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=6, eta_min=1e-3)
    seen = []
    for _ in range(15):
        seen.append(o.param_groups[0]["lr"])
        o.step()
        sch.step()
    out["lr.cosine_eta"] = torch.tensor(seen, dtype=torch.float64)
    return out


def main():
    outdir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "..", "tests", "golden", "train")
    os.makedirs(outdir, exist_ok=True)
    torch.manual_seed(SEED)
    save(os.path.join(outdir, "loss.safetensors"), loss_cases())
    save(os.path.join(outdir, "optim.safetensors"), optim_cases())
    for f in ("loss.safetensors", "optim.safetensors"):
        print(f, os.path.getsize(os.path.join(outdir, f)), "bytes")


if __name__ == "__main__":
    main()
