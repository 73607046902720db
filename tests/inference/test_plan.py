"""Planners: exact first n (every smaller n fails), sustained n, approximations, timing, errors.

Expected values are computed here with scipy.stats, independently of meshstat.inference.
"""

from __future__ import annotations

import itertools
import math
import time

import numpy as np
import pytest
from scipy import stats as ss

from meshstat import inference as inf
from meshstat.report import inference as rep
from meshstat.stats import distributions
from meshstat.errors import InvalidArgument


def _tol_coverage(ns: np.ndarray, p: float, tol: float) -> np.ndarray:
    """P(|X/n - p| <= tol), boundaries with a 1e-9 slack for float rounding (exact for these decimals)."""
    a = np.ceil(ns * (p - tol) - 1e-9)
    b = np.floor(ns * (p + tol) + 1e-9)
    return ss.binom.cdf(b, ns, p) - ss.binom.cdf(a - 1, ns, p)


@pytest.mark.parametrize(("w", "tol", "conf"), [((90, 10), 0.01, 0.95), ((50, 50), 0.05, 0.99), ((95, 5), 0.02, 0.9)])
def test_tolerance_two_backends_first_and_sustained(w: tuple[int, int], tol: float, conf: float) -> None:
    r = inf.plan_tolerance(w, tol, conf)
    p = w[1] / sum(w)
    ns = np.arange(1, r.checked_to + 1)
    cov = _tol_coverage(ns, p, tol)
    ok = cov >= conf
    assert ok[r.n - 1] and not ok[: r.n - 1].any(), "n is the first n meeting the target"
    assert ok[r.n_sustained - 1 :].all() and not ok[r.n_sustained - 2], "sustained from n_sustained to checked_to"
    assert r.probability == pytest.approx(cov[r.n - 1], rel=1e-9)
    assert r.probability_before == pytest.approx(cov[r.n - 2], rel=1e-9)
    z = ss.norm.ppf(0.5 + conf / 2)
    assert r.rows[-1].n == math.ceil(z * z * p * (1 - p) / tol**2 - 1e-9)


def _brute_box(n: int, p: list[float], lo: list[int], hi: list[int]) -> float:
    comps = np.array([c for c in itertools.product(range(n + 1), repeat=len(p) - 1) if sum(c) <= n])
    comps = np.c_[comps, n - comps.sum(axis=1)]
    inside = np.all((comps >= lo) & (comps <= hi), axis=1)
    return float(ss.multinomial.pmf(comps[inside], n, p).sum())


def test_tolerance_three_backends_joint_exact() -> None:
    w, tol, conf = (50, 30, 20), 0.05, 0.9
    p = [0.5, 0.3, 0.2]
    r = inf.plan_tolerance(w, tol, conf)
    assert r.method == "exact multinomial"

    def joint(n: int) -> float:
        lo = [math.ceil(n * (q - tol) - 1e-9) for q in p]
        hi = [math.floor(n * (q + tol) + 1e-9) for q in p]
        return _brute_box(n, p, lo, hi)

    assert joint(r.n) >= conf
    for m in range(r.n - 4, r.n):
        assert joint(m) < conf
    assert r.probability == pytest.approx(joint(r.n), rel=1e-9)
    # the scan starts where every backend alone meets the target: nothing below can meet it jointly
    ns = np.arange(1, r.n)
    marg = np.min([_tol_coverage(ns, q, tol) for q in p], axis=0)
    lower = int(ns[np.argmax(marg >= conf)]) if (marg >= conf).any() else r.n
    assert all(joint(m) < conf for m in range(max(lower - 3, 1), lower))


def test_box_probability_matches_enumeration_and_inclusion_exclusion() -> None:
    p = [0.5, 0.3, 0.2]
    assert inf.multinomial_box_probability(40, p, [15, 9, 5], [25, 15, 11]) == pytest.approx(
        _brute_box(40, p, [15, 9, 5], [25, 15, 11]), rel=1e-10
    )
    for m in (1, 2, 3):
        brute = _brute_box(40, p, [m] * 3, [40] * 3)
        assert inf.prob_all_at_least([5, 3, 2], 40, m) == pytest.approx(brute, rel=1e-10)
    # many backends with m = 5: (1+m)^k > limit, so the box path is used; compare with inclusion-exclusion at k=6
    w = [1] * 6
    assert float(inf.prob_all_at_least(w, 60, 5)) == pytest.approx(
        inf.multinomial_box_probability(60, [1 / 6] * 6, [5] * 6, [60] * 6), rel=1e-10
    )
    big = [1] * 8
    assert distributions.INCLUSION_EXCLUSION_LIMIT < (1 + 5) ** 8
    assert float(inf.prob_all_at_least(big, 80, 5)) == pytest.approx(_dp_all_at_least(80, [1 / 8] * 8, 5), rel=1e-9)
    assert float(inf.prob_all_at_least([3, 2, 2, 1, 1, 1], 50, 2)) == pytest.approx(
        _dp_all_at_least(50, [0.3, 0.2, 0.2, 0.1, 0.1, 0.1], 2), rel=1e-9
    )


