"""Time a study's training and evaluation on one machine, GPU or CPU, as its stages would run, and
project the whole study from it.

Made for a lent GPU machine (the `device` tool), where the real data cannot travel (183 MB > 64 MiB):
every variant trains and evaluates on caches of the real splits' shape (2,532 train, 294 dev and 707
val images, val masks at 500x375) filled with random pixels and labels. The arithmetic per image is
that of the real data, so images/s and wall times carry over; the mIoU means nothing. With --real it
uses the prepared caches in data/prepared instead.

    python benchmarks/study_timing.py --profile full --jobs 4           # the GPU study: 8 variants, 4 at once
    python benchmarks/study_timing.py --profile full --one-per-arithmetic  # 4 variants, one at a time
    python benchmarks/study_timing.py -S train.batch_size=32 --variants unet-resnet34-scratch

The recipe is the one `python -m hseg exp PROFILE -S ...` would run (committed params.yaml, the profile,
then the -S settings), trained for --epochs (default 2). Like a stage, each variant trains in its own
process and is evaluated in another, so the wall times include the process start, the imports, the
CUDA context, loading the caches, every epoch's resume-state save and the weights' save. The projection
of a run at --project-epochs (default: the recipe's train.epochs) is

    train process wall + (project_epochs - epochs) x the last whole epoch + evaluate process wall

where a whole epoch runs from the end of one resume-state save to the end of the next (training,
validation, logging and the save). The study's wall is that of its runs (variants x seeds) started in
order, --jobs at a time. DVC's own per-stage cost (hashing the outputs, writing dvc.lock) is not in it.
The JSON is rewritten after each variant, so a run stopped part way keeps what it measured.

ImageNet variants train from random weights here (a GPU machine has no weight cache): their arithmetic
is that of the scratch variant with the same arch and encoder, which is why --one-per-arithmetic times
one of each pair and lets the other take its figures.
"""
from __future__ import annotations

import argparse
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
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hseg import layout  # noqa: E402
from hseg.cache import load_cache, save_cache  # noqa: E402
from hseg.checkpoint import ResumeState  # noqa: E402
from hseg.cli import run_cli  # noqa: E402
from hseg.errors import UserError  # noqa: E402
from hseg.evaluate import evaluate_weights  # noqa: E402
from hseg.exp import profile_params  # noqa: E402
from hseg.settings.base import load_params  # noqa: E402
from hseg.settings.classes import class_tree  # noqa: E402
from hseg.settings.data import prepare_settings  # noqa: E402
from hseg.settings.evaluate import evaluate_settings  # noqa: E402
from hseg.settings.study import parse_variant, study_settings, study_variants  # noqa: E402
from hseg.settings.train import train_config  # noqa: E402
from hseg.timing import random_cache  # noqa: E402
from hseg.train import train_variant  # noqa: E402

REAL_SPLITS = {"train": 2532, "dev": 294, "val": 707}   # train minus dev, dev (data.dev_fraction 0.1), val


def scratch_config(params: dict, variant: str):
    """The variant's recipe with random initial weights (no ImageNet download): the same arithmetic."""
    return train_config(params, variant, study_settings(params).seeds[0]).model_copy(update={"init": "scratch"})


def train_one(variant: str, work: Path) -> dict:
    """In a process of its own, as the train stage: train ``variant``; the end of every resume-state save."""
    params = load_params(work / "params.yaml")
    cfg = scratch_config(params, variant)
    validation = work / f"{layout.validation_split(params)}.pt"  # as the train stage picks
    train_cache, dev_cache = load_cache(work / "train.pt"), load_cache(validation)
    save_ends = []
    save = ResumeState.save

    def timed_save(self, *args, **kwargs):
        save(self, *args, **kwargs)
        save_ends.append(time.perf_counter())

    ResumeState.save = timed_save
    out = work / variant
    train_variant(cfg, class_tree(params, train_cache["leaf_names"]), train_cache, dev_cache,
                  weights_out=out / "model.pt", live_dir=out / "live", resume_path=out / "resume.pt", progress=False)
    whole = [b - a for a, b in zip(save_ends, save_ends[1:])]   # epoch 2 onwards: save end to save end
    return {"epochs": cfg.epochs, "whole_epoch_s": whole}


def evaluate_one(variant: str, work: Path) -> dict:
    """In a process of its own, as the evaluate stage: score the weights train_one wrote on the val cache."""
    params = load_params(work / "params.yaml")
    val_cache = load_cache(work / "val.pt")
    scores, _ = evaluate_weights(work / variant / "model.pt", val_cache, class_tree(params, val_cache["leaf_names"]),
                                 evaluate_settings(params), progress=False)
    return {"miou2": scores["miou2"]}


