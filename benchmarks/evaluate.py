"""Time the evaluate stage's scoring with hseg's class_argmax against torch's Tensor.argmax.

    python benchmarks/evaluate.py                          # UNet-ResNet34 at 96 px, flip TTA, 707 val images
    python benchmarks/evaluate.py --model deeplabv3plus-resnet50 --size 160 --real

Evaluate upsamples every image's class scores to its original size and takes the argmax over the
classes there. Printed: (1) that argmax alone on a 7x375x500 score map (a typical val image), as
Tensor.argmax(0) and as class_argmax (Tensor.max(0).indices), timed in turn; (2) evaluate_model
over the val set with each of the two, timed in turn, and the mIoU each gives (they must agree).
The network has random weights (its arithmetic is what counts); the val set is random images of
the real val set's shape (500x375 masks), or data/prepared/val.pt with --real.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from unittest import mock

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from hseg import evaluate, inference, layout  # noqa: E402
from hseg.cache import load_cache  # noqa: E402
from hseg.device import prepare_model  # noqa: E402
from hseg.hierarchy import class_argmax, num_outputs  # noqa: E402
from hseg.models import build_model  # noqa: E402
from hseg.settings.base import load_params  # noqa: E402
from hseg.settings.classes import class_tree  # noqa: E402
from hseg.timing import LEAF_NAMES, random_cache, timed_round_robin  # noqa: E402


def torch_argmax(scores: torch.Tensor, dim: int = 1) -> torch.Tensor:
    return scores.argmax(dim)


def argmax_ms(scores: torch.Tensor, repeats: int) -> dict:
    """ms per call of each way, timed in turn."""
    calls = {"Tensor.argmax": lambda: torch_argmax(scores, 0), "class_argmax": lambda: class_argmax(scores, 0)}
    return {name: s * 1000 for name, s in timed_round_robin(calls, repeats).items()}


def timed_evaluate(argmax, model, val: dict, tree, flip_tta: bool, batch: int) -> tuple[float, float]:
    """(seconds, mIoU of the deepest level) of evaluate_model with ``argmax`` as the class argmax."""
    with mock.patch.object(inference, "class_argmax", argmax), mock.patch.object(evaluate, "class_argmax", argmax):
        start = time.perf_counter()
        scores, _ = evaluate.evaluate_model(model, "flat", val, tree, torch.device("cpu"), "auto", batch,
                                            progress=False, flip_tta=flip_tta)
    return time.perf_counter() - start, scores[f"miou{len(tree.levels) - 1}"]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="unet-resnet34", help="arch-encoder, e.g. deeplabv3plus-resnet50")
    parser.add_argument("--size", type=int, default=96, help="cache size in pixels (random val set)")
    parser.add_argument("--images", type=int, default=707, help="random val images")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--no-tta", action="store_true", help="score without flip test-time augmentation")
    parser.add_argument("--real", action="store_true", help="use data/prepared/val.pt")
    parser.add_argument("--repeats", type=int, default=20, help="timed calls of each argmax")
    args = parser.parse_args(argv)

    torch.manual_seed(0)
    ms = argmax_ms(torch.randn(len(LEAF_NAMES), 375, 500), args.repeats)
    print(f"cpu, {torch.get_num_threads()} threads")
    print(f"argmax over 7 classes of a 7x375x500 score map: Tensor.argmax {ms['Tensor.argmax']:.1f} ms, "
          f"class_argmax {ms['class_argmax']:.1f} ms ({ms['Tensor.argmax'] / ms['class_argmax']:.1f}x)", flush=True)

    val = load_cache(layout.cache_file("val")) if args.real else \
        random_cache(args.images, args.size, (375, 500), torch.Generator().manual_seed(0))
    tree = class_tree(load_params(ROOT / "params.yaml"), val["leaf_names"])
    arch, encoder = args.model.split("-", 1)
    model = prepare_model(build_model(arch, encoder, "scratch", num_outputs(tree, "flat")),
                          torch.device("cpu")).eval()
    base_s, base_miou = timed_evaluate(torch_argmax, model, val, tree, not args.no_tta, args.batch)
    ours_s, ours_miou = timed_evaluate(class_argmax, model, val, tree, not args.no_tta, args.batch)
    print(f"evaluate {args.model}, {len(val['ids'])} {'real' if args.real else 'random'} val images at "
          f"{val['size']} px{'' if args.no_tta else ', flip TTA'}: with Tensor.argmax {base_s:.1f} s, "
          f"with class_argmax {ours_s:.1f} s ({base_s / ours_s:.2f}x); mIoU {base_miou!r} vs {ours_miou!r}")
    if base_miou != ours_miou:
        sys.exit("error: the two argmax ways gave different mIoU")


if __name__ == "__main__":
    main()
