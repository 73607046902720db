"""Calibration: intervals cover at their nominal rate, p-values are uniform (or valid), planners are minimal.

Each statistical assertion states its false-alarm rate; the seeds are fixed. R = 10,000
replicates per interval check (vectorised numpy draws and vectorised intervals).
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy import stats as ss

from meshstat import inference as inf
from meshstat import stats
from tests.conftest import ALPHA

R = 10_000


def _band(count_p: float) -> tuple[float, float]:
    """Central 1 - ALPHA band of Binomial(R, count_p)."""
    return ss.binom.ppf(ALPHA / 2, R, count_p), ss.binom.ppf(1 - ALPHA / 2, R, count_p)


def _exact_coverage(interval, n: int, p: float, cl: float) -> float:  # noqa: ANN001
    k = np.arange(n + 1)
    ci = interval(k, n, cl)
    return float(ss.binom.pmf(k, n, p)[(ci.low <= p) & (p <= ci.high)].sum())


@pytest.mark.parametrize("cl", [0.9, 0.95, 0.99])
@pytest.mark.parametrize(("n", "lo", "hi"), [(1000, 0.2, 0.8), (200, 0.2, 0.8)])
def test_wilson_covers_at_nominal_rate_averaged_over_p(cl: float, n: int, lo: float, hi: float) -> None:
    """True share p ~ U(lo, hi) per replicate: Wilson's coverage then averages to nominal (n p >= 40).

    Its exact average coverage here is within 1.5e-4 of nominal (quadrature over p), far inside the
    +/-3.3 sd band (sd = sqrt(cl (1 - cl) / R)), so the false-alarm rate is about ALPHA.
    """
    rng = np.random.default_rng(int(cl * 1000) + n)
    p = rng.uniform(lo, hi, R)
    k = rng.binomial(n, p)
    ci = stats.wilson_interval(k, n, cl)
    covered = int(((ci.low <= p) & (p <= ci.high)).sum())
    a, b = _band(cl)
    assert a <= covered <= b, (covered / R, cl)


@pytest.mark.parametrize("cl", [0.9, 0.95, 0.99])
@pytest.mark.parametrize(("n", "p"), [(100, 0.3), (400, 0.05), (50, 0.5), (1000, 0.2)])
def test_interval_coverage_at_fixed_share(cl: float, n: int, p: float) -> None:
    """At a fixed share, each interval's simulated coverage matches its exact coverage (sum of the pmf
    over the counts whose interval covers p): false alarm ALPHA per check. Clopper-Pearson is conservative:
    its coverage count is at least the lower ALPHA quantile of Binomial(R, nominal).
    """
    rng = np.random.default_rng(n * 7 + int(p * 100) + int(cl * 1000))
    k = rng.binomial(n, p, R)
    for interval in (stats.wilson_interval, stats.clopper_pearson_interval):
        ci = interval(k, n, cl)
        covered = int(((ci.low <= p) & (p <= ci.high)).sum())
        exact = _exact_coverage(interval, n, p, cl)
        a, b = _band(exact)
        assert a <= covered <= b, (interval.__name__, covered / R, exact)
    cp = stats.clopper_pearson_interval(k, n, cl)
    covered_cp = int(((cp.low <= p) & (p <= cp.high)).sum())
    assert covered_cp >= ss.binom.ppf(ALPHA, R, cl)
    assert _exact_coverage(stats.clopper_pearson_interval, n, p, cl) >= cl - 1e-12
    # Wilson is near nominal for moderate n p, though not exactly (lattice oscillation, measured <= 0.02)
    assert abs(_exact_coverage(stats.wilson_interval, n, p, cl) - cl) < 0.02


@pytest.mark.parametrize("method", ["chisquare", "g-test"])
def test_goodness_of_fit_pvalues_uniform_under_h0(method: str) -> None:
    """2,000 multinomial samples of n = 2,000 at the configured split: KS test against U(0,1), level ALPHA."""
    rng = np.random.default_rng(4242)
    p = np.array([0.5, 0.3, 0.2])
    counts = rng.multinomial(2000, p, size=2000)
    pv = np.array([stats.goodness_of_fit(c, p, method=method).pvalue for c in counts])
    assert ss.kstest(pv, "uniform").pvalue > ALPHA


def test_check_split_chi_square_pvalues_uniform_under_h0() -> None:
    """check_split's large-n path (chi-square) on 1,000 samples of n = 2,000 over 4 backends: KS, level ALPHA."""
    rng = np.random.default_rng(99)
    w = [40, 30, 20, 10]
    counts = rng.multinomial(2000, np.array(w) / 100, size=1000)
    results = [inf.check_split(c.tolist(), w) for c in counts]
    assert {r.method for r in results} == {"chi-square"}
    assert ss.kstest([r.pvalue for r in results], "uniform").pvalue > ALPHA


