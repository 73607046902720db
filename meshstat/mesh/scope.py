"""Who a rule applies to: exportTo, VirtualService ``gateways``, Sidecar egress and the outbound policy.

Istio decides, per client proxy, which VirtualService and DestinationRule it sees for a host, and
whether it knows the host at all. This module follows istiod:

* **VirtualService visibility** (``pilot/pkg/model/push_context.go``: ``initVirtualServices``,
  ``VirtualServicesForGateway``): a VirtualService is indexed under each of its ``gateways``
  (none means ``mesh``); sidecars and waypoints read the ``mesh`` entries only, so one whose
  ``gateways`` lack ``mesh`` never applies to them, while ``[mesh, my-gateway]`` does.
  ``exportTo`` (default MeshConfig ``defaultVirtualServiceExportTo``, ``*``): ``*`` public,
  ``~`` nobody, ``.`` or the own namespace private, other names those namespaces. A proxy
  sees its private ones first, then those exported to its namespace by name, then public ones.
* **DestinationRule choice** (``push_context.go``: ``destinationRule``, ``setDestinationRules``,
  ``getExportedDestinationRuleFromNamespace``): the rules of the client's own namespace
  (exportTo empty, ``*``, ``.`` or naming it), then those the service's namespace exports to
  the client, then those the root namespace (``istio-system``) exports; in each, the most
  specific host wins (exact before the longest wildcard) and rules for the same host merge
  (subsets added in order, the first traffic policy kept: ``mergeDestinationRule``). A rule
  in a third namespace never applies.
* **Sidecar resource** (``pilot/pkg/model/sidecar.go``: ``doGetSidecarScope`` in
  ``push_context.go``, ``convertIstioListenerToWrapper``, ``selectServices``,
  ``hostClassification``; ``virtualservice.go``: ``SelectVirtualServices``): a workload gets
  the first Sidecar of its namespace whose ``workloadSelector`` its labels satisfy, else its
  namespace's Sidecar without selector, else the root namespace's. Its egress ``hosts``
  ``ns/dnsName`` (``.`` the Sidecar's namespace, ``*`` any, a ``~`` prefix excludes, so ``~/*``
  imports nothing) import a service by *its* namespace and a VirtualService by the
  VirtualService's namespace. Hosts are compared as FQDNs: ``default/reviews`` imports nothing.
* **Unknown destinations** (``pilot/pkg/networking/core/httproute.go``:
  ``buildCatchAllVirtualHost``): a host the proxy does not know follows the outbound traffic
  policy (the Sidecar's, else MeshConfig's ``outboundTrafficPolicy``): ``ALLOW_ANY`` ->
  ``PassthroughCluster`` (ORIGINAL_DST: the connection keeps the ClusterIP, so kube-proxy's
  per-connection split over all pods applies); ``REGISTRY_ONLY`` -> the ``block_all`` virtual
  host (HTTP 502) when the port has an HTTP listener for other services, else
  ``BlackHoleCluster`` (connection closed).
* **Headless Services** (``pilot/pkg/serviceregistry/kube/conversion.go``: ``ConvertService``,
  ``clusterIP: None`` -> ``Passthrough`` resolution; ``networking/core/cluster.go``:
  ``convertResolution`` -> ``ORIGINAL_DST`` for sidecars): clients dial the pod addresses DNS
  gave them, every cluster forwards to that address, so no weight applies.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Any

from meshstat.mesh.layers import Layer
from meshstat.mesh.registry import RegisteredService
from meshstat.model import Backend, Provenance, Route, Weighted
from meshstat.parsers.istio_scope import EgressListener, MeshConfig, ScopeObjects, SidecarResource
from meshstat.parsers.k8s import DestinationRule, Diagnostic, VirtualService, WorkloadResource

__all__ = [
    "ClientScope",
    "HostRules",
    "client_scope",
    "destination_rule",
    "exported_to",
    "headless_route",
    "host_rules",
    "imports_host",
    "scope_shape",
    "several_wide_sidecars",
    "is_headless",
    "mesh_virtual_services",
    "scope_miss",
    "select_sidecar",
    "service_visible",
    "service_visible_everywhere",
    "first_for_port",
    "sidecar_virtual_services",
    "tcp_at",
    "unknown_destination_route",
]

SERVICE_EXPORT_ANNOTATION = "networking.istio.io/exportTo"


# --------------------------------------------------------------------------- hosts and exportTo


def _subset_of(h: str, pattern: str) -> bool:
    """``host.Name.SubsetOf``: ``h`` is within ``pattern`` (``*``, ``*.suffix`` or exact)."""
    if pattern == "*":
        return True
    if pattern.startswith("*"):
        suf = pattern[1:]
        return h.endswith(suf) and (not h.startswith("*") or h[1:].endswith(suf))
    return h == pattern


def _matches(a: str, b: str) -> bool:
    """``host.Name.Matches``: either is within the other."""
    return _subset_of(a, b) or _subset_of(b, a)


def exported_to(export_to: Sequence[str], default: Sequence[str], rule_ns: str, client_ns: str) -> bool:
    """Whether a rule of ``rule_ns`` with ``export_to`` (empty: ``default``) is visible in ``client_ns``."""
    ex = {rule_ns if e == "." else e for e in (export_to or default)}
    if "*" in ex:
        return True
    if "~" in ex:
        return False
    return client_ns in ex


def services_restricted(mesh: Any) -> bool:
    """Whether any Service is exported to fewer than all namespaces (its annotation, or MeshConfig
    ``defaultServiceExportTo``); found once per mesh. When none is, every Service is visible everywhere."""
    got = mesh.__dict__.get("_services_restricted")
    if got is None:
        got = "*" not in mesh.scope.mesh_config.service_export_to or any(
            SERVICE_EXPORT_ANNOTATION in dict(s.meta.annotations) for s in mesh.manifests.services) or any(
            e.export_to and "*" not in e.export_to for e in mesh.manifests.service_entries)
        mesh.__dict__["_services_restricted"] = got
    return got  # type: ignore[no-any-return]


def service_export(info: RegisteredService) -> tuple[tuple[str, ...], str] | None:
    """(the namespaces a Service or ServiceEntry is exported to, empty for MeshConfig's default; its namespace):
    a Service's ``networking.istio.io/exportTo`` annotation, a ServiceEntry's ``spec.exportTo``."""
    if info.service is not None:
        ann = dict(info.service.meta.annotations).get(SERVICE_EXPORT_ANNOTATION)
        return (tuple(x.strip() for x in ann.split(",") if x.strip()) if ann else ()), info.namespace
    if info.entry is not None:
        return info.entry.export_to, info.entry.meta.namespace
    return None


def service_visible(mesh: Any, info: RegisteredService, client_ns: str) -> bool:
    """A Service's ``networking.istio.io/exportTo`` annotation, or a ServiceEntry's ``exportTo`` (default MeshConfig
    ``defaultServiceExportTo``)."""
    if not services_restricted(mesh) or (export := service_export(info)) is None:
        return True
    return exported_to(export[0], mesh.scope.mesh_config.service_export_to, export[1], client_ns)


def service_visible_everywhere(mesh: Any, info: RegisteredService) -> bool:
    """Whether every namespace sees ``info`` (:func:`service_visible` for all of them: exported to ``*``)."""
    if not services_restricted(mesh) or (export := service_export(info)) is None:
        return True
    return "*" in (export[0] or mesh.scope.mesh_config.service_export_to)


def _fqdn(mesh: Any, h: str, ns: str) -> str:
    return h if "." in h or h == "*" or h.startswith("*") else f"{h}.{ns}.svc.{mesh.domain}"


# --------------------------------------------------------------------------- VirtualServices


class HostRules:
    """The VirtualServices and DestinationRules that can name a host, found by look-up instead of a scan.

    A rule names a registry entry through one of its hosts: a host that :meth:`Mesh.resolve_host`
    resolves to that entry, or a wildcard (``*``, ``*.suffix`` for VirtualServices; a host starting
    with ``*`` for DestinationRules). :meth:`virtual_services` and :meth:`destination_rules` give
    those of one entry, wildcards included, in file order; every decision on them stays with the
    functions below, which would reject the others anyway. Built once per mesh (:func:`host_rules`).
    """

    def __init__(self, mesh: Any) -> None:
        m = mesh.manifests
        self.key = _rules_key(mesh)
        self._vss, self._drs = m.virtual_services, m.destination_rules
        self._vs: dict[int, list[int]] = {}
        self._vs_wild: list[int] = []
        for i, vs in enumerate(self._vss):
            wild = False
            for h in vs.hosts:
                if h == "*" or h.startswith("*."):
                    wild = True
                else:
                    target = mesh.resolve_host(h, vs.meta.namespace)
                    if target is not None:
                        self._vs.setdefault(id(target), []).append(i)
            if wild:
                self._vs_wild.append(i)
        self._dr: dict[str, list[int]] = {}
        self._dr_wild: list[int] = []
        for i, dr in enumerate(self._drs):
            h = _fqdn(mesh, dr.host, dr.meta.namespace)
            (self._dr_wild if h.startswith("*") else self._dr.setdefault(h, [])).append(i)

    def virtual_services(self, info: RegisteredService) -> list[VirtualService]:
        """The VirtualServices with a host that resolves to ``info`` or is a wildcard (file order)."""
        idx = self._vs.get(id(info), [])
        if self._vs_wild:
            idx = sorted({*idx, *self._vs_wild})
        return [self._vss[i] for i in idx]

    def destination_rules(self, info: RegisteredService) -> list[DestinationRule]:
        """The DestinationRules whose host is ``info``'s FQDN or a wildcard (file order)."""
        idx = self._dr.get(info.fqdn, [])
        if self._dr_wild:
            idx = sorted({*idx, *self._dr_wild})
        return [self._drs[i] for i in idx]


def _rules_key(mesh: Any) -> tuple[int, int, int, int]:
    m = mesh.manifests
    return id(m.virtual_services), len(m.virtual_services), id(m.destination_rules), len(m.destination_rules)


def host_rules(mesh: Any) -> HostRules:
    """The :class:`HostRules` of ``mesh`` (built on first use; again if its rule lists were replaced or grew)."""
    got = mesh.__dict__.get("_host_rules")
    if got is None or got.key != _rules_key(mesh):
        got = mesh.__dict__["_host_rules"] = HostRules(mesh)
    return got


def mesh_virtual_services(mesh: Any, namespace: str, among: Sequence[VirtualService] | None = None
                          ) -> list[VirtualService]:
    """VirtualServices a sidecar or waypoint of ``namespace`` reads (gateway ``mesh``), in Istio's order.

    ``VirtualServicesForGateway(namespace, "mesh")``: private ones of ``namespace``, then those
    exported to it by name, then public ones; file order (creation order) within each. ``among``:
    only these (in file order; default every VirtualService of the mesh).
    """
    default = mesh.scope.mesh_config.vs_export_to
    private, exported, public = [], [], []
    for vs in mesh.manifests.virtual_services if among is None else among:
        if not vs.applies_to_sidecars:
            continue
        given = vs.export_to or default
        if "*" in given:  # ``.`` names the VirtualService's namespace, never ``*``
            public.append(vs)
            continue
        ex = {vs.meta.namespace if e == "." else e for e in given}
        if "*" in ex:
            public.append(vs)
        elif "~" in ex:
            continue
        elif namespace in ex:
            (private if vs.meta.namespace == namespace else exported).append(vs)
    return private + exported + public


# --------------------------------------------------------------------------- the Sidecar resource


#: The egress of a client without a Sidecar resource (or with one without egress): every host of every
#: namespace (one object: an audit asks for it per Service, and :func:`_by_namespace` keeps its table by it).
IMPORT_ALL = EgressListener(None, ("*/*",), 0)


@dataclass(frozen=True)
class ClientScope:
    """What a client proxy knows: its namespace, its Sidecar resource, its outbound policy."""

    namespace: str
    sidecar: SidecarResource | None
    outbound_policy: str
    policy_where: str

    def listener(self, port: int) -> EgressListener | None:
        """The egress listener for ``port``: the one on that port, else one without port.

        ``None`` when the Sidecar has egress listeners but none for ``port``; a client without a
        Sidecar (or one without egress) imports ``*/*``.
        """
        if self.sidecar is None or not self.sidecar.egress:
            return IMPORT_ALL
        for li in self.sidecar.egress:
            if li.port == port:
                return li
        return next((li for li in self.sidecar.egress if li.port is None), None)

    @property
    def label(self) -> str:
        return f"Sidecar {self.sidecar.meta.ref}" if self.sidecar else "no Sidecar resource"


def scope_shape(scope: ClientScope) -> tuple[Any, ...]:
    """What of a client's scope decides what it sees of a Service outside its own namespace: the egress listeners
    (port, hosts with ``./`` as written) and the outbound policy; whether it has a Sidecar, when that has no egress.

    Two namespaces whose clients have scopes of one shape see alike every Service that no rule, export or
    Sidecar-free ``./`` singles them out for (:func:`meshstat.mesh.clients.rule_namespaces` with ``sidecars=False``):
    ``./`` then imports nothing of the Service's, its rules' or its destinations' namespaces, which that set holds.
    """
    sc = scope.sidecar
    if sc is None or not sc.egress:
        return (sc is not None, scope.outbound_policy)
    return (tuple((li.port, tuple(li.hosts)) for li in sc.egress), scope.outbound_policy)


@lru_cache(maxsize=4096)  # every client scope asks for every Service: a listener's table is worked out once
def _by_namespace(li: EgressListener, config_ns: str) -> dict[str, tuple[tuple[str, ...], tuple[str, ...]]]:
    """Namespace -> (host names imported, host names excluded with ``~``) of an egress listener (``.`` is
    ``config_ns``)."""
    out: dict[str, tuple[list[str], list[str]]] = {}
    for h in li.hosts:
        ns, _, name = h.partition("/")
        excluded = ns.startswith("~")
        if excluded:
            ns = ns[1:] or "*"
        if ns == ".":
            ns = config_ns
        hosts, excl = out.setdefault(ns, ([], []))
        (excl if excluded else hosts).append(name)
    return {ns: (tuple(hosts), tuple(excl)) for ns, (hosts, excl) in out.items()}


def imports_host(li: EgressListener | None, config_ns: str, host: str, host_ns: str, *,
                 virtual_service: bool = False) -> bool:
    """Whether an egress listener imports ``host`` of namespace ``host_ns``.

    Services are imported by their own namespace (``selectServices``: ``SubsetOf``);
    VirtualService hosts by the VirtualService's namespace (``SelectVirtualServices``: exact or
    the bidirectional ``Matches``). ``~`` entries exclude.
    """
    if li is None:
        return False
    if li is IMPORT_ALL:  # ``*/*``: every host of every namespace
        return True
    byns = _by_namespace(li, config_ns)
    for ns in (host_ns, "*"):
        if ns in byns and any(_subset_of(host, e) for e in byns[ns][1]):
            return False
    for ns in (host_ns, "*"):
        if ns in byns:
            for e in byns[ns][0]:
                if (_matches(host, e) if virtual_service else _subset_of(host, e)):
                    return True
    return False


def several_wide_sidecars(wide: list[SidecarResource]) -> Diagnostic:
    """The warning for a namespace with several Sidecars without workloadSelector (``wide``, in file order)."""
    ns = wide[0].meta.namespace
    return Diagnostic("warning", f"{len(wide)} Sidecars without workloadSelector in namespace {ns}: "
                      f"Istio uses the oldest ({wide[0].meta.ref}); taken as the first in file order",
                      wide[1].meta.source, wide[1].meta.line)


def select_sidecar(objs: ScopeObjects, labels: dict[str, str], namespace: str, root_ns: str,
                    diags: list[Diagnostic] | None) -> SidecarResource | None:
    """The Sidecar resource that applies to a workload of ``namespace`` with ``labels``.

    Istio's order (``push_context.go``: ``doGetSidecarScope``, as the module docstring
    says): the first Sidecar of the namespace whose workloadSelector the labels satisfy,
    else the namespace's Sidecar without a selector, else the root namespace's; ``None``
    when there is none. Several selector-less Sidecars in one namespace add a warning to
    ``diags``.
    """
    if not objs.sidecars:  # the common case: no Sidecar resource at all (an audit asks per workload)
        return None
    mine = objs.sidecars_in(namespace)
    for s in mine:
        if s.selector is not None and all(labels.get(k) == v for k, v in s.selector):
            return s
    wide = [s for s in mine if s.selector is None]
    if len(wide) > 1 and diags is not None:
        diags.append(several_wide_sidecars(wide))
    if wide:
        return wide[0]
    return next((s for s in objs.sidecars_in(root_ns) if s.selector is None), None)


def client_scope(mesh: Any, client: WorkloadResource | None, namespace: str,
                 diags: list[Diagnostic] | None = None) -> ClientScope:
    """The scope of a sidecar client (``client`` ``None``: a pod of ``namespace`` with no labels).

    Without ``diags`` the answer is kept per (client, namespace) on the mesh: it depends on the
    Sidecar resources and MeshConfig only.
    """
    if diags is None:
        memo = mesh.__dict__.setdefault("_client_scopes", {})
        key = (id(client), namespace)
        got = memo.get(key)
        if got is None:
            got = memo[key] = client_scope(mesh, client, namespace, [])
        return got
    objs: ScopeObjects = mesh.scope
    mc: MeshConfig = objs.mesh_config
    labels = client.labels if client is not None else {}
    sc = select_sidecar(objs, labels, namespace, mc.root_namespace, diags)
    if sc is not None and sc.outbound_policy:
        return ClientScope(namespace, sc, sc.outbound_policy, f"Sidecar {sc.meta.ref} ({sc.meta.where})")
    where = f"MeshConfig ({mc.source}:{mc.line})" if mc.source else "MeshConfig default"
    return ClientScope(namespace, sc, mc.outbound_policy, where)


def sidecar_virtual_services(mesh: Any, scope: ClientScope, info: RegisteredService, port: int) -> list[VirtualService]:
    """VirtualServices for ``info`` a sidecar with ``scope`` applies, first one first.

    ``mesh_virtual_services`` filtered by the egress listener of ``port``, then by host.
    """
    li = scope.listener(port)
    out = []
    for vs in mesh_virtual_services(mesh, scope.namespace, host_rules(mesh).virtual_services(info)):
        if li is not IMPORT_ALL and not any(
                imports_host(li, scope.namespace, _fqdn(mesh, h, vs.meta.namespace), vs.meta.namespace,
                             virtual_service=True) for h in vs.hosts):
            continue
        if any(mesh._host_matches(h, vs.meta.namespace, info) for h in vs.hosts):
            out.append(vs)
    return out


def first_for_port(found: Sequence[VirtualService], port: int, proto: str) -> VirtualService | None:
    """Of the VirtualServices for a host (first one first), the one a sidecar serves ``port`` from.

    HTTP (and sniffed) ports: the first that gives a route for the port, since a VirtualService whose
    http rules all match other ports, or that has none, gives no route and is skipped (istio
    ``pilot/pkg/networking/core/httproute.go``, ``buildSidecarVirtualHostsForVirtualService``; the
    first virtual host of a domain wins). TCP ports, and sniffed ones that no http rule serves: the
    first with a tcp rule for the port (the tcp routes of every VirtualService are tried in order).
    Else the first, which then gives the default route.
    """
    got = next((v for v in found if (tcp_at(v, port) if proto == "tcp" else _http_at(v, port))), None)
    if got is None and proto == "auto":
        got = next((v for v in found if tcp_at(v, port)), None)
    return got if got is not None else (found[0] if found else None)


def _http_at(v: VirtualService, port: int) -> bool:
    """Whether an http rule of ``v`` routes ``port``: one without matches, or with a match on no port or on it."""
    for r in v.http:
        if not r.matches:
            return True
        for m in r.matches:
            if m.port is None or m.port == port:
                return True
    return False


def tcp_at(v: VirtualService, port: int) -> bool:
    """Whether a tcp rule of ``v`` routes ``port`` (one without ports, or with it)."""
    return any(not r.ports or port in r.ports for r in v.tcp)


def _not_exported(info: RegisteredService, ns: str) -> str:
    if info.service is None and info.entry is not None:
        return f"ServiceEntry {info.entry.meta.ref} ({info.fqdn}) is not exported to namespace {ns} (spec.exportTo)"
    return f"Service {info.short} is not exported to namespace {ns} ({SERVICE_EXPORT_ANNOTATION} annotation)"


def cluster_miss(mesh: Any, target: RegisteredService, client_ns: str) -> str | None:
    """Why a proxy of ``client_ns`` has no cluster for ``target``, a route's destination (``None``: it has one).

    A Service or ServiceEntry not exported to the namespace has none there, and a route to it answers 503 NC
    (``cluster_not_found``). A sidecar's Sidecar resource does not take clusters away from a route: istiod adds
    the destinations of every VirtualService the sidecar imports to its services (``pilot/pkg/model/sidecar.go``,
    ``collectImportedServices``: "Infer more possible destinations from virtual services").
    """
    return _not_exported(target, client_ns) if not service_visible(mesh, target, client_ns) else None


def sidecar_cluster_miss(mesh: Any, scope: ClientScope, target: RegisteredService, port: int,
                         routed: RegisteredService, route_ns: str | None) -> str | None:
    """Why a sidecar with ``scope`` has no cluster for ``target:port``, a destination of a route for ``routed``
    written in ``route_ns`` (a VirtualService, or an HTTPRoute istiod turns into one; ``None``: the default
    route), or ``None`` when it has one.

    A sidecar's clusters are those of the services its Sidecar's egress listeners import
    (``pilot/pkg/model/sidecar.go``, ``collectImportedServices``): by their hosts, and the destinations of
    the VirtualServices they import ("Infer more possible destinations from virtual services"). A
    listener with a port takes a service with that port only, and that port only
    (``serviceMatchingListenerPort``), so a destination on another port has no cluster there: 503 NC.
    """
    sc = scope.sidecar
    if sc is None or not sc.egress:
        return None
    for li in sc.egress:
        if li.port is not None and li.port != port:
            continue
        if imports_host(li, scope.namespace, target.fqdn, target.namespace) or (
                route_ns is not None and imports_host(li, scope.namespace, routed.fqdn, route_ns, virtual_service=True)):
            return None
    ports = sorted({li.port for li in sc.egress if li.port is not None})
    return (f"Sidecar {sc.meta.ref} imports {target.fqdn} for port {port} in none of its egress listeners"
            + (f" (listeners on ports {', '.join(map(str, ports))} take their own port only)" if ports else ""))


def scope_miss(mesh: Any, scope: ClientScope, info: RegisteredService, port: int) -> str | None:
    """Why a sidecar with ``scope`` does not know ``info:port`` (``None``: it does)."""
    if not service_visible(mesh, info, scope.namespace):
        return _not_exported(info, scope.namespace)
    li = scope.listener(port)
    if li is None:
        return f"{scope.label} has no egress listener for port {port} (nor one without port)"
    if not imports_host(li, scope.namespace, info.fqdn, info.namespace):
        return (f"{scope.label} egress hosts {', '.join(li.hosts)} do not import {info.namespace}/{info.fqdn}"
                + (f" (line {li.line})" if li.line else ""))
    return None


# --------------------------------------------------------------------------- DestinationRules


def _most_specific(mesh: Any, drs: list[DestinationRule], info: RegisteredService) -> list[DestinationRule]:
    exact, wild = [], []
    for dr in drs:
        h = _fqdn(mesh, dr.host, dr.meta.namespace)
        if h == info.fqdn:
            exact.append(dr)
        elif h.startswith("*") and _subset_of(info.fqdn, h):
            wild.append((len(h), h, dr))
    if exact:
        return exact
    if not wild:
        return []
    best = max(w[0] for w in wild)
    host = next(w[1] for w in wild if w[0] == best)
    return [w[2] for w in wild if w[1] == host]


def _merge(drs: list[DestinationRule]) -> DestinationRule | None:
    if len(drs) < 2:
        return drs[0] if drs else None
    first, subsets, names = drs[0], list(drs[0].subsets), {s.name for s in drs[0].subsets}
    for dr in drs[1:]:
        for s in dr.subsets:
            if s.name not in names:
                subsets.append(s)
                names.add(s.name)
    return replace(first, subsets=tuple(subsets))


def destination_rule(mesh: Any, info: RegisteredService, client_ns: str) -> DestinationRule | None:
    """The (merged) DestinationRule a proxy of ``client_ns`` applies to ``info``, as istiod chooses it: the
    most specific of the client's own namespace (in the root namespace: of those private to it), else of the
    Service's namespace exported to the client, else of the root namespace exported to it."""
    all_drs = host_rules(mesh).destination_rules(info)  # the others name another host: never chosen
    if not all_drs:
        return None
    mc: MeshConfig = mesh.scope.mesh_config
    root = mc.root_namespace
    if client_ns != root:
        found = [dr for dr in all_drs if dr.meta.namespace == client_ns
                 and (not (ex := dr.export_to) or "*" in ex or "." in ex or client_ns in ex)]
    else:
        found = [dr for dr in all_drs if dr.meta.namespace == root and not _exported(dr, mc)]
    if found:
        found = _most_specific(mesh, found, info)
    if not found:
        found = _exported_from(mesh, mc, all_drs, info, info.namespace, client_ns)
    if not found:
        found = _exported_from(mesh, mc, all_drs, info, root, client_ns)
    if len(found) < 2:
        return _merge(found)
    # one merged object per set of rules: callers compare and key on the rule's identity (the rules are kept
    # with it, so that their ids are not reused while the entry stands)
    merged = mesh.__dict__.setdefault("_merged_drs", {})
    key = tuple(map(id, found))
    got = merged.get(key)
    if got is None:
        got = merged[key] = (tuple(found), _merge(found))
    return got[1]


def _exported_from(mesh: Any, mc: MeshConfig, drs: list[DestinationRule], info: RegisteredService, ns: str,
                   client_ns: str) -> list[DestinationRule]:
    """The most specific of ``drs`` in ``ns`` exported beyond it, those of them that ``client_ns`` sees."""
    cands = [dr for dr in drs if dr.meta.namespace == ns and _exported(dr, mc)]
    if not cands:
        return cands
    return [dr for dr in _most_specific(mesh, cands, info)
            if not dr.export_to or "*" in dr.export_to or client_ns in dr.export_to]


def _exported(dr: DestinationRule, mc: MeshConfig) -> bool:
    ex = set(dr.export_to)
    if not ex:
        return "." not in mc.dr_export_to
    return not (len(ex) == 1 and (ex & {".", dr.meta.namespace}))


# --------------------------------------------------------------------------- routes


def is_headless(info: RegisteredService) -> bool:
    """``clusterIP: None``."""
    return info.service is not None and (info.service.cluster_ip or "").lower() == "none"


def headless_route(mesh: Any, info: RegisteredService, port: int, name: str) -> Route:
    """A headless Service: the client's DNS choice of pod, shown as uniform (an assumption, said in a note)."""
    eps = mesh.endpoints(info, port)
    prov = Provenance(info.source, info.line)
    if not eps:
        root: Any = Backend(name=f"no address ({info.short} has no endpoints in DNS)", labels=(("outcome", "reject"),),
                            provenance=prov)
    else:
        root = Weighted(children=tuple(e.backend for e in eps), weights=(1,) * len(eps), unit="connection",
                        name=f"DNS A records of {info.fqdn} (the client's own pick)", provenance=prov)
    return Route(root=root, name=name, provenance=prov, notes=(
        f"{info.short} is headless (clusterIP: None): clients dial the pod addresses DNS returns, so no "
        "kube-proxy rule, VirtualService weight or ztunnel choice splits the traffic (Istio builds ORIGINAL_DST "
        "clusters for it: cluster.go convertResolution); shown as one uniform pick per connection, which "
        "assumes the client takes a random A record (many take the first)",))


def headless_layers(info: RegisteredService, port: int) -> list[Layer]:
    """The one decision on a headless Service's path: the client's DNS pick."""
    return [Layer("client", "DNS", f"{info.fqdn} resolves to the pod IPs (headless); the client dials one of them",
                  "connection", f"{info.source}:{info.line}"),
            Layer("proxy", "ORIGINAL_DST / direct", "forwarded to the address the client dialed: no split; "
                  "assumes: the client picks a random A record", "connection")]


def _port_listeners(mesh: Any, scope: ClientScope, port: int) -> tuple[str, ...]:
    """Up to two hosts with ``port`` that a sidecar with ``scope`` knows (kept per scope and port: one scan of
    the registry, not one per Service)."""
    memo = mesh.__dict__.setdefault("_port_listeners", {})
    key = (id(scope.sidecar), scope.namespace, port)
    got = memo.get(key)
    if got is None:
        li = scope.listener(port)
        found: list[str] = []
        for other in mesh.registry.values():
            if other.port(port) is not None and service_visible(mesh, other, scope.namespace) and imports_host(
                    li, scope.namespace, other.fqdn, other.namespace):
                found.append(other.fqdn)
                if len(found) == 2:
                    break
        got = memo[key] = (tuple(found), scope.sidecar)  # the Sidecar kept: its id stays its own
    return got[0]


def unknown_destination_route(mesh: Any, scope: ClientScope, info: RegisteredService, port: int, name: str,
                              why: str, layers: list[Layer]) -> Route:
    """What a sidecar does with a host it does not know (not imported, or not exported to it)."""
    policy = scope.outbound_policy
    if policy == "ALLOW_ANY":
        layers.append(Layer("Envoy route", "allow_any -> PassthroughCluster", f"{why}: the outbound traffic policy "
                            f"ALLOW_ANY ({scope.policy_where}) sends it to PassthroughCluster (ORIGINAL_DST): the "
                            "connection keeps the ClusterIP", "connection"))
        layers.append(Layer("iptables (node)", "KUBE-SERVICES -> KUBE-SVC-*", "kube-proxy's statistic cascade over "
                            "all endpoints, DNAT once per connection; assumes: kube-proxy in iptables mode",
                            "connection", f"{info.source}:{info.line}"))
        r = mesh.kube_proxy_route(info, port, name=name)
        return Route(root=r.root, name=name, provenance=r.provenance, notes=(
            f"{why}: ALLOW_ANY ({scope.policy_where}) -> PassthroughCluster, then kube-proxy's per-connection split "
            "over all pods (httproute.go buildCatchAllVirtualHost)", *r.notes))
    http_listener = any(f != info.fqdn for f in _port_listeners(mesh, scope, port))
    if http_listener:
        leaf = Backend(name="502 block_all (REGISTRY_ONLY)", labels=(("outcome", "502"),))
        what = (f"REGISTRY_ONLY ({scope.policy_where}): the route configuration of port {port} answers unknown "
                "hosts from the block_all virtual host with HTTP 502; assumes: the port is HTTP")
    else:
        leaf = Backend(name="BlackHoleCluster (REGISTRY_ONLY): connection closed", labels=(("outcome", "reject"),))
        what = (f"REGISTRY_ONLY ({scope.policy_where}): no listener for port {port}, so the virtualOutbound listener "
                "sends the connection to BlackHoleCluster (closed)")
    layers.append(Layer("Envoy route", "block_all / BlackHoleCluster", f"{why}: {what}", "request"))
    return Route(root=leaf, name=name, notes=(f"{why}: {what}",))
