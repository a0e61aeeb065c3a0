"""The study spread over machines, DVC's run cache the only coordination (docs/scaling.md), end to end
with the real DVC CLI on CPU: clones of one commit stand for the machines, a local folder for the remote.

Two workers run disjoint halves of the runs at the same time with tools/run_one.sh; one of them is
killed while training its last run. What the others pushed stays restorable, rerunning the killed index
finishes the study, and a third clone's `dvc repro --pull` restores every train and evaluate stage
without running one: its metrics and dvclive files are the workers' bytes.
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.dvc_repo import DVC, make_repo, ran, set_param, sh

pytestmark = pytest.mark.slow  # five trainings and evaluations, each a DVC stage subprocess (minutes)

ROOT = Path(__file__).resolve().parent.parent
VARIANT = "unet-resnet34-scratch"
SEEDS = [42, 43, 44, 45]                      # run i is seed SEEDS[i]: one arch, encoder and init
HALVES = {"a": [0, 1], "b": [2, 3]}           # worker b is killed while training run 3


def train(seed):
    return f"train@{VARIANT}-{seed}"


def evaluate(seed):
    return f"evaluate@{VARIANT}-{seed}"


def worker_env(cwd: Path) -> dict:
    """sh()'s environment: this interpreter first on PATH, the clone's code importable."""
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    return {**os.environ, "DVC_NO_ANALYTICS": "1", "PYTHONPATH": str(cwd), "PATH": path, "PYTHON": sys.executable}


def start(clone: Path, indices: list[int], log: Path) -> subprocess.Popen:
    """One worker: tools/run_one.sh for each index in turn, in its own process group (to be killable)."""
    script = " && ".join(f"tools/run_one.sh {i}" for i in indices)
    return subprocess.Popen(["bash", "-c", script], cwd=clone, env=worker_env(clone), stdout=log.open("w"),
                            stderr=subprocess.STDOUT, start_new_session=True)


def wait_for(log: Path, text: str, proc: subprocess.Popen, timeout=300):
    deadline = time.monotonic() + timeout
    while text not in log.read_text():
        assert proc.poll() is None, f"the worker ended before {text!r}:\n{log.read_text()}"
        assert time.monotonic() < deadline, f"no {text!r} after {timeout} s:\n{log.read_text()}"
        time.sleep(0.05)


def outputs(clone: Path, seed: int) -> dict[str, bytes]:
    """A run's `cache: false` outputs (the evaluate metrics, dvclive's summary and history), by path."""
    run = f"{VARIANT}-s{seed}"
    files = [clone / "metrics" / "runs" / f"{run}.json", clone / "dvclive" / run / "metrics.json",
             *sorted((clone / "dvclive" / run / "plots" / "metrics").rglob("*.tsv"))]
    assert len(files) > 2, f"{clone}: no dvclive history for {run}"
    return {str(f.relative_to(clone)): f.read_bytes() for f in files}


@pytest.fixture(scope="module")
def origin(tmp_path_factory):
    """The study's commit: synthetic dataset tracked by DVC and pushed, the default remote a local folder."""
    base = tmp_path_factory.mktemp("scaling")
    repo = make_repo(base / "origin", archs=("unet",))
    set_param(repo, "study.seeds", SEEDS)
    (repo / "tools").mkdir()
    for name in ("run_one.sh", "push_run_cache.py"):
        shutil.copy2(ROOT / "tools" / name, repo / "tools" / name)
    sh(DVC + ["add", "-q", "data/pascal-part"], repo)
    sh(DVC + ["remote", "add", "-d", "shared", str(base / "remote")], repo)
    sh(["git", "add", "-A"], repo)
    sh(["git", "commit", "-qm", "the study, its dataset and remote"], repo)
    sh(DVC + ["push", "-q"], repo)   # the dataset: every worker pulls it from the remote
    yield repo
    shutil.rmtree(base, ignore_errors=True)   # four models in three clones, their caches and the remote


def clone(origin: Path, name: str) -> Path:
    target = origin.parent / name
    sh(["git", "clone", "-q", str(origin), str(target)], origin.parent)
    assert not (target / "data" / "pascal-part").exists()   # the dataset comes from the remote
    return target


