"""Namespaces with Sidecar resources of one shape are worked out once per Service (``audit.groups``): the rows are
those of working out every namespace alone, and each client's split is the path model's."""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import meshstat.audit.istio as audit_istio
import meshstat.mesh.clients as clients_mod
from meshstat.audit import audit
from meshstat.mesh import Mesh
from meshstat.mesh.clients import rule_namespaces
from meshstat.parsers.k8s import parse_manifest_text
from tests.audit.shares import path_shares
from tests.cluster_gen import (
    INJECT,
    _deployment,
    _meta,
    _namespace,
    _zone_plant,
    as_run_today,
    cluster,
    to_json,
)
from tests.mesh.test_clients import _signature

#: Sidecar egress listeners a namespace may have (None: no Sidecar resource)
SHAPES: list[Any] = [
    None,
    [{"hosts": ["./*", "istio-system/*"]}],
    [{"hosts": ["./*", "ns0/*"]}],
    [{"hosts": ["*/*"]}],
    [{"port": {"number": 9090, "protocol": "HTTP", "name": "other"}, "hosts": ["*/*"]}],
    [{"hosts": ["~/*"]}],
    "selector",  # a Sidecar for the namespace's client workload only (./*), none for the others
    "selector+default",  # that, and a default Sidecar of another shape (istio-system/*) for the others
    "two defaults",  # two Sidecars without workloadSelector (a warning; the first applies)
]


def _cluster(n_services: int, n_ns: int, shapes: list[int], exports: list[int], policy: list[bool],
             root: bool = False) -> str:
    doc = cluster(n_services, n_ns)
    items = doc["items"]
    if root:  # a mesh-wide default Sidecar: the namespaces without their own (or unselected workloads) apply it
        sc = _meta("Sidecar", "networking.istio.io/v1", "default", "istio-system", 799)
        sc["spec"] = {"egress": [{"hosts": ["./*"]}]}
        items.append(sc)
    for k in range(n_ns):
        ns = f"ns{k}"
        items.append(_deployment(f"client{k}", ns, f"client{k}", "v1", 1, 900 + k))
        egress = SHAPES[shapes[k % len(shapes)]]
        if egress is not None:
            sc = _meta("Sidecar", "networking.istio.io/v1", "default", ns, 800 + k)
            sc["spec"] = {"egress": egress}
            if egress in ("selector", "selector+default"):
                sc["spec"] = {"workloadSelector": {"labels": {"app": f"client{k}"}}, "egress": [{"hosts": ["./*"]}]}
            if egress in ("selector+default", "two defaults"):
                sc["metadata"]["name"] = "own"
                if egress == "two defaults":
                    sc["spec"] = {"egress": [{"hosts": ["./*"]}]}
                other = _meta("Sidecar", "networking.istio.io/v1", "wide", ns, 850 + k)
                other["spec"] = {"egress": [{"hosts": ["istio-system/*"]}]}
                items.append(other)
            if policy[k % len(policy)]:
                sc["spec"]["outboundTrafficPolicy"] = {"mode": "REGISTRY_ONLY"}
            items.append(sc)
    for it in items:
        if it["kind"] == "VirtualService":
            i = int(it["metadata"]["name"][3:])
            export = exports[i % len(exports)]
            if export == 1:
                it["spec"]["exportTo"] = ["."]
            elif export == 2:
                it["spec"]["exportTo"] = [".", f"ns{(i + 1) % n_ns}"]
    return to_json(doc)


def _rows(res: Any) -> set[tuple[Any, ...]]:
    return {(r.service, r.clients, r.n_clients, r.reason, r.configured, r.effective) for r in res.rows}


def _every_namespace_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    """The audit as it was before the groups: every namespace with a Sidecar singled out."""
    monkeypatch.setattr(audit_istio, "rule_namespaces", lambda mesh, info, sidecars=True: rule_namespaces(mesh, info))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(n_services=st.integers(2, 6), n_ns=st.integers(2, 7),
       shapes=st.lists(st.integers(0, len(SHAPES) - 1), min_size=1, max_size=7),
       exports=st.lists(st.integers(0, 2), min_size=1, max_size=4),
       policy=st.lists(st.booleans(), min_size=1, max_size=3), root=st.booleans())
