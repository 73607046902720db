"""Text for people: fitted tables, trees and remarks, for a terminal or a pipe.

Every report frame has two human forms. ``--wide`` (``-o wide``) shows every column of the frame, the
columns that csv, json and parquet write, as plain aligned columns (polars renders them). The default
``--format table`` shows the frame's *default columns*: the few that answer the command's question,
formatted for reading (``8,999,266``, ``[0.89974, 0.90011]``, ``0.439``) and fitted to the output
width, plain aligned columns like kubectl's (upper-case headers, three spaces, no box drawing). Each
report module defines the default columns of each of its frames next to the frame function
(``*_COLUMNS``, a tuple of :class:`Column`).

The width rule (:func:`output_width`): ``COLUMNS`` when it is set, else the terminal's width when the
stream is a terminal, else no width at all: as with kubectl, output into a pipe or a file is never cut to
a width (it still has only the default columns). To fit, the text columns marked ``shrink`` are
shortened, widest first, with ``…`` (the full value is in ``--wide``, csv and json); numbers are never
cut. Should the columns still not fit (a very narrow terminal), the last ones are left out and a line
says so.

Colour (:func:`use_color`): only when the stream is a terminal and ``NO_COLOR`` is not set
(the NO_COLOR convention). Then rich draws the same layout with bold headers and coloured remarks; rich is
imported only on that path and for trees (:func:`render_tree`), so that output into a pipe costs no import.

Remarks (:func:`format_remarks`): the lines a command prints beside its table (run line, summary,
warnings, notes), grouped: identical ones merged with a count, information first, then warnings, then
notes; comma-separated lists of more than :data:`LIST_LIMIT` names shortened to ``a, b, c and N more``
(the full list is in the machine formats and ``--wide``); each remark one entry, wrapped at the width
with an indent.
"""

from __future__ import annotations

import math
import os
import re
import textwrap
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any

from meshstat.inputs import ascii_digits

if TYPE_CHECKING:
    import polars as pl

__all__ = [
    "GAP",
    "LIST_LIMIT",
    "Column",
    "Terminal",
    "TreeNode",
    "bounded",
    "count",
    "fit_widths",
    "format_remarks",
    "interval",
    "output_width",
    "percent",
    "render_columns",
    "render_tree",
    "sig",
    "text",
    "use_color",
    "view",
]

#: Spaces between two columns (kubectl's tabwriter padding).
GAP = 3
#: Shortest width a shortened text column keeps.
MIN_SHRINK = 8
#: Names a comma-separated list in a remark shows before "and N more".
LIST_LIMIT = 3


# ----------------------------------------------------------------- where the text goes


def output_width(stream: IO[str] | None) -> int | None:
    """``COLUMNS`` if set (a positive integer), else the terminal's width if ``stream`` is one, else None."""
    raw = os.environ.get("COLUMNS", "").strip()
    if ascii_digits(raw) and int(raw) > 0:
        return int(raw)
    if stream is not None and _isatty(stream):
        try:
            return os.get_terminal_size(stream.fileno()).columns
        except (OSError, ValueError, AttributeError):
            return None
    return None


def use_color(stream: IO[str] | None) -> bool:
    """Colour only on a terminal, and never when ``NO_COLOR`` is set to a non-empty value."""
    if os.environ.get("NO_COLOR"):
        return False
    return stream is not None and _isatty(stream)


def _isatty(stream: IO[str]) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


@dataclass(frozen=True, slots=True)
class Terminal:
    """The width (``None``: unbounded) and colour of one output stream."""

    width: int | None = None
    color: bool = False

    @classmethod
    def of(cls, stream: IO[str] | None) -> Terminal:
        """The width and colour rules above, for ``stream``."""
        return cls(output_width(stream), use_color(stream))


# ----------------------------------------------------------------- cell formats


def _missing(v: Any) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def text(v: Any) -> str:
    """Any value as text (``-`` for a missing one)."""
    if _missing(v):
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    return str(v)


