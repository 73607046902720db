"""Envoy's consistent-hashing balancers: xxHash64, RING_HASH and MAGLEV, bit-exact.

``xxh64`` is XXH64 (Yann Collet's specification), implemented here in pure
Python (and in numba in :mod:`meshstat._kernels.hashing`); Envoy's
``HashUtil::xxHash64(s, seed = 0)`` (``source/common/common/hash.h``) is XXH64
of the string's bytes.

Hosts are keyed as Envoy keys them (``thread_aware_lb_impl.h:
HashingLoadBalancer::hashKey``): the endpoint metadata ``envoy.lb/hash_key``
when set, else the hostname with ``use_hostname_for_hashing``, else the address
``"ip:port"``. Here a host is its key string (``"10.0.0.1:8080"`` by default).

RING_HASH (``ring_hash/ring_hash_lb.cc: RingHashLoadBalancer::Ring::Ring``):
normalised weights ``w / sum(w)`` (float64), ``scale = min(ceil(min_w *
min_ring) / min_w, max_ring)``; hosts in host-set order each add points
``xxh64(key + "_" + str(i))`` while a running float count stays below the
running target ``sum(scale * w)``; the ring is sorted by hash and a request hash
``h`` goes to the first point with hash ``>= h``, wrapping to the first
(``Ring::chooseHost``, ketama).

MAGLEV (``maglev/maglev_lb.cc: MaglevTable::constructMaglevTableInternal``,
``OriginalMaglevTable::constructImplementationInternals``): hosts sorted by key,
``offset = xxh64(key, 0) % M``, ``skip = xxh64(key, 1) % (M - 1) + 1``; the table
fills round by round, a host taking a slot in round ``it`` unless ``it * w <
target`` (its target grows by the largest weight per slot taken), each at the
next free position of its permutation ``(offset + skip * j) % M``. Lookup is
``table[h % M]``.

Both models matched Envoy 1.40.0 on 20,000 of 20,000 keys
(``docs/measurements.md``, M13; the pure-Python models are ``tests/reference_balancers.py``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import TYPE_CHECKING

from meshstat.errors import InvalidArgument

if TYPE_CHECKING:
    import numpy as np

    from meshstat.balancers.workload import Workload

__all__ = [
    "DEFAULT_MAGLEV_TABLE_SIZE",
    "DEFAULT_MAX_RING_SIZE",
    "DEFAULT_MIN_RING_SIZE",
    "Maglev",
    "RingHash",
    "default_endpoints",
    "endpoints_weights",
    "hash_numbered",
    "hash_strings",
    "key_hashes",
    "keyed_host_shares",
    "xxh64",
]

#: ``ring_hash_lb.h: DefaultMinRingSize``.
DEFAULT_MIN_RING_SIZE = 1024
#: ``ring_hash_lb.h: DefaultMaxRingSize`` (8M; both bounds are capped there).
DEFAULT_MAX_RING_SIZE = 1024 * 1024 * 8
#: ``maglev_lb.h: MaglevTable::DefaultTableSize`` (prime).
DEFAULT_MAGLEV_TABLE_SIZE = 65537
#: Largest Maglev table Envoy accepts (cluster.proto: "limited to 5000011").
MAX_MAGLEV_TABLE_SIZE = 5000011

_M64 = (1 << 64) - 1
_P1 = 0x9E3779B185EBCA87
_P2 = 0xC2B2AE3D27D4EB4F
_P3 = 0x165667B19E3779F9
_P4 = 0x85EBCA77C2B2AE63
_P5 = 0x27D4EB2F165667C5


def _rotl(x: int, r: int) -> int:
    return ((x << r) | (x >> (64 - r))) & _M64


def _round(acc: int, lane: int) -> int:
    acc = (acc + lane * _P2) & _M64
    return (_rotl(acc, 31) * _P1) & _M64


def xxh64(data: bytes | str, seed: int = 0) -> int:
    """XXH64 of ``data`` (a ``str`` is UTF-8 encoded) with ``seed``.

    Examples
    --------
    >>> hex(xxh64(""))
    '0xef46db3751d8e999'
    >>> hex(xxh64("abc"))
    '0x44bc2cf5ad770999'
    """
    b = data.encode() if isinstance(data, str) else bytes(data)
    n = len(b)
    p = 0
    seed &= _M64
    if n >= 32:
        v = [(seed + _P1 + _P2) & _M64, (seed + _P2) & _M64, seed, (seed - _P1) & _M64]
        while p <= n - 32:
            for j in range(4):
                v[j] = _round(v[j], int.from_bytes(b[p + 8 * j : p + 8 * j + 8], "little"))
            p += 32
        h = (_rotl(v[0], 1) + _rotl(v[1], 7) + _rotl(v[2], 12) + _rotl(v[3], 18)) & _M64
        for x in v:
            h = ((h ^ _round(0, x)) * _P1 + _P4) & _M64
    else:
        h = (seed + _P5) & _M64
    h = (h + n) & _M64
    while p + 8 <= n:
        h ^= _round(0, int.from_bytes(b[p : p + 8], "little"))
        h = (_rotl(h, 27) * _P1 + _P4) & _M64
        p += 8
    if p + 4 <= n:
        h ^= (int.from_bytes(b[p : p + 4], "little") * _P1) & _M64
        h = (_rotl(h, 23) * _P2 + _P3) & _M64
        p += 4
    while p < n:
        h ^= (b[p] * _P5) & _M64
        h = (_rotl(h, 11) * _P1) & _M64
        p += 1
    h ^= h >> 33
    h = (h * _P2) & _M64
    h ^= h >> 29
    h = (h * _P3) & _M64
    return h ^ (h >> 32)


def hash_strings(strings: Sequence[str], seed: int = 0) -> np.ndarray:
    """XXH64 of many strings at once (numba), as uint64."""
    import numpy as np

    from meshstat._kernels import hashing as kh

    enc = [s.encode() for s in strings]
    starts = np.zeros(len(enc) + 1, dtype=np.int64)
    if enc:
        starts[1:] = np.cumsum([len(e) for e in enc])
    buf = np.frombuffer(b"".join(enc), dtype=np.uint8) if enc else np.zeros(0, np.uint8)
    if buf.size == 0:
        buf = np.zeros(1, dtype=np.uint8)
    out = np.empty(len(enc), dtype=np.uint64)
    kh.xxh64_many(buf, starts, np.uint64(seed), out)
    return out


def hash_numbered(
    literals: Sequence[str], fields: Sequence[tuple[int, int, int]], indices: np.ndarray, seed: int = 0
) -> np.ndarray:
    """XXH64 of numbered texts, as uint64, without building Python strings.

    The text of index ``x`` is ``literals[0] + str(v_0) + literals[1] + ... +
    literals[-1]`` with ``v_f = (x // div) % mod + add`` for field
    ``(div, mod, add)`` (``mod`` 0: no modulo): ``(["key-", ""], [(1, 0, 0)])``
    is ``"key-" + str(x)``. Equal to :func:`hash_strings` of those texts; its
    memory is the output array whatever the count.
    """
    import numpy as np

    from meshstat._kernels import hashing as kh

    if len(literals) != len(fields) + 1:
        raise InvalidArgument("one more literal than numbered fields")
    enc = [t.encode() for t in literals]
    lit_starts = np.zeros(len(enc) + 1, dtype=np.int64)
    lit_starts[1:] = np.cumsum([len(e) for e in enc])
    buf = np.frombuffer(b"".join(enc) + b"\0", dtype=np.uint8)
    div, mod, add = (np.asarray([f[i] for f in fields], dtype=np.int64) for i in range(3))
    idx = np.ascontiguousarray(indices, dtype=np.int64)
    out = np.empty(idx.shape[0], dtype=np.uint64)
    kh.xxh64_numbered(buf, lit_starts, div, mod, add, idx, np.uint64(seed), out)
    return out


def key_hashes(workload: Workload) -> np.ndarray:
    """xxHash64 (seed 0) of every header value of the workload: Envoy's header hash policy.

    Numbered keys (``key_prefix + str(i)``) are hashed without building their
    strings (:func:`hash_numbered`): memory 8 bytes per key.
    """
    import numpy as np

    if workload.key_values is None and workload.keys is not None:
        return hash_numbered([workload.key_prefix, ""], [(1, 0, 0)], np.arange(workload.keys, dtype=np.int64))
    return hash_strings(workload.key_strings())


#: Pod-like addresses :func:`default_endpoints` can name: 10.244.1.2:8080 to 10.244.255.251:8080.
MAX_DEFAULT_ENDPOINTS = 255 * 250


def keyed_host_shares(host_of_key: np.ndarray, workload: Workload, n_hosts: int) -> tuple[Fraction, ...]:
    """Summed key popularity per host: each host's long-run share when requests carry the workload's keys.

    Exact: uniform keys give ``(keys on the host) / K``; Zipf keys the sum of
    their :meth:`~meshstat.balancers.Workload.key_shares` up to
    :data:`~meshstat.balancers.workload.EXACT_ZIPF_KEYS` keys, beyond the sum
    of the masses actually sampled (:meth:`~meshstat.balancers.Workload.key_masses64`)
    over ``2**64``, added in 21-bit limbs so that float64 sums stay exact.
    Time and memory linear in the keys, for millions of them.
    """
    import numpy as np

    from meshstat.balancers.workload import EXACT_ZIPF_KEYS

    hosts = np.asarray(host_of_key, dtype=np.int64)
    k = workload.key_count
    if workload.zipf == 0:
        counts = np.bincount(hosts, minlength=n_hosts)
        return tuple(Fraction(int(c), k) for c in counts)
    if k <= EXACT_ZIPF_KEYS:
        parts: list[list[Fraction]] = [[] for _ in range(n_hosts)]
        for s, h in zip(workload.key_shares(), hosts.tolist(), strict=True):
            parts[h].append(s)
        return tuple(sum(p, Fraction(0)) for p in parts)
    masses = np.asarray(workload.key_masses64(), dtype=object if k == 1 else np.uint64)
    total = [0] * n_hosts
    for shift in (0, 21, 42, 63):
        limb = ((masses >> np.uint64(shift)) & np.uint64((1 << 21) - 1)).astype(np.float64)
        sums = np.bincount(hosts, weights=limb, minlength=n_hosts)
        for h in range(n_hosts):
            total[h] += int(sums[h]) << shift
    return tuple(Fraction(t, 1 << 64) for t in total)


def default_endpoints(n: int) -> tuple[str, ...]:
    """``n`` pod-like addresses ``10.244.X.Y:8080`` (the hash keys of the hosts), at most :data:`MAX_DEFAULT_ENDPOINTS`."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise InvalidArgument(f"the number of endpoints must be a positive integer, got {n!r}")
    if n > MAX_DEFAULT_ENDPOINTS:
        raise InvalidArgument(
            f"at most {MAX_DEFAULT_ENDPOINTS:,} generated endpoints, got {n:,}: their host keys 10.244.X.Y:8080 end "
            "at 10.244.255.251 (and every endpoint holds Python objects); give the hosts' addresses for more"
        )
    return tuple(f"10.244.{1 + i // 250}.{2 + i % 250}:8080" for i in range(n))


def endpoints_weights(
    endpoints: int | Sequence[str], weights: Sequence[int] | None
) -> tuple[tuple[str, ...], tuple[int, ...] | None]:
    """A balancer's endpoint keys (``N`` gives :func:`default_endpoints`) and weights, checked."""
    eps = default_endpoints(endpoints) if isinstance(endpoints, int) else tuple(str(e) for e in endpoints)
    if not eps:
        raise InvalidArgument("a balancer needs at least one endpoint")
    if len(set(eps)) != len(eps):
        raise InvalidArgument("endpoint keys must be unique")
    if weights is None:
        return eps, None
    ws = tuple(int(w) for w in weights)
    if len(ws) != len(eps):
        raise InvalidArgument(f"{len(ws)} weights for {len(eps)} endpoints")
    if any(w < 1 for w in ws):
        raise InvalidArgument("endpoint weights (load_balancing_weight) must be >= 1")
    if sum(ws) > 2**32 - 1:
        raise InvalidArgument("endpoint weights must sum to at most 2**32 - 1")
    return eps, ws


def _normalized(weights: tuple[int, ...] | None, n: int) -> list[float]:
    """``normalizeHostWeights``: ``w * 1.0 / sum`` in float64 (uint64 sum)."""
    ws = weights or (1,) * n
    total = sum(ws)
    return [w * 1.0 / total for w in ws]


@dataclass(frozen=True, eq=False)
class RingHash:
    """Envoy RING_HASH over ``endpoints`` (see the module docstring).

    Parameters
    ----------
    endpoints : int or sequence of str
        Host keys (``"ip:port"``) in host-set order, or a count (:func:`default_endpoints`).
    weights : sequence of int, optional
        ``load_balancing_weight`` per host.
    min_ring_size, max_ring_size : int
        ``minimum_ring_size`` / ``maximum_ring_size`` (defaults 1024 / 8M).
    """

    endpoints: tuple[str, ...]
    weights: tuple[int, ...] | None = None
    min_ring_size: int = DEFAULT_MIN_RING_SIZE
    max_ring_size: int = DEFAULT_MAX_RING_SIZE
    _cache: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def __init__(
        self,
        endpoints: int | Sequence[str],
        weights: Sequence[int] | None = None,
        min_ring_size: int = DEFAULT_MIN_RING_SIZE,
        max_ring_size: int = DEFAULT_MAX_RING_SIZE,
    ) -> None:
        eps, ws = endpoints_weights(endpoints, weights)
        for name, v in (("min_ring_size", min_ring_size), ("max_ring_size", max_ring_size)):
            if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= DEFAULT_MAX_RING_SIZE:
                raise InvalidArgument(f"{name} must be an integer in [1, {DEFAULT_MAX_RING_SIZE}], got {v!r}")
        if min_ring_size > max_ring_size:
            raise InvalidArgument(
                f"ring hash: minimum_ring_size ({min_ring_size}) > maximum_ring_size ({max_ring_size})"
            )
        object.__setattr__(self, "endpoints", eps)
        object.__setattr__(self, "weights", ws)
        object.__setattr__(self, "min_ring_size", min_ring_size)
        object.__setattr__(self, "max_ring_size", max_ring_size)
        object.__setattr__(self, "_cache", {})

    policy = "ring_hash"
    unit = "request"

    @property
    def n_hosts(self) -> int:
        """Number of hosts."""
        return len(self.endpoints)

    def ring_keys(self) -> list[tuple[str, int]]:
        """``(point key string, host index)`` of every ring point, in build order."""
        norm = _normalized(self.weights, self.n_hosts)
        mn = min(norm)
        scale = min(math.ceil(mn * self.min_ring_size) / mn, float(self.max_ring_size))
        out: list[tuple[str, int]] = []
        current = 0.0
        target = 0.0
        for h, (key, nw) in enumerate(zip(self.endpoints, norm, strict=True)):
            target += scale * nw
            i = 0
            while current < target:
                out.append((f"{key}_{i}", h))
                i += 1
                current += 1
        return out

    def ring(self) -> tuple[np.ndarray, np.ndarray]:
        """The sorted ring: ``(hashes uint64, hosts int32)`` (stable sort by hash)."""
        if "ring" not in self._cache:
            import numpy as np

            pts = self.ring_keys()
            hashes = hash_strings([p[0] for p in pts])
            hosts = np.array([p[1] for p in pts], dtype=np.int32)
            order = np.argsort(hashes, kind="stable")
            self._cache["ring"] = (np.ascontiguousarray(hashes[order]), np.ascontiguousarray(hosts[order]))
        return self._cache["ring"]

    def guide(self, bits: int | None = None) -> tuple[np.ndarray, int]:
        """Bucket index over the top ``bits`` bits of the hash (speeds up lookups; same answers)."""
        import numpy as np

        hashes, _ = self.ring()
        if bits is None:
            bits = max(4, min(20, int(hashes.size).bit_length() + 1))
        key = ("guide", bits)
        if key not in self._cache:
            edges = (np.arange((1 << bits) + 1, dtype=np.uint64) << np.uint64(64 - bits)) if bits < 64 else None
            assert edges is not None
            g = np.searchsorted(hashes, edges[:-1], side="left").astype(np.int64)
            self._cache[key] = (np.concatenate([g, [hashes.size]]).astype(np.int64), bits)
        return self._cache[key]

    def lookup(self, hashes: np.ndarray) -> np.ndarray:
        """Host index (int32) for every request hash (uint64)."""
        import numpy as np

        from meshstat._kernels import hashing as kh

        rh, hosts = self.ring()
        g, bits = self.guide()
        h = np.ascontiguousarray(hashes, dtype=np.uint64)
        out = np.empty(h.shape[0], dtype=np.int32)
        kh.ring_lookup(rh, hosts, g, np.int64(bits), h, out)
        return out

    def host_of(self, h: int) -> int:
        """Host index for one request hash (pure Python bisect)."""
        import bisect

        rh, hosts = self.ring()
        hl = self._cache.setdefault("hash_list", rh.tolist())
        return int(hosts[bisect.bisect_left(hl, h) % len(hl)])

    def point_counts(self) -> tuple[int, ...]:
        """Ring points per host."""
        out = [0] * self.n_hosts
        for _, h in self.ring_keys():
            out[h] += 1
        return tuple(out)

    def key_space_shares(self) -> tuple[Fraction, ...]:
        """Exact share of the 2**64 hash space owned by every host (the split of random hashes)."""
        rh, hosts = self.ring()
        hl = [int(x) for x in rh.tolist()]
        hs = hosts.tolist()
        own = [0] * self.n_hosts
        prev = -1
        for hv, host in zip(hl, hs, strict=True):
            own[host] += hv - prev  # hashes in (prev, hv] go to this point
            prev = hv
        own[hs[0]] += _M64 - prev  # (last, 2**64 - 1] wraps to the first point
        return tuple(Fraction(x, 1 << 64) for x in own)

    def expected_shares(self) -> tuple[Fraction, ...]:
        """Long-run share of requests with random hashes (= :meth:`key_space_shares`)."""
        return self.key_space_shares()

    def without(self, endpoint: str | int) -> RingHash:
        """The same balancer with one host removed (by key or index)."""
        i = self.endpoints.index(endpoint) if isinstance(endpoint, str) else int(endpoint)
        eps = self.endpoints[:i] + self.endpoints[i + 1 :]
        ws = None if self.weights is None else self.weights[:i] + self.weights[i + 1 :]
        return RingHash(eps, ws, self.min_ring_size, self.max_ring_size)

    def with_endpoint(self, endpoint: str, weight: int = 1) -> RingHash:
        """The same balancer with one more host at the end."""
        ws = None if self.weights is None and weight == 1 else (*(self.weights or (1,) * self.n_hosts), weight)
        return RingHash((*self.endpoints, endpoint), ws, self.min_ring_size, self.max_ring_size)


def _is_prime(m: int) -> bool:
    if m < 2:
        return False
    if m % 2 == 0:
        return m == 2
    f = 3
    while f * f <= m:
        if m % f == 0:
            return False
        f += 2
    return True


@dataclass(frozen=True, eq=False)
class Maglev:
    """Envoy MAGLEV over ``endpoints`` (see the module docstring).

    Parameters
    ----------
    endpoints : int or sequence of str
        Host keys in host-set order (the table sorts them), or a count.
    weights : sequence of int, optional
        ``load_balancing_weight`` per host.
    table_size : int
        Prime, at most 5,000,011 (default 65,537).
    """

    endpoints: tuple[str, ...]
    weights: tuple[int, ...] | None = None
    table_size: int = DEFAULT_MAGLEV_TABLE_SIZE
    _cache: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def __init__(
        self,
        endpoints: int | Sequence[str],
        weights: Sequence[int] | None = None,
        table_size: int = DEFAULT_MAGLEV_TABLE_SIZE,
    ) -> None:
        eps, ws = endpoints_weights(endpoints, weights)
        if isinstance(table_size, bool) or not isinstance(table_size, int) or table_size > MAX_MAGLEV_TABLE_SIZE:
            raise InvalidArgument(f"maglev table size must be an integer <= {MAX_MAGLEV_TABLE_SIZE}, got {table_size!r}")
        if not _is_prime(table_size):
            raise InvalidArgument(f"The table size of maglev must be prime number, got {table_size}")
        object.__setattr__(self, "endpoints", eps)
        object.__setattr__(self, "weights", ws)
        object.__setattr__(self, "table_size", table_size)
        object.__setattr__(self, "_cache", {})

    policy = "maglev"
    unit = "request"

    @property
    def n_hosts(self) -> int:
        """Number of hosts."""
        return len(self.endpoints)

    def table(self) -> np.ndarray:
        """The lookup table: host index (into ``endpoints``) per slot, int32[table_size]."""
        if "table" not in self._cache:
            import numpy as np

            from meshstat._kernels import hashing as kh

            norm = _normalized(self.weights, self.n_hosts)
            # std::sort of (key, host, weight): by key string
            order = sorted(range(self.n_hosts), key=lambda i: self.endpoints[i].encode())
            keys = [self.endpoints[i] for i in order]
            m = self.table_size
            offs = hash_strings(keys, 0) % np.uint64(m)
            skips = hash_strings(keys, 1) % np.uint64(m - 1) + np.uint64(1)
            w = np.array([norm[i] for i in order], dtype=np.float64)
            t = np.full(m, -1, dtype=np.int32)
            kh.maglev_fill(offs, skips, w, np.float64(w.max()), np.int64(m), t)
            back = np.array(order, dtype=np.int32)
            self._cache["table"] = np.ascontiguousarray(back[t])
        return self._cache["table"]

    def entry_counts(self) -> tuple[int, ...]:
        """Table slots per host (exact long-run shares are these over ``table_size``)."""
        import numpy as np

        return tuple(int(x) for x in np.bincount(self.table(), minlength=self.n_hosts))

    def expected_shares(self) -> tuple[Fraction, ...]:
        """Share of random hashes per host: slots / table size (exact up to 2**64 mod M bias < 1e-14)."""
        return tuple(Fraction(c, self.table_size) for c in self.entry_counts())

    def lookup(self, hashes: np.ndarray) -> np.ndarray:
        """Host index (int32) for every request hash."""
        import numpy as np

        from meshstat._kernels import hashing as kh

        h = np.ascontiguousarray(hashes, dtype=np.uint64)
        out = np.empty(h.shape[0], dtype=np.int32)
        kh.maglev_lookup(self.table(), h, out)
        return out

    def host_of(self, h: int) -> int:
        """Host index for one request hash."""
        return int(self.table()[h % self.table_size])

    def without(self, endpoint: str | int) -> Maglev:
        """The same balancer with one host removed."""
        i = self.endpoints.index(endpoint) if isinstance(endpoint, str) else int(endpoint)
        eps = self.endpoints[:i] + self.endpoints[i + 1 :]
        ws = None if self.weights is None else self.weights[:i] + self.weights[i + 1 :]
        return Maglev(eps, ws, self.table_size)

    def with_endpoint(self, endpoint: str, weight: int = 1) -> Maglev:
        """The same balancer with one more host."""
        ws = None if self.weights is None and weight == 1 else (*(self.weights or (1,) * self.n_hosts), weight)
        return Maglev((*self.endpoints, endpoint), ws, self.table_size)
