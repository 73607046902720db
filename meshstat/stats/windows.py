"""Per-window behaviour of counts: where one window's count stays by chance, and the worst window."""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction
from typing import NamedTuple

import numpy as np

from meshstat.errors import InvalidArgument
from meshstat.stats.binomial import _binom_quantile, binomial_two_sided_tail
from meshstat.stats.gof import _as_probs
from meshstat.stats.intervals import _check_cl

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


def window_band(
    window_counts: np.ndarray,
    window: int,
    probs: Sequence[float | Fraction] | np.ndarray,
    *,
    confidence_level: float = 0.95,
) -> WindowBand:
    """Where per-window counts should stay by chance, and how far the worst window strayed.

    Parameters
    ----------
    window_counts : int array, shape (n_windows, n_backends)
        Counts of complete windows of ``window`` requests each.
    window : int
        Requests per window.
    probs : sequence
        Exact share per backend.
    confidence_level : float
        Level of both bands.
    """
    cl = _check_cl(confidence_level)
    wc = np.asarray(window_counts, dtype=np.float64)
    if wc.ndim != 2 or wc.shape[0] == 0:
        raise InvalidArgument("window_band needs at least one complete window")
    nw = wc.shape[0]
    p = _as_probs(probs)
    a = 1.0 - cl
    a_sim = 1.0 - cl ** (1.0 / nw)
    low = np.array([_binom_quantile(a / 2, window, float(x)) for x in p], dtype=np.int64)
    high = np.array([_binom_quantile(1 - a / 2, window, float(x)) for x in p], dtype=np.int64)
    sim_low = np.array([_binom_quantile(a_sim / 2, window, float(x)) for x in p], dtype=np.int64)
    sim_high = np.array([_binom_quantile(1 - a_sim / 2, window, float(x)) for x in p], dtype=np.int64)
    dev_counts = np.max(np.abs(wc - window * p[None, :]), axis=0)
    one = np.array(
        [binomial_two_sided_tail(window, float(x), np.asarray(d)) for x, d in zip(p, dev_counts, strict=True)],
        dtype=np.float64,
    )
    # P(max over nw independent windows >= d) = 1 - (1 - P(one window >= d)) ** nw
    pmax = -np.expm1(nw * np.log1p(-np.minimum(one, 1.0 - 1e-300)))
    pmax = np.where(one >= 1.0, 1.0, pmax)
    return WindowBand(window, nw, cl, low, high, sim_low, sim_high, dev_counts / window, pmax)
