"""Tables for :func:`meshstat.simulate` and :func:`meshstat.compare`.

Schema of :func:`to_frame` / :func:`compare_frame` (one row per route and backend):

=================  =======  ==========================================================
column             dtype    meaning
=================  =======  ==========================================================
route              str      route name (``kube-proxy``, ``envoy``, ...)
backend            str      backend name
expected           f64      exact share (float of ``expected_exact``)
expected_exact     str      exact share as a fraction (``9/10``); ``~`` and 17 significant
                            digits when the fraction is longer than 48 characters or the
                            share is not exact (a cascade over ``MAX_EXACT_RULES`` rules,
                            on the kernels' ``2**-64`` grid): :func:`meshstat.model.share_text`
count              i64      requests routed to the backend
observed           f64      ``count / n``
deviation          f64      ``observed - expected``
z                  f64      ``(count - n p) / sqrt(n p (1 - p))``
p_value            f64      two-sided exact binomial p-value of this backend's count
                            (:func:`meshstat.stats.binomial_pvalue`, as ``check``)
wilson_low/high    f64      95% Wilson interval of the share
cp_low/high        f64      95% Clopper-Pearson interval of the share
n                  i64      requests in the run
chi2_pvalue        f64      chi-square goodness of fit of the route (same on its rows)
g_pvalue           f64      G-test goodness of fit of the route
mode               str      ``per_request``, ``faithful`` or ``exact``
seed               str      seed entropy (replays the run)
=================  =======  ==========================================================
"""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction

import numpy as np
import polars as pl

from meshstat.engine.result import SimulationResult
from meshstat.model import Cascade, share_text
from meshstat.report.text import Column, count, decimals_for, interval, sig, text
from meshstat.stats import binomial_pvalue

__all__ = [
    "CASCADE_COLUMNS",
    "COMPARE_COLUMNS",
    "SCHEMA",
    "SIMULATE_COLUMNS",
    "WINDOW_SUMMARY_COLUMNS",
    "cascade_frame",
    "compare_frame",
    "display_frame",
    "to_frame",
    "window_frame",
    "window_summary_frame",
]

SCHEMA: dict[str, pl.DataType] = {
    "route": pl.String(),
    "backend": pl.String(),
    "expected": pl.Float64(),
    "expected_exact": pl.String(),
    "count": pl.Int64(),
    "observed": pl.Float64(),
    "deviation": pl.Float64(),
    "z": pl.Float64(),
    "p_value": pl.Float64(),
    "wilson_low": pl.Float64(),
    "wilson_high": pl.Float64(),
    "cp_low": pl.Float64(),
    "cp_high": pl.Float64(),
    "n": pl.Int64(),
    "chi2_pvalue": pl.Float64(),
    "g_pvalue": pl.Float64(),
    "mode": pl.String(),
    "seed": pl.String(),
}


def _expected(exact: str, approx: float) -> str:
    """The exact share when it is short (``9/10``), else the float (``≈0.333333``)."""
    if len(exact) <= 12 and not exact.startswith("~"):
        return exact
    return f"≈{approx:.6g}"


def _observed(obs: float, low: float, high: float) -> str:
    return f"{obs:.{decimals_for(low, high)}f}"


#: Default columns of :func:`to_frame` (``simulate``): what each backend should get, what it got, how sure.
SIMULATE_COLUMNS = (
    Column("BACKEND", "backend", shrink=True),
    Column("EXPECTED", ("expected_exact", "expected"), _expected, "right"),
    Column("OBSERVED", ("observed", "wilson_low", "wilson_high"), _observed, "right"),
    Column("COUNT", "count", count, "right"),
    Column("95% INTERVAL", ("wilson_low", "wilson_high"), interval, "right"),
    Column("P-VALUE", "p_value", sig(3), "right"),
)


def to_frame(result: SimulationResult) -> pl.DataFrame:
    """One row per backend of ``result`` (schema in the module docstring)."""
    counts = result.counts
    n = result.n
    p = result.expected
    wil = result.proportion_ci(0.95, method="wilson")
    cp = result.proportion_ci(0.95, method="exact")
    chi = result.goodness_of_fit(method="chisquare")
    g = result.goodness_of_fit(method="g-test")
    k = len(counts)
    data = {
        "route": [result.route.name] * k,
        "backend": list(result.backends),
        "expected": p,
        "expected_exact": [share_text(f, result.shares_exact) for f in result.exact],
        "count": counts,
        "observed": result.proportions(),
        "deviation": result.deviations(),
        "z": result.z_scores(),
        "p_value": [binomial_pvalue(int(c), n, float(q)) for c, q in zip(counts, p, strict=True)],
        "wilson_low": wil.low,
        "wilson_high": wil.high,
        "cp_low": cp.low,
        "cp_high": cp.high,
        "n": [n] * k,
        "chi2_pvalue": [chi.pvalue] * k,
        "g_pvalue": [g.pvalue] * k,
        "mode": [result.mode] * k,
        "seed": [str(result.seed_entropy)] * k,
    }
    return pl.DataFrame(data, schema=SCHEMA)


