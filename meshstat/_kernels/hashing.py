"""Hashing kernels: xxHash64 (bit-exact), ketama ring lookup and Maglev table fill.

``xxh64`` follows the XXH64 specification (Yann Collet, ``xxhash.h``:
``XXH64``, ``XXH64_round``, ``XXH64_mergeRound``, ``XXH64_finalize``,
``XXH64_avalanche``); Envoy's ``HashUtil::xxHash64(s, seed)``
(``source/common/common/hash.h``) is ``XXH64(s.data(), s.size(), seed)``.

Arrays: ``buf`` uint8 (concatenated UTF-8 strings), ``starts`` int64[m + 1]
(string ``i`` is ``buf[starts[i]:starts[i + 1]]``), ``ring_hashes`` uint64
(sorted), ``ring_hosts`` int32, ``guide`` int64[2**guide_bits + 1] (index of
the first ring point whose top ``guide_bits`` bits are >= the bucket), ``table``
int32 (Maglev), ``out`` uint64/int32.
"""

from __future__ import annotations

import numpy as np
from numba import prange

from meshstat._kernels._jit import jit, pjit
from meshstat._kernels.splitmix import splitmix64

P1 = np.uint64(0x9E3779B185EBCA87)
P2 = np.uint64(0xC2B2AE3D27D4EB4F)
P3 = np.uint64(0x165667B19E3779F9)
P4 = np.uint64(0x85EBCA77C2B2AE63)
P5 = np.uint64(0x27D4EB2F165667C5)
U64 = np.uint64


@jit(inline="always")
def _rotl(x, r):  # pragma: no cover - compiled
    return (x << U64(r)) | (x >> U64(64 - r))


@jit(inline="always")
def _read64(buf, p):  # pragma: no cover - compiled
    v = U64(0)
    for k in range(8):
        v |= U64(buf[p + k]) << U64(8 * k)
    return v


@jit(inline="always")
def _read32(buf, p):  # pragma: no cover - compiled
    v = U64(0)
    for k in range(4):
        v |= U64(buf[p + k]) << U64(8 * k)
    return v


@jit(inline="always")
def _round(acc, lane):  # pragma: no cover - compiled
    acc = acc + lane * P2
    acc = _rotl(acc, 31)
    return acc * P1


@jit(inline="always")
def _merge(acc, val):  # pragma: no cover - compiled
    acc = acc ^ _round(U64(0), val)
    return acc * P1 + P4


@jit
def xxh64(buf, start, length, seed):  # pragma: no cover - compiled
    """XXH64 of ``buf[start:start + length]`` with ``seed`` (uint64)."""
    p = start
    end = start + length
    if length >= 32:
        v1 = seed + P1 + P2
        v2 = seed + P2
        v3 = seed
        v4 = seed - P1
        limit = end - 32
        while p <= limit:
            v1 = _round(v1, _read64(buf, p))
            v2 = _round(v2, _read64(buf, p + 8))
            v3 = _round(v3, _read64(buf, p + 16))
            v4 = _round(v4, _read64(buf, p + 24))
            p += 32
        h = _rotl(v1, 1) + _rotl(v2, 7) + _rotl(v3, 12) + _rotl(v4, 18)
        h = _merge(h, v1)
        h = _merge(h, v2)
        h = _merge(h, v3)
        h = _merge(h, v4)
    else:
        h = seed + P5
    h = h + U64(length)
    while p + 8 <= end:
        h = h ^ _round(U64(0), _read64(buf, p))
        h = _rotl(h, 27) * P1 + P4
        p += 8
    if p + 4 <= end:
        h = h ^ (_read32(buf, p) * P1)
        h = _rotl(h, 23) * P2 + P3
        p += 4
    while p < end:
        h = h ^ (U64(buf[p]) * P5)
        h = _rotl(h, 11) * P1
        p += 1
    h = h ^ (h >> U64(33))
    h = h * P2
    h = h ^ (h >> U64(29))
    h = h * P3
    return h ^ (h >> U64(32))


@pjit
def xxh64_many(buf, starts, seed, out):  # pragma: no cover - compiled
    """``out[i] = XXH64(string i, seed)``."""
    m = starts.shape[0] - 1
    for i in prange(m):
        out[i] = xxh64(buf, starts[i], starts[i + 1] - starts[i], seed)


