"""kube-proxy services as found in a dump: the shared types, chain-name hashes and routes.

:class:`ServiceInfo` / :class:`EndpointInfo` describe one service port (cluster
IP, port, protocol, endpoints with their exact shares, session affinity,
traffic policy) whichever proxy mode wrote it (:mod:`meshstat.kubeproxy.iptables`,
:mod:`meshstat.kubeproxy.nftables`, :mod:`meshstat.kubeproxy.ipvs`). Chain
names are recomputed as kube-proxy does (``base32(sha256(...))``, kubernetes
``pkg/proxy/iptables/proxier.go: portProtoHash, servicePortEndpointChainName``
and ``pkg/proxy/nftables/proxier.go: servicePortChainNameBase``), which both
verifies the dump and finds a service by name when comments are missing.
:func:`service_route` turns a found service into a :class:`meshstat.model.Route`.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from meshstat import model
from meshstat.errors import InvalidArgument, ModelError
from meshstat.parsers.netfilter import Ruleset

__all__ = ["EndpointInfo", "ServiceInfo", "kube_chain_hash", "kube_nft_chain_hash", "service_route"]


def kube_chain_hash(service_port_name: str, protocol: str, endpoint: str = "") -> str:
    """kube-proxy's 16-character chain suffix (``KUBE-SVC-`` / ``KUBE-SEP-`` ...).

    ``base32(sha256(service_port_name + protocol.lower() + endpoint))[:16]``
    (kubernetes ``pkg/proxy/iptables/proxier.go: portProtoHash,
    servicePortEndpointChainName``).

    Examples
    --------
    >>> kube_chain_hash("kube-system/kube-dns:dns", "udp")
    'TCOU7JCQXEZGVUNU'
    """
    digest = hashlib.sha256((service_port_name + protocol.lower() + endpoint).encode()).digest()
    return base64.b32encode(digest).decode()[:16]


def kube_nft_chain_hash(base: str) -> str:
    """kube-proxy nftables mode's 8-character prefix of ``base`` (``"ns/svc/tcp/port"``).

    kubernetes ``pkg/proxy/nftables/proxier.go: hashAndTruncate``.
    """
    return base64.b32encode(hashlib.sha256(base.encode()).digest()).decode()[:8]


@dataclass(frozen=True, slots=True)
class EndpointInfo:
    """One endpoint of a service chain, with its exact share in that chain.

    ``share_exact`` is False where the chain is a cascade of more than
    :data:`meshstat.model.MAX_EXACT_RULES` rules: ``share`` is then on the
    ``2**-64`` grid (:meth:`meshstat.model.Stage.expected_shares`).
    """

    address: str
    chain: str | None
    share: Fraction
    threshold: int | None = None
    slots: tuple[tuple[int, int], ...] = ()
    line: int | None = None
    hash_ok: bool | None = None
    share_exact: bool = True


@dataclass(frozen=True, slots=True)
class ServiceInfo:
    """A kube-proxy service port as found in a dump.

    Attributes
    ----------
    name : str
        ``"ns/svc:port"`` (``"ns/svc"`` for an unnamed port), or the chain name
        when the dump has no comment naming it.
    protocol : str
    cluster_ip : str or None
    port : int or None
    cluster_chain, local_chain : str or None
        ``KUBE-SVC-``/``KUBE-SVL-`` (nft: ``service-``/``local-``) chains.
    endpoints, local_endpoints : tuple of EndpointInfo
        The endpoints of the cluster-policy and local-policy chains.
    affinity_timeout : int or None
        ClientIP session affinity timeout in seconds (None: no affinity).
    internal_policy, external_policy : str or None
        ``"Cluster"`` or ``"Local"``.
    external_ips, node_ports : tuple
    hash_ok : bool or None
        Whether the chain name equals kube-proxy's hash of ``name`` and protocol.
    rejected : bool
        No endpoints: kube-proxy rejects the traffic.
    """

    name: str
    protocol: str
    cluster_ip: str | None
    port: int | None
    cluster_chain: str | None
    local_chain: str | None
    endpoints: tuple[EndpointInfo, ...]
    local_endpoints: tuple[EndpointInfo, ...] = ()
    affinity_timeout: int | None = None
    internal_policy: str | None = "Cluster"
    external_policy: str | None = None
    external_ips: tuple[str, ...] = ()
    node_ports: tuple[int, ...] = ()
    hash_ok: bool | None = None
    rejected: bool = False
    dialect: str = "iptables"
    source: str = ""
    line: int | None = None
    stage: Any = field(default=None, repr=False, compare=False)
    local_stage: Any = field(default=None, repr=False, compare=False)

    @property
    def namespace(self) -> str:
        """The namespace part of :attr:`name`."""
        return self.name.split("/", 1)[0]

    @property
    def session_affinity(self) -> str:
        """``"ClientIP"`` or ``"None"`` (the Service API's words)."""
        return "ClientIP" if self.affinity_timeout is not None else "None"


def _family_of(rs: Ruleset, family: str | None) -> str:
    if family is not None:
        return family
    if rs.dialect == "nft":
        for fam, _name in rs.tables:
            return fam
        return "ip"
    return "ip" if ("ip", "nat") in rs.tables or not any(f == "ip6" for f, _ in rs.tables) else "ip6"


def service_route(info: ServiceInfo, *, chain: str = "cluster") -> model.Route:
    """The :class:`meshstat.model.Route` of a found service (see :func:`load_service_route`)."""
    if chain not in ("cluster", "local"):
        raise InvalidArgument(f"chain must be 'cluster' or 'local', got {chain!r}")
    stage = info.stage if chain == "cluster" else info.local_stage
    eps = info.endpoints if chain == "cluster" else info.local_endpoints
    if info.rejected or stage is None or not eps:
        which = "" if chain == "cluster" else " local"
        raise ModelError(
            f"{info.source}: service {info.name} has no{which} endpoints"
            + (" (kube-proxy rejects its traffic)" if info.rejected else "")
        )
    notes = []
    chain_name = info.cluster_chain if chain == "cluster" else info.local_chain
    notes.append(
        f"chain {chain_name} ({'cluster' if chain == 'cluster' else 'local'} endpoints); "
        f"internalTrafficPolicy {info.internal_policy}"
        + (f", externalTrafficPolicy {info.external_policy}" if info.external_policy else "")
    )
    if info.affinity_timeout is not None:
        cap = (
            "xt_recent keeps at most 100 client IPs per endpoint list by default"
            if info.dialect == "iptables"
            else "the nft affinity sets hold up to 65535 clients"
        )
        notes.append(
            f"sessionAffinity ClientIP (timeout {info.affinity_timeout} s): the split applies to a client's "
            f"first connection; later ones within the timeout reuse its endpoint ({cap})"
        )
    else:
        notes.append("sessionAffinity None: every new connection is split independently")
    if info.hash_ok is False:
        notes.append(f"chain name does not match kube-proxy's hash of {info.name}: edited or foreign dump?")
    return model.Route(
        root=stage,  # a one-endpoint cascade (no statistic rule) is still a stage
        name=info.name,
        provenance=model.Provenance(info.source, info.line),
        notes=tuple(notes),
    )
