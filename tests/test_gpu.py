"""CUDA checks, run by benchmarks/gpu_check.sh on a GPU machine; skipped where there is no GPU."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from hseg.evaluate import evaluate_model
from hseg.models import load_checkpoint
from hseg.settings.train import train_config
from hseg.tracking import read_history
from hseg.train import _on_device, train_variant
from tests.synthetic import prepared_workdir

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]
ROOT = Path(__file__).resolve().parent.parent
VARIANT = "deeplabv3plus-resnet34-scratch"


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    work = tmp_path_factory.mktemp("gpu")
    prepared_workdir(work, n_train=32, n_val=8, size=64, epochs=2, batch_size=8, crop=32, device="cuda")
    return work


def caches(work):
    return [torch.load(work / "data" / "prepared" / f"{s}.pt", weights_only=True) for s in ("train", "val")]


def test_caches_live_on_the_gpu_and_training_runs_there(work, tree):
    train, val = caches(work)
    images, masks = _on_device(train, torch.device("cuda"))
    assert images.is_cuda and masks.is_cuda
    cfg = train_config(yaml.safe_load((work / "params.yaml").read_text()), VARIANT, 42)
    last = train_variant(cfg, tree, train, val, weights_out=work / "w.pt", live_dir=work / "live",
                         resume_path=work / "r.pt", progress=False)
    assert 0.0 <= last["val_miou2"] <= 1.0
    state = torch.load(work / "w.pt", weights_only=False)
    assert all(torch.isfinite(v).all() for v in state["state_dict"].values() if v.is_floating_point())


def test_gpu_evaluation_matches_cpu(work, tree):
    if not (work / "w.pt").exists():
        pytest.skip("needs the trained weights of the first test")
    _, val = caches(work)
    scores = {}
    for device in ("cpu", "cuda"):
        model, meta = load_checkpoint(work / "w.pt", device)
        scores[device], _ = evaluate_model(model, meta["mode"], val, tree, torch.device(device), "fp32", 4,
                                           progress=False)
    for k in range(3):
        assert scores["cuda"][f"miou{k}"] == pytest.approx(scores["cpu"][f"miou{k}"], abs=2e-3)


def test_ddp_with_one_process_through_the_stage(work):
    """processes=1 under torchrun: the process group, DDP wrapping, no_sync and shutdown on CUDA."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=1",
           "-m", "stages.train", VARIANT, "--no-progress"]
    done = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert (work / "models" / f"{VARIANT}.pt").is_file()
    assert read_history(work / "dvclive" / VARIANT)["epoch"].tolist() == [1, 2]
