"""Kubernetes and Istio YAML manifests: files, directories, multi-document streams, ``kind: List``.

Reads what users apply (``kubectl apply -f``) or print (``kubectl get -o yaml``, which wraps
objects in ``kind: List``) and keeps, for every object, the file and line it came from.

Supported kinds (everything else is ignored with a note):

* core: ``Namespace``, ``Pod``, ``Service``; apps: ``Deployment``, ``StatefulSet``,
  ``ReplicaSet`` (replicas, pod template labels and annotations, ``hostNetwork``,
  container port names);
* ``networking.istio.io`` (v1, v1beta1, v1alpha3): ``VirtualService`` (hosts, gateways,
  exportTo, ``http`` routes with ``match`` and weighted ``route`` destinations, ``tcp``
  routes), ``DestinationRule`` (``trafficPolicy.loadBalancer``, ``portLevelSettings``,
  ``subsets`` with labels and their own traffic policy; ``localityLbSetting`` and whether
  ``outlierDetection`` is set: :mod:`meshstat.parsers.istio_locality`), ``ServiceEntry`` (hosts, ports,
  static endpoints with labels, weights, localities);
* Gateway API routes, Gateways, GatewayClasses, ReferenceGrants and Istio's ``Gateway``: read by
  :mod:`meshstat.parsers.gateway_api` through :data:`KIND_CONVERTERS`.
* topology (:mod:`meshstat.parsers.topology`, kept in ``Manifests.topology``): ``Node``,
  ``discovery.k8s.io`` ``EndpointSlice``, Pods' placement and Services' ``trafficDistribution``, traffic
  policies and topology annotation.

Field meanings follow the upstream API definitions: kubernetes ``staging/src/k8s.io/api/
core/v1/types.go`` (``ServicePort``, ``PodSpec``) and istio/api ``networking/v1alpha3/
virtual_service.proto``, ``destination_rule.proto``, ``service_entry.proto``.

Safety: YAML is read by :mod:`meshstat.parsers.yaml_loader`, with PyYAML's *safe* loader
only (a subclass that records line numbers), each file is limited by the input size bound of
:mod:`meshstat.inputs` (64 MiB unless raised with ``--max-input-size``), alias expansion is
bounded by :data:`MAX_EXPANDED_NODES` (a "billion laughs" document is refused before it is
walked), nesting deeper than Python's recursion allows is refused, and a key repeated in one
mapping is an error (as with kubectl).
Malformed input raises :class:`meshstat.errors.ConfigParseError` with ``file:line``.

This module is pure Python (standard library and PyYAML).

Why this module is long: one converter per kind (workloads, Services, VirtualService,
DestinationRule, ServiceEntry), each checking the shape of its fields with the file and line of
what does not fit through the typed field readers of :mod:`meshstat.parsers.fields` (``field_map``,
``field_str``, ``field_int`` ...), and beside the converters of the kinds a cluster holds by the
thousand (workloads, Services, VirtualServices, DestinationRules) a short fast path for their common
shape, which leaves every object it does not take as it is to the checked converter (the section "fast
paths of the common shapes": the 50,100 objects of the JSON audit's 10,000-Service cluster take 0.51-0.55 s
where the checked converters alone took 0.78-0.81 s on the 2-core benchmark machine, ``python3
benchmarks/scale.py convert 10000 100``); the kinds of other families live in their own modules
(:mod:`~meshstat.parsers.gateway_api`, :mod:`~meshstat.parsers.istio_scope`,
:mod:`~meshstat.parsers.topology`).
"""

from __future__ import annotations

import operator
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from meshstat.errors import ConfigParseError, InvalidArgument
from meshstat.inputs import (
    DEFAULT_MAX_INPUT_BYTES,
    SIZE_FLAG,
    ascii_digits,
    current_max_input_size,
    format_size,
    is_readable_kind,
    read_text,
    source_name,
)
from meshstat.outputs import file_kind
from meshstat.parsers import topology as _topology
from meshstat.parsers.fields import (
    TEXT,
    ManifestContext,
    field_bool,
    field_controller,
    field_int,
    field_list,
    field_map,
    field_str,
    field_str_list,
    field_str_map,
    str_list,
    str_pairs,
    type_name,
)
from meshstat.parsers.istio_locality import TrafficLocality, read_traffic_locality
from meshstat.parsers.regex import istio_regex_problem
from meshstat.parsers.yaml_loader import (
    MAX_EXPANDED_NODES,
    LineDict,
    ListCut,
    gc_paused,
    json_list_cut,
    yaml_documents,
)
from meshstat.records import record
from meshstat.workers import Stream, jobs, stream

__all__ = [
    "KIND_CONVERTERS",
    "MAX_EXPANDED_NODES",
    "MAX_FILE_BYTES",
    "DestinationRule",
    "Diagnostic",
    "HTTPMatch",
    "HTTPRoute",
    "Manifests",
    "Meta",
    "Namespace",
    "RouteDestination",
    "SEEndpoint",
    "Service",
    "ServiceEntry",
    "ServicePort",
    "Subset",
    "TCPRoute",
    "VirtualService",
    "WorkloadResource",
    "load_manifests",
    "parse_manifest_text",
]

#: Default bound on a manifest file (bytes); the bound in force is
#: :func:`meshstat.inputs.current_max_input_size` (``--max-input-size``).
MAX_FILE_BYTES = DEFAULT_MAX_INPUT_BYTES

_ISTIO_GROUP = "networking.istio.io"
_MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")


# --------------------------------------------------------------------------- diagnostics


@record
class Diagnostic:
    """A warning or note about the input, with the file and line of the object.

    Parameters
    ----------
    level : {"warning", "note"}
        Warnings change the answer (503s, ignored rules); notes explain a choice.
    message : str
        What the user needs to know.
    source : str, optional
        File name.
    line : int, optional
        1-based line of the object (or field).
    """

    level: str
    message: str
    source: str | None = None
    line: int | None = None

    def __str__(self) -> str:
        where = ""
        if self.source:
            where = self.source + (f":{self.line}" if self.line is not None else "") + ": "
        return f"{where}{self.level}: {self.message}"


# --------------------------------------------------------------------------- objects


@record
class Meta:
    """``apiVersion``, ``kind`` and ``metadata`` of an object, plus where it was read."""

    kind: str
    api_version: str
    name: str
    namespace: str
    labels: tuple[tuple[str, str], ...]
    annotations: tuple[tuple[str, str], ...]
    source: str
    line: int
    namespace_given: bool = True
    #: ``namespace/name`` (made once: every client list of a cluster names it)
    ref: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        _META_REF(self, f"{self.namespace}/{self.name}")

    @property
    def where(self) -> str:
        """``file:line``."""
        return f"{self.source}:{self.line}"


#: Sets the frozen record's ``ref`` slot, as its ``__init__`` sets the others (:mod:`meshstat.records`).
_META_REF = Meta.__dict__["ref"].__set__


@record
class Namespace:
    """A ``Namespace`` and its labels (``istio-injection``, ``istio.io/rev``)."""

    meta: Meta

    @property
    def labels(self) -> dict[str, str]:  # noqa: D102
        return dict(self.meta.labels)


