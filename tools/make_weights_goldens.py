#!/usr/bin/python3
"""make_weights_goldens.py - write the PyTorch checkpoints that tests/unit/test_weights.c reads.

    /usr/bin/python3 tools/make_weights_goldens.py [tests/golden/weights]

Needs torch (written with 1.13). Every checkpoint is made by torch.save itself; the expected
tensors (flattened names in file order, dtypes, shapes, exact bytes) go to <name>.expected.safetensors,
written here by hand from the format description (no safetensors package), so the C test also
checks its safetensors reader against an independent writer.

Files:
  small_zip.pth          nested {"model": ..., "epoch": 3, "optimizer": {...}} (zip, torch >= 1.6)
  small_legacy.pth       the same object, _use_new_zipfile_serialization=False (pre-1.6 layout)
  small_deflated.pth     small_zip.pth re-packed with deflate (torch writes stored entries)
  small_zip64.pth        small_zip.pth re-packed with zip64 records everywhere
  tiny_tv_legacy.pth     a torchvision-like module state_dict (OrderedDict with _metadata), legacy
  tiny_tv_zip.pth        the same, zip
  tiny_tv_p4_legacy.pth  the same, legacy with pickle protocol 4 (FRAME, MEMOIZE, STACK_GLOBAL, ...)
  tiny_tv_p4_zip.pth     the same, zip with pickle protocol 4
"""
import collections
import json
import os
import struct
import sys
import zipfile

import torch

DTYPE_NAMES = {
    torch.float32: "F32", torch.float64: "F64", torch.float16: "F16", torch.bfloat16: "BF16",
    torch.int64: "I64", torch.int32: "I32", torch.int16: "I16", torch.int8: "I8",
    torch.uint8: "U8", torch.bool: "BOOL",
}


def flatten(obj, prefix, out):
    """Tensors of nested dicts/lists in insertion order with dotted names (the C loader's rule)."""
    if isinstance(obj, torch.Tensor):
        out.append((prefix, obj))
    elif isinstance(obj, dict):
        for k, v in obj.items():
            if isinstance(k, (str, int)) and not isinstance(k, bool):
                flatten(v, f"{prefix}.{k}" if prefix else str(k), out)
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            flatten(v, f"{prefix}.{i}" if prefix else str(i), out)


def tensor_bytes(t):
    t = t.detach().contiguous()
    if t.dtype == torch.bfloat16:
        return t.view(torch.int16).numpy().tobytes()
    return t.numpy().tobytes()


