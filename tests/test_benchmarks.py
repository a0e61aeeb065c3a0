"""The benchmark scripts still run (tiny settings, CPU), so they work as they are on a lent GPU machine."""
import csv
import json
import os
import shutil
import subprocess
import sys

import pytest
import torch
import yaml

from tests.conftest import ROOT
from tests.synthetic import CLASSES


def hide_dvclive(tmp_path) -> dict:
    """Environment under which `import dvclive` fails in subprocesses, as on a GPU machine without it."""
    (tmp_path / "hidden" / "dvclive").mkdir(parents=True)
    (tmp_path / "hidden" / "dvclive" / "__init__.py").write_text("raise ImportError('dvclive hidden by the test')\n")
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path / "hidden"), str(ROOT)])}


@pytest.mark.slow
def test_study_timing_projects_the_study_from_stage_processes_without_dvclive(tmp_path, params):
    """Each variant trains in a process and is evaluated in another, as the stages run; a run's projection is
    train process wall + the further epochs at the last whole epoch's seconds (the resume-state save
    included) + evaluate process wall; the study's wall puts its runs (variants x seeds) --jobs at a time.
    ImageNet variants take their scratch twin's figures. And it runs where dvclive is not installed."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        from study_timing import projected_wall
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    assert projected_wall([3, 1, 1, 2], 2) == 4 and projected_wall([3, 1, 1, 2], 1) == 7  # in order, first free slot
    params["prepare"]["size"] = 32
    params["train"].update(batch_size=4, crop=0, epochs=9, val_every=1)
    params["evaluate"]["batch_size"] = 4
    params["study"].update(archs=["unet", "deeplabv3plus"], encoders=["resnet34"], inits=["scratch", "imagenet"],
                           seeds=[1, 2])
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    out = tmp_path / "timing.json"
    env = hide_dvclive(tmp_path)
    assert subprocess.run([sys.executable, "-c", "import dvclive"], env=env, capture_output=True).returncode == 1
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "study_timing.py"), "--one-per-arithmetic",
                           "--jobs", "2", "-S", "train.batch_size=2", "--train-images", "8", "--dev-images", "2",
                           "--val-images", "2", "--json", str(out)], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    result = json.loads(out.read_text())
    assert result["complete"] and result["epochs"] == 2 and result["settings"] == ["train.batch_size=2"]
    assert "no .git here" in result["params_source"]
    timed = {r["variant"]: r for r in result["variants"]}
    assert list(timed) == ["unet-resnet34-scratch", "deeplabv3plus-resnet34-scratch"]
    for r in timed.values():
        assert r["epochs"] == 2 and len(r["whole_epoch_s"]) == 1 and r["epoch_s"] == r["whole_epoch_s"][-1]
        assert 0 < r["epoch_s"] < r["train_wall_s"] and r["evaluate_wall_s"] > 0 and 0 <= r["miou2"] <= 1
        assert r["epoch_img_s"] == pytest.approx(8 / r["epoch_s"])
        assert r["train_img_s"] == pytest.approx(2 * 8 / r["train_wall_s"])
        # projected at the recipe's 9 epochs: 7 more whole epochs
        assert r["projected_s"] == pytest.approx(r["train_wall_s"] + 7 * r["epoch_s"] + r["evaluate_wall_s"])
    study = result["study"]
    assert study["timed_as"] == {"unet-resnet34-scratch": "unet-resnet34-scratch",
                                 "unet-resnet34-imagenet": "unet-resnet34-scratch",
                                 "deeplabv3plus-resnet34-scratch": "deeplabv3plus-resnet34-scratch",
                                 "deeplabv3plus-resnet34-imagenet": "deeplabv3plus-resnet34-scratch"}
    runs = [timed[study["timed_as"][v]]["projected_s"] for _ in range(2) for v in study["timed_as"]]
    assert study["runs"] == 8 and study["projected_wall_s"] == pytest.approx(projected_wall(runs, 2))
    assert "2 variant(s) timed on cpu, 2 at a time, random data" in done.stdout
    assert "projected study (4 variants x 2 seed(s) = 8 runs, 9 epochs each, 2 at a time): " in done.stdout


@pytest.mark.slow
def test_study_timing_refuses_bad_arguments_before_any_work(tmp_path, params):
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    for args, named in ((["--variants", "unet-vgg99-scratch"], "vgg99"), (["--epochs", "1"], "--epochs 1"),
                        (["--profile", "nosuch"], "nosuch")):
        done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "study_timing.py"), *args],
                              cwd=tmp_path, capture_output=True, text=True, timeout=120)
        assert done.returncode == 2, args
        assert done.stderr.startswith("error: ") and named in done.stderr
    assert not any(tmp_path.glob("hseg-study-timing-*"))


@pytest.mark.slow
def test_study_timing_on_prepared_caches(tmp_path, params, dataset):
    from hseg.cache import save_cache
    from hseg.dataset import read_ids
    from hseg.prepare import build_cache
    for split in ("train", "val"):   # no dev cache (data.dev_fraction 0): training validates on val
        cache = build_cache(dataset, read_ids(dataset / f"{split}_id.txt"), 7, 32, keep_full_masks=split == "val",
                            workers=1)
        save_cache({**cache, "leaf_names": CLASSES}, tmp_path / "data" / "prepared" / f"{split}.pt")
    params["train"].update(batch_size=2, crop=0)
    params["data"]["dev_fraction"] = 0.0
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "study_timing.py"), "--real",
                           "--variants", "unet-resnet34-scratch", "--json", "t.json"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    (result,) = json.loads((tmp_path / "t.json").read_text())["variants"]
    assert result["train_img_s"] == pytest.approx(2 * 6 / result["train_wall_s"])  # the dataset's 6 train images
    assert "real data" in done.stdout


@pytest.mark.slow
def test_loss_benchmark_prints_the_same_values_for_smp_and_hseg():
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "losses.py"), "--sizes", "16", "--batch", "2",
                           "--repeats", "1"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    rows = [line for line in done.stdout.splitlines() if "smp " in line]
    assert len(rows) == 2 and all("|value diff| " in r for r in rows)
    assert all(float(r.split("|value diff| ")[1].split(",")[0]) < 1e-5 for r in rows)


@pytest.mark.slow
def test_optimizer_benchmark_times_both_implementations():
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "optimizer.py"), "--models", "unet-resnet34",
                           "--size", "32", "--batch", "2", "--steps", "1"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "unet-resnet34: default " in done.stdout and "fused steps are" in done.stdout


@pytest.mark.slow
def test_runtime_benchmark_times_each_setting_against_default_and_compares_the_weights(tmp_path):
    """Thread placement changes no arithmetic: the same weights bit for bit as default, timed per side."""
    out = tmp_path / "runtime.json"
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "runtime.py"), "--settings", "default",
                           "placement", "--rounds", "2", "--steps", "1", "-S", "prepare.size=64",
                           "-S", "train.batch_size=2", "-S", "train.epochs=3", "-S", "train.progressive=[[2, 32]]",
                           "--json", str(out)], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    result = json.loads(out.read_text())
    assert result["sides"] == [32, 64] and result["epochs"] == [2, 1]
    default, placement = result["results"]["default"], result["results"]["placement"]
    assert placement["env"] == {"OMP_PROC_BIND": "close", "OMP_PLACES": "cores"} and default["env"] == {}
    assert default["same_weights"] and placement["same_weights"] and default["ratio"] == 1.0
    # the epoch-weighted step: two thirds of the epochs at 32 px, one at 64
    assert placement["weighted_step_s"] == pytest.approx((2 * placement["step_s"][0] + placement["step_s"][1]) / 3)
    assert placement["ratio"] == pytest.approx(placement["weighted_step_s"] / default["weighted_step_s"])
    assert "placement" in done.stdout and "weights identical" in done.stdout


@pytest.mark.slow
def test_decoder_benchmark_times_each_width_against_the_first():
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "decoder.py"), "--widths", "1", "0.5",
                           "--sizes", "32", "--batch", "2", "--steps", "1"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "0.5 -> (128, 64, 32, 16, 8)" in done.stdout
    (row,) = [line for line in done.stdout.splitlines() if line.startswith("32 px: ")]
    assert "width 1 " in row and "(1.00x)" in row and "width 0.5 " in row
    refused = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "decoder.py"), "--model", "fpn-resnet18",
                              "--widths", "1", "0.5"], capture_output=True, text=True, timeout=300)
    assert refused.returncode == 2 and "error: decoder_width = 0.5: fpn has no decoder_channels" in refused.stderr


@pytest.mark.slow
def test_evaluate_benchmark_times_both_argmax_ways_and_they_agree():
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "evaluate.py"), "--size", "32", "--images", "3",
                           "--batch", "2", "--repeats", "1"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "Tensor.argmax " in done.stdout and "class_argmax " in done.stdout
    miou = done.stdout.split("mIoU ")[-1].split(" vs ")
    assert len(miou) == 2 and miou[0] == miou[1].strip()


def test_top_down_inference_decides_one_level_at_a_time(tree, monkeypatch):
    """Two pixels where background is the single most likely leaf but the body leaves together
    outweigh it (0.6 and 0.7): top-down picks body, then the heavier half, then its likeliest leaf."""
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    from inference import top_down
    names = list(tree.leaf_names)
    probs = torch.zeros(len(names), 1, 2)
    for pixel, share in enumerate([{"bg": 0.4, "head": 0.2, "torso": 0.05, "up_leg": 0.35},
                                   {"bg": 0.3, "head": 0.26, "torso": 0.24, "low_leg": 0.2}]):
        for name, p in share.items():
            probs[names.index(name), 0, pixel] = p
    assert probs.argmax(0).tolist() == [[0, 0]]  # leaf argmax: background twice
    # pixel 0: body 0.6 > 0.4; lower 0.35 > upper 0.25 -> up_leg. pixel 1: body 0.7; upper 0.5 -> head
    assert top_down(probs, tree).tolist() == [[names.index("up_leg"), names.index("head")]]


def untrained_model_and_val_cache(tmp_path, params, tree, dataset, side: int):
    """Writes val.pt (the synthetic val split at ``side``), w.pt (an untrained UNet-R34) and params.yaml
    under tmp_path, for the scripts that score a model; returns the model."""
    from hseg.cache import save_cache
    from hseg.dataset import read_ids
    from hseg.models import build_model, save_weights
    from hseg.prepare import build_cache
    from hseg.settings.train import train_config
    cache = build_cache(dataset, read_ids(dataset / "val_id.txt"), 7, side, keep_full_masks=True, workers=1)
    save_cache({**cache, "leaf_names": CLASSES}, tmp_path / "val.pt")
    torch.manual_seed(0)
    net = build_model("unet", "resnet34", "scratch", len(CLASSES)).eval()
    save_weights(tmp_path / "w.pt", net, train_config(params, "unet-resnet34-scratch", 42), tree, side)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    return net


@pytest.mark.slow
def test_inference_benchmark_leaf_argmax_row_is_evaluates_score(tmp_path, params, tree, dataset):
    from hseg.cache import load_cache
    from hseg.device import resolve_precision
    from hseg.evaluate import evaluate_model
    net = untrained_model_and_val_cache(tmp_path, params, tree, dataset, 32)
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "inference.py"), "w.pt", "--cache", "val.pt",
                           "--flip-tta"], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    cpu = torch.device("cpu")
    scores, _ = evaluate_model(net, "flat", load_cache(tmp_path / "val.pt"), tree, cpu, resolve_precision("auto", cpu),
                               4, progress=False, flip_tta=True)
    expected = " / ".join("-" if scores[f"miou{k}"] is None else f"{scores[f'miou{k}']:.3f}" for k in range(3))
    assert f"leaf argmax: mIoU {expected};" in done.stdout
    assert "top-down: mIoU " in done.stdout and "flip TTA on" in done.stdout
    wrong = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "inference.py"), "missing.pt"], cwd=tmp_path,
                           capture_output=True, text=True, timeout=300)
    assert wrong.returncode == 2 and wrong.stderr.startswith("error: missing.pt not found")


@pytest.mark.slow
def test_tta_benchmark_scores_each_setting_as_evaluate_does(tmp_path, params, tree, dataset):
    from hseg.cache import load_cache
    from hseg.evaluate import evaluate_model
    from hseg.zoom import BodyZoom
    params["evaluate"]["precision"] = "fp32"  # bf16 rounding of an untrained net's near-ties can differ by process
    net = untrained_model_and_val_cache(tmp_path, params, tree, dataset, 64)
    script = [sys.executable, str(ROOT / "benchmarks" / "tta.py"), "w.pt", "--cache", "val.pt", "--settings"]
    done = subprocess.run(script + ["none", "flip:32,96", "zoom:flip"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    cpu, val = torch.device("cpu"), load_cache(tmp_path / "val.pt")
    rows = {}
    for name, zoom, flip, sides in (("none", False, False, ()), ("flip:32,96", False, True, (32, 96)),
                                    ("zoom:flip", True, True, ())):
        model = BodyZoom(net, tree, "flat") if zoom else net
        scores, _ = evaluate_model(model, "flat", val, tree, cpu, "fp32", 16, False, flip, sides)
        rows[name] = " / ".join("-" if scores[f"miou{k}"] is None else f"{scores[f'miou{k}']:.4f}" for k in range(3))
        assert f"{name}: mIoU {rows[name]};" in done.stdout
    assert rows["none"] != rows["flip:32,96"], "precondition: the two settings score differently"
    # --log puts each candidate's dev scores on record, and refuses a cache that is not dev
    shutil.copy(tmp_path / "val.pt", tmp_path / "dev.pt")
    logged = subprocess.run([*script[:3], "--cache", "dev.pt", "--log", "which TTA", "--settings", "none"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert logged.returncode == 0, logged.stderr
    row = next(csv.DictReader((tmp_path / "results" / "selection.csv").open()))
    assert (row["question"], row["candidate"], row["split"]) == ("which TTA", "w TTA none", "dev")
    assert " / ".join(row[f"miou{k}"] or "-" for k in range(3)) == rows["none"]
    refused = subprocess.run([*script[:3], "--cache", "val.pt", "--log", "x", "--settings", "none"],
                             cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert refused.returncode == 2 and "not the dev cache" in refused.stderr
    for bad, message in (("flip:100", "--settings 'flip:100' side[0] = 100"), ("flip:a", "expected none, flip"),
                         ("zoom:flip:a", "expected none, flip")):
        wrong = subprocess.run(script + [bad], cwd=tmp_path, capture_output=True, text=True, timeout=300)
        assert wrong.returncode == 2 and message in wrong.stderr
