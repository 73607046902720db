"""Command line: ``python -m meshstat <command> ...``.

A thin shell in httpie's style: :func:`main` takes ``argv`` and the streams,
returns an :class:`ExitStatus`, and does no math of its own; every command
calls the same public functions a notebook would. Errors a user can cause
print one line (``meshstat: error: ...``) and exit non-zero; ``--traceback``
shows the Python traceback instead.

Sub-commands come from this module (``simulate``, ``compare``) and from
plug-in modules listed in :data:`COMMAND_MODULES`, each exposing
``register(subparsers, common)`` where ``common`` is the parent parser with
the shared output options. Plug-ins import heavy libraries inside their
handlers only, so that start-up stays fast.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import os
import sys
import time
from collections.abc import Callable, Sequence
from enum import IntEnum
from typing import IO, Any

from meshstat.errors import ConfigParseError, InvalidArgument, MeshstatError

__all__ = ["COMMAND_MODULES", "Context", "ExitStatus", "main"]

#: Plug-in modules adding sub-commands; each has ``register(subparsers, common)``.
COMMAND_MODULES: tuple[str, ...] = (
    "meshstat.cli_netfilter",
    "meshstat.cli_inference",
    "meshstat.cli_mesh",
    "meshstat.cli_oracle",
)


class ExitStatus(IntEnum):
    """Process exit status.

    ``INVALID_INPUT`` (2) means *fix the command line*: a usage error, an option
    value out of its domain (``-n 0``, ``--weights 0,0``, ``--max-input-size 12X``)
    or a question the input cannot answer. ``PARSE_ERROR`` (3) means *fix the
    file*: a :class:`~meshstat.errors.ConfigParseError`, or any other meshstat
    error that carries the ``source`` file it is about (a jump loop in a dump,
    Envoy weights summing to 0 in a config_dump, an input over the size bound).
    The rule is the error's ``source`` attribute: the same inconsistency is a 3
    when read from a file and a 2 when given with ``--weights``. ``ERROR`` (1) is
    a file that cannot be read (``OSError``) or an internal error (a bug: one
    line, ``--traceback`` shows the traceback); ``CTRL_C`` (130) an interrupt.
    Every error is one line on stderr, starting ``meshstat: error:`` (or
    ``meshstat: internal error:``).
    """

    SUCCESS = 0
    ERROR = 1
    INVALID_INPUT = 2
    PARSE_ERROR = 3
    CTRL_C = 130


class UsageError(Exception):
    """Raised instead of argparse's ``sys.exit(2)`` so that :func:`main` stays in control."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # type: ignore[override]
        raise UsageError(f"{self.prog}: {message}")

    def exit(self, status: int = 0, message: str | None = None) -> Any:  # type: ignore[override]
        if message:
            raise UsageError(message.strip())
        raise _HelpExit(status)


class _HelpExit(Exception):
    def __init__(self, status: int) -> None:
        self.status = status


class Context:
    """Streams and helpers handed to every command handler.

    Attributes
    ----------
    stdout, stderr : IO[str]
        Where the command writes.
    """

    def __init__(self, stdout: IO[str], stderr: IO[str], *, fmt: str = "table") -> None:
        self.stdout = stdout
        self.stderr = stderr
        self.fmt = fmt

    def emit(self, df: Any, args: argparse.Namespace, *, float_precision: int | None = None) -> None:
        """Write a report DataFrame in ``args.format`` to ``args.output`` or stdout."""
        from meshstat import report

        report.write(
            df,
            getattr(args, "format", "table"),
            output=getattr(args, "output", None),
            stdout=self.stdout,
            float_precision=float_precision,
        )

    def progress(self, args: argparse.Namespace) -> Any:
        """The progress callback for a run (:class:`meshstat.progress.ProgressBar` on stderr)."""
        from meshstat.progress import ProgressBar

        return ProgressBar(self.stderr, enabled=False if getattr(args, "quiet", False) else None)

    def note(self, text: str) -> None:
        """A human remark: to stdout for tables, to stderr for machine formats."""
        stream = self.stdout if self.fmt in ("table", "markdown") else self.stderr
        stream.write(text.rstrip("\n") + "\n")


