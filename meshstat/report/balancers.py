"""Tables for the endpoint balancers (:mod:`meshstat.balancers`).

:func:`balancer_frame` (one row per backend):

==================  =======  ==========================================================
column              dtype    meaning
==================  =======  ==========================================================
policy              str      ``round_robin``, ``least_request``, ``maglev``, ...
backend             str      host key (``ip:port``)
expected            f64      exact long-run share (see ``expected_kind``)
expected_exact      str      the same as a fraction (``~`` prefix when rounded to 12 digits)
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

__all__ = ["affinity_frame", "balancer_frame", "connection_frame", "disruption_frame", "imbalance_frame", "worker_frame"]


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


def imbalance_frame(results: Sequence[Any]) -> pl.DataFrame:
    """One row per result: the imbalance metrics."""
    rows = []
    for r in results:
        m = r.imbalance()
        rows.append({"policy": r.policy, "n": int(r.n), **m, "connections": int(r.connections)})
    return pl.DataFrame(rows)


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
