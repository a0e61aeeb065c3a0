"""A synthetic Pascal-Part look-alike in the real on-disk layout.

Each image shows one or two stick figures whose body parts carry the seven
labels (head circle, torso box, upper/lower arms and legs as thick lines) on a
noisy background; the part colours are distinct so a tiny model can learn them.
Id and class files use CRLF and no final newline, like the real ones.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

CLASSES = ["bg", "low_hand", "torso", "low_leg", "head", "up_leg", "up_hand"]
COLOURS = {1: (220, 180, 140), 2: (40, 90, 200), 3: (90, 60, 30), 4: (240, 200, 170), 5: (30, 30, 120),
           6: (200, 60, 60)}


def draw_person(img: ImageDraw.ImageDraw, mask: ImageDraw.ImageDraw, cx: float, top: float, scale: float):
    s = scale
    parts = [  # (label, kind, geometry) drawn back to front
        (5, "line", [(cx - 8 * s, top + 60 * s), (cx - 10 * s, top + 85 * s)]),
        (5, "line", [(cx + 8 * s, top + 60 * s), (cx + 10 * s, top + 85 * s)]),
        (3, "line", [(cx - 10 * s, top + 85 * s), (cx - 11 * s, top + 110 * s)]),
        (3, "line", [(cx + 10 * s, top + 85 * s), (cx + 11 * s, top + 110 * s)]),
        (2, "box", [(cx - 14 * s, top + 22 * s), (cx + 14 * s, top + 62 * s)]),
        (6, "line", [(cx - 14 * s, top + 26 * s), (cx - 26 * s, top + 44 * s)]),
        (6, "line", [(cx + 14 * s, top + 26 * s), (cx + 26 * s, top + 44 * s)]),
        (1, "line", [(cx - 26 * s, top + 44 * s), (cx - 30 * s, top + 62 * s)]),
        (1, "line", [(cx + 26 * s, top + 44 * s), (cx + 30 * s, top + 62 * s)]),
        (4, "circle", [(cx - 10 * s, top), (cx + 10 * s, top + 20 * s)]),
    ]
    width = max(2, int(8 * s))
    for label, kind, geom in parts:
        for draw, fill in ((img, COLOURS[label]), (mask, label)):
            if kind == "line":
                draw.line(geom, fill=fill, width=width)
            elif kind == "box":
                draw.rectangle(geom, fill=fill)
            else:
                draw.ellipse(geom, fill=fill)


def make_dataset(root: Path, n_train: int = 12, n_val: int = 6, seed: int = 0, npy_masks: bool = False,
                 sizes=((96, 72), (72, 96), (100, 80))) -> Path:
    """Write the dataset under ``root``; returns root. Image sizes vary like the real data."""
    rng = np.random.default_rng(seed)
    root = Path(root)
    (root / "JPEGImages").mkdir(parents=True, exist_ok=True)
    (root / ("gt_masks" if npy_masks else "masks")).mkdir(parents=True, exist_ok=True)
    ids = [f"2008_{i:06d}" for i in range(n_train + n_val)]
    for k, image_id in enumerate(ids):
        w, h = sizes[k % len(sizes)]
        background = rng.integers(90, 160, size=(h, w, 3), dtype=np.uint8)
        img = Image.fromarray(background)
        mask = Image.new("L", (w, h), 0)
        for _ in range(rng.integers(1, 3)):
            scale = rng.uniform(0.45, 0.7) * h / 80
            draw_person(ImageDraw.Draw(img), ImageDraw.Draw(mask), rng.uniform(0.25, 0.75) * w,
                        rng.uniform(0.0, 0.15) * h, scale)
        img.save(root / "JPEGImages" / f"{image_id}.jpg", quality=90)
        if npy_masks:
            np.save(root / "gt_masks" / f"{image_id}.npy", np.asarray(mask))
        else:
            mask.save(root / "masks" / f"{image_id}.png")
    crlf = "\r\n".join
    (root / "train_id.txt").write_bytes(crlf(ids[:n_train]).encode())
    (root / "val_id.txt").write_bytes(crlf(ids[n_train:]).encode())
    (root / "classes.txt").write_bytes(crlf(f"{i}: {c}" for i, c in enumerate(CLASSES)).encode())
    return root


def prepared_workdir(work: Path, n_train: int, n_val: int, size: int, **train) -> Path:
    """A folder laid out like the repository: the dataset under data/pascal-part, its caches at
    ``size`` under data/prepared (train and val, no dev split) and the project's params.yaml with
    ``train`` overrides. Returns the dataset root."""
    import yaml

    from hseg.cache import save_cache
    from hseg.dataset import read_classes, read_ids
    from hseg.prepare import build_cache
    root = make_dataset(work / "data" / "pascal-part", n_train=n_train, n_val=n_val)
    for split in ("train", "val"):
        cache = build_cache(root, read_ids(root / f"{split}_id.txt"), len(CLASSES), size, keep_full_masks=True,
                            workers=1)
        cache["leaf_names"] = read_classes(root / "classes.txt")
        save_cache(cache, work / "data" / "prepared" / f"{split}.pt")
    params = yaml.safe_load((Path(__file__).resolve().parent.parent / "params.yaml").read_text())
    params["train"].update(train)
    params["data"]["dev_fraction"] = 0.0  # no dev cache here: training validates on val
    (work / "params.yaml").write_text(yaml.safe_dump(params))
    return root


def prepared_split(work: Path, split: str) -> dict:
    """A split's cache as ``prepared_workdir`` wrote it."""
    import torch
    return torch.load(work / "data" / "prepared" / f"{split}.pt", weights_only=True)


def workdir_config(work: Path, variant: str = "unet-resnet34-scratch", seed: int = 42, **train):
    """The train config of one run from ``work``'s params.yaml, with ``train`` overrides."""
    import yaml

    from hseg.settings.train import train_config
    params = yaml.safe_load((work / "params.yaml").read_text())
    params["train"].update(train)
    return train_config(params, variant, seed)


def train_in_workdir(work: Path, tree, out: Path, **train) -> Path:
    """Train the default variant on ``work``'s caches into ``out`` (w.pt, live/, resume.pt); the weights' path."""
    from hseg.train import train_variant
    train_variant(workdir_config(work, **train), tree, prepared_split(work, "train"), prepared_split(work, "val"),
                  weights_out=out / "w.pt", live_dir=out / "live", resume_path=out / "resume.pt", progress=False)
    return out / "w.pt"


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Write a synthetic Pascal-Part look-alike dataset.")
    parser.add_argument("root", type=Path)
    parser.add_argument("--train", type=int, default=12)
    parser.add_argument("--val", type=int, default=6)
    parser.add_argument("--npy", action="store_true", help="write gt_masks/<id>.npy instead of masks/<id>.png")
    a = parser.parse_args()
    make_dataset(a.root, a.train, a.val, npy_masks=a.npy)
