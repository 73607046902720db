"""`audit` of Services that Gateway API routes split in the mesh (GAMMA), for every client group.

Istio's Bookinfo (``tests/data/bookinfo``) with a producer HTTPRoute on ``reviews`` that sends 90% to a
``reviews-v1`` Service and 10% to ``reviews-v2`` (or ``reviews-v4``, whose pods do not exist), on each
data plane of ``tests/data/bookinfo-ambient``. Clients that apply no route (no sidecar; ambient without a
waypoint) get the pods of ``reviews``; a backend Service without pods answers 503 for its share. Each row's
effective split must be the path model's (``Mesh.client_paths``).
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
BOOKINFO = str(DATA / "bookinfo" / "platform" / "kube" / "bookinfo.yaml")


def _route(second: str) -> str:
    out = ("apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: reviews, namespace: default}\n"
           "spec:\n  parentRefs: [{group: '', kind: Service, name: reviews, port: 9080}]\n"
           f"  rules: [{{backendRefs: [{{name: reviews-v1, port: 9080, weight: 90}}, "
           f"{{name: reviews-{second}, port: 9080, weight: 10}}]}}]\n---\n")
    for v in ("v1", second):
        out += (f"apiVersion: v1\nkind: Service\nmetadata: {{name: reviews-{v}, namespace: default}}\n"
                f"spec: {{selector: {{app: reviews, version: {v}}}, ports: [{{name: http, port: 9080}}]}}\n---\n")
    return out


def _mesh(plane: str | None, second: str = "v2", extra: str = "") -> Mesh:
    m = load_manifests([BOOKINFO] + ([str(DATA / "bookinfo-ambient" / plane)] if plane else []))
    m.extend(parse_manifest_text(_route(second) + extra, "route.yaml"))
    return Mesh(m)


def _by_version(label: str) -> str:
    """An audit label as a version: ``default/reviews-v1:9080`` and ``unrouted v1`` are ``v1``."""
    if label.startswith("default/reviews-"):
        return label.removeprefix("default/reviews-").split(":")[0]
    return label.removeprefix("unrouted ")


def _model(mesh: Mesh, kind: str) -> dict[str, F]:
    return path_shares(mesh, "reviews.default.svc.cluster.local", 9080, kind, client="productpage-v1")


CONFIGURED = (("default/reviews-v1:9080", F(9, 10)), ("default/reviews-v2:9080", F(1, 10)))
PODS = (("default/reviews-v1:9080", F(1, 3)), ("default/reviews-v2:9080", F(1, 3)), ("unrouted v3", F(1, 3)))


@pytest.mark.parametrize(("plane", "reason", "kind", "path"), [
    (None, "no-sidecar", "no mesh", "kube-proxy"),
    ("ambient", "ambient-without-waypoint", "ambient", "ambient"),
])
def test_clients_that_apply_no_route_get_the_services_pods(plane, reason, kind, path) -> None:
    mesh = _mesh(plane)
    res = audit(mesh)
    (row,) = res.rows
    assert (row.service, row.reason, row.kind, row.configured, row.effective) == (
        "default/reviews:9080", reason, kind, CONFIGURED, PODS)
    model = _model(mesh, path)  # kube-proxy's statistic cascade: 32-bit probabilities
    assert all(abs(v - model[_by_version(k)]) < 1e-9 for k, v in row.effective) and len(model) == 3
    assert res.audited == 1


@pytest.mark.parametrize("plane", ["sidecar", "waypoint"])
def test_clients_that_apply_the_route_hold_it(plane) -> None:
    res = audit(_mesh(plane))
    assert res.rows == [] and res.audited == 1


@pytest.mark.parametrize(("plane", "path"), [("sidecar", "sidecar"), ("waypoint", "ambient-waypoint")])
def test_a_backend_service_without_pods_answers_503_for_its_share(plane, path) -> None:
    mesh = _mesh(plane, second="v4")
    (row,) = audit(mesh).rows
    assert (row.reason, row.effective) == ("backend-without-pods",
                                           (("default/reviews-v1:9080", F(9, 10)), ("503", F(1, 10))))
    assert row.kind == {"sidecar": "sidecar", "waypoint": "ambient + waypoint"}[plane]
    assert "reviews-v4.default selects no pods" in row.detail
    assert {_by_version(k): v for k, v in row.effective} == _model(mesh, path)


def test_a_virtual_service_for_the_host_names_the_unmeshed_clients_once() -> None:
    vs = ("apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: reviews, namespace: default}\n"
          "spec:\n  hosts: [reviews]\n  http:\n  - route: [{destination: {host: reviews-v1}}]\n---\n")
    rows = audit(_mesh(None, extra=vs)).rows
    assert [(r.service, r.reason) for r in rows] == [("default/reviews:9080", "no-sidecar")]
    # the VirtualService's split; the pods of reviews-v1 are the ones its Service selects
    assert rows[0].configured == (("reviews-v1", F(1)),)
    assert rows[0].effective == (("reviews-v1", F(1, 3)), ("unrouted v2", F(1, 3)), ("unrouted v3", F(1, 3)))


def test_a_virtual_service_to_another_service_is_not_held_by_every_pod() -> None:
    """A VirtualService that sends ``reviews`` to the ``reviews-v1`` Service, bound to a gateway only: the sidecars'
    default cluster spreads over all of ``reviews``' pods, of which only v1's are ``reviews-v1``'s."""
    vs = ("apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: reviews, namespace: default}\n"
          "spec:\n  hosts: [reviews]\n  gateways: [bookinfo-gateway]\n  http:\n"
          "  - route: [{destination: {host: reviews-v1}}]\n---\n")
    m = load_manifests([BOOKINFO, str(DATA / "bookinfo-ambient" / "sidecar")])
    m.extend(parse_manifest_text(_route("v2").split("---\n", 1)[1] + vs, "vs.yaml"))  # the Services, no HTTPRoute
    (row,) = audit(Mesh(m)).rows
    assert (row.reason, row.effective) == ("rule-bound-to-gateway-only", (
        ("reviews-v1", F(1, 3)), ("unrouted v2", F(1, 3)), ("unrouted v3", F(1, 3))))


