"""Mesh: injection decision, client paths, layered split, warnings, and the istio-demo scenario."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from meshstat.errors import InvalidArgument
from meshstat.mesh import InjectorConfig, Mesh, envoy_dump_route, injection_decision, version_of
from meshstat.model import Cascade, Weighted, kube_proxy_uniform_bound
from meshstat.parsers.envoy import load_envoy
from meshstat.parsers.k8s import load_manifests, parse_manifest_text
from tests.conftest import ALPHA

DATA = Path(__file__).resolve().parents[1] / "data"
DEMO = str(DATA / "istio-demo")
DUMP = str(DATA / "envoy" / "istio-demo-front-tomcat-config_dump.json")
ISTIOCTL = [str(DATA / "envoy" / f"istio-demo-istioctl-{k}.json") for k in ("listener", "route", "cluster", "endpoint")]


def by_version(route) -> dict[str, Fraction]:  # noqa: ANN001
    out: dict[str, Fraction] = {}
    for b, s in zip(route.backends(), route.exact_shares(), strict=True):
        v = version_of(b.labels) if "outcome" not in dict(b.labels) else b.name
        out[v] = out.get(v, Fraction(0)) + s
    return out


def demo_paths(scale=None, client=None, envoy=None):  # noqa: ANN001, ANN201
    mesh = Mesh(load_manifests(DEMO), scale=scale)
    (pair,) = mesh.routed_services()
    info, port = pair
    diags: list = []
    c = mesh.manifests.workload(client) if client else None
    paths = mesh.client_paths(info, port, client=c, envoy=envoy, diags=diags)
    return mesh, {p.kind: p for p in paths}, diags


def test_istio_demo_three_paths() -> None:
    mesh, paths, diags = demo_paths()
    assert by_version(paths["kube-proxy"].route) == {"v1": Fraction(1, 2), "v2": Fraction(1, 2)}
    assert by_version(paths["sidecar"].route) == {"v1": Fraction(9, 10), "v2": Fraction(1, 10)}
    assert by_version(paths["uid-1337"].route) == {"v1": Fraction(1, 2), "v2": Fraction(1, 2)}
    assert [b.name for b in paths["sidecar"].route.backends()] == ["bill-service-v1-0", "bill-service-v2-0"]
    assert isinstance(paths["kube-proxy"].route.root, Cascade) and paths["kube-proxy"].route.root.unit == "connection"
    root = paths["sidecar"].route.root
    assert isinstance(root, Weighted) and root.weights == (90, 10) and root.unit == "request"
    assert [c.name for c in root.children] == [
        "LEAST_REQUEST outbound|9999|v1|bill-service.istio-demo.svc.cluster.local",
        "LEAST_REQUEST outbound|9999|v2|bill-service.istio-demo.svc.cluster.local"]
    assert paths["sidecar"].clients == ["istio-demo/front-tomcat-v1"]
    assert paths["kube-proxy"].clients == []
    assert paths["uid-1337"].clients == ["istio-demo/front-tomcat-v1 (istio-proxy)"]
    assert not [d for d in diags if d.level == "warning"]
    layers = [x.layer for x in paths["sidecar"].layers]
    assert layers[:4] == ["client", "iptables (pod netns)", "Envoy listener", "Envoy route"]


@pytest.mark.parametrize("replicas", [-1, 2.0, True, "3"])
def test_scale_takes_whole_replica_counts(replicas: object) -> None:
    """The pods are made on first use (the audit never asks): a replica count that is no whole number is refused
    when the mesh is built, not when its pods are first read."""
    with pytest.raises(InvalidArgument, match="replicas must be an integer >= 0"):
        Mesh(load_manifests(DEMO), scale={"deploy/bill-service-v1": replicas})


def test_istio_demo_scaled_v1_to_three() -> None:
    mesh, paths, _ = demo_paths(scale={"deploy/bill-service-v1": 3})
    kp = by_version(paths["kube-proxy"].route)
    bound = 3 * kube_proxy_uniform_bound()
    assert abs(kp["v1"] - Fraction(3, 4)) < bound and abs(kp["v2"] - Fraction(1, 4)) < bound
    assert kp["v1"] != Fraction(3, 4)  # kube-proxy's decimals are not exact thirds
    assert by_version(paths["sidecar"].route) == {"v1": Fraction(9, 10), "v2": Fraction(1, 10)}
    pods = {b.name: s for b, s in zip(paths["sidecar"].route.backends(), paths["sidecar"].route.exact_shares(),
                                      strict=True)}
    assert pods == {"bill-service-v1-0": Fraction(3, 10), "bill-service-v1-1": Fraction(3, 10),
                    "bill-service-v1-2": Fraction(3, 10), "bill-service-v2-0": Fraction(1, 10)}
    assert any("scaled from 1 to 3" in n for n in mesh.notes)


@pytest.mark.parametrize("files", [[DUMP], ISTIOCTL])
def test_istio_demo_envoy_dump_gives_the_same_answer(files: list[str]) -> None:
    envoy = load_envoy(files)
    _, paths, _ = demo_paths(envoy=envoy, client="istio-demo/front-tomcat-v1")
    assert by_version(paths["envoy-dump"].route) == by_version(paths["sidecar"].route) == {
        "v1": Fraction(9, 10), "v2": Fraction(1, 10)}
    # the dump's endpoints carry Istio workload metadata naming one-replica Deployments
    assert [b.name for b in paths["envoy-dump"].route.backends()] == ["bill-service-v1-0", "bill-service-v2-0"]
    assert [b.address for b in paths["envoy-dump"].route.backends()] == ["10.244.75.123:80", "10.244.75.113:80"]
    route, res = envoy_dump_route(envoy, "10.108.203.9", 9999)  # the ClusterIP is a domain of the vhost too
    assert res.steps[4].detail.startswith("exact domain '10.108.203.9:9999'")
    assert dict(zip([b.address for b in route.backends()], route.exact_shares(), strict=True)) == {
        "10.244.75.123:80": Fraction(9, 10), "10.244.75.113:80": Fraction(1, 10)}


def test_namespace_not_labelled_means_kube_proxy(tmp_path: Path) -> None:
    for f in Path(DEMO).iterdir():
        if f.name != "namespace.yaml":
            (tmp_path / f.name).write_text(f.read_text())
    mesh = Mesh(load_manifests(str(tmp_path)))
    front = mesh.manifests.workload("istio-demo/front-tomcat-v1")
    d = mesh.injection(front)
    assert not d.injected and "not labelled" in d.reason
    (info, port), = mesh.routed_services()
    paths = {p.kind: p for p in mesh.client_paths(info, port, client=front)}
    assert paths["kube-proxy"].clients == ["istio-demo/front-tomcat-v1"] and paths["sidecar"].clients == []


NS = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {name}\n  labels: {labels}\n"
DEP = ("apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: {name}, namespace: {ns}}}\nspec:\n  template:\n"
       "    metadata:\n      labels: {labels}\n      annotations: {ann}\n    spec:\n      hostNetwork: {hn}\n"
       "      containers: []\n")


def decide(ns_labels: str, pod_labels: str = "{app: a}", ann: str = "{}", hn: str = "false", ns: str = "demo",
           injector: InjectorConfig = InjectorConfig()) -> tuple[bool, str]:
    text = NS.format(name=ns, labels=ns_labels) + "---\n" + DEP.format(name="a", ns=ns, labels=pod_labels,
                                                                        ann=ann, hn=hn)
    m = parse_manifest_text(text, "inj.yaml")
    d = injection_decision(m.workloads[0], m.namespaces[ns], injector)
    return d.injected, d.reason


@pytest.mark.parametrize(
    ("ns_labels", "pod_labels", "ann", "hn", "ns", "expected"),
    [
        ("{istio-injection: enabled}", "{app: a}", "{}", "false", "demo", True),
        ("{}", "{app: a}", "{}", "false", "demo", False),
        ("{istio-injection: disabled}", "{sidecar.istio.io/inject: 'true'}", "{}", "false", "demo", False),
        ("{istio-injection: enabled}", "{sidecar.istio.io/inject: 'false'}", "{}", "false", "demo", False),
        ("{istio-injection: enabled}", "{app: a}", "{sidecar.istio.io/inject: 'false'}", "false", "demo", False),
        ("{istio-injection: enabled}", "{app: a}", "{}", "true", "demo", False),
        ("{istio-injection: enabled}", "{app: a}", "{}", "false", "kube-system", False),
        ("{}", "{sidecar.istio.io/inject: 'true'}", "{}", "false", "demo", True),
        ("{}", "{app: a}", "{sidecar.istio.io/inject: 'true'}", "false", "demo", False),
        ("{istio.io/rev: canary}", "{app: a}", "{}", "false", "demo", True),
        ("{}", "{istio.io/rev: canary}", "{}", "false", "demo", True),
        ("{istio-injection: enabled, istio.io/rev: canary}", "{app: a}", "{}", "false", "demo", True),
        # the label wins over the annotation
        ("{istio-injection: enabled}", "{sidecar.istio.io/inject: 'true'}", "{sidecar.istio.io/inject: 'false'}",
         "false", "demo", True),
        # invalid value: the default policy decides
        ("{istio-injection: enabled}", "{sidecar.istio.io/inject: 'maybe'}", "{}", "false", "demo", True),
    ],
)
def test_injection_decision(ns_labels: str, pod_labels: str, ann: str, hn: str, ns: str, expected: bool) -> None:
    injected, reason = decide(ns_labels, pod_labels, ann, hn, ns)
    assert injected is expected, reason


def test_injection_policy_disabled_and_namespaces_by_default() -> None:
    off = InjectorConfig(policy="disabled")
    assert decide("{istio-injection: enabled}", injector=off)[0] is False
    assert decide("{istio-injection: enabled}", ann="{sidecar.istio.io/inject: 'true'}", injector=off)[0] is True
    everywhere = InjectorConfig(enable_namespaces_by_default=True)
    assert decide("{}", injector=everywhere)[0] is True
    assert decide("{istio-injection: disabled}", injector=everywhere)[0] is False
    assert decide("{istio.io/rev: canary}", injector=InjectorConfig(revisions=("default",)))[0] is False


BASE = """\
apiVersion: v1
kind: Namespace
metadata: {name: shop, labels: {istio-injection: enabled}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: client, namespace: shop}
spec:
  template:
    metadata: {labels: {app: client}}
    spec: {containers: []}
