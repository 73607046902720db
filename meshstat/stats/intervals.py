"""Confidence intervals for each backend's share: Wilson score and Clopper-Pearson.

References: Wilson (1927) score interval; Clopper & Pearson (1934) exact
interval via beta quantiles (as ``scipy.stats.binomtest(...).proportion_ci``).
:mod:`scipy.special` is imported on first use.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from meshstat.errors import InvalidArgument

__all__ = [
    "ConfidenceInterval",
    "check_confidence_level",
    "clopper_pearson_interval",
    "proportion_ci",
    "wilson_interval",
]


class ConfidenceInterval(NamedTuple):
    """Lower and upper bounds (arrays, one entry per backend)."""

    low: np.ndarray
    high: np.ndarray


def check_confidence_level(confidence_level: float) -> float:
    """``confidence_level`` as a float in (0, 1); :class:`InvalidArgument` otherwise."""
    if not 0.0 < confidence_level < 1.0:
        raise InvalidArgument(f"confidence_level must be in (0, 1), got {confidence_level!r}")
    return float(confidence_level)


def wilson_interval(count: np.ndarray, n: int, confidence_level: float = 0.95) -> ConfidenceInterval:
    """Wilson score interval for ``count`` successes out of ``n``.

    Parameters
    ----------
    count : array_like of int
        Successes per backend.
    n : int
        Trials (the same for every backend).
    confidence_level : float
        Two-sided level, e.g. 0.95.
    """
    from scipy import special

    cl = check_confidence_level(confidence_level)
    k = np.asarray(count, dtype=np.float64)
    nf = float(n)
    z = float(special.ndtri(0.5 + cl / 2.0))
    phat = k / nf
    denom = 1.0 + z * z / nf
    center = (phat + z * z / (2.0 * nf)) / denom
    half = z * np.sqrt(phat * (1.0 - phat) / nf + z * z / (4.0 * nf * nf)) / denom
    return ConfidenceInterval(np.clip(center - half, 0.0, 1.0), np.clip(center + half, 0.0, 1.0))


def clopper_pearson_interval(count: np.ndarray, n: int, confidence_level: float = 0.95) -> ConfidenceInterval:
    """Clopper-Pearson ("exact") interval: beta quantiles of the binomial.

    Same definition as ``scipy.stats.binomtest(k, n).proportion_ci(method="exact")``.
    """
    from scipy import special

    cl = check_confidence_level(confidence_level)
    alpha = 1.0 - cl
    k = np.asarray(count, dtype=np.float64)
    nf = float(n)
    with np.errstate(invalid="ignore", divide="ignore"):
        low = np.where(k > 0, special.betaincinv(k, nf - k + 1.0, alpha / 2.0), 0.0)
        high = np.where(k < nf, special.betaincinv(k + 1.0, nf - k, 1.0 - alpha / 2.0), 1.0)
    return ConfidenceInterval(np.asarray(low, dtype=np.float64), np.asarray(high, dtype=np.float64))


def proportion_ci(
    count: np.ndarray, n: int, *, confidence_level: float = 0.95, method: str = "wilson"
) -> ConfidenceInterval:
    """Interval for each backend's share: ``method`` is ``"wilson"`` or ``"exact"`` (Clopper-Pearson)."""
    if method == "wilson":
        return wilson_interval(count, n, confidence_level)
    if method in ("exact", "clopper-pearson"):
        return clopper_pearson_interval(count, n, confidence_level)
    raise InvalidArgument(f"method must be 'wilson' or 'exact', got {method!r}")
