"""Clients grouped once per mesh: shared runs of names, and one sidecar route for namespaces nothing singles out.

The grouping is an optimisation: every test here compares it with the plain computation (every
namespace on its own, every name listed) on meshes whose namespaces differ in each way a
sidecar's route can depend on its namespace.
"""

from __future__ import annotations

import re
import textwrap
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meshstat.engine.mesh import compare_paths
from meshstat.mesh import clients as clients_mod
from meshstat.mesh.layers import ClientList, client_union, name_list
from meshstat.mesh.paths import Mesh
from meshstat.parsers.k8s import parse_manifest_text
from tests.cluster_gen import Plant, cluster, to_yaml
from tests.mesh.bookinfo_mesh import mesh_config

# --------------------------------------------------------------------------- ClientList and client_union


def test_client_list_reads_as_the_names_it_stands_for() -> None:
    run = ("a", "b", "c", "d")
    cl = ClientList.run(run, frozenset({1}))
    assert list(cl) == ["a", "c", "d"] and len(cl) == 3 and cl == ["a", "c", "d"] and "c" in cl and "b" not in cl
    cl.add_run(("x", "y"), frozenset({0}))
    cl.extend(["z"])
    cl.extend(ClientList(["w"]))
    assert cl == ["a", "c", "d", "y", "z", "w"] and len(cl) == 6 and cl[3] == "y" and cl[:2] == ["a", "c"]
    assert ClientList.run(("a",), frozenset({0})) == [] and not ClientList.run(("a",), frozenset({0}))
    assert name_list(cl, 2) == "a, c and 4 more" and name_list(iter(["p", "q", "r"]), 1) == "p and 2 more"


names = st.lists(st.sampled_from("abcdefgh"), min_size=0, max_size=6, unique=True).map(tuple)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(names, st.sets(st.integers(0, 5))), max_size=5))
def test_add_runs_is_add_run_in_turn(runs: list[tuple[tuple[str, ...], set[int]]]) -> None:
    pairs = [(run, frozenset(i for i in drop if i < len(run))) for run, drop in runs]
    one, many = ClientList(["z"]), ClientList(["z"])
    for run, drop in pairs:
        one.add_run(run, drop)
    many.add_runs(pairs)
    assert list(many) == list(one) and len(many) == len(one) and many == one
    many.add_run(("y",))  # counted on from the length worked out
    one.add_run(("y",))
    assert len(many) == len(one) and list(many) == list(one)


@settings(max_examples=200, deadline=None)
@given(st.lists(names, min_size=1, max_size=4), st.data())
def test_client_union_is_the_ordered_union(runs: list[tuple[str, ...]], data: st.DataObject) -> None:
    """The union over shared runs equals the name-by-name union, in first-seen order."""
    lists: list[object] = []
    for _ in range(data.draw(st.integers(1, 6))):
        cl = ClientList()
        for _ in range(data.draw(st.integers(0, 3))):
            run = runs[data.draw(st.integers(0, len(runs) - 1))]
            drop = frozenset(data.draw(st.sets(st.integers(0, max(0, len(run) - 1)), max_size=len(run)))) \
                if run else frozenset()
            cl.add_run(run, frozenset(i for i in drop if i < len(run)))
        lists.append(cl if data.draw(st.booleans()) else list(cl))
    naive = list(dict.fromkeys(n for x in lists for n in x))  # type: ignore[attr-defined]
    assert client_union(lists) == naive  # type: ignore[arg-type]


# --------------------------------------------------------------------------- one route for namespaces alike


def _ns(name: str) -> str:
    return f"""
apiVersion: v1
kind: Namespace
metadata: {{name: {name}, labels: {{istio-injection: enabled}}}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: client, namespace: {name}}}
spec: {{replicas: 1, template: {{metadata: {{labels: {{app: client}}}}, spec: {{containers: [{{name: c}}]}}}}}}
"""


def _app(ns: str = "srv") -> str:
    out = [_ns(ns), f"""
apiVersion: v1
kind: Service
metadata: {{name: api, namespace: {ns}}}
spec: {{selector: {{app: api}}, ports: [{{name: http, port: 8080}}]}}
"""]
    for v in ("v1", "v2", "v3"):
        out.append(f"""
apiVersion: apps/v1
kind: Deployment
metadata: {{name: api-{v}, namespace: {ns}}}
spec: {{replicas: 1, template: {{metadata: {{labels: {{app: api, version: {v}}}}}, spec: {{containers: [{{name: c}}]}}}}}}
""")
    return "---".join(out)


