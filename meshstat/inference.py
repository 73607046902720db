"""The statistics questions users ask about a configured split.

Four questions, each a function returning a frozen result object (scipy style:
fields plus methods; ``.to_frame()`` delegates to :mod:`meshstat.report.inference`,
``.summary()`` is the one-line plain-language answer):

:func:`check_split`
    Is an observed split (``5, 5``) consistent with the configured one (``90/10``)?
    Exact binomial test for two backends, exact multinomial test (enumeration)
    where feasible, chi-square / G-test otherwise; likelihood ratios against
    alternatives the user names ("the rule is not in effect": ``50/50``).
:func:`plan_tolerance`, :func:`plan_min_hits`, :func:`plan_detect`
    How many requests until the observed shares are within a tolerance, until
    every backend got at least ``m`` requests, or until a skewed split can be
    told from the configured one?
:func:`bands`
    Where does each backend's observed share fall by chance in ``n`` requests
    (or a window of ``W`` requests, or ``T`` seconds at ``Q`` requests/s)?
    Exact binomial bands, checked by simulation through :func:`meshstat.engine.simulate`.
:func:`canary`
    A canary rollout's traffic per interval: expected canary requests, the
    chance of none, and the error-rate increase a two-proportion test can see.

Conventions
-----------
* Weights are integers, as in Envoy (validated by
  :meth:`meshstat.model.Weighted.from_weights`); the configured share is
  ``w / sum(w)`` exactly.
* "Within ``±x``" is inclusive: ``|share - p| <= x``; "outside" is ``> x``.
  Boundaries are computed with exact rationals (``Fraction(str(x))``), so
  ``15 * (0.5 - 0.1) = 6`` is a boundary, not ``5.999...``.
* Planners return the **first** ``n`` that meets the target by exact
  computation (every smaller ``n`` fails), together with, where the exact
  probability is not monotone in ``n`` (lattice effects of the binomial), the
  smallest ``n_sustained`` from which every ``n`` up to ``checked_to`` meets it.
  :func:`plan_min_hits` is monotone (one more request never lowers a count), so
  the two coincide there.

Everything heavy (numpy, scipy) is imported inside the functions.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, NamedTuple

from meshstat.errors import ConfigParseError, InvalidArgument
from meshstat.model import decimal_fraction
from meshstat.stats import bdtr as _bdtr
from meshstat.stats import bdtrc as _bdtrc

__all__ = [
    "AcceptanceResult",
    "Alternative",
    "BandsResult",
    "CanaryResult",
    "CanaryStep",
    "CheckResult",
    "PlanResult",
    "PlanRow",
    "acceptance_probability",
    "bands",
    "binomial_pvalue",
    "binomial_test_power",
    "canary",
    "check_split",
    "format_duration",
    "multinomial_box_probability",
    "parse_duration",
    "plan_detect",
    "plan_min_hits",
    "plan_tolerance",
    "prob_all_at_least",
    "read_observed",
    "tolerance_probability",
]

#: Largest number of outcome slices (``C(n+k-2, k-2)``) enumerated by the exact multinomial test.
EXACT_MULTINOMIAL_LIMIT = 1_000_000
#: Relative tolerance when comparing outcome probabilities with the observed one (as scipy's binomtest).
_REL_TOL = 1e-7
#: Largest (1 + m) ** k terms of the inclusion-exclusion sum of :func:`prob_all_at_least`.
_INCLUSION_EXCLUSION_LIMIT = 200_000
#: Exact scans over every n are done up to this n; beyond, from a quarter of the approximation (noted).
_FULL_SCAN_LIMIT = 2_000_000


# ----------------------------------------------------------------- small helpers


def _split(weights: Iterable[int | str], names: Sequence[str] | None = None, *, what: str = "weights") -> tuple[
    tuple[str, ...], tuple[int, ...], tuple[Fraction, ...]
]:
    """Validate integer weights (Envoy's rules) -> (names, weights, exact shares)."""
    from meshstat import model

    raw = list(weights)
    if len(raw) < 1:
        raise InvalidArgument(f"{what}: give at least one weight")
    children = None
    if names is not None:
        names = list(names)
        if len(names) != len(raw):
            raise InvalidArgument(f"{len(names)} names for {len(raw)} {what}")
        if len(set(names)) != len(names):
            raise InvalidArgument(f"backend names must be unique, got {', '.join(names)}")
        children = tuple(model.Backend(name=str(x)) for x in names)
    try:
        st = model.Weighted.from_weights(raw, children)
    except InvalidArgument as exc:
        raise InvalidArgument(f"{what}: {exc}") from None
    except Exception as exc:  # ModelError: zero total, too large
        from meshstat.errors import ModelError

        if isinstance(exc, ModelError):
            raise InvalidArgument(f"{what}: {exc}") from None
        raise
    labels = tuple(c.name for c in st.children)  # type: ignore[union-attr]
    return labels, tuple(st.weights), tuple(st.shares())


def _fmt_split(weights: Sequence[int]) -> str:
    return "/".join(str(w) for w in weights)


def _fmt_p(p: float) -> str:
    """A p-value or probability in two significant digits (``0.0016``, ``7.4e-35``)."""
    if p is None or (isinstance(p, float) and math.isnan(p)):
        return "n/a"
    if p == 0:
        return "0"
    if p >= 0.001:
        return f"{p:.2g}" if p < 0.1 else f"{p:.2f}"
    return f"{p:.2g}"


def _fmt_pct(x: float) -> str:
    v = 100.0 * float(x)
    if v == 0:
        return "0%"
    if abs(v - round(v)) < 1e-9:
        return f"{round(v)}%"
    return f"{v:.3g}%"


def _as_fraction(x: float | str | Fraction, what: str, *, low: float = 0.0, high: float = 1.0) -> Fraction:
    try:
        f = x if isinstance(x, Fraction) else decimal_fraction(str(x).strip())
    except (ValueError, ZeroDivisionError):
        raise InvalidArgument(f"{what} must be a number, got {x!r}") from None
    if not low < f < high:
        raise InvalidArgument(f"{what} must be in ({low:g}, {high:g}), got {x!r}")
    return f


def _as_prob(x: float, what: str) -> float:
    try:
        v = float(x)
    except (TypeError, ValueError):
        raise InvalidArgument(f"{what} must be a number in (0, 1), got {x!r}") from None
    if not 0.0 < v < 1.0:
        raise InvalidArgument(f"{what} must be in (0, 1), got {x!r}")
    return v


def _as_qps(qps: float | None) -> float | None:
    if qps is None:
        return None
    try:
        v = float(qps)
    except (TypeError, ValueError):
        raise InvalidArgument(f"qps must be a positive number, got {qps!r}") from None
    if not v > 0 or math.isinf(v):
        raise InvalidArgument(f"qps must be a positive number, got {qps!r}")
    return v


_DURATION_RE = re.compile(r"(\d+(?:\.\d*)?|\.\d+)\s*(ms|s|m|h|d)?", re.IGNORECASE)
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}


def parse_duration(text: str | float | int) -> float:
    """Seconds in ``"60s"``, ``"5m"``, ``"1h"``, ``"1h30m"``, ``"250ms"`` or a plain number of seconds.

    Raises
    ------
    InvalidArgument
        For anything else, or a duration that is not positive.
    """
    if isinstance(text, int | float) and not isinstance(text, bool):
        value = float(text)
    else:
        raw = str(text).strip()
        pos = 0
        value = 0.0
        parts = 0
        while pos < len(raw):
            m = _DURATION_RE.match(raw, pos)
            if m is None or m.end() == pos:
                raise InvalidArgument(f"expected a duration such as 60s, 5m, 1h or plain seconds, got {text!r}")
            unit = m.group(2).lower() if m.group(2) else None
            if unit is None and (parts > 0 or m.end() < len(raw)):
                raise InvalidArgument(f"expected a duration such as 60s, 5m, 1h or plain seconds, got {text!r}")
            value += float(m.group(1)) * _UNIT_SECONDS[unit]
            parts += 1
            pos = m.end()
            while pos < len(raw) and raw[pos] == " ":
                pos += 1
        if parts == 0:
            raise InvalidArgument(f"expected a duration such as 60s, 5m, 1h or plain seconds, got {text!r}")
    if not value > 0 or math.isinf(value):
        raise InvalidArgument(f"a duration must be positive, got {text!r}")
    return value


def format_duration(seconds: float | None) -> str:
    """``3725`` -> ``"1h 2m 5s"``; sub-minute values keep one decimal (``"12.5s"``)."""
    if seconds is None or (isinstance(seconds, float) and (math.isnan(seconds) or math.isinf(seconds))):
        return "n/a"
    s = float(seconds)
    if s < 60:
        return f"{s:.3g}s" if s < 10 else f"{s:.1f}s".replace(".0s", "s")
    total = round(s)
    d, rest = divmod(total, 86400)
    h, rest = divmod(rest, 3600)
    m, sec = divmod(rest, 60)
    out = []
    if d:
        out.append(f"{d}d")
    if h:
        out.append(f"{h}h")
    if m:
        out.append(f"{m}m")
    if sec and not d:
        out.append(f"{sec}s")
    return " ".join(out) or "0s"


