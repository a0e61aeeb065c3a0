"""Score a trained flat model with leaf argmax and with top-down (marginal) inference.

    python benchmarks/inference.py models/unet-resnet34-scratch.pt          # params.yaml's evaluate settings
    python benchmarks/inference.py models/unet-resnet34-scratch.pt --flip-tta

Evaluate takes each pixel's most likely leaf (argmax of the logits, upsampled to the original
size). Top-down inference instead decides one level at a time from softmax probabilities summed
over each node's leaves: body vs background first, then upper vs lower body within the body, then
the leaf within that node, so a pixel whose background leaf is the single most likely class can
still be body when the body leaves together outweigh it. Printed for each rule: mIoU at every level
and the leaf IoU per class, from one confusion matrix over the val set at original resolution, with
evaluate's device, precision and test-time augmentation from params.yaml (the leaf-argmax row is evaluate's score).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm import tqdm

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from scoring import load_model_and_val, score_line  # noqa: E402

from hseg import layout  # noqa: E402
from hseg.cache import full_mask  # noqa: E402
from hseg.cli import run_cli  # noqa: E402
from hseg.device import pick_device, prepare_model, resolve_precision  # noqa: E402
from hseg.errors import UserError  # noqa: E402
from hseg.hierarchy import class_argmax  # noqa: E402
from hseg.inference import predict_logits  # noqa: E402
from hseg.metrics import confusion_matrix, hierarchical_scores  # noqa: E402
from hseg.settings.base import load_params  # noqa: E402
from hseg.settings.evaluate import evaluate_settings  # noqa: E402
from hseg.tree import ClassTree  # noqa: E402


def top_down(probs: torch.Tensor, tree: ClassTree) -> torch.Tensor:
    """Leaf map (H, W) from leaf probabilities (C, H, W): at each level the node with the largest
    summed probability among the children of the node chosen above (the first one on ties)."""
    allowed = torch.ones_like(probs, dtype=torch.bool)
    for level in tree.levels[:-1]:
        to_node = torch.as_tensor(level.leaf_to_level, device=probs.device)
        shape = (level.num_classes, *probs.shape[1:])
        mass = probs.new_zeros(shape).index_add_(0, to_node, torch.where(allowed, probs, 0))
        open_ = probs.new_zeros(shape).index_add_(0, to_node, allowed.to(probs.dtype)) > 0
        chosen = class_argmax(torch.where(open_, mass, -1), 0)
        allowed &= to_node.view(-1, 1, 1) == chosen[None]
    return class_argmax(torch.where(allowed, probs, -1), 0)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("weights", type=Path, help="a flat model written by the train stage")
    p.add_argument("--cache", type=Path, default=layout.cache_file("dev"),
                   help="the split to score (default: dev, where settings are chosen; score val only to report)")
    p.add_argument("--params", type=Path, default=Path("params.yaml"))
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--flip-tta", action=argparse.BooleanOptionalAction, default=None,
                   help="flip test-time augmentation (default: evaluate.flip_tta in params.yaml)")
    return p


def main(args) -> None:
    settings = evaluate_settings(load_params(args.params))
    model, meta, tree, val = load_model_and_val(args.weights, args.cache)
    if meta["head"] != "flat":
        raise UserError(f"{args.weights} has a {meta['head']} head; top-down inference here is for flat models")
    device = pick_device(settings.device)
    precision = resolve_precision(settings.precision, device)
    flip_tta = settings.flip_tta if args.flip_tta is None else args.flip_tta
    model = prepare_model(model, device)
    n_cls, sizes = tree.num_leaves, val["sizes"].tolist()
    rules = {"leaf argmax": lambda scores: class_argmax(scores, 0),
             "top-down": lambda scores: top_down(scores.softmax(0), tree)}
    cms = {name: torch.zeros(n_cls, n_cls, dtype=torch.int64) for name in rules}
    for lo in tqdm(range(0, len(sizes), args.batch), desc="scoring", unit="batch"):
        logits = predict_logits(model, val["images"][lo:lo + args.batch], device, precision, flip_tta,
                                settings.tta_sides).float()
        for j, one in enumerate(logits):
            truth = full_mask(val, lo + j)
            full = F.interpolate(one[None], size=tuple(sizes[lo + j]), mode="bilinear", align_corners=False)[0]
            for name, rule in rules.items():
                cms[name] += confusion_matrix(truth, rule(full).cpu(), n_cls)
    print(f"{args.weights}, {len(sizes)} images of {args.cache}, flip TTA {'on' if flip_tta else 'off'}")
    for name, cm in cms.items():
        print(score_line(name, hierarchical_scores(cm.numpy(), tree), tree, 3))


if __name__ == "__main__":
    run_cli(main, parser())
