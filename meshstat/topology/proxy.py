"""Which endpoints kube-proxy on one node uses: kubernetes ``pkg/proxy/topology.go``.

:func:`categorize_endpoints` follows ``CategorizeEndpoints``: the cluster-policy endpoints (ready ones,
filtered by the topology mode of ``topologyModeFromHints``; all serving-terminating ones when no ready one
is left), the local-policy endpoints (ready ones on this node, else serving-terminating ones on this node),
every endpoint reachable from the node, and whether the Service has a usable endpoint anywhere.

``topologyModeFromHints``: ``PreferSameNode`` when every ready endpoint has a node hint and one names this
node (the ``PreferSameTrafficDistribution`` gate, on by default from Kubernetes 1.34; ``same_node_gate``),
else ``PreferSameZone`` when every ready endpoint has a zone hint and one names this node's zone, else no
topology (every ready endpoint). There is no per-endpoint fall-back: the choice of mode is the fall-back.

Which policies a service port uses (``pkg/proxy/serviceport.go``): ``UsesClusterEndpoints`` when
``internalTrafficPolicy`` is ``Cluster`` or the port is reachable from outside (a nodePort, a load-balancer
or external IP; external traffic may be short-circuited to the cluster chain); ``UsesLocalEndpoints`` when
``internalTrafficPolicy`` is ``Local``, or ``externalTrafficPolicy`` is ``Local`` and the port is reachable
from outside.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from meshstat.topology.types import Endpoint

__all__ = ["Categorized", "categorize_endpoints", "topology_mode_from_hints"]


@dataclass(frozen=True, slots=True)
class Categorized:
    """The four results of ``CategorizeEndpoints`` for one node, plus the topology mode it used."""

    cluster: tuple[Endpoint, ...] | None
    local: tuple[Endpoint, ...] | None
    reachable: tuple[Endpoint, ...]
    has_any: bool
    mode: str  # "", "PreferSameZone", "PreferSameNode"
    why: str = ""


def topology_mode_from_hints(endpoints: Sequence[Endpoint], node: str, zone: str | None, *,
                             same_node_gate: bool = True) -> tuple[str, str]:  # fmt: skip
    """``topology.go: topologyModeFromHints``: (mode, why) for a node."""
    has_ready = for_node = for_zone = False
    all_node = all_zone = True
    for e in endpoints:
        if not e.ready:
            continue
        has_ready = True
        if not e.node_hints:
            all_node = False
        elif node in e.node_hints:
            for_node = True
        if not e.zone_hints:
            all_zone = False
        elif zone in e.zone_hints:
            for_zone = True
    if not has_ready:
        return "", "no ready endpoints"
    if same_node_gate and all_node and for_node:
        return "PreferSameNode", "every ready endpoint has a node hint, one for this node"
    if all_zone:
        if for_zone:
            return "PreferSameZone", "every ready endpoint has a zone hint, some for this zone"
        if not zone:
            return "", "hints ignored: the node has no topology.kubernetes.io/zone label"
        return "", f"hints ignored: no endpoint is hinted for zone {zone}"
    if any(e.zone_hints for e in endpoints if e.ready):
        return "", "hints ignored: a ready endpoint has no zone hint"
    return "", ""


def categorize_endpoints(endpoints: Sequence[Endpoint], node: str, zone: str | None, *, uses_cluster: bool,
                         uses_local: bool, same_node_gate: bool = True) -> Categorized:  # fmt: skip
    """``topology.go: CategorizeEndpoints`` for the node ``node`` in ``zone``."""
    if not endpoints:
        return Categorized(None, None, (), False, "")
    mode, why = "", ""
    cluster: tuple[Endpoint, ...] | None = None
    has_any = False
    if uses_cluster:
        mode, why = topology_mode_from_hints(endpoints, node, zone, same_node_gate=same_node_gate)

        def available(e: Endpoint) -> bool:
            if mode == "PreferSameNode":
                return node in e.node_hints
            if mode == "PreferSameZone":
                return zone in e.zone_hints
            return True

        cluster = tuple(e for e in endpoints if e.ready and available(e))
        if not cluster:
            cluster = tuple(e for e in endpoints if e.serving and e.terminating)
        has_any = bool(cluster)
    if not uses_local:
        return Categorized(cluster, None, cluster or (), has_any, mode, why)
    local_ready = local_st = False
    for e in endpoints:
        if e.ready:
            has_any = True
            local_ready = local_ready or e.node == node
        elif e.serving and e.terminating:
            has_any = True
            local_st = local_st or e.node == node
    local: tuple[Endpoint, ...] = ()
    use_st = False
    if local_ready:
        local = tuple(e for e in endpoints if e.node == node and e.ready)
    elif local_st:
        use_st = True
        local = tuple(e for e in endpoints if e.node == node and e.serving and e.terminating)
    if not uses_cluster:
        return Categorized(None, local, local, has_any, mode, why)
    if mode == "" and not use_st:
        return Categorized(cluster, local, cluster or (), has_any, mode, why)
    merged = {e.key: e for e in (cluster or ())} | {e.key: e for e in local}
    return Categorized(cluster, local, tuple(merged.values()), has_any, mode, why)
