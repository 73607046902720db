"""Key and client populations as arrays, and the balancers' bounds on them.

``--keys 1e8`` and ``--affinity hash-source-ip --clients 1e8`` used to build a
Python string per key or client until memory ran out. Keys and client
addresses are now hashed by a kernel from their numbers (compared here with
the reference texts and the reference xxHash64), the alias table of millions
of keys is built by a kernel twin of the Python construction, and what a
machine cannot hold is refused in one line.
"""

from __future__ import annotations

import itertools
import random
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from meshstat import compiler
from meshstat.balancers import LeastRequest, RingHash, Workload
from meshstat.balancers.affinity import (
    MAX_CLIENT_ADDRESSES,
    client_address,
    client_address_hashes,
    client_addresses,
)
from meshstat.balancers.hashing import hash_numbered, hash_strings, key_hashes, keyed_host_shares
from meshstat.balancers.workload import EXACT_ZIPF_KEYS, MAX_KEYS, ConnectionLayout
from meshstat.errors import InvalidArgument
from meshstat.model import round_to_total
from tests import reference_balancers as rb

FIELDS = st.tuples(st.integers(1, 10**6), st.integers(0, 1000), st.integers(0, 10))


@given(
    st.lists(st.text(max_size=6), min_size=1, max_size=4).flatmap(
        lambda lits: st.tuples(
            st.just(lits), st.lists(FIELDS, min_size=len(lits) - 1, max_size=len(lits) - 1)
        )
    ),
    st.lists(st.integers(0, 2**62), min_size=1, max_size=30),
    st.integers(0, 2**64 - 1),
)
def test_numbered_hash_kernel_equals_reference(spec, xs: list[int], seed: int) -> None:
    literals, fields = spec
    got = hash_numbered(literals, fields, np.array(xs, dtype=np.int64), seed).tolist()
    assert got == [rb.xx(rb.numbered_text(literals, fields, x), seed) for x in xs]


def test_key_hashes_are_the_hashes_of_the_header_values() -> None:
    wl = Workload(keys=5000, key_prefix="user-")
    assert key_hashes(wl).tolist() == hash_strings([f"user-{i}" for i in range(5000)]).tolist()
    explicit = Workload(key_values=("a", "b"))
    assert key_hashes(explicit).tolist() == hash_strings(["a", "b"]).tolist()


def test_client_addresses_extend_the_first_64000_unchanged() -> None:
    assert [client_address(i) for i in (0, 1, 249, 250, 63_999)] == [
        "10.1.0.1", "10.1.0.2", "10.1.0.250", "10.1.1.1", "10.1.255.250",
    ]  # fmt: skip
    assert (
        client_address(64_000) == "10.2.0.1" and client_address(MAX_CLIENT_ADDRESSES - 1) == "10.255.255.250"
    )
    idx = np.array([0, 1, 63_999, 64_000, 5_000_000, MAX_CLIENT_ADDRESSES - 1], dtype=np.int64)
    assert client_address_hashes(idx).tolist() == hash_strings([client_address(int(i)) for i in idx]).tolist()
    with pytest.raises(InvalidArgument, match="at most 16,320,000"):
        client_addresses(MAX_CLIENT_ADDRESSES + 1)


def _python_alias(masses: list[int]) -> tuple[np.ndarray, int]:
    saved = compiler._ALIAS_KERNEL_FROM
    compiler._ALIAS_KERNEL_FROM = 10**12
    try:
        return compiler.alias_table(masses)
    finally:
        compiler._ALIAS_KERNEL_FROM = saved


