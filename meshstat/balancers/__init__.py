"""Inside a subset: endpoint load balancers and connection-level effects (definitions).

Stateful or keyed balancers are not i.i.d. :class:`meshstat.model.Stage`\\ s, so
each has its own frozen dataclass, run by :func:`meshstat.engine.balancers.simulate_balancer`:

=====================  ==========================================================================
class                  what it models
=====================  ==========================================================================
:class:`RoundRobin`    Envoy ROUND_ROBIN: strict cycle from a random start, or EDF for unequal
                       weights (``createWithPicks`` random phase); one instance per worker
:class:`Random`        Envoy RANDOM: ``hosts[r % n]``, weights ignored (as Envoy 1.40)
:class:`LeastRequest`  Envoy LEAST_REQUEST: N choices with replacement / full scan / EDF with
                       ``w / (active + 1) ** bias``; a discrete-event simulation under load
:class:`RingHash`      Envoy RING_HASH: xxHash64 ketama ring, bit-exact host per key
:class:`Maglev`        Envoy MAGLEV: 65537-entry table, bit-exact host per key
:class:`SmoothWRR`     nginx smooth weighted round robin (backup, down, worker processes)
:class:`NumgenInc`     nft ``numgen inc``: round robin per new connection
:class:`Ipvs`          IPVS ``rr`` / ``wrr`` per new connection, as kube-proxy configures it
=====================  ==========================================================================

Inside any route: :class:`Balanced` makes a balancer the leaves' parent stage
(e.g. Envoy weighted clusters over subsets, each with its own balancer), and
:func:`meshstat.simulate` runs such routes through
:func:`meshstat.engine.stateful.simulate_stateful_route`.

Also: :class:`KubeProxyAffinity` and :class:`HashAffinity` (kube-proxy ClientIP
affinity, Envoy hash stickiness), :mod:`~meshstat.balancers.priority` (priority
loads, panic, localities) and :func:`xxh64`. The simulations are the engine's:
:mod:`meshstat.engine.balancers` (``simulate_balancer``, ``disruption``: keys that
move when hosts change), :mod:`meshstat.engine.connections` (``simulate_connections``:
connection reuse over any route) and :mod:`meshstat.engine.affinity` (``simulate_affinity``).

Heavy libraries are imported on first use.
"""

from __future__ import annotations

from meshstat.balancers.affinity import HashAffinity, KubeProxyAffinity
from meshstat.balancers.hashing import Maglev, RingHash, default_endpoints, hash_strings, xxh64
from meshstat.balancers.least_request import LeastRequest
from meshstat.balancers.priority import (
    Locality,
    PriorityLevel,
    PriorityLoads,
    host_shares,
    locality_shares,
    priority_loads,
    priority_route,
)
from meshstat.balancers.roundrobin import Ipvs, NumgenInc, Random, RoundRobin, SmoothWRR, create_with_picks
from meshstat.balancers.stage import Balanced
from meshstat.balancers.workload import ServiceTime, Workload

__all__ = [
    "Balanced",
    "HashAffinity",
    "Ipvs",
    "KubeProxyAffinity",
    "LeastRequest",
    "Locality",
    "Maglev",
    "NumgenInc",
    "PriorityLevel",
    "PriorityLoads",
    "Random",
    "RingHash",
    "RoundRobin",
    "ServiceTime",
    "SmoothWRR",
    "Workload",
    "create_with_picks",
    "default_endpoints",
    "hash_strings",
    "host_shares",
    "locality_shares",
    "priority_loads",
    "priority_route",
    "xxh64",
]
