"""The training loop (hseg/train.py) on synthetic data: determinism, divergence, batching, sizes and
progressive resizing, precision, decoder width and compilation."""
# ruff: noqa: F811 (the fixture imported from tests.workdir is a test argument of the same name)
import numpy as np
import pytest
import torch
import yaml

from hseg.errors import UserError
from hseg.settings.train import train_config
from hseg.train import check_batching, train_variant
from tests.synthetic import prepared_split, workdir_config
from tests.workdir import VARIANT, train_once, workdir  # noqa: F401 (workdir: a fixture)


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


def test_diverging_loss_stops_with_epoch_and_batch_and_writes_no_model(workdir, tree, tmp_path):
    with pytest.raises(UserError, match=r"loss became (nan|inf) at epoch 1, batch \d+.*No model was written"):
        train_once(workdir, tree, tmp_path, epochs=1, lr=1e30, precision="fp32")
    assert not (tmp_path / "w.pt").exists()


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


@pytest.mark.parametrize("batch, processes, accumulate, ok", [
    (16, 1, 1, True), (16, 2, 4, True), (16, 1, 8, True), (16, 2, 8, False), (16, 1, 16, False),
    (5, 1, 1, True), (25, 1, 1, True), (12, 1, 5, False), (2, 1, 1, True), (1, 1, 1, False),
])
def test_every_micro_batch_has_at_least_two_images(params, batch, processes, accumulate, ok):
    params["train"].update(batch_size=batch, accumulate=accumulate)
    cfg = train_config(params, VARIANT, 42)
    if not ok:
        with pytest.raises(UserError, match="at least 2 images"):
            check_batching(cfg, processes, 2826)
        return
    steps = check_batching(cfg, processes, 2826)
    assert steps == 2826 // batch  # the shuffled remainder is dropped
    assert batch // (processes * accumulate) >= 2


def test_zero_init_residual_zeroes_each_blocks_last_batchnorm_and_nothing_else(workdir, tree):
    """train.zero_init_residual: the last BatchNorm scale of each of ResNet34's 16 blocks starts at 0; every
    other tensor is what the default recipe builds (no random number drawn differently)."""
    from hseg.train import build_training_model
    plain, _ = build_training_model(workdir_config(workdir), tree, torch.device("cpu"), 1)
    zeroed, _ = build_training_model(workdir_config(workdir, zero_init_residual=True), tree, torch.device("cpu"), 1)
    last_bn = {f"encoder.layer{i}.{b}.bn2.weight" for i, n in enumerate((3, 4, 6, 3), 1) for b in range(n)}
    changed = {k for k, v in zeroed.state_dict().items() if not torch.equal(v, plain.state_dict()[k])}
    assert changed == last_bn
    assert all(not zeroed.state_dict()[k].any() for k in last_bn)


def test_zero_init_residual_refuses_an_encoder_without_resnet_blocks(workdir, tree):
    from hseg.train import build_training_model
    cfg = workdir_config(workdir, "unet-mobilenet_v2-scratch", zero_init_residual=True)
    with pytest.raises(UserError, match="train.zero_init_residual: the mobilenet_v2 encoder has no ResNet blocks"):
        build_training_model(cfg, tree, torch.device("cpu"), 1)


def test_person_views_train_and_change_the_result(workdir, tree, tmp_path):
    """train.augment.person_crop takes a share of the training views around the people (the synthetic masks'
    labelled pixels): the run trains, and differs from the run without it."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    plain, _ = train_once(workdir, tree, tmp_path / "a", epochs=1)
    params = yaml.safe_load((workdir / "params.yaml").read_text())
    framed, history = train_once(workdir, tree, tmp_path / "b", epochs=1,
                                 augment={**params["train"]["augment"], "person_crop": 0.5})
    assert len(history) == 1 and np.isfinite(history[0]["train_loss"])
    assert not all(torch.equal(plain[k], framed[k]) for k in plain)
