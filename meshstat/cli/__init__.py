"""Command line: ``python -m meshstat <command> ...``.

A thin shell in httpie's style: :func:`main` takes ``argv`` and the streams,
returns an :class:`ExitStatus`, and does no math of its own; every command
calls the same public functions a notebook would. Errors a user can cause
print one line (``meshstat: error: ...``) and exit non-zero; ``--traceback``
shows the Python traceback instead. SIGTERM and SIGHUP unwind a run as Ctrl-C
does (:func:`~meshstat.cli.status.signals_as_interrupts`: temporary files are
removed) and exit with 143 and 129; every output path is checked before the
command starts (:func:`~meshstat.cli.context.check_outputs`).

The package: :mod:`~meshstat.cli.status` (exit statuses, the error line),
:mod:`~meshstat.cli.args` (argument types), :mod:`~meshstat.cli.context` (what
a handler gets), :mod:`~meshstat.cli.parser` (:func:`build_parser`) and one
module per command group (``simulate``, ``balancers``, ``netfilter``,
``inference``, ``mesh``, ``oracle``), each importing heavy libraries inside its
handlers only, so that start-up stays fast.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import os
import sys
import time
from collections.abc import Callable, Sequence
from typing import IO

from meshstat.cli.context import Context, check_outputs
from meshstat.cli.parser import build_parser
from meshstat.cli.status import (
    ExitStatus,
    HelpExit,
    UsageError,
    error_status,
    signal_status,
    signals_as_interrupts,
)
from meshstat.errors import Terminated

__all__ = ["Context", "ExitStatus", "build_parser", "console_main", "main"]


def main(
    argv: Sequence[str] | None = None,
    *,
    stdout: IO[str] | None = None,
    stderr: IO[str] | None = None,
) -> int:
    """Run the command line; returns the exit status (never raises for user errors).

    Parameters
    ----------
    argv : sequence of str, optional
        Arguments without the program name (default ``sys.argv[1:]``).
    stdout, stderr : IO[str], optional
        Streams (default the process's).
    """
    out = stdout if stdout is not None else sys.stdout
    err = stderr if stderr is not None else sys.stderr
    args_list = list(sys.argv[1:] if argv is None else argv)
    traceback_wanted = "--traceback" in args_list
    started = time.perf_counter()
    try:
        with signals_as_interrupts():
            parser = build_parser()
            args = parser.parse_args(args_list)
            if args.command is None:
                parser.print_help(out)
                return ExitStatus.INVALID_INPUT
            check_outputs(args)  # before any input is read or any run starts
            ctx = Context(out, err, fmt=getattr(args, "format", "table"))
            handler: Callable[[argparse.Namespace, Context], int] = args.handler
            from meshstat.inputs import max_input_size

            with max_input_size(getattr(args, "max_input_size", None)):
                status = int(handler(args, ctx))
        if os.environ.get("MESHSTAT_TIMING"):
            err.write(f"timing: {time.perf_counter() - started:.3f} s in main\n")
        return status
    except HelpExit as exc:
        return exc.status
    except Terminated as exc:  # SIGTERM or SIGHUP: cleaned up as after Ctrl-C
        code, line = signal_status(exc)
        with contextlib.suppress(OSError, ValueError):
            err.write(line + "\n")
        return code
    except KeyboardInterrupt:
        err.write("meshstat: interrupted\n")
        return ExitStatus.CTRL_C
    except Exception as exc:  # one line on stderr (status.error_status), or the traceback with --traceback
        if traceback_wanted and not isinstance(exc, UsageError):
            raise
        status, line = error_status(exc)
        err.write(line + "\n")
        return status


def console_main() -> None:
    """Entry point of the ``meshstat`` console script and ``python -m meshstat``.

    Disables the cyclic garbage collector for the short life of the process and
    leaves with ``os._exit`` after flushing, which skips tearing down numba's
    large object graph (measured at ~0.4 s).
    """
    gc.disable()
    status = main()
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    finally:
        os._exit(status)
