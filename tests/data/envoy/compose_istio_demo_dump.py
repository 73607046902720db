"""Compose the istio-demo Envoy test data (run once; the outputs are committed beside this file).

Writes, in Envoy's real formats (see README-istio-demo.md):

* ``istio-demo-front-tomcat-config_dump.json``: admin ``/config_dump?include_eds`` of the
  injected ``front-tomcat-v1`` sidecar (snake_case), and
* ``istio-demo-istioctl-{listener,route,cluster,endpoint}.json``: what
  ``istioctl proxy-config listener|route|cluster|endpoint <pod> -o json`` prints (camelCase arrays).

Usage: ``python tests/data/envoy/compose_istio_demo_dump.py``
"""

from __future__ import annotations

import json
import re
from pathlib import Path

HERE = Path(__file__).resolve().parent
NS = "istio-demo"
FQDN = f"bill-service.{NS}.svc.cluster.local"
PORT = 9999
CLUSTER_IP = "10.108.203.9"
PODS = {"v1": ("bill-service-v1-7bc6d7b575-tbgrs", "10.244.75.123"), "v2": ("bill-service-v2-6755bb6b6d-tkrzm", "10.244.75.113")}
CLIENT = ("front-tomcat-v1-57bc6c5d9f-sfn52", "10.244.75.112")
TS = "2026-11-26T03:08:41.512Z"
HCM = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
TCP = "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy"
ADS = {"ads": {}, "initial_fetch_timeout": "0s", "resource_api_version": "V3"}


def cluster_name(subset: str) -> str:
    return f"outbound|{PORT}|{subset}|{FQDN}"


def eds_cluster(subset: str) -> dict:
    name = cluster_name(subset)
    return {
        "@type": "type.googleapis.com/envoy.config.cluster.v3.Cluster",
        "name": name,
        "type": "EDS",
        "eds_cluster_config": {"eds_config": ADS, "service_name": name},
        "connect_timeout": "10s",
        "lb_policy": "LEAST_REQUEST",
        "circuit_breakers": {
            "thresholds": [
                {"max_connections": 4294967295, "max_pending_requests": 4294967295, "max_requests": 4294967295,
                 "max_retries": 4294967295, "track_remaining": True}
            ]
        },
        "metadata": {
            "filter_metadata": {
                "istio": {
                    "services": [{"host": FQDN, "name": "bill-service", "namespace": NS}],
                    **({"subset": subset} if subset else {}),
                    "default_original_port": PORT,
                }
            }
        },
        "filters": [{"name": "istio.metadata_exchange",
                     "typed_config": {"@type": "type.googleapis.com/envoy.tcp.metadataexchange.config.MetadataExchange",
                                      "protocol": "istio-peer-exchange"}}],
    }


def lb_endpoint(version: str) -> dict:
    pod, ip = PODS[version]
    return {
        "endpoint": {"address": {"socket_address": {"address": ip, "port_value": 80}}, "health_check_config": {}},
        "health_status": "HEALTHY",
        "metadata": {
            "filter_metadata": {
                "envoy.transport_socket_match": {"tlsMode": "istio"},
                "istio": {"workload": f"bill-service-{version};{NS};bill-service;{version};Kubernetes"},
            }
        },
        "load_balancing_weight": 1,
    }


def assignment(subset: str, versions: list[str]) -> dict:
    return {
        "@type": "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment",
        "cluster_name": cluster_name(subset),
        "endpoints": [{"locality": {}, "lb_endpoints": [lb_endpoint(v) for v in versions],
                       "load_balancing_weight": len(versions)}],
        "policy": {"overprovisioning_factor": 140},
    }


def route_config() -> dict:
    domains = []
    for h in (FQDN, "bill-service", f"bill-service.{NS}.svc.cluster", f"bill-service.{NS}.svc", f"bill-service.{NS}",
              CLUSTER_IP):
        domains += [h, f"{h}:{PORT}"]
    return {
        "@type": "type.googleapis.com/envoy.config.route.v3.RouteConfiguration",
        "name": str(PORT),
        "virtual_hosts": [
            {
                "name": "allow_any",
                "domains": ["*"],
                "routes": [{"name": "allow_any", "match": {"prefix": "/"},
                            "route": {"cluster": "PassthroughCluster", "timeout": "0s", "max_grpc_timeout": "0s"}}],
                "include_request_attempt_count": True,
            },
            {
                "name": f"{FQDN}:{PORT}",
                "domains": domains,
                "routes": [
                    {
                        "name": "bill-service-route",
                        "match": {"prefix": "/"},
                        "route": {
                            "weighted_clusters": {"clusters": [{"name": cluster_name("v1"), "weight": 90},
                                                               {"name": cluster_name("v2"), "weight": 10}]},
                            "timeout": "0s",
                            "retry_policy": {
                                "retry_on": "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes",
                                "num_retries": 2,
                                "retry_host_predicate": [{"name": "envoy.retry_host_predicates.previous_hosts",
                                                          "typed_config": {"@type": "type.googleapis.com/envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate"}}],
                                "host_selection_retry_max_attempts": "5",
                                "retriable_status_codes": [503],
                            },
                            "max_grpc_timeout": "0s",
                        },
                        "metadata": {"filter_metadata": {"istio": {
                            "config": f"/apis/networking.istio.io/v1alpha3/namespaces/{NS}/virtual-service/vs-bill-service"}}},
                        "decorator": {"operation": f"{FQDN}:{PORT}/*"},
                    }
                ],
                "include_request_attempt_count": True,
            },
        ],
        "validate_clusters": False,
        "max_direct_response_body_size_bytes": 1048576,
    }


