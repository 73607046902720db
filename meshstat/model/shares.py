"""Exact shares that can be astronomically long: built without gcds, printed in a bounded form.

A cascade of ``m`` iptables statistic rules has shares
``P_i = k_i * prod_{j<i} (2**31 - k_j) / 2**(31 (i + 1))``: dyadic rationals
whose numerators and denominators have up to ``31 m`` bits (a 10,000-endpoint
kube-proxy service: 310,000 bits, 93,000 decimal digits). Two things go wrong
with such numbers when they are treated like any :class:`fractions.Fraction`:

* building one with ``Fraction(num, den)`` runs a gcd, quadratic in the
  length, so that all the shares of a cascade cost cubic time. With a
  power-of-two denominator the gcd is a power of two too, the count of
  trailing zero bits of the numerator: :func:`dyadic` reduces by shifting,
  in linear time;
* printing one with ``str`` converts a 93,000-digit integer to decimal
  (quadratic in CPython, and refused beyond 4,300 digits since Python 3.11).

So every exact share meshstat prints goes through :func:`share_text`, the one
definition of its text: the fraction ``N/D`` itself while it has at most
:data:`MAX_SHARE_TEXT` characters, else ``~`` and :data:`APPROX_DIGITS`
significant decimal digits. A ``~`` in front of a share always means "this text
is not the exact share": either the text was shortened, or the share itself was
not computed exactly (a cascade longer than :data:`meshstat.model.MAX_EXACT_RULES`
is sampled and reported on the kernels' ``2**-64`` grid: ``share_text(x,
exact=False)``). The exact value stays in the result objects; only its text is
bounded.

Pure Python (standard library only).
"""

from __future__ import annotations

import decimal
import math
from collections.abc import Iterable
from fractions import Fraction

__all__ = [
    "APPROX_DIGITS",
    "MAX_SHARE_TEXT",
    "DyadicShare",
    "approx_decimal",
    "as_share",
    "coprime_fraction",
    "dyadic",
    "exact_sum",
    "share_text",
]

#: Longest ``N/D`` text printed as it is (longer exact shares are printed as ``~`` + decimal).
MAX_SHARE_TEXT = 48
#: Significant digits of a shortened share (17: every float64 round-trips).
APPROX_DIGITS = 17

# The standard library's constructor of an already reduced fraction (no gcd):
# ``Fraction._from_coprime_ints`` from Python 3.12, ``Fraction(n, d, _normalize=False)``
# in 3.11. Both are private; the public constructor (with its gcd) is the fallback.
_FROM_COPRIME = getattr(Fraction, "_from_coprime_ints", None)


def coprime_fraction(numerator: int, denominator: int, cls: type[Fraction] = Fraction) -> Fraction:
    """``cls(numerator, denominator)`` for integers the caller knows are coprime
    (``denominator > 0``): no gcd, constant time."""
    if _FROM_COPRIME is not None:
        return _FROM_COPRIME.__func__(cls, numerator, denominator)  # type: ignore[attr-defined,no-any-return]
    try:
        return cls(numerator, denominator, _normalize=False)  # type: ignore[call-arg]
    except TypeError:  # pragma: no cover - a Python without either private constructor
        return cls(numerator, denominator)


class DyadicShare(Fraction):
    """A :class:`~fractions.Fraction` whose denominator is a power of two (a share of a cascade).

    It is a Fraction in every respect (equality, hashing, arithmetic, whose
    results are plain Fractions) except for three operations that are linear
    or worse in the length of a generic Fraction and constant or linear here:

    * ``float(x)`` reads the leading 64 bits of the numerator (the reduced
      numerator is odd, so any bit cut off makes a sticky bit) and is
      correctly rounded, in constant time;
    * ``str(x)`` is :func:`share_text` (``~`` and 17 digits beyond 48
      characters) instead of a decimal expansion of any length;
    * ``repr(x)`` names the sizes instead of printing numbers of more than
      1,000 digits.
    """

    __slots__ = ()

    def __float__(self) -> float:
        n, d = self.numerator, self.denominator
        neg = n < 0
        n = -n if neg else n
        e = d.bit_length() - 1
        cut = n.bit_length() - 64
        if cut > 0:
            n = (n >> cut) | 1  # the reduced numerator is odd: what was cut off is not 0 (sticky bit)
            e -= cut
        # n < 2**65; below 2**-1075 (half the smallest subnormal) the value rounds to 0
        if e < 0:  # an integer above 2**64 (not a share): the scaling by 2**-e is exact  # noqa: SIM108
            value = math.ldexp(float(n), -e)
        else:
            value = 0.0 if e > 1140 else n / (1 << e)  # int / int is correctly rounded
        return -value if neg else value

    def __str__(self) -> str:
        return share_text(self) or "0"

    def __repr__(self) -> str:
        n, d = self.numerator, self.denominator
        if abs(n).bit_length() <= 3300 and d.bit_length() <= 3300:
            return f"{type(self).__name__}({n}, {d})"
        return f"{type(self).__name__}(<{abs(n).bit_length()}-bit numerator>, 2**{d.bit_length() - 1})"

    def __reduce__(self) -> tuple[object, tuple[int, int]]:
        return (dyadic, (self.numerator, self.denominator.bit_length() - 1))

    def __copy__(self) -> DyadicShare:
        return self

    def __deepcopy__(self, memo: object) -> DyadicShare:
        return self


