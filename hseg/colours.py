"""One colour per tree node, used by every figure, overlay and legend.

Each node owns a slice of the hue circle and passes its children equal parts of
it, so a part's colour is a shade of its parent's family (lower_body's blues and
violets hold up_leg and low_leg) and no two nodes of a level share a colour.
Deeper nodes are darker and more saturated; background is black.
"""
from __future__ import annotations

import colorsys

import numpy as np

from .tree import ClassTree

BACKGROUND = (0, 0, 0)


def _children(tree: ClassTree) -> dict:
    kids: dict = {}
    for node, parent in tree.parents.items():  # insertion order = tree order in params
        kids.setdefault(parent, []).append(node)
    return kids


def node_colours(tree: ClassTree) -> dict[str, tuple[int, int, int]]:
    """node name -> RGB, for every node of the tree and the background."""
    kids = _children(tree)
    colours = {tree.background: BACKGROUND}

    def paint(parent, lo: float, hi: float, depth: int):
        names = kids.get(parent, [])
        for i, name in enumerate(names):
            a, b = lo + (hi - lo) * i / len(names), lo + (hi - lo) * (i + 1) / len(names)
            r, g, bl = colorsys.hsv_to_rgb((a + b) / 2 % 1.0, min(1.0, 0.45 + 0.18 * depth),
                                           max(0.55, 1.0 - 0.1 * depth))
            colours[name] = (round(r * 255), round(g * 255), round(bl * 255))
            paint(name, a, b, depth + 1)

    paint(None, 0.0, 1.0, 0)
    return colours


def level_palette(tree: ClassTree, level: int) -> np.ndarray:
    """(classes of the level, 3) uint8: row i is the colour of the level's class i."""
    colours = node_colours(tree)
    return np.array([colours[name] for name in tree.levels[level].names], dtype=np.uint8)


def colorize(leaf_labels: np.ndarray, tree: ClassTree, level: int) -> np.ndarray:
    """A leaf label map (class ids, as in the dataset masks) as an RGB image of one level: each
    pixel in the colour of its leaf's node at that level. Every figure and overlay colours labels here."""
    return level_palette(tree, level)[tree.levels[level].leaf_to_level[leaf_labels]]