def test_grouped_rows_are_the_rows_of_each_namespace_alone(monkeypatch: pytest.MonkeyPatch, n_services: int,
                                                           n_ns: int, shapes: list[int], exports: list[int],
                                                           policy: list[bool], root: bool) -> None:
    mesh = Mesh(parse_manifest_text(_cluster(n_services, n_ns, shapes, exports, policy, root), "c.json"))
    grouped = audit(mesh)
    with monkeypatch.context() as m:
        _every_namespace_alone(m)
        alone = audit(Mesh(mesh.manifests))
    assert _rows(grouped) == _rows(alone)
    assert grouped.audited == alone.audited and grouped.notes == alone.notes
    # a grouped row's fixes name every Sidecar that a row of the namespaces apart names
    for g, a in zip(sorted(grouped.rows, key=_key), sorted(alone.rows, key=_key), strict=True):
        named, more = _sidecars(g.fix)
        every, _ = _sidecars(a.fix)
        assert named <= every and len(named) + more == len(every), (g.fix, a.fix)


def _key(r: Any) -> tuple[Any, ...]:
    return r.service, r.reason, r.clients


def _sidecars(fixes: tuple[str, ...]) -> tuple[set[str], int]:
    """The Sidecar refs the fixes name, and how many more they say there are (a fix names three)."""
    out: set[str] = set()
    more = 0
    for f in fixes:
        for m in re.finditer(r"Sidecars? ((?:[\w.-]+/[\w.-]+(?:, )?)+)(?: and (\d+) more)?", f):
            out.update(m.group(1).split(", "))
            more += int(m.group(2) or 0)
    return out, more


def test_each_client_gets_its_row_split_from_the_path_model():
    # ns1..ns4 share one shape (./*, istio-system/*), ns5 imports ns0, ns6 has a listener for another port only
    text = _cluster(3, 7, [0, 1, 1, 1, 1, 2, 4], [0], [False])
    mesh = Mesh(parse_manifest_text(text, "c.json"))
    res = audit(mesh)
    workloads = Counter(w.meta.namespace for w in mesh.manifests.workloads)
    for i in range(3):
        service = f"ns{i}/svc{i}:8080"
        configured = next(r.configured for r in res.rows if r.service == service)
        # the client workloads of each split that is not the configured one, by the path model (a namespace's
        # workloads apply its one Sidecar: its client stands for them)
        want: Counter[tuple[Any, ...]] = Counter()
        for k in range(7):
            got = path_shares(mesh, f"svc{i}.ns{i}.svc.cluster.local", 8080, "sidecar", client=f"client{k}")
            if _near(got.items()) != _near(configured):
                want[_near(got.items())] += workloads[f"ns{k}"]
        rows: Counter[tuple[Any, ...]] = Counter()
        for r in res.rows:
            if r.service == service:
                rows[_near(r.effective)] += r.n_clients
        assert rows == want, service
    # one row per Service for the four namespaces of one shape, naming all their Sidecars in one fix
    shaped = [r for r in res.rows if r.service == "ns0/svc0:8080" and r.reason == "sidecar-egress-excludes"]
    assert len(shaped) == 1 and shaped[0].clients.startswith("5 namespaces")
    assert any("Sidecars ns1/default, ns2/default, ns3/default and 1 more" in f for f in shaped[0].fix)


def _near(split: Any) -> tuple[tuple[str, float], ...]:
    """A split to 1e-6: kube-proxy's probabilities are 32-bit fractions (2**31 - 1 of 2**32 for one half), the
    audit's pod split the exact one."""
    return tuple(sorted((k, round(float(v), 6)) for k, v in split))


def test_fix_names_each_sidecar_whole():
    # ns1 and ns10 (a name that starts with another's) share a shape: the fix names both, not "ns1" twice
    text = _cluster(1, 12, [0] + [1] * 11, [0], [False])
    res = audit(Mesh(parse_manifest_text(text, "c.json")))
    (row,) = [r for r in res.rows if r.reason == "sidecar-egress-excludes"]
    (fix,) = row.fix
    assert fix == ("add ns0/svc0.ns0.svc.cluster.local to the egress hosts of Sidecars ns1/default, ns10/default, "
                   "ns11/default and 8 more")


