"""The topology reason: a client zone whose split differs from the cluster-wide split (kube-proxy, ztunnel).

kube-proxy on each node keeps its own endpoint list: ``trafficDistribution: PreferClose`` and
topology hints keep a zone's clients on the endpoints hinted for that zone, ``internalTrafficPolicy:
Local`` on the node's own endpoints (kube-proxy ``pkg/proxy/topology.go: CategorizeEndpoints``, as
:mod:`meshstat.topology` models it). The configured split is the one a topology-unaware proxy gives:
a uniform pick over every ready endpoint. For every Service with such a setting, every port and every
zone, the zone's exact split is :func:`meshstat.topology.split`'s ``by_zone`` (clients spread evenly
over the zone's nodes); where it differs, the clients that kube-proxy routes in that zone (client
workloads without a sidecar with a pod there, :attr:`meshstat.audit.core.AuditContext.client_zones`: a
Deployment spread over zones a and b is named in the rows of both) get a ``topology-restricted`` row.
Ambient clients of a Service without waypoint get ztunnel's rows (:func:`_ztunnel_rows`: it reads
``trafficDistribution`` and ``internalTrafficPolicy: Local``, not topology hints). Sidecar clients and
waypoints pick endpoints in Envoy by their own locality, which the model gives a placed Pod only, not a
Deployment: they are not reported here.

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
from meshstat.mesh.locality import node_places, ztunnel_candidates, ztunnel_policy
from meshstat.parsers.k8s import WorkloadResource
from meshstat.topology import build_cluster, split

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
    by_zone = _classes_by_zone(ctx, "kube-proxy")  # zone -> the client groups without a mesh with pods there
    ambient = _classes_by_zone(ctx, "ambient")
    shaped = [(ref, st) for ref, st in topo.services.items()
              if st.traffic_distribution or st.topology_mode or st.internal_policy == "Local"]
    if not shaped:
        return
    service_of: dict[str, Any] = {}
    for s in m.services:
        service_of.setdefault(s.meta.ref, s)  # the first, as a scan would find it
    for ref, st in shaped:
        svc = service_of.get(ref)
        if svc is None:
            continue
        for sp in svc.ports:
            try:
                cluster = build_cluster(m, ref, port=sp.port, client_zones=dict.fromkeys(zones, Fraction(1)))
                if not by_zone and not ambient:  # no client runs in a zone: no row could name one (its notes stay)
                    continue
                res = split(cluster) if by_zone else None
            except InvalidArgument as exc:
                ctx.notes.append(f"topology of {ref}:{sp.port} not audited: {exc}")
                continue
            labels = {e.key: e.workload or e.pod or e.key for e in cluster.endpoints}
            service = f"{ref}:{sp.port}"
            fix = (f"spread the endpoints of Service {ref} over the zones, or drop its "
                   + ("internalTrafficPolicy: Local" if st.internal_policy == "Local"
                      else "trafficDistribution / topology-mode") + " if the clients must see every endpoint",)
            if ambient:
                yield from _ztunnel_rows(ctx, ref, sp.port, st, cluster, labels, ambient, fix)
            if res is None:
                continue
            ready = [e for e in cluster.endpoints if e.ready]
            configured = _by_workload({e.key: Fraction(1, len(ready)) for e in ready}, labels, Fraction(0))
            for zone, (_w, shares, dropped) in res.by_zone.items():
                eff = _by_workload(shares, labels, dropped)
                classes = by_zone.get(zone, [])
                if eff == configured or not classes:
                    continue
                who, n = ctx.of_group("label", clients_label, classes)
                reached = sum(1 for e in ready if shares.get(e.key))
                yield Divergence(
                    service, f"zone {zone}: {who}", n, configured, eff, "topology-restricted",
                    f"{cluster.service.settings()}: kube-proxy in zone {zone} reaches {reached} of {len(ready)} "
                    "ready endpoints",
                    fix, "no mesh")


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


def _ztunnel_rows(ctx: AuditContext, ref: str, port: int, st: Any, cluster: Any, labels: dict[str, str],
                  ambient: dict[str, list[ClientClass]], fix: tuple[str, ...]) -> Iterator[Divergence]:
    """The ``topology-restricted`` rows of ambient clients in each zone, where the Service has no waypoint: ztunnel
    on the client's node keeps the endpoints of the best locality rank for ``trafficDistribution`` and
    ``internalTrafficPolicy: Local`` (:func:`meshstat.mesh.locality.ztunnel_candidates`, as
    :mod:`meshstat.mesh.ambient` routes a placed caller; topology hints do not matter to it), then picks one
    weighted by capacity; a node where none is left closes the connection (``dropped``). The configured split
    is ztunnel's over every endpoint; the zone's clients are spread evenly over its ready worker nodes, as the
    kube-proxy rows take them."""
    mesh = ctx.mesh
    mode, scopes = ztunnel_policy(st.internal_policy, st.traffic_distribution)
    info = mesh.resolve_host(f"{st.name}.{st.namespace}.svc.{mesh.domain}", st.namespace)
    if mode == "Standard" or info is None or service_waypoint(mesh, info).gateway is not None:
        return
    eps = mesh.endpoints(info, port)
    if not eps:
        return
    places = node_places(mesh.manifests.topology)

    def shares_of(cands: list[Any]) -> dict[str, Fraction]:
        total = sum(max(1, e.weight) for e in cands)
        return {e.backend.address: Fraction(max(1, e.weight), total) for e in cands}

    configured = _by_workload(shares_of(eps), labels, Fraction(0))
    for zone, classes in ambient.items():
        nodes = [n.name for n in cluster.nodes if n.zone == zone and n.ready and not n.control_plane
                 and n.name in places]
        if not nodes:
            continue
        got: dict[str, Fraction] = {}
        dropped = Fraction(0)
        for node in nodes:
            cands = ztunnel_candidates(eps, places[node], mode, scopes)
            if not cands:
                dropped += Fraction(1, len(nodes))
            for key, f in shares_of(cands).items():
                got[key] = got.get(key, Fraction(0)) + f / len(nodes)
        eff = _by_workload(got, labels, dropped)
        if eff == configured:
            continue
        who, n = ctx.of_group("label", clients_label, classes)
        yield Divergence(
            f"{ref}:{port}", f"zone {zone}: {who}", n, configured, eff, "topology-restricted",
            f"{cluster.service.settings()}: ztunnel in zone {zone} keeps the endpoints of the best locality rank "
            f"({mode} over {', '.join(scopes)}) of {len(eps)}, the Service having no waypoint", fix, "ambient")
