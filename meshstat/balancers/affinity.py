"""Session affinity: kube-proxy ClientIP (iptables ``-m recent``, nftables sets) and Envoy hash stickiness.

kube-proxy iptables mode (``pkg/proxy/iptables/proxier.go:
writeServiceToEndpointRules``): for ``sessionAffinity: ClientIP`` every
endpoint has an xt_recent list named after its ``KUBE-SEP`` chain; before the
random cascade, one ``-m recent --rcheck --seconds T --reap`` rule per endpoint
(endpoint order) sends a client seen within ``T`` seconds back to that
endpoint, and the endpoint chain does ``--set``. A list holds at most
``ip_list_tot`` = 100 source addresses (``net/netfilter/xt_recent.c``); adding a
101st evicts the least recently seen one, so affinity silently breaks for
busy services (measured: 130 clients -> 100 entries, the oldest gone).

kube-proxy nftables mode (``pkg/proxy/nftables/proxier.go``): one dynamic set
per endpoint (``timeout T``, ``size 65535``), ``ip saddr @affinity-... goto
endpoint-...`` before ``numgen random``, refreshed with ``update @set { ip
saddr }``; a full set refuses new elements.

Envoy: a route ``hash_policy`` on ``connection_properties: {source_ip: true}``
with RING_HASH or MAGLEV hashes ``xxHash64(client ip)``: every client sticks to
one host as long as the host set does not change.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import TYPE_CHECKING, Any

from meshstat.balancers.hashing import Maglev, RingHash, _endpoints_weights, hash_strings
from meshstat.errors import InvalidArgument

if TYPE_CHECKING:
    import numpy as np

__all__ = [
    "AffinityResult",
    "HashAffinity",
    "KubeProxyAffinity",
    "XT_RECENT_IP_LIST_TOT",
    "client_addresses",
    "simulate_affinity",
]

#: ``xt_recent`` module parameter ``ip_list_tot`` default.
XT_RECENT_IP_LIST_TOT = 100
#: Service ``sessionAffinityConfig.clientIP.timeoutSeconds`` default (3 h).
DEFAULT_TIMEOUT = 10800
#: kube-proxy nftables affinity set size.
NFT_SET_SIZE = 65535


def client_addresses(n: int) -> tuple[str, ...]:
    """``n`` client source addresses ``10.1.X.Y``."""
    return tuple(f"10.1.{i // 250}.{1 + i % 250}" for i in range(n))


@dataclass(frozen=True, eq=False, init=False)
class KubeProxyAffinity:
    """kube-proxy ``sessionAffinity: ClientIP`` over ``endpoints``.

    Parameters
    ----------
    endpoints : int or sequence of str
        Endpoints in kube-proxy's order.
    timeout : float
        ``timeoutSeconds`` (default 10800).
    mode : {"iptables", "nftables"}
    list_size : int
        xt_recent ``ip_list_tot`` (iptables) or the set size (nftables).
    reap : bool
        ``--reap`` (kube-proxy sets it).
    """

    endpoints: tuple[str, ...]
    timeout: float
    mode: str
    list_size: int
    reap: bool

    policy = "affinity"
    unit = "connection"

    def __init__(self, endpoints: int | Sequence[str], *, timeout: float = DEFAULT_TIMEOUT, mode: str = "iptables",
                 list_size: int | None = None, reap: bool = True):
        eps, _ = _endpoints_weights(endpoints, None)
        if mode not in ("iptables", "nftables"):
            raise InvalidArgument(f"affinity mode must be iptables or nftables, got {mode!r}")
        if not timeout > 0:
            raise InvalidArgument(f"affinity timeout must be positive, got {timeout!r}")
        size = list_size if list_size is not None else (XT_RECENT_IP_LIST_TOT if mode == "iptables" else NFT_SET_SIZE)
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise InvalidArgument(f"list size must be a positive integer, got {size!r}")
        object.__setattr__(self, "endpoints", eps)
        object.__setattr__(self, "timeout", float(timeout))
        object.__setattr__(self, "mode", mode)
        object.__setattr__(self, "list_size", size)
        object.__setattr__(self, "reap", bool(reap))

    @property
    def n_hosts(self) -> int:
        """Number of endpoints."""
        return len(self.endpoints)

    def route(self) -> Any:
        """The random choice for clients without affinity (kube-proxy cascade or numgen)."""
        from meshstat import model

        if self.mode == "iptables":
            return model.Route(root=model.Cascade.kube_proxy(self.n_hosts), name="kube-proxy")
        return model.Route(root=model.Weighted.from_weights([1] * self.n_hosts), name="numgen random")


@dataclass(frozen=True, eq=False)
class HashAffinity:
    """Envoy hash-policy stickiness on the client source IP over a RING_HASH or MAGLEV balancer."""

    lb: RingHash | Maglev

    policy = "hash_affinity"
    unit = "request"

    @property
    def endpoints(self) -> tuple[str, ...]:
        """The balancer's hosts."""
        return self.lb.endpoints

    @property
    def n_hosts(self) -> int:
        """Number of hosts."""
        return self.lb.n_hosts


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

    from meshstat import seeding
    from meshstat._kernels import balancers as kb
    from meshstat.engine import simulate

    if isinstance(n_connections, bool) or not isinstance(n_connections, int) or n_connections < 1:
        raise InvalidArgument(f"n_connections must be a positive integer, got {n_connections!r}")
    if isinstance(clients, bool) or not isinstance(clients, int) or clients < 1:
        raise InvalidArgument(f"clients must be a positive integer, got {clients!r}")
    if order not in ("random", "cyclic"):
        raise InvalidArgument(f"order must be random or cyclic, got {order!r}")
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
        hosts = aff.lb.lookup(hash_strings(client_addresses(clients)))
        dest = hosts[conn_client].astype(np.int32)
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