# ----------------------------------------------------------------- argument types


def count_arg(text: str) -> int:
    """Parse a request count: ``1e7``, ``10_000_000``, ``10000000``; positive integers only."""
    from fractions import Fraction

    raw = text.strip()
    try:
        if "e" in raw.lower() and "_" not in raw:
            mant, _, exp = raw.lower().partition("e")
            e = int(exp) if len(exp.strip().lstrip("+-")) <= 6 else (-(10**6) if "-" in exp else 10**6)
            if abs(e) > 1000:  # 1e100000000 would take minutes to expand
                raise argparse.ArgumentTypeError(
                    f"count must be at most 2**63-1, got {text!r}" if e > 0 and Fraction(mant) != 0
                    else f"expected an integer count, got {text!r}"
                )
            value = Fraction(mant) * Fraction(10) ** e
        else:
            value = Fraction(int(raw.replace("_", ""))) if "_" in raw else Fraction(raw)
    except (ValueError, ZeroDivisionError):
        raise argparse.ArgumentTypeError(
            f"expected a positive integer such as 1e7, 10_000_000 or 10000000, got {text!r}"
        ) from None
    if value.denominator != 1:
        raise argparse.ArgumentTypeError(f"expected an integer count, got {text!r}")
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive count, got {text!r}")
    if value > 2**63 - 1:
        raise argparse.ArgumentTypeError(f"count must be at most 2**63-1, got {text!r}")
    return int(value)


def list_arg(text: str) -> list[str]:
    """Split ``"90,10"`` (or ``"90/10"``) into stripped, non-empty parts."""
    parts = [p.strip() for p in text.replace("/", ",").split(",")]
    if not parts or any(p == "" for p in parts):
        raise argparse.ArgumentTypeError(f"expected a comma-separated list such as 90,10, got {text!r}")
    return parts


def weights_arg(text: str) -> list[str]:
    """``--weights 90,10``: validated later by :meth:`meshstat.model.Weighted.from_weights`."""
    parts = list_arg(text)
    for p in parts:
        try:
            float(p)
        except ValueError:
            raise argparse.ArgumentTypeError(f"weights must be numbers, got {p!r} in {text!r}") from None
    return parts


