"""Locality: where a caller runs decides where its sidecar or its ztunnel sends a call.

**Which setting applies** (istio ``pilot/pkg/networking/core/loadbalancer/loadbalancer.go``:
``GetEffectiveLbSetting``): the DestinationRule's ``localityLbSetting`` (``enabled: false`` turns locality
load balancing off), else the Service's ``trafficDistribution`` (``PreferClose``/``PreferSameZone``:
``failoverPriority`` network, region, zone; ``PreferSameNode``: network, region, zone, subzone, hostname;
both *forced*, that is without outlier detection), else the mesh's ``localityLbSetting`` (``enabled:
true`` in Istio's default MeshConfig, ``pkg/config/mesh/mesh.go: DefaultMeshConfig``). A DestinationRule's
``zoneAwareLbSetting`` is not modelled (a warning says so).

**What istiod writes for one proxy** (``ApplyLocalityLoadBalancer``, called from
``pilot/pkg/xds/endpoints/endpoint_builder.go: EndpointBuilder.BuildClusterLoadAssignment`` with
``enableFailover`` = the merged traffic policy has ``outlierDetection``): endpoints are grouped by
locality (one ``LocalityLbEndpoints`` each, weight = the sum of its endpoints' weights), then

* ``distribute`` (``applyLocalityWeights``): the first rule whose ``from`` matches the caller
  (``util.LocalityMatch``: ``*`` and a missing zone/subzone match anything) gives each locality matched
  by a ``to`` the weight ``ceil(own weight * to-weight / sum of own weights of that to's localities)``;
  localities matched by no ``to`` lose their endpoints. A caller matched by no rule keeps the weights.
* else, only with failover enabled (outlier detection or forced): ``failoverPriority``
  (``applyFailoverPriorities``, ``applyFailoverPriorityPerLocality``): each endpoint's priority is ``n - j``
  for the first label ``j`` of the list whose value differs between caller and endpoint (0 when all
  agree; ``label=value`` compares the endpoint with ``value``; a mismatched network as first label only
  adds ``n``), each locality split by priority; then ``failover`` too if given. Without
  ``failoverPriority``: ``applyLocalityFailover``: priority 0 same region/zone/subzone, 1 same zone, 2
  same region, 3 other regions, 4 regions that a ``failover`` entry from the caller's region does not
  name. Priorities are then renumbered 0..N without gaps.

``ApplyToCluster`` sets ``locality_weighted_lb_config`` when ``distribute`` is given, or failover is on
with ``failover`` or ``failoverPriority`` set. Labels on both sides are augmented as
``pilot/pkg/serviceregistry/util/label/label.go: AugmentLabels`` does (region, zone, subzone, hostname =
the node, network). Envoy then computes the priority loads with the overprovisioning factor (default
140) and the locality weights: :func:`meshstat.mesh.endpoints.endpoint_stage`.

**ztunnel** (istio/ztunnel ``src/state.rs: ProxyState::load_balance``; istiod
``pilot/pkg/serviceregistry/ambient/services.go: constructService``): ``internalTrafficPolicy: Local`` is
mode *Strict* with scope node (only the caller's node's endpoints, none: the connection fails);
``trafficDistribution`` ``PreferClose``/``PreferSameZone`` is *Failover* over network, region, zone;
``PreferSameNode`` adds subzone and node. Each endpoint's rank is the number of leading scopes it shares
with the caller; only the endpoints of the best rank are candidates (Strict also drops those below the
full rank), chosen at random weighted by capacity. There is no overprovisioning: one endpoint of the
best rank takes all of it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from meshstat.mesh.registry import EP
from meshstat.parsers.istio_locality import LocalityLbSetting, TrafficLocality, locality_policy

__all__ = [
    "MESH_DEFAULT_LOCALITY",
    "PLACE_LABELS",
    "LocalityPlan",
    "LocalityPolicy",
    "Place",
    "apply_locality",
    "cluster_policy",
    "depends_on_caller",
    "describe",
    "effective_locality",
    "locality_match",
    "node_local_warning",
    "pod_places",
    "ztunnel_candidates",
    "ztunnel_policy",
]

#: Istio's default ``MeshConfig.localityLbSetting``.
MESH_DEFAULT_LOCALITY = LocalityLbSetting(enabled=True)

LABEL_REGION = "topology.kubernetes.io/region"
LABEL_ZONE = "topology.kubernetes.io/zone"
LABEL_SUBZONE = "topology.istio.io/subzone"
LABEL_HOSTNAME = "kubernetes.io/hostname"
LABEL_NETWORK = "topology.istio.io/network"
#: The labels of a place (``Place.labels``): a locality setting or ``trafficDistribution`` that reads only these
#: routes every client of one place and topology labels alike
PLACE_LABELS = (LABEL_NETWORK, LABEL_REGION, LABEL_ZONE, LABEL_SUBZONE, LABEL_HOSTNAME)
_PREFER_ZONE = (LABEL_NETWORK, LABEL_REGION, LABEL_ZONE)
_PREFER_NODE = (LABEL_NETWORK, LABEL_REGION, LABEL_ZONE, LABEL_SUBZONE, LABEL_HOSTNAME)


@dataclass(frozen=True, slots=True)
class Place:
    """Where a workload runs: Envoy's locality (region, zone, subzone), its node and its network."""

    region: str = ""
    zone: str = ""
    subzone: str = ""
    node: str = ""
    network: str = ""

    @property
    def label(self) -> str:
        """``region/zone/subzone`` as Istio writes a locality (``util.LocalityToString``)."""
        out = self.region
        if self.zone:
            out += "/" + self.zone
            if self.subzone:
                out += "/" + self.subzone
        return out

    @property
    def locality(self) -> tuple[tuple[str, str], ...]:
        """The Envoy ``Locality`` as :class:`meshstat.mesh.registry.EP` keeps it (sorted key, value pairs)."""
        return tuple((k, v) for k, v in (("region", self.region), ("sub_zone", self.subzone), ("zone", self.zone))
                     if v)

    @classmethod
    def of(cls, locality: Sequence[tuple[str, str]], node: str = "", network: str = "") -> Place:
        """From an Envoy locality (``(("region", r), ("zone", z), ...)``)."""
        d = dict(locality)
        return cls(d.get("region", ""), d.get("zone", ""), d.get("sub_zone", ""), node, network)

    @classmethod
    def parse(cls, text: str, node: str = "") -> Place:
        """``region/zone/subzone`` (``label.SplitLocalityLabel``)."""
        parts = (text.split("/") + ["", ""])[:3]
        return cls(parts[0], parts[1], parts[2], node)

    def labels(self, base: Mapping[str, str] | None = None) -> dict[str, str]:
        """``AugmentLabels``: ``base`` plus the topology labels of this place."""
        out = dict(base or {})
        for k, v in ((LABEL_REGION, self.region), (LABEL_ZONE, self.zone), (LABEL_SUBZONE, self.subzone),
                     (LABEL_HOSTNAME, self.node)):
            if v:
                out[k] = v
        if self.network and not out.get(LABEL_NETWORK):
            out[LABEL_NETWORK] = self.network
        return out


