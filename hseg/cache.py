"""The prepared caches' format: one torch file per split (data/prepared/<split>.pt), written by the
prepare stage and read by train, evaluate, plot and the benchmarks, which need none of the decoding
code (hseg/prepare.py) to read it.

A cache is a dict of uint8 tensors and their bookkeeping:

``images``       (N, 3, S, S) uint8, every image resized to the cache side S
``masks``        (N, S, S) uint8 class ids, resized with nearest neighbour
``ids``          the N image ids, in order
``sizes``        (N, 2) int32: each image's original height and width
``size``         S
``pixel_counts`` per class, over the split's masks at original resolution
``leaf_names``   class names by id (classes.txt order), set by the prepare stage

and, built with full masks (the val split), every original-resolution mask flat in ``full_masks``
with ``offsets`` (N + 1) into it, so evaluation scores at full resolution without the dataset.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .atomic import save_torch
from .errors import UserError


def pack(images: torch.Tensor, masks: torch.Tensor, ids: list[str], sizes: torch.Tensor, size: int,
         pixel_counts: np.ndarray, full_masks: list[np.ndarray] | None = None) -> dict:
    """A cache from its parts (all but ``leaf_names``); ``full_masks``: the original-resolution masks."""
    cache = {"images": images, "masks": masks, "ids": list(ids), "sizes": sizes, "size": size,
             "pixel_counts": torch.from_numpy(pixel_counts)}
    if full_masks is not None:
        lengths = torch.tensor([m.size for m in full_masks], dtype=torch.int64)
        cache["offsets"] = torch.cat([torch.zeros(1, dtype=torch.int64), lengths.cumsum(0)])
        cache["full_masks"] = torch.from_numpy(np.concatenate([m.ravel() for m in full_masks]))
    return cache


def full_mask(cache: dict, k: int) -> torch.Tensor:
    """The original-resolution mask of item ``k`` of a cache built with full masks."""
    h, w = cache["sizes"][k].tolist()
    lo, hi = cache["offsets"][k].item(), cache["offsets"][k + 1].item()
    return cache["full_masks"][lo:hi].view(h, w)


def save_cache(cache: dict, path: Path) -> None:
    save_torch(cache, path)


def load_cache(path: Path) -> dict:
    if not Path(path).is_file():
        raise UserError(f"{path} not found: run the prepare stage first (`dvc repro prepare`)")
    # mmap: tensors are paged in from the file, so loading does not hold a second copy in memory
    return torch.load(path, weights_only=True, mmap=True)
