"""Reports for the netfilter area: trace paths (a tree and a table) and kube-proxy services (polars).

A trace reads as a tree (:func:`trace_tree`, drawn by :func:`render_trace`): it branches on each
unknown packet field or client history in the order the rules test them, and every leaf is a verdict
with its exact probability given the branch above it. Under each branch the probabilities sum to 1,
and along a branch they multiply to the path's probability in :class:`meshstat.netfilter.TraceResult`.
Drawn, an unknown that the whole branch reaches is two lines, ``LABEL: yes`` and ``LABEL: no``, each
with what follows; one that only part of the branch reaches (after a random rule) is ``P  LABEL?``
with ``yes`` and ``no`` below it.
The tree is built from the result's public structure only (each path's conditions, probability,
verdict and steps), so that it follows the tracer wherever it goes. :func:`trace_frame` is the
same result as a table, one row per path (``--wide``, csv, json).
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING, Any

from meshstat.model import exact_sum, share_text
from meshstat.report.text import Column, Terminal, TreeNode, count, render_tree, sig, text

if TYPE_CHECKING:
    import polars as pl

    from meshstat.inference.counters import CounterCheck
    from meshstat.kubeproxy import ServiceInfo
    from meshstat.netfilter import TraceResult

__all__ = [
    "COUNTERS_COLUMNS",
    "ENDPOINTS_COLUMNS",
    "SERVICES_COLUMNS",
    "TraceLeaf",
    "TraceSplit",
    "counters_frame",
    "counters_tests_frame",
    "endpoints_frame",
    "render_trace",
    "services_frame",
    "trace_frame",
    "trace_tree",
]


@dataclass(frozen=True, slots=True)
class TraceLeaf:
    """A verdict under a branch: its probability given the branch, and the paths that end in it.

    ``given`` has, for each path, the unknowns it assumed that the tree does not show because both of
    their sides led to the same verdicts (empty when none).
    """

    probability: Fraction
    verdict: Any
    paths: tuple[Any, ...]
    given: tuple[tuple[str, ...], ...] = ()


@dataclass(frozen=True, slots=True)
class TraceSplit:
    """An unknown the rules test: the probability of reaching the test given the branch, and both sides.

    ``yes`` and ``no`` are what follows when ``label`` holds and when it does not; each side's items
    sum to 1 on their own.
    """

    probability: Fraction
    label: str
    yes: tuple[TraceLeaf | TraceSplit, ...]
    no: tuple[TraceLeaf | TraceSplit, ...]


Item = TraceLeaf | TraceSplit


def trace_tree(result: TraceResult) -> tuple[Item, ...]:
    """The paths of ``result`` as a tree of unknowns (see the module docstring); its top items sum to 1.

    An unknown whose two sides lead to the same verdicts with the same probabilities is not a branch
    of the tree (the verdicts do not depend on it); its paths end in the same leaves, each with the
    assumption in :attr:`TraceLeaf.given`.
    """
    return _items(list(result.paths), 0, _mass(list(result.paths), 0))


def _groups(paths: list[Any], depth: int) -> dict[tuple[str, str], list[Any]]:
    """Paths that end at ``depth`` by verdict, and the others by the unknown they test there (in order)."""
    out: dict[tuple[str, str], list[Any]] = {}
    for p in paths:
        conds = p.conditions
        key = ("leaf", str(p.verdict)) if len(conds) <= depth else ("split", conds[depth].label)
        out.setdefault(key, []).append(p)
    return out


def _sides(paths: list[Any], depth: int) -> tuple[list[Any], list[Any]]:
    yes = [p for p in paths if p.conditions[depth].holds]
    return yes, [p for p in paths if not p.conditions[depth].holds]


def _mass(paths: list[Any], depth: int) -> Fraction:
    """Probability that reaches this point: each unknown below counted once (its ``yes`` side)."""
    parts: list[Fraction] = []
    for (kind, _), group in _groups(paths, depth).items():
        if kind == "leaf":
            parts.extend(p.probability for p in group)
        else:
            yes, no = _sides(group, depth)
            parts.append(_mass(yes or no, depth + 1))
    return exact_sum(parts)


def _items(paths: list[Any], depth: int, mass: Fraction) -> tuple[Item, ...]:
    def given(x: Fraction) -> Fraction:
        return x / mass if mass else Fraction(0)

    out: list[Item] = []
    for (kind, label), group in _groups(paths, depth).items():
        if kind == "leaf":
            out.append(TraceLeaf(given(exact_sum(p.probability for p in group)), group[0].verdict,
                                 tuple(group), tuple(() for _ in group)))  # fmt: skip
            continue
        yes, no = _sides(group, depth)
        m_yes, m_no = _mass(yes, depth + 1), _mass(no, depth + 1)
        split = TraceSplit(given(m_yes if yes else m_no), label, _items(yes, depth + 1, m_yes),
                           _items(no, depth + 1, m_no))  # fmt: skip
        if yes and no and _same(split.yes, split.no):
            out.extend(_scaled(_merged(split.yes, split.no, label), split.probability))
        else:
            out.append(split)
    return tuple(out)


def _same(a: tuple[Item, ...], b: tuple[Item, ...]) -> bool:
    """Whether two sides show the same tree (verdicts, labels, probabilities)."""
    if len(a) != len(b):
        return False
    for x, y in zip(a, b, strict=True):
        if type(x) is not type(y) or x.probability != y.probability:
            return False
        if isinstance(x, TraceLeaf) and str(x.verdict) != str(y.verdict):  # type: ignore[union-attr]
            return False
        if isinstance(x, TraceSplit) and (x.label != y.label or not _same(x.yes, y.yes)  # type: ignore[union-attr]
                                          or not _same(x.no, y.no)):  # type: ignore[union-attr]
            return False
    return True


def _merged(a: tuple[Item, ...], b: tuple[Item, ...], label: str) -> tuple[Item, ...]:
    """``a`` and ``b`` (the same tree) as one, each path remembering which side of ``label`` it took."""
    out: list[Item] = []
    for x, y in zip(a, b, strict=True):
        if isinstance(x, TraceLeaf) and isinstance(y, TraceLeaf):
            out.append(TraceLeaf(x.probability, x.verdict, x.paths + y.paths,
                                 tuple((f"{label}: yes", *g) for g in x.given)
                                 + tuple((f"{label}: no", *g) for g in y.given)))  # fmt: skip
        elif isinstance(x, TraceSplit) and isinstance(y, TraceSplit):
            out.append(TraceSplit(x.probability, x.label, _merged(x.yes, y.yes, label),
                                  _merged(x.no, y.no, label)))  # fmt: skip
    return tuple(out)


def _scaled(items: tuple[Item, ...], factor: Fraction) -> tuple[Item, ...]:
    """Top-level items of a collapsed split, their probabilities given the split's parent."""
    out: list[Item] = []
    for x in items:
        if isinstance(x, TraceLeaf):
            out.append(TraceLeaf(x.probability * factor, x.verdict, x.paths, x.given))
        else:
            out.append(TraceSplit(x.probability * factor, x.label, x.yes, x.no))
    return tuple(out)


