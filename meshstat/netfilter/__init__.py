"""Netfilter rulesets: reading dumps and tracing packets with exact probabilities.

:mod:`meshstat.netfilter.reader`
    :func:`load` reads ``iptables-save`` output, ``iptables -L`` listings,
    damaged pastes and ``nft`` rulesets (parsed by :mod:`meshstat.parsers`).
:mod:`meshstat.netfilter.tracer`
    :func:`trace` walks one packet through every table and hook it crosses and
    lists every path with its exact probability, the rules it passed and its
    verdict, and what it did not walk; :func:`nth_matches`.
:mod:`meshstat.netfilter.hooks`
    The base chains of each hook in the kernel's order, and the ways after the
    routing decision.
:mod:`meshstat.netfilter.split`
    :func:`chain_split`: the exact split of one chain over its outcomes, read
    with the tracer (:class:`ChainSplit`, a model stage).

nft's ``numgen`` split is a model stage (:mod:`meshstat.model.numgen`), re-exported here.

kube-proxy's services (iptables, nftables and IPVS modes) are read by
:mod:`meshstat.kubeproxy`, built on this package; listing counters are checked
against a service's split by :mod:`meshstat.inference.counters`.
"""

from __future__ import annotations

from meshstat.model.numgen import Numgen, numgen_range_count, numgen_slot_counts
from meshstat.netfilter.reader import Ruleset, load, parse_iptables, parse_nft
from meshstat.netfilter.split import ChainSplit, ChainSplitResult, chain_split
from meshstat.netfilter.tracer import (
    MAX_DEPTH,
    MAX_PATHS,
    Condition,
    Packet,
    TracePath,
    TraceResult,
    TraceStep,
    Verdict,
    nth_matches,
    trace,
)

__all__ = [
    "MAX_DEPTH",
    "MAX_PATHS",
    "ChainSplit",
    "ChainSplitResult",
    "Condition",
    "Numgen",
    "Packet",
    "Ruleset",
    "TracePath",
    "TraceResult",
    "TraceStep",
    "Verdict",
    "chain_split",
    "load",
    "nth_matches",
    "numgen_range_count",
    "numgen_slot_counts",
    "parse_iptables",
    "parse_nft",
    "trace",
]