def _vs(ns: str, weights: tuple[int, int], export: str = "", match: str = "") -> str:
    http = f"[{{route: [{{destination: {{host: api.srv.svc.cluster.local, subset: v1}}, weight: {weights[0]}}}, " \
           f"{{destination: {{host: api.srv.svc.cluster.local, subset: v2}}, weight: {weights[1]}}}]}}]"
    if match:
        http = f"[{{match: [{match}], route: [{{destination: {{host: api.srv.svc.cluster.local, subset: v3}}}}]}}, " \
               + http[1:]
    return f"""
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: api-{ns}-{weights[0]}, namespace: {ns}}}
spec:
  hosts: [api.srv.svc.cluster.local]
{export}  http: {http}
"""


DR = """
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: api, namespace: {ns}}}
spec:
  host: api.srv.svc.cluster.local
{export}  subsets: [{subsets}]
"""

SUBSETS = "{name: v1, labels: {version: v1}}, {name: v2, labels: {version: v2}}, {name: v3, labels: {version: v3}}"

SIDECAR = """
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {{name: default, namespace: {ns}}}
spec:
  egress: [{{hosts: ["./*"]}}]
"""

ROUTE = """
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: consumer, namespace: {ns}}}
spec:
  parentRefs: [{{group: "", kind: Service, name: api, namespace: srv, port: 8080}}]
  rules: [{{backendRefs: [{{name: api-v3, namespace: srv, port: 8080}}]}}]
"""


def _mesh_text(generic: int, *, extra: tuple[str, ...] = (), vs: bool = True, match: str = "") -> str:
    docs = [_app(), DR.format(ns="srv", export="", subsets=SUBSETS)] + ([_vs("srv", (90, 10), match=match)] if vs
                                                                          else [])
    docs += [_ns(f"g{i}") for i in range(generic)]
    docs += list(extra)
    return "---".join(textwrap.dedent(d) for d in docs)


#: each of these makes some namespaces route api differently from the others
SINGLED_OUT = {
    "vs-export": (_ns("b"), _vs("b", (50, 50), export="  exportTo: [\".\"]\n")),
    "vs-export-list": (_ns("c"), _vs("srv", (70, 30), export="  exportTo: [c, g1]\n")),
    "dr-in-client-ns": (_ns("d"), DR.format(ns="d", export="  exportTo: [\".\"]\n",
                                            subsets="{name: v1, labels: {version: v3}}, "
                                                    "{name: v2, labels: {version: v3}}")),
    "sidecar": (_ns("e"), SIDECAR.format(ns="e")),
    "source-namespace": (_ns("f"),),  # and the VirtualService's first rule matches sourceNamespace f
    "consumer-route": (_ns("h"), ROUTE.format(ns="h")),
    "service-export": (_ns("k"),),
    # a public rule outside its host's namespace: the clients of its namespace look it up first
    "dr-elsewhere": (_ns("m"), DR.format(ns="m", export="", subsets="{name: v1, labels: {version: v3}}, "
                                                                    "{name: v2, labels: {version: v1}}")),
    # MeshConfig makes rules private by default: srv's own clients see them, no one else does
    "mesh-defaults": (mesh_config('defaultVirtualServiceExportTo: ["."]', 'defaultDestinationRuleExportTo: ["."]'),),
    # ./* in the root namespace's Sidecar imports each client's own namespace: srv's clients know api
    "root-sidecar": ("""
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default, namespace: istio-system}
spec:
  egress: [{hosts: ["./*", "istio-system/*"]}]
""",),
}


def _shared_and_apart(text: str) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]]]:
    """The paths of ``text`` as computed, and with every namespace apart (the grouping switched off)."""
    shared = _signature(compare_paths(parse_manifest_text(text, "m.yaml"), n=None))
    real = clients_mod.route_namespaces
    try:
        clients_mod.route_namespaces = lambda *a, **k: None  # type: ignore[assignment]
        apart = _signature(compare_paths(parse_manifest_text(text, "m.yaml"), n=None))
    finally:
        clients_mod.route_namespaces = real
    return shared, apart


def _signature(cmp: object) -> list[tuple[object, ...]]:
    out = []
    for p in cmp.paths:  # type: ignore[attr-defined]
        shares = p.route.expected_shares()[0]
        out.append((p.service, p.path, p.kind, tuple(p.clients), tuple(b.name for b in p.route.backends()), shares))
    return out


