"""Per-epoch training metrics, logged with dvclive (DVC's own logger) and read back for figures.

Each variant logs to ``dvclive/<variant>/``: ``metrics.json`` (the last epoch's values, listed by
``dvc exp show`` and ``dvc metrics show``) and ``plots/metrics/{train,val}/<name>.tsv`` (one row per
epoch, shown by ``dvc plots show`` and live in DVC's tools while ``dvc exp run`` trains). The step
is the epoch number (1, 2, ...); validation metrics appear on validated epochs only.
"""
from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

from . import layout
from .errors import UserError

# history row key -> dvclive metric name
METRICS = {"lr": "train/lr", "train_loss": "train/loss", "seconds": "train/seconds", "val_loss": "val/loss"}


def metric_name(key: str) -> str:
    """'val_miou2' -> 'val/miou2'; the fixed keys by METRICS."""
    return METRICS.get(key) or "val/" + key.removeprefix("val_")


class EpochLog:
    """dvclive logging whose files always equal the given history, also after a resume:
    the directory is cleared and the history so far replayed, so an epoch interrupted between
    logging and checkpointing is never logged twice."""

    def __init__(self, directory: Path, history: list[dict]):
        self.live, self.epoch = _live(directory), 0
        for row in history:
            self.log(row)

    def log(self, row: dict) -> None:
        self.live.step = self.epoch = row["epoch"]
        for key, value in row.items():
            if key != "epoch" and value is not None:
                self.live.log_metric(metric_name(key), value)
        self.live.next_step()  # writes metrics.json and signals the finished step to DVC's tools

    def close(self) -> None:
        self.live.step = self.epoch  # next_step moved on; the summary names the last epoch logged
        self.live.make_summary()


class _NoLive:
    """Stands in for dvclive's Live where dvclive is not installed: logs nothing."""
    step = 0

    def log_metric(self, name, value) -> None:
        pass

    def next_step(self) -> None:
        pass

    def make_summary(self) -> None:
        pass


_said_no_dvclive = False


def _live(directory: Path):
    """A dvclive logger for a pipeline stage: no experiment of its own, no dvc.yaml, no report.

    Without dvclive (a GPU machine with only torch and smp, say) training still runs and writes its
    weights; the per-epoch metrics are not logged, which is said once per process."""
    global _said_no_dvclive
    try:
        from dvclive import Live
    except ImportError:
        if not _said_no_dvclive:
            print(f"dvclive is not installed: per-epoch metrics are not logged ({directory} stays empty); "
                  f"training and its weights are unaffected", file=sys.stderr)
            _said_no_dvclive = True
        return _NoLive()

    class StageLive(Live):
        def _init_dvc(self):
            try:
                super()._init_dvc()
            except Exception as exc:  # dvclive 3.49 raises in a git repository with no commit yet
                if "Empty git repo" not in str(exc):
                    raise

    return StageLive(str(directory), resume=False, save_dvc_exp=False, dvcyaml=None, report=None)


def read_history(directory: Path) -> pd.DataFrame:
    """One row per epoch with columns epoch, lr, train_loss, seconds, val_loss, val_miou0..K
    (val columns NaN on epochs without validation), from a variant's dvclive directory."""
    tables = []
    for tsv in sorted((Path(directory) / "plots" / "metrics").rglob("*.tsv")):
        name = tsv.relative_to(Path(directory) / "plots" / "metrics").with_suffix("").as_posix()
        key = next((k for k, v in METRICS.items() if v == name), "val_" + name.removeprefix("val/"))
        table = pd.read_csv(tsv, sep="\t")
        tables.append(table.rename(columns={"step": "epoch", table.columns[-1]: key})[["epoch", key]])
    if not tables:
        raise FileNotFoundError(f"{directory}: no dvclive metrics; run the train stage first")
    history = tables[0]
    for t in tables[1:]:
        history = history.merge(t, on="epoch", how="outer")
    fixed = ["epoch", "lr", "train_loss", "val_loss"]
    levels = sorted((c for c in history.columns if c.startswith("val_miou")), key=lambda c: int(c[8:]))
    rest = [c for c in history.columns if c not in fixed + levels]
    return history[[c for c in fixed if c in history] + levels + rest].sort_values("epoch", ignore_index=True)


def finished_history(directory: Path, variant: str) -> pd.DataFrame:
    """read_history for a training that finished: the train stage always validates the last epoch,
    so a log whose last epoch was not validated is an interrupted run's, which figures must not mix
    with another run's metrics."""
    history = read_history(directory)
    if "val_loss" not in history or pd.isna(history["val_loss"].iloc[-1]):
        raise UserError(f"{directory}: {variant}'s training log ends at epoch {history['epoch'].iloc[-1]}, which was "
                        f"not validated, so its training did not finish (interrupted?): rerun it with "
                        f"`dvc repro {layout.stage_name('train', variant)}`")
    return history
