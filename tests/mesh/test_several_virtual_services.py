"""Several VirtualServices for one host: a sidecar serves each port from the first that has rules for it
(``scope.first_for_port``), in the path model and in the audit alike.

Istio builds a sidecar's HTTP routes per VirtualService and skips one that gives no route for the port (no
``http`` rules, or rules that all match other ports); the first virtual host of a domain wins. TCP routes
are tried across every VirtualService in order.
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
TCP_FIRST = """apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews-tcp}
spec:
  hosts: [reviews]
  tcp:
  - route:
    - {destination: {host: reviews, subset: v1}, weight: 50}
    - {destination: {host: reviews, subset: v3}, weight: 50}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews-http}
spec:
  hosts: [reviews]
  http:
  - route:
    - {destination: {host: reviews, subset: v1}, weight: 80}
    - {destination: {host: reviews, subset: v9}, weight: 20}
"""
FAILS_20 = (("v1", F(4, 5)), ("503", F(1, 5)))


def test_an_http_port_takes_the_first_virtual_service_with_http_rules() -> None:
    b = DATA / "bookinfo"
    m = load_manifests([str(b / "platform" / "kube" / "bookinfo.yaml"),
                        str(b / "networking" / "destination-rule-all.yaml"), str(DATA / "bookinfo-ambient" / "sidecar")])
    m.extend(parse_manifest_text(TCP_FIRST, "vs.yaml"))
    mesh = Mesh(m)
    model = path_shares(mesh, "reviews.default.svc.cluster.local", 9080, "sidecar", client="productpage-v1")
    assert model == dict(FAILS_20)
    (row,) = audit(mesh).rows
    assert (row.reason, row.kind, row.effective) == ("subset-undefined", "sidecar", FAILS_20)


@pytest.mark.parametrize("plane", ["sidecar", "ambient + waypoint"])
def test_a_tcp_port_takes_the_first_virtual_service_with_a_tcp_rule_for_it(plane) -> None:
    app = (DATA / "audit-waypoint-tcp" / "app.yaml").read_text()
    if plane == "sidecar":
        app = app.replace("labels: {istio.io/dataplane-mode: ambient, istio.io/use-waypoint: waypoint}",
                          "labels: {istio-injection: enabled}")
    m = parse_manifest_text(app, "app.yaml")
    m.extend(load_manifests([str(DATA / "audit-waypoint-tcp" / "vs-http-then-tcp.yaml")]))
    mesh = Mesh(m)
    kind = "sidecar" if plane == "sidecar" else "ambient-waypoint"
    assert path_shares(mesh, "cart.shop.svc.cluster.local", 9000, kind, client="client") == {"v1": F(9, 10),
                                                                                              "503": F(1, 10)}
    rows = [(r.service, r.kind, r.effective) for r in audit(mesh).rows]
    assert rows == [("shop/cart:9000", plane, (("v1", F(9, 10)), ("503", F(1, 10))))]
