"""predict on photos as people have them: EXIF orientation, nested folders, formats, bounded memory; and its
PNGs of a trained model score as the evaluate stage scored it."""
# ruff: noqa: F811 (the fixture imported from tests.workdir is a test argument of the same name)
import colorsys
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import yaml
from PIL import Image

from hseg import layout
from hseg.colours import level_palette, node_colours
from hseg.dataset import read_ids
from hseg.errors import UserError
from hseg.inference import upsample_argmax
from hseg.metrics import confusion_matrix, hierarchical_scores
from hseg.models import save_weights
from hseg.predict import chosen_tta, collect_images, parser, predict_files, run
from hseg.settings.train import train_config
from hseg.train import build_training_model
from hseg.tree import build_tree
from tests.synthetic import CLASSES
from tests.workdir import RUN, VARIANT, stage, workdir  # noqa: F401 (workdir: a fixture)

ROOT = Path(__file__).resolve().parent.parent
FOUR_LEVELS = {"body": {"upper_body": {"head": None, "torso": None, "arm": ["up_hand", "low_hand"]},
                        "lower_body": {"leg": ["up_leg", "low_leg"]}}}


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    """An untrained unet-resnet34 checkpoint at 64 px (predict's plumbing does not need a good model)."""
    import yaml
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    cfg = train_config(params, "unet-resnet34-scratch", 42)
    tree = build_tree(params["classes"]["tree"], "bg", CLASSES)
    net, _ = build_training_model(cfg, tree, torch.device("cpu"), 1)
    path = tmp_path_factory.mktemp("w") / "w.pt"
    save_weights(path, net, cfg, tree, 64)
    return path


def photo(path: Path, w: int, h: int, orientation: int | None = None, seed: int = 0) -> np.ndarray:
    pixels = np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.fromarray(pixels)
    if orientation:
        exif = Image.Exif()
        exif[0x0112] = orientation
        image.save(path, exif=exif, quality=100)
    else:
        image.save(path)
    return np.asarray(Image.open(path).convert("RGB"))  # the stored pixels after JPEG/PNG coding


def test_exif_rotated_photo_is_predicted_as_a_viewer_shows_it(weights, tmp_path):
    stored = photo(tmp_path / "in" / "phone.jpg", 60, 40, orientation=6)  # 6: turn 90 deg clockwise to view
    shown = np.rot90(stored, k=-1)  # what a viewer displays: 40 wide, 60 high
    assert predict_files(collect_images([tmp_path / "in"]), weights, tmp_path / "out", progress=False) == []
    leaf = np.array(Image.open(tmp_path / "out" / "phone.png"))
    assert leaf.shape == shown.shape[:2] == (60, 40)
    over = np.array(Image.open(tmp_path / "out" / "phone_level0.png"))[:60]
    background = leaf == 0
    assert background.any()
    assert np.array_equal(over[background], shown[background])  # the photo shows through, upright


def test_nested_folders_mirror_and_same_names_do_not_clash(weights, tmp_path):
    photo(tmp_path / "photos" / "a" / "img.jpg", 50, 40, seed=1)
    photo(tmp_path / "photos" / "b" / "deeper" / "img.jpg", 40, 50, seed=2)
    predict_files(collect_images([tmp_path / "photos"]), weights, tmp_path / "out", progress=False)
    assert np.array(Image.open(tmp_path / "out" / "a" / "img.png")).shape == (40, 50)
    assert np.array(Image.open(tmp_path / "out" / "b" / "deeper" / "img.png")).shape == (50, 40)
    assert (tmp_path / "out" / "b" / "deeper" / "img_level2.png").is_file()
    # two folders given: each keeps its own name
    pairs = collect_images([tmp_path / "photos" / "a", tmp_path / "photos" / "b"])
    assert sorted(str(rel) for _, rel in pairs) == ["a/img", "b/deeper/img"]


