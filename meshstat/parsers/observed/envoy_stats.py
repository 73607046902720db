"""Envoy's admin counters as text: ``/stats``, ``/stats?format=json``, ``/stats/prometheus``, ``/clusters``.

:func:`parse_envoy_stats` recognises the form and returns an :class:`EnvoyStats`
with the counters that say where requests went:

per cluster (:class:`StatCounter`, scope ``"cluster"``)
    ``upstream_rq_total`` (requests sent to the cluster's hosts, every retry counted
    again), ``upstream_rq_retry``, ``upstream_cx_none_healthy`` (requests answered
    503 "no healthy upstream", flag UH: they are *not* in ``upstream_rq_total``) and
    ``upstream_rq_pending_overflow`` (503 UO, circuit breaking). Names from the
    cluster statistics reference (Envoy
    ``docs/root/configuration/upstream/cluster_manager/cluster_stats.rst``);
    which counter a UH request moves was measured on Envoy 1.40 (the conformance suite).
per HTTP connection manager (scope ``"http"``)
    ``no_cluster`` (503 NC: the route names a cluster that does not exist),
    ``no_route`` (404 NR) and ``rq_direct_response``
    (Envoy ``source/common/http/conn_manager_impl.h``: ``ALL_HTTP_CONN_MAN_STATS``).
per host (:class:`HostCounters`, from ``/clusters``)
    ``rq_total`` and the other per-host statistics.

The forms (Envoy ``source/server/admin/``):

``/stats`` text
    ``name: value`` lines (``stats_render.cc``: ``StatsTextRender``); histograms
    (``P0(...) P25(...)``, ``No recorded values``) and quoted text readouts are skipped.
    Counter names are ``cluster.<cluster>.<stat>`` and ``http.<stat_prefix>.<stat>``.
``/stats?format=json``
    ``{"stats": [{"name": ..., "value": ...}, ..., {"histograms": {...}}]}`` (``StatsJsonRender``).
``/stats/prometheus``
    The Prometheus exposition format (``prometheus_stats.cc``), read by
    :func:`meshstat.parsers.observed.prometheus.parse_exposition`. Tag extraction
    moves the cluster name into a label: Envoy's default ``envoy_cluster_name`` tag is
    ``^cluster\\.(([^\\.]+)\\.).*`` (``source/common/config/well_known_names.cc``:
    ``CLUSTER_NAME``), so a cluster name with dots is cut at its first dot and the rest
    stays in the metric name (``outbound|9080|v1|reviews.default.svc.cluster.local`` gives
    ``envoy_cluster_default_svc_cluster_local_upstream_rq_total{envoy_cluster_name="outbound|9080|v1|reviews"}``,
    as Envoy 1.40 writes it); Istio's bootstrap (``tools/packaging/common/envoy_bootstrap.json``)
    replaces it with a ``cluster_name`` tag that keeps ``<name>.<ns>.svc.cluster.local`` whole.
    Both are read; a cut name is rebuilt with ``_`` read as ``.`` (exact for Kubernetes
    names, which have no ``_``) and matched against configured names through
    :func:`prometheus_cluster_key`.
``/clusters`` text
    ``<cluster>::<host>::<stat>::<value>`` per host and ``<cluster>::<key>::...`` lines
    about the cluster (``clusters_handler.cc``: ``writeClustersAsText``); IPv6 hosts are
    ``[addr]:port``.
``/clusters?format=json``
    ``{"cluster_statuses": [{"name": ..., "host_statuses": [{"address": {"socket_address":
    {...}}, "stats": [{"name": "rq_total", "value": "88"}, ...]}]}]}`` (``admin.v3.Clusters``);
    counter values are strings and a counter of 0 has no ``value``.

Every counter is cumulative since Envoy started (differencing two snapshots is
:mod:`meshstat.inference.observed_traffic`'s job). Pure Python.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from meshstat.errors import ConfigParseError
from meshstat.inputs import ascii_digits, read_text
from meshstat.parsers.json_text import read_json
from meshstat.parsers.observed.prometheus import Series, parse_exposition

__all__ = [
    "CLUSTER_STATS",
    "HTTP_STATS",
    "EnvoyStats",
    "HostCounters",
    "IstioCluster",
    "StatCounter",
    "envoy_counter_of",
    "istio_cluster",
    "load_envoy_stats",
    "parse_envoy_stats",
    "prometheus_cluster_key",
]

#: Per-cluster counters read (all others are skipped).
CLUSTER_STATS = (
    "upstream_rq_total",
    "upstream_rq_retry",
    "upstream_cx_none_healthy",
    "upstream_rq_pending_overflow",
)
#: Per-connection-manager counters read.
HTTP_STATS = ("no_cluster", "no_route", "rq_direct_response")
_HOST_STATS = frozenset(
    {
        "cx_active",
        "cx_connect_fail",
        "cx_total",
        "rq_active",
        "rq_error",
        "rq_pending_active",
        "rq_success",
        "rq_timeout",
        "rq_total",
        "hostname",
        "health_flags",
        "weight",
        "region",
        "zone",
        "sub_zone",
        "canary",
        "priority",
        "success_rate",
        "local_origin_success_rate",
    }
)
_STAT_RE = re.compile(r"^(cluster|http)\.(.+)\.(" + "|".join(CLUSTER_STATS + HTTP_STATS) + r")$")
_PROM_CLUSTER_RE = re.compile(r"^envoy_cluster_(.*?)(" + "|".join(CLUSTER_STATS) + r")$")
_PROM_HTTP_RE = re.compile(r"^envoy_http_(.*?)(" + "|".join(HTTP_STATS) + r")$")
_CLUSTER_TAGS = ("envoy_cluster_name", "cluster_name")
_HTTP_TAGS = ("envoy_http_conn_manager_prefix", "http_conn_manager_prefix")
_ISTIO_TAG = re.compile(r"^(.+?(?:\..+?\.svc\.cluster\.local)?)\.")
_MAX_DIGITS = 20  # a uint64 counter has at most 20 digits


@dataclass(frozen=True)
class StatCounter:
    """One counter of a cluster or an HTTP connection manager.

    Attributes
    ----------
    scope : str
        ``"cluster"`` or ``"http"``.
    name : str
        The cluster name, or the connection manager's ``stat_prefix``.
    stat : str
        ``upstream_rq_total``, ``no_cluster``, ...
    value : int
    line : int
    key : str
        What configured names are matched against: ``name`` itself, or, for a
        ``/stats/prometheus`` name cut by tag extraction, ``tag + "\\0" + rest``
        (see :func:`prometheus_cluster_key`).
    """

    scope: str
    name: str
    stat: str
    value: int
    line: int
    key: str = ""


@dataclass(frozen=True)
class HostCounters:
    """One host of one cluster in ``/clusters``: its address and per-host statistics."""

    cluster: str
    address: str
    stats: tuple[tuple[str, int], ...]
    line: int
    health: str = ""

    @property
    def rq_total(self) -> int:
        """Requests sent to this host (0 when Envoy omitted the counter)."""
        return dict(self.stats).get("rq_total", 0)


@dataclass(frozen=True)
class EnvoyStats:
    """The counters of one admin output (see the module docstring for the forms)."""

    source: str
    form: str
    counters: tuple[StatCounter, ...]
    hosts: tuple[HostCounters, ...] = ()

    def find(self, scope: str, name: str, stat: str) -> StatCounter | None:
        """The counter ``stat`` of cluster (or connection manager) ``name``, matched as the form allows."""
        keys = {name} | (prometheus_cluster_key(name) if scope == "cluster" else set())
        for c in self.counters:
            if c.scope == scope and c.stat == stat and (c.key or c.name) in keys:
                return c
        return None

    def names(self, scope: str = "cluster") -> tuple[str, ...]:
        """Cluster names (or connection-manager prefixes) with counters, in file order."""
        return tuple(dict.fromkeys(c.name for c in self.counters if c.scope == scope))


@dataclass(frozen=True)
class IstioCluster:
    """An Istio cluster name ``<direction>|<port>|<subset>|<host>`` taken apart.

    Istio names its clusters in ``pilot/pkg/model/service.go: BuildSubsetKey``
    (``outbound|9080|v1|reviews.default.svc.cluster.local``; the subset is empty
    for the whole service).
    """

    direction: str
    port: int
    subset: str
    host: str


def istio_cluster(name: str) -> IstioCluster | None:
    """``name`` as an :class:`IstioCluster`, or None when it is not Istio's form."""
    parts = name.split("|")
    if (
        len(parts) != 4
        or parts[0] not in ("outbound", "inbound")
        or not ascii_digits(parts[1])
        or len(parts[1]) > 5
    ):
        return None
    return IstioCluster(parts[0], int(parts[1]), parts[2], parts[3])


