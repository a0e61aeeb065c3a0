"""The class tree, read from params, and the per-level label maps derived from it.

The tree is data (``classes.tree`` in params.yaml): nested mappings whose leaves
are lists of class names from ``classes.txt``. Level ``k`` holds the nodes at
depth ``k`` below the root; a leaf that sits above the deepest level stays
itself at the deeper levels. Background is class 0 at every level.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import UserError

IGNORE = 255  # label of pixels no loss or metric counts (e.g. from outside the image after a zoom-out)


@dataclass(frozen=True)
class Level:
    names: tuple[str, ...]        # class names at this level, background first
    leaf_to_level: np.ndarray     # leaf class id -> index into ``names``

    @property
    def num_classes(self) -> int:
        return len(self.names)


@dataclass(frozen=True)
class ClassTree:
    leaf_names: tuple[str, ...]   # names by class id (classes.txt order)
    background: str
    levels: tuple[Level, ...]
    parents: dict                 # node name -> parent name (root children map to None)
    spec: dict                    # the tree as written in params, kept in checkpoints

    @property
    def num_leaves(self) -> int:
        return len(self.leaf_names)

    def ancestors(self, node: str) -> list[str]:
        """The node's ancestors, nearest first (root children have none)."""
        return _ancestors(node, self.parents)


def _walk(spec, parent, depth, path, parents, depth_of):
    """Record each node's parent and depth; return the leaf names in order."""
    if isinstance(spec, dict):
        items = spec.items()
    elif isinstance(spec, list):
        items = [(name, None) for name in spec]
    else:
        raise UserError(f"classes.tree at '{path}': expected a mapping or a list, got {spec!r}")
    leaves = []
    for name, children in items:
        name = str(name)
        if name in parents:
            raise UserError(f"classes.tree: node '{name}' appears more than once")
        parents[name] = parent
        depth_of[name] = depth
        if children is None:
            leaves.append(name)
        else:
            leaves.extend(_walk(children, name, depth + 1, f"{path}.{name}", parents, depth_of))
    return leaves


def build_tree(tree_spec, background: str, leaf_names: list[str]) -> ClassTree:
    """Validate the tree against the class names and derive the levels."""
    if not isinstance(tree_spec, dict) or not tree_spec:
        raise UserError("classes.tree: expected a non-empty mapping such as {body: {upper_body: [head, ...]}}")
    parents: dict = {}
    depth_of: dict = {}
    leaves = _walk(tree_spec, None, 0, "classes.tree", parents, depth_of)
    known = set(leaf_names)
    if background not in known:
        raise UserError(f"classes.background: '{background}' is not a class in classes.txt (classes: {leaf_names})")
    unknown = [n for n in leaves if n not in known]
    if unknown:
        raise UserError(f"classes.tree names unknown class(es) {unknown}; classes.txt has {leaf_names}")
    if background in leaves:
        raise UserError(f"classes.tree: the background class '{background}' must not be inside the tree")
    missing = [n for n in leaf_names if n != background and n not in leaves]
    if missing:
        raise UserError(f"classes.tree does not cover class(es) {missing}; every class except "
                        f"'{background}' must be a leaf exactly once")
    clash = [n for n in parents if n in known and n not in leaves]
    if clash:
        raise UserError(f"classes.tree: inner node(s) {clash} reuse a class name from classes.txt")

    depth = max(depth_of[n] for n in leaves) + 1
    levels = []
    for k in range(depth):
        names = [background]
        lut = np.zeros(len(leaf_names), dtype=np.int64)
        for leaf in leaves:  # tree order, so level names read as written in params
            leaf_id = leaf_names.index(leaf)
            # the leaf's ancestor at depth k, or the leaf itself if it is shallower
            chain = [leaf] + _ancestors(leaf, parents)
            node = next((n for n in chain if depth_of[n] == k), leaf)
            if node not in names:
                names.append(node)
            lut[leaf_id] = names.index(node)
        levels.append(Level(tuple(names), lut))
    return ClassTree(tuple(leaf_names), background, tuple(levels), parents, tree_spec)


def _ancestors(node, parents):
    out = []
    while parents.get(node) is not None:
        node = parents[node]
        out.append(node)
    return out
