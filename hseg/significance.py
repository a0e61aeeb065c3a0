"""How many of the report's paired differences survive a multiple-comparison correction.

The summary's 95 % intervals are one test each; the report prints 18 of them for 4 variants (6 pairs x
3 levels), so about one tie in 20 would look resolved by chance. Holm's step-down keeps the family-wise
error at alpha over all of them. It needs each difference's two-sided p-value, so this module carries
Student's t distribution (no scipy in the requirements): the regularized incomplete beta function by
its continued fraction (Numerical Recipes, 3rd ed., section 6.4, modified Lentz's method).
"""
from __future__ import annotations

import math

_TINY = 1e-300   # keeps Lentz's method off a zero denominator


def _beta_fraction(a: float, b: float, x: float) -> float:
    """The continued fraction of I_x(a, b), which converges fast for x < (a + 1) / (a + b + 2)."""
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1)
    d = 1.0 / (d if abs(d) > _TINY else _TINY)
    h = d
    for m in range(1, 1000):
        for numerator in (m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
                          -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))):
            d = 1.0 + numerator * d
            d = 1.0 / (d if abs(d) > _TINY else _TINY)
            c = 1.0 + numerator / c
            c = c if abs(c) > _TINY else _TINY
            h *= d * c
        if abs(d * c - 1.0) < 1e-15:
            return h
    raise ArithmeticError(f"incomplete beta I_{x}({a}, {b}): continued fraction did not converge")


def incomplete_beta(a: float, b: float, x: float) -> float:
    """The regularized incomplete beta function I_x(a, b) for a, b > 0 and 0 <= x <= 1."""
    if not 0.0 <= x <= 1.0:
        raise ValueError(f"x = {x}: must lie in [0, 1]")
    if x in (0.0, 1.0):
        return x
    log_front = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    if x < (a + 1) / (a + b + 2):
        return math.exp(log_front) * _beta_fraction(a, b, x) / a
    return 1.0 - math.exp(log_front) * _beta_fraction(b, a, 1.0 - x) / b   # the symmetry I_x(a,b) = 1 - I_1-x(b,a)


def t_two_sided_p(t: float, df: float) -> float:
    """P(|T| >= |t|) for Student's T with ``df`` degrees of freedom: I_{df/(df+t^2)}(df/2, 1/2)."""
    if df <= 0:
        raise ValueError(f"df = {df}: needs a positive number of degrees of freedom")
    if math.isinf(t):
        return 0.0
    return incomplete_beta(df / 2, 0.5, df / (df + t * t))


def paired_p(difference: dict) -> float | None:
    """The two-sided p-value of the paired t test behind a summary difference ({"mean", "sd", "n"});
    None with fewer than two seeds, where the summary has no interval either."""
    n, mean, sd = difference["n"], difference["mean"], difference["sd"]
    if n < 2 or sd is None:
        return None
    if sd == 0:   # every seed moved by the same amount: certain unless that amount is 0
        return 1.0 if mean == 0 else 0.0
    return t_two_sided_p(mean / (sd / math.sqrt(n)), n - 1)


def holm(p_values: list[float], alpha: float = 0.05) -> list[bool]:
    """Holm's step-down: which hypotheses are rejected, family-wise error at most ``alpha``.

    The i-th smallest p-value (i from 0) is compared with alpha / (m - i), smallest first; the first
    that fails stops the procedure, and it and every larger p-value are kept."""
    order = sorted(range(len(p_values)), key=lambda i: p_values[i])
    rejected = [False] * len(p_values)
    for rank, i in enumerate(order):
        if p_values[i] > alpha / (len(p_values) - rank):
            break
        rejected[i] = True
    return rejected
