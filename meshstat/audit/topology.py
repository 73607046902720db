"""The topology reason: a client zone whose split differs from the cluster-wide split.

kube-proxy on each node keeps its own endpoint list: ``trafficDistribution: PreferClose`` and
topology hints keep a zone's clients on the endpoints hinted for that zone, ``internalTrafficPolicy:
Local`` on the node's own endpoints (kube-proxy ``pkg/proxy/topology.go: CategorizeEndpoints``, as
:mod:`meshstat.topology` models it). The configured split is the one a topology-unaware proxy gives:
a uniform pick over every ready endpoint (for kube-proxy, its chain's probabilities as it rounds them:
a zone that reaches every endpoint is no divergence). For every Service with such a setting, every
port and every zone, the zone's exact split is :func:`meshstat.topology.split`'s ``by_zone``, with the
clients on the nodes their pods run on, weighted by their pods; where it differs, the clients that
kube-proxy routes in that zone (client workloads without a sidecar with a pod there,
:attr:`meshstat.audit.core.AuditContext.client_zones`: a Deployment spread over zones a and b is named
in the rows of both) get a ``topology-restricted`` row.

The same holds for the clients that pick the endpoint themselves, by where they run (:func:`_views`):
ambient clients of a Service without waypoint through ztunnel (``trafficDistribution`` and
``internalTrafficPolicy: Local``, not topology hints: :func:`meshstat.topology.mesh_paths.ztunnel_split`),
and sidecar clients through the Service's own cluster where every one of them sees the Service alike
(:func:`_one_sidecar_view`, :attr:`_Kind.plain`: no Sidecar resource of theirs, no VirtualService for sidecars, no Gateway API
route, the Service exported everywhere, its DestinationRules in its or the root namespace), by
:func:`~meshstat.topology.mesh_paths.sidecar_split`:
``trafficDistribution`` as forced locality failover, the ``localityLbSetting`` of the DestinationRule they
see, MeshConfig's locality failover that a DestinationRule's ``outlierDetection`` turns on, which makes a
Service without topology settings audited too, and ``internalTrafficPolicy: Local``, for which istiod
sends a proxy its node's endpoints only. Not audited here: sidecars that could see the Service otherwise
from namespace to namespace (the cost would grow with Services x namespaces), the zone within a routed
destination (a VirtualService's host without subset), and a waypoint's own zone.

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
from meshstat.mesh.locality import effective_locality
from meshstat.mesh.scope import host_rules, service_visible_everywhere
from meshstat.parsers.istio_locality import locality_policy
from meshstat.parsers.k8s import WorkloadResource
from meshstat.topology import build_cluster, split
from meshstat.topology.mesh_paths import sidecar_split, ztunnel_split
from meshstat.topology.split import chain_shares

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


class _Kind:
    """The client groups of one kind that run in zones, worked out once per audit: by zone (a workload in several
    zones is in each), and the weight of each node they run on (their pods there)."""

    def __init__(self, ctx: AuditContext, kind: str) -> None:
        self.by_zone = _classes_by_zone(ctx, kind)
        self.at: dict[str, Fraction] = {}
        workloads = {id(w): w for classes in self.by_zone.values() for c in classes for w in c.workloads}
        for key in workloads:
            for node, pods in ctx.client_nodes.get(key, {}).items():
                self.at[node] = self.at.get(node, Fraction(0)) + pods
        #: whether no group applies a Sidecar resource (its scope imports every Service exported to it)
        self.plain = all(c.sidecar is None for classes in self.by_zone.values() for c in classes)

    def clients(self, cluster: Any) -> Any:
        """``cluster`` with these clients: where their pods run."""
        return replace(cluster, clients=self.at)


def topology_reasons(ctx: AuditContext) -> Iterator[Divergence]:
    """The rows of every zone whose split a topology setting changes (see the module docstring)."""
    m = ctx.mesh.manifests
    topo = m.topology
    if not topo.nodes or not any(n.zone for n in topo.nodes):
        return
    kinds = {k: _Kind(ctx, k) for k in ("kube-proxy", "ambient", "sidecar")}
    anywhere: dict[str, Fraction] = {}  # every zoned client, for the cluster's own checks
    for kd in kinds.values():
        for node, w in kd.at.items():
            anywhere[node] = anywhere.get(node, Fraction(0)) + w
    mesh = ctx.mesh
    service_of: dict[str, Any] = {}
    for s in m.services:
        service_of.setdefault(s.meta.ref, s)  # the first, as a scan would find it
    for ref, st in ctx.share(topo.services.items()):
        svc = service_of.get(ref)
        if svc is None:
            continue
        info = mesh.registry.get(f"{svc.meta.name}.{svc.meta.namespace}.svc.{mesh.domain}")
        shaped = bool(st.traffic_distribution or st.topology_mode or st.internal_policy == "Local")
        if not shaped and not (kinds["sidecar"].by_zone and info is not None and _locality_rules(mesh, info)):
            continue
        for sp in svc.ports:
            try:
                cluster = build_cluster(m, ref, port=sp.port, clients_at=anywhere)
                if not anywhere:  # no client runs in a zone: no row could name one (its notes stay)
                    continue
                views = _views(ctx, info, sp.port, st, cluster, kinds)
            except InvalidArgument as exc:
                if shaped:
                    ctx.note(f"topology of {ref}:{sp.port} not audited: {exc}")
                continue
            if not views:
                continue
            labels = {e.key: e.workload or e.pod or e.key for e in cluster.endpoints}
            ready = [e for e in cluster.endpoints if e.ready]
            configured = _by_workload({e.key: Fraction(1, len(ready)) for e in ready}, labels, Fraction(0))
            for res, by_zone, proxy, kind, fix in views:
                # kube-proxy's chain without topology gives each endpoint its share as its probabilities round it
                same = (_by_workload({e.key: f for e, f in chain_shares(ready)}, labels, Fraction(0))
                        if kind == "no mesh" else configured)
                for zone, (_w, shares, dropped) in res.by_zone.items():
                    eff = _by_workload(shares, labels, dropped)
                    classes = by_zone.get(zone, [])
                    if eff == same or not classes:
                        continue
                    who, n = ctx.of_group("label", clients_label, classes)
                    reached = sum(1 for e in ready if shares.get(e.key))
                    yield Divergence(
                        f"{ref}:{sp.port}", f"zone {zone}: {who}", n, configured, eff, "topology-restricted",
                        f"{cluster.service.settings()}: {proxy} in zone {zone} reaches {reached} of {len(ready)} "
                        "ready endpoints", (fix,), kind)


def _locality_rules(mesh: Any, info: Any) -> bool:
    """Whether a DestinationRule of ``info`` sets locality load balancing or outlier detection (which turns
    MeshConfig's locality failover on for the sidecars that see it)."""
    return any(t is not None and (t.locality is not None or t.has_outlier_detection)
               for dr in host_rules(mesh).destination_rules(info) for t in (dr.locality, *(p for _, p in dr.port_locality)))


def _spread(ref: str, setting: str) -> str:
    return f"spread the endpoints of Service {ref} over the zones, or drop its {setting} if the clients must see every endpoint"


def _views(ctx: AuditContext, info: Any, port: int, st: Any, cluster: Any, kinds: dict[str, _Kind]
           ) -> list[tuple[Any, dict[str, list[ClientClass]], str, str, str]]:
    """(split per client zone, the client groups by zone it is theirs, who picks, row kind, fix) of each way the
    clients reach ``info:port``, with the clients where their pods run: kube-proxy (:func:`meshstat.topology.split`);
    ztunnel where the Service has no waypoint (:func:`~meshstat.topology.mesh_paths.ztunnel_split`:
    ``trafficDistribution`` and ``internalTrafficPolicy: Local`` only); the sidecars, where every one of them uses
    the Service's own cluster and one DestinationRule (:func:`_one_sidecar_view`), by
    :func:`~meshstat.topology.mesh_paths.sidecar_split` (istiod's locality priorities, Envoy's priority loads)."""
    ref = f"{st.namespace}/{st.name}"
    out = []
    kube, ambient, sidecar = kinds["kube-proxy"], kinds["ambient"], kinds["sidecar"]
    local = st.internal_policy == "Local"
    if kube.by_zone:
        out.append((split(kube.clients(cluster)), kube.by_zone, "kube-proxy", "no mesh",
                    _spread(ref, "internalTrafficPolicy: Local" if local else "trafficDistribution / topology-mode")))
    if info is None:
        return out
    mesh = ctx.mesh
    if ambient.by_zone and (local or st.traffic_distribution) and service_waypoint(mesh, info).gateway is None:
        out.append((ztunnel_split(ambient.clients(cluster)), ambient.by_zone, "ztunnel (no waypoint)", "ambient",
                    _spread(ref, "internalTrafficPolicy: Local" if local else "trafficDistribution")))
    if not sidecar.by_zone or not sidecar.plain or not _one_sidecar_view(ctx, info, port):
        return out
    # every sidecar client sees the Service alike: the DestinationRule of its namespace (or the root's), one split
    dr = mesh.destination_rule(info, info.namespace)
    pol = locality_policy(dr.locality, dr.port_locality, None, port) if dr is not None else None
    lpol = effective_locality(pol, st.traffic_distribution)
    zoned = lpol.failover or (lpol.setting is not None and lpol.setting.distribute is not None)
    if not zoned and not local:
        return out  # every endpoint in one priority and locality: no zone restricts
    causes = ([lpol.origin + (" with the DestinationRule's outlierDetection" if lpol.outlier_detection
                              and not lpol.force and lpol.origin.startswith("MeshConfig") else "")] if zoned else [])
    causes += ["internalTrafficPolicy: Local (istiod sends a proxy its node's endpoints only)"] if local else []
    if zoned and not lpol.force and dr is not None:
        fix = (f"set localityLbSetting enabled: false in DestinationRule {dr.meta.ref}"
               + (", drop internalTrafficPolicy: Local" if local else "")
               + f", or spread the endpoints of Service {ref} over the zones")
    else:
        fix = _spread(ref, "internalTrafficPolicy: Local" if local else "trafficDistribution")
    out.append((sidecar_split(sidecar.clients(cluster), pol), sidecar.by_zone,
                f"the sidecars' Envoy ({'; '.join(causes)})", "sidecar", fix))
    return out


def _one_sidecar_view(ctx: AuditContext, info: Any, port: int) -> bool:
    """Whether every sidecar client of a plain scope (no Sidecar resource, :attr:`_Kind.plain`) reaches ``info:port``
    through the Service's own cluster, seeing one DestinationRule: the Service is exported everywhere, no
    VirtualService for the host applies to sidecars (one bound to gateways only does not), no Gateway API route
    attaches, and every DestinationRule of the host is in its namespace or the root namespace. Elsewhere the
    sidecars' zone rows are not worked out (each namespace could see the Service otherwise; the rule rows compare
    what it sees)."""
    mesh = ctx.mesh
    if not service_visible_everywhere(mesh, info):
        return False
    if any(v.applies_to_sidecars for v in ctx.virtual_service_hosts().get(info.fqdn, (None, []))[1]):
        return False
    if any(attached_routes(ctx.gateway_routes, info, port, k) for k in (HTTP_KINDS, TCP_KINDS)):
        return False
    root = mesh.scope.mesh_config.root_namespace
    return all(dr.meta.namespace in (info.namespace, root) for dr in host_rules(mesh).destination_rules(info))


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
