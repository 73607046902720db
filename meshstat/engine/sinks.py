"""Sinks for engine output too large for memory: one column, chunk by chunk, to one Parquet file.

This is the engine's I/O (beside :mod:`meshstat.engine.seeding`), not a report:
it holds no tables, only polars' streaming Parquet writer. Used by
:func:`meshstat.simulate` for per-request destinations too many to keep in
memory: ``batches`` yields one numpy array per chunk, each is handed to
polars as it comes, and polars writes row groups as it goes, so memory stays
at about one chunk whatever the length of the run.
"""

from __future__ import annotations

import os
import signal
import threading
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
    (:func:`polars.io.plugins.register_io_source`), from one of polars' threads.
    A Ctrl-C meanwhile must not stop the main thread while that thread still
    writes (the file would reappear after the caller removed it): the next
    batch stops the stream from inside polars (see :class:`_SigintWatch`), and
    :class:`KeyboardInterrupt` is raised once polars has returned. A failed or
    interrupted write leaves a partial file: :func:`meshstat.simulate` writes to
    ``FILE.partial`` and renames it only when the whole run succeeded.
    """
    from polars.io.plugins import register_io_source

    pl_dtype = _DTYPES[np.dtype(dtype)]
    stop = _SigintWatch()

    def source(
        with_columns: object, predicate: object, n_rows: object, batch_size: object
    ) -> Iterator[pl.DataFrame]:
        for arr in batches:
            if stop.pending():
                raise _Interrupted("interrupted")
            yield pl.DataFrame({column: pl.Series(column, arr, dtype=pl_dtype)})

    with stop:
        try:
            register_io_source(source, schema={column: pl_dtype}).sink_parquet(path, row_group_size=1 << 20)
        except Exception:
            if stop.seen:
                raise KeyboardInterrupt from None
            raise
    if stop.seen:
        raise KeyboardInterrupt


class _SigintWatch:
    """Notice Ctrl-C from any thread while the main thread waits inside polars.

    Python runs signal handlers in the main thread only, and polars' collect
    does not let it run them; but the C-level handler writes the signal number
    to the wakeup file descriptor (:func:`signal.set_wakeup_fd`) at once. The
    batch generator polls that pipe. Outside the main thread this does nothing.
    """

    def __init__(self) -> None:
        self.seen = False
        self._active = threading.current_thread() is threading.main_thread()

    def __enter__(self) -> _SigintWatch:
        if self._active:
            self._r, self._w = os.pipe()
            os.set_blocking(self._r, False)
            os.set_blocking(self._w, False)
            self._old_fd = signal.set_wakeup_fd(self._w, warn_on_full_buffer=False)
            self._old_handler = signal.signal(signal.SIGINT, self._handler)
        return self

    def _handler(self, signum: int, frame: object) -> None:
        self.seen = True

    def pending(self) -> bool:
        if self._active and not self.seen:
            try:
                data = os.read(self._r, 512)
            except BlockingIOError:
                data = b""
            self.seen = signal.SIGINT in data
        return self.seen

    def __exit__(self, *exc: object) -> None:
        if self._active:
            self.pending()  # a Ctrl-C that came after the last batch
            signal.signal(signal.SIGINT, self._old_handler)
            signal.set_wakeup_fd(self._old_fd)
            os.close(self._r)
            os.close(self._w)


class _Interrupted(Exception):
    """Raised inside the batch generator to stop polars' stream after a Ctrl-C."""
