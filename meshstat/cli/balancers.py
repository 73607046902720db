"""``simulate --lb ...``: endpoint balancers and connection-level effects on the command line.

Integration with :mod:`meshstat.cli.simulate`: the ``simulate`` parser calls
:func:`add_simulate_arguments` and its handler calls :func:`run_simulate_lb`
when :func:`wants_lb` is true (``--lb``, ``--requests-per-connection``,
``--clients`` or ``--affinity`` given). Heavy libraries are imported inside the
handler only.

``--weights 90,10 --lb round-robin --endpoints 3,2`` builds Envoy weighted
clusters over subsets, each subset (``--names`` labels them, default
``s1, s2, ...``) with its own balancer over its endpoints
(:class:`meshstat.balancers.Balanced`), and runs the route through
:func:`meshstat.simulate`. ``--endpoints`` gives one count per subset (or one
count for all); the workload options apply to every subset, ``--arrival-rate``
being the rate of the whole route (each least-request subset sees it thinned by
its share).
"""

from __future__ import annotations

import argparse
from typing import Any

from meshstat.cli.args import (
    apply_threads,
    count_arg,
    endpoint_counts_arg,
    float_arg,
    int_list_arg,
    route_from_args,
)
from meshstat.errors import InvalidArgument
from meshstat.inputs import ascii_digits

__all__ = [
    "LB_CHOICES",
    "add_simulate_arguments",
    "balancer_from_args",
    "run_simulate_lb",
    "subsets_route_from_args",
    "wants_lb",
]

#: Values of ``--lb``.
LB_CHOICES = ("round-robin", "random", "least-request", "ring-hash", "maglev", "swrr", "numgen-inc", "ipvs-rr",
              "ipvs-wrr")


def add_simulate_arguments(p: argparse.ArgumentParser) -> None:
    """Add the "load balancers" argument group to the ``simulate`` parser."""
    g = p.add_argument_group("load balancers (inside a subset)")
    g.add_argument("--lb", choices=LB_CHOICES, help="endpoint balancer to simulate instead of a route")
    g.add_argument("--endpoints", type=endpoint_counts_arg, metavar="N[,N...]",
                   help="number of endpoints (hosts 10.244.x.y:8080); with --weights, one count per subset")
    g.add_argument("--endpoint-weights", type=int_list_arg, metavar="W1,W2,...", help="load_balancing_weight per endpoint")
    g.add_argument("--endpoint-addresses", metavar="IP:PORT,...", help="host keys (hash keys) of the endpoints")
    g.add_argument("--workers", type=count_arg, default=1, metavar="W",
                   help="Envoy --concurrency / nginx worker processes: independent balancer instances")
    g.add_argument("--choice-count", type=count_arg, default=2, metavar="C", help="least request: choices (>= 2)")
    g.add_argument("--active-request-bias", type=float_arg, default=1.0, metavar="B",
                   help="least request: weight / (active + 1) ** B with unequal weights")
    g.add_argument("--full-scan", action="store_true", help="least request: selection_method FULL_SCAN")
    g.add_argument("--arrival-rate", type=float_arg, metavar="RPS",
                   help="least request: Poisson arrivals per second (default 80%% of capacity)")
    g.add_argument("--service-time", metavar="SPEC[;SPEC...]",
                   help="least request: exp:0.01, const:0.005 or lognormal:0.01,1 (seconds); one, or one per "
                        "endpoint separated by ';'")
    g.add_argument("--servers", metavar="S[,S...]", help="least request: FIFO servers per endpoint (0 = unlimited)")
    g.add_argument("--keys", type=count_arg, metavar="K", help="ring hash / maglev: K hash keys (header values)")
    g.add_argument("--zipf", type=float_arg, default=0.0, metavar="S", help="key popularity Zipf exponent (0 = uniform)")
    g.add_argument("--ring-min", type=count_arg, default=1024, metavar="N", help="ring hash minimum_ring_size")
    g.add_argument("--ring-max", type=count_arg, default=8 * 1024 * 1024, metavar="N",
                   help="ring hash maximum_ring_size")
    g.add_argument("--table-size", type=count_arg, default=65537, metavar="M", help="maglev table size (prime)")
    g.add_argument("--remove-endpoint", metavar="ADDR|INDEX",
                   help="ring hash / maglev: also report the keys that move when this endpoint is removed")
    g.add_argument("--add-endpoint", metavar="IP:PORT",
                   help="ring hash / maglev: also report the keys that move when this endpoint is added")
    g.add_argument("--swrr-backup", type=int_list_arg, metavar="I,...", help="swrr: indices (0-based) of backup servers")
    g.add_argument("--swrr-down", type=int_list_arg, metavar="I,...", help="swrr: indices (0-based) of down servers")
    c = p.add_argument_group("connections and affinity")
    c.add_argument("--requests-per-connection", metavar="R|geometric:MEAN|all",
                   help="requests per connection (default: a new connection per request)")
    c.add_argument("--clients", type=count_arg, metavar="C", help="clients sharing the requests (default 1)")
    c.add_argument("--replicates", type=count_arg, default=200, metavar="N",
                   help="runs for the dispersion of a route with connection reuse")
    c.add_argument("--affinity", choices=("client-ip", "client-ip-nft", "hash-source-ip"),
                   help="session affinity: kube-proxy iptables (-m recent), nftables sets, or Envoy source-IP hash")
    c.add_argument("--affinity-timeout", type=float_arg, default=10800.0, metavar="SECONDS",
                   help="affinity timeout (sessionAffinityConfig.clientIP.timeoutSeconds)")
    c.add_argument("--connection-rate", type=float_arg, default=1.0, metavar="PER_S",
                   help="affinity: new connections per second (all clients together)")


