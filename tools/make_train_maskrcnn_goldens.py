#!/usr/bin/python3
"""make_train_maskrcnn_goldens.py - torchvision reference of one Mask R-CNN training step (the
five losses, every parameter's gradient, the batch-norm running statistics after the forward and
the sampled anchor/RoI counts) for the gradient-parity test of iseg's training step.

Run with Debian's interpreter (torch 1.13, torchvision 0.14):
    /usr/bin/python3 tools/make_train_maskrcnn_goldens.py [outdir]   # default tests/golden/train

Model: tools/maskrcnn_parity.py's compact_model (ResNet-18-like body with nn.BatchNorm2d, FPN,
v1 heads), 3 classes, in train mode. The samplers' batch sizes are huge so that torch takes every
positive and negative anchor/proposal: the step has no randomness. One 64x96 image (scale 1 in the
transform), three elliptic instances.

Writes
  maskrcnn_step_init.safetensors  state dict before the step (torch's names, F32, no
                                  num_batches_tracked); metadata iseg.anchor_sizes/min_size/max_size
  maskrcnn_step.safetensors       image (U8 HWC), gt.boxes/labels/masks, loss.<name> (F32 [1]),
                                  grad.<param> (F32), after.<bn>.running_mean/var (F32),
                                  count.rpn_pos/rpn_neg/roi_pos/roi_neg (I64 [1])
Seeded, CPU, one thread, ~3 s. About 0.9 MB each (the 227k-parameter model, stored twice:
weights and gradients).
"""
import os
import sys

import numpy as np
import torch
import torch.nn as nn
import torchvision
from torchvision.models.detection import _utils as det_utils
from torchvision.ops import box_iou

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from maskrcnn_parity import compact_model, natural_image, write_safetensors  # noqa: E402

SEED = 20240717
H, W = 64, 96
ANCHOR_SIZES = (8, 16, 32, 64, 128)
KW = dict(min_size=64, max_size=1000,
          rpn_batch_size_per_image=100000, rpn_positive_fraction=0.5,
          box_batch_size_per_image=100000, box_positive_fraction=0.25,
          rpn_pre_nms_top_n_train=2000, rpn_post_nms_top_n_train=2000)
LOSSES = ("loss_objectness", "loss_rpn_box_reg", "loss_classifier", "loss_box_reg", "loss_mask")


def build_model():
    torch.manual_seed(SEED)
    model = compact_model(num_classes=3, width=8, fpn=16, rep=32, mask_ch=16,
                          anchor_sizes=ANCHOR_SIZES, **KW)
    g = torch.Generator().manual_seed(SEED + 1)
    # predictor weights: normal with these std (torchvision: 0.01 / 0.001 / kaiming), so that the
    # objectness and class logits spread over about +-2 and no loss is tiny
    heads = {"rpn.head.cls_logits.": 0.3, "rpn.head.bbox_pred.": 0.1,
             "roi_heads.box_predictor.cls_score.": 0.3, "roi_heads.box_predictor.bbox_pred.": 0.1,
             "roi_heads.mask_predictor.mask_fcn_logits.": 0.1}
    with torch.no_grad():
        for name, p in model.named_parameters():
            std = next((v for k, v in heads.items() if name.startswith(k)), None)
            if std is not None:
                if name.endswith("weight"):
                    p.copy_(torch.randn(p.shape, generator=g) * std)
                else:
                    p.copy_(torch.rand(p.shape, generator=g) * 0.2 - 0.1)
            elif name.endswith("bias") and not torch.count_nonzero(p):
                # FPN / RPN conv biases start at zero in torchvision; make them non-trivial
                p.copy_(torch.rand(p.shape, generator=g) * 0.1 - 0.05)
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.copy_(torch.rand(m.weight.shape, generator=g) + 0.5)
                m.bias.copy_(torch.rand(m.bias.shape, generator=g) * 0.4 - 0.2)
    return model.train()


