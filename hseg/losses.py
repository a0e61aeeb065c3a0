"""Training losses: a weighted sum of cross-entropy and region losses (smp's Dice; batched versions of
smp's Lovasz-softmax and Focal losses), flat or per tree level.

Every term skips pixels labelled IGNORE (from outside the image after a zoom-out
or a shift). Class weights, if asked for, weight the cross-entropy term only.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from segmentation_models_pytorch.losses import DiceLoss

from .errors import UserError
from .hierarchy import level_targets, split_levels, tree_min_loss
from .tree import IGNORE, ClassTree, Level

# class_weights by name -> the power p in w_c ~ share_c ** -p (a number is that power itself)
WEIGHT_POWERS = {"none": 0.0, "inverse_sqrt": 0.5, "inverse": 1.0}


def weight_power(scheme: str | float) -> float:
    """The power p of a class_weights setting: a name of WEIGHT_POWERS, or p itself."""
    return WEIGHT_POWERS[scheme] if isinstance(scheme, str) else float(scheme)


def class_weights(pixel_counts, scheme: str | float) -> torch.Tensor | None:
    """Cross-entropy weights from a split's pixel counts per class: w_c proportional to
    share_c ** -p (``inverse_sqrt``: p = 0.5; ``inverse``: p = 1, rare parts weigh far more; or a
    number p), scaled to mean 1; None for p = 0 (``none``). A class with no pixels gets the largest
    weight of the others."""
    power = weight_power(scheme)
    if power == 0:
        return None
    counts = np.asarray(pixel_counts, dtype=np.float64)
    share = counts / counts.sum()
    w = np.zeros_like(share)
    w[share > 0] = share[share > 0] ** -power
    w[share == 0] = w.max()
    return torch.tensor(w / w.mean(), dtype=torch.float32)


def lovasz_softmax(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """The Lovasz-softmax loss over the batch's non-IGNORE pixels, mean over the classes present.

    Same values and gradients as smp's ``LovaszLoss("multiclass")`` (tests/test_losses.py; up to the
    order of tied errors, and a batch with no valid pixel gives a scalar 0), but all classes are
    sorted in one batched call instead of one sort per class: 1.4-1.6x faster on CPU
    (benchmarks/losses.py), which matters because the sort is most of its cost. Computed in
    float32: the running counts of a bf16 cumsum would be exact only up to 256 pixels."""
    n_cls = logits.shape[1]
    probas = logits.float().softmax(1).movedim(1, -1).reshape(-1, n_cls)
    labels = labels.reshape(-1).long()
    keep = labels != IGNORE
    probas, labels = probas[keep], labels[keep]
    fg = F.one_hot(labels, n_cls).T.to(probas.dtype)           # (C, P)
    present = fg.sum(1) > 0
    if not present.any():
        return logits.sum() * 0.0
    fg = fg[present]
    errors_sorted, perm = (fg - probas.T[present]).abs().sort(dim=1, descending=True)
    fg_sorted = fg.gather(1, perm)
    total = fg_sorted.sum(1, keepdim=True)
    jaccard = 1 - (total - fg_sorted.cumsum(1)) / (total + (1 - fg_sorted).cumsum(1))
    grad = torch.cat([jaccard[:, :1], jaccard[:, 1:] - jaccard[:, :-1]], 1)  # Lovasz extension's gradient
    return (errors_sorted * grad).sum(1).mean()


def focal_loss(logits: torch.Tensor, labels: torch.Tensor, gamma: float = 2.0) -> torch.Tensor:
    """smp's ``FocalLoss("multiclass")``: for every class, a one-vs-rest binary focal loss
    (1 - p_t)^gamma * BCE on that class's logit, averaged over the non-IGNORE pixels and the classes.

    The same values and gradients (tests/test_losses.py), but all classes at once on the whole
    tensor, with IGNORE pixels weighted 0, instead of one masked copy per class: several times
    faster on CPU (benchmarks/losses.py). A batch with no valid pixel gives 0 (smp: NaN)."""
    n_cls = logits.shape[1]
    valid = (labels != IGNORE).unsqueeze(1)
    logits = logits.float().masked_fill(~valid, 0)  # an inf at an ignored pixel must not reach the sum
    target = (labels.long().unsqueeze(1) == torch.arange(n_cls, device=labels.device).view(1, -1, 1, 1))
    bce = F.binary_cross_entropy_with_logits(logits, target.to(logits.dtype), reduction="none")
    loss = (1 - torch.exp(-bce)) ** gamma * bce * valid
    return loss.sum() / (valid.sum() * n_cls).clamp_min(1)


class SegLoss:
    """sum_t weight_t * loss_t(logits, labels) over the terms of ``weights`` (ce, dice, lovasz, focal)."""

    def __init__(self, weights: dict, ce_weight: torch.Tensor | None = None):
        self.ce_weight = ce_weight
        region = {"dice": DiceLoss("multiclass", ignore_index=IGNORE),
                  "lovasz": lovasz_softmax,
                  "focal": focal_loss}
        self.terms = [(w, self._ce if name == "ce" else region[name]) for name, w in weights.items() if w]

    def _ce(self, logits, labels):
        if self.ce_weight is not None and self.ce_weight.device != logits.device:
            self.ce_weight = self.ce_weight.to(logits.device)  # once, not a blocking copy per batch
        return F.cross_entropy(logits, labels, weight=self.ce_weight, ignore_index=IGNORE)

    def __call__(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        logits, labels = logits.float(), labels.long()
        return sum(w * term(logits, labels) for w, term in self.terms)


def level_logits(leaf_logits: torch.Tensor, level: Level) -> torch.Tensor:
    """Scores whose softmax is the level's class probabilities under a flat model: each class's
    probability is the sum of its leaves' softmax, i.e. its logit is the log-sum-exp of theirs."""
    groups = [torch.as_tensor(np.flatnonzero(level.leaf_to_level == c), device=leaf_logits.device)
              for c in range(level.num_classes)]
    return torch.stack([leaf_logits.index_select(1, g).logsumexp(1) for g in groups], 1)


