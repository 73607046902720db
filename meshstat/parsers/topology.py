"""Where things run: Nodes, Pod placement, EndpointSlices and the Services' topology fields.

:func:`read_object` is called by :mod:`meshstat.parsers.k8s` for every object of a manifest stream. It
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

This module is pure Python and does not import :mod:`meshstat.parsers.k8s` (which imports it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from meshstat.errors import ConfigParseError
from meshstat.parsers.yaml_loader import LineDict, LineList

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


@dataclass(frozen=True, slots=True)
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


@dataclass(frozen=True, slots=True)
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


@dataclass(frozen=True, slots=True)
class EndpointHintsIn:
    """``hints`` of an endpoint: zone names and node names (empty: none)."""

    for_zones: tuple[str, ...] = ()
    for_nodes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
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


@dataclass(frozen=True, slots=True)
class SlicePort:
    """One ``ports[]`` item of an EndpointSlice."""

    name: str
    port: int | None
    protocol: str


@dataclass(frozen=True, slots=True)
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


@dataclass(frozen=True, slots=True)
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

    def extend(self, other: Topology) -> None:
        """Add the objects of ``other``."""
        self.nodes.extend(other.nodes)
        self.pods.extend(other.pods)
        self.slices.extend(other.slices)
        self.services.update(other.services)

    def __bool__(self) -> bool:
        return bool(self.nodes or self.slices or any(p.node for p in self.pods))


# --------------------------------------------------------------------------- helpers


def _fail(source: str, obj: Any, what: str, key: str | None = None) -> ConfigParseError:
    line = None
    if isinstance(obj, LineDict):
        line = obj.line_of(key) if key else obj.line
    elif isinstance(obj, LineList):
        line = obj.line
    return ConfigParseError(what, source=source, line=line)


def _map(src: str, obj: LineDict, key: str, what: str) -> LineDict:
    v = obj.get(key)
    if v is None:
        return LineDict()
    if not isinstance(v, dict):
        raise _fail(src, obj, f"expected '{key}' of {what} to be a mapping", key)
    return v


def _list(src: str, obj: LineDict, key: str, what: str) -> list[Any]:
    v = obj.get(key)
    if v is None:
        return []
    if not isinstance(v, list):
        raise _fail(src, obj, f"expected '{key}' of {what} to be a list", key)
    return v


def _str(src: str, obj: LineDict, key: str, what: str) -> str | None:
    v = obj.get(key)
    if v is None:
        return None
    if isinstance(v, (dict, list, bool)):
        raise _fail(src, obj, f"expected '{key}' of {what} to be a string", key)
    return str(v)


def _bool(src: str, obj: LineDict, key: str, what: str) -> bool | None:
    v = obj.get(key)
    if v is None:
        return None
    if not isinstance(v, bool):
        raise _fail(src, obj, f"expected '{key}' of {what} to be true or false", key)
    return v


def _labels(src: str, md: LineDict, key: str, what: str) -> tuple[tuple[str, str], ...]:
    m = _map(src, md, key, what)
    return tuple((str(k), "" if v is None else str(v)) for k, v in m.items())


def _condition(src: str, status: LineDict, kind: str, what: str) -> bool | None:
    for c in _list(src, status, "conditions", what):
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


def _node(src: str, doc: LineDict) -> Node:
    md = _map(src, doc, "metadata", "Node")
    name = _str(src, md, "name", "Node metadata")
    if not name:
        raise _fail(src, doc, "expected Node metadata to have 'name'")
    labels = _labels(src, md, "labels", "Node metadata")
    lab = dict(labels)
    status = _map(src, doc, "status", "Node")
    alloc = _map(src, status, "allocatable", "Node status")
    cpu = 0
    if alloc.get("cpu") is not None:
        try:
            cpu = parse_cpu(alloc["cpu"])
        except (ValueError, ZeroDivisionError):
            raise _fail(src, alloc, f"expected a CPU quantity such as 4 or 3920m, got {alloc['cpu']!r}", "cpu") from None
    ready = _condition(src, status, "Ready", "Node status")
    return Node(
        name=name,
        zone=lab.get(ZONE_LABEL) or lab.get(_OLD_ZONE) or None,
        region=lab.get(REGION_LABEL) or lab.get(_OLD_REGION) or None,
        cpu_milli=cpu,
        ready=bool(ready),
        labels=labels,
        source=src,
        line=doc.line,
    )


def _pod(src: str, doc: LineDict, default_ns: str) -> PodPlacement:
    md = _map(src, doc, "metadata", "Pod")
    spec = _map(src, doc, "spec", "Pod")
    status = _map(src, doc, "status", "Pod")
    owner = None
    for o in _list(src, md, "ownerReferences", "Pod metadata"):
        if isinstance(o, dict) and (o.get("controller") is True or owner is None):
            owner = (str(o.get("kind") or ""), str(o.get("name") or ""))
    hn = spec.get("hostNetwork", False)
    return PodPlacement(
        namespace=_str(src, md, "namespace", "Pod metadata") or default_ns,
        name=_str(src, md, "name", "Pod metadata") or _str(src, md, "generateName", "Pod metadata") or "",
        node=_str(src, spec, "nodeName", "Pod spec"),
        ip=_str(src, status, "podIP", "Pod status"),
        labels=_labels(src, md, "labels", "Pod metadata"),
        owner=owner,
        phase=_str(src, status, "phase", "Pod status"),
        ready=bool(_condition(src, status, "Ready", "Pod status")),
        terminating=md.get("deletionTimestamp") is not None,
        host_network=hn is True,
        source=src,
        line=doc.line,
    )


def _hints(src: str, ep: LineDict) -> EndpointHintsIn | None:
    h = ep.get("hints")
    if h is None:
        return None
    if not isinstance(h, dict):
        raise _fail(src, ep, "expected 'hints' of an endpoint to be a mapping", "hints")
    out = []
    for key in ("forZones", "forNodes"):
        names = []
        for item in _list(src, h, key, "endpoint hints"):
            if not isinstance(item, dict) or not isinstance(item.get("name"), str):
                raise _fail(src, h, f"expected '{key}' items to be mappings with a 'name'", key)
            names.append(item["name"])
        out.append(tuple(names))
    return EndpointHintsIn(out[0], out[1])


def _slice(src: str, doc: LineDict, default_ns: str, api: str) -> TopologyEndpointSlice:
    md = _map(src, doc, "metadata", "EndpointSlice")
    name = _str(src, md, "name", "EndpointSlice metadata") or _str(src, md, "generateName", "metadata") or ""
    labels = dict(_labels(src, md, "labels", "EndpointSlice metadata"))
    ports = []
    for p in _list(src, doc, "ports", "EndpointSlice"):
        if not isinstance(p, dict):
            raise _fail(src, doc, "expected EndpointSlice ports to be mappings", "ports")
        num = p.get("port")
        if num is not None and (isinstance(num, bool) or not isinstance(num, int) or not 1 <= num <= 65535):
            raise _fail(src, p, f"expected an EndpointSlice port number in 1..65535, got {num!r}", "port")
        ports.append(SlicePort(_str(src, p, "name", "EndpointSlice port") or "", num,
                               _str(src, p, "protocol", "EndpointSlice port") or "TCP"))  # fmt: skip
    eps = []
    for ep in _list(src, doc, "endpoints", "EndpointSlice"):
        if not isinstance(ep, dict):
            raise _fail(src, doc, "expected EndpointSlice endpoints to be mappings", "endpoints")
        addrs = ep.get("addresses")
        if not isinstance(addrs, list) or not addrs or not all(isinstance(a, str) for a in addrs):
            raise _fail(src, ep, "expected an endpoint to have 'addresses', a list of IP addresses", "addresses")
        cond = _map(src, ep, "conditions", "endpoint")
        zone = _str(src, ep, "zone", "endpoint")
        node = _str(src, ep, "nodeName", "endpoint")
        if api.endswith("v1beta1"):
            topo = dict(_labels(src, ep, "topology", "endpoint"))
            zone = zone or topo.get(ZONE_LABEL)
            node = node or topo.get("kubernetes.io/hostname")
        tref = _map(src, ep, "targetRef", "endpoint")
        target = None
        if tref.get("kind") == "Pod" and tref.get("name"):
            target = f"{tref.get('namespace') or _str(src, md, 'namespace', 'metadata') or default_ns}/{tref['name']}"
        eps.append(
            SliceEndpoint(
                addresses=tuple(addrs),
                ready=_bool(src, cond, "ready", "endpoint conditions"),
                serving=_bool(src, cond, "serving", "endpoint conditions"),
                terminating=_bool(src, cond, "terminating", "endpoint conditions"),
                node=node,
                zone=zone,
                hints=_hints(src, ep),
                target=target,
                line=ep.line,
            )
        )
    return TopologyEndpointSlice(
        namespace=_str(src, md, "namespace", "EndpointSlice metadata") or default_ns,
        name=name,
        service=labels.get(SERVICE_NAME_LABEL),
        address_type=_str(src, doc, "addressType", "EndpointSlice") or "IPv4",
        ports=tuple(ports),
        endpoints=tuple(eps),
        source=src,
        line=doc.line,
    )


_POLICIES = ("Cluster", "Local")


def _service(src: str, doc: LineDict, default_ns: str) -> ServiceTopology:
    md = _map(src, doc, "metadata", "Service")
    spec = _map(src, doc, "spec", "Service")
    ann = dict(_labels(src, md, "annotations", "Service metadata"))
    pol = {}
    for key in ("internalTrafficPolicy", "externalTrafficPolicy"):
        v = _str(src, spec, key, "Service spec")
        if v is not None and v not in _POLICIES:
            raise _fail(src, spec, f"expected '{key}' to be Cluster or Local, got {v!r}", key)
        pol[key] = v
    node_ports = []
    for p in _list(src, spec, "ports", "Service spec"):
        if isinstance(p, dict) and isinstance(p.get("nodePort"), int) and isinstance(p.get("port"), int):
            node_ports.append((str(p.get("name") or ""), p["port"], p["nodePort"]))
    hc = spec.get("healthCheckNodePort")
    lb = _map(src, _map(src, doc, "status", "Service"), "loadBalancer", "Service status")
    lb_ips = tuple(str(i["ip"]) for i in _list(src, lb, "ingress", "Service status.loadBalancer")
                   if isinstance(i, dict) and i.get("ip"))  # fmt: skip
    mode = ann.get(TOPOLOGY_HINTS_OLD, ann.get(TOPOLOGY_MODE))
    return ServiceTopology(
        namespace=_str(src, md, "namespace", "Service metadata") or default_ns,
        name=_str(src, md, "name", "Service metadata") or "",
        type=_str(src, spec, "type", "Service spec") or "ClusterIP",
        traffic_distribution=_str(src, spec, "trafficDistribution", "Service spec"),
        internal_policy=pol["internalTrafficPolicy"],
        external_policy=pol["externalTrafficPolicy"],
        topology_mode=mode,
        node_ports=tuple(node_ports),
        health_check_node_port=hc if isinstance(hc, int) and not isinstance(hc, bool) else None,
        load_balancer_ips=lb_ips,
        source=src,
        line=doc.line,
    )


def read_object(doc: LineDict, kind: str, group: str, api: str, source: str, default_namespace: str,
                into: Topology) -> bool:  # fmt: skip
    """Take the topology of one object into ``into``; True when the object is topology's alone (Node, slice).

    Pods and Services return False: :mod:`meshstat.parsers.k8s` reads them too.
    """
    if kind == "Node" and group == "":
        into.nodes.append(_node(source, doc))
        return True
    if kind == "EndpointSlice" and group == "discovery.k8s.io":
        into.slices.append(_slice(source, doc, default_namespace, api))
        return True
    if kind == "Pod" and group == "":
        into.pods.append(_pod(source, doc, default_namespace))
    elif kind == "Service" and group == "":
        svc = _service(source, doc, default_namespace)
        into.services[svc.ref] = svc
    return False
