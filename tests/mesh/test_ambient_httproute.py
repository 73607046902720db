"""Gateway API routes and Istio ambient together: Bookinfo's route-reviews-90-10 HTTPRoute per client kind.

The HTTPRoute's parent is the ``reviews`` Service (GAMMA): a sidecar applies it, a waypoint executes it per
request (``Mesh.route_for``), ztunnel alone never reads it, and clients outside the mesh get kube-proxy's
split.
"""

from __future__ import annotations

import csv
import io
from fractions import Fraction

import pytest

from meshstat.cli import main
from meshstat.mesh import Mesh
from meshstat.mesh.requests import paths_per_route
from meshstat.model import Weighted
from meshstat.parsers.gateway_api import Gateway, gateway_objects
from meshstat.parsers.k8s import load_manifests, parse_manifest_text
from tests.mesh.bookinfo_mesh import AMBIENT, BOOKINFO, NET, paths, shares

THIRD = Fraction(1, 3)
NINETY_TEN = {"v1": Fraction(9, 10), "v2": Fraction(1, 10)}
KUBE = str(BOOKINFO / "platform" / "kube")  # bookinfo.yaml and the per-version Services of the HTTPRoutes
ROUTE = str(BOOKINFO / "gateway-api" / "route-reviews-90-10.yaml")
TEST_V2 = str(BOOKINFO / "gateway-api-docs" / "route-reviews-test-v2.yaml")


def files(*extra: str, variant: str | None = None) -> list[str]:
    return [KUBE, *extra, *([str(AMBIENT / variant)] if variant else [])]


def mesh_of(*extra: str, variant: str | None = None, inline: str = "") -> Mesh:
    m = load_manifests(files(*extra, variant=variant))
    if inline:
        m.extend(parse_manifest_text(inline, "extra.yaml"))
    return Mesh(m)


def about_third(got: dict[str, Fraction]) -> bool:
    """kube-proxy's cascade uses rounded probabilities: within 1e-8 of 1/3 each."""
    return set(got) == {"v1", "v2", "v3"} and all(abs(s - THIRD) < Fraction(1, 10**8) for s in got.values())


# --------------------------------------------------------------------------- the split per client kind


def test_waypoint_executes_the_httproute_per_request() -> None:
    got, diags = paths(mesh_of(ROUTE, variant="waypoint"))
    wp = got["ambient-waypoint"]
    assert shares(wp.route) == NINETY_TEN
    assert isinstance(wp.route.root, Weighted) and wp.route.root.unit == "request"
    assert set(wp.clients) == {"default/productpage-v1", "default/details-v1", "default/ratings-v1"}
    layers = [x.layer for x in wp.layers]
    assert layers[:5] == ["client", "capture (pod netns)", "ztunnel (client node)", "waypoint Envoy",
                          "Gateway API route"]
    assert wp.layers[4].component == "HTTPRoute default/reviews rules[0]"
    assert wp.layers[4].where.endswith("route-reviews-90-10.yaml:12")
    comps = [x.component for x in wp.layers]
    # reviews-v1 and -v2 use the namespace's waypoint too: its inbound-vip clusters, in layers and notes
    assert "inbound-vip|9080|http|reviews-v1.default.svc.cluster.local" in comps
    assert any(n.startswith("inbound-vip|9080|http|reviews-v2.default.svc.cluster.local: lb_policy")
               for n in wp.route.notes)
    assert not any("outbound|" in n for n in wp.route.notes)
    assert any("producer route for every client" in n for n in wp.route.notes)
    assert not any("Alpha" in n for n in wp.route.notes)  # no VirtualService involved
    assert not [d for d in diags if d.level == "warning"]
    # the sidecar column: GAMMA, the sidecar skips the waypoint and applies the route itself
    assert shares(got["sidecar"].route) == NINETY_TEN
    assert about_third(shares(got["kube-proxy"].route))


def test_ztunnel_without_waypoint_ignores_the_httproute() -> None:
    got, _ = paths(mesh_of(ROUTE, variant="ambient"))
    amb = got["ambient"]
    assert shares(amb.route) == {"v1": THIRD, "v2": THIRD, "v3": THIRD}
    assert amb.route.root.unit == "connection" and "ambient-waypoint" not in got
    assert shares(got["sidecar"].route) == NINETY_TEN and got["sidecar"].clients == []


def test_sidecar_applies_the_httproute_gamma() -> None:
    got, _ = paths(mesh_of(ROUTE, variant="sidecar"))
    assert shares(got["sidecar"].route) == NINETY_TEN and got["sidecar"].route.root.unit == "request"
    assert len(got["sidecar"].clients) == 3 and got["kube-proxy"].clients == []
    assert "Gateway API route" in [x.layer for x in got["sidecar"].layers]


