from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as ss

from meshstat import stats
from meshstat.errors import InvalidArgument


@pytest.mark.parametrize(("k", "n"), [(0, 10), (1, 10), (5, 10), (10, 10), (123, 1000), (999_000, 10**6)])
@pytest.mark.parametrize("cl", [0.9, 0.95, 0.99])
def test_intervals_match_scipy(k: int, n: int, cl: float) -> None:
    res = ss.binomtest(k, n)
    w = stats.wilson_interval(np.array([k]), n, cl)
    ref = res.proportion_ci(confidence_level=cl, method="wilson")
    assert w.low[0] == pytest.approx(ref.low, abs=1e-12)
    assert w.high[0] == pytest.approx(ref.high, abs=1e-12)
    cp = stats.clopper_pearson_interval(np.array([k]), n, cl)
    ref = res.proportion_ci(confidence_level=cl, method="exact")
    assert cp.low[0] == pytest.approx(ref.low, abs=1e-12)
    assert cp.high[0] == pytest.approx(ref.high, abs=1e-12)


def test_goodness_of_fit_matches_scipy() -> None:
    obs = np.array([480, 330, 190])
    p = [0.5, 0.3, 0.2]
    ref = ss.chisquare(obs, np.array(p) * obs.sum())
    got = stats.goodness_of_fit(obs, p)
    assert got.statistic == pytest.approx(ref.statistic)
    assert got.pvalue == pytest.approx(ref.pvalue)
    assert got.dof == 2
    ref_g = ss.power_divergence(obs, np.array(p) * obs.sum(), lambda_="log-likelihood")
    got_g = stats.goodness_of_fit(obs, p, method="g-test")
    assert got_g.statistic == pytest.approx(ref_g.statistic)
    assert got_g.pvalue == pytest.approx(ref_g.pvalue)


def test_zero_share_backends() -> None:
    assert stats.goodness_of_fit(np.array([5, 5, 0]), [0.5, 0.5, 0.0]).dof == 1
    impossible = stats.goodness_of_fit(np.array([5, 4, 1]), [0.5, 0.5, 0.0])
    assert impossible.pvalue == 0.0
    assert stats.goodness_of_fit(np.array([10, 0]), [1.0, 0.0]).pvalue == 1.0


def test_z_scores() -> None:
    z = stats.z_scores(np.array([5, 5]), [0.9, 0.1])
    assert z[1] == pytest.approx((5 - 1) / np.sqrt(10 * 0.09))
    assert stats.z_scores(np.array([10, 0]), [1.0, 0.0]).tolist() == [0.0, 0.0]


def test_binomial_tail_matches_scipy() -> None:
    n, p = 200, 0.1
    for d in (0, 1, 5, 8.5, 20):
        k = np.arange(n + 1)
        pmf = ss.binom.pmf(k, n, p)
        expect = pmf[np.abs(k - n * p) >= d - 1e-12].sum()
        assert stats.binomial_two_sided_tail(n, p, np.array(d)) == pytest.approx(expect, rel=1e-9, abs=1e-15)


def test_window_band_quantiles_and_max_deviation() -> None:
    rng = np.random.default_rng(1)
    wc = rng.multinomial(1000, [0.9, 0.1], size=500)
    band = stats.window_band(wc, 1000, [0.9, 0.1], confidence_level=0.95)
    assert band.low[1] == ss.binom.ppf(0.025, 1000, 0.1)
    assert band.high[1] == ss.binom.ppf(0.975, 1000, 0.1)
    a_sim = 1 - 0.95 ** (1 / 500)
    assert band.sim_low[1] == ss.binom.ppf(a_sim / 2, 1000, 0.1)
    assert band.sim_high[1] == ss.binom.ppf(1 - a_sim / 2, 1000, 0.1)
    assert band.max_deviation[1] == pytest.approx(np.abs(wc[:, 1] / 1000 - 0.1).max())
    assert 1e-3 < band.max_deviation_pvalue[1] <= 1.0


def test_bad_confidence_level() -> None:
    with pytest.raises(InvalidArgument):
        stats.wilson_interval(np.array([1]), 10, 1.5)
    with pytest.raises(InvalidArgument):
        stats.proportion_ci(np.array([1]), 10, method="bayes")


# ----------------------------------------------------------------- binomial tails for any n


@settings(max_examples=200)
@given(
    n=st.integers(1, 2**31 - 2),
    frac=st.floats(0, 1),
    p=st.floats(1e-6, 1 - 1e-6),
)
def test_bdtr_equals_scipy_where_scipy_works(n: int, frac: float, p: float) -> None:
    """Against scipy.stats.binom (boost's ibeta) to 1e-7 (they differ by ~1e-9 at n ~ 2e9, p = 1e-6).

    Not against cephes' ``special.bdtr``: besides NaN beyond 2**31 it is off by
    5e-7 at n = 2070031, k = (n-1)/2, p = 1/2, where the cdf is exactly 1/2
    by symmetry (found by this test; boost and :func:`stats.bdtr` give 0.5).
    """
    k = int(frac * n)
    assert stats.bdtr(k, n, p) == pytest.approx(ss.binom.cdf(k, n, p), rel=1e-7, abs=1e-300)
    assert stats.bdtrc(k, n, p) == pytest.approx(ss.binom.sf(k, n, p), rel=1e-7, abs=1e-300)


def test_bdtr_is_exact_where_symmetry_says_so() -> None:
    for n in (1, 3, 2_070_031, 2**31 + 1, 10**12 + 1):
        assert stats.bdtr((n - 1) // 2, n, 0.5) == pytest.approx(0.5, rel=1e-12)


def test_bdtr_beyond_two_to_the_31() -> None:
    """scipy.special.bdtr gives NaN for n >= 2**31; ours agrees with scipy.stats.binom (boost) there."""
    from scipy import special
    from scipy.stats import binom

    n, p = 8 * 10**9, 0.9
    k = 7_199_936_588  # z = -2.36
    assert np.isnan(special.bdtr(k, n, p))  # the reason for stats.bdtr
    assert stats.bdtr(k, n, p) == pytest.approx(binom.cdf(k, n, p), rel=1e-6)
    assert stats.bdtrc(k, n, p) == pytest.approx(binom.sf(k, n, p), rel=1e-9)
    assert stats.bdtr(-1, n, p) == 0.0
    assert stats.bdtr(n, n, p) == 1.0
    assert stats.bdtrc(-1, n, p) == 1.0
    assert stats.bdtrc(n, n, p) == 0.0


def test_report_p_values_for_billions_of_requests() -> None:
    """A run of 8e9 requests gets real per-backend p-values (they were 1.0: NaN from scipy's int n)."""
    from meshstat import Weighted, simulate
    from meshstat.report.simulation import to_frame

    r = simulate(Weighted.from_weights([90, 10]), 8 * 10**9, rng=1, mode="exact")
    frame = to_frame(r)
    z = frame["z"].to_numpy()
    pv = frame["p_value"].to_numpy()
    from scipy.special import ndtr

    assert np.all(np.isfinite(pv))
    # normal approximation is excellent at this n: two-sided tail of |z|
    np.testing.assert_allclose(pv, 2 * ndtr(-np.abs(z)), rtol=0.02, atol=1e-12)
