"""Threshold and weight arithmetic of the routing model: iptables' 31-bit thresholds, kube-proxy's
probabilities, exact rounding to integer masses, and bounded decimal reading of weights.

Pure Python (standard library only), like the rest of :mod:`meshstat.model`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from fractions import Fraction

from meshstat.errors import InvalidArgument

__all__ = [
    "CASCADE_ONE",
    "MAX_DECIMAL_EXPONENT",
    "cascade_error_bound",
    "decimal_fraction",
    "kube_proxy_probabilities",
    "kube_proxy_uniform_bound",
    "probability_to_threshold",
    "round_to_total",
    "scale_fractional_weights",
    "smallest_integer_weights",
    "threshold_to_decimal",
    "weights_to_cascade",
]

#: ``2**31``: the stored integer of ``--probability 1`` (always matches).
CASCADE_ONE = 1 << 31


def probability_to_threshold(p: float | str) -> int:
    """The integer iptables stores for ``--probability p``: ``lround(p * 2**31)``.

    ``p`` may be a string exactly as written (``"0.3333333333"``) or printed
    (``"0.33333333349"``); it is parsed like ``strtod`` (Python's float parsing
    is correctly rounded, as glibc's is). Values outside ``[0, 1]`` are
    rejected as iptables does. Source: iptables
    ``extensions/libxt_statistic.c: statistic_parse``.

    Examples
    --------
    >>> probability_to_threshold("0.3333333333")
    715827883
    >>> probability_to_threshold("0.33333333349")
    715827883
    """
    if isinstance(p, str):
        try:
            x = float(p.strip())
        except ValueError:
            raise InvalidArgument(f"probability must be a number, got {p!r}") from None
    else:
        x = float(p)
    if not (0.0 <= x <= 1.0) or math.isnan(x):
        raise InvalidArgument(f"probability must be within [0, 1], got {p!r}")
    scaled = x * CASCADE_ONE  # exact: scaling by a power of two
    lo = math.floor(scaled)
    # C lround: round half away from zero (all inputs are >= 0); exact in doubles
    return int(lo) + (1 if scaled - lo >= 0.5 else 0)


def threshold_to_decimal(k: int) -> str:
    """``--probability`` as ``iptables-save`` prints it: ``"%.11f" % (k / 2**31)``.

    Examples
    --------
    >>> threshold_to_decimal(715827883)
    '0.33333333349'
    """
    return f"{k / CASCADE_ONE:.11f}"


def kube_proxy_probabilities(n: int, *, legacy: bool = False) -> tuple[str, ...]:
    """The ``--probability`` strings kube-proxy writes for ``n`` endpoints.

    ``fmt.Sprintf("%0.10f", 1.0/float64(n-i))`` for ``i < n - 1``
    (``"%0.5f"`` before v1.17); Go's and Python's fixed formatting are both
    correctly rounded, so the strings are identical.
    """
    if n < 1:
        raise InvalidArgument(f"endpoint count must be >= 1, got {n}")
    digits = 5 if legacy else 10
    return tuple(f"{1.0 / (n - i):.{digits}f}" for i in range(n - 1))


def kube_proxy_uniform_bound(*, legacy: bool = False) -> float:
    """Bound on ``|P_i - 1/n|`` for kube-proxy's ``n``-endpoint cascade, any ``n <= 10**5``.

    Each rule's probability is off from ``1/(n-i)`` by at most
    ``d = 0.5 * 10**-digits + 2**-32`` (decimal formatting, then ``lround`` to
    ``2**-31``). To first order a share's relative error is at most
    ``(n - i) d + 2 i d <= 2 n d``, so its absolute error is at most ``2 d``;
    the factor 1.01 covers the second-order terms for ``n d <= 0.01``.
    """
    d = 0.5 * 10.0 ** -(5 if legacy else 10) + 2.0**-32
    return 2.0 * d * 1.01


def weights_to_cascade(weights: Sequence[int | Fraction | float]) -> tuple[int, ...]:
    """The cascade of 31-bit thresholds that realizes ``weights`` most closely.

    Thresholds are chosen greedily with the exact remaining mass, so every share
    but the last is within ``2**-32`` of its target and the last (the
    unconditional rule) within ``m * 2**-32`` for ``m`` statistic rules; see
    :func:`cascade_error_bound`.

    Parameters
    ----------
    weights : sequence of non-negative numbers
        Relative weights, at least one positive.

    Returns
    -------
    tuple of int
        ``len(weights) - 1`` thresholds; the last outcome is the unconditional rule.
    """
    ws = [Fraction(w) for w in weights]
    if not ws or any(w < 0 for w in ws) or sum(ws) == 0:
        raise InvalidArgument("weights must be non-negative with a positive sum")
    total = sum(ws)
    targets = [w / total for w in ws]
    ks: list[int] = []
    remaining = Fraction(1)
    for t in targets[:-1]:
        if remaining == 0:
            ks.append(0)
            continue
        k = _round_half_up(t / remaining * CASCADE_ONE)
        k = min(max(k, 0), CASCADE_ONE)
        ks.append(k)
        remaining *= Fraction(CASCADE_ONE - k, CASCADE_ONE)
    return tuple(ks)


def cascade_error_bound(n_outcomes: int) -> tuple[float, float]:
    """Bounds of :func:`weights_to_cascade`: (every share but the last, the last one)."""
    m = max(n_outcomes - 1, 0)
    return 2.0**-32, m * 2.0**-32


def _round_half_up(x: Fraction) -> int:
    return math.floor(x + Fraction(1, 2))


def round_to_total(shares: list[Fraction], total: int) -> tuple[int, ...]:
    """Largest-remainder rounding of ``shares * total`` to integers summing to ``total``.

    The largest remainders go up first; equal remainders in the order of ``shares``. Integer arithmetic
    throughout: each ``p/q * total`` is ``(p * total) // q`` and its remainder ``(p * total) % q / q``,
    the remainders compared over their common denominator.
    """
    nums = [s.numerator * total for s in shares]
    dens = [s.denominator for s in shares]
    floors = [n // d for n, d in zip(nums, dens, strict=True)]
    deficit = total - sum(floors)
    if deficit <= 0:
        return tuple(floors)
    common = math.lcm(*dens)
    rems = [(n % d) * (common // d) for n, d in zip(nums, dens, strict=True)]
    for i in sorted(range(len(rems)), key=rems.__getitem__, reverse=True)[:deficit]:
        floors[i] += 1
    return tuple(floors)


#: Largest decimal exponent read from text: ``1e400`` is fine, ``1e100000000`` would take minutes to expand.
MAX_DECIMAL_EXPONENT = 4000
_EXPONENT = re.compile(r"[eE]\s*([+-]?)0*(\d+)\s*\Z")


def decimal_fraction(text: str) -> Fraction:
    """``Fraction(text)`` for a number written in decimal (``"99.5"``, ``"1e7"``, ``"3/4"``), bounded.

    Raises
    ------
    ValueError
        For text that is not a number, and for an exponent beyond
        :data:`MAX_DECIMAL_EXPONENT` (Python would build the whole power of ten).
    """
    m = _EXPONENT.search(text)
    if m is not None and (len(m.group(2)) > 6 or int(m.group(2)) > MAX_DECIMAL_EXPONENT):
        raise ValueError(f"exponent out of range in {text[:40]!r}")
    return Fraction(text)


def scale_fractional_weights(weights: Sequence[str | float]) -> tuple[int, ...]:
    """The smallest integer weights proportional to ``weights`` (for error hints)."""
    return smallest_integer_weights([decimal_fraction(str(w)) for w in weights])


def smallest_integer_weights(fr: Sequence[Fraction]) -> tuple[int, ...]:
    """The smallest integers proportional to the non-negative fractions ``fr`` (all zero stays zero)."""
    lcm = 1
    for f in fr:
        lcm = lcm * f.denominator // math.gcd(lcm, f.denominator)
    ints = [int(f * lcm) for f in fr]
    g = 0
    for i in ints:
        g = math.gcd(g, i)
    return tuple(i // g for i in ints) if g else tuple(ints)
