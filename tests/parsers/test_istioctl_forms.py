"""Every ``istioctl proxy-config`` form meshstat reads, and inputs that hold only part of Envoy's state.

Real outputs (``tests/data/envoy/istioctl/``, copied from istio/istio, see SOURCES.md there):
``bootstrap -o json`` (its golden file), ``eds -o json`` and ``-o yaml`` (golden files), a
config_dump with only route configurations, and a waypoint's full dump (what ``all -o json``
prints). istio/istio has no golden file for ``listener|route|cluster|endpoint -o json``; those
forms are made below from a dump the way istioctl's writers make them (see :func:`istioctl`).
"""

from __future__ import annotations

import copy
import json
import re
from fractions import Fraction
from pathlib import Path

import pytest
import yaml

from meshstat.mesh import envoy_dump_route
from meshstat.parsers.envoy import load_envoy, parse_envoy_text

DATA = Path(__file__).resolve().parents[1] / "data" / "envoy"
REAL = DATA / "istioctl"
DEMO_DUMP = DATA / "istio-demo-front-tomcat-config_dump.json"
ADMIN_CLUSTERS = DATA / "meshstat-exp-envoy140-clusters.json"
FQDN = "bill-service.istio-demo.svc.cluster.local"
V1, V2 = (f"outbound|9999|{v}|{FQDN}" for v in ("v1", "v2"))
CALL = {"host": FQDN, "port": 9999, "address": "10.108.203.9"}


