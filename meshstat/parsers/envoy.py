"""Envoy configuration: admin ``/config_dump``, ``istioctl proxy-config ... -o json``, bootstraps, ``/clusters``.

Accepted inputs (one or several files, merged):

* the admin ``GET /config_dump`` (optionally ``?include_eds``) JSON: a ``{"configs": [...]}``
  object with ``BootstrapConfigDump`` (its ``static_resources``), ``ListenersConfigDump``
  (static and dynamic, active state), ``RoutesConfigDump``, ``ClustersConfigDump`` and
  ``EndpointsConfigDump`` entries (``envoy/admin/v3/config_dump_shared.proto``);
* the output of ``istioctl proxy-config listener|route|cluster|endpoint|eds <pod> -o json|yaml``:
  an array of ``Listener``, ``RouteConfiguration``, ``Cluster``, admin ``ClusterStatus`` or
  ``ClusterLoadAssignment`` objects, in protojson camelCase (``filterChains``, ``virtualHosts``,
  ``weightedClusters``, ``hostStatuses``); keys are converted to Envoy's snake_case on load;
  ``istioctl proxy-config all -o json|yaml`` is the config_dump itself;
* an Envoy bootstrap (YAML or JSON), or ``istioctl proxy-config bootstrap -o json|yaml``
  (``{"bootstrap": {...}}``, the admin ``BootstrapConfigDump``);
* the admin ``GET /clusters?format=json`` (``cluster_statuses``: per-host health flags,
  weights, priorities, localities and counters, which arrive as JSON strings and are omitted
  when zero).

Each file's form, and whether it holds every cluster and every EDS endpoint, is recorded
(:mod:`meshstat.parsers.envoy_inputs`), so that resolution can tell "not in Envoy" (503 NC) from
"not in the input". Dynamic resources that are present but not serving (a warming, draining or
rejected listener, a warming cluster, a rejected route configuration) are kept apart with their
state rather than read as active or dropped.

For zone-aware routing the bootstrap's ``node.locality`` and ``cluster_manager.local_cluster_name``
(:attr:`EnvoyConfig.node_locality`, :attr:`EnvoyConfig.local_cluster_name`) and each cluster's
``common_lb_config.zone_aware_lb_config`` (:class:`ZoneAwareLbConfig`, Envoy's defaults when absent)
are read, each field shape-checked like the others.

:func:`meshstat.mesh.resolve_call` follows an outbound call through these structures the way
Envoy does; :mod:`meshstat.mesh` turns it into a :class:`meshstat.model.Route`.

This module is pure Python (standard library; PyYAML only for YAML bootstraps).

Why this module is long: the shape checks (the schema every accepted Envoy object is checked
against before it is read, with the file and line of what does not fit) belong with the readers
that rely on them.
"""

from __future__ import annotations

import ipaddress
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from meshstat.errors import ConfigParseError, InvalidArgument
from meshstat.inputs import read_text, source_name
from meshstat.parsers.envoy_inputs import ISTIOCTL_FORM, InputInventory, classify_item, lacking
from meshstat.parsers.json_text import read_json
from meshstat.parsers.regex import re2_syntax_error
from meshstat.parsers.yaml_loader import yaml_documents

__all__ = [
    "DEFAULT_OVERPROVISIONING",
    "DEFAULT_PANIC_THRESHOLD",
    "HTTP_CONNECTION_MANAGER",
    "TCP_PROXY",
    "Cluster",
    "Endpoint",
    "EnvoyConfig",
    "LoadAssignment",
    "filter_chains",
    "load_envoy",
    "parse_envoy_text",
    "snake_keys",
    "socket_address",
    "type_of",
    "ZoneAwareLbConfig",
]

_CAMEL = re.compile(r"^[a-z][a-zA-Z0-9]*$")
_CAMEL_SPLIT = re.compile(r"(?<=[a-z0-9])([A-Z])")

HTTP_CONNECTION_MANAGER = "envoy.filters.network.http_connection_manager"
TCP_PROXY = "envoy.filters.network.tcp_proxy"
DEFAULT_OVERPROVISIONING = 140
DEFAULT_PANIC_THRESHOLD = 50.0


