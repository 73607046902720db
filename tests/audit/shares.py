"""The path model's split of a client path, by version: what the audit's rows are checked against."""

from __future__ import annotations

from fractions import Fraction

from meshstat.mesh import Mesh
from meshstat.model import Route


def version_shares(route: Route) -> dict[str, Fraction]:
    """A route's exact shares by the backends' ``version`` label; a failed request (an ``outcome``) is ``503``."""
    out: dict[str, Fraction] = {}
    for b, s in zip(route.backends(), route.exact_shares(), strict=True):
        labels = dict(b.labels)
        key = "503" if "outcome" in labels else labels.get("version", b.name)
        out[key] = out.get(key, Fraction(0)) + s
    return out


def path_shares(mesh: Mesh, fqdn: str, port: int, kind: str, client: str | None = None) -> dict[str, Fraction]:
    """:func:`version_shares` of the first path of ``kind`` to ``fqdn:port`` (for the workload named ``client``)."""
    info = mesh.registry[fqdn]
    who = next(w for w in mesh.manifests.workloads if w.meta.name == client) if client else None
    path = next(p for p in mesh.client_paths(info, port, client=who) if p.kind == kind)
    return version_shares(path.route)
