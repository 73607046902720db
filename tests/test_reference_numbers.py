"""The derived small-sample figures of docs/measurements.md, M16, reproduced.

Each expected value is computed here with scipy.stats (never by the code under test); the
meshstat call must agree with it, and both must round to the figure quoted there.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy import stats as ss

from meshstat import inference as inf


def test_pain1_50_50_with_15_requests() -> None:
    # P(share outside 40-60%): 6..9 of 15 are inside
    want = ss.binom.cdf(5, 15, 0.5) + ss.binom.sf(9, 15, 0.5)
    assert round(want, 3) == 0.302
    r = inf.bands([50, 50], n=15, within=0.1, simulate=False)
    assert r.p_outside[0] == pytest.approx(want, rel=1e-12)
    # P(share <= 20% or >= 80%) = P(X <= 3) + P(X >= 12): strictly outside +/-0.29
    want2 = ss.binom.cdf(3, 15, 0.5) + ss.binom.sf(11, 15, 0.5)
    assert round(want2, 3) == 0.035
    assert inf.bands([50, 50], n=15, within=0.29, simulate=False).p_outside[0] == pytest.approx(want2, rel=1e-12)


@pytest.mark.parametrize(("n", "fig"), [(10, 0.349), (20, 0.122)])
def test_pain1_90_10_canary_gets_nothing(n: int, fig: float) -> None:
    want = ss.binom.pmf(0, n, 0.1)
    assert round(want, 3) == fig
    r = inf.canary([10], qps=n, interval=1)
    assert r.steps[0].p_zero == pytest.approx(want, rel=1e-12)


def test_pain1_90_10_with_200_requests() -> None:
    lo, hi = ss.binom.ppf(0.025, 200, 0.1), ss.binom.ppf(0.975, 200, 0.1)
    assert (lo, hi) == (12, 29)
    r = inf.bands([90, 10], n=200, within=0.05, simulate=False)
    li = r.levels.index(0.95)
    assert (r.low[li][1], r.high[li][1]) == (12, 29)
    assert (r.low[li][1] / 200, r.high[li][1] / 200) == (0.06, 0.145)
    p_ge_15 = ss.binom.sf(29, 200, 0.1)  # canary >= 15%
    p_le_5 = ss.binom.cdf(10, 200, 0.1)  # canary <= 5%
    assert (round(p_ge_15, 3), round(p_le_5, 3)) == (0.016, 0.008)
    # bands' strict tails at +/-0.05 are X > 30 and X < 10; at +/-0.0499 they are X >= 30 and X <= 10
    r2 = inf.bands([90, 10], n=200, within=0.0499, simulate=False)
    assert r2.p_above[1] == pytest.approx(p_ge_15, rel=1e-12)
    assert r2.p_below[1] == pytest.approx(p_le_5, rel=1e-12)


def test_pain1_istio_9268_consistency_check() -> None:
    want = ss.binom.sf(4, 10, 0.1)
    assert round(want, 4) == 0.0016
    r = inf.check_split([5, 5], [90, 10])
    assert r.pvalue == pytest.approx(want, rel=1e-12)
    assert "p = 0.0016" in r.summary() and r.summary().startswith("not noise")


@pytest.mark.parametrize(("c", "fig"), [(8, 0.96), (20, 0.75), (40, 0.37), (100, 0.044)])
def test_pain5_few_connections_over_4_pods(c: int, fig: float) -> None:
    """P(some pod gets <= 0.6 x the mean of C connections over 4 pods); the document's figures are Monte Carlo."""
    thr = 0.6 * c / 4
    comps = np.array([x for x in itertools.product(range(c + 1), repeat=3) if sum(x) <= c])
    comps = np.c_[comps, c - comps.sum(axis=1)]
    want = float(ss.multinomial.pmf(comps[comps.min(axis=1) <= thr], c, [0.25] * 4).sum())
    m = math.floor(thr) + 1  # every pod strictly above the threshold
    got = 1.0 - float(inf.prob_all_at_least([1, 1, 1, 1], c, m))
    assert got == pytest.approx(want, rel=1e-9)
    assert abs(got - fig) < 0.01  # rounding of the quoted Monte Carlo figure


