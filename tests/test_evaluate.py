"""hseg/evaluate.py on trained synthetic models: a tree-head model, flip and multi-scale TTA against the
averaged logits written out independently."""
# ruff: noqa: F811 (the fixture imported from tests.workdir is a test argument of the same name)
import numpy as np
import pytest
import torch
from PIL import Image

from tests.synthetic import prepared_split
from tests.workdir import RUN, VARIANT, stage, train_once, workdir  # noqa: F401 (workdir: a fixture)


def test_tree_head_model_evaluates_and_predicts(workdir, tree, tmp_path):
    """A tree-mode model (12 outputs) goes through evaluate and predict. Its levels are read off one
    leaf, so they nest by construction and no score says so; how often each level's own argmax would
    nest is scored."""
    from hseg.evaluate import evaluate_model
    from hseg.models import load_weights
    from hseg.predict import collect_images, predict_files

    train_once(workdir, tree, tmp_path, epochs=1, head="tree")
    model, meta = load_weights(tmp_path / "w.pt")
    assert meta["head"] == "tree" and meta["num_classes"] == 12
    scores, details = evaluate_model(model, meta["head"], prepared_split(workdir, "val"), tree, torch.device("cpu"),
                                     "bf16", 4, progress=False)
    assert "consistency" not in scores and 0.0 <= scores["consistency_levelwise_argmax"] <= 1.0
    assert all(0.0 <= scores[f"miou{k}"] <= 1.0 for k in range(3))
    image = next((workdir / "data" / "pascal-part" / "JPEGImages").glob("*.jpg"))
    assert predict_files(collect_images([image]), tmp_path / "w.pt", tmp_path / "pred", progress=False) == []
    leaf = np.array(Image.open(tmp_path / "pred" / f"{image.stem}.png"))
    assert leaf.shape == Image.open(image).size[::-1] and leaf.max() < 7


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
