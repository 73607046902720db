"""Per-window behaviour of counts: where one window's count stays by chance, and the worst window.

Windows of one size (a simulation's windows of ``W`` requests) or of sizes of
their own (the steps of a Prometheus range query, each with the requests it saw).
"""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction
from typing import NamedTuple

import numpy as np

from meshstat.errors import InvalidArgument
from meshstat.stats.binomial import binom_quantile, binomial_two_sided_tail
from meshstat.stats.gof import as_probs
from meshstat.stats.intervals import check_confidence_level

__all__ = ["WindowBand", "window_band"]


class WindowBand(NamedTuple):
    """Per-backend behaviour of counts in windows of ``window`` requests.

    Attributes
    ----------
    window : int
        Requests per window.
    low, high : ndarray
        Central band of one window's count at ``confidence_level`` (exact binomial quantiles).
    sim_low, sim_high : ndarray
        Band that all ``n_windows`` windows stay in together with probability
        at least ``confidence_level`` (per-window level ``1 - (1 - cl) ** (1 / n_windows)``).
    max_deviation : ndarray
        Largest ``|count / window - p|`` over the observed windows, per backend.
    max_deviation_pvalue : ndarray
        Probability that some window of ``n_windows`` independent ones strays
        at least that far, per backend.
    sizes : ndarray or None
        Per-window sizes when they differ (then ``window`` is 0 and ``low``,
        ``high``, ``sim_low``, ``sim_high`` have one row per window); None for
        windows of one size.
    """

    window: int
    n_windows: int
    confidence_level: float
    low: np.ndarray
    high: np.ndarray
    sim_low: np.ndarray
    sim_high: np.ndarray
    max_deviation: np.ndarray
    max_deviation_pvalue: np.ndarray
    sizes: np.ndarray | None = None


def window_band(
    window_counts: np.ndarray,
    window: int | Sequence[int] | np.ndarray,
    probs: Sequence[float | Fraction] | np.ndarray,
    *,
    confidence_level: float = 0.95,
) -> WindowBand:
    """Where per-window counts should stay by chance, and how far the worst window strayed.

    Parameters
    ----------
    window_counts : int array, shape (n_windows, n_backends)
        Counts of complete windows of ``window`` requests each.
    window : int or sequence of int
        Requests per window, or each window's own size (its row sum, usually).
    probs : sequence
        Exact share per backend.
    confidence_level : float
        Level of both bands.
    """
    cl = check_confidence_level(confidence_level)
    wc = np.asarray(window_counts, dtype=np.float64)
    if wc.ndim != 2 or wc.shape[0] == 0:
        raise InvalidArgument("window_band needs at least one complete window")
    nw = wc.shape[0]
    p = as_probs(probs)
    a = 1.0 - cl
    a_sim = 1.0 - cl ** (1.0 / nw)
    sizes = np.asarray(window, dtype=np.int64).reshape(-1)
    if sizes.size not in (1, nw) or np.any(sizes < 1):
        raise InvalidArgument("window sizes: one positive size, or one per window")
    if sizes.size == 1 or np.all(sizes == sizes[0]):
        n = int(sizes[0])
        low = np.array([binom_quantile(a / 2, n, float(x)) for x in p], dtype=np.int64)
        high = np.array([binom_quantile(1 - a / 2, n, float(x)) for x in p], dtype=np.int64)
        sim_low = np.array([binom_quantile(a_sim / 2, n, float(x)) for x in p], dtype=np.int64)
        sim_high = np.array([binom_quantile(1 - a_sim / 2, n, float(x)) for x in p], dtype=np.int64)
        dev_counts = np.max(np.abs(wc - n * p[None, :]), axis=0)
        one = np.array(
            [binomial_two_sided_tail(n, float(x), np.asarray(d)) for x, d in zip(p, dev_counts, strict=True)],
            dtype=np.float64,
        )
        # P(max over nw independent windows >= d) = 1 - (1 - P(one window >= d)) ** nw
        with np.errstate(divide="ignore"):
            pmax = -np.expm1(nw * np.log1p(-np.minimum(one, 1.0 - 1e-300)))
        pmax = np.where(one >= 1.0, 1.0, pmax)
        return WindowBand(n, nw, cl, low, high, sim_low, sim_high, dev_counts / n, pmax)
    # windows of their own sizes: bands per window, deviations as shares,
    # P(some window strays at least d in share) = 1 - prod_w (1 - P(|X_w - n_w p| >= d n_w))
    q = [(a / 2, "low"), (1 - a / 2, "high"), (a_sim / 2, "sim_low"), (1 - a_sim / 2, "sim_high")]
    rows = {name: np.array([[binom_quantile(level, int(n), float(x)) for x in p] for n in sizes], dtype=np.int64)
            for level, name in q}
    dev = np.max(np.abs(wc / sizes[:, None] - p[None, :]), axis=0)
    log_keep = np.zeros(len(p))
    for n in sizes:
        one = np.array([binomial_two_sided_tail(int(n), float(x), np.asarray(d * n * (1 - 1e-12)))
                        for x, d in zip(p, dev, strict=True)], dtype=np.float64)
        with np.errstate(divide="ignore"):
            log_keep += np.log1p(-np.minimum(one, 1.0 - 1e-300))
    pmax = np.where(dev <= 0, 1.0, -np.expm1(log_keep))
    return WindowBand(0, nw, cl, rows["low"], rows["high"], rows["sim_low"], rows["sim_high"], dev, pmax, sizes)
