import pytest

from hseg.errors import UserError
from hseg.tree import build_tree
from tests.synthetic import CLASSES

TREE = {"body": {"upper_body": ["head", "torso", "up_hand", "low_hand"], "lower_body": ["up_leg", "low_leg"]}}


def test_levels_follow_the_tree():
    tree = build_tree(TREE, "bg", CLASSES)
    assert [lvl.names for lvl in tree.levels] == [
        ("bg", "body"), ("bg", "upper_body", "lower_body"),
        ("bg", "head", "torso", "up_hand", "low_hand", "up_leg", "low_leg")]
    l1 = tree.levels[1].leaf_to_level
    assert l1[CLASSES.index("head")] == 1 and l1[CLASSES.index("low_leg")] == 2 and l1[0] == 0
    assert tree.ancestors("head") == ["upper_body", "body"]


def test_shallow_leaf_stays_itself_at_deeper_levels():
    tree = build_tree({"body": {"upper_body": ["head", "torso", "up_hand", "low_hand"],
                                "up_leg": None, "low_leg": None}}, "bg", CLASSES)
    assert tree.levels[1].names == ("bg", "upper_body", "up_leg", "low_leg")
    assert "up_leg" in tree.levels[2].names


@pytest.mark.parametrize("spec, message", [
    ({"body": {"upper_body": ["head", "torso", "up_hand", "low_hand"], "lower_body": ["up_leg"]}},
     "does not cover class(es) ['low_leg']"),
    ({"body": {"upper_body": ["head", "torso", "up_hand", "low_hand", "tail"],
               "lower_body": ["up_leg", "low_leg"]}}, "unknown class(es) ['tail']"),
    ({"body": {"upper_body": ["head", "torso", "up_hand", "low_hand", "head"],
               "lower_body": ["up_leg", "low_leg"]}}, "'head' appears more than once"),
    ({"body": {"upper_body": ["bg", "head", "torso", "up_hand", "low_hand"],
               "lower_body": ["up_leg", "low_leg"]}}, "background class 'bg' must not be inside"),
    ([], "non-empty mapping"),
])
def test_bad_trees_are_named(spec, message):
    with pytest.raises(UserError, match=None) as err:
        build_tree(spec, "bg", CLASSES)
    assert message in str(err.value)


def test_unknown_background_is_named():
    with pytest.raises(UserError, match="classes.background: 'background'"):
        build_tree(TREE, "background", CLASSES)
