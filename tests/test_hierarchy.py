"""Tree-mode loss and inference on tiny hand-checked inputs.

Tree: classes bg, a, b with {X: [a, b]}: level 0 = (bg, X), level 1 = (bg, a, b),
5 output channels. Scores are given as sigmoid values s (outputs = logit(s))."""
import math

import numpy as np
import pytest
import torch

from hseg.hierarchy import (
    class_argmax,
    independent_consistency,
    leaf_scores,
    nested_pixels,
    num_outputs,
    tree_min_loss,
)
from hseg.losses import make_loss
from hseg.tree import build_tree

TREE = build_tree({"X": ["a", "b"]}, "bg", ["bg", "a", "b"])


def outputs_from(s):
    s = torch.tensor(s, dtype=torch.float64)
    return torch.log(s / (1 - s)).view(1, -1, 1, 1)


def test_tree_min_loss_matches_hand_computation():
    # s: level 0 (bg0 .2, X .9), level 1 (bg1 .3, a .6, b .1); the pixel is an `a`
    out = outputs_from([0.2, 0.9, 0.3, 0.6, 0.1])
    targets = [torch.tensor([[[1]]]), torch.tensor([[[1]]])]
    # p (min over ancestors): bg1 = min(.3, .2) = .2, a = .6, b = .1; q (max over descendants): bg0 = .3, X = .9
    level0 = (-(0.3 ** 2) * math.log(1 - 0.3) - (1 - 0.9) ** 2 * math.log(0.9)) / 2
    # level 1: bg1 y=0 with q = s = .3; a y=1 with p = min(.6, .9) = .6; b y=0 with q = .1
    level1 = (-(0.3 ** 2) * math.log(1 - 0.3) - (1 - 0.6) ** 2 * math.log(0.6) - (0.1 ** 2) * math.log(0.9)) / 3
    assert tree_min_loss(out, targets, TREE, gamma=2.0).item() == pytest.approx(level0 + level1, rel=1e-9)


def test_tree_min_uses_ancestor_minimum_for_positives():
    # truth a, but its ancestor X scores .3 < s_a = .8: p_a is capped at .3
    out = outputs_from([0.5, 0.3, 0.1, 0.8, 0.1])
    targets = [torch.tensor([[[1]]]), torch.tensor([[[1]]])]
    level0 = (-(0.5 ** 2) * math.log(0.5) - (0.7 ** 2) * math.log(0.3)) / 2
    # bg1: y=0, q=.1; a: y=1, p=min(.8,.3)=.3; b: y=0, q=.1
    level1 = (-(0.1 ** 2) * math.log(0.9) - (0.7 ** 2) * math.log(0.3) - (0.1 ** 2) * math.log(0.9)) / 3
    assert tree_min_loss(out, targets, TREE).item() == pytest.approx(level0 + level1, rel=1e-9)


def test_tree_loss_adds_per_level_cross_entropy():
    out = outputs_from([0.2, 0.9, 0.3, 0.6, 0.1]).float()
    mask = torch.tensor([[[1]]])
    ce = (torch.nn.functional.cross_entropy(out[:, :2], torch.tensor([[[1]]]))
          + torch.nn.functional.cross_entropy(out[:, 2:], torch.tensor([[[1]]])))
    tm = tree_min_loss(out, [torch.tensor([[[1]]]), torch.tensor([[[1]]])], TREE)
    loss = make_loss(TREE, "tree", {"ce": 1.0}, tree_weight=0.5)(out, mask)
    assert loss.item() == pytest.approx((ce + 0.5 * tm).item(), rel=1e-5)
    assert num_outputs(TREE, "tree") == 5 and num_outputs(TREE, "flat") == 3


def test_path_inference_fixes_levelwise_disagreement():
    # level 0 says X (.9 > .2), level 1 alone says bg (.7 > .6): inconsistent if argmaxed per level
    out = outputs_from([0.2, 0.9, 0.7, 0.6, 0.1])
    assert independent_consistency(out, TREE) == (0, 1)
    scores = leaf_scores(out, TREE, "tree")[0, :, 0, 0]
    assert scores.tolist() == pytest.approx([0.2 + 0.7, 0.9 + 0.6, 0.9 + 0.1])
    assert scores.argmax().item() == 1  # a


def test_leaf_scores_follow_classes_txt_order_not_tree_order():
    tree = build_tree({"X": ["b", "a"]}, "bg", ["bg", "a", "b"])  # level 1 order: bg, b, a
    out = outputs_from([0.1, 0.9, 0.1, 0.8, 0.2])  # b = .8, a = .2
    scores = leaf_scores(out, tree, "tree")[0, :, 0, 0]
    assert scores.argmax().item() == 2  # class id of b


def levels_nest(leaf_pred: torch.Tensor, tree) -> tuple[int, int]:
    """(pixels whose level predictions, read off the predicted leaf, nest as the tree says; pixels)."""
    return nested_pixels([torch.as_tensor(level.leaf_to_level)[leaf_pred.long()] for level in tree.levels], tree)


def test_consistency_is_one_for_flat_and_path_predictions(tree):
    leaf_pred = torch.randint(0, 7, (4, 9, 9))
    assert levels_nest(leaf_pred, tree) == (4 * 81, 4 * 81)
    tree_out = torch.randn(2, num_outputs(tree, "tree"), 5, 5)
    path_pred = leaf_scores(tree_out, tree, "tree").argmax(1)
    assert levels_nest(path_pred, tree) == (50, 50)


def test_tree_loss_is_differentiable_on_the_person_tree(tree):
    out = torch.randn(2, num_outputs(tree, "tree"), 8, 8, requires_grad=True)
    loss = make_loss(tree, "tree", {"ce": 1.0, "dice": 1.0})(out, torch.randint(0, 7, (2, 8, 8)))
    loss.backward()
    assert torch.isfinite(loss) and out.grad.abs().sum() > 0


@pytest.mark.parametrize("shape, dim", [((7, 37, 51), 0), ((3, 7, 20, 24), 1), ((2, 3, 5), -1)])
def test_class_argmax_is_numpys_argmax_with_first_index_on_ties(shape, dim):
    torch.manual_seed(0)
    for scores in (torch.randn(shape), torch.randint(0, 3, shape).float()):  # the second has many ties
        expected = np.argmax(scores.numpy(), axis=dim)  # numpy returns the first maximum on ties
        assert np.array_equal(class_argmax(scores, dim).numpy(), expected)
