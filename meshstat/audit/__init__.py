"""Where in a whole cluster the configured split does not hold, for whom, and why.

:func:`audit` reads a mesh (:class:`meshstat.mesh.Mesh`) and lets every *reason producer* in
:data:`PRODUCERS` report the (service, client group) pairs whose effective split differs from the
configured one. Shares are exact fractions computed from pod counts, route weights and kube-proxy's
endpoint lists: no simulation. The result is an :class:`AuditResult` (rows, a summary by reason, the
objects to change); laying it out is :func:`meshstat.report.audit.audit_table`'s job.

Reason codes (:data:`REASONS`, stable: scripts and CI read them):

=============================  ==================================================================
code                           meaning
=============================  ==================================================================
``no-sidecar``                 clients without a sidecar: kube-proxy splits over all pods
``rule-bound-to-gateway-only`` the VirtualService's ``gateways`` lack ``mesh``
``not-exported-to-namespace``  the rule's or a destination Service's ``exportTo`` misses them
``sidecar-egress-excludes``    the clients' Sidecar does not import the Service or its rule
``subset-without-pods``        a routed subset selects no pods (503)
``subset-undefined``           a routed subset is not in the DestinationRule (503 NC)
``destination-rule-differs``   the clients' own DestinationRule's subsets select other pods
``other-virtualservice-wins``  another VirtualService for the host comes first for the clients
``fault-injected``             the rule's ``fault.abort`` answers a share of the requests itself
``ambient-without-waypoint``   ambient clients, no waypoint: ztunnel splits over all pods
``rule-not-at-waypoint``       the waypoint ignores a VirtualService outside its and the Service's namespace
``backend-missing``            a backendRef (or gateway destination) names no Service, port or kind
``refused-by-referencegrant``  a Gateway route's cross-namespace backendRef has no ReferenceGrant (500)
``backend-without-pods``       a Gateway API backendRef's Service selects no ready pod (503)
``envoy-config-differs``       a workload's Envoy dump (``--envoy``) routes otherwise
``topology-restricted``        topology keeps the clients' zone from some endpoints
=============================  ==================================================================

Modules: :mod:`~meshstat.audit.core` (the result objects, the cluster indexes, the client groups
and the producer interface), :mod:`~meshstat.audit.istio` (VirtualService and DestinationRule
reasons), :mod:`~meshstat.audit.gateway` (Gateway API routes), :mod:`~meshstat.audit.topology`
(trafficDistribution, hints, internalTrafficPolicy per client zone), :mod:`~meshstat.audit.observed`
(real kube-proxy rules and Envoy dumps in place of the modelled layers).
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
from meshstat.audit.istio import istio_gateway_reasons, istio_rule_reasons
from meshstat.audit.observed import Observed, observed_reasons
from meshstat.audit.topology import topology_reasons
from meshstat.mesh.paths import Mesh

#: The reason producers :func:`audit` runs by default, in order.
PRODUCERS: list[ReasonProducer] = [istio_rule_reasons, istio_gateway_reasons, gateway_api_reasons,
                                   topology_reasons]


def audit(mesh: Mesh, producers: list[ReasonProducer] | None = None, *, observed: Observed | None = None
          ) -> AuditResult:
    """Every divergence of ``mesh`` that the producers (default :data:`PRODUCERS`) find.

    ``observed``: real kube-proxy rulesets (by node) and Envoy dumps (by workload) that replace the
    modelled layers they cover (:mod:`meshstat.audit.observed`).
    """
    run = list(PRODUCERS if producers is None else producers)
    if observed:
        run.append(observed_reasons(observed))
        return run_audit(mesh, run, exclude=frozenset(observed.dumps), observed_kube_proxy=bool(observed.rulesets))
    return run_audit(mesh, run)

__all__ = [
    "PRODUCERS",
    "REASONS",
    "AuditContext",
    "AuditResult",
    "ClientClass",
    "Divergence",
    "Observed",
    "ReasonProducer",
    "audit",
    "format_split",
    "gateway_api_reasons",
    "istio_gateway_reasons",
    "istio_rule_reasons",
    "topology_reasons",
]
