"""kube-proxy's nftables-mode transactions, written as kube-proxy writes them: a node's ruleset, or one sync.

:func:`kube_proxy_nft_sync` writes the ``nft -f`` transaction of one sync of
kubernetes ``pkg/proxy/nftables/proxier.go`` (``setupNFTables``,
``syncProxyRules``, ``writeServiceToEndpointRules``, through knftables'
``writeOperation`` text): a full sync (the table, its base chains, dispatch
maps and helper chains, then every service), or, given the services of the
previous sync, the partial sync kube-proxy runs next: only changed services'
chains are rewritten, map elements are added or deleted one by one, and the
chains of deleted or emptied services are *flushed*, not deleted
(:func:`kube_proxy_nft_stale_chains` lists them; a later sync deletes them).

:func:`kube_proxy_node_nft` writes the full sync of one node after its topology
filtering: each :class:`meshstat.kubeproxy.NodeServicePort` carries the
``clusterEndpoints`` / ``localEndpoints`` / ``hasEndpoints`` that
``pkg/proxy/topology.go: CategorizeEndpoints`` gave that node, and
``syncProxyRules`` turns them into the node's chains: the ``service-`` chain
(``clusterPolicyChain``) over the cluster endpoints only when
``usesClusterPolicyChain`` (some cluster endpoint and ``UsesClusterEndpoints``),
the ``local-`` chain (``localPolicyChain``) over the node's own endpoints only
when ``usesLocalPolicyChain``, the cluster IP's ``service-ips`` element going to
``internalTrafficChain`` when ``hasInternalEndpoints`` and otherwise a
``no-endpoint-services`` element (``goto reject-chain`` with no endpoint
anywhere, ``drop`` for a Local policy without a local endpoint), the
``external-`` chain (``externalTrafficChain``) when ``usesExternalTrafficChain``
with the short-circuit rules of ``externalTrafficPolicy: Local``, and one
``endpoint-`` chain for each of ``allLocallyReachableEndpoints``. The same
service therefore gets different rulesets on nodes of different zones (hints)
and on nodes with and without local endpoints (Local policies).

A deliberate second implementation: meshstat reads these rulesets with
:mod:`meshstat.parsers.netfilter.nft` and :mod:`meshstat.kubeproxy.nftables`;
this writer shares nothing with them but the chain-name hash
(:func:`meshstat.kubeproxy.kube_nft_chain_hash`, which the kernel never checks),
so that a conformance run loads kube-proxy's shapes into the kernel and tests
meshstat's reading of them against real packets.

Not written: session affinity sets, ``loadBalancerSourceRanges`` (firewall
chains), ``masqueradeAll``, IPv6.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from meshstat.kubeproxy.iptables import NodeServicePort
from meshstat.kubeproxy.service import kube_nft_chain_hash

__all__ = ["NftServicePort", "kube_proxy_nft_stale_chains", "kube_proxy_nft_sync", "kube_proxy_node_nft"]

TABLE = "ip kube-proxy"
_MARK = "0x4000"

#: ``nftablesBaseChains``: name, type, hook, priority. kube-proxy asks for ``dstnat-10``, ``dstnat+10``,
#: ``dstnat``, ``srcnat``; knftables writes them as numbers (``Chain.writeOperation``, ``ParsePriority``).
_BASE_CHAINS = (
    ("filter-prerouting", "filter", "prerouting", -110),
    ("filter-input", "filter", "input", -110),
    ("filter-forward", "filter", "forward", -110),
    ("filter-output", "filter", "output", -110),
    ("filter-output-post-dnat", "filter", "output", -90),
    ("nat-prerouting", "nat", "prerouting", -100),
    ("nat-output", "nat", "output", -100),
    ("nat-postrouting", "nat", "postrouting", 100),
)
#: ``nftablesJumpChains``: destination, source chain, extra match.
_JUMP_CHAINS = (
    ("nodeport-endpoints-check", "filter-input", "ct state new"),
    ("service-endpoints-check", "filter-input", "ct state new"),
    ("service-endpoints-check", "filter-forward", "ct state new"),
    ("service-endpoints-check", "filter-output", "ct state new"),
    ("firewall-check", "filter-prerouting", "ct state new"),
    ("firewall-check", "filter-output", "ct state new"),
    ("services", "nat-output", ""),
    ("services", "nat-prerouting", ""),
    ("masquerading", "nat-postrouting", ""),
    ("cluster-ips-check", "filter-forward", "ct state new"),
    ("cluster-ips-check", "filter-output-post-dnat", "ct state new"),
)
_MAPS = (
    ("no-endpoint-services", "ipv4_addr . inet_proto . inet_service : verdict",
     "vmap to drop or reject packets to services with no endpoints"),
    ("no-endpoint-nodeports", "inet_proto . inet_service : verdict",
     "vmap to drop or reject packets to service nodeports with no endpoints"),
    ("firewall-ips", "ipv4_addr . inet_proto . inet_service : verdict",
     "destinations that are subject to LoadBalancerSourceRanges"),
    ("service-ips", "ipv4_addr . inet_proto . inet_service : verdict",
     "ClusterIP, ExternalIP and LoadBalancer IP traffic"),
    ("service-nodeports", "inet_proto . inet_service : verdict", "NodePort traffic"),
)  # fmt: skip


@dataclass(frozen=True)
class NftServicePort:
    """One service port as kube-proxy sees it (``ServicePortName`` plus its endpoints).

    ``endpoints`` are ``"ip:port"`` of every ready endpoint; ``local`` those on
    this node. ``external_policy`` / ``internal_policy`` are the Service's
    traffic policies (``"Cluster"`` or ``"Local"``).
    """

    namespace: str
    name: str
    port_name: str
    cluster_ip: str
    port: int
    endpoints: tuple[str, ...] = ()
    local: frozenset[str] = frozenset()
    protocol: str = "tcp"
    node_port: int | None = None
    external_ips: tuple[str, ...] = ()
    load_balancer_ips: tuple[str, ...] = ()
    external_policy: str = "Cluster"
    internal_policy: str = "Cluster"

    @property
    def port_string(self) -> str:
        """``ns/name:port`` (kube-proxy's ``ServicePortName.String()``, the element comments)."""
        return f"{self.namespace}/{self.name}" + (f":{self.port_name}" if self.port_name else "")

    def chain(self, prefix: str) -> str:
        """``service-``, ``local-``, ``external-`` chain name (``servicePortChainNameBase``)."""
        return self._port().chain(prefix)

    def endpoint_chain(self, endpoint: str) -> str:
        """``endpoint-HASH-ns/name/proto/port__ip/port`` (``servicePortEndpointChainNameBase``)."""
        return self._port().endpoint_chain(endpoint)

    @property
    def externally_accessible(self) -> bool:
        return bool(self.node_port or self.external_ips or self.load_balancer_ips)

    def _port(self) -> _Port:
        """The cluster-wide view: every endpoint is a cluster endpoint, ``local`` the node's own."""
        itp_local = self.internal_policy == "Local"
        etp_local = self.externally_accessible and self.external_policy == "Local"
        uses_cluster = not itp_local or self.externally_accessible  # UsesClusterEndpoints
        uses_local = itp_local or etp_local  # UsesLocalEndpoints
        return _Port(self.namespace, self.name, self.port_name, self.protocol, self.cluster_ip, self.port,
                     list(self.endpoints) if uses_cluster else [],
                     [e for e in self.endpoints if e in self.local] if uses_local else [],
                     bool(self.endpoints), itp_local, etp_local, self.node_port, self.external_ips,
                     self.load_balancer_ips)  # fmt: skip


@dataclass(frozen=True)
class _Port:
    """One service port after ``CategorizeEndpoints``: what ``syncProxyRules``' loop body needs."""

    namespace: str
    name: str
    port_name: str
    protocol: str
    cluster_ip: str
    port: int
    cluster_eps: list[str]
    local_eps: list[str]
    has_endpoints: bool
    itp_local: bool
    etp_local: bool
    node_port: int | None
    external_ips: tuple[str, ...]
    load_balancer_ips: tuple[str, ...]

    @property
    def port_string(self) -> str:
        return f"{self.namespace}/{self.name}" + (f":{self.port_name}" if self.port_name else "")

    def _base(self) -> str:
        base = f"{self.namespace}/{self.name}/{self.protocol}/{self.port_name}"
        return f"{kube_nft_chain_hash(base)}-{base}"

    def chain(self, prefix: str) -> str:
        return f"{prefix}-{self._base()}"

    def endpoint_chain(self, endpoint: str) -> str:
        ip, _, port = endpoint.rpartition(":")
        ip = ip.strip("[]")
        base = f"{self.namespace}/{self.name}/{self.protocol}/{self.port_name}__{ip.replace(':', '.')}/{port}"
        return f"endpoint-{kube_nft_chain_hash(base)}-{base}"

    @property
    def externally_accessible(self) -> bool:
        return bool(self.node_port or self.external_ips or self.load_balancer_ips)


def _node_port(sp: NodeServicePort) -> _Port:
    """A node's :class:`NodeServicePort` (``ns/name:port`` name) as a :class:`_Port`."""
    ns, _, rest = sp.name.partition("/")
    name, _, port_name = rest.partition(":")
    externally = sp.node_port is not None or bool(sp.load_balancer_ips)
    return _Port(ns, name, port_name, sp.protocol.lower(), sp.cluster_ip, sp.port,
                 sorted(sp.cluster_endpoints or ()), sorted(sp.local_endpoints or ()), sp.has_endpoints,
                 sp.internal_local, sp.external_local and externally, sp.node_port, (),
                 tuple(sp.load_balancer_ips))  # fmt: skip


class _State:
    """What one sync wants: chains with their rules, and map/set elements."""

    def __init__(self) -> None:
        self.chains: dict[str, list[str]] = {}  # service and endpoint chains, in order
        self.elements: dict[tuple[str, str], tuple[str, str | None]] = {}  # (map, key) -> (value, comment)
        self.owner: dict[str, str] = {}  # chain -> service port it belongs to


def _service_state(svc: _Port, st: _State, pod_cidr: str) -> None:
    """``syncProxyRules``' loop body for one service port (after ``CategorizeEndpoints``)."""
    cluster_eps, local_eps = svc.cluster_eps, svc.local_eps
    has_endpoints = svc.has_endpoints  # CategorizeEndpoints' hasAnyEndpoints: a usable endpoint on any node
    itp_local, etp_local = svc.itp_local, svc.etp_local
    reachable = list(dict.fromkeys([*cluster_eps, *local_eps]))  # allLocallyReachableEndpoints
    cluster_chain, local_chain, ext_chain = svc.chain("service"), svc.chain("local"), svc.chain("external")
    has_internal = has_endpoints and (not itp_local or bool(local_eps))
    has_external = has_endpoints and (not etp_local or bool(local_eps))
    uses_ext_chain = has_endpoints and svc.externally_accessible
    if not has_endpoints:
        internal_verdict = external_verdict = "goto reject-chain"
    else:
        internal_verdict = "" if has_internal else "drop"
        external_verdict = "" if has_external else "drop"
    proto, port, name = svc.protocol, str(svc.port), svc.port_string
    internal_chain = local_chain if itp_local else cluster_chain
    st.elements[("cluster-ips", svc.cluster_ip)] = ("", None)
    key = f"{svc.cluster_ip} . {proto} . {port}"
    if has_internal:
        st.elements[("service-ips", key)] = (f"goto {internal_chain}", None)
    else:
        st.elements[("no-endpoint-services", key)] = (internal_verdict, name)
    for ip in (*svc.external_ips, *svc.load_balancer_ips):
        key = f"{ip} . {proto} . {port}"
        if has_endpoints:
            st.elements[("service-ips", key)] = (f"goto {ext_chain}", None)
        if not has_external:
            st.elements[("no-endpoint-services", key)] = (external_verdict, name)
    if svc.node_port:
        key = f"{proto} . {svc.node_port}"
        if has_endpoints:
            st.elements[("service-nodeports", key)] = (f"goto {ext_chain}", None)
        if not has_external:
            st.elements[("no-endpoint-nodeports", key)] = (external_verdict, name)
    chains: dict[str, list[str]] = {}
    for ep in reachable:
        chains[svc.endpoint_chain(ep)] = []
    if cluster_eps:
        chains[cluster_chain] = []
    if local_eps:
        chains[local_chain] = []
    if uses_ext_chain:
        chains[ext_chain] = []
    if has_internal:
        chains[internal_chain].append(
            f"ip daddr {svc.cluster_ip} {proto} dport {port} ip saddr != {pod_cidr} jump mark-for-masquerade"
        )
    if uses_ext_chain:
        rules = chains[ext_chain]
        if not etp_local:
            rules.append("jump mark-for-masquerade")
        else:
            rules.append(f'ip saddr {pod_cidr} goto {cluster_chain} comment "short-circuit pod traffic"')
            rules.append('fib saddr type local jump mark-for-masquerade comment "masquerade local traffic"')
            rules.append(f'fib saddr type local goto {cluster_chain} comment "short-circuit local traffic"')
        if has_external:
            rules.append(f"goto {local_chain if etp_local else cluster_chain}")
    for chain, members in ((cluster_chain, cluster_eps), (local_chain, local_eps)):
        if members:
            entries = " , ".join(f"{i} : goto {svc.endpoint_chain(ep)}" for i, ep in enumerate(members))
            chains[chain].append(f"numgen random mod {len(members)} vmap {{ {entries} }}")
    for ep in reachable:
        ip = ep.rpartition(":")[0]
        chains[svc.endpoint_chain(ep)] += [f"ip saddr {ip} jump mark-for-masquerade",
                                           f"meta l4proto {proto} dnat to {ep}"]  # fmt: skip
    for chain, rules in chains.items():
        st.chains[chain] = rules
        st.owner[chain] = name


_AnyPort = NftServicePort | NodeServicePort


def _as_port(s: _AnyPort) -> _Port:
    return s._port() if isinstance(s, NftServicePort) else _node_port(s)


def _state(services: Sequence[_AnyPort], pod_cidr: str) -> _State:
    st = _State()
    for svc in sorted(map(_as_port, services), key=lambda s: (s.port_string, s.protocol)):
        _service_state(svc, st, pod_cidr)
    return st


def _setup(out: list[str], service_cidr: str, node_port_addresses: Sequence[str] | None) -> None:
    """``setupNFTables`` (a full sync only)."""
    out.append(f'add table {TABLE} {{ comment "rules for kube-proxy" ; }}')
    for name, typ, hook, prio in _BASE_CHAINS:
        out.append(f"add chain {TABLE} {name} {{ type {typ} hook {hook} priority {prio} ; }}")
        out.append(f"flush chain {TABLE} {name}")
    created: set[str] = set()

    def ensure(chain: str) -> None:
        if chain not in created:
            created.add(chain)
            out.extend((f"add chain {TABLE} {chain}", f"flush chain {TABLE} {chain}"))

    for dst, src, extra in _JUMP_CHAINS:
        ensure(dst)
        out.append(f"add rule {TABLE} {src} " + (f"{extra} " if extra else "") + f"jump {dst}")
    for chain in ("services", "cluster-ips-check", "masquerading", "mark-for-masquerade"):
        ensure(chain)
    out.append(f"add rule {TABLE} mark-for-masquerade mark set mark or {_MARK}")
    out.append(f"add rule {TABLE} masquerading mark and {_MARK} == 0 return")
    out.append(f"add rule {TABLE} masquerading mark set mark xor {_MARK}")
    out.append(f"add rule {TABLE} masquerading masquerade fully-random")
    out.append(f'add set {TABLE} cluster-ips {{ type ipv4_addr ; comment "Active ClusterIPs" ; }}')
    out.append(f"add rule {TABLE} cluster-ips-check ip daddr @cluster-ips reject "
               'comment "Reject traffic to invalid ports of ClusterIPs"')  # fmt: skip
    out.append(f"add rule {TABLE} cluster-ips-check ip daddr {{ {service_cidr} }} drop "
               'comment "Drop traffic to unallocated ClusterIPs"')  # fmt: skip
    out.append(f'add set {TABLE} nodeport-ips {{ type ipv4_addr ; comment "IPs that accept NodePort traffic" ; }}')
    if node_port_addresses is None:
        out.append(f"delete set {TABLE} nodeport-ips")
    else:
        out.append(f"flush set {TABLE} nodeport-ips")
        out.extend(f"add element {TABLE} nodeport-ips {{ {ip} }}" for ip in node_port_addresses)
    for name, typ, comment in _MAPS[:2]:
        out.append(f'add map {TABLE} {name} {{ type {typ} ; comment "{comment}" ; }}')
    out.append(f'add chain {TABLE} reject-chain {{ comment "helper for @no-endpoint-services / @no-endpoint-nodeports" ; }}')
    out.append(f"flush chain {TABLE} reject-chain")
    out.append(f"add rule {TABLE} reject-chain reject")
    out.append(f"add rule {TABLE} service-endpoints-check ip daddr . meta l4proto . th dport vmap @no-endpoint-services")
    npt = "ip daddr != 127.0.0.0/8" if node_port_addresses is None else "ip daddr @nodeport-ips"
    out.append(f"add rule {TABLE} nodeport-endpoints-check {npt} meta l4proto . th dport vmap @no-endpoint-nodeports")
    name, typ, comment = _MAPS[2]
    out.append(f'add map {TABLE} {name} {{ type {typ} ; comment "{comment}" ; }}')
    ensure("firewall-check")
    out.append(f"add rule {TABLE} firewall-check ip daddr . meta l4proto . th dport vmap @firewall-ips")
    for name, typ, comment in _MAPS[3:]:
        out.append(f'add map {TABLE} {name} {{ type {typ} ; comment "{comment}" ; }}')
    out.append(f"add rule {TABLE} services ip daddr . meta l4proto . th dport vmap @service-ips")
    npt = ("fib daddr type local ip daddr != 127.0.0.0/8" if node_port_addresses is None
           else "ip daddr @nodeport-ips")  # fmt: skip
    out.append(f"add rule {TABLE} services {npt} meta l4proto . th dport vmap @service-nodeports")
    out.append(f"flush set {TABLE} cluster-ips")
    for name in ("service-ips", "firewall-ips", "no-endpoint-services", "no-endpoint-nodeports", "service-nodeports"):
        out.append(f"flush map {TABLE} {name}")


def _element(verb: str, where: str, key: str, value: str, comment: str | None) -> str:
    """knftables ``Element.writeOperation``: a delete names the key only."""
    if verb == "delete":
        return f"delete element {TABLE} {where} {{ {key} }}"
    body = key + (f' comment "{comment}"' if comment else "") + (f" : {value}" if value else "")
    return f"add element {TABLE} {where} {{ {body} }}"


def kube_proxy_nft_sync(
    services: Sequence[_AnyPort],
    *,
    previous: Sequence[_AnyPort] | None = None,
    pod_cidr: str = "10.244.0.0/16",
    service_cidr: str = "10.96.0.0/16",
    node_port_addresses: Sequence[str] | None = None,
) -> str:
    """The ``nft -f`` transaction of one kube-proxy sync (full, or partial after ``previous``).

    Parameters
    ----------
    services : sequence of NftServicePort or NodeServicePort
        The service ports after this sync: cluster-wide (:class:`NftServicePort`, every
        ready endpoint a cluster endpoint) or after one node's ``CategorizeEndpoints``
        (:class:`meshstat.kubeproxy.NodeServicePort`).
    previous : sequence of NftServicePort or NodeServicePort, optional
        The service ports of the sync before: the transaction is then the
        partial sync (``tryPartialSync``): changed services rewritten, map
        elements added or deleted, the chains of vanished services flushed.
    pod_cidr : str
        The local traffic detector's pod CIDR (``ip saddr != CIDR`` masquerade rules).
    service_cidr : str
        The service CIDR (``cluster-ips-check`` drops unallocated cluster IPs).
    node_port_addresses : sequence of str, optional
        ``--nodeport-addresses`` IPs; ``None`` matches every local address
        (``fib daddr type local``).
    """
    out: list[str] = []
    new = _state(services, pod_cidr)
    if previous is None:
        _setup(out, service_cidr, node_port_addresses)
        old = _State()
        changed = {s.port_string for s in map(_as_port, services)}
    else:
        old = _state(previous, pod_cidr)
        before = {(s.port_string, s.protocol): s for s in map(_as_port, previous)}
        changed = {s.port_string for s in map(_as_port, services) if before.get((s.port_string, s.protocol)) != s}
    # chains of changed services: add + flush, then their rules (ensureChain, then the rules)
    for chain in new.chains:
        if new.owner[chain] in changed:
            out.append(f"add chain {TABLE} {chain}")
            out.append(f"flush chain {TABLE} {chain}")
    for (where, key), (value, comment) in new.elements.items():
        was = old.elements.get((where, key))
        if was == (value, comment):
            continue
        if was is not None:
            out.append(_element("delete", where, key, "", None))
        out.append(_element("add", where, key, value, comment))
    for chain, rules in new.chains.items():
        if new.owner[chain] in changed:
            out.extend(f"add rule {TABLE} {chain} {r}" for r in rules)
    # chains no service uses any more: flushed now, deleted by a later sync (staleChains)
    out.extend(f"flush chain {TABLE} {c}" for c in old.chains if c not in new.chains)
    # leftover elements (cleanupLeftoverKeys)
    out.extend(_element("delete", where, key, "", None) for (where, key) in old.elements
               if (where, key) not in new.elements)  # fmt: skip
    return "\n".join(out) + "\n"


def kube_proxy_nft_stale_chains(
    previous: Sequence[_AnyPort], services: Sequence[_AnyPort], *, pod_cidr: str = "10.244.0.0/16"
) -> list[str]:
    """The chains the sync from ``previous`` to ``services`` flushes and a later sync deletes."""
    old, new = _state(previous, pod_cidr), _state(services, pod_cidr)
    return [c for c in old.chains if c not in new.chains]


def kube_proxy_node_nft(
    ports: Iterable[NodeServicePort],
    *,
    pod_cidr: str = "10.244.0.0/16",
    service_cidr: str = "10.96.0.0/16",
    node_port_addresses: Sequence[str] | None = None,
) -> str:
    """The full ``nft -f`` sync kube-proxy (nftables mode) runs on one node, after its topology filtering.

    Each port's ``cluster_endpoints`` / ``local_endpoints`` / ``has_endpoints`` are that node's
    ``CategorizeEndpoints`` results; the endpoints are written sorted as ``"ip:port"`` strings (the order
    ``pkg/proxy/endpointslicecache.go`` hands them over), each ``numgen random mod N`` element one of them.
    Which chains and map elements follow from them is ``syncProxyRules``' (see the module docstring).
    """
    return kube_proxy_nft_sync(list(ports), pod_cidr=pod_cidr, service_cidr=service_cidr,
                               node_port_addresses=node_port_addresses)  # fmt: skip
