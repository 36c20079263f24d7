"""Tests of nnexp.stats against numbers worked out independently.

Every expected value is computed here from the textbook formulas (sample std
with n - 1, Student-t half-width, the Welch statistic and Welch-Satterthwaite
degrees of freedom, Holm's step-down adjustment); only the t distribution's
quantiles and tail probabilities come from closed forms, a table or scipy.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as scipy_stats

from nnexp.stats import ALPHA, holm_adjust, summarize, welch_test
from nnexp.sweep_report import METRICS, RunRow, aggregate

P = 0.975
T_QUANTILES = {
    # Closed forms: df=1 is the Cauchy quantile, df=2 has t = (2p-1)/sqrt(2p(1-p)).
    1: math.tan(math.pi * (P - 0.5)),
    2: (2 * P - 1) / math.sqrt(2 * P * (1 - P)),
    # Tables (e.g. NIST/SEMATECH handbook, to more digits).
    3: 3.182446305284263,
    4: 2.7764451051977987,
}


def hand_summary(values: list[float]) -> tuple[int, float, float, float]:
    n = len(values)
    mean = sum(values) / n
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    return n, mean, std, T_QUANTILES[n - 1] * std / math.sqrt(n)


def hand_welch(a: list[float], b: list[float]) -> tuple[float, float, float]:
    """t, df and two-sided p of Welch's test, from the formulas."""
    na, nb = len(a), len(b)
    ma, mb = sum(a) / na, sum(b) / nb
    va = sum((v - ma) ** 2 for v in a) / (na - 1)
    vb = sum((v - mb) ** 2 for v in b) / (nb - 1)
    se2 = va / na + vb / nb
    t = (ma - mb) / math.sqrt(se2)
    df = se2**2 / ((va / na) ** 2 / (na - 1) + (vb / nb) ** 2 / (nb - 1))
    p = 2 * scipy_stats.t.sf(abs(t), df)
    return t, df, p


def test_t_quantiles_used_here_agree_with_scipy() -> None:
    for df, quantile in T_QUANTILES.items():
        assert scipy_stats.t.ppf(P, df) == pytest.approx(quantile, rel=1e-9)
    assert T_QUANTILES[2] == pytest.approx(4.302652729911275, rel=1e-9)


# --------------------------------------------------------------------------
# summarize
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "values",
    [
        pytest.param([0.80, 0.82, 0.84], id="three-evenly-spaced"),
        pytest.param([0.5, 0.9], id="two-seeds"),
        pytest.param([0.8123, 0.8311, 0.7954, 0.8207], id="four-seeds"),
        pytest.param([0.87, 0.8701, 0.8699, 0.8702, 0.8698], id="five-close-values"),
    ],
)
def test_summarize_matches_hand_formulas(values: list[float]) -> None:
    n, mean, std, ci95 = hand_summary(values)
    summary = summarize(values)
    assert summary.n == n
    assert summary.mean == pytest.approx(mean, rel=1e-12)
    assert summary.std == pytest.approx(std, rel=1e-9)
    assert summary.ci95 == pytest.approx(ci95, rel=1e-9)
    assert summary.low == pytest.approx(mean - ci95, rel=1e-9)
    assert summary.high == pytest.approx(mean + ci95, rel=1e-9)


def test_summarize_worked_example() -> None:
    # mean 0.82, std 0.02, half-width 4.3027 * 0.02 / sqrt(3) = 0.049683...
    summary = summarize([0.80, 0.82, 0.84])
    assert summary.mean == pytest.approx(0.82)
    assert summary.std == pytest.approx(0.02)
    assert summary.ci95 == pytest.approx(0.0496828, abs=1e-7)


def test_summarize_accepts_numpy_arrays() -> None:
    assert summarize(np.array([0.1, 0.3])) == summarize([0.1, 0.3])


@pytest.mark.parametrize(
    "values",
    [
        pytest.param([0.8, math.nan, 0.9], id="nan"),
        pytest.param([0.8, None, 0.9], id="none"),
        pytest.param([math.inf, 0.8, -math.inf, 0.9], id="infinities"),
    ],
)
def test_summarize_drops_missing_and_non_finite_values(values: list) -> None:
    assert summarize(values) == summarize([0.8, 0.9])


