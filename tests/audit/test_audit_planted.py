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


def test_all_planted_together_json_equals_yaml():
    plant = Plant(True, True, True, True, True, True, True)
    ys, js = _rows(plant), _rows(plant, text=to_json)
    assert ys == js
    reasons = {r[2] for r in ys}
    assert reasons == {"no-sidecar", "rule-bound-to-gateway-only", "not-exported-to-namespace",
                       "sidecar-egress-excludes", "subset-without-pods", "subset-undefined",
                       "ambient-without-waypoint"}
    # TOPOLOGY SLOT: a zone-restricted Service (reason topology-restricted) joins here with the topology model


def test_summary_groups_without_listing_thousands():
    res = audit(Mesh(parse_manifest_text(to_yaml(cluster(300, 30, Plant(no_injection=True))), "c.yaml")))
    by = res.by_reason()
    assert by["no-sidecar"]["services"] == 300 and by["no-sidecar"]["fix"] == [
        "label namespace plain for injection (istio-injection=enabled)"]
    assert max(len(line) for line in res.summary().splitlines()) < 400
