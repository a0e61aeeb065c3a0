"""The training recipe: losses, learning-rate schedule, augmentation, the original study's recipe."""
import math
import re
import shlex
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import yaml
from segmentation_models_pytorch.losses import FocalLoss, LovaszLoss

from hseg.augment import augment_batch, draw_augment
from hseg.errors import UserError
from hseg.losses import SegLoss, class_weights, focal_loss, lovasz_softmax, make_loss
from hseg.settings.base import load_params
from hseg.settings.data import prepare_settings
from hseg.settings.train import Augment, deep_merge, epoch_side, train_config
from hseg.train import LrFactor, check_batching
from hseg.tree import IGNORE
from tests.synthetic import CLASSES
from tests.test_profiles import profile_params

ROOT = Path(__file__).resolve().parent.parent
VARIANT = "unet-resnet34-scratch"


# --- the original study's recipe stays one command away ------------------------------------------

def apply_overrides(params: dict, command: str, folder: Path) -> dict:
    """params after DVC's own `-S` handling (Hydra's override grammar) of ``command``'s settings."""
    from dvc.utils.hydra import apply_overrides as dvc_apply_overrides
    words = shlex.split(command)
    path = folder / "params.yaml"
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    dvc_apply_overrides(str(path), [setting for flag, setting in zip(words, words[1:]) if flag == "-S"])
    return load_params(path)   # as the stages read it


def test_readme_variant_override_example_works_through_dvc(params, tmp_path):
    example = re.search(r"`(dvc exp run -S '\+\+variants[^`]+)`", (ROOT / "README.md").read_text()).group(1)
    params = apply_overrides(params, example, tmp_path)
    cfg = train_config(params, VARIANT, 42)
    assert cfg.lr == 0.0005 and cfg.warmup_epochs == 2
    assert cfg.schedule == params["train"]["scheduler"]["name"]          # the other scheduler keys kept
    assert train_config(params, "unet-resnet50-scratch", 42).lr == params["train"]["lr"]


def test_default_recipe_is_the_improved_one(params):
    cfg = train_config(params, VARIANT, 42)
    assert cfg.loss_weights["dice"] > 0 and cfg.schedule == "warmup_cosine" and cfg.optimizer == "adamw"
    assert cfg.loss_weights["focal"] > 0 and not cfg.loss_weights["lovasz"]  # a tie at a third of the cost
    assert cfg.class_weights == "inverse_sqrt"
    full = profile_params(params, "full")       # on a GPU: random crops with zoom ("train small, test big")
    cfg = train_config(full, VARIANT, 42)
    assert 0 < cfg.crop < prepare_settings(full).size and cfg.augment.scale != (1.0, 1.0)


# --- learning-rate schedule ----------------------------------------------------------------------

def schedule_cfg(params, **sched):
    params["train"]["scheduler"].update(sched)
    params["train"].update(epochs=3, lr=0.01)
    return train_config(params, VARIANT, 42)


def test_warmup_cosine_rises_linearly_then_reaches_the_floor_at_the_last_step(params):
    cfg = schedule_cfg(params, name="warmup_cosine", warmup_epochs=1, eta_min=1e-4)
    f = LrFactor(cfg, steps_per_epoch=10)
    assert [f(s) for s in range(10)] == pytest.approx([(s + 1) / 10 for s in range(10)])
    assert f(10) == pytest.approx(1.0)
    assert f(29) == pytest.approx(1e-4 / 0.01)  # the last of 30 steps uses eta_min
    assert f(20) == pytest.approx(0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * 10 / 19)))
    assert all(f(s) >= f(s + 1) for s in range(10, 29))


def test_cosine_restarts_matches_torch_warm_restarts_stepped_per_batch(params):
    cfg = schedule_cfg(params, name="cosine_restarts", T_0=2, eta_min=1e-5)
    ours = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=cfg.lr)
    theirs = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=cfg.lr)
    ours_s = torch.optim.lr_scheduler.LambdaLR(ours, LrFactor(cfg, steps_per_epoch=7))
    theirs_s = torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(theirs, T_0=2, eta_min=1e-5)
    for step in range(21):
        assert ours.param_groups[0]["lr"] == pytest.approx(theirs.param_groups[0]["lr"], rel=1e-9, abs=1e-12)
        ours_s.step()
        theirs_s.step((step + 1) / 7)


