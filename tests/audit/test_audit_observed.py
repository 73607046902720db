"""``audit --iptables/--nft NODE=FILE`` and ``--envoy WORKLOAD=FILE``: real layers replace the modelled ones."""

from __future__ import annotations

import io
from fractions import Fraction as F
from pathlib import Path

from meshstat.audit import Observed, audit
from meshstat.cli import main
from meshstat.mesh import Mesh
from meshstat.netfilter import load
from meshstat.parsers.envoy import load_envoy
from meshstat.parsers.k8s import load_manifests, parse_manifest_text

ROOT = Path(__file__).resolve().parents[2]
DUMP = str(ROOT / "tests/data/envoy/istio-demo-front-tomcat-config_dump.json")
RULES = str(ROOT / "tests/data/iptables/kube-proxy-iptables-3ep-itp-cluster.iptables-save")

# ns1/svc1 of the ruleset (cluster IP and port as the rules have them), routed 90/10 by a VirtualService,
# called by a client without a sidecar
_SVC1 = """
apiVersion: v1
kind: Service
metadata: {name: svc1, namespace: ns1}
spec:
  clusterIP: {ip}
  ports: [{{name: http, port: {port}, protocol: TCP, targetPort: 80}}]
  selector: {{app: svc1}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: svc1, namespace: ns1}}
spec:
  hosts: [svc1]
  http: [{{route: [{{destination: {{host: svc1, subset: v1}}, weight: 90}}, {{destination: {{host: svc1, subset: v2}}, weight: 10}}]}}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: svc1, namespace: ns1}}
spec: {{host: svc1, subsets: [{{name: v1, labels: {{version: v1}}}}, {{name: v2, labels: {{version: v2}}}}]}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: client, namespace: plain}}
spec:
  selector: {{matchLabels: {{app: client}}}}
  template: {{metadata: {{labels: {{app: client}}}}, spec: {{containers: [{{name: c, image: c}}]}}}}
"""


def _svc1_text() -> str:
    from meshstat.kubeproxy import find_service

    info = find_service(load(RULES), "ns1/svc1")
    ip, port = info.cluster_ip, info.port
    return _SVC1.replace("{ip}", str(ip)).replace("{port}", str(port)).replace("{{", "{").replace("}}", "}"), info


def test_node_rules_replace_the_modelled_kube_proxy_split() -> None:
    text, info = _svc1_text()
    mesh = Mesh(parse_manifest_text(text, "svc1.yaml"))
    modelled = audit(mesh)
    # no pods in the manifests: the model sees no endpoints; the node's rules have three
    assert [(r.reason, r.effective) for r in modelled.rows] == [("no-sidecar", (("no endpoints", F(1)),))]
    res = audit(mesh, observed=Observed({"node-1": load(RULES)}, {}, {"node-1": RULES}))
    (row,) = res.rows
    eps = list(info.endpoints)
    assert row.reason == "no-sidecar" and row.clients == "on node node-1: plain (1)"
    assert row.configured == (("v1", F(9, 10)), ("v2", F(1, 10)))
    # the rules' three endpoints, with the exact shares of iptables' statistic thresholds (k / 2^31 each)
    assert len(row.effective) == len(eps) == 3 and sum(s for _, s in row.effective) == 1
    assert all(abs(s - F(1, 3)) < F(1, 10**9) and s != F(1, 3) for _, s in row.effective)


def test_envoy_dump_replaces_the_modelled_sidecar(tmp_path: Path) -> None:
    demo = str(ROOT / "tests/data/istio-demo")
    cfg = load_envoy([DUMP])
    obs = Observed({}, {"istio-demo/front-tomcat-v1": cfg}, {"istio-demo/front-tomcat-v1": DUMP})
    assert audit(Mesh(load_manifests([demo])), observed=obs).rows == []  # the dump does what the VS says
    # the VirtualService now asks 50/50; the dump (older) still routes 90/10: that client diverges
    changed = tmp_path / "demo"
    changed.mkdir()
    for f in (ROOT / "tests/data/istio-demo").glob("*.yaml"):
        (changed / f.name).write_text(f.read_text().replace("weight: 90", "weight: 50").replace("weight: 10",
                                                                                              "weight: 50"))
    res = audit(Mesh(load_manifests([str(changed)])), observed=obs)
    (row,) = res.rows
    assert (row.service, row.clients, row.reason) == (
        "istio-demo/bill-service:9999", "istio-demo/front-tomcat-v1 (its Envoy dump)", "envoy-config-differs")
    assert row.configured == (("v1", F(1, 2)), ("v2", F(1, 2))) and row.effective == (("v1", F(9, 10)),
                                                                                        ("v2", F(1, 10)))