@pjit
def xxh64_numbered(literals, lit_starts, div, mod, add, indices, seed, out):  # pragma: no cover - compiled
    """``out[i] = XXH64(text of indices[i], seed)`` without building the strings.

    The text of index ``x`` is ``L0 + str(v_0) + L1 + str(v_1) + ... + L_F``:
    literal ``f`` is ``literals[lit_starts[f]:lit_starts[f + 1]]`` and number
    ``v_f = (x // div[f]) % mod[f] + add[f]`` (no modulo where ``mod[f]`` is 0),
    written in decimal without leading zeros. Each item is written to a small
    buffer of its block of 4,096 and hashed there: memory stays constant
    whatever the number of items (``"key-" + str(i)``, client addresses).
    """
    m = indices.shape[0]
    nf = div.shape[0]
    lit_len = lit_starts[nf + 1] - lit_starts[0]
    size = lit_len + 20 * nf + 8
    nblocks = (m + 4095) // 4096
    for b in prange(nblocks):
        buf = np.empty(size, dtype=np.uint8)
        digits = np.empty(20, dtype=np.uint8)
        for i in range(b * 4096, min(m, (b + 1) * 4096)):
            x = indices[i]
            p = 0
            for f in range(nf + 1):
                for j in range(lit_starts[f], lit_starts[f + 1]):
                    buf[p] = literals[j]
                    p += 1
                if f == nf:
                    break
                v = x // div[f]
                if mod[f] > 0:
                    v = v % mod[f]
                v = v + add[f]
                nd = 0
                while True:
                    digits[nd] = np.uint8(48 + v % 10)
                    nd += 1
                    v = v // 10
                    if v == 0:
                        break
                for j in range(nd):
                    buf[p] = digits[nd - 1 - j]
                    p += 1
            out[i] = xxh64(buf, 0, p, seed)


# ----------------------------------------------------------------- ring hash


@jit(inline="always")
def ring_index(ring_hashes, guide, guide_shift, h):  # pragma: no cover - compiled
    """Index of the first ring point with hash >= h, wrapping to 0 (ketama_get_server)."""
    g = h >> guide_shift
    lo = guide[g]
    hi = guide[g + U64(1)]
    # the answer lies in [lo, hi]: every point before lo is < g << shift <= h, and
    # the point at hi (if any) is >= (g + 1) << shift > h
    while lo < hi:
        mid = (lo + hi) >> 1
        if ring_hashes[mid] < h:
            lo = mid + 1
        else:
            hi = mid
    if lo == ring_hashes.shape[0]:
        lo = 0
    return lo


@pjit
def ring_lookup(ring_hashes, ring_hosts, guide, guide_bits, hashes, out):  # pragma: no cover - compiled
    """``out[i]`` = host of the ring point chosen for request hash ``hashes[i]``."""
    shift = U64(64 - guide_bits)
    for i in prange(hashes.shape[0]):
        out[i] = ring_hosts[ring_index(ring_hashes, guide, shift, hashes[i])]


@pjit
def ring_random(ring_hashes, ring_hosts, guide, guide_bits, keys, block_log2, n, out):  # pragma: no cover
    """Requests without a hash: Envoy hashes a random 64-bit value (draw ``i``)."""
    shift = U64(64 - guide_bits)
    nb = keys.shape[0]
    for b in prange(nb):
        start = np.int64(b) << block_log2
        stop = min(start + (np.int64(1) << block_log2), n)
        key = keys[np.int64(b)]
        for i in range(start, stop):
            h = splitmix64(key, U64(i - start))
            out[i] = ring_hosts[ring_index(ring_hashes, guide, shift, h)]


# ----------------------------------------------------------------- maglev


@jit
def maglev_fill(offsets, skips, weights, max_weight, table_size, table):  # pragma: no cover - compiled
    """Envoy ``OriginalMaglevTable::constructImplementationInternals``; ``table`` int32 filled with -1.

    ``offsets``/``skips`` uint64 per host (hosts sorted by key), ``weights``
    float64 normalised weights. Returns entries per host (int64).
    """
    n = offsets.shape[0]
    nxt = np.zeros(n, dtype=np.uint64)
    target = np.zeros(n, dtype=np.float64)
    count = np.zeros(n, dtype=np.int64)
    m = U64(table_size)
    filled = 0
    iteration = 1
    while filled < table_size:
        for i in range(n):
            if filled >= table_size:
                break
            if iteration * weights[i] < target[i]:
                continue
            target[i] += max_weight
            c = (offsets[i] + skips[i] * nxt[i]) % m
            while table[c] >= 0:
                nxt[i] += U64(1)
                c = (offsets[i] + skips[i] * nxt[i]) % m
            table[c] = i
            nxt[i] += U64(1)
            count[i] += 1
            filled += 1
        iteration += 1
    return count


@pjit
def maglev_lookup(table, hashes, out):  # pragma: no cover - compiled
    """``out[i] = table[hashes[i] % len(table)]`` (Envoy ``MaglevTable::chooseHost``)."""
    m = U64(table.shape[0])
    for i in prange(hashes.shape[0]):
        out[i] = table[hashes[i] % m]


@pjit
def maglev_random(table, keys, block_log2, n, out):  # pragma: no cover - compiled
    """Requests without a hash: a random 64-bit value (draw ``i``)."""
    m = U64(table.shape[0])
    nb = keys.shape[0]
    for b in prange(nb):
        start = np.int64(b) << block_log2
        stop = min(start + (np.int64(1) << block_log2), n)
        key = keys[np.int64(b)]
        for i in range(start, stop):
            out[i] = table[splitmix64(key, U64(i - start)) % m]
