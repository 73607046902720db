"""One Envoy cluster's endpoints as a stage tree, and the runtime_fraction correlation.

Endpoint load balancers inside a cluster are modelled by their long-run share: equal-weight
endpoints get ``1/n`` under every Envoy policy; ``load_balancing_weight`` is honoured except by
``RANDOM`` (Envoy 1.40 ignores it); priorities, the 1.4 overprovisioning factor, the panic
threshold and locality weights follow Envoy's ``load_balancer_impl.cc`` and ``locality_wrr.cc``.
Zone-aware routing (a ``cluster_manager.local_cluster_name`` whose cluster is in the input,
:class:`ZoneAware`) splits priority 0's healthy hosts by locality with
:func:`meshstat.balancers.priority.zone_aware_shares`.
The exact stateful per-request balancers are :mod:`meshstat.balancers`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from fractions import Fraction

from meshstat.balancers.priority import zone_aware_shares
from meshstat.errors import ModelError
from meshstat.mesh.registry import EP
from meshstat.model import Backend, Node, Provenance, Weighted, smallest_integer_weights
from meshstat.parsers import envoy as envoy_parser

__all__ = ["MAX_CORRELATION_POINTS", "ZoneAware", "correlated_weights", "endpoint_stage", "zone_aware_context"]

#: Largest number of residue intervals evaluated for a runtime_fraction correlation.
MAX_CORRELATION_POINTS = 2_000_000


# --------------------------------------------------------------------------- endpoint stage

#: The load balancers built on Envoy's ``ZoneAwareLoadBalancerBase`` (ring hash and Maglev are not).
ZONE_AWARE_POLICIES = frozenset({"ROUND_ROBIN", "LEAST_REQUEST", "RANDOM"})


@dataclass(frozen=True, slots=True)
class ZoneAware:
    """What Envoy's zone-aware routing knows: this Envoy's locality and the local cluster per locality.

    ``local`` is ``(locality, healthy hosts)`` of the cluster named by ``cluster_manager.local_cluster_name``
    (the Envoys like this one); ``own`` is ``node.locality``; the rest is the upstream cluster's
    ``zone_aware_lb_config`` (:class:`meshstat.parsers.envoy.ZoneAwareLbConfig`).
    """

    own: tuple[tuple[str, str], ...]
    local: tuple[tuple[tuple[tuple[str, str], ...], int], ...]
    config: envoy_parser.ZoneAwareLbConfig = envoy_parser.ZoneAwareLbConfig()

    def for_cluster(self, cl: envoy_parser.Cluster | None) -> ZoneAware:
        """This context with the upstream cluster's ``zone_aware_lb_config`` (Envoy's defaults without one)."""
        return replace(self, config=cl.zone_aware if cl is not None else envoy_parser.ZoneAwareLbConfig())


def zone_aware_context(cfg: envoy_parser.EnvoyConfig, notes: list[str]) -> ZoneAware | None:
    """The zone-aware routing context of a dump: None unless ``local_cluster_name`` names a cluster it holds.

    Envoy builds the local priority set from the cluster ``cluster_manager.local_cluster_name`` names
    (``cluster_manager_impl.cc``); without it every load balancer runs without locality routing. The
    local cluster's healthy hosts are counted per locality.
    """
    name = cfg.local_cluster_name
    if not name:
        return None
    if name not in cfg.clusters and not cfg.has_endpoints_for(name):
        notes.append(f"local cluster {name} (cluster_manager.local_cluster_name) is not in the input: "
                     "zone-aware routing is not modelled")  # fmt: skip
        return None
    eps, _, _ = cfg.endpoints_of(name)
    local: dict[tuple[tuple[str, str], ...], int] = {}
    for e in eps:
        if e.priority == 0 and e.health == "HEALTHY":
            local[e.locality] = local.get(e.locality, 0) + 1
    return ZoneAware(own=cfg.node_locality or (), local=tuple(local.items()))


def _locality_name(loc: tuple[tuple[str, str], ...]) -> str:
    return "/".join(v for _, v in loc) or "(no locality)"


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
    zone_aware: ZoneAware | None = None,
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

    Zone-aware routing (``zone_aware``, for the policies of :data:`ZONE_AWARE_POLICIES` and without
    ``locality_weighted``, which Envoy does not combine with it): priority 0's healthy hosts, when that
    source is picked, are split by locality as ``load_balancer_impl.cc:
    ZoneAwareLoadBalancerBase::hostSourceToUse`` does (``regenerateLocalityRoutingStructures``,
    ``earlyExitNonLocalityRouting``: :func:`meshstat.balancers.priority.zone_aware_shares`); panic and
    degraded sources are not zone-aware, nor are other priorities.

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
        if (label == "P0 healthy" and zone_aware is not None and not locality_weighted
                and policy in ZONE_AWARE_POLICIES):  # fmt: skip
            za = _zone_aware_stage(cluster, hosts, zone_aware, policy=policy, unit=unit, notes=notes,
                                   provenance=provenance)  # fmt: skip
            if za is not None:
                children.append(za)
                weights.append(load)
                continue
        children.append(_hosts_stage(cluster, label, hosts, policy=policy, unit=unit, factor=overprovisioning,
                                     locality_weighted=locality_weighted, notes=notes, provenance=provenance))
        weights.append(load)
    if len(children) == 1:
        return children[0]
    return Weighted(children=tuple(children), weights=tuple(weights), unit=unit,
                    name=f"priority {cluster}", provenance=provenance)


def _zone_aware_stage(cluster: str, hosts: Sequence[EP], za: ZoneAware, *, policy: str, unit: str,
                      notes: list[str], provenance: Provenance | None) -> Node | None:  # fmt: skip
    """Priority 0's healthy hosts split by locality as this Envoy's zone-aware routing picks them.

    None when Envoy exits early (``earlyExitNonLocalityRouting``): then the hosts are balanced as usual.
    ``routing_enabled`` is rounded to a whole percentage (``PROTOBUF_PERCENT_TO_ROUNDED_INTEGER_OR_DEFAULT``).
    """
    by_loc: dict[tuple[tuple[str, str], ...], list[EP]] = {}
    for e in hosts:
        by_loc.setdefault(e.locality, []).append(e)
    names = {loc: _locality_name(loc) for loc in (*by_loc, *(loc for loc, _ in za.local), za.own)}
    local: dict[str, int] = {}
    for loc, n in za.local:
        local[names[loc]] = local.get(names[loc], 0) + n
    cfg = za.config
    shares, state = zone_aware_shares([(names[loc], len(hs)) for loc, hs in by_loc.items()], list(local.items()),
                                      names[za.own], routing_enabled=int(cfg.routing_enabled + 0.5),
                                      min_cluster_size=cfg.min_cluster_size, force_direct=cfg.force_direct)  # fmt: skip
    notes.append(f"{cluster}: zone-aware routing from {names[za.own]} ({state}): "
                 + ", ".join(f"{names[loc]} {float(shares[names[loc]]):.4f}" for loc in by_loc))  # fmt: skip
    if state.startswith("NoLocalityRouting"):
        return None
    keys = [loc for loc in by_loc if shares[names[loc]] > 0]

    def weights(hs: Sequence[EP]) -> tuple[int, ...]:
        return (1,) * len(hs) if policy == "RANDOM" else tuple(max(1, e.weight) for e in hs)

    kids = [Weighted(children=tuple(e.backend for e in by_loc[k]), weights=weights(by_loc[k]), unit=unit,
                     name=f"{policy} {cluster} locality {names[k]}", provenance=provenance) for k in keys]  # fmt: skip
    if len(kids) == 1:
        return kids[0]
    return Weighted(children=tuple(kids), weights=smallest_integer_weights([shares[names[k]] for k in keys]),
                    unit=unit, name=f"zone-aware {cluster} from {names[za.own]}", provenance=provenance)  # fmt: skip


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
