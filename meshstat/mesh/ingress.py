"""Ingress paths: a client outside the mesh -> the ingress gateway -> its routes -> the backends.

:func:`ingress_paths` gives, for a Service that an ingress route sends requests to, one
:class:`~meshstat.mesh.layers.ClientPath` of kind ``ingress`` per gateway listener:

* **Gateway API**: a ``Gateway`` listener (HTTP or HTTPS) and the routes attached to it (a parentRef to
  the Gateway, matching ``sectionName``/``port``, a namespace its ``allowedRoutes`` admits, a route kind
  it admits, a hostname that intersects the listener's: ``gateway_types.go``: ``Listener``,
  ``AllowedRoutes``; ``httproute_types.go``: ``HTTPRouteSpec.Hostnames``). Istio makes one Envoy virtual
  host per hostname (``route_collections.go``), so Envoy's virtual host choice (exact, then the longest
  wildcard, then ``*``: :func:`meshstat.mesh.envoy.find_virtual_host`) picks the routes a request is
  matched against; then :func:`meshstat.mesh.gateway_api.httproute_split` with ReferenceGrants enforced.
* **Istio Gateway + VirtualService**: a ``networking.istio.io`` ``Gateway`` server and the
  VirtualServices whose ``spec.gateways`` name it (``name`` in the VirtualService's namespace, or
  ``namespace/name``; istio/api ``virtual_service.proto``: ``gateways``), their ``http`` rules in order
  (VirtualServices of one host merged in creation order, here manifest order), the first rule whose
  match holds (a match's own ``gateways`` must name this gateway), then the same weighted destinations
  and subset clusters as a sidecar.

The layers: the client connects to the gateway's Service (a LoadBalancer or NodePort that Istio's
gateway controller creates for a Gateway API ``Gateway`` as ``<name>-<class>``,
``gatewaycommon.GetDefaultName``; the installation's ``istio-ingressgateway`` for an Istio ``Gateway``);
kube-proxy or the cloud load balancer picks a gateway pod per connection; every gateway pod runs the same
configuration, so that choice does not change where requests go; the gateway's Envoy then routes each
request like a sidecar and connects to the chosen pod directly.

When the request is the default one (``GET /``, no headers) and does not reach the Service, the path is
shown for the request of the first match (in precedence order) of a rule that sends to the Service, and a
note says so; ``--path``/``--header`` choose another request.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from meshstat.mesh.envoy import find_virtual_host
from meshstat.mesh.gateway_api import (
    GatewaySplit,
    httproute_split,
    match_request,
    precedence,
    replaced_warnings,
    split_layers,
    split_node,
)
from meshstat.mesh.layers import ClientPath, Layer, failure_warnings, with_fault_abort
from meshstat.mesh.registry import RegisteredService, labels_subset
from meshstat.mesh.scope import exported_to
from meshstat.model import Backend, Node, Provenance, Route
from meshstat.parsers.gateway_api import (
    Gateway,
    GatewayRoute,
    IstioGateway,
    IstioServer,
    Listener,
    gateway_objects,
)
from meshstat.parsers.k8s import Diagnostic, HTTPMatch, HTTPRoute, VirtualService

__all__ = ["bound_to", "ingress_paths", "match_at", "proxy_namespace", "sees", "serves"]



def ingress_paths(
    mesh: Any,
    info: RegisteredService,
    port: int,
    *,
    path: str = "/",
    headers: Mapping[str, str] | None = None,
    method: str = "GET",
    diags: list[Diagnostic] | None = None,
) -> list[ClientPath]:
    """Every ingress path whose routes send requests to ``info:port``, for the request given.

    Parameters
    ----------
    mesh : meshstat.mesh.Mesh
        The manifests as a mesh.
    info, port
        The Service the table is about.
    path, headers, method
        The request the client outside sends (``headers`` may carry ``host``).
    diags : list of Diagnostic, optional
        Receives warnings (500 and 404 shares, unmodelled selectors).
    """
    diags = diags if diags is not None else []
    hdrs = {str(k).lower(): str(v) for k, v in (headers or {}).items()}
    default_request = path == "/" and method.upper() == "GET" and not (set(hdrs) - {"host"})
    objs = gateway_objects(mesh.manifests)
    diags.extend(replaced_warnings(objs))
    out: list[ClientPath] = []
    for gw in objs.gateways:
        if gw.is_waypoint_class:  # a waypoint serves mesh traffic (mesh.ambient), not clients outside
            continue
        for li in gw.listeners:
            cp = _gateway_api_path(mesh, objs, gw, li, info, port, path, hdrs, method, default_request, diags)
            if cp is not None:
                out.append(cp)
    for igw in objs.istio_gateways:
        for srv in igw.servers:
            cp = _istio_gateway_path(mesh, igw, srv, info, port, path, hdrs, method, default_request, diags)
            if cp is not None:
                out.append(cp)
    diags.extend(failure_warnings(out, f"{info.short}:{port}"))
    return out


# --------------------------------------------------------------------------- Gateway API


def _intersect(route_host: str, listener_host: str | None) -> str | None:
    """The hostname a route serves on a listener (``HTTPRouteSpec.Hostnames``), or None if none."""
    if listener_host is None or route_host == listener_host:
        return route_host
    if route_host.startswith("*.") and listener_host.endswith(route_host[1:]):
        return listener_host
    if listener_host.startswith("*.") and route_host.endswith(listener_host[1:]):
        return route_host
    return None


def _hostnames(route: GatewayRoute, li: Listener) -> list[str]:
    if not route.hostnames:
        return [li.hostname or "*"]
    return [h for h in (_intersect(x, li.hostname) for x in route.hostnames) if h is not None]


def _attached(mesh: Any, route: GatewayRoute, gw: Gateway, li: Listener, notes: list[str]) -> bool:
    if route.kind not in li.kinds():
        return False
    ref = next(
        (
            p
            for p in route.parents
            if p.is_gateway
            and p.name == gw.meta.name
            and p.namespace == gw.meta.namespace
            and p.section_name in (None, li.name)
            and p.port in (None, li.port)
        ),
        None,
    )
    if ref is None:
        return False
    ns = route.meta.namespace
    if li.allowed_from == "None" or (li.allowed_from == "Same" and ns != gw.meta.namespace):
        return False
    if li.allowed_from == "Selector":
        nso = mesh.namespace(ns)
        labels = nso.labels if nso is not None else {}
        if any(labels.get(k) != v for k, v in li.allowed_selector):
            return False
        if li.selector_expressions:
            notes.append(
                f"listener {li.name} of Gateway {gw.meta.ref}: namespace selector matchExpressions not "
                "evaluated (assumed to admit the route)"
            )
    return bool(_hostnames(route, li))


def _reaches(split: GatewaySplit, info: RegisteredService, port: int) -> bool:
    return any(
        b.destination is not None and b.destination.host == info.fqdn and b.destination.port == port
        for b in split.backends
    )


def _gateway_api_path(
    mesh: Any,
    objs: Any,
    gw: Gateway,
    li: Listener,
    info: RegisteredService,
    port: int,
    path: str,
    hdrs: dict[str, str],
    method: str,
    default_request: bool,
    diags: list[Diagnostic],
) -> ClientPath | None:
    if li.protocol.upper() not in ("HTTP", "HTTPS"):
        return None
    notes: list[str] = []
    attached = [r for r in objs.routes if _attached(mesh, r, gw, li, notes)]
    sends = [
        (r, rule, m)
        for r in attached
        for rule in r.rules
        for m in (rule.matches or (None,))
        if any(
            b.weight > 0
            and b.is_service
            and b.name == info.name
            and b.namespace == info.namespace
            and b.port == port
            for b in rule.backends
        )
    ]
    if not sends:
        return None
    parent = f"Gateway {gw.meta.ref} listener {li.name} ({li.protocol} {li.port})"

    def split_for(p: str, h: dict[str, str], m: str) -> tuple[GatewaySplit, str, str]:
        domains = list(dict.fromkeys(d for r in attached for d in _hostnames(r, li)))
        authority = h.get("host")
        if authority is None:
            authority = next((d for d in domains if not d.startswith("*")), None)
            authority = authority or (
                f"www{domains[0][1:]}" if domains and domains[0].startswith("*.") else "*"
            )
        host = authority.split(":", 1)[0] if not authority.startswith("[") else authority
        rc = {"virtual_hosts": [{"name": d, "domains": [d]} for d in domains]}
        vh, why = find_virtual_host(rc, host)
        chosen = [] if vh is None else [r for r in attached if vh["name"] in _hostnames(r, li)]
        sp = httproute_split(
            chosen,
            parent,
            path=p,
            headers=h,
            method=m,
            registry=mesh.registry,
            grants=objs.grants,
            enforce_grants=True,
            domain=mesh.domain,
        )
        return sp, host, (f"virtual host {vh['name']!r}: {why}" if vh is not None else f"404: {why}")

    split, host, vh_why = split_for(path, hdrs, method)
    if default_request and not _reaches(split, info, port):
        for _, _, m in precedence(list(dict.fromkeys(r for r, _, _ in sends))):
            req = match_request(m)
            if req is None:
                continue
            h = {**req[1], **({"host": hdrs["host"]} if "host" in hdrs else {})}
            cand, chost, cwhy = split_for(req[0], h, req[2])
            if _reaches(cand, info, port):
                split, host, vh_why = cand, chost, cwhy
                notes.append(
                    f"request {req[2]} {req[0]}"
                    + "".join(f", {k}: {v}" for k, v in req[1].items())
                    + f" (the first match of a rule of {parent} that sends to {info.short}; "
                    "give --path/--header to choose another)"
                )
                break
    label = f"ingress (Gateway {gw.meta.name}:{li.port})"
    layers = [
        Layer(
            "client",
            "outside the mesh",
            f"connect() to the address of Gateway {gw.meta.ref}, port {li.port}; Host {host}",
            "connection",
        ),
        Layer(
            "load balancer",
            f"Service {gw.meta.name}-{gw.class_name}",
            "the gateway's Service (Istio's gateway "
            "controller names it <gateway>-<class>) spreads connections over the gateway pods (kube-proxy or "
            "the cloud load balancer); every gateway pod has the same configuration, so the pod picked does "
            "not change the split",
            "connection",
        ),
        Layer(
            "Gateway listener",
            f"{gw.meta.ref} {li.name}",
            f"{li.protocol} port {li.port}, hostname "
            f"{li.hostname or '*'}, routes from {li.allowed_from} namespace(s); {vh_why}",
            "request",
            f"{gw.meta.source}:{li.line}",
        ),
    ]
    layers += [Layer(*row) for row in split_layers(split)]
    notes += list(split.notes)
    client_ns = gw.meta.namespace
    root = split_node(
        split,
        lambda d: mesh._cluster_node(
            d, info, li.port, client_ns, "request", split.route, diags, notes, layers
        ),
    )
    layers.append(
        Layer(
            "network",
            "pod IP",
            "the gateway's Envoy connects to the chosen pod IP:targetPort directly",
            "connection",
        )
    )
    prov = Provenance(gw.meta.source, li.line)
    return ClientPath(
        "ingress",
        label,
        Route(root=root, name=label, provenance=prov, notes=tuple(dict.fromkeys(notes))),
        [f"outside the mesh via Gateway {gw.meta.ref}"],
        layers,
    )


# --------------------------------------------------------------------------- Istio Gateway + VirtualService


def proxy_namespace(mesh: Any, igw: IstioGateway) -> str:
    """The namespace of the gateway pods that serve ``igw``: what their proxy reads is seen from there.

    The pods are the workloads ``spec.selector`` picks, in any namespace (Istio's default,
    ``PILOT_SCOPE_GATEWAY_TO_NAMESPACE`` off), the Gateway's own namespace first. A gateway proxy reads
    the VirtualServices and DestinationRules exported to its namespace (``VirtualServicesForGateway``
    and ``DestinationRule`` of its ``ConfigNamespace``), so a rule exported to ``.`` of the Gateway's
    namespace is not seen by an ingress gateway installed in ``istio-system``. When no such pods are in
    the manifests, the Gateway's own namespace.
    """
    memo = mesh.__dict__.setdefault("_gateway_proxy_namespace", {})
    got = memo.get(id(igw))
    if got is None:
        found = {w.meta.namespace for w in mesh.owners.leaves
                 if igw.selector and labels_subset(igw.selector, w.labels)}
        got = memo[id(igw)] = (igw.meta.namespace if igw.meta.namespace in found or not found
                               else sorted(found)[0])
    return got


def sees(mesh: Any, vs: VirtualService, igw: IstioGateway) -> bool:
    """Whether the proxy of ``igw`` reads ``vs``: it is exported to the gateway pods' namespace
    (:func:`proxy_namespace`)."""
    return exported_to(vs.export_to, mesh.scope.mesh_config.vs_export_to, vs.meta.namespace,
                       proxy_namespace(mesh, igw))


def serves(srv: IstioServer, vs: VirtualService, igw: IstioGateway) -> bool:
    """Whether the server ``srv`` of the Istio Gateway ``igw`` routes ``vs``'s HTTP rules: an HTTP-family server
    with a host that meets one of the VirtualService's hosts and admits its namespace (``ns/host``: ``*`` any,
    ``.`` the Gateway's, else that namespace; istio/api ``gateway.proto``, ``Server.hosts``)."""
    if not srv.is_http:
        return False
    for h in srv.hosts:
        ns, _, host = h.rpartition("/")
        if ns not in ("", "*") and (igw.meta.namespace if ns == "." else ns) != vs.meta.namespace:
            continue
        if any(_host_ok(a, host) for a in vs.hosts):
            return True
    return False


