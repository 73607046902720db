"""Balancer sizes bounded up front: endpoints, workers and FIFO servers refused in one line or computed exactly."""

from __future__ import annotations

from fractions import Fraction

import pytest

from meshstat import balancers as b
from meshstat.balancers import Workload
from meshstat.balancers.hashing import MAX_DEFAULT_ENDPOINTS, default_endpoints
from meshstat.balancers.roundrobin import MAX_WORKER_CELLS, MAX_WORKERS
from meshstat.balancers.workload import MAX_SERVER_ROWS
from meshstat.engine.balancers import simulate_balancer
from meshstat.errors import InvalidArgument


def test_generated_endpoints_end_at_the_last_address() -> None:
    eps = default_endpoints(MAX_DEFAULT_ENDPOINTS)
    assert eps[-1] == "10.244.255.251:8080" and len(set(eps)) == MAX_DEFAULT_ENDPOINTS
    with pytest.raises(InvalidArgument, match="at most 63,750 generated endpoints"):
        b.RoundRobin(10**10)


def test_workers_bounded_by_count_and_cells() -> None:
    assert b.RoundRobin(3, workers=MAX_WORKERS).workers == MAX_WORKERS
    with pytest.raises(InvalidArgument, match="at most 4,096 workers"):
        b.RoundRobin(3, workers=10**9)
    with pytest.raises(InvalidArgument, match="worker x endpoint cells"):
        b.SmoothWRR(MAX_WORKER_CELLS // 1000 + 1, workers=1000)


def test_servers_at_least_the_requests_are_unlimited_exactly() -> None:
    lb = b.LeastRequest(3)
    n = 2000
    unlimited = simulate_balancer(lb, n, rng=7, workload=Workload(arrival_rate=500.0, servers=0))
    for huge in (n, 2**32, 2**63, 10**30):
        res = simulate_balancer(lb, n, rng=7, workload=Workload(arrival_rate=500.0, servers=huge))
        assert res.counts.tolist() == unlimited.counts.tolist()
    # fewer servers than requests queue: a different answer (the reduction is not applied below n)
    one = simulate_balancer(lb, n, rng=7, workload=Workload(arrival_rate=500.0, servers=1))
    assert one.counts.tolist() != unlimited.counts.tolist()
    assert Workload(servers=(2**63, 5, 0)).kernel_servers(3, 100) == (0, 5, 0)


def test_server_rows_refused_up_front() -> None:
    with pytest.raises(InvalidArgument, match="at most 1,048,576 FIFO servers"):
        Workload(servers=MAX_SERVER_ROWS).kernel_servers(2, 10**9)


def test_least_request_idle_shares_uniform_without_the_quadratic_sum() -> None:
    lb = b.LeastRequest(20_000, choice_count=2)
    assert lb.expected_shares() == (Fraction(1, 20_000),) * 20_000
    small = b.LeastRequest(7, choice_count=3)
    assert small.expected_shares() == small.pick_probabilities()
