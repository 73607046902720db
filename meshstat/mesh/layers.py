"""The layered view of a call: :class:`Layer` (one decision) and :class:`ClientPath` (one way a call goes).

Defined apart from :mod:`meshstat.mesh.paths` so that the modules that build paths
(:mod:`~meshstat.mesh.scope`, :mod:`~meshstat.mesh.ambient`) need not import the mesh itself.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from meshstat.model import Route, Stage, share_text
from meshstat.parsers.k8s import Diagnostic

__all__ = ["FAILURES", "ClientPath", "Layer", "failure_warnings"]

#: ``outcome`` labels of leaves where the call fails (a 500 of an invalid backendRef, 502, 503, 404 NR,
#: a rejected connection, an error): a share above 0 is a warning.
FAILURES = ("500", "502", "503", "404", "reject", "error")


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


def failure_warnings(paths: Iterable[ClientPath], target: str) -> list[Diagnostic]:
    """A warning per failing leaf with a share above 0 on each path.

    ``label: 1/2 (50%) of requests to T fail: <leaf>``, with the leaf's file and line.
    """
    out = []
    for p in paths:
        root = p.route.root
        what = "connections" if isinstance(root, Stage) and root.unit == "connection" else "requests"
        shares, exact = p.route.expected_shares()
        for b, s in zip(p.route.backends(), shares, strict=True):
            if dict(b.labels).get("outcome") in FAILURES and s > 0:
                pv = b.provenance
                text = share_text(s, exact)
                out.append(Diagnostic("warning", f"{p.label}: {text} ({float(s) * 100:.4g}%) of {what} to "
                                      f"{target} fail: {b.name}", pv.source if pv else None,
                                      pv.line if pv else None))
    return out
