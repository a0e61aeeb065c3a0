"""The model factory's decoder_width, against models built directly with smp."""
import pytest
import segmentation_models_pytorch as smp
import torch

from hseg.errors import UserError
from hseg.models import build_model, load_weights, load_weights_meta


def shapes(model):
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def test_width_one_is_exactly_smps_default_model():
    assert shapes(build_model("unet", "resnet34", "scratch", 7, 1.0)) == \
        shapes(smp.Unet("resnet34", encoder_weights=None, classes=7))
    assert shapes(build_model("deeplabv3plus", "resnet34", "scratch", 7)) == \
        shapes(smp.DeepLabV3Plus("resnet34", encoder_weights=None, classes=7))


@pytest.mark.parametrize("arch, cls, width, channels", [
    ("unet", smp.Unet, 0.5, (128, 64, 32, 16, 8)),
    ("unet", smp.Unet, 0.75, (192, 96, 48, 24, 12)),
    ("deeplabv3plus", smp.DeepLabV3Plus, 0.5, 128),
])
def test_width_scales_the_decoder_channels(arch, cls, width, channels):
    model = build_model(arch, "resnet34", "scratch", 7, width)
    assert shapes(model) == shapes(cls("resnet34", encoder_weights=None, classes=7, decoder_channels=channels))
    # the encoder is untouched: only the decoder (and the head reading it) shrink
    assert shapes(model.encoder) == shapes(build_model(arch, "resnet34", "scratch", 7).encoder)
    last = channels[-1] if isinstance(channels, tuple) else channels
    assert model.segmentation_head[0].in_channels == last


def test_arch_without_decoder_channels_refuses_a_width():
    assert isinstance(build_model("fpn", "resnet18", "scratch", 7, 1.0), smp.FPN)
    with pytest.raises(UserError, match="fpn has no decoder_channels to scale"):
        build_model("fpn", "resnet18", "scratch", 7, 0.5)


def test_weights_file_rebuilds_the_width_it_was_trained_with(tmp_path):
    net = build_model("unet", "resnet34", "scratch", 7, 0.5)
    meta = {"arch": "unet", "encoder": "resnet34", "num_classes": 7, "decoder_width": 0.5}
    torch.save({"meta": meta, "state_dict": net.state_dict()}, tmp_path / "w.pt")
    model, _ = load_weights(tmp_path / "w.pt")
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), net.state_dict().values()))
    # weights written before decoder_width existed have no such key: smp's default decoder
    old = build_model("unet", "resnet34", "scratch", 7)
    del meta["decoder_width"]
    torch.save({"meta": meta, "state_dict": old.state_dict()}, tmp_path / "old.pt")
    assert shapes(load_weights(tmp_path / "old.pt")[0]) == shapes(old)


def test_weights_files_from_before_the_renames_load_under_todays_names(tmp_path):
    """Files trained before ``mode`` became ``head`` and ``weights`` became ``init`` still load,
    and read as today's keys (what evaluate and predict look up)."""
    net = build_model("unet", "resnet34", "scratch", 7)
    meta = {"arch": "unet", "encoder": "resnet34", "num_classes": 7, "mode": "flat", "weights": "scratch"}
    torch.save({"meta": meta, "state_dict": net.state_dict()}, tmp_path / "old.pt")
    for read in (load_weights(tmp_path / "old.pt")[1], load_weights_meta(tmp_path / "old.pt")):
        assert read["head"] == "flat" and read["init"] == "scratch" and read["decoder_width"] == 1.0
        assert "mode" not in read and "weights" not in read