def child(mode: str, variant: str, work: Path) -> tuple[dict, float]:
    """Run this script as a stage-like process; (its result, its wall seconds from start to exit)."""
    start = time.perf_counter()
    done = subprocess.run([sys.executable, __file__, mode, variant, "--work", str(work)], capture_output=True,
                          text=True)
    wall = time.perf_counter() - start
    if done.returncode:
        raise UserError(f"{variant}: {mode} failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.split("RESULT", 1)[1]), wall


def time_variant(variant: str, work: Path, n_train: int, project_epochs: int) -> dict:
    trained, train_wall = child("--train-one", variant, work)
    scored, evaluate_wall = child("--evaluate-one", variant, work)
    epochs, whole = trained["epochs"], trained["whole_epoch_s"]
    epoch_s = whole[-1] if whole else None   # the last whole epoch: past cuDNN's autotuning and warm-up
    return {"variant": variant, "epochs": epochs, "train_wall_s": train_wall, "evaluate_wall_s": evaluate_wall,
            "whole_epoch_s": whole, "epoch_s": epoch_s, "epoch_img_s": n_train / epoch_s if epoch_s else None,
            "train_img_s": epochs * n_train / train_wall, "miou2": scored["miou2"],
            "projected_s": (train_wall + (project_epochs - epochs) * epoch_s + evaluate_wall
                            if epoch_s else None)}


def projected_wall(seconds: list[float], jobs: int) -> float:
    """The wall time of runs of these durations started in order, each as soon as one of ``jobs``
    slots is free (as the ThreadPoolExecutor below runs them)."""
    slots = [0.0] * jobs
    for s in seconds:
        heapq.heappush(slots, heapq.heappop(slots) + s)
    return max(slots)


def twins(variants: list[str]) -> dict[str, str]:
    """{variant: the variant timed for it}: the first of each arch + encoder (scratch and ImageNet
    variants differ only in their starting weights, so they cost the same per step)."""
    first = {}
    for v in variants:
        arch, encoder, _ = parse_variant(v)
        first.setdefault((arch, encoder), v)
    return {v: first[parse_variant(v)[:2]] for v in variants}


def study_projection(variants: list[str], timed: dict[str, dict], seeds: int, jobs: int) -> dict:
    """Every run of the study (each variant once per seed, seed by seed), projected from the timed variant
    standing for it; None where one is missing."""
    stand_in = twins(variants)
    per_variant = {v: (timed.get(v) or timed.get(stand_in[v]) or {}).get("projected_s") for v in variants}
    complete = None not in per_variant.values()
    runs = [per_variant[v] for _ in range(seeds) for v in variants]
    return {"variants": len(variants), "seeds": seeds, "runs": len(runs), "jobs": jobs,
            "timed_as": {v: stand_in[v] if v not in timed else v for v in variants},
            "projected_wall_s": projected_wall(runs, jobs) if complete else None}


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python benchmarks/study_timing.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", help="a profile under profiles/, laid over the committed params.yaml "
                                          "(default: params.yaml alone)")
    parser.add_argument("-S", "--set-param", dest="settings", action="append", default=[], metavar="KEY=VALUE",
                        help="an override after the profile's, as `python -m hseg exp -S` takes it (repeatable)")
    parser.add_argument("--variants", nargs="+", help="default: every variant of the study")
    parser.add_argument("--one-per-arithmetic", action="store_true",
                        help="time one variant of each arch + encoder; the others take its figures")
    parser.add_argument("--epochs", type=int, default=2, help="epochs trained per variant (at least 2)")
    parser.add_argument("--project-epochs", type=int, help="epochs per run of the projection (default: train.epochs)")
    parser.add_argument("--jobs", type=int, default=1, help="variants trained at once, each in its own processes")
    parser.add_argument("--real", action="store_true", help="use data/prepared instead of random caches")
    for split, n in REAL_SPLITS.items():
        parser.add_argument(f"--{split}-images", type=int, default=n, help=f"random {split} images (default {n})")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)          # internal: a child's folder
    parser.add_argument("--train-one", help=argparse.SUPPRESS)              # internal: a child's variant
    parser.add_argument("--evaluate-one", help=argparse.SUPPRESS)
    return parser


