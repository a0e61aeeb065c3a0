"""hseg/settings/train.py: params.yaml's train section and the variants' overrides give each run's TrainConfig;
the committed params give the same TrainConfig, value for value and type for type, as before the settings
models; every bad value is named in one line `<key.path> = <value!r>: <what is allowed>`."""
import copy
import json
import re

import pytest

from hseg.errors import UserError
from hseg.schedule import epoch_side
from hseg.settings.base import deep_merge
from hseg.settings.data import prepare_settings
from hseg.settings.study import study_variants
from hseg.settings.train import train_config
from tests.test_profiles import profile_params

VARIANT = "unet-resnet34-scratch"


# TrainConfig of every variant of the committed params.yaml (seed 42), written out from the values
# (and types: 1.0 is not 1) that hseg/params.py gave before the settings models replaced it.
COMMITTED = dict(
    epochs=20, batch_size=16, crop=192, optimizer="adamw", lr=0.001, weight_decay=0.0001,
    schedule="warmup_cosine", warmup_epochs=1.0, t0=10, eta_min=0.0, ema=0.0, seed=42, precision="auto",
    device="auto",
    head="flat", loss_weights={"ce": 1.0, "dice": 1.0, "lovasz": 0.0, "focal": 1.0}, class_weights="inverse_sqrt",
    tree_weight=1.0, tree_gamma=2.0, level_weight=0.0, val_every=1, processes=1, accumulate=1, compile=False,
    decoder_width=1.0, augment=dict(hflip=True, scale=(0.5, 2.0), shift=0.0, rotate=0.0, brightness=0.0, contrast=0.0,
                                    person_crop=0.0),
    progressive=(), zero_init_residual=False)  # the last two keys came later, off by default


def expected(variant: str, **changes) -> dict:
    arch, encoder, init = variant.split("-")
    out = copy.deepcopy(COMMITTED)
    out.update(variant=variant, arch=arch, encoder=encoder, init=init)
    for key, value in changes.items():
        if isinstance(value, dict):
            out[key] = {**out[key], **value}
        else:
            out[key] = value
    return out


# The table above uses the names the config had before it became the checked recipe itself; today's
# names are params.yaml's.
RENAMED = {"schedule": ("scheduler", "name"), "warmup_epochs": ("scheduler", "warmup_epochs"),
           "t0": ("scheduler", "T_0"), "eta_min": ("scheduler", "eta_min"),
           "tree_weight": ("tree_loss", "weight"), "tree_gamma": ("tree_loss", "gamma")}


def params_names(old: dict) -> dict:
    new = {key: value for key, value in old.items() if key not in RENAMED}
    for key, (group, name) in RENAMED.items():
        new.setdefault(group, {})[name] = old[key]
    return new


def assert_config(cfg, want: dict):
    got, want = cfg.model_dump(), params_names(want)
    got["progressive"] = tuple(tuple(stage) for stage in got["progressive"])  # [epochs, side] pairs, in order
    assert got == want                                   # the zoom range stays a tuple
    # the resume fingerprint's form (hseg.checkpoint.fingerprint): floats stay floats, bools bools
    assert json.dumps(got, sort_keys=True) == json.dumps(want, sort_keys=True)


@pytest.fixture
def committed(params):
    """The full study, as params.yaml held it before the settings models: the `full` profile over the
    committed params.yaml, scored without TTA (the CPU study's defaults differ from it only in values
    that profile sets, and in flip TTA)."""
    full = profile_params(params, "full")
    full["evaluate"]["flip_tta"] = False
    return full


def test_every_committed_variant_gets_the_same_config_as_before(committed):
    variants = study_variants(committed)
    assert len(variants) == 8
    for variant in variants:
        assert_config(train_config(committed, variant, 42), expected(variant))


