"""Commands of the netfilter area: ``trace`` and ``services``.

``python -m meshstat trace --iptables FILE --dst 10.108.203.9:9999 --uid 0``
prints every path of a packet through every table and hook it crosses as a tree
of the unknowns it depends on, each leaf a verdict with its exact probability
(:func:`meshstat.report.netfilter.render_trace`; ``-v`` adds the rules walked,
``--wide`` and the machine formats give one row per path), and names what it did
not walk;
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

from meshstat.cli.args import address_list_arg, endpoint_arg, int_arg
from meshstat.errors import InvalidArgument, ModelError

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
        help="every path of one packet through the tables and hooks it crosses, with exact probabilities",
        description=(
            "Walk the first packet of a connection through every table the dump has (raw, mangle, nat, filter, "
            "security) at every hook it crosses, in the kernel's order: output then postrouting for a local "
            "sender; prerouting, then input or forward and postrouting by its destination after DNAT. Print "
            "every path: exact probability, verdict (a filter DROP or REJECT ends a path after its DNAT), and "
            "the rules it passed, and name what was not walked. Fields not given are not guessed: the trace "
            "splits on them and labels each side. kube-proxy's iptables-restore text (a full or partial sync) "
            "lacks kube-proxy's jumps from the built-in chains: they are added and said so."
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
    tr.add_argument(
        "--src-local", choices=("yes", "no"),
        help="whether the source is a local address (default: yes on hook output, else unknown)",
    )
    tr.add_argument(
        "--local", type=address_list_arg, metavar="ADDR[,ADDR...]",
        help="the host's local addresses or prefixes, all of them: they decide input or forward after DNAT "
        "(default: a DNAT destination is assumed not local, i.e. a pod reached by forwarding)",
    )  # fmt: skip
    tr.add_argument("--hook", choices=("output", "prerouting"), default="output", help="netfilter hook (default output)")
    tr.add_argument("--chain", metavar="CHAIN", help="start in this chain instead of the hook (e.g. KUBE-SERVICES)")
    tr.add_argument(
        "--tables", metavar="T1,T2",
        help="iptables tables to walk (default: all the dump has, in the kernel's order at every hook); nft: "
        "base-chain types (filter, nat, route). The others are named as not walked",
    )  # fmt: skip
    tr.add_argument("-v", "--verbose", action="store_true", help="tree: show the rules each leaf walked")
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
    ctx.remarks(text.split("\n"), args)


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
        src_local=None if args.src_local is None else args.src_local == "yes", local_addresses=args.local,
    )  # fmt: skip
    tables = tuple(x.strip() for x in args.tables.split(",")) if args.tables else None
    added: list[str] = []
    if rs.dialect == "iptables" and args.chain is None:
        from meshstat.kubeproxy.iptables_filter import add_kube_proxy_jumps

        added = add_kube_proxy_jumps(rs)
    result = netfilter.trace(rs, pkt, args.hook, tables=tables, chain=args.chain)
    total = result.total  # raises on an inconsistent trace
    tree = args.format == "table" and not getattr(args, "wide", False)
    if tree:
        ctx.write_text(rep.render_trace(result, verbose=args.verbose, term=ctx.terminal(ctx.stdout, args)), args)
    else:
        ctx.emit(rep.trace_frame(result), args)
    lines = [
        f"walked: {', '.join(result.tables)} (from hook {result.hook}); total probability {share_text(total)}"
    ]
    lines += [f"not walked: {x}" for x in result.not_walked]
    if added:
        jumps: dict[str, list[str]] = {}
        for a in added:  # "-t filter -A INPUT ... -j TARGET"
            w = a.split()
            jumps.setdefault(f"{w[1]}/{w[3]}", []).append(w[-1])
        lines.append(
            "note: the input is kube-proxy's iptables-restore text, which lacks the jumps kube-proxy adds to the "
            "built-in chains with iptables -I; assumed as kube-proxy adds them (rules shown as 'assumed'): "
            + "; ".join(f"{c} -> {', '.join(t)}" for c, t in jumps.items())
        )
    if tree and any(isinstance(x, rep.TraceSplit) for x in rep.trace_tree(result)):
        lines.append("note: each probability is given the branch above it (unknown packet fields or client "
                     "history are not guessed): along a branch they multiply, under a branch they sum to 1")
    elif not tree and any(p.conditions for p in result.paths):
        lines.append(
            "note: probabilities are conditional on the listed assumptions (unknown packet fields or "
            "client history are not guessed); each assumption's two sides sum to 1 separately"
        )
    lines += [f"note: {n}" for n in result.notes]
    lines += [f"warning: {w}" for w in result.warnings]
    ctx.remarks(lines, args)
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
    from meshstat.inputs import read_text, source_name
    from meshstat.report import netfilter as rep

    if getattr(args, "ipvs", None) is not None:
        infos = kubeproxy.parse_ipvsadm(read_text(args.ipvs, what="ruleset"), source_name(args.ipvs))
        if args.service:
            raise InvalidArgument("--service needs --iptables or --nft (IPVS rr is a rotation, not a random split)")
        ctx.emit(rep.services_frame(infos), args, columns=rep.SERVICES_COLUMNS)
        _note(ctx, args, "note: IPVS endpoint shares are long-run weight shares of a deterministic rotation")
        return 0
    rs = _load(args)
    if args.service:
        info = kubeproxy.find_service(rs, args.service)
        try:
            route = kubeproxy.service_route(info, chain=args.chain)
        except ModelError as exc:
            if info.cluster_state == "routed" and not info.unmodelled:
                raise
            # present, in a state meshstat reports rather than models
            ctx.emit(rep.endpoints_frame(info, chain=args.chain), args, columns=rep.ENDPOINTS_COLUMNS)
            lines = [
                f"{info.name} {info.protocol} {info.cluster_ip}:{info.port}: {info.cluster_state}"
                + (f", external traffic {info.external_state}" if info.external_state else ""),
                *(f"note: {n}" for n in info.notes),
                f"note: no split to simulate: {exc}",
            ]
            _note(ctx, args, "\n".join(lines + [f"warning: {w}" for w in rs.warnings]))
            return 0
        ctx.emit(rep.endpoints_frame(info, chain=args.chain), args, columns=rep.ENDPOINTS_COLUMNS)
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
    ctx.emit(rep.services_frame(infos), args, columns=rep.SERVICES_COLUMNS)
    lines = [f"note: {n}" for n in kubeproxy.service_notes(rs)] + [f"warning: {w}" for w in rs.warnings]
    if lines:
        _note(ctx, args, "\n".join(lines))
    return 0
