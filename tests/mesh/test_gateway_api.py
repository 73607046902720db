"""Gateway API in the mesh and at the ingress: Bookinfo's samples, the spec's precedence, 500 shares, and the
conformance test HTTPRouteWeight (its model and its flake probability)."""

from __future__ import annotations

import textwrap
from fractions import Fraction
from pathlib import Path

import pytest

from meshstat.mesh import Mesh, version_of
from meshstat.engine.mesh import compare_paths
from meshstat.mesh.gateway_api import httproute_split, mesh_routes, precedence, sidecar_split, split_layers, split_node
from meshstat.mesh.ingress import ingress_paths
from meshstat.model import Route
from meshstat.parsers.gateway_api import gateway_objects
from meshstat.parsers.k8s import load_manifests, parse_manifest_text

DATA = Path(__file__).resolve().parents[1] / "data"
BOOKINFO = DATA / "bookinfo"
APP = [
    str(BOOKINFO / "platform" / "kube" / "bookinfo.yaml"),
    str(BOOKINFO / "platform" / "kube" / "bookinfo-versions.yaml"),
]
INJECTED = """
apiVersion: v1
kind: Namespace
metadata:
  name: default
  labels:
    istio-injection: enabled
"""


def shares(route) -> dict[str, Fraction]:
    """Exact shares by version label; failures (outcome labels) by their leaf name."""
    out: dict[str, Fraction] = {}
    for b, s in zip(route.backends(), route.exact_shares(), strict=True):
        key = b.name if "outcome" in dict(b.labels) else version_of(b.labels)
        out[key] = out.get(key, Fraction(0)) + s
    return {k: v for k, v in out.items() if v}


def bookinfo(*files: str, extra: str = "") -> Mesh:
    m = load_manifests([*APP, *(str(BOOKINFO / f) for f in files)])
    m.extend(
        parse_manifest_text(INJECTED + ("---\n" + textwrap.dedent(extra) if extra else ""), "extra.yaml")
    )
    return Mesh(m)


def sidecar(mesh: Mesh, service: str = "reviews", client: str = "default/productpage-v1", **request):
    info, _ = mesh.find_service(service)
    diags: list = []
    layers: list = []
    wl = mesh.manifests.workload(client)
    route = mesh.sidecar_route(wl, info, info.ports[0].port, diags=diags, layers=layers, **request)
    return route, diags, layers


# --------------------------------------------------------------------------- Bookinfo's samples


@pytest.mark.parametrize(
    ("sample", "expected"),
    [
        ("gateway-api/route-reviews-90-10.yaml", {"v1": Fraction(9, 10), "v2": Fraction(1, 10)}),
        ("gateway-api/route-reviews-50-v3.yaml", {"v1": Fraction(1, 2), "v3": Fraction(1, 2)}),
        ("gateway-api/route-reviews-v3.yaml", {"v3": Fraction(1)}),
        ("gateway-api/route-reviews-v1.yaml", {"v1": Fraction(1)}),
        ("gateway-api/route-all-v1.yaml", {"v1": Fraction(1)}),
        # the VirtualService twins give the same splits through subsets
        ("networking/virtual-service-reviews-90-10.yaml", {"v1": Fraction(9, 10), "v2": Fraction(1, 10)}),
        ("networking/virtual-service-reviews-50-v3.yaml", {"v1": Fraction(1, 2), "v3": Fraction(1, 2)}),
        ("networking/virtual-service-reviews-v3.yaml", {"v3": Fraction(1)}),
    ],
)
def test_bookinfo_samples_give_istios_split(sample: str, expected: dict[str, Fraction]) -> None:
    extra = ("networking/destination-rule-all.yaml",) if sample.startswith("networking") else ()
    mesh = bookinfo(sample, *extra)
    route, diags, _ = sidecar(mesh)
    assert shares(route) == expected
    assert not [d for d in diags if d.level == "warning"]


