"""Envoy priority levels, overprovisioning, panic threshold and locality weights, exactly.

``common/load_balancer_impl.cc`` (Envoy 1.40):

* ``LoadBalancerBase::recalculatePerPriorityState``: the health of priority
  ``p`` is ``min(100, factor * healthy / hosts)`` in integer arithmetic (factor
  140 = 1.4 by default; ``hosts`` excludes excluded hosts), the same for
  degraded hosts; ``distributeLoad`` then gives each priority, in order,
  ``min(remaining, health * 100 / A)`` percent with ``A = min(100, sum of
  health + degraded)``, first to healthy hosts, then to degraded ones; the
  rounding remainder goes to the first priority with health > 0.
* ``recalculatePerPriorityPanic`` / ``isHostSetInPanic``: a priority is in
  panic when ``100 * (healthy + degraded) / hosts < healthy_panic_threshold``
  (default 50, strictly less), unless ``A == 100``; in panic it sends its load
  to all its hosts, unhealthy ones included. When every priority is in panic,
  ``recalculateLoadInTotalPanic`` splits the load by raw host counts.
* ``choosePriority``: ``hash % 100 + 1`` against the cumulative loads, so a
  priority split is exactly a weighted-cluster split with integer percents.
* ``locality_wrr.cc: LocalityWrr::effectiveLocalityWeight``: with
  ``locality_weighted_lb_config``, locality weight ``w * min(1, 1.4 *
  healthy / hosts)``.
* zone-aware routing (:func:`zone_aware_shares`): ``ZoneAwareLoadBalancerBase::
  regenerateLocalityRoutingStructures``, ``earlyExitNonLocalityRouting``,
  ``calculateLocalityPercentages``, ``tryChooseLocalLocalityHosts`` and ``hostSourceToUse``
  (``source/extensions/load_balancing_policies/common/load_balancer_impl.cc``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

from meshstat import model
from meshstat.errors import InvalidArgument

__all__ = [
    "DEFAULT_OVERPROVISIONING_FACTOR",
    "DEFAULT_PANIC_THRESHOLD",
    "Locality",
    "PriorityLevel",
    "PriorityLoads",
    "host_shares",
    "locality_shares",
    "priority_loads",
    "priority_route",
    "zone_aware_shares",
]

#: ``ClusterLoadAssignment.Policy.overprovisioning_factor`` default (percent).
DEFAULT_OVERPROVISIONING_FACTOR = 140
#: ``CommonLbConfig.healthy_panic_threshold`` default (percent).
DEFAULT_PANIC_THRESHOLD = 50


@dataclass(frozen=True, slots=True)
class PriorityLevel:
    """The hosts of one priority.

    Parameters
    ----------
    healthy, degraded, unhealthy : int
        Host counts by health status.
    excluded : int
        Hosts excluded from the health computation (they count in ``hosts()``
        but not in the denominator).
    """

    healthy: int
    degraded: int = 0
    unhealthy: int = 0
    excluded: int = 0

    def __post_init__(self) -> None:
        for name in ("healthy", "degraded", "unhealthy", "excluded"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise InvalidArgument(f"priority level {name} must be a non-negative integer, got {v!r}")

    @property
    def hosts(self) -> int:
        """All hosts of the level (``hosts().size()``)."""
        return self.healthy + self.degraded + self.unhealthy + self.excluded


@dataclass(frozen=True)
class PriorityLoads:
    """Result of :func:`priority_loads` (all percents are integers summing to 100)."""

    health: tuple[int, ...]
    degraded_health: tuple[int, ...]
    healthy_load: tuple[int, ...]
    degraded_load: tuple[int, ...]
    panic: tuple[bool, ...]
    total_panic: bool
    normalized_total_availability: int


def _check_percent(name: str, v: int) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v < 0:
        raise InvalidArgument(f"{name} must be a non-negative integer percent, got {v!r}")
    return v


def priority_loads(
    levels: Sequence[PriorityLevel],
    *,
    overprovisioning_factor: int = DEFAULT_OVERPROVISIONING_FACTOR,
    panic_threshold: int = DEFAULT_PANIC_THRESHOLD,
) -> PriorityLoads:
    """Per-priority load percents as Envoy computes them (see the module docstring).

    Examples
    --------
    >>> priority_loads([PriorityLevel(1, unhealthy=1), PriorityLevel(2)]).healthy_load
    (70, 30)
    """
    if not levels:
        raise InvalidArgument("at least one priority level")
    if len(levels) > 129:
        raise InvalidArgument("priorities range 0..128")
    factor = _check_percent("overprovisioning_factor", overprovisioning_factor)
    threshold = min(100, _check_percent("panic_threshold", panic_threshold))
    k = len(levels)
    health = [0] * k
    degr = [0] * k
    for p, lv in enumerate(levels):
        count = lv.hosts - lv.excluded
        if count > 0:
            health[p] = min(100, factor * lv.healthy // count)
            degr[p] = min(100, factor * lv.degraded // count)
    avail = min(100, sum(health) + sum(degr))
    hload = [0] * k
    dload = [0] * k
    if avail > 0:

        def distribute(load: list[int], av: list[int], total: int) -> tuple[int, int]:
            first = -1
            for i in range(k):
                if first < 0 and av[i] > 0:
                    first = i
                load[i] = min(total, av[i] * 100 // avail)
                total -= load[i]
            return first, total

        fh, rest = distribute(hload, health, 100)
        fd, rest = distribute(dload, degr, rest)
        if rest:
            if fh != -1:
                hload[fh] += rest
            else:
                dload[fd] += rest
    # panic
    panic = [False] * k
    total_panic = True
    if threshold == 0 and avail == 0:
        hload[0] = 100
        total_panic = False
    else:
        for p, lv in enumerate(levels):
            count = lv.hosts - lv.excluded
            hp = 0.0 if count == 0 else 100.0 * lv.healthy / count
            dp = 0.0 if count == 0 else 100.0 * lv.degraded / count
            panic[p] = False if avail == 100 else (hp + dp) < threshold
            total_panic = total_panic and panic[p]
        if total_panic:
            total_hosts = sum(lv.hosts for lv in levels)
            dload = [0] * k
            if total_hosts == 0:
                hload = [100] + [0] * (k - 1)
            else:
                remaining = 100
                first = -1
                for p, lv in enumerate(levels):
                    if first == -1 and lv.hosts:
                        first = p
                    hload[p] = 100 * lv.hosts // total_hosts
                    remaining -= hload[p]
                hload[first] += remaining
    return PriorityLoads(tuple(health), tuple(degr), tuple(hload), tuple(dload), tuple(panic), total_panic, avail)


def host_shares(
    levels: Sequence[PriorityLevel],
    *,
    overprovisioning_factor: int = DEFAULT_OVERPROVISIONING_FACTOR,
    panic_threshold: int = DEFAULT_PANIC_THRESHOLD,
) -> list[dict[str, Fraction]]:
    """Exact share of one host of each status, per priority (equal-weight hosts, RR/RANDOM/LR idle).

    Returns, per priority, ``{"healthy": s, "degraded": s, "unhealthy": s}``: the
    share of traffic each single host of that status receives. In panic every
    host of the level (unhealthy included) gets ``load / hosts``.
    """
    pl = priority_loads(levels, overprovisioning_factor=overprovisioning_factor, panic_threshold=panic_threshold)
    out = []
    for p, lv in enumerate(levels):
        d = {"healthy": Fraction(0), "degraded": Fraction(0), "unhealthy": Fraction(0)}
        if pl.panic[p]:
            n = lv.hosts
            if n:
                s = Fraction(pl.healthy_load[p] + pl.degraded_load[p], 100 * n)
                d = {"healthy": s, "degraded": s, "unhealthy": s}
        else:
            if lv.healthy:
                d["healthy"] = Fraction(pl.healthy_load[p], 100 * lv.healthy)
            if lv.degraded:
                d["degraded"] = Fraction(pl.degraded_load[p], 100 * lv.degraded)
        out.append(d)
    return out


def priority_route(
    levels: Sequence[PriorityLevel],
    *,
    overprovisioning_factor: int = DEFAULT_OVERPROVISIONING_FACTOR,
    panic_threshold: int = DEFAULT_PANIC_THRESHOLD,
    name: str = "priorities",
) -> object:
    """A :class:`meshstat.model.Route`: the priority split (a Weighted stage with the integer
    percents, which is exactly ``hash % 100 + 1`` against cumulative loads) over uniform
    Weighted stages of each level's serving hosts (``P0/healthy-1``, ...).

    Hosts that get no traffic are leaves with weight 0, so every host is listed.
    """
    pl = priority_loads(levels, overprovisioning_factor=overprovisioning_factor, panic_threshold=panic_threshold)
    children: list[object] = []
    weights: list[int] = []
    for p, lv in enumerate(levels):
        names = ([f"P{p}/healthy-{i + 1}" for i in range(lv.healthy)]
                 + [f"P{p}/degraded-{i + 1}" for i in range(lv.degraded)]
                 + [f"P{p}/unhealthy-{i + 1}" for i in range(lv.unhealthy)]
                 + [f"P{p}/excluded-{i + 1}" for i in range(lv.excluded)])
        if not names:
            continue
        if pl.panic[p]:
            srcs = [("all", [1] * len(names), pl.healthy_load[p] + pl.degraded_load[p])]
        else:
            hw = [1] * lv.healthy + [0] * (len(names) - lv.healthy)
            dw = [0] * lv.healthy + [1] * lv.degraded + [0] * (lv.unhealthy + lv.excluded)
            srcs = [("healthy", hw, pl.healthy_load[p]), ("degraded", dw, pl.degraded_load[p])]
        for src, ws, load in srcs:
            if not any(ws):
                if load:
                    raise InvalidArgument(f"priority {p} gets {load}% but has no {src} hosts")  # pragma: no cover
                continue
            leaves = tuple(model.Backend(name=nm) for nm, w in zip(names, ws, strict=True) if w)
            children.append(model.Weighted(children=leaves, weights=(1,) * len(leaves), name=f"P{p} {src}"))
            weights.append(load)
    # every host appears once: add zero-weight leaves for hosts that serve nothing
    listed = {b.name for c in children for b in c.children}  # type: ignore[attr-defined]
    for p, lv in enumerate(levels):
        for status, cnt in (("healthy", lv.healthy), ("degraded", lv.degraded), ("unhealthy", lv.unhealthy),
                            ("excluded", lv.excluded)):
            for i in range(cnt):
                nm = f"P{p}/{status}-{i + 1}"
                if nm not in listed:
                    children.append(model.Backend(name=nm))
                    weights.append(0)
    stage = model.Weighted(children=tuple(children), weights=tuple(weights), name=name)  # type: ignore[arg-type]
    notes = (f"priority loads {list(pl.healthy_load)} (healthy) {list(pl.degraded_load)} (degraded) percent; "
             f"panic {list(pl.panic)}",)
    return model.Route(root=stage, name=name, notes=notes)


@dataclass(frozen=True, slots=True)
class Locality:
    """A locality of one priority: its ``load_balancing_weight`` and host health counts."""

    weight: int
    healthy: int
    hosts: int

    def __post_init__(self) -> None:
        if self.weight < 0 or self.healthy < 0 or self.hosts < 0 or self.healthy > self.hosts:
            raise InvalidArgument(f"invalid locality {self}")


def locality_shares(
    localities: Sequence[Locality], *, overprovisioning_factor: int = DEFAULT_OVERPROVISIONING_FACTOR
) -> tuple[Fraction, ...]:
    """Exact long-run share of every locality (EDF over effective weights, ``locality_wrr.cc``).

    Examples
    --------
    >>> [str(x) for x in locality_shares([Locality(1, 1, 1), Locality(3, 2, 2)])]
    ['1/4', '3/4']
    """
    eff = []
    for loc in localities:
        if loc.hosts == 0:
            eff.append(Fraction(0))
            continue
        ratio = Fraction(loc.healthy, loc.hosts)
        eff.append(loc.weight * min(Fraction(1), Fraction(overprovisioning_factor, 100) * ratio))
    tot = sum(eff)
    if tot == 0:
        raise InvalidArgument("no locality has a positive effective weight")
    return tuple(e / tot for e in eff)


def zone_aware_shares(
    upstream: Sequence[tuple[str, int]],
    local: Sequence[tuple[str, int]],
    own: str,
    *,
    routing_enabled: int = 100,
    min_cluster_size: int = 6,
    force_direct: bool = False,
) -> tuple[dict[str, Fraction], str]:
    """Envoy zone-aware routing: the exact share of each upstream locality of priority 0 for one Envoy.

    Parameters
    ----------
    upstream : sequence of (locality, healthy hosts)
        The cluster's priority-0 localities and their healthy host counts.
    local : sequence of (locality, hosts)
        The local cluster (the Envoys that call this cluster, ``cluster_manager.local_cluster_name``)
        per locality.
    own : str
        This Envoy's locality (``node.locality``).
    routing_enabled, min_cluster_size, force_direct
        ``zone_aware_lb_config``: ``routing_enabled`` percent (default 100), ``min_cluster_size`` (default
        6), ``force_locality_direct_routing``.

    Returns
    -------
    shares, state
        ``{locality: share}`` (each locality's hosts then share its part equally) and
        ``"LocalityDirect"``, ``"LocalityResidual"`` or ``"NoLocalityRouting: <why>"``.

    Notes
    -----
    Early exits (``earlyExitNonLocalityRouting``): fewer than 2 upstream localities, fewer than 2 local
    localities (unless ``force_direct``), no local host in ``own``, fewer than ``min_cluster_size`` healthy
    upstream hosts; then every healthy host is equal. Otherwise, with percentages in 1/10000 of the
    host totals (integer division): *direct* when ``own`` has upstream hosts and its upstream percentage
    is at least its local one; else *residual*: ``own`` gets ``upstream*10000 // local`` / 10000 of the
    picks and the rest goes to the other localities in proportion to ``upstream - local`` where that is
    positive (uniform over every locality when no locality has residual capacity). A ``routing_enabled``
    below 100 mixes in plain host balancing for the other picks.

    Examples
    --------
    >>> s, state = zone_aware_shares([("a", 2), ("b", 2), ("c", 2)], [("a", 2), ("b", 1), ("c", 1)], "a")
    >>> state, [float(s[k]) for k in "abc"]
    ('LocalityResidual', [0.6666, 0.1667, 0.1667])
    """
    ups = [(k, int(h)) for k, h in upstream]
    loc = {k: int(n) for k, n in local}
    total_up = sum(h for _, h in ups)
    if total_up == 0:
        raise InvalidArgument("zone-aware routing: no healthy upstream host")
    plain = {k: Fraction(h, total_up) for k, h in ups}
    why = None
    if len(ups) < 2:
        why = "fewer than 2 upstream localities"
    elif sum(1 for n in loc.values() if n) < 2 and not force_direct:
        why = "fewer than 2 localities in the local cluster"
    elif not loc.get(own):
        why = f"the local cluster has no host in this Envoy's locality {own!r}"
    elif total_up < min_cluster_size:
        why = f"{total_up} healthy upstream host(s) < min_cluster_size {min_cluster_size}"
    if why is not None:
        return plain, f"NoLocalityRouting: {why}"
    total_local = sum(loc.values())
    up_pct = {k: 10000 * h // total_up for k, h in ups}
    loc_pct = {k: 10000 * loc.get(k, 0) // total_local for k, _ in ups}
    has_local = own in up_pct
    zone: dict[str, Fraction]
    if has_local and ((up_pct[own] > 0 and up_pct[own] >= loc_pct[own]) or force_direct):
        state = "LocalityDirect"
        zone = {k: Fraction(int(k == own)) for k, _ in ups}
    else:
        state = "LocalityResidual"
        lpr = up_pct[own] * 10000 // loc_pct[own] if has_local and loc_pct[own] > 0 else 0
        p_local = Fraction(lpr, 10000)
        resid = {k: (up_pct[k] - loc_pct[k] if k != own and up_pct[k] > loc_pct[k] else 0) for k, _ in ups}
        total_r = sum(resid.values())
        if total_r == 0:
            zone = {k: Fraction(1, len(ups)) * (1 - p_local) for k, _ in ups}
        else:
            zone = {k: (1 - p_local) * Fraction(resid[k], total_r) for k, _ in ups}
        if has_local:
            zone[own] += p_local
    on = Fraction(min(100, max(0, routing_enabled)), 100)
    return {k: on * zone[k] + (1 - on) * plain[k] for k, _ in ups}, state
