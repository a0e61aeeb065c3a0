"""Resuming an interrupted training (hseg/checkpoint.py's ResumeState, fingerprint and per-process RNG
states): the same weights after a kill, and a resume state reused only by the run that wrote it."""
# ruff: noqa: F811 (the fixture imported from tests.workdir is a test argument of the same name)
import signal
import time

import pytest
import torch
import yaml

from hseg.settings.train import train_config
from tests.synthetic import prepared_split, workdir_config
from tests.workdir import RUN, VARIANT, stage, strip_time, workdir  # noqa: F401 (workdir: a fixture)


@pytest.mark.slow
def test_killed_train_stage_resumes_to_the_same_weights(workdir):
    weights = workdir / "models" / f"{RUN}.pt"
    resume = workdir / "models" / ".resume" / f"{RUN}.pt"
    # uninterrupted reference run through the real stage
    ref = stage(workdir, "stages.train", VARIANT, "42", "--no-progress")
    assert ref.wait(timeout=300) == 0, ref.stderr.read()
    reference = torch.load(weights, weights_only=False)["state_dict"]
    reference_history = strip_time(workdir / "dvclive" / RUN)
    weights.unlink()

    proc = stage(workdir, "stages.train", VARIANT, "42", "--no-progress")
    deadline = time.monotonic() + 300
    while not resume.exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert proc.poll() is None, "training finished before it could be interrupted"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert resume.exists() and not weights.exists()

    rerun = stage(workdir, "stages.train", VARIANT, "42", "--no-progress")
    out, err = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, err
    assert f"resuming {VARIANT} after epoch" in out
    resumed = torch.load(weights, weights_only=False)["state_dict"]
    assert all(torch.equal(reference[k], resumed[k]) for k in reference)
    assert strip_time(workdir / "dvclive" / RUN) == reference_history  # no epoch logged twice
    assert not resume.exists()


