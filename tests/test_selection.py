"""The selection log (results/selection.csv): one row per dev-scored candidate, with the commit it ran at;
val scores are refused; tools/log_experiments.py turns DVC experiments into rows."""

import csv

import pytest

from hseg.selection import COLUMNS, log_candidate
from tests.conftest import load_tool


def rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_log_candidate_appends_rows_under_one_header_and_refuses_val(tmp_path):
    log = tmp_path / "results" / "selection.csv"
    log_candidate("hour: crop", "crop 0.5", 42, {"miou0": 0.56912, "miou1": 0.41875, "miou2": 0.27344},
                  path=log, commit="824f5c4")
    log_candidate("hour: crop", "crop 0.25", 43, {"miou0": 0.5, "miou1": None, "miou2": 0.25}, path=log)
    with pytest.raises(ValueError, match="'val'"):
        log_candidate("hour: crop", "crop 0.5", 42, {"miou0": 0.6}, split="val", path=log)

    text = log.read_text()
    assert text.count("date,commit,question") == 1
    first, second = rows(log)
    assert list(first) == list(COLUMNS)
    assert (first["commit"], first["candidate"], first["seed"], first["split"]) == ("824f5c4", "crop 0.5", "42", "dev")
    assert (first["miou0"], first["miou1"], first["miou2"]) == ("0.5691", "0.4188", "0.2734")  # 4 decimals, rounded
    assert second["miou1"] == "" and second["miou2"] == "0.2500"  # a missing level stays missing
    assert second["commit"] != "824f5c4" and second["cpu"]


def test_log_experiments_logs_each_dev_validated_run_with_what_it_changed(tmp_path, monkeypatch, capsys):
    tool = load_tool("log_experiments")
    monkeypatch.chdir(tmp_path)  # the log's path is relative: results/selection.csv here
    base = {"data": {"dev_fraction": 0.1}, "train": {"lr": 0.001, "augment": {"person_crop": 0.0}}}
    crop = {"name": "crop-s42",
            "params": {"data": {"dev_fraction": 0.1}, "train": {"lr": 0.001, "augment": {"person_crop": 0.5}}},
            "metrics": {"dvclive/unet-resnet34-scratch-s42/metrics.json": {"val": {"miou0": 0.6, "miou1": 0.45,
                                                                                   "miou2": 0.3}},
                        "dvclive/unet-resnet18-scratch-s43/metrics.json": {"val": {"miou0": 0.5, "miou1": 0.4,
                                                                                   "miou2": 0.2}},
                        "metrics/summary.json": {"val": {"miou2": 0.9}}}}  # not a dvclive run: no row
    on_val = {"name": "old", "params": {"data": {"dev_fraction": 0}}, "metrics": crop["metrics"]}

    assert tool.changed(crop["params"], base) == "train.augment.person_crop=0.5"
    assert tool.log_experiment("hour: crop", on_val, base, commit="abc1234") == 0
    assert "validated on val" in capsys.readouterr().out
    assert tool.log_experiment("hour: crop", crop, base, commit="abc1234") == 2

    got = rows(tmp_path / "results" / "selection.csv")
    assert [(r["candidate"], r["seed"], r["miou2"], r["commit"]) for r in got] == [
        ("crop-s42 (unet-resnet18-scratch): train.augment.person_crop=0.5", "43", "0.2000", "abc1234"),
        ("crop-s42 (unet-resnet34-scratch): train.augment.person_crop=0.5", "42", "0.3000", "abc1234")]


def test_log_experiments_asks_for_names(tmp_path, monkeypatch):
    from hseg.errors import UserError
    tool = load_tool("log_experiments")
    with pytest.raises(UserError, match="name the experiments"):
        tool.main(tool.parser().parse_args(["hour: crop"]))
