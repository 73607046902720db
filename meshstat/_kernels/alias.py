"""The alias-table decode, written once and inlined into every kernel that samples an alias table.

A table of :func:`meshstat.compiler.alias_table` has ``K = 2**bits`` columns,
entry ``j`` packed as ``(threshold_j << bits) | alias_j``. A uniform 64-bit draw
``r`` picks column ``j = r >> (64 - bits)`` and keeps it iff its low
``64 - bits`` bits are below ``threshold_j``, else goes to ``alias_j``: exact,
since every column holds ``2**(64 - bits)`` units of mass.
"""

from __future__ import annotations

import numpy as np

from meshstat._kernels._jit import jit

U64 = np.uint64


@jit(inline="always")
def alias_column(table, bits, r):  # pragma: no cover - compiled
    """The column (uint64) that draw ``r`` (uint64) picks in ``table`` (uint64[2**bits], ``bits >= 1``)."""
    bsh = U64(bits)
    shift = U64(64 - bits)
    low_mask = (U64(1) << shift) - U64(1)
    amask = (U64(1) << bsh) - U64(1)
    j = r >> shift
    e = table[j]
    return j if (r & low_mask) < (e >> bsh) else (e & amask)


@jit
def alias_build(mass, bits, table):  # pragma: no cover - compiled
    """Vose's alias table of integer masses (uint64[2**bits], each below ``2**64``, summing to ``2**64``).

    The same construction as :func:`meshstat.compiler.alias_table`, step for
    step (stacks of the small and the large columns in index order, popped
    from the end, a topped-up column pushed back on its stack), so the table is
    identical; ``mass`` is used up. Writes ``table`` and returns False if mass
    was lost (impossible for masses summing to ``2**64``).
    """
    ncol = mass.shape[0]
    shift = U64(64 - bits)
    cap = U64(1) << shift
    bsh = U64(bits)
    small = np.empty(ncol, dtype=np.int64)
    large = np.empty(ncol, dtype=np.int64)
    ns = 0
    nl = 0
    for j in range(ncol):
        if mass[j] < cap:
            small[ns] = j
            ns += 1
        else:
            large[nl] = j
            nl += 1
    while ns > 0 and nl > 0:
        ns -= 1
        s = small[ns]
        nl -= 1
        g = large[nl]
        table[s] = (mass[s] << bsh) | U64(g)
        mass[g] -= cap - mass[s]
        if mass[g] < cap:
            small[ns] = g
            ns += 1
        else:
            large[nl] = g
            nl += 1
    ok = True
    for t in range(ns):
        j = small[t]
        ok = ok and mass[j] == cap
        table[j] = U64(j)
    for t in range(nl):
        j = large[t]
        ok = ok and mass[j] == cap
        table[j] = U64(j)
    return ok