def compare_frame(results: Sequence[SimulationResult]) -> pl.DataFrame:
    """Several results on one table (same schema as :func:`to_frame`)."""
    return pl.concat([to_frame(r) for r in results], how="vertical")


#: Default columns of :func:`compare_frame` (``compare``): the route, then :data:`SIMULATE_COLUMNS`.
COMPARE_COLUMNS = (Column("ROUTE", "route", text, shrink=True), *SIMULATE_COLUMNS)


def display_frame(df: pl.DataFrame) -> pl.DataFrame:
    """The columns ``--format markdown`` shows (every column is in csv, json, parquet and ``--wide``)."""
    return df.select(
        "route",
        "backend",
        "expected_exact",
        "expected",
        "count",
        "observed",
        "deviation",
        "z",
        "p_value",
        "wilson_low",
        "wilson_high",
        "chi2_pvalue",
    )


def window_frame(result: SimulationResult) -> pl.DataFrame:
    """Long table of per-window counts: window index, backend, size, count, share."""
    if result.window_counts is None or result.window_sizes is None:
        raise ValueError("result has no windows")
    nw, k = result.window_counts.shape
    names = list(result.backends)
    return pl.DataFrame(
        {
            "window": np.repeat(np.arange(nw, dtype=np.int64), k),
            "backend": names * nw,
            "size": np.repeat(result.window_sizes, k),
            "count": result.window_counts.reshape(-1),
            "share": (result.window_counts / result.window_sizes[:, None]).reshape(-1),
        }
    )


#: Default columns of :func:`window_summary_frame` (``simulate --window``).
WINDOW_SUMMARY_COLUMNS = (
    Column("BACKEND", "backend", shrink=True),
    Column("EXPECTED", "expected", sig(6), "right"),
    Column("ONE WINDOW (95%)", ("band_low", "band_high"), interval, "right"),
    Column("ALL WINDOWS", ("all_low", "all_high"), interval, "right"),
    Column("WORST DEVIATION", "max_deviation", sig(3), "right"),
    Column("P-VALUE", "max_deviation_pvalue", sig(3), "right"),
)


def window_summary_frame(result: SimulationResult, confidence_level: float = 0.95) -> pl.DataFrame:
    """Per backend: the band a window's share stays in by chance, and the worst window.

    Columns: backend, window, windows, expected, band_low/band_high (one window,
    exact binomial, as shares), all_low/all_high (all windows together),
    max_deviation (share), max_deviation_pvalue.
    """
    band = result.window_band(confidence_level)
    w = band.window
    return pl.DataFrame(
        {
            "backend": list(result.backends),
            "window": [w] * len(result.backends),
            "windows": [band.n_windows] * len(result.backends),
            "expected": result.expected,
            "band_low": band.low / w,
            "band_high": band.high / w,
            "all_low": band.sim_low / w,
            "all_high": band.sim_high / w,
            "max_deviation": band.max_deviation,
            "max_deviation_pvalue": band.max_deviation_pvalue,
        }
    )


#: Default columns of :func:`cascade_frame` (``cascade``); the exact fractions are in ``--wide``.
CASCADE_COLUMNS = (
    Column("RULE", "rule"),
    Column("BACKEND", "backend", shrink=True),
    Column("WRITTEN", "probability_written"),
    Column("K", "k", text, "right"),
    Column("SAVED", "probability_saved"),
    Column("SHARE", "share", sig(12), "right"),
    Column("TARGET", "target", sig(12), "right"),
    Column("ERROR", "error", sig(3), "right"),
)


def cascade_frame(stage: Cascade, written: Sequence[str], targets: Sequence[Fraction] | None = None) -> pl.DataFrame:
    """One row per outcome of a cascade: the rule as written, stored and printed, and its exact share.

    Columns: rule (1-based; the last outcome is the unconditional rule or the
    fall-through), backend, probability_written, k (stored integer, null for
    the last outcome), probability_saved (``%.11f`` of ``k/2**31``),
    rule_probability (``k/2**31``), share (exact, float), share_exact (fraction,
    :func:`meshstat.model.share_text`: ``~`` where the text is not the exact
    share), and with ``targets``: target, error (share - target).
    """
    names = [getattr(c, "name", None) or f"outcome {i + 1}" for i, c in enumerate(stage.children)]
    m = len(stage.thresholds)
    shares, exact = stage.expected_shares()
    last = "fall-through" if stage.fall_through else "unconditional"
    data: dict[str, list[object]] = {
        "rule": [str(i + 1) for i in range(m)] + [last],
        "backend": names,
        "probability_written": [*written, None],
        "k": [*stage.thresholds, None],
        "probability_saved": [*stage.decimals(), None],
        "rule_probability": [k / 2**31 for k in stage.thresholds] + [None],
        "share": [float(s) for s in shares],
        "share_exact": [share_text(s, exact) for s in shares],
    }
    if targets is not None:
        data["target"] = [float(t) for t in targets]
        data["error"] = [float(s - t) for s, t in zip(shares, targets, strict=True)]
    return pl.DataFrame(data, strict=False)