@settings(max_examples=40, deadline=None)
@given(n_services=st.integers(2, 5), n_ns=st.integers(2, 7),
       shapes=st.lists(st.integers(0, len(SHAPES) - 1), min_size=1, max_size=7),
       exports=st.lists(st.integers(0, 2), min_size=1, max_size=4))
def test_compare_paths_of_shapes_are_those_of_each_namespace_alone(n_services: int, n_ns: int, shapes: list[int],
                                                                   exports: list[int]) -> None:
    """``compare -f`` gives the namespaces of one Sidecar shape one route per Service (``mesh.ambient.extend_paths``):
    its paths (labels, clients in order, backends, shares) are those of routing every namespace on its own."""
    text = _cluster(n_services, n_ns, shapes, exports, [False])
    shared = _paths(text)
    with pytest.MonkeyPatch.context() as m:
        m.setattr(clients_mod, "route_namespaces", lambda *a, **k: None)  # every namespace on its own
        apart = _paths(text)
    assert shared == apart


def _paths(text: str) -> list[tuple[Any, ...]]:
    from meshstat.engine.mesh import compare_paths

    return _signature(compare_paths(parse_manifest_text(text, "c.json"), n=None))


def test_compare_routes_once_per_shape(monkeypatch: pytest.MonkeyPatch) -> None:
    """Twelve namespaces of one Sidecar shape cost a Service one sidecar route, not twelve."""
    from meshstat.engine.mesh import compare_paths

    calls: list[object] = []
    real = Mesh.sidecar_route

    def counted(self: Mesh, *a: object, **k: object) -> object:
        calls.append(k.get("name"))
        return real(self, *a, **k)

    monkeypatch.setattr(Mesh, "sidecar_route", counted)
    cmp = compare_paths(parse_manifest_text(_cluster(1, 13, [0] + [1] * 12, [0], [False]), "c.json"), n=None)
    sidecar = [p for p in cmp.paths if p.kind == "sidecar"]
    assert len(calls) <= 3, calls  # the first injected workload's, ns0's own, the shape's
    assert sum(len(p.clients) for p in sidecar) == sum(1 for w in cmp.mesh.owners.roots
                                                        if w.meta.namespace != "ns0" or "client" in w.meta.name)


def test_topology_index_follows_objects_applied_again():
    """``build_cluster``'s index is rebuilt when a file re-applies a Pod elsewhere (``Manifests.extend`` and
    ``drop_duplicates`` keep every list's length)."""
    import copy

    from meshstat.topology import build_cluster

    items = [_namespace("ns0", 0, INJECT), *_zone_plant("ns0", 5)]
    m = parse_manifest_text(to_json({"apiVersion": "v1", "kind": "List", "items": items}), "a.json")
    assert {e.pod: e.zone for e in build_cluster(m, "ns0/svc-zone", port=8080).endpoints}[
        "ns0/svc-zone-v2-v2hash-2"] == "b"
    moved = [copy.deepcopy(it) for it in items
             if it["kind"] == "Pod" and it["metadata"]["name"].startswith("svc-zone-v2")]
    for p in moved:
        p["spec"]["nodeName"] = "node-a"
    m.extend(parse_manifest_text(to_json({"apiVersion": "v1", "kind": "List", "items": moved}), "b.json"))
    m.drop_duplicates()
    assert {e.pod: e.zone for e in build_cluster(m, "ns0/svc-zone", port=8080).endpoints}[
        "ns0/svc-zone-v2-v2hash-2"] == "a"


def test_topology_notes_without_clients_in_zones():
    """A Service whose topology cannot be audited is noted even when no client without a mesh runs in a zone."""

    items = [_namespace("ns0", 0, INJECT)] + [it for it in _zone_plant("ns0", 5) if "edge" not in
                                              (it["metadata"].get("namespace"), it["metadata"]["name"])]
    for it in items:  # the Service's pods are not ready: no endpoints
        if it["kind"] == "Pod":
            it["status"] = {"phase": "Running", "conditions": [{"type": "Ready", "status": "False"}]}
    res = audit(Mesh(parse_manifest_text(to_json({"apiVersion": "v1", "kind": "List", "items": items}), "c.json")))
    assert any(n.startswith("topology of ns0/svc-zone:8080 not audited: ") for n in res.notes), res.notes


