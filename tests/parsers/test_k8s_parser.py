"""Kubernetes / Istio YAML parsing: every istio fixture, List, multi-doc, line numbers, safety."""

from __future__ import annotations

from pathlib import Path

import pytest

from meshstat.errors import ConfigParseError
from meshstat.parsers.k8s import MAX_EXPANDED_NODES, load_manifests, parse_manifest_text

DATA = Path(__file__).resolve().parents[1] / "data"
ISTIO = DATA / "istio"


def test_bookinfo_virtual_services_90_10_and_80_20() -> None:
    for name, weights in (("bookinfo-virtual-service-reviews-90-10.yaml", (90, 10)),
                          ("bookinfo-virtual-service-reviews-80-20.yaml", (80, 20))):
        m = load_manifests(str(ISTIO / name))
        (vs,) = m.virtual_services
        assert vs.hosts == ("reviews",)
        assert vs.meta.namespace == "default" and not vs.meta.namespace_given
        assert vs.applies_to_sidecars
        (rule,) = vs.http
        assert tuple(d.weight for d in rule.destinations) == weights
        assert tuple(d.subset for d in rule.destinations) == ("v1", "v2")
        assert [d.line for d in rule.destinations] == [13, 17]  # the 'weight:' lines


def test_bookinfo_destination_rule_random() -> None:
    (dr,) = load_manifests(str(ISTIO / "bookinfo-destination-rule-reviews.yaml")).destination_rules
    assert dr.host == "reviews" and dr.lb_policy == "RANDOM"
    assert [(s.name, s.labels, s.line) for s in dr.subsets] == [
        ("v1", (("version", "v1"),), 11), ("v2", (("version", "v2"),), 14), ("v3", (("version", "v3"),), 17)]


def test_istio_testdata_weighted_route_service_entry() -> None:
    m = load_manifests(str(ISTIO / "istio-testdata-rule-weighted-route.yaml"))
    (se,) = m.service_entries
    assert se.hosts == ("c-weighted.extsvc.com",) and se.resolution == "STATIC"
    assert [(e.address, e.ports, e.labels) for e in se.endpoints] == [
        ("127.0.0.2", (("http", 7072),), (("version", "v1"),)),
        ("127.0.0.3", (("http", 7074),), (("version", "v2"),)),
    ]
    assert [d.weight for d in m.virtual_services[0].http[0].destinations] == [75, 25]
    assert m.destination_rules[0].lb_policy is None
    assert se.meta.line == 3 and m.destination_rules[0].meta.line == 28 and m.virtual_services[0].meta.line == 43


def test_istio_testdata_static_weighted_se() -> None:
    (se,) = load_manifests(str(ISTIO / "istio-testdata-static-weighted-se.yaml")).service_entries
    # weight omitted -> 1 (IstioEndpoint.GetLoadBalancingWeight)
    assert [(e.address, e.weight, e.locality) for e in se.endpoints] == [
        ("3.3.3.3", 1, "a"), ("2.2.2.2", 8, "a"), ("1.1.1.1", 3, "b")]


def test_gateway_api_files() -> None:
    golden = load_manifests(str(ISTIO / "gateway-api-weighted-httproute.golden-virtualservice.yaml"))
    assert len(golden.virtual_services) == 2
    http_vs, tcp_vs = golden.virtual_services
    assert not http_vs.applies_to_sidecars  # bound to a gateway, not to "mesh"
    assert [d.weight for d in http_vs.http[1].destinations] == [2, 3]  # not normalised to 100
    assert [(d.host, d.port) for d in http_vs.http[1].destinations] == [
        ("httpbin.default.svc.domain.suffix", 80), ("httpbin-other.default.svc.domain.suffix", 8080)]
    assert http_vs.http[0].destinations[0].weight is None
    assert [d.weight for d in tcp_vs.tcp[0].destinations] == [1, 2]
    # Istio's Gateway objects and the Gateway API kinds are read by parsers.gateway_api (no longer ignored)
    assert not golden.ignored
    assert [type(o).__name__ for o in golden.gateway_objects] == ["IstioGateway", "IstioGateway"]
    inp = load_manifests(str(ISTIO / "gateway-api-weighted-httproute.input.yaml"))
    assert not inp.virtual_services
    assert not inp.ignored and not inp.diagnostics
    kinds = [o.meta.kind for o in inp.gateway_objects]
    assert kinds == ["GatewayClass", "Gateway", "HTTPRoute", "TCPRoute"]
    assert inp.gateway_objects[2].meta.line == 33  # HTTPRoute document start


