import copy
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.synthetic import CLASSES, make_dataset

ROOT = Path(__file__).resolve().parent.parent


def committed_text(path: str) -> str:
    """A file as staged in git (the committed version, or what `git add` staged), never the
    workspace's copy, which `dvc exp run` rewrites with each experiment's params and results."""
    done = subprocess.run(["git", "show", f":{path}"], cwd=ROOT, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"tests read {path} from git (`git show :{path}`): {done.stderr.strip()}")
    return done.stdout


def committed_files(folder: str, name: str) -> list[str]:
    """The paths under ``folder`` named ``name`` that git tracks."""
    listed = subprocess.run(["git", "ls-files", "--", folder], cwd=ROOT, capture_output=True, text=True,
                            check=True).stdout.split()
    return [path for path in listed if Path(path).name == name]


COMMITTED_PARAMS = committed_text("params.yaml")


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
