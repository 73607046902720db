"""Goodness of fit of per-backend counts to exact shares, and the choice of the headline test.

Pearson's chi-square and the G-test (likelihood ratio) for any number of
backends; the exact multinomial test (enumeration); :func:`headline_test`,
the test a verdict rests on (exact binomial for two backends, exact
multinomial where it can be enumerated, chi-square otherwise), shared by
:func:`meshstat.inference.check_split` and the counters check.
:mod:`scipy.special` is imported on first use.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from fractions import Fraction
from typing import Any, NamedTuple

import numpy as np

from meshstat.errors import InvalidArgument
from meshstat.stats.binomial import REL_TOL, binomial_pvalue
from meshstat.stats.binomial import bdtr as _bdtr
from meshstat.stats.binomial import bdtrc as _bdtrc

__all__ = [
    "EXACT_MULTINOMIAL_LIMIT",
    "MAX_COUNT",
    "GofResult",
    "Headline",
    "as_probs",
    "check_count_total",
    "format_p",
    "goodness_of_fit",
    "headline_test",
    "z_scores",
]

#: The largest count, and sum of counts, meshstat tests and tabulates: ``2**63 - 1``
#: (the ``int64`` of every count column and kernel). More requests or connections
#: than this (9.2e18) is not a count any real system has produced.
MAX_COUNT = 2**63 - 1


def check_count_total(total: int, what: str = "the observed counts") -> None:
    """Refuse a total above :data:`MAX_COUNT` with a one-line reason (``InvalidArgument``)."""
    if total > MAX_COUNT:
        raise InvalidArgument(
            f"{what} sum to {float(total):.3g}, more than 2**63-1 ({float(MAX_COUNT):.3g}): "
            "meshstat counts in int64 (no real system has counted that many)"
        )


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


def as_probs(probs: Sequence[float | Fraction] | np.ndarray) -> np.ndarray:
    """Shares (floats or exact fractions) as a float64 array."""
    return np.asarray([float(p) for p in probs], dtype=np.float64)


def z_scores(counts: np.ndarray, probs: Sequence[float | Fraction] | np.ndarray) -> np.ndarray:
    """``(count - n p) / sqrt(n p (1 - p))`` per backend (0 where ``p`` is 0 or 1 and met exactly)."""
    c = np.asarray(counts, dtype=np.float64)
    p = as_probs(probs)
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
    p = as_probs(probs)
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


#: Largest number of outcome slices (``C(n+k-2, k-2)``) enumerated by the exact multinomial test.
EXACT_MULTINOMIAL_LIMIT = 1_000_000


def format_p(p: float) -> str:
    """A p-value or probability in two significant digits (``0.0016``, ``7.4e-35``)."""
    if p is None or (isinstance(p, float) and math.isnan(p)):
        return "n/a"
    if p == 0:
        return "0"
    if p >= 0.001:
        return f"{p:.2g}" if p < 0.1 else f"{p:.2f}"
    return f"{p:.2g}"


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
    thr_all = lobs + math.log1p(REL_TOL)
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

    Its fields are fields of :class:`meshstat.inference.CheckResult` and of
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
    Shared by :func:`meshstat.inference.check_split` and :func:`meshstat.netfilter.check_counters`.

    Returns
    -------
    Headline
    """
    n = sum(obs)
    gof_c = goodness_of_fit(obs, shares, method="chisquare")
    gof_g = goodness_of_fit(obs, shares, method="g-test")

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
    slices = _slices(n, k, exact_limit)
    if slices <= exact_limit:
        pvalue = _exact_multinomial_pvalue([obs[i] for i in pos], [float(shares[i]) for i in pos])
        return headline(pvalue, "exact multinomial")
    notes.append(
        f"n = {n:,} over {k} {unit}: the exact multinomial test would enumerate {_fmt_count(slices)} "
        f"outcome slices (more than {exact_limit:,}); chi-square approximation instead "
        f"(G-test p = {format_p(gof_g.pvalue)})"
    )
    if min(n * float(shares[i]) for i in pos) < 5:
        notes.append("some expected counts are below 5: the chi-square approximation may be poor")
    return headline(gof_c.pvalue, "chi-square")


def _slices(n: int, k: int, limit: int) -> int:
    """``C(n + k - 2, k - 2)``, the outcome slices of the exact multinomial test, or a bound past ``limit``.

    Computed exactly only when its logarithm shows it near ``limit``: the exact
    binomial coefficient of a huge ``n`` and many outcomes has millions of digits.
    """
    m = k - 2
    if m <= 0:
        return 1
    log_slices = math.lgamma(n + k - 1) - math.lgamma(m + 1) - math.lgamma(n + 1)
    if log_slices > math.log(max(limit, 1)) + 1.0:
        return max(int(math.exp(min(log_slices, 690.0))), limit + 1)
    return math.comb(n + k - 2, m)


def _fmt_count(x: int) -> str:
    return f"{float(x):.2g}" if x < 10**299 else "more than 1e299"
