"""Where each stage reads and writes, relative to the repository root (mirrors dvc.yaml)."""
from pathlib import Path

PREPARED = Path("data/prepared")
MODELS = Path("models")
METRICS = Path("metrics")
PLOTS = Path("plots")
LIVE = Path("dvclive")


def cache_file(split: str) -> Path:
    return PREPARED / f"{split}.pt"


def weights_file(variant: str) -> Path:
    return MODELS / f"{variant}.pt"


def resume_file(variant: str) -> Path:
    return MODELS / ".resume" / f"{variant}.pt"   # git-ignored, never a DVC output


def live_dir(variant: str) -> Path:
    return LIVE / variant                          # dvclive's per-epoch metrics of the train stage


def metrics_file(variant: str) -> Path:
    return METRICS / f"{variant}.json"


def details_file(variant: str) -> Path:
    return METRICS / "details" / f"{variant}.npz"


FIGURES = PLOTS / "figures"
CURVES = PLOTS / "curves"          # every variant's per-epoch curves in one long table, for overlays
IOU_TABLE = PLOTS / "iou_per_class.csv"
