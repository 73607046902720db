"""Tables of :class:`meshstat.topology.TopologyComparison`: per client zone, per pod, per node, and all rows.

:func:`zone_frame` and :func:`pod_frame` are the readable tables of ``compare -f`` (rows grouped: a scenario
or service is named on its first row only); :func:`long_frame` holds every number for the machine formats
(``csv``, ``json``, ``parquet``): one row per scenario, traffic kind, client (zone or node, or the load
balancer) and pod, with the exact share as a fraction.
"""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import polars as pl

__all__ = ["long_frame", "node_frame", "pod_frame", "zone_frame"]


_SETTINGS = ("configured", "cluster-wide", "PreferClose", "ITP Local", "ETP Cluster", "ETP Local")


def _pct(x: Fraction | float | None) -> str:
    if x is None:
        return "-"
    v = float(x) * 100
    return f"{v:.1f}%" if v else "0%"


def _group(col: list[str]) -> list[str]:
    out, last = [], None
    for v in col:
        out.append(v if v != last else "")
        last = v
    return out


def zone_frame(cmps: Sequence[Any]) -> pl.DataFrame:
    """Per scenario and client zone: the clients' weight, the share to each pod zone, dropped, kept in zone."""
    import polars as pl

    zones: list[str] = []
    for c in cmps:
        zones += [z for z in c.cluster.zones if z not in zones]
    rows: dict[str, list[str]] = {"service": [], "scenario": [], "client zone": [], "clients": []}
    for z in zones:
        rows[f"to {z}"] = []
    rows["dropped"] = []
    rows["same zone"] = []
    for c in cmps:
        svc = c.cluster.service.port_ref
        for s in c.splits:
            if s.scenario.startswith("ETP"):
                continue  # externalTrafficPolicy changes external traffic only
            for zone in zones:
                if zone not in s.by_zone:
                    continue
                w, d, dropped = s.by_zone[zone]
                zone_of = {e.key: s.cluster.zone_of(e.node) for e in s.cluster.endpoints}
                per = {z: sum((v for k, v in d.items() if zone_of.get(k) == z), Fraction(0)) for z in zones}
                rows["service"].append(svc)
                rows["scenario"].append(s.scenario)
                rows["client zone"].append(zone)
                rows["clients"].append(_pct(w))
                for z in zones:
                    rows[f"to {z}"].append(_pct(per[z]))
                rows["dropped"].append(_pct(dropped))
                rows["same zone"].append(_pct(per.get(zone, Fraction(0))))
    rows["service"] = _group(rows["service"])
    rows["scenario"] = _group(rows["scenario"])
    return pl.DataFrame(rows)


def pod_frame(cmps: Sequence[Any], *, external: bool = False) -> pl.DataFrame:
    """Per pod: its share (or requests per second) in each scenario, then the max/mean row.

    Internal traffic for every scenario; with ``external``, the external traffic (load balancer -> nodes ->
    pods) of the scenarios that change ``externalTrafficPolicy``.
    """
    import polars as pl

    rows: dict[str, list[str]] = {"service": [], "pod": [], "node": [], "zone": []}
    scen: list[str] = []
    for c in cmps:
        for s in c.splits:
            name = s.scenario
            if external and s.external is None:
                continue  # the mesh's paths (sidecar, ztunnel) carry no external traffic
            if name not in scen and (name.startswith("ETP") == external or (external and name not in _SETTINGS)):
                scen.append(name)
    for n in scen:
        rows[n] = []
    for c in cmps:
        svc = c.cluster.service.port_ref
        splits = {s.scenario: s for s in c.splits}
        pods: dict[str, Any] = {}
        for s in c.splits:
            for p in s.pods:
                pods.setdefault(p.key, p)
        for key, p in pods.items():
            rows["service"].append(svc)
            rows["pod"].append(p.label + ("" if p.ready else " (terminating)" if p.terminating else " (not ready)"))
            rows["node"].append(p.node or "-")
            rows["zone"].append(c.cluster.zone_of(p.node))
            for n in scen:
                s = splits.get(n)
                if s is None:
                    rows[n].append("")
                    continue
                src = s.external if external else s.internal
                inside = any(q.key == key for q in s.pods) or key in (src or {})
                if not inside:
                    rows[n].append("gone")
                elif s.rps is not None:
                    rows[n].append(f"{s.rate(key, external=external):.1f}/s")
                else:
                    rows[n].append(_pct((src or {}).get(key, Fraction(0))))
        for label, fn in (("dropped", None), ("max/mean", "imb")):
            rows["service"].append(svc)
            rows["pod"].append(label)
            rows["node"].append("")
            rows["zone"].append("")
            for n in scen:
                s = splits.get(n)
                if s is None:
                    rows[n].append("")
                elif fn is None:
                    rows[n].append(_pct(s.external_dropped if external else s.internal_dropped))
                else:
                    imb = s.imbalance(external=external)
                    rows[n].append("-" if imb is None else f"{imb:.2f}")
    rows["service"] = _group(rows["service"])
    return pl.DataFrame(rows)


