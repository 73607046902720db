"""Report frames for the netfilter area: trace paths and kube-proxy services (polars)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import polars as pl

    from meshstat.netfilter import ServiceInfo, TraceResult

__all__ = ["endpoints_frame", "services_frame", "trace_frame"]


def trace_frame(result: TraceResult) -> pl.DataFrame:
    """One row per path: exact probability (fraction and float), verdict, conditions, path.

    Columns: ``path`` (1-based id), ``probability`` (exact fraction as text),
    ``p`` (float), ``verdict``, ``conditions`` (the assumptions the probability
    is conditional on; empty when none), ``mark`` (hex), ``rules``
    (``"OUTPUT:12 -> ISTIO_OUTPUT:20 -> ..."``).
    """
    import polars as pl

    multi = len({t.split("/")[0] for t in result.tables}) > 1
    rows = {
        "path": [],
        "probability": [],
        "p": [],
        "verdict": [],
        "conditions": [],
        "mark": [],
        "rules": [],
    }
    for i, p in enumerate(result.paths, 1):
        rows["path"].append(i)
        rows["probability"].append(str(p.probability))
        rows["p"].append(float(p.probability))
        rows["verdict"].append(str(p.verdict))
        rows["conditions"].append("; ".join(str(c) for c in p.conditions))
        rows["mark"].append(f"{p.mark:#x}")
        rows["rules"].append(p.path_string(with_table=multi) or "(no rule matched)")
    return pl.DataFrame(
        rows,
        schema={
            "path": pl.Int64,
            "probability": pl.String,
            "p": pl.Float64,
            "verdict": pl.String,
            "conditions": pl.String,
            "mark": pl.String,
            "rules": pl.String,
        },
    )


def services_frame(infos: list[ServiceInfo]) -> pl.DataFrame:
    """One row per service port: name, protocol, cluster IP:port, endpoints, affinity, policies."""
    import polars as pl

    rows: dict[str, list] = {
        k: []
        for k in (
            "service", "protocol", "cluster_ip", "port", "endpoints", "local_endpoints", "affinity",
            "affinity_timeout_s", "internal_policy", "external_policy", "external", "node_ports",
            "chain", "hash_ok", "endpoint_list",
        )
    }  # fmt: skip
    for i in infos:
        rows["service"].append(i.name)
        rows["protocol"].append(i.protocol)
        rows["cluster_ip"].append(i.cluster_ip)
        rows["port"].append(i.port)
        rows["endpoints"].append(len(i.endpoints))
        rows["local_endpoints"].append(len(i.local_endpoints))
        rows["affinity"].append(i.session_affinity)
        rows["affinity_timeout_s"].append(i.affinity_timeout)
        rows["internal_policy"].append(i.internal_policy if not i.rejected else "(no endpoints: rejected)")
        rows["external_policy"].append(i.external_policy)
        rows["external"].append(",".join(i.external_ips))
        rows["node_ports"].append(",".join(map(str, i.node_ports)))
        rows["chain"].append(i.cluster_chain or i.local_chain)
        rows["hash_ok"].append(i.hash_ok)
        rows["endpoint_list"].append(",".join(e.address for e in (i.endpoints or i.local_endpoints)))
    return pl.DataFrame(
        rows,
        schema={
            "service": pl.String, "protocol": pl.String, "cluster_ip": pl.String, "port": pl.Int64,
            "endpoints": pl.Int64, "local_endpoints": pl.Int64, "affinity": pl.String,
            "affinity_timeout_s": pl.Int64, "internal_policy": pl.String, "external_policy": pl.String,
            "external": pl.String, "node_ports": pl.String, "chain": pl.String, "hash_ok": pl.Boolean,
            "endpoint_list": pl.String,
        },
    )  # fmt: skip


def endpoints_frame(info: ServiceInfo, *, chain: str = "cluster") -> pl.DataFrame:
    """One row per endpoint of one service chain: exact share, float, threshold or slots, chain."""
    import polars as pl

    eps = info.endpoints if chain == "cluster" else info.local_endpoints
    rows: dict[str, list] = {k: [] for k in ("endpoint", "share", "p", "threshold", "slots", "chain", "hash_ok")}
    for e in eps:
        rows["endpoint"].append(e.address)
        rows["share"].append(str(e.share) if e.share is not None else None)
        rows["p"].append(float(e.share) if e.share is not None else None)
        rows["threshold"].append(e.threshold)
        rows["slots"].append(",".join(f"{lo}" if lo == hi else f"{lo}-{hi}" for lo, hi in e.slots))
        rows["chain"].append(e.chain)
        rows["hash_ok"].append(e.hash_ok)
    return pl.DataFrame(
        rows,
        schema={
            "endpoint": pl.String, "share": pl.String, "p": pl.Float64, "threshold": pl.Int64,
            "slots": pl.String, "chain": pl.String, "hash_ok": pl.Boolean,
        },
    )  # fmt: skip
