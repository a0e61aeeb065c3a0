"""Run a trained variant on your own photos.

For every image writes, at the image's original size:
  <out>/<name>.png              single-channel leaf class ids (0..N-1, like the dataset masks)
  <out>/<name>_level<k>.png     a colour overlay per hierarchy level, with a legend

    python -m hseg predict --variant unet-resnet34-scratch photos/ -o predictions/
    python -m hseg predict --weights models/x.pt a.jpg b.png
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from . import layout
from .dataset import load_image
from .errors import UserError
from .models import load_checkpoint
from .plots import PALETTE
from .prepare import resize_image
from .runtime import pick_device, predict_batches, prepare_model
from .tree import ClassTree, build_tree

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}


def collect_images(inputs: list[Path]) -> list[Path]:
    files = []
    for p in inputs:
        if p.is_dir():
            files += sorted(f for f in p.rglob("*") if f.suffix.lower() in IMAGE_SUFFIXES)
        elif p.is_file():
            files.append(p)
        else:
            raise UserError(f"{p}: no such file or folder")
    if not files:
        raise UserError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) found in {', '.join(map(str, inputs))}")
    return files


def overlay(image: np.ndarray, labels: np.ndarray, names: tuple[str, ...], alpha: float = 0.55) -> Image.Image:
    """The photo blended with the level's colours, and a legend strip underneath."""
    colours = PALETTE[labels % len(PALETTE)]
    blended = np.where(labels[..., None] > 0, (1 - alpha) * image + alpha * colours, image).astype(np.uint8)
    h, w = labels.shape
    row, box = 16, 12
    per_row = max(1, w // 110)
    legend_h = row * ((len(names) + per_row - 1) // per_row) + 4
    canvas = Image.new("RGB", (w, h + legend_h), "white")
    canvas.paste(Image.fromarray(blended), (0, 0))
    draw = ImageDraw.Draw(canvas)
    for i, name in enumerate(names):
        x, y = 4 + (i % per_row) * 110, h + 3 + (i // per_row) * row
        draw.rectangle([x, y, x + box, y + box], fill=tuple(int(c) for c in PALETTE[i % len(PALETTE)]),
                       outline="black")
        draw.text((x + box + 4, y), name, fill="black")
    return canvas


def predict_files(files: list[Path], weights: Path, out_dir: Path, *, batch_size: int = 16, precision: str = "auto",
                  device: str = "auto", progress: bool = True) -> list[str]:
    """Write predictions for ``files``; returns the unreadable ones (skipped, with a reason)."""
    dev = pick_device(device)
    model, meta = load_checkpoint(weights)
    model = prepare_model(model, dev)
    tree: ClassTree = build_tree(meta["tree"], meta["background"], meta["leaf_names"])
    size = meta["size"]
    skipped, good, images = [], [], []
    for f in files:
        try:
            images.append(load_image(f))
            good.append(f)
        except UserError as exc:
            print(f"warning: skipping {exc}", file=sys.stderr)
            skipped.append(str(f))
    if not good:
        return skipped
    small = torch.from_numpy(np.stack([resize_image(im, size) for im in images]))
    sizes = [im.shape[:2] for im in images]
    out_dir.mkdir(parents=True, exist_ok=True)
    for lo, _, _, leaf_maps in predict_batches(model, meta["mode"], tree, small, sizes, dev, precision,
                                               batch_size, progress, "predict"):
        for k, leaf in enumerate(leaf_maps, start=lo):
            leaf = leaf.numpy().astype(np.uint8)
            stem = good[k].stem
            Image.fromarray(leaf, mode="L").save(out_dir / f"{stem}.png")
            for lvl, level in enumerate(tree.levels):
                overlay(images[k], level.leaf_to_level[leaf], level.names).save(out_dir / f"{stem}_level{lvl}.png")
    return skipped


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m hseg predict", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--variant", help="a trained variant, read from models/<variant>.pt")
    which.add_argument("--weights", type=Path, help="a weights file written by the train stage")
    parser.add_argument("inputs", nargs="+", type=Path, help="image files or folders (searched recursively)")
    parser.add_argument("-o", "--out", type=Path, default=Path("predictions"), help="output folder")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--precision", choices=("auto", "bf16", "fp32"), default="auto",
                        help="auto: bf16 where the device has native bf16, else fp32")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--no-progress", action="store_true")
    return parser


def run(args) -> int:
    weights = args.weights or layout.weights_file(args.variant)
    skipped = predict_files(collect_images(args.inputs), weights, args.out, batch_size=args.batch_size,
                            precision=args.precision, device=args.device, progress=not args.no_progress)
    if skipped:
        print(f"error: {len(skipped)} unreadable file(s) skipped:\n  " + "\n  ".join(skipped), file=sys.stderr)
        return 1
    print(f"predictions -> {args.out}")
    return 0
