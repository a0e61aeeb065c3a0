"""Hierarchical IoU from one leaf-level confusion matrix.

Everything is derived from a single ``(n_leaves x n_leaves)`` confusion matrix
``cm[true, pred]`` accumulated over the whole evaluation set. A coarser level's
matrix is obtained by summing leaf rows and columns into their ancestors, which
is exact because a pixel's class at every level is a function of its leaf class.

IoU_c = cm[c,c] / (sum_row_c + sum_col_c - cm[c,c]); a class that appears in
neither truth nor prediction has no IoU (NaN) and is left out of the mean.
mIoU at a level is the mean IoU over that level's non-background classes.
"""
from __future__ import annotations

import typing

import numpy as np

if typing.TYPE_CHECKING:
    import torch

from .tree import ClassTree


def confusion_matrix(target: torch.Tensor, pred: torch.Tensor, num_classes: int) -> torch.Tensor:
    """``cm[t, p]`` counts of pixels with truth t predicted as p (int64, vectorised, on the inputs'
    device). Counted with index_add_ rather than bincount, whose output size depends on the data:
    on a GPU bincount reads the largest index back to the host, a blocking copy per call."""
    import torch  # imported here: summarize and report read metrics without paying torch's import
    idx = target.reshape(-1).long() * num_classes + pred.reshape(-1).long()
    counts = torch.zeros(num_classes * num_classes, dtype=torch.int64, device=idx.device)
    return counts.index_add_(0, idx, torch.ones(1, dtype=torch.int64, device=idx.device).expand(len(idx))
                             ).reshape(num_classes, num_classes)


def collapse(cm: np.ndarray, leaf_to_level: np.ndarray, num_level_classes: int) -> np.ndarray:
    """Sum a leaf confusion matrix into a coarser level's classes. ``cm`` may also be a stack of
    matrices (..., n_leaves, n_leaves), e.g. one per image: each is collapsed the same way."""
    onehot = np.zeros((len(leaf_to_level), num_level_classes), dtype=np.int64)
    onehot[np.arange(len(leaf_to_level)), leaf_to_level] = 1
    return onehot.T @ np.asarray(cm, dtype=np.int64) @ onehot


def iou_per_class(cm: np.ndarray) -> np.ndarray:
    cm = np.asarray(cm, dtype=np.float64)
    tp = np.diag(cm)
    union = cm.sum(0) + cm.sum(1) - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, tp / union, np.nan)


def _mean_or_none(values: np.ndarray):
    values = values[~np.isnan(values)]
    return float(values.mean()) if values.size else None


def hierarchical_scores(cm: np.ndarray, tree: ClassTree) -> dict:
    """mIoU, pixel accuracy and per-class IoU at every level of the tree.

    Keys: ``miou<k>``, ``pixel_acc<k>`` and ``iou<k>`` (class name -> IoU) for
    each level k; an undefined value (a class absent from truth and prediction,
    or an empty matrix) is None, written as JSON null.
    """
    out: dict = {}
    for k, level in enumerate(tree.levels):
        level_cm = collapse(cm, level.leaf_to_level, level.num_classes)
        iou = iou_per_class(level_cm)
        total = level_cm.sum()
        out[f"miou{k}"] = _mean_or_none(iou[1:])  # background (index 0) is not scored
        out[f"pixel_acc{k}"] = float(np.trace(level_cm) / total) if total else None
        out[f"iou{k}"] = {name: (None if np.isnan(v) else float(v)) for name, v in zip(level.names, iou)}
    return out


def levels_in(scores: dict, prefix: str = "miou") -> list[int]:
    """The levels a scores mapping holds: [0, ..., K] for its keys ``<prefix>0`` .. ``<prefix>K``
    (a metrics JSON: prefix ``miou``; a training history: ``val_miou``). The one place that reads
    the depth of the tree from metric names."""
    k = 0
    while f"{prefix}{k}" in scores:
        k += 1
    return list(range(k))
