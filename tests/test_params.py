import pytest

from hseg.errors import UserError
from hseg.settings.base import check_size
from hseg.settings.evaluate import evaluate_settings
from hseg.settings.study import parse_variant, study_variants
from hseg.settings.train import train_config


def test_default_params_are_the_cpu_study_and_full_is_the_eight_variants(params):
    cfg = train_config(params, "unet-resnet34-scratch", 42)
    assert (cfg.epochs, cfg.batch_size, cfg.lr) == (7, 16, 1e-3)
    assert len(study_variants(params)) == 4
    from tests.test_profiles import profile_params
    full = profile_params(params, "full")
    assert train_config(full, "unet-resnet34-imagenet", 42).epochs == 20 and len(study_variants(full)) == 8


def test_variant_override_applies_to_that_variant_only(params):
    params["variants"]["unet-resnet34-scratch"] = {"lr": 5e-4}
    assert train_config(params, "unet-resnet34-scratch", 42).lr == 5e-4
    assert train_config(params, "unet-resnet50-scratch", 42).lr == 1e-3


@pytest.mark.parametrize("key, value, message", [
    ("epochs", 0, "train.epochs = 0: must be a positive integer"),
    ("epochs", 2.5, "train.epochs = 2.5: must be a positive integer"),
    ("batch_size", -1, "train.batch_size = -1"),
    ("lr", 0, "train.lr = 0: must be a positive number"),
    ("precision", "fp8", "train.precision = 'fp8': allowed values are auto, bf16, fp16, fp32"),
])
def test_bad_train_values_are_named(params, key, value, message):
    params["train"][key] = value
    with pytest.raises(UserError) as err:
        train_config(params, "unet-resnet34-scratch", 42)
    assert message in str(err.value)


def test_bad_variant_override_names_the_variant(params):
    params["variants"]["unet-resnet34-scratch"] = {"lr": -1}
    with pytest.raises(UserError, match=r"variants.unet-resnet34-scratch.lr = -1"):
        train_config(params, "unet-resnet34-scratch", 42)
    params["variants"]["unet-resnet34-scratch"] = {"learning_rate": 1}
    with pytest.raises(UserError, match=r"variants.unet-resnet34-scratch.learning_rate = 1: unknown key; "
                                        r"allowed keys are epochs, batch_size, .*, lr, "):
        train_config(params, "unet-resnet34-scratch", 42)


@pytest.mark.parametrize("axis, value, message", [
    ("archs", ["unet", "pspnett"], "study.archs[1] = 'pspnett': not provided by segmentation-models-pytorch"),
    ("encoders", ["resnet19"], "study.encoders[0] = 'resnet19'"),
    ("inits", ["ssl"], "study.inits[0] = 'ssl': allowed values are scratch, imagenet"),
    ("archs", [], "must be a non-empty list"),
])
def test_bad_study_axes_are_named(params, axis, value, message):
    params["study"][axis] = value
    with pytest.raises(UserError) as err:
        study_variants(params)
    assert message in str(err.value)


def test_variant_names_are_checked():
    assert parse_variant("deeplabv3plus-resnet50-imagenet") == ("deeplabv3plus", "resnet50", "imagenet")
    with pytest.raises(UserError, match="arch = 'fpm'"):
        parse_variant("fpm-resnet34-scratch")
    assert parse_variant("fpn-timm-efficientnet-b0-scratch") == ("fpn", "timm-efficientnet-b0", "scratch")
    with pytest.raises(UserError, match="expected <arch>-<encoder>-<init>"):
        parse_variant("unet")


def test_sizes_must_be_multiples_of_32():
    assert check_size("prepare.size", 96) == 96
    with pytest.raises(UserError, match=r"prepare.size = 100: .*multiple of 32 \(try 96 or 128\)"):
        check_size("prepare.size", 100)
    with pytest.raises(UserError, match="positive integer"):
        check_size("prepare.size", 0)


def test_any_smp_architecture_and_encoder_is_a_params_only_change(params):
    """No allow-list in the code: names are checked against smp's own registries."""
    from hseg.models import build_model
    params["study"].update(archs=["fpn"], encoders=["resnet18"], inits=["scratch"])
    assert study_variants(params) == ["fpn-resnet18-scratch"]
    cfg = train_config(params, "fpn-resnet18-scratch", 42)
    model = build_model(cfg.arch, cfg.encoder, cfg.init, 7)
    assert type(model).__name__ == "FPN" and model.encoder.__class__.__name__ == "ResNetEncoder"


def test_tta_sides_are_a_list_of_multiples_of_32(params):
    assert evaluate_settings(params).tta_sides == ()
    params["evaluate"]["tta_sides"] = [160, 192]
    assert evaluate_settings(params).tta_sides == (160, 192)
    for value, message in ((192, r"evaluate.tta_sides = 192: must be a list"),
                           ([160, 100], r"evaluate.tta_sides\[1\] = 100: .*multiple of 32"),
                           ([0], r"evaluate.tta_sides\[0\] = 0: must be a positive integer")):
        params["evaluate"]["tta_sides"] = value
        with pytest.raises(UserError, match=message):
            evaluate_settings(params)


def test_level_weight_is_a_non_negative_number_for_the_flat_loss_only(params):
    assert train_config(params, "unet-resnet34-scratch", 42).level_weight == 0
    params["train"]["level_weight"] = 0.5
    assert train_config(params, "unet-resnet34-scratch", 42).level_weight == 0.5
    params["train"]["head"] = "tree"
    with pytest.raises(UserError, match=r"train.level_weight = 0.5: applies to the flat head only"):
        train_config(params, "unet-resnet34-scratch", 42)
    params["train"].update(head="flat", level_weight=-1)
    with pytest.raises(UserError, match=r"train.level_weight = -1"):
        train_config(params, "unet-resnet34-scratch", 42)


def test_decoder_width_is_a_positive_number_for_archs_with_decoder_channels(params):
    assert train_config(params, "unet-resnet34-scratch", 42).decoder_width == 1.0
    params["train"]["decoder_width"] = 0.5
    assert train_config(params, "unet-resnet34-scratch", 42).decoder_width == 0.5
    assert train_config(params, "deeplabv3plus-resnet50-imagenet", 42).decoder_width == 0.5
    for value in (0, -0.5, "half", True):
        params["train"]["decoder_width"] = value
        with pytest.raises(UserError, match=rf"train.decoder_width = {value!r}: must be a positive number"):
            train_config(params, "unet-resnet34-scratch", 42)
    # FPN has no decoder_channels argument: refused before any compute, unless its variant sets 1
    params["train"]["decoder_width"] = 0.5
    with pytest.raises(UserError, match=r"train.decoder_width = 0.5: fpn has no decoder_channels to scale.*"
                                        r"variants.<variant>.decoder_width.*unet"):
        train_config(params, "fpn-resnet34-scratch", 42)
    params["variants"]["fpn-resnet34-scratch"] = {"decoder_width": 1}
    assert train_config(params, "fpn-resnet34-scratch", 42).decoder_width == 1.0
