"""Observed layers: a node's real kube-proxy rules and a workload's real Envoy dump, in place of the model.

``meshstat audit --iptables NODE=FILE`` (or ``--nft NODE=FILE``) replaces the modelled kube-proxy
layer: for clients without a sidecar, the split of each Service port that a VirtualService or the
Service's routes (GAMMA) split is the one the node's ruleset gives
(:func:`meshstat.kubeproxy.find_service` by cluster IP and port, then
:func:`meshstat.kubeproxy.service_route`'s exact shares). An endpoint is named as the model names
the pod behind its IP (:func:`meshstat.audit.core.destination_label`: the subset or backendRef that
selects it, else ``unrouted <version>``) when the input has placed Pods, by ``IP:port`` otherwise.
The modelled ``no-sidecar`` rows are then not written: one row per node whose rules diverge.

``--envoy WORKLOAD=FILE`` replaces the modelled sidecar of one workload: the workload leaves its
modelled client group, and for each such Service port its split is the one its config_dump gives
(:func:`meshstat.mesh.envoy.envoy_dump_route`), one share per cluster (labelled by the cluster's
subset, by the backendRef of a backend Service's cluster, or ``503`` for a failure leaf); a Service's
routes are those that apply to a sidecar in the workload's namespace. A split that differs from the configured one is an
``envoy-config-differs`` row: the dump shows what the proxy does, not why (an older push, a rule
istiod did not give it; ``meshstat mesh --client`` gives the model's reasons).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from meshstat.audit.core import (
    AuditContext,
    ClientClass,
    Divergence,
    clients_label,
    destination_label,
    injection_fixes,
)
from meshstat.audit.gateway import route_split, service_route_ports, unmeshed
from meshstat.audit.istio import routed_ports, unmeshed_by_rule
from meshstat.errors import MeshstatError
from meshstat.kubeproxy import find_service, service_route
from meshstat.mesh.envoy import envoy_dump_route

__all__ = ["Observed", "observed_reasons"]

_CLUSTER = re.compile(r"outbound\|\d+\|([^|]*)\|(\S+)")


@dataclass
class Observed:
    """Real layers given on the command line: ``rulesets`` by node, Envoy ``dumps`` by workload (``ns/name``)."""

    rulesets: Mapping[str, Any] = field(default_factory=dict)
    dumps: Mapping[str, Any] = field(default_factory=dict)
    sources: Mapping[str, str] = field(default_factory=dict)  # node or workload -> file

    def __bool__(self) -> bool:
        return bool(self.rulesets or self.dumps)


def _add(split: dict[str, Fraction], label: str, share: Fraction) -> None:
    split[label] = split.get(label, Fraction(0)) + share


def _routed(ctx: AuditContext, kube: list[ClientClass]
            ) -> Iterator[tuple[Any, int, str, Any, dict[str, tuple[tuple[str, str], ...]], list[ClientClass]]]:
    """(Service, port, the rule, its configured split, destination label -> pod labels, the clients without a
    sidecar it is configured for) of every Service port a VirtualService or a Service's routes split."""
    for info, port, vs, configured, labels_of in routed_ports(ctx):
        if mine := unmeshed_by_rule(ctx, info, port, kube, vs):
            yield info, port, f"VirtualService {vs.meta.ref}", configured, labels_of, mine
    for t in unmeshed(ctx, service_route_ports(ctx)):
        if t.kube:
            yield t.info, t.port, t.rule, t.configured, t.labels_of, list(t.kube)


