"""Statistics on per-backend counts: intervals, goodness of fit, window bands.

Everything special (normal and beta quantiles, chi-square and binomial tail
probabilities) comes from :mod:`scipy.special`, imported on first use: it costs
a third of ``import scipy.stats`` and the CLI pays it only when a table is
printed. All functions take numpy arrays and are vectorised over backends.

References: Wilson (1927) score interval; Clopper & Pearson (1934) exact
interval via beta quantiles (as ``scipy.stats.binomtest(...).proportion_ci``);
Pearson's chi-square and the G-test (likelihood ratio) for goodness of fit.
"""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction
from typing import NamedTuple

import numpy as np

from meshstat.errors import InvalidArgument

__all__ = [
    "ConfidenceInterval",
    "GofResult",
    "WindowBand",
    "bdtr",
    "bdtrc",
    "binomial_two_sided_tail",
    "clopper_pearson_interval",
    "goodness_of_fit",
    "proportion_ci",
    "wilson_interval",
    "window_band",
    "z_scores",
]


class ConfidenceInterval(NamedTuple):
    """Lower and upper bounds (arrays, one entry per backend)."""

    low: np.ndarray
    high: np.ndarray


class GofResult(NamedTuple):
    """Goodness of fit of observed counts to expected shares.

    Attributes
    ----------
    statistic : float
        Pearson's X^2 (``method="chisquare"``) or G = 2 sum o ln(o/e) (``"g-test"``).
    pvalue : float
        Upper tail of chi-square with ``dof`` degrees of freedom; 0 when a
        backend with expected share 0 received traffic.
    dof : int
        Number of backends with a positive expected share, minus one.
    method : str
        ``"chisquare"`` or ``"g-test"``.
    """

    statistic: float
    pvalue: float
    dof: int
    method: str


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


def _as_probs(probs: Sequence[float | Fraction] | np.ndarray) -> np.ndarray:
    return np.asarray([float(p) for p in probs], dtype=np.float64)


def _check_cl(confidence_level: float) -> float:
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

    cl = _check_cl(confidence_level)
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

    cl = _check_cl(confidence_level)
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


def z_scores(counts: np.ndarray, probs: Sequence[float | Fraction] | np.ndarray) -> np.ndarray:
    """``(count - n p) / sqrt(n p (1 - p))`` per backend (0 where ``p`` is 0 or 1 and met exactly)."""
    c = np.asarray(counts, dtype=np.float64)
    p = _as_probs(probs)
    n = c.sum()
    var = n * p * (1.0 - p)
    dev = c - n * p
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(var > 0, dev / np.sqrt(np.where(var > 0, var, 1.0)), np.where(dev == 0, 0.0, np.inf))
    return z


def goodness_of_fit(
    counts: np.ndarray, probs: Sequence[float | Fraction] | np.ndarray, *, method: str = "chisquare"
) -> GofResult:
    """Pearson chi-square or G-test of ``counts`` against shares ``probs``.

    Backends with share 0 are left out of the statistic; if one of them got
    traffic the data are impossible under the model and ``pvalue`` is 0.
    """
    from scipy import special

    c = np.asarray(counts, dtype=np.float64)
    p = _as_probs(probs)
    if c.shape != p.shape:
        raise InvalidArgument(f"{c.size} counts for {p.size} shares")
    n = c.sum()
    if n <= 0:
        raise InvalidArgument("goodness of fit needs at least one observation")
    pos = p > 0
    dof = int(pos.sum()) - 1
    if np.any(c[~pos] > 0):
        return GofResult(float("inf"), 0.0, max(dof, 0), method)
    o = c[pos]
    e = n * p[pos] / p[pos].sum()
    if dof <= 0:
        return GofResult(0.0, 1.0, 0, method)
    if method == "chisquare":
        stat = float(np.sum((o - e) ** 2 / e))
    elif method in ("g-test", "g"):
        nz = o > 0
        stat = float(2.0 * np.sum(o[nz] * np.log(o[nz] / e[nz])))
        method = "g-test"
    else:
        raise InvalidArgument(f"method must be 'chisquare' or 'g-test', got {method!r}")
    return GofResult(stat, float(special.chdtrc(dof, stat)), dof, method)


def bdtr(k: object, n: object, p: object) -> np.ndarray:
    """Binomial cdf ``P(X <= floor(k))`` for ``X ~ Binomial(n, p)``, for any ``n``.

    :func:`scipy.special.bdtr` takes ``n`` as a C ``int`` and returns NaN for
    ``n >= 2**31`` (runs of billions of requests). This is the same function
    through the identity ``P(X <= k) = I_{1-p}(n - k, k + 1)`` with scipy's
    regularized incomplete beta :func:`scipy.special.betainc`, which takes
    float arguments. ``k < 0`` gives 0 and ``k >= n`` gives 1.
    """
    return _binomial_tail(k, n, p, upper=False)


def bdtrc(k: object, n: object, p: object) -> np.ndarray:
    """Binomial survival ``P(X > floor(k))`` for any ``n`` (see :func:`bdtr`): ``I_p(k + 1, n - k)``."""
    return _binomial_tail(k, n, p, upper=True)


def _binomial_tail(k: object, n: object, p: object, *, upper: bool) -> np.ndarray:
    from scipy import special

    kf, nf, pf = (np.asarray(x, dtype=np.float64) for x in (k, n, p))
    kf, nf, pf = np.broadcast_arrays(np.floor(kf), nf, pf)
    inside = (kf >= 0) & (kf < nf)
    # outside [0, n) the arguments are placeholders (1, 1) and the result is replaced below
    above, below = np.where(inside, kf + 1.0, 1.0), np.where(inside, nf - kf, 1.0)
    if upper:
        out = np.where(kf < 0, 1.0, np.where(kf >= nf, 0.0, special.betainc(above, below, pf)))
    else:
        out = np.where(kf < 0, 0.0, np.where(kf >= nf, 1.0, special.betainc(below, above, 1.0 - pf)))
    return out[()] if out.ndim == 0 else out


def binomial_two_sided_tail(n: int, p: float, deviation: np.ndarray) -> np.ndarray:
    """``P(|X - n p| >= d)`` for ``X ~ Binomial(n, p)``, elementwise over ``deviation``."""
    d = np.asarray(deviation, dtype=np.float64)
    mean = n * p
    # X <= mean - d  or  X >= mean + d
    lo_k = np.floor(mean - d + 1e-9)
    hi_k = np.ceil(mean + d - 1e-9)
    lower = np.where(lo_k >= 0, bdtr(np.maximum(lo_k, 0), n, p), 0.0)
    upper = np.where(hi_k <= n, bdtrc(np.maximum(hi_k - 1, 0), n, p), 0.0)
    upper = np.where(hi_k <= 0, 1.0, upper)
    return np.minimum(1.0, lower + upper)


def _binom_quantile(q: float, n: int, p: float) -> int:
    """Smallest k with ``P(X <= k) >= q`` (exact, by bisection on scipy's binomial cdf)."""

    if p <= 0.0:
        return 0
    if p >= 1.0:
        return n
    lo, hi = -1, n  # invariant: cdf(lo) < q <= cdf(hi)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if bdtr(mid, n, p) >= q:
            hi = mid
        else:
            lo = mid
    return hi


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
