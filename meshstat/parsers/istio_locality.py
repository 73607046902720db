"""A DestinationRule's locality settings: ``loadBalancer.localityLbSetting`` and ``outlierDetection``.

Field meanings follow istio/api ``networking/v1alpha3/destination_rule.proto``
(``LocalityLoadBalancerSetting``: ``distribute`` with ``from``/``to``, ``failover`` with ``from``/``to``,
``failoverPriority``, ``enabled``); the checks follow istio ``pkg/config/validation/validation.go``
(``validateLocalityLbSetting``: ``distribute`` and ``failover`` are exclusive, each ``distribute`` rule's
weights sum to 100, a ``failover`` ``from`` differs from its ``to`` and names regions, not zones).

Which policy applies to a cluster (``pilot/pkg/networking/util/util.go: MergeSubsetTrafficPolicy``,
``GetPortLevelTrafficPolicy``; ``pilot/pkg/model/destination_rule.go: MergeTrafficPolicy``): a matching
``portLevelSettings`` entry replaces the whole policy (no inheritance), then a subset's own
``loadBalancer`` and ``outlierDetection`` replace the DestinationRule's when the subset sets them.
:func:`locality_policy` does that merge.

This module is pure Python; :mod:`meshstat.parsers.k8s` calls :func:`read_traffic_locality` with its
file context (a :class:`meshstat.parsers.fields.ManifestContext`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from meshstat.parsers.fields import ManifestContext
from meshstat.records import record

__all__ = ["LocalityLbSetting", "TrafficLocality", "locality_policy", "read_traffic_locality"]


@record
class LocalityLbSetting:
    """``LocalityLoadBalancerSetting``: ``enabled`` (None: unset), ``distribute``, ``failover``, ``failoverPriority``.

    ``distribute`` is ``((from, ((to, weight), ...)), ...)`` in the file's order; ``failover`` is
    ``((from_region, to_region), ...)``.
    """

    enabled: bool | None = None
    distribute: tuple[tuple[str, tuple[tuple[str, int], ...]], ...] | None = None
    failover: tuple[tuple[str, str], ...] = ()
    failover_priority: tuple[str, ...] = ()
    line: int | None = None


@record
class TrafficLocality:
    """The locality-relevant fields of one ``trafficPolicy`` (top level, port level or a subset's).

    ``has_load_balancer``/``has_outlier_detection`` say whether the policy sets those fields at all (a
    subset's policy replaces only the fields it sets); ``locality`` is ``loadBalancer.localityLbSetting``.
    """

    has_load_balancer: bool = False
    locality: LocalityLbSetting | None = None
    has_outlier_detection: bool = False
    zone_aware: bool = False
    line: int | None = None


def _weights(ctx: ManifestContext, rule: Any) -> tuple[tuple[str, int], ...]:
    to = rule.get("to")
    if not isinstance(to, dict) or not to:
        raise ctx.fail("localityLbSetting.distribute: each rule needs a 'to' mapping of locality -> weight", rule,
                       "to", to)
    out = []
    for k, v in to.items():
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise ctx.fail(f"localityLbSetting.distribute: weight of {k!r} must be a non-negative integer", to, k, v)
        out.append((str(k), v))
    if sum(v for _, v in out) != 100:
        raise ctx.fail(f"localityLbSetting.distribute: the weights of 'to' sum to {sum(v for _, v in out)}, "
                       "Istio requires 100", rule, "to")
    return tuple(out)


def _setting(ctx: ManifestContext, lb: Any) -> LocalityLbSetting | None:
    loc = lb.get("localityLbSetting")
    if loc is None:
        return None
    if not isinstance(loc, dict):
        raise ctx.fail("loadBalancer.localityLbSetting must be a mapping", lb, "localityLbSetting", loc)
    enabled = loc.get("enabled")
    if enabled is not None and not isinstance(enabled, bool):
        raise ctx.fail("localityLbSetting.enabled must be true or false", loc, "enabled", enabled)
    distribute = None
    if loc.get("distribute") is not None:
        if not isinstance(loc["distribute"], list):
            raise ctx.fail("localityLbSetting.distribute must be a list", loc, "distribute")
        rules = []
        for r in loc["distribute"]:
            if not isinstance(r, dict) or not isinstance(r.get("from"), str):
                raise ctx.fail("localityLbSetting.distribute: each rule needs 'from' (a locality)", loc, "distribute",
                               r)
            rules.append((r["from"], _weights(ctx, r)))
        distribute = tuple(rules)
    failover = []
    for f in loc.get("failover") or []:
        if not isinstance(f, dict) or not isinstance(f.get("from"), str) or not isinstance(f.get("to"), str):
            raise ctx.fail("localityLbSetting.failover: each entry needs 'from' and 'to' (regions)", loc, "failover", f)
        if f["from"] == f["to"]:
            raise ctx.fail(f"localityLbSetting.failover: from and to are both {f['from']!r}", f, "to", f["to"])
        if "/" in f["from"] or "/" in f["to"]:
            raise ctx.fail("localityLbSetting.failover: from and to are regions (no '/')", f, "from", f["from"])
        failover.append((f["from"], f["to"]))
    prio = loc.get("failoverPriority") or []
    if not isinstance(prio, list) or not all(isinstance(p, str) and p for p in prio):
        raise ctx.fail("localityLbSetting.failoverPriority must be a list of label names", loc, "failoverPriority")
    if distribute and (failover or prio):
        raise ctx.fail("localityLbSetting: distribute and failover/failoverPriority cannot both be set", loc,
                       "distribute")
    return LocalityLbSetting(enabled, distribute, tuple(failover), tuple(prio), loc.line)


def read_traffic_locality(ctx: ManifestContext, tp: Any) -> TrafficLocality | None:
    """The :class:`TrafficLocality` of a ``trafficPolicy`` mapping (None when ``tp`` is not one)."""
    if not isinstance(tp, dict):
        return None
    lb = tp.get("loadBalancer")
    if lb is not None and not isinstance(lb, dict):
        raise ctx.fail("trafficPolicy.loadBalancer must be a mapping", tp, "loadBalancer", lb)
    return TrafficLocality(
        has_load_balancer=lb is not None,
        locality=_setting(ctx, lb) if lb else None,
        has_outlier_detection=tp.get("outlierDetection") is not None,
        zone_aware=bool(lb and lb.get("zoneAwareLbSetting") is not None),
        line=getattr(tp, "line", None),
    )


def locality_policy(top: TrafficLocality | None, ports: Sequence[tuple[int, TrafficLocality]],
                    subset: TrafficLocality | None, port: int) -> TrafficLocality | None:  # fmt: skip
    """The merged policy of a cluster (see the module docstring)."""
    eff = top
    for p, pol in ports:
        if p == port:
            eff = pol
            break
    if subset is None:
        return eff
    if eff is None:
        return subset
    return TrafficLocality(
        has_load_balancer=eff.has_load_balancer or subset.has_load_balancer,
        locality=subset.locality if subset.has_load_balancer else eff.locality,
        has_outlier_detection=subset.has_outlier_detection or eff.has_outlier_detection,
        zone_aware=subset.zone_aware if subset.has_load_balancer else eff.zone_aware,
        line=subset.line if subset.has_load_balancer else eff.line,
    )
