"""Mean, sd and paired 95 % intervals over seeds, against numbers worked out by hand."""
import math

import pytest

from hseg.summary import describe, paired_difference, summarize, t975


def t_cdf(x: float, df: int, steps: int = 200_000) -> float:
    """P(T <= x) for Student's t, by integrating its density (midpoint rule) from 0 to x."""
    c = math.gamma((df + 1) / 2) / (math.sqrt(df * math.pi) * math.gamma(df / 2))
    h = x / steps
    area = sum(c * (1 + ((i + 0.5) * h) ** 2 / df) ** (-(df + 1) / 2) for i in range(steps)) * h
    return 0.5 + area


@pytest.mark.parametrize("df", [1, 2, 3, 5, 10, 30, 31, 60])
def test_t_quantiles_are_the_975_point_of_the_distribution(df):
    assert t_cdf(t975(df), df) == pytest.approx(0.975, abs=2e-5)


def test_describe_by_hand():
    # 0.2, 0.3, 0.4: mean 0.3, squared deviations 0.01 + 0 + 0.01 over n - 1 = 2 -> sd 0.1
    stats = describe([0.2, 0.3, 0.4])
    assert stats["mean"] == pytest.approx(0.3) and stats["sd"] == pytest.approx(0.1) and stats["n"] == 3
    assert describe([0.25]) == {"mean": 0.25, "sd": None, "n": 1}


def test_paired_difference_by_hand():
    # differences 0.03, 0.01, 0.02: mean 0.02, sd 0.01, half-width 4.3027 * 0.01 / sqrt(3) = 0.024842
    d = paired_difference([0.33, 0.31, 0.32], [0.30, 0.30, 0.30])
    assert d["mean"] == pytest.approx(0.02) and d["sd"] == pytest.approx(0.01)
    assert d["ci95"] == pytest.approx([0.02 - 0.0248417, 0.02 + 0.0248417], abs=1e-6)
    assert not d["resolved"]                                   # the interval contains 0: a tie
    # differences 0.05, 0.06, 0.04: mean 0.05, sd 0.01 -> [0.025158, 0.074842], resolved
    d = paired_difference([0.35, 0.36, 0.34], [0.30, 0.30, 0.30])
    assert d["ci95"] == pytest.approx([0.0251583, 0.0748417], abs=1e-6) and d["resolved"]
    # a resolved difference in the other direction
    assert paired_difference([0.30, 0.30, 0.30], [0.35, 0.36, 0.34])["resolved"]
    one = paired_difference([0.4], [0.3])
    assert one["ci95"] is None and not one["resolved"] and one["mean"] == pytest.approx(0.1)


def run(m0, m1, body, head):
    return {"miou0": m0, "miou1": m1, "iou0": {"bg": 0.9, "body": body}, "iou1": {"bg": 0.9, "head": head}}


def test_summarize_pairs_runs_by_seed_and_leaves_out_missing_ious():
    scores = {"a": {1: run(0.5, 0.30, 0.5, 0.30), 2: run(0.6, 0.32, 0.6, 0.32)},
              "b": {2: run(0.4, 0.20, 0.4, None), 1: run(0.3, 0.22, 0.3, 0.22)}}
    summary = summarize(scores, [1, 2])
    a, b = summary["variants"]["a"], summary["variants"]["b"]
    assert a["miou0"]["values"] == [0.5, 0.6] and b["miou0"]["values"] == [0.3, 0.4]  # in seed order
    assert a["miou0"]["mean"] == pytest.approx(0.55) and a["miou0"]["sd"] == pytest.approx(math.sqrt(0.005))
    assert b["iou1"]["head"] == {"mean": 0.22, "sd": None, "n": 1}          # the run without it is left out
    d = summary["differences"]["a - b"]["miou1"]
    # seed 1: 0.30 - 0.22 = 0.08, seed 2: 0.32 - 0.20 = 0.12: mean 0.10, sd 0.028284
    assert d["mean"] == pytest.approx(0.10) and d["sd"] == pytest.approx(0.0282843, abs=1e-7) and d["seeds"] == [1, 2]
    half = 12.7062 * 0.0282843 / math.sqrt(2)
    assert d["ci95"] == pytest.approx([0.10 - half, 0.10 + half], abs=1e-6) and not d["resolved"]


def test_summarize_carries_each_seeds_epochs_in_seed_order():
    """The evaluate stage records the epochs a run trained; the summary keeps them per variant, in the
    order of its seeds, and None for a metrics file from before they were recorded."""
    scores = {"a": {2: {**run(0.6, 0.32, 0.6, 0.32), "epochs": 12}, 1: {**run(0.5, 0.30, 0.5, 0.30), "epochs": 8}},
              "b": {1: run(0.3, 0.22, 0.3, 0.22), 2: {**run(0.4, 0.20, 0.4, 0.20), "epochs": 8}}}
    variants = summarize(scores, [1, 2])["variants"]
    assert variants["a"]["seeds"] == [1, 2] and variants["a"]["epochs"] == [8, 12]
    assert variants["b"]["epochs"] == [None, 8]
