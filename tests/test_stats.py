from __future__ import annotations

import numpy as np
import pytest
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
