"""Print the study's results table (mIoU per level, per variant) from metrics/*.json.

    python -m hseg report            # markdown table of every evaluated variant
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from . import layout


def levels(metrics: dict) -> list[int]:
    """The levels a metrics file scores: 0..K for its keys miou0..miouK."""
    k = 0
    while f"miou{k}" in metrics:
        k += 1
    return list(range(k))


def level_header(metrics: dict, k: int) -> str:
    """'mIoU^k (its classes)', the classes named from the tree the metrics were scored with."""
    names = list(metrics.get(f"iou{k}", {}))[1:]  # background is always class 0
    shown = ", ".join(names) if len(names) <= 4 else ", ".join(names[:3]) + f", ... {len(names)} classes"
    return f"mIoU^{k} ({shown})"


def results_table(metrics_dir: Path = layout.METRICS) -> str:
    files = sorted(metrics_dir.glob("*.json"))
    if not files:
        return f"no metrics in {metrics_dir}: run `dvc repro` first"
    metrics = {f.stem: json.loads(f.read_text()) for f in files}
    first = next(iter(metrics.values()))
    ks = levels(first)
    deepest = ks[-1]
    rows = ["| variant | " + " | ".join(level_header(first, k) for k in ks) + f" | pixel acc. (level {deepest}) |",
            "| --- " * (len(ks) + 2) + "|"]
    fmt = lambda v: "-" if v is None else f"{v:.3f}"  # noqa: E731
    for name, m in metrics.items():
        rows.append(f"| {name} | " + " | ".join(fmt(m.get(f"miou{k}")) for k in ks)
                    + f" | {fmt(m.get(f'pixel_acc{deepest}'))} |")
    return "\n".join(rows)


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m hseg report", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--metrics-dir", type=Path, default=layout.METRICS)
    return parser


def run(args) -> int:
    print(results_table(args.metrics_dir))
    return 0
