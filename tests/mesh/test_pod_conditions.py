"""A Pod's status decides whether it is an endpoint (``registry.pod_condition``, ``registry.endpoint_conditions``).

As the EndpointSlice controller, kube-proxy and Istio read it: a Pod that is Succeeded, Failed or has no IP is
no endpoint; a not-Ready one only with ``publishNotReadyAddresses``; a terminating one only for kube-proxy, when
no endpoint is ready. A Pod without ``status`` (a manifest to apply) is ready.
"""

from __future__ import annotations

from fractions import Fraction as F

import pytest

from meshstat.audit import audit
from meshstat.mesh import Mesh
from meshstat.mesh.registry import endpoint_conditions, pod_condition
from meshstat.parsers.k8s import parse_manifest_text

READY = "  status: {phase: Running, podIP: 10.0.0.%d, conditions: [{type: Ready, status: 'True'}]}\n"
NOT_READY = "  status: {phase: Running, podIP: 10.0.0.%d, conditions: [{type: Ready, status: 'False'}]}\n"
GONE = ", deletionTimestamp: '2024-05-01T10:00:00Z'"


def _pod(name: str, version: str, status: str, extra: str = "") -> str:
    return f"""- apiVersion: v1
  kind: Pod
  metadata: {{name: {name}, labels: {{app: web, version: {version}}}{extra}}}
  spec: {{containers: [{{name: c, image: x, ports: [{{containerPort: 8080}}]}}]}}
{status}"""


def _mesh(*pods: str, publish: bool = False) -> Mesh:
    svc = ("- apiVersion: v1\n  kind: Service\n  metadata: {name: web}\n  spec: {selector: {app: web}, "
           f"publishNotReadyAddresses: {'true' if publish else 'false'}, ports: [{{port: 80, targetPort: 8080}}]}}\n")
    return Mesh(parse_manifest_text("apiVersion: v1\nkind: List\nitems:\n" + svc + "".join(pods), "pods.yaml"))


def _names(mesh: Mesh, **kw) -> list[str]:
    info = mesh.registry["web.default.svc.cluster.local"]
    return sorted(e.backend.name for e in mesh.endpoints(info, 80, **kw))


@pytest.mark.parametrize(("ready", "terminating", "phase", "ip", "want"), [
    (True, False, "Running", "10.0.0.1", "ready"),
    (False, False, "Running", "10.0.0.1", "not-ready"),
    (True, True, "Running", "10.0.0.1", "terminating"),
    (False, True, "Running", "10.0.0.1", "not-ready"),  # not serving: no fallback takes it
    (False, False, "Pending", None, None),
    (True, False, "Succeeded", "10.0.0.1", None),
    (False, False, "Failed", "10.0.0.1", None),
    (False, False, None, "10.0.0.1", "not-ready"),  # a status without a phase
])
def test_pod_condition(ready, terminating, phase, ip, want) -> None:
    assert pod_condition(ready, terminating, phase, ip) == want
    assert pod_condition(ready, terminating, phase, ip, has_status=False) == "ready"  # a manifest to apply


def test_endpoint_conditions() -> None:
    assert endpoint_conditions(["ready", "terminating"], False, True) == {"ready"}
    assert endpoint_conditions(["terminating", "not-ready"], False, True) == {"terminating"}
    assert endpoint_conditions(["terminating"], False, False) == {"ready"}  # Istio: nothing
    assert endpoint_conditions(["not-ready"], True, False) == {"ready", "terminating", "not-ready"}


