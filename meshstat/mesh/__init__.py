"""Istio mesh: sidecar injection, client paths and the layered effective split.

Given Kubernetes + Istio manifests (:mod:`meshstat.parsers.k8s`) this package answers
"when workload X calls service S, where does the traffic really go?" for every path a
call can take:

``kube-proxy``
    The client has no sidecar (namespace not labelled, opt-out label, ``hostNetwork``,
    ``kube-system``), or the traffic is the sidecar's own (UID 1337, exempt from Istio's
    capture). The ClusterIP is DNATed by kube-proxy's ``KUBE-SVC`` cascade over *all*
    endpoints of the Service, sorted as ``"ip:port"`` strings (``Cascade.kube_proxy``), once
    per connection: the split follows pod counts, whatever the VirtualService says.
``sidecar``
    The client's pod runs istio-proxy: outbound TCP from any UID but 1337 is redirected to
    15001 (``ISTIO_OUTPUT`` -> ``ISTIO_REDIRECT``, istio ``tools/istio-iptables/pkg/capture/
    run.go``), Envoy's ``virtualOutbound`` hands the connection to ``0.0.0.0_<port>``, the
    route configuration ``<port>`` holds the VirtualService's routes, and the weighted clusters
    ``outbound|<port>|<subset>|<fqdn>`` pick a subset per request. Envoy then connects to the
    pod IP itself: kube-proxy is not involved.
``envoy-dump``
    The same question answered from a real (or composed) ``config_dump`` of the client's
    sidecar, read by :mod:`meshstat.parsers.envoy` and resolved by :mod:`meshstat.mesh.envoy`.

Istio's translation follows ``pilot/pkg/networking/core/route/route.go``
(``applyHTTPRouteDestination``: one destination -> plain cluster, several ->
``weighted_clusters`` with weight-0 destinations dropped; weights relative since 1.15),
``pilot/pkg/model/service.go: BuildSubsetKey`` (cluster names) and
``pilot/pkg/xds/endpoints/endpoint_builder.go`` (subset endpoints = service endpoints whose
labels include all the subset's labels). The injection decision follows the webhook
selectors of the istio-discovery chart (``mutatingwebhook.yaml``) and
``pkg/kube/inject/webhook.go: injectRequired``.

Modules: :mod:`~meshstat.mesh.registry` (pods, services, the injection decision),
:mod:`~meshstat.mesh.endpoints` (one cluster's endpoint stage, the runtime_fraction correlation),
:mod:`~meshstat.mesh.envoy` (a call through an Envoy configuration and its Route),
:mod:`~meshstat.mesh.paths` (:class:`Mesh` and its client paths), :mod:`~meshstat.mesh.gateway_api`
(Gateway API routes: which rule serves a request, its weighted backends, the GAMMA routes a sidecar
applies), :mod:`~meshstat.mesh.ingress` (the ``ingress`` path through a gateway). Comparing the paths by
simulation (:func:`meshstat.mesh.compare.compare_paths`) uses the engine, so it is not
re-exported here.
"""

from __future__ import annotations

from meshstat.mesh.endpoints import correlated_weights, endpoint_stage
from meshstat.mesh.envoy import (
    Resolution,
    ResolutionStep,
    RouteCandidate,
    envoy_dump_route,
    find_virtual_host,
    resolve_call,
    route_static_match,
    select_filter_chain,
    select_listener,
)
from meshstat.mesh.paths import ClientPath, Layer, Mesh
from meshstat.mesh.registry import (
    EP,
    InjectionDecision,
    InjectorConfig,
    Pod,
    RegisteredService,
    injection_decision,
    version_of,
)

__all__ = [
    "EP",
    "ClientPath",
    "InjectionDecision",
    "InjectorConfig",
    "Layer",
    "Mesh",
    "Pod",
    "RegisteredService",
    "Resolution",
    "ResolutionStep",
    "RouteCandidate",
    "correlated_weights",
    "endpoint_stage",
    "envoy_dump_route",
    "find_virtual_host",
    "injection_decision",
    "resolve_call",
    "route_static_match",
    "select_filter_chain",
    "select_listener",
    "version_of",
]
