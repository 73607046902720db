"""Connection-level effects: the per-backend request split users see when connections are reused.

A stage of a :class:`meshstat.model.Route` decides per ``unit``: kube-proxy's
``-m statistic`` cascade (and IPVS, nft ``numgen``) per new **connection**
(the nat table sees the first packet of a flow only), Envoy's weighted
clusters per **request**. With ``C`` clients sending over connections reused
for ``R`` requests, every request of a connection lands where its connection
landed, so the per-backend request counts scatter far more than the
per-request multinomial: for fixed connection sizes ``R_c`` the variance of
backend ``b``'s count is

    ``sum_c R_c * A_b + sum_c R_c**2 * B_b``,
    ``A_b = sum_g P_g q_gb (1 - q_gb)``,  ``B_b = sum_g P_g q_gb**2 - p_b**2``,

where ``g`` runs over the outcomes of the connection-level stages at the top of
the route (probability ``P_g``) and ``q_gb`` is the share of ``b`` among the
requests of such a connection. For a route that decides only per connection
this is ``p_b (1 - p_b) sum_c R_c**2`` against ``p_b (1 - p_b) n`` per request:
a design effect of ``sum R_c**2 / n`` (``R`` for fixed sizes).

Stages that decide per connection but sit below a per-request stage are treated
as deciding per request (upstream connection pools are not modelled); a note
says so.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from typing import TYPE_CHECKING, Any

from meshstat import model
from meshstat.balancers.workload import Workload
from meshstat.compiler import alias_table
from meshstat.engine import seeding
from meshstat.errors import InvalidArgument

if TYPE_CHECKING:
    import numpy as np

__all__ = ["ConnectionResult", "connection_groups", "simulate_connections"]


@dataclass(frozen=True, eq=False)
class ConnectionResult:
    """What :func:`simulate_connections` returns (one row of numbers per backend).

    Attributes
    ----------
    backends : tuple of str
    n : int
        Requests per replicate.
    replicates : int
    connections : int
        Connections in the first replicate.
    counts : int64[replicates, k]
        Requests per backend in every replicate.
    expected : tuple of Fraction
        Exact share per backend (the same with or without connections).
    sd_observed : float64[k]
        Standard deviation of the count across replicates.
    sd_per_request : float64[k]
        ``sqrt(n p (1 - p))``: the spread if every request decided alone.
    sd_model : float64[k]
        The exact spread for the (first replicate's) connection sizes (module docstring).
    design_effect : float64[k]
        ``sd_model**2 / sd_per_request**2``.
    seed_entropy : int
    notes : tuple of str
    """

    route: Any
    backends: tuple[str, ...]
    n: int
    replicates: int
    connections: int
    counts: np.ndarray
    expected: tuple[Fraction, ...]
    sd_observed: np.ndarray
    sd_per_request: np.ndarray
    sd_model: np.ndarray
    design_effect: np.ndarray
    seed_entropy: int
    elapsed: float
    requests_per_connection: int | str | None
    clients: int
    notes: tuple[str, ...] = field(default=())

    def share_band(self, confidence_level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
        """Empirical central band of each backend's share over the replicates."""
        import numpy as np

        a = (1.0 - confidence_level) / 2.0
        shares = self.counts / float(self.n)
        return np.quantile(shares, a, axis=0), np.quantile(shares, 1.0 - a, axis=0)


#: Memory the connection layouts of :func:`simulate_connections` may take (sizes of every run).
MAX_CONNECTION_BYTES = 2 * 2**30


def connection_groups(route: Any) -> tuple[list[tuple[Fraction, Any, int]], tuple[str, ...], list[str]]:
    """Split ``route`` into connection-level outcomes.

    Returns ``(groups, backends, notes)``: each group is ``(probability, node,
    index of its first backend)``; a group's backends are contiguous in
    ``route.backends()`` order.
    """
    rt = route if isinstance(route, model.Route) else model.Route(root=route)
    notes: list[str] = []
    groups: list[tuple[Fraction, Any, int]] = []
    pos = 0

    def count(node: Any) -> int:
        return 1 if isinstance(node, model.Backend) else sum(count(c) for c in node.children)

    def below_has_connection_stage(node: Any) -> bool:
        if isinstance(node, model.Backend):
            return False
        return any(getattr(c, "unit", None) == "connection" or below_has_connection_stage(c)
                   for c in node.children if not isinstance(c, model.Backend))

    def walk(node: Any, p: Fraction) -> None:
        nonlocal pos
        if isinstance(node, model.Stage) and node.unit == "connection":
            for child, s in zip(node.children, node.shares(), strict=True):
                walk(child, p * s)
            return
        if isinstance(node, model.Stage) and below_has_connection_stage(node):
            notes.append(
                f"stage {node.name or node.policy} decides per request; connection-level stages below it "
                "are treated as deciding per request (upstream connection pools are not modelled)"
            )
        groups.append((p, node, pos))
        pos += count(node)

    walk(rt.root, Fraction(1))
    return groups, tuple(b.name for b in rt.backends()), notes


def _masses(shares: list[Fraction]) -> tuple[int, ...]:
    return tuple(model.round_to_total(shares, 1 << 64))


def simulate_connections(
    route: Any,
    n_requests: int,
    *,
    clients: int = 1,
    requests_per_connection: int | str | None = None,
    replicates: int = 200,
    rng: None | int | np.random.SeedSequence | np.random.Generator = None,
    block_log2: int = 16,
) -> ConnectionResult:
    """Per-backend request counts of ``replicates`` runs with connection reuse.

    Parameters
    ----------
    route : Route or Stage
        Any i.i.d. route (kube-proxy cascade, Envoy weighted clusters, trees).
    n_requests : int
        Requests per run.
    clients : int
        Clients sharing the requests.
    requests_per_connection : int, "geometric:MEAN", "all" or None
        Connection reuse (see :class:`~meshstat.balancers.Workload`).
    replicates : int
        Independent runs (the spread across them is the point).
    rng : seed
    block_log2 : int
        Stream block size (reproducibility contract).

    Examples
    --------
    >>> from meshstat import Cascade
    >>> r = simulate_connections(Cascade.kube_proxy(3), 3000, requests_per_connection=100, replicates=50, rng=1)
    >>> [round(float(x), 1) for x in r.design_effect]
    [100.0, 100.0, 100.0]
    """
    import time

    import numpy as np

    from meshstat._kernels import balancers as kb

    if isinstance(n_requests, bool) or not isinstance(n_requests, int) or n_requests < 1:
        raise InvalidArgument(f"n_requests must be a positive integer, got {n_requests!r}")
    if isinstance(replicates, bool) or not isinstance(replicates, int) or not 2 <= replicates <= 100_000:
        raise InvalidArgument(f"replicates must be an integer in [2, 100000], got {replicates!r}")
    if n_requests * replicates > 2 * 10**9:
        raise InvalidArgument("n_requests * replicates must be at most 2e9")
    wl = Workload(clients=clients, requests_per_connection=requests_per_connection)
    groups, backends, notes = connection_groups(route)
    k = len(backends)
    root = seeding.root_seed_sequence(rng)
    entropy = int(root.entropy)  # type: ignore[arg-type]
    ch_sizes, ch_conn, ch_req = root.spawn(3)
    size_seqs = ch_sizes.spawn(replicates)
    geometric = isinstance(wl.requests_per_connection, str) and wl.requests_per_connection.startswith("geometric")
    rpc = wl.requests_per_connection
    active = wl.active_clients(n_requests)
    if rpc is None:
        expect_m = n_requests
    elif rpc == "all":
        expect_m = active
    elif isinstance(rpc, int):
        expect_m = min(n_requests, -(-n_requests // rpc) + active)
    else:
        expect_m = min(n_requests, int(n_requests / float(str(rpc).split(":", 1)[1]) * 1.2) + 64 + active)
    if expect_m * (replicates if geometric else 1) * 24 + expect_m * replicates * 8 > MAX_CONNECTION_BYTES:
        raise InvalidArgument(
            f"about {expect_m:,} connections per run x {replicates:,} runs: the runs' connections would take "
            f"more than {MAX_CONNECTION_BYTES / 2**30:.0f} GiB (8 to 32 bytes each); use fewer requests, "
            "replicates or clients, or more requests per connection"
        )
    layouts = []
    for r in range(replicates if geometric else 1):
        keys = seeding.block_keys(size_seqs[r], -(-n_requests // (1 << block_log2))) if geometric else None
        layouts.append(wl.layout(n_requests, keys, block_log2))
    m = max(lay.n_connections for lay in layouts)
    sizes = np.zeros((replicates, m), dtype=np.int64)
    for r in range(replicates):
        lay = layouts[r if geometric else 0]
        sizes[r, : lay.n_connections] = lay.conn_size
    # alias tables
    gprob = [g[0] for g in groups]
    gtable, gbits = alias_table(_masses(gprob))
    tables = []
    bits = []
    offsets = []
    exact = [Fraction(0)] * k
    for p, node, off in groups:
        offsets.append(off)
        if isinstance(node, model.Backend):
            tables.append(np.zeros(2, np.uint64))
            bits.append(0)
            exact[off] += p
            continue
        sub = model.Route(root=node).exact_shares()
        for i, s in enumerate(sub):
            exact[off + i] += p * s
        if len(sub) == 1:
            tables.append(np.zeros(2, np.uint64))
            bits.append(0)
        else:
            t, b = alias_table(_masses(list(sub)))
            tables.append(t)
            bits.append(b)
    width = max(t.shape[0] for t in tables)
    req_tables = np.zeros((len(tables), width), dtype=np.uint64)
    for i, t in enumerate(tables):
        req_tables[i, : t.shape[0]] = t
    nb_conn = max(1, -(-m // (1 << block_log2)))
    nb_req = max(1, -(-n_requests // (1 << block_log2)))
    conn_keys = np.stack([seeding.block_keys(s, nb_conn) for s in ch_conn.spawn(replicates)])
    req_keys = np.stack([seeding.block_keys(s, nb_req) for s in ch_req.spawn(replicates)])
    out = np.zeros((replicates, k), dtype=np.int64)
    t0 = time.perf_counter()
    kb.connection_counts(gtable, np.int64(gbits), req_tables, np.asarray(bits, np.int64),
                         np.asarray(offsets, np.int64), sizes, conn_keys, req_keys, np.int64(block_log2), out)
    elapsed = time.perf_counter() - t0
    # exact spread for the first layout's sizes
    p = np.array([float(x) for x in exact])
    a_b = np.zeros(k)
    e_q2 = np.zeros(k)
    for prob, node, off in groups:
        sub = [Fraction(1)] if isinstance(node, model.Backend) else list(model.Route(root=node).exact_shares())
        for i, s in enumerate(sub):
            q = float(s)
            a_b[off + i] += float(prob) * q * (1 - q)
            e_q2[off + i] += float(prob) * q * q
    b_b = np.maximum(e_q2 - p * p, 0.0)
    cs = layouts[0].conn_size.astype(np.float64)
    var_model = cs.sum() * a_b + np.sum(cs * cs) * b_b
    var_req = n_requests * p * (1 - p)
    with np.errstate(divide="ignore", invalid="ignore"):
        deff = np.where(var_req > 0, var_model / var_req, np.nan)
    return ConnectionResult(
        route=route, backends=backends, n=n_requests, replicates=replicates,
        connections=layouts[0].n_connections, counts=out, expected=tuple(exact),
        sd_observed=out.std(axis=0, ddof=1), sd_per_request=np.sqrt(var_req), sd_model=np.sqrt(var_model),
        design_effect=deff, seed_entropy=entropy, elapsed=elapsed,
        requests_per_connection=wl.requests_per_connection, clients=clients, notes=tuple(notes),
    )
