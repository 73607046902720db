"""The client workloads of a mesh, grouped once: by path kind and, for sidecars, by namespace and Sidecar.

Every Service's clients are the mesh's workloads but the Service's own (its pods in its
namespace); their path kind (:func:`meshstat.mesh.ambient.client_kind`) and their sidecar's scope
(:func:`meshstat.mesh.scope.client_scope`) do not depend on the Service. :class:`ClientIndex`
groups them once per mesh into :class:`ClientRun` s (shared tuples of names), and
:meth:`ClientIndex.own` finds a Service's own workloads through a (namespace, label) index, so that
the paths of a Service cost its own workloads, not the cluster's
(:func:`service_clients`, used by :meth:`meshstat.mesh.Mesh.client_paths`).

:func:`rule_namespaces` names the client namespaces whose sidecars may see a Service's rules
differently from any other namespace (the audit looks at those one by one and at one other
namespace for the rest); :func:`route_namespaces` is the same for whole routes, or ``None`` where
the route may depend on more than the namespace. The sidecars of every other namespace get one
route, worked out once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from meshstat.mesh.ambient import client_kind
from meshstat.mesh.layers import ClientList
from meshstat.mesh.locality import PLACE_LABELS
from meshstat.mesh.registry import LabelIndex, RegisteredService
from meshstat.mesh.scope import (
    client_scope,
    host_rules,
    scope_shape,
    service_export,
    services_restricted,
    several_wide_sidecars,
)
from meshstat.parsers.gateway_api import gateway_objects
from meshstat.parsers.k8s import DestinationRule, Diagnostic, WorkloadResource

__all__ = ["ClientIndex", "ClientRun", "ServiceClients", "ShapeRuns", "client_index", "route_namespaces",
           "rule_namespaces", "service_clients"]


class ClientRun:
    """Workloads in manifest order, their names, and where each sits (one shared tuple for every Service)."""

    __slots__ = ("names", "pos", "workloads")

    def __init__(self, workloads: list[WorkloadResource], names: tuple[str, ...] | None = None) -> None:
        self.workloads = tuple(workloads)
        self.names = names if names is not None else tuple(w.meta.ref for w in workloads)
        self.pos = {id(w): i for i, w in enumerate(self.workloads)}

    def drop(self, own: frozenset[int]) -> frozenset[int]:
        """The positions of the workloads of ``own`` (ids) in the run."""
        return frozenset(self.pos[i] for i in own if i in self.pos) if own else frozenset()

    def less(self, own: frozenset[int]) -> tuple[WorkloadResource | None, ClientList]:
        """The first workload not in ``own`` (ids), and the names less ``own``'s."""
        drop = self.drop(own)
        if len(drop) == len(self.workloads):
            return None, ClientList()
        return self.workloads[self.first_kept(drop)], ClientList.run(self.names, drop)

    def first_kept(self, drop: frozenset[int]) -> int:
        """The position of the first workload not in ``drop``."""
        return 0 if 0 not in drop else next(j for j in range(len(self.workloads)) if j not in drop)


