"""The split of a Service's traffic seen from each node, each client zone and each pod.

For every node, kube-proxy's endpoint lists come from :func:`meshstat.topology.proxy.categorize_endpoints`;
the chain a connection takes follows kubernetes ``pkg/proxy/iptables/proxier.go: syncProxyRules``:

* **internal traffic** (a pod on the node calls the cluster IP): ``internalTrafficChain``, the cluster-policy
  endpoints (``KUBE-SVC-``), or the node's own endpoints (``KUBE-SVL-``) for ``internalTrafficPolicy: Local``;
  with none, the filter table drops (``"has no local endpoints"``) or rejects (``"has no endpoints"``);
* **external traffic** (a load balancer sends it to a node's nodePort): ``KUBE-EXT-`` then the cluster-policy
  endpoints for ``externalTrafficPolicy: Cluster`` (topology hints apply here too: the same ``KUBE-SVC-``
  chain), the node's own endpoints for ``Local``.

Within a chain the endpoints (sorted as ``"ip:port"``) share connections as kube-proxy's cascade does
(``mode="iptables"``, :meth:`meshstat.model.Cascade.kube_proxy`, exact to the 2**-31 steps of
``--probability``), or as ``numgen random mod n`` does (``mode="nftables"``: the kernel's
``reciprocal_scale`` gives slot ``s`` its share of the 2**32 random values,
:func:`meshstat.model.numgen.numgen_slot_counts`, within 2**-32 of 1/n).

The load balancer's choice of node is an assumption, not something the manifests say: by default each
healthy node gets the same share (``lb_weight="equal"``): for ``externalTrafficPolicy: Cluster`` every ready
node not labelled ``node.kubernetes.io/exclude-from-external-load-balancers``, for ``Local`` only those with
a local endpoint (the others fail the ``healthCheckNodePort`` check). ``lb_weight="endpoints"`` weights the
healthy nodes of ``Local`` by their number of local endpoints (load balancers that weight by endpoints do
this); ``Cluster`` stays equal.

Client weights: each node's clients send the same number of connections per client (the weights of
:attr:`meshstat.topology.cluster.Cluster.clients`); with a request rate, each pod's requests per second are
the rate times its share, and the imbalance is the busiest pod's load over the mean load of the Service's
pods (what an autoscaler averaging over the pods does not see).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from fractions import Fraction

from meshstat import model
from meshstat.errors import InvalidArgument
from meshstat.model.numgen import numgen_slot_counts
from meshstat.topology.cluster import Cluster, Endpoint, TopoNode
from meshstat.topology.proxy import Categorized, categorize_endpoints

__all__ = ["NodeView", "TopologySplit", "chain_shares", "node_view", "split"]

LB_WEIGHTS = ("equal", "endpoints")


def chain_shares(endpoints: Sequence[Endpoint], mode: str = "iptables") -> tuple[tuple[Endpoint, Fraction], ...]:
    """Each endpoint's share of a kube-proxy chain over ``endpoints`` (sorted as kube-proxy sorts them)."""
    eps = sorted(endpoints, key=lambda e: e.key)
    if not eps:
        return ()
    if mode == "iptables":
        shares = model.Cascade.kube_proxy(len(eps)).shares()
    elif mode == "nftables":
        shares = tuple(Fraction(c, 2**32) for c in numgen_slot_counts(len(eps)))
    else:
        raise InvalidArgument(f"proxy mode must be iptables or nftables, got {mode!r}")
    return tuple(zip(eps, shares, strict=True))


@dataclass(frozen=True, slots=True)
class NodeView:
    """What kube-proxy on one node does with the Service's traffic."""

    node: TopoNode
    categorized: Categorized
    internal: tuple[tuple[Endpoint, Fraction], ...]
    internal_verdict: str  # "split", "DROP", "REJECT"
    external: tuple[tuple[Endpoint, Fraction], ...]
    external_verdict: str

    @property
    def zone(self) -> str:
        """The node's zone."""
        return self.node.zone or "(no zone)"


def node_view(cluster: Cluster, node: TopoNode, mode: str = "iptables") -> NodeView:
    """kube-proxy's lists on ``node`` and the internal and external splits they give."""
    svc = cluster.service
    cat = categorize_endpoints(cluster.endpoints, node.name, node.zone, uses_cluster=svc.uses_cluster,
                               uses_local=svc.uses_local)  # fmt: skip
    internal = cat.local if svc.internal_policy == "Local" else cat.cluster
    external = cat.local if svc.external_policy == "Local" else cat.cluster
    none = "REJECT" if not cat.has_any else "DROP"
    return NodeView(
        node, cat,
        chain_shares(internal or (), mode), "split" if internal else none,
        chain_shares(external or (), mode) if svc.externally_accessible else (),
        ("split" if external else none) if svc.externally_accessible else "-",
    )  # fmt: skip


