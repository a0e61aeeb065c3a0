"""Print the study's results table (mIoU per level, per variant) from metrics/*.json.

    python -m hseg report            # markdown table of every evaluated variant
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from . import layout


def results_table(metrics_dir: Path = layout.METRICS) -> str:
    rows = ["| variant | mIoU^0 (body) | mIoU^1 (upper/lower) | mIoU^2 (six parts) | pixel acc. (parts) |",
            "| --- | --- | --- | --- | --- |"]
    files = sorted(metrics_dir.glob("*.json"))
    for f in files:
        m = json.loads(f.read_text())
        fmt = lambda v: "-" if v is None else f"{v:.3f}"  # noqa: E731
        rows.append(f"| {f.stem} | {fmt(m.get('miou0'))} | {fmt(m.get('miou1'))} | {fmt(m.get('miou2'))} "
                    f"| {fmt(m.get('pixel_acc2'))} |")
    if not files:
        return f"no metrics in {metrics_dir}: run `dvc repro` first"
    return "\n".join(rows)


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m hseg report", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--metrics-dir", type=Path, default=layout.METRICS)
    return parser


def run(args) -> int:
    print(results_table(args.metrics_dir))
    return 0
