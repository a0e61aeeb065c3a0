"""Seeds as evidence: mean, standard deviation and paired differences over a study's seeds.

Every variant trains once per seed in ``study.seeds``, so two variants' runs pair up by seed
(same data order, same augmentation draws). For each level k the summary holds, per variant,
the mean, sample standard deviation (n - 1) and n of mIoU^k over seeds, and, per pair of
variants, the mean paired difference d = A - B with a 95 % Student-t interval
mean(d) +- t(0.975, n - 1) * sd(d) / sqrt(n). A difference is *resolved* when that interval
excludes 0; with one seed nothing is resolved.
"""
from __future__ import annotations

import itertools
import math

from .layout import run_name
from .metrics import levels_in

# Student t 0.975 quantiles for 1..30 degrees of freedom (two-sided 95 %); tests check them
# against the distribution's defining integral.
T975 = (12.7062, 4.3027, 3.1824, 2.7764, 2.5706, 2.4469, 2.3646, 2.3060, 2.2622, 2.2281,
        2.2010, 2.1788, 2.1604, 2.1448, 2.1314, 2.1199, 2.1098, 2.1009, 2.0930, 2.0860,
        2.0796, 2.0739, 2.0687, 2.0639, 2.0595, 2.0555, 2.0518, 2.0484, 2.0452, 2.0423)


def t975(df: int) -> float:
    """The 0.975 quantile of Student's t with ``df`` degrees of freedom (beyond 30: the
    Cornish-Fisher expansion around the normal quantile, within 1e-4 there)."""
    if df < 1:
        raise ValueError(f"df = {df}: needs at least 1 degree of freedom")
    if df <= len(T975):
        return T975[df - 1]
    z = 1.959964
    return z + (z ** 3 + z) / (4 * df) + (5 * z ** 5 + 16 * z ** 3 + 3 * z) / (96 * df ** 2)


def describe(values: list[float]) -> dict:
    """{"mean", "sd" (n - 1; None for one value), "n"}."""
    n = len(values)
    mean = sum(values) / n
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else None
    return {"mean": mean, "sd": sd, "n": n}


def paired_difference(a: list[float], b: list[float]) -> dict:
    """describe(a - b) plus the 95 % t interval ``ci95`` and whether it excludes 0 (``resolved``)."""
    stats = describe([x - y for x, y in zip(a, b, strict=True)])
    if stats["n"] < 2:
        return {**stats, "ci95": None, "resolved": False}
    half = t975(stats["n"] - 1) * stats["sd"] / math.sqrt(stats["n"])
    low, high = stats["mean"] - half, stats["mean"] + half
    return {**stats, "ci95": [low, high], "resolved": low > 0 or high < 0}


def summarize(scores: dict[str, dict[int, dict]], seeds: list[int]) -> dict:
    """``scores[variant][seed]`` = that run's metrics JSON (keys miou0..miouK, iou0..iouK, epochs).

    Returns the summary written to metrics/summary.json: per variant the epochs each seed trained
    (None for a metrics file from before they were recorded), per variant and level the stats of mIoU
    and of each class's IoU (classes without an IoU in some run are left out of that run), the
    per-seed mIoU values, and the paired differences between every two variants at each level."""
    first = next(iter(next(iter(scores.values())).values()))
    levels = levels_in(first)
    summary = {"seeds": seeds, "variants": {}, "differences": {},
               "trained_on": {run_name(v, s): (run.get("machine") or {}).get("train") for v, runs in scores.items()
                              for s, run in runs.items()}}
    for variant, runs in scores.items():
        entry = {"seeds": [s for s in seeds if s in runs]}
        entry["epochs"] = [runs[s].get("epochs") for s in entry["seeds"]]
        for k in levels:
            values = [runs[s][f"miou{k}"] for s in entry["seeds"]]
            entry[f"miou{k}"] = {**describe(values), "values": values}
            classes = runs[entry["seeds"][0]].get(f"iou{k}", {})
            entry[f"iou{k}"] = {c: describe(vals) for c in classes
                                if (vals := [runs[s][f"iou{k}"][c] for s in entry["seeds"]
                                             if runs[s][f"iou{k}"].get(c) is not None])}
        summary["variants"][variant] = entry
    for a, b in itertools.combinations(scores, 2):
        shared = [s for s in seeds if s in scores[a] and s in scores[b]]
        summary["differences"][f"{a} - {b}"] = {
            f"miou{k}": {**paired_difference([scores[a][s][f"miou{k}"] for s in shared],
                                             [scores[b][s][f"miou{k}"] for s in shared]), "seeds": shared}
            for k in levels}
    return summary
