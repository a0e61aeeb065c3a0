"""The resume state: what an interrupted train stage needs to continue bit-identically (CPU), and
the fingerprint that tells whether a resume file belongs to this run."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch.optim.swa_utils import AveragedModel

from .atomic import save_torch
from .settings.train import TrainConfig

CODE_DIR = Path(__file__).resolve().parent


def _digest(*arrays) -> str:
    h = hashlib.sha1()
    for a in arrays:
        h.update(np.ascontiguousarray(a.numpy() if isinstance(a, torch.Tensor) else a).data)
    return h.hexdigest()


def fingerprint(cfg: TrainConfig, train_cache: dict) -> str:
    """Identifies a run: params, the cache's content (not just its size) and the library code.
    A resume checkpoint with another fingerprint is not reused."""
    code = "".join(p.read_text() for p in sorted(CODE_DIR.glob("*.py")))
    blob = json.dumps(cfg.model_dump(), sort_keys=True) + _digest(train_cache["images"], train_cache["masks"])
    return hashlib.sha1((blob + code).encode()).hexdigest()


def rng_state(device) -> dict:
    """This process's global RNG state: the CPU generator's and that of its own GPU only."""
    return {"cpu": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" else None}


def set_rng_state(state: dict, device) -> None:
    torch.set_rng_state(state["cpu"])
    if state["cuda"] is not None and device.type == "cuda":
        torch.cuda.set_rng_state(state["cuda"], device)


def gather_rng_states(device, world: int) -> list[dict]:
    """Every process's rng_state, indexed by rank (a collective: every process calls it)."""
    if world == 1:
        return [rng_state(device)]
    states = [None] * world
    dist.all_gather_object(states, rng_state(device))
    return states


class ResumeState:
    """The resume file: everything needed to continue an interrupted run bit-identically.

    It holds each process's global RNG state (CPU and its own GPU), indexed by rank; a process
    restores its own."""

    def __init__(self, path: Path, fingerprint: str):
        self.path, self.fingerprint = path, fingerprint

    def save(self, epoch: int, net, optimizer, scheduler, scaler, gen, history, rng_states: list | None = None,
             ema: AveragedModel | None = None) -> None:
        """``rng_states``: gather_rng_states' list; by default this (single, CPU) process's state."""
        save_torch({"fingerprint": self.fingerprint, "epoch": epoch, "model": net.state_dict(),
                    "ema": ema.state_dict() if ema is not None else None,
                    "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                    "scaler": scaler.state_dict(), "generator": gen.get_state(),
                    "rng": rng_states or [rng_state(torch.device("cpu"))],
                    "history": history}, self.path)

    def restore(self, net, optimizer, scheduler, scaler, gen, rank: int = 0, device=torch.device("cpu"),
                ema: AveragedModel | None = None) -> tuple[int, list]:
        """(epochs done, history) after loading a matching checkpoint; (0, []) if there is none.
        Process ``rank`` restores the RNG state that process ``rank`` saved; where the checkpoint has
        none for it (fewer processes wrote it), it keeps its own seeding (seed_process)."""
        if not self.path.is_file():
            return 0, []
        state = torch.load(self.path, map_location="cpu", weights_only=False)
        if state.get("fingerprint") != self.fingerprint:
            return 0, []
        net.load_state_dict(state["model"])
        if ema is not None:
            ema.load_state_dict(state["ema"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        scaler.load_state_dict(state["scaler"])
        gen.set_state(state["generator"])
        if rank < len(state["rng"]):
            set_rng_state(state["rng"][rank], device)
        return state["epoch"], state["history"]
