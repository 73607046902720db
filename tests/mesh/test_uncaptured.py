"""A UDP or SCTP port is not captured by any mesh proxy: kube-proxy picks (``registry.uncaptured``).

The sidecar's capture rules (istio-iptables) and an ambient pod's (istio-cni's in-pod rules) redirect TCP
only, so a VirtualService, an HTTPRoute or a waypoint never sees the datagrams: every client gets
kube-proxy's split over all the Service's pods. The Service here has the same VirtualService on a TCP port
as on the UDP or SCTP one: the TCP port is the control that the rule is applied where a proxy sees it.
"""

from __future__ import annotations

from fractions import Fraction as F
from pathlib import Path

import pytest

from meshstat.audit import audit
from meshstat.mesh import Mesh
from meshstat.mesh.registry import uncaptured
from meshstat.parsers.k8s import ServicePort, load_manifests, parse_manifest_text
from tests.audit.shares import version_shares

DATA = Path(__file__).resolve().parents[1] / "data" / "bookinfo-ambient"

APP = """apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: Service
  metadata: {name: dns, namespace: default}
  spec:
    selector: {app: dns}
    ports: [{name: dns, port: 53, protocol: L4}, {name: http, port: 8080}]
- apiVersion: apps/v1
  kind: Deployment
  metadata: {name: dns-v1, namespace: default}
  spec:
    replicas: 1
    selector: {matchLabels: {app: dns, version: v1}}
    template: {metadata: {labels: {app: dns, version: v1}}, spec: {containers: [{name: c, image: x}]}}
- apiVersion: apps/v1
  kind: Deployment
  metadata: {name: dns-v2, namespace: default}
  spec:
    replicas: 3
    selector: {matchLabels: {app: dns, version: v2}}
    template: {metadata: {labels: {app: dns, version: v2}}, spec: {containers: [{name: c, image: x}]}}
- apiVersion: apps/v1
  kind: Deployment
  metadata: {name: client, namespace: default}
  spec:
    selector: {matchLabels: {app: client}}
    template: {metadata: {labels: {app: client}}, spec: {containers: [{name: c, image: x}]}}
- apiVersion: networking.istio.io/v1
  kind: DestinationRule
  metadata: {name: dns, namespace: default}
  spec:
    host: dns
    subsets: [{name: v1, labels: {version: v1}}, {name: v2, labels: {version: v2}}]
- apiVersion: networking.istio.io/v1
  kind: VirtualService
  metadata: {name: dns, namespace: default}
  spec:
    hosts: [dns]
    http:
    - route: [{destination: {host: dns, subset: v1}, weight: 90}, {destination: {host: dns, subset: v2}, weight: 10}]
    tcp:
    - route: [{destination: {host: dns, subset: v1}, weight: 90}, {destination: {host: dns, subset: v2}, weight: 10}]
"""
#: kube-proxy's split: one pod of v1, three of v2
KUBE = {"v1": F(1, 4), "v2": F(3, 4)}
RULE = {"v1": F(9, 10), "v2": F(1, 10)}


def _mesh(l4: str, plane: str) -> Mesh:
    m = load_manifests([str(DATA / plane)])
    m.extend(parse_manifest_text(APP.replace("protocol: L4", f"protocol: {l4}"), "app.yaml"))
    return Mesh(m)


@pytest.mark.parametrize("l4", ["UDP", "SCTP"])
@pytest.mark.parametrize(("plane", "kind"), [("sidecar", "sidecar"), ("ambient", "ambient"),
                                             ("waypoint", "ambient")])
