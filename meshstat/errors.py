"""Exception hierarchy for meshstat.

Every error a user can cause derives from :class:`MeshstatError`; the CLI turns
each into one line of text and a non-zero exit status, never a traceback.
:class:`Terminated` is not an error: it is how a SIGTERM or SIGHUP unwinds a run.
"""

from __future__ import annotations

__all__ = ["ConfigParseError", "InvalidArgument", "MeshstatError", "ModelError", "Terminated"]


class MeshstatError(Exception):
    """Root of every error meshstat raises on purpose.

    Attributes
    ----------
    source : str or None
        The input file the error is about (``"<stdin>"`` for standard input), when the
        cause is in a file rather than in an argument. The command line exits with
        status 3 (bad input) for errors that carry a source, 2 (bad argument) for
        the others (see :class:`meshstat.cli.ExitStatus`).
    line : int or None
        1-based line in ``source``, when known.
    """

    source: str | None = None
    line: int | None = None

    def __str__(self) -> str:
        return _one_line(super().__str__())


def _one_line(text: str) -> str:
    """Messages are one line: line breaks from the input (a quoted token, a comment) are shown escaped."""
    if "\n" in text or "\r" in text:
        return text.replace("\r", "\\r").replace("\n", "\\n")
    return text


class InvalidArgument(MeshstatError, ValueError):
    """A function or command-line argument is out of its domain."""


class ModelError(MeshstatError, ValueError):
    """A routing model is inconsistent (for example, weights that sum to zero).

    Parameters
    ----------
    message : str
        What is wrong.
    source, line : optional
        The file (and line) the inconsistent model was read from; the message is
        then printed as ``file:line: message`` and the CLI counts it as bad input.
    """

    def __init__(self, message: str = "", *, source: str | None = None, line: int | None = None) -> None:
        self.message = message
        self.source = source
        self.line = line
        where = "" if source is None else (f"{source}:{line}: " if line is not None else f"{source}: ")
        super().__init__(where + message)


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
        return _one_line(text)


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP, raised where Ctrl-C would raise :class:`KeyboardInterrupt`.

    A subclass of :class:`KeyboardInterrupt`, so that every clean-up that serves
    Ctrl-C (a temporary output file removed, a progress bar closed) serves these
    signals too. The command line installs the handlers that raise it and exits
    with status ``128 + signum`` (143 for SIGTERM, 129 for SIGHUP), as a shell
    reports a process ended by the signal.

    Parameters
    ----------
    signum : int
        The signal's number.
    """

    def __init__(self, signum: int) -> None:
        self.signum = int(signum)
        super().__init__(signum)