def test_command_line_options(tmp_path: Path) -> None:
    text, _ = _svc1_text()
    f = tmp_path / "svc1.yaml"
    f.write_text(text)
    out, err = io.StringIO(), io.StringIO()
    rc = main(["audit", "-f", str(f), "--iptables", f"node-1={RULES}"], stdout=out, stderr=err)
    assert rc == 4 and "on node node-1: plain (1)" in out.getvalue()
    out, err = io.StringIO(), io.StringIO()
    assert main(["audit", "-f", str(f), "--iptables", RULES], stdout=out, stderr=err) == 2
    assert "expected NAME=FILE" in err.getvalue()


def _pods(*versions: str) -> str:
    """Pods of ns1/svc1 at the rules' endpoint IPs (10.0.1.1, .2, .3), with the given version labels."""
    return "".join(f"""
---
apiVersion: v1
kind: Pod
metadata: {{name: svc1-{i}, namespace: ns1, labels: {{app: svc1, version: {v}}}}}
spec: {{nodeName: node-1, containers: [{{name: c, image: c, ports: [{{containerPort: 80}}]}}]}}
status: {{podIP: 10.0.1.{i}, phase: Running, conditions: [{{type: Ready, status: "True"}}]}}
""" for i, v in enumerate(versions, 1))


def test_node_rules_name_endpoints_as_the_model_names_pods() -> None:
    """An endpoint of the rules is named by the subset that selects its pod, whatever the subsets are called
    (was: by the pod's version label, so subsets named otherwise showed as a split that never matched)."""
    text, _ = _svc1_text()
    text = text.replace("subset: v1", "subset: stable").replace("subset: v2", "subset: canary")
    text = text.replace("{name: v1, labels", "{name: stable, labels").replace("{name: v2, labels", "{name: canary, labels")
    mesh = Mesh(parse_manifest_text(text + _pods("v1", "v1", "v2"), "svc1.yaml"))
    (row,) = audit(mesh, observed=Observed({"node-1": load(RULES)}, {}, {"node-1": RULES})).rows
    assert row.configured == (("stable", F(9, 10)), ("canary", F(1, 10)))
    eff = dict(row.effective)
    assert set(eff) == {"stable", "canary"} and abs(eff["stable"] - F(2, 3)) < F(1, 10**9)


_ROUTE = """
---
apiVersion: v1
kind: Service
metadata: {name: svc1-v1, namespace: ns1}
spec: {ports: [{name: http, port: 80}], selector: {app: svc1, version: v1}}
---
apiVersion: v1
kind: Service
metadata: {name: svc1-v2, namespace: ns1}
spec: {ports: [{name: http, port: 80}], selector: {app: svc1, version: v2}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: svc1, namespace: ns1}
spec:
  parentRefs: [{group: "", kind: Service, name: svc1, port: 80}]
  rules: [{backendRefs: [{name: svc1-v1, port: 80, weight: 90}, {name: svc1-v2, port: 80, weight: 10}]}]
"""


def test_node_rules_replace_the_modelled_split_of_service_routes() -> None:
    """A port a Service's HTTPRoute splits (GAMMA): with the node's rules the no-sidecar row is the rules', and
    the modelled one is not written (it was, beside the rules' rows)."""
    text, _ = _svc1_text()
    head = text.split("---\napiVersion: networking.istio.io/v1\nkind: VirtualService")[0]
    client = text[text.index("apiVersion: apps/v1"):]
    text = head + "---\n" + client + _ROUTE + _pods("v1", "v1", "v2")
    mesh = Mesh(parse_manifest_text(text, "svc1.yaml"))
    (modelled,) = audit(mesh).rows
    who = "2 namespaces, 4 workloads: ns1 (3), plain (1)"  # the pods of ns1 are clients without a sidecar too
    assert (modelled.reason, modelled.clients) == ("no-sidecar", who)
    assert dict(modelled.effective) == {"ns1/svc1-v1:80": F(2, 3), "ns1/svc1-v2:80": F(1, 3)}
    (row,) = audit(mesh, observed=Observed({"node-1": load(RULES)}, {}, {"node-1": RULES})).rows
    assert (row.reason, row.clients) == ("no-sidecar", f"on node node-1: {who}")
    assert "HTTPRoute ns1/svc1 rules[0] is not applied" in row.detail
    assert row.configured == (("ns1/svc1-v1:80", F(9, 10)), ("ns1/svc1-v2:80", F(1, 10)))
    eff = dict(row.effective)
    assert set(eff) == {"ns1/svc1-v1:80", "ns1/svc1-v2:80"} and eff["ns1/svc1-v1:80"] != F(2, 3)
    assert abs(eff["ns1/svc1-v1:80"] - F(2, 3)) < F(1, 10**9)


