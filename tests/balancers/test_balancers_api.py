"""Balancers through the public API: published numbers, exact long-run shares, workloads, errors.

Statistical tests use fixed seeds and ALPHA = 1e-3 (a correct model fails each with probability <= ALPHA).
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from meshstat import Cascade, Weighted
from meshstat.balancers import (
    HashAffinity,
    Ipvs,
    KubeProxyAffinity,
    LeastRequest,
    Locality,
    Maglev,
    NumgenInc,
    PriorityLevel,
    Random,
    RingHash,
    RoundRobin,
    ServiceTime,
    SmoothWRR,
    Workload,
    locality_shares,
    priority_loads,
    priority_route,
)
from meshstat.engine import disruption, simulate_affinity, simulate_balancer, simulate_connections
from meshstat.errors import InvalidArgument, ModelError
from meshstat.parsers.nginx import parse_upstreams
from tests.conftest import ALPHA
from tests.reference_balancers import smooth_wrr, upstream_sequence

F = Fraction


# ----------------------------------------------------------------- published numbers


def test_envoy_least_request_documented_examples() -> None:
    # least_request.proto / arch overview: N_CHOICES with 2 choices
    assert LeastRequest(3).pick_probabilities([0, 0, 10]) == (F(4, 9), F(4, 9), F(1, 9))
    assert LeastRequest(2).pick_probabilities([10, 0]) == (F(1, 4), F(3, 4))
    assert LeastRequest(2, [2, 1]).pick_probabilities([0, 0]) == (F(2, 3), F(1, 3))
    # full scan: only the least loaded (ties uniform)
    assert LeastRequest(3, selection_method="full_scan").pick_probabilities([1, 0, 0]) == (0, F(1, 2), F(1, 2))
    # 3 choices over 3 hosts (1.40 does NOT switch to a full scan: PR #30794)
    assert LeastRequest(3, choice_count=3).pick_probabilities([0, 0, 10])[2] == F(1, 27)


def test_least_request_static_picks_fit_exact_probabilities() -> None:
    from meshstat import stats
    from meshstat._kernels import least_request as kl
    from meshstat.engine import seeding

    for active, c in (([0, 0, 10], 2), ([10, 0], 2), ([3, 1, 1, 7], 3)):
        n = 60_000
        keys = seeding.block_keys(np.random.SeedSequence(11), 64)
        out = np.empty(n, np.int64)
        kl.picks_static(np.asarray(active, np.int64), np.int64(c), False, keys, np.int64(18), np.int64(n), out)
        probs = LeastRequest(len(active), choice_count=c).pick_probabilities(active)
        assert stats.goodness_of_fit(np.bincount(out, minlength=len(active)), probs).pvalue > ALPHA


def test_maglev_weighted_table_counts_from_envoy_docs() -> None:
    assert Maglev(2, [1, 2]).entry_counts() == (21846, 43691)
    assert Maglev(4).entry_counts() == (16385, 16384, 16384, 16384)
    assert Maglev(4, [1, 2, 3, 4]).entry_counts() == (6554, 13108, 19661, 26214)


def test_ring_sizes_from_envoy_source() -> None:
    assert RingHash(4).point_counts() == (256, 256, 256, 256)
    assert RingHash(4, [1, 2, 3, 4]).point_counts() == (103, 206, 309, 412)
    assert sum(RingHash(4).key_space_shares()) == 1
    with pytest.raises(InvalidArgument, match=r"minimum_ring_size \(2048\) > maximum_ring_size \(1024\)"):
        RingHash(4, min_ring_size=2048, max_ring_size=1024)
    with pytest.raises(InvalidArgument, match="must be prime"):
        Maglev(4, table_size=65536)


def test_priority_load_tables() -> None:
    # P0 with 71% healthy hosts: health min(100, 140 * 71 // 100) = 99 -> 99% of the load
    assert priority_loads([PriorityLevel(71, unhealthy=29), PriorityLevel(10)]).healthy_load == (99, 1)
    # docs/measurements.md, M14, experiment /prio: P0 {ok, dead}, P1 {ok, ok} -> 70 / 15 / 15
    r = priority_route([PriorityLevel(1, unhealthy=1), PriorityLevel(2)])
    assert r.exact_shares() == (F(7, 10), F(3, 20), F(3, 20), 0)
    # the example in Envoy's recalculatePerPriorityState comment: health 10/20/10, degraded 20/10/0
    # (panic disabled: with the default 50% every level here would be in panic)
    pl = priority_loads([PriorityLevel(1, degraded=2, unhealthy=11), PriorityLevel(2, degraded=1, unhealthy=11),
                         PriorityLevel(1, unhealthy=13)], panic_threshold=0)
    assert (pl.health, pl.degraded_health) == ((10, 20, 10), (20, 10, 0))
    assert (pl.healthy_load, pl.degraded_load) == ((16, 28, 14), (28, 14, 0))
    # panic: 1 of 4 healthy (25% < 50%) -> all 4 hosts; exactly 50% is not panic
    assert priority_loads([PriorityLevel(1, unhealthy=3)]).panic == (True,)
    assert priority_loads([PriorityLevel(2, unhealthy=2)]).panic == (False,)
    assert priority_route([PriorityLevel(1, unhealthy=3)]).exact_shares() == (F(1, 4),) * 4
    assert priority_route([PriorityLevel(2, unhealthy=2)]).exact_shares() == (F(1, 2), F(1, 2), 0, 0)
    # total panic: by raw host counts
    assert priority_loads([PriorityLevel(0, unhealthy=1), PriorityLevel(0, unhealthy=3)]).healthy_load == (25, 75)


def test_locality_weights() -> None:
    assert locality_shares([Locality(1, 1, 1), Locality(3, 2, 2)]) == (F(1, 4), F(3, 4))
    # half the hosts of b down: effective 3 * min(1, 1.4 * 1/2) = 2.1
    assert locality_shares([Locality(1, 1, 1), Locality(3, 1, 2)]) == (F(10, 31), F(21, 31))


def test_removing_a_host_maglev_vs_ring_disruption() -> None:
    """Envoy's docs: Maglev moves about twice the keys of ring hash when a host is removed.

    True when the ring keeps its points per host (100 hosts, default 1024 ring: 11-12 points each):
    the ring moves only the removed host's keys, Maglev 1.5-2.5 times that. With few hosts the
    ring rebuilds with more points per remaining host and moves about twice the minimum, more than
    Maglev (10 hosts: ring ~18%, Maglev ~10%). Deterministic: fixed keys, no randomness.
    """
    ring, mag = RingHash(100), Maglev(100)
    rm = sum(disruption(ring, ring.without(i), 20_000).moved for i in range(0, 100, 20))
    mm = sum(disruption(mag, mag.without(i), 20_000).moved for i in range(0, 100, 20))
    assert 1.5 <= mm / rm <= 2.5, (mm, rm)
    small = disruption(RingHash(10), RingHash(10).without(3), 20_000)
    small_m = disruption(Maglev(10), Maglev(10).without(3), 20_000)
    assert small.moved > 1.5 * small.unavoidable
    assert small_m.moved < 1.1 * small_m.unavoidable < small.moved
    added = disruption(ring, ring.with_endpoint("10.9.9.9:8080"), 20_000)
    assert added.added == ("10.9.9.9:8080",) and added.unavoidable == 0 and added.moved > 0


# ----------------------------------------------------------------- round robin family


def test_round_robin_cycle_and_edf_counts() -> None:
    r = simulate_balancer(RoundRobin(4), 20_000, rng=1, destinations=True)
    assert r.counts.tolist() == [5000] * 4
    d = r.destinations
    assert np.array_equal(d[4:], d[:-4]) and len(set(d[:4].tolist())) == 4
    r = simulate_balancer(RoundRobin(4, [1, 2, 3, 4]), 20_000, rng=2, destinations=True)
    assert r.counts.tolist() == [2000, 4000, 6000, 8000]
    for w in range(0, 20_000 - 10, 997):
        assert np.bincount(r.destinations[w : w + 10], minlength=4).tolist() == [1, 2, 3, 4]
    # the 1.40 schedule for 1:2:3:4 is a rotation of 5665465634 (hosts numbered from 3)
    s = "".join(str(x + 3) for x in r.destinations[:10].tolist())
    assert s in ("5665465634" * 2)


def test_round_robin_random_phase_and_seed_replay() -> None:
    starts = {int(simulate_balancer(RoundRobin(4), 8, rng=s, destinations=True).destinations[0]) for s in range(40)}
    assert starts == {0, 1, 2, 3}
    a = simulate_balancer(RoundRobin(5, [1, 2, 2, 3, 9]), 1000, rng=5, destinations=True)
    b = simulate_balancer(RoundRobin(5, [1, 2, 2, 3, 9]), 1000, rng=a.seed_entropy, destinations=True)
    assert np.array_equal(a.destinations, b.destinations)


def test_round_robin_workers_and_connections() -> None:
    wl = Workload(clients=10, requests_per_connection=7)
    r = simulate_balancer(RoundRobin(4, workers=3), 20_003, rng=1, workload=wl, destinations=True)
    assert r.worker_counts.shape == (3, 4)
    assert r.worker_counts.sum() == 20_003
    # each worker is a strict cycle: its counts differ by at most one
    assert np.all(r.worker_counts.max(axis=1) - r.worker_counts.min(axis=1) <= 1)
    assert np.array_equal(np.bincount(r.destinations, minlength=4), r.counts)
    assert r.connections == 10 * -(-2001 // 7) - 3 * 0  # 7 clients with 2001, 3 with 2000 requests
    assert r.imbalance()["max_over_expected"] < 1.001


def test_smooth_wrr_equals_nginx_model_and_upstream() -> None:
    lb = SmoothWRR(3, [5, 1, 1])
    r = simulate_balancer(lb, 70, rng=0, destinations=True)
    assert r.destinations.tolist() == smooth_wrr([5, 1, 1], 70)
    assert r.counts.tolist() == [50, 10, 10]
    ups = parse_upstreams(
        "upstream u { server a:80 weight=3; server b:80 down; server c:80 weight=2; server d:80 backup; }"
    )["u"]
    lb = SmoothWRR.from_upstream(ups)
    r = simulate_balancer(lb, 500, rng=0, destinations=True)
    assert r.destinations.tolist() == upstream_sequence(ups, 500)
    assert lb.expected_shares() == ups.shares()
    only_backup = SmoothWRR(2, [1, 1], down=[True, False], backup=[False, True])
    assert simulate_balancer(only_backup, 10, rng=0).counts.tolist() == [0, 10]
    with pytest.raises(ModelError):
        SmoothWRR(2, down=[True, True])


def test_smooth_wrr_long_period_runs_step_by_step() -> None:
    lb = SmoothWRR(2, [2**24, 1])
    r = simulate_balancer(lb, 1000, rng=0, destinations=True)
    assert r.destinations.tolist() == smooth_wrr([2**24, 1], 1000)


def test_random_ignores_weights_and_fits_uniform() -> None:
    r = simulate_balancer(Random(4, [1, 2, 3, 4]), 200_000, rng=3)
    assert r.expected == (F(1, 4),) * 4
    assert r.goodness_of_fit().pvalue > ALPHA
    assert any("ignores" in n for n in r.notes)


def test_numgen_inc_and_ipvs_per_connection() -> None:
    r = simulate_balancer(NumgenInc(3), 30, rng=0, destinations=True)
    assert r.counts.tolist() == [10, 10, 10]
    assert r.destinations[:6].tolist() == [0, 1, 2, 0, 1, 2]
    wl = Workload(clients=1, requests_per_connection=4)
    r = simulate_balancer(NumgenInc(3), 30, rng=0, workload=wl, destinations=True)
    assert r.destinations[:12].tolist() == [0] * 4 + [1] * 4 + [2] * 4
    assert r.connections == 8 and r.counts.tolist() == [12, 10, 8]
    r = simulate_balancer(Ipvs(3, [4, 3, 2], scheduler="wrr"), 90, rng=0)
    assert r.counts.tolist() == [40, 30, 20]
    r = simulate_balancer(Ipvs(3, [1, 0, 1]), 10, rng=0, destinations=True)  # graceful termination
    assert r.destinations.tolist() == [0, 2] * 5


# ----------------------------------------------------------------- hashing with keys


def test_hash_balancers_with_keys_and_without() -> None:
    wl = Workload(keys=500, zipf=1.0)
    for lb in (RingHash(5), Maglev(5)):
        r = simulate_balancer(lb, 100_000, rng=4, workload=wl, destinations=True)
        assert r.expected_kind == "keys"
        assert r.goodness_of_fit().pvalue > ALPHA
        hashes = np.array([lb.host_of(int(h)) for h in _hashes(wl)])
        assert set(r.destinations[:1000].tolist()) <= set(hashes.tolist())
        r2 = simulate_balancer(lb, 100_000, rng=4)
        assert r2.expected_kind == "hash-space" and r2.goodness_of_fit().pvalue > ALPHA


def _hashes(wl: Workload) -> list[int]:
    from meshstat.balancers import xxh64

    return [xxh64(k) for k in wl.key_strings()]


def test_same_key_same_host() -> None:
    lb = Maglev(7)
    wl = Workload(key_values=("user-1", "user-2", "user-3"))
    r = simulate_balancer(lb, 3000, rng=1, workload=wl, destinations=True)
    hosts = {lb.host_of(h) for h in _hashes(wl)}
    assert set(np.unique(r.destinations).tolist()) <= hosts


# ----------------------------------------------------------------- least request under load


def test_least_request_avoids_a_slow_host() -> None:
    """docs/measurements.md, M12: a 20 ms slower host gets far less than its 25% under least request."""
    st = (ServiceTime("exp", 0.01),) * 3 + (ServiceTime("exp", 0.03),)
    wl = Workload(service_time=st, servers=4, arrival_rate=600.0)
    lr = simulate_balancer(LeastRequest(4), 60_000, rng=1, workload=wl)
    share = lr.counts / lr.n
    assert share[3] < 0.2 and min(share[:3]) > 0.26
    assert lr.latency_quantiles.shape == (4, 3)
    assert np.all(lr.latency_quantiles[:, 0] <= lr.latency_quantiles[:, 2])
    assert lr.max_active.max() >= 1 and np.all(lr.mean_active >= 0)
    # sequential requests (load far below one in flight): uniform, as measured with Envoy 1.40
    idle = simulate_balancer(LeastRequest(4), 40_000, rng=2,
                             workload=Workload(service_time=ServiceTime("const", 1e-6), arrival_rate=1.0))
    assert idle.goodness_of_fit().pvalue > ALPHA


def test_weighted_least_request_idle_is_edf_exact() -> None:
    wl = Workload(service_time=ServiceTime("const", 1e-6), arrival_rate=1.0)
    r = simulate_balancer(LeastRequest(4, [1, 2, 3, 4]), 20_000, rng=3, workload=wl)
    # Envoy 1.40 measured 1999/4000/6001/8000: EDF from a random phase, exact up to one pick
    assert np.all(np.abs(r.counts - [2000, 4000, 6000, 8000]) <= 1), r.counts


# ----------------------------------------------------------------- connections and affinity


def test_connection_reuse_dispersion_matches_theory() -> None:
    route = Cascade.kube_proxy(3)
    r = simulate_connections(route, 6000, clients=4, requests_per_connection=100, replicates=400, rng=1)
    assert np.allclose(r.design_effect, 100.0)
    # sample sd of 400 replicates is within 15% of the exact spread (chi-square 399 dof: P < 1e-3)
    assert np.all(np.abs(r.sd_observed / r.sd_model - 1) < 0.15)
    per_request = simulate_connections(Weighted.from_weights([1, 1, 1]), 6000, requests_per_connection=100,
                                       replicates=400, rng=1)
    assert np.allclose(per_request.design_effect, 1.0)
    assert np.all(np.abs(per_request.sd_observed / per_request.sd_model - 1) < 0.15)
    assert r.expected == per_request.expected == (F(1, 3),) * 3 or np.allclose(
        [float(x) for x in r.expected], 1 / 3, atol=1e-9)
    geo = simulate_connections(route, 6000, clients=3, requests_per_connection="geometric:20", replicates=50, rng=2)
    assert int(geo.counts.sum()) == 50 * 6000
    one = simulate_connections(route, 6000, clients=6, requests_per_connection="all", replicates=50, rng=3)
    assert one.connections == 6 and np.all(one.counts % 1000 == 0)


def test_affinity_list_cap_breaks_stickiness() -> None:
    # 1 endpoint list: 100 clients fit, the 101st evicts the first
    few = simulate_affinity(KubeProxyAffinity(2), 2000, clients=50, order="cyclic", rng=1)
    assert few.sticky_share == 1.0 and few.evictions.sum() == 0
    many = simulate_affinity(KubeProxyAffinity(2), 3000, clients=300, order="cyclic", rng=1)
    assert many.evictions.sum() > 0 and many.sticky_share < 0.9 and many.clients_broken > 0
    nft = simulate_affinity(KubeProxyAffinity(2, mode="nftables"), 3000, clients=300, order="cyclic", rng=1)
    assert nft.sticky_share == 1.0
    short = simulate_affinity(KubeProxyAffinity(3, timeout=5.0), 3000, clients=30, order="cyclic", rng=1)
    assert short.sticky_share < 0.6  # each client reconnects every 30 s > 5 s timeout
    h = simulate_affinity(HashAffinity(Maglev(4)), 3000, clients=300, rng=1)
    assert h.sticky_share == 1.0


# ----------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "make",
    [
        lambda: LeastRequest(3, choice_count=1),
        lambda: RoundRobin(0),
        lambda: RoundRobin(3, [1, 2]),
        lambda: RoundRobin(2, [0, 1]),
        lambda: RoundRobin(3, workers=0),
        lambda: Workload(requests_per_connection="sometimes"),
        lambda: Workload(clients=0),
        lambda: simulate_balancer(object(), 10),
        lambda: simulate_balancer(RoundRobin(2), 0),
        lambda: Ipvs(2, scheduler="lc"),
    ],
)
def test_bad_input_raises_meshstat_errors(make) -> None:  # noqa: ANN001
    with pytest.raises((InvalidArgument, ModelError)):
        make()
