"""How close `python -m hseg plan` comes: a plan's predicted minutes next to those of the run it planned.

    python benchmarks/plan_accuracy.py results/<run>/plan.json --dvclive results/<run>/dvclive --wall-minutes 47.1
    python benchmarks/plan_accuracy.py --calibrate hour --minutes 60 --out results/plan-<cpu>-<date>

The first form reads a plan (`python -m hseg plan ... --json`) and the finished run's per-epoch
seconds (dvclive's train/seconds: each epoch's training, and its validation where it validated;
dvclive/<variant>-s<seed> for each run of the plan) and/or the run's measured wall time, and prints
predicted against measured minutes per side and in total, with their ratio. The second form is the
whole calibration in one command, for a machine with nothing else running: it plans the profile,
runs the planned `python -m hseg exp` command, times its wall, and compares, writing plan.json,
accuracy.json, the printed table and the runs' dvclive logs under --out.
"""
from __future__ import annotations

import argparse
import json
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hseg import layout  # noqa: E402
from hseg.cli import run_cli  # noqa: E402
from hseg.errors import UserError  # noqa: E402
from hseg.plan import logged_epoch_seconds  # noqa: E402
from hseg.tracking import read_history  # noqa: E402


def predicted_logged(record: dict) -> dict[str, list[float]]:
    """{run: the plan's predicted seconds of each epoch, as dvclive logs them}."""
    plan = record["plan"]
    out = {}
    for variant, measured in record["measured"]["variants"].items():
        seconds = logged_epoch_seconds(plan["epochs"], measured["epoch_s"], measured["validation_s"], plan["val_every"])
        for seed in record["runs"]["seeds"]:
            out[layout.run_name(variant, seed)] = seconds
    return out


def logged_seconds(record: dict, dvclive: Path) -> dict[str, list[float]]:
    """{run: dvclive's seconds of each epoch} for every run of the plan, checked to have the plan's epochs."""
    total = record["plan"]["total_epochs"]
    out = {}
    for run in predicted_logged(record):
        history = read_history(dvclive / run)
        if history["epoch"].tolist() != list(range(1, total + 1)):
            raise UserError(f"{dvclive / run}: logged epochs {history['epoch'].tolist()}, but the plan has "
                            f"{total}: not the run this plan planned, or it did not finish")
        out[run] = history["seconds"].tolist()
    return out


def compare(record: dict, logged: dict[str, list[float]] | None, wall_s: float | None) -> list[dict]:
    """Rows {what, epochs, predicted_s, measured_s (None where not measured)}: each side group and all of
    training as logged (summed over the runs), then the rest (saves, evaluation, overheads) and the total."""
    plan, predicted = record["plan"], predicted_logged(record)
    rows, start = [], 0
    for side, n in zip(plan["sides"], plan["epochs"]):
        if n:
            part = slice(start, start + n)
            rows.append({"what": f"{side} px", "epochs": n,
                         "predicted_s": sum(sum(s[part]) for s in predicted.values()),
                         "measured_s": sum(sum(s[part]) for s in logged.values()) if logged else None})
        start += n
    train_predicted = sum(map(sum, predicted.values()))
    train_measured = sum(map(sum, logged.values())) if logged else None
    rows.append({"what": "training as logged", "epochs": plan["total_epochs"], "predicted_s": train_predicted,
                 "measured_s": train_measured})
    total = record["predicted"]["total_s"]
    rows.append({"what": "the rest (saves, evaluation, overheads)", "epochs": None,
                 "predicted_s": total - train_predicted,
                 "measured_s": wall_s - train_measured if wall_s is not None and logged else None})
    rows.append({"what": "total (wall)", "epochs": None, "predicted_s": total, "measured_s": wall_s})
    return rows


