"""Istio ambient: who ztunnel captures, ztunnel's per-connection choice, waypoints and their routes.

**Capture** (istio ``cni/pkg/util/enablement_selector.go``: ``CompiledEnablementSelectors.Matches``
with the istio-cni chart's default ``ambient.enablementSelectors``): a pod is captured when its
label ``istio.io/dataplane-mode`` is ``ambient``, or its namespace's is and the pod's is not
``none``; never a ``hostNetwork`` pod, never a pod with a sidecar (``podHasSidecar``: ztunnel and
a sidecar in one pod are not supported, the sidecar wins).

**ztunnel, no waypoint** (istio/ztunnel ``src/proxy/outbound.rs``: ``build_request``;
``src/state.rs``: ``ProxyState::find_upstream_from_service`` and ``ProxyState::load_balance``):
for each *connection* to a Service VIP, ztunnel keeps the Service's endpoints whose workload is
known and has the port, and picks one with ``choose_weighted`` by the workload's ``capacity``
(1 unless a WorkloadEntry/ServiceEntry weight sets it): for pods, uniform over all pods of the
Service, every version alike. Unhealthy endpoints are not in the set (``should_include_endpoint``).
With ``trafficDistribution`` or ``internalTrafficPolicy: Local`` ztunnel first keeps the best locality
rank (:func:`meshstat.mesh.locality.ztunnel_candidates`), for the caller's node when the input places
the client's Pod on a Node; otherwise all pods are taken as one rank.

**Waypoints** (istio ``pilot/pkg/serviceregistry/ambient/waypoints.go``: ``fetchWaypointForService``,
``fetchWaypointForTarget``, ``GetUseWaypoint``, ``makeAllowedRoutes``, ``gatewayToWaypointTransform``):
the label ``istio.io/use-waypoint`` on the Service (``none`` opts out), else on its namespace,
names a Gateway (namespace ``istio.io/use-waypoint-namespace``, default the labelled object's);
the Gateway must be ready (``status.addresses``), accept the namespace on its HBONE listener
(``allowedRoutes.namespaces.from``, default ``Same``) and take service traffic
(``istio.io/waypoint-for`` on the Gateway, else on its GatewayClass, else ``service``; ``all``
also). A pod's own ``use-waypoint`` label only matters for traffic addressed to the pod, not to
a Service (``outbound.rs``: the workload waypoint is used only when ``service.is_none()``).
ztunnel then tunnels the connection to a waypoint pod (``DemandProxyState::fetch_service_waypoint``).

**At the waypoint** (``pilot/pkg/networking/core/listener_waypoint.go``:
``buildWaypointInboundHTTPRouteConfig``, ``getVirtualServiceForWaypoint``,
``waypointInboundRoute``, ``getWaypointDestinationCluster``): the VirtualServices of gateway
``mesh`` visible in the waypoint's namespace, kept only when they live in the Service's or the
waypoint's namespace, all merged in order; matches with ``sourceLabels`` are dropped ("Source
label matching is not supported in ambient mode"); with no route the waypoint sends to the
whole Service. The chosen ``inbound-vip|port|subset|host`` cluster balances *per request* with the
DestinationRule the waypoint's namespace sees. Istio marks VirtualService at waypoints Alpha
and mixing it with an HTTPRoute for the same Service undefined (Istio docs,
ambient/migrate/migrate-policies); HTTPRoutes come through :data:`RouteFor` (``Mesh.route_for``,
:func:`meshstat.mesh.gateway_api.waypoint_route_for`) and win, with a warning naming the VirtualService.

**Sidecar clients skip waypoints** (``pilot/pkg/xds/endpoints/endpoint_builder.go``:
``buildEnvoyLbEndpoint``: a sidecar treats a waypoint-captured Service as workload traffic and
applies its own routes), and clients outside the mesh reach the pods through kube-proxy.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Callable
from dataclasses import dataclass, replace
from operator import itemgetter
from typing import Any

from meshstat.mesh.layers import ClientList, ClientPath, Layer, name_list, rename, with_fault_abort
from meshstat.mesh.locality import Place, ztunnel_candidates, ztunnel_policy
from meshstat.mesh.registry import RegisteredService, uncaptured, uncaptured_note
from meshstat.mesh.requests import Request
from meshstat.mesh.scope import (
    client_scope,
    headless_layers,
    headless_route,
    is_headless,
    mesh_virtual_services,
)
from meshstat.model import Backend, Node, Provenance, Route, Weighted
from meshstat.parsers.gateway_api import Gateway
from meshstat.parsers.k8s import Diagnostic, VirtualService, WorkloadResource

__all__ = [
    "AmbientDecision",
    "RouteFor",
    "WaypointBinding",
    "ambient_decision",
    "client_kind",
    "extend_paths",
    "service_waypoint",
    "waypoint_route",
    "waypoint_virtual_services",
    "ztunnel_route",
]

DATAPLANE_MODE = "istio.io/dataplane-mode"
USE_WAYPOINT = "istio.io/use-waypoint"
USE_WAYPOINT_NS = "istio.io/use-waypoint-namespace"

#: The hook for route sources other than VirtualServices (Gateway API HTTPRoute/GRPCRoute):
#: ``route_for(mesh, info, port, request, *, proxy, namespace, unit, diags, notes, layers)`` returns
#: the split node (appending its Layers) or ``None`` when no such route binds ``info``. ``proxy``
#: is ``"waypoint"`` here; ``namespace`` the proxy's. Set it as ``Mesh.route_for``.
RouteFor = Callable[..., Node | None]


# --------------------------------------------------------------------------- capture


@dataclass(frozen=True, slots=True)
class AmbientDecision:
    """Whether ztunnel captures a workload's pods, and why (with file:line)."""

    captured: bool
    reason: str
    source: str | None = None
    line: int | None = None

    def __str__(self) -> str:
        return ("ambient: " if self.captured else "not ambient: ") + self.reason


