"""Sinks for engine output too large for memory: one column, chunk by chunk, to one Parquet file.

This is the engine's I/O (layer 3, beside :mod:`meshstat.seeding`), not a report:
it holds no tables, only polars' streaming Parquet writer. Used by :func:`meshstat.simulate` for per-request destinations too many to keep
in memory: ``batches`` yields one numpy array per chunk, each is handed to
polars as it comes, and polars writes row groups as it goes, so memory stays
at about one chunk whatever the length of the run.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import numpy as np
import polars as pl

__all__ = ["sink_parquet_column"]

_DTYPES = {
    np.dtype(np.uint8): pl.UInt8,
    np.dtype(np.uint16): pl.UInt16,
    np.dtype(np.uint32): pl.UInt32,
    np.dtype(np.int64): pl.Int64,
}


def sink_parquet_column(path: str, column: str, dtype: np.dtype, batches: Iterator[np.ndarray]) -> None:
    """Stream ``batches`` (1-D arrays of ``dtype``) into column ``column`` of the Parquet file ``path``.

    The batches are pulled by polars' streaming engine through an IO plugin
    (:func:`polars.io.plugins.register_io_source`). The file is removed if a
    batch raises (including :class:`KeyboardInterrupt`).
    """
    from polars.io.plugins import register_io_source

    pl_dtype = _DTYPES[np.dtype(dtype)]

    def source(
        with_columns: object, predicate: object, n_rows: object, batch_size: object
    ) -> Iterator[pl.DataFrame]:
        for arr in batches:
            yield pl.DataFrame({column: pl.Series(column, arr, dtype=pl_dtype)})

    try:
        register_io_source(source, schema={column: pl_dtype}).sink_parquet(path, row_group_size=1 << 20)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(path)
        raise
