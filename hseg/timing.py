"""What the timing code shares (benchmarks/, `python -m hseg plan`): one round-robin timer, and caches in
prepare's format filled with random pixels and labels, of any split's shape: the arithmetic per image of
the real data, without the data (a lent GPU machine cannot carry it)."""
from __future__ import annotations

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
