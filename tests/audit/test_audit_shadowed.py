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


def _bookinfo(plane: str, text: str) -> Mesh:
    """Bookinfo with all its subsets on ``plane``'s data plane, and ``text``."""
    b = DATA / "bookinfo"
    m = load_manifests([str(b / "platform" / "kube" / "bookinfo.yaml"),
                        str(b / "networking" / "destination-rule-all.yaml"), str(DATA / "bookinfo-ambient" / plane)])
    m.extend(parse_manifest_text(text, "vs.yaml"))
    return Mesh(m)


def _mesh(plane: str, first: str) -> Mesh:
    return _bookinfo(plane, first + "---\n" + NEW_90_10)


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
    assert audit(_bookinfo("sidecar", NEW_90_10)).rows == []


PREFIX_ALL = OLD_50_50.replace("  - route:\n", "  - match: [{uri: {prefix: /}}]\n    route:\n", 1)
BROKEN_FIRST = OLD_50_50.replace("subset: v3}", "subset: v9}")


@pytest.mark.parametrize(("plane", "path_kind"), [("sidecar", "sidecar"), ("waypoint", "ambient-waypoint")])
@pytest.mark.parametrize(("first", "effective"), [
    (PREFIX_ALL, {"v1": F(1, 2), "v3": F(1, 2)}),  # ``prefix: /`` meets every request: no 404
    (BROKEN_FIRST, {"v1": F(1, 2), "503": F(1, 2)}),  # the first one's own failure shows
], ids=["prefix-slash", "broken-first"])
def test_the_first_ones_split_is_what_its_proxies_do(plane, path_kind, first, effective) -> None:
    mesh = _mesh(plane, first)
    model = path_shares(mesh, "reviews.default.svc.cluster.local", 9080, path_kind, client="productpage-v1")
    assert model == effective
    rows = [r for r in audit(mesh).rows if r.reason == "other-virtualservice-wins"]
    assert [(r.configured, dict(r.effective)) for r in rows] == [(CONFIGURED, effective)]


@pytest.mark.parametrize("match", ["[{uri: {prefix: /}}]", "[{uri: {regex: '.*'}}]", "[{method: {exact: GET}}]",
                                   "[{authority: {exact: 'reviews:9080'}}]", "[{authority: {prefix: reviews}}]",
                                   "[{port: 9080}]"])
@pytest.mark.parametrize(("plane", "path_kind", "kind"), [("sidecar", "sidecar", "sidecar"),
                                                          ("waypoint", "ambient-waypoint", "ambient + waypoint")])
def test_a_rule_every_plain_request_meets_is_audited(match, plane, path_kind, kind) -> None:
    """A VirtualService whose one rule matches ``prefix: /`` (or any match a plain ``GET /`` to reviews:9080 meets,
    its authority and port included) splits every request: the audit compares it, as the path model routes it (it
    took only rules without matches as a plain request's, and said nothing)."""
    vs = NEW_90_10.replace("subset: v2}", "subset: v9}").replace("  - route:\n", f"  - match: {match}\n    route:\n", 1)
    mesh = _bookinfo(plane, vs)
    model = path_shares(mesh, "reviews.default.svc.cluster.local", 9080, path_kind, client="productpage-v1")
    assert model == {"v1": F(9, 10), "503": F(1, 10)}
    (row,) = audit(mesh).rows
    assert (row.kind, row.reason, dict(row.effective)) == (kind, "subset-undefined", model)


_OTHER_CLIENT = """---
apiVersion: v1
kind: Namespace
metadata: {name: other, labels: {istio-injection: enabled}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: oc, namespace: other}
spec:
  selector: {matchLabels: {app: oc}}
  template: {metadata: {labels: {app: oc}}, spec: {containers: [{name: c, image: c}]}}
"""


def test_the_first_ones_split_per_client_namespace() -> None:
    """reviews' DestinationRule is exported to ``.`` only: the first VirtualService splits default's requests
    50/50 and fails all of other's (503). One row per effective split, as the path model gives them."""
    b = DATA / "bookinfo"
    dr = (b / "networking" / "destination-rule-all.yaml").read_text()
    i = dr.index("  host: reviews\n")
    dr = dr[:i] + "  host: reviews\n  exportTo: [\".\"]\n" + dr[i + len("  host: reviews\n"):]
    m = load_manifests([str(b / "platform" / "kube" / "bookinfo.yaml"), str(DATA / "bookinfo-ambient" / "sidecar")])
    m.extend(parse_manifest_text(dr + "---\n" + OLD_50_50 + "---\n" + NEW_90_10 + _OTHER_CLIENT, "x.yaml"))
    mesh = Mesh(m)
    other = path_shares(mesh, "reviews.default.svc.cluster.local", 9080, "sidecar", client="oc")
    assert other == {"503": F(1)}
    rows = sorted((r.clients, dict(r.effective)) for r in audit(mesh).rows if r.reason == "other-virtualservice-wins")
    assert rows == [("default (6)", {"v1": F(1, 2), "v3": F(1, 2)}), ("other (1)", other)]


@pytest.mark.parametrize("match", ["[{sourceLabels: {app: productpage}}]", "[{sourceNamespace: default}]"])
def test_rules_for_some_clients_are_theirs(match) -> None:
    """Rule 0 sends the requests of the clients it selects (by labels or namespace) to v1; rule 1 splits the others'
    v1/v9, and v9 is undefined. Each sidecar group is compared with the rule its clients meet, as the path model
    routes them (the audit took rule 1 for everyone, or left them all out)."""
    first = NEW_90_10.replace("  - route:\n", f"  - match: {match}\n    route: [{{destination: {{host: reviews, "
                              "subset: v1}}]\n  - route:\n", 1).replace("subset: v2}, weight: 10",
                                                                        "subset: v9}, weight: 10")
    mesh = _bookinfo("sidecar", first)
    selected = path_shares(mesh, "reviews.default.svc.cluster.local", 9080, "sidecar", client="productpage-v1")
    others = path_shares(mesh, "reviews.default.svc.cluster.local", 9080, "sidecar", client="details-v1")
    assert selected == {"v1": F(1)}
    rows = audit(mesh).rows
    if "sourceLabels" in match:  # productpage alone is selected: the five other workloads fail a tenth
        assert others == {"v1": F(9, 10), "503": F(1, 10)}
        (row,) = rows
        assert (row.clients, row.reason, dict(row.effective)) == ("default (5)", "subset-undefined", others)
    else:  # every client of default is selected: nothing fails
        assert others == selected and rows == []
