"""``meshstat audit``: where in the whole cluster the configured split does not hold, for whom, and why."""

from __future__ import annotations

import argparse
from typing import Any

from meshstat.cli.status import ExitStatus
from meshstat.errors import InvalidArgument

__all__ = ["register"]


def _cmd_audit(args: argparse.Namespace, ctx: Any) -> int:
    from meshstat.audit import REASONS, audit
    from meshstat.mesh import Mesh
    from meshstat.parsers.k8s import load_manifests
    from meshstat.report.audit import AUDIT_COLUMNS, audit_table

    mesh = Mesh(load_manifests(args.filename))
    res = audit(mesh, observed=_observed(args))
    df = audit_table(res)
    if res.rows or args.format != "table":
        ctx.emit(df, args, columns=AUDIT_COLUMNS)
    # what the input holds that changes the answer or is not modelled (objects given twice, kinds not read)
    ctx.remarks([*res.summary().splitlines(), *(f"  {reason}: {REASONS.get(reason, '')}"
                                                for reason in res.by_reason()),
                 *(str(d) for d in mesh.diagnostics if d.level == "warning"),
                 *(f"note: {n}" for n in res.notes)], args)
    return ExitStatus.DIVERGES if res.diverges else ExitStatus.SUCCESS


def _pairs(values: list[str] | None, option: str) -> list[tuple[str, str]]:
    out = []
    for v in values or []:
        name, eq, path = v.partition("=")
        if not eq or not name or not path:
            raise InvalidArgument(f"{option} {v!r}: expected NAME=FILE")
        out.append((name, path))
    return out


def _observed(args: argparse.Namespace) -> Any:
    """The real layers named on the command line (:class:`meshstat.audit.Observed`), or ``None``."""
    ipt, nft = _pairs(args.iptables, "--iptables"), _pairs(args.nft, "--nft")
    envoy = _pairs(args.envoy, "--envoy")
    if not (ipt or nft or envoy):
        return None
    from meshstat.audit import Observed
    from meshstat.netfilter import load
    from meshstat.parsers.envoy import load_envoy

    rulesets: dict[str, Any] = {}
    dumps: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for (node, path), dialect in [*((p, "iptables") for p in ipt), *((p, "nft") for p in nft)]:
        if node in rulesets:
            raise InvalidArgument(f"node {node!r} is given two rulesets")
        rulesets[node] = load(path, dialect)
        sources[node] = path
    for workload, path in envoy:
        if "/" not in workload:
            raise InvalidArgument(f"--envoy {workload}={path}: name the workload as NAMESPACE/NAME")
        dumps[workload] = load_envoy([path])
        sources[workload] = path
    return Observed(rulesets, dumps, sources)


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
    p.add_argument("--iptables", action="append", metavar="NODE=FILE",
                   help="a node's iptables-save: its kube-proxy rules replace the modelled split for clients "
                        "without a sidecar (repeatable, one per node)")
    p.add_argument("--nft", action="append", metavar="NODE=FILE",
                   help="a node's nft list ruleset, as --iptables (kube-proxy's nftables mode)")
    p.add_argument("--envoy", action="append", metavar="WORKLOAD=FILE",
                   help="a workload's Envoy config_dump (NAMESPACE/NAME=FILE): its sidecar's split replaces "
                        "the modelled one (repeatable)")
    p.set_defaults(handler=_cmd_audit)
