"""The Gateway API reasons: backendRefs whose share of the requests fails, and clients that apply no route.

For every rule of every HTTPRoute and GRPCRoute, the configured split is its backendRefs with a
weight above 0, the weights made relative (``BackendRef.Weight`` in the Gateway API spec,
``apis/v1/shared_types.go``). Each backendRef is resolved as Istio resolves it
(:func:`meshstat.mesh.gateway_api.resolve_backend`, after Istio's ``buildDestination`` in
``pilot/pkg/config/kube/gateway/conversion.go``); a backend that cannot be reached turns its share
into a 500 (``HTTPRouteRule.BackendRefs``: "requests that would have been sent to an invalid
backend MUST receive a 500 status code"):

* ``backend-missing``: the Service (or ServiceEntry host) does not exist, it has no such port, or
  the kind is not a backend Istio supports;
* ``refused-by-referencegrant``: a route attached to a Gateway names a Service in another namespace
  and no ReferenceGrant there allows it (mesh routes need none: GEP-1294);
* ``backend-without-pods``: the backend Service selects no ready pod: its cluster is empty and its
  share answers 503 no_healthy_upstream (the backendRef keeps its weight: envoyproxy/envoy #43150).

Routes attached to a Service (GAMMA) are reported per Service port for the mesh clients that apply
them: the Service's sidecar clients, and its ambient clients when it has a waypoint. Producer routes
(in the Service's namespace) serve every namespace; a consumer route serves its own namespace only
(:func:`meshstat.mesh.gateway_api.mesh_routes`). Routes attached to a Gateway are reported per
Gateway, for the clients that come in through it.

A Service port that producer routes split is also checked for the clients that apply no route: those
without a sidecar (``no-sidecar``: kube-proxy's split over the Service's pods) and ambient clients
when the Service has no waypoint (``ambient-without-waypoint``), unless a VirtualService routes the
Service too (its rows name them).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from fractions import Fraction
from typing import Any, NamedTuple

from meshstat.audit.core import (
    AuditContext,
    ClientClass,
    Divergence,
    clients_label,
    export_fix,
    no_sidecar_row,
    no_waypoint_row,
)
from meshstat.mesh.ambient import service_waypoint
from meshstat.mesh.gateway_api import (
    HTTP_KINDS,
    TCP_KINDS,
    attached_routes,
    resolve_backend,
    sidecar_split,
)
from meshstat.mesh.registry import RegisteredService, uncaptured
from meshstat.mesh.scope import cluster_miss, first_for_port, services_restricted
from meshstat.parsers.gateway_api import BackendRef, GatewayRoute, RouteRule
from meshstat.parsers.k8s import VirtualService

__all__ = ["Unmeshed", "consumer_namespaces", "gateway_api_reasons", "route_split", "service_route_ports",
           "unmeshed"]

_Split = tuple[tuple[str, Fraction], ...]


def _label(ref: BackendRef) -> str:
    return f"{ref.namespace}/{ref.name}" + (f":{ref.port}" if ref.port is not None else "")


def _rule_split(ctx: AuditContext, route: GatewayRoute, rule: RouteRule, grants: list, enforce: bool,
                ns: str | None = None) -> tuple[_Split, _Split, list[tuple[str, str, str]]] | None:
    """(configured, effective, [(reason, detail, fix)]) of a rule with a failing backendRef, else ``None``; with
    ``ns``, the proxies' namespace, a backend not exported there fails too (no cluster: 503 NC)."""
    mesh = ctx.mesh
    live = [b for b in rule.backends if b.weight > 0]
    total = sum(b.weight for b in live)
    if not total:
        return None
    configured: dict[str, Fraction] = {}
    effective: dict[str, Fraction] = {}
    found: list[tuple[str, str, str]] = []
    where = f"{route.label} rules[{rule.index}]"
    for b in live:
        share = Fraction(b.weight, total)
        label = _label(b)
        configured[label] = configured.get(label, Fraction(0)) + share
        dest, failure = resolve_backend(b, route, mesh.registry, grants, enforce_grants=enforce, domain=mesh.domain)
        if failure is None:
            binfo = mesh.registry.get(dest.host) if dest is not None else None
            if ns is not None and binfo is not None and (miss := cluster_miss(mesh, binfo, ns)) is not None:
                effective["503"] = effective.get("503", Fraction(0)) + share
                found.append(("not-exported-to-namespace", f"{where}: backendRef {b}: {miss}: no cluster there, "
                              "503 NC", export_fix(binfo)))
                continue
            svc = binfo.service if binfo is not None else None
            if binfo is None or svc is None or not svc.selector or ctx.selected(binfo, b.port or 0):
                effective[label] = effective.get(label, Fraction(0)) + share
                continue
            # a Service that selects no ready pod: an empty cluster, its share answers 503
            idle = ctx.idle_pods(binfo, b.port or 0, ())
            effective["503"] = effective.get("503", Fraction(0)) + share
            found.append(("backend-without-pods", f"{where}: backendRef {b}: Service {binfo.short} selects no "
                          f"{'ready ' if idle else ''}pods: 503 no_healthy_upstream",
                          f"{'make the pods of' if idle else 'deploy pods for'} Service {binfo.short}"
                          f"{' ready' if idle else ''} or drop it from backendRefs of {route.label}"))
            continue
        effective["500"] = effective.get("500", Fraction(0)) + share
        if "RefNotPermitted" in failure:
            found.append(("refused-by-referencegrant", f"{where}: backendRef {b}: {failure}",
                          f"add a ReferenceGrant in namespace {b.namespace} from {route.kind} in "
                          f"{route.meta.namespace} to {b.kind or 'Service'} {b.name}"))
        else:
            found.append(("backend-missing", f"{where}: backendRef {b}: {failure}",
                          f"create {b.kind or 'Service'} {b.namespace}/{b.name}"
                          + (f" with port {b.port}" if b.port is not None else "")
                          + f" or fix backendRefs of {route.label}"))
    if not found:
        return None
    return tuple(configured.items()), tuple(effective.items()), found


