"""What a VirtualService configures for a plain request: the rule it meets, its destinations and its fault abort.

A plain request is ``GET /`` without headers, to ``name:port`` as the path model sends it
(``meshstat.mesh.paths.Mesh._sidecar_route``); the audit compares every client group with the split
of the rule that request meets (:mod:`meshstat.audit.istio`). Pure Python.
"""

from __future__ import annotations

from collections.abc import Mapping
from fractions import Fraction
from typing import Any

from meshstat.mesh.paths import Mesh
from meshstat.mesh.registry import RegisteredService, uncaptured
from meshstat.mesh.requests import authority, request_matches
from meshstat.parsers.k8s import RouteDestination, ServicePort, VirtualService

__all__ = ["plain_abort", "plain_destinations", "plain_match", "plain_rule", "with_abort"]

_Split = tuple[tuple[str, Fraction], ...]


def plain_match(vs: VirtualService, info: RegisteredService, sp: ServicePort | None,
                labels: Mapping[str, str] | None = None, namespace: str = "") -> Any:
    """The first http rule of ``vs`` that a plain request (``GET /``, no headers, the authority ``name:port`` as the
    path model sends it) meets: a rule without matches, or with a match that holds for it (``uri: {prefix: /}``
    does). Without ``labels`` and ``namespace`` (the client's), whoever sends it: a match on the client's labels or
    namespace is not every client's. None when no rule serves it (a 404)."""
    port = sp.port if sp is not None else 0
    host = authority(info, port)
    return next((r for r in vs.http if not r.matches or any(
        request_matches(m, "/", {}, "GET", host, port, labels or {}, namespace, []) for m in r.matches)), None)


def plain_rule(vs: VirtualService, mesh: Mesh, info: RegisteredService, sp: ServicePort | None) -> Any:
    """The rule of ``vs`` that splits a plain request (or connection) to ``sp``: :func:`plain_match` on an HTTP
    port (None when it redirects or answers directly: no split), the first tcp rule for every port and source on
    a TCP port, or a sniffed port whose rules are all tcp ones (as ``Mesh._sidecar_route``); None when no proxy
    routes the port (UDP to Istio) or no such rule exists."""
    proto = mesh.port_protocol(sp) if sp is not None else "udp"
    if proto == "udp" or uncaptured(sp):  # no proxy routes the port (UDP to Istio): no VirtualService applies
        return None
    if proto != "tcp" and (vs.http or proto != "auto"):
        rule = plain_match(vs, info, sp)
        return rule if rule is not None and rule.terminal is None else None
    port = sp.port if sp is not None else 0
    return next((t for t in vs.tcp if (not t.ports or port in t.ports) and not t.source_labels), None)


def plain_destinations(vs: VirtualService, mesh: Mesh, info: RegisteredService, sp: ServicePort | None
                       ) -> tuple[RouteDestination, ...] | None:
    """The destinations of :func:`plain_rule` (None: no split for a plain request)."""
    rule = plain_rule(vs, mesh, info, sp)
    return rule.destinations if rule is not None else None


def plain_abort(vs: VirtualService, mesh: Mesh, info: RegisteredService, sp: ServicePort | None
                ) -> tuple[int, str] | None:
    """The ``fault.abort`` of ``vs``'s rule for a plain request (:attr:`meshstat.parsers.k8s.HTTPRoute.abort`)."""
    if all(r.abort is None for r in vs.http):  # the common case, without working out the rule
        return None
    return getattr(plain_rule(vs, mesh, info, sp), "abort", None)


def with_abort(got: tuple[str, _Split, str, str] | None, configured: _Split, abort: tuple[int, str] | None,
               rule: str) -> tuple[str, _Split, str, str] | None:
    """``got`` (a view's reason, effective split, detail, fix; None: the split holds) behind the rule's
    ``fault.abort``: that share of the requests is answered by the proxy (``fault abort <answer>``), the rest
    split as before (``fault-injected`` when nothing else diverges), as ``meshstat.mesh.layers.with_fault_abort``
    routes it."""
    if abort is None or abort[0] <= 0:
        return got
    p = Fraction(min(abort[0], 10**6), 10**6)
    label = f"fault abort {abort[1]}"
    eff: dict[str, Fraction] = {label: p}
    for k, f in got[1] if got is not None else configured:
        if f * (1 - p):
            eff[k] = eff.get(k, Fraction(0)) + f * (1 - p)
    detail = f"{rule} fault.abort answers {abort[0] / 10_000:g}% of the requests {abort[1]} before routing"
    if got is None:
        return ("fault-injected", tuple(eff.items()), detail, f"remove fault.abort from {rule} (or its percentage)")
    return got[0], tuple(eff.items()), f"{got[2]}; {detail}", got[3]
