"""Balancers as stages of a route: ``Balanced`` and ``simulate()`` on routes with stateful subsets.

The composition is checked exactly against a pure-Python reference (the i.i.d. split on the
same counter-based stream, then each subset's balancer on its own sub-stream with the seeds of
the contract in meshstat.engine.stateful). Statistical tests use fixed seeds and ALPHA = 1e-3:
a correct model fails each with probability <= ALPHA.
"""

from __future__ import annotations

import dataclasses
import io
import json
import subprocess
import sys
from fractions import Fraction

import numpy as np
import pytest

from meshstat import Backend, Cascade, Route, Weighted, simulate
from meshstat.balancers import (
    Balanced,
    Ipvs,
    LeastRequest,
    Maglev,
    NumgenInc,
    Random,
    RoundRobin,
    ServiceTime,
    SmoothWRR,
    Workload,
)
from meshstat.cli import main
from meshstat.compiler import alias_table
from meshstat.engine import seeding, simulate_balancer, simulate_stateful_route
from meshstat.engine.balancers import key_masses as _key_masses
from meshstat.errors import InvalidArgument, ModelError
from tests.conftest import ALPHA
from tests.reference import draw, envoy_pick
from tests.reference_balancers import alias_col, maglev, xx

F = Fraction


def _streams(seed: int, n_nodes: int) -> tuple[np.random.SeedSequence, np.random.SeedSequence, list]:
    """The contract: root.spawn(3) = (i.i.d. stages, key stream, balancers), balancers spawn one per node."""
    c0, c1, c2 = np.random.SeedSequence(seed).spawn(3)
    return c0, c1, c2.spawn(n_nodes)


def _subset_sequence(dest: np.ndarray, lo: int, k: int) -> np.ndarray:
    sel = (dest >= lo) & (dest < lo + k)
    return dest[sel].astype(np.int64) - lo


# ----------------------------------------------------------------- the stage


def test_balanced_stage_model() -> None:
    s = Balanced(RoundRobin(["10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80"], weights=[1, 2, 3]), name="v1")
    assert [b.name for b in s.children] == ["v1/10.0.0.1:80", "v1/10.0.0.2:80", "v1/10.0.0.3:80"]
    assert [b.address for b in s.children] == ["10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80"]
    assert s.shares() == (F(1, 6), F(1, 3), F(1, 2))
    assert s.policy == "round_robin" and s.stateful and s.unit == "request"
    assert Balanced(NumgenInc(2)).unit == "connection"
    # default names use the policy; given children are kept
    assert Balanced(Random(2)).children[0].name == "random/10.244.1.2:8080"
    own = (Backend(name="p1"), Backend(name="p2"))
    assert Balanced(Random(2), children=own).children == own
    route = Route(root=Weighted(children=(s, Balanced(LeastRequest(2))), weights=(90, 10)))
    assert len(route.backends()) == 5
    assert "round_robin(" in route.describe()
    # the leaves' exact shares where they exist; least request has none
    ok = Route(root=Weighted(children=(s, Balanced(Random(2))), weights=(3, 1)))
    assert ok.exact_shares() == (F(1, 8), F(1, 4), F(3, 8), F(1, 8), F(1, 8))
    with pytest.raises(ModelError, match="needs simulation"):
        route.exact_shares()


def test_balanced_stage_errors() -> None:
    with pytest.raises(ModelError):
        Balanced(object())
    with pytest.raises(ModelError):
        Balanced(RoundRobin(3), children=(Backend(name="a"),))
    with pytest.raises(ModelError):
        Balanced(RoundRobin(2), children=(Backend(name="a"), Weighted.from_weights([1, 1])))
    with pytest.raises(ModelError):
        Balanced(Ipvs(3), unit="request")
    with pytest.raises(ModelError):
        Balanced(RoundRobin(2), workload="keys")  # type: ignore[arg-type]
    # two subsets with the same policy and default endpoints need names
    with pytest.raises(ModelError, match="unique"):
        Route(root=Weighted(children=(Balanced(RoundRobin(2)), Balanced(RoundRobin(2))), weights=(1, 1)))
    Route(root=Weighted(children=(Balanced(RoundRobin(2), name="a"), Balanced(RoundRobin(2), name="b")),
                        weights=(1, 1)))


def test_import_stays_light() -> None:
    code = ("import sys, meshstat.balancers; from meshstat.balancers import Balanced; "
            "assert 'numpy' not in sys.modules and 'numba' not in sys.modules, sorted(sys.modules)")
    subprocess.run([sys.executable, "-c", code], check=True)