def camel(obj):  # noqa: ANN001, ANN201
    """protojson's field names (lowerCamelCase json_name); map keys such as metadata namespaces stay."""
    if isinstance(obj, dict):
        return {(re.sub(r"_([a-z0-9])", lambda m: m.group(1).upper(), k)
                 if re.fullmatch(r"[a-z][a-z0-9]*(_[a-z0-9]+)+", k) else k): camel(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [camel(v) for v in obj]
    return obj


def _section(dump: dict, name: str) -> dict:
    return next((c for c in dump["configs"] if c["@type"].endswith("." + name)), {})


def _message(any_obj: dict) -> dict:
    return {k: v for k, v in any_obj.items() if k != "@type"}  # a message, not an Any, at the top level


def istioctl(command: str, fmt: str, dump: dict | None = None, clusters: dict | None = None) -> str:
    """What ``istioctl proxy-config COMMAND POD -o FMT`` prints for an admin dump (or ``/clusters``).

    The selection is istioctl's (``istioctl/pkg/writer/envoy/configdump``): listeners are the
    dynamic active and the static ones (``retrieveSortedListenerSlice``), route configurations
    the dynamic and static ones, clusters the dynamic active and static ones, ``eds`` every
    ``ClusterLoadAssignment``; ``endpoint`` prints the ``/clusters?format=json`` statuses of the
    clusters that have a host (``writer/envoy/clusters: PrintEndpoints``); ``bootstrap`` the
    ``BootstrapConfigDump``; ``all`` the dump itself. Each message is marshalled by protojson
    (camelCase) in a JSON array indented by 4 spaces; ``-o yaml`` is ``yaml.JSONToYAML`` of it
    (sorted keys, block style).
    """
    if command == "all":
        out: object = dump
    elif command == "endpoint":
        out = [camel(cs) for cs in clusters["cluster_statuses"] if cs.get("host_statuses")]
    elif command == "bootstrap":
        out = camel({k: v for k, v in _section(dump, "BootstrapConfigDump").items() if k != "@type"})
    else:
        key = {"listener": ("ListenersConfigDump", "dynamic_listeners", "static_listeners", "listener"),
               "route": ("RoutesConfigDump", "dynamic_route_configs", "static_route_configs", "route_config"),
               "cluster": ("ClustersConfigDump", "dynamic_active_clusters", "static_clusters", "cluster"),
               "eds": ("EndpointsConfigDump", "dynamic_endpoint_configs", "static_endpoint_configs",
                       "endpoint_config")}[command]
        sec = _section(dump, key[0])
        items = []
        for entry in sec.get(key[1], []) + sec.get(key[2], []):
            obj = (entry.get("active_state") or {}).get(key[3]) if command == "listener" else entry.get(key[3])
            obj = obj if obj is not None else entry.get(key[3])
            if obj is not None:
                items.append(camel(_message(obj)))
        out = items
    text = json.dumps(out, indent=4)
    return yaml.safe_dump(json.loads(text), sort_keys=True, default_flow_style=False) if fmt == "yaml" else text


def write(tmp_path: Path, name: str, text: str) -> str:
    p = tmp_path / name
    p.write_text(text + "\n", encoding="utf-8")
    return str(p)


def shares(cfg, **kw) -> dict[str, Fraction]:  # noqa: ANN001
    route, _ = envoy_dump_route(cfg, **{**CALL, **kw})
    return dict(zip((b.name for b in route.backends()), route.exact_shares(), strict=True))


DEMO = json.loads(DEMO_DUMP.read_text(encoding="utf-8"))
EXPECTED = {"10.244.75.123:80": Fraction(9, 10), "10.244.75.113:80": Fraction(1, 10)}


@pytest.mark.parametrize("fmt", ["json", "yaml"])
def test_each_istioctl_form_together_reads_like_the_dump(tmp_path: Path, fmt: str) -> None:
    assert shares(load_envoy(str(DEMO_DUMP))) == EXPECTED
    files = [write(tmp_path, f"{c}.{fmt}", istioctl(c, fmt, DEMO)) for c in ("listener", "route", "cluster", "eds")]
    cfg = load_envoy(files)
    assert shares(cfg) == EXPECTED
    assert [inv.form for inv in cfg.inputs] == [
        "istioctl proxy-config listener output", "istioctl proxy-config route output",
        "istioctl proxy-config cluster output", "istioctl proxy-config eds output"]
    assert cfg.clusters_complete and cfg.endpoints_complete
    everything = load_envoy(write(tmp_path, f"all.{fmt}", istioctl("all", fmt, DEMO)))
    assert everything.inputs[0].form == "admin /config_dump" and shares(everything) == EXPECTED
    boot = load_envoy(write(tmp_path, f"bootstrap.{fmt}", istioctl("bootstrap", fmt, DEMO)))
    assert boot.inputs[0].form == "istioctl proxy-config bootstrap output"
    assert boot.node_id == DEMO["configs"][0]["bootstrap"]["node"]["id"]
    assert "over CDS" in boot.lacking("clusters")


@pytest.mark.parametrize("fmt", ["json", "yaml"])
def test_endpoint_form_is_the_admin_cluster_statuses(tmp_path: Path, fmt: str) -> None:
    admin = json.loads(ADMIN_CLUSTERS.read_text(encoding="utf-8"))
    cfg = load_envoy(write(tmp_path, f"endpoint.{fmt}", istioctl("endpoint", fmt, clusters=admin)))
    raw = load_envoy(str(ADMIN_CLUSTERS))
    assert cfg.inputs[0].form == "istioctl proxy-config endpoint output" and cfg.endpoints_complete
    assert not cfg.clusters_complete  # istioctl leaves out the clusters without hosts
    assert raw.clusters_complete  # the raw /clusters?format=json lists them all
    assert cfg.host_statuses == {k: v for k, v in raw.host_statuses.items() if v}


def test_real_bootstrap_output_is_accepted() -> None:
    """The golden ``istioctl proxy-config bootstrap -o json``: ``{"bootstrap": {"node": ...}}``."""
    cfg = load_envoy(str(REAL / "bootstrap-output.json"))
    assert cfg.inputs[0].form == "istioctl proxy-config bootstrap output"
    assert not cfg.listeners and not cfg.clusters
    _, res = envoy_dump_route(cfg, "a", 80)
    assert res.failure.startswith(f"no listeners in the input ({REAL / 'bootstrap-output.json'}: istioctl "
                                  "proxy-config bootstrap output")
    dump = load_envoy(str(REAL / "bootstrap-input-config_dump.json"))  # the dump istioctl printed it from
    assert dump.inputs[0].form == "admin /config_dump" and not dump.listeners


@pytest.mark.parametrize("name", ["eds-portfilter-output.json", "eds-portfilter-output.yaml"])
def test_real_eds_outputs(name: str) -> None:
    cfg = load_envoy(str(REAL / name))
    assert cfg.inputs[0].form == "istioctl proxy-config eds output"
    gw = cfg.assignments["outbound|80||istio-ingressgateway.istio-system.svc.cluster.local"]
    assert [(e.key, e.health, e.workload) for e in gw.endpoints] == [
        ("10.244.0.176:8080", "HEALTHY", "istio-ingressgateway")]
    assert gw.overprovisioning_factor == 140 and len(cfg.assignments) == 2


def test_real_json_and_yaml_eds_outputs_agree() -> None:
    a = load_envoy(str(REAL / "eds-portfilter-output.json"))
    b = load_envoy(str(REAL / "eds-portfilter-output.yaml"))
    strip = lambda cfg: {k: [(e.key, e.health, e.weight, e.labels) for e in v.endpoints]  # noqa: E731
                         for k, v in cfg.assignments.items()}
    assert strip(a) == strip(b)


def test_real_waypoint_dump() -> None:
    """``istioctl proxy-config all -o json`` prints the dump: static and dynamic clusters, EDS, a waypoint."""
    cfg = load_envoy(str(REAL / "waypoint-config_dump.json"))
    assert cfg.clusters_complete and cfg.endpoints_complete
    assert set(cfg.clusters) == {"agent", "prometheus_stats", "inbound-vip|8000|http|httpbin.default.svc.cluster.local"}
    assert "inbound-vip|8000|http|httpbin.default.svc.cluster.local" in cfg.route_configs


GATEWAY_LISTENER = json.dumps([{
    "name": "0.0.0.0_8080",
    "address": {"socketAddress": {"address": "0.0.0.0", "portValue": 8080}},
    "filterChains": [{"filters": [{
        "name": "envoy.filters.network.http_connection_manager",
        "typedConfig": {"@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3."
                                  "HttpConnectionManager",
                        "rds": {"configSource": {"ads": {}}, "routeConfigName": "http.8080"}}}]}],
}], indent=4)


def test_real_routes_only_dump_gives_cluster_unknown(tmp_path: Path) -> None:
    """A dump with route configurations only: the route's cluster is not known, not 503 NC."""
    dump = str(REAL / "gateway-routes-only-config_dump.json")
    cfg = load_envoy([write(tmp_path, "gw-listener.json", GATEWAY_LISTENER), dump])
    route, res = envoy_dump_route(cfg, "httpbin.example.com", 8080, path="/get")
    cluster = "outbound|8000||httpbin.default.svc.cluster.local"
    assert [b.name for b in route.backends()] == [f"cluster unknown (not in the input): {cluster}"]
    assert dict(route.backends()[0].labels) == {"outcome": "unknown"}
    (w,) = res.warnings
    assert f"{dump}: the config_dump has no ClustersConfigDump" in w and "gw-listener.json: istioctl proxy-config " \
        "listener output, 1 listener" in w and cluster in w and "not 503 NC" in w


def test_listener_and_route_outputs_alone(tmp_path: Path) -> None:
    files = [write(tmp_path, f"{c}.json", istioctl(c, "json", DEMO)) for c in ("listener", "route")]
    route, res = envoy_dump_route(load_envoy(files), **CALL)
    got = dict(zip((b.name for b in route.backends()), route.exact_shares(), strict=True))
    assert got == {f"cluster unknown (not in the input): {V1}": Fraction(9, 10),
                   f"cluster unknown (not in the input): {V2}": Fraction(1, 10)}
    (w,) = res.warnings
    assert all(f in w for f in files) and "istioctl proxy-config cluster POD -o json" in w
    # with the cluster output the clusters are known; without endpoints, their endpoints are not
    files.append(write(tmp_path, "cluster.json", istioctl("cluster", "json", DEMO)))
    route, res = envoy_dump_route(load_envoy(files), **CALL)
    assert [b.name for b in route.backends()] == [f"endpoints unknown (not in the input): {c}" for c in (V1, V2)]
    (w,) = res.warnings
    assert "does not hold the endpoints of EDS clusters" in w and "?include_eds" in w


def _dump_without(path: Path, tmp_path: Path, edit) -> str:  # noqa: ANN001
    d = copy.deepcopy(DEMO)
    edit(d)
    return write(tmp_path, path.name, json.dumps(d, indent=1))


def _drop_assignment(d: dict, name: str) -> None:
    """Envoy dumps the endpoints of its active clusters only (ClusterManagerImpl), so a cluster goes with them."""
    sec = _section(d, "EndpointsConfigDump")
    sec["dynamic_endpoint_configs"] = [x for x in sec["dynamic_endpoint_configs"]
                                       if x["endpoint_config"]["cluster_name"] != name]


def test_dump_without_dynamic_active_clusters(tmp_path: Path) -> None:
    def drop(d: dict) -> None:
        _section(d, "ClustersConfigDump").pop("dynamic_active_clusters")
        d["configs"].remove(_section(d, "EndpointsConfigDump"))

    f = _dump_without(DEMO_DUMP, tmp_path, drop)
    route, res = envoy_dump_route(load_envoy(f), **CALL)
    assert {b.name for b in route.backends()} == {f"cluster unknown (not in the input): {c}" for c in (V1, V2)}
    (w,) = res.warnings
    assert f"{f}: the config_dump's ClustersConfigDump has no dynamic_active_clusters" in w


def test_dump_without_clusters_but_with_their_endpoints(tmp_path: Path) -> None:
    """EDS of a cluster is dumped only while the cluster is active: Envoy has it, its lb_policy is assumed."""
    f = _dump_without(DEMO_DUMP, tmp_path, lambda d: _section(d, "ClustersConfigDump").pop("dynamic_active_clusters"))
    route, res = envoy_dump_route(load_envoy(f), **CALL)
    assert dict(zip((b.name for b in route.backends()), route.exact_shares(), strict=True)) == EXPECTED
    assert not res.warnings
    assert f"{V1}: lb_policy ROUND_ROBIN (the cluster is not in the input: assumed)" in " ".join(route.notes)


def test_whole_cluster_list_without_the_cluster_is_503_nc(tmp_path: Path) -> None:
    def drop_v2(d: dict) -> None:
        sec = _section(d, "ClustersConfigDump")
        sec["dynamic_active_clusters"] = [x for x in sec["dynamic_active_clusters"] if x["cluster"]["name"] != V2]
        _drop_assignment(d, V2)

    route, res = envoy_dump_route(load_envoy(_dump_without(DEMO_DUMP, tmp_path, drop_v2)), **CALL)
    assert route.backends()[-1].name == f"503 NC cluster not found ({V2})" and not res.warnings


def test_dump_without_eds(tmp_path: Path) -> None:
    f = _dump_without(DEMO_DUMP, tmp_path, lambda d: d["configs"].remove(_section(d, "EndpointsConfigDump")))
    route, res = envoy_dump_route(load_envoy(f), **CALL)
    assert {b.name for b in route.backends()} == {f"endpoints unknown (not in the input): {c}" for c in (V1, V2)}
    assert "taken without ?include_eds" in res.warnings[0]


def test_warming_and_rejected_states_are_named(tmp_path: Path) -> None:
    def warm_v2(d: dict) -> None:
        sec = _section(d, "ClustersConfigDump")
        (v2,) = [x for x in sec["dynamic_active_clusters"] if x["cluster"]["name"] == V2]
        sec["dynamic_active_clusters"].remove(v2)
        sec["dynamic_warming_clusters"] = [v2]
        _drop_assignment(d, V2)

    route, res = envoy_dump_route(load_envoy(_dump_without(DEMO_DUMP, tmp_path, warm_v2)), **CALL)
    assert route.backends()[-1].name == f"503 NC cluster still warming ({V2})" and not res.warnings

    def warm_listener(d: dict) -> None:
        for dl in _section(d, "ListenersConfigDump")["dynamic_listeners"]:
            if dl["name"] == "0.0.0.0_9999":
                dl["warming_state"] = dl.pop("active_state")

    cfg = load_envoy(_dump_without(DEMO_DUMP, tmp_path, warm_listener))
    route, res = envoy_dump_route(cfg, **CALL)
    assert [b.name for b in route.backends()] == ["PassthroughCluster (original destination 10.108.203.9:9999)"]
    assert ("listener 0.0.0.0_9999 on port 9999 is warming in the input: until it is active, Envoy keeps the "
            "connection on virtualOutbound") in res.notes
    cfg.listeners = [li for li in cfg.listeners if li["name"] != "virtualOutbound"]
    _, res = envoy_dump_route(cfg, **CALL)
    assert res.failure == ("listener 0.0.0.0_9999 on port 9999 is warming in the input: Envoy does not accept "
                           "connections on it (yet)")

    def reject_routes(d: dict) -> None:
        (rc,) = _section(d, "RoutesConfigDump")["dynamic_route_configs"]
        failed = rc.pop("route_config")
        rc["error_state"] = {"failed_configuration": failed, "details": "Unknown field in: {\"frob\": 1}"}

    _, res = envoy_dump_route(load_envoy(_dump_without(DEMO_DUMP, tmp_path, reject_routes)), **CALL)
    assert res.failure == ("RDS route configuration '9999' rejected by Envoy (Unknown field in: {\"frob\": 1}) in "
                           "the input")


@pytest.mark.parametrize(
    ("item", "kind"),
    [
        ({"name": "BlackHoleCluster", "observabilityName": "BlackHoleCluster"}, "status"),  # a host-less status
        ({"name": "15010", "validateClusters": False}, "route"),  # a route configuration without virtual hosts
        ({"name": "in", "address": {"socketAddress": {"address": "0.0.0.0", "portValue": 1}},
          "defaultFilterChain": {"filters": []}}, "listener"),  # no filter_chains, only a default chain
        ({"clusterName": "c"}, "assignment"),  # an assignment with no endpoints
        ({"name": "c", "type": "EDS"}, "cluster"),
    ],
)
def test_objects_with_few_fields_are_still_read(item: dict, kind: str) -> None:
    cfg = parse_envoy_text(json.dumps([item]), "x.json")
    assert cfg.inputs[0].counts == {kind: 1}


def test_secret_output_is_ignored_with_a_warning() -> None:
    cfg = parse_envoy_text(json.dumps({"dynamicActiveSecrets": [{"name": "default"}]}), "secret.json")
    assert cfg.warnings == ["secret.json: TLS secrets or extension configurations (istioctl proxy-config "
                            "secret/ecds output) do not decide where a call goes: the file is ignored"]


def test_scoped_routes_are_named_not_missing(tmp_path: Path) -> None:
    def scoped(d: dict) -> None:
        for dl in _section(d, "ListenersConfigDump")["dynamic_listeners"]:
            for fc in dl["active_state"]["listener"].get("filter_chains", []):
                for f in fc["filters"]:
                    tc = f.get("typed_config", {})
                    if "rds" in tc:
                        tc["scoped_routes"] = {"name": "scoped"}
                        del tc["rds"]

    _, res = envoy_dump_route(load_envoy(_dump_without(DEMO_DUMP, tmp_path, scoped)), **CALL)
    assert res.failure == "the http_connection_manager of 0.0.0.0_9999 has scoped_routes: its routes are not modelled"
