"""The layered view of a call: :class:`Layer` (one decision) and :class:`ClientPath` (one way a call goes).

Defined apart from :mod:`meshstat.mesh.paths` so that the modules that build paths
(:mod:`~meshstat.mesh.scope`, :mod:`~meshstat.mesh.ambient`) need not import the mesh itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from meshstat.model import Route

__all__ = ["ClientPath", "Layer"]


@dataclass(frozen=True, slots=True)
class Layer:
    """One stage of the layered view: what decides, how, and where it is configured.

    A decision that rests on an assumption says so in ``decision`` (``assumes: ...``).
    """

    layer: str
    component: str
    decision: str
    unit: str = ""
    where: str = ""


@dataclass
class ClientPath:
    """One way a call to a service can go, with its Route and who takes it.

    ``kind`` is one of ``"kube-proxy"`` (no mesh), ``"sidecar"``, ``"uid-1337"``,
    ``"envoy-dump"``, ``"ambient"`` (ztunnel only) and ``"ambient-waypoint"``.
    """

    kind: str
    label: str
    route: Route
    clients: list[str] = field(default_factory=list)
    layers: list[Layer] = field(default_factory=list)