CONSUMER = """apiVersion: v1
kind: Namespace
metadata: {name: team}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: caller, namespace: team}
spec:
  selector: {matchLabels: {app: caller}}
  template: {metadata: {labels: {app: caller}}, spec: {containers: [{name: c, image: x}]}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: reviews-team, namespace: team}
spec:
  parentRefs: [{group: "", kind: Service, name: reviews, namespace: default, port: 9080}]
  rules: [{backendRefs: [{name: reviews-v1, namespace: default, port: 9080}]}]
---
"""


def test_a_consumer_route_names_its_namespaces_unmeshed_clients() -> None:
    """A consumer route (GEP-1294) is the configured split of its own namespace's clients; those without a sidecar
    get the Service's pods. The producer route's row names the other namespaces' clients."""
    m = load_manifests([BOOKINFO])
    m.extend(parse_manifest_text(CONSUMER + _route("v2"), "routes.yaml"))
    rows = {r.clients: r for r in audit(Mesh(m)).rows}
    assert set(rows) == {"team (1)", "default (6)"}
    team = rows["team (1)"]
    assert (team.reason, team.configured, team.effective) == ("no-sidecar", (("default/reviews-v1:9080", F(1)),), (
        ("default/reviews-v1:9080", F(1, 3)), ("unrouted v2", F(1, 3)), ("unrouted v3", F(1, 3))))
    assert "HTTPRoute team/reviews-team" in team.detail
    assert rows["default (6)"].configured == CONFIGURED


@pytest.mark.parametrize(("plane", "reason"), [(None, "no-sidecar"), ("ambient", "ambient-without-waypoint"),
                                               ("sidecar", None), ("waypoint", None)])
def test_istios_own_bookinfo_route_reviews_90_10(plane, reason) -> None:
    """Istio's sample ``samples/bookinfo/gateway-api/route-reviews-90-10.yaml`` with its ``bookinfo-versions``
    Services, as copied (``tests/data/bookinfo/SOURCES.md``): only the clients that apply no route diverge."""
    b = DATA / "bookinfo"
    files = [BOOKINFO, str(b / "platform" / "kube" / "bookinfo-versions.yaml"),
             str(b / "gateway-api" / "route-reviews-90-10.yaml")]
    mesh = Mesh(load_manifests(files + ([str(DATA / "bookinfo-ambient" / plane)] if plane else [])))
    rows = [(r.service, r.reason, r.configured, r.effective) for r in audit(mesh).rows]
    assert rows == ([] if reason is None else [("default/reviews:9080", reason, CONFIGURED, PODS)])


