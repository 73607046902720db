"""``topology-restricted`` rows name every client workload without a sidecar by the zones its pods run in.

kube-proxy routes each connection on the node it leaves from, so a Deployment spread over zones a and b
gets zone a's split on its zone-a pods and zone b's on the others: it is named in both zones' rows.
A Pod counts for the workload that controls it (its Deployment, present or named by its ReplicaSet,
``kubectl get pods`` without the Deployment), and a Pod that runs nothing (Succeeded) sends nothing.
"""

from __future__ import annotations

from fractions import Fraction as F

from meshstat.audit import audit
from meshstat.mesh import Mesh
from meshstat.parsers.k8s import parse_manifest_text
from tests.audit.test_audit_unexported_backend import _WAYPOINT

SERVICE = """\
apiVersion: v1
kind: Node
metadata: {name: node-a, labels: {topology.kubernetes.io/zone: a}}
status: {allocatable: {cpu: "4"}, conditions: [{type: Ready, status: "True"}]}
---
apiVersion: v1
kind: Node
metadata: {name: node-b, labels: {topology.kubernetes.io/zone: b}}
status: {allocatable: {cpu: "4"}, conditions: [{type: Ready, status: "True"}]}
---
apiVersion: v1
kind: Namespace
metadata: {name: shop, labels: {istio-injection: enabled}}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec:
  trafficDistribution: PreferClose
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: 8080}]
""" + "".join(f"""\
---
apiVersion: v1
kind: Pod
metadata: {{name: web-{v}-h{v}-{i}, namespace: shop, labels: {{app: web, version: {v}, pod-template-hash: h{v}}},
  ownerReferences: [{{apiVersion: apps/v1, kind: ReplicaSet, name: web-{v}-h{v}, controller: true}}]}}
spec: {{nodeName: node-{node}, containers: [{{name: app, image: x, ports: [{{containerPort: 8080}}]}}]}}
status: {{phase: Running, podIP: 10.1.0.{n}, conditions: [{{type: Ready, status: "True"}}]}}
""" for n, (v, i, node) in enumerate((("v1", 0, "a"), ("v1", 1, "a"), ("v2", 0, "b")), 1))

DEPLOYMENT = """\
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: client, namespace: edge}
spec:
  replicas: 2
  selector: {matchLabels: {app: client}}
  template:
    metadata: {labels: {app: client}}
    spec: {containers: [{name: app, image: x}]}
"""


def _client_pod(i: int, node: str, phase: str = "Running") -> str:
    return f"""\
---
apiVersion: v1
kind: Pod
metadata: {{name: client-h3-{i}, namespace: edge, labels: {{app: client, pod-template-hash: h3}},
  ownerReferences: [{{apiVersion: apps/v1, kind: ReplicaSet, name: client-h3, controller: true}}]}}
spec: {{nodeName: node-{node}, containers: [{{name: app, image: x}}]}}
status: {{phase: {phase}, podIP: 10.1.1.{i}, conditions: [{{type: Ready, status: "{phase == 'Running'}"}}]}}
"""


CONFIGURED = (("deployment/web-v1", F(2, 3)), ("deployment/web-v2", F(1, 3)))


def _rows(text: str, kind: str = "no mesh") -> set[tuple[str, str, int, tuple[tuple[str, F], ...]]]:
    """The rows of clients of ``kind`` (the Service's own pods, injected, are sidecar clients)."""
    res = audit(Mesh(parse_manifest_text(text, "zones.yaml")))
    assert {r.reason for r in res.rows} <= {"topology-restricted"} and all(r.configured == CONFIGURED
                                                                           for r in res.rows)
    return {(r.service, r.clients, r.n_clients, r.effective) for r in res.rows if r.kind == kind}


def test_a_deployment_spread_over_zones_is_named_in_each_zone():
    text = SERVICE + "---\napiVersion: v1\nkind: Namespace\nmetadata: {name: edge}\n" + DEPLOYMENT
    text += _client_pod(0, "a") + _client_pod(1, "b")
    assert _rows(text) == {
        ("shop/web:80", "zone a: edge (1)", 1, (("deployment/web-v1", F(1)),)),
        ("shop/web:80", "zone b: edge (1)", 1, (("deployment/web-v2", F(1)),)),
    }


