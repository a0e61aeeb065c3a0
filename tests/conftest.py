import copy
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.synthetic import CLASSES, make_dataset

ROOT = Path(__file__).resolve().parent.parent


def committed_params_text() -> str:
    """params.yaml as staged in git (the committed defaults, or what `git add` staged), never the
    workspace's copy, which `dvc exp run` rewrites with each experiment's settings."""
    done = subprocess.run(["git", "show", ":params.yaml"], cwd=ROOT, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"tests read params.yaml from git (`git show :params.yaml`): {done.stderr.strip()}")
    return done.stdout


COMMITTED_PARAMS = committed_params_text()


@pytest.fixture
def params():
    """A fresh copy of the repository's committed params.yaml."""
    return copy.deepcopy(yaml.safe_load(COMMITTED_PARAMS))


@pytest.fixture
def tree(params):
    from hseg.settings.classes import class_tree
    return class_tree(params, CLASSES)


@pytest.fixture
def dataset(tmp_path):
    return make_dataset(tmp_path / "pascal-part", n_train=6, n_val=3)