@pytest.mark.parametrize("kind", ["adamw", "adam"])
def test_optimizer_steps_match_adam_by_hand(params, kind):
    """Two steps of make_optimizer's (fused) Adam/AdamW against the update rule written out:
    m, v running moments with bias correction; AdamW decays the weights apart from the gradient,
    Adam adds weight_decay * p to the gradient."""
    from hseg.train import make_optimizer
    params["train"].update(optimizer=kind, lr=0.1, weight_decay=0.01)
    cfg = train_config(params, VARIANT, 42)
    torch.manual_seed(8)
    net = torch.nn.Linear(3, 2)
    p0 = [t.detach().clone().double() for t in net.parameters()]
    opt = make_optimizer(cfg, net)
    grads = [[torch.randn_like(t).double() for t in p0] for _ in range(2)]
    ps, m, v = p0, [0 * t for t in p0], [0 * t for t in p0]
    b1, b2, eps, lr, wd = 0.9, 0.999, 1e-8, 0.1, 0.01
    for k, g in enumerate(grads, start=1):
        for t, gt in zip(net.parameters(), g):
            t.grad = gt.float()
        opt.step()
        g = [gt + wd * pt for gt, pt in zip(g, ps)] if kind == "adam" else g
        base = [pt * (1 - lr * wd) for pt in ps] if kind == "adamw" else ps
        m = [b1 * mt + (1 - b1) * gt for mt, gt in zip(m, g)]
        v = [b2 * vt + (1 - b2) * gt * gt for vt, gt in zip(v, g)]
        ps = [bt - lr * (mt / (1 - b1 ** k)) / ((vt / (1 - b2 ** k)).sqrt() + eps)
              for bt, mt, vt in zip(base, m, v)]
        for t, want in zip(net.parameters(), ps):
            assert torch.allclose(t.detach().double(), want, atol=1e-6)
    assert opt.defaults["fused"]


def test_fused_optimizer_matches_the_default_loop_on_a_channels_last_network_and_resumes_fused(params):
    """The fused kernel walks raw storage: channels_last conv weights (as the pipeline's) must get
    the default loop's update, and a resumed optimizer must stay fused."""
    from hseg.train import make_optimizer
    cfg = train_config(params, VARIANT, 42)
    torch.manual_seed(3)
    nets = [torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.BatchNorm2d(8), torch.nn.Conv2d(8, 4, 1))
            .to(memory_format=torch.channels_last) for _ in range(2)]
    nets[1].load_state_dict(nets[0].state_dict())
    fused = make_optimizer(cfg, nets[0])
    plain = torch.optim.AdamW(nets[1].parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, foreach=False)
    x = torch.randn(2, 3, 9, 9).contiguous(memory_format=torch.channels_last)
    for _ in range(3):
        for net, opt in zip(nets, (fused, plain)):
            opt.zero_grad()
            net(x).square().mean().backward()
            opt.step()
    for a, b in zip(*(net.parameters() for net in nets)):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    resumed = make_optimizer(cfg, nets[0])
    resumed.load_state_dict(fused.state_dict())
    assert all(group["fused"] for group in resumed.param_groups)


# --- losses --------------------------------------------------------------------------------------

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


# --- augmentation --------------------------------------------------------------------------------