@record
class WorkloadResource:
    """A Deployment, StatefulSet, ReplicaSet or Pod: what its pods look like.

    Attributes
    ----------
    replicas : int
        ``spec.replicas`` (default 1); 1 for a Pod.
    pod_labels, pod_annotations : tuple of (str, str)
        The pod template's ``metadata`` (for a Pod, its own metadata).
    host_network : bool
        ``spec.hostNetwork`` of the pod.
    container_ports : tuple of (name, port, protocol)
        Every ``containers[].ports[]`` (for named ``targetPort`` lookups).
    pod_ip : str or None
        ``status.podIP`` of a Pod, when the manifest has one.
    replicas_line : int or None
        The line of ``spec.replicas``.
    owner : (kind, name) or None
        The controller among ``metadata.ownerReferences`` (:func:`~meshstat.parsers.fields.field_controller`):
        the ReplicaSet of a Deployment's Pod, the Deployment of a ReplicaSet.
    """

    meta: Meta
    replicas: int
    pod_labels: tuple[tuple[str, str], ...]
    pod_annotations: tuple[tuple[str, str], ...]
    host_network: bool
    container_ports: tuple[tuple[str, int, str], ...]
    pod_ip: str | None = None
    replicas_line: int | None = None
    owner: tuple[str, str] | None = None
    _labels: dict[str, str] | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def labels(self) -> dict[str, str]:
        """Pod labels as a dict, made on first use and kept (an audit asks for every Service): read it, do not
        change it."""
        got = self._labels
        if got is None:
            got = dict(self.pod_labels)
            object.__setattr__(self, "_labels", got)
        return got


@record
class ServicePort:
    """One entry of ``Service.spec.ports`` (or of a ServiceEntry's ``spec.ports``).

    ``protocol`` is the Kubernetes port's L4 protocol (``TCP`` when absent, ``UDP``, ``SCTP``) when
    ``l4`` is true, a ServiceEntry port's Istio protocol (``HTTP``, ``TCP``...) otherwise.
    """

    name: str
    port: int
    target_port: int | str
    protocol: str
    app_protocol: str | None
    line: int
    l4: bool = False


@record
class Service:
    """A Kubernetes ``Service``."""

    meta: Meta
    type: str
    cluster_ip: str | None
    selector: tuple[tuple[str, str], ...] | None
    ports: tuple[ServicePort, ...]
    external_name: str | None = None
    #: ``spec.publishNotReadyAddresses``: every pod the selector picks is a ready endpoint
    publish_not_ready: bool = False

    def port(self, number: int) -> ServicePort | None:
        """The service port ``number``, if declared."""
        for p in self.ports:
            if p.port == number:
                return p
        return None


@record
class RouteDestination:
    """A ``route[]`` entry of an HTTP or TCP route: destination and weight."""

    host: str
    subset: str | None
    port: int | None
    weight: int | None
    line: int


@record
class HTTPMatch:
    """One ``HTTPMatchRequest`` (all its conditions must hold)."""

    uri: tuple[str, str] | None  # (exact|prefix|regex, value); a regex is RE2, matched whole
    headers: tuple[tuple[str, str, str], ...]  # (name, exact|prefix|regex|present, value)
    without_headers: tuple[tuple[str, str, str], ...]
    method: tuple[str, str] | None
    authority: tuple[str, str] | None
    port: int | None
    source_labels: tuple[tuple[str, str], ...]
    source_namespace: str | None
    gateways: tuple[str, ...]
    ignore_uri_case: bool
    unsupported: tuple[str, ...]
    line: int
    query_params: tuple[tuple[str, str, str], ...] = ()  # (name, exact|prefix|regex|present, value)


@record
class HTTPRoute:
    """One ``http[]`` rule of a VirtualService."""

    name: str | None
    matches: tuple[HTTPMatch, ...]
    destinations: tuple[RouteDestination, ...]
    terminal: str | None  # "redirect", "directResponse", "delegate" when there is no route
    extras: tuple[str, ...]  # fault.delay, mirror, retries... present but not modelled
    line: int
    index: int
    #: ``fault.abort``: (the share of requests the proxy answers itself, in millionths; the answer), see
    #: :func:`_fault_abort`
    abort: tuple[int, str] | None = None


@record
class TCPRoute:
    """One ``tcp[]`` rule of a VirtualService."""

    ports: tuple[int, ...]
    source_labels: tuple[tuple[str, str], ...]
    destinations: tuple[RouteDestination, ...]
    line: int
    index: int


@record
class VirtualService:
    """An Istio ``VirtualService``."""

    meta: Meta
    hosts: tuple[str, ...]
    gateways: tuple[str, ...]
    export_to: tuple[str, ...]
    http: tuple[HTTPRoute, ...]
    tcp: tuple[TCPRoute, ...]
    has_tls: bool

    @property
    def applies_to_sidecars(self) -> bool:
        """``gateways`` empty or containing ``mesh`` (istio/api virtual_service.proto: ``gateways``)."""
        return not self.gateways or "mesh" in self.gateways


@record
class Subset:
    """A DestinationRule subset: a label filter over the host's endpoints."""

    name: str
    labels: tuple[tuple[str, str], ...]
    lb_policy: str | None
    line: int
    locality: TrafficLocality | None = None


@record
class DestinationRule:
    """An Istio ``DestinationRule``."""

    meta: Meta
    host: str
    lb_policy: str | None
    port_lb_policies: tuple[tuple[int, str], ...]
    subsets: tuple[Subset, ...]
    export_to: tuple[str, ...]
    has_outlier_detection: bool
    locality: TrafficLocality | None = None
    port_locality: tuple[tuple[int, TrafficLocality], ...] = ()

    def subset(self, name: str) -> Subset | None:
        """The subset called ``name``."""
        for s in self.subsets:
            if s.name == name:
                return s
        return None


@record
class SEEndpoint:
    """A static endpoint of a ServiceEntry (``WorkloadEntry`` inline)."""

    address: str
    ports: tuple[tuple[str, int], ...]
    labels: tuple[tuple[str, str], ...]
    weight: int
    locality: str | None
    line: int


@record
class ServiceEntry:
    """An Istio ``ServiceEntry`` (hosts, ports, static endpoints)."""

    meta: Meta
    hosts: tuple[str, ...]
    ports: tuple[ServicePort, ...]
    resolution: str
    endpoints: tuple[SEEndpoint, ...]
    has_workload_selector: bool
    export_to: tuple[str, ...] = ()  # spec.exportTo (empty: MeshConfig defaultServiceExportTo)


#: What names an object apart from its API group (:func:`last_applied`), read in C.
_META, _KIND_REF = operator.attrgetter("meta"), operator.attrgetter("kind", "namespace", "name")


def last_applied(objs: Sequence[Any]) -> tuple[list[Any], list[tuple[Any, Any]]]:
    """The objects (each with a ``meta``) that ``kubectl apply`` in their order leaves, in order, and the
    ``(earlier, later)`` pairs of one API group, kind, namespace and name (the later one replaces the
    earlier).

    Objects of distinct kind, namespace and name (the common case: one export) are found so first, by a set
    built in C (:data:`_KIND_REF`): ``Manifests.drop_duplicates`` of the 50,000 objects of 10,000 Services
    took 33-39 ms so, 45-53 ms with the look-up below (``python3 benchmarks/scale.py dups 10000 100``)."""
    if len(set(map(_KIND_REF, map(_META, objs)))) == len(objs):
        return list(objs), []
    last: dict[tuple[str, str, str, str], int] = {}
    pairs = []
    for i, o in enumerate(objs):
        m = o.meta
        key = (m.api_version.rpartition("/")[0], m.kind, m.namespace, m.name)
        if key in last:
            pairs.append((objs[last[key]], o))
        last[key] = i
    if not pairs:
        return list(objs), []
    keep = set(last.values())
    return [o for i, o in enumerate(objs) if i in keep], pairs


