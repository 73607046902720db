"""Routes with endpoint balancers (:class:`~meshstat.balancers.Balanced` stages).

The composition :func:`simulate_stateful_route` (what :func:`meshstat.simulate`
runs for a route with a :class:`~meshstat.balancers.Balanced` stage) is exact in this sense:

* the i.i.d. stages above decide per request exactly as :func:`meshstat.simulate`
  does (the same kernels, with the destinations at the level of the
  :class:`Balanced` nodes, which are replaced by single placeholder backends);
* every :class:`Balanced` node's balancer then sees exactly the sub-sequence of
  requests routed to it, in order, and decides as
  :func:`meshstat.engine.balancers.simulate_balancer` decides for a run of that many
  requests (its workload's clients and connections describe that sub-stream);
* hash keys (RING_HASH, MAGLEV with a keyed workload) come from **one** key
  stream for the whole route: request ``i`` carries key ``K_i`` whichever subset
  it reaches, so a key always maps to the same host of a given subset. Every
  keyed hashing subset must therefore use the same key set and popularity;
* LEAST_REQUEST reacts to load, so its sub-stream's arrival times matter. The
  route's requests arrive as a Poisson process of rate ``lambda`` and the i.i.d.
  stages split them independently of time, so the requests reaching a subset of
  exact share ``p`` form a Poisson process of rate ``lambda * p`` (thinning of a
  Poisson process), independent of the other subsets' streams; each
  least-request subset is simulated with those thinned arrivals. ``lambda`` is the
  ``arrival_rate`` of a least-request subset's workload (read as the rate of the
  whole route; several subsets giving it must agree), by default the rate at
  which the busiest least-request subset runs at 80% of its capacity.

Random streams (the reproducibility contract of stateful routes): the run's root
:class:`~numpy.random.SeedSequence` (``meshstat.engine.seeding.root_seed_sequence(rng)``,
its entropy recorded in the result) spawns three children, in this order:

0. the i.i.d. stages: passed as ``rng`` to :func:`meshstat.engine.iid.simulate_iid`
   (what :func:`meshstat.simulate` runs for them) on the placeholder route (so its
   block keys are ``block_keys(child0, n_blocks)``);
1. the key stream: block keys of the alias-table draw of every request's key index;
2. the balancers: ``child2.spawn(m)``, one per :class:`Balanced` node in
   depth-first order, each passed as ``rng`` to ``simulate_balancer``.

Heavy libraries are imported inside the functions that use them.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING, Any

from meshstat.balancers.hashing import key_hashes
from meshstat.balancers.least_request import LeastRequest
from meshstat.balancers.stage import Balanced
from meshstat.balancers.workload import Workload
from meshstat.compiler import alias_table, dest_dtype
from meshstat.engine import seeding
from meshstat.engine.balancers import simulate_balancer
from meshstat.engine.iid import MAX_DESTINATIONS, MAX_WINDOW_CELLS, as_route, simulate_iid, simulate_iv
from meshstat.engine.result import SimulationResult
from meshstat.errors import InvalidArgument, ModelError
from meshstat.model import Backend, Node, Route, Stage, share_text

if TYPE_CHECKING:
    import numpy as np

__all__ = ["simulate_stateful_route"]

#: Requests per chunk when windows are counted (bounds the temporary arrays).
_WINDOW_CHUNK = 1 << 22


@dataclass
class _Split:
    """The route with its Balanced nodes replaced by placeholder backends."""

    route: Route
    nodes: list[Balanced]
    base: list[int]  # per placeholder leaf: index of its first leaf in the original route
    node_of: list[int]  # per placeholder leaf: index into nodes, or -1 for an ordinary backend


def _split(route: Route) -> _Split:
    used = {b.name for b in route.backends()}
    nodes: list[Balanced] = []
    base: list[int] = []
    node_of: list[int] = []
    offset = 0

    def placeholder_name(node: Balanced) -> str:
        stem = f"<{node.name or node.policy}>"
        name, i = stem, 1
        while name in used:
            i += 1
            name = f"{stem}#{i}"
        used.add(name)
        return name

    def rewrite(node: Node) -> Node:
        nonlocal offset
        if isinstance(node, Backend):
            base.append(offset)
            node_of.append(-1)
            offset += 1
            return node
        if isinstance(node, Balanced):
            base.append(offset)
            node_of.append(len(nodes))
            nodes.append(node)
            offset += len(node.children)
            return Backend(name=placeholder_name(node), provenance=node.provenance)
        if getattr(node, "stateful", False):
            raise ModelError(f"stateful stage {type(node).__name__} is not supported; use Balanced")
        return dataclasses.replace(node, children=tuple(rewrite(c) for c in node.children))

    root = rewrite(route.root)
    return _Split(Route(root=root, name=route.name, provenance=route.provenance), nodes, base, node_of)


def _label(node: Balanced, j: int) -> str:
    return node.name or f"{node.policy}#{j + 1}"


def _capacity(lb: LeastRequest, wl: Workload) -> float:
    """Requests per second the subset's servers complete at full load (inf with unlimited servers)."""
    k = lb.n_hosts
    servers = wl.servers_per_backend(k)
    if any(s == 0 for s in servers):
        return float("inf")
    return sum(s / st.mean for s, st in zip(servers, wl.service_times(k), strict=True))


