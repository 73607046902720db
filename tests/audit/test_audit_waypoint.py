"""`audit` of ambient clients whose Service has a waypoint: the waypoint applies the VirtualService (or not).

Istio's Bookinfo (``tests/data/bookinfo``) on the ambient data plane with a waypoint for namespace
``default`` (``tests/data/bookinfo-ambient/waypoint``): every client is ambient, so every request to
``reviews`` goes through the waypoint. Each case plants one VirtualService (or object) for ``reviews``
that the waypoint does not apply as written; the row's effective split must be the one the path model
(``Mesh.client_paths``, the ``ambient-waypoint`` path) computes, and a clean rule gives no row.
"""

from __future__ import annotations

from fractions import Fraction as F
from pathlib import Path

import pytest

from meshstat.audit import audit
from meshstat.mesh import Mesh
from meshstat.parsers.k8s import load_manifests, parse_manifest_text
from tests.audit.shares import path_shares

DATA = Path(__file__).resolve().parents[1] / "data"
APP = [str(DATA / "bookinfo" / "platform" / "kube" / "bookinfo.yaml"),
       str(DATA / "bookinfo" / "networking" / "destination-rule-all.yaml"),
       str(DATA / "bookinfo-ambient" / "waypoint")]


def _vs(name: str, split: str, ns: str = "default", extra: str = "") -> str:
    routes = ", ".join(f"{{destination: {{host: reviews.default.svc.cluster.local, subset: {s}}}, weight: {w}}}"
                       for s, w in (x.split("=") for x in split.split(",")))
    return (f"apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: {name}, namespace: {ns}}}\n"
            f"spec:\n  hosts: [reviews.default.svc.cluster.local]\n{extra}  http:\n  - route: [{routes}]\n---\n")


THIRD = ("apiVersion: v1\nkind: Namespace\nmetadata: {name: team}\n---\n")
DR_V4 = ("apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: reviews-v4, namespace: default}\n"
         "spec:\n  host: reviews\n  subsets: [{name: v1, labels: {version: v1}}, {name: v2, labels: {version: v2}},\n"
         "    {name: v3, labels: {version: v3}}, {name: v4, labels: {version: v4}}]\n---\n")
#: the default route over every pod: the audit names the pods of no routed subset "unrouted <version>"
THIRDS = (("v1", F(1, 3)), ("v2", F(1, 3)), ("unrouted v3", F(1, 3)))
NINETY = (("v1", F(9, 10)), ("v2", F(1, 10)))

CASES = {
    "clean": (_vs("reviews", "v1=90,v2=10"), None, None),
    "subset-undefined": (_vs("reviews", "v1=50,v9=50"), "subset-undefined", (("v1", F(1, 2)), ("503", F(1, 2)))),
    "subset-without-pods": (DR_V4.replace("reviews-v4", "reviews") + _vs("reviews", "v1=90,v4=10"),
                            "subset-without-pods", (("v1", F(9, 10)), ("503", F(1, 10)))),
    "rule-bound-to-gateway-only": (_vs("reviews", "v1=90,v2=10", extra="  gateways: [bookinfo-gateway]\n"),
                                   "rule-bound-to-gateway-only", THIRDS),
    "not-exported-to-namespace": (_vs("reviews", "v1=90,v2=10", extra="  exportTo: [team]\n"),
                                  "not-exported-to-namespace", THIRDS),
    "rule-not-at-waypoint": (THIRD + _vs("reviews", "v1=90,v2=10", ns="team"), "rule-not-at-waypoint", THIRDS),
    # a private VirtualService of the waypoint's namespace comes first for it (scope.mesh_virtual_services)
    "other-virtualservice-wins": (_vs("reviews", "v1=90,v2=10") + _vs("reviews-pinned", "v3=100",
                                                                        extra="  exportTo: ['.']\n"),
                                  "other-virtualservice-wins", (("v3", F(1)),)),
    # the first VirtualService for the host has tcp rules only: on the HTTP port the waypoint takes the next one
    "first-has-tcp-rules-only": (_vs("reviews-tcp", "v3=100").replace("  http:\n", "  tcp:\n")
                                 + _vs("reviews", "v1=90,v9=10"), "subset-undefined",
                                 (("v1", F(9, 10)), ("503", F(1, 10)))),
}


def _mesh(objects: str) -> Mesh:
    m = load_manifests(APP)
    m.extend(parse_manifest_text(objects, "planted.yaml"))
    return Mesh(m)


def _waypoint_shares(mesh: Mesh) -> dict[str, F]:
    return path_shares(mesh, "reviews.default.svc.cluster.local", 9080, "ambient-waypoint")


@pytest.mark.parametrize("case", list(CASES))
def test_the_waypoint_rows_are_the_path_models_split(case) -> None:
    objects, reason, effective = CASES[case]
    mesh = _mesh(objects)
    rows = [r for r in audit(mesh).rows if r.service == "default/reviews:9080"]
    if reason is None:
        assert rows == []
        assert _waypoint_shares(mesh) == dict(NINETY)
        return
    (row,) = rows
    assert (row.reason, row.kind, row.effective) == (reason, "ambient + waypoint", effective)
    assert row.clients.startswith("default (")
    assert {k.removeprefix("unrouted "): v for k, v in row.effective} == _waypoint_shares(mesh)


def test_a_producer_httproute_takes_the_waypoint_so_the_virtual_service_gets_no_row() -> None:
    route = ("apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: reviews, namespace: default}\n"
             "spec:\n  parentRefs: [{group: '', kind: Service, name: reviews, port: 9080}]\n"
             "  rules: [{backendRefs: [{name: reviews-v1, port: 9080}]}]\n---\n"
             "apiVersion: v1\nkind: Service\nmetadata: {name: reviews-v1, namespace: default}\n"
             "spec: {selector: {app: reviews, version: v1}, ports: [{name: http, port: 9080}]}\n---\n")
    mesh = _mesh(route + CASES["subset-undefined"][0])
    assert [r for r in audit(mesh).rows if r.service == "default/reviews:9080" and r.kind == "ambient + waypoint"] == []


TCP_CASES = DATA / "audit-waypoint-tcp"


@pytest.mark.parametrize("files", [["vs-tcp.yaml"], ["vs-tcp.yaml", "httproute-no-port.yaml"],
                                   ["vs-http-then-tcp.yaml"]])
def test_a_waypoint_applies_tcp_rules_on_the_tcp_port_only(files) -> None:
    """TCP rules split port 9000 at the waypoint (subset v9 fails: 10%), also from a VirtualService that is not the
    first for the host; an HTTPRoute on the Service does not take the TCP port, and the HTTP port gets no row
    from TCP rules (the waypoint's default route there)."""
    files = ["app.yaml", *files]
    mesh = Mesh(load_manifests([str(TCP_CASES / f) for f in files]))
    rows = audit(mesh).rows
    assert [(r.service, r.reason, r.effective) for r in rows] == [
        ("shop/cart:9000", "subset-undefined", (("v1", F(9, 10)), ("503", F(1, 10))))]
    assert path_shares(mesh, "cart.shop.svc.cluster.local", 9000, "ambient-waypoint") == dict(rows[0].effective)
