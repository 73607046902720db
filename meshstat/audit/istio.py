"""The Istio rule reasons: who does not get the split a VirtualService configures, and why.

For every VirtualService host that is a Service (port by port) the configured split is the
route a plain request takes (:mod:`meshstat.audit.plain`; a client's own rule where rules match on
the clients' labels or namespace), its weights made relative as Envoy does (``weighted_clusters``).
Then, per client group (:class:`meshstat.audit.core.ClientClass`):

* clients without a mesh (``kube-proxy``) and ambient clients of a Service without a waypoint get
  the pod split (a uniform per-connection pick over every endpoint): ``no-sidecar``,
  ``ambient-without-waypoint``;
* sidecar clients get the VirtualService only when istiod gives it to them (the same decisions as
  :mod:`meshstat.mesh.scope`: ``gateways``, ``exportTo``, the Sidecar's egress hosts, the
  outbound policy): otherwise the default cluster's pod split (``rule-bound-to-gateway-only``,
  ``not-exported-to-namespace``, ``sidecar-egress-excludes``); when they do get it, a subset the
  DestinationRule they see lacks, or one that selects no pods, turns its share into a 503
  (``subset-undefined``, ``subset-without-pods``); a DestinationRule of their own namespace whose
  subsets select other pods than the Service's namespace's sends the shares there
  (``destination-rule-differs``); another VirtualService for the host that comes first for them
  (private to their namespace, or exported to it by name) applies its own split
  (``other-virtualservice-wins``). A later VirtualService for the host, which no proxy that sees
  the first one applies, is reported the same way, with the first one's split or a 404
  (:func:`_shadowed_rows`).

Sidecar clients are evaluated once for every namespace that nothing singles out (a namespace
that no rule, Sidecar or exportTo of the Service names: :func:`meshstat.mesh.clients.rule_namespaces`,
the set ``compare -f`` uses too) and once for each namespace that is singled out, so that the cost
per Service does not grow with the number of namespaces.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace
from fractions import Fraction
from typing import Any

from meshstat.audit.core import (
    AuditContext,
    ClientClass,
    Divergence,
    clients_label,
    export_fix,
    no_sidecar_row,
    no_waypoint_row,
    ratio,
)
from meshstat.audit.gateway import consumer_namespaces, route_split
from meshstat.audit.groups import Part, SidecarGroups
from meshstat.audit.plain import plain_abort, plain_destinations, plain_match, plain_rule, with_abort
from meshstat.mesh.ambient import service_waypoint, waypoint_virtual_services
from meshstat.mesh.clients import rule_namespaces
from meshstat.mesh.gateway_api import HTTP_KINDS, TCP_KINDS, attached_routes
from meshstat.mesh.ingress import bound_to, match_at, proxy_namespace, sees, serves
from meshstat.mesh.paths import Mesh
from meshstat.mesh.registry import RegisteredService
from meshstat.mesh.scope import (
    ClientScope,
    client_scope,
    cluster_miss,
    destination_rule,
    exported_to,
    first_for_port,
    imports_host,
    scope_miss,
    sidecar_cluster_miss,
    sidecar_virtual_services,
    tcp_at,
)
from meshstat.parsers.gateway_api import Gateway
from meshstat.parsers.k8s import DestinationRule, RouteDestination, VirtualService, WorkloadResource

__all__ = ["istio_gateway_reasons", "istio_rule_reasons", "routed_ports", "unmeshed_by_rule"]

_OTHER_NS = "\x00any other namespace"
#: how a row names the namespaces that ``_OTHER_NS`` stands for
_OTHERS = "namespaces that no rule names"
_Split = tuple[tuple[str, Fraction], ...]


def _label(d: RouteDestination) -> str:
    return d.subset or d.host


#: a selector no pod matches: the pods of a Service another one's destination does not reach
NO_POD = (("\x00", "\x00"),)


def _host_pods(mesh: Mesh, info: RegisteredService, d: RouteDestination) -> tuple[tuple[str, str], ...]:
    """Which of ``info``'s pods a destination without subset names: all of them when it is ``info`` itself;
    those that its own Service selects when it is another Service of the namespace (``reviews`` routed to
    ``reviews-v1``); none otherwise (another namespace, a ServiceEntry, an unknown host)."""
    other = mesh.resolve_host(d.host, info.namespace)
    if other is info:
        return ()
    sel = other.service.selector if other is not None and other.service is not None else None
    return sel if sel and other is not None and other.namespace == info.namespace else NO_POD


def _weights(dests: tuple[RouteDestination, ...], label: Callable[[RouteDestination], str] = _label) -> _Split:
    if len(dests) == 1:
        return ((label(dests[0]), Fraction(1)),)
    total = sum(d.weight or 0 for d in dests)
    out: dict[str, int] = {}  # whole weights per label, one fraction each at the end
    for d in dests:
        if d.weight:
            out[label(d)] = out.get(label(d), 0) + d.weight
    return tuple((k, ratio(w, total)) for k, w in out.items())


def unmeshed_by_rule(ctx: AuditContext, info: RegisteredService, port: int, kube: list[ClientClass],
                     vs: VirtualService) -> list[ClientClass]:
    """The clients without a sidecar that ``vs``'s split is meant for: those outside the namespaces of consumer
    routes of ``info:port`` that a sidecar there would apply instead of ``vs`` (:func:`meshstat.audit.gateway.unmeshed`
    compares them with the route)."""
    consumers = consumer_namespaces(ctx, info, port, vs) if kube else set()
    return [c for c in kube if c.namespace not in consumers] if consumers else kube


def routed_ports(ctx: AuditContext) -> list[tuple[RegisteredService, int, VirtualService, _Split,
                                                  dict[str, tuple[tuple[str, str], ...]]]]:
    """(Service, port, its VirtualService, the configured split, destination label -> the labels of the pods it
    names) of every VirtualService-routed Service port."""
    out = []
    for info, vss in ctx.virtual_service_hosts().values():
        for sp in info.ports:
            vs = first_for_port(vss, sp.port, ctx.mesh.port_protocol(sp)) or vss[0]
            dests = plain_destinations(vs, ctx.mesh, info, sp)
            if dests:
                labels_of = _labels_of(ctx.mesh, info, dests, destination_rule(ctx.mesh, info, info.namespace))
                out.append((info, sp.port, vs, _weights(dests), labels_of))
    return out


def istio_rule_reasons(ctx: AuditContext) -> Iterator[Divergence]:
    """The rows of every VirtualService-routed Service port (see the module docstring)."""
    mesh = ctx.mesh
    hosts = ctx.virtual_service_hosts()
    by_kind: dict[str, list[ClientClass]] = {}
    for c in ctx.classes:
        by_kind.setdefault(c.kind, []).append(c)
    sidecar_ns = SidecarGroups(mesh, by_kind.get("sidecar", []))
    ambient = by_kind.get("ambient")
    for info, vss in ctx.share(hosts.values()):
        for sp in info.ports:
            vs = first_for_port(vss, sp.port, mesh.port_protocol(sp)) or vss[0]  # as a sidecar serves the port
            dests = plain_destinations(vs, mesh, info, sp)
            counted = bool(dests)
            if dests:
                if not vs.http and mesh.port_protocol(sp) == "auto":
                    ctx.note(f"port {sp.name or sp.port} of {info.short} declares no protocol and Istio sniffs "
                             f"it: VirtualService {vs.meta.ref}'s tcp rules split TCP connections (audited); "
                             "HTTP calls there take the default route over all pods")
                yield from _service_port(ctx, info, sp.port, vs, dests, by_kind, sidecar_ns)
            elif vs.tcp and not vs.http and mesh.port_protocol(sp) == "http":
                ctx.note(f"VirtualService {vs.meta.ref} has tcp rules only: port {sp.name or sp.port} of "
                         f"{info.short} is HTTP, where Istio builds no route from them (the default route "
                         "over all pods applies)")
            if not dests and ambient and (wp := service_waypoint(mesh, info)).gateway is not None:
                # the first VirtualService has no rule for this port; the waypoint takes one of another's
                rows = list(_waypoint_rows(ctx, info, sp.port, None, (), (), (), {}, None, wp.gateway, ambient))
                counted = counted or bool(rows)
                yield from rows
            if len(vss) > 1:
                splits = [(v, d) for v in vss if v is not vs and (d := plain_destinations(v, mesh, info, sp))]
                counted = counted or bool(splits)
                yield from _shadowed_rows(ctx, info, sp.port, splits, vs if dests else None, by_kind, sidecar_ns)
            ctx.audited += counted


def _shadowed_rows(ctx: AuditContext, info: RegisteredService, port: int,
                   splits: list[tuple[VirtualService, tuple[RouteDestination, ...]]], audited_vs: VirtualService | None,
                   by_kind: dict[str, list[ClientClass]], sidecar_ns: SidecarGroups) -> Iterator[Divergence]:
    """``other-virtualservice-wins`` of the VirtualServices (``splits``: each with its destinations for a plain
    request) that a proxy seeing them does not apply to ``info:port``, because another one for the host comes first
    there: the oldest (Istio applies one VirtualService per host and port; ``istioctl analyze`` warns of it as
    IST0109, "merge the conflicting VirtualServices"), or one private to the clients' namespace.

    For each sidecar client group (as :func:`_service_port` groups them) and for the ambient clients of the
    Service's waypoint: the first VirtualService there (``scope.first_for_port``; at the waypoint, the first
    with rules of the port's kind, as :func:`_waypoint_view` takes it) against each later one the proxy sees.
    The effective split is the first one's for a plain request, or ``404 no route`` when none of its rules
    matches one (rules for other paths only). ``audited_vs``, whose rows :func:`_service_port` writes,
    is left out.
    """
    mesh = ctx.mesh
    sp = info.port(port)
    if sp is None:
        return
    tcp = mesh.port_protocol(sp) == "tcp"
    cands = [(v, _weights(d)) for v, d in splits if v is not audited_vs]
    if not cands:
        return

    own_dr = destination_rule(mesh, info, info.namespace)

    def plain(first: VirtualService, ns: str) -> _Split | None:
        """What the first one does with a plain request from a proxy of ``ns``: its split with its own failures and
        abort (as :func:`_other_virtual_service` has it), its redirect or direct response, or a 404."""
        got = _split_of(ctx, info, port, first, destination_rule(mesh, info, ns), own_dr, ns)
        if got is not None:
            return got[1][1] if got[1] is not None else got[0]
        if tcp:
            return None
        rule = plain_match(first, info, sp)
        return ((f"{rule.terminal} (no destination)" if rule is not None and rule.terminal else "404 no route",
                 Fraction(1)),)

    def row(v: VirtualService, first: VirtualService, conf: _Split, eff: _Split, where: str,
            clients: str, n: int, kind: str) -> Divergence:
        miss = "; a plain request matches none of its rules: 404" if eff[0][0] == "404 no route" else ""
        return Divergence(f"{info.namespace}/{info.name}:{port}", clients, n, conf, eff,
                          "other-virtualservice-wins",
                          f"{where} VirtualService {first.meta.ref} for {info.fqdn}, which comes first: "
                          f"VirtualService {v.meta.ref} is not applied" + miss,
                          (f"merge the routes of VirtualService {v.meta.ref} into {first.meta.ref}, or delete one",),
                          kind)

    groups: dict[tuple[int, int, _Split], tuple[VirtualService, VirtualService, _Split, _Split, list[Part]]] = {}
    special = rule_namespaces(mesh, info, sidecars=False) if by_kind.get("sidecar") else set()
    for c, members, kind in sidecar_ns.split(special) if by_kind.get("sidecar") else []:
        ns = _OTHER_NS if kind == "generic" else c.namespace
        scope = client_scope(mesh, c.workloads[0] if c.namespace == ns else None, ns)
        if scope_miss(mesh, scope, info, port) is not None:
            continue
        found = sidecar_virtual_services(mesh, scope, info, port)
        first = first_for_port(found, port, mesh.port_protocol(sp))
        if first is None:
            continue
        for v, conf in cands:
            if v is not first and any(x is v for x in found):
                eff = plain(first, ns)
                if eff is not None and eff != conf:
                    g = groups.setdefault((id(v), id(first), eff), (v, first, conf, eff, []))
                    g[4].append(members)
    for v, first, conf, eff, parts in groups.values():
        yield row(v, first, conf, eff, "the clients' sidecars apply", *sidecar_ns.label(parts), "sidecar")
    amb = by_kind.get("ambient")
    wp = service_waypoint(mesh, info).gateway if amb else None
    if amb and wp is not None and not _producer_routes(ctx, info, port, tcp):
        found_w = [v for v in waypoint_virtual_services(mesh, info, wp)
                   if (tcp_at(v, port) if tcp else v.http)]
        if found_w:
            first = found_w[0]
            for v, conf in cands:
                if v is not first and any(x is v for x in found_w):
                    eff = plain(first, wp.meta.namespace)
                    if eff is not None and eff != conf:
                        yield row(v, first, conf, eff, f"waypoint {wp.meta.ref} applies", *clients_label(amb),
                                  "ambient + waypoint")


def istio_gateway_reasons(ctx: AuditContext) -> Iterator[Divergence]:
    """The rows of VirtualService rules bound to an Istio Gateway whose destinations fail for the clients that come
    in through it.

    A server of the Gateway routes the HTTP rules of the VirtualServices its ``spec.gateways`` name
    (:func:`meshstat.mesh.ingress.bound_to`) when it is an HTTP server and its hosts meet theirs
    (:func:`~meshstat.mesh.ingress.serves`); rules whose matches all name other gateways are not
    its. Each destination that is a Kubernetes Service is checked as
    :func:`meshstat.mesh.ingress.ingress_paths` routes it, with the DestinationRule seen from the
    Gateway's namespace: a subset that it lacks (503 NC) or that selects no ready pod (503), or a port
    the Service does not have (no port given on a Service of several ports: the server's port, as
    ``GetDestinationCluster`` takes the listener's; 503 NC), fails its share. One row per (Gateway
    server, rule); a rule without destinations (a redirect, a fault) splits nothing, and other hosts
    (ServiceEntries) are not checked.
    """
    mesh = ctx.mesh
    igws = ctx.gateway_objects.istio_gateways
    if not igws:
        return
    for vs in ctx.share(mesh.manifests.virtual_services):
        for igw in (g for g in igws if bound_to(vs, g)):
            ports = dict.fromkeys(x.port for x in igw.servers if serves(x, vs, igw))  # one listener per port
            if ports and not sees(mesh, vs, igw):
                row = _unseen_row(ctx, vs, igw, next(iter(ports)))
                if row is not None:
                    yield row
                continue
            for port in ports:
                for rule in vs.http:
                    if rule.terminal is not None or not rule.destinations or (rule.matches and not any(
                            match_at(mesh, m, vs, igw, port) for m in rule.matches)):
                        continue
                    row = _gateway_rule_row(ctx, vs, igw, port, rule)
                    if row is not None:
                        yield row


def _unseen_row(ctx: AuditContext, vs: VirtualService, igw: Any, port: int) -> Divergence | None:
    """``not-exported-to-namespace``: the gateway pods' namespace does not see ``vs`` (its ``exportTo``), so its
    first rule's split is not applied there: another VirtualService bound to the Gateway that the pods see and
    that shares a host serves the requests (its first rule's split), else they get no route (404)."""
    rule = next((r for r in vs.http if r.destinations and r.terminal is None), None)
    if rule is None:
        return None
    mesh = ctx.mesh
    gns = proxy_namespace(mesh, igw)
    name = _namer(rule.destinations)
    configured = _weights(rule.destinations, name)
    # the gateway merges the routes of the VirtualServices of a host: a plain request takes the first catch-all rule
    other, orule = next(((v, r) for v in mesh.manifests.virtual_services if v is not vs and bound_to(v, igw)
                         and sees(mesh, v, igw)
                         and any(a == "*" or b == "*" or a == b for a in v.hosts for b in vs.hosts)
                         for r in v.http if not r.matches and r.destinations and r.terminal is None), (None, None))
    if other is not None and orule is not None:
        effective = _weights(orule.destinations, name)
        if effective == configured:
            return None
        served = f"VirtualService {other.meta.ref} serves its hosts there"
    else:
        effective, served = (("404", Fraction(1)),), "404 NR for its hosts"
    default = mesh.scope.mesh_config.vs_export_to
    return Divergence(f"Gateway {igw.meta.ref}:{port}", f"ingress through Istio Gateway {igw.meta.ref}", 0,
                      configured, effective, "not-exported-to-namespace",
                      f"VirtualService {vs.meta.ref} exportTo {list(vs.export_to or default)} does not reach namespace "
                      f"{gns} of the gateway pods (selector {dict(igw.selector)}): {served}",
                      (f"add namespace {gns} to spec.exportTo of VirtualService {vs.meta.ref}",), "ingress")


def _host_label(d: RouteDestination) -> str:
    return f"{d.host} {d.subset}" if d.subset else d.host


def _namer(dests: tuple[RouteDestination, ...]) -> Callable[[RouteDestination], str]:
    """How a gateway rule's rows name its destinations: by subset, or with their host when the rule has several
    (productpage v1, reviews v1)."""
    return _label if len({d.host for d in dests}) == 1 else _host_label


def _gateway_rule_row(ctx: AuditContext, vs: VirtualService, igw: Any, server_port: int, rule: Any
                      ) -> Divergence | None:
    mesh = ctx.mesh
    dests = rule.destinations
    name = _namer(dests)
    configured = _weights(dests, name)
    total = sum(d.weight or 0 for d in dests)
    eff: dict[str, Fraction] = {}
    found: list[tuple[str, str, str]] = []
    for d in dests:
        share = Fraction(1) if len(dests) == 1 else Fraction(d.weight or 0, total)
        if not share:
            continue
        label = name(d)
        info = mesh.resolve_host(d.host, vs.meta.namespace)
        got = None
        gw_ns = proxy_namespace(mesh, igw)
        if info is None:
            got = ("backend-missing", f"destination {d.host} names no Service or ServiceEntry: 503 NC no cluster",
                   f"create Service {d.host} or fix the destination of VirtualService {vs.meta.ref}")
        elif (miss := cluster_miss(mesh, info, gw_ns)) is not None:
            got = ("not-exported-to-namespace", f"{miss}, the gateway pods' namespace: 503 NC no cluster",
                   export_fix(info).replace("the clients' namespaces", f"namespace {gw_ns}"))
        elif info.service is not None:
            port = d.port or (info.ports[0].port if len(info.ports) == 1 else server_port)
            if info.port(port) is None:
                got = ("backend-missing", f"destination {d.host} port {port}: {info.short} has no such port "
                       f"(ports: {', '.join(str(p.port) for p in info.ports) or 'none'}): 503 NC no cluster",
                       f"give the destination {d.host} of VirtualService {vs.meta.ref} a port of {info.short}")
            elif d.subset:
                sub = _subset_view(ctx, info, port, vs, (d,), ((label, Fraction(1)),),
                                   destination_rule(mesh, info, proxy_namespace(mesh, igw)), None, {})
                got = (sub[0], sub[2], sub[3]) if sub is not None else None
        if got is not None:
            found.append(got)
        key = "503" if got is not None else label
        eff[key] = eff.get(key, Fraction(0)) + share
    rref = f"VirtualService {vs.meta.ref} http[{rule.index}]"
    got = with_abort((found[0][0], tuple(eff.items()), "; ".join(f[1] for f in found), "") if found else None,
                      configured, rule.abort, rref)
    if got is None:
        return None
    return Divergence(f"Gateway {igw.meta.ref}:{server_port}", f"ingress through Istio Gateway {igw.meta.ref}", 0,
                      configured, got[1], got[0], f"{rref}: {got[2]}",
                      tuple(dict.fromkeys(f[2] for f in found)) if found else (got[3],), "ingress")


def _service_port(ctx: AuditContext, info: RegisteredService, port: int, vs: VirtualService,
                  dests: tuple[RouteDestination, ...], by_kind: dict[str, list[ClientClass]],
                  sidecar_ns: SidecarGroups) -> Iterator[Divergence]:
    mesh = ctx.mesh
    service = f"{info.namespace}/{info.name}:{port}"
    configured = _weights(dests)
    dr_svc = destination_rule(mesh, info, info.namespace)
    labels_of = _labels_of(mesh, info, dests, dr_svc)
    pods = ctx.pod_split(info, port, labels_of)
    same = dict(pods) == dict(configured)
    vsref = f"VirtualService {vs.meta.ref}"

    # clients in a consumer route's namespace: that route's split is theirs (audit.gateway's rows)
    kube = unmeshed_by_rule(ctx, info, port, by_kind.get("kube-proxy", []), vs)
    if kube and not vs.applies_to_sidecars and route_split(ctx, info, port, None) is not None:
        kube = []  # the mesh applies the Service's own routes: their rows compare these clients (audit.gateway)
    if kube and not ctx.observed_kube_proxy:  # else the real rules say
        kpods = ctx.kube_proxy_split(info, port, labels_of, pods)
        if kpods != configured:
            yield no_sidecar_row(ctx, info, port, kube, configured, kpods, vsref)
    if by_kind.get("ambient"):
        wp = service_waypoint(mesh, info)
        if wp.gateway is None and not same:
            yield no_waypoint_row(ctx, info, port, by_kind["ambient"], configured, pods, wp)
        elif wp.gateway is not None:
            yield from _waypoint_rows(ctx, info, port, vs, dests, configured, pods, labels_of, dr_svc, wp.gateway,
                                      by_kind["ambient"])
    sidecars = by_kind.get("sidecar", [])
    if not sidecars:
        return
    special = rule_namespaces(mesh, info, sidecars=False)
    by_source = any(m.source_labels or m.source_namespace is not None for r in vs.http for m in r.matches)
    if any(m.source_labels for r in vs.http for m in r.matches):  # the clients' labels decide: no stand-in
        special = special | {c.namespace for c in sidecars}
    groups: dict[tuple[str, _Split, _Split], tuple[str, list[Part], set[str]]] = {}
    for c0, members, kind in sidecar_ns.split(special):  # in order: a row's detail is its first group's
        generic = kind == "generic"
        parts = [(c0, dests, configured, labels_of, pods)]
        if by_source and kind == "own":  # rules that match on the clients' labels or namespace: each client's own
            parts = _by_client_rule(ctx, info, port, vs, c0, parts[0], dr_svc)
        for c, c_dests, c_conf, c_labels, c_pods in parts:
            got = _sidecar_view(ctx, info, port, vs, c_dests, c_conf, c_pods, _OTHER_NS if generic else c.namespace, c,
                                c_labels, dr_svc)
            if got is None:
                continue
            reason, eff, detail, fix = got
            if generic:  # texts that name the stand-in namespace (scope_miss's) name the group
                detail, fix = (x.replace(f"namespace {_OTHER_NS}", _OTHERS).replace(_OTHER_NS, _OTHERS)
                               for x in (detail, fix))
            elif kind == "shape":
                fix = sidecar_ns.fix_for(fix, members)
            g = groups.setdefault((reason, eff, c_conf), (detail, [], set()))
            g[1].append([c] if kind == "own" else members)
            g[2].add(fix)
    for (reason, eff, conf), (detail, parts, fixes) in groups.items():
        clients, n = sidecar_ns.label(parts)
        yield Divergence(service, clients, n, conf, eff, reason, detail, tuple(sorted(fixes)), "sidecar")


def _by_client_rule(ctx: AuditContext, info: RegisteredService, port: int, vs: VirtualService, c: ClientClass,
                    plain: tuple[Any, ...], dr_svc: DestinationRule | None) -> list[tuple[Any, ...]]:
    """``c``'s workloads grouped by the rule of ``vs`` that a plain request from each meets, where rules match on
    the client's labels or namespace (``sourceLabels``, ``sourceNamespace``), as ``Mesh._sidecar_route`` evaluates
    them: (the group, its rule's destinations, configured split, labels, pod split); ``plain`` is the part of the
    rule any client meets. A workload whose rule routes nothing (a redirect, or no rule: a 404) is left out."""
    mesh = ctx.mesh
    sp = info.port(port)
    by_rule: dict[int, tuple[Any, list[WorkloadResource]]] = {}
    for w in c.workloads:
        rule = plain_match(vs, info, sp, w.labels, c.namespace)
        by_rule.setdefault(id(rule), (rule, []))[1].append(w)
    out = []
    anyone = plain_rule(vs, mesh, info, sp)
    for rule, ws in by_rule.values():
        cc = replace(c, workloads=tuple(ws))
        if rule is anyone:
            out.append((cc, *plain[1:]))
        elif rule is not None and rule.terminal is None and rule.destinations:
            labels = _labels_of(mesh, info, rule.destinations, dr_svc)
            out.append((cc, rule.destinations, _weights(rule.destinations), labels, ctx.pod_split(info, port, labels)))
    return out


def _labels_of(mesh: Mesh, info: RegisteredService, dests: tuple[RouteDestination, ...],
               dr: DestinationRule | None) -> dict[str, tuple[tuple[str, str], ...]]:
    """Destination label -> the labels of the Service's pods it names (its subset's, or :func:`_host_pods`)."""
    out = {}
    for d in dests:
        s = dr.subset(d.subset) if (dr is not None and d.subset) else None
        out[_label(d)] = s.labels if s is not None else _host_pods(mesh, info, d)
    return out


def _waypoint_rows(ctx: AuditContext, info: RegisteredService, port: int, vs: VirtualService | None,
                   dests: tuple[RouteDestination, ...], configured: _Split, pods: _Split,
                   labels_of: dict[str, tuple[tuple[str, str], ...]], own_dr: DestinationRule | None,
                   waypoint: Gateway, classes: list[ClientClass]) -> Iterator[Divergence]:
    got = _waypoint_view(ctx, info, port, vs, dests, configured, pods, labels_of, own_dr, waypoint)
    if got is not None:
        conf, reason, eff, detail, fix = got
        clients, n = clients_label(classes)
        yield Divergence(f"{info.namespace}/{info.name}:{port}", clients, n, conf, eff, reason, detail, (fix,),
                         "ambient + waypoint")


def _waypoint_view(ctx: AuditContext, info: RegisteredService, port: int, vs: VirtualService | None,
                   dests: tuple[RouteDestination, ...], configured: _Split, pods: _Split,
                   labels_of: dict[str, tuple[tuple[str, str], ...]], own_dr: DestinationRule | None,
                   waypoint: Gateway) -> tuple[_Split, str, _Split, str, str] | None:
    """What the Service's waypoint makes of the split for its ambient clients (every one of them: ztunnel sends
    each connection to the waypoint), as :func:`meshstat.mesh.ambient.waypoint_route` routes.

    The waypoint applies a producer HTTPRoute of the Service first (the Gateway API rows report its
    failures); else the first VirtualService of :func:`~meshstat.mesh.ambient.waypoint_virtual_services`,
    with the DestinationRule its namespace sees; else its default route over all pods. ``vs`` is the
    VirtualService the other clients' rows compare with (the first for the host), or None when it has
    no rule for the port; a split of TCP rules applies at the waypoint on a TCP port only. When ``vs``
    does not apply there, the waypoint's own first VirtualService is the configured split.
    Returns ``(configured, reason, effective, detail, fix)``.
    """
    mesh = ctx.mesh
    wns = waypoint.meta.namespace
    wref = f"waypoint {waypoint.meta.ref}"
    sp = info.port(port)
    tcp = mesh.port_protocol(sp) == "tcp" if sp is not None else False
    if _producer_routes(ctx, info, port, tcp):
        return None
    # the first VirtualService with rules of the port's kind (buildWaypointInboundHTTPRouteConfig takes the
    # first with http rules; getWaypointTCPRoutes scans them all for a tcp rule of the port)
    found = [v for v in waypoint_virtual_services(mesh, info, waypoint)
             if (tcp_at(v, port) if tcp else v.http)]
    dr = destination_rule(mesh, info, wns)
    if vs is None or not dests:  # no split for a plain request: the waypoint's own first one's
        got = _split_of(ctx, info, port, found[0], dr, own_dr, wns) if found else None
        return (got[0], *got[1]) if got is not None and got[1] is not None else None
    vsref = f"VirtualService {vs.meta.ref}"
    if not found:
        if pods == configured:
            return None
        if not vs.applies_to_sidecars:
            return (configured, "rule-bound-to-gateway-only", pods, f"{vsref} spec.gateways {list(vs.gateways)} "
                    f"lack `mesh`: {wref} uses its default route over all pods",
                    f"add `mesh` to spec.gateways of {vsref}")
        if vs.meta.namespace not in (wns, info.namespace):
            return (configured, "rule-not-at-waypoint", pods, f"{wref} applies VirtualServices of its own namespace "
                    f"{wns} or the Service's only, not of {vs.meta.namespace}: default route over all pods",
                    f"move {vsref} to namespace {info.namespace}")
        default = mesh.scope.mesh_config.vs_export_to
        return (configured, "not-exported-to-namespace", pods, f"{vsref} exportTo {list(vs.export_to or default)} "
                f"does not reach namespace {wns} of {wref}: default route over all pods",
                f"add namespace {wns} to spec.exportTo of {vsref}")
    if found[0] is not vs:
        other = found[0]
        got = _split_of(ctx, info, port, other, dr, own_dr, wns)
        if got is None:
            return None
        ours, broken = got
        eff = broken[1] if broken is not None else ours
        if eff == configured:
            return None
        return (configured, "other-virtualservice-wins", eff, f"{wref} applies VirtualService {other.meta.ref} for "
                f"{info.fqdn}, not {vsref}" + (f"; {broken[2]}" if broken is not None else ""),
                f"remove VirtualService {other.meta.ref} or give it the split of {vs.meta.ref}")
    got = _subset_view(ctx, info, port, vs, dests, configured, dr, own_dr, labels_of, wns,
                       plain_abort(vs, mesh, info, sp))
    return (configured, *got) if got is not None else None


def _producer_routes(ctx: AuditContext, info: RegisteredService, port: int, tcp: bool) -> bool:
    """Whether routes of the Service's own namespace (producer routes) attach to ``info:port``: a waypoint applies
    them before any VirtualService (their failures are the Gateway API rows)."""
    return any(r.meta.namespace == info.namespace
               for r in attached_routes(ctx.gateway_routes, info, port, TCP_KINDS if tcp else HTTP_KINDS))


def _split_of(ctx: AuditContext, info: RegisteredService, port: int, vs: VirtualService, dr: DestinationRule | None,
              own_dr: DestinationRule | None, ns: str) -> tuple[_Split, tuple[str, _Split, str, str] | None] | None:
    """``vs``'s configured split at ``port`` and what a proxy in namespace ``ns`` that sees ``dr`` makes of it
    (:func:`_subset_view`: None when it holds); None when ``vs`` routes no plain request there."""
    dests = plain_destinations(vs, ctx.mesh, info, info.port(port))
    if not dests:
        return None
    ours = _weights(dests)
    return ours, _subset_view(ctx, info, port, vs, dests, ours, dr, own_dr, _labels_of(ctx.mesh, info, dests, own_dr),
                              ns, plain_abort(vs, ctx.mesh, info, info.port(port)))


def _sidecar_view(ctx: AuditContext, info: RegisteredService, port: int, vs: VirtualService,
                  dests: tuple[RouteDestination, ...], configured: _Split, pods: _Split, ns: str,
                  cls: ClientClass, labels_of: dict[str, tuple[tuple[str, str], ...]],
                  own_dr: DestinationRule | None) -> tuple[str, _Split, str, str] | None:
    mesh = ctx.mesh
    client = cls.workloads[0] if cls.namespace == ns else None
    scope = client_scope(mesh, client, ns)
    vsref = f"VirtualService {vs.meta.ref}"
    who = _OTHERS if ns == _OTHER_NS else f"namespace {ns}"
    miss = scope_miss(mesh, scope, info, port)
    if miss is not None:
        # ALLOW_ANY: the PassthroughCluster connects to the ClusterIP, which kube-proxy balances
        eff = ctx.kube_proxy_split(info, port, labels_of, pods) if scope.outbound_policy == "ALLOW_ANY" \
            else (("refused (REGISTRY_ONLY)", Fraction(1)),)
        sc = scope.sidecar
        fix = (f"add {info.namespace}/{info.fqdn} to the egress hosts of Sidecar {sc.meta.ref}" if sc is not None
               else f"export Service {info.short} to {who}")
        return ("sidecar-egress-excludes", eff, f"{miss}; outbound policy {scope.outbound_policy}", fix) \
            if eff != configured else None
    if not vs.applies_to_sidecars:
        if pods == configured or route_split(ctx, info, port, None if ns == _OTHER_NS else ns) is not None:
            return None  # or the sidecars apply a Gateway API route of the Service: its rows (audit.gateway)
        return ("rule-bound-to-gateway-only", pods, f"{vsref} spec.gateways {list(vs.gateways)} lack `mesh`: "
                "sidecars use the default cluster over all pods", f"add `mesh` to spec.gateways of {vsref}")
    found = sidecar_virtual_services(mesh, scope, info, port)
    first = first_for_port(found, port, mesh.port_protocol(sp)) if (sp := info.port(port)) is not None else None
    if not found:
        if pods == configured:
            return None
        default = mesh.scope.mesh_config.vs_export_to
        if not exported_to(vs.export_to, default, vs.meta.namespace, ns):
            return ("not-exported-to-namespace", pods, f"{vsref} exportTo {list(vs.export_to or default)} does not "
                    f"reach {who}: default cluster over all pods", f"add the clients' namespaces to spec.exportTo "
                    f"of {vsref}")
        li = scope.listener(port)
        if not imports_host(li, ns, info.fqdn, vs.meta.namespace, virtual_service=True):
            sc = scope.sidecar
            return ("sidecar-egress-excludes", pods, f"{scope.label} does not import {vsref}'s namespace "
                    f"{vs.meta.namespace}: default cluster over all pods",
                    f"add {vs.meta.namespace}/{info.fqdn} to the egress hosts of Sidecar {sc.meta.ref}" if sc
                    else f"import {vsref}")
        return None
    if first is not vs and first is not None:
        return _other_virtual_service(ctx, info, port, vs, first, configured, pods, ns, cls, labels_of, own_dr)
    return _subset_view(ctx, info, port, vs, dests, configured, destination_rule(mesh, info, ns), own_dr, labels_of,
                        ns, plain_abort(vs, mesh, info, info.port(port)), scope)


def _subset_view(ctx: AuditContext, info: RegisteredService, port: int, vs: VirtualService,
                 dests: tuple[RouteDestination, ...], configured: _Split, dr: DestinationRule | None,
                 own_dr: DestinationRule | None, labels_of: dict[str, tuple[tuple[str, str], ...]],
                 ns: str | None = None, abort: tuple[int, str] | None = None, scope: ClientScope | None = None
                 ) -> tuple[str, _Split, str, str] | None:
    """What a proxy in namespace ``ns`` that applies ``vs`` and sees ``dr`` makes of its split: destinations it has no
    cluster for (:func:`~meshstat.mesh.scope.cluster_miss`: not exported to ``ns``; 503 NC, as
    ``Mesh._cluster_node``) and subsets that fail (503), or another DestinationRule's subsets (``_other_rule``),
    behind the rule's ``abort`` (:func:`~meshstat.audit.plain.with_abort`); None when the configured split holds."""
    mesh = ctx.mesh
    vsref = f"VirtualService {vs.meta.ref}"
    failing: dict[str, Fraction] = {}
    reasons: list[tuple[str, str, str]] = []
    for d in dests:
        t = mesh.resolve_host(d.host, vs.meta.namespace)
        if ns is not None and t is not None and (miss := cluster_miss(mesh, t, ns)) is not None:
            reasons.append(("not-exported-to-namespace", f"{miss}: no cluster there, 503 NC", export_fix(t)))
            failing[_label(d)] = Fraction(1)
            continue
        tport = d.port or (t.ports[0].port if t is not None and len(t.ports) == 1 else port)
        if scope is not None and t is not None and scope.sidecar is not None and (
                miss := sidecar_cluster_miss(mesh, scope, t, tport, info, vs.meta.namespace)) is not None:
            reasons.append(("sidecar-egress-excludes", f"{miss}: no cluster there, 503 NC",
                            f"add an egress listener for port {tport} (or one without port) that imports "
                            f"{t.namespace}/{t.fqdn} to Sidecar {scope.sidecar.meta.ref}"))
            failing[_label(d)] = Fraction(1)
            continue
        if not d.subset:
            continue
        host, hdr, hown, hport = info, dr, own_dr, port
        if t is not None and t is not info:  # a subset of another host: its rule (seen from ns), pods and port
            host, hdr, hown = t, destination_rule(mesh, t, ns or t.namespace), destination_rule(mesh, t, t.namespace)
            hport = d.port or (t.ports[0].port if len(t.ports) == 1 else port)
        s = hdr.subset(d.subset) if hdr is not None else None
        if s is None and hdr is None and ns is not None and hown is not None and hown.subset(d.subset):
            reasons.append(("not-exported-to-namespace", f"subset {d.subset!r} is defined by DestinationRule "
                            f"{hown.meta.ref}, which is not exported to namespace {ns} (exportTo "
                            f"{list(hown.export_to)}): 503 NC", f"add the clients' namespaces to spec.exportTo of "
                            f"DestinationRule {hown.meta.ref}"))
            failing[_label(d)] = Fraction(1)
        elif s is None:
            reasons.append(("subset-undefined", f"subset {d.subset!r} is not defined by "
                            + (f"DestinationRule {hdr.meta.ref}" if hdr else "any DestinationRule") + ": 503 NC",
                            f"define subset {d.subset} in " + (f"DestinationRule {hdr.meta.ref}" if hdr
                                                                else f"a DestinationRule for {host.short}")))
            failing[_label(d)] = Fraction(1)
        elif not ctx.has_pods(host, hport, s.labels):
            idle = ctx.idle_pods(host, hport, s.labels)
            reasons.append(("subset-without-pods", f"subset {d.subset!r} (labels {dict(s.labels)}) selects no "
                            f"{'ready ' if idle else ''}pods: 503 no_healthy_upstream",
                            f"{'make the pods' if idle else 'deploy pods'} with labels {dict(s.labels)} "
                            f"{'ready' if idle else ''}{' ' if idle else ''}or drop subset {d.subset} from {vsref}"))
            failing[_label(d)] = Fraction(1)
    if not failing:
        return with_abort(_other_rule(ctx, info, port, dests, configured, dr, own_dr, labels_of), configured, abort,
                           vsref)
    eff: dict[str, Fraction] = {}
    for label, f in configured:
        key = "503" if label in failing else label
        eff[key] = eff.get(key, Fraction(0)) + f
    reason, _, fix = reasons[0]
    return with_abort((reason, tuple(eff.items()), "; ".join(r[1] for r in reasons), fix), configured, abort, vsref)


def _other_virtual_service(ctx: AuditContext, info: RegisteredService, port: int, vs: VirtualService,
                           other: VirtualService, configured: _Split, pods: _Split, ns: str, cls: ClientClass,
                           labels_of: dict[str, tuple[tuple[str, str], ...]], own_dr: DestinationRule | None
                           ) -> tuple[str, _Split, str, str] | None:
    """``other-virtualservice-wins``: these clients' sidecars use another VirtualService for the host (one private
    to their namespace, or exported to it by name, comes before the public ones: ``scope.mesh_virtual_services``).

    The effective split is the other one's default route, with its own subset failures (503s) where the
    DestinationRule these clients see lacks its subsets or they select no pods.
    """
    odests = plain_destinations(other, ctx.mesh, info, info.port(port))
    if not odests:
        return None  # no route for a plain request there: nothing to compare
    ours = _weights(odests)
    # the other one's own subset failures (it comes first for these clients: no recursion beyond this)
    broken = _sidecar_view(ctx, info, port, other, odests, ours, pods, ns, cls, labels_of, own_dr)
    eff = broken[1] if broken is not None else ours
    if eff == configured:
        return None
    extra = f"; {broken[2]}" if broken is not None else ""
    return ("other-virtualservice-wins", eff, f"the clients' sidecars use VirtualService {other.meta.ref} for "
            f"{info.fqdn} (exportTo {list(other.export_to) or ['*']}), not VirtualService {vs.meta.ref}" + extra,
            f"remove VirtualService {other.meta.ref} or give it the split of {vs.meta.ref}")


def _other_rule(ctx: AuditContext, info: RegisteredService, port: int, dests: tuple[RouteDestination, ...],
                configured: _Split, dr: DestinationRule | None, own: DestinationRule | None,
                labels_of: dict[str, tuple[tuple[str, str], ...]]) -> tuple[str, _Split, str, str] | None:
    """``destination-rule-differs``: the clients see another DestinationRule than the Service's namespace (one in
    their own namespace, ``scope.destination_rule``), and its subsets select other pods.

    Each destination's share goes to the pods its subset selects in the clients' rule, evenly per pod
    (the endpoint balancer's long run, as :meth:`AuditContext.pod_split`), and each pod is named by
    the routed destination, else the subset of the Service's own rule, that selects it (``unrouted
    <version>`` when none does).
    """
    if dr is None or own is None or dr is own:
        return None
    names = {**labels_of, **{x.name: x.labels for x in own.subsets if x.name not in labels_of}}
    eff: dict[str, Fraction] = {}
    for label, share in configured:
        d = next(x for x in dests if _label(x) == label)
        sub = dr.subset(d.subset) if d.subset else None
        for name, f in ctx.pod_split(info, port, names, sub.labels if sub is not None else ()):
            eff[name] = eff.get(name, Fraction(0)) + share * f
    effective = tuple(eff.items())
    if dict(effective) == dict(configured):
        return None
    differ = [f"subset {d.subset!r} selects {dict(dr.subset(d.subset).labels)}"  # type: ignore[union-attr]
              for d in dests if d.subset and dr.subset(d.subset) is not None and own.subset(d.subset) is not None
              and dr.subset(d.subset).labels != own.subset(d.subset).labels]  # type: ignore[union-attr]
    return ("destination-rule-differs", effective,
            f"the clients see DestinationRule {dr.meta.ref}, not {own.meta.ref}: " + ("; ".join(differ) or
                                                                                       "its subsets select other pods"),
            f"make the subsets of DestinationRule {dr.meta.ref} select what {own.meta.ref}'s do, or narrow its "
            "exportTo")
