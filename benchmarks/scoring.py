"""What the scripts that rescore a trained model share: loading it with a val cache checked against
its classes, and one line of scores."""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hseg.cache import load_cache  # noqa: E402
from hseg.errors import UserError  # noqa: E402
from hseg.models import load_weights  # noqa: E402
from hseg.tree import ClassTree, build_tree  # noqa: E402


def load_model_and_val(weights: Path, val_cache: Path) -> tuple:
    """(model, its metadata, its own class tree, the val cache), refusing a cache of other classes."""
    model, meta = load_weights(weights)
    tree = build_tree(meta["tree"], meta["background"], meta["leaf_names"])  # the model's own class order
    val = load_cache(val_cache)
    if list(val["leaf_names"]) != list(tree.leaf_names):
        raise UserError(f"{val_cache} has classes {val['leaf_names']}, the model {tree.leaf_names}")
    return model, meta, tree, val


def score_line(name: str, scores: dict, tree: ClassTree, digits: int) -> str:
    """'NAME: mIoU m0 / m1 / ...; leaf iou, ...' ('-' for a class neither present nor predicted)."""
    fmt = lambda v: "-" if v is None else f"{v:.{digits}f}"  # noqa: E731
    levels = " / ".join(fmt(scores[f"miou{k}"]) for k in range(len(tree.levels)))
    parts = ", ".join(f"{c} {fmt(v)}" for c, v in scores[f"iou{len(tree.levels) - 1}"].items())
    return f"{name}: mIoU {levels}; {parts}"