@dataclass
class Manifests:
    """Everything read from a set of files, in file order."""

    namespaces: dict[str, Namespace] = field(default_factory=dict)
    workloads: list[WorkloadResource] = field(default_factory=list)
    services: list[Service] = field(default_factory=list)
    virtual_services: list[VirtualService] = field(default_factory=list)
    destination_rules: list[DestinationRule] = field(default_factory=list)
    service_entries: list[ServiceEntry] = field(default_factory=list)
    diagnostics: list[Diagnostic] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)
    ignored: list[Meta] = field(default_factory=list)
    #: the documents of ``ignored``, for readers of kinds this module does not parse (``parsers.istio_scope``)
    unparsed: list[tuple[Meta, Any]] = field(default_factory=list)
    #: Objects of the kinds in :data:`KIND_CONVERTERS` (Gateway API, Istio Gateway), in file order.
    gateway_objects: list[Any] = field(default_factory=list)
    #: Nodes, Pod placement, EndpointSlices and Services' topology fields (:mod:`meshstat.parsers.topology`)
    topology: _topology.Topology = field(default_factory=_topology.Topology)
    #: ``(earlier, later)`` objects of one API group, kind, namespace and name (:meth:`drop_duplicates`)
    replaced: list[tuple[Any, Any]] = field(default_factory=list)

    def extend(self, other: Manifests) -> None:
        """Add the objects of ``other`` (namespaces by name, the rest in order)."""
        self.namespaces.update(other.namespaces)
        self.workloads.extend(other.workloads)
        self.services.extend(other.services)
        self.virtual_services.extend(other.virtual_services)
        self.destination_rules.extend(other.destination_rules)
        self.service_entries.extend(other.service_entries)
        self.diagnostics.extend(other.diagnostics)
        self.sources.extend(other.sources)
        self.ignored.extend(other.ignored)
        self.unparsed.extend(other.unparsed)
        self.gateway_objects.extend(other.gateway_objects)
        self.topology.extend(other.topology)
        self.replaced.extend(other.replaced)

    def drop_duplicates(self) -> None:
        """Keep the last of the objects given twice (:func:`last_applied`), as ``kubectl apply`` of the files
        in order leaves it, with one warning per kind (the first three named); the pairs go to :attr:`replaced`.

        ``-f manifests/ -f export.yaml`` names most objects twice: each pod would count twice. Namespaces and
        Services' topology fields are kept by name already (the last one); Nodes, Pods' placement and
        EndpointSlices are kept by name as the objects are. Gateway API objects and Istio Gateways are warned
        of by the routes they change (``mesh.gateway_api.replaced_warnings``).
        """
        twice: dict[str, list[tuple[Any, Any]]] = {}
        for objs in (self.workloads, self.services, self.virtual_services, self.destination_rules,
                     self.service_entries, self.gateway_objects):
            kept, pairs = last_applied(objs)
            if pairs:
                objs[:] = kept
                self.replaced.extend(pairs)
                if objs is not self.gateway_objects:
                    for a, b in pairs:
                        twice.setdefault(b.meta.kind, []).append((a, b))
        self.topology.drop_duplicates()
        for kind, found in twice.items():
            times: dict[str, list[Any]] = {}  # ref -> [count, the object used]
            for _, b in found:
                t = times.setdefault(b.meta.ref, [1, b])
                t[0] += 1
                t[1] = b
            shown = ", ".join(f"{ref} ({n} times)" for ref, (n, _) in list(times.items())[:3])
            more = f" and {len(times) - 3:,} more" if len(times) > 3 else ""
            used = next(iter(times.values()))[1].meta
            self.diagnostics.append(Diagnostic(
                "warning", f"{kind} objects given more than once: {shown}{more}; the last of each is used (this "
                "one for the first), as kubectl apply of the files in order leaves it", used.source, used.line))

    def workload(self, ref: str) -> WorkloadResource:
        """Find a workload by ``ns/name``, ``kind/name`` or ``name`` (unique)."""
        ns, _, name = ref.rpartition("/")
        cands = [w for w in self.workloads if w.meta.name == name]
        if ns:
            by_ns = [w for w in cands if w.meta.namespace == ns]
            by_kind = [w for w in cands if w.meta.kind.lower() in (ns.lower(), _KIND_ALIASES.get(ns.lower()))]
            cands = by_ns or by_kind
        if not cands:
            known = ", ".join(sorted(w.meta.ref for w in self.workloads)) or "none"
            raise InvalidArgument(f"no workload {ref!r} in the manifests (known: {known})")
        if len(cands) > 1:
            raise InvalidArgument(
                f"{ref!r} is ambiguous: {', '.join(w.meta.ref for w in cands)}; use namespace/name"
            )
        return cands[0]


_KIND_ALIASES = {
    "deploy": "deployment",
    "deployment": "deployment",
    "deployments": "deployment",
    "sts": "statefulset",
    "statefulset": "statefulset",
    "rs": "replicaset",
    "po": "pod",
    "pod": "pod",
}


# --------------------------------------------------------------------------- field helpers (shared: parsers.fields)


def _port_value(ctx: ManifestContext, obj: Any, key: str, what: str) -> int | str | None:
    val = obj.get(key) if isinstance(obj, dict) else None
    if val is None:
        return None
    if isinstance(val, bool):
        raise ctx.fail(f"expected '{key}' of {what} to be a port number or name", obj, key, val)
    if isinstance(val, int):
        if not 0 < val < 65536:
            raise ctx.fail(f"expected '{key}' of {what} to be a port in [1, 65535], got {val}", obj, key, val)
        return val
    text = str(val)
    return int(text) if ascii_digits(text) else text


# --------------------------------------------------------------------------- conversion


def read_meta(ctx: ManifestContext, doc: LineDict, kind: str) -> Meta:
    """``apiVersion``, ``kind`` and ``metadata`` of ``doc``. The common case is read directly
    (:func:`_plain_meta`); anything else takes :func:`_read_meta`, which checks each field and says what is
    wrong.
    """
    meta = _plain_meta(ctx, doc, kind)
    return _read_meta(ctx, doc, kind) if meta is None else meta


def _plain_meta(ctx: ManifestContext, doc: LineDict, kind: str) -> Meta | None:
    """:func:`_read_meta`'s common case (a text name, a text namespace or none, labels and annotations of text
    or none) read directly; None for anything else.
    """
    md = doc.get("metadata")
    if isinstance(md, dict):
        name, ns = md.get("name"), md.get("namespace")
        if type(name) is str and type(ns) in TEXT:
            labels, notes = str_pairs(md.get("labels")), str_pairs(md.get("annotations"))
            if labels is not None and notes is not None:
                return Meta(kind, str(doc.get("apiVersion") or ""), name, ns or ctx.default_namespace, labels,
                            notes, ctx.source, doc.line, ns is not None)
    return None


def _read_meta(ctx: ManifestContext, doc: LineDict, kind: str) -> Meta:
    md = field_map(ctx, doc, "metadata", kind)
    name = field_str(ctx, md, "name", f"{kind} metadata")
    if name is None:
        name = field_str(ctx, md, "generateName", f"{kind} metadata")
        if name is None:
            raise ctx.fail(f"expected {kind} metadata to have 'name'", doc)
    ns = field_str(ctx, md, "namespace", f"{kind} metadata")
    return Meta(
        kind=kind,
        api_version=str(doc.get("apiVersion") or ""),
        name=name,
        namespace=ns or ctx.default_namespace,
        labels=field_str_map(ctx, md, "labels", f"{kind} metadata"),
        annotations=field_str_map(ctx, md, "annotations", f"{kind} metadata"),
        source=ctx.source,
        line=doc.line,
        namespace_given=ns is not None,
    )


def _container_ports(ctx: ManifestContext, spec: LineDict, what: str) -> tuple[tuple[str, int, str], ...]:
    out = []
    for key in ("containers", "initContainers"):
        for c in field_list(ctx, spec, key, what):
            if not isinstance(c, dict):
                raise ctx.fail(f"expected '{key}' of {what} to be a list of containers", spec, key, c)
            for p in field_list(ctx, c, "ports", "container"):
                if not isinstance(p, dict):
                    raise ctx.fail("expected container ports to be mappings", c, "ports", p)
                num = field_int(ctx, p, "containerPort", "container port", lo=1, hi=65535)
                if num is None:
                    raise ctx.fail("expected a container port to have 'containerPort'", p)
                out.append((field_str(ctx, p, "name", "container port") or "", num, field_str(ctx, p, "protocol", "port") or "TCP"))
    return tuple(out)


