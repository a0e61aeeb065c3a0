"""Plan a profile's schedule for this machine and a time budget.

    python -m hseg plan hour --minutes 60                          # the hour model, sized to this machine
    python -m hseg plan hour --minutes 30 --json results/<run>/plan.json
    python -m hseg plan hour --minutes 120 --shares 6,3,3,2,6      # other proportions of epochs per side

It lays the profile over the committed params.yaml as `python -m hseg exp` does (with your -S
settings), then times here, with the recipe's model, loss, optimizer, precision and batch size on
random tensors of the caches' shape: a few training steps at each progressive side and at the full
side, one validation pass (dev, at the cache side), one resume-state save, and the evaluate stage's
scoring of val (a sample of images at 500 x 375, with the test-time augmentation of params'
evaluate section, scaled to the split). Each stage's process start and imports are timed too, and
prepare where its cache is not built yet. It then chooses the most epochs whose predicted minutes
stay within the budget less the margin, the sides sharing them by a fixed rule (by default the
profile's own shares, e.g. hour's 11, 6, 4, 1 and 6 of 28 epochs at 96, 128, 160, 192 and 224 px;
--shares sets others), in whole epochs with at least one at the full side. The learning-rate
schedule (warmup_cosine) spans epochs x steps per epoch, and every epoch has the same steps, so it
ends at the plan's last step. It prints the plan and the `python -m hseg exp` command that runs it,
whose -S settings put the plan into the run's params.yaml and dvc.lock.
benchmarks/plan_accuracy.py compares a plan with the run it planned.
"""
from __future__ import annotations

import argparse
import copy
import dataclasses
import datetime
import json
import math
import os
import shlex
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path
from typing import Sequence

from . import exp, layout
from .errors import UserError
from .settings.data import data_paths, data_settings, prepare_settings
from .settings.evaluate import evaluate_settings
from .settings.study import study_settings
from .settings.train import train_config

DEFAULT_MARGIN = 0.10
# Pascal-Part's split sizes (train_id.txt, val_id.txt; dev = the train ids that data.dev_fraction 0.1 holds
# out), used where data.root has no dataset to count them from
PASCAL_PART = {"train_ids": 2826, "val": 707, "dev": {0.0: 0, 0.1: 294}}
VAL_SHAPE = (375, 500)  # a typical val image (height, width): evaluate upsamples its predictions to this size
# prepare where data.root has no dataset to time it on: 3,533 images (train + val) decoded and cached at 256 px
# in 17.2 s, interpreter start and saving included (benchmarks/bench.py, docs/benchmarks.md, 2-core AMD EPYC Zen 4)
PREPARE_DOCUMENTED_S_PER_IMAGE = 17.2 / 3533
PREPARE_SAMPLE = 32     # images decoded to time prepare where the dataset is here
PLAN_KEYS = ("epochs", "progressive", "val_every")  # the train keys a plan sets


# --- the arithmetic: measured seconds -> epochs per side (no timing here) ------------------------

@dataclasses.dataclass(frozen=True)
class Costs:
    """Measured seconds, for all runs of the experiment together (variants x seeds)."""
    epoch_s: tuple[float, ...]  # one training epoch in each side group: the progressive sides, then the full side
    validation_s: float         # one validation pass during training
    save_s: float               # one resume-state save (after every epoch)
    evaluate_s: float           # the evaluate stages' scoring
    fixed_s: float              # paid once whatever the epochs: process starts and imports, prepare, dvc


@dataclasses.dataclass(frozen=True)
class Plan:
    epochs: tuple[int, ...]     # per side group, as Costs.epoch_s
    val_every: int
    seconds: float              # predicted, for the whole experiment

    @property
    def total_epochs(self) -> int:
        return sum(self.epochs)


class BudgetTooSmall(UserError):
    """The budget does not hold the smallest plan; ``minimum_minutes`` does (with the margin)."""

    def __init__(self, message: str, minimum_minutes: float):
        super().__init__(message)
        self.minimum_minutes = minimum_minutes