# --------------------------------------------------------------------------- data


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One upstream host of a cluster (``LbEndpoint`` plus its locality and priority).

    Attributes
    ----------
    address : str
        IP (or DNS name for STRICT_DNS clusters).
    port : int or None
        Port.
    health : {"HEALTHY", "DEGRADED", "UNHEALTHY"}
        Envoy's coarse health: EDS ``UNKNOWN``/``HEALTHY`` are healthy; ``DEGRADED`` degraded;
        ``UNHEALTHY``, ``DRAINING``, ``TIMEOUT`` or a failed active/outlier check unhealthy.
    weight : int
        ``load_balancing_weight`` (default 1).
    priority : int
        Priority of its ``LocalityLbEndpoints`` (default 0).
    locality : tuple of (str, str)
        ``region``/``zone``/``sub_zone``.
    locality_weight : int or None
        The locality's ``load_balancing_weight``.
    labels : tuple of (str, str)
        From Istio metadata (``filter_metadata.istio.workload`` =
        ``name;namespace;canonical-name;canonical-revision;cluster``): ``app`` and ``version``.
    workload : str or None
        The Istio workload name (``bill-service-v1``), if present.
    """

    address: str
    port: int | None
    health: str = "HEALTHY"
    weight: int = 1
    priority: int = 0
    locality: tuple[tuple[str, str], ...] = ()
    locality_weight: int | None = None
    hostname: str | None = None
    labels: tuple[tuple[str, str], ...] = ()
    workload: str | None = None
    raw_health: str = "UNKNOWN"
    namespace: str | None = None

    @property
    def key(self) -> str:
        """``"ip:port"``."""
        return self.address if self.port is None else f"{self.address}:{self.port}"


@dataclass(frozen=True, slots=True)
class LoadAssignment:
    """A ``ClusterLoadAssignment``: endpoints by locality and priority."""

    cluster_name: str
    endpoints: tuple[Endpoint, ...]
    overprovisioning_factor: int = DEFAULT_OVERPROVISIONING
    source: str | None = None
    line: int | None = None


@dataclass(frozen=True, slots=True)
class ZoneAwareLbConfig:
    """``common_lb_config.zone_aware_lb_config`` with Envoy's defaults (used only with a local cluster).

    ``routing_enabled`` is the percentage of requests that are routed zone-aware (default 100),
    ``min_cluster_size`` the fewest healthy upstream hosts for it (default 6),
    ``force_direct`` ``force_locality_direct_routing``.
    """

    routing_enabled: float = 100.0
    min_cluster_size: int = 6
    force_direct: bool = False


@dataclass(frozen=True, slots=True)
class Cluster:
    """The parts of an Envoy ``Cluster`` that decide where traffic goes."""

    name: str
    type: str
    lb_policy: str
    eds_service_name: str | None
    load_assignment: LoadAssignment | None
    panic_threshold: float
    locality_weighted: bool
    source: str | None = None
    line: int | None = None
    lb_policy_explicit: bool = True
    zone_aware: ZoneAwareLbConfig = ZoneAwareLbConfig()


@dataclass
class EnvoyConfig:
    """Listeners, route configurations, clusters and endpoints from one or more files."""

    listeners: list[dict[str, Any]] = field(default_factory=list)
    route_configs: dict[str, dict[str, Any]] = field(default_factory=dict)
    clusters: dict[str, Cluster] = field(default_factory=dict)
    assignments: dict[str, LoadAssignment] = field(default_factory=dict)
    host_statuses: dict[str, list[Endpoint]] = field(default_factory=dict)
    counters: dict[str, dict[str, dict[str, int]]] = field(default_factory=dict)
    node_id: str | None = None
    #: ``node.locality`` of the Envoy (sorted ``region``/``sub_zone``/``zone`` pairs), when the input says
    node_locality: tuple[tuple[str, str], ...] | None = None
    #: ``cluster_manager.local_cluster_name``: the cluster of the Envoys like this one (zone-aware routing)
    local_cluster_name: str | None = None
    sources: list[str] = field(default_factory=list)
    lines: dict[tuple[str, str], tuple[str, int | None]] = field(default_factory=dict)
    inputs: list[InputInventory] = field(default_factory=list)
    inactive: dict[tuple[str, str], str] = field(default_factory=dict)
    inactive_listeners: list[tuple[dict[str, Any], str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def clusters_complete(self) -> bool:
        """Whether some input holds every cluster Envoy has (see :mod:`meshstat.parsers.envoy_inputs`)."""
        return any("clusters" in inv.complete for inv in self.inputs)

    @property
    def endpoints_complete(self) -> bool:
        """Whether some input holds the endpoints of every EDS cluster (``?include_eds``, endpoint/eds output)."""
        return any("endpoints" in inv.complete for inv in self.inputs)

    def lacking(self, what: str) -> str:
        """Why the input holds no whole list of ``what`` (``"clusters"``, ``"endpoints"``), file by file."""
        return lacking(self.inputs, what)

    def has_endpoints_for(self, cluster_name: str) -> bool:
        """Whether the input holds endpoints (or their absence, for a whole list) for the named cluster."""
        cl = self.clusters.get(cluster_name)
        if cl is not None and cl.type != "EDS":
            return True
        key = (cl.eds_service_name or cl.name) if cl is not None else cluster_name
        return key in self.assignments or cluster_name in self.host_statuses or self.endpoints_complete

    def where(self, kind: str, name: str) -> str:
        """``file:line`` of a named listener/route/cluster (first occurrence of its name)."""
        src, line = self.lines.get((kind, name), (None, None))
        if src is None:
            return "?"
        return src if line is None else f"{src}:{line}"

    def endpoints_of(self, cluster_name: str) -> tuple[list[Endpoint], int, str]:
        """Endpoints of a cluster, its overprovisioning factor, and where they came from.

        EDS clusters read the ``EndpointsConfigDump`` entry named by
        ``eds_cluster_config.service_name`` (else the cluster name); static clusters their
        ``load_assignment``. Health flags from ``/clusters`` (or ``istioctl proxy-config
        endpoint``) override the EDS health of the same address.
        """
        cl = self.clusters.get(cluster_name)
        cla: LoadAssignment | None = None
        origin = "none"
        if cl is not None and cl.type == "EDS":
            cla = self.assignments.get(cl.eds_service_name or cl.name)
            origin = "EDS"
        elif cluster_name in self.assignments:
            # the EndpointsConfigDump entry of a static cluster carries live health
            cla = self.assignments[cluster_name]
            origin = "EndpointsConfigDump"
        elif cl is not None and cl.load_assignment is not None:
            cla = cl.load_assignment
            origin = "load_assignment"
        eps = list(cla.endpoints) if cla is not None else []
        factor = cla.overprovisioning_factor if cla is not None else DEFAULT_OVERPROVISIONING
        statuses = self.host_statuses.get(cluster_name)
        if statuses:
            if not eps:
                return list(statuses), factor, "host statuses"
            by_key = {s.key: s for s in statuses}
            merged = []
            for e in eps:
                s = by_key.get(e.key)
                if s is not None and s.health != e.health:
                    e = _replace(e, health=s.health, raw_health=s.raw_health)
                merged.append(e)
            eps = merged
            origin += " + host statuses"
        return eps, factor, origin


def _replace(e: Endpoint, **kw: Any) -> Endpoint:
    from dataclasses import replace

    return replace(e, **kw)


# --------------------------------------------------------------------------- loading


def snake_keys(obj: Any) -> Any:
    """Convert protojson camelCase keys (``filterChains``) to snake_case, recursively.

    Keys that are not lowerCamel identifiers (``@type``, metadata namespaces such as
    ``envoy.lb``, header names) are kept as they are.
    """
    if isinstance(obj, dict):
        out = {}
        for k, v in obj.items():
            nk = _CAMEL_SPLIT.sub(lambda m: "_" + m.group(1).lower(), k) if isinstance(k, str) and _CAMEL.match(k) else k
            out[nk] = snake_keys(v)
        return out
    if isinstance(obj, list):
        return [snake_keys(v) for v in obj]
    return obj


def _parse_yaml(text: str, source: str) -> Any:
    docs = [d for d in yaml_documents(text, source) if d is not None]
    if len(docs) != 1:
        raise ConfigParseError(f"expected one Envoy bootstrap document, found {len(docs)}", source=source)
    return _plain(docs[0])


def _plain(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_plain(v) for v in obj]
    return obj


class _Lines:
    """Line numbers of names in the raw text (first occurrence after the given offset)."""

    def __init__(self, text: str, source: str) -> None:
        self.text = text
        self.source = source
        self._starts: list[int] | None = None

    def line_of(self, needle: str) -> int | None:
        for cand in (json.dumps(needle), needle):
            pos = self.text.find(cand)
            if pos >= 0:
                return self.text.count("\n", 0, pos) + 1
        return None

    def line_of_value(self, key: str, value: Any, near: str | None) -> int | None:
        """Line of ``key: value`` (JSON or YAML, snake or camel case key) after ``near``, else of ``near``."""
        start = 0
        if near:
            for cand in (json.dumps(near), near):
                pos = self.text.find(cand)
                if pos >= 0:
                    start = pos
                    break
        camel = re.sub(r"_([a-z])", lambda m: m.group(1).upper(), key)
        keys = "|".join(re.escape(k) for k in dict.fromkeys((key, camel)))
        if isinstance(value, bool | int | float | str) or value is None:
            shown = value if isinstance(value, str) else json.dumps(value)
            escaped = json.dumps(shown)[1:-1] if isinstance(shown, str) else str(shown)
            forms = dict.fromkeys((str(shown), escaped))  # as written, and JSON-escaped (backslashes doubled)
            val = r"\s*[\"']?(?:" + "|".join(re.escape(f) for f in forms) + ")"
        else:
            val = ""
        m = re.compile(rf"[\"']?(?:{keys})[\"']?\s*:{val}").search(self.text, start)
        if m is not None:
            return self.text.count("\n", 0, m.start()) + 1
        return self.line_of(near) if near else None


# --------------------------------------------------------------------------- shape checks
#
# Listeners and route configurations are kept as parsed JSON and walked when a call is
# resolved; clusters and endpoints are converted when they are read. Before either, the
# parts meshstat reads are checked against the small schemas below: a dict is an object
# whose listed keys are checked (other keys are ignored; null stands for an absent object
# or list and is replaced by an empty one), a one-item list is a list of such items, and a
# function checks a scalar. A value of another type, or a number Envoy itself refuses (a
# weight that is negative, fractional, NaN or over 2^32-1; weights of weighted clusters
# summing to 0 or over 2^32-1), is a ConfigParseError naming the path to the value and the
# line where it is found (else the line of the named listener, route or cluster). Another
# Envoy or istioctl version's JSON is therefore refused with a message, never a traceback.

_UINT32_MAX = 2**32 - 1


class _Bad(Exception):
    """A value that fails a shape check: where (path), what was expected, and the value."""

    def __init__(self, path: str, expected: str, value: Any, got: str | None = None) -> None:
        super().__init__(path)
        self.path = path
        self.expected = expected
        self.value = value
        self.got = got


def _kind(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return f"the boolean {str(v).lower()}"
    if isinstance(v, int | float):
        return f"the number {v}" if len(str(v)) <= 30 else "a number of more than 30 digits"
    if isinstance(v, str):
        return f"the string {v!r}" if len(v) <= 40 else "a string"
    return "a list" if isinstance(v, list) else "an object"


def _uint(lo: int = 0, hi: int = _UINT32_MAX) -> Any:
    """Check an unsigned integer field (protojson: a number or a decimal string; ``{"value": n}``)."""
    expected = f"an integer in [{lo}, {hi}]"

    def check(v: Any, path: str) -> None:
        if isinstance(v, dict) and set(v) <= {"value"}:
            v = v.get("value")
        if v is None:
            return
        if isinstance(v, bool):
            raise _Bad(path, expected, v)
        if isinstance(v, float):
            if not (math.isfinite(v) and v.is_integer()):
                raise _Bad(path, expected, v)
            n = int(v)
        elif isinstance(v, int):
            n = v
        elif isinstance(v, str) and len(v) <= 30 and re.fullmatch(r"\s*[+-]?\d+\s*", v):
            n = int(v)
        else:
            raise _Bad(path, expected, v)
        if not lo <= n <= hi:
            raise _Bad(path, expected, v)

    return check


def _int64(v: Any, path: str) -> None:
    _uint(-(2**63), 2**63 - 1)(v, path)


def _percent(v: Any, path: str) -> None:
    if isinstance(v, dict):
        v = v.get("value")
    if v is None:
        return
    try:
        x = float(v) if isinstance(v, int | float | str) and not isinstance(v, bool) else math.nan
    except (ValueError, OverflowError):
        x = math.nan
    if not 0 <= x <= 100:
        raise _Bad(path, "a percentage in [0, 100]", v)


def _text(v: Any, path: str) -> None:
    if v is not None and not isinstance(v, str):
        raise _Bad(path, "a string", v)


def _flag(v: Any, path: str) -> None:
    if v is not None and not isinstance(v, bool):
        raise _Bad(path, "true or false", v)


def _regex(v: Any, path: str) -> None:
    """A ``safe_regex`` pattern: Envoy compiles it with RE2 and refuses the config if RE2 does."""
    _text(v, path)
    if isinstance(v, str):
        err = re2_syntax_error(v)
        if err is not None:
            shown = repr(v) if len(v) <= 60 else repr(v[:57] + "...")
            raise _Bad(path, "a regular expression in RE2 syntax (Envoy's regex engine)", v,
                       f"{shown}: {err}")


def _any(v: Any, path: str) -> None:
    return None


def _scalar(v: Any, path: str) -> None:
    if isinstance(v, dict | list):
        raise _Bad(path, "a string or number", v)


def _prefix_range(v: Any, path: str) -> None:
    _walk(v, {"address_prefix": _scalar, "prefix_len": _uint(0, 128)}, path)
    if isinstance(v, dict):
        plen = v.get("prefix_len")
        plen = plen.get("value") if isinstance(plen, dict) else plen
        try:
            bits = _uint_value(plen, 32)
            ipaddress.ip_network(f"{v.get('address_prefix')}/{bits}", strict=False)
        except ValueError:
            raise _Bad(path, "an address_prefix and prefix_len Envoy accepts", v) from None


def _uint_value(w: Any, default: int) -> int:
    """The integer of a field that passed :func:`_uint`."""
    w = w.get("value") if isinstance(w, dict) else w
    if w is None:
        return default
    return int(w) if isinstance(w, int | str) else int(float(w))


def _percent_value(v: Any, default: float) -> float:
    """The number of a field that passed :func:`_percent` (``{"value": x}`` or ``x``)."""
    v = v.get("value") if isinstance(v, dict) else v
    return default if v is None else float(v)


def _weights_sum(key: str) -> Any:
    """Envoy's sums: weighted clusters (``key="clusters"``) or one locality's ``lb_endpoints``."""

    def check(v: Any, path: str) -> None:
        if not isinstance(v, dict):
            return
        items = v.get(key) or []
        if key == "clusters":
            ws = [_uint_value(c.get("weight"), 0) for c in items]
            if not ws or sum(ws) == 0:
                raise _Bad(f"{path}.clusters" if path else "clusters",
                           "weights summing to more than 0 (Envoy refuses the route)", ws,
                           f"a sum of {sum(ws)}")
        else:
            ws = [_uint_value(e.get("load_balancing_weight"), 1) or 1 for e in items]
        if sum(ws) > _UINT32_MAX:
            raise _Bad(f"{path}.{key}" if path else key,
                       f"weights summing to at most {_UINT32_MAX} (Envoy refuses them)", ws,
                       f"a sum of {sum(ws)}")

    return check


def _all(*checks: Any) -> Any:
    def check(v: Any, path: str) -> None:
        for c in checks:
            if callable(c):
                c(v, path)
            else:
                _walk(v, c, path)

    return check


def _walk(v: Any, schema: Any, path: str) -> None:
    """Check ``v`` against ``schema`` (see the notes above); raise :class:`_Bad` at the first misfit."""
    if callable(schema):
        schema(v, path)
    elif isinstance(schema, dict):
        if not isinstance(v, dict):
            raise _Bad(path, "an object", v)
        for key, sub in schema.items():
            if key not in v:
                continue
            child = v[key]
            where = f"{path}.{key}" if path else key
            if child is None and not callable(sub):
                v[key] = {} if isinstance(sub, dict) else []
                continue
            _walk(child, sub, where)
    else:  # [item schema]
        if not isinstance(v, list):
            raise _Bad(path, "a list", v)
        for i, item in enumerate(v):
            _walk(item, schema[0], f"{path}[{i}]")


def _check(obj: Any, schema: Any, what: str, source: str, lines: _Lines | None, near: str | None) -> None:
    """:func:`_walk`, turning a misfit into a ConfigParseError about ``what`` with its line."""
    try:
        _walk(obj, schema, "")
    except _Bad as bad:
        key = re.sub(r"\[\d+\]$", "", bad.path.rsplit(".", 1)[-1]) if bad.path else ""
        line = lines.line_of_value(key, bad.value, near) if lines is not None and key else None
        if line is None and lines is not None and near:
            line = lines.line_of(near)
        where = f"{what}: {bad.path}" if bad.path else what
        raise ConfigParseError(
            f"{where}: expected {bad.expected}, got {bad.got or _kind(bad.value)}", source=source, line=line
        ) from None


_ADDRESS = {"socket_address": {"address": _scalar, "port_value": _uint(0, 65535)}, "pipe": _any}
_STRING_MATCHER = {"safe_regex": {"regex": _regex}}
_HEADER_MATCHER = {
    "name": _scalar,
    "safe_regex_match": {"regex": _regex},
    "string_match": _STRING_MATCHER,
    "range_match": {"start": _int64, "end": _int64},
}
_ROUTE_MATCH = {
    "safe_regex": {"regex": _regex},
    "headers": [_HEADER_MATCHER],
    "query_parameters": [{"name": _scalar, "string_match": _STRING_MATCHER}],
    "runtime_fraction": {"default_value": {"numerator": _uint(), "denominator": _scalar}},
}
_WEIGHTED_CLUSTERS = _all({"clusters": [{"name": _scalar, "weight": _uint()}]}, _weights_sum("clusters"))
_ROUTE = {
    "match": _ROUTE_MATCH,
    "route": {"weighted_clusters": _WEIGHTED_CLUSTERS, "cluster": _scalar},
    "direct_response": {"status": _uint(0, 999)},
}
_ROUTE_CONFIG = {"virtual_hosts": [{"domains": [_scalar], "routes": [_ROUTE]}]}
_FILTER_CHAIN = {
    "filter_chain_match": {
        "destination_port": _uint(0, 65535),
        "prefix_ranges": [_prefix_range],
        "application_protocols": [_scalar],
        "transport_protocol": _scalar,
    },
    "filters": [
        {"typed_config": {"route_config": _ROUTE_CONFIG, "rds": {}, "weighted_clusters": _WEIGHTED_CLUSTERS}}
    ],
}
_LISTENER = {"address": _ADDRESS, "filter_chains": [_FILTER_CHAIN], "default_filter_chain": _FILTER_CHAIN}
_LB_ENDPOINT = {
    "endpoint": {"address": _ADDRESS, "hostname": _text},
    "metadata": {"filter_metadata": {"istio": {}}},
    "load_balancing_weight": _uint(),  # 0: unset (as dumps print it), read as Envoy's default 1
}
_LOAD_ASSIGNMENT = {
    "cluster_name": _scalar,
    "endpoints": [
        _all(
            {"locality": {}, "load_balancing_weight": _uint(), "priority": _uint(0, 128),
             "lb_endpoints": [_LB_ENDPOINT]},
            _weights_sum("lb_endpoints"),
        )
    ],
    "policy": {"overprovisioning_factor": _uint()},
}
_CLUSTER = {
    "cluster_type": {"name": _scalar},
    "load_balancing_policy": {"policies": [{"typed_extension_config": {"name": _text}}]},
    "common_lb_config": {
        "healthy_panic_threshold": _percent,
        "zone_aware_lb_config": {"routing_enabled": _percent, "min_cluster_size": _uint(0, 2**64 - 1),
                                 "force_locality_direct_routing": _flag},
    },
    "load_assignment": {},
    "eds_cluster_config": {"service_name": _text},
}
_CLUSTER_STATUS = {
    "host_statuses": [
        {
            "address": _ADDRESS,
            "health_status": {},
            "locality": {},
            "weight": _uint(),
            "priority": _uint(0, 128),
            "hostname": _text,
            "stats": [{"name": _scalar, "value": _uint(0, 2**64 - 1)}],
        }
    ]
}
_NODE = {"id": _scalar, "locality": {"region": _text, "zone": _text, "sub_zone": _text}}
_CLUSTER_MANAGER = {"local_cluster_name": _text}
_DUMP_SECTION = {
    "bootstrap": {"node": _NODE, "static_resources": {}, "cluster_manager": _CLUSTER_MANAGER},
    "static_listeners": [{"listener": {}}],
    "dynamic_listeners": [{"active_state": {"listener": {}}, "warming_state": {"listener": {}}}],
    "static_route_configs": [{"route_config": {}}],
    "dynamic_route_configs": [{"route_config": {}}],
    "static_clusters": [{"cluster": {}}],
    "dynamic_active_clusters": [{"cluster": {}}],
    "dynamic_warming_clusters": [{"cluster": {}}],
    "static_endpoint_configs": [{"endpoint_config": {}}],
    "dynamic_endpoint_configs": [{"endpoint_config": {}}],
}
_BOOTSTRAP = {"static_resources": {"listeners": [{}], "clusters": [{}]}, "node": _NODE,
              "cluster_manager": _CLUSTER_MANAGER}


def parse_envoy_text(text: str, source: str = "<input>", *, into: EnvoyConfig | None = None) -> EnvoyConfig:
    """Parse one Envoy JSON/YAML text (see the module docstring for the accepted shapes).

    Raises
    ------
    ConfigParseError
        Malformed JSON/YAML (``file:line: invalid JSON: ...``) or a shape that is none of the
        accepted ones.
    """
    cfg = into if into is not None else EnvoyConfig()
    cfg.sources.append(source)
    try:
        _parse_envoy_data(cfg, text, source)
    except RecursionError:
        raise ConfigParseError(
            "nested deeper than meshstat reads (refused; Envoy configurations nest a few dozen levels)",
            source=source,
        ) from None
    return cfg


def _parse_envoy_data(cfg: EnvoyConfig, text: str, source: str) -> None:
    stripped = text.lstrip("\ufeff \t\r\n")
    if not stripped:
        raise ConfigParseError(
            "empty input: expected an Envoy config_dump, bootstrap, /clusters or istioctl proxy-config",
            source=source,
        )
    if stripped[:1] in ("{", "["):
        data = read_json(
            text,
            source,
            expected="an Envoy config_dump or istioctl proxy-config -o json output",
            constants="Envoy and istioctl never write it",
            nesting="Envoy configurations nest a few dozen levels",
        )
    else:
        data = _parse_yaml(text, source)
    data = snake_keys(data)
    lines = _Lines(text, source)
    inv = InputInventory(source)
    cfg.inputs.append(inv)
    if isinstance(data, list):
        kinds = {_add_item(cfg, item, source, lines, i) for i, item in enumerate(data)}
        _list_form(inv, kinds)
    elif isinstance(data, dict) and "configs" in data:
        configs = data["configs"]
        if not isinstance(configs, list):
            raise ConfigParseError("expected 'configs' to be a list (admin /config_dump)", source=source, line=1)
        inv.form = "admin /config_dump"
        seen: set[str] = set()
        for c in configs:
            _add_dump_section(cfg, c, source, lines, seen)
        _dump_completeness(inv, seen)
    elif isinstance(data, dict) and "cluster_statuses" in data:
        _check(data, {"cluster_statuses": [{}]}, "/clusters output", source, lines, None)
        inv.form = "admin /clusters?format=json"
        inv.complete |= {"clusters", "endpoints"}  # every cluster, with or without hosts
        for cs in data.get("cluster_statuses") or []:
            _add_cluster_status(cfg, cs, source, lines)
    elif isinstance(data, dict) and isinstance(data.get("bootstrap"), dict) and set(data) <= _BOOTSTRAP_DUMP:
        inv.form = "istioctl proxy-config bootstrap output"
        _check(data, _DUMP_SECTION, "bootstrap dump", source, lines, None)
        seen = set()
        _add_bootstrap_dump(cfg, data["bootstrap"], source, lines, seen)
        _dump_completeness(inv, seen, bootstrap_only=True)
    elif isinstance(data, dict) and set(data) & _BOOTSTRAP_KEYS:
        inv.form = "Envoy bootstrap"
        seen = set()
        _add_bootstrap_dump(cfg, data, source, lines, seen)
        _dump_completeness(inv, seen, bootstrap_only=True)
    elif isinstance(data, dict) and set(data) & _NOT_ROUTING_KEYS and set(data) <= _NOT_ROUTING_KEYS | {"@type"}:
        inv.form = "Envoy secrets or extension configuration"
        cfg.warnings.append(f"{source}: TLS secrets or extension configurations (istioctl proxy-config "
                            "secret/ecds output) do not decide where a call goes: the file is ignored")
    elif isinstance(data, dict):
        _list_form(inv, {_add_item(cfg, data, source, lines, 0)})
    else:
        raise ConfigParseError(
            "expected an Envoy config_dump ({\"configs\": [...]}), a bootstrap, /clusters?format=json, "
            "or an istioctl proxy-config -o json array",
            source=source,
            line=1,
        )


#: Keys of an Envoy bootstrap (``envoy.config.bootstrap.v3.Bootstrap``) that no other accepted input has.
_BOOTSTRAP_KEYS = frozenset({"static_resources", "dynamic_resources", "cluster_manager", "layered_runtime",
                             "admin", "stats_config", "overload_manager", "node"})
#: ``istioctl proxy-config bootstrap`` output: the admin ``BootstrapConfigDump``.
_BOOTSTRAP_DUMP = frozenset({"bootstrap", "last_updated"})
#: Top-level keys of the admin dump sections that hold no routing (secrets, ECDS) as istioctl prints them.
_NOT_ROUTING_KEYS = frozenset({"static_secrets", "dynamic_active_secrets", "dynamic_warming_secrets",
                               "ecds_filters"})


def _list_form(inv: InputInventory, kinds: set[str]) -> None:
    """Name an istioctl array by the kinds it holds; a cluster, endpoint or eds output is a whole list."""
    kinds.discard("dump")
    if len(kinds) == 1:
        (kind,) = kinds
        inv.form = ISTIOCTL_FORM[kind]
    elif kinds:
        inv.form = "a list of Envoy objects"
    if "cluster" in kinds:
        inv.complete.add("clusters")
    if kinds & {"status", "assignment"}:
        inv.complete.add("endpoints")


def _dump_completeness(inv: InputInventory, seen: set[str], *, bootstrap_only: bool = False) -> None:
    """Whether a config_dump (or a bootstrap) holds every cluster and every EDS endpoint.

    ``seen`` holds ``"clusters"`` (a ClustersConfigDump), ``"dynamic_active_clusters"``,
    ``"endpoints"`` (an EndpointsConfigDump), ``"bootstrap"``, ``"static_resources"``, ``"cds"``
    (the bootstrap names a ``cds_config``) and ``"dynamic"`` (a dynamic listener or route
    configuration: the configuration comes over xDS).
    """
    # with the bootstrap in the input, its cds_config says whether clusters come over CDS; without it,
    # a dynamic listener or route configuration says the configuration comes over xDS
    uses_cds = "cds" in seen if "bootstrap" in seen else "dynamic" in seen
    if bootstrap_only:
        if "cds" in seen:
            inv.gaps["clusters"] = ("a bootstrap whose clusters come over CDS "
                                    "(dynamic_resources.cds_config): only its static clusters are in it")
        elif "static_resources" in seen:
            inv.complete.add("clusters")
        else:
            inv.gaps["clusters"] = "a bootstrap without static_resources: no clusters"
        inv.gaps["endpoints"] = "a bootstrap: the endpoints of EDS clusters are not in it"
        return
    if "clusters" not in seen:
        inv.gaps["clusters"] = "the config_dump has no ClustersConfigDump (no clusters)"
    elif uses_cds and "dynamic_active_clusters" not in seen:
        inv.gaps["clusters"] = ("the config_dump's ClustersConfigDump has no dynamic_active_clusters "
                                "(the clusters Envoy got over CDS are not in it)")
    else:
        inv.complete.add("clusters")
    if "endpoints" in seen:
        inv.complete.add("endpoints")
    else:
        inv.gaps["endpoints"] = ("the config_dump has no EndpointsConfigDump (taken without "
                                 "?include_eds): the endpoints of EDS clusters are not in it")


def load_envoy(paths: str | Sequence[str]) -> EnvoyConfig:
    """Read and merge Envoy files (config_dump, istioctl proxy-config outputs, bootstrap, /clusters)."""
    if isinstance(paths, str):
        paths = [paths]
    if not paths:
        raise InvalidArgument("no Envoy file given")
    cfg = EnvoyConfig()
    for p in paths:
        text = read_text(p, what="Envoy configuration")
        parse_envoy_text(text, source_name(p), into=cfg)
    return cfg


def type_of(obj: Mapping[str, Any]) -> str:
    """The message name of a typed object's ``@type`` (``...v3.TcpProxy`` -> ``TcpProxy``)."""
    t = obj.get("@type", "")
    return t.rsplit(".", 1)[-1] if isinstance(t, str) else ""


