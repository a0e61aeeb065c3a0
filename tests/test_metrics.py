"""Hierarchical IoU against hand-computed cases (class ids: 0 bg, 1 low_hand, 2 torso,
3 low_leg, 4 head, 5 up_leg, 6 up_hand)."""
import numpy as np
import pytest
import torch

from hseg.metrics import collapse, confusion_matrix, hierarchical_scores, iou_per_class, levels_in

BG, LOW_HAND, TORSO, LOW_LEG, HEAD, UP_LEG, UP_HAND = range(7)


def scores_for(truth, pred, tree):
    cm = confusion_matrix(torch.tensor(truth), torch.tensor(pred), 7).numpy()
    return hierarchical_scores(cm, tree)


def test_confusion_matrix_counts_truth_rows_pred_columns():
    cm = confusion_matrix(torch.tensor([[0, 1], [1, 2]]), torch.tensor([[0, 2], [1, 2]]), 3).numpy()
    assert cm.tolist() == [[1, 0, 0], [0, 1, 1], [0, 0, 1]]


def test_sibling_confusion_is_wrong_at_level2_and_right_above(tree):
    # a head pixel predicted as torso: wrong among the parts, right as upper_body and body
    s = scores_for([HEAD, HEAD, TORSO, BG], [TORSO, HEAD, TORSO, BG], tree)
    assert s["iou2"]["head"] == pytest.approx(1 / 2)
    assert s["iou2"]["torso"] == pytest.approx(1 / 2)
    assert s["miou2"] == pytest.approx(0.5)           # absent parts are left out of the mean
    assert s["iou2"]["low_leg"] is None
    assert s["iou1"]["upper_body"] == 1.0
    assert s["iou1"]["lower_body"] is None
    assert s["miou1"] == 1.0
    assert s["miou0"] == 1.0
    assert s["pixel_acc2"] == pytest.approx(3 / 4)
    assert s["pixel_acc1"] == 1.0


def test_mixed_errors_against_hand_computation(tree):
    truth = [UP_LEG, UP_LEG, LOW_LEG, BG, BG]
    pred = [UP_LEG, BG, UP_HAND, BG, LOW_LEG]
    s = scores_for(truth, pred, tree)
    # level 2: up_leg 1/2, low_leg 0/2, up_hand 0/1 (predicted, never true); bg 1/3
    assert s["iou2"]["up_leg"] == pytest.approx(1 / 2)
    assert s["iou2"]["low_leg"] == 0.0
    assert s["iou2"]["up_hand"] == 0.0
    assert s["iou2"]["bg"] == pytest.approx(1 / 3)
    assert s["miou2"] == pytest.approx(1 / 6)
    # level 1: truth L L L bg bg, pred L bg U bg L -> lower 1/4, upper 0/1
    assert s["iou1"]["lower_body"] == pytest.approx(1 / 4)
    assert s["iou1"]["upper_body"] == 0.0
    assert s["miou1"] == pytest.approx(1 / 8)
    # level 0: truth B B B bg bg, pred B bg B bg B -> body 2/4
    assert s["miou0"] == pytest.approx(1 / 2)
    assert s["pixel_acc0"] == pytest.approx(3 / 5)


def test_collapse_sums_leaf_blocks():
    cm = np.arange(9).reshape(3, 3)
    # leaves 1 and 2 merge into class 1
    assert collapse(cm, np.array([0, 1, 1]), 2).tolist() == [[0, 1 + 2], [3 + 6, 4 + 5 + 7 + 8]]


def test_collapse_of_a_stack_collapses_each_matrix():
    stack = np.random.default_rng(0).integers(0, 9, (4, 3, 3))
    lut = np.array([0, 1, 1])
    assert np.array_equal(collapse(stack, lut, 2), np.stack([collapse(cm, lut, 2) for cm in stack]))


def test_levels_in_reads_the_depth_from_the_metric_names(tree):
    scores = hierarchical_scores(np.eye(7, dtype=np.int64), tree)
    assert levels_in(scores) == [0, 1, 2]
    assert levels_in({"val_miou0": [], "val_miou1": [], "val_loss": []}, "val_miou") == [0, 1]
    assert levels_in({"miou1": 0.5}) == [] and levels_in({}) == []


def test_iou_is_nan_only_without_truth_and_prediction():
    iou = iou_per_class(np.array([[5, 0, 0], [0, 0, 0], [1, 0, 0]]))
    assert iou[0] == pytest.approx(5 / 6)
    assert np.isnan(iou[1])
    assert iou[2] == 0.0


def test_empty_matrix_gives_none(tree):
    s = hierarchical_scores(np.zeros((7, 7), dtype=np.int64), tree)
    assert s["miou0"] is None and s["pixel_acc2"] is None


def test_level_scores_equal_direct_computation_on_random_maps(tree):
    """Collapsing the leaf matrix equals mapping labels first and counting again."""
    rng = np.random.default_rng(0)
    truth, pred = rng.integers(0, 7, 5000), rng.integers(0, 7, 5000)
    s = scores_for(truth, pred, tree)
    for k, level in enumerate(tree.levels):
        lut = level.leaf_to_level
        direct = iou_per_class(confusion_matrix(torch.tensor(lut[truth]), torch.tensor(lut[pred]),
                                                level.num_classes).numpy())
        assert s[f"miou{k}"] == pytest.approx(np.nanmean(direct[1:]))
