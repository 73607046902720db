"""Bookinfo (copied from istio/istio) plus inline objects, as a Mesh."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

from meshstat.mesh import Mesh, version_of
from meshstat.parsers.k8s import load_manifests, parse_manifest_text

DATA = Path(__file__).resolve().parents[1] / "data"
BOOKINFO = DATA / "bookinfo"
APP = str(BOOKINFO / "platform" / "kube" / "bookinfo.yaml")
NET = BOOKINFO / "networking"
AMBIENT = DATA / "bookinfo-ambient"


def bookinfo(*rules: str, variant: str | None = None, extra: str = "") -> Mesh:
    """Bookinfo's app, ``networking/<rule>.yaml`` files, a ``bookinfo-ambient/<variant>`` and inline YAML."""
    files = [APP, *(str(NET / f"{r}.yaml") for r in rules)]
    if variant:
        files.append(str(AMBIENT / variant))
    m = load_manifests(files)
    if extra:
        m.extend(parse_manifest_text(extra, "extra.yaml"))
    return Mesh(m)


def shares(route) -> dict[str, Fraction]:
    """Exact shares by version (failures by their backend name)."""
    out: dict[str, Fraction] = {}
    for b, s in zip(route.backends(), route.exact_shares(), strict=True):
        k = version_of(b.labels) if "outcome" not in dict(b.labels) else b.name
        out[k] = out.get(k, Fraction(0)) + s
    return {k: v for k, v in out.items() if v}


def paths(mesh: Mesh, service: str = "default/reviews:9080", client: str | None = None, **req):
    """``{kind or label: ClientPath}`` for one service, and the diagnostics."""
    info, port = mesh.find_service(service)
    diags: list = []
    c = mesh.manifests.workload(client) if client else None
    got = mesh.client_paths(info, port, client=c, diags=diags, **req)
    out = {}
    for p in got:
        out.setdefault(p.kind, p)
        out[p.label] = p
    return out, diags


def mesh_config(*settings: str) -> str:
    """The ``istio`` ConfigMap of ``istio-system`` with these MeshConfig lines (``key: value`` each)."""
    lines = "".join(f"    {s}\n" for s in settings)
    return f"\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: istio, namespace: istio-system}}\ndata:\n  mesh: |-\n{lines}"