def match_at(mesh: Any, m: HTTPMatch, vs: VirtualService, igw: IstioGateway, port: int) -> bool:
    """Whether a match of ``vs`` can hold at the server ``port`` of ``igw``: its ``gateways`` (when given) name
    ``igw`` (a short name in the VirtualService's namespace, or ``ns/name``), its ``port`` (when given) is
    ``port``, and its ``sourceNamespace`` and ``sourceLabels`` (when given) are those of the gateway's pods
    (:func:`proxy_namespace`; their labels as the Gateway's ``selector`` gives them)."""
    return ((m.port is None or m.port == port) and _names_gateway(m, vs, igw)
            and (m.source_namespace is None or m.source_namespace == proxy_namespace(mesh, igw))
            and labels_subset(m.source_labels, dict(igw.selector)))


def _names_gateway(m: HTTPMatch, vs: VirtualService, igw: IstioGateway) -> bool:
    return not m.gateways or any((g.rpartition("/")[0] or vs.meta.namespace, g.rpartition("/")[2])
                                 == (igw.meta.namespace, igw.meta.name) for g in m.gateways)


def bound_to(vs: VirtualService, igw: IstioGateway) -> bool:
    """Whether ``vs`` binds to the Istio Gateway ``igw`` (``spec.gateways``: ``name`` in the VirtualService's
    namespace, or ``namespace/name``)."""
    for g in vs.gateways:
        ns, _, name = g.rpartition("/")
        if name == igw.meta.name and (ns or vs.meta.namespace) == igw.meta.namespace:
            return True
    return False