@pytest.mark.parametrize(
    "values", [pytest.param([], id="empty"), pytest.param([math.nan], id="all-nan")]
)
def test_summarize_no_values_is_all_nan(values: list) -> None:
    summary = summarize(values)
    assert summary.n == 0
    assert math.isnan(summary.mean)
    assert math.isnan(summary.std)
    assert math.isnan(summary.ci95)


def test_summarize_one_value_has_a_mean_but_no_spread() -> None:
    summary = summarize([0.8])
    assert (summary.n, summary.mean) == (1, 0.8)
    assert math.isnan(summary.std)
    assert math.isnan(summary.ci95)


def test_summarize_zero_variance_has_zero_width() -> None:
    summary = summarize([0.75, 0.75, 0.75])
    assert (summary.n, summary.mean, summary.std, summary.ci95) == (3, 0.75, 0.0, 0.0)


# --------------------------------------------------------------------------
# welch_test
# --------------------------------------------------------------------------


# scipy warns about precision when one side has no spread; the numbers are fine.
@pytest.mark.filterwarnings("ignore:Precision loss:RuntimeWarning")
@pytest.mark.parametrize(
    ("a", "b"),
    [
        pytest.param([0.80, 0.82, 0.84], [0.85, 0.86, 0.88], id="3v3"),
        pytest.param([0.80, 0.81], [0.70, 0.90, 0.75, 0.86], id="2v4-unequal-spread"),
        pytest.param([0.5, 0.6, 0.7, 0.65, 0.55], [0.52, 0.58], id="5v2"),
        pytest.param([0.81, 0.83, 0.82], [0.81, 0.83, 0.82], id="identical-samples"),
        pytest.param([1.0, 1.0, 1.0], [2.0, 3.0, 4.0], id="one-side-no-spread"),
    ],
)
def test_welch_matches_hand_formula(a: list[float], b: list[float]) -> None:
    t, df, p = hand_welch(a, b)
    result = welch_test(a, b)
    assert result.t == pytest.approx(t, rel=1e-9, abs=1e-12)
    assert result.df == pytest.approx(df, rel=1e-9)
    assert result.p == pytest.approx(p, rel=1e-7, abs=1e-12)
    assert result.note == ""


@pytest.mark.filterwarnings("ignore:Precision loss:RuntimeWarning")
def test_welch_one_side_without_spread_has_n_minus_1_df() -> None:
    # a has no spread: df = (vb/nb)^2 / ((vb/nb)^2 / (nb-1)) = nb - 1 = 2,
    # t = (1 - 3) / sqrt(1/3) = -2 sqrt(3).
    result = welch_test([1.0, 1.0, 1.0], [2.0, 3.0, 4.0])
    assert result.df == pytest.approx(2.0)
    assert result.t == pytest.approx(-2 * math.sqrt(3))
    assert result.p == pytest.approx(2 * scipy_stats.t.sf(2 * math.sqrt(3), 2))


def test_welch_is_symmetric() -> None:
    a, b = [0.80, 0.82, 0.84], [0.70, 0.90, 0.75, 0.86]
    forward, backward = welch_test(a, b), welch_test(b, a)
    assert forward.t == pytest.approx(-backward.t)
    assert forward.df == pytest.approx(backward.df)
    assert forward.p == pytest.approx(backward.p)


def test_welch_ignores_non_finite_values() -> None:
    assert welch_test([0.8, math.nan, 0.9, math.inf], [0.7, 0.75]) == welch_test(
        [0.8, 0.9], [0.7, 0.75]
    )


@pytest.mark.parametrize(
    ("a", "b"),
    [
        pytest.param([0.8], [0.7, 0.75], id="one-seed-left"),
        pytest.param([0.8, 0.9], [0.7], id="one-seed-right"),
        pytest.param([], [0.7, 0.75], id="empty"),
        pytest.param([0.8, math.nan], [0.7, 0.75], id="one-finite-value"),
    ],
)
def test_welch_needs_two_values_per_side(a: list[float], b: list[float]) -> None:
    result = welch_test(a, b)
    assert math.isnan(result.t) and math.isnan(result.df) and math.isnan(result.p)
    assert result.note == "needs 2+ seeds per row"


