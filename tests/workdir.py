"""A working folder laid out like the repository (synthetic data, a prepared 64 px cache, params.yaml),
for the tests that train, resume, evaluate and predict in it, and the helpers they share."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from hseg.tracking import read_history
from tests.synthetic import prepared_workdir, train_in_workdir

ROOT = Path(__file__).resolve().parent.parent
VARIANT = "unet-resnet34-scratch"
RUN = f"{VARIANT}-s42"   # a run: the variant trained with seed 42


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """A working folder laid out like the repository, with a prepared 64 px cache."""
    work = tmp_path_factory.mktemp("work")
    prepared_workdir(work, n_train=16, n_val=6, size=64, epochs=3, batch_size=8, crop=32)
    return work


def train_once(work, tree, out: Path, **overrides):
    weights = train_in_workdir(work, tree, out, **overrides)
    return torch.load(weights, weights_only=False)["state_dict"], strip_time(out / "live")


def strip_time(live_dir: Path) -> list[dict]:
    """The dvclive history without the wall-time column, which legitimately differs between runs."""
    return read_history(live_dir).drop(columns="seconds").fillna(-1).to_dict("records")


def stage(work, *args, env_extra=None, **kw):
    env = {**os.environ, "PYTHONPATH": str(ROOT), **(env_extra or {})}
    return subprocess.Popen([sys.executable, "-m", *args], cwd=work, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kw)