def test_pods_without_their_deployment_count_for_themselves():
    """``kubectl get pods``: no Deployment, no ReplicaSet; each Pod is a client of its own, in its zone."""
    text = SERVICE + "---\napiVersion: v1\nkind: Namespace\nmetadata: {name: edge}\n"
    text += _client_pod(0, "a") + _client_pod(1, "a") + _client_pod(2, "b")
    assert _rows(text) == {
        ("shop/web:80", "zone a: edge (2)", 2, (("deployment/web-v1", F(1)),)),
        ("shop/web:80", "zone b: edge (1)", 1, (("deployment/web-v2", F(1)),)),
    }


def test_a_finished_pod_sends_nothing_from_its_zone():
    text = SERVICE + "---\napiVersion: v1\nkind: Namespace\nmetadata: {name: edge}\n" + DEPLOYMENT
    text += _client_pod(0, "a") + _client_pod(1, "b", phase="Succeeded")
    assert _rows(text) == {("shop/web:80", "zone a: edge (1)", 1, (("deployment/web-v1", F(1)),))}


AMBIENT_EDGE = "---\napiVersion: v1\nkind: Namespace\nmetadata: {name: edge, labels: {istio.io/dataplane-mode: ambient}}\n"


def _kinds(text: str, kind: str) -> set[tuple[str, str, tuple[tuple[str, F], ...]]]:
    """The rows of clients of ``kind``."""
    res = audit(Mesh(parse_manifest_text(text, "zones.yaml")))
    assert {r.reason for r in res.rows} <= {"topology-restricted"}
    return {(r.clients, r.kind, r.effective) for r in res.rows if r.kind == kind}


def test_ztunnel_keeps_ambient_clients_in_their_zone():
    """ztunnel reads trafficDistribution for a Service without waypoint (``ztunnel_candidates``): the ambient
    clients of each zone get that zone's endpoints, as kube-proxy's clients do."""
    text = SERVICE + AMBIENT_EDGE + DEPLOYMENT + _client_pod(0, "a") + _client_pod(1, "b")
    assert _kinds(text, "ambient") == {("zone a: edge (1)", "ambient", (("deployment/web-v1", F(1)),)),
                            ("zone b: edge (1)", "ambient", (("deployment/web-v2", F(1)),))}


def test_ztunnel_with_internal_traffic_policy_local_closes_where_no_endpoint_runs():
    """``internalTrafficPolicy: Local`` is ztunnel's Strict mode on the node: a node without an endpoint of the
    Service closes the connection (``dropped``)."""
    node_c = SERVICE.split("---\n")[1].replace("node-b", "node-c").replace("zone: b", "zone: c")
    text = (SERVICE.replace("trafficDistribution: PreferClose", "internalTrafficPolicy: Local") + "---\n" + node_c
            + AMBIENT_EDGE + DEPLOYMENT + _client_pod(0, "a") + _client_pod(1, "c"))
    assert _kinds(text, "ambient") == {("zone a: edge (1)", "ambient", (("deployment/web-v1", F(1)),)),
                            ("zone c: edge (1)", "ambient", (("dropped", F(1)),))}


def test_a_waypoint_takes_the_choice_from_ztunnel():
    """With a waypoint, ztunnel sends every connection to it: the waypoint's Envoy picks, not by the client's zone."""
    waypoint = _WAYPOINT + "status: {addresses: [{value: 10.96.0.20}]}\n"
    text = (SERVICE.replace("labels: {istio-injection: enabled}",
                            "labels: {istio.io/dataplane-mode: ambient, istio.io/use-waypoint: waypoint}")
            + waypoint + AMBIENT_EDGE + DEPLOYMENT + _client_pod(0, "a") + _client_pod(1, "b"))
    assert _kinds(text, "ambient") == set()
    assert _kinds(text.replace(", istio.io/use-waypoint: waypoint", ""), "ambient")  # the same without it: rows


