"""The audit's result objects, its cluster indexes and the interface of a reason producer.

A *reason producer* is a function ``producer(ctx: AuditContext) -> Iterable[Divergence]``: it
looks at the mechanism it knows (Istio rules, Gateway API routes, topology), computes exact
effective splits with the context's indexes and yields one :class:`Divergence` per (service,
client group) whose split differs from the configured one. :func:`audit` runs the producers it
is given and collects their rows into an :class:`AuditResult`.

The context groups client workloads once for the whole cluster (:class:`ClientClass`: namespace,
path kind, Sidecar resource), indexes workloads by namespace and label, and counts the pods of a
Service per destination (:meth:`AuditContext.pod_split`), so that a producer's cost per Service
is a few dictionary look-ups, not a scan of the cluster.

A producer loops over its Services (or routes, or VirtualServices) through :meth:`AuditContext.share`, and
reports besides its rows only through :meth:`AuditContext.note` and :attr:`AuditContext.audited`. So
:func:`run_audit` can give a big mesh's items to several processes (:func:`meshstat.workers.in_parts`, forked
once the indexes exist) and merge their rows and notes in the order one process gives them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from functools import lru_cache
from typing import Any, TypeVar

from meshstat.mesh.ambient import client_kind
from meshstat.mesh.layers import name_list
from meshstat.mesh.paths import Mesh
from meshstat.mesh.registry import (
    LabelIndex,
    RegisteredService,
    endpoint_conditions,
    labels_subset,
    version_of,
)
from meshstat.mesh.scope import select_sidecar
from meshstat.model import share_text
from meshstat.parsers.gateway_api import gateway_objects
from meshstat.parsers.istio_scope import SidecarResource
from meshstat.parsers.k8s import VirtualService, WorkloadResource
from meshstat.parsers.yaml_loader import gc_paused
from meshstat.records import record
from meshstat.workers import in_parts, jobs

T = TypeVar("T")

__all__ = [
    "REASONS",
    "AuditContext",
    "AuditResult",
    "ClientClass",
    "Divergence",
    "ReasonProducer",
    "clients_label",
    "clients_text",
    "destination_label",
    "export_fix",
    "format_split",
    "injection_fixes",
    "run_audit",
]

#: Every reason code and what it means (stable: scripts and CI read them).
REASONS: dict[str, str] = {
    "no-sidecar": "the clients have no sidecar (namespace not labelled for injection, opt-out): kube-proxy splits "
                  "per connection over all pods, whatever the VirtualService or route says",
    "rule-bound-to-gateway-only": "the VirtualService's spec.gateways name gateways but not `mesh`: sidecars and "
                                  "waypoints never apply it and use the default cluster over all pods",
    "not-exported-to-namespace": "the VirtualService's exportTo does not reach the clients' namespace (or their "
                                 "waypoint's): their proxies use the default cluster over all pods; or a Service "
                                 "the route sends to (networking.istio.io/exportTo annotation), or the "
                                 "DestinationRule that defines its subsets, is not exported there: the proxies have "
                                 "no cluster for it, its share answers 503",
    "sidecar-egress-excludes": "the clients' Sidecar resource does not import the Service (or its "
                               "VirtualService): the outbound traffic policy decides (ALLOW_ANY: kube-proxy over "
                               "all pods; REGISTRY_ONLY: refused); or its egress listeners give no cluster for a "
                               "destination's port (a listener with a port takes that port only): 503",
    "subset-without-pods": "a subset the route sends traffic to selects no pods: its share fails (503)",
    "subset-undefined": "a subset the route names is not defined by the DestinationRule the clients see: its "
                        "share fails (503 NC)",
    "other-virtualservice-wins": "another VirtualService for the host comes first for the clients' proxies (an "
                                 "older one, or one private to their namespace or exported to it by name): its "
                                 "split applies, or a 404 when none of its rules matches a plain request",
    "destination-rule-differs": "the clients see a DestinationRule of their own namespace (istiod prefers it) whose "
                                "subsets select other pods than the one of the Service's namespace: the shares go "
                                "to those pods",
    "fault-injected": "the rule's fault.abort answers a share of the requests with an error before routing (Envoy's "
                      "fault filter, in the clients' proxies, the waypoint or the gateway): the rest is split",
    "ambient-without-waypoint": "the clients are in ambient mode and the Service has no waypoint: ztunnel splits "
                                "per connection over all pods, whatever the VirtualService or route says",
    "rule-not-at-waypoint": "the Service's waypoint applies VirtualServices of its own namespace and the Service's "
                            "only: one in a third namespace is not applied, the waypoint's default route spreads "
                            "over all pods",
    "backend-missing": "a Gateway API route's backendRef names a Service (or port, or kind) that does not "
                       "exist: its share of the requests gets a 500 (a VirtualService destination at an Istio "
                       "Gateway that names a port its Service lacks: 503 NC)",
    "backend-without-pods": "a Gateway API route's backendRef names a Service that selects no ready pod: its "
                            "cluster is empty and its share of the requests gets a 503",
    "refused-by-referencegrant": "a route attached to a Gateway names a Service in another namespace that no "
                                 "ReferenceGrant there allows: its share of the requests gets a 500",
    "envoy-config-differs": "the workload's Envoy config_dump (--envoy) routes the Service otherwise than the "
                            "VirtualService configures (an older push, a rule istiod did not give it)",
    "topology-restricted": "topology (trafficDistribution, topology hints, internalTrafficPolicy: Local) keeps "
                           "kube-proxy, ztunnel without a waypoint or the sidecars' Envoy in the clients' zone from some "
                           "endpoints: the zone's split differs from the cluster-wide one",
}


@record
class Divergence:
    """One (service, client group) whose effective split differs from the configured one.

    ``configured`` and ``effective`` map a destination label (subset, host, ``503``) to its exact
    share; ``clients`` names the group (namespaces with workload counts); ``fix`` names the objects
    to change.
    """

    service: str
    clients: str
    n_clients: int
    configured: tuple[tuple[str, Fraction], ...]
    effective: tuple[tuple[str, Fraction], ...]
    reason: str
    detail: str
    fix: tuple[str, ...] = ()
    kind: str = ""


@dataclass
class AuditResult:
    """Every divergence, the number of (service, port) pairs audited, and notes."""

    rows: list[Divergence]
    audited: int
    notes: list[str] = field(default_factory=list)

    @property
    def diverges(self) -> bool:
        return bool(self.rows)

    def by_reason(self) -> dict[str, dict[str, Any]]:
        """Per reason: rows, services, client workloads and the objects to change (in first-seen order)."""
        out: dict[str, dict[str, Any]] = {}
        for r in self.rows:
            g = out.setdefault(r.reason, {"rows": 0, "services": set(), "clients": 0, "fix": {}})
            g["rows"] += 1
            g["services"].add(r.service)
            g["clients"] += r.n_clients
            for f in r.fix:
                g["fix"][f] = None
        return {k: {"rows": v["rows"], "services": len(v["services"]), "clients": v["clients"],
                    "fix": list(v["fix"])} for k, v in out.items()}

    def summary(self) -> str:
        """A few lines: counts per reason and the objects to change (at most 5 named per reason)."""
        if not self.rows:
            return f"audit: {self.audited} routed service port(s); every configured split holds"
        lines = [f"audit: {self.audited} routed service port(s); {len(self.rows)} divergence(s)"]
        for reason, g in self.by_reason().items():
            lines.append(f"  {reason}: {g['services']} service(s), {g['rows']} client group(s), "
                         f"{g['clients']} client workloads (summed over the groups)")
            lines.append("    change: " + name_list(g["fix"], 5, sep="; "))
        return "\n".join(lines)


def format_split(split: Iterable[tuple[str, Fraction]]) -> str:
    """``v1 90%, v2 10%`` (a share with no short percentage is written as a fraction: ``v1 1/3``)."""
    parts = []
    for label, f in split:
        pct = f * 100
        parts.append(f"{label} {float(pct):g}%" if (pct * 100).denominator == 1 else f"{label} {share_text(f)}")
    return ", ".join(parts) or "-"


@record
class ClientClass:
    """Client workloads that reach services the same way: one namespace, path kind, Sidecar and zone.

    ``zone`` is the zone of the nodes the workloads' pods run on, where the input has Nodes and
    placed Pods (``spec.nodeName``) and all of a workload's pods are in one zone; else ``None``
    (:attr:`AuditContext.client_zones` has every zone of each workload).
    """

    namespace: str
    kind: str  # "sidecar", "ambient" or "kube-proxy"
    sidecar: SidecarResource | None
    workloads: tuple[WorkloadResource, ...]
    zone: str | None = None


def client_nodes(mesh: Mesh) -> dict[int, dict[str, int]]:
    """``id(client workload)`` -> its running placed Pods by Node (in the order they come), where the input has
    Nodes with zones and Pods with ``spec.nodeName``. A Pod counts for the client workload that controls it
    (:class:`~meshstat.mesh.registry.Ownership`: its Deployment, present or named by its ReplicaSet), or for
    itself; a Pod that runs no container (Succeeded, Failed) sends nothing."""
    topo = mesh.manifests.topology
    zoned = {n.name for n in topo.nodes if n.zone}
    if not zoned:
        return {}
    node_of = {(p.namespace, p.name): p.node for p in topo.pods if p.node in zoned}
    owners = mesh.owners
    finished = {id(w) for w in owners.finished}
    out: dict[int, dict[str, int]] = {}
    for w in mesh.manifests.workloads:
        node = node_of.get((w.meta.namespace, w.meta.name)) if w.meta.kind == "Pod" else None
        if node is not None and id(w) not in finished:
            nodes = out.setdefault(id(owners.root_of.get(id(w), w)), {})
            nodes[node] = nodes.get(node, 0) + 1
    return out


class AuditContext:
    """The mesh and its indexes, shared by every reason producer."""

    def __init__(self, mesh: Mesh, *, exclude: frozenset[str] = frozenset(), observed_kube_proxy: bool = False
                 ) -> None:
        self.mesh = mesh
        #: whether real kube-proxy rules replace the modelled kube-proxy layer (``audit --iptables/--nft``)
        self.observed_kube_proxy = observed_kube_proxy
        m = mesh.manifests
        #: the workloads whose pods are endpoints (:class:`~meshstat.mesh.registry.Ownership`)
        self._workloads = LabelIndex((w, w.meta.namespace, w.labels) for w in mesh.owners.leaves)
        objs = mesh.scope
        root = objs.mesh_config.root_namespace
        groups: dict[tuple[str, str, int, str | None], list[WorkloadResource]] = {}
        sidecars: dict[int, SidecarResource | None] = {0: None}
        #: ``id(client workload)`` -> its pods by node (:func:`client_nodes`), and the zones of those nodes
        self.client_nodes = client_nodes(mesh)
        zone_of = {n.name: n.zone for n in m.topology.nodes if n.zone}
        self.client_zones = {k: tuple(dict.fromkeys(zone_of[n] for n in v)) for k, v in self.client_nodes.items()}
        for w in mesh.owners.roots:
            if exclude and w.meta.ref in exclude:  # its layer is observed (an Envoy dump), not modelled
                continue
            kind = client_kind(mesh, w)
            sc = select_sidecar(objs, w.labels, w.meta.namespace, root, None) if kind == "sidecar" else None
            sidecars[id(sc) if sc else 0] = sc
            zones = self.client_zones.get(id(w), ())
            zone = zones[0] if len(zones) == 1 else None
            groups.setdefault((w.meta.namespace, kind, id(sc) if sc else 0, zone), []).append(w)
        self.classes = [ClientClass(ns, kind, sidecars[sid], tuple(ws), zone)
                        for (ns, kind, sid, zone), ws in groups.items()]
        #: the Gateway API and Istio gateway objects (read once: the producers ask per Service)
        self.gateway_objects = gateway_objects(m)
        self.gateway_routes = self.gateway_objects.routes
        self._vs_hosts: dict[str, tuple[RegisteredService, list[VirtualService]]] | None = None
        # what the producers report besides rows (:meth:`note`, :attr:`audited`), and where they are (:meth:`share`)
        self._audited = 0
        self._notes: list[tuple[tuple[int, int, int], str]] = []
        self._part = (0, 1)  # this process's part of the audit, of how many (:func:`run_audit`)
        self._pos = (0, 0, -1)  # (producer, loop, item): item -1 outside a shared loop
        self._loops = 0
        self._all: dict[tuple[str, int], list[tuple[WorkloadResource, int, str]]] = {}
        self._pods: dict[tuple[str, int, bool], list[tuple[WorkloadResource, int]]] = {}
        self._has_pods: dict[tuple[str, int, tuple[tuple[str, str], ...]], bool] = {}
        self._of_group: dict[tuple[Any, ...], tuple[tuple[ClientClass, ...], Any]] = {}

    @property
    def audited(self) -> int:
        """(service, port) pairs audited so far; a producer adds those of the items :meth:`share` gives it."""
        return self._audited

    @audited.setter
    def audited(self, value: int) -> None:
        if self._keeps():
            self._audited = value

    def note(self, text: str) -> None:
        """A remark for the result (each text once, where it is first made)."""
        if self._keeps():
            self._notes.append((self._pos, text))

    def share(self, items: Iterable[T]) -> Iterator[T]:
        """The items of this process's part of a producer's main loop (every item when the audit runs in one part).

        A producer loops over its Services, routes or VirtualServices through this: item ``i`` belongs to part
        ``i % parts``. While an item is worked on, what the producer reports is filed under its position, so the
        parts merge into the order of a serial run (:func:`run_audit`). What a producer reports outside such a
        loop is kept by part 0 only (every part computes it: it depends on no item).
        """
        self._loops += 1
        loop = self._loops
        producer = self._pos[0]
        part, parts = self._part
        try:
            for i, x in enumerate(items):
                if i % parts == part:
                    self._pos = (producer, loop, i)
                    yield x
        finally:
            self._pos = (producer, loop, _AFTER)

    def _keeps(self) -> bool:
        """Whether what is reported now is this part's: an item of its own, or anything in part 0."""
        return self._part[0] == 0 or 0 <= self._pos[2] < _AFTER

    def of_group(self, name: str, what: Callable[[Sequence[ClientClass]], Any], classes: Sequence[ClientClass]
                 ) -> Any:
        """``what(classes)`` (``name`` names ``what``), worked out once per group of client classes: many Services'
        rows name the same group (every namespace without a sidecar, say), and naming it costs a pass over it."""
        key = (name, *map(id, classes))
        got = self._of_group.get(key)
        if got is None:  # the classes are kept with the answer: their ids stay theirs
            got = self._of_group[key] = (tuple(classes), what(classes))
        return got[1]

    def virtual_service_hosts(self) -> dict[str, tuple[RegisteredService, list[VirtualService]]]:
        """Service FQDN -> (its registry entry, the VirtualServices naming it, in file order); worked out once."""
        if self._vs_hosts is None:
            mesh = self.mesh
            hosts: dict[str, tuple[RegisteredService, list[VirtualService]]] = {}
            for vs in mesh.manifests.virtual_services:
                for h in vs.hosts:
                    info = mesh.resolve_host(h, vs.meta.namespace)
                    if info is not None and info.service is not None:
                        hosts.setdefault(info.fqdn, (info, []))[1].append(vs)
            self._vs_hosts = hosts
        return self._vs_hosts

    def _found(self, info: RegisteredService, port: int) -> list[tuple[WorkloadResource, int, str]]:
        """(workload, pod count, condition) of the pods that serve ``info:port`` (index look-up), whatever their
        condition (:meth:`~meshstat.mesh.registry.Ownership.condition`)."""
        key = (info.fqdn, port)
        got = self._all.get(key)
        if got is not None:
            return got
        found: list[tuple[WorkloadResource, int, str]] = []
        svc = info.service
        sp = info.port(port)
        if svc is not None and svc.selector and sp is not None:
            owners = self.mesh.owners
            for w in self._workloads.select(info.namespace, svc.selector):
                if isinstance(sp.target_port, str) and not any(c[0] == sp.target_port for c in w.container_ports):
                    continue
                n = self.mesh.replicas.get(id(w), w.replicas)
                if n:
                    found.append((w, n, owners.condition(w)))
            if "ready" not in endpoint_conditions((c for _, _, c in found), svc.publish_not_ready, True):
                self.note(f"{info.short}:{port}: no pod is ready; kube-proxy sends to the serving terminating "
                          "ones, Istio's sidecars and ztunnel to none")
        self._all[key] = found
        return found

    def selected(self, info: RegisteredService, port: int, *, kube_proxy: bool = False
                 ) -> list[tuple[WorkloadResource, int]]:
        """(workload, pod count) of the pods that are endpoints of ``info:port``: those whose condition takes
        traffic (:func:`~meshstat.mesh.registry.endpoint_conditions`; ``kube_proxy``: with its fallback to
        serving terminating pods), as ``Mesh.endpoints`` takes them."""
        key = (info.fqdn, port, kube_proxy)
        got = self._pods.get(key)
        if got is None:
            found = self._found(info, port)
            conds = [c for _, _, c in found]
            publish = bool(info.service and info.service.publish_not_ready)
            take = endpoint_conditions(conds, publish, kube_proxy)
            if kube_proxy and take == endpoint_conditions(conds, publish, False):
                got = self.selected(info, port)  # the same list (:meth:`kube_proxy_split` reuses its split)
            else:
                got = [(w, n) for w, n, c in found if c in take]
            self._pods[key] = got
        return got

    def kube_proxy_split(self, info: RegisteredService, port: int,
                         labels_of: Mapping[str, tuple[tuple[str, str], ...]], pods: tuple[tuple[str, Fraction], ...]
                         ) -> tuple[tuple[str, Fraction], ...]:
        """:meth:`pod_split` over kube-proxy's endpoints: ``pods`` (the proxies' split) unless no pod is ready
        and kube-proxy falls back to the serving terminating ones."""
        if self.selected(info, port, kube_proxy=True) is self.selected(info, port):
            return pods
        return self.pod_split(info, port, labels_of, kube_proxy=True)

    def has_pods(self, info: RegisteredService, port: int, labels: tuple[tuple[str, str], ...]) -> bool:
        """Whether an endpoint pod of ``info:port`` carries every label of ``labels`` (a subset's selector)."""
        key = (info.fqdn, port, labels)
        got = self._has_pods.get(key)
        if got is None:
            got = self._has_pods[key] = any(labels_subset(labels, w.labels) for w, _ in self.selected(info, port))
        return got

    def idle_pods(self, info: RegisteredService, port: int, labels: tuple[tuple[str, str], ...]) -> bool:
        """Whether pods of ``info:port`` carry ``labels`` although none of them is an endpoint (not ready)."""
        return any(labels_subset(labels, w.labels) for w, _, _ in self._found(info, port))

    def pod_split(self, info: RegisteredService, port: int, labels_of: Mapping[str, tuple[tuple[str, str], ...]],
                  within: tuple[tuple[str, str], ...] = (), *, kube_proxy: bool = False
                  ) -> tuple[tuple[str, Fraction], ...]:
        """Exact share of pods per destination label (``labels_of``: label -> pod labels it selects).

        The split of a per-connection uniform pick over every endpoint (kube-proxy, ztunnel, a
        sidecar's default cluster in the long run), or over those that ``within`` (a subset's
        labels) selects; pods no label selects are ``unrouted <version>``.
        """
        pods = self.selected(info, port, kube_proxy=kube_proxy)
        if within:
            pods = [(w, n) for w, n in pods if labels_subset(within, w.labels)]
        total = sum(n for _, n in pods)
        if total == 0:
            return (("no endpoints", Fraction(1)),)
        counts: dict[str, int] = dict.fromkeys(labels_of, 0)
        for w, n in pods:
            name = destination_label(labels_of, w.labels)
            counts[name] = counts.get(name, 0) + n
        return tuple((k, ratio(c, total)) for k, c in counts.items() if c)


