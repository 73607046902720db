"""Where things run: Nodes, Pod placement, EndpointSlices and the Services' topology fields.

:func:`read_object` is called by :mod:`meshstat.parsers.k8s` for every object of a manifest stream that its
fast paths do not take (they take no Node, EndpointSlice or Pod; a Service through :func:`plain_service`). It
takes what topology needs and leaves the rest to :mod:`meshstat.parsers.k8s`:

* ``Node`` (core/v1): name, ``topology.kubernetes.io/zone`` and ``topology.kubernetes.io/region`` labels
  (the deprecated ``failure-domain.beta.kubernetes.io/*`` labels as a fall-back), ``status.allocatable.cpu``,
  the ``Ready`` condition and the control-plane labels the hint allocation leaves out;
* ``EndpointSlice`` (discovery.k8s.io/v1; v1beta1's ``topology`` map is read for ``zone``): the
  ``kubernetes.io/service-name`` label, ``addressType``, ``ports`` and ``endpoints[]`` with ``addresses``,
  ``conditions`` (``ready``/``serving``/``terminating``), ``nodeName``, ``zone``, ``hints.forZones`` /
  ``hints.forNodes`` and ``targetRef``;
* ``Pod`` (also read by :mod:`meshstat.parsers.k8s` as a workload): ``spec.nodeName``, ``status.podIP``,
  ``status.phase``, the ``Ready`` condition, ``metadata.deletionTimestamp`` and ``ownerReferences``;
* ``Service`` (also read by :mod:`meshstat.parsers.k8s`): ``spec.trafficDistribution``,
  ``spec.internalTrafficPolicy``, ``spec.externalTrafficPolicy``, ``spec.ports[].nodePort``,
  ``spec.healthCheckNodePort``, ``status.loadBalancer.ingress[].ip`` and the ``service.kubernetes.io/topology-mode`` annotation (and its deprecated
  ``service.kubernetes.io/topology-aware-hints`` form).

Field names follow kubernetes ``staging/src/k8s.io/api/core/v1/types.go`` (``NodeStatus``,
``PodSpec.NodeName``, ``ServiceSpec.TrafficDistribution``, ``ServiceInternalTrafficPolicy``,
``ServiceExternalTrafficPolicy``) and ``staging/src/k8s.io/api/discovery/v1/types.go`` (``Endpoint``,
``EndpointConditions``, ``EndpointHints``, ``ForZone``, ``ForNode``). Condition defaults are kept as ``None``
(unset) so that each reader applies its own default: kube-proxy reads an unset ``ready`` as true
(``pkg/proxy/endpointslicecache.go: addEndpoints``), the EndpointSlice controller as false.

:func:`plain_service` is :func:`read_object`'s reading of a Service of the common shape, with the metadata
:mod:`meshstat.parsers.k8s` has read already (None for anything else, which then comes to
:func:`read_object`).

Fields are read with the shared readers of :mod:`meshstat.parsers.fields`, so a mistake is worded as in the
other manifest kinds. This module is pure Python and does not import :mod:`meshstat.parsers.k8s` (which
imports it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from meshstat.parsers.fields import (
    TEXT,
    ManifestContext,
    field_bool,
    field_controller,
    field_list,
    field_map,
    field_str,
    field_str_map,
)
from meshstat.parsers.yaml_loader import LineDict
from meshstat.records import record

__all__ = [
    "SERVICE_NAME_LABEL",
    "ZONE_LABEL",
    "EndpointHintsIn",
    "Node",
    "PodPlacement",
    "ServiceTopology",
    "SliceEndpoint",
    "SlicePort",
    "Topology",
    "TopologyEndpointSlice",
    "parse_cpu",
    "read_object",
]

ZONE_LABEL = "topology.kubernetes.io/zone"
REGION_LABEL = "topology.kubernetes.io/region"
_OLD_ZONE = "failure-domain.beta.kubernetes.io/zone"
_OLD_REGION = "failure-domain.beta.kubernetes.io/region"
SERVICE_NAME_LABEL = "kubernetes.io/service-name"
TOPOLOGY_MODE = "service.kubernetes.io/topology-mode"
TOPOLOGY_HINTS_OLD = "service.kubernetes.io/topology-aware-hints"
_EXCLUDED = ("node-role.kubernetes.io/control-plane", "node-role.kubernetes.io/master")


@record
class Node:
    """A Node: name, zone, region, allocatable CPU (millicores), readiness, labels."""

    name: str
    zone: str | None
    region: str | None
    cpu_milli: int
    ready: bool
    labels: tuple[tuple[str, str], ...]
    source: str = ""
    line: int | None = None

    @property
    def control_plane(self) -> bool:
        """Has a label that the hint allocation leaves out (``topologycache.go: hasExcludedLabels``)."""
        return any(k in _EXCLUDED for k, _ in self.labels)


@record
class PodPlacement:
    """Where a Pod runs and whether it is ready."""

    namespace: str
    name: str
    node: str | None
    ip: str | None
    labels: tuple[tuple[str, str], ...]
    owner: tuple[str, str] | None  # (kind, name) of the controller owner
    phase: str | None
    ready: bool
    terminating: bool
    host_network: bool
    source: str = ""
    line: int | None = None
    #: whether the Pod has a ``status`` (an export of a running cluster), not a manifest to apply
    has_status: bool = False

    @property
    def ref(self) -> str:
        """``namespace/name``."""
        return f"{self.namespace}/{self.name}"

    @property
    def workload(self) -> str:
        """The owning Deployment (``ReplicaSet`` name less its pod-template-hash), StatefulSet, or the Pod."""
        if self.owner is None:
            return f"pod/{self.name}"
        kind, name = self.owner
        labels = dict(self.labels)
        h = labels.get("pod-template-hash")
        if kind == "ReplicaSet" and h and name.endswith("-" + h):
            return f"deployment/{name[: -len(h) - 1]}"
        return f"{kind.lower()}/{name}"


@record
class EndpointHintsIn:
    """``hints`` of an endpoint: zone names and node names (empty: none)."""

    for_zones: tuple[str, ...] = ()
    for_nodes: tuple[str, ...] = ()


@record
class SliceEndpoint:
    """One ``endpoints[]`` item; conditions are None when unset (each reader applies its own default)."""

    addresses: tuple[str, ...]
    ready: bool | None
    serving: bool | None
    terminating: bool | None
    node: str | None
    zone: str | None
    hints: EndpointHintsIn | None
    target: str | None  # "namespace/name" of a Pod targetRef
    line: int | None = None


@record
class SlicePort:
    """One ``ports[]`` item of an EndpointSlice."""

    name: str
    port: int | None
    protocol: str


@record
class TopologyEndpointSlice:
    """An EndpointSlice."""

    namespace: str
    name: str
    service: str | None
    address_type: str
    ports: tuple[SlicePort, ...]
    endpoints: tuple[SliceEndpoint, ...]
    source: str = ""
    line: int | None = None


@record
class ServiceTopology:
    """The topology fields of a Service (``None``: unset, the API's default applies)."""

    namespace: str
    name: str
    type: str
    traffic_distribution: str | None
    internal_policy: str | None
    external_policy: str | None
    topology_mode: str | None
    node_ports: tuple[tuple[str, int, int], ...]  # (port name, port, nodePort)
    health_check_node_port: int | None
    load_balancer_ips: tuple[str, ...] = ()
    source: str = ""
    line: int | None = None

    @property
    def ref(self) -> str:
        """``namespace/name``."""
        return f"{self.namespace}/{self.name}"


@dataclass
class Topology:
    """Everything topology-related read from a set of files."""

    nodes: list[Node] = field(default_factory=list)
    pods: list[PodPlacement] = field(default_factory=list)
    slices: list[TopologyEndpointSlice] = field(default_factory=list)
    services: dict[str, ServiceTopology] = field(default_factory=dict)
    #: indexes built from these objects and the manifests' (``meshstat.topology.cluster``), emptied when they change
    derived: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def extend(self, other: Topology) -> None:
        """Add the objects of ``other``."""
        self.derived.clear()
        self.nodes.extend(other.nodes)
        self.pods.extend(other.pods)
        self.slices.extend(other.slices)
        self.services.update(other.services)

    def drop_duplicates(self) -> None:
        """Keep the last Node of a name, Pod placement and EndpointSlice of a namespace and name."""
        self.derived.clear()
        self.nodes[:] = list({n.name: n for n in self.nodes}.values())
        self.pods[:] = list({(p.namespace, p.name): p for p in self.pods}.values())
        self.slices[:] = list({(s.namespace, s.name): s for s in self.slices}.values())

    def __bool__(self) -> bool:
        return bool(self.nodes or self.slices or any(p.node for p in self.pods))


# --------------------------------------------------------------------------- helpers


def _condition(ctx: ManifestContext, status: LineDict, kind: str, what: str) -> bool | None:
    """Whether the condition ``kind`` of ``status.conditions`` is "True" (None when it is not listed)."""
    for c in field_list(ctx, status, "conditions", what):
        if isinstance(c, dict) and c.get("type") == kind:
            return str(c.get("status")) == "True"
    return None


def parse_cpu(text: str) -> int:
    """A CPU quantity (``"4"``, ``"3920m"``, ``"0.5"``) in millicores; ValueError if it is not one."""
    t = str(text).strip()
    if t.endswith("m"):
        return int(t[:-1])
    return int(Fraction(t) * 1000)


# --------------------------------------------------------------------------- kinds


def _node(ctx: ManifestContext, doc: LineDict) -> Node:
    md = field_map(ctx, doc, "metadata", "Node")
    name = field_str(ctx, md, "name", "Node metadata")
    if not name:
        raise ctx.fail("expected Node metadata to have 'name'", doc)
    labels = field_str_map(ctx, md, "labels", "Node metadata")
    lab = dict(labels)
    status = field_map(ctx, doc, "status", "Node")
    alloc = field_map(ctx, status, "allocatable", "Node status")
    cpu = 0
    if alloc.get("cpu") is not None:
        try:
            cpu = parse_cpu(alloc["cpu"])
        except (ValueError, ZeroDivisionError):
            message = f"expected a CPU quantity such as 4 or 3920m, got {alloc['cpu']!r}"
            raise ctx.fail(message, alloc, "cpu") from None
    ready = _condition(ctx, status, "Ready", "Node status")
    return Node(
        name=name,
        zone=lab.get(ZONE_LABEL) or lab.get(_OLD_ZONE) or None,
        region=lab.get(REGION_LABEL) or lab.get(_OLD_REGION) or None,
        cpu_milli=cpu,
        ready=bool(ready),
        labels=labels,
        source=ctx.source,
        line=doc.line,
    )


def _pod(ctx: ManifestContext, doc: LineDict) -> PodPlacement:
    md = field_map(ctx, doc, "metadata", "Pod")
    spec = field_map(ctx, doc, "spec", "Pod")
    status = field_map(ctx, doc, "status", "Pod")
    owner = field_controller(ctx, md, "Pod metadata")
    hn = spec.get("hostNetwork", False)
    namespace = field_str(ctx, md, "namespace", "Pod metadata") or ctx.default_namespace
    name = field_str(ctx, md, "name", "Pod metadata") or field_str(ctx, md, "generateName", "Pod metadata")
    return PodPlacement(
        namespace=namespace,
        name=name or "",
        node=field_str(ctx, spec, "nodeName", "Pod spec"),
        ip=field_str(ctx, status, "podIP", "Pod status") or _first_pod_ip(ctx, status),
        labels=field_str_map(ctx, md, "labels", "Pod metadata"),
        owner=owner,
        phase=field_str(ctx, status, "phase", "Pod status"),
        ready=bool(_condition(ctx, status, "Ready", "Pod status")),
        terminating=md.get("deletionTimestamp") is not None,
        host_network=hn is True,
        source=ctx.source,
        line=doc.line,
        has_status=doc.get("status") is not None,
    )


def _first_pod_ip(ctx: ManifestContext, status: LineDict) -> str | None:
    """``status.podIPs[0].ip`` (a Pod may list its IPs only there)."""
    for item in field_list(ctx, status, "podIPs", "Pod status"):
        if isinstance(item, dict):
            return field_str(ctx, item, "ip", "Pod status podIPs")
    return None


def _hints(ctx: ManifestContext, ep: LineDict) -> EndpointHintsIn | None:
    if ep.get("hints") is None:
        return None
    h = field_map(ctx, ep, "hints", "an endpoint")
    out = []
    for key in ("forZones", "forNodes"):
        names = []
        for item in field_list(ctx, h, key, "endpoint hints"):
            if not isinstance(item, dict) or not isinstance(item.get("name"), str):
                raise ctx.fail(f"expected '{key}' items to be mappings with a 'name'", h, key)
            names.append(item["name"])
        out.append(tuple(names))
    return EndpointHintsIn(out[0], out[1])


def _slice(ctx: ManifestContext, doc: LineDict, api: str) -> TopologyEndpointSlice:
    md = field_map(ctx, doc, "metadata", "EndpointSlice")
    name = (field_str(ctx, md, "name", "EndpointSlice metadata")
            or field_str(ctx, md, "generateName", "metadata") or "")  # fmt: skip
    labels = dict(field_str_map(ctx, md, "labels", "EndpointSlice metadata"))
    ports = []
    for p in field_list(ctx, doc, "ports", "EndpointSlice"):
        if not isinstance(p, dict):
            raise ctx.fail("expected EndpointSlice ports to be mappings", doc, "ports")
        num = p.get("port")
        if num is not None and (isinstance(num, bool) or not isinstance(num, int) or not 1 <= num <= 65535):
            raise ctx.fail(f"expected an EndpointSlice port number in 1..65535, got {num!r}", p, "port")
        ports.append(SlicePort(field_str(ctx, p, "name", "EndpointSlice port") or "", num,
                               field_str(ctx, p, "protocol", "EndpointSlice port") or "TCP"))  # fmt: skip
    eps = []
    for ep in field_list(ctx, doc, "endpoints", "EndpointSlice"):
        if not isinstance(ep, dict):
            raise ctx.fail("expected EndpointSlice endpoints to be mappings", doc, "endpoints")
        addrs = ep.get("addresses")
        if not isinstance(addrs, list) or not addrs or not all(isinstance(a, str) for a in addrs):
            message = "expected an endpoint to have 'addresses', a list of IP addresses"
            raise ctx.fail(message, ep, "addresses")
        cond = field_map(ctx, ep, "conditions", "endpoint")
        zone = field_str(ctx, ep, "zone", "endpoint")
        node = field_str(ctx, ep, "nodeName", "endpoint")
        if api.endswith("v1beta1"):
            topo = dict(field_str_map(ctx, ep, "topology", "endpoint"))
            zone = zone or topo.get(ZONE_LABEL)
            node = node or topo.get("kubernetes.io/hostname")
        tref = field_map(ctx, ep, "targetRef", "endpoint")
        target = None
        if tref.get("kind") == "Pod" and tref.get("name"):
            ns = tref.get("namespace") or field_str(ctx, md, "namespace", "metadata") or ctx.default_namespace
            target = f"{ns}/{tref['name']}"
        eps.append(
            SliceEndpoint(
                addresses=tuple(addrs),
                ready=field_bool(ctx, cond, "ready", "endpoint conditions"),
                serving=field_bool(ctx, cond, "serving", "endpoint conditions"),
                terminating=field_bool(ctx, cond, "terminating", "endpoint conditions"),
                node=node,
                zone=zone,
                hints=_hints(ctx, ep),
                target=target,
                line=ep.line,
            )
        )
    return TopologyEndpointSlice(
        namespace=field_str(ctx, md, "namespace", "EndpointSlice metadata") or ctx.default_namespace,
        name=name,
        service=labels.get(SERVICE_NAME_LABEL),
        address_type=field_str(ctx, doc, "addressType", "EndpointSlice") or "IPv4",
        ports=tuple(ports),
        endpoints=tuple(eps),
        source=ctx.source,
        line=doc.line,
    )


_POLICIES = ("Cluster", "Local")
#: The ``internalTrafficPolicy`` and ``externalTrafficPolicy`` that :func:`plain_service` takes as they are
_NO_POLICY = (None, *_POLICIES)


def _service(ctx: ManifestContext, doc: LineDict) -> ServiceTopology:
    md = field_map(ctx, doc, "metadata", "Service")
    spec = field_map(ctx, doc, "spec", "Service")
    ann = dict(field_str_map(ctx, md, "annotations", "Service metadata"))
    pol = {}
    for key in ("internalTrafficPolicy", "externalTrafficPolicy"):
        v = field_str(ctx, spec, key, "Service spec")
        if v is not None and v not in _POLICIES:
            raise ctx.fail(f"expected '{key}' to be Cluster or Local, got {v!r}", spec, key)
        pol[key] = v
    node_ports = _node_ports(field_list(ctx, spec, "ports", "Service spec"))
    hc = spec.get("healthCheckNodePort")
    lb = field_map(ctx, field_map(ctx, doc, "status", "Service"), "loadBalancer", "Service status")
    lb_ips = _lb_ips(field_list(ctx, lb, "ingress", "Service status.loadBalancer"))
    mode = ann.get(TOPOLOGY_HINTS_OLD, ann.get(TOPOLOGY_MODE))
    return ServiceTopology(
        namespace=field_str(ctx, md, "namespace", "Service metadata") or ctx.default_namespace,
        name=field_str(ctx, md, "name", "Service metadata") or "",
        type=field_str(ctx, spec, "type", "Service spec") or "ClusterIP",
        traffic_distribution=field_str(ctx, spec, "trafficDistribution", "Service spec"),
        internal_policy=pol["internalTrafficPolicy"],
        external_policy=pol["externalTrafficPolicy"],
        topology_mode=mode,
        node_ports=node_ports,
        health_check_node_port=_node_port(hc),
        load_balancer_ips=lb_ips,
        source=ctx.source,
        line=doc.line,
    )


def _node_ports(ports: list[Any]) -> tuple[tuple[str, int, int], ...]:
    """``(name, port, nodePort)`` of the ``ports`` entries that have both numbers."""
    return tuple((str(p.get("name") or ""), p["port"], p["nodePort"]) for p in ports
                 if isinstance(p, dict) and isinstance(p.get("nodePort"), int)
                 and isinstance(p.get("port"), int))


def _lb_ips(ingress: list[Any]) -> tuple[str, ...]:
    """The ``ip`` of each ``status.loadBalancer.ingress`` entry that has one."""
    return tuple(str(i["ip"]) for i in ingress if isinstance(i, dict) and i.get("ip"))


def _node_port(hc: Any) -> int | None:
    """``healthCheckNodePort`` when it is a number."""
    return hc if isinstance(hc, int) and not isinstance(hc, bool) else None


def plain_service(ctx: ManifestContext, doc: LineDict, spec: LineDict, namespace: str, name: str,
                  annotations: tuple[tuple[str, str], ...]) -> ServiceTopology | None:  # fmt: skip
    """:func:`_service`'s common case, read directly (:mod:`meshstat.parsers.k8s` reads a Service's
    metadata once for both): ``namespace``, ``name`` and ``annotations`` are what ``metadata`` holds, text as
    it is. None where anything else is unusual, for :func:`_service` to read the object and say what is wrong.
    """
    internal, external = spec.get("internalTrafficPolicy"), spec.get("externalTrafficPolicy")
    ports, kind, dist = spec.get("ports"), spec.get("type"), spec.get("trafficDistribution")
    status = doc.get("status")
    lb = status.get("loadBalancer") if isinstance(status, dict) else None
    ingress = lb.get("ingress") if isinstance(lb, dict) else None
    if (type(internal) not in TEXT or internal not in _NO_POLICY or type(external) not in TEXT
            or external not in _NO_POLICY or type(kind) not in TEXT or type(dist) not in TEXT
            or not isinstance(ports, list | None) or not isinstance(status, dict | None)
            or not isinstance(lb, dict | None) or not isinstance(ingress, list | None)):
        return None
    ann = dict(annotations)
    return ServiceTopology(namespace, name, kind or "ClusterIP", dist, internal, external,
                           ann.get(TOPOLOGY_HINTS_OLD, ann.get(TOPOLOGY_MODE)), _node_ports(ports or ()),
                           _node_port(spec.get("healthCheckNodePort")), _lb_ips(ingress) if ingress else (),
                           ctx.source, doc.line)


def read_object(ctx: ManifestContext, doc: LineDict, kind: str, group: str, api: str, into: Topology) -> bool:
    """Take the topology of one object into ``into``; True when the object is topology's alone (Node, slice).

    Pods and Services return False: :mod:`meshstat.parsers.k8s` reads them too.
    """
    if kind == "Node" and group == "":
        into.nodes.append(_node(ctx, doc))
        return True
    if kind == "EndpointSlice" and group == "discovery.k8s.io":
        into.slices.append(_slice(ctx, doc, api))
        return True
    if kind == "Pod" and group == "":
        into.pods.append(_pod(ctx, doc))
    elif kind == "Service" and group == "":
        svc = _service(ctx, doc)
        into.services[svc.ref] = svc
    return False