SIDECAR_EDGE = "---\napiVersion: v1\nkind: Namespace\nmetadata: {name: edge, labels: {istio-injection: enabled}}\n"
V1, V2 = (("deployment/web-v1", F(1)),), (("deployment/web-v2", F(1)),)


def test_trafficdistribution_keeps_sidecars_in_their_zone():
    """istiod turns trafficDistribution into forced locality failover for the Service's cluster
    (``GetEffectiveLbSetting``), and Envoy's priority load puts every request on the zone's endpoints: the sidecars
    of each zone (the Service's own pods too) get that zone's split."""
    text = SERVICE + SIDECAR_EDGE + DEPLOYMENT + _client_pod(0, "a") + _client_pod(1, "b")
    res = audit(Mesh(parse_manifest_text(text, "zones.yaml")))
    assert {(r.clients, r.kind, r.effective) for r in res.rows} == {
        ("zone a: 2 namespaces, 3 workloads: edge (1), shop (2)", "sidecar", V1),
        ("zone b: 2 namespaces, 2 workloads: edge (1), shop (1)", "sidecar", V2)}
    assert all("the sidecars' Envoy (Service trafficDistribution PreferClose" in r.detail for r in res.rows)


def test_sidecars_keep_every_endpoint_with_locality_switched_off_or_hints_alone():
    """A DestinationRule with ``localityLbSetting: {enabled: false}`` turns locality off for its clients (its
    ``localityLbSetting`` comes before trafficDistribution); topology hints alone are kube-proxy's, not Envoy's."""
    base = SERVICE + SIDECAR_EDGE + DEPLOYMENT + _client_pod(0, "a") + _client_pod(1, "b")
    off = """\
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: web, namespace: shop}
spec:
  host: web
  trafficPolicy: {loadBalancer: {localityLbSetting: {enabled: false}}}
"""
    assert _kinds(base, "sidecar") and not _kinds(base + off, "sidecar")
    hints = base.replace("  trafficDistribution: PreferClose\n", "").replace(
        "metadata: {name: web, namespace: shop}", "metadata: {name: web, namespace: shop, annotations: "
        "{service.kubernetes.io/topology-mode: Auto}}", 1)
    assert not _kinds(hints, "sidecar")


def _node(name: str, zone: str) -> str:
    return (f"---\napiVersion: v1\nkind: Node\nmetadata: {{name: {name}, labels: {{topology.kubernetes.io/zone: {zone}}}}}\n"
            'status: {allocatable: {cpu: "4"}, conditions: [{type: Ready, status: "True"}]}\n')


PLAIN_EDGE = "---\napiVersion: v1\nkind: Namespace\nmetadata: {name: edge}\n"


def test_a_zone_that_reaches_every_endpoint_is_not_a_divergence():
    """Zone c has no endpoint: kube-proxy there falls back to all of them, and its chain's probabilities, rounded as
    it writes them, give what a topology-unaware kube-proxy gives (no row for a 1e-10 difference)."""
    text = SERVICE + _node("node-c", "c") + PLAIN_EDGE + DEPLOYMENT + _client_pod(0, "c") + _client_pod(1, "a")
    assert _rows(text) == {("shop/web:80", "zone a: edge (1)", 1, V1)}


def test_node_local_policies_weigh_the_nodes_the_clients_run_on():
    """``internalTrafficPolicy: Local``: a client on the node of both v1 pods drops nothing, though zone a has another
    node without endpoints (the clients are where their pods run, not spread over the zone's nodes)."""
    text = (SERVICE.replace("trafficDistribution: PreferClose", "internalTrafficPolicy: Local") + _node("node-a2", "a")
            + PLAIN_EDGE + DEPLOYMENT + _client_pod(0, "a"))
    assert _rows(text) == {("shop/web:80", "zone a: edge (1)", 1, V1)}
    moved = text.replace("spec: {nodeName: node-a, containers: [{name: app, image: x}]}",
                         "spec: {nodeName: node-a2, containers: [{name: app, image: x}]}")
    assert _rows(moved) == {("shop/web:80", "zone a: edge (1)", 1, (("dropped", F(1)),))}