def test_pods_that_do_not_serve_are_no_endpoints() -> None:
    mesh = _mesh(_pod("ok-1", "v1", READY % 1), _pod("ok-2", "v1", READY % 2), _pod("applied", "v2", ""),
                 _pod("crashing", "v2", NOT_READY % 4),
                 _pod("pending", "v2", "  status: {phase: Pending, conditions: [{type: PodScheduled, status: 'False'}]}\n"),
                 _pod("leaving", "v2", READY % 6, GONE),
                 _pod("done", "v2", "  status: {phase: Succeeded, podIP: 10.0.0.7}\n"))
    assert sorted(p.name for p in mesh.pods) == ["applied", "crashing", "leaving", "ok-1", "ok-2"]
    assert _names(mesh) == _names(mesh, kube_proxy=True) == ["applied", "ok-1", "ok-2"]
    notes = [n for n in mesh.notes if n.startswith("Pods ")]
    assert notes == ["Pods default/pending, default/done: no endpoints and no clients (status: Succeeded, Failed or "
                     "no IP)",
                     "Pods default/crashing, default/leaving: not ready or terminating (status): endpoints only of "
                     "Services with publishNotReadyAddresses, or for kube-proxy when no endpoint is ready"]
    # the crash-looping pod takes no share of kube-proxy's cascade: 2 of 3 endpoints are v1
    route = mesh.kube_proxy_route(mesh.registry["web.default.svc.cluster.local"], 80)
    assert sorted(dict(b.labels)["version"] for b in route.backends()) == ["v1", "v1", "v2"]
    # a Pod that runs no container makes no calls either; a not-ready or terminating one still may
    assert {w.meta.name for w in mesh.owners.roots} == {"ok-1", "ok-2", "applied", "crashing", "leaving"}


def test_every_pod_terminating_kube_proxy_falls_back_and_sidecars_have_none() -> None:
    mesh = _mesh(_pod("web-1", "v1", READY % 1, GONE), _pod("web-2", "v2", READY % 2, GONE),
                 _pod("sick", "v2", NOT_READY % 3, GONE))
    assert _names(mesh, kube_proxy=True) == ["web-1", "web-2"]  # serving terminating, not the sick one
    assert _names(mesh) == []
    diags: list = []
    mesh.endpoints(mesh.registry["web.default.svc.cluster.local"], 80, diags, kube_proxy=True)
    assert [d.message for d in diags] == [
        "Service web.default: no pod is ready; kube-proxy sends to its serving terminating pods"]
    ruled = audit(Mesh(parse_manifest_text(_ruled(_pod("web-1", "v1", READY % 1, GONE),
                                                   _pod("web-2", "v2", READY % 2, GONE)), "t.yaml")))
    assert [n for n in ruled.notes if "terminating" in n] == [
        "web.default:80: no pod is ready; kube-proxy sends to the serving terminating ones, Istio's sidecars and "
        "ztunnel to none"]
    # the clients without a sidecar get kube-proxy's split over the terminating pods: the configured one is
    # 90/10, so it diverges as for ready pods (1/2, 1/2), not as "no endpoints"
    (row,) = [r for r in ruled.rows if r.reason == "no-sidecar"]
    assert row.effective == (("v1", F(1, 2)), ("v2", F(1, 2)))


def test_publish_not_ready_addresses_makes_every_pod_an_endpoint() -> None:
    pods = (_pod("web-1", "v1", READY % 1), _pod("web-2", "v2", NOT_READY % 2))
    assert _names(_mesh(*pods)) == ["web-1"]
    assert _names(_mesh(*pods, publish=True)) == _names(_mesh(*pods, publish=True), kube_proxy=True) == ["web-1", "web-2"]


def _ruled(*pods: str) -> str:
    """Service web (port http 80), a 90/10 VirtualService over subsets v1/v2, a client Pod without a sidecar."""
    return """apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: Service
  metadata: {name: web}
  spec: {selector: {app: web}, ports: [{name: http, port: 80, targetPort: 8080}]}
- apiVersion: networking.istio.io/v1
  kind: DestinationRule
  metadata: {name: web}
  spec: {host: web, subsets: [{name: v1, labels: {version: v1}}, {name: v2, labels: {version: v2}}]}
- apiVersion: networking.istio.io/v1
  kind: VirtualService
  metadata: {name: web}
  spec:
    hosts: [web]
    http: [{route: [{destination: {host: web, subset: v1}, weight: 90}, {destination: {host: web, subset: v2}, weight: 10}]}]
- apiVersion: v1
  kind: Pod
  metadata: {name: client, labels: {app: client}}
  spec: {containers: [{name: c, image: x}]}
""" + "".join(pods)


def test_the_audit_counts_the_pods_the_mesh_counts() -> None:
    """A client without a sidecar (kube-proxy) of a 90/10 Service with one v1 pod crash-looping: the audit's
    effective split is over the 3 ready pods, v1 1/3 and v2 2/3 (it was 1/2 and 1/2 over 4)."""
    text = _ruled(_pod("a", "v1", READY % 1), _pod("b", "v1", NOT_READY % 2), _pod("c", "v2", READY % 3),
                  _pod("d", "v2", READY % 4))
    res = audit(Mesh(parse_manifest_text(text, "m.yaml")))
    (row,) = [r for r in res.rows if r.reason == "no-sidecar"]
    assert row.effective == (("v1", F(1, 3)), ("v2", F(2, 3)))