def count(v: Any) -> str:
    """An integer with thousands separators: ``8,999,266``."""
    if _missing(v):
        return "-"
    return f"{round(v):,}" if float(v) == round(float(v)) else f"{v:,.4g}"


def sig(digits: int = 3) -> Callable[[Any], str]:
    """A number with ``digits`` significant digits (``0.439``, ``1.8e-27``)."""

    def fmt(v: Any) -> str:
        return "-" if _missing(v) else f"{float(v):.{digits}g}"

    return fmt


def percent(digits: int = 4) -> Callable[[Any], str]:
    """A share as a percentage with at most ``digits`` decimals, trailing zeros dropped (``33.3333%``)."""

    def fmt(v: Any) -> str:
        if _missing(v):
            return "-"
        s = f"{float(v) * 100:.{digits}f}".rstrip("0").rstrip(".")
        return s + "%"

    return fmt


def decimals_for(low: float, high: float) -> int:
    """Decimals that show an interval of this width to two significant digits (at least 2)."""
    w = abs(high - low)
    if not math.isfinite(w) or w <= 0:
        return 6
    return max(2, min(12, 1 - math.floor(math.log10(w))))


def interval(low: Any, high: Any) -> str:
    """``[0.89974, 0.90011]``, with as many decimals as the interval's width needs."""
    if _missing(low) or _missing(high):
        return "-"
    d = decimals_for(float(low), float(high))
    return f"[{float(low):.{d}f}, {float(high):.{d}f}]"


# ----------------------------------------------------------------- the default columns of a frame


@dataclass(frozen=True, slots=True)
class Column:
    """One default column of a frame.

    Parameters
    ----------
    header : str
        Header (upper case, as kubectl's).
    source : str or tuple of str
        Frame column(s) whose values ``fmt`` gets, in order. A column whose first source is not in the
        frame is left out (columns some results have, e.g. latency for least request only).
    fmt : callable
        ``fmt(*values) -> str`` for one row.
    align : {"left", "right"}
    shrink : bool
        A text column that may be shortened with ``…`` to fit the width.
    wrap : bool
        A text column that may be narrowed to fit the width, its cells wrapped onto more lines
        (explanations, where every word counts).
    """

    header: str
    source: str | tuple[str, ...]
    fmt: Callable[..., str] = text
    align: str = "left"
    shrink: bool = False
    wrap: bool = False

    @property
    def sources(self) -> tuple[str, ...]:
        return (self.source,) if isinstance(self.source, str) else tuple(self.source)


def view(df: pl.DataFrame, columns: Sequence[Column]) -> tuple[list[Column], list[list[str]]]:
    """The columns of ``columns`` that ``df`` has, and its rows as formatted cells.

    A column whose every cell is missing (``-``) is left out (``INTERVAL NEEDED`` of a canary without
    ``--detect-error-rate``).
    """
    cols = [c for c in columns if c.sources[0] in df.columns]
    data = {name: df.get_column(name).to_list() for c in cols for name in c.sources if name in df.columns}
    none = [None] * df.height
    cells = []  # column by column: one call per cell, no per-row argument tuples
    for c in cols:
        args = [data.get(s, none) for s in c.sources]
        cells.append([c.fmt(v) for v in args[0]] if len(args) == 1 else [c.fmt(*vs) for vs in zip(*args)])
    keep = [j for j, col in enumerate(cells) if not col or any(x != "-" for x in col)]
    if not keep:
        return [], [[] for _ in range(df.height)]
    return [cols[j] for j in keep], [list(r) for r in zip(*(cells[j] for j in keep))]


#: Narrowest a wrapped column gets.
MIN_WRAP = 16