_BILL_ROUTE = """apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: bill, namespace: istio-demo}
spec:
  parentRefs: [{group: "", kind: Service, name: bill-service, port: 9999}]
  rules: [{backendRefs: [{name: bill-v1, port: 9999, weight: W1}, {name: bill-v2, port: 9999, weight: W2}]}]
---
apiVersion: v1
kind: Service
metadata: {name: bill-v1, namespace: istio-demo}
spec: {ports: [{name: http, port: 9999, targetPort: 80}], selector: {service: bill-service, version: v1}}
---
apiVersion: v1
kind: Service
metadata: {name: bill-v2, namespace: istio-demo}
spec: {ports: [{name: http, port: 9999, targetPort: 80}], selector: {service: bill-service, version: v2}}
"""


def test_envoy_dump_of_a_service_route(tmp_path: Path) -> None:
    """A sidecar's dump is checked on the ports a Service's HTTPRoute splits too (they were left out, and the
    workload, taken out of its modelled group, was not audited there at all); its clusters of backend Services
    are named as the route names its backendRefs."""
    dump = Path(DUMP).read_text()
    for v in ("v1", "v2"):  # the clusters istiod gives for backendRefs: outbound|port||<backend Service FQDN>
        dump = dump.replace(f"outbound|9999|{v}|bill-service.istio-demo", f"outbound|9999||bill-{v}.istio-demo")
    (tmp_path / "dump.json").write_text(dump)
    cfg = load_envoy([str(tmp_path / "dump.json")])
    obs = Observed({}, {"istio-demo/front-tomcat-v1": cfg}, {"istio-demo/front-tomcat-v1": "dump.json"})
    for weights, rows in (((90, 10), 0), ((50, 50), 1)):
        demo = tmp_path / f"demo{weights[0]}"
        demo.mkdir()
        for f in (ROOT / "tests/data/istio-demo").glob("*.yaml"):
            if "virtualservice" not in f.name:
                (demo / f.name).write_text(f.read_text())
        (demo / "route.yaml").write_text(_BILL_ROUTE.replace("W1", str(weights[0])).replace("W2", str(weights[1])))
        res = audit(Mesh(load_manifests([str(demo)])), observed=obs)
        assert len(res.rows) == rows, res.rows
    (row,) = res.rows
    assert (row.service, row.reason) == ("istio-demo/bill-service:9999", "envoy-config-differs")
    assert "HTTPRoute istio-demo/bill rules[0] configures the other split" in row.detail
    assert row.configured == (("istio-demo/bill-v1:9999", F(1, 2)), ("istio-demo/bill-v2:9999", F(1, 2)))
    assert row.effective == (("istio-demo/bill-v1:9999", F(9, 10)), ("istio-demo/bill-v2:9999", F(1, 10)))


def test_envoy_dump_where_a_route_comes_before_the_virtual_service(tmp_path: Path) -> None:
    """istio-demo keeps its VirtualService, and a producer HTTPRoute of front-tomcat's own namespace comes first for
    its sidecar (Istio lists a namespace's generated routes first): the dump is compared with the route."""
    dump = Path(DUMP).read_text()
    for v in ("v1", "v2"):
        dump = dump.replace(f"outbound|9999|{v}|bill-service.istio-demo", f"outbound|9999||bill-{v}.istio-demo")
    (tmp_path / "dump.json").write_text(dump)
    obs = Observed({}, {"istio-demo/front-tomcat-v1": load_envoy([str(tmp_path / "dump.json")])},
                   {"istio-demo/front-tomcat-v1": "dump.json"})
    for weights, rows in (((90, 10), 0), ((50, 50), 1)):
        demo = tmp_path / f"demo{weights[0]}"
        demo.mkdir()
        for f in (ROOT / "tests/data/istio-demo").glob("*.yaml"):  # the VirtualService too
            (demo / f.name).write_text(f.read_text())
        (demo / "route.yaml").write_text(_BILL_ROUTE.replace("W1", str(weights[0])).replace("W2", str(weights[1])))
        res = audit(Mesh(load_manifests([str(demo)])), observed=obs)
        assert [r.reason for r in res.rows] == ["envoy-config-differs"] * rows, res.rows
    assert "HTTPRoute istio-demo/bill rules[0] configures the other split" in res.rows[0].detail
