"""Report frames for the netfilter area: trace paths and kube-proxy services (polars)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from meshstat.model import share_text

if TYPE_CHECKING:
    import polars as pl

    from meshstat.kubeproxy import ServiceInfo
    from meshstat.netfilter import TraceResult
    from meshstat.inference.counters import CounterCheck

__all__ = ["counters_frame", "counters_tests_frame", "endpoints_frame", "services_frame", "trace_frame"]


def trace_frame(result: TraceResult) -> pl.DataFrame:
    """One row per path: exact probability (fraction and float), verdict, conditions, path.

    Columns: ``path`` (1-based id), ``probability`` (exact fraction as text,
    :func:`meshstat.model.share_text`: ``~`` and 17 digits beyond 48 characters),
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
        rows["probability"].append(share_text(p.probability))
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
    """One row per endpoint of one service chain: exact share, float, threshold or slots, chain.

    ``share`` is :func:`meshstat.model.share_text` of the share: ``~`` where the
    text is not the exact share (shortened, or a cascade of more than
    :data:`meshstat.model.MAX_EXACT_RULES` rules on the ``2**-64`` grid).
    """
    import polars as pl

    eps = info.endpoints if chain == "cluster" else info.local_endpoints
    rows: dict[str, list] = {k: [] for k in ("endpoint", "share", "p", "threshold", "slots", "chain", "hash_ok")}
    for e in eps:
        rows["endpoint"].append(e.address)
        rows["share"].append(share_text(e.share, e.share_exact))
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


def counters_frame(result: CounterCheck) -> pl.DataFrame:
    """One row per endpoint of a counters check: observed vs the exact cascade share.

    Columns: ``endpoint``, ``chain`` (KUBE-SEP), ``line`` (in the listing),
    ``observed`` (the rule's packet counter), ``observed_share``,
    ``expected_share`` (exact fraction as text, :func:`meshstat.model.share_text`), ``share`` (float),
    ``expected`` (``n * share``), ``pvalue`` (exact binomial, ``observed`` of
    ``n``), ``reached`` (connections the earlier rules left), ``rule_p`` (the
    rule's ``k / 2**31``, empty for the unconditional last rule),
    ``step_pvalue`` (exact binomial, ``observed`` of ``reached`` at ``rule_p``),
    ``exact`` (False: the listing rounded the counter), ``observed_low`` and
    ``observed_high`` (the counts a rounded counter stands for).
    """
    import polars as pl

    rows: dict[str, list] = {
        k: []
        for k in ("endpoint", "chain", "line", "observed", "observed_share", "expected_share", "share",
                  "expected", "pvalue", "reached", "rule_p", "step_pvalue", "exact", "observed_low",
                  "observed_high")
    }  # fmt: skip
    for r in result.rows:
        rows["endpoint"].append(r.endpoint)
        rows["chain"].append(r.chain)
        rows["line"].append(r.line)
        rows["observed"].append(r.observed)
        rows["observed_share"].append(r.observed / result.n if result.n else None)
        rows["expected_share"].append(share_text(r.share, result.shares_exact))
        rows["share"].append(float(r.share))
        rows["expected"].append(r.expected)
        rows["pvalue"].append(r.pvalue)
        rows["reached"].append(r.reached)
        rows["rule_p"].append(float(r.rule_probability) if r.rule_probability is not None else None)
        rows["step_pvalue"].append(r.step_pvalue)
        rows["exact"].append(r.exact)
        rows["observed_low"].append(r.observed if r.observed_low is None else r.observed_low)
        rows["observed_high"].append(r.observed if r.observed_high is None else r.observed_high)
    return pl.DataFrame(
        rows,
        schema={
            "endpoint": pl.String, "chain": pl.String, "line": pl.Int64, "observed": pl.Int64,
            "observed_share": pl.Float64, "expected_share": pl.String, "share": pl.Float64,
            "expected": pl.Float64,
            "pvalue": pl.Float64, "reached": pl.Int64, "rule_p": pl.Float64, "step_pvalue": pl.Float64,
            "exact": pl.Boolean, "observed_low": pl.Int64, "observed_high": pl.Int64,
        },
    )  # fmt: skip


def counters_tests_frame(result: CounterCheck) -> pl.DataFrame:
    """One row per test of a counters check: the headline test, chi-square and G-test."""
    import polars as pl

    rows = [
        {"test": "chi-square", "statistic": result.chisquare_statistic, "dof": result.dof,
         "pvalue": result.chisquare_pvalue},
        {"test": "G-test", "statistic": result.gtest_statistic, "dof": result.dof,
         "pvalue": result.gtest_pvalue},
    ]  # fmt: skip
    if result.pvalue_range is not None:  # rounded counters: the range over the counts the listing allows
        low, high = result.pvalue_range
        rows.insert(0, {"test": "chi-square, least favourable counts", "statistic": None, "dof": result.dof,
                        "pvalue": low})
        rows.insert(1, {"test": "chi-square, most favourable counts", "statistic": None, "dof": result.dof,
                        "pvalue": high})
    elif result.method not in ("chi-square", "G-test"):  # an exact test heads the table
        rows.insert(0, {"test": result.method, "statistic": None, "dof": None, "pvalue": result.pvalue})
    return pl.DataFrame(
        rows,
        schema={"test": pl.String, "statistic": pl.Float64, "dof": pl.Int64, "pvalue": pl.Float64},
        orient="row",
    )
