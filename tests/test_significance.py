"""hseg.significance: Student's t distribution against closed forms and the summary's quantile table, and
Holm's step-down against a hand-worked example."""
import math

import pytest

from hseg.significance import holm, incomplete_beta, paired_p, t_two_sided_p
from hseg.summary import T975, t975

T_VALUES = [-250.0, -12.7, -3.0, -1.0, -0.3, 0.0, 0.1, 0.8, 2.5, 4.3027, 40.0, 1e4]


@pytest.mark.parametrize("t", T_VALUES)
def test_two_sided_p_with_one_degree_of_freedom_is_the_cauchy_distributions(t):
    """P(|T| >= |t|) = 2 (1 - F(|t|)), F(t) = 1/2 + atan(t) / pi."""
    assert t_two_sided_p(t, 1) == pytest.approx(1 - 2 * math.atan(abs(t)) / math.pi, abs=2e-13)


@pytest.mark.parametrize("t", T_VALUES)
def test_two_sided_p_with_two_degrees_of_freedom_has_its_closed_form(t):
    """F(t) = 1/2 + t / (2 sqrt(2 + t^2)), so P(|T| >= |t|) = 1 - |t| / sqrt(2 + t^2)."""
    assert t_two_sided_p(t, 2) == pytest.approx(1 - abs(t) / math.sqrt(2 + t * t), abs=2e-13)


def t_density(t: float, df: int) -> float:
    return math.exp(math.lgamma((df + 1) / 2) - math.lgamma(df / 2)) / math.sqrt(df * math.pi) \
        * (1 + t * t / df) ** (-(df + 1) / 2)


@pytest.mark.parametrize("df", range(1, len(T975) + 1))
def test_the_summary_quantile_table_is_the_0975_point(df):
    """T975 holds 4 decimals: F(t975) may miss 0.975 by the density there times half a unit in the last place,
    and the two-sided p = 2 (1 - F) twice that."""
    tolerance = t_density(t975(df), df) * 0.5e-4 + 1e-12
    assert abs(t_two_sided_p(t975(df), df) - 0.05) <= 2 * tolerance


def test_incomplete_beta_edges_and_a_closed_form():
    # I_x(a, 1) = x^a, I_x(1, b) = 1 - (1 - x)^b; both branches of the continued fraction (x below and above
    # (a + 1) / (a + b + 2)) are reached
    for x in (0.01, 0.3, 0.7, 0.99):
        assert incomplete_beta(2.5, 1, x) == pytest.approx(x ** 2.5, rel=1e-12)
        assert incomplete_beta(1, 3.5, x) == pytest.approx(1 - (1 - x) ** 3.5, rel=1e-12)
    assert incomplete_beta(2, 3, 0.0) == 0.0 and incomplete_beta(2, 3, 1.0) == 1.0
    with pytest.raises(ValueError):
        incomplete_beta(2, 3, 1.5)


def test_paired_p_is_the_t_test_of_the_seed_differences():
    # differences 0.10, 0.11, 0.12: t = 0.11 / (0.01 / sqrt 3), df 2, two-sided p = 1 - t / sqrt(2 + t^2)
    t = 0.11 / (0.01 / math.sqrt(3))
    assert paired_p({"mean": 0.11, "sd": 0.01, "n": 3}) == pytest.approx(1 - t / math.sqrt(2 + t * t), rel=1e-10)
    assert paired_p({"mean": 0.11, "sd": None, "n": 1}) is None           # one seed: no test
    assert paired_p({"mean": 0.02, "sd": 0.0, "n": 3}) == 0.0             # every seed moved alike
    assert paired_p({"mean": 0.0, "sd": 0.0, "n": 3}) == 1.0


def test_holm_on_a_hand_worked_example():
    # sorted: 0.005 <= 0.05/4 = 0.0125 rejected; 0.01 <= 0.05/3 = 0.0167 rejected; 0.03 > 0.05/2 = 0.025 stops,
    # so 0.03 and 0.04 are kept although both are below 0.05
    assert holm([0.01, 0.04, 0.03, 0.005], alpha=0.05) == [True, False, False, True]
    # a larger alpha: every step passes
    assert holm([0.01, 0.04, 0.03, 0.005], alpha=0.07) == [True, True, True, True]   # 0.0175, 0.0233, 0.035, 0.07
    assert holm([0.2, 0.001], alpha=0.05) == [False, True] and holm([]) == []
