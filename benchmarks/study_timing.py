"""Time the whole study's training and evaluation on one machine, GPU or CPU, with the pipeline's own code.

Made for a lent GPU machine (the `device` tool), where the real data cannot travel (183 MB > 64 MiB):
it trains and evaluates every study variant on caches of the real splits' shape (2,826 train and
707 val images, val masks at 500x375) filled with random pixels and labels. The arithmetic per image
is the same as on the real data, so images/s and wall times carry over; the mIoU it prints does not
mean anything. With --real it uses the prepared caches in data/prepared instead.

    python benchmarks/study_timing.py                              # 8 variants, params.yaml's epochs
    python benchmarks/study_timing.py --epochs 1 --jobs 4          # one epoch each, 4 variants at a time
    python benchmarks/study_timing.py --variants unet-resnet34-scratch --epochs 20 --json $OUT/t.json

With 2 or more epochs it projects the study at --project-epochs (default 20) epochs per variant from
the seconds of the last epoch, an epoch after the first (which also pays for cuDNN's autotuning and
torch.compile): each variant's measured train and evaluate time plus the further epochs at that rate,
and the wall time of all variants run --jobs at a time in this order. The JSON is rewritten after
each variant, so a run stopped part way keeps what it measured.

ImageNet variants train from random weights here (a GPU machine has no weight cache); their
arithmetic is that of the scratch variant with the same arch and encoder.
"""
from __future__ import annotations

import argparse
import dataclasses
import heapq
import json
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hseg import layout  # noqa: E402
from hseg.cache import load_cache, save_cache  # noqa: E402
from hseg.cli import run_cli  # noqa: E402
from hseg.errors import UserError  # noqa: E402
from hseg.evaluate import evaluate_weights  # noqa: E402
from hseg.settings.base import load_params  # noqa: E402
from hseg.settings.classes import class_tree  # noqa: E402
from hseg.settings.data import prepare_settings  # noqa: E402
from hseg.settings.evaluate import evaluate_settings  # noqa: E402
from hseg.settings.study import study_settings, study_variants  # noqa: E402
from hseg.settings.train import train_config  # noqa: E402
from hseg.train import train_variant  # noqa: E402

LEAF_NAMES = ["bg", "low_hand", "torso", "low_leg", "head", "up_leg", "up_hand"]


def random_cache(n: int, size: int, full_size: tuple[int, int] | None, gen: torch.Generator) -> dict:
    """A cache in prepare's format with random content."""
    cache = {"images": torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=gen),
             "masks": torch.randint(0, len(LEAF_NAMES), (n, size, size), dtype=torch.uint8, generator=gen),
             "ids": [f"random_{k:06d}" for k in range(n)], "size": size, "leaf_names": LEAF_NAMES,
             "sizes": torch.tensor([full_size or (size, size)] * n, dtype=torch.int32)}
    # counted at the cache size (prepare counts at original size); only class weighting reads them
    cache["pixel_counts"] = torch.bincount(cache["masks"].flatten().long(), minlength=len(LEAF_NAMES))
    if full_size:
        h, w = full_size
        cache["offsets"] = torch.arange(n + 1, dtype=torch.int64) * h * w
        cache["full_masks"] = torch.randint(0, len(LEAF_NAMES), (n * h * w,), dtype=torch.uint8, generator=gen)
    return cache


def time_variant(variant: str, args) -> dict:
    """Train and evaluate one variant in this process; its timings."""
    params = load_params()
    if args.epochs:  # as a variant override, so the recipe is checked with it (e.g. train.progressive's epochs)
        override = dict((params.get("variants") or {}).get(variant) or {}, epochs=args.epochs)
        override["scheduler"] = dict(override.get("scheduler") or {}, T_0=args.epochs)
        params["variants"] = dict(params.get("variants") or {}, **{variant: override})
    cfg = dataclasses.replace(train_config(params, variant, study_settings(params).seeds[0]), init="scratch")
    cache_dir = Path(args.cache_dir)
    train_cache, val_cache = load_cache(cache_dir / "train.pt"), load_cache(cache_dir / "val.pt")
    tree = class_tree(params, train_cache["leaf_names"])
    out = cache_dir / variant
    start = time.perf_counter()
    last = train_variant(cfg, tree, train_cache, val_cache, weights_out=out / "model.pt", live_dir=out / "live",
                         resume_path=out / "resume.pt", progress=False)
    train_s = time.perf_counter() - start
    start = time.perf_counter()
    scores, _ = evaluate_weights(out / "model.pt", val_cache, tree, evaluate_settings(params), progress=False)
    evaluate_s = time.perf_counter() - start
    # the last epoch's seconds (training and validation), if it is not the first: the steady rate
    epoch_s = last["seconds"] if cfg.epochs >= 2 else None
    n = len(train_cache["ids"])
    return {"variant": variant, "epochs": cfg.epochs, "train_s": train_s, "train_img_s": cfg.epochs * n / train_s,
            "epoch_s": epoch_s, "epoch_img_s": n / epoch_s if epoch_s else None,
            "evaluate_s": evaluate_s, "miou2": scores["miou2"],
            "projected_s": (train_s + (args.project_epochs - cfg.epochs) * epoch_s + evaluate_s
                            if epoch_s else None)}