def node_frame(cmp: Any) -> pl.DataFrame:
    """Per scenario and node: kube-proxy's topology mode, the endpoints of its internal and external chains."""
    import polars as pl

    rows: dict[str, list[str]] = {"scenario": [], "node": [], "zone": [], "clients": [], "mode": [],
                                  "internal chain": [], "external chain": [], "why": []}  # fmt: skip
    for s in cmp.splits:
        total = sum(s.cluster.clients.values(), Fraction(0))
        for v in s.views:
            rows["scenario"].append(s.scenario)
            rows["node"].append(v.node.name)
            rows["zone"].append(v.zone)
            rows["clients"].append(_pct(s.cluster.clients.get(v.node.name, Fraction(0)) / total))
            rows["mode"].append(v.categorized.mode or "-")
            rows["internal chain"].append(", ".join(e.label for e, _ in v.internal) or v.internal_verdict)
            rows["external chain"].append(", ".join(e.label for e, _ in v.external) or v.external_verdict)
            rows["why"].append(v.categorized.why)
    rows["scenario"] = _group(rows["scenario"])
    return pl.DataFrame(rows)


def long_frame(cmps: Sequence[Any]) -> pl.DataFrame:
    """Every number: one row per (service, scenario, traffic, client kind, client, pod)."""
    import polars as pl

    out: list[dict[str, Any]] = []
    for c in cmps:
        svc = c.cluster.service.port_ref
        for s in c.splits:
            zone_of = {e.key: s.cluster.zone_of(e.node) for e in s.cluster.endpoints}
            pod_of = {e.key: e for e in s.cluster.endpoints}
            imb_i, imb_e = s.imbalance(), s.imbalance(external=True)

            def add(traffic: str, kind: str, who: str, weight: Fraction, shares: dict[str, Fraction],
                    dropped: Fraction, rate_scale: Fraction) -> None:  # fmt: skip
                keys = [p.key for p in s.pods] + [k for k in shares if k not in {p.key for p in s.pods}]
                for k in keys:
                    share = shares.get(k, Fraction(0))
                    p = pod_of.get(k)
                    out.append({
                        "service": svc, "scenario": s.scenario, "traffic": traffic, "client_kind": kind,
                        "client": who, "client_weight": float(weight), "pod": p.label if p else k, "endpoint": k,
                        "pod_node": p.node if p else None, "pod_zone": zone_of.get(k), "share": float(share),
                        "share_exact": str(share), "dropped": float(dropped),
                        "rps": None if s.rps is None else float(s.rps * rate_scale * share),
                        "imbalance": imb_e if traffic == "external" else imb_i, "proxy_mode": s.mode,
                    })  # fmt: skip

            add("internal", "all", "all clients", Fraction(1), s.internal, s.internal_dropped, Fraction(1))
            for z, (w, d, dr) in s.by_zone.items():
                add("internal", "zone", z, w, d, dr, w)
            for n, (w, d, dr) in s.by_node.items():
                add("internal", "node", n, w, d, dr, w)
            if s.external is not None:
                add("external", "all", "load balancer", Fraction(1), s.external, s.external_dropped, Fraction(1))
    return pl.DataFrame(out)
