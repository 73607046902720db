"""What the mesh keeps between routes: a cluster's endpoint stage per key, kube-proxy's route per service port.

Both are optimisations (a Service's client groups and its every-route view share their clusters;
its kube-proxy path and its sidecar's own path share one cascade): every test here compares them
with the plain computation, each route worked out afresh, on inputs where the caller's place,
the client's namespace or the DestinationRule it sees changes the answer.
"""

from __future__ import annotations

from typing import Any

import pytest

from meshstat.mesh import Mesh
from meshstat.mesh.locality import LocalityPolicy, depends_on_caller
from meshstat.parsers.istio_locality import LocalityLbSetting
from meshstat.parsers.k8s import load_manifests, parse_manifest_text
from tests.cluster_gen import Plant, cluster, to_yaml

INPUTS = {
    "bookinfo": ["tests/data/bookinfo"],
    "istio-demo": ["tests/data/istio-demo"],
    "gateway-api": ["tests/data/gateway-api"],
    "zones-failover": ["tests/data/topology", "tests/data/topology_istio/catalog-outlier.yaml"],
    "zones-distribute": ["tests/data/topology", "tests/data/topology_istio/catalog-distribute.yaml"],
    "zones": ["tests/data/topology"],
    # merged DestinationRules are one object per set of rules: a key on their identity holds
    "merged-rules": ["tests/data/mesh-cases/merged-rules-per-namespace.yaml"],
    "traffic-distribution": ["tests/data/mesh-cases/traffic-distribution-network.yaml"],
}


class _Forget(dict):  # type: ignore[type-arg]
    """A memo that keeps nothing: every route worked out afresh."""

    def get(self, key: Any, default: Any = None) -> Any:
        return default

    def __setitem__(self, key: Any, value: Any) -> None:
        pass


def _signature(mesh: Mesh) -> list[tuple[Any, ...]]:
    """Every client path of every routed service, with its notes, layers and warnings, and then each zone's
    sidecar route (the caller's place decides locality)."""
    out: list[tuple[Any, ...]] = []
    for info, port in [(i, sp.port) for i in mesh.registry.values() for sp in i.ports]:
        diags: list[Any] = []
        for p in mesh.client_paths(info, port, diags=diags):
            r = p.route
            out.append((info.short, port, p.kind, p.label, tuple(p.clients), tuple(b.name for b in r.backends()),
                        r.expected_shares(), r.notes, tuple(p.layers), r.name))
        out.append(tuple(str(d) for d in diags))
        for w in mesh.manifests.workloads:  # each client as if injected: its node's zone, its labels
            r = mesh.sidecar_route(w, info, port)
            out.append((w.meta.ref, tuple(b.name for b in r.backends()), r.exact_shares(), r.notes))
    return out


def _both(manifests: Any, monkeypatch: pytest.MonkeyPatch) -> tuple[list[Any], list[Any]]:
    kept = _signature(Mesh(manifests))
    init = Mesh.__init__

    def forgetful(self: Mesh, *a: Any, **kw: Any) -> None:
        init(self, *a, **kw)
        self._clusters = _Forget()
        self._kube_routes = _Forget()

    monkeypatch.setattr(Mesh, "__init__", forgetful)
    fresh = _signature(Mesh(manifests))
    monkeypatch.undo()
    return kept, fresh


@pytest.mark.parametrize("name", sorted(INPUTS))
def test_kept_routes_equal_fresh_ones(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    kept, fresh = _both(load_manifests(INPUTS[name]), monkeypatch)
    assert kept == fresh
    assert any(len(x) > 2 for x in kept)


def test_kept_routes_equal_fresh_ones_on_a_planted_cluster(monkeypatch: pytest.MonkeyPatch) -> None:
    m = parse_manifest_text(to_yaml(cluster(12, 4, Plant(**{f: True for f in Plant.__dataclass_fields__}))), "c.yaml")
    kept, fresh = _both(m, monkeypatch)
    assert kept == fresh


def test_clusters_are_shared_between_client_groups_and_kept_apart_by_place() -> None:
    """A cluster's stage is worked out once for every client group that sees the same rule (no locality
    plan depends on the caller), and once per caller place where failover priorities do."""
    mesh = Mesh(parse_manifest_text(to_yaml(cluster(6, 3)), "c.yaml"))
    for info, port in mesh.routed_services():
        mesh.client_paths(info, port)
    # 6 Services, 2 subsets each: one stage per subset cluster, whatever the number of client groups
    assert len(mesh._clusters) == 12
    zoned = Mesh(load_manifests(INPUTS["zones-failover"]))
    info, _ = zoned.find_service("shop/catalog")
    port = info.ports[0].port
    callers = set()
    for w in zoned.manifests.workloads:
        if w.meta.name.startswith("frontend"):
            zoned.sidecar_route(w, info, port)
            callers.add((zoned.places[("shop", w.meta.name)], tuple(sorted(w.labels.items()))))
    assert len({place.zone for place, _ in callers}) == 3
    assert len(zoned._clusters) == len(callers)  # one per caller place (and labels: failoverPriority reads them)


def test_which_locality_plans_depend_on_the_caller() -> None:
    on = LocalityLbSetting(True)
    assert not depends_on_caller(LocalityPolicy(None, False, False, "off"))
    assert not depends_on_caller(LocalityPolicy(on, False, False, "mesh default, no outlier detection"))
    assert depends_on_caller(LocalityPolicy(on, True, True, "failover"))
    assert depends_on_caller(LocalityPolicy(LocalityLbSetting(True, distribute=((("*", (("a", 100),)),))),
                                            False, False, "distribute"))


def test_the_sidecars_own_path_shares_kube_proxys_route() -> None:
    mesh = Mesh(load_manifests(INPUTS["istio-demo"]))
    info, port = mesh.routed_services()[0]
    kp = mesh.kube_proxy_route(info, port, name="no sidecar (kube-proxy)")
    own = mesh.kube_proxy_route(info, port, name="own", notes=("first",))
    assert own.name == "own" and own.notes[0] == "first" and own.notes[1:] == kp.notes
    assert own.root is kp.root and own.exact_shares() is kp.exact_shares()
    assert own.masses64() == Mesh(load_manifests(INPUTS["istio-demo"])).kube_proxy_route(info, port).masses64()