def _bounds(n: Any, p: Fraction, t: Fraction) -> tuple[Any, Any]:
    """Exact ``ceil(n (p - t))`` and ``floor(n (p + t))`` (numpy arrays or ints), clipped to [0, n]."""
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


def _binom_interval_prob(a: Any, b: Any, n: Any, p: float) -> Any:
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


def _binom_outside_prob(a: Any, b: Any, n: Any, p: float) -> tuple[Any, Any]:
    """``(P(X < a), P(X > b))`` for ``X ~ Binomial(n, p)``, accurate in the tails."""
    import numpy as np

    a = np.asarray(a, dtype=np.int64)
    b = np.asarray(b, dtype=np.int64)
    n = np.asarray(n, dtype=np.int64)
    below = np.where(a >= 1, _bdtr(np.maximum(a - 1, 0), n, p), 0.0)
    above = np.where(b < n, _bdtrc(np.clip(b, 0, None), n, p), 0.0)
    return below, above


# ----------------------------------------------------------------- exact distributions


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
    weights: Sequence[int | str], n: int, tolerance: float | str, *, truth: Sequence[int | str] | None = None
) -> float:
    """P(every backend's observed share is within ``±tolerance`` of its configured share) in ``n`` requests.

    ``truth`` (weights) is the split the requests really follow (default: the
    configured one); this gives the operating characteristic of a fixed-tolerance
    check such as Gateway API's ``HTTPRouteWeight`` conformance test.
    """
    _, ws, shares = _split(weights)
    t = _as_fraction(tolerance, "tolerance")
    if truth is None:
        true_shares = shares
    else:
        _, tw, true_shares = _split(truth, what="truth weights")
        if len(tw) != len(ws):
            raise InvalidArgument(f"truth has {len(tw)} weights but weights has {len(ws)}")
    n = int(n)
    if n < 1:
        raise InvalidArgument(f"n must be a positive integer, got {n}")
    lows, highs = [], []
    for p in shares:
        a, b = _bounds(n, p, t)
        lows.append(a)
        highs.append(b)
    pos = [i for i, s in enumerate(true_shares) if s > 0]
    if len(pos) == 2 and all(lows[i] <= 0 for i in range(len(ws)) if i not in pos):
        i, j = pos
        # X_j = n - X_i: intersect both boxes on X_i
        a = max(lows[i], n - highs[j])
        b = min(highs[i], n - lows[j])
        pi = float(true_shares[i] / (true_shares[i] + true_shares[j]))
        return float(_binom_interval_prob(a, b, n, pi))
    return multinomial_box_probability(n, true_shares, lows, highs)


def prob_all_at_least(weights: Sequence[int | str], n: int | Sequence[int], m: int = 1) -> Any:
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

    _, ws, shares = _split(weights)
    m = int(m)
    if m < 1:
        raise InvalidArgument(f"min_hits must be a positive integer, got {m}")
    pos = [s for s in shares if s > 0]
    k = len(pos)
    scalar = not hasattr(n, "__len__")
    ns = np.atleast_1d(np.asarray(n, dtype=np.int64))
    if np.any(ns < 0):
        raise InvalidArgument("n must be >= 0")
    if (1 + m) ** k > _INCLUSION_EXCLUSION_LIMIT:
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


# ----------------------------------------------------------------- check


@dataclass(frozen=True)
class Alternative:
    """Likelihood ratio of the observed counts under an alternative split vs the configured one.

    Attributes
    ----------
    weights : tuple of int
        The alternative (``50, 50``: "the rule is not in effect").
    log10_lr : float
        ``log10 L(alternative) / L(configured)``; positive favours the alternative
        (``+inf``: the configured split cannot produce the data, ``-inf``: the alternative cannot).
    """

    weights: tuple[int, ...]
    shares: tuple[float, ...]
    log10_lr: float

    @property
    def lr(self) -> float:
        """The ratio itself (may overflow to ``inf``)."""
        if math.isnan(self.log10_lr):
            return math.nan
        if self.log10_lr > 308:
            return math.inf
        return 10.0**self.log10_lr

    @property
    def label(self) -> str:
        """``"50/50"``."""
        return _fmt_split(self.weights)


@dataclass(frozen=True)
class CheckResult:
    """Outcome of :func:`check_split`.

    Attributes
    ----------
    names, weights, shares : tuple
        Backends, configured weights and exact shares (as floats).
    observed : tuple of int
        Observed requests per backend; ``n`` their sum.
    pvalue : float
        The test's p-value (see ``method``).
    method : str
        ``"exact binomial"``, ``"exact multinomial"``, ``"chi-square"`` or ``"impossible"``.
    chisquare_statistic, chisquare_pvalue, gtest_statistic, gtest_pvalue : float
        Pearson's X^2 and the G-test, always computed (``meshstat.stats.goodness_of_fit``).
    dof : int
        Degrees of freedom of those two.
    alternatives : tuple of Alternative
        Likelihood ratios against the named alternatives.
    alpha : float
        Level of the verdict.
    notes : tuple of str
        Remarks (approximation used, small expected counts).
    """

    names: tuple[str, ...]
    weights: tuple[int, ...]
    shares: tuple[float, ...]
    observed: tuple[int, ...]
    n: int
    pvalue: float
    method: str
    chisquare_statistic: float
    chisquare_pvalue: float
    gtest_statistic: float
    gtest_pvalue: float
    dof: int
    alternatives: tuple[Alternative, ...] = ()
    alpha: float = 0.05
    notes: tuple[str, ...] = ()

    @property
    def consistent(self) -> bool:
        """Whether the data are consistent with the configured split at level ``alpha``."""
        return self.pvalue >= self.alpha

    def _focus(self) -> int:
        """Index of the backend whose count strays most (largest |z|; ties: smallest share)."""
        best, best_key = 0, None
        for i, (o, p) in enumerate(zip(self.observed, self.shares, strict=True)):
            if p <= 0:
                z = math.inf if o > 0 else 0.0
            elif p >= 1:
                z = math.inf if o != self.n else 0.0
            else:
                z = abs(o - self.n * p) / math.sqrt(self.n * p * (1 - p))
            key = (round(z, 9), -p)
            if best_key is None or key > best_key:
                best, best_key = i, key
        return best

    def summary(self) -> str:
        """The plain verdict: ``"not noise: 5 of 10 at 10% has p = 0.0016 (exact binomial)"``."""
        split = _fmt_split(self.weights)
        i = self._focus()
        what = f"{self.observed[i]} of {self.n} at {_fmt_pct(self.shares[i])}"
        if len(self.names) > 2:
            what = f"{self.names[i]} got {what}"
        if self.method == "impossible":
            text = (
                f"impossible under {split}: {self.names[i]} has weight 0 but got "
                f"{self.observed[i]} of {self.n} requests"
            )
        elif self.consistent:
            text = f"consistent with {split}: {what}, p = {_fmt_p(self.pvalue)} ({self.method})"
        else:
            text = f"not noise: {what} has p = {_fmt_p(self.pvalue)} ({self.method})"
        for alt in self.alternatives:
            text += "; " + _lr_phrase(alt, split)
        return text

    verdict = summary

    def to_frame(self) -> Any:
        """Per-backend table (polars): expected vs observed, z, 95% Wilson interval."""
        from meshstat.report import inference as rep

        return rep.to_frame(self)

    def tests_frame(self) -> Any:
        """One row per test (exact, chi-square, G-test, likelihood ratios)."""
        from meshstat.report import inference as rep

        return rep.check_tests_frame(self)


def _lr_phrase(alt: Alternative, split: str) -> str:
    lg = alt.log10_lr
    if math.isnan(lg):
        return f"neither {split} nor {alt.label} can produce these counts"
    if lg == math.inf:
        return f"only {alt.label} (not {split}) can produce these counts"
    if lg == -math.inf:
        return f"{alt.label} cannot produce these counts"
    if lg >= 0:
        return f"the data favour {alt.label} over {split} by {_fmt_ratio(lg)}:1"
    return f"the data favour {split} over {alt.label} by {_fmt_ratio(-lg)}:1"


def _fmt_ratio(log10_r: float) -> str:
    if log10_r < 6:
        r = 10.0**log10_r
        return f"{r:,.0f}" if r >= 10 else f"{r:.2g}"
    return f"1e{log10_r:.0f}"