_CONSUMER = """apiVersion: v1
kind: Namespace
metadata: {name: plain}
---
apiVersion: v1
kind: Namespace
metadata: {name: legacy}
---
apiVersion: v1
kind: Service
metadata: {name: reviews-v1, namespace: default}
spec: {ports: [{name: http, port: 9080}], selector: {app: reviews, version: v1}}
---
apiVersion: v1
kind: Service
metadata: {name: reviews-v3, namespace: default}
spec: {ports: [{name: http, port: 9080}], selector: {app: reviews, version: v3}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: reviews-for-plain, namespace: plain}
spec:
  parentRefs: [{group: "", kind: Service, name: reviews, namespace: default, port: 9080}]
  rules: [{backendRefs: [{name: reviews-v1, namespace: default, port: 9080, weight: 50},
                         {name: reviews-v3, namespace: default, port: 9080, weight: 50}]}]
""" + "".join(f"""---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: client, namespace: {ns}}}
spec:
  selector: {{matchLabels: {{app: client}}}}
  template: {{metadata: {{labels: {{app: client}}}}, spec: {{containers: [{{name: c, image: c}}]}}}}
""" for ns in ("plain", "legacy"))


def test_clients_without_a_sidecar_in_a_consumer_routes_namespace() -> None:
    """A VirtualService splits reviews 90/10 and a consumer HTTPRoute of namespace ``plain`` 50/50: a sidecar in
    ``plain`` would apply the route, so the clients there without one are compared with the route's split, the
    others with the VirtualService's (all of them were counted in the VirtualService's row)."""
    b = DATA / "bookinfo"
    m = load_manifests([str(b / "platform" / "kube" / "bookinfo.yaml"),
                        str(b / "networking" / "destination-rule-all.yaml"),
                        str(b / "networking" / "virtual-service-reviews-90-10.yaml"),
                        str(DATA / "bookinfo-ambient" / "sidecar")])
    m.extend(parse_manifest_text(_CONSUMER, "consumer.yaml"))
    rows = sorted(audit(Mesh(m)).rows, key=lambda r: r.clients)
    assert [(r.service, r.clients, r.reason) for r in rows] == [
        ("default/reviews:9080", "legacy (1)", "no-sidecar"), ("default/reviews:9080", "plain (1)", "no-sidecar")]
    legacy, plain = rows
    assert legacy.configured == (("v1", F(9, 10)), ("v2", F(1, 10)))
    assert dict(legacy.effective) == {"v1": F(1, 3), "v2": F(1, 3), "unrouted v3": F(1, 3)}
    assert plain.configured == (("default/reviews-v1:9080", F(1, 2)), ("default/reviews-v3:9080", F(1, 2)))
    assert dict(plain.effective) == {"default/reviews-v1:9080": F(1, 3), "default/reviews-v3:9080": F(1, 3),
                                     "unrouted v2": F(1, 3)}
    assert "HTTPRoute plain/reviews-for-plain rules[0]" in plain.detail


def test_a_virtual_service_exported_by_name_comes_before_the_consumer_route() -> None:
    """With ``exportTo: [default, plain]`` the VirtualService is on plain's private list, which a sidecar there
    takes before the consumer route (``sidecar_split``): plain's clients without a sidecar are the
    VirtualService's, in one row with legacy's."""
    b = DATA / "bookinfo"
    vs = (b / "networking" / "virtual-service-reviews-90-10.yaml").read_text()
    m = load_manifests([str(b / "platform" / "kube" / "bookinfo.yaml"),
                        str(b / "networking" / "destination-rule-all.yaml"), str(DATA / "bookinfo-ambient" / "sidecar")])
    m.extend(parse_manifest_text(vs.replace("spec:\n", "spec:\n  exportTo: [default, plain]\n", 1), "vs.yaml"))
    m.extend(parse_manifest_text(_CONSUMER, "consumer.yaml"))
    (row,) = audit(Mesh(m)).rows
    assert (row.clients, row.reason) == ("2 namespaces, 2 workloads: legacy (1), plain (1)", "no-sidecar")
    assert row.configured == (("v1", F(9, 10)), ("v2", F(1, 10)))


