"""The benchmark scripts still run (tiny settings, CPU), so a lent GPU session can use them at once."""
import json
import subprocess
import sys

import yaml

from tests.conftest import ROOT


def test_study_timing_trains_and_evaluates_each_variant(tmp_path, params):
    params["prepare"]["size"] = 32
    params["train"]["batch_size"] = 4
    params["evaluate"]["batch_size"] = 4
    params["study"].update(archs=["unet", "deeplabv3plus"], encoders=["resnet34"], weights=["imagenet"])
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    out = tmp_path / "timing.json"
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "study_timing.py"), "--epochs", "1",
                           "--jobs", "2", "--train-images", "8", "--val-images", "4", "--json", str(out)],
                          cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    result = json.loads(out.read_text())
    assert [r["variant"] for r in result["variants"]] == ["unet-resnet34-imagenet", "deeplabv3plus-resnet34-imagenet"]
    for r in result["variants"]:
        assert r["epochs"] == 1 and r["train_s"] > 0 and r["evaluate_s"] > 0
        assert abs(r["train_img_s"] - 8 / r["train_s"]) < 1e-6
        assert 0 <= r["miou2"] <= 1
    assert "2 variant(s) on cpu, 2 at a time, random data" in done.stdout


def test_study_timing_rejects_an_unknown_variant_before_any_work(tmp_path, params):
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "study_timing.py"), "--variants", "unet-vgg99-scratch"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr.startswith("error: ") and "vgg99" in done.stderr
    assert not any(tmp_path.glob("hseg-study-timing-*"))