def wants_lb(args: argparse.Namespace) -> bool:
    """Whether ``simulate`` should hand over to :func:`run_simulate_lb`."""
    return any(getattr(args, a, None) is not None for a in ("lb", "requests_per_connection", "clients", "affinity"))


def _endpoints(args: argparse.Namespace) -> tuple[Any, list[int] | None]:
    addrs = getattr(args, "endpoint_addresses", None)
    weights = getattr(args, "endpoint_weights", None)
    n = getattr(args, "endpoints", None)
    if isinstance(n, list):
        if len(n) != 1:
            raise InvalidArgument(
                f"--endpoints {','.join(map(str, n))} gives one count per subset: it needs --weights with "
                f"{len(n)} weights (and --lb)"
            )
        n = n[0]
    if addrs:
        eps: Any = [a.strip() for a in addrs.split(",") if a.strip()]
    elif n is not None:
        eps = n
    elif weights is not None:
        eps = len(weights)
    elif getattr(args, "kube_proxy_endpoints", None) is not None:
        eps = args.kube_proxy_endpoints
    else:
        raise InvalidArgument("give --endpoints N, --endpoint-weights W1,W2,... or --endpoint-addresses A,B,...")
    count = len(eps) if isinstance(eps, list) else eps
    if weights is not None and len(weights) != count:
        raise InvalidArgument(f"--endpoint-weights has {len(weights)} weights for {count} endpoints")
    return eps, weights


def _workload(args: argparse.Namespace, k: int) -> Any:
    from meshstat.balancers import Workload
    from meshstat.balancers.workload import parse_service_time

    st: Any = None
    if getattr(args, "service_time", None):
        parts = [parse_service_time(x) for x in args.service_time.split(";") if x.strip()]
        st = parts[0] if len(parts) == 1 else tuple(parts)
    servers: Any = 1
    if getattr(args, "servers", None):
        vals = int_list_arg(args.servers)
        servers = vals[0] if len(vals) == 1 else tuple(vals)
    kw: dict[str, Any] = {
        "clients": args.clients or 1,
        "requests_per_connection": args.requests_per_connection,
        "keys": args.keys,
        "zipf": args.zipf,
        "arrival_rate": args.arrival_rate,
        "servers": servers,
    }
    if st is not None:
        kw["service_time"] = st
    return Workload(**kw)


def balancer_from_args(args: argparse.Namespace) -> Any:
    """The balancer named by ``--lb`` and its parameters."""
    from meshstat import balancers as b

    eps, weights = _endpoints(args)
    lb = args.lb
    if lb == "round-robin":
        return b.RoundRobin(eps, weights, workers=args.workers)
    if lb == "random":
        return b.Random(eps, weights)
    if lb == "least-request":
        return b.LeastRequest(eps, weights, choice_count=args.choice_count, active_request_bias=args.active_request_bias,
                              selection_method="full_scan" if args.full_scan else "n_choices")
    if lb == "ring-hash":
        return b.RingHash(eps, weights, min_ring_size=args.ring_min, max_ring_size=args.ring_max)
    if lb == "maglev":
        return b.Maglev(eps, weights, table_size=args.table_size)
    if lb == "swrr":
        count = len(eps) if isinstance(eps, list) else eps
        flags = {}
        for name in ("backup", "down"):
            idx = getattr(args, f"swrr_{name}", None) or []
            if any(not 0 <= i < count for i in idx):
                raise InvalidArgument(f"--swrr-{name} indices must be in [0, {count - 1}]")
            flags[name] = [i in idx for i in range(count)]
        return b.SmoothWRR(eps, weights, workers=args.workers, **flags)
    if lb == "numgen-inc":
        return b.NumgenInc(eps)
    return b.Ipvs(eps, weights, scheduler="rr" if lb == "ipvs-rr" else "wrr")


