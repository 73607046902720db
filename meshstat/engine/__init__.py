"""The engine: every simulation of meshstat (layer 7).

:mod:`~meshstat.engine.routes`
    :func:`simulate` (one route) and :func:`compare` (several routes, one seed);
:mod:`~meshstat.engine.iid`
    routes whose stages all decide i.i.d.: exact mode and the chunked numba kernels;
:mod:`~meshstat.engine.chunks`
    chunks of blocks, their keys, progress and destinations streamed to Parquet;
:mod:`~meshstat.engine.stateful`
    routes with endpoint balancers (:class:`meshstat.balancers.Balanced` stages);
:mod:`~meshstat.engine.balancers`
    one endpoint balancer over ``n`` requests (``simulate_balancer``) and key movement (``disruption``);
:mod:`~meshstat.engine.connections`
    connection reuse over any route (``simulate_connections``);
:mod:`~meshstat.engine.affinity`
    session affinity over many clients (``simulate_affinity``);
:mod:`~meshstat.engine.mesh`
    every client path of a mesh's manifests, exact and simulated (``compare_paths``);
:mod:`~meshstat.engine.result`, :mod:`~meshstat.engine.seeding`, :mod:`~meshstat.engine.sinks`,
:mod:`~meshstat.engine.progress`
    the result object, the reproducibility contract, Parquet output and the command line's progress bar.

The balancer simulations are exported lazily (PEP 562): a run without balancers
does not load their definitions, which keeps the command line's start-up short.
"""

from __future__ import annotations

import importlib
from typing import Any

from meshstat.engine.iid import AUTO_PER_REQUEST_LIMIT, MAX_DESTINATIONS, MAX_WINDOW_CELLS
from meshstat.engine.result import SimulationResult
from meshstat.engine.routes import compare, rate_summary, simulate

# public name -> engine module that defines it (imported on first use)
_LAZY: dict[str, str] = {
    "AffinityResult": "meshstat.engine.affinity",
    "simulate_affinity": "meshstat.engine.affinity",
    "BalancerResult": "meshstat.engine.balancers",
    "DisruptionResult": "meshstat.engine.balancers",
    "disruption": "meshstat.engine.balancers",
    "imbalance": "meshstat.engine.balancers",
    "simulate_balancer": "meshstat.engine.balancers",
    "ConnectionResult": "meshstat.engine.connections",
    "connection_groups": "meshstat.engine.connections",
    "simulate_connections": "meshstat.engine.connections",
    "simulate_stateful_route": "meshstat.engine.stateful",
    "MeshComparison": "meshstat.engine.mesh",
    "PathSplit": "meshstat.engine.mesh",
    "compare_paths": "meshstat.engine.mesh",
}

__all__ = [
    "AUTO_PER_REQUEST_LIMIT",
    "MAX_DESTINATIONS",
    "MAX_WINDOW_CELLS",
    "AffinityResult",
    "BalancerResult",
    "ConnectionResult",
    "DisruptionResult",
    "MeshComparison",
    "PathSplit",
    "SimulationResult",
    "compare",
    "compare_paths",
    "connection_groups",
    "disruption",
    "imbalance",
    "rate_summary",
    "simulate",
    "simulate_affinity",
    "simulate_balancer",
    "simulate_connections",
    "simulate_stateful_route",
]


def __getattr__(name: str) -> Any:
    mod = _LAZY.get(name)
    if mod is None:
        raise AttributeError(f"module 'meshstat.engine' has no attribute {name!r}")
    value = getattr(importlib.import_module(mod), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
