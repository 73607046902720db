"""Gateway API objects (``gateway.networking.k8s.io``) and Istio's own ``Gateway``, with file and line.

Kinds read (each in the API versions that serve it in Gateway API v1.x; any other version is refused, as
``kubectl apply`` refuses it):

* ``HTTPRoute`` (v1, v1beta1), ``GRPCRoute`` (v1, v1alpha2), ``TCPRoute`` (v1, v1alpha2), ``TLSRoute``
  (v1, v1alpha2, v1alpha3): one :class:`GatewayRoute` each (parentRefs, hostnames, rules with matches,
  filters and weighted backendRefs);
* ``Gateway`` (v1, v1beta1) with its listeners and ``allowedRoutes``, ``GatewayClass`` (v1, v1beta1:
  name and controller), ``ReferenceGrant`` (v1, v1beta1, v1alpha2);
* ``networking.istio.io`` ``Gateway`` (v1, v1beta1, v1alpha3): the selector and the servers of Istio's
  ingress API, which VirtualServices bind to with ``spec.gateways``
  (istio/api ``networking/v1alpha3/gateway.proto``).

Field meanings and defaults follow the Gateway API types (kubernetes-sigs/gateway-api ``apis/v1/
httproute_types.go``, ``grpcroute_types.go``, ``shared_types.go``, ``object_reference_types.go``,
``gateway_types.go``, ``referencegrant_types.go``). The defaults the API server writes into a stored
object (its ``+kubebuilder:default`` markers) are applied here, so a manifest reads as ``kubectl get``
shows it: a rule without matches matches ``PathPrefix /``; a match without a path has ``PathPrefix /``;
header and query matches are ``Exact``; a backendRef is a core ``Service`` with weight 1; a parentRef is a
``gateway.networking.k8s.io`` ``Gateway``; a listener admits routes from its own namespace. The CRD's
validation rules that decide what an object means are checked here too (a ``Service`` backendRef needs a
port; ``Exact``/``PathPrefix`` paths start with ``/``; weights are in [0, 1000000]); a violation raises
:class:`meshstat.errors.ConfigParseError` with ``file:line`` and what was expected, as the API server
refuses the object. The semantics (which route serves a request, the split, the 500s) are
:mod:`meshstat.mesh.gateway_api`.

The kinds are added to :mod:`meshstat.parsers.k8s`'s manifest reader through its
:data:`~meshstat.parsers.k8s.KIND_CONVERTERS` (this module is imported with :mod:`meshstat.parsers`);
the objects land in :attr:`meshstat.parsers.k8s.Manifests.gateway_objects` in file order and
:func:`gateway_objects` sorts them by kind.

Pure Python.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from meshstat.parsers.fields import (
    ManifestContext,
    field_int,
    field_list,
    field_map,
    field_str,
    field_str_list,
    field_str_map,
)
from meshstat.parsers.k8s import KIND_CONVERTERS, Manifests, Meta, last_applied, read_meta
from meshstat.parsers.regex import re2_syntax_error
from meshstat.records import record

__all__ = [
    "GATEWAY_GROUP",
    "ROUTE_KINDS",
    "WAYPOINT_CLASS",
    "BackendRef",
    "Gateway",
    "GatewayClass",
    "GatewayObjects",
    "GatewayRoute",
    "IstioGateway",
    "IstioServer",
    "Listener",
    "ParentRef",
    "ReferenceGrant",
    "RouteFilter",
    "RouteMatch",
    "RouteRule",
    "gateway_objects",
]

GATEWAY_GROUP = "gateway.networking.k8s.io"
#: The GatewayClass of Istio's waypoints (istio ``pkg/config/constants``: ``WaypointGatewayClassName``).
WAYPOINT_CLASS = "istio-waypoint"
_ISTIO_GROUP = "networking.istio.io"
#: Route kinds read, in the order of their types' files.
ROUTE_KINDS = ("HTTPRoute", "GRPCRoute", "TCPRoute", "TLSRoute")
#: The API versions that serve each kind (Gateway API ``apis/v1``, ``v1beta1``, ``v1alpha2``, ``v1alpha3``).
_VERSIONS = {
    "HTTPRoute": ("v1", "v1beta1"),
    "GRPCRoute": ("v1", "v1alpha2"),
    "TCPRoute": ("v1", "v1alpha2"),
    "TLSRoute": ("v1", "v1alpha2", "v1alpha3"),
    "Gateway": ("v1", "v1beta1"),
    "GatewayClass": ("v1", "v1beta1"),
    "ReferenceGrant": ("v1", "v1beta1", "v1alpha2"),
}
_ISTIO_GATEWAY_VERSIONS = ("v1", "v1beta1", "v1alpha3")
#: ``HTTPMethod``'s enum (``httproute_types.go``).
_METHODS = ("GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH")
#: ``HTTPRouteFilterType``'s enum plus the experimental ``ExternalAuth``; GRPCRoute takes a subset.
_HTTP_FILTERS = (
    "RequestHeaderModifier",
    "ResponseHeaderModifier",
    "RequestMirror",
    "RequestRedirect",
    "URLRewrite",
    "ExtensionRef",
    "CORS",
    "ExternalAuth",
)
_GRPC_FILTERS = ("RequestHeaderModifier", "ResponseHeaderModifier", "RequestMirror", "ExtensionRef")
#: Largest backendRef weight (``BackendRef.Weight``: ``Maximum=1000000``).
MAX_WEIGHT = 1_000_000


# --------------------------------------------------------------------------- structures


@record
class ParentRef:
    """One ``spec.parentRefs[]`` entry: a ``Gateway`` (ingress) or a ``Service`` (GAMMA, mesh traffic).

    ``namespace`` is resolved (the route's own when the reference names none).
    """

    group: str
    kind: str
    namespace: str
    name: str
    section_name: str | None
    port: int | None
    line: int

    @property
    def is_service(self) -> bool:
        """A core ``Service`` (``group: ""``): the GAMMA mesh binding (GEP-1294, ``ParentReference.Kind``)."""
        return self.kind == "Service" and self.group == ""

    @property
    def is_gateway(self) -> bool:
        """A ``gateway.networking.k8s.io`` ``Gateway``."""
        return self.kind == "Gateway" and self.group == GATEWAY_GROUP

    def __str__(self) -> str:
        extra = (f"/{self.section_name}" if self.section_name else "") + (
            f":{self.port}" if self.port else ""
        )
        return f"{self.kind} {self.namespace}/{self.name}{extra}"


@record
class BackendRef:
    """A ``backendRefs[]`` entry (or a mirror's ``backendRef``): a Service and port, with its weight.

    ``namespace`` is resolved; ``namespace_given`` says whether the reference named one (a reference
    to another namespace needs a ReferenceGrant from a Gateway's route).
    """

    group: str
    kind: str
    name: str
    namespace: str
    namespace_given: bool
    port: int | None
    weight: int
    filters: tuple[RouteFilter, ...]
    line: int

    @property
    def is_service(self) -> bool:
        """A core ``Service`` reference."""
        return self.kind == "Service" and self.group == ""

    def host(self, domain: str) -> str:
        """The registry host it names: a Service's FQDN, else the name (a ServiceEntry host)."""
        return f"{self.name}.{self.namespace}.svc.{domain}" if self.is_service else self.name

    def __str__(self) -> str:
        return f"{self.name}.{self.namespace}" + (f":{self.port}" if self.port else "")


@record
class RouteFilter:
    """A ``filters[]`` entry: its type and, for ``RequestMirror``, where and how much is mirrored."""

    type: str
    line: int
    mirror: BackendRef | None = None
    mirror_fraction: Fraction | None = None


@record
class RouteMatch:
    """One match of a rule (every condition must hold).

    ``path`` is ``(type, value)`` with type ``Exact``, ``PathPrefix`` or ``RegularExpression`` (HTTPRoute;
    the API server's default ``PathPrefix /`` applied); ``headers`` and ``query_params`` are
    ``(name, type, value)`` (header names lower-cased; a name repeated keeps its first entry, as the spec
    says); ``grpc_method`` is ``(type, service, method)`` for a GRPCRoute.
    """

    path: tuple[str, str] | None
    headers: tuple[tuple[str, str, str], ...]
    query_params: tuple[tuple[str, str, str], ...]
    method: str | None
    grpc_method: tuple[str, str | None, str | None] | None
    line: int


@record
class RouteRule:
    """One ``rules[]`` entry; ``extras`` names fields present but not part of the split (timeouts, retry)."""

    name: str | None
    matches: tuple[RouteMatch, ...]
    filters: tuple[RouteFilter, ...]
    backends: tuple[BackendRef, ...]
    extras: tuple[str, ...]
    index: int
    line: int


@record
class GatewayRoute:
    """An ``HTTPRoute``, ``GRPCRoute``, ``TCPRoute`` or ``TLSRoute``.

    ``created`` is ``metadata.creationTimestamp`` when the manifest has one (RFC 3339 text, which sorts
    in time order): the spec breaks precedence ties between routes by it.
    """

    meta: Meta
    created: str | None
    parents: tuple[ParentRef, ...]
    hostnames: tuple[str, ...]
    rules: tuple[RouteRule, ...]

    @property
    def kind(self) -> str:
        """``HTTPRoute``, ``GRPCRoute``, ``TCPRoute`` or ``TLSRoute``."""
        return self.meta.kind

    @property
    def label(self) -> str:
        """``HTTPRoute ns/name``."""
        return f"{self.meta.kind} {self.meta.ref}"


@record
class Listener:
    """A Gateway listener: where it listens and which routes may attach.

    ``allowed_from`` is ``Same``, ``All``, ``Selector`` or ``None``; ``allowed_selector`` the selector's
    ``matchLabels`` (``matchExpressions`` are named in ``selector_expressions``); ``allowed_kinds`` the
    ``(group, kind)`` pairs given, empty meaning the protocol's route kinds.
    """

    name: str
    hostname: str | None
    port: int
    protocol: str
    allowed_from: str
    allowed_selector: tuple[tuple[str, str], ...]
    selector_expressions: bool
    allowed_kinds: tuple[tuple[str, str], ...]
    line: int

    def kinds(self) -> tuple[str, ...]:
        """Route kinds this listener admits (``AllowedRoutes.Kinds``, else by protocol)."""
        if self.allowed_kinds:
            return tuple(k for g, k in self.allowed_kinds if g == GATEWAY_GROUP)
        return {
            "HTTP": ("HTTPRoute", "GRPCRoute"),
            "HTTPS": ("HTTPRoute", "GRPCRoute"),
            "TLS": ("TLSRoute",),
            "TCP": ("TCPRoute",),
        }.get(self.protocol.upper(), ())


@record
class Gateway:
    """A Gateway API ``Gateway``: its class name, listeners and whether it has addresses.

    The one reading of a ``Gateway`` object: an ingress gateway for :mod:`meshstat.mesh.ingress`, an
    Istio waypoint (class :data:`WAYPOINT_CLASS`) for :mod:`meshstat.mesh.ambient`. ``has_addresses``
    says whether ``status.addresses`` is non-empty (a programmed gateway).
    """

    meta: Meta
    class_name: str
    listeners: tuple[Listener, ...]
    has_addresses: bool = False

    @property
    def is_waypoint_class(self) -> bool:
        """Of Istio's waypoint class ``istio-waypoint``."""
        return self.class_name == WAYPOINT_CLASS

    @property
    def waypoint_for(self) -> str | None:
        """The ``istio.io/waypoint-for`` label (``service``, ``workload``, ``all``, ``none``), if set."""
        return dict(self.meta.labels).get("istio.io/waypoint-for")

    def _hbone(self) -> Listener | None:
        return next((li for li in self.listeners if li.protocol == "HBONE" and li.port == 15008), None)

    @property
    def hbone_from(self) -> str:
        """``allowedRoutes.namespaces.from`` of the HBONE listener on 15008 (``Same`` without one)."""
        li = self._hbone()
        return li.allowed_from if li is not None else "Same"

    @property
    def hbone_selector(self) -> tuple[tuple[str, str], ...]:
        """The ``matchLabels`` of that listener's namespace selector."""
        li = self._hbone()
        return li.allowed_selector if li is not None else ()


@record
class GatewayClass:
    """A ``GatewayClass``: its name and ``spec.controllerName``."""

    meta: Meta
    controller: str


@record
class ReferenceGrant:
    """A ``ReferenceGrant``: ``from`` holds ``(group, kind, namespace)``, ``to`` ``(group, kind, name|None)``.

    It lives in the namespace of the objects it lets others refer to.
    """

    meta: Meta
    from_: tuple[tuple[str, str, str], ...]
    to: tuple[tuple[str, str, str | None], ...]

    def allows(
        self, group: str, kind: str, namespace: str, to_group: str, to_kind: str, to_name: str
    ) -> bool:
        """Whether a ``group``/``kind`` object in ``namespace`` may refer to ``to_kind`` ``to_name`` here."""
        return any(f == (group, kind, namespace) for f in self.from_) and any(
            (g, k) == (to_group, to_kind) and (n is None or n == to_name) for g, k, n in self.to
        )


@record
class IstioServer:
    """One ``servers[]`` entry of an Istio ``Gateway``: port, protocol and hosts (``ns/host`` allowed)."""

    port: int
    port_name: str
    protocol: str
    hosts: tuple[str, ...]
    line: int
    tls_mode: str = ""  # ``tls.mode`` (upper case; SIMPLE when ``tls`` gives none; empty without ``tls``)

    @property
    def is_http(self) -> bool:
        """Whether the gateway routes HTTP here: an HTTP-family protocol, or HTTPS with ``tls`` that does not pass the
        stream through (istio ``pkg/config/gateway/gateway.go``, ``IsHTTPServer`` and ``IsPassThroughServer``:
        PASSTHROUGH and AUTO_PASSTHROUGH forward TLS by SNI, with no HTTP route)."""
        return self.protocol in ("HTTP", "HTTP2", "GRPC", "GRPC-WEB") or (
            self.protocol == "HTTPS" and self.tls_mode not in ("", "PASSTHROUGH", "AUTO_PASSTHROUGH"))


@record
class IstioGateway:
    """A ``networking.istio.io`` ``Gateway``: which gateway pods (``selector``) open which servers."""

    meta: Meta
    selector: tuple[tuple[str, str], ...]
    servers: tuple[IstioServer, ...]


@dataclass
class GatewayObjects:
    """The objects of this module in a :class:`~meshstat.parsers.k8s.Manifests`, by kind, in file order.

    ``replaced`` holds ``(earlier, later)`` pairs of objects of one kind, namespace and name: applied in
    file order, the later one replaces the earlier (``kubectl apply``), so only the later one is listed.
    """

    routes: list[GatewayRoute] = field(default_factory=list)
    gateways: list[Gateway] = field(default_factory=list)
    classes: list[GatewayClass] = field(default_factory=list)
    grants: list[ReferenceGrant] = field(default_factory=list)
    istio_gateways: list[IstioGateway] = field(default_factory=list)
    replaced: list[tuple[Any, Any]] = field(default_factory=list)


def gateway_objects(manifests: Manifests) -> GatewayObjects:
    """Sort :attr:`Manifests.gateway_objects <meshstat.parsers.k8s.Manifests.gateway_objects>` by kind."""
    out = GatewayObjects()
    kinds: dict[type, list[Any]] = {
        GatewayRoute: out.routes,
        Gateway: out.gateways,
        GatewayClass: out.classes,
        ReferenceGrant: out.grants,
        IstioGateway: out.istio_gateways,
    }
    # read by load_manifests, the replaced objects are gone already (Manifests.replaced keeps the pairs)
    kept, pairs = last_applied(manifests.gateway_objects)
    types = tuple(kinds)
    out.replaced = [p for p in manifests.replaced if isinstance(p[1], types)] + pairs
    for obj in kept:
        kinds[type(obj)].append(obj)
    return out


# --------------------------------------------------------------------------- conversion


def _line(obj: Any, key: str | None = None) -> int:
    if key is not None and hasattr(obj, "line_of"):
        return int(obj.line_of(key))
    return int(getattr(obj, "line", 0) or 0)


def _mapping(ctx: ManifestContext, item: Any, parent: Any, key: str, what: str) -> Any:
    if not isinstance(item, dict):
        raise ctx.fail(f"expected each entry of '{key}' of {what} to be a mapping", parent, key, item)
    return item


def _version(ctx: ManifestContext, doc: Any, kind: str, versions: Iterable[str]) -> None:
    api = str(doc.get("apiVersion") or "")
    version = api.split("/", 1)[1] if "/" in api else api
    versions = tuple(versions)
    if version not in versions:
        group = api.split("/")[0]
        raise ctx.fail(
            f"expected apiVersion {' or '.join(group + '/' + v for v in versions)} for {kind} (no other "
            f"version serves it), got {api or 'none'}",
            doc,
            "apiVersion",
        )


def _enum(ctx: ManifestContext, obj: Any, key: str, what: str, allowed: tuple[str, ...], default: str) -> str:
    val = field_str(ctx, obj, key, what)
    if val is None:
        return default
    if val not in allowed:
        raise ctx.fail(
            f"expected '{key}' of {what} to be one of {', '.join(allowed)}", obj, key, val
        )
    return val


def _parent_refs(ctx: ManifestContext, spec: Any, namespace: str) -> tuple[ParentRef, ...]:
    out = []
    for p in field_list(ctx, spec, "parentRefs", "route spec"):
        p = _mapping(ctx, p, spec, "parentRefs", "route spec")
        ns = field_str(ctx, p, "namespace", "parentRef")
        out.append(
            ParentRef(
                group=field_str(ctx, p, "group", "parentRef") if p.get("group") is not None else GATEWAY_GROUP,
                kind=field_str(ctx, p, "kind", "parentRef") or "Gateway",
                namespace=ns or namespace,
                name=field_str(ctx, p, "name", "parentRef", required=True) or "",
                section_name=field_str(ctx, p, "sectionName", "parentRef") or None,
                port=field_int(ctx, p, "port", "parentRef", lo=1, hi=65535),
                line=_line(p),
            )
        )
    return tuple(out)


def _backend_ref(ctx: ManifestContext, b: Any, namespace: str, what: str, *, weighted: bool, kind: str) -> BackendRef:
    group = field_str(ctx, b, "group", what)
    bkind = field_str(ctx, b, "kind", what) or "Service"
    group = "" if group is None else group
    ns = field_str(ctx, b, "namespace", what)
    port = field_int(ctx, b, "port", what, lo=1, hi=65535)
    if port is None and group == "" and bkind == "Service":
        # object_reference_types.go: "Must have port for Service reference"
        raise ctx.fail(
            f"expected {what} to a Service to have a 'port' (the Service port; the API server "
            "refuses a Service reference without one)",
            b,
        )
    filters = _filters(ctx, b, namespace, what, kind) if weighted else ()
    return BackendRef(
        group=group,
        kind=bkind,
        name=field_str(ctx, b, "name", what, required=True) or "",
        namespace=ns or namespace,
        namespace_given=ns is not None,
        port=port,
        weight=(field_int(ctx, b, "weight", what, default=1, lo=0, hi=MAX_WEIGHT) if weighted else 1) or 0,
        filters=filters,
        line=_line(b),
    )


def _filters(ctx: ManifestContext, obj: Any, namespace: str, what: str, kind: str) -> tuple[RouteFilter, ...]:
    allowed = _GRPC_FILTERS if kind == "GRPCRoute" else _HTTP_FILTERS
    out = []
    for f in field_list(ctx, obj, "filters", what):
        f = _mapping(ctx, f, obj, "filters", what)
        ftype = _enum(ctx, f, "type", f"{kind} filter", allowed, "")
        if not ftype:
            raise ctx.fail(f"expected a {kind} filter to have a 'type'", f)
        if ftype != "RequestMirror":
            out.append(RouteFilter(ftype, _line(f)))
            continue
        rm = field_map(ctx, f, "requestMirror", "RequestMirror filter", required=True)
        ref = _backend_ref(
            ctx,
            field_map(ctx, rm, "backendRef", "requestMirror", required=True),
            namespace,
            "mirror backendRef",
            weighted=False,
            kind=kind,
        )
        frac = Fraction(1)
        if rm.get("percent") is not None:
            frac = Fraction(field_int(ctx, rm, "percent", "requestMirror", lo=0, hi=100) or 0, 100)
        elif rm.get("fraction") is not None:
            fr = field_map(ctx, rm, "fraction", "requestMirror")
            num = field_int(ctx, fr, "numerator", "mirror fraction", lo=0)
            den = field_int(ctx, fr, "denominator", "mirror fraction", default=100, lo=1)
            if num is None or den is None or num > den:
                raise ctx.fail("expected a mirror fraction with 0 <= numerator <= denominator", fr)
            frac = Fraction(num, den)
        out.append(RouteFilter(ftype, _line(f), mirror=ref, mirror_fraction=frac))
    return tuple(out)


def _regex(ctx: ManifestContext, obj: Any, key: str, value: str) -> None:
    """Refuse a pattern RE2 does not compile: Envoy evaluates ``RegularExpression`` matches with RE2."""
    problem = re2_syntax_error(value)
    if problem is not None:
        raise ctx.fail(f"expected an RE2 regular expression ({problem})", obj, key, value)


def _name_matches(ctx: ManifestContext, m: Any, key: str, what: str) -> tuple[tuple[str, str, str], ...]:
    out: list[tuple[str, str, str]] = []
    seen = set()
    for h in field_list(ctx, m, key, what):
        h = _mapping(ctx, h, m, key, what)
        kind = "header match" if key == "headers" else "query param match"
        name = field_str(ctx, h, "name", kind, required=True) or ""
        value = field_str(ctx, h, "value", kind, required=True) or ""
        mtype = _enum(ctx, h, "type", kind, ("Exact", "RegularExpression"), "Exact")
        if mtype == "RegularExpression":
            _regex(ctx, h, "value", value)
        key_name = name.lower() if key == "headers" else name
        if key_name in seen:  # "only the first entry with an equivalent name MUST be considered"
            continue
        seen.add(key_name)
        out.append((key_name, mtype, value))
    return tuple(out)


def _http_match(ctx: ManifestContext, m: Any) -> RouteMatch:
    path: tuple[str, str] | None = ("PathPrefix", "/")
    if m.get("path") is not None:
        pm = field_map(ctx, m, "path", "match")
        ptype = _enum(
            ctx, pm, "type", "path match", ("Exact", "PathPrefix", "RegularExpression"), "PathPrefix"
        )
        value = field_str(ctx, pm, "value", "path match")
        value = "/" if value is None else value
        if ptype != "RegularExpression" and not value.startswith("/"):
            raise ctx.fail(
                f"expected a {ptype} path to start with '/' (an absolute path)",
                pm,
                "value",
                value,
            )
        if ptype == "RegularExpression":
            _regex(ctx, pm, "value", value)
        path = (ptype, value)
    method = None
    if m.get("method") is not None:
        method = _enum(ctx, m, "method", "match", _METHODS, "GET")
    return RouteMatch(
        path=path,
        headers=_name_matches(ctx, m, "headers", "match"),
        query_params=_name_matches(ctx, m, "queryParams", "match"),
        method=method,
        grpc_method=None,
        line=_line(m),
    )


def _grpc_match(ctx: ManifestContext, m: Any) -> RouteMatch:
    grpc = None
    if m.get("method") is not None:
        gm = field_map(ctx, m, "method", "match")
        mtype = _enum(ctx, gm, "type", "gRPC method match", ("Exact", "RegularExpression"), "Exact")
        service = field_str(ctx, gm, "service", "gRPC method match") or None
        method = field_str(ctx, gm, "method", "gRPC method match") or None
        if service is None and method is None:
            raise ctx.fail("expected a gRPC method match to name a service or a method", gm)
        if mtype == "RegularExpression":
            _regex(ctx, gm, "service", f"{service or ''}/{method or ''}")
        grpc = (mtype, service, method)
    return RouteMatch(
        path=None,
        headers=_name_matches(ctx, m, "headers", "match"),
        query_params=(),
        method=None,
        grpc_method=grpc,
        line=_line(m),
    )


_RULE_EXTRAS = ("timeouts", "retry", "sessionPersistence")


def _rules(ctx: ManifestContext, spec: Any, kind: str, namespace: str) -> tuple[RouteRule, ...]:
    raw = field_list(ctx, spec, "rules", f"{kind} spec")
    if not raw and kind == "HTTPRoute" and "rules" not in spec:
        # HTTPRouteSpec.Rules: +kubebuilder:default={{matches: {{path: {type: "PathPrefix", value: "/"}}}}}
        return (
            RouteRule(
                None,
                (RouteMatch(("PathPrefix", "/"), (), (), None, None, _line(spec)),),
                (),
                (),
                (),
                0,
                _line(spec),
            ),
        )
    out = []
    for i, r in enumerate(raw):
        r = _mapping(ctx, r, spec, "rules", f"{kind} spec")
        matches: list[RouteMatch] = []
        if kind in ("HTTPRoute", "GRPCRoute"):
            for m in field_list(ctx, r, "matches", f"{kind} rule"):
                m = _mapping(ctx, m, r, "matches", f"{kind} rule")
                matches.append(_http_match(ctx, m) if kind == "HTTPRoute" else _grpc_match(ctx, m))
            if not matches and kind == "HTTPRoute":  # HTTPRouteRule.Matches default: PathPrefix /
                matches.append(RouteMatch(("PathPrefix", "/"), (), (), None, None, _line(r)))
        backends = tuple(
            _backend_ref(
                ctx,
                _mapping(ctx, b, r, "backendRefs", f"{kind} rule"),
                namespace,
                "backendRef",
                weighted=True,
                kind=kind,
            )
            for b in field_list(ctx, r, "backendRefs", f"{kind} rule")
        )
        out.append(
            RouteRule(
                name=field_str(ctx, r, "name", f"{kind} rule"),
                matches=tuple(matches),
                filters=_filters(ctx, r, namespace, f"{kind} rule", kind)
                if kind in ("HTTPRoute", "GRPCRoute")
                else (),
                backends=backends,
                extras=tuple(k for k in _RULE_EXTRAS if r.get(k) is not None),
                index=i,
                line=_line(r),
            )
        )
    return tuple(out)


def _timestamp(value: Any) -> str | None:
    """``creationTimestamp`` as RFC 3339 UTC text (YAML reads an unquoted one as a datetime)."""
    import datetime

    if value is None:
        return None
    if isinstance(value, datetime.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(datetime.UTC).replace(tzinfo=None)
        return value.strftime("%Y-%m-%dT%H:%M:%SZ")
    return str(value)


def _route(ctx: ManifestContext, doc: Any, out: Manifests) -> None:
    kind = str(doc.get("kind"))
    _version(ctx, doc, kind, _VERSIONS[kind])
    meta = read_meta(ctx, doc, kind)
    spec = field_map(ctx, doc, "spec", kind, required=True)
    created = _timestamp(field_map(ctx, doc, "metadata", kind).get("creationTimestamp"))
    out.gateway_objects.append(
        GatewayRoute(
            meta=meta,
            created=created,
            parents=_parent_refs(ctx, spec, meta.namespace),
            hostnames=field_str_list(ctx, spec, "hostnames", f"{kind} spec") if kind != "TCPRoute" else (),
            rules=_rules(ctx, spec, kind, meta.namespace),
        )
    )


def _gateway(ctx: ManifestContext, doc: Any, out: Manifests) -> None:
    _version(ctx, doc, "Gateway", _VERSIONS["Gateway"])
    meta = read_meta(ctx, doc, "Gateway")
    spec = field_map(ctx, doc, "spec", "Gateway", required=True)
    listeners = []
    for li in field_list(ctx, spec, "listeners", "Gateway spec"):
        li = _mapping(ctx, li, spec, "listeners", "Gateway spec")
        ar = field_map(ctx, li, "allowedRoutes", "listener")
        ns = field_map(ctx, ar, "namespaces", "allowedRoutes")
        sel = field_map(ctx, ns, "selector", "allowedRoutes namespaces")
        kinds = []
        for k in field_list(ctx, ar, "kinds", "allowedRoutes"):
            k = _mapping(ctx, k, ar, "kinds", "allowedRoutes")
            group = field_str(ctx, k, "group", "route kind")
            kinds.append(
                (
                    GATEWAY_GROUP if group is None else group,
                    field_str(ctx, k, "kind", "route kind", required=True) or "",
                )
            )
        listeners.append(
            Listener(
                name=field_str(ctx, li, "name", "listener", required=True) or "",
                hostname=field_str(ctx, li, "hostname", "listener") or None,
                port=field_int(ctx, li, "port", "listener", lo=1, hi=65535) or 0,
                protocol=field_str(ctx, li, "protocol", "listener", required=True) or "",
                allowed_from=_enum(
                    ctx, ns, "from", "allowedRoutes namespaces", ("All", "Same", "Selector", "None"), "Same"
                ),
                allowed_selector=field_str_map(ctx, sel, "matchLabels", "namespace selector"),
                selector_expressions=bool(sel.get("matchExpressions")),
                allowed_kinds=tuple(kinds),
                line=_line(li),
            )
        )
        if listeners[-1].port == 0:
            raise ctx.fail("expected a listener to have a 'port'", li)
    addresses = field_list(ctx, field_map(ctx, doc, "status", "Gateway"), "addresses", "Gateway status")
    out.gateway_objects.append(
        Gateway(
            meta=meta,
            class_name=field_str(ctx, spec, "gatewayClassName", "Gateway spec", required=True) or "",
            listeners=tuple(listeners),
            has_addresses=bool(addresses),
        )
    )


def _gateway_class(ctx: ManifestContext, doc: Any, out: Manifests) -> None:
    _version(ctx, doc, "GatewayClass", _VERSIONS["GatewayClass"])
    meta = read_meta(ctx, doc, "GatewayClass")
    spec = field_map(ctx, doc, "spec", "GatewayClass")
    out.gateway_objects.append(
        GatewayClass(meta, field_str(ctx, spec, "controllerName", "GatewayClass spec") or "")
    )


def _reference_grant(ctx: ManifestContext, doc: Any, out: Manifests) -> None:
    _version(ctx, doc, "ReferenceGrant", _VERSIONS["ReferenceGrant"])
    meta = read_meta(ctx, doc, "ReferenceGrant")
    spec = field_map(ctx, doc, "spec", "ReferenceGrant", required=True)
    froms, tos = [], []
    for f in field_list(ctx, spec, "from", "ReferenceGrant spec"):
        f = _mapping(ctx, f, spec, "from", "ReferenceGrant spec")
        group, kind, ns = (field_str(ctx, f, k, "ReferenceGrant from", required=True) or ""
                           for k in ("group", "kind", "namespace"))
        froms.append((group, kind, ns))
    for t in field_list(ctx, spec, "to", "ReferenceGrant spec"):
        t = _mapping(ctx, t, spec, "to", "ReferenceGrant spec")
        tos.append((field_str(ctx, t, "group", "ReferenceGrant to", required=True) or "",
                    field_str(ctx, t, "kind", "ReferenceGrant to", required=True) or "",
                    field_str(ctx, t, "name", "ReferenceGrant to") or None))
    out.gateway_objects.append(ReferenceGrant(meta, tuple(froms), tuple(tos)))


def _istio_gateway(ctx: ManifestContext, doc: Any, out: Manifests) -> None:
    _version(ctx, doc, "Gateway", _ISTIO_GATEWAY_VERSIONS)
    meta = read_meta(ctx, doc, "Gateway")
    spec = field_map(ctx, doc, "spec", "Gateway", required=True)
    servers = []
    for s in field_list(ctx, spec, "servers", "Gateway spec"):
        s = _mapping(ctx, s, spec, "servers", "Gateway spec")
        port = field_map(ctx, s, "port", "server", required=True)
        servers.append(
            IstioServer(
                port=field_int(ctx, port, "number", "server port", lo=1, hi=65535) or 0,
                port_name=field_str(ctx, port, "name", "server port") or "",
                protocol=(field_str(ctx, port, "protocol", "server port", required=True) or "").upper(),
                hosts=field_str_list(ctx, s, "hosts", "server"),
                line=_line(s),
                tls_mode=((field_str(ctx, field_map(ctx, s, "tls", "server"), "mode", "server tls") or "SIMPLE").upper()
                          if "tls" in s else ""),
            )
        )
        if servers[-1].port == 0:
            raise ctx.fail("expected a server port to have a 'number'", port)
        if not servers[-1].hosts:
            raise ctx.fail("expected a server to have at least one entry in 'hosts'", s)
    out.gateway_objects.append(
        IstioGateway(meta, field_str_map(ctx, spec, "selector", "Gateway spec"), tuple(servers))
    )


for _kind in ROUTE_KINDS:
    KIND_CONVERTERS[(GATEWAY_GROUP, _kind)] = _route
KIND_CONVERTERS[(GATEWAY_GROUP, "Gateway")] = _gateway
KIND_CONVERTERS[(GATEWAY_GROUP, "GatewayClass")] = _gateway_class
KIND_CONVERTERS[(GATEWAY_GROUP, "ReferenceGrant")] = _reference_grant
KIND_CONVERTERS[(_ISTIO_GROUP, "Gateway")] = _istio_gateway
