"""ImageNet encoder weights: from a pre-seeded HF cache offline, or a fast, clear failure."""
import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import segmentation_models_pytorch as smp
import torch
from safetensors.torch import save_file

from hseg.errors import UserError
from hseg.models import build_model, pretrained_source
from tests.conftest import COMMITTED_PARAMS

ROOT = Path(__file__).resolve().parent.parent


def seed_hub_cache(cache: Path, encoder: str) -> dict:
    """Write random encoder weights in the Hugging Face cache layout smp 0.6 reads:
    models--smp-hub--<enc>.imagenet/{blobs/<sha256>, snapshots/<rev>/<file> -> blob, refs/main}."""
    repo_id, revision = pretrained_source(encoder)
    torch.manual_seed(1)
    state = {k: torch.randn_like(v.float()).to(v.dtype) if v.is_floating_point() else v
             for k, v in smp.encoders.get_encoder(encoder, weights=None).state_dict().items()}
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    snap = repo / "snapshots" / revision
    (repo / "blobs").mkdir(parents=True)
    snap.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(revision)
    tmp = repo / "weights.tmp"
    save_file(state, str(tmp))
    files = {"model.safetensors": tmp.read_bytes(), "config.json": json.dumps({"encoder": encoder}).encode()}
    tmp.unlink()
    for name, data in files.items():
        blob = repo / "blobs" / hashlib.sha256(data).hexdigest()
        blob.write_bytes(data)
        (snap / name).symlink_to(os.path.relpath(blob, snap))
    return state


def test_seeded_cache_loads_without_network(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    state = seed_hub_cache(tmp_path, "resnet34")
    model = build_model("unet", "resnet34", "imagenet", 7)
    loaded = model.encoder.state_dict()
    assert torch.equal(loaded["conv1.weight"], state["conv1.weight"])
    assert all(torch.equal(loaded[k], v) for k, v in state.items())
    assert not torch.equal(build_model("unet", "resnet34", "scratch", 7).encoder.state_dict()["conv1.weight"],
                           state["conv1.weight"])


def test_missing_weights_say_which_files_and_how_to_get_them(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(UserError) as err:
        build_model("deeplabv3plus", "resnet50", "imagenet", 7)
    text = str(err.value)
    _, revision = pretrained_source("resnet50")
    assert f"models--smp-hub--resnet50.imagenet/snapshots/{revision}/model.safetensors" in text
    assert "snapshot_download('smp-hub/resnet50.imagenet'" in text and "init 'scratch'" in text


@pytest.mark.slow
def test_train_stage_without_cache_or_network_fails_in_seconds(tmp_path):
    """The real stage, no HF_HUB_OFFLINE: the hub is tried, fails (no network), one clear line."""
    env = {**os.environ, "HF_HUB_CACHE": str(tmp_path / "empty"), "PYTHONPATH": str(ROOT)}
    env.pop("HF_HUB_OFFLINE", None)
    start = time.monotonic()
    (tmp_path / "params.yaml").write_text(COMMITTED_PARAMS)
    proc = subprocess.run([sys.executable, "-m", "stages.train", "unet-resnet34-imagenet", "42",
                           "--params", str(tmp_path / "params.yaml")],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert time.monotonic() - start < 60
    assert proc.stderr.startswith("error: ImageNet weights for resnet34 are not in the Hugging Face cache")
    assert "Traceback" not in proc.stderr
