"""Counter-based SplitMix64: the ``u``-th 64-bit draw of a stream with key ``key``.

``splitmix64(key, u) = mix(key + (u + 1) * GAMMA)``, with ``GAMMA =
0x9E3779B97F4A7C15`` and ``mix`` the SplitMix64 finaliser (Steele, Lea and
Flood, "Fast splittable pseudorandom number generators", OOPSLA 2014; the
same sequence as Java's ``SplittableRandom`` and the usual seeder of xoshiro).
Being stateless, any draw can be computed directly, which makes results
independent of thread count and lets a window or block be regenerated alone.
Keys come from ``numpy.random.SeedSequence.spawn`` (one child per block), so
blocks are statistically independent streams.

All arithmetic is ``uint64``: a Python ``int`` mixed in would turn the
pipeline into ``int64``/``float64`` (numba's type unification of mixed
signed and unsigned integers).
"""

from __future__ import annotations

import numpy as np

from meshstat._kernels._jit import jit

GAMMA = np.uint64(0x9E3779B97F4A7C15)
M1 = np.uint64(0xBF58476D1CE4E5B9)
M2 = np.uint64(0x94D049BB133111EB)
S30 = np.uint64(30)
S27 = np.uint64(27)
S31 = np.uint64(31)
ONE = np.uint64(1)


@jit(inline="always")
def splitmix64(key, u):  # pragma: no cover - compiled
    """Draw ``u`` (0-based, uint64) of the stream ``key`` (uint64)."""
    z = key + (u + ONE) * GAMMA
    z = (z ^ (z >> S30)) * M1
    z = (z ^ (z >> S27)) * M2
    return z ^ (z >> S31)