def _prob(x: Fraction) -> str:
    """The share's text (:func:`meshstat.model.share_text`), with its decimal beside it when the fraction is long."""
    t = share_text(x)
    return t if x.denominator <= 10_000 or t.startswith("~") else f"{t} (≈{float(x):.6g})"


_VERDICT_STYLE = {"DNAT": "green", "REDIRECT": "green", "TPROXY": "green", "SNAT": "green", "MASQUERADE": "green",
                  "DROP": "red", "REJECT": "red", "UNKNOWN": "yellow"}


def _packet_label(result: TraceResult) -> str:
    pkt = result.packet
    dst = f"{pkt.dst}:{pkt.dport}" if pkt.dport is not None else pkt.dst
    known = [f"{name} {getattr(pkt, attr)}" for name, attr in (
        ("from", "src"), ("sport", "sport"), ("uid", "uid"), ("gid", "gid"), ("out-if", "out_if"),
        ("in-if", "in_if")) if getattr(pkt, attr, None) is not None]  # fmt: skip
    if getattr(pkt, "mark", 0):
        known.append(f"mark {pkt.mark:#x}")
    # the tables walked are named in the "walked:" remark that follows the tree
    return f"{pkt.proto} to {dst}" + (f" ({', '.join(known)})" if known else "") + f", from hook {result.hook}"