def test_overrides_give_the_same_config_as_before(committed):
    committed["train"].update(lr=0.002, level_weight=0.5)
    committed["variants"][VARIANT] = {
        "lr": 1, "scheduler": {"warmup_epochs": 3, "name": "cosine_restarts"},
        "augment": {"rotate": 5, "scale": [1, 1]},
        "loss_weights": {"dice": 0}, "crop": 0, "progressive": [[2, 64], [1, 96]], "epochs": 4, "decoder_width": 0.5}
    committed["variants"]["fpn-resnet18-imagenet"] = {
        "decoder_width": 1, "head": "tree", "class_weights": "none", "tree_loss": {"weight": 2}, "optimizer": "adam",
        "weight_decay": 0, "compile": True, "val_every": 2, "level_weight": 0}
    assert_config(train_config(committed, VARIANT, 42), expected(
        VARIANT, lr=1.0, schedule="cosine_restarts", warmup_epochs=3.0, augment={"rotate": 5.0, "scale": (1.0, 1.0)},
        loss_weights={"dice": 0.0}, crop=0, progressive=((2, 64), (1, 96)), epochs=4, decoder_width=0.5,
        level_weight=0.5))
    assert_config(train_config(committed, "fpn-resnet18-imagenet", 7), expected(
        "fpn-resnet18-imagenet", seed=7, lr=0.002, head="tree", class_weights="none", tree_weight=2.0,
        optimizer="adam", weight_decay=0.0, compile=True, val_every=2))
    assert_config(train_config(committed, "deeplabv3plus-resnet50-imagenet", 42),
                  expected("deeplabv3plus-resnet50-imagenet", lr=0.002, level_weight=0.5))


def test_default_params_are_the_cpu_study_with_the_improved_recipe_and_full_is_the_eight_variants(params):
    cfg = train_config(params, VARIANT, 42)
    assert (cfg.epochs, cfg.batch_size, cfg.lr) == (7, 16, 1e-3)
    assert len(study_variants(params)) == 4
    assert cfg.loss_weights.dice > 0 and cfg.scheduler.name == "warmup_cosine" and cfg.optimizer == "adamw"
    assert cfg.loss_weights.focal > 0 and not cfg.loss_weights.lovasz  # a tie at a third of the cost
    assert cfg.class_weights == "inverse_sqrt"
    full = profile_params(params, "full")       # on a GPU: random crops with zoom ("train small, test big")
    assert train_config(full, "unet-resnet34-imagenet", 42).epochs == 20 and len(study_variants(full)) == 8
    cfg = train_config(full, VARIANT, 42)
    assert 0 < cfg.crop < prepare_settings(full).size and cfg.augment.scale != (1.0, 1.0)


def test_variant_overrides_apply_to_that_variant_only_and_merge_deeply(params):
    params["variants"][VARIANT] = {"lr": 5e-4}
    assert train_config(params, VARIANT, 42).lr == 5e-4
    assert train_config(params, "unet-resnet50-scratch", 42).lr == 1e-3
    params["variants"][VARIANT] = {"scheduler": {"warmup_epochs": 3}, "augment": {"rotate": 5}}
    cfg = train_config(params, VARIANT, 42)
    base = train_config(params, "unet-resnet50-scratch", 42)
    assert cfg.scheduler.warmup_epochs == 3 and cfg.scheduler.name == base.scheduler.name
    assert cfg.scheduler.eta_min == base.scheduler.eta_min
    assert cfg.augment.rotate == 5 and cfg.augment.scale == base.augment.scale
    assert deep_merge({"a": {"b": 1, "c": 2}}, {"a": {"c": 3}}) == {"a": {"b": 1, "c": 3}}


PROGRESSIVE_EXAMPLE = "e.g. [[8, 128], [6, 160]]: 8 epochs at 128 px, 6 at 160, the rest at the full side; [] = off"
ZOOM_RANGE = "must be a zoom range [min, max] with 0 < min <= max, e.g. [0.5, 2.0]; [1, 1] turns zoom off"