@pytest.mark.parametrize(("n", "p"), [(10, 0.1), (50, 0.3), (200, 0.05), (333, 0.5)])
@pytest.mark.parametrize("alpha", [0.01, 0.05])
def test_exact_binomial_test_is_valid(n: int, p: float, alpha: float) -> None:
    """Exact size of check_split's binomial test, summed over all outcomes: P(p-value <= alpha) <= alpha."""
    k = np.arange(n + 1)
    pv = np.array([inf.binomial_pvalue(int(x), n, p) for x in k])
    size = float(ss.binom.pmf(k, n, p)[pv <= alpha].sum())
    assert size <= alpha + 1e-12


def test_exact_multinomial_test_is_valid() -> None:
    """Exact size of the exact multinomial test at n = 20 over 3 backends (all 231 outcomes)."""
    w = [5, 3, 2]
    p = np.array(w) / 10
    comps = [c + (20 - sum(c),) for c in itertools.product(range(21), repeat=2) if sum(c) <= 20]
    pv = np.array([inf.check_split(list(c), w).pvalue for c in comps])
    pmf = ss.multinomial.pmf(np.array(comps), 20, p)
    for alpha in (0.01, 0.05, 0.1):
        assert float(pmf[pv <= alpha].sum()) <= alpha + 1e-12


# ------------------------------------------------------------- planners are minimal (exact, scipy in the test)

@pytest.mark.parametrize(
    ("w", "tol", "conf"), [((70, 30), 0.03, 0.95), ((99, 1), 0.005, 0.95), ((2, 1), 0.1, 0.8), ((60, 40), 0.02, 0.99)]
)
def test_tolerance_plan_is_minimal(w: tuple[int, int], tol: float, conf: float) -> None:
    r = inf.plan_tolerance(w, tol, conf)
    from fractions import Fraction

    p = Fraction(w[0], sum(w))
    t = Fraction(str(tol))

    def cov(n: int) -> float:
        a = math.ceil(n * (p - t))
        b = math.floor(n * (p + t))
        return float(ss.binom.cdf(b, n, float(p)) - ss.binom.cdf(a - 1, n, float(p)))

    assert cov(r.n) >= conf > cov(r.n - 1)
    assert all(cov(m) < conf for m in range(max(1, r.n - 200), r.n))


@pytest.mark.parametrize(("p", "prob"), [(0.1, 0.99), (0.05, 0.99), (0.01, 0.99), (0.001, 0.99), (0.2, 0.95)])
def test_min_hits_plan_is_minimal(p: float, prob: float) -> None:
    w = (round((1 - p) * 1000), round(p * 1000))
    r = inf.plan_min_hits(w, 1, prob)

    def exact(n: int) -> float:
        return 1 - ss.binom.pmf(0, n, p) - ss.binom.pmf(n, n, p)

    assert exact(r.n) >= prob > exact(r.n - 1)


@pytest.mark.parametrize(("w", "alt"), [((50, 50), (60, 40)), ((95, 5), (90, 10)), ((80, 20), (70, 30))])
def test_detect_plan_is_minimal(w: tuple[int, int], alt: tuple[int, int]) -> None:
    r = inf.plan_detect(w, alt, 0.8, 0.05)
    p0, p1 = w[0] / sum(w), alt[0] / sum(alt)

    def power(n: int) -> float:
        x = np.arange(n + 1)
        rej = (ss.binom.cdf(x, n, p0) <= 0.025) | (ss.binom.sf(x - 1, n, p0) <= 0.025)
        return float(ss.binom.pmf(x[rej], n, p1).sum())

    assert power(r.n) >= 0.8 > power(r.n - 1)
    assert all(power(m) < 0.8 for m in range(max(1, r.n - 60), r.n))
    assert all(power(m) >= 0.8 for m in range(r.n_sustained, min(r.checked_to, r.n_sustained + 60) + 1))