def ambient_decision(mesh: Any, w: WorkloadResource) -> AmbientDecision:
    """istio-cni's ambient enablement for ``w``'s pods (default enablement selectors)."""
    src, line = w.meta.source, w.meta.line
    ns = mesh.namespace(w.meta.namespace)
    ns_mode = ns.labels.get(DATAPLANE_MODE) if ns is not None else None
    pod_mode = w.labels.get(DATAPLANE_MODE)
    if w.host_network:
        return AmbientDecision(False, "hostNetwork: true (never captured)", src, line)
    if mesh.injection(w).injected:
        why = "it has a sidecar, and ztunnel never captures a pod with a sidecar (podHasSidecar)"
        return AmbientDecision(False, why if "ambient" in (ns_mode, pod_mode) else "sidecar-injected", src, line)
    if pod_mode == "ambient":
        return AmbientDecision(True, f"pod label {DATAPLANE_MODE}=ambient", src, line)
    if ns_mode == "ambient":
        if pod_mode == "none":
            return AmbientDecision(False, f"pod label {DATAPLANE_MODE}=none opts out of the ambient namespace "
                                   f"{w.meta.namespace}", src, line)
        return AmbientDecision(True, f"namespace {w.meta.namespace} has {DATAPLANE_MODE}=ambient", ns.meta.source,
                               ns.meta.line)
    return AmbientDecision(False, f"neither namespace {w.meta.namespace} nor the pod has {DATAPLANE_MODE}=ambient",
                           src, line)


def client_kind(mesh: Any, w: WorkloadResource) -> str:
    """``"sidecar"``, ``"ambient"`` or ``"kube-proxy"`` (no mesh) for a client workload (decided once per mesh)."""
    memo = mesh.__dict__.setdefault("_client_kinds", {})
    got = memo.get(id(w))
    if got is None:
        if mesh.injection(w).injected:
            got = "sidecar"
        else:
            got = "ambient" if ambient_decision(mesh, w).captured else "kube-proxy"
        memo[id(w)] = got
    return got


