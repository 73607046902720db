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
import meshstat.cli.completion as completion
import meshstat.cli.inference as inference
import meshstat.cli.mesh as mesh
import meshstat.cli.netfilter as netfilter
import meshstat.cli.oracle as oracle
import meshstat.cli.simulate as simulate
from meshstat.cli.args import size_arg
from meshstat.cli.examples import epilog
from meshstat.cli.status import HelpExit, UsageError

__all__ = ["build_parser"]

#: Command modules in the order their sub-commands appear in ``meshstat --help``.
_COMMAND_MODULES = (simulate, netfilter, inference, mesh, audit, oracle)


#: Values of ``-o`` that pick the output format, as kubectl's ``-o`` does; any other value is a file.
OUTPUT_FORMATS = ("table", "wide", "markdown", "csv", "json", "parquet")


class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Descriptions are wrapped as usual; text with line breaks (the examples of an epilog) is kept as written."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        if "\n" in text:
            return super()._fill_text(text, width, indent)
        return argparse.HelpFormatter._fill_text(self, text, width, indent)


class _FormatAction(argparse.Action):
    """``--format F`` and ``-o F``: ``wide`` is the table with every column (``--wide``).

    ``-o`` with any other value than :data:`OUTPUT_FORMATS` is ``--output FILE``, as it always was.
    """

    def __call__(self, parser: Any, ns: argparse.Namespace, value: Any, option_string: str | None = None) -> None:
        if option_string == "-o" and value not in OUTPUT_FORMATS:
            ns.output = value
        elif value == "wide":
            ns.format, ns.wide = "table", True
        else:
            ns.format = value


class _Parser(argparse.ArgumentParser):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", _HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> Any:  # type: ignore[override]
        raise UsageError(f"{self.prog}: {message}")

    def exit(self, status: int = 0, message: str | None = None) -> Any:  # type: ignore[override]
        if message:
            raise UsageError(message.strip())
        raise HelpExit(status)


def _common_parser() -> argparse.ArgumentParser:
    common = _Parser(add_help=False)
    out = common.add_argument_group("output")
    out.add_argument(
        "--format",
        choices=OUTPUT_FORMATS,
        default="table",
        action=_FormatAction,
        help="output format (default: table, the columns that answer the question, fitted to the terminal; "
        "wide: every column)",
    )
    out.add_argument("--wide", action="store_true", help="the table with every column, no cell shortened")
    out.add_argument("--output", metavar="FILE", help="write the table to FILE instead of stdout")
    out.add_argument(
        "-o", dest="format", metavar="FORMAT|FILE", action=_FormatAction, default=argparse.SUPPRESS,
        help="as kubectl: -o wide|table|markdown|csv|json|parquet picks the format; -o FILE is --output FILE",
    )  # fmt: skip
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
    completion.register(sub, parser)
    for name, child in sub.choices.items():
        child.epilog = epilog(name)
    return parser
