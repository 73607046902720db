"""A cluster's topology for one question: nodes and zones, a Service's endpoints, where its clients run.

:func:`build_cluster` joins what :mod:`meshstat.parsers.topology` read (Nodes, Pods with ``spec.nodeName``,
EndpointSlices, the Services' topology fields) with the Services of :mod:`meshstat.parsers.k8s` (selector,
cluster IP, ports). Endpoints come from the Service's EndpointSlices (their hints as written); a Service
without EndpointSlices gets the endpoints the EndpointSlice controller would list (ready Pods matching the
selector, their zone from their Node) with the hints it would write (:mod:`meshstat.topology.hints`).

Clients: by default every Pod with a ``spec.nodeName`` that is not an endpoint of the Service counts as one
client (``--client NS/NAME`` keeps one workload's pods); ``--client-zones a=3,b=2`` gives the weight of
each zone instead, spread evenly over the zone's ready nodes without a control-plane label (an assumption:
only node-local policies see the difference). When the input says nothing about zones, or nothing about where clients run, the builder says
so (:class:`meshstat.errors.InvalidArgument`) instead of guessing.

What-if operations return a new :class:`Cluster`: :meth:`Cluster.lose_zone`, :meth:`Cluster.lose_node`,
:meth:`Cluster.scale_in_zone`, :meth:`Cluster.move_clients`, :meth:`Cluster.with_policy`. Each one that
changes the endpoints or their Service's settings recomputes the hints as the controller would.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from fractions import Fraction
from typing import Any

from meshstat.errors import InvalidArgument
from meshstat.mesh.registry import LabelIndex, pod_condition
from meshstat.topology.hints import HintOutcome, reconcile_hints
from meshstat.topology.types import Endpoint, TopoNode

__all__ = ["Cluster", "Endpoint", "TopoNode", "TopoService", "build_cluster", "parse_client_zones"]


@dataclass(frozen=True, slots=True)
class TopoService:
    """A Service port with its topology settings."""

    namespace: str
    name: str
    port_name: str
    port: int
    protocol: str
    type: str
    cluster_ip: str
    traffic_distribution: str | None = None
    internal_policy: str = "Cluster"
    external_policy: str = "Cluster"
    topology_mode: str | None = None
    node_port: int | None = None
    load_balancer_ips: tuple[str, ...] = ()

    @property
    def ref(self) -> str:
        """``namespace/name``."""
        return f"{self.namespace}/{self.name}"

    @property
    def port_ref(self) -> str:
        """kube-proxy's service port name: ``ns/name:port`` (``ns/name`` for an unnamed port)."""
        return f"{self.ref}:{self.port_name}" if self.port_name else self.ref

    @property
    def externally_accessible(self) -> bool:
        """``serviceport.go: ExternallyAccessible`` (a nodePort or a load-balancer IP)."""
        return self.node_port is not None or bool(self.load_balancer_ips)

    @property
    def uses_cluster(self) -> bool:
        """``serviceport.go: UsesClusterEndpoints``."""
        return self.internal_policy != "Local" or self.externally_accessible

    @property
    def uses_local(self) -> bool:
        """``serviceport.go: UsesLocalEndpoints``."""
        return self.internal_policy == "Local" or (self.external_policy == "Local" and self.externally_accessible)

    def settings(self) -> str:
        """The topology settings in the API's words."""
        parts = []
        if self.topology_mode:
            parts.append(f"topology-mode: {self.topology_mode}")
        if self.traffic_distribution:
            parts.append(f"trafficDistribution: {self.traffic_distribution}")
        parts.append(f"internalTrafficPolicy: {self.internal_policy}")
        if self.externally_accessible:
            parts.append(f"externalTrafficPolicy: {self.external_policy}")
        return ", ".join(parts)


