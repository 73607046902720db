"""bands: exact binomial bands and tails, checked by simulation through the engine; the PNG plot."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy import stats as ss

from meshstat import inference as inf
from meshstat.plots.bands import plot_bands
from meshstat.report import inference as rep
from meshstat.errors import InvalidArgument


def test_exact_bands_90_10_at_200() -> None:
    r = inf.bands([90, 10], n=200, within=0.05, simulate=False)
    for li, level in enumerate(r.levels):
        a = (1 - level) / 2
        for i, p in enumerate((0.9, 0.1)):
            lo, hi = int(ss.binom.ppf(a, 200, p)), int(ss.binom.ppf(1 - a, 200, p))
            assert (r.low[li][i], r.high[li][i]) == (lo, hi)
            cov = ss.binom.cdf(hi, 200, p) - ss.binom.cdf(lo - 1, 200, p)
            assert r.coverage[li][i] == pytest.approx(cov, rel=1e-10)
            assert r.coverage[li][i] >= level
    # strictly outside 10% +/- 5%: X < 10 or X > 30
    assert r.p_below[1] == pytest.approx(ss.binom.cdf(9, 200, 0.1), rel=1e-10)
    assert r.p_above[1] == pytest.approx(ss.binom.sf(30, 200, 0.1), rel=1e-10)
    assert r.p_outside_any == pytest.approx(r.p_outside[1], rel=1e-10)  # two backends: the same event


def test_within_boundaries_are_exact_decimals() -> None:
    # 15 * 0.4 = 6 and 15 * 0.6 = 9 are inside: outside is X <= 5 or X >= 10
    r = inf.bands([50, 50], n=15, within="0.1", simulate=False)
    assert r.p_outside[0] == pytest.approx(2 * ss.binom.cdf(5, 15, 0.5), rel=1e-12)


def _brute_any_outside(n: int, p: list[float], tol: float) -> float:
    comps = np.array([c for c in itertools.product(range(n + 1), repeat=len(p) - 1) if sum(c) <= n])
    comps = np.c_[comps, n - comps.sum(axis=1)]
    out = np.any(np.abs(comps / n - np.asarray(p)) > tol + 1e-12, axis=1)
    return float(ss.multinomial.pmf(comps[out], n, p).sum())


def test_p_outside_any_three_backends() -> None:
    r = inf.bands([5, 3, 2], n=60, within=0.08, simulate=False)
    assert r.p_outside_any == pytest.approx(_brute_any_outside(60, [0.5, 0.3, 0.2], 0.08), rel=1e-9)


def test_simulation_agrees_and_replays() -> None:
    # per-cell false-alarm rate of the agreement check is 1e-3 / cells (Bonferroni): ALPHA overall
    r = inf.bands([90, 10], n=200, within=0.05, rng=12345, sim_windows=4000)
    assert r.sim_agrees is True
    assert r.sim_seed is not None and r.sim_windows == 4000
    assert r.sim_counts.shape == (4000, 2)
    assert (r.sim_counts.sum(axis=1) == 200).all()
    again = inf.bands([90, 10], n=200, within=0.05, rng=r.sim_seed, sim_windows=4000)
    assert np.array_equal(again.sim_counts, r.sim_counts)
    assert "agrees with exact" in r.summary()


def test_simulation_detects_a_wrong_band() -> None:
    """The agreement check can fail: compare exact bands of 90/10 with samples drawn at 85/15."""
    from meshstat import model
    from meshstat.engine import simulate

    r = inf.bands([90, 10], n=200, simulate=False)
    res = simulate(model.Route(root=model.Weighted.from_weights([85, 15])), 200 * 2000, rng=7, window=200)
    inside = (res.window_counts[:, 1] >= r.low[1][1]) & (res.window_counts[:, 1] <= r.high[1][1])
    lo, hi = ss.binom.interval(1 - 1e-3, 2000, r.coverage[1][1])
    assert not lo <= inside.sum() <= hi


def test_seconds_at_qps_and_window() -> None:
    r = inf.bands([90, 10], seconds="1m", qps=20, simulate=False)
    assert r.requests == 1200 and r.seconds == 60
    w = inf.bands([90, 10], window=1200, simulate=False)
    assert w.low == r.low and w.high == r.high
    odd = inf.bands([90, 10], seconds=7, qps=1.5, simulate=False)
    assert odd.requests == 10 and any("rounded" in n for n in odd.notes)


@pytest.mark.parametrize(
    ("kwargs", "msg"),
    [
        ({"n": 10, "window": 10}, "exactly one"),
        ({}, "exactly one"),
        ({"seconds": 10}, "needs qps"),
        ({"n": 0}, "positive integer"),
        ({"n": 10, "levels": (1.2,)}, "level"),
        ({"n": 10, "within": 2}, "within"),
        ({"seconds": "10x", "qps": 2}, "duration"),
    ],
)
def test_bands_errors(kwargs: dict, msg: str) -> None:
    with pytest.raises(InvalidArgument, match=msg):
        inf.bands([90, 10], simulate=False, **kwargs)


def test_frame_and_plot(tmp_path) -> None:  # noqa: ANN001
    r = inf.bands([80, 15, 5], n=300, within=0.03, rng=3, sim_windows=500)
    f = rep.frame(r)
    assert f.height == 3 * 3
    assert {"low", "high", "coverage", "sim_coverage", "p_outside", "sim_p_outside"} <= set(f.columns)
    out = tmp_path / "bands.png"
    plot_bands(r, str(out))
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert out.stat().st_size > 5000