def fit_widths(
    headers: Sequence[str], rows: Sequence[Sequence[str]], shrink: Sequence[bool], width: int | None,
    wrap: Sequence[bool] | None = None,
) -> tuple[list[int], int]:
    """Column widths that fit ``width``, and how many columns (from the left) are shown.

    Shrinkable and wrapped columns are narrowed one character at a time, the widest first, down to
    ``max(MIN_SHRINK, len(header))`` (``MIN_WRAP`` for wrapped ones); if that is not enough, columns
    are left out from the right.
    """
    wrap = list(wrap or [False] * len(headers))
    n = len(headers)
    widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(headers)]
    if width is None:
        return widths, n

    def total(k: int) -> int:
        return sum(widths[:k]) + GAP * (k - 1)

    floors = [max(MIN_WRAP if wrap[i] else MIN_SHRINK, len(h)) for i, h in enumerate(headers)]
    while total(n) > width:
        cands = [i for i in range(n) if (shrink[i] or wrap[i]) and widths[i] > floors[i]]
        if not cands:
            break
        i = max(cands, key=lambda j: (widths[j], -j))
        widths[i] -= 1
    shown = n
    while shown > 1 and total(shown) > width:
        shown -= 1
    return widths[:shown], shown


def _cut(cell: str, w: int) -> str:
    return cell if len(cell) <= w else cell[: max(w - 1, 0)] + "…"


def render_columns(
    headers: Sequence[str],
    rows: Sequence[Sequence[str]],
    *,
    align: Sequence[str] | None = None,
    shrink: Sequence[bool] | None = None,
    wrap: Sequence[bool] | None = None,
    term: Terminal = Terminal(),
) -> str:
    """Plain aligned columns fitted to ``term.width`` (on a colour terminal rich draws them, headers bold)."""
    n = len(headers)
    align = list(align or ["left"] * n)
    shrink = list(shrink or [False] * n)
    wrap = list(wrap or [False] * n)
    widths, shown = fit_widths(headers, rows, shrink, term.width, wrap)

    def cell(c: str, i: int) -> list[str]:
        if wrap[i] and len(c) > widths[i]:
            return textwrap.wrap(c, widths[i], break_on_hyphens=False) or [""]
        return [_cut(c, widths[i])]

    footer = f"({n - shown} more column{'s' if n - shown > 1 else ''}: --wide)" if shown < n else None
    if not term.color and not any(wrap[:shown]):  # one line per row: laid out column by column
        cols = []
        for i in range(shown):
            w = widths[i]
            col = [_cut(r[i], w) for r in (headers, *rows)]
            cols.append([x.rjust(w) for x in col] if align[i] == "right" else [x.ljust(w) for x in col])
        lines = [(" " * GAP).join(parts).rstrip() for parts in zip(*cols)]
        if footer:
            lines.append(footer)
        return "\n".join(lines)
    table = [[[_cut(h, widths[i])] for i, h in enumerate(headers[:shown])]]
    table += [[cell(r[i], i) for i in range(shown)] for r in rows]
    if term.color:
        return _rich_columns(table, widths, align, footer)
    lines = []
    for row in table:
        for k in range(max(len(c) for c in row)):
            parts = [c[k] if k < len(c) else "" for c in row]
            parts = [p.rjust(widths[i]) if align[i] == "right" else p.ljust(widths[i])
                     for i, p in enumerate(parts)]  # fmt: skip
            lines.append((" " * GAP).join(parts).rstrip())
    if footer:
        lines.append(footer)
    return "\n".join(lines)


def _rich_console(width: int | None, color: bool) -> Any:
    import io

    from rich.console import Console

    return Console(
        file=io.StringIO(), width=width or 100_000, color_system="standard" if color else None,
        force_terminal=color, no_color=not color, highlight=False, markup=False, emoji=False, soft_wrap=False,
        legacy_windows=False,
    )  # fmt: skip


_TRAILING = re.compile(r"\s+((?:\x1b\[[0-9;]*m)*)$")


def _lines(console: Any) -> str:
    """What a rich console drew, without trailing spaces (also those before a closing colour code)."""
    out = console.file.getvalue().rstrip("\n")
    return "\n".join(_TRAILING.sub(r"\1", line) for line in out.split("\n"))