def test_a_route_backend_not_exported_to_the_clients() -> None:
    """A producer HTTPRoute of shop sends 90% to backend-v1, exported to ``.`` only: front's sidecars have no cluster
    for it (503 NC), shop's do; the path model and the audit agree."""
    text = """apiVersion: v1
kind: Namespace
metadata: {name: shop, labels: {istio-injection: enabled}}
---
apiVersion: v1
kind: Namespace
metadata: {name: front, labels: {istio-injection: enabled}}
---
apiVersion: v1
kind: Service
metadata: {name: backend, namespace: shop}
spec: {ports: [{name: http, port: 80, targetPort: 8080}], selector: {app: backend}}
---
apiVersion: v1
kind: Service
metadata: {name: backend-v1, namespace: shop, annotations: {networking.istio.io/exportTo: "."}}
spec: {ports: [{name: http, port: 80, targetPort: 8080}], selector: {app: backend, version: v1}}
---
apiVersion: v1
kind: Service
metadata: {name: backend-v2, namespace: shop}
spec: {ports: [{name: http, port: 80, targetPort: 8080}], selector: {app: backend, version: v2}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: backend, namespace: shop}
spec:
  parentRefs: [{group: "", kind: Service, name: backend, port: 80}]
  rules: [{backendRefs: [{name: backend-v1, port: 80, weight: 90}, {name: backend-v2, port: 80, weight: 10}]}]
""" + "".join(f"""---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: {name}, namespace: {ns}}}
spec:
  selector: {{matchLabels: {{app: {app}, version: {v}}}}}
  template: {{metadata: {{labels: {{app: {app}, version: {v}}}}}, spec: {{containers: [{{name: c, image: c,
             ports: [{{containerPort: 8080}}]}}]}}}}
""" for name, ns, app, v in (("backend-v1", "shop", "backend", "v1"), ("backend-v2", "shop", "backend", "v2"),
                             ("client", "front", "client", "v1")))
    mesh = Mesh(parse_manifest_text(text, "shop.yaml"))
    assert path_shares(mesh, "backend.shop.svc.cluster.local", 80, "sidecar", client="client") == {
        "503": F(9, 10), "v2": F(1, 10)}
    assert path_shares(mesh, "backend.shop.svc.cluster.local", 80, "sidecar", client="backend-v1") == {
        "v1": F(9, 10), "v2": F(1, 10)}
    (row,) = audit(mesh).rows
    assert (row.clients, row.reason) == ("front (1)", "not-exported-to-namespace")
    assert row.effective == (("503", F(9, 10)), ("shop/backend-v2:80", F(1, 10)))


def test_a_virtual_service_bound_to_a_gateway_only_leaves_the_route() -> None:
    """A VirtualService for reviews bound to an ingress Gateway only does not apply in the mesh, where the Service's
    own HTTPRoute splits 50/50: the audit compares the clients with the route, with or without it."""
    b = DATA / "bookinfo"
    route = _CONSUMER.replace("namespace: plain}\nspec:\n  parentRefs: [{group: \"\", kind: Service, name: reviews, "
                              "namespace: default, port: 9080}]", "namespace: default}\nspec:\n  parentRefs: [{group: "
                              "\"\", kind: Service, name: reviews, port: 9080}]")
    assert "name: reviews-for-plain, namespace: default" in route
    gw_only = """apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews-gw, namespace: default}
spec:
  hosts: [reviews]
  gateways: [bookinfo-gateway]
  http: [{route: [{destination: {host: reviews, subset: v1}}]}]
"""
    got = []
    for extra in ("", gw_only):
        m = load_manifests([str(b / "platform" / "kube" / "bookinfo.yaml"),
                            str(b / "networking" / "destination-rule-all.yaml"), str(DATA / "bookinfo-ambient" / "sidecar")])
        m.extend(parse_manifest_text(route + ("---\n" + extra if extra else ""), "r.yaml"))
        mesh = Mesh(m)
        assert path_shares(mesh, "reviews.default.svc.cluster.local", 9080, "sidecar", client="productpage-v1") == {
            "v1": F(1, 2), "v3": F(1, 2)}
        got.append({(r.clients, r.reason, r.configured) for r in audit(mesh).rows})
    assert got[0] == got[1] and {reason for _, reason, _ in got[0]} == {"no-sidecar"}
