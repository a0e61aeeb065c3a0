"""The selection log: every candidate scored on dev while choosing a setting, one CSV row each,
so the number of candidates behind a choice is visible (results/selection.csv, committed).

Rows are appended by the tools that score candidates (benchmarks/tta.py, tools/log_experiments.py);
nothing is ever rewritten, and only dev scores are logged: val is for reporting."""
from __future__ import annotations

import csv
import datetime
import subprocess
from pathlib import Path

from .versions import machine

LOG = Path("results/selection.csv")
COLUMNS = ("date", "commit", "question", "candidate", "seed", "split", "miou0", "miou1", "miou2", "cpu")


def current_commit(rev: str = "HEAD") -> str:
    done = subprocess.run(["git", "rev-parse", "--short", rev], capture_output=True, text=True)
    return done.stdout.strip() if done.returncode == 0 else "-"


def log_candidate(question: str, candidate: str, seed, scores: dict, split: str = "dev", path: Path = LOG,
                  commit: str | None = None) -> None:
    """Append one row: which question was being answered, the candidate, its seed and its dev mIoU per level;
    ``commit``: the one the candidate ran at (default HEAD's)."""
    if split != "dev":
        raise ValueError(f"only dev scores are logged for selection, not {split!r}")
    new = not Path(path).is_file()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    levels = {f"miou{k}": ("" if scores.get(f"miou{k}") is None else f"{scores[f'miou{k}']:.4f}") for k in range(3)}
    row = {"date": datetime.date.today().isoformat(), "commit": commit or current_commit(), "question": question,
           "candidate": candidate, "seed": seed, "split": split, **levels, "cpu": machine()["cpu"]}
    with open(path, "a", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        if new:
            writer.writeheader()
        writer.writerow(row)