def split_epochs(total: int, shares: Sequence[Fraction]) -> tuple[int, ...]:
    """``total`` epochs split between the side groups in proportion to ``shares`` (the full side last),
    in whole epochs: each group ends where the rounded running share of ``total`` ends (half up), so
    the counts add up to ``total`` exactly; the full side keeps at least one epoch."""
    whole = sum(shares)
    ends, running = [], Fraction(0)
    for share in shares[:-1]:
        running += Fraction(share)
        ends.append(min(math.floor(total * running / whole + Fraction(1, 2)), total - 1))
    ends.append(total)
    return tuple(end - start for start, end in zip([0] + ends[:-1], ends))


def validations(epochs: int, val_every: int) -> int:
    """Validated epochs: every ``val_every``-th, and the last one always."""
    return math.ceil(epochs / val_every)


def predicted_seconds(epochs: Sequence[int], costs: Costs, val_every: int) -> float:
    total = sum(epochs)
    return (sum(n * s for n, s in zip(epochs, costs.epoch_s)) + validations(total, val_every) * costs.validation_s
            + total * costs.save_s + costs.evaluate_s + costs.fixed_s)


def logged_epoch_seconds(epochs: Sequence[int], epoch_s: Sequence[float], validation_s: float,
                         val_every: int) -> list[float]:
    """The predicted seconds of each epoch as the train stage logs them (dvclive's train/seconds: the
    training and, on validated epochs, the validation; not the resume-state save), for one run."""
    total, out = sum(epochs), []
    for group, n in enumerate(epochs):
        for _ in range(n):
            epoch = len(out) + 1
            out.append(epoch_s[group] + (validation_s if epoch % val_every == 0 or epoch == total else 0.0))
    return out


def min_epochs(schedule: str, warmup_epochs: float) -> int:
    """The fewest epochs whose learning rate decays to its floor at the last step: warmup_cosine warms up
    for ``warmup_epochs`` and needs at least one step of decay after it."""
    return math.floor(warmup_epochs) + 1 if schedule == "warmup_cosine" else 1


def choose_plan(costs: Costs, budget_s: float, margin: float, shares: Sequence[Fraction],
                val_every: int | None, fewest: int = 1) -> Plan:
    """The plan with the most epochs whose predicted seconds stay within ``budget_s`` x (1 - margin).
    ``val_every`` None validates the last epoch only (val_every = the planned epochs).
    BudgetTooSmall where not even ``fewest`` epochs fit, naming the minutes they need."""
    if min(costs.epoch_s) <= 0:
        raise ValueError(f"seconds per epoch must be above 0, got {costs.epoch_s}")
    available = budget_s * (1 - margin)

    def plan(total: int) -> Plan:
        every = val_every or total
        epochs = split_epochs(total, shares)
        return Plan(epochs, every, predicted_seconds(epochs, costs, every))

    smallest = plan(fewest)
    if smallest.seconds > available:
        need = smallest.seconds / (1 - margin) / 60
        raise BudgetTooSmall(
            f"a {budget_s / 60:g}-minute budget less the {margin:.0%} margin leaves {available / 60:.1f} minutes, "
            f"but the smallest plan ({fewest} epoch(s), at least one at the full side, with its validation, "
            f"evaluation and overheads) is predicted at {smallest.seconds / 60:.1f} minutes on this machine: "
            f"it needs at least {need:.1f} minutes (--minutes {math.ceil(need)} or more)", need)
    # more epochs cost more (every epoch costs > 0 s), but rounding can make a plan with more epochs
    # cheaper than one with fewer: look at every total up to where the cheapest side alone overflows
    last = len(shares) - 1
    cheapest = min(s for k, (s, share) in enumerate(zip(costs.epoch_s, shares)) if share or k == last)
    largest = math.floor(available / (cheapest + costs.save_s))  # no epoch costs less than this
    best = smallest
    for total in range(fewest + 1, largest + 1):
        candidate = plan(total)
        if candidate.seconds <= available:
            best = candidate
    return best