@dataclass(frozen=True)
class Cluster:
    """Nodes, one Service port with its endpoints, and the client weight on each node."""

    nodes: tuple[TopoNode, ...]
    service: TopoService
    endpoints: tuple[Endpoint, ...]
    clients: Mapping[str, Fraction]  # node -> weight
    hints: HintOutcome | None = None
    notes: tuple[str, ...] = ()
    client_source: str = ""
    _ips: tuple[str, ...] = field(default=(), repr=False)

    # ----------------------------------------------------------------- views

    def node(self, name: str) -> TopoNode:
        """The node called ``name``."""
        for n in self.nodes:
            if n.name == name:
                return n
        raise InvalidArgument(f"no node {name!r} (known: {', '.join(n.name for n in self.nodes)})")

    @property
    def zones(self) -> tuple[str, ...]:
        """Zones in order of first appearance among the nodes."""
        return tuple(dict.fromkeys(n.zone or "(no zone)" for n in self.nodes))

    def zone_of(self, node: str | None) -> str:
        """The zone of a node (``"(no zone)"`` when unknown)."""
        for n in self.nodes:
            if n.name == node:
                return n.zone or "(no zone)"
        return "(no zone)"

    # ----------------------------------------------------------------- what-if

    def _rehint(self, endpoints: Sequence[Endpoint], service: TopoService | None = None,
                nodes: Sequence[TopoNode] | None = None, note: str = "") -> Cluster:  # fmt: skip
        svc = service or self.service
        nds = tuple(nodes if nodes is not None else self.nodes)
        out = reconcile_hints(endpoints, nds, topology_mode=svc.topology_mode,
                              traffic_distribution=svc.traffic_distribution)  # fmt: skip
        return replace(self, nodes=nds, service=svc, endpoints=out.endpoints, hints=out,
                       notes=self.notes + ((note,) if note else ()))  # fmt: skip

    def with_policy(self, **changes: Any) -> Cluster:
        """The same cluster with the Service's settings changed (``traffic_distribution="PreferClose"``...)."""
        return self._rehint(self.endpoints, replace(self.service, **changes))

    def lose_zone(self, zone: str) -> Cluster:
        """Every node of ``zone`` gone, with its endpoints and its clients."""
        if zone not in self.zones:
            raise InvalidArgument(f"--lose-zone: no zone {zone!r} (known: {', '.join(self.zones)})")
        gone = {n.name for n in self.nodes if n.zone == zone}
        return self._without(gone, f"zone {zone} lost ({', '.join(sorted(gone))})")

    def lose_node(self, node: str) -> Cluster:
        """One node gone, with its endpoints and its clients."""
        self.node(node)
        return self._without({node}, f"node {node} lost")

    def _without(self, gone: set[str], note: str) -> Cluster:
        nodes = [n for n in self.nodes if n.name not in gone]
        eps = [e for e in self.endpoints if e.node not in gone]
        c = self._rehint(eps, nodes=nodes, note=note)
        return replace(c, clients={k: v for k, v in self.clients.items() if k not in gone})

    def scale_in_zone(self, workload: str, zone: str, replicas: int) -> Cluster:
        """``workload`` (``deployment/NAME``) with ``replicas`` ready pods in ``zone``, the others unchanged.

        New pods are placed round-robin over the zone's nodes (by name) with made-up addresses; removed pods
        are taken from the end of the zone's list.
        """
        if zone not in self.zones:
            raise InvalidArgument(f"--scale-zone: no zone {zone!r} (known: {', '.join(self.zones)})")
        wl = _workload_ref(workload)
        known = sorted({e.workload for e in self.endpoints if e.workload})
        if wl not in known:
            raise InvalidArgument(f"--scale-zone: {workload!r} has no endpoints in {self.service.ref} "
                                  f"(its workloads: {', '.join(known) or 'none known'})")  # fmt: skip
        mine = [e for e in self.endpoints if e.workload == wl and e.zone == zone and e.ready]
        others = [e for e in self.endpoints if e not in mine]
        if replicas <= len(mine):
            eps = others + mine[:replicas]
        else:
            zone_nodes = sorted(n.name for n in self.nodes if n.zone == zone and n.ready)
            if not zone_nodes:
                raise InvalidArgument(f"--scale-zone: zone {zone} has no ready node to place pods on")
            used = set(self._ips) | {e.ip for e in self.endpoints}
            new = []
            port = mine[0].port if mine else self.endpoints[0].port
            for i in range(replicas - len(mine)):
                ip = _fresh_ip(used)
                node = zone_nodes[(len(mine) + i) % len(zone_nodes)]
                new.append(Endpoint(ip, port, f"{self.service.namespace}/{wl.split('/', 1)[1]}-new-{zone}-{i + 1}",
                                    node, zone, workload=wl))  # fmt: skip
            eps = others + mine + new
        return self._rehint(eps, note=f"{wl} scaled to {replicas} ready pod(s) in zone {zone}")

    def move_clients(self, src: str, dst: str) -> Cluster:
        """Every client of zone ``src`` moved to zone ``dst`` (spread evenly over its nodes)."""
        for z in (src, dst):
            if z not in self.zones:
                raise InvalidArgument(f"--move-clients: no zone {z!r} (known: {', '.join(self.zones)})")
        moved = sum((w for n, w in self.clients.items() if self.zone_of(n) == src), Fraction(0))
        dst_nodes = [n.name for n in self.nodes if n.zone == dst and n.ready and not n.control_plane]
        if not dst_nodes:
            raise InvalidArgument(f"--move-clients: zone {dst} has no ready worker node")
        clients = {n: w for n, w in self.clients.items() if self.zone_of(n) != src}
        for n in dst_nodes:
            clients[n] = clients.get(n, Fraction(0)) + moved / len(dst_nodes)
        return replace(self, clients=clients, notes=self.notes + (f"clients of zone {src} moved to zone {dst}",))


