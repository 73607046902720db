"""``simulate``, ``compare`` and ``cascade``: routes given on the command line.

``simulate`` hands over to :mod:`meshstat.cli.balancers` when balancer or
connection options are given (``--lb``, ``--requests-per-connection``,
``--clients``, ``--affinity``), and ``compare -f``/``--envoy`` to
:func:`meshstat.cli.mesh.run_compare_files`. The engine, the model and the
reports are imported inside the handlers only.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

from meshstat.cli.args import (
    add_route_arguments,
    apply_threads,
    count_arg,
    list_arg,
    route_from_args,
    seed_arg,
    weights_arg,
)
from meshstat.cli.balancers import add_simulate_arguments, run_simulate_lb, wants_lb
from meshstat.cli.context import Context
from meshstat.cli.mesh import add_request_arguments, run_compare_files
from meshstat.cli.status import ExitStatus
from meshstat.cli.topology import add_topology_arguments
from meshstat.errors import InvalidArgument

__all__ = ["register"]


def _simulation_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("-n", type=count_arg, default=10_000_000, metavar="N", help="requests (1e7, 10_000_000)")
    p.add_argument("--seed", type=seed_arg, help="seed (printed on every run, so that a run can be replayed)")
    p.add_argument("--window", type=count_arg, metavar="W", help="also count per window of W requests")
    p.add_argument(
        "--mode",
        choices=("auto", "exact", "per-request", "faithful"),
        default="auto",
        help="auto: numba kernels up to 1e10 requests, else exact multinomial counts",
    )
    p.add_argument("--threads", type=count_arg, help="numba threads (default: all cores)")


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add the ``simulate``, ``compare`` and ``cascade`` sub-commands."""
    sim = sub.add_parser(
        "simulate",
        parents=[common],
        help="route n requests through one route",
        description="Route n synthetic requests through one load-balancing stage and compare with the exact split.",
    )
    add_route_arguments(sim)
    _simulation_arguments(sim)
    sim.add_argument("--plot", metavar="FILE.png", help="write a PNG plot of expected vs observed shares")
    sim.add_argument(
        "--destinations",
        metavar="FILE.parquet",
        help="also stream every request's backend to FILE.parquet (column 'backend', a row per request)",
    )
    add_simulate_arguments(sim)
    sim.set_defaults(handler=_cmd_simulate)

    cmp_ = sub.add_parser(
        "compare",
        parents=[common],
        help="several routes side by side (kube-proxy vs Envoy)",
        description="Simulate several routes with the same n and seed and print them on one table.",
    )
    cmp_.add_argument("--weights", type=weights_arg, metavar="W1,W2,...", help="Envoy weighted clusters")
    cmp_.add_argument("--kube-proxy-endpoints", type=count_arg, metavar="N", help="kube-proxy over N pods")
    cmp_.add_argument("--cascade", type=list_arg, metavar="P1,P2,...", help="an iptables statistic cascade")
    cmp_.add_argument("--names", type=list_arg, metavar="A,B,...", help="labels for the --weights backends")
    mesh = cmp_.add_argument_group("manifests (the client paths of a mesh)")
    mesh.add_argument(
        "-f", "--filename", action="append", metavar="PATH", help="Kubernetes/Istio YAML file or folder (repeatable)"
    )
    mesh.add_argument("--scale", action="append", metavar="deploy/NAME=R", help="what-if replica count (repeatable)")
    mesh.add_argument("--client", metavar="NS/NAME", help="only this client workload")
    mesh.add_argument("--envoy", metavar="CONFIG_DUMP.json", help="an Envoy config_dump of the injected client")
    add_request_arguments(mesh)  # --service, --header, --path, --method
    _simulation_arguments(cmp_)
    add_topology_arguments(cmp_)
    cmp_.add_argument("--plot", metavar="FILE.png", help="write a PNG plot")
    cmp_.set_defaults(handler=_cmd_compare)

    cas = sub.add_parser(
        "cascade",
        parents=[common],
        help="exact shares of an iptables statistic cascade, and the cascade that realizes given weights",
        description=(
            "Show each -m statistic rule as written, as stored by the kernel (k = lround(p * 2**31)) and as "
            "iptables-save prints it, with the exact share of every outcome. With --weights: the cascade of "
            "31-bit thresholds that realizes the weights most closely, and its error."
        ),
    )
    add_route_arguments(cas)
    cas.set_defaults(handler=_cmd_cascade)


# ----------------------------------------------------------------- handlers


def _run_simulation(route: Any, args: argparse.Namespace, ctx: Context) -> Any:
    from meshstat.engine import simulate

    apply_threads(args.threads)
    return simulate(
        route,
        args.n,
        rng=args.seed,
        mode=args.mode.replace("-", "_"),
        window=args.window,
        destinations=getattr(args, "destinations", None) or False,
        progress=ctx.progress(args),
    )


