"""The engine's chunks: runs cut into ranges of blocks (or windows), their keys, progress and streamed output.

A run of ``n`` requests is routed chunk by chunk (:class:`Chunks`, sized to take
about :data:`CHUNK_SECONDS` each), so that memory stays bounded, Ctrl-C and
progress are served between chunks, and per-request destinations can be
streamed to a Parquet file as they come (:func:`stream_destinations`). The
block keys of a chunk are made as it comes (:class:`KeySpawner`) and equal
:func:`meshstat.engine.seeding.block_keys` of the whole run, so chunk sizes
never change a result.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import IO

import numpy as np

from meshstat.engine import seeding

__all__ = ["CHUNK_SECONDS", "Chunks", "KeySpawner", "Progress", "stream_destinations"]

#: Seconds a chunk should take: chunks grow or shrink (in whole units) towards it.
CHUNK_SECONDS = 0.25


class KeySpawner:
    """Block keys of one run, made chunk by chunk (``root.spawn`` counts its children).

    ``keys(b0, b1)`` returns the keys of blocks ``[b0, b1)``; requests go forward,
    so only keys from the last call's start on are kept. The keys equal
    :func:`meshstat.engine.seeding.block_keys` of the whole run.
    """

    def __init__(self, root: np.random.SeedSequence) -> None:
        # a copy: ``root`` itself is not advanced, so that a second pass gets the same keys
        self._root = np.random.SeedSequence(
            root.entropy,
            spawn_key=root.spawn_key,
            pool_size=root.pool_size,
            n_children_spawned=root.n_children_spawned,
        )
        self._first = 0
        self._keys = np.zeros(0, dtype=np.uint64)

    def keys(self, b0: int, b1: int) -> np.ndarray:
        have = self._first + len(self._keys)
        if b0 < self._first:  # pragma: no cover - the engine only goes forward
            raise AssertionError("block keys are made in order")
        if b1 > have:
            if b0 > have:  # skip the blocks never asked for: spawn their children, keep none
                seeding.block_keys(self._root, b0 - have)
                self._keys, self._first, have = self._keys[:0], b0, b0
            fresh = seeding.block_keys(self._root, b1 - have)
            self._keys = np.concatenate([self._keys[b0 - self._first :], fresh])
            self._first = b0
        return self._keys[b0 - self._first : b1 - self._first]


class Chunks:
    """Ranges ``[u0, u1)`` of units (blocks, or windows) covering ``0 .. total``.

    A range holds ``size`` units at first, then twice or half as many (within
    ``[1, max_size]``) so that each takes about :data:`CHUNK_SECONDS`. Between
    ranges Python runs: Ctrl-C raises :class:`KeyboardInterrupt` there. Chunk
    sizes never change a result: every draw is a function of the seed, the
    block and the offset in the block.
    """

    def __init__(self, total: int, size: int, max_size: int) -> None:
        self.total = total
        self.size = min(size, max_size)
        self.max_size = max_size

    def __iter__(self) -> Iterator[tuple[int, int]]:
        u0 = 0
        while u0 < self.total:
            u1 = min(self.total, u0 + self.size)
            t = time.perf_counter()
            yield u0, u1
            took = time.perf_counter() - t
            if took < CHUNK_SECONDS / 2 and self.size < self.max_size:
                self.size = min(self.max_size, 2 * self.size)
            elif took > CHUNK_SECONDS * 2 and self.size > 1:
                self.size //= 2
            u0 = u1


class Progress:
    """Calls ``progress(done, total)`` as requests are routed, and ``progress.close()`` at the end."""

    def __init__(self, progress: Callable[[int, int], None] | None, total: int) -> None:
        self.progress = progress
        self.total = total
        self.done = 0

    def add(self, k: int) -> None:
        self.done += k
        if self.progress is not None:
            self.progress(self.done, self.total)

    def close(self) -> None:
        close = getattr(self.progress, "close", None)
        if close is not None:
            close()


def stream_destinations(
    out: IO[bytes], chunks: Chunks, run_chunk: Callable[[int, int], np.ndarray | None], dtype: np.dtype
) -> None:
    """Write every chunk's destinations to one Parquet file as they come.

    ``out`` is the temporary file of a :class:`meshstat.outputs.OutputFile`;
    the caller commits or discards it.
    """
    from meshstat.engine.sinks import sink_parquet_column

    def batches() -> Iterator[np.ndarray]:
        for b0, b1 in chunks:
            out = run_chunk(b0, b1)
            assert out is not None
            yield out

    sink_parquet_column(out, "backend", dtype, batches())
