import copy
from pathlib import Path

import pytest
import yaml

from tests.synthetic import CLASSES, make_dataset

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def params():
    """A fresh copy of the repository's params.yaml."""
    return copy.deepcopy(yaml.safe_load((ROOT / "params.yaml").read_text()))


@pytest.fixture
def tree(params):
    from hseg.settings.classes import class_tree
    return class_tree(params, CLASSES)


@pytest.fixture
def dataset(tmp_path):
    return make_dataset(tmp_path / "pascal-part", n_train=6, n_val=3)
