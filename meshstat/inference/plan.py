"""How many requests? Until every share is within a tolerance, every backend got ``m``, or a skew shows.

:func:`plan_tolerance`, :func:`plan_min_hits` and :func:`plan_detect` return a
:class:`PlanResult` (table: :func:`meshstat.report.inference.frame`).
Planners return the **first** ``n`` that meets the target by exact
computation (every smaller ``n`` fails), together with, where the exact
probability is not monotone in ``n`` (lattice effects of the binomial), the
smallest ``n_sustained`` from which every ``n`` up to ``checked_to`` meets it.
:func:`plan_min_hits` is monotone (one more request never lowers a count), so
the two coincide there. The exact distributions are in
:mod:`meshstat.stats.distributions`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from meshstat.errors import InvalidArgument
from meshstat.inference._text import (
    _as_fraction,
    _as_prob,
    _as_qps,
    _fmt_pct,
    _fmt_split,
    _split,
    format_duration,
)
from meshstat.stats import distributions
from meshstat.stats.binomial import bdtr as _bdtr
from meshstat.stats.distributions import (
    INCLUSION_EXCLUSION_LIMIT,
    binom_interval_prob,
    binomial_test_power,
    bounds,
    multinomial_box_probability,
    tolerance_probability,
)

__all__ = ["PlanResult", "PlanRow", "plan_detect", "plan_min_hits", "plan_tolerance", "prob_all_at_least"]

#: Exact scans over every n from 1 are done while the scan ends below this n; beyond, a window
#: around the approximation (noted).
_FULL_SCAN_LIMIT = 200_000
#: Most exact evaluations (values of n) one scan makes: a question needing more is refused up
#: front with the approximation in the message (about 2 s of scipy's incomplete beta).
MAX_SCAN_EVALUATIONS = 1 << 19
#: Values of n evaluated per vectorised call (bounds the memory of a scan).
_SCAN_CHUNK = 1 << 16
#: Multiply-adds the joint (multinomial) tolerance search may spend in its convolutions (numpy's
#: vectorised convolution does about 1.5e10 a second: a few seconds).
MAX_JOINT_WORK = 6 * 10**10


def prob_all_at_least(weights: Sequence[int | str], n: int | Sequence[int], m: int = 1) -> Any:
    """P(every backend with a positive weight gets at least ``m`` of ``n`` requests), exactly.

    :func:`meshstat.stats.prob_all_at_least` on configured weights (validated
    by Envoy's rules, as every planner's). Vectorised over ``n``.
    """
    _, ws, _ = _split(weights)
    return distributions.prob_all_at_least(ws, n, m)


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


def _scan(
    fn: Any, target: float, start_hi: int, approx: int | None, what: str = "the target"
) -> tuple[int, int, int, Any, Any, list[str]]:
    """Evaluate ``fn(ns)`` (vectorised) until the first and the sustained n are well inside the scan.

    Small questions (a scan ending below :data:`_FULL_SCAN_LIMIT`) scan every
    n from 1, growing the end. Larger ones scan a window around the
    approximation ``approx``: the lattice effects that make these
    probabilities oscillate in n move the crossing by about ``sqrt(n)``, so
    the window is ``approx ± (4 sqrt(approx) + 64)``, doubled until the
    first n lies past its first eighth and the sustained n before its last
    eighth (noted). Never more than :data:`MAX_SCAN_EVALUATIONS` values of n:
    a question needing more is refused up front, with the approximation.

    Returns (first, sustained, U, ns, values, notes).
    """
    import numpy as np

    notes: list[str] = []
    hi = max(int(start_hi), 64)
    if approx is None or hi <= _FULL_SCAN_LIMIT:
        for _ in range(40):
            if hi > max(_FULL_SCAN_LIMIT, 2 * MAX_SCAN_EVALUATIONS) and approx is not None:
                break
            ns = np.arange(1, hi + 1, dtype=np.int64)
            vals = _chunked(fn, ns)
            first, sustained = _first_and_sustained(vals >= target, ns)
            if first is not None and sustained is not None and sustained * 3 <= hi * 2:
                return first, sustained, hi, ns, vals, notes
            hi *= 2
        if approx is None:
            raise InvalidArgument("no n up to 2**40 meets the target; the question has no practical answer")
    w = 4 * math.isqrt(approx) + 64
    while True:
        lo, hi = max(1, approx - w), approx + w
        if hi - lo + 1 > MAX_SCAN_EVALUATIONS:
            raise InvalidArgument(
                f"the exact answer lies near n = {approx:,} (normal approximation) and finding it needs the exact "
                f"probability at about {hi - lo + 1:,} values of n (lattice effects move it by about "
                f"sqrt(n)), more than the {MAX_SCAN_EVALUATIONS:,} meshstat evaluates; ask for less precision "
                f"(a larger {what}) for an exact answer"
            )
        ns = np.arange(lo, hi + 1, dtype=np.int64)
        vals = _chunked(fn, ns)
        first, sustained = _first_and_sustained(vals >= target, ns)
        margin = (hi - lo) // 8
        if (
            first is not None
            and sustained is not None
            and (lo == 1 or first - lo >= margin)
            and hi - sustained >= margin
        ):
            if lo > 1:
                notes.append(
                    f"exact values were computed for n from {lo:,} to {hi:,} (the normal approximation "
                    f"{approx:,} ± {w:,}: lattice effects move the crossing by about sqrt(n)); the first n lies "
                    "well inside, smaller n were not scanned"
                )
            return first, sustained, hi, ns, vals, notes
        w *= 2


def _joint_first(joint: Any, target: float, lower: int, shares: Sequence[float]) -> tuple[int, float, str]:
    """The first n from ``lower`` with ``joint(n) >= target``: a crossing by galloping and bisection,
    then every n of a window before it (lattice effects move the first crossing by about ``sqrt(n)``).

    Each evaluation convolves the box-restricted pmfs of about ``28 sqrt(n p (1 - p)) + 66`` values;
    the multiply-adds of the whole search are bounded by :data:`MAX_JOINT_WORK` (refused beyond).
    """
    spent = 0.0

    def ev(nv: int) -> float:
        nonlocal spent
        lens = sorted((28.0 * math.sqrt(nv * p * (1 - p)) + 66.0 for p in shares), reverse=True)
        spent += lens[0] * sum(lens[1:-1]) if len(lens) > 2 else lens[0]
        if spent > MAX_JOINT_WORK:
            raise InvalidArgument(
                f"the joint tolerance plan needs more exact multinomial evaluations near n = {nv:,} than "
                f"meshstat makes ({MAX_JOINT_WORK:.0e} multiply-adds); use a wider tolerance (each backend "
                f"alone needs n >= {lower:,})"
            )
        return float(joint(nv))

    cache: dict[int, float] = {}

    def val(nv: int) -> float:
        if nv not in cache:
            cache[nv] = ev(nv)
        return cache[nv]

    if val(lower) >= target:
        return lower, val(lower), f"no n below {lower:,} can work (some backend alone misses the target there)"
    bad, step = lower, 1
    good = lower + step
    while val(good) < target:
        bad, step = good, step * 2
        good = lower + step
        if step > 2**50:
            raise InvalidArgument("no practical n meets the joint tolerance target")
    while good - bad > 1:
        mid = (bad + good) // 2
        if val(mid) >= target:
            good = mid
        else:
            bad = mid
    w = 4 * math.isqrt(good) + 64
    while True:
        start = max(lower, good - w)
        for nv in range(start, good + 1):
            if val(nv) >= target:
                break
        first = nv
        if start == lower or first - start >= w // 8:
            note = (
                f"no n below {lower:,} can work (some backend alone misses the target there); every n from "
                f"{start:,} to the crossing {good:,} found by bisection was computed (lattice effects move the "
                "first crossing by about sqrt(n))"
            )
            return first, val(first), note
        w *= 2


def _chunked(fn: Any, ns: Any) -> Any:
    """``fn(ns)`` computed :data:`_SCAN_CHUNK` values at a time (bounded memory)."""
    import numpy as np

    if ns.size <= _SCAN_CHUNK:
        return np.asarray(fn(ns))
    return np.concatenate([np.asarray(fn(ns[i : i + _SCAN_CHUNK])) for i in range(0, ns.size, _SCAN_CHUNK)])


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
            a, b = bounds(ns, p, t)
            return binom_interval_prob(a, b, ns, pf)

        return fn

    if len(pos) == 2:
        i = pos[0]
        fn = marginal(i)
        first, sustained, hi, ns, vals, scan_notes = _scan(
            fn, confidence, 2 * n_approx + 100, n_approx, "tolerance"
        )
        notes += scan_notes
        prob = float(vals[first - int(ns[0])])
        before = float(fn(np.array([first - 1]))[0]) if first > 1 else 0.0
        method = "exact binomial"
    else:
        fns = [marginal(i) for i in pos]

        def all_marginals(ns: Any) -> Any:
            return np.min(np.vstack([f(ns) for f in fns]), axis=0)

        lower, _, _, _, _, scan_notes = _scan(
            all_marginals, confidence, 2 * n_approx + 100, n_approx, "tolerance"
        )
        notes += scan_notes

        def joint(nv: int) -> float:
            lows, highs = zip(*(bounds(nv, p, t) for p in shares), strict=True)
            return multinomial_box_probability(nv, shares, lows, highs)

        first, prob, scan_note = _joint_first(joint, confidence, lower, [float(p) for p in shares if p > 0])
        notes.append(scan_note)
        before = joint(first - 1) if first > 1 else 0.0
        sustained, hi = None, None
        method = "exact multinomial"
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
    method = "exact (inclusion-exclusion)" if (1 + m) ** len(pos) <= INCLUSION_EXCLUSION_LIMIT else (
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

        first, sustained, hi, ns, vals, scan_notes = _scan(fn, power, 2 * n_norm + 100, n_norm, "difference")
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