def projected_wall(seconds: list[float], jobs: int) -> float:
    """The wall time of runs of these durations started in order, each as soon as one of ``jobs``
    slots is free (as the ThreadPoolExecutor below runs them)."""
    slots = [0.0] * jobs
    for s in seconds:
        heapq.heappush(slots, heapq.heappop(slots) + s)
    return max(slots)


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variants", nargs="+", help="default: every variant of params.yaml's study")
    parser.add_argument("--epochs", type=int, help="default: train.epochs of params.yaml")
    parser.add_argument("--jobs", type=int, default=1, help="variants trained at once, each in its own process")
    parser.add_argument("--project-epochs", type=int, default=20, help="epochs per variant of the projected study")
    parser.add_argument("--real", action="store_true", help="use data/prepared instead of random caches")
    parser.add_argument("--train-images", type=int, default=2826)
    parser.add_argument("--val-images", type=int, default=707)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: time this variant and print its JSON
    parser.add_argument("--cache-dir", help=argparse.SUPPRESS)
    return parser


def main(args):
    if args.one:
        print("RESULT", json.dumps(time_variant(args.one, args)), flush=True)
        return

    # stopped by a time limit (gpu_check.sh): exit through the with-blocks, so the caches are removed
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    params = load_params()
    variants = args.variants or study_variants(params)
    for v in variants:
        train_config(params, v, study_settings(params).seeds[0])  # fail on a bad name before any work
    with tempfile.TemporaryDirectory(prefix="hseg-study-timing-") as tmp:
        if args.real:
            args.cache_dir = str(layout.cache_file("train").parent)
        else:
            args.cache_dir = tmp
            size, gen = prepare_settings(params).size, torch.Generator().manual_seed(0)
            save_cache(random_cache(args.train_images, size, None, gen), Path(tmp) / "train.pt")
            save_cache(random_cache(args.val_images, size, (375, 500), gen), Path(tmp) / "val.pt")

        results, lock = {}, threading.Lock()
        start = time.perf_counter()

        def run_one(variant: str) -> dict:
            cmd = [sys.executable, __file__, "--one", variant, "--cache-dir", args.cache_dir,
                   "--project-epochs", str(args.project_epochs)]
            if args.epochs:
                cmd += ["--epochs", str(args.epochs)]
            done = subprocess.run(cmd, capture_output=True, text=True)
            if done.returncode:
                raise UserError(f"{variant} failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
            result = json.loads(done.stdout.split("RESULT", 1)[1])
            steady = (f"  epoch after the first {result['epoch_s']:6.1f}s ({result['epoch_img_s']:7.1f} img/s)"
                      if result["epoch_s"] else "")
            print(f"{variant:32s} {result['epochs']:3d} epochs  train {result['train_s']:7.1f}s "
                  f"({result['train_img_s']:7.1f} img/s){steady}  evaluate {result['evaluate_s']:5.1f}s", flush=True)
            with lock:
                results[variant] = result
                write_json(args, [results[v] for v in variants if v in results], time.perf_counter() - start, False)
            return result

        with ThreadPoolExecutor(args.jobs) as pool:
            ordered = list(pool.map(run_one, variants))
        wall = time.perf_counter() - start
    summary = write_json(args, ordered, wall, True)
    print(f"\n{len(variants)} variant(s) on {summary['device']}, {args.jobs} at a time, "
          f"{'real' if args.real else 'random'} data: {wall:.1f}s wall in all")
    if summary["projected_wall_s"] is not None:
        print(f"projected at {args.project_epochs} epochs each, {args.jobs} at a time: "
              f"{summary['projected_wall_s'] / 60:.1f} min wall")


def write_json(args, results: list[dict], wall: float, complete: bool) -> dict:
    """The run's figures so far, written to --json if given (complete: whether every variant finished)."""
    projected = [r["projected_s"] for r in results]
    summary = {"device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu", "jobs": args.jobs,
               "real_data": args.real, "complete": complete, "wall_s": wall, "project_epochs": args.project_epochs,
               "projected_wall_s": projected_wall(projected, args.jobs) if complete and None not in projected else None,
               "variants": results}
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2))
    return summary


if __name__ == "__main__":
    run_cli(main, parser())
