"""The one timing loop the benchmark scripts share."""
from __future__ import annotations

import time


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
