"""A canary rollout's traffic per interval (Flagger / Argo Rollouts style).

:func:`canary` returns a :class:`CanaryResult` with one :class:`CanaryStep` per
step: expected canary requests, the chance of none, and the error-rate
increase a two-proportion test can see. Table: :func:`meshstat.report.inference.frame`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from fractions import Fraction

from meshstat.errors import InvalidArgument
from meshstat.inference._text import _as_prob, _as_qps, _fmt_pct, format_duration, parse_duration
from meshstat.model import decimal_fraction
from meshstat.stats.gof import format_p

__all__ = ["CanaryResult", "CanaryStep", "canary", "canary_steps", "detectable_error_rate", "two_proportion_power"]


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
            f"{s.canary_requests:,.3g} canary requests per interval (P(none) = {format_p(s.p_zero)})"
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


def two_proportion_power(n1: float, n2: float, p0: float, p1: float, alpha: float) -> float:
    """Power of the one-sided pooled two-proportion z test (H1: canary rate p1 > baseline p0).

    ``n1`` baseline and ``n2`` canary requests; the test of :func:`canary` (see its Notes).
    """
    from scipy import special

    za = float(special.ndtri(1.0 - alpha))
    pbar = (n1 * p0 + n2 * p1) / (n1 + n2)
    s0 = math.sqrt(pbar * (1 - pbar) * (1 / n1 + 1 / n2))
    s1 = math.sqrt(p0 * (1 - p0) / n1 + p1 * (1 - p1) / n2)
    if s1 == 0:
        return 1.0 if p1 - p0 > za * s0 else 0.0
    return float(special.ndtr((p1 - p0 - za * s0) / s1))


def detectable_error_rate(n1: float, n2: float, p0: float, power: float, alpha: float) -> float | None:
    """Smallest canary error rate the one-interval test detects at ``power`` with ``n1``, ``n2`` requests.

    None when not even a 100% canary error rate is detected (or a side has no request).
    """
    from scipy import optimize

    if n1 <= 0 or n2 <= 0 or two_proportion_power(n1, n2, p0, 1.0, alpha) < power:
        return None
    return float(optimize.brentq(lambda x: two_proportion_power(n1, n2, p0, x, alpha) - power, p0, 1.0, xtol=1e-12))


def canary_steps(steps: Iterable[float | str]) -> list[Fraction]:
    """Canary percentages per rollout step (``5``, ``"12.5"``, ``"25%"``), exact, each in (0, 100].

    Raises
    ------
    InvalidArgument
        For a step that is not a number, one outside (0, 100], or no step at all.
    """
    out: list[Fraction] = []
    for s in steps:
        try:
            v = decimal_fraction(str(s).strip().rstrip("%"))
        except (ValueError, ZeroDivisionError):
            raise InvalidArgument(f"canary steps are percentages, got {s!r}") from None
        if not 0 < v <= 100:
            raise InvalidArgument(f"canary steps must be in (0, 100] percent, got {s!r}")
        out.append(v)
    if not out:
        raise InvalidArgument("give at least one canary step")
    return out


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
    from scipy import special

    if qps is None:
        raise InvalidArgument("qps is required")
    qps_v = _as_qps(qps)
    assert qps_v is not None
    secs = parse_duration(interval)
    power = _as_prob(power, "power")
    alpha = _as_prob(alpha, "alpha")
    if power <= alpha:
        # with no change at all (canary rate = baseline) the test fires at rate alpha: a lower power asks nothing
        raise InvalidArgument(
            f"power ({power:g}) must be above alpha ({alpha:g}): the test already fires with probability alpha "
            "when the canary is no worse than the baseline"
        )
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
    ws = [float(v) for v in canary_steps(steps)]
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
            det = detectable_error_rate(n1, n2, p0, power, alpha)
            if det is not None and n2 * det < 5:
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
