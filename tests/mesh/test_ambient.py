"""Istio ambient on Bookinfo: capture, ztunnel's per-connection split, waypoints, each client kind."""

from __future__ import annotations

import csv
import io
from fractions import Fraction
from pathlib import Path

import pytest

from meshstat.cli import main
from meshstat.mesh.ambient import ambient_decision, client_kind, service_waypoint
from meshstat.mesh.requests import paths_per_route
from meshstat.model import Cascade, Weighted
from tests.mesh.bookinfo_mesh import AMBIENT, APP, NET, bookinfo, paths, shares

THIRD = Fraction(1, 3)
NINETY_TEN = {"v1": Fraction(9, 10), "v2": Fraction(1, 10)}


# --------------------------------------------------------------------------- the splits Istio applies, per client kind


def test_no_mesh_is_kube_proxy_by_pod_count() -> None:
    got, _ = paths(bookinfo("destination-rule-all", "virtual-service-reviews-90-10"))
    kp = got["kube-proxy"]
    assert isinstance(kp.route.root, Cascade) and kp.route.root.unit == "connection"
    assert all(abs(s - THIRD) < Fraction(1, 10**8) for s in shares(kp.route).values())
    assert set(kp.clients) == {"default/productpage-v1", "default/details-v1", "default/ratings-v1"}
    assert "ambient" not in got and "ambient-waypoint" not in got  # nothing ambient in the input: no ambient column


def test_sidecar_applies_the_virtual_service_per_request() -> None:
    got, diags = paths(bookinfo("destination-rule-all", "virtual-service-reviews-90-10", variant="sidecar"))
    assert shares(got["sidecar"].route) == NINETY_TEN and got["sidecar"].route.root.unit == "request"
    assert got["kube-proxy"].clients == [] and len(got["sidecar"].clients) == 3
    assert "ambient" not in got
    assert not [d for d in diags if d.level == "warning"]


def test_ambient_without_waypoint_is_ztunnel_over_all_pods_per_connection() -> None:
    mesh = bookinfo("destination-rule-all", "virtual-service-reviews-90-10", variant="ambient")
    got, _ = paths(mesh)
    amb = got["ambient"]
    assert amb.label == "ambient (ztunnel)"
    assert isinstance(amb.route.root, Weighted) and amb.route.root.unit == "connection"
    assert shares(amb.route) == {"v1": THIRD, "v2": THIRD, "v3": THIRD}  # the VirtualService is not applied
    assert set(amb.clients) == {"default/productpage-v1", "default/details-v1", "default/ratings-v1"}
    assert got["kube-proxy"].clients == [] and got["sidecar"].clients == []
    assert [x.layer for x in amb.layers] == ["client", "capture (pod netns)", "ztunnel (client node)", "network"]
    assert "load_balance" in amb.route.notes[0] and "assumes:" in amb.layers[2].decision
    assert amb.layers[-1].component == "HBONE :15008"
    assert "ambient-waypoint" not in got


def test_ambient_with_waypoint_applies_the_virtual_service_per_request() -> None:
    mesh = bookinfo("destination-rule-all", "virtual-service-reviews-90-10", variant="waypoint")
    got, _ = paths(mesh)
    wp = got["ambient-waypoint"]
    assert wp.label == "ambient + waypoint" and "ambient" not in got
    assert shares(wp.route) == NINETY_TEN and wp.route.root.unit == "request"
    layers = [x.layer for x in wp.layers]
    assert layers[:4] == ["client", "capture (pod netns)", "ztunnel (client node)", "waypoint Envoy"]
    assert "waypoint Envoy route" in layers and layers[-1] == "network"
    comps = [x.component for x in wp.layers]
    assert "inbound-vip|9080|http/v1|reviews.default.svc.cluster.local" in comps
    assert any("Alpha" in n for n in wp.route.notes)
    assert "assumes: the waypoint is programmed" in wp.layers[2].decision
    # a sidecar client skips the waypoint and says so
    assert any("skips it" in n for n in got["sidecar"].route.notes)


@pytest.mark.parametrize(("variant", "kind", "jason", "others"), [
    ("sidecar", "sidecar", {"v2": Fraction(1)}, {"v3": Fraction(1)}),
    ("waypoint", "ambient-waypoint", {"v2": Fraction(1)}, {"v3": Fraction(1)}),
    ("ambient", "ambient", {"v1": THIRD, "v2": THIRD, "v3": THIRD}, {"v1": THIRD, "v2": THIRD, "v3": THIRD}),
])
def test_header_routes_per_kind(variant: str, kind: str, jason: dict, others: dict) -> None:
    mesh = bookinfo("destination-rule-all", "virtual-service-reviews-jason-v2-v3", variant=variant)
    assert shares(paths(mesh, headers={"end-user": "jason"})[0][kind].route) == jason
    assert shares(paths(mesh, headers={"end-user": "alice"})[0][kind].route) == others


