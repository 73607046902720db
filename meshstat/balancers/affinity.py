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
from dataclasses import dataclass
from typing import Any

from meshstat import model
from meshstat.balancers.hashing import Maglev, RingHash, endpoints_weights, hash_numbered
from meshstat.errors import InvalidArgument

__all__ = [
    "MAX_CLIENT_ADDRESSES",
    "XT_RECENT_IP_LIST_TOT",
    "HashAffinity",
    "KubeProxyAffinity",
    "check_client_addresses",
    "client_address",
    "client_address_hashes",
    "client_addresses",
]

#: ``xt_recent`` module parameter ``ip_list_tot`` default.
XT_RECENT_IP_LIST_TOT = 100
#: Service ``sessionAffinityConfig.clientIP.timeoutSeconds`` default (3 h).
DEFAULT_TIMEOUT = 10800
#: kube-proxy nftables affinity set size.
NFT_SET_SIZE = 65535


#: Distinct client source addresses: 250 per /24 (``.1`` to ``.250``) from ``10.1.0.0/16`` to
#: ``10.255.0.0/16``: 16,320,000 clients.
MAX_CLIENT_ADDRESSES = 255 * 256 * 250

# client i: 10.{1 + i // 64000}.{(i // 250) % 256}.{1 + i % 250} as (div, mod, add) fields
_ADDRESS_LITERALS = ("10.", ".", ".", "")
_ADDRESS_FIELDS = ((64_000, 0, 1), (250, 256, 0), (1, 250, 1))


def client_address(i: int) -> str:
    """Source address of client ``i``: ``10.1.0.1``, ``10.1.0.2``, ... 250 per /24, then the next /16."""
    if not 0 <= i < MAX_CLIENT_ADDRESSES:
        raise InvalidArgument(f"client index must be in [0, {MAX_CLIENT_ADDRESSES:,}), got {i:,}")
    return f"10.{1 + i // 64_000}.{(i // 250) % 256}.{1 + i % 250}"


def client_addresses(n: int) -> tuple[str, ...]:
    """``n`` client source addresses (:func:`client_address` of ``0 .. n-1``)."""
    check_client_addresses(n)
    return tuple(client_address(i) for i in range(n))


def check_client_addresses(n: int) -> None:
    """Refuse more clients than there are client addresses (:data:`MAX_CLIENT_ADDRESSES`)."""
    if n > MAX_CLIENT_ADDRESSES:
        raise InvalidArgument(
            f"clients must be at most {MAX_CLIENT_ADDRESSES:,} for a source-address hash, got {n:,}: each client "
            "is a source address, 250 per /24 from 10.1.0.0/16 to 10.255.0.0/16"
        )


def client_address_hashes(indices: Any) -> Any:
    """xxHash64 of the source addresses of clients ``indices`` (uint64), without building their strings."""
    import numpy as np

    idx = np.asarray(indices, dtype=np.int64)
    if idx.size and (int(idx.min()) < 0 or int(idx.max()) >= MAX_CLIENT_ADDRESSES):
        raise InvalidArgument(f"client indices must be in [0, {MAX_CLIENT_ADDRESSES:,})")
    return hash_numbered(list(_ADDRESS_LITERALS), list(_ADDRESS_FIELDS), idx)


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
        eps, _ = endpoints_weights(endpoints, None)
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
