"""Gateway API objects and Istio's Gateway: structures with file:line, the API server's defaults, and bad input
refused with file:line and what was expected."""

from __future__ import annotations

import textwrap
from fractions import Fraction
from pathlib import Path

import pytest

from meshstat.errors import ConfigParseError
from meshstat.parsers.gateway_api import GATEWAY_GROUP, gateway_objects
from meshstat.parsers.k8s import KIND_CONVERTERS, load_manifests, parse_manifest_text

BOOKINFO = Path(__file__).resolve().parents[1] / "data" / "bookinfo"


def parse(text: str):  # noqa: ANN201
    return gateway_objects(parse_manifest_text(textwrap.dedent(text), "t.yaml"))


def test_kinds_are_registered_with_the_manifest_reader() -> None:
    for kind in ("HTTPRoute", "GRPCRoute", "TCPRoute", "TLSRoute", "Gateway", "GatewayClass", "ReferenceGrant"):
        assert (GATEWAY_GROUP, kind) in KIND_CONVERTERS
    assert ("networking.istio.io", "Gateway") in KIND_CONVERTERS
    assert ("gateway.networking.k8s.io", "UDPRoute") not in KIND_CONVERTERS  # still "ignored ... not modelled"


def test_bookinfo_90_10_route() -> None:
    m = load_manifests(str(BOOKINFO / "gateway-api" / "route-reviews-90-10.yaml"))
    assert not m.diagnostics
    (r,) = gateway_objects(m).routes
    assert (r.kind, r.meta.ref, r.meta.line, r.created, r.hostnames) == ("HTTPRoute", "default/reviews", 1, None, ())
    (p,) = r.parents
    assert p.is_service and not p.is_gateway
    assert (p.group, p.kind, p.namespace, p.name, p.port, p.section_name, p.line) == (
        "", "Service", "default", "reviews", 9080, None, 7)
    (rule,) = r.rules
    assert [(m.path, m.headers, m.method) for m in rule.matches] == [(("PathPrefix", "/"), (), None)]  # default
    assert [(b.name, b.namespace, b.port, b.weight, b.line, b.is_service) for b in rule.backends] == [
        ("reviews-v1", "default", 9080, 90, 13, True), ("reviews-v2", "default", 9080, 10, 16, True)]


def test_bookinfo_gateway_and_istio_gateway() -> None:
    objs = gateway_objects(load_manifests([str(BOOKINFO / "gateway-api" / "bookinfo-gateway.yaml"),
                                           str(BOOKINFO / "networking" / "bookinfo-gateway.yaml")]))
    (gw,) = objs.gateways
    (li,) = gw.listeners
    assert (gw.class_name, li.name, li.port, li.protocol, li.hostname, li.allowed_from, li.line) == (
        "istio", "http", 80, "HTTP", None, "Same", 8)
    assert li.kinds() == ("HTTPRoute", "GRPCRoute")
    (route,) = objs.routes
    assert str(route.parents[0]) == "Gateway default/bookinfo-gateway"
    assert [m.path for m in route.rules[0].matches] == [
        ("Exact", "/productpage"), ("PathPrefix", "/static"), ("Exact", "/login"), ("Exact", "/logout"),
        ("PathPrefix", "/api/v1/products")]
    (igw,) = objs.istio_gateways
    assert igw.selector == (("istio", "ingressgateway"),)
    assert [(s.port, s.port_name, s.protocol, s.hosts, s.line) for s in igw.servers] == [
        (8080, "http", "HTTP", ("*",), 11)]


