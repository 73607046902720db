"""Run a balancer over ``n`` requests: :func:`simulate_balancer`, and key movement: :func:`disruption`.

Random streams (the reproducibility contract). The run's root SeedSequence
(``meshstat.engine.seeding.root_seed_sequence(rng)``, entropy recorded in the result)
spawns five children, always in this order, each used at most once per run:

0. LB-instance seeds: ``generate_state(workers, uint64)``, Envoy's ``seed_`` per worker;
1. connections: block keys for geometric connection sizes;
2. requests: block keys for per-request draws (RANDOM's ``r``, the key index of
   a key workload, a random hash, or the least-request event stream);
3. workers: block keys for the worker of every connection (``r % workers``);
4. reserved.

Block keys are ``meshstat.engine.seeding.block_keys(child, n_blocks)``; item ``i`` of a
stream uses draw ``i`` of its block (or ``i * words + j``, see each kernel).
Results never depend on the thread count.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import TYPE_CHECKING, Any

from meshstat import stats
from meshstat.balancers.hashing import Maglev, RingHash, hash_strings, key_hashes, keyed_host_shares
from meshstat.balancers.least_request import LeastRequest
from meshstat.balancers.roundrobin import MAX_CYCLE, Ipvs, NumgenInc, Random, RoundRobin, create_with_picks
from meshstat.balancers.stage import BALANCERS
from meshstat.balancers.workload import Workload
from meshstat.compiler import alias_table
from meshstat.engine import seeding
from meshstat.errors import InvalidArgument
from meshstat.model import round_to_total

if TYPE_CHECKING:
    import numpy as np

__all__ = [
    "BalancerResult",
    "DisruptionResult",
    "disruption",
    "imbalance",
    "key_masses",
    "simulate_balancer",
]
#: Default latency quantiles reported for LEAST_REQUEST.
QUANTILES = (0.5, 0.9, 0.99)
#: Largest n kept as per-request destinations.
MAX_DESTINATIONS = 2**31
#: Requests from which LEAST_REQUEST's per-host latency quantiles are computed on two threads.
PARALLEL_QUANTILES = 200_000


@dataclass(frozen=True, eq=False)
class BalancerResult:
    """What :func:`simulate_balancer` returns.

    Attributes
    ----------
    lb : balancer
        The balancer simulated.
    n : int
        Requests.
    backends : tuple of str
        Host keys, in count order.
    counts : int64[k]
        Requests per host.
    expected : tuple of Fraction
        Exact long-run share per host (see ``expected_kind``).
    expected_kind : str
        What ``expected`` means: ``"long-run"`` (a deterministic cycle: exact
        over whole periods), ``"random"`` (i.i.d. per request), ``"keys"``
        (exact for this key set and popularity), ``"hash-space"`` (random
        hashes), ``"idle"`` (least request with idle hosts; the loaded split
        differs).
    worker_counts : int64[workers, k] or None
        Requests per LB instance (round robin family with several workers).
    destinations : int32[n] or None
        Host of every request, in time order.
    connections : int
        Connections in the run.
    seed_entropy : int
        Pass back as ``rng`` to replay.
    elapsed : float
        Seconds spent in the kernels.
    quantiles : tuple of float
        Latency quantiles (least request).
    latency_quantiles : float64[k, len(quantiles)] or None
        Per-host latency quantiles in seconds (least request).
    mean_latency : float64[k] or None
    mean_active, max_active : float64[k], int64[k] or None
        Time-averaged and largest requests in flight per host (least request).
    duration : float or None
        Simulated seconds (least request).
    notes : tuple of str
    """

    lb: Any
    n: int
    backends: tuple[str, ...]
    counts: np.ndarray
    expected: tuple[Fraction, ...]
    expected_kind: str
    seed_entropy: int
    elapsed: float
    worker_counts: np.ndarray | None = None
    destinations: np.ndarray | None = None
    connections: int = 0
    quantiles: tuple[float, ...] = ()
    latency_quantiles: np.ndarray | None = None
    mean_latency: np.ndarray | None = None
    mean_active: np.ndarray | None = None
    max_active: np.ndarray | None = None
    duration: float | None = None
    notes: tuple[str, ...] = field(default=())

    @property
    def policy(self) -> str:
        """The balancer's policy name."""
        return str(self.lb.policy)

    def proportions(self) -> np.ndarray:
        """Observed share per host."""
        return self.counts / float(self.n)

    @property
    def expected_array(self) -> np.ndarray:
        """``expected`` as float64."""
        import numpy as np

        return np.array([float(x) for x in self.expected], dtype=np.float64)

    def imbalance(self) -> dict[str, float]:
        """Load imbalance over hosts that should get traffic.

        ``max_over_mean`` (largest count / mean count), ``cv`` (coefficient of
        variation of the counts), ``max_over_expected`` (largest count / its
        expected count) and ``min_over_expected``.
        """
        return imbalance(self.counts, self.expected)

    def goodness_of_fit(self) -> Any:
        """Chi-square of the counts against ``expected`` (meaningful for random policies only)."""
        return stats.goodness_of_fit(self.counts, self.expected)

    @property
    def rate(self) -> float:
        """Requests per second of kernel time."""
        return self.n / self.elapsed if self.elapsed > 0 else float("inf")


