"""What every command handler gets: the streams, the table writer, the progress bar.

Remarks (the run line, notes, warnings) go to stdout beside a human table and
to stderr beside a machine format or a table written to ``--output``
(:func:`is_table`), so that stdout stays parseable.
"""

from __future__ import annotations

import argparse
from typing import IO, Any

__all__ = ["Context", "is_table"]


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
