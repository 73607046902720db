"""Is observed traffic (Envoy's counters, Istio's metrics) consistent with the configured split?

:func:`check_observed` takes an :class:`~meshstat.inference.observed_traffic.ObservedTraffic`
and a :class:`~meshstat.inference.observed_split.ConfiguredSplit` and returns an
:class:`ObservedCheck`:

* the whole period: :func:`meshstat.inference.check_split` on the counts (the same
  verdict, p-values and likelihood ratios as ``check --observed``);
* for a range query, every window on its own (:class:`WindowCheck`, the same
  test), the window band of :func:`meshstat.stats.window_band` (each window's
  central band at 95% and the band all windows stay in together; the largest share
  deviation and the probability that some window strays that far), and the worst
  window with the chance that the smallest of K independent p-values is that small
  (``1 - (1 - p_min)^K``; at most that for discrete tests);
* for a canary ramp (``steps``), each window against its step's split, and from
  which step one window's traffic could have detected a canary error rate
  ``detect_error_rate`` over the baseline's ``error_rate`` with the one-sided
  two-proportion test of :func:`meshstat.inference.canary` (Flagger and Argo
  Rollouts judge each analysis interval alone).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from fractions import Fraction

from meshstat.errors import InvalidArgument
from meshstat.inference._text import _as_prob, _fmt_pct, format_duration, parse_duration
from meshstat.inference.canary import canary_steps, detectable_error_rate, two_proportion_power
from meshstat.inference.check import CheckResult, check_split
from meshstat.inference.observed_split import ConfiguredSplit, MatchedSplit, match_split
from meshstat.inference.observed_traffic import ObservedTraffic
from meshstat.inputs import ascii_digits
from meshstat.model import Route, smallest_integer_weights
from meshstat.stats.gof import EXACT_MULTINOMIAL_LIMIT, format_p
from meshstat.stats.windows import WindowBand, window_band

__all__ = [
    "ObservedCheck",
    "RampDetection",
    "WindowCheck",
    "check_observed",
    "check_ramp",
    "configured_route",
    "format_time",
]


def format_time(t: float) -> str:
    """``1717243500.0`` -> ``"2024-06-01T12:05:00Z"`` (UTC)."""
    import time

    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


@dataclass(frozen=True)
class WindowCheck:
    """One window of a range query, checked on its own.

    Attributes
    ----------
    start, end : float
        Unix seconds (the window holds the requests counted after ``start`` up to ``end``).
    observed : tuple of int
        Requests per name of the split; ``n`` their sum.
    weights : tuple of int
        The split this window is checked against (a ramp's step).
    result : CheckResult or None
        :func:`check_split` of the window (None when it saw no request).
    low, high : tuple of int
        Central 95% band of each name's count in a window of ``n`` requests.
    step : float or None
        Canary percent of the ramp step (ramps only).
    power : float or None
        Power of one window's test to see ``detect_error_rate`` (ramps only).
    detectable_error_rate : float or None
        Smallest canary error rate one window detects at the target power (ramps only).
    """

    start: float
    end: float
    observed: tuple[int, ...]
    n: int
    weights: tuple[int, ...]
    result: CheckResult | None
    low: tuple[int, ...] = ()
    high: tuple[int, ...] = ()
    step: float | None = None
    power: float | None = None
    detectable_error_rate: float | None = None

    @property
    def pvalue(self) -> float | None:
        """The window's headline p-value (None without requests)."""
        return None if self.result is None else self.result.pvalue

    @property
    def label(self) -> str:
        """``"2024-06-01T12:00:00Z..12:05:00Z"``."""
        a, b = format_time(self.start), format_time(self.end)
        return f"{a}..{b[11:] if a[:10] == b[:10] else b}"


@dataclass(frozen=True)
class RampDetection:
    """From which step of a canary ramp one window could have detected the configured error rate."""

    canary: str
    steps: tuple[float, ...]
    error_rate: float
    detect_error_rate: float
    power: float
    alpha: float
    first_window: int | None
    first_step: float | None


@dataclass(frozen=True)
class ObservedCheck:
    """Outcome of :func:`check_observed`.

    Attributes
    ----------
    traffic : ObservedTraffic
        What was read.
    split : ConfiguredSplit
        What it is checked against.
    matched : MatchedSplit
        The counts per name of the split (weight-0 outcomes added).
    result : CheckResult or None
        The whole period (None for a ramp, whose split changes).
    windows : tuple of WindowCheck
        Per window of a range query.
    band : WindowBand or None
        The window band over the windows with requests.
    worst : int or None
        Index of the window with the smallest p-value; ``worst_any`` the chance
        that some window of as many has a p-value that small.
    ramp : RampDetection or None
    """

    traffic: ObservedTraffic
    split: ConfiguredSplit
    matched: MatchedSplit
    result: CheckResult | None
    windows: tuple[WindowCheck, ...]
    band: WindowBand | None
    worst: int | None
    worst_any: float | None
    ramp: RampDetection | None
    alpha: float
    warnings: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def checked_windows(self) -> tuple[WindowCheck, ...]:
        """The windows that saw requests."""
        return tuple(w for w in self.windows if w.result is not None)

    @property
    def inconsistent_windows(self) -> tuple[WindowCheck, ...]:
        """Windows whose own test rejects at ``alpha``."""
        return tuple(w for w in self.checked_windows if not w.result.consistent)  # type: ignore[union-attr]

    @property
    def method(self) -> str:
        """The headline test (of the whole period, or of the worst window of a ramp)."""
        if self.result is not None:
            return self.result.method
        return "worst window (Sidak)" if self.worst is not None else "none"

    @property
    def pvalue(self) -> float:
        """The headline p-value: the whole period's, or for a ramp the worst window's familywise one."""
        if self.result is not None:
            return self.result.pvalue
        return 1.0 if self.worst_any is None else self.worst_any

    @property
    def consistent(self) -> bool:
        """Whether the headline p-value is at least ``alpha``."""
        return self.pvalue >= self.alpha

    def summary(self) -> str:
        """The verdict of the whole period, then the windows and the ramp."""
        parts = []
        if self.result is not None:
            parts.append(self.result.summary())
        if self.windows:
            k = len(self.checked_windows)
            bad = len(self.inconsistent_windows)
            text = f"{k} window(s) checked, {bad} inconsistent"
            if self.ramp is not None:
                text += " with their step"
            text += f" at {self.alpha:g} ({k * self.alpha:.2g} expected by chance)"
            if self.worst is not None:
                w = self.windows[self.worst]
                text += (
                    f"; worst window {w.label} ({w.n:,} requests, p = {format_p(w.pvalue or 0.0)}); "
                    f"P(some window of {k} is that extreme by chance) = {format_p(self.worst_any or 0.0)}"
                )
            parts.append(text)
        if self.ramp is not None:
            r = self.ramp
            what = f"{_fmt_pct(r.error_rate)} -> {_fmt_pct(r.detect_error_rate)} errors"
            if r.first_window is None:
                parts.append(
                    f"no window of this ramp could detect {what} at power {r.power:g} (one-sided level "
                    f"{r.alpha:g})"
                )
            else:
                w = self.windows[r.first_window]
                parts.append(
                    f"one window could detect {what} at power {r.power:g} from step {r.first_step:g}% on "
                    f"(window {w.label}, {w.observed[-1] if w.observed else 0:,} canary requests)"
                )
        return "; ".join(parts)

    verdict = summary


def _shares(weights: Sequence[int]) -> list[Fraction]:
    t = sum(weights)
    return [Fraction(w, t) for w in weights]


def check_observed(
    traffic: ObservedTraffic,
    split: ConfiguredSplit,
    *,
    alternatives: Iterable[Sequence[int | str]] = (),
    alpha: float = 0.05,
    exact_limit: int = EXACT_MULTINOMIAL_LIMIT,
    exclude_unrouted: bool = False,
) -> ObservedCheck:
    """Check observed traffic against a configured split: the whole period, and each window of a range.

    Parameters
    ----------
    traffic : ObservedTraffic
        From :func:`~meshstat.inference.observed_traffic.read_traffic`.
    split : ConfiguredSplit
        From :func:`~meshstat.inference.observed_split.split_from_weights` or
        :func:`~meshstat.inference.observed_split.split_from_route`.
    alternatives, alpha, exact_limit
        As :func:`meshstat.inference.check_split`.
    exclude_unrouted : bool
        Leave responses that reached no backend out (see
        :func:`~meshstat.inference.observed_split.match_split`).
    """
    alpha = _as_prob(alpha, "alpha")
    m = match_split(traffic, split, exclude_unrouted=exclude_unrouted)
    alts = [list(a) + [0] * (len(m.weights) - len(a)) for a in alternatives]
    if sum(m.counts) == 0:
        raise InvalidArgument(
            f"the data's backends ({', '.join(traffic.keys(routed=True)) or 'none'}) have no request to "
            f"any of the split's ({', '.join(m.names)}) in {', '.join(traffic.sources)}: nothing to check"
        )
    result = check_split(
        list(m.counts),
        list(m.weights),
        alternatives=alts,
        names=list(m.names),
        alpha=alpha,
        exact_limit=exact_limit,
    )
    windows, band, worst, worst_any = _windows(
        m, traffic, [m.weights] * len(m.window_counts), alts, alpha, exact_limit
    )
    return ObservedCheck(
        traffic,
        split,
        m,
        result,
        windows,
        band,
        worst,
        worst_any,
        None,
        alpha,
        tuple(dict.fromkeys(traffic.warnings + m.warnings)),
        tuple(dict.fromkeys(traffic.notes + m.notes)),
    )


def _windows(
    m: MatchedSplit,
    traffic: ObservedTraffic,
    weights: Sequence[Sequence[int]],
    alts: list,
    alpha: float,
    exact_limit: int,
    extra: Sequence[dict] | None = None,
) -> tuple[tuple[WindowCheck, ...], WindowBand | None, int | None, float | None]:
    import numpy as np

    out: list[WindowCheck] = []
    for i, (w, obs) in enumerate(zip(traffic.windows, m.window_counts, strict=True)):
        n = sum(obs)
        ex = extra[i] if extra is not None else {}
        res = None
        if n > 0:
            res = check_split(
                list(obs),
                list(weights[i]),
                alternatives=alts,
                names=list(m.names),
                alpha=alpha,
                exact_limit=exact_limit,
            )
        out.append(WindowCheck(w.start, w.end, tuple(obs), n, tuple(weights[i]), res, **ex))
    live = [i for i, w in enumerate(out) if w.n > 0]
    for i in live:  # each window's own central band at 95%
        w = out[i]
        one = window_band(
            np.array([w.observed], dtype=np.int64), w.n, _shares(w.weights), confidence_level=0.95
        )
        out[i] = WindowCheck(
            w.start,
            w.end,
            w.observed,
            w.n,
            w.weights,
            w.result,
            tuple(int(x) for x in one.low),
            tuple(int(x) for x in one.high),
            w.step,
            w.power,
            w.detectable_error_rate,
        )
    band = None
    if live and len({tuple(weights[i]) for i in live}) == 1:
        counts = np.array([out[i].observed for i in live], dtype=np.int64)
        band = window_band(counts, counts.sum(axis=1), _shares(weights[live[0]]), confidence_level=0.95)
    worst = worst_any = None
    if live:
        worst = min(live, key=lambda i: (out[i].pvalue, i))  # type: ignore[arg-type, return-value]
        p = float(out[worst].pvalue or 0.0)
        worst_any = float(-math.expm1(len(live) * math.log1p(-min(p, 1.0 - 1e-300)))) if p < 1 else 1.0
    return tuple(out), band, worst, worst_any


def check_ramp(
    traffic: ObservedTraffic,
    canary: str,
    steps: Sequence[float | str],
    *,
    step_duration: float | str | None = None,
    error_rate: float = 0.01,
    detect_error_rate: float = 0.05,
    power: float = 0.8,
    alpha: float = 0.05,
    exact_limit: int = EXACT_MULTINOMIAL_LIMIT,
    exclude_unrouted: bool = False,
) -> ObservedCheck:
    """A canary ramp over a range query: each window against its step, and the first step that detects errors.

    Parameters
    ----------
    traffic : ObservedTraffic
        A range query (per-window counts).
    canary : str
        The canary's name among the data's keys (a version, subset or cluster); every
        other backend of the service is the baseline.
    steps : sequence of float
        Canary percent per step (``5, 10, 25, 50``).
    step_duration : float or str, optional
        Seconds per step (``"5m"``), counted from the range's first point; default one
        step per window (as many windows as steps).
    error_rate, detect_error_rate, power, alpha
        The baseline error rate, the canary error rate to detect, the power and the
        one-sided level of the two-proportion test (also the verdict's level).
    """
    alpha = _as_prob(alpha, "alpha")
    power = _as_prob(power, "power")
    p0, p1 = _as_prob(error_rate, "error_rate"), _as_prob(detect_error_rate, "detect_error_rate")
    if p1 <= p0:
        raise InvalidArgument(f"detect_error_rate ({p1:g}) must be above the baseline error rate ({p0:g})")
    if not traffic.windows:
        raise InvalidArgument(
            "a canary ramp needs a range query (per-window counts): give an /api/v1/query_range answer"
        )
    pct = canary_steps(steps)
    routed = [k for k in traffic.keys(routed=True) if traffic.scope[k] == "service"]
    can = [k for k in routed if canary in traffic.aliases[k]]
    if not can:
        raise InvalidArgument(f"no {canary!r} in the data (backends there: {', '.join(routed) or 'none'})")
    base = [k for k in routed if k not in can]
    if not base:
        raise InvalidArgument(f"the data has only {canary}: a ramp needs a baseline beside the canary")
    split = ConfiguredSplit(
        ("baseline", canary), (1, 1), (True, True), "canary ramp", (f"baseline = {', '.join(base)}",)
    )
    keyed = ObservedTraffic(
        traffic.form,
        traffic.by,
        traffic.sources,
        traffic.totals,
        traffic.windows,
        {**traffic.aliases, **{k: (*traffic.aliases[k], "baseline") for k in base}},
        traffic.routed,
        traffic.scope,
        traffic.where,
        traffic.reporter,
        traffic.warnings,
        traffic.notes,
    )
    m = match_split(keyed, split, exclude_unrouted=exclude_unrouted)
    notes = list(traffic.notes) + list(m.notes)
    t0 = traffic.windows[0].start
    if step_duration is None:
        if len(traffic.windows) != len(pct):
            raise InvalidArgument(
                f"{len(traffic.windows)} windows for {len(pct)} steps: give the step duration "
                "(--step-duration) or one step per window"
            )
        idx = list(range(len(pct)))
    else:
        d = parse_duration(step_duration)
        idx = [min(len(pct) - 1, int((w.end - t0 - 1e-9) // d)) for w in traffic.windows]
        if int((traffic.windows[-1].end - t0 - 1e-9) // d) >= len(pct):
            notes.append(
                f"the range is longer than {len(pct)} steps of {format_duration(d)}: later windows are "
                f"checked against the last step ({pct[-1]}%)"
            )
    weights, extra = [], []
    first = None
    for i, obs in enumerate(m.window_counts):
        s = pct[idx[i]]
        base_w, can_w = smallest_integer_weights([1 - s / 100, s / 100])
        weights.append((base_w, can_w) + (0,) * (len(m.names) - 2))
        n1, n2 = obs[0], obs[1]
        pw = two_proportion_power(n1, n2, p0, p1, alpha) if n1 > 0 and n2 > 0 else 0.0
        det = detectable_error_rate(n1, n2, p0, power, alpha)
        if first is None and pw >= power:
            first = i
        extra.append({"step": float(s), "power": pw, "detectable_error_rate": det})
    windows, band, worst, worst_any = _windows(m, traffic, weights, [], alpha, exact_limit, extra)
    ramp = RampDetection(
        canary,
        tuple(float(x) for x in pct),
        p0,
        p1,
        power,
        alpha,
        first,
        float(pct[idx[first]]) if first is not None else None,
    )
    notes.append(
        "the detection power is the one-sided pooled two-proportion z test of one window "
        "(canary vs baseline error rate), as canary computes it"
    )
    return ObservedCheck(
        traffic,
        split,
        m,
        None,
        windows,
        band,
        worst,
        worst_any,
        ramp,
        alpha,
        tuple(dict.fromkeys(traffic.warnings + m.warnings)),
        tuple(dict.fromkeys(notes)),
    )


def configured_route(
    filenames: Sequence[str] = (),
    *,
    envoy: Sequence[str] = (),
    service: str | None = None,
    client: str | None = None,
) -> Route:
    """The client's route the counts should follow: from manifests (``-f``) and/or an Envoy dump.

    With manifests, the client's sidecar path (:meth:`meshstat.mesh.Mesh.client_paths`;
    the dump's path when ``envoy`` is given too), as ``compare -f`` builds it: Envoy's
    counters and Istio's metrics are what a sidecar records. With a dump alone,
    :func:`meshstat.mesh.envoy_dump_route` of ``service`` (``HOST:PORT``).
    """
    from meshstat.engine.mesh import compare_paths
    from meshstat.mesh import envoy_dump_route
    from meshstat.parsers.envoy import load_envoy

    if filenames:
        cmp_ = compare_paths(
            list(filenames), client=client, service=service, envoy=list(envoy) or None, n=None
        )
        kind = "envoy-dump" if envoy else "sidecar"
        paths = [p for p in cmp_.paths if p.kind == kind]
        if len({p.service for p in paths}) > 1:
            raise InvalidArgument(
                f"the manifests route {len(paths)} services ({', '.join(p.service for p in paths)}): "
                "pick one with --service"
            )
        if not paths:
            raise InvalidArgument("no sidecar path in the manifests (the client has no istio-proxy)")
        return paths[0].route
    if not envoy:
        raise InvalidArgument("give the split: --weights, -f DIR (manifests) or --envoy DUMP")
    if not service or ":" not in service:
        raise InvalidArgument("--envoy DUMP needs --service HOST:PORT (the called host and port)")
    host, _, port = service.rpartition(":")
    if not ascii_digits(port):
        raise InvalidArgument(f"expected --service HOST:PORT, got {service!r}")
    route, res = envoy_dump_route(load_envoy(list(envoy)), host, int(port))
    if res.failure and not route.backends():
        raise InvalidArgument(f"{host}:{port} through the dump: {res.failure}")
    return route