def test_no_proxy_sees_the_port_so_kube_proxy_picks(l4, plane, kind) -> None:
    mesh = _mesh(l4, plane)
    info = mesh.registry["dns.default.svc.cluster.local"]
    client = next(w for w in mesh.manifests.workloads if w.meta.name == "client")
    paths = {p.kind: p for p in mesh.client_paths(info, 53, client=client)}
    path = paths[kind]
    kube = version_shares(mesh.kube_proxy_route(info, 53, name="kube-proxy"))
    assert version_shares(path.route) == kube
    assert all(abs(kube[v] - KUBE[v]) < 1e-9 for v in KUBE)  # the statistic cascade's 32-bit probabilities
    assert any(f"is {l4}:" in n and "captures TCP only" in n for n in path.route.notes)
    assert any(x.layer == "iptables (node)" for x in path.layers)
    assert not any("Envoy" in x.layer or "ztunnel" in x.layer for x in path.layers)
    # the control: on the TCP port the same rule holds on this data plane
    tcp = {p.kind: p for p in mesh.client_paths(info, 8080, client=client)}
    want = KUBE if plane == "ambient" else RULE  # ambient without waypoint: ztunnel over all pods
    got = version_shares(tcp[kind if plane != "waypoint" else "ambient-waypoint"].route)
    assert all(abs(got[v] - want[v]) < 1e-9 for v in want), got


@pytest.mark.parametrize(("protocol", "l4", "want"), [
    ("UDP", True, "UDP"), ("udp", True, "UDP"), ("SCTP", True, "SCTP"), ("TCP", True, None), ("", True, None),
    ("UDP", False, "UDP"), ("TCP", False, None), ("HTTP", False, None)])
def test_uncaptured_reads_the_l4_protocol(protocol, l4, want) -> None:
    assert uncaptured(ServicePort("p", 53, 53, protocol, None, 1, l4=l4)) == want


@pytest.mark.parametrize("l4", ["UDP", "SCTP"])
@pytest.mark.parametrize(("plane", "reason"), [(None, "no-sidecar"), ("ambient", "ambient-without-waypoint")])
def test_the_audit_applies_no_rule_to_the_port(l4, plane, reason) -> None:
    """The clients whose split differs on the TCP port (no proxy applies the rule) get the same pods on both; only
    the TCP port, where a proxy would apply it, has a row."""
    m = load_manifests([str(DATA / plane)]) if plane else None
    app = parse_manifest_text(APP.replace("protocol: L4", f"protocol: {l4}"), "app.yaml")
    if m is not None:
        m.extend(app)
    rows = audit(Mesh(m if m is not None else app)).rows
    assert [(r.service, r.reason) for r in rows] == [("default/dns:8080", reason)]


def test_a_gamma_route_on_a_udp_port_gets_no_row() -> None:
    route = """apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: r, namespace: default}
spec:
  parentRefs: [{group: "", kind: Service, name: dns, port: PORT}]
  rules: [{backendRefs: [{name: missing, port: 53}]}]
"""
    for port, rows_wanted in ((53, 0), (8080, 1)):
        m = load_manifests([str(DATA / "sidecar")])
        m.extend(parse_manifest_text(APP.replace("protocol: L4", "protocol: UDP"), "app.yaml"))
        m.extend(parse_manifest_text(route.replace("PORT", str(port)), "route.yaml"))
        rows = [r for r in audit(Mesh(m)).rows if r.reason == "backend-missing"]
        assert len(rows) == rows_wanted, (port, rows)


def test_a_tcp_port_named_udp_is_passed_through_to_kube_proxy() -> None:
    """Istio reads a port named ``udp-...`` as UDP (``ConvertProtocol``) and builds no listener for it: the captured
    connection passes through to the ClusterIP, so the sidecar's clients get kube-proxy's split and the audit
    applies no rule there."""
    text = APP.replace("{name: dns, port: 53, protocol: L4}", "{name: udp-echo, port: 53, protocol: TCP}")
    m = load_manifests([str(DATA / "sidecar")])
    m.extend(parse_manifest_text(text, "app.yaml"))
    mesh = Mesh(m)
    info = mesh.registry["dns.default.svc.cluster.local"]
    client = next(w for w in mesh.manifests.workloads if w.meta.name == "client")
    (path,) = [p for p in mesh.client_paths(info, 53, client=client) if p.kind == "sidecar"]
    assert version_shares(path.route) == version_shares(mesh.kube_proxy_route(info, 53, name="kube-proxy"))
    assert any("is UDP to Istio (its name)" in n for n in path.route.notes)
    assert not [r for r in audit(mesh).rows if r.service == "default/dns:53"]