def test_every_route_of_a_rule_set() -> None:
    mesh = bookinfo("destination-rule-all", "virtual-service-reviews-jason-v2-v3", variant="waypoint")
    info, port = mesh.find_service("default/reviews:9080")
    groups = paths_per_route(mesh, info, port)
    assert [g[0] for g in groups] == ["GET / (no headers)", "end-user exact jason"]
    assert [shares({p.kind: p for p in g[2]}["ambient-waypoint"].route) for g in groups] == [
        {"v3": Fraction(1)}, {"v2": Fraction(1)}]
    one = paths_per_route(bookinfo("destination-rule-all", "virtual-service-reviews-90-10"), info, port)
    assert len(one) == 1 and one[0][0] == ""


# --------------------------------------------------------------------------- capture


AMB_NS = """
apiVersion: v1
kind: Namespace
metadata: {name: shop, labels: {istio.io/dataplane-mode: ambient}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: inmesh, namespace: shop}
spec: {template: {metadata: {labels: {app: a}}, spec: {containers: [{name: c}]}}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: optout, namespace: shop}
spec: {template: {metadata: {labels: {app: b, istio.io/dataplane-mode: none}}, spec: {containers: [{name: c}]}}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: hostnet, namespace: shop}
spec: {template: {metadata: {labels: {app: c}}, spec: {hostNetwork: true, containers: [{name: c}]}}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: injected, namespace: shop}
spec: {template: {metadata: {labels: {app: d, sidecar.istio.io/inject: "true"}}, spec: {containers: [{name: c}]}}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: podlabel, namespace: other}
spec: {template: {metadata: {labels: {app: e, istio.io/dataplane-mode: ambient}}, spec: {containers: [{name: c}]}}}
"""


def test_ambient_capture_decisions() -> None:
    mesh = bookinfo(extra=AMB_NS)
    dec = {w.meta.name: ambient_decision(mesh, w) for w in mesh.manifests.workloads if w.meta.namespace != "default"}
    assert dec["inmesh"].captured and "namespace shop" in dec["inmesh"].reason
    assert not dec["optout"].captured and "opts out" in dec["optout"].reason
    assert not dec["hostnet"].captured and "hostNetwork" in dec["hostnet"].reason
    assert not dec["injected"].captured and "sidecar" in dec["injected"].reason  # the sidecar wins
    assert dec["podlabel"].captured and "pod label" in dec["podlabel"].reason
    kinds = {w.meta.name: client_kind(mesh, w) for w in mesh.manifests.workloads}
    assert (kinds["inmesh"], kinds["optout"], kinds["injected"], kinds["productpage-v1"]) == (
        "ambient", "kube-proxy", "sidecar", "kube-proxy")


def test_each_client_kind_gets_its_own_path() -> None:
    mesh = bookinfo("destination-rule-all", "virtual-service-reviews-90-10", extra=AMB_NS)
    got, _ = paths(mesh)
    assert set(got["ambient"].clients) == {"shop/inmesh", "other/podlabel"}
    assert "shop/optout" in got["kube-proxy"].clients and "shop/hostnet" in got["kube-proxy"].clients
    assert got["sidecar"].clients == ["shop/injected"]
    assert got["ambient"].layers[-1].component == "pod IP"  # reviews' pods are not in ambient: no HBONE
    assert shares(got["sidecar"].route) == NINETY_TEN


# --------------------------------------------------------------------------- waypoints


def _waypoint_mesh(svc_labels: str = "", ns_labels: str = "istio.io/dataplane-mode: ambient", gw: str = "") -> str:
    return f"""
apiVersion: v1
kind: Namespace
metadata: {{name: default, labels: {{{ns_labels}}}}}
---
{gw or '''apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: wp, namespace: default}
spec: {gatewayClassName: istio-waypoint, listeners: [{name: mesh, port: 15008, protocol: HBONE}]}'''}
---
apiVersion: v1
kind: Service
metadata: {{name: rv, namespace: default, labels: {{{svc_labels}}}}}
spec: {{selector: {{app: reviews}}, ports: [{{port: 9080, name: http}}]}}
"""


