"""hseg/losses.py: each loss term against torch/smp or a hand computation, class weights, the
coarser levels' terms and tree mode."""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from segmentation_models_pytorch.losses import FocalLoss, LovaszLoss

from hseg.losses import SegLoss, class_weights, focal_loss, lovasz_softmax, make_loss
from hseg.tree import IGNORE
from tests.synthetic import CLASSES


def test_ce_term_is_torch_cross_entropy_and_skips_ignored_pixels():
    torch.manual_seed(0)
    logits, labels = torch.randn(2, 4, 5, 5), torch.randint(0, 4, (2, 5, 5))
    labels[0, :2] = IGNORE
    loss = SegLoss({"ce": 1.0})(logits, labels)
    keep = labels != IGNORE
    expected = -F.log_softmax(logits, 1).permute(0, 2, 3, 1)[keep].gather(1, labels[keep][:, None]).mean()
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)


def test_dice_term_matches_a_hand_computed_dice():
    """Two pixels, two classes: softmax probabilities p, one-hot truth t; smp's multiclass Dice loss
    is the mean over all classes of 1 - 2 sum(p t) / (sum p + sum t), where a class with no true
    pixel in the batch contributes 0."""
    logits = torch.tensor([[[[0.0, math.log(3)]], [[math.log(3), 0.0]]]])  # pixel 0: p=(.25,.75), 1: (.75,.25)
    labels = torch.tensor([[[0, 0]]])                                      # both pixels class 0
    p0 = torch.tensor([0.25, 0.75])
    dice0 = 2 * p0.sum() / (p0.sum() + 2)  # class 0: intersection 1.0, |p| 1.0, |t| 2
    # class 1 has no true pixel in the batch: it counts as 0 in the mean over the two classes
    assert SegLoss({"dice": 1.0})(logits, labels).item() == pytest.approx((1 - dice0.item() + 0) / 2, rel=1e-5)


@pytest.mark.parametrize("shape, absent", [((4, 7, 24, 24), 3), ((1, 3, 5, 5), None)])
def test_batched_lovasz_matches_smp_in_value_and_gradient(shape, absent):
    torch.manual_seed(5)
    logits = torch.randn(*shape, requires_grad=True)
    labels = torch.randint(0, shape[1], (shape[0], *shape[2:]))
    labels[..., :2] = IGNORE
    if absent is not None:
        labels[labels == absent] = 0  # a class with no pixel is left out of the mean
    ours = lovasz_softmax(logits, labels)
    theirs = LovaszLoss("multiclass", ignore_index=IGNORE)(logits, labels)
    assert ours.item() == pytest.approx(theirs.item(), rel=1e-6)
    g_ours, = torch.autograd.grad(ours, logits)
    g_theirs, = torch.autograd.grad(theirs, logits)
    torch.testing.assert_close(g_ours, g_theirs, rtol=1e-5, atol=1e-7)


def test_lovasz_by_hand():
    """Two pixels, both class 0, p0 = (0.25, 0.75). Class 0: errors 0.75, 0.25 (sorted), Jaccard
    loss after 1 and 2 errors 1/2 and 1 -> 0.75 * 0.5 + 0.25 * 0.5 = 0.5. Class 1 is absent: skipped."""
    logits = torch.tensor([[[[0.0, math.log(3)]], [[math.log(3), 0.0]]]])
    labels = torch.tensor([[[0, 0]]])
    assert lovasz_softmax(logits, labels).item() == pytest.approx(0.5, rel=1e-6)
    assert lovasz_softmax(logits, torch.full_like(labels, IGNORE)).item() == 0.0


@pytest.mark.parametrize("shape, gamma", [((4, 7, 24, 24), 2.0), ((1, 3, 5, 5), 1.0)])
def test_batched_focal_matches_smp_in_value_and_gradient(shape, gamma):
    torch.manual_seed(6)
    logits = torch.randn(*shape, requires_grad=True)
    labels = torch.randint(0, shape[1], (shape[0], *shape[2:]))
    labels[..., :2] = IGNORE
    ours = focal_loss(logits, labels, gamma)
    theirs = FocalLoss("multiclass", gamma=gamma, ignore_index=IGNORE)(logits, labels)
    assert ours.item() == pytest.approx(theirs.item(), rel=1e-6)
    g_ours, = torch.autograd.grad(ours, logits)
    g_theirs, = torch.autograd.grad(theirs, logits)
    torch.testing.assert_close(g_ours, g_theirs, rtol=1e-5, atol=1e-8)
    assert focal_loss(logits, torch.full_like(labels, IGNORE)).item() == 0.0


