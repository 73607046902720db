"""Zones and nodes: one Service is not one split.

kube-proxy on each node keeps its own endpoint list (topology hints, the Local traffic policies), clients
run in some zones more than in others, and a load balancer sends external traffic to nodes. This package
computes, for one Service port of a cluster described by Nodes, Pods and EndpointSlices:

:mod:`meshstat.topology.hints`
    The EndpointSlice controller's hints (``topology-mode: Auto``'s proportional allocation with its
    overload threshold, ``trafficDistribution``).
:mod:`meshstat.topology.proxy`
    kube-proxy's ``CategorizeEndpoints`` on one node.
:mod:`meshstat.topology.cluster`
    :class:`Cluster` (nodes, the Service's endpoints, client weights) built from manifests, and the
    what-if operations (lose a zone or a node, scale within a zone, move clients).
:mod:`meshstat.topology.split`
    :class:`TopologySplit`: the split per node, per client zone and per pod, internal and external, with
    requests per second and the imbalance.
:mod:`meshstat.topology.compare`
    :func:`compare_topology`: configured vs cluster-wide vs PreferClose vs the Local policies vs what-ifs.
:mod:`meshstat.topology.rules`
    Each node's ruleset as kube-proxy writes it (iptables and nftables mode).

Why a package of its own at the level of :mod:`meshstat.kubeproxy` and :mod:`meshstat.mesh`: the question
spans the EndpointSlice controller (not kube-proxy), kube-proxy on every node (it uses
:mod:`meshstat.kubeproxy` for the rules) and where clients and load balancers send traffic (cluster
knowledge that neither kube-proxy's view of one node nor the mesh's registry holds).
"""

from __future__ import annotations

from meshstat.topology.cluster import (
    Cluster,
    Endpoint,
    TopoNode,
    TopoService,
    build_cluster,
    parse_client_zones,
)
from meshstat.topology.compare import TopologyComparison, WhatIf, compare_topology
from meshstat.topology.hints import HintOutcome, auto_hints, reconcile_hints, traffic_distribution_hints
from meshstat.topology.proxy import Categorized, categorize_endpoints
from meshstat.topology.rules import node_iptables_save, node_nft, node_rules, node_service_port
from meshstat.topology.split import NodeView, TopologySplit, chain_shares, node_view, split

__all__ = [
    "Categorized",
    "Cluster",
    "Endpoint",
    "HintOutcome",
    "NodeView",
    "TopoNode",
    "TopoService",
    "TopologyComparison",
    "TopologySplit",
    "WhatIf",
    "auto_hints",
    "build_cluster",
    "categorize_endpoints",
    "chain_shares",
    "compare_topology",
    "node_iptables_save",
    "node_nft",
    "node_rules",
    "node_service_port",
    "node_view",
    "parse_client_zones",
    "reconcile_hints",
    "split",
    "traffic_distribution_hints",
]