@pytest.mark.parametrize("key, value, message", [
    ("epochs", 0, "train.epochs = 0: must be a positive integer"),
    ("epochs", 2.5, "train.epochs = 2.5: must be a positive integer"),
    ("epochs", True, "train.epochs = True: must be a positive integer"),       # a bool is not an int
    ("epochs", 20.0, "train.epochs = 20.0: must be a positive integer"),       # nor is a float
    ("batch_size", -1, "train.batch_size = -1: must be a positive integer"),
    ("batch_size", "16", "train.batch_size = '16': must be a positive integer"),
    ("lr", 0, "train.lr = 0: must be a positive number"),
    ("lr", True, "train.lr = True: must be a positive number"),
    ("lr", float("inf"), "train.lr = inf: must be a positive number"),
    ("precision", "fp8", "train.precision = 'fp8': allowed values are auto, bf16, fp16, fp32"),
    ("device", "tpu", "train.device = 'tpu': allowed values are auto, cpu, cuda"),
    ("crop", -32, "train.crop = -32: must be 0 (train on the whole cached image) or a positive multiple of 32"),
    ("crop", 100, "train.crop = 100: the models need a multiple of 32 (try 96 or 128)"),
    ("scheduler", "warmup_cosine", "train.scheduler = 'warmup_cosine': must be a mapping of name, warmup_epochs, "
                                   "T_0, eta_min"),
    ("scheduler", {"name": "step"}, "train.scheduler.name = 'step': allowed values are warmup_cosine, cosine_restarts"),
    ("augment", {"hflip": "false"}, "train.augment.hflip = 'false': must be true or false"),
    ("augment", {"scale": [2.0, 0.5]}, f"train.augment.scale = [2.0, 0.5]: {ZOOM_RANGE}"),
    ("augment", {"scale": 0.25}, f"train.augment.scale = 0.25: {ZOOM_RANGE}"),
    ("augment", {"person_crop": 1.5}, "train.augment.person_crop = 1.5: must be a number from 0 (off) to 1: the "
                                      "share of training views taken around the people's box"),
    ("zero_init_residual", "yes", "train.zero_init_residual = 'yes': must be true or false"),
    ("loss_weights", {"ce": 0, "dice": 0, "lovasz": 0, "focal": 0},
     "train.loss_weights = {'ce': 0, 'dice': 0, 'lovasz': 0, 'focal': 0}: at least one term needs a weight above 0"),
    ("loss_weights", {"tversky": 1},
     "train.loss_weights.tversky = 1: unknown key; allowed keys are ce, dice, lovasz, focal"),
    ("optimizer", "sgd", "train.optimizer = 'sgd': allowed values are adam, adamw"),
    ("class_weights", "inverse_log", "train.class_weights = 'inverse_log': allowed values are none, inverse_sqrt, "
                                     "inverse, or a number from 0 to 2 (the power p in weight ~ pixel share^-p)"),
    ("compile", 1, "train.compile = 1: must be true or false"),
    ("progressive", [96, 128], f"train.progressive = [96, 128]: must be a list of [epochs, side] pairs, "
                               f"{PROGRESSIVE_EXAMPLE}"),
    ("progressive", [[0, 96]], "train.progressive[0].epochs = 0: must be a positive integer"),
    ("progressive", [[4, 100]], "train.progressive[0].side = 100: the models need a multiple of 32 (try 96 or 128)"),
    ("progressive", [[12, 96], [8, 128]], "train.progressive = [[12, 96], [8, 128]]: its 20 epochs leave none of the "
     "train.epochs = 20 epochs at the full training side; shorten the stages or raise train.epochs "
     f"({PROGRESSIVE_EXAMPLE})"),
    ("progressive", [[4, 192]], "train.progressive[0].side = 192: not below the full training side, train.crop = 192; "
     f"progressive sides must be smaller ({PROGRESSIVE_EXAMPLE})"),
])
def test_bad_train_values_are_named_in_one_line(committed, key, value, message):
    committed["train"].update(epochs=20, crop=192)     # the full study's (profiles/full.yaml)
    committed["train"][key] = deep_merge(committed["train"][key], value) if isinstance(value, dict) else value
    with pytest.raises(UserError) as err:
        train_config(committed, VARIANT, 42)
    assert str(err.value) == message


