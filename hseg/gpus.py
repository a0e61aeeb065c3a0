"""One GPU per training process on a machine with several, without a launcher to hand them out.

``dvc queue start -j N`` starts N workers that all see every GPU, and a training not under torchrun
would pick ``cuda:0`` in each. So such a training claims one: the least-held GPU (the first free one
while any is free), chosen under a folder-wide lock so that processes starting together all see
each other's claims. A claim is an exclusive ``flock`` on a holder file of its own, held as long as
the process lives; the kernel drops it when the process ends, killed or not, and a holder file whose
lock can be taken is a dead process's and is removed at the next claim. One lock per holder, not one
per GPU: a GPU shared by several processes needs its holders counted, and flock cannot count the
holders of a shared lock.
"""
from __future__ import annotations

import fcntl
import os
import tempfile
from pathlib import Path
from typing import BinaryIO

import torch

_held = None  # (device, record, holder file) of this process's claim: kept open for the life of the process


def lock_folder() -> Path:
    """Where the claims live: $HSEG_GPU_LOCK_DIR, else a folder of the user's runtime directory, else of /tmp.
    Per user: processes of different users do not see each other's claims."""
    if os.environ.get("HSEG_GPU_LOCK_DIR"):
        return Path(os.environ["HSEG_GPU_LOCK_DIR"])
    if os.environ.get("XDG_RUNTIME_DIR"):
        return Path(os.environ["XDG_RUNTIME_DIR"]) / "pascal-hseg-gpus"
    return Path("/tmp") / f"pascal-hseg-gpus-{os.getuid()}"  # not $TMPDIR: a batch job may have its own


def chooses_elsewhere(requested: str) -> bool:
    """Whether something other than a claim chooses the GPU: torchrun (LOCAL_RANK), whoever set
    CUDA_VISIBLE_DEVICES, or train.device other than auto or cuda (cpu)."""
    return "LOCAL_RANK" in os.environ or "CUDA_VISIBLE_DEVICES" in os.environ or requested not in ("auto", "cuda")


def live_holders(folder: Path, count: int) -> list[int]:
    """How many live processes hold each GPU index; removes the holder files of dead ones. Call it only
    while holding the folder's lock, so that no claim is half made while the files are read."""
    holders = [0] * count
    for path in folder.glob("gpu*.holder"):
        index = int(path.name[3:path.name.index(".")])
        with open(path, "rb") as probe:
            try:
                fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:  # its owner is alive
                if index < count:
                    holders[index] += 1
                continue
            path.unlink()  # nobody holds it: its process has ended
    return holders


def claim_index(count: int, folder: Path) -> tuple[int, int, BinaryIO]:
    """(GPU index, how many other live processes hold it, the open holder file): the least-held of
    ``count`` GPUs, the lowest index among equals. The claim lasts as long as the file stays open."""
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    with open(folder / "claim.lock", "ab") as mutex:
        fcntl.flock(mutex, fcntl.LOCK_EX)  # held for a few file operations; released by close, or by death
        holders = live_holders(folder, count)
        index = min(range(count), key=lambda k: (holders[k], k))
        fd, _ = tempfile.mkstemp(prefix=f"gpu{index}.{os.getpid()}.", suffix=".holder", dir=folder)
        holder = os.fdopen(fd, "wb")
        fcntl.flock(holder, fcntl.LOCK_EX | fcntl.LOCK_NB)  # a new file: nobody else can hold it
    return index, holders[index], holder


def claim_gpu(requested: str, count: int | None = None) -> tuple[torch.device, dict] | None:
    """The GPU this training process should use and a record of the choice ({"gpu_claim": k,
    "gpus_visible": n, "shared_with": m}: m other live processes held GPU k when it was claimed), or None
    where the device is chosen as before: under torchrun, with CUDA_VISIBLE_DEVICES set, for
    train.device cpu, or with fewer than two GPUs. ``requested``: train.device; ``count``: the GPUs to
    choose from (default torch.cuda.device_count(); tests give it). One claim per process: later calls
    return the first."""
    global _held
    if chooses_elsewhere(requested):
        return None
    if _held is None:
        count = torch.cuda.device_count() if count is None else count
        if count < 2:
            return None
        index, others, holder = claim_index(count, lock_folder())
        record = {"gpu_claim": index, "gpus_visible": count, "shared_with": others}
        _held = torch.device("cuda", index), record, holder
    return _held[0], _held[1]