def ellipse(cy, cx, ry, rx):
    y, x = np.mgrid[0:H, 0:W].astype(np.float64)
    return ((((y + 0.5 - cy) / ry) ** 2 + ((x + 0.5 - cx) / rx) ** 2) <= 1).astype(np.uint8)


def make_targets():
    masks = np.stack([
        ellipse(14.0, 20.0, 5.0, 7.0),     # ~10 x 14
        ellipse(24.0, 32.0, 10.0, 15.0),   # ~20 x 30, overlaps the first
        ellipse(49.0, 87.0, 15.0, 9.0),    # ~30 x 18, touches the bottom and right borders
    ])
    boxes = []
    for m in masks:
        ys, xs = np.nonzero(m)
        boxes.append([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])
    return (torch.from_numpy(masks), torch.tensor(boxes, dtype=torch.float32),
            torch.tensor([1, 2, 1], dtype=torch.int64))


class Recorder:
    """Wraps a BalancedPositiveNegativeSampler and remembers the per-image pos/neg masks."""

    def __init__(self, sampler):
        self.sampler, self.pos, self.neg, self.labels = sampler, None, None, None

    def __call__(self, labels):
        pos, neg = self.sampler(labels)
        self.labels = [t.clone() for t in labels]
        self.pos, self.neg = pos, neg
        return pos, neg