def locality_match(place: Place, rule: str) -> bool:
    """``util.LocalityMatch``: does ``place`` match the rule locality ``region/zone/subzone`` (``*`` wildcards)?"""
    r = Place.parse(rule)
    return ((r.region == "*" or place.region == r.region) and (r.zone in ("*", "") or place.zone == r.zone)
            and (r.subzone in ("*", "") or place.subzone == r.subzone))


def _lb_priority(caller: Place, ep: Place) -> int:
    """``util.LbPriority``."""
    if caller.region == ep.region:
        if caller.zone == ep.zone:
            return 0 if caller.subzone == ep.subzone else 1
        return 2
    return 3


@dataclass(frozen=True, slots=True)
class LocalityPolicy:
    """The locality setting in force for one cluster and caller, and where it comes from."""

    setting: LocalityLbSetting | None
    force: bool
    outlier_detection: bool
    origin: str
    zone_aware_ignored: bool = False

    @property
    def failover(self) -> bool:
        """Whether priorities are assigned (outlier detection or forced)."""
        return self.setting is not None and (self.force or self.outlier_detection)

    @property
    def locality_weighted(self) -> bool:
        """Whether the cluster gets ``locality_weighted_lb_config`` (``LocalityLBSettings.ApplyToCluster``)."""
        s = self.setting
        if s is None:
            return False
        return s.distribute is not None or (self.failover and bool(s.failover or s.failover_priority))


