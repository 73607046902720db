"""Round-robin family: Envoy ROUND_ROBIN (cycle / EDF), Envoy RANDOM, nginx smooth WRR,
nft ``numgen inc`` and IPVS ``rr`` / ``wrr``.

Envoy ROUND_ROBIN (``round_robin/round_robin_lb.h``, ``common/load_balancer_impl.cc:
EdfLoadBalancerBase``): every LB instance (one per worker thread) draws a 64-bit
``seed_``. With equal host weights it is the strict cycle
``hosts[(seed_ + k) % n]`` (``unweightedHostPick``). With unequal weights it is
the EDF scheduler of ``source/common/upstream/edf_scheduler.h`` built by
``createWithPicks(hosts, weight, seed_)``: ``picks = uint32(seed_) % 429496729``
emulated picks (weights ``w + 1e-13`` for the bulk, then single picks), after
which each pick takes the entry with the smallest ``(deadline, order_offset)``
and re-adds it with deadline ``current_time + 1 / w``. Over any
``sum(w)`` consecutive picks host ``i`` gets ``w_i`` picks up to floating-point
ties, so the long-run share is exactly ``w_i / sum(w)``. The kernels keep Envoy's
float64 arithmetic and tie-breaking bit for bit but do not step every pick: one
period of ``sum(w)`` picks is stepped and copied for as long as it provably
repeats (``meshstat._kernels.balancers._edf_repeats``: inside one binade of the
clock the deadlines are exact integer progressions).

Envoy RANDOM (``random/random_lb.cc: peekOrChoose``): ``hosts[r % n]``, weights
ignored (verified with 1.40).

nginx smooth weighted round robin (``ngx_http_upstream_round_robin.c:
ngx_http_upstream_get_peer``) over a parsed :class:`meshstat.parsers.nginx.Upstream`;
the cycle is computed by a numba kernel and tested equal to the pure-Python
reference in ``tests/reference_balancers.py``.

nft ``numgen inc mod N`` (``net/netfilter/nft_numgen.c: nft_ng_inc_gen``): a
counter shared by all CPUs starting so that the first new flow gets 0; one step
per new connection (NAT rules see the first packet of a flow only).

IPVS (``net/netfilter/ipvs/ip_vs_rr.c``, ``ip_vs_wrr.c``): ``rr`` cycles over
the real servers with weight > 0 starting at the first; ``wrr`` is the
gcd-stepped interleaved schedule. kube-proxy adds every real server with weight
1 (``pkg/proxy/ipvs/proxier.go: syncEndpoint``), so both are a plain cycle
there; graceful termination sets weight 0. Both decide per connection.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from math import gcd
from typing import TYPE_CHECKING

from meshstat.balancers.hashing import endpoints_weights
from meshstat.errors import InvalidArgument, ModelError

if TYPE_CHECKING:
    import numpy as np

__all__ = [
    "EDF_MAX_PICKS",
    "EdfState",
    "Ipvs",
    "NumgenInc",
    "Random",
    "RoundRobin",
    "SmoothWRR",
    "create_with_picks",
    "edf_picks",
]

#: ``createWithPicks``: ``picks = picks % 429496729`` (UINT_MAX / 10).
EDF_MAX_PICKS = 429496729
#: Longest cycle precomputed for smooth WRR / IPVS wrr (longer ones run step by step).
MAX_CYCLE = 1 << 24


@dataclass(frozen=True)
class EdfState:
    """An EDF scheduler: per-entry deadline and order offset, the clock and the next offset."""

    deadline: tuple[float, ...]
    order: tuple[int, ...]
    current_time: float
    order_offset: int


def create_with_picks(weights: Sequence[float], picks: int) -> EdfState:
    """Envoy ``EdfScheduler::createWithPicks(entries, weight, picks)`` (fixed weights), in float64.

    ``picks`` is reduced ``% 429496729``; the bulk ``floor(picks * w / W)`` picks per
    entry are emulated with weights ``w + 1e-13`` and the rest are real picks with
    the plain weights.
    """
    picks = int(picks) % EDF_MAX_PICKS
    ws = [float(w) for w in weights]
    if not ws or any(not w > 0 for w in ws):
        raise ModelError("EDF weights must be positive")
    aug = [w + 1e-13 for w in ws]
    wsum = 0.0
    for a in aug:
        wsum = wsum + a
    floor_picks = [int(a * picks / wsum) for a in aug]
    deadline: list[float] = []
    max_pick_time = 0.0
    so_far = 0
    for i, a in enumerate(aug):
        if floor_picks[i] > 0 and floor_picks[i] / a >= picks / wsum:
            floor_picks[i] -= 1
        pick_time = floor_picks[i] / a
        deadline.append((floor_picks[i] + 1) / a)
        max_pick_time = max(max_pick_time, pick_time)
        so_far += floor_picks[i]
    state = EdfState(tuple(deadline), tuple(range(len(ws))), max_pick_time, len(ws))
    rest = picks - so_far
    if rest > 0:
        state, _ = edf_picks(state, ws, rest)
    return state


def edf_picks(state: EdfState, weights: Sequence[float], n: int) -> tuple[EdfState, list[int]]:
    """``n`` ``pickAndAdd`` calls with fixed weights, in pure Python (the kernel's reference)."""
    dl = list(state.deadline)
    order = list(state.order)
    t = state.current_time
    off = state.order_offset
    inv = [1.0 / float(w) for w in weights]
    out = []
    for _ in range(n):
        j = min(range(len(dl)), key=lambda q: (dl[q], order[q]))
        t = dl[j]
        dl[j] = t + inv[j]
        order[j] = off
        off += 1
        out.append(j)
    return EdfState(tuple(dl), tuple(order), t, off), out


#: Most LB instances (Envoy ``--concurrency``, nginx ``worker_processes``: one per core in practice), and most
#: worker x host cells: every worker holds its own schedule and counts per host, and gets a row in the report.
MAX_WORKERS = 4096
MAX_WORKER_CELLS = 1 << 22


def _check_workers(workers: int, hosts: int) -> int:
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise InvalidArgument(f"workers must be a positive integer, got {workers!r}")
    if workers > MAX_WORKERS or workers * hosts > MAX_WORKER_CELLS:
        raise InvalidArgument(
            f"at most {MAX_WORKERS:,} workers and {MAX_WORKER_CELLS:,} worker x endpoint cells, got {workers:,} x "
            f"{hosts:,}: every worker is an LB instance with its own schedule and counts per endpoint"
        )
    return workers


@dataclass(frozen=True, eq=False, init=False)
class RoundRobin:
    """Envoy ROUND_ROBIN over ``endpoints`` with ``workers`` independent LB instances.

    Parameters
    ----------
    endpoints : int or sequence of str
        Hosts (or their number).
    weights : sequence of int, optional
        ``load_balancing_weight``; unequal weights switch to the EDF schedule.
    workers : int
        Envoy ``--concurrency``: one LB instance (own random seed) per worker.
    """

    endpoints: tuple[str, ...]
    weights: tuple[int, ...] | None
    workers: int

    policy = "round_robin"
    unit = "request"

    def __init__(self, endpoints: int | Sequence[str], weights: Sequence[int] | None = None, workers: int = 1):
        eps, ws = endpoints_weights(endpoints, weights)
        object.__setattr__(self, "endpoints", eps)
        object.__setattr__(self, "weights", ws)
        object.__setattr__(self, "workers", _check_workers(workers, len(self.endpoints)))

    @property
    def n_hosts(self) -> int:
        """Number of hosts."""
        return len(self.endpoints)

    @property
    def weighted(self) -> bool:
        """Whether Envoy builds an EDF scheduler (``hostWeightsAreEqual`` false and > 1 host)."""
        return self.weights is not None and len(set(self.weights)) > 1 and self.n_hosts > 1

    def expected_shares(self) -> tuple[Fraction, ...]:
        """Exact long-run share of every host: ``w / sum(w)`` (1/n unweighted)."""
        ws = self.weights if self.weighted else (1,) * self.n_hosts
        tot = sum(ws)  # type: ignore[arg-type]
        return tuple(Fraction(w, tot) for w in ws)  # type: ignore[union-attr]

    def sequence(self, seed: int, n: int) -> list[int]:
        """The first ``n`` picks (host indices) of one LB instance with ``seed_ = seed`` (pure Python)."""
        if not self.weighted:
            return [(seed + k) % self.n_hosts for k in range(n)]
        ws = [float(w) for w in self.weights]  # type: ignore[union-attr]
        st = create_with_picks(ws, seed & 0xFFFFFFFF)
        return edf_picks(st, ws, n)[1]


@dataclass(frozen=True, eq=False, init=False)
class Random:
    """Envoy RANDOM: ``hosts[r % n]`` per request; ``weights`` are accepted and ignored, as Envoy 1.40 does."""

    endpoints: tuple[str, ...]
    weights: tuple[int, ...] | None

    policy = "random"
    unit = "request"
    workers = 1

    def __init__(self, endpoints: int | Sequence[str], weights: Sequence[int] | None = None):
        eps, ws = endpoints_weights(endpoints, weights)
        object.__setattr__(self, "endpoints", eps)
        object.__setattr__(self, "weights", ws)

    @property
    def n_hosts(self) -> int:
        """Number of hosts."""
        return len(self.endpoints)

    def expected_shares(self) -> tuple[Fraction, ...]:
        """Uniform (up to the ``2**64 mod n`` bias of ``r % n``, below ``n / 2**64``)."""
        return tuple(Fraction(1, self.n_hosts) for _ in self.endpoints)


@dataclass(frozen=True, eq=False, init=False)
class SmoothWRR:
    """nginx smooth weighted round robin (``ngx_http_upstream_round_robin.c``), per worker process.

    Parameters
    ----------
    endpoints : int or sequence of str
    weights : sequence of int, optional
    down : sequence of bool, optional
        ``down`` servers are never chosen.
    backup : sequence of bool, optional
        ``backup`` servers are used only when every primary server is down.
    workers : int
        nginx worker processes without a shared ``zone``: each runs its own
        sequence from the same initial state.
    """

    endpoints: tuple[str, ...]
    weights: tuple[int, ...]
    down: tuple[bool, ...]
    backup: tuple[bool, ...]
    workers: int

    policy = "swrr"
    unit = "request"

    def __init__(
        self,
        endpoints: int | Sequence[str],
        weights: Sequence[int] | None = None,
        *,
        down: Sequence[bool] | None = None,
        backup: Sequence[bool] | None = None,
        workers: int = 1,
    ):
        eps, ws = endpoints_weights(endpoints, weights)
        n = len(eps)
        dn = tuple(bool(x) for x in down) if down is not None else (False,) * n
        bk = tuple(bool(x) for x in backup) if backup is not None else (False,) * n
        if len(dn) != n or len(bk) != n:
            raise InvalidArgument("down/backup flags need one entry per endpoint")
        object.__setattr__(self, "endpoints", eps)
        object.__setattr__(self, "weights", ws or (1,) * n)
        object.__setattr__(self, "down", dn)
        object.__setattr__(self, "backup", bk)
        object.__setattr__(self, "workers", _check_workers(workers, len(self.endpoints)))
        if not self.active():
            raise ModelError("every server is down: nginx answers 502 (no live upstreams)")

    @classmethod
    def from_upstream(cls, upstream: object, workers: int = 1) -> SmoothWRR:
        """From a parsed :class:`meshstat.parsers.nginx.Upstream` (round robin only)."""
        ups = upstream
        if getattr(ups, "balancer", "round_robin") != "round_robin":
            raise ModelError(f"upstream {ups.name} uses {ups.balancer}; only round robin is modelled")  # type: ignore[attr-defined]
        servers = ups.servers  # type: ignore[attr-defined]
        return cls(
            [s.address for s in servers], [s.weight for s in servers],
            down=[s.down for s in servers], backup=[s.backup for s in servers], workers=workers,
        )

    @property
    def n_hosts(self) -> int:
        """Number of servers."""
        return len(self.endpoints)

    def active(self) -> tuple[int, ...]:
        """Servers in use: primaries not down, else backups not down (as ``meshstat.parsers.nginx.Upstream.active``)."""
        prim = [i for i in range(self.n_hosts) if not self.backup[i] and not self.down[i]]
        if prim:
            return tuple(prim)
        return tuple(i for i in range(self.n_hosts) if self.backup[i] and not self.down[i])

    def kernel_weights(self) -> list[int]:
        """Weights of the active group (0 for every other server)."""
        act = set(self.active())
        return [w if i in act else 0 for i, w in enumerate(self.weights)]

    def period(self) -> int:
        """Cycle length: the sum of active weights."""
        return sum(self.kernel_weights())

    def expected_shares(self) -> tuple[Fraction, ...]:
        """Exact share over every whole period."""
        kw = self.kernel_weights()
        tot = sum(kw)
        return tuple(Fraction(w, tot) for w in kw)

    def cycle(self) -> np.ndarray:
        """One period of picks (int32), by the numba kernel."""
        import numpy as np

        from meshstat._kernels import balancers as kb

        p = self.period()
        if p > MAX_CYCLE:
            raise ModelError(f"smooth WRR period {p} is longer than {MAX_CYCLE}; use sequence()")
        out = np.empty(p, dtype=np.int32)
        kb.swrr_sequence(np.asarray(self.kernel_weights(), dtype=np.int64), np.zeros(self.n_hosts, np.int64),
                         np.int64(p), out)
        return out

    def sequence(self, n: int) -> np.ndarray:
        """The first ``n`` picks of a fresh worker (numba, step by step)."""
        import numpy as np

        from meshstat._kernels import balancers as kb

        out = np.empty(n, dtype=np.int32)
        kb.swrr_sequence(np.asarray(self.kernel_weights(), dtype=np.int64), np.zeros(self.n_hosts, np.int64),
                         np.int64(n), out)
        return out


@dataclass(frozen=True, eq=False, init=False)
class NumgenInc:
    """nft ``numgen inc mod N`` per new connection (``nft_numgen.c``); one counter for all CPUs."""

    endpoints: tuple[str, ...]
    offset: int

    policy = "numgen_inc"
    unit = "connection"
    workers = 1
    weights = None

    def __init__(self, endpoints: int | Sequence[str], offset: int = 0):
        eps, _ = endpoints_weights(endpoints, None)
        object.__setattr__(self, "endpoints", eps)
        object.__setattr__(self, "offset", int(offset) % len(eps))

    @property
    def n_hosts(self) -> int:
        """Number of map slots (endpoints)."""
        return len(self.endpoints)

    def expected_shares(self) -> tuple[Fraction, ...]:
        """Exact share of connections over every ``N`` connections."""
        return tuple(Fraction(1, self.n_hosts) for _ in self.endpoints)

    def cycle(self) -> list[int]:
        """One period: the first new flow gets slot 0 (counter initialised to modulus - 1)."""
        return [(self.offset + k) % self.n_hosts for k in range(self.n_hosts)]


@dataclass(frozen=True, eq=False, init=False)
class Ipvs:
    """IPVS ``rr`` or ``wrr`` per new connection, as kube-proxy configures it (weights 1 by default).

    Parameters
    ----------
    endpoints : int or sequence of str
        Real servers in the order they were added.
    weights : sequence of int, optional
        Real-server weights (0 = quiescent: graceful termination).
    scheduler : {"rr", "wrr"}
    """

    endpoints: tuple[str, ...]
    weights: tuple[int, ...]
    scheduler: str

    policy = "ipvs"
    unit = "connection"
    workers = 1

    def __init__(self, endpoints: int | Sequence[str], weights: Sequence[int] | None = None, scheduler: str = "rr"):
        eps, _ = endpoints_weights(endpoints, None)
        ws = tuple(int(w) for w in weights) if weights is not None else (1,) * len(eps)
        if len(ws) != len(eps) or any(w < 0 for w in ws):
            raise InvalidArgument("IPVS weights: one non-negative integer per real server")
        if not any(ws):
            raise ModelError("every IPVS real server has weight 0: no destination available")
        if scheduler not in ("rr", "wrr"):
            raise InvalidArgument(f"IPVS scheduler must be rr or wrr (others are not modelled), got {scheduler!r}")
        object.__setattr__(self, "endpoints", eps)
        object.__setattr__(self, "weights", ws)
        object.__setattr__(self, "scheduler", scheduler)

    @property
    def n_hosts(self) -> int:
        """Number of real servers."""
        return len(self.endpoints)

    def expected_shares(self) -> tuple[Fraction, ...]:
        """Exact share per full cycle: uniform over weight > 0 (rr) or ``w / sum(w)`` (wrr)."""
        if self.scheduler == "rr":
            live = [1 if w > 0 else 0 for w in self.weights]
        else:
            live = list(self.weights)
        tot = sum(live)
        return tuple(Fraction(x, tot) for x in live)

    def cycle(self) -> list[int]:
        """One full cycle of picks."""
        if self.scheduler == "rr":
            return [i for i, w in enumerate(self.weights) if w > 0]
        import numpy as np

        from meshstat._kernels import balancers as kb

        g = 0
        for w in self.weights:
            g = gcd(g, w)
        p = sum(w // g for w in self.weights)
        if p > MAX_CYCLE:
            raise ModelError(f"IPVS wrr cycle of {p} picks is too long to precompute")
        out = np.empty(p, dtype=np.int64)
        kb.ipvs_wrr_sequence(np.asarray(self.weights, dtype=np.int64), np.int64(p), out)
        return out.tolist()
