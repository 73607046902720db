"""``compare -f DIR`` for zones and nodes: per client zone and per pod, with what-ifs side by side.

Used when the manifests hold Nodes or EndpointSlices (and no Istio routing), or when a topology option is
given. The work is :func:`meshstat.topology.compare_topology`; the tables come from
:mod:`meshstat.report.topology`. Heavy libraries are imported inside the handler only.
"""

from __future__ import annotations

import argparse
from typing import Any

from meshstat.cli.context import is_table
from meshstat.errors import InvalidArgument
from meshstat.inputs import ascii_digits

__all__ = ["add_topology_arguments", "maybe_compare_topology"]

_FLAGS = ("client_zones", "rps", "lose_zone", "lose_node", "scale_zone", "move_clients", "node_rules", "mesh_path")


def add_topology_arguments(p: Any) -> None:
    """The zones-and-nodes options of ``compare -f``."""
    g = p.add_argument_group("zones and nodes (Nodes, Pods with spec.nodeName, EndpointSlices)")
    g.add_argument("--client-zones", metavar="Z=W,...",
                   help="where the clients run, as zone weights (a=3,b=2,c=1); needed when the input does not say")
    g.add_argument("--rps", type=float, metavar="R", help="requests per second of all clients together: per-pod "
                   "rates and the imbalance (max/mean)")
    g.add_argument("--lose-zone", action="append", metavar="ZONE", help="what-if: the zone's nodes are gone")
    g.add_argument("--lose-node", action="append", metavar="NODE", help="what-if: the node is gone")
    g.add_argument("--scale-zone", action="append", metavar="deploy/NAME@ZONE=R",
                   help="what-if: the Deployment has R ready pods in ZONE")
    g.add_argument("--move-clients", action="append", metavar="FROM=TO", help="what-if: zone FROM's clients "
                   "move to zone TO")
    g.add_argument("--lb-weight", choices=("equal", "endpoints"), default="equal",
                   help="load balancer's node choice for external traffic: equal per healthy node (default) or, "
                   "for externalTrafficPolicy Local, by local endpoints")
    g.add_argument("--proxy-mode", choices=("iptables", "nftables"), default="iptables",
                   help="kube-proxy mode of the shares (iptables: the --probability cascade; nftables: numgen)")
    g.add_argument("--mesh-path", action="append", choices=("sidecar", "ztunnel"),
                   help="also show the split through each client's sidecar (Istio locality load balancing) or "
                   "ztunnel (ambient); default: sidecar when a DestinationRule exists or the namespace is labelled "
                   "for injection, ztunnel when it is labelled istio.io/dataplane-mode=ambient")
    g.add_argument("--nodes", action="store_true", help="also show each node's kube-proxy endpoint lists")
    g.add_argument("--node-rules", metavar="NODE", help="print the ruleset kube-proxy writes on NODE: iptables-save "
                   "text, or with --proxy-mode nftables the nft -f transaction of its full sync")


def _what_ifs(args: argparse.Namespace) -> list[Any]:
    from meshstat.topology import WhatIf

    out = [WhatIf("lose-zone", (z,)) for z in getattr(args, "lose_zone", None) or []]
    out += [WhatIf("lose-node", (n,)) for n in getattr(args, "lose_node", None) or []]
    for item in getattr(args, "scale_zone", None) or []:
        ref, sep, rest = item.partition("@")
        zone, sep2, r = rest.rpartition("=")
        if not sep or not sep2 or not ref or not zone or not ascii_digits(r.strip()):
            raise InvalidArgument(f"--scale-zone expects deploy/NAME@ZONE=REPLICAS, got {item!r}")
        out.append(WhatIf("scale-zone", (ref, zone, r.strip())))
    for item in getattr(args, "move_clients", None) or []:
        src, sep, dst = item.partition("=")
        if not sep or not src or not dst:
            raise InvalidArgument(f"--move-clients expects FROM=TO (zones), got {item!r}")
        out.append(WhatIf("move-clients", (src.strip(), dst.strip())))
    return out


def _services(manifests: Any, args: argparse.Namespace) -> list[tuple[str, int | None]]:
    svc = getattr(args, "service", None)
    if svc:
        host, _, port = svc.partition(":")
        if "/" not in host and "." in host:
            name, ns = host.split(".")[:2]
            host = f"{ns}/{name}"
        if port and not ascii_digits(port):
            raise InvalidArgument(f"--service expects NS/NAME[:PORT], got {svc!r}")
        return [(host, int(port) if port else None)]
    topo = manifests.topology
    out = []
    for s in manifests.services:
        ref = f"{s.meta.namespace}/{s.meta.name}"
        has_slice = any(x.service == s.meta.name and x.namespace == s.meta.namespace for x in topo.slices)
        has_pods = bool(s.selector) and any(
            p.namespace == s.meta.namespace and p.ip and all(dict(p.labels).get(k) == v for k, v in s.selector)
            for p in topo.pods
        )
        if (has_slice or has_pods) and s.ports:
            out.extend((ref, p.port) for p in s.ports)
    if not out:
        raise InvalidArgument("no Service in the manifests has endpoints (EndpointSlices or Pods); give --service")
    return out