def effective_locality(policy: TrafficLocality | None, traffic_distribution: str | None = None,
                       mesh_setting: LocalityLbSetting | None = MESH_DEFAULT_LOCALITY) -> LocalityPolicy:  # fmt: skip
    """``GetEffectiveLbSetting`` for a merged traffic policy and the Service's ``trafficDistribution``."""
    outlier = bool(policy and policy.has_outlier_detection)
    za = bool(policy and policy.zone_aware)
    loc = policy.locality if policy is not None else None
    if loc is not None:
        if loc.enabled is False:
            return LocalityPolicy(None, False, outlier, "DestinationRule localityLbSetting enabled: false", za)
        return LocalityPolicy(loc, False, outlier, "DestinationRule localityLbSetting", za)
    td = traffic_distribution or ""
    if td in ("PreferClose", "PreferSameZone"):
        return LocalityPolicy(LocalityLbSetting(True, failover_priority=_PREFER_ZONE), True, outlier,
                              f"Service trafficDistribution {td} (failoverPriority network, region, zone)", za)
    if td == "PreferSameNode":
        return LocalityPolicy(LocalityLbSetting(True, failover_priority=_PREFER_NODE), True, outlier,
                              f"Service trafficDistribution {td} (failoverPriority network, region, zone, "
                              "subzone, hostname)", za)  # fmt: skip
    if mesh_setting is None or mesh_setting.enabled is False:
        return LocalityPolicy(None, False, outlier, "locality load balancing off in MeshConfig", za)
    return LocalityPolicy(mesh_setting, False, outlier, "MeshConfig localityLbSetting (enabled by default)", za)


@dataclass(frozen=True)
class LocalityPlan:
    """What istiod sends one proxy for one cluster: endpoints with priorities and locality weights."""

    endpoints: tuple[EP, ...]
    locality_weighted: bool
    priorities: tuple[tuple[int, str, int], ...]  # (priority, locality label, endpoints)
    dropped: tuple[EP, ...]
    notes: tuple[str, ...]


@dataclass
class _Group:
    place: Place
    eps: list[EP]
    priority: int = 0
    weight: int = 0


def _ep_place(e: EP) -> Place:
    return Place.of(e.locality, e.node or "")


def _failover_priority_of(labels: Mapping[str, str], caller: Mapping[str, str], prios: Sequence[str]) -> int:
    n = len(prios)
    includes_network = n > 0 and prios[0] == LABEL_NETWORK
    priority = adjust = 0
    for j, item in enumerate(prios):
        name, sep, value = item.partition("=")
        want = value if sep else caller.get(name, "")
        if want != labels.get(name, ""):
            if j == 0 and includes_network:
                adjust = n
                continue
            priority = n - j
            break
    return priority + adjust


def _compact(groups: list[_Group]) -> None:
    order = {p: i for i, p in enumerate(sorted({g.priority for g in groups}))}
    for g in groups:
        g.priority = order[g.priority]


