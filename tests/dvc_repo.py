"""Git + DVC repositories of the project on synthetic data, for the end-to-end tests: the helpers that
make and drive them, and fixtures that build each starting point once per test run and hand every test
its own copy, so a test runs the same alone (`pytest -k NAME`) as after the others."""
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import NamedTuple

import pytest
import yaml

from tests.conftest import COMMITTED_PARAMS
from tests.synthetic import make_dataset

ROOT = Path(__file__).resolve().parent.parent
DVC = [sys.executable, "-m", "dvc"]
VARIANTS = ["unet-resnet34-scratch", "deeplabv3plus-resnet34-scratch"]
SEED = 42
RUNS = [f"{v}-s{SEED}" for v in VARIANTS]                  # file names: <variant>-s<seed>


def stages(kind: str, variants=VARIANTS, seed=SEED) -> set[str]:
    """DVC's names of a matrix stage's runs: the matrix values joined by '-'."""
    return {f"{kind}@{v}-{seed}" for v in variants}


def sh(args, cwd, check=True):
    # dvc runs the stage commands (`python -m stages...`) through the shell: put this
    # interpreter's folder first on PATH, as an activated virtual environment would
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    env = {**os.environ, "DVC_NO_ANALYTICS": "1", "PYTHONPATH": str(cwd), "PATH": path}
    proc = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    if check and proc.returncode:
        raise AssertionError(f"{args} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def ran(output: str) -> set[str]:
    return set(re.findall(r"Running stage '([^']+)'", output))


def set_param(repo: Path, dotted: str, value):
    params = yaml.safe_load((repo / "params.yaml").read_text())
    *path, last = dotted.split(".")
    node = params
    for key in path:
        node = node[key]
    node[last] = value
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def make_repo(repo: Path, archs=("unet", "deeplabv3plus")) -> Path:
    """A git + dvc repository with the project's code, dvc.yaml, .gitignore, params and plot template,
    a synthetic dataset and settings small enough for seconds per stage."""
    for name in ("stages", "hseg"):
        shutil.copytree(ROOT / name, repo / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("dvc.yaml", ".gitignore"):   # .gitignore: which folders DVC's outputs leave without one of their own
        shutil.copy(ROOT / name, repo / name)
    (repo / "params.yaml").write_text(COMMITTED_PARAMS)
    make_dataset(repo / "data" / "pascal-part", n_train=16, n_val=6)
    set_param(repo, "prepare.size", 64)
    set_param(repo, "train.crop", 32)
    set_param(repo, "train.epochs", 1)
    set_param(repo, "train.batch_size", 8)
    set_param(repo, "study.archs", list(archs))
    set_param(repo, "study.encoders", ["resnet34"])
    set_param(repo, "study.inits", ["scratch"])
    set_param(repo, "study.seeds", [SEED])
    sh(["git", "init", "-q"], repo)
    sh(["git", "config", "user.email", "t@example.com"], repo)
    sh(["git", "config", "user.name", "t"], repo)
    sh(DVC + ["init", "-q"], repo)
    (repo / ".dvc" / "plots").mkdir(exist_ok=True)
    shutil.copy(ROOT / ".dvc" / "plots" / "by_variant.json", repo / ".dvc" / "plots" / "by_variant.json")
    return repo


def commit(repo, message):
    sh(["git", "add", "-A"], repo)
    sh(["git", "commit", "-qm", message], repo)


def copy_repo(source: Path, target: Path) -> Path:
    """A working copy of a git + dvc repository. Everything DVC and git keep is inside it (`.dvc/cache`,
    `.dvc/tmp`, `.git`, relative paths in `.dvc/config`; DVC's site cache is keyed by the repository's path,
    so the copy gets its own). Cache files are hard links: DVC writes a cache object once and never
    changes it; every other file is copied, since tests edit files in place."""
    def link_cache_files(src, dst):
        if Path(src).is_relative_to(source / ".dvc" / "cache"):
            os.link(src, dst)
        else:
            shutil.copy2(src, dst)
    return Path(shutil.copytree(source, target, symlinks=True, copy_function=link_cache_files))


class Baseline(NamedTuple):
    path: Path
    first_repro: str   # the output of the `dvc repro` that built it


@pytest.fixture(scope="session")
def study_baseline(tmp_path_factory) -> Baseline:
    """The two-variant study after its first `dvc repro`, committed: the state every study test starts from."""
    repo = make_repo(tmp_path_factory.mktemp("study"))
    out = sh(DVC + ["repro"], repo).stdout
    commit(repo, "first study")
    return Baseline(repo, out)


@pytest.fixture
def repo(study_baseline, tmp_path):
    """This test's own copy of the reproduced, committed two-variant study."""
    repo = copy_repo(study_baseline.path, tmp_path / "study")
    yield repo
    shutil.rmtree(repo, ignore_errors=True)   # 360 MB of models and cache a test


@pytest.fixture(scope="session")
def unet_baseline(tmp_path_factory) -> Path:
    """A one-variant (UNet) repository, committed and not yet reproduced."""
    repo = make_repo(tmp_path_factory.mktemp("unet"), archs=("unet",))
    commit(repo, "base")
    return repo


@pytest.fixture
def unet_repo(unet_baseline, tmp_path):
    """This test's own copy of the one-variant repository."""
    repo = copy_repo(unet_baseline, tmp_path / "unet")
    yield repo
    shutil.rmtree(repo, ignore_errors=True)
