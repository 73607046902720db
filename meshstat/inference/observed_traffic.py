"""Observed traffic from Envoy's counters and Istio's metrics, as requests per backend of a configured split.

:func:`read_traffic` reads the files (:mod:`meshstat.parsers.observed`), picks the
series of one service and one caller, differences cumulative counters and returns
an :class:`ObservedTraffic`: requests per observed key over the whole period and,
for a Prometheus range query, per window. :mod:`meshstat.inference.observed_split` lays them onto
the configured split, and :func:`meshstat.inference.observed_check.check_observed` checks them.

What a key is
-------------
Envoy ``/stats`` (text, JSON, Prometheus)
    A cluster: ``cluster.<name>.upstream_rq_total`` (every try, retries included). An
    Istio cluster ``outbound|<port>|<subset>|<host>`` also answers to its subset name.
Envoy ``/clusters`` (text, JSON)
    A host's ``rq_total``, summed per cluster (``by="cluster"``) or kept per host
    address (``by="host"``).
Istio's ``istio_requests_total``
    ``destination_version`` (``by="version"``) or ``destination_workload``
    (``by="workload"``). Labels as the Istio proxy's stats filter writes them
    (istio/proxy ``source/extensions/filters/http/istio_stats/istio_stats.cc``:
    ``reporter`` is ``source`` on the client's sidecar and ``destination`` on the
    server's, every label it cannot fill is ``unknown``), documented in Istio's
    "Istio Standard Metrics" reference.

Responses that reached no backend are their own keys: ``503 UH`` (no healthy
upstream: Envoy's ``upstream_cx_none_healthy``, Istio's ``response_flags="UH"``),
``503 NC`` (no cluster: ``http.<prefix>.no_cluster``, flag ``NC``), ``404 NR`` (no route),
``503 UO`` (circuit breaker overflow) and ``<code> no backend`` (Istio: a
source-reported series whose ``destination_workload`` is ``unknown``, such as
the 500 of an invalid Gateway API backendRef). Envoy's ``no_cluster``,
``no_route`` and ``rq_direct_response`` count a whole HTTP connection manager,
every service behind it together: they enter a check only where the configured
split has that outcome.

Reporters: each request between two sidecars is counted once by each side's
proxy. One reporter is used, never both: ``source`` when present (it also sees
the responses that reached no backend, and it knows the caller), else
``destination``; with both present a warning says which.

Counters and time
-----------------
One snapshot gives counts since each counter started. Two snapshots (``before``,
``after``) and the points of a range query are differenced series by series, as
Prometheus' ``increase()`` does without its extrapolation (prometheus/prometheus
``promql/functions.go``: ``extrapolatedRate``: a value below its predecessor is a
counter reset, and the counter counted from 0 again): a reset is detected and
said, and only the requests after it are counted. A series that appears after the
first point is a new counter (Istio creates a series at its first request;
a new pod starts at 0) and counts from 0. Values must be integer counts:
``rate()`` and ``increase()`` results are extrapolated and refused.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from meshstat.errors import ConfigParseError, InvalidArgument
from meshstat.inputs import ascii_digits
from meshstat.parsers.observed.envoy_stats import (
    EnvoyStats,
    envoy_counter_of,
    istio_cluster,
    load_envoy_stats,
)
from meshstat.parsers.observed.prometheus import PrometheusData, Series, load_prometheus

__all__ = ["BYS", "ObservedTraffic", "Track", "Window", "is_outcome_name", "read_traffic"]

_FLAG_OUTCOME = {"UH": "503 UH", "NC": "503 NC", "NR": "404 NR", "UO": "503 UO"}
_STAT_OUTCOME = {
    "upstream_cx_none_healthy": "503 UH",
    "upstream_rq_pending_overflow": "503 UO",
    "no_cluster": "503 NC",
    "no_route": "404 NR",
    "rq_direct_response": "direct response",
}
BYS = ("cluster", "host", "version", "workload")


@dataclass(frozen=True)
class Track:
    """One cumulative counter as read: what it counts and its points.

    Attributes
    ----------
    key : str
        The observed key (a cluster, host address, version or workload; or a
        not-routed outcome such as ``503 UH``).
    aliases : tuple of str
        Every name a configured backend may use for this key (the key first).
    routed : bool
        Whether the requests reached a backend.
    scope : str
        ``"service"``, or ``"listener"`` for a counter of a whole connection manager.
    points : tuple of (time, value)
        Cumulative values (time 0, 1 for snapshots without a time).
    where : str
        ``file:line`` of the first point.
    """

    key: str
    aliases: tuple[str, ...]
    routed: bool
    scope: str
    points: tuple[tuple[float, float], ...]
    where: str


@dataclass(frozen=True)
class Window:
    """Requests per key between two points of a range query (``start`` exclusive, ``end`` inclusive)."""

    start: float
    end: float
    counts: Mapping[str, int]


@dataclass(frozen=True)
class ObservedTraffic:
    """Requests per observed key, over the observed period and per window.

    Attributes
    ----------
    form : str
        What was read (``"Envoy /stats"``, ``"Envoy /clusters"``,
        ``"istio_requests_total"``, ``"envoy_cluster_upstream_rq_total (Prometheus)"``).
    by : str
        What a key is: ``cluster``, ``host``, ``version`` or ``workload``.
    sources : tuple of str
        The files.
    totals : mapping
        Key -> requests over the whole period (both ends of a range).
    windows : tuple of Window
        One per step of a range query (empty for snapshots).
    aliases, routed, scope, where : mapping
        Per key (see :class:`Track`); ``where`` lists ``file:line`` of its series.
    reporter : str or None
        The Istio reporter used.
    warnings, notes : tuple of str
    """

    form: str
    by: str
    sources: tuple[str, ...]
    totals: Mapping[str, int]
    windows: tuple[Window, ...]
    aliases: Mapping[str, tuple[str, ...]]
    routed: Mapping[str, bool]
    scope: Mapping[str, str]
    where: Mapping[str, tuple[str, ...]]
    reporter: str | None = None
    warnings: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()

    def keys(self, *, routed: bool | None = None) -> tuple[str, ...]:
        """Keys in natural order (``v2`` before ``v10``), optionally only routed or not-routed ones."""
        ks = [k for k in self.totals if routed is None or self.routed[k] == routed]
        return tuple(sorted(ks, key=_natural))


def _natural(s: str) -> list[object]:
    return [int(t) if ascii_digits(t) else t for t in re.split(r"(\d+)", s)]


# --------------------------------------------------------------------------- reading


def read_traffic(
    *,
    envoy_stats: Sequence[str] = (),
    prometheus: Sequence[str] = (),
    service: str | None = None,
    client: str | None = None,
    reporter: str | None = None,
    by: str | None = None,
    names: Sequence[str] | None = None,
) -> ObservedTraffic:
    """Read one or two Envoy admin outputs, or one or two Prometheus files, into requests per key.

    Parameters
    ----------
    envoy_stats : sequence of str
        ``[after]`` or ``[before, after]``: ``/stats`` (text or JSON),
        ``/stats/prometheus`` or ``/clusters`` (text or JSON), both of one form.
    prometheus : sequence of str
        ``[file]`` or ``[before, after]``: a scrape or an API answer (vector or matrix;
        a matrix alone).
    service : str, optional
        ``name``, ``name.namespace``, a FQDN or ``namespace/name``, optionally ``:port``:
        Istio's ``destination_service`` or the host of Istio cluster names.
    client : str, optional
        ``name`` or ``namespace/name``: Istio's ``source_workload`` (and namespace).
    reporter : str, optional
        ``source`` or ``destination`` (default: source when present).
    by : str, optional
        ``cluster``, ``host``, ``version`` or ``workload`` (default: from the data and ``names``).
    names : sequence of str, optional
        The configured backends' names: they choose ``by`` and the clusters of plain Envoy names.
    """
    if bool(envoy_stats) == bool(prometheus):
        raise InvalidArgument("give Envoy admin outputs or Prometheus files (one kind)")
    files = list(envoy_stats or prometheus)
    if not 1 <= len(files) <= 2:
        raise InvalidArgument(f"give one file or two (before, after), got {len(files)}")
    if by is not None and by not in BYS:
        raise InvalidArgument(f"by must be one of {', '.join(BYS)}, got {by!r}")
    if reporter is not None and reporter not in ("source", "destination", "waypoint"):
        raise InvalidArgument(f"reporter must be source or destination, got {reporter!r}")
    warnings: list[str] = []
    notes: list[str] = []
    if envoy_stats:
        if client is not None:
            raise InvalidArgument(
                "--client picks Istio's source_workload label; Envoy admin counters are one "
                "proxy's (one caller's) already"
            )
        stats = [load_envoy_stats(f) for f in files]
        forms = {s.form.startswith("clusters") for s in stats}
        if len(forms) > 1:
            raise InvalidArgument(
                f"{files[0]} and {files[1]}: compare like with like (both /stats or both /clusters)"
            )
        tracks, by, form = _envoy_tracks(stats, service, by, names, warnings, notes)
        rep = None
    else:
        datas = [load_prometheus(f) for f in files]
        if len(datas) == 2 and any(d.form == "matrix" for d in datas):
            raise InvalidArgument("a range query (matrix) holds its own before and after: give it alone")
        tracks, by, form, rep = _prometheus_tracks(
            datas, service, client, reporter, by, names, warnings, notes
        )
    totals, windows = _difference(tracks, notes, warnings)
    keys = dict.fromkeys(t.key for t in tracks)
    where: dict[str, list[str]] = {}
    for t in tracks:
        where.setdefault(t.key, []).append(t.where)
    return ObservedTraffic(
        form=form,
        by=by,
        sources=tuple(files),
        totals={k: totals.get(k, 0) for k in keys},
        windows=tuple(windows),
        aliases={t.key: t.aliases for t in tracks},
        routed={t.key: t.routed for t in tracks},
        scope={t.key: t.scope for t in tracks},
        where={k: tuple(dict.fromkeys(v)) for k, v in where.items()},
        reporter=rep,
        warnings=tuple(dict.fromkeys(warnings)),
        notes=tuple(dict.fromkeys(notes)),
    )


def _service_matcher(service: str) -> tuple[set[str], str | None, int | None]:
    """``reviews``, ``reviews.default``, FQDN or ``default/reviews`` (``:port``) -> hosts, namespace, port."""
    text = service.strip()
    port = None
    if ":" in text:
        text, _, p = text.rpartition(":")
        if not ascii_digits(p) or not 0 < int(p) < 65536:
            raise InvalidArgument(f"expected --service HOST[:PORT], got {service!r}")
        port = int(p)
    ns = None
    if "/" in text:
        ns, _, text = text.partition("/")
    if not text:
        raise InvalidArgument(f"expected --service HOST[:PORT], got {service!r}")
    return {text}, ns, port


def _host_matches(host: str, forms: set[str], ns: str | None) -> bool:
    host = re.sub(
        r":\d+$", "", host
    )  # an authority such as reviews:9080 (Istio's fallback without a cluster)
    for f in forms:
        if host == f or host.startswith(f + "."):
            parts = host.split(".")
            if ns is not None and (len(parts) < 2 or parts[0] != f or parts[1] != ns):
                continue
            return True
    return False


def _envoy_tracks(
    stats: list[EnvoyStats],
    service: str | None,
    by: str | None,
    names: Sequence[str] | None,
    warnings: list[str],
    notes: list[str],
) -> tuple[list[Track], str, str]:
    hosts_form = stats[-1].form.startswith("clusters")
    if by in ("version", "workload"):
        raise InvalidArgument(
            f"by {by} needs Istio's metrics (--prometheus); Envoy counters are per cluster or host"
        )
    if by == "host" and not hosts_form:
        raise InvalidArgument("by host needs Envoy's /clusters output (per-host rq_total)")
    by = by or "cluster"
    times = [float(i) for i in range(len(stats))] if len(stats) == 2 else [math.nan]
    if hosts_form:
        all_clusters = list(dict.fromkeys(h.cluster for s in stats for h in s.hosts))
    else:
        all_clusters = list(dict.fromkeys(n for s in stats for n in s.names("cluster")))
    chosen = _choose_clusters(all_clusters, stats, service, names, hosts_form)
    tracks: list[Track] = []
    for cname in chosen:
        ic = istio_cluster(cname)
        aliases = (cname,) + ((ic.subset,) if ic is not None and ic.subset else ())
        if hosts_form:
            addrs = list(dict.fromkeys(h.address for s in stats for h in s.hosts if h.cluster == cname))
            for a in addrs:
                pts, where = [], ""
                for t, s in zip(times, stats, strict=True):
                    h = next((h for h in s.hosts if h.cluster == cname and h.address == a), None)
                    if h is not None:
                        pts.append((t, float(h.rq_total)))
                        where = f"{s.source}:{h.line}"
                key = a if by == "host" else cname
                als = (a, cname, *aliases[1:]) if by == "host" else aliases
                tracks.append(Track(key, als, True, "service", tuple(pts), where))
            continue
        for stat in ("upstream_rq_total", "upstream_cx_none_healthy", "upstream_rq_pending_overflow"):
            pts, where = _stat_points(times, stats, "cluster", cname, stat)
            if not pts:
                continue
            if stat == "upstream_rq_total":
                tracks.append(Track(cname, aliases, True, "service", tuple(pts), where))
            elif any(v for _, v in pts):
                o = _STAT_OUTCOME[stat]
                tracks.append(Track(o, (o,), False, "service", tuple(pts), where))
        retry = [s.find("cluster", cname, "upstream_rq_retry") for s in stats]
        r = [c.value for c in retry if c is not None]
        retries = r[-1] - (r[0] if len(r) == 2 and r[0] <= r[-1] else 0) if r else 0
        if retries > 0:
            warnings.append(
                f"{cname}: {retries} retries: upstream_rq_total counts every try, so its counts are tries, "
                "not requests"
            )
    if hosts_form:
        notes.append(
            "Envoy /clusters has no count of requests that found no healthy host (503 UH); /stats has "
            "(upstream_cx_none_healthy)"
        )
    else:
        prefixes = list(dict.fromkeys(n for s in stats for n in s.names("http")))
        for p in prefixes:
            for stat in ("no_cluster", "no_route", "rq_direct_response"):
                pts, where = _stat_points(times, stats, "http", p, stat)
                if pts and any(v for _, v in pts):
                    o = _STAT_OUTCOME[stat]
                    tracks.append(Track(o, (o,), False, "listener", tuple(pts), where))
    form = "Envoy /clusters" if hosts_form else "Envoy /stats"
    if stats[-1].form == "stats-prometheus":
        form = "Envoy /stats/prometheus"
    return tracks, by, form


def _stat_points(
    times: list[float], stats: list[EnvoyStats], kind: str, name: str, stat: str
) -> tuple[list[tuple[float, float]], str]:
    """One counter over the snapshots: ``(time, value)`` where a snapshot has it, and the last file:line."""
    pts: list[tuple[float, float]] = []
    where = ""
    for t, s in zip(times, stats, strict=True):
        c = s.find(kind, name, stat)
        if c is not None:
            pts.append((t, float(c.value)))
            where = f"{s.source}:{c.line}"
    return pts, where


def _choose_clusters(
    all_clusters: list[str],
    stats: list[EnvoyStats],
    service: str | None,
    names: Sequence[str] | None,
    hosts_form: bool,
) -> list[str]:
    src = stats[-1].source
    istio = {c: istio_cluster(c) for c in all_clusters}
    if service is not None:
        forms, ns, port = _service_matcher(service)
        chosen = [
            c
            for c, ic in istio.items()
            if ic is not None
            and ic.direction == "outbound"
            and _host_matches(ic.host, forms, ns)
            and (port is None or ic.port == port)
        ]
        matched = sorted({istio[c].host for c in chosen})  # type: ignore[union-attr]
        if len(matched) > 1:
            raise InvalidArgument(
                f"--service {service!r} is ambiguous: {', '.join(matched)} (give name.namespace)"
            )
        if not chosen:
            hosts = sorted(
                {f"{ic.host}:{ic.port}" for ic in istio.values() if ic and ic.direction == "outbound"}
            )
            raise InvalidArgument(
                f"{src}: no Istio cluster outbound|PORT|SUBSET|HOST of {service!r} "
                f"(services there: {', '.join(hosts[:8]) or 'none: plain cluster names, give --names'})"
            )
        return chosen
    if names:
        chosen = []
        for c in all_clusters:
            ic = istio[c]
            if c in names or (ic is not None and ic.direction == "outbound" and ic.subset in names):
                chosen.append(c)
        by_host = {istio[c].host for c in chosen if istio[c] is not None}  # type: ignore[union-attr]
        if len(by_host) > 1:
            raise InvalidArgument(
                f"{src}: subsets {', '.join(names)} exist for several services "
                f"({', '.join(sorted(by_host))}): pick one with --service"
            )
        if chosen:
            return chosen
        if not hosts_form:
            raise InvalidArgument(
                f"{src}: no cluster named {', '.join(names)} (clusters there: "
                f"{', '.join(all_clusters[:8])}{', ...' if len(all_clusters) > 8 else ''})"
            )
    outbound = [c for c, ic in istio.items() if ic is not None and ic.direction == "outbound"]
    hosts = sorted({istio[c].host for c in outbound})  # type: ignore[union-attr]
    if len(hosts) == 1:
        return outbound
    if len(hosts) > 1:
        raise InvalidArgument(
            f"{src}: clusters of {len(hosts)} services ({', '.join(hosts[:6])}): pick one with "
            "--service HOST[:PORT]"
        )
    raise InvalidArgument(
        f"{src}: plain cluster names ({', '.join(all_clusters[:6])}): give --names C1,C2,... "
        "(the route's clusters, in the order of --weights) or the route (-f, --envoy)"
    )


def _istio_key(s: Series, by: str) -> tuple[str, tuple[str, ...], bool]:
    flags = [f for f in s.label("response_flags", "-").split(",") if f in _FLAG_OUTCOME]
    if flags:
        o = _FLAG_OUTCOME[flags[0]]
        return o, (o,), False
    if s.has("destination_workload") and s.label("destination_workload") == "unknown":
        code = s.label("response_code", "0")
        return f"{code} no backend", (f"{code} no backend", f"{code} direct response"), False
    if by == "version":
        v = s.label("destination_version", "unknown")
        return v, (v,), True
    if not s.has("destination_workload"):
        raise InvalidArgument(
            "the series have no destination_workload label (the query aggregated it away): match by version"
        )
    w = s.label("destination_workload")
    return w, (w,), True


def _prometheus_tracks(
    datas: list[PrometheusData],
    service: str | None,
    client: str | None,
    reporter: str | None,
    by: str | None,
    names: Sequence[str] | None,
    warnings: list[str],
    notes: list[str],
) -> tuple[list[Track], str, str, str | None]:
    last = datas[-1]
    istio = [
        s
        for s in last.series
        if s.name == "istio_requests_total"
        or (
            not s.name
            and (
                s.has("destination_service") or s.has("destination_version") or s.has("destination_workload")
            )
        )
    ]
    if not istio:
        envoy = [s for s in last.series if envoy_counter_of(s) is not None]
        if not envoy:
            raise ConfigParseError(
                "expected istio_requests_total or envoy_cluster_upstream_rq_total series",
                source=last.source,
                line=last.series[0].line,
            )
        return _envoy_prom_tracks(datas, service, by, names, warnings, notes)
    if by in ("cluster", "host"):
        raise InvalidArgument(
            f"by {by} needs Envoy's counters; istio_requests_total is per version or workload"
        )
    sel_all = [[s for s in d.series if s.name == "istio_requests_total" or not s.name] for d in datas]
    reps = sorted({s.label("reporter") for s in sel_all[-1] if s.has("reporter")})
    rep = reporter
    if rep is None:
        rep = "source" if "source" in reps else (reps[0] if reps else None)
        if len(reps) > 1:
            warnings.append(
                f"reporters {', '.join(reps)} both present: each request between two sidecars is counted "
                f"once by each; using reporter={rep} only (--reporter to choose)"
            )
    elif rep not in reps and reps:
        raise InvalidArgument(
            f"{last.source}: no series with reporter={rep} (reporters there: {', '.join(reps)})"
        )
    if not reps:
        warnings.append(
            "the series have no reporter label: if the query summed over reporter, each request between "
            "two sidecars is counted twice"
        )
    if rep == "destination":
        notes.append(
            "reporter=destination: requests that reached no backend (503 UH, NC) are not in these series "
            "(the client's sidecar answered them); reporter=source has them"
        )
    sel = [[s for s in ss if rep is None or s.label("reporter") == rep] for ss in sel_all]
    if service is not None:
        forms, ns, _port = _service_matcher(service)
        if _port is not None:
            notes.append("istio_requests_total has no port label: the port of --service is not used")

        def svc_ok(s: Series) -> bool:
            if _host_matches(s.label("destination_service"), forms, ns):
                return True
            return s.label("destination_service_name") in forms and (
                ns is None or s.label("destination_service_namespace") == ns
            )

        sel = [[s for s in ss if svc_ok(s)] for ss in sel]
        hosts = sorted({re.sub(r":\d+$", "", s.label("destination_service")) for s in sel[-1]} - {"unknown"})
        hosts = [h for h in hosts if "." in h]  # FQDNs (an authority such as "reviews" names no namespace)
        if len(hosts) > 1:
            raise InvalidArgument(
                f"--service {service!r} is ambiguous: {', '.join(hosts)} (give name.namespace)"
            )
        if not sel[-1]:
            svcs = sorted({s.label("destination_service") for s in sel_all[-1]})
            raise InvalidArgument(
                f"{last.source}: no series of {service!r} (destination_service there: {', '.join(svcs[:8])})"
            )
    else:
        svcs = sorted({s.label("destination_service") for s in sel[-1] if s.has("destination_service")})
        if len(svcs) > 1:
            raise InvalidArgument(
                f"{last.source}: series of {len(svcs)} services ({', '.join(svcs[:6])}): pick one "
                "with --service"
            )
    if client is not None:
        cns, _, cname = client.rpartition("/")
        cname = cname.removeprefix("deploy/")

        def client_ok(s: Series) -> bool:
            return s.label("source_workload") == cname and (
                not cns or s.label("source_workload_namespace") == cns
            )

        sel = [[s for s in ss if client_ok(s)] for ss in sel]
        if not sel[-1]:
            cl = sorted({s.label("source_workload") for ss in sel_all for s in ss})
            raise InvalidArgument(
                f"{last.source}: no series with source_workload {client!r} (callers there: "
                f"{', '.join(cl[:8])})"
            )
    else:
        callers = sorted(
            {
                f"{s.label('source_workload_namespace')}/{s.label('source_workload')}"
                for s in sel[-1]
                if s.has("source_workload")
            }
        )
        if len(callers) > 1:
            notes.append(
                f"{len(callers)} callers summed ({', '.join(callers[:5])}"
                f"{', ...' if len(callers) > 5 else ''}"
                "): --client picks one"
            )
    if by is None:
        by = "version"
        if names:
            versions = {s.label("destination_version") for s in sel[-1]}
            workloads = {s.label("destination_workload") for s in sel[-1]}
            routed_names = [n for n in names if not is_outcome_name(n)]
            if routed_names and not set(routed_names) <= versions and set(routed_names) <= workloads:
                by = "workload"
    tracks = _join(datas, sel, lambda s: _istio_key(s, by))  # type: ignore[arg-type]
    return tracks, by, "istio_requests_total", rep


def is_outcome_name(n: str) -> bool:
    return bool(re.match(r"\d{3} ", n)) or n == "direct response"


def _envoy_prom_tracks(
    datas: list[PrometheusData],
    service: str | None,
    by: str | None,
    names: Sequence[str] | None,
    warnings: list[str],
    notes: list[str],
) -> tuple[list[Track], str, str, None]:
    if by not in (None, "cluster"):
        raise InvalidArgument(f"by {by}: Envoy's Prometheus counters are per cluster")
    sel = [[s for s in d.series if envoy_counter_of(s) is not None] for d in datas]
    info = {id(s): envoy_counter_of(s) for ss in sel for s in ss}
    clusters = list(dict.fromkeys(info[id(s)].name for s in sel[-1] if info[id(s)].scope == "cluster"))  # type: ignore[union-attr]
    fake = EnvoyStats(datas[-1].source, "stats-prometheus", tuple(c for c in info.values() if c is not None))
    chosen = set(_choose_clusters(clusters, [fake], service, names, False))

    def key(s: Series) -> tuple[str, tuple[str, ...], bool] | None:
        c = info[id(s)]
        assert c is not None
        if c.scope == "http" or c.stat == "upstream_rq_retry":
            return (
                None
                if c.stat == "upstream_rq_retry" or c.stat not in _STAT_OUTCOME
                else (_STAT_OUTCOME[c.stat], (_STAT_OUTCOME[c.stat],), False)
            )
        if c.name not in chosen:
            return None
        if c.stat == "upstream_rq_total":
            ic = istio_cluster(c.name)
            return c.name, (c.name,) + ((ic.subset,) if ic and ic.subset else ()), True
        o = _STAT_OUTCOME[c.stat]
        return o, (o,), False

    tracks = _join(datas, sel, key)
    tracks = [
        t
        if t.routed or not t.key.startswith(("503 NC", "404 NR", "direct"))
        else Track(t.key, t.aliases, False, "listener", t.points, t.where)
        for t in tracks
    ]
    pods = {
        tuple((k, v) for k, v in s.labels if k in ("pod", "instance", "kubernetes_pod_name")) for s in sel[-1]
    }
    if len(pods) > 1:
        notes.append(f"{len(pods)} proxies (pod/instance labels) summed: every caller together")
    return tracks, "cluster", "envoy_cluster_upstream_rq_total (Prometheus)", None


def _join(datas: list[PrometheusData], sel: list[list[Series]], keyfn) -> list[Track]:
    """One track per series identity (labels), points from every file (or the matrix's own points)."""
    out: dict[tuple[tuple[str, str], ...], list] = {}
    two = len(datas) == 2
    if two:
        t0 = [s.points[0][0] for s in sel[0] if not math.isnan(s.points[0][0])]
        t1 = [s.points[0][0] for s in sel[1] if not math.isnan(s.points[0][0])]
        if t0 and t1 and max(t0) >= min(t1):
            raise InvalidArgument(
                f"{datas[0].source} must be the earlier snapshot ({datas[1].source} is not later)"
            )
    for i, ss in enumerate(sel):
        for s in ss:
            k = keyfn(s)
            if k is None:
                continue
            ident = tuple(x for x in s.labels if x[0] != "__name__")
            entry = out.setdefault(ident, [k, [], f"{datas[i].source}:{s.line}"])
            if two:
                entry[1].append((float(i), s.points[0][1], datas[i].source, s.line))
            else:
                entry[1].extend((t, v, datas[i].source, s.line) for t, v in s.points)
    tracks = []
    for _ident, (k, pts, where) in out.items():
        for _t, v, src, line in pts:
            if not (v >= 0 and math.isfinite(v) and float(v).is_integer()):
                raise ConfigParseError(
                    f"expected request counts (non-negative integers), got {v!r}: rate() and "
                    "increase() are extrapolated, query the counter itself (istio_requests_total"
                    " at two times, or a range query of it)",
                    source=src,
                    line=line,
                )
        times = [p[0] for p in pts]
        if len(datas) == 1 and len(times) == 1 and datas[0].form != "matrix":
            times = [math.nan]
        tracks.append(
            Track(
                k[0], k[1], k[2], "service", tuple((t, p[1]) for t, p in zip(times, pts, strict=True)), where
            )
        )
    return tracks


# --------------------------------------------------------------------------- differencing


def _fmt_t(t: float) -> str:
    import time

    if t < 1e6:
        return "the first snapshot" if t == 0 else "the second snapshot"
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def _difference(
    tracks: list[Track], notes: list[str], warnings: list[str]
) -> tuple[dict[str, int], list[Window]]:
    times = sorted({t for tr in tracks for t, _ in tr.points if not math.isnan(t)})
    totals: dict[str, int] = {}
    if len(times) <= 1:
        for tr in tracks:
            totals[tr.key] = totals.get(tr.key, 0) + int(tr.points[-1][1])
        notes.append(
            "one snapshot: counts since each counter started (Envoy's start, or the series' first request)"
        )
        return totals, []
    index = {t: i for i, t in enumerate(times)}
    per: list[dict[str, int]] = [{} for _ in times[1:]]
    resets, gaps, late = [], 0, 0
    for tr in tracks:
        pts = sorted(tr.points)
        first_t, first_v = pts[0]
        if first_t > times[0]:
            late += 1
            w = index[first_t] - 1
            per[w][tr.key] = per[w].get(tr.key, 0) + int(first_v)
        for (ta, va), (tb, vb) in itertools.pairwise(pts):
            inc = vb - va
            if vb < va:
                inc = vb
                resets.append(f"{tr.where} ({tr.key}) fell from {int(va)} to {int(vb)} at {_fmt_t(tb)}")
            if index[tb] - index[ta] > 1:
                gaps += 1
            w = index[tb] - 1
            per[w][tr.key] = per[w].get(tr.key, 0) + int(inc)
    for d in per:
        for k, v in d.items():
            totals[k] = totals.get(k, 0) + v
    for tr in tracks:
        totals.setdefault(tr.key, 0)
    if resets:
        warnings.append(
            f"{len(resets)} counter reset(s) (a restart): only the requests after each reset are counted; "
            + "; ".join(resets[:3])
            + ("; ..." if len(resets) > 3 else "")
        )
    if late:
        notes.append(f"{late} series start after the first point: new counters, counted from 0")
    if gaps:
        notes.append(
            f"{gaps} gap(s) in a series: its increase is counted in the window where it has its next point"
        )
    windows = [Window(times[i], times[i + 1], per[i]) for i in range(len(times) - 1)]
    if len(windows) == 1:
        return totals, []
    return totals, windows