def prometheus_cluster_key(name: str) -> set[str]:
    """The keys a cluster named ``name`` gets in ``/stats/prometheus`` (Envoy's and Istio's tags).

    ``"outbound|9080|v1|reviews.default.svc.cluster.local"`` ->
    ``{"outbound|9080|v1|reviews\\0default_svc_cluster_local_",
    "outbound|9080|v1|reviews.default.svc.cluster.local\\0"}``:
    the tag value, a NUL, and what tag extraction leaves in the metric name
    (non-``[a-zA-Z0-9_]`` characters as ``_``, as Envoy's Prometheus output
    sanitises names: ``prometheus_stats.cc``: ``sanitizeName``).
    """
    keys = set()
    for tag in {name.split(".", 1)[0], *(m.group(1) for m in [_ISTIO_TAG.match(name + ".")] if m)}:
        rest = name[len(tag) + 1 :] if len(name) > len(tag) else ""
        keys.add(tag + "\0" + (re.sub(r"[^a-zA-Z0-9_]", "_", rest) + "_" if rest else ""))
    return keys


def load_envoy_stats(path: str) -> EnvoyStats:
    """Read an admin output from ``path`` (``"-"``: standard input) and parse it."""
    text = read_text(path, what="Envoy admin output")
    return parse_envoy_stats(text, str(path) if path != "-" else "<stdin>")