def parse_shares(text: str) -> tuple[Fraction, ...]:
    """'8,4,3,1,4' -> exact fractions (numbers >= 0, at least one above 0)."""
    try:
        shares = tuple(Fraction(part.strip()) for part in text.split(","))
    except (ValueError, ZeroDivisionError):
        raise UserError(f"--shares {text!r}: expected numbers separated by commas, e.g. 8,4,3,1,4") from None
    if any(s < 0 for s in shares) or not any(shares):
        raise UserError(f"--shares {text!r}: the shares must be >= 0 and not all 0")
    return shares


def parse_margin(text: str) -> float:
    """'10%' or '0.1' -> 0.1, from 0 to below 1."""
    try:
        value = float(text[:-1]) / 100 if text.endswith("%") else float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: a fraction such as 0.1, or a percentage such as 10%") from None
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: the margin must be from 0 to below 1 (0 % to below 100 %)")
    return value


# --- the params the plan starts from --------------------------------------------------------------

def setting_key(setting: str) -> str:
    return setting.lstrip("~+").partition("=")[0]


@dataclasses.dataclass(frozen=True)
class Recipe:
    """What the plan reads from the params, checked before anything is timed."""
    variants: tuple[str, ...]
    seeds: tuple[int, ...]
    configs: dict               # variant -> TrainConfig (the first seed's)
    sides: tuple[int, ...]      # each side group's side in px: the progressive sides, then the full side
    shares: tuple[Fraction, ...]
    val_every: int | None       # None: validate the last epoch only
    fewest: int                 # the fewest epochs a plan may have (min_epochs)


def read_recipe(params: dict, shares: tuple[Fraction, ...] | None) -> Recipe:
    study = study_settings(params)
    overridden = {v: sorted(set(params["variants"].get(v) or {}) & set(PLAN_KEYS)) for v in study.variants}
    for variant, keys in overridden.items():
        if keys:
            raise UserError(f"variants.{variant} overrides train.{', train.'.join(keys)}, which a plan sets for every "
                            f"variant: remove the override (e.g. -S '~variants.{variant}.{keys[0]}')")
    configs = {v: train_config(params, v, study.seeds[0]) for v in study.variants}
    evaluate_settings(params)
    size = prepare_settings(params).size
    base = next(iter(configs.values()))
    if base.processes != 1:
        raise UserError(f"train.processes = {base.processes}: a plan times one training process; "
                        f"plan with -S train.processes=1")
    if base.scheduler.name != "warmup_cosine":
        raise UserError(f"train.scheduler.name = {base.scheduler.name}: a plan ends the learning rate's decay at its "
                        f"last step, which warmup_cosine does; cosine_restarts restarts every T_0 epochs "
                        f"(plan with -S train.scheduler.name=warmup_cosine)")
    full = base.crop or size
    for _, side in base.progressive:
        if side >= full:
            raise UserError(f"train.progressive side {side} is not below the full training side {full} px "
                            f"(train.crop, or prepare.size when crop is 0)")
    smaller = [n for n, _ in base.progressive]
    own = tuple(map(Fraction, [*smaller, base.epochs - sum(smaller)]))
    if shares is not None and len(shares) != len(own):
        sides = ", ".join(f"{s} px" for s in [*(s for _, s in base.progressive), full])
        raise UserError(f"--shares gives {len(shares)} share(s), but the recipe trains at {len(own)} side(s) "
                        f"({sides}): give one share per side, smaller sides first")
    return Recipe(tuple(study.variants), tuple(study.seeds), configs,
                  tuple(s for _, s in base.progressive) + (full,), shares or own,
                  None if base.val_every >= base.epochs else base.val_every,
                  min_epochs(base.scheduler.name, base.scheduler.warmup_epochs))


def plan_settings(plan: Plan, recipe: Recipe) -> list[str]:
    """The -S settings that make the recipe run ``plan``."""
    stages = [[n, side] for n, side in zip(plan.epochs[:-1], recipe.sides[:-1]) if n]
    settings = [f"train.epochs={plan.total_epochs}", f"train.progressive={json.dumps(stages)}"]
    if recipe.val_every is None:
        settings.append(f"train.val_every={plan.val_every}")
    return settings