def _rich_columns(
    cells: list[list[list[str]]], widths: list[int], align: list[str], footer: str | None
) -> str:
    from rich.table import Table

    table = Table(box=None, show_edge=False, pad_edge=False, padding=(0, GAP, 0, 0), header_style="bold",
                  show_header=True, expand=False)  # fmt: skip
    for i, (h, w) in enumerate(zip(cells[0], widths, strict=True)):
        table.add_column(h[0], width=w, no_wrap=True, overflow="ellipsis",
                         justify="right" if align[i] == "right" else "left")  # fmt: skip
    for row in cells[1:]:
        table.add_row(*("\n".join(c) for c in row))
    console = _rich_console(sum(widths) + GAP * len(widths), True)
    console.print(table)
    if footer:
        console.print(footer, style="dim")
    return _lines(console)


# ----------------------------------------------------------------- trees


@dataclass(frozen=True, slots=True)
class TreeNode:
    """A line of a tree (``style``: a rich style name, used with colour only) and the lines below it."""

    label: str
    children: tuple[TreeNode, ...] = ()
    style: str = ""


def render_tree(root: TreeNode, term: Terminal = Terminal()) -> str:
    """Draw a tree with rich's guide lines; labels longer than the width wrap under their guide."""
    from rich.text import Text
    from rich.tree import Tree

    def add(parent: Any, node: TreeNode) -> None:
        branch = parent.add(Text(node.label, style=node.style if term.color else ""))
        for child in node.children:
            add(branch, child)

    tree = Tree(Text(root.label, style="bold" if term.color else ""), guide_style="dim" if term.color else "")
    for child in root.children:
        add(tree, child)
    console = _rich_console(term.width, term.color)
    console.print(tree)
    return _lines(console)


# ----------------------------------------------------------------- remarks

_DIAG = re.compile(r"^(?:\S+:\d+: )?(warning|note): ")
#: A comma-separated run of at least LIST_LIMIT + 2 names: no spaces, commas or brackets inside a name,
#: which may be followed by a remark in parentheses (``ns/client (istio-proxy)``).
_ITEM = r"[^\s,()\[\]]+(?: \([^,()\[\]]*\))?"
_LIST = re.compile(rf"{_ITEM}(?:, {_ITEM}){{{LIST_LIMIT + 1},}}")


def bounded(items: Iterable[str], limit: int = LIST_LIMIT) -> str:
    """``a, b, c and 997 more`` for a long list, the whole list for a short one."""
    items = list(items)
    if len(items) <= limit + 1:
        return ", ".join(items)
    return ", ".join(items[:limit]) + f" and {len(items) - limit} more"


def _level(line: str) -> int:
    m = _DIAG.match(line)
    if m is None:
        return 0
    return 1 if m.group(1) == "warning" else 2


def format_remarks(lines: Iterable[str], *, term: Terminal = Terminal(), full: bool = False) -> str:
    """Group a command's remarks: information, then warnings, then notes; duplicates merged with a count.

    ``full`` (machine formats, ``--wide``) keeps every list whole and every line unwrapped.
    """
    counts: dict[str, int] = {}
    for chunk in lines:
        for line in str(chunk).split("\n"):
            line = line.rstrip()
            if line:
                counts[line] = counts.get(line, 0) + 1
    ordered = sorted(counts, key=_level)  # stable: each level keeps the order of first appearance
    out: list[str] = []
    for line in ordered:
        entry = line + (f" ({counts[line]} times)" if counts[line] > 1 else "")
        if not full:
            entry = _LIST.sub(lambda m: bounded(m.group(0).split(", ")), entry)
        if term.width is None or full or len(entry) <= term.width:
            wrapped = [entry]
        else:
            wrapped = textwrap.wrap(entry, width=term.width, subsequent_indent="    ", break_on_hyphens=False)
        out.extend(wrapped)
    if not term.color or not out:
        return "\n".join(out)
    return _rich_remarks(out)


def _rich_remarks(lines: list[str]) -> str:
    from rich.text import Text

    console = _rich_console(None, True)
    for line in lines:
        t = Text(line)
        m = _DIAG.match(line)
        if m is not None:
            t.stylize("bold yellow" if m.group(1) == "warning" else "cyan", m.start(1), m.end(1))
        console.print(t)
    return console.file.getvalue().rstrip("\n")