@pytest.mark.parametrize("k", [2, 3, 17, 1000, 5000, 70_000])
def test_alias_kernel_builds_the_same_table(k: int) -> None:
    rng = random.Random(k)
    raw = [rng.randrange(0, 1000) for _ in range(k)]
    raw[0] += 1
    total = sum(raw)
    masses = [(x << 64) // total for x in raw]
    masses[0] += (1 << 64) - sum(masses)
    t1, b1 = _python_alias(masses)
    t2, b2 = compiler._alias_table_kernel(np.asarray(masses, dtype=np.uint64))
    assert b1 == b2 and t1.tolist() == t2.tolist()
    t3, b3 = compiler.alias_table(np.asarray(masses, dtype=np.uint64))
    assert b3 == b1 and t3.tolist() == t1.tolist()


def test_alias_table_of_one_full_mass_among_many() -> None:
    masses = [0] * 5000
    masses[7] = 2**64
    table, bits = compiler.alias_table(masses)
    assert bits == 13 and set((table & np.uint64((1 << bits) - 1)).tolist()) == {7}


@pytest.mark.parametrize(
    ("k", "zipf"), [(1, 0.0), (3, 0.0), (1000, 0.0), (100_003, 0.0), (300, 1.1), (5, 0.5)]
)
def test_key_masses_are_the_largest_remainder_rounding(k: int, zipf: float) -> None:
    wl = Workload(keys=k, zipf=zipf)
    m = [int(x) for x in wl.key_masses64()]
    assert sum(m) == 2**64
    if k <= 1000:
        assert m == list(round_to_total(list(wl.key_shares()), 2**64))
    else:
        q, r = divmod(2**64, k)
        assert m[:r] == [q + 1] * r and m[r:] == [q] * (k - r)


def test_zipf_masses_past_the_exact_limit_sum_to_2_64() -> None:
    wl = Workload(keys=EXACT_ZIPF_KEYS + 5, zipf=1.1)
    m = wl.key_masses64()
    assert isinstance(m, np.ndarray) and sum(int(x) for x in m) == 2**64
    assert all(int(a) >= int(b) for a, b in itertools.pairwise(m[:101]))  # popularity decreases


@pytest.mark.parametrize("zipf", [0.0, 0.7])
def test_keyed_host_shares_are_the_summed_key_shares(zipf: float) -> None:
    wl = Workload(keys=2000, zipf=zipf)
    lb = RingHash(5)
    hosts = lb.lookup(key_hashes(wl))
    want = [Fraction(0)] * 5
    for s, h in zip(wl.key_shares(), hosts.tolist(), strict=True):
        want[h] += s
    assert list(keyed_host_shares(hosts, wl, 5)) == want


def test_keyed_host_shares_from_the_sampled_masses_sum_to_one() -> None:
    wl = Workload(keys=EXACT_ZIPF_KEYS + 1, zipf=0.9)
    hosts = np.arange(wl.key_count) % 4
    got = keyed_host_shares(hosts, wl, 4)
    assert sum(got) == 1 and got[0] > got[3]


def test_keys_beyond_the_bound_are_refused_in_one_line() -> None:
    Workload(keys=MAX_KEYS)
    with pytest.raises(InvalidArgument, match="keys must be at most 16,777,216"):
        Workload(keys=MAX_KEYS + 1)
    with pytest.raises(InvalidArgument, match="zipf exponent"):
        Workload(keys=3, zipf=float("nan"))


def _old_layout(clients: int, n: int, rpc: int | str | None) -> tuple[list[int], list[int], list[int]]:
    """The per-client loop the vectorised layout replaced (for int and None / "all" connection sizes)."""
    q, r = divmod(n, clients)
    per = [q + (1 if c < r else 0) for c in range(clients)]
    cl, st_, sz = [], [], []
    for c, m in enumerate(per):
        if rpc is None:
            cl += [c] * m
            st_ += list(range(m))
            sz += [1] * m
        elif rpc == "all":
            if m:
                cl.append(c)
                st_.append(0)
                sz.append(m)
        else:
            full, rest = divmod(m, rpc)
            for j in range(full + (1 if rest else 0)):
                cl.append(c)
                st_.append(j * rpc)
                sz.append(rest if (j == full and rest) else rpc)
    order = sorted(range(len(cl)), key=lambda i: (st_[i], cl[i]))
    return [cl[i] for i in order], [st_[i] for i in order], [sz[i] for i in order]


@given(st.integers(1, 30), st.integers(1, 300), st.sampled_from([None, "all", 1, 2, 3, 7, 50]))
def test_vectorised_layout_equals_the_per_client_loop(clients: int, n: int, rpc: int | str | None) -> None:
    lay = ConnectionLayout.build(Workload(clients=clients, requests_per_connection=rpc), n, None, 18)
    c, s, z = _old_layout(clients, n, rpc)
    assert (lay.conn_client.tolist(), lay.conn_start.tolist(), lay.conn_size.tolist()) == (c, s, z)


def test_clients_beyond_the_requests_take_no_memory() -> None:
    wl = Workload(clients=10**8, requests_per_connection=3)
    per = wl.requests_per_client(1000)
    assert per.shape == (1000,) and int(per.sum()) == 1000
    lay = ConnectionLayout.build(wl, 1000, None, 18)
    assert lay.n_connections == 1000 and lay.request_connections().shape == (1000,)


def _iterated(act: tuple[int, ...], c: int) -> tuple[Fraction, ...]:
    """N_CHOICES as a Markov chain over the kept candidate, one sample at a time."""
    n = len(act)
    p = [Fraction(1, n)] * n
    for _ in range(c - 1):
        q = [Fraction(0)] * n
        for cand in range(n):
            for s in range(n):
                q[s if act[s] < act[cand] else cand] += p[cand] / n
        p = q
    return tuple(p)


@given(st.lists(st.integers(0, 3), min_size=1, max_size=5), st.integers(2, 8))
def test_least_request_pick_distribution_in_closed_form(active: list[int], c: int) -> None:
    lr = LeastRequest(len(active), choice_count=c)
    assert lr.pick_probabilities(active) == _iterated(tuple(active), c)


def test_least_request_choice_count_bounds() -> None:
    assert LeastRequest(3, choice_count=10**6).expected_shares() == (Fraction(1, 3),) * 3
    with pytest.raises(InvalidArgument, match="uint32"):
        LeastRequest(3, choice_count=2**32)
    with pytest.raises(InvalidArgument, match="at most"):
        LeastRequest(3, choice_count=10**6).pick_probabilities((0, 1, 2))


def test_requests_per_connection_beyond_int64_is_the_largest_run() -> None:
    """A fixed R above 2**63-1 carries every request of any run on one connection, as R = 2**63-1 does."""
    from meshstat.balancers.workload import MAX_REQUESTS_PER_CONNECTION, parse_requests_per_connection

    assert parse_requests_per_connection(str(2**63)) == MAX_REQUESTS_PER_CONNECTION == 2**63 - 1
    assert parse_requests_per_connection(10**30) == MAX_REQUESTS_PER_CONNECTION
    assert parse_requests_per_connection("5") == 5