def listeners() -> list[dict]:
    outbound_http = {
        "@type": "type.googleapis.com/envoy.config.listener.v3.Listener",
        "name": f"0.0.0.0_{PORT}",
        "address": {"socket_address": {"address": "0.0.0.0", "port_value": PORT}},
        "filter_chains": [
            {
                "filter_chain_match": {"application_protocols": ["http/1.1", "h2c", "http/1.0"]},
                "filters": [{
                    "name": "envoy.filters.network.http_connection_manager",
                    "typed_config": {
                        "@type": HCM,
                        "stat_prefix": f"outbound_0.0.0.0_{PORT}",
                        "rds": {"config_source": ADS, "route_config_name": str(PORT)},
                        "http_filters": [{"name": "envoy.filters.http.router",
                                          "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}],
                        "tracing": {"client_sampling": {"value": 100}, "random_sampling": {"value": 1},
                                    "overall_sampling": {"value": 100}},
                        "stream_idle_timeout": "0s",
                        "use_remote_address": False,
                        "upgrade_configs": [{"upgrade_type": "websocket"}],
                        "normalize_path": True,
                        "path_with_escaped_slashes_action": "KEEP_UNCHANGED",
                        "request_id_extension": {"typed_config": {"@type": "type.googleapis.com/envoy.extensions.request_id.uuid.v3.UuidRequestIdConfig", "use_request_id_for_trace_sampling": True}},
                    },
                }],
            },
            {
                "filter_chain_match": {},
                "filters": [{
                    "name": "envoy.filters.network.tcp_proxy",
                    "typed_config": {"@type": TCP, "stat_prefix": cluster_name(""), "cluster": cluster_name("")},
                }],
            },
        ],
        "listener_filters": [
            {"name": "envoy.filters.listener.tls_inspector",
             "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector"}},
            {"name": "envoy.filters.listener.http_inspector",
             "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.listener.http_inspector.v3.HttpInspector"}},
        ],
        "listener_filters_timeout": "0s",
        "continue_on_listener_filters_timeout": True,
        "traffic_direction": "OUTBOUND",
        "bind_to_port": False,
    }
    virtual_outbound = {
        "@type": "type.googleapis.com/envoy.config.listener.v3.Listener",
        "name": "virtualOutbound",
        "address": {"socket_address": {"address": "0.0.0.0", "port_value": 15001}},
        "filter_chains": [
            {"filter_chain_match": {"destination_port": 15001},
             "filters": [{"name": "envoy.filters.network.tcp_proxy",
                          "typed_config": {"@type": TCP, "stat_prefix": "BlackHoleCluster", "cluster": "BlackHoleCluster"}}],
             "name": "virtualOutbound-blackhole"},
            {"filters": [{"name": "envoy.filters.network.tcp_proxy",
                          "typed_config": {"@type": TCP, "stat_prefix": "PassthroughCluster", "cluster": "PassthroughCluster"}}],
             "name": "virtualOutbound-catchall-tcp"},
        ],
        "use_original_dst": True,
        "traffic_direction": "OUTBOUND",
    }
    return [virtual_outbound, outbound_http]


def static_cluster(name: str, ctype: str, **extra: object) -> dict:
    return {"@type": "type.googleapis.com/envoy.config.cluster.v3.Cluster", "name": name, "type": ctype,
            "connect_timeout": "10s", **extra}


