"""The study's runs (one variant with one seed each), numbered in the order DVC expands dvc.yaml's
train/evaluate matrix: archs x encoders x inits x seeds. A cluster job picks its run by index.

    python -m hseg runs                  # every run with its index
    python -m hseg runs --count          # how many (a SLURM array is --array=0-<count - 1>)
    python -m hseg runs --index 5        # run 5's DVC stages: train@<variant>-<seed> evaluate@<variant>-<seed>

tools/run_one.sh INDEX runs one of them and pushes it to the DVC remote (docs/scaling.md).
"""
from __future__ import annotations

import argparse
import itertools

from .errors import UserError
from .settings.base import load_params
from .settings.study import study_settings

STAGES = ("train", "evaluate")  # the matrix stages of one run, in the order they run


def study_runs(params: dict) -> list[tuple[str, int]]:
    """(variant, seed) of every run, in DVC's matrix order (itertools.product of the matrix keys)."""
    study = study_settings(params)
    return [(f"{arch}-{encoder}-{init}", seed)
            for arch, encoder, init, seed in itertools.product(study.archs, study.encoders, study.inits, study.seeds)]


def stage_names(variant: str, seed: int) -> list[str]:
    """DVC's names of a run's stages: the matrix values joined by '-' after '<stage>@'."""
    return [f"{stage}@{variant}-{seed}" for stage in STAGES]


def run_at(params: dict, index: int) -> tuple[str, int]:
    runs = study_runs(params)
    if not 0 <= index < len(runs):
        raise UserError(f"run index {index} is out of range: the study has {len(runs)} runs, "
                        f"indices 0 to {len(runs) - 1} (python -m hseg runs lists them)")
    return runs[index]


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m hseg runs", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    what = parser.add_mutually_exclusive_group()
    what.add_argument("--index", type=int, metavar="N", help="print run N's DVC stage names, one per line")
    what.add_argument("--count", action="store_true", help="print the number of runs")
    parser.add_argument("--params", default="params.yaml",
                        help="params file whose study matrix to read (default: params.yaml, as dvc repro reads it)")
    return parser


def run(args) -> int:
    params = load_params(args.params)
    if args.index is not None:
        print("\n".join(stage_names(*run_at(params, args.index))))
    elif args.count:
        print(len(study_runs(params)))
    else:
        for index, (variant, seed) in enumerate(study_runs(params)):
            print(f"{index}\t{variant}\t{seed}")
    return 0
