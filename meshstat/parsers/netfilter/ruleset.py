"""The netfilter structures every dialect parser produces: rulesets, tables, chains, rules.

:class:`Ruleset` holds :class:`Table` objects by ``(family, name)``; a table holds
:class:`Chain` objects (built-in ones with their policy, nft base chains with type,
hook and priority) and, for nft, its named sets and maps (:class:`NftSet` of
:class:`NftElement`); a chain holds :class:`Rule` objects, each a tuple of
:class:`Match` conditions and one :class:`Target`, with the file and line it came
from. Addresses are :class:`Net` prefixes. What a parser kept without
understanding it is listed as :class:`ParseWarning`.

The same structures come from ``iptables-save`` text
(:mod:`meshstat.parsers.netfilter.iptables_save`), ``iptables -L`` listings and
pasted dumps (:mod:`meshstat.parsers.netfilter.iptables_list`) and nftables
rulesets (:mod:`meshstat.parsers.netfilter.nft`); :mod:`meshstat.netfilter`
traces packets through them.

Pure Python, standard library only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple

__all__ = [
    "BUILTIN_CHAINS",
    "FREEZE_RULES",
    "TABLE_PRIORITY",
    "Chain",
    "Match",
    "Net",
    "NftElement",
    "NftSet",
    "ParseWarning",
    "Rule",
    "Ruleset",
    "Table",
    "Target",
]

#: Built-in chains of every iptables table (present even when not declared).
BUILTIN_CHAINS: dict[str, tuple[str, ...]] = {
    "raw": ("PREROUTING", "OUTPUT"),
    "mangle": ("PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"),
    "nat": ("PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"),
    "filter": ("INPUT", "FORWARD", "OUTPUT"),
    "security": ("INPUT", "FORWARD", "OUTPUT"),
}

#: Hook priorities of the iptables tables (``include/uapi/linux/netfilter_ipv4.h``:
#: ``NF_IP_PRI_RAW`` -300, ``MANGLE`` -150, ``NAT_DST`` -100, ``FILTER`` 0,
#: ``SECURITY`` 50, ``NAT_SRC`` 100).
TABLE_PRIORITY: dict[str, int] = {"raw": -300, "mangle": -150, "nat": -100, "filter": 0, "security": 50}

#: Above this many rules the parsed objects are frozen out of the cyclic GC (``gc.freeze``).
FREEZE_RULES = 20_000


class ParseWarning(NamedTuple):
    """Something kept but not understood (an opaque match or target)."""

    source: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.source}:{self.line}: {self.message}"


class Net(NamedTuple):
    """An address prefix: IP version, network as an integer, prefix length, text."""

    version: int
    network: int
    prefixlen: int
    text: str

    def contains(self, version: int, addr: int) -> bool:
        """Whether the address ``addr`` (of IP ``version``) lies in this prefix."""
        if version != self.version:
            return False
        shift = (32 if version == 4 else 128) - self.prefixlen
        return (addr >> shift) == (self.network >> shift)

    def covers(self, other: Net) -> bool:
        """Whether every address of ``other`` is in this prefix."""
        return other.version == self.version and other.prefixlen >= self.prefixlen and self.contains(
            other.version, other.network
        )

    def overlaps(self, other: Net) -> bool:
        """Whether the two prefixes share at least one address."""
        return self.covers(other) or other.covers(self)


class Match(NamedTuple):
    """One condition of a rule.

    ``kind`` names the condition (``"src"``, ``"dst"``, ``"proto"``, ``"in_if"``,
    ``"out_if"``, ``"sport"``, ``"dport"``, ``"multiport"``, ``"random"``,
    ``"nth"``, ``"uid"``, ``"gid"``, ``"socket"``, ``"mark"``, ``"connmark"``,
    ``"recent"``, ``"addrtype"``, ``"ctstate"``, ``"syn"``, ``"fragment"``,
    ``"always"`` for matches that only count or annotate (``comment``,
    ``nfacct``), ``"opaque"`` for what meshstat does not model, plus the nft
    kinds ``"set"``, ``"fib"``, ``"l4proto"``); ``value`` is its parsed
    argument (``"addrtype"`` and ``"fib"``: ``(side, types, iface)`` with side
    ``"src"``/``"dst"``, upper-case types and iface ``None``, ``"in"`` or
    ``"out"`` for a lookup limited to that device); ``text`` the original words
    (for display).
    """

    kind: str
    negated: bool
    value: Any
    text: str


class Target(NamedTuple):
    """What a rule does when it matches.

    ``kind`` is ``"jump"``, ``"goto"``, ``"return"``, ``"accept"``, ``"drop"``,
    ``"reject"``, ``"dnat"``, ``"snat"``, ``"redirect"``, ``"masquerade"``,
    ``"mark"``, ``"connmark"``, ``"tproxy"``, ``"ct"``, ``"log"``, ``"none"``
    (no target: the rule only counts), ``"opaque"`` (unknown target), or the nft
    kinds ``"vmap"``, ``"numgen"``, ``"dnat_map"``, ``"continue"``.
    """

    kind: str
    value: Any
    text: str


@dataclass(slots=True, eq=False)
class Rule:
    """One rule, with the file and line it came from.

    Rules of the common kube-proxy shapes are read as a subclass whose ``matches``
    and ``target`` are built on first access (see "Performance" in
    :mod:`meshstat.parsers.netfilter.iptables_save`); they behave as any rule.
    """

    table: str
    chain: str
    line: int
    source: str
    text: str
    matches: tuple[Match, ...]
    target: Target
    comment: str | None = None
    #: nft side effects applied when the rule matches (``update @set``), or
    #: ``-m recent --set`` list names.
    sets_updated: tuple[str, ...] = ()

    @property
    def where(self) -> str:
        """``file:line``."""
        return f"{self.source}:{self.line}"


@dataclass(slots=True, eq=False)
class Chain:
    """A chain: its rules in order, its policy (built-in chains) or ``None``."""

    name: str
    rules: list[Rule] = field(default_factory=list)
    policy: str | None = None
    builtin: bool = False
    line: int | None = None
    #: nft base chains: ``type``, ``hook`` and ``priority``.
    chain_type: str | None = None
    hook: str | None = None
    priority: int | None = None
    #: lazily built index: exact destination address -> rule positions (see netfilter)
    dst_index: Any = None


@dataclass(slots=True, eq=False)
class Table:
    """A table of one address family: chains by name, plus nft sets and maps."""

    name: str
    family: str
    chains: dict[str, Chain] = field(default_factory=dict)
    line: int | None = None
    #: chain name -> rules that jump or go to it (for reverse lookups)
    referrers: dict[str, list[Rule]] = field(default_factory=dict)
    #: nft named sets and maps: name -> NftSet
    sets: dict[str, Any] = field(default_factory=dict)

    def chain(self, name: str) -> Chain | None:
        """The chain called ``name``, or ``None``."""
        return self.chains.get(name)


@dataclass(slots=True, eq=False)
class Ruleset:
    """Parsed netfilter rules of one dump.

    Attributes
    ----------
    dialect : {"iptables", "nft"}
    source : str
        File name (``"<stdin>"`` for standard input).
    tables : dict
        ``(family, table name) -> Table``; families are ``"ip"``/``"ip6"`` (and
        ``"inet"`` for nft).
    warnings : list of ParseWarning
        Opaque matches and targets, with their lines.
    """

    dialect: str
    source: str
    tables: dict[tuple[str, str], Table] = field(default_factory=dict)
    warnings: list[ParseWarning] = field(default_factory=list)
    #: caches used by meshstat.netfilter (service index)
    cache: dict[str, Any] = field(default_factory=dict)

    def table(self, name: str, family: str | None = None) -> Table | None:
        """The table ``name`` of ``family`` (any family when ``None``; IPv4 first)."""
        if family is not None:
            return self.tables.get((family, name))
        for fam in ("ip", "inet", "ip6"):
            t = self.tables.get((fam, name))
            if t is not None:
                return t
        for (_fam, tname), t in self.tables.items():
            if tname == name:
                return t
        return None

    @property
    def rule_count(self) -> int:
        """Number of rules in all tables."""
        return sum(len(c.rules) for t in self.tables.values() for c in t.chains.values())


# --------------------------------------------------------------------------- nft sets and maps


class NftElement(NamedTuple):
    """One element of a set or map: key components, data (map) and comment."""

    key: tuple[tuple[str, Any], ...]
    data: Any
    comment: str | None
    line: int


@dataclass(slots=True, eq=False)
class NftSet:
    """A named set or map."""

    name: str
    is_map: bool
    key_type: str = ""
    data_type: str | None = None
    flags: frozenset[str] = frozenset()
    timeout: int | None = None
    elements: list[NftElement] = field(default_factory=list)
    comment: str | None = None
    line: int | None = None

    @property
    def dynamic(self) -> bool:
        """Filled at run time (``flags dynamic`` or a timeout): its content is unknown."""
        return "dynamic" in self.flags or (self.timeout is not None and not self.elements)

    def contains_addr(self, version: int, addr: int) -> bool:
        """Whether an address is among the (single-component) elements."""
        for el in self.elements:
            c = el.key[0]
            if c[0] == "addr" and c[1].contains(version, addr):
                return True
        return False
