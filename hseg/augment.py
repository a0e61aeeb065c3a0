"""Batch augmentation as tensor ops on the training device.

People are upright, so only horizontal flips, small zoom/shift/rotation and
brightness/contrast jitter are used. All randomness comes from the given
generator (on CPU) so runs are reproducible.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .params import Augment


def _uniform(n, spread, gen):
    return (torch.rand(n, generator=gen) * 2 - 1) * spread


def augment_batch(images: torch.Tensor, masks: torch.Tensor, cfg: Augment, gen: torch.Generator):
    """images: float (N,3,H,W) in 0..255; masks: uint8/long (N,H,W). Returns augmented copies."""
    n = images.shape[0]
    dev = images.device
    if cfg.hflip:
        flip = (torch.rand(n, generator=gen) < 0.5).to(dev)
        images = torch.where(flip.view(n, 1, 1, 1), images.flip(-1), images)
        masks = torch.where(flip.view(n, 1, 1), masks.flip(-1), masks)
    if cfg.scale or cfg.shift or cfg.rotate:
        zoom = 1 + _uniform(n, cfg.scale, gen)
        angle = _uniform(n, math.radians(cfg.rotate), gen)
        tx, ty = _uniform(n, 2 * cfg.shift, gen), _uniform(n, 2 * cfg.shift, gen)
        cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
        theta = torch.stack([torch.stack([cos, -sin, tx], 1), torch.stack([sin, cos, ty], 1)], 1).to(dev)
        grid = F.affine_grid(theta, list(images.shape), align_corners=False)
        images = F.grid_sample(images, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
        # nearest keeps labels exact; pixels moved in from outside become background
        masks = F.grid_sample(masks[:, None].float(), grid, mode="nearest", padding_mode="zeros",
                              align_corners=False)[:, 0].to(masks.dtype)
    if cfg.brightness or cfg.contrast:
        gain = (1 + _uniform(n, cfg.contrast, gen)).view(n, 1, 1, 1).to(dev)
        bias = (_uniform(n, cfg.brightness, gen) * 255).view(n, 1, 1, 1).to(dev)
        mean = images.mean(dim=(1, 2, 3), keepdim=True)
        images = ((images - mean) * gain + mean + bias).clamp(0, 255)
    return images, masks