def test_pain5_60_10_7_3_6_4_10_against_uniform() -> None:
    obs = [60, 10, 7, 3, 6, 4, 10]
    want = ss.chisquare(obs).pvalue
    assert f"{want:.0e}" == "7e-35"
    assert inf.check_split(obs, [1] * 7).pvalue == pytest.approx(want, rel=1e-9)


def test_pain6_all_1000_to_one_of_two_pods() -> None:
    want = 2 * 0.5**1000
    assert ss.binomtest(1000, 1000, 0.5).pvalue == pytest.approx(want, rel=1e-9)
    assert inf.check_split([1000, 0], [1, 1]).pvalue == pytest.approx(want, rel=1e-9)


@pytest.mark.parametrize(("k", "fig"), [(2, 0.18), (5, 0.41), (10, 0.65), (20, 0.88)])
def test_pain7_user_sees_both_versions(k: int, fig: float) -> None:
    want = 1 - ss.binom.pmf(0, k, 0.1) - ss.binom.pmf(k, k, 0.1)
    assert round(want, 2) == fig
    assert float(inf.prob_all_at_least([90, 10], k, 1)) == pytest.approx(want, rel=1e-12)


@pytest.mark.parametrize(("w", "fig"), [((90, 10), 44), ((95, 5), 90), ((99, 1), 459), ((999, 1), 4603)])
def test_d7_min_requests_for_a_canary_request(w: tuple[int, int], fig: int) -> None:
    p = w[1] / sum(w)
    ns = np.arange(1, 10_000)
    want = int(ns[np.argmax(1 - ss.binom.pmf(0, ns, p) - ss.binom.pmf(ns, ns, p) >= 0.99)])
    assert want == fig
    assert inf.plan_min_hits(w, 1, 0.99).n == fig


@pytest.mark.parametrize(
    ("w", "tol", "fig"), [((90, 10), 0.01, 3458), ((90, 10), 0.02, 865), ((95, 5), 0.01, 1825), ((99, 1), 0.005, 1522)]
)
def test_d8_normal_approximation_sample_sizes(w: tuple[int, int], tol: float, fig: int) -> None:
    p = w[1] / sum(w)
    want = math.ceil(ss.norm.ppf(0.975) ** 2 * p * (1 - p) / tol**2)
    assert want == fig
    r = inf.plan_tolerance(w, tol, 0.95)
    assert r.rows[-1].method == "normal approximation" and r.rows[-1].n == fig


def test_d5_gateway_api_httproute_weight_operating_characteristic() -> None:
    """500 requests at 70/30/0, pass when every share is within +/-0.05 (325..375 of 500), up to 10 attempts."""

    def inside(p: float) -> float:
        return float(ss.binom.cdf(375, 500, p) - ss.binom.cdf(324, 500, p))

    ok = inf.acceptance_probability([70, 30, 0], 500, 0.05, attempts=10)
    assert round(1 - inside(0.7), 4) == 0.0127
    assert ok.fail_one == pytest.approx(1 - inside(0.7), rel=1e-9)
    assert ok.fail_all == pytest.approx((1 - inside(0.7)) ** 10, rel=1e-8)
    assert f"{ok.fail_all:.0e}" == "1e-19"
    for truth, one, ten in (((75, 25, 0), 0.52, None), ((76, 24, 0), None, 0.978), ((78, 22, 0), None, 0.46),
                            ((80, 20, 0), None, 0.037)):
        r = inf.acceptance_probability([70, 30, 0], 500, 0.05, truth=truth, attempts=10)
        want_one = inside(truth[0] / 100)
        assert r.pass_one == pytest.approx(want_one, rel=1e-9)
        assert r.pass_any == pytest.approx(1 - (1 - want_one) ** 10, rel=1e-9)
        if one is not None:
            assert round(r.pass_one, 2) == one
        if ten is not None:
            assert round(r.pass_any, 3 if ten > 0.9 or ten < 0.1 else 2) == ten