def binomial_pvalue(k: int, n: int, p: float) -> float:
    """Exact two-sided binomial p-value: total probability of outcomes no more likely than ``k``.

    The same definition as ``scipy.stats.binomtest(k, n, p).pvalue`` (relative
    tolerance 1e-7 when comparing probabilities), computed with
    :mod:`scipy.special` in O(log n): the pmf is unimodal, so the outcomes on
    the other side of the mean that are no more likely than ``k`` form a tail
    found by bisection.
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
    lim = lpmf(k) + math.log1p(_REL_TOL)
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
        upper = float(_bdtrc(hi - 1, n, p)) if hi <= n else 0.0
        return float(min(1.0, float(_bdtr(k, n, p)) + upper))
    # largest y in [0, floor(mean)] with pmf(y) <= pmf(k); pmf is non-decreasing there
    lo, hi = -1, math.floor(mean) + 1  # y in [lo, hi)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if lpmf(mid) <= lim:
            lo = mid
        else:
            hi = mid
    lower = float(_bdtr(lo, n, p)) if lo >= 0 else 0.0
    return float(min(1.0, lower + float(_bdtrc(k - 1, n, p))))  # k > mean >= 0, so k >= 1


def _bounded_vectors(n: int, d: int) -> Any:
    """All vectors of ``d`` non-negative integers with sum <= n (int64 array, ``C(n+d, d)`` rows), vectorised."""
    import numpy as np

    rows = np.zeros((1, 0), dtype=np.int64)
    left = np.array([n], dtype=np.int64)
    for _ in range(d):
        reps = left + 1
        total = int(reps.sum())
        starts = np.repeat(np.cumsum(reps) - reps, reps)
        x = np.arange(total, dtype=np.int64) - starts
        rows = np.concatenate([np.repeat(rows, reps, axis=0), x[:, None]], axis=1)
        left = np.repeat(left, reps) - x
    return rows


def _exact_multinomial_pvalue(obs: Sequence[int], probs: Sequence[float]) -> float:
    """Exact multinomial test: total probability of the outcomes no more likely than the observed one.

    Outcomes are enumerated over the first ``k - 2`` cells only (``C(n+k-2, k-2)``
    prefixes); given a prefix with ``m`` requests left, the last two cells are
    ``Binomial(m, q)``, whose pmf is unimodal, so the outcomes below the
    threshold are two tails found by a bisection run for all prefixes at once,
    and their mass comes from the binomial cdf.
    """
    import numpy as np
    from scipy import special

    n = int(sum(obs))
    k = len(obs)
    p = np.asarray(probs, dtype=np.float64)
    p = p / p.sum()
    logp = np.log(p)
    lobs = math.lgamma(n + 1) - sum(math.lgamma(x + 1) for x in obs) + float(np.dot(obs, logp))
    thr_all = lobs + math.log1p(_REL_TOL)
    pre = _bounded_vectors(n, k - 2)
    m = n - pre.sum(axis=1)
    pq = p[-2] + p[-1]
    q = float(p[-2] / pq)
    lpre = (
        special.gammaln(n + 1.0) - special.gammaln(pre + 1.0).sum(axis=1) - special.gammaln(m + 1.0)
        + pre @ logp[:-2] + m * math.log(pq)
    )
    t = thr_all - lpre  # threshold on the log binomial pmf of the last two cells

    def lpmf(y: Any) -> Any:
        return (
            special.gammaln(m + 1.0) - special.gammaln(y + 1.0) - special.gammaln(m - y + 1.0)
            + special.xlogy(y, q) + special.xlog1py(m - y, -q)
        )

    mode = np.clip(np.floor((m + 1) * q).astype(np.int64), 0, m)
    all_in = lpmf(mode) <= t
    # lower tail: largest y in [0, mode) with lpmf(y) <= t (pmf non-decreasing there); -1 if none
    lo, hi = np.full(m.shape, -1, dtype=np.int64), mode.copy()
    while True:
        act = hi - lo > 1
        if not act.any():
            break
        mid = (lo + hi) // 2
        ok = lpmf(np.maximum(mid, 0)) <= t
        lo = np.where(act & ok, mid, lo)
        hi = np.where(act & ~ok, mid, hi)
    y_lo = lo
    # upper tail: smallest y in (mode, m] with lpmf(y) <= t (pmf non-increasing there); m + 1 if none
    lo, hi = mode.copy(), m + 1
    while True:
        act = hi - lo > 1
        if not act.any():
            break
        mid = (lo + hi) // 2
        ok = lpmf(np.minimum(mid, m)) <= t
        hi = np.where(act & ok, mid, hi)
        lo = np.where(act & ~ok, mid, lo)
    y_hi = hi
    mm = np.maximum(m, 1)
    low_mass = np.where(y_lo >= 0, _bdtr(np.maximum(y_lo, 0), mm, q), 0.0)
    high_mass = np.where(y_hi <= m, _bdtrc(np.maximum(y_hi - 1, 0), mm, q), 0.0)
    part = np.where(all_in, 1.0, low_mass + high_mass)
    total = float(np.sum(np.exp(lpre) * part))
    return float(min(1.0, max(0.0, total)))


class Headline(NamedTuple):
    """The test a verdict rests on (``pvalue``, ``method``) and the two approximate tests beside it.

    Its fields are fields of :class:`CheckResult` and of
    :class:`meshstat.netfilter.CounterCheck` of the same names.
    """

    pvalue: float
    method: str
    chisquare_statistic: float
    chisquare_pvalue: float
    gtest_statistic: float
    gtest_pvalue: float
    dof: int


def headline_test(
    obs: Sequence[int],
    shares: Sequence[Fraction],
    exact_limit: int,
    notes: list[str],
    *,
    unit: str = "backends",
) -> Headline:
    """The test a verdict rests on, with the chi-square and G-test beside it.

    Exact binomial for two outcomes, exact multinomial while it enumerates at
    most ``exact_limit`` outcome slices, else Pearson's chi-square (a note says
    so, with the G-test). Any count where the share is 0 is "impossible" (p = 0).
    Shared by :func:`check_split` and :func:`meshstat.netfilter.check_counters`.

    Returns
    -------
    Headline
    """
    from meshstat import stats

    n = sum(obs)
    gof_c = stats.goodness_of_fit(obs, shares, method="chisquare")
    gof_g = stats.goodness_of_fit(obs, shares, method="g-test")

    def headline(pvalue: float, method: str) -> Headline:
        return Headline(
            float(pvalue), method, float(gof_c.statistic), float(gof_c.pvalue),
            float(gof_g.statistic), float(gof_g.pvalue), int(gof_c.dof),
        )  # fmt: skip

    pos = [i for i, s in enumerate(shares) if s > 0]
    if any(obs[i] > 0 for i in range(len(obs)) if shares[i] == 0):
        return headline(0.0, "impossible")
    if len(pos) == 1:
        notes.append(f"only one of the {unit} has a positive share: every outcome is the configured one")
        return headline(1.0, "exact binomial")
    if len(pos) == 2:
        i, j = pos
        pvalue = binomial_pvalue(obs[i], obs[i] + obs[j], float(shares[i] / (shares[i] + shares[j])))
        return headline(pvalue, "exact binomial")
    k = len(pos)
    slices = math.comb(n + k - 2, k - 2)
    if slices <= exact_limit:
        pvalue = _exact_multinomial_pvalue([obs[i] for i in pos], [float(shares[i]) for i in pos])
        return headline(pvalue, "exact multinomial")
    notes.append(
        f"n = {n:,} over {k} {unit}: the exact multinomial test would enumerate {float(slices):.2g} "
        f"outcome slices (more than {exact_limit:,}); chi-square approximation instead "
        f"(G-test p = {_fmt_p(gof_g.pvalue)})"
    )
    if min(n * float(shares[i]) for i in pos) < 5:
        notes.append("some expected counts are below 5: the chi-square approximation may be poor")
    return headline(gof_c.pvalue, "chi-square")


def check_split(
    observed: Sequence[int | str],
    weights: Sequence[int | str],
    *,
    alternatives: Iterable[Sequence[int | str]] = (),
    names: Sequence[str] | None = None,
    alpha: float = 0.05,
    exact_limit: int = EXACT_MULTINOMIAL_LIMIT,
) -> CheckResult:
    """Is an observed split consistent with the configured weights?

    Parameters
    ----------
    observed : sequence of int
        Requests each backend received (same order as ``weights``).
    weights : sequence of int
        Configured integer weights (Envoy's rules).
    alternatives : iterable of weight sequences
        Splits to weigh the data against ("the rule is not in effect": ``(50, 50)``).
    names : sequence of str, optional
        Backend labels.
    alpha : float
        Level of the verdict.
    exact_limit : int
        Largest number of outcome slices the exact multinomial test enumerates
        (``C(n+k-2, k-2)``: all but the last two backends).

    Returns
    -------
    CheckResult

    Notes
    -----
    Two backends with a positive weight: exact two-sided binomial test
    (:func:`binomial_pvalue`, the definition of ``scipy.stats.binomtest``:
    outcomes no more likely than the observed one).
    More: the exact multinomial test (every outcome, summed slice by slice
    over the first ``k - 2`` backends, the last two in closed form with the
    binomial cdf) when the ``C(n+k-2, k-2)`` slices are at most ``exact_limit``; otherwise Pearson's
    chi-square (the G-test is reported beside it). A backend with weight 0 that
    received traffic makes the data impossible (p = 0).

    Examples
    --------
    >>> r = check_split([5, 5], [90, 10], alternatives=[(50, 50)])
    >>> round(r.pvalue, 4)
    0.0016
    """

    labels, ws, shares = _split(weights, names)
    alpha = _as_prob(alpha, "alpha")
    obs: list[int] = []
    for x in observed:
        try:
            v = decimal_fraction(str(x).strip()) if not isinstance(x, int) else Fraction(x)
        except (ValueError, ZeroDivisionError):
            raise InvalidArgument(f"observed counts must be non-negative integers, got {x!r}") from None
        if v.denominator != 1 or v < 0 or isinstance(x, bool):
            raise InvalidArgument(f"observed counts must be non-negative integers, got {x!r}")
        obs.append(int(v))
    if len(obs) != len(ws):
        raise InvalidArgument(f"observed has {len(obs)} entries but weights has {len(ws)}")
    n = sum(obs)
    if n == 0:
        raise InvalidArgument("observed counts sum to 0: nothing to check")
    fshares = tuple(float(s) for s in shares)
    notes: list[str] = []
    head = headline_test(obs, shares, exact_limit, notes, unit="backends")
    alts = []
    for alt in alternatives:
        _, aw, ashares = _split(alt, what="alternative")
        if len(aw) != len(ws):
            raise InvalidArgument(f"alternative {_fmt_split(aw)} has {len(aw)} weights but weights has {len(ws)}")
        alts.append(Alternative(aw, tuple(float(s) for s in ashares), _log10_lr(obs, shares, ashares)))
    return CheckResult(
        names=labels,
        weights=ws,
        shares=fshares,
        observed=tuple(obs),
        n=n,
        **head._asdict(),
        alternatives=tuple(alts),
        alpha=alpha,
        notes=tuple(notes),
    )


def _log10_lr(obs: Sequence[int], p: Sequence[Fraction], q: Sequence[Fraction]) -> float:
    """``log10 prod (q_i / p_i)^x_i`` with impossibilities as infinities (nan if both impossible)."""
    null_impossible = any(x > 0 and pi == 0 for x, pi in zip(obs, p, strict=True))
    alt_impossible = any(x > 0 and qi == 0 for x, qi in zip(obs, q, strict=True))
    if null_impossible and alt_impossible:
        return math.nan
    if null_impossible:
        return math.inf
    if alt_impossible:
        return -math.inf
    total = math.fsum(x * (math.log10(qi) - math.log10(pi)) for x, pi, qi in zip(obs, p, q, strict=True) if x > 0)
    return total


def read_observed(path: str) -> tuple[list[str], list[int]]:
    """Read observed counts from a CSV (``backend,count`` lines, optional header) or JSON file.

    JSON may be ``{"v1": 95, "v2": 5}``, ``[["v1", 95], ...]`` or
    ``[{"backend": "v1", "count": 95}, ...]``. Errors name the file and line.

    Raises
    ------
    ConfigParseError
        ``"file:line: expected ..."`` for anything it cannot read.
    """
    from meshstat.inputs import read_text

    text = read_text(path, what="counts file")
    stripped = text.lstrip()
    if path.lower().endswith(".json") or stripped.startswith(("{", "[")):
        return _read_observed_json(path, text)
    return _read_observed_csv(path, text)


def _count_value(raw: object) -> int | None:
    if isinstance(raw, bool):
        return None
    if isinstance(raw, int):
        return raw if raw >= 0 else None
    if isinstance(raw, float):
        return int(raw) if raw.is_integer() and raw >= 0 else None
    if isinstance(raw, str):
        s = raw.strip()
        if re.fullmatch(r"\d[\d_]*", s) and len(s) <= 40:  # int() refuses thousands of digits
            return int(s)
    return None


def _read_observed_csv(path: str, text: str) -> tuple[list[str], list[int]]:
    import csv

    names: list[str] = []
    counts: list[int] = []
    seen: dict[str, int] = {}
    lines = text.splitlines()
    header_done = False
    for lineno, line in enumerate(lines, start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        row = next(csv.reader([line]))
        row = [c.strip() for c in row]
        if len(row) != 2 or not row[0]:
            if not header_done and not names:
                header_done = True
                if len(row) == 2:
                    continue
            raise ConfigParseError(
                "expected 'backend,count' (two comma-separated fields)", source=path, line=lineno, snippet=line
            )
        value = _count_value(row[1])
        if value is None:
            if not header_done and not names:
                header_done = True  # a header such as "backend,count"
                continue
            raise ConfigParseError(
                "expected a non-negative integer count after the backend name", source=path, line=lineno, snippet=line
            )
        header_done = True
        if row[0] in seen:
            raise ConfigParseError(
                f"backend {row[0]!r} appears twice (first on line {seen[row[0]]})", source=path, line=lineno,
                snippet=line,
            )
        seen[row[0]] = lineno
        names.append(row[0])
        counts.append(value)
    if not names:
        raise ConfigParseError("expected at least one 'backend,count' line", source=path, line=max(1, len(lines)))
    return names, counts


def _read_observed_json(path: str, text: str) -> tuple[list[str], list[int]]:
    import json

    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigParseError(f"invalid JSON: {exc.msg}", source=path, line=exc.lineno, column=exc.colno) from None
    except ValueError:  # a number with more digits than int() converts
        raise ConfigParseError("invalid JSON: a number with too many digits", source=path) from None
    except RecursionError:
        raise ConfigParseError("invalid JSON: nested too deeply for a counts file", source=path) from None
    lines = text.splitlines()

    def line_of(token: str) -> int:
        needle = json.dumps(token)
        for i, ln in enumerate(lines, start=1):
            if needle in ln:
                return i
        return 1

    items: list[tuple[str, object]] = []
    if isinstance(data, dict):
        items = [(str(k), v) for k, v in data.items()]
    elif isinstance(data, list):
        for entry in data:
            if isinstance(entry, list) and len(entry) == 2 and isinstance(entry[0], str):
                items.append((entry[0], entry[1]))
            elif isinstance(entry, dict) and "backend" in entry and "count" in entry:
                items.append((str(entry["backend"]), entry["count"]))
            else:
                snippet = json.dumps(entry)
                where = line_of(entry[0]) if isinstance(entry, list) and entry and isinstance(entry[0], str) else 1
                if isinstance(entry, dict) and entry:
                    where = line_of(str(next(iter(entry))))
                raise ConfigParseError(
                    'expected ["backend", count] or {"backend": ..., "count": ...}', source=path, line=where,
                    snippet=snippet,
                )
    else:
        raise ConfigParseError('expected {"backend": count, ...} or a list of [backend, count]', source=path, line=1)
    if not items:
        raise ConfigParseError("expected at least one backend count", source=path, line=1)
    names, counts = [], []
    for name, raw in items:
        value = _count_value(raw)
        if value is None:
            raise ConfigParseError(
                f"count of {name!r} must be a non-negative integer", source=path, line=line_of(name), snippet=str(raw)
            )
        if name in names:
            raise ConfigParseError(f"backend {name!r} appears twice", source=path, line=line_of(name))
        names.append(name)
        counts.append(value)
    return names, counts


# ----------------------------------------------------------------- plans


@dataclass(frozen=True)
class PlanRow:
    """One way of answering a plan: the method, its n, and the exact probability at n and n - 1."""

    method: str
    n: int | None
    probability: float | None
    probability_before: float | None
    note: str = ""


@dataclass(frozen=True)
class PlanResult:
    """Outcome of :func:`plan_tolerance`, :func:`plan_min_hits` or :func:`plan_detect`.

    Attributes
    ----------
    question : str
        ``"tolerance"``, ``"min-hits"`` or ``"detect"``.
    names, weights, shares : tuple
        The configured split.
    target : float
        Required probability (confidence, probability or power).
    n : int
        The answer: the first n whose exact probability meets ``target`` (every
        smaller n fails). For ``detect`` with more than two backends: the first n
        whose noncentral chi-square power meets it (monotone).
    probability, probability_before : float
        Exact probability at ``n`` and at ``n - 1``.
    method : str
        How ``n`` was computed.
    n_sustained : int or None
        Smallest n from which every n up to ``checked_to`` meets the target
        (equal to ``n`` when the probability is monotone in n).
    checked_to : int or None
        Upper end of that check.
    rows : tuple of PlanRow
        Every method shown (exact, sustained, approximation).
    qps : float or None
        Requests per second, to turn n into seconds.
    parameters : tuple of (str, object)
        The question's inputs (tolerance, alternative, alpha ...).
    """

    question: str
    names: tuple[str, ...]
    weights: tuple[int, ...]
    shares: tuple[float, ...]
    target: float
    n: int
    probability: float
    probability_before: float
    method: str
    n_sustained: int | None
    checked_to: int | None
    rows: tuple[PlanRow, ...]
    qps: float | None = None
    parameters: tuple[tuple[str, object], ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def seconds(self) -> float | None:
        """``n / qps`` (None without ``qps``)."""
        return None if self.qps is None else self.n / self.qps

    def param(self, name: str) -> object:
        """One of ``parameters`` by name."""
        return dict(self.parameters)[name]

    def summary(self) -> str:
        """One line: ``"3,457 requests (exact binomial; normal approximation 3,458) ..."``."""
        split = _fmt_split(self.weights)
        approx = [r for r in self.rows[1:] if "approximation" in r.method or "bound" in r.method]
        extra = f"; {approx[0].method}: {approx[0].n:,}" if approx and approx[0].n is not None else ""
        when = f" ({format_duration(self.seconds)} at {self.qps:g} req/s)" if self.qps else ""
        if self.question == "tolerance":
            what = (
                f"every backend's share within ±{_fmt_pct(float(self.param('tolerance')))} of {split} "
                f"with probability {self.target:g}"
            )
        elif self.question == "min-hits":
            m = self.param("min_hits")
            what = (
                f"every backend of {split} to get at least {m} request{'s' if m != 1 else ''} "
                f"with probability {self.target:g}"
            )
        else:
            what = (
                f"telling {split} from {self.param('alternative')} at power {self.target:g} "
                f"(alpha {self.param('alpha'):g})"
            )
        sustained = ""
        if self.n_sustained is not None and self.n_sustained != self.n:
            sustained = f"; from {self.n_sustained:,} on it holds for every n checked (to {self.checked_to:,})"
        return f"{self.n:,} requests{when} for {what} ({self.method}{extra}{sustained})"

    def to_frame(self) -> Any:
        """One row per method (polars)."""
        from meshstat.report import inference as rep

        return rep.to_frame(self)


def _first_and_sustained(ok: Any, ns: Any) -> tuple[int | None, int | None]:
    import numpy as np

    if not np.any(ok):
        return None, None
    first = int(ns[int(np.argmax(ok))])
    bad = np.nonzero(~ok)[0]
    if bad.size == 0:
        return first, int(ns[0])
    last_bad = int(bad[-1])
    if last_bad + 1 >= len(ns):
        return first, None
    return first, int(ns[last_bad + 1])


def _scan(fn: Any, target: float, start_hi: int, approx: int | None) -> tuple[int, int, int, Any, Any, list[str]]:
    """Evaluate ``fn(ns)`` (vectorised) on 1..U, growing U until the first and sustained n are well inside.

    Returns (first, sustained, U, ns, values, notes). Beyond ``_FULL_SCAN_LIMIT``
    the scan starts at a quarter of the approximation (noted).
    """
    import numpy as np

    notes: list[str] = []
    hi = max(int(start_hi), 64)
    for _ in range(40):
        lo = 1
        if hi > _FULL_SCAN_LIMIT and approx is not None:
            lo = max(1, approx // 4)
        ns = np.arange(lo, hi + 1, dtype=np.int64)
        vals = fn(ns)
        ok = vals >= target
        first, sustained = _first_and_sustained(ok, ns)
        if first is not None and sustained is not None and sustained * 3 <= hi * 2:
            if lo > 1:
                notes.append(
                    f"exact values were computed for n from {lo:,} (a quarter of the approximation) to {hi:,}; "
                    "smaller n were not scanned"
                )
            return first, sustained, hi, ns, vals, notes
        hi *= 2
    raise InvalidArgument("no n up to 2**40 meets the target; the question has no practical answer")


def _normal_n(p: float, tol: float, confidence: float) -> int:
    from scipy import special

    z = float(special.ndtri(0.5 + confidence / 2.0))
    return max(1, math.ceil(z * z * p * (1 - p) / (tol * tol) - 1e-9))


def plan_tolerance(
    weights: Sequence[int | str],
    tolerance: float | str,
    confidence: float = 0.95,
    qps: float | None = None,
    *,
    names: Sequence[str] | None = None,
) -> PlanResult:
    """Smallest n such that every backend's observed share is within ``±tolerance`` with probability ``confidence``.

    Exact: for two backends the binomial probability of the band
    ``ceil(n (p - t)) <= X <= floor(n (p + t))``, computed for every n; for
    more, the joint multinomial probability (:func:`multinomial_box_probability`)
    scanned upward from the first n where every backend's own band meets the
    target (no smaller n can meet the joint target). Also shown: the textbook
    normal approximation ``n = z^2 p (1 - p) / t^2`` for the backend with the
    widest spread.
    """
    import numpy as np

    labels, ws, shares = _split(weights, names)
    t = _as_fraction(tolerance, "tolerance")
    confidence = _as_prob(confidence, "confidence")
    qps = _as_qps(qps)
    pos = [i for i, s in enumerate(shares) if s > 0]
    notes: list[str] = []
    tf = float(t)
    if all(s == 1 or s == 0 for s in shares):
        raise InvalidArgument("only one backend has a positive weight: its share is always exactly 100%")
    approx_by = [_normal_n(float(shares[i]), tf, confidence) for i in pos if shares[i] < 1]
    n_approx = max(approx_by)

    def marginal(i: int) -> Any:
        p = shares[i]
        pf = float(p)

        def fn(ns: Any) -> Any:
            a, b = _bounds(ns, p, t)
            return _binom_interval_prob(a, b, ns, pf)

        return fn

    if len(pos) == 2:
        i = pos[0]
        fn = marginal(i)
        first, sustained, hi, ns, vals, scan_notes = _scan(fn, confidence, 2 * n_approx + 100, n_approx)
        notes += scan_notes
        prob = float(vals[first - int(ns[0])])
        before = float(fn(np.array([first - 1]))[0]) if first > 1 else 0.0
        method = "exact binomial"
    else:
        fns = [marginal(i) for i in pos]

        def all_marginals(ns: Any) -> Any:
            return np.min(np.vstack([f(ns) for f in fns]), axis=0)

        lower, _, _, _, _, scan_notes = _scan(all_marginals, confidence, 2 * n_approx + 100, n_approx)
        notes += scan_notes

        def joint(nv: int) -> float:
            lows, highs = zip(*(_bounds(nv, p, t) for p in shares), strict=True)
            return multinomial_box_probability(nv, shares, lows, highs)

        first = None
        nv = lower
        evals = 0
        while evals < 20_000:
            v = joint(nv)
            if v >= confidence:
                first, prob = nv, v
                break
            nv += 1
            evals += 1
        if first is None:
            raise InvalidArgument("the joint tolerance plan needs more than 20,000 exact evaluations; "
                                  "use a wider tolerance")
        before = joint(first - 1) if first > 1 else 0.0
        sustained, hi = None, None
        method = "exact multinomial"
        notes.append(
            f"no n below {lower:,} can work (some backend alone misses the target there); "
            f"n scanned upward from {lower:,}"
        )
    p_at_approx = tolerance_probability(ws, n_approx, t)
    p_before_approx = tolerance_probability(ws, n_approx - 1, t) if n_approx > 1 else 0.0
    rows = [PlanRow(f"{method} (first n)", first, prob, before)]
    if sustained is not None:
        s_prob = tolerance_probability(ws, sustained, t)
        s_before = tolerance_probability(ws, sustained - 1, t) if sustained > 1 else 0.0
        rows.append(PlanRow(f"{method} (every n from here to {hi:,})", sustained, s_prob, s_before))
    rows.append(
        PlanRow("normal approximation", n_approx, p_at_approx, p_before_approx, "z^2 p (1-p) / tolerance^2")
    )
    return PlanResult(
        question="tolerance",
        names=labels,
        weights=ws,
        shares=tuple(float(s) for s in shares),
        target=confidence,
        n=int(first),
        probability=float(prob),
        probability_before=float(before),
        method=method,
        n_sustained=sustained,
        checked_to=hi,
        rows=tuple(rows),
        qps=qps,
        parameters=(("tolerance", tf), ("confidence", confidence)),
        notes=tuple(notes),
    )



def _smallest_n(ok: Any, lo: int, hi: int, what: str) -> int:
    """Smallest n > ``lo`` with ``ok(n)``, for a predicate that is monotone in n and false at ``lo``.

    Doubles ``hi`` until ``ok(hi)``, then bisects.
    """
    while not ok(hi):
        lo, hi = hi, hi * 2
        if hi > 2**50:
            raise InvalidArgument(f"no practical n {what}")
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if ok(mid):
            hi = mid
        else:
            lo = mid
    return hi

def plan_min_hits(
    weights: Sequence[int | str],
    min_hits: int = 1,
    probability: float = 0.99,
    qps: float | None = None,
    *,
    names: Sequence[str] | None = None,
) -> PlanResult:
    """Smallest n such that every backend with a positive weight gets ``>= min_hits`` requests with ``probability``.

    ``P(all >= m)`` is exact (:func:`prob_all_at_least`) and non-decreasing in n
    (one more request never lowers a count), so bisection finds the first n and
    it is also sustained. Also shown: the union bound ``sum_i P(X_i < m) <= 1 - probability``.
    """
    import numpy as np

    labels, ws, shares = _split(weights, names)
    m = int(min_hits)
    if m < 1 or m != min_hits:
        raise InvalidArgument(f"min_hits must be a positive integer, got {min_hits!r}")
    probability = _as_prob(probability, "probability")
    qps = _as_qps(qps)

    def f(nv: int) -> float:
        return float(prob_all_at_least(ws, nv, m))

    pos = [float(s) for s in shares if s > 0]

    def union(nv: Any) -> Any:
        nv = np.asarray(nv, dtype=np.int64)
        miss = sum(_bdtr(m - 1, nv, p) for p in pos if p < 1)
        return 1.0 - miss

    def smallest(fn: Any) -> int:
        # fn(m - 1) < target: fewer than m requests cannot give every backend m
        return _smallest_n(lambda nv: fn(nv) >= probability, m - 1, max(m, 1), "meets the target")

    n_exact = smallest(f)
    n_union = smallest(lambda x: float(union(np.array([x]))[0]))
    prob, before = f(n_exact), f(n_exact - 1) if n_exact > 1 else 0.0
    method = "exact (inclusion-exclusion)" if (1 + m) ** len(pos) <= _INCLUSION_EXCLUSION_LIMIT else (
        "exact (multinomial box probability)"
    )
    rows = (
        PlanRow(method, n_exact, prob, before, "monotone in n: also every larger n"),
        PlanRow("union bound", n_union, f(n_union), f(n_union - 1) if n_union > 1 else 0.0,
                "sum of per-backend misses <= 1 - probability"),
    )
    return PlanResult(
        question="min-hits",
        names=labels,
        weights=ws,
        shares=tuple(float(s) for s in shares),
        target=probability,
        n=n_exact,
        probability=prob,
        probability_before=before,
        method=method,
        n_sustained=n_exact,
        checked_to=None,
        rows=rows,
        qps=qps,
        parameters=(("min_hits", m), ("probability", probability)),
    )


def plan_detect(
    weights: Sequence[int | str],
    alternative: Sequence[int | str],
    power: float = 0.8,
    alpha: float = 0.05,
    qps: float | None = None,
    *,
    names: Sequence[str] | None = None,
) -> PlanResult:
    """Smallest n to tell the configured split from ``alternative`` with a level-``alpha`` test at ``power``.

    Two backends: exact power of the equal-tailed two-sided binomial test
    (:func:`binomial_test_power`), computed for every n; it is a saw-tooth in n,
    so both the first n and the sustained n are given, with the normal
    approximation ``((z_{1-a/2} sqrt(p0 q0) + z_power sqrt(p1 q1)) / |p1 - p0|)^2``.
    More backends: Pearson's chi-square test with ``k - 1`` degrees of freedom;
    power from the noncentral chi-square with ``lambda = n sum (q_i - p_i)^2 / p_i``
    (an approximation, monotone in n, so bisection).
    """
    from scipy import special

    labels, ws, shares = _split(weights, names)
    _, aw, ashares = _split(alternative, what="alternative")
    if len(aw) != len(ws):
        raise InvalidArgument(f"alternative has {len(aw)} weights but weights has {len(ws)}")
    if tuple(ashares) == tuple(shares):
        raise InvalidArgument(f"alternative {_fmt_split(aw)} is the configured split: nothing to detect")
    for i, (p, q) in enumerate(zip(shares, ashares, strict=True)):
        if p == 0 and q > 0:
            raise InvalidArgument(
                f"alternative sends traffic to {labels[i]}, which has weight 0: a single request there "
                "already disproves the configuration (see plan --min-hits)"
            )
    power = _as_prob(power, "power")
    alpha = _as_prob(alpha, "alpha")
    if power <= alpha:
        raise InvalidArgument(f"power ({power:g}) must exceed alpha ({alpha:g})")
    qps = _as_qps(qps)
    pos = [i for i, s in enumerate(shares) if s > 0]
    notes: list[str] = []
    params = (("alternative", _fmt_split(aw)), ("power", power), ("alpha", alpha))
    if len(pos) == 2:
        i = pos[0]
        p0 = float(shares[i] / (shares[i] + shares[pos[1]]))
        p1 = float(ashares[i] / (ashares[i] + ashares[pos[1]]))
        za = float(special.ndtri(1 - alpha / 2))
        zb = float(special.ndtri(power))
        n_norm = max(1, math.ceil(((za * math.sqrt(p0 * (1 - p0)) + zb * math.sqrt(p1 * (1 - p1))) / abs(p1 - p0)) ** 2))

        def fn(ns: Any) -> Any:
            return binomial_test_power(ns, p0, p1, alpha)

        first, sustained, hi, ns, vals, scan_notes = _scan(fn, power, 2 * n_norm + 100, n_norm)
        notes += scan_notes

        def at(nv: int) -> float:
            return float(binomial_test_power(nv, p0, p1, alpha)) if nv >= 1 else 0.0

        method = "exact binomial test (equal-tailed)"
        rows = [PlanRow(f"{method}, first n", first, at(first), at(first - 1))]
        rows.append(PlanRow(f"{method}, every n from here to {hi:,}", sustained, at(sustained), at(sustained - 1)))
        rows.append(PlanRow("normal approximation", n_norm, at(n_norm), at(n_norm - 1),
                            "power shown is the exact test's at that n"))
        return PlanResult(
            question="detect", names=labels, weights=ws, shares=tuple(float(s) for s in shares), target=power,
            n=first, probability=at(first), probability_before=at(first - 1), method=method,
            n_sustained=sustained, checked_to=hi, rows=tuple(rows), qps=qps, parameters=params, notes=tuple(notes),
        )
    # chi-square with noncentral chi-square power
    df = len(pos) - 1
    w2 = math.fsum(float((ashares[i] - shares[i]) ** 2 / shares[i]) for i in pos)
    crit = float(special.chdtri(df, alpha))

    def pw(nv: int) -> float:
        if nv < 1:
            return 0.0
        return float(1.0 - special.chndtr(crit, df, nv * w2))

    hi_n = _smallest_n(lambda nv: pw(nv) >= power, 0, 1, "reaches that power")
    method = "chi-square test, noncentral chi-square power"
    notes.append(
        f"{len(pos)} backends: power of Pearson's chi-square test ({df} degrees of freedom) from the noncentral "
        f"chi-square with lambda = n * {w2:.4g} (an approximation; exact for large n)"
    )
    rows = (PlanRow(method, hi_n, pw(hi_n), pw(hi_n - 1), "monotone in n"),)
    return PlanResult(
        question="detect", names=labels, weights=ws, shares=tuple(float(s) for s in shares), target=power,
        n=hi_n, probability=pw(hi_n), probability_before=pw(hi_n - 1), method=method, n_sustained=hi_n,
        checked_to=None, rows=rows, qps=qps, parameters=params, notes=tuple(notes),
    )


# ----------------------------------------------------------------- acceptance (operating characteristic)


@dataclass(frozen=True)
class AcceptanceResult:
    """Operating characteristic of a fixed-tolerance check ("pass if every share is within ±t").

    Attributes
    ----------
    pass_one : float
        P(one attempt of ``n`` requests passes) when traffic follows ``truth``.
    pass_any : float
        P(at least one of ``attempts`` independent attempts passes).
    fail_all : float
        ``1 - pass_any``.
    """

    weights: tuple[int, ...]
    truth: tuple[int, ...]
    n: int
    tolerance: float
    attempts: int
    pass_one: float
    pass_any: float

    @property
    def fail_one(self) -> float:
        """P(one attempt fails)."""
        return 1.0 - self.pass_one

    @property
    def fail_all(self) -> float:
        """P(every attempt fails)."""
        return (1.0 - self.pass_one) ** self.attempts

    def summary(self) -> str:
        """One line."""
        return (
            f"{self.n} requests, ±{_fmt_pct(self.tolerance)} around {_fmt_split(self.weights)}, truth "
            f"{_fmt_split(self.truth)}: one attempt passes with probability {_fmt_p(self.pass_one)}, "
            f"at least one of {self.attempts} with {_fmt_p(self.pass_any)}"
        )


def acceptance_probability(
    weights: Sequence[int | str],
    n: int,
    tolerance: float | str,
    *,
    truth: Sequence[int | str] | None = None,
    attempts: int = 1,
) -> AcceptanceResult:
    """How often a "shares within ±tolerance of the weights" check passes when traffic follows ``truth``.

    Gateway API's conformance test ``HTTPRouteWeight``
    (kubernetes-sigs/gateway-api ``conformance/tests/httproute-weight.go``)
    sends 500 requests to weights 70/30/0 and passes when every share is within
    ±0.05, retrying up to 10 times: ``acceptance_probability([70, 30, 0], 500,
    0.05, truth=[76, 24, 0], attempts=10)``.
    """
    _, ws, _ = _split(weights)
    tw = ws if truth is None else _split(truth, what="truth weights")[1]
    attempts = int(attempts)
    if attempts < 1:
        raise InvalidArgument(f"attempts must be a positive integer, got {attempts}")
    p1 = tolerance_probability(ws, n, tolerance, truth=tw)
    pass_any = 1.0 - (1.0 - p1) ** attempts
    return AcceptanceResult(ws, tw, int(n), float(Fraction(str(tolerance))), attempts, p1, pass_any)


# ----------------------------------------------------------------- bands


@dataclass(frozen=True)
class BandsResult:
    """Outcome of :func:`bands`: where each backend's observed share falls by chance.

    Attributes
    ----------
    requests : int
        Requests per sample (n, the window, or seconds x qps).
    levels : tuple of float
        Central band levels.
    low, high : tuple of tuple of int
        ``low[l][i]``, ``high[l][i]``: central band of backend i's count at
        ``levels[l]`` (exact binomial quantiles at ``(1 -+ level) / 2``).
    coverage : tuple of tuple of float
        Exact probability of each band (at least its level: counts are discrete).
    within : float or None
        Tolerance x of "P(share outside ±x)".
    p_below, p_above : tuple of float or None
        Exact ``P(share < p - x)`` and ``P(share > p + x)`` per backend.
    p_outside_any : float or None
        P(some backend outside ±x), exact (multinomial).
    sim_windows, sim_seed : int or None
        Simulated samples and the seed that replays them.
    sim_coverage : tuple of tuple of float or None
        Share of simulated samples inside each band.
    sim_p_outside : tuple of float or None
        Share of simulated samples outside ±x per backend.
    sim_agrees : bool or None
        Whether every simulated frequency is inside its 1 - 1e-3 binomial band
        around the exact probability (Bonferroni over all cells).
    """

    names: tuple[str, ...]
    weights: tuple[int, ...]
    shares: tuple[float, ...]
    requests: int
    seconds: float | None
    qps: float | None
    levels: tuple[float, ...]
    low: tuple[tuple[int, ...], ...]
    high: tuple[tuple[int, ...], ...]
    coverage: tuple[tuple[float, ...], ...]
    within: float | None = None
    p_below: tuple[float, ...] | None = None
    p_above: tuple[float, ...] | None = None
    p_outside_any: float | None = None
    sim_windows: int | None = None
    sim_seed: int | None = None
    sim_mode: str | None = None
    sim_coverage: tuple[tuple[float, ...], ...] | None = None
    sim_p_outside: tuple[float, ...] | None = None
    sim_p_outside_any: float | None = None
    sim_agrees: bool | None = None
    sim_counts: Any = field(default=None, repr=False, compare=False)
    notes: tuple[str, ...] = ()

    @property
    def p_outside(self) -> tuple[float, ...] | None:
        """Exact ``P(|share - p| > x)`` per backend."""
        if self.p_below is None or self.p_above is None:
            return None
        return tuple(a + b for a, b in zip(self.p_below, self.p_above, strict=True))

    def summary(self) -> str:
        """One line about the smallest backend (the canary, usually)."""
        pos = [i for i, s in enumerate(self.shares) if s > 0]
        i = min(pos, key=lambda j: (self.shares[j], j))
        lvl = 0.95 if 0.95 in self.levels else self.levels[len(self.levels) // 2]
        li = self.levels.index(lvl)
        lo, hi = self.low[li][i], self.high[li][i]
        size = f"{self.requests:,} requests"
        if self.seconds is not None and self.qps is not None:
            size += f" ({format_duration(self.seconds)} at {self.qps:g} req/s)"
        text = (
            f"at {_fmt_split(self.weights)} with {size}, {self.names[i]} gets {lo}-{hi} "
            f"({_fmt_pct(lo / self.requests)}-{_fmt_pct(hi / self.requests)}) in {_fmt_pct(lvl)} of samples"
        )
        if self.within is not None and self.p_outside is not None:
            text += (
                f"; its share falls outside {_fmt_pct(self.shares[i])} ± {_fmt_pct(self.within)} with probability "
                f"{_fmt_p(self.p_outside[i])}"
            )
            if self.sim_p_outside is not None:
                text += f" (simulated {_fmt_p(self.sim_p_outside[i])})"
        if self.sim_windows is not None:
            verdict = "agrees" if self.sim_agrees else "DISAGREES"
            text += f"; simulation of {self.sim_windows:,} samples (seed {self.sim_seed}) {verdict} with exact"
        return text

    def to_frame(self) -> Any:
        """One row per (backend, level) (polars)."""
        from meshstat.report import inference as rep

        return rep.to_frame(self)

    def plot(self, path: str | None = None) -> Any:
        """PNG of the bands (see :func:`meshstat.plots.bands.plot_bands`)."""
        from meshstat.plots.bands import plot_bands

        return plot_bands(self, path)


def bands(
    weights: Sequence[int | str],
    n: int | None = None,
    window: int | None = None,
    seconds: float | str | None = None,
    qps: float | None = None,
    levels: Sequence[float] = (0.9, 0.95, 0.99),
    within: float | str | None = None,
    simulate: bool = True,
    rng: int | None = None,
    *,
    names: Sequence[str] | None = None,
    sim_windows: int = 10_000,
    sim_mode: str = "auto",
) -> BandsResult:
    """Central bands of each backend's observed share in one sample, exact and simulated.

    Parameters
    ----------
    weights : sequence of int
        Configured weights.
    n, window : int
        Requests per sample (give one; a window of W requests is a sample of W).
    seconds, qps : float
        Or a sample of ``seconds`` at ``qps`` requests/s (``round(seconds * qps)`` requests).
    levels : sequence of float
        Central band levels.
    within : float, optional
        Also ``P(|share - p| > within)`` per backend and for any backend.
    simulate : bool
        Check the exact numbers by routing ``sim_windows`` windows of this size
        through :func:`meshstat.engine.simulate` (the core engine).
    rng : int, optional
        Seed of the simulation (printed so that it can be replayed).
    sim_windows : int
        Simulated samples (reduced so that at most 1e9 requests are simulated).
    sim_mode : str
        ``mode`` passed to :func:`meshstat.engine.simulate`.
    """
    import numpy as np

    labels, ws, shares = _split(weights, names)
    qps = _as_qps(qps)
    given = [x for x in (n, window, seconds) if x is not None]
    if len(given) != 1:
        raise InvalidArgument("give exactly one of n, window, or seconds (with qps)")
    secs: float | None = None
    if seconds is not None:
        if qps is None:
            raise InvalidArgument("seconds needs qps (requests per second)")
        secs = parse_duration(seconds)
        req = round(secs * qps)
        if req < 1:
            raise InvalidArgument(f"{secs:g} s at {qps:g} req/s is less than one request")
    else:
        raw = n if n is not None else window
        if isinstance(raw, bool) or not isinstance(raw, int | np.integer) or int(raw) < 1:
            raise InvalidArgument(f"n / window must be a positive integer, got {raw!r}")
        req = int(raw)
        if qps is not None:
            secs = req / qps
    lv = tuple(_as_prob(x, "level") for x in levels)
    if not lv:
        raise InvalidArgument("give at least one band level")
    notes: list[str] = []
    if seconds is not None and abs(secs * qps - req) > 1e-9:  # type: ignore[operator]
        notes.append(f"{secs:g} s at {qps:g} req/s is {secs * qps:g} requests; rounded to {req}")  # type: ignore[operator]
    fs = [float(s) for s in shares]
    lows, highs, covs = [], [], []
    for level in lv:
        a = (1.0 - level) / 2.0
        lo_row, hi_row, cov_row = [], [], []
        for p in fs:
            lo_c, hi_c = _central(req, p, a)
            lo_row.append(lo_c)
            hi_row.append(hi_c)
            cov_row.append(float(_binom_interval_prob(lo_c, hi_c, req, p)) if 0 < p < 1 else 1.0)
        lows.append(tuple(lo_row))
        highs.append(tuple(hi_row))
        covs.append(tuple(cov_row))
    wx = None
    p_below = p_above = None
    p_any = None
    bnds: list[tuple[int, int]] = []
    if within is not None:
        t = _as_fraction(within, "within")
        wx = float(t)
        bnds = [_bounds(req, p, t) for p in shares]
        below, above = [], []
        for (a_, b_), p in zip(bnds, fs, strict=True):
            pb, pa = _binom_outside_prob(a_, b_, req, p)
            below.append(float(pb))
            above.append(float(pa))
        p_below, p_above = tuple(below), tuple(above)
        p_any = 1.0 - tolerance_probability(ws, req, t)
    sim_cov = sim_out = None
    sim_any = None
    agrees = None
    sim_n = seed = None
    counts = None
    mode_used = None
    if simulate:
        from meshstat import model
        from meshstat.engine import simulate as run_sim

        sim_n = int(sim_windows)
        if sim_n < 1:
            raise InvalidArgument(f"sim_windows must be positive, got {sim_windows}")
        if req * sim_n > 10**9:
            sim_n = max(1, 10**9 // req)
            notes.append(f"simulation limited to {sim_n:,} samples (1e9 requests)")
        children = tuple(model.Backend(name=x) for x in labels)
        route = model.Route(root=model.Weighted.from_weights(list(ws), children), name="bands")
        res = run_sim(route, req * sim_n, rng=rng, window=req, mode=sim_mode)
        seed = int(res.seed_entropy)
        mode_used = res.mode
        counts = np.asarray(res.window_counts, dtype=np.int64)[:sim_n]
        sim_cov_l = []
        cells: list[tuple[int, float]] = []
        for li in range(len(lv)):
            lo_a = np.asarray(lows[li])
            hi_a = np.asarray(highs[li])
            inside = (counts >= lo_a[None, :]) & (counts <= hi_a[None, :])
            freq = inside.sum(axis=0)
            sim_cov_l.append(tuple(float(x) / sim_n for x in freq))
            cells += [(int(freq[i]), covs[li][i]) for i in range(len(fs)) if 0 < fs[i] < 1]
        sim_cov = tuple(sim_cov_l)
        if within is not None:
            a_arr = np.asarray([b[0] for b in bnds])
            b_arr = np.asarray([b[1] for b in bnds])
            outside = (counts < a_arr[None, :]) | (counts > b_arr[None, :])
            sim_out = tuple(float(x) / sim_n for x in outside.sum(axis=0))
            sim_any = float(np.any(outside, axis=1).mean())
            cells += [(int(round(x * sim_n)), float(pb + pa)) for x, pb, pa in zip(sim_out, p_below, p_above, strict=True)]  # type: ignore[arg-type]
            cells.append((int(round(sim_any * sim_n)), float(p_any)))  # type: ignore[arg-type]
        # every simulated frequency within its central 1 - 1e-3 / cells binomial band
        level_each = 1e-3 / max(len(cells), 1)
        agrees = True
        for k_obs, p_exact in cells:
            if p_exact <= 0.0 or p_exact >= 1.0:
                if (p_exact <= 0.0 and k_obs > 0) or (p_exact >= 1.0 and k_obs < sim_n):
                    agrees = False
                continue
            lo_k, hi_k = _central(sim_n, p_exact, level_each / 2)
            if not lo_k <= k_obs <= hi_k:
                agrees = False
        if not agrees:
            notes.append("the simulated frequencies disagree with the exact probabilities (p < 1e-3)")
    return BandsResult(
        names=labels,
        weights=ws,
        shares=tuple(fs),
        requests=req,
        seconds=secs,
        qps=qps,
        levels=lv,
        low=tuple(lows),
        high=tuple(highs),
        coverage=tuple(covs),
        within=wx,
        p_below=p_below,
        p_above=p_above,
        p_outside_any=p_any,
        sim_windows=sim_n,
        sim_seed=seed,
        sim_mode=mode_used,
        sim_coverage=sim_cov,
        sim_p_outside=sim_out,
        sim_p_outside_any=sim_any,
        sim_agrees=agrees,
        sim_counts=counts,
        notes=tuple(notes),
    )


def _central(n: int, p: float, a: float) -> tuple[int, int]:
    """Exact binomial quantiles: smallest k with ``F(k) >= a`` and smallest k with ``F(k) >= 1 - a``."""

    if p <= 0.0:
        return 0, 0
    if p >= 1.0:
        return n, n

    def q(level: float) -> int:
        lo, hi = -1, n  # F(lo) < level <= F(hi)
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if _bdtr(mid, n, p) >= level:
                hi = mid
            else:
                lo = mid
        return hi

    return q(a), q(1.0 - a)


# ----------------------------------------------------------------- canary


@dataclass(frozen=True)
class CanaryStep:
    """One rollout step of :func:`canary`.

    Attributes
    ----------
    weight : float
        Canary weight in percent.
    requests : float
        Requests per interval (``qps * interval``).
    canary_requests, baseline_requests : float
        Expected requests per interval to each side.
    p_zero : float
        P(no canary request in an interval) with exactly ``requests`` requests: ``(1 - w)^requests``.
    p_zero_poisson : float
        The same with Poisson arrivals at ``qps``: ``exp(-qps * interval * w)``.
    detectable_error_rate : float or None
        Smallest canary error rate the one-interval test detects at ``power``
        (None: not even 100% errors would be detected).
    interval_needed : float or None
        Seconds of traffic to detect ``error_rate -> detect_error_rate`` at this step.
    requests_needed : float or None
        Total requests (both sides) in that interval.
    """

    weight: float
    requests: float
    canary_requests: float
    baseline_requests: float
    p_zero: float
    p_zero_poisson: float
    detectable_error_rate: float | None
    interval_needed: float | None
    requests_needed: float | None
    baseline_error_rate: float

    @property
    def detectable_increase(self) -> float | None:
        """``detectable_error_rate - baseline_error_rate`` (absolute)."""
        if self.detectable_error_rate is None:
            return None
        return self.detectable_error_rate - self.baseline_error_rate


@dataclass(frozen=True)
class CanaryResult:
    """Outcome of :func:`canary`: one :class:`CanaryStep` per rollout step."""

    qps: float
    interval: float
    error_rate: float
    detect_error_rate: float | None
    power: float
    alpha: float
    steps: tuple[CanaryStep, ...]
    notes: tuple[str, ...] = ()

    def summary(self) -> str:
        """One line about the first step."""
        s = self.steps[0]
        text = (
            f"at {self.qps:g} req/s and {format_duration(self.interval)} intervals, the {s.weight:g}% step gets "
            f"{s.canary_requests:,.3g} canary requests per interval (P(none) = {_fmt_p(s.p_zero)})"
        )
        if s.detectable_error_rate is not None:
            text += (
                f" and detects an error rate of {_fmt_pct(s.detectable_error_rate)} vs {_fmt_pct(self.error_rate)} "
                f"at power {self.power:g}"
            )
        else:
            text += f"; no canary error rate is detectable in one interval at power {self.power:g}"
        if self.detect_error_rate is not None and s.interval_needed is not None:
            text += (
                f"; {_fmt_pct(self.error_rate)} -> {_fmt_pct(self.detect_error_rate)} needs "
                f"{format_duration(s.interval_needed)} at that step"
            )
        return text

    def to_frame(self) -> Any:
        """One row per step (polars)."""
        from meshstat.report import inference as rep

        return rep.to_frame(self)


def _two_prop_power(n1: float, n2: float, p0: float, p1: float, alpha: float) -> float:
    """Power of the one-sided pooled two-proportion z test (H1: canary rate p1 > baseline p0)."""
    from scipy import special

    za = float(special.ndtri(1.0 - alpha))
    pbar = (n1 * p0 + n2 * p1) / (n1 + n2)
    s0 = math.sqrt(pbar * (1 - pbar) * (1 / n1 + 1 / n2))
    s1 = math.sqrt(p0 * (1 - p0) / n1 + p1 * (1 - p1) / n2)
    if s1 == 0:
        return 1.0 if p1 - p0 > za * s0 else 0.0
    return float(special.ndtr((p1 - p0 - za * s0) / s1))


def canary(
    steps: Sequence[float | str],
    qps: float,
    interval: float | str,
    error_rate: float | None = None,
    detect_error_rate: float | None = None,
    power: float = 0.8,
    alpha: float = 0.05,
) -> CanaryResult:
    """Traffic and detection power per canary rollout step (Flagger / Argo Rollouts style).

    Parameters
    ----------
    steps : sequence of float
        Canary weights in percent (``1, 5, 10, 25, 50, 100``).
    qps : float
        Requests per second to the service.
    interval : float or str
        Analysis interval: seconds, or ``"60s"``, ``"5m"``, ``"1h"``.
    error_rate : float, optional
        Baseline error rate (default 0.01, noted).
    detect_error_rate : float, optional
        A canary error rate to detect: the interval needed is computed.
    power, alpha : float
        Power and one-sided level of the test.

    Notes
    -----
    The test compares the baseline's and the canary's error proportions in one
    interval with the one-sided pooled two-proportion z test (normal
    approximation; power ``Phi((p1 - p0 - z_{1-a} s0) / s1)`` with ``s0`` the
    pooled and ``s1`` the unpooled standard error). At 100% there is no
    baseline, so nothing is computed. With few expected canary errors the normal
    approximation is rough (noted).
    """
    from scipy import optimize, special

    if qps is None:
        raise InvalidArgument("qps is required")
    qps_v = _as_qps(qps)
    assert qps_v is not None
    secs = parse_duration(interval)
    power = _as_prob(power, "power")
    alpha = _as_prob(alpha, "alpha")
    notes: list[str] = []
    if error_rate is None:
        p0 = 0.01
        notes.append("baseline error rate 1% assumed (set error_rate / --error-rate)")
    else:
        p0 = _as_prob(error_rate, "error_rate")
    p1_target = None
    if detect_error_rate is not None:
        p1_target = _as_prob(detect_error_rate, "detect_error_rate")
        if p1_target <= p0:
            raise InvalidArgument(
                f"detect_error_rate ({p1_target:g}) must be above the baseline error rate ({p0:g})"
            )
    ws = []
    for s in steps:
        try:
            v = float(str(s).strip().rstrip("%"))
        except ValueError:
            raise InvalidArgument(f"canary steps are percentages, got {s!r}") from None
        if not 0 < v <= 100:
            raise InvalidArgument(f"canary steps must be in (0, 100] percent, got {s!r}")
        ws.append(v)
    if not ws:
        raise InvalidArgument("give at least one canary step")
    req = qps_v * secs
    za = float(special.ndtri(1.0 - alpha))
    zb = float(special.ndtri(power))
    out = []
    rough = []
    for v in ws:
        c = v / 100.0
        n2 = req * c
        n1 = req - n2
        p_zero = math.exp(req * math.log1p(-c)) if c < 1 else 0.0
        p_zero_pois = math.exp(-req * c)
        det = needed = n_needed = None
        if c < 1:
            if _two_prop_power(n1, n2, p0, 1.0, alpha) >= power:
                det = float(optimize.brentq(lambda x: _two_prop_power(n1, n2, p0, x, alpha) - power, p0, 1.0,
                                            xtol=1e-12))
                if n2 * det < 5:
                    rough.append(v)
            if p1_target is not None:
                pbar = (1 - c) * p0 + c * p1_target
                s0 = math.sqrt(pbar * (1 - pbar) * (1 / (1 - c) + 1 / c))
                s1 = math.sqrt(p0 * (1 - p0) / (1 - c) + p1_target * (1 - p1_target) / c)
                n_needed = ((za * s0 + zb * s1) / (p1_target - p0)) ** 2
                needed = n_needed / qps_v
        out.append(CanaryStep(v, req, n2, n1, p_zero, p_zero_pois, det, needed, n_needed, p0))
    if any(v >= 100 for v in ws):
        notes.append("at 100% there is no baseline traffic to compare with")
    if rough:
        notes.append(
            "fewer than 5 expected canary errors at step(s) "
            + ", ".join(f"{x:g}%" for x in rough)
            + ": the normal approximation is rough there"
        )
    return CanaryResult(qps_v, secs, p0, p1_target, power, alpha, tuple(out), tuple(notes))
