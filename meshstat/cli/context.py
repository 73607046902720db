"""What every command handler gets: the streams, the table writer, the progress bar.

Remarks (the run line, notes, warnings) go to stdout beside a human table and
to stderr beside a machine format or a table written to ``--output``
(:func:`is_table`), so that stdout stays parseable. Every command writes them
through :meth:`Context.remarks` (grouped, bounded and fitted by
:func:`meshstat.report.text.format_remarks`), and its tables through
:meth:`Context.emit` (the frame's default columns fitted to the terminal, or
every column with ``--wide``). :func:`check_outputs` refuses
every output path of a command (``--output``, ``--plot``, ``--destinations``)
before the command reads an input or starts a run.
"""

from __future__ import annotations

import argparse
import os
from typing import IO, Any

from meshstat.errors import InvalidArgument
from meshstat.outputs import check_output_path

__all__ = ["OUTPUT_FLAGS", "Context", "check_outputs", "is_table"]

#: The options that name a file meshstat writes: (flag, attribute of the parsed arguments).
OUTPUT_FLAGS = (("--output", "output"), ("--plot", "plot"), ("--destinations", "destinations"))


class Context:
    """Streams and helpers handed to every command handler.

    Attributes
    ----------
    stdout, stderr : IO[str]
        Where the command writes.
    """

    def __init__(self, stdout: IO[str], stderr: IO[str], *, fmt: str = "table") -> None:
        self.stdout = stdout
        self.stderr = stderr
        self.fmt = fmt

    def emit(
        self, df: Any, args: argparse.Namespace, *, float_precision: int | None = None, columns: Any = None
    ) -> None:
        """Write a report DataFrame in ``args.format`` to ``args.output`` or stdout.

        ``columns``: the frame's default columns (``report.*_COLUMNS``), which ``--format table``
        shows unless ``--wide`` is given.
        """
        from meshstat import report

        report.write(
            df,
            getattr(args, "format", "table"),
            output=getattr(args, "output", None),
            stdout=self.stdout,
            float_precision=float_precision,
            columns=columns,
            wide=bool(getattr(args, "wide", False)),
            term=self.terminal(self.stdout, args),
        )

    def write_text(self, text: str, args: argparse.Namespace) -> None:
        """Write a human view that is not a frame (a tree) to ``args.output`` or stdout."""
        output = getattr(args, "output", None)
        if output is not None:
            with open(output, "w") as fh:  # noqa: PTH123
                fh.write(text + "\n")
        else:
            self.stdout.write(text + "\n")

    def terminal(self, stream: IO[str], args: argparse.Namespace | None = None) -> Any:
        """Width and colour of ``stream`` (``report.text.Terminal``); no width with ``--wide``."""
        from meshstat.report.text import Terminal

        term = Terminal.of(stream)
        return Terminal(None, term.color) if getattr(args, "wide", False) else term

    def remarks(self, lines: Any, args: argparse.Namespace | None = None) -> None:
        """Write a command's remarks (run line, summary, warnings, notes), grouped and fitted.

        Beside a human table on stdout long lists are shortened and lines wrapped at the width; beside
        a machine format (on stderr) or with ``--wide`` every list is whole.
        """
        from meshstat.report.text import format_remarks

        human = is_table(args) if args is not None else self.fmt in ("table", "markdown")
        stream = self.stdout if human else self.stderr
        full = not human or bool(getattr(args, "wide", False))
        text = format_remarks([lines] if isinstance(lines, str) else lines, term=self.terminal(stream, args),
                              full=full)  # fmt: skip
        if text:
            stream.write(text + "\n")

    def progress(self, args: argparse.Namespace) -> Any:
        """The progress callback for a run (:class:`meshstat.engine.progress.ProgressBar` on stderr)."""
        from meshstat.engine.progress import ProgressBar

        return ProgressBar(self.stderr, enabled=False if getattr(args, "quiet", False) else None)

    def note(self, text: str) -> None:
        """One remark (:meth:`remarks`): to stdout for tables, to stderr for machine formats."""
        self.remarks([text])


def is_table(args: argparse.Namespace) -> bool:
    """Whether the table goes to stdout as table or markdown, so that remarks may follow it there."""
    return getattr(args, "format", "table") in ("table", "markdown") and getattr(args, "output", None) is None


def check_outputs(args: argparse.Namespace) -> None:
    """Refuse, before any work, an output path that cannot be written (one line, exit status 2).

    Each path of :data:`OUTPUT_FLAGS` is checked by
    :func:`meshstat.outputs.check_output_path` (a directory, a symbolic link, a
    device, a FIFO, a missing or unwritable directory), a ``--plot`` name also
    for its picture type (:func:`meshstat.plots.picture_format`); two options
    naming one file, and ``--format parquet`` without ``--output``, are refused too.
    """
    seen: dict[str, str] = {}
    for flag, attr in OUTPUT_FLAGS:
        value = getattr(args, attr, None)
        if value is None or value is False:
            continue
        if flag == "--plot":
            from meshstat.plots import picture_format  # numpy: only when a picture is asked for

            picture_format(value, what=flag)
        path = check_output_path(value, what=flag)
        key = os.path.realpath(path)
        if key in seen:
            raise InvalidArgument(f"{seen[key]} and {flag} name the same file {path}: give each its own")
        seen[key] = flag
    if getattr(args, "format", None) == "parquet" and getattr(args, "output", None) is None:
        raise InvalidArgument("--format parquet writes binary data: give --output FILE")