def _ambient_in_use(mesh: Any) -> bool:
    got = mesh.__dict__.get("_ambient_in_use")
    if got is None:
        got = mesh.__dict__["_ambient_in_use"] = _any_ambient(mesh)
    return got


def _any_ambient(mesh: Any) -> bool:
    return any(ns.labels.get(DATAPLANE_MODE) == "ambient" or USE_WAYPOINT in ns.labels
               for ns in mesh.manifests.namespaces.values()) or any(
        w.labels.get(DATAPLANE_MODE) == "ambient" for w in mesh.manifests.workloads) or any(
        USE_WAYPOINT in dict(s.meta.labels) for s in mesh.manifests.services) or any(
        g.is_waypoint_class for g in mesh.scope.gateways)


# --------------------------------------------------------------------------- waypoints


@dataclass(frozen=True, slots=True)
class WaypointBinding:
    """The waypoint of a Service (``gateway`` ``None``: none), where the label is, and what went wrong."""

    gateway: Gateway | None
    origin: str
    problem: str | None = None
    source: str | None = None
    line: int | None = None


def service_waypoint(mesh: Any, info: RegisteredService) -> WaypointBinding:
    """The waypoint ztunnel sends connections to ``info`` through (``fetchWaypointForService``)."""
    meta = info.service.meta if info.service is not None else info.entry.meta  # type: ignore[union-attr]
    labels = dict(meta.labels)
    if dict(meta.labels).get("gateway.istio.io/managed") in ("istio.io-mesh-controller", "istio.io-eastwest-controller"):
        return WaypointBinding(None, "the Service of a waypoint or east-west gateway has no waypoint")
    if USE_WAYPOINT in labels:
        if labels[USE_WAYPOINT] == "none":
            return WaypointBinding(None, f"Service {info.short} label {USE_WAYPOINT}=none opts out", None,
                                   meta.source, meta.line)
        name, ns = labels[USE_WAYPOINT], labels.get(USE_WAYPOINT_NS, meta.namespace)
        origin, src, line, from_ns = f"Service {info.short} label {USE_WAYPOINT}={name}", meta.source, meta.line, \
            mesh.namespace(meta.namespace)
    else:
        nso = mesh.namespace(meta.namespace)
        if nso is None or USE_WAYPOINT not in nso.labels:
            return WaypointBinding(None, f"neither Service {info.short} nor namespace {meta.namespace} has "
                                   f"{USE_WAYPOINT}")
        name = nso.labels[USE_WAYPOINT]
        if name == "none":
            return WaypointBinding(None, f"namespace {meta.namespace} label {USE_WAYPOINT}=none", None,
                                   nso.meta.source, nso.meta.line)
        ns = nso.labels.get(USE_WAYPOINT_NS, meta.namespace)
        origin, src, line, from_ns = f"namespace {meta.namespace} label {USE_WAYPOINT}={name}", nso.meta.source, \
            nso.meta.line, nso
    gw = next((g for g in mesh.scope.gateways if g.meta.namespace == ns and g.meta.name == name), None)
    if gw is None:
        return WaypointBinding(None, origin, f"{origin} names Gateway {ns}/{name}, which is not in the manifests: "
                               "Istio reports the waypoint not ready and ztunnel sends straight to the pods", src, line)
    if gw.hbone_from == "All":
        allowed = True
    elif gw.hbone_from == "Selector":
        nl = from_ns.labels if from_ns is not None else {}
        allowed = all(nl.get(k) == v for k, v in gw.hbone_selector)
    else:
        allowed = gw.meta.namespace == meta.namespace
    if not allowed:
        return WaypointBinding(None, origin, f"waypoint {gw.meta.ref} does not allow attachment from namespace "
                               f"{meta.namespace} (HBONE listener allowedRoutes.namespaces.from={gw.hbone_from}): "
                               "no waypoint", src, line)
    tt = gw.waypoint_for or mesh.scope.class_waypoint_for.get(gw.class_name) or "service"
    if tt not in ("service", "all"):
        return WaypointBinding(None, origin, f"waypoint {gw.meta.ref} has istio.io/waypoint-for={tt}: it takes no "
                               "Service traffic, so ztunnel sends straight to the pods", src, line)
    return WaypointBinding(gw, origin, None, src, line)


