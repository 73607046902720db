"""The topology reason: a client zone whose split differs from the cluster-wide split.

kube-proxy on each node keeps its own endpoint list: ``trafficDistribution: PreferClose`` and
topology hints keep a zone's clients on the endpoints hinted for that zone, ``internalTrafficPolicy:
Local`` on the node's own endpoints (kube-proxy ``pkg/proxy/topology.go: CategorizeEndpoints``, as
:mod:`meshstat.topology` models it). The configured split is the one a topology-unaware proxy gives:
a uniform pick over every ready endpoint. For every Service with such a setting, every port and every
zone, the zone's exact split is :func:`meshstat.topology.split`'s ``by_zone`` (clients spread evenly
over the zone's nodes); where it differs, the clients that kube-proxy routes in that zone (client
workloads without a sidecar with a pod there, :attr:`meshstat.audit.core.AuditContext.client_zones`: a
Deployment spread over zones a and b is named in the rows of both) get a ``topology-restricted`` row.
The same holds for the clients that pick the endpoint themselves, by where they run (:func:`_views`):
ambient clients of a Service without waypoint through ztunnel (``trafficDistribution`` and
``internalTrafficPolicy: Local``, not topology hints: :func:`meshstat.topology.mesh_paths.ztunnel_split`),
and sidecar clients through the Service's own cluster (``trafficDistribution`` as forced locality failover,
or the DestinationRule's ``localityLbSetting`` they see: :func:`~meshstat.topology.mesh_paths.sidecar_split`),
where no VirtualService or Gateway API route splits their requests first and their scope imports the
Service. Not audited here: the zone within a routed destination (a VirtualService's host without subset),
and a waypoint's own zone.

Shares are labelled by the endpoints' workload (``deployment/reviews-v1``) and ``dropped`` for
connections no endpoint takes (kube-proxy's REJECT or DROP).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from fractions import Fraction
from typing import Any

from meshstat.audit.core import AuditContext, ClientClass, Divergence, clients_label
from meshstat.errors import InvalidArgument
from meshstat.mesh.ambient import service_waypoint
from meshstat.mesh.gateway_api import HTTP_KINDS, TCP_KINDS, attached_routes
from meshstat.mesh.scope import client_scope, scope_miss
from meshstat.parsers.istio_locality import locality_policy
from meshstat.parsers.k8s import WorkloadResource
from meshstat.topology import build_cluster, split
from meshstat.topology.mesh_paths import sidecar_split, ztunnel_split

__all__ = ["topology_reasons"]

_Split = tuple[tuple[str, Fraction], ...]


def _by_workload(shares: dict[str, Fraction], labels: dict[str, str], dropped: Fraction) -> _Split:
    out: dict[str, Fraction] = {}
    for key, f in shares.items():
        if f:
            lab = labels.get(key, key)
            out[lab] = out.get(lab, Fraction(0)) + f
    if dropped:
        out["dropped"] = dropped
    return tuple(sorted(out.items()))


def topology_reasons(ctx: AuditContext) -> Iterator[Divergence]:
    """The rows of every zone whose split a topology setting changes (see the module docstring)."""
    m = ctx.mesh.manifests
    topo = m.topology
    if not topo.nodes:
        return
    zones = list(dict.fromkeys(n.zone for n in topo.nodes if n.zone))
    if not zones:
        return
    kube = _classes_by_zone(ctx, "kube-proxy")  # zone -> the client groups of a kind with pods there
    ambient = _classes_by_zone(ctx, "ambient")
    sidecar = _classes_by_zone(ctx, "sidecar")
    shaped = [(ref, st) for ref, st in topo.services.items()
              if st.traffic_distribution or st.topology_mode or st.internal_policy == "Local"]
    if not shaped:
        return
    mesh = ctx.mesh
    service_of: dict[str, Any] = {}
    for s in m.services:
        service_of.setdefault(s.meta.ref, s)  # the first, as a scan would find it
    for ref, st in shaped:
        svc = service_of.get(ref)
        if svc is None:
            continue
        info = mesh.registry.get(f"{svc.meta.name}.{svc.meta.namespace}.svc.{mesh.domain}")
        for sp in svc.ports:
            try:
                cluster = build_cluster(m, ref, port=sp.port, client_zones=dict.fromkeys(zones, Fraction(1)))
                if not (kube or ambient or sidecar):  # no client runs in a zone: no row could name one (notes stay)
                    continue
                views = _views(ctx, info, sp.port, cluster, kube, ambient, sidecar)
            except InvalidArgument as exc:
                ctx.notes.append(f"topology of {ref}:{sp.port} not audited: {exc}")
                continue
            if not views:
                continue
            labels = {e.key: e.workload or e.pod or e.key for e in cluster.endpoints}
            ready = [e for e in cluster.endpoints if e.ready]
            configured = _by_workload({e.key: Fraction(1, len(ready)) for e in ready}, labels, Fraction(0))
            fix = (f"spread the endpoints of Service {ref} over the zones, or drop its "
                   + ("internalTrafficPolicy: Local" if st.internal_policy == "Local"
                      else "trafficDistribution / topology-mode") + " if the clients must see every endpoint",)
            for res, by_zone, proxy, kind in views:
                for zone, (_w, shares, dropped) in res.by_zone.items():
                    eff = _by_workload(shares, labels, dropped)
                    classes = by_zone.get(zone, [])
                    if eff == configured or not classes:
                        continue
                    who, n = ctx.of_group("label", clients_label, classes)
                    reached = sum(1 for e in ready if shares.get(e.key))
                    yield Divergence(
                        f"{ref}:{sp.port}", f"zone {zone}: {who}", n, configured, eff, "topology-restricted",
                        f"{cluster.service.settings()}: {proxy} in zone {zone} reaches {reached} of {len(ready)} "
                        "ready endpoints", fix, kind)


def _views(ctx: AuditContext, info: Any, port: int, cluster: Any, kube: dict[str, list[ClientClass]],
           ambient: dict[str, list[ClientClass]], sidecar: dict[str, list[ClientClass]]
           ) -> list[tuple[Any, dict[str, list[ClientClass]], str, str]]:
    """(split per client zone, the client groups by zone it is theirs, who picks, row kind) of each way the clients
    reach ``info:port``: kube-proxy (:func:`meshstat.topology.split`); ztunnel where the Service has no waypoint
    (:func:`~meshstat.topology.mesh_paths.ztunnel_split`: ``trafficDistribution`` and ``internalTrafficPolicy:
    Local`` only); the sidecars that use the Service's own cluster, which no VirtualService or Gateway API route
    splits for them and their scope imports, per DestinationRule they see
    (:func:`~meshstat.topology.mesh_paths.sidecar_split`: istiod's locality priorities, Envoy's priority loads)."""
    out = []
    if kube:
        out.append((split(cluster), kube, "kube-proxy", "no mesh"))
    if info is None:
        return out
    mesh = ctx.mesh
    if ambient and service_waypoint(mesh, info).gateway is None:
        out.append((ztunnel_split(cluster), ambient, "ztunnel (no waypoint)", "ambient"))
    if sidecar and info.fqdn not in ctx.virtual_service_hosts() and not any(
            attached_routes(ctx.gateway_routes, info, port, kinds) for kinds in (HTTP_KINDS, TCP_KINDS)):
        by_rule: dict[int, tuple[Any, dict[str, list[ClientClass]]]] = {}
        for zone, classes in sidecar.items():
            for c in classes:
                if scope_miss(mesh, client_scope(mesh, c.workloads[0], c.namespace), info, port) is not None:
                    continue  # its proxy has no cluster for the Service: the audit's Sidecar rows say so
                dr = mesh.destination_rule(info, c.namespace)
                by_rule.setdefault(id(dr), (dr, {}))[1].setdefault(zone, []).append(c)
        for dr, by_zone in by_rule.values():
            pol = locality_policy(dr.locality, dr.port_locality, None, port) if dr is not None else None
            out.append((sidecar_split(cluster, pol), by_zone, "the sidecars' Envoy"
                        + (f" (DestinationRule {dr.meta.ref})" if dr is not None else ""), "sidecar"))
    return out


def _classes_by_zone(ctx: AuditContext, kind: str) -> dict[str, list[ClientClass]]:
    """Zone -> the client groups of ``kind`` with the workloads that have a pod there
    (:attr:`~meshstat.audit.core.AuditContext.client_zones`: a workload in several zones is in each)."""
    out: dict[str, list[ClientClass]] = {}
    for c in ctx.classes:
        if c.kind != kind:
            continue
        per_zone: dict[str, list[WorkloadResource]] = {}
        for w in c.workloads:
            for z in ctx.client_zones.get(id(w), ()):
                per_zone.setdefault(z, []).append(w)
        for z, ws in per_zone.items():
            out.setdefault(z, []).append(c if len(ws) == len(c.workloads) else replace(c, workloads=tuple(ws)))
    return out
