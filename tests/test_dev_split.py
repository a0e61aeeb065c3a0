"""The dev split: held out of train by a hash of each id, deterministic and disjoint; whether training
validates on it is the settings' decision."""
import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from hseg import layout
from hseg.dataset import in_dev_split, split_dev
from hseg.errors import UserError

ROOT = Path(__file__).resolve().parent.parent

IDS = [f"2009_{i:06d}" for i in range(2000)]


def test_dev_ids_are_those_whose_hash_falls_below_the_fraction():
    for image_id in IDS[:50]:
        share = int(hashlib.sha256(image_id.encode()).hexdigest()[:16], 16) / 2 ** 64   # written out again
        assert in_dev_split(image_id, 0.1) == (share < 0.1)


def test_split_is_disjoint_complete_and_near_the_fraction():
    train, dev = split_dev(IDS, 0.15)
    assert not set(train) & set(dev) and sorted(train + dev) == sorted(IDS)
    assert 0.12 < len(dev) / len(IDS) < 0.18
    assert train == [i for i in IDS if i in set(train)]          # file order kept


def test_split_depends_on_each_id_alone():
    _, dev = split_dev(IDS, 0.1)
    _, dev_reversed = split_dev(IDS[::-1], 0.1)
    _, dev_subset = split_dev(IDS[:1000], 0.1)
    assert sorted(dev_reversed) == sorted(dev)
    assert dev_subset == [i for i in dev if i in set(IDS[:1000])]


def test_no_fraction_holds_out_nothing_and_val_never_enters():
    assert split_dev(IDS, 0.0) == (IDS, [])
    val = [f"2010_{i:06d}" for i in range(100)]
    train, dev = split_dev(IDS, 0.5)
    assert not (set(train) | set(dev)) & set(val)


@pytest.mark.parametrize("fraction", [0.05, 0.1, 0.2])
def test_a_larger_fraction_only_adds_ids(fraction):
    assert set(split_dev(IDS, fraction)[1]) <= set(split_dev(IDS, fraction + 0.05)[1])


def test_the_validation_split_follows_data_dev_fraction_whatever_caches_exist(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert layout.validation_split({"data": {"dev_fraction": 0.1}}) == "dev"   # no cache at all here
    layout.cache_file("dev").parent.mkdir(parents=True)
    layout.cache_file("dev").write_bytes(b"a dev cache left by an earlier prepare")
    assert layout.validation_split({"data": {"dev_fraction": 0.0}}) == "val"
    assert layout.validation_split({"data": {"dev_fraction": 0}}) == "val"
    with pytest.raises(UserError, match=r"^params.yaml: data.dev_fraction is missing"):
        layout.validation_split({"data": {}})


@pytest.mark.slow
def test_training_refuses_a_missing_dev_cache_by_name_and_says_to_run_prepare(tmp_path, params):
    """data.dev_fraction > 0 but prepare has not built the dev split (e.g. it last ran with 0)."""
    params["data"]["dev_fraction"] = 0.1
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    (tmp_path / "data" / "prepared").mkdir(parents=True)
    torch.save({}, tmp_path / "data" / "prepared" / "train.pt")   # read before the validation cache
    proc = subprocess.run([sys.executable, "-m", "stages.train", "unet-resnet34-scratch", "42"], cwd=tmp_path,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.strip().endswith("error: data/prepared/dev.pt not found: run the prepare stage first "
                                        "(`dvc repro prepare`)")
