"""Scoring a trained model on the val cache at each image's original resolution."""
from __future__ import annotations

import torch
from tqdm import tqdm

from .hierarchy import class_argmax, independent_consistency, tree_consistency
from .metrics import confusion_matrix, hierarchical_scores
from .cache import full_mask
from .models import load_checkpoint
from .runtime import pick_device, predict_batches, prepare_model
from .tree import ClassTree


def evaluate_model(model, mode: str, val_cache: dict, tree: ClassTree, device, precision: str, batch_size: int,
                   progress: bool = True, flip_tta: bool = False, tta_sides: tuple[int, ...] = ()
                   ) -> tuple[dict, dict]:
    """Returns (scores, details).

    Logits predicted at the cache size are upsampled bilinearly to each image's
    original size before the argmax; one confusion matrix is accumulated over
    the whole set. ``details`` holds that matrix, the per-image matrices (for
    worst-case views) and the predictions at the cache size (for figures).
    """
    n_cls = tree.num_leaves
    n = len(val_cache["ids"])
    per_image = torch.zeros(n, n_cls, n_cls, dtype=torch.int64)
    preds_small = torch.empty_like(val_cache["masks"])
    consistent = [0, 0]  # pixels whose level predictions agree with the tree, pixels
    levelwise = [0, 0]    # the same for independent per-level argmax (tree mode only)
    batches = predict_batches(model, mode, tree, val_cache["images"], val_cache["sizes"].tolist(), device,
                              precision, batch_size, progress, "evaluate", flip_tta, tta_sides)
    for lo, outputs, scores, full_preds in batches:
        preds_small[lo:lo + len(scores)] = class_argmax(scores).to(torch.uint8).cpu()
        if mode == "tree":
            levelwise = [a + b for a, b in zip(levelwise, independent_consistency(outputs, tree))]
        for k, pred in enumerate(full_preds, start=lo):
            per_image[k] = confusion_matrix(full_mask(val_cache, k), pred, n_cls)
            consistent = [a + b for a, b in zip(consistent, tree_consistency(pred, tree))]
    cm = per_image.sum(0).numpy()
    details = {"confusion": cm, "per_image_confusion": per_image.numpy(), "pred": preds_small.numpy(),
               "ids": list(val_cache["ids"])}
    scores = hierarchical_scores(cm, tree)
    scores["consistency"] = consistent[0] / consistent[1]
    if mode == "tree":
        scores["consistency_levelwise_argmax"] = levelwise[0] / levelwise[1]
    return scores, details


def evaluate_weights(weights, val_cache: dict, tree: ClassTree, settings: dict, progress: bool = True):
    """evaluate_model for a weights file written by the train stage, with params' evaluate settings."""
    device = pick_device(settings.device)
    model, meta = load_checkpoint(weights)
    return evaluate_model(prepare_model(model, device), meta["mode"], val_cache, tree, device, settings.precision,
                          settings.batch_size, progress, settings.flip_tta, settings.tta_sides)