def _mesh_clients(ctx: AuditContext, info: RegisteredService, route: GatewayRoute) -> list[ClientClass]:
    """The client groups that apply a route attached to ``info``: sidecars (and ambient clients via a waypoint)."""
    kinds = {"sidecar"}
    if service_waypoint(ctx.mesh, info).gateway is not None:
        kinds.add("ambient")
    consumer = route.meta.namespace != info.namespace
    return [c for c in ctx.classes if c.kind in kinds and (not consumer or c.namespace == route.meta.namespace)]


def _parent_ports(info: RegisteredService, parent: Any) -> list[int]:
    """The ports of ``info`` a route's Service parentRef names (its ``port``, else every port), but those no proxy
    sees (UDP, SCTP: kube-proxy serves them and the route does not apply)."""
    ports = [parent.port] if parent.port is not None else [q.port for q in info.ports]
    return [p for p in ports if (sp := info.port(p)) is None or not uncaptured(sp)]


class Unmeshed(NamedTuple):
    """A Service port that routes split, for the clients without a proxy that applies them (see :func:`unmeshed`)."""

    info: RegisteredService
    port: int
    rule: str  # the route rule that configures the split ("HTTPRoute ns/name rules[0]")
    configured: _Split
    labels_of: dict[str, tuple[tuple[str, str], ...]]  # destination label -> the labels of the pods it names
    kube: tuple[ClientClass, ...]  # clients without a sidecar
    ambient: tuple[ClientClass, ...]  # ambient clients


def service_route_ports(ctx: AuditContext) -> list[tuple[RegisteredService, int]]:
    """Every (Service, port) a route attached to a Service (producer or consumer, GAMMA) names, but ports no
    proxy sees."""
    mesh = ctx.mesh
    pairs: dict[tuple[str, int], tuple[RegisteredService, int]] = {}
    for route in ctx.gateway_objects.routes:
        for parent in route.parents:
            if parent.is_service:
                info = mesh.registry.get(f"{parent.name}.{parent.namespace}.svc.{mesh.domain}")
                if info is None or info.service is None:
                    continue
                for p in _parent_ports(info, parent):
                    if info.port(p) is not None:
                        pairs.setdefault((info.fqdn, p), (info, p))
    return list(pairs.values())


