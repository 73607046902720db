"""Istio mesh: sidecar injection, client paths and the layered effective split.

Given Kubernetes + Istio manifests (:mod:`meshstat.parsers.k8s`) this module answers
"when workload X calls service S, where does the traffic really go?" for every path a
call can take:

``kube-proxy``
    The client has no sidecar (namespace not labelled, opt-out label, ``hostNetwork``,
    ``kube-system``), or the traffic is the sidecar's own (UID 1337, exempt from Istio's
    capture). The ClusterIP is DNATed by kube-proxy's ``KUBE-SVC`` cascade over *all*
    endpoints of the Service, sorted as ``"ip:port"`` strings (``Cascade.kube_proxy``), once
    per connection: the split follows pod counts, whatever the VirtualService says.
``sidecar``
    The client's pod runs istio-proxy: outbound TCP from any UID but 1337 is redirected to
    15001 (``ISTIO_OUTPUT`` -> ``ISTIO_REDIRECT``, istio ``tools/istio-iptables/pkg/capture/
    run.go``), Envoy's ``virtualOutbound`` hands the connection to ``0.0.0.0_<port>``, the
    route configuration ``<port>`` holds the VirtualService's routes, and the weighted clusters
    ``outbound|<port>|<subset>|<fqdn>`` pick a subset per request. Envoy then connects to the
    pod IP itself: kube-proxy is not involved.
``envoy-dump``
    The same question answered from a real (or composed) ``config_dump`` of the client's
    sidecar, through :mod:`meshstat.parsers.envoy`.

Istio's translation follows ``pilot/pkg/networking/core/route/route.go``
(``applyHTTPRouteDestination``: one destination -> plain cluster, several ->
``weighted_clusters`` with weight-0 destinations dropped; weights relative since 1.15),
``pilot/pkg/model/service.go: BuildSubsetKey`` (cluster names) and
``pilot/pkg/xds/endpoints/endpoint_builder.go`` (subset endpoints = service endpoints whose
labels include all the subset's labels). The injection decision follows the webhook
selectors of the istio-discovery chart (``mutatingwebhook.yaml``) and
``pkg/kube/inject/webhook.go: injectRequired``.

Endpoint load balancers inside a cluster are modelled by their long-run share (this issue):
equal-weight endpoints get ``1/n`` under every Envoy policy; ``load_balancing_weight`` is
honoured except by ``RANDOM`` (Envoy 1.40 ignores it); priorities, the 1.4 overprovisioning
factor, the panic threshold and locality weights follow reference ``envoy-istio.md`` §3.6-3.8.
The policy name is recorded in the stage name and in ``Route.notes``; the exact stateful
per-request balancers are another issue.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from meshstat.errors import InvalidArgument, ModelError
from meshstat.model import Backend, Cascade, Node, Provenance, Route, Stage, Weighted, smallest_integer_weights
from meshstat.parsers import envoy as envoy_parser
from meshstat.parsers.k8s import (
    DestinationRule,
    Diagnostic,
    Manifests,
    Namespace,
    RouteDestination,
    Service,
    ServiceEntry,
    ServicePort,
    VirtualService,
    Workload,
)

__all__ = [
    "ClientPath",
    "MeshComparison",
    "PathSplit",
    "compare_paths",
    "EP",
    "InjectionDecision",
    "InjectorConfig",
    "Layer",
    "Mesh",
    "Pod",
    "ServiceInfo",
    "correlated_weights",
    "endpoint_stage",
    "envoy_dump_route",
    "injection_decision",
    "version_of",
]

#: Istio's default ``lb_policy`` for outbound clusters since 1.14 (``defaultLBAlgorithm``).
ISTIO_DEFAULT_LB = "LEAST_REQUEST"
#: Namespaces the injector never touches (``pkg/kube/inject``: ``IgnoredNamespaces``).
IGNORED_NAMESPACES = ("kube-system", "kube-public")
SIDECAR_UID = 1337
#: Largest number of residue intervals evaluated for a runtime_fraction correlation.
MAX_CORRELATION_POINTS = 2_000_000
#: Most pods expanded from replicas (each one a backend; synthetic pod IPs come from a /16).
MAX_PODS = 50_000

_TCP_PROTOCOLS = ("tcp", "tls", "mongo", "mysql", "redis", "https", "udp")


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
    workload: Workload, namespace: Namespace | None, injector: InjectorConfig = InjectorConfig()
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
    workload: Workload
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
    """An endpoint of a cluster, before load balancing: backend, weight, health, priority, locality."""

    backend: Backend
    weight: int = 1
    health: str = "HEALTHY"
    priority: int = 0
    locality: tuple[tuple[str, str], ...] = ()
    locality_weight: int | None = None


@dataclass
class ServiceInfo:
    """A host in the registry: a Kubernetes Service or a ServiceEntry."""

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


def _synthetic_ip(key: str, taken: set[str]) -> str:
    h = zlib.crc32(key.encode())
    while True:
        ip = f"10.244.{(h >> 8) & 0xFF}.{max(2, h & 0xFF) if (h & 0xFF) < 255 else 254}"
        if ip not in taken:
            taken.add(ip)
            return ip
        h = zlib.crc32(str(h).encode())


def _labels_subset(sub: Iterable[tuple[str, str]], labels: Mapping[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in sub)


def _port_protocol(p: ServicePort) -> str:
    """Istio protocol selection: appProtocol, then the port name prefix (``http-web``), else sniffed."""
    for cand in (p.app_protocol or "", p.name.split("-", 1)[0] if p.name else "", p.protocol or ""):
        c = cand.lower()
        if c in ("http", "http2", "grpc", "grpc-web", "h2c", "kubernetes.io/h2c"):
            return "http"
        if c in _TCP_PROTOCOLS:
            return "tcp"
    return "auto"


# --------------------------------------------------------------------------- endpoint stage


def endpoint_stage(
    cluster: str,
    eps: Sequence[EP],
    *,
    policy: str,
    unit: str = "request",
    overprovisioning: int = envoy_parser.DEFAULT_OVERPROVISIONING,
    panic_threshold: float = envoy_parser.DEFAULT_PANIC_THRESHOLD,
    locality_weighted: bool = False,
    notes: list[str] | None = None,
    provenance: Provenance | None = None,
) -> Node:
    """Long-run share of each endpoint of one Envoy cluster, as a stage tree.

    Priorities: health of a priority is ``min(100, factor * healthy // hosts)``; load is
    spread in priority order (``distributeLoad``); a priority is in panic when its healthy
    plus degraded percentage is strictly below the threshold (never when the total
    availability is 100); in panic its load goes to *all* its hosts, and when every priority
    panics the load follows host counts (``load_balancer_impl.cc``:
    ``recalculatePerPriorityState``, ``recalculatePerPriorityPanic``,
    ``recalculateLoadInTotalPanic``). Within a host source the share is proportional to
    ``load_balancing_weight`` (equal for ``RANDOM``, which ignores weights in Envoy 1.40);
    with ``locality_weighted`` the localities are weighted first by
    ``w * min(1, factor/100 * healthy/hosts)`` (``locality_wrr.cc``).

    An empty cluster returns the leaf ``503 no_healthy_upstream (<cluster>)``.
    """
    notes = notes if notes is not None else []
    if not eps:
        return Backend(name=f"503 no_healthy_upstream ({cluster})", labels=(("outcome", "503"),),
                       provenance=provenance)
    prios = sorted({e.priority for e in eps})
    by_p = {p: [e for e in eps if e.priority == p] for p in prios}
    health, degraded, panic = {}, {}, {}
    for p, hosts in by_p.items():
        n = len(hosts)
        h = sum(1 for e in hosts if e.health == "HEALTHY")
        d = sum(1 for e in hosts if e.health == "DEGRADED")
        health[p] = min(100, overprovisioning * h // n)
        degraded[p] = min(100, overprovisioning * d // n)
        panic[p] = Fraction(100 * (h + d), n) < Fraction(panic_threshold).limit_denominator(10**6)
    nta = min(100, sum(health.values()) + sum(degraded.values()))
    if nta == 100:
        panic = dict.fromkeys(prios, False)
    total_panic = all(panic.values())
    sources: list[tuple[int, str, list[EP]]] = []  # (load, label, hosts)
    if total_panic and panic_threshold > 0:
        total = sum(len(h) for h in by_p.values())
        loads = {p: 100 * len(by_p[p]) // total for p in prios}
        loads[prios[0]] += 100 - sum(loads.values())
        for p in prios:
            if loads[p]:
                sources.append((loads[p], f"P{p} panic: all hosts", by_p[p]))
        notes.append(f"{cluster}: panic (fewer than {panic_threshold:g}% healthy hosts): traffic goes to all hosts, "
                     "unhealthy ones included")
    elif nta == 0:
        return Backend(name=f"503 no_healthy_upstream ({cluster})", labels=(("outcome", "503"),),
                       provenance=provenance)
    else:
        remaining = 100
        hl, dl = {}, {}
        for p in prios:
            hl[p] = min(remaining, health[p] * 100 // nta)
            remaining -= hl[p]
        for p in prios:
            dl[p] = min(remaining, degraded[p] * 100 // nta)
            remaining -= dl[p]
        if remaining:
            first = next((p for p in prios if health[p] > 0), None)
            if first is not None:
                hl[first] += remaining
            else:
                firstd = next(p for p in prios if degraded[p] > 0)
                dl[firstd] += remaining
        for p in prios:
            if panic[p]:
                if hl[p] + dl[p]:
                    sources.append((hl[p] + dl[p], f"P{p} panic: all hosts", by_p[p]))
                continue
            if hl[p]:
                sources.append((hl[p], f"P{p} healthy", [e for e in by_p[p] if e.health == "HEALTHY"]))
            if dl[p]:
                sources.append((dl[p], f"P{p} degraded", [e for e in by_p[p] if e.health == "DEGRADED"]))
    reached = {id(e) for _, _, hs in sources for e in hs}
    skipped = [e for e in eps if id(e) not in reached]
    if skipped:
        notes.append(f"{cluster}: {len(skipped)} endpoint(s) get no traffic (lower priority, unhealthy or excluded): "
                     + ", ".join(e.backend.address or e.backend.name for e in skipped))
    if len(sources) > 1 or len(prios) > 1:
        notes.append(f"{cluster}: priority loads " + ", ".join(f"{lbl} {ld}%" for ld, lbl, _ in sources))
    children: list[Node] = []
    weights: list[int] = []
    for load, label, hosts in sources:
        children.append(_hosts_stage(cluster, label, hosts, policy=policy, unit=unit, factor=overprovisioning,
                                     locality_weighted=locality_weighted, notes=notes, provenance=provenance))
        weights.append(load)
    if len(children) == 1:
        return children[0]
    return Weighted(children=tuple(children), weights=tuple(weights), unit=unit,
                    name=f"priority {cluster}", provenance=provenance)


def _hosts_stage(
    cluster: str,
    label: str,
    hosts: Sequence[EP],
    *,
    policy: str,
    unit: str,
    factor: int,
    locality_weighted: bool,
    notes: list[str],
    provenance: Provenance | None,
) -> Node:
    def host_weights(hs: Sequence[EP]) -> tuple[int, ...]:
        if policy == "RANDOM":
            return (1,) * len(hs)
        return tuple(max(1, e.weight) for e in hs)

    def leaf_stage(hs: Sequence[EP], name: str) -> Weighted:
        return Weighted(children=tuple(e.backend for e in hs), weights=host_weights(hs), unit=unit,
                        name=name, provenance=provenance)

    if policy == "RANDOM" and any(e.weight != 1 for e in hosts):
        notes.append(f"{cluster}: RANDOM ignores load_balancing_weight (Envoy 1.40): equal shares")
    if policy in ("RING_HASH", "MAGLEV"):
        notes.append(f"{cluster}: {policy} shares modelled as proportional to weights; the real "
                     "ring/table shares deviate (ring: 22.9-26.4% for 4 equal hosts, reference §6.8)")
    if locality_weighted:
        locs: dict[tuple[tuple[str, str], ...], list[EP]] = {}
        for e in hosts:
            locs.setdefault(e.locality, []).append(e)
        if len(locs) > 1 or any(e.locality_weight for e in hosts):
            keys = list(locs)
            effs = []
            for k in keys:
                hs = locs[k]
                lw = hs[0].locality_weight or 0
                eligible = sum(1 for e in hs if e.health != "UNHEALTHY") if "panic" not in label else len(hs)
                effs.append(Fraction(lw) * min(Fraction(1), Fraction(factor, 100) * Fraction(eligible, len(hs))))
            if sum(effs) == 0:
                return Backend(name=f"503 no locality weight ({cluster})", labels=(("outcome", "503"),))
            ws = smallest_integer_weights(effs)
            kids = [leaf_stage(locs[k], f"{policy} {cluster} locality {dict(k) or '-'}") for k in keys]
            return Weighted(children=tuple(kids), weights=ws, unit=unit,
                            name=f"locality-weighted {cluster} ({label})", provenance=provenance)
    return leaf_stage(hosts, f"{policy} {cluster}" + ("" if label == "P0 healthy" else f" ({label})"))


# --------------------------------------------------------------------------- correlation


def correlated_weights(
    candidates: Sequence[tuple[tuple[int, int] | None, Sequence[tuple[str, int]]]],
) -> list[tuple[str, int]]:
    """Exact outcome masses when route ``runtime_fraction`` and weighted clusters share one random value.

    Envoy evaluates ``runtime_fraction`` as ``R % den < num`` and picks a weighted cluster by
    ``R % W`` with the same per-request value ``R`` (reference §1.4). With ``L`` the lcm of all
    moduli, every outcome is a union of residue intervals of ``R mod L``; this function counts
    them exactly (the ``2**64 mod L`` bias, below ``L / 2**64``, is ignored).

    Parameters
    ----------
    candidates : sequence of (fraction or None, clusters)
        Matching routes in order: ``fraction`` = ``(num, den)`` or ``None`` (unconditional);
        ``clusters`` = ``[(name, weight), ...]`` (one entry with any weight for a plain cluster).

    Returns
    -------
    list of (outcome, mass)
        Masses summing to ``L`` (outcome ``"404 NR"`` when no route takes a residue); every
        configured cluster is listed, with mass 0 when it is never reached.
    """
    moduli = []
    for frac, clusters in candidates:
        if frac is not None:
            moduli.append(frac[1])
        if len(clusters) > 1:
            moduli.append(sum(w for _, w in clusters))
    L = 1
    for m in moduli:
        L = L * m // math.gcd(L, m)
    points: set[int] = {0, L}
    budget = 0
    for frac, clusters in candidates:
        if frac is not None:
            den = frac[1]
            budget += 2 * (L // den)
            if budget > MAX_CORRELATION_POINTS:
                break
            for k in range(L // den):
                points.add(k * den)
                points.add(k * den + frac[0])
        if len(clusters) > 1:
            W = sum(w for _, w in clusters)
            cum = [0]
            for _, w in clusters:
                cum.append(cum[-1] + w)
            budget += (L // W) * len(cum)
            if budget > MAX_CORRELATION_POINTS:
                break
            for k in range(L // W):
                for c in cum:
                    points.add(k * W + c)
    if budget > MAX_CORRELATION_POINTS:
        raise ModelError(
            f"runtime_fraction correlation over R mod {L} needs more than {MAX_CORRELATION_POINTS:,} intervals"
        )
    order: list[str] = []
    mass: dict[str, int] = {}
    for _, clusters in candidates:
        for name, _ in clusters:
            if name not in mass:
                order.append(name)
                mass[name] = 0
    pts = sorted(p for p in points if 0 <= p <= L)
    for a, b in zip(pts, pts[1:], strict=False):
        if b <= a:
            continue
        outcome = "404 NR"
        for frac, clusters in candidates:
            if frac is not None and not a % frac[1] < frac[0]:
                continue
            if len(clusters) == 1:
                outcome = clusters[0][0]
            else:
                W = sum(w for _, w in clusters)
                v = a % W
                acc = 0
                for name, w in clusters:
                    if acc <= v < acc + w:
                        outcome = name
                        break
                    acc += w
            break
        if outcome not in mass:
            order.append(outcome)
            mass[outcome] = 0
        mass[outcome] += b - a
    return [(o, mass[o]) for o in order]


# --------------------------------------------------------------------------- envoy dump -> route


def envoy_dump_route(
    cfg: envoy_parser.EnvoyConfig,
    host: str,
    port: int,
    *,
    path: str = "/",
    headers: Mapping[str, str] | Iterable[tuple[str, str]] = (),
    address: str | None = None,
    authority: str | None = None,
    protocol: str = "http",
    namer: Callable[[envoy_parser.Endpoint, str], Backend] | None = None,
    name: str = "envoy",
) -> tuple[Route, envoy_parser.Resolution]:
    """Resolve a call through an Envoy config and build the :class:`Route` of its split.

    Returns
    -------
    route : Route
        Weighted clusters (or the runtime_fraction-correlated combination) over cluster
        stages over endpoints; failures (404 NR, 503 NC) are leaves of their own.
    resolution : Resolution
        The trace (listener, filter chain, route configuration, virtual host, route).
    """
    res = envoy_parser.resolve_call(cfg, host, port, path=path, headers=headers, address=address,
                                    authority=authority, protocol=protocol)
    notes: list[str] = list(res.notes)
    used: set[str] = set()
    hdrs = {str(k).lower(): str(v) for k, v in (headers.items() if isinstance(headers, Mapping) else headers)}

    def cluster_node(cname: str, unit: str) -> Node:
        cl = cfg.clusters.get(cname)
        if cl is None and cname not in cfg.assignments and cname not in cfg.host_statuses:
            return Backend(name=f"503 NC cluster not found ({cname})", labels=(("outcome", "503"),))
        if cl is not None and cl.type == "ORIGINAL_DST":
            return Backend(name=f"{cname} (original destination {address or host}:{port})",
                           address=f"{address or host}:{port}", labels=(("outcome", "passthrough"),))
        eps, factor, origin = cfg.endpoints_of(cname)
        policy = cl.lb_policy if cl is not None else "ROUND_ROBIN"
        out_eps = []
        for e in eps:
            if namer is not None:
                b = namer(e, cname)
            else:
                health = () if e.health == "HEALTHY" else (("health", e.raw_health),)
                b = Backend(name=e.key, address=e.key, labels=e.labels + health)
            if b.name in used:
                b = Backend(name=f"{cname}/{b.name}", address=b.address, labels=b.labels, provenance=b.provenance)
            used.add(b.name)
            out_eps.append(EP(backend=b, weight=e.weight, health=e.health, priority=e.priority, locality=e.locality,
                              locality_weight=e.locality_weight))
        prov = None
        if cl is not None and cl.source:
            prov = Provenance(cl.source, cl.line)
        notes.append(f"{cname}: lb_policy {policy}" + ("" if (cl is None or cl.lb_policy_explicit) else " (default)")
                     + f", {len(out_eps)} endpoint(s) from {origin}; endpoint LB modelled by its long-run share")
        return endpoint_stage(cname, out_eps, policy=policy, unit=unit, overprovisioning=factor,
                              panic_threshold=cl.panic_threshold if cl else envoy_parser.DEFAULT_PANIC_THRESHOLD,
                              locality_weighted=bool(cl and cl.locality_weighted), notes=notes, provenance=prov)

    root: Node
    if res.failure is not None:
        root = Backend(name=res.failure.split(":")[0] if res.failure.startswith("404") else res.failure,
                       labels=(("outcome", "error"),))
    elif res.protocol == "tcp":
        if len(res.tcp_clusters) == 1:
            root = cluster_node(res.tcp_clusters[0][0], "connection")
        else:
            kids = [cluster_node(n, "connection") for n, w in res.tcp_clusters]
            root = Weighted(children=tuple(kids), weights=tuple(w for _, w in res.tcp_clusters), unit="connection",
                            name="tcp_proxy weighted_clusters (per connection)")
    else:
        cands = res.candidates
        conditional = any(c.fraction is not None for c in cands)
        if not conditional:
            c = cands[0]
            root = _action_node(c.action, cluster_node, hdrs, notes)
        else:
            items = []
            for c in cands:
                if c.action[0] == "cluster":
                    items.append((c.fraction, [(c.action[1], 1)]))
                elif c.action[0] == "weighted":
                    ws = [(n, w) for n, w in c.action[1]]
                    if c.action[2].get("header_name") or c.action[2].get("use_hash_policy"):
                        notes.append(f"route {c.name}: weighted clusters keyed by a header: the correlation "
                                     "is computed for requests without that header")
                    items.append((c.fraction, ws))
                else:
                    items.append((c.fraction, [(f"{c.action[0]} {c.action[1]}".strip(), 1)]))
            masses = correlated_weights(items)
            g = 0
            for _, m in masses:
                g = math.gcd(g, m)
            kids, ws = [], []
            for outcome, m in masses:
                if outcome in cfg.clusters or outcome in cfg.assignments:
                    kids.append(cluster_node(outcome, "request"))
                else:
                    kids.append(Backend(name=outcome, labels=(("outcome", "error"),)))
                ws.append(m // g if g else m)
            total = sum(m for _, m in masses)
            notes.append(
                "runtime_fraction routes and weighted clusters use the same per-request random value R "
                f"(reference §1.4): shares counted exactly over R mod {total}"
            )
            root = Weighted(children=tuple(kids), weights=tuple(ws), unit="request",
                            name=f"runtime_fraction + weighted clusters (one R mod {total})")
    route = Route(root=root, name=name, notes=tuple(dict.fromkeys(notes)))
    return route, res


def _action_node(action: tuple[Any, ...], cluster_node: Callable[[str, str], Node], hdrs: Mapping[str, str],
                 notes: list[str]) -> Node:
    kind = action[0]
    if kind == "cluster":
        return cluster_node(action[1], "request")
    if kind == "weighted":
        items, opts = action[1], action[2]
        if opts.get("runtime_key_prefix"):
            notes.append(f"weighted clusters have runtime_key_prefix {opts['runtime_key_prefix']!r}: "
                         "runtime overrides would change the weights; configured weights used")
        if opts.get("total_weight"):
            notes.append("total_weight is deprecated and ignored by Envoy (weights are relative)")
        hn = opts.get("header_name")
        if hn:
            val = hdrs.get(str(hn).lower())
            if val is not None and val.isdigit() and int(val) < 2**64:
                W = sum(w for _, w in items)
                v = int(val) % W
                acc = 0
                for n, w in items:
                    if acc <= v < acc + w:
                        notes.append(f"header {hn}: {val} -> {v} mod {W}: always {n}")
                        return cluster_node(n, "request")
                    acc += w
            notes.append(f"weighted clusters read the random value from header {hn!r}; absent or invalid here, "
                         "so Envoy falls back to its random value")
        if opts.get("use_hash_policy"):
            notes.append("use_hash_policy: each hash key always gets the same cluster (xxHash64 of the key mod total "
                         "weight); over many keys, or without the key, the split is the weights")
        kids = [cluster_node(n, "request") for n, _ in items]
        return Weighted(children=tuple(kids), weights=tuple(w for _, w in items), unit="request",
                        name="weighted clusters " + "/".join(str(w) for _, w in items))
    if kind == "direct_response":
        return Backend(name=f"direct_response {action[1]}", labels=(("outcome", "direct"),))
    if kind == "redirect":
        return Backend(name="redirect", labels=(("outcome", "redirect"),))
    notes.append(f"route action not modelled: {action[1]}")
    return Backend(name=f"not modelled: {action[1]}", labels=(("outcome", "error"),))


# --------------------------------------------------------------------------- the mesh


@dataclass
class ClientPath:
    """One way a call to a service can go, with its Route and who takes it."""

    kind: str  # "kube-proxy" | "sidecar" | "uid-1337" | "envoy-dump"
    label: str
    route: Route
    clients: list[str] = field(default_factory=list)
    layers: list[Layer] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Layer:
    """One stage of the layered view: what decides, how, and where it is configured."""

    layer: str
    component: str
    decision: str
    unit: str = ""
    where: str = ""


def _request_matches(vs_match: Any, path: str, headers: Mapping[str, str], method: str, authority: str,
                     port: int, client_labels: Mapping[str, str], client_ns: str, notes: list[str]) -> bool:
    import re

    def sm(kind_value: tuple[str, str] | None, value: str | None, ignore_case: bool = False) -> bool:
        if kind_value is None:
            return True
        kind, pat = kind_value
        if value is None:
            return False
        if kind == "present":
            return True
        v, p = (value.lower(), pat.lower()) if ignore_case else (value, pat)
        if kind == "exact":
            return v == p
        if kind == "prefix":
            return v.startswith(p)
        return re.fullmatch(pat, value) is not None

    m = vs_match
    if not sm(m.uri, path.split("?", 1)[0], m.ignore_uri_case):
        return False
    for name, kind, val in m.headers:
        if not sm((kind, val), headers.get(name)):
            return False
    for name, kind, val in m.without_headers:
        if sm((kind, val), headers.get(name)):
            return False
    if not sm(m.method, method) or not sm(m.authority, authority):
        return False
    if m.port is not None and m.port != port:
        return False
    if not _labels_subset(m.source_labels, client_labels):
        return False
    if m.source_namespace is not None and m.source_namespace != client_ns:
        return False
    if m.gateways and "mesh" not in m.gateways:
        return False
    if m.unsupported:
        notes.append(f"match fields {', '.join(m.unsupported)} not evaluated (assumed to hold)")
    return True


class Mesh:
    """A set of manifests as a mesh: pods, services, routing rules and the injection decision.

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

    def __init__(
        self,
        manifests: Manifests,
        *,
        scale: Mapping[str, int] | None = None,
        injector: InjectorConfig = InjectorConfig(),
        cluster_domain: str = "cluster.local",
    ) -> None:
        self.manifests = manifests
        self.injector = injector
        self.domain = cluster_domain
        self.diagnostics: list[Diagnostic] = list(manifests.diagnostics)
        self.notes: list[str] = []
        self.replicas: dict[int, int] = {}
        for ref, r in (scale or {}).items():
            if r < 0:
                raise InvalidArgument(f"--scale {ref}={r}: replicas must be >= 0")
            w = manifests.workload(ref)
            if w.meta.kind == "Pod":
                raise InvalidArgument(f"--scale {ref}: a Pod cannot be scaled (use its Deployment/StatefulSet)")
            self.replicas[id(w)] = r
            self.notes.append(f"what-if: {w.meta.kind} {w.meta.ref} scaled from {w.replicas} to {r} replica(s)")
        self.pods = self._expand_pods()
        self.registry = self._build_registry()

    # ------------------------------------------------------------------ pods & registry

    def _expand_pods(self) -> list[Pod]:
        counts = [(self.replicas.get(id(w), w.replicas), w) for w in self.manifests.workloads]
        if sum(n for n, _ in counts) > MAX_PODS:
            n, w = max(counts, key=lambda c: c[0])
            scaled = id(w) in self.replicas
            raise (InvalidArgument if scaled else ModelError)(
                f"{w.meta.kind} {w.meta.ref} has {n:,} replicas; meshstat expands at most {MAX_PODS:,} pods "
                "in all (each pod is a backend)",
                **({} if scaled else {"source": w.meta.source, "line": w.replicas_line or w.meta.line}),
            )
        taken = {w.pod_ip for w in self.manifests.workloads if w.pod_ip}
        pods = []
        synthetic = False
        for w in self.manifests.workloads:
            n = self.replicas.get(id(w), w.replicas)
            for i in range(n):
                name = w.meta.name if w.meta.kind == "Pod" else f"{w.meta.name}-{i}"
                if w.pod_ip:
                    ip, syn = w.pod_ip, False
                else:
                    ip, syn = _synthetic_ip(f"{w.meta.namespace}/{name}", taken), True
                    synthetic = True
                pods.append(Pod(name, w.meta.namespace, w, w.pod_labels, ip, syn))
        if synthetic:
            self.notes.append("pods without status.podIP get deterministic synthetic IPs in 10.244.0.0/16 "
                              "(crc32 of namespace/name); pod names are <workload>-<index>")
        return pods

    def _build_registry(self) -> dict[str, ServiceInfo]:
        reg: dict[str, ServiceInfo] = {}
        for s in self.manifests.services:
            fqdn = f"{s.meta.name}.{s.meta.namespace}.svc.{self.domain}"
            reg[fqdn] = ServiceInfo(fqdn, s.meta.namespace, s.meta.name, s.ports, s.meta.source, s.meta.line,
                                    service=s)
        for se in self.manifests.service_entries:
            for h in se.hosts:
                reg.setdefault(h, ServiceInfo(h, se.meta.namespace, se.meta.name, se.ports, se.meta.source,
                                              se.meta.line, entry=se))
        return reg

    def namespace(self, name: str) -> Namespace | None:
        """The Namespace object, if the manifests have one."""
        return self.manifests.namespaces.get(name)

    def injection(self, w: Workload) -> InjectionDecision:
        """The sidecar injection decision for a workload's pods."""
        return injection_decision(w, self.namespace(w.meta.namespace), self.injector)

    def resolve_host(self, host: str, namespace: str) -> ServiceInfo | None:
        """A VirtualService/DestinationRule host as Istio reads it (``ResolveShortnameToFQDN``).

        A name without a dot is ``<name>.<namespace of the rule>.svc.<domain>``; anything with
        a dot is taken literally.
        """
        if host in self.registry:
            return self.registry[host]
        if "." not in host and host != "*":
            return self.registry.get(f"{host}.{namespace}.svc.{self.domain}")
        return None

    def find_service(self, text: str, client_ns: str | None = None) -> tuple[ServiceInfo, int | None]:
        """A service named ``name``, ``name.ns``, FQDN or SE host, optionally ``:port``."""
        host, _, p = text.rpartition(":") if ":" in text else (text, "", "")
        port = None
        if p:
            if not p.isdigit():
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

    def endpoints(self, info: ServiceInfo, port: int, diags: list[Diagnostic] | None = None) -> list[EP]:
        """Endpoints of ``info`` for its port ``port`` (pods selected by the Service, or SE endpoints)."""
        sp = info.port(port)
        if sp is None:
            return []
        out: list[EP] = []
        if info.service is not None:
            sel = info.service.selector
            if not sel:
                if diags is not None:
                    diags.append(Diagnostic("warning", f"Service {info.short} has no selector: its endpoints are "
                                            "managed by hand and not modelled", info.source, info.line))
                return []
            for pod in self.pods:
                if pod.namespace != info.namespace or not _labels_subset(sel, dict(pod.labels)):
                    continue
                tp = sp.target_port
                if isinstance(tp, str):
                    num = next((c[1] for c in pod.workload.container_ports if c[0] == tp), None)
                    if num is None:
                        if diags is not None:
                            diags.append(Diagnostic("warning", f"Service {info.short} targetPort {tp!r}: pod {pod.name}"
                                                    " has no container port of that name (not an endpoint)",
                                                    info.source, sp.line))
                        continue
                    tp = num
                out.append(EP(backend=pod.backend(int(tp))))
            return out
        se = info.entry
        assert se is not None
        for e in se.endpoints:
            pnum = dict(e.ports).get(sp.name) or (sp.target_port if isinstance(sp.target_port, int) else sp.port)
            name = f"{e.address}:{pnum}"
            out.append(EP(backend=Backend(name=name, address=name, labels=e.labels,
                                          provenance=Provenance(se.meta.source, e.line)),
                          weight=e.weight, locality=((("zone", e.locality),) if e.locality else ())))
        if not se.endpoints and se.resolution.upper() in ("DNS", "DNS_ROUND_ROBIN", "NONE"):
            name = f"{info.fqdn}:{sp.port}"
            out.append(EP(backend=Backend(name=name, address=name, provenance=Provenance(se.meta.source,
                                                                                          se.meta.line))))
        return out

    # ------------------------------------------------------------------ rules

    def _visible(self, export_to: Sequence[str], rule_ns: str, client_ns: str) -> bool:
        if not export_to:
            return True
        return any(e == "*" or (e == "." and rule_ns == client_ns) or e == client_ns for e in export_to)

    def virtual_service(self, info: ServiceInfo, client_ns: str, diags: list[Diagnostic]) -> VirtualService | None:
        """The VirtualService a sidecar in ``client_ns`` applies to ``info`` (first one, in file order)."""
        found = []
        for vs in self.manifests.virtual_services:
            if not vs.applies_to_sidecars or not self._visible(vs.export_to, vs.meta.namespace, client_ns):
                continue
            for h in vs.hosts:
                if self._host_matches(h, vs.meta.namespace, info):
                    found.append(vs)
                    break
        if len(found) > 1:
            diags.append(Diagnostic("warning", f"{len(found)} VirtualServices for {info.fqdn}: Istio merges them only "
                                    "for gateways; the first (oldest) is used: " + found[0].meta.ref,
                                    found[1].meta.source, found[1].meta.line))
        return found[0] if found else None

    def _host_matches(self, h: str, ns: str, info: ServiceInfo) -> bool:
        if h == "*":
            return True
        if h.startswith("*."):
            return info.fqdn.endswith(h[1:])
        r = self.resolve_host(h, ns)
        return r is info

    def destination_rule(self, info: ServiceInfo, client_ns: str) -> DestinationRule | None:
        """The DestinationRule for ``info`` visible from ``client_ns`` (client ns, then the service's)."""
        cands = [dr for dr in self.manifests.destination_rules
                 if self._visible(dr.export_to, dr.meta.namespace, client_ns)
                 and self.resolve_host(dr.host, dr.meta.namespace) is info]
        for ns in (client_ns, info.namespace):
            for dr in cands:
                if dr.meta.namespace == ns:
                    return dr
        return cands[0] if cands else None

    # ------------------------------------------------------------------ routes

    def kube_proxy_route(self, info: ServiceInfo, port: int, *, name: str = "kube-proxy",
                         diags: list[Diagnostic] | None = None, notes: Sequence[str] = ()) -> Route:
        """kube-proxy's cascade over all endpoints of the Service (per connection)."""
        eps = self.endpoints(info, port, diags)
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
        nts = [*notes, f"kube-proxy (iptables mode) picks one of {len(backs)} endpoint(s) per connection, "
               "endpoints sorted as ip:port strings (proxier.go: writeServiceToEndpointRules)"]
        if info.entry is not None:
            nts.append(f"{info.fqdn} is a ServiceEntry: without a sidecar there is no kube-proxy rule; "
                       "the client resolves it by DNS (shown as kube-proxy over its endpoints for comparison)")
        return Route(root=root, name=name, provenance=prov, notes=tuple(nts))

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
        info: ServiceInfo,
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
                diags.append(Diagnostic("warning", f"subset {subset!r} of {target.short} is not defined by any "
                                        "DestinationRule: the cluster does not exist (503 NC)", src, line))
                return Backend(name=f"503 NC no cluster ({cname})", labels=(("outcome", "503"),), provenance=prov)
            sub_labels = s.labels
        eps_all = self.endpoints(target, cport, diags)
        eps = [e for e in eps_all if _labels_subset(sub_labels, dict(e.backend.labels))]
        policy, why = self._lb_policy(dr, subset, cport)
        if not eps:
            what = f"subset {subset!r} (labels {dict(sub_labels)})" if subset else f"{target.short}"
            diags.append(Diagnostic("warning", f"{what} selects no pods: cluster {cname} is empty and its share "
                                    "returns 503 no_healthy_upstream", (dr.meta.source if (dr and subset) else src),
                                    (next((s.line for s in dr.subsets if s.name == subset), line) if (dr and subset)
                                     else line)))
        notes.append(f"{cname}: lb_policy {policy} ({why}); {len(eps)} endpoint(s); endpoint LB modelled by its "
                     "long-run share")
        layers.append(Layer("Envoy cluster", cname, f"{policy} over {len(eps)} endpoint(s)"
                            + (f" with labels {dict(sub_labels)}" if sub_labels else ""), unit,
                            f"{dr.meta.where}" if dr else ""))
        return endpoint_stage(cname, eps, policy=policy, unit=unit, notes=notes, provenance=prov)

    def sidecar_route(
        self,
        client: Workload | None,
        info: ServiceInfo,
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
        proto = _port_protocol(sp)
        vs = self.virtual_service(info, client_ns, diags)
        authority = f"{info.name if info.service else info.fqdn}:{port}"
        hdrs = {k.lower(): v for k, v in (headers or {}).items()}
        unit = "request"
        layers.append(Layer("Envoy listener", f"0.0.0.0_{port}", "virtualOutbound 0.0.0.0:15001 (use_original_dst) "
                            f"hands the connection to 0.0.0.0_{port}", "connection"))
        if proto == "tcp" or (vs is not None and not vs.http and vs.tcp):
            unit = "connection"
        root: Node
        if vs is None:
            layers.append(Layer("Envoy route", f"route {port}", f"no VirtualService: default route to "
                                f"outbound|{port}||{info.fqdn}", unit))
            notes.append(f"no VirtualService for {info.fqdn}: Istio's default route (one cluster, all endpoints)")
            root = self._cluster_node(None, info, port, client_ns, unit, None, diags, notes, layers)
        elif unit == "connection":
            rule = None
            for r in vs.tcp:
                if (not r.ports or port in r.ports) and _labels_subset(r.source_labels, client_labels):
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
                if not r.matches or any(_request_matches(m, path, hdrs, method, authority, port, client_labels,
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
                                 "(fault aborts, mirrors and retries change what upstreams see)")
                label = f"VirtualService {vs.meta.ref} http[{rule.index}]" + (f" {rule.name!r}" if rule.name else "")
                root = self._split(vs, rule.destinations, info, port, client_ns, unit, diags, notes, layers, label,
                                   rule.line)
        return Route(root=root, name=name, provenance=Provenance(vs.meta.source, vs.meta.line) if vs else None,
                     notes=tuple(dict.fromkeys(notes)))

    def _split(self, vs: VirtualService, dests: Sequence[RouteDestination], info: ServiceInfo, port: int,
               client_ns: str, unit: str, diags: list[Diagnostic], notes: list[str], layers: list[Layer],
               label: str, line: int) -> Node:
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
        kids = [self._cluster_node(d, info, port, client_ns, unit, vs, diags, notes, layers) for d in kept]
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

    def routed_services(self) -> list[tuple[ServiceInfo, int]]:
        """(service, port) pairs a sidecar-facing VirtualService routes (all ports of the host)."""
        out: list[tuple[ServiceInfo, int]] = []
        for vs in self.manifests.virtual_services:
            if not vs.applies_to_sidecars:
                continue
            matched = False
            for h in vs.hosts:
                for info in self.registry.values():
                    if h != "*" and self._host_matches(h, vs.meta.namespace, info):
                        matched = True
                        for p in info.ports:
                            if (info, p.port) not in out:
                                out.append((info, p.port))
            if not matched:
                self.diagnostics.append(Diagnostic(
                    "warning", f"VirtualService {vs.meta.ref}: host(s) {', '.join(vs.hosts)} match no Service or "
                    "ServiceEntry in the manifests", vs.meta.source, vs.meta.line))
        return out

    def client_workloads(self, info: ServiceInfo) -> list[Workload]:
        """Workloads that are plausible clients of ``info`` (not its own backends)."""
        sel = info.service.selector if info.service is not None else None
        out = []
        for w in self.manifests.workloads:
            if sel and w.meta.namespace == info.namespace and _labels_subset(sel, w.labels):
                continue
            out.append(w)
        return out

    def client_paths(self, info: ServiceInfo, port: int, *, client: Workload | None = None, path: str = "/",
                     headers: Mapping[str, str] | None = None, envoy: envoy_parser.EnvoyConfig | None = None,
                     diags: list[Diagnostic] | None = None) -> list[ClientPath]:
        """Every way a call to ``info:port`` can go: kube-proxy, sidecar, the sidecar's own, and a dump."""
        diags = diags if diags is not None else []
        clients = [client] if client is not None else self.client_workloads(info)
        decisions = {id(w): self.injection(w) for w in clients}
        for w in clients:
            d = decisions[id(w)]
            if not d.injected and d.namespace_labelled:
                diags.append(Diagnostic("warning", f"{w.meta.kind} {w.meta.ref} never reaches Envoy although "
                                        f"namespace {w.meta.namespace} is labelled for injection: {d.reason}",
                                        w.meta.source, w.meta.line))
        kp = self.kube_proxy_route(info, port, name="no sidecar (kube-proxy)", diags=diags)
        layers_sc: list[Layer] = []
        sc_client = client if client is not None else next((w for w in clients if decisions[id(w)].injected), None)
        sc = self.sidecar_route(sc_client, info, port, path=path, headers=headers, name="sidecar (Envoy)",
                                diags=diags, layers=layers_sc)
        own = self.kube_proxy_route(info, port, name="sidecar's own (UID 1337, kube-proxy)", diags=None,
                                    notes=("istio-proxy runs as UID 1337: ISTIO_OUTPUT returns its connections "
                                           "(-m owner --uid-owner 1337 -j RETURN), so they are not captured",))
        paths = [
            ClientPath("kube-proxy", kp.name, kp,
                       [f"{w.meta.ref}" for w in clients if not decisions[id(w)].injected],
                       self._kube_layers(info, port, "app container, no sidecar")),
            ClientPath("sidecar", sc.name, sc, [f"{w.meta.ref}" for w in clients if decisions[id(w)].injected],
                       self._capture_layers(info, port) + layers_sc + [
                           Layer("network", "pod IP", "Envoy connects to the chosen pod IP:targetPort directly; "
                                 "kube-proxy's ClusterIP DNAT is not involved", "connection")]),
            ClientPath("uid-1337", own.name, own,
                       [f"{w.meta.ref} (istio-proxy)" for w in clients if decisions[id(w)].injected],
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
        # warnings for 503 shares
        for p in paths:
            shares = p.route.exact_shares()
            for b, s in zip(p.route.backends(), shares, strict=True):
                if dict(b.labels).get("outcome") in ("503", "404", "reject", "error") and s > 0:
                    pv = b.provenance
                    diags.append(Diagnostic("warning", f"{p.label}: {s} ({float(s) * 100:.4g}%) of "
                                            f"{'connections' if p.route.root and _unit(p.route) == 'connection' else 'requests'}"
                                            f" to {info.short}:{port} fail: {b.name}",
                                            pv.source if pv else None, pv.line if pv else None))
        return paths

    def envoy_namer(self, envoy_cfg: envoy_parser.EnvoyConfig | None = None
                    ) -> Callable[[envoy_parser.Endpoint, str], Backend]:
        """Name Envoy endpoints after the manifests' pods.

        By IP; else by the endpoint's Istio workload metadata when that workload has one pod;
        else, for a subset cluster with one endpoint whose subset selects one pod, that pod.
        Otherwise ``workload@ip:port`` or ``ip:port``, labelled with the subset's labels.
        """
        by_ip = {p.ip: p for p in self.pods}
        by_name = {p.name: p for p in self.pods}
        by_workload: dict[tuple[str, str], list[Pod]] = {}
        for p in self.pods:
            by_workload.setdefault((p.namespace, p.workload.meta.name), []).append(p)

        def namer(e: envoy_parser.Endpoint, cluster: str) -> Backend:
            pod = by_ip.get(e.address)
            if pod is None and e.workload and e.namespace:
                same = by_workload.get((e.namespace, e.workload), [])
                if len(same) == 1:  # the dump's Istio workload metadata names a one-replica workload
                    pod = same[0]
            labels = e.labels
            parts = cluster.split("|")
            if pod is None and len(parts) == 4 and parts[0] == "outbound" and parts[1].isdigit():
                # Istio cluster outbound|port|subset|fqdn: its endpoints carry the subset's labels
                info = self.registry.get(parts[3])
                if info is not None:
                    sub: tuple[tuple[str, str], ...] = ()
                    if parts[2]:
                        drs = [d for d in self.manifests.destination_rules
                               if self.resolve_host(d.host, d.meta.namespace) is info and d.subset(parts[2])]
                        sub = drs[0].subset(parts[2]).labels if drs else ()  # type: ignore[union-attr]
                        labels = labels or sub
                    cands = [x for x in self.endpoints(info, int(parts[1]))
                             if _labels_subset(sub, dict(x.backend.labels))]
                    n_in_dump = len(envoy_cfg.endpoints_of(cluster)[0]) if envoy_cfg is not None else 0
                    if len(cands) == 1 and n_in_dump == 1 and parts[2]:
                        pod = by_name.get(cands[0].backend.name)
            if pod is not None:
                return Backend(name=pod.name, address=e.key, labels=pod.labels)
            name = f"{e.workload}@{e.key}" if e.workload else e.key
            health = () if e.health == "HEALTHY" else (("health", e.raw_health),)
            return Backend(name=name, address=e.key, labels=labels + health)

        return namer

    def _capture_layers(self, info: ServiceInfo, port: int) -> list[Layer]:
        return [
            Layer("client", "app container", f"connect() to {info.short}:{port} "
                  f"({'ClusterIP ' + info.service.cluster_ip if info.service and info.service.cluster_ip else 'ClusterIP'})",
                  "connection"),
            Layer("iptables (pod netns)", "nat OUTPUT -> ISTIO_OUTPUT -> ISTIO_REDIRECT",
                  "TCP from UID != 1337 to a non-loopback address: REDIRECT --to-ports 15001 (istio-init / "
                  "istio-cni capture rules; traceable with meshstat.netfilter on "
                  "fixtures/iptables/istio-cni-sidecar-basic.iptables-save)", "connection"),
        ]

    def _kube_layers(self, info: ServiceInfo, port: int, who: str) -> list[Layer]:
        n = len(self.endpoints(info, port))
        return [
            Layer("client", who, f"connect() to {info.short}:{port}", "connection"),
            Layer("iptables (node)", "KUBE-SERVICES -> KUBE-SVC-*", f"statistic cascade over {n} endpoint(s), "
                  "DNAT to the chosen pod (once per connection)", "connection", info.source + f":{info.line}"),
        ]


def _unit(route: Route) -> str:
    root = route.root
    return root.unit if isinstance(root, Stage) else "request"


# --------------------------------------------------------------------------- public entry point


@dataclass(frozen=True)
class PathSplit:
    """One client path to one service: its route and, once simulated, its result."""

    service: str
    path: str
    kind: str
    route: Route
    clients: tuple[str, ...]
    result: Any = None


@dataclass(frozen=True)
class MeshComparison:
    """What :func:`compare_paths` returns: every client path to every routed service.

    Attributes
    ----------
    paths : tuple of PathSplit
        One entry per (service, client path), in table order.
    diagnostics : tuple of Diagnostic
        Warnings and notes, each with its file and line.
    notes : tuple of str
        Remarks on the model (what-if scaling, approximations).
    """

    mesh: Mesh
    paths: tuple[PathSplit, ...]
    diagnostics: tuple[Diagnostic, ...]
    notes: tuple[str, ...]

    def entries(self) -> list[dict[str, Any]]:
        """Rows for :mod:`meshstat.report.mesh` (``service``, ``path``, ``route``, ``result``, ``clients``)."""
        return [
            {"service": p.service, "path": p.path, "route": p.route, "result": p.result, "clients": list(p.clients)}
            for p in self.paths
        ]

    def to_frame(self, *, wide: bool = True) -> Any:
        """Side-by-side table (``wide=True``) or the tidy long table (:data:`meshstat.report.mesh.LONG_SCHEMA`)."""
        from meshstat.report import mesh as rep

        return rep.wide_frame(self.entries()) if wide else rep.long_frame(self.entries())

    def shares(self, service: str | None = None, *, by: str = "version") -> dict[str, dict[str, Fraction]]:
        """Exact shares per path label: ``{"sidecar (Envoy)": {"v1": Fraction(9, 10), ...}}``.

        ``by="version"`` sums pods by their ``version`` label; ``by="backend"`` keeps pods apart.
        """
        out: dict[str, dict[str, Fraction]] = {}
        for p in self.paths:
            if service is not None and p.service != service:
                continue
            acc: dict[str, Fraction] = {}
            for b, s in zip(p.route.backends(), p.route.exact_shares(), strict=True):
                key = version_of(b.labels) if by == "version" else b.name
                acc[key] = acc.get(key, Fraction(0)) + s
            out[p.path] = acc
        return out


def compare_paths(
    filenames: str | Sequence[str],
    *,
    scale: Mapping[str, int] | None = None,
    client: str | None = None,
    service: str | None = None,
    envoy: str | Sequence[str] | None = None,
    path: str = "/",
    headers: Mapping[str, str] | None = None,
    n: int | None = 1_000_000,
    rng: Any = None,
) -> MeshComparison:
    """Every client path to every routed service of a set of manifests, with exact and simulated splits.

    The API behind ``python -m meshstat compare -f DIR``.

    Parameters
    ----------
    filenames : str or sequence of str
        Manifest files or directories (YAML, multi-document, ``kind: List``).
    scale : mapping, optional
        What-if replica counts, ``{"deploy/bill-service-v1": 3}``.
    client : str, optional
        Only this client workload (``ns/name``).
    service : str, optional
        Only this service (``host[:port]``); default: every service a VirtualService routes.
    envoy : str or sequence of str, optional
        An Envoy ``config_dump`` (or istioctl outputs) of the injected client: adds a path.
    path, headers
        The request (for route matching).
    n : int or None
        Requests simulated per path through :func:`meshstat.engine.compare` (one seed for
        all paths); ``None`` skips the simulation.
    rng
        Seed (see :mod:`meshstat.seeding`).
    """
    from meshstat.parsers.k8s import load_manifests

    files = [filenames] if isinstance(filenames, str) else list(filenames)
    if not files:
        raise InvalidArgument("give at least one manifest file or directory")
    mesh = Mesh(load_manifests(files), scale=scale)
    wl = mesh.manifests.workload(client) if client else None
    env_cfg = None
    if envoy:
        env_cfg = envoy_parser.load_envoy([envoy] if isinstance(envoy, str) else list(envoy))
    if service:
        info, port = mesh.find_service(service, wl.meta.namespace if wl else None)
        if port is None:
            if len(info.ports) != 1:
                raise InvalidArgument(f"{info.short} has several ports; give the service as HOST:PORT")
            port = info.ports[0].port
        pairs = [(info, port)]
    else:
        pairs = mesh.routed_services()
        if not pairs:
            raise InvalidArgument("no VirtualService in the manifests routes a known Service; name a service")
    diags: list[Diagnostic] = []
    notes: list[str] = list(mesh.notes)
    found: list[PathSplit] = []
    for info, port in pairs:
        for p in mesh.client_paths(info, port, client=wl, path=path, headers=headers, envoy=env_cfg, diags=diags):
            found.append(PathSplit(f"{info.short}:{port}", p.label, p.kind, p.route, tuple(p.clients)))
            notes.extend(f"{p.label}: {x}" for x in p.route.notes if "long-run share" not in x)
    if wl is not None:
        notes.insert(0, f"client {wl.meta.ref}: {mesh.injection(wl)}")
    if n is not None:
        from meshstat.engine import compare

        results = compare([p.route for p in found], n, rng=rng)
        found = [
            PathSplit(p.service, p.path, p.kind, p.route, p.clients, r) for p, r in zip(found, results, strict=True)
        ]
    return MeshComparison(mesh, tuple(found), tuple(mesh.diagnostics + diags), tuple(notes))
