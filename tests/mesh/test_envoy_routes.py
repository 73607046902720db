"""Envoy config -> Route: the experiment dump's routes against the real Envoy 1.40 counts.

Observed counts come from ``tests/data/envoy/meshstat-exp-envoy140-clusters.json`` (per-host
``rq_total`` after 2,000 sequential requests per route) and, for per-route body counts, from the
response bodies of the same run (``docs/measurements.md``, M15). Goodness-of-fit tests have false-alarm
rate ALPHA each (tests/conftest.py); round robin and EDF are deterministic per worker
(``docs/measurements.md``, M11), so their counts are compared exactly.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from meshstat.mesh import correlated_weights, envoy_dump_route
from meshstat.model import Weighted
from meshstat.parsers.envoy import load_envoy
from tests.conftest import ALPHA

DATA = Path(__file__).resolve().parents[1] / "data" / "envoy"
DUMP = str(DATA / "meshstat-exp-envoy140-config_dump.json")
CLUSTERS = str(DATA / "meshstat-exp-envoy140-clusters.json")


@pytest.fixture(scope="module")
def cfg():  # noqa: ANN201
    return load_envoy([DUMP, CLUSTERS])


def shares(cfg, path: str, **kw) -> dict[str, Fraction]:  # noqa: ANN001
    route, _ = envoy_dump_route(cfg, "127.0.0.1", 10000, path=path, **kw)
    return {b.name: s for b, s in zip(route.backends(), route.exact_shares(), strict=True)}


def observed(cfg, cluster: str) -> dict[str, int]:  # noqa: ANN001
    return {addr: c.get("rq_total", 0) for addr, c in cfg.counters[cluster].items()}


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/split", {"127.0.0.1:18081": Fraction(9, 10), "127.0.0.1:18082": Fraction(1, 10)}),
        ("/split_rel", {"127.0.0.1:18081": Fraction(1, 3), "127.0.0.1:18082": Fraction(2, 3),
                        "127.0.0.1:18083": Fraction(0)}),
        ("/split3_hdr", {"127.0.0.1:18081": Fraction(1, 2), "127.0.0.1:18082": Fraction(3, 10),
                         "127.0.0.1:18083": Fraction(1, 5)}),
        # runtime_fraction 50% then weighted 50/50 with the same random value: v1 never
        # (docs/measurements.md, M10)
        ("/corr", {"127.0.0.1:18083": Fraction(1, 2), "127.0.0.1:18081": Fraction(0),
                   "127.0.0.1:18082": Fraction(1, 2)}),
        ("/prio", {"127.0.0.1:18083": Fraction(7, 10), "127.0.0.1:18084": Fraction(3, 20),
                   "127.0.0.1:18085": Fraction(3, 20)}),
        ("/loc", {"127.0.0.1:18083": Fraction(1, 4), "127.0.0.1:18084": Fraction(3, 8),
                  "127.0.0.1:18085": Fraction(3, 8)}),
        ("/loc_off", dict.fromkeys(("127.0.0.1:18083", "127.0.0.1:18084", "127.0.0.1:18085"), Fraction(1, 3))),
        ("/nopanic4", {"127.0.0.1:18083": Fraction(1, 2), "127.0.0.1:18084": Fraction(1, 2)}),
        ("/wrand4", dict.fromkeys(("127.0.0.1:18083", "127.0.0.1:18084", "127.0.0.1:18085", "127.0.0.1:18086"),
                                  Fraction(1, 4))),
    ],
)
def test_route_shares(cfg, path: str, expected: dict[str, Fraction]) -> None:  # noqa: ANN001
    assert shares(cfg, path) == expected


def test_corr_against_envoy_body_counts(cfg) -> None:  # noqa: ANN001
    """/corr: zero_w 979, v1 0, v2 1021 of 2000; 20,000-run: 9837/0/10163 (docs/measurements.md, M15, M10)."""
    import scipy.stats as ss

    s = shares(cfg, "/corr")
    assert s["127.0.0.1:18081"] == 0  # an impossible outcome must be observed 0 times
    for n_b3, n_v2 in ((979, 1021), (9837, 10163)):
        assert ss.binomtest(n_b3, n_b3 + n_v2, float(s["127.0.0.1:18083"])).pvalue > ALPHA


def test_corr_is_not_independent(cfg) -> None:  # noqa: ANN001
    route, _ = envoy_dump_route(cfg, "127.0.0.1", 10000, path="/corr")
    assert isinstance(route.root, Weighted) and route.root.weights == (1, 0, 1)
    assert any("same per-request random value" in n for n in route.notes)


def test_deterministic_balancers_match_counts_exactly(cfg) -> None:  # noqa: ANN001
    n = 2000
    for cluster, path in (("rr4", "/rr4"), ("wrr4", "/wrr4"), ("wlr4", "/wlr4"), ("loc", "/loc"),
                          ("nopanic4", "/nopanic4"), ("rr4slow", "/rr4slow")):
        s = shares(cfg, path)
        obs = observed(cfg, cluster)
        for addr, share in s.items():
            assert abs(obs.get(addr, 0) - share * n) <= 1, (cluster, addr, obs, s)


def test_panic_sends_three_quarters_to_dead_hosts(cfg) -> None:  # noqa: ANN001
    s = shares(cfg, "/panic4")
    assert set(s.values()) == {Fraction(1, 4)}
    route, _ = envoy_dump_route(cfg, "127.0.0.1", 10000, path="/panic4")
    dead = [b for b in route.backends() if dict(b.labels).get("health")]
    assert len(dead) == 3  # /panic4 measured 500 OK and 1500 x 503
    assert observed(cfg, "panic4")["127.0.0.1:18083"] == 500
    assert any("panic" in n for n in route.notes)


def test_random_and_least_request_fit(cfg) -> None:  # noqa: ANN001
    import scipy.stats as ss

    for cluster, path in (("rand4", "/rand4"), ("wrand4", "/wrand4"), ("lr4", "/lr4"), ("lr4slow", "/lr4slow"),
                          ("prio", "/prio")):
        s = shares(cfg, path)
        obs = observed(cfg, cluster)
        keys = [k for k in s if s[k] > 0]
        counts = [obs.get(k, 0) for k in keys]
        total = sum(counts)
        assert total == 2000
        assert ss.chisquare(counts, [float(s[k]) * total for k in keys]).pvalue > ALPHA, cluster


def test_split_hc_half_to_dead_cluster(cfg) -> None:  # noqa: ANN001
    import scipy.stats as ss

    s = shares(cfg, "/split_hc")
    assert s == {"127.0.0.1:18081": Fraction(1, 2), "127.0.0.1:18099": Fraction(1, 2)}
    assert ss.binomtest(observed(cfg, "hc_good")["127.0.0.1:18081"], 2000, 0.5).pvalue > ALPHA


def test_header_random_value_is_deterministic(cfg) -> None:  # noqa: ANN001
    # x-rv = i goes to v1 exactly when i mod 100 < 90 (docs/measurements.md, M9)
    for i, addr in ((0, "127.0.0.1:18081"), (89, "127.0.0.1:18081"), (90, "127.0.0.1:18082"),
                    (18446744073709551615, "127.0.0.1:18081")):
        assert shares(cfg, "/split_hdr", headers={"x-rv": str(i)}) == {addr: 1}
    # not a uint64: falls back to the random value
    assert shares(cfg, "/split_hdr", headers={"x-rv": "-5"})["127.0.0.1:18081"] == Fraction(9, 10)


def test_missing_route_and_ring_notes(cfg) -> None:  # noqa: ANN001
    assert shares(cfg, "/no-such-path") == {"404 NR": 1}
    route, _ = envoy_dump_route(cfg, "127.0.0.1", 10000, path="/ring4")
    assert any("RING_HASH shares modelled as proportional" in n for n in route.notes)


def test_locality_example_priority_zero_takes_all() -> None:
    cfg = load_envoy(str(DATA / "envoy-examples-locality-load-balancing.yaml"))
    route, res = envoy_dump_route(cfg, "localhost", 3000)
    assert [b.name for b in route.backends()] == ["backend-local-1:8080"]
    assert res.steps[-1].choice == "routes[0]"


def _brute(cands: list[tuple[tuple[int, int] | None, list[tuple[str, int]]]], L: int) -> dict[str, int]:
    out: dict[str, int] = {}
    for r in range(L):
        outcome = "404 NR"
        for frac, clusters in cands:
            if frac is not None and not r % frac[1] < frac[0]:
                continue
            if len(clusters) == 1:
                outcome = clusters[0][0]
            else:
                v, acc = r % sum(w for _, w in clusters), 0
                for name, w in clusters:
                    if acc <= v < acc + w:
                        outcome = name
                        break
                    acc += w
            break
        out[outcome] = out.get(outcome, 0) + 1
    return out


@given(
    st.lists(
        st.tuples(
            st.one_of(st.none(), st.tuples(st.integers(0, 12), st.sampled_from([4, 6, 10, 12]))),
            st.lists(st.integers(0, 7), min_size=1, max_size=3),
        ),
        min_size=1,
        max_size=3,
    )
)
def test_correlated_weights_equal_brute_force(spec: list) -> None:  # noqa: ANN001
    cands = []
    for k, (frac, ws) in enumerate(spec):
        if len(ws) > 1 and sum(ws) == 0:
            ws = [*ws[:-1], 1]
        if frac is not None:
            frac = (min(frac[0], frac[1]), frac[1])
        cands.append((frac, [(f"c{k}.{i}", w) for i, w in enumerate(ws)]))
    got = dict(correlated_weights(cands))
    L = sum(got.values())
    want = _brute(cands, L)
    assert {k: v for k, v in got.items() if v} == want
