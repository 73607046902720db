"""meshstat.topology: the controller's hints, kube-proxy's CategorizeEndpoints, the per-zone/per-pod split,
each node's ruleset (read back by meshstat's own iptables reader) and ``compare -f``'s zones view."""

from __future__ import annotations

import io
from fractions import Fraction
from pathlib import Path

import pytest

from meshstat.errors import InvalidArgument
from meshstat.kubeproxy import find_service
from meshstat.parsers.k8s import load_manifests
from meshstat.parsers.netfilter import parse_iptables
from meshstat.topology import (
    Endpoint,
    TopoNode,
    WhatIf,
    auto_hints,
    build_cluster,
    categorize_endpoints,
    compare_topology,
    node_iptables_save,
    parse_client_zones,
    split,
)
from meshstat.topology.hints import allocations

DATA = Path(__file__).resolve().parents[1] / "data" / "topology"


def _ep(ip: str, node: str, zone: str, **kw: object) -> Endpoint:
    return Endpoint(ip, 8080, f"ns/{ip}", node, zone, **kw)


def test_hinted_is_replace_of_the_hints() -> None:
    """``Endpoint.hinted`` (the audit's fast copy) keeps every other field, as ``dataclasses.replace`` does."""
    import dataclasses

    e = Endpoint("10.0.0.7", 9080, "ns/p", "n1", "a", ready=False, serving=True, terminating=True,
                 controller_ready=False, zone_hints=("b",), node_hints=("n2",), workload="deployment/x")
    assert e.hinted(("c",), ("n3",)) == dataclasses.replace(e, zone_hints=("c",), node_hints=("n3",))
    assert e.hinted() == dataclasses.replace(e, zone_hints=(), node_hints=())
    assert [f.name for f in dataclasses.fields(Endpoint)][-3:] == ["zone_hints", "node_hints", "workload"]


@pytest.fixture(scope="module")
def manifests():
    return load_manifests([str(DATA)])


# --------------------------------------------------------------------------- kube-proxy: topology.go


def test_hints_used_only_when_every_ready_endpoint_has_one() -> None:
    eps = [_ep("10.0.0.1", "n1", "a", zone_hints=("a",)), _ep("10.0.0.2", "n2", "b")]
    cat = categorize_endpoints(eps, "n1", "a", uses_cluster=True, uses_local=False)
    assert cat.mode == "" and len(cat.cluster) == 2
    # a not-ready endpoint without hints does not count
    eps[1] = _ep("10.0.0.2", "n2", "b", ready=False)
    cat = categorize_endpoints(eps, "n1", "a", uses_cluster=True, uses_local=False)
    assert cat.mode == "PreferSameZone" and [e.ip for e in cat.cluster] == ["10.0.0.1"]


def test_zone_without_hints_falls_back_to_every_endpoint() -> None:
    eps = [_ep("10.0.0.1", "n1", "a", zone_hints=("a",)), _ep("10.0.0.2", "n2", "b", zone_hints=("b",))]
    cat = categorize_endpoints(eps, "n3", "c", uses_cluster=True, uses_local=False)
    assert cat.mode == "" and len(cat.cluster) == 2 and "no endpoint is hinted for zone c" in cat.why


def test_prefer_same_node_then_zone() -> None:
    eps = [_ep("10.0.0.1", "n1", "a", zone_hints=("a",), node_hints=("n1",)),
           _ep("10.0.0.2", "n2", "a", zone_hints=("a",), node_hints=("n2",))]  # fmt: skip
    assert [e.ip for e in categorize_endpoints(eps, "n1", "a", uses_cluster=True, uses_local=False).cluster] == [
        "10.0.0.1"]  # fmt: skip
    cat = categorize_endpoints(eps, "n9", "a", uses_cluster=True, uses_local=False)
    assert cat.mode == "PreferSameZone" and len(cat.cluster) == 2