def test_clashing_outputs_and_overwriting_inputs_are_refused_before_any_work(weights, tmp_path):
    photo(tmp_path / "p" / "img.jpg", 30, 30)
    photo(tmp_path / "p" / "img.png", 30, 30)
    with pytest.raises(UserError, match=r"img.jpg and .*img.png would both write .*img.png"):
        predict_files(collect_images([tmp_path / "p"]), weights, tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()
    (tmp_path / "p" / "img.jpg").unlink()
    with pytest.raises(UserError, match="would overwrite the input photo"):
        predict_files(collect_images([tmp_path / "p"]), weights, tmp_path / "p", progress=False)


def test_colour_format_and_leaf_only(weights, tmp_path):
    photo(tmp_path / "in" / "x.jpg", 40, 30)
    predict_files(collect_images([tmp_path / "in"]), weights, tmp_path / "out", fmt="colour", overlays=False,
                  progress=False)
    leaf = np.array(Image.open(tmp_path / "out" / "x.png"))
    assert leaf.shape == (30, 40, 3)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["x.png"]
    with pytest.raises(UserError, match="--format 'grey'"):
        predict_files(collect_images([tmp_path / "in"]), weights, tmp_path / "o2", fmt="grey", progress=False)


def test_flip_tta_makes_the_prediction_mirror_symmetric(weights, tmp_path):
    # averaging f(x) with mirror(f(mirror x)) makes the map of a mirrored photo the mirrored map exactly;
    # a single pass of an (untrained) network has no such symmetry. 64x64 = the model's size: no resizing.
    pixels = photo(tmp_path / "in" / "a.png", 64, 64, seed=3)
    Image.fromarray(np.ascontiguousarray(pixels[:, ::-1])).save(tmp_path / "in" / "b.png")

    def leaf_maps(out):
        return [np.array(Image.open(tmp_path / out / f"{name}.png")) for name in "ab"]

    predict_files(collect_images([tmp_path / "in"]), weights, tmp_path / "plain", overlays=False,
                  precision="fp32", progress=False)
    a, b = leaf_maps("plain")
    assert len(np.unique(a)) > 1, "the untrained test model predicts one class: the check below would prove nothing"
    assert not np.array_equal(a[:, ::-1], b)
    # through the command line, as a user asks for it
    assert run(parser().parse_args(["--weights", str(weights), str(tmp_path / "in"), "-o", str(tmp_path / "tta"),
                                    "--leaf-only", "--precision", "fp32", "--flip-tta", "--no-progress"])) == 0
    a, b = leaf_maps("tta")
    assert np.array_equal(a[:, ::-1], b)


def test_tta_sides_change_the_prediction_and_bad_sides_are_refused_first(weights, tmp_path):
    photo(tmp_path / "in" / "a.png", 64, 64, seed=3)
    args = ["--weights", str(weights), str(tmp_path / "in"), "--leaf-only", "--precision", "fp32", "--no-progress"]
    maps = {}
    for name, extra in (("plain", []), ("sides", ["--tta-sides", "32", "96"])):
        assert run(parser().parse_args(args + ["-o", str(tmp_path / name)] + extra)) == 0
        maps[name] = np.array(Image.open(tmp_path / name / "a.png"))
    assert not np.array_equal(maps["plain"], maps["sides"])
    with pytest.raises(UserError, match=r"--tta-sides\[1\] = 100: .*multiple of 32"):
        run(parser().parse_args(args + ["-o", str(tmp_path / "bad"), "--tta-sides", "32", "100"]))
    assert not (tmp_path / "bad").exists()


def test_predict_applies_the_tta_evaluate_scored_the_model_with_by_default(weights, tmp_path, monkeypatch, capsys):
    """The metrics file of the weights' run (layout.metrics_file(<weights stem>)) records evaluate's TTA:
    by default predict applies it, exactly as if given on the command line; --no-tta predicts without."""
    monkeypatch.chdir(tmp_path)
    run_weights = tmp_path / "models" / "some-run.pt"
    run_weights.parent.mkdir()
    run_weights.write_bytes(weights.read_bytes())
    metrics = layout.metrics_file("some-run")
    metrics.parent.mkdir(parents=True, exist_ok=True)
    metrics.write_text(json.dumps({"miou0": 0.5, "tta": {"flip": True, "sides": [32]}}))
    photo(tmp_path / "in" / "a.png", 64, 64, seed=3)
    args = ["--weights", str(run_weights), str(tmp_path / "in"), "--leaf-only", "--precision", "fp32", "--no-progress"]
    maps, said = {}, {}
    for name, extra in (("default", []), ("explicit", ["--flip-tta", "--tta-sides", "32"]), ("off", ["--no-tta"])):
        assert run(parser().parse_args(args + ["-o", str(tmp_path / name)] + extra)) == 0
        maps[name] = np.array(Image.open(tmp_path / name / "a.png"))
        said[name] = [line for line in capsys.readouterr().out.splitlines() if "test-time augmentation" in line]
    predict_files(collect_images([tmp_path / "in"]), run_weights, tmp_path / "plain", overlays=False,
                  precision="fp32", progress=False)
    plain = np.array(Image.open(tmp_path / "plain" / "a.png"))
    assert not np.array_equal(maps["default"], plain)  # precondition: the recorded TTA changes some pixel
    assert np.array_equal(maps["default"], maps["explicit"])
    assert np.array_equal(maps["off"], plain)
    assert said["default"] == [f"test-time augmentation: flip + sides 32 px (as the evaluate stage scored this "
                               f"model, from {metrics})"]
    assert said["off"] == ["test-time augmentation: none (--no-tta)"]
    # each explicit flag replaces its part of the recorded settings
    assert chosen_tta(run_weights, flip=False) == (False, (32,), f"as the evaluate stage scored this model, from "
                                                                 f"{metrics}; --no-flip-tta as given")
    assert chosen_tta(run_weights, sides=[96])[:2] == (True, (96,))
    assert chosen_tta(run_weights, no_tta=True, sides=[96]) == (False, (96,), "--no-tta; --tta-sides as given")


def test_predict_without_recorded_tta_uses_none_and_says_so(weights, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    photo(tmp_path / "in" / "a.png", 64, 64, seed=3)
    args = ["--weights", str(weights), str(tmp_path / "in"), "--leaf-only", "--precision", "fp32", "--no-progress"]
    metrics = layout.metrics_file(weights.stem)
    assert not metrics.exists()
    assert run(parser().parse_args(args + ["-o", str(tmp_path / "missing")])) == 0
    assert f"test-time augmentation: none (no metrics file {metrics} for this model, so none by default)" \
        in capsys.readouterr().out.splitlines()
    metrics.parent.mkdir(parents=True, exist_ok=True)
    metrics.write_text(json.dumps({"miou0": 0.5}))  # written before evaluate recorded its TTA
    assert run(parser().parse_args(args + ["-o", str(tmp_path / "untold")])) == 0
    assert f"test-time augmentation: none ({metrics} records no TTA settings for this model, so none by default)" \
        in capsys.readouterr().out.splitlines()
    predict_files(collect_images([tmp_path / "in"]), weights, tmp_path / "plain", overlays=False,
                  precision="fp32", progress=False)
    plain = np.array(Image.open(tmp_path / "plain" / "a.png"))
    for name in ("missing", "untold"):
        assert np.array_equal(np.array(Image.open(tmp_path / name / "a.png")), plain)
    metrics.write_text(json.dumps({"tta": {"flip": "yes"}}))
    with pytest.raises(UserError, match="'tta' = .*expected"):
        run(parser().parse_args(args + ["-o", str(tmp_path / "bad")]))


def peak_rss_mb(weights, folder: Path, out: Path) -> float:
    code = ("import sys; from pathlib import Path; from hseg.predict import collect_images, parser, predict_files, run;"
            f"predict_files(collect_images([Path({str(folder)!r})]), Path({str(weights)!r}), Path({str(out)!r}),"
            " progress=False, overlays=False);"  # the leaf maps alone: PNG-encoding overlays only costs time
            "print([l for l in open('/proc/self/status') if l.startswith('VmHWM')][0].split()[1])")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    return int(done.stdout.split()[-1]) / 1024


@pytest.mark.slow
def test_peak_memory_is_flat_in_the_number_of_photos(weights, tmp_path):
    """4 vs 40 photos of 2400x1800: holding every decoded photo (the old behaviour) would add
    about 13 MB per photo for the pixels alone, 470 MB for the 36 extra photos; streaming adds
    nothing per photo (the allocator's run-to-run noise here reaches about 100 MB)."""
    for k in range(40):
        photo(tmp_path / "many" / f"{k}.jpg", 2400, 1800, seed=k)
    (tmp_path / "few").mkdir()
    for k in range(4):
        (tmp_path / "few" / f"{k}.jpg").write_bytes((tmp_path / "many" / f"{k}.jpg").read_bytes())
    few = peak_rss_mb(weights, tmp_path / "few", tmp_path / "o1")
    many = peak_rss_mb(weights, tmp_path / "many", tmp_path / "o2")
    print(f"peak RSS: 4 photos {few:.0f} MB, 40 photos {many:.0f} MB")
    assert many - few < 200


def test_tiled_upsample_argmax_matches_full_interpolation():
    torch.manual_seed(0)
    for h, w, out in [(64, 64, (375, 500)), (32, 48, (31, 47)), (16, 16, (1000, 700))]:
        scores = torch.randn(7, h, w)
        full = F.interpolate(scores[None], size=out, mode="bilinear", align_corners=False)[0].argmax(0)
        tiled = upsample_argmax(scores, out, tile_rows=37)
        assert (full == tiled).float().mean().item() > 0.99999


def _hue(rgb):
    return colorsys.rgb_to_hsv(*(c / 255 for c in rgb))[0]


@pytest.mark.parametrize("spec", [None, FOUR_LEVELS])
def test_every_node_has_one_colour_and_parts_are_shades_of_their_parent(params, spec):
    tree = build_tree(spec or params["classes"]["tree"], "bg", CLASSES)
    colours = node_colours(tree)
    for k, level in enumerate(tree.levels):
        palette = level_palette(tree, k)
        assert len({tuple(c) for c in palette}) == level.num_classes  # distinct within a level
        assert all(tuple(palette[i]) == colours[name] for i, name in enumerate(level.names))  # same in every level
    for node, parent in tree.parents.items():
        if parent is None:
            continue
        siblings_of_parent = [n for n, p in tree.parents.items() if p == tree.parents[parent] and n != parent]

        def dist(a, b):
            d = abs(_hue(colours[a]) - _hue(colours[b]))
            return min(d, 1 - d)
        assert all(dist(node, parent) < dist(node, other) for other in siblings_of_parent), node


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
    assert metrics["epochs"] == torch.load(weights, weights_only=False)["meta"]["epochs"]   # the epochs it trained
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
