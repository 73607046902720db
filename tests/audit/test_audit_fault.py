"""``fault.abort`` of a VirtualService rule: Envoy's fault filter answers that share of the requests itself,
before the route splits the rest (``meshstat.mesh.layers.with_fault_abort``; the real Envoy agrees:
``tests/conformance/test_envoy.py``). The path model and the audit (``fault-injected``) say so on every proxy that
applies the rule: sidecars, waypoints, ingress gateways. An abort without ``percentage`` aborts nothing, which is
Istio's behaviour (istio/api#2522), whatever older documents said.
"""

from __future__ import annotations

from fractions import Fraction as F
from pathlib import Path

import pytest

from meshstat.audit import audit
from meshstat.errors import ConfigParseError
from meshstat.mesh import Mesh
from meshstat.parsers.k8s import load_manifests, parse_manifest_text
from tests.audit.shares import path_shares

DATA = Path(__file__).resolve().parents[1] / "data"
B = DATA / "bookinfo"
_VS = """apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: reviews}}
spec:
  hosts: [reviews]
  http:
  - fault: {fault}
    route:
    - {{destination: {{host: reviews, subset: v1}}, weight: 90}}
    - {{destination: {{host: reviews, subset: {second}}}, weight: 10}}
"""
TENTH = "{abort: {httpStatus: 503, percentage: {value: 10}}}"
CONFIGURED = (("v1", F(9, 10)), ("v2", F(1, 10)))


def _mesh(plane: str, fault: str, second: str = "v2") -> Mesh:
    m = load_manifests([str(B / "platform" / "kube" / "bookinfo.yaml"), str(B / "networking" / "destination-rule-all.yaml"),
                        str(DATA / "bookinfo-ambient" / plane)])
    m.extend(parse_manifest_text(_VS.format(fault=fault, second=second), "vs.yaml"))
    return Mesh(m)


@pytest.mark.parametrize(("plane", "kind", "path_kind"), [("sidecar", "sidecar", "sidecar"),
                                                          ("waypoint", "ambient + waypoint", "ambient-waypoint")])
def test_a_tenth_aborted_before_the_split(plane, kind, path_kind) -> None:
    mesh = _mesh(plane, TENTH)
    model = path_shares(mesh, "reviews.default.svc.cluster.local", 9080, path_kind, client="productpage-v1")
    assert model == {"503": F(1, 10), "v1": F(81, 100), "v2": F(9, 100)}
    (row,) = audit(mesh).rows
    assert (row.service, row.kind, row.reason) == ("default/reviews:9080", kind, "fault-injected")
    assert row.configured == CONFIGURED
    assert row.effective == (("fault abort 503", F(1, 10)), ("v1", F(81, 100)), ("v2", F(9, 100)))
    assert "fault.abort answers 10% of the requests 503 before routing" in row.detail


def test_with_an_undefined_subset_both_show() -> None:
    (row,) = audit(_mesh("sidecar", TENTH, second="v9")).rows
    assert row.reason == "subset-undefined"
    assert dict(row.effective) == {"fault abort 503": F(1, 10), "v1": F(81, 100), "503": F(9, 100)}
    assert "fault.abort" in row.detail


@pytest.mark.parametrize(("fault", "want"), [
    ("{abort: {httpStatus: 503}}", None),  # no percentage: nothing aborted (Istio sends Envoy 0)
    ("{abort: {httpStatus: 418, percentage: {value: 100}}}", {"418": F(1)}),
    ("{abort: {grpcStatus: UNAVAILABLE, percentage: {value: 0.05}}}", {"grpc UNAVAILABLE": F(1, 2000)}),
    ("{abort: {httpStatus: 503, percentage: {value: 0.00001}}}", None),  # 0.1 per million: truncated to 0
    ("{delay: {fixedDelay: 5s, percentage: {value: 100}}}", None),  # a delay moves no request
    ("{abort: {percentage: {value: 10}}}", None),  # no httpStatus or grpcStatus: TranslateFault builds no abort
])
def test_what_a_rule_aborts(fault, want) -> None:
    mesh = _mesh("sidecar", fault)
    info = mesh.registry["reviews.default.svc.cluster.local"]
    who = next(w for w in mesh.manifests.workloads if w.meta.name == "productpage-v1")
    path = next(p for p in mesh.client_paths(info, 9080, client=who) if p.kind == "sidecar")
    aborted = {b.name.removeprefix("fault abort "): s for b, s in zip(path.route.backends(), path.route.exact_shares(),
                                                                       strict=True) if b.name.startswith("fault")}
    assert aborted == (want or {})
    rows = audit(mesh).rows
    assert [r.reason for r in rows] == ([] if want is None else ["fault-injected"])
    rule = mesh.manifests.virtual_services[-1].http[0]
    assert ("fault.delay" in rule.extras) == ("delay" in fault)


@pytest.mark.parametrize(("fault", "message"), [
    ("{abort: {httpStatus: 503, percentage: {value: 120}}}", "to be a number in [0, 100]"),
    ("{abort: {httpStatus: 600, percentage: {value: 10}}}", "'httpStatus' of fault abort to be in [200, 599]"),
    ("{abort: {http2Error: REFUSED_STREAM, percentage: {value: 10}}}", "Istio's validation refuses 'http2Error'"),
])
def test_bad_aborts_are_refused_with_their_line(fault, message) -> None:
    with pytest.raises(ConfigParseError, match=message.replace("[", r"\[").replace("]", r"\]")) as ei:
        parse_manifest_text(_VS.format(fault=fault, second="v2"), "vs.yaml")
    assert ei.value.line == 7
    assert ei.value.source == "vs.yaml"


def test_at_the_ingress_gateway() -> None:
    m = load_manifests([str(B / "platform" / "kube" / "bookinfo.yaml"), str(B / "networking" / "bookinfo-gateway.yaml")])
    vs = next(v for v in m.virtual_services if v.meta.name == "bookinfo")
    text = (B / "networking" / "bookinfo-gateway.yaml").read_text()
    assert "  - match:\n" in text
    m = load_manifests([str(B / "platform" / "kube" / "bookinfo.yaml")])
    m.extend(parse_manifest_text(text.replace("  - match:\n", "  - fault: {abort: {httpStatus: 500, percentage: "
                                              "{value: 25}}}\n    match:\n", 1), "gw.yaml"))
    mesh = Mesh(m)
    # the test helper counts every answer that is not a pod as "503"
    assert path_shares(mesh, "productpage.default.svc.cluster.local", 9080, "ingress") == {"503": F(1, 4),
                                                                                           "v1": F(3, 4)}
    (row,) = audit(mesh).rows
    assert (row.kind, row.reason) == ("ingress", "fault-injected") and vs.http[0].abort is None
    assert row.effective == (("fault abort 500", F(1, 4)), ("productpage", F(3, 4)))
