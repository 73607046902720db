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