def table(record: dict, rows: list[dict]) -> str:
    lines = [f"plan: {record['command']}", f"a {record['budget_minutes']:g}-minute budget, planned on "
             f"{record['machine']['cpu']} ({record['date']}, commit {record['commit']})",
             f"{'':40s} {'epochs':>6} {'predicted min':>14} {'measured min':>13} {'measured/predicted':>19}"]
    for row in rows:
        measured = row["measured_s"]
        lines.append(f"{row['what']:40s} {row['epochs'] if row['epochs'] is not None else '':>6} "
                     f"{row['predicted_s'] / 60:>14.2f} "
                     + (f"{measured / 60:>13.2f} {measured / row['predicted_s']:>19.3f}" if measured is not None
                        else f"{'-':>13} {'-':>19}"))
    return "\n".join(lines)


def calibrate(args) -> tuple[dict, dict, float]:
    """Plan the profile, run the plan, time its wall: (plan record, dvclive seconds, wall seconds)."""
    args.out.mkdir(parents=True, exist_ok=True)
    plan_json = args.out / "plan.json"
    planning = [sys.executable, "-m", "hseg", "plan", args.calibrate, "--minutes", str(args.minutes),
                "--json", str(plan_json)] + [f"-S{s}" for s in args.settings]
    if subprocess.run(planning).returncode:
        raise UserError(f"planning failed: {shlex.join(planning)}")
    record = json.loads(plan_json.read_text())
    command = shlex.split(record["command"])
    if command[:2] == ["python", "-m"]:
        command[0] = sys.executable
    print(f"running the plan: {shlex.join(command)}", flush=True)
    start = time.perf_counter()
    done = subprocess.run(command)
    wall = time.perf_counter() - start
    if done.returncode:
        raise UserError(f"the planned run failed (exit {done.returncode}) after {wall / 60:.1f} minutes")
    logged = logged_seconds(record, layout.LIVE)
    for run in logged:  # the logs go with the plan, as a results/<run> folder holds them
        shutil.copytree(layout.LIVE / run, args.out / "dvclive" / run, dirs_exist_ok=True)
    return record, logged, wall


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("plan", nargs="?", type=Path, help="a plan JSON written by `python -m hseg plan --json`")
    parser.add_argument("--dvclive", type=Path, help="the folder holding the run's dvclive/<variant>-s<seed> logs")
    wall = parser.add_mutually_exclusive_group()
    wall.add_argument("--wall-minutes", type=float, help="the run's measured wall time in minutes")
    wall.add_argument("--wall-seconds", type=float, help="the run's measured wall time in seconds")
    parser.add_argument("--calibrate", metavar="PROFILE", help="plan this profile, run the plan and compare")
    parser.add_argument("--minutes", type=float, default=60.0, help="--calibrate: the budget (default 60)")
    parser.add_argument("-S", dest="settings", action="append", default=[], metavar="KEY=VALUE",
                        help="--calibrate: a setting passed to the plan (repeatable)")
    parser.add_argument("--out", type=Path,
                        help="--calibrate: the folder for plan.json, accuracy.json, the table and the dvclive logs")
    return parser


def main(args) -> None:
    if args.calibrate:
        if args.out is None:
            raise UserError("--calibrate needs --out, the folder for plan.json and the comparison")
        record, logged, wall = calibrate(args)
    else:
        if args.plan is None or (args.dvclive is None and args.wall_minutes is None and args.wall_seconds is None):
            raise UserError("give a plan JSON and the run's --dvclive folder and/or --wall-minutes (or --calibrate)")
        record = json.loads(args.plan.read_text())
        logged = logged_seconds(record, args.dvclive) if args.dvclive else None
        wall = args.wall_seconds if args.wall_minutes is None else args.wall_minutes * 60
    rows = compare(record, logged, wall)
    text = table(record, rows)
    print(text)
    if args.calibrate:
        (args.out / "accuracy.json").write_text(json.dumps({"rows": rows, "wall_s": wall, "logged_s": logged},
                                                           indent=2) + "\n")
        (args.out / "accuracy.txt").write_text(text + "\n")


if __name__ == "__main__":
    run_cli(main, parser())