def _run_line(ctx: Any, args: argparse.Namespace, text: str, notes: tuple[str, ...]) -> None:
    ctx.remarks([text, *(f"note: {note}" for note in notes)], args)


def run_simulate_lb(args: argparse.Namespace, ctx: Any) -> int:
    """Handler for ``simulate`` with balancer options (see :func:`wants_lb`)."""
    apply_threads(getattr(args, "threads", None))
    n = int(getattr(args, "n", 10_000_000))
    seed = getattr(args, "seed", None)
    human = getattr(args, "format", "table") in ("table", "markdown")
    if getattr(args, "affinity", None) is not None:
        return _run_affinity(args, ctx, n, seed)
    if getattr(args, "lb", None) is None:
        return _run_connections(args, ctx, n, seed)
    if getattr(args, "weights", None) is not None:
        return _run_subsets(args, ctx, n, seed)
    from meshstat.engine.balancers import simulate_balancer
    from meshstat.report import balancers as rep

    lb = balancer_from_args(args)
    k = lb.n_hosts
    wl = _workload(args, k)
    res = simulate_balancer(lb, n, rng=seed, workload=wl)
    ctx.emit(rep.balancer_frame(res), args, columns=rep.BALANCER_COLUMNS)
    if human and args.output is None:
        ctx.emit(rep.imbalance_frame([res]), args, columns=rep.IMBALANCE_COLUMNS)
        if res.worker_counts is not None:
            ctx.stdout.write("per worker\n")
            ctx.emit(rep.worker_frame(res), args, columns=rep.WORKER_COLUMNS)
    if getattr(args, "remove_endpoint", None) or getattr(args, "add_endpoint", None):
        from meshstat.balancers import Maglev, RingHash
        from meshstat.engine.balancers import disruption

        if not isinstance(lb, RingHash | Maglev):
            raise InvalidArgument("--remove-endpoint/--add-endpoint need --lb ring-hash or maglev")
        after = lb
        if args.remove_endpoint:
            ref = args.remove_endpoint
            index = ascii_digits(ref)
            after = after.without(int(ref) if index else ref) if (index or ref in lb.endpoints) else None
            if after is None:
                raise InvalidArgument(f"--remove-endpoint {ref}: not an endpoint address or index")
        if args.add_endpoint:
            after = after.with_endpoint(args.add_endpoint)
        d = disruption(lb, after, wl if wl.has_keys else 100_000)
        if human and args.output is None:
            ctx.stdout.write(f"host-set change: {d.moved:,} of {d.n_keys:,} keys moved ({d.moved_share:.2%}; "
                             f"{d.unavoidable / d.n_keys:.2%} were on removed hosts)\n")
            ctx.emit(rep.disruption_frame(d), args, columns=rep.DISRUPTION_COLUMNS)
    rate = res.rate / 1e6
    _run_line(ctx, args, f"seed {res.seed_entropy} | n {res.n:,} | lb {res.policy} | {res.elapsed * 1e3:.1f} ms, "
              f"{rate:,.1f} M requests/s", res.notes)
    return 0


def _run_connections(args: argparse.Namespace, ctx: Any, n: int, seed: Any) -> int:
    from meshstat.engine.connections import simulate_connections
    from meshstat.report import balancers as rep

    route = route_from_args(args)
    res = simulate_connections(route, n, clients=args.clients or 1, requests_per_connection=args.requests_per_connection,
                               replicates=args.replicates, rng=seed)
    ctx.emit(rep.connection_frame(res), args, columns=rep.CONNECTION_COLUMNS)
    _run_line(ctx, args, f"seed {res.seed_entropy} | n {res.n:,} per run | {res.replicates} runs | "
              f"{res.connections:,} connections | {res.elapsed * 1e3:.1f} ms", res.notes)
    return 0


