"""What every command handler gets: the streams, the table writer, the progress bar.

Remarks (the run line, notes, warnings) go to stdout beside a human table and
to stderr beside a machine format or a table written to ``--output``
(:func:`is_table`), so that stdout stays parseable. :func:`check_outputs` refuses
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

    def emit(self, df: Any, args: argparse.Namespace, *, float_precision: int | None = None) -> None:
        """Write a report DataFrame in ``args.format`` to ``args.output`` or stdout."""
        from meshstat import report

        report.write(
            df,
            getattr(args, "format", "table"),
            output=getattr(args, "output", None),
            stdout=self.stdout,
            float_precision=float_precision,
        )

    def progress(self, args: argparse.Namespace) -> Any:
        """The progress callback for a run (:class:`meshstat.engine.progress.ProgressBar` on stderr)."""
        from meshstat.engine.progress import ProgressBar

        return ProgressBar(self.stderr, enabled=False if getattr(args, "quiet", False) else None)

    def note(self, text: str) -> None:
        """A human remark: to stdout for tables, to stderr for machine formats."""
        stream = self.stdout if self.fmt in ("table", "markdown") else self.stderr
        stream.write(text.rstrip("\n") + "\n")


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