def _workload(ctx: ManifestContext, doc: LineDict, kind: str) -> WorkloadResource:
    meta = read_meta(ctx, doc, kind)
    spec = field_map(ctx, doc, "spec", kind)
    if kind == "Pod":
        pod_meta, pod_spec = field_map(ctx, doc, "metadata", kind), spec
        replicas, rline = 1, None
        status = field_map(ctx, doc, "status", kind)
        pod_ip = field_str(ctx, status, "podIP", "Pod status")
    else:
        replicas = field_int(ctx, spec, "replicas", f"{kind} spec", default=1, hi=2**31 - 1)
        rline = spec.line_of("replicas") if "replicas" in spec else None
        tmpl = field_map(ctx, spec, "template", f"{kind} spec", required=True)
        pod_meta = field_map(ctx, tmpl, "metadata", f"{kind} pod template")
        pod_spec = field_map(ctx, tmpl, "spec", f"{kind} pod template")
        pod_ip = None
    host_network = pod_spec.get("hostNetwork", False)
    if not isinstance(host_network, bool):
        raise ctx.fail("expected 'hostNetwork' to be true or false", pod_spec, "hostNetwork", host_network)
    return WorkloadResource(
        meta=meta,
        replicas=int(replicas or 0),
        pod_labels=field_str_map(ctx, pod_meta, "labels", f"{kind} pod template metadata"),
        pod_annotations=field_str_map(ctx, pod_meta, "annotations", f"{kind} pod template metadata"),
        host_network=host_network,
        container_ports=_container_ports(ctx, pod_spec, f"{kind} pod spec"),
        pod_ip=pod_ip,
        replicas_line=rline,
        owner=field_controller(ctx, field_map(ctx, doc, "metadata", kind), f"{kind} metadata"),
    )


def _service_ports(ctx: ManifestContext, spec: LineDict, what: str, *, k8s: bool) -> tuple[ServicePort, ...]:
    out = []
    for p in field_list(ctx, spec, "ports", what):
        if not isinstance(p, dict):
            raise ctx.fail(f"expected the ports of {what} to be mappings", spec, "ports", p)
        key = "port" if k8s else "number"
        num = field_int(ctx, p, key, f"{what} port", lo=1, hi=65535)
        if num is None:
            raise ctx.fail(f"expected a {what} port to have '{key}'", p)
        target = _port_value(ctx, p, "targetPort", f"{what} port")
        out.append(
            ServicePort(
                name=field_str(ctx, p, "name", f"{what} port") or "",
                port=num,
                target_port=num if target is None else target,
                protocol=(field_str(ctx, p, "protocol", f"{what} port") or ("TCP" if k8s else "")),
                app_protocol=field_str(ctx, p, "appProtocol", f"{what} port"),
                line=p.line,
                l4=k8s,
            )
        )
    return tuple(out)


def _service(ctx: ManifestContext, doc: LineDict) -> Service:
    meta = read_meta(ctx, doc, "Service")
    spec = field_map(ctx, doc, "spec", "Service")
    sel = spec.get("selector")
    selector = field_str_map(ctx, spec, "selector", "Service spec") if sel is not None else None
    return Service(
        meta=meta,
        type=field_str(ctx, spec, "type", "Service spec") or "ClusterIP",
        cluster_ip=field_str(ctx, spec, "clusterIP", "Service spec"),
        selector=selector,
        ports=_service_ports(ctx, spec, "Service", k8s=True),
        external_name=field_str(ctx, spec, "externalName", "Service spec"),
        publish_not_ready=bool(field_bool(ctx, spec, "publishNotReadyAddresses", "Service spec")),
    )


def _string_match(ctx: ManifestContext, obj: Any, what: str) -> tuple[str, str]:
    if not isinstance(obj, dict) or len(obj) != 1:
        raise ctx.fail(f"expected {what} to be a StringMatch with one of exact, prefix, regex", obj)
    (kind, value), = obj.items()
    if kind not in ("exact", "prefix", "regex"):
        raise ctx.fail(f"expected {what} to use exact, prefix or regex, got {kind!r}", obj, kind)
    text = "" if value is None else str(value)
    if kind == "regex":
        # istiod hands the string to Envoy's RE2 unchanged; its validation refuses what RE2 cannot compile
        problem = istio_regex_problem(text)
        if problem is not None:
            shown = repr(text) if len(text) <= 60 else repr(text[:57] + "...")
            raise ctx.fail(f"{what} regex {shown}: expected an RE2 regular expression (Istio and Envoy match "
                           f"with RE2); {problem}", obj, kind)
    return kind, text


def _destinations(ctx: ManifestContext, rule: LineDict, what: str) -> tuple[RouteDestination, ...]:
    out = []
    for r in field_list(ctx, rule, "route", what):
        if not isinstance(r, dict):
            raise ctx.fail(f"expected the route of {what} to be a list of destinations", rule, "route", r)
        dest = field_map(ctx, r, "destination", f"{what} route", required=True)
        host = field_str(ctx, dest, "host", "destination", required=True)
        port_m = field_map(ctx, dest, "port", "destination")
        port = field_int(ctx, port_m, "number", "destination port", lo=1, hi=65535) if port_m else None
        weight = field_int(ctx, r, "weight", "route destination", lo=-(2**31), hi=2**31 - 1)
        if weight is not None and weight < 0:
            raise ctx.fail(f"weight {weight} < 0 (Istio validation rejects negative weights)", r, "weight", weight)
        out.append(
            RouteDestination(
                host=host or "",
                subset=field_str(ctx, dest, "subset", "destination"),
                port=port,
                weight=weight,
                line=r.line_of("weight") if "weight" in r else r.line,
            )
        )
    return tuple(out)


_HTTP_EXTRAS = ("fault", "mirror", "mirrors", "retries", "timeout", "rewrite", "corsPolicy", "headers")


def _fault_abort(ctx: ManifestContext, rule: LineDict) -> tuple[int, str] | None:
    """``fault.abort`` of an http rule: (the share of requests aborted, in millionths; the answer), or None.

    Istio gives Envoy's fault filter ``percentage.value`` as ``uint32(value * 10000)`` per million
    (``pilot/pkg/networking/core/route/route.go``: ``translatePercentToFractionalPercent``, which
    truncates); an abort without ``percentage`` aborts nothing (istio/api#2522: the unset field is 0,
    whatever older documents said). The answer is ``httpStatus`` (200-599, as Istio's validation
    asks) or ``grpcStatus``; ``TranslateFault`` builds no abort from anything else (an abort without
    either aborts nothing), and Istio's validation refuses ``http2Error`` ("HTTP/2 abort fault
    injection not supported yet").
    """
    fault = field_map(ctx, rule, "fault", "http rule")
    if fault.get("abort") is None:
        return None
    abort = field_map(ctx, fault, "abort", "fault")
    pct = field_map(ctx, abort, "percentage", "fault abort")
    value = pct.get("value", 0)
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 100:
        raise ctx.fail("expected 'value' of fault abort percentage to be a number in [0, 100]", pct, "value", value)
    if abort.get("httpStatus") is not None:
        answer = str(field_int(ctx, abort, "httpStatus", "fault abort", lo=200, hi=599))
    elif abort.get("grpcStatus") is not None:
        answer = f"grpc {field_str(ctx, abort, 'grpcStatus', 'fault abort')}"
    elif abort.get("http2Error") is not None:
        raise ctx.fail("expected fault abort to have 'httpStatus' or 'grpcStatus' (Istio's validation refuses "
                       "'http2Error': HTTP/2 abort fault injection is not supported)", abort, "http2Error")
    else:
        return None  # istiod builds no abort
    return int(value * 10000), answer