# 0.8 and 0.7 are not exact binary fractions: the mean of [0.8] * 3 is rounded,
# so a naive var() is ~1e-32 rather than 0; 0.75 and 0.5 are exact.
@pytest.mark.parametrize(
    ("a", "b"),
    [
        pytest.param([0.8, 0.8, 0.8], [0.8, 0.8], id="inexact-0.8"),
        pytest.param([0.75, 0.75, 0.75], [0.75, 0.75, 0.75], id="exact-0.75"),
        pytest.param([0.1] * 5, [0.1] * 3, id="inexact-0.1"),
    ],
)
def test_welch_zero_variance_equal_means_is_p_one(
    a: list[float], b: list[float]
) -> None:
    result = welch_test(a, b)
    assert result.p == 1.0
    assert math.isnan(result.t) and math.isnan(result.df)
    assert result.note == "identical values"


@pytest.mark.parametrize(
    ("a", "b"),
    [
        pytest.param([0.8, 0.8, 0.8], [0.7, 0.7], id="inexact"),
        pytest.param([0.75, 0.75], [0.5, 0.5], id="exact"),
    ],
)
def test_welch_zero_variance_different_means_is_p_zero(
    a: list[float], b: list[float]
) -> None:
    result = welch_test(a, b)
    assert result.p == 0.0
    assert math.isnan(result.t) and math.isnan(result.df)
    assert result.note == "no spread; means differ"


# --------------------------------------------------------------------------
# holm_adjust
# --------------------------------------------------------------------------


def _same(actual: list[float], expected: list[float]) -> bool:
    return len(actual) == len(expected) and all(
        (math.isnan(x) and math.isnan(y)) or x == pytest.approx(y, abs=1e-12)
        for x, y in zip(actual, expected, strict=True)
    )


@pytest.mark.parametrize(
    ("p_values", "expected"),
    [
        # sorted 0.01, 0.03, 0.04 -> 3*0.01, 2*0.03, max(0.06, 1*0.04)
        pytest.param([0.01, 0.04, 0.03], [0.03, 0.06, 0.06], id="docstring"),
        # 0.001*4, 0.02*3, 0.03*2 -> max(0.06, 0.06), 0.04*1 -> 0.06
        pytest.param(
            [0.04, 0.001, 0.02, 0.03], [0.06, 0.004, 0.06, 0.06], id="step-down-max"
        ),
        pytest.param([0.01, 0.02, 0.025], [0.03, 0.04, 0.04], id="running-max"),
        pytest.param([0.005, 0.01, 0.5], [0.015, 0.02, 0.5], id="no-carry"),
        pytest.param([0.4, 0.6], [0.8, 0.8], id="capped-by-running-max"),
        pytest.param([0.5, 0.6], [1.0, 1.0], id="capped-at-one"),
        pytest.param([0.03], [0.03], id="single"),
        pytest.param([0.02, 0.02], [0.04, 0.04], id="ties"),
        # NaN entries stay NaN and do not count: m = 2, not 3.
        pytest.param([0.01, math.nan, 0.02], [0.02, math.nan, 0.02], id="nan-middle"),
        pytest.param(
            [math.nan, 0.04, math.nan, 0.01],
            [math.nan, 0.04, math.nan, 0.02],
            id="nan-twice",
        ),
        pytest.param([math.nan, math.nan], [math.nan, math.nan], id="all-nan"),
        pytest.param([], [], id="empty"),
    ],
)
def test_holm_hand_worked(p_values: list[float], expected: list[float]) -> None:
    assert _same(holm_adjust(p_values), expected)