def test_bookinfo_90_10_layers_and_kube_proxy() -> None:
    mesh = bookinfo("gateway-api/route-reviews-90-10.yaml")
    info, _ = mesh.find_service("reviews")
    paths = {p.kind: p for p in mesh.client_paths(info, 9080)}
    assert shares(paths["sidecar"].route) == {"v1": Fraction(9, 10), "v2": Fraction(1, 10)}
    # without a sidecar nothing reads the HTTPRoute: kube-proxy over the three pods (1/3 up to its 2**-32 steps)
    assert shares(paths["kube-proxy"].route) == pytest.approx(
        dict.fromkeys(("v1", "v2", "v3"), 1 / 3), abs=1e-9
    )
    layers = [(x.layer, x.component) for x in paths["sidecar"].layers]
    assert ("Gateway API route", "HTTPRoute default/reviews rules[0]") in layers
    assert ("Envoy cluster", "outbound|9080||reviews-v1.default.svc.cluster.local") in layers
    route = next(x for x in paths["sidecar"].layers if x.layer == "Envoy route")
    assert route.decision == "weighted clusters reviews-v1=90, reviews-v2=10 (per request)"
    assert route.where.endswith("route-reviews-90-10.yaml:12")


def test_bookinfo_test_v2_header_match_jason() -> None:
    mesh = bookinfo("gateway-api-docs/route-reviews-test-v2.yaml")
    assert shares(sidecar(mesh, headers={"End-User": "jason"})[0]) == {"v2": Fraction(1)}
    assert shares(sidecar(mesh, headers={"end-user": "alice"})[0]) == {"v1": Fraction(1)}
    assert shares(sidecar(mesh)[0]) == {"v1": Fraction(1)}
    vs = bookinfo("networking/virtual-service-reviews-test-v2.yaml", "networking/destination-rule-all.yaml")
    assert shares(sidecar(vs, headers={"end-user": "jason"})[0]) == {"v2": Fraction(1)}


def test_compare_f_reads_the_httproute() -> None:
    """Before, compare -f found no routed service and exited 2; now reviews is routed by the HTTPRoute."""
    files = [*APP, str(BOOKINFO / "gateway-api" / "route-reviews-90-10.yaml")]
    cmp_ = compare_paths(files, n=None)
    got = cmp_.shares("reviews.default:9080")
    assert got["sidecar (Envoy)"] == {"v1": Fraction(9, 10), "v2": Fraction(1, 10)}
    assert got["no sidecar (kube-proxy)"] == pytest.approx(dict.fromkeys(("v1", "v2", "v3"), 1 / 3), abs=1e-9)


def test_api_for_a_proxy_that_serves_every_client() -> None:
    """What a waypoint executes: the Service's producer routes, as a split, a model tree and layer rows."""
    mesh = bookinfo("gateway-api/route-reviews-90-10.yaml")
    info, _ = mesh.find_service("reviews")
    split = sidecar_split(mesh, info, 9080, None, None)
    assert split is not None and split.unit == "request" and split.notes[0].startswith("producer route for every client")
    assert [(b.destination.host, b.destination.port, b.weight) for b in split.backends] == [
        ("reviews-v1.default.svc.cluster.local", 9080, 90), ("reviews-v2.default.svc.cluster.local", 9080, 10)]
    layers: list = []
    node = split_node(split, lambda d: mesh._cluster_node(d, info, 9080, "default", split.unit, split.route, [], [],
                                                          layers))
    assert shares(Route(root=node, name="waypoint")) == {"v1": Fraction(9, 10), "v2": Fraction(1, 10)}
    assert [r[0] for r in split_layers(split)] == ["Gateway API route", "Envoy route"]
    assert len(layers) == 2  # one "Envoy cluster" layer per backend Service


def test_a_route_applied_again_replaces_the_earlier_one() -> None:
    mesh = bookinfo("gateway-api/route-reviews-90-10.yaml", "gateway-api/route-reviews-v3.yaml")
    route, diags, _ = sidecar(mesh)
    assert shares(route) == {"v3": Fraction(1)}  # kubectl apply in file order: the last definition stays
    (w,) = [d for d in diags if d.level == "warning"]
    assert w.source.endswith("route-reviews-90-10.yaml") and "defined again at" in w.message


# --------------------------------------------------------------------------- precedence (the spec's order)

ROUTE = """
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: {name}
  namespace: {ns}
{meta}spec:
  parentRefs:
  - {{group: "", kind: Service, name: reviews, namespace: default, port: 9080}}
  rules:
{rules}
"""


def route_yaml(rules: str, name: str = "r", ns: str = "default", meta: str = "") -> str:
    return ROUTE.format(
        name=name, ns=ns, meta=meta, rules=textwrap.indent(textwrap.dedent(rules).strip(), "  ")
    )


