"""What changes over a run's epochs and steps: the learning rate's multiplier and the progressive-resizing side."""
from __future__ import annotations

import math

from .settings.train import TrainConfig


class LrFactor:
    """The learning-rate multiplier of optimisation step s (stepped once per batch).

    warmup_cosine: linear warm-up over ``warmup_epochs``, then a cosine decay that
    reaches eta_min at the last step. cosine_restarts: CosineAnnealingWarmRestarts
    with a cycle of T_0 epochs, as in the original study."""

    def __init__(self, cfg: TrainConfig, steps_per_epoch: int):
        sched = cfg.scheduler
        self.kind, self.floor = sched.name, sched.eta_min / cfg.lr
        self.warm = round(sched.warmup_epochs * steps_per_epoch)
        self.total = cfg.epochs * steps_per_epoch
        self.cycle = sched.T_0 * steps_per_epoch

    def __call__(self, step: int) -> float:
        if self.kind == "cosine_restarts":
            progress = (step % self.cycle) / self.cycle
        elif step < self.warm:
            return (step + 1) / self.warm
        else:
            progress = (step - self.warm) / max(1, self.total - self.warm - 1)
        return self.floor + (1 - self.floor) * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))


def epoch_side(cfg: TrainConfig, epoch: int) -> int:
    """The side epoch ``epoch`` (0-based) trains at under ``cfg.progressive``; 0 = the full side."""
    end = 0
    for epochs, side in cfg.progressive:
        end += epochs
        if epoch < end:
            return side
    return 0