def _host_ok(pattern: str, host: str) -> bool:
    if pattern == "*" or host == "*" or pattern == host:
        return True
    if pattern.startswith("*."):
        return host.endswith(pattern[1:])
    return host.startswith("*.") and pattern.endswith(host[1:])


def _istio_rule(
    mesh: Any,
    vss: list[VirtualService],
    igw: IstioGateway,
    srv: IstioServer,
    path: str,
    hdrs: dict[str, str],
    method: str,
    authority: str,
    notes: list[str],
) -> tuple[VirtualService, HTTPRoute] | None:
    for vs in vss:
        for r in vs.http:
            if not r.matches:
                return vs, r
            for m in r.matches:
                if not _names_gateway(m, vs, igw):
                    continue
                if mesh.request_matches(
                    replace(m, gateways=()),
                    path,
                    hdrs,
                    method,
                    authority,
                    srv.port,
                    dict(igw.selector),
                    proxy_namespace(mesh, igw),
                    notes,
                ):
                    return vs, r
    return None


def _istio_gateway_path(
    mesh: Any,
    igw: IstioGateway,
    srv: IstioServer,
    info: RegisteredService,
    port: int,
    path: str,
    hdrs: dict[str, str],
    method: str,
    default_request: bool,
    diags: list[Diagnostic],
) -> ClientPath | None:
    if not srv.is_http:
        return None
    authority = hdrs.get("host", "*").split(":", 1)[0]
    vss = [
        vs
        for vs in mesh.manifests.virtual_services
        if bound_to(vs, igw) and vs.http and serves(srv, vs, igw) and sees(mesh, vs, igw)
        and any(_host_ok(h, authority) for h in vs.hosts)
    ]
    if not vss:
        return None

    def reaches(rule: HTTPRoute, vs: VirtualService) -> bool:
        return any(
            mesh.resolve_host(d.host, vs.meta.namespace) is info
            and (d.port in (None, port))
            and (d.weight or len(rule.destinations) == 1)
            for d in rule.destinations
        )

    sends = [(vs, r) for vs in vss for r in vs.http if reaches(r, vs)]
    if not sends:
        return None
    notes: list[str] = []
    chosen = _istio_rule(mesh, vss, igw, srv, path, hdrs, method, authority, notes)
    if default_request and (chosen is None or not reaches(chosen[1], chosen[0])):
        for vs, r in sends:
            uri = next(
                (m.uri for m in r.matches if m.uri is not None and m.uri[0] in ("exact", "prefix")), None
            )
            req = uri[1] if uri is not None else "/"
            cand = _istio_rule(mesh, vss, igw, srv, req, hdrs, method, authority, notes)
            if cand is not None and reaches(cand[1], cand[0]):
                chosen, path = cand, req
                notes.append(
                    f"request GET {req} (a match of VirtualService {vs.meta.ref} http[{r.index}], which "
                    f"sends to {info.short}; give --path/--header to choose another)"
                )
                break
    label = f"ingress (Istio Gateway {igw.meta.name}:{srv.port})"
    sel = ",".join(f"{k}={v}" for k, v in igw.selector) or "none"
    layers = [
        Layer(
            "client",
            "outside the mesh",
            f"connect() to the ingress gateway's address; Host {authority}",
            "connection",
        ),
        Layer(
            "load balancer",
            f"ingress gateway Service (pods {sel})",
            "the installation's ingress gateway Service spreads connections over the gateway pods "
            "(kube-proxy or the cloud load balancer); every gateway pod has the same configuration, so "
            "the pod picked does not change the split",
            "connection",
        ),
        Layer(
            "Istio Gateway server",
            f"{igw.meta.ref} {srv.port_name or srv.port}",
            f"{srv.protocol} port "
            f"{srv.port}, hosts {', '.join(srv.hosts)}; {len(vss)} VirtualService(s) bound: "
            + ", ".join(v.meta.ref for v in vss),
            "request",
            f"{igw.meta.source}:{srv.line}",
        ),
    ]
    root: Node
    if chosen is None:
        root = Backend(
            name=f"404 NR no route ({label})",
            labels=(("outcome", "404"),),
            provenance=Provenance(vss[0].meta.source, vss[0].meta.line),
        )
    else:
        vs, rule = chosen
        rlabel = f"VirtualService {vs.meta.ref} http[{rule.index}]" + (f" {rule.name!r}" if rule.name else "")
        if rule.terminal is not None or not rule.destinations:
            root = Backend(
                name=f"{rule.terminal or 'no destination'} ({vs.meta.name} http[{rule.index}])",
                labels=(("outcome", rule.terminal or "none"),),
                provenance=Provenance(vs.meta.source, rule.line),
            )
        else:
            at = len(layers)
            root = with_fault_abort(mesh._split(vs, rule.destinations, info, srv.port, proxy_namespace(mesh, igw),
                                                "request", diags, notes, layers, rlabel, rule.line),
                                    rule.abort, rlabel, f"{vs.meta.source}:{rule.line}", layers, at)
    layers.append(
        Layer(
            "network",
            "pod IP",
            "the gateway's Envoy connects to the chosen pod IP:targetPort directly",
            "connection",
        )
    )
    notes.append(
        f"the gateway pods (selector {sel}) belong to the Istio installation and are not modelled: they "
        "only pass requests on"
    )
    return ClientPath(
        "ingress",
        label,
        Route(
            root=root,
            name=label,
            provenance=Provenance(igw.meta.source, srv.line),
            notes=tuple(dict.fromkeys(notes)),
        ),
        [f"outside the mesh via Istio Gateway {igw.meta.ref}"],
        layers,
    )