def seed_arg(text: str) -> int:
    """A non-negative integer seed."""
    try:
        value = int(text.replace("_", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"seed must be a non-negative integer, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"seed must be a non-negative integer, got {text!r}")
    return value


def positive_int_arg(text: str) -> int:
    """A positive integer (``--kube-proxy-endpoints 3``, ``--window 1000``)."""
    return count_arg(text)


def size_arg(text: str) -> int:
    """``--max-input-size``: ``256M``, ``1G`` or bytes (:func:`meshstat.inputs.parse_size`)."""
    from meshstat.inputs import parse_size

    try:
        return parse_size(text)
    except InvalidArgument as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


# ----------------------------------------------------------------- the parser


def _common_parser() -> argparse.ArgumentParser:
    common = _Parser(add_help=False)
    out = common.add_argument_group("output")
    out.add_argument(
        "--format",
        choices=("table", "markdown", "csv", "json", "parquet"),
        default="table",
        help="output format (default: table)",
    )
    out.add_argument("--output", "-o", metavar="FILE", help="write the table to FILE instead of stdout")
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


def add_route_arguments(p: argparse.ArgumentParser, *, required: bool = False) -> None:
    """The quick-spec route options shared by ``simulate`` (and plug-ins that want them)."""
    g = p.add_argument_group("route (one of)")
    g.add_argument("--weights", type=weights_arg, metavar="W1,W2,...", help="Envoy weighted clusters, integers")
    g.add_argument(
        "--cascade",
        type=list_arg,
        metavar="P1,P2,...",
        help="iptables -m statistic probabilities; the last rule is unconditional unless --fall-through",
    )
    g.add_argument("--fall-through", action="store_true", help="the cascade has no unconditional last rule")
    g.add_argument(
        "--kube-proxy-endpoints", type=positive_int_arg, metavar="N", help="kube-proxy's cascade over N endpoints"
    )
    g.add_argument("--legacy", action="store_true", help="with --kube-proxy-endpoints: pre-1.17 %%0.5f probabilities")
    g.add_argument("--names", type=list_arg, metavar="A,B,...", help="backend labels")
    g.add_argument("--iptables", metavar="FILE", help="an iptables-save dump ('-' for stdin); with --service")
    g.add_argument("--nft", metavar="FILE", help="an 'nft list ruleset' dump ('-' for stdin); with --service")
    g.add_argument("--service", metavar="NS/NAME[:PORT]", help="the kube-proxy service to simulate from the dump")
    g.add_argument(
        "--chain",
        choices=("cluster", "local"),
        default="cluster",
        help="with --service: the cluster chain (KUBE-SVC) or the local one (KUBE-SVL)",
    )


def _simulation_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("-n", type=count_arg, default=10_000_000, metavar="N", help="requests (1e7, 10_000_000)")
    p.add_argument("--seed", type=seed_arg, help="seed (printed on every run, so that a run can be replayed)")
    p.add_argument("--window", type=positive_int_arg, metavar="W", help="also count per window of W requests")
    p.add_argument(
        "--mode",
        choices=("auto", "exact", "per-request", "faithful"),
        default="auto",
        help="auto: numba kernels up to 1e10 requests, else exact multinomial counts",
    )
    p.add_argument("--threads", type=positive_int_arg, help="numba threads (default: all cores)")


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser, plug-ins included."""
    common = _common_parser()
    parser = _Parser(
        prog="meshstat",
        description="Where does my traffic really go? Exact load-balancing statistics for Kubernetes and Istio.",
    )
    parser.add_argument("--traceback", action="store_true", help="show Python tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

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
    from meshstat.cli_balancers import add_simulate_arguments

    add_simulate_arguments(sim)
    sim.set_defaults(handler=_cmd_simulate)

    cmp_ = sub.add_parser(
        "compare",
        parents=[common],
        help="several routes side by side (kube-proxy vs Envoy)",
        description="Simulate several routes with the same n and seed and print them on one table.",
    )
    cmp_.add_argument("--weights", type=weights_arg, metavar="W1,W2,...", help="Envoy weighted clusters")
    cmp_.add_argument("--kube-proxy-endpoints", type=positive_int_arg, metavar="N", help="kube-proxy over N pods")
    cmp_.add_argument("--cascade", type=list_arg, metavar="P1,P2,...", help="an iptables statistic cascade")
    cmp_.add_argument("--names", type=list_arg, metavar="A,B,...", help="labels for the --weights backends")
    mesh = cmp_.add_argument_group("manifests (the client paths of a mesh)")
    mesh.add_argument(
        "-f", "--filename", action="append", metavar="PATH", help="Kubernetes/Istio YAML file or folder (repeatable)"
    )
    mesh.add_argument("--scale", action="append", metavar="deploy/NAME=R", help="what-if replica count (repeatable)")
    mesh.add_argument("--client", metavar="NS/NAME", help="only this client workload")
    mesh.add_argument("--envoy", metavar="CONFIG_DUMP.json", help="an Envoy config_dump of the injected client")
    _simulation_arguments(cmp_)
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

    for modname in COMMAND_MODULES:
        try:
            mod = importlib.import_module(modname)
        except ModuleNotFoundError as exc:
            if exc.name == modname:
                continue  # plug-in not installed in this build
            raise
        mod.register(sub, common)
    return parser


# ----------------------------------------------------------------- handlers


def route_from_args(args: argparse.Namespace) -> Any:
    """Build the :class:`meshstat.model.Route` named by ``--weights``/``--cascade``/``--kube-proxy-endpoints``."""
    from meshstat import model

    given = [
        name
        for name in ("weights", "cascade", "kube_proxy_endpoints", "iptables", "nft")
        if getattr(args, name, None) is not None
    ]
    if len(given) != 1:
        opts = "--weights, --cascade, --kube-proxy-endpoints, --iptables or --nft"
        raise InvalidArgument(f"give exactly one of {opts}" + (f" (got {len(given)})" if given else ""))
    names = getattr(args, "names", None)

    def backends(n: int, *, fall_through: bool = False) -> tuple[model.Backend, ...] | None:
        if names is None:
            return None
        if len(names) != n:
            raise InvalidArgument(f"--names has {len(names)} labels for {n} backends")
        out = [model.Backend(name=x) for x in names]
        return tuple(out)

    if given[0] in ("iptables", "nft"):
        if not getattr(args, "service", None):
            raise InvalidArgument(f"--{given[0]} needs --service NS/NAME[:PORT] (see: meshstat services --{given[0]} FILE)")
        from meshstat import kubeproxy

        return kubeproxy.load_service_route(
            getattr(args, given[0]), args.service, dialect=given[0], chain=getattr(args, "chain", "cluster")
        )
    if getattr(args, "service", None):
        raise InvalidArgument("--service needs --iptables FILE or --nft FILE")
    if args.weights is not None:
        st = model.Weighted.from_weights(args.weights, backends(len(args.weights)), provenance=model.Provenance("--weights"))
        return model.Route(root=st, name="envoy")
    if args.cascade is not None:
        ft = bool(getattr(args, "fall_through", False))
        st = model.Cascade.from_probabilities(
            args.cascade, backends(len(args.cascade) + 1, fall_through=ft), fall_through=ft,
            provenance=model.Provenance("--cascade"),
        )
        return model.Route(root=st, name="cascade")
    n = args.kube_proxy_endpoints
    st = model.Cascade.kube_proxy(
        n if names is None else backends(n),  # type: ignore[arg-type]
        legacy=bool(getattr(args, "legacy", False)),
        provenance=model.Provenance("--kube-proxy-endpoints"),
    )
    return model.Route(root=st, name="kube-proxy")


def _run_simulation(route: Any, args: argparse.Namespace, ctx: Context) -> Any:
    from meshstat.engine import simulate

    if args.threads is not None:
        os.environ.setdefault("NUMBA_NUM_THREADS", str(args.threads))
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
    for x in results:
        for note in x.notes:
            text += f"\nnote: {note}"
    stream = ctx.stdout if args.format in ("table", "markdown") and args.output is None else ctx.stderr
    stream.write(text + "\n")


def _cmd_simulate(args: argparse.Namespace, ctx: Context) -> int:
    from meshstat import cli_balancers

    if cli_balancers.wants_lb(args):
        if args.destinations:
            raise InvalidArgument(
                "--destinations is for routes without a stateful balancer (--lb and friends)"
            )
        return cli_balancers.run_simulate_lb(args, ctx)
    from meshstat.report import simulation as rep

    route = route_from_args(args)
    result = _run_simulation(route, args, ctx)
    human = args.format in ("table", "markdown")
    frame = rep.to_frame(result)
    ctx.emit(rep.display_frame(frame) if human else frame, args)
    if args.window is not None and human and args.output is None:
        ctx.stdout.write(f"windows of {args.window:,} requests: band of one window's share and the worst window\n")
        ctx.emit(rep.window_summary_frame(result), args)
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
    ctx.emit(rep.cascade_frame(stage, written, targets), args, float_precision=12)
    if targets is not None and args.weights is not None:
        first, last = model.cascade_error_bound(len(stage.children))
        ctx.note(f"error bound: {first:.3g} for every share but the last, {last:.3g} for the last")
    return ExitStatus.SUCCESS


def _cmd_compare(args: argparse.Namespace, ctx: Context) -> int:
    if args.filename or args.envoy:
        from meshstat import cli_mesh

        return cli_mesh.run_compare_files(args, ctx)
    from meshstat import model
    from meshstat.report import simulation as rep
    from meshstat.engine import compare

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
    if args.threads is not None:
        os.environ.setdefault("NUMBA_NUM_THREADS", str(args.threads))
    results = compare(
        routes,
        args.n,
        rng=args.seed,
        mode=args.mode.replace("-", "_"),
        window=args.window,
        progress=ctx.progress(args),
    )
    frame = rep.compare_frame(results)
    ctx.emit(rep.display_frame(frame) if args.format in ("table", "markdown") else frame, args)
    _print_run_line(ctx, args, results)
    if args.plot:
        from meshstat import plots

        plots.plot_shares(results, args.plot)
    return ExitStatus.SUCCESS


# ----------------------------------------------------------------- main


def main(
    argv: Sequence[str] | None = None,
    *,
    stdout: IO[str] | None = None,
    stderr: IO[str] | None = None,
) -> int:
    """Run the command line; returns the exit status (never raises for user errors).

    Parameters
    ----------
    argv : sequence of str, optional
        Arguments without the program name (default ``sys.argv[1:]``).
    stdout, stderr : IO[str], optional
        Streams (default the process's).
    """
    out = stdout if stdout is not None else sys.stdout
    err = stderr if stderr is not None else sys.stderr
    args_list = list(sys.argv[1:] if argv is None else argv)
    traceback_wanted = "--traceback" in args_list
    started = time.perf_counter()
    try:
        parser = build_parser()
        args = parser.parse_args(args_list)
        if args.command is None:
            parser.print_help(out)
            return ExitStatus.INVALID_INPUT
        ctx = Context(out, err, fmt=getattr(args, "format", "table"))
        handler: Callable[[argparse.Namespace, Context], int] = args.handler
        from meshstat.inputs import max_input_size

        with max_input_size(getattr(args, "max_input_size", None)):
            status = int(handler(args, ctx))
        if os.environ.get("MESHSTAT_TIMING"):
            err.write(f"timing: {time.perf_counter() - started:.3f} s in main\n")
        return status
    except _HelpExit as exc:
        return exc.status
    except UsageError as exc:
        err.write(f"meshstat: error: {_one_line(exc)}\n")
        return ExitStatus.INVALID_INPUT
    except KeyboardInterrupt:
        err.write("meshstat: interrupted\n")
        return ExitStatus.CTRL_C
    except ConfigParseError as exc:
        if traceback_wanted:
            raise
        err.write(f"meshstat: error: {_one_line(exc)}\n")
        return ExitStatus.PARSE_ERROR
    except (MeshstatError, argparse.ArgumentTypeError) as exc:
        if traceback_wanted:
            raise
        err.write(f"meshstat: error: {_one_line(exc)}\n")
        # an error about a file is bad input (3); one about an argument a bad argument (2)
        return ExitStatus.PARSE_ERROR if getattr(exc, "source", None) else ExitStatus.INVALID_INPUT
    except OSError as exc:
        if traceback_wanted:
            raise
        name = f" {exc.filename}" if getattr(exc, "filename", None) else ""
        err.write(f"meshstat: error: cannot access{name}: {_one_line(exc.strerror or exc)}\n")
        return ExitStatus.ERROR
    except Exception as exc:  # last resort (RecursionError, MemoryError, UnicodeDecodeError, bugs): one line
        if traceback_wanted:
            raise
        what = type(exc).__name__ + (f": {_one_line(exc, limit=300)}" if str(exc).strip() else "")
        err.write(f"meshstat: internal error: {what} (run with --traceback for details)\n")
        return ExitStatus.ERROR


def _one_line(exc: object, *, limit: int = 2000) -> str:
    """An error message on one line (a message from a subprocess may span several), shortened."""
    text = " | ".join(part.strip() for part in str(exc).splitlines() if part.strip())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def console_main() -> None:
    """Entry point of the ``meshstat`` console script and ``python -m meshstat``.

    Disables the cyclic garbage collector for the short life of the process and
    leaves with ``os._exit`` after flushing, which skips tearing down numba's
    large object graph (measured ~0.4 s in ``../shared/reference/performance.md`` §6).
    """
    gc.disable()
    status = main()
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    finally:
        os._exit(status)