def _add_item(cfg: EnvoyConfig, item: Any, source: str, lines: _Lines, index: int) -> str:
    """Read one object of an istioctl array (or a lone object); return its kind."""
    if not isinstance(item, dict):
        raise ConfigParseError(
            f"expected item {index} to be an Envoy object (listener, route configuration, cluster or host status)",
            source=source,
        )
    if "configs" in item:
        _check(item, {"configs": [{}]}, f"item {index}", source, lines, None)
        seen: set[str] = set()
        for c in item["configs"]:
            _add_dump_section(cfg, c, source, lines, seen)
        _dump_completeness(cfg.inputs[-1], seen)
        return "dump"
    kind = classify_item(item, type_of(item))
    inv = cfg.inputs[-1]
    if kind == "listener":
        _add_listener(cfg, item, source, lines)
    elif kind == "route":
        _add_route_config(cfg, item, source, lines)
    elif kind == "cluster":
        _add_cluster(cfg, item, source, lines)
    elif kind == "status":
        _add_cluster_status(cfg, item, source, lines)
    elif kind == "assignment":
        cla = _load_assignment(item, source, lines)
        cfg.assignments[cla.cluster_name] = cla
        inv.add("assignment")
    else:
        keys = ", ".join(sorted(item)[:6])
        raise ConfigParseError(
            f"expected an Envoy listener, route configuration, cluster, host status or endpoint assignment, "
            f"got keys {keys}",
            source=source,
            line=lines.line_of(str(item.get("name", ""))) if item.get("name") else None,
        )
    return kind