def _protocol(mesh: Any, info: RegisteredService, port: int) -> str:
    sp = info.port(port)
    return mesh.port_protocol(sp) if sp is not None else "auto"


def waypoint_virtual_services(mesh: Any, info: RegisteredService, waypoint: Gateway) -> list[VirtualService]:
    """The VirtualServices a waypoint applies to ``info``, first one first.

    Those its namespace reads (``VirtualServicesForGateway`` of gateway ``mesh``:
    :func:`~meshstat.mesh.scope.mesh_virtual_services`) that name the Service and sit in the
    waypoint's own namespace or the Service's (istio ``pilot/pkg/networking/core/
    listener_waypoint.go``, ``getVirtualServiceForWaypoint``: "only ... routes in the same namespace
    as the service or in the waypoint's own namespace").
    """
    wns = waypoint.meta.namespace
    return [vs for vs in mesh_virtual_services(mesh, wns) if vs.meta.namespace in (wns, info.namespace)
            and any(mesh._host_matches(h, vs.meta.namespace, info) for h in vs.hosts)]


def waypoint_route(mesh: Any, info: RegisteredService, port: int, request: Request, waypoint: Gateway,
                   *, name: str, diags: list[Diagnostic], layers: list[Layer]) -> Route:
    """What the waypoint does with requests (or connections, on a TCP port) to ``info:port``."""
    wns = waypoint.meta.namespace
    notes: list[str] = []
    unit = "connection" if _protocol(mesh, info, port) == "tcp" else "request"
    vss = waypoint_virtual_services(mesh, info, waypoint)
    before = len(layers)
    hook: RouteFor | None = getattr(mesh, "route_for", None)
    root: Node | None = None
    if hook is not None:
        root = hook(mesh, info, port, request, proxy="waypoint", namespace=wns, unit=unit, diags=diags, notes=notes,
                    layers=layers)
        if root is not None and vss:
            diags.append(Diagnostic("warning", f"{info.short}: both an HTTPRoute and VirtualService "
                                    f"{vss[0].meta.ref} apply at waypoint {waypoint.meta.ref}; Istio calls mixing them "
                                    "undefined behaviour (HTTPRoute shown)", vss[0].meta.source, vss[0].meta.line))
    if root is None and vss:
        notes.append(f"VirtualService at a waypoint is Alpha in Istio ({', '.join(v.meta.ref for v in vss)})")
    if root is None and unit == "connection":
        rule = next(((vs, r) for vs in vss for r in vs.tcp if not r.ports or port in r.ports), None)
        if rule is not None:
            vs, r = rule
            root = mesh._split(vs, r.destinations, info, port, wns, unit, diags, notes, layers,
                               f"VirtualService {vs.meta.ref} tcp[{r.index}] at waypoint", r.line)
    elif root is None:
        chosen = None
        any_route = False
        for vs in [v for v in vss if v.http][:1]:  # the first with http rules (buildWaypointInboundHTTPRouteConfig)
            for r in vs.http:
                kept = [m for m in r.matches if not m.source_labels]
                if r.matches and not kept:
                    notes.append(f"http[{r.index}] of {vs.meta.ref}: every match uses sourceLabels, which a waypoint "
                                 "drops: the rule does not exist there")
                    continue
                any_route = True
                if chosen is None and (not kept or any(
                        mesh.request_matches(m, request.path, request.header_map, request.method,
                                             f"{info.name}:{port}", port, {}, wns, notes) for m in kept)):
                    chosen = (vs, r)
                if not r.matches:
                    break
        if chosen is not None:
            vs, r = chosen
            label = f"VirtualService {vs.meta.ref} http[{r.index}] at waypoint" + (f" {r.name!r}" if r.name else "")
            if r.terminal is not None or not r.destinations:
                root = Backend(name=f"{r.terminal or 'no destination'} ({vs.meta.name} http[{r.index}])",
                               labels=(("outcome", r.terminal or "none"),),
                               provenance=Provenance(vs.meta.source, r.line))
            else:
                at = len(layers)
                root = with_fault_abort(mesh._split(vs, r.destinations, info, port, wns, unit, diags, notes, layers,
                                                    label, r.line), r.abort, label, f"{vs.meta.source}:{r.line}",
                                        layers, at)
        elif any_route:
            root = Backend(name="404 NR no route (waypoint)", labels=(("outcome", "404"),),
                           provenance=Provenance(vss[0].meta.source, vss[0].meta.line))
    if root is None:
        layers.append(Layer("Envoy route", f"inbound-vip|{port}|{'tcp' if unit == 'connection' else 'http'}|{info.fqdn}",
                            "no route for the Service: the waypoint's default route to all its endpoints", unit))
        root = mesh._cluster_node(None, info, port, wns, unit, None, diags, notes, layers)
    sub = "tcp" if unit == "connection" else "http"
    mine = {info.fqdn} | _waypoint_services(mesh, waypoint)
    for i in range(before, len(layers)):  # clusters of the waypoint's own Services are inbound-vip ones
        x = layers[i]
        layers[i] = Layer(x.layer.replace("Envoy", "waypoint Envoy", 1) if x.layer.startswith("Envoy") else x.layer,
                          _vip(x.component, sub, mine), x.decision, x.unit, x.where)
    return Route(root=root, name=name, notes=tuple(dict.fromkeys(_vip(n, sub, mine) for n in notes)))


