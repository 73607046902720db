"""The mesh's split per client zone: a sidecar's Envoy and ambient's ztunnel, beside kube-proxy's.

Both bypass kube-proxy's rules: the caller's proxy picks the pod itself, and what it prefers depends on
where the caller runs (:mod:`meshstat.mesh.locality`).

* **sidecar** (:func:`sidecar_split`): for each client node, the endpoints istiod sends it (with
  ``internalTrafficPolicy: Local`` only those on that node: ``NodeLocal``), then istiod's priorities and locality
  weights for a caller at that node's region and zone (``ApplyLocalityLoadBalancer`` with the DestinationRule's
  ``localityLbSetting`` and ``outlierDetection``, or the Service's ``trafficDistribution``), then Envoy's
  priority loads with the overprovisioning factor and the locality weights
  (:func:`meshstat.mesh.endpoints.endpoint_stage`). Endpoints: the Service's ready endpoints, each
  healthy (istiod sends only those; outlier detection has ejected none), weight 1, so every endpoint
  balancer (round robin, least request, random) gives the same long-run shares.
* **ztunnel** (:func:`ztunnel_split`): per client node, the endpoints of the best locality rank (Strict
  node for ``internalTrafficPolicy: Local``), equal shares (capacity 1 per pod).

The result is a :class:`meshstat.topology.split.TopologySplit` without node views and without external
traffic, so the tables of :mod:`meshstat.report.topology` show it as one more scenario.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from fractions import Fraction
from typing import Any

from meshstat.errors import InvalidArgument
from meshstat.mesh.endpoints import endpoint_stage
from meshstat.mesh.locality import (
    LABEL_HOSTNAME,
    LocalityPolicy,
    Place,
    apply_locality,
    describe,
    effective_locality,
    ztunnel_candidates,
    ztunnel_policy,
)
from meshstat.mesh.paths import Mesh
from meshstat.mesh.registry import EP
from meshstat.model import Backend, Route
from meshstat.parsers.istio_locality import TrafficLocality, locality_policy
from meshstat.topology.cluster import Cluster
from meshstat.topology.split import TopologySplit
from meshstat.topology.types import Endpoint

__all__ = ["MESH_PATHS", "mesh_paths_in", "mesh_splits", "node_place", "sidecar_split", "ztunnel_split"]


def node_place(cluster: Cluster, node: str) -> Place:
    """The :class:`meshstat.mesh.locality.Place` of a node of ``cluster``."""
    n = cluster.node(node)
    return Place(n.region or "", n.zone or "", "", n.name)


def _eps(cluster: Cluster) -> tuple[list[Endpoint], list[EP]]:
    ready = sorted((e for e in cluster.endpoints if e.ready), key=lambda e: e.key)
    region = {n.name: n.region or "" for n in cluster.nodes}
    out = []
    for e in ready:
        p = Place(region.get(e.node or "", ""), e.zone or "", "", e.node or "")
        out.append(EP(backend=Backend(name=e.key, address=e.key), locality=p.locality, node=e.node))
    return ready, out


def _assemble(cluster: Cluster, scenario: str, per_node: Callable[[str], dict[str, Fraction]],
              rps: float | None, notes: Sequence[str]) -> TopologySplit:  # fmt: skip
    total = sum(cluster.clients.values(), Fraction(0))
    if total == 0:
        raise InvalidArgument(f"{scenario}: no clients left (every client weight is 0)")
    internal: dict[str, Fraction] = {}
    dropped = Fraction(0)
    by_zone: dict[str, list[Any]] = {}
    by_node: dict[str, tuple[Fraction, dict[str, Fraction], Fraction]] = {}
    for node, w in cluster.clients.items():
        if w == 0:
            continue
        shares = per_node(node)
        zrow = by_zone.setdefault(cluster.zone_of(node), [Fraction(0), {}, Fraction(0)])
        zrow[0] += w
        if not shares:
            dropped += w / total
            zrow[2] += w
        for k, s in shares.items():
            internal[k] = internal.get(k, Fraction(0)) + w * s / total
            zrow[1][k] = zrow[1].get(k, Fraction(0)) + w * s
        by_node[node] = (w / total, shares, Fraction(0 if shares else 1))
    zones = {z: (wz / total, {k: s / wz for k, s in d.items()}, dz / wz) for z, (wz, d, dz) in by_zone.items()}
    pods = tuple(e for e in sorted(cluster.endpoints, key=lambda e: (cluster.zone_of(e.node), e.node or "", e.key))
                 if e.ready or e.key in internal)  # fmt: skip
    return TopologySplit(scenario, cluster, (), pods, internal, dropped, zones, by_node, None, Fraction(0), {}, rps,
                         "mesh", tuple(dict.fromkeys(cluster.notes + tuple(notes))))  # fmt: skip


def sidecar_split(cluster: Cluster, policy: TrafficLocality | None = None, *, scenario: str = "sidecar",
                  rps: float | None = None, client_labels: dict[str, str] | None = None,
                  locality: LocalityPolicy | None = None) -> TopologySplit:  # fmt: skip
    """Each client zone's split through its sidecar (see the module docstring).

    ``policy`` is the merged traffic policy of the DestinationRule the clients see (None: no
    DestinationRule); ``locality`` overrides the effective setting.
    """
    lpol = locality or effective_locality(policy, cluster.service.traffic_distribution)
    _ready, eps = _eps(cluster)
    cname = f"outbound|{cluster.service.port}||{cluster.service.name}.{cluster.service.namespace}.svc.cluster.local"
    notes: list[str] = []

    local = cluster.service.internal_policy == "Local"
    # a caller's node matters for Local and a failoverPriority on the hostname; else its region and zone decide
    by_node = local or any(p.partition("=")[0] == LABEL_HOSTNAME
                           for p in (lpol.setting.failover_priority if lpol.setting is not None else ()))
    seen: dict[Any, dict[str, Fraction]] = {}

    def per_node(node: str) -> dict[str, Fraction]:
        n = cluster.node(node)
        key = node if by_node else (n.region, n.zone)
        got = seen.get(key)
        if got is None:
            got = seen[key] = node_shares(node)
        return got

    def node_shares(node: str) -> dict[str, Fraction]:
        # internalTrafficPolicy Local: istiod sends a proxy only the endpoints on its own node (NodeLocal,
        # pilot/pkg/xds/endpoints/endpoint_builder.go: filterIstioEndpoint); none there: an empty cluster, a 503
        mine = [e for e in eps if e.node == node] if local else eps
        if not mine:
            return {}
        here = node_place(cluster, node)
        plan = apply_locality(mine, here, lpol, client_labels)
        if not plan.endpoints:
            return {}
        notes.append(f"{scenario} on {node}: {describe(lpol, plan, here)}")
        notes.extend(plan.notes)
        stage = endpoint_stage(cname, list(plan.endpoints), policy="ROUND_ROBIN",
                               locality_weighted=plan.locality_weighted, notes=[])  # fmt: skip
        if isinstance(stage, Backend) and stage.address is None:
            return {}
        route = Route(root=stage, name=scenario)
        return {b.name: s for b, s in zip(route.backends(), route.exact_shares(), strict=True) if s}

    out = _assemble(cluster, scenario, per_node, rps, ())
    zone_notes = _per_zone_notes(cluster, notes)
    return replace(out, notes=out.notes + tuple(zone_notes))


def _per_zone_notes(cluster: Cluster, notes: Sequence[str]) -> list[str]:
    """One note per client zone (nodes of one zone get the same plan when no subzone or node label is used)."""
    seen: dict[str, str] = {}
    out = []
    for n in dict.fromkeys(notes):
        head, sep, rest = n.partition(" on ")
        node, sep2, what = rest.partition(": ")
        if not sep or not sep2:
            out.append(n)
            continue
        zone = cluster.zone_of(node)
        if seen.get(zone) != what:
            seen[zone] = what
            out.append(f"{head} in zone {zone}: {what}")
    return list(dict.fromkeys(out))


def ztunnel_split(cluster: Cluster, *, scenario: str = "ztunnel", rps: float | None = None) -> TopologySplit:
    """Each client zone's split through ambient's ztunnel (no waypoint)."""
    svc = cluster.service
    mode, scopes = ztunnel_policy(svc.internal_policy, svc.traffic_distribution)
    _ready, eps = _eps(cluster)

    def per_node(node: str) -> dict[str, Fraction]:
        cands = ztunnel_candidates(eps, node_place(cluster, node), mode, scopes)
        return {e.backend.name: Fraction(1, len(cands)) for e in cands}

    what = "no locality preference" if mode == "Standard" else f"{mode} over {', '.join(scopes)}"
    return _assemble(cluster, scenario, per_node, rps, (f"{scenario}: {what} (ztunnel load_balance)",))


MESH_PATHS = ("sidecar", "ztunnel")


def mesh_paths_in(manifests: Any, namespace: str) -> tuple[str, ...]:
    """The mesh paths the manifests suggest for clients in ``namespace``: ``sidecar`` when a DestinationRule
    exists or the namespace is labelled for injection, ``ztunnel`` when it is labelled
    ``istio.io/dataplane-mode=ambient``."""
    ns = manifests.namespaces.get(namespace)
    labels = ns.labels if ns is not None else {}
    out = []
    if manifests.destination_rules or labels.get("istio-injection") == "enabled" or "istio.io/rev" in labels:
        out.append("sidecar")
    if labels.get("istio.io/dataplane-mode") == "ambient":
        out.append("ztunnel")
    return tuple(out)


def mesh_splits(manifests: Any, cluster: Cluster, paths: Sequence[str], *, client_namespace: str | None = None,
                rps: float | None = None, label: str = "") -> list[TopologySplit]:  # fmt: skip
    """The ``paths`` (``sidecar``, ``ztunnel``) of ``cluster``'s Service, with the DestinationRule that a client
    in ``client_namespace`` (default: the Service's) sees (:meth:`meshstat.mesh.Mesh.destination_rule`)."""
    out = []
    svc = cluster.service
    suffix = f", {label}" if label else ""
    if "sidecar" in paths:
        mesh = Mesh(manifests)
        info = mesh.registry.get(f"{svc.name}.{svc.namespace}.svc.{mesh.domain}")
        dr = mesh.destination_rule(info, client_namespace or svc.namespace) if info is not None else None
        pol = locality_policy(dr.locality, dr.port_locality, None, svc.port) if dr is not None else None
        out.append(sidecar_split(cluster, pol, scenario=f"sidecar{suffix}", rps=rps))
    if "ztunnel" in paths:
        out.append(ztunnel_split(cluster, scenario=f"ztunnel{suffix}", rps=rps))
    return out
