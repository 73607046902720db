"""A VirtualService with ``tcp`` rules only applies on TCP ports, and on sniffed ports (TCP assumed); on an HTTP port
Istio builds no route from it (``BuildHTTPRoutesForVirtualService``: "no routes matched"), so the sidecars use the
default route over all pods, and the audit says so in a note instead of comparing a split nobody applies."""

from __future__ import annotations

from fractions import Fraction as F
from pathlib import Path

import pytest

from meshstat.audit import audit
from meshstat.mesh import Mesh
from meshstat.parsers.k8s import load_manifests, parse_manifest_text
from tests.audit.shares import path_shares

DATA = Path(__file__).resolve().parents[1] / "data"
VS = """apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  tcp:
  - route:
    - {destination: {host: reviews, subset: v1}, weight: 90}
    - {destination: {host: reviews, subset: v2}, weight: 10}
"""


@pytest.mark.parametrize(("port_name", "want"), [
    ("http", {"v1": F(1, 3), "v2": F(1, 3), "v3": F(1, 3)}),  # HTTP: the default route
    ("tcp-reviews", {"v1": F(9, 10), "v2": F(1, 10)}),  # TCP: the tcp rule
    ("reviews", {"v1": F(9, 10), "v2": F(1, 10)}),  # sniffed, every rule a tcp one: TCP assumed
])
def test_tcp_rules_apply_where_the_port_is_tcp(port_name, want) -> None:
    bookinfo = (DATA / "bookinfo" / "platform" / "kube" / "bookinfo.yaml").read_text()
    i = bookinfo.index("name: reviews\n")  # reviews' Service: its one port, named http
    bookinfo = bookinfo[:i] + bookinfo[i:].replace("name: http", f"name: {port_name}", 1)
    m = parse_manifest_text(bookinfo, "bookinfo.yaml")
    m.extend(load_manifests([str(DATA / "bookinfo" / "networking" / "destination-rule-all.yaml"),
                             str(DATA / "bookinfo-ambient" / "sidecar")]))
    m.extend(parse_manifest_text(VS, "vs.yaml"))
    mesh = Mesh(m)
    assert path_shares(mesh, "reviews.default.svc.cluster.local", 9080, "sidecar", client="productpage-v1") == want
    res = audit(mesh)
    noted = any("has tcp rules only" in n for n in res.notes)
    assert noted == (port_name == "http")
    assert res.audited == (0 if port_name == "http" else 1)
    # a sniffed port: the tcp split is audited, and a note says what HTTP calls there get
    sniffed = [n for n in res.notes if "declares no protocol and Istio sniffs it" in n]
    assert len(sniffed) == (port_name == "reviews")
    assert all("HTTP calls there take the default route over all pods" in n for n in sniffed)


def test_a_tcp_rule_for_the_port_is_the_plain_connections() -> None:
    """A tcp rule that matches the Service's port serves every connection to it (as ``Mesh._sidecar_route`` takes
    it): the audit compares that rule's split (it took rules without a port only, and said nothing)."""
    bookinfo = (DATA / "bookinfo" / "platform" / "kube" / "bookinfo.yaml").read_text()
    i = bookinfo.index("name: reviews\n")
    bookinfo = bookinfo[:i] + bookinfo[i:].replace("name: http", "name: tcp-reviews", 1)
    m = parse_manifest_text(bookinfo, "bookinfo.yaml")
    m.extend(load_manifests([str(DATA / "bookinfo" / "networking" / "destination-rule-all.yaml"),
                             str(DATA / "bookinfo-ambient" / "sidecar")]))
    m.extend(parse_manifest_text(VS.replace("  tcp:\n  - route:\n", "  tcp:\n  - match: [{port: 9080}]\n    route: "
                                            "[{destination: {host: reviews, subset: v9}}]\n  - route:\n"), "vs.yaml"))
    mesh = Mesh(m)
    assert path_shares(mesh, "reviews.default.svc.cluster.local", 9080, "sidecar", client="productpage-v1") == {
        "503": F(1)}
    (row,) = audit(mesh).rows
    assert (row.reason, row.effective) == ("subset-undefined", (("503", F(1)),))