@lru_cache(maxsize=4096)
def ratio(n: int, total: int) -> Fraction:
    """``Fraction(n, total)``, kept: an audit makes the same few shares (1/2, 9/10) for thousands of Services,
    and each new Fraction reduces itself in Python (a gcd)."""
    return Fraction(n, total)


def destination_label(labels_of: Mapping[str, tuple[tuple[str, str], ...]], pod_labels: Mapping[str, str]) -> str:
    """The destination label a pod with ``pod_labels`` counts for: the first whose labels it carries, else
    ``unrouted <version>`` (a pod no destination selects, named by its version label)."""
    for name, sel in labels_of.items():
        if labels_subset(sel, pod_labels):
            return name
    return f"unrouted {version_of(pod_labels.items())}"


def clients_label(classes: Sequence[ClientClass]) -> tuple[str, int]:
    """``ns1 (4)`` or ``3 namespaces, 12 workloads: ns0 (6), ns1 (4) and 1 more``, and the workload count."""
    per_ns: dict[str, int] = {}
    for c in classes:
        per_ns[c.namespace] = per_ns.get(c.namespace, 0) + len(c.workloads)
    n = sum(per_ns.values())
    return clients_text(sorted(per_ns.items()), len(per_ns), n), n


def clients_text(per_ns: Iterable[tuple[str, int]], n_ns: int, n: int) -> str:
    """:func:`clients_label`'s text of ``n_ns`` namespaces with ``n`` workloads, from (namespace, workloads) in
    name order (read three of them)."""
    head = f"{n_ns} namespaces, {n} workloads: " if n_ns > 1 else ""
    return head + name_list((f"{ns} ({k})" for ns, k in per_ns), 3, total=n_ns)


