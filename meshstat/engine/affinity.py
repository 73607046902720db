"""Session affinity over many connections: :func:`simulate_affinity`.

The affinities themselves (kube-proxy ``sessionAffinity: ClientIP`` with its
xt_recent lists or nftables sets, Envoy hash stickiness on the client IP) are
defined in :mod:`meshstat.balancers.affinity`, whose docstring describes the
mechanisms; here connections from many clients are routed through them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from typing import TYPE_CHECKING, Any

from meshstat.balancers.affinity import (
    HashAffinity,
    KubeProxyAffinity,
    check_client_addresses,
    client_address_hashes,
)
from meshstat.engine import seeding
from meshstat.engine.routes import simulate
from meshstat.errors import InvalidArgument

if TYPE_CHECKING:
    import numpy as np

__all__ = ["AffinityResult", "simulate_affinity"]


@dataclass(frozen=True, eq=False)
class AffinityResult:
    """What :func:`simulate_affinity` returns.

    Attributes
    ----------
    counts : int64[k]
        Connections per endpoint.
    expected : tuple of Fraction
        Share per endpoint without affinity.
    sticky_share : float
        Among connections of a client that had connected before, the share
        that went to the same endpoint as the client's previous connection.
    clients_broken : int
        Clients that were sent to more than one endpoint.
    evictions : int64[k]
        xt_recent entries dropped for lack of room (iptables) or set elements
        refused (nftables), per endpoint.
    destinations : int32[m]
        Endpoint of every connection.
    conn_client : int64[m]
        Client of every connection.
    """

    aff: Any
    n: int
    clients: int
    backends: tuple[str, ...]
    counts: np.ndarray
    expected: tuple[Fraction, ...]
    sticky_share: float
    clients_broken: int
    evictions: np.ndarray
    destinations: np.ndarray
    conn_client: np.ndarray
    seed_entropy: int
    notes: tuple[str, ...] = field(default=())


def _sticky(dest: np.ndarray, client: np.ndarray, clients: int) -> tuple[float, int]:
    import numpy as np

    order = np.lexsort((np.arange(client.size), client))
    c = client[order]
    d = dest[order]
    same_client = c[1:] == c[:-1]
    repeat = int(same_client.sum())
    stay = int(np.sum(same_client & (d[1:] == d[:-1])))
    broken = len(np.unique(c[1:][same_client & (d[1:] != d[:-1])]))
    return (stay / repeat if repeat else 1.0), broken


def simulate_affinity(
    aff: KubeProxyAffinity | HashAffinity,
    n_connections: int,
    *,
    clients: int,
    connection_rate: float = 1.0,
    order: str = "random",
    rng: None | int | np.random.SeedSequence | np.random.Generator = None,
) -> AffinityResult:
    """Route ``n_connections`` new connections from ``clients`` source IPs.

    Parameters
    ----------
    aff : KubeProxyAffinity or HashAffinity
    n_connections : int
    clients : int
    connection_rate : float
        New connections per second in total (sets the clock for the timeout).
    order : {"random", "cyclic"}
        Which client opens each connection: uniformly at random, or clients
        ``0, 1, ..., C-1, 0, 1, ...`` in turn (the case that defeats a 100-entry list
        as soon as ``C > 100``).
    rng : seed
    """
    import numpy as np

    from meshstat._kernels import balancers as kb

    if isinstance(n_connections, bool) or not isinstance(n_connections, int) or n_connections < 1:
        raise InvalidArgument(f"n_connections must be a positive integer, got {n_connections!r}")
    if isinstance(clients, bool) or not isinstance(clients, int) or clients < 1:
        raise InvalidArgument(f"clients must be a positive integer, got {clients!r}")
    if order not in ("random", "cyclic"):
        raise InvalidArgument(f"order must be random or cyclic, got {order!r}")
    if isinstance(aff, HashAffinity):
        check_client_addresses(clients)
    root = seeding.root_seed_sequence(rng)
    entropy = int(root.entropy)  # type: ignore[arg-type]
    ch_client, ch_choice = root.spawn(2)
    m = n_connections
    if order == "cyclic":
        conn_client = np.arange(m, dtype=np.int64) % clients
    else:
        conn_client = np.empty(m, dtype=np.int64)
        keys = seeding.block_keys(ch_client, -(-m // seeding.BLOCK_SIZE))
        kb.random_dest(np.int64(clients), keys, np.int64(seeding.BLOCK_LOG2), np.int64(m), conn_client)
    times = np.arange(m, dtype=np.float64) / float(connection_rate)
    k = aff.n_hosts
    notes: list[str] = []
    ev = np.zeros(k, dtype=np.int64)
    if isinstance(aff, HashAffinity):
        # only the clients that open a connection are hashed: work linear in the connections
        seen, which = np.unique(conn_client, return_inverse=True)
        hosts = aff.lb.lookup(client_address_hashes(seen))
        dest = hosts[which].astype(np.int32)
        expected = aff.lb.expected_shares()
        notes.append("hash = xxHash64(client source IP): a client stays on one host while the host set is unchanged")
    else:
        route = aff.route()
        choice = simulate(route, m, rng=ch_choice, destinations=True).destinations.astype(np.int64)
        dest = np.empty(m, dtype=np.int32)
        if aff.mode == "iptables":
            kb.recent_affinity(conn_client, times, choice, np.int64(k), np.float64(aff.timeout),
                               np.int64(aff.list_size), bool(aff.reap), dest, ev)
            notes.append(f"xt_recent lists of at most {aff.list_size} addresses per endpoint, timeout {aff.timeout:g} s")
        else:
            kb.set_affinity(conn_client, times, choice, np.int64(k), np.float64(aff.timeout),
                            np.int64(aff.list_size), dest, ev)
            notes.append(f"nft affinity sets of at most {aff.list_size} elements, timeout {aff.timeout:g} s")
        expected = route.exact_shares()
    counts = np.bincount(dest, minlength=k).astype(np.int64)
    sticky, broken = _sticky(dest, conn_client, clients)
    return AffinityResult(
        aff=aff, n=m, clients=clients, backends=tuple(aff.endpoints), counts=counts, expected=tuple(expected),
        sticky_share=sticky, clients_broken=broken, evictions=ev, destinations=dest, conn_client=conn_client,
        seed_entropy=entropy, notes=tuple(notes),
    )
