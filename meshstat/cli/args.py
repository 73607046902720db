"""Argument types of the command line, one function per kind of value, and the route options.

Each ``*_arg`` is an ``argparse`` ``type=``: it returns the parsed value or
raises :class:`argparse.ArgumentTypeError`, which the parser turns into
``meshstat: error: meshstat COMMAND: argument OPT: ...`` (exit status 2).

The route options (:func:`add_route_arguments`) and their reading into a
:class:`meshstat.model.Route` (:func:`route_from_args`) are here because two
command modules use them: ``simulate``/``cascade`` and ``simulate --lb`` (for
connection reuse over a route).
"""

from __future__ import annotations

import argparse
from typing import Any

from meshstat.errors import InvalidArgument
from meshstat.inputs import ascii_digits

__all__ = [
    "add_route_arguments",
    "address_list_arg",
    "count_arg",
    "endpoint_arg",
    "endpoint_counts_arg",
    "float_arg",
    "int_arg",
    "int_list_arg",
    "list_arg",
    "number_text_arg",
    "port_arg",
    "route_from_args",
    "seed_arg",
    "size_arg",
    "weights_arg",
]


def count_arg(text: str) -> int:
    """Parse a request count: ``1e7``, ``10_000_000``, ``10000000``; positive integers only.

    The type of every positive integer option (``-n``, ``--window``,
    ``--kube-proxy-endpoints``, ``--workers``, ...).
    """
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


def size_arg(text: str) -> int:
    """``--max-input-size``: ``256M``, ``1G`` or bytes (:func:`meshstat.inputs.parse_size`)."""
    from meshstat.inputs import parse_size

    try:
        return parse_size(text)
    except InvalidArgument as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def float_arg(text: str) -> float:
    """A number (``--alpha 0.05``, ``--zipf 1.2``)."""
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None


def number_text_arg(text: str) -> str:
    """A number kept as text (exact decimal boundaries: ``0.01`` stays 1/100)."""
    try:
        float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    return text.strip()


def int_arg(text: str) -> int:
    """Any integer, in Python's notation (``0x10`` for a mark)."""
    try:
        return int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None


def int_list_arg(text: str) -> list[int]:
    """Comma-separated integers (``--endpoint-weights 1,1,2``)."""
    parts = [p.strip() for p in text.replace("/", ",").split(",")]
    try:
        out = [int(p) for p in parts]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers such as 1,1,2, got {text!r}") from None
    return out


def endpoint_counts_arg(text: str) -> int | list[int]:
    """``--endpoints 3`` (one balancer) or ``--endpoints 3,2`` (one count per subset of ``--weights``)."""
    parts = [p.strip() for p in text.split(",")]
    if len(parts) == 1:
        return count_arg(parts[0])
    if any(not p for p in parts):
        raise argparse.ArgumentTypeError(f"expected N or N1,N2,... (one count per subset), got {text!r}")
    return [count_arg(p) for p in parts]


def port_arg(text: str) -> int:
    """A TCP/UDP port in [1, 65535]."""
    if not ascii_digits(text) or not 0 < int(text) < 65536:
        raise argparse.ArgumentTypeError(f"expected a port in [1, 65535], got {text!r}")
    return int(text)


def endpoint_arg(text: str) -> tuple[str, int | None]:
    """``IP[:PORT]`` (``[IPv6]:PORT`` for IPv6) -> ``(address, port or None)``."""
    raw = text.strip()
    if raw.startswith("["):
        addr, _, rest = raw[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    elif raw.count(":") == 1:
        addr, _, port = raw.partition(":")
    else:
        addr, port = raw, ""
    if port and not ascii_digits(port):
        raise argparse.ArgumentTypeError(f"expected IP[:PORT], got {text!r}")
    return addr, (int(port) if port else None)


def address_list_arg(text: str) -> tuple[str, ...]:
    """``ADDR[,ADDR...]`` of addresses or prefixes (``10.0.0.0/8``): split on commas only."""
    items = tuple(x.strip() for x in text.split(",") if x.strip())
    if not items:
        raise argparse.ArgumentTypeError(f"expected a comma-separated list of addresses, got {text!r}")
    return items


# ----------------------------------------------------------------- the route options


def apply_threads(threads: int | None) -> None:
    """``--threads N``: run numba's parallel kernels on ``N`` threads, refused above its pool.

    numba starts its thread pool once, with ``NUMBA_NUM_THREADS`` threads (by
    default the machine's cores); :func:`numba.set_num_threads` then chooses
    how many of them a kernel uses, at most that many. Asking for more used to
    set ``NUMBA_NUM_THREADS`` itself, which starts that many OpenMP threads and
    aborts in libgomp when the system refuses them (``--threads 1000``): it is
    refused up front instead.
    """
    if threads is None:
        return
    import numba

    pool = int(numba.config.NUMBA_NUM_THREADS)
    if not 1 <= threads <= pool:
        raise InvalidArgument(
            f"--threads must be between 1 and {pool} (numba's thread pool on this machine: its cores, or "
            f"NUMBA_NUM_THREADS), got {threads:,}"
        )
    numba.set_num_threads(threads)


def add_route_arguments(p: argparse.ArgumentParser, *, required: bool = False) -> None:
    """The quick-spec route options shared by ``simulate`` and ``cascade``."""
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
        "--kube-proxy-endpoints", type=count_arg, metavar="N", help="kube-proxy's cascade over N endpoints"
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
    model.check_kube_proxy_endpoints(n)
    st = model.Cascade.kube_proxy(
        n if names is None else backends(n),  # type: ignore[arg-type]
        legacy=bool(getattr(args, "legacy", False)),
        provenance=model.Provenance("--kube-proxy-endpoints"),
    )
    return model.Route(root=st, name="kube-proxy")