def split_of(*docs: str, **request):
    mesh = bookinfo(extra="\n---\n".join(docs))
    info, _ = mesh.find_service("reviews")
    routes, _ = mesh_routes(gateway_objects(mesh.manifests).routes, info, 9080, "default")
    return httproute_split(routes, "Service default/reviews:9080", registry=mesh.registry, **request)


def to(version: str) -> str:
    return f"backendRefs: [{{name: reviews-{version}, port: 9080}}]"


def chosen(split) -> str:
    return ",".join(b.ref.name for b in split.backends) or str(split.outcome)


def test_exact_path_beats_longer_prefix_and_prefix_is_per_segment() -> None:
    r = route_yaml(f"""
        - matches: [{{path: {{type: PathPrefix, value: /api/v1/}}}}]
          {to("v1")}
        - matches: [{{path: {{type: Exact, value: /api}}}}]
          {to("v2")}
        - matches: [{{path: {{type: PathPrefix, value: /api}}}}]
          {to("v3")}
    """)
    assert chosen(split_of(r, path="/api")) == "reviews-v2"  # Exact first
    assert chosen(split_of(r, path="/api/v1")) == "reviews-v1"  # trailing / of the prefix ignored
    assert chosen(split_of(r, path="/api/v1/x?y=1")) == "reviews-v1"  # longest prefix
    assert chosen(split_of(r, path="/api/v2")) == "reviews-v3"
    assert chosen(split_of(r, path="/apis")) == "404 no route matched"  # /api does not match /apis


def test_method_then_headers_then_query_params() -> None:
    r = route_yaml(f"""
        - matches: [{{path: {{type: PathPrefix, value: /}}, queryParams: [{{name: a, value: "1"}}, {{name: b, value: "2"}}]}}]
          {to("v1")}
        - matches: [{{path: {{type: PathPrefix, value: /}}, headers: [{{name: x, value: "1"}}]}}]
          {to("v2")}
        - matches: [{{path: {{type: PathPrefix, value: /}}, method: POST}}]
          {to("v3")}
    """)
    both = {"path": "/?a=1&b=2", "headers": {"X": "1"}}
    assert chosen(split_of(r, method="POST", **both)) == "reviews-v3"  # a method match beats headers
    assert chosen(split_of(r, **both)) == "reviews-v2"  # one header beats two query params
    assert chosen(split_of(r, path="/?a=1&b=2")) == "reviews-v1"
    assert chosen(split_of(r, path="/?a=1")) == "404 no route matched"
    r2 = route_yaml(f"""
        - matches: [{{headers: [{{name: x, value: "1"}}]}}]
          {to("v1")}
        - matches: [{{headers: [{{name: x, value: "1"}}, {{name: y, type: RegularExpression, value: "a.*"}}]}}]
          {to("v2")}
    """)
    assert chosen(split_of(r2, headers={"x": "1", "y": "abc"})) == "reviews-v2"  # more headers first
    assert chosen(split_of(r2, headers={"x": "1", "y": "bc"})) == "reviews-v1"


def test_ties_across_routes_oldest_then_alphabetical_then_rule_order() -> None:
    old = route_yaml(f"- {to('v1')}", name="zz", meta="  creationTimestamp: 2024-01-01T00:00:00Z\n")
    new = route_yaml(f"- {to('v2')}", name="aa", meta="  creationTimestamp: '2025-01-01T00:00:00Z'\n")
    split = split_of(new, old)
    assert chosen(split) == "reviews-v1"  # the older route, whatever its name and file order
    assert any("creationTimestamp" in n for n in split.notes)
    # no timestamps: "{namespace}/{name}" in alphabetical order
    assert chosen(split_of(route_yaml(f"- {to('v1')}", name="b"), route_yaml(f"- {to('v2')}", name="a"))) == (
        "reviews-v2"
    )
    # within a route, the first rule
    assert chosen(split_of(route_yaml(f"- {to('v3')}\n- {to('v1')}"))) == "reviews-v3"


