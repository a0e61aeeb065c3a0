"""Where a training process runs: its rank and device under torchrun (DistributedDataParallel), or
one device of its own otherwise (a claimed GPU on a machine with several)."""
from __future__ import annotations

import os

import numpy as np
import torch
import torch.distributed as dist

from .device import pick_device, wants_cuda
from .errors import UserError
from .gpus import claim_gpu
from .settings.train import TrainConfig


def check_processes(cfg: TrainConfig) -> None:
    """Refuse train.processes above the number of GPUs before any work: torchrun would start them all,
    and each process past the last GPU dies in torch.cuda.set_device ("invalid device ordinal")."""
    if not wants_cuda(cfg.device):
        return  # CPU processes (gloo) are limited by memory only
    gpus = torch.cuda.device_count()
    if cfg.processes > gpus:
        raise UserError(f"train.processes = {cfg.processes} needs one GPU per process, but this machine has {gpus} "
                        f"GPU(s) (train.device = {cfg.device}): use train.processes <= {max(gpus, 1)}"
                        + ("" if gpus else " with train.device cpu"))


def setup_process(device_request: str) -> tuple[int, int, torch.device, dict]:
    """(rank, world size, device, claim). Under torchrun (even with one process) the process group is
    set up and training uses DistributedDataParallel. Otherwise (0, 1, device): on a machine with
    several visible GPUs this process claims one for its lifetime (hseg/gpus.py), so queued runs
    spread over the GPUs; ``claim`` says which ({} where nothing was claimed)."""
    if "LOCAL_RANK" not in os.environ:  # not launched by torchrun
        claimed = claim_gpu(device_request)
        if claimed is not None:
            device, claim = claimed
            torch.cuda.set_device(device)
            return 0, 1, device, claim
        return 0, 1, pick_device(device_request), {}
    if wants_cuda(device_request):  # each process its own GPU, chosen before any CUDA work
        local = int(os.environ["LOCAL_RANK"])
        if local >= torch.cuda.device_count():
            raise UserError(f"torchrun process {local} has no GPU of its own: this machine has "
                            f"{torch.cuda.device_count()} GPU(s); start at most that many processes (train.processes)")
        torch.cuda.set_device(local)
    device = pick_device(device_request)  # cuda:LOCAL_RANK after set_device
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return dist.get_rank(), dist.get_world_size(), device, {}


def sync_batchnorm(device, world: int) -> bool:
    """SyncBatchNorm: batch statistics over all processes' micro-batches; GPU-only in torch, and
    pointless for one process."""
    return dist.is_initialized() and device.type == "cuda" and world > 1


def seed_process(seed: int, rank: int) -> None:
    """Seed torch's global generators (CPU and GPU: dropout) for process ``rank``, after the model is
    built. Process 0 keeps the stream that follows the initialisation, as a single process does;
    every other process gets its own, so dropout does not draw the same masks on every process.
    (The augmentation draws come from train_step's own generator, the same on every process.)"""
    if rank:
        torch.manual_seed(int(np.random.SeedSequence([seed, rank]).generate_state(1)[0]))
