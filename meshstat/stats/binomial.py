"""The binomial distribution for any ``n``: cdf and survival, tails, quantiles, and THE binomial p-value.

:func:`bdtr` and :func:`bdtrc` take ``n`` as a float (scipy's own take a C
``int`` and give NaN from ``2**31`` on). :func:`binomial_pvalue` is the one
two-sided binomial p-value of meshstat: ``check``, the counters check and the
``p_value`` column of ``simulate`` all use it. :mod:`scipy.special` is
imported on first use.
"""

from __future__ import annotations

import math

import numpy as np

from meshstat.errors import InvalidArgument

__all__ = ["REL_TOL", "bdtr", "bdtrc", "binom_quantile", "binomial_pvalue", "binomial_two_sided_tail"]

#: Relative tolerance when comparing outcome probabilities with the observed one (as scipy's binomtest);
#: the multinomial test of :mod:`meshstat.stats.gof` uses it too.
REL_TOL = 1e-7


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


def binom_quantile(q: float, n: int, p: float) -> int:
    """Smallest k with ``P(X <= k) >= q`` (exact, by bisection on scipy's binomial cdf).

    ``binom_quantile(a, n, p)`` and ``binom_quantile(1 - a, n, p)`` are the ends of the central
    ``1 - 2a`` band of ``k`` (``scipy.stats.binom.ppf``, also for ``n`` beyond a C ``int``).
    """

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


def binomial_pvalue(k: int, n: int, p: float) -> float:
    """Exact two-sided binomial p-value: total probability of outcomes no more likely than ``k``.

    The same definition as ``scipy.stats.binomtest(k, n, p).pvalue`` (relative
    tolerance 1e-7 when comparing probabilities), computed with
    :mod:`scipy.special` in O(log n): the pmf is unimodal, so the outcomes on
    the other side of the mean that are no more likely than ``k`` form a tail
    found by bisection.

    This is the p-value of ``check``, of the counters check and of the
    ``p_value`` column of ``simulate``. The equal-tailed p-value
    ``min(1, 2 min(P(X <= k), P(X >= k)))`` orders outcomes by tail area, not
    by probability; it agrees with this one where the pmf is symmetric
    (``p = 1/2``) and differs elsewhere (8,999,266 of 10,000,000 at 0.9:
    0.43938 equal-tailed, 0.43911 here). The equal-tailed *test* remains in
    :func:`meshstat.stats.binomial_test_power`, the power that sample-size
    planning uses (the dual of the Clopper-Pearson interval).
    """
    from scipy import special

    k, n = int(k), int(n)
    if not 0 <= k <= n:
        raise InvalidArgument(f"need 0 <= k <= n, got k={k}, n={n}")
    if p <= 0.0 or p >= 1.0:
        return 1.0 if k == (0 if p <= 0.0 else n) else 0.0

    def lpmf(x: int) -> float:
        return float(
            special.gammaln(n + 1.0) - special.gammaln(x + 1.0) - special.gammaln(n - x + 1.0)
            + special.xlogy(x, p) + special.xlog1py(n - x, -p)
        )

    mean = n * p
    lim = lpmf(k) + math.log1p(REL_TOL)
    if k == mean:
        return 1.0
    if k < mean:
        # smallest y in [ceil(mean), n] with pmf(y) <= pmf(k); pmf is non-increasing there
        lo, hi = math.ceil(mean) - 1, n + 1  # pmf(lo) > lim (or lo below the range), y in (lo, hi]
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if lpmf(mid) <= lim:
                hi = mid
            else:
                lo = mid
        upper = float(bdtrc(hi - 1, n, p)) if hi <= n else 0.0
        return float(min(1.0, float(bdtr(k, n, p)) + upper))
    # largest y in [0, floor(mean)] with pmf(y) <= pmf(k); pmf is non-decreasing there
    lo, hi = -1, math.floor(mean) + 1  # y in [lo, hi)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if lpmf(mid) <= lim:
            lo = mid
        else:
            hi = mid
    lower = float(bdtr(lo, n, p)) if lo >= 0 else 0.0
    return float(min(1.0, lower + float(bdtrc(k - 1, n, p))))  # k > mean >= 0, so k >= 1