def dyadic(numerator: int, exponent: int) -> Fraction:
    """``numerator / 2**exponent`` in lowest terms, in time linear in its length.

    The gcd of ``numerator`` and ``2**exponent`` is ``2**t`` with ``t`` the
    trailing zero bits of ``numerator`` (at most ``exponent``), so the fraction
    is reduced by a shift instead of :func:`math.gcd` (quadratic in CPython).

    Examples
    --------
    >>> dyadic(12, 4)
    DyadicShare(3, 4)
    >>> dyadic(12, 4) == Fraction(3, 4)
    True
    """
    if exponent < 0:
        raise ValueError(f"exponent must be >= 0, got {exponent}")
    if numerator == 0:
        return coprime_fraction(0, 1, DyadicShare)
    t = min((numerator & -numerator).bit_length() - 1, exponent)
    return coprime_fraction(numerator >> t, 1 << (exponent - t), DyadicShare)


def approx_decimal(x: Fraction | int, digits: int = APPROX_DIGITS) -> str:
    """``x`` to ``digits`` significant decimal digits, in time linear in its length.

    ``"0.33333333333333331"`` or, below ``1e-6`` and at ``1e21`` and above,
    ``"3.3333333333333331e-40000"``: also for values no float can hold. Only the
    leading bits of the numerator and denominator are used (with 96 more bits
    than the digits need), so the last digit may differ from the correctly
    rounded one when the value lies within ``2**-90`` (relative) of a rounding
    tie.

    Examples
    --------
    >>> approx_decimal(Fraction(1, 3))
    '0.33333333333333333'
    >>> approx_decimal(Fraction(1, 3 << 200000))
    '3.3399960180206246e-60207'
    >>> approx_decimal(Fraction(1, 4))
    '0.25'
    """
    x = Fraction(x)
    n, d = x.numerator, x.denominator
    if n == 0:
        return "0"
    sign = "-" if n < 0 else ""
    n = abs(n)
    keep = 4 * digits + 96  # bits kept of each: far more than the digits need
    e2 = 0  # x = (n / d) * 2**e2
    if n.bit_length() > keep:
        cut = n.bit_length() - keep
        n >>= cut
        e2 += cut
    if d.bit_length() > keep:
        cut = d.bit_length() - keep
        d >>= cut
        e2 -= cut
    ctx = decimal.Context(prec=digits + 12, Emax=decimal.MAX_EMAX, Emin=decimal.MIN_EMIN)
    ratio = ctx.divide(decimal.Decimal(n), decimal.Decimal(d))
    value = ctx.multiply(ratio, ctx.power(decimal.Decimal(2), e2))
    value = decimal.Context(prec=digits, Emax=decimal.MAX_EMAX, Emin=decimal.MIN_EMIN).plus(value).normalize()
    exp10 = value.adjusted()
    if -6 <= exp10 < 21:
        text = format(value, "f")
    else:
        mant = value.scaleb(-exp10, decimal.Context(prec=digits))
        text = f"{format(mant, 'f')}e{exp10}"
    return sign + text


def share_text(x: Fraction | int | None, exact: bool = True) -> str | None:
    """The text of a share: ``N/D`` exactly while short, else ``~`` and 17 significant digits.

    Parameters
    ----------
    x : Fraction or None
        The share (``None`` stays ``None``: a share that was not computed).
    exact : bool
        Whether ``x`` is the exact share. False for a share rounded to the
        kernels' ``2**-64`` grid (a cascade longer than
        :data:`meshstat.model.MAX_EXACT_RULES`): then the text always starts
        with ``~``.

    Returns
    -------
    str
        ``"9/10"``, ``"1"``, ``"~9/10"`` (rounded, short) or
        ``"~0.00099950024987506247"`` (too long to print in full). A text
        without ``~`` is the exact share. The length of the fraction is judged
        from bit lengths before any decimal conversion, so a share of any
        length costs time linear in its length.

    Examples
    --------
    >>> share_text(Fraction(9, 10))
    '9/10'
    >>> share_text(Fraction(1, 1 << 4000))
    '~7.5860787034673786e-1205'
    >>> share_text(Fraction(1, 4), exact=False)
    '~1/4'
    """
    if x is None:
        return None
    x = Fraction(x)
    n, d = x.numerator, x.denominator
    # a decimal digit per 3.32 bits: more than 160 bits together is more than 48 characters
    if abs(n).bit_length() + d.bit_length() <= 170:
        text = str(n) if d == 1 else f"{n}/{d}"
        if len(text) <= MAX_SHARE_TEXT:
            return text if exact else "~" + text
    return "~" + approx_decimal(x)


def as_share(x: Fraction) -> Fraction:
    """``x`` as a :class:`DyadicShare` when its denominator is a power of two (constant time), else ``x``."""
    d = x.denominator
    if type(x) is DyadicShare or d & (d - 1):
        return x
    return coprime_fraction(x.numerator, d, DyadicShare)


def exact_sum(values: Iterable[Fraction | int]) -> Fraction:
    """The exact sum of ``values``, in time linear in their total length where all are dyadic.

    ``sum`` of Fractions reduces by a gcd after every addition (quadratic in
    the length: cubic over a cascade's shares); power-of-two denominators are
    aligned by shifts instead and the result reduced once (:func:`dyadic`).
    Other fractions are added as Fractions.

    Examples
    --------
    >>> exact_sum([dyadic(1, 1), dyadic(1, 2), Fraction(1, 3)])
    Fraction(13, 12)
    """
    num, exp = 0, 0  # the dyadic part: num / 2**exp
    rest = Fraction(0)
    for v in values:
        v = Fraction(v)
        d = v.denominator
        if d & (d - 1):  # not a power of two
            rest += v
            continue
        e = d.bit_length() - 1
        if e > exp:
            num <<= e - exp
            exp = e
        num += v.numerator << (exp - e)
    total = dyadic(num, exp) if num >= 0 else -dyadic(-num, exp)
    return total if rest == 0 else rest + total