def _kube_proxy_rows(ctx: AuditContext, obs: Observed) -> Iterator[Divergence]:
    classes = [c for c in ctx.classes if c.kind == "kube-proxy"]
    if not classes:
        return
    labels_at = {p.ip: dict(p.labels) for p in ctx.mesh.manifests.topology.pods if p.ip}
    for node, ruleset in obs.rulesets.items():
        for info, port, rule, configured, labels_of, kube in _routed(ctx, classes):
            svc = info.service
            key = f"{svc.cluster_ip}:{port}" if svc is not None and svc.cluster_ip else f"{info.namespace}/{info.name}"
            try:
                route = service_route(find_service(ruleset, key))
            except MeshstatError as exc:
                ctx.note(f"node {node}: {info.namespace}/{info.name}:{port} not read from the rules: "
                         f"{str(exc).splitlines()[0]}")
                continue
            eff: dict[str, Fraction] = {}
            for b, share in zip(route.backends(), route.expected_shares()[0], strict=True):
                ip = b.name.rsplit(":", 1)[0]
                # an endpoint is named as the model names its pod: by the destination that selects it
                _add(eff, destination_label(labels_of, labels_at[ip]) if ip in labels_at else b.name, share)
            effective = tuple(eff.items())
            if dict(effective) == dict(configured):
                continue
            who, n = clients_label(kube)
            yield Divergence(
                f"{info.namespace}/{info.name}:{port}", f"on node {node}: {who}", n, configured, effective,
                "no-sidecar",
                f"no sidecar: kube-proxy's rules on node {node} ({obs.sources.get(node, '')}) pick one of "
                f"{len(route.backends())} endpoints; {rule} is not applied",
                ctx.of_group("injection", lambda cl: injection_fixes(ctx.mesh, cl), kube), "no mesh")


def _envoy_label(node: Any) -> str:
    name = getattr(node, "name", "") or ""
    m = _CLUSTER.search(name)
    if m is not None:
        return m.group(1) or m.group(2)
    return "503" if "503" in name else name


def _envoy_targets(ctx: AuditContext, namespace: str
                   ) -> Iterator[tuple[Any, int, str, Any, dict[str, str] | None]]:
    """(Service, port, the rule, its configured split, backend FQDN -> destination label or ``None`` for a
    VirtualService) of every Service port a VirtualService, or a Service's routes for a sidecar in ``namespace``,
    split."""
    for info, port, vs, configured, _ in routed_ports(ctx):
        if (got := route_split(ctx, info, port, namespace, vs)) is not None:  # a route of theirs comes first
            rule, route_conf, _, hosts = got
            yield info, port, rule, route_conf, hosts
        else:
            yield info, port, f"VirtualService {vs.meta.ref}", configured, None
    vs_hosts = ctx.virtual_service_hosts()
    for info, port in service_route_ports(ctx):
        if info.fqdn not in vs_hosts and (got := route_split(ctx, info, port, namespace)) is not None:
            rule, configured, _, hosts = got
            yield info, port, rule, configured, hosts


def _envoy_rows(ctx: AuditContext, obs: Observed) -> Iterator[Divergence]:
    for workload, cfg in obs.dumps.items():
        for info, port, rule, configured, names in _envoy_targets(ctx, workload.split("/", 1)[0]):
            try:
                route, _ = envoy_dump_route(cfg, info.fqdn, port)
            except MeshstatError as exc:
                ctx.note(f"{workload}: {info.fqdn}:{port} not resolved in its Envoy dump: "
                         f"{str(exc).splitlines()[0]}")
                continue
            root = route.root
            eff: dict[str, Fraction] = {}
            if hasattr(root, "children") and _CLUSTER.search(getattr(root, "name", "") or "") is None:
                for child, share in zip(root.children, root.shares(), strict=True):
                    _add(eff, _envoy_label(child), Fraction(share))
            else:
                _add(eff, _envoy_label(root), Fraction(1))
            if names is None:  # a destination without a subset is written with its host (``reviews``)
                hostless = [lab for lab, _ in configured if lab not in eff and "." not in lab]
                names = {info.fqdn: hostless[0]} if len(hostless) == 1 else {}
            effective = tuple((names.get(k, k), v) for k, v in eff.items())
            if dict(effective) == dict(configured):
                continue
            yield Divergence(
                f"{info.namespace}/{info.name}:{port}", f"{workload} (its Envoy dump)", 1, configured, effective,
                "envoy-config-differs",
                f"the config_dump {obs.sources.get(workload, '')} routes {info.fqdn}:{port} this way "
                f"({rule} configures the other split)",
                (f"compare the dump of {workload} with istiod's config (istioctl proxy-status), then {rule}",),
                "sidecar")


def observed_reasons(obs: Observed) -> Any:
    """The reason producer of the observed layers (see the module docstring)."""

    def producer(ctx: AuditContext) -> Iterator[Divergence]:
        if obs.rulesets:
            yield from _kube_proxy_rows(ctx, obs)
        if obs.dumps:
            yield from _envoy_rows(ctx, obs)

    return producer
