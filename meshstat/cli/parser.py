"""The argument parser: the options every command shares, and each command module's sub-commands.

A command module exposes ``register(subparsers, common)``, where ``common`` is
the parent parser with the shared output and input options, and imports heavy
libraries inside its handlers only, so that building the parser stays fast.
This module imports the command modules; they never import it.
"""

from __future__ import annotations

import argparse
from typing import Any

import meshstat.cli.audit as audit
import meshstat.cli.inference as inference
import meshstat.cli.mesh as mesh
import meshstat.cli.netfilter as netfilter
import meshstat.cli.oracle as oracle
import meshstat.cli.simulate as simulate
from meshstat.cli.args import size_arg
from meshstat.cli.status import UsageError, _HelpExit

__all__ = ["build_parser"]

#: Command modules in the order their sub-commands appear in ``meshstat --help``.
_COMMAND_MODULES = (simulate, netfilter, inference, mesh, audit, oracle)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # type: ignore[override]
        raise UsageError(f"{self.prog}: {message}")

    def exit(self, status: int = 0, message: str | None = None) -> Any:  # type: ignore[override]
        if message:
            raise UsageError(message.strip())
        raise _HelpExit(status)


def _common_parser() -> argparse.ArgumentParser:
    common = _Parser(add_help=False)
    out = common.add_argument_group("output")
    out.add_argument(
        "--format",
        choices=("table", "markdown", "csv", "json", "parquet"),
        default="table",
        help="output format (default: table)",
    )
    out.add_argument("--output", "-o", metavar="FILE", help="write the table to FILE instead of stdout")
    out.add_argument(
        "--quiet",
        "-q",
        action="store_true",
        help="no progress bar (it is drawn on a terminal for runs over ~2 s)",
    )
    inp = common.add_argument_group("input")
    inp.add_argument(
        "--max-input-size",
        type=size_arg,
        metavar="SIZE",
        help="refuse input files larger than SIZE (256M, 1G or bytes; default 64M)",
    )
    return common


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser, every command module's sub-commands included."""
    common = _common_parser()
    parser = _Parser(
        prog="meshstat",
        description="Where does my traffic really go? Exact load-balancing statistics for Kubernetes and Istio.",
    )
    parser.add_argument("--traceback", action="store_true", help="show Python tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for mod in _COMMAND_MODULES:
        mod.register(sub, common)
    return parser