def test_focal_term_by_hand():
    """smp's multiclass Focal loss: for each class a one-vs-rest binary focal loss on that class's
    logit, (1 - p_t)^2 * BCE, averaged over pixels, then over classes. Two pixels, both class 0,
    logits (0, ln 3) and (ln 3, 0): sigmoids 0.5 and 0.75."""
    logits = torch.tensor([[[[0.0, math.log(3)]], [[math.log(3), 0.0]]]])
    labels = torch.tensor([[[0, 0]]])

    def focal(p_true):  # p_true: the sigmoid's probability of the true binary label
        return (1 - p_true) ** 2 * -math.log(p_true)
    class0 = (focal(0.5) + focal(0.75)) / 2      # target 1 at both pixels
    class1 = (focal(1 - 0.75) + focal(0.5)) / 2  # target 0 at both pixels
    assert SegLoss({"focal": 1.0})(logits, labels).item() == pytest.approx((class0 + class1) / 2, rel=1e-5)


@pytest.mark.parametrize("term", ["ce", "dice", "lovasz", "focal"])
def test_every_term_ignores_pixels_labelled_ignore(term):
    torch.manual_seed(1)
    logits, labels = torch.randn(2, 7, 6, 6), torch.randint(0, 7, (2, 6, 6))
    labels[:, :, :2] = IGNORE
    changed = logits.clone()
    changed[:, :, :, :2] = torch.randn(2, 7, 6, 2) * 5  # scores where the label is IGNORE
    fn = SegLoss({term: 1.0})
    assert fn(changed, labels).item() == pytest.approx(fn(logits, labels).item(), rel=1e-5)
    assert math.isfinite(fn(logits, labels).item())


def test_weighted_sum_of_terms():
    torch.manual_seed(2)
    logits, labels = torch.randn(2, 7, 6, 6), torch.randint(0, 7, (2, 6, 6))
    both = SegLoss({"ce": 0.5, "dice": 2.0})(logits, labels)
    parts = 0.5 * SegLoss({"ce": 1.0})(logits, labels) + 2.0 * SegLoss({"dice": 1.0})(logits, labels)
    assert both.item() == pytest.approx(parts.item(), rel=1e-6)


def test_inverse_sqrt_class_weights_by_hand():
    # shares 0.64, 0.32, 0.04 -> 1/sqrt = 1.25, 1.7678, 5.0; a class with no pixels gets the largest
    w = class_weights([64, 32, 4, 0], "inverse_sqrt").numpy()
    raw = np.array([1.25, 1 / math.sqrt(0.32), 5.0, 5.0])
    assert w == pytest.approx(raw / raw.mean(), rel=1e-6)
    assert class_weights([1, 2], "none") is None


def test_inverse_class_weights_by_hand():
    # shares 0.64, 0.32, 0.04 -> 1/share = 1.5625, 3.125, 25; the empty class gets 25
    w = class_weights([64, 32, 4, 0], "inverse").numpy()
    raw = np.array([1.5625, 3.125, 25.0, 25.0])
    assert w == pytest.approx(raw / raw.mean(), rel=1e-6)


def test_every_class_weights_value_params_accept_has_a_scheme():
    from hseg.losses import WEIGHT_POWERS
    from hseg.settings.train import CLASS_WEIGHTS
    assert set(CLASS_WEIGHTS) == set(WEIGHT_POWERS)


def test_class_weight_power_as_a_number_by_hand():
    # shares 0.64, 0.32, 0.04 -> share^-0.25 = 1.1180, 1.3296, 2.2361; the names are powers 0.5 and 1
    w = class_weights([64, 32, 4, 0], 0.25).numpy()
    raw = np.array([0.64 ** -0.25, 0.32 ** -0.25, 0.04 ** -0.25, 0.04 ** -0.25])
    assert w == pytest.approx(raw / raw.mean(), rel=1e-6)
    assert torch.equal(class_weights([64, 32, 4], 0.5), class_weights([64, 32, 4], "inverse_sqrt"))
    assert torch.equal(class_weights([64, 32, 4], 1), class_weights([64, 32, 4], "inverse"))
    assert class_weights([1, 2], 0) is None


def test_lovasz_in_bf16_equals_float32():
    """The loss upcasts: bf16 logits give the float32 value of the same (bf16-rounded) logits."""
    torch.manual_seed(6)
    logits = torch.randn(2, 7, 24, 24).bfloat16()
    labels = torch.randint(0, 7, (2, 24, 24), dtype=torch.uint8)
    assert lovasz_softmax(logits, labels).item() == pytest.approx(
        LovaszLoss("multiclass", ignore_index=IGNORE)(logits.float(), labels.long()).item(), rel=1e-6)


def test_focal_in_bf16_equals_float32_and_ignores_inf_at_ignored_pixels():
    torch.manual_seed(7)
    logits = torch.randn(2, 7, 24, 24).bfloat16()
    labels = torch.randint(0, 7, (2, 24, 24), dtype=torch.uint8)
    labels[:, :3] = IGNORE
    smp = FocalLoss("multiclass", ignore_index=IGNORE)(logits.float(), labels.long()).item()
    assert focal_loss(logits, labels).item() == pytest.approx(smp, rel=1e-6)
    logits[:, :, :3] = float("inf")  # e.g. an fp16 overflow in the black border of a zoom-out
    assert focal_loss(logits, labels).item() == pytest.approx(smp, rel=1e-6)