def run_command(profile: str, user_settings: Sequence[str], settings: Sequence[str]) -> list[str]:
    """`python -m hseg exp` with the user's settings (less the keys the plan sets) and the plan's."""
    planned = {setting_key(s) for s in settings}
    kept = [s for s in user_settings if setting_key(s) not in planned]
    command = ["python", "-m", "hseg", "exp", profile]
    for setting in [*kept, *settings]:
        command += ["-S", setting]
    return command


# --- what this machine does: the measuring ---------------------------------------------------------

def split_sizes(params: dict) -> tuple[dict, str]:
    """({"train": images trained on, "dev": ..., "val": ...}, where the counts come from)."""
    from .dataset import read_ids, split_dev

    fraction = data_settings(params).dev_fraction
    try:
        paths = data_paths(params)
    except UserError:
        paths = None
    if paths:
        fit, dev = split_dev(read_ids(paths.train_ids), fraction)
        return {"train": len(fit), "dev": len(dev), "val": len(read_ids(paths.val_ids))}, f"{paths.root}'s id files"
    if fraction not in PASCAL_PART["dev"]:
        raise UserError(f"data.dev_fraction = {fraction}: without the dataset at {data_settings(params).root} the "
                        f"plan knows the dev split's size for {', '.join(map(str, PASCAL_PART['dev']))} only; "
                        f"`dvc pull data/pascal-part.dvc` first")
    dev = PASCAL_PART["dev"][fraction]
    return ({"train": PASCAL_PART["train_ids"] - dev, "dev": dev, "val": PASCAL_PART["val"]},
            "Pascal-Part's split sizes (no dataset here)")


def cache_built(params: dict) -> bool:
    """Whether data/prepared holds caches at prepare.size with this dev split (prepare need not run)."""
    summary = layout.PREPARED / "summary.json"
    if not (summary.is_file() and layout.cache_file("train").is_file() and layout.cache_file("val").is_file()):
        return False
    built = json.loads(summary.read_text())
    return (built.get("size") == prepare_settings(params).size
            and built.get("dev_fraction") == data_settings(params).dev_fraction)


def prepare_seconds(params: dict, counts: dict) -> tuple[float, str]:
    """Seconds prepare takes at prepare.size: timed on a sample where the dataset is here, else
    the documented constant."""
    images = counts["train"] + counts["dev"] + counts["val"]
    try:
        paths = data_paths(params)
    except UserError:
        return (images * PREPARE_DOCUMENTED_S_PER_IMAGE,
                f"documented: 17.2 s for 3,533 images (benchmarks/bench.py, docs/benchmarks.md), x {images}")
    from .dataset import read_classes, read_ids
    from .prepare import build_cache

    settings = prepare_settings(params)
    sample = read_ids(paths.val_ids)[:PREPARE_SAMPLE]
    classes = len(read_classes(paths.classes_file))
    start = time.perf_counter()
    build_cache(paths.root, sample, classes, settings.size, keep_full_masks=True, workers=1, desc="timing prepare")
    per_image = (time.perf_counter() - start) / len(sample)
    workers = settings.workers or os.cpu_count() or 1
    return (images * per_image / workers,
            f"timed: {len(sample)} images in one process, x {images} images / {workers} worker(s)")


def process_seconds(args: Sequence[str]) -> float:
    """Wall seconds of one python process started with ``args`` (a stage's start and imports)."""
    start = time.perf_counter()
    done = subprocess.run([sys.executable, *args], capture_output=True, text=True)
    if done.returncode:
        raise UserError(f"timing `python {' '.join(args)}` failed: {done.stderr.strip()[-500:]}")
    return time.perf_counter() - start


# the stages' processes, timed by importing each stage's module (what its start costs before its work)
STAGE_STARTS = {"train": ["-c", "import stages.train"], "evaluate": ["-c", "import stages.evaluate"],
                "summarize": ["-c", "import stages.summarize"], "plot": ["-c", "import stages.plot"],
                "dvc": ["-m", "dvc", "version"]}


