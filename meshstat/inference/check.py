"""Is an observed split (``5, 5``) consistent with the configured one (``90/10``)?

:func:`check_split` returns a :class:`CheckResult`: the headline test
(:func:`meshstat.stats.headline_test`: exact binomial for two backends, exact
multinomial where the outcomes can be enumerated, chi-square otherwise), the
chi-square and G-test beside it, and likelihood ratios against alternatives the
user names ("the rule is not in effect": ``50/50``). Tables:
:func:`meshstat.report.inference.frame` and :func:`meshstat.report.inference.check_tests_frame`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from fractions import Fraction

from meshstat.errors import InvalidArgument
from meshstat.inference._text import _as_prob, _fmt_pct, _fmt_split, _split
from meshstat.model import decimal_fraction
from meshstat.stats.gof import EXACT_MULTINOMIAL_LIMIT, check_count_total, format_p, headline_test, z_scores

__all__ = ["Alternative", "CheckResult", "check_split"]


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
        zs = z_scores(self.observed, self.shares)
        for i, (z, p) in enumerate(zip(zs, self.shares, strict=True)):
            key = (round(abs(float(z)), 9), -p)
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
            text = f"consistent with {split}: {what}, p = {format_p(self.pvalue)} ({self.method})"
        else:
            text = f"not noise: {what} has p = {format_p(self.pvalue)} ({self.method})"
        for alt in self.alternatives:
            text += "; " + _lr_phrase(alt, split)
        return text

    verdict = summary


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
    check_count_total(n)
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
