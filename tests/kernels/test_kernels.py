"""Every kernel equals its pure-Python twin (tests/reference.py) on the same stream, exactly."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from meshstat._kernels import route as kr
from meshstat.compiler import alias_table, compile_route, dest_dtype
from fractions import Fraction

from meshstat.engine import seeding
from meshstat.model import Cascade, Route, Weighted
from meshstat.model import round_to_total as _round_to_total
from tests import reference as ref

BLOCK_LOG2 = 8  # small blocks: many block boundaries inside a short run

masses_strategy = st.lists(st.integers(min_value=0, max_value=2**26), min_size=1, max_size=40).filter(
    lambda m: sum(m) > 0
)


def _to_masses(raw: list[int]) -> list[int]:
    total = sum(raw)
    return list(_round_to_total([Fraction(x, total) for x in raw], 2**64))


def _tally(keys: np.ndarray, columns: int) -> np.ndarray:
    return np.zeros((keys.shape[0], columns), dtype=np.int64)


def _keys(seed: int, n: int) -> np.ndarray:
    return seeding.block_keys(np.random.SeedSequence(seed), -(-n // (1 << BLOCK_LOG2)))


def test_splitmix_matches_reference_and_java_sequence() -> None:
    # SplittableRandom(0).nextLong() sequence: first value of SplitMix64 with seed 0
    assert ref.splitmix64(0, 0) == 0xE220A8397B1DCDAF
    assert ref.splitmix64(0, 1) == 0x6E789E6AA1B965F4


@given(masses_strategy)
def test_alias_table_is_exact(raw: list[int]) -> None:
    masses = _to_masses(raw)
    table, bits = alias_table(masses)
    cap = 1 << (64 - bits)
    got = [0] * (1 << bits)
    for j, e in enumerate(table.tolist()):
        thr, alias = e >> bits, e & ((1 << bits) - 1)
        got[j] += thr
        got[alias] += cap - thr
    assert got[: len(masses)] == masses
    assert all(x == 0 for x in got[len(masses) :])


@given(masses_strategy, st.integers(min_value=0, max_value=2**32), st.integers(min_value=1, max_value=3000))
def test_alias_and_bernoulli_kernels_equal_reference(raw: list[int], seed: int, n: int) -> None:
    route = Route(root=Weighted.from_weights(raw))
    plan = compile_route(route)
    keys = _keys(seed, n)
    out = np.empty(n, dtype=dest_dtype(plan.columns))
    if plan.kind == "bernoulli":
        kr.bernoulli_dest(plan.t, keys, np.int64(BLOCK_LOG2), np.int64(n), out, _tally(keys, plan.columns))
        expect = [ref.bernoulli_pick(int(plan.t), ref.draw(keys.tolist(), BLOCK_LOG2, i)) for i in range(n)]
    else:
        kr.alias_dest(plan.table, np.int64(plan.bits), keys, np.int64(BLOCK_LOG2), np.int64(n), out, _tally(keys, plan.columns))
        cols = [(e >> plan.bits, e & ((1 << plan.bits) - 1)) for e in plan.table.tolist()]
        expect = [ref.alias_pick(cols, plan.bits, ref.draw(keys.tolist(), BLOCK_LOG2, i)) for i in range(n)]
    assert out.tolist() == expect


@given(
    st.lists(st.integers(min_value=0, max_value=2**31), min_size=0, max_size=9),
    st.integers(min_value=0, max_value=2**32),
    st.integers(min_value=1, max_value=2000),
)
def test_faithful_cascade_kernel_equals_reference(ks: list[int], seed: int, n: int) -> None:
    keys = _keys(seed, n)
    th = np.array(ks, dtype=np.uint64)
    out = np.empty(n, dtype=np.uint8)
    kr.cascade_dest(th, keys, np.int64(BLOCK_LOG2), np.int64(n), out, _tally(keys, len(ks) + 1))
    kl = keys.tolist()
    assert out.tolist() == [ref.cascade_pick(ks, kl, BLOCK_LOG2, i) for i in range(n)]


@given(
    st.lists(st.integers(min_value=0, max_value=2**31), min_size=1, max_size=12).filter(lambda w: sum(w) > 0),
    st.integers(min_value=0, max_value=2**32),
    st.integers(min_value=1, max_value=2000),
)
def test_faithful_envoy_kernel_equals_reference(ws: list[int], seed: int, n: int) -> None:
    if sum(ws) > 2**32 - 1:
        ws = [w // 2 for w in ws] if sum(w // 2 for w in ws) > 0 else [1]
    plan = compile_route(Route(root=Weighted.from_weights(ws)), mode="faithful")
    keys = _keys(seed, n)
    out = np.empty(n, dtype=np.uint8)
    kr.envoy_dest(plan.cum, plan.total, keys, np.int64(BLOCK_LOG2), np.int64(n), out, _tally(keys, plan.columns))
    kl = keys.tolist()
    assert out.tolist() == [ref.envoy_pick(ws, ref.draw(kl, BLOCK_LOG2, i)) for i in range(n)]


def _dest_and_windows(plan, keys, n, window):  # type: ignore[no-untyped-def]
    args = {
        "bernoulli": (kr.bernoulli_dest, kr.bernoulli_windows, (plan.t,)),
        "alias": (kr.alias_dest, kr.alias_windows, (plan.table, np.int64(plan.bits))),
        "cascade": (kr.cascade_dest, kr.cascade_windows, (plan.thresholds,)),
        "envoy": (kr.envoy_dest, kr.envoy_windows, (plan.cum, plan.total)),
    }[plan.kind]
    dest_k, win_k, a = args
    dest = np.empty(n, dtype=dest_dtype(plan.columns))
    tally = _tally(keys, plan.columns)
    dest_k(*a, keys, np.int64(BLOCK_LOG2), np.int64(n), dest, tally)
    # the per-block tallies of the dest kernel are the stream's counts, block by block
    for b in range(tally.shape[0]):
        seg = dest[b << BLOCK_LOG2 : (b + 1) << BLOCK_LOG2]
        assert tally[b].tolist() == np.bincount(seg, minlength=plan.columns).tolist()
    nw = -(-n // window)
    wc = np.zeros((nw, plan.columns), dtype=np.int64)
    # in two calls, as the chunked engine makes them: windows [0, h) and [h, nw)
    h = nw // 2
    win_k(*a, keys, np.int64(0), np.int64(BLOCK_LOG2), np.int64(n), np.int64(window), np.int64(0), wc[:h])
    kb0 = (h * window) >> BLOCK_LOG2
    win_k(*a, keys[kb0:], np.int64(kb0), np.int64(BLOCK_LOG2), np.int64(n), np.int64(window), np.int64(h), wc[h:])
    return dest, wc


@pytest.mark.parametrize(
    ("route", "mode"),
    [
        (Route(root=Weighted.from_weights([90, 10])), "per_request"),
        (Route(root=Weighted.from_weights([5, 0, 3, 2, 7])), "per_request"),
        (Route(root=Cascade.kube_proxy(7)), "faithful"),
        (Route(root=Weighted.from_weights([50, 30, 20])), "faithful"),
    ],
)
@pytest.mark.parametrize("window", [1, 7, 256, 1000, 5000])
def test_window_counts_are_the_per_request_stream(route: Route, mode: str, window: int) -> None:
    n = 4321
    plan = compile_route(route, mode=mode)
    keys = _keys(99, n)
    dest, wc = _dest_and_windows(plan, keys, n, window)
    for w in range(wc.shape[0]):
        seg = dest[w * window : (w + 1) * window]
        assert wc[w].tolist() == np.bincount(seg, minlength=plan.columns).tolist()
    assert wc.sum() == n


def test_zero_mass_backends_never_chosen() -> None:
    route = Route(root=Weighted.from_weights([0, 3, 0, 1, 0]))
    plan = compile_route(route)
    keys = _keys(5, 100_000)
    dest, _ = _dest_and_windows(plan, keys, 100_000, 100_000)
    counts = np.bincount(dest, minlength=5)
    assert counts[0] == counts[2] == counts[4] == 0
    assert counts.sum() == 100_000


def test_probability_one_and_zero_rules() -> None:
    always = Route(root=Cascade.from_probabilities(["1", "0.5"]))
    never = Route(root=Cascade.from_probabilities(["0", "0"]))
    for route, expect in ((always, [4000, 0, 0]), (never, [0, 0, 4000])):
        plan = compile_route(route, mode="faithful")
        dest, _ = _dest_and_windows(plan, _keys(1, 4000), 4000, 4000)
        assert np.bincount(dest, minlength=3).tolist() == expect


def test_kernels_have_one_specialisation_per_dtype() -> None:
    for kern in (kr.alias_windows, kr.bernoulli_windows, kr.cascade_windows, kr.envoy_windows):
        sigs = kern.signatures
        assert len(sigs) <= 2, sigs  # the real call and nothing else
