"""A second look at the people at test time: the model runs on the whole image, then again on a square
around the body it predicted, magnified to the model's input size, and inside that square the two
passes' logits are averaged (small people are where limbs are lost; the zoomed pass sees them larger).

BodyZoom wraps a model, so every test-time path that calls a model (flip and multi-scale TTA in
hseg.inference, evaluate_model) takes it unchanged; each TTA view zooms on its own prediction.
Scored on dev as a candidate by `python benchmarks/tta.py WEIGHTS --settings flip zoom:flip`.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .hierarchy import leaf_scores
from .tree import ClassTree

MARGIN = 1.2      # the square's side over the body box's longer side (context around the people)
MAX_ZOOM = 2.0    # at most this magnification (a tiny false positive must not become the whole view)
MIN_ZOOM = 1.25   # below this the second pass would see the people at almost the same size: skipped


def body_squares(body: torch.Tensor, margin: float = MARGIN, max_zoom: float = MAX_ZOOM,
                 min_zoom: float = MIN_ZOOM) -> tuple[torch.Tensor, torch.Tensor]:
    """(squares (N, 3) as centre x, centre y, half side in grid_sample's coordinates, where the image
    spans -1..1; zoomed (N,) bool) for boolean body masks (N, H, W) of square images. A square is
    ``margin`` times the body box's longer side, at least 1 / ``max_zoom`` of the image and moved to lie
    inside it; images without body pixels, or whose square is more than 1 / ``min_zoom`` of the image,
    are not zoomed."""
    n, h, w = body.shape
    if h != w:
        raise ValueError(f"body_squares expects square images, got {h} x {w}")
    rows, cols = body.any(2), body.any(1)
    found = rows.any(1)
    index = torch.arange(h, device=body.device)
    first = lambda mask: torch.where(mask, index, h).min(1).values                 # noqa: E731
    last = lambda mask: torch.where(mask, index, -1).max(1).values                 # noqa: E731
    y0, y1, x0, x1 = first(rows), last(rows) + 1, first(cols), last(cols) + 1       # pixel edges
    to_grid = lambda p: 2 * p.float() / h - 1                                      # noqa: E731
    cx, cy = (to_grid(x0) + to_grid(x1)) / 2, (to_grid(y0) + to_grid(y1)) / 2
    half = torch.maximum(x1 - x0, y1 - y0).float() / h * margin
    zoomed = found & (half <= 1 / min_zoom)
    half = half.clamp(min=1 / max_zoom, max=1.0)
    cx, cy = cx.clamp(-1 + half, 1 - half), cy.clamp(-1 + half, 1 - half)
    return torch.stack([cx, cy, half], 1), zoomed


def _affine(squares: torch.Tensor, inverse: bool) -> torch.Tensor:
    """affine_grid's theta (N, 2, 3): the square's view (output -1..1 -> the square), or its inverse
    (the image's coordinates -> the square's own -1..1)."""
    cx, cy, half = squares.unbind(1)
    zero = torch.zeros_like(half)
    if inverse:
        rows = [torch.stack([1 / half, zero, -cx / half], 1), torch.stack([zero, 1 / half, -cy / half], 1)]
    else:
        rows = [torch.stack([half, zero, cx], 1), torch.stack([zero, half, cy], 1)]
    return torch.stack(rows, 1)


class BodyZoom(torch.nn.Module):
    """``model`` with a second pass on the square around each image's predicted body (see the module)."""

    def __init__(self, model: torch.nn.Module, tree: ClassTree, head: str):
        super().__init__()
        self.model, self.tree, self.head = model, tree, head
        self.background = tree.leaf_names.index(tree.background)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.model(x)
        body = leaf_scores(logits, self.tree, self.head).argmax(1) != self.background
        squares, zoomed = body_squares(body)
        if not zoomed.any():
            return logits
        picked, squares = zoomed.nonzero().squeeze(1), squares[zoomed]
        crops = x[picked].float()
        grid = F.affine_grid(_affine(squares, False), list(crops.shape), align_corners=False)
        views = F.grid_sample(crops, grid.to(crops.dtype), mode="bilinear", padding_mode="border",
                              align_corners=False).to(x.dtype).contiguous(memory_format=torch.channels_last)
        second = self.model(views).float()
        shape = [len(picked), *logits.shape[1:]]
        back = F.affine_grid(_affine(squares, True), shape, align_corners=False)
        pasted = F.grid_sample(second, back, mode="bilinear", padding_mode="border", align_corners=False)
        inside = (back.abs() <= 1).all(-1).unsqueeze(1)            # (n, 1, H, W): the square's pixels
        first = logits[picked].float()
        out = logits.float().clone()
        out[picked] = torch.where(inside, (first + pasted) / 2, first)
        return out.to(logits.dtype)