def _route_arrival_rate(split: _Split, shares: Sequence[Fraction], notes: list[str]) -> float | None:
    """The route's Poisson rate lambda that least-request subsets are thinned from (None: no such subset)."""
    lr = [(j, nd) for j, nd in enumerate(split.nodes) if isinstance(nd.balancer, LeastRequest)]
    if not lr:
        return None
    given = {nd.workload.arrival_rate for _, nd in lr if nd.workload is not None and nd.workload.arrival_rate}
    if len(given) > 1:
        raise ModelError(
            "least-request subsets give different arrival rates "
            f"({', '.join(f'{r:g}' for r in sorted(given))}/s): a subset's arrival_rate is the rate of the "
            "whole route (each subset sees it thinned by its share), so give one value"
        )
    if given:
        return float(given.pop())
    bounds = []
    for j, nd in lr:
        p = shares[split.node_of.index(j)]
        cap = _capacity(nd.balancer, nd.workload or Workload())
        if p > 0 and cap != float("inf"):
            bounds.append(cap / float(p))
    lam = 0.8 * min(bounds) if bounds else 1000.0
    why = ("the busiest least-request subset at 80% of its capacity" if bounds
           else "no least-request subset with traffic and finite servers to size it by")
    notes.append(f"route arrival rate {lam:,.6g}/s ({why})")
    return lam


