import copy
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.synthetic import CLASSES, make_dataset

ROOT = Path(__file__).resolve().parent.parent


# Where the tests read the committed files from: git (the index) in a checkout; the tree's own files in
# a copy without .git, such as the one a lent GPU machine gets (benchmarks/gpu_check.sh), where the tree
# is what was committed. pytest's header says which.
IN_GIT = (ROOT / ".git").exists()


def committed_text(path: str) -> str:
    """A file as staged in git (the committed version, or what `git add` staged), never the
    workspace's copy, which `dvc exp run` rewrites with each experiment's params and results;
    without .git, the tree's file."""
    if not IN_GIT:
        return (ROOT / path).read_text()
    done = subprocess.run(["git", "show", f":{path}"], cwd=ROOT, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"tests read {path} from git (`git show :{path}`): {done.stderr.strip()}")
    return done.stdout


def committed_files(folder: str, name: str) -> list[str]:
    """The paths under ``folder`` named ``name`` that git tracks (without .git: that the tree holds)."""
    if not IN_GIT:
        return sorted(str(p.relative_to(ROOT)) for p in (ROOT / folder).rglob(name) if p.is_file())
    listed = subprocess.run(["git", "ls-files", "--", folder], cwd=ROOT, capture_output=True, text=True,
                            check=True).stdout.split()
    return [path for path in listed if Path(path).name == name]


def load_tool(name: str):
    """A script under tools/ as a module (tools/ is not a package)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, ROOT / "tools" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def pytest_report_header(config):
    return ("committed files read from: " + ("git (`git show :PATH`)" if IN_GIT
            else f"the tree's files ({ROOT} has no .git)"))


needs_git = pytest.mark.skipif(not IN_GIT, reason="needs the git checkout (this copy has no .git)")


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