def test_no_mesh_is_kube_proxy() -> None:
    got, _ = paths(mesh_of(ROUTE))
    assert about_third(shares(got["kube-proxy"].route)) and len(got["kube-proxy"].clients) == 3
    assert "ambient" not in got and "ambient-waypoint" not in got


def test_ingress_beside_the_waypoint() -> None:
    """The waypoint Gateway is read once, serves ambient; the bookinfo Gateway is the ingress path."""
    mesh = mesh_of(ROUTE, str(BOOKINFO / "gateway-api" / "bookinfo-gateway.yaml"), variant="waypoint")
    objs = gateway_objects(mesh.manifests)
    assert sorted(g.meta.name for g in objs.gateways) == ["bookinfo-gateway", "waypoint"]
    assert all(any(g is s for s in mesh.scope.gateways) for g in objs.gateways)  # one reading of each object
    (wp,) = [g for g in objs.gateways if g.is_waypoint_class]
    assert isinstance(wp, Gateway) and wp.hbone_from == "Same" and wp.waypoint_for == "service"
    assert not [m for m in mesh.manifests.ignored if m.kind == "Gateway"]
    got, _ = paths(mesh, "default/productpage:9080")
    assert [k for k in got if k == "ingress" or k.startswith("ingress (")] == [
        "ingress", "ingress (Gateway bookinfo-gateway:80)"]
    assert shares(got["ingress"].route) == {"v1": Fraction(1)}
    # a named client is inside the mesh: no ingress path
    client = mesh.manifests.workload("default/details-v1")
    assert not [p for p in mesh.client_paths(*mesh.find_service("default/productpage:9080"), client=client)
                if p.kind == "ingress"]


def test_httproute_and_virtual_service_at_the_waypoint() -> None:
    rules = (str(NET / "destination-rule-all.yaml"), str(NET / "virtual-service-reviews-v3.yaml"))
    mesh = mesh_of(ROUTE, *rules, variant="waypoint")
    got, diags = paths(mesh)
    assert shares(got["ambient-waypoint"].route) == NINETY_TEN  # the HTTPRoute is kept
    (w,) = [d for d in diags if "at waypoint" in d.message]
    assert "both an HTTPRoute and VirtualService default/reviews apply" in w.message
    assert w.source.endswith("virtual-service-reviews-v3.yaml")


def test_every_route_lists_httproute_matches() -> None:
    """Bookinfo's test-v2 HTTPRoute (jason -> v2, else v1): a row group per rule, at the waypoint."""
    mesh = mesh_of(TEST_V2, variant="waypoint")
    info, port = mesh.find_service("default/reviews:9080")
    groups = paths_per_route(mesh, info, port)
    assert [g[0] for g in groups] == ["GET / (no headers)", "PathPrefix /, header end-user=jason"]
    assert [shares({p.kind: p for p in g[2]}["ambient-waypoint"].route) for g in groups] == [
        {"v1": Fraction(1)}, {"v2": Fraction(1)}]
    regex = """
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: rx, namespace: default}
spec:
  parentRefs: [{group: "", kind: Service, name: reviews, port: 9080}]
  rules:
  - matches: [{path: {type: RegularExpression, value: "/r.*"}}]
    backendRefs: [{name: reviews-v3, port: 9080}]
"""
    notes: list[str] = []
    paths_per_route(mesh_of(variant="waypoint", inline=regex), info, port, notes=notes)
    want = "HTTPRoute default/rx rules[0]: match RegularExpression /r.* cannot be turned into a request"
    assert any(want in n for n in notes)


# --------------------------------------------------------------------------- the command line


@pytest.mark.parametrize(("variant", "column", "v1"), [
    ("waypoint", "ambient + waypoint", "9/10"),
    ("ambient", "ambient (ztunnel)", "1/3"),
])
def test_compare_files_per_client_kind(capsys, variant: str, column: str, v1: str) -> None:
    args = [a for f in files(ROUTE, variant=variant) for a in ("-f", f)]
    assert main(["compare", *args, "--service", "default/reviews", "--format", "csv", "-n", "1000"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    exact = {(r["path"], r["version"]): r["exact_fraction"] for r in rows if r["level"] == "version"}
    assert exact[(column, "v1")] == v1
    assert exact[("sidecar (Envoy)", "v1")] == "9/10" and exact[("sidecar (Envoy)", "v2")] == "1/10"


def test_no_routed_service_names_both_kinds_of_rule(capsys) -> None:
    assert main(["compare", "-f", str(BOOKINFO / "platform" / "kube" / "bookinfo.yaml")]) == 2
    assert ("no VirtualService or Gateway API route in the manifests routes a known Service; give --service "
            "NS/NAME[:PORT]") in capsys.readouterr().err
