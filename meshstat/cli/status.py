"""Exit statuses of the command line and the one stderr line of each error.

:func:`meshstat.cli.main` catches what a command raises and hands it to
:func:`error_status`, which gives the exit status and the one line written to
stderr. The parser raises :class:`UsageError` instead of exiting.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import threading
from collections.abc import Iterator
from enum import IntEnum

from meshstat.errors import ConfigParseError, MeshstatError, Terminated

__all__ = ["ExitStatus", "HelpExit", "UsageError", "error_status", "signal_status", "signals_as_interrupts"]


class ExitStatus(IntEnum):
    """Process exit status.

    ``INVALID_INPUT`` (2) means *fix the command line*: a usage error, an option
    value out of its domain (``-n 0``, ``--weights 0,0``, ``--max-input-size 12X``)
    or a question the input cannot answer. ``PARSE_ERROR`` (3) means *fix the
    file*: a :class:`~meshstat.errors.ConfigParseError`, or any other meshstat
    error that carries the ``source`` file it is about (a jump loop in a dump,
    Envoy weights summing to 0 in a config_dump, an input over the size bound).
    The rule is the error's ``source`` attribute: the same inconsistency is a 3
    when read from a file and a 2 when given with ``--weights``. ``ERROR`` (1) is
    a file that cannot be read (``OSError``) or an internal error (a bug: one
    line, ``--traceback`` shows the traceback); ``CTRL_C`` (130) an interrupt,
    ``HANGUP`` (129) and ``TERMINATED`` (143) a SIGHUP or SIGTERM (128 plus the
    signal's number, as a shell reports it), after the same clean-up as Ctrl-C.
    Every error is one line on stderr, starting ``meshstat: error:`` (or
    ``meshstat: internal error:``).
    """

    SUCCESS = 0
    ERROR = 1
    INVALID_INPUT = 2
    PARSE_ERROR = 3
    #: ``audit`` found a (service, client group) whose effective split differs from the configured one:
    #: the analysis succeeded and the answer is "the configuration does not hold" (for CI gates).
    DIVERGES = 4
    CTRL_C = 130
    HANGUP = 129
    TERMINATED = 143


class UsageError(Exception):
    """Raised instead of argparse's ``sys.exit(2)`` so that :func:`main` stays in control."""


class HelpExit(Exception):
    """Raised instead of argparse's ``sys.exit(status)`` when it exits without an error (after ``--help``)."""

    def __init__(self, status: int) -> None:
        self.status = status


def error_status(exc: Exception) -> tuple[ExitStatus, str]:
    """The exit status for an error a command raised, and its one line for stderr.

    A :class:`UsageError` is never shown with a traceback; for every other
    error :func:`meshstat.cli.main` re-raises instead when ``--traceback`` is given.
    """
    if isinstance(exc, UsageError):
        return ExitStatus.INVALID_INPUT, f"meshstat: error: {_one_line(exc)}"
    if isinstance(exc, ConfigParseError):
        return ExitStatus.PARSE_ERROR, f"meshstat: error: {_one_line(exc)}"
    if isinstance(exc, (MeshstatError, argparse.ArgumentTypeError)):
        # an error about a file is bad input (3); one about an argument a bad argument (2)
        status = ExitStatus.PARSE_ERROR if getattr(exc, "source", None) else ExitStatus.INVALID_INPUT
        return status, f"meshstat: error: {_one_line(exc)}"
    if isinstance(exc, OSError):
        name = f" {exc.filename}" if getattr(exc, "filename", None) else ""
        return ExitStatus.ERROR, f"meshstat: error: cannot access{name}: {_one_line(exc.strerror or exc)}"
    # last resort (RecursionError, MemoryError, UnicodeDecodeError, bugs): one line
    what = type(exc).__name__ + (f": {_one_line(exc, limit=300)}" if str(exc).strip() else "")
    return ExitStatus.ERROR, f"meshstat: internal error: {what} (run with --traceback for details)"


def _one_line(exc: object, *, limit: int = 2000) -> str:
    """An error message on one line (a message from a subprocess may span several), shortened."""
    text = " | ".join(part.strip() for part in str(exc).splitlines() if part.strip())
    return text if len(text) <= limit else text[: limit - 3] + "..."


#: Signals that end a run as Ctrl-C does (where the platform has them).
_ENDING = tuple(getattr(signal, n) for n in ("SIGTERM", "SIGHUP") if hasattr(signal, n))


def _raise_terminated(signum: int, frame: object) -> None:
    raise Terminated(signum)


@contextlib.contextmanager
def signals_as_interrupts() -> Iterator[None]:
    """Within the block, SIGTERM and SIGHUP raise :class:`~meshstat.errors.Terminated`.

    By default these signals end the process at once, leaving temporary files
    behind; raised as an exception (a :class:`KeyboardInterrupt`), they unwind
    the run through the same clean-up as Ctrl-C. A signal that is ignored when
    the block starts (``nohup`` ignores SIGHUP) stays ignored. Outside the main
    thread (where Python cannot set handlers) this does nothing. The previous
    handlers are restored at the end.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old: dict[int, object] = {}
    for sig in _ENDING:
        prev = signal.getsignal(sig)
        if prev is signal.SIG_IGN:
            continue
        old[sig] = prev
        signal.signal(sig, _raise_terminated)
    try:
        yield
    finally:
        for sig, prev in old.items():
            signal.signal(sig, prev)  # type: ignore[arg-type]


def signal_status(exc: Terminated) -> tuple[int, str]:
    """The exit status (128 + the signal's number) and the stderr line for a :class:`Terminated`."""
    try:
        name = signal.Signals(exc.signum).name
    except ValueError:
        name = f"signal {exc.signum}"
    return 128 + exc.signum, f"meshstat: interrupted by {name}"
