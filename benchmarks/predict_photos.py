"""Time `predict` on phone-sized photos and measure its peak memory against the number of photos.

Makes N photos of 4032x3024 (12 MP) by upscaling val images of the dataset (or random pixels with
--random), then runs `python -m hseg predict` on 1/4 of them and on all of them in fresh processes,
and prints seconds per photo split into decode, model, upsample and write, and each run's peak RSS.

    python benchmarks/predict_photos.py --run unet-resnet34-scratch-s42 --photos 20
"""
from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent


def make_photos(folder: Path, n: int, size: tuple[int, int], random: bool) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    sources = sorted((ROOT / "data" / "pascal-part" / "JPEGImages").glob("*.jpg"))[:n]
    for k in range(n):
        if random or not sources:
            image = Image.fromarray(np.random.default_rng(k).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))
        else:
            image = Image.open(sources[k % len(sources)]).convert("RGB").resize(size, Image.BICUBIC)
        image.save(folder / f"photo_{k:04d}.jpg", quality=90)


def run_predict(args, folder: Path, out: Path) -> tuple[str, float]:
    """predict's timing line and the process's peak RSS in GB (VmHWM, read in the child at exit)."""
    code = ("import runpy, sys; sys.argv = ['hseg'] + sys.argv[1:];\n"
            "try:\n    runpy.run_module('hseg', run_name='__main__')\n"
            "finally:\n    print('PEAK', [l for l in open('/proc/self/status') "
            "if l.startswith('VmHWM')][0].split()[1])")
    cmd = [sys.executable, "-c", code, "predict", "--run", args.run, "--no-progress", "--timings",
           "-o", str(out), str(folder)] + (["--leaf-only"] if args.leaf_only else [])
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if done.returncode:
        sys.exit(done.stderr[-2000:])
    timing = re.search(r"seconds per photo: .*", done.stdout).group(0)
    return timing, int(re.search(r"PEAK (\d+)", done.stdout).group(1)) / 1024 ** 2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", required=True, help="a trained run, <variant>-s<seed> (models/<run>.pt)")
    parser.add_argument("--photos", type=int, default=20)
    parser.add_argument("--width", type=int, default=4032)
    parser.add_argument("--height", type=int, default=3024)
    parser.add_argument("--random", action="store_true", help="random pixels instead of upscaled val images")
    parser.add_argument("--leaf-only", action="store_true", help="time predict --leaf-only")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="hseg-predict-") as tmp:
        many, few = Path(tmp) / "many", Path(tmp) / "few"
        make_photos(many, args.photos, (args.width, args.height), args.random)
        few.mkdir()
        for p in sorted(many.iterdir())[:max(1, args.photos // 4)]:
            (few / p.name).write_bytes(p.read_bytes())
        for folder in (few, many):
            timing, peak = run_predict(args, folder, Path(tmp) / f"out_{folder.name}")
            count = len(list(folder.iterdir()))
            print(f"{count:4d} photos of {args.width}x{args.height}: peak RSS {peak:.2f} GB; {timing}")


if __name__ == "__main__":
    main()
