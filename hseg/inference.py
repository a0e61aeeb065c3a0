"""Batched inference shared by training, evaluation and predict: logits with test-time augmentation,
leaf maps at each image's own size (device and precision: device.py)."""
from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from tqdm import tqdm

from .device import autocast, to_device
from .hierarchy import class_argmax, leaf_scores
from .tree import ClassTree


@torch.no_grad()
def predict_logits(model, images_uint8: torch.Tensor, device, precision: str, flip_tta: bool = False,
                   tta_sides: tuple[int, ...] = ()) -> torch.Tensor:
    """Float32 logits (N,C,S,S) for a uint8 batch at the cache size S. Test-time augmentation
    averages the logits of several views, each mapped back to S x S: with ``flip_tta`` the mirror
    image (flipped back), with ``tta_sides`` the batch resized to each of those sides (antialiased
    when shrinking, like a cache prepared at that size; logits resized back bilinearly; S itself
    counts once)."""
    x = to_device(images_uint8, device)
    side = x.shape[-1]
    total, views = 0, 0
    with autocast(device, precision):
        for s in (side, *(t for t in tta_sides if t != side)):
            xs = x if s == side else F.interpolate(x, size=(s, s), mode="bilinear", align_corners=False,
                                                   antialias=s < side).contiguous(memory_format=torch.channels_last)
            for flip in (False, True) if flip_tta else (False,):
                logits = model(xs.flip(-1) if flip else xs).float()
                logits = logits.flip(-1) if flip else logits
                if s != side:
                    logits = F.interpolate(logits, size=(side, side), mode="bilinear", align_corners=False)
                total, views = total + logits, views + 1
    return total / views


@functools.lru_cache(maxsize=256)
def _bilinear_taps(n_in: int, n_out: int, device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(index0, index1, weight1) of each output position, as F.interpolate(bilinear,
    align_corners=False) computes them (float32 source coordinates, clamped at 0). Cached per
    (sizes, device): the val set has few distinct sizes, and each fresh set costs a GPU three
    small blocking copies. Read-only."""
    scale = torch.tensor(n_in / n_out, dtype=torch.float32)
    src = ((torch.arange(n_out, dtype=torch.float32) + 0.5) * scale - 0.5).clamp(min=0)
    i0 = src.long()
    i1 = torch.where(i0 < n_in - 1, i0 + 1, i0)
    return i0.to(device), i1.to(device), (src - i0).to(device)


def upsample_argmax(scores: torch.Tensor, size: tuple[int, int], tile_rows: int = 256) -> torch.Tensor:
    """argmax over classes of ``scores`` (C,h,w) bilinearly upsampled to ``size`` = (H, W), as
    ``F.interpolate(..., align_corners=False).argmax(0)`` but in tiles of output rows, so a
    12-megapixel photo never holds its C full-size float score maps (7 x 48 MB) at once.
    uint8 class indices (C <= 256), an eighth of the bytes of int64 to copy off a GPU."""
    (c, h, w), (out_h, out_w) = scores.shape, size
    if c > 256:
        raise ValueError(f"upsample_argmax returns uint8 class indices: {c} classes are too many")
    x0, x1, wx = _bilinear_taps(w, out_w, scores.device)
    across = scores[:, :, x0] * (1 - wx) + scores[:, :, x1] * wx        # (C, h, W): rows resized first
    y0, y1, wy = _bilinear_taps(h, out_h, scores.device)
    out = torch.empty(out_h, out_w, dtype=torch.uint8, device=scores.device)
    for lo in range(0, out_h, tile_rows):
        sl = slice(lo, lo + tile_rows)
        a, b, t = across[:, y0[sl]], across[:, y1[sl]], wy[sl].view(1, -1, 1)
        out[sl] = class_argmax(a * (1 - t) + b * t, 0)
    return out


def predict_batches(model, head: str, tree: ClassTree, images_small: torch.Tensor, sizes: list, device,
                    precision: str, batch_size: int, progress: bool = True, desc: str = "predict",
                    flip_tta: bool = False, tta_sides: tuple[int, ...] = ()):
    """Yield (start index, raw outputs, leaf scores at cache size, [uint8 leaf map at original size]),
    all on ``device``.

    Leaf scores are upsampled bilinearly to each image's (H, W) before the argmax (upsample_argmax,
    which predict uses too, so both give identical maps). ``flip_tta`` and ``tta_sides``:
    test-time augmentation, see predict_logits."""
    n = len(images_small)
    for lo in tqdm(range(0, n, batch_size), desc=desc, unit="batch", disable=not progress):
        outputs = predict_logits(model, images_small[lo:lo + batch_size], device, precision, flip_tta,
                                 tta_sides)
        scores = leaf_scores(outputs, tree, head)
        full = [upsample_argmax(scores[j], tuple(sizes[lo + j])) for j in range(len(scores))]
        yield lo, outputs, scores, full
