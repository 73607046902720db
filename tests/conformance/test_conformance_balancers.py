"""meshstat.balancers against a real Envoy 1.40 and a real nginx on 127.0.0.1.

Exact tests (cannot fail by chance): RING_HASH and MAGLEV host for 5,000 keys
each, equal to Envoy's; Envoy ROUND_ROBIN cycle and weighted EDF schedule
(``--concurrency 1``); nginx smooth WRR sequence with the balancer's numba
kernel. Chi-square tests at ALPHA (1e-5, tests/conformance/util.py): RANDOM and LEAST_REQUEST with a
sequential client (every host idle at pick time: uniform).
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from meshstat.balancers import Maglev, RingHash, RoundRobin, SmoothWRR, xxh64
from meshstat.engine import simulate_balancer
from meshstat.oracle.envoy import EnvoyCluster, EnvoyOracle, EnvoyScenario
from tests.conformance.util import assert_fits

pytestmark = [pytest.mark.conformance, pytest.mark.usefixtures("envoy_path")]

N_KEYS = 5_000


class HashPolicyOracle(EnvoyOracle):
    """The harness's Envoy with a route ``hash_policy`` on header ``x-key`` (ring hash / maglev keys)."""

    def bootstrap(self) -> dict:
        boot = super().bootstrap()
        front = boot["static_resources"]["listeners"][0]
        hcm = front["filter_chains"][0]["filters"][0]["typed_config"]
        for route in hcm["route_config"]["virtual_hosts"][0]["routes"]:
            route["route"]["hash_policy"] = [{"header": {"header_name": "x-key"}}]
        return boot


def _hosts(oracle: EnvoyOracle, cluster: EnvoyCluster) -> list[str]:
    """Envoy's host keys (``127.0.0.1:PORT``) in host-set order."""
    return [f"127.0.0.1:{oracle.endpoint_ports[e]}" for e in cluster.endpoints]


@pytest.mark.parametrize("policy", ["RING_HASH", "MAGLEV"])
@pytest.mark.parametrize("weights", [None, (1, 2, 3, 4)])
def test_hash_host_per_key_exact(policy: str, weights, record) -> None:  # noqa: ANN001
    cluster = EnvoyCluster("c", ("e1", "e2", "e3", "e4"), lb_policy=policy, endpoint_weights=weights)
    with HashPolicyOracle(EnvoyScenario(clusters=(cluster,))) as env:
        hosts = _hosts(env, cluster)
        lb = RingHash(hosts, weights) if policy == "RING_HASH" else Maglev(hosts, weights)
        keys = [f"user-{i}" for i in range(N_KEYS)]
        run = env.requests(N_KEYS, headers=lambda i: {"x-key": keys[i]})
    assert run.errors == 0 and len(run.sequence) == N_KEYS
    predicted = lb.lookup(np.array([xxh64(k) for k in keys], dtype=np.uint64)).tolist()
    mismatches = sum(1 for a, b in zip(run.sequence, predicted, strict=True) if a != b)
    record(case=f"{policy} weights={weights}", n=N_KEYS, mismatches=mismatches,
           counts=run.endpoint_counts(), predicted=np.bincount(predicted, minlength=4).tolist())
    assert mismatches == 0


def test_round_robin_cycle_exact(record) -> None:  # noqa: ANN001
    cluster = EnvoyCluster("c", ("e1", "e2", "e3", "e4"), lb_policy="ROUND_ROBIN")
    with EnvoyOracle(EnvoyScenario(clusters=(cluster,))) as env:
        run = env.requests(2000)
    seq = run.sequence
    assert run.errors == 0 and len(seq) == 2000
    start = seq[0]
    record(case="ROUND_ROBIN 4 hosts", start=start, counts=run.endpoint_counts())
    assert seq == [(start + i) % 4 for i in range(2000)]
    assert run.endpoint_counts() == [500] * 4