def _http_routes(ctx: ManifestContext, spec: LineDict) -> tuple[HTTPRoute, ...]:
    out = []
    for i, rule in enumerate(field_list(ctx, spec, "http", "VirtualService spec")):
        if not isinstance(rule, dict):
            raise ctx.fail("expected 'http' of a VirtualService to be a list of rules", spec, "http", rule)
        matches = []
        for m in field_list(ctx, rule, "match", "http rule"):
            if not isinstance(m, dict):
                raise ctx.fail("expected 'match' entries to be mappings", rule, "match", m)
            uri = _string_match(ctx, m["uri"], "uri") if m.get("uri") is not None else None
            headers = tuple(
                (str(k).lower(), *(_string_match(ctx, v, f"header {k}") if v else ("present", "")))
                for k, v in field_map(ctx, m, "headers", "match").items()
            )
            without = tuple(
                (str(k).lower(), *(_string_match(ctx, v, f"header {k}") if v else ("present", "")))
                for k, v in field_map(ctx, m, "withoutHeaders", "match").items()
            )
            method = _string_match(ctx, m["method"], "method") if m.get("method") is not None else None
            authority = _string_match(ctx, m["authority"], "authority") if m.get("authority") is not None else None
            query = tuple(
                (str(k), *(_string_match(ctx, v, f"query parameter {k}") if v else ("present", "")))
                for k, v in field_map(ctx, m, "queryParams", "match").items()
            )
            unsupported = tuple(k for k in ("scheme", "statPrefix") if m.get(k) is not None)
            matches.append(
                HTTPMatch(
                    uri=uri,
                    headers=headers,
                    without_headers=without,
                    method=method,
                    authority=authority,
                    port=field_int(ctx, m, "port", "match", lo=1, hi=65535),
                    source_labels=field_str_map(ctx, m, "sourceLabels", "match"),
                    source_namespace=field_str(ctx, m, "sourceNamespace", "match"),
                    gateways=field_str_list(ctx, m, "gateways", "match"),
                    ignore_uri_case=bool(m.get("ignoreUriCase", False)),
                    unsupported=unsupported,
                    line=m.line,
                    query_params=query,
                )
            )
        terminal = next((k for k in ("redirect", "directResponse", "delegate") if rule.get(k) is not None), None)
        abort = _fault_abort(ctx, rule)
        extras = [k for k in _HTTP_EXTRAS if rule.get(k) is not None]
        if "fault" in extras:  # an abort is modelled; a delay changes when requests arrive, not where
            extras[extras.index("fault")] = "fault.delay"
            if rule["fault"].get("delay") is None:
                extras.remove("fault.delay")
        out.append(
            HTTPRoute(
                name=field_str(ctx, rule, "name", "http rule"),
                matches=tuple(matches),
                destinations=_destinations(ctx, rule, "http rule"),
                terminal=terminal,
                extras=tuple(extras),
                line=rule.line,
                index=i,
                abort=abort,
            )
        )
    return tuple(out)


def _tcp_routes(ctx: ManifestContext, spec: LineDict) -> tuple[TCPRoute, ...]:
    out = []
    for i, rule in enumerate(field_list(ctx, spec, "tcp", "VirtualService spec")):
        if not isinstance(rule, dict):
            raise ctx.fail("expected 'tcp' of a VirtualService to be a list of rules", spec, "tcp", rule)
        ports, labels = [], ()
        for m in field_list(ctx, rule, "match", "tcp rule"):
            if not isinstance(m, dict):
                raise ctx.fail("expected 'match' entries to be mappings", rule, "match", m)
            p = field_int(ctx, m, "port", "tcp match", lo=1, hi=65535)
            if p is not None:
                ports.append(p)
            labels = labels or field_str_map(ctx, m, "sourceLabels", "tcp match")
        out.append(
            TCPRoute(
                ports=tuple(ports),
                source_labels=labels,
                destinations=_destinations(ctx, rule, "tcp rule"),
                line=rule.line,
                index=i,
            )
        )
    return tuple(out)


def _virtual_service(ctx: ManifestContext, doc: LineDict) -> VirtualService:
    meta = read_meta(ctx, doc, "VirtualService")
    spec = field_map(ctx, doc, "spec", "VirtualService", required=True)
    hosts = field_str_list(ctx, spec, "hosts", "VirtualService spec")
    if not hosts:
        raise ctx.fail("expected a VirtualService to have at least one entry in 'hosts'", spec)
    return VirtualService(
        meta=meta,
        hosts=hosts,
        gateways=field_str_list(ctx, spec, "gateways", "VirtualService spec"),
        export_to=field_str_list(ctx, spec, "exportTo", "VirtualService spec"),
        http=_http_routes(ctx, spec),
        tcp=_tcp_routes(ctx, spec),
        has_tls=bool(spec.get("tls")),
    )


def _lb_policy(ctx: ManifestContext, tp: Any, what: str) -> str | None:
    if not isinstance(tp, dict):
        return None
    lb = field_map(ctx, tp, "loadBalancer", what)
    if not lb:
        return None
    simple = field_str(ctx, lb, "simple", "loadBalancer")
    if simple is not None:
        simple = simple.upper()
        mapping = {
            "ROUND_ROBIN": "ROUND_ROBIN",
            "LEAST_REQUEST": "LEAST_REQUEST",
            "LEAST_CONN": "LEAST_REQUEST",  # deprecated alias (istio applyLoadBalancer)
            "RANDOM": "RANDOM",
            "PASSTHROUGH": "CLUSTER_PROVIDED",
            "UNSPECIFIED": None,
        }
        if simple not in mapping:
            raise ctx.fail(f"unknown loadBalancer.simple {simple!r}", lb, "simple", simple)
        return mapping[simple]
    ch = lb.get("consistentHash")
    if isinstance(ch, dict):
        return "MAGLEV" if ch.get("maglev") is not None else "RING_HASH"
    return None


def _destination_rule(ctx: ManifestContext, doc: LineDict) -> DestinationRule:
    meta = read_meta(ctx, doc, "DestinationRule")
    spec = field_map(ctx, doc, "spec", "DestinationRule", required=True)
    host = field_str(ctx, spec, "host", "DestinationRule spec", required=True)
    tp = field_map(ctx, spec, "trafficPolicy", "DestinationRule spec")
    port_pols = []
    port_loc = []
    for pl in field_list(ctx, tp, "portLevelSettings", "trafficPolicy"):
        if isinstance(pl, dict):
            pnum = field_int(ctx, field_map(ctx, pl, "port", "portLevelSettings"), "number", "port", lo=1, hi=65535)
            pol = _lb_policy(ctx, pl, "portLevelSettings")
            if pnum is not None and pol is not None:
                port_pols.append((pnum, pol))
            ploc = read_traffic_locality(ctx, pl)
            if pnum is not None and ploc is not None:
                port_loc.append((pnum, ploc))
    subsets = []
    for s in field_list(ctx, spec, "subsets", "DestinationRule spec"):
        if not isinstance(s, dict):
            raise ctx.fail("expected 'subsets' to be a list of mappings", spec, "subsets", s)
        subsets.append(
            Subset(
                name=field_str(ctx, s, "name", "subset", required=True) or "",
                labels=field_str_map(ctx, s, "labels", "subset"),
                lb_policy=_lb_policy(ctx, s.get("trafficPolicy"), "subset trafficPolicy"),
                line=s.line,
                locality=read_traffic_locality(ctx, s.get("trafficPolicy")),
            )
        )
    return DestinationRule(
        meta=meta,
        host=host or "",
        lb_policy=_lb_policy(ctx, tp, "trafficPolicy"),
        port_lb_policies=tuple(port_pols),
        subsets=tuple(subsets),
        export_to=field_str_list(ctx, spec, "exportTo", "DestinationRule spec"),
        has_outlier_detection=bool(tp.get("outlierDetection")),
        locality=read_traffic_locality(ctx, tp),
        port_locality=tuple(port_loc),
    )


