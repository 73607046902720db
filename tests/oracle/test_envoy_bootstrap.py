"""The Envoy oracle's bootstrap for locality scenarios (no Envoy started: the binary look-up is replaced)."""

from __future__ import annotations

import pytest

from meshstat.errors import InvalidArgument
from meshstat.oracle import envoy as oe


@pytest.fixture(autouse=True)
def _no_binary(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(oe, "envoy_binary", lambda: "/nonexistent/envoy")


def test_localities_priorities_health_and_weights() -> None:
    sc = oe.EnvoyScenario(
        clusters=(oe.EnvoyCluster(
            "backend", ("a1", "b1", "a2", "p1"), zones=("a", "b", "a", "a"), priorities=(0, 0, 0, 1),
            health=("HEALTHY", "UNHEALTHY", "HEALTHY", "HEALTHY"), zone_weights={"a": 3, "b": 1},
            zone_aware={"min_cluster_size": 1}),),
        node_zone="a",
        local_cluster=oe.EnvoyCluster("front", ("l1", "l2"), zones=("a", "b")),
    )
    env = oe.EnvoyOracle(sc)
    boot = env.bootstrap()
    assert boot["node"]["locality"] == {"region": "r1", "zone": "a"}
    assert boot["cluster_manager"] == {"local_cluster_name": "front"}
    backend, front = boot["static_resources"]["clusters"]
    locs = backend["load_assignment"]["endpoints"]
    got = [(g["locality"]["zone"], g.get("priority", 0), g.get("load_balancing_weight"),
            len(g["lb_endpoints"])) for g in locs]
    assert got == [("a", 0, 3, 2), ("b", 0, 1, 1), ("a", 1, 3, 1)]
    assert [e["health_status"] for e in locs[0]["lb_endpoints"]] == ["HEALTHY", "HEALTHY"]
    assert backend["common_lb_config"] == {"zone_aware_lb_config": {"min_cluster_size": 1},
                                           "locality_weighted_lb_config": {}}
    assert front["name"] == "front"
    assert "common_lb_config" not in front
    # the local cluster's hosts get addresses, but no listener: no traffic goes to them
    listeners = boot["static_resources"]["listeners"]
    listener_ports = {lst["address"]["socket_address"]["port_value"] for lst in listeners}
    assert not listener_ports & set(env.local_ports.values())
    assert len(env.local_ports) == 2


def test_one_value_per_endpoint() -> None:
    with pytest.raises(InvalidArgument, match="one of zones per endpoint"):
        oe.EnvoyCluster("c", ("a", "b"), zones=("a",))


def test_plain_scenario_has_no_locality() -> None:
    boot = oe.EnvoyOracle(oe.EnvoyScenario.weighted((90, 10))).bootstrap()
    assert "node" not in boot and "cluster_manager" not in boot
    c1 = boot["static_resources"]["clusters"][0]
    (group,) = c1["load_assignment"]["endpoints"]
    assert list(group) == ["lb_endpoints"]  # no locality, priority or weight: as before
