"""The report's statistics against published examples and values worked out by hand."""

from __future__ import annotations

import math

import pytest

from gateway.experiments import stats as st


def test_wilson_interval_matches_newcombe() -> None:
    # Newcombe (1998), "Two-sided confidence intervals for the single proportion", 81/263:
    # Wilson score interval 0.2553 to 0.3662.
    low, high = st.wilson(81, 263)
    assert (round(low, 4), round(high, 4)) == (0.2553, 0.3662)
    assert st.wilson(0, 10)[0] == pytest.approx(0.0, abs=1e-12)
    assert st.wilson(10, 10)[1] == pytest.approx(1.0)


def test_difference_of_proportions_matches_newcombe_method_10() -> None:
    # Newcombe (1998), "Interval estimation for the difference between independent
    # proportions", example 56/70 − 48/80: hybrid score interval (method 10) +0.0524 to +0.3339.
    d = st.two_proportions(56, 70, 48, 80)
    assert d.diff == pytest.approx(0.2)
    assert (round(d.low, 4), round(d.high, 4)) == (0.0524, 0.3339)
    # Pooled z by hand: p = 104/150, se = sqrt(p(1-p)(1/70 + 1/80)) = 0.075467, z = 2.6502.
    assert d.p_value == pytest.approx(2 * (1 - st.NormalDist().cdf(0.2 / 0.075467)), rel=1e-4)
    assert d.p_value == pytest.approx(0.00805, abs=1e-5)


def test_equal_proportions() -> None:
    d = st.two_proportions(0, 20, 0, 30)
    assert d.diff == 0 and d.p_value == 1.0 and d.needed_per_arm is None
    assert d.low < 0 < d.high


def test_student_t_against_tables_and_closed_forms() -> None:
    # Two-sided 95% critical values from any t table.
    assert st.t_quantile(0.975, 1) == pytest.approx(12.7062, abs=1e-4)
    assert st.t_quantile(0.975, 4) == pytest.approx(2.7764, abs=1e-4)
    assert st.t_quantile(0.975, 10) == pytest.approx(2.2281, abs=1e-4)
    assert st.t_quantile(0.975, 1e6) == pytest.approx(st.Z_ALPHA, abs=1e-4)
    # df = 1 is Cauchy: P(|T| > 1) = 1/2; df = 2: P(|T| > t) = 1 − t / sqrt(2 + t²).
    assert st.t_two_sided_p(1.0, 1) == pytest.approx(0.5)
    assert st.t_two_sided_p(2.0, 2) == pytest.approx(1 - 2 / math.sqrt(6))
    assert st.t_two_sided_p(0.0, 7) == pytest.approx(1.0)


def test_welch_by_hand() -> None:
    # [1..5] against [2, 4, .., 10]: means 3 and 6, variances 2.5 and 10; se² = 0.5 + 2;
    # df = 2.5² / (0.5²/4 + 2²/4) = 5.8824; t = −3 / sqrt(2.5) = −1.8974
    # (R's t.test gives t = −1.8974, df = 5.8824, p = 0.1075, CI −6.8877 to 0.8877).
    d = st.welch([1, 2, 3, 4, 5], [2, 4, 6, 8, 10])
    assert d is not None
    assert d.diff == -3.0
    assert d.p_value == pytest.approx(st.t_two_sided_p(3 / math.sqrt(2.5), 6.25 / 1.0625))
    assert d.p_value == pytest.approx(0.1075, abs=1e-4)
    assert (round(d.low, 3), round(d.high, 3)) == (-6.888, 0.888)
    # Per arm: (1.96 + 0.8416)² · (2.5 + 10) / 3² = 10.9 → 11.
    assert d.needed_per_arm == 11
    assert st.welch([1.0], [1.0, 2.0]) is None
    same = st.welch([1.0, 1.0], [0.5, 0.5])
    assert same is not None and (same.low, same.high, same.p_value) == (0.5, 0.5, 0.0)


def test_sample_sizes_by_hand() -> None:
    # 0.50 against 0.55: (1.96·sqrt(2·0.525·0.475) + 0.8416·sqrt(0.25 + 0.2475))² / 0.05²
    # = 1564.7 → 1565 per arm (Fleiss, no continuity correction).
    assert st.proportions_size(0.55, 0.50) == 1565
    assert st.proportions_size(0.3, 0.3) is None
    # Win share 0.6 against 0.5: ((1.96·0.5 + 0.8416·sqrt(0.24)) / 0.1)² = 193.9 → 194.
    assert st.win_share_size(60, 40) == 194
    assert st.win_share_size(40, 60) == 194
    assert st.win_share_size(5, 5) is None and st.win_share_size(0, 0) is None