def _failed_name(entry: Mapping[str, Any]) -> str | None:
    """The name of the resource an ``error_state`` rejected (its ``failed_configuration``)."""
    es = entry.get("error_state")
    if not isinstance(es, dict):
        return None
    fc = es.get("failed_configuration")
    return str(fc["name"]) if isinstance(fc, dict) and isinstance(fc.get("name"), str) else None


def _rejected(entry: Mapping[str, Any]) -> str:
    es = entry.get("error_state") or {}
    details = str(es.get("details") or "").strip().splitlines()
    return "rejected by Envoy" + (f" ({details[0][:200]})" if details else "")


def _add_dump_section(cfg: EnvoyConfig, c: Any, source: str, lines: _Lines, seen: set[str]) -> None:
    """One entry of ``configs``; ``seen`` collects what :func:`_dump_completeness` needs."""
    if not isinstance(c, dict):
        raise ConfigParseError("expected each entry of 'configs' to be an object", source=source)
    t = type_of(c)
    _check(c, _DUMP_SECTION, t or "configs entry", source, lines, t or None)
    if t == "BootstrapConfigDump":
        _add_bootstrap_dump(cfg, c.get("bootstrap") or {}, source, lines, seen)
    elif t == "ListenersConfigDump":
        for s in c.get("static_listeners") or []:
            if s.get("listener"):
                _add_listener(cfg, s["listener"], source, lines)
        for d in c.get("dynamic_listeners") or []:
            seen.add("dynamic")
            active = (d.get("active_state") or {}).get("listener")
            if active:
                _add_listener(cfg, active, source, lines)
                continue
            # present, but not accepting connections: say so where a call needs it
            name = str(d.get("name") or _failed_name(d) or "")
            for state in ("warming_state", "draining_state"):
                li = (d.get(state) or {}).get("listener")
                if li:
                    why = state.split("_")[0]
                    cfg.inactive_listeners.append((li, why))
                    cfg.inactive[("listener", str(li.get("name") or name))] = why
                    break
            else:
                if d.get("error_state"):
                    cfg.inactive[("listener", name)] = _rejected(d)
    elif t == "RoutesConfigDump":
        for key in ("static_route_configs", "dynamic_route_configs"):
            for r in c.get(key) or []:
                if key == "dynamic_route_configs":
                    seen.add("dynamic")
                if r.get("route_config"):
                    _add_route_config(cfg, r["route_config"], source, lines)
                elif _failed_name(r):
                    cfg.inactive[("route", str(_failed_name(r)))] = _rejected(r)
    elif t == "ClustersConfigDump":
        seen.add("clusters")
        if "dynamic_active_clusters" in c:
            seen.add("dynamic_active_clusters")
        for key in ("static_clusters", "dynamic_active_clusters"):
            for x in c.get(key) or []:
                if x.get("cluster"):
                    _add_cluster(cfg, x["cluster"], source, lines)
                elif _failed_name(x):
                    cfg.inactive[("cluster", str(_failed_name(x)))] = _rejected(x)
        for x in c.get("dynamic_warming_clusters") or []:
            cl = x.get("cluster") or {}
            name = cl.get("name") if isinstance(cl, dict) else None
            # a warming cluster is not routed to until its endpoints arrive (ClusterManagerImpl):
            # the active version, if any, still serves
            if isinstance(name, str) and name not in cfg.clusters:
                cfg.inactive[("cluster", name)] = ("still warming (Envoy routes to it once its endpoints "
                                                   "arrive)")
    elif t == "EndpointsConfigDump":
        seen.add("endpoints")
        for key in ("static_endpoint_configs", "dynamic_endpoint_configs"):
            for x in c.get(key) or []:
                if x.get("endpoint_config"):
                    cla = _load_assignment(x["endpoint_config"], source, lines)
                    cfg.assignments[cla.cluster_name] = cla
                    cfg.inputs[-1].add("assignment")
    # ScopedRoutes, Secrets, ECDS: not needed to resolve a call