---
apiVersion: v1
kind: Service
metadata: {name: api, namespace: shop}
spec:
  selector: {app: api}
  ports: [{name: http, port: 80, targetPort: 8080}]
"""


def dep(name: str, version: str, replicas: int = 1, extra: str = "") -> str:
    return (f"---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: {name}, namespace: shop}}\nspec:\n"
            f"  replicas: {replicas}\n  template:\n    metadata: {{labels: {{app: api, version: {version}}}}}\n"
            f"    spec: {{containers: []{extra}}}\n")


def vs(weights: list[int], subsets: list[str], host: str = "api", port: str = "") -> str:
    routes = "".join(f"    - destination: {{host: {host}, subset: {s}{port}}}\n      weight: {w}\n"
                     for s, w in zip(subsets, weights, strict=True))
    return (f"---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: api, namespace: shop}}\n"
            f"spec:\n  hosts: [api]\n  http:\n  - route:\n{routes}")


def dr(subsets: list[str], lb: str = "") -> str:
    subs = "".join(f"  - name: {s}\n    labels: {{version: {s}}}\n" for s in subsets)
    tp = f"  trafficPolicy: {{loadBalancer: {{simple: {lb}}}}}\n" if lb else ""
    return (f"---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {{name: api, namespace: shop}}\n"
            f"spec:\n  host: api\n{tp}  subsets:\n{subs}")


def sidecar(text: str):  # noqa: ANN201
    mesh = Mesh(parse_manifest_text(text, "m.yaml"))
    info, port = mesh.find_service("api.shop:80")
    diags: list = []
    paths = {p.kind: p for p in mesh.client_paths(info, port, client=mesh.manifests.workload("shop/client"),
                                                  diags=diags)}
    return paths, [d for d in diags + mesh.diagnostics if d.level == "warning"], mesh


@given(st.lists(st.integers(0, 10**6), min_size=1, max_size=6).filter(lambda ws: sum(ws) > 0))
def test_any_weights_give_weight_over_sum(weights: list[int]) -> None:
    names = [f"v{i}" for i in range(len(weights))]
    text = BASE + "".join(dep(f"api-{n}", n, 1 + i % 3) for i, n in enumerate(names)) + vs(weights, names) + dr(names)
    paths, _, _ = sidecar(text)
    got = by_version(paths["sidecar"].route)
    total = sum(weights)
    if len(weights) == 1:
        assert got == {"v0": 1}  # one destination: plain cluster, weight ignored
    else:
        assert got == {n: Fraction(w, total) for n, w in zip(names, weights, strict=True) if w}


def test_warning_weights_not_100_shows_normalised_split() -> None:
    text = BASE + dep("a1", "v1") + dep("a2", "v2") + vs([2, 3], ["v1", "v2"]) + dr(["v1", "v2"])
    paths, warns, _ = sidecar(text)
    assert by_version(paths["sidecar"].route) == {"v1": Fraction(2, 5), "v2": Fraction(3, 5)}
    (w,) = warns
    assert w.source == "m.yaml" and w.line == text.splitlines().index("  - route:") + 1
    assert "weights sum to 5, not 100" in w.message and "v1=2/5 (40%)" in w.message and "v2=3/5 (60%)" in w.message


def test_warning_empty_subset_returns_503_share() -> None:
    text = BASE + dep("a1", "v1") + vs([80, 20], ["v1", "v3"]) + dr(["v1", "v3"])
    paths, warns, _ = sidecar(text)
    got = by_version(paths["sidecar"].route)
    assert got == {"v1": Fraction(4, 5),
                   "503 no_healthy_upstream (outbound|80|v3|api.shop.svc.cluster.local)": Fraction(1, 5)}
    msgs = [str(w) for w in warns]
    assert any("subset 'v3'" in m and "selects no pods" in m and m.startswith("m.yaml:") for m in msgs)
    assert any("1/5 (20%) of requests" in m for m in msgs)


def test_warning_undefined_subset_host_and_port() -> None:
    _, warns, _ = sidecar(BASE + dep("a1", "v1") + vs([50, 50], ["v1", "v9"]) + dr(["v1"]))
    assert any("subset 'v9'" in w.message and "503 NC" in w.message for w in warns)
    _, warns, _ = sidecar(BASE + dep("a1", "v1") + vs([100, 0], ["v1", "v1"], port=", port: {number: 81}")
                          + dr(["v1"]))
    assert any("destination port 81 is not a port of api.shop" in w.message for w in warns)
    text = BASE + dep("a1", "v1") + vs([1], ["v1"]).replace("hosts: [api]", "hosts: [nope]") + dr(["v1"])
    _, warns, mesh = sidecar(text)
    mesh.routed_services()
    assert any("host(s) nope match no Service" in d.message for d in mesh.diagnostics)


def test_warning_client_never_reaches_envoy() -> None:
    text = BASE.replace("    spec: {containers: []}\n", "    spec: {hostNetwork: true, containers: []}\n", 1)
    paths, warns, _ = sidecar(text + dep("a1", "v1"))
    assert paths["kube-proxy"].clients == ["shop/client"]
    (w,) = [w for w in warns if "never reaches Envoy" in w.message]
    assert "hostNetwork" in w.message and w.line == 5


def test_random_policy_weights_and_zero_weight_dropped() -> None:
    text = BASE + dep("a1", "v1", 2) + dep("a2", "v2") + vs([3, 0, 1], ["v1", "v2", "v1"]) + dr(["v1", "v2"], "RANDOM")
    paths, _, _ = sidecar(text)
    root = paths["sidecar"].route.root
    # v2's weight 0 is dropped; v1 listed twice is one cluster with weight 3 + 1
    assert isinstance(root, Weighted) and root.weights == (4,)
    assert root.children[0].name.startswith("RANDOM outbound|80|v1|")
    assert by_version(paths["sidecar"].route) == {"v1": 1}
    assert any("dropped" in n for n in paths["sidecar"].route.notes)
    assert any("listed twice" in n for n in paths["sidecar"].route.notes)


def test_service_entry_fixtures() -> None:
    m = load_manifests([str(DATA / "istio" / "istio-testdata-rule-weighted-route.yaml"),
                        str(DATA / "istio" / "istio-testdata-static-weighted-se.yaml")])
    mesh = Mesh(m)
    info, _ = mesh.find_service("c-weighted.extsvc.com")
    route = mesh.sidecar_route(None, info, 80)
    assert {b.name: s for b, s in zip(route.backends(), route.exact_shares(), strict=True)} == {
        "127.0.0.2:7072": Fraction(3, 4), "127.0.0.3:7074": Fraction(1, 4)}
    info, _ = mesh.find_service("weighted.static.svc.cluster.local")
    route = mesh.sidecar_route(None, info, 80)  # no VS: default route, LEAST_REQUEST honours weights 1/8/3
    assert [s for s in route.exact_shares()] == [Fraction(1, 12), Fraction(8, 12), Fraction(3, 12)]


def test_bookinfo_fixtures_with_reviews_pods() -> None:
    pods = "".join(
        f"---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: reviews-{v}}}\nspec:\n  template:\n"
        f"    metadata: {{labels: {{app: reviews, version: {v}}}}}\n    spec: {{containers: []}}\n"
        for v in ("v1", "v2", "v3"))
    svc = "---\napiVersion: v1\nkind: Service\nmetadata: {name: reviews}\nspec:\n  selector: {app: reviews}\n" \
          "  ports: [{name: http, port: 9080}]\n"
    m = parse_manifest_text(pods + svc, "bookinfo.yaml")
    for f in ("bookinfo-virtual-service-reviews-80-20.yaml", "bookinfo-destination-rule-reviews.yaml"):
        m.extend(load_manifests(str(DATA / "istio" / f)))
    mesh = Mesh(m)
    (pair,) = mesh.routed_services()
    paths = {p.kind: p for p in mesh.client_paths(*pair)}
    assert by_version(paths["sidecar"].route) == {"v1": Fraction(4, 5), "v2": Fraction(1, 5)}
    assert by_version(paths["kube-proxy"].route) == {"v1": Fraction(1, 3) + (by_version(paths["kube-proxy"].route)
                                                                              ["v1"] - Fraction(1, 3)),
                                                     "v2": by_version(paths["kube-proxy"].route)["v2"],
                                                     "v3": by_version(paths["kube-proxy"].route)["v3"]}
    assert "v3" not in by_version(paths["sidecar"].route)
    assert any("RANDOM" in n for n in paths["sidecar"].route.notes)


def test_tcp_route_is_per_connection() -> None:
    text = BASE.replace("name: http, port: 80", "name: tcp-db, port: 80") + dep("a1", "v1") + dep("a2", "v2") + (
        "---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: api, namespace: shop}\n"
        "spec:\n  hosts: [api]\n  tcp:\n  - match: [{port: 80}]\n    route:\n"
        "    - destination: {host: api, subset: v1}\n      weight: 1\n"
        "    - destination: {host: api, subset: v2}\n      weight: 3\n") + dr(["v1", "v2"])
    paths, _, _ = sidecar(text)
    root = paths["sidecar"].route.root
    assert isinstance(root, Weighted) and root.unit == "connection" and root.weights == (1, 3)


def test_http_match_selects_route() -> None:
    text = BASE + dep("a1", "v1") + dep("a2", "v2") + (
        "---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: api, namespace: shop}\n"
        "spec:\n  hosts: [api]\n  http:\n  - match: [{headers: {end-user: {exact: jason}}}]\n    route:\n"
        "    - destination: {host: api, subset: v2}\n  - route:\n    - destination: {host: api, subset: v1}\n"
    ) + dr(["v1", "v2"])
    mesh = Mesh(parse_manifest_text(text, "m.yaml"))
    info, port = mesh.find_service("api.shop:80")
    client = mesh.manifests.workload("shop/client")
    assert by_version(mesh.sidecar_route(client, info, port, headers={"end-user": "jason"})) == {"v2": 1}
    assert by_version(mesh.sidecar_route(client, info, port)) == {"v1": 1}


def test_simulated_split_fits_exact() -> None:
    import scipy.stats as ss

    from meshstat.engine import compare

    _, paths, _ = demo_paths()
    routes = [paths[k].route for k in ("kube-proxy", "sidecar", "uid-1337")]
    for r in compare(routes, 200_000, rng=20261126):
        assert int(r.counts.sum()) == 200_000
        assert ss.chisquare(r.counts, [float(s) * 200_000 for s in r.exact]).pvalue > ALPHA