@pytest.mark.parametrize("case", sorted(SINGLED_OUT))
def test_shared_route_equals_every_namespace_apart(case: str) -> None:
    """The paths with namespaces that nothing singles out sharing one route are those computed namespace by
    namespace, for each way a namespace can be singled out (and all of them together)."""
    for extra in (SINGLED_OUT[case], tuple(d for docs in SINGLED_OUT.values() for d in docs)):
        text = _mesh_text(4, extra=extra, match="{sourceNamespace: f}" if extra != SINGLED_OUT[case]
                          or case == "source-namespace" else "")
        if case == "service-export":
            text = text.replace("metadata: {name: api, namespace: srv}",
                                "metadata: {name: api, namespace: srv, annotations: "
                                "{networking.istio.io/exportTo: 'srv,k'}}")
        shared, apart = _shared_and_apart(text)
        assert shared == apart
        assert len({x[1] for x in shared if x[2] == "sidecar"}) >= 2, shared  # the case does single a namespace out


BACK = """
apiVersion: v1
kind: Service
metadata: {name: back, namespace: srv}
spec: {selector: {app: api}, ports: [{name: http, port: 8080}]}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: back, namespace: srv}
spec: {host: back.srv.svc.cluster.local, subsets: [{name: v1, labels: {version: v1}}]}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: back-y, namespace: y}
spec: {host: back.srv.svc.cluster.local, exportTo: ["."], subsets: [{name: v1, labels: {version: v2}}]}
"""

TO_BACK = {
    "virtual-service": """
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: api, namespace: srv}
spec:
  hosts: [api.srv.svc.cluster.local]
  http: [{route: [{destination: {host: back.srv.svc.cluster.local, subset: v1}}]}]
""",
    "http-route": """
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: api, namespace: srv}
spec:
  parentRefs: [{group: "", kind: Service, name: api, port: 8080}]
  rules: [{backendRefs: [{name: back, port: 8080}]}]
""",
}


@pytest.mark.parametrize("how", sorted(TO_BACK))
def test_the_rules_of_a_host_the_route_sends_to_single_their_namespaces_out(how: str) -> None:
    """A route to another host looks up that host's DestinationRule from the client's namespace: a rule private
    to namespace y gives y's clients other pods (the sharing once gave them the other namespaces' route)."""
    text = "---".join([_app("srv"), _ns("a"), _ns("b"), _ns("y"), BACK, TO_BACK[how]])
    shared, apart = _shared_and_apart(text)
    assert shared == apart
    if how == "virtual-service":  # back-y's subset v1 selects version v2 (a backendRef names no subset)
        y = [x for x in shared if x[2] == "sidecar" and "y/client" in x[3]]
        assert len(y) == 1 and y[0][3] == ("y/client",) and y[0][4] == ("api-v2-0",)
    mesh = Mesh(parse_manifest_text(text, "m.yaml"))
    info, _ = mesh.find_service("srv/api")
    assert "y" in clients_mod.rule_namespaces(mesh, info)


def test_traffic_distribution_keeps_every_namespace_apart() -> None:
    """trafficDistribution's failover priorities read each client's network label: no namespace stands for another."""
    text = Path("tests/data/mesh-cases/traffic-distribution-network.yaml").read_text()
    mesh = Mesh(parse_manifest_text(text, "m.yaml"))
    assert clients_mod.route_namespaces(mesh, mesh.find_service("srv/api")[0]) is None
    shared, apart = _shared_and_apart(text)
    assert shared == apart
    assert len([x for x in shared if x[2] == "sidecar"]) == 2  # the two client namespaces route apart


def test_planted_cluster_equals_every_namespace_apart() -> None:
    shared, apart = _shared_and_apart(to_yaml(cluster(24, 6, Plant(**{f: True for f in Plant.__dataclass_fields__}))))
    assert shared == apart


def test_sidecar_routes_do_not_grow_with_namespaces(monkeypatch: pytest.MonkeyPatch) -> None:
    """A Service's sidecar routes are worked out for the namespaces that single it out, not for every namespace."""
    calls: list[str] = []
    real = Mesh.sidecar_route

    def counted(self: Mesh, *a: object, **k: object) -> object:
        calls.append(str(k.get("name")))
        return real(self, *a, **k)

    monkeypatch.setattr(Mesh, "sidecar_route", counted)
    seen = []
    for generic in (3, 40):
        calls.clear()
        cmp = compare_paths(parse_manifest_text(_mesh_text(generic), "m.yaml"), n=None)
        sidecar = next(p for p in cmp.paths if p.kind == "sidecar")
        assert len(sidecar.clients) == generic + 1  # every generic namespace's client, and srv's own client
        seen.append(len(calls))
    assert seen[0] == seen[1] <= 2, seen


