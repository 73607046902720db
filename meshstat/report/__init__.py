"""Reports: results -> tidy polars DataFrames with a fixed schema, and their rendering.

This package is the only place in meshstat that imports polars. Each area has
its own module (``report.simulation`` for simulate/compare, and one module per
other area); this ``__init__`` holds what they share: rendering a DataFrame as
a table, markdown, CSV, JSON or Parquet, and writing it to a file or stream.
"""

from __future__ import annotations

import io
from typing import IO, TYPE_CHECKING

from meshstat.errors import InvalidArgument
from meshstat.outputs import check_output_path, write_output

if TYPE_CHECKING:
    import polars as pl

__all__ = ["FORMATS", "render", "write"]

#: Output formats every command accepts.
FORMATS = ("table", "markdown", "csv", "json", "parquet")


def render(df: pl.DataFrame, fmt: str = "table", *, float_precision: int | None = None) -> str | bytes:
    """Render ``df`` as text (``table``, ``markdown``, ``csv``, ``json``) or bytes (``parquet``).

    Parameters
    ----------
    df : polars.DataFrame
        Any report frame.
    fmt : {"table", "markdown", "csv", "json", "parquet"}
        Output format. ``table`` and ``markdown`` show every row and column.
    float_precision : int, optional
        Digits after the point for floats in ``table``/``markdown`` (default: polars').
    """
    import polars as pl

    if fmt not in FORMATS:
        raise InvalidArgument(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    if fmt in ("table", "markdown"):
        opts: dict[str, object] = {
            "tbl_rows": -1,
            "tbl_cols": -1,
            "tbl_width_chars": 1000,
            "fmt_str_lengths": 200,
            "tbl_hide_dataframe_shape": True,
            "tbl_hide_column_data_types": True,
        }
        if float_precision is not None:
            opts["float_precision"] = float_precision
        if fmt == "markdown":
            opts["tbl_formatting"] = "ASCII_MARKDOWN"
        else:
            opts["tbl_formatting"] = "UTF8_FULL_CONDENSED"
        with pl.Config(**opts):  # type: ignore[arg-type]
            return str(df)
    if fmt == "csv":
        return df.write_csv()
    if fmt == "json":
        return df.write_json()
    buf = io.BytesIO()
    df.write_parquet(buf)
    return buf.getvalue()


def write(
    df: pl.DataFrame,
    fmt: str = "table",
    *,
    output: str | None = None,
    stdout: IO[str] | None = None,
    float_precision: int | None = None,
) -> None:
    """Render ``df`` and write it to ``output`` (a path) or ``stdout``.

    Parquet needs a file (``--output``): it is binary. A file is written
    through :func:`meshstat.outputs.write_output` (a regular file created or
    replaced whole, never a link or a device).
    """
    if output is not None:
        check_output_path(output)
    data = render(df, fmt, float_precision=float_precision)
    if output is not None:
        write_output(output, data)
        return
    if isinstance(data, bytes):
        raise InvalidArgument("--format parquet writes binary data: give --output FILE")
    out = stdout
    if out is None:
        import sys

        out = sys.stdout
    out.write(data if data.endswith("\n") else data + "\n")
