"""``window_band`` over windows of their own sizes (the steps of a range query) against scipy directly."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as sps

from meshstat.stats import window_band


def test_varying_sizes_match_scipy() -> None:
    counts = np.array([[90, 10], [870, 130], [420, 80]])
    sizes = counts.sum(axis=1)
    p = np.array([0.85, 0.15])
    b = window_band(counts, sizes, p, confidence_level=0.95)
    assert b.window == 0
    np.testing.assert_array_equal(b.sizes, sizes)
    for j, n in enumerate(sizes):
        for i, pi in enumerate(p):
            assert b.low[j, i] == int(sps.binom.ppf(0.025, n, pi))
            assert b.high[j, i] == int(sps.binom.ppf(0.975, n, pi))
    dev = np.max(np.abs(counts / sizes[:, None] - p), axis=0)
    np.testing.assert_allclose(b.max_deviation, dev)
    for i, pi in enumerate(p):
        keep = 1.0
        for n in sizes:
            k = np.arange(n + 1)
            far = np.abs(k / n - pi) >= dev[i] - 1e-12
            keep *= 1.0 - sps.binom.pmf(k[far], n, pi).sum()
        assert b.max_deviation_pvalue[i] == pytest.approx(1.0 - keep, rel=1e-9)


def test_equal_sizes_are_the_fixed_window_band() -> None:
    counts = np.array([[905, 95], [880, 120]])
    a = window_band(counts, 1000, [0.9, 0.1])
    b = window_band(counts, [1000, 1000], [0.9, 0.1])
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(np.asarray(x, dtype=object), np.asarray(y, dtype=object))
    with pytest.raises(Exception, match="one positive size"):
        window_band(counts, [1000, 0], [0.9, 0.1])