class ClientIndex:
    """The mesh's client workloads grouped once (see the module docstring)."""

    def __init__(self, mesh: Any) -> None:
        self.key = (id(mesh.manifests.workloads), len(mesh.manifests.workloads))
        ws = mesh.owners.roots  # a Deployment calls as itself, not as its ReplicaSets' Pods too
        kinds: dict[str, list[WorkloadResource]] = {"sidecar": [], "ambient": [], "kube-proxy": []}
        groups: dict[tuple[str, int], list[WorkloadResource]] = {}
        #: not injected although their namespace is labelled for injection: (workload, why)
        self.unreached: list[tuple[WorkloadResource, str]] = []
        #: each workload's position in the manifests (by id)
        self.order = {id(w): i for i, w in enumerate(ws)}
        for w in ws:
            ns = w.meta.namespace
            kind = client_kind(mesh, w)
            kinds[kind].append(w)
            if kind == "sidecar":
                groups.setdefault((ns, id(client_scope(mesh, w, ns).sidecar)), []).append(w)
            else:
                d = mesh.injection(w)
                if d.namespace_labelled:
                    self.unreached.append((w, d.reason))
        self.kinds = {k: ClientRun(v) for k, v in kinds.items()}
        #: injected workloads (kind ``sidecar``) as clients through their istio-proxy (UID 1337)
        self.proxies = ClientRun(kinds["sidecar"], tuple(mesh._proxy_name(w) for w in kinds["sidecar"]))
        self.plain = ClientRun([w for w in ws if not mesh.injection(w).injected])
        #: sidecar clients of one namespace that one Sidecar resource (or none) scopes: (namespace, run)
        self.sidecar_groups = [(ns, ClientRun(g)) for (ns, _), g in groups.items()]
        #: every sidecar group whole, as :attr:`ServiceClients.sidecar_groups` lists them
        self.whole_groups = [(ns, run.workloads[0], (run.names, frozenset())) for ns, run in self.sidecar_groups]
        #: namespace -> the positions of its groups in :attr:`sidecar_groups`
        self.groups_in: dict[str, list[int]] = {}
        for i, (ns, _) in enumerate(self.sidecar_groups):
            self.groups_in.setdefault(ns, []).append(i)
        self._by_label = LabelIndex((w, w.meta.namespace, w.labels) for w in ws)
        #: the namespaces with a Sidecar resource, and the positions of their groups by the shape of their scope
        self.with_sidecar = frozenset(s.meta.namespace for s in mesh.scope.sidecars)
        shapes: dict[Any, list[int]] = {}
        for i, (ns, run) in enumerate(self.sidecar_groups):
            if ns in self.with_sidecar:
                shapes.setdefault(scope_shape(client_scope(mesh, run.workloads[0], ns)), []).append(i)
        self.shapes = list(shapes.values())
        self._shape_ns = [{self.sidecar_groups[i][0] for i in idx} for idx in self.shapes]
        self._ref = [(sc.meta.ref if (sc := client_scope(mesh, run.workloads[0], ns).sidecar) is not None else "")
                     for ns, run in self.sidecar_groups]
        #: namespace -> its warning of several Sidecars without workloadSelector
        self._wide_warning = {}
        for ns in self.with_sidecar:
            wide = [s for s in mesh.scope.sidecars_in(ns) if s.selector is None]
            if len(wide) > 1:
                self._wide_warning[ns] = several_wide_sidecars(wide)
        self._shape_parts: dict[tuple[int, frozenset[str]], ShapeRuns | None] = {}
        self._runs = {id(run.names): run for _, run in self.sidecar_groups}
        #: whether sidecar clients differ in where they run (a Pod of their own on a Node, or topology labels of
        #: their own) or in having labels at all (failover priorities apply to a caller with labels only,
        #: ``locality.apply_locality``): a route with a locality setting may then differ between them
        self.callers_differ = len({(mesh.places.get((w.meta.namespace, w.meta.name)), not w.labels,
                                    tuple(w.labels.get(k) for k in PLACE_LABELS)) for w in kinds["sidecar"]}) > 1

    def first_order(self, names: tuple[str, ...], drop: frozenset[int]) -> int:
        """The manifest position of the first workload a group's run (``names`` less ``drop``) keeps."""
        run = self._runs[id(names)]
        return self.order[id(run.workloads[run.first_kept(drop)])]

    def shape_runs(self, special: set[str]) -> list[ShapeRuns]:
        """The groups of the namespaces with a Sidecar resource outside ``special``, by shape
        (:func:`meshstat.mesh.scope.scope_shape`): such namespaces see a Service whose routes single out
        ``special`` (its own namespace among them) alike when their Sidecars have one shape. Kept per shape and
        namespaces left out: a cluster's Services mostly leave out the same few."""
        out = []
        for k, idx in enumerate(self.shapes):
            key = (k, frozenset(self._shape_ns[k] & special))
            got = self._shape_parts.get(key)
            if got is None:
                keep = [i for i in idx if self.sidecar_groups[i][0] not in key[1]]
                whole = self.whole_groups
                spaces = dict.fromkeys(whole[i][0] for i in keep)
                got = self._shape_parts[key] = ShapeRuns(
                    whole[keep[0]][0], whole[keep[0]][1], [whole[i][2] for i in keep],
                    [self.order[id(whole[i][1])] for i in keep], sorted({self._ref[i] for i in keep} - {""}),
                    [w for ns in list(spaces)[1:] if (w := self._wide_warning.get(ns)) is not None]) if keep else None
            if got is not None:
                out.append(got)
        return out

    def own(self, info: RegisteredService) -> frozenset[int]:
        """Ids of ``info``'s own workloads (its namespace's, selected by its selector): not its clients."""
        sel = info.service.selector if info.service is not None else None
        if not sel:
            return frozenset()
        return frozenset(id(w) for w in self._by_label.select(info.namespace, sel))