def parse_envoy_stats(text: str, source: str = "<string>") -> EnvoyStats:
    """Parse ``/stats`` (text or JSON), ``/stats/prometheus`` or ``/clusters`` (text or JSON).

    Raises
    ------
    ConfigParseError
        ``file:line: expected ...``: a line of none of these forms, a counter that
        is not a non-negative integer, JSON of another shape, or no counter at all.
    """
    stripped = text.lstrip("\ufeff \t\n")
    if not stripped:
        raise ConfigParseError(
            "empty input (expected Envoy admin /stats, /stats/prometheus or /clusters output)", source=source
        )
    if stripped.startswith("{"):
        return _parse_json(text, source)
    first = stripped.split("\n", 1)[0]
    if "::" in first:
        return _parse_clusters_text(text, source)
    if first.startswith("#") or re.match(r"[a-zA-Z_:][a-zA-Z0-9_:]*(\{|\s+[-+0-9.NI])", first):
        return _parse_prometheus(text, source)
    return _parse_stats_text(text, source)


def _count(raw: object, what: str, source: str, line: int) -> int:
    if isinstance(raw, bool):
        raise ConfigParseError(
            f"{what}: expected a non-negative integer counter, got {raw!r}", source=source, line=line
        )
    if isinstance(raw, int) and raw >= 0:
        return raw
    if isinstance(raw, str) and ascii_digits(raw) and len(raw) <= _MAX_DIGITS:
        return int(raw)
    if isinstance(raw, float) and raw.is_integer() and 0 <= raw < 2**64:
        return int(raw)
    shown = raw[:40] if isinstance(raw, str) else raw
    raise ConfigParseError(
        f"{what}: expected a non-negative integer counter, got {shown!r}", source=source, line=line
    )


def _stat(name: str, value: object, source: str, line: int) -> StatCounter | None:
    m = _STAT_RE.match(name)
    if m is None:
        return None
    return StatCounter(m.group(1), m.group(2), m.group(3), _count(value, name, source, line), line)


def _parse_stats_text(text: str, source: str) -> EnvoyStats:
    out: list[StatCounter] = []
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line:
            continue
        name, sep, value = line.partition(": ")
        if not sep:
            if line.endswith(":"):  # a histogram or text readout with an empty value
                continue
            raise ConfigParseError(
                "expected 'name: value' (Envoy admin /stats), '<cluster>::<host>::<stat>::<value>'"
                " (/clusters) or a Prometheus sample",
                source=source,
                line=lineno,
                snippet=line[:120],
            )
        value = value.strip()
        if not ascii_digits(value):
            if value.startswith(("P0(", "No recorded values", '"')) or " P25(" in value:
                continue
            if name.startswith(("cluster.", "http.")) and _STAT_RE.match(name):
                raise ConfigParseError(
                    f"{name}: expected a non-negative integer counter, got {value[:40]!r}",
                    source=source,
                    line=lineno,
                )
            if re.fullmatch(r"-?\d+(\.\d+)?", value):  # a gauge such as a negative number: not read
                continue
            raise ConfigParseError(
                "expected 'name: value' with an integer value (Envoy admin /stats)",
                source=source,
                line=lineno,
                snippet=line[:120],
            )
        c = _stat(name, value, source, lineno)
        if c is not None:
            out.append(c)
    return _done(EnvoyStats(source, "stats", tuple(out)), text)


