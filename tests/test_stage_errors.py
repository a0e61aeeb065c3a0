"""Stage scripts on bad input: exit status 2, one actionable line, no traceback, nothing written."""
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from tests.synthetic import make_dataset

ROOT = Path(__file__).resolve().parent.parent


def run_stage(cwd: Path, *args):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=300)


@pytest.fixture
def project(tmp_path, params):
    make_dataset(tmp_path / "data" / "pascal-part", n_train=6, n_val=3)
    params["prepare"]["size"] = 32
    params["train"]["crop"] = 0

    def write(**edits):
        p = yaml.safe_load(yaml.safe_dump(params))
        for dotted, value in edits.items():
            *path, last = dotted.split("__")
            node = p
            for key in path:
                node = node[key]
            node[last] = value
        (tmp_path / "params.yaml").write_text(yaml.safe_dump(p))
    write()
    return SimpleNamespace(path=tmp_path, write=write)


def assert_clean_failure(proc, *fragments):
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "\nerror: " in "\n" + proc.stderr  # after any progress bars
    for fragment in fragments:
        assert fragment in proc.stderr


def test_prepare_with_a_broken_image_writes_nothing(project):
    image = project.path / "data" / "pascal-part" / "JPEGImages" / "2008_000007.jpg"
    image.write_bytes(image.read_bytes()[:200])
    proc = run_stage(project.path, "stages.prepare")
    assert_clean_failure(proc, "2008_000007.jpg", "unreadable or truncated image")
    assert not (project.path / "data" / "prepared").exists()


@pytest.mark.slow
def test_prepare_keeps_the_previous_cache_when_the_new_one_fails(project):
    assert run_stage(project.path, "stages.prepare").returncode == 0
    cache = project.path / "data" / "prepared" / "val.pt"
    before = cache.read_bytes()
    (project.path / "data" / "pascal-part" / "masks" / "2008_000007.png").unlink()
    assert_clean_failure(run_stage(project.path, "stages.prepare"), "id 2008_000007: no mask")
    assert cache.read_bytes() == before


@pytest.mark.parametrize("edits, fragments", [
    ({"prepare__size": 100}, ["prepare.size = 100", "multiple of 32"]),
    ({"data__root": "nowhere"}, ["data.root = 'nowhere'", "dvc pull"]),
    ({"classes__tree": {"body": ["head", "torso"]}}, ["does not cover class(es)"]),
    ({"prepare__workers": -1}, ["prepare.workers = -1"]),
])
def test_prepare_rejects_bad_params_before_decoding(project, edits, fragments):
    project.write(**edits)
    proc = run_stage(project.path, "stages.prepare")
    assert_clean_failure(proc, *fragments)
    assert "img/s" not in proc.stderr  # no decoding progress: it failed before any work


@pytest.mark.slow
@pytest.mark.parametrize("args, edits, fragments", [
    (["stages.train", "unet-resnet34-scratch", "42"], {"train__lr": -0.1}, ["train.lr = -0.1"]),
    (["stages.train", "unet-resnet19-scratch", "42"], {},
     ["encoder = 'resnet19'", "not provided by segmentation-models-pytorch"]),
    (["stages.train", "unet-resnet34-scratch", "42"], {}, ["data/prepared/train.pt not found", "dvc repro prepare"]),
    (["stages.evaluate", "unet-resnet34-scratch", "42"], {"evaluate__precision": "fp8"},
     ["evaluate.precision = 'fp8'"]),
])
def test_train_and_evaluate_reject_bad_input(project, args, edits, fragments):
    project.write(**edits)
    assert_clean_failure(run_stage(project.path, *args), *fragments)


@pytest.mark.slow
def test_debug_flag_shows_the_traceback(project):
    project.write(train__epochs=0)
    proc = run_stage(project.path, "stages.train", "unet-resnet34-scratch", "42", "--debug")
    assert proc.returncode != 0 and "Traceback" in proc.stderr and "train.epochs = 0" in proc.stderr