def test_directory_walk_reads_every_fixture() -> None:
    m = load_manifests(str(ISTIO))
    assert len(m.sources) == 7
    # default/reviews is defined by the 80-20 and the 90-10 file: the later one (90-10) replaces the other
    assert len(m.virtual_services) == 4 and len(m.destination_rules) == 2 and len(m.service_entries) == 2
    (reviews,) = [v for v in m.virtual_services if v.meta.ref == "default/reviews"]
    assert reviews.meta.source.endswith("reviews-90-10.yaml")
    assert [(d.message.split(";")[0], d.source.rsplit("/", 1)[-1]) for d in m.diagnostics
            if "more than once" in d.message] == [
        ("VirtualService objects given more than once: default/reviews (2 times)",
         "bookinfo-virtual-service-reviews-90-10.yaml")]


def test_istio_demo_manifests() -> None:
    m = load_manifests(str(DATA / "istio-demo"))
    assert m.namespaces["istio-demo"].labels == {"istio-injection": "enabled"}
    assert sorted(w.meta.name for w in m.workloads) == ["bill-service-v1", "bill-service-v2", "front-tomcat-v1"]
    (svc,) = m.services
    assert svc.selector == (("service", "bill-service"),)
    assert [(p.name, p.port, p.target_port) for p in svc.ports] == [("http", 9999, 80)]


KUBECTL_LIST = """\
apiVersion: v1
items:
- apiVersion: apps/v1
  kind: Deployment
  metadata:
    name: web
    namespace: shop
  spec:
    replicas: 3
    template:
      metadata:
        labels: {app: web, version: v2}
        annotations: {sidecar.istio.io/inject: "false"}
      spec:
        hostNetwork: true
        containers:
        - name: c
          ports: [{name: http, containerPort: 8080}]
- apiVersion: v1
  kind: Service
  metadata: {name: web, namespace: shop}
  spec:
    selector: {app: web}
    ports: [{name: http, port: 80, targetPort: http}]
kind: List
metadata:
  resourceVersion: ""
"""


def test_kind_list_as_kubectl_prints_it() -> None:
    m = parse_manifest_text(KUBECTL_LIST, "get.yaml")
    (w,) = m.workloads
    assert (w.meta.ref, w.replicas, w.host_network) == ("shop/web", 3, True)
    assert w.labels == {"app": "web", "version": "v2"}
    assert dict(w.pod_annotations) == {"sidecar.istio.io/inject": "false"}
    assert w.container_ports == (("http", 8080, "TCP"),)
    assert w.meta.line == 3 and w.replicas_line == 9
    (s,) = m.services
    assert s.ports[0].target_port == "http" and s.meta.line == 19


def test_multi_document_lines_and_json() -> None:
    text = "---\n# c\n---\napiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n---\n\napiVersion: v1\nkind: Pod\n" \
           "metadata: {name: p, namespace: a}\nspec: {containers: []}\nstatus: {podIP: 10.0.0.9}\n"
    m = parse_manifest_text(text, "x.yaml")
    assert m.namespaces["a"].meta.line == 4
    (p,) = m.workloads
    assert p.meta.line == 9 and p.pod_ip == "10.0.0.9" and p.replicas == 1
    js = '{"apiVersion": "v1", "kind": "List", "items": [{"apiVersion": "v1", "kind": "Namespace",\n' \
         '"metadata": {"name": "b", "labels": {"istio.io/rev": "canary"}}}]}'
    assert parse_manifest_text(js, "x.json").namespaces["b"].labels == {"istio.io/rev": "canary"}