# --------------------------------------------------------------------------- the port's protocol

@pytest.mark.parametrize(("name", "port", "l4", "app", "want"), [
    ("", 8080, "TCP", None, "auto"),  # kubectl's protocol: TCP is L4: Istio sniffs an unnamed port
    ("", 3306, "TCP", None, "tcp"),  # a well-known port is not sniffed
    ("http-web", 8080, "TCP", None, "http"),
    ("grpc-web-api", 8080, "TCP", None, "http"),
    ("tcp-db", 8080, "TCP", None, "tcp"),
    ("web", 8080, "TCP", None, "auto"),
    ("tcp-x", 8080, "TCP", "http", "http"),  # appProtocol first
    ("http", 8080, "TCP", "custom.io/x", "auto"),  # and then not the name (Istio reads one of them)
    ("http", 8080, "UDP", None, "udp"),  # not proxied
    ("web", 443, "TCP", "kubernetes.io/wss", "tcp"),  # HTTPS
    ("web", 8080, "TCP", "kubernetes.io/ws", "http"),
    ("web", 8080, "TCP", "kubernetes.io/h2c", "http"),
    ("web", 8080, "TCP", "Kubernetes.io/H2C", "auto"),  # the standard names are matched as written
    ("h2c", 8080, "TCP", None, "auto"),  # not a name protocol.Parse knows
    ("HTTP2-x", 8080, "TCP", None, "http"),
    ("http_proxy", 8080, "TCP", None, "http"),
    ("https-x", 8443, "TCP", None, "tcp"),
])
def test_a_kubernetes_ports_protocol_is_istios(name, port, l4, app, want) -> None:
    from meshstat.mesh.registry import port_protocol
    from meshstat.parsers.k8s import ServicePort

    assert port_protocol(ServicePort(name, port, port, l4, app, 1, l4=True)) == want


@pytest.mark.parametrize(("name", "protocol", "want"), [
    ("http-api", "TCP", "tcp"), ("tcp-x", "HTTP", "http"), ("web", "", "auto"), ("web", "GRPC", "http")])
def test_a_service_entry_ports_protocol_is_its_protocol_field(name, protocol, want) -> None:
    from meshstat.mesh.registry import port_protocol
    from meshstat.parsers.k8s import ServicePort

    assert port_protocol(ServicePort(name, 8080, 8080, protocol, None, 1)) == want


def test_an_unnamed_port_takes_the_virtual_service_of_sniffed_http() -> None:
    text = _ruled(_pod("a", "v1", READY % 1), _pod("c", "v2", READY % 3)).replace("{name: http, port: 80,", "{port: 80,")
    text = text.replace("metadata: {name: client, labels: {app: client}}",
                        "metadata: {name: client, labels: {app: client}, annotations: {sidecar.istio.io/inject: 'true'}}")
    mesh = Mesh(parse_manifest_text(text, "m.yaml"))
    info = mesh.registry["web.default.svc.cluster.local"]
    diags: list = []
    paths = {p.kind: p for p in mesh.client_paths(info, 80, diags=diags)}
    route = paths["sidecar"].route
    shares = {dict(b.labels)["version"]: s for b, s in zip(route.backends(), route.exact_shares(), strict=True)}
    assert shares == {"v1": F(9, 10), "v2": F(1, 10)}
    assert any("declares no protocol: Istio sniffs it" in n for n in route.notes)


def test_a_subset_whose_pods_are_not_ready_says_so() -> None:
    text = _ruled(_pod("a", "v1", READY % 1), _pod("b", "v2", NOT_READY % 2))
    text = text.replace("items:\n", "items:\n- {apiVersion: v1, kind: Namespace, metadata: {name: default, labels: "
                        "{istio-injection: enabled}}}\n", 1)
    res = audit(Mesh(parse_manifest_text(text, "m.yaml")))
    (row,) = [r for r in res.rows if r.reason == "subset-without-pods"]
    assert "selects no ready pods" in row.detail and row.effective == (("v1", F(9, 10)), ("503", F(1, 10)))
    assert any("make the pods with labels {'version': 'v2'} ready" in f for f in row.fix)
