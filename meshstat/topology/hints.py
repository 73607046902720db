"""The EndpointSlice controller's topology hints: ``topology-mode: Auto`` and ``trafficDistribution``.

Which hints an endpoint carries decides which endpoints kube-proxy keeps on each node
(:mod:`meshstat.topology.proxy`). Two writers, one chosen per Service as kubernetes
``staging/src/k8s.io/endpointslice/reconciler.go: reconcileByAddressType`` chooses
(``canUseTrafficDistribution := validTrafficDistribution(...) && !hintsEnabled(annotations)``):

* ``service.kubernetes.io/topology-mode: Auto`` (or the deprecated ``topology-aware-hints``, which wins when
  both are set; ``hintsEnabled`` accepts ``Auto`` and ``auto``): the topology cache,
  ``pkg/controller/endpointslice/topologycache/topologycache.go`` (``SetNodes``, ``getAllocations``,
  ``AddHints``) and ``utils.go`` (``getGivingAndReceivingZones``, ``redistributeHints``, ``getMost``);
  :func:`auto_hints`.
* ``spec.trafficDistribution`` ``PreferClose`` / ``PreferSameZone`` / ``PreferSameNode``:
  ``staging/src/k8s.io/endpointslice/trafficdist/trafficdist.go`` (``preferCloseHeuristic.update``): every
  ready endpoint is hinted for its own zone (and, for ``PreferSameNode``, its own node);
  :func:`traffic_distribution_hints`.
* neither: no hints (``RemoveHintsFromSlices``).

Floating point: the allocation uses Go's ``float64`` arithmetic, which Python's ``float`` repeats exactly
(``ratio * n``, ``desired * (1 / (1 + 0.2))``, ``math.Ceil``), so boundary cases such as a desired 1.2 (a
minimum of 2, not 1) come out as the controller computes them.

What differs from the controller, on purpose: Go iterates its maps in random order, so when several zones
give or receive, which endpoint moves to which zone can differ between two controller runs; this module
takes zones in sorted order (the per-zone counts are the same). The controller also keeps valid hints of
unchanged slices; here every computation starts from scratch (what a fresh reconcile of the whole
Service writes).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from meshstat.topology.types import Endpoint, TopoNode

__all__ = ["OVERLOAD_THRESHOLD", "Allocation", "HintOutcome", "auto_hints", "cpu_ratios", "reconcile_hints",
           "traffic_distribution_hints"]  # fmt: skip

#: ``topologycache.go: OverloadThreshold``: the most overload any endpoint should be exposed to.
OVERLOAD_THRESHOLD = 0.2

CLOSE_VALUES = ("PreferClose", "PreferSameZone", "PreferSameNode")


@dataclass(frozen=True, slots=True)
class Allocation:
    """``topologycache.go: Allocation``: endpoints a zone should get."""

    minimum: int
    maximum: int
    desired: float


@dataclass(frozen=True, slots=True)
class HintOutcome:
    """The endpoints with the hints the controller writes, and why."""

    endpoints: tuple[Endpoint, ...]
    writer: str  # "topology-mode Auto", "trafficDistribution PreferClose", "none"
    reason: str
    allocations: dict[str, Allocation] | None = None


def cpu_ratios(nodes: Sequence[TopoNode]) -> tuple[dict[str, float] | None, str]:
    """Each zone's share of allocatable CPU (``topologycache.go: SetNodes``), or None with the reason.

    Nodes with a control-plane label and nodes that are not Ready are left out; a single remaining node
    without a zone or CPU makes the information insufficient for every Service, and so do fewer than
    two zones.
    """
    by_zone: dict[str, int] = {}
    total = 0
    for n in nodes:
        if n.control_plane:
            continue
        if not n.ready:
            continue
        if not n.zone or n.cpu_milli == 0:
            return None, f"node {n.name} has no zone label or no allocatable CPU (topologycache.go: SetNodes)"
        total += n.cpu_milli
        by_zone[n.zone] = by_zone.get(n.zone, 0) + n.cpu_milli
    if total == 0 or len(by_zone) < 2:
        return None, f"insufficient node information ({len(by_zone)} zone(s) with ready nodes)"
    return {z: float(c) / float(total) for z, c in sorted(by_zone.items())}, ""


def allocations(ratios: dict[str, float] | None, n_endpoints: int) -> tuple[dict[str, Allocation] | None, str]:
    """``topologycache.go: getAllocations``: per-zone minimum/maximum/desired, or None with the reason."""
    if ratios is None or len(ratios) < 2 or len(ratios) > n_endpoints:
        nz = 0 if ratios is None else len(ratios)
        return None, f"insufficient endpoints: {n_endpoints} ready endpoint(s) for {nz} zone(s)"
    out: dict[str, Allocation] = {}
    remaining = n_endpoints
    min_total = 0
    for zone, ratio in ratios.items():
        desired = ratio * float(n_endpoints)
        minimum = int(math.ceil(desired * (1 / (1 + OVERLOAD_THRESHOLD))))
        out[zone] = Allocation(minimum, 0, max(desired, float(minimum)))
        min_total += minimum
        remaining -= minimum
    if remaining < 0:
        mins = ", ".join(f"{z} {a.minimum}" for z, a in out.items())
        return None, (f"the zones' minimums ({mins}; total {min_total}) exceed the {n_endpoints} ready endpoints "
                      f"at the {OVERLOAD_THRESHOLD:.0%} overload threshold: hints removed")  # fmt: skip
    return {z: Allocation(a.minimum, a.minimum + n_endpoints - min_total, a.desired) for z, a in out.items()}, ""


def _most(zones: dict[str, float]) -> tuple[str, float]:
    """``utils.go: getMost`` (first of the sorted zones on a tie)."""
    zone, num = "", 0.0
    for z in sorted(zones):
        if zones[z] > num:
            zone, num = z, zones[z]
    return zone, num


def _giving_receiving(allocs: dict[str, Allocation], hinted: dict[str, int]) -> tuple[dict[str, int], dict[str, int]]:
    """``utils.go: getGivingAndReceivingZones``."""
    giving_d: dict[str, float] = {}
    receiving_d: dict[str, float] = {}
    for zone, a in allocs.items():
        have = hinted.get(zone, 0)
        if float(have) > a.desired:
            giving_d[zone] = float(have) - a.desired
        elif float(have) < a.desired:
            receiving_d[zone] = a.desired - float(have)
    giving: dict[str, int] = {}
    receiving: dict[str, int] = {}
    while True:
        gz, ng = _most(giving_d)
        rz, nr = _most(receiving_d)
        if gz == "" or rz == "" or (ng < 1.0 and nr < 1.0) or ng < 0.5 or nr < 0.5:
            break
        giving[gz] = giving.get(gz, 0) + 1
        giving_d[gz] -= 1
        receiving[rz] = receiving.get(rz, 0) + 1
        receiving_d[rz] -= 1
    return giving, receiving


def auto_hints(endpoints: Sequence[Endpoint], nodes: Sequence[TopoNode]) -> HintOutcome:
    """``topology-mode: Auto``: ``topologycache.go: AddHints`` over all endpoints of a Service.

    Endpoints not ready (the controller's reading: ``ready`` must be set and true) get no hints. Hints are
    removed from every endpoint when node information is insufficient, when there are fewer ready endpoints
    than zones, when the zones' minimum allocations at the overload threshold exceed the ready endpoints,
    or when a ready endpoint has no zone.
    """
    writer = "topology-mode Auto"
    ratios, why = cpu_ratios(nodes)
    ready = [e for e in endpoints if e.controller_ready]
    allocs, why2 = allocations(ratios, len(ready)) if ratios is not None else (None, why)
    cleared = tuple(e.hinted() for e in endpoints)
    if allocs is None:
        return HintOutcome(cleared, writer, why2 or why)
    if any(not e.zone for e in ready):
        return HintOutcome(cleared, writer, "a ready endpoint has no zone: hints removed (AddHints)")
    hinted: dict[str, int] = {}
    out = list(cleared)
    for i, e in enumerate(out):
        if e.controller_ready:
            hinted[e.zone] = hinted.get(e.zone, 0) + 1
            out[i] = e.hinted((e.zone,), e.node_hints)
    giving, receiving = _giving_receiving(allocs, hinted)
    for i, e in enumerate(out):  # redistributeHints
        if not e.controller_ready:
            continue
        if not giving or not receiving:
            break
        if giving.get(e.zone, 0) > 0:
            for rz in sorted(receiving):
                if receiving[rz] > 0:
                    out[i] = e.hinted((rz,), e.node_hints)
                    giving[e.zone] -= 1
                    if giving[e.zone] == 0:
                        del giving[e.zone]
                    receiving[rz] -= 1
                    if receiving[rz] == 0:
                        del receiving[rz]
                    break
    per = ", ".join(f"{z} {a.minimum}..{a.maximum} (desired {a.desired:.2f})" for z, a in allocs.items())
    return HintOutcome(tuple(out), writer, f"allocations {per}", allocs)


def traffic_distribution_hints(endpoints: Sequence[Endpoint], value: str) -> HintOutcome:
    """``trafficdist.go: preferCloseHeuristic.update``: each ready endpoint hinted for its own zone (and node)."""
    node_hints = value == "PreferSameNode"
    out = []
    for e in endpoints:
        if not e.controller_ready:
            out.append(e.hinted())
            continue
        out.append(e.hinted((e.zone,) if e.zone else (), (e.node,) if node_hints and e.node else ()))  # fmt: skip
    return HintOutcome(tuple(out), f"trafficDistribution {value}", "each ready endpoint hinted for its own zone"
                       + (" and node" if node_hints else ""))  # fmt: skip


def hints_enabled(topology_mode: str | None) -> bool:
    """``reconciler.go: hintsEnabled``: the annotation's value is ``Auto`` or ``auto``."""
    return topology_mode in ("Auto", "auto")


def reconcile_hints(endpoints: Sequence[Endpoint], nodes: Sequence[TopoNode], *, topology_mode: str | None,
                    traffic_distribution: str | None) -> HintOutcome:  # fmt: skip
    """The hints the controller writes for a Service (``reconciler.go: reconcileByAddressType``)."""
    if hints_enabled(topology_mode):
        return auto_hints(endpoints, nodes)
    if traffic_distribution in CLOSE_VALUES:
        return traffic_distribution_hints(endpoints, traffic_distribution)
    return HintOutcome(tuple(e.hinted() for e in endpoints), "none",
                       "no topology-mode Auto and no trafficDistribution: no hints")  # fmt: skip
