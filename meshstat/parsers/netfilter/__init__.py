"""Netfilter text -> rulesets: ``iptables-save``, ``iptables -L`` listings, pasted dumps, nftables.

Every dialect produces the structures of :mod:`~meshstat.parsers.netfilter.ruleset`
(:class:`Ruleset` of :class:`Table`, :class:`Chain`, :class:`Rule`, :class:`Match`,
:class:`Target`), each rule with its file and line; :mod:`meshstat.netfilter`
traces packets through them and reads kube-proxy services from them.

``ruleset``
    The shared structures (also nft's named sets and maps, :class:`NftSet`).
``rules``
    The shared rule builder: ``iptables-save`` words -> :class:`Rule`
    (:func:`split_rule`, :func:`parse_cidr`, the match and target builders).
``iptables_save``
    ``iptables-save`` / ``ip6tables-save`` output and ``iptables-restore`` input
    (:func:`parse_iptables`).
``iptables_list``
    ``iptables -L`` listings and pasted, damaged or partial ``iptables-save`` text
    (:func:`parse_iptables_list`, :func:`parse_iptables_paste`,
    :func:`sniff_iptables_text`).
``nft``
    ``nft list ruleset`` output and ``nft -f`` transactions (:func:`parse_nft`).
``ipvsadm``
    ``ipvsadm -ln`` output: IPVS virtual servers and their real servers
    (:func:`parse_ipvsadm_servers`).

Pure Python, standard library only.
"""

from __future__ import annotations

from meshstat.parsers.netfilter.iptables_list import (
    Counters,
    ListingInfo,
    listing_info,
    parse_iptables_list,
    parse_iptables_paste,
    probability_threshold_candidates,
    rule_counters,
    sniff_iptables_text,
    to_iptables_save,
)
from meshstat.parsers.netfilter.iptables_save import SAVE_COUNTERS_KEY, parse_iptables
from meshstat.parsers.netfilter.ipvsadm import RealServer, VirtualServer, parse_ipvsadm_servers
from meshstat.parsers.netfilter.nft import flat_targets, parse_nft
from meshstat.parsers.netfilter.rules import parse_cidr, split_rule
from meshstat.parsers.netfilter.ruleset import (
    BUILTIN_CHAINS,
    TABLE_PRIORITY,
    Chain,
    Match,
    Net,
    NftElement,
    NftSet,
    ParseWarning,
    Rule,
    Ruleset,
    Table,
    Target,
)

__all__ = [
    "RealServer",
    "VirtualServer",
    "parse_ipvsadm_servers",
    "BUILTIN_CHAINS",
    "SAVE_COUNTERS_KEY",
    "TABLE_PRIORITY",
    "Chain",
    "Counters",
    "ListingInfo",
    "Match",
    "Net",
    "NftElement",
    "NftSet",
    "ParseWarning",
    "Rule",
    "Ruleset",
    "Table",
    "Target",
    "flat_targets",
    "listing_info",
    "parse_cidr",
    "parse_iptables",
    "parse_iptables_list",
    "parse_iptables_paste",
    "parse_nft",
    "probability_threshold_candidates",
    "rule_counters",
    "sniff_iptables_text",
    "split_rule",
    "to_iptables_save",
]
