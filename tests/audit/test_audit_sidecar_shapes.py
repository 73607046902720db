"""Namespaces with Sidecar resources of one shape are worked out once per Service (``audit.groups``): the rows are
those of working out every namespace alone, and each client's split is the path model's."""

from __future__ import annotations

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
from tests.cluster_gen import _deployment, _meta, cluster, to_json

#: Sidecar egress listeners a namespace may have (None: no Sidecar resource)
SHAPES: list[Any] = [
    None,
    [{"hosts": ["./*", "istio-system/*"]}],
    [{"hosts": ["./*", "ns0/*"]}],
    [{"hosts": ["*/*"]}],
    [{"port": {"number": 9090, "protocol": "HTTP", "name": "other"}, "hosts": ["*/*"]}],
    [{"hosts": ["~/*"]}],
    "selector",  # a Sidecar for the namespace's client workload only (./*), none for the others
]


def _cluster(n_services: int, n_ns: int, shapes: list[int], exports: list[int], policy: list[bool]) -> str:
    doc = cluster(n_services, n_ns)
    items = doc["items"]
    for k in range(n_ns):
        ns = f"ns{k}"
        items.append(_deployment(f"client{k}", ns, f"client{k}", "v1", 1, 900 + k))
        egress = SHAPES[shapes[k % len(shapes)]]
        if egress is not None:
            sc = _meta("Sidecar", "networking.istio.io/v1", "default", ns, 800 + k)
            sc["spec"] = {"egress": egress}
            if egress == "selector":
                sc["spec"] = {"workloadSelector": {"labels": {"app": f"client{k}"}}, "egress": [{"hosts": ["./*"]}]}
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
       policy=st.lists(st.booleans(), min_size=1, max_size=3))
def test_grouped_rows_are_the_rows_of_each_namespace_alone(monkeypatch: pytest.MonkeyPatch, n_services: int,
                                                           n_ns: int, shapes: list[int], exports: list[int],
                                                           policy: list[bool]) -> None:
    mesh = Mesh(parse_manifest_text(_cluster(n_services, n_ns, shapes, exports, policy), "c.json"))
    grouped = audit(mesh)
    with monkeypatch.context() as m:
        _every_namespace_alone(m)
        alone = audit(Mesh(mesh.manifests))
    assert _rows(grouped) == _rows(alone)
    assert grouped.audited == alone.audited and grouped.notes == alone.notes


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

    return [(p.service, p.path, p.kind, tuple(p.clients), tuple(b.name for b in p.route.backends()),
             p.route.expected_shares()[0]) for p in compare_paths(parse_manifest_text(text, "c.json"), n=None).paths]


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
