"""Reading and validating the Pascal-Part layout.

    <root>/JPEGImages/<id>.jpg
    <root>/masks/<id>.png        (or gt_masks/<id>.npy, the original download)
    <root>/classes.txt           "0: bg" per line
    <root>/train_id.txt, val_id.txt

Id and class files may have CRLF endings, a UTF-8 BOM, blank lines and
surrounding whitespace; all are tolerated.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import UserError


def _lines(path: Path) -> list[str]:
    text = path.read_bytes().decode("utf-8-sig", errors="replace")
    return [line.strip() for line in text.splitlines() if line.strip()]


def read_ids(path: Path) -> list[str]:
    ids = _lines(path)
    if not ids:
        raise UserError(f"{path}: the split is empty")
    seen, dups = set(), []
    for i in ids:
        if i in seen:
            dups.append(i)
        seen.add(i)
    if dups:
        raise UserError(f"{path}: duplicate id(s) {sorted(set(dups))[:5]}")
    return ids


def read_classes(path: Path) -> list[str]:
    """Class names by id from lines like ``0: bg``; ids must be exactly 0..N-1."""
    by_id = {}
    for line in _lines(path):
        num, sep, name = line.partition(":")
        if not sep or not num.strip().isdigit() or not name.strip():
            raise UserError(f"{path}: line {line!r} is not of the form '<id>: <name>'")
        cid = int(num)
        if cid in by_id:
            raise UserError(f"{path}: class id {cid} appears twice")
        by_id[cid] = name.strip()
    if sorted(by_id) != list(range(len(by_id))):
        raise UserError(f"{path}: class ids must be 0..N-1 without gaps, got {sorted(by_id)}")
    if len(by_id) > 255:
        raise UserError(f"{path}: at most 255 classes fit in uint8 masks, got {len(by_id)}")
    return [by_id[i] for i in range(len(by_id))]


def check_splits(train_ids: list[str], val_ids: list[str], train_path: Path, val_path: Path) -> None:
    both = sorted(set(train_ids) & set(val_ids))
    if both:
        raise UserError(f"{len(both)} id(s) are in both {train_path.name} and {val_path.name}, "
                        f"e.g. {both[:5]}")


def in_dev_split(image_id: str, fraction: float) -> bool:
    """Whether a train id is held out as dev: the first 8 bytes of its SHA-256 as a number in [0, 1)
    below ``fraction``. It depends on the id alone (not on file order or on the other ids), so adding
    or removing ids never moves another id between train and dev."""
    return int.from_bytes(hashlib.sha256(image_id.encode()).digest()[:8], "big") < fraction * 2 ** 64


def split_dev(train_ids: list[str], fraction: float) -> tuple[list[str], list[str]]:
    """(train ids to fit on, dev ids to choose on), each in the order of ``train_ids``."""
    dev = [i for i in train_ids if in_dev_split(i, fraction)]
    held = set(dev)
    return [i for i in train_ids if i not in held], dev


def load_image(path: Path, apply_orientation: bool = False) -> np.ndarray:
    """An RGB uint8 HxWx3 array; grayscale, RGBA, CMYK and palette photos are converted.

    ``apply_orientation`` turns the pixels as the EXIF orientation tag says, i.e. as a
    viewer shows the photo (for prediction). Training data keeps its stored pixels,
    which its masks were drawn on."""
    if not path.is_file():
        raise UserError(f"{path}: image not found")
    try:
        with Image.open(path) as im:
            im.load()  # forces a full decode so truncated files fail here
            if apply_orientation:
                im = ImageOps.exif_transpose(im)
            return np.asarray(im.convert("RGB"))
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise UserError(f"{path}: unreadable or truncated image ({exc})") from None


def mask_path(root: Path, image_id: str) -> Path:
    png = root / "masks" / f"{image_id}.png"
    npy = root / "gt_masks" / f"{image_id}.npy"
    if png.is_file():
        return png
    if npy.is_file():
        return npy
    raise UserError(f"id {image_id}: no mask (looked for {png} and {npy})")


def load_mask(path: Path) -> np.ndarray:
    """A HxW uint8 array of class ids, from a single-channel/palette PNG or a .npy."""
    if path.suffix == ".npy":
        try:
            mask = np.load(path, allow_pickle=False)
        except (ValueError, OSError) as exc:
            raise UserError(f"{path}: unreadable mask ({exc})") from None
        if mask.ndim != 2 or not np.issubdtype(mask.dtype, np.integer):
            raise UserError(f"{path}: expected a 2-D integer array, got {mask.dtype} {mask.shape}")
    else:
        try:
            with Image.open(path) as im:
                im.load()
                if im.mode == "P":      # palette PNG: the indices are the class ids
                    mask = np.asarray(im)
                elif im.mode in ("RGB", "RGBA"):
                    rgb = np.asarray(im.convert("RGB"))
                    if not ((rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 1] == rgb[..., 2]).all()):
                        raise UserError(f"{path}: RGB mask with colours is ambiguous; save it as a "
                                        f"single-channel (mode L) or palette PNG of class ids")
                    mask = rgb[..., 0]
                else:
                    mask = np.asarray(im)
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
            raise UserError(f"{path}: unreadable or truncated mask ({exc})") from None
        if mask.ndim != 2:
            raise UserError(f"{path}: expected a single-channel mask, got shape {mask.shape}")
    if mask.size and (mask.min() < 0 or mask.max() > 255):
        raise UserError(f"{path}: label values {mask.min()}..{mask.max()} do not fit uint8")
    return mask.astype(np.uint8)


def load_pair(root: Path, image_id: str, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """The validated (image, mask) pair of one id."""
    image = load_image(root / "JPEGImages" / f"{image_id}.jpg")
    mpath = mask_path(root, image_id)
    mask = load_mask(mpath)
    if mask.shape != image.shape[:2]:
        raise UserError(f"id {image_id}: mask {mpath.name} is {mask.shape[1]}x{mask.shape[0]} but the "
                        f"image is {image.shape[1]}x{image.shape[0]}")
    bad = np.unique(mask[mask >= num_classes])
    if bad.size:
        raise UserError(f"id {image_id}: mask {mpath.name} has label(s) {bad.tolist()} outside "
                        f"classes.txt ids 0..{num_classes - 1}")
    return image, mask
