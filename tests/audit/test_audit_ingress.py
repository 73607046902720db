"""`audit` of the clients that come in through an Istio ingress Gateway (kind ``ingress``).

Istio's Bookinfo with its ``bookinfo-gateway`` (``tests/data/bookinfo``) and a canary VirtualService bound to
that Gateway that splits ``productpage`` 90/10 between subsets. The gateway applies the rule with the
DestinationRule its namespace sees: a subset that is not defined, or selects no pod, fails its share (503).
The row's effective split must be the path model's (``Mesh.client_paths``, the ingress path).
"""

from __future__ import annotations

from fractions import Fraction as F
from pathlib import Path

import pytest

from meshstat.audit import audit
from meshstat.mesh import Mesh
from meshstat.parsers.k8s import load_manifests, parse_manifest_text
from tests.audit.shares import path_shares

DATA = Path(__file__).resolve().parents[1] / "data" / "bookinfo"
BASE = [str(DATA / "platform" / "kube" / "bookinfo.yaml"), str(DATA / "networking" / "bookinfo-gateway.yaml")]
CANARY = """apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: productpage-canary}
spec:
  hosts: ["*"]
  gateways: [bookinfo-gateway]
  http:
  - route:
    - {destination: {host: productpage, port: {number: 9080}, subset: v1}, weight: 90}
    - {destination: {host: productpage, port: {number: 9080}, subset: SECOND}, weight: 10}
"""
DR = """apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: productpage}
spec:
  host: productpage
  subsets: [{name: v1, labels: {version: v1}}, {name: v2, labels: {version: v2}}]
"""


def _mesh(second: str, dr: bool) -> Mesh:
    m = load_manifests(BASE)
    m.extend(parse_manifest_text(CANARY.replace("SECOND", second) + ("---\n" + DR if dr else ""), "canary.yaml"))
    return Mesh(m)


def _ingress_shares(mesh: Mesh) -> dict[str, F]:
    return path_shares(mesh, "productpage.default.svc.cluster.local", 9080, "ingress")


TENTH = (("v1", F(9, 10)), ("503", F(1, 10)))


@pytest.mark.parametrize(("second", "dr", "reason", "effective"), [
    ("v2", False, "subset-undefined", (("503", F(1)),)),  # no DestinationRule at all: v1 fails too
    ("v3", True, "subset-undefined", TENTH),  # the rule lacks v3
    ("v2", True, "subset-without-pods", TENTH),  # v2 is defined, but productpage has v1 pods only
])
def test_a_failing_subset_of_a_gateway_rule_answers_503(second, dr, reason, effective) -> None:
    mesh = _mesh(second, dr)
    rows = audit(mesh).rows
    (row,) = rows
    assert (row.service, row.kind, row.reason) == ("Gateway default/bookinfo-gateway:8080", "ingress", reason)
    assert row.configured == (("v1", F(9, 10)), (second, F(1, 10)))
    assert row.effective == effective
    assert row.detail.startswith("VirtualService default/productpage-canary http[0]: subset ")
    assert dict(row.effective) == _ingress_shares(mesh)


def test_a_gateway_rule_whose_subsets_hold_gets_no_row() -> None:
    m = load_manifests(BASE)
    dr = DR.replace("{name: v2, labels: {version: v2}}", "{name: v2, labels: {version: v1}}")  # both on v1's pods
    m.extend(parse_manifest_text(CANARY.replace("SECOND", "v2") + "---\n" + dr, "canary.yaml"))
    assert audit(Mesh(m)).rows == []


CASES = Path(__file__).resolve().parents[1] / "data" / "audit-ingress"


def _the_row(mesh: Mesh, want: tuple | None):
    """The audit's one row, an ingress one with ``want`` (reason, effective); None (and no row) when ``want`` is."""
    rows = audit(mesh).rows
    if want is None:
        assert rows == []
        return None
    (row,) = rows
    assert (row.reason, row.effective, row.kind) == (*want, "ingress")
    return row


@pytest.mark.parametrize(("case", "want"), [
    ("two-hosts-one-subset-name", ("subset-undefined", (("productpage v1", F(1, 2)), ("503", F(1, 2))))),
    ("server-hosts-mismatch", None),
    ("tcp-server", None),
    ("multiport-no-destination-port", ("backend-missing", (("503", F(1)),))),
    ("match-port", ("subset-undefined", (("v1", F(9, 10)), ("503", F(1, 10))))),
    ("two-servers-one-port", ("subset-undefined", (("v1", F(9, 10)), ("503", F(1, 10))))),
    ("unknown-host", ("backend-missing", (("productpage", F(9, 10)), ("503", F(1, 10))))),
])
def test_what_each_gateway_server_applies(case, want) -> None:
    row = _the_row(Mesh(load_manifests(BASE + [str(CASES / f"{case}.yaml")])), want)
    if row is not None and case == "match-port":
        assert row.service == "Gateway default/g2:8081"