def _dp_all_at_least(n: int, p: list[float], m: int) -> float:
    """P(all X_i >= m) by conditioning: X_1 ~ Bin(n, p_1), then the rest on n - X_1 trials."""
    # f[r] = P(backends j.. all >= m | r requests left for them)
    f = np.array([1.0 if r >= m else 0.0 for r in range(n + 1)])  # last backend takes all r
    for j in range(len(p) - 2, -1, -1):
        q = p[j] / sum(p[j:])
        g = np.zeros(n + 1)
        for r in range(n + 1):
            x = np.arange(m, r + 1)
            g[r] = float((ss.binom.pmf(x, r, q) * f[r - x]).sum())
        f = g
    return float(f[n])


@pytest.mark.parametrize(("w", "m", "prob"), [((90, 10), 1, 0.99), ((70, 20, 10), 3, 0.95), ((1, 1, 1, 1), 2, 0.9)])
def test_min_hits_first_n_is_exact(w: tuple[int, ...], m: int, prob: float) -> None:
    r = inf.plan_min_hits(w, m, prob)
    p = [x / sum(w) for x in w]

    def exact(n: int) -> float:
        if len(p) == 2:
            return float(ss.binom.cdf(n - m, n, p[1]) - ss.binom.cdf(m - 1, n, p[1]))
        return _brute_box(n, p, [m] * len(p), [n] * len(p))

    assert exact(r.n) >= prob > exact(r.n - 1)
    assert r.n_sustained == r.n
    assert r.probability == pytest.approx(exact(r.n), rel=1e-9)


def test_detect_two_backends_exact_power() -> None:
    r = inf.plan_detect((90, 10), (85, 15), power=0.8, alpha=0.05, qps=20)
    ns = np.arange(1, r.checked_to + 1)
    p0, p1 = 0.1, 0.15
    # equal-tailed test: reject x <= lo or x >= hi with each tail <= alpha/2 under p0
    pw = np.empty(len(ns))
    for idx, n in enumerate(ns):
        x = np.arange(n + 1)
        rej = (ss.binom.cdf(x, n, p0) <= 0.025) | (ss.binom.sf(x - 1, n, p0) <= 0.025)
        pw[idx] = ss.binom.pmf(x[rej], n, p1).sum()
    ok = pw >= 0.8
    assert ok[r.n - 1] and not ok[: r.n - 1].any()
    assert ok[r.n_sustained - 1 :].all() and not ok[r.n_sustained - 2]
    assert r.probability == pytest.approx(pw[r.n - 1], rel=1e-9)
    assert r.seconds == pytest.approx(r.n / 20)
    za, zb = ss.norm.ppf(0.975), ss.norm.ppf(0.8)
    n_norm = ((za * math.sqrt(p0 * (1 - p0)) + zb * math.sqrt(p1 * (1 - p1))) / (p1 - p0)) ** 2
    assert r.rows[-1].n == math.ceil(n_norm)
    assert "seconds" in rep.frame(r).columns


def test_detect_three_backends_noncentral_chi_square() -> None:
    r = inf.plan_detect((50, 30, 20), (45, 30, 25), power=0.8, alpha=0.05)
    p, q = np.array([0.5, 0.3, 0.2]), np.array([0.45, 0.3, 0.25])
    w2 = float(((q - p) ** 2 / p).sum())
    crit = ss.chi2.ppf(0.95, 2)

    def power(n: int) -> float:
        return float(ss.ncx2.sf(crit, 2, n * w2))

    assert power(r.n) >= 0.8 > power(r.n - 1)
    assert "noncentral" in r.method


def test_plans_are_fast() -> None:
    inf.plan_tolerance((90, 10), 0.01)  # warm imports
    t0 = time.perf_counter()
    inf.plan_tolerance((90, 10), 0.01, 0.95)
    inf.plan_min_hits((90, 10), 1, 0.99)
    inf.plan_detect((90, 10), (85, 15))
    assert time.perf_counter() - t0 < 1.0


@pytest.mark.parametrize(
    ("call", "msg"),
    [
        (lambda: inf.plan_detect((90, 10), (9, 1)), "is the configured split"),
        (lambda: inf.plan_detect((90, 10), (85, 15), power=0.04), "must exceed alpha"),
        (lambda: inf.plan_detect((90, 10, 0), (85, 10, 5)), "weight 0"),
        (lambda: inf.plan_detect((90, 10), (85, 10, 5)), "3 weights"),
        (lambda: inf.plan_tolerance((90, 10), 0), r"tolerance must be in \(0, 1\)"),
        (lambda: inf.plan_tolerance((90, 10), 0.01, 1.5), "confidence"),
        (lambda: inf.plan_tolerance((1, 0), 0.01), "only one backend"),
        (lambda: inf.plan_min_hits((90, 10), 0), "positive integer"),
        (lambda: inf.plan_min_hits((90, 10), 1, qps=-1), "qps"),
    ],
)
def test_plan_errors(call, msg: str) -> None:  # noqa: ANN001
    with pytest.raises(InvalidArgument, match=msg):
        call()


def test_summary_mentions_both_methods() -> None:
    r = inf.plan_tolerance((90, 10), 0.01, 0.95, qps=20)
    s = r.summary()
    assert s.startswith(f"{r.n:,} requests (")
    assert "normal approximation: 3,458" in s
