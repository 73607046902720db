"""Each node's kube-proxy ruleset for a Service, as kube-proxy on that node would write it.

The endpoint lists come from :func:`meshstat.topology.proxy.categorize_endpoints` for the node, the text
from :func:`meshstat.kubeproxy.kube_proxy_node_iptables_save` (iptables mode; kubernetes
``pkg/proxy/iptables/proxier.go: syncProxyRules``) or :func:`meshstat.kubeproxy.kube_proxy_node_nft`
(nftables mode; ``pkg/proxy/nftables/proxier.go: syncProxyRules``, the ``nft -f`` transaction of a full
sync). Two nodes of one zone write the same cluster-policy chain; nodes of different zones write different
ones when hints are in use, and every node writes its own ``KUBE-SVL-`` (``local-``) chain for the Local
policies.
"""

from __future__ import annotations

from meshstat.errors import InvalidArgument
from meshstat.kubeproxy import NodeServicePort, kube_proxy_node_iptables_save, kube_proxy_node_nft
from meshstat.topology.cluster import Cluster
from meshstat.topology.proxy import categorize_endpoints

__all__ = ["node_iptables_save", "node_nft", "node_rules", "node_service_port"]


def node_service_port(cluster: Cluster, node: str) -> NodeServicePort:
    """The :class:`meshstat.kubeproxy.NodeServicePort` of the cluster's Service on ``node``."""
    n = cluster.node(node)
    svc = cluster.service
    cat = categorize_endpoints(cluster.endpoints, n.name, n.zone, uses_cluster=svc.uses_cluster,
                               uses_local=svc.uses_local)  # fmt: skip
    return NodeServicePort(
        name=svc.port_ref,
        protocol=svc.protocol,
        cluster_ip=svc.cluster_ip,
        port=svc.port,
        cluster_endpoints=None if cat.cluster is None else tuple(e.key for e in cat.cluster),
        local_endpoints=None if cat.local is None else tuple(e.key for e in cat.local),
        has_endpoints=cat.has_any,
        internal_local=svc.internal_policy == "Local",
        external_local=svc.external_policy == "Local",
        node_port=svc.node_port,
        load_balancer_ips=svc.load_balancer_ips,
    )


def node_iptables_save(cluster: Cluster, node: str, *, cluster_cidr: str = "10.244.0.0/16",
                       header: bool = True) -> str:  # fmt: skip
    """The ``iptables-save`` text (filter and nat) kube-proxy writes on ``node`` for the cluster's Service."""
    return kube_proxy_node_iptables_save([node_service_port(cluster, node)], cluster_cidr=cluster_cidr,
                                         header=header)  # fmt: skip


def node_nft(cluster: Cluster, node: str, *, cluster_cidr: str = "10.244.0.0/16",
             service_cidr: str = "10.96.0.0/12") -> str:  # fmt: skip
    """The ``nft -f`` transaction (table ``ip kube-proxy``) kube-proxy writes on ``node`` for the Service."""
    return kube_proxy_node_nft([node_service_port(cluster, node)], pod_cidr=cluster_cidr,
                               service_cidr=service_cidr)  # fmt: skip


def node_rules(cluster: Cluster, node: str, mode: str = "iptables") -> str:
    """The ruleset kube-proxy writes on ``node`` in ``mode`` (``iptables`` or ``nftables``)."""
    if mode == "iptables":
        return node_iptables_save(cluster, node)
    if mode == "nftables":
        return node_nft(cluster, node)
    raise InvalidArgument(f"kube-proxy mode must be iptables or nftables, got {mode!r}")
