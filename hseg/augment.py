"""Batch augmentation as tensor ops on the training device.

The standard segmentation recipe: random zoom + crop (train small, test big),
horizontal flips, and optional small rotation, shift and brightness/contrast
jitter (people are upright, so no vertical flips); progressive resizing renders
the same views at fewer pixels in early epochs. Mask pixels that come from
outside the image get the ignore label, which every loss skips. All randomness
comes from the given CPU generator, so runs are reproducible.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .settings.train import AugmentSettings
from .tree import IGNORE

# A person view (train.augment.person_crop) shows the people's box with this margin around it, magnified at
# most PERSON_MAX_ZOOM times the training crop's own scale: small people fill more of the view, and
# tiny ones are not blown up into a blur.
PERSON_MARGIN = 1.2
PERSON_MAX_ZOOM = 2.0


def _uniform(n, spread, gen):
    return (torch.rand(n, generator=gen) * 2 - 1) * spread


def _geometric(cfg: AugmentSettings, crop: int, size: int) -> bool:
    return cfg.scale != (1.0, 1.0) or bool(cfg.shift) or bool(cfg.rotate) or crop != size or bool(cfg.person_crop)


def person_boxes(masks: torch.Tensor, background: int) -> torch.Tensor:
    """(N,4) CPU float boxes x0, y0, x1, y1 around each mask's labelled pixels (neither ``background`` nor
    IGNORE), in affine_grid's normalised coordinates (-1 and 1 are the image's outer edges); the whole
    image where a mask has none."""
    labelled = (masks != background) & (masks != IGNORE)

    def extent(hit: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        size = hit.shape[1]
        index = torch.arange(size, device=hit.device)
        first = torch.where(hit, index, size).min(1).values
        last = torch.where(hit, index, -1).max(1).values
        empty = ~hit.any(1)
        first, last = torch.where(empty, 0, first), torch.where(empty, size - 1, last)
        return first.float() * 2 / size - 1, (last.float() + 1) * 2 / size - 1

    x0, x1 = extent(labelled.any(1))
    y0, y1 = extent(labelled.any(2))
    return torch.stack([x0, y0, x1, y1], 1).cpu()


def person_views(boxes: torch.Tensor, flip: torch.Tensor | None, min_half: float, gen: torch.Generator):
    """(N,2,3) affine maps of views around each person box (axis-aligned): the box with PERSON_MARGIN
    around it, its larger side deciding the view's half-extent (at least ``min_half``, at most the whole
    image), placed at random where the box stays inside, and inside the image where it fits. ``flip``:
    the rows mirrored before the view is taken, whose boxes are mirrored alike."""
    boxes = boxes.clone()
    if flip is not None:
        boxes[flip, 0], boxes[flip, 2] = -boxes[flip, 2], -boxes[flip, 0]
    half_w, half_h = (boxes[:, 2] - boxes[:, 0]) / 2, (boxes[:, 3] - boxes[:, 1]) / 2
    half = (torch.maximum(half_w, half_h) * PERSON_MARGIN).clamp(min_half, 1.0)
    n = len(boxes)
    tx = (boxes[:, 0] + boxes[:, 2]) / 2 + _uniform(n, 1.0, gen) * (half - half_w).clamp(min=0)
    ty = (boxes[:, 1] + boxes[:, 3]) / 2 + _uniform(n, 1.0, gen) * (half - half_h).clamp(min=0)
    tx, ty = tx.clamp(half - 1, 1 - half), ty.clamp(half - 1, 1 - half)
    zero = torch.zeros_like(half)
    return torch.stack([torch.stack([half, zero, tx], 1), torch.stack([zero, half, ty], 1)], 1)


def crop_transform(n: int, cfg: AugmentSettings, crop: int, size: int, gen: torch.Generator) -> torch.Tensor:
    """(N,2,3) affine maps from a crop x crop output to the size x size input (normalised coordinates).

    Zoom z (log-uniform in cfg.scale) shows the image at z times its cached size, so a
    crop covers a = crop / (size * z) of each side; the crop centre is drawn so the
    crop stays inside the image where it fits (|t| <= |1 - a|), plus cfg.shift."""
    lo, hi = cfg.scale
    zoom = torch.exp(math.log(lo) + torch.rand(n, generator=gen) * (math.log(hi) - math.log(lo)))
    half = crop / (size * zoom)
    angle = _uniform(n, math.radians(cfg.rotate), gen)
    tx = _uniform(n, 1.0, gen) * (1 - half).abs() + _uniform(n, 2 * cfg.shift, gen)
    ty = _uniform(n, 1.0, gen) * (1 - half).abs() + _uniform(n, 2 * cfg.shift, gen)
    cos, sin = torch.cos(angle) * half, torch.sin(angle) * half
    return torch.stack([torch.stack([cos, -sin, tx], 1), torch.stack([sin, cos, ty], 1)], 1)


def draw_augment(n: int, cfg: AugmentSettings, gen: torch.Generator, crop: int, size: int, side: int = 0,
                 boxes: torch.Tensor | None = None) -> dict:
    """The random numbers of one global batch of n images (drawn on every process alike).

    ``side`` (progressive resizing; 0 = off) renders the same views of the cache as a crop of
    ``crop`` would, at side x side pixels: every zoom is scaled by side / crop. ``boxes``
    (person_boxes of the batch's masks) are needed where cfg.person_crop > 0: that share of the
    views, drawn per image, shows the people's box instead (person_views)."""
    crop = crop or size
    min_person_half = crop / (size * PERSON_MAX_ZOOM)
    if side and side != crop:
        cfg = cfg.model_copy(update={"scale": tuple(z * side / crop for z in cfg.scale)})
        crop = side
    draws = {"crop": crop}
    if cfg.hflip:
        draws["flip"] = torch.rand(n, generator=gen) < 0.5
    if _geometric(cfg, crop, size):
        draws["theta"] = crop_transform(n, cfg, crop, size, gen)
    if cfg.person_crop:
        if boxes is None:
            raise ValueError("train.augment.person_crop > 0 needs the batch's person boxes")
        chosen = torch.rand(n, generator=gen) < cfg.person_crop
        views = person_views(boxes, draws.get("flip"), min_person_half, gen)
        draws["theta"] = torch.where(chosen.view(n, 1, 1), views, draws["theta"])
    if cfg.brightness or cfg.contrast:
        draws["gain"] = 1 + _uniform(n, cfg.contrast, gen)
        draws["bias"] = _uniform(n, cfg.brightness, gen) * 255
    return draws


def apply_augment(images: torch.Tensor, masks: torch.Tensor, draws: dict, rows: torch.Tensor):
    """Augment rows ``rows`` of the global batch whose random numbers are ``draws``.

    images: uint8 or float (n,3,S,S) in 0..255; masks: uint8 (n,S,S). Returns float images
    and uint8 masks of side draws["crop"]; image pixels from outside are black, their labels IGNORE."""
    n, crop = images.shape[0], draws["crop"]
    dev = images.device
    images = images.float()
    if "flip" in draws:
        flip = draws["flip"][rows].to(dev)
        images = torch.where(flip.view(n, 1, 1, 1), images.flip(-1), images)
        masks = torch.where(flip.view(n, 1, 1), masks.flip(-1), masks)
    if "theta" in draws:
        grid = F.affine_grid(draws["theta"][rows].to(dev), [n, 3, crop, crop], align_corners=False)
        images = F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        # nearest keeps labels exact; a pixel centre outside the image has no label
        labels = F.grid_sample(masks[:, None].float(), grid, mode="nearest", padding_mode="zeros",
                               align_corners=False)[:, 0]
        inside = (grid.abs() <= 1).all(-1)
        masks = torch.where(inside, labels, IGNORE).to(masks.dtype)
    if "gain" in draws:
        gain = draws["gain"][rows].view(n, 1, 1, 1).to(dev)
        bias = draws["bias"][rows].view(n, 1, 1, 1).to(dev)
        mean = images.mean(dim=(1, 2, 3), keepdim=True)
        images = ((images - mean) * gain + mean + bias).clamp(0, 255)
    return images, masks