def _workload_ref(ref: str) -> str:
    kind, sep, name = ref.partition("/")
    if not sep:
        return f"deployment/{ref}"
    k = kind.lower()
    k = {"deploy": "deployment", "deployments": "deployment", "sts": "statefulset"}.get(k, k)
    return f"{k}/{name}"


def _is_client(pod: Any, ref: str) -> bool:
    """``ref`` (``ns/name``, ``kind/name``, ``ns/kind/name``, ``name``) names the pod or its workload."""
    parts = ref.split("/")
    kind, name = pod.workload.split("/", 1)
    if ref in (pod.ref, pod.name) or (parts[-1] != name and parts[-1] != pod.name):
        return ref in (pod.ref, pod.name)
    if len(parts) == 1:
        return True
    if len(parts) == 3:
        return parts[0] == pod.namespace and _workload_ref(f"{parts[1]}/{name}") == pod.workload
    return parts[0] == pod.namespace or _workload_ref(ref) == pod.workload


def _fresh_ip(used: set[str]) -> str:
    for i in range(1, 65000):
        ip = str(ipaddress.IPv4Address(int(ipaddress.IPv4Address("10.250.0.0")) + i))
        if ip not in used:
            used.add(ip)
            return ip
    raise InvalidArgument("no free address for a what-if pod")


def parse_client_zones(text: str | None) -> dict[str, Fraction]:
    """``"a=3,b=2,c=1"`` -> zone weights; InvalidArgument on anything else."""
    out: dict[str, Fraction] = {}
    if not text:
        return out
    for item in text.split(","):
        zone, sep, w = item.strip().partition("=")
        try:
            val = Fraction(w.strip()) if sep else None
        except (ValueError, ZeroDivisionError):
            val = None
        if not zone.strip() or val is None or val < 0:
            raise InvalidArgument(f"--client-zones expects ZONE=WEIGHT,... such as a=3,b=2,c=1, got {text!r}")
        out[zone.strip()] = out.get(zone.strip(), Fraction(0)) + val
    if not any(out.values()):
        raise InvalidArgument("--client-zones: every weight is 0")
    return out


# --------------------------------------------------------------------------- building