def test_resume_state_needs_the_same_params_data_content_and_code(workdir, tree, tmp_path, monkeypatch):
    """The resume state is reused only by the run that wrote it: a cache with the same number of
    images but one changed pixel, other params, or edited library code start over."""
    import shutil

    from hseg import checkpoint
    from hseg.checkpoint import ResumeState, fingerprint
    from hseg.schedule import LrFactor
    from hseg.train import build_training_model, make_optimizer

    cfg = workdir_config(workdir)
    cache = prepared_split(workdir, "train")
    net, _ = build_training_model(cfg, tree, torch.device("cpu"), 1)

    def parts():
        opt = make_optimizer(cfg, net)
        return (net, opt, torch.optim.lr_scheduler.LambdaLR(opt, LrFactor(cfg, 2)),
                torch.amp.GradScaler("cpu", enabled=False), torch.Generator())

    ResumeState(tmp_path / "r.pt", fingerprint(cfg, cache)).save(1, *parts(), history=[{"epoch": 1}])
    assert ResumeState(tmp_path / "r.pt", fingerprint(cfg, cache)).restore(*parts()) == (1, [{"epoch": 1}])

    changed = dict(cache, images=cache["images"].clone())
    changed["images"][3, 1, 10, 10] ^= 1  # same count, one pixel differs
    assert len(changed["images"]) == len(cache["images"])
    assert ResumeState(tmp_path / "r.pt", fingerprint(cfg, changed)).restore(*parts()) == (0, [])
    other = cfg.model_copy(update={"lr": cfg.lr / 2})
    assert ResumeState(tmp_path / "r.pt", fingerprint(other, cache)).restore(*parts()) == (0, [])

    code = tmp_path / "code"
    shutil.copytree(checkpoint.CODE_DIR, code, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(checkpoint, "CODE_DIR", code)
    assert ResumeState(tmp_path / "r.pt", fingerprint(cfg, cache)).restore(*parts()) == (1, [{"epoch": 1}])
    (code / "augment.py").write_text((code / "augment.py").read_text() + "\n# edited\n")
    assert ResumeState(tmp_path / "r.pt", fingerprint(cfg, cache)).restore(*parts()) == (0, [])


def test_each_rank_saves_and_restores_its_own_rng_state(workdir, tree, tmp_path, monkeypatch):
    """The resume state holds one RNG state per process (CPU and that process's own GPU), and a
    process restores its own: a resume with more processes than wrote it keeps the extra ones' own
    seeding, and no process touches the RNG of a GPU it does not use (set_rng_state_all failed when
    the checkpoint held more GPU states than the resuming machine has GPUs)."""
    from hseg.checkpoint import ResumeState, fingerprint, rng_state
    from hseg.distributed import seed_process
    from hseg.schedule import LrFactor
    from hseg.train import build_training_model, make_optimizer
    cfg = train_config(yaml.safe_load((workdir / "params.yaml").read_text()), VARIANT, 42)
    net, _ = build_training_model(cfg, tree, torch.device("cpu"), 1)

    def parts():
        opt = make_optimizer(cfg, net)
        return (net, opt, torch.optim.lr_scheduler.LambdaLR(opt, LrFactor(cfg, 2)),
                torch.amp.GradScaler("cpu", enabled=False), torch.Generator())

    # rank 0 keeps the stream after the model's initialisation (one process is unchanged); others differ
    torch.manual_seed(cfg.seed)
    after_init = torch.get_rng_state()
    seed_process(cfg.seed, 0)
    assert torch.equal(torch.get_rng_state(), after_init)
    per_rank = []
    for rank in (1, 2):
        seed_process(cfg.seed, rank)
        per_rank.append(torch.get_rng_state())
        seed_process(cfg.seed, rank)
        assert torch.equal(torch.get_rng_state(), per_rank[-1])  # reproducible
    assert not torch.equal(per_rank[0], per_rank[1]) and not torch.equal(per_rank[0], after_init)

    # resume state written by 2 GPU processes: each saved its own GPU's state only
    seen = []
    monkeypatch.setattr(torch.cuda, "get_rng_state",
                        lambda device: seen.append(device) or torch.full((8,), device.index, dtype=torch.uint8))
    monkeypatch.setattr(torch.cuda, "get_rng_state_all", lambda: pytest.fail("saved the states of every GPU"))
    states = []
    for rank in (0, 1):
        torch.manual_seed(100 + rank)
        states.append(rng_state(torch.device("cuda", rank)))
    assert seen == [torch.device("cuda", 0), torch.device("cuda", 1)]
    path = ResumeState(tmp_path / "r.pt", fingerprint(cfg, prepared_split(workdir, "train")))
    path.save(1, *parts(), history=[{"epoch": 1}], rng_states=states)

    restored = []
    monkeypatch.setattr(torch.cuda, "set_rng_state", lambda state, device: restored.append((state.tolist(), device)))
    monkeypatch.setattr(torch.cuda, "set_rng_state_all", lambda states: pytest.fail("restored every GPU's state"))
    for rank in (1, 0):  # as many processes as wrote it: each its own state
        torch.manual_seed(0)
        assert path.restore(*parts(), rank=rank, device=torch.device("cuda", rank)) == (1, [{"epoch": 1}])
        assert torch.equal(torch.get_rng_state(), states[rank]["cpu"])
        assert restored[-1] == ([rank] * 8, torch.device("cuda", rank))
    seed_process(cfg.seed, 2)  # a third process (more than wrote the checkpoint) keeps its own seeding
    assert path.restore(*parts(), rank=2, device=torch.device("cuda", 2)) == (1, [{"epoch": 1}])
    assert torch.equal(torch.get_rng_state(), per_rank[1]) and len(restored) == 2
    torch.manual_seed(0)  # and a CPU process (a GPU checkpoint resumed on a CPU) restores only the CPU state
    assert path.restore(*parts(), rank=0, device=torch.device("cpu")) == (1, [{"epoch": 1}])
    assert torch.equal(torch.get_rng_state(), states[0]["cpu"]) and len(restored) == 2
