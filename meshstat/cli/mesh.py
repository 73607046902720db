"""Commands of the mesh area: ``mesh``, ``envoy-route``, and ``compare -f`` (via :func:`run_compare_files`).

``python -m meshstat mesh -f DIR [--client ns/name] [--service ns/name[:port]] [--envoy FILE]``
    The layered split for one client: every stage the call really passes (capture rules,
    Envoy listener, route, subset cluster, endpoint LB, kube-proxy, ztunnel, waypoint), then
    the exact and simulated shares per version and per pod.
``python -m meshstat envoy-route --config-dump FILE --host H --port P [--path /] [--header k=v]``
    Resolve an outbound call through an Envoy config_dump (or istioctl proxy-config outputs).
``compare -f DIR`` (:mod:`meshstat.cli.simulate` delegates to :func:`run_compare_files`)
    Side by side, every client path to every routed service.

Both take the request as ``--service``, ``--header NAME=VALUE`` (repeatable), ``--path`` and
``--method`` (:func:`add_request_arguments`); without a request they show every route the rules
have for each service, one row group per distinct route (its match condition after the service).

Heavy libraries are imported inside the handlers only.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

from meshstat.cli.args import count_arg, port_arg, seed_arg
from meshstat.cli.context import is_table
from meshstat.errors import InvalidArgument
from meshstat.inputs import ascii_digits

__all__ = ["add_request_arguments", "parse_header", "parse_scale", "register", "run_compare_files"]


def parse_scale(items: list[str] | None) -> dict[str, int]:
    """``["deploy/bill-service-v1=3"]`` -> ``{"deploy/bill-service-v1": 3}``."""
    out: dict[str, int] = {}
    for item in items or []:
        ref, sep, val = item.rpartition("=")
        if not sep or not ref or not ascii_digits(val.strip()):
            raise InvalidArgument(f"--scale expects KIND/NAME=REPLICAS such as deploy/bill-service-v1=3, got {item!r}")
        out[ref.strip()] = int(val)
    return out


def parse_header(items: list[str] | None) -> dict[str, str]:
    """``["x-user=alice"]`` (or ``"x-user: alice"``) -> ``{"x-user": "alice"}``."""
    out: dict[str, str] = {}
    for item in items or []:
        sep = "=" if "=" in item else (":" if ":" in item else None)
        if sep is None:
            raise InvalidArgument(f"--header expects NAME=VALUE, got {item!r}")
        k, _, v = item.partition(sep)
        if not k.strip():
            raise InvalidArgument(f"--header expects NAME=VALUE, got {item!r}")
        out[k.strip().lower()] = v.strip()
    return out


def add_request_arguments(p: Any) -> None:
    """``--service``, ``--header``, ``--path``, ``--method`` on a parser or argument group (mesh, compare -f)."""
    p.add_argument("--service", metavar="NS/NAME[:PORT]",
                   help="called service (ns/name, name.ns or FQDN; default: every routed service)")
    p.add_argument("--header", action="append", metavar="NAME=VALUE", help="request header (repeatable)")
    p.add_argument("--path", help="request path (default: every route the rules have, else /)")
    p.add_argument("--method", help="request method (default: every route the rules have, else GET)")


def _request(args: argparse.Namespace) -> Any:
    """The request the arguments give, or ``None`` (every route) when they give none."""
    from meshstat.mesh.requests import Request

    path, method = getattr(args, "path", None), getattr(args, "method", None)
    headers = parse_header(getattr(args, "header", None))
    if path is None and method is None and not headers:
        return None
    return Request.of(path, headers, method)


def _build_mesh(args: argparse.Namespace) -> Any:
    from meshstat.mesh import Mesh
    from meshstat.parsers.k8s import load_manifests

    files = list(getattr(args, "filename", None) or [])
    if not files:
        raise InvalidArgument("give at least one -f/--filename (a manifest file or directory)")
    manifests = load_manifests(files)
    return Mesh(manifests, scale=parse_scale(getattr(args, "scale", None)))


def _load_envoy(paths: Any) -> Any:
    if not paths:
        return None
    from meshstat.parsers.envoy import load_envoy

    return load_envoy([paths] if isinstance(paths, str) else list(paths))


def _simulate(routes: list[Any], args: argparse.Namespace, ctx: Any) -> list[Any]:
    from meshstat.engine import compare

    n = int(getattr(args, "n", None) or 1_000_000)
    return compare(routes, n, rng=getattr(args, "seed", None), progress=ctx.progress(args))


def _finish(ctx: Any, args: argparse.Namespace, lines: list[str]) -> None:
    ctx.remarks(lines, args)


def _default_table(args: argparse.Namespace) -> bool:
    """Whether the table is the default view (not markdown, not ``--wide``, not a machine format)."""
    return args.format == "table" and not getattr(args, "wide", False)


def _emit_long(ctx: Any, args: argparse.Namespace, entries: list[dict[str, Any]]) -> None:
    """The shares: version rows by default, the side-by-side frame in markdown, the long frame else."""
    from meshstat.report import mesh as rep

    if _default_table(args):  # no client column to show: not copied into every row (a cluster's worth per path)
        entries = [{**e, "clients": ()} for e in entries]
        ctx.emit(rep.version_rows(rep.long_frame(entries, backends=False)), args, columns=rep.LONG_COLUMNS)
    elif args.format == "markdown":
        ctx.emit(rep.wide_frame(entries), args)
    else:
        ctx.emit(rep.long_frame(entries), args)


def _services(mesh: Any, args: argparse.Namespace, client_ns: str | None) -> list[tuple[Any, int]]:
    svc = getattr(args, "service", None)
    if svc:
        info, port = mesh.find_service(svc, client_ns)
        if port is None:
            from meshstat.mesh.registry import sole_port

            port = sole_port(info, "give --service HOST:PORT")
        return [(info, port)]
    pairs = mesh.routed_services()
    if not pairs:
        from meshstat.mesh.paths import NO_ROUTED_SERVICE

        raise InvalidArgument(NO_ROUTED_SERVICE)
    return pairs


def run_compare_files(args: argparse.Namespace, ctx: Any) -> int:
    """``compare -f``: every client path to every routed service, side by side.

    ``args`` carries ``filename`` (list), ``scale`` (list or None), ``client`` (``ns/name`` or
    None), ``envoy`` (a config_dump path or None), ``n``, ``seed``, ``format``, ``output``;
    optionally ``service``, ``path``, ``header`` and ``method``. The work is
    :func:`meshstat.engine.mesh.compare_paths`.
    """
    from meshstat.engine.mesh import compare_paths

    files = list(getattr(args, "filename", None) or [])
    if not files:
        raise InvalidArgument("give at least one -f/--filename (a manifest file or directory)")
    from meshstat.cli.topology import maybe_compare_topology
    from meshstat.parsers.k8s import load_manifests

    manifests = load_manifests(files)  # read once, for either view
    done = maybe_compare_topology(args, ctx, manifests)  # Nodes / EndpointSlices: the zones-and-nodes view
    if done is not None:
        return done
    cmp_ = compare_paths(
        manifests,
        scale=parse_scale(getattr(args, "scale", None)),
        client=getattr(args, "client", None),
        service=getattr(args, "service", None),
        envoy=getattr(args, "envoy", None),
        path=getattr(args, "path", None),
        headers=parse_header(getattr(args, "header", None)),
        method=getattr(args, "method", None),
        n=int(getattr(args, "n", None) or 1_000_000),
        rng=getattr(args, "seed", None),
    )
    _emit_long(ctx, args, cmp_.entries())
    r0 = cmp_.paths[0].result
    lines = [f"seed {r0.seed_entropy} | n {r0.n:,} per path | exact = configured model; simulated = "
             "meshstat.simulate through the same model"]
    full = not is_table(args) or bool(getattr(args, "wide", False))
    lines += _taken_by([(p.service, p.path, p.clients) for p in cmp_.paths], full)
    lines += [str(d) for d in cmp_.diagnostics if d.level == "warning"]
    lines += [n if n.startswith("client ") else f"note: {n}" for n in cmp_.notes]
    lines += [str(d) for d in cmp_.diagnostics if d.level == "note"]
    _finish(ctx, args, lines)
    return 0


def _taken_by(paths: list[tuple[str, str, Sequence[str]]], full: bool) -> list[str]:
    """Who takes each path: ``SERVICE PATH: taken by CLIENTS``.

    ``full`` (machine formats, ``--wide``): one line per (service, path), its clients named up to
    :data:`~meshstat.mesh.layers.CLIENT_NAMES_SHOWN`. Otherwise, when there are more than
    :data:`_PATH_LINES` paths (a cluster of 1,000 Services), one line per kind of path: the services
    and the client workloads of all of them, as comma lists that the remark layout bounds
    (``and 995 more``). Client lists are read by their shared runs (:func:`client_union`), so
    the lines cost the paths, not paths x clients.
    """
    from meshstat.mesh.layers import CLIENT_NAMES_SHOWN, client_union, name_list

    if full or len(paths) <= _PATH_LINES:
        return [f"{s} {p}: taken by {name_list(c, CLIENT_NAMES_SHOWN) or 'no workload in the manifests'}"
                for s, p, c in paths]
    groups: dict[str, tuple[list[str], list[Sequence[str]]]] = {}
    for service, path, clients in paths:
        g = groups.setdefault(path, ([], []))
        g[0].append(service)
        g[1].append(clients)
    out = []
    for path, (services, lists) in groups.items():
        clients = client_union(lists)
        out.append(f"{path} to {len(services)} services ({', '.join(services)}): taken by {len(clients)} client "
                   f"workloads in all ({', '.join(clients) or 'none'})")
    return out


#: Above this many (service, path) pairs the remarks group them by path (see :func:`_taken_by`).
_PATH_LINES = 20


_WANTED = {"sidecar": {"sidecar", "uid-1337", "envoy-dump"}, "ambient": {"ambient", "ambient-waypoint"},
           "kube-proxy": {"kube-proxy"}}


def _cmd_mesh(args: argparse.Namespace, ctx: Any) -> int:
    from meshstat.mesh.ambient import ambient_decision, client_kind
    from meshstat.mesh.requests import paths_per_route
    from meshstat.report import mesh as rep

    mesh = _build_mesh(args)
    client = mesh.manifests.workload(args.client) if args.client else None
    envoy = _load_envoy(args.envoy)
    entries: list[dict[str, Any]] = []
    layer_frames = []
    diags: list[Any] = []
    lines: list[str] = []
    notes: list[str] = []
    if client is not None:
        d, a = mesh.injection(client), ambient_decision(mesh, client)
        lines.append(f"client {client.meta.ref}: {d} ({d.source}:{d.line}); {a} ({a.source}:{a.line})")
    for info, port in _services(mesh, args, client.meta.namespace if client else None):
        for cond, _, paths in paths_per_route(mesh, info, port, request=_request(args), client=client, envoy=envoy,
                                              diags=diags, notes=notes):
            if client is not None:
                paths = [p for p in paths if p.kind in _WANTED[client_kind(mesh, client)]]
            svc = f"{info.short}:{port}" + (f" · {cond}" if cond else "")
            for p in paths:
                entries.append({"service": svc, "path": p.label, "route": p.route, "clients": p.clients})
                layer_frames.append((f"{svc} {p.label}", rep.layers_frame(p.layers, f"{svc} {p.label}")))
                lines.extend(f"note: {p.label}: {n}" for n in p.route.notes)
    lines += [f"note: {n}" for n in notes]
    results = _simulate([e["route"] for e in entries], args, ctx)
    for e, r in zip(entries, results, strict=True):
        e["result"] = r
    if _default_table(args) and args.output is None:
        for title, frame in layer_frames:
            ctx.remarks([title], args)
            ctx.emit(frame, args, columns=rep.LAYER_COLUMNS)
            ctx.stdout.write("\n")
    elif is_table(args):
        ctx.emit(rep.concat([f for _, f in layer_frames]), args)
        ctx.stdout.write("\n")
    _emit_long(ctx, args, entries)
    r0 = results[0]
    out = [f"seed {r0.seed_entropy} | n {r0.n:,} per path"]
    out += [str(d) for d in mesh.diagnostics + diags if d.level == "warning"]
    out += lines + [f"note: {n}" for n in mesh.notes]
    _finish(ctx, args, out)
    return 0


def _cmd_envoy_route(args: argparse.Namespace, ctx: Any) -> int:
    from meshstat.mesh import envoy_dump_route
    from meshstat.report import mesh as rep

    cfg = _load_envoy(args.config_dump)
    route, res = envoy_dump_route(cfg, args.host, args.port, path=args.path, headers=parse_header(args.header),
                                  address=args.address, protocol=args.protocol)
    results = _simulate([route], args, ctx)
    entries = [{"service": f"{args.host}:{args.port}", "path": "envoy", "route": route, "result": results[0],
                "clients": [cfg.node_id] if cfg.node_id else []}]
    if is_table(args):
        ctx.emit(rep.steps_frame(res.steps), args, columns=rep.STEP_COLUMNS)
        ctx.stdout.write("\n")
    _emit_long(ctx, args, entries)
    lines = [f"seed {results[0].seed_entropy} | n {results[0].n:,}"]
    if res.failure:
        lines.append(f"warning: {res.failure}")
    lines += [f"warning: {w}" for w in res.warnings]
    lines += [f"note: {n}" for n in route.notes]
    _finish(ctx, args, lines)
    return 0


def _sim_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("-n", type=count_arg, default=1_000_000, metavar="N",
                   help="requests (or connections) simulated per path (default 1e6)")
    p.add_argument("--seed", type=seed_arg, help="seed (printed, so that a run can be replayed)")


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add the ``mesh`` and ``envoy-route`` sub-commands."""
    p = sub.add_parser(
        "mesh",
        parents=[common],
        help="layered split for a client calling a service (Istio + Kubernetes manifests)",
        description="Read Kubernetes and Istio manifests and show, for a client workload, every stage its calls "
        "really pass (capture rules, Envoy route, subset, endpoint LB, or kube-proxy) with exact and simulated "
        "shares per version and per pod.",
    )
    p.add_argument("-f", "--filename", action="append", required=True, metavar="PATH",
                   help="manifest file or directory (repeatable; multi-document YAML and kind: List accepted)")
    p.add_argument("--client", metavar="NS/NAME", help="client workload (namespace/name, or deploy/name)")
    p.add_argument("--envoy", action="append", metavar="FILE",
                   help="config_dump (or istioctl proxy-config -o json) of the client's sidecar")
    p.add_argument("--scale", action="append", metavar="deploy/NAME=R", help="what-if replica count (repeatable)")
    add_request_arguments(p)
    _sim_args(p)
    p.set_defaults(handler=_cmd_mesh)

    e = sub.add_parser(
        "envoy-route",
        parents=[common],
        help="resolve an outbound call through an Envoy config_dump",
        description="Follow host:port (path, headers) through listeners, filter chains, route configuration, "
        "virtual hosts, routes, weighted clusters and endpoints of an Envoy config_dump or istioctl "
        "proxy-config -o json outputs.",
    )
    e.add_argument("--config-dump", action="append", required=True, metavar="FILE",
                   help="admin /config_dump JSON, istioctl proxy-config all|listener|route|cluster|endpoint|eds|"
                   "bootstrap -o json|yaml, a bootstrap, or /clusters?format=json (repeatable, merged)")
    e.add_argument("--host", required=True, help="called host (name or IP)")
    e.add_argument("--port", required=True, type=port_arg, help="destination port")
    e.add_argument("--address", help="destination IP of the connection (e.g. the ClusterIP)")
    e.add_argument("--path", default="/", help="request path (default /)")
    e.add_argument("--header", action="append", metavar="NAME=VALUE", help="request header (repeatable)")
    e.add_argument("--protocol", choices=("http", "tcp"), default="http", help="what the client speaks")
    _sim_args(e)
    e.set_defaults(handler=_cmd_envoy_route)
