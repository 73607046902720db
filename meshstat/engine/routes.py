"""Route synthetic requests through a route: the engine's public entry points.

:func:`simulate` runs one route: a route whose stages all decide i.i.d. goes
through :mod:`meshstat.engine.iid` (exact mode or the numba kernels), a route
with a stateful stage (an endpoint balancer, :class:`meshstat.balancers.Balanced`)
through :mod:`meshstat.engine.stateful`. :func:`compare` runs several routes
with one seed.
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from meshstat.engine import seeding
from meshstat.engine.iid import as_route, simulate_iid
from meshstat.engine.result import SimulationResult
from meshstat.model import Backend, Route, Stage

__all__ = ["compare", "rate_summary", "simulate"]


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
        Seed (see :mod:`meshstat.engine.seeding`); the result's ``seed_entropy`` replays it.
    mode : {"auto", "per_request", "faithful", "exact"}
        ``per_request`` routes every request through the numba kernels (alias
        table on the exact distribution); ``faithful`` runs the real mechanism
        (a fresh 31-bit draw per iptables rule, or Envoy's ``R % total``);
        ``exact`` draws the counts from the multinomial in O(k) for any n
        (numba is not even imported); ``auto`` is ``per_request`` up to
        :data:`~meshstat.engine.iid.AUTO_PER_REQUEST_LIMIT` requests and ``exact`` beyond.
    window : int, optional
        Also count per window of ``window`` consecutive requests.
    destinations : bool or path
        Also return the backend index of every request (smallest unsigned
        dtype). ``True`` keeps them in ``result.destinations`` up to
        :data:`~meshstat.engine.iid.MAX_DESTINATIONS` requests and beyond streams them, chunk by
        chunk, to a temporary Parquet file (``result.destinations_path``; a
        note names it); a path always streams to that file. The file has one
        column, ``backend``, one row per request in order.
    block_log2 : int
        log2 of the block size (part of the reproducibility contract).
    progress : callable, optional
        Called as ``progress(done, total)`` after each chunk of requests (and
        ``progress.close()`` at the end if it has one); see
        :mod:`meshstat.engine.progress` for the command line's bar.

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
    rt = as_route(route)
    if destinations is None:  # the same as False: no destinations
        destinations = False
    if any(getattr(s, "stateful", False) for s in rt.stages()):
        # an endpoint balancer (meshstat.balancers.Balanced) keeps state between requests; imported
        # here so that runs without one do not load the balancers' definitions (command-line start-up)
        from meshstat.engine.stateful import simulate_stateful_route

        return simulate_stateful_route(
            rt, n, rng=rng, window=window, mode=mode, destinations=destinations, block_log2=block_log2,
            progress=progress,
        )
    return simulate_iid(
        rt, n, rng=rng, mode=mode, window=window, destinations=destinations, block_log2=block_log2,
        progress=progress,
    )


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

    So two i.i.d. routes with the same sampled masses (:meth:`meshstat.model.Route.masses64`:
    what the kernels and the multinomial read) get the same counts: a cluster's thousands of
    paths of a few shapes are simulated once per shape, each result carrying its own route,
    exact shares and notes.
    """
    import dataclasses

    root = seeding.root_seed_sequence(rng)
    entropy = int(root.entropy)  # type: ignore[arg-type]
    out: list[SimulationResult] = []
    done: dict[Any, SimulationResult] = {}  # masses -> the first result of that shape
    for i, r in enumerate(routes):
        step = None
        if progress is not None:
            step = functools.partial(_offset_progress, progress, i * n, n, len(routes) * n)
        rt = as_route(r)
        key = None
        if mode != "faithful" and not any(getattr(s, "stateful", False) for s in rt.stages()):
            key = rt.masses64()  # faithful mode also reads the stage's own form (cascade or weights)
            same = done.get(key)
            if same is not None:
                exact, shares_exact = rt.expected_shares()
                notes = (*rt.notes, *same.notes[len(same.route.notes):])
                out.append(dataclasses.replace(same, route=rt, exact=exact, notes=notes, shares_exact=shares_exact))
                if step is not None:
                    step(n, n)
                continue
        res = simulate(rt, n, rng=entropy, mode=mode, window=window, progress=step)
        if key is not None:
            done[key] = res
        out.append(res)
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