def _vip(text: str, sub: str, hosts: set[str]) -> str:
    """``outbound|9080|v1|h`` -> ``inbound-vip|9080|http/v1|h`` for ``h`` in ``hosts``.

    ``getWaypointDestinationCluster`` and ``portToSubset``: a destination the waypoint serves
    itself is its ``inbound-vip`` cluster; any other keeps its ``outbound`` one.
    """
    def one(m: re.Match[str]) -> str:
        if m[3] not in hosts:
            return m[0]
        return f"inbound-vip|{m[1]}|{sub}{'/' + m[2] if m[2] else ''}|{m[3]}"

    return re.sub(r"outbound\|(\d+)\|([^|]*)\|([^\s|),:;]+)", one, text)


# --------------------------------------------------------------------------- ztunnel


def ztunnel_route(mesh: Any, info: RegisteredService, port: int, *, name: str,
                  diags: list[Diagnostic] | None = None, caller: Place | None = None) -> Route:
    """ztunnel's per-connection endpoint choice for a Service without waypoint (``load_balance``).

    With ``internalTrafficPolicy: Local`` or a ``trafficDistribution``, the endpoints are those of the best
    locality rank for a caller at ``caller`` (:func:`meshstat.mesh.locality.ztunnel_candidates`).
    """
    eps = mesh.endpoints(info, port, diags)
    prov = Provenance(info.source, info.line)
    td = mesh.manifests.topology.services.get(f"{info.namespace}/{info.name}")
    mode, scopes = ztunnel_policy(td.internal_policy if td else None, td.traffic_distribution if td else None)
    extra: tuple[str, ...] = ()
    if mode != "Standard":
        if caller is None:
            extra = (f"ztunnel {mode} over {', '.join(scopes)}: the caller's node is unknown (no Pod with "
                     "spec.nodeName and its Node), so every endpoint is shown; compare -f with Nodes shows each zone",)
        else:
            eps = ztunnel_candidates(eps, caller, mode, scopes)
            extra = (f"ztunnel {mode} over {', '.join(scopes)} for a caller on {caller.node or caller.label}: "
                     f"{len(eps)} endpoint(s) of the best locality rank",)
    if not eps:
        root: Node = Backend(name=f"connection closed: no endpoint ({info.short}:{port})",
                             labels=(("outcome", "reject"),), provenance=prov)
    else:
        root = Weighted(children=tuple(e.backend for e in eps), weights=tuple(max(1, e.weight) for e in eps),
                        unit="connection", name=f"ztunnel load_balance {info.fqdn}:{port} (choose_weighted by capacity)",
                        provenance=prov)
    return Route(root=root, name=name, provenance=prov, notes=(
        f"ztunnel picks one of {len(eps)} endpoint(s) per connection at random, weighted by workload capacity "
        "(ztunnel src/state.rs ProxyState::load_balance); HTTP requests follow their connection", *extra))


