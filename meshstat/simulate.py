"""Route synthetic requests through a compiled route: the engine's public entry point."""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
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
#: Largest n for which per-request destinations are returned (one byte each for k <= 256).
MAX_DESTINATIONS = 2**31
#: Largest ``n_windows * n_backends`` kept in memory.
MAX_WINDOW_CELLS = 2 * 10**8

_MODES = ("auto", "exact", "per_request", "faithful")


def _as_route(route: Route | Stage | Backend) -> Route:
    if isinstance(route, Route):
        return route
    if isinstance(route, Stage | Backend):
        return Route(root=route, name=getattr(route, "name", None) or "route")
    raise InvalidArgument(f"route must be a Route, Stage or Backend, got {type(route).__name__}")


def _simulate_iv(n: object, mode: str, window: object, destinations: bool, block_log2: int) -> tuple[int, str, int | None]:
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
    if destinations and mode == "exact":
        raise InvalidArgument("destinations need per-request routing: use mode='per_request' or 'faithful'")
    if destinations and n > MAX_DESTINATIONS:
        raise InvalidArgument(f"destinations are kept for n <= {MAX_DESTINATIONS:,}; use counts or windows")
    if not 8 <= block_log2 <= 30:
        raise InvalidArgument(f"block_log2 must be within [8, 30], got {block_log2}")
    return n, mode, w


def simulate(
    route: Route | Stage | Backend,
    n: int,
    *,
    rng: None | int | np.random.SeedSequence | np.random.Generator = None,
    mode: str = "auto",
    window: int | None = None,
    destinations: bool = False,
    block_log2: int = seeding.BLOCK_LOG2,
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
    destinations : bool
        Also return the backend index of every request (smallest unsigned dtype).
    block_log2 : int
        log2 of the block size (part of the reproducibility contract).

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
    if any(getattr(s, "stateful", False) for s in rt.stages()):
        # an endpoint balancer (meshstat.balancers.Balanced) keeps state between requests
        from meshstat.balancers.stage import simulate_stateful_route

        return simulate_stateful_route(
            rt, n, rng=rng, window=window, mode=mode, destinations=destinations, block_log2=block_log2
        )
    n, mode, w = _simulate_iv(n, mode, window, destinations, block_log2)
    notes: list[str] = list(rt.notes)
    if mode == "auto":
        if n <= AUTO_PER_REQUEST_LIMIT:
            mode = "per_request"
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
        return _simulate_exact(rt, n, root, w, exact, notes)
    plan = compile_route(rt, mode=mode)
    if not plan.masses_exact and mode == "per_request":
        notes.append(
            "this cascade's shares have more than 64 binary digits: per-request sampling uses them "
            "rounded to multiples of 2**-64 (error < 2**-64 per backend); mode faithful is bit-exact"
        )
    return _simulate_kernels(rt, plan, n, root, mode, w, destinations, block_log2, exact, notes)


def _exact_feasible(rt: Route) -> bool:
    from meshstat.model import MAX_EXACT_RULES, Cascade

    return all(not isinstance(s, Cascade) or len(s.thresholds) <= MAX_EXACT_RULES for s in rt.stages())


def _approx_shares(rt: Route) -> tuple[Fraction, ...]:
    masses, _ = rt.masses64()
    return tuple(Fraction(m, 1 << 64) for m in masses)


def _simulate_exact(
    rt: Route, n: int, root: np.random.SeedSequence, w: int | None, exact: tuple[Fraction, ...], notes: list[str]
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
    destinations: bool,
    block_log2: int,
    exact: tuple[Fraction, ...],
    notes: list[str],
) -> SimulationResult:
    from meshstat._kernels import route as kr

    block = 1 << block_log2
    n_blocks = -(-n // block)
    keys = seeding.block_keys(root, n_blocks)
    args = _plan_args(plan)
    dest_kernel, win_kernel = {
        "bernoulli": (kr.bernoulli_dest, kr.bernoulli_windows),
        "alias": (kr.alias_dest, kr.alias_windows),
        "cascade": (kr.cascade_dest, kr.cascade_windows),
        "envoy": (kr.envoy_dest, kr.envoy_windows),
    }[plan.kind]
    ncols = plan.columns
    dd = dest_dtype(plan.columns)
    # load (or compile) the kernels before the clock starts: an empty call
    empty_keys = np.zeros(0, dtype=np.uint64)
    empty_counts = np.zeros((0, ncols), np.int64)
    if destinations:
        dest_kernel(*args, empty_keys, np.int64(block_log2), np.int64(0), np.zeros(0, dtype=dd), empty_counts)
    if w is not None or not destinations:
        win_kernel(*args, empty_keys, np.int64(block_log2), np.int64(0), np.int64(1), empty_counts)
    t0 = time.perf_counter()
    dest = None
    per_block = None
    if destinations:
        dest = np.empty(n, dtype=dd)
        per_block = np.zeros((n_blocks, ncols), dtype=np.int64)
        dest_kernel(*args, keys, np.int64(block_log2), np.int64(n), dest, per_block)
    if w is not None:
        nw = -(-n // w)
        wc = np.zeros((nw, ncols), dtype=np.int64)
        win_kernel(*args, keys, np.int64(block_log2), np.int64(n), np.int64(w), wc)
        window_counts = np.ascontiguousarray(wc[:, : plan.k])
        counts = window_counts.sum(axis=0)
        window_sizes = np.full(nw, w, dtype=np.int64)
        window_sizes[-1] = n - (nw - 1) * w
    else:
        if per_block is None:
            per_block = np.zeros((n_blocks, ncols), dtype=np.int64)
            win_kernel(*args, keys, np.int64(block_log2), np.int64(n), np.int64(block), per_block)
        counts = per_block.sum(axis=0)[: plan.k]
        window_counts = window_sizes = None
    elapsed = time.perf_counter() - t0
    return SimulationResult(
        route=rt,
        n=n,
        mode=mode,
        counts=np.ascontiguousarray(counts, dtype=np.int64),
        exact=exact,
        seed_entropy=int(root.entropy),  # type: ignore[arg-type]
        block_size=block,
        elapsed=elapsed,
        destinations=dest,
        window=w,
        window_counts=window_counts,
        window_sizes=window_sizes,
        masses_exact=plan.masses_exact if mode == "per_request" else True,
        notes=tuple(notes),
    )


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
    rng: None | int | np.random.SeedSequence | np.random.Generator = None,
    mode: str = "auto",
    window: int | None = None,
) -> list[SimulationResult]:
    """Simulate several routes with the same ``n`` and the same seed.

    Every route gets the same root seed, so a route's result does not depend
    on which other routes are compared with it.
    """
    root = seeding.root_seed_sequence(rng)
    entropy = int(root.entropy)  # type: ignore[arg-type]
    return [simulate(r, n, rng=entropy, mode=mode, window=window) for r in routes]


def rate_summary(results: Sequence[SimulationResult]) -> float:
    """Total requests per second over ``results`` (for the CLI's run line)."""
    secs = math.fsum(r.elapsed for r in results)
    return sum(r.n for r in results) / secs if secs > 0 else float("inf")
