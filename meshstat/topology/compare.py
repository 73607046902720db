"""Scenarios side by side: the Service as configured, its topology settings changed, and what-ifs.

:func:`compare_topology` computes one :class:`meshstat.topology.split.TopologySplit` per scenario:

* ``configured``: the input as it is (the EndpointSlices' hints as written);
* ``cluster-wide``: no ``trafficDistribution``, no ``topology-mode``, both policies ``Cluster``;
* ``PreferClose``: ``trafficDistribution: PreferClose`` (no ``topology-mode``; the controller's hints);
* ``ITP Local``: ``internalTrafficPolicy: Local``;
* ``ETP Cluster`` / ``ETP Local``: ``externalTrafficPolicy`` either way (only for a Service reachable from
  outside; the external split is what these two add);
* each what-if applied to the configured Service: ``lose zone Z``, ``lose node N``, ``scale W in Z to R``,
  ``clients Z1->Z2``.

A settings scenario equal to ``configured`` is still shown (it says "no change" by having the same numbers).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from meshstat.topology.cluster import Cluster
from meshstat.topology.split import TopologySplit, split

__all__ = ["TopologyComparison", "WhatIf", "compare_topology"]


@dataclass(frozen=True, slots=True)
class WhatIf:
    """One what-if: ``kind`` in lose-zone, lose-node, scale-zone, move-clients, with its arguments."""

    kind: str
    args: tuple[str, ...]

    @property
    def label(self) -> str:
        """The scenario's column name."""
        if self.kind == "scale-zone":
            return f"{self.args[0]} in {self.args[1]} = {self.args[2]}"
        if self.kind == "move-clients":
            return f"clients {self.args[0]}->{self.args[1]}"
        return f"{self.kind.replace('-', ' ')} {self.args[0]}"

    def apply(self, cluster: Cluster) -> Cluster:
        """The cluster after this what-if."""
        if self.kind == "lose-zone":
            return cluster.lose_zone(self.args[0])
        if self.kind == "lose-node":
            return cluster.lose_node(self.args[0])
        if self.kind == "scale-zone":
            return cluster.scale_in_zone(self.args[0], self.args[1], int(self.args[2]))
        if self.kind == "move-clients":
            return cluster.move_clients(self.args[0], self.args[1])
        raise ValueError(self.kind)


@dataclass(frozen=True)
class TopologyComparison:
    """The scenarios of one Service port."""

    cluster: Cluster
    splits: tuple[TopologySplit, ...]

    def get(self, scenario: str) -> TopologySplit:
        """The split called ``scenario``."""
        for s in self.splits:
            if s.scenario == scenario:
                return s
        raise KeyError(scenario)

    def summary(self) -> str:
        """One line per scenario."""
        return "\n".join(s.summary() for s in self.splits)


def compare_topology(cluster: Cluster, what_ifs: Sequence[WhatIf] = (), *, mode: str = "iptables",
                     rps: float | None = None, lb_weight: str = "equal",
                     variants: bool = True) -> TopologyComparison:  # fmt: skip
    """Every scenario of :mod:`meshstat.topology.compare` for ``cluster``."""
    kw = {"mode": mode, "rps": rps, "lb_weight": lb_weight}
    out = [split(cluster, "configured", **kw)]
    if variants:
        base = cluster.with_policy(traffic_distribution=None, topology_mode=None, internal_policy="Cluster",
                                   external_policy="Cluster")  # fmt: skip
        out.append(split(base, "cluster-wide", **kw))
        out.append(split(cluster.with_policy(traffic_distribution="PreferClose", topology_mode=None),
                         "PreferClose", **kw))  # fmt: skip
        out.append(split(cluster.with_policy(internal_policy="Local"), "ITP Local", **kw))
        if cluster.service.externally_accessible:
            out.append(split(cluster.with_policy(external_policy="Cluster"), "ETP Cluster", **kw))
            out.append(split(cluster.with_policy(external_policy="Local"), "ETP Local", **kw))
    for w in what_ifs:
        out.append(split(w.apply(cluster), w.label, **kw))
    return TopologyComparison(cluster, tuple(out))
