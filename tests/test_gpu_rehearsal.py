"""The GPU check rehearsed on a CPU: tools/gpu_rehearsal.sh lays out what a lent GPU machine gets (the
committed tree without .git, a venv with only that machine's packages, the wheels it lacks) and runs
`benchmarks/gpu_check.sh --allow-cpu` there. Before this test existed the check died in its first part
on such a machine (hseg needs pydantic, which the wheel script did not fetch; conftest needed git)."""
import json
import os
import subprocess
import sys
import time

import pytest

from hseg.exp import load_profile
from tests.conftest import ROOT, needs_git

pytestmark = [pytest.mark.slow, needs_git]


def test_the_gpu_check_runs_every_part_on_a_bare_copy(tmp_path):
    done = subprocess.run(["bash", str(ROOT / "tools" / "gpu_rehearsal.sh"), str(tmp_path)], cwd=ROOT,
                          capture_output=True, text=True, timeout=1500, env={**os.environ, "PYTHON": sys.executable})
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    log = (tmp_path / "out" / "gpu_check.log").read_text()
    assert "FAILED" not in log
    for part in ("packages", "environment", "GPU tests", "study timing, one at a time", "study timing, 2 at a time"):
        assert f"== {part}: done in" in log, part
    assert "committed files read from: the tree's files" in log          # conftest without .git
    assert "SKIPPED" in log and "needs a CUDA GPU" in log                 # GPU tests collected, skipped with reason
    environment = json.loads((tmp_path / "out" / "environment.json").read_text())
    assert environment["git_checkout"] is False and environment["gpu"] is None
    assert environment["dvclive"] is False                  # not on the GPU machine's list, so not in the venv
    summary = json.loads((tmp_path / "out" / "gpu_check.json").read_text())
    assert summary["failed_parts"] == [] and summary["tests_exit"] == 0
    seeds = len(load_profile("full", ROOT / "profiles")["study"]["seeds"])
    assert {p["jobs"]: p["runs"] for p in summary["projected_study_min"].values()} == {1: 2 * seeds, 2: 2 * seeds}
    assert all(p["minutes"] > 0 for p in summary["projected_study_min"].values())
    assert not (tmp_path / "tree" / ".git").exists()


def test_the_check_ends_by_its_deadline(tmp_path):
    """Every part is capped at the deadline (BUDGET seconds from the start) and the summary at 15 s more, so
    the check's wall is at most BUDGET + 15 s (+ a few seconds for timeout's --kill-after and bash)."""
    budget = 25
    start = time.monotonic()
    done = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_check.sh"), "--allow-cpu"], cwd=ROOT,
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHON": sys.executable, "BUDGET": str(budget), "OUT": str(tmp_path)})
    wall = time.monotonic() - start
    assert done.returncode != 0                                    # parts cut short are failures
    log = (tmp_path / "gpu_check.log").read_text()
    assert "stopped at its" in log or "no time left" in log
    assert json.loads((tmp_path / "gpu_check.json").read_text())["failed_parts"]   # the summary still ran
    assert wall <= budget + 15 + 10, wall