def test_use_waypoint_on_service_namespace_and_opt_out() -> None:
    m = bookinfo(extra=_waypoint_mesh(svc_labels="istio.io/use-waypoint: wp"))
    info, _ = m.find_service("default/rv")
    b = service_waypoint(m, info)
    assert b.gateway is not None and b.gateway.meta.name == "wp" and "Service rv.default" in b.origin
    reviews, _ = m.find_service("default/reviews")
    assert service_waypoint(m, reviews).gateway is None  # only the labelled Service
    m = bookinfo(extra=_waypoint_mesh(ns_labels="istio.io/dataplane-mode: ambient, istio.io/use-waypoint: wp",
                                      svc_labels="istio.io/use-waypoint: none"))
    assert service_waypoint(m, m.find_service("default/rv")[0]).gateway is None
    assert service_waypoint(m, m.find_service("default/reviews")[0]).gateway is not None


def test_waypoint_problems_fall_back_to_ztunnel_with_a_warning() -> None:
    m = bookinfo(extra=_waypoint_mesh(svc_labels="istio.io/use-waypoint: missing"))
    got, diags = paths(m, "default/rv:9080")
    assert "ambient" in got and "ambient-waypoint" not in got
    assert any("not in the manifests" in d.message for d in diags)
    wl = """apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: wp, namespace: default, labels: {istio.io/waypoint-for: workload}}
spec: {gatewayClassName: istio-waypoint, listeners: [{name: mesh, port: 15008, protocol: HBONE}]}"""
    m = bookinfo(extra=_waypoint_mesh(svc_labels="istio.io/use-waypoint: wp", gw=wl))
    b = service_waypoint(m, m.find_service("default/rv")[0])
    assert b.gateway is None and "waypoint-for=workload" in (b.problem or "")


def test_cross_namespace_waypoint_needs_allowed_routes() -> None:
    gw = """apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: shared, namespace: infra}
spec:
  gatewayClassName: istio-waypoint
  listeners: [{name: mesh, port: 15008, protocol: HBONE%s}]"""
    labels = "istio.io/use-waypoint: shared, istio.io/use-waypoint-namespace: infra"
    m = bookinfo(extra=_waypoint_mesh(svc_labels=labels, gw=gw % ""))
    b = service_waypoint(m, m.find_service("default/rv")[0])
    assert b.gateway is None and "from=Same" in (b.problem or "")
    m = bookinfo(extra=_waypoint_mesh(svc_labels=labels, gw=gw % ", allowedRoutes: {namespaces: {from: All}}"))
    assert service_waypoint(m, m.find_service("default/rv")[0]).gateway.meta.ref == "infra/shared"


def test_pod_use_waypoint_does_not_touch_service_traffic() -> None:
    extra = _waypoint_mesh() + """---
apiVersion: apps/v1
kind: Deployment
metadata: {name: rv-pod-wp, namespace: default}
spec: {template: {metadata: {labels: {app: reviews, version: v9, istio.io/use-waypoint: wp}},
       spec: {containers: [{name: c}]}}}
"""
    got, _ = paths(bookinfo(extra=extra), "default/rv:9080")
    assert "ambient" in got and "ambient-waypoint" not in got
    assert len(got["ambient"].route.backends()) == 4


WAYPOINT_RULES = """
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: consumer-override, namespace: shop}
spec:
  exportTo: ["."]
  hosts: [reviews.default.svc.cluster.local]
  http: [{route: [{destination: {host: reviews.default.svc.cluster.local, subset: v3}}]}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews-shop, namespace: shop}
spec:
  host: reviews.default.svc.cluster.local
  subsets: [{name: v3, labels: {version: v3}}]
---
apiVersion: v1
kind: Namespace
metadata: {name: shop, labels: {istio-injection: enabled}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: shopper, namespace: shop}
spec: {template: {metadata: {labels: {app: shopper}}, spec: {containers: [{name: c}]}}}
"""


def test_waypoint_reads_only_the_service_and_waypoint_namespaces() -> None:
    mesh = bookinfo("destination-rule-all", "virtual-service-reviews-90-10", variant="waypoint", extra=WAYPOINT_RULES)
    got, _ = paths(mesh)
    assert shares(got["ambient-waypoint"].route) == NINETY_TEN  # shop's VirtualService is not read by the waypoint
    sc = paths(mesh, client="shop/shopper")[0]["sidecar"]
    assert shares(sc.route) == {"v3": Fraction(1)}  # but the shop sidecar's own (private first) applies


def test_source_labels_are_dropped_at_the_waypoint() -> None:
    vs = """
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews]
  http:
  - match: [{sourceLabels: {app: productpage}}]
    route: [{destination: {host: reviews, subset: v2}}]
  - route: [{destination: {host: reviews, subset: v1}}]
"""
    sidecar = bookinfo("destination-rule-all", variant="sidecar", extra=vs)
    assert shares(paths(sidecar, client="default/productpage-v1")[0]["sidecar"].route) == {"v2": Fraction(1)}
    wp = bookinfo("destination-rule-all", variant="waypoint", extra=vs)
    got = paths(wp, client="default/productpage-v1")[0]["ambient-waypoint"]
    assert shares(got.route) == {"v1": Fraction(1)}
    assert any("sourceLabels" in n for n in got.route.notes)


