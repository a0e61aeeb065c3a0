"""Append DVC experiments' dev scores to the selection log (results/selection.csv), one row per run.

    python tools/log_experiments.py "hour: EMA or not" hour-ema hour-base   # named experiments
    python tools/log_experiments.py "hour: schedule end" --all              # every experiment of HEAD
    python tools/log_experiments.py "hour: crop" crop-s42 --rev 824f5c4     # experiments run from that commit

Each experiment's training validated on the dev split (dvclive's `val/` metrics, when its
data.dev_fraction > 0), so those are the scores a choice may rest on; experiments that validated on
val (dev_fraction 0) are skipped with a note. The candidate column names the experiment and the
params it changed against HEAD.
"""
from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hseg.cli import run_cli  # noqa: E402
from hseg.errors import UserError  # noqa: E402
from hseg.exp import leaves  # noqa: E402
from hseg.selection import LOG, current_commit, log_candidate  # noqa: E402


def experiments(rev: str = "HEAD") -> tuple[dict, list[dict]]:
    """(the params of ``rev``, [{name, params, metrics}, ...] of the experiments run from it), from
    `dvc exp show --json --rev REV`."""
    done = subprocess.run([sys.executable, "-m", "dvc", "exp", "show", "--json", "--rev", rev], capture_output=True,
                          text=True)
    if done.returncode:
        raise UserError(f"`dvc exp show --json` failed: {done.stderr.strip()}")
    base, found = {}, []
    for entry in json.loads(done.stdout):
        head = entry.get("data") or {}
        base = base or ((head.get("params") or {}).get("params.yaml") or {}).get("data", {})
        for exp in entry.get("experiments") or []:
            for rev in exp.get("revs", []):
                data = rev.get("data") or {}
                found.append({"name": rev.get("name"),
                              "params": ((data.get("params") or {}).get("params.yaml") or {}).get("data", {}),
                              "metrics": {k: v.get("data", {}) for k, v in (data.get("metrics") or {}).items()}})
    return base, found


def changed(params: dict, base: dict) -> str:
    """'train.lr=0.002 study.seeds=[43]': the params an experiment set differently from HEAD."""
    have, was = leaves(params), leaves(base)
    return " ".join(f"{k}={json.dumps(v)}" for k, v in have.items() if was.get(k) != v)


def log_experiment(question: str, exp: dict, base: dict, commit: str) -> int:
    if not (exp["params"].get("data") or {}).get("dev_fraction"):
        print(f"{exp['name']}: validated on val (data.dev_fraction 0), not logged")
        return 0
    rows = 0
    for path, metrics in sorted(exp["metrics"].items()):
        run = re.fullmatch(r"dvclive/(.+)-s(\d+)/metrics\.json", path)
        if run and "val" in metrics:
            log_candidate(question, f"{exp['name']} ({run[1]}): {changed(exp['params'], base)}", int(run[2]),
                          metrics["val"], split="dev", commit=commit)
            rows += 1
    return rows


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("question", help="what the candidates were compared for, e.g. 'hour: EMA or not'")
    p.add_argument("names", nargs="*", help="experiment names (dvc exp show); see --all")
    p.add_argument("--all", action="store_true", help="every experiment dvc exp show lists")
    p.add_argument("--rev", default="HEAD", help="the commit the experiments were run from (default HEAD)")
    return p


def main(args) -> None:
    if not args.names and not args.all:
        raise UserError("name the experiments to log, or pass --all")
    base, found = experiments(args.rev)
    chosen = [e for e in found if args.all or e["name"] in args.names]
    missing = set(args.names) - {e["name"] for e in chosen}
    if missing:
        raise UserError(f"no experiment named {sorted(missing)} in `dvc exp show --rev {args.rev}`; experiments "
                        f"run from an earlier commit need --rev <that commit>")
    rows = sum(log_experiment(args.question, e, base, current_commit(args.rev)) for e in chosen)
    print(f"{rows} row(s) appended to {LOG}")


if __name__ == "__main__":
    run_cli(main, parser())
