"""Every client path to every routed service of a set of manifests, exact and simulated.

:func:`compare_paths` is the API behind ``python -m meshstat compare -f DIR``; it simulates
through :func:`meshstat.engine.routes.compare`. :class:`MeshComparison` keeps the paths, their results
and the statistics; its tables come from :mod:`meshstat.report.mesh`
(``wide_frame(cmp.entries())``, ``long_frame(cmp.entries())``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from meshstat.engine.routes import compare
from meshstat.errors import InvalidArgument
from meshstat.mesh.ambient import ambient_decision
from meshstat.mesh.paths import NO_ROUTED_SERVICE, Mesh
from meshstat.mesh.registry import sole_port, version_of
from meshstat.mesh.requests import Request, paths_per_route
from meshstat.model import Route, exact_sum
from meshstat.parsers import envoy as envoy_parser
from meshstat.parsers.k8s import Diagnostic, Manifests, load_manifests
from meshstat.parsers.yaml_loader import gc_paused

__all__ = ["MeshComparison", "PathSplit", "compare_paths"]


@dataclass(frozen=True)
class PathSplit:
    """One client path to one service: its route and, once simulated, its result."""

    service: str
    path: str
    kind: str
    route: Route
    clients: Sequence[str]  # a ClientList: the clients' names over runs shared by every path
    result: Any = None


@dataclass(frozen=True)
class MeshComparison:
    """What :func:`compare_paths` returns: every client path to every routed service.

    Attributes
    ----------
    paths : tuple of PathSplit
        One entry per (service, client path), in table order.
    diagnostics : tuple of Diagnostic
        Warnings and notes, each with its file and line.
    notes : tuple of str
        Remarks on the model (what-if scaling, approximations).
    """

    mesh: Mesh
    paths: tuple[PathSplit, ...]
    diagnostics: tuple[Diagnostic, ...]
    notes: tuple[str, ...]

    def entries(self) -> list[dict[str, Any]]:
        """Rows for :mod:`meshstat.report.mesh` (``service``, ``path``, ``route``, ``result``, ``clients``)."""
        return [
            {"service": p.service, "path": p.path, "route": p.route, "result": p.result, "clients": p.clients}
            for p in self.paths
        ]

    def shares(self, service: str | None = None, *, by: str = "version") -> dict[str, dict[str, Fraction]]:
        """Exact shares per path label: ``{"sidecar (Envoy)": {"v1": Fraction(9, 10), ...}}``.

        ``by="version"`` sums pods by their ``version`` label; ``by="backend"`` keeps pods apart.
        """
        out: dict[str, dict[str, Fraction]] = {}
        for p in self.paths:
            if service is not None and p.service != service:
                continue
            parts: dict[str, list[Fraction]] = {}
            for b, s in zip(p.route.backends(), p.route.expected_shares()[0], strict=True):
                parts.setdefault(version_of(b.labels) if by == "version" else b.name, []).append(s)
            acc = {key: exact_sum(v) for key, v in parts.items()}
            out[p.path if p.path not in out else f"{p.path} ({p.service})"] = acc  # several routes: keep each
        return out


@gc_paused()  # routes and results for thousands of services: no cycles to collect
def compare_paths(
    filenames: str | Sequence[str] | Manifests,
    *,
    scale: Mapping[str, int] | None = None,
    client: str | None = None,
    service: str | None = None,
    envoy: str | Sequence[str] | None = None,
    path: str | None = None,
    headers: Mapping[str, str] | None = None,
    method: str | None = None,
    n: int | None = 1_000_000,
    rng: Any = None,
) -> MeshComparison:
    """Every client path to every routed service of a set of manifests, with exact and simulated splits.

    The API behind ``python -m meshstat compare -f DIR``.

    Parameters
    ----------
    filenames : str, sequence of str, or Manifests
        Manifest files or directories (YAML, multi-document, ``kind: List``), or manifests already read
        (:func:`meshstat.parsers.k8s.load_manifests`).
    scale : mapping, optional
        What-if replica counts, ``{"deploy/bill-service-v1": 3}``.
    client : str, optional
        Only this client workload (``ns/name``).
    service : str, optional
        Only this service (``host[:port]``); default: every service a VirtualService or Gateway API route
        routes (ingress routes included).
    envoy : str or sequence of str, optional
        An Envoy ``config_dump`` (or istioctl outputs) of the injected client: adds a path.
    path, headers, method
        The request (for route matching). When none is given, every route the rules have for the
        service is shown: one row group per distinct route, its match condition after the
        service name (:func:`meshstat.mesh.requests.paths_per_route`).
    n : int or None
        Requests simulated per path through :func:`meshstat.engine.compare` (one seed for
        all paths); ``None`` skips the simulation.
    rng
        Seed (see :mod:`meshstat.engine.seeding`).
    """
    if isinstance(filenames, Manifests):
        manifests = filenames
    else:
        files = [filenames] if isinstance(filenames, str) else list(filenames)
        if not files:
            raise InvalidArgument("give at least one manifest file or directory")
        manifests = load_manifests(files)
    mesh = Mesh(manifests, scale=scale)
    wl = mesh.manifests.workload(client) if client else None
    env_cfg = None
    if envoy:
        env_cfg = envoy_parser.load_envoy([envoy] if isinstance(envoy, str) else list(envoy))
    if service:
        info, port = mesh.find_service(service, wl.meta.namespace if wl else None)
        if port is None:
            port = sole_port(info, "give the service as HOST:PORT")
        pairs = [(info, port)]
    else:
        pairs = mesh.routed_services()
        if not pairs:
            raise InvalidArgument(NO_ROUTED_SERVICE)
    diags: list[Diagnostic] = []
    notes: list[str] = list(mesh.notes)
    request = None if path is None and not headers and method is None else Request.of(path, headers, method)
    found = _paths(mesh, pairs, request, wl, env_cfg, diags, notes)
    if wl is not None:
        notes.insert(0, f"client {wl.meta.ref}: {mesh.injection(wl)}; {ambient_decision(mesh, wl)}")
    if n is not None:
        results = compare([p.route for p in found], n, rng=rng)
        found = [
            PathSplit(p.service, p.path, p.kind, p.route, p.clients, r) for p, r in zip(found, results, strict=True)
        ]
    return MeshComparison(mesh, tuple(found), tuple(mesh.diagnostics + diags), tuple(notes))


def _paths(mesh: Mesh, pairs: list[tuple[Any, int]], request: Request | None, wl: Any, env_cfg: Any,
           diags: list[Diagnostic], notes: list[str]) -> list[PathSplit]:
    """The paths of every (service, port) of ``pairs``, route by route."""
    found: list[PathSplit] = []
    for info, port in pairs:
        for cond, _, paths in paths_per_route(mesh, info, port, request=request, client=wl, envoy=env_cfg,
                                              diags=diags, notes=notes):
            svc = f"{info.short}:{port}" + (f" · {cond}" if cond else "")
            for p in paths:
                found.append(PathSplit(svc, p.label, p.kind, p.route, p.clients))
                notes.extend(f"{p.label}: {x}" for x in p.route.notes if "long-run share" not in x)
    return found
