"""``meshstat completion bash|zsh``: a shell completion script generated from the argument parser.

shtab turns the argparse parser into a static script: completing costs the shell no Python start-up,
and the script always matches the commands and options of this version. Options that take a file
(``--iptables FILE``, ``-f PATH``, ``--config-dump FILE``, ...) complete file names. shtab is imported
only by this command.
"""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["register"]

#: Metavars of options whose value is a file or directory.
_FILE_METAVARS = ("FILE", "PATH", "LISTING", "CONFIG_DUMP.json", "FILE.png", "FILE.parquet", "FORMAT|FILE")


def register(sub: Any, root: argparse.ArgumentParser) -> None:
    """Add ``completion``; ``root`` is the whole parser the script is generated from."""
    p = sub.add_parser(
        "completion",
        help="print a shell completion script (bash or zsh)",
        description="Print a completion script for bash or zsh, generated from meshstat's own parser "
        "(shtab). Install it where your shell reads completions (see the examples), then start a new shell.",
    )
    p.add_argument("shell", choices=("bash", "zsh"), help="the shell")
    p.set_defaults(handler=lambda args, ctx: _cmd_completion(root, args, ctx))


def _mark_files(parser: argparse.ArgumentParser, files: dict[str, str]) -> None:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in dict.fromkeys(action.choices.values()):
                _mark_files(child, files)
        elif action.metavar in _FILE_METAVARS or (action.metavar is None and action.dest in ("filename",)):
            action.complete = files  # type: ignore[attr-defined]


def _cmd_completion(root: argparse.ArgumentParser, args: argparse.Namespace, ctx: Any) -> int:
    import shtab

    _mark_files(root, shtab.FILE)
    ctx.stdout.write(shtab.complete(root, shell=args.shell))
    return 0
