"""A VirtualService that sends to another Service (``cart`` -> ``cart-v1``/``cart-v2``) whose
``networking.istio.io/exportTo`` annotation leaves the clients' namespace out: their proxies have no cluster for it,
and its share answers 503 NC (``cluster_not_found``). The path model and the audit agree, for sidecars and at a
waypoint; clients in the Service's namespace are not affected.
"""

from __future__ import annotations

from fractions import Fraction as F

import pytest

from meshstat.audit import audit
from meshstat.mesh import Mesh
from meshstat.parsers.k8s import parse_manifest_text
from tests.audit.shares import path_shares

_NS = """apiVersion: v1
kind: Namespace
metadata: {{name: {name}, labels: {labels}}}
"""
_APP = """---
apiVersion: v1
kind: Service
metadata: {name: cart, namespace: shop}
spec: {ports: [{name: http, port: 80, targetPort: 8080}], selector: {app: cart}}
---
apiVersion: v1
kind: Service
metadata: {name: cart-v1, namespace: shop, annotations: {networking.istio.io/exportTo: "."}}
spec: {ports: [{name: http, port: 80, targetPort: 8080}], selector: {app: cart, version: v1}}
---
apiVersion: v1
kind: Service
metadata: {name: cart-v2, namespace: shop}
spec: {ports: [{name: http, port: 80, targetPort: 8080}], selector: {app: cart, version: v2}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: cart, namespace: shop}
spec:
  hosts: [cart]
  http:
  - route:
    - {destination: {host: cart-v1}, weight: 90}
    - {destination: {host: cart-v2}, weight: 10}
"""
_DEPLOY = """---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: {name}, namespace: {ns}}}
spec:
  replicas: 1
  selector: {{matchLabels: {{app: {app}, version: {v}}}}}
  template:
    metadata: {{labels: {{app: {app}, version: {v}}}}}
    spec: {{containers: [{{name: c, image: c, ports: [{{containerPort: 8080}}]}}]}}
"""
_WAYPOINT = """---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: waypoint, namespace: shop, labels: {istio.io/waypoint-for: service}}
spec:
  gatewayClassName: istio-waypoint
  listeners: [{name: mesh, port: 15008, protocol: HBONE}]
"""


def _namespaces(labels: str, *more: str) -> str:
    """Namespaces shop and front (and ``more``) with ``labels``, as YAML documents."""
    return "---\n".join(_NS.format(name=n, labels=labels) for n in ("shop", "front", *more))


def _mesh(plane: str) -> Mesh:
    labels = "{istio-injection: enabled}" if plane == "sidecar" else \
        "{istio.io/dataplane-mode: ambient, istio.io/use-waypoint: waypoint}"
    text = _namespaces(labels) + _APP
    text += "".join(_DEPLOY.format(name=f"cart-{v}", ns="shop", app="cart", v=v) for v in ("v1", "v2"))
    text += _DEPLOY.format(name="client", ns="front", app="client", v="v1")
    if plane == "waypoint":
        text += _WAYPOINT
    return Mesh(parse_manifest_text(text, "shop.yaml"))


@pytest.mark.parametrize(("plane", "kind", "path_kind", "clients"), [
    ("sidecar", "sidecar", "sidecar", "front (1)"),
    # the waypoint, in shop, sees cart-v1: every ambient client gets the split
    ("waypoint", None, "ambient-waypoint", None),
])
def test_a_backend_service_not_exported_to_the_proxy(plane, kind, path_kind, clients) -> None:
    mesh = _mesh(plane)
    model = path_shares(mesh, "cart.shop.svc.cluster.local", 80, path_kind, client="client")
    rows = audit(mesh).rows
    if kind is None:
        assert model == {"v1": F(9, 10), "v2": F(1, 10)} and rows == []
        return
    assert model == {"503": F(9, 10), "v2": F(1, 10)}
    (row,) = rows
    assert (row.service, row.clients, row.kind, row.reason) == ("shop/cart:80", clients, kind,
                                                                 "not-exported-to-namespace")
    assert row.configured == (("cart-v1", F(9, 10)), ("cart-v2", F(1, 10)))
    assert row.effective == (("503", F(9, 10)), ("cart-v2", F(1, 10)))
    # front is one of the namespaces no rule singles out: the row names them together
    assert "Service cart-v1.shop is not exported to namespaces that no rule names" in row.detail
    # the Service's own namespace sees it
    assert path_shares(mesh, "cart.shop.svc.cluster.local", 80, path_kind, client="cart-v1") == {
        "v1": F(9, 10), "v2": F(1, 10)}


