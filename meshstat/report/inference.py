"""Tables (polars) for the results of :mod:`meshstat.inference`.

:func:`frame` turns any inference result into a tidy DataFrame with a fixed
schema per result type; :func:`check_tests_frame` adds the per-test rows of a
:class:`~meshstat.inference.CheckResult`.

The machine formats of ``check`` carry the answer, not only the per-backend
table: :func:`with_verdict` adds the columns ``verdict``, ``headline_test`` and
``headline_p_value`` to every row (CSV and Parquet cannot nest), and
:func:`check_json` writes one JSON object::

    {"verdict": "consistent" | "inconsistent" | "impossible" | "undecidable",
     "consistent": true | false, "alpha": 0.05,
     "headline_test": "exact binomial", "headline_p_value": 0.0016,
     "summary": "...", "notes": ["..."],
     "tests": [{"test": ..., "statistic": ..., "dof": ..., "pvalue": ...}, ...],
     "backends": [{...one object per row of the per-backend table...}]}

(plus ``"warnings"`` for the counters check, and ``"headline_p_value_range"``
when its counters were rounded). ``verdict`` is ``"impossible"`` when a
backend with share 0 got traffic, else ``"consistent"`` when the headline
p-value is at least ``alpha``, else ``"inconsistent"``; a counters check of
rounded counters is ``"undecidable"`` when some counts the listing allows are
consistent and others not (:attr:`meshstat.inference.counters.CounterCheck.verdict`).
Non-finite numbers are written as ``null``.
"""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING, Any

from meshstat import stats
from meshstat.errors import InvalidArgument
from meshstat.inference import AcceptanceResult, BandsResult, CanaryResult, CheckResult, PlanResult
from meshstat.inference._text import format_duration
from meshstat.report.text import Column, count, interval, percent, sig, text

if TYPE_CHECKING:
    import polars as pl

__all__ = [
    "CHECK_TESTS_COLUMNS",
    "COLUMNS",
    "check_json",
    "check_tests_frame",
    "check_verdict",
    "columns",
    "frame",
    "to_frame",
    "with_verdict",
]


def frame(result: Any) -> pl.DataFrame:
    """The table of an inference result.

    One schema per type: CheckResult, PlanResult, BandsResult, CanaryResult, AcceptanceResult.
    """
    if isinstance(result, CheckResult):
        return _check_frame(result)
    if isinstance(result, PlanResult):
        return _plan_frame(result)
    if isinstance(result, BandsResult):
        return _bands_frame(result)
    if isinstance(result, CanaryResult):
        return _canary_frame(result)
    if isinstance(result, AcceptanceResult):
        return _acceptance_frame(result)
    raise InvalidArgument(f"no table for {type(result).__name__}")


#: The name the other report modules use for their tables.
to_frame = frame


def columns(result: Any) -> tuple[Column, ...]:
    """The default columns of :func:`frame`'s table for ``result``'s type (:data:`COLUMNS`)."""
    for kind, cols in COLUMNS.items():
        if isinstance(result, kind):
            return cols
    raise InvalidArgument(f"no table for {type(result).__name__}")


def check_verdict(result: Any) -> str:
    """``"impossible"``, ``"consistent"``, ``"inconsistent"`` (or ``"undecidable"``) for a check."""
    own = getattr(result, "verdict", None)
    if isinstance(own, str):
        return own
    if result.method == "impossible":
        return "impossible"
    return "consistent" if result.consistent else "inconsistent"


def with_verdict(result: Any, table: pl.DataFrame) -> pl.DataFrame:
    """``table`` with the check's ``verdict``, ``headline_test`` and ``headline_p_value`` on every row.

    ``result`` is a :class:`~meshstat.inference.CheckResult` or a counters check
    (anything with ``method``, ``pvalue`` and ``consistent``).
    """
    import polars as pl

    return table.with_columns(
        pl.lit(check_verdict(result), dtype=pl.String).alias("verdict"),
        pl.lit(result.method, dtype=pl.String).alias("headline_test"),
        pl.lit(float(result.pvalue), dtype=pl.Float64).alias("headline_p_value"),
    )