def test_sidecars_honour_internal_traffic_policy_local():
    """istiod sends a sidecar only its node's endpoints for ``internalTrafficPolicy: Local`` (NodeLocal)."""
    text = (SERVICE.replace("trafficDistribution: PreferClose", "internalTrafficPolicy: Local") + SIDECAR_EDGE
            + DEPLOYMENT + _client_pod(0, "a") + _client_pod(1, "b"))
    rows = audit(Mesh(parse_manifest_text(text, "zones.yaml"))).rows
    assert {(r.clients, r.kind, r.effective) for r in rows} == {
        ("zone a: 2 namespaces, 3 workloads: edge (1), shop (2)", "sidecar", V1),
        ("zone b: 2 namespaces, 2 workloads: edge (1), shop (1)", "sidecar", V2)}
    assert all("NodeLocal" not in r.detail and "node's endpoints only" in r.detail for r in rows)


def test_sidecar_zone_rows_where_every_sidecar_sees_the_service_alike():
    """A VirtualService bound only to an ingress gateway leaves the sidecars on the Service's own cluster, which
    trafficDistribution keeps in their zone. One exported to its own namespace, or a Sidecar resource, lets
    namespaces see the Service otherwise: the sidecars' zone rows are not worked out there (the rule rows compare
    what each sees), and the clients without a mesh keep theirs."""
    base = SERVICE + SIDECAR_EDGE + DEPLOYMENT + _client_pod(0, "a") + _client_pod(1, "b")

    def sidecar_rows(text: str) -> set[tuple[str, tuple[tuple[str, F], ...]]]:
        return {(r.clients, r.effective) for r in audit(Mesh(parse_manifest_text(text, "z.yaml"))).rows
                if r.kind == "sidecar" and r.reason == "topology-restricted"}

    vs = ("---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: web, namespace: shop}}\n"
          "spec:\n  hosts: [web]\n{spec}  http: [{{route: [{{destination: {{host: web}}}}]}}]\n")
    both = {("zone a: 2 namespaces, 3 workloads: edge (1), shop (2)", V1),
            ("zone b: 2 namespaces, 2 workloads: edge (1), shop (1)", V2)}
    assert sidecar_rows(base) == both
    assert sidecar_rows(base + vs.format(spec="  gateways: [istio-system/ingress]\n")) == both
    assert sidecar_rows(base + vs.format(spec="  exportTo: [.]\n")) == set()
    sc = "---\napiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata: {name: default, namespace: edge}\nspec: {}\n"
    assert sidecar_rows(base + sc) == set()


def test_outlier_detection_turns_on_the_mesh_locality_failover():
    """No topology setting on the Service: a DestinationRule with outlierDetection enables MeshConfig's locality
    failover for the sidecars that see it, and the fix names that DestinationRule."""
    dr = ("---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: web, namespace: shop}\n"
          "spec:\n  host: web\n  trafficPolicy: {outlierDetection: {consecutive5xxErrors: 5}}\n")
    text = (SERVICE.replace("  trafficDistribution: PreferClose\n", "") + dr + SIDECAR_EDGE + DEPLOYMENT
            + _client_pod(0, "a") + _client_pod(1, "b"))
    rows = audit(Mesh(parse_manifest_text(text, "zones.yaml"))).rows
    assert {(r.kind, r.effective) for r in rows} == {("sidecar", V1), ("sidecar", V2)}
    assert all(r.fix == ("set localityLbSetting enabled: false in DestinationRule shop/web, or spread the endpoints "
                         "of Service shop/web over the zones",) and "outlierDetection" in r.detail for r in rows)
    assert not audit(Mesh(parse_manifest_text(text.replace("outlierDetection", "connectionPool"), "z.yaml"))).rows
