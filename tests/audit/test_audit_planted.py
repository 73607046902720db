"""`audit` on a generated cluster with divergences planted on purpose lists exactly those, with exact splits."""

from __future__ import annotations

from fractions import Fraction as F

from meshstat.audit import audit
from meshstat.mesh import Mesh
from meshstat.parsers.k8s import parse_manifest_text
from tests.cluster_gen import Plant, cluster, to_json, to_yaml

NINETY = (("v1", F(9, 10)), ("v2", F(1, 10)))
EIGHTY = (("v1", F(4, 5)), ("v2", F(1, 10)), ("v3", F(1, 10)))
PODS = (("v1", F(1, 2)), ("v2", F(1, 2)))


def _rows(plant: Plant, n: int = 4, text=to_yaml) -> set[tuple[str, str, str, tuple, tuple]]:
    res = audit(Mesh(parse_manifest_text(text(cluster(n, 2, plant)), "cluster.yaml")))
    return {(r.service, r.clients, r.reason, r.configured, r.effective) for r in res.rows}


def test_clean_cluster_has_no_divergence():
    res = audit(Mesh(parse_manifest_text(to_yaml(cluster(6, 3)), "c.yaml")))
    assert res.rows == [] and res.audited == 6


def test_the_audit_reads_workloads_and_expands_no_pod():
    """The mesh makes its pods on first use: the audit never asks (it counts workloads' replicas), and the notes
    about pods are said when the mesh is built, as the pods would make them."""
    mesh = Mesh(parse_manifest_text(to_yaml(cluster(6, 3, Plant(subset_no_pods=True))), "c.yaml"))
    notes = list(mesh.notes)
    assert audit(mesh).rows and mesh._pods is None
    assert len(mesh.pods) == 28 and mesh.notes == notes and any("synthetic IPs" in n for n in notes)


def test_each_planted_divergence_alone():
    allns = "2 namespaces, 10 workloads: ns0 (6), ns1 (4)"  # svc0, svc2 and the planted one: 2 Deployments each
    assert _rows(Plant(gateway_only=True)) == {
        ("ns0/svc-gw:8080", allns, "rule-bound-to-gateway-only", NINETY, PODS)}
    assert _rows(Plant(export_private=True)) == {
        ("ns0/svc-priv:8080", "ns1 (4)", "not-exported-to-namespace", NINETY, PODS)}
    assert _rows(Plant(subset_no_pods=True)) == {
        ("ns0/svc-empty:8080", allns, "subset-without-pods", EIGHTY,
         (("v1", F(4, 5)), ("v2", F(1, 10)), ("503", F(1, 10))))}
    assert _rows(Plant(subset_undefined=True)) == {
        ("ns0/svc-undef:8080", allns, "subset-undefined", EIGHTY,
         (("v1", F(4, 5)), ("v2", F(1, 10)), ("503", F(1, 10))))}
    services = [f"ns{i % 2}/svc{i}:8080" for i in range(4)]
    assert _rows(Plant(no_injection=True)) == {(s, "plain (1)", "no-sidecar", NINETY, PODS) for s in services}
    assert _rows(Plant(sidecar_egress=True)) == {
        (s, "restricted (1)", "sidecar-egress-excludes", NINETY, PODS) for s in services}
    # ambient clients of every Service without a waypoint; the ambient namespace's own Service too
    amb = _rows(Plant(ambient_no_waypoint=True))
    assert amb == {(s, "amb (2)", "ambient-without-waypoint", NINETY, PODS)
                   for s in [*services, "amb/svc-amb:8080"]}
    # the zone's unmeshed client sees only zone a's endpoints of svc-zone (and, having no sidecar, no
    # VirtualService either); svc-zone's own pods (ns0, injected, no ReplicaSet or Deployment in the input: each
    # its own client) call it through their sidecars, which trafficDistribution keeps in their zone too
    v1, v2 = "deployment/svc-zone-v1", "deployment/svc-zone-v2"
    conf = ((v1, F(2, 3)), (v2, F(1, 3)))
    assert _rows(Plant(zone_restricted=True)) == {
        ("ns0/svc-zone:8080", "zone a: edge (1)", "topology-restricted", conf, ((v1, F(1)),)),
        ("ns0/svc-zone:8080", "zone a: ns0 (2)", "topology-restricted", conf, ((v1, F(1)),)),
        ("ns0/svc-zone:8080", "zone b: ns0 (1)", "topology-restricted", conf, ((v2, F(1)),)),
    } | {(s, "edge (1)", "no-sidecar", NINETY, PODS) for s in services}


