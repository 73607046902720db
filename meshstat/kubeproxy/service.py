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

__all__ = ["EndpointInfo", "ServiceInfo", "family_of", "kube_chain_hash", "kube_nft_chain_hash", "service_route"]


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
    state : str or None
        What kube-proxy does with traffic to the cluster IP, where the dump says
        more than "routed to the endpoints", in either mode: ``"rejected"`` (no
        endpoints: a REJECT rule in filter; nftables mode: a ``reject``
        verdict in ``no-endpoint-services``), ``"dropped"``
        (``internalTrafficPolicy: Local`` and no endpoint on this node: a DROP
        rule in filter; nftables mode: a ``drop`` verdict), ``"partial"`` (the
        input jumps to the service's chain without defining it: a kube-proxy
        partial sync), ``"stale"`` (the chain exists but no rule reaches it),
        ``"no cluster IP rule"``. ``None``: routed (or ``rejected`` says it).
    external_state : str or None
        The same for external traffic (external IPs, load-balancer IPs, node
        ports): ``"routed"``, ``"dropped"`` (``externalTrafficPolicy: Local``
        and no endpoint on this node), ``"rejected"``; None without any.
    source_ranges : tuple of str
        ``loadBalancerSourceRanges`` (the ``KUBE-FW-`` chain's ``-s`` ranges):
        other sources are dropped by ``KUBE-PROXY-FIREWALL``.
    notes : tuple of str
        How the chain was read (a shape other than kube-proxy's cascade, two
        rules to one endpoint, session affinity) and what the dump leaves open.
    unmodelled : str or None
        Why this service's split cannot be a model of independent random
        choices (``--mode nth``, a split that depends on the packet, a chain
        not in the input); :func:`service_route` refuses with it.
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
    state: str | None = None
    external_state: str | None = None
    source_ranges: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    unmodelled: str | None = None

    @property
    def namespace(self) -> str:
        """The namespace part of :attr:`name`."""
        return self.name.split("/", 1)[0]

    @property
    def session_affinity(self) -> str:
        """``"ClientIP"`` or ``"None"`` (the Service API's words)."""
        return "ClientIP" if self.affinity_timeout is not None else "None"

    @property
    def cluster_state(self) -> str:
        """:attr:`state`, or ``"rejected"`` / ``"routed"``."""
        return self.state or ("rejected" if self.rejected else "routed")


def family_of(rs: Ruleset, family: str | None) -> str:
    """The address family of the ruleset's kube-proxy tables.

    ``family`` when given; else an nft ruleset's first table's family; else ``ip``
    where an ``ip`` nat table is (or no ``ip6`` table), else ``ip6``.
    """
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
    chain_name = info.cluster_chain if chain == "cluster" else info.local_chain
    where = f"{info.source}: service {info.name}"
    if info.state == "partial" and chain_name is not None and not eps:
        raise ModelError(
            f"{where}: its chain {chain_name} is not in this input (a kube-proxy partial sync rewrites only the "
            "chains that changed; read the full iptables-save of the node)"
        )
    if info.unmodelled and stage is None:
        raise ModelError(f"{where}: {info.unmodelled}")
    if info.rejected or stage is None or not eps:
        if info.state == "dropped" and chain == "cluster" and stage is None:
            raise ModelError(
                f"{where} has internalTrafficPolicy Local and no endpoint on this node: kube-proxy drops its "
                "cluster IP traffic"
            )
        if chain == "local" and info.local_chain is None:
            raise ModelError(
                f"{where} has no local-policy chain (KUBE-SVL-): neither traffic policy is Local, or no endpoint "
                "is on this node"
            )
        which = "" if chain == "cluster" else " local"
        raise ModelError(
            f"{where} has no{which} endpoints"
            + (" (kube-proxy rejects its traffic)" if info.rejected else "")
        )
    notes = list(info.notes)
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
