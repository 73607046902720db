"""Tables (polars) for :class:`meshstat.inference.observed_check.ObservedCheck`.

:func:`windows_frame` has one row per window of a range query and name of the
split: the window, its requests, the configured and observed share, the window's
central 95% band of the count, the window's p-value and verdict (a ramp adds its
step, the detection power and the smallest detectable canary error rate).
:func:`sources_frame` says which series each count came from. :func:`observed_json`
is the one JSON object of ``check --envoy-stats/--prometheus --format json``: the
object of :func:`meshstat.report.inference.check_json` plus ``"observed"`` (form,
files, reporter), ``"windows"`` and ``"warnings"``.
"""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING, Any

from meshstat.inference.observed_check import ObservedCheck, format_time
from meshstat.report.inference import check_json
from meshstat.report.text import Column, count, sig

if TYPE_CHECKING:
    import polars as pl

__all__ = ["observed_json", "sources_frame", "windows_frame"]


def _verdict(res: Any) -> str:
    if res is None:
        return "no requests"
    if res.method == "impossible":
        return "impossible"
    return "consistent" if res.consistent else "inconsistent"


#: Default columns of :func:`windows_frame` (the ramp columns only for a canary ramp).
WINDOW_COLUMNS = (
    Column("WINDOW", "window", count, "right"),
    Column("END", "end"),
    Column("BACKEND", "backend", shrink=True),
    Column("REQUESTS", "requests", count, "right"),
    Column("EXPECTED", "expected_share", sig(4), "right"),
    Column("OBSERVED", "observed", count, "right"),
    Column("95% BAND", ("band95_low", "band95_high"), lambda lo, hi: "-" if lo is None else f"{lo:,}-{hi:,}", "right"),
    Column("P-VALUE", "p_value", sig(3), "right"),
    Column("VERDICT", "verdict"),
    Column("STEP %", "step_pct", sig(3), "right"),
)


def windows_frame(oc: ObservedCheck) -> pl.DataFrame:
    """One row per (window, name): counts, shares, the window's 95% band, p-value and verdict."""
    import polars as pl

    rows = []
    ramp = oc.ramp is not None
    for i, w in enumerate(oc.windows):
        total_w = sum(w.weights) or 1
        for j, name in enumerate(oc.matched.names):
            row: dict[str, Any] = {
                "window": i + 1,
                "start": format_time(w.start),
                "end": format_time(w.end),
                "backend": name,
                "requests": w.n,
                "expected_share": w.weights[j] / total_w,
                "observed": w.observed[j],
                "observed_share": (w.observed[j] / w.n) if w.n else None,
                "band95_low": w.low[j] if w.low else None,
                "band95_high": w.high[j] if w.high else None,
                "p_value": w.pvalue,
                "verdict": _verdict(w.result),
            }
            if ramp:
                row |= {
                    "step_pct": w.step,
                    "power": w.power,
                    "detectable_error_rate": w.detectable_error_rate,
                }
            rows.append(row)
    schema: dict[str, Any] = {
        "window": pl.Int64,
        "start": pl.String,
        "end": pl.String,
        "backend": pl.String,
        "requests": pl.Int64,
        "expected_share": pl.Float64,
        "observed": pl.Int64,
        "observed_share": pl.Float64,
        "band95_low": pl.Int64,
        "band95_high": pl.Int64,
        "p_value": pl.Float64,
        "verdict": pl.String,
    }
    if ramp:
        schema |= {"step_pct": pl.Float64, "power": pl.Float64, "detectable_error_rate": pl.Float64}
    return pl.DataFrame(rows, schema=schema, orient="row")


def sources_frame(oc: ObservedCheck) -> pl.DataFrame:
    """Which observed keys (and ``file:line`` of their series) make each count."""
    import polars as pl

    t = oc.traffic
    rows = []
    for name, keys in zip(oc.matched.names, oc.matched.keys, strict=True):
        for k in keys:
            rows.append(
                {
                    "backend": name,
                    "key": k,
                    "requests": t.totals[k],
                    "series": ", ".join(t.where[k][:3])
                    + (f" (+{len(t.where[k]) - 3})" if len(t.where[k]) > 3 else ""),
                }
            )
    return pl.DataFrame(
        rows,
        schema={"backend": pl.String, "key": pl.String, "requests": pl.Int64, "series": pl.String},
        orient="row",
    )


def _finite(x: float | None) -> float | None:
    return float(x) if x is not None and math.isfinite(x) else None


def observed_json(oc: ObservedCheck, table: pl.DataFrame | None, tests: pl.DataFrame | None) -> str:
    """One JSON object: the check of the whole period (when there is one), the data, the windows."""
    if oc.result is not None and table is not None and tests is not None:
        doc = json.loads(check_json(oc.result, table, tests))
    else:
        doc = {
            "verdict": "consistent" if oc.consistent else "inconsistent",
            "consistent": oc.consistent,
            "alpha": oc.alpha,
            "headline_test": oc.method,
            "headline_p_value": _finite(oc.pvalue),
        }
    doc["summary"] = oc.summary()
    doc["observed"] = {
        "form": oc.traffic.form,
        "files": list(oc.traffic.sources),
        "by": oc.traffic.by,
        "reporter": oc.traffic.reporter,
        "split": oc.split.origin,
    }
    doc["warnings"] = list(oc.warnings)
    doc["notes"] = list(oc.notes)
    if oc.windows:
        doc["windows"] = json.loads(windows_frame(oc).write_json())
        doc["worst_window"] = None if oc.worst is None else oc.worst + 1
        doc["worst_window_any_p_value"] = _finite(oc.worst_any)
        if oc.band is not None:
            doc["max_share_deviation"] = dict(
                zip(oc.matched.names, map(float, oc.band.max_deviation), strict=True)
            )
            doc["max_share_deviation_p_value"] = dict(
                zip(oc.matched.names, map(float, oc.band.max_deviation_pvalue), strict=True)
            )
    if oc.ramp is not None:
        r = oc.ramp
        doc["ramp"] = {
            "canary": r.canary,
            "steps": list(r.steps),
            "error_rate": r.error_rate,
            "detect_error_rate": r.detect_error_rate,
            "power": r.power,
            "first_window": None if r.first_window is None else r.first_window + 1,
            "first_step": r.first_step,
        }
    return json.dumps(doc, ensure_ascii=False, allow_nan=False)
