"""hseg/tracking.py: an interrupted run's log is refused by name, and training without dvclive writes
the same weights."""
# ruff: noqa: F811 (the fixture imported from tests.workdir is a test argument of the same name)
import sys

import numpy as np
import pytest
import torch

from hseg.errors import UserError
from hseg.tracking import EpochLog, finished_history
from tests.synthetic import train_in_workdir
from tests.workdir import train_once, workdir  # noqa: F401 (workdir: a fixture)


def test_finished_history_refuses_an_interrupted_log_and_names_it(tmp_path):
    """An interrupted run's dvclive log (its last epoch not validated) must not reach the figures."""
    directory = tmp_path / "dvclive" / "unet-resnet34-scratch-s42"
    log = EpochLog(directory, [])
    log.log({"epoch": 1, "lr": 0.001, "train_loss": 2.5, "seconds": 3.0})
    with pytest.raises(UserError, match=r"unet-resnet34-scratch-s42.*epoch 1, which was not validated.*"
                                        r"dvc repro train@unet-resnet34-scratch-42"):
        finished_history(directory, "unet-resnet34-scratch-s42")
    log.log({"epoch": 2, "lr": 0.0005, "train_loss": 2.0, "seconds": 3.0, "val_loss": 2.1, "val_miou0": 0.4})
    history = finished_history(directory, "unet-resnet34-scratch-s42")     # a finished run ends validated
    assert history["epoch"].tolist() == [1, 2]
    assert np.isnan(history["val_loss"][0]) and history["val_loss"][1] == 2.1
    log.log({"epoch": 3, "lr": 0.0001, "train_loss": 1.9, "seconds": 3.0})  # stopped after a validated epoch
    log.close()
    with pytest.raises(UserError, match="epoch 3, which was not validated"):
        finished_history(directory, "unet-resnet34-scratch-s42")


def test_training_without_dvclive_writes_the_same_weights_and_says_so_once(workdir, tree, tmp_path, monkeypatch,
                                                                           capfd):
    """A GPU machine may have torch and smp but not dvclive (nor dvc): training runs, logs nothing
    per epoch, writes the same weights, and says so once per process."""
    import hseg.tracking
    (tmp_path / "with").mkdir()
    reference, _ = train_once(workdir, tree, tmp_path / "with", epochs=1)
    capfd.readouterr()
    monkeypatch.setitem(sys.modules, "dvclive", None)  # `import dvclive` raises ImportError
    monkeypatch.setattr(hseg.tracking, "_said_no_dvclive", False)
    for run in ("a", "b"):
        weights = torch.load(train_in_workdir(workdir, tree, tmp_path / run, epochs=1),
                             weights_only=False)["state_dict"]
        assert all(torch.equal(reference[k], weights[k]) for k in reference)
        assert not (tmp_path / run / "live").exists() or not any((tmp_path / run / "live").iterdir())
    assert capfd.readouterr().err.count("dvclive is not installed: per-epoch metrics are not logged") == 1
