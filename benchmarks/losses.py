"""Time hseg's batched Lovasz-softmax and Focal losses against smp's LovaszLoss and FocalLoss.

    python benchmarks/losses.py                      # batch 16 at 96 and 160 px, 7 classes
    python benchmarks/losses.py --sizes 256 --repeats 5

For each loss: ms per forward + backward of smp's version and of hseg's, their ratio, and the
largest difference of the two losses' values and gradients on the same random batch (they compute
the same function). Also times CE + Dice alone, for the share a term adds to a loss evaluation.
All five are timed in turn, one call each round, so machine drift hits them alike.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from segmentation_models_pytorch.losses import FocalLoss, LovaszLoss

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hseg.losses import SegLoss, focal_loss, lovasz_softmax  # noqa: E402
from hseg.timing import timed_round_robin  # noqa: E402
from hseg.tree import IGNORE  # noqa: E402


def ms_per_call(fns: dict, logits, labels, repeats: int) -> dict:
    """ms per forward + backward of each loss, timed in turn."""
    calls = {name: (lambda fn=fn: fn(logits, labels).backward()) for name, fn in fns.items()}
    return {name: s * 1000 for name, s in timed_round_robin(calls, repeats).items()}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[96, 160], help="square side(s) in pixels")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--classes", type=int, default=7)
    parser.add_argument("--repeats", type=int, default=10, help="timed calls per loss")
    args = parser.parse_args(argv)
    pairs = {"Lovasz": (LovaszLoss("multiclass", ignore_index=IGNORE), lovasz_softmax),
             "Focal": (FocalLoss("multiclass", ignore_index=IGNORE), focal_loss)}
    ce_dice = SegLoss({"ce": 1.0, "dice": 1.0})
    print(f"cpu, {torch.get_num_threads()} threads, forward + backward")
    torch.manual_seed(0)
    for size in args.sizes:
        logits = torch.randn(args.batch, args.classes, size, size, requires_grad=True)
        labels = torch.randint(0, args.classes, (args.batch, size, size))
        labels[:, :size // 16] = IGNORE
        shape = f"{args.batch}x{args.classes}x{size}x{size}"
        fns = {"CE + Dice": ce_dice, **{f"smp {n}": pair[0] for n, pair in pairs.items()},
               **{f"hseg {n}": pair[1] for n, pair in pairs.items()}}
        ms = ms_per_call(fns, logits, labels, args.repeats)
        print(f"{shape}: CE + Dice {ms['CE + Dice']:.1f} ms", flush=True)
        for name, (theirs_fn, ours_fn) in pairs.items():
            ours, theirs = ours_fn(logits, labels), theirs_fn(logits, labels)
            g_ours, = torch.autograd.grad(ours, logits)
            g_theirs, = torch.autograd.grad(theirs, logits)
            t_smp, t_ours = ms[f"smp {name}"], ms[f"hseg {name}"]
            print(f"{shape}: smp {name}Loss {t_smp:.1f} ms, hseg's {t_ours:.1f} ms ({t_smp / t_ours:.2f}x); "
                  f"|value diff| {abs(ours.item() - theirs.item()):.1e}, max |grad diff| "
                  f"{(g_ours - g_theirs).abs().max().item():.1e}", flush=True)


if __name__ == "__main__":
    main()
