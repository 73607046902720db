"""The i.i.d. engine: routes whose stages all decide independently for every request.

:func:`simulate_iid` checks the arguments (:func:`as_route`, :func:`simulate_iv`),
then either draws the counts from the multinomial in O(k) (mode ``exact``;
numba is not even imported) or routes every request through the numba kernels
(:mod:`meshstat._kernels.route`), chunk by chunk (:mod:`meshstat.engine.chunks`).
:func:`meshstat.engine.routes.simulate` is the public entry point; routes with
a stateful stage go through :mod:`meshstat.engine.stateful`, which runs this
module for their i.i.d. stages.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
import time
from collections.abc import Callable
from fractions import Fraction

import numpy as np

from meshstat.compiler import Plan, compile_route, dest_dtype
from meshstat.engine import seeding
from meshstat.engine.chunks import Chunks, KeySpawner, Progress, stream_destinations
from meshstat.engine.result import SimulationResult
from meshstat.errors import InvalidArgument
from meshstat.model import MAX_EXACT_RULES, Backend, Route, Stage
from meshstat.outputs import OutputFile, check_output_path, remove_file

__all__ = [
    "AUTO_PER_REQUEST_LIMIT",
    "CHUNK_REQUESTS",
    "MAX_CHUNK_REQUESTS",
    "MAX_DESTINATIONS",
    "MAX_WINDOW_CELLS",
    "as_route",
    "simulate_iid",
    "simulate_iv",
]

#: ``mode="auto"`` routes every request through the kernels up to this n
#: (about 20 s at 500 M requests/s on 2 cores), and draws exact counts beyond.
AUTO_PER_REQUEST_LIMIT = 10**10
#: Largest n whose per-request destinations are kept in memory (one byte each for
#: k <= 256); beyond it ``destinations=True`` streams them to a Parquet file.
MAX_DESTINATIONS = 2**28
#: Requests in the first chunk of a run; chunks then grow or shrink (in whole
#: blocks, up to :data:`MAX_CHUNK_REQUESTS`) to take about
#: :data:`~meshstat.engine.chunks.CHUNK_SECONDS`.
CHUNK_REQUESTS = 1 << 22
MAX_CHUNK_REQUESTS = 1 << 28
#: Largest ``n_windows * n_backends`` kept in memory.
MAX_WINDOW_CELLS = 2 * 10**8

_MODES = ("auto", "exact", "per_request", "faithful")


def as_route(route: Route | Stage | Backend) -> Route:
    """``route`` as a :class:`~meshstat.model.Route` (a Stage or Backend becomes a route of its own)."""
    if isinstance(route, Route):
        return route
    if isinstance(route, Stage | Backend):
        return Route(root=route, name=getattr(route, "name", None) or "route")
    raise InvalidArgument(f"route must be a Route, Stage or Backend, got {type(route).__name__}")


def simulate_iv(
    n: object, mode: str, window: object, destinations: object, block_log2: int
) -> tuple[int, str, int | None]:
    """Check the arguments of a run; return ``n``, ``mode`` and ``window`` normalised."""
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
        if not isinstance(destinations, bool):  # a file to write: refused now, not after the run
            check_output_path(destinations, what="destinations")
    if not 8 <= block_log2 <= 30:
        raise InvalidArgument(f"block_log2 must be within [8, 30], got {block_log2}")
    return n, mode, w


def simulate_iid(
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
    """Route ``n`` requests through a route whose stages all decide i.i.d. (no stateful stage).

    What :func:`meshstat.engine.routes.simulate` runs for such a route (see it
    for the parameters), and what :func:`meshstat.engine.stateful.simulate_stateful_route`
    runs for the i.i.d. stages above a route's balancers.
    """
    rt = as_route(route)
    n, mode, w = simulate_iv(n, mode, window, destinations, block_log2)
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
    exact, shares_exact = rt.expected_shares()
    if not shares_exact:
        notes.append(
            f"a cascade has more than {MAX_EXACT_RULES:,} statistic rules: its shares are reported on the "
            "2**-64 grid the kernels sample (marked ~), not as exact fractions"
        )
    if w is not None:
        nw = -(-n // w)
        if nw * len(exact) > MAX_WINDOW_CELLS:
            raise InvalidArgument(
                f"{nw:,} windows x {len(exact)} backends is too many to keep; use a larger window"
            )
    if mode == "exact":
        return _marked(_simulate_exact(rt, n, root, w, exact, notes, progress), shares_exact)
    plan = compile_route(rt, mode=mode)
    if not plan.masses_exact and mode == "per_request":
        notes.append(
            "this cascade's shares have more than 64 binary digits: per-request sampling uses them "
            "rounded to multiples of 2**-64 (error < 2**-64 per backend); mode faithful is bit-exact"
        )
    return _marked(
        _simulate_kernels(rt, plan, n, root, mode, w, destinations, block_log2, exact, notes, progress),
        shares_exact,
    )


def _marked(result: SimulationResult, shares_exact: bool) -> SimulationResult:
    """``result`` with ``shares_exact`` set (False: its shares are on the ``2**-64`` grid)."""
    return result if shares_exact else dataclasses.replace(result, shares_exact=False)


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
    track = Progress(progress, n)
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

    # streamed destinations go to a temporary file beside the target, renamed over it when the run succeeded
    sink = None
    try:
        if stream_to is not None:
            sink = OutputFile(stream_to, what="destinations")
        t0 = time.perf_counter()
        counts = np.zeros(ncols, dtype=np.int64)
        dest = np.empty(n, dtype=dd) if want_dest and stream_to is None else None
        spawner = KeySpawner(root)
        passes = (2 if want_dest else 1) if w is not None else 1
        track = Progress(progress, n * passes)

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
            blocks = Chunks(n_blocks, first, most)
            if sink is not None:
                stream_destinations(sink.file, blocks, by_blocks, dd)
            else:
                for b0, b1 in blocks:
                    by_blocks(b0, b1)
        wc = None
        if w is not None:
            # a second pass (with destinations) or the only one: whole windows per chunk
            nw = -(-n // w)
            wc = np.zeros((nw, ncols), dtype=np.int64)
            spawner = KeySpawner(root)  # the same keys again, from block 0
            for w0, w1 in Chunks(nw, max(1, CHUNK_REQUESTS // w), max(1, MAX_CHUNK_REQUESTS // w)):
                lo, hi = w0 * w, min(w1 * w, n)
                kb0 = lo >> block_log2
                keys = spawner.keys(kb0, ((hi - 1) >> block_log2) + 1)
                win_kernel(*args, keys, np.int64(kb0), bl, np.int64(n), np.int64(w), np.int64(w0), wc[w0:w1])
                track.add(hi - lo)
        track.close()
        if sink is not None:
            sink.commit()
    except BaseException:
        if sink is not None:
            sink.discard()
        if destinations is True and stream_to is not None:
            remove_file(stream_to)  # the temporary file made for this run
        raise
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


def _plan_args(plan: Plan) -> tuple[object, ...]:
    if plan.kind == "bernoulli":
        return (plan.t,)
    if plan.kind == "alias":
        return (plan.table, np.int64(plan.bits))
    if plan.kind == "cascade":
        return (plan.thresholds,)
    return (plan.cum, plan.total)
