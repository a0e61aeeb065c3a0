"""The per-class IoU table and its heat map follow the tree and keep missing IoUs missing; bars per variant;
the time-to-accuracy figure from dvclive's per-epoch files."""

import numpy as np
import pytest

from hseg.plots import iou_heatmap, iou_rows, time_to_accuracy
from hseg.tracking import finished_history
from tests.conftest import load_tool


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




def test_miou_bars_show_each_variants_mean_over_seeds_its_sd_and_every_seed(tree):
    """Runs of one variant make one bar (their mean) with the sample sd as its error bar and a dot
    per seed; a one-seed variant is its single value, without error bar."""
    from hseg.plots import miou_bars
    levels = range(len(tree.levels))
    runs = {"unet-resnet34-scratch-s42": {f"miou{k}": 0.5 - 0.1 * k for k in levels},
            "unet-resnet34-scratch-s43": {f"miou{k}": 0.6 - 0.1 * k for k in levels},
            "unet-resnet34-scratch-s44": {f"miou{k}": 0.7 - 0.1 * k for k in levels},
            "unet-resnet50-scratch-s42": {f"miou{k}": 0.3 for k in levels}}
    ax = miou_bars(runs, tree).axes[0]
    heights = [round(p.get_height(), 6) for p in ax.patches]
    assert heights == [0.6, 0.5, 0.4, 0.3, 0.3, 0.3]   # variant by variant, level by level
    caps = [c for c in ax.containers if getattr(c, "has_yerr", False)]
    bars_with_err = caps[0]
    low, high = bars_with_err.lines[2][0].get_segments()[0][:, 1]   # level 0's error bar
    assert np.isclose(high - low, 2 * 0.1)                          # sd of 0.5, 0.6, 0.7 is 0.1
    from matplotlib.collections import PathCollection
    dots = np.concatenate([c.get_offsets() for c in ax.collections if isinstance(c, PathCollection)])
    assert sorted(np.round(dots[:, 1], 6)) == sorted(np.round([0.5, 0.6, 0.7, 0.4, 0.5, 0.6, 0.3, 0.4, 0.5], 6))


def write_dvclive_log(directory, seconds: list[float], validated: dict[int, float]):
    """A run's dvclive files as the train stage leaves them (one TSV per metric: step, value):
    ``seconds`` per epoch 1, 2, ..., and ``validated``: epoch -> mIoU^2 on the epochs validated."""
    def tsv(name, rows):
        path = directory / "plots" / "metrics" / f"{name}.tsv"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"step\t{name.split('/')[-1]}\n" + "".join(f"{step}\t{value}\n" for step, value in rows))
    tsv("train/seconds", enumerate(seconds, start=1))
    tsv("train/loss", [(epoch, 1.0) for epoch in range(1, len(seconds) + 1)])
    tsv("val/loss", [(epoch, 0.9) for epoch in validated])
    for k in range(3):
        tsv(f"val/miou{k}", [(epoch, miou / (k + 1)) for epoch, miou in validated.items()])


def test_time_to_accuracy_draws_each_runs_deepest_miou_against_its_summed_epoch_minutes(tmp_path):
    runs = {"unet-resnet34-scratch-s42": ([30, 60, 90, 120], {2: 0.2, 4: 0.35}),     # validated every 2nd epoch
            "unet-resnet18-scratch-s42": ([45, 45, 45], {1: 0.1, 2: 0.25, 3: 0.3})}
    histories = {}
    for run, (seconds, validated) in runs.items():
        write_dvclive_log(tmp_path / run, seconds, validated)
        histories[run] = finished_history(tmp_path / run, run)
    ax = time_to_accuracy(histories, 2, "dev").axes[0]
    lines = {line.get_label(): line for line in ax.get_lines()}
    assert list(lines) == list(runs)
    # (30 + 60) s = 1.5 min and (30 + 60 + 90 + 120) s = 5 min; 45, 90 and 135 s = 0.75, 1.5 and 2.25 min
    assert lines["unet-resnet34-scratch-s42"].get_xdata() == pytest.approx([1.5, 5.0])
    assert lines["unet-resnet34-scratch-s42"].get_ydata() == pytest.approx([0.2 / 3, 0.35 / 3])
    assert lines["unet-resnet18-scratch-s42"].get_xdata() == pytest.approx([0.75, 1.5, 2.25])
    assert lines["unet-resnet18-scratch-s42"].get_ydata() == pytest.approx([0.1 / 3, 0.25 / 3, 0.3 / 3])
    assert ax.get_ylabel().startswith("dev mIoU^2") and ax.get_xlabel().startswith("minutes of training")
    assert time_to_accuracy(histories, 0, "val").axes[0].get_ylabel().startswith("val mIoU^0")