def main():
    out_dir = sys.argv[1] if len(sys.argv) > 1 else "tests/golden/train"
    torch.set_num_threads(1)
    model = build_model()
    init = {k: v.detach().clone() for k, v in model.state_dict().items()
            if not k.endswith("num_batches_tracked")}
    assert all(v.dtype == torch.float32 for v in init.values())

    img_u8 = natural_image(H, W, SEED)
    assert img_u8.dtype == np.uint8 and img_u8.shape == (H, W, 3)
    img = torch.from_numpy(img_u8).permute(2, 0, 1).float() / 255
    masks, boxes, labels = make_targets()
    assert masks[:, 0, :].any() or masks[:, :, 0].any() or masks[:, -1, :].any() \
        or masks[:, :, -1].any(), "no instance touches the border"
    inter = (masks[0] & masks[1]).sum().item()
    assert inter > 0, "instances 0 and 1 should overlap"
    target = {"boxes": boxes, "labels": labels, "masks": masks}

    # the transform is an identity resize at this size (scale 1, already a multiple of 32)
    with torch.no_grad():
        il, tt = model.transform([img], [target])
    t = model.transform
    norm = (img - torch.tensor(t.image_mean)[:, None, None]) / torch.tensor(t.image_std)[:, None, None]
    assert il.tensors.shape == (1, 3, H, W) and il.image_sizes == [(H, W)]
    assert torch.equal(il.tensors[0], norm), "transform is not an identity resize"
    assert torch.equal(tt[0]["boxes"], boxes) and torch.equal(tt[0]["masks"], masks)

    rpn_rec = Recorder(model.rpn.fg_bg_sampler)
    roi_rec = Recorder(model.roi_heads.fg_bg_sampler)
    model.rpn.fg_bg_sampler = rpn_rec
    model.roi_heads.fg_bg_sampler = roi_rec
    seen = {}
    orig_assign = model.roi_heads.assign_targets_to_proposals

    def assign(proposals, gt_boxes, gt_labels):
        seen["proposals"] = proposals[0].detach().clone()
        return orig_assign(proposals, gt_boxes, gt_labels)
    model.roi_heads.assign_targets_to_proposals = assign
    anchors_hook = {}
    model.rpn.anchor_generator.register_forward_hook(
        lambda mod, inp, outp: anchors_hook.__setitem__("anchors", outp[0].detach().clone()))

    losses = model([img], [target])
    after = {}
    for name, m in model.named_modules():
        if isinstance(m, nn.BatchNorm2d):
            after["after.%s.running_mean" % name] = m.running_mean.detach().clone()
            after["after.%s.running_var" % name] = m.running_var.detach().clone()
    loss = sum(losses[k] for k in LOSSES)
    assert set(losses) == set(LOSSES), sorted(losses)
    loss.backward()

    for k in LOSSES:
        v = losses[k].item()
        assert np.isfinite(v) and v > 0, (k, v)

    # counts from the samplers (every candidate is drawn: the batch sizes exceed the candidates)
    count = {}
    for tag, rec in (("rpn", rpn_rec), ("roi", roi_rec)):
        lab = rec.labels[0]
        npos, nneg = int(rec.pos[0].sum()), int(rec.neg[0].sum())
        assert npos == int((lab >= 1).sum()) and nneg == int((lab == 0).sum()), tag
        count[tag + "_pos"], count[tag + "_neg"] = npos, nneg

    # recompute them independently with box_iou and torchvision's Matcher
    anchors = anchors_hook["anchors"]
    q = box_iou(boxes, anchors)
    mi = det_utils.Matcher(0.7, 0.3, allow_low_quality_matches=True)(q)
    assert int((mi >= 0).sum()) == count["rpn_pos"] and int((mi == -1).sum()) == count["rpn_neg"]
    props = seen["proposals"]
    assert torch.equal(props[-3:], boxes), "GT boxes are not appended after the proposals"
    q = box_iou(boxes, props)
    best = q.max(0).values
    assert int((best >= 0.5).sum()) == count["roi_pos"] and int((best < 0.5).sum()) == count["roi_neg"]
    assert count["rpn_pos"] >= 3 and count["roi_pos"] >= 3, count
    roi_pos_non_gt = int((best[:-3] >= 0.5).sum())

    grads, zero = {}, []
    for name, p in model.named_parameters():
        assert p.requires_grad and p.grad is not None, name
        if not torch.count_nonzero(p.grad):
            zero.append(name)
        assert torch.isfinite(p.grad).all(), name
        grads["grad." + name] = p.grad.detach().clone()
    if zero:
        print("zero gradients:", zero)
    assert not zero

    meta_common = {"torch": torch.__version__, "torchvision": torchvision.__version__,
                   "seed": str(SEED)}
    os.makedirs(out_dir, exist_ok=True)
    p_init = os.path.join(out_dir, "maskrcnn_step_init.safetensors")
    write_safetensors(p_init, {k: v.numpy() for k, v in init.items()},
                      dict(meta_common, **{"iseg.anchor_sizes": ",".join(map(str, ANCHOR_SIZES)),
                                           "iseg.min_size": "64", "iseg.max_size": "1000"}))
    step = {"image": img_u8, "gt.boxes": boxes.numpy(), "gt.labels": labels.numpy(),
            "gt.masks": masks.numpy()}
    step.update({"loss." + k: losses[k].detach().reshape(1).numpy() for k in LOSSES})
    step.update({k: v.numpy() for k, v in grads.items()})
    step.update({k: v.numpy() for k, v in after.items()})
    step.update({"count." + k: np.array([v], np.int64) for k, v in count.items()})
    p_step = os.path.join(out_dir, "maskrcnn_step.safetensors")
    write_safetensors(p_step, step, dict(meta_common, kwargs=repr(KW)))

    nparam = sum(p.numel() for p in model.parameters())
    print("losses:", ", ".join("%s %.6f" % (k, losses[k].item()) for k in LOSSES),
          "| total %.6f" % loss.item())
    print("counts:", count, "| anchors %d, proposals %d (+3 GT), positive RoIs that are not GT %d"
          % (anchors.shape[0], props.shape[0] - 3, roi_pos_non_gt))
    print("gt boxes:", boxes.tolist())
    print("parameters: %d tensors, %d values; %d batch norms"
          % (len(grads), nparam, len(after) // 2))
    for p in (p_init, p_step):
        print("%s: %d bytes" % (p, os.path.getsize(p)))


if __name__ == "__main__":
    main()
