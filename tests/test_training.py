"""Training behaviour on synthetic data: determinism, resume after a kill, divergence,
and `predict` agreeing with `evaluate`."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from hseg.dataset import read_ids
from hseg.errors import UserError
from hseg.metrics import confusion_matrix, hierarchical_scores
from hseg.models import build_model
from hseg.settings.train import train_config
from hseg.tracking import EpochLog, finished_history, read_history
from hseg.train import train_variant
from tests.synthetic import prepared_split, prepared_workdir, train_in_workdir, workdir_config

ROOT = Path(__file__).resolve().parent.parent
VARIANT = "unet-resnet34-scratch"
RUN = f"{VARIANT}-s42"   # a run: the variant trained with seed 42


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """A working folder laid out like the repository, with a prepared 64 px cache."""
    work = tmp_path_factory.mktemp("work")
    prepared_workdir(work, n_train=16, n_val=6, size=64, epochs=3, batch_size=8, crop=32)
    return work


def train_once(work, tree, out: Path, **overrides):
    weights = train_in_workdir(work, tree, out, **overrides)
    return torch.load(weights, weights_only=False)["state_dict"], strip_time(out / "live")


def strip_time(live_dir: Path) -> list[dict]:
    """The dvclive history without the wall-time column, which legitimately differs between runs."""
    return read_history(live_dir).drop(columns="seconds").fillna(-1).to_dict("records")


def stage(work, *args, env_extra=None, **kw):
    env = {**os.environ, "PYTHONPATH": str(ROOT), **(env_extra or {})}
    return subprocess.Popen([sys.executable, "-m", *args], cwd=work, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kw)


@pytest.mark.slow
def test_same_params_give_identical_weights_and_metrics(workdir, tree, tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first, hist_a = train_once(workdir, tree, tmp_path / "a", epochs=2)
    second, hist_b = train_once(workdir, tree, tmp_path / "b", epochs=2)
    assert all(torch.equal(first[k], second[k]) for k in first)
    assert (tmp_path / "a" / "w.pt").read_bytes() == (tmp_path / "b" / "w.pt").read_bytes()  # DVC sees no change
    assert hist_a == hist_b and len(hist_a) == 2
    assert not (tmp_path / "a" / "resume.pt").exists()  # removed once training finished


@pytest.mark.slow
def test_killed_train_stage_resumes_to_the_same_weights(workdir):
    weights = workdir / "models" / f"{RUN}.pt"
    resume = workdir / "models" / ".resume" / f"{RUN}.pt"
    # uninterrupted reference run through the real stage
    ref = stage(workdir, "stages.train", VARIANT, "42", "--no-progress")
    assert ref.wait(timeout=300) == 0, ref.stderr.read()
    reference = torch.load(weights, weights_only=False)["state_dict"]
    reference_history = strip_time(workdir / "dvclive" / RUN)
    weights.unlink()

    proc = stage(workdir, "stages.train", VARIANT, "42", "--no-progress")
    deadline = time.monotonic() + 300
    while not resume.exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert proc.poll() is None, "training finished before it could be interrupted"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert resume.exists() and not weights.exists()

    rerun = stage(workdir, "stages.train", VARIANT, "42", "--no-progress")
    out, err = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, err
    assert f"resuming {VARIANT} after epoch" in out
    resumed = torch.load(weights, weights_only=False)["state_dict"]
    assert all(torch.equal(reference[k], resumed[k]) for k in reference)
    assert strip_time(workdir / "dvclive" / RUN) == reference_history  # no epoch logged twice
    assert not resume.exists()


def test_diverging_loss_stops_with_epoch_and_batch_and_writes_no_model(workdir, tree, tmp_path):
    with pytest.raises(UserError, match=r"loss became (nan|inf) at epoch 1, batch \d+.*No model was written"):
        train_once(workdir, tree, tmp_path, epochs=1, lr=1e30, precision="fp32")
    assert not (tmp_path / "w.pt").exists()


@pytest.mark.slow
def test_predict_pngs_score_like_evaluate(workdir, tree, tmp_path):
    weights = workdir / "models" / f"{RUN}.pt"
    if not weights.exists():
        assert stage(workdir, "stages.train", VARIANT, "42", "--no-progress").wait(timeout=300) == 0
    # scored with flip and multi-scale TTA, which predict must then apply by default, read from the metrics file
    params = yaml.safe_load((workdir / "params.yaml").read_text())
    params["evaluate"].update(flip_tta=True, tta_sides=[96])
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    ev = stage(workdir, "stages.evaluate", VARIANT, "42", "--no-progress", "--params", str(tmp_path / "params.yaml"))
    assert ev.wait(timeout=300) == 0, ev.stderr.read()
    metrics = json.loads((workdir / "metrics" / "runs" / f"{RUN}.json").read_text())
    assert metrics["consistency"] == 1.0
    assert metrics["tta"] == {"flip": True, "sides": [96]}

    root = workdir / "data" / "pascal-part"
    val_ids = read_ids(root / "val_id.txt")
    images = [root / "JPEGImages" / f"{i}.jpg" for i in val_ids]
    (tmp_path / "broken.jpg").write_bytes(b"")
    pred = stage(workdir, "hseg", "predict", "--run", RUN, "--no-progress", "-o", str(tmp_path / "out"),
                 *map(str, images), str(tmp_path / "broken.jpg"))
    out, err = pred.communicate(timeout=300)
    assert pred.returncode == 1 and "broken.jpg" in err  # unreadable file skipped, reported at the end
    assert "test-time augmentation: flip + sides 96 px (as the evaluate stage scored this model" in out
    cm = np.zeros((7, 7), dtype=np.int64)
    for i in val_ids:
        leaf = np.array(Image.open(tmp_path / "out" / f"{i}.png"))
        truth = np.array(Image.open(root / "masks" / f"{i}.png"))
        assert leaf.shape == truth.shape
        assert all((tmp_path / "out" / f"{i}_level{k}.png").is_file() for k in range(3))
        cm += confusion_matrix(torch.from_numpy(truth), torch.from_numpy(leaf), 7).numpy()
    scored = hierarchical_scores(cm, tree)
    for k in range(3):
        assert scored[f"miou{k}"] == pytest.approx(metrics[f"miou{k}"], abs=1e-4)


@pytest.mark.slow
def test_two_cpu_processes_match_one_with_the_same_global_batch(workdir):
    """torchrun with 2 gloo processes (launched by the stage itself) vs one process with the same
    global batch of 8, fp32, 1 epoch. On CPU each process normalises BatchNorm over its own 4 images
    (SyncBatchNorm is GPU-only in PyTorch), so the single process splits each batch the same way
    (train.accumulate = 2). Both run one thread per process (torchrun's default): a different thread
    count alone changes float rounding, which Adam's first steps amplify for near-zero gradients.
    Stated tolerance: at least 99.9% of trained weights within 1e-5 of each other (BatchNorm running
    statistics are per-process buffers and not compared)."""
    params = yaml.safe_load((workdir / "params.yaml").read_text())
    params["train"].update(epochs=1, precision="fp32")
    results = {}
    for processes in (1, 2):
        params["train"]["processes"] = processes
        params["train"]["accumulate"] = 2 // processes
        (workdir / f"params{processes}.yaml").write_text(yaml.safe_dump(params))
        proc = stage(workdir, "stages.train", VARIANT, "42", "--no-progress", "--params", f"params{processes}.yaml",
                     env_extra={"OMP_NUM_THREADS": "1"})
        out, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err
        results[processes] = torch.load(workdir / "models" / f"{RUN}.pt", weights_only=False)["state_dict"]
    torch.manual_seed(42)
    init = build_model("unet", "resnet34", "scratch", 7).state_dict()
    keys = [k for k, v in init.items() if v.is_floating_point() and "running" not in k]
    single, multi = (torch.cat([r[k].float().flatten() for k in keys]) for r in (results[1], results[2]))
    moved = (single - torch.cat([init[k].flatten() for k in keys])).abs().max().item()
    close = ((single - multi).abs() <= 1e-5).float().mean().item()
    print(f"weights within 1e-5: {close:.4%}; largest move from init {moved:.2e}")
    assert moved > 1e-4 and close >= 0.999


def test_tree_head_model_evaluates_and_predicts(workdir, tree, tmp_path):
    """A tree-mode model (12 outputs) goes through evaluate and predict; path inference keeps
    every pixel consistent with the tree."""
    from hseg.evaluate import evaluate_model
    from hseg.models import load_weights
    from hseg.predict import collect_images, predict_files

    train_once(workdir, tree, tmp_path, epochs=1, head="tree")
    model, meta = load_weights(tmp_path / "w.pt")
    assert meta["head"] == "tree" and meta["num_classes"] == 12
    scores, details = evaluate_model(model, meta["head"], prepared_split(workdir, "val"), tree, torch.device("cpu"),
                                     "bf16", 4, progress=False)
    assert scores["consistency"] == 1.0 and 0.0 <= scores["consistency_levelwise_argmax"] <= 1.0
    assert all(0.0 <= scores[f"miou{k}"] <= 1.0 for k in range(3))
    image = next((workdir / "data" / "pascal-part" / "JPEGImages").glob("*.jpg"))
    assert predict_files(collect_images([image]), tmp_path / "w.pt", tmp_path / "pred", progress=False) == []
    leaf = np.array(Image.open(tmp_path / "pred" / f"{image.stem}.png"))
    assert leaf.shape == Image.open(image).size[::-1] and leaf.max() < 7


def test_decoder_width_is_trained_and_recorded_in_the_weights(workdir, tree, tmp_path):
    from hseg.models import load_weights
    state, _ = train_once(workdir, tree, tmp_path, epochs=1, decoder_width=0.5)
    model, meta = load_weights(tmp_path / "w.pt")
    assert meta["decoder_width"] == 0.5 and model.segmentation_head[0].in_channels == 8  # UNet's last block: 16 / 2
    assert all(torch.equal(model.state_dict()[k], v) for k, v in state.items())


def test_auto_precision_without_native_bf16_trains_exactly_as_fp32(workdir, tree, tmp_path, monkeypatch):
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False, raising=False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False, raising=False)
    (tmp_path / "auto").mkdir()
    (tmp_path / "fp32").mkdir()
    auto, _ = train_once(workdir, tree, tmp_path / "auto", epochs=1, precision="auto")
    fp32, _ = train_once(workdir, tree, tmp_path / "fp32", epochs=1, precision="fp32")
    assert all(torch.equal(auto[k], fp32[k]) for k in auto)
    assert torch.load(tmp_path / "auto" / "w.pt", weights_only=False)["meta"]["precision"] == "fp32"


def test_resume_state_needs_the_same_params_data_content_and_code(workdir, tree, tmp_path, monkeypatch):
    """The resume state is reused only by the run that wrote it: a cache with the same number of
    images but one changed pixel, other params, or edited library code start over."""
    import dataclasses
    import shutil

    from hseg import train as train_module
    from hseg.train import LrFactor, ResumeState, build_training_model, fingerprint, make_optimizer

    cfg = workdir_config(workdir)
    cache = prepared_split(workdir, "train")
    net, _ = build_training_model(cfg, tree, torch.device("cpu"), 1)

    def parts():
        opt = make_optimizer(cfg, net)
        return (net, opt, torch.optim.lr_scheduler.LambdaLR(opt, LrFactor(cfg, 2)),
                torch.amp.GradScaler("cpu", enabled=False), torch.Generator())

    ResumeState(tmp_path / "r.pt", fingerprint(cfg, cache)).save(1, *parts(), history=[{"epoch": 1}])
    assert ResumeState(tmp_path / "r.pt", fingerprint(cfg, cache)).restore(*parts()) == (1, [{"epoch": 1}])

    changed = dict(cache, images=cache["images"].clone())
    changed["images"][3, 1, 10, 10] ^= 1  # same count, one pixel differs
    assert len(changed["images"]) == len(cache["images"])
    assert ResumeState(tmp_path / "r.pt", fingerprint(cfg, changed)).restore(*parts()) == (0, [])
    other = dataclasses.replace(cfg, lr=cfg.lr / 2)
    assert ResumeState(tmp_path / "r.pt", fingerprint(other, cache)).restore(*parts()) == (0, [])

    code = tmp_path / "code"
    shutil.copytree(train_module.CODE_DIR, code, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(train_module, "CODE_DIR", code)
    assert ResumeState(tmp_path / "r.pt", fingerprint(cfg, cache)).restore(*parts()) == (1, [{"epoch": 1}])
    (code / "augment.py").write_text((code / "augment.py").read_text() + "\n# edited\n")
    assert ResumeState(tmp_path / "r.pt", fingerprint(cfg, cache)).restore(*parts()) == (0, [])


def test_crop_larger_than_the_cache_is_refused_before_training(workdir, tree, tmp_path):
    with pytest.raises(UserError, match=r"train.crop = 96 is larger than the cached images \(64 px"):
        train_once(workdir, tree, tmp_path, crop=96)
    assert not (tmp_path / "w.pt").exists()


def test_progressive_resizing_trains_the_first_epochs_at_the_smaller_side(workdir, tree, tmp_path, monkeypatch):
    import hseg.train
    sides, model_input = [], hseg.train.model_input
    monkeypatch.setattr(hseg.train, "model_input", lambda x: sides.append(tuple(x.shape[-2:])) or model_input(x))
    train_once(workdir, tree, tmp_path, epochs=2, crop=0, progressive=[[1, 32]])
    assert sides == [(32, 32)] * 2 + [(64, 64)] * 2  # 16 images, batch 8: two steps an epoch


def test_progressive_side_not_below_the_cache_size_is_refused_before_training(workdir, tree, tmp_path):
    with pytest.raises(UserError,
                       match=r"train.progressive side 64 is not below the full training side, the cached 64 px"):
        train_once(workdir, tree, tmp_path, epochs=2, crop=0, progressive=[[1, 64]])  # whole 64 px images
    assert not (tmp_path / "w.pt").exists()


@pytest.mark.parametrize("batch_size, accumulate", [(5, 1), (6, 3)])
def test_deeplab_trains_when_the_split_leaves_a_remainder_of_one(workdir, tree, tmp_path, batch_size, accumulate):
    """16 train images: batch 5 leaves one image over (dropped, never a batch of one, which DeepLabV3+'s
    BatchNorm after ASPP pooling cannot train on); batch 6 in 3 micro-batches of 2 leaves 4 over."""
    cfg = workdir_config(workdir, "deeplabv3plus-resnet34-scratch", epochs=1, batch_size=batch_size,
                         accumulate=accumulate, val_every=1)
    last = train_variant(cfg, tree, prepared_split(workdir, "train"), prepared_split(workdir, "val"),
                         weights_out=tmp_path / "w.pt", live_dir=tmp_path / "live", resume_path=tmp_path / "r.pt",
                         progress=False)
    assert last["epoch"] == 1 and np.isfinite(last["train_loss"])


class _MirrorAveraged(torch.nn.Module):
    """Flip TTA written out independently: the mean of the logits of x and of mirrored x, flipped back."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        return (self.model(x) + torch.flip(self.model(torch.flip(x, dims=[3])), dims=[3])) / 2


def trained_model_and_val(workdir):
    """(weights path, model, its metadata, val cache) of the workdir's variant, trained once."""
    from hseg.models import load_weights
    weights = workdir / "models" / f"{RUN}.pt"
    if not weights.exists():
        assert stage(workdir, "stages.train", VARIANT, "42", "--no-progress").wait(timeout=300) == 0
    model, meta = load_weights(weights)
    return weights, model, meta, prepared_split(workdir, "val")


@pytest.mark.slow
def test_evaluate_flip_tta_scores_the_mirror_averaged_logits(workdir, tree):
    from hseg.evaluate import evaluate_model, evaluate_weights
    from hseg.settings.evaluate import evaluate_settings
    weights, model, meta, val = trained_model_and_val(workdir)
    device = torch.device("cpu")

    def confusion(net, flip_tta):
        return evaluate_model(net, meta["head"], val, tree, device, "fp32", 4, False, flip_tta)[1]["confusion"]

    with_tta = confusion(model, True)
    assert not np.array_equal(with_tta, confusion(model, False))  # precondition: TTA changes some pixel
    np.testing.assert_array_equal(with_tta, confusion(_MirrorAveraged(model).eval(), False))
    # and params' evaluate.flip_tta is what the evaluate stage passes on
    settings = evaluate_settings({"evaluate": {"flip_tta": True, "precision": "fp32", "batch_size": 4,
                                               "device": "cpu", "tta_sides": []}})
    np.testing.assert_array_equal(with_tta, evaluate_weights(weights, val, tree, settings, False)[1]["confusion"])


class _ScaleAveraged(torch.nn.Module):
    """Multi-scale TTA written out independently: the mean of the logits of x and of x resized to each
    side (antialiased when shrinking), each resized back to x's side."""

    def __init__(self, model, sides):
        super().__init__()
        self.model, self.sides = model, sides

    def forward(self, x):
        side = x.shape[-1]
        maps = [self.model(x)]
        for s in self.sides:
            small = torch.nn.functional.interpolate(x, size=(s, s), mode="bilinear", antialias=s < side)
            maps.append(torch.nn.functional.interpolate(self.model(small), size=(side, side), mode="bilinear"))
        return torch.stack(maps).mean(0)


@pytest.mark.slow
def test_evaluate_tta_sides_scores_the_scale_averaged_logits(workdir, tree):
    from hseg.evaluate import evaluate_model, evaluate_weights
    from hseg.settings.evaluate import evaluate_settings
    weights, model, meta, val = trained_model_and_val(workdir)
    side = val["images"].shape[-1]
    sides = (side - 32, side + 32)
    device = torch.device("cpu")

    def confusion(net, tta_sides=(), flip_tta=False):
        return evaluate_model(net, meta["head"], val, tree, device, "fp32", 4, False, flip_tta,
                              tta_sides)[1]["confusion"]

    with_tta = confusion(model, sides)
    assert not np.array_equal(with_tta, confusion(model))  # precondition: TTA changes some pixel
    np.testing.assert_array_equal(with_tta, confusion(_ScaleAveraged(model, sides).eval()))
    # with flips: every view and its mirror image; and params' evaluate.tta_sides reaches the evaluate stage
    both = confusion(_MirrorAveraged(_ScaleAveraged(model, sides)).eval())
    np.testing.assert_array_equal(both, confusion(model, sides, flip_tta=True))
    settings = evaluate_settings({"evaluate": {"flip_tta": True, "tta_sides": list(sides), "precision": "fp32",
                                               "batch_size": 4, "device": "cpu"}})
    np.testing.assert_array_equal(both, evaluate_weights(weights, val, tree, settings, False)[1]["confusion"])


def test_finished_history_refuses_an_interrupted_log_and_names_it(tmp_path):
    """An interrupted run's dvclive log (its last epoch not validated) must not reach the figures."""
    directory = tmp_path / "dvclive" / "unet-resnet34-scratch-s42"
    log = EpochLog(directory, [])
    log.log({"epoch": 1, "lr": 0.001, "train_loss": 2.5, "seconds": 3.0})
    with pytest.raises(UserError, match=r"unet-resnet34-scratch-s42.*epoch 1, which was not validated.*"
                                        r"dvc repro train@unet-resnet34-scratch-42"):
        finished_history(directory, "unet-resnet34-scratch-s42")
    log.log({"epoch": 2, "lr": 0.0005, "train_loss": 2.0, "seconds": 3.0, "val_loss": 2.1, "val_miou0": 0.4})
    history = finished_history(directory, "unet-resnet34-scratch-s42")     # a finished run ends validated
    assert history["epoch"].tolist() == [1, 2]
    assert np.isnan(history["val_loss"][0]) and history["val_loss"][1] == 2.1
    log.log({"epoch": 3, "lr": 0.0001, "train_loss": 1.9, "seconds": 3.0})  # stopped after a validated epoch
    log.close()
    with pytest.raises(UserError, match="epoch 3, which was not validated"):
        finished_history(directory, "unet-resnet34-scratch-s42")


def test_more_processes_than_gpus_is_refused_before_any_work(workdir, tree, tmp_path, monkeypatch):
    """train.processes above the GPU count would die in torch.cuda.set_device ("invalid device ordinal")
    in every extra torchrun process; it is refused first, naming the parameter and the GPU count."""
    from hseg.train import check_processes
    params = yaml.safe_load((workdir / "params.yaml").read_text())
    params["train"].update(processes=2)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(UserError, match=r"train.processes = 2 needs one GPU per process, but this machine has 1 GPU"):
        check_processes(train_config(params, VARIANT, 42))
    check_processes(train_config(params | {"train": params["train"] | {"processes": 1}}, VARIANT, 42))
    with pytest.raises(UserError, match=r"train.processes = 2 .* has 1 GPU"):  # train_variant checks it too
        train_once(workdir, tree, tmp_path, processes=2)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    check_processes(train_config(params, VARIANT, 42))  # on CPU (gloo) any number of processes may run

    # the stage refuses before torchrun starts and before the caches are read: none here
    params["train"].update(device="cuda", processes=3)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    proc = stage(tmp_path, "stages.train", VARIANT, "42", "--no-progress", env_extra={"CUDA_VISIBLE_DEVICES": ""})
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 2 and err.startswith("error: train.processes = 3 needs one GPU per process, but "
                                                   "this machine has 0 GPU(s) (train.device = cuda)"), err


def test_each_rank_saves_and_restores_its_own_rng_state(workdir, tree, tmp_path, monkeypatch):
    """The resume state holds one RNG state per process (CPU and that process's own GPU), and a
    process restores its own: a resume with more processes than wrote it keeps the extra ones' own
    seeding, and no process touches the RNG of a GPU it does not use (set_rng_state_all failed when
    the checkpoint held more GPU states than the resuming machine has GPUs)."""
    from hseg.train import (
        LrFactor,
        ResumeState,
        build_training_model,
        fingerprint,
        make_optimizer,
        rng_state,
        seed_process,
    )
    cfg = train_config(yaml.safe_load((workdir / "params.yaml").read_text()), VARIANT, 42)
    net, _ = build_training_model(cfg, tree, torch.device("cpu"), 1)

    def parts():
        opt = make_optimizer(cfg, net)
        return (net, opt, torch.optim.lr_scheduler.LambdaLR(opt, LrFactor(cfg, 2)),
                torch.amp.GradScaler("cpu", enabled=False), torch.Generator())

    # rank 0 keeps the stream after the model's initialisation (one process is unchanged); others differ
    torch.manual_seed(cfg.seed)
    after_init = torch.get_rng_state()
    seed_process(cfg.seed, 0)
    assert torch.equal(torch.get_rng_state(), after_init)
    per_rank = []
    for rank in (1, 2):
        seed_process(cfg.seed, rank)
        per_rank.append(torch.get_rng_state())
        seed_process(cfg.seed, rank)
        assert torch.equal(torch.get_rng_state(), per_rank[-1])  # reproducible
    assert not torch.equal(per_rank[0], per_rank[1]) and not torch.equal(per_rank[0], after_init)

    # resume state written by 2 GPU processes: each saved its own GPU's state only
    seen = []
    monkeypatch.setattr(torch.cuda, "get_rng_state",
                        lambda device: seen.append(device) or torch.full((8,), device.index, dtype=torch.uint8))
    monkeypatch.setattr(torch.cuda, "get_rng_state_all", lambda: pytest.fail("saved the states of every GPU"))
    states = []
    for rank in (0, 1):
        torch.manual_seed(100 + rank)
        states.append(rng_state(torch.device("cuda", rank)))
    assert seen == [torch.device("cuda", 0), torch.device("cuda", 1)]
    path = ResumeState(tmp_path / "r.pt", fingerprint(cfg, prepared_split(workdir, "train")))
    path.save(1, *parts(), history=[{"epoch": 1}], rng_states=states)

    restored = []
    monkeypatch.setattr(torch.cuda, "set_rng_state", lambda state, device: restored.append((state.tolist(), device)))
    monkeypatch.setattr(torch.cuda, "set_rng_state_all", lambda states: pytest.fail("restored every GPU's state"))
    for rank in (1, 0):  # as many processes as wrote it: each its own state
        torch.manual_seed(0)
        assert path.restore(*parts(), rank=rank, device=torch.device("cuda", rank)) == (1, [{"epoch": 1}])
        assert torch.equal(torch.get_rng_state(), states[rank]["cpu"])
        assert restored[-1] == ([rank] * 8, torch.device("cuda", rank))
    seed_process(cfg.seed, 2)  # a third process (more than wrote the checkpoint) keeps its own seeding
    assert path.restore(*parts(), rank=2, device=torch.device("cuda", 2)) == (1, [{"epoch": 1}])
    assert torch.equal(torch.get_rng_state(), per_rank[1]) and len(restored) == 2
    torch.manual_seed(0)  # and a CPU process (a GPU checkpoint resumed on a CPU) restores only the CPU state
    assert path.restore(*parts(), rank=0, device=torch.device("cpu")) == (1, [{"epoch": 1}])
    assert torch.equal(torch.get_rng_state(), states[0]["cpu"]) and len(restored) == 2


def _nonfinite_worker(rank: int, store: str, out: str, params: dict) -> None:
    """One of 2 gloo processes: a step whose loss is NaN on process 1 only, then a finite step."""
    import json as json_

    import torch.distributed as dist
    import torch.nn.functional as F

    from hseg.train import Learner, train_step
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=2)
    try:
        cfg = train_config(params, VARIANT, 42)
        torch.manual_seed(0)
        net = torch.nn.Conv2d(3, 7, 1)
        model = torch.nn.parallel.DistributedDataParallel(net)
        poison = {"on": True}

        def loss_fn(logits, labels):
            loss = F.cross_entropy(logits.float(), labels.long(), ignore_index=255)  # IGNORE: outside the image
            return loss * float("nan") if poison["on"] and rank == 1 else loss

        learner = Learner(model, torch.optim.SGD(net.parameters(), lr=0.1), torch.amp.GradScaler("cpu", enabled=False),
                          loss_fn, torch.Generator().manual_seed(0), torch.device("cpu"), rank, 2)
        gen = torch.Generator().manual_seed(1)
        images = torch.randint(0, 256, (4, 3, 8, 8), dtype=torch.uint8, generator=gen)
        masks = torch.randint(0, 7, (4, 8, 8), dtype=torch.uint8, generator=gen)
        rows = []
        for _ in range(2):
            before = [p.detach().clone() for p in net.parameters()]
            loss = train_step(learner, images, masks, torch.arange(4), cfg)
            rows.append({"loss": repr(loss),
                         "updated": any(not torch.equal(a, b) for a, b in zip(before, net.parameters()))})
            poison["on"] = False
        Path(out, f"rank{rank}.json").write_text(json_.dumps(rows))
    finally:
        dist.destroy_process_group()


