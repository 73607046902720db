"""What each Envoy input holds, and what it cannot tell: "not in Envoy" versus "not in the input".

A call is resolved through whatever files the user gives: a whole admin ``/config_dump``, or
one or several ``istioctl proxy-config`` outputs, each of which holds one kind of object. A
route that names a cluster the input does not hold means two different things:

* the input holds every cluster Envoy has, and this one is not among them: Envoy answers
  ``503`` with the response flag ``NC`` (``source/common/router/router.cc``, no thread-local
  cluster for the route's cluster name);
* the input holds no cluster list, or only part of it: Envoy may well have the cluster and
  forward. The outcome is unknown, and meshstat says so instead of printing a 503.

Endpoints are the same: an EDS cluster without endpoints in a dump that carries every
``ClusterLoadAssignment`` has none (``503 no_healthy_upstream``); in a dump taken without
``?include_eds`` its endpoints are simply not in the input.

Which inputs hold a whole list (how Envoy and istioctl write them):

* admin ``/config_dump``: ``ClustersConfigDump`` lists ``static_clusters`` and, when the
  configuration comes over CDS (``dynamic_resources.cds_config`` of the bootstrap, or any
  dynamic listener or route configuration), ``dynamic_active_clusters``
  (``envoy/admin/v3/config_dump_shared.proto``); ``EndpointsConfigDump`` is there only with
  ``?include_eds``. ``istioctl proxy-config all -o json|yaml`` prints this dump unchanged
  (``istioctl/pkg/proxyconfig/proxyconfig.go: allConfigCmd``, with ``include_eds``).
* ``istioctl proxy-config cluster -o json|yaml``: the dump's dynamic active and static clusters
  (``istioctl/pkg/writer/envoy/configdump/cluster.go: retrieveSortedClusterSlice``).
* ``istioctl proxy-config listener|route -o json|yaml``: listeners (active and static) or route
  configurations only (``listener.go``, ``route.go``): no cluster, no endpoint.
* ``istioctl proxy-config endpoint -o json|yaml``: the admin ``/clusters?format=json``
  ``ClusterStatus`` objects of the clusters that have at least one host
  (``istioctl/pkg/writer/envoy/clusters/clusters.go: PrintEndpoints``): every endpoint, but not
  every cluster. The raw ``/clusters?format=json`` lists every cluster.
* ``istioctl proxy-config eds -o json|yaml``: ``ClusterLoadAssignment`` objects (``endpoint.go``).
* ``istioctl proxy-config bootstrap -o json|yaml``: ``{"bootstrap": {...}}``, the
  ``BootstrapConfigDump`` (``configdump.go: PrintBootstrapDump``); a bootstrap's static clusters
  are the whole list only when it has no ``cds_config``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["KIND_WORDS", "InputInventory", "classify_item", "lacking"]

#: What each kind of object is called in messages (plural).
KIND_WORDS = {
    "listener": "listeners",
    "route": "route configurations",
    "cluster": "clusters",
    "status": "cluster host statuses",
    "assignment": "endpoint assignments",
}

#: The istioctl command whose JSON/YAML array holds objects of one kind.
ISTIOCTL_FORM = {
    "listener": "istioctl proxy-config listener output",
    "route": "istioctl proxy-config route output",
    "cluster": "istioctl proxy-config cluster output",
    "status": "istioctl proxy-config endpoint output",
    "assignment": "istioctl proxy-config eds output",
}

# Field names (snake_case) that only one of the accepted messages has.
_LISTENER_KEYS = frozenset({
    "address", "additional_addresses", "filter_chains", "default_filter_chain", "listener_filters",
    "use_original_dst", "traffic_direction", "bind_to_port", "internal_listener", "listener_filters_timeout",
    "continue_on_listener_filters_timeout", "filter_chain_matcher",
    "udp_listener_config", "api_listener", "connection_balance_config", "enable_reuse_port",
})
_ROUTE_KEYS = frozenset({
    "virtual_hosts", "vhds", "validate_clusters", "ignore_port_in_host_matching", "internal_only_headers",
    "most_specific_header_mutations_wins", "max_direct_response_body_size_bytes", "cluster_specifier_plugins",
    "ignore_path_parameters_in_path_matching", "request_headers_to_add", "request_headers_to_remove",
    "response_headers_to_add", "response_headers_to_remove",
})
_CLUSTER_KEYS = frozenset({
    "connect_timeout", "eds_cluster_config", "lb_policy", "cluster_type", "load_assignment",
    "common_lb_config", "transport_socket", "typed_extension_protocol_options", "outlier_detection",
    "lb_subset_config", "dns_lookup_family", "alt_stat_name", "health_checks", "upstream_connection_options",
    "load_balancing_policy", "cleanup_interval", "respect_dns_ttl", "dns_refresh_rate",
})
_STATUS_KEYS = frozenset({
    "host_statuses", "added_via_api", "observability_name", "success_rate_ejection_threshold",
    "local_origin_success_rate_ejection_threshold", "eds_service_name",
})
_STATUS_ALL = _STATUS_KEYS | {"name", "circuit_breakers"}
_ASSIGNMENT_KEYS = frozenset({"cluster_name", "named_endpoints"})


def classify_item(item: Mapping[str, Any], type_name: str = "") -> str | None:
    """The kind of one object of an istioctl array (snake_case keys), or None if none fits.

    ``type_name`` is the message name of its ``@type``, when it has one (istioctl prints none
    at the top level: its arrays hold the messages themselves).
    """
    by_type = {"Listener": "listener", "RouteConfiguration": "route", "Cluster": "cluster",
               "ClusterStatus": "status", "ClusterLoadAssignment": "assignment"}
    if type_name in by_type:
        return by_type[type_name]
    keys = set(item)
    if keys & _STATUS_KEYS and keys <= _STATUS_ALL:
        return "status"
    if keys & _LISTENER_KEYS:
        return "listener"
    if keys & _ROUTE_KEYS:
        return "route"
    if keys & _ASSIGNMENT_KEYS:
        return "assignment"
    if keys & _CLUSTER_KEYS or ("type" in keys and "name" in keys):
        return "cluster"
    if keys & _STATUS_KEYS:
        return "status"
    return None


@dataclass
class InputInventory:
    """One input file: its form, how many objects of each kind it gave, and what it lacks.

    Attributes
    ----------
    source : str
        The file name as the user gave it.
    form : str
        What the file is (``"admin /config_dump"``, ``"istioctl proxy-config route output"``, ...).
    counts : dict of str to int
        Objects read, by kind (``"listener"``, ``"route"``, ``"cluster"``, ``"status"``,
        ``"assignment"``).
    complete : set of str
        ``"clusters"`` and/or ``"endpoints"`` when this input holds the whole list of them.
    gaps : dict of str to str
        Why this input holds no whole list of clusters or endpoints, in words, where that is
        more than "it is another kind of output".
    """

    source: str
    form: str = "Envoy configuration"
    counts: dict[str, int] = field(default_factory=dict)
    complete: set[str] = field(default_factory=set)
    gaps: dict[str, str] = field(default_factory=dict)

    def add(self, kind: str, n: int = 1) -> None:
        """Count ``n`` objects of ``kind``."""
        self.counts[kind] = self.counts.get(kind, 0) + n

    def contents(self) -> str:
        """``"2 listeners, 1 route configuration"`` (or ``"nothing that routes"``)."""
        parts = []
        for kind, words in KIND_WORDS.items():
            n = self.counts.get(kind, 0)
            if n:
                parts.append(f"{n} {words if n != 1 else words[:-1]}")
        return ", ".join(parts) or "no listener, route configuration or cluster"

    def lack(self, what: str) -> str:
        """Why this input does not give the whole list of ``what`` (``"clusters"``/``"endpoints"``)."""
        gap = self.gaps.get(what)
        if gap:
            return f"{self.source}: {gap}"
        if what == "clusters" and self.counts.get("status"):
            return f"{self.source}: {self.form}, which lists only the clusters that have hosts"
        return f"{self.source}: {self.form}, {self.contents()}"


def lacking(inputs: Iterable[InputInventory], what: str) -> str:
    """Every input's reason for not holding the whole list of ``what``, joined with ``"; "``."""
    return "; ".join(inv.lack(what) for inv in inputs if what not in inv.complete)