def test_serving_terminating_fallback_and_local_policy() -> None:
    eps = [_ep("10.0.0.1", "n1", "a", ready=False, serving=True, terminating=True),
           _ep("10.0.0.2", "n2", "b", ready=False, serving=False, terminating=True)]  # fmt: skip
    cat = categorize_endpoints(eps, "n2", "b", uses_cluster=True, uses_local=True)
    assert [e.ip for e in cat.cluster] == ["10.0.0.1"] and cat.local == () and cat.has_any
    cat = categorize_endpoints(eps, "n1", "a", uses_cluster=False, uses_local=True)
    assert [e.ip for e in cat.local] == ["10.0.0.1"] and cat.cluster is None


# --------------------------------------------------------------------------- the controller's hints


NODES = [TopoNode("a1", "a", cpu_milli=4000), TopoNode("a2", "a", cpu_milli=4000), TopoNode("b1", "b", cpu_milli=8000),
         TopoNode("c1", "c", cpu_milli=4000), TopoNode("cp", "a", cpu_milli=64000, control_plane=True)]  # fmt: skip


def test_auto_allocates_proportionally_and_redistributes() -> None:
    # CPU a 8, b 8, c 4 (the control plane is left out): 10 endpoints want 4, 4, 2
    eps = [_ep(f"10.0.0.{i}", "a1", "a") for i in range(1, 7)] + [_ep(f"10.0.1.{i}", "b1", "b") for i in (1, 2, 3)]
    eps.append(_ep("10.0.2.1", "c1", "c"))
    out = auto_hints(eps, NODES)
    per = {}
    for e in out.endpoints:
        per[e.zone_hints] = per.get(e.zone_hints, 0) + 1
    assert per == {("a",): 4, ("b",): 4, ("c",): 2}
    assert {a.minimum for a in out.allocations.values()} == {4, 2}


def test_auto_drops_hints_over_the_overload_threshold(manifests) -> None:
    c = build_cluster(manifests, "shop/catalog")
    assert all(not e.zone_hints for e in c.endpoints)
    assert "total 5) exceed the 4 ready endpoints" in c.hints.reason


def test_allocation_uses_go_float_arithmetic() -> None:
    allocs, _ = allocations({"a": 0.6, "b": 0.4}, 2)
    assert allocs["a"].minimum == 1 and allocs["b"].minimum == 1
    # 0.4 * 3 * (1 / 1.2) is 1.0000000000000002 in float64: zone a's minimum is 2, not the exact 1, so the
    # minimums (2 + 1 + 1) exceed 3 endpoints and the controller removes the hints
    allocs, why = allocations({"a": 0.4, "b": 0.3, "c": 0.3}, 3)
    assert allocs is None and "a 2" in why
    assert allocations({"a": 0.5, "b": 0.5}, 1)[0] is None  # fewer endpoints than zones


# --------------------------------------------------------------------------- the split


def test_prefer_close_overloads_the_lone_pod_of_a_busy_zone(manifests) -> None:
    c = build_cluster(manifests, "shop/web", client="shop/frontend")
    assert {n: int(w) for n, w in c.clients.items()} == {"node-a1": 1, "node-b1": 1, "node-b2": 1, "node-c1": 3}
    s = split(c, rps=600)
    by_pod = {p.label: s.internal[p.key] for p in s.pods}
    assert float(by_pod["web-6d8f7c9b5-t8wnk"]) == pytest.approx(0.5, abs=1e-9)
    assert abs(s.imbalance() - 3.0) < 1e-6
    assert s.rate(s.pods[-1].key) == pytest.approx(300.0, abs=1e-4)
    # the terminating pod is not used while ready ones exist
    assert all(p.ready for p in s.pods)
    wide = split(c.with_policy(traffic_distribution=None))
    assert wide.imbalance() == pytest.approx(1.0, abs=1e-6)


