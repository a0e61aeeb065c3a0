"""Draw the time-to-accuracy curves of runs from different experiments in one figure: mIoU at a level
on the split their training validated on, against the minutes trained (the plot stage's
time_to_accuracy.png, for runs that no single `dvc repro` holds, such as the candidates of a screening).

    python tools/curves.py results/hour-screen/time_to_accuracy.png \\
        base=results/hour-screen/base/dvclive/unet-resnet34-scratch-s42 \\
        person_crop=results/hour-screen/person-crop-0.5/dvclive/unet-resnet34-scratch-s42

Each run is LABEL=FOLDER, the folder a run's dvclive log (dvclive/<variant>-s<seed>). A run whose
training did not finish is refused by name.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hseg import plots  # noqa: E402
from hseg.cli import run_cli  # noqa: E402
from hseg.errors import UserError  # noqa: E402
from hseg.tracking import finished_history  # noqa: E402


def labelled_run(text: str) -> tuple[str, Path]:
    label, sep, folder = text.partition("=")
    if not sep or not label or not folder:
        raise argparse.ArgumentTypeError(f"{text!r}: expected LABEL=FOLDER")
    return label, Path(folder)


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path, help="the figure to write (.png)")
    parser.add_argument("runs", nargs="+", type=labelled_run, metavar="LABEL=FOLDER", help="a run's dvclive folder")
    parser.add_argument("--level", type=int, help="the level of the class tree (default: the deepest logged)")
    parser.add_argument("--split", default="dev", help="the split the runs validated on, for the axis (default dev)")
    return parser


def main(args) -> int:
    labels = [label for label, _ in args.runs]
    if len(set(labels)) < len(labels):
        raise UserError(f"labels must differ: {', '.join(labels)}")
    histories = {}
    for label, folder in args.runs:
        if not folder.is_dir():
            raise UserError(f"{label}: no folder {folder}")
        histories[label] = finished_history(folder, folder.name)
    logged = sorted({int(c[8:]) for h in histories.values() for c in h.columns if c.startswith("val_miou")})
    level = logged[-1] if args.level is None else args.level
    missing = [label for label, h in histories.items() if f"val_miou{level}" not in h]
    if missing:
        raise UserError(f"--level {level}: not logged by {', '.join(missing)} (logged levels: {logged})")
    plots.save(plots.time_to_accuracy(histories, level, args.split), args.out, 120)
    for label, history in histories.items():
        minutes, miou = plots.minutes_and_miou(history, level)
        print(f"{label}: {args.split} mIoU^{level} {miou[-1]:.4f} after {minutes[-1]:.1f} min")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    run_cli(main, parser())