def _service_port(svc: Any, port: int | None) -> Any:
    if port is None:
        if len(svc.ports) != 1:
            raise InvalidArgument(f"{svc.meta.namespace}/{svc.meta.name} has "
                                  + ("no ports" if not svc.ports else "several ports; give --service NS/NAME:PORT"))
        return svc.ports[0]
    for p in svc.ports:
        if p.port == port or p.name == str(port):
            return p
    raise InvalidArgument(f"{svc.meta.namespace}/{svc.meta.name} has no port {port}")


def _target_port(index: _Index, pod: Any, sp: Any) -> int | None:
    if isinstance(sp.target_port, int):
        return sp.target_port
    w = index.pod_workloads.get((pod.namespace, pod.name))
    if w is not None:
        for name, num, _proto in w.container_ports:
            if name == sp.target_port:
                return num
    return None


def _nodes(topo: Any) -> list[TopoNode]:
    return [
        TopoNode(n.name, n.zone, n.region, n.cpu_milli, n.ready, n.control_plane,
                 any(k == "node.kubernetes.io/exclude-from-external-load-balancers" for k, _ in n.labels))
        for n in topo.nodes
    ]  # fmt: skip


class _Index:
    """The look-ups :func:`build_cluster` makes, over one set of manifests: built once, so that auditing every
    Service of a cluster costs a few look-ups per Service, not scans of its Services, Pods and slices."""

    def __init__(self, manifests: Any) -> None:
        topo = manifests.topology
        # name, and (namespace, name) -> the Services of that name, in file order
        self.services: dict[str | tuple[str, str], list[Any]] = {}
        for svc in manifests.services:
            self.services.setdefault(svc.meta.name, []).append(svc)
            self.services.setdefault((svc.meta.namespace, svc.meta.name), []).append(svc)
        self.nodes = _nodes(topo)
        self.pods = {p.ref: p for p in topo.pods}
        #: the Pods a selector picks in a namespace, in file order
        self.pods_by_label: LabelIndex[Any] = LabelIndex((p, p.namespace, dict(p.labels)) for p in topo.pods)
        self.slices: dict[tuple[str, str], list[Any]] = {}  # (namespace, Service) -> its slices, in file order
        for sl in topo.slices:
            self.slices.setdefault((sl.namespace, sl.service), []).append(sl)
        self.pod_workloads: dict[tuple[str, str], Any] = {}  # (namespace, name) -> the first Pod object
        for w in manifests.workloads:
            if w.meta.kind == "Pod":
                self.pod_workloads.setdefault((w.meta.namespace, w.meta.name), w)
        self.ips = tuple(p.ip for p in topo.pods if p.ip)


def _index(manifests: Any) -> _Index:
    """The :class:`_Index` of ``manifests``, kept with its topology (which empties it when objects are added or
    replaced: ``Manifests.extend``, ``drop_duplicates``); built again if a list's length changed otherwise."""
    topo = manifests.topology
    sizes = (len(manifests.services), len(manifests.workloads), len(topo.nodes), len(topo.pods), len(topo.slices))
    got = topo.derived.get("cluster")
    if got is None or got[0] != sizes:
        got = topo.derived["cluster"] = (sizes, _Index(manifests))
    return got[1]  # type: ignore[no-any-return]


