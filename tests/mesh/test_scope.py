"""Who a rule applies to: gateways, exportTo, DestinationRule choice, Sidecar egress, outbound policy."""

from __future__ import annotations

from fractions import Fraction
from fractions import Fraction as F

import pytest

from meshstat.audit import audit
from meshstat.mesh.scope import IMPORT_ALL, client_scope, destination_rule, exported_to, imports_host
from meshstat.model import Cascade
from meshstat.parsers.istio_scope import EgressListener, read_scope_objects
from meshstat.parsers.k8s import parse_manifest_text
from tests.mesh.bookinfo_mesh import NET, bookinfo, mesh_config, paths, shares

NINETY_TEN = {"v1": Fraction(9, 10), "v2": Fraction(1, 10)}

SHOP = """
apiVersion: v1
kind: Namespace
metadata: {name: shop, labels: {istio-injection: enabled}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: shopper, namespace: shop}
spec: {template: {metadata: {labels: {app: shopper}}, spec: {containers: [{name: c}]}}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: auditor, namespace: shop}
spec: {template: {metadata: {labels: {app: auditor}}, spec: {containers: [{name: c}]}}}
"""


def shop(*rules: str, extra: str = "") -> object:
    return bookinfo(*rules, variant="sidecar", extra=SHOP + "---\n" + extra if extra else SHOP)


def sidecar_of(mesh, client: str = "shop/shopper"):
    return paths(mesh, client=client)[0]["sidecar"]


# --------------------------------------------------------------------------- VirtualService gateways and exportTo


def test_gateways_without_mesh_do_not_apply_to_sidecars() -> None:
    m = bookinfo("destination-rule-all", "bookinfo-gateway", variant="sidecar")
    # the bookinfo VirtualService is bound to bookinfo-gateway only: productpage is routed by the ingress alone
    assert [(i.short, p) for i, p in m.routed_services()] == [("productpage.default", 9080)]
    got, _ = paths(m, "default/productpage:9080")
    assert any("no VirtualService" in n for n in got["sidecar"].route.notes)
    assert any("VirtualService default/bookinfo http[0]" in x.component for x in got["ingress"].layers)
    both = """
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews]
  gateways: [mesh, bookinfo-gateway]
  http: [{route: [{destination: {host: reviews, subset: v1}, weight: 90}, {destination: {host: reviews, subset: v2}, weight: 10}]}]
"""
    assert shares(paths(bookinfo("destination-rule-all", variant="sidecar", extra=both))[0]["sidecar"].route) \
        == NINETY_TEN
    only_gw = both.replace("[mesh, bookinfo-gateway]", "[bookinfo-gateway]")
    got = paths(bookinfo("destination-rule-all", variant="sidecar", extra=only_gw))[0]["sidecar"]
    assert len(shares(got.route)) == 3  # default route: all three versions


@pytest.mark.parametrize(("export", "seen"), [
    ('["."]', False), ('["*"]', True), ('["shop"]', True), ('["other"]', False), ('["~"]', False), ("[]", True),
])
def test_virtual_service_export_to(export: str, seen: bool) -> None:
    vs = (NET / "virtual-service-reviews-90-10.yaml").read_text().replace("spec:\n", f"spec:\n  exportTo: {export}\n", 1)
    m = shop("destination-rule-all", extra=vs)
    got = shares(sidecar_of(m).route)
    assert (got == NINETY_TEN) is seen
    own = shares(sidecar_of(m, "default/productpage-v1").route)
    assert (own == NINETY_TEN) is (export in ('["."]', '["*"]', "[]"))  # its own namespace only by ".", "*" or none


def test_exported_to_rules() -> None:
    assert exported_to((), ("*",), "a", "b") and not exported_to((), (".",), "a", "b")
    assert exported_to((".",), ("*",), "a", "a") and not exported_to(("~",), ("*",), "a", "a")
    assert exported_to(("b", "c"), ("*",), "a", "c")


