"""canary: traffic per interval, P(no canary request), detectable error rates, interval needed."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as ss

from meshstat import inference as inf
from meshstat.report import inference as rep
from meshstat.errors import InvalidArgument


def _power(n1: float, n2: float, p0: float, p1: float, alpha: float) -> float:
    """One-sided pooled two-proportion z test, written independently of the module."""
    pbar = (n1 * p0 + n2 * p1) / (n1 + n2)
    se0 = math.sqrt(pbar * (1 - pbar) * (1 / n1 + 1 / n2))
    se1 = math.sqrt(p0 * (1 - p0) / n1 + p1 * (1 - p1) / n2)
    return float(ss.norm.cdf((p1 - p0 - ss.norm.ppf(1 - alpha) * se0) / se1))


def test_traffic_and_zero_probability() -> None:
    r = inf.canary([1, 5, 10, 25, 50, 100], qps=20, interval="60s")
    assert [s.requests for s in r.steps] == [1200.0] * 6
    assert [s.canary_requests for s in r.steps] == pytest.approx([12, 60, 120, 300, 600, 1200])
    for s in r.steps[:-1]:
        c = s.weight / 100
        assert s.p_zero == pytest.approx(ss.binom.pmf(0, 1200, c), rel=1e-9)
        assert s.p_zero_poisson == pytest.approx(ss.poisson.pmf(0, 1200 * c), rel=1e-9)
    last = r.steps[-1]
    assert last.detectable_error_rate is None and any("100%" in n for n in r.notes)
    assert any("1% assumed" in n for n in r.notes)


def test_detectable_rate_meets_power_exactly_at_the_boundary() -> None:
    r = inf.canary([5, 25, 50], qps=20, interval="5m", error_rate=0.01)
    for s in r.steps:
        n1, n2 = s.baseline_requests, s.canary_requests
        p1 = s.detectable_error_rate
        assert _power(n1, n2, 0.01, p1, 0.05) == pytest.approx(0.8, abs=1e-9)
        assert _power(n1, n2, 0.01, p1 - 1e-4, 0.05) < 0.8
        assert s.detectable_increase == pytest.approx(p1 - 0.01)


def test_interval_needed_is_consistent_with_one_interval_detection() -> None:
    r = inf.canary([10], qps=20, interval="60s", error_rate=0.001, detect_error_rate=0.01)
    s = r.steps[0]
    assert s.interval_needed == pytest.approx(s.requests_needed / 20)
    assert _power(0.9 * s.requests_needed, 0.1 * s.requests_needed, 0.001, 0.01, 0.05) == pytest.approx(0.8, abs=1e-9)
    # at exactly that interval, the smallest detectable rate is the one asked for
    again = inf.canary([10], qps=20, interval=s.interval_needed, error_rate=0.001)
    assert again.steps[0].detectable_error_rate == pytest.approx(0.01, rel=1e-6)
    assert "needs" in r.summary()


def test_normal_approximation_power_by_simulation_where_counts_are_large() -> None:
    """At 3,000 requests a side and >= 30 expected errors the z test's real power is close to 0.8.

    Monte Carlo with 20,000 intervals (seed fixed): sampling sd 0.003; the allowance of 0.03 is
    for the normal approximation itself, not for noise.
    """
    r = inf.canary([50], qps=100, interval="60s", error_rate=0.01)
    s = r.steps[0]
    n1, n2 = round(s.baseline_requests), round(s.canary_requests)
    rng = np.random.default_rng(20240601)
    x1 = rng.binomial(n1, 0.01, 20_000)
    x2 = rng.binomial(n2, s.detectable_error_rate, 20_000)
    pbar = (x1 + x2) / (n1 + n2)
    se = np.sqrt(pbar * (1 - pbar) * (1 / n1 + 1 / n2))
    z = np.where(se > 0, (x2 / n2 - x1 / n1) / np.where(se > 0, se, 1), 0)
    assert abs(float((z > ss.norm.ppf(0.95)).mean()) - 0.8) < 0.03


@pytest.mark.parametrize(
    ("text", "seconds"), [("60s", 60), ("5m", 300), ("1h", 3600), ("90", 90), ("1h30m", 5400), ("250ms", 0.25), (45, 45)]
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert inf.parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["abc", "5x", "-5", "0", "", "5 m 3"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(InvalidArgument, match="duration"):
        inf.parse_duration(text)


@pytest.mark.parametrize(
    ("kwargs", "msg"),
    [
        ({"steps": [0]}, r"\(0, 100\]"),
        ({"steps": [150]}, r"\(0, 100\]"),
        ({"steps": ["x"]}, "percentages"),
        ({"qps": 0}, "qps"),
        ({"error_rate": 0.01, "detect_error_rate": 0.005}, "above the baseline"),
        ({"power": 1.5}, "power"),
        ({"power": 1e-6}, r"above alpha \(0.05\)"),
        ({"power": 0.01, "alpha": 0.01}, "above alpha"),
    ],
)
def test_canary_errors(kwargs: dict, msg: str) -> None:
    args = {"steps": [1, 5], "qps": 20, "interval": "60s"} | kwargs
    with pytest.raises(InvalidArgument, match=msg):
        inf.canary(**args)


def test_power_just_above_alpha_is_answered_at_the_baseline_edge() -> None:
    """The power at no change is exactly alpha: a power just above it detects rates just above the baseline."""
    r = inf.canary([5, 50], qps=100, interval="60s", error_rate=0.01, power=0.0501)
    for s in r.steps:
        assert s.detectable_error_rate is not None and 0.01 < s.detectable_error_rate < 0.011
        assert _power(s.baseline_requests, s.canary_requests, 0.01, 0.01, 0.05) == pytest.approx(0.05, abs=1e-12)


def test_frame() -> None:
    f = rep.frame(inf.canary([1, 5], qps=20, interval="1m", error_rate=0.001, detect_error_rate=0.01))
    assert f.height == 2
    assert {"canary_requests", "p_zero_canary", "detectable_error_rate", "interval_needed_s"} <= set(f.columns)