def test_the_val_curve_table_gives_each_validation_its_training_minutes(tmp_path):
    """plots/curves/val.csv's minutes column (dvc.yaml overlays experiments against it): the same minutes as
    the figure, summed epoch seconds up to each validated epoch."""
    from hseg.plots import curve_tables
    runs = {"unet-resnet34-scratch-s42": ([30, 60, 90, 120], {2: 0.2, 4: 0.35}),
            "unet-resnet18-scratch-s42": ([45, 45, 45], {1: 0.1, 2: 0.25, 3: 0.3})}
    histories = {}
    for run, (seconds, validated) in runs.items():
        write_dvclive_log(tmp_path / run, seconds, validated)
        histories[run] = finished_history(tmp_path / run, run).assign(lr=1e-3)   # the log here has no lr
    train, val = curve_tables(histories, 2)
    assert list(val.columns[:4]) == ["variant", "epoch", "minutes", "val_loss"] and "minutes" not in train
    assert val["minutes"].tolist() == pytest.approx([1.5, 5.0, 0.75, 1.5, 2.25])
    assert val["epoch"].tolist() == [2, 4, 1, 2, 3] and len(train) == 7


def test_curves_tool_draws_runs_of_different_experiments_and_refuses_an_unfinished_one(tmp_path, capsys):
    from hseg.errors import UserError
    from hseg.tracking import EpochLog
    curves = load_tool("curves")
    run = "unet-resnet34-scratch-s42"     # each experiment's dvclive/<run>
    for name, seconds, miou in (("a", 60.0, [0.2, 0.3]), ("b", 90.0, [0.25, 0.35])):
        log = EpochLog(tmp_path / name / run, [])
        for epoch, value in enumerate(miou, 1):
            log.log({"epoch": epoch, "lr": 0.001, "train_loss": 1.0, "seconds": seconds, "val_loss": 1.0,
                     "val_miou0": 0.5, "val_miou2": value})
        log.close()
    out = tmp_path / "fig" / "curves.png"
    args = curves.parser().parse_args([str(out), f"base={tmp_path / 'a' / run}", f"crop={tmp_path / 'b' / run}"])
    assert curves.main(args) == 0
    printed = capsys.readouterr().out
    # the deepest logged level, the last validation, after the epochs' seconds summed: 2 x 60 s, 2 x 90 s
    assert "base: dev mIoU^2 0.3000 after 2.0 min" in printed and "crop: dev mIoU^2 0.3500 after 3.0 min" in printed
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    unfinished = EpochLog(tmp_path / "c" / run, [])
    unfinished.log({"epoch": 1, "lr": 0.001, "train_loss": 1.0, "seconds": 60.0})
    unfinished.close()
    with pytest.raises(UserError, match=r"c/unet-resnet34-scratch-s42: .*training log ends at epoch 1, which was not"):
        curves.main(curves.parser().parse_args([str(out), f"base={tmp_path / 'a' / run}",
                                                f"late={tmp_path / 'c' / run}"]))
    with pytest.raises(UserError, match=r"--level 1: not logged by base, crop \(logged levels: \[0, 2\]\)"):
        curves.main(curves.parser().parse_args([str(out), f"base={tmp_path / 'a' / run}",
                                                f"crop={tmp_path / 'b' / run}", "--level", "1"]))
    with pytest.raises(SystemExit):
        curves.parser().parse_args([str(out), "no-label"])