def test_private_virtual_service_comes_first() -> None:
    mine = """
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: mine, namespace: shop}
spec:
  exportTo: ["."]
  hosts: [reviews.default.svc.cluster.local]
  http: [{route: [{destination: {host: reviews.default.svc.cluster.local, subset: v3}}]}]
"""
    m = shop("destination-rule-all", "virtual-service-reviews-90-10", extra=mine)
    assert shares(sidecar_of(m).route) == {"v3": Fraction(1)}
    assert shares(sidecar_of(m, "default/productpage-v1").route) == NINETY_TEN


def test_mesh_default_export_to() -> None:
    cm = mesh_config('defaultVirtualServiceExportTo: ["."]')
    m = shop("destination-rule-all", "virtual-service-reviews-90-10", extra=cm)
    assert len(shares(sidecar_of(m).route)) == 3
    assert m.scope.mesh_config.vs_export_to == (".",) and not any("ConfigMap" in d.message for d in m.diagnostics)


# --------------------------------------------------------------------------- DestinationRules


DR_SHOP = """
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews-shop, namespace: shop}
spec:
  host: reviews.default.svc.cluster.local
  subsets: [{name: v3, labels: {version: v3}}]
"""


def test_client_namespace_rule_shadows_the_service_namespace_rule() -> None:
    m = shop("destination-rule-all", "virtual-service-reviews-90-10", extra=DR_SHOP)
    got = shares(sidecar_of(m).route)
    assert set(got) == {"503 NC no cluster (outbound|9080|v1|reviews.default.svc.cluster.local)",
                        "503 NC no cluster (outbound|9080|v2|reviews.default.svc.cluster.local)"}
    assert shares(sidecar_of(m, "default/productpage-v1").route) == NINETY_TEN


def test_destination_rule_export_to_and_namespaces() -> None:
    dr = ((NET / "destination-rule-all.yaml").read_text()
          .replace("spec:\n  host: reviews\n", "spec:\n  host: reviews\n  exportTo: [\".\"]\n"))
    m = shop("virtual-service-reviews-90-10", extra=dr)
    info = m.find_service("default/reviews")[0]
    assert destination_rule(m, info, "shop") is None and destination_rule(m, info, "default") is not None
    got, diags = paths(m, client="shop/shopper")
    assert set(shares(got["sidecar"].route)) == {"503 NC no cluster (outbound|9080|v1|reviews.default.svc.cluster.local)",
                                                  "503 NC no cluster (outbound|9080|v2|reviews.default.svc.cluster.local)"}
    assert any("is defined by DestinationRule default/reviews, which is not exported to namespace shop" in d.message
               for d in diags)
    # the audit names the cause too (it said "not defined by any DestinationRule")
    rows = [r for r in audit(m).rows if r.clients.startswith("shop")]
    assert [(r.reason, r.effective) for r in rows] == [("not-exported-to-namespace", (("503", F(1)),))]
    assert "DestinationRule default/reviews, which is not exported to namespaces that no rule names" in rows[0].detail
    assert rows[0].fix == ("add the clients' namespaces to spec.exportTo of DestinationRule default/reviews",)
    third = DR_SHOP.replace("namespace: shop", "namespace: elsewhere")
    m = shop("virtual-service-reviews-90-10", extra=third)
    assert destination_rule(m, m.find_service("default/reviews")[0], "shop") is None  # never from a third namespace
    root = DR_SHOP.replace("namespace: shop", "namespace: istio-system")
    m = shop("virtual-service-reviews-90-10", extra=root)
    assert destination_rule(m, m.find_service("default/reviews")[0], "shop").meta.namespace == "istio-system"


def test_destination_rules_for_one_host_merge() -> None:
    more = """
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews-extra, namespace: default}
spec:
  host: reviews
  subsets: [{name: v3-too, labels: {version: v3}}, {name: v1, labels: {version: v3}}]
"""
    m = bookinfo("destination-rule-all", variant="sidecar", extra=more)
    dr = destination_rule(m, m.find_service("default/reviews")[0], "default")
    assert [s.name for s in dr.subsets] == ["v1", "v2", "v3", "v3-too"] and dr.subset("v1").labels == (("version", "v1"),)