def _line_finder(text: str):
    starts = [0] + [m.end() for m in re.finditer("\n", text)]

    def line_at(pos: int) -> int:
        lo, hi = 0, len(starts)
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if starts[mid] <= pos:
                lo = mid
            else:
                hi = mid
        return lo + 1

    return line_at


def _parse_json(text: str, source: str) -> EnvoyStats:
    doc = read_json(text, source, expected="Envoy admin /stats?format=json or /clusters?format=json")
    line_at = _line_finder(text)

    def where(name: str) -> int:
        m = re.search(r'"name"\s*:\s*' + re.escape(json.dumps(name)), text)
        return line_at(m.start()) if m else 1

    if isinstance(doc, dict) and isinstance(doc.get("stats"), list):
        out: list[StatCounter] = []
        for entry in doc["stats"]:
            if not isinstance(entry, dict):
                raise ConfigParseError(
                    'expected {"name": ..., "value": ...} entries in "stats"', source=source, line=1
                )
            if "histograms" in entry or not isinstance(entry.get("name"), str):
                continue
            if isinstance(entry.get("value"), str) and not ascii_digits(entry["value"]):
                continue  # a text readout
            name = entry["name"]
            if _STAT_RE.match(name):
                c = _stat(name, entry.get("value"), source, where(name))
                if c is not None:
                    out.append(c)
        return _done(EnvoyStats(source, "stats-json", tuple(out)), text)
    if isinstance(doc, dict) and isinstance(doc.get("cluster_statuses"), list):
        hosts: list[HostCounters] = []
        for cs in doc["cluster_statuses"]:
            if not isinstance(cs, dict) or not isinstance(cs.get("name"), str):
                raise ConfigParseError(
                    'expected {"name": "<cluster>", "host_statuses": [...]} in "cluster_statuses"',
                    source=source,
                    line=1,
                )
            cname, cline = cs["name"], where(cs["name"])
            hs_list = cs.get("host_statuses", [])
            if not isinstance(hs_list, list):
                raise ConfigParseError(
                    f"cluster {cname}: host_statuses: expected a list", source=source, line=cline
                )
            for hs in hs_list:
                addr = _json_address(hs, cname, source, cline)
                st = hs.get("stats", [])
                if not isinstance(st, list):
                    raise ConfigParseError(
                        f"cluster {cname} host {addr}: stats: expected a list", source=source, line=cline
                    )
                vals = []
                for s in st:
                    if not isinstance(s, dict) or not isinstance(s.get("name"), str):
                        raise ConfigParseError(
                            f"cluster {cname} host {addr}: expected stats entries "
                            '{"name": ..., "value": ...}',
                            source=source,
                            line=cline,
                        )
                    vals.append(
                        (s["name"], _count(s.get("value", 0), f"{cname} {addr} {s['name']}", source, cline))
                    )
                health = hs.get("health_status", {})
                hflag = health.get("eds_health_status", "") if isinstance(health, dict) else ""
                hosts.append(HostCounters(cname, addr, tuple(vals), cline, str(hflag)))
        return _done(EnvoyStats(source, "clusters-json", (), tuple(hosts)), text)
    raise ConfigParseError(
        'expected Envoy admin JSON: {"stats": [...]} (/stats?format=json) or '
        '{"cluster_statuses": [...]} (/clusters?format=json)',
        source=source,
        line=1,
    )