def test_waypoint_without_rules_balances_per_request_over_all_pods() -> None:
    got, _ = paths(bookinfo(variant="waypoint"))
    wp = got["ambient-waypoint"]
    assert shares(wp.route) == {"v1": THIRD, "v2": THIRD, "v3": THIRD} and wp.route.root.unit == "request"
    assert any("default route" in x.decision for x in wp.layers)


def test_headless_service_has_no_split_on_any_path() -> None:
    svc = """
apiVersion: v1
kind: Service
metadata: {name: reviews-hl, namespace: default}
spec: {clusterIP: None, selector: {app: reviews}, ports: [{port: 9080, name: http}]}
"""
    got, diags = paths(bookinfo(variant="ambient", extra=svc), "default/reviews-hl:9080")
    for kind in ("kube-proxy", "sidecar", "ambient"):
        assert "headless" in got[kind].route.notes[0]
        assert got[kind].route.root.unit == "connection"
    assert any("headless" in d.message for d in diags)


# --------------------------------------------------------------------------- commands


def run(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    rc = main(argv, stdout=out, stderr=err)
    return rc, out.getvalue(), err.getvalue()


def test_mesh_command_for_an_ambient_client() -> None:
    rc, out, err = run(["mesh", "-f", APP, "-f", str(NET / "destination-rule-all.yaml"), "-f",
                        str(NET / "virtual-service-reviews-90-10.yaml"), "-f", str(AMBIENT / "waypoint"),
                        "--client", "default/productpage-v1", "--service", "default/reviews", "-n", "2000",
                        "--seed", "1"])
    assert rc == 0, err
    assert "ambient + waypoint" in out and "no sidecar (kube-proxy)" not in out and "sidecar (Envoy)" not in out
    assert "ambient: namespace default has istio.io/dataplane-mode=ambient" in out
    assert "inbound-vip|9080|http/v1|reviews.default.svc.cluster.local" in out


def test_compare_shows_every_route_and_names_unmodelled_kinds_once() -> None:
    rc, out, err = run(["compare", "-f", APP, "-f", str(NET / "destination-rule-all.yaml"), "-f",
                        str(NET / "virtual-service-reviews-jason-v2-v3.yaml"), "-f", str(AMBIENT / "ambient"),
                        "-n", "2000", "--seed", "1"])
    assert rc == 0, err
    assert "reviews.default:9080 · end-user exact jason" in out and "reviews.default:9080 · GET / (no headers)" in out
    assert out.count("ServiceAccount") == 1 and "4 ServiceAccount objects (core) not modelled" in out
    rc, out, err = run(["compare", "-f", APP, "-f", str(AMBIENT / "ambient"), "--service", "default/ratings:9080",
                        "--header", "end-user=jason", "-n", "2000", "--seed", "1"])
    assert rc == 0, err
    assert "ratings.default:9080" in out and "ambient (ztunnel)" in out and " · " not in out


def test_compare_without_a_routed_service_asks_for_service_and_method_flag(tmp_path: Path) -> None:
    rc, _, err = run(["compare", "-f", APP, "-n", "100"])
    assert rc == 2 and "--service NS/NAME[:PORT]" in err
    vs = AMBIENT.parent / "bookinfo" / "networking" / "virtual-service-reviews-jason-v2-v3.yaml"
    post = vs.read_text().replace("- headers:\n        end-user:\n          exact: jason", "- method:\n        exact: POST")
    (tmp_path / "vs.yaml").write_text(post)
    f = str(tmp_path / "vs.yaml")
    base = ["-f", APP, "-f", str(NET / "destination-rule-all.yaml"), "-f", f, "-f", str(AMBIENT / "sidecar"),
            "-n", "1000", "--seed", "1", "--format", "csv"]
    rc, out, err = run(["compare", *base, "--method", "POST"])
    assert rc == 0, err
    rows = [r for r in csv.DictReader(io.StringIO(out)) if r["path"] == "sidecar (Envoy)" and r["level"] == "version"]
    assert {r["version"]: r["exact_fraction"] for r in rows} == {"v2": "1"}
    rc, out, err = run(["mesh", *base])
    assert rc == 0, err
    assert "reviews.default:9080 · method POST" in out and "reviews.default:9080 · GET / (no headers)" in out
