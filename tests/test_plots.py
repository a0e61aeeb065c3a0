"""The per-class IoU table and its heat map follow the tree and keep missing IoUs missing; the report table."""

import numpy as np

from hseg.plots import iou_heatmap, iou_rows


def scores_with(tree, value_of):
    """A metrics JSON for every level: class -> value_of(level, class)."""
    return {f"iou{k}": {name: value_of(k, name) for name in level.names} for k, level in enumerate(tree.levels)}


def test_iou_table_and_heat_map_hold_every_class_of_every_level(tree):
    position = {name: i for level in tree.levels for i, name in enumerate(level.names)}
    scores = {"a": scores_with(tree, lambda k, name: 0.1 * k + position[name] / 100),   # distinct per row
              "b": scores_with(tree, lambda k, name: None if name == "low_leg" else 0.5)}
    rows = iou_rows(scores, tree)
    n_classes = sum(len(level.names) for level in tree.levels)   # 2 + 3 + 7 for the Pascal-Part tree
    assert len(rows) == 2 * n_classes == 24
    low_leg = rows[(rows["variant"] == "b") & (rows["class"] == "low_leg")]
    assert low_leg["level"].tolist() == [2] and np.isnan(low_leg["iou"].astype(float)).all()
    head_a = rows[(rows["variant"] == "a") & (rows["class"] == "head")]["iou"].item()
    assert head_a == 0.2 + position["head"] / 100

    fig = iou_heatmap(rows, "t")
    data = fig.axes[0].images[0].get_array()
    # rows in tree order (level 0 first), columns in variant order
    expected_keys = [(k, name) for k, level in enumerate(tree.levels) for name in level.names]
    assert data.shape == (n_classes, 2)
    for i, (k, name) in enumerate(expected_keys):
        assert data[i, 0] == scores["a"][f"iou{k}"][name]
        b = scores["b"][f"iou{k}"][name]
        assert (np.ma.is_masked(data[i, 1]) or np.isnan(data[i, 1])) if b is None else data[i, 1] == b