def test_subset_without_pods_and_undefined_subset() -> None:
    vs = """
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews]
  http: [{route: [{destination: {host: reviews, subset: v1}, weight: 50},
                  {destination: {host: reviews, subset: v4}, weight: 25},
                  {destination: {host: reviews, subset: nope}, weight: 25}]}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: default}
spec:
  host: reviews
  subsets: [{name: v1, labels: {version: v1}}, {name: v4, labels: {version: v4}}]
"""
    got, diags = paths(bookinfo(variant="sidecar", extra=vs))
    assert shares(got["sidecar"].route) == {
        "v1": Fraction(1, 2), "503 no_healthy_upstream (outbound|9080|v4|reviews.default.svc.cluster.local)":
        Fraction(1, 4), "503 NC no cluster (outbound|9080|nope|reviews.default.svc.cluster.local)": Fraction(1, 4)}
    assert any("selects no pods" in d.message for d in diags)
    assert any("(25%) of requests" in d.message for d in diags)


# --------------------------------------------------------------------------- Sidecar resources and the outbound policy


def _sidecar(hosts: str, selector: str = "", mode: str = "") -> str:
    sel = f"\n  workloadSelector: {{labels: {selector}}}" if selector else ""
    otp = f"\n  outboundTrafficPolicy: {{mode: {mode}}}" if mode else ""
    return f"""
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {{name: egress, namespace: shop}}
spec:{sel}{otp}
  egress: [{{hosts: {hosts}}}]
"""


@pytest.mark.parametrize(("hosts", "imported"), [
    ('["./*"]', False), ('["default/*"]', True), ('["*/*"]', True), ('["~/*"]', False),
    ('["default/reviews.default.svc.cluster.local"]', True), ('["default/reviews"]', False),
    ('["*/*", "~default/reviews.default.svc.cluster.local"]', False), ('["*/*.svc.cluster.local"]', True),
])
def test_sidecar_egress_hosts(hosts: str, imported: bool) -> None:
    m = shop("destination-rule-all", "virtual-service-reviews-90-10", extra=_sidecar(hosts))
    sc = sidecar_of(m)
    if imported:
        assert shares(sc.route) == NINETY_TEN
    else:  # ALLOW_ANY: PassthroughCluster, then kube-proxy's split by pod count
        assert isinstance(sc.route.root, Cascade) and len(sc.route.backends()) == 3
        assert any("PassthroughCluster" in n for n in sc.route.notes)
    assert shares(sidecar_of(m, "default/productpage-v1").route) == NINETY_TEN  # other namespace: no Sidecar


@pytest.mark.parametrize("vs", [False, True])
@pytest.mark.parametrize("host", ["a.shop.svc.cluster.local", "*", "*.default.svc.cluster.local",
                                  "example.com", "*.com"])
def test_the_default_egress_imports_as_any_listener_of_every_host(host, vs) -> None:
    """A client without Sidecar egress imports through :data:`IMPORT_ALL`, answered at once: as a ``*/*``
    listener of its own is, host by host."""
    own = EgressListener(None, ("*/*",), 0)
    assert own is not IMPORT_ALL
    assert imports_host(IMPORT_ALL, "shop", host, "other", virtual_service=vs) is True
    assert imports_host(own, "shop", host, "other", virtual_service=vs) is True


def test_imports_host_namespace_rules() -> None:
    li = EgressListener(None, ("./*", "istio-system/*"), 1)
    assert imports_host(li, "shop", "a.shop.svc.cluster.local", "shop")
    assert not imports_host(li, "shop", "a.default.svc.cluster.local", "default")
    assert imports_host(li, "shop", "*.default.svc.cluster.local", "istio-system", virtual_service=True)


