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
``ambient`` (``"ambient (ztunnel)"``)
    The client's pod is captured by ztunnel (``istio.io/dataplane-mode: ambient``) and the
    Service has no waypoint: ztunnel picks one endpoint per connection, uniformly over the pods
    (weighted by capacity), whatever the VirtualService says (:mod:`meshstat.mesh.ambient`).
``ambient-waypoint`` (``"ambient + waypoint"``)
    The Service uses a waypoint (``istio.io/use-waypoint``): ztunnel tunnels the connection to
    it and the waypoint applies, per request, the Service's HTTPRoutes (GAMMA producer routes,
    :func:`meshstat.mesh.gateway_api.waypoint_route_for` through ``Mesh.route_for``) or else
    the VirtualService (Alpha in Istio).
``ingress``
    A client outside the mesh through an ingress gateway: a Gateway API ``Gateway`` and its
    HTTPRoutes, or an Istio ``Gateway`` and the VirtualServices bound to it
    (:mod:`meshstat.mesh.ingress`); shown when no client workload is named.

Who a rule applies to (``gateways``, ``exportTo``, the Sidecar resource, the outbound traffic
policy, headless Services) is :mod:`meshstat.mesh.scope`; every route a rule set has for a
service (one representative request per match) is :mod:`meshstat.mesh.requests`.

Istio's translation follows ``pilot/pkg/networking/core/route/route.go``
(``applyHTTPRouteDestination``: one destination -> plain cluster, several ->
``weighted_clusters`` with weight-0 destinations dropped; weights relative since 1.15),
``pilot/pkg/model/service.go: BuildSubsetKey`` (cluster names) and
``pilot/pkg/xds/endpoints/endpoint_builder.go`` (subset endpoints = service endpoints whose
labels include all the subset's labels). The injection decision follows the webhook
selectors of the istio-discovery chart (``mutatingwebhook.yaml``) and
``pkg/kube/inject/webhook.go: injectRequired``.

Modules: :mod:`~meshstat.mesh.layers` (:class:`Layer`, :class:`ClientPath`),
:mod:`~meshstat.mesh.registry` (pods, services, the injection decision),
:mod:`~meshstat.mesh.endpoints` (one cluster's endpoint stage, the runtime_fraction correlation),
:mod:`~meshstat.mesh.envoy` (a call through an Envoy configuration and its Route),
:mod:`~meshstat.mesh.scope`, :mod:`~meshstat.mesh.ambient`, :mod:`~meshstat.mesh.requests`,
:mod:`~meshstat.mesh.gateway_api` (Gateway API routes: which rule serves a request, its weighted
backends, the GAMMA routes a sidecar applies, the HTTPRoutes a waypoint executes),
:mod:`~meshstat.mesh.ingress` (the ``ingress`` path through a gateway),
:mod:`~meshstat.mesh.paths` (:class:`Mesh` and its client paths). Comparing the paths by
simulation is the engine's job (:func:`meshstat.engine.mesh.compare_paths`).
"""

from __future__ import annotations

from meshstat.mesh.ambient import (
    AmbientDecision,
    WaypointBinding,
    ambient_decision,
    client_kind,
    service_waypoint,
)
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
from meshstat.mesh.layers import ClientPath, Layer
from meshstat.mesh.paths import Mesh
from meshstat.mesh.registry import (
    EP,
    InjectionDecision,
    InjectorConfig,
    Pod,
    RegisteredService,
    injection_decision,
    version_of,
)
from meshstat.mesh.requests import Request, paths_per_route
from meshstat.mesh.scope import ClientScope, client_scope, destination_rule

__all__ = [
    "EP",
    "AmbientDecision",
    "ClientPath",
    "ClientScope",
    "InjectionDecision",
    "InjectorConfig",
    "Layer",
    "Mesh",
    "Pod",
    "RegisteredService",
    "Request",
    "Resolution",
    "ResolutionStep",
    "RouteCandidate",
    "WaypointBinding",
    "ambient_decision",
    "client_kind",
    "client_scope",
    "correlated_weights",
    "destination_rule",
    "endpoint_stage",
    "envoy_dump_route",
    "find_virtual_host",
    "injection_decision",
    "paths_per_route",
    "resolve_call",
    "route_static_match",
    "select_filter_chain",
    "select_listener",
    "service_waypoint",
    "version_of",
]