def check_args(args, params: dict) -> list[str]:
    """The variants to time; every bad argument refused before any work."""
    if args.epochs < 2:
        raise UserError(f"--epochs {args.epochs}: at least 2 (the projection needs a whole epoch after the first)")
    if args.jobs < 1:
        raise UserError(f"--jobs {args.jobs}: at least 1")
    for split in REAL_SPLITS:
        if getattr(args, f"{split}_images") < 1:
            raise UserError(f"--{split}-images must be at least 1")
    variants = args.variants or study_variants(params)
    for v in variants:
        scratch_config(params, v)  # fail on a bad name or recipe before any work
    return list(dict.fromkeys(twins(variants).values())) if args.one_per_arithmetic else variants


def write_caches(args, params: dict, work: Path) -> None:
    if args.real:
        for split in REAL_SPLITS:
            source = layout.cache_file(split)
            if split == "dev" and not source.is_file():
                continue  # data.dev_fraction 0: training validates on val
            if not source.is_file():
                raise UserError(f"--real: {source} is missing: run `dvc repro prepare` first")
            (work / f"{split}.pt").symlink_to(source.resolve())
        return
    size, gen = prepare_settings(params).size, torch.Generator().manual_seed(0)
    save_cache(random_cache(args.train_images, size, None, gen), work / "train.pt")
    save_cache(random_cache(args.dev_images, size, None, gen), work / "dev.pt")
    save_cache(random_cache(args.val_images, size, (375, 500), gen), work / "val.pt")


def main(args):
    if args.train_one or args.evaluate_one:
        result = train_one(args.train_one, args.work) if args.train_one else evaluate_one(args.evaluate_one, args.work)
        print("RESULT", json.dumps(result), flush=True)
        return

    # stopped by a time limit (gpu_check.sh): exit through the with-blocks, so the caches are removed
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    params, source = profile_params(args.profile, args.settings)
    project_epochs = args.project_epochs or params["train"]["epochs"]
    params["train"]["epochs"] = args.epochs
    params["train"].setdefault("scheduler", {})["T_0"] = args.epochs
    all_variants = args.variants or study_variants(params)
    variants = check_args(args, params)
    seeds = len(study_settings(params).seeds)
    n_train = len(load_cache(layout.cache_file("train"))["ids"]) if args.real else args.train_images
    print(f"recipe: {'profile ' + args.profile if args.profile else 'params.yaml'} from {source}"
          + (f", -S {' '.join(args.settings)}" if args.settings else "")
          + f"; {args.epochs} epochs timed, projected at {project_epochs}", flush=True)
    with tempfile.TemporaryDirectory(prefix="hseg-study-timing-") as tmp:
        work = Path(tmp)
        (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        write_caches(args, params, work)
        results, lock = {}, threading.Lock()
        start = time.perf_counter()

        def run_one(variant: str) -> dict:
            r = time_variant(variant, work, n_train, project_epochs)
            print(f"{variant:32s} {r['epochs']} epochs: train process {r['train_wall_s']:7.1f}s, a whole epoch "
                  f"{r['epoch_s']:6.1f}s ({r['epoch_img_s']:7.1f} img/s), evaluate process "
                  f"{r['evaluate_wall_s']:5.1f}s; projected run {r['projected_s'] / 60:6.1f} min", flush=True)
            with lock:
                results[variant] = r
                write_json(args, all_variants, results, seeds, source, time.perf_counter() - start, False)
            return r

        with ThreadPoolExecutor(args.jobs) as pool:
            list(pool.map(run_one, variants))
        wall = time.perf_counter() - start
    summary = write_json(args, all_variants, results, seeds, source, wall, True)
    study = summary["study"]
    print(f"\n{len(variants)} variant(s) timed on {summary['device']}, {args.jobs} at a time, "
          f"{'real' if args.real else 'random'} data: {wall:.1f}s wall in all")
    if study["projected_wall_s"] is not None:
        print(f"projected study ({study['variants']} variants x {seeds} seed(s) = {study['runs']} runs, "
              f"{project_epochs} epochs each, {args.jobs} at a time): {study['projected_wall_s'] / 60:.1f} min wall")


def write_json(args, variants: list[str], results: dict, seeds: int, source: str, wall: float,
               complete: bool) -> dict:
    """The run's figures so far, written to --json if given (complete: whether every variant finished)."""
    summary = {"device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu", "jobs": args.jobs,
               "profile": args.profile, "settings": args.settings, "params_source": source, "real_data": args.real,
               "complete": complete, "wall_s": wall, "epochs": args.epochs,
               "study": study_projection(variants, results, seeds, args.jobs),
               "variants": [results[v] for v in variants if v in results]}
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2))
    return summary


if __name__ == "__main__":
    run_cli(main, parser())
