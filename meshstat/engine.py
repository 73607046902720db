"""Route synthetic requests through a compiled route: the engine's public entry point."""

from __future__ import annotations

import functools
import math
import os
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from fractions import Fraction

import numpy as np

from meshstat import seeding
from meshstat.compiler import Plan, compile_route, dest_dtype
from meshstat.errors import InvalidArgument
from meshstat.model import Backend, Route, Stage
from meshstat.results import SimulationResult

__all__ = ["AUTO_PER_REQUEST_LIMIT", "MAX_DESTINATIONS", "MAX_WINDOW_CELLS", "compare", "simulate"]

#: ``mode="auto"`` routes every request through the kernels up to this n
#: (about 20 s at 500 M requests/s on 2 cores), and draws exact counts beyond.
AUTO_PER_REQUEST_LIMIT = 10**10
#: Largest n whose per-request destinations are kept in memory (one byte each for
#: k <= 256); beyond it ``destinations=True`` streams them to a Parquet file.
MAX_DESTINATIONS = 2**28
#: Requests in the first chunk of a run; chunks then grow or shrink (in whole
#: blocks, up to :data:`MAX_CHUNK_REQUESTS`) to take about :data:`CHUNK_SECONDS`.
CHUNK_REQUESTS = 1 << 22
MAX_CHUNK_REQUESTS = 1 << 28
CHUNK_SECONDS = 0.25
#: Largest ``n_windows * n_backends`` kept in memory.
MAX_WINDOW_CELLS = 2 * 10**8

_MODES = ("auto", "exact", "per_request", "faithful")


def _as_route(route: Route | Stage | Backend) -> Route:
    if isinstance(route, Route):
        return route
    if isinstance(route, Stage | Backend):
        return Route(root=route, name=getattr(route, "name", None) or "route")
    raise InvalidArgument(f"route must be a Route, Stage or Backend, got {type(route).__name__}")


def _simulate_iv(
    n: object, mode: str, window: object, destinations: object, block_log2: int
) -> tuple[int, str, int | None]:
    if isinstance(n, bool) or not isinstance(n, int | np.integer):
        if isinstance(n, float) and n.is_integer():
            n = int(n)
        else:
            raise InvalidArgument(f"n must be a positive integer, got {n!r}")
    n = int(n)
    if not 1 <= n <= 2**63 - 1:
        raise InvalidArgument(f"n must be in [1, 2**63-1], got {n}")
    mode = mode.replace("-", "_")
    if mode not in _MODES:
        raise InvalidArgument(f"mode must be one of {', '.join(_MODES)}, got {mode!r}")
    w: int | None = None
    if window is not None:
        if isinstance(window, bool) or not isinstance(window, int | np.integer) or int(window) < 1:
            raise InvalidArgument(f"window must be a positive integer, got {window!r}")
        w = int(window)
    if destinations is not False:
        if not isinstance(destinations, bool | str | os.PathLike):
            raise InvalidArgument(f"destinations must be a bool or a file path, got {destinations!r}")
        if mode == "exact":
            raise InvalidArgument(
                "destinations need per-request routing: use mode='per_request' or 'faithful'"
            )
    if not 8 <= block_log2 <= 30:
        raise InvalidArgument(f"block_log2 must be within [8, 30], got {block_log2}")
    return n, mode, w