def test_all_planted_together_json_equals_yaml():
    plant = Plant(True, True, True, True, True, True, True, True)
    ys, js = _rows(plant), _rows(plant, text=to_json)
    assert ys == js
    reasons = {r[2] for r in ys}
    assert reasons == {"no-sidecar", "rule-bound-to-gateway-only", "not-exported-to-namespace",
                       "sidecar-egress-excludes", "subset-without-pods", "subset-undefined",
                       "ambient-without-waypoint", "topology-restricted"}
    conf = (("deployment/svc-zone-v1", F(2, 3)), ("deployment/svc-zone-v2", F(1, 3)))
    assert sorted(r for r in ys if r[2] == "topology-restricted") == [
        ("ns0/svc-zone:8080", f"zone {z}", "topology-restricted", conf, ((f"deployment/svc-zone-{v}", F(1)),))
        for z, v in (("a: edge (1)", "v1"), ("a: ns0 (2)", "v1"), ("b: ns0 (1)", "v2"))]


def test_summary_groups_without_listing_thousands():
    res = audit(Mesh(parse_manifest_text(to_yaml(cluster(300, 30, Plant(no_injection=True))), "c.yaml")))
    by = res.by_reason()
    assert by["no-sidecar"]["services"] == 300 and by["no-sidecar"]["fix"] == [
        "label namespace plain for injection (istio-injection=enabled)"]
    assert max(len(line) for line in res.summary().splitlines()) < 400


_GATEWAY_API = """
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: svc0-split, namespace: ns0}
spec:
  parentRefs: [{group: "", kind: Service, name: svc0, port: 8080}]
  rules:
  - backendRefs:
    - {name: svc0, port: 8080, weight: 80}
    - {name: svc0-canary, port: 8080, weight: 10}
    - {name: svc2, port: 9999, weight: 10}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: public, namespace: ns0}
spec:
  gatewayClassName: istio
  listeners: [{name: http, port: 80, protocol: HTTP, allowedRoutes: {namespaces: {from: All}}}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: front, namespace: ns0}
spec:
  parentRefs: [{name: public}]
  rules:
  - backendRefs:
    - {name: svc0, port: 8080, weight: 3}
    - {name: svc1, namespace: ns1, port: 8080, weight: 1}
"""


def test_gateway_api_backend_missing_and_referencegrant():
    text = to_yaml(cluster(4, 2)) + "---\n" + _GATEWAY_API
    got = _rows_of(text)
    configured = (("ns0/svc0:8080", F(4, 5)), ("ns0/svc0-canary:8080", F(1, 10)), ("ns0/svc2:9999", F(1, 10)))
    effective = (("ns0/svc0:8080", F(4, 5)), ("500", F(1, 5)))
    assert got == {
        ("ns0/svc0:8080", "2 namespaces, 8 workloads: ns0 (4), ns1 (4)", "backend-missing", configured, effective),
        ("Gateway ns0/public", "ingress through Gateway ns0/public", "refused-by-referencegrant",
         (("ns0/svc0:8080", F(3, 4)), ("ns1/svc1:8080", F(1, 4))), (("ns0/svc0:8080", F(3, 4)), ("500", F(1, 4)))),
    }
    # a ReferenceGrant in ns1 lets HTTPRoutes of ns0 reach its Services: that row goes
    grant = ("---\napiVersion: gateway.networking.k8s.io/v1beta1\nkind: ReferenceGrant\nmetadata: {name: g, "
             "namespace: ns1}\nspec:\n  from: [{group: gateway.networking.k8s.io, kind: HTTPRoute, namespace: ns0}]\n"
             "  to: [{group: \"\", kind: Service}]\n")
    assert {r[2] for r in _rows_of(text + grant)} == {"backend-missing"}