def maybe_compare_topology(args: argparse.Namespace, ctx: Any, manifests: Any) -> int | None:
    """Run the zones-and-nodes view of ``compare -f`` on ``manifests`` (read from ``args.filename``) when it
    applies; None when the mesh view applies."""
    asked = any(getattr(args, f, None) for f in _FLAGS)
    topo = manifests.topology
    has_topology = bool(topo.nodes or topo.slices)
    if not asked and (not has_topology or manifests.virtual_services):
        return None
    return _run(args, ctx, manifests)


def _run(args: argparse.Namespace, ctx: Any, manifests: Any) -> int:
    from meshstat.report import topology as rep
    from dataclasses import replace

    from meshstat.topology import build_cluster, compare_topology, node_rules, parse_client_zones
    from meshstat.topology.mesh_paths import mesh_paths_in, mesh_splits

    zones = parse_client_zones(getattr(args, "client_zones", None))
    rps = getattr(args, "rps", None)
    if rps is not None and not rps > 0:
        raise InvalidArgument(f"--rps must be a positive rate, got {rps}")
    what_ifs = _what_ifs(args)
    cmps = []
    lines: list[str] = []
    for ref, port in _services(manifests, args):
        cluster = build_cluster(manifests, ref, port=port, client=getattr(args, "client", None),
                                client_zones=zones or None)  # fmt: skip
        if getattr(args, "node_rules", None):
            ctx.stdout.write(node_rules(cluster, args.node_rules, args.proxy_mode))
            return 0
        cmp_ = compare_topology(cluster, what_ifs, mode=args.proxy_mode, rps=rps, lb_weight=args.lb_weight)
        cparts = (getattr(args, "client", None) or "").split("/")
        client_ns = cparts[0] if len(cparts) == 3 else None  # ns/kind/name; else the Service's namespace
        paths = getattr(args, "mesh_path", None) or mesh_paths_in(manifests, client_ns or cluster.service.namespace)
        if paths:
            extra = mesh_splits(manifests, cluster, paths, client_namespace=client_ns, rps=rps)
            for w in what_ifs:
                extra += mesh_splits(manifests, w.apply(cluster), paths, client_namespace=client_ns, rps=rps,
                                     label=w.label)
            cmp_ = replace(cmp_, splits=cmp_.splits + tuple(extra))
        cmps.append(cmp_)
        lines.append(f"{cluster.service.port_ref}: {cluster.service.settings()}; hints {cluster.hints.writer} "
                     f"({cluster.hints.reason}); clients: {cluster.client_source}")  # fmt: skip
        lines += [f"note: {n}" for n in dict.fromkeys(n for s in cmp_.splits for n in s.notes)]
    if is_table(args):
        ctx.stdout.write("Per client zone: where each zone's connections go (internal traffic, to the cluster IP)\n")
        ctx.emit(rep.zone_frame(cmps), args)
        unit = "requests per second" if rps is not None else "share of all internal connections"
        ctx.stdout.write(f"\nPer pod ({unit}; clients weighted by where they run)\n")
        ctx.emit(rep.pod_frame(cmps), args)
        ext = [c for c in cmps if c.cluster.service.externally_accessible]
        if ext:
            ctx.stdout.write("\nExternal traffic: load balancer -> nodes -> pods (each healthy node an equal share"
                             + (", Local: by local endpoints" if args.lb_weight == "endpoints" else "") + ")\n")
            ctx.emit(rep.pod_frame(ext, external=True), args)
        if getattr(args, "nodes", False):
            for c in cmps:
                ctx.stdout.write(f"\n{c.cluster.service.port_ref}: kube-proxy's endpoints on each node\n")
                ctx.emit(rep.node_frame(c), args)
        ctx.stdout.write("\n")
    else:
        ctx.emit(rep.long_frame(cmps), args)
    stream = ctx.stdout if is_table(args) else ctx.stderr
    lines.append(f"kube-proxy {args.proxy_mode} mode shares; configured = the input as given; cluster-wide = no "
                 "hints, policies Cluster; PreferClose / ITP Local / ETP = that one setting changed"
                 + ("; sidecar = each client's Envoy (Istio locality LB, Envoy priorities), ztunnel = ambient"
                    if any(s.mode == "mesh" for c in cmps for s in c.splits) else ""))  # fmt: skip
    for line in dict.fromkeys(lines):
        stream.write(line + "\n")
    return 0
