"""Scoring a trained model on the val cache at each image's original resolution."""
from __future__ import annotations

import torch

from .cache import full_mask
from .device import pick_device, prepare_model, upload
from .hierarchy import class_argmax, independent_consistency
from .inference import predict_batches
from .metrics import confusion_matrix, hierarchical_scores
from .models import load_weights
from .tree import ClassTree


def evaluate_model(model, head: str, val_cache: dict, tree: ClassTree, device, precision: str, batch_size: int,
                   progress: bool = True, flip_tta: bool = False, tta_sides: tuple[int, ...] = ()
                   ) -> tuple[dict, dict]:
    """Returns (scores, details).

    Logits predicted at the cache size are upsampled bilinearly to each image's
    original size before the argmax; one confusion matrix is accumulated over
    the whole set. ``details`` holds that matrix, the per-image matrices (for
    worst-case views) and the predictions at the cache size (for figures).
    The per-image matrices are counted on the device and copied back once.
    """
    n_cls = tree.num_leaves
    n = len(val_cache["ids"])
    per_image = torch.zeros(n, n_cls, n_cls, dtype=torch.int64, device=device)
    preds_small = torch.empty_like(val_cache["masks"])
    levelwise = [0, 0]    # pixels whose independent per-level argmax nests as the tree says, pixels (tree head)
    batches = predict_batches(model, head, tree, val_cache["images"], val_cache["sizes"].tolist(), device,
                              precision, batch_size, progress, "evaluate", flip_tta, tta_sides)
    for lo, outputs, scores, full_preds in batches:
        preds_small[lo:lo + len(scores)] = class_argmax(scores).to(torch.uint8).cpu()
        if head == "tree":
            levelwise = [a + b for a, b in zip(levelwise, independent_consistency(outputs, tree))]
        for k, pred in enumerate(full_preds, start=lo):
            per_image[k] = confusion_matrix(upload(full_mask(val_cache, k), device), pred, n_cls)
    per_image = per_image.cpu()
    cm = per_image.sum(0).numpy()
    details = {"confusion": cm, "per_image_confusion": per_image.numpy(), "pred": preds_small.numpy(),
               "ids": list(val_cache["ids"])}
    scores = hierarchical_scores(cm, tree)
    if head == "tree":   # how often each level's own argmax would nest (levels read off one leaf always do)
        scores["consistency_levelwise_argmax"] = levelwise[0] / levelwise[1]
    return scores, details


def evaluate_weights(weights, val_cache: dict, tree: ClassTree, settings: dict, progress: bool = True):
    """evaluate_model for a weights file written by the train stage, with params' evaluate settings."""
    device = pick_device(settings.device)
    model, meta = load_weights(weights)
    return evaluate_model(prepare_model(model, device), meta["head"], val_cache, tree, device, settings.precision,
                          settings.batch_size, progress, settings.flip_tta, settings.tta_sides)
