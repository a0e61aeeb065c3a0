"""Gather DVC experiments of one recipe, run a seed each (queued, or one a day), into one results folder.

    python tools/collect_runs.py results/hour-r18crop hour-r18crop-s42 hour-r18crop-s43 hour-r18crop-s44

From each experiment's git ref (refs/exps/...) it copies the study's runs: metrics/runs/<run>.json (the
evaluate stage's val scores, as metrics/<run>.json), dvclive/<run>/ (training's per-epoch logs on dev) and the
experiment's dvc.lock (as locks/<experiment>.lock); then writes params.yaml (the recipe, with study.seeds
listing every seed), summary.json over the seeds (the summarize stage's format and function) and
experiments.json (each experiment's commit, the commit it ran from, and when it finished). The experiments
must share one recipe: params that differ in anything but study.seeds are refused, naming the key. The folder
is written whole or not at all; in one this tool wrote before, its own files are replaced and the rest (a
README, the plan, figures) kept, so a seed that lands later is added by collecting again.
"""
from __future__ import annotations

import argparse
import io
import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hseg.atomic import write_json  # noqa: E402
from hseg.cli import run_cli  # noqa: E402
from hseg.errors import UserError  # noqa: E402
from hseg.exp import leaves  # noqa: E402
from hseg.layout import metrics_file, run_name  # noqa: E402
from hseg.settings.study import study_settings  # noqa: E402
from hseg.summary import summarize  # noqa: E402

MARK = "experiments.json"   # what tells a folder this tool wrote (and may replace) from any other
OWN = {"metrics", "dvclive", "locks", "params.yaml", "summary.json", MARK}   # what it writes; the rest is kept


def git(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *args], capture_output=True, check=False)


def experiment_ref(name: str) -> str:
    """The one ref refs/exps/**/<name>."""
    listed = git("for-each-ref", "refs/exps", "--format=%(refname)").stdout.decode().split()
    found = [ref for ref in listed if ref.rsplit("/", 1)[-1] == name]
    if len(found) != 1:
        raise UserError(f"experiment {name!r}: {'no ref' if not found else f'{len(found)} refs'} under refs/exps "
                        f"(`dvc exp list --all-commits` lists the experiments; `dvc exp pull` fetches one)")
    return found[0]


def shown(ref: str, path: str) -> bytes:
    done = git("show", f"{ref}:{path}")
    if done.returncode:
        raise UserError(f"{ref}: has no {path} ({done.stderr.decode().strip()})")
    return done.stdout


def recipe(params: dict) -> dict:
    """The params that must agree between the experiments: all but study.seeds."""
    return {key: value for key, value in leaves(params).items() if key != "study.seeds"}


def collect(names: list[str], out: Path) -> dict:
    """Write ``out`` (see the module doc); returns the summary."""
    if out.exists() and not (out / MARK).is_file():
        raise UserError(f"{out} exists and was not written by this tool (no {MARK}): choose another folder")
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))   # renamed into place at the end
    try:
        first, scores, seeds, records = None, {}, [], []
        for name in names:
            ref = experiment_ref(name)
            params = yaml.safe_load(shown(ref, "params.yaml"))
            if first is None:
                first = params
            elif (mine := recipe(params)) != (theirs := recipe(first)):
                key = next(k for k in sorted(set(mine) | set(theirs)) if mine.get(k) != theirs.get(k))
                raise UserError(f"experiment {name!r} differs from {names[0]!r} in {key}: "
                                f"{mine.get(key)!r} against {theirs.get(key)!r}; one recipe per folder")
            study = study_settings(params)
            for seed in study.seeds:
                if seed in seeds:
                    raise UserError(f"experiment {name!r}: seed {seed} is already in an earlier experiment")
                seeds.append(seed)
                for variant in study.variants:
                    run = run_name(variant, seed)
                    metrics = shown(ref, metrics_file(run).as_posix())
                    scores.setdefault(variant, {})[seed] = json.loads(metrics)
                    (staging / "metrics").mkdir(exist_ok=True)
                    (staging / "metrics" / f"{run}.json").write_bytes(metrics)
                    archive = git("archive", ref, f"dvclive/{run}")
                    if archive.returncode:
                        raise UserError(f"experiment {name!r}: has no dvclive/{run} "
                                        f"({archive.stderr.decode().strip()})")
                    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
                        tar.extractall(staging, filter="data")
            (staging / "locks").mkdir(exist_ok=True)
            (staging / "locks" / f"{name}.lock").write_bytes(shown(ref, "dvc.lock"))
            sha, parent, finished = git("log", "-1", "--format=%H %P %cI", ref).stdout.decode().split()
            records.append({"experiment": name, "ref": ref, "commit": sha, "ran_from": parent, "finished": finished,
                            "seeds": study.seeds})
        first["study"]["seeds"] = seeds
        (staging / "params.yaml").write_text(yaml.safe_dump(first, sort_keys=False))
        summary = summarize(scores, seeds)
        write_json(staging / "summary.json", summary)   # byte for byte as the summarize stage writes it
        (staging / MARK).write_text(json.dumps(records, indent=2) + "\n")
        if out.exists():
            for kept in out.iterdir():
                if kept.name not in OWN:
                    (shutil.copytree if kept.is_dir() else shutil.copy2)(kept, staging / kept.name)
            replaced = out.rename(staging.with_name(staging.name + "-replaced"))
            staging.rename(out)
            shutil.rmtree(replaced)
        else:
            staging.rename(out)
        return summary
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out", type=Path, help="the folder to write, e.g. results/hour-r18crop")
    p.add_argument("names", nargs="+", help="the experiments' names (dvc exp list), one recipe, a seed each")
    return p


def main(args) -> None:
    summary = collect(args.names, args.out)
    for variant, stats in summary["variants"].items():
        levels = sorted(key for key in stats if key.startswith("miou"))
        print(f"{variant} (seeds {', '.join(map(str, stats['seeds']))}): " + " / ".join(
            f"{level} {stats[level]['mean']:.4f}" + (f" +- {stats[level]['sd']:.4f}" if stats[level]["sd"] is not None
                                                     else "") for level in levels))
    print(f"{len(args.names)} experiment(s) -> {args.out}")


if __name__ == "__main__":
    run_cli(main, parser())
