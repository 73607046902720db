"""A Deployment, its ReplicaSets and their Pods in one export count each pod once (``Ownership``).

``kubectl get all -A -o yaml`` prints all three; before, each pod was a backend three times (the
Deployment's template, the ReplicaSet's, the Pod), which changed kube-proxy's endpoint count and, where
the objects of two versions differ, the split.
"""

from __future__ import annotations

import pytest

from meshstat.audit import audit
from meshstat.mesh import Mesh
from meshstat.mesh.clients import client_index
from meshstat.mesh.registry import Ownership
from meshstat.parsers.k8s import parse_manifest_text
from tests.cluster_gen import Plant, cluster, to_json, to_yaml, with_owned_objects

ALL = Plant(True, True, True, True, True, True, True, True)


def _mesh(doc, text=to_yaml, **kw) -> Mesh:
    return Mesh(parse_manifest_text(text(doc), "c.yaml"), **kw)


def _rows(mesh: Mesh) -> set[tuple]:
    return {(r.service, r.clients, r.reason, r.configured, r.effective) for r in audit(mesh).rows}


@pytest.mark.parametrize("replica_sets", [True, False], ids=["get-all", "deployments-and-pods"])
def test_an_export_with_replicasets_and_pods_audits_as_its_deployments(replica_sets) -> None:
    doc = cluster(6, 2, ALL)
    plain, full = _mesh(doc), _mesh(with_owned_objects(doc, replica_sets=replica_sets))
    assert len(full.manifests.workloads) > len(plain.manifests.workloads)
    assert len(full.pods) == len(plain.pods)
    assert all(p.workload.meta.kind == "Pod" for p in full.pods if p.namespace.startswith("ns"))
    rows = _rows(plain)
    assert {r[2] for r in rows} >= {"subset-without-pods", "no-sidecar", "topology-restricted"}
    assert _rows(full) == rows
    # the clients are the Deployments (no ReplicaSet or Pod calls again as itself)
    assert client_index(full).kinds["sidecar"].names == client_index(plain).kinds["sidecar"].names
    for info in (full.registry[f"svc{i}.ns{i % 2}.svc.cluster.local"] for i in range(6)):
        assert len(full.endpoints(info, 8080)) == 4  # two versions of two replicas, once each
    note = [n for n in full.notes if "ownerReferences" in n]
    assert len(note) == 1 and "counted once" in note[0]


def test_json_export_with_owned_objects_equals_yaml() -> None:
    doc = with_owned_objects(cluster(4, 2, Plant(subset_no_pods=True, no_injection=True)))
    assert _rows(_mesh(doc)) == _rows(_mesh(doc, to_json))


def test_scaling_a_deployment_expands_its_template_without_its_pods() -> None:
    full = _mesh(with_owned_objects(cluster(2, 1)), scale={"ns0/svc0-v1": 5})
    mine = [p for p in full.pods if p.name.startswith("svc0-v1")]
    assert sorted(p.name for p in mine) == [f"svc0-v1-{i}" for i in range(5)]
    assert {p.workload.meta.kind for p in mine} == {"Deployment"}
    assert len([p for p in full.pods if p.name.startswith("svc0-v2")]) == 2  # still its two Pods


def test_owner_references_that_loop_or_point_up_hide_no_pod() -> None:
    text = """
apiVersion: v1
kind: List
items:
- apiVersion: apps/v1
  kind: Deployment
  metadata:
    name: web
    ownerReferences: [{kind: ReplicaSet, name: web-1, controller: true}]
  spec:
    replicas: 2
    template: {metadata: {labels: {app: web}}, spec: {containers: [{name: c, image: x}]}}
- apiVersion: apps/v1
  kind: ReplicaSet
  metadata:
    name: web-1
    ownerReferences: [{kind: Pod, name: lone, controller: true}]
  spec:
    replicas: 3
    template: {metadata: {labels: {app: web}}, spec: {containers: [{name: c, image: x}]}}
- apiVersion: v1
  kind: Pod
  metadata:
    name: lone
    labels: {app: web}
    ownerReferences: [{kind: Pod, name: lone, controller: true}, {kind: ReplicaSet, name: web-1}]
  spec: {containers: [{name: c, image: x}]}
"""
    m = parse_manifest_text(text, "loop.yaml")
    own = Ownership.of(m.workloads)
    # nothing is controlled by a kind below it: every object stands for its own pods
    assert own.through == () and len(own.leaves) == len(own.roots) == 3
    assert len(Mesh(m).pods) == 2 + 3 + 1
    # a non-controller owner reference (the lone Pod's ReplicaSet, without controller: true) links nothing
    assert m.workloads[2].owner == ("Pod", "lone")


