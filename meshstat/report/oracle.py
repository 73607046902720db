"""Table for ``meshstat validate``: the model against the real system, per backend.

Schema of :func:`validation_frame` (one row per backend):

==============  =======  ====================================================
column          dtype    meaning
==============  =======  ====================================================
system          str      ``netfilter``, ``nftables``, ``envoy``, ``nginx``
backend         str      backend name
address         str      where it listens (inside the harness)
expected        f64      model share (float of ``expected_exact``)
expected_exact  str      exact model share as a fraction
expected_count  f64      ``n * expected``
count           i64      what the real system did
observed        f64      ``count / n``
n               i64      connections or requests counted
==============  =======  ====================================================
"""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction

import polars as pl

from meshstat.model import share_text
from meshstat.report.text import Column, count, sig

__all__ = ["VALIDATION_COLUMNS", "validation_frame"]

#: Default columns of :func:`validation_frame`.
VALIDATION_COLUMNS = (
    Column("BACKEND", "backend", shrink=True),
    Column("ADDRESS", "address", lambda v: v or "-", shrink=True),
    Column("EXPECTED", "expected", sig(6), "right"),
    Column("COUNT", "count", count, "right"),
    Column("OBSERVED", "observed", sig(6), "right"),
)


def validation_frame(
    system: str,
    names: Sequence[str],
    addresses: Sequence[str | None],
    shares: Sequence[Fraction],
    counts: Sequence[int],
) -> pl.DataFrame:
    """One row per backend: exact model share, expected and observed counts."""
    n = int(sum(counts))
    return pl.DataFrame(
        {
            "system": [system] * len(names),
            "backend": list(names),
            "address": [a or "" for a in addresses],
            "expected": [float(s) for s in shares],
            "expected_exact": [share_text(s) for s in shares],
            "expected_count": [n * float(s) for s in shares],
            "count": [int(c) for c in counts],
            "observed": [c / n if n else 0.0 for c in counts],
            "n": [n] * len(names),
        },
        schema={
            "system": pl.String(), "backend": pl.String(), "address": pl.String(), "expected": pl.Float64(),
            "expected_exact": pl.String(), "expected_count": pl.Float64(), "count": pl.Int64(),
            "observed": pl.Float64(), "n": pl.Int64(),
        },
    )
