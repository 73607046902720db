"""What the inference modules share: validating a split and its parameters, and writing numbers for people.

``parse_duration`` / ``format_duration`` are public (``60s``, ``5m``, ``1h30m``);
the rest is private to :mod:`meshstat.inference`. p-values are written by
:func:`meshstat.stats.gof.format_p`, as the headline test's notes write them.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from fractions import Fraction

from meshstat import model
from meshstat.errors import InvalidArgument, ModelError
from meshstat.model import decimal_fraction

__all__ = ["format_duration", "parse_duration"]


def _split(weights: Iterable[int | str], names: Sequence[str] | None = None, *, what: str = "weights") -> tuple[
    tuple[str, ...], tuple[int, ...], tuple[Fraction, ...]
]:
    """Validate integer weights (Envoy's rules) -> (names, weights, exact shares)."""
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
        if isinstance(exc, ModelError):
            raise InvalidArgument(f"{what}: {exc}") from None
        raise
    labels = tuple(c.name for c in st.children)  # type: ignore[union-attr]
    return labels, tuple(st.weights), tuple(st.shares())


def _fmt_split(weights: Sequence[int]) -> str:
    return "/".join(str(w) for w in weights)


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
