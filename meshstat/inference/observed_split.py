"""The configured split of observed traffic, and the observed keys laid onto it.

:func:`split_from_weights` (``--weights``, ``--names``) and :func:`split_from_route`
(a route from manifests or an Envoy dump, grouped by what the data's keys are:
clusters, hosts or versions) give a :class:`ConfiguredSplit`; :func:`match_split`
lays the keys of an :class:`~meshstat.inference.observed_traffic.ObservedTraffic`
onto it. Responses that reached no backend are outcomes of their own: a route
predicts them as leaves (503 UH of an empty cluster, 503 NC of a missing one,
404 NR, direct responses), ``--weights`` predicts none.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

from meshstat.errors import InvalidArgument
from meshstat.inference.observed_traffic import ObservedTraffic, is_outcome_name
from meshstat.mesh.registry import version_of
from meshstat.model import Backend, Route, Stage, smallest_integer_weights
from meshstat.parsers.observed.envoy_stats import istio_cluster

__all__ = ["ConfiguredSplit", "MatchedSplit", "match_split", "split_from_route", "split_from_weights"]


@dataclass(frozen=True)
class ConfiguredSplit:
    """The split the counts are checked against: names, integer weights, and which names are backends.

    ``origin`` says where it came from (``"--weights"`` or the route's name).
    """

    names: tuple[str, ...]
    weights: tuple[int, ...]
    routed: tuple[bool, ...]
    origin: str
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class MatchedSplit:
    """Observed counts laid onto a configured split (possibly with not-routed outcomes of weight 0 added)."""

    names: tuple[str, ...]
    weights: tuple[int, ...]
    routed: tuple[bool, ...]
    counts: tuple[int, ...]
    window_counts: tuple[tuple[int, ...], ...]
    keys: tuple[tuple[str, ...], ...]
    warnings: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()


def split_from_weights(
    weights: Sequence[int | str], names: Sequence[str] | None, traffic: ObservedTraffic
) -> ConfiguredSplit:
    """``--weights`` (and ``--names``); without names, the data's backends in natural order (noted)."""
    notes: list[str] = []
    if names is None:
        keys = traffic.keys(routed=True)
        shown = []
        for k in keys:
            als = traffic.aliases[k]
            short = als[1] if len(als) > 1 and traffic.by == "cluster" else k
            shown.append(short)
        if len(set(shown)) != len(shown):
            shown = list(keys)
        if len(shown) != len(weights):
            raise InvalidArgument(
                f"the data has {len(shown)} backend(s) ({', '.join(shown) or 'none'}) but --weights "
                f"has {len(weights)}: give --names in the order of --weights"
            )
        names = shown
        if len(shown) > 1:
            notes.append(f"--weights taken in the order {', '.join(shown)} (natural order; --names sets it)")
    names = [str(n) for n in names]
    if len(names) != len(weights):
        raise InvalidArgument(f"{len(names)} names for {len(weights)} weights")
    ws = []
    for w in weights:
        try:
            ws.append(int(str(w)))
        except ValueError:
            raise InvalidArgument(f"weights must be integers, got {w!r}") from None
    return ConfiguredSplit(
        tuple(names), tuple(ws), tuple(not is_outcome_name(n) for n in names), "--weights", tuple(notes)
    )


def _tokens(name: str) -> list[str]:
    return [t.strip("()") for t in name.split()]


def _leaf_outcome(b: Backend) -> str | None:
    """The not-routed outcome a model leaf stands for, or None for a backend."""
    outcome = dict(b.labels).get("outcome")
    if outcome is None or outcome in ("passthrough", "redirect"):
        return None
    n = b.name
    if n.startswith(("503 no_healthy_upstream", "503 no locality weight")):
        return "503 UH"
    if n.startswith("503 NC"):
        return "503 NC"
    if n.startswith("404"):
        return "404 NR"
    m = re.match(r"direct_response (\d+)", n)
    if m:
        return f"{m.group(1)} direct response"
    if re.fullmatch(r"\d{3}", outcome):
        return f"{outcome} no backend"
    return n


def split_from_route(route: Route, by: str, traffic: ObservedTraffic) -> ConfiguredSplit:
    """A route's exact shares grouped by what the data's keys are (clusters, hosts or versions).

    Leaves that are not backends (503 UH/NC, 404 NR, direct responses) are
    outcomes of their own, as the model predicts them.
    """
    known = {a for k in traffic.totals for a in traffic.aliases[k]}
    acc: dict[str, Fraction] = {}
    routed: dict[str, bool] = {}
    notes: list[str] = []

    def walk(node: object, path: list[str], share: Fraction) -> None:
        if isinstance(node, Backend):
            out = _leaf_outcome(node)
            if out is not None:
                cat, r = out, False
            elif by == "version":
                v = version_of(node.labels)
                if v == "-":  # endpoints of a dump without labels: the subset of its Istio cluster
                    subsets = [
                        ic.subset for p in path for t in _tokens(p) if (ic := istio_cluster(t)) and ic.subset
                    ]
                    if subsets:
                        v = subsets[-1]
                        notes.append(
                            "versions read from the subsets of the Istio cluster names "
                            "(outbound|PORT|SUBSET|HOST): the endpoints have no version label"
                        )
                cat, r = ("unknown" if v == "-" else v), True
            elif by == "host":
                cat, r = (node.address or node.name), True
            elif by == "cluster":
                cands = [t for p in path for t in _tokens(p) if t in known]
                if not cands:
                    cands = [
                        t
                        for p in path
                        for t in _tokens(p)
                        if "|" in t or (p.split()[0].isupper() and t != p.split()[0])
                    ]
                cat, r = (cands[-1] if cands else node.name), True
            else:
                raise InvalidArgument("a route is matched by cluster, host or version, not by workload")
            acc[cat] = acc.get(cat, Fraction(0)) + share
            routed[cat] = r
            return
        assert isinstance(node, Stage)
        for child, s in zip(node.children, node.shares(), strict=True):
            walk(child, [*path, node.name or ""], share * s)

    walk(route.root, [], Fraction(1))
    names = tuple(acc)
    ws = smallest_integer_weights(list(acc.values()))
    if all((x * 100).denominator == 1 for x in acc.values()):  # percent, as VirtualServices write them
        ws = tuple(int(x * 100) for x in acc.values())
    if sum(ws) > 0xFFFFFFFF:
        raise InvalidArgument(
            f"the route {route.name!r} has exact shares whose integer weights exceed Envoy's range "
            "(an iptables cascade): check the counts with --weights"
        )
    return ConfiguredSplit(
        names, tuple(ws), tuple(routed[n] for n in names), route.name or "route", tuple(dict.fromkeys(notes))
    )


def match_split(
    traffic: ObservedTraffic, split: ConfiguredSplit, *, exclude_unrouted: bool = False
) -> MatchedSplit:
    """Lay the observed keys onto the split's names.

    A key goes to the name among its aliases (an outcome ``direct response`` of
    Envoy's counters to a name ``<code> direct response``). Routed keys that match
    no name are left out with a warning; not-routed outcomes that the split
    lacks become names of weight 0 (the model predicts none), or are left out
    with a warning when ``exclude_unrouted``; a connection manager's outcomes
    (every service behind a listener) are used only where the split has them.
    """
    names = list(split.names)
    weights = list(split.weights)
    routed = list(split.routed)
    keys_of: list[list[str]] = [[] for _ in names]
    warnings: list[str] = []
    notes = list(split.notes)
    for k in traffic.totals:
        als = traffic.aliases[k]
        hits = [
            i
            for i, n in enumerate(names)
            if n in als or (k == "direct response" and n.endswith(" direct response"))
        ]
        if len(hits) > 1:
            raise InvalidArgument(
                f"{k} matches several backends of the split ({', '.join(names[i] for i in hits)})"
            )
        n_obs = traffic.totals[k]
        if hits:
            keys_of[hits[0]].append(k)
            continue
        if traffic.scope[k] == "listener":
            if n_obs and k != "direct response":  # health checks, redirects: no route's split
                w = traffic.where[k]
                notes.append(
                    f"{n_obs} request(s) {k} counted by whole connection managers ({w[0]}"
                    f"{f' and {len(w) - 1} more' if len(w) > 1 else ''}): not attributable to this service, "
                    "left out (the split has no such outcome)"
                )
            continue
        if traffic.routed[k]:
            if n_obs:
                warnings.append(
                    f"{n_obs} request(s) to {k} ({traffic.where[k][0]}) match no backend of the split "
                    f"({', '.join(split.names)}): left out"
                )
            continue
        if not n_obs:
            continue
        if exclude_unrouted:
            warnings.append(
                f"{n_obs} response(s) {k} reached no backend: left out of the test (--exclude-unrouted)"
            )
            continue
        names.append(k)
        weights.append(0)
        routed.append(False)
        keys_of.append([k])
        notes.append(
            f"{n_obs} response(s) {k} reached no backend; the configured split predicts none, so they are an "
            "outcome of weight 0 (--exclude-unrouted leaves them out)"
        )
    for i, n in enumerate(names):
        if not keys_of[i] and weights[i] > 0:
            warnings.append(f"no series for {n} in the data: counted as 0")
    counts = tuple(sum(traffic.totals[k] for k in ks) for ks in keys_of)
    wcounts = tuple(tuple(sum(w.counts.get(k, 0) for k in ks) for ks in keys_of) for w in traffic.windows)
    return MatchedSplit(
        tuple(names),
        tuple(weights),
        tuple(routed),
        counts,
        wcounts,
        tuple(tuple(ks) for ks in keys_of),
        tuple(warnings),
        tuple(notes),
    )
