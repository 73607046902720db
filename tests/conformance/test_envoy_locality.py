"""A real Envoy 1.40 against meshstat's locality model: zone-aware routing, priorities, locality weights.

Each scenario runs a private Envoy (meshstat.oracle.envoy, 127.0.0.1 only) whose bootstrap sets
``node.locality`` and ``cluster_manager.local_cluster_name`` where zone-aware routing is tested;
meshstat reads the running Envoy's own ``/config_dump?include_eds`` (the input a user would give it)
and predicts each endpoint's share; the counts of 4,000 requests must fit those shares (chi-square at
ALPHA = 1e-5 per test, tests/conformance/util.py; Envoy's random choices cannot be seeded) and no
request may reach an endpoint meshstat gives probability 0. The semantics are Envoy's
``source/common/upstream/load_balancer_impl.cc`` (``ZoneAwareLoadBalancerBase::
regenerateLocalityRoutingStructures``, ``LoadBalancerBase::recalculatePerPriorityState``) and
``locality_wrr.cc``, as meshstat.balancers.priority models them.
"""

from __future__ import annotations

from fractions import Fraction

import pytest

from meshstat.mesh import envoy_dump_route
from meshstat.oracle.envoy import EnvoyCluster, EnvoyOracle, EnvoyScenario
from meshstat.parsers.envoy import parse_envoy_text
from tests.conformance.util import assert_fits

pytestmark = pytest.mark.usefixtures("envoy_path")

N = 4000
_BACKEND = ("a1", "a2", "b1", "b2", "c1", "c2")


def _zone_aware(local_zones: tuple[str, ...]) -> EnvoyScenario:
    return EnvoyScenario(
        clusters=(EnvoyCluster("backend", _BACKEND, zones=tuple(e[0] for e in _BACKEND)),),
        node_zone="a",
        local_cluster=EnvoyCluster("front", tuple(f"l{i}" for i in range(len(local_zones))),
                                   zones=local_zones),
    )


SCENARIOS = {
    # local 2/1/1 in a/b/c, upstream 2/2/2: zone a keeps 3333 * 10000 // 5000 = 6666 of 10000 (residual)
    "zone-aware residual": (_zone_aware(("a", "a", "b", "c")), "LocalityResidual"),
    # local 1/1/1: zone a's upstream share (1/3) is not below its local one: all of it stays in zone a
    "zone-aware direct": (_zone_aware(("a", "b", "c")), "LocalityDirect"),
    # priority 0 with 1 healthy host of 4: health 25% x 1.4 = 35% of the load, priority 1 the other 65%
    "priority spill-over": (EnvoyScenario(clusters=(EnvoyCluster(
        "backend", ("p0a", "p0b", "p0c", "p0d", "p1a", "p1b"), priorities=(0, 0, 0, 0, 1, 1),
        health=("HEALTHY", "UNHEALTHY", "UNHEALTHY", "UNHEALTHY", "HEALTHY", "HEALTHY")),)), None),
    # locality weights 3:1 (locality_weighted_lb_config): zone a 75%, zone b 25%
    "locality weights": (EnvoyScenario(clusters=(EnvoyCluster(
        "backend", ("wa1", "wa2", "wb1"), zones=("a", "a", "b"), zone_weights={"a": 3, "b": 1}),)), None),
}


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_envoy_locality_split(name: str, record) -> None:
    scenario, state = SCENARIOS[name]
    with EnvoyOracle(scenario) as env:
        cfg = parse_envoy_text(env.admin("/config_dump?include_eds"), f"{name}.json")
        route, _ = envoy_dump_route(cfg, "127.0.0.1", env.port)
        run = env.requests(N)
        by_addr = {f"127.0.0.1:{p}": ep for ep, p in env.endpoint_ports.items()}
    assert run.errors == 0, run.other
    shares: dict[str, Fraction] = dict.fromkeys(run.endpoints, Fraction(0))
    for b, s in zip(route.backends(), route.exact_shares(), strict=True):
        shares[by_addr[b.name]] += s
    assert sum(shares.values()) == 1, shares
    if state is not None:
        assert any(state in n for n in route.notes), route.notes
    counts = run.endpoint_counts()
    assert_fits(record, f"envoy {name}", run.endpoints, counts, [shares[e] for e in run.endpoints],
                state=state, model={e: str(s) for e, s in shares.items()})
