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
from meshstat.balancers.hashing import Maglev, RingHash, endpoints_weights
from meshstat.errors import InvalidArgument

__all__ = [
    "HashAffinity",
    "KubeProxyAffinity",
    "XT_RECENT_IP_LIST_TOT",
    "client_addresses",
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