def _add_bootstrap_dump(cfg: EnvoyConfig, b: Mapping[str, Any], source: str, lines: _Lines,
                        seen: set[str]) -> None:
    """A ``Bootstrap``: node id, static resources, and whether its clusters come over CDS."""
    if not isinstance(b, dict):
        raise ConfigParseError("expected 'bootstrap' to be an object", source=source)
    node = b.get("node") or {}
    if isinstance(node, dict) and node.get("id"):
        cfg.node_id = str(node["id"])
    seen.add("bootstrap")
    dyn = b.get("dynamic_resources")
    if isinstance(dyn, dict) and dyn.get("cds_config") is not None:
        seen.add("cds")
    if b.get("static_resources") is not None:
        seen.add("static_resources")
    _add_bootstrap(cfg, b, source, lines)


def _add_bootstrap(cfg: EnvoyConfig, b: Mapping[str, Any], source: str, lines: _Lines) -> None:
    _check(b, _BOOTSTRAP, "bootstrap", source, lines, "static_resources")
    node = b.get("node") or {}
    loc = node.get("locality")
    if isinstance(loc, dict) and any(loc.get(k) for k in ("region", "zone", "sub_zone")):
        cfg.node_locality = tuple((k, str(v)) for k, v in sorted(loc.items()) if v)
    local = (b.get("cluster_manager") or {}).get("local_cluster_name")
    if local:
        cfg.local_cluster_name = local
    sr = b.get("static_resources") or {}
    for li in sr.get("listeners") or []:
        _add_listener(cfg, li, source, lines)
    for cl in sr.get("clusters") or []:
        _add_cluster(cfg, cl, source, lines)


