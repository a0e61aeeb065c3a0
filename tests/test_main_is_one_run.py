"""Main is one run: in a fresh clone, `dvc status` finds no changed code, params or command, only
outputs and data not yet present (they come from `dvc pull` or `dvc repro`)."""
import json
import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT, needs_git

ABSENT = ("deleted", "not in cache")   # an output or dependency not fetched or built yet


def problems(status: dict) -> list[str]:
    """Every change in `dvc status --json` other than a missing output or dependency. (A folder of other
    stages' outputs, metrics/details/, is git-ignored whole, so a fresh clone lacks it: "deleted".)"""
    found = []
    for stage, changes in status.items():
        for change in changes:
            if isinstance(change, str):           # e.g. "changed command", "always changed"
                found.append(f"{stage}: {change}")
                continue
            for kind, paths in change.items():
                if kind == "changed params" or not all(state in ABSENT for state in paths.values()):
                    found.append(f"{stage}: {kind} {paths}")
    return found


def test_problems_sees_changed_deps_params_and_commands():
    status = {"train@a-42": [{"changed deps": {"data/prepared": "deleted"}}, {"changed outs": {"m.pt": "deleted"}}],
              "evaluate@a-42": [{"changed outs": {"metrics/details/a.npz": "not in cache"}}],
              "report": [{"changed deps": {"metrics/details": "deleted"}}],
              "plot": [{"changed deps": {"hseg/plots.py": "modified", "metrics/details": "modified"}}],
              "summarize": [{"changed params": {"params.yaml": {"study.seeds": "modified"}}}, "changed command"]}
    assert problems(status) == ["plot: changed deps {'hseg/plots.py': 'modified', 'metrics/details': 'modified'}",
                                "summarize: changed params {'params.yaml': {'study.seeds': 'modified'}}",
                                "summarize: changed command"]


@pytest.mark.slow
@needs_git
def test_a_fresh_clone_of_the_committed_tree_has_nothing_stale(tmp_path):
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
    env = {**os.environ, "DVC_NO_ANALYTICS": "1"}
    done = subprocess.run([sys.executable, "-m", "dvc", "status", "--json"], cwd=clone, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert problems(json.loads(done.stdout)) == []
