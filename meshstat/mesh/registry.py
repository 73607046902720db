"""The mesh's registry: pods, Services and ServiceEntries, and the sidecar injection decision.

:class:`Pod` (a workload's pod, expanded from replicas), :class:`EP` (an endpoint of a cluster
before load balancing) and :class:`RegisteredService` (a host in the registry: a Kubernetes
Service or a ServiceEntry) are what :class:`meshstat.mesh.Mesh` builds from the manifests;
:func:`injection_decision` says whether a workload's pods get istio-proxy.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Generic, TypeVar

from meshstat.model import Backend, Provenance
from meshstat.parsers.k8s import Namespace, Service, ServiceEntry, ServicePort, WorkloadResource

__all__ = [
    "EP",
    "IGNORED_NAMESPACES",
    "SIDECAR_UID",
    "InjectionDecision",
    "InjectorConfig",
    "LabelIndex",
    "Pod",
    "RegisteredService",
    "injection_decision",
    "labels_subset",
    "version_of",
]

#: Namespaces the injector never touches (``pkg/kube/inject``: ``IgnoredNamespaces``).
IGNORED_NAMESPACES = ("kube-system", "kube-public")
SIDECAR_UID = 1337


# --------------------------------------------------------------------------- injection


@dataclass(frozen=True, slots=True)
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


@dataclass(frozen=True, slots=True)
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
    pod_ann = dict(workload.pod_annotations)
    src, line = meta.source, meta.line
    ns_inj = ns_labels.get("istio-injection")
    ns_rev = ns_labels.get("istio.io/rev")
    pod_inject_label = pod_labels.get("sidecar.istio.io/inject")
    pod_rev = pod_labels.get("istio.io/rev")
    labelled = ns_inj == "enabled" or (ns_inj is None and ns_rev is not None)

    def rev_ok(rev: str) -> bool:
        return injector.revisions is None or rev in injector.revisions

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
        elif injector.enable_namespaces_by_default and pod_inject_label != "false":
            webhook = "namespace.sidecar-injector.istio.io (enableNamespacesByDefault)"
    if webhook is None:
        if ns_inj is not None and ns_inj != "enabled":
            why = f"namespace {meta.namespace} has istio-injection={ns_inj}: no injection webhook matches"
        elif labelled and pod_inject_label == "false":
            why = "pod template label sidecar.istio.io/inject=false: the webhook's objectSelector excludes it"
        elif ns_inj is None and ns_rev is not None and not rev_ok(ns_rev):
            why = f"namespace revision istio.io/rev={ns_rev} is not installed"
        else:
            why = f"namespace {meta.namespace} is not labelled istio-injection=enabled or istio.io/rev"
            if "sidecar.istio.io/inject" in pod_ann and pod_inject_label is None:
                why += " (the sidecar.istio.io/inject annotation alone does not call the webhook)"
        return InjectionDecision(False, why, None, labelled, src, line)
    if workload.host_network:
        return InjectionDecision(False, "hostNetwork: true (injectRequired skips host-network pods)", webhook,
                                 labelled, src, line)
    if meta.namespace in IGNORED_NAMESPACES:
        return InjectionDecision(False, f"namespace {meta.namespace} is ignored by the injector", webhook,
                                 labelled, src, line)
    selector = pod_ann.get("sidecar.istio.io/inject")
    origin = "annotation"
    if pod_inject_label is not None:
        selector, origin = pod_inject_label, "label"
    if selector == "true":
        return InjectionDecision(True, f"pod {origin} sidecar.istio.io/inject=true ({webhook})", webhook, labelled,
                                 src, line)
    if selector == "false":
        return InjectionDecision(False, f"pod {origin} sidecar.istio.io/inject=false", webhook, labelled, src, line)
    extra = f" (invalid sidecar.istio.io/inject={selector!r} ignored)" if selector else ""
    if injector.policy == "enabled":
        return InjectionDecision(True, f"{webhook}; injector policy enabled{extra}", webhook, labelled, src, line)
    if injector.policy == "disabled":
        return InjectionDecision(False, f"{webhook} called but injector policy is disabled and the pod does not opt in"
                                 f"{extra}", webhook, labelled, src, line)
    return InjectionDecision(False, f"injector policy {injector.policy!r} is invalid: injection disabled", webhook,
                             labelled, src, line)


# --------------------------------------------------------------------------- pods and services


@dataclass(frozen=True, slots=True)
class Pod:
    """A pod of a workload (expanded from replicas), with an IP."""

    name: str
    namespace: str
    workload: WorkloadResource
    labels: tuple[tuple[str, str], ...]
    ip: str
    synthetic_ip: bool

    def backend(self, port: int | None) -> Backend:
        """The pod as a model backend at ``port``."""
        addr = self.ip if port is None else f"{self.ip}:{port}"
        return Backend(
            name=self.name,
            address=addr,
            labels=self.labels,
            provenance=Provenance(self.workload.meta.source, self.workload.meta.line),
        )


@dataclass(frozen=True, slots=True)
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
    return all(labels.get(k) == v for k, v in sub)


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
        cands = min((self._by.get((namespace, k, v), ()) for k, v in sel), key=len)
        return [obj for obj, labels in cands if labels_subset(sel, labels)]