@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [
        ("apiVersion: v1\nkind: Service\nmetadata:\n  name: a\n   bad: indent\n", 5, "invalid YAML"),
        ("kind: Service\nmetadata: {name: [unclosed\n", 3, "invalid YAML"),
        ("- just\n- a list\n", 1, "expected a Kubernetes object"),
        ("apiVersion: v1\nmetadata: {name: x}\n", 1, "'kind'"),
        ("apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\nspec:\n  replicas: three\n  template: {}\n",
         5, "'replicas' of Deployment spec to be an integer"),
        ("apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec:\n  ports:\n  - port: 70000\n", 6, "[1, 65535]"),
        ("apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: v}\nspec:\n  hosts: [a]\n"
         "  http:\n  - route:\n    - destination: {host: a}\n      weight: -5\n", 9, "weight -5 < 0"),
        ("apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: v}\nspec: {http: []}\n", 4,
         "at least one entry in 'hosts'"),
        ("!!python/object/apply:os.system ['true']\n", 1, "invalid YAML"),
    ],
)
def test_errors_have_file_and_line(text: str, line: int, fragment: str) -> None:
    with pytest.raises(ConfigParseError) as ei:
        parse_manifest_text(text, "bad.yaml")
    err = ei.value
    assert err.source == "bad.yaml" and err.line == line, str(err)
    assert fragment in str(err)
    assert str(err).startswith(f"bad.yaml:{line}")


def test_alias_bomb_refused() -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 9):
        prev = f"*a{i - 1}"
        lines.append(f"a{i}: &a{i} [{', '.join([prev] * 10)}]")
    text = "\n".join(lines) + "\nkind: ConfigMap\napiVersion: v1\nmetadata: {name: boom}\n"
    with pytest.raises(ConfigParseError, match="expands to more than") as ei:
        parse_manifest_text(text, "bomb.yaml")
    assert ei.value.line == 1  # line of the document start
    assert f"{MAX_EXPANDED_NODES:,}" in str(ei.value)


def test_small_aliases_are_fine() -> None:
    text = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: n\n  labels: &l {a: b}\n  annotations: *l\n"
    assert parse_manifest_text(text).namespaces["n"].meta.annotations == (("a", "b"),)


def test_unknown_kind_is_a_note_and_file_limit(tmp_path: Path) -> None:
    m = parse_manifest_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c, namespace: x}\n", "c.yaml")
    assert [str(d) for d in m.diagnostics] == ["c.yaml:1: note: ignored ConfigMap x/c (v1): not modelled"]
    empty = tmp_path / "empty"
    empty.mkdir()
    from meshstat.errors import InvalidArgument

    with pytest.raises(InvalidArgument, match="no \\*.yaml"):
        load_manifests(str(empty))


@pytest.mark.parametrize(("target", "want"),
                         [('"8080"', 8080), ('"\u00b2"', "\u00b2"), ('"\u0663"', "\u0663"), ("http", "http")])
def test_a_target_port_of_other_digits_is_a_name(target: str, want: object) -> None:
    """A targetPort of ASCII digits is a number; a superscript two or an Arabic-Indic three, which
    ``str.isdigit`` takes for digits (and ``int()`` refuses or reads as 3), is a port name, as Kubernetes
    reads an IntOrString that is not a number: the fast reader and the checked converter agree."""
    text = f"""apiVersion: v1
kind: Service
metadata: {{name: a, namespace: x}}
spec:
  selector: {{app: a}}
  ports: [{{name: http, port: 80, targetPort: {target}}}]
"""
    svc = parse_manifest_text(text, "s.yaml").services[0]
    assert svc.ports[0].target_port == want