def export_fix(t: RegisteredService) -> str:
    """How to export ``t`` (a Service or a ServiceEntry) to the clients' namespaces."""
    if t.service is None and t.entry is not None:
        return f"add the clients' namespaces to spec.exportTo of ServiceEntry {t.entry.meta.ref}"
    return f"add the clients' namespaces to the networking.istio.io/exportTo annotation of Service {t.short}"


def no_sidecar_row(ctx: AuditContext, info: RegisteredService, port: int, classes: Sequence[ClientClass],
                   configured: tuple[tuple[str, Fraction], ...], effective: tuple[tuple[str, Fraction], ...],
                   rule: str) -> Divergence:
    """``no-sidecar``: clients without a proxy get kube-proxy's split (``effective``), not ``rule``'s."""
    mesh = ctx.mesh

    clients, n = ctx.of_group("label", clients_label, classes)
    n_pods = sum(k for _, k in ctx.selected(info, port, kube_proxy=True))
    return Divergence(f"{info.namespace}/{info.name}:{port}", clients, n, configured, effective, "no-sidecar",
                      f"no sidecar: kube-proxy picks one of {n_pods} pods per connection; {rule} is not applied",
                      ctx.of_group("injection", lambda cl: injection_fixes(mesh, cl), classes), "no mesh")


