"""hseg/settings: params.yaml is the one source of values (every key required, unknown keys refused,
types strict), each problem one line `<key.path> = <value!r>: <what is allowed>`, and the committed
params give the same TrainConfig, value for value and type for type, as before the settings models."""
import copy
import dataclasses
import json
import re

import pytest

from hseg.errors import UserError
from hseg.settings.base import DEVICES, PRECISIONS, load_params, parse_params
from hseg.settings.classes import class_tree
from hseg.settings.data import data_settings, prepare_settings
from hseg.settings.evaluate import evaluate_settings
from hseg.settings.plot import plot_settings
from hseg.settings.study import study_settings, study_variants
from hseg.settings.train import train_config
from tests.conftest import COMMITTED_PARAMS
from tests.synthetic import CLASSES
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
    decoder_width=1.0, augment=dict(hflip=True, scale=(0.5, 2.0), shift=0.0, rotate=0.0, brightness=0.0, contrast=0.0),
    progressive=())


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


def assert_config(cfg, want: dict):
    got = dataclasses.asdict(cfg)
    assert got == want                                   # tuples stay tuples
    # the resume fingerprint's form (hseg.train.fingerprint): floats stay floats, bools bools
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


def test_the_other_sections_read_as_before(committed):
    ev = evaluate_settings(committed)
    assert (ev.batch_size, ev.precision, ev.device, ev.flip_tta, ev.tta_sides) == (16, "auto", "auto", False, ())
    plot = plot_settings(committed)
    assert (plot.dpi, plot.grid_images, plot.worst_cases) == (100, 4, 4)
    prep = prepare_settings(committed)
    assert (prep.size, prep.workers) == (256, 0)
    data = data_settings(committed)
    assert (data.root, data.train_ids, data.val_ids, data.classes_file, data.dev_fraction) == (
        "data/pascal-part", "train_id.txt", "val_id.txt", "classes.txt", 0.1)
    study = study_settings(committed)
    assert study.seeds == [42, 43, 44] and study.variants == study_variants(committed)
    assert [level.names for level in class_tree(committed, CLASSES).levels][1] == ("bg", "upper_body", "lower_body")
    assert "auto" in PRECISIONS and DEVICES == ("auto", "cpu", "cuda")


# --- one source of values: every key of params.yaml is required ----------------------------------

READERS = {"data": data_settings, "prepare": prepare_settings, "study": study_settings,
           "train": lambda p: train_config(p, VARIANT, 42), "evaluate": evaluate_settings, "plot": plot_settings,
           "classes": lambda p: class_tree(p, CLASSES)}


def key_paths(node: dict, prefix: tuple = ()):
    for key, value in node.items():
        yield prefix + (key,)
        if isinstance(value, dict) and prefix + (key,) != ("classes", "tree"):
            yield from key_paths(value, prefix + (key,))


@pytest.mark.parametrize("path", [p for p in key_paths(parse_params(COMMITTED_PARAMS, "params.yaml"))
                                  if p[0] in READERS and len(p) > 1], ids=".".join)
def test_a_missing_key_is_an_error_not_a_default(committed, path):
    node = committed
    for key in path[:-1]:
        node = node[key]
    del node[path[-1]]
    with pytest.raises(UserError) as err:
        READERS[path[0]](committed)
    assert str(err.value) == f"{'.'.join(path)}: missing; params.yaml must set it (every key is required: " \
                             f"the code has no defaults)"


@pytest.mark.parametrize("section", sorted(READERS))
def test_unknown_keys_are_refused_in_every_section(committed, section):
    committed[section]["colour"] = "blue"
    with pytest.raises(UserError, match=rf"^{section}.colour = 'blue': unknown key; allowed keys are "):
        READERS[section](committed)


def test_unknown_keys_inside_nested_mappings_and_sections(committed, tmp_path):
    committed["train"]["scheduler"]["T0"] = 10
    with pytest.raises(UserError, match=r"train.scheduler.T0 = 10: unknown key; allowed keys are name, warmup_epochs, "
                                        r"T_0, eta_min"):
        train_config(committed, VARIANT, 42)
    path = tmp_path / "params.yaml"
    path.write_text("trian:\n  epochs: 3\n")
    with pytest.raises(UserError, match=r"trian = \{'epochs': 3\}: unknown section; the sections are data, classes, "):
        load_params(path)


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


