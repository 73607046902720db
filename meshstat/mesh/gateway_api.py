"""Gateway API routes as Istio executes them: which route serves a request, and where its requests go.

:func:`httproute_split` is the model: given the routes attached to one parent (a Service for mesh
traffic, a Gateway listener at the ingress), a request and the registry, it returns the rule that
serves the request and its weighted backends as :class:`GatewaySplit`, whose valid backends are
:class:`~meshstat.parsers.k8s.RouteDestination` (the structure a VirtualService's destinations have,
so the same cluster code builds their endpoint stages) and whose invalid ones are 500s of their own.
:func:`split_node` turns it into a model tree, :func:`split_layers` into layer rows.
:func:`mesh_routes` picks the routes a sidecar (or any client in a namespace) gets for a Service,
:func:`sidecar_split` decides between them and a VirtualService for a sidecar,
:func:`waypoint_route_for` is what an ambient waypoint executes (``Mesh.route_for``),
:func:`route_requests` lists a request per match for the every-route view (``Mesh.requests_for``), and
:func:`gateway_routed_services` lists the Services the routes reach.

Upstream sources, each cited where it is used:

* the Gateway API spec (kubernetes-sigs/gateway-api ``apis/v1``): ``httproute_types.go``
  (``HTTPRouteRule.Matches``: precedence; ``HTTPRouteRule.BackendRefs``: the 500 share of invalid
  backends; ``PathMatchType``; ``HTTPHeaderMatch``; ``HTTPQueryParamMatch``; ``HTTPRequestMirrorFilter``),
  ``shared_types.go`` (``ParentReference``, ``BackendRef.Weight``), ``object_reference_types.go``,
  ``grpcroute_types.go``, ``referencegrant_types.go``;
* GEP-1294 "xRoutes Mesh Binding" (numbered GEP-1426 until the gateway-api repository corrected it;
  ``geps/gep-1294/index.md``): producer and consumer routes, no ReferenceGrant for mesh routes, routes of
  one kind merged; ``site/content/en/docs/mesh/mesh-overview.md``: a request that matches no route
  attached to the Service is rejected;
* Istio (istio/istio ``pilot/pkg/config/kube/gateway/conversion.go``: ``convertHTTPRoute``,
  ``buildHTTPDestination``, ``buildDestination``, ``sortHTTPRoutes``, ``createURIMatch``,
  ``createGRPCURIMatch``; ``route_collections.go``: ``HTTPRouteCollection``, ``mergeHTTPRoutes``;
  ``pilot/pkg/networking/core/route/route.go``: ``applyHTTPRouteDestination``,
  ``buildSidecarVirtualHostsForVirtualService``; ``pilot/pkg/model/virtualservice.go``:
  ``SelectVirtualServices``).

Istio turns the routes of one parent into one VirtualService whose ``http`` list holds one entry per
match of every rule, sorted by the spec's precedence, and Envoy takes the first entry that matches; the
request is then split by the rule's weights, per request. That is what this module computes. Regular
expressions (paths, headers, query parameters) are evaluated with Python's :mod:`re` (``fullmatch``), as
the VirtualService model does; Envoy uses RE2, which refuses back-references and look-around, so a
pattern valid here may be rejected there (the spec leaves the dialect to the implementation).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import parse_qsl

from meshstat.mesh.layers import Layer, distinct_leaves
from meshstat.mesh.registry import RegisteredService
from meshstat.mesh.requests import Request
from meshstat.model import Backend, Node, Provenance, Weighted
from meshstat.parsers.gateway_api import (
    GATEWAY_GROUP,
    BackendRef,
    GatewayObjects,
    GatewayRoute,
    ReferenceGrant,
    RouteMatch,
    RouteRule,
    gateway_objects,
)
from meshstat.parsers.k8s import Diagnostic, RouteDestination
from meshstat.parsers.regex import re2_full_match

__all__ = [
    "GatewayBackend",
    "GatewaySplit",
    "attached_routes",
    "gateway_routed_services",
    "httproute_split",
    "match_holds",
    "match_request",
    "mesh_routes",
    "precedence",
    "replaced_warnings",
    "resolve_backend",
    "route_requests",
    "sidecar_split",
    "split_layers",
    "split_node",
    "waypoint_route_for",
]

HTTP_KINDS = ("HTTPRoute", "GRPCRoute")
TCP_KINDS = ("TCPRoute", "TLSRoute")


# --------------------------------------------------------------------------- matching


def _path_matcher(match: RouteMatch) -> tuple[str, str] | None:
    """The path condition Istio gives Envoy: ``(Exact|PathPrefix|RegularExpression|Prefix, value)``.

    HTTPRoute (``conversion.go: createURIMatch``): a ``PathPrefix`` loses one trailing ``/`` (unless it
    is ``/``) and becomes Envoy's ``path_separated_prefix`` (``route.go``: gateway semantics). GRPCRoute
    (``createGRPCURIMatch``): ``/Service/Method`` exactly, ``/Service/`` as a plain prefix when only the
    service is given, ``/[^/]+/Method`` as a regular expression when only the method is.
    """
    if match.path is not None:
        kind, value = match.path
        if kind == "PathPrefix" and value != "/" and value.endswith("/"):
            value = value[:-1]
        return kind, value
    if match.grpc_method is None:
        return None
    mtype, service, method = match.grpc_method
    if mtype == "Exact":
        if method is None:
            return "Prefix", f"/{service}/"
        if service is None:
            return "RegularExpression", f"/[^/]+/{method}"
        return "Exact", f"/{service}/{method}"
    if method is None:
        return "RegularExpression", f"/{service}/.+"
    if service is None:
        return "RegularExpression", f"/[^/]+/{method}"
    return "RegularExpression", f"/{service}/{method}"


def _value_holds(kind: str, pattern: str, value: str | None) -> bool:
    if value is None:
        return False
    if kind == "Exact":
        return value == pattern
    return re2_full_match(pattern, value)


def match_holds(match: RouteMatch, path: str, headers: Mapping[str, str], method: str) -> bool:
    """Whether a request satisfies every condition of one match.

    ``PathPrefix`` matches whole path segments (``PathMatchType``: ``/abc`` matches ``/abc``, ``/abc/``
    and ``/abc/def``, not ``/abcd``); ``Exact`` the path exactly; the query string is not part of the
    path. Header names are case-insensitive (``HTTPHeaderMatch.Name``) and ``headers`` must have
    lower-case keys; query parameters are matched on their first value (``HTTPQueryParamMatch.Name``).
    """
    bare, _, query = path.partition("?")
    pm = _path_matcher(match)
    if pm is not None:
        kind, value = pm
        if kind == "Exact":
            ok = bare == value
        elif kind == "PathPrefix":
            ok = value == "/" or bare == value or bare.startswith(value + "/")
        elif kind == "Prefix":
            ok = bare.startswith(value)
        else:
            ok = re2_full_match(value, bare)
        if not ok:
            return False
    if match.method is not None and method.upper() != match.method:
        return False
    for name, kind, value in match.headers:
        if not _value_holds(kind, value, headers.get(name)):
            return False
    if match.query_params:
        first: dict[str, str] = {}
        for k, v in parse_qsl(query, keep_blank_values=True):
            first.setdefault(k, v)
        for name, kind, value in match.query_params:
            if not _value_holds(kind, value, first.get(name)):
                return False
    return True


_RANK = {"Exact": 3, "PathPrefix": 2, "Prefix": 2, "RegularExpression": 1}


def _route_order(route: GatewayRoute) -> tuple[str, str, str]:
    # A route without creationTimestamp sorts first, as Go's zero time does (conversion.go:
    # sortRoutesByCreationTime: creation time, then namespace, then name).
    return route.created or "", route.meta.namespace, route.meta.name


def precedence(routes: Sequence[GatewayRoute]) -> list[tuple[GatewayRoute, RouteRule, RouteMatch | None]]:
    """Every ``(route, rule, match)`` of ``routes`` in the order Envoy tries them.

    ``HTTPRouteRule.Matches``: across all rules of the routes attached to a parent, "Exact" path match,
    then the longest "Prefix" path, then a method match, then the most header matches, then the most
    query-param matches; ties go to the oldest route (``creationTimestamp``), then to
    ``{namespace}/{name}`` in alphabetical order, then to the first rule and match in list order.
    Istio builds exactly this list (``route_collections.go``: one VirtualService entry per match,
    ``mergeHTTPRoutes``: routes by creation time; ``conversion.go: sortHTTPRoutes``: a stable sort on
    path kind, path length, method, header count, query count). The precedence of regular-expression
    paths is implementation-specific in the spec; Istio puts them after prefixes, longer patterns first.
    A rule without matches (TCPRoute, TLSRoute, a GRPCRoute rule) has ``match`` ``None`` and comes last.
    """
    entries: list[tuple[GatewayRoute, RouteRule, RouteMatch | None]] = []
    for route in sorted(routes, key=_route_order):
        for rule in route.rules:
            if rule.matches:
                entries.extend((route, rule, m) for m in rule.matches)
            else:
                entries.append((route, rule, None))

    def key(e: tuple[GatewayRoute, RouteRule, RouteMatch | None]) -> tuple[int, ...]:
        m = e[2]
        if m is None:
            return (1, 0, 0, 0, 0, 0)
        pm = _path_matcher(m)
        rank = _RANK[pm[0]] if pm else -1
        length = len(pm[1]) if pm else 0
        return (0, -rank, -length, 0 if m.method else 1, -len(m.headers), -len(m.query_params))

    return sorted(entries, key=key)


def describe_match(match: RouteMatch | None) -> str:
    """``PathPrefix /static, header end-user=jason, GET`` (``any request`` without conditions)."""
    if match is None:
        return "any request"
    parts = []
    pm = _path_matcher(match)
    if pm is not None:
        parts.append(f"{pm[0]} {pm[1]}")
    parts += [f"header {n}{'=' if k == 'Exact' else '~'}{v}" for n, k, v in match.headers]
    parts += [f"query {n}{'=' if k == 'Exact' else '~'}{v}" for n, k, v in match.query_params]
    if match.method:
        parts.append(match.method)
    return ", ".join(parts) or "any request"


# --------------------------------------------------------------------------- backends


@dataclass(frozen=True, slots=True)
class GatewayBackend:
    """One backendRef of the chosen rule (weight above 0): a destination, or the reason it gets a 500.

    ``destination`` has the backend Service's FQDN as ``host``, no subset, and the backendRef's port:
    Istio's ``buildDestination`` gives Envoy the cluster ``outbound|<port>||<fqdn>``, so the Service's
    own endpoints balance the requests it gets.
    """

    ref: BackendRef
    weight: int
    destination: RouteDestination | None
    failure: str | None
    source: str


def resolve_backend(
    ref: BackendRef,
    route: GatewayRoute,
    registry: Mapping[str, RegisteredService],
    grants: Sequence[ReferenceGrant] = (),
    *,
    enforce_grants: bool = True,
    domain: str = "cluster.local",
) -> tuple[RouteDestination | None, str | None]:
    """The destination of a backendRef, or why it is invalid (its requests then get a 500).

    Invalid (``HTTPBackendRef``): an unknown kind (``InvalidKind``), a Service that does not exist
    (``BackendNotFound``), a reference to another namespace that no ReferenceGrant there allows
    (``RefNotPermitted``). Istio (``buildDestination``) checks the grant first, and only for routes
    attached to a Gateway: mesh routes may reach any namespace (GEP-1294, "Namespace boundaries";
    ``route_collections.go`` converts mesh rules with ``enforceRefGrant`` false). A port the Service
    does not have names a cluster that does not exist; under gateway semantics Envoy answers such a
    request with 500 (``route.go: applyHTTPRouteDestination``: ``ClusterNotFoundResponseCode``).
    Istio's ``Hostname`` kind (group ``networking.istio.io``) names a ServiceEntry host.
    """
    if enforce_grants and ref.namespace != route.meta.namespace:
        to_group, to_kind = ref.group, ref.kind
        if not any(
            g.meta.namespace == ref.namespace
            and g.allows(GATEWAY_GROUP, route.kind, route.meta.namespace, to_group, to_kind, ref.name)
            for g in grants
        ):
            return None, (
                f"500 RefNotPermitted ({ref}: no ReferenceGrant in namespace {ref.namespace} lets "
                f"{route.kind}s of {route.meta.namespace} refer to it)"
            )
    if ref.is_service:
        fqdn = f"{ref.name}.{ref.namespace}.svc.{domain}"
        info = registry.get(fqdn)
        if info is None or info.service is None:
            return None, f"500 BackendNotFound (Service {ref.namespace}/{ref.name} does not exist)"
    elif ref.kind == "Hostname" and ref.group == "networking.istio.io":
        fqdn = ref.name
        info = registry.get(fqdn)
        if info is None:
            return None, f"500 BackendNotFound (no ServiceEntry host {ref.name})"
    else:
        return (
            None,
            f"500 InvalidKind ({ref.group or 'core'}/{ref.kind} {ref.name} is not a backend Istio supports)",
        )
    if ref.port is None or info.port(ref.port) is None:
        ports = ", ".join(str(p.port) for p in info.ports) or "none"
        return None, f"500 cluster not found ({info.short} has no port {ref.port}; ports: {ports})"
    return RouteDestination(host=fqdn, subset=None, port=ref.port, weight=ref.weight, line=ref.line), None


# --------------------------------------------------------------------------- the split


@dataclass(frozen=True)
class GatewaySplit:
    """What :func:`httproute_split` returns: the rule that serves the request and its backends.

    Attributes
    ----------
    parent : str
        The parent the routes are attached to (``Service default/reviews:9080``).
    routes : tuple of GatewayRoute
        The routes merged for that parent, in precedence order of age and name.
    route, rule, match
        The route, rule and match that serve the request (``None`` when no rule matches).
    outcome : str or None
        A response that is not a split: ``404 no route matched``, ``500 no backendRef with a weight
        above 0``, ``redirect``; ``None`` when ``backends`` carry the request.
    backends : tuple of GatewayBackend
        The rule's backendRefs with weight above 0 (the same Service listed twice: weights added).
    dropped : tuple of BackendRef
        backendRefs with weight 0: never chosen.
    mirrors : tuple of (BackendRef, Fraction)
        ``RequestMirror`` filters: extra requests to another backend, not a share of the split.
    unit : str
        ``request`` (HTTPRoute, GRPCRoute) or ``connection`` (TCPRoute, TLSRoute).
    order : tuple of (GatewayRoute, RouteRule, RouteMatch or None)
        Every match in the order Envoy tries them (:func:`precedence`).
    notes : tuple of str
        What the model assumes and what it leaves out (filters, timeouts, retries, regular expressions).
    """

    parent: str
    routes: tuple[GatewayRoute, ...]
    route: GatewayRoute | None
    rule: RouteRule | None
    match: RouteMatch | None
    outcome: str | None
    backends: tuple[GatewayBackend, ...]
    dropped: tuple[BackendRef, ...]
    mirrors: tuple[tuple[BackendRef, Any], ...]
    unit: str
    order: tuple[tuple[GatewayRoute, RouteRule, RouteMatch | None], ...]
    notes: tuple[str, ...] = ()
    diagnostics: tuple[Diagnostic, ...] = field(default=(), compare=False)

    @property
    def label(self) -> str:
        """``HTTPRoute default/reviews rules[0]`` (or the parent when no rule serves the request)."""
        if self.route is None or self.rule is None:
            return self.parent
        name = f" {self.rule.name!r}" if self.rule.name else ""
        return f"{self.route.label} rules[{self.rule.index}]{name}"

    @property
    def source(self) -> str:
        """File of the route that serves the request (of the first route when none does)."""
        r = self.route or (self.routes[0] if self.routes else None)
        return r.meta.source if r is not None else ""


_FILTER_NOTES = {
    "RequestHeaderModifier": "changes request headers, not the split",
    "ResponseHeaderModifier": "changes response headers, not the split",
    "URLRewrite": "rewrites the path or host sent upstream, not the split",
    "CORS": "answers CORS preflights, not the split",
    "ExtensionRef": "is implementation-specific: not modelled (Istio refuses it: unsupported filter type)",
    "ExternalAuth": "asks an authorization service first (denied requests skip the split): not modelled",
}


def httproute_split(
    routes: Sequence[GatewayRoute],
    parent: str,
    *,
    path: str = "/",
    headers: Mapping[str, str] | None = None,
    method: str = "GET",
    registry: Mapping[str, RegisteredService],
    grants: Sequence[ReferenceGrant] = (),
    enforce_grants: bool = False,
    domain: str = "cluster.local",
) -> GatewaySplit:
    """The rule of ``routes`` that serves a request, and its weighted backends.

    Parameters
    ----------
    routes : sequence of GatewayRoute
        The routes attached to one parent, already chosen (:func:`mesh_routes` for a Service; the
        ingress picks a Gateway listener's). HTTPRoute and GRPCRoute are matched per request; for
        TCPRoute and TLSRoute the first rule of the oldest route carries every connection.
    parent : str
        What the routes are attached to, for labels (``Service default/reviews:9080``).
    path, headers, method
        The request (``headers`` names are case-insensitive; ``path`` may carry a query string).
    registry : mapping of FQDN to RegisteredService
        The mesh's registry (:attr:`meshstat.mesh.Mesh.registry`): backendRefs are resolved in it.
    grants : sequence of ReferenceGrant
        ReferenceGrants in the manifests.
    enforce_grants : bool
        True for routes attached to a Gateway (a cross-namespace backendRef needs a grant), False for
        mesh routes (GEP-1294).
    domain : str
        Cluster domain of Service FQDNs.

    Returns
    -------
    GatewaySplit
        ``outcome`` ``404 no route matched`` when no match holds (the spec: "When no rules matching a
        request have been successfully attached to the parent a request is coming from, a HTTP 404
        status code MUST be returned"); ``500 no backendRef with a weight above 0`` when the rule's
        weights are all 0 or it has no backendRefs (Istio's ``convertHTTPRoute`` gives it a direct
        response 500); else the backends, each a destination or a 500 of its own (its share of the
        requests gets the 500, ``HTTPRouteRule.BackendRefs``).

    Weights are relative (``BackendRef.Weight``: "computed as weight/(sum of all weights in this
    BackendRefs list)"; default 1; 0 means no traffic).
    """
    hdrs = {str(k).lower(): str(v) for k, v in (headers or {}).items()}
    notes: list[str] = []
    kinds = {r.kind for r in routes}
    unit = "connection" if kinds and kinds <= set(TCP_KINDS) else "request"
    order = precedence(routes)
    chosen: tuple[GatewayRoute, RouteRule, RouteMatch | None] | None = None
    if unit == "connection":
        chosen = order[0] if order else None
        rules = sum(len(r.rules) for r in routes)
        if rules > 1:
            notes.append(f"{rules} {'/'.join(sorted(kinds))} rules for {parent}: the first rule of the "
                         "oldest route carries every connection (L4 rules have no matches)")
        if "TLSRoute" in kinds:
            notes.append("TLSRoute hostnames select by SNI: assumed to match the connection's SNI")
    else:
        chosen = next((e for e in order if e[2] is None or match_holds(e[2], path, hdrs, method)), None)
    if len(routes) > 1:
        tie = "creationTimestamp" if all(r.created for r in routes) else (
            "namespace/name, as the manifests give no creationTimestamp")
        notes.append(f"{len(routes)} routes attached to {parent} merged as the spec says (precedence across "
                     f"their rules, then {tie})")
    base = {"parent": parent, "routes": tuple(sorted(routes, key=_route_order)), "unit": unit,
            "order": tuple(order), "backends": (), "dropped": (), "mirrors": ()}
    if chosen is None:
        return GatewaySplit(**base, route=None, rule=None, match=None, outcome="404 no route matched",
                            notes=tuple(notes))
    route, rule, match = chosen
    label = f"{route.label} rules[{rule.index}]"
    notes += _rule_notes(label, rule)
    mirrors = tuple((f.mirror, f.mirror_fraction) for f in rule.filters if f.mirror is not None)
    dropped = tuple(b for b in rule.backends if b.weight == 0)
    base.update(route=route, rule=rule, match=match, dropped=dropped, mirrors=mirrors)
    live = [b for b in rule.backends if b.weight > 0]
    if not live:
        redirect = any(f.type == "RequestRedirect" for f in rule.filters)
        outcome = "redirect" if redirect else "500 no backendRef with a weight above 0"
        return GatewaySplit(**base, outcome=outcome, notes=tuple(notes))
    backends: list[GatewayBackend] = []
    for b in live:
        dest, failure = resolve_backend(b, route, registry, grants, enforce_grants=enforce_grants,
                                        domain=domain)
        key = (dest.host, dest.port) if dest is not None else None
        same = next((i for i, x in enumerate(backends) if key is not None and x.destination is not None
                     and (x.destination.host, x.destination.port) == key), None)
        if same is not None:  # one cluster listed twice: its share is the sum
            old = backends[same]
            backends[same] = replace(old, weight=old.weight + b.weight)
            notes.append(f"{label}: backendRef {b} listed twice: weights added")
            continue
        if not enforce_grants and b.namespace != route.meta.namespace and failure is None:
            notes.append(f"{label}: backendRef {b} is in another namespace: allowed without a ReferenceGrant "
                         "for mesh routes (GEP-1294)")
        backends.append(GatewayBackend(b, b.weight, dest, failure, route.meta.source))
    base["backends"] = tuple(backends)
    return GatewaySplit(**base, outcome=None, notes=tuple(notes))


def _rule_notes(label: str, rule: RouteRule) -> list[str]:
    """What the chosen rule does beside the split: filters, mirrors, timeouts, weight-0 backendRefs."""
    notes = [f"{label}: filter {f.type} {_FILTER_NOTES[f.type]}"
             for f in rule.filters if f.type in _FILTER_NOTES]
    notes += [f"{label}: backendRef {b} filter {f.type} {_FILTER_NOTES[f.type]}"
              for b in rule.backends for f in b.filters if f.type in _FILTER_NOTES]
    notes += [f"{label}: RequestMirror sends a copy of {float(f.mirror_fraction or 1) * 100:.4g}% of the "
              f"requests to {f.mirror} (extra traffic, responses discarded): not a share of the split"
              for f in rule.filters if f.type == "RequestMirror"]
    if rule.extras:
        notes.append(f"{label}: {', '.join(rule.extras)} not modelled (retries change what upstreams see)")
    notes += [f"{label}: backendRef {b} has weight 0: never chosen (Istio's buildHTTPDestination drops it)"
              for b in rule.backends if b.weight == 0]
    return notes


def split_node(split: GatewaySplit, cluster_node: Callable[[RouteDestination], Node]) -> Node:
    """The model tree of a split: weighted backends over their clusters, 500s and 404s as leaves.

    ``cluster_node`` builds the endpoint stage of one valid destination (the mesh's
    ``Mesh._cluster_node``, shared with the VirtualService model). One backend is its cluster (Istio
    gives Envoy a plain cluster, ``buildHTTPDestination``); several are weighted clusters with the rule's
    weights, picked per request (per connection for TCPRoute/TLSRoute).
    """
    src = split.source
    if split.outcome is not None:
        first = split.routes[0].meta.line if split.routes else None
        line = split.rule.line if split.rule is not None else first
        return Backend(name=f"{split.outcome} ({split.label})",
                       labels=(("outcome", split.outcome.split()[0]),),
                       provenance=Provenance(src, line) if src else None)
    kids: list[Node] = [
        cluster_node(b.destination) if b.destination is not None
        else Backend(name=f"{b.failure}", labels=(("outcome", "500"),),
                     provenance=Provenance(b.source, b.ref.line))
        for b in split.backends
    ]
    if len(kids) == 1:
        return kids[0]
    kids = distinct_leaves(kids, [b.destination.subset or b.destination.host if b.destination is not None
                                  else str(b.failure) for b in split.backends])
    return Weighted(children=tuple(kids), weights=tuple(b.weight for b in split.backends), unit=split.unit,
                    name=f"{split.label} weighted backendRefs",
                    provenance=Provenance(src, split.rule.line if split.rule is not None else None))


def split_layers(split: GatewaySplit) -> list[tuple[str, str, str, str, str]]:
    """Rows ``(layer, component, decision, unit, where)`` of the route step of a layered view."""
    n = len(split.routes)
    merged = f"; {n} routes attached to {split.parent}, merged" if n > 1 else ""
    if split.route is None or split.rule is None:
        return [("Gateway API route", split.parent, f"{split.outcome}: no match holds{merged}", split.unit,
                 f"{split.source}:{split.routes[0].meta.line}" if split.routes else "")]
    src = split.route.meta.source
    match = describe_match(split.match) if split.unit == "request" else "any connection"
    rows = [("Gateway API route", split.label, f"parent {split.parent}; match {match}{merged}", split.unit,
             f"{src}:{split.match.line if split.match is not None else split.rule.line}")]
    if split.outcome is not None:
        rows.append(("Envoy route", split.label, split.outcome, split.unit, f"{src}:{split.rule.line}"))
    elif len(split.backends) == 1:
        b = split.backends[0]
        rows.append(("Envoy route", split.label, f"one backendRef {b.ref}: plain cluster"
                     + (f" ({b.failure})" if b.failure else ""), split.unit, f"{b.source}:{b.ref.line}"))
    else:
        per = "per request" if split.unit == "request" else "per connection"
        clusters = ", ".join(f"{b.ref.name}={b.weight}" + (" (500)" if b.failure else "")
                             for b in split.backends)
        rows.append(("Envoy route", split.label, f"weighted clusters {clusters} ({per})", split.unit,
                     f"{src}:{split.rule.line}"))
    return rows


# --------------------------------------------------------------------------- the mesh (GAMMA)


def attached_routes(routes: Sequence[GatewayRoute], info: RegisteredService, port: int,
                    kinds: Sequence[str] = HTTP_KINDS) -> list[GatewayRoute]:
    """The routes of ``kinds`` with a parentRef to the Service ``info`` at ``port`` (any namespace).

    A route attaches to the Service through a parentRef of kind ``Service`` (group ``""``) with the
    Service's name and namespace, and, when given, its port or the port's name (``sectionName``;
    ``ParentReference``).
    """
    sp = info.port(port)
    return [r for r in routes if r.kind in kinds and any(
        p.is_service and p.name == info.name and p.namespace == info.namespace and p.port in (None, port)
        and (p.section_name is None or (sp is not None and sp.name == p.section_name)) for p in r.parents)]


def mesh_routes(
    routes: Sequence[GatewayRoute],
    info: RegisteredService,
    port: int,
    client_namespace: str | None,
    *,
    kinds: Sequence[str] = HTTP_KINDS,
) -> tuple[list[GatewayRoute], str]:
    """The routes a client in ``client_namespace`` gets for ``info:port``, and whether they are
    ``consumer`` or ``producer`` routes.

    The routes attached to the Service (:func:`attached_routes`); GEP-1294: a route in the Service's
    namespace is a *producer* route and serves clients of every namespace; a route in another namespace is a
    *consumer* route and serves clients of its own namespace only, ahead of the producer routes; the routes
    of the group that applies are merged. Istio: ``buildSidecarVirtualHostsForVirtualService`` drops a route
    for a proxy outside both namespaces. ``client_namespace`` ``None`` (e.g. a waypoint, which serves every
    client) gives the producer routes.
    """
    attached = attached_routes(routes, info, port, kinds)
    consumer = [
        r for r in attached if r.meta.namespace != info.namespace and r.meta.namespace == client_namespace
    ]
    if consumer:
        return consumer, "consumer"
    return [r for r in attached if r.meta.namespace == info.namespace], "producer"


def _position(mesh: Any, meta: Any) -> tuple[int, int]:
    sources = list(mesh.manifests.sources)
    return (sources.index(meta.source) if meta.source in sources else len(sources), meta.line)


def sidecar_split(
    mesh: Any,
    info: RegisteredService,
    port: int,
    client_namespace: str | None,
    vs: Any,
    *,
    tcp: bool = False,
    path: str = "/",
    headers: Mapping[str, str] | None = None,
    method: str = "GET",
    diags: list[Diagnostic] | None = None,
) -> GatewaySplit | None:
    """The Gateway API split a sidecar in ``client_namespace`` applies to ``info:port``, if any route applies.

    ``mesh`` is a :class:`meshstat.mesh.Mesh`; ``vs`` the VirtualService the sidecar would otherwise
    use (``None`` if none). When both exist, Istio gives the sidecar one virtual host per host and the
    first VirtualService to claim it wins (``pilot/pkg/networking/core/httproute.go``: "duplicate
    domain"); ``SelectVirtualServices`` (``pilot/pkg/model/virtualservice.go``) lists the routes of
    the proxy's own namespace generated from Gateway API first, then every VirtualService by creation
    time, after the VirtualServices exported to named namespaces only (``exportTo`` without ``*``: the
    index's private and per-namespace lists come first, ``push_context.go: initVirtualServices``; the
    generated ones are public). So the HTTPRoute wins for clients in its namespace; elsewhere the older
    object wins (the manifests' order stands for creation order when they carry no timestamps). Either
    way a warning says which one is ignored. Returns ``None`` when the VirtualService (or no rule at
    all) applies.

    With ``vs=None`` and ``client_namespace=None`` this is the split of the Service's own (producer)
    routes, the one a proxy that serves every client (a waypoint) applies.
    """
    objs = gateway_objects(mesh.manifests)
    if diags is not None:
        diags.extend(replaced_warnings(objs))
    kinds = TCP_KINDS if tcp else HTTP_KINDS
    group, role = mesh_routes(objs.routes, info, port, client_namespace, kinds=kinds)
    if not group:
        return None
    first = min(group, key=lambda r: _position(mesh, r.meta))
    if vs is not None:
        own_ns = first.meta.namespace == client_namespace
        vs_scoped = bool(vs.export_to) and "*" not in vs.export_to  # listed before every public one
        route_first = not vs_scoped and (own_ns or _position(mesh, first.meta) < _position(mesh, vs.meta))
        if vs_scoped:
            why = (f"VirtualService {vs.meta.ref} is exported to named namespaces only "
                   f"({', '.join(vs.export_to)}): Istio lists it before every public one")
        elif own_ns:
            why = f"{first.label} is in the client's namespace (Istio lists those routes first)"
        else:
            older = first.label if route_first else f"VirtualService {vs.meta.ref}"
            why = f"{older} is the older object (manifest order stands for creation order)"
        loser = vs.meta if route_first else first.meta
        if diags is not None:
            diags.append(Diagnostic(
                "warning", f"{first.label} ({role} route) and VirtualService {vs.meta.ref} both route "
                f"{info.short}:{port} for clients in {client_namespace}: Istio serves the host from one "
                f"of them only, and {why}; {loser.kind} {loser.ref} is ignored", loser.source, loser.line))
        if not route_first:
            return None
    parent = f"Service {info.namespace}/{info.name}:{port}"
    split = httproute_split(group, parent, path=path, headers=headers, method=method, registry=mesh.registry,
                            grants=objs.grants, enforce_grants=False, domain=mesh.domain)
    who = f"clients in {client_namespace}" if client_namespace is not None else "every client"
    refs = ", ".join(r.meta.ref for r in group)
    extra = f"{role} route{'s' if len(group) > 1 else ''} for {who} ({refs}; GEP-1294)"
    return replace(split, notes=(extra, *split.notes))


def replaced_warnings(objs: GatewayObjects) -> list[Diagnostic]:
    """A warning for each object that a later one of the same kind, namespace and name replaces."""
    return [Diagnostic("warning", f"{old.meta.kind} {old.meta.ref} is defined again at {new.meta.where}: "
                       "applied in file order, the later one replaces this one (only that one is modelled)",
                       old.meta.source, old.meta.line) for old, new in objs.replaced]


def gateway_routed_services(mesh: Any) -> list[tuple[RegisteredService, int]]:
    """(Service, port) pairs a Gateway API route attaches to (GAMMA) or sends requests to.

    Attached: every port of a Service parentRef (or the port it names). Sent to: the Services of the
    backendRefs with a weight above 0 of routes attached to a Gateway, and the destinations of
    VirtualServices bound to an Istio ``Gateway`` (``spec.gateways`` without ``mesh``), at the ports
    they name (the only port of a one-port Service otherwise).
    """
    objs = gateway_objects(mesh.manifests)
    out: list[tuple[RegisteredService, int]] = []

    def add(info: RegisteredService | None, port: int | None) -> None:
        if info is None:
            return
        ports = [port] if port is not None else [p.port for p in info.ports]
        for p in ports:
            if info.port(p) is not None and (info, p) not in out:
                out.append((info, p))

    for r in objs.routes:
        for p in r.parents:
            if p.is_service:
                add(mesh.registry.get(f"{p.name}.{p.namespace}.svc.{mesh.domain}"), p.port)
            elif p.is_gateway:
                for rule in r.rules:
                    for b in rule.backends:
                        if b.weight > 0 and b.is_service:
                            add(mesh.registry.get(f"{b.name}.{b.namespace}.svc.{mesh.domain}"), b.port)
    for vs in mesh.manifests.virtual_services:
        if not vs.gateways or vs.gateways == ("mesh",):
            continue
        for rule in vs.http:
            for d in rule.destinations:
                info = mesh.resolve_host(d.host, vs.meta.namespace)
                if info is not None:
                    add(
                        info,
                        d.port
                        if d.port is not None
                        else (info.ports[0].port if len(info.ports) == 1 else None),
                    )
    return out


# --------------------------------------------------------------------------- waypoints, every route


def waypoint_route_for(mesh: Any, info: RegisteredService, port: int, request: Request, *,
                       proxy: str = "waypoint", namespace: str, unit: str, diags: list[Diagnostic],
                       notes: list[str], layers: list[Layer]) -> Node | None:
    """The Gateway API routes a waypoint executes for ``info:port`` (``Mesh.route_for``).

    The signature is ``meshstat.mesh.ambient.RouteFor``.

    A waypoint serves every client of the Service, so it applies the Service's *producer* routes
    (GEP-1294, "Namespace boundaries": a route in the Service's namespace applies to all requests to
    it; :func:`sidecar_split` with no client namespace and no VirtualService), HTTPRoute and GRPCRoute
    per request, TCPRoute/TLSRoute per connection on a TCP port. Istio builds the waypoint's inbound
    routes from the VirtualServices it generates from those routes (``pilot/pkg/networking/core/
    listener_waypoint.go``: ``getVirtualServiceForWaypoint``); the chosen backends are clusters of the
    waypoint's namespace (``namespace``), balanced per request. Returns ``None`` when no such route
    attaches to the Service (the waypoint then uses a VirtualService or its default route).
    """
    split = sidecar_split(mesh, info, port, None, None, tcp=unit == "connection", path=request.path,
                          headers=request.header_map, method=request.method, diags=diags)
    if split is None:
        return None
    layers.extend(Layer(*row) for row in split_layers(split))
    notes.extend(split.notes)
    return split_node(split, lambda d: mesh._cluster_node(d, info, port, namespace, split.unit, split.route,
                                                          diags, notes, layers))


def match_request(match: RouteMatch | None) -> tuple[str, dict[str, str], str] | None:
    """A request ``(path, headers, method)`` that satisfies ``match`` (``None`` for regular expressions)."""
    if match is None:
        return "/", {}, "GET"
    if match.path is not None and match.path[0] == "RegularExpression":
        return None
    if any(k != "Exact" for _, k, _ in match.headers + match.query_params):
        return None
    p = "/"
    if match.path is not None:
        p = match.path[1]
    elif match.grpc_method is not None:
        mtype, service, meth = match.grpc_method
        if mtype != "Exact" or service is None or meth is None:
            return None
        p = f"/{service}/{meth}"
    if match.query_params:
        p += "?" + "&".join(f"{n}={v}" for n, _, v in match.query_params)
    return p, {n: v for n, _, v in match.headers}, match.method or "GET"


def route_requests(mesh: Any, info: RegisteredService, port: int,
                   notes: list[str] | None = None) -> list[tuple[str, Request]]:
    """One request per match of the HTTPRoutes and GRPCRoutes attached to ``info:port``.

    ``Mesh.requests_for`` (``meshstat.mesh.requests.RequestsFor``).

    Every attached route counts (producer and consumer routes), in precedence order; a match that
    cannot be turned into a request (a regular expression) is named in ``notes``.
    """
    out: list[tuple[str, Request]] = []
    for route, rule, m in precedence(attached_routes(gateway_objects(mesh.manifests).routes, info, port)):
        got = match_request(m)
        if got is None:
            if notes is not None:
                notes.append(f"{route.label} rules[{rule.index}]: match {describe_match(m)} cannot be turned "
                             "into a request; give --path/--header/--method to see its route")
            continue
        out.append((describe_match(m), Request.of(*got)))
    return out
