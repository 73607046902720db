"""Each node's kube-proxy ruleset for a Service, as kube-proxy on that node would write it.

The endpoint lists come from :func:`meshstat.topology.proxy.categorize_endpoints` for the node, the text
from :func:`meshstat.kubeproxy.kube_proxy_node_iptables_save` (iptables mode; kubernetes
``pkg/proxy/iptables/proxier.go: syncProxyRules``). Two nodes of one zone write the same cluster-policy
chain; nodes of different zones write different ones when hints are in use, and every node writes its own
``KUBE-SVL-`` chain for the Local policies.
"""

from __future__ import annotations

from meshstat.kubeproxy import NodeServicePort, kube_proxy_node_iptables_save
from meshstat.topology.cluster import Cluster
from meshstat.topology.proxy import categorize_endpoints

__all__ = ["node_iptables_save", "node_service_port"]


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