def test_a_variant_override_is_named_where_it_is_set(committed):
    committed["variants"][VARIANT] = {"lr": -1}
    with pytest.raises(UserError, match=rf"^variants.{VARIANT}.lr = -1: must be a positive number$"):
        train_config(committed, VARIANT, 42)
    committed["variants"][VARIANT] = {"learning_rate": 1}
    with pytest.raises(UserError, match=rf"^variants.{VARIANT}.learning_rate = 1: unknown key; "
                                        r"allowed keys are epochs, batch_size, .*, lr, "):
        train_config(committed, VARIANT, 42)
    committed["variants"][VARIANT] = {"augment": {"rotate": -1}, "progressive": [[2, 64], [1, 100]], "epochs": 5}
    with pytest.raises(UserError) as err:
        train_config(committed, VARIANT, 42)
    assert str(err.value).splitlines() == [
        f"variants.{VARIANT}.progressive[1].side = 100: the models need a multiple of 32 (try 96 or 128)",
        f"variants.{VARIANT}.augment.rotate = -1: must be a number >= 0"]
    committed["variants"][VARIANT] = 5
    with pytest.raises(UserError, match=rf"^variants.{VARIANT} = 5: must be a mapping of train keys to override"):
        train_config(committed, VARIANT, 42)
    committed["variants"][VARIANT] = None      # an empty entry (`name:` in YAML) overrides nothing
    assert_config(train_config(committed, VARIANT, 42), expected(VARIANT))
    del committed["variants"][VARIANT]         # as does no entry: any smp variant can be studied
    assert_config(train_config(committed, VARIANT, 42), expected(VARIANT))


def test_the_shared_recipe_is_checked_on_its_own_too(committed):
    """A variant's override does not hide a bad value in train, which the other variants use."""
    committed["train"]["lr"] = -1
    committed["variants"][VARIANT] = {"lr": 0.1}
    with pytest.raises(UserError, match=r"^train.lr = -1: must be a positive number$"):
        train_config(committed, VARIANT, 42)


def test_the_seed_is_the_study_axis_not_a_train_key(committed):
    reason = re.escape("not a train setting: seeds are the study axis (study.seeds), each variant trains once per seed")
    committed["variants"][VARIANT] = {"seed": 43}
    with pytest.raises(UserError, match=rf"^variants.{VARIANT}.seed = 43: {reason}$"):
        train_config(committed, VARIANT, 42)
    committed["variants"][VARIANT] = {}
    committed["train"]["seed"] = 42
    with pytest.raises(UserError, match=rf"^train.seed = 42: {reason}$"):
        train_config(committed, VARIANT, 42)
    del committed["train"]["seed"]
    assert train_config(committed, VARIANT, 43).seed == 43
    for seed in (-1, True, 4.0):
        with pytest.raises(UserError, match=rf"^seed = {seed!r}: must be an integer >= 0$"):
            train_config(committed, VARIANT, seed)


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


def test_class_weights_setting_takes_a_name_or_a_power_from_0_to_2(params):
    from hseg.errors import UserError
    from hseg.settings.train import train_config
    for ok, read in (("inverse", "inverse"), (0.25, 0.25), (2, 2.0), (0, 0.0)):
        params["train"]["class_weights"] = ok
        assert train_config(params, "unet-resnet34-scratch", 42).class_weights == read
    for bad in (2.5, -0.5, True, "sqrt"):
        params["train"]["class_weights"] = bad
        with pytest.raises(UserError, match=r"^train.class_weights = .*: allowed values are none, inverse_sqrt, "
                                            r"inverse, or a number from 0 to 2"):
            train_config(params, "unet-resnet34-scratch", 42)


def test_progressive_too_long_for_a_variants_epochs_names_that_override(params):
    params["train"].update(epochs=20, progressive=[[6, 64]])
    params["variants"][VARIANT] = {"epochs": 5}
    with pytest.raises(UserError, match=re.escape(f"leave none of the variants.{VARIANT}.epochs = 5 epochs")):
        train_config(params, VARIANT, 42)
    assert train_config(params, "unet-resnet50-scratch", 42).progressive == ((6, 64),)  # 20 epochs there


def test_progressive_stages_give_each_epoch_its_side(params):
    params["train"].update(epochs=6, progressive=[[2, 64], [1, 96]])
    cfg = train_config(params, VARIANT, 42)
    assert cfg.progressive == ((2, 64), (1, 96))
    assert [epoch_side(cfg, e) for e in range(6)] == [64, 64, 96, 0, 0, 0]
    params["train"]["progressive"] = []
    assert [epoch_side(train_config(params, VARIANT, 42), e) for e in range(6)] == [0] * 6
