"""train.ema: the written (and validated) weights are the exponential moving average of the weights
after each step, computed here by hand from the steps of a run without it; training itself is
unchanged; an interrupted run resumes its average bit-identically."""
import pytest
import torch

import hseg.train as train_module
from hseg.errors import UserError
from hseg.train import make_ema
from tests.synthetic import prepared_workdir, train_in_workdir, workdir_config


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    work = tmp_path_factory.mktemp("work")
    prepared_workdir(work, n_train=16, n_val=4, size=64, epochs=2, batch_size=8, crop=32, val_every=1)
    return work


def run(work, tree, out, **overrides):
    """The state dict one training run into ``out`` writes."""
    return torch.load(train_in_workdir(work, tree, out, **overrides), weights_only=False)["state_dict"]


def test_ema_off_is_none_and_its_range_is_checked(workdir):
    assert make_ema(workdir_config(workdir, ema=0.0), torch.nn.Linear(2, 2)) is None
    for bad in (1.0, -0.1, True, "0.9"):
        with pytest.raises(UserError, match=r"train.ema = .*must be a number from 0 \(off\) to below 1"):
            workdir_config(workdir, ema=bad)


@pytest.mark.slow
def test_written_weights_are_the_moving_average_of_every_step(workdir, tree, tmp_path, monkeypatch):
    decay = 0.7
    # 1. without EMA, record the weights (parameters and BatchNorm buffers) after every step
    snapshots = []
    real_step = train_module.train_step

    def recording_step(learner, *args, **kwargs):
        loss = real_step(learner, *args, **kwargs)
        snapshots.append({k: v.detach().clone() for k, v in learner.model.state_dict().items()})
        return loss
    monkeypatch.setattr(train_module, "train_step", recording_step)
    (tmp_path / "plain").mkdir()
    plain = run(workdir, tree, tmp_path / "plain", ema=0.0)
    monkeypatch.setattr(train_module, "train_step", real_step)
    assert len(snapshots) == 4  # 2 epochs x 16 images / batch 8
    assert all(torch.equal(plain[k], snapshots[-1][k]) for k in plain)

    # 2. the average by hand: the first step's weights, then e = decay * e + (1 - decay) * w
    expected = {k: v.double() for k, v in snapshots[0].items()}
    for snap in snapshots[1:]:
        expected = {k: decay * expected[k] + (1 - decay) * snap[k].double() for k in expected}

    # 3. the same run with train.ema writes that average (training itself unchanged: its last weights
    #    are the plain run's, which the average differs from)
    (tmp_path / "ema").mkdir()
    averaged = run(workdir, tree, tmp_path / "ema", ema=decay)
    floats = [k for k, v in plain.items() if v.is_floating_point()]
    for k in floats:
        torch.testing.assert_close(averaged[k].double(), expected[k], rtol=1e-5, atol=1e-6)
    assert any(not torch.equal(averaged[k], plain[k]) for k in floats)


@pytest.mark.slow
def test_interrupted_run_resumes_its_moving_average_bit_identically(workdir, tree, tmp_path, monkeypatch):
    (tmp_path / "ref").mkdir()
    reference = run(workdir, tree, tmp_path / "ref", ema=0.9)

    real_epoch, calls = train_module.train_epoch, []

    def dies_in_the_second_epoch(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real_epoch(*args, **kwargs)
    monkeypatch.setattr(train_module, "train_epoch", dies_in_the_second_epoch)
    out = tmp_path / "cut"
    out.mkdir()
    with pytest.raises(KeyboardInterrupt):
        run(workdir, tree, out, ema=0.9)
    assert (out / "resume.pt").exists() and not (out / "w.pt").exists()
    monkeypatch.setattr(train_module, "train_epoch", real_epoch)
    resumed = run(workdir, tree, out, ema=0.9)
    assert all(torch.equal(reference[k], resumed[k]) for k in reference)
