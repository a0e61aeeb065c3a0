"""Scoring a trained model on the val cache at each image's original resolution."""
from __future__ import annotations

import torch
from tqdm import tqdm

from .metrics import confusion_matrix, hierarchical_scores
from .prepare import full_mask
from .runtime import predict_logits, upsample
from .tree import ClassTree


def evaluate_model(model, val_cache: dict, tree: ClassTree, device, precision: str, batch_size: int,
                   progress: bool = True) -> tuple[dict, dict]:
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
    for lo in tqdm(range(0, n, batch_size), desc="evaluate", unit="batch", disable=not progress):
        logits = predict_logits(model, val_cache["images"][lo:lo + batch_size], device, precision)
        preds_small[lo:lo + len(logits)] = logits.argmax(1).to(torch.uint8).cpu()
        for j in range(len(logits)):
            k = lo + j
            target = full_mask(val_cache, k)
            pred = upsample(logits[j:j + 1], tuple(target.shape))[0].argmax(0).cpu()
            per_image[k] = confusion_matrix(target, pred, n_cls)
    cm = per_image.sum(0).numpy()
    details = {"confusion": cm, "per_image_confusion": per_image.numpy(), "pred": preds_small.numpy(),
               "ids": list(val_cache["ids"])}
    return hierarchical_scores(cm, tree), details
