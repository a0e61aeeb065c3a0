"""Print the study's results table (epochs and mIoU per level, per variant) from metrics/*.json
and each variant's dvclive summary (dvclive/<variant>/metrics.json, whose step is the last epoch).

    python -m hseg report            # markdown table of every evaluated variant
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from . import layout
from .metrics import levels_in


def levels(metrics: dict) -> list[int]:
    """The levels a metrics file scores: 0..K for its keys miou0..miouK."""
    return levels_in(metrics)


def level_header(metrics: dict, k: int) -> str:
    """'mIoU^k (its classes)', the classes named from the tree the metrics were scored with."""
    names = list(metrics.get(f"iou{k}", {}))[1:]  # background is always class 0
    shown = ", ".join(names) if len(names) <= 4 else ", ".join(names[:3]) + f", ... {len(names)} classes"
    return f"mIoU^{k} ({shown})"


def epochs_trained(live_dir: Path):
    """The last epoch in a variant's dvclive summary; None without one. Variants of one study can
    train for different numbers of epochs (`variants.<name>.epochs`), so the table shows it."""
    summary = Path(live_dir) / "metrics.json"
    return json.loads(summary.read_text()).get("step") if summary.is_file() else None


def results_table(metrics_dir: Path = layout.METRICS, live_root: Path = layout.LIVE) -> str:
    files = sorted(metrics_dir.glob("*.json"))
    if not files:
        return f"no metrics in {metrics_dir}: run `dvc repro` first"
    metrics = {f.stem: json.loads(f.read_text()) for f in files}
    first = next(iter(metrics.values()))
    ks = levels(first)
    deepest = ks[-1]
    rows = ["| variant | epochs | " + " | ".join(level_header(first, k) for k in ks) + f" | pixel acc. (level {deepest}) |",
            "| --- " * (len(ks) + 3) + "|"]
    fmt = lambda v: "-" if v is None else f"{v:.3f}"  # noqa: E731
    for name, m in metrics.items():
        epochs = epochs_trained(Path(live_root) / name)
        rows.append(f"| {name} | {'-' if epochs is None else epochs} | " + " | ".join(fmt(m.get(f"miou{k}")) for k in ks)
                    + f" | {fmt(m.get(f'pixel_acc{deepest}'))} |")
    return "\n".join(rows)


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m hseg report", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--metrics-dir", type=Path, default=layout.METRICS)
    parser.add_argument("--live-dir", type=Path, default=layout.LIVE, help="dvclive's root (epochs per variant)")
    return parser


def run(args) -> int:
    print(results_table(args.metrics_dir, args.live_dir))
    return 0
