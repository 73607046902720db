"""Envoy input parsing and resolution steps: every envoy fixture, istioctl camelCase, matching rules."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from meshstat.errors import ConfigParseError
from meshstat.mesh.envoy import find_virtual_host, resolve_call, route_static_match
from meshstat.parsers.envoy import load_envoy, parse_envoy_text, snake_keys

DATA = Path(__file__).resolve().parents[1] / "data" / "envoy"
ISTIOCTL = [str(DATA / f"istio-demo-istioctl-{k}.json") for k in ("listener", "route", "cluster", "endpoint")]


def test_istio_sidecar_eds_dump() -> None:
    cfg = load_envoy(str(DATA / "istio-sidecar-eds-config_dump.json"))
    assert len(cfg.assignments) == 37  # 5 static + 32 dynamic
    reviews = cfg.assignments["outbound|9080||reviews.default.svc.cluster.local"]
    assert [(e.key, e.health, e.weight, e.workload, e.labels) for e in reviews.endpoints] == [
        ("10.244.0.192:9080", "HEALTHY", 1, "reviews-v3", (("app", "reviews"), ("version", "v3"))),
        ("10.244.0.193:9080", "HEALTHY", 1, "reviews-v2", (("app", "reviews"), ("version", "v2"))),
        ("10.244.0.195:9080", "HEALTHY", 1, "reviews-v1", (("app", "reviews"), ("version", "v1"))),
    ]
    assert reviews.endpoints[0].locality_weight == 3 and reviews.overprovisioning_factor == 140
    assert cfg.assignments["BlackHoleCluster"].endpoints == ()
    eps, factor, origin = cfg.endpoints_of("outbound|53||kube-dns.kube-system.svc.cluster.local")
    assert [e.key for e in eps] == ["10.244.0.8:53", "10.244.0.3:53"] and factor == 140
    assert origin == "EndpointsConfigDump"  # this dump has no ClustersConfigDump


def test_experiment_config_dump() -> None:
    cfg = load_envoy(str(DATA / "meshstat-exp-envoy140-config_dump.json"))
    assert [li["name"] for li in cfg.listeners] == ["front"]
    assert "front_routes" in cfg.route_configs
    assert len(cfg.clusters) == 22
    assert cfg.clusters["rand4"].lb_policy == "RANDOM"
    assert cfg.clusters["rr4"].lb_policy == "ROUND_ROBIN" and not cfg.clusters["rr4"].lb_policy_explicit
    assert cfg.clusters["loc"].locality_weighted and not cfg.clusters["loc_off"].locality_weighted
    eps, _, origin = cfg.endpoints_of("panic4")
    assert origin == "EndpointsConfigDump"
    assert [e.health for e in eps] == ["HEALTHY", "UNHEALTHY", "UNHEALTHY", "UNHEALTHY"]
    assert [e.priority for e in cfg.endpoints_of("prio")[0]] == [0, 0, 1, 1]
    assert cfg.where("cluster", "rand4").startswith(str(DATA / "meshstat-exp-envoy140-config_dump.json") + ":")


def test_admin_clusters_json_counters() -> None:
    cfg = load_envoy(str(DATA / "meshstat-exp-envoy140-clusters.json"))
    assert len(cfg.host_statuses) == 22
    assert {k: v["rq_total"] for k, v in cfg.counters["wrr4"].items()} == {
        "127.0.0.1:18083": 200, "127.0.0.1:18084": 400, "127.0.0.1:18085": 600, "127.0.0.1:18086": 800}
    # zero counters are omitted by Envoy and read as 0; failed active HC -> unhealthy
    assert cfg.counters["hc_bad"]["127.0.0.1:18099"]["rq_total"] == 0
    assert [h.health for h in cfg.host_statuses["panic4"]] == ["HEALTHY", "UNHEALTHY", "UNHEALTHY", "UNHEALTHY"]
    assert [h.priority for h in cfg.host_statuses["prio"]] == [0, 0, 1, 1]
    assert cfg.host_statuses["loc"][0].locality == (("region", "r1"), ("zone", "a"))


def test_bootstraps_yaml() -> None:
    front = load_envoy(str(DATA / "meshstat-exp-envoy140-front.yaml"))
    dump = load_envoy(str(DATA / "meshstat-exp-envoy140-config_dump.json"))
    assert set(front.clusters) == set(dump.clusters)
    # the dump omits default values (denominator HUNDRED); paths and actions agree
    def summary(cfg):  # noqa: ANN001, ANN202
        return [(r["match"].get("path"), json.dumps(r["route"], sort_keys=True))
                for r in cfg.route_configs["front_routes"]["virtual_hosts"][0]["routes"]]

    assert summary(front) == summary(dump)
    loc = load_envoy(str(DATA / "envoy-examples-locality-load-balancing.yaml"))
    (cl,) = loc.clusters.values()
    assert cl.type == "STRICT_DNS" and cl.locality_weighted
    assert [(e.address, e.priority) for e in cl.load_assignment.endpoints] == [
        ("backend-local-1", 0), ("backend-local-2", 1), ("backend-remote-1", 1), ("backend-remote-2", 2)]


def test_istioctl_camel_case_equals_config_dump() -> None:
    dump = load_envoy(str(DATA / "istio-demo-front-tomcat-config_dump.json"))
    ctl = load_envoy(ISTIOCTL)
    assert dump.route_configs["9999"] == ctl.route_configs["9999"]
    assert {li["name"] for li in ctl.listeners} == {"virtualOutbound", "0.0.0.0_9999"}
    for name in ("outbound|9999|v1|bill-service.istio-demo.svc.cluster.local",
                 "outbound|9999||bill-service.istio-demo.svc.cluster.local"):
        assert dump.clusters[name].lb_policy == ctl.clusters[name].lb_policy == "LEAST_REQUEST"
        assert [e.key for e in dump.endpoints_of(name)[0]] == [e.key for e in ctl.endpoints_of(name)[0]]
    assert dump.node_id.startswith("sidecar~10.244.75.112~front-tomcat-v1")


def test_snake_keys_keeps_non_identifiers() -> None:
    obj = {"filterChains": [{"typedConfig": {"@type": "x", "routeConfigName": "9"}}],
           "metadata": {"filterMetadata": {"envoy.lb": {"canary": True}}}}
    assert snake_keys(obj) == {"filter_chains": [{"typed_config": {"@type": "x", "route_config_name": "9"}}],
                               "metadata": {"filter_metadata": {"envoy.lb": {"canary": True}}}}


@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [
        ('{"configs": [\n  {"@type": "x",}\n]}', 2, "invalid JSON"),
        ('[\n{"name": "a"\n', 3, "invalid JSON"),
        ('"just a string"', 1, "expected an Envoy config_dump"),
        ('{"configs": {"a": 1}}', 1, "'configs' to be a list"),
    ],
)
def test_json_errors(text: str, line: int, fragment: str) -> None:
    with pytest.raises(ConfigParseError) as ei:
        parse_envoy_text(text, "dump.json")
    assert ei.value.line == line and fragment in str(ei.value)
    assert str(ei.value).startswith(f"dump.json:{line}")


RC = {
    "virtual_hosts": [
        {"name": "default", "domains": ["*"]},
        {"name": "exact", "domains": ["api.example.com", "api.example.com:8080"]},
        {"name": "suffix-short", "domains": ["*.com"]},
        {"name": "suffix-long", "domains": ["*.example.com"]},
        {"name": "dash", "domains": ["*-bar.foo.com"]},
        {"name": "prefix", "domains": ["api.*"]},
    ]
}


@pytest.mark.parametrize(
    ("authority", "vhost"),
    [
        ("api.example.com", "exact"),
        ("API.Example.com", "exact"),
        ("api.example.com:8080", "exact"),
        ("www.example.com", "suffix-long"),
        ("x.other.com", "suffix-short"),
        ("baz-bar.foo.com", "dash"),
        ("api.internal", "prefix"),
        ("api.example.com:9999", "prefix"),  # port kept: exact misses, no suffix matches ':9999'
        ("example.com", "suffix-short"),
        ("nothing", "default"),
    ],
)
def test_virtual_host_matching(authority: str, vhost: str) -> None:
    vh, _ = find_virtual_host(RC, authority)
    assert vh["name"] == vhost


def test_virtual_host_port_stripping_and_wildcard_needs_a_char() -> None:
    vh, _ = find_virtual_host(RC, "api.example.com:9999", strip_port=True)
    assert vh["name"] == "exact"
    vh, _ = find_virtual_host({"virtual_hosts": [{"name": "s", "domains": ["*.foo.com"]}]}, ".foo.com")
    assert vh is None


def test_route_matching_rules() -> None:
    notes: list[str] = []
    h = {"x-user": "alice", ":method": "GET"}
    assert route_static_match({"prefix": "/api"}, "/api/v1?x=1", h, notes)
    assert not route_static_match({"path": "/api"}, "/api/v1", h, notes)
    assert route_static_match({"path": "/api"}, "/api?debug=1", h, notes)
    assert route_static_match({"safe_regex": {"regex": "/api/v[0-9]+"}}, "/api/v12?q", h, notes)
    assert not route_static_match({"safe_regex": {"regex": "/api"}}, "/api/v1", h, notes)
    assert route_static_match({"path_separated_prefix": "/api"}, "/api/x", h, notes)
    assert not route_static_match({"path_separated_prefix": "/api"}, "/apix", h, notes)
    assert route_static_match({"prefix": "/API", "case_sensitive": False}, "/api", h, notes)
    assert route_static_match({"prefix": "/", "headers": [{"name": "x-user", "exact_match": "alice"}]}, "/", h, notes)
    assert not route_static_match(
        {"prefix": "/", "headers": [{"name": "x-user", "string_match": {"prefix": "bob"}}]}, "/", h, notes)
    assert route_static_match(
        {"prefix": "/", "headers": [{"name": "x-user", "string_match": {"exact": "bob"}, "invert_match": True}]},
        "/", h, notes)
    assert not route_static_match({"prefix": "/", "headers": [{"name": "x-absent", "present_match": True}]}, "/", h,
                                  notes)
    assert route_static_match({"prefix": "/", "query_parameters": [{"name": "x", "string_match": {"exact": "1"}}]},
                              "/?x=1", h, notes)
    assert not notes


def test_resolve_trace_istioctl_and_tcp_chain() -> None:
    cfg = load_envoy(ISTIOCTL)
    res = resolve_call(cfg, "bill-service", 9999)
    assert [s.layer for s in res.steps] == ["listener", "listener", "filter chain", "route configuration",
                                            "virtual host", "route"]
    assert res.steps[0].choice == "virtualOutbound" and res.steps[1].choice == "0.0.0.0_9999"
    assert res.steps[4].choice == "bill-service.istio-demo.svc.cluster.local:9999"
    (cand,) = res.candidates
    assert cand.action[0] == "weighted" and [w for _, w in cand.action[1]] == [90, 10]
    tcp = resolve_call(cfg, "bill-service", 9999, protocol="tcp")
    assert tcp.protocol == "tcp"
    assert tcp.tcp_clusters == [("outbound|9999||bill-service.istio-demo.svc.cluster.local", 1)]
    other = resolve_call(cfg, "10.0.0.1", 5432, protocol="tcp")  # no listener: virtualOutbound's own chains
    assert other.tcp_clusters == [("PassthroughCluster", 1)]
    unknown_host = resolve_call(cfg, "example.org", 9999)
    assert unknown_host.steps[4].choice == "allow_any"


def test_rds_missing_is_reported() -> None:
    cfg = load_envoy(ISTIOCTL[0])
    res = resolve_call(cfg, "bill-service", 9999)
    assert res.failure is not None and "'9999' not in the input" in res.failure


def test_every_fixture_file_loads() -> None:
    for path in sorted(DATA.iterdir()):
        if path.suffix in (".json", ".yaml"):
            cfg = load_envoy(str(path))
            assert cfg.clusters or cfg.assignments or cfg.host_statuses or cfg.listeners or cfg.route_configs, path.name
            json.dumps(cfg.route_configs)  # plain data