def test_workers_share_only_the_remote_and_a_third_clone_restores_the_study(origin):
    workers = {name: clone(origin, name) for name in HALVES}
    logs = {name: origin.parent / f"{name}.log" for name in HALVES}
    a = start(workers["a"], HALVES["a"], logs["a"])
    b = start(workers["b"], HALVES["b"][:1], logs["b"])       # both run at once from here
    assert b.wait(timeout=600) == 0, logs["b"].read_text()
    # b's second job dies mid-training (a node lost, a time limit): its whole process group is killed
    killed_log = origin.parent / "b-killed.log"
    killed = start(workers["b"], HALVES["b"][1:], killed_log)
    wait_for(killed_log, f"Running stage '{train(SEEDS[3])}'", killed)
    os.killpg(killed.pid, signal.SIGKILL)
    killed.wait(timeout=60)
    assert a.wait(timeout=600) == 0, logs["a"].read_text()
    assert not (workers["b"] / "metrics" / "runs" / f"{VARIANT}-s{SEEDS[3]}.json").exists()   # it did die mid-run

    for name, indices in HALVES.items():   # each first job ran prepare itself: the remote was empty
        first = logs[name].read_text()
        assert {"prepare", train(SEEDS[indices[0]]), evaluate(SEEDS[indices[0]])} <= ran(first), first
    # prepare is deterministic: two workers running it at once made one run-cache entry
    entries = [yaml.safe_load(p.read_text()) for p in (origin.parent / "remote" / "runs").rglob("*") if p.is_file()]
    assert [e["cmd"] for e in entries].count("python -m stages.prepare") == 1
    # every file a pushed entry names is on the remote, `cache: false` outputs included
    remote_files = origin.parent / "remote" / "files" / "md5"
    for entry in entries:
        for out in entry["outs"]:
            digest = out["md5"]
            assert (remote_files / digest[:2] / digest[2:]).is_file(), (entry["cmd"], out["path"])

    # what the others pushed is intact: a fresh clone restores runs 0-2 without running a stage
    gather = clone(origin, "gather")
    finished = [stage for seed in SEEDS[:3] for stage in (train(seed), evaluate(seed))]
    out = sh(DVC + ["repro", "--pull", *finished], gather).stdout
    assert ran(out) == set(), out
    for seed in SEEDS[:3]:
        assert f"Stage '{train(seed)}' is cached - skipping run, checking out outputs" in out

    # rerunning the killed index (same workspace, after SIGKILL: no lock left behind) finishes the study
    rerun = subprocess.run(["tools/run_one.sh", str(HALVES["b"][1])], cwd=workers["b"], env=worker_env(workers["b"]),
                           capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert ran(rerun.stdout) == {train(SEEDS[3]), evaluate(SEEDS[3])}, rerun.stdout

    out = sh(DVC + ["repro", "--pull"], gather).stdout
    assert ran(out) == {"summarize", "plot"}, out       # no train@ or evaluate@ ran here
    summary = json.loads((gather / "metrics" / "summary.json").read_text())
    assert summary["seeds"] == SEEDS and summary["variants"][VARIANT]["miou2"]["n"] == len(SEEDS)
    for name, indices in HALVES.items():
        for i in indices:
            assert outputs(gather, SEEDS[i]) == outputs(workers[name], SEEDS[i])
            assert ((gather / "models" / f"{VARIANT}-s{SEEDS[i]}.pt").read_bytes()
                    == (workers[name] / "models" / f"{VARIANT}-s{SEEDS[i]}.pt").read_bytes())


def test_a_bad_index_fails_before_any_dvc_command_and_names_the_range(origin):
    done = subprocess.run(["tools/run_one.sh", str(len(SEEDS))], cwd=origin, env=worker_env(origin),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert f"run index {len(SEEDS)} is out of range: the study has {len(SEEDS)} runs, indices 0 to 3" in done.stderr
    assert "Running stage" not in done.stdout and not (origin / "dvc.lock").exists()
