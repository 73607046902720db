"""Two destinations of one split that reach the same pod: each cluster's copy counted, the pod gets the sum.

Two subsets whose labels select one pod, two Services with one selector, two Envoy clusters with
one endpoint: Envoy keeps a cluster per destination and the pod is in each. meshstat once refused
such a route ("backend names must be unique"); the later copies are now named ``pod via tag``.
"""

from __future__ import annotations

import json
from collections import defaultdict
from fractions import Fraction
from pathlib import Path

from meshstat.engine.mesh import compare_paths
from meshstat.mesh import envoy_dump_route
from meshstat.parsers.envoy import load_envoy
from meshstat.parsers.k8s import parse_manifest_text
from tests.mesh.test_clients import DR, _mesh_text, _ns

ENVOY = Path(__file__).resolve().parents[1] / "data" / "envoy"


def _by_pod(route: object) -> dict[str, Fraction]:
    out: dict[str, Fraction] = defaultdict(Fraction)
    for b, s in zip(route.backends(), route.exact_shares(), strict=True):  # type: ignore[attr-defined]
        out[b.name.split(" via ")[0]] += s
    return dict(out)


def test_two_subsets_selecting_one_pod() -> None:
    both_v3 = DR.format(ns="d", export="  exportTo: [\".\"]\n",
                        subsets="{name: v1, labels: {version: v3}}, {name: v2, labels: {app: api, version: v3}}")
    cmp = compare_paths(parse_manifest_text(_mesh_text(1, extra=(_ns("d"), both_v3)), "m.yaml"), n=100, rng=1)
    path = next(p for p in cmp.paths if p.kind == "sidecar" and "d/client" in p.clients)
    names = [b.name for b in path.route.backends()]
    assert names == ["api-v3-0", "api-v3-0 via v2"]
    assert path.route.exact_shares() == (Fraction(9, 10), Fraction(1, 10))
    assert _by_pod(path.route) == {"api-v3-0": 1} and int(path.result.counts.sum()) == 100
    assert cmp.shares(by="version")[path.path] == {"v3": 1}


def test_two_services_with_one_selector_in_a_gateway_api_split() -> None:
    twin = """
apiVersion: v1
kind: Service
metadata: {name: api-twin, namespace: srv}
spec: {selector: {app: api, version: v1}, ports: [{name: http, port: 8080}]}
---
apiVersion: v1
kind: Service
metadata: {name: api-one, namespace: srv}
spec: {selector: {app: api, version: v1}, ports: [{name: http, port: 8080}]}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: producer, namespace: srv}
spec:
  parentRefs: [{group: "", kind: Service, name: api, port: 8080}]
  rules: [{backendRefs: [{name: api-one, port: 8080, weight: 3}, {name: api-twin, port: 8080, weight: 1}]}]
"""
    text = _mesh_text(0, extra=(twin,), vs=False)
    cmp = compare_paths(parse_manifest_text(text, "m.yaml"), n=None)
    path = next(p for p in cmp.paths if p.kind == "sidecar")
    assert [b.name for b in path.route.backends()] == ["api-v1-0", "api-v1-0 via api-twin.srv.svc.cluster.local"]
    assert _by_pod(path.route) == {"api-v1-0": 1}


def test_envoy_weighted_clusters_sharing_endpoints(tmp_path: Path) -> None:
    dump = json.loads((ENVOY / "meshstat-exp-envoy140-config_dump.json").read_text())

    def edit(x: object) -> None:  # every copy of the route /split (the listener's and the route dump's)
        if isinstance(x, dict):
            if x.get("match") == {"path": "/split"}:
                x["route"]["weighted_clusters"]["clusters"] = [{"name": "rr4", "weight": 3},
                                                               {"name": "rand4", "weight": 1}]
            for v in x.values():
                edit(v)
        elif isinstance(x, list):
            for v in x:
                edit(v)

    edit(dump)
    f = tmp_path / "dump.json"
    f.write_text(json.dumps(dump))
    cfg = load_envoy([str(f)])
    route, _ = envoy_dump_route(cfg, "127.0.0.1", 10000, path="/split")

    def by_address(r: object) -> dict[str, Fraction]:
        out: dict[str, Fraction] = defaultdict(Fraction)
        for b, x in zip(r.backends(), r.exact_shares(), strict=True):  # type: ignore[attr-defined]
            out[b.address] += x
        return dict(out)

    rr = by_address(envoy_dump_route(cfg, "127.0.0.1", 10000, path="/rr4")[0])
    rand = by_address(envoy_dump_route(cfg, "127.0.0.1", 10000, path="/rand4")[0])
    assert len({b.name for b in route.backends()}) == len(route.backends()) > len(rr)
    assert by_address(route) == {a: Fraction(3, 4) * rr.get(a, 0) + Fraction(1, 4) * rand.get(a, 0)
                                 for a in rr.keys() | rand.keys()}
