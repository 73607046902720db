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
from typing import IO

import numpy as np
import polars as pl

__all__ = ["sink_parquet_column"]

_DTYPES = {
    np.dtype(np.uint8): pl.UInt8,
    np.dtype(np.uint16): pl.UInt16,
    np.dtype(np.uint32): pl.UInt32,
    np.dtype(np.int64): pl.Int64,
}


def sink_parquet_column(
    path: str | IO[bytes], column: str, dtype: np.dtype, batches: Iterator[np.ndarray]
) -> None:
    """Stream ``batches`` (1-D arrays of ``dtype``) into column ``column`` of a Parquet file.

    ``path`` is a file name or a binary file open for writing (the temporary
    file of a :class:`meshstat.outputs.OutputFile`). The batches are pulled by
    polars' streaming engine through an IO plugin
    (:func:`polars.io.plugins.register_io_source`), from one of polars' threads.
    A Ctrl-C (or a SIGTERM or SIGHUP the command line turned into
    :class:`~meshstat.errors.Terminated`) meanwhile must not stop the main
    thread while that thread still writes (the file would reappear after the
    caller removed it): the next batch stops the stream from inside polars (see
    :class:`_SignalWatch`), and the signal's own handler runs once polars has
    returned, raising its exception here. A failed or interrupted write leaves a
    partial file: :func:`meshstat.simulate` writes to a temporary file and
    renames it only when the whole run succeeded.
    """
    from polars.io.plugins import register_io_source

    pl_dtype = _DTYPES[np.dtype(dtype)]
    stop = _SignalWatch()

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
            if stop.seen is not None:
                stop.deliver(stopped=True)
            raise
    if stop.seen is not None:
        stop.deliver(stopped=False)


#: The signals that stop a stream: Ctrl-C, and SIGTERM and SIGHUP where the platform has them.
_SIGNALS = tuple(
    getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name)
)


class _SignalWatch:
    """Notice a signal from any thread while the main thread waits inside polars.

    Python runs signal handlers in the main thread only, and polars' collect
    does not let it run them; but the C-level handler writes the signal number
    to the wakeup file descriptor (:func:`signal.set_wakeup_fd`) at once. The
    batch generator polls that pipe. Only signals that already have a Python
    handler are watched (Ctrl-C's :func:`signal.default_int_handler`, the
    command line's SIGTERM and SIGHUP handlers); one that is ignored stays
    ignored, and one with the default action keeps it. After the stream,
    :meth:`deliver` calls the handler that was replaced, which raises its
    exception. Outside the main thread this does nothing.
    """

    def __init__(self) -> None:
        self.seen: int | None = None
        self._active = threading.current_thread() is threading.main_thread()
        self._old: dict[int, object] = {}

    def __enter__(self) -> _SignalWatch:
        if self._active:
            self._r, self._w = os.pipe()
            os.set_blocking(self._r, False)
            os.set_blocking(self._w, False)
            self._old_fd = signal.set_wakeup_fd(self._w, warn_on_full_buffer=False)
            for sig in _SIGNALS:
                old = signal.getsignal(sig)
                if callable(old):
                    self._old[sig] = old
                    signal.signal(sig, self._handler)
        return self

    def _handler(self, signum: int, frame: object) -> None:
        if self.seen is None:
            self.seen = signum

    def pending(self) -> bool:
        if self._active and self.seen is None:
            try:
                data = os.read(self._r, 512)
            except BlockingIOError:
                data = b""
            for sig in data:
                if sig in self._old:
                    self.seen = sig
                    break
        return self.seen is not None

    def deliver(self, *, stopped: bool) -> None:
        """Run the replaced handler of the signal that came (it raises KeyboardInterrupt or Terminated).

        ``stopped``: the stream was cut short; a handler that returns then
        still ends the write with :class:`KeyboardInterrupt`.
        """
        sig = self.seen
        if sig is None:
            return
        handler = self._old.get(sig)
        if callable(handler):
            handler(sig, None)
        if stopped:
            raise KeyboardInterrupt

    def __exit__(self, *exc: object) -> None:
        if self._active:
            self.pending()  # a signal that came after the last batch
            for sig, old in self._old.items():
                signal.signal(sig, old)  # type: ignore[arg-type]
            signal.set_wakeup_fd(self._old_fd)
            os.close(self._r)
            os.close(self._w)


class _Interrupted(Exception):
    """Raised inside the batch generator to stop polars' stream after a signal."""