@pytest.mark.parametrize("seeds, message", [
    ([], "study.seeds = []: must be a non-empty list of distinct integers >= 0, e.g. [42, 43, 44]"),
    (42, "study.seeds = 42: must be a non-empty list of distinct integers >= 0"),
    ([42, 43, 42], "study.seeds = [42, 43, 42]: the seeds must be distinct; 42 appear(s) more than once"),
    ([42, -1], "study.seeds[1] = -1: must be an integer >= 0"),
    ([True], "study.seeds[0] = True: must be an integer >= 0"),
    ([4.5], "study.seeds[0] = 4.5: must be an integer >= 0"),
])
def test_study_seeds_are_distinct_non_negative_integers(committed, seeds, message):
    committed["study"]["seeds"] = seeds
    with pytest.raises(UserError) as err:
        study_settings(committed)
    assert str(err.value).startswith(message)


def test_dev_fraction_is_a_share_from_0_to_half(committed):
    for ok in (0, 0.0, 0.25, 0.5):
        committed["data"]["dev_fraction"] = ok
        assert data_settings(committed).dev_fraction == ok and isinstance(data_settings(committed).dev_fraction, float)
    for bad in (0.6, -0.1, True, "0.1", None):
        committed["data"]["dev_fraction"] = bad
        with pytest.raises(UserError, match=rf"^data.dev_fraction = {bad!r}: must be a number from 0 to 0.5 "
                                            r"\(the share of train ids held out as the dev split\)$"):
            data_settings(committed)


@pytest.mark.parametrize("key, value, message", [
    ("epochs", True, "train.epochs = True: must be a positive integer"),       # a bool is not an int
    ("epochs", 20.0, "train.epochs = 20.0: must be a positive integer"),       # nor is a float
    ("batch_size", "16", "train.batch_size = '16': must be a positive integer"),
    ("lr", True, "train.lr = True: must be a positive number"),
    ("lr", float("inf"), "train.lr = inf: must be a positive number"),
    ("crop", -32, "train.crop = -32: must be 0 (train on the whole cached image) or a positive multiple of 32"),
    ("device", "tpu", "train.device = 'tpu': allowed values are auto, cpu, cuda"),
    ("scheduler", "warmup_cosine", "train.scheduler = 'warmup_cosine': must be a mapping of name, warmup_epochs, "
                                   "T_0, eta_min"),
])
def test_types_are_strict(committed, key, value, message):
    committed["train"][key] = value
    with pytest.raises(UserError) as err:
        train_config(committed, VARIANT, 42)
    assert str(err.value) == message


def test_renamed_keys_say_their_new_names(committed):
    """params.yaml files written before the renames get the new key's name, not only 'unknown key'."""
    committed["train"]["loss"] = committed["train"].pop("head")
    with pytest.raises(UserError, match=r"(?m)^train.loss = 'flat': renamed to head \(flat \| tree"):
        train_config(committed, VARIANT, 42)
    committed["study"]["weights"] = committed["study"].pop("inits")
    with pytest.raises(UserError, match=r"(?m)^study.weights = \[.*\]: renamed to inits \(scratch \| imagenet"):
        study_settings(committed)


def test_every_problem_is_one_line_in_params_order(committed):
    committed["train"].update(epochs=0, optimizer="sgd", compile="no", colour=1)
    committed["train"]["augment"]["rotate"] = -5
    with pytest.raises(UserError) as err:
        train_config(committed, VARIANT, 42)
    assert str(err.value).splitlines() == [
        "train.epochs = 0: must be a positive integer",
        "train.optimizer = 'sgd': allowed values are adam, adamw",
        "train.compile = 'no': must be true or false",
        "train.augment.rotate = -5: must be a number >= 0",
        "train.colour = 1: unknown key; allowed keys are epochs, batch_size, crop, progressive, optimizer, lr, "
        "weight_decay, scheduler, ema, head, loss_weights, level_weight, class_weights, tree_loss, val_every, "
        "precision, device, processes, accumulate, compile, decoder_width, augment"]


def test_a_variant_override_is_named_where_it_is_set(committed):
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