def build_cluster(
    manifests: Any,
    service: str,
    *,
    port: int | None = None,
    client: str | None = None,
    client_zones: Mapping[str, Fraction] | None = None,
    clients_at: Mapping[str, Fraction] | None = None,
) -> Cluster:
    """The :class:`Cluster` of ``service`` (``ns/name``) in ``manifests`` (:class:`meshstat.parsers.k8s.Manifests`).

    The clients: ``clients_at`` (weight by node, as the caller found them: the audit's client pods), else
    ``client_zones`` (weight by zone, spread evenly over its ready worker nodes), else the running pods with a
    ``spec.nodeName`` that are not endpoints (of ``client``'s workload when given).

    Raises
    ------
    InvalidArgument
        The service is unknown, or the input does not say where the nodes (zones) or the clients are.
    """
    topo = manifests.topology
    index = _index(manifests)
    ns, _, name = service.rpartition("/")
    svcs = index.services.get((ns, name) if ns else name, [])
    if not svcs:
        known = ", ".join(sorted(f"{s.meta.namespace}/{s.meta.name}" for s in manifests.services)) or "none"
        raise InvalidArgument(f"no Service {service!r} in the manifests (known: {known})")
    svc = svcs[0]
    ref = f"{svc.meta.namespace}/{svc.meta.name}"
    sp = _service_port(svc, port)
    extra = topo.services.get(ref)
    node_port = next((np for pn, p, np in (extra.node_ports if extra else ()) if p == sp.port), None)
    lb_ips = extra.load_balancer_ips if extra else ()
    tsvc = TopoService(
        namespace=svc.meta.namespace, name=svc.meta.name, port_name=sp.name, port=sp.port,
        protocol=sp.protocol or "TCP", type=svc.type, cluster_ip=svc.cluster_ip or "10.96.0.1",
        traffic_distribution=extra.traffic_distribution if extra else None,
        internal_policy=(extra.internal_policy if extra else None) or "Cluster",
        external_policy=(extra.external_policy if extra else None) or "Cluster",
        topology_mode=extra.topology_mode if extra else None,
        node_port=node_port if svc.type in ("NodePort", "LoadBalancer") else None,
        load_balancer_ips=lb_ips if svc.type == "LoadBalancer" else (),
    )  # fmt: skip
    notes: list[str] = []
    nodes = list(index.nodes)
    pods = index.pods
    node_zone = {n.name: n.zone for n in nodes}
    slices = index.slices.get((svc.meta.namespace, svc.meta.name), [])
    endpoints: list[Endpoint] = []
    given_hints = False
    if slices:
        for s in slices:
            sport = next((p for p in s.ports if p.name == sp.name), s.ports[0] if len(s.ports) == 1 else None)
            if sport is None or sport.port is None:
                raise InvalidArgument(f"{s.source}:{s.line}: EndpointSlice {s.namespace}/{s.name} has no port "
                                      f"named {sp.name!r} for {ref}")  # fmt: skip
            for e in s.endpoints:
                pod = pods.get(e.target) if e.target else None
                zone = e.zone or node_zone.get(e.node or "")
                given_hints = given_hints or e.hints is not None
                endpoints.append(Endpoint(
                    ip=e.addresses[0], port=sport.port, pod=e.target, node=e.node, zone=zone,
                    ready=e.ready is not False, serving=e.serving is not False, terminating=e.terminating is True,
                    controller_ready=e.ready is True,
                    zone_hints=e.hints.for_zones if e.hints else (), node_hints=e.hints.for_nodes if e.hints else (),
                    workload=pod.workload if pod else None,
                ))  # fmt: skip
    elif svc.selector:
        for p in index.pods_by_label.select(svc.meta.namespace, svc.selector):
            cond = pod_condition(p.ready, p.terminating, p.phase, p.ip, p.has_status)
            if not p.ip or cond is None:
                continue
            tp = _target_port(index, p, sp)
            if tp is None:
                notes.append(f"pod {p.ref}: target port {sp.target_port!r} not found; left out")
                continue
            # podToEndpoint: serving is the Ready condition; publishNotReadyAddresses makes every endpoint ready
            serving = cond != "not-ready"
            ready = cond == "ready" or svc.publish_not_ready
            endpoints.append(Endpoint(p.ip, tp, p.ref, p.node, node_zone.get(p.node or ""), ready=ready,
                                      serving=serving, terminating=p.terminating, controller_ready=ready,
                                      workload=p.workload))  # fmt: skip
        notes.append(f"{ref}: no EndpointSlice in the input; endpoints taken from its Pods as the controller "
                     "lists them")  # fmt: skip
    if not endpoints:
        raise InvalidArgument(f"{ref} has no endpoints in the input (give its EndpointSlices, "
                              "kubectl get endpointslices -o yaml, or its Pods)")  # fmt: skip
    if not nodes:
        # zones only from the endpoints: one node per (node, zone) pair named in them
        pairs = {e.node: e.zone for e in endpoints if e.node}
        if not any(pairs.values()) and not any(e.zone for e in endpoints):
            raise InvalidArgument(
                "the input has no Nodes (kubectl get nodes -o yaml) and its endpoints name no zone: zones are "
                "unknown; give the Nodes with their topology.kubernetes.io/zone labels")
        nodes = [TopoNode(n, z, synthetic=True) for n, z in sorted(pairs.items())]
        notes.append("no Node objects in the input: nodes and zones taken from the EndpointSlices' nodeName and "
                     "zone (allocatable CPU unknown, so topology-mode Auto cannot allocate hints)")  # fmt: skip
    elif not any(n.zone for n in nodes):
        raise InvalidArgument("no Node in the input has a topology.kubernetes.io/zone label: zones are unknown")
    known_nodes = {n.name for n in nodes}
    # clients
    clients: dict[str, Fraction] = {}
    source = ""
    if clients_at is not None:
        clients = {n: w for n, w in clients_at.items() if n in known_nodes}
        source = "the client pods' nodes"
    elif client_zones:
        zones = {n.zone for n in nodes}
        for z, w in client_zones.items():
            zn = [n.name for n in nodes if n.zone == z and n.ready and not n.control_plane]
            if not zn:
                if z not in zones:
                    nodes.append(TopoNode(f"({z} client node)", z, synthetic=True))
                    zn = [nodes[-1].name]
            for nn in zn:
                clients[nn] = clients.get(nn, Fraction(0)) + w / len(zn)
        source = "--client-zones " + ",".join(f"{z}={w}" for z, w in client_zones.items())
    else:
        ep_pods = {e.pod for e in endpoints if e.pod}
        cands = [p for p in topo.pods if p.node and p.ref not in ep_pods and not p.host_network
                 and p.phase not in ("Succeeded", "Failed")]  # fmt: skip
        if client:
            cands = [p for p in cands if _is_client(p, client)]
            if not cands:
                raise InvalidArgument(f"--client {client!r}: no running pod of that workload with a spec.nodeName")
        for p in cands:
            if p.node in known_nodes:
                clients[p.node] = clients.get(p.node, Fraction(0)) + 1
        if not clients:
            raise InvalidArgument(
                "the input does not say where the clients run (no Pod with spec.nodeName other than the "
                f"endpoints of {ref}); give --client-zones ZONE=WEIGHT,... such as a=3,b=2,c=1")
        source = f"{int(sum(clients.values()))} client pod(s) " + (f"of {client}" if client else "(every pod that "
                                                                     f"is not an endpoint of {ref})")  # fmt: skip
    c = Cluster(tuple(nodes), tsvc, tuple(endpoints), clients, None, tuple(notes), source,
                index.ips)  # fmt: skip
    rec = reconcile_hints(c.endpoints, c.nodes, topology_mode=tsvc.topology_mode,
                          traffic_distribution=tsvc.traffic_distribution)  # fmt: skip
    if not slices:
        return replace(c, endpoints=rec.endpoints, hints=rec)
    if given_hints or rec.writer != "none":
        mine = {e.key: (e.zone_hints, e.node_hints) for e in rec.endpoints}
        theirs = {e.key: (e.zone_hints, e.node_hints) for e in c.endpoints}
        if mine != theirs:
            c = replace(c, notes=c.notes + (f"{ref}: the EndpointSlices' hints differ from what the controller "
                                            f"would write now ({rec.writer}: {rec.reason}); the slices' hints "
                                            "are used as given",))  # fmt: skip
    return replace(c, hints=HintOutcome(c.endpoints, "as given in the EndpointSlices", rec.reason, rec.allocations))