def client_index(mesh: Any) -> ClientIndex:
    """The :class:`ClientIndex` of ``mesh`` (built on first use; again if its workload list changed)."""
    got = mesh.__dict__.get("_client_index")
    ws = mesh.manifests.workloads
    if got is None or got.key != (id(ws), len(ws)):
        got = mesh.__dict__["_client_index"] = ClientIndex(mesh)
    return got


def route_namespaces(mesh: Any, info: RegisteredService, *, sidecars: bool = True) -> set[str] | None:
    """Client namespaces whose sidecars may route ``info`` differently from those of any other namespace.

    :func:`rule_namespaces`, or ``None`` (every namespace apart) when the route may also depend on
    the client itself (a ``sourceLabels`` match; locality: sidecar clients that differ in where they run, as a Pod
    of their own on a Node (``Mesh.sidecar_route`` takes a client's place from its Pod object: a Deployment has
    none) or by topology labels of their own (:data:`PLACE_LABELS`), or a DestinationRule of a host the route
    reaches whose ``failoverPriority`` names other labels, which each client's own decide) or on the rest of its
    namespace (an outbound policy ``REGISTRY_ONLY``: what answers an unknown host depends on what
    else the namespace imports, :func:`meshstat.mesh.scope.unknown_destination_route`).
    """
    objs = mesh.scope
    if client_index(mesh).callers_differ or objs.mesh_config.outbound_policy == "REGISTRY_ONLY" or any(
            s.outbound_policy == "REGISTRY_ONLY" for s in objs.sidecars):
        return None
    rules = host_rules(mesh)
    for vs in rules.virtual_services(info):
        if any(m.source_labels for r in vs.http for m in r.matches) or any(t.source_labels for t in vs.tcp):
            return None
    for dr, _ in _reached_rules(mesh, info):
        settings = [dr.locality, *(t for _, t in dr.port_locality), *(sub.locality for sub in dr.subsets)]
        if any(t is not None and t.locality is not None and any(k.partition("=")[0] not in PLACE_LABELS
                                                                for k in t.locality.failover_priority)
               for t in settings):
            return None  # failoverPriority on other labels: each client's own labels decide
    return rule_namespaces(mesh, info, sidecars=sidecars)


