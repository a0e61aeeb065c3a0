"""Run a trained model (one variant trained with one seed: a run) on your own photos.

For every photo writes, at the size it is seen in a viewer (EXIF orientation applied):
  <out>/<path>.png              the leaf map: class ids 0..N-1 like the dataset masks (--format label),
                                or the leaf classes in their colours (--format colour)
  <out>/<path>_level<k>.png     a colour overlay per hierarchy level, with a legend (not with --leaf-only)

<path> mirrors where the photo sits below the folder given (a/img.jpg -> <out>/a/img.png), so photos
with the same name in different folders never overwrite each other; inputs are never overwritten.
Photos are streamed in batches (read, predict, write, drop), so memory stays flat for any number.

    python -m hseg predict --run unet-resnet34-scratch-s42 photos/ -o predictions/
    python -m hseg predict --weights models/x.pt a.jpg b.png --leaf-only --format colour

By default the photos get the test-time augmentation (flip, extra sides) that the evaluate stage scored
the model with, read from the model's metrics file, so the predictions are the ones its metrics describe;
--no-tta turns that off, --flip-tta/--no-flip-tta and --tta-sides set each part. One line says which TTA
was applied and why.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw
from tqdm import tqdm

from . import layout
from .colours import colorize, level_palette
from .dataset import load_image
from .device import pick_device, prepare_model
from .errors import UserError
from .hierarchy import leaf_scores
from .inference import predict_logits, upsample_argmax
from .models import load_weights
from .prepare import resize_image
from .settings.base import DEVICES, PRECISIONS
from .settings.evaluate import tta_sides
from .tree import ClassTree, build_tree

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}
FORMATS = ("label", "colour")
STEPS = ("decode", "model", "upsample", "write")


def collect_images(inputs: list[Path]) -> list[tuple[Path, Path]]:
    """(photo, its output path relative to the output folder, without suffix) for every input.

    One folder: paths below it. Several inputs: each folder's own name first. A file: its name."""
    pairs = []
    for p in inputs:
        if p.is_dir():
            base = p if len(inputs) == 1 else p.parent
            pairs += [(f, f.relative_to(base).with_suffix("")) for f in sorted(p.rglob("*"))
                      if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES]
        elif p.is_file():
            pairs.append((p, Path(p.stem)))
        else:
            raise UserError(f"{p}: no such file or folder")
    if not pairs:
        raise UserError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) found in {', '.join(map(str, inputs))}")
    return pairs


def output_paths(pairs: list[tuple[Path, Path]], out_dir: Path, levels: int, overlays: bool) -> list[list[Path]]:
    """Every file each photo will write; raises before any work if two photos would write the
    same file or a file would overwrite an input."""
    inputs = {f.resolve() for f, _ in pairs}
    owner: dict[Path, Path] = {}
    result = []
    for photo, rel in pairs:
        paths = [out_dir / rel.with_name(rel.name + ".png")]
        if overlays:
            paths += [out_dir / rel.with_name(f"{rel.name}_level{k}.png") for k in range(levels)]
        for path in paths:
            key = path.resolve()
            if key in inputs:
                raise UserError(f"{path} would overwrite the input photo {path}: choose another -o folder")
            if key in owner:
                raise UserError(f"{owner[key]} and {photo} would both write {path}: rename one or predict "
                                f"them into different -o folders")
            owner[key] = photo
        result.append(paths)
    return result