def apply_locality(eps: Sequence[EP], caller: Place | None, policy: LocalityPolicy,
                   caller_labels: Mapping[str, str] | None = None) -> LocalityPlan:  # fmt: skip
    """Istio's ``ApplyLocalityLoadBalancer`` for a caller at ``caller`` (see the module docstring).

    ``caller_labels`` are the caller's pod labels (augmented here with its place); endpoints' labels are
    their backends' labels, augmented with their locality and node.
    """
    here = caller or Place()
    groups: dict[tuple[tuple[str, str], ...], _Group] = {}
    for e in eps:
        g = groups.setdefault(e.locality, _Group(_ep_place(e), []))
        g.eps.append(e)
    gl = list(groups.values())
    for g in gl:
        g.weight = sum(max(1, e.weight) for e in g.eps)
    notes: list[str] = []
    s = policy.setting
    dropped: list[EP] = []
    if s is not None and s.distribute is not None:
        rule = next(((frm, to) for frm, to in s.distribute if locality_match(here, frm)), None)
        if rule is None:
            notes.append(f"localityLbSetting.distribute: no rule's from matches the caller's locality "
                         f"{here.label or '(none)'}: locality weights stay by endpoint count")
        else:
            unmatched = list(range(len(gl)))
            claimed: dict[int, str] = {}
            for to, w in rule[1]:
                idx = [i for i in unmatched if locality_match(gl[i].place, to)]
                for i in range(len(gl)):
                    if i in claimed and locality_match(gl[i].place, to):
                        notes.append(f"localityLbSetting.distribute: {gl[i].place.label} matches both {claimed[i]!r} "
                                     f"and {to!r}; Istio takes whichever its map yields first (taken: {claimed[i]!r})")
                total = sum(gl[i].weight for i in idx)
                for i in idx:
                    unmatched.remove(i)
                    claimed[i] = to
                    dest = math.ceil(gl[i].weight * w / total) if total else 0
                    if dest > 0:
                        gl[i].weight = dest
            for i in unmatched:
                dropped.extend(gl[i].eps)
            if unmatched:
                notes.append("localityLbSetting.distribute: localities named by no 'to' get no traffic from "
                             f"{here.label}: " + ", ".join(gl[i].place.label or "(none)" for i in unmatched))
            gl = [g for i, g in enumerate(gl) if i not in unmatched]
    elif s is not None and policy.failover:
        if s.failover_priority:
            mine = here.labels(caller_labels)
            if len(mine) > 0:
                split: list[_Group] = []
                for g in gl:
                    by_p: dict[int, list[EP]] = {}
                    for e in g.eps:
                        p = _failover_priority_of(_ep_place(e).labels(dict(e.backend.labels)), mine,
                                                  s.failover_priority)
                        by_p.setdefault(p, []).append(e)
                    for p in sorted(by_p):
                        split.append(_Group(g.place, by_p[p], p, sum(max(1, e.weight) for e in by_p[p])))
                gl = split
                _compact(gl)
            if s.failover:
                _locality_failover(gl, here, s.failover)
        else:
            _locality_failover(gl, here, s.failover)
    weighted = policy.locality_weighted
    out = []
    for g in gl:
        for e in g.eps:
            lw = g.weight if weighted else e.locality_weight
            out.append(e if e.priority == g.priority and e.locality_weight == lw else
                       replace(e, priority=g.priority, locality_weight=lw))
    prios = tuple(sorted((g.priority, g.place.label or "(no locality)", len(g.eps)) for g in gl))
    return LocalityPlan(tuple(out), weighted, prios, tuple(dropped), tuple(notes))


def _locality_failover(gl: list[_Group], here: Place, failover: Sequence[tuple[str, str]]) -> None:
    """``applyLocalityFailover``."""
    for g in gl:
        p = _lb_priority(here, g.place)
        if p == 3:
            for frm, to in failover:
                if frm == here.region:
                    if g.place.region != to:
                        p = 4
                    break
        g.priority = g.priority * 5 + p
    _compact(gl)


# --------------------------------------------------------------------------- ztunnel


def node_local_warning(cluster: str) -> str:
    """What a sidecar route that shows every endpoint says of ``internalTrafficPolicy: Local``: istiod sends a
    proxy only the endpoints on its own node (``NodeLocal``, ``pilot/pkg/xds/endpoints/endpoint_builder.go:
    filterIstioEndpoint``), which :func:`meshstat.topology.mesh_paths.sidecar_split` applies per client node."""
    return (f"{cluster}: internalTrafficPolicy: Local keeps a sidecar on its node's endpoints (istiod NodeLocal), not "
            "modelled on this route: compare -f with placed Pods shows each zone")