def _level_seg_loss(level: Level, loss_weights: dict, class_weighting: str | float, leaf_pixels) -> SegLoss:
    """The loss terms for one level, class weights from the leaf pixel counts summed into its classes."""
    counts = None
    if leaf_pixels is not None:
        counts = np.bincount(level.leaf_to_level, weights=np.asarray(leaf_pixels, dtype=np.float64),
                             minlength=level.num_classes)
    return SegLoss(loss_weights, class_weights(counts, class_weighting) if counts is not None else None)


def make_loss(tree: ClassTree, head: str, loss_weights: dict, class_weighting: str | float = "none",
              leaf_pixels=None, tree_weight: float = 1.0, gamma: float = 2.0, level_weight: float = 0.0):
    """The training loss ``(outputs, leaf_mask) -> scalar``.

    flat: ``loss_weights`` terms on the leaf logits, plus ``level_weight`` x the same terms on
    each coarser level's probabilities (``level_logits``). tree: the same terms on every
    level's logits, summed over levels, plus ``tree_weight`` x the tree-min loss.
    Class weights come from the train split's leaf pixel counts, summed into each level."""
    if weight_power(class_weighting) and leaf_pixels is None:
        raise UserError(f"train.class_weights = {class_weighting!r} needs the train split's pixel counts, which "
                        f"this cache lacks: rerun prepare (`dvc repro -f prepare`)")
    if head == "flat":
        leaf_loss = SegLoss(loss_weights, class_weights(leaf_pixels, class_weighting)
                            if leaf_pixels is not None else None)
        if not level_weight:
            return leaf_loss
        coarse = [_level_seg_loss(level, loss_weights, class_weighting, leaf_pixels) for level in tree.levels[:-1]]

        def flat_loss(logits, leaf_mask):
            logits = logits.float()
            targets = level_targets(leaf_mask, tree)[:-1]
            level_sum = sum(fn(level_logits(logits, level), t) for fn, level, t in zip(coarse, tree.levels, targets))
            return leaf_loss(logits, leaf_mask) + level_weight * level_sum
        return flat_loss
    per_level = [_level_seg_loss(level, loss_weights, class_weighting, leaf_pixels) for level in tree.levels]

    def tree_loss(outputs, leaf_mask):
        outputs = outputs.float()
        targets = level_targets(leaf_mask, tree)
        level_sum = sum(fn(group, t) for fn, group, t in zip(per_level, split_levels(outputs, tree), targets))
        return level_sum + tree_weight * tree_min_loss(outputs, targets, tree, gamma)
    return tree_loss