@dataclass(frozen=True)
class TopologySplit:
    """The split of one scenario: per node, per client zone and per pod, internal and external.

    Attributes
    ----------
    scenario : str
    cluster : Cluster
    views : tuple of NodeView
    pods : tuple of Endpoint
        The Service's ready endpoints and every endpoint that gets traffic.
    internal : dict
        Endpoint key -> share of all internal connections (weighted by the clients).
    internal_dropped : Fraction
        The share of internal connections dropped or rejected.
    by_zone : dict
        Client zone -> (weight, {endpoint key: share of that zone's connections}, dropped share).
    external : dict or None
        Endpoint key -> share of external connections (None: the Service takes no external traffic).
    lb_weights : dict
        Node -> share of the load balancer's connections.
    rps : float or None
    """

    scenario: str
    cluster: Cluster
    views: tuple[NodeView, ...]
    pods: tuple[Endpoint, ...]
    internal: dict[str, Fraction]
    internal_dropped: Fraction
    by_zone: dict[str, tuple[Fraction, dict[str, Fraction], Fraction]]
    by_node: dict[str, tuple[Fraction, dict[str, Fraction], Fraction]]
    external: dict[str, Fraction] | None
    external_dropped: Fraction
    lb_weights: dict[str, Fraction]
    rps: float | None = None
    mode: str = "iptables"
    notes: tuple[str, ...] = field(default=())

    def rate(self, key: str, *, external: bool = False) -> float | None:
        """Requests per second at the endpoint ``key`` (None without a rate)."""
        if self.rps is None:
            return None
        src = self.external if external else self.internal
        return float(self.rps * (src or {}).get(key, Fraction(0)))

    def imbalance(self, *, external: bool = False) -> float | None:
        """The busiest pod's load over the mean load of :attr:`pods` (None when nothing is delivered)."""
        src = self.external if external else self.internal
        if not src or not self.pods:
            return None
        loads = [src.get(p.key, Fraction(0)) for p in self.pods]
        mean = sum(loads, Fraction(0)) / len(loads)
        return float(max(loads) / mean) if mean else None

    def summary(self) -> str:
        """One line: the scenario, the busiest pod and the imbalance."""
        imb = self.imbalance()
        if imb is None:
            return f"{self.scenario}: no internal traffic delivered"
        top = max(self.pods, key=lambda p: self.internal.get(p.key, Fraction(0)))
        return (f"{self.scenario}: busiest pod {top.label} ({top.zone}) {float(self.internal[top.key]):.1%} of the "
                f"connections, {imb:.2f}x the mean")  # fmt: skip


def _lb_weights(cluster: Cluster, views: Sequence[NodeView], lb_weight: str) -> dict[str, Fraction]:
    if lb_weight not in LB_WEIGHTS:
        raise InvalidArgument(f"--lb-weight must be one of {', '.join(LB_WEIGHTS)}, got {lb_weight!r}")
    svc = cluster.service
    out: dict[str, Fraction] = {}
    for v in views:
        n = v.node
        if not n.ready or n.lb_excluded or (n.synthetic and n.name.startswith("(")):
            continue
        if svc.external_policy == "Local":
            local = len(v.categorized.local or ())
            if local == 0:
                continue  # the healthCheckNodePort answers 503 without local endpoints
            out[n.name] = Fraction(local if lb_weight == "endpoints" else 1)
        else:
            out[n.name] = Fraction(1)
    total = sum(out.values(), Fraction(0))
    return {k: v / total for k, v in out.items()} if total else {}


def split(cluster: Cluster, scenario: str = "configured", *, mode: str = "iptables", rps: float | None = None,
          lb_weight: str = "equal") -> TopologySplit:  # fmt: skip
    """The :class:`TopologySplit` of ``cluster`` as it stands."""
    views = tuple(node_view(cluster, n, mode) for n in cluster.nodes)
    by_name = {v.node.name: v for v in views}
    total = sum(cluster.clients.values(), Fraction(0))
    if total == 0:
        raise InvalidArgument(f"{scenario}: no clients left (every client weight is 0)")
    internal: dict[str, Fraction] = {}
    dropped = Fraction(0)
    by_zone: dict[str, list] = {}
    by_node: dict[str, tuple[Fraction, dict[str, Fraction], Fraction]] = {}
    for node, w in cluster.clients.items():
        if w == 0:
            continue
        v = by_name[node]
        zrow = by_zone.setdefault(v.zone, [Fraction(0), {}, Fraction(0)])
        zrow[0] += w
        nshares: dict[str, Fraction] = {}
        if v.internal_verdict != "split":
            dropped += w / total
            zrow[2] += w
        for ep, s in v.internal:
            internal[ep.key] = internal.get(ep.key, Fraction(0)) + w * s / total
            zrow[1][ep.key] = zrow[1].get(ep.key, Fraction(0)) + w * s
            nshares[ep.key] = s
        by_node[node] = (w / total, nshares, Fraction(0 if v.internal_verdict == "split" else 1))
    zones = {z: (wz / total, {k: s / wz for k, s in d.items()}, dz / wz) for z, (wz, d, dz) in by_zone.items()}
    external = None
    ext_dropped = Fraction(0)
    lbw: dict[str, Fraction] = {}
    if cluster.service.externally_accessible:
        lbw = _lb_weights(cluster, views, lb_weight)
        external = {}
        for node, w in lbw.items():
            v = by_name[node]
            if v.external_verdict != "split":
                ext_dropped += w
            for ep, s in v.external:
                external[ep.key] = external.get(ep.key, Fraction(0)) + w * s
        if not lbw:
            ext_dropped = Fraction(1)
    used = set(internal) | set(external or ())
    pods = tuple(e for e in sorted(cluster.endpoints, key=lambda e: (cluster.zone_of(e.node), e.node or "", e.key))
                 if e.ready or e.key in used)  # fmt: skip
    return TopologySplit(scenario, cluster, views, pods, internal, dropped, zones, by_node, external, ext_dropped,
                         lbw, rps, mode, cluster.notes)  # fmt: skip
