"""The mesh: every way a call from a client workload to a service can go, and its layers.

:class:`Mesh` reads a set of manifests as Istio does (pods, registry, VirtualServices,
DestinationRules, the injection decision) and builds, per (service, port), the
:class:`ClientPath` of each way a call can take (kube-proxy, sidecar, the sidecar's own traffic,
an Envoy config dump, ambient, an ingress gateway), each with its :class:`meshstat.model.Route` and
its :class:`Layer` view. The Istio routing (VirtualService and DestinationRule selection, subset
clusters, weighted destinations) stays in :class:`Mesh`'s methods: they share its registry, and the
module is under 800 lines. Gateway API routes (a sidecar's GAMMA routes, a waypoint's, the ingress)
are :mod:`meshstat.mesh.gateway_api` and :mod:`meshstat.mesh.ingress`, which call back into
``Mesh._cluster_node`` for the clusters and never import this module.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from fractions import Fraction
from typing import Any

from meshstat.errors import InvalidArgument
from meshstat.inputs import ascii_digits
from meshstat.mesh.ambient import RouteFor, extend_paths
from meshstat.mesh.clients import service_clients
from meshstat.mesh.endpoints import endpoint_stage
from meshstat.mesh.envoy import envoy_dump_route
from meshstat.mesh.gateway_api import (gateway_routed_services, route_requests, sidecar_split, split_layers, split_node,
                                       waypoint_route_for)
from meshstat.mesh.ingress import ingress_paths
from meshstat.mesh.layers import ClientPath, Layer, distinct_leaves, failure_warnings, with_fault_abort
from meshstat.mesh.locality import (LocalityPolicy, Place, apply_locality, cluster_policy, depends_on_caller,
                                    describe, node_local_warning, pod_places)
from meshstat.mesh.registry import (
    EP,
    MAX_PODS,
    InjectionDecision,
    InjectorConfig,
    LabelIndex,
    Ownership,
    Pod,
    RegisteredService,
    build_registry,
    endpoint_conditions,
    injection_decision,
    labels_subset,
    pod_condition,
    port_protocol,
    uncaptured,
    uncaptured_note,
)
from meshstat.mesh.requests import Request, RequestsFor, request_matches
from meshstat.mesh.requests import authority as request_authority
from meshstat.mesh.scope import (ClientScope, client_scope, cluster_miss, destination_rule, first_for_port, host_rules,
                                 scope_miss, sidecar_cluster_miss, sidecar_virtual_services, unknown_destination_route)
from meshstat.model import Backend, Cascade, Node, Provenance, Route, Weighted
from meshstat.parsers import envoy as envoy_parser
from meshstat.parsers.istio_scope import read_scope_objects, superseded, unmodelled_warnings
from meshstat.parsers.k8s import (
    DestinationRule,
    Diagnostic,
    Manifests,
    Namespace,
    RouteDestination,
    VirtualService,
    WorkloadResource,
)
from meshstat.parsers.yaml_loader import gc_paused

__all__ = ["ISTIO_DEFAULT_LB", "MAX_PODS", "NO_ROUTED_SERVICE", "ClientPath", "Layer", "Mesh"]

#: Istio's default ``lb_policy`` for outbound clusters since 1.14 (``defaultLBAlgorithm``).
ISTIO_DEFAULT_LB = "LEAST_REQUEST"
#: What ``compare -f`` and ``mesh`` say when no rule names a Service and none was given.
NO_ROUTED_SERVICE = ("no VirtualService or Gateway API route in the manifests routes a known Service; "
                     "give --service NS/NAME[:PORT]")

# --------------------------------------------------------------------------- the mesh


class Mesh:
    """A set of manifests as a mesh: pods, services, routing rules and the injection decision.

    Who a rule applies to (exportTo, Sidecar resources, the outbound policy) is
    :mod:`meshstat.mesh.scope`; ambient capture, ztunnel and waypoints are :mod:`meshstat.mesh.ambient`.

    Parameters
    ----------
    manifests : Manifests
        From :func:`meshstat.parsers.k8s.load_manifests`.
    scale : mapping of str to int, optional
        What-if replica counts: ``{"deploy/bill-service-v1": 3}`` (also ``ns/name`` or ``name``).
    injector : InjectorConfig
        The injector's policy.
    cluster_domain : str
        Kubernetes cluster domain (``cluster.local``).
    """

    def __init__(self, manifests: Manifests, *, scale: Mapping[str, int] | None = None,
                 injector: InjectorConfig = InjectorConfig(),  # noqa: B008 (frozen)
                 cluster_domain: str = "cluster.local") -> None:
        self.manifests = manifests
        self.injector = injector
        self.domain = cluster_domain
        #: Sidecar resources, MeshConfig and waypoint Gateways (:mod:`meshstat.mesh.scope`, :mod:`~meshstat.mesh.ambient`)
        self.scope = read_scope_objects(manifests)
        gone = superseded(manifests)  # per-object "ignored" notes -> one warning per kind
        self.diagnostics: list[Diagnostic] = [d for d in manifests.diagnostics if (d.source, d.line) not in gone
                                              or not d.message.startswith("ignored ")]
        self.diagnostics += unmodelled_warnings(manifests, self.scope.consumed)
        #: Route sources other than VirtualServices (ambient.RouteFor, requests.RequestsFor): the Gateway API
        #: HTTPRoutes a waypoint executes, and their match conditions for the every-route view
        self.route_for: RouteFor | None = waypoint_route_for
        self.requests_for: RequestsFor | None = route_requests
        self.notes: list[str] = []
        self._injections: dict[int, InjectionDecision] = {}
        self._pods_by_label: LabelIndex[Pod] | None = None
        self._pod_names: tuple[dict[str, Pod], dict[str, Pod], dict[tuple[str, str], list[Pod]]] | None = None
        self._proxy_names: dict[int, str] = {}
        #: (service, port) -> its endpoints with their conditions, their warnings, and per proxy (kube-proxy or
        #: not) the endpoints that take traffic with the warning that says why
        self._endpoints: dict[tuple[int, int], tuple[list[tuple[EP, str]], list[Diagnostic],
                                                     dict[bool, tuple[list[EP], list[Diagnostic]]]]] = {}
        #: ``_cluster_node``'s endpoint stages by what decides them, with the warnings, notes and layers they add
        self._clusters: dict[tuple[Any, ...], tuple[Any, ...]] = {}
        self._kube_routes: dict[tuple[int, int], tuple[Route, tuple[str, ...]]] = {}
        self.replicas: dict[int, int] = {}
        for ref, r in (scale or {}).items():
            if not isinstance(r, int) or isinstance(r, bool) or r < 0:
                raise InvalidArgument(f"--scale {ref}={r!r}: replicas must be an integer >= 0")
            w = manifests.workload(ref)
            if w.meta.kind == "Pod":
                raise InvalidArgument(f"--scale {ref}: a Pod cannot be scaled (use its Deployment/StatefulSet)")
            self.replicas[id(w)] = r
            self.notes.append(f"what-if: {w.meta.kind} {w.meta.ref} scaled from {w.replicas} to {r} replica(s)")
        #: the workloads whose pods are backends and those that are clients (ownerReferences), and each Pod's
        #: endpoint condition from its status
        self.owners = Ownership.of(manifests.workloads, frozenset(self.replicas), {
            (p.namespace, p.name): pod_condition(p.ready, p.terminating, p.phase, p.ip, p.has_status)
            for p in manifests.topology.pods})
        self.notes += self.owners.expand_notes(self.replicas)
        self._pods: list[Pod] | None = None  # :attr:`pods`, made on first use
        with gc_paused():  # thousands of registry entries, no cycles to collect
            self.registry = build_registry(manifests.services, manifests.service_entries, self.domain)
            #: where pods run (Pods with spec.nodeName and their Nodes): ``(namespace, pod) -> Place``
            self.places = pod_places(manifests)
        self._caller: tuple[Place | None, Mapping[str, str]] | None = None
        self._scope: ClientScope | None = None  # the sidecar's, while its route is built (sidecar_cluster_miss)

    # ------------------------------------------------------------------ pods & registry

    @property
    def pods(self) -> list[Pod]:
        """Every pod of the manifests (:meth:`~meshstat.mesh.registry.Ownership.expand`), made on first use: the
        audit reads workloads and never asks."""
        if self._pods is None:
            with gc_paused():  # tens of thousands of pods, no cycles to collect
                self._pods = self.owners.expand(self.replicas)
        return self._pods

    def namespace(self, name: str) -> Namespace | None:
        """The Namespace object, if the manifests have one."""
        return self.manifests.namespaces.get(name)

    def injection(self, w: WorkloadResource) -> InjectionDecision:
        """The sidecar injection decision for a workload's pods (decided once per workload)."""
        got = self._injections.get(id(w))
        if got is None:
            got = self._injections[id(w)] = injection_decision(w, self.namespace(w.meta.namespace), self.injector)
        return got

    def _proxy_name(self, w: WorkloadResource) -> str:
        """``ns/name (istio-proxy)``: the workload's sidecar as a client (one string per workload, not per path)."""
        got = self._proxy_names.get(id(w))
        if got is None:
            got = self._proxy_names[id(w)] = f"{w.meta.ref} (istio-proxy)"
        return got

    def selected_pods(self, namespace: str, selector: Sequence[tuple[str, str]]) -> list[Pod]:
        """The pods of ``namespace`` that ``selector`` (not empty) selects, in order (a :class:`LabelIndex`,
        built on first use: a Service costs its candidates, not its namespace)."""
        if self._pods_by_label is None:
            self._pods_by_label = LabelIndex((p, p.namespace, dict(p.labels)) for p in self.pods)
        return self._pods_by_label.select(namespace, selector)

    def resolve_host(self, host: str, namespace: str) -> RegisteredService | None:
        """A VirtualService/DestinationRule host as Istio reads it (``ResolveShortnameToFQDN``).

        A name without a dot is ``<name>.<namespace of the rule>.svc.<domain>``; anything with
        a dot is taken literally.
        """
        if host in self.registry:
            return self.registry[host]
        if "." not in host and host != "*":
            return self.registry.get(f"{host}.{namespace}.svc.{self.domain}")
        return None

    def find_service(self, text: str, client_ns: str | None = None) -> tuple[RegisteredService, int | None]:
        """A service named ``name``, ``ns/name``, ``name.ns``, FQDN or SE host, optionally ``:port``."""
        host, _, p = text.rpartition(":") if ":" in text else (text, "", "")
        if host.count("/") == 1:
            ns, _, nm = host.partition("/")
            host = f"{nm}.{ns}"
        port = None
        if p:
            if not ascii_digits(p):
                raise InvalidArgument(f"expected HOST[:PORT], got {text!r}")
            port = int(p)
        cands = []
        for info in self.registry.values():
            names = {info.fqdn}
            if info.service is not None:
                names |= {f"{info.name}.{info.namespace}", f"{info.name}.{info.namespace}.svc"}
                if client_ns is None or client_ns == info.namespace:
                    names.add(info.name)
            if host in names:
                cands.append(info)
        if not cands:
            raise InvalidArgument(f"no Service or ServiceEntry {host!r} in the manifests "
                                  f"(known: {', '.join(sorted(self.registry)) or 'none'})")
        if len(cands) > 1:
            raise InvalidArgument(f"{host!r} is ambiguous: {', '.join(c.fqdn for c in cands)}")
        return cands[0], port

    def endpoints(self, info: RegisteredService, port: int,
                  diags: list[Diagnostic] | None = None, *, kube_proxy: bool = False) -> list[EP]:
        """Endpoints of ``info`` for its port ``port`` (pods selected by the Service, or SE endpoints).

        The pods whose condition receives traffic (:func:`~meshstat.mesh.registry.endpoint_conditions`;
        ``kube_proxy``: with its fallback to serving terminating pods). Worked out once per (service,
        port), filtered once per proxy; its warnings go to every ``diags`` that asks again.
        """
        key = (id(info), port)
        got = self._endpoints.get(key)
        if got is None:
            found: list[Diagnostic] = []
            got = self._endpoints[key] = (self._find_endpoints(info, port, found), found, {})
        cands, warnings, by_proxy = got
        mine = by_proxy.get(kube_proxy)
        if mine is None:
            take = endpoint_conditions((c for _, c in cands), bool(info.service and info.service.publish_not_ready),
                                       kube_proxy)
            extra = [] if "ready" in take else [Diagnostic(
                "warning", f"Service {info.short}: no pod is ready; kube-proxy sends to its serving terminating pods",
                info.source, info.line)]
            mine = by_proxy[kube_proxy] = ([e for e, c in cands if c in take], extra)
        if diags is not None:
            diags.extend(warnings)
            diags.extend(mine[1])
        return list(mine[0])

    def _find_endpoints(self, info: RegisteredService, port: int, diags: list[Diagnostic]) -> list[tuple[EP, str]]:
        """Every endpoint of ``info:port`` with its condition (:meth:`endpoints` keeps those that take traffic)."""
        sp = info.port(port)
        if sp is None:
            return []
        out: list[tuple[EP, str]] = []
        if info.service is not None:
            sel = info.service.selector
            if not sel:
                diags.append(Diagnostic("warning", f"Service {info.short} has no selector: its endpoints are "
                                        "managed by hand and not modelled", info.source, info.line))
                return []
            for pod in self.selected_pods(info.namespace, sel):
                tp = sp.target_port
                if isinstance(tp, str):
                    num = next((c[1] for c in pod.workload.container_ports if c[0] == tp), None)
                    if num is None:
                        diags.append(Diagnostic("warning", f"Service {info.short} targetPort {tp!r}: pod {pod.name}"
                                                " has no container port of that name (not an endpoint)",
                                                info.source, sp.line))
                        continue
                    tp = num
                where = self.places.get((pod.namespace, pod.name))
                out.append((EP(backend=pod.backend(int(tp)), locality=where.locality if where else (),
                               node=where.node if where and where.node else None), pod.condition))
            return out
        se = info.entry
        assert se is not None
        for e in se.endpoints:
            pnum = dict(e.ports).get(sp.name) or (sp.target_port if isinstance(sp.target_port, int) else sp.port)
            name = f"{e.address}:{pnum}"
            out.append((EP(backend=Backend(name=name, address=name, labels=e.labels,
                                           provenance=Provenance(se.meta.source, e.line)),
                           weight=e.weight, locality=Place.parse(e.locality).locality if e.locality else ()), "ready"))
        if not se.endpoints and se.resolution.upper() in ("DNS", "DNS_ROUND_ROBIN", "NONE"):
            name = f"{info.fqdn}:{sp.port}"
            out.append((EP(backend=Backend(name=name, address=name,
                                           provenance=Provenance(se.meta.source, se.meta.line))), "ready"))
        return out

    # ------------------------------------------------------------------ rules

    def _visible(self, export_to: Sequence[str], rule_ns: str, client_ns: str) -> bool:
        if not export_to:
            return True
        return any(e == "*" or (e == "." and rule_ns == client_ns) or e == client_ns for e in export_to)

    request_matches = staticmethod(request_matches)
    port_protocol = staticmethod(port_protocol)

    def virtual_service(self, info: RegisteredService, client_ns: str, diags: list[Diagnostic],
                        within: ClientScope | None = None, port: int | None = None
                        ) -> VirtualService | None:
        """The VirtualService a sidecar in ``client_ns`` applies to ``info`` (``scope.sidecar_virtual_services``)."""
        sc = within or client_scope(self, None, client_ns)
        p = port if port is not None else info.ports[0].port
        found = sidecar_virtual_services(self, sc, info, p)
        vs = first_for_port(found, p, port_protocol(sp) if (sp := info.port(p)) is not None else "auto")
        if len(found) > 1:
            diags.append(Diagnostic("warning", f"{len(found)} VirtualServices for {info.fqdn}: Istio merges them only "
                                    f"for gateways; port {p} is served by the first with rules for it: "
                                    f"{(vs or found[0]).meta.ref}", found[1].meta.source, found[1].meta.line))
        return vs

    def _host_matches(self, h: str, ns: str, info: RegisteredService) -> bool:
        if h == "*":
            return True
        if h.startswith("*."):
            return info.fqdn.endswith(h[1:])
        r = self.resolve_host(h, ns)
        return r is info

    def destination_rule(self, info: RegisteredService, client_ns: str) -> DestinationRule | None:
        """The DestinationRule a proxy in ``client_ns`` applies to ``info`` (``scope.destination_rule``)."""
        return destination_rule(self, info, client_ns)

    # ------------------------------------------------------------------ routes

    def kube_proxy_route(self, info: RegisteredService, port: int, *, name: str = "kube-proxy",
                         diags: list[Diagnostic] | None = None, notes: Sequence[str] = ()) -> Route:
        """kube-proxy's cascade over all endpoints of the Service (per connection; once per service port)."""
        got = self._kube_routes.get((id(info), port))
        if got is not None:
            if diags is not None:
                self.endpoints(info, port, diags, kube_proxy=True)  # its warnings, as the first call gave them
            return got[0].renamed(name, (*notes, *got[1]))
        eps = self.endpoints(info, port, diags, kube_proxy=True)
        sp = info.port(port)
        prov = Provenance(info.source, sp.line if sp else info.line)
        svc_label = f"{info.namespace}/{info.name}:{sp.name if sp and sp.name else port}"
        backs = sorted((e.backend for e in eps), key=lambda b: b.address or b.name)
        if not backs:
            root: Node = Backend(name=f"REJECT no endpoints ({svc_label})", labels=(("outcome", "reject"),),
                                 provenance=prov)
        else:
            root = Cascade.kube_proxy(backs, name=f"kube-proxy KUBE-SVC {svc_label} ({len(backs)} endpoints)",
                                      provenance=prov)
        tail = [f"kube-proxy (iptables mode) picks one of {len(backs)} endpoint(s) per connection, "
                "endpoints sorted as ip:port strings (proxier.go: writeServiceToEndpointRules)"]
        if info.entry is not None:
            tail.append(f"{info.fqdn} is a ServiceEntry: without a sidecar there is no kube-proxy rule; "
                        "the client resolves it by DNS (shown as kube-proxy over its endpoints for comparison)")
        route = Route(root=root, name=name, provenance=prov, notes=(*notes, *tail))
        self._kube_routes[(id(info), port)] = (route, tuple(tail))
        return route

    def _lb_policy(self, dr: DestinationRule | None, subset: str | None, port: int) -> tuple[str, str]:
        if dr is not None:
            if subset:
                s = dr.subset(subset)
                if s is not None and s.lb_policy:
                    return s.lb_policy, f"subset {subset} trafficPolicy of DestinationRule {dr.meta.ref}"
            for p, pol in dr.port_lb_policies:
                if p == port:
                    return pol, f"portLevelSettings of DestinationRule {dr.meta.ref}"
            if dr.lb_policy:
                return dr.lb_policy, f"trafficPolicy of DestinationRule {dr.meta.ref}"
        return ISTIO_DEFAULT_LB, "Istio default (LEAST_REQUEST since 1.14)"

    def _cluster_node(
        self,
        dest: RouteDestination | None,
        info: RegisteredService,
        listener_port: int,
        client_ns: str,
        unit: str,
        vs: VirtualService | None,
        diags: list[Diagnostic],
        notes: list[str],
        layers: list[Layer],
    ) -> Node:
        src = vs.meta.source if vs else info.source
        line = dest.line if dest else info.line
        prov = Provenance(src, line)
        if dest is not None:
            target = self.resolve_host(dest.host, vs.meta.namespace if vs else info.namespace)
            if target is None:
                diags.append(Diagnostic("warning", f"destination host {dest.host!r} matches no Service or "
                                        "ServiceEntry: Envoy has no such cluster (503 NC)", src, line))
                return Backend(name=f"503 NC no cluster ({dest.host})", labels=(("outcome", "503"),), provenance=prov)
            if (miss := cluster_miss(self, target, client_ns)) is not None:
                diags.append(Diagnostic("warning", f"{miss}: the proxy has no cluster for it (503 NC)", src, line))
                return Backend(name=f"503 NC no cluster ({dest.host})", labels=(("outcome", "503"),), provenance=prov)
            subset = dest.subset
            if dest.port is not None:
                cport = dest.port
            elif len(target.ports) == 1:
                cport = target.ports[0].port
            else:
                cport = listener_port
        else:
            target, subset, cport = info, None, listener_port
        cname = f"outbound|{cport}|{subset or ''}|{target.fqdn}"
        if self._scope is not None and (miss := sidecar_cluster_miss(self, self._scope, target, cport, info,
                                                                     vs.meta.namespace if vs else None)):
            diags.append(Diagnostic("warning", f"{miss}: no cluster {cname} (503 NC)", src, line))
            return Backend(name=f"503 NC no cluster ({cname})", labels=(("outcome", "503"),), provenance=prov)
        if target.port(cport) is None:
            diags.append(Diagnostic("warning", f"destination port {cport} is not a port of {target.short} "
                                    f"(ports: {', '.join(str(p.port) for p in target.ports) or 'none'}): 503 NC",
                                    src, line))
            return Backend(name=f"503 NC no cluster ({cname})", labels=(("outcome", "503"),), provenance=prov)
        dr = self.destination_rule(target, client_ns)
        sub_labels: tuple[tuple[str, str], ...] = ()
        if subset:
            s = dr.subset(subset) if dr is not None else None
            if s is None:
                own = self.destination_rule(target, target.namespace) if dr is None else None
                why = (f"is defined by DestinationRule {own.meta.ref}, which is not exported to namespace {client_ns}"
                       if own is not None and own.subset(subset) else "is not defined by "
                       + (f"DestinationRule {dr.meta.ref}" if dr is not None else "any DestinationRule"))
                diags.append(Diagnostic("warning", f"subset {subset!r} of {target.short} {why}: the cluster does not "
                                        "exist (503 NC)", src, line))
                return Backend(name=f"503 NC no cluster ({cname})", labels=(("outcome", "503"),), provenance=prov)
            sub_labels = s.labels
        # the rest depends on the cluster, the rule seen and the caller's place alone: worked out once per key
        td = self.manifests.topology.services.get(f"{target.namespace}/{target.name}")
        if td is not None and td.internal_policy == "Local":  # istiod's NodeLocal: not on this route
            diags.append(Diagnostic("warning", node_local_warning(cname), src, line))
        lpol = cluster_policy(dr, subset, cport, td.traffic_distribution if td else None)
        caller, caller_labels = self._caller or (None, {})
        key: tuple[Any, ...] = (id(target), cport, subset, id(dr), sub_labels, unit, src, line)
        if depends_on_caller(lpol):
            key += (caller, tuple(sorted(caller_labels.items())))
        got = self._clusters.get(key)
        if got is None:
            d0, n0, l0 = len(diags), len(notes), len(layers)
            node = self._cluster_stage(target, cport, cname, subset, sub_labels, dr, lpol, unit, src, line, prov,
                                       diags, notes, layers)
            self._clusters[key] = got = (node, diags[d0:], notes[n0:], layers[l0:], (target, dr))  # ids kept
            return node
        for into, added in zip((diags, notes, layers), got[1:4], strict=True):
            into.extend(added)  # type: ignore[attr-defined]
        return got[0]

    def _cluster_stage(self, target: RegisteredService, cport: int, cname: str, subset: str | None, sub_labels: Any,
                       dr: DestinationRule | None, lpol: LocalityPolicy, unit: str, src: str, line: int,
                       prov: Provenance, diags: list[Diagnostic], notes: list[str], layers: list[Layer]) -> Node:
        """The endpoint stage of cluster ``cname`` (``_cluster_node``'s part that its key decides)."""
        eps_all = self.endpoints(target, cport, diags)
        eps = [e for e in eps_all if labels_subset(sub_labels, dict(e.backend.labels))]
        policy, why = self._lb_policy(dr, subset, cport)
        if not eps:
            what = f"subset {subset!r} (labels {dict(sub_labels)})" if subset else f"{target.short}"
            sel = target.service.selector if target.service else None
            idle = sel and any(labels_subset(sub_labels, dict(p.labels))
                               for p in self.selected_pods(target.namespace, sel))
            diags.append(Diagnostic("warning", f"{what} selects no {'ready ' if idle else ''}pods: cluster {cname} is "
                                    "empty and its share "
                                    "returns 503 no_healthy_upstream", (dr.meta.source if (dr and subset) else src),
                                    (next((s.line for s in dr.subsets if s.name == subset), line) if (dr and subset)
                                     else line)))
        notes.append(f"{cname}: lb_policy {policy} ({why}); {len(eps)} endpoint(s); endpoint LB modelled by its "
                     "long-run share")
        caller, caller_labels = self._caller or (None, {})
        plan = apply_locality(eps, caller, lpol, caller_labels)
        if lpol.zone_aware_ignored:
            diags.append(Diagnostic("warning", f"{cname}: zoneAwareLbSetting is not modelled", src, line))
        if lpol.setting is not None and (lpol.failover or lpol.setting.distribute is not None):
            notes.append(f"{cname}: {describe(lpol, plan, caller)}")
            notes.extend(plan.notes)
            eps = list(plan.endpoints)
        layers.append(Layer("Envoy cluster", cname, f"{policy} over {len(eps)} endpoint(s)"
                            + (f" with labels {dict(sub_labels)}" if sub_labels else "")
                            + "; assumes: the balancer's long-run share, every endpoint healthy", unit,
                            f"{dr.meta.where}" if dr else ""))
        return endpoint_stage(cname, eps, policy=policy, unit=unit, notes=notes, provenance=prov,
                              locality_weighted=plan.locality_weighted)

    def sidecar_route(self, client: WorkloadResource | None, info: RegisteredService, port: int, *,
                      caller: Place | None = None, **kw: Any) -> Route:
        """What the client's istio-proxy does with a call to ``info:port`` (from the manifests).

        ``caller`` is the client's locality (default: its Pod's node, when the input says where it runs);
        the other arguments are those of ``_sidecar_route``.
        """
        where = caller
        if where is None and client is not None:
            where = self.places.get((client.meta.namespace, client.meta.name))
        self._caller = (where, client.labels if client is not None else {})
        try:
            return self._sidecar_route(client, info, port, **kw)
        finally:
            self._caller = self._scope = None

    def _sidecar_route(
        self,
        client: WorkloadResource | None,
        info: RegisteredService,
        port: int,
        *,
        path: str = "/",
        headers: Mapping[str, str] | None = None,
        method: str = "GET",
        name: str = "sidecar",
        diags: list[Diagnostic] | None = None,
        layers: list[Layer] | None = None,
    ) -> Route:
        """What the client's istio-proxy does with a call to ``info:port`` (from the manifests)."""
        diags = diags if diags is not None else []
        layers = layers if layers is not None else []
        notes: list[str] = []
        client_ns = client.meta.namespace if client is not None else info.namespace
        client_labels = client.labels if client is not None else {}
        sp = info.port(port)
        if sp is None:
            raise InvalidArgument(f"{info.short} has no port {port} (ports: "
                                  f"{', '.join(str(p.port) for p in info.ports)})")
        proto = port_protocol(sp)
        if uncaptured(sp) or proto == "udp":  # not redirected, or UDP to Istio: kube-proxy picks
            return self.kube_proxy_route(info, port, name=name, diags=diags,
                                         notes=(uncaptured_note(sp, "the sidecar"),))
        sc = self._scope = client_scope(self, client, client_ns, diags)
        miss = scope_miss(self, sc, info, port)
        if miss is not None:
            return unknown_destination_route(self, sc, info, port, name, miss, layers)
        vs = self.virtual_service(info, client_ns, diags, sc, port)
        authority = request_authority(info, port)
        hdrs = {k.lower(): v for k, v in (headers or {}).items()}
        unit = "request"
        layers.append(Layer("Envoy listener", f"0.0.0.0_{port}", "virtualOutbound 0.0.0.0:15001 (use_original_dst) "
                            f"hands the connection to 0.0.0.0_{port}" + ("; assumes: HTTP (the port declares no "
                            "protocol, Istio sniffs it)" if proto == "auto" else ""), "connection"))
        if proto == "tcp" or (proto == "auto" and vs is not None and not vs.http and vs.tcp):
            unit = "connection"  # a sniffed port whose rules are all tcp ones: TCP assumed
        gw = sidecar_split(self, info, port, client_ns, vs, tcp=proto == "tcp", path=path, headers=hdrs,
                           method=method, diags=diags)
        root: Node
        if gw is not None:  # a Gateway API route attached to the Service serves this client (GAMMA)
            layers.extend(Layer(*row) for row in split_layers(gw))
            notes.extend(gw.notes)
            root = split_node(gw, lambda d: self._cluster_node(d, info, port, client_ns, gw.unit, gw.route, diags,
                                                               notes, layers))
            vs = gw.route or gw.routes[0]  # provenance of the Route below
        elif vs is None or (unit == "request" and not vs.http):  # tcp rules only, on an HTTP port: no routes
            why = "no VirtualService" if vs is None else f"VirtualService {vs.meta.ref} has no http rules"
            layers.append(Layer("Envoy route", f"route {port}", f"{why}: default route to outbound|{port}||"
                                f"{info.fqdn}", unit))
            notes.append(f"{why} for {info.fqdn}: Istio's default route (one cluster, all endpoints)")
            root = self._cluster_node(None, info, port, client_ns, unit, None, diags, notes, layers)
        elif unit == "connection":
            rule = None
            for r in vs.tcp:
                if (not r.ports or port in r.ports) and labels_subset(r.source_labels, client_labels):
                    rule = r
                    break
            if rule is None:
                layers.append(Layer("Envoy tcp_proxy", f"outbound|{port}||{info.fqdn}",
                                    f"VirtualService {vs.meta.ref} has no tcp route for port {port}", unit))
                root = self._cluster_node(None, info, port, client_ns, unit, None, diags, notes, layers)
            else:
                root = self._split(vs, rule.destinations, info, port, client_ns, unit, diags, notes, layers,
                                   f"VirtualService {vs.meta.ref} tcp[{rule.index}]", rule.line)
        else:
            if proto == "auto":
                notes.append(f"port {sp.name or port} declares no protocol: Istio sniffs it; HTTP assumed")
            rule = None
            for r in vs.http:
                if not r.matches or any(request_matches(m, path, hdrs, method, authority, port, client_labels,
                                                         client_ns, notes) for m in r.matches):
                    rule = r
                    break
            if rule is None:
                diags.append(Diagnostic("warning", f"no http route of VirtualService {vs.meta.ref} matches "
                                        f"{method} {path}: 404 NR", vs.meta.source, vs.meta.line))
                root = Backend(name="404 NR no route", labels=(("outcome", "404"),),
                               provenance=Provenance(vs.meta.source, vs.meta.line))
            elif rule.terminal is not None or not rule.destinations:
                root = Backend(name=f"{rule.terminal or 'no destination'} ({vs.meta.name} http[{rule.index}])",
                               labels=(("outcome", rule.terminal or "none"),),
                               provenance=Provenance(vs.meta.source, rule.line))
            else:
                if rule.extras:
                    notes.append(f"http[{rule.index}] of {vs.meta.ref} has {', '.join(rule.extras)}: not modelled "
                                 "(mirrors and retries change what upstreams see)")
                label = f"VirtualService {vs.meta.ref} http[{rule.index}]" + (f" {rule.name!r}" if rule.name else "")
                at = len(layers)
                root = with_fault_abort(self._split(vs, rule.destinations, info, port, client_ns, unit, diags, notes,
                                                    layers, label, rule.line), rule.abort, label,
                                        f"{vs.meta.source}:{rule.line}", layers, at)
        return Route(root=root, name=name, provenance=Provenance(vs.meta.source, vs.meta.line) if vs else None,
                     notes=tuple(dict.fromkeys(notes)))

    def _split(self, vs: VirtualService, dests: Sequence[RouteDestination], info: RegisteredService,
               port: int, client_ns: str, unit: str, diags: list[Diagnostic], notes: list[str],
               layers: list[Layer], label: str, line: int) -> Node:
        src = vs.meta.source
        if len(dests) == 1:
            d = dests[0]
            layers.append(Layer("Envoy route", label, "one destination: plain cluster (its weight is ignored)", unit,
                                f"{src}:{line}"))
            return self._cluster_node(d, info, port, client_ns, unit, vs, diags, notes, layers)
        kept = []
        for d in dests:
            if not d.weight:
                continue
            same = next((k for k in kept if (k.host, k.subset, k.port) == (d.host, d.subset, d.port)), None)
            if same is None:
                kept.append(d)
            else:  # the same cluster twice in weighted_clusters: its share is the sum
                from dataclasses import replace

                kept[kept.index(same)] = replace(same, weight=(same.weight or 0) + d.weight)
                notes.append(f"{label}: destination {d.subset or d.host} listed twice; weights added")
        total = sum(d.weight or 0 for d in dests)
        if total == 0:
            diags.append(Diagnostic("warning", f"{label}: {len(dests)} destinations with total weight 0: Istio "
                                    "validation rejects this VirtualService ('total destination weight = 0'); "
                                    "default route used", src, line))
            return self._cluster_node(None, info, port, client_ns, unit, None, diags, notes, layers)
        dropped = [d for d in dests if not d.weight]
        if dropped:
            notes.append(f"{label}: {len(dropped)} destination(s) with weight 0 (or none) dropped, as Istio does")
        if total != 100:
            split = ", ".join(f"{d.subset or d.host}={Fraction(d.weight, total)} ({100 * d.weight / total:.4g}%)"
                              for d in kept)
            diags.append(Diagnostic("warning", f"{label}: weights sum to {total}, not 100; Istio (>= 1.15) and Envoy "
                                    f"treat them as relative: {split}", src, line))
        kids = distinct_leaves([self._cluster_node(d, info, port, client_ns, unit, vs, diags, notes, layers)
                                for d in kept], [d.subset or d.host for d in kept])
        layers.insert(
            len(layers) - len(kept),
            Layer("Envoy route", label, "weighted clusters " + ", ".join(
                f"{d.subset or d.host}={d.weight}" for d in kept) + (" (per request)" if unit == "request"
                                                                      else " (per connection)"), unit,
                  f"{src}:{line}"),
        )
        return Weighted(children=tuple(kids), weights=tuple(int(d.weight or 0) for d in kept), unit=unit,
                        name=f"{label} weighted clusters", provenance=Provenance(src, line))

    # ------------------------------------------------------------------ paths

    def routed_services(self) -> list[tuple[RegisteredService, int]]:
        """(service, port) pairs a sidecar-facing VirtualService routes (all ports of the host), then those
        Gateway API routes attach to or send to (:func:`meshstat.mesh.gateway_api.gateway_routed_services`)."""
        out: list[tuple[RegisteredService, int]] = []
        seen: set[tuple[int, int]] = set()
        for vs in self.manifests.virtual_services:
            if not vs.applies_to_sidecars:
                continue
            matched = False
            for h in vs.hosts:
                if h == "*":
                    continue
                if h.startswith("*."):
                    infos = [i for i in self.registry.values() if self._host_matches(h, vs.meta.namespace, i)]
                else:  # one look-up: the host resolves to at most one entry
                    one = self.resolve_host(h, vs.meta.namespace)
                    infos = [one] if one is not None else []
                for info in infos:
                    matched = True
                    for p in info.ports:
                        if (id(info), p.port) not in seen:
                            seen.add((id(info), p.port))
                            out.append((info, p.port))
            if not matched:
                self.diagnostics.append(Diagnostic(
                    "warning", f"VirtualService {vs.meta.ref}: host(s) {', '.join(vs.hosts)} match no Service or "
                    "ServiceEntry in the manifests", vs.meta.source, vs.meta.line))
        return out + [p for p in gateway_routed_services(self) if p not in out]

    def client_paths(self, info: RegisteredService, port: int, *, client: WorkloadResource | None = None,
                     path: str = "/", headers: Mapping[str, str] | None = None, method: str = "GET",
                     envoy: envoy_parser.EnvoyConfig | None = None,
                     diags: list[Diagnostic] | None = None) -> list[ClientPath]:
        """Every way a call to ``info:port`` can go: kube-proxy, sidecar, the sidecar's own, a dump, ambient,
        ingress.

        Ambient paths (ztunnel, or ztunnel + waypoint), sidecar clients with different scopes and
        headless Services come from :func:`meshstat.mesh.ambient.extend_paths`; with no ``client``,
        the paths of clients outside the mesh through an ingress gateway from
        :func:`meshstat.mesh.ingress.ingress_paths`.
        """
        diags = diags if diags is not None else []
        clients = service_clients(self, info, client)  # shared runs of names: a cluster has thousands
        for w, why in clients.unreached:
            diags.append(Diagnostic("warning", f"{w.meta.kind} {w.meta.ref} never reaches Envoy although "
                                    f"namespace {w.meta.namespace} is labelled for injection: {why}",
                                    w.meta.source, w.meta.line))
        kp = self.kube_proxy_route(info, port, name="no sidecar (kube-proxy)", diags=diags)
        l4 = uncaptured(sp) if (sp := info.port(port)) is not None else None
        layers_sc: list[Layer] = []
        sc = self.sidecar_route(clients.first_injected, info, port, path=path, headers=headers, method=method,
                                name="sidecar pod (kube-proxy)" if l4 else "sidecar (Envoy)", diags=diags,
                                layers=layers_sc)
        own = self.kube_proxy_route(info, port, name="sidecar's own (UID 1337, kube-proxy)", diags=None,
                                    notes=("istio-proxy runs as UID 1337: ISTIO_OUTPUT returns its connections "
                                           "(-m owner --uid-owner 1337 -j RETURN), so they are not captured",))
        paths = [
            ClientPath("kube-proxy", kp.name, kp, clients.plain,
                       self._kube_layers(info, port, "app container, no sidecar")),
            ClientPath("sidecar", sc.name, sc, clients.injected,
                       self._uncaptured_layers(info, port, "istio-init / istio-cni capture rules")
                       if l4 else self._capture_layers(info, port) + layers_sc + [
                           Layer("network", "pod IP", "Envoy connects to the chosen pod IP:targetPort directly; "
                                 "kube-proxy's ClusterIP DNAT is not involved", "connection")]),
            ClientPath("uid-1337", own.name, own, clients.proxies,
                       [Layer("iptables (pod netns)", "ISTIO_OUTPUT", "owner UID 1337 -> RETURN: not redirected",
                              "connection")] + self._kube_layers(info, port, "istio-proxy (UID 1337)")[1:]),
        ]
        if envoy is not None:
            ip = info.service.cluster_ip if info.service is not None else None
            host = info.fqdn
            route, res = envoy_dump_route(envoy, host, port, path=path, headers=headers or {},
                                          address=ip if ip and ip != "None" else None,
                                          namer=self.envoy_namer(envoy), name="config dump (Envoy)")
            lay = [Layer(s.layer, s.choice, s.detail, "", s.where) for s in res.steps]
            paths.append(ClientPath("envoy-dump", route.name, route,
                                    [envoy.node_id or "(config dump)"], lay))
            diags.extend(Diagnostic("warning", f"{route.name}: {w}") for w in res.warnings)
        paths = extend_paths(self, info, port, paths, clients=clients, client=client, diags=diags,
                             request=Request.of(path, headers, method))
        diags.extend(failure_warnings(paths, f"{info.short}:{port}"))
        if client is None:  # clients outside the mesh, through an ingress gateway (it warns of its failures)
            paths += ingress_paths(self, info, port, path=path, headers=headers, method=method, diags=diags)
        return paths

    def envoy_namer(self, envoy_cfg: envoy_parser.EnvoyConfig | None = None
                    ) -> Callable[[envoy_parser.Endpoint, str], Backend]:
        """Name Envoy endpoints after the manifests' pods.

        By IP; else by the endpoint's Istio workload metadata when that workload has one pod;
        else, for a subset cluster with one endpoint whose subset selects one pod, that pod.
        Otherwise ``workload@ip:port`` or ``ip:port``, labelled with the subset's labels. The pod
        indexes are built once per mesh (``compare -f --envoy`` asks once per Service).
        """
        if self._pod_names is None:
            by_workload: dict[tuple[str, str], list[Pod]] = {}
            for p in self.pods:
                by_workload.setdefault((p.namespace, self.owners.istio_workload(p.workload)), []).append(p)
            self._pod_names = ({p.ip: p for p in self.pods}, {p.name: p for p in self.pods}, by_workload)
        by_ip, by_name, by_workload = self._pod_names

        def namer(e: envoy_parser.Endpoint, cluster: str) -> Backend:
            pod = by_ip.get(e.address)
            if pod is None and e.workload and e.namespace:
                same = by_workload.get((e.namespace, e.workload), [])
                if len(same) == 1:  # the dump's Istio workload metadata names a one-replica workload
                    pod = same[0]
            labels = e.labels
            parts = cluster.split("|")
            if pod is None and len(parts) == 4 and parts[0] == "outbound" and ascii_digits(parts[1]):
                # Istio cluster outbound|port|subset|fqdn: its endpoints carry the subset's labels
                info = self.registry.get(parts[3])
                if info is not None:
                    sub: tuple[tuple[str, str], ...] = ()
                    if parts[2]:
                        drs = [d for d in host_rules(self).destination_rules(info)  # an index, not a scan
                               if self.resolve_host(d.host, d.meta.namespace) is info and d.subset(parts[2])]
                        sub = drs[0].subset(parts[2]).labels if drs else ()  # type: ignore[union-attr]
                        labels = labels or sub
                    cands = [x for x in self.endpoints(info, int(parts[1]))
                             if labels_subset(sub, dict(x.backend.labels))]
                    n_in_dump = len(envoy_cfg.endpoints_of(cluster)[0]) if envoy_cfg is not None else 0
                    if len(cands) == 1 and n_in_dump == 1 and parts[2]:
                        pod = by_name.get(cands[0].backend.name)
            if pod is not None:
                return Backend(name=pod.name, address=e.key, labels=pod.labels)
            name = f"{e.workload}@{e.key}" if e.workload else e.key
            health = () if e.health == "HEALTHY" else (("health", e.raw_health),)
            return Backend(name=name, address=e.key, labels=labels + health)

        return namer

    def _capture_layers(self, info: RegisteredService, port: int) -> list[Layer]:
        return [
            Layer("client", "app container", f"connect() to {info.short}:{port} "
                  f"({'ClusterIP ' + info.service.cluster_ip if info.service and info.service.cluster_ip else 'ClusterIP'})",
                  "connection"),
            Layer("iptables (pod netns)", "nat OUTPUT -> ISTIO_OUTPUT -> ISTIO_REDIRECT",
                  "TCP from UID != 1337 to a non-loopback address: REDIRECT --to-ports 15001 (istio-init / "
                  "istio-cni capture rules; traceable with meshstat.netfilter on "
                  "tests/data/iptables/istio-cni-sidecar-basic.iptables-save)", "connection"),
        ]

    def _uncaptured_layers(self, info: RegisteredService, port: int, rules: str) -> list[Layer]:
        """The layers of a port no proxy captures (:func:`~meshstat.mesh.registry.uncaptured`): kube-proxy's."""
        l4 = uncaptured(sp) if (sp := info.port(port)) is not None else None
        return [Layer("client", "app container", f"sends {l4} to {info.short}:{port}", "connection"),
                Layer("capture (pod netns)", rules, f"{l4} is not redirected (the rules match TCP): no proxy sees it",
                      "connection")] + self._kube_layers(info, port, "app container")[1:]

    def _kube_layers(self, info: RegisteredService, port: int, who: str) -> list[Layer]:
        n = len(self.endpoints(info, port, kube_proxy=True))
        return [
            Layer("client", who, f"connect() to {info.short}:{port}", "connection"),
            Layer("iptables (node)", "KUBE-SERVICES -> KUBE-SVC-*", f"statistic cascade over {n} endpoint(s), "
                  "DNAT to the chosen pod (once per connection); assumes: kube-proxy in iptables mode", "connection",
                  info.source + f":{info.line}"),
        ]

