"""Observed traffic as the real systems write it: Envoy admin stats and Prometheus metrics.

Text in, structures out, every element with its file and line; nothing here
decides what a series means for a split (that is
:mod:`meshstat.inference.observed_traffic`).

:mod:`~meshstat.parsers.observed.prometheus`
    The Prometheus text exposition format (a ``/metrics`` scrape, Envoy's
    ``/stats/prometheus``, an Istio sidecar's merged metrics) and the JSON of
    Prometheus' HTTP API (``/api/v1/query``: vector, ``/api/v1/query_range``: matrix).
:mod:`~meshstat.parsers.observed.envoy_stats`
    Envoy's admin ``/stats`` (text and ``?format=json``), ``/stats/prometheus``
    and ``/clusters`` (text and ``?format=json``), read into per-cluster,
    per-connection-manager and per-host counters.
"""

from __future__ import annotations

from meshstat.parsers.observed.envoy_stats import (
    CLUSTER_STATS,
    HTTP_STATS,
    EnvoyStats,
    HostCounters,
    IstioCluster,
    StatCounter,
    envoy_counter_of,
    istio_cluster,
    load_envoy_stats,
    parse_envoy_stats,
    prometheus_cluster_key,
)
from meshstat.parsers.observed.prometheus import (
    PrometheusData,
    Series,
    load_prometheus,
    parse_exposition,
    parse_prometheus,
    parse_query_json,
)

__all__ = [
    "CLUSTER_STATS",
    "HTTP_STATS",
    "EnvoyStats",
    "HostCounters",
    "IstioCluster",
    "PrometheusData",
    "Series",
    "StatCounter",
    "envoy_counter_of",
    "istio_cluster",
    "load_envoy_stats",
    "load_prometheus",
    "parse_envoy_stats",
    "parse_exposition",
    "parse_prometheus",
    "parse_query_json",
    "prometheus_cluster_key",
]
