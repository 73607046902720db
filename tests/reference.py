"""Pure-Python reference twins of every kernel (stumpy's naive.py role).

Obviously-correct loops over the same counter-based random stream; tests
compare the numba kernels with them exactly.
"""

from __future__ import annotations

from fractions import Fraction

MASK64 = (1 << 64) - 1
GAMMA = 0x9E3779B97F4A7C15


def splitmix64(key: int, u: int) -> int:
    """Draw u of stream key (see meshstat._kernels.splitmix)."""
    z = (key + (u + 1) * GAMMA) & MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
    return z ^ (z >> 31)


def draw(keys: list[int], block_log2: int, i: int, sub: int = 0, words: int = 1) -> int:
    b = i >> block_log2
    o = i - (b << block_log2)
    return splitmix64(keys[b], o * words + sub)


def pick_by_masses(masses: list[int], r: int) -> int:
    """Inverse-CDF on integer masses summing to 2**64: first i with r < cum_i.

    Not the kernel's mapping (alias), but the same distribution; used to test
    distributions, not streams.
    """
    acc = 0
    for i, m in enumerate(masses):
        acc += m
        if r < acc:
            return i
    raise AssertionError("masses must sum to 2**64")


def bernoulli_pick(t: int, r: int) -> int:
    return 1 if r >= t else 0


def alias_pick(columns: list[tuple[int, int]], bits: int, r: int) -> int:
    """columns[j] = (threshold, alias); column = top bits, keep iff low bits < threshold."""
    j = r >> (64 - bits)
    low = r & ((1 << (64 - bits)) - 1)
    thr, alias = columns[j]
    return j if low < thr else alias


def cascade_pick(thresholds: list[int], keys: list[int], block_log2: int, i: int) -> int:
    """iptables: rule j draws a fresh 31-bit number; first x < k_j wins; else len(thresholds)."""
    m = len(thresholds)
    words = (m + 1) // 2
    for j, k in enumerate(thresholds):
        w = draw(keys, block_log2, i, j // 2, words)
        x = (w & 0xFFFFFFFF) if j % 2 == 0 else (w >> 32)
        if (x & 0x7FFFFFFF) < k:
            return j
    return m


def envoy_pick(weights: list[int], r: int) -> int:
    """Envoy pickWeightedCluster: v = r % total, intervals in config order."""
    total = sum(weights)
    v = r % total
    begin = 0
    for i, w in enumerate(weights):
        if begin <= v < begin + w:
            return i
        begin += w
    raise AssertionError("unreachable")


def cascade_shares(thresholds: list[int]) -> list[Fraction]:
    """First-match probabilities, written as plainly as possible."""
    out = []
    rest = Fraction(1)
    for k in thresholds:
        p = Fraction(k, 2**31)
        out.append(rest * p)
        rest *= 1 - p
    out.append(rest)
    return out


def lround(x: float) -> int:
    """C lround for x >= 0 via exact Fraction arithmetic."""
    f = Fraction(x)
    fl = f.numerator // f.denominator
    return fl + (1 if f - fl >= Fraction(1, 2) else 0)
