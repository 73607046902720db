"""Where in a whole cluster the configured split does not hold, for whom, and why.

:func:`audit` reads a mesh (:class:`meshstat.mesh.Mesh`) and lets every *reason producer* in
:data:`PRODUCERS` report the (service, client group) pairs whose effective split differs from the
configured one. Shares are exact fractions computed from pod counts and route weights: no
simulation. The result is an :class:`AuditResult` (rows, a summary by reason, the objects to
change); laying it out is :func:`meshstat.report.audit_table`'s job... the command line's.

Modules: :mod:`~meshstat.audit.core` (the result objects, the cluster indexes and the
producer interface), :mod:`~meshstat.audit.istio` (VirtualService and DestinationRule reasons:
no-sidecar, rule-bound-to-gateway-only, not-exported-to-namespace, sidecar-egress-excludes,
subset-without-pods, subset-undefined, ambient-without-waypoint).
"""

from __future__ import annotations

from meshstat.audit.core import (
    REASONS,
    AuditContext,
    AuditResult,
    ClientClass,
    Divergence,
    ReasonProducer,
    format_split,
    run_audit,
)
from meshstat.audit.gateway import gateway_api_reasons
from meshstat.audit.istio import istio_rule_reasons
from meshstat.audit.topology import topology_reasons
from meshstat.mesh.paths import Mesh

#: The reason producers :func:`audit` runs by default, in order.
PRODUCERS: list[ReasonProducer] = [istio_rule_reasons, gateway_api_reasons, topology_reasons]


def audit(mesh: Mesh, producers: list[ReasonProducer] | None = None) -> AuditResult:
    """Every divergence of ``mesh`` that the producers (default :data:`PRODUCERS`) find."""
    return run_audit(mesh, PRODUCERS if producers is None else producers)

__all__ = [
    "PRODUCERS",
    "REASONS",
    "AuditContext",
    "AuditResult",
    "ClientClass",
    "Divergence",
    "ReasonProducer",
    "audit",
    "format_split",
    "gateway_api_reasons",
    "istio_rule_reasons",
    "topology_reasons",
]