def imbalance(counts: np.ndarray, expected: Sequence[Fraction] | None = None) -> dict[str, float]:
    """See :meth:`BalancerResult.imbalance`."""
    import numpy as np

    c = np.asarray(counts, dtype=np.float64)
    if expected is not None:
        e = np.array([float(x) for x in expected], dtype=np.float64) * c.sum()
        pos = e > 0
    else:
        e = np.full(c.shape, c.mean())
        pos = np.ones(c.shape, dtype=bool)
    cp = c[pos]
    mean = cp.mean() if cp.size else 0.0
    out = {
        "max_over_mean": float(cp.max() / mean) if mean > 0 else float("nan"),
        "cv": float(cp.std() / mean) if mean > 0 else float("nan"),
        "max_over_expected": float(np.max(cp / e[pos])) if cp.size else float("nan"),
        "min_over_expected": float(np.min(cp / e[pos])) if cp.size else float("nan"),
    }
    return out


def _children(root: np.random.SeedSequence) -> list[np.random.SeedSequence]:
    return list(root.spawn(5))


def _keys(child: np.random.SeedSequence, n: int, block_log2: int) -> np.ndarray:
    return seeding.block_keys(child, max(1, -(-n // (1 << block_log2))))


def _check_n(n: object) -> int:
    if isinstance(n, float) and n.is_integer():
        n = int(n)
    if isinstance(n, bool) or not isinstance(n, int) or n < 1 or n > 2**62:
        raise InvalidArgument(f"n must be a positive integer, got {n!r}")
    return n


def simulate_balancer(
    lb: Any,
    n: int,
    *,
    rng: None | int | np.random.SeedSequence | np.random.Generator = None,
    workload: Workload | None = None,
    destinations: bool = False,
    quantiles: Sequence[float] = QUANTILES,
    block_log2: int = 18,
) -> BalancerResult:
    """Send ``n`` requests through an endpoint balancer.

    Parameters
    ----------
    lb : RoundRobin, Random, LeastRequest, RingHash, Maglev, SmoothWRR, NumgenInc or Ipvs
    n : int
        Requests.
    rng : None, int, SeedSequence or Generator
        Seed (see :mod:`meshstat.engine.seeding`); ``result.seed_entropy`` replays it.
    workload : Workload, optional
        Clients and connections (which LB instance serves a request, which
        requests share a per-connection decision), hash keys (RING_HASH and
        MAGLEV; without keys every request gets a random hash, as Envoy does
        when the hash policy yields none), and the load for LEAST_REQUEST.
    destinations : bool
        Also return the host of every request.
    quantiles : sequence of float
        Latency quantiles for LEAST_REQUEST.
    block_log2 : int
        log2 of the stream block size.

    Returns
    -------
    BalancerResult

    Examples
    --------
    >>> from meshstat.balancers import RoundRobin
    >>> from meshstat.engine.balancers import simulate_balancer
    >>> r = simulate_balancer(RoundRobin(4, weights=[1, 2, 3, 4]), 20_000, rng=1)
    >>> r.counts.tolist()
    [2000, 4000, 6000, 8000]
    """

    if not isinstance(lb, BALANCERS):
        raise InvalidArgument(f"lb must be one of {', '.join(c.__name__ for c in BALANCERS)}, got {type(lb).__name__}")
    n = _check_n(n)
    if destinations and n > MAX_DESTINATIONS:
        raise InvalidArgument(f"destinations are kept for n <= {MAX_DESTINATIONS:,}")
    if not 8 <= block_log2 <= 30:
        raise InvalidArgument(f"block_log2 must be within [8, 30], got {block_log2}")
    wl = workload if workload is not None else Workload()
    root = seeding.root_seed_sequence(rng)
    entropy = int(root.entropy)  # type: ignore[arg-type]
    ch = _children(root)
    ctx = _Run(lb=lb, n=n, wl=wl, ch=ch, block_log2=block_log2, want_dest=destinations, entropy=entropy)
    if isinstance(lb, LeastRequest):
        return _run_least_request(ctx, tuple(float(q) for q in quantiles))
    if isinstance(lb, RingHash | Maglev):
        return _run_hash(ctx)
    if isinstance(lb, Random):
        return _run_random(ctx)
    if isinstance(lb, NumgenInc | Ipvs):
        return _run_per_connection_cycle(ctx)
    return _run_cycles(ctx)


@dataclass
class _Run:
    lb: Any
    n: int
    wl: Workload
    ch: list
    block_log2: int
    want_dest: bool
    entropy: int
    notes: list[str] = field(default_factory=list)

    def keys(self, child: int, n_items: int) -> np.ndarray:
        return _keys(self.ch[child], n_items, self.block_log2)

    def layout(self) -> Any:
        return self.wl.layout(self.n, self.keys(1, self.n) if self._geometric else None, self.block_log2)

    @property
    def _geometric(self) -> bool:
        r = self.wl.requests_per_connection
        return isinstance(r, str) and r.startswith("geometric")

    def result(self, counts: np.ndarray, expected: tuple[Fraction, ...], kind: str, elapsed: float,
               **kw: Any) -> BalancerResult:
        return BalancerResult(
            lb=self.lb, n=self.n, backends=tuple(self.lb.endpoints), counts=counts, expected=expected,
            expected_kind=kind, seed_entropy=self.entropy, elapsed=elapsed, notes=tuple(self.notes), **kw,
        )


def _bincount(dest: np.ndarray, k: int) -> np.ndarray:
    import numpy as np

    from meshstat._kernels import balancers as kb

    out = np.zeros(k, dtype=np.int64)
    kb.counts_of(dest, np.int64(k), out)
    return out


def _worker_requests(ctx: _Run, workers: int) -> tuple[np.ndarray | None, int]:
    """Worker of every request (time order), or None when there is one worker."""
    import numpy as np

    from meshstat._kernels import balancers as kb

    if workers == 1 and ctx.wl.requests_per_connection is None:
        return None, ctx.n
    lay = ctx.layout()
    m = lay.n_connections
    if workers == 1:
        return None, m
    cw = np.empty(m, dtype=np.int64)
    wkeys = ctx.keys(3, m)
    kb.random_dest(np.int64(workers), wkeys, np.int64(ctx.block_log2), np.int64(m), cw)
    return lay.requests_of(cw), m


def _run_cycles(ctx: _Run) -> BalancerResult:
    """Envoy ROUND_ROBIN (cycle or EDF) and nginx smooth WRR, per worker."""
    import numpy as np

    from meshstat._kernels import balancers as kb

    lb = ctx.lb
    k = lb.n_hosts
    workers = lb.workers
    seeds = ctx.ch[0].generate_state(workers, np.uint64).tolist() if workers else []
    t0 = time.perf_counter()
    wreq, n_conn = _worker_requests(ctx, workers)
    m_w = np.bincount(wreq, minlength=workers).astype(np.int64) if wreq is not None else np.array([ctx.n], np.int64)
    # per-worker cycle (or explicit sequence) and phase
    cycles: list[np.ndarray] = []
    phases: list[int] = []
    wc = np.zeros((workers, k), dtype=np.int64)
    counted = False
    if isinstance(lb, RoundRobin) and lb.weighted:
        # EDF: the kernels step one period and copy it while it provably repeats (bit-exact with stepping)
        inv = np.array([1.0 / float(w) for w in lb.weights], dtype=np.float64)
        for w in range(workers):
            st = create_with_picks([float(x) for x in lb.weights], int(seeds[w]) & 0xFFFFFFFF)
            state = (np.array(st.deadline, np.float64), np.array(st.order, np.int64), np.float64(st.current_time),
                     np.int64(st.order_offset), inv, np.int64(m_w[w]))
            if ctx.want_dest:
                seq = np.empty(int(m_w[w]), dtype=np.int32)
                kb.edf_fill(*state, seq, wc[w])
                cycles.append(seq)
            else:
                kb.edf_counts(*state, wc[w])
            phases.append(0)
        counted = True
        kind_note = "EDF (createWithPicks with a random phase per worker), float64 as in Envoy"
    elif isinstance(lb, RoundRobin):
        base = np.arange(k, dtype=np.int32)
        for w in range(workers):
            cycles.append(base)
            phases.append(int(seeds[w]) % k)
        kind_note = "strict cycle from a random start per worker"
    else:  # SmoothWRR
        p = lb.period()
        for w in range(workers):
            if p <= MAX_CYCLE:
                cycles.append(lb.cycle() if w == 0 else cycles[0])
            else:
                cycles.append(lb.sequence(int(m_w[w])))
            phases.append(0)
        kind_note = "nginx smooth weighted round robin, every worker from the initial state"
    for w in range(0 if counted else workers):
        cyc, ph, m = cycles[w], phases[w], int(m_w[w])
        length = cyc.shape[0]
        if length == 0 or m == 0:
            continue
        full, rest = divmod(m, length)
        if full:
            wc[w] += full * np.bincount(cyc, minlength=k)
        if rest:
            idx = (ph + np.arange(rest)) % length
            wc[w] += np.bincount(cyc[idx], minlength=k)
    dest = None
    if ctx.want_dest:
        if wreq is None and counted:
            dest = cycles[0]  # the one worker's EDF sequence is the destinations
        elif wreq is None:
            dest = np.empty(ctx.n, dtype=np.int32)
            kb.cycle_fill(cycles[0], np.int64(phases[0]), np.int64(ctx.n), dest)
        else:
            dest = np.empty(ctx.n, dtype=np.int32)
            flat = np.concatenate(cycles).astype(np.int32)
            lengths = np.array([c.shape[0] for c in cycles], dtype=np.int64)
            offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
            kb.cycle_dest_workers(wreq.astype(np.int64), flat, offsets, lengths, np.asarray(phases, np.int64), dest)
    elapsed = time.perf_counter() - t0
    ctx.notes.append(kind_note)
    if workers > 1:
        ctx.notes.append(f"{workers} workers: connections spread uniformly at random over workers")
    return ctx.result(wc.sum(axis=0), lb.expected_shares(), "long-run", elapsed,
                      worker_counts=wc if workers > 1 else None, destinations=dest, connections=n_conn)


def _run_random(ctx: _Run) -> BalancerResult:
    import numpy as np

    from meshstat._kernels import balancers as kb

    lb = ctx.lb
    k = lb.n_hosts
    keys = ctx.keys(2, ctx.n)
    t0 = time.perf_counter()
    dest = np.empty(ctx.n, dtype=np.int32)
    kb.random_dest(np.int64(k), keys, np.int64(ctx.block_log2), np.int64(ctx.n), dest)
    counts = _bincount(dest, k)
    elapsed = time.perf_counter() - t0
    if lb.weights is not None and len(set(lb.weights)) > 1:
        ctx.notes.append("Envoy RANDOM ignores load_balancing_weight (verified with 1.40): uniform shares")
    return ctx.result(counts, lb.expected_shares(), "random", elapsed, destinations=dest if ctx.want_dest else None,
                      connections=ctx.n)


def _run_per_connection_cycle(ctx: _Run) -> BalancerResult:
    """nft numgen inc and IPVS rr/wrr: one shared cycle stepped per new connection."""
    import numpy as np

    lb = ctx.lb
    k = lb.n_hosts
    t0 = time.perf_counter()
    lay = ctx.layout()
    m = lay.n_connections
    cyc = np.asarray(lb.cycle(), dtype=np.int32)
    conn_dest = cyc[np.arange(m) % cyc.shape[0]]
    counts = np.bincount(conn_dest, weights=lay.conn_size, minlength=k).astype(np.int64)
    dest = lay.requests_of(conn_dest).astype(np.int32) if ctx.want_dest else None
    elapsed = time.perf_counter() - t0
    ctx.notes.append(f"one decision per new connection: {m:,} connections")
    return ctx.result(counts, lb.expected_shares(), "long-run", elapsed, destinations=dest, connections=m)


def key_masses(shares: Sequence[Fraction]) -> tuple[int, ...]:
    """Key popularities as alias-table masses: integers summing to ``2**64`` (largest remainder)."""
    return tuple(round_to_total(list(shares), 1 << 64))


def _run_hash(ctx: _Run) -> BalancerResult:
    import numpy as np

    from meshstat._kernels import balancers as kb
    from meshstat._kernels import hashing as kh

    lb = ctx.lb
    k = lb.n_hosts
    keys = ctx.keys(2, ctx.n)
    dest = np.empty(ctx.n, dtype=np.int32)
    if ctx.wl.has_keys:
        hashes = key_hashes(ctx.wl)
        host_of_key = lb.lookup(hashes)
        del hashes
        table, bits = alias_table(ctx.wl.key_masses64())
        t0 = time.perf_counter()
        kidx = np.empty(ctx.n, dtype=np.int64)
        kb.alias_pick(table, np.int64(bits), keys, np.int64(ctx.block_log2), np.int64(ctx.n), kidx)
        kb.gather(host_of_key, kidx, dest)
        counts = _bincount(dest, k)
        elapsed = time.perf_counter() - t0
        expected = keyed_host_shares(host_of_key, ctx.wl, k)
        kind = "keys"
        popularity = "uniform" if ctx.wl.zipf == 0 else f"Zipf s={ctx.wl.zipf:g}"
        ctx.notes.append(f"{ctx.wl.key_count:,} keys ({popularity}), "
                         "hash = xxHash64(header value)")
    else:
        t0 = time.perf_counter()
        if isinstance(lb, RingHash):
            rh, hosts = lb.ring()
            g, gbits = lb.guide()
            kh.ring_random(rh, hosts, g, np.int64(gbits), keys, np.int64(ctx.block_log2), np.int64(ctx.n), dest)
        else:
            kh.maglev_random(lb.table(), keys, np.int64(ctx.block_log2), np.int64(ctx.n), dest)
        counts = _bincount(dest, k)
        elapsed = time.perf_counter() - t0
        expected = lb.expected_shares()
        kind = "hash-space"
        ctx.notes.append("no hash keys: every request hashes a random 64-bit value (Envoy's fallback)")
    if isinstance(lb, RingHash):
        ctx.notes.append(f"ring of {sum(lb.point_counts()):,} points")
    else:
        ctx.notes.append(f"Maglev table of {lb.table_size:,} entries")
    return ctx.result(counts, expected, kind, elapsed, destinations=dest if ctx.want_dest else None,
                      connections=ctx.n)


def _run_least_request(ctx: _Run, quantiles: tuple[float, ...]) -> BalancerResult:
    import numpy as np

    from meshstat._kernels import least_request as kl

    lb: LeastRequest = ctx.lb
    k = lb.n_hosts
    wl = ctx.wl
    sts = wl.service_times(k)
    per_backend = wl.servers_per_backend(k)
    servers = np.asarray(wl.kernel_servers(k, ctx.n), dtype=np.int64)
    kinds = {s.code for s in sts}
    if len(kinds) != 1:
        raise InvalidArgument("least request: every backend's service time must be of the same kind")
    svc_kind = kinds.pop()
    svc_a = np.array([s.mean for s in sts], dtype=np.float64)
    svc_b = np.array([s.sigma for s in sts], dtype=np.float64)
    finite = all(s > 0 for s in per_backend)
    capacity = sum(s / float(m) for s, m in zip(per_backend, svc_a, strict=True)) if finite else float("inf")
    rate = wl.arrival_rate
    if rate is None:
        rate = 0.8 * capacity if finite else 1000.0
        ctx.notes.append(f"arrival rate {rate:,.6g}/s (80% of the backends' capacity)")
    if finite and rate >= capacity:
        ctx.notes.append(f"arrival rate {rate:,.6g}/s >= capacity {capacity:,.6g}/s: queues grow without bound")
    words = 3 + max(lb.choice_count, k)
    nb = -(-ctx.n // (1 << ctx.block_log2))
    keys = seeding.block_keys(ctx.ch[2], nb)
    seed = int(ctx.ch[0].generate_state(1, np.uint64)[0])
    weights = np.asarray(lb.weights or (1,) * k, dtype=np.float64)
    if lb.weighted:
        st = create_with_picks([float(w) for w in weights], seed & 0xFFFFFFFF)
        deadline = np.array(st.deadline, np.float64)
        order = np.array(st.order, np.int64)
        edf_state = np.array([st.current_time, float(st.order_offset)], np.float64)
    else:
        deadline = np.zeros(k, np.float64)
        order = np.zeros(k, np.int64)
        edf_state = np.zeros(2, np.float64)
    dest = np.empty(ctx.n, dtype=np.int32)
    latency = np.empty(ctx.n, dtype=np.float64)
    area = np.zeros(k, dtype=np.float64)
    max_active = np.zeros(k, dtype=np.int64)
    del words
    t0 = time.perf_counter()
    end = kl.simulate_lr(
        bool(lb.weighted), weights, np.float64(lb.active_request_bias), np.int64(lb.choice_count),
        lb.selection_method == "full_scan", deadline, order, edf_state,
        np.float64(rate), np.int64(svc_kind), svc_a, svc_b, servers,
        keys, np.int64(ctx.block_log2), np.int64(ctx.n), dest, latency, area, max_active,
    )
    elapsed = time.perf_counter() - t0
    q = np.asarray(quantiles, dtype=np.float64)
    lq = np.full((k, q.size), np.nan)
    ml = np.full(k, np.nan)
    grouped = np.empty(ctx.n, dtype=np.float64)
    bounds = np.zeros(k + 1, dtype=np.int64)
    kl.group_by(dest, np.int64(k), latency, grouped, bounds)
    counts = np.diff(bounds)  # requests per host

    def host_stats(h: int) -> None:
        seg = grouped[bounds[h] : bounds[h + 1]]
        if seg.size:
            lq[h] = np.quantile(seg, q)
            ml[h] = seg.mean()

    if ctx.n >= PARALLEL_QUANTILES and k > 1:
        # numpy's partition releases the GIL: hosts' quantiles on two threads (exact either way)
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=2) as pool:
            list(pool.map(host_stats, range(k)))
    else:
        for h in range(k):
            host_stats(h)
    duration = float(end)
    ctx.notes.append(
        f"Poisson arrivals {rate:,.6g}/s, service {', '.join(sorted({str(s) for s in sts}))} s, "
        f"servers per host {sorted(set(per_backend))} (0 = unlimited)"
    )
    if lb.weighted:
        ctx.notes.append("unequal weights: EDF with weight w / (active + 1) ** bias")
    return ctx.result(
        counts, lb.expected_shares(), "idle", elapsed, destinations=dest if ctx.want_dest else None,
        connections=ctx.n, quantiles=tuple(float(x) for x in q), latency_quantiles=lq, mean_latency=ml,
        mean_active=area / duration if duration > 0 else np.zeros(k), max_active=max_active, duration=duration,
    )


# ----------------------------------------------------------------- disruption


@dataclass(frozen=True)
class DisruptionResult:
    """Keys whose host changed between two hash balancers.

    Attributes
    ----------
    n_keys : int
    moved : int
        Keys whose host (by key string) differs.
    moved_share : float
        ``moved / n_keys``.
    unavoidable : int
        Keys that had to move: they were on a removed host.
    before_counts, after_counts : dict
        Keys per host before and after.
    removed, added : tuple of str
        Hosts only before / only after.
    """

    n_keys: int
    moved: int
    moved_share: float
    unavoidable: int
    before_counts: dict[str, int]
    after_counts: dict[str, int]
    removed: tuple[str, ...]
    added: tuple[str, ...]
    policy: str

    @property
    def excess(self) -> int:
        """Keys that moved although their host stayed."""
        return self.moved - self.unavoidable


def disruption(
    lb_before: RingHash | Maglev,
    lb_after: RingHash | Maglev,
    keys: int | Sequence[str] | Workload | np.ndarray,
) -> DisruptionResult:
    """Share of keys that move to another host when the host set changes.

    Parameters
    ----------
    lb_before, lb_after : RingHash or Maglev
        Hosts are compared by key string (``"ip:port"``).
    keys : int, sequence of str, Workload or uint64 array
        ``K`` (header values ``key-0``...), explicit header values, a workload
        with keys, or request hashes.
    """
    import numpy as np

    for lb in (lb_before, lb_after):
        if not isinstance(lb, RingHash | Maglev):
            raise InvalidArgument("disruption compares RingHash or Maglev balancers")
    if isinstance(keys, int):
        hashes = key_hashes(Workload(keys=keys))
    elif isinstance(keys, Workload):
        hashes = key_hashes(keys)
    elif isinstance(keys, np.ndarray):
        hashes = np.ascontiguousarray(keys, dtype=np.uint64)
    else:
        hashes = hash_strings([str(x) for x in keys])
    if hashes.size == 0:
        raise InvalidArgument("disruption needs at least one key")
    a = np.asarray(lb_before.endpoints, dtype=object)[lb_before.lookup(hashes)]
    b = np.asarray(lb_after.endpoints, dtype=object)[lb_after.lookup(hashes)]
    moved = int(np.sum(a != b))
    removed = tuple(e for e in lb_before.endpoints if e not in set(lb_after.endpoints))
    added = tuple(e for e in lb_after.endpoints if e not in set(lb_before.endpoints))
    unavoidable = int(np.sum(np.isin(a, np.asarray(removed, dtype=object)))) if removed else 0
    bc = {e: int(np.sum(a == e)) for e in lb_before.endpoints}
    ac = {e: int(np.sum(b == e)) for e in lb_after.endpoints}
    return DisruptionResult(
        n_keys=int(hashes.size), moved=moved, moved_share=moved / hashes.size, unavoidable=unavoidable,
        before_counts=bc, after_counts=ac, removed=removed, added=added, policy=lb_before.policy,
    )
