"""The engine end to end: goodness of fit at fixed seeds, reproducibility, modes, limits.

False-alarm rate: each goodness-of-fit assertion rejects a correct model with
probability ALPHA = 1e-3 (tests/conftest.py); seeds are fixed, so a pass is
reproducible.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from fractions import Fraction

import numpy as np
import pytest

from meshstat import Backend, Cascade, InvalidArgument, Route, Weighted, compare, simulate
from meshstat.engine import AUTO_PER_REQUEST_LIMIT
from tests.conftest import ALPHA

ROUTES = {
    "envoy-90-10": Route(root=Weighted.from_weights([90, 10]), name="envoy"),
    "envoy-50-30-20": Route(root=Weighted.from_weights([50, 30, 20])),
    "envoy-1-2-0": Route(root=Weighted.from_weights([1, 2, 0])),
    "envoy-k16": Route(root=Weighted.from_weights(list(range(1, 17)))),
    "kube-proxy-2": Route(root=Cascade.kube_proxy(2)),
    "kube-proxy-5": Route(root=Cascade.kube_proxy(5)),
    "kube-proxy-10-legacy": Route(root=Cascade.kube_proxy(10, legacy=True)),
    "fall-through": Route(root=Cascade.from_probabilities(["0.3", "0.5"], fall_through=True)),
    "tree": Route(
        root=Weighted(
            children=(Cascade.kube_proxy([Backend(name="v1-a"), Backend(name="v1-b"), Backend(name="v1-c")]),
                      Backend(name="v2")),
            weights=(90, 10),
        )
    ),
}


@pytest.mark.parametrize("name", sorted(ROUTES))
@pytest.mark.parametrize("mode", ["per_request", "exact"])
def test_counts_fit_the_exact_shares(name: str, mode: str) -> None:
    r = simulate(ROUTES[name], 2_000_003, rng=20261126, mode=mode)
    assert int(r.counts.sum()) == r.n == 2_000_003
    assert r.goodness_of_fit().pvalue > ALPHA
    assert r.goodness_of_fit(method="g-test").pvalue > ALPHA
    # backends with share 0 never get traffic
    for c, s in zip(r.counts, r.exact):
        if s == 0:
            assert c == 0


@pytest.mark.parametrize("name", ["envoy-90-10", "envoy-50-30-20", "kube-proxy-5", "kube-proxy-10-legacy", "fall-through"])
def test_faithful_mechanism_fits(name: str) -> None:
    r = simulate(ROUTES[name], 1_000_000, rng=7, mode="faithful")
    assert r.mode == "faithful"
    assert r.goodness_of_fit().pvalue > ALPHA


def test_faithful_needs_a_single_stage() -> None:
    with pytest.raises(InvalidArgument, match="faithful"):
        simulate(ROUTES["tree"], 1000, mode="faithful")


def test_same_seed_same_result_and_seed_replays() -> None:
    a = simulate(ROUTES["envoy-k16"], 1_000_000, rng=123, window=10_000)
    b = simulate(ROUTES["envoy-k16"], 1_000_000, rng=123, window=10_000)
    assert np.array_equal(a.counts, b.counts)
    assert np.array_equal(a.window_counts, b.window_counts)
    fresh = simulate(ROUTES["envoy-k16"], 100_000)
    replay = simulate(ROUTES["envoy-k16"], 100_000, rng=fresh.seed_entropy)
    assert np.array_equal(fresh.counts, replay.counts)
    other = simulate(ROUTES["envoy-k16"], 1_000_000, rng=124)
    assert not np.array_equal(a.counts, other.counts)


def test_generator_rng_is_accepted_and_advances() -> None:
    g = np.random.default_rng(5)
    a = simulate(ROUTES["envoy-90-10"], 100_000, rng=g)
    b = simulate(ROUTES["envoy-90-10"], 100_000, rng=g)
    assert a.seed_entropy != b.seed_entropy
    again = simulate(ROUTES["envoy-90-10"], 100_000, rng=a.seed_entropy)
    assert np.array_equal(a.counts, again.counts)


def test_counts_destinations_and_windows_agree() -> None:
    r = simulate(ROUTES["kube-proxy-5"], 777_777, rng=3, destinations=True)
    w = simulate(ROUTES["kube-proxy-5"], 777_777, rng=3, window=1000)
    assert np.array_equal(np.bincount(r.destinations, minlength=5), r.counts)
    assert np.array_equal(w.counts, r.counts)
    assert w.window_counts.shape == (778, 5)
    assert w.window_sizes[-1] == 777
    assert np.array_equal(w.window_counts[5], np.bincount(r.destinations[5000:6000], minlength=5))


_THREAD_SCRIPT = """
import json, numba, sys
from meshstat import Cascade, Weighted, simulate
out = {}
for name, st, mode in [("w", Weighted.from_weights(list(range(1, 17))), "per_request"),
                       ("c", Cascade.kube_proxy(6), "faithful")]:
    r = simulate(st, 3_000_000, rng=42, mode=mode, window=100_000)
    out[name] = [r.counts.tolist(), r.window_counts.tolist()]