def test_a_waypoint_in_another_namespace_lacks_the_cluster() -> None:
    """The waypoint of namespace ``mesh-gw`` serves shop's Services: it has no cluster for cart-v1."""
    labels = "{istio.io/dataplane-mode: ambient, istio.io/use-waypoint: waypoint, istio.io/use-waypoint-namespace: mesh-gw}"
    body = _namespaces(labels) + "---\n" + _NS.format(name="mesh-gw", labels="{}") + _APP
    body += "".join(_DEPLOY.format(name=f"cart-{v}", ns="shop", app="cart", v=v) for v in ("v1", "v2"))
    body += _DEPLOY.format(name="client", ns="front", app="client", v="v1")
    body += _WAYPOINT.replace("namespace: shop", "namespace: mesh-gw").replace(
        "protocol: HBONE}", "protocol: HBONE, allowedRoutes: {namespaces: {from: All}}}")
    mesh = Mesh(parse_manifest_text(body, "shop.yaml"))
    assert path_shares(mesh, "cart.shop.svc.cluster.local", 80, "ambient-waypoint", client="client") == {
        "503": F(9, 10), "v2": F(1, 10)}
    (row,) = audit(mesh).rows
    assert (row.kind, row.reason) == ("ambient + waypoint", "not-exported-to-namespace")
    assert row.effective == (("503", F(9, 10)), ("cart-v2", F(1, 10)))
    assert "not exported to namespace mesh-gw" in row.detail


_SIDECAR = """---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default, namespace: front}
spec:
  egress:
  - hosts: ["./*", "shop/cart.shop.svc.cluster.local"]
"""


def test_a_sidecar_that_imports_the_service_but_not_its_backends() -> None:
    """front's Sidecar imports cart but not cart-v1 and cart-v2, where cart's VirtualService sends: istiod adds the
    destinations of every VirtualService a sidecar imports to its services (``collectImportedServices`` in
    ``pilot/pkg/model/sidecar.go``), so the split holds there too, in the path model and the audit."""
    labels = "{istio-injection: enabled}"
    text = _namespaces(labels)
    text += _APP.replace(', annotations: {networking.istio.io/exportTo: "."}', "")
    text += "".join(_DEPLOY.format(name=f"cart-{v}", ns="shop", app="cart", v=v) for v in ("v1", "v2"))
    text += _DEPLOY.format(name="client", ns="front", app="client", v="v1") + _SIDECAR
    mesh = Mesh(parse_manifest_text(text, "shop.yaml"))
    for client in ("client", "cart-v1"):
        assert path_shares(mesh, "cart.shop.svc.cluster.local", 80, "sidecar", client=client) == {
            "v1": F(9, 10), "v2": F(1, 10)}
    assert audit(mesh).rows == []


_ENTRY = """apiVersion: v1
kind: Namespace
metadata: {name: ext}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: canary, namespace: ext}
spec:
  hosts: [canary.example.com]
  exportTo: ["."]
  ports: [{number: 9080, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints: [{address: 192.0.2.10}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews]
  http:
  - route:
    - {destination: {host: reviews, subset: v1}, weight: 90}
    - {destination: {host: canary.example.com}, weight: 10}
"""


@pytest.mark.parametrize("export", ['["."]', '["*"]'])
def test_a_service_entry_not_exported_to_the_clients(export) -> None:
    """A ServiceEntry's ``exportTo`` decides which proxies have its cluster, as a Service's annotation does."""
    from pathlib import Path

    from meshstat.parsers.k8s import load_manifests

    data = Path(__file__).resolve().parents[1] / "data"
    m = load_manifests([str(data / "bookinfo" / "platform" / "kube" / "bookinfo.yaml"),
                        str(data / "bookinfo" / "networking" / "destination-rule-all.yaml"),
                        str(data / "bookinfo-ambient" / "sidecar")])
    m.extend(parse_manifest_text(_ENTRY.replace('exportTo: ["."]', f"exportTo: {export}"), "entry.yaml"))
    mesh = Mesh(m)
    got = path_shares(mesh, "reviews.default.svc.cluster.local", 9080, "sidecar", client="productpage-v1")
    rows = audit(mesh).rows
    if export == '["*"]':
        assert got == {"v1": F(9, 10), "192.0.2.10:9080": F(1, 10)}  # the entry's endpoint
        assert rows == []
        return
    assert got == {"v1": F(9, 10), "503": F(1, 10)}
    (row,) = rows
    assert (row.reason, row.effective) == ("not-exported-to-namespace", (("v1", F(9, 10)), ("503", F(1, 10))))
    assert "ServiceEntry ext/canary (canary.example.com) is not exported to namespace" in row.detail
    assert row.fix == ("add the clients' namespaces to spec.exportTo of ServiceEntry ext/canary",)