def _rows_of(text: str) -> set[tuple]:
    res = audit(Mesh(parse_manifest_text(text, "c.yaml")))
    return {(r.service, r.clients, r.reason, r.configured, r.effective) for r in res.rows}


def test_every_reason_is_documented():
    from pathlib import Path

    import meshstat.audit as pkg
    from meshstat.audit import REASONS

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme[readme.index("### `audit`"):readme.index("## Python API")]
    for code in REASONS:
        assert f"| `{code}` |" in section, code
        assert f"``{code}``" in pkg.__doc__, code


def test_a_client_namespace_destination_rule_that_selects_other_pods():
    """istiod gives a sidecar its own namespace's DestinationRule first: when its subsets select other pods than
    the Service namespace's rule, the clients of that namespace get those pods (``destination-rule-differs``)."""
    from tests.mesh.test_clients import DR, _mesh_text, _ns

    other = DR.format(ns="d", export="  exportTo: [\".\"]\n",
                      subsets="{name: v1, labels: {version: v1}}, {name: v2, labels: {version: v3}}")
    same = DR.format(ns="e", export="  exportTo: [\".\"]\n",
                     subsets="{name: v1, labels: {version: v1}}, {name: v2, labels: {app: api, version: v2}}")
    text = _mesh_text(2, extra=(_ns("d"), other, _ns("e"), same))
    res = audit(Mesh(parse_manifest_text(text, "m.yaml")))
    assert [(r.service, r.clients, r.reason, r.configured, r.effective) for r in res.rows] == [
        ("srv/api:8080", "d (1)", "destination-rule-differs", NINETY, (("v1", F(9, 10)), ("v3", F(1, 10))))]
    assert "subset 'v2' selects {'version': 'v3'}" in res.rows[0].detail and "d/api" in res.rows[0].fix[0]
    # the same rule without its odd subset: nothing to report
    assert audit(Mesh(parse_manifest_text(text.replace("labels: {version: v3}}", "labels: {version: v2}}"),
                                          "m.yaml"))).rows == []


def test_another_virtual_service_that_comes_first_for_some_namespaces():
    """A VirtualService private to the clients' namespace, or exported to it by name, comes before the public one
    (``other-virtualservice-wins``), with its own split; every other namespace keeps the public one's."""
    from tests.mesh.test_clients import SINGLED_OUT, _mesh_text

    text = _mesh_text(2, extra=SINGLED_OUT["vs-export"] + SINGLED_OUT["vs-export-list"])
    res = audit(Mesh(parse_manifest_text(text, "m.yaml")))
    got = {(r.clients, r.reason, r.effective) for r in res.rows}
    assert got == {
        ("b (1)", "other-virtualservice-wins", (("v1", F(1, 2)), ("v2", F(1, 2)))),
        ("2 namespaces, 2 workloads: c (1), g1 (1)", "other-virtualservice-wins", (("v1", F(7, 10)), ("v2", F(3, 10)))),
    }
    assert all(r.configured == NINETY for r in res.rows)
    # the private rule's subset that its namespace's DestinationRule lacks: its share fails there
    broken = text.replace("subset: v2}, weight: 50", "subset: v9}, weight: 50")
    row = next(r for r in audit(Mesh(parse_manifest_text(broken, "m.yaml"))).rows if r.clients == "b (1)")
    assert row.effective == (("v1", F(1, 2)), ("503", F(1, 2))) and "subset 'v9'" in row.detail