def overlay(image: Image.Image, leaf: np.ndarray, tree: ClassTree, level: int, alpha: float = 0.55) -> Image.Image:
    """The photo blended with the level's colours (colours.colorize) where the leaf map is not
    background, and a legend strip underneath. PIL's C code does the blending, so a 12-megapixel
    photo needs no float copies."""
    names, palette = tree.levels[level].names, level_palette(tree, level)
    labels = tree.levels[level].leaf_to_level[leaf]
    colours = Image.fromarray(colorize(leaf, tree, level))
    blended = Image.composite(Image.blend(image, colours, alpha), image,
                              Image.fromarray((labels > 0).astype(np.uint8) * 255))
    w, h = image.size
    row, box = 16, 12
    per_row = max(1, w // 110)
    legend_h = row * ((len(names) + per_row - 1) // per_row) + 4
    canvas = Image.new("RGB", (w, h + legend_h), "white")
    canvas.paste(blended, (0, 0))
    draw = ImageDraw.Draw(canvas)
    for i, name in enumerate(names):
        x, y = 4 + (i % per_row) * 110, h + 3 + (i // per_row) * row
        draw.rectangle([x, y, x + box, y + box], fill=tuple(int(c) for c in palette[i]), outline="black")
        draw.text((x + box + 4, y), name, fill="black")
    return canvas


def _write(image: np.ndarray, leaf: np.ndarray, paths: list[Path], tree: ClassTree, fmt: str) -> None:
    paths[0].parent.mkdir(parents=True, exist_ok=True)
    leaf_map = leaf if fmt == "label" else colorize(leaf, tree, len(tree.levels) - 1)
    Image.fromarray(leaf_map).save(paths[0], compress_level=1)
    photo = Image.fromarray(image) if len(paths) > 1 else None
    for k, path in enumerate(paths[1:]):
        overlay(photo, leaf, tree, k).save(path, compress_level=1)


def predict_files(pairs: list[tuple[Path, Path]], weights: Path, out_dir: Path, *, batch_size: int = 4,
                  precision: str = "auto", device: str = "auto", fmt: str = "label", overlays: bool = True,
                  progress: bool = True, timings: dict | None = None, flip_tta: bool = False,
                  tta_sides: tuple[int, ...] = ()) -> list[str]:
    """Write predictions for ``pairs`` (from collect_images); returns the unreadable photos (skipped,
    with a warning). ``timings``, if given, receives the seconds spent in each of STEPS. ``flip_tta``
    and ``tta_sides`` average each photo's logits with those of its mirror image and of the photo at
    other sides (as evaluate.flip_tta and evaluate.tta_sides do)."""
    if fmt not in FORMATS:
        raise UserError(f"--format {fmt!r}: allowed values are {', '.join(FORMATS)}")
    dev = pick_device(device)
    model, meta = load_weights(weights)
    model = prepare_model(model, dev)
    tree: ClassTree = build_tree(meta["tree"], meta["background"], meta["leaf_names"])
    outputs = output_paths(pairs, out_dir, len(tree.levels), overlays)
    clock = timings if timings is not None else {}
    for step in STEPS:
        clock.setdefault(step, 0.0)
    skipped = []
    bar = tqdm(total=len(pairs), desc="predict", unit="photo", disable=not progress)
    for lo in range(0, len(pairs), batch_size):
        start = time.perf_counter()
        batch = []  # (photo as seen in a viewer, its output paths); dropped after the batch is written
        for (photo, _), paths in zip(pairs[lo:lo + batch_size], outputs[lo:lo + batch_size]):
            try:
                batch.append((load_image(photo, apply_orientation=True), paths))
            except UserError as exc:
                print(f"warning: skipping {exc}", file=sys.stderr)
                skipped.append(str(photo))
        small = [resize_image(image, meta["size"]) for image, _ in batch]
        clock["decode"] += time.perf_counter() - start
        if not batch:
            bar.update(len(pairs[lo:lo + batch_size]))
            continue
        start = time.perf_counter()
        logits = predict_logits(model, torch.from_numpy(np.stack(small)), dev, precision, flip_tta, tta_sides)
        scores = leaf_scores(logits, tree, meta["head"])
        clock["model"] += time.perf_counter() - start
        for (image, paths), score in zip(batch, scores):
            start = time.perf_counter()
            leaf = upsample_argmax(score, image.shape[:2]).cpu().numpy().astype(np.uint8)
            clock["upsample"] += time.perf_counter() - start
            start = time.perf_counter()
            _write(image, leaf, paths, tree, fmt)
            clock["write"] += time.perf_counter() - start
        bar.update(len(pairs[lo:lo + batch_size]))
    bar.close()
    return skipped


def evaluated_tta(weights: Path) -> tuple[dict | None, Path]:
    """(the test-time augmentation the evaluate stage scored ``weights`` with, as written under the key
    ``tta`` of its metrics file: {"flip": bool, "sides": [...]}; the metrics file). None where there is
    no metrics file for the weights' run (named after the weights file) or it records no TTA."""
    path = layout.metrics_file(Path(weights).stem)
    if not path.is_file():
        return None, path
    try:
        tta = json.loads(path.read_text()).get("tta")
    except (json.JSONDecodeError, AttributeError) as exc:
        raise UserError(f"{path}: not a metrics file written by the evaluate stage ({exc})") from exc
    if tta is None:
        return None, path
    if not (isinstance(tta, dict) and isinstance(tta.get("flip"), bool)):
        raise UserError(f"{path}: 'tta' = {tta!r}: expected {{\"flip\": true/false, \"sides\": [...]}}")
    return {"flip": tta["flip"], "sides": tta_sides(f"{path}: tta.sides", tta.get("sides", []))}, path


def chosen_tta(weights: Path, no_tta: bool = False, flip: bool | None = None,
               sides: list[int] | None = None) -> tuple[bool, tuple[int, ...], str]:
    """(flip, sides, where they came from): by default the TTA the evaluate stage scored the weights
    with (evaluated_tta), none with ``no_tta`` or where none is recorded; ``flip`` and ``sides``, when
    given (not None), replace their part."""
    if no_tta:
        recorded, source = {"flip": False, "sides": ()}, "--no-tta"
    else:
        recorded, path = evaluated_tta(weights)
        if recorded is None:
            recorded = {"flip": False, "sides": ()}
            found = f"{path} records no TTA settings" if path.is_file() else f"no metrics file {path}"
            source = f"{found} for this model, so none by default"
        else:
            source = f"as the evaluate stage scored this model, from {path}"
    given = (([] if flip is None else ["--flip-tta" if flip else "--no-flip-tta"])
             + ([] if sides is None else ["--tta-sides"]))
    if given:
        source += "; " + " and ".join(given) + " as given"
    return (recorded["flip"] if flip is None else flip,
            recorded["sides"] if sides is None else tta_sides("--tta-sides", sides), source)


def describe_tta(flip: bool, sides: tuple[int, ...]) -> str:
    parts = (["flip"] if flip else []) + ([f"sides {', '.join(map(str, sides))} px"] if sides else [])
    return " + ".join(parts) or "none"


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m hseg predict", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--run", help="a trained run, <variant>-s<seed>, read from models/<run>.pt")
    which.add_argument("--weights", type=Path, help="a weights file written by the train stage")
    parser.add_argument("inputs", nargs="+", type=Path, help="image files or folders (searched recursively)")
    parser.add_argument("-o", "--out", type=Path, default=Path("predictions"), help="output folder")
    parser.add_argument("--format", choices=FORMATS, default="label",
                        help="leaf map as class ids (label, default) or as colours (colour)")
    parser.add_argument("--leaf-only", action="store_true", help="write only the leaf map, no overlays")
    parser.add_argument("--batch-size", type=int, default=4, help="photos decoded and predicted at once")
    parser.add_argument("--precision", choices=PRECISIONS, default="auto",
                        help="auto: bf16 where the device has native bf16, else fp32 (fp16 on older GPUs)")
    parser.add_argument("--device", choices=DEVICES, default="auto")
    parser.add_argument("--no-tta", action="store_true",
                        help="no test-time augmentation by default (the default is the one the evaluate stage "
                             "scored the model with, read from its metrics file); --flip-tta and --tta-sides "
                             "still apply")
    parser.add_argument("--flip-tta", action=argparse.BooleanOptionalAction, default=None,
                        help="average with the mirrored photo's prediction (2x the model time); "
                             "default: as the evaluate stage scored the model")
    parser.add_argument("--tta-sides", type=int, nargs="+", default=None, metavar="SIDE",
                        help="also predict at these sides (multiples of 32) and average, like evaluate.tta_sides; "
                             "default: as the evaluate stage scored the model")
    parser.add_argument("--timings", action="store_true", help="print where the time went per photo")
    parser.add_argument("--no-progress", action="store_true")
    return parser


def run(args) -> int:
    if args.batch_size < 1:
        raise UserError(f"--batch-size {args.batch_size}: must be at least 1")
    weights = args.weights or layout.weights_file(args.run)
    flip, sides, source = chosen_tta(weights, args.no_tta, args.flip_tta, args.tta_sides)
    pairs = collect_images(args.inputs)
    print(f"test-time augmentation: {describe_tta(flip, sides)} ({source})")
    clock: dict = {}
    skipped = predict_files(pairs, weights, args.out, batch_size=args.batch_size, precision=args.precision,
                            device=args.device, fmt=args.format, overlays=not args.leaf_only,
                            progress=not args.no_progress, timings=clock, flip_tta=flip, tta_sides=sides)
    if args.timings:
        n = max(1, len(pairs) - len(skipped))
        print("seconds per photo: " + ", ".join(f"{k} {v / n:.3f}" for k, v in clock.items())
              + f", total {sum(clock.values()) / n:.3f}")
    if skipped:
        print(f"error: {len(skipped)} unreadable file(s) skipped:\n  " + "\n  ".join(skipped), file=sys.stderr)
        return 1
    print(f"predictions -> {args.out}")
    return 0