def measure_overheads(runs: int, prepare: tuple[float, str] | None, say=print) -> dict:
    """{name: {"count", "seconds" (each), "how"}} for what an experiment pays once per stage or run."""
    process_seconds(["-c", "import torch, segmentation_models_pytorch"])  # warms the page cache, as a run's first stage
    counts = {"train": runs, "evaluate": runs, "summarize": 1, "plot": 1, "dvc": 1}
    out = {}
    for name, args in STAGE_STARTS.items():
        seconds = process_seconds(args)
        out[f"{name} start"] = {"count": counts[name], "seconds": seconds, "how": f"timed: python {' '.join(args)}"}
        say(f"  {name} process start and imports: {seconds:.1f} s")
    if prepare:
        out["prepare"] = {"count": 1, "seconds": prepare[0], "how": prepare[1]}
        say(f"  prepare: {prepare[0]:.1f} s ({prepare[1]})")
    return out


def measure_variant(cfg, tree, evaluate, sides: Sequence[int], cache_side: int, counts: dict, *, steps: int,
                    sample: int, save_dir: Path, say=print) -> dict:
    """Seconds of one run of ``cfg`` here, on random tensors of the caches' shape: a training step at
    each side (0 = the full side; one untimed warm-up step each, then ``steps`` timed in turn), one
    validation pass, one resume-state save and the evaluation, the last two passes timed on ``sample``
    images and scaled to their split."""
    import torch

    from .checkpoint import ResumeState
    from .device import pick_device, prepare_model, resolve_precision
    from .evaluate import evaluate_model
    from .timing import random_cache, timed_round_robin, training_rig
    from .train import check_batching, to_training_device, validate

    device = pick_device(cfg.device)
    cfg = cfg.model_copy(update={"precision": resolve_precision(cfg.precision, device)})
    steps_per_epoch = check_batching(cfg, 1, counts["train"])
    gen = torch.Generator().manual_seed(0)
    rig = training_rig(cfg, tree, device, cache_side, steps_per_epoch, gen)
    step_s = timed_round_robin({side: rig.step_at(side) for side in sides}, steps)
    for side in sides:
        say(f"  {cfg.variant} at {side or cache_side} px: {step_s[side]:.3f} s a step x {steps_per_epoch} steps")

    net, learner = rig.net, rig.learner
    kept = learner.ema.module if learner.ema is not None else net
    val_split = "dev" if counts["dev"] else "val"
    val_images = min(sample, counts[val_split])
    checked = random_cache(val_images, cache_side, None, gen)
    checked = dict(checked, **dict(zip(("images", "masks"), to_training_device(checked, device))))
    eval_device = pick_device(evaluate.device)
    scored = random_cache(min(sample, counts["val"]), cache_side, VAL_SHAPE, gen)
    scorer = prepare_model(kept if eval_device == device else copy.deepcopy(kept), eval_device)
    resume = ResumeState(save_dir / "resume.pt", "plan")
    once = timed_round_robin({
        "validation": lambda: validate(kept, checked, tree, learner.loss_fn, cfg.head, device, cfg.precision,
                                       cfg.batch_size),
        "save": lambda: resume.save(1, net, learner.optimizer, rig.scheduler, learner.scaler, learner.gen, [],
                                   ema=learner.ema),
        "evaluate": lambda: evaluate_model(scorer.eval(), cfg.head, scored, tree, eval_device, evaluate.precision,
                                           evaluate.batch_size, False, evaluate.flip_tta, evaluate.tta_sides)}, 1)
    validation_s = once["validation"] * counts[val_split] / val_images
    evaluate_s = once["evaluate"] * counts["val"] / len(scored["ids"])
    say(f"  {cfg.variant}: validation on {val_split} {validation_s:.1f} s ({val_images} of {counts[val_split]} images "
        f"timed), resume-state save {once['save']:.2f} s, evaluation of val {evaluate_s:.1f} s "
        f"({len(scored['ids'])} of {counts['val']} images timed)")
    return {"precision": cfg.precision, "device": str(device), "steps_per_epoch": steps_per_epoch,
            "step_s": [step_s[side] for side in sides], "epoch_s": [step_s[side] * steps_per_epoch for side in sides],
            "validation_s": validation_s, "validation_split": val_split, "save_s": once["save"],
            "evaluate_s": evaluate_s}


