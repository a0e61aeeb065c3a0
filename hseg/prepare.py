"""Decode, validate and resize a split once, into a uint8 tensor cache (its format: hseg/cache.py).

With ``keep_full_masks`` the cache also keeps every original-resolution mask, so evaluation can
score at full resolution without touching the dataset again.
"""
from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from .cache import pack
from .dataset import load_pair
from .errors import UserError


def _decode_one(job):
    root, image_id, num_classes, size, keep_full = job
    try:
        image, mask = load_pair(root, image_id, num_classes)
    except UserError as exc:
        return image_id, str(exc)
    small_image = resize_image(image, size)
    small_mask = np.array(Image.fromarray(mask).resize((size, size), Image.NEAREST))
    pixels = np.bincount(mask.ravel(), minlength=num_classes)
    return image_id, (small_image, small_mask, mask.shape, mask if keep_full else None, pixels)


def resize_image(image: np.ndarray, size: int) -> np.ndarray:
    """HxWx3 uint8 -> 3xSxS uint8, the way every model input is made (prepare and predict)."""
    return np.asarray(Image.fromarray(image).resize((size, size), Image.BILINEAR)).transpose(2, 0, 1).copy()


def build_cache(root: Path, ids: list[str], num_classes: int, size: int, *,
                keep_full_masks: bool = False, workers: int = 0, desc: str = "prepare") -> dict:
    """Decode all ids in parallel; raise one UserError listing every faulty id."""
    workers = workers or os.cpu_count() or 1
    n = len(ids)
    images = torch.empty((n, 3, size, size), dtype=torch.uint8)
    masks = torch.empty((n, size, size), dtype=torch.uint8)
    sizes = torch.empty((n, 2), dtype=torch.int32)
    full: list = [None] * n
    pixel_counts = np.zeros(num_classes, dtype=np.int64)
    errors = []
    jobs = [(root, i, num_classes, size, keep_full_masks) for i in ids]
    with ProcessPoolExecutor(workers) if workers > 1 else _Serial() as pool:
        results = pool.map(_decode_one, jobs, chunksize=16)
        for k, (image_id, result) in enumerate(tqdm(results, total=n, desc=desc, unit="img")):
            if isinstance(result, str):
                errors.append(result)
                continue
            img, m, shape, fm, pixels = result
            images[k] = torch.from_numpy(img)
            masks[k] = torch.from_numpy(m)
            sizes[k] = torch.tensor(shape)
            full[k] = fm
            pixel_counts += pixels
    if errors:
        more = f"\n  ... and {len(errors) - 10} more" if len(errors) > 10 else ""
        raise UserError(f"{len(errors)} of {n} {desc} item(s) failed validation:\n  "
                        + "\n  ".join(errors[:10]) + more)
    return pack(images, masks, ids, sizes, size, pixel_counts, full if keep_full_masks else None)


class _Serial:
    """A stand-in for a process pool when one worker is asked for."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    @staticmethod
    def map(fn, jobs, chunksize=1):
        return map(fn, jobs)