def rule_namespaces(mesh: Any, info: RegisteredService, *, sidecars: bool = True) -> set[str]:
    """The namespaces whose sidecars the objects deciding a sidecar's rules for ``info`` single out.

    A sidecar's VirtualService, DestinationRule and scope for a Service depend on its namespace only
    through objects that name namespaces, and only where they are not the same for every namespace:

    * the root namespace (its DestinationRules' lookup differs), Gateway API routes' namespaces (a
      consumer route binds the clients of its namespace) and ``sourceNamespace`` matches;
    * the namespaces of Sidecar resources; where there is one, also those of the Service and of
      every rule (``./`` hosts import the client's own namespace);
    * the export (annotation or MeshConfig ``defaultServiceExportTo``) of the Service and of every Service its
      rules send to (a proxy has no cluster for a Service not exported to it), a VirtualService's
      ``exportTo`` (or ``defaultVirtualServiceExportTo``) and a DestinationRule's ``exportTo`` (or
      ``defaultDestinationRuleExportTo``) that is not ``*``: the namespaces they name, their own;
    * a DestinationRule outside the namespace of its host: its namespace (its clients look it up
      first, ``scope.destination_rule``).

    The DestinationRules are those of every host the route reaches (:func:`_reached_rules`: each
    cluster's rule is looked up from the client's namespace). Every namespace outside the set sees
    the same rules.

    ``sidecars=False`` leaves out the namespaces that are in the set only for their Sidecar resources: what
    such a namespace sees then depends on its Sidecar alone (``./`` hosts name no namespace of the Service or
    its rules, which the set holds), so they can be grouped by its shape (:func:`meshstat.mesh.scope.scope_shape`).
    """
    objs = mesh.scope
    mc = objs.mesh_config
    strict = bool(objs.sidecars)
    out = {mc.root_namespace, *((s.meta.namespace for s in objs.sidecars) if sidecars else ())}

    def named(export_to: Any, default: Any, ns: str) -> None:
        given = export_to or default
        if not strict and "*" in given:  # exported everywhere (``.`` names ``ns``, never ``*``): none singled out
            return
        ex = {ns if e == "." else e for e in given}
        if strict or "*" not in ex:
            out.add(ns)
            out.update(ex)

    if info.entry is not None and info.service is None:
        out.add(info.entry.meta.namespace)
    # the Service, and the Services its rules send to: a proxy lacks their clusters where they are not exported
    for t in _reached(mesh, info) if strict or services_restricted(mesh) else ():
        if (export := service_export(t)) is not None:
            named(export[0], mc.service_export_to, export[1])
    for vs in host_rules(mesh).virtual_services(info):
        named(vs.export_to, mc.vs_export_to, vs.meta.namespace)
        for r in vs.http:
            for m in r.matches:
                if m.source_namespace is not None:
                    out.add(m.source_namespace)
    for dr, host_ns in _reached_rules(mesh, info):
        if dr.meta.namespace != host_ns:
            out.add(dr.meta.namespace)
        named(dr.export_to, mc.dr_export_to, dr.meta.namespace)
    got = mesh.__dict__.get("_gateway_route_namespaces")
    if got is None:  # a consumer route binds the sidecars of its namespace
        got = mesh.__dict__["_gateway_route_namespaces"] = {r.meta.namespace
                                                            for r in gateway_objects(mesh.manifests).routes}
    out.update(got)
    return out


def _reached_rules(mesh: Any, info: RegisteredService) -> list[tuple[DestinationRule, str]]:
    """The DestinationRules of every host :func:`_reached` gives, each with that host's namespace."""
    rules = host_rules(mesh)
    return [(dr, t.namespace) for t in _reached(mesh, info) for dr in rules.destination_rules(t)]


def _reached(mesh: Any, info: RegisteredService) -> list[RegisteredService]:
    """``info``, every host its VirtualServices send to, and every Service a Gateway API route sends to
    (routes attach to Services in many ways: all of the mesh's, found once). Kept per mesh and Service."""
    memo = mesh.__dict__.setdefault("_reached", {})
    got = memo.get(id(info))
    if got is not None and got[0] is info:
        return got[1]
    rules = host_rules(mesh)
    targets = {id(info): info}
    for vs in rules.virtual_services(info):
        for r in (*vs.http, *vs.tcp):
            for d in r.destinations:
                target = mesh.resolve_host(d.host, vs.meta.namespace)
                if target is not None:
                    targets[id(target)] = target
    backends = mesh.__dict__.get("_gateway_backends")
    if backends is None:
        backends = mesh.__dict__["_gateway_backends"] = {}
        for route in gateway_objects(mesh.manifests).routes:
            for rule in route.rules:
                for b in rule.backends:
                    t = mesh.registry.get(b.host(mesh.domain))
                    if t is not None:
                        backends[id(t)] = t
    targets.update(backends)
    out = list(targets.values())
    memo[id(info)] = (info, out)
    return out