def ztunnel_policy(internal_policy: str | None, traffic_distribution: str | None) -> tuple[str, tuple[str, ...]]:
    """``constructService``: (mode, scopes) of a Service's ``LoadBalancing`` (``("Standard", ())`` when none)."""
    if internal_policy == "Local":
        return "Strict", ("node",)
    td = traffic_distribution or ""
    if td in ("PreferClose", "PreferSameZone"):
        return "Failover", ("network", "region", "zone")
    if td == "PreferSameNode":
        return "Failover", ("network", "region", "zone", "subzone", "node")
    return "Standard", ()


def ztunnel_candidates(eps: Sequence[EP], caller: Place, mode: str, scopes: Sequence[str]) -> list[EP]:
    """The endpoints ztunnel chooses among for a caller (``load_balance``); empty: the connection fails."""
    if mode == "Standard" or not scopes:
        return list(eps)
    network_first = scopes[0] == "network"
    ranked = []
    for e in eps:
        w = _ep_place(e)
        rank = adjust = 0
        for sc in scopes:
            if sc == "network":
                m = caller.network == w.network
                if network_first:
                    if m:
                        adjust = len(scopes) - 1
                    else:
                        continue
            else:
                m = getattr(caller, sc) == getattr(w, sc)
            if not m:
                break
            rank += 1
        if mode == "Strict" and rank != len(scopes):
            continue
        ranked.append((rank + adjust, e))
    if not ranked:
        return []
    best = max(r for r, _ in ranked)
    return [e for r, e in ranked if r == best]


def cluster_policy(dr: Any, subset: str | None, port: int, traffic_distribution: str | None) -> LocalityPolicy:
    """The effective locality policy of one cluster (``dr``: a :class:`meshstat.parsers.k8s.DestinationRule` or None);
    :func:`apply_locality` gives its plan for a caller."""
    pol = None
    if dr is not None:
        sub = dr.subset(subset) if subset else None
        pol = locality_policy(dr.locality, dr.port_locality, sub.locality if sub is not None else None, port)
    return effective_locality(pol, traffic_distribution)


def depends_on_caller(policy: LocalityPolicy) -> bool:
    """Whether :func:`apply_locality` under ``policy`` gives callers in different places (or with different labels:
    ``failoverPriority``) different plans: a ``distribute`` rule, or failover (forced by ``trafficDistribution``, else
    only with outlier detection, as Istio applies it)."""
    s = policy.setting
    return s is not None and (s.distribute is not None or policy.failover)


def describe(policy: LocalityPolicy, plan: LocalityPlan, caller: Place | None) -> str:
    """One line: what locality load balancing does for this caller."""
    who = f"caller in {caller.label or '(no locality)'}" if caller is not None else "caller locality unknown"
    if policy.setting is None:
        return f"locality LB off ({policy.origin})"
    if plan.locality_weighted or len({p for p, _, _ in plan.priorities}) > 1:
        parts = ", ".join(f"P{p} {loc} ({n})" for p, loc, n in plan.priorities)
        return f"{policy.origin}; {who}: {parts}" + (" (locality-weighted)" if plan.locality_weighted else "")
    if not policy.failover and policy.setting.distribute is None:
        return f"{policy.origin}: no failover priorities without outlierDetection (one priority)"
    return f"{policy.origin}; {who}: one priority"


def pod_places(manifests: Any) -> dict[tuple[str, str], Place]:
    """Each placed pod's :class:`Place` (``(namespace, name)`` key): its Node's region, zone and
    ``topology.istio.io/subzone`` labels (``pilot/pkg/serviceregistry/kube/controller``: a pod's locality
    comes from its node)."""
    topo = manifests.topology
    nodes = {n.name: n for n in topo.nodes}
    out = {}
    for p in topo.pods:
        n = nodes.get(p.node or "")
        if n is not None:
            out[(p.namespace, p.name)] = Place(n.region or "", n.zone or "", dict(n.labels).get(LABEL_SUBZONE, ""),
                                               n.name)
    return out
