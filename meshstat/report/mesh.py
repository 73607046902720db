"""Report frames for the mesh commands (``compare -f``, ``mesh``, ``envoy-route``).

Two shapes:

* the *long* frame (one row per service, path and backend, plus per-version subtotal rows),
  fixed schema, for csv/json/parquet;
* the *wide* side-by-side frame for markdown: one row per (service, version, pod) and two
  columns per client path (exact share, simulated share).

The default table is the long frame's version rows (:func:`version_rows`) in
:data:`LONG_COLUMNS`, which fits a terminal however many paths there are; ``--wide`` shows the
long frame whole (pods, addresses, counts).
"""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction
from typing import TYPE_CHECKING, Any

from meshstat.mesh.layers import CLIENT_NAMES_SHOWN, name_list
from meshstat.model import exact_sum, share_text
from meshstat.report.text import Column, percent

if TYPE_CHECKING:
    import polars as pl

__all__ = [
    "LAYER_COLUMNS",
    "LONG_COLUMNS",
    "LONG_SCHEMA",
    "STEP_COLUMNS",
    "concat",
    "layers_frame",
    "long_frame",
    "steps_frame",
    "version_rows",
    "wide_frame",
]

#: Column order and types of :func:`long_frame`.
LONG_SCHEMA = {
    "service": "str",
    "path": "str",
    "unit": "str",
    "clients": "str",
    "level": "str",
    "version": "str",
    "backend": "str",
    "address": "str",
    "exact_fraction": "str",
    "exact": "f64",
    "simulated": "f64",
    "count": "i64",
    "n": "i64",
}


def _version(labels: Sequence[tuple[str, str]]) -> str:
    d = dict(labels)
    if "outcome" in d:
        return "-"
    return d.get("version") or d.get("app.kubernetes.io/version") or "-"


def _rows(entries: Sequence[dict[str, Any]], backends: bool = True) -> list[dict[str, Any]]:
    """Rows of the long frame from ``{"service", "path", "route", "result", "clients"}`` entries
    (``backends`` False: the version rows only)."""
    rows: list[dict[str, Any]] = []
    # a cluster's routes come in a few shapes (the same versions with the same exact shares): each shape's
    # version subtotals are summed and written once
    shapes: dict[tuple[Any, ...], list[tuple[str, list[int], str | None, float]]] = {}
    for e in entries:
        route, res = e["route"], e.get("result")
        backs = route.backends()
        exact, exact_ok = route.expected_shares()
        counts = [int(c) for c in res.counts] if res is not None else [0] * len(backs)
        n = int(res.n) if res is not None else 0
        root = route.root
        unit = getattr(root, "unit", "request")
        common = {"service": e["service"], "path": e["path"], "unit": unit, "clients": name_list(e.get("clients", ()), CLIENT_NAMES_SHOWN)}
        versions = tuple(_version(b.labels) for b in backs)
        key = (versions, exact, exact_ok)
        shape = shapes.get(key)
        if shape is None:
            by_version: dict[str, list[int]] = {}
            for i, v in enumerate(versions):
                by_version.setdefault(v, []).append(i)
            shape = shapes[key] = []
            for v, idx in by_version.items():
                s = exact_sum(exact[i] for i in idx)
                shape.append((v, idx, share_text(s, exact_ok), float(s)))
        for v, idx, text, share in shape:
            c = sum(counts[i] for i in idx)
            rows.append({**common, "level": "version", "version": v, "backend": "(all)", "address": "",
                         "exact_fraction": text, "exact": share, "simulated": (c / n if n else None),
                         "count": c, "n": n})
        if not backends:
            continue
        for i, b in enumerate(backs):
            rows.append({**common, "level": "backend", "version": versions[i], "backend": b.name,
                         "address": b.address or "", "exact_fraction": share_text(exact[i], exact_ok), "exact": float(exact[i]),
                         "simulated": (counts[i] / n if n else None), "count": counts[i], "n": n})
    return rows


#: Default columns of :func:`long_frame` (shown for :func:`version_rows`): every client path's exact and
#: simulated share per version.
LONG_COLUMNS = (
    Column("SERVICE", "service", shrink=True),
    Column("PATH", "path", shrink=True),
    Column("VERSION", "version", shrink=True),
    Column("EXACT", "exact", percent(4), "right"),
    Column("SIMULATED", "simulated", percent(3), "right"),
)


def version_rows(frame: pl.DataFrame) -> pl.DataFrame:
    """The per-version rows of a :func:`long_frame` (the default table; pods are in ``--wide``).

    Each service and path keeps its place; its versions are sorted by name (``-`` last).
    """
    import polars as pl

    rows = frame.filter(pl.col("level") == "version").with_row_index("_i")
    first = pl.col("_i").min().over(["service", "path"])
    return rows.sort([first, pl.col("version") == "-", "version"]).drop("_i")