_BACKEND = """---
apiVersion: v1
kind: Service
metadata: {name: backend, namespace: shop}
spec: {ports: [{name: http, port: 80, targetPort: 8080}], selector: {app: backend}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: cart, namespace: shop}
spec:
  hosts: [cart]
  http:
  - route:
    - {destination: {host: backend, subset: v1}, weight: 90}
    - {destination: {host: backend, subset: v2}, weight: 10}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: backend, namespace: shop}
spec:
  host: backend
  exportTo: [EXPORT]
  subsets: [{name: v1, labels: {version: v1}}, {name: v2, labels: {version: v2}}]
"""


@pytest.mark.parametrize("export", ['"."', '"*"'])
def test_subsets_of_another_host_are_that_hosts(export) -> None:
    """cart's VirtualService sends to subsets of ``backend``: they are looked up in backend's DestinationRule as the
    clients see it (they were looked up in cart's, so every client got a 503 row)."""
    labels = "{istio-injection: enabled}"
    text = _namespaces(labels)
    text += _APP.split("---\napiVersion: networking.istio.io/v1")[0].split("---\napiVersion: v1\nkind: Service\n"
                                                                          "metadata: {name: cart-v1")[0]
    text += _BACKEND.replace("EXPORT", export)
    text += "".join(_DEPLOY.format(name=f"backend-{v}", ns="shop", app="backend", v=v) for v in ("v1", "v2"))
    text += _DEPLOY.format(name="cart", ns="shop", app="cart", v="v0")
    text += _DEPLOY.format(name="client", ns="front", app="client", v="v1")
    mesh = Mesh(parse_manifest_text(text, "shop.yaml"))
    front = path_shares(mesh, "cart.shop.svc.cluster.local", 80, "sidecar", client="client")
    assert path_shares(mesh, "cart.shop.svc.cluster.local", 80, "sidecar", client="cart") == {"v1": F(9, 10),
                                                                                             "v2": F(1, 10)}
    rows = audit(mesh).rows
    if export == '"*"':
        assert front == {"v1": F(9, 10), "v2": F(1, 10)} and rows == []
        return
    assert front == {"503": F(1)}
    (row,) = rows
    assert (row.clients, row.reason, row.effective) == ("front (1)", "not-exported-to-namespace", (("503", F(1)),))
    assert "DestinationRule shop/backend, which is not exported to namespace" in row.detail


@pytest.mark.parametrize("listener_port", [None, 80])
def test_a_sidecar_listener_with_a_port_takes_that_port_only(listener_port) -> None:
    """cart-v1 listens on 8080 only. front's Sidecar imports cart; through a listener without port, cart's
    VirtualService brings cart-v1 and cart-v2 along (90/10 holds); through a listener on port 80, only services'
    port 80 (``serviceMatchingListenerPort``): no cluster for cart-v1:8080, its 90% answer 503 NC."""
    port = f"port: {{number: {listener_port}, protocol: HTTP, name: http}}\n    " if listener_port else ""
    sidecar = _SIDECAR.replace('  - hosts: ["./*", "shop/cart.shop.svc.cluster.local"]',
                               f'  - {port}hosts: ["./*", "shop/cart.shop.svc.cluster.local"]')
    app = _APP.replace(', annotations: {networking.istio.io/exportTo: "."}', "")
    app = app.replace("metadata: {name: cart-v1, namespace: shop}\nspec: {ports: [{name: http, port: 80,",
                      "metadata: {name: cart-v1, namespace: shop}\nspec: {ports: [{name: http, port: 8080,")
    assert "port: 8080, targetPort" in app
    text = _namespaces("{istio-injection: enabled}") + app + sidecar
    text += "".join(_DEPLOY.format(name=f"cart-{v}", ns="shop", app="cart", v=v) for v in ("v1", "v2"))
    text += _DEPLOY.format(name="client", ns="front", app="client", v="v1")
    mesh = Mesh(parse_manifest_text(text, "shop.yaml"))
    got = path_shares(mesh, "cart.shop.svc.cluster.local", 80, "sidecar", client="client")
    rows = audit(mesh).rows
    if listener_port is None:
        assert got == {"v1": F(9, 10), "v2": F(1, 10)} and rows == []
        return
    assert got == {"503": F(9, 10), "v2": F(1, 10)}
    (row,) = rows
    assert (row.clients, row.reason) == ("front (1)", "sidecar-egress-excludes")
    assert row.effective == (("503", F(9, 10)), ("cart-v2", F(1, 10)))
    assert "Sidecar front/default imports cart-v1.shop.svc.cluster.local for port 8080 in none" in row.detail
