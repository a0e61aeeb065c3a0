"""Where each stage reads and writes, relative to the repository root (mirrors dvc.yaml).

A *run* is one variant trained with one seed, named ``<arch>-<encoder>-<init>-s<seed>``."""
import re
from pathlib import Path

from .errors import UserError

PREPARED = Path("data/prepared")
MODELS = Path("models")
METRICS = Path("metrics")
RUN_METRICS = METRICS / "runs"
SUMMARY = METRICS / "summary.json"
PLOTS = Path("plots")
LIVE = Path("dvclive")


def run_name(variant: str, seed: int) -> str:
    return f"{variant}-s{seed}"


def split_run(run: str) -> tuple[str, int]:
    """'unet-resnet34-scratch-s42' -> ('unet-resnet34-scratch', 42)."""
    match = re.fullmatch(r"(.+)-s(\d+)", run)
    if not match:
        raise UserError(f"run name {run!r}: expected <variant>-s<seed>, e.g. unet-resnet34-scratch-s42")
    return match[1], int(match[2])


DEV_IDS = PREPARED / "dev_ids.txt"                 # the held-out train ids, one per line


def stage_name(stage: str, run: str) -> str:
    """dvc.yaml's name for a matrix stage of a run: DVC joins the matrix values with '-'."""
    variant, seed = split_run(run)
    return f"{stage}@{variant}-{seed}"


def cache_file(split: str) -> Path:
    """train (minus dev), dev (when data.dev_fraction > 0) or val."""
    return PREPARED / f"{split}.pt"


def validation_split(params: dict) -> str:
    """The split training validates on, decided by the settings, not by which caches exist: dev when
    data.dev_fraction > 0 (prepare holds it out of train and checks the value), else val (the original
    protocol). A dev cache the settings call for but prepare has not built is load_cache's error."""
    fraction = (params.get("data") or {}).get("dev_fraction")
    if fraction is None:
        raise UserError("params.yaml: data.dev_fraction is missing (0 validates on val, e.g. 0.1 on a dev split)")
    return "dev" if fraction > 0 else "val"


def weights_file(run: str) -> Path:
    return MODELS / f"{run}.pt"


def resume_file(run: str) -> Path:
    return MODELS / ".resume" / f"{run}.pt"   # git-ignored, never a DVC output


def live_dir(run: str) -> Path:
    return LIVE / run                          # dvclive's per-epoch metrics of the train stage


def metrics_file(run: str) -> Path:
    return RUN_METRICS / f"{run}.json"


def details_file(run: str) -> Path:
    return METRICS / "details" / f"{run}.npz"


FIGURES = PLOTS / "figures"
CURVES = PLOTS / "curves"          # every run's per-epoch curves in one long table, for overlays
IOU_TABLE = PLOTS / "iou_per_class.csv"
