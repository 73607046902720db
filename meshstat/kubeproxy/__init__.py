"""kube-proxy's services read from a node's dump, like kube-proxy's own ``pkg/proxy/{iptables,nftables,ipvs}``.

:mod:`meshstat.kubeproxy.service`
    :class:`ServiceInfo`, :class:`EndpointInfo`, kube-proxy's chain-name
    hashes (:func:`kube_chain_hash`, :func:`kube_nft_chain_hash`) and
    :func:`service_route` (a found service as a :class:`meshstat.model.Route`).
:mod:`meshstat.kubeproxy.lookup`
    :func:`services`, :func:`find_service` and :func:`load_service_route`
    over a dump of either mode.
:mod:`meshstat.kubeproxy.iptables`
    The iptables-mode reader (services, their states, chains of any shape read
    with the tracer), and :func:`kube_proxy_iptables_save`, which writes the nat
    table kube-proxy would hold.
:mod:`meshstat.kubeproxy.iptables_filter`
    kube-proxy's filter-table rules by service (REJECT, DROP, source ranges) and
    :func:`~meshstat.kubeproxy.iptables_filter.add_kube_proxy_jumps`, the jumps
    its ``iptables-restore`` text lacks.
:mod:`meshstat.kubeproxy.nftables`
    The nftables-mode reader (``numgen`` splits).
:mod:`meshstat.kubeproxy.ipvs`
    :func:`parse_ipvsadm`: IPVS virtual services from ``ipvsadm -ln``.
"""

from __future__ import annotations

from meshstat.kubeproxy.iptables import kube_proxy_iptables_save
from meshstat.kubeproxy.ipvs import (
    RealServer,
    VirtualServer,
    ipvs_services,
    parse_ipvsadm,
    parse_ipvsadm_servers,
)
from meshstat.kubeproxy.lookup import find_service, load_service_route, services
from meshstat.kubeproxy.service import (
    EndpointInfo,
    ServiceInfo,
    kube_chain_hash,
    kube_nft_chain_hash,
    service_route,
)

__all__ = [
    "EndpointInfo",
    "RealServer",
    "ServiceInfo",
    "VirtualServer",
    "find_service",
    "ipvs_services",
    "kube_chain_hash",
    "kube_nft_chain_hash",
    "kube_proxy_iptables_save",
    "load_service_route",
    "parse_ipvsadm",
    "parse_ipvsadm_servers",
    "service_route",
    "services",
]