def test_grpc_method_matches_as_istio_converts_them() -> None:
    grpc = route_yaml(f"""
        - matches: [{{method: {{service: pkg.Echo, method: Say}}}}]
          {to("v1")}
        - matches: [{{method: {{service: pkg.Echo}}}}]
          {to("v2")}
        - matches: [{{method: {{method: Ping}}}}]
          {to("v3")}
    """).replace("kind: HTTPRoute", "kind: GRPCRoute")
    assert chosen(split_of(grpc, path="/pkg.Echo/Say", method="POST")) == "reviews-v1"  # exact /Service/Method
    assert chosen(split_of(grpc, path="/pkg.Echo/Other", method="POST")) == "reviews-v2"  # prefix /Service/
    assert chosen(split_of(grpc, path="/other.Svc/Ping", method="POST")) == "reviews-v3"  # regex /[^/]+/Ping
    assert chosen(split_of(grpc, path="/other.Svc/Pong", method="POST")) == "404 no route matched"


def test_istio_golden_conversion_order_and_weights() -> None:
    """Istio's own test (pilot/pkg/config/kube/gateway/testdata/weighted.yaml and its golden): the route's rules
    in the generated VirtualService's order, with the same destinations and weights (weight 0 dropped)."""
    inp = load_manifests(str(DATA / "istio" / "gateway-api-weighted-httproute.input.yaml"))
    golden = load_manifests(str(DATA / "istio" / "gateway-api-weighted-httproute.golden-virtualservice.yaml"))
    http = next(r for r in gateway_objects(inp).routes if r.kind == "HTTPRoute")
    order = precedence([http])
    vs = golden.virtual_services[0]
    assert [f"default.http.{rule.index}" for _, rule, _ in order] == [r.name for r in vs.http]
    for (_, rule, _), want in zip(order, vs.http, strict=True):
        live = [
            (f"{b.name}.{b.namespace}.svc.domain.suffix", b.port, b.weight) for b in rule.backends if b.weight
        ]
        got = [(d.host, d.port, d.weight or 1) for d in want.destinations]
        assert live == got or (len(live) == 1 and [x[:2] for x in live] == [x[:2] for x in got])


# --------------------------------------------------------------------------- weights, 500s, grants


def test_weight_zero_is_never_chosen_and_all_zero_is_500() -> None:
    split = split_of(
        route_yaml("""
        - backendRefs: [{name: reviews-v1, port: 9080, weight: 0}, {name: reviews-v2, port: 9080}]
    """)
    )
    assert chosen(split) == "reviews-v2" and [b.name for b in split.dropped] == ["reviews-v1"]
    zero = route_yaml(
        "- backendRefs: [{name: reviews-v1, port: 9080, weight: 0}, {name: reviews-v2, port: 9080, weight: 0}]"
    )
    mesh = bookinfo(extra=zero)
    route, _, _ = sidecar(mesh)
    assert shares(route) == {"500 no backendRef with a weight above 0 (HTTPRoute default/r rules[0])": 1}
    mesh = bookinfo(extra=route_yaml("- matches: [{path: {value: /x}}]"))  # a rule without backendRefs
    assert list(shares(sidecar(mesh, path="/x")[0])) == [
        "500 no backendRef with a weight above 0 (HTTPRoute default/r rules[0])"
    ]
    assert list(shares(sidecar(mesh, path="/y")[0])) == [
        "404 no route matched (Service default/reviews:9080)"
    ]


def test_missing_backend_gets_its_share_of_500() -> None:
    mesh = bookinfo(
        extra=route_yaml("""
        - backendRefs: [{name: reviews-v1, port: 9080, weight: 3}, {name: reviews-v9, port: 9080}, {name: reviews-v2, port: 1234}]
    """)
    )
    route, _, _ = sidecar(mesh)
    assert shares(route) == {
        "v1": Fraction(3, 5),
        "500 BackendNotFound (Service default/reviews-v9 does not exist)": Fraction(1, 5),
        "500 cluster not found (reviews-v2.default has no port 1234; ports: 9080)": Fraction(1, 5),
    }
    info, _ = mesh.find_service("reviews")
    diags = []
    mesh.client_paths(info, 9080, diags=diags)
    assert any("20%) of requests" in d.message and "BackendNotFound" in d.message for d in diags)


GATEWAY = """
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw, namespace: edge}
spec:
  gatewayClassName: istio
  listeners:
  - {name: http, port: 80, protocol: HTTP, hostname: "*.example.com", allowedRoutes: {namespaces: {from: All}}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: front, namespace: edge}
spec:
  parentRefs: [{name: gw}]
  hostnames: [shop.example.com, shop.example.net]
  rules:
  - backendRefs:
    - {name: reviews-v1, namespace: default, port: 9080}
    - {name: reviews-v2, namespace: default, port: 9080}
"""
GRANT = """
apiVersion: gateway.networking.k8s.io/v1beta1
kind: ReferenceGrant
metadata: {name: let-edge-in, namespace: default}
spec:
  from: [{group: gateway.networking.k8s.io, kind: HTTPRoute, namespace: edge}]
  to: [{group: "", kind: Service, name: reviews-v1}]
"""


