"""meshstat: where does my traffic really go?

Exact load-balancing statistics for Kubernetes and service meshes: compile
kube-proxy, Envoy and Istio configuration into an exact model of each
load-balancing stage, route synthetic requests through numba kernels, and
report expected vs observed shares with intervals and p-values.

Heavy modules (numpy, numba, polars, scipy) are imported on first use, so that
``import meshstat`` and the command line start quickly.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# public name -> module that defines it (loaded lazily, PEP 562)
_EXPORTS: dict[str, str] = {
    # errors
    "MeshstatError": "meshstat.errors",
    "ConfigParseError": "meshstat.errors",
    "InvalidArgument": "meshstat.errors",
    "ModelError": "meshstat.errors",
    # model
    "Backend": "meshstat.model",
    "Cascade": "meshstat.model",
    "Weighted": "meshstat.model",
    "Route": "meshstat.model",
    "Stage": "meshstat.model",
    "Provenance": "meshstat.model",
    "probability_to_threshold": "meshstat.model",
    "threshold_to_decimal": "meshstat.model",
    "kube_proxy_probabilities": "meshstat.model",
    "weights_to_cascade": "meshstat.model",
    # simulation
    "simulate": "meshstat.engine",
    "compare": "meshstat.engine",
    "SimulationResult": "meshstat.engine",
    "ConfidenceInterval": "meshstat.stats",
    "GofResult": "meshstat.stats",
    # the questions users ask (check, plan, bands, canary)
    "check_split": "meshstat.inference",
    "plan_tolerance": "meshstat.inference",
    "plan_min_hits": "meshstat.inference",
    "plan_detect": "meshstat.inference",
    "bands": "meshstat.inference",
    "canary": "meshstat.inference",
}

__all__ = sorted([*_EXPORTS, "__version__"])


def __getattr__(name: str) -> Any:
    mod = _EXPORTS.get(name)
    if mod is None:
        raise AttributeError(f"module 'meshstat' has no attribute {name!r}")
    module = importlib.import_module(mod)
    # bind every export of that module at once (no export shares its name with a
    # submodule: meshstat.simulate is always the function, the engine is meshstat.engine)
    for export, where in _EXPORTS.items():
        if where == mod:
            globals()[export] = getattr(module, export)
    return globals()[name]


def __dir__() -> list[str]:
    return __all__