def test_defaults_matches_filters_and_timestamps() -> None:
    objs = parse("""
        apiVersion: gateway.networking.k8s.io/v1
        kind: HTTPRoute
        metadata:
          name: r
          namespace: shop
          creationTimestamp: 2024-05-01T10:00:00Z
        spec:
          parentRefs: [{name: gw, sectionName: http}]
          rules:
          - matches:
            - path: {type: RegularExpression, value: "/v[0-9]+/.*"}
              headers: [{name: X-User, value: a}, {name: x-user, value: b}, {name: env, type: RegularExpression, value: "p.*"}]
              queryParams: [{name: Q, value: "1"}]
              method: POST
            filters:
            - type: RequestMirror
              requestMirror: {backendRef: {name: shadow, port: 80}, fraction: {numerator: 1, denominator: 8}}
            - {type: URLRewrite, urlRewrite: {path: {type: ReplaceFullPath, replaceFullPath: /}}}
            backendRefs:
            - {name: a, port: 80}
            - {name: b, namespace: other, port: 81, weight: 0}
            timeouts: {request: 1s}
          - backendRefs: [{name: c, port: 80}]
        ---
        apiVersion: gateway.networking.k8s.io/v1
        kind: HTTPRoute
        metadata: {name: no-rules}
        spec:
          parentRefs: [{name: gw}]
    """)
    r, bare = objs.routes
    assert r.created == "2024-05-01T10:00:00Z"  # YAML reads it as a datetime; kept as RFC 3339 text
    (p,) = r.parents
    assert (p.group, p.kind, p.namespace, p.section_name) == (GATEWAY_GROUP, "Gateway", "shop", "http")
    first, second = r.rules
    (m,) = first.matches
    assert m.path == ("RegularExpression", "/v[0-9]+/.*")
    assert m.headers == (("x-user", "Exact", "a"), ("env", "RegularExpression", "p.*"))  # first of a name kept
    assert (m.query_params, m.method) == ((("Q", "Exact", "1"),), "POST")
    mirror, rewrite = first.filters
    assert (mirror.type, str(mirror.mirror), mirror.mirror_fraction) == ("RequestMirror", "shadow.shop:80",
                                                                         Fraction(1, 8))
    assert rewrite.type == "URLRewrite" and rewrite.mirror is None
    a, b = first.backends
    assert (a.weight, a.namespace, a.namespace_given) == (1, "shop", False)
    assert (b.weight, b.namespace, b.namespace_given) == (0, "other", True)
    assert first.extras == ("timeouts",)
    assert [m.path for m in second.matches] == [("PathPrefix", "/")]
    ((rule,),) = [bare.rules]  # HTTPRouteSpec.Rules default: one rule matching PathPrefix /
    assert [m.path for m in rule.matches] == [("PathPrefix", "/")] and not rule.backends


def test_grpc_tcp_tls_routes_and_grants() -> None:
    objs = parse("""
        apiVersion: gateway.networking.k8s.io/v1
        kind: GRPCRoute
        metadata: {name: g}
        spec:
          parentRefs: [{group: "", kind: Service, name: echo, port: 7070}]
          rules:
          - matches: [{method: {service: pkg.Echo, method: Say}}, {headers: [{name: a, value: b}]}]
            backendRefs: [{name: echo-v1, port: 7070}]
        ---
        apiVersion: gateway.networking.k8s.io/v1alpha2
        kind: TCPRoute
        metadata: {name: t}
        spec:
          parentRefs: [{group: "", kind: Service, name: db}]
          rules: [{backendRefs: [{name: db-a, port: 5432, weight: 3}, {name: db-b, port: 5432}]}]
        ---
        apiVersion: gateway.networking.k8s.io/v1alpha3
        kind: TLSRoute
        metadata: {name: s}
        spec:
          parentRefs: [{name: gw}]
          hostnames: [a.example.com]
          rules: [{backendRefs: [{name: tls, port: 443}]}]
        ---
        apiVersion: gateway.networking.k8s.io/v1beta1
        kind: ReferenceGrant
        metadata: {name: rg, namespace: backends}
        spec:
          from: [{group: gateway.networking.k8s.io, kind: HTTPRoute, namespace: edge}]
          to: [{group: "", kind: Service}]
        ---
        apiVersion: gateway.networking.k8s.io/v1
        kind: GatewayClass
        metadata: {name: istio}
        spec: {controllerName: istio.io/gateway-controller}
    """)
    g, t, s = objs.routes
    assert [m.grpc_method for m in g.rules[0].matches] == [("Exact", "pkg.Echo", "Say"), None]
    assert [(b.name, b.weight) for b in t.rules[0].backends] == [("db-a", 3), ("db-b", 1)]
    assert t.rules[0].matches == () and t.parents[0].port is None
    assert s.hostnames == ("a.example.com",)
    (rg,) = objs.grants
    assert rg.allows(GATEWAY_GROUP, "HTTPRoute", "edge", "", "Service", "anything")
    assert not rg.allows(GATEWAY_GROUP, "GRPCRoute", "edge", "", "Service", "anything")
    assert not rg.allows(GATEWAY_GROUP, "HTTPRoute", "other", "", "Service", "anything")
    assert objs.classes[0].controller == "istio.io/gateway-controller"