def test_reference_grant_decides_the_500_share_at_the_ingress() -> None:
    mesh = bookinfo(extra=GATEWAY)
    info, _ = mesh.find_service("reviews-v1")
    diags: list = []
    (path,) = ingress_paths(mesh, info, 9080, diags=diags)
    assert path.kind == "ingress" and path.label == "ingress (Gateway gw:80)"
    assert shares(path.route) == {
        "500 RefNotPermitted (reviews-v1.default:9080: no ReferenceGrant in namespace default lets HTTPRoutes "
        "of edge refer to it)": Fraction(1, 2),
        "500 RefNotPermitted (reviews-v2.default:9080: no ReferenceGrant in namespace default lets HTTPRoutes "
        "of edge refer to it)": Fraction(1, 2),
    }
    assert any("50%) of requests" in d.message for d in diags)
    mesh = bookinfo(extra=GATEWAY + "---\n" + GRANT)  # the grant names reviews-v1 only
    (path,) = ingress_paths(mesh, info, 9080)
    got = shares(path.route)
    assert got["v1"] == Fraction(1, 2) and sum(
        v for k, v in got.items() if k.startswith("500 RefNotPermitted")
    ) == (Fraction(1, 2))
    layers = [x.layer for x in path.layers]
    assert layers[:4] == ["client", "load balancer", "Gateway listener", "Gateway API route"]
    assert (
        "Host shop.example.com" in path.layers[0].decision
    )  # the route's hostname that meets the listener's


def test_mesh_routes_need_no_grant_and_consumer_routes_come_first() -> None:
    consumer = route_yaml(f"- {to('v3')}", name="mine", ns="other")
    producer = route_yaml(f"- {to('v1')}", name="theirs")
    cross = route_yaml(
        "- backendRefs: [{name: reviews-v2, namespace: default, port: 9080}]", name="x", ns="third"
    )
    mesh = bookinfo(extra=f"{producer}\n---\n{consumer}\n---\n{cross}")
    info, _ = mesh.find_service("reviews")
    routes = gateway_objects(mesh.manifests).routes
    assert [r.meta.ref for r in mesh_routes(routes, info, 9080, "other")[0]] == ["other/mine"]
    assert mesh_routes(routes, info, 9080, "other")[1] == "consumer"
    assert [r.meta.ref for r in mesh_routes(routes, info, 9080, "default")[0]] == ["default/theirs"]
    assert [r.meta.ref for r in mesh_routes(routes, info, 9080, None)[0]] == ["default/theirs"]
    mine = httproute_split(mesh_routes(routes, info, 9080, "third")[0], "p", registry=mesh.registry)
    assert chosen(mine) == "reviews-v2" and any(
        "GEP-1294" in n for n in mine.notes
    )  # no ReferenceGrant needed


def test_httproute_and_virtualservice_for_one_host() -> None:
    vs_files = ("networking/virtual-service-reviews-v3.yaml", "networking/destination-rule-all.yaml")
    # the HTTPRoute is in the client's namespace: Istio lists it first, whatever the order
    mesh = bookinfo(*vs_files, "gateway-api/route-reviews-90-10.yaml")
    route, diags, _ = sidecar(mesh)
    assert shares(route) == {"v1": Fraction(9, 10), "v2": Fraction(1, 10)}
    (w,) = [d for d in diags if d.level == "warning"]
    assert "VirtualService default/reviews is ignored" in w.message and w.source.endswith(
        "virtual-service-reviews-v3.yaml"
    )
    # a client in another namespace: the older object wins (manifest order stands for creation order)
    extra = (
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: c, namespace: web}\nspec:\n  template:\n"
        "    metadata: {labels: {app: c}}\n"
    )
    mesh = bookinfo(*vs_files, "gateway-api/route-reviews-90-10.yaml", extra=extra)
    route, diags, _ = sidecar(mesh, client="web/c")
    assert shares(route) == {"v3": Fraction(1)}
    assert any("HTTPRoute default/reviews is ignored" in d.message for d in diags)
    # a VirtualService exported to its own namespace only is listed before every public one, the route's too
    private = (BOOKINFO / "networking" / "virtual-service-reviews-v3.yaml").read_text().replace(
        "spec:\n", "spec:\n  exportTo: [.]\n")
    mesh = bookinfo("networking/destination-rule-all.yaml", "gateway-api/route-reviews-90-10.yaml", extra=private)
    route, diags, _ = sidecar(mesh)
    assert shares(route) == {"v3": Fraction(1)}
    assert any("exported to named namespaces only (.)" in d.message for d in diags)