@pytest.mark.parametrize("seed", [pytest.param(s, id=f"rng{s}") for s in range(5)])
def test_holm_is_monotone_bounded_and_never_below_raw(seed: int) -> None:
    rng = np.random.default_rng(seed)
    raw = list(rng.uniform(0, 0.2, size=8) ** 2)
    raw[3] = math.nan
    adjusted = holm_adjust(raw)
    pairs = [(p, q) for p, q in zip(raw, adjusted, strict=True) if not math.isnan(p)]
    assert math.isnan(adjusted[3])
    for p, q in pairs:
        assert p <= q <= 1.0
    # The order of the raw p-values is kept (ties allowed).
    for p1, q1 in pairs:
        for p2, q2 in pairs:
            if p1 <= p2:
                assert q1 <= q2
    # The smallest p is multiplied by the number of tests.
    smallest = min(p for p, _ in pairs)
    assert min(q for _, q in pairs) == pytest.approx(min(1.0, 7 * smallest))


def test_alpha_is_five_percent() -> None:
    assert ALPHA == 0.05


# --------------------------------------------------------------------------
# the verdicts of a sweep (nnexp.sweep_report.aggregate)


def _runs(point: str, values: list[float | None]) -> list[RunRow]:
    """Runs of one grid point; None stands for a diverged seed."""
    return [
        RunRow(
            point=point,
            values={"model.activation": point},
            seed=42 + i,
            status="completed" if v is not None else "diverged",
            metrics={m: (v if v is not None else math.nan) for m in METRICS},
            run_dir=None,
            config_hash=f"{point}{i}",
        )
        for i, v in enumerate(values)
    ]


def _verdicts(groups: dict[str, list[float | None]]) -> list[tuple]:
    runs = [run for point, values in groups.items() for run in _runs(point, values)]
    return [(p.point, p.verdict, p.p_value, p.p_holm) for p in aggregate({}, runs)]


def test_holm_covers_every_pair_of_rows_not_only_those_with_the_best() -> None:
    groups = {
        "a": [0.90, 0.91, 0.92],
        "b": [0.85, 0.86, 0.88],
        "c": [0.50, 0.52, 0.51],
    }
    rows = _verdicts(groups)
    assert [r[0] for r in rows] == ["a", "b", "c"]
    # Three pairs: a-b, a-c, b-c; Holm multiplies the smallest p by 3, the
    # next by 2 (never below the one before), the largest by 1.
    raw = {
        pair: hand_welch(groups[pair[0]], groups[pair[1]])[2]
        for pair in (("a", "b"), ("a", "c"), ("b", "c"))
    }
    ordered = sorted(raw, key=raw.get)
    adjusted, running = {}, 0.0
    for rank, pair in enumerate(ordered):
        running = max(running, min(1.0, (3 - rank) * raw[pair]))
        adjusted[pair] = running
    assert rows[0][1] == "best" and math.isnan(rows[0][2])
    for name, verdict, p, p_holm in rows[1:]:
        assert p == pytest.approx(raw[("a", name)], rel=1e-9)
        assert p_holm == pytest.approx(adjusted[("a", name)], rel=1e-9)
        assert verdict == ("worse" if p_holm < 0.05 else "tied with best")


def test_a_row_left_with_one_lucky_seed_is_not_the_best() -> None:
    rows = _verdicts(
        {
            "lucky": [0.90, None, None],
            "steady": [0.88, 0.87, 0.88],
            "poor": [0.51, 0.50, 0.52],
        }
    )
    assert [(r[0], r[1]) for r in rows] == [
        ("steady", "best"),
        ("poor", "worse"),
        ("lucky", "no test (1 seed)"),
    ]


def test_equal_values_have_exactly_zero_spread() -> None:
    summary = summarize([0.8, 0.8, 0.8])
    assert (summary.mean, summary.std, summary.ci95) == (0.8, 0.0, 0.0)


def test_all_pairs_holm_keeps_false_alarms_at_five_percent_when_rows_are_equal() -> (
    None
):
    # 10 truly equal rows x 5 seeds, 400 simulated sweeps: Holm over only the
    # comparisons with the (selected) best calls some row worse about 9% of
    # the time; over all pairs it stays at or below 5%.
    rng = np.random.default_rng(0)
    alarms = 0
    for _ in range(400):
        groups = {f"r{i}": list(rng.normal(0.85, 0.005, size=5)) for i in range(10)}
        if any(r[1] == "worse" for r in _verdicts(groups)):
            alarms += 1
    assert alarms / 400 <= 0.05
