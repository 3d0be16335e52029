"""Intervals, tests and sample sizes for the experiment report (standard library only).

Two-sided, ``ALPHA`` = 0.05, ``POWER`` = 0.8 throughout; every difference is
treatment − control.

- proportions (CTR@k, abandonment): Newcombe's hybrid score interval for the
  difference (method 10 of Newcombe 1998, built from the two Wilson intervals), the
  pooled two-proportion z-test, and the per-arm sample size of Fleiss (without
  continuity correction) for the observed rates;
- means (MRR, the mean of per-search reciprocal ranks): Welch's t-interval and
  t-test (Welch–Satterthwaite degrees of freedom; Student's t from the regularised
  incomplete beta function), and the per-arm size ``(z₁₋α/₂ + z₁₋β)² (s₁² + s₀²) / δ²``;
- a win share against 1/2 (interleaving): the size of a one-sample proportion test.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

ALPHA = 0.05
POWER = 0.8
_NORMAL = NormalDist()
Z_ALPHA = _NORMAL.inv_cdf(1 - ALPHA / 2)  # 1.959964…
Z_POWER = _NORMAL.inv_cdf(POWER)  # 0.841621…


@dataclass(frozen=True, slots=True)
class Difference:
    """Treatment − control of one metric: estimate, 95% interval, p-value, per-arm size."""

    control: float
    treatment: float
    diff: float
    low: float
    high: float
    p_value: float
    needed_per_arm: int | None  # None: no difference observed (no size would detect it)


def wilson(successes: int, n: int, z: float = Z_ALPHA) -> tuple[float, float]:
    """Wilson score interval of a proportion."""
    if n <= 0:
        return 0.0, 1.0
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(centre - half, 0.0), min(centre + half, 1.0)


def two_proportions(x1: int, n1: int, x0: int, n0: int) -> Difference:
    """Treatment ``x1/n1`` against control ``x0/n0`` (both ``n`` ≥ 1)."""
    p1, p0 = x1 / n1, x0 / n0
    diff = p1 - p0
    l1, u1 = wilson(x1, n1)
    l0, u0 = wilson(x0, n0)
    low = diff - math.sqrt((p1 - l1) ** 2 + (u0 - p0) ** 2)
    high = diff + math.sqrt((u1 - p1) ** 2 + (p0 - l0) ** 2)
    pooled = (x1 + x0) / (n1 + n0)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n0))
    p_value = 1.0 if se == 0 else 2 * (1 - _NORMAL.cdf(abs(diff) / se))
    return Difference(p0, p1, diff, low, high, p_value, proportions_size(p1, p0))


def proportions_size(p1: float, p0: float) -> int | None:
    """Searches per arm for a two-proportion z-test to detect ``p1`` against ``p0``."""
    if p1 == p0:
        return None
    mean = (p1 + p0) / 2
    root = Z_ALPHA * math.sqrt(2 * mean * (1 - mean)) + Z_POWER * math.sqrt(
        p1 * (1 - p1) + p0 * (1 - p0)
    )
    return math.ceil(root**2 / (p1 - p0) ** 2)


def _mean_var(values: list[float]) -> tuple[float, float]:
    n = len(values)
    mean = sum(values) / n
    return mean, sum((v - mean) ** 2 for v in values) / (n - 1)


def welch(treatment: list[float], control: list[float]) -> Difference | None:
    """Welch's interval and test for the difference of means (None below 2 values an arm)."""
    n1, n0 = len(treatment), len(control)
    if n1 < 2 or n0 < 2:
        return None
    m1, v1 = _mean_var(treatment)
    m0, v0 = _mean_var(control)
    diff = m1 - m0
    se2 = v1 / n1 + v0 / n0
    needed = None if diff == 0 else math.ceil((Z_ALPHA + Z_POWER) ** 2 * (v1 + v0) / diff**2)
    if se2 == 0:  # both arms constant: the difference is exact
        return Difference(m0, m1, diff, diff, diff, 1.0 if diff == 0 else 0.0, needed)
    df = se2**2 / ((v1 / n1) ** 2 / (n1 - 1) + (v0 / n0) ** 2 / (n0 - 1))
    se = math.sqrt(se2)
    half = t_quantile(1 - ALPHA / 2, df) * se
    p_value = t_two_sided_p(diff / se, df)
    return Difference(m0, m1, diff, diff - half, diff + half, p_value, needed)


def win_share_size(wins: int, losses: int) -> int | None:
    """Decisive (non-tie) searches for a test of the observed win share against 1/2."""
    n = wins + losses
    if n == 0 or 2 * wins == n:
        return None
    p = wins / n
    return math.ceil(((Z_ALPHA * 0.5 + Z_POWER * math.sqrt(p * (1 - p))) / (p - 0.5)) ** 2)


def t_two_sided_p(t: float, df: float) -> float:
    """P(|T| ≥ |t|) for Student's t with ``df`` degrees of freedom."""
    return betainc(df / 2, 0.5, df / (df + t * t))


def t_quantile(q: float, df: float) -> float:
    """The ``q`` quantile (``q`` in (1/2, 1)) of Student's t, by bisection on the tail."""
    tail = 2 * (1 - q)
    lo, hi = 0.0, 1.0
    while t_two_sided_p(hi, df) > tail:
        hi *= 2
    for _ in range(100):
        mid = (lo + hi) / 2
        if t_two_sided_p(mid, df) > tail:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def betainc(a: float, b: float, x: float) -> float:
    """The regularised incomplete beta function I_x(a, b) (continued fraction, Lentz)."""
    if x <= 0:
        return 0.0
    if x >= 1:
        return 1.0
    log_front = (
        math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    )
    if x < (a + 1) / (a + b + 2):
        return math.exp(log_front) * _beta_fraction(a, b, x) / a
    return 1 - math.exp(log_front) * _beta_fraction(b, a, 1 - x) / b


def _beta_fraction(a: float, b: float, x: float) -> float:
    tiny = 1e-300

    def guard(v: float) -> float:
        return v if abs(v) > tiny else tiny

    c, d = 1.0, 1 / guard(1 - (a + b) * x / (a + 1))
    h = d
    for m in range(1, 500):
        even = m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m))
        d = 1 / guard(1 + even * d)
        c = guard(1 + even / c)
        h *= d * c
        odd = -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))
        d = 1 / guard(1 + odd * d)
        c = guard(1 + odd / c)
        h *= d * c
        if abs(d * c - 1) < 1e-15:
            break
    return h
