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
Sidecar clients pick endpoints in Envoy, not through kube-proxy's lists, and are not reported here.

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
    by_zone: dict[str, list[ClientClass]] = {}  # zone -> the client groups without a mesh with pods there
    for c in ctx.classes:
        if c.kind != "kube-proxy":
            continue
        per_zone: dict[str, list[WorkloadResource]] = {}
        for w in c.workloads:
            for z in ctx.client_zones.get(id(w), ()):
                per_zone.setdefault(z, []).append(w)
        for z, ws in per_zone.items():
            by_zone.setdefault(z, []).append(c if len(ws) == len(c.workloads) else replace(c, workloads=tuple(ws)))
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
                if not by_zone:  # no client without a mesh runs in a zone: no row could name one (its notes stay)
                    continue
                res = split(cluster)
            except InvalidArgument as exc:
                ctx.notes.append(f"topology of {ref}:{sp.port} not audited: {exc}")
                continue
            labels = {e.key: e.workload or e.pod or e.key for e in cluster.endpoints}
            ready = [e for e in cluster.endpoints if e.ready]
            configured = _by_workload({e.key: Fraction(1, len(ready)) for e in ready}, labels, Fraction(0))
            service = f"{ref}:{sp.port}"
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
                    (f"spread the endpoints of Service {ref} over the zones, or drop its "
                     + ("internalTrafficPolicy: Local" if st.internal_policy == "Local"
                        else "trafficDistribution / topology-mode") + " if the clients must see every endpoint",),
                    "no mesh")