def _service_entry(ctx: ManifestContext, doc: LineDict) -> ServiceEntry:
    meta = read_meta(ctx, doc, "ServiceEntry")
    spec = field_map(ctx, doc, "spec", "ServiceEntry", required=True)
    eps = []
    for e in field_list(ctx, spec, "endpoints", "ServiceEntry spec"):
        if not isinstance(e, dict):
            raise ctx.fail("expected 'endpoints' to be a list of mappings", spec, "endpoints", e)
        ports = tuple(
            (str(k), int(v)) for k, v in field_map(ctx, e, "ports", "endpoint").items() if isinstance(v, int)
        )
        eps.append(
            SEEndpoint(
                address=field_str(ctx, e, "address", "endpoint") or "",
                ports=ports,
                labels=field_str_map(ctx, e, "labels", "endpoint"),
                weight=field_int(ctx, e, "weight", "endpoint", default=0, hi=2**32 - 1) or 1,
                locality=field_str(ctx, e, "locality", "endpoint"),
                line=e.line,
            )
        )
    return ServiceEntry(
        meta=meta,
        hosts=field_str_list(ctx, spec, "hosts", "ServiceEntry spec"),
        ports=_service_ports(ctx, spec, "ServiceEntry", k8s=False),
        resolution=field_str(ctx, spec, "resolution", "ServiceEntry spec") or "NONE",
        endpoints=tuple(eps),
        has_workload_selector=spec.get("workloadSelector") is not None,
        export_to=field_str_list(ctx, spec, "exportTo", "ServiceEntry spec"),
    )


# --------------------------------------------------------------------------- fast paths of the common shapes
#
# A cluster's objects are nearly all of one shape, the one kubectl writes: a ``_plain_*`` reader takes that
# shape of its kind as it is (``type(v) is str``, ``d.get(...)``, no field readers, no messages made in
# advance) and returns False, having changed nothing, the moment anything is unusual: a value of another type,
# a missing required field, a text that the checked reader would convert, a field it does not read. The
# object is then read by the checked converter above, so that every error, its line and every result of an
# unusual shape come from one place. A ``_plain_*`` reader calls a checked reader only once every field that
# the checked converter reads before it has been found well-formed: the error it raises is the one the
# checked converter raises first. tests/parsers/test_convert_fast.py compares the two on every sample
# manifest and on mutations of each kind.


def _plain_workload(ctx: ManifestContext, doc: LineDict, kind: str, out: Manifests) -> bool:
    """:func:`_workload` of a Deployment, StatefulSet or ReplicaSet of the common shape."""
    meta, spec = _plain_meta(ctx, doc, kind), doc.get("spec")
    if meta is None or not isinstance(spec, dict):
        return False
    replicas, tmpl = spec.get("replicas", 1), spec.get("template")
    if type(replicas) is not int or not 0 <= replicas <= 2**31 - 1 or not isinstance(tmpl, dict):
        return False
    pod_meta, pod_spec = tmpl.get("metadata"), tmpl.get("spec")
    if not isinstance(pod_meta, dict) or not isinstance(pod_spec, dict):
        return False
    labels, notes = str_pairs(pod_meta.get("labels")), str_pairs(pod_meta.get("annotations"))
    host_network, ports = pod_spec.get("hostNetwork", False), _plain_container_ports(pod_spec)
    if labels is None or notes is None or type(host_network) is not bool or ports is None:
        return False
    md = doc["metadata"]
    owner = None if md.get("ownerReferences") is None else field_controller(ctx, md, f"{kind} metadata")
    rline = spec.line_of("replicas") if "replicas" in spec else None
    out.workloads.append(
        WorkloadResource(meta, replicas, labels, notes, host_network, ports, None, rline, owner))
    return True


def _plain_container_ports(spec: LineDict) -> tuple[tuple[str, int, str], ...] | None:
    """:func:`_container_ports` when every container and port is well-formed; None otherwise."""
    out = []
    for key in ("containers", "initContainers"):
        containers = spec.get(key)
        if not isinstance(containers, list | None):
            return None
        for c in containers or ():
            ports = c.get("ports") if isinstance(c, dict) else False
            if not isinstance(ports, list | None):
                return None
            for p in ports or ():
                if not isinstance(p, dict):
                    return None
                num, name, proto = p.get("containerPort"), p.get("name"), p.get("protocol")
                if (type(num) is not int or not 0 < num < 65536 or type(name) not in TEXT
                        or type(proto) not in TEXT):
                    return None
                out.append((name or "", num, proto or "TCP"))
    return tuple(out)


def _plain_service(ctx: ManifestContext, doc: LineDict, kind: str, out: Manifests) -> bool:
    """:func:`_service` and topology's reading of a Service of the common shape, its metadata read once for
    both (:func:`meshstat.parsers.topology.plain_service`)."""
    meta, spec = _plain_meta(ctx, doc, kind), doc.get("spec")
    if meta is None or not isinstance(spec, dict):
        return False
    topo = _topology.plain_service(ctx, doc, spec, meta.namespace, meta.name, meta.annotations)
    sel, ip, external = spec.get("selector"), spec.get("clusterIP"), spec.get("externalName")
    selector, ready = None if sel is None else str_pairs(sel), spec.get("publishNotReadyAddresses")
    ports = _plain_service_ports(spec.get("ports"))
    if (topo is None or (selector is None and sel is not None) or type(ip) not in TEXT or ports is None
            or type(external) not in TEXT or not isinstance(ready, bool | None)):
        return False
    out.topology.services[topo.ref] = topo
    out.services.append(Service(meta, topo.type, ip, selector, ports, external, bool(ready)))
    return True


def _plain_service_ports(ports: Any) -> tuple[ServicePort, ...] | None:
    """:func:`_service_ports` of a Service when every port is well-formed (its target a number or a name);
    None otherwise."""
    if not isinstance(ports, list | None):
        return None
    out = []
    for p in ports or ():
        if not isinstance(p, dict):
            return None
        num, name, proto, app = p.get("port"), p.get("name"), p.get("protocol"), p.get("appProtocol")
        target = p.get("targetPort", num)
        named = type(target) is str and not ascii_digits(target)
        if (type(num) is not int or not 0 < num < 65536 or type(name) not in TEXT or type(proto) not in TEXT
                or type(app) not in TEXT or not (named or (type(target) is int and 0 < target < 65536))):
            return None
        out.append(ServicePort(name or "", num, target, proto or "TCP", app, p.line, True))
    return tuple(out)


def _plain_virtual_service(ctx: ManifestContext, doc: LineDict, kind: str, out: Manifests) -> bool:
    """:func:`_virtual_service` of the common shape: hosts, and http rules that route without conditions."""
    meta, spec = _plain_meta(ctx, doc, kind), doc.get("spec")
    if meta is None or not isinstance(spec, dict):
        return False
    hosts, gateways = str_list(spec.get("hosts")), str_list(spec.get("gateways"))
    export_to, http = str_list(spec.get("exportTo")), _plain_http_routes(spec.get("http"))
    if not hosts or gateways is None or export_to is None or http is None:
        return False
    tcp = () if spec.get("tcp") is None else _tcp_routes(ctx, spec)
    out.virtual_services.append(
        VirtualService(meta, hosts, gateways, export_to, http, tcp, bool(spec.get("tls"))))
    return True