def test_compare_warns_of_every_namespace_of_a_shape():
    """The namespaces of one Sidecar shape share a route, not their warnings: several Sidecars without
    workloadSelector in a namespace that is not the shape's first is still warned of, and a warning naming the first
    one's Sidecar names them all."""
    from meshstat.engine.mesh import compare_paths

    doc = cluster(2, 3)
    for it in doc["items"]:
        if it["kind"] == "VirtualService" and it["metadata"]["name"] == "svc0":  # to svc1:9090, a port it gains
            it["spec"]["http"] = [{"route": [{"destination": {"host": "svc1.ns1.svc.cluster.local",
                                                              "port": {"number": 9090}}}]}]
        if it["kind"] == "Service" and it["metadata"]["name"] == "svc1":
            it["spec"]["ports"].append({"name": "grpc", "port": 9090, "protocol": "TCP", "targetPort": 8080})
    for k in (2, 3):  # listeners on 8080 only: no cluster for svc1:9090 (503 NC)
        doc["items"].append(_deployment(f"client{k}", f"other{k}", f"client{k}", "v1", 1, 900 + k))
        sc = _meta("Sidecar", "networking.istio.io/v1", "default", f"other{k}", 800 + k)
        sc["spec"] = {"egress": [{"port": {"number": 8080, "protocol": "HTTP", "name": "h"}, "hosts": ["*/*"]}]}
        doc["items"] += [_namespace(f"other{k}", 700 + k, INJECT), sc]
    second = _meta("Sidecar", "networking.istio.io/v1", "later", "other3", 810)
    second["spec"] = {"egress": [{"hosts": ["./*"]}]}
    doc["items"].append(second)
    got = {d.message for d in compare_paths(parse_manifest_text(to_json(doc), "c.json"), n=None).diagnostics}
    assert any(m.startswith("2 Sidecars without workloadSelector in namespace other3") for m in got), got
    assert any(m.startswith("Sidecars other2/default, other3/default imports svc1.ns1.svc.cluster.local for port 9090")
               for m in got), got


@settings(max_examples=25, deadline=None)
@given(n_services=st.integers(1, 4), n_ns=st.integers(2, 4),
       locality=st.sampled_from(["none", "priority", "distribute"]),
       bare_pod=st.sampled_from([None, "placed", "unlabelled"]))
def test_compare_paths_of_placed_clusters_are_those_of_each_namespace_alone(n_services: int, n_ns: int, locality: str,
                                                                            bare_pod: str | None) -> None:
    """Pods placed on Nodes in zones, ``trafficDistribution: PreferClose`` and DestinationRule locality settings that
    read only where a client runs: clients that all run alike (Deployments, which have no place of their own) share
    routes by namespace, as routing every namespace alone gives; a client Pod of its own on a Node keeps them apart."""
    doc = as_run_today(cluster(n_services, n_ns), zones=("a", "b"), nodes_per_zone=1)
    for it in doc["items"]:
        if it["kind"] == "DestinationRule" and locality != "none":
            lb = ({"failoverPriority": ["topology.kubernetes.io/zone"]} if locality == "priority"
                  else {"distribute": [{"from": "*", "to": {"*": 100}}]})
            it["spec"]["trafficPolicy"] = {"loadBalancer": {"simple": "ROUND_ROBIN", "localityLbSetting": lb},
                                           "outlierDetection": {"consecutive5xxErrors": 1}}
    if bare_pod:  # a client that runs somewhere, or one without labels (no failover priority): every namespace apart
        pod = _meta("Pod", "v1", "probe", "ns1", 990, {"app": "probe"} if bare_pod == "placed" else None)
        pod["spec"] = {"containers": [{"name": "c", "image": "x"}]}
        if bare_pod == "placed":
            pod["spec"]["nodeName"] = "node-b0"
        pod["status"] = {"phase": "Running", "podIP": "10.9.9.9", "conditions": [{"type": "Ready", "status": "True"}]}
        doc["items"].append(pod)
    text = to_json(doc)
    mesh = Mesh(parse_manifest_text(text, "c.json"))
    assert (clients_mod.route_namespaces(mesh, mesh.find_service("ns0/svc0")[0]) is None) == bool(bare_pod)
    shared = _paths(text)
    with pytest.MonkeyPatch.context() as m:
        m.setattr(clients_mod, "route_namespaces", lambda *a, **k: None)
        apart = _paths(text)
    assert shared == apart