def total_costs(measured: dict, seeds: int, overheads: dict) -> Costs:
    """The experiment's Costs: each variant's seconds x its seeds, and the overheads x their counts."""
    variants = measured.values()
    return Costs(epoch_s=tuple(seeds * sum(side) for side in zip(*(m["epoch_s"] for m in variants))),
                 validation_s=seeds * sum(m["validation_s"] for m in variants),
                 save_s=seeds * sum(m["save_s"] for m in variants),
                 evaluate_s=seeds * sum(m["evaluate_s"] for m in variants),
                 fixed_s=sum(o["count"] * o["seconds"] for o in overheads.values()))


# --- the command -----------------------------------------------------------------------------------

def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m hseg plan", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("profile", help=f"a profile under {exp.PROFILES}/: {', '.join(exp.profile_names()) or 'none'}")
    parser.add_argument("--minutes", type=float, default=60.0, help="the budget for the whole experiment (default 60)")
    parser.add_argument("--margin", type=parse_margin, default=DEFAULT_MARGIN,
                        help=f"the share of the budget left unplanned, e.g. 0.1 or 10%% "
                             f"(default {DEFAULT_MARGIN:.0%}%)")
    parser.add_argument("--shares", help="how the sides share the epochs, one number per side, smaller sides first "
                                         "(default: the profile's own epochs per side)")
    parser.add_argument("-S", "--set-param", dest="settings", action="append", default=[], metavar="KEY=VALUE",
                        help="an override after the profile's, as `python -m hseg exp -S` takes it (repeatable)")
    parser.add_argument("--steps", type=int, default=5,
                        help="timed training steps per side, after one warm-up step each (default 5)")
    parser.add_argument("--images", type=int, default=32,
                        help="images timed for validation and evaluation, scaled to their split (default 32)")
    parser.add_argument("--json", type=Path, help="also write the plan here (e.g. results/<run>/plan.json)")
    return parser


def check_arguments(args) -> tuple[Fraction, ...] | None:
    """Refuse bad arguments before anything is timed; the parsed --shares."""
    if not (math.isfinite(args.minutes) and args.minutes > 0):
        raise UserError(f"--minutes {args.minutes:g}: the budget must be a positive number of minutes")
    if args.steps < 1 or args.images < 1:
        raise UserError("--steps and --images must be at least 1")
    return parse_shares(args.shares) if args.shares else None


def run(args) -> int:
    from .settings.classes import class_tree
    from .timing import LEAF_NAMES  # Pascal-Part's classes, as the random caches label them
    from .versions import machine

    shares = check_arguments(args)
    params, _ = exp.profile_params(args.profile, args.settings)  # what `python -m hseg exp` would run
    recipe = read_recipe(params, shares)
    counts, counted = split_sizes(params)
    cache_side = prepare_settings(params).size
    tree = class_tree(params, LEAF_NAMES)
    here = machine()
    print(f"timing {', '.join(recipe.variants)} on {here['gpu'] or here['cpu']} "
          f"({len(recipe.seeds)} seed(s); {counts['train']} train, {counts['dev']} dev, {counts['val']} val images: "
          f"{counted})", flush=True)
    save_dir = layout.MODELS if layout.MODELS.is_dir() else None  # where the train stage writes its resume state
    with tempfile.TemporaryDirectory(prefix=".plan-", dir=save_dir) as tmp:
        measured = {v: measure_variant(cfg, tree, evaluate_settings(params), [*recipe.sides[:-1], 0], cache_side,
                                       counts, steps=args.steps, sample=args.images, save_dir=Path(tmp))
                    for v, cfg in recipe.configs.items()}
    prepare = None if cache_built(params) else prepare_seconds(params, counts)
    overheads = measure_overheads(len(recipe.variants) * len(recipe.seeds), prepare)
    costs = total_costs(measured, len(recipe.seeds), overheads)
    plan = choose_plan(costs, args.minutes * 60, args.margin, recipe.shares, recipe.val_every, recipe.fewest)
    settings = plan_settings(plan, recipe)
    params = exp.apply_settings(params, settings)
    for variant in recipe.variants:
        train_config(params, variant, recipe.seeds[0])  # the planned recipe is a valid one
    command = run_command(args.profile, args.settings, settings)
    print(report(args, recipe, measured, overheads, costs, plan, here, settings, command))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(plan_record(args, recipe, counts, counted, measured, overheads, costs, plan,
                                                    here, settings, command), indent=2) + "\n")
        print(f"plan written to {args.json}")
    return 0


