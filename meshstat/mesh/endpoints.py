"""One Envoy cluster's endpoints as a stage tree, and the runtime_fraction correlation.

Endpoint load balancers inside a cluster are modelled by their long-run share: equal-weight
endpoints get ``1/n`` under every Envoy policy; ``load_balancing_weight`` is honoured except by
``RANDOM`` (Envoy 1.40 ignores it); priorities, the 1.4 overprovisioning factor, the panic
threshold and locality weights follow Envoy's ``load_balancer_impl.cc`` and ``locality_wrr.cc``.
The exact stateful per-request balancers are :mod:`meshstat.balancers`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from fractions import Fraction

from meshstat.errors import ModelError
from meshstat.mesh.registry import EP
from meshstat.model import Backend, Node, Provenance, Weighted, smallest_integer_weights
from meshstat.parsers import envoy as envoy_parser

__all__ = ["MAX_CORRELATION_POINTS", "correlated_weights", "endpoint_stage"]

#: Largest number of residue intervals evaluated for a runtime_fraction correlation.
MAX_CORRELATION_POINTS = 2_000_000


# --------------------------------------------------------------------------- endpoint stage


def endpoint_stage(
    cluster: str,
    eps: Sequence[EP],
    *,
    policy: str,
    unit: str = "request",
    overprovisioning: int = envoy_parser.DEFAULT_OVERPROVISIONING,
    panic_threshold: float = envoy_parser.DEFAULT_PANIC_THRESHOLD,
    locality_weighted: bool = False,
    notes: list[str] | None = None,
    provenance: Provenance | None = None,
) -> Node:
    """Long-run share of each endpoint of one Envoy cluster, as a stage tree.

    Priorities: health of a priority is ``min(100, factor * healthy // hosts)``; load is
    spread in priority order (``distributeLoad``); a priority is in panic when its healthy
    plus degraded percentage is strictly below the threshold (never when the total
    availability is 100); in panic its load goes to *all* its hosts, and when every priority
    panics the load follows host counts (``load_balancer_impl.cc``:
    ``recalculatePerPriorityState``, ``recalculatePerPriorityPanic``,
    ``recalculateLoadInTotalPanic``). Within a host source the share is proportional to
    ``load_balancing_weight`` (equal for ``RANDOM``, which ignores weights in Envoy 1.40);
    with ``locality_weighted`` the localities are weighted first by
    ``w * min(1, factor/100 * healthy/hosts)`` (``locality_wrr.cc``).

    An empty cluster returns the leaf ``503 no_healthy_upstream (<cluster>)``.
    """
    notes = notes if notes is not None else []
    if not eps:
        return Backend(name=f"503 no_healthy_upstream ({cluster})", labels=(("outcome", "503"),),
                       provenance=provenance)
    prios = sorted({e.priority for e in eps})
    by_p = {p: [e for e in eps if e.priority == p] for p in prios}
    health, degraded, panic = {}, {}, {}
    for p, hosts in by_p.items():
        n = len(hosts)
        h = sum(1 for e in hosts if e.health == "HEALTHY")
        d = sum(1 for e in hosts if e.health == "DEGRADED")
        health[p] = min(100, overprovisioning * h // n)
        degraded[p] = min(100, overprovisioning * d // n)
        panic[p] = Fraction(100 * (h + d), n) < Fraction(panic_threshold).limit_denominator(10**6)
    nta = min(100, sum(health.values()) + sum(degraded.values()))
    if nta == 100:
        panic = dict.fromkeys(prios, False)
    total_panic = all(panic.values())
    sources: list[tuple[int, str, list[EP]]] = []  # (load, label, hosts)
    if total_panic and panic_threshold > 0:
        total = sum(len(h) for h in by_p.values())
        loads = {p: 100 * len(by_p[p]) // total for p in prios}
        loads[prios[0]] += 100 - sum(loads.values())
        for p in prios:
            if loads[p]:
                sources.append((loads[p], f"P{p} panic: all hosts", by_p[p]))
        notes.append(f"{cluster}: panic (fewer than {panic_threshold:g}% healthy hosts): traffic goes to all hosts, "
                     "unhealthy ones included")
    elif nta == 0:
        return Backend(name=f"503 no_healthy_upstream ({cluster})", labels=(("outcome", "503"),),
                       provenance=provenance)
    else:
        remaining = 100
        hl, dl = {}, {}
        for p in prios:
            hl[p] = min(remaining, health[p] * 100 // nta)
            remaining -= hl[p]
        for p in prios:
            dl[p] = min(remaining, degraded[p] * 100 // nta)
            remaining -= dl[p]
        if remaining:
            first = next((p for p in prios if health[p] > 0), None)
            if first is not None:
                hl[first] += remaining
            else:
                firstd = next(p for p in prios if degraded[p] > 0)
                dl[firstd] += remaining
        for p in prios:
            if panic[p]:
                if hl[p] + dl[p]:
                    sources.append((hl[p] + dl[p], f"P{p} panic: all hosts", by_p[p]))
                continue
            if hl[p]:
                sources.append((hl[p], f"P{p} healthy", [e for e in by_p[p] if e.health == "HEALTHY"]))
            if dl[p]:
                sources.append((dl[p], f"P{p} degraded", [e for e in by_p[p] if e.health == "DEGRADED"]))
    reached = {id(e) for _, _, hs in sources for e in hs}
    skipped = [e for e in eps if id(e) not in reached]
    if skipped:
        notes.append(f"{cluster}: {len(skipped)} endpoint(s) get no traffic (lower priority, unhealthy or excluded): "
                     + ", ".join(e.backend.address or e.backend.name for e in skipped))
    if len(sources) > 1 or len(prios) > 1:
        notes.append(f"{cluster}: priority loads " + ", ".join(f"{lbl} {ld}%" for ld, lbl, _ in sources))
    children: list[Node] = []
    weights: list[int] = []
    for load, label, hosts in sources:
        children.append(_hosts_stage(cluster, label, hosts, policy=policy, unit=unit, factor=overprovisioning,
                                     locality_weighted=locality_weighted, notes=notes, provenance=provenance))
        weights.append(load)
    if len(children) == 1:
        return children[0]
    return Weighted(children=tuple(children), weights=tuple(weights), unit=unit,
                    name=f"priority {cluster}", provenance=provenance)


def _hosts_stage(
    cluster: str,
    label: str,
    hosts: Sequence[EP],
    *,
    policy: str,
    unit: str,
    factor: int,
    locality_weighted: bool,
    notes: list[str],
    provenance: Provenance | None,
) -> Node:
    def host_weights(hs: Sequence[EP]) -> tuple[int, ...]:
        if policy == "RANDOM":
            return (1,) * len(hs)
        return tuple(max(1, e.weight) for e in hs)

    def leaf_stage(hs: Sequence[EP], name: str) -> Weighted:
        return Weighted(children=tuple(e.backend for e in hs), weights=host_weights(hs), unit=unit,
                        name=name, provenance=provenance)

    if policy == "RANDOM" and any(e.weight != 1 for e in hosts):
        notes.append(f"{cluster}: RANDOM ignores load_balancing_weight (Envoy 1.40): equal shares")
    if policy in ("RING_HASH", "MAGLEV"):
        notes.append(f"{cluster}: {policy} shares modelled as proportional to weights; the real "
                     "ring/table shares deviate (ring: 22.9-26.4% for 4 equal hosts, "
                     "docs/measurements.md, M13)")
    if locality_weighted:
        locs: dict[tuple[tuple[str, str], ...], list[EP]] = {}
        for e in hosts:
            locs.setdefault(e.locality, []).append(e)
        if len(locs) > 1 or any(e.locality_weight for e in hosts):
            keys = list(locs)
            effs = []
            for k in keys:
                hs = locs[k]
                lw = hs[0].locality_weight or 0
                eligible = sum(1 for e in hs if e.health != "UNHEALTHY") if "panic" not in label else len(hs)
                effs.append(Fraction(lw) * min(Fraction(1), Fraction(factor, 100) * Fraction(eligible, len(hs))))
            if sum(effs) == 0:
                return Backend(name=f"503 no locality weight ({cluster})", labels=(("outcome", "503"),))
            ws = smallest_integer_weights(effs)
            kids = [leaf_stage(locs[k], f"{policy} {cluster} locality {dict(k) or '-'}") for k in keys]
            return Weighted(children=tuple(kids), weights=ws, unit=unit,
                            name=f"locality-weighted {cluster} ({label})", provenance=provenance)
    return leaf_stage(hosts, f"{policy} {cluster}" + ("" if label == "P0 healthy" else f" ({label})"))


# --------------------------------------------------------------------------- correlation


def correlated_weights(
    candidates: Sequence[tuple[tuple[int, int] | None, Sequence[tuple[str, int]]]],
) -> list[tuple[str, int]]:
    """Exact outcome masses when route ``runtime_fraction`` and weighted clusters share one random value.

    Envoy evaluates ``runtime_fraction`` as ``R % den < num`` and picks a weighted cluster by
    ``R % W`` with the same per-request value ``R`` (``RouteEntryImplBase::evaluateRuntimeMatch``).
    With ``L`` the lcm of all moduli, every outcome is a union of residue intervals of ``R mod L``;
    this function counts them exactly (the ``2**64 mod L`` bias, below ``L / 2**64``, is ignored).

    Parameters
    ----------
    candidates : sequence of (fraction or None, clusters)
        Matching routes in order: ``fraction`` = ``(num, den)`` or ``None`` (unconditional);
        ``clusters`` = ``[(name, weight), ...]`` (one entry with any weight for a plain cluster).

    Returns
    -------
    list of (outcome, mass)
        Masses summing to ``L`` (outcome ``"404 NR"`` when no route takes a residue); every
        configured cluster is listed, with mass 0 when it is never reached.
    """
    moduli = []
    for frac, clusters in candidates:
        if frac is not None:
            moduli.append(frac[1])
        if len(clusters) > 1:
            moduli.append(sum(w for _, w in clusters))
    L = 1
    for m in moduli:
        L = L * m // math.gcd(L, m)
    points: set[int] = {0, L}
    budget = 0
    for frac, clusters in candidates:
        if frac is not None:
            den = frac[1]
            budget += 2 * (L // den)
            if budget > MAX_CORRELATION_POINTS:
                break
            for k in range(L // den):
                points.add(k * den)
                points.add(k * den + frac[0])
        if len(clusters) > 1:
            W = sum(w for _, w in clusters)
            cum = [0]
            for _, w in clusters:
                cum.append(cum[-1] + w)
            budget += (L // W) * len(cum)
            if budget > MAX_CORRELATION_POINTS:
                break
            for k in range(L // W):
                for c in cum:
                    points.add(k * W + c)
    if budget > MAX_CORRELATION_POINTS:
        raise ModelError(
            f"runtime_fraction correlation over R mod {L} needs more than {MAX_CORRELATION_POINTS:,} intervals"
        )
    order: list[str] = []
    mass: dict[str, int] = {}
    for _, clusters in candidates:
        for name, _ in clusters:
            if name not in mass:
                order.append(name)
                mass[name] = 0
    pts = sorted(p for p in points if 0 <= p <= L)
    for a, b in zip(pts, pts[1:], strict=False):
        if b <= a:
            continue
        outcome = "404 NR"
        for frac, clusters in candidates:
            if frac is not None and not a % frac[1] < frac[0]:
                continue
            if len(clusters) == 1:
                outcome = clusters[0][0]
            else:
                W = sum(w for _, w in clusters)
                v = a % W
                acc = 0
                for name, w in clusters:
                    if acc <= v < acc + w:
                        outcome = name
                        break
                    acc += w
            break
        if outcome not in mass:
            order.append(outcome)
            mass[outcome] = 0
        mass[outcome] += b - a
    return [(o, mass[o]) for o in order]