def render_trace(result: TraceResult, *, verbose: bool = False, term: Terminal | None = None) -> str:
    """The trace as a tree; ``verbose`` adds the rules each leaf's paths walked (``term``: width, colour)."""
    multi = len({t.split("/")[0] for t in result.tables}) > 1

    def rules(p: Any) -> str:
        text_ = p.path_string(with_table=multi) or "(no rule matched)"
        return text_ + (f" (mark {p.mark:#x})" if getattr(p, "mark", 0) else "")

    def nodes(item: Item) -> list[TreeNode]:
        if isinstance(item, TraceLeaf):
            below: tuple[TreeNode, ...] = ()
            if verbose and len(item.paths) == 1:
                below = (TreeNode("rules: " + rules(item.paths[0]), style="dim"),)
            elif verbose:
                below = tuple(TreeNode(f"if {'; '.join(g)}: rules: {rules(p)}" if g else f"rules: {rules(p)}",
                                       style="dim") for p, g in zip(item.paths, item.given, strict=True))  # fmt: skip
            kind = getattr(item.verdict, "kind", "")
            style = _VERDICT_STYLE.get(kind, "")
            return [TreeNode(f"{_prob(item.probability)}  {item.verdict}", below, style)]
        yes = tuple(n for x in item.yes for n in nodes(x))
        no = tuple(n for x in item.no for n in nodes(x))
        if item.probability == 1:  # the whole branch reaches the test: its two sides take its place
            return [TreeNode(f"{item.label}: yes", yes), TreeNode(f"{item.label}: no", no)]
        sides = (TreeNode("yes", yes), TreeNode("no", no))
        return [TreeNode(f"{_prob(item.probability)}  {item.label}?", sides)]

    root = TreeNode(_packet_label(result), tuple(n for x in trace_tree(result) for n in nodes(x)))
    return render_tree(root, term or Terminal())


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


def _port(port: Any, protocol: Any) -> str:
    return f"{port}/{str(protocol).upper()}" if port is not None else "-"


def _endpoints(n: Any, local: Any) -> str:
    return f"{n} ({local} local)" if local else str(n)


def _policy(internal: Any, external: Any) -> str:
    if str(internal).startswith("(no endpoints"):
        return "REJECT"
    return text(internal) if external is None else f"{internal}/{external}"


def _external(v: Any) -> str:
    addrs = [a for a in str(v or "").split(",") if a]
    return "-" if not addrs else addrs[0] + (f" +{len(addrs) - 1}" if len(addrs) > 1 else "")


#: Default columns of :func:`services_frame` (as ``kubectl get services``; affinity timeouts, every
#: external address, chains and endpoint lists in ``--wide``). POLICY is the internal traffic policy,
#: then the external one where the service has one; REJECT for a service without endpoints.
SERVICES_COLUMNS = (
    Column("SERVICE", "service", shrink=True),
    Column("CLUSTER-IP", "cluster_ip"),
    Column("PORT", ("port", "protocol"), _port),
    Column("ENDPOINTS", ("endpoints", "local_endpoints"), _endpoints, "right"),
    Column("AFFINITY", "affinity", shrink=True),
    Column("POLICY", ("internal_policy", "external_policy"), _policy, shrink=True),
    Column("EXTERNAL", "external", _external, shrink=True),
)