def injection_fixes(mesh: Mesh, classes: Sequence[ClientClass]) -> tuple[str, ...]:
    """What gives ``classes`` (clients without a sidecar) one: a fix for their namespaces to label, one for those
    labelled whose workloads opt out (each naming three namespaces and how many more)."""
    unlabelled, labelled = [], []
    for ns in sorted({c.namespace for c in classes}):
        nso = mesh.namespace(ns)
        on = nso is not None and ("istio-injection" in nso.labels or "istio.io/rev" in nso.labels)
        (labelled if on else unlabelled).append(ns)
    fixes = []
    if unlabelled:
        fixes.append(f"label {_namespaces(unlabelled)} for injection (istio-injection=enabled)")
    if labelled:
        fixes.append(f"let the workloads of {_namespaces(labelled)} be injected (see `meshstat mesh --client`)")
    return tuple(fixes)


def _namespaces(names: list[str]) -> str:
    """``namespace a`` or ``namespaces a, b, c and 7 more``."""
    return f"namespace {names[0]}" if len(names) == 1 else f"namespaces {name_list(names, 3)}"


def no_waypoint_row(ctx: AuditContext, info: RegisteredService, port: int, classes: Sequence[ClientClass],
                    configured: tuple[tuple[str, Fraction], ...], effective: tuple[tuple[str, Fraction], ...],
                    binding: Any) -> Divergence:
    """``ambient-without-waypoint``: ambient clients of a Service without waypoint (``binding``, a
    :class:`~meshstat.mesh.ambient.WaypointBinding`) get ztunnel's split over its pods."""
    clients, n = clients_label(classes)
    return Divergence(f"{info.namespace}/{info.name}:{port}", clients, n, configured, effective,
                      "ambient-without-waypoint",
                      f"ztunnel picks a pod per connection: {binding.problem or binding.origin}",
                      (f"give Service {info.short} a waypoint (label istio.io/use-waypoint on the Service "
                       f"or namespace {info.namespace})",), "ambient")