def test_route_namespaces_gives_up_where_the_client_itself_matters() -> None:
    labels = _mesh_text(2, extra=(_vs("srv", (20, 80), match="{sourceLabels: {app: client}}"),))
    m = Mesh(parse_manifest_text(labels, "m.yaml"))
    info = m.find_service("srv/api")[0]
    assert clients_mod.route_namespaces(m, info) is None
    plain = Mesh(parse_manifest_text(_mesh_text(2), "m.yaml"))
    # srv's rules are exported everywhere and no Sidecar imports by namespace: srv's clients are like the others
    assert clients_mod.route_namespaces(plain, plain.find_service("srv/api")[0]) == {"istio-system"}
    strict = _mesh_text(2, extra=("""
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default, namespace: istio-system}
spec:
  outboundTrafficPolicy: {mode: REGISTRY_ONLY}
""",))
    m = Mesh(parse_manifest_text(strict, "m.yaml"))
    assert clients_mod.route_namespaces(m, m.find_service("srv/api")[0]) is None


@settings(max_examples=40, deadline=None)
@given(st.sets(st.sampled_from(sorted(SINGLED_OUT))), st.integers(0, 3), st.booleans())
def test_shared_route_equals_every_namespace_apart_in_any_combination(cases: set[str], generic: int,
                                                                       match: bool) -> None:
    extra = tuple(d for c in sorted(cases) for d in SINGLED_OUT[c])
    shared, apart = _shared_and_apart(_mesh_text(generic, extra=extra, match="{sourceNamespace: f}" if match else ""))
    assert shared == apart


@settings(max_examples=30, deadline=None)
@given(st.sets(st.sampled_from(sorted(SINGLED_OUT))), st.integers(0, 3))
def test_audit_rows_equal_every_namespace_apart(cases: set[str], generic: int) -> None:
    """The audit looks at the namespaces ``rule_namespaces`` names one by one and at one other namespace for the
    rest: its rows are those of looking at every namespace one by one."""
    from meshstat.audit import audit
    from meshstat.audit import istio as audit_istio

    text = _mesh_text(generic, extra=tuple(d for c in sorted(cases) for d in SINGLED_OUT[c]))
    mesh = Mesh(parse_manifest_text(text, "m.yaml"))
    shared = audit(mesh).rows
    real = audit_istio.rule_namespaces
    try:
        every = set(mesh.manifests.namespaces) | {w.meta.namespace for w in mesh.manifests.workloads}
        audit_istio.rule_namespaces = lambda *a, **k: set(every)  # type: ignore[assignment]
        apart = audit(Mesh(parse_manifest_text(text, "m.yaml"))).rows
    finally:
        audit_istio.rule_namespaces = real
    assert _who(shared) == _who(apart)
    assert not any("\x00" in x for r in shared for x in (r.clients, r.detail, *r.fix))  # the stand-in namespace


def test_an_audit_row_names_the_namespaces_no_rule_names_in_words() -> None:
    from meshstat.audit import audit

    mesh = Mesh(parse_manifest_text(Path("tests/data/mesh-cases/service-private-rule-elsewhere.yaml").read_text(),
                                    "m.yaml"))
    (row,) = audit(mesh).rows
    assert row.reason == "sidecar-egress-excludes" and "a (1), y (1)" in row.clients
    assert "not exported to namespaces that no rule names" in row.detail
    assert all("\x00" not in x for x in (row.detail, *row.fix))


#: how a row names its clients' namespace: one by one, or the group of those no rule names
_WHO = re.compile(r"(reach |to )(?:namespace [^\s:;,]+|namespaces that no rule names)")


def _who(rows: list[Any]) -> list[Any]:
    """Rows with the naming of their clients' namespaces left out (the clients column names them; one fix per
    namespace, or one for the group)."""
    return [replace(r, detail=_WHO.sub(r"\1<who>", r.detail), fix=tuple(sorted({_WHO.sub(r"\1<who>", f)
                                                                                   for f in r.fix})))
            for r in rows]