@pytest.mark.parametrize(("exported", "want"), [
    ("vs", ("not-exported-to-namespace", (("404", F(1)),))),  # the canary is not seen: no route
    ("dr", ("subset-undefined", (("503", F(1)),))),  # the subsets are not seen: every share fails
    (None, None),
])
def test_the_gateway_pods_namespace_decides_what_the_gateway_sees(exported, want) -> None:
    """The ingress gateway's pods run in istio-system: a VirtualService or DestinationRule exported to ``.`` of
    ``default`` (where the Gateway object is) is not seen by their proxy."""
    canary = CANARY.replace("SECOND", "v2").replace("productpage, port: {number: 9080}, subset: v2}, weight: 10",
                                                    "productpage, port: {number: 9080}, subset: v1}, weight: 10")
    if exported == "vs":
        canary = canary.replace("gateways: [bookinfo-gateway]", "gateways: [bookinfo-gateway]\n  exportTo: ['.']")
    dr = DR + ("  exportTo: ['.']\n" if exported == "dr" else "")
    m = load_manifests(BASE + [str(CASES / "gateway-pods-in-istio-system.yaml")])
    m.extend(parse_manifest_text(canary + "---\n" + dr, "canary.yaml"))
    mesh = Mesh(m)
    row = _the_row(mesh, want)
    if row is None:
        return
    assert "istio-system" in row.detail or exported == "dr"
    shares = path_shares(mesh, "productpage.default.svc.cluster.local", 9080, "ingress") if exported == "dr" else None
    assert shares is None or shares == dict(row.effective)


PODS_NS = str(CASES / "gateway-pods-in-istio-system.yaml")
TENTH_FAILS = ("subset-undefined", (("v1", F(9, 10)), ("503", F(1, 10))))


@pytest.mark.parametrize(("files", "want"), [
    (["https-passthrough.yaml"], None),
    (["source-namespace.yaml", PODS_NS], TENTH_FAILS),  # the gateway's pods are in istio-system: the rule holds
    (["source-namespace.yaml"], None),  # no pods in the manifests: the Gateway's namespace, default, is the source
    (["private-canary-public-rule.yaml", PODS_NS], ("not-exported-to-namespace", (("v1", F(1)),))),
])
def test_what_the_gateway_pods_match_and_see(files, want) -> None:
    m = load_manifests(BASE + [str(DATA / "networking" / "destination-rule-all.yaml")]
                       + [f if f.startswith("/") else str(CASES / f) for f in files])
    mesh = Mesh(m)
    row = _the_row(mesh, want)
    if row is not None and row.reason == "subset-undefined":
        assert dict(row.effective) == _ingress_shares(mesh)


def test_a_service_not_exported_to_the_gateway_pods_answers_503() -> None:
    """``networking.istio.io/exportTo: "."`` on productpage: the gateway pods in istio-system have no cluster for it
    (503 NC cluster_not_found); the path model and the audit both say so (both said the route held)."""
    text = (DATA / "platform" / "kube" / "bookinfo.yaml").read_text()
    head = "kind: Service\nmetadata:\n  name: productpage\n"
    assert head in text
    text = text.replace(head, head + "  annotations:\n    networking.istio.io/exportTo: \".\"\n", 1)
    m = parse_manifest_text(text, "bookinfo.yaml")
    m.extend(load_manifests([BASE[1], PODS_NS]))
    mesh = Mesh(m)
    assert _ingress_shares(mesh) == {"503": F(1)}
    row = _the_row(mesh, ("not-exported-to-namespace", (("503", F(1)),)))
    assert "not exported to namespace istio-system (networking.istio.io/exportTo annotation), the gateway pods" in row.detail
    assert row.fix == ("add namespace istio-system to the networking.istio.io/exportTo annotation of Service "
                       "productpage.default",)
    # the gateway pods' own namespace, or no pods in the input (the Gateway's namespace, default): it holds
    assert audit(Mesh(load_manifests(BASE))).rows == []
    m = parse_manifest_text(text, "bookinfo.yaml")
    m.extend(load_manifests([BASE[1]]))
    assert audit(Mesh(m)).rows == []


def test_a_service_entry_not_exported_to_the_gateway_pods() -> None:
    """A ServiceEntry exported to ``.`` of its namespace, routed from the Bookinfo gateway whose pods are in
    istio-system: no cluster there (503 NC), in the path model and the audit."""
    entry = """apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: api, namespace: default}
spec:
  hosts: [api.example.com]
  exportTo: ["."]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints: [{address: 192.0.2.20}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: api, namespace: default}
spec:
  hosts: ["*"]
  gateways: [bookinfo-gateway]
  http: [{route: [{destination: {host: api.example.com}}]}]
"""
    m = load_manifests([BASE[0], PODS_NS])
    m.extend(parse_manifest_text((DATA / "networking" / "bookinfo-gateway.yaml").read_text().split("---")[0], "gw.yaml"))
    m.extend(parse_manifest_text(entry, "entry.yaml"))
    mesh = Mesh(m)
    assert path_shares(mesh, "api.example.com", 80, "ingress") == {"503": F(1)}
    row = _the_row(mesh, ("not-exported-to-namespace", (("503", F(1)),)))
    assert "ServiceEntry default/api (api.example.com) is not exported to namespace istio-system" in row.detail