def test_mirror_and_other_filters_are_noted_not_split() -> None:
    split = split_of(
        route_yaml("""
        - filters:
          - type: RequestMirror
            requestMirror: {backendRef: {name: reviews-v3, port: 9080}, percent: 25}
          - {type: RequestHeaderModifier, requestHeaderModifier: {set: [{name: a, value: b}]}}
          backendRefs: [{name: reviews-v1, port: 9080}]
    """)
    )
    assert chosen(split) == "reviews-v1"
    assert [(str(r), float(f)) for r, f in split.mirrors] == [("reviews-v3.default:9080", 0.25)]
    text = " ".join(split.notes)
    assert "copy of 25% of the requests to reviews-v3.default:9080" in text and "not a share" in text
    assert "RequestHeaderModifier changes request headers, not the split" in text


# --------------------------------------------------------------------------- ingress (item 2)


def test_bookinfo_ingress_gateway_api_and_istio_gateway() -> None:
    mesh = bookinfo(
        "gateway-api/bookinfo-gateway.yaml",
        "networking/bookinfo-gateway.yaml",
        "networking/destination-rule-all.yaml",
    )
    info, _ = mesh.find_service("productpage")
    assert (info, 9080) in mesh.routed_services()
    paths = {p.label: p for p in ingress_paths(mesh, info, 9080)}
    assert set(paths) == {
        "ingress (Gateway bookinfo-gateway:80)",
        "ingress (Istio Gateway bookinfo-gateway:8080)",
    }
    for p in paths.values():
        assert shares(p.route) == {"v1": Fraction(1)}
        assert any("request GET /productpage" in n for n in p.route.notes)
    # a request no rule takes: the Gateway API route answers 404
    (gw,) = [p for p in ingress_paths(mesh, info, 9080, path="/admin") if "Istio" not in p.label]
    assert list(shares(gw.route)) == [
        "404 no route matched (Gateway default/bookinfo-gateway listener http (HTTP 80))"
    ]
    # the listener admits routes of its own namespace only (allowedRoutes: Same)
    other = (
        (BOOKINFO / "gateway-api" / "bookinfo-gateway.yaml")
        .read_text()
        .replace("  name: bookinfo\n", "  name: bookinfo\n  namespace: elsewhere\n")
    )
    m = load_manifests(APP)
    m.extend(parse_manifest_text(other, "moved.yaml"))
    assert not ingress_paths(Mesh(m), info, 9080)


def test_ingress_in_compare_table() -> None:
    files = [*APP, str(BOOKINFO / "gateway-api" / "bookinfo-gateway.yaml")]
    cmp_ = compare_paths(files, n=None)
    assert cmp_.shares("productpage.default:9080")["ingress (Gateway bookinfo-gateway:80)"] == {
        "v1": Fraction(1)
    }
    assert [p.kind for p in cmp_.paths] == ["kube-proxy", "sidecar", "uid-1337", "ingress"]


# --------------------------------------------------------------------------- HTTPRouteWeight (conformance)

CONFORMANCE = DATA / "gateway-api"


def conformance_model() -> tuple[list[str], list[Fraction]]:
    """The split HTTPRouteWeight's manifests give a client of the Gateway, per backend Service, in the
    backendRefs' order (weight-0 backends included, with share 0)."""
    mesh = Mesh(load_manifests(str(CONFORMANCE)))
    info, _ = mesh.find_service("infra-backend-v1.gateway-conformance-infra")
    (path,) = ingress_paths(mesh, info, 8080)
    route = next(r for r in gateway_objects(mesh.manifests).routes if r.meta.name == "weighted-backends")
    names = [b.name for b in route.rules[0].backends]
    got = {n: Fraction(0) for n in names}
    for b, s in zip(path.route.backends(), path.route.exact_shares(), strict=True):
        got[b.name.rsplit("-", 1)[0]] += s  # pods infra-backend-v1-0, -1 ... -> their Deployment
    return names, [got[n] for n in names]