def services_frame(infos: list[ServiceInfo]) -> pl.DataFrame:
    """One row per service port: name, protocol, cluster IP:port, endpoints, affinity, policies, state.

    ``state`` is what kube-proxy does with traffic to the cluster IP (``routed``,
    ``rejected``, ``dropped``, ``partial``, ``stale``; see
    :attr:`meshstat.kubeproxy.ServiceInfo.state`), ``external_state`` the same
    for external traffic, ``source_ranges`` the load-balancer source ranges.
    """
    import polars as pl

    rows: dict[str, list] = {
        k: []
        for k in (
            "service", "protocol", "cluster_ip", "port", "endpoints", "local_endpoints", "affinity",
            "affinity_timeout_s", "internal_policy", "external_policy", "external", "node_ports",
            "chain", "hash_ok", "endpoint_list", "state", "external_state", "source_ranges",
        )
    }  # fmt: skip
    for i in infos:
        rows["service"].append(i.name)
        rows["protocol"].append(i.protocol)
        rows["cluster_ip"].append(i.cluster_ip)
        rows["port"].append(i.port)
        # outcomes such as "(fall-through)" or "(dropped)" of a chain read by the tracer are not endpoints
        rows["endpoints"].append(sum(1 for e in i.endpoints if not e.address.startswith("(")))
        rows["local_endpoints"].append(sum(1 for e in i.local_endpoints if not e.address.startswith("(")))
        rows["affinity"].append(i.session_affinity)
        rows["affinity_timeout_s"].append(i.affinity_timeout)
        rows["internal_policy"].append(i.internal_policy if not i.rejected else "(no endpoints: rejected)")
        rows["external_policy"].append(i.external_policy)
        rows["external"].append(",".join(i.external_ips))
        rows["node_ports"].append(",".join(map(str, i.node_ports)))
        rows["chain"].append(i.cluster_chain or i.local_chain)
        rows["hash_ok"].append(i.hash_ok)
        rows["endpoint_list"].append(",".join(e.address for e in (i.endpoints or i.local_endpoints)))
        rows["state"].append(i.cluster_state)
        rows["external_state"].append(i.external_state)
        rows["source_ranges"].append(",".join(i.source_ranges))
    return pl.DataFrame(
        rows,
        schema={
            "service": pl.String, "protocol": pl.String, "cluster_ip": pl.String, "port": pl.Int64,
            "endpoints": pl.Int64, "local_endpoints": pl.Int64, "affinity": pl.String,
            "affinity_timeout_s": pl.Int64, "internal_policy": pl.String, "external_policy": pl.String,
            "external": pl.String, "node_ports": pl.String, "chain": pl.String, "hash_ok": pl.Boolean,
            "endpoint_list": pl.String, "state": pl.String, "external_state": pl.String, "source_ranges": pl.String,
        },
    )  # fmt: skip


#: Default columns of :func:`endpoints_frame` (``services --service``).
ENDPOINTS_COLUMNS = (
    Column("ENDPOINT", "endpoint", shrink=True),
    Column("SHARE", "share", shrink=True),
    Column("P", "p", sig(6), "right"),
    Column("THRESHOLD", "threshold", text, "right"),
    Column("SLOTS", "slots", lambda v: v or "-", shrink=True),
    Column("CHAIN", "chain", shrink=True),
)


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


#: Default columns of :func:`counters_frame` (``check --iptables``); chains, lines and the cascade's
#: rule probabilities in ``--wide``.
COUNTERS_COLUMNS = (
    Column("ENDPOINT", "endpoint", shrink=True),
    Column("OBSERVED", "observed", count, "right"),
    Column("SHARE", "observed_share", sig(4), "right"),
    Column("EXPECTED", "expected", count, "right"),
    Column("P-VALUE", "pvalue", sig(3), "right"),
    Column("STEP P-VALUE", "step_pvalue", sig(3), "right"),
)


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