def _client_layers(info: RegisteredService, port: int) -> list[Layer]:
    ip = info.service.cluster_ip if info.service is not None and info.service.cluster_ip else ""
    return [
        Layer("client", "app container", f"connect() to {info.short}:{port}" + (f" (ClusterIP {ip})" if ip else ""),
              "connection"),
        Layer("capture (pod netns)", "istio-cni in-pod rules -> ztunnel 15001",
              "outbound TCP is redirected to the node's ztunnel, which listens inside the pod's network namespace",
              "connection"),
    ]


def _ztunnel_layers(mesh: Any, info: RegisteredService, port: int, binding: WaypointBinding) -> list[Layer]:
    n = len(mesh.endpoints(info, port))
    why = binding.problem or binding.origin
    return _client_layers(info, port) + [
        Layer("ztunnel (client node)", "load_balance", f"no waypoint ({why}): one of {n} endpoint(s) per connection, "
              "random weighted by capacity (1 per pod); assumes: every pod ready and healthy, one locality",
              "connection", f"{binding.source}:{binding.line}" if binding.source else ""),
        _to_pod(mesh, info, "ztunnel"),
    ]


def _waypoint_services(mesh: Any, waypoint: Gateway) -> set[str]:
    """The FQDNs of the Services whose waypoint is ``waypoint`` (found once per mesh for every waypoint)."""
    memo = mesh.__dict__.get("_waypoint_services")
    if memo is None:
        memo = mesh.__dict__["_waypoint_services"] = {}
        for r in mesh.registry.values():
            gw = service_waypoint(mesh, r).gateway
            if gw is not None:
                memo.setdefault(id(gw), (gw, set()))[1].add(r.fqdn)
    got = memo.get(id(waypoint))
    return got[1] if got is not None else set()


def _to_pod(mesh: Any, info: RegisteredService, who: str) -> Layer:
    """The last hop: HBONE when the Service's pods are captured, else plain TCP to the pod."""
    sel = info.service.selector if info.service is not None else None
    pods = mesh.selected_pods(info.namespace, sel) if sel else []
    if any(ambient_decision(mesh, p.workload).captured for p in pods):
        return Layer("network", "HBONE :15008", f"the {who} tunnels (mTLS) to the chosen pod's node ztunnel, which "
                     "delivers to the pod; kube-proxy is not involved", "connection")
    return Layer("network", "pod IP", f"the pods of {info.short} are not in ambient: the {who} connects to the chosen "
                 "pod directly (no HBONE); kube-proxy is not involved", "connection")


def _waypoint_layers_before(binding: WaypointBinding, info: RegisteredService, port: int) -> list[Layer]:
    gw = binding.gateway
    assert gw is not None
    return _client_layers(info, port) + [
        Layer("ztunnel (client node)", f"waypoint {gw.meta.ref}", f"{binding.origin}: the connection is tunnelled "
              "(HBONE) to one waypoint pod, chosen per connection; the waypoint's pods do not change the split"
              + ("" if gw.has_addresses else "; assumes: the waypoint is programmed (no status.addresses in the "
                 "manifests)"), "connection", f"{binding.source}:{binding.line}"),
        Layer("waypoint Envoy", f"{gw.meta.ref} (class {gw.class_name})", "terminates HBONE and routes each request "
              "of the connection on its own", "connection", gw.meta.where),
    ]


# --------------------------------------------------------------------------- the paths


