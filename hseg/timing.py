"""What the timing code shares (benchmarks/, `python -m hseg plan`): one round-robin timer, caches in
prepare's format filled with random pixels and labels, of any split's shape (the arithmetic per image of
the real data, without the data: a lent GPU machine cannot carry it), and one training rig that steps a
run's model on such a batch as the train stage would."""
from __future__ import annotations

import dataclasses
import time

import torch


def timed_round_robin(fns: dict, steps: int) -> dict:
    """Seconds per call of each zero-argument function, after one warm-up call each, calling them in
    turn (one call each round) so machine drift hits all alike."""
    for fn in fns.values():  # warm-up
        fn()
    spent = dict.fromkeys(fns, 0.0)
    for _ in range(steps):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            spent[name] += time.perf_counter() - start
    return {name: total / steps for name, total in spent.items()}


LEAF_NAMES = ["bg", "low_hand", "torso", "low_leg", "head", "up_leg", "up_hand"]


def random_cache(n: int, size: int, full_size: tuple[int, int] | None, gen: torch.Generator) -> dict:
    """A cache in prepare's format with random content."""
    cache = {"images": torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=gen),
             "masks": torch.randint(0, len(LEAF_NAMES), (n, size, size), dtype=torch.uint8, generator=gen),
             "ids": [f"random_{k:06d}" for k in range(n)], "size": size, "leaf_names": LEAF_NAMES,
             "sizes": torch.tensor([full_size or (size, size)] * n, dtype=torch.int32)}
    # counted at the cache size (prepare counts at original size); only class weighting reads them
    cache["pixel_counts"] = torch.bincount(cache["masks"].flatten().long(), minlength=len(LEAF_NAMES))
    if full_size:
        h, w = full_size
        cache["offsets"] = torch.arange(n + 1, dtype=torch.int64) * h * w
        cache["full_masks"] = torch.randint(0, len(LEAF_NAMES), (n * h * w,), dtype=torch.uint8, generator=gen)
    return cache


@dataclasses.dataclass
class TrainingRig:
    """A run's model, optimizer, schedule, loss and one random batch, set up as the train stage sets them."""
    cfg: object
    net: torch.nn.Module
    learner: object
    scheduler: torch.optim.lr_scheduler.LRScheduler
    batch: dict
    images: torch.Tensor
    masks: torch.Tensor

    def step_at(self, side: int):
        """One training step at ``side`` px (0 = the cache side), as a zero-argument function to time."""
        from .train import train_step

        rows = torch.arange(self.cfg.batch_size)

        def step():
            train_step(self.learner, self.images, self.masks, rows, self.cfg, side)
            self.scheduler.step()
        return step


def training_rig(cfg, tree, device: torch.device, cache_side: int, steps_per_epoch: int,
                 gen: torch.Generator) -> TrainingRig:
    """The rig of ``cfg`` (its precision already resolved for ``device``) on a random batch from ``gen``."""
    from .losses import make_loss
    from .schedule import LrFactor
    from .train import Learner, build_training_model, make_ema, make_optimizer, to_training_device

    batch = random_cache(cfg.batch_size, cache_side, None, gen)
    net, model = build_training_model(cfg, tree, device, 1)
    optimizer = make_optimizer(cfg, net)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, LrFactor(cfg, steps_per_epoch))
    scaler = torch.amp.GradScaler(device.type, enabled=cfg.precision == "fp16")
    loss_fn = make_loss(tree, cfg.head, cfg.loss_weights.model_dump(), cfg.class_weights, batch["pixel_counts"],
                        cfg.tree_loss.weight, cfg.tree_loss.gamma, cfg.level_weight)
    learner = Learner(model, optimizer, scaler, loss_fn, torch.Generator().manual_seed(cfg.seed), device,
                      ema=make_ema(cfg, net))
    model.train()
    return TrainingRig(cfg, net, learner, scheduler, batch, *to_training_device(batch, device))
