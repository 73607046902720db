"""Exact distributions behind the sample-size questions: boxes, tolerances, first hits, test power.

:func:`multinomial_box_probability` (Levin's Poisson representation),
:func:`tolerance_probability` (every share within ``±t``),
:func:`prob_all_at_least` (every backend gets ``m`` requests) and
:func:`binomial_test_power` (the equal-tailed binomial test). Weights here are
any non-negative integers or fractions; :mod:`meshstat.inference` validates a
configured split (Envoy's rules) and calls these. Boundaries ``n (p -+ t)`` are
computed with exact rationals (:func:`bounds`); :func:`binom_interval_prob` and
:func:`binom_outside_prob` are the binomial probabilities inside and outside them that
:mod:`meshstat.inference` (plans, bands) shares. numpy and scipy are imported inside the functions.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from fractions import Fraction
from typing import Any

from meshstat.errors import InvalidArgument
from meshstat.stats.binomial import bdtr as _bdtr
from meshstat.stats.binomial import bdtrc as _bdtrc

__all__ = [
    "INCLUSION_EXCLUSION_LIMIT",
    "binom_interval_prob",
    "binom_outside_prob",
    "binomial_test_power",
    "bounds",
    "multinomial_box_probability",
    "prob_all_at_least",
    "tolerance_probability",
]

#: Largest (1 + m) ** k terms of the inclusion-exclusion sum of :func:`prob_all_at_least`.
INCLUSION_EXCLUSION_LIMIT = 200_000


def _shares(weights: Sequence[int | Fraction], what: str = "weights") -> tuple[Fraction, ...]:
    """Exact shares ``w_i / sum(w)`` of non-negative integer or rational weights.

    Configured splits are validated by :mod:`meshstat.inference` (Envoy's
    rules) before they get here; this only refuses what has no shares.
    """
    out = []
    for w in weights:
        if isinstance(w, bool) or not isinstance(w, numbers.Rational):
            raise InvalidArgument(f"{what} must be integers or fractions, got {w!r}")
        if w < 0:
            raise InvalidArgument(f"{what} must be >= 0, got {w!r}")
        out.append(Fraction(int(w)) if isinstance(w, numbers.Integral) else Fraction(w))
    total = sum(out, Fraction(0))
    if not out or total <= 0:
        raise InvalidArgument(f"{what}: give at least one positive weight")
    return tuple(w / total for w in out)


def _tolerance(x: float | Fraction) -> Fraction:
    """A tolerance in (0, 1) as an exact rational (``0.1`` is 1/10: ``Fraction(str(x))``)."""
    if isinstance(x, Fraction):
        t = x
    elif isinstance(x, numbers.Real) and not isinstance(x, bool) and math.isfinite(float(x)):
        t = Fraction(str(float(x)))
    else:
        raise InvalidArgument(f"tolerance must be a number, got {x!r}")
    if not 0 < t < 1:
        raise InvalidArgument(f"tolerance must be in (0, 1), got {x!r}")
    return t


def bounds(n: Any, p: Fraction, t: Fraction) -> tuple[Any, Any]:
    """The counts within ``±t`` of share ``p`` out of ``n``: exact ``ceil(n (p - t))``, ``floor(n (p + t))``.

    Clipped to [0, n]; ``n`` is an int or a numpy array (then so are the bounds).
    """
    import numpy as np

    lo, hi = p - t, p + t
    scalar = not hasattr(n, "__len__")
    if scalar:
        nn = int(n)
        a = -((-nn * lo.numerator) // lo.denominator)
        b = (nn * hi.numerator) // hi.denominator
        return max(a, 0), min(b, nn)
    arr = np.asarray(n, dtype=np.int64)
    big = max(abs(lo.numerator), lo.denominator, abs(hi.numerator), hi.denominator)
    nmax = int(arr.max()) if arr.size else 0
    if big * max(nmax, 1) < 2**62:
        a = -((-arr * lo.numerator) // lo.denominator)
        b = (arr * hi.numerator) // hi.denominator
    else:  # exact Python integers
        obj = arr.astype(object)
        a = np.array([-((-x * lo.numerator) // lo.denominator) for x in obj], dtype=np.int64)
        b = np.array([(x * hi.numerator) // hi.denominator for x in obj], dtype=np.int64)
    return np.maximum(a, 0), np.minimum(b, arr)


def binom_interval_prob(a: Any, b: Any, n: Any, p: float) -> Any:
    """``P(a <= X <= b)`` for ``X ~ Binomial(n, p)``, vectorised (0 where ``a > b``)."""
    import numpy as np

    a = np.asarray(a, dtype=np.int64)
    b = np.asarray(b, dtype=np.int64)
    n = np.asarray(n, dtype=np.int64)
    upper = _bdtr(np.maximum(b, 0), n, p)
    lower = np.where(a >= 1, _bdtr(np.maximum(a - 1, 0), n, p), 0.0)
    # complement form is more accurate when the interval is in one tail
    out = np.where(b >= a, np.clip(upper - lower, 0.0, 1.0), 0.0)
    return out


def binom_outside_prob(a: Any, b: Any, n: Any, p: float) -> tuple[Any, Any]:
    """``(P(X < a), P(X > b))`` for ``X ~ Binomial(n, p)``, accurate in the tails."""
    import numpy as np

    a = np.asarray(a, dtype=np.int64)
    b = np.asarray(b, dtype=np.int64)
    n = np.asarray(n, dtype=np.int64)
    below = np.where(a >= 1, _bdtr(np.maximum(a - 1, 0), n, p), 0.0)
    above = np.where(b < n, _bdtrc(np.clip(b, 0, None), n, p), 0.0)
    return below, above


def multinomial_box_probability(
    n: int, probs: Sequence[float | Fraction], low: Sequence[int], high: Sequence[int]
) -> float:
    """``P(low_i <= X_i <= high_i for every i)`` for ``X ~ Multinomial(n, probs)``, exactly.

    Uses the Poisson representation of the multinomial (Levin, "A representation
    for multinomial cumulative distribution functions", Ann. Statist. 9(5), 1981):
    with independent ``Y_i ~ Poisson(n p_i)``,
    ``P(box) = P(Y in box, sum Y = n) / P(sum Y = n)``; the numerator is the
    convolution of the box-restricted Poisson pmfs evaluated at ``n``. Each pmf
    is cut where the Poisson tail is below ``1e-40`` (Chernoff bound), a
    relative error far below double precision.

    Parameters
    ----------
    n : int
        Trials.
    probs : sequence
        Cell probabilities (normalised to sum 1; zeros allowed: such a cell is always 0).
    low, high : sequence of int
        Inclusive bounds per cell.
    """
    import numpy as np
    from scipy import special

    n = int(n)
    if n < 0:
        raise InvalidArgument(f"n must be >= 0, got {n}")
    p = np.asarray([float(x) for x in probs], dtype=np.float64)
    if not (len(p) == len(low) == len(high)):
        raise InvalidArgument("probs, low and high must have the same length")
    if np.any(p < 0) or p.sum() <= 0:
        raise InvalidArgument("probabilities must be >= 0 with a positive sum")
    p = p / p.sum()
    cells = []
    for pi, lo_i, hi_i in zip(p, low, high, strict=True):
        lo_c, hi_c = max(int(lo_i), 0), min(int(hi_i), n)
        if lo_c > hi_c:
            return 0.0
        if pi == 0.0:
            if lo_c > 0:
                return 0.0
            continue
        cells.append((float(pi), lo_c, hi_c))
    if n == 0:
        return 1.0
    if len(cells) == 1:
        return 1.0 if cells[0][1] <= n <= cells[0][2] else 0.0
    arrays = []
    for pi, lo_c, hi_c in cells:
        mu = n * pi
        sd = math.sqrt(mu)
        t_lo = max(lo_c, math.floor(mu - 14.0 * sd - 1.0))
        t_hi = min(hi_c, math.ceil(mu + 14.0 * sd + 65.0))
        if t_lo > t_hi:
            return 0.0
        k = np.arange(t_lo, t_hi + 1, dtype=np.float64)
        pmf = np.exp(special.xlogy(k, mu) - mu - special.gammaln(k + 1.0))
        arrays.append((t_lo, pmf))
    # convolve all but the last, keeping only indices that can still sum to n
    offset, cur = arrays[0]
    max_rest = [0] * len(arrays)
    for j in range(len(arrays) - 2, -1, -1):
        t_lo, pmf = arrays[j + 1]
        max_rest[j] = max_rest[j + 1] + t_lo + len(pmf) - 1
    for j in range(1, len(arrays) - 1):
        t_lo, pmf = arrays[j]
        cur = np.convolve(cur, pmf)
        offset += t_lo
        # keep sums s = offset + idx with s <= n and s + max_rest[j] >= n
        keep_hi = n - offset
        keep_lo = n - max_rest[j] - offset
        lo_i = max(keep_lo, 0)
        hi_i = min(keep_hi, len(cur) - 1)
        if lo_i > hi_i:
            return 0.0
        cur = cur[lo_i : hi_i + 1]
        offset += lo_i
    t_last, last = arrays[-1]
    # need offset + i + t_last + j == n
    target = n - offset - t_last
    i = np.arange(len(cur))
    j = target - i
    ok = (j >= 0) & (j < len(last))
    if not np.any(ok):
        return 0.0
    num = float(np.dot(cur[ok], last[j[ok]]))
    log_den = special.xlogy(n, n) - n - special.gammaln(n + 1.0)  # log Poisson(n; n) pmf at n
    if num <= 0.0:
        return 0.0
    return float(min(1.0, max(0.0, math.exp(math.log(num) - log_den))))


def tolerance_probability(
    weights: Sequence[int | Fraction],
    n: int,
    tolerance: float | Fraction,
    *,
    truth: Sequence[int | Fraction] | None = None,
) -> float:
    """P(every backend's observed share is within ``±tolerance`` of its configured share) in ``n`` requests.

    ``truth`` (weights) is the split the requests really follow (default: the
    configured one); this gives the operating characteristic of a fixed-tolerance
    check such as Gateway API's ``HTTPRouteWeight`` conformance test. Weights
    are non-negative integers or fractions (shares ``w / sum(w)``); a float
    tolerance is read as its decimal text (``0.05`` is exactly 1/20).
    """
    shares = _shares(weights)
    t = _tolerance(tolerance)
    if truth is None:
        true_shares = shares
    else:
        true_shares = _shares(truth, "truth weights")
        if len(true_shares) != len(shares):
            raise InvalidArgument(f"truth has {len(true_shares)} weights but weights has {len(shares)}")
    n = int(n)
    if n < 1:
        raise InvalidArgument(f"n must be a positive integer, got {n}")
    lows, highs = [], []
    for p in shares:
        a, b = bounds(n, p, t)
        lows.append(a)
        highs.append(b)
    pos = [i for i, s in enumerate(true_shares) if s > 0]
    if len(pos) == 2 and all(lows[i] <= 0 for i in range(len(shares)) if i not in pos):
        i, j = pos
        # X_j = n - X_i: intersect both boxes on X_i
        a = max(lows[i], n - highs[j])
        b = min(highs[i], n - lows[j])
        pi = float(true_shares[i] / (true_shares[i] + true_shares[j]))
        return float(binom_interval_prob(a, b, n, pi))
    return multinomial_box_probability(n, true_shares, lows, highs)


def prob_all_at_least(weights: Sequence[int | Fraction], n: int | Sequence[int], m: int = 1) -> Any:
    """P(every backend with a positive weight gets at least ``m`` of ``n`` requests), exactly.

    Inclusion-exclusion over sets S of backends:
    ``P(all >= m) = sum_S (-1)^|S| P(X_i < m for i in S)``, where the inner
    probability sums the multinomial over ``x_i < m`` (``(1 - p_S)^n`` when
    ``m = 1``). That is ``(1 + m)^k`` terms; beyond 200,000 the box probability
    of :func:`multinomial_box_probability` is used instead. Vectorised over ``n``.
    """
    import itertools

    import numpy as np
    from scipy import special

    shares = _shares(weights)
    m = int(m)
    if m < 1:
        raise InvalidArgument(f"min_hits must be a positive integer, got {m}")
    pos = [s for s in shares if s > 0]
    k = len(pos)
    scalar = not hasattr(n, "__len__")
    ns = np.atleast_1d(np.asarray(n, dtype=np.int64))
    if np.any(ns < 0):
        raise InvalidArgument("n must be >= 0")
    if (1 + m) ** k > INCLUSION_EXCLUSION_LIMIT:
        out = np.array(
            [multinomial_box_probability(int(x), pos, [m] * k, [int(x)] * k) for x in ns], dtype=np.float64
        )
        return float(out[0]) if scalar else out
    logp = [math.log(float(s)) for s in pos]
    signs, sx, lcoef, logq = [], [], [], []
    for size in range(0, k + 1):
        for subset in itertools.combinations(range(k), size):
            q = 1 - sum((pos[i] for i in subset), Fraction(0))
            lq = math.log(float(q)) if q > 0 else -math.inf
            for xs in itertools.product(range(m), repeat=size):
                signs.append(-1.0 if size % 2 else 1.0)
                sx.append(sum(xs))
                lcoef.append(sum(x * logp[i] - math.lgamma(x + 1) for x, i in zip(xs, subset, strict=True)))
                logq.append(lq)
    signs_a = np.asarray(signs)
    sx_a = np.asarray(sx, dtype=np.float64)
    lcoef_a = np.asarray(lcoef)
    logq_a = np.asarray(logq)
    out = np.empty(len(ns), dtype=np.float64)
    for idx, nv in enumerate(ns):
        rest = float(nv) - sx_a
        valid = rest >= 0
        r = np.where(valid, rest, 0.0)
        # (n - sx) * log q with 0 * log 0 = 0
        tail = np.where(r > 0, r * np.where(np.isfinite(logq_a), logq_a, 0.0), 0.0)
        tail = np.where((r > 0) & ~np.isfinite(logq_a), -np.inf, tail)
        lt = special.gammaln(float(nv) + 1.0) - special.gammaln(r + 1.0) + lcoef_a + tail
        terms = np.where(valid, np.exp(lt), 0.0)
        out[idx] = math.fsum((signs_a * terms).tolist())
    out = np.clip(out, 0.0, 1.0)
    return float(out[0]) if scalar else out


def binomial_test_power(n: Any, p0: float, p1: float, alpha: float = 0.05) -> Any:
    """Exact power of the equal-tailed two-sided binomial test of ``p = p0`` when the truth is ``p1``.

    The test rejects when ``P(X <= x) <= alpha/2`` or ``P(X >= x) <= alpha/2``
    under ``p0`` (the dual of the Clopper-Pearson interval; its size is at most
    ``alpha``). Vectorised over ``n``: the rejection limits come from a
    bisection on the exact binomial cdf run for all ``n`` at once.
    """
    import numpy as np

    ns = np.atleast_1d(np.asarray(n, dtype=np.int64))
    scalar = not hasattr(n, "__len__")
    a = alpha / 2.0
    lo_x, hi_x = _reject_limits(ns, float(p0), a)
    low_part = np.where(lo_x >= 0, _bdtr(np.maximum(lo_x, 0), ns, p1), 0.0)
    high_part = np.where(hi_x <= ns, _bdtrc(np.maximum(hi_x - 1, 0), ns, p1), 0.0)
    out = np.clip(low_part + high_part, 0.0, 1.0)
    return float(out[0]) if scalar else out


def _reject_limits(ns: Any, p0: float, a: float) -> tuple[Any, Any]:
    """Largest x with ``F(x) <= a`` (-1 if none) and smallest x with ``P(X >= x) <= a`` (n+1 if none)."""
    import numpy as np

    # lower: invariant F(lo) <= a (F(-1) = 0) and F(hi) > a (F(n) = 1 > a)
    lo = np.full(ns.shape, -1, dtype=np.int64)
    hi = ns.copy()
    while True:
        active = hi - lo > 1
        if not np.any(active):
            break
        mid = (lo + hi) // 2
        f = _bdtr(np.maximum(mid, 0), ns, p0)
        ok = f <= a
        lo = np.where(active & ok, mid, lo)
        hi = np.where(active & ~ok, mid, hi)
    lower = lo
    # upper: S(x) = P(X >= x); invariant S(lo) > a (S(0) = 1), S(hi) <= a (S(n+1) = 0)
    lo = np.zeros(ns.shape, dtype=np.int64)
    hi = ns + 1
    while True:
        active = hi - lo > 1
        if not np.any(active):
            break
        mid = (lo + hi) // 2
        s = _bdtrc(np.maximum(mid - 1, 0), ns, p0)
        ok = s <= a
        hi = np.where(active & ok, mid, hi)
        lo = np.where(active & ~ok, mid, lo)
    return lower, hi