def _run_affinity(args: argparse.Namespace, ctx: Any, n: int, seed: Any) -> int:
    from meshstat.balancers import HashAffinity, KubeProxyAffinity, Maglev, RingHash
    from meshstat.engine.affinity import simulate_affinity
    from meshstat.report import balancers as rep

    eps, weights = _endpoints(args)
    if args.affinity == "hash-source-ip":
        base = RingHash(eps, weights) if args.lb == "ring-hash" else Maglev(eps, weights, args.table_size)
        aff: Any = HashAffinity(base)
    else:
        aff = KubeProxyAffinity(eps, timeout=args.affinity_timeout,
                                mode="iptables" if args.affinity == "client-ip" else "nftables")
    res = simulate_affinity(aff, n, clients=args.clients or 1, connection_rate=args.connection_rate, rng=seed)
    ctx.emit(rep.affinity_frame(res), args, columns=rep.AFFINITY_COLUMNS)
    _run_line(ctx, args, f"seed {res.seed_entropy} | {res.n:,} connections from {res.clients:,} clients | "
              f"sticky {res.sticky_share:.2%}", res.notes)
    return 0


def subsets_route_from_args(args: argparse.Namespace) -> Any:
    """The route of ``--weights W1,W2 --lb POLICY --endpoints N1,N2``: weighted clusters over subsets."""
    from meshstat import model
    from meshstat.balancers import Balanced

    weights = args.weights
    k = len(weights)
    for opt, attr in (("--cascade", "cascade"), ("--kube-proxy-endpoints", "kube_proxy_endpoints"),
                      ("--iptables", "iptables"), ("--nft", "nft")):
        if getattr(args, attr, None) is not None:
            raise InvalidArgument(f"give one route: --weights (subsets with --lb) or {opt}, not both")
    one_balancer = (
        ("--endpoint-weights", "endpoint_weights"), ("--endpoint-addresses", "endpoint_addresses"),
        ("--remove-endpoint", "remove_endpoint"), ("--add-endpoint", "add_endpoint"),
        ("--swrr-backup", "swrr_backup"), ("--swrr-down", "swrr_down"),
    )
    for opt, attr in one_balancer:
        if getattr(args, attr, None):
            raise InvalidArgument(
                f"{opt} describes one balancer's endpoints; with --weights (one balancer per subset) give "
                "--endpoints N1,N2,... only (per-subset endpoints: use meshstat.balancers.Balanced in Python)"
            )
    counts = getattr(args, "endpoints", None)
    if counts is None:
        raise InvalidArgument(f"give --endpoints N1,N2,... (one endpoint count per subset, {k} subsets)")
    if isinstance(counts, int):
        counts = [counts] * k
    if len(counts) == 1:
        counts = counts * k
    if len(counts) != k:
        raise InvalidArgument(f"--endpoints has {len(counts)} counts for {k} subsets (--weights)")
    names = getattr(args, "names", None)
    if names is None:
        names = [f"s{i + 1}" for i in range(k)]
    elif len(names) != k:
        raise InvalidArgument(f"--names has {len(names)} labels for {k} subsets")
    children = []
    for name, c in zip(names, counts, strict=True):
        sub = argparse.Namespace(**{**vars(args), "endpoints": c, "endpoint_addresses": None,
                                    "endpoint_weights": None, "swrr_backup": None, "swrr_down": None})
        lb = balancer_from_args(sub)
        children.append(Balanced(lb, workload=_workload(args, lb.n_hosts), name=name,
                                 provenance=model.Provenance("--lb")))
    root = model.Weighted.from_weights(weights, children, provenance=model.Provenance("--weights"))
    return model.Route(root=root, name="envoy")


def _run_subsets(args: argparse.Namespace, ctx: Any, n: int, seed: Any) -> int:
    from meshstat.engine import simulate
    from meshstat.report import simulation as rep

    route = subsets_route_from_args(args)
    mode = str(getattr(args, "mode", "auto") or "auto").replace("-", "_")
    window = getattr(args, "window", None)
    res = simulate(route, n, rng=seed, mode=mode, window=window, progress=ctx.progress(args))
    human = getattr(args, "format", "table") in ("table", "markdown")
    frame = rep.to_frame(res)
    ctx.emit(rep.display_frame(frame) if args.format == "markdown" else frame, args, columns=rep.SIMULATE_COLUMNS)
    if window is not None and human and args.output is None:
        ctx.stdout.write(f"windows of {window:,} requests: band of one window's share and the worst window\n")
        ctx.emit(rep.window_summary_frame(res), args, columns=rep.WINDOW_SUMMARY_COLUMNS)
    if getattr(args, "plot", None):
        from meshstat import plots

        if window is not None:
            plots.plot_windows(res, args.plot)
        else:
            plots.plot_shares([res], args.plot)
    rate = res.rate / 1e6
    subsets = route.root.children
    text = (f"seed {res.seed_entropy} | n {res.n:,} | mode {res.mode} | lb {subsets[0].policy} in "
            f"{len(subsets)} subsets | {res.elapsed * 1e3:.1f} ms, {rate:,.1f} M requests/s")
    _run_line(ctx, args, text, res.notes)
    return 0