#: The keys of an http rule that :func:`_plain_http_routes` takes: what :func:`_http_routes` reads of a rule
#: without match conditions, redirect, direct response, delegate or fault
_PLAIN_HTTP_KEYS = frozenset(("name", "route", *_HTTP_EXTRAS)) - {"fault"}
_ROUTE_KEYS = frozenset(("name", "route"))


def _plain_http_routes(rules: Any) -> tuple[HTTPRoute, ...] | None:
    """:func:`_http_routes` when every rule is of the common shape; None otherwise."""
    if not isinstance(rules, list | None):
        return None
    out = []
    for i, rule in enumerate(rules or ()):
        if not isinstance(rule, dict) or not rule.keys() <= _PLAIN_HTTP_KEYS:
            return None
        name, dests = rule.get("name"), _plain_destinations(rule.get("route"))
        if type(name) not in TEXT or dests is None:
            return None
        extras = ()
        if not rule.keys() <= _ROUTE_KEYS:
            extras = tuple(k for k in _HTTP_EXTRAS if rule.get(k) is not None)
        out.append(HTTPRoute(name, (), dests, None, extras, rule.line, i))
    return tuple(out)


def _plain_destinations(route: Any) -> tuple[RouteDestination, ...] | None:
    """:func:`_destinations` when every destination is well-formed; None otherwise."""
    if not isinstance(route, list | None):
        return None
    out = []
    for r in route or ():
        dest = r.get("destination") if isinstance(r, dict) else None
        if not isinstance(dest, dict):
            return None
        host, subset, port, weight = dest.get("host"), dest.get("subset"), dest.get("port"), r.get("weight")
        number = port.get("number") if isinstance(port, dict) else None
        if (type(host) is not str or type(subset) not in TEXT
                or not (port is None or (type(number) is int and 0 < number < 65536))
                or not (weight is None or (type(weight) is int and 0 <= weight <= 2**31 - 1))):
            return None
        line = r.line_of("weight") if "weight" in r else r.line
        out.append(RouteDestination(host, subset, number, weight, line))
    return tuple(out)


def _plain_destination_rule(ctx: ManifestContext, doc: LineDict, kind: str, out: Manifests) -> bool:
    """:func:`_destination_rule` of the common shape: no port-level settings, subsets with text labels."""
    meta, spec = _plain_meta(ctx, doc, kind), doc.get("spec")
    if meta is None or not isinstance(spec, dict):
        return False
    host, tp, export_to = spec.get("host"), spec.get("trafficPolicy"), str_list(spec.get("exportTo"))
    if (type(host) is not str or export_to is None or not isinstance(tp, dict | None)
            or (tp is None and "trafficPolicy" in spec) or (tp is not None and "portLevelSettings" in tp)):
        return False
    subsets = _plain_subsets(ctx, spec.get("subsets"))
    if subsets is None:
        return False
    if tp is None:  # what _destination_rule reads of the empty policy that field_map gives (the spec's line)
        lb, outlier, locality = None, False, TrafficLocality(line=spec.line)
    else:
        lb = _lb_policy(ctx, tp, "trafficPolicy")
        outlier, locality = bool(tp.get("outlierDetection")), read_traffic_locality(ctx, tp)
    out.destination_rules.append(DestinationRule(meta, host, lb, (), subsets, export_to, outlier, locality))
    return True


def _plain_subsets(ctx: ManifestContext, subsets: Any) -> tuple[Subset, ...] | None:
    """The subsets of :func:`_destination_rule`, each a mapping with a text name and text labels; None
    otherwise."""
    if not isinstance(subsets, list | None):
        return None
    out = []
    for s in subsets or ():
        if not isinstance(s, dict):
            return None
        name, labels, tp = s.get("name"), str_pairs(s.get("labels")), s.get("trafficPolicy")
        if type(name) is not str or labels is None:
            return None
        if tp is None:
            out.append(Subset(name, labels, None, s.line))
        else:
            out.append(Subset(name, labels, _lb_policy(ctx, tp, "subset trafficPolicy"), s.line,
                              read_traffic_locality(ctx, tp)))
    return tuple(out)


#: The fast paths of :func:`_convert`, ``(group, kind) -> reader(ctx, doc, kind, out)``: True when the reader
#: took the object, False when the checked converter is to read it
_PLAIN_READERS: dict[tuple[str, str], Callable[[ManifestContext, LineDict, str, Manifests], bool]] = {
    **{(group, kind): _plain_workload
       for group in ("apps", "extensions") for kind in ("Deployment", "StatefulSet", "ReplicaSet")},
    ("", "Service"): _plain_service,
    (_ISTIO_GROUP, "VirtualService"): _plain_virtual_service,
    (_ISTIO_GROUP, "DestinationRule"): _plain_destination_rule,
}


#: Converters other parser modules add for their kinds, ``(group, kind) -> fn(ctx, doc, manifests)``:
#: :mod:`meshstat.parsers.gateway_api` (imported with :mod:`meshstat.parsers`) adds the Gateway API kinds
#: and Istio's ``Gateway``; they append to :attr:`Manifests.gateway_objects`.
KIND_CONVERTERS: dict[tuple[str, str], Callable[[ManifestContext, Any, Manifests], None]] = {}


def _convert(ctx: ManifestContext, doc: Any, out: Manifests, *, depth: int = 0) -> None:
    if doc is None:
        return
    if not isinstance(doc, dict):
        line = getattr(doc, "line", None)
        raise ConfigParseError(
            f"expected a Kubernetes object (a mapping with apiVersion and kind), got {type_name(doc)}",
            source=ctx.source,
            line=line,
        )
    kind = doc.get("kind")
    if not isinstance(kind, str) or not kind:
        raise ctx.fail("expected a Kubernetes object with a 'kind'", doc)
    api = str(doc.get("apiVersion") or "")
    group = api.split("/")[0] if "/" in api else ""
    plain = _PLAIN_READERS.get((group, kind))
    if plain is not None and plain(ctx, doc, kind, out):
        return
    if kind == "List" or (kind.endswith("List") and isinstance(doc.get("items"), list)):
        if depth > 2:
            raise ctx.fail("List nested too deeply", doc)
        for item in field_list(ctx, doc, "items", kind):
            _convert(ctx, item, out, depth=depth + 1)
        return
    if _topology.read_object(ctx, doc, kind, group, api, out.topology):
        return
    if kind == "Namespace" and group == "":
        meta = read_meta(ctx, doc, kind)
        meta = Meta(meta.kind, meta.api_version, meta.name, meta.name, meta.labels, meta.annotations,
                    meta.source, meta.line)
        out.namespaces[meta.name] = Namespace(meta)
    elif kind in ("Deployment", "StatefulSet", "ReplicaSet") and group in ("apps", "extensions"):
        out.workloads.append(_workload(ctx, doc, kind))
    elif kind == "Pod" and group == "":
        out.workloads.append(_workload(ctx, doc, kind))
    elif kind == "Service" and group == "":
        out.services.append(_service(ctx, doc))
    elif group == _ISTIO_GROUP and kind == "VirtualService":
        out.virtual_services.append(_virtual_service(ctx, doc))
    elif group == _ISTIO_GROUP and kind == "DestinationRule":
        out.destination_rules.append(_destination_rule(ctx, doc))
    elif group == _ISTIO_GROUP and kind == "ServiceEntry":
        out.service_entries.append(_service_entry(ctx, doc))
    elif (group, kind) in KIND_CONVERTERS:
        KIND_CONVERTERS[(group, kind)](ctx, doc, out)
    else:
        meta = read_meta(ctx, doc, kind)
        out.ignored.append(meta)
        out.unparsed.append((meta, doc))
        out.diagnostics.append(
            Diagnostic("note", f"ignored {kind} {meta.ref} ({api or 'no apiVersion'}): not modelled", ctx.source, doc.line)
        )