def test_scaling_a_workload_and_the_one_that_controls_it_is_refused() -> None:
    from meshstat.errors import InvalidArgument

    m = parse_manifest_text(to_yaml(with_owned_objects(cluster(1, 1))), "c.yaml")
    rs = next(w for w in m.workloads if w.meta.kind == "ReplicaSet" and w.replicas == 2)
    with pytest.raises(InvalidArgument, match=f"--scale ReplicaSet ns0/{rs.meta.name}: Deployment ns0/svc0-v1"):
        Mesh(m, scale={"ns0/svc0-v1": 4, f"ns0/{rs.meta.name}": 7})


def test_objects_given_twice_count_once_the_last_one(tmp_path) -> None:
    """``-f manifests/ -f export.yaml``: every object twice; kubectl apply of the files in order keeps the last."""
    from meshstat.parsers.k8s import load_manifests

    doc = cluster(5, 2, ALL)
    (tmp_path / "a.yaml").write_text(to_yaml(doc))
    (tmp_path / "b.json").write_text(to_json(with_owned_objects(doc)))
    once, both = load_manifests([str(tmp_path / "b.json")]), load_manifests([str(tmp_path / "a.yaml"),
                                                                               str(tmp_path / "b.json")])
    assert len(both.workloads) == len(once.workloads) and len(both.topology.pods) == len(once.topology.pods)
    assert {w.meta.source for w in both.workloads} == {str(tmp_path / "b.json")}  # the last file's objects
    assert _rows(Mesh(both)) == _rows(Mesh(once)) == _rows(_mesh(doc))
    twice = [d.message for d in both.diagnostics if "given more than once" in d.message]
    kinds = [m.split(" objects given")[0] for m in twice]  # one grouped warning per kind
    assert sorted(kinds) == sorted(set(kinds)) and {"Deployment", "Service", "VirtualService",
                                                    "DestinationRule"} <= set(kinds) <= {
        "Deployment", "Service", "VirtualService", "DestinationRule", "Pod", "Gateway"}
    assert all("the last of each is used" in m for m in twice)
    assert not [d for d in once.diagnostics if "more than once" in d.message]
    dep = next(m for m in twice if m.startswith("Deployment"))
    assert "(2 times)" in dep and " more;" in dep  # the first three named, the rest counted


@pytest.mark.parametrize("deployments", [True, False], ids=["get-all", "replicasets-and-pods"])
def test_istio_workload_names_are_the_deployments(deployments) -> None:
    """Istio names a pod's workload after its Deployment (``GetDeployMetaFromPod``: a ReplicaSet
    ``<deployment>-<pod-template-hash>`` stands for it), also when the export holds only ReplicaSets and Pods;
    meshstat named those after the ReplicaSet, so an Envoy endpoint's workload metadata matched no pod."""
    doc = with_owned_objects(cluster(2, 1))
    if not deployments:
        doc = {**doc, "items": [it for it in doc["items"] if it["kind"] != "Deployment"]}
    mesh = _mesh(doc)
    pods = [p for p in mesh.pods if p.namespace.startswith("ns")]
    assert pods and all(p.workload.meta.kind == "Pod" for p in pods)
    assert {mesh.owners.istio_workload(p.workload) for p in pods} == {"svc0-v1", "svc0-v2", "svc1-v1", "svc1-v2"}
    rs = next(w for w in mesh.manifests.workloads if w.meta.kind == "ReplicaSet")
    assert mesh.owners.istio_workload(rs) == rs.meta.name.rsplit("-", 1)[0]
