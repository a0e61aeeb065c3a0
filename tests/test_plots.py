"""The per-class IoU table and its heat map follow the tree and keep missing IoUs missing; the report table."""
import json

import numpy as np

from hseg.plots import iou_heatmap, iou_rows
from hseg.report import results_table


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


def test_report_table_shows_each_variants_epochs_and_scores(tmp_path, tree):
    metrics, live = tmp_path / "metrics", tmp_path / "dvclive"
    metrics.mkdir()
    for variant, miou, epochs in [("unet-resnet34-scratch", 0.26, 9), ("unet-resnet50-scratch", 0.23, None)]:
        (metrics / f"{variant}.json").write_text(json.dumps({
            **{f"miou{k}": miou + 0.1 * (2 - k) for k in range(3)}, "pixel_acc2": 0.8,
            **{f"iou{k}": {name: 0.5 for name in level.names} for k, level in enumerate(tree.levels)}}))
        if epochs:
            (live / variant).mkdir(parents=True)
            (live / variant / "metrics.json").write_text(json.dumps({"step": epochs, "val": {"miou2": miou}}))
    rows = results_table(metrics, live).splitlines()
    assert rows[0].startswith("| variant | epochs | mIoU^0 (") and rows[0].endswith("| pixel acc. (level 2) |")
    assert rows[1].count("---") == 3 + 3
    assert rows[2] == "| unet-resnet34-scratch | 9 | 0.460 | 0.360 | 0.260 | 0.800 |"
    assert rows[3] == "| unet-resnet50-scratch | - | 0.430 | 0.330 | 0.230 | 0.800 |"  # no dvclive summary
