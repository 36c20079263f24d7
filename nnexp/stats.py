"""Aggregating seeds and testing differences between grid points.

For each metric of a grid point: the mean over its successful seeds, the
sample standard deviation (n - 1 in the denominator) and the half-width of the
95% confidence interval of the mean, ``t(0.975, n - 1) * std / sqrt(n)``
(Student t, because a handful of seeds is far from the normal limit).

Each grid point is compared with the best one by a two-sided Welch t-test
(unequal variances). The best row was picked *because* it scored highest on
these same runs, so correcting only for the comparisons with it is not enough:
the family is every pair of rows, and the verdict uses Holm-adjusted p-values
over all of those pairs, which keeps the chance of calling any row worse when
all are in truth equal at 5% or less (Holm holds under any dependence between
the tests, and the pairs with the best row are among the pairs corrected for).
A row is "tied with best" unless its adjusted p is below 0.05. Raw p-values
are reported too.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

ALPHA = 0.05


@dataclass(frozen=True)
class Summary:
    """Mean, spread and confidence interval of one metric over seeds."""

    n: int
    mean: float
    std: float
    ci95: float  # half-width of the 95% confidence interval of the mean

    @property
    def low(self) -> float:
        return self.mean - self.ci95

    @property
    def high(self) -> float:
        return self.mean + self.ci95


def summarize(values: list[float] | np.ndarray) -> Summary:
    """Mean, sample std and 95% CI half-width; NaN where undefined.

    >>> summarize([0.80, 0.82, 0.84]).ci95  # doctest: +ELLIPSIS
    0.0496...
    """
    from scipy import stats

    data = np.asarray([v for v in values if v is not None and math.isfinite(v)], float)
    n = len(data)
    if n == 0:
        return Summary(0, math.nan, math.nan, math.nan)
    mean = float(data.mean())
    if n == 1:
        return Summary(1, mean, math.nan, math.nan)
    if np.ptp(data) == 0:
        # Equal values: say so exactly, not with the 1e-16 that rounding in
        # the mean leaves behind.
        return Summary(n, float(data[0]), 0.0, 0.0)
    std = float(data.std(ddof=1))
    ci95 = float(stats.t.ppf(0.975, n - 1) * std / math.sqrt(n))
    return Summary(n, mean, std, ci95)


@dataclass(frozen=True)
class Comparison:
    """A Welch t-test of one row against the best row."""

    t: float
    df: float
    p: float
    note: str = ""


def welch_test(a: list[float], b: list[float]) -> Comparison:
    """Two-sided Welch t-test of mean(a) != mean(b).

    Returns NaN statistics with a note when no test is possible: fewer than two
    values on a side, or no spread at all on both sides.
    """
    from scipy import stats

    x = np.asarray([v for v in a if math.isfinite(v)], float)
    y = np.asarray([v for v in b if math.isfinite(v)], float)
    if len(x) < 2 or len(y) < 2:
        return Comparison(math.nan, math.nan, math.nan, "needs 2+ seeds per row")
    vx, vy = x.var(ddof=1) / len(x), y.var(ddof=1) / len(y)
    # No spread is tested on the values, not on var(): the mean of equal values
    # is rounded (mean([0.8] * 3) != 0.8), leaving a variance of ~1e-32 that
    # would turn identical rows into a huge t statistic.
    if np.ptp(x) == 0 and np.ptp(y) == 0:
        same = bool(x[0] == y[0])
        return Comparison(
            math.nan,
            math.nan,
            1.0 if same else 0.0,
            "identical values" if same else "no spread; means differ",
        )
    # From the formulas rather than scipy's ttest_ind: the same numbers, a
    # tenth of the time (a sweep tests every pair of rows), and no precision
    # warning when one side has no spread and the means are equal.
    t = float((x.mean() - y.mean()) / math.sqrt(vx + vy))
    df = float((vx + vy) ** 2 / (vx**2 / (len(x) - 1) + vy**2 / (len(y) - 1)))
    return Comparison(t, df, float(2 * stats.t.sf(abs(t), df)))


def holm_adjust(p_values: list[float]) -> list[float]:
    """Holm step-down adjusted p-values (NaN entries stay NaN and don't count).

    >>> holm_adjust([0.01, 0.04, 0.03])
    [0.03, 0.06, 0.06]
    """
    indexed = [(p, i) for i, p in enumerate(p_values) if not math.isnan(p)]
    indexed.sort()
    m = len(indexed)
    adjusted = [math.nan] * len(p_values)
    running = 0.0
    for rank, (p, i) in enumerate(indexed):
        running = max(running, min(1.0, (m - rank) * p))
        adjusted[i] = round(running, 12)
    return adjusted
