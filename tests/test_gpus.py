"""A training process claims a GPU of its own on a machine with several (hseg/gpus.py), checked on CPU with
the GPU count given: processes claiming at once get distinct GPUs, one more shares the least-held, a
killed holder's GPU is free again, and nothing is claimed where something else chooses the GPU.

The claimants are forked, so they start in milliseconds instead of importing torch again."""
import multiprocessing
import os
import signal
import time

import pytest
import torch

from hseg import gpus


@pytest.fixture
def folder(tmp_path, monkeypatch):
    """The claims' folder, and a process in which a claim applies and none is held yet."""
    for name in ("LOCAL_RANK", "CUDA_VISIBLE_DEVICES"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HSEG_GPU_LOCK_DIR", str(tmp_path / "claims"))
    monkeypatch.setattr(gpus, "_held", None)
    yield tmp_path / "claims"
    if gpus._held is not None:  # a claim made in this process: let it go before the next test
        gpus._held[2].close()


def hold(count: int, go, report) -> None:
    """A claimant: waits for the others, claims through the entry point, reports, and holds the claim."""
    go.wait()
    device, record = gpus.claim_gpu("auto", count)
    report.send((str(device), record))
    time.sleep(60)  # the test kills it well before


@pytest.fixture
def claimants(folder):
    """start(n, count): n processes claim one of count GPUs at the same moment; [(process, device, record)]."""
    context, started = multiprocessing.get_context("fork"), []

    def start(n: int, count: int) -> list:
        go, reports = context.Event(), []
        for _ in range(n):
            receive, send = context.Pipe(duplex=False)
            process = context.Process(target=hold, args=(count, go, send), daemon=True)
            process.start()
            started.append(process)
            reports.append((process, receive))
        go.set()
        claims = []
        for process, receive in reports:
            assert receive.poll(10), "a claimant did not report within 10 s"
            claims.append((process, *receive.recv()))
        return claims

    yield start
    for process in started:
        process.kill()
        process.join()


def holder_pids(folder, index: int) -> set[int]:
    return {int(path.name.split(".")[1]) for path in folder.glob(f"gpu{index}.*.holder")}


def test_processes_claiming_at_once_get_distinct_gpus_and_more_share_the_least_held(claimants, folder):
    first = claimants(4, count=4)
    assert sorted(device for _, device, _ in first) == ["cuda:0", "cuda:1", "cuda:2", "cuda:3"]
    for process, device, record in first:
        assert record == {"gpu_claim": int(device[-1]), "gpus_visible": 4, "shared_with": 0}
        assert holder_pids(folder, record["gpu_claim"]) == {process.pid}
    [(_, fifth, record)] = claimants(1, count=4)
    assert (fifth, record) == ("cuda:0", {"gpu_claim": 0, "gpus_visible": 4, "shared_with": 1})  # lowest of equals
    [(_, sixth, record)] = claimants(1, count=4)
    assert (sixth, record["shared_with"]) == ("cuda:1", 1)  # cuda:0 has two holders now


def test_a_killed_holder_frees_its_gpu(claimants, folder):
    holders = claimants(2, count=2)
    victim = next(process for process, device, _ in holders if device == "cuda:0")
    victim.kill()
    victim.join()
    assert victim.exitcode == -signal.SIGKILL
    [(newcomer, device, record)] = claimants(1, count=2)
    assert (device, record["shared_with"]) == ("cuda:0", 0)
    assert holder_pids(folder, 0) == {newcomer.pid}  # the dead holder's file is gone


def test_one_claim_per_process_held_by_an_open_file(folder):
    device, record = gpus.claim_gpu("cuda", count=2)
    assert (device, record) == (torch.device("cuda", 0), {"gpu_claim": 0, "gpus_visible": 2, "shared_with": 0})
    assert gpus.claim_gpu("auto", count=2) == (device, record)
    assert holder_pids(folder, 0) == {os.getpid()} and not holder_pids(folder, 1)
    assert gpus.live_holders(folder, 2) == [1, 0]  # counted by its lock, which this process still holds


@pytest.mark.parametrize("env, requested, count", [
    ({"CUDA_VISIBLE_DEVICES": "1"}, "auto", 4),   # whoever set it chose
    ({"CUDA_VISIBLE_DEVICES": ""}, "auto", 4),
    ({"LOCAL_RANK": "0"}, "cuda", 4),             # torchrun: the process's own GPU is cuda:LOCAL_RANK
    ({}, "cuda:1", 4),                            # an explicit index
    ({}, "cpu", 4),
    ({}, "auto", 1),                              # nothing to choose from
    ({}, "auto", 0),
])
def test_no_claim_where_something_else_chooses_the_gpu(folder, monkeypatch, env, requested, count):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert gpus.claim_gpu(requested, count) is None
    assert not folder.exists()


def test_without_a_count_it_asks_torch(folder, monkeypatch):
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert gpus.claim_gpu("auto") is None and not folder.exists()
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 3)
    assert gpus.claim_gpu("auto")[1]["gpus_visible"] == 3


def test_the_lock_folder_is_per_user_unless_given(monkeypatch):
    monkeypatch.delenv("HSEG_GPU_LOCK_DIR", raising=False)
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    assert str(gpus.lock_folder()) == f"/tmp/pascal-hseg-gpus-{os.getuid()}"
    monkeypatch.setenv("XDG_RUNTIME_DIR", "/run/user/1234")
    assert str(gpus.lock_folder()) == "/run/user/1234/pascal-hseg-gpus"
    monkeypatch.setenv("HSEG_GPU_LOCK_DIR", "/somewhere/else")
    assert str(gpus.lock_folder()) == "/somewhere/else"
