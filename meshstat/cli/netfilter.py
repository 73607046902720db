"""Commands of the netfilter area: ``trace`` and ``services``.

``python -m meshstat trace --iptables FILE --dst 10.108.203.9:9999 --uid 0``
lists every path of a packet through the nat table with its exact probability;
``python -m meshstat services --iptables FILE`` lists kube-proxy's services.
``--nft FILE`` reads nftables rulesets instead; ``-`` reads standard input.
``--iptables`` also takes an ``iptables -t nat -vnL`` listing or a pasted
(damaged, partial) ``iptables-save`` text: the form is recognised from the first
line (:mod:`meshstat.parsers.netfilter.iptables_list`), and what the listing lost or the
paste needed repaired is printed as warnings.
Nothing heavy is imported at import time.
"""

from __future__ import annotations

import argparse
from typing import Any

from meshstat.cli.args import endpoint_arg, int_arg
from meshstat.cli.context import is_table
from meshstat.errors import InvalidArgument

__all__ = ["register"]


def _source_arguments(p: argparse.ArgumentParser, *, ipvs: bool = False) -> None:
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument(
        "--iptables", metavar="FILE",
        help="iptables-save / iptables-restore text, or an 'iptables -t nat -vnL' listing ('-': standard input)",
    )  # fmt: skip
    g.add_argument("--nft", metavar="FILE", help="nft list ruleset output or nft -f transaction ('-': standard input)")
    if ipvs:
        g.add_argument("--ipvs", metavar="FILE", help="ipvsadm -ln output (kube-proxy IPVS mode; '-': standard input)")


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add ``trace`` and ``services`` to the ``meshstat`` command line."""
    tr = sub.add_parser(
        "trace",
        parents=[common],
        help="every path of one packet through the nat table, with exact probabilities",
        description=(
            "Walk the first packet of a connection through the nat table (and mangle where TPROXY is used) "
            "and print every path: exact probability, verdict, and the rules it passed. Fields not given "
            "are not guessed: the trace splits on them and labels each side."
        ),
    )
    _source_arguments(tr)
    tr.add_argument("--dst", required=True, type=endpoint_arg, metavar="IP[:PORT]", help="destination")
    tr.add_argument("--src", metavar="IP", help="source address (default: unknown)")
    tr.add_argument("--sport", type=int_arg, metavar="PORT", help="source port (default: unknown)")
    tr.add_argument("--proto", default="tcp", help="protocol (default: tcp)")
    tr.add_argument("--uid", type=int_arg, metavar="N", help="socket owner UID (hook output)")
    tr.add_argument("--gid", type=int_arg, metavar="N", help="socket owner GID (hook output)")
    tr.add_argument("--out-if", metavar="IF", help="output interface (hook output)")
    tr.add_argument("--in-if", metavar="IF", help="input interface (hook prerouting)")
    tr.add_argument("--mark", type=int_arg, default=0, help="packet mark on entry (default 0)")
    tr.add_argument(
        "--dst-local", choices=("yes", "no"), help="whether the destination is a local address (default: unknown)"
    )
    tr.add_argument("--hook", choices=("output", "prerouting"), default="output", help="netfilter hook (default output)")
    tr.add_argument("--chain", metavar="CHAIN", help="start in this chain instead of the hook (e.g. KUBE-SERVICES)")
    tr.add_argument(
        "--tables", metavar="T1,T2", help="iptables tables to walk in order (default: nat, with mangle if it has TPROXY)"
    )
    tr.set_defaults(handler=_cmd_trace)

    sv = sub.add_parser(
        "services",
        parents=[common],
        help="kube-proxy services in an iptables or nft dump",
        description=(
            "List the kube-proxy services of a dump (iptables or nftables mode): cluster IP, port, protocol, "
            "endpoints, session affinity, traffic policy; with --service, one service's endpoints and their "
            "exact shares."
        ),
    )
    _source_arguments(sv, ipvs=True)
    sv.add_argument("--service", metavar="NS/NAME[:PORT]", help="show the endpoints of one service (or CLUSTER_IP:PORT)")
    sv.add_argument("--chain", choices=("cluster", "local"), default="cluster", help="with --service: which chain")
    sv.set_defaults(handler=_cmd_services)


def _load(args: argparse.Namespace) -> Any:
    from meshstat import netfilter

    if args.iptables is not None:
        return netfilter.load(args.iptables, "iptables")
    return netfilter.load(args.nft, "nft")


def _note(ctx: Any, args: argparse.Namespace, text: str) -> None:
    stream = ctx.stdout if is_table(args) else ctx.stderr
    stream.write(text.rstrip("\n") + "\n")


def _cmd_trace(args: argparse.Namespace, ctx: Any) -> int:
    from meshstat import netfilter
    from meshstat.model import share_text
    from meshstat.report import netfilter as rep

    rs = _load(args)
    dst, dport = args.dst
    pkt = netfilter.Packet(
        dst=dst, dport=dport, src=args.src, sport=args.sport, proto=args.proto, uid=args.uid, gid=args.gid,
        out_if=args.out_if, in_if=args.in_if, mark=args.mark,
        dst_local=None if args.dst_local is None else args.dst_local == "yes",
    )  # fmt: skip
    tables = tuple(x.strip() for x in args.tables.split(",")) if args.tables else None
    result = netfilter.trace(rs, pkt, args.hook, tables=tables, chain=args.chain)
    ctx.emit(rep.trace_frame(result), args)
    lines = [f"walked: {', '.join(result.tables)} (hook {result.hook}); total probability {share_text(result.total)}"]
    if any(p.conditions for p in result.paths):
        lines.append(
            "note: probabilities are conditional on the listed assumptions (unknown packet fields or "
            "client history are not guessed); each assumption's two sides sum to 1 separately"
        )
    lines += [f"note: {n}" for n in result.notes]
    lines += [f"warning: {w}" for w in result.warnings]
    _note(ctx, args, "\n".join(lines))
    return 0


def _listing_lines(rs: Any, args: argparse.Namespace) -> list[str]:
    """For a ruleset read from a listing or a paste: its warnings, and where its counters go."""
    from meshstat.parsers.netfilter.iptables_list import listing_info

    info = listing_info(rs)
    if info is None and not rs.cache.get("iptables-paste"):
        return []
    lines = [f"warning: {w}" for w in rs.warnings]
    if info is not None and info.counters and getattr(args, "service", None):
        lines.append(
            f"note: the listing has packet counters: meshstat check --iptables {rs.source} --service "
            f"{args.service} tests them against these shares"
        )
    return lines


def _cmd_services(args: argparse.Namespace, ctx: Any) -> int:
    from meshstat import kubeproxy
    from meshstat.netfilter.load import _read
    from meshstat.report import netfilter as rep

    if getattr(args, "ipvs", None) is not None:
        text, name = _read(args.ipvs)
        infos = kubeproxy.parse_ipvsadm(text, name)
        if args.service:
            raise InvalidArgument("--service needs --iptables or --nft (IPVS rr is a rotation, not a random split)")
        ctx.emit(rep.services_frame(infos), args)
        _note(ctx, args, "note: IPVS endpoint shares are long-run weight shares of a deterministic rotation")
        return 0
    rs = _load(args)
    if args.service:
        info = kubeproxy.find_service(rs, args.service)
        route = kubeproxy.service_route(info, chain=args.chain)
        ctx.emit(rep.endpoints_frame(info, chain=args.chain), args)
        lines = [
            f"{info.name} {info.protocol} {info.cluster_ip}:{info.port} ({route.describe()[:200]})",
            *(f"note: {n}" for n in route.notes),
        ]
        lines += _listing_lines(rs, args)
        _note(ctx, args, "\n".join(lines))
        return 0
    infos = kubeproxy.services(rs)
    if not infos:
        raise InvalidArgument(f"{rs.source}: no kube-proxy services found in the dump")
    ctx.emit(rep.services_frame(infos), args)
    if rs.warnings:
        _note(ctx, args, "\n".join(f"warning: {w}" for w in rs.warnings))
    return 0
