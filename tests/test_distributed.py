"""Training in several processes (hseg/distributed.py and the loop in hseg/train.py, under torchrun/gloo):
the same result as one process with the same global batch, the process count checked against the GPUs, a
non-finite loss stopping all."""
# ruff: noqa: F811 (the fixture imported from tests.workdir is a test argument of the same name)
import json
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from hseg.errors import UserError
from hseg.models import build_model
from hseg.settings.train import train_config
from tests.workdir import RUN, VARIANT, stage, train_once, workdir  # noqa: F401 (workdir: a fixture)


@pytest.mark.slow
def test_two_cpu_processes_match_one_with_the_same_global_batch(workdir):
    """torchrun with 2 gloo processes (launched by the stage itself) vs one process with the same
    global batch of 8, fp32, 1 epoch. On CPU each process normalises BatchNorm over its own 4 images
    (SyncBatchNorm is GPU-only in PyTorch), so the single process splits each batch the same way
    (train.accumulate = 2). Both run one thread per process (torchrun's default): a different thread
    count alone changes float rounding, which Adam's first steps amplify for near-zero gradients.
    Stated tolerance: at least 99.9% of trained weights within 1e-5 of each other (BatchNorm running
    statistics are per-process buffers and not compared)."""
    params = yaml.safe_load((workdir / "params.yaml").read_text())
    params["train"].update(epochs=1, precision="fp32")
    results = {}
    for processes in (1, 2):
        params["train"]["processes"] = processes
        params["train"]["accumulate"] = 2 // processes
        (workdir / f"params{processes}.yaml").write_text(yaml.safe_dump(params))
        proc = stage(workdir, "stages.train", VARIANT, "42", "--no-progress", "--params", f"params{processes}.yaml",
                     env_extra={"OMP_NUM_THREADS": "1"})
        out, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err
        results[processes] = torch.load(workdir / "models" / f"{RUN}.pt", weights_only=False)["state_dict"]
    torch.manual_seed(42)
    init = build_model("unet", "resnet34", "scratch", 7).state_dict()
    keys = [k for k, v in init.items() if v.is_floating_point() and "running" not in k]
    single, multi = (torch.cat([r[k].float().flatten() for k in keys]) for r in (results[1], results[2]))
    moved = (single - torch.cat([init[k].flatten() for k in keys])).abs().max().item()
    close = ((single - multi).abs() <= 1e-5).float().mean().item()
    print(f"weights within 1e-5: {close:.4%}; largest move from init {moved:.2e}")
    assert moved > 1e-4 and close >= 0.999


def test_more_processes_than_gpus_is_refused_before_any_work(workdir, tree, tmp_path, monkeypatch):
    """train.processes above the GPU count would die in torch.cuda.set_device ("invalid device ordinal")
    in every extra torchrun process; it is refused first, naming the parameter and the GPU count."""
    from hseg.distributed import check_processes
    params = yaml.safe_load((workdir / "params.yaml").read_text())
    params["train"].update(processes=2)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(UserError, match=r"train.processes = 2 needs one GPU per process, but this machine has 1 GPU"):
        check_processes(train_config(params, VARIANT, 42))
    check_processes(train_config(params | {"train": params["train"] | {"processes": 1}}, VARIANT, 42))
    with pytest.raises(UserError, match=r"train.processes = 2 .* has 1 GPU"):  # train_variant checks it too
        train_once(workdir, tree, tmp_path, processes=2)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    check_processes(train_config(params, VARIANT, 42))  # on CPU (gloo) any number of processes may run

    # the stage refuses before torchrun starts and before the caches are read: none here
    params["train"].update(device="cuda", processes=3)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    proc = stage(tmp_path, "stages.train", VARIANT, "42", "--no-progress", env_extra={"CUDA_VISIBLE_DEVICES": ""})
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 2 and err.startswith("error: train.processes = 3 needs one GPU per process, but "
                                                   "this machine has 0 GPU(s) (train.device = cuda)"), err


def _nonfinite_worker(rank: int, store: str, out: str, params: dict) -> None:
    """One of 2 gloo processes: a step whose loss is NaN on process 1 only, then a finite step."""
    import json as json_

    import torch.distributed as dist
    import torch.nn.functional as F

    from hseg.train import Learner, train_step
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=2)
    try:
        cfg = train_config(params, VARIANT, 42)
        torch.manual_seed(0)
        net = torch.nn.Conv2d(3, 7, 1)
        model = torch.nn.parallel.DistributedDataParallel(net)
        poison = {"on": True}

        def loss_fn(logits, labels):
            loss = F.cross_entropy(logits.float(), labels.long(), ignore_index=255)  # IGNORE: outside the image
            return loss * float("nan") if poison["on"] and rank == 1 else loss

        learner = Learner(model, torch.optim.SGD(net.parameters(), lr=0.1), torch.amp.GradScaler("cpu", enabled=False),
                          loss_fn, torch.Generator().manual_seed(0), torch.device("cpu"), rank, 2)
        gen = torch.Generator().manual_seed(1)
        images = torch.randint(0, 256, (4, 3, 8, 8), dtype=torch.uint8, generator=gen)
        masks = torch.randint(0, 7, (4, 8, 8), dtype=torch.uint8, generator=gen)
        rows = []
        for _ in range(2):
            before = [p.detach().clone() for p in net.parameters()]
            loss = train_step(learner, images, masks, torch.arange(4), cfg)
            rows.append({"loss": repr(loss),
                         "updated": any(not torch.equal(a, b) for a, b in zip(before, net.parameters()))})
            poison["on"] = False
        Path(out, f"rank{rank}.json").write_text(json_.dumps(rows))
    finally:
        dist.destroy_process_group()


def test_a_nonfinite_loss_on_one_process_stops_every_process_alike(workdir, tmp_path):
    """2 gloo processes, the loss NaN on process 1 only: both return a non-finite loss from the same
    step and neither updates its weights (an early return on process 1 left process 0 waiting in the
    gradient all-reduce until torchrun killed both); the next, finite step updates both."""
    import torch.multiprocessing as mp
    params = yaml.safe_load((workdir / "params.yaml").read_text())
    params["train"].update(batch_size=4, crop=0, accumulate=1, precision="fp32")
    context = mp.start_processes(_nonfinite_worker, args=(str(tmp_path / "store"), str(tmp_path), params), nprocs=2,
                                 join=False, start_method="spawn")
    deadline = time.monotonic() + 240
    while not context.join(timeout=5):
        if time.monotonic() > deadline:
            for p in context.processes:
                p.kill()
            pytest.fail("the processes hung")
    rows = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    for first, second in rows:
        assert first == {"loss": "nan", "updated": False}
        assert np.isfinite(float(second["loss"])) and second["updated"]
    assert rows[0][1]["loss"] == rows[1][1]["loss"]  # the all-reduced mean, the same on both
