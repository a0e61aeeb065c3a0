"""Loading what every stage needs from params.yaml, checked up front."""
from __future__ import annotations

from .params import section
from .tree import ClassTree, build_tree


def class_tree(params: dict, leaf_names: list[str]) -> ClassTree:
    classes = section(params, "classes")
    return build_tree(classes.get("tree"), str(classes.get("background", "bg")), leaf_names)