def test_internal_local_drops_clients_on_nodes_without_pods(manifests) -> None:
    c = build_cluster(manifests, "shop/catalog", client_zones=parse_client_zones("eu-west-1a=1,eu-west-1c=1"))
    s = split(c.with_policy(internal_policy="Local"))
    assert s.internal_dropped == Fraction(1, 2)  # node-c1 has no catalog pod: DROP
    assert s.by_zone["eu-west-1c"][2] == 1


def test_client_zone_weights_are_each_clusters_own_and_keep_their_kind(manifests) -> None:
    """Two Services with the same ``--client-zones`` get equal weights, each its own copy; a weight keeps its type
    (0.5 and 1/2 are one weight but say different sources)."""
    zones = parse_client_zones("eu-west-1a=1,eu-west-1c=1")
    first = build_cluster(manifests, "shop/catalog", client_zones=zones)
    again = build_cluster(manifests, "shop/web", client_zones=zones)
    assert again.clients == first.clients and again.clients is not first.clients
    assert again.nodes == first.nodes and again.client_source == first.client_source
    halves = [build_cluster(manifests, "shop/catalog", client_zones={"eu-west-1a": w}) for w in (0.5, Fraction(1, 2))]
    assert [c.client_source for c in halves] == ["--client-zones eu-west-1a=0.5", "--client-zones eu-west-1a=1/2"]
    assert [type(next(iter(c.clients.values()))) for c in halves] == [float, Fraction]


def test_external_local_shares_by_node(manifests) -> None:
    c = build_cluster(manifests, "shop/web", client="shop/frontend").with_policy(external_policy="Local")
    s = split(c)
    # five worker nodes have a ready web pod; node-a1's two pods share its fifth
    assert set(s.lb_weights) == {"node-a1", "node-a2", "node-b1", "node-b2", "node-c1"}
    assert sorted(s.external.values()) == [Fraction(1, 10)] * 2 + [Fraction(1, 5)] * 4
    s2 = split(c, lb_weight="endpoints")
    assert set(s2.external.values()) == {Fraction(1, 6)}


def test_what_ifs(manifests) -> None:
    c = build_cluster(manifests, "shop/web", client="shop/frontend")
    cmp_ = compare_topology(c, [WhatIf("lose-zone", ("eu-west-1c",)), WhatIf("scale-zone", ("deploy/web", "eu-west-1c", "3")),
                                WhatIf("move-clients", ("eu-west-1c", "eu-west-1a"))])  # fmt: skip
    lost = cmp_.get("lose zone eu-west-1c")
    assert all(p.zone != "eu-west-1c" for p in lost.pods) and sum(lost.internal.values()) == 1
    scaled = cmp_.get("deploy/web in eu-west-1c = 3")
    assert sum(1 for p in scaled.pods if p.zone == "eu-west-1c") == 3
    # a: 3 pods for 1/6 of the clients, b: 2 for 2/6, c: 3 for 3/6 -> 1/18, 1/6, 1/6 over a mean of 1/8
    assert scaled.imbalance() == pytest.approx(4 / 3, abs=1e-6)
    moved = cmp_.get("clients eu-west-1c->eu-west-1a")
    assert moved.by_zone["eu-west-1a"][0] == Fraction(4, 6)


def test_missing_clients_and_zones_are_said(tmp_path) -> None:
    (tmp_path / "s.yaml").write_text((DATA / "services.yaml").read_text() + "---\n"
                                     + (DATA / "endpointslices.yaml").read_text())  # fmt: skip
    m = load_manifests([str(tmp_path)])
    with pytest.raises(InvalidArgument, match="--client-zones"):
        build_cluster(m, "shop/web")
    c = build_cluster(m, "shop/web", client_zones=parse_client_zones("eu-west-1a=3,eu-west-1b=2,eu-west-1c=1"))
    assert any("no Node objects" in n for n in c.notes)
    with pytest.raises(InvalidArgument):
        parse_client_zones("a=x")


# --------------------------------------------------------------------------- rulesets


