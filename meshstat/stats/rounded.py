"""Goodness of fit of counts known only to intervals (counters a listing rounded).

``iptables -L`` without ``-x`` prints a counter above 99,999 rounded (``10M``):
the true count is only known to lie in an interval (``10M``: 9,999,500 to
10,499,499). A test of the split must not treat the printed value as exact,
because at such counts the rounding (here 500,000) is far larger than the
sampling noise (``sqrt(10**7)``: 3,162), so the printed values alone can look
absurdly inconsistent (p = 0) or consistent by accident.

:func:`chisquare_range` gives the range of Pearson's statistic
``X**2 = sum (c_i - n p_i)**2 / (n p_i)`` (``n = sum c_i``) over every count
vector the intervals allow, and so the range of its p-value. The verdict rests
on the whole range (:func:`verdict_over_range`): *inconsistent* only when even
the most favourable counts are (p at its largest below ``alpha``),
*consistent* only when even the least favourable are, and otherwise
*undecidable at this rounding*.

Computation: ``X**2`` is convex in the counts (a sum of quadratic-over-linear
terms), so

* its minimum (the most favourable counts) solves a convex problem: for a
  fixed total ``n`` the minimum over the box is ``c_i = clip(mu p_i, lo_i,
  hi_i)`` (water filling, ``mu`` by bisection), and the minimum over ``n`` of
  that is convex in ``n`` (golden section). Counts are relaxed to reals,
  which can only lower the minimum: the largest p-value is an upper bound, so
  an *inconsistent* verdict is never caused by the relaxation;
* its maximum (the least favourable counts) lies at a vertex of the box: the
  vertices are enumerated for up to :data:`MAX_VERTEX_COORDS` rounded counts;
  beyond that an upper bound is used (each ``c_i**2`` replaced by its chord
  between ``lo_i`` and ``hi_i``, the best chord mass for each total by a
  fractional knapsack, maximised in closed form on each linear piece), which
  can only lower the smallest p-value: a *consistent* verdict is never caused
  by the bound.

The chi-square distribution is used for every count vector: rounded counters
are at least 100,000 each, where the exact tests that
:func:`meshstat.stats.headline_test` prefers for small counts agree with it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

__all__ = ["MAX_VERTEX_COORDS", "ChisquareRange", "chisquare_range", "verdict_over_range"]

#: Rounded counts up to which the least favourable vertex is found by enumeration (2**12 vertices).
MAX_VERTEX_COORDS = 12


@dataclass(frozen=True)
class ChisquareRange:
    """Pearson's ``X**2`` over every count vector a set of intervals allows.

    Attributes
    ----------
    statistic_low, statistic_high : float
        Smallest and largest ``X**2`` (``statistic_high`` is ``inf`` when some
        allowed counts are impossible: a count where the share is 0).
    pvalue_low, pvalue_high : float
        The p-values at those: the least and the most favourable counts.
    dof : int
        Outcomes with a positive share, minus one.
    impossible : bool
        Every allowed count vector puts a count where the share is 0.
    high_exact : bool
        ``statistic_high`` is the exact maximum (vertex enumeration) rather
        than an upper bound.
    """

    statistic_low: float
    statistic_high: float
    pvalue_low: float
    pvalue_high: float
    dof: int
    impossible: bool = False
    high_exact: bool = True


def verdict_over_range(r: ChisquareRange, alpha: float) -> str:
    """``"impossible"``, ``"consistent"``, ``"inconsistent"`` or ``"undecidable"`` at level ``alpha``."""
    if r.impossible:
        return "impossible"
    if r.pvalue_low >= alpha:
        return "consistent"
    if r.pvalue_high < alpha:
        return "inconsistent"
    return "undecidable"


def chisquare_range(
    low: Sequence[int], high: Sequence[int], shares: Sequence[Fraction | float]
) -> ChisquareRange:
    """The range of Pearson's ``X**2`` and its p-value when count ``i`` is anywhere in ``[low_i, high_i]``.

    Parameters
    ----------
    low, high : sequence of int
        The interval of each count (equal for a count known exactly).
    shares : sequence of Fraction or float
        The expected share of each outcome (summing to 1).

    Returns
    -------
    ChisquareRange

    Examples
    --------
    Counters printed ``10M``, ``10M``, ``11M`` for a uniform three-way split:
    the listing allows perfectly balanced counts and clearly unbalanced ones.

    >>> lo, hi = (9_999_500, 9_999_500, 10_499_500), (10_499_499, 10_499_499, 11_499_499)
    >>> r = chisquare_range(lo, hi, [Fraction(1, 3)] * 3)
    >>> round(r.pvalue_high, 6), r.pvalue_low < 1e-300, verdict_over_range(r, 0.05)
    (1.0, True, 'undecidable')
    """
    from scipy import special

    lo = np.asarray([float(x) for x in low], dtype=np.float64)
    hi = np.asarray([float(x) for x in high], dtype=np.float64)
    p = np.asarray([float(s) for s in shares], dtype=np.float64)
    if not (lo.shape == hi.shape == p.shape) or np.any(lo > hi) or np.any(lo < 0):
        raise ValueError("need 0 <= low <= high and one share per count")
    zero = p <= 0.0
    impossible = bool(np.any(lo[zero] > 0))
    possible_bad = bool(np.any(hi[zero] > 0))
    pos = ~zero
    lo, hi, p = lo[pos], hi[pos], p[pos]
    dof = int(pos.sum()) - 1
    if impossible:
        return ChisquareRange(math.inf, math.inf, 0.0, 0.0, max(dof, 0), impossible=True)
    if dof <= 0:
        return ChisquareRange(0.0, math.inf if possible_bad else 0.0, 0.0 if possible_bad else 1.0, 1.0, 0)
    p = p / p.sum()
    s_low = _min_statistic(lo, hi, p)
    s_high, exact = _max_statistic(lo, hi, p)
    if possible_bad:
        s_high = math.inf
    return ChisquareRange(
        s_low,
        s_high,
        float(special.chdtrc(dof, s_high)),
        float(special.chdtrc(dof, s_low)),
        dof,
        high_exact=exact,
    )


def _statistic(c: np.ndarray, p: np.ndarray) -> np.ndarray:
    """``X**2`` of count vectors ``c`` (last axis: outcomes), without cancellation."""
    n = c.sum(axis=-1, keepdims=True)
    e = n * p
    with np.errstate(divide="ignore", invalid="ignore"):
        out = (((c - e) ** 2) / e).sum(axis=-1)
    return np.where(n[..., 0] > 0, out, 0.0)


def _fill(n: float, lo: np.ndarray, hi: np.ndarray, p: np.ndarray) -> np.ndarray:
    """The counts of total ``n`` in the box closest to proportional: ``clip(mu p, lo, hi)``."""
    a, b = float(np.min(lo / p)), float(np.max(hi / p))
    for _ in range(200):
        mu = 0.5 * (a + b)
        if np.clip(mu * p, lo, hi).sum() < n:
            a = mu
        else:
            b = mu
        if b - a <= 1e-15 * max(abs(b), 1.0):
            break
    return np.clip(0.5 * (a + b) * p, lo, hi)


def _min_statistic(lo: np.ndarray, hi: np.ndarray, p: np.ndarray) -> float:
    """Smallest ``X**2`` over the box (counts relaxed to reals): golden section over the total."""
    n_lo, n_hi = float(lo.sum()), float(hi.sum())

    def g(n: float) -> float:
        return float(_statistic(_fill(n, lo, hi, p), p))

    if n_hi <= n_lo:
        return g(n_lo)
    inv = (math.sqrt(5.0) - 1.0) / 2.0
    a, b = n_lo, n_hi
    x1, x2 = b - inv * (b - a), a + inv * (b - a)
    f1, f2 = g(x1), g(x2)
    for _ in range(200):
        if f1 <= f2:
            b, x2, f2 = x2, x1, f1
            x1 = b - inv * (b - a)
            f1 = g(x1)
        else:
            a, x1, f1 = x1, x2, f2
            x2 = a + inv * (b - a)
            f2 = g(x2)
        if b - a <= 1e-12 * max(b, 1.0):
            break
    return max(0.0, min(f1, f2, g(n_lo), g(n_hi)))


def _max_statistic(lo: np.ndarray, hi: np.ndarray, p: np.ndarray) -> tuple[float, bool]:
    """Largest ``X**2`` over the box: exact by vertex enumeration, or an upper bound; and whether exact."""
    var = np.flatnonzero(hi > lo)
    r = var.size
    if r == 0:
        return float(_statistic(lo, p)), True
    if r <= MAX_VERTEX_COORDS:
        bits = (np.arange(1 << r, dtype=np.int64)[:, None] >> np.arange(r, dtype=np.int64)) & 1
        c = np.broadcast_to(lo, (1 << r, lo.size)).copy()
        c[:, var] = np.where(bits == 1, hi[var], lo[var])
        return float(np.max(_statistic(c, p))), True
    # X**2 = S/n - n, S = sum c_i**2 / p_i: each c_i**2 below its chord, chord mass by a fractional knapsack
    s0 = float(np.sum(lo * lo / p))
    n0 = float(lo.sum())
    w = (hi - lo)[var]
    a = ((hi * hi - lo * lo) / p)[var]
    order = np.argsort(-(a / w), kind="stable")
    w, a = w[order], a[order]
    slope = a / w
    n_start = n0 + np.concatenate(([0.0], np.cumsum(w)[:-1]))
    a_start = np.concatenate(([0.0], np.cumsum(a)[:-1]))
    n_end = n_start + w
    c0 = s0 + a_start - slope * n_start  # on a piece: h(n) = c0 / n + slope - n
    best = np.where(c0 < 0, np.clip(np.sqrt(np.maximum(-c0, 0.0)), n_start, n_end), n_start)
    with np.errstate(divide="ignore", invalid="ignore"):
        h = np.where(best > 0, c0 / best + slope - best, 0.0)
        h_end = np.where(n_end > 0, c0 / n_end + slope - n_end, 0.0)
    return float(max(np.max(h), np.max(h_end), 0.0)), False
