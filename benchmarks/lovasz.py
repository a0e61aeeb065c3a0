"""Time the Lovasz-softmax loss: smp's LovaszLoss (one sort per class) vs hseg's batched version.

    python benchmarks/lovasz.py                      # batch 16 at 96 and 160 px, 7 classes
    python benchmarks/lovasz.py --sizes 256 --repeats 5

Prints ms per forward + backward for each, their ratio, and the largest difference of the two
losses' values and gradients on the same random batch (they compute the same function).
Also times CE + Dice alone, for the share the Lovasz term adds to a loss evaluation.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
from segmentation_models_pytorch.losses import LovaszLoss

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hseg.losses import SegLoss, lovasz_softmax  # noqa: E402
from hseg.tree import IGNORE  # noqa: E402


def ms_per_call(fn, logits, labels, repeats: int) -> float:
    for _ in range(2):  # warm-up
        fn(logits, labels).backward()
    start = time.perf_counter()
    for _ in range(repeats):
        fn(logits, labels).backward()
    return (time.perf_counter() - start) / repeats * 1000


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[96, 160], help="square side(s) in pixels")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--classes", type=int, default=7)
    parser.add_argument("--repeats", type=int, default=10, help="timed calls per loss")
    args = parser.parse_args(argv)
    smp_lovasz = LovaszLoss("multiclass", ignore_index=IGNORE)
    ce_dice = SegLoss({"ce": 1.0, "dice": 1.0})
    torch.manual_seed(0)
    for size in args.sizes:
        logits = torch.randn(args.batch, args.classes, size, size, requires_grad=True)
        labels = torch.randint(0, args.classes, (args.batch, size, size))
        labels[:, :size // 16] = IGNORE
        ours, theirs = lovasz_softmax(logits, labels), smp_lovasz(logits, labels)
        g_ours, = torch.autograd.grad(ours, logits)
        g_theirs, = torch.autograd.grad(theirs, logits)
        t_smp = ms_per_call(smp_lovasz, logits, labels, args.repeats)
        t_ours = ms_per_call(lovasz_softmax, logits, labels, args.repeats)
        t_base = ms_per_call(ce_dice, logits, labels, args.repeats)
        print(f"{args.batch}x{args.classes}x{size}x{size}: smp LovaszLoss {t_smp:.1f} ms, batched {t_ours:.1f} ms "
              f"({t_smp / t_ours:.2f}x); CE + Dice {t_base:.1f} ms; "
              f"|value diff| {abs(ours.item() - theirs.item()):.1e}, max |grad diff| "
              f"{(g_ours - g_theirs).abs().max().item():.1e}", flush=True)


if __name__ == "__main__":
    main()
