"""Routing kernels: per-request destinations and per-window counts.

Four samplers, each in two shapes (``*_dest`` writes one destination per
request and tallies each block into ``counts[b]``, ``*_windows`` counts per
window of ``window`` requests; counts of a whole run without destinations are
the windows kernel with ``window = block size``, summed):

``bernoulli``  two backends: backend 1 iff ``r >= t`` (``t`` = mass of backend 0 in ``2**-64``).
``alias``      any distribution whose masses are integers summing to ``2**64``: a
               Vose alias table with ``K = 2**bits`` columns, column ``r >> (64 - bits)``,
               kept iff the low ``64 - bits`` bits are below its threshold, else its alias.
               Exact: every column holds ``2**(64-bits)`` units of mass.
``cascade``    iptables ``-m statistic`` rules, faithfully: a fresh 31-bit draw
               ``(u32 & 0x7FFFFFFF)`` per rule, first ``x < k_j`` wins, ``m`` (the
               unconditional rule or the fall-through) if none.
``envoy``      Envoy weighted clusters, faithfully: ``v = r % total``, first cluster
               whose cumulative end exceeds ``v``.

Layout of the random stream (the reproducibility contract): request ``i`` lies
in block ``b = i >> block_log2`` at offset ``o = i - (b << block_log2)``; the
bernoulli, alias and envoy samplers use draw ``o`` of ``keys[b]``; the cascade
uses draws ``o * M + j // 2`` (``M = ceil(m / 2)``), rule ``j`` taking the low
32 bits for even ``j`` and the high 32 bits for odd ``j``.

Chunks: the engine calls the kernels chunk by chunk (so that memory stays
bounded and Ctrl-C and progress are served between calls). A ``*_dest`` call
gets the keys, the output and the tallies of whole blocks only, so its request
indices are chunk-local and its draws unchanged. A ``*_windows`` call gets
``keys[b0:...]`` (``keys[b - b0]`` is the key of global block ``b``) and fills
rows ``w0 .. w0 + len(out) - 1`` of the global windows; ``n`` is the run's total.

Arrays: ``keys`` uint64[n_blocks]; ``table`` uint64[K] packed
``(threshold << bits) | alias``; ``thresholds`` uint64[m]; ``cum`` uint64[k]
(cumulative weight ends); ``out`` uint8/uint16/uint32[n] or int64[n_windows, K];
``counts`` int64[n_blocks, K] (zeroed).
"""

from __future__ import annotations

import numpy as np
from numba import prange

from meshstat._kernels._jit import jit, pjit
from meshstat._kernels.alias import alias_column
from meshstat._kernels.splitmix import splitmix64

U31 = np.uint64(0x7FFFFFFF)
S32 = np.uint64(32)


# ----------------------------------------------------------------- bernoulli (k = 2)


@pjit
def bernoulli_dest(t, keys, block_log2, n, out, counts):  # pragma: no cover - compiled
    """``out[i] = 1`` iff draw ``i`` is ``>= t`` (uint64); ``counts[b]`` gets block ``b``'s tally."""
    nb = keys.shape[0]
    for b in prange(nb):
        start = np.int64(b) << block_log2
        stop = min(start + (np.int64(1) << block_log2), n)
        key = keys[np.int64(b)]
        o = out[start:stop]  # a block-local view with a 0-based index vectorises (~2x)
        m = stop - start
        ones = np.int64(0)
        for u in range(m):
            r = splitmix64(key, np.uint64(u))
            one = np.uint8(r >= t)
            o[u] = one
            ones += one
        counts[b, 1] = ones
        counts[b, 0] = m - ones


@pjit
def bernoulli_windows(t, keys, b0, block_log2, n, window, w0, out):  # pragma: no cover - compiled
    """Counts of backends 0 and 1 per window; ``out`` int64[n_windows, 2] (zeroed)."""
    nw = out.shape[0]
    for w in prange(nw):
        lo = (w0 + np.int64(w)) * window
        hi = min(lo + window, n)
        ones = np.int64(0)
        i = lo
        while i < hi:
            b = i >> block_log2
            base = b << block_log2
            seg = min(hi, base + (np.int64(1) << block_log2))
            key = keys[b - b0]
            for u in range(i - base, seg - base):
                ones += np.int64(splitmix64(key, np.uint64(u)) >= t)
            i = seg
        out[w, 1] += ones
        out[w, 0] += (hi - lo) - ones


# ----------------------------------------------------------------- alias (any k)


@pjit
def alias_dest(table, bits, keys, block_log2, n, out, counts):  # pragma: no cover - compiled
    """Alias-table destinations (``bits >= 1``); ``counts[b]`` gets block ``b``'s tally."""
    nb = keys.shape[0]
    for b in prange(nb):
        start = np.int64(b) << block_log2
        stop = min(start + (np.int64(1) << block_log2), n)
        key = keys[np.int64(b)]
        o = out[start:stop]
        c = counts[b]
        for u in range(stop - start):
            sel = alias_column(table, bits, splitmix64(key, np.uint64(u)))
            o[u] = sel
            c[sel] += 1


