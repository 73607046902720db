"""kube-proxy's services read from a node's dump, like kube-proxy's own ``pkg/proxy/{iptables,nftables,ipvs}``.

:mod:`meshstat.kubeproxy.service`
    :class:`ServiceInfo`, :class:`EndpointInfo`, kube-proxy's chain-name
    hashes (:func:`kube_chain_hash`, :func:`kube_nft_chain_hash`) and
    :func:`service_route` (a found service as a :class:`meshstat.model.Route`).
:mod:`meshstat.kubeproxy.lookup`
    :func:`services`, :func:`find_service`, :func:`load_service_route` and
    :func:`service_notes` (what the listing skipped) over a dump of either mode.
:mod:`meshstat.kubeproxy.iptables`
    The iptables-mode reader (services, their states, chains of any shape read
    with the tracer), and :func:`kube_proxy_iptables_save`, which writes the nat
    table kube-proxy would hold; :func:`kube_proxy_node_iptables_save` writes one
    node's filter and nat tables after its topology filtering
    (:class:`NodeServicePort`).
:mod:`meshstat.kubeproxy.iptables_filter`
    kube-proxy's filter-table rules by service (REJECT, DROP, source ranges) and
    :func:`~meshstat.kubeproxy.iptables_filter.add_kube_proxy_jumps`, the jumps
    its ``iptables-restore`` text lacks.
:mod:`meshstat.kubeproxy.nftables`
    The nftables-mode reader (``numgen`` splits).
:mod:`meshstat.kubeproxy.nftables_writer`
    kube-proxy's nftables-mode syncs, written as it writes them (full and partial,
    :func:`kube_proxy_nft_sync`), and one node's ruleset after its topology filtering
    (:func:`kube_proxy_node_nft`); an implementation independent of the reader.
:mod:`meshstat.kubeproxy.ipvs`
    :func:`parse_ipvsadm`: IPVS virtual services from ``ipvsadm -ln``.
"""

from __future__ import annotations

from meshstat.kubeproxy.iptables import (
    NodeServicePort,
    kube_proxy_iptables_save,
    kube_proxy_node_iptables_save,
)
from meshstat.kubeproxy.ipvs import (
    ipvs_services,
    parse_ipvsadm,
)
from meshstat.kubeproxy.lookup import find_service, load_service_route, service_notes, services
from meshstat.kubeproxy.nftables_writer import (
    NftServicePort,
    kube_proxy_nft_stale_chains,
    kube_proxy_nft_sync,
    kube_proxy_node_nft,
)
from meshstat.kubeproxy.service import (
    EndpointInfo,
    ServiceInfo,
    kube_chain_hash,
    kube_nft_chain_hash,
    service_route,
)

__all__ = [
    "EndpointInfo",
    "NftServicePort",
    "NodeServicePort",
    "ServiceInfo",
    "find_service",
    "ipvs_services",
    "kube_chain_hash",
    "kube_nft_chain_hash",
    "kube_proxy_iptables_save",
    "kube_proxy_nft_stale_chains",
    "kube_proxy_nft_sync",
    "kube_proxy_node_iptables_save",
    "kube_proxy_node_nft",
    "load_service_route",
    "parse_ipvsadm",
    "service_notes",
    "service_route",
    "services",
]