def test_weighted_round_robin_is_the_edf_schedule(record) -> None:  # noqa: ANN001
    weights = (1, 2, 3, 4)
    cluster = EnvoyCluster("c", ("e1", "e2", "e3", "e4"), lb_policy="ROUND_ROBIN", endpoint_weights=weights)
    with EnvoyOracle(EnvoyScenario(clusters=(cluster,))) as env:
        run = env.requests(2000)
    seq = run.sequence
    assert run.errors == 0 and len(seq) == 2000
    lb = RoundRobin(4, list(weights))
    # Envoy's seed is random and unknown: createWithPicks emulates seed % 429496729 picks, and at
    # that clock magnitude floating-point deadline ties can swap neighbouring picks, so the sequence
    # is one of the model's schedules only up to such swaps. Which of the 10 ideal phases (0..9
    # emulated picks) it starts with, if any, is recorded, not asserted: asserting it failed whenever
    # Envoy drew a large seed. What holds for every seed, and is asserted, is the structure:
    phases = [p for p in range(10) if lb.sequence(p, 100) == seq[:100]]
    windows = {tuple(int(c) for c in np.bincount(seq[i : i + 10], minlength=4)) for i in range(0, 1990)}
    record(case="ROUND_ROBIN weights 1:2:3:4", phases=phases, counts=run.endpoint_counts(), windows=sorted(windows))
    # every window of sum(w) = 10 consecutive picks is within one pick of the weights (a tie swaps
    # two neighbours), the same bound the model's own float schedule obeys for a large seed ...
    assert all(max(abs(a - b) for a, b in zip(w, (1, 2, 3, 4))) <= 1 for w in windows), windows
    model_seq = lb.sequence(2**63 + 12345, 2000)
    model_windows = {tuple(int(c) for c in np.bincount(model_seq[i : i + 10], minlength=4)) for i in range(1990)}
    assert all(max(abs(a - b) for a, b in zip(w, (1, 2, 3, 4))) <= 1 for w in model_windows), model_windows
    # ... and the long-run counts are exact up to that one swap at the end of the run: the model
    # itself gives (200, 400, 599, 801) or (200, 399, 601, 800) for some seeds (seen in 300 random
    # seeds), and Envoy gave 599/801 once in CI
    counts = run.endpoint_counts()
    assert sum(counts) == 2000
    assert all(abs(c - e) <= 1 for c, e in zip(counts, (200, 400, 600, 800), strict=True)), counts


@pytest.mark.parametrize("policy", ["RANDOM", "LEAST_REQUEST"])
def test_random_and_idle_least_request_uniform(policy: str, record) -> None:  # noqa: ANN001
    cluster = EnvoyCluster("c", ("e1", "e2", "e3", "e4"), lb_policy=policy, endpoint_weights=(1, 2, 3, 4)
                           if policy == "RANDOM" else None)
    with EnvoyOracle(EnvoyScenario(clusters=(cluster,))) as env:
        run = env.requests(4000)
    assert run.errors == 0
    assert_fits(record, policy, list(cluster.endpoints), run.endpoint_counts(), [Fraction(1, 4)] * 4)


def test_weighted_least_request_idle_is_edf(record) -> None:  # noqa: ANN001
    cluster = EnvoyCluster("c", ("e1", "e2", "e3", "e4"), lb_policy="LEAST_REQUEST", endpoint_weights=(1, 2, 3, 4))
    with EnvoyOracle(EnvoyScenario(clusters=(cluster,))) as env:
        run = env.requests(2000)
    counts = run.endpoint_counts()
    record(case="LEAST_REQUEST weights 1:2:3:4 sequential", counts=counts)
    assert run.errors == 0
    assert all(abs(c - e) <= 1 for c, e in zip(counts, (200, 400, 600, 800), strict=True))


@pytest.mark.usefixtures("nginx_path")
@pytest.mark.parametrize(("weights", "down", "backup"), [((5, 1, 1), None, None), ((3, 1, 2, 1), (1,), (3,))])
def test_nginx_smooth_wrr_kernel_sequence_exact(weights, down, backup, record) -> None:  # noqa: ANN001
    from meshstat.oracle.nginx import NginxOracle
    from meshstat.parsers.nginx import UpstreamServer

    dn = [i in (down or ()) for i in range(len(weights))]
    bk = [i in (backup or ()) for i in range(len(weights))]
    servers = [UpstreamServer("", weight=w, down=d, backup=b) for w, d, b in zip(weights, dn, bk, strict=True)]
    lb = SmoothWRR(len(weights), list(weights), down=dn, backup=bk)
    n = 600
    with NginxOracle(servers) as ng:
        run = ng.requests(n)
    predicted = simulate_balancer(lb, n, rng=0, destinations=True).destinations.tolist()
    record(case=f"nginx swrr {weights} down={down} backup={backup}", n=n, counts=run.counts())
    assert run.errors == 0
    assert run.sequence == predicted