#: ``producer(ctx) -> rows``: one mechanism's divergences (see the module docstring).
ReasonProducer = Callable[[AuditContext], Iterable[Divergence]]


#: The item position after a shared loop (:meth:`AuditContext.share`).
_AFTER = 1 << 62

#: An audit of at least this many Services runs in parts on the other CPUs too (:mod:`meshstat.workers`); a smaller
#: one is done before the processes would have started.
PARALLEL_MIN_SERVICES = 1_000


def run_audit(mesh: Mesh, producers: Sequence[ReasonProducer], *, exclude: frozenset[str] = frozenset(),
              observed_kube_proxy: bool = False, parts: int | None = None) -> AuditResult:
    """Run the reason producers over ``mesh`` and collect their rows (``exclude``: workloads left out of the
    modelled client groups; ``observed_kube_proxy``: no modelled kube-proxy rows, see :class:`AuditContext`).

    ``parts``: how many processes share the work (:func:`meshstat.workers.in_parts`, forked after the context's
    indexes are built); by default :func:`meshstat.workers.jobs` for a mesh of :data:`PARALLEL_MIN_SERVICES` Services
    or more, else one. Every part runs every producer over its share of the items (:meth:`AuditContext.share`);
    rows and notes are merged in the order of a serial run, so the result does not depend on ``parts``.
    """
    with gc_paused():  # indexes and rows for thousands of services: no cycles to collect
        ctx = AuditContext(mesh, exclude=exclude, observed_kube_proxy=observed_kube_proxy)
        if parts is None:
            parts = jobs() if len(mesh.manifests.services) >= PARALLEL_MIN_SERVICES else 1
        got = in_parts(lambda i, n: _run_part(ctx, producers, i, n), parts)
    rows = sorted((r for part in got for r in part[0]), key=lambda r: r[0])  # stable: a serial run's order
    notes = dict.fromkeys(t for _, t in sorted((n for part in got for n in part[1]), key=lambda n: n[0]))
    out = [r for _, r in rows]
    out.sort(key=lambda r: (r.service, r.reason, r.clients))
    return AuditResult(out, sum(part[2] for part in got), list(notes))


def _run_part(ctx: AuditContext, producers: Sequence[ReasonProducer], part: int, parts: int
              ) -> tuple[list[tuple[tuple[int, int, int], Divergence]], list[tuple[tuple[int, int, int], str]], int]:
    """Part ``part`` of ``parts`` of the audit: (position, row) and (position, note) pairs, and its audited count."""
    ctx._part = (part, parts)
    ctx._audited, ctx._notes = 0, []  # a part redone here, after another part ran in this process, starts afresh
    rows = []
    for k, p in enumerate(producers):
        ctx._pos, ctx._loops = (k, 0, -1), 0
        for r in p(ctx):
            if ctx._keeps():
                rows.append((ctx._pos, r))
    return rows, ctx._notes, ctx._audited
