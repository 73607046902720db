"""Envoy zone-aware routing (balancers.priority.zone_aware_shares), expected values worked out by hand
from load_balancer_impl.cc (percentages in 1/10000, integer division)."""

from fractions import Fraction as F

from meshstat.balancers.priority import zone_aware_shares


def test_residual():
    # upstream a=2, b=4, c=2 (2500/5000/2500); local a=2, b=2, c=1 (4000/4000/2000); own a:
    # 2500 < 4000 -> residual; local share 2500*10000//4000 = 6250; residual b 1000, c 500
    s, state = zone_aware_shares([("a", 2), ("b", 4), ("c", 2)], [("a", 2), ("b", 2), ("c", 1)], "a")
    assert state == "LocalityResidual"
    assert s == {"a": F(5, 8), "b": F(1, 4), "c": F(1, 8)}


def test_direct():
    s, state = zone_aware_shares([("a", 4), ("b", 2), ("c", 2)], [("a", 1), ("b", 1), ("c", 1)], "a")
    assert state == "LocalityDirect" and s == {"a": 1, "b": 0, "c": 0}


def test_no_local_upstream_hosts_goes_by_residual_capacity():
    # own zone c has no upstream hosts: all picks cross zone, by residual capacity (a: 5000-3333, b: 5000-3333)
    s, state = zone_aware_shares([("a", 3), ("b", 3)], [("a", 1), ("b", 1), ("c", 1)], "c")
    assert state == "LocalityResidual" and s == {"a": F(1, 2), "b": F(1, 2)}


def test_early_exits_and_routing_enabled():
    s, state = zone_aware_shares([("a", 2), ("b", 3)], [("a", 1), ("b", 1)], "a")
    assert state.startswith("NoLocalityRouting") and "min_cluster_size" in state and s == {"a": F(2, 5), "b": F(3, 5)}
    s, state = zone_aware_shares([("a", 3), ("b", 3)], [("a", 5)], "a")
    assert "fewer than 2 localities" in state and s == {"a": F(1, 2), "b": F(1, 2)}
    s, state = zone_aware_shares([("a", 3), ("b", 3)], [("b", 1), ("c", 1)], "a")
    assert "no host in this Envoy's locality" in state
    # routing_enabled 40: 40% zone-aware (direct to a), 60% plain (1/2 each)
    s, _ = zone_aware_shares([("a", 3), ("b", 3)], [("a", 1), ("b", 1)], "a", routing_enabled=40)
    assert s == {"a": F(2, 5) + F(3, 5) * F(1, 2), "b": F(3, 5) * F(1, 2)}