def _add_listener(cfg: EnvoyConfig, li: dict[str, Any], source: str, lines: _Lines) -> None:
    name = str(li.get("name", f"listener{len(cfg.listeners)}"))
    _check(li, _LISTENER, f"listener {name!r}", source, lines, name)
    li = dict(li)
    li["name"] = name
    cfg.lines[("listener", name)] = (source, lines.line_of(name))
    cfg.inputs[-1].add("listener")
    cfg.inactive.pop(("listener", name), None)
    # replace an earlier listener of the same name (istioctl + dump merged)
    cfg.listeners = [x for x in cfg.listeners if x.get("name") != name] + [li]
    for fc in filter_chains(li):
        for f in fc.get("filters") or []:
            rc = (f.get("typed_config") or {}).get("route_config")
            if isinstance(rc, dict) and rc.get("name"):
                _add_route_config(cfg, rc, source, lines, inline=True)


def _add_route_config(cfg: EnvoyConfig, rc: dict[str, Any], source: str, lines: _Lines, *, inline: bool = False) -> None:
    name = str(rc.get("name", ""))
    _check(rc, _ROUTE_CONFIG, f"route configuration {name!r}", source, lines, name or None)
    if inline and name in cfg.route_configs:
        return
    if not inline:
        cfg.inputs[-1].add("route")
    cfg.inactive.pop(("route", name), None)
    cfg.route_configs[name] = rc
    cfg.lines[("route", name)] = (source, lines.line_of(name) if name else None)


