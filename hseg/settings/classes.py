"""``classes``: the class tree every stage reads (hseg/tree.py derives the levels from it)."""
from __future__ import annotations

from typing import Annotated

from ..tree import ClassTree, build_tree
from .base import Settings, Text, check, rule, section


class ClassesSettings(Settings):
    background: Text  # the class (from classes.txt) that is class 0 at every level
    # nested mappings whose leaves are lists of classes.txt names; build_tree checks it against classes.txt
    tree: Annotated[dict, rule(lambda v: isinstance(v, dict) and bool(v),
                               "must be a non-empty mapping of nodes to their children (mappings, or lists "
                               "of class names from classes.txt)")]


def class_tree(params: dict, leaf_names: list[str]) -> ClassTree:
    classes = check(section(params, "classes"), ClassesSettings, "classes")
    return build_tree(classes.tree, classes.background, leaf_names)
