"""Operating characteristic of a fixed-tolerance check ("pass if every share is within ±t").

:func:`acceptance_probability` returns an :class:`AcceptanceResult`;
:func:`tolerance_probability` is :func:`meshstat.stats.tolerance_probability`
on configured weights.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

from meshstat.errors import InvalidArgument
from meshstat.inference._text import _as_fraction, _fmt_pct, _fmt_split, _split
from meshstat.stats import distributions
from meshstat.stats.gof import format_p

__all__ = ["AcceptanceResult", "acceptance_probability", "tolerance_probability"]


def tolerance_probability(
    weights: Sequence[int | str], n: int, tolerance: float | str, *, truth: Sequence[int | str] | None = None
) -> float:
    """P(every backend's observed share is within ``±tolerance`` of its configured share) in ``n`` requests.

    ``truth`` (weights) is the split the requests really follow (default: the
    configured one); this gives the operating characteristic of a fixed-tolerance
    check such as Gateway API's ``HTTPRouteWeight`` conformance test. Weights are
    validated by Envoy's rules and the tolerance is read exactly (``"0.05"`` is
    1/20); the probability is :func:`meshstat.stats.tolerance_probability`.
    """
    _, ws, _ = _split(weights)
    t = _as_fraction(tolerance, "tolerance")
    tw = None if truth is None else _split(truth, what="truth weights")[1]
    return distributions.tolerance_probability(ws, n, t, truth=tw)


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
            f"{_fmt_split(self.truth)}: one attempt passes with probability {format_p(self.pass_one)}, "
            f"at least one of {self.attempts} with {format_p(self.pass_any)}"
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
