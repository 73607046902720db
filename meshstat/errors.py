"""Exception hierarchy for meshstat.

Every error a user can cause derives from :class:`MeshstatError`; the CLI turns
each into one line of text and a non-zero exit status, never a traceback.
"""

from __future__ import annotations

__all__ = ["ConfigParseError", "InvalidArgument", "MeshstatError", "ModelError"]


class MeshstatError(Exception):
    """Root of every error meshstat raises on purpose."""


class InvalidArgument(MeshstatError, ValueError):
    """A function or command-line argument is out of its domain."""


class ModelError(MeshstatError, ValueError):
    """A routing model is inconsistent (for example, weights that sum to zero)."""


class ConfigParseError(MeshstatError, ValueError):
    """Text in a configuration file could not be understood.

    Parameters
    ----------
    message : str
        What was expected, phrased for the user ("expected 'ip:port' after --to-destination").
    source : str, optional
        File name (``"-"`` or ``"<stdin>"`` for standard input).
    line : int, optional
        1-based line number.
    column : int, optional
        1-based column number.
    snippet : str, optional
        The offending text, shortened.
    """

    def __init__(
        self,
        message: str,
        *,
        source: str | None = None,
        line: int | None = None,
        column: int | None = None,
        snippet: str | None = None,
    ) -> None:
        self.message = message
        self.source = source
        self.line = line
        self.column = column
        self.snippet = snippet
        super().__init__(str(self))

    def __str__(self) -> str:
        where = self.source or "<input>"
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        text = f"{where}: {self.message}"
        if self.snippet:
            snip = self.snippet if len(self.snippet) <= 80 else self.snippet[:77] + "..."
            text += f" (got {snip!r})"
        return text