BAD = [
    ("weight: -1", "backendRefs: [{name: a, port: 80, weight: -1}]", 8,
     "expected 'weight' of backendRef to be in [0, 1000000]"),
    ("weight over the maximum", "backendRefs: [{name: a, port: 80, weight: 1000001}]", 8,
     "expected 'weight' of backendRef to be in [0, 1000000]"),
    ("weight 1.5", "backendRefs: [{name: a, port: 80, weight: 1.5}]", 8,
     "expected 'weight' of backendRef to be an integer"),
    ("Service without port", "backendRefs: [{name: a}]", 8, "expected backendRef to a Service to have a 'port'"),
    ("relative path", "matches: [{path: {type: PathPrefix, value: api}}]", 8,
     "expected a PathPrefix path to start with '/'"),
    ("unknown path type", "matches: [{path: {type: Prefix, value: /api}}]", 8,
     "expected 'type' of path match to be one of Exact, PathPrefix, RegularExpression (got 'Prefix')"),
    ("unknown method", "matches: [{method: FETCH}]", 8, "expected 'method' of match to be one of GET"),
    ("header without value", "matches: [{headers: [{name: a}]}]", 8, "expected header match to have 'value'"),
    ("unknown filter", "filters: [{type: Teleport}]", 8, "expected 'type' of HTTPRoute filter to be one of"),
    ("mirror fraction", "filters: [{type: RequestMirror, requestMirror: {backendRef: {name: m, port: 1}, "
     "fraction: {numerator: 3, denominator: 2}}}]", 8, "expected a mirror fraction with 0 <= numerator"),
    ("port 0", "backendRefs: [{name: a, port: 0}]", 8, "expected 'port' of backendRef to be in [1, 65535]"),
    ("bad regex", "matches: [{path: {type: RegularExpression, value: '/a('}}]", 8,
     "expected an RE2 regular expression (missing ): /a()"),
    ("bad header regex", "matches: [{headers: [{name: a, type: RegularExpression, value: '*'}]}]", 8,
     "expected an RE2 regular expression (no argument for repetition operator: *)"),
    ("rules not a list", None, 7, "expected 'rules' of HTTPRoute spec to be a list"),
]


@pytest.mark.parametrize(("case", "rule", "line", "phrase"), BAD, ids=[b[0] for b in BAD])
def test_bad_input_names_file_line_and_what_was_expected(case: str, rule: str | None, line: int, phrase: str) -> None:
    body = f"  rules:\n  - {rule}\n" if rule is not None else "  rules: {a: 1}\n"
    text = ("apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata:\n  name: r\nspec:\n"
            "  parentRefs: [{name: gw}]\n" + body)
    with pytest.raises(ConfigParseError) as err:
        parse_manifest_text(text, "bad.yaml")
    assert err.value.source == "bad.yaml"
    assert phrase in str(err.value)
    assert err.value.line == line, case


def test_bad_versions_and_objects() -> None:
    with pytest.raises(ConfigParseError, match="expected apiVersion gateway.networking.k8s.io/v1 or "
                       r"gateway.networking.k8s.io/v1beta1 for HTTPRoute \(no other version serves it\), got "
                       "gateway.networking.k8s.io/v1alpha2$") as e:
        parse_manifest_text("apiVersion: gateway.networking.k8s.io/v1alpha2\nkind: HTTPRoute\nmetadata: {name: r}\n"
                            "spec: {}\n", "v.yaml")
    assert e.value.line == 1
    with pytest.raises(ConfigParseError, match="expected parentRef to have 'name'") as e:
        parse("""
            apiVersion: gateway.networking.k8s.io/v1
            kind: HTTPRoute
            metadata: {name: r}
            spec:
              parentRefs:
              - kind: Service
        """)
    assert e.value.line == 7
    with pytest.raises(ConfigParseError, match="expected a listener to have a 'port'") as e:
        parse("""
            apiVersion: gateway.networking.k8s.io/v1
            kind: Gateway
            metadata: {name: g}
            spec:
              gatewayClassName: istio
              listeners:
              - {name: http, protocol: HTTP}
        """)
    assert e.value.line == 8
    with pytest.raises(ConfigParseError, match="expected a gRPC method match to name a service or a method"):
        parse("""
            apiVersion: gateway.networking.k8s.io/v1
            kind: GRPCRoute
            metadata: {name: g}
            spec:
              rules: [{matches: [{method: {type: Exact}}]}]
        """)
    with pytest.raises(ConfigParseError, match="expected a server to have at least one entry in 'hosts'"):
        parse("""
            apiVersion: networking.istio.io/v1
            kind: Gateway
            metadata: {name: g}
            spec:
              servers: [{port: {number: 80, name: http, protocol: HTTP}}]
        """)