_LB_EXTENSIONS = {
    "round_robin": "ROUND_ROBIN",
    "least_request": "LEAST_REQUEST",
    "random": "RANDOM",
    "ring_hash": "RING_HASH",
    "maglev": "MAGLEV",
    "cluster_provided": "CLUSTER_PROVIDED",
}


def _add_cluster(cfg: EnvoyConfig, c: dict[str, Any], source: str, lines: _Lines) -> None:
    name = c.get("name")
    if not isinstance(name, str):
        raise ConfigParseError("expected a cluster to have a 'name'", source=source)
    _check(c, _CLUSTER, f"cluster {name!r}", source, lines, name)
    ctype = c.get("type") or ("EDS" if c.get("eds_cluster_config") else "STATIC")
    if isinstance(c.get("cluster_type"), dict):
        ctype = str(c["cluster_type"].get("name", "CUSTOM"))
    lb = c.get("lb_policy")
    explicit = lb is not None
    pol = c.get("load_balancing_policy") or {}
    for p in pol.get("policies") or []:
        ext = ((p.get("typed_extension_config") or {}).get("name") or "").rsplit(".", 1)[-1]
        if ext in _LB_EXTENSIONS:
            lb, explicit = _LB_EXTENSIONS[ext], True
            break
    common = c.get("common_lb_config") or {}
    hpt = common.get("healthy_panic_threshold")
    panic = DEFAULT_PANIC_THRESHOLD
    if isinstance(hpt, dict) and hpt.get("value") is not None:
        panic = float(hpt["value"])
    elif isinstance(hpt, int | float):
        panic = float(hpt)
    za = common.get("zone_aware_lb_config") or {}
    zone_aware = ZoneAwareLbConfig(
        routing_enabled=_percent_value(za.get("routing_enabled"), 100.0),
        min_cluster_size=_uint_value(za.get("min_cluster_size"), 6),
        force_direct=bool(za.get("force_locality_direct_routing", False)),
    )
    la = c.get("load_assignment")
    cla = _load_assignment(la, source, lines, default_name=name) if isinstance(la, dict) else None
    eds = c.get("eds_cluster_config") or {}
    cfg.clusters[name] = Cluster(
        name=name,
        type=str(ctype),
        lb_policy=str(lb or "ROUND_ROBIN"),
        eds_service_name=eds.get("service_name"),
        load_assignment=cla,
        panic_threshold=panic,
        locality_weighted="locality_weighted_lb_config" in common,
        source=source,
        line=lines.line_of(name),
        lb_policy_explicit=explicit,
        zone_aware=zone_aware,
    )
    cfg.lines[("cluster", name)] = (source, lines.line_of(name))
    cfg.inputs[-1].add("cluster")
    cfg.inactive.pop(("cluster", name), None)