def test_a_nonfinite_loss_on_one_process_stops_every_process_alike(workdir, tmp_path):
    """2 gloo processes, the loss NaN on process 1 only: both return a non-finite loss from the same
    step and neither updates its weights (an early return on process 1 left process 0 waiting in the
    gradient all-reduce until torchrun killed both); the next, finite step updates both."""
    import torch.multiprocessing as mp
    params = yaml.safe_load((workdir / "params.yaml").read_text())
    params["train"].update(batch_size=4, crop=0, accumulate=1, precision="fp32")
    context = mp.start_processes(_nonfinite_worker, args=(str(tmp_path / "store"), str(tmp_path), params), nprocs=2,
                                 join=False, start_method="spawn")
    deadline = time.monotonic() + 240
    while not context.join(timeout=5):
        if time.monotonic() > deadline:
            for p in context.processes:
                p.kill()
            pytest.fail("the processes hung")
    rows = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    for first, second in rows:
        assert first == {"loss": "nan", "updated": False}
        assert np.isfinite(float(second["loss"])) and second["updated"]
    assert rows[0][1]["loss"] == rows[1][1]["loss"]  # the all-reduced mean, the same on both


def test_training_without_dvclive_writes_the_same_weights_and_says_so_once(workdir, tree, tmp_path, monkeypatch,
                                                                           capfd):
    """A GPU machine may have torch and smp but not dvclive (nor dvc): training runs, logs nothing
    per epoch, writes the same weights, and says so once per process."""
    import hseg.tracking
    (tmp_path / "with").mkdir()
    reference, _ = train_once(workdir, tree, tmp_path / "with", epochs=1)
    capfd.readouterr()
    monkeypatch.setitem(sys.modules, "dvclive", None)  # `import dvclive` raises ImportError
    monkeypatch.setattr(hseg.tracking, "_said_no_dvclive", False)
    for run in ("a", "b"):
        weights = torch.load(train_in_workdir(workdir, tree, tmp_path / run, epochs=1),
                             weights_only=False)["state_dict"]
        assert all(torch.equal(reference[k], weights[k]) for k in reference)
        assert not (tmp_path / run / "live").exists() or not any((tmp_path / run / "live").iterdir())
    assert capfd.readouterr().err.count("dvclive is not installed: per-epoch metrics are not logged") == 1


def test_compile_uses_static_shapes_on_a_gpu_only(workdir, tree, monkeypatch):
    """dynamic=False: progressive resizing then compiles one graph per side, instead of a dynamic-shape
    graph (recompiled at the second side) that also serves the full-size epochs."""
    import hseg.train
    from hseg.train import build_training_model
    calls = []
    monkeypatch.setattr(hseg.train, "prepare_model", lambda net, device: net)  # no GPU to move it to
    monkeypatch.setattr(torch, "compile", lambda model, **kw: calls.append(kw) or model)
    params = yaml.safe_load((workdir / "params.yaml").read_text())
    params["train"].update(compile=True)
    cfg = train_config(params, VARIANT, 42)
    build_training_model(cfg, tree, torch.device("cpu"), 1)
    assert calls == []  # CUDA only
    build_training_model(cfg, tree, torch.device("cuda", 0), 1)
    assert calls == [{"dynamic": False}]