def unmeshed(ctx: AuditContext, pairs: Iterable[tuple[RegisteredService, int]]) -> Iterator[Unmeshed]:
    """The Service ports of ``pairs`` that routes split, with the clients that apply no route: those without a
    sidecar (kube-proxy's split) and ambient clients (ztunnel's split unless the Service has a waypoint).
    On ports a VirtualService also routes, only the clients without a sidecar in a consumer route's namespace
    are given: the VirtualService's rows name the others (:mod:`meshstat.audit.istio`).

    The configured split is the one of a plain request (``GET /``, ``sidecar_split``): the consumer
    routes' for the clients of a namespace that has some (GEP-1294), the producer routes' for the
    others. Each pod of the Service is named by the backendRef whose Service (in the same namespace)
    selects it, else ``unrouted <version>``, as the VirtualService rows name pods by subset.
    """
    kube = [c for c in ctx.classes if c.kind == "kube-proxy"]
    amb = [c for c in ctx.classes if c.kind == "ambient"]
    if not kube and not amb:
        return
    vs_hosts = ctx.virtual_service_hosts()
    for info, port in pairs:
        vs = None
        vss = [v for v in vs_hosts[info.fqdn][1] if v.applies_to_sidecars] if info.fqdn in vs_hosts else []
        if vss:  # the VirtualService a sidecar would otherwise use for the port (one bound to gateways only is not)
            sp = info.port(port)
            vs = (first_for_port(vss, port, ctx.mesh.port_protocol(sp)) if sp is not None else None) or vss[0]
        consumers = sorted(consumer_namespaces(ctx, info, port, vs))
        # None: the producer routes, for every namespace without its own; with a VirtualService, its rows name
        # those clients (a sidecar in a consumer route's namespace applies that route: GEP-1294)
        for ns in [*([] if vs is not None else [None]), *consumers]:
            # the consumer namespace's clients, or those of every other namespace
            keep = [c for c in kube + ([] if vs is not None else amb)
                    if (c.namespace == ns if ns is not None else c.namespace not in consumers)]
            got = route_split(ctx, info, port, ns, vs) if keep else None
            if got is None:
                continue
            rule, configured, labels_of, _ = got
            yield Unmeshed(info, port, rule, configured, labels_of,
                           tuple(c for c in keep if c.kind == "kube-proxy"),
                           tuple(c for c in keep if c.kind == "ambient"))


def consumer_namespaces(ctx: AuditContext, info: RegisteredService, port: int, vs: VirtualService | None = None
                        ) -> set[str]:
    """The namespaces of the consumer routes (routes of another namespace attached to ``info``) of ``port`` whose
    sidecars apply them (GEP-1294; Istio lists the routes of the proxy's own namespace first): all of them, or,
    with the VirtualService ``vs`` for the port, those where it does not come first (``sidecar_split``: one
    exported to named namespaces does)."""
    if not ctx.gateway_routes:
        return set()
    sp = info.port(port)
    tcp = sp is not None and ctx.mesh.port_protocol(sp) == "tcp"
    found = {r.meta.namespace for r in attached_routes(ctx.gateway_routes, info, port, TCP_KINDS if tcp else HTTP_KINDS)
             if r.meta.namespace != info.namespace}
    if vs is None:
        return found
    return {ns for ns in found if sidecar_split(ctx.mesh, info, port, ns, vs, tcp=tcp) is not None}


def route_split(ctx: AuditContext, info: RegisteredService, port: int, namespace: str | None,
                vs: VirtualService | None = None
                ) -> tuple[str, _Split, dict[str, tuple[tuple[str, str], ...]], dict[str, str]] | None:
    """The split the routes attached to ``info`` configure for a plain request (``GET /``) from ``namespace`` (its
    consumer routes if it has some, else the producer routes; ``None``: the producer routes): the rule, the
    configured split, destination label -> the labels of the Service's pods it names, backend FQDN -> label.
    ``None`` when no route rule serves the request with backends, or when the VirtualService ``vs`` comes first
    for a sidecar there (``sidecar_split``)."""
    mesh = ctx.mesh
    sp = info.port(port)
    tcp = sp is not None and mesh.port_protocol(sp) == "tcp"
    split = sidecar_split(mesh, info, port, namespace, vs, tcp=tcp)
    if split is None or split.outcome is not None or split.route is None or not split.backends:
        return None
    total = sum(b.weight for b in split.backends)
    shares: dict[str, Fraction] = {}
    labels_of: dict[str, tuple[tuple[str, str], ...]] = {}
    hosts: dict[str, str] = {}
    for gb in split.backends:
        label = _label(gb.ref)
        shares[label] = shares.get(label, Fraction(0)) + Fraction(gb.weight, total)
        if gb.destination is None:
            continue
        hosts.setdefault(gb.destination.host, label)
        binfo = mesh.registry.get(gb.destination.host)
        sel = binfo.service.selector if binfo is not None and binfo.service is not None else None
        if sel and binfo is not None and binfo.namespace == info.namespace:
            labels_of.setdefault(label, sel)
    rule = f"{split.route.label} rules[{split.rule.index if split.rule is not None else 0}]"
    return rule, tuple(shares.items()), labels_of, hosts