@dataclass(frozen=True)
class ShapeRuns:
    """The sidecar groups of one Sidecar shape that a Service does not single out: the first one's namespace and
    workload (whose route stands for them all), their runs as :meth:`ClientList.add_runs` takes them, each one's
    order (its first workload's position in the manifests), the refs of the Sidecars they apply (sorted), and the
    warnings of their namespaces that the first one's route would give for each (several Sidecars without
    workloadSelector)."""

    namespace: str
    first: WorkloadResource
    runs: list[tuple[tuple[str, ...], frozenset[int]]]
    orders: list[int]
    refs: list[str]
    warnings: list[Diagnostic]


@dataclass
class ServiceClients:
    """The clients of one Service: every workload of the mesh but its own, or one given client.

    Names are :class:`~meshstat.mesh.layers.ClientList` s over the index's shared runs; ``first_*``
    is the first workload of a kind (the one whose route stands for the kind's).
    """

    plain: ClientList  # not injected (no sidecar): kube-proxy and ambient clients
    injected: ClientList
    first_injected: WorkloadResource | None
    proxies: ClientList  # the injected ones' istio-proxy (UID 1337)
    kube_proxy: ClientList
    ambient: ClientList
    first_ambient: WorkloadResource | None
    #: sidecar clients by (namespace, Sidecar): (namespace, first workload, (names, positions left out)), in
    #: the order of their first workloads; the runs as :meth:`ClientList.add_runs` takes them
    sidecar_groups: list[tuple[str, WorkloadResource, tuple[tuple[str, ...], frozenset[int]]]]
    #: not injected although their namespace is labelled for injection: (workload, why)
    unreached: list[tuple[WorkloadResource, str]]
    mesh: Any = None
    info: RegisteredService | None = None
    index: ClientIndex | None = None

    def route_namespaces(self) -> set[str] | None:
        """:func:`route_namespaces` of the Service without the namespaces only a Sidecar resource singles out (their
        groups go by :meth:`ClientIndex.shape_runs`); ``None`` for one given client: nothing to share."""
        return route_namespaces(self.mesh, self.info, sidecars=False) if self.info is not None else None


def service_clients(mesh: Any, info: RegisteredService, client: WorkloadResource | None = None) -> ServiceClients:
    """The clients of ``info`` (``client`` alone when given), grouped as :class:`ServiceClients`."""
    if client is not None:
        kind = client_kind(mesh, client)
        one = ClientList([client.meta.ref])
        d = mesh.injection(client)
        none = ClientList()
        return ServiceClients(
            plain=none if d.injected else one, injected=one if d.injected else none,
            first_injected=client if d.injected else None,
            proxies=ClientList([mesh._proxy_name(client)]) if d.injected else none,
            kube_proxy=one if kind == "kube-proxy" else none, ambient=one if kind == "ambient" else none,
            first_ambient=client if kind == "ambient" else None,
            sidecar_groups=[(client.meta.namespace, client, ((client.meta.ref,), frozenset()))] if kind == "sidecar"
            else [],
            unreached=[(client, d.reason)] if not d.injected and d.namespace_labelled else [],
        )
    idx = client_index(mesh)
    own = idx.own(info)
    first_injected, injected = idx.kinds["sidecar"].less(own)
    first_ambient, ambient = idx.kinds["ambient"].less(own)
    groups = list(idx.whole_groups)  # a Service's own workloads are in its namespace: other groups are whole
    moved = False
    for i in reversed(idx.groups_in.get(info.namespace, ())):
        run = idx.sidecar_groups[i][1]
        drop = run.drop(own)
        if not drop:
            continue
        if len(drop) == len(run.workloads):
            del groups[i]
            continue
        j = run.first_kept(drop)
        groups[i] = (groups[i][0], run.workloads[j], (run.names, drop))
        moved = moved or j > 0
    if moved:  # a group whose first workloads are the Service's own: ordered by its first client
        groups.sort(key=lambda g: idx.order[id(g[1])])
    return ServiceClients(
        plain=idx.plain.less(own)[1], injected=injected, first_injected=first_injected,
        proxies=idx.proxies.less(own)[1], kube_proxy=idx.kinds["kube-proxy"].less(own)[1], ambient=ambient,
        first_ambient=first_ambient, sidecar_groups=groups,
        unreached=[(w, why) for w, why in idx.unreached if id(w) not in own], mesh=mesh, info=info, index=idx,
    )
