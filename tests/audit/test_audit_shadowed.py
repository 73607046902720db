"""Two VirtualServices for one host: a proxy applies the first (the oldest; the manifests' order stands for
creation order), and the audit reports the later one's split as not applied (``other-virtualservice-wins``),
for sidecars and at a waypoint, including a first one whose rules match other paths only (a plain request: 404).

Istio keeps one VirtualService per host for a proxy (``istioctl analyze`` warns of two as IST0109,
ConflictingMeshGatewayVirtualServiceHosts). These rows were missing: the audit checked the first one only, and
said nothing when it routed no plain request.
"""

from __future__ import annotations

from fractions import Fraction as F
from pathlib import Path

import pytest

from meshstat.audit import audit
from meshstat.mesh import Mesh
from meshstat.parsers.k8s import load_manifests, parse_manifest_text
from tests.audit.shares import path_shares

DATA = Path(__file__).resolve().parents[1] / "data"

_VS = """apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: {name}}}
spec:
  hosts: [reviews]
  http:
{rules}
"""
OLD_50_50 = _VS.format(name="reviews-old", rules="""  - route:
    - {destination: {host: reviews, subset: v1}, weight: 50}
    - {destination: {host: reviews, subset: v3}, weight: 50}""")
API_ONLY = _VS.format(name="reviews-api", rules="""  - match: [{uri: {prefix: /api}}]
    route: [{destination: {host: reviews, subset: v2}}]""")
NEW_90_10 = _VS.format(name="reviews-new", rules="""  - route:
    - {destination: {host: reviews, subset: v1}, weight: 90}
    - {destination: {host: reviews, subset: v2}, weight: 10}""")
CONFIGURED = (("v1", F(9, 10)), ("v2", F(1, 10)))


def _mesh(plane: str, first: str) -> Mesh:
    b = DATA / "bookinfo"
    m = load_manifests([str(b / "platform" / "kube" / "bookinfo.yaml"),
                        str(b / "networking" / "destination-rule-all.yaml"), str(DATA / "bookinfo-ambient" / plane)])
    m.extend(parse_manifest_text(first + "---\n" + NEW_90_10, "vs.yaml"))
    return Mesh(m)


@pytest.mark.parametrize(("plane", "kind", "path_kind"), [("sidecar", "sidecar", "sidecar"),
                                                          ("waypoint", "ambient + waypoint", "ambient-waypoint")])
def test_the_later_virtual_service_is_not_applied(plane, kind, path_kind) -> None:
    mesh = _mesh(plane, OLD_50_50)
    model = path_shares(mesh, "reviews.default.svc.cluster.local", 9080, path_kind, client="productpage-v1")
    assert model == {"v1": F(1, 2), "v3": F(1, 2)}  # the older one's split
    (row,) = audit(mesh).rows
    assert (row.service, row.kind, row.reason) == ("default/reviews:9080", kind, "other-virtualservice-wins")
    assert row.configured == CONFIGURED and dict(row.effective) == model
    assert "VirtualService default/reviews-old for reviews.default.svc.cluster.local, which comes first" in row.detail
    assert "VirtualService default/reviews-new is not applied" in row.detail
    assert row.fix == ("merge the routes of VirtualService default/reviews-new into default/reviews-old, "
                         "or delete one",)


@pytest.mark.parametrize(("plane", "kind", "path_kind"), [("sidecar", "sidecar", "sidecar"),
                                                          ("waypoint", "ambient + waypoint", "ambient-waypoint")])
def test_a_first_virtual_service_for_other_paths_only_answers_404(plane, kind, path_kind) -> None:
    mesh = _mesh(plane, API_ONLY)
    info = mesh.registry["reviews.default.svc.cluster.local"]
    who = next(w for w in mesh.manifests.workloads if w.meta.name == "productpage-v1")
    path = next(p for p in mesh.client_paths(info, 9080, client=who) if p.kind == path_kind)
    (leaf,) = path.route.backends()
    assert leaf.name.startswith("404")  # the path model: no rule of the first one matches a plain request
    (row,) = audit(mesh).rows
    assert (row.service, row.kind, row.reason) == ("default/reviews:9080", kind, "other-virtualservice-wins")
    assert row.configured == CONFIGURED and row.effective == (("404 no route", F(1)),)
    assert row.detail.endswith("a plain request matches none of its rules: 404")


def test_one_virtual_service_per_host_gives_no_such_row() -> None:
    b = DATA / "bookinfo"
    m = load_manifests([str(b / "platform" / "kube" / "bookinfo.yaml"),
                        str(b / "networking" / "destination-rule-all.yaml"), str(DATA / "bookinfo-ambient" / "sidecar")])
    m.extend(parse_manifest_text(NEW_90_10, "vs.yaml"))
    assert audit(Mesh(m)).rows == []