out["threads"] = numba.get_num_threads()
print(json.dumps(out))
"""


def test_identical_with_one_and_two_threads() -> None:
    runs = []
    for threads in ("1", "2"):
        env = {**os.environ, "NUMBA_NUM_THREADS": threads}
        proc = subprocess.run([sys.executable, "-c", _THREAD_SCRIPT], env=env, capture_output=True, text=True, check=True)
        runs.append(json.loads(proc.stdout))
    assert runs[0]["threads"] == 1
    assert runs[1]["threads"] == 2
    assert runs[0]["w"] == runs[1]["w"]
    assert runs[0]["c"] == runs[1]["c"]


def test_exact_mode_matches_per_request_distribution() -> None:
    """Replicated small runs: per-request and exact counts follow one multinomial.

    Two-sample chi-square (homogeneity) on the distribution of backend-0 counts
    over 400 replicates of n = 200 each, cells pooled to expected >= 5; false alarm ALPHA.
    """
    from scipy import stats as ss

    route = ROUTES["envoy-50-30-20"]
    reps = 400
    per = np.array([simulate(route, 200, rng=1000 + i, mode="per_request").counts[0] for i in range(reps)])
    exa = np.array([simulate(route, 200, rng=5000 + i, mode="exact").counts[0] for i in range(reps)])
    edges = [0, 90, 95, 100, 105, 110, 201]
    table = np.array([np.histogram(per, edges)[0], np.histogram(exa, edges)[0]])
    assert ss.chi2_contingency(table).pvalue > ALPHA
    # and both are Binomial(200, 1/2) by a chi-square against the exact pmf
    pmf = np.diff(ss.binom.cdf(np.array(edges) - 1, 200, 0.5))
    for sample in (per, exa):
        obs = np.histogram(sample, edges)[0]
        assert ss.chisquare(obs, pmf / pmf.sum() * reps).pvalue > ALPHA


def test_exact_mode_huge_n() -> None:
    r = simulate(ROUTES["envoy-90-10"], 10**12, rng=1, mode="exact")
    assert int(r.counts.sum()) == 10**12
    assert abs(r.counts[1] / 1e12 - 0.1) < 5 * np.sqrt(0.09 / 1e12)
    big = simulate(ROUTES["kube-proxy-5"], 2**63 - 1, rng=1, mode="exact")
    assert int(big.counts.sum()) == 2**63 - 1
    auto = simulate(ROUTES["envoy-90-10"], AUTO_PER_REQUEST_LIMIT + 1, rng=1)
    assert auto.mode == "exact"
    assert any("multinomial" in n for n in auto.notes)


def test_exact_mode_windows() -> None:
    r = simulate(ROUTES["envoy-90-10"], 10**6 + 17, rng=2, mode="exact", window=1000)
    assert r.window_counts.shape == (1001, 2)
    assert r.window_sizes[-1] == 17
    assert np.array_equal(r.window_counts.sum(axis=1), r.window_sizes)
    band = r.window_band()
    assert band.n_windows == 1000
    assert band.max_deviation_pvalue[1] > ALPHA


@pytest.mark.parametrize("bad", [0, -1, 2**63, 1.5, "10", True])
def test_bad_n_refused(bad: object) -> None:
    with pytest.raises(InvalidArgument):
        simulate(ROUTES["envoy-90-10"], bad)  # type: ignore[arg-type]


def test_bad_mode_window_and_destinations() -> None:
    with pytest.raises(InvalidArgument, match="mode"):
        simulate(ROUTES["envoy-90-10"], 10, mode="fast")
    with pytest.raises(InvalidArgument, match="window"):
        simulate(ROUTES["envoy-90-10"], 10, window=0)
    with pytest.raises(InvalidArgument, match="destinations"):
        simulate(ROUTES["envoy-90-10"], 10, mode="exact", destinations=True)


def test_long_cascade_is_rounded_and_says_so() -> None:
    r = simulate(Route(root=Cascade.kube_proxy(20)), 100_000, rng=1)
    assert not r.masses_exact
    assert any("2**-64" in n for n in r.notes)
    f = simulate(Route(root=Cascade.kube_proxy(20)), 100_000, rng=1, mode="faithful")
    assert f.masses_exact


def test_compare_uses_one_seed_for_all_routes() -> None:
    kp, env = compare([ROUTES["kube-proxy-2"], ROUTES["envoy-90-10"]], 1_000_000, rng=9)
    assert kp.seed_entropy == env.seed_entropy == 9
    alone = simulate(ROUTES["envoy-90-10"], 1_000_000, rng=9)
    assert np.array_equal(alone.counts, env.counts)
    assert kp.exact == (Fraction(1, 2), Fraction(1, 2))


def test_single_backend_route() -> None:
    r = simulate(Backend(name="only"), 1000, rng=1)
    assert r.counts.tolist() == [1000]


def test_window_frame_is_the_window_counts() -> None:
    from meshstat.report.simulation import window_frame

    r = simulate(ROUTES["envoy-50-30-20"], 10_050, rng=4, window=1000)
    df = window_frame(r)
    assert df.height == 11 * 3
    assert df["count"].sum() == 10_050
    last = df.filter(df["window"] == 10)
    assert last["size"].to_list() == [50, 50, 50]
    assert last["count"].to_list() == r.window_counts[10].tolist()