def go_accepts(count: int, n: int, want: float, tolerance: float = 0.05) -> bool:
    """conformance/utils/weight/weight.go TestWeightedDistribution: math.Abs(got/total - want) > tolerance fails
    (float64 arithmetic, as Python's float)."""
    return not abs(count / n - want) > tolerance


def test_httproute_weight_model_is_70_30_0() -> None:
    names, split = conformance_model()
    assert names == ["infra-backend-v1", "infra-backend-v2", "infra-backend-v3"]
    assert split == [Fraction(7, 10), Fraction(3, 10), Fraction(0)]


def test_httproute_weight_flake_probability() -> None:
    """A correct implementation (each request independently to v1 with probability 0.7, else v2) fails one try
    of 500 requests when v1's count leaves the band the Go test accepts, and fails HTTPRouteWeight when all 10
    tries fail. meshstat's numbers against a direct binomial sum (scipy)."""
    from scipy import stats

    from meshstat.inference import bands, multinomial_box_probability, plan_tolerance, tolerance_probability

    _, split = conformance_model()
    weights = [int(s * 10) for s in split]  # 7, 3, 0
    n = 500
    # the band the Go test accepts: its float comparison refuses 375 (0.75 - 0.7 = 0.05000000000000004)
    v1 = [x for x in range(n + 1) if go_accepts(x, n, 0.7) and go_accepts(n - x, n, 0.3)]
    assert (v1[0], v1[-1]) == (325, 374)
    v2 = [x for x in range(n + 1) if go_accepts(x, n, 0.3)]
    per_try = multinomial_box_probability(n, split, [v1[0], v2[0], 0], [v1[-1], v2[-1], 0])
    direct = stats.binom(n, 0.7).cdf(374) - stats.binom(n, 0.7).cdf(324)
    assert per_try == pytest.approx(direct, rel=1e-11)
    assert per_try == pytest.approx(0.9853666311, abs=1e-10)
    fail_10 = (1 - per_try) ** 10
    assert fail_10 == pytest.approx(4.5024e-19, rel=1e-4)
    # meshstat's tolerance band is the exact one, 325..375 inclusive: one count wider than the Go test's
    exact = tolerance_probability(weights, n, "0.05")
    assert exact == pytest.approx(stats.binom(n, 0.7).cdf(375) - stats.binom(n, 0.7).cdf(324), rel=1e-12)
    assert 1 - exact == pytest.approx(0.0127451264, abs=1e-10)
    assert exact - per_try == pytest.approx(stats.binom(n, 0.7).pmf(375), rel=1e-9)
    b = bands(weights, n=n, within="0.05", simulate=False)
    assert b.p_outside_any == pytest.approx(1 - exact, rel=1e-9)
    assert b.p_outside[0] == pytest.approx(1 - exact, rel=1e-9)  # v1 out <=> v2 out (they sum to 500)
    # requests for one try to be reliable at a false-alarm rate of 1e-6 (no retries)
    plan = plan_tolerance(weights, "0.05", 1 - 1e-6)
    assert (plan.n, plan.n_sustained) == (2000, 2018)
    assert 1 - plan.probability == pytest.approx(
        1 - (stats.binom(2000, 0.7).cdf(1500) - stats.binom(2000, 0.7).cdf(1299)), rel=1e-6
    )

    def go_fail(m: int) -> float:
        acc = [x for x in range(m + 1) if go_accepts(x, m, 0.7) and go_accepts(m - x, m, 0.3)]
        return 1 - (stats.binom(m, 0.7).cdf(acc[-1]) - stats.binom(m, 0.7).cdf(acc[0] - 1))

    # with the Go test's float comparison the boundary count drops out at some n: first 2,003, every n from 2,029
    assert go_fail(2000) > 1e-6 and go_fail(2003) <= 1e-6
    assert go_fail(2028) > 1e-6 and all(go_fail(m) <= 1e-6 for m in range(2029, 2100))
    # the price of 10 retries: a wrong 65/35 split passes the test almost surely
    wrong = tolerance_probability(weights, n, "0.05", truth=[65, 35, 0])
    assert 1 - (1 - wrong) ** 10 == pytest.approx(0.99936, abs=1e-5)
