"""The mesh's registry: pods, Services and ServiceEntries, and the sidecar injection decision.

:class:`Ownership` (which workloads of the manifests stand for running pods, and which are the clients),
:class:`Pod` (a workload's pod, expanded from replicas), :class:`EP` (an endpoint of a cluster
before load balancing) and :class:`RegisteredService` (a host in the registry: a Kubernetes
Service or a ServiceEntry) are what :class:`meshstat.mesh.Mesh` builds from the manifests;
:func:`injection_decision` says whether a workload's pods get istio-proxy.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Generic, TypeVar

from meshstat.errors import InvalidArgument, ModelError
from meshstat.mesh.layers import name_list
from meshstat.model import Backend, Provenance
from meshstat.parsers.k8s import Namespace, Service, ServiceEntry, ServicePort, WorkloadResource
from meshstat.records import record

__all__ = [
    "EP",
    "IGNORED_NAMESPACES",
    "MAX_PODS",
    "SIDECAR_UID",
    "InjectionDecision",
    "InjectorConfig",
    "LabelIndex",
    "Ownership",
    "Pod",
    "RegisteredService",
    "build_registry",
    "endpoint_conditions",
    "injection_decision",
    "labels_subset",
    "pod_condition",
    "port_protocol",
    "sole_port",
    "uncaptured",
    "uncaptured_note",
    "version_of",
]

#: Namespaces the injector never touches (``pkg/kube/inject``: ``IgnoredNamespaces``).
IGNORED_NAMESPACES = ("kube-system", "kube-public")
SIDECAR_UID = 1337


# --------------------------------------------------------------------------- injection


@record
class InjectorConfig:
    """How the sidecar injector is installed.

    Parameters
    ----------
    policy : {"enabled", "disabled"}
        ``values.global.proxy.autoInject`` (the injector ConfigMap's ``policy``). Any other value
        disables injection (``injectRequired``: "Illegal value for autoInject").
    enable_namespaces_by_default : bool
        ``sidecarInjectorWebhook.enableNamespacesByDefault``: the webhook matches every
        namespace not labelled ``istio-injection=disabled``.
    revisions : tuple of str
        Installed control-plane revisions (``istio.io/rev`` values that have a webhook);
        ``None`` accepts any revision.
    """

    policy: str = "enabled"
    enable_namespaces_by_default: bool = False
    revisions: tuple[str, ...] | None = None


@record
class InjectionDecision:
    """Whether the pods of a workload get istio-proxy, and why (with file:line)."""

    injected: bool
    reason: str
    webhook: str | None
    namespace_labelled: bool
    source: str | None = None
    line: int | None = None

    def __str__(self) -> str:
        return ("injected: " if self.injected else "not injected: ") + self.reason


def injection_decision(
    workload: WorkloadResource, namespace: Namespace | None, injector: InjectorConfig = InjectorConfig()
) -> InjectionDecision:
    """Istio's automatic sidecar injection decision for ``workload``'s pods.

    Two steps, as in Istio:

    1. Does the API server call the webhook? The istio-discovery chart installs four
       webhooks (``mutatingwebhook.yaml``): namespace ``istio-injection=enabled``; namespace
       ``istio.io/rev=<rev>`` without ``istio-injection``; pod label ``istio.io/rev=<rev>`` in
       an unlabelled namespace; pod label ``sidecar.istio.io/inject=true`` in an unlabelled
       namespace. All but the last require the pod label ``sidecar.istio.io/inject`` not to be
       ``false``. ``istio-injection=disabled`` matches none of them. The webhooks' object
       selectors see pod *labels* only, so an annotation alone never triggers the call.
    2. ``pkg/kube/inject/webhook.go: injectRequired``: never with ``hostNetwork``, never in
       ``kube-system``/``kube-public``; the pod label ``sidecar.istio.io/inject`` (preferred)
       or the annotation of the same name decides if it is ``"true"``/``"false"``; otherwise
       the injector's ``policy`` does (``enabled`` -> inject).
    """
    meta = workload.meta
    ns_labels = namespace.labels if namespace is not None else {}
    pod_labels = workload.labels
    annotation = dict(workload.pod_annotations).get("sidecar.istio.io/inject")
    decided = _injection(meta.namespace, ns_labels.get("istio-injection"), ns_labels.get("istio.io/rev"),
                         pod_labels.get("sidecar.istio.io/inject"), pod_labels.get("istio.io/rev"), annotation,
                         workload.host_network, injector.policy, injector.enable_namespaces_by_default,
                         injector.revisions)
    return InjectionDecision(*decided, meta.source, meta.line)


@lru_cache(maxsize=4096)
def _injection(namespace: str, ns_inj: str | None, ns_rev: str | None, pod_inject_label: str | None,
               pod_rev: str | None, annotation: str | None, host_network: bool, policy: str,
               all_namespaces: bool, revisions: tuple[str, ...] | None) -> tuple[bool, str, str | None, bool]:
    """:func:`injection_decision` from what it reads: ``(injected, reason, webhook, namespace labelled)``,
    kept (a cluster's workloads come in a few such shapes: an audit asks for each of 20,000). The injector is
    given as its fields (:class:`InjectorConfig`: ``policy``, ``enable_namespaces_by_default``, ``revisions``),
    whose hashes Python keeps."""
    labelled = ns_inj == "enabled" or (ns_inj is None and ns_rev is not None)

    def rev_ok(rev: str) -> bool:
        return revisions is None or rev in revisions

    webhook = None
    if ns_inj == "enabled":
        if pod_inject_label != "false":
            webhook = "namespace.sidecar-injector.istio.io (namespace istio-injection=enabled)"
    elif ns_inj is None and ns_rev is not None:
        if pod_inject_label != "false" and rev_ok(ns_rev):
            webhook = f"rev.namespace.sidecar-injector.istio.io (namespace istio.io/rev={ns_rev})"
    elif ns_inj is None:
        if pod_rev is not None and pod_inject_label != "false" and rev_ok(pod_rev):
            webhook = f"rev.object.sidecar-injector.istio.io (pod label istio.io/rev={pod_rev})"
        elif pod_inject_label == "true" and pod_rev is None:
            webhook = "object.sidecar-injector.istio.io (pod label sidecar.istio.io/inject=true)"
        elif all_namespaces and pod_inject_label != "false":
            webhook = "namespace.sidecar-injector.istio.io (enableNamespacesByDefault)"
    if webhook is None:
        if ns_inj is not None and ns_inj != "enabled":
            why = f"namespace {namespace} has istio-injection={ns_inj}: no injection webhook matches"
        elif labelled and pod_inject_label == "false":
            why = "pod template label sidecar.istio.io/inject=false: the webhook's objectSelector excludes it"
        elif ns_inj is None and ns_rev is not None and not rev_ok(ns_rev):
            why = f"namespace revision istio.io/rev={ns_rev} is not installed"
        else:
            why = f"namespace {namespace} is not labelled istio-injection=enabled or istio.io/rev"
            if annotation is not None and pod_inject_label is None:
                why += " (the sidecar.istio.io/inject annotation alone does not call the webhook)"
        return (False, why, None, labelled)
    if host_network:
        return (False, "hostNetwork: true (injectRequired skips host-network pods)", webhook, labelled)
    if namespace in IGNORED_NAMESPACES:
        return (False, f"namespace {namespace} is ignored by the injector", webhook, labelled)
    selector = annotation
    origin = "annotation"
    if pod_inject_label is not None:
        selector, origin = pod_inject_label, "label"
    if selector == "true":
        return (True, f"pod {origin} sidecar.istio.io/inject=true ({webhook})", webhook, labelled)
    if selector == "false":
        return (False, f"pod {origin} sidecar.istio.io/inject=false", webhook, labelled)
    extra = f" (invalid sidecar.istio.io/inject={selector!r} ignored)" if selector else ""
    if policy == "enabled":
        return (True, f"{webhook}; injector policy enabled{extra}", webhook, labelled)
    if policy == "disabled":
        return (False, f"{webhook} called but injector policy is disabled and the pod does not opt in{extra}",
                webhook, labelled)
    return (False, f"injector policy {policy!r} is invalid: injection disabled", webhook, labelled)


# --------------------------------------------------------------------------- owners, pods and services

#: Most pods expanded from replicas (each one a backend; synthetic pod IPs come from a /16).
MAX_PODS = 50_000

#: How high a kind stands in the chain of controllers (pkg/controller: a Deployment controls
#: ReplicaSets, a ReplicaSet or StatefulSet its Pods): a controller is linked only from a lower kind,
#: so ownerReferences that loop cannot hide a pod.
_RANK = {"Pod": 0, "ReplicaSet": 1, "StatefulSet": 1, "Deployment": 2}


@record
class Ownership:
    """Which workloads of the manifests stand for running pods, and which are the clients.

    ``kubectl get all -A -o yaml`` writes a Deployment, its ReplicaSets and their Pods: each pod
    would count three times. A workload whose pods are in the manifests as lower objects (its
    ReplicaSets, or Pods whose controller it is) is not expanded from its template: those objects
    are (``leaves``). A ReplicaSet that the manifests leave out still links its Pods to the
    Deployment it is named after: ``<deployment>-<pod-template-hash>``, as ``getNewReplicaSet``
    names it (kubernetes ``pkg/controller/deployment/sync.go``). The clients are the workloads that
    no other one controls (``roots``), so a Deployment calls as itself, not once per pod.

    A workload scaled by ``--scale`` is expanded from its template, without the objects it controls. A Pod
    that runs no container (:func:`pod_condition` None: Succeeded, Failed, no IP) is neither a leaf nor a root.
    """

    #: the workloads whose pods are backends: none of their pods is in the manifests as another object
    leaves: tuple[WorkloadResource, ...]
    #: the client workloads: no workload in the manifests controls them
    roots: tuple[WorkloadResource, ...]
    #: ``id(workload)`` -> the root that controls it (only for controlled workloads)
    root_of: dict[int, WorkloadResource]
    #: workloads counted through the objects they control, in the manifests' order
    through: tuple[WorkloadResource, ...]
    #: Pods that run no container: no endpoints and no clients
    finished: tuple[WorkloadResource, ...] = ()
    #: :func:`pod_condition` of the Pods by ``(namespace, name)`` (see :meth:`condition`)
    conditions: Mapping[tuple[str, str], str | None] = field(default_factory=dict)

    @classmethod
    def of(cls, workloads: Iterable[WorkloadResource], scaled: frozenset[int] = frozenset(),
           conditions: Mapping[tuple[str, str], str | None] | None = None) -> Ownership:
        """The ownership of ``workloads``; ``scaled``: ids of workloads expanded from their template;
        ``conditions``: :func:`pod_condition` of the Pods by ``(namespace, name)``."""
        conditions = conditions or {}
        ws = list(workloads)
        by_key = {(w.meta.namespace, w.meta.kind, w.meta.name): w for w in ws}
        parent: dict[int, WorkloadResource] = {}
        for w in ws:
            if w.owner is None:
                continue
            kind, name = w.owner
            p = by_key.get((w.meta.namespace, kind, name))
            if p is None and (deploy := _deployment_of(kind, name, w.pod_labels)) is not None:
                p = by_key.get((w.meta.namespace, "Deployment", deploy))
            if p is not None and _RANK.get(p.meta.kind, -1) > _RANK.get(w.meta.kind, 0):
                parent[id(w)] = p
        root_of: dict[int, WorkloadResource] = {}
        under_scaled: set[int] = set()
        for w in ws:
            p = parent.get(id(w))
            while p is not None:
                root_of[id(w)] = p
                if id(p) in scaled:
                    under_scaled.add(id(w))
                p = parent.get(id(p))
        for w in ws:
            if id(w) in scaled and id(w) in under_scaled:
                top = root_of[id(w)]
                raise InvalidArgument(f"--scale {w.meta.kind} {w.meta.ref}: {top.meta.kind} {top.meta.ref}, which "
                                      "controls it, is scaled too (its template stands for all its pods): "
                                      "scale one of them")
        controls = {id(p) for w in ws if id(w) not in under_scaled and (p := parent.get(id(w))) is not None}
        controls -= scaled
        finished = [w for w in ws if w.meta.kind == "Pod" and id(w) not in under_scaled
                    and (w.meta.namespace, w.meta.name) in conditions
                    and conditions[w.meta.namespace, w.meta.name] is None]
        gone = {id(w) for w in finished}
        return cls(
            leaves=tuple(w for w in ws if id(w) not in controls and id(w) not in under_scaled and id(w) not in gone),
            roots=tuple(w for w in ws if id(w) not in parent and id(w) not in gone),
            root_of=root_of,
            through=tuple(w for w in ws if id(w) in controls),
            finished=tuple(finished),
            conditions=conditions,
        )

    def istio_workload(self, w: WorkloadResource) -> str:
        """The workload name Istio gives ``w``'s pods (``pkg/kube/util.go``, ``GetDeployMetaFromPod``): that of
        the root that controls it in the input, else of its controller; a ReplicaSet named
        ``<deployment>-<pod-template-hash>`` stands for its Deployment, present or not."""
        root = self.root_of.get(id(w), w)
        kind, name = root.owner if root.meta.kind == "Pod" and root.owner is not None else (root.meta.kind,
                                                                                          root.meta.name)
        return _deployment_of(kind, name, root.pod_labels) or name

    def condition(self, w: WorkloadResource) -> str:
        """The endpoint condition of ``w``'s pods: a Pod's :func:`pod_condition`, ``"ready"`` for the pods
        expanded from another workload's template."""
        return (self.conditions.get((w.meta.namespace, w.meta.name)) or "ready") if w.meta.kind == "Pod" else "ready"

    def note(self) -> str:
        """What :attr:`through` means, in one line (the first three named)."""
        names = name_list([f"{w.meta.kind} {w.meta.ref}" for w in self.through], 3)
        return (f"{names}: their pods are in the manifests (ownerReferences: ReplicaSets, Pods), "
                "counted once, as those objects, not again from the pod template")

    def expand_notes(self, replicas: Mapping[int, int]) -> list[str]:
        """What :meth:`expand` says of the pods it makes, worked out from the workloads alone (a mesh says it when
        it is built; the audit never expands the pods): the controllers counted through their objects, the
        finished Pods, the pods that are not ready, the synthetic IPs. Raises when the pods would be more than
        :data:`MAX_PODS` (``replicas``: ``--scale`` by workload id)."""
        counts = [(replicas.get(id(w), w.replicas), w) for w in self.leaves]
        if sum(n for n, _ in counts) > MAX_PODS:
            n, w = max(counts, key=lambda c: c[0])
            scaled = id(w) in replicas
            raise (InvalidArgument if scaled else ModelError)(
                f"{w.meta.kind} {w.meta.ref} has {n:,} replicas; meshstat expands at most {MAX_PODS:,} pods "
                "in all (each pod is a backend)",
                **({} if scaled else {"source": w.meta.source, "line": w.replicas_line or w.meta.line}),
            )
        notes = [self.note()] if self.through else []
        if self.finished:
            notes.append(f"Pods {name_list([w.meta.ref for w in self.finished], 3)}: no endpoints and no clients (status: Succeeded, "
                         "Failed or no IP)")
        not_ready = [f"{w.meta.namespace}/{name}" for n, w in counts if self.condition(w) != "ready"
                     for name in _pod_names(w, n)]
        if not_ready:
            notes.append(f"Pods {name_list(not_ready, 3)}: not ready or terminating (status): endpoints only "
                         "of Services with publishNotReadyAddresses, or for kube-proxy when no endpoint is ready")
        if any(n and not w.pod_ip for n, w in counts):
            notes.append("pods without status.podIP get deterministic synthetic IPs in 10.244.0.0/16 "
                         "(crc32 of namespace/name); pod names are <workload>-<index>")
        return notes

    def expand(self, replicas: Mapping[int, int]) -> list[Pod]:
        """The pods of :attr:`leaves`: a Pod as itself, another workload's ``<name>-<index>`` per replica
        (``replicas``: ``--scale`` by workload id), with its :meth:`condition`. A pod without ``status.podIP``
        gets a synthetic IP. :meth:`expand_notes` checks the count and says what this does."""
        taken = {w.pod_ip for w in self.leaves if w.pod_ip}
        pods = []
        for w in self.leaves:
            cond = self.condition(w)
            for name in _pod_names(w, replicas.get(id(w), w.replicas)):
                ip, syn = (w.pod_ip, False) if w.pod_ip else (synthetic_ip(f"{w.meta.namespace}/{name}", taken), True)
                pods.append(Pod(name, w.meta.namespace, w, w.pod_labels, ip, syn, cond))
        return pods


def _pod_names(w: WorkloadResource, n: int) -> list[str]:
    """The names of ``w``'s ``n`` pods: a Pod's own, ``<name>-<index>`` for the pods of a template."""
    return [w.meta.name] * n if w.meta.kind == "Pod" else [f"{w.meta.name}-{i}" for i in range(n)]


def pod_condition(ready: bool, terminating: bool, phase: str | None, ip: str | None, has_status: bool = True
                  ) -> str | None:
    """A Pod's endpoint condition from its ``status``: ``"ready"``, ``"terminating"`` (serving, being deleted),
    ``"not-ready"``, or None when it is no endpoint at all.

    As the EndpointSlice controller sets them (kubernetes ``staging/src/k8s.io/endpointslice``:
    ``podToEndpoint``, ``ShouldPodBeInEndpoints``): a Pod without an IP, or Succeeded or Failed, is
    left out; serving is the Ready condition; ready is serving and not terminating. A Pod without
    ``status`` (``has_status`` false: a manifest to apply) is taken as ready.
    """
    if not has_status:
        return "ready"
    if phase in ("Succeeded", "Failed") or not ip:
        return None
    if not ready:
        return "not-ready"
    return "terminating" if terminating else "ready"


def endpoint_conditions(conditions: Iterable[str], publish_not_ready: bool, terminating_fallback: bool
                        ) -> frozenset[str]:
    """Which endpoint conditions receive traffic, among the ``conditions`` of a Service's pods.

    ``publishNotReadyAddresses``: all (the controller marks every endpoint ready). Otherwise the ready
    ones; when none is ready, kube-proxy (``terminating_fallback``) takes the serving terminating ones
    (``pkg/proxy/topology.go``: ``CategorizeEndpoints``), while Istio's sidecars and ztunnel take
    healthy endpoints only (``pilot/pkg/serviceregistry/kube/controller/endpointslice.go``:
    ``endpointHealthStatus``: not ready is unhealthy or terminating, not sent).
    """
    if publish_not_ready:
        return _EVERY_CONDITION
    seen = set(conditions)
    if "ready" not in seen and terminating_fallback and "terminating" in seen:
        return _TERMINATING
    return _READY


_EVERY_CONDITION, _TERMINATING, _READY = (frozenset(("ready", "terminating", "not-ready")),
                                          frozenset(("terminating",)), frozenset(("ready",)))


@record
class Pod:
    """A pod of a workload (expanded from replicas), with an IP."""

    name: str
    namespace: str
    workload: WorkloadResource
    labels: tuple[tuple[str, str], ...]
    ip: str
    synthetic_ip: bool
    #: :func:`pod_condition` (``"ready"`` for a pod expanded from replicas)
    condition: str = "ready"

    def backend(self, port: int | None) -> Backend:
        """The pod as a model backend at ``port``."""
        addr = self.ip if port is None else f"{self.ip}:{port}"
        return Backend(
            name=self.name,
            address=addr,
            labels=self.labels,
            provenance=Provenance(self.workload.meta.source, self.workload.meta.line),
        )


@record
class EP:
    """An endpoint of a cluster, before load balancing: backend, weight, health, priority, locality.

    ``locality`` is Envoy's (sorted ``("region", r)``, ``("sub_zone", s)``, ``("zone", z)`` pairs); ``node``
    the Kubernetes node of a pod endpoint when the input says where it runs.
    """

    backend: Backend
    weight: int = 1
    health: str = "HEALTHY"
    priority: int = 0
    locality: tuple[tuple[str, str], ...] = ()
    locality_weight: int | None = None
    node: str | None = None


@dataclass
class RegisteredService:
    """A host in the registry: a Kubernetes Service or a ServiceEntry.

    The mesh's view of a host; kube-proxy's view of a Service is :class:`meshstat.netfilter.ServiceInfo`.
    """

    fqdn: str
    namespace: str
    name: str
    ports: tuple[ServicePort, ...]
    source: str
    line: int
    service: Service | None = None
    entry: ServiceEntry | None = None

    @property
    def short(self) -> str:
        """``name.namespace``."""
        return f"{self.name}.{self.namespace}" if self.service is not None else self.fqdn

    def port(self, number: int) -> ServicePort | None:
        """The declared port ``number``."""
        for p in self.ports:
            if p.port == number:
                return p
        return None


def build_registry(services: Iterable[Service], entries: Iterable[ServiceEntry], domain: str
                   ) -> dict[str, RegisteredService]:
    """Host -> its registry entry: every Service as ``<name>.<namespace>.svc.<domain>``, then every ServiceEntry
    host that no Service or earlier entry holds."""
    reg: dict[str, RegisteredService] = {}
    for s in services:
        fqdn = f"{s.meta.name}.{s.meta.namespace}.svc.{domain}"
        reg[fqdn] = RegisteredService(fqdn, s.meta.namespace, s.meta.name, s.ports, s.meta.source, s.meta.line,
                                      service=s)
    for se in entries:
        for h in se.hosts:
            reg.setdefault(h, RegisteredService(h, se.meta.namespace, se.meta.name, se.ports, se.meta.source,
                                                se.meta.line, entry=se))
    return reg


#: Istio's protocol names (``pkg/config/protocol``: ``Parse``, any case) that carry HTTP (``IsHTTP``) and
#: those that are TCP to the proxy (``IsTCP``); UDP is not proxied.
_HTTP_PROTOCOLS = ("http", "http2", "http_proxy", "grpc", "grpc-web")
_TCP_PROTOCOLS = ("tcp", "https", "tls", "mongo", "redis", "mysql")
#: Kubernetes' standard appProtocol values, as ``ConvertProtocol`` maps them (WebSocket over TLS is HTTPS).
_K8S_APP_PROTOCOLS = {"kubernetes.io/h2c": "http", "kubernetes.io/ws": "http", "kubernetes.io/wss": "tcp"}
#: Ports Istio does not sniff: a port here whose name gives no protocol is TCP (``wellKnownPorts``).
_WELL_KNOWN_TCP_PORTS = (25, 53, 3306, 27017)


def _istio_protocol(name: str) -> str | None:
    c = name.lower()
    return "http" if c in _HTTP_PROTOCOLS else "tcp" if c in _TCP_PROTOCOLS else "udp" if c == "udp" else None


def port_protocol(p: ServicePort) -> str:
    """Istio's protocol for a port: ``"http"``, ``"tcp"``, ``"udp"`` (not proxied) or ``"auto"`` (sniffed:
    HTTP is routed as HTTP).

    A Kubernetes Service port as ``ConvertProtocol`` reads it (istio ``pilot/pkg/serviceregistry/kube/
    conversion.go``): L4 UDP is UDP; otherwise ``appProtocol`` when it is set (Kubernetes' ``kubernetes.io/h2c``
    and ``kubernetes.io/ws`` are HTTP, ``kubernetes.io/wss`` HTTPS), else the port name; ``grpc-web...`` is
    gRPC-Web, else the name up to its first ``-`` (``http-web``) is read by ``protocol.Parse``. A name
    that gives no protocol is TCP on a well-known port (25, 53, 3306, 27017) and sniffed elsewhere. The L4
    ``protocol: TCP`` that every Kubernetes port has says nothing more. A ServiceEntry port: its ``protocol``
    (Istio's own, ``convertPort`` in ``serviceentry/conversion.go``; its name is not read), sniffed when absent.
    """
    if not p.l4:
        return _istio_protocol(p.protocol or "") or "auto"
    if (p.protocol or "").upper() == "UDP":
        return "udp"
    name = p.app_protocol if p.app_protocol is not None else p.name or ""
    if p.app_protocol is not None and p.app_protocol in _K8S_APP_PROTOCOLS:
        return _K8S_APP_PROTOCOLS[p.app_protocol]
    if name[:8].lower() == "grpc-web":
        return "http"
    got = _istio_protocol(name.split("-", 1)[0])
    if got is not None:
        return got
    return "tcp" if p.port in _WELL_KNOWN_TCP_PORTS else "auto"


def uncaptured(p: ServicePort) -> str | None:
    """The port's transport when no mesh proxy captures it (``"UDP"``, ``"SCTP"``), else None (TCP).

    The capture rules redirect TCP only: a sidecar's (istio ``tools/istio-iptables/pkg/capture/run.go``,
    ``Run``: ``OUTPUT -p tcp -j ISTIO_OUTPUT``) and an ambient pod's (``cni/pkg/iptables/iptables.go``,
    ``AppendInpodRules``: ``ISTIO_OUTPUT -p tcp ... REDIRECT --to-ports 15001``). The only UDP either
    takes is port 53, to the proxy's DNS agent when DNS capture is on. So datagrams and SCTP
    associations to a ClusterIP meet kube-proxy, whatever VirtualService, route or waypoint the
    Service has. Istio's own protocol for an SCTP port (:func:`port_protocol`) is read from its name,
    but no listener ever sees the traffic. A ServiceEntry port is UDP when its ``protocol`` says so.
    """
    if not p.l4:
        return "UDP" if port_protocol(p) == "udp" else None
    l4 = (p.protocol or "TCP").upper()
    return l4 if l4 in ("UDP", "SCTP") else None


def uncaptured_note(p: ServicePort, who: str) -> str:
    """Why ``who`` (a sidecar, ztunnel) leaves an :func:`uncaptured` port to kube-proxy, in one line; or a TCP
    port whose name makes it UDP to Istio (``udp-...``): no listener, so a sidecar passes the connection
    through to the ClusterIP (``PortList.GetByPort`` skips UDP ports)."""
    l4 = uncaptured(p)
    if l4 is None:
        return (f"port {p.name or p.port} is UDP to Istio (its name): {who} has no listener for it and passes the "
                "connection through to the ClusterIP; kube-proxy picks")
    dns = (" (with DNS capture on, queries to port 53 may go to the proxy's DNS agent, which answers the names "
           "it knows and forwards the rest, through kube-proxy)") if l4 == "UDP" and p.port == 53 else ""
    return f"port {p.name or p.port} is {l4}: {who} captures TCP only; kube-proxy picks{dns}"


def _deployment_of(kind: str, name: str, pod_labels: Iterable[tuple[str, str]]) -> str | None:
    """The Deployment a ReplicaSet ``name`` stands for (``<deployment>-<pod-template-hash>``, the hash in the pods'
    labels), or None."""
    if kind != "ReplicaSet":
        return None
    h = dict(pod_labels).get("pod-template-hash")
    return name[: -len(h) - 1] if h and name.endswith("-" + h) else None


def sole_port(info: RegisteredService, hint: str) -> int:
    """The port of ``info`` when it has exactly one (a service named without a port); ``hint`` says how to name
    one when it has several."""
    if len(info.ports) == 1:
        return info.ports[0].port
    if not info.ports:
        raise InvalidArgument(f"{info.short} has no ports (a Service without ports: nothing is routed to it)")
    raise InvalidArgument(f"{info.short} has several ports ({', '.join(str(p.port) for p in info.ports)}); {hint}")


def version_of(labels: Iterable[tuple[str, str]]) -> str:
    """The ``version`` label (or ``app.kubernetes.io/version``), else ``"-"``."""
    d = dict(labels)
    return d.get("version") or d.get("app.kubernetes.io/version") or "-"


def synthetic_ip(key: str, taken: set[str]) -> str:
    h = zlib.crc32(key.encode())
    while True:
        ip = f"10.244.{(h >> 8) & 0xFF}.{max(2, h & 0xFF) if (h & 0xFF) < 255 else 254}"
        if ip not in taken:
            taken.add(ip)
            return ip
        h = zlib.crc32(str(h).encode())


def labels_subset(sub: Iterable[tuple[str, str]], labels: Mapping[str, str]) -> bool:
    """Whether ``labels`` has every (key, value) of ``sub`` (a selector)."""
    for k, v in sub:  # noqa: SIM110 (a loop: a selector holds a pair or two; a generator costs more)
        if labels.get(k) != v:
            return False
    return True


_T = TypeVar("_T")


class LabelIndex(Generic[_T]):
    """Objects (pods, workloads) by (namespace, label, value), in the order they were given.

    What a selector picks in a namespace costs the objects that carry its rarest label, not every
    object of the namespace: a cluster's Services each look up their own pods.
    """

    __slots__ = ("_by",)

    def __init__(self, entries: Iterable[tuple[_T, str, Mapping[str, str]]]) -> None:
        by: dict[tuple[str, str, str], list[tuple[_T, Mapping[str, str]]]] = {}
        for obj, namespace, labels in entries:
            for k, v in labels.items():
                by.setdefault((namespace, k, v), []).append((obj, labels))
        self._by = by

    def select(self, namespace: str, selector: Iterable[tuple[str, str]]) -> list[_T]:
        """The objects of ``namespace`` whose labels hold every pair of ``selector`` (not empty)."""
        sel = tuple(selector)
        if len(sel) == 1:  # every object filed under the one pair holds it
            return [obj for obj, _ in self._by.get((namespace, *sel[0]), ())]
        cands = min((self._by.get((namespace, k, v), ()) for k, v in sel), key=len)
        return [obj for obj, labels in cands if labels_subset(sel, labels)]
