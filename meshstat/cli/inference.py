"""Commands ``check``, ``plan``, ``bands`` and ``canary`` (statistics questions about a split).

Each handler parses its options, calls the matching function of
:mod:`meshstat.inference` (what a notebook calls too), prints the result's
table (:func:`meshstat.report.inference.frame`) with ``ctx.emit`` and a
one-line plain-language summary (stdout for table/markdown, stderr for machine
formats). ``check`` in a machine format also carries its verdict and the
tests' p-values (json: one object; csv/parquet: columns on every row). A
successful analysis exits 0, even when the verdict is "not noise". Nothing
heavy is imported at module import.
"""

from __future__ import annotations

import argparse
from typing import Any

from meshstat.cli.args import count_arg, float_arg, list_arg, number_text_arg, seed_arg, weights_arg
from meshstat.errors import InvalidArgument
from meshstat.outputs import write_output

__all__ = ["register"]


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add the ``check``, ``plan``, ``bands`` and ``canary`` sub-commands."""
    p = sub.add_parser(
        "check",
        parents=[common],
        help="is an observed split consistent with the weights?",
        description=(
            "Test observed per-backend counts against the configured weights: exact binomial test for two "
            "backends, exact multinomial test where feasible, chi-square/G-test otherwise; likelihood ratios "
            "against alternatives such as 50,50 ('the rule is not in effect'). With --iptables LISTING "
            "--service NS/NAME: the packet counters of an 'iptables -t nat -vnxL' listing or an "
            "'iptables-save -c' dump (connections per endpoint) against the service's exact kube-proxy "
            "cascade. With --envoy-stats (Envoy admin /stats, /stats/prometheus, /clusters) or --prometheus "
            "(Istio's istio_requests_total: a scrape or an /api/v1/query[_range] answer): the requests per "
            "backend of one service against --weights, or the client's route from -f DIR / --envoy DUMP; "
            "two files are differenced (before, after), a range query is checked window by window."
        ),
    )
    p.add_argument("--weights", type=weights_arg, metavar="W1,W2,...", help="configured weights (required "
                   "unless --iptables, -f or --envoy)")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--observed", type=list_arg, metavar="C1,C2,...", help="observed requests per backend")
    src.add_argument(
        "--observed-file", metavar="FILE", help="CSV (backend,count lines) or JSON ({backend: count}) of counts"
    )
    src.add_argument(
        "--iptables", metavar="LISTING",
        help="an 'iptables -t nat -vnxL' listing or 'iptables-save -c' dump ('-': stdin): its rule "
             "counters are the observed connections; needs --service",
    )  # fmt: skip
    src.add_argument("--envoy-stats", nargs="+", metavar="FILE",
                     help="Envoy admin /stats, /stats?format=json, /stats/prometheus, /clusters or "
                          "/clusters?format=json output: one snapshot, or two (before after)")
    src.add_argument("--prometheus", nargs="+", metavar="FILE",
                     help="istio_requests_total (or envoy_cluster_upstream_rq_total): a /metrics scrape or an "
                          "/api/v1/query answer (one, or two: before after), or an /api/v1/query_range answer")
    p.add_argument(
        "--service", metavar="NS/NAME[:PORT]",
        help="with --iptables: the service (or CLUSTER_IP:PORT); with --envoy-stats/--prometheus: the called "
             "service (name, name.ns, FQDN or ns/name)",
    )
    p.add_argument("--chain", choices=("cluster", "local"), default="cluster",
                   help="with --iptables: the KUBE-SVC (cluster) or KUBE-SVL (local) chain")
    p.add_argument("--names", type=list_arg, metavar="A,B,...", help="backend labels (order of --weights)")
    p.add_argument(
        "--alternative", type=weights_arg, action="append", default=[], metavar="W1,W2,...",
        help="an alternative split to weigh the data against (repeatable), e.g. 50,50",
    )
    p.add_argument("--alpha", type=float_arg, default=0.05, help="level of the verdict (default 0.05)")
    p.add_argument(
        "--exact-limit", type=count_arg, default=1_000_000, metavar="N",
        help="largest number of outcomes the exact multinomial test enumerates (default 1e6)",
    )
    _add_observed_args(p)
    p.set_defaults(handler=_cmd_check)

    p = sub.add_parser(
        "plan",
        parents=[common],
        help="how many requests: tolerance, first hits, or detecting a skew",
        description=(
            "Sample sizes, by exact computation (with the usual approximation beside it): --tolerance T "
            "(every share within +/-T with --confidence), --min-hits M (every backend gets M requests with "
            "--probability), or --detect W (tell the weights from the split W at --power, --alpha)."
        ),
    )
    p.add_argument("--weights", type=weights_arg, required=True, metavar="W1,W2,...", help="configured weights")
    p.add_argument("--names", type=list_arg, metavar="A,B,...", help="backend labels")
    q = p.add_mutually_exclusive_group(required=True)
    q.add_argument("--tolerance", type=number_text_arg, metavar="T", help="absolute tolerance on each share (0.01)")
    q.add_argument("--min-hits", type=count_arg, metavar="M", help="requests every backend must get")
    q.add_argument("--detect", type=weights_arg, metavar="W1,W2,...", help="a skewed split to tell apart")
    p.add_argument("--confidence", type=float_arg, help="with --tolerance (default 0.95)")
    p.add_argument("--probability", type=float_arg, help="with --min-hits (default 0.99)")
    p.add_argument("--power", type=float_arg, help="with --detect (default 0.8)")
    p.add_argument("--alpha", type=float_arg, help="with --detect: level of the test (default 0.05)")
    p.add_argument("--qps", type=float_arg, metavar="Q", help="requests per second: also give each n in seconds")
    p.set_defaults(handler=_cmd_plan)

    p = sub.add_parser(
        "bands",
        parents=[common],
        help="where each backend's observed share falls by chance",
        description=(
            "Central 90/95/99%% bands of each backend's share in n requests, a window of W requests, or "
            "T seconds at Q requests/s, and P(share outside +/-x); exact binomial, checked by simulation "
            "through the engine."
        ),
    )
    p.add_argument("--weights", type=weights_arg, required=True, metavar="W1,W2,...", help="configured weights")
    p.add_argument("--names", type=list_arg, metavar="A,B,...", help="backend labels")
    size = p.add_mutually_exclusive_group(required=True)
    size.add_argument("-n", type=count_arg, metavar="N", help="requests in the sample")
    size.add_argument("--window", type=count_arg, metavar="W", help="requests per window")
    size.add_argument("--seconds", metavar="T", help="seconds per window (60, 60s, 5m); needs --qps")
    p.add_argument("--qps", type=float_arg, metavar="Q", help="requests per second")
    p.add_argument("--levels", type=list_arg, default=["0.9", "0.95", "0.99"], metavar="L1,L2,...",
                   help="band levels (default 0.9,0.95,0.99)")
    p.add_argument("--within", type=number_text_arg, metavar="X", help="also P(share outside +/-X)")
    p.add_argument("--no-simulate", action="store_true", help="skip the simulation check")
    p.add_argument("--seed", type=seed_arg, help="seed of the simulation check (printed for replay)")
    p.add_argument("--sim-windows", type=count_arg, default=10_000, metavar="K",
                   help="simulated samples (default 10000)")
    p.add_argument("--plot", metavar="FILE.png", help="write a PNG of the bands")
    p.set_defaults(handler=_cmd_bands)

    p = sub.add_parser(
        "canary",
        parents=[common],
        help="canary rollout steps: traffic per interval and detectable error rates",
        description=(
            "Per rollout step: expected canary requests per interval, P(no canary request in an interval), "
            "the smallest canary error rate a one-sided two-proportion test detects in one interval, and the "
            "interval needed to detect --error-rate -> --detect-error-rate."
        ),
    )
    p.add_argument("--steps", type=list_arg, required=True, metavar="S1,S2,...", help="canary weights in percent")
    p.add_argument("--qps", type=float_arg, required=True, metavar="Q", help="requests per second to the service")
    p.add_argument("--interval", default="60s", metavar="T", help="analysis interval: 60s, 5m, 1h or seconds")
    p.add_argument("--error-rate", type=float_arg, metavar="P0", help="baseline error rate (default 0.01)")
    p.add_argument("--detect-error-rate", type=float_arg, metavar="P1", help="canary error rate to detect")
    p.add_argument("--power", type=float_arg, default=0.8, help="power (default 0.8)")
    p.add_argument("--alpha", type=float_arg, default=0.05, help="one-sided level (default 0.05)")
    p.set_defaults(handler=_cmd_canary)


def _finish(ctx: Any, args: argparse.Namespace, summary: str, notes: tuple[str, ...],
            warnings: tuple[str, ...] = ()) -> int:
    ctx.remarks([summary, *(f"warning: {w}" for w in warnings), *(f"note: {n}" for n in notes)], args)
    return 0


def _cmd_check(args: argparse.Namespace, ctx: Any) -> int:
    from meshstat import inference

    if args.iptables is not None:
        return _check_counters(args, ctx)
    if args.envoy_stats or args.prometheus:
        return _check_observed(args, ctx)
    _no_observed_args(args)
    if args.service is not None:
        raise InvalidArgument("--service goes with --iptables LISTING, --envoy-stats or --prometheus")
    if args.weights is None:
        raise InvalidArgument("--weights W1,W2,... is required (or --iptables LISTING --service NS/NAME)")
    names = args.names
    if args.observed_file is not None:
        file_names, counts = inference.read_observed(args.observed_file)
        if names is not None:
            missing = [x for x in names if x not in file_names]
            extra = [x for x in file_names if x not in names]
            if missing or extra:
                raise InvalidArgument(
                    f"{args.observed_file}: backends {', '.join(file_names)} do not match --names "
                    f"{', '.join(names)}"
                )
            counts = [counts[file_names.index(x)] for x in names]
        else:
            names = file_names
        observed: list[Any] = list(counts)
    else:
        observed = args.observed
    result = inference.check_split(
        observed, args.weights, alternatives=args.alternative, names=names, alpha=args.alpha,
        exact_limit=args.exact_limit,
    )
    from meshstat.report import inference as rep

    _emit_check(ctx, args, result, rep.frame(result), rep.check_tests_frame(result), rep.columns(result))
    return _finish(ctx, args, result.summary(), result.notes)


def _emit_check(ctx: Any, args: argparse.Namespace, result: Any, table: Any, tests: Any, columns: Any) -> None:
    """The per-backend table, then the tests table (table/markdown) or the verdict (machine formats).

    json: one object with the verdict, the summary, the tests and the rows
    (:func:`meshstat.report.inference.check_json`); csv/parquet: the rows with
    the columns verdict, headline_test, headline_p_value.
    """
    from meshstat.report import inference as rep

    if args.format == "json":
        text = rep.check_json(result, table, tests) + "\n"
        if args.output is not None:
            write_output(args.output, text)
        else:
            ctx.stdout.write(text)
    elif args.format in ("csv", "parquet"):
        ctx.emit(rep.with_verdict(result, table), args)
    else:
        ctx.emit(table, args, columns=columns)
        if args.output is None:
            ctx.emit(tests, args, columns=rep.CHECK_TESTS_COLUMNS)


def _check_counters(args: argparse.Namespace, ctx: Any) -> int:
    """``check --iptables LISTING --service S``: rule counters against the exact cascade."""
    from meshstat import netfilter
    from meshstat.inference.counters import check_counters
    from meshstat.report import netfilter as rep

    if not args.service:
        raise InvalidArgument(
            "--iptables LISTING needs --service NS/NAME[:PORT] (see: meshstat services --iptables)"
        )
    for opt, val in (("--weights", args.weights), ("--names", args.names), ("--alternative", args.alternative)):
        if val:
            raise InvalidArgument(f"{opt} does not go with --iptables (the split comes from the rules)")
    rs = netfilter.load(args.iptables, "iptables")
    result = check_counters(
        rs, args.service, chain=args.chain, alpha=args.alpha, exact_limit=args.exact_limit
    )
    _emit_check(ctx, args, result, rep.counters_frame(result), rep.counters_tests_frame(result),
                rep.COUNTERS_COLUMNS)
    return _finish(ctx, args, result.summary(), result.notes, tuple(result.warnings))


def _cmd_plan(args: argparse.Namespace, ctx: Any) -> int:
    from meshstat import inference
    from meshstat.report import inference as rep

    def reject(opt: str, goes_with: str) -> None:
        raise InvalidArgument(f"{opt} goes with {goes_with}")

    if args.tolerance is not None:
        for opt, val in (("--probability", args.probability), ("--power", args.power), ("--alpha", args.alpha)):
            if val is not None:
                reject(opt, "--min-hits" if opt == "--probability" else "--detect")
        result = inference.plan_tolerance(
            args.weights, args.tolerance, 0.95 if args.confidence is None else args.confidence, args.qps,
            names=args.names,
        )
    elif args.min_hits is not None:
        for opt, val in (("--confidence", args.confidence), ("--power", args.power), ("--alpha", args.alpha)):
            if val is not None:
                reject(opt, "--tolerance" if opt == "--confidence" else "--detect")
        result = inference.plan_min_hits(
            args.weights, args.min_hits, 0.99 if args.probability is None else args.probability, args.qps,
            names=args.names,
        )
    else:
        for opt, val in (("--confidence", args.confidence), ("--probability", args.probability)):
            if val is not None:
                reject(opt, "--tolerance" if opt == "--confidence" else "--min-hits")
        result = inference.plan_detect(
            args.weights, args.detect, 0.8 if args.power is None else args.power,
            0.05 if args.alpha is None else args.alpha, args.qps, names=args.names,
        )
    ctx.emit(rep.frame(result), args, columns=rep.columns(result))
    return _finish(ctx, args, result.summary(), result.notes)


def _cmd_bands(args: argparse.Namespace, ctx: Any) -> int:
    from meshstat import inference
    from meshstat.report import inference as rep

    if args.seconds is not None and args.qps is None:
        raise InvalidArgument("--seconds needs --qps (requests per second)")
    levels = []
    for x in args.levels:
        try:
            levels.append(float(x))
        except ValueError:
            raise InvalidArgument(f"--levels must be numbers in (0, 1), got {x!r}") from None
    result = inference.bands(
        args.weights,
        n=args.n,
        window=args.window,
        seconds=args.seconds,
        qps=args.qps,
        levels=levels,
        within=args.within,
        simulate=not args.no_simulate,
        rng=args.seed,
        names=args.names,
        sim_windows=args.sim_windows,
    )
    ctx.emit(rep.frame(result), args, columns=rep.columns(result))
    if args.plot:
        from meshstat.plots.bands import plot_bands

        plot_bands(result, args.plot)
    return _finish(ctx, args, result.summary(), result.notes)


def _cmd_canary(args: argparse.Namespace, ctx: Any) -> int:
    from meshstat import inference
    from meshstat.report import inference as rep

    result = inference.canary(
        args.steps, args.qps, args.interval, error_rate=args.error_rate,
        detect_error_rate=args.detect_error_rate, power=args.power, alpha=args.alpha,
    )
    ctx.emit(rep.frame(result), args, columns=rep.columns(result))
    return _finish(ctx, args, result.summary(), result.notes)


# --------------------------------------------------------------------------- check --envoy-stats / --prometheus

_OBSERVED_OPTS = (("--client", "client"), ("--reporter", "reporter"), ("--by", "by"), ("-f", "filename"),
                  ("--envoy", "envoy"), ("--exclude-unrouted", "exclude_unrouted"), ("--canary", "canary"),
                  ("--steps", "steps"), ("--step-duration", "step_duration"), ("--error-rate", "error_rate"),
                  ("--detect-error-rate", "detect_error_rate"), ("--power", "power"))


def _add_observed_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("observed traffic (--envoy-stats, --prometheus)")
    g.add_argument("--client", metavar="[NS/]NAME", help="Istio's source_workload: the caller's series only")
    g.add_argument("--reporter", choices=("source", "destination"),
                   help="Istio reporter to use (default: source when present; never both)")
    g.add_argument("--by", choices=("cluster", "host", "version", "workload"),
                   help="what a backend is in the data (default: cluster for Envoy, version for Istio)")
    g.add_argument("-f", "--filename", action="append", metavar="PATH",
                   help="manifests: the split is the client's sidecar route (as compare -f builds it)")
    g.add_argument("--envoy", action="append", metavar="DUMP", help="an Envoy config_dump: the split is its route")
    g.add_argument("--exclude-unrouted", action="store_true",
                   help="leave responses that reached no backend (503 UH/NC, 404 NR) out of the test")
    g.add_argument("--canary", metavar="NAME", help="a canary ramp over a range query: the canary's version")
    g.add_argument("--steps", type=list_arg, metavar="S1,S2,...", help="with --canary: canary percent per step")
    g.add_argument("--step-duration", metavar="T", help="with --canary: time per step (5m; default one window)")
    g.add_argument("--error-rate", type=float_arg, metavar="P0", help="with --canary: baseline error rate (0.01)")
    g.add_argument("--detect-error-rate", type=float_arg, metavar="P1",
                   help="with --canary: canary error rate to detect (0.05)")
    g.add_argument("--power", type=float_arg, metavar="P", help="with --canary: power (0.8)")


def _no_observed_args(args: argparse.Namespace) -> None:
    for opt, attr in _OBSERVED_OPTS:
        if getattr(args, attr, None):
            raise InvalidArgument(f"{opt} goes with --envoy-stats or --prometheus")


def _check_observed(args: argparse.Namespace, ctx: Any) -> int:
    """``check --envoy-stats/--prometheus``: read, map onto the split, check the period and each window."""
    from meshstat.inference import observed_check as oc_mod
    from meshstat.inference import observed_split as osp
    from meshstat.inference import observed_traffic as ot
    from meshstat.report import inference as rep
    from meshstat.report import observed as orep

    files = args.envoy_stats or args.prometheus
    if len(files) > 2:
        raise InvalidArgument(f"give one file or two (before after), got {len(files)}")
    ramp = args.canary is not None
    if not ramp:
        for opt in ("steps", "step_duration", "error_rate", "detect_error_rate", "power"):
            if getattr(args, opt) is not None:
                raise InvalidArgument(f"--{opt.replace('_', '-')} goes with --canary")
    elif args.steps is None:
        raise InvalidArgument("--canary needs --steps S1,S2,... (canary percent per step)")
    given = [x for x in ("--weights" if args.weights else "", "-f" if args.filename else "",
                         "--envoy" if args.envoy else "") if x]
    if ramp and (args.weights or args.filename or args.envoy):
        raise InvalidArgument(f"{given[0]} does not go with --canary (the ramp's steps are the split)")
    if args.weights and (args.filename or args.envoy):
        raise InvalidArgument("give the split once: --weights, or -f/--envoy")
    if not ramp and not given:
        raise InvalidArgument("give the configured split: --weights W1,W2,..., -f DIR (manifests) or --envoy DUMP")
    names = args.names
    traffic = ot.read_traffic(envoy_stats=args.envoy_stats or (), prometheus=args.prometheus or (),
                              service=args.service, client=args.client, reporter=args.reporter, by=args.by,
                              names=names)
    if ramp:
        result = oc_mod.check_ramp(
            traffic, args.canary, args.steps, step_duration=args.step_duration,
            error_rate=0.01 if args.error_rate is None else args.error_rate,
            detect_error_rate=0.05 if args.detect_error_rate is None else args.detect_error_rate,
            power=0.8 if args.power is None else args.power, alpha=args.alpha, exact_limit=args.exact_limit,
            exclude_unrouted=args.exclude_unrouted)
    else:
        if args.weights:
            split = osp.split_from_weights(args.weights, names, traffic)
        else:
            if names:
                raise InvalidArgument("--names goes with --weights (the route names its backends)")
            route = oc_mod.configured_route(args.filename or (), envoy=args.envoy or (), service=args.service,
                                            client=args.client)
            split = osp.split_from_route(route, traffic.by, traffic)
        result = oc_mod.check_observed(traffic, split, alternatives=args.alternative, alpha=args.alpha,
                                       exact_limit=args.exact_limit, exclude_unrouted=args.exclude_unrouted)
    table = rep.frame(result.result) if result.result is not None else None
    tests = rep.check_tests_frame(result.result) if result.result is not None else None
    if args.format == "json":
        text = orep.observed_json(result, table, tests) + "\n"
        if args.output is not None:
            with open(args.output, "w") as fh:  # noqa: PTH123
                fh.write(text)
        else:
            ctx.stdout.write(text)
    elif args.format in ("csv", "parquet"):
        ctx.emit(rep.with_verdict(result, table) if table is not None else orep.windows_frame(result), args)
    else:
        if table is not None:
            ctx.emit(table, args, columns=rep.columns(result.result))
            if args.output is None:
                ctx.emit(tests, args, columns=rep.CHECK_TESTS_COLUMNS)
        if result.windows and args.output is None:
            ctx.emit(orep.windows_frame(result), args, columns=orep.WINDOW_COLUMNS)
    t = result.traffic
    who = f"; reporter={t.reporter}" if t.reporter else ""
    ctx.note(f"observed: {t.form} in {' -> '.join(t.sources)} (by {t.by}{who}); split: {result.split.origin}")
    ctx.note(result.summary())
    for n in result.notes:
        ctx.note(f"note: {n}")
    for w in result.warnings:
        ctx.note(f"warning: {w}")
    return 0