def coordinate_batch(n=4, size=64):
    """Images whose channels 0/1 hold 10 + x / 10 + y (0 only outside after a transform) and
    masks whose label is a function of the coordinates."""
    ys, xs = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    image = torch.stack([10 + xs, 10 + ys, torch.full_like(xs, 128)]).float()
    mask = ((xs // 8 + ys // 8) % 7).to(torch.uint8)
    return image.expand(n, -1, -1, -1).clone(), mask.expand(n, -1, -1).clone()


@pytest.mark.parametrize("aug, crop", [
    (Augment(hflip=True), 0),
    (Augment(hflip=True, scale=(0.5, 2.0)), 32),
    (Augment(hflip=True, scale=(0.7, 1.4), rotate=10, shift=0.1), 48),
    (Augment(hflip=False, scale=(0.5, 0.5)), 64),
])
def test_image_and_mask_move_together(aug, crop):
    images, masks = coordinate_batch()
    out_img, out_mask = augment_batch(images, masks, aug, torch.Generator().manual_seed(0), crop)
    side = crop or 64
    assert out_img.shape == (4, 3, side, side) and out_mask.shape == (4, side, side)
    assert set(out_mask.unique().tolist()) <= set(range(7)) | {IGNORE}
    labelled = out_mask != IGNORE
    assert labelled.any()
    # the source pixel each output image pixel came from (nearest), and the label there
    x = (out_img[:, 0] - 10).round().long().clamp(0, 63)
    y = (out_img[:, 1] - 10).round().long().clamp(0, 63)
    expected = ((x // 8 + y // 8) % 7).to(torch.uint8)
    agree = (expected == out_mask)[labelled].float().mean().item()
    assert agree > 0.97, agree
    # pixels with no label came from outside the image: black there
    outside = (out_img[:, 0] == 0) & (out_img[:, 1] == 0)
    assert (out_mask[outside] == IGNORE).all()


def test_crop_inside_the_image_has_no_ignored_pixels_and_zoom_out_has_some():
    images, masks = coordinate_batch(8)
    _, cropped = augment_batch(images, masks, Augment(scale=(1.0, 1.0)), torch.Generator().manual_seed(0), 32)
    assert not (cropped == IGNORE).any()
    _, zoomed_out = augment_batch(images, masks, Augment(scale=(0.5, 0.5)), torch.Generator().manual_seed(0), 64)
    assert (zoomed_out == IGNORE).float().mean() > 0.5  # the image fills a quarter of the output


def test_augmentation_is_reproducible_from_the_generator():
    images, masks = coordinate_batch()
    aug = Augment(scale=(0.5, 2.0), rotate=5, brightness=0.1, contrast=0.1)
    a = augment_batch(images, masks, aug, torch.Generator().manual_seed(7), 32)
    b = augment_batch(images, masks, aug, torch.Generator().manual_seed(7), 32)
    c = augment_batch(images, masks, aug, torch.Generator().manual_seed(8), 32)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[1], c[1])


def test_no_augmentation_is_the_identity():
    images, masks = coordinate_batch()
    out_img, out_mask = augment_batch(images, masks, Augment(hflip=False), torch.Generator().manual_seed(0))
    assert torch.equal(out_img, images) and torch.equal(out_mask, masks)


def test_progressive_side_renders_whole_images_at_fewer_pixels():
    """Side 32 from a 64 px cache, no other augmentation: each output pixel centre falls between
    four input pixels, so bilinear sampling gives the mean of each 2x2 block (avg_pool2d), and a
    mask constant on 2x2 blocks comes out as every second pixel."""
    torch.manual_seed(0)
    images = torch.rand(2, 3, 64, 64) * 255
    blocks = torch.randint(0, 7, (2, 32, 32), dtype=torch.uint8)
    masks = blocks.repeat_interleave(2, 1).repeat_interleave(2, 2)
    out_img, out_mask = augment_batch(images, masks, Augment(hflip=False), torch.Generator().manual_seed(0), 0, 32)
    assert out_img.shape == (2, 3, 32, 32)
    assert torch.allclose(out_img, F.avg_pool2d(images, 2), atol=1e-3)
    assert torch.equal(out_mask, blocks)


def test_progressive_side_keeps_the_views_of_the_full_side():
    """The same random crops and zooms as at the full side (the same affine maps to the cache), only
    rendered at fewer pixels."""
    aug = Augment(scale=(0.5, 2.0), rotate=10, shift=0.1)
    full = draw_augment(8, aug, torch.Generator().manual_seed(3), 48, 64)
    small = draw_augment(8, aug, torch.Generator().manual_seed(3), 48, 64, side=32)
    assert (full["crop"], small["crop"]) == (48, 32)
    assert torch.allclose(full["theta"], small["theta"], atol=1e-6) and torch.equal(full["flip"], small["flip"])


# --- params --------------------------------------------------------------------------------------

def test_variant_overrides_merge_deeply(params):
    params["variants"][VARIANT] = {"scheduler": {"warmup_epochs": 3}, "augment": {"rotate": 5}}
    cfg = train_config(params, VARIANT, 42)
    base = train_config(params, "unet-resnet50-scratch", 42)
    assert cfg.warmup_epochs == 3 and cfg.schedule == base.schedule and cfg.eta_min == base.eta_min
    assert cfg.augment.rotate == 5 and cfg.augment.scale == base.augment.scale
    assert deep_merge({"a": {"b": 1, "c": 2}}, {"a": {"c": 3}}) == {"a": {"b": 1, "c": 3}}


@pytest.mark.parametrize("key, value, message", [
    ("augment", {"hflip": "false"}, "train.augment.hflip = 'false': must be true or false"),
    ("augment", {"scale": [2.0, 0.5]}, "train.augment.scale = [2.0, 0.5]: must be a zoom range"),
    ("augment", {"scale": 0.25}, "train.augment.scale = 0.25"),
    ("loss_weights", {"ce": 0, "dice": 0, "lovasz": 0, "focal": 0}, "at least one term"),
    ("loss_weights", {"tversky": 1},
     "train.loss_weights.tversky = 1: unknown key; allowed keys are ce, dice, lovasz, focal"),
    ("crop", 100, "train.crop = 100: the models need a multiple of 32"),
    ("optimizer", "sgd", "train.optimizer = 'sgd': allowed values are adam, adamw"),
    ("class_weights", "inverse_log", "allowed values are none, inverse_sqrt, inverse"),
    ("scheduler", {"name": "step"}, "train.scheduler.name = 'step'"),
    ("compile", 1, "train.compile = 1: must be true or false"),
    ("progressive", [96, 128], "train.progressive = [96, 128]: must be a list of [epochs, side] pairs"),
    ("progressive", [[0, 96]], "train.progressive[0].epochs = 0: must be a positive integer"),
    ("progressive", [[4, 100]], "train.progressive[0].side = 100: the models need a multiple of 32"),
    ("progressive", [[12, 96], [8, 128]], "its 20 epochs leave none of the train.epochs = 20 epochs"),
    ("progressive", [[4, 192]], "train.progressive[0].side = 192: not below the full training side, train.crop = 192"),
])
def test_bad_recipe_values_are_named(params, key, value, message):
    params["train"].update(epochs=20, crop=192)     # the full study's (profiles/full.yaml)
    params["train"][key] = deep_merge(params["train"][key], value) if isinstance(value, dict) else value
    with pytest.raises(UserError) as err:
        train_config(params, VARIANT, 42)
    assert message in str(err.value)


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


# --- batching ------------------------------------------------------------------------------------

@pytest.mark.parametrize("batch, processes, accumulate, ok", [
    (16, 1, 1, True), (16, 2, 4, True), (16, 1, 8, True), (16, 2, 8, False), (16, 1, 16, False),
    (5, 1, 1, True), (25, 1, 1, True), (12, 1, 5, False), (2, 1, 1, True), (1, 1, 1, False),
])
def test_every_micro_batch_has_at_least_two_images(params, batch, processes, accumulate, ok):
    params["train"].update(batch_size=batch, accumulate=accumulate)
    cfg = train_config(params, VARIANT, 42)
    if not ok:
        with pytest.raises(UserError, match="at least 2 images"):
            check_batching(cfg, processes, 2826)
        return
    steps = check_batching(cfg, processes, 2826)
    assert steps == 2826 // batch  # the shuffled remainder is dropped
    assert batch // (processes * accumulate) >= 2