def parse_manifest_text(text: str, source: str = "<input>", *, default_namespace: str = "default") -> Manifests:
    """Parse one YAML (or JSON) text with any number of documents.

    Parameters
    ----------
    text : str
        Manifest text.
    source : str
        File name used in errors and provenance.
    default_namespace : str
        Namespace of objects without ``metadata.namespace`` (``kubectl apply`` without ``-n``).

    Raises
    ------
    ConfigParseError
        Malformed YAML, a document that is not an object, or a field of the wrong type.
    """
    limit = current_max_input_size()
    if len(text) > limit:  # characters: a lower bound on the bytes
        raise ConfigParseError(
            f"manifest is over the {format_size(limit)} limit (raise it with {SIZE_FLAG})", source=source
        )
    ctx = ManifestContext(source, default_namespace)
    out = Manifests(sources=[source])
    with gc_paused():
        if not _read_list_in_parts(ctx, text, out):
            for doc in yaml_documents(text, source):
                _convert(ctx, doc, out)
            doc = None  # the trees are freed before the collector resumes, which would walk them all once
    out.drop_duplicates()
    return out


#: The share of a big List's text that the other process reads (:func:`_read_list_in_parts`). It also
#: pickles its objects, and this process loads them: 0.51 measured best on the 2-core benchmark machine, where
#: the read of the benchmark's 75 MB List took 0.77-0.82 s (0.47: 0.81-0.88 s, 0.55: 0.81-0.84 s, 0.59:
#: 0.87-0.95 s; ``python3 benchmarks/scale.py shares 10000 100``, five runs each, alternating; ``split`` times
#: the read in one process and in two).
TAIL_SHARE = 0.51


def _read_list_in_parts(ctx: ManifestContext, text: str, out: Manifests) -> bool:
    """Read a big JSON List (``kubectl get -A -o json``) in two processes; False (nothing read: the caller
    reads the text in one) where it does not apply: one CPU, or a text that
    :func:`~meshstat.parsers.yaml_loader.json_list_cut` does not cut (under 1 MiB, not a List, no item
    boundary to cut at).

    A forked child (:func:`meshstat.workers.stream`) reads the items after the cut (the last
    :data:`TAIL_SHARE` of the text) and sends their objects a piece at a time
    (:meth:`~meshstat.parsers.yaml_loader.ListCut.tail_items`); this process reads the items before it
    meanwhile (:meth:`~meshstat.parsers.yaml_loader.ListCut.head_items`), and adds the child's objects after
    its own, as one process reads them. The result and the errors are a one-process read's: when a piece's
    keys are not the ones its text writes (a key written twice, which the YAML reader then refuses) or the two
    parts are not a List, nothing is kept and the text is read in one part; an error in this process's items
    is raised once the whole head is known to be the List's opening and items; and the child's part is read
    here again when the child fails: parsed first, then converted once the two parts are known to be a List
    (a field of the wrong type raises here, after every object before it was read).
    """
    cut = json_list_cut(text, TAIL_SHARE) if jobs() > 1 else None
    if cut is None:
        return False
    child = stream(lambda: _list_tail(ctx, text, cut))
    try:
        part = Manifests()
        held: Exception | None = None
        before: dict[str, Any] = {}
        for got in cut.head_items(text):
            if got is None:
                child.cancel()
                return False
            if type(got) is dict:
                before = got
            elif held is None:  # after an error the pieces are still parsed: a later one may not be a List's
                try:
                    for item in got:
                        _convert(ctx, item, part, depth=1)
                except Exception as exc:  # raised once the two parts are known to be the text's List
                    held = exc
        tail = _tail_pieces(child)
    except BaseException:
        child.cancel()
        raise
    child.close()
    trees = None
    if tail is None:  # the child failed: its part is parsed here, and converted below
        trees = list(cut.tail_items(text))
        if not trees or any(t is None for t in trees) or type(trees[-1]) is not dict:
            return False
        tail = ([], trees.pop())
    chunks, after = tail
    kind = before.get("kind", after.get("kind"))
    if before.keys() & after.keys() or type(kind) is not str or not kind.endswith("List"):
        return False
    if held is not None:
        raise held
    out.extend(part)
    for chunk in chunks if trees is None else (_read_items(ctx, t) for t in trees):
        out.extend(chunk)
    return True


def _tail_pieces(child: Stream[Any]) -> tuple[list[Manifests], dict[str, Any]] | None:
    """What :func:`_list_tail` sends: the objects of each piece of the tail, and the List's keys after its
    items; None when the child failed or ended before the List did (its part is then read here)."""
    chunks = []
    while True:
        got = child.next(lambda: None)
        if got is None:
            return None
        if type(got) is dict:
            return chunks, got
        chunks.append(got)


def _read_items(ctx: ManifestContext, items: list[Any]) -> Manifests:
    """The objects of a part of a List's items (:func:`_read_list_in_parts`)."""
    part = Manifests()
    for item in items:
        _convert(ctx, item, part, depth=1)
    return part


def _list_tail(ctx: ManifestContext, text: str, cut: ListCut) -> Iterator[Any]:
    """The child of :func:`_read_list_in_parts`: the objects of each piece of the tail's items as it is read,
    then the List's keys after its items; it stops where the tail does not read as the end of a List.
    """
    for got in cut.tail_items(text):
        if got is None:
            return
        yield got if type(got) is dict else _read_items(ctx, got)


def _iter_files(paths: Iterable[str], skipped: list[Diagnostic]) -> Iterator[str]:
    """The files to read: each path, and each manifest file under each folder (sorted, recursively).

    In a folder only regular files are read (followed through symbolic links):
    a FIFO, device or socket named like a manifest would block the reader or act
    on a device, so it is skipped with a warning in ``skipped``.
    """
    for p in paths:
        if os.path.isdir(p):
            found = False
            for root, dirs, files in os.walk(p):
                dirs.sort()
                for f in sorted(files):
                    if not f.endswith(_MANIFEST_SUFFIXES):
                        continue
                    full = os.path.join(root, f)
                    try:
                        mode = os.stat(full).st_mode
                    except OSError as exc:
                        skipped.append(Diagnostic("warning", f"skipped: cannot access ({exc.strerror})", full))
                        continue
                    if not is_readable_kind(mode):
                        why = f"skipped: {file_kind(mode)}, not a regular file"
                        skipped.append(Diagnostic("warning", why, full))
                        continue
                    found = True
                    yield full
            if not found:
                raise InvalidArgument(f"no *.yaml, *.yml or *.json files in directory {p}")
        else:
            yield p


def load_manifests(paths: str | Sequence[str], *, default_namespace: str = "default") -> Manifests:
    """Read manifests from files and directories (recursively, ``*.yaml``/``*.yml``/``*.json``).

    In a directory, a FIFO, device or socket with a manifest's name is skipped
    with a warning (see :func:`meshstat.inputs.is_readable_kind`).

    Parameters
    ----------
    paths : str or sequence of str
        Files or directories; ``-`` is standard input. Each file is read with
        :func:`meshstat.inputs.read_text` (size bound, UTF-8, CRLF).
    default_namespace : str
        Namespace for objects that name none.

    Returns
    -------
    Manifests
        All objects in file order, with diagnostics (notes for ignored kinds).
    """
    if isinstance(paths, str):
        paths = [paths]
    out = Manifests()
    skipped: list[Diagnostic] = []
    for path in _iter_files(paths, skipped):
        text = read_text(path, what="manifest")
        out.extend(parse_manifest_text(text, source_name(path), default_namespace=default_namespace))
    out.drop_duplicates()
    out.diagnostics[:0] = skipped
    return out