def _same(a: Route, b: Route) -> bool:
    return [x.name for x in a.backends()] == [x.name for x in b.backends()] and a.exact_shares() == b.exact_shares()


def _add_shapes(path: ClientPath, shapes: list[Any], idx: Any) -> None:
    """Add the groups of ``shapes`` (:class:`meshstat.mesh.clients.ShapeRuns`) to ``path``'s clients, all of its
    groups in the manifests' order (the order of their first workloads), as one group at a time would add them."""
    have = path.clients._parts
    if not have and len(shapes) == 1:
        path.clients.add_runs(shapes[0].runs)
        return
    entries = [(idx.first_order(names, drop), (names, drop)) for names, drop in have]
    for x in shapes:
        entries += zip(x.orders, x.runs, strict=True)
    entries.sort(key=itemgetter(0))
    path.clients = ClientList()
    path.clients.add_runs(map(itemgetter(1), entries))


def extend_paths(mesh: Any, info: RegisteredService, port: int, paths: list[ClientPath], *, clients: Any,
                 client: WorkloadResource | None, request: Request, diags: list[Diagnostic]) -> list[ClientPath]:
    """Add ambient paths, split sidecar clients by scope, and handle headless Services.

    Called by :meth:`meshstat.mesh.Mesh.client_paths` on its kube-proxy, sidecar, UID 1337 and
    config dump paths. ``clients`` (:class:`meshstat.mesh.clients.ServiceClients`) are ``client``
    alone, or every workload of the mesh but ``info``'s own; the sidecar clients of namespaces that
    nothing singles out for ``info`` (:func:`meshstat.mesh.clients.route_namespaces`) share one
    route, worked out once.
    """
    kp_names, amb_first, amb_names = clients.kube_proxy, clients.first_ambient, clients.ambient
    groups = clients.sidecar_groups
    binding = service_waypoint(mesh, info)
    if binding.problem:
        diags.append(Diagnostic("warning", binding.problem, binding.source, binding.line))
    out: list[ClientPath] = []
    for p in paths:
        if p.kind == "kube-proxy":
            p.clients = kp_names
        if p.kind == "sidecar":
            if client is None and len(groups) > 1:
                special = clients.route_namespaces()
                idx = clients.index
                # the groups of namespaces that only their Sidecar resource singles out: one route per shape
                shaped = sorted(idx.shape_runs(special | {info.namespace}), key=lambda x: x.orders[0]) if (
                    special is not None and idx is not None and idx.with_sidecar) else []
                shaped_ns = idx.with_sidecar - special - {info.namespace} if shaped and idx is not None else set()
                took: dict[int, tuple[ClientPath, list[Any]]] = {}  # a path's shapes, added in order at the end

                def path_of(rep: WorkloadResource, refs: list[str] | None = None) -> ClientPath:
                    """The path of ``rep``'s route: one already taken by the same route, or a new one. ``refs``:
                    the Sidecars of the shape ``rep`` stands for, which its warnings then name."""
                    sc = client_scope(mesh, rep, rep.meta.namespace)
                    lay: list[Layer] = []
                    label = f"sidecar (Envoy) [{rep.meta.namespace}, {sc.label}]"
                    mine: list[Diagnostic] = []
                    r = mesh.sidecar_route(rep, info, port, path=request.path, headers=request.header_map,
                                           method=request.method, name=label, diags=mine, layers=lay)
                    if refs is not None and len(refs) > 1 and sc.sidecar is not None:
                        was, now = f"Sidecar {sc.sidecar.meta.ref}", f"Sidecars {name_list(refs, 3)}"
                        mine = [replace(d, message=rename(d.message, was, now)) for d in mine]
                    diags.extend(mine)
                    same = next((q for q in out if q.kind == "sidecar" and _same(q.route, r)), None)
                    if same is None:
                        same = ClientPath("sidecar", label, r, ClientList(), mesh._capture_layers(info, port) + lay)
                        out.append(same)
                    return same

                def shapes_before(order: float) -> None:
                    """The shapes whose first group comes before ``order``: their paths, in turn."""
                    while shaped and shaped[0].orders[0] < order:
                        x = shaped.pop(0)
                        q = p if x.first is groups[0][1] else path_of(x.first, x.refs)
                        took.setdefault(id(q), (q, []))[1].append(x)
                        diags.extend(x.warnings)

                out.append(p)
                if groups[0][0] in shaped_ns:  # the first injected workload's route is its shape's
                    p.clients = ClientList()
                    generic = None
                    shapes_before(float("inf") if len(shaped) == 1 else shaped[1].orders[0])
                else:
                    p.clients = ClientList.run(*groups[0][2])
                    # the path that the sidecars of namespaces nothing singles out take (their route is one)
                    generic = p if special is not None and groups[0][0] not in special else None
                rest = [g for g in groups[1:] if g[0] not in shaped_ns] if shaped_ns else groups[1:]
                # the positions of the groups to look at one by one; the others (a cluster's hundreds of
                # namespaces) go to the generic path a stretch at a time
                apart = [k for k, g in enumerate(rest) if special is None or g[0] in special] + [len(rest)]
                k = 0
                while k < len(rest):
                    ns, rep, (names, drop) = rest[k]
                    alike = special is not None and ns not in special
                    if alike and generic is not None:
                        end = apart[bisect_right(apart, k)]
                        generic.clients.add_runs(map(itemgetter(2), rest[k:end]))
                        k = end
                        continue
                    k += 1
                    if shaped and idx is not None:
                        shapes_before(idx.order[id(rep)])
                    same = path_of(rep)
                    same.clients.add_run(names, drop)
                    if alike:
                        generic = same
                shapes_before(float("inf"))
                for q, xs in took.values():
                    _add_shapes(q, xs, idx)
                continue
            if binding.gateway is not None:
                p.route = Route(root=p.route.root, name=p.route.name, provenance=p.route.provenance,
                                notes=(*p.route.notes, f"{info.short} has waypoint {binding.gateway.meta.ref}, but a "
                                       "sidecar client skips it and applies its own routes (endpoint_builder.go "
                                       "buildEnvoyLbEndpoint)"))
        out.append(p)
    if (client is not None and client_kind(mesh, client) == "ambient") or amb_names or _ambient_in_use(mesh):
        who = amb_names
        sp = info.port(port)
        if sp is not None and uncaptured(sp):  # the in-pod rules redirect TCP only: no ztunnel, no waypoint
            r = mesh.kube_proxy_route(info, port, name="ambient (kube-proxy)", diags=diags,
                                      notes=(uncaptured_note(sp, "ztunnel"),))
            out.append(ClientPath("ambient", r.name, r, who,
                                  mesh._uncaptured_layers(info, port, "istio-cni in-pod rules")))
        elif binding.gateway is None:
            first = amb_first if amb_first is not None else client
            where = mesh.places.get((first.meta.namespace, first.meta.name)) if first is not None else None
            r = ztunnel_route(mesh, info, port, name="ambient (ztunnel)", diags=diags, caller=where)
            out.append(ClientPath("ambient", r.name, r, who, _ztunnel_layers(mesh, info, port, binding)))
        else:
            lay = _waypoint_layers_before(binding, info, port)
            r = waypoint_route(mesh, info, port, request, binding.gateway, name="ambient + waypoint", diags=diags,
                               layers=lay)
            lay.append(_to_pod(mesh, info, "waypoint"))
            out.append(ClientPath("ambient-waypoint", r.name, r, who, lay))
    if is_headless(info):
        for p in out:
            if p.kind in ("kube-proxy", "sidecar", "uid-1337", "ambient", "ambient-waypoint"):
                p.route = headless_route(mesh, info, port, p.label)
                p.layers = headless_layers(info, port)
        diags.append(Diagnostic("note", f"{info.short} is headless (clusterIP: None): clients dial pod addresses "
                                "from DNS, so no split applies on any path", info.source, info.line))
    return out