def _finite(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


def check_json(result: Any, table: pl.DataFrame, tests: pl.DataFrame) -> str:
    """One JSON object: verdict, summary, tests and per-backend rows (see the module docstring)."""
    doc: dict[str, Any] = {
        "verdict": check_verdict(result),
        "consistent": bool(result.consistent),
        "alpha": _finite(result.alpha),
        "headline_test": result.method,
        "headline_p_value": _finite(result.pvalue),
        "summary": result.summary(),
        "notes": list(result.notes),
    }
    if getattr(result, "pvalue_range", None) is not None:
        doc["headline_p_value_range"] = [_finite(x) for x in result.pvalue_range]
    if hasattr(result, "warnings"):
        doc["warnings"] = list(result.warnings)
    doc["tests"] = json.loads(tests.write_json())
    doc["backends"] = json.loads(table.write_json())
    return json.dumps(doc, ensure_ascii=False, allow_nan=False)


def _check_frame(r: Any) -> pl.DataFrame:
    import numpy as np
    import polars as pl

    obs = np.asarray(r.observed, dtype=np.int64)
    ci = stats.wilson_interval(obs, r.n, 0.95)
    z = stats.z_scores(obs, r.shares)
    return pl.DataFrame(
        {
            "backend": list(r.names),
            "weight": list(r.weights),
            "expected_share": list(r.shares),
            "expected": [r.n * p for p in r.shares],
            "observed": obs.tolist(),
            "observed_share": (obs / r.n).tolist(),
            "z": z.tolist(),
            "ci95_low": ci.low.tolist(),
            "ci95_high": ci.high.tolist(),
        },
        schema={
            "backend": pl.String,
            "weight": pl.Int64,
            "expected_share": pl.Float64,
            "expected": pl.Float64,
            "observed": pl.Int64,
            "observed_share": pl.Float64,
            "z": pl.Float64,
            "ci95_low": pl.Float64,
            "ci95_high": pl.Float64,
        },
    )


def check_tests_frame(r: Any) -> pl.DataFrame:
    """One row per test: the headline test, chi-square, G-test, and each likelihood ratio."""
    import polars as pl

    rows: list[dict[str, Any]] = [
        {"test": r.method, "statistic": None, "dof": None, "pvalue": r.pvalue, "log10_lr": None},
        {"test": "chi-square", "statistic": r.chisquare_statistic, "dof": r.dof, "pvalue": r.chisquare_pvalue,
         "log10_lr": None},
        {"test": "G-test", "statistic": r.gtest_statistic, "dof": r.dof, "pvalue": r.gtest_pvalue, "log10_lr": None},
    ]
    for alt in r.alternatives:
        lr = alt.lr
        rows.append(
            {
                "test": f"likelihood ratio {alt.label} vs {'/'.join(map(str, r.weights))}",
                "statistic": None if math.isnan(lr) else lr,
                "dof": None,
                "pvalue": None,
                "log10_lr": None if math.isnan(alt.log10_lr) else alt.log10_lr,
            }
        )
    return pl.DataFrame(
        rows,
        schema={"test": pl.String, "statistic": pl.Float64, "dof": pl.Int64, "pvalue": pl.Float64,
                "log10_lr": pl.Float64},
        orient="row",
    )


def _plan_frame(r: Any) -> pl.DataFrame:
    import polars as pl

    rows = []
    for row in r.rows:
        rows.append(
            {
                "question": r.question,
                "method": row.method,
                "n": row.n,
                "probability": row.probability,
                "probability_n_minus_1": row.probability_before,
                "target": r.target,
                "seconds": None if (r.qps is None or row.n is None) else row.n / r.qps,
                "note": row.note,
            }
        )
    return pl.DataFrame(
        rows,
        schema={
            "question": pl.String,
            "method": pl.String,
            "n": pl.Int64,
            "probability": pl.Float64,
            "probability_n_minus_1": pl.Float64,
            "target": pl.Float64,
            "seconds": pl.Float64,
            "note": pl.String,
        },
        orient="row",
    )


def _bands_frame(r: Any) -> pl.DataFrame:
    import polars as pl

    rows = []
    for i, name in enumerate(r.names):
        for li, level in enumerate(r.levels):
            row: dict[str, Any] = {
                "backend": name,
                "weight": r.weights[i],
                "share": r.shares[i],
                "requests": r.requests,
                "level": level,
                "low": r.low[li][i],
                "high": r.high[li][i],
                "low_share": r.low[li][i] / r.requests,
                "high_share": r.high[li][i] / r.requests,
                "coverage": r.coverage[li][i],
                "sim_coverage": None if r.sim_coverage is None else r.sim_coverage[li][i],
            }
            if r.within is not None:
                row.update(
                    {
                        "within": r.within,
                        "p_below": r.p_below[i],
                        "p_above": r.p_above[i],
                        "p_outside": r.p_outside[i],
                        "sim_p_outside": None if r.sim_p_outside is None else r.sim_p_outside[i],
                    }
                )
            rows.append(row)
    schema: dict[str, Any] = {
        "backend": pl.String,
        "weight": pl.Int64,
        "share": pl.Float64,
        "requests": pl.Int64,
        "level": pl.Float64,
        "low": pl.Int64,
        "high": pl.Int64,
        "low_share": pl.Float64,
        "high_share": pl.Float64,
        "coverage": pl.Float64,
        "sim_coverage": pl.Float64,
    }
    if r.within is not None:
        schema.update(
            {"within": pl.Float64, "p_below": pl.Float64, "p_above": pl.Float64, "p_outside": pl.Float64,
             "sim_p_outside": pl.Float64}
        )
    return pl.DataFrame(rows, schema=schema, orient="row")


def _canary_frame(r: Any) -> pl.DataFrame:
    import polars as pl

    rows = []
    for s in r.steps:
        rows.append(
            {
                "weight_pct": s.weight,
                "requests_per_interval": s.requests,
                "canary_requests": s.canary_requests,
                "baseline_requests": s.baseline_requests,
                "p_zero_canary": s.p_zero,
                "p_zero_poisson": s.p_zero_poisson,
                "baseline_error_rate": s.baseline_error_rate,
                "detectable_error_rate": s.detectable_error_rate,
                "detectable_increase": s.detectable_increase,
                "interval_needed_s": s.interval_needed,
                "requests_needed": s.requests_needed,
            }
        )
    return pl.DataFrame(
        rows,
        schema={
            "weight_pct": pl.Float64,
            "requests_per_interval": pl.Float64,
            "canary_requests": pl.Float64,
            "baseline_requests": pl.Float64,
            "p_zero_canary": pl.Float64,
            "p_zero_poisson": pl.Float64,
            "baseline_error_rate": pl.Float64,
            "detectable_error_rate": pl.Float64,
            "detectable_increase": pl.Float64,
            "interval_needed_s": pl.Float64,
            "requests_needed": pl.Float64,
        },
        orient="row",
    )


def _acceptance_frame(r: Any) -> pl.DataFrame:
    import polars as pl

    return pl.DataFrame(
        {
            "weights": ["/".join(map(str, r.weights))],
            "truth": ["/".join(map(str, r.truth))],
            "n": [r.n],
            "tolerance": [r.tolerance],
            "attempts": [r.attempts],
            "pass_one": [r.pass_one],
            "fail_one": [r.fail_one],
            "pass_any": [r.pass_any],
            "fail_all": [r.fail_all],
        }
    )


def _band(low: Any, high: Any) -> str:
    return "-" if low is None or high is None else f"{count(low)}-{count(high)}"


def _seconds(v: Any) -> str:
    return "-" if v is None or v != v else format_duration(v)


#: Default columns of :func:`frame` for each result type (``check``, ``plan``, ``bands``, ``canary``).
COLUMNS: dict[type, tuple[Column, ...]] = {
    CheckResult: (
        Column("BACKEND", "backend", shrink=True),
        Column("WEIGHT", "weight", text, "right"),
        Column("EXPECTED", "expected", sig(4), "right"),
        Column("OBSERVED", "observed", count, "right"),
        Column("SHARE", "observed_share", sig(4), "right"),
        Column("95% INTERVAL", ("ci95_low", "ci95_high"), interval, "right"),
        Column("Z", "z", sig(3), "right"),
    ),
    PlanResult: (
        Column("METHOD", "method", shrink=True),
        Column("N", "n", count, "right"),
        Column("PROBABILITY", "probability", sig(4), "right"),
        Column("TIME", "seconds", _seconds, "right"),
        Column("NOTE", "note", shrink=True),
    ),
    BandsResult: (
        Column("BACKEND", "backend", shrink=True),
        Column("SHARE", "share", sig(4), "right"),
        Column("LEVEL", "level", percent(2), "right"),
        Column("REQUESTS", ("low", "high"), _band, "right"),
        Column("SHARE BAND", ("low_share", "high_share"), interval, "right"),
        Column("COVERAGE", "coverage", sig(4), "right"),
        Column("SIMULATED", "sim_coverage", sig(4), "right"),
        Column("P(OUTSIDE)", "p_outside", sig(3), "right"),
    ),
    CanaryResult: (
        Column("STEP", "weight_pct", lambda v: f"{v:g}%", "right"),
        Column("CANARY/INTERVAL", "canary_requests", sig(4), "right"),
        Column("P(NONE)", "p_zero_canary", sig(2), "right"),
        Column("DETECTABLE ERRORS", "detectable_error_rate", percent(2), "right"),
        Column("INTERVAL NEEDED", "interval_needed_s", _seconds, "right"),
    ),
    AcceptanceResult: (
        Column("WEIGHTS", "weights"),
        Column("TRUTH", "truth"),
        Column("N", "n", count, "right"),
        Column("TOLERANCE", "tolerance", sig(3), "right"),
        Column("PASS ONE", "pass_one", sig(4), "right"),
        Column("FAIL ONE", "fail_one", sig(4), "right"),
        Column("PASS ANY", "pass_any", sig(4), "right"),
        Column("FAIL ALL", "fail_all", sig(4), "right"),
    ),
}

#: Default columns of :func:`check_tests_frame`.
CHECK_TESTS_COLUMNS = (
    Column("TEST", "test", shrink=True),
    Column("STATISTIC", "statistic", sig(4), "right"),
    Column("DOF", "dof", text, "right"),
    Column("P-VALUE", "pvalue", sig(3), "right"),
    Column("LOG10 LR", "log10_lr", sig(3), "right"),
)