def long_frame(entries: Sequence[dict[str, Any]], *, backends: bool = True) -> pl.DataFrame:
    """Tidy frame: one row per (service, path, version subtotal or backend); schema :data:`LONG_SCHEMA`.

    ``backends`` False: the version subtotals only (what :func:`version_rows` keeps).
    """
    import polars as pl

    types = {"str": pl.Utf8, "f64": pl.Float64, "i64": pl.Int64}
    schema = {k: types[v] for k, v in LONG_SCHEMA.items()}
    return pl.DataFrame(_rows(entries, backends), schema=schema)


def _pct(x: Fraction | float | None, digits: int = 4) -> str:
    if x is None:
        return ""
    v = float(x) * 100
    text = f"{v:.{digits}f}".rstrip("0").rstrip(".")
    return text + "%"


def wide_frame(entries: Sequence[dict[str, Any]]) -> pl.DataFrame:
    """Side-by-side frame: rows (service, version, pod), two columns per path (exact, simulated)."""
    import polars as pl

    rows = _rows(entries)
    paths: list[str] = []
    for r in rows:
        if r["path"] not in paths:
            paths.append(r["path"])
    keys: list[tuple[str, str, str]] = []
    cell: dict[tuple[tuple[str, str, str], str], dict[str, Any]] = {}
    for r in rows:
        k = (r["service"], r["version"], r["backend"])
        if k not in keys:
            keys.append(k)
        cell[(k, r["path"])] = r
    # versions first (with their pods below), per service
    ordered: list[tuple[str, str, str]] = []
    for svc in dict.fromkeys(k[0] for k in keys):
        versions = list(dict.fromkeys(k[1] for k in keys if k[0] == svc))
        for v in sorted(versions, key=lambda x: (x == "-", x)):
            ordered += [k for k in keys if k[0] == svc and k[1] == v and k[2] == "(all)"]
            ordered += sorted(k for k in keys if k[0] == svc and k[1] == v and k[2] != "(all)")
    data: dict[str, list[str]] = {"service": [], "version": [], "pod / endpoint": []}
    for p in paths:
        data[f"{p} exact"] = []
        data[f"{p} simulated"] = []
    for k in ordered:
        data["service"].append(k[0])
        data["version"].append(k[1])
        data["pod / endpoint"].append(k[2])
        for p in paths:
            r = cell.get((k, p))
            if r is None:
                data[f"{p} exact"].append("0%")
                data[f"{p} simulated"].append("-")
            else:
                data[f"{p} exact"].append(_pct(r["exact"]))
                data[f"{p} simulated"].append(_pct(r["simulated"], 3))
    return pl.DataFrame(data)


#: Default columns of :func:`layers_frame` (one table per path, the path above it).
LAYER_COLUMNS = (
    Column("STEP", "step", align="right"),
    Column("LAYER", "layer", shrink=True),
    Column("COMPONENT", "component", wrap=True),
    Column("DECISION", "decision", wrap=True),
)


def layers_frame(layers: Sequence[Any], path: str = "") -> pl.DataFrame:
    """The layered view: one row per stage (layer, component, decision, unit, where)."""
    import polars as pl

    return pl.DataFrame(
        {
            "path": [path] * len(layers),
            "step": list(range(1, len(layers) + 1)),
            "layer": [x.layer for x in layers],
            "component": [x.component for x in layers],
            "decision": [x.decision for x in layers],
            "unit": [x.unit for x in layers],
            "where": [x.where for x in layers],
        },
        schema={"path": pl.Utf8, "step": pl.Int64, "layer": pl.Utf8, "component": pl.Utf8, "decision": pl.Utf8,
                "unit": pl.Utf8, "where": pl.Utf8},
    )


#: Default columns of :func:`steps_frame` (``envoy-route``).
STEP_COLUMNS = (
    Column("STEP", "step", align="right"),
    Column("LAYER", "layer", shrink=True),
    Column("CHOICE", "choice", wrap=True),
    Column("DETAIL", "detail", wrap=True),
)


def steps_frame(steps: Sequence[Any]) -> pl.DataFrame:
    """The Envoy resolution trace (listener, filter chain, route configuration, virtual host, route)."""
    import polars as pl

    return pl.DataFrame(
        {
            "step": list(range(1, len(steps) + 1)),
            "layer": [s.layer for s in steps],
            "choice": [s.choice for s in steps],
            "detail": [s.detail for s in steps],
            "where": [s.where for s in steps],
        },
        schema={"step": pl.Int64, "layer": pl.Utf8, "choice": pl.Utf8, "detail": pl.Utf8, "where": pl.Utf8},
    )


def concat(frames: Sequence[pl.DataFrame]) -> pl.DataFrame:
    """Stack frames of the same schema (e.g. the layers of several paths)."""
    import polars as pl

    return pl.concat(list(frames))