def _json_address(hs: object, cname: str, source: str, line: int) -> str:
    try:
        sa = hs["address"]["socket_address"]  # type: ignore[index]
        ip, port = sa["address"], sa.get("port_value", 0)
        if not isinstance(ip, str) or isinstance(port, bool) or not isinstance(port, int):
            raise TypeError
    except (KeyError, TypeError):
        if isinstance(hs, dict) and isinstance(hs.get("address"), dict) and "pipe" in hs["address"]:
            return str(hs["address"]["pipe"].get("path", "pipe"))
        raise ConfigParseError(
            f"cluster {cname}: expected host_statuses[].address.socket_address {{address, port_value}}",
            source=source,
            line=line,
        ) from None
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def _parse_clusters_text(text: str, source: str) -> EnvoyStats:
    hosts: dict[tuple[str, str], list] = {}
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line:
            continue
        rest, sep, value = line.rpartition("::")
        rest, sep2, stat = rest.rpartition("::")
        if not sep or not sep2:
            if line.count("::") == 1:  # version_info::static and other cluster-manager lines
                continue
            raise ConfigParseError(
                "expected '<cluster>::<host>::<stat>::<value>' (Envoy admin /clusters)",
                source=source,
                line=lineno,
                snippet=line[:120],
            )
        if stat not in _HOST_STATS:
            continue  # a line about the cluster (circuit breakers, outlier detection, added_via_api)
        m = re.search(r"::(\[[0-9a-fA-F:.%a-zA-Z]*\]:\d+)$", rest)
        if m is not None:
            cluster, host = rest[: m.start()], m.group(1)
        else:
            cluster, sep3, host = rest.rpartition("::")
            if not sep3:
                continue  # "<cluster>::<key>::<value>": about the cluster
        entry = hosts.setdefault((cluster, host), [lineno, {}, ""])
        if stat == "health_flags":
            entry[2] = value
        elif stat in (
            "rq_total",
            "rq_success",
            "rq_error",
            "rq_timeout",
            "cx_total",
            "cx_connect_fail",
            "rq_active",
            "cx_active",
            "rq_pending_active",
        ):
            entry[1][stat] = _count(value, f"{cluster}::{host}::{stat}", source, lineno)
            if stat == "rq_total":
                entry[0] = lineno
    out = tuple(HostCounters(c, h, tuple(sorted(v[1].items())), v[0], v[2]) for (c, h), v in hosts.items())
    return _done(EnvoyStats(source, "clusters", (), out), text)


def envoy_counter_of(series: Series) -> StatCounter | None:
    """The Envoy counter a Prometheus series of ``/stats/prometheus`` is, or None for any other series.

    ``envoy_cluster_[<rest>_]<stat>{envoy_cluster_name|cluster_name="..."}`` and
    ``envoy_http_[<prefix>_]<stat>{[envoy_]http_conn_manager_prefix="..."}`` for the
    stats of :data:`CLUSTER_STATS` and :data:`HTTP_STATS` (see the module docstring).
    The value is not checked here.
    """
    name = series.name
    m = _PROM_CLUSTER_RE.match(name)
    scope, tags = "cluster", _CLUSTER_TAGS
    if m is None:
        m = _PROM_HTTP_RE.match(name)
        scope, tags = "http", _HTTP_TAGS
    if m is None:
        return None
    middle, stat = m.group(1), m.group(2)
    tag = next((series.label(t) for t in tags if series.has(t)), None)
    if scope == "http":
        prefix = tag if tag is not None else middle.rstrip("_")
        return StatCounter("http", prefix, stat, 0, series.line) if prefix else None
    if tag is None:
        return None
    shown = tag + ("." + middle[:-1].replace("_", ".") if middle else "")
    return StatCounter("cluster", shown, stat, 0, series.line, tag + "\0" + middle)


def _parse_prometheus(text: str, source: str) -> EnvoyStats:
    data = parse_exposition(text, source)
    out: list[StatCounter] = []
    for s in data.series:
        c = envoy_counter_of(s)
        if c is None:
            if _PROM_CLUSTER_RE.match(s.name):
                raise ConfigParseError(
                    f"{s.name}: expected a cluster name label (envoy_cluster_name or cluster_name)",
                    source=source,
                    line=s.line,
                )
            continue
        value = _count(s.points[0][1], s.name, source, s.line)
        out.append(StatCounter(c.scope, c.name, c.stat, value, c.line, c.key))
    return _done(EnvoyStats(source, "stats-prometheus", tuple(out)), text)


def _done(st: EnvoyStats, text: str) -> EnvoyStats:
    if not st.counters and not st.hosts:
        what = (
            "per-host rq_total"
            if st.form.startswith("clusters")
            else ("cluster.<name>.upstream_rq_total or http.<prefix>.no_cluster")
        )
        raise ConfigParseError(
            f"expected {what} counters in this Envoy admin output; found none",
            source=st.source,
            line=max(1, text.count("\n")),
        )
    return st
