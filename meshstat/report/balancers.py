"""Tables for the endpoint balancers (:mod:`meshstat.balancers`).

:func:`balancer_frame` (one row per backend):

==================  =======  ==========================================================
column              dtype    meaning
==================  =======  ==========================================================
policy              str      ``round_robin``, ``least_request``, ``maglev``, ...
backend             str      host key (``ip:port``)
expected            f64      exact long-run share (see ``expected_kind``)
expected_exact      str      the same as text (:func:`meshstat.model.share_text`)
expected_kind       str      ``long-run``, ``random``, ``keys``, ``hash-space`` or ``idle``
count               i64      requests routed to the backend
observed            f64      ``count / n``
deviation           f64      ``observed - expected``
load_vs_expected    f64      ``count / (n * expected)``
latency_p*          f64      latency quantiles in ms (least request only)
mean_active         f64      time-averaged requests in flight (least request only)
max_active          i64      largest requests in flight (least request only)
n                   i64      requests in the run
seed                str      seed entropy (replays the run)
==================  =======  ==========================================================

:func:`imbalance_frame`: one row with ``max_over_mean``, ``cv``,
``max_over_expected``, ``min_over_expected``. :func:`worker_frame`: per worker
and backend counts. :func:`disruption_frame`: keys per host before and after,
and the share that moved. :func:`connection_frame`: per backend spread with
connection reuse vs per request.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import polars as pl

from meshstat.model import share_text
from meshstat.report.text import Column, count, interval, percent, sig

__all__ = [
    "AFFINITY_COLUMNS",
    "BALANCER_COLUMNS",
    "CONNECTION_COLUMNS",
    "DISRUPTION_COLUMNS",
    "IMBALANCE_COLUMNS",
    "WORKER_COLUMNS",
    "affinity_frame",
    "balancer_frame",
    "connection_frame",
    "disruption_frame",
    "imbalance_frame",
    "worker_frame",
]


#: Default columns of :func:`balancer_frame` (latency and load columns only where the balancer has them).
BALANCER_COLUMNS = (
    Column("BACKEND", "backend", shrink=True),
    Column("EXPECTED", "expected", sig(6), "right"),
    Column("COUNT", "count", count, "right"),
    Column("OBSERVED", "observed", sig(6), "right"),
    Column("LOAD/EXPECTED", "load_vs_expected", sig(4), "right"),
    Column("P50 MS", "latency_p50_ms", sig(3), "right"),
    Column("P99 MS", "latency_p99_ms", sig(3), "right"),
    Column("MEAN ACTIVE", "mean_active", sig(3), "right"),
)


def balancer_frame(result: Any) -> pl.DataFrame:
    """Per-backend table of a :class:`meshstat.balancers.BalancerResult`."""
    exp = np.array([float(x) for x in result.expected], dtype=np.float64)
    n = int(result.n)
    counts = np.asarray(result.counts, dtype=np.int64)
    obs = counts / float(n)
    with np.errstate(divide="ignore", invalid="ignore"):
        lve = np.where(exp > 0, counts / (n * exp), np.nan)
    k = counts.size
    data: dict[str, Any] = {
        "policy": [result.policy] * k,
        "backend": list(result.backends),
        "expected": exp,
        "expected_exact": [share_text(x) for x in result.expected],
        "expected_kind": [result.expected_kind] * k,
        "count": counts,
        "observed": obs,
        "deviation": obs - exp,
        "load_vs_expected": lve,
    }
    if result.latency_quantiles is not None:
        for j, q in enumerate(result.quantiles):
            data[f"latency_p{q * 100:g}_ms"] = result.latency_quantiles[:, j] * 1e3
        data["latency_mean_ms"] = result.mean_latency * 1e3
        data["mean_active"] = np.asarray(result.mean_active, dtype=np.float64)
        data["max_active"] = np.asarray(result.max_active, dtype=np.int64)
    data["n"] = [n] * k
    data["seed"] = [str(result.seed_entropy)] * k
    return pl.DataFrame(data)


#: Default columns of :func:`imbalance_frame`.
IMBALANCE_COLUMNS = (
    Column("POLICY", "policy"),
    Column("N", "n", count, "right"),
    Column("MAX/MEAN", "max_over_mean", sig(4), "right"),
    Column("CV", "cv", sig(3), "right"),
    Column("MAX/EXPECTED", "max_over_expected", sig(4), "right"),
    Column("MIN/EXPECTED", "min_over_expected", sig(4), "right"),
)


def imbalance_frame(results: Sequence[Any]) -> pl.DataFrame:
    """One row per result: the imbalance metrics."""
    rows = []
    for r in results:
        m = r.imbalance()
        rows.append({"policy": r.policy, "n": int(r.n), **m, "connections": int(r.connections)})
    return pl.DataFrame(rows)


#: Default columns of :func:`worker_frame`.
WORKER_COLUMNS = (
    Column("WORKER", "worker", align="right"),
    Column("BACKEND", "backend", shrink=True),
    Column("COUNT", "count", count, "right"),
    Column("WORKER SHARE", "worker_share", sig(4), "right"),
)


def worker_frame(result: Any) -> pl.DataFrame:
    """Per worker and backend counts (round robin family with several workers); empty otherwise."""
    wc = result.worker_counts
    if wc is None:
        return pl.DataFrame(schema={"worker": pl.Int64, "backend": pl.String, "count": pl.Int64,
                                    "worker_share": pl.Float64})
    rows = []
    for w in range(wc.shape[0]):
        tot = int(wc[w].sum())
        for b, name in enumerate(result.backends):
            rows.append({"worker": w, "backend": name, "count": int(wc[w, b]),
                         "worker_share": float(wc[w, b] / tot) if tot else float("nan")})
    return pl.DataFrame(rows)


#: Default columns of :func:`disruption_frame` (the moved shares are in the line above the table).
DISRUPTION_COLUMNS = (
    Column("BACKEND", "backend", shrink=True),
    Column("KEYS BEFORE", "keys_before", count, "right"),
    Column("KEYS AFTER", "keys_after", count, "right"),
)


def disruption_frame(d: Any) -> pl.DataFrame:
    """Keys per host before and after a host-set change, with the moved share on every row."""
    hosts = list(dict.fromkeys([*d.before_counts, *d.after_counts]))
    return pl.DataFrame({
        "policy": [d.policy] * len(hosts),
        "backend": hosts,
        "keys_before": [d.before_counts.get(h, 0) for h in hosts],
        "keys_after": [d.after_counts.get(h, 0) for h in hosts],
        "moved_share": [d.moved_share] * len(hosts),
        "unavoidable_share": [d.unavoidable / d.n_keys] * len(hosts),
        "n_keys": [d.n_keys] * len(hosts),
    })


#: Default columns of :func:`connection_frame`.
CONNECTION_COLUMNS = (
    Column("BACKEND", "backend", shrink=True),
    Column("EXPECTED", "expected", sig(6), "right"),
    Column("MEAN SHARE", "mean_share", sig(4), "right"),
    Column("95% OF RUNS", ("share_p2.5", "share_p97.5"), interval, "right"),
    Column("SD", "sd_observed", sig(3), "right"),
    Column("SD PER REQUEST", "sd_per_request", sig(3), "right"),
    Column("DESIGN EFFECT", "design_effect", sig(3), "right"),
)


def connection_frame(result: Any) -> pl.DataFrame:
    """Per-backend spread of request counts with connection reuse vs one decision per request."""
    lo, hi = result.share_band(0.95)
    k = len(result.backends)
    return pl.DataFrame({
        "backend": list(result.backends),
        "expected": [float(x) for x in result.expected],
        "mean_share": result.counts.mean(axis=0) / result.n,
        "share_p2.5": lo,
        "share_p97.5": hi,
        "sd_observed": result.sd_observed,
        "sd_model": result.sd_model,
        "sd_per_request": result.sd_per_request,
        "design_effect": result.design_effect,
        "n": [result.n] * k,
        "replicates": [result.replicates] * k,
        "connections": [result.connections] * k,
        "seed": [str(result.seed_entropy)] * k,
    })


#: Default columns of :func:`affinity_frame`.
AFFINITY_COLUMNS = (
    Column("BACKEND", "backend", shrink=True),
    Column("EXPECTED", "expected", sig(6), "right"),
    Column("CONNECTIONS", "connections", count, "right"),
    Column("OBSERVED", "observed", sig(4), "right"),
    Column("EVICTIONS", "evictions", count, "right"),
    Column("STICKY", "sticky_share", percent(2), "right"),
)


def affinity_frame(result: Any) -> pl.DataFrame:
    """Per-endpoint connections of a :class:`meshstat.balancers.AffinityResult`, with stickiness."""
    k = len(result.backends)
    return pl.DataFrame({
        "backend": list(result.backends),
        "expected": [float(x) for x in result.expected],
        "connections": np.asarray(result.counts, dtype=np.int64),
        "observed": result.counts / float(result.n),
        "evictions": np.asarray(result.evictions, dtype=np.int64),
        "sticky_share": [result.sticky_share] * k,
        "clients_broken": [result.clients_broken] * k,
        "clients": [result.clients] * k,
        "seed": [str(result.seed_entropy)] * k,
    })
