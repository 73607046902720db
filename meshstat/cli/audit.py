"""``meshstat audit``: where in the whole cluster the configured split does not hold, for whom, and why."""

from __future__ import annotations

import argparse
from typing import Any

from meshstat.cli.status import ExitStatus

__all__ = ["register"]


def _cmd_audit(args: argparse.Namespace, ctx: Any) -> int:
    from meshstat.audit import REASONS, audit
    from meshstat.mesh import Mesh
    from meshstat.parsers.k8s import load_manifests
    from meshstat.report.audit import audit_table

    res = audit(Mesh(load_manifests(args.filename)))
    df = audit_table(res)
    if res.rows or args.format != "table":
        ctx.emit(df, args)
    remarks = ctx.stderr if (args.format != "table" or getattr(args, "output", None)) else ctx.stdout
    print(res.summary(), file=remarks)
    for reason in res.by_reason():
        print(f"  {reason}: {REASONS.get(reason, '')}", file=remarks)
    return ExitStatus.DIVERGES if res.diverges else ExitStatus.SUCCESS


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add the ``audit`` sub-command."""
    p = sub.add_parser(
        "audit",
        parents=[common],
        help="every (service, client group) whose effective split differs from the configured one",
        description="Read a whole cluster (kubectl get -A -o yaml/json, directories, multi-document YAML) and list, "
        "for every Service a VirtualService routes and every group of clients that reach it the same way, the "
        "configured and the exact effective split where they differ, with a reason code and the objects to "
        f"change. Exit status {int(ExitStatus.DIVERGES)} when something diverges, 0 when nothing does.",
    )
    p.add_argument("-f", "--filename", action="append", required=True, metavar="PATH",
                   help="manifest file or directory (repeatable; YAML, JSON, kind: List)")
    p.set_defaults(handler=_cmd_audit)
