"""What test-time augmentation buys one trained model: its dev scores and seconds under each setting
(choose TTA on dev, the default `--cache`; the val split is for reporting only).

    python benchmarks/tta.py models/unet-resnet34-scratch-s42.pt                   # none, flip, flip:<S-32>
    python benchmarks/tta.py models/unet-resnet34-scratch-s42.pt --settings flip flip:192 flip:192,256

A setting is `none`, `flip`, `SIDES` or `flip:SIDES`, SIDES being comma-separated input sides for
multi-scale TTA (`evaluate.tta_sides`; multiples of 32), each optionally after `zoom:` (e.g. `zoom:flip`):
a second pass on the square around the predicted body, magnified (hseg/zoom.py). Each is scored
exactly as the evaluate stage scores (`hseg.evaluate.evaluate_model`: the cache at its own size S,
logits upsampled to each image's original size, one confusion matrix), with evaluate's device,
precision and batch size from params.yaml. Printed per setting: mIoU at every level, the leaf IoU per
class, and the seconds it took, so the gain can be set against its cost. The default list ends with one
step smaller than the cache (S - 32), the setting that helped the hour model (README, "One model in an
hour").
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from scoring import load_model_and_val, score_line  # noqa: E402

from hseg import layout  # noqa: E402
from hseg.cli import run_cli  # noqa: E402
from hseg.device import pick_device, prepare_model  # noqa: E402
from hseg.errors import UserError  # noqa: E402
from hseg.evaluate import evaluate_model  # noqa: E402
from hseg.selection import LOG, log_candidate  # noqa: E402
from hseg.settings.base import load_params  # noqa: E402
from hseg.settings.evaluate import evaluate_settings, tta_sides  # noqa: E402
from hseg.zoom import BodyZoom  # noqa: E402


def parse_setting(text: str) -> tuple[bool, bool, tuple[int, ...]]:
    """'[zoom:]none' | '[zoom:]flip' | '[zoom:]SIDES' | '[zoom:]flip:SIDES' -> (zoom, flip_tta, tta_sides)."""
    zoom = text == "zoom" or text.startswith("zoom:")
    views = "none" if text == "zoom" else text.removeprefix("zoom:")
    flip = views == "flip" or views.startswith("flip:")
    sides = "" if views in ("none", "flip") else views.removeprefix("flip:")
    try:
        values = [int(s) for s in sides.split(",") if s]
    except ValueError:
        values = None
    if values is None or (sides and not values):
        raise UserError(f"--settings {text!r}: expected none, flip, SIDES or flip:SIDES, each optionally after "
                        f"zoom:, e.g. flip:160,192 or zoom:flip")
    return zoom, flip, tta_sides(f"--settings {text!r} side", values)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("weights", type=Path, help="a model written by the train stage")
    p.add_argument("--cache", type=Path, default=layout.cache_file("dev"),
                   help="the split to score (default: dev, where settings are chosen; score val only to report)")
    p.add_argument("--params", type=Path, default=Path("params.yaml"))
    p.add_argument("--settings", nargs="+", metavar="SETTING", help="default: none flip flip:<cache side - 32>")
    p.add_argument("--log", metavar="QUESTION", help=f"append each setting's dev scores to {LOG} under this "
                   f"question (e.g. 'hour TTA'), so the candidates behind a choice are on record")
    return p


def main(args) -> None:
    settings = evaluate_settings(load_params(args.params))
    if args.log and args.cache.stem != "dev":
        raise UserError(f"--log records candidates scored on dev; {args.cache} is not the dev cache")
    for text in args.settings or []:
        parse_setting(text)  # a bad setting is refused before any work
    model, meta, tree, val = load_model_and_val(args.weights, args.cache)
    side = val["images"].shape[-1]
    names = args.settings or ["none", "flip"] + ([f"flip:{side - 32}"] if side > 32 else [])
    device = pick_device(settings.device)
    model = prepare_model(model, device)
    print(f"{args.weights}, {len(val['ids'])} images of {args.cache} at {side} px")
    for name in names:
        zoom, flip, sides = parse_setting(name)
        start = time.perf_counter()
        scored = BodyZoom(model, tree, meta["head"]) if zoom else model
        scores, _ = evaluate_model(scored, meta["head"], val, tree, device, settings.precision, settings.batch_size,
                                   False, flip, sides)
        print(f"{score_line(name, scores, tree, 4)}; {time.perf_counter() - start:.0f} s", flush=True)
        if args.log:
            log_candidate(args.log, f"{args.weights.stem} TTA {name}", meta.get("seed", "-"), scores,
                          split=args.cache.stem)


if __name__ == "__main__":
    run_cli(main, parser())