# ----------------------------------------------------------------- exactness of the composition


def test_composition_equals_pure_python_reference() -> None:
    """Envoy weighted clusters (faithful R % total) over RR, RANDOM, keyed MAGLEV subsets and a backend."""
    n, bl, seed = 3000, 8, 20240611
    wl = Workload(keys=40, zipf=1.1)
    mg = Maglev(4, table_size=251)
    route = Route(root=Weighted(
        children=(Balanced(RoundRobin(3), name="a"), Balanced(Random(2), name="b"),
                  Balanced(mg, workload=wl, name="c"), Backend(name="plain")),
        weights=(5, 3, 1, 1)))
    res = simulate(route, n, rng=seed, mode="faithful", destinations=True, block_log2=bl)
    assert res.mode == "stateful" and res.seed_entropy == seed and res.n == n

    c0, c1, nodes = _streams(seed, 3)
    nb = -(-n // (1 << bl))
    iid_keys = seeding.block_keys(c0, nb).tolist()
    subset = [envoy_pick([5, 3, 1, 1], draw(iid_keys, bl, i)) for i in range(n)]
    key_keys = seeding.block_keys(c1, nb).tolist()
    table, bits = alias_table(_key_masses(wl.key_shares()))
    tl = table.tolist()
    kidx = [alias_col(tl, bits, draw(key_keys, bl, i)) for i in range(n)]
    mg_table = maglev(list(mg.endpoints), None, 251)
    # round robin: Envoy's seed_ from child 0 of the node's run, strict cycle from seed_ % n
    rr_seed = int(nodes[0].spawn(5)[0].generate_state(1, np.uint64)[0])
    m_b = subset.count(1)
    rnd_keys = seeding.block_keys(nodes[1].spawn(5)[2], -(-m_b // (1 << bl))).tolist()
    expect, t = [], [0, 0]
    for i, s in enumerate(subset):
        if s == 0:
            expect.append((rr_seed + t[0]) % 3)
            t[0] += 1
        elif s == 1:
            expect.append(3 + draw(rnd_keys, bl, t[1]) % 2)
            t[1] += 1
        elif s == 2:
            expect.append(5 + mg_table[xx(f"key-{kidx[i]}") % 251])
        else:
            expect.append(9)
    assert res.destinations is not None
    assert res.destinations.tolist() == expect
    assert res.counts.tolist() == np.bincount(expect, minlength=10).tolist()
    # exact: subset share x the balancer's long-run share (keys: summed key popularity)
    assert res.exact[:3] == (F(1, 6),) * 3
    assert res.exact[3:5] == (F(3, 20),) * 2
    assert sum(res.exact[5:9]) == F(1, 10) and res.exact[9] == F(1, 10)
    assert sum(res.exact) == 1 and res.masses_exact
    # replay
    again = simulate(route, n, rng=res.seed_entropy, mode="faithful", destinations=True, block_log2=bl)
    assert np.array_equal(again.destinations, res.destinations)


def test_iid_part_is_simulate_on_the_placeholder_route() -> None:
    """per_request mode: the split among subsets is exactly simulate() of the route with placeholders."""
    n, seed = 50_000, 7
    a = Balanced(SmoothWRR(3, weights=[5, 1, 1]), name="a")
    b = Balanced(NumgenInc(2), name="b")
    inner = Cascade.kube_proxy([a, Backend(name="x")])
    route = Route(root=Weighted(children=(inner, b), weights=(70, 30)))
    res = simulate(route, n, rng=seed, destinations=True, block_log2=10)
    c0, _, _ = _streams(seed, 2)
    ph = Route(root=Weighted(children=(Cascade.kube_proxy([Backend(name="A"), Backend(name="x")]),
                                       Backend(name="B")), weights=(70, 30)))
    ref = simulate(ph, n, rng=c0, destinations=True, block_log2=10)
    group = np.array([0, 0, 0, 1, 2, 2])[res.destinations]
    assert np.array_equal(group, ref.destinations)
    # each subset's balancer saw its sub-stream as a run of its own (smooth WRR: periods from the start)
    seq = _subset_sequence(res.destinations, 0, 3)
    cyc = SmoothWRR(3, weights=[5, 1, 1]).cycle()
    assert np.array_equal(seq, np.resize(cyc, seq.size))
    nseq = _subset_sequence(res.destinations, 4, 2)  # numgen inc: the first new flow gets slot 0
    assert nseq.size == int(np.sum(ref.destinations == 2))
    assert np.array_equal(nseq, np.arange(nseq.size) % 2)
    assert res.exact[:3] == tuple(F(1, 2) * F(7, 10) * F(w, 7) for w in (5, 1, 1))


def test_round_robin_subsets_cycle_strictly() -> None:
    n = 20_000
    subsets = (Balanced(RoundRobin(3), name="v1"), Balanced(RoundRobin(2), name="v2"))
    route = Route(root=Weighted(children=subsets, weights=(90, 10)))
    res = simulate(route, n, rng=11, destinations=True, window=1000)
    assert int(res.counts.sum()) == n
    for lo, k in ((0, 3), (3, 2)):
        seq = _subset_sequence(res.destinations, lo, k)
        assert seq.size > 0
        assert np.array_equal(seq, (seq[0] + np.arange(seq.size)) % k)
        # balanced to within one request inside the subset
        c = res.counts[lo : lo + k]
        assert int(c.max() - c.min()) <= 1
    assert res.window_counts is not None and res.window_sizes is not None
    assert np.array_equal(res.window_counts.sum(axis=0), res.counts)
    assert np.array_equal(res.window_counts.sum(axis=1), res.window_sizes)
    assert res.window_counts.shape == (20, 5)
    # windows equal a direct count of the destinations
    direct = np.stack([np.bincount(res.destinations[i : i + 1000], minlength=5) for i in range(0, n, 1000)])
    assert np.array_equal(direct, res.window_counts)


def test_goodness_of_fit_rr_random_maglev_subsets() -> None:
    """Chi-square of leaf counts vs exact shares (false alarms <= ALPHA; RR is under-dispersed)."""
    route = Route(root=Weighted(
        children=(Balanced(RoundRobin(3, weights=[1, 2, 3])), Balanced(Random(4)), Balanced(Maglev(5))),
        weights=(50, 30, 20)))
    res = simulate(route, 200_000, rng=2024)
    assert int(res.counts.sum()) == 200_000
    assert sum(res.exact) == 1
    assert res.exact[:3] == (F(1, 12), F(1, 6), F(1, 4))
    gof = res.goodness_of_fit()
    assert gof.pvalue > ALPHA, gof


def test_same_key_same_host_within_a_subset() -> None:
    wl = Workload(keys=30)
    m1, m2 = Maglev(3, table_size=251), Maglev(["10.1.0.1:80", "10.1.0.2:80"], table_size=251)
    subsets = (Balanced(m1, workload=wl, name="a"), Balanced(m2, workload=wl, name="b"))
    route = Route(root=Weighted(children=subsets, weights=(1, 1)))
    res = simulate(route, 5000, rng=5)
    key_host_a = {xx(k) % 251 for k in wl.key_strings()}
    table_a = maglev(list(m1.endpoints), None, 251)
    hosts_a = {table_a[s] for s in key_host_a}
    assert {i for i in range(3) if res.counts[i]} <= hosts_a
    # the exact share is the keys' popularity summed per host
    assert res.exact[:3] == tuple(F(1, 2) * s for s in Balanced(m1, workload=wl, name="a").shares())
    # different key sets on two keyed subsets contradict one key stream per request
    bad = Route(root=Weighted(children=(Balanced(m1, workload=wl, name="a"),
                                        Balanced(m2, workload=Workload(keys=31), name="b")), weights=(1, 1)))
    with pytest.raises(ModelError, match="one key set"):
        simulate(bad, 100, rng=1)


# ----------------------------------------------------------------- least request


def test_least_request_subset_runs_on_thinned_arrivals() -> None:
    n, seed = 20_000, 3
    wl = Workload(arrival_rate=300.0, service_time=ServiceTime("exp", 0.01))
    lr = LeastRequest(3)
    subsets = (Balanced(lr, workload=wl, name="lr"), Balanced(RoundRobin(2), name="rr"))
    route = Route(root=Weighted(children=subsets, weights=(90, 10)))
    res = simulate(route, n, rng=seed, destinations=True)
    assert int(res.counts.sum()) == n
    m = int(res.counts[:3].sum())
    assert res.exact[:3] == tuple(F(9, 10) * F(int(c), m) for c in res.counts[:3])
    assert res.exact[3:] == (F(1, 20), F(1, 20))
    assert not res.masses_exact
    assert any("simulated split" in x for x in res.notes)
    assert any("270/s" in x and "thinning" in x for x in res.notes)
    # the subset's decisions are simulate_balancer's on m requests with arrival rate 300 * 9/10
    _, _, nodes = _streams(seed, 2)
    ref = simulate_balancer(lr, m, rng=nodes[0], workload=dataclasses.replace(wl, arrival_rate=270.0),
                            destinations=True)
    assert np.array_equal(_subset_sequence(res.destinations, 0, 3), ref.destinations)
    with pytest.raises(ModelError, match="needs simulation"):
        route.exact_shares()


def test_least_request_rates_must_agree_and_default() -> None:
    a = Balanced(LeastRequest(2), workload=Workload(arrival_rate=100.0), name="a")
    b = Balanced(LeastRequest(2), workload=Workload(arrival_rate=200.0), name="b")
    with pytest.raises(ModelError, match="arrival rate"):
        simulate(Route(root=Weighted(children=(a, b), weights=(1, 1))), 100, rng=1)
    # default: the busiest subset (share 3/4, capacity 200/s) at 80%: lambda = 0.8 * 200 / (3/4)
    c = Balanced(LeastRequest(2), name="c")
    d = Balanced(LeastRequest(2), name="d")
    res = simulate(Route(root=Weighted(children=(c, d), weights=(3, 1))), 2000, rng=1)
    assert any("213.333/s" in x for x in res.notes), res.notes


# ----------------------------------------------------------------- simulate() dispatch and errors


def test_simulate_refuses_exact_mode_and_huge_n() -> None:
    route = Route(root=Weighted(children=(Balanced(RoundRobin(2), name="a"), Backend(name="b")),
                                weights=(1, 1)))
    with pytest.raises(InvalidArgument, match="exact"):
        simulate(route, 100, rng=1, mode="exact")
    with pytest.raises(InvalidArgument):
        simulate(route, 2**31 + 1, rng=1)
    with pytest.raises(InvalidArgument):
        simulate(route, 0, rng=1)
    # a Balanced stage alone is a route too
    res = simulate_stateful_route(Balanced(RoundRobin(4)), 8, rng=1)
    assert res.counts.tolist() == [2, 2, 2, 2] and res.exact == (F(1, 4),) * 4


def test_ordinary_routes_unaffected() -> None:
    st = Weighted.from_weights([90, 10])
    r = simulate(st, 10_000, rng=1)
    assert r.mode == "per_request" and int(r.counts.sum()) == 10_000


# ----------------------------------------------------------------- CLI


def _cli(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    rc = main(argv, stdout=out, stderr=err)
    return rc, out.getvalue(), err.getvalue()


def test_cli_weights_over_balanced_subsets() -> None:
    rc, out, err = _cli(["simulate", "--weights", "90,10", "--lb", "round-robin", "--endpoints", "3,2",
                         "-n", "10000", "--seed", "1", "--format", "json"])
    assert rc == 0, err
    rows = json.loads(out)
    assert [r["backend"].split("/")[0] for r in rows] == ["s1", "s1", "s1", "s2", "s2"]
    assert sum(r["count"] for r in rows) == 10_000
    assert [r["expected_exact"] for r in rows] == ["3/10"] * 3 + ["1/20"] * 2
    assert {r["mode"] for r in rows} == {"stateful"}
    assert "seed 1" in err
    # the same run through the API
    subsets = (Balanced(RoundRobin(3), name="s1"), Balanced(RoundRobin(2), name="s2"))
    route = Route(root=Weighted(children=subsets, weights=(90, 10)))
    assert [r["count"] for r in rows] == simulate(route, 10_000, rng=1).counts.tolist()


def test_cli_subsets_names_table_and_errors() -> None:
    rc, out, _ = _cli(["simulate", "--weights", "3,1", "--names", "v1,v2", "--lb", "least-request",
                       "--endpoints", "2", "--arrival-rate", "100", "-n", "4000", "--seed", "2",
                       "--window", "1000"])
    assert rc == 0 and "v1/10.244.1.2:8080" in out and "windows of 1,000" in out and "thinning" in out
    for argv in (["--endpoints", "3,2,1"], ["--endpoints", "3,2", "--endpoint-weights", "1,2,3"], []):
        rc, out, err = _cli(["simulate", "--weights", "90,10", "--lb", "maglev", *argv, "-n", "100"])
        assert rc == 2 and err.count("\n") == 1 and "Traceback" not in err, err
    rc, _, err = _cli(["simulate", "--lb", "round-robin", "--endpoints", "3,2", "-n", "100"])
    assert rc == 2 and "--weights" in err
    rc, _, err = _cli(["simulate", "--weights", "1,1", "--lb", "round-robin", "--endpoints", "2",
                       "--mode", "exact", "-n", "100"])
    assert rc == 2 and "exact" in err
