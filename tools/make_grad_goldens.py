#!/usr/bin/python3
"""Torch autograd goldens for the engine's backward passes (tests/unit/test_nn_grad.c).

    /usr/bin/python3 tools/make_grad_goldens.py tests/golden/nn/grad.safetensors

For each op: the input x, an upstream gradient dy, and torch's dx (plus dgamma/dbeta and the
updated running statistics for the norms), seeded. Needs Debian's python3-torch/torchvision.
"""
import json
import struct
import sys

import torch
import torch.nn.functional as F
from torchvision.ops import roi_align

torch.manual_seed(7)
T = {}


def put(prefix, **kw):
    for k, v in kw.items():
        T[prefix + "." + k] = v.detach().contiguous()


def grad_of(fn, x, *params):
    x = x.clone().requires_grad_(True)
    ps = [p.clone().requires_grad_(True) for p in params]
    y = fn(x, *ps)
    dy = torch.randn_like(y)
    y.backward(dy)
    return y, dy, x.grad, [p.grad for p in ps]


# relu: inputs away from 0
x = torch.randn(3, 5, 7)
x = torch.where(x.abs() < 1e-3, torch.full_like(x, 0.5), x)
y, dy, dx, _ = grad_of(F.relu, x)
put("relu", x=x, dy=dy, dx=dx)
x = torch.randn(4, 9) * 3
y, dy, dx, _ = grad_of(torch.sigmoid, x)
put("sigmoid", x=x, dy=dy, dx=dx)
x = torch.randn(5, 7) * 2
y, dy, dx, _ = grad_of(lambda t: F.softmax(t, -1), x)
put("softmax", x=x, dy=dy, dx=dx)
# max pool: distinct values so the winners are unambiguous
for name, k, s, p, shape in (("maxpool3", 3, 2, 1, (2, 3, 9, 11)), ("maxpool2", 2, 2, 0, (1, 2, 8, 6))):
    x = torch.randperm(int(torch.tensor(shape).prod())).float().reshape(shape) / 10
    y, dy, dx, _ = grad_of(lambda t: F.max_pool2d(t, k, s, p), x)
    put(name, x=x, dy=dy, dx=dx)
for name, shape, size in (("nearest_up", (2, 3, 5, 7), (10, 14)), ("nearest_odd", (1, 2, 13, 9), (5, 7))):
    x = torch.randn(shape)
    y, dy, dx, _ = grad_of(lambda t: F.interpolate(t, size=size, mode="nearest"), x)
    put(name, x=x, dy=dy, dx=dx)
for name, shape, size in (("bilinear_up", (2, 3, 6, 5), (14, 11)), ("bilinear_down", (1, 2, 30, 30), (13, 17))):
    x = torch.randn(shape)
    y, dy, dx, _ = grad_of(lambda t: F.interpolate(t, size=size, mode="bilinear", align_corners=False), x)
    put(name, x=x, dy=dy, dx=dx)
# roi align: one image, boxes partly outside the map
feat = torch.randn(1, 4, 12, 15)
boxes = torch.tensor([[0.0, 1.5, 2.0, 30.0, 20.0], [0.0, -6.0, -4.0, 10.0, 12.0],
                      [0.0, 40.0, 30.0, 70.0, 52.0], [0.0, 3.3, 7.1, 4.0, 7.9]])
for name, scale, sr, al in (("roialign_s2", 0.5, 2, False), ("roialign_adaptive_aligned", 0.5, -1, True)):
    y, dy, dx, _ = grad_of(lambda t: roi_align(t, boxes, (3, 4), scale, sr, al), feat)
    put(name, x=feat[0], dy=dy, dx=dx[0], boxes=boxes[:, 1:])
# batch norm in training mode
x = torch.randn(2, 3, 4, 5) * 2 + 1
g, b = torch.rand(3) + 0.5, torch.randn(3)
rm, rv = torch.randn(3) * 0.1, torch.rand(3) + 0.5
rm2, rv2 = rm.clone(), rv.clone()
y, dy, dx, (dg, db) = grad_of(lambda t, gg, bb: F.batch_norm(t, rm2, rv2, gg, bb, True, 0.1, 1e-5), x, g, b)
put("batchnorm", x=x, gamma=g, beta=b, running_mean=rm, running_var=rv, y=y, dy=dy, dx=dx,
    dgamma=dg, dbeta=db, running_mean_after=rm2, running_var_after=rv2)
x = torch.randn(2, 6, 4, 5) * 2 + 1
g, b = torch.rand(6) + 0.5, torch.randn(6)
y, dy, dx, (dg, db) = grad_of(lambda t, gg, bb: F.group_norm(t, 3, gg, bb, 1e-5), x, g, b)
put("groupnorm", x=x, gamma=g, beta=b, y=y, dy=dy, dx=dx, dgamma=dg, dbeta=db)

# convolutions: stride, padding, dilation, groups
for name, cin, cout, k, st, pd, dl, gr, hw in (
        ("conv3", 3, 5, 3, 1, 1, 1, 1, (9, 11)), ("conv_s2", 4, 6, 3, 2, 1, 1, 2, (10, 9)),
        ("conv_dil", 2, 3, 3, 1, 2, 2, 1, (8, 8)), ("conv1x1", 6, 4, 1, 1, 0, 1, 1, (5, 7)),
        ("conv7s2", 3, 4, 7, 2, 3, 1, 1, (15, 13))):
    x = torch.randn(2, cin, *hw)
    wt = torch.randn(cout, cin // gr, k, k) * 0.3
    bs = torch.randn(cout)
    y, dy, dx, (dw, db) = grad_of(lambda t, ww, bb: F.conv2d(t, ww, bb, st, pd, dl, gr), x, wt, bs)
    put(name, x=x, w=wt, b=bs, y=y, dy=dy, dx=dx, dw=dw, db=db)
for name, cin, cout, k, st, pd, op, hw in (("deconv2", 4, 3, 2, 2, 0, 0, (5, 6)),
                                           ("deconv3", 3, 2, 3, 2, 1, 1, (4, 5))):
    x = torch.randn(2, cin, *hw)
    wt = torch.randn(cin, cout, k, k) * 0.3
    bs = torch.randn(cout)
    y, dy, dx, (dw, db) = grad_of(
        lambda t, ww, bb: F.conv_transpose2d(t, ww, bb, st, pd, op), x, wt, bs)
    put(name, x=x, w=wt, b=bs, y=y, dy=dy, dx=dx, dw=dw, db=db)
x = torch.randn(7, 13)
wt, bs = torch.randn(5, 13) * 0.3, torch.randn(5)
y, dy, dx, (dw, db) = grad_of(lambda t, ww, bb: F.linear(t, ww, bb), x, wt, bs)
put("linear", x=x, w=wt, b=bs, y=y, dy=dy, dx=dx, dw=dw, db=db)

header, blobs, off = {}, [], 0
for name, t in T.items():
    data = t.numpy().astype("<f4").tobytes()
    header[name] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [off, off + len(data)]}
    blobs.append(data)
    off += len(data)
header["__metadata__"] = {"torch": torch.__version__, "seed": "7"}
h = json.dumps(header, separators=(",", ":")).encode()
h += b" " * ((8 - len(h) % 8) % 8)
with open(sys.argv[1], "wb") as f:
    f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))
print("%s: %d tensors, %d bytes" % (sys.argv[1], len(T), 8 + len(h) + off))