def write_safetensors(path, named, metadata=None):
    header, blobs, off = {}, [], 0
    if metadata:
        header["__metadata__"] = metadata
    for name, t in named:
        b = tensor_bytes(t)
        header[name] = {"dtype": DTYPE_NAMES[t.dtype], "shape": list(t.shape),
                        "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def small_object():
    g = torch.Generator().manual_seed(0)
    base = torch.arange(20, dtype=torch.float32) * 0.25 - 2.0
    model = collections.OrderedDict()
    model["f32"] = torch.randn(3, 4, generator=g)
    model["f16"] = torch.tensor([[0.5, -1.25, 65504.0], [6.1e-5, 1e-7, -0.0]], dtype=torch.float16)
    model["bf16"] = torch.tensor([1.0, -3.5, 1e30, 7.0e-39], dtype=torch.bfloat16)
    model["f64"] = torch.tensor([[1.0 / 3.0, -2.5e300], [5e-324, 2.0]], dtype=torch.float64)
    model["i64"] = torch.tensor([0, -1, 2**62, -(2**63), 12345], dtype=torch.int64)
    model["i32"] = torch.tensor([7, -7, 2**31 - 1], dtype=torch.int32)
    model["i16"] = torch.tensor([-300, 300], dtype=torch.int16)
    model["i8"] = torch.tensor([-128, 127, 0], dtype=torch.int8)
    model["u8"] = torch.tensor([[0, 255], [1, 2]], dtype=torch.uint8)
    model["mask"] = torch.tensor([True, False, True])
    model["num_batches_tracked"] = torch.tensor(7)                # 0-dim int64
    model["scale"] = torch.tensor(0.125)                           # 0-dim float
    model["base"] = base
    model["view"] = base.view(4, 5)[1:, ::2]                       # offset 5, strides (5, 2)
    model["row"] = base[13:17]                                     # offset 13, contiguous
    model["transposed"] = torch.arange(6, dtype=torch.float32).reshape(2, 3).t()
    model["empty"] = torch.zeros(0, 3)
    model["expanded"] = torch.tensor([1.5, 2.5]).expand(3, 2)     # stride 0
    p = torch.nn.Parameter(torch.tensor([[1.0, 2.0]]))
    return {
        "model": model,
        "epoch": 3,
        "optimizer": {
            "state": {0: {"step": torch.tensor(10.0), "exp_avg": torch.full((1, 2), 0.5)}},
            "param_groups": [{"lr": 0.1, "betas": (0.9, 0.999), "params": [0], "name": None}],
        },
        "param": p,
        "list": [torch.tensor([1, 2], dtype=torch.int32), "text", 2.5, None, True],
        "note": "trained",
    }


def tiny_tv_state_dict():
    torch.manual_seed(1)
    net = torch.nn.Sequential(collections.OrderedDict([
        ("conv1", torch.nn.Conv2d(3, 4, 3, bias=False)),
        ("bn1", torch.nn.BatchNorm2d(4)),
        ("fc", torch.nn.Linear(4, 2)),
    ]))
    with torch.no_grad():
        net.bn1.running_mean.uniform_(-1, 1)
        net.bn1.running_var.uniform_(0.5, 2)
        net.bn1.num_batches_tracked.fill_(100)
    return net.state_dict()


def repack(src, dst, deflate=False, zip64=False):
    with zipfile.ZipFile(src) as zin:
        items = [(i, zin.read(i.filename)) for i in zin.infolist()]
    saved = zipfile.ZIP64_LIMIT, zipfile.ZIP_FILECOUNT_LIMIT
    if zip64:
        zipfile.ZIP64_LIMIT, zipfile.ZIP_FILECOUNT_LIMIT = 0, 0
    try:
        method = zipfile.ZIP_DEFLATED if deflate else zipfile.ZIP_STORED
        with zipfile.ZipFile(dst, "w", compression=method) as zout:
            for info, data in items:
                zout.writestr(info.filename, data, compress_type=method)
    finally:
        zipfile.ZIP64_LIMIT, zipfile.ZIP_FILECOUNT_LIMIT = saved


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "..", "tests", "golden", "weights")
    os.makedirs(out, exist_ok=True)
    j = lambda name: os.path.join(out, name)

    obj = small_object()
    torch.save(obj, j("small_zip.pth"))
    torch.save(obj, j("small_legacy.pth"), _use_new_zipfile_serialization=False)
    repack(j("small_zip.pth"), j("small_deflated.pth"), deflate=True)
    repack(j("small_zip.pth"), j("small_zip64.pth"), zip64=True)
    named = []
    flatten(obj, "", named)
    write_safetensors(j("small.expected.safetensors"), named,
                      {"torch": torch.__version__, "source": "make_weights_goldens.py"})

    sd = tiny_tv_state_dict()
    torch.save(sd, j("tiny_tv_legacy.pth"), _use_new_zipfile_serialization=False)
    torch.save(sd, j("tiny_tv_zip.pth"))
    torch.save(sd, j("tiny_tv_p4_legacy.pth"), pickle_protocol=4,
               _use_new_zipfile_serialization=False)
    torch.save(sd, j("tiny_tv_p4_zip.pth"), pickle_protocol=4)
    named = []
    flatten(sd, "", named)
    write_safetensors(j("tiny_tv.expected.safetensors"), named)

    # torch itself must read back what it wrote (guards against a broken torch install)
    for name in ("small_zip.pth", "small_legacy.pth"):
        back = torch.load(j(name))
        assert torch.equal(back["model"]["view"], obj["model"]["view"])
    print(f"wrote goldens to {out} (torch {torch.__version__})")


if __name__ == "__main__":
    main()
