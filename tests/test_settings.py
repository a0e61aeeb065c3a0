"""hseg/settings: params.yaml is the one source of values (every key required, unknown keys refused,
types strict), each problem one line `<key.path> = <value!r>: <what is allowed>`; the sections other than
train (tests/test_settings_train.py) read as before the settings models."""
# ruff: noqa: F811 (the fixture imported from tests.test_settings_train is a test argument of the same name)
import pytest

from hseg.errors import UserError
from hseg.settings.base import DEVICES, PRECISIONS, Size, check, load_params, parse_params
from hseg.settings.classes import class_tree
from hseg.settings.data import data_settings, prepare_settings
from hseg.settings.evaluate import evaluate_settings
from hseg.settings.plot import plot_settings
from hseg.settings.study import parse_variant, study_settings, study_variants
from hseg.settings.train import train_config
from tests.conftest import COMMITTED_PARAMS
from tests.synthetic import CLASSES
from tests.test_settings_train import VARIANT, committed  # noqa: F401 (committed: a fixture)


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
        "precision, device, processes, accumulate, compile, decoder_width, zero_init_residual, augment"]


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
    assert check(96, Size, "prepare.size") == 96
    with pytest.raises(UserError, match=r"prepare.size = 100: .*multiple of 32 \(try 96 or 128\)"):
        check(100, Size, "prepare.size")
    with pytest.raises(UserError, match="positive integer"):
        check(0, Size, "prepare.size")


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