@pytest.mark.parametrize("node", ["node-a1", "node-b2", "node-c1", "cp-1"])
def test_node_ruleset_reads_back(manifests, node: str) -> None:
    c = build_cluster(manifests, "shop/web", client="shop/frontend").with_policy(internal_policy="Local")
    text = node_iptables_save(c, node)
    info = find_service(parse_iptables(text, node), "shop/web:http")
    want = sorted(e.key for e in c.endpoints if e.node == node and e.ready)
    assert sorted(e.address for e in info.local_endpoints) == want
    assert info.internal_policy == "Local" and info.hash_ok is not False
    # a node without a local endpoint drops (the Service has endpoints elsewhere): hasEndpoints is cluster-wide
    assert info.state == (None if want else "dropped") and not info.rejected


# --------------------------------------------------------------------------- command line


def _run(*argv: str) -> tuple[int, str, str]:
    from meshstat.cli import main

    out, err = io.StringIO(), io.StringIO()
    rc = main(list(argv), stdout=out, stderr=err)
    return rc, out.getvalue(), err.getvalue()


def test_cli_compare_zones() -> None:
    rc, out, _ = _run("compare", "-f", str(DATA), "--client", "shop/frontend", "--service", "shop/web",
                      "--lose-zone", "eu-west-1c")  # fmt: skip
    assert rc == 0
    assert "Per client zone" in out and "lose zone eu-west-1c" in out and "ETP Local" in out
    assert "max/mean" in out and "3.00" in out


def test_cli_machine_format_has_every_column() -> None:
    rc, out, _ = _run("compare", "-f", str(DATA), "--client", "shop/frontend", "--format", "csv", "--rps", "100")
    assert rc == 0
    head = out.splitlines()[0].split(",")
    for col in ("service", "scenario", "traffic", "client_kind", "client", "pod", "pod_zone", "share",
                "share_exact", "rps", "imbalance"):  # fmt: skip
        assert col in head


def test_cli_bad_arguments() -> None:
    rc, _, err = _run("compare", "-f", str(DATA), "--client-zones", "a=")
    assert rc == 2 and err.startswith("meshstat: error:")
    rc, _, err = _run("compare", "-f", str(DATA), "--lose-zone", "nowhere", "--service", "shop/web")
    assert rc == 2 and "nowhere" in err


def test_publish_not_ready_addresses_makes_pods_ready_endpoints() -> None:
    """Without EndpointSlices, the endpoints are the Pods as the controller lists them (``podToEndpoint``):
    ``publishNotReadyAddresses`` makes a not-Ready pod ready and serving."""
    from meshstat.parsers.k8s import parse_manifest_text

    def text(publish: bool) -> str:
        pods = "".join(f"""
---
apiVersion: v1
kind: Pod
metadata: {{name: db-{i}, labels: {{app: db}}}}
spec: {{nodeName: n1, containers: [{{name: c, image: x}}]}}
status: {{phase: Running, podIP: 10.0.0.{i}, conditions: [{{type: Ready, status: '{ready}'}}]}}""" for i, ready in ((1, "True"), (2, "False")))
        return f"""apiVersion: v1
kind: Node
metadata: {{name: n1, labels: {{topology.kubernetes.io/zone: a}}}}
status: {{conditions: [{{type: Ready, status: 'True'}}]}}
---
apiVersion: v1
kind: Service
metadata: {{name: db}}
spec: {{selector: {{app: db}}, publishNotReadyAddresses: {str(publish).lower()}, ports: [{{port: 5432}}]}}{pods}"""

    for publish, want in ((False, {"10.0.0.1": True, "10.0.0.2": False}), (True, {"10.0.0.1": True, "10.0.0.2": True})):
        c = build_cluster(parse_manifest_text(text(publish), "db.yaml"), "default/db",
                          client_zones=parse_client_zones("a=1"))
        assert {e.ip: e.ready for e in c.endpoints} == want
