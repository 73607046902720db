"""Every balancer kernel equals its pure-Python twin (tests/reference_balancers.py) exactly."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meshstat._kernels import balancers as kb
from meshstat._kernels import hashing as kh
from meshstat._kernels import least_request as kl
from meshstat.balancers import Maglev, RingHash, create_with_picks, hash_strings, xxh64
from meshstat.balancers.roundrobin import edf_picks
from meshstat.compiler import alias_table
from meshstat.engine import seeding
from meshstat.model import round_to_total as _round_to_total
from tests import reference_balancers as rb
from tests.reference_balancers import smooth_wrr

BLOCK_LOG2 = 8


def _keys(seed: int, n: int) -> np.ndarray:
    return seeding.block_keys(np.random.SeedSequence(seed), max(1, -(-n // (1 << BLOCK_LOG2))))


# ----------------------------------------------------------------- xxHash64


def test_xxh64_published_vectors() -> None:
    assert xxh64("") == 0xEF46DB3751D8E999
    assert xxh64("a") == 0xD24EC4F1A98C6E5B
    assert xxh64("abc") == 0x44BC2CF5AD770999
    for f in (rb.xxh64,):
        assert f(b"") == 0xEF46DB3751D8E999
        assert f(b"abc") == 0x44BC2CF5AD770999


@given(st.lists(st.binary(max_size=90), min_size=1, max_size=20), st.integers(min_value=0, max_value=2**64 - 1))
def test_xxh64_kernel_equals_reference(blobs: list[bytes], seed: int) -> None:
    starts = np.zeros(len(blobs) + 1, dtype=np.int64)
    starts[1:] = np.cumsum([len(b) for b in blobs])
    buf = np.frombuffer(b"".join(blobs) + b"\0", dtype=np.uint8)
    out = np.empty(len(blobs), dtype=np.uint64)
    kh.xxh64_many(buf, starts, np.uint64(seed), out)
    assert out.tolist() == [rb.xxh64(b, seed) for b in blobs]
    assert [xxh64(b, seed) for b in blobs] == out.tolist()


def test_hash_strings_matches_reference_for_envoy_keys() -> None:
    keys = [f"127.0.0.1:1808{i}_{j}" for i in range(3) for j in range(40)] + ["user-1", "x" * 200]
    assert hash_strings(keys).tolist() == [rb.xx(k) for k in keys]
    assert hash_strings(keys, 1).tolist() == [rb.xx(k, 1) for k in keys]


# ----------------------------------------------------------------- ring hash and maglev


@pytest.mark.parametrize(
    ("hosts", "weights", "min_ring"),
    [(4, None, 1024), (4, [1, 2, 3, 4], 1024), (7, [5, 1, 1, 2, 9, 3, 1], 64), (3, None, 10)],
)
def test_ring_equals_appendix_model(hosts: int, weights, min_ring: int) -> None:  # noqa: ANN001
    lb = RingHash(hosts, weights, min_ring_size=min_ring)
    hashes, owners = rb.ring(list(lb.endpoints), weights, min_ring)
    rh, rhost = lb.ring()
    assert rh.tolist() == hashes
    assert rhost.tolist() == owners
    probe = _keys(3, 2000)
    hv = np.array([rb.splitmix64(int(probe[0]), u) for u in range(2000)] + [0, 2**64 - 1] + hashes[:5],
                  dtype=np.uint64)
    got = lb.lookup(hv).tolist()
    assert got == [rb.ring_pick(hashes, owners, int(h)) for h in hv.tolist()]
    assert got == [lb.host_of(int(h)) for h in hv.tolist()]


@given(st.integers(min_value=0, max_value=2**32), st.integers(min_value=1, max_value=1500))
def test_ring_random_kernel_equals_reference(seed: int, n: int) -> None:
    lb = RingHash(5, [1, 2, 3, 1, 1], min_ring_size=50)
    rh, hosts = lb.ring()
    g, bits = lb.guide()
    keys = _keys(seed, n)
    out = np.empty(n, dtype=np.int32)
    kh.ring_random(rh, hosts, g, np.int64(bits), keys, np.int64(BLOCK_LOG2), np.int64(n), out)
    kl_ = keys.tolist()
    assert out.tolist() == [rb.ring_pick(rh.tolist(), hosts.tolist(), rb.draw(kl_, BLOCK_LOG2, i)) for i in range(n)]


@pytest.mark.parametrize(("hosts", "weights", "m"), [(4, None, 65537), (4, [1, 2, 3, 4], 65537), (6, [3, 1, 1, 1, 7, 2], 251)])
def test_maglev_table_equals_appendix_model(hosts: int, weights, m: int) -> None:  # noqa: ANN001
    lb = Maglev(hosts, weights, m)
    assert lb.table().tolist() == rb.maglev(list(lb.endpoints), weights, m)


@given(st.integers(min_value=0, max_value=2**32), st.integers(min_value=1, max_value=1500))
def test_maglev_kernels_equal_reference(seed: int, n: int) -> None:
    lb = Maglev(5, [1, 2, 3, 1, 1], 251)
    table = lb.table()
    keys = _keys(seed, n)
    out = np.empty(n, dtype=np.int32)
    kh.maglev_random(table, keys, np.int64(BLOCK_LOG2), np.int64(n), out)
    kl_ = keys.tolist()
    t = table.tolist()
    draws = [rb.draw(kl_, BLOCK_LOG2, i) for i in range(n)]
    assert out.tolist() == [t[r % 251] for r in draws]
    assert lb.lookup(np.array(draws, dtype=np.uint64)).tolist() == out.tolist()


# ----------------------------------------------------------------- cycles, EDF, smooth WRR, IPVS


@given(st.lists(st.integers(min_value=0, max_value=6), min_size=1, max_size=300),
       st.integers(min_value=0, max_value=50))
def test_cycle_kernels_equal_reference(cyc: list[int], phase: int) -> None:
    c = np.asarray(cyc, dtype=np.int32)
    n = 3 * len(cyc) + 5
    out = np.empty(n, dtype=np.int32)
    kb.cycle_fill(c, np.int64(phase), np.int64(n), out)
    assert out.tolist() == [cyc[(phase + i) % len(cyc)] for i in range(n)]
    # two workers with different cycles, requests alternating irregularly
    worker = np.array([(i * 7 // 3) % 2 for i in range(n)], dtype=np.int64)
    cycles = np.concatenate([c, c[::-1]]).astype(np.int32)
    offs = np.array([0, len(cyc)], np.int64)
    lens = np.array([len(cyc), len(cyc)], np.int64)
    phases = np.array([phase, phase + 1], np.int64)
    out2 = np.empty(n, dtype=np.int32)
    kb.cycle_dest_workers(worker, cycles, offs, lens, phases, out2)
    pos = [0, 0]
    expect = []
    for w in worker.tolist():
        expect.append(int(cycles[offs[w] + (phases[w] + pos[w]) % lens[w]]))
        pos[w] += 1
    assert out2.tolist() == expect


@given(st.lists(st.integers(min_value=1, max_value=50), min_size=2, max_size=8),
       st.integers(min_value=0, max_value=2**32 - 1), st.integers(min_value=1, max_value=400))
def test_edf_kernel_equals_priority_queue(weights: list[int], seed: int, n: int) -> None:
    ws = [float(w) for w in weights]
    stt = create_with_picks(ws, seed)
    out = np.empty(n, dtype=np.int32)
    kb.edf_sequence(np.array(stt.deadline), np.array(stt.order, np.int64), np.float64(stt.current_time),
                    np.int64(stt.order_offset), np.array([1.0 / w for w in ws]), np.int64(n), out)
    ref = rb.edf_envoy((stt.deadline, stt.order, stt.current_time, stt.order_offset), ws, n)
    assert out.tolist() == ref
    assert edf_picks(stt, ws, n)[1] == ref


@given(st.lists(st.integers(min_value=1, max_value=40), min_size=2, max_size=7),
       st.integers(min_value=0, max_value=2**32 - 1))
def test_create_with_picks_keeps_the_weights(weights: list[int], seed: int) -> None:
    """From any random phase, every 3 whole periods give each host 3 * w picks, up to one pick of phase."""
    ws = [float(w) for w in weights]
    total = int(sum(weights))
    _, seq = edf_picks(create_with_picks(ws, seed), ws, 3 * total)
    counts = np.bincount(seq, minlength=len(weights))
    assert np.all(np.abs(counts - 3 * np.asarray(weights)) <= 1), (counts, weights)


@given(st.lists(st.integers(min_value=1, max_value=20), min_size=1, max_size=8), st.integers(min_value=1, max_value=300))
def test_swrr_kernel_equals_meshstat_nginx(weights: list[int], n: int) -> None:
    out = np.empty(n, dtype=np.int32)
    kb.swrr_sequence(np.asarray(weights, np.int64), np.zeros(len(weights), np.int64), np.int64(n), out)
    assert out.tolist() == smooth_wrr(weights, n)


def test_swrr_kernel_with_down_equals_meshstat_nginx() -> None:
    w = [5, 1, 3, 2]
    down = [False, True, False, False]
    out = np.empty(50, dtype=np.int32)
    kb.swrr_sequence(np.asarray([0 if d else x for x, d in zip(w, down)], np.int64), np.zeros(4, np.int64),
                     np.int64(50), out)
    assert out.tolist() == smooth_wrr(w, 50, down=down)


@given(st.lists(st.integers(min_value=0, max_value=12), min_size=1, max_size=6).filter(any),
       st.integers(min_value=1, max_value=200))
def test_ipvs_wrr_kernel_equals_reference(weights: list[int], n: int) -> None:
    out = np.empty(n, dtype=np.int64)
    kb.ipvs_wrr_sequence(np.asarray(weights, np.int64), np.int64(n), out)
    assert out.tolist() == rb.ipvs_wrr(weights, n)


def test_ipvs_wrr_classic_sequence() -> None:
    out = np.empty(9, dtype=np.int64)
    kb.ipvs_wrr_sequence(np.array([4, 3, 2], np.int64), np.int64(9), out)
    assert out.tolist() == [0, 0, 1, 0, 1, 2, 0, 1, 2]  # LVS documentation's a a b a b c a b c


# ----------------------------------------------------------------- random draws


@given(st.integers(min_value=0, max_value=2**32), st.integers(min_value=1, max_value=2000),
       st.integers(min_value=1, max_value=13))
def test_random_and_assign_kernels_equal_reference(seed: int, n: int, m: int) -> None:
    keys = _keys(seed, n)
    kl_ = keys.tolist()
    out = np.empty(n, dtype=np.int32)
    kb.random_dest(np.int64(m), keys, np.int64(BLOCK_LOG2), np.int64(n), out)
    expect = [rb.draw(kl_, BLOCK_LOG2, i) % m for i in range(n)]
    assert out.tolist() == expect
    out2 = np.empty(n, dtype=np.int64)
    kb.random_dest(np.int64(m), keys, np.int64(BLOCK_LOG2), np.int64(n), out2)  # int64 output (connections)
    assert out2.tolist() == expect


@given(st.integers(min_value=0, max_value=2**32), st.integers(min_value=1, max_value=1000),
       st.sampled_from([1.0, 1.5, 4.0, 30.0, 5e17, 1e25, 1e300]), st.sampled_from([1, 7, 1000, 2**40]))
def test_geometric_kernel_equals_reference(seed: int, n: int, mean: float, cap: int) -> None:
    keys = _keys(seed, n)
    out = np.empty(n, dtype=np.int64)
    kb.geometric_sizes(np.float64(mean), np.int64(cap), keys, np.int64(BLOCK_LOG2), np.int64(n), out)
    kl_ = keys.tolist()
    assert out.tolist() == [rb.geometric(mean, rb.draw(kl_, BLOCK_LOG2, i), cap) for i in range(n)]
    assert out.min() >= 1 and out.max() <= max(cap, 1)


@given(st.lists(st.integers(min_value=0, max_value=1000), min_size=1, max_size=30).filter(lambda x: sum(x) > 0),
       st.integers(min_value=0, max_value=2**32), st.integers(min_value=1, max_value=1000))
def test_alias_pick_equals_reference(raw: list[int], seed: int, n: int) -> None:
    from fractions import Fraction

    masses = _round_to_total([Fraction(x, sum(raw)) for x in raw], 2**64)
    table, bits = alias_table(masses)
    keys = _keys(seed, n)
    out = np.empty(n, dtype=np.int64)
    kb.alias_pick(table, np.int64(bits), keys, np.int64(BLOCK_LOG2), np.int64(n), out)
    t = table.tolist()
    kl_ = keys.tolist()
    assert out.tolist() == [rb.alias_col(t, bits, rb.draw(kl_, BLOCK_LOG2, i)) for i in range(n)]


# ----------------------------------------------------------------- least request


@given(st.lists(st.integers(min_value=0, max_value=3), min_size=1, max_size=6),
       st.integers(min_value=2, max_value=40), st.booleans(), st.integers(min_value=0, max_value=2**32))
def test_least_request_static_picks_equal_reference(active: list[int], c: int, full: bool, seed: int) -> None:
    n = 300
    keys = _keys(seed, n * 16)
    a = np.asarray(active, np.int64)
    out = np.empty(n, dtype=np.int64)
    kl.picks_static(a, np.int64(c), full, keys, np.int64(BLOCK_LOG2), np.int64(n), out)
    words = 3 + max(c, len(active))
    kl_ = keys.tolist()
    assert out.tolist() == [rb.lr_pick(active, c, full, kl_, BLOCK_LOG2, words, i) for i in range(n)]


def _run_lr(weighted, weights, bias, c, full, rate, kind, a, b, servers, seed, n):  # noqa: ANN001, ANN202
    k = len(weights)
    words = 3 + max(c, k)
    keys = seeding.block_keys(np.random.SeedSequence(seed), -(-n * words // (1 << BLOCK_LOG2)) + 1)
    if weighted:
        stt = create_with_picks(weights, seed)
        edf = (stt.deadline, stt.order, stt.current_time, stt.order_offset)
    else:
        edf = ((0.0,) * k, (0,) * k, 0.0, 0)
    dest = np.empty(n, np.int32)
    lat = np.empty(n, np.float64)
    area = np.zeros(k)
    mx = np.zeros(k, np.int64)
    kl.simulate_lr(weighted, np.asarray(weights, np.float64), np.float64(bias), np.int64(c), full,
                   np.array(edf[0], np.float64), np.array(edf[1], np.int64), np.array([edf[2], float(edf[3])]),
                   np.float64(rate), np.int64(kind), np.asarray(a, np.float64), np.asarray(b, np.float64),
                   np.asarray(servers, np.int64), keys, np.int64(BLOCK_LOG2), np.int64(n), dest, lat, area, mx)
    ref_dest, ref_lat = rb.lr_simulate(weighted, weights, bias, c, full, edf, rate, (kind, a, b), servers,
                                       keys.tolist(), BLOCK_LOG2, n)
    return dest, lat, ref_dest, ref_lat


@pytest.mark.parametrize(
    ("weighted", "weights", "bias", "c", "full", "kind", "servers"),
    [
        (False, [1.0] * 4, 1.0, 2, False, 0, [1, 1, 1, 1]),
        (False, [1.0] * 3, 1.0, 3, True, 1, [2, 1, 1]),
        (False, [1.0] * 5, 1.0, 2, False, 2, [0, 0, 0, 0, 0]),
        (False, [1.0] * 3, 1.0, 50, False, 0, [1, 1, 1]),  # more choices than hosts: the pick stops early
        (True, [1.0, 2.0, 3.0], 1.0, 2, False, 0, [1, 1, 2]),
        (True, [1.0, 2.0, 3.0], 0.5, 2, False, 0, [1, 1, 1]),
    ],
)
def test_least_request_simulation_equals_reference(weighted, weights, bias, c, full, kind, servers) -> None:  # noqa: ANN001
    k = len(weights)
    a = [0.01 * (1 + h % 3) for h in range(k)]
    b = [0.5] * k
    dest, lat, ref_dest, ref_lat = _run_lr(weighted, weights, bias, c, full, 150.0, kind, a, b, servers, 7, 1500)
    assert dest.tolist() == ref_dest
    np.testing.assert_allclose(lat, ref_lat, rtol=1e-12, atol=1e-15)


# ----------------------------------------------------------------- affinity


@given(st.integers(min_value=1, max_value=6), st.integers(min_value=1, max_value=40),
       st.integers(min_value=1, max_value=8), st.floats(min_value=0.5, max_value=30), st.booleans(),
       st.integers(min_value=0, max_value=2**32))
@settings(max_examples=40)
def test_recent_affinity_kernel_equals_reference(k: int, clients: int, cap: int, timeout: float, reap: bool,
                                                 seed: int) -> None:
    m = 300
    rng = np.random.default_rng(seed)
    who = rng.integers(0, clients, m).astype(np.int64)
    times = np.cumsum(rng.exponential(1.0, m))
    choice = rng.integers(0, k, m).astype(np.int64)
    out = np.empty(m, np.int32)
    ev = np.zeros(k, np.int64)
    kb.recent_affinity(who, times, choice, np.int64(k), np.float64(timeout), np.int64(cap), reap, out, ev)
    ref, ref_ev = rb.recent_affinity(who.tolist(), times.tolist(), choice.tolist(), k, timeout, cap, reap)
    assert out.tolist() == ref
    assert ev.tolist() == ref_ev


@given(st.integers(min_value=1, max_value=5), st.integers(min_value=1, max_value=40),
       st.integers(min_value=1, max_value=8), st.floats(min_value=0.5, max_value=30),
       st.integers(min_value=0, max_value=2**32))
@settings(max_examples=40)
def test_set_affinity_kernel_equals_reference(k: int, clients: int, size: int, timeout: float, seed: int) -> None:
    m = 300
    rng = np.random.default_rng(seed)
    who = rng.integers(0, clients, m).astype(np.int64)
    times = np.cumsum(rng.exponential(1.0, m))
    choice = rng.integers(0, k, m).astype(np.int64)
    out = np.empty(m, np.int32)
    ev = np.zeros(k, np.int64)
    kb.set_affinity(who, times, choice, np.int64(k), np.float64(timeout), np.int64(size), out, ev)
    ref, ref_ev = rb.set_affinity(who.tolist(), times.tolist(), choice.tolist(), k, timeout, size)
    assert out.tolist() == ref
    assert ev.tolist() == ref_ev


# ----------------------------------------------------------------- connection-level routing


def test_connection_counts_kernel_equals_reference() -> None:
    from fractions import Fraction

    gm = _round_to_total([Fraction(1, 3), Fraction(2, 3)], 2**64)
    gtable, gbits = alias_table(gm)
    t0, b0 = alias_table(_round_to_total([Fraction(1, 4), Fraction(3, 4)], 2**64))
    width = t0.shape[0]
    req_tables = np.zeros((2, width), np.uint64)
    req_tables[0] = t0
    req_bits = np.array([b0, 0], np.int64)
    offsets = np.array([0, 2], np.int64)
    reps = 3
    sizes = np.array([[5, 1, 7, 0, 3] * 60] * reps, dtype=np.int64)
    conn_keys = np.stack([_keys(s, 300) for s in range(reps)])
    req_keys = np.stack([_keys(100 + s, 1000) for s in range(reps)])
    out = np.zeros((reps, 3), np.int64)
    kb.connection_counts(gtable, np.int64(gbits), req_tables, req_bits, offsets, sizes, conn_keys, req_keys,
                         np.int64(BLOCK_LOG2), out)
    for r in range(reps):
        ref = rb.connection_counts(gtable.tolist(), gbits, [req_tables[0].tolist(), None], req_bits.tolist(),
                                   offsets.tolist(), sizes[r].tolist(), conn_keys[r].tolist(),
                                   req_keys[r].tolist(), BLOCK_LOG2, 3)
        assert out[r].tolist() == ref
    assert out.sum() == reps * sizes[0].sum()


def test_kernels_keep_one_specialisation() -> None:
    for kern in (kb.cycle_fill, kb.random_dest, kh.maglev_lookup, kh.ring_lookup):
        assert len(kern.signatures) <= 2, kern.signatures
    assert math.isfinite(0.0)


@pytest.mark.parametrize("weights", [[1, 2, 3, 4], [1, 1, 2], [5, 7, 11], [999, 1000], [3, 6, 9, 12, 1]])
@pytest.mark.parametrize("seed", [0, 1, 123456789, 2**32 - 1])
def test_edf_period_replication_is_bit_exact(weights: list[int], seed: int) -> None:
    """edf_sequence / edf_counts (one period stepped, then copied while provably periodic) == stepping."""
    ws = [float(w) for w in weights]
    stt = create_with_picks(ws, seed)
    n = 300_000

    def state() -> tuple:
        return (
            np.array(stt.deadline),
            np.array(stt.order, np.int64),
            np.float64(stt.current_time),
            np.int64(stt.order_offset),
            np.array([1.0 / w for w in ws]),
        )

    fast, step = np.empty(n, np.int32), np.empty(n, np.int32)
    a, b, c = state(), state(), state()
    ra = kb.edf_sequence(*a, np.int64(n), fast)
    rs = kb.edf_sequence_stepwise(*b, np.int64(n), step)
    assert np.array_equal(fast, step)
    assert ra == rs
    assert np.array_equal(a[0], b[0])
    assert np.array_equal(a[1], b[1])
    counts = np.zeros(len(ws), np.int64)
    assert kb.edf_counts(*c, np.int64(n), counts) == rs
    assert counts.tolist() == np.bincount(step, minlength=len(ws)).tolist()
    ref = rb.edf_envoy((stt.deadline, stt.order, stt.current_time, stt.order_offset), ws, 3000)
    assert fast[:3000].tolist() == ref
