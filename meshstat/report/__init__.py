"""Reports: results -> tidy polars DataFrames with a fixed schema, and their rendering.

This package is the only place in meshstat that imports polars. Each area has
its own module (``report.simulation`` for simulate/compare, and one module per
other area); this ``__init__`` holds what they share: rendering a DataFrame as
a table, markdown, CSV, JSON or Parquet, and writing it to a file or stream.
:mod:`meshstat.report.text` lays out what people read: each frame's default
columns fitted to the terminal, trees, grouped remarks.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import IO, TYPE_CHECKING

from meshstat.errors import InvalidArgument
from meshstat.outputs import check_output_path, write_output
from meshstat.report import text
from meshstat.report.text import Column, Terminal

if TYPE_CHECKING:
    import polars as pl

__all__ = ["FORMATS", "Column", "Terminal", "render", "write"]

#: Output formats every command accepts.
FORMATS = ("table", "markdown", "csv", "json", "parquet")


def render(
    df: pl.DataFrame,
    fmt: str = "table",
    *,
    float_precision: int | None = None,
    columns: Sequence[Column] | None = None,
    wide: bool = False,
    term: Terminal | None = None,
) -> str | bytes:
    """Render ``df`` as text (``table``, ``markdown``, ``csv``, ``json``) or bytes (``parquet``).

    Parameters
    ----------
    df : polars.DataFrame
        Any report frame.
    fmt : {"table", "markdown", "csv", "json", "parquet"}
        Output format. ``markdown`` and the machine formats show every row and column.
    float_precision : int, optional
        Digits after the point for floats in ``--wide`` tables and markdown (default: polars').
    columns : sequence of Column, optional
        The frame's default columns (:mod:`meshstat.report.text`): ``table`` shows them, fitted to
        ``term``'s width. Without them, or with ``wide``, ``table`` shows every column unfitted.
    wide : bool
        ``--wide``: every column, no cell shortened.
    term : Terminal, optional
        Width and colour of the destination (default: unbounded, no colour).
    """
    import polars as pl

    if fmt not in FORMATS:
        raise InvalidArgument(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    if fmt == "table" and columns is not None and not wide:
        cols, rows = text.view(df, columns)
        return text.render_columns(
            [c.header for c in cols], rows, align=[c.align for c in cols], shrink=[c.shrink for c in cols],
            wrap=[c.wrap for c in cols], term=term or text.Terminal(),
        )
    if fmt in ("table", "markdown"):
        opts: dict[str, object] = {
            "tbl_rows": -1,
            "tbl_cols": -1,
            "tbl_width_chars": 65_535,
            "fmt_str_lengths": 65_535,
            "tbl_hide_dataframe_shape": True,
            "tbl_hide_column_data_types": True,
        }
        if float_precision is not None:
            opts["float_precision"] = float_precision
        if fmt == "markdown":
            opts["tbl_formatting"] = "ASCII_MARKDOWN"
            # a '|' inside a cell (Envoy's outbound|9999|v1|host cluster names) would end the cell
            df = df.with_columns(pl.col(pl.String).str.replace_all("|", "\\|", literal=True))
        else:  # plain aligned columns, as kubectl's -o wide
            opts["tbl_formatting"] = "NOTHING"
            opts["tbl_cell_numeric_alignment"] = "RIGHT"
        with pl.Config(**opts):  # type: ignore[arg-type]
            out = str(df)
        if fmt == "table":
            out = "\n".join(line[1:].rstrip() for line in out.split("\n"))
        return out
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
    columns: Sequence[Column] | None = None,
    wide: bool = False,
    term: Terminal | None = None,
) -> None:
    """Render ``df`` and write it to ``output`` (a path) or ``stdout``.

    Parquet needs a file (``--output``): it is binary. A table written to a file is never fitted to a
    width nor coloured; a file is written through :func:`meshstat.outputs.write_output` (a regular file
    created or replaced whole, never a link or a device).
    """
    if output is not None:
        check_output_path(output)
    data = render(
        df, fmt, float_precision=float_precision, columns=columns, wide=wide,
        term=None if output is not None else term,
    )  # fmt: skip
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