def _istio_labels(md: Any) -> tuple[tuple[tuple[str, str], ...], str | None, str | None]:
    fm = (md or {}).get("filter_metadata") or {}
    wl = (fm.get("istio") or {}).get("workload")
    if not isinstance(wl, str):
        return (), None, None
    parts = wl.split(";")
    name = parts[0] or None
    labels = []
    if len(parts) > 2 and parts[2]:
        labels.append(("app", parts[2]))
    if len(parts) > 3 and parts[3]:
        labels.append(("version", parts[3]))
    return tuple(labels), name, (parts[1] if len(parts) > 1 and parts[1] else None)


def _health(text: Any) -> str:
    t = str(text or "UNKNOWN").upper()
    if t in ("UNKNOWN", "HEALTHY"):
        return "HEALTHY"
    if t == "DEGRADED":
        return "DEGRADED"
    return "UNHEALTHY"


def socket_address(addr: Any) -> tuple[str, int | None]:
    """``(address, port)`` of an Envoy ``Address`` (a pipe or internal address has no port)."""
    sa = (addr or {}).get("socket_address") or {}
    a = sa.get("address")
    if a is None:
        pipe = (addr or {}).get("pipe") or (addr or {}).get("envoy_internal_address")
        return (str(pipe) if pipe else "?"), None
    p = sa.get("port_value")
    return str(a), (int(p) if p is not None else None)


def _load_assignment(la: dict[str, Any], source: str, lines: _Lines, default_name: str = "") -> LoadAssignment:
    name = str(la.get("cluster_name") or default_name)
    _check(la, _LOAD_ASSIGNMENT, f"load assignment {name!r}", source, lines, name or None)
    eps = []
    for loc in la.get("endpoints") or []:
        locality = tuple((k, str(v)) for k, v in sorted((loc.get("locality") or {}).items()))
        lw = loc.get("load_balancing_weight")
        prio = int(loc.get("priority") or 0)
        for le in loc.get("lb_endpoints") or []:
            ep = le.get("endpoint") or {}
            addr, port = socket_address(ep.get("address"))
            labels, wl, wns = _istio_labels(le.get("metadata"))
            w = le.get("load_balancing_weight")
            if isinstance(w, dict):
                w = w.get("value")
            raw = str(le.get("health_status") or "UNKNOWN")
            eps.append(
                Endpoint(
                    address=addr,
                    port=port,
                    health=_health(raw),
                    weight=int(w) if w else 1,
                    priority=prio,
                    locality=locality,
                    locality_weight=(int(lw.get("value")) if isinstance(lw, dict) else (int(lw) if lw else None)),
                    hostname=ep.get("hostname"),
                    labels=labels,
                    workload=wl,
                    raw_health=raw,
                    namespace=wns,
                )
            )
    pol = la.get("policy") or {}
    factor = pol.get("overprovisioning_factor")
    if isinstance(factor, dict):
        factor = factor.get("value")
    return LoadAssignment(
        cluster_name=name,
        endpoints=tuple(eps),
        overprovisioning_factor=int(factor) if factor else DEFAULT_OVERPROVISIONING,
        source=source,
        line=lines.line_of(name) if name else None,
    )


def _add_cluster_status(cfg: EnvoyConfig, cs: Any, source: str, lines: _Lines | None = None) -> None:
    if not isinstance(cs, dict) or not isinstance(cs.get("name"), str):
        raise ConfigParseError("expected each cluster status to have a 'name'", source=source)
    name = cs["name"]
    _check(cs, _CLUSTER_STATUS, f"cluster status {name!r}", source, lines, name)
    hosts, counters = [], {}
    for h in cs.get("host_statuses") or []:
        addr, port = socket_address(h.get("address"))
        hs = h.get("health_status") or {}
        eds = str(hs.get("eds_health_status") or "UNKNOWN")
        failed = any(
            bool(hs.get(k))
            for k in ("failed_active_health_check", "failed_outlier_check", "pending_dynamic_removal",
                      "excluded_via_immediate_hc_fail", "active_hc_timeout")
        )
        health = "UNHEALTHY" if failed else ("DEGRADED" if hs.get("failed_active_degraded_check") else _health(eds))
        raw = "FAILED_ACTIVE_HC" if hs.get("failed_active_health_check") else eds
        loc = tuple((k, str(v)) for k, v in sorted((h.get("locality") or {}).items()))
        e = Endpoint(
            address=addr,
            port=port,
            health=health,
            weight=int(h.get("weight") or 1),
            priority=int(h.get("priority") or 0),
            locality=loc,
            hostname=h.get("hostname"),
            raw_health=raw,
        )
        hosts.append(e)
        stats = {}
        for s in h.get("stats") or []:
            if isinstance(s, dict) and "name" in s:
                stats[str(s["name"])] = int(s.get("value") or 0)  # strings; zero counters omitted
        counters[e.key] = stats
    cfg.host_statuses[name] = hosts
    cfg.counters[name] = counters
    cfg.inputs[-1].add("status")


def filter_chains(li: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The ``filter_chains`` of a listener (``default_filter_chain`` not included)."""
    out = list(li.get("filter_chains") or [])
    return out