def test_registry_only_blackholes_unknown_hosts() -> None:
    cm = """
apiVersion: v1
kind: ConfigMap
metadata: {name: istio, namespace: istio-system}
data: {mesh: "outboundTrafficPolicy: {mode: REGISTRY_ONLY}"}
"""
    m = shop("destination-rule-all", "virtual-service-reviews-90-10", extra=_sidecar('["./*"]') + "---\n" + cm)
    got, diags = paths(m, client="shop/shopper")
    assert [b.name for b in got["sidecar"].route.backends()] == ["BlackHoleCluster (REGISTRY_ONLY): connection closed"]
    m = shop("destination-rule-all", "virtual-service-reviews-90-10",
             extra=_sidecar('["./*", "default/ratings.default.svc.cluster.local"]', mode="REGISTRY_ONLY"))
    got, diags = paths(m, client="shop/shopper")
    assert [b.name for b in got["sidecar"].route.backends()] == ["502 block_all (REGISTRY_ONLY)"]
    assert any("(100%) of requests" in d.message and "502" in d.message for d in diags)


def test_workload_selector_splits_sidecar_clients() -> None:
    m = shop("destination-rule-all", "virtual-service-reviews-90-10",
             extra=_sidecar('["./*"]', selector="{app: auditor}"))
    assert client_scope(m, m.manifests.workload("shop/auditor"), "shop").sidecar is not None
    assert client_scope(m, m.manifests.workload("shop/shopper"), "shop").sidecar is None
    got, _ = paths(m)
    sidecars = [p for p in got.values() if p.kind == "sidecar"]
    sidecars = list({id(p): p for p in sidecars}.values())
    assert len(sidecars) == 2
    by_client = {c: p for p in sidecars for c in p.clients}
    assert shares(by_client["shop/shopper"].route) == NINETY_TEN
    assert isinstance(by_client["shop/auditor"].route.root, Cascade)
    assert by_client["shop/auditor"].label == "sidecar (Envoy) [shop, Sidecar shop/egress]"


def test_service_export_annotation() -> None:
    svc = """
apiVersion: v1
kind: Service
metadata: {name: private, namespace: default, annotations: {networking.istio.io/exportTo: "."}}
spec: {selector: {app: reviews}, ports: [{port: 9080, name: http}]}
"""
    m = shop(extra=svc)
    assert any("not exported" in n for n in paths(m, "default/private:9080", client="shop/shopper")[0]["sidecar"]
               .route.notes)
    assert len(paths(m, "default/private:9080", client="default/productpage-v1")[0]["sidecar"].route.backends()) == 3


def test_scope_objects_are_read_and_not_warned() -> None:
    text = _sidecar('["./*"]', mode="REGISTRY_ONLY") + """---
apiVersion: install.istio.io/v1alpha1
kind: IstioOperator
metadata: {name: io, namespace: istio-system}
spec: {meshConfig: {outboundTrafficPolicy: {mode: REGISTRY_ONLY}, rootNamespace: root}}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: a, namespace: shop}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: b, namespace: shop}
"""
    m = parse_manifest_text(text, "s.yaml")
    objs = read_scope_objects(m)
    assert objs.sidecars[0].outbound_policy == "REGISTRY_ONLY" and objs.sidecars[0].egress[0].hosts == ("./*",)
    assert objs.mesh_config.root_namespace == "root" and objs.mesh_config.outbound_policy == "REGISTRY_ONLY"
    mesh = bookinfo(extra=text)
    warn = [d.message for d in mesh.diagnostics if d.level == "warning"]
    assert warn == ["4 ServiceAccount objects (core) not modelled (first: default/bookinfo-details): identity only; "
                    "no effect on the split",
                    "2 AuthorizationPolicy objects (security.istio.io) not modelled (first: shop/a): can deny "
                    "requests (403) or connections"]
    assert not [d for d in mesh.diagnostics if d.message.startswith("ignored ")]