def config_dump() -> dict:
    dyn_clusters = [
        static_cluster("BlackHoleCluster", "STATIC"),
        static_cluster("PassthroughCluster", "ORIGINAL_DST", lb_policy="CLUSTER_PROVIDED",
                       circuit_breakers={"thresholds": [{"max_connections": 4294967295}]}),
        eds_cluster(""),
        eds_cluster("v1"),
        eds_cluster("v2"),
    ]
    return {
        "configs": [
            {
                "@type": "type.googleapis.com/envoy.admin.v3.BootstrapConfigDump",
                "bootstrap": {
                    "node": {
                        "id": f"sidecar~{CLIENT[1]}~{CLIENT[0]}.{NS}~{NS}.svc.cluster.local",
                        "cluster": f"front-tomcat.{NS}",
                        "metadata": {"NAMESPACE": NS, "NAME": CLIENT[0], "INTERCEPTION_MODE": "REDIRECT",
                                     "LABELS": {"app": "front-tomcat", "version": "v1"}},
                        "user_agent_name": "envoy",
                    },
                    "static_resources": {"clusters": [
                        static_cluster("prometheus_stats", "STATIC", load_assignment={
                            "cluster_name": "prometheus_stats",
                            "endpoints": [{"lb_endpoints": [{"endpoint": {"address": {"socket_address": {
                                "address": "127.0.0.1", "port_value": 15000}}}}]}]}),
                    ]},
                    "dynamic_resources": {"lds_config": ADS, "cds_config": ADS,
                                          "ads_config": {"api_type": "GRPC", "transport_api_version": "V3"}},
                },
                "last_updated": TS,
            },
            {
                "@type": "type.googleapis.com/envoy.admin.v3.ClustersConfigDump",
                "version_info": "2026-11-26T03:08:40Z/12",
                "dynamic_active_clusters": [
                    {"version_info": "2026-11-26T03:08:40Z/12", "cluster": c, "last_updated": TS} for c in dyn_clusters
                ],
            },
            {
                "@type": "type.googleapis.com/envoy.admin.v3.ListenersConfigDump",
                "version_info": "2026-11-26T03:08:40Z/12",
                "dynamic_listeners": [
                    {"name": li["name"], "active_state": {"version_info": "2026-11-26T03:08:40Z/12", "listener": li,
                                                          "last_updated": TS}}
                    for li in listeners()
                ],
            },
            {
                "@type": "type.googleapis.com/envoy.admin.v3.RoutesConfigDump",
                "dynamic_route_configs": [
                    {"version_info": "2026-11-26T03:08:40Z/12", "route_config": route_config(), "last_updated": TS}
                ],
            },
            {
                "@type": "type.googleapis.com/envoy.admin.v3.EndpointsConfigDump",
                "dynamic_endpoint_configs": [
                    {"endpoint_config": assignment("", ["v1", "v2"])},
                    {"endpoint_config": assignment("v1", ["v1"])},
                    {"endpoint_config": assignment("v2", ["v2"])},
                ],
            },
        ]
    }


def camel(obj: object) -> object:
    if isinstance(obj, dict):
        return {
            (re.sub(r"_([a-z0-9])", lambda m: m.group(1).upper(), k) if re.fullmatch(r"[a-z][a-z0-9_]*", k) else k):
            camel(v)
            for k, v in obj.items()
        }
    if isinstance(obj, list):
        return [camel(v) for v in obj]
    return obj


def host_statuses(subset: str, versions: list[str]) -> dict:
    return {
        "name": cluster_name(subset),
        "addedViaApi": True,
        "hostStatuses": [
            {
                "address": {"socketAddress": {"address": PODS[v][1], "portValue": 80}},
                "stats": [{"name": "cx_connect_fail"}, {"name": "cx_total"}, {"name": "rq_error"},
                          {"name": "rq_success"}, {"name": "rq_timeout"}, {"name": "rq_total"},
                          {"type": "GAUGE", "name": "cx_active"}, {"type": "GAUGE", "name": "rq_active"}],
                "healthStatus": {"edsHealthStatus": "HEALTHY"},
                "weight": 1,
                "locality": {},
            }
            for v in versions
        ],
        "circuitBreakers": {"thresholds": [{"maxConnections": 4294967295, "maxPendingRequests": 4294967295,
                                            "maxRequests": 4294967295, "maxRetries": 4294967295}]},
        "observabilityName": cluster_name(subset),
        "edsServiceName": cluster_name(subset),
    }


def main() -> None:
    dump = config_dump()
    (HERE / "istio-demo-front-tomcat-config_dump.json").write_text(json.dumps(dump, indent=2) + "\n")
    clusters = [x["cluster"] for x in dump["configs"][1]["dynamic_active_clusters"]]
    out = {
        "listener": [camel(li) for li in listeners()],
        "route": [camel(route_config())],
        "cluster": [camel(c) for c in clusters if c["name"].startswith("outbound|") or c["name"] == "PassthroughCluster"],
        "endpoint": [host_statuses("", ["v1", "v2"]), host_statuses("v1", ["v1"]), host_statuses("v2", ["v2"])],
    }
    for k, v in out.items():
        (HERE / f"istio-demo-istioctl-{k}.json").write_text(json.dumps(v, indent=2) + "\n")


if __name__ == "__main__":
    main()