@pjit
def alias_windows(table, bits, keys, b0, block_log2, n, window, w0, out):  # pragma: no cover - compiled
    """Alias-table counts per window; ``out`` int64[n_windows, K] (zeroed)."""
    nw = out.shape[0]
    for w in prange(nw):
        lo = (w0 + np.int64(w)) * window
        hi = min(lo + window, n)
        i = lo
        while i < hi:
            b = i >> block_log2
            base = b << block_log2
            seg = min(hi, base + (np.int64(1) << block_log2))
            key = keys[b - b0]
            row = out[w]
            for u in range(i - base, seg - base):
                row[alias_column(table, bits, splitmix64(key, np.uint64(u)))] += 1
            i = seg


# ----------------------------------------------------------------- faithful iptables cascade


@jit(inline="always")
def _cascade_pick(thresholds, key, base):  # pragma: no cover - compiled
    """First rule whose 31-bit draw is below its threshold, two rules per 64-bit word.

    Rule ``j`` uses word ``base + j // 2``: the low half for even ``j``, the high
    half for odd ``j``. Both rules of a word are tested with one branch (half the
    branches of one test per rule; ``benchmarks/test_bench_route.py`` times the
    faithful cascade); the lower rule wins, so the result is the sequential first match.
    """
    m = thresholds.shape[0]
    pairs = m >> 1
    for q in range(pairs):
        w = splitmix64(key, base + np.uint64(q))
        hit0 = (w & U31) < thresholds[2 * q]
        hit1 = ((w >> S32) & U31) < thresholds[2 * q + 1]
        if hit0 or hit1:
            return 2 * q if hit0 else 2 * q + 1
    if m & 1:
        w = splitmix64(key, base + np.uint64(pairs))
        if (w & U31) < thresholds[m - 1]:
            return m - 1
    return m


@pjit
def cascade_dest(thresholds, keys, block_log2, n, out, counts):  # pragma: no cover - compiled
    """First rule ``j`` with ``(u32 & 0x7FFFFFFF) < thresholds[j]``, else ``m``; tallies per block."""
    nb = keys.shape[0]
    m = thresholds.shape[0]
    words = np.uint64((m + 1) // 2)
    for b in prange(nb):
        start = np.int64(b) << block_log2
        stop = min(start + (np.int64(1) << block_log2), n)
        key = keys[np.int64(b)]
        o = out[start:stop]
        c = counts[b]
        for u in range(stop - start):
            sel = _cascade_pick(thresholds, key, np.uint64(u) * words)
            o[u] = sel
            c[sel] += 1


@pjit
def cascade_windows(thresholds, keys, b0, block_log2, n, window, w0, out):  # pragma: no cover - compiled
    """Faithful cascade counts per window; ``out`` int64[n_windows, m + 1] (zeroed)."""
    nw = out.shape[0]
    m = thresholds.shape[0]
    words = np.uint64((m + 1) // 2)
    for wi in prange(nw):
        lo = (w0 + np.int64(wi)) * window
        hi = min(lo + window, n)
        i = lo
        while i < hi:
            b = i >> block_log2
            base_i = b << block_log2
            seg = min(hi, base_i + (np.int64(1) << block_log2))
            key = keys[b - b0]
            row = out[wi]
            for u in range(i - base_i, seg - base_i):
                row[_cascade_pick(thresholds, key, np.uint64(u) * words)] += 1
            i = seg


# ----------------------------------------------------------------- faithful Envoy weighted clusters


@pjit
def envoy_dest(cum, total, keys, block_log2, n, out, counts):  # pragma: no cover - compiled
    """``v = r % total``; first ``i`` with ``cum[i] > v`` (binary search); tallies per block."""
    nb = keys.shape[0]
    k = cum.shape[0]
    for b in prange(nb):
        start = np.int64(b) << block_log2
        stop = min(start + (np.int64(1) << block_log2), n)
        key = keys[np.int64(b)]
        o = out[start:stop]
        c = counts[b]
        for u in range(stop - start):
            v = splitmix64(key, np.uint64(u)) % total
            lo = 0
            hi = k - 1
            while lo < hi:
                mid = (lo + hi) >> 1
                if cum[mid] > v:
                    hi = mid
                else:
                    lo = mid + 1
            o[u] = lo
            c[lo] += 1


@pjit
def envoy_windows(cum, total, keys, b0, block_log2, n, window, w0, out):  # pragma: no cover - compiled
    """Faithful Envoy counts per window; ``out`` int64[n_windows, k] (zeroed)."""
    nw = out.shape[0]
    k = cum.shape[0]
    for w in prange(nw):
        lo_i = (w0 + np.int64(w)) * window
        hi_i = min(lo_i + window, n)
        i = lo_i
        while i < hi_i:
            b = i >> block_log2
            base = b << block_log2
            seg = min(hi_i, base + (np.int64(1) << block_log2))
            key = keys[b - b0]
            row = out[w]
            for u in range(i - base, seg - base):
                v = splitmix64(key, np.uint64(u)) % total
                lo = 0
                hi = k - 1
                while lo < hi:
                    mid = (lo + hi) >> 1
                    if cum[mid] > v:
                        hi = mid
                    else:
                        lo = mid + 1
                row[lo] += 1
            i = seg
