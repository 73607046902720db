"""Seeds and block streams: the reproducibility contract.

``rng`` is accepted everywhere in one form (SPEC 7): ``None`` (fresh OS
entropy), an ``int`` seed, a :class:`numpy.random.SeedSequence`, or a
:class:`numpy.random.Generator` (from which a fresh seed is drawn, so the
generator advances). It becomes a root :class:`~numpy.random.SeedSequence`
whose ``entropy`` is recorded in every result: passing that integer back as
``rng`` replays the run exactly.

Per-request work is cut into blocks of ``2**block_log2`` requests; block ``b``
draws from the counter-based SplitMix64 stream keyed by the first 64-bit word
of ``root.spawn(n_blocks)[b]``. Results therefore depend on the seed, ``n`` and
the block size, never on the number of threads.
"""

from __future__ import annotations

import numpy as np

from meshstat.errors import InvalidArgument

__all__ = ["BLOCK_LOG2", "BLOCK_SIZE", "block_keys", "root_seed_sequence"]

#: log2 of the requests per block (the unit of parallel work and of stream spawning).
BLOCK_LOG2 = 18
#: Requests per block: 262,144.
BLOCK_SIZE = 1 << BLOCK_LOG2


def root_seed_sequence(rng: None | int | np.random.SeedSequence | np.random.Generator) -> np.random.SeedSequence:
    """Turn ``rng`` into the root SeedSequence of a run (see the module docstring)."""
    if rng is None:
        return np.random.SeedSequence()
    if isinstance(rng, np.random.SeedSequence):
        return rng
    if isinstance(rng, np.random.Generator):
        return np.random.SeedSequence(int(rng.integers(0, 2**63 - 1, dtype=np.int64)))
    if isinstance(rng, bool) or not isinstance(rng, int | np.integer):
        raise InvalidArgument(f"rng must be None, an int seed, a SeedSequence or a Generator, got {rng!r}")
    if int(rng) < 0:
        raise InvalidArgument(f"seed must be non-negative, got {rng}")
    return np.random.SeedSequence(int(rng))


def block_keys(root: np.random.SeedSequence, n_blocks: int) -> np.ndarray:
    """One uint64 SplitMix64 key per block, from ``root.spawn(n_blocks)``.

    Spawning advances ``root``'s child counter, as numpy's ``spawn`` always does,
    so callers pass a fresh root per run.
    """
    keys = np.empty(n_blocks, dtype=np.uint64)
    for b, child in enumerate(root.spawn(n_blocks)):
        keys[b] = child.generate_state(1, np.uint64)[0]
    return keys