def simulate(
    route: Route | Stage | Backend,
    n: int,
    *,
    rng: int | np.random.SeedSequence | np.random.Generator | None = None,
    mode: str = "auto",
    window: int | None = None,
    destinations: bool | str | os.PathLike[str] = False,
    block_log2: int = seeding.BLOCK_LOG2,
    progress: Callable[[int, int], None] | None = None,
) -> SimulationResult:
    """Route ``n`` requests (or connections) through ``route``.

    Parameters
    ----------
    route : Route, Stage or Backend
        What to simulate (see :mod:`meshstat.model`).
    n : int
        Requests, ``1 <= n <= 2**63 - 1``.
    rng : None, int, SeedSequence or Generator
        Seed (see :mod:`meshstat.seeding`); the result's ``seed_entropy`` replays it.
    mode : {"auto", "per_request", "faithful", "exact"}
        ``per_request`` routes every request through the numba kernels (alias
        table on the exact distribution); ``faithful`` runs the real mechanism
        (a fresh 31-bit draw per iptables rule, or Envoy's ``R % total``);
        ``exact`` draws the counts from the multinomial in O(k) for any n
        (numba is not even imported); ``auto`` is ``per_request`` up to
        :data:`AUTO_PER_REQUEST_LIMIT` requests and ``exact`` beyond.
    window : int, optional
        Also count per window of ``window`` consecutive requests.
    destinations : bool or path
        Also return the backend index of every request (smallest unsigned
        dtype). ``True`` keeps them in ``result.destinations`` up to
        :data:`MAX_DESTINATIONS` requests and beyond streams them, chunk by
        chunk, to a temporary Parquet file (``result.destinations_path``; a
        note names it); a path always streams to that file. The file has one
        column, ``backend``, one row per request in order.
    block_log2 : int
        log2 of the block size (part of the reproducibility contract).
    progress : callable, optional
        Called as ``progress(done, total)`` after each chunk of requests (and
        ``progress.close()`` at the end if it has one); see
        :mod:`meshstat.progress` for the command line's bar.

    Notes
    -----
    Memory: the kernels run chunk by chunk (a few million requests, sized to
    take about a quarter of a second each), so counts-only runs use O(k) memory
    for any ``n``, windows O(n / window * k), and destinations O(n) only when
    kept in memory. Ctrl-C between chunks raises :class:`KeyboardInterrupt`.
    Results do not depend on the chunk sizes nor on the number of threads.

    Returns
    -------
    SimulationResult

    Examples
    --------
    >>> from meshstat import Weighted, simulate
    >>> r = simulate(Weighted.from_weights([90, 10]), 1000, rng=1)
    >>> int(r.counts.sum())
    1000
    """
    rt = _as_route(route)
    if destinations is None:  # the same as False: no destinations
        destinations = False
    if any(getattr(s, "stateful", False) for s in rt.stages()):
        # an endpoint balancer (meshstat.balancers.Balanced) keeps state between requests
        from meshstat.balancers.stage import simulate_stateful_route

        return simulate_stateful_route(
            rt, n, rng=rng, window=window, mode=mode, destinations=destinations, block_log2=block_log2,
            progress=progress,
        )
    n, mode, w = _simulate_iv(n, mode, window, destinations, block_log2)
    notes: list[str] = list(rt.notes)
    if mode == "auto":
        if n <= AUTO_PER_REQUEST_LIMIT or destinations is not False:
            mode = "per_request"  # destinations asked for: every request is routed, whatever n
        else:
            mode = "exact"
            notes.append(
                f"n = {n:,} is above {AUTO_PER_REQUEST_LIMIT:,}: counts drawn exactly from the multinomial "
                "(mode exact, O(k)) instead of routing every request"
            )
    root = seeding.root_seed_sequence(rng)
    exact = rt.exact_shares() if _exact_feasible(rt) else _approx_shares(rt)
    if w is not None:
        nw = -(-n // w)
        if nw * len(exact) > MAX_WINDOW_CELLS:
            raise InvalidArgument(
                f"{nw:,} windows x {len(exact)} backends is too many to keep; use a larger window"
            )
    if mode == "exact":
        return _simulate_exact(rt, n, root, w, exact, notes, progress)
    plan = compile_route(rt, mode=mode)
    if not plan.masses_exact and mode == "per_request":
        notes.append(
            "this cascade's shares have more than 64 binary digits: per-request sampling uses them "
            "rounded to multiples of 2**-64 (error < 2**-64 per backend); mode faithful is bit-exact"
        )
    return _simulate_kernels(rt, plan, n, root, mode, w, destinations, block_log2, exact, notes, progress)


def _exact_feasible(rt: Route) -> bool:
    from meshstat.model import MAX_EXACT_RULES, Cascade

    return all(not isinstance(s, Cascade) or len(s.thresholds) <= MAX_EXACT_RULES for s in rt.stages())


def _approx_shares(rt: Route) -> tuple[Fraction, ...]:
    masses, _ = rt.masses64()
    return tuple(Fraction(m, 1 << 64) for m in masses)


def _simulate_exact(
    rt: Route,
    n: int,
    root: np.random.SeedSequence,
    w: int | None,
    exact: tuple[Fraction, ...],
    notes: list[str],
    progress: Callable[[int, int], None] | None,
) -> SimulationResult:
    masses, _ = rt.masses64()
    p = np.array([m / 2.0**64 for m in masses], dtype=np.float64)
    p = p / p.sum()
    gen = np.random.default_rng(root)
    t0 = time.perf_counter()
    window_counts = window_sizes = None
    if w is None:
        counts = gen.multinomial(n, p).astype(np.int64)
    else:
        full, rest = divmod(n, w)
        parts = [gen.multinomial(w, p, size=full).astype(np.int64)] if full else []
        sizes = [np.full(full, w, dtype=np.int64)] if full else []
        if rest:
            parts.append(gen.multinomial(rest, p, size=1).astype(np.int64))
            sizes.append(np.array([rest], dtype=np.int64))
        window_counts = np.concatenate(parts, axis=0)
        window_sizes = np.concatenate(sizes)
        counts = window_counts.sum(axis=0)
    elapsed = time.perf_counter() - t0
    track = _Progress(progress, n)
    track.add(n)
    track.close()
    notes.append("mode exact: multinomial counts with float64 shares (numpy); no per-request routing")
    return SimulationResult(
        route=rt,
        n=n,
        mode="exact",
        counts=counts,
        exact=exact,
        seed_entropy=int(root.entropy),  # type: ignore[arg-type]
        block_size=0,
        elapsed=elapsed,
        window=w,
        window_counts=window_counts,
        window_sizes=window_sizes,
        masses_exact=False,
        notes=tuple(notes),
    )


def _simulate_kernels(
    rt: Route,
    plan: Plan,
    n: int,
    root: np.random.SeedSequence,
    mode: str,
    w: int | None,
    destinations: bool | str | os.PathLike[str],
    block_log2: int,
    exact: tuple[Fraction, ...],
    notes: list[str],
    progress: Callable[[int, int], None] | None,
) -> SimulationResult:
    from meshstat._kernels import route as kr

    block = 1 << block_log2
    n_blocks = -(-n // block)
    args = _plan_args(plan)
    dest_kernel, win_kernel = {
        "bernoulli": (kr.bernoulli_dest, kr.bernoulli_windows),
        "alias": (kr.alias_dest, kr.alias_windows),
        "cascade": (kr.cascade_dest, kr.cascade_windows),
        "envoy": (kr.envoy_dest, kr.envoy_windows),
    }[plan.kind]
    ncols = plan.columns
    dd = dest_dtype(plan.columns)
    bl = np.int64(block_log2)
    stream_to = _destinations_path(destinations, n, notes)
    want_dest = destinations is not False
    # load (or compile) the kernels before the clock starts: an empty call
    empty_keys = np.zeros(0, dtype=np.uint64)
    empty_counts = np.zeros((0, ncols), np.int64)
    if want_dest:
        dest_kernel(*args, empty_keys, bl, np.int64(0), np.zeros(0, dtype=dd), empty_counts)
    if w is not None or not want_dest:
        win_kernel(*args, empty_keys, np.int64(0), bl, np.int64(0), np.int64(1), np.int64(0), empty_counts)

    # streamed destinations are written to FILE.partial and renamed when the whole run succeeded
    partial = None if stream_to is None else stream_to + ".partial"
    try:
        t0 = time.perf_counter()
        counts = np.zeros(ncols, dtype=np.int64)
        dest = np.empty(n, dtype=dd) if want_dest and stream_to is None else None
        spawner = _KeySpawner(root)
        passes = (2 if want_dest else 1) if w is not None else 1
        track = _Progress(progress, n * passes)

        def by_blocks(b0: int, b1: int) -> np.ndarray | None:
            """Route the requests of blocks ``[b0, b1)``; return their destinations when wanted."""
            keys = spawner.keys(b0, b1)
            start, stop = b0 << block_log2, min(b1 << block_log2, n)
            tally = np.zeros((b1 - b0, ncols), dtype=np.int64)
            out = None
            if want_dest:
                out = dest[start:stop] if dest is not None else np.empty(stop - start, dtype=dd)
                dest_kernel(*args, keys, bl, np.int64(stop - start), out, tally)
            else:
                win_kernel(*args, keys, np.int64(b0), bl, np.int64(n), np.int64(block), np.int64(b0), tally)
            counts[:] += tally.sum(axis=0)
            track.add(stop - start)
            return out

        if want_dest or w is None:
            first, most = max(1, CHUNK_REQUESTS >> block_log2), max(1, MAX_CHUNK_REQUESTS >> block_log2)
            blocks = _Chunks(n_blocks, first, most)
            if partial is not None:
                _stream_destinations(partial, blocks, by_blocks, dd)
            else:
                for b0, b1 in blocks:
                    by_blocks(b0, b1)
        wc = None
        if w is not None:
            # a second pass (with destinations) or the only one: whole windows per chunk
            nw = -(-n // w)
            wc = np.zeros((nw, ncols), dtype=np.int64)
            spawner = _KeySpawner(root)  # the same keys again, from block 0
            for w0, w1 in _Chunks(nw, max(1, CHUNK_REQUESTS // w), max(1, MAX_CHUNK_REQUESTS // w)):
                lo, hi = w0 * w, min(w1 * w, n)
                kb0 = lo >> block_log2
                keys = spawner.keys(kb0, ((hi - 1) >> block_log2) + 1)
                win_kernel(*args, keys, np.int64(kb0), bl, np.int64(n), np.int64(w), np.int64(w0), wc[w0:w1])
                track.add(hi - lo)
        track.close()
    except BaseException:
        if stream_to is not None:
            assert partial is not None
            _remove_file(partial)
            if destinations is True:
                _remove_file(stream_to)  # the temporary file made for this run
        raise
    if stream_to is not None:
        assert partial is not None
        os.replace(partial, stream_to)
    window_counts = window_sizes = None
    if wc is not None:
        assert w is not None
        window_counts = np.ascontiguousarray(wc[:, : plan.k])
        counts = window_counts.sum(axis=0)
        window_sizes = np.full(wc.shape[0], w, dtype=np.int64)
        window_sizes[-1] = n - (wc.shape[0] - 1) * w
    elapsed = time.perf_counter() - t0
    return SimulationResult(
        route=rt,
        n=n,
        mode=mode,
        counts=np.ascontiguousarray(counts[: plan.k], dtype=np.int64),
        exact=exact,
        seed_entropy=int(root.entropy),  # type: ignore[arg-type]
        block_size=block,
        elapsed=elapsed,
        destinations=dest,
        destinations_path=stream_to,
        window=w,
        window_counts=window_counts,
        window_sizes=window_sizes,
        masses_exact=plan.masses_exact if mode == "per_request" else True,
        notes=tuple(notes),
    )


class _KeySpawner:
    """Block keys of one run, made chunk by chunk (``root.spawn`` counts its children).

    ``keys(b0, b1)`` returns the keys of blocks ``[b0, b1)``; requests go forward,
    so only keys from the last call's start on are kept. The keys equal
    :func:`meshstat.seeding.block_keys` of the whole run.
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


class _Chunks:
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


class _Progress:
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


def _remove_file(path: str) -> None:
    """Remove ``path`` if it exists, even when a second Ctrl-C arrives meanwhile."""
    for _ in range(5):
        try:
            os.remove(path)
        except FileNotFoundError:
            return
        except KeyboardInterrupt:
            continue
        except OSError:
            return
        return


def _destinations_path(destinations: object, n: int, notes: list[str]) -> str | None:
    """Where destinations go: a path given, a temporary file beyond :data:`MAX_DESTINATIONS`, or None."""
    if destinations is False:
        return None
    if destinations is True:
        if n <= MAX_DESTINATIONS:
            return None
        fd, path = tempfile.mkstemp(prefix="meshstat-destinations-", suffix=".parquet")
        os.close(fd)
        notes.append(
            f"n = {n:,} is above {MAX_DESTINATIONS:,}: destinations were streamed to {path} "
            "(column 'backend', one row per request) instead of being kept in memory"
        )
        return path
    path = os.fspath(destinations)  # type: ignore[arg-type]
    notes.append(f"destinations streamed to {path} (column 'backend', one row per request)")
    return path


def _stream_destinations(
    path: str, chunks: _Chunks, run_chunk: Callable[[int, int], np.ndarray | None], dtype: np.dtype
) -> None:
    """Write every chunk's destinations to one Parquet file as they come (the caller cleans up)."""
    from meshstat.sinks import sink_parquet_column

    def batches() -> Iterator[np.ndarray]:
        for b0, b1 in chunks:
            out = run_chunk(b0, b1)
            assert out is not None
            yield out

    sink_parquet_column(path, "backend", dtype, batches())


def _plan_args(plan: Plan) -> tuple[object, ...]:
    if plan.kind == "bernoulli":
        return (plan.t,)
    if plan.kind == "alias":
        return (plan.table, np.int64(plan.bits))
    if plan.kind == "cascade":
        return (plan.thresholds,)
    return (plan.cum, plan.total)


def compare(
    routes: Sequence[Route | Stage | Backend],
    n: int,
    *,
    rng: int | np.random.SeedSequence | np.random.Generator | None = None,
    mode: str = "auto",
    window: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> list[SimulationResult]:
    """Simulate several routes with the same ``n`` and the same seed.

    Every route gets the same root seed, so a route's result does not depend
    on which other routes are compared with it. ``progress(done, total)``
    counts the requests of all routes together.
    """
    root = seeding.root_seed_sequence(rng)
    entropy = int(root.entropy)  # type: ignore[arg-type]
    out = []
    for i, r in enumerate(routes):
        step = None
        if progress is not None:
            step = functools.partial(_offset_progress, progress, i * n, n, len(routes) * n)
        out.append(simulate(r, n, rng=entropy, mode=mode, window=window, progress=step))
    close = getattr(progress, "close", None)
    if close is not None:
        close()
    return out


def _offset_progress(
    progress: Callable[[int, int], None], offset: int, per: int, total: int, done: int, part: int
) -> None:
    """Route ``i`` of ``compare`` did ``done`` of its ``part``: report it within the whole run."""
    progress(offset + done * per // part, total)


def rate_summary(results: Sequence[SimulationResult]) -> float:
    """Total requests per second over ``results`` (for the CLI's run line)."""
    secs = math.fsum(r.elapsed for r in results)
    return sum(r.n for r in results) / secs if secs > 0 else float("inf")