def _key_indices(split: _Split, child: np.random.SeedSequence, n: int, block_log2: int) -> np.ndarray | None:
    """Key index of every request of the route (one stream for all keyed subsets), or None."""
    import numpy as np

    from meshstat._kernels import balancers as kb

    keyed = [nd for nd in split.nodes if nd.keyed]
    if not keyed:
        return None
    sig = {nd.workload.key_set for nd in keyed}  # type: ignore[union-attr]
    if len(sig) > 1:
        raise ModelError(
            "keyed ring-hash/maglev subsets must share one key set and popularity: a request carries the "
            "same key whichever subset it reaches"
        )
    wl = keyed[0].workload
    assert wl is not None
    table, bits = alias_table(wl.key_masses64())
    keys = seeding.block_keys(child, max(1, -(-n // (1 << block_log2))))
    kidx = np.empty(n, dtype=np.int64)
    kb.alias_pick(table, np.int64(bits), keys, np.int64(block_log2), np.int64(n), kidx)
    return kidx


def _windows(leaf: np.ndarray, k: int, n: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    import numpy as np

    nw = -(-n // w)
    wc = np.zeros((nw, k), dtype=np.int64)
    for s in range(0, n, _WINDOW_CHUNK):
        e = min(n, s + _WINDOW_CHUNK)
        w0 = s // w
        local = np.arange(s, e, dtype=np.int64) // w - w0
        nl = int(local[-1]) + 1
        cell = local * k + leaf[s:e]
        wc[w0 : w0 + nl] += np.bincount(cell, minlength=nl * k).reshape(nl, k)
    sizes = np.full(nw, w, dtype=np.int64)
    sizes[-1] = n - (nw - 1) * w
    return wc, sizes


def simulate_stateful_route(
    route: Route | Stage,
    n: int,
    *,
    rng: None | int | np.random.SeedSequence | np.random.Generator = None,
    window: int | None = None,
    mode: str = "auto",
    destinations: bool = False,
    block_log2: int | None = None,
    progress: Any = None,
) -> SimulationResult:
    """Route ``n`` requests through a route whose leaves' parents include :class:`Balanced` stages.

    See the module docstring for the composition and the random streams.

    Parameters
    ----------
    route : Route or Stage
    n : int
        Requests, at most :data:`meshstat.engine.iid.MAX_DESTINATIONS` (every
        request's subset is kept to hand the sub-streams to the balancers).
    rng : None, int, SeedSequence or Generator
        Seed; ``result.seed_entropy`` replays it.
    window : int, optional
        Also count per window of ``window`` consecutive requests of the route.
    mode : {"auto", "per_request", "faithful"}
        How the i.i.d. stages decide (as :func:`meshstat.simulate`; ``auto`` is
        ``per_request``). ``"exact"`` (multinomial counts) is refused: a
        stateful balancer needs every request, in order.
    destinations : bool
        Also return the leaf index of every request.
    block_log2 : int, optional
        log2 of the stream block size (default :data:`meshstat.engine.seeding.BLOCK_LOG2`).
    progress : callable, optional
        ``progress(done, total)`` while the i.i.d. stages route (see :func:`meshstat.simulate`).

    Returns
    -------
    SimulationResult
        ``mode="stateful"``; ``counts`` per leaf in ``route.backends()`` order;
        ``exact`` is the product of the i.i.d. shares and each balancer's exact
        long-run share, except for least-request subsets, whose within-subset
        shares are the simulated ones (a note says so, and ``masses_exact`` is
        False).
    """
    import numpy as np

    rt = as_route(route)
    bl = seeding.BLOCK_LOG2 if block_log2 is None else block_log2
    n, mode, w = simulate_iv(n, mode, window, destinations, bl)
    if not isinstance(destinations, bool):
        raise InvalidArgument(
            "a route with a stateful balancer keeps its destinations in memory: pass True or False"
        )
    if mode == "exact":
        raise InvalidArgument(
            "mode exact draws multinomial counts without routing requests one by one; a route with a "
            "stateful balancer (Balanced stage) needs every request in order: use mode auto, per_request "
            "or faithful"
        )
    if n > MAX_DESTINATIONS:
        raise InvalidArgument(
            "a route with a stateful balancer keeps every request's subset: "
            f"n must be <= {MAX_DESTINATIONS:,}"
        )
    if mode == "auto":
        mode = "per_request"
    split = _split(rt)
    k = len(rt.backends())
    if w is not None and -(-n // w) * k > MAX_WINDOW_CELLS:
        nw = -(-n // w)
        raise InvalidArgument(f"{nw:,} windows x {k} backends is too many to keep; use a larger window")
    root = seeding.root_seed_sequence(rng)
    entropy = int(root.entropy)  # type: ignore[arg-type]
    iid_seq, key_seq, lb_seq = root.spawn(3)
    notes: list[str] = list(rt.notes)

    iid = simulate_iid(
        split.route, n, rng=iid_seq, mode=mode, destinations=True, block_log2=bl, progress=progress
    )
    notes.extend(iid.notes)
    assert iid.destinations is not None
    d = iid.destinations
    t0 = time.perf_counter()
    lam = _route_arrival_rate(split, iid.exact, notes)
    kidx = _key_indices(split, key_seq, n, bl)
    node_seqs = lb_seq.spawn(len(split.nodes))
    dd = dest_dtype(k)
    leaf = np.asarray(split.base, dtype=dd)[d]
    exact: list[Fraction] = []
    simulated = []
    elapsed_lb = 0.0  # the balancers' own kernel time
    wall_lb = 0.0  # wall time of the simulate_balancer calls (includes loading their kernels)
    per_node: dict[int, tuple[int, tuple[Fraction, ...]]] = {}
    for j, node in enumerate(split.nodes):
        ph = split.node_of.index(j)
        idx = np.flatnonzero(d == ph)
        m = int(idx.size)
        label = _label(node, j)
        lb = node.balancer
        if node.keyed:
            assert kidx is not None and node.workload is not None
            host_of_key = lb.lookup(key_hashes(node.workload))
            sub = host_of_key[kidx[idx]]
            within = node.shares()
        elif m == 0:
            sub = np.zeros(0, dtype=np.int32)
            within = node.shares() if node.shares_exact else tuple(lb.expected_shares())
        else:
            wl = node.workload or Workload()
            if isinstance(lb, LeastRequest):
                assert lam is not None
                p = iid.exact[ph]
                wl = dataclasses.replace(wl, arrival_rate=lam * float(p))
                notes.append(
                    f"{label} (least request): Poisson arrivals at {lam:,.6g}/s x share {share_text(p)} = "
                    f"{lam * float(p):,.6g}/s (an i.i.d. split of a Poisson process is Poisson: thinning)"
                )
            t1 = time.perf_counter()
            res = simulate_balancer(lb, m, rng=node_seqs[j], workload=wl, destinations=True, block_log2=bl)
            wall_lb += time.perf_counter() - t1
            elapsed_lb += res.elapsed
            sub = res.destinations
            for note in res.notes:
                if not note.startswith("arrival rate"):
                    notes.append(f"{label}: {note}")
            if isinstance(lb, LeastRequest):
                within = tuple(Fraction(int(c), m) for c in res.counts)
                simulated.append(label)
                if res.mean_latency is not None:
                    ml = ", ".join(f"{x * 1e3:.3g}" for x in res.mean_latency.tolist())
                    notes.append(f"{label}: mean latency per endpoint (ms) {ml}")
            else:
                within = node.shares()
        if m:
            leaf[idx] += np.asarray(sub).astype(dd)
        per_node[j] = (m, within)
    # exact shares per leaf, in route.backends() order
    for ph, j in enumerate(split.node_of):
        p = iid.exact[ph]
        if j < 0:
            exact.append(p)
        else:
            exact.extend(p * s for s in per_node[j][1])
    assert len(exact) == k
    if simulated:
        notes.append(
            f"{', '.join(simulated)}: least request has no exact long-run share (it depends on the load); "
            "'exact' there is the subset's exact share times the simulated split inside it"
        )
    counts = np.bincount(leaf, minlength=k).astype(np.int64)
    window_counts = window_sizes = None
    if w is not None:
        window_counts, window_sizes = _windows(leaf, k, n, w)
    elapsed = iid.elapsed + elapsed_lb + (time.perf_counter() - t0 - wall_lb)
    return SimulationResult(
        route=rt,
        n=n,
        mode="stateful",
        counts=counts,
        exact=tuple(exact),
        seed_entropy=entropy,
        block_size=1 << bl,
        elapsed=elapsed,
        destinations=leaf if destinations else None,
        window=w,
        window_counts=window_counts,
        window_sizes=window_sizes,
        masses_exact=bool(iid.masses_exact) and not simulated,
        notes=tuple(dict.fromkeys(notes)),
        shares_exact=iid.shares_exact,
    )