def _print_run_line(ctx: Context, args: argparse.Namespace, results: Sequence[Any]) -> None:
    from meshstat.engine import rate_summary

    r = results[0]
    secs = sum(x.elapsed for x in results)
    rate = rate_summary(results) / 1e6
    text = (
        f"seed {r.seed_entropy} | n {r.n:,} | mode {r.mode} | "
        f"{secs * 1e3:.1f} ms, {rate:,.0f} M requests/s"
    )
    ctx.remarks([text, *(f"note: {note}" for x in results for note in x.notes)], args)


def _cmd_simulate(args: argparse.Namespace, ctx: Context) -> int:
    if wants_lb(args):
        if args.destinations:
            raise InvalidArgument(
                "--destinations is for routes without a stateful balancer (--lb and friends)"
            )
        return run_simulate_lb(args, ctx)
    from meshstat.report import simulation as rep

    route = route_from_args(args)
    result = _run_simulation(route, args, ctx)
    human = args.format in ("table", "markdown")
    frame = rep.to_frame(result)
    ctx.emit(rep.display_frame(frame) if args.format == "markdown" else frame, args, columns=rep.SIMULATE_COLUMNS)
    if args.window is not None and human and args.output is None:
        ctx.stdout.write(f"windows of {args.window:,} requests: band of one window's share and the worst window\n")
        ctx.emit(rep.window_summary_frame(result), args, columns=rep.WINDOW_SUMMARY_COLUMNS)
    _print_run_line(ctx, args, [result])
    if args.plot:
        from meshstat import plots

        if args.window is not None:
            plots.plot_windows(result, args.plot)
        else:
            plots.plot_shares([result], args.plot)
    return ExitStatus.SUCCESS


def _cmd_cascade(args: argparse.Namespace, ctx: Context) -> int:
    from fractions import Fraction

    from meshstat import model
    from meshstat.report import simulation as rep

    targets: list[Fraction] | None = None
    if args.weights is not None:
        w = model.Weighted.from_weights(args.weights)
        targets = list(w.shares())
        names = [b.name for b in model.Route(root=w).backends()] if args.names is None else args.names
        children = tuple(model.Backend(name=x) for x in names)
        stage = model.Cascade(children=children, thresholds=model.weights_to_cascade(w.weights))
        written = [model.threshold_to_decimal(k) for k in stage.thresholds]
    else:
        route = route_from_args(args)
        stage = route.root
        if not isinstance(stage, model.Cascade):
            raise InvalidArgument(
                f"{route.name}'s chain is not a statistic cascade ({route.describe()[:120]}): its exact split is "
                "in 'meshstat services --iptables FILE --service NAME'"
            )
        if args.cascade is not None:
            written = list(args.cascade)
        elif args.kube_proxy_endpoints is not None:
            written = list(model.kube_proxy_probabilities(len(stage.children), legacy=args.legacy))
            targets = [Fraction(1, len(stage.children))] * len(stage.children)
        else:
            written = list(stage.decimals())
    ctx.emit(rep.cascade_frame(stage, written, targets), args, float_precision=12, columns=rep.CASCADE_COLUMNS)
    if targets is not None and args.weights is not None:
        first, last = model.cascade_error_bound(len(stage.children))
        ctx.note(f"error bound: {first:.3g} for every share but the last, {last:.3g} for the last")
    return ExitStatus.SUCCESS


def _cmd_compare(args: argparse.Namespace, ctx: Context) -> int:
    if args.filename or args.envoy:
        return run_compare_files(args, ctx)
    from meshstat import model
    from meshstat.engine import compare
    from meshstat.report import simulation as rep

    routes = []
    if args.kube_proxy_endpoints is not None:
        routes.append(model.Route(root=model.Cascade.kube_proxy(args.kube_proxy_endpoints), name="kube-proxy"))
    if args.cascade is not None:
        routes.append(model.Route(root=model.Cascade.from_probabilities(args.cascade), name="cascade"))
    if args.weights is not None:
        names = args.names
        children = None
        if names is not None:
            if len(names) != len(args.weights):
                raise InvalidArgument(f"--names has {len(names)} labels for {len(args.weights)} backends")
            children = tuple(model.Backend(name=x) for x in names)
        routes.append(model.Route(root=model.Weighted.from_weights(args.weights, children), name="envoy"))
    if not routes:
        raise InvalidArgument("give at least one of --kube-proxy-endpoints, --cascade, --weights")
    apply_threads(args.threads)
    results = compare(
        routes,
        args.n,
        rng=args.seed,
        mode=args.mode.replace("-", "_"),
        window=args.window,
        progress=ctx.progress(args),
    )
    frame = rep.compare_frame(results)
    ctx.emit(rep.display_frame(frame) if args.format == "markdown" else frame, args, columns=rep.COMPARE_COLUMNS)
    _print_run_line(ctx, args, results)
    if args.plot:
        from meshstat import plots

        plots.plot_shares(results, args.plot)
    return ExitStatus.SUCCESS