def test_class_weights_reach_the_cross_entropy(tree):
    torch.manual_seed(3)
    logits, labels = torch.randn(2, 7, 4, 4), torch.randint(0, 7, (2, 4, 4))
    counts = [1000, 10, 200, 50, 100, 30, 20]
    loss = make_loss(tree, "flat", {"ce": 1.0}, "inverse_sqrt", counts)(logits, labels)
    expected = F.cross_entropy(logits, labels, weight=class_weights(counts, "inverse_sqrt"))
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)


# The study's coarser levels, written out by class name (independent of hseg.tree's level tables).
COARSE_GROUPS = [{"bg": ["bg"], "body": ["head", "torso", "up_hand", "low_hand", "up_leg", "low_leg"]},
                 {"bg": ["bg"], "upper_body": ["head", "torso", "up_hand", "low_hand"],
                  "lower_body": ["up_leg", "low_leg"]}]


def _marginals(logits: np.ndarray, groups: dict) -> np.ndarray:
    """(N, len(groups), H, W): each group's summed leaf softmax, in numpy."""
    e = np.exp(logits - logits.max(1, keepdims=True))
    p = e / e.sum(1, keepdims=True)
    return np.stack([p[:, [CLASSES.index(n) for n in names]].sum(1) for names in groups.values()], 1)


def test_level_logits_softmax_is_the_summed_leaf_softmax(tree):
    from hseg.losses import level_logits
    torch.manual_seed(8)
    logits = torch.randn(2, 7, 5, 6) * 4
    for level, groups in zip(tree.levels, COARSE_GROUPS):
        assert level.names == tuple(groups)
        got = level_logits(logits, level).softmax(1).numpy()
        np.testing.assert_allclose(got, _marginals(logits.double().numpy(), groups), rtol=1e-5, atol=1e-7)


def test_flat_level_weight_adds_the_weighted_cross_entropy_of_each_coarser_level(tree):
    torch.manual_seed(9)
    logits, labels = torch.randn(2, 7, 4, 4) * 3, torch.randint(0, 7, (2, 4, 4))
    labels[1, 2] = IGNORE
    counts = np.array([1000, 10, 200, 50, 100, 30, 20], dtype=np.float64)
    loss = make_loss(tree, "flat", {"ce": 1.0}, "inverse_sqrt", counts, level_weight=0.25)(logits, labels)
    expected = F.cross_entropy(logits, labels, weight=class_weights(counts, "inverse_sqrt"), ignore_index=IGNORE).item()
    y = labels.numpy()
    valid = y != IGNORE
    for groups in COARSE_GROUPS:
        ids = [[CLASSES.index(n) for n in names] for names in groups.values()]
        share = np.array([counts[g].sum() for g in ids]) / counts.sum()
        w = share ** -0.5
        w = w / w.mean()
        target = np.zeros_like(y)
        for c, g in enumerate(ids):
            target[np.isin(y, g)] = c
        p = _marginals(logits.double().numpy(), groups)
        p_true = np.take_along_axis(p, target[:, None], 1)[:, 0]
        expected += 0.25 * (w[target] * -np.log(p_true))[valid].sum() / w[target][valid].sum()
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    assert make_loss(tree, "flat", {"ce": 1.0}, "inverse_sqrt", counts)(logits, labels).item() == pytest.approx(
        F.cross_entropy(logits, labels, weight=class_weights(counts, "inverse_sqrt"), ignore_index=IGNORE).item())


def test_tree_mode_applies_the_terms_per_level(tree):
    from hseg.hierarchy import level_targets, split_levels, tree_min_loss
    torch.manual_seed(4)
    outputs, labels = torch.randn(2, 12, 4, 4), torch.randint(0, 7, (2, 4, 4))
    labels[0, 0] = IGNORE
    loss_fn = make_loss(tree, "tree", {"ce": 1.0, "dice": 1.0, "lovasz": 1.0, "focal": 1.0}, tree_weight=0.5)
    loss = loss_fn(outputs, labels)
    targets = level_targets(labels, tree)
    expected = sum(F.cross_entropy(g, t, ignore_index=IGNORE) + SegLoss({"dice": 1.0})(g, t)
                   + LovaszLoss("multiclass", ignore_index=IGNORE)(g, t)
                   + FocalLoss("multiclass", ignore_index=IGNORE)(g, t)
                   for g, t in zip(split_levels(outputs, tree), targets))
    expected = expected + 0.5 * tree_min_loss(outputs, targets, tree)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
