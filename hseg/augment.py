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
from dataclasses import replace

import torch
import torch.nn.functional as F

from .settings.train import Augment
from .tree import IGNORE


def _uniform(n, spread, gen):
    return (torch.rand(n, generator=gen) * 2 - 1) * spread


def _geometric(cfg: Augment, crop: int, size: int) -> bool:
    return cfg.scale != (1.0, 1.0) or bool(cfg.shift) or bool(cfg.rotate) or crop != size


def crop_transform(n: int, cfg: Augment, crop: int, size: int, gen: torch.Generator) -> torch.Tensor:
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


def draw_augment(n: int, cfg: Augment, gen: torch.Generator, crop: int, size: int, side: int = 0) -> dict:
    """The random numbers of one global batch of n images (drawn on every process alike).

    ``side`` (progressive resizing; 0 = off) renders the same views of the cache as a crop of
    ``crop`` would, at side x side pixels: every zoom is scaled by side / crop."""
    crop = crop or size
    if side and side != crop:
        cfg = replace(cfg, scale=tuple(z * side / crop for z in cfg.scale))
        crop = side
    draws = {"crop": crop}
    if cfg.hflip:
        draws["flip"] = torch.rand(n, generator=gen) < 0.5
    if _geometric(cfg, crop, size):
        draws["theta"] = crop_transform(n, cfg, crop, size, gen)
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


def augment_batch(images: torch.Tensor, masks: torch.Tensor, cfg: Augment, gen: torch.Generator,
                  crop: int = 0, side: int = 0):
    """Augment a whole batch: draw_augment then apply_augment to every row."""
    draws = draw_augment(images.shape[0], cfg, gen, crop, images.shape[-1], side)
    return apply_augment(images, masks, draws, torch.arange(images.shape[0]))
