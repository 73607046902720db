"""Endpoint balancers as stages of any route: :class:`Balanced`.

Envoy routes a request in two steps: the route's i.i.d. choices (weighted
clusters, ``source/common/router/weighted_cluster_specifier.cc:
WeightedClusterSpecifierPlugin::pickWeightedCluster``) pick a cluster or
subset, and that cluster's load balancer (``source/extensions/load_balancing_policies/*``)
picks the endpoint. A :class:`Balanced` stage is the second step: the leaves'
parent, holding one balancer (:class:`~meshstat.balancers.RoundRobin`,
:class:`~meshstat.balancers.LeastRequest`, :class:`~meshstat.balancers.Maglev`, ...)
and optionally the :class:`~meshstat.balancers.Workload` that drives it::

    Route(root=Weighted(children=(Balanced(RoundRobin(3), name="v1"),
                                  Balanced(LeastRequest(2), name="v2")), weights=(90, 10)))

Routes with a :class:`Balanced` stage are simulated by
:func:`meshstat.engine.stateful.simulate_stateful_route` (what
:func:`meshstat.simulate` runs for them); its module docstring gives the
composition and its random streams.

Heavy libraries are imported inside the functions that use them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from meshstat.balancers.hashing import Maglev, RingHash, key_hashes, keyed_host_shares
from meshstat.balancers.least_request import LeastRequest
from meshstat.balancers.roundrobin import Ipvs, NumgenInc, Random, RoundRobin, SmoothWRR
from meshstat.balancers.workload import Workload
from meshstat.errors import ModelError
from meshstat.model import Backend, Node, Stage

__all__ = ["BALANCERS", "Balanced"]

#: The endpoint balancer classes: what :class:`Balanced` and
#: :func:`meshstat.engine.balancers.simulate_balancer` accept.
BALANCERS = (RoundRobin, Random, LeastRequest, RingHash, Maglev, SmoothWRR, NumgenInc, Ipvs)

_TWO64 = 1 << 64


@dataclass(frozen=True, slots=True, kw_only=True)
class Balanced(Stage):
    """An endpoint load balancer as the leaves' parent stage of a route.

    Parameters
    ----------
    balancer : RoundRobin, Random, LeastRequest, RingHash, Maglev, SmoothWRR, NumgenInc or Ipvs
        The balancer of this subset (or cluster); the only positional argument.
    workload : Workload, optional
        What drives the balancer on its sub-stream: clients and connection
        reuse, hash keys (shared by the whole route, see the module docstring),
        and for LEAST_REQUEST the service times, servers and the route's
        arrival rate (thinned to this subset's share).
    children : tuple of Backend, optional
        One leaf per endpoint, in the balancer's endpoint order. By default
        ``Backend(name=f"{label}/{endpoint}", address=endpoint)`` with ``label``
        the stage ``name`` if given, else the policy (``"round_robin"``); give
        ``name`` when two subsets use the same policy, since backend names must
        be unique in a route.
    unit : {"request", "connection"}, optional
        Defaults to the balancer's unit (``"connection"`` for nft numgen and IPVS).
    name, provenance
        See :class:`meshstat.model.Stage`.

    Notes
    -----
    Unlike the i.i.d. stages, a balancer keeps state between requests (a
    round-robin position, requests in flight), so :attr:`stateful` is True and
    :func:`meshstat.simulate` hands routes containing this stage to
    :func:`~meshstat.engine.stateful.simulate_stateful_route`. :meth:`shares` is the balancer's exact
    long-run share per endpoint (what :func:`~meshstat.engine.balancers.simulate_balancer`
    reports as ``expected``), except for LEAST_REQUEST, whose share depends on the
    load and needs simulation.

    Examples
    --------
    >>> from meshstat import Route, Weighted
    >>> from meshstat.balancers import Balanced, RoundRobin
    >>> s = Balanced(RoundRobin(["10.0.0.1:80", "10.0.0.2:80"], weights=[1, 3]), name="v1")
    >>> [b.name for b in s.children], s.shares()
    (['v1/10.0.0.1:80', 'v1/10.0.0.2:80'], (Fraction(1, 4), Fraction(3, 4)))
    """

    balancer: Any = field(kw_only=False)
    workload: Workload | None = None
    children: tuple[Node, ...] = ()
    unit: Any = None

    #: Keeps state between requests: simulated by :func:`~meshstat.engine.stateful.simulate_stateful_route`.
    stateful = True

    def __post_init__(self) -> None:
        lb = self.balancer
        if not isinstance(lb, BALANCERS):
            raise ModelError(
                f"Balanced needs one of {', '.join(c.__name__ for c in BALANCERS)}, got {type(lb).__name__}"
            )
        if self.workload is not None and not isinstance(self.workload, Workload):
            got = type(self.workload).__name__
            raise ModelError(f"workload must be a meshstat.balancers.Workload, got {got}")
        if self.unit is None:
            object.__setattr__(self, "unit", lb.unit)
        elif self.unit != lb.unit:
            raise ModelError(f"{lb.policy} decides per {lb.unit}, not per {self.unit}")
        if not self.children:
            label = self.name or lb.policy
            kids = tuple(Backend(name=f"{label}/{ep}", address=ep) for ep in lb.endpoints)
            object.__setattr__(self, "children", kids)
        else:
            object.__setattr__(self, "children", tuple(self.children))
        for c in self.children:
            if not isinstance(c, Backend):
                got = type(c).__name__
                raise ModelError(f"the children of a Balanced stage are its endpoints (Backends), got {got}")
        if len(self.children) != lb.n_hosts:
            raise ModelError(f"{len(self.children)} children for a balancer of {lb.n_hosts} endpoints")

    @property
    def policy(self) -> str:
        """The balancer's policy name (``"round_robin"``, ``"least_request"``, ``"maglev"``, ...)."""
        return str(self.balancer.policy)

    @property
    def shares_exact(self) -> bool:
        """Whether :meth:`shares` exists (False for LEAST_REQUEST: its share depends on the load)."""
        return not isinstance(self.balancer, LeastRequest)

    @property
    def keyed(self) -> bool:
        """Whether requests are hashed by their workload key (RING_HASH / MAGLEV with a keyed workload)."""
        wl = self.workload
        return isinstance(self.balancer, RingHash | Maglev) and wl is not None and wl.has_keys

    def shares(self) -> tuple[Fraction, ...]:
        """Exact long-run share of every endpoint, given that a request reached this stage.

        Round robin, smooth WRR, numgen and IPVS: the share over whole cycles;
        RANDOM: uniform; RING_HASH / MAGLEV: the share of the hash space (random
        hashes), or with a keyed workload the summed popularity of the keys each
        host owns (:func:`~meshstat.engine.balancers.simulate_balancer`'s ``expected``).

        Raises
        ------
        ModelError
            For LEAST_REQUEST: the long-run share depends on the load (arrival
            rate, service times), so it needs simulation; :func:`meshstat.simulate`
            reports the simulated shares for it.
        """
        lb = self.balancer
        if isinstance(lb, LeastRequest):
            raise ModelError(
                f"least request ({self.name or 'Balanced'}): the long-run share of each endpoint depends "
                "on the load (arrival rate, service times), so it has no exact value; it needs simulation "
                "(meshstat.simulate reports the simulated shares)"
            )
        if self.keyed:
            assert self.workload is not None
            return _keyed_shares(lb, self.workload)
        return tuple(lb.expected_shares())

    def masses64_exact(self) -> bool:
        """Whether :meth:`masses64` equals :meth:`shares` exactly."""
        return all(Fraction(m, _TWO64) == s for m, s in zip(self.masses64(), self.shares(), strict=True))


def _keyed_shares(lb: RingHash | Maglev, wl: Workload) -> tuple[Fraction, ...]:
    """Summed key popularity per host (``simulate_balancer``'s ``"keys"`` expectation)."""
    return keyed_host_shares(lb.lookup(key_hashes(wl)), wl, lb.n_hosts)