def report(args, recipe: Recipe, measured: dict, overheads: dict, costs: Costs, plan: Plan, here: dict,
           settings: list[str], command: list[str]) -> str:
    first = next(iter(measured.values()))
    runs = len(recipe.variants) * len(recipe.seeds)
    lines = [f"\nplan for profile {args.profile}: {', '.join(recipe.variants)} x {len(recipe.seeds)} seed(s) = "
             f"{runs} run(s) on {here['cpu']} ({', '.join(here['isa']) or 'no listed ISA flags'})"
             + (f", GPU {here['gpu']}" if here["gpu"] else "") + f", {first['device']}, {first['precision']}",
             f"epochs per side by shares {':'.join(str(s) for s in recipe.shares)}"
             + (" (--shares)" if args.shares else " (the recipe's own epochs per side)"), "",
             f"{'side':>6} {'epochs':>7} {'s/epoch':>9} {'minutes':>8}"]
    for side, n, seconds in zip(recipe.sides, plan.epochs, costs.epoch_s):
        lines.append(f"{side:>6} {n:>7} {seconds:>9.1f} {n * seconds / 60:>8.2f}")
    count = validations(plan.total_epochs, plan.val_every)
    rows = [(f"validation on {first['validation_split']} ({count} x {costs.validation_s:.1f} s)",
             count * costs.validation_s),
            (f"resume-state saves ({plan.total_epochs} x {costs.save_s:.2f} s)", plan.total_epochs * costs.save_s),
            (f"evaluation of val ({runs} run(s))", costs.evaluate_s)]
    rows += [(f"{name} ({o['count']} x {o['seconds']:.1f} s)", o["count"] * o["seconds"])
             for name, o in overheads.items()]
    lines += [f"{what:<48} {seconds / 60:>8.2f}" for what, seconds in rows]
    lines += [f"{'predicted total':<48} {plan.seconds / 60:>8.2f} of {args.minutes:g} minutes "
              f"(at most {args.minutes * (1 - args.margin):.1f} with the {args.margin:.0%} margin)", "",
              "not timed: DVC's hashing and caching of outputs, evaluate's writing of its details, the plot "
              "stage's drawing (the margin is for them)", "",
              "settings: " + " ".join(f"-S {shlex.quote(s)}" for s in settings),
              "run it:   " + shlex.join(command)]
    return "\n".join(lines)


def plan_record(args, recipe: Recipe, counts: dict, counted: str, measured: dict, overheads: dict, costs: Costs,
                plan: Plan, here: dict, settings: list[str], command: list[str]) -> dict:
    """The plan as JSON: what was measured, what was chosen, what it predicts, and where."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = None
    count = validations(plan.total_epochs, plan.val_every)
    return {
        "profile": args.profile, "settings": list(args.settings), "budget_minutes": args.minutes,
        "margin": args.margin, "shares": [str(s) for s in recipe.shares], "machine": here, "commit": commit,
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "runs": {"variants": list(recipe.variants), "seeds": list(recipe.seeds)},
        "images": dict(counts, source=counted),
        "measured": {"timed_steps": args.steps, "timed_images": args.images, "variants": measured,
                     "overheads": overheads},
        "plan": {"sides": list(recipe.sides), "epochs": list(plan.epochs), "total_epochs": plan.total_epochs,
                 "val_every": plan.val_every, "validations": count},
        "predicted": {"train_s": sum(n * s for n, s in zip(plan.epochs, costs.epoch_s)),
                      "validation_s": count * costs.validation_s, "save_s": plan.total_epochs * costs.save_s,
                      "evaluate_s": costs.evaluate_s, "fixed_s": costs.fixed_s, "total_s": plan.seconds,
                      "total_minutes": plan.seconds / 60},
        "overrides": settings, "command": shlex.join(command)}
