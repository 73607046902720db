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