def _unmeshed_rows(ctx: AuditContext, pairs: Iterable[tuple[RegisteredService, int]]) -> Iterator[Divergence]:
    """``no-sidecar`` and ``ambient-without-waypoint`` rows of the Service ports :func:`unmeshed` gives: clients
    without a proxy that applies the routes get kube-proxy's or ztunnel's split over the Service's pods. With real
    kube-proxy rules (``audit --iptables/--nft``) the rules give the ``no-sidecar`` rows instead
    (:mod:`meshstat.audit.observed`)."""
    for t in unmeshed(ctx, pairs):
        info, port, configured = t.info, t.port, t.configured
        pods = ctx.pod_split(info, port, t.labels_of)
        if t.kube and not ctx.observed_kube_proxy:
            kpods = ctx.kube_proxy_split(info, port, t.labels_of, pods)
            if dict(kpods) != dict(configured):
                yield no_sidecar_row(ctx, info, port, t.kube, configured, kpods, t.rule)
        if t.ambient and dict(pods) != dict(configured):
            wp = service_waypoint(ctx.mesh, info)
            if wp.gateway is None:
                yield no_waypoint_row(ctx, info, port, t.ambient, configured, pods, wp)


def gateway_api_reasons(ctx: AuditContext) -> Iterator[Divergence]:
    """The rows of every Gateway API route rule with a backendRef that fails, and of the clients that do not
    apply a Service's routes (see the module docstring)."""
    mesh = ctx.mesh
    objs = ctx.gateway_objects
    routes = [r for r in objs.routes if r.kind in HTTP_KINDS]
    pairs = service_route_ports(ctx)
    vs_hosts = ctx.virtual_service_hosts()
    ctx.audited += sum(1 for info, _ in pairs if info.fqdn not in vs_hosts)  # those with a VirtualService count there
    yield from _unmeshed_rows(ctx, ctx.share(pairs))
    for route in ctx.share(routes):
        for parent in route.parents:
            if parent.is_service:
                info = mesh.registry.get(f"{parent.name}.{parent.namespace}.svc.{mesh.domain}")
                if info is None or info.service is None:
                    continue
                classes = _mesh_clients(ctx, info, route)
                ports = _parent_ports(info, parent)
                if not classes or not ports:
                    continue
                service_of = [f"{info.namespace}/{info.name}:{p}" for p in ports]
                audiences = _audiences(ctx, info, route, classes)
                enforce = False
            elif parent.is_gateway:
                service_of = [f"Gateway {parent.namespace}/{parent.name}"
                              + (f" {parent.section_name}" if parent.section_name else "")]
                enforce = True  # the Gateway's pods are in its namespace (Istio deploys them there)
                audiences = [(f"ingress through Gateway {parent.namespace}/{parent.name}", 0, "ingress",
                              parent.namespace if services_restricted(mesh) else None)]
            else:
                continue
            for clients, n, kind, ns in audiences:
                for rule in route.rules:
                    got = _rule_split(ctx, route, rule, objs.grants, enforce, ns)
                    if got is None:
                        continue
                    configured, effective, found = got
                    for reason in dict.fromkeys(f[0] for f in found):
                        mine = [f for f in found if f[0] == reason]
                        for service in service_of:
                            yield Divergence(service, clients, n, configured, effective, reason,
                                             "; ".join(f[1] for f in mine), tuple(dict.fromkeys(f[2] for f in mine)),
                                             kind)


def _audiences(ctx: AuditContext, info: RegisteredService, route: GatewayRoute, classes: list[ClientClass]
               ) -> list[tuple[str, int, str, str | None]]:
    """The client groups of a route attached to ``info``, as (clients, count, kind, the proxies' namespace or None):
    one group, unless a backend of the route is not exported everywhere; then the groups whose proxies (a
    sidecar's namespace; the waypoint's, for ambient clients) see the same backends."""
    mesh = ctx.mesh

    def audience(group: list[ClientClass], ns: str | None) -> tuple[str, int, str, str | None]:
        kinds = {c.kind for c in group}  # sidecars, and ambient clients through the waypoint
        kind = ", ".join(k for k, there in (("sidecar", "sidecar" in kinds), ("ambient + waypoint", "ambient" in kinds))
                         if there)
        return (*clients_label(group), kind, ns)

    if not services_restricted(mesh):
        return [audience(classes, None)]
    backends = [t for rule in route.rules for b in rule.backends
                if (t := mesh.registry.get(b.host(mesh.domain))) is not None]
    wp = service_waypoint(mesh, info).gateway
    groups: dict[tuple[str, ...], tuple[str, list[ClientClass]]] = {}
    for c in classes:
        ns = wp.meta.namespace if c.kind == "ambient" and wp is not None else c.namespace
        hidden = tuple(t.fqdn for t in backends if cluster_miss(mesh, t, ns) is not None)
        groups.setdefault(hidden, (ns, []))[1].append(c)
    return [audience(group, ns if hidden else None) for hidden, (ns, group) in groups.items()]
