"""Parser for ``iptables-save`` output and ``iptables-restore`` input (IPv4 and IPv6).

Upstream format
---------------
The text read and written by ``iptables-save`` / ``iptables-restore`` (and their
``ip6tables-*`` twins) of iptables 1.8.9, both back ends (``nf_tables`` and
``legacy``): ``*table`` headers, ``:CHAIN POLICY [packets:bytes]`` declarations,
``-A CHAIN <rule>`` lines, ``COMMIT``. Both forms are accepted (see
``reference/iptables-kube-proxy.md`` §2.2): what kube-proxy writes (options in its
own order, ``--probability 0.3333333333``, ``MARK --or-mark``) and what
``iptables-save`` prints back (normalised order, ``-d X/32``,
``--probability 0.33333333349``, ``MARK --set-xmark``). Quoting follows
``iptables-restore``'s ``add_param_to_argv``: double quotes group words and
``\\"`` escapes a quote; single quotes are ordinary characters.

Supported subset
----------------
Tables ``raw``, ``mangle``, ``nat``, ``filter``, ``security``; commands ``-A``,
``-I`` (with optional position), ``-N``, ``-X``, ``-F``, ``-P`` and ``[p:b]`` /
``-c p b`` counters. Matches: ``-s/-d`` (CIDR, comma lists, ``!``), ``-p``,
``-i/-o`` (``+`` wildcard), ``-f``, ``-m tcp|udp|sctp`` (``--sport/--dport`` with
ranges, ``--syn``, ``--tcp-flags``), ``multiport``, ``comment``, ``statistic``
(``random`` and ``nth``), ``owner``, ``mark``, ``connmark``, ``recent``,
``addrtype``, ``conntrack`` (``--ctstate``), ``state``, ``nfacct``. Targets: user
chains (``-j``/``-g``), ``RETURN``, ``ACCEPT``, ``DROP``, ``REJECT``, ``DNAT``,
``SNAT``, ``REDIRECT``, ``MASQUERADE``, ``MARK``, ``CONNMARK``, ``TPROXY``, ``CT``,
``LOG``. Any other match or target is kept as *opaque* (its text and line) and
reported in :attr:`Ruleset.warnings`; it is never dropped silently.

``--probability p`` is stored as the kernel's integer ``k = lround(p * 2**31)``
(:func:`meshstat.model.probability_to_threshold`), never as the decimal.

Sources: iptables ``iptables/iptables-restore.c`` and ``iptables/xshared.c``
(``add_param_to_argv``), ``extensions/libxt_statistic.c`` (``statistic_parse``:
``lround(0x80000000 * p)``), ``extensions/libxt_MARK.c`` (``--set-mark v/m`` is
``--set-xmark v/(v|m)``), kernel ``net/netfilter/xt_statistic.c``
(``statistic_mt``), ``net/netfilter/xt_owner.c``, ``net/netfilter/xt_recent.c``.
kube-proxy's output: kubernetes ``pkg/proxy/iptables/proxier.go``.

Performance
-----------
A kube-proxy dump is hundreds of thousands of lines of five shapes (a new chain
``:KUBE-SEP-X - [0:0]``; per endpoint ``-s IP/32 ... -j KUBE-MARK-MASQ`` and
``-p tcp ... -j DNAT --to-destination IP:PORT``; per service the cascade steps
``-m comment ... [-m statistic --mode random --probability P] -j KUBE-SEP-X`` and
the portal ``[! -s CIDR] -d IP/32 -p tcp ... --dport N -j KUBE-SVC-X``). The
parser is built around them (the benchmark's 10,000 services, 334,804 rules:
1.05 s of CPU at best on the 2-core development machine, where the eager parser
this replaced took 2.9 s):

* One precompiled regular expression (``_LINE``) is run over the whole text with
  ``finditer``: its last alternative takes any line, so the n-th match is line n,
  and ``m.lastindex`` says which shape matched. Lines of no fast shape go to the
  general parser (:class:`_Parser`) one by one, exactly as before.
* A fast shape is fully validated by the expression itself: octets 0-255,
  prefix lengths 0-32 and ports 0-65535 are matched strictly, a probability must
  convert, the chain must exist; otherwise the line takes the general path,
  which reports the error. Jump targets are checked at ``COMMIT`` once per
  target name (:func:`_resolve`), as the general parser does per rule.
* Such a rule is created as a :class:`_LazyRule`: table, chain and line are set
  and it is entered in its chain and in the referrers of its target, but its
  text, comment, :class:`Match` and :class:`Target` objects are built from its
  line on first access, and are then those the general parser builds (a test
  compares the two paths line by line). A service lookup or a trace reads a few
  dozen rules, so most are never built; not copying the lines also halves the
  memory the parse allocates.
* Consecutive rules usually share their chain and often their target: the last
  ones are remembered instead of looked up again.
* The cyclic garbage collector is paused during the parse.

What remains is the regular expression (about a third), creating the chains
and rule objects and the bookkeeping per rule. Building every rule afterwards
(as listing all services does) costs about 9 µs a rule, a little more than the
eager parse did, as each line is matched twice; do it with the cyclic
collector paused (as :func:`meshstat.netfilter.services` does).

See Also
--------
meshstat.parsers.nft : the nftables dialect, producing the same structures.
meshstat.netfilter : tracing a packet and reading kube-proxy services.
"""

from __future__ import annotations

import gc
import ipaddress
import re
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from meshstat.errors import ConfigParseError
from meshstat.model import probability_to_threshold

__all__ = [
    "BUILTIN_CHAINS",
    "Chain",
    "Match",
    "Net",
    "ParseWarning",
    "Rule",
    "Ruleset",
    "Table",
    "Target",
    "parse_cidr",
    "parse_iptables",
    "split_rule",
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

_TERMINAL_BUILTIN = {"ACCEPT", "DROP", "RETURN", "REJECT"}
_KNOWN_TARGETS = {
    "ACCEPT", "DROP", "RETURN", "REJECT", "DNAT", "SNAT", "REDIRECT", "MASQUERADE",
    "MARK", "CONNMARK", "TPROXY", "CT", "LOG",
}  # fmt: skip

_MODULE_MEMO: dict[Any, Any] = {}
#: Above this many rules the parsed objects are frozen out of the cyclic GC (``gc.freeze``).
_FREEZE_RULES = 20_000

# Target extensions that may appear without options; any other unknown ``-j NAME``
# that is not a declared chain is an error, as in iptables-restore.
_OPTIONLESS_EXTENSIONS = {
    "NOTRACK", "TRACE", "AUDIT", "CLASSIFY", "NFLOG", "NFQUEUE", "SECMARK", "CONNSECMARK", "TCPMSS",
    "TOS", "DSCP", "TTL", "HL", "CHECKSUM", "SYNPROXY", "IDLETIMER", "LED", "RATEEST", "SET", "TEE",
    "NETMAP", "HMARK", "ULOG", "CLUSTERIP", "ECN", "QUEUE", "FLOWOFFLOAD",
}  # fmt: skip

# Options each supported match module understands, with their value count.
_PORT_OPTS = {"--sport": 1, "--source-port": 1, "--dport": 1, "--destination-port": 1}
_MODULE_OPTS: dict[str, dict[str, int]] = {
    "tcp": {**_PORT_OPTS, "--syn": 0, "--tcp-flags": 2, "--tcp-option": 1},
    "udp": dict(_PORT_OPTS),
    "sctp": dict(_PORT_OPTS),
    "udplite": dict(_PORT_OPTS),
    "multiport": {
        "--dports": 1, "--destination-ports": 1, "--sports": 1, "--source-ports": 1, "--ports": 1,
    },
    "comment": {"--comment": 1},
    "statistic": {"--mode": 1, "--probability": 1, "--every": 1, "--packet": 1},
    "owner": {"--uid-owner": 1, "--gid-owner": 1, "--socket-exists": 0, "--suppl-groups": 0},
    "mark": {"--mark": 1},
    "connmark": {"--mark": 1},
    "recent": {
        "--name": 1, "--set": 0, "--rcheck": 0, "--update": 0, "--remove": 0, "--seconds": 1,
        "--hitcount": 1, "--reap": 0, "--rttl": 0, "--mask": 1, "--rsource": 0, "--rdest": 0,
    },
    "addrtype": {"--src-type": 1, "--dst-type": 1, "--limit-iface-in": 0, "--limit-iface-out": 0},
    "conntrack": {"--ctstate": 1},
    "state": {"--state": 1},
    "nfacct": {"--nfacct-name": 1},
}  # fmt: skip
_PROTO_ALIASES = {"6": "tcp", "17": "udp", "1": "icmp", "58": "ipv6-icmp", "132": "sctp", "0": "all",
                  "icmpv6": "ipv6-icmp", "136": "udplite"}  # fmt: skip


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
    argument; ``text`` the original words (for display).
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


_NO_TARGET = Target("none", None, "")


@dataclass(slots=True, eq=False)
class Rule:
    """One rule, with the file and line it came from.

    Rules of the common kube-proxy shapes are read as a subclass whose ``matches``
    and ``target`` are built on first access (see "Performance" in
    :mod:`meshstat.parsers.iptables`); they behave as any rule.
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
    #: nft named sets and maps: name -> meshstat.parsers.nft.NftSet
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


# --------------------------------------------------------------------------- tokenizer


def split_rule(line: str) -> tuple[list[str], set[int] | None]:
    """Split a rule line into words as ``iptables-restore`` does.

    Double quotes group words (``--comment "a b"``) and ``\\"`` inside them is a
    literal quote; everything else splits on white space. Returns the words and
    the set of indices of words that were quoted (``None`` when none were), so
    that a quoted ``"-x"`` is never taken for an option.

    Raises
    ------
    ValueError
        On an unterminated quote.
    """
    if '"' not in line:
        return line.split(), None
    if "\\" not in line:
        parts = line.split('"')
        if len(parts) % 2 == 0:
            raise ValueError("unterminated double quote")
        words: list[str] = []
        quoted: set[int] = set()
        ok = True
        for i, part in enumerate(parts):
            if i % 2 == 0:
                if i > 0 and part and not part[0].isspace():
                    ok = False
                    break
                if i < len(parts) - 1 and part and not part[-1].isspace():
                    ok = False
                    break
                words.extend(part.split())
            else:
                quoted.add(len(words))
                words.append(part)
        if ok:
            return words, quoted
    return _split_slow(line)


def _split_slow(line: str) -> tuple[list[str], set[int] | None]:
    words: list[str] = []
    quoted: set[int] = set()
    buf: list[str] = []
    in_quote = False
    was_quoted = False
    have = False
    i = 0
    n = len(line)
    while i < n:
        c = line[i]
        if c == "\\" and i + 1 < n and line[i + 1] == '"':
            buf.append('"')
            have = True
            i += 2
            continue
        if c == '"':
            in_quote = not in_quote
            was_quoted = True
            have = True
        elif c.isspace() and not in_quote:
            if have:
                if was_quoted:
                    quoted.add(len(words))
                words.append("".join(buf))
                buf.clear()
                have = was_quoted = False
        else:
            buf.append(c)
            have = True
        i += 1
    if in_quote:
        raise ValueError("unterminated double quote")
    if have:
        if was_quoted:
            quoted.add(len(words))
        words.append("".join(buf))
    return words, quoted or None


# --------------------------------------------------------------------------- value parsers

_NET_CACHE: dict[str, Net] = {}


def parse_cidr(text: str) -> Net:
    """Parse ``"10.0.0.0/8"``, ``"10.1.2.3"``, ``"fd00::/8"`` or ``"10.0.0.0/255.0.0.0"``.

    Raises
    ------
    ValueError
        If ``text`` is not an address or prefix.
    """
    hit = _NET_CACHE.get(text)
    if hit is not None:
        return hit
    addr, _, plen = text.partition("/")
    if ":" not in addr:
        octets = addr.split(".")
        if len(octets) != 4:
            raise ValueError(text)
        value = 0
        for o in octets:
            if not o.isdigit() or len(o) > 3:
                raise ValueError(text)
            b = int(o)
            if b > 255:
                raise ValueError(text)
            value = (value << 8) | b
        if not plen:
            prefix = 32
        elif plen.isdigit():
            prefix = int(plen)
        else:  # dotted mask (iptables accepts it)
            prefix = parse_cidr(plen + "/32").network.bit_count()
        if prefix > 32:
            raise ValueError(text)
        value &= ((1 << 32) - 1) ^ ((1 << (32 - prefix)) - 1)
        net = Net(4, value, prefix, text)
    else:
        nw = ipaddress.IPv6Network(text, strict=False)
        net = Net(6, int(nw.network_address), nw.prefixlen, text)
    if len(_NET_CACHE) < 200_000:
        _NET_CACHE[text] = net
    return net


def _port_range(text: str) -> tuple[int, int]:
    lo, sep, hi = text.partition(":")
    if not sep:
        lo, sep, hi = text.partition("-")
    a = int(lo) if lo else 0
    b = (int(hi) if hi else 65535) if sep else a
    if not (0 <= a <= 65535 and 0 <= b <= 65535) or a > b:
        raise ValueError(text)
    return a, b


def _int(text: str) -> int:
    return int(text, 0)


def _mark_mask(text: str, default_mask: int = 0xFFFFFFFF) -> tuple[int, int]:
    v, sep, m = text.partition("/")
    return _int(v), (_int(m) if sep else default_mask)


def _id_range(text: str) -> tuple[int, int]:
    lo, sep, hi = text.partition("-")
    a = int(lo)
    b = int(hi) if sep else a
    if a > b or a < 0:
        raise ValueError(text)
    return a, b


# --------------------------------------------------------------------------- the parser


class _Ctx:
    __slots__ = ("counters", "line", "source", "text", "warnings")

    def __init__(self, source: str, warnings: list[ParseWarning]) -> None:
        self.source = source
        self.warnings = warnings
        self.line = 0
        self.text = ""
        #: ``Rule -> (packets, bytes)`` from ``[p:b]`` prefixes (``iptables-save -c``)
        self.counters: dict[Rule, tuple[int, int]] = {}

    def error(self, message: str, snippet: str | None = None) -> ConfigParseError:
        return ConfigParseError(message, source=self.source, line=self.line, snippet=snippet)

    def warn(self, message: str) -> None:
        self.warnings.append(ParseWarning(self.source, self.line, message))


def parse_iptables(text: str, source: str = "<input>", *, family: str | None = None) -> Ruleset:
    """Parse ``iptables-save`` output or ``iptables-restore`` input.

    Parameters
    ----------
    text : str
        The dump. Several ``*table`` blocks may follow each other; an
        ``ip6tables-save`` block (recognised by its header comment, or by IPv6
        addresses in its rules) goes to family ``"ip6"``.
    source : str
        Name used in error messages and provenance.
    family : {"ip", "ip6"}, optional
        Force the address family of every table.

    Returns
    -------
    Ruleset

    Notes
    -----
    Every line is validated here. For the rule shapes of kube-proxy's dumps,
    :attr:`Rule.text`, :attr:`Rule.comment`, :attr:`Rule.matches` and
    :attr:`Rule.target` are built on first access (see "Performance" in the
    module notes); they equal what the general parser builds. Until then such a
    rule refers to ``text``, which therefore stays in memory.

    The cyclic garbage collector is paused while parsing, and for dumps of more
    than 20,000 rules the result is moved out of its generations with
    :func:`gc.freeze` (the structures are acyclic and freed by reference
    counting); otherwise a later full collection rescans millions of objects.

    Raises
    ------
    ConfigParseError
        ``file:line: what was expected`` for a malformed line, an unknown table,
        a rule before any ``*table`` line, a jump to an undeclared chain that is
        not a target extension, a missing ``COMMIT``, or an empty input.
    """
    gc_was_enabled = gc.isenabled()
    gc.disable()  # the parse allocates millions of small acyclic objects; collections only cost time
    try:
        rs = _parse_iptables(text, source, family)
        if rs.rule_count > _FREEZE_RULES:
            # Move the parsed objects out of the collector's generations: they hold no
            # reference cycles (reference counting frees them), and a full collection
            # would otherwise rescan millions of them (seconds) at some later allocation.
            gc.freeze()
        return rs
    finally:
        if gc_was_enabled:
            gc.enable()


# Line breaks other than "\n" that str.splitlines() honours; a text containing any of
# them is re-joined with "\n" first so that line numbers agree with splitlines().
_ODD_BREAKS_ASCII = "\r\v\f\x1c\x1d\x1e"
_ODD_BREAKS = _ODD_BREAKS_ASCII + "\x85\u2028\u2029"


def _has_odd_breaks(text: str) -> bool:
    # str.isascii() is O(1) and each `in` a memchr: much faster than a regex search
    return any(c in text for c in (_ODD_BREAKS_ASCII if text.isascii() else _ODD_BREAKS))


def _parse_iptables(text: str, source: str, family: str | None) -> Ruleset:
    """Read ``text`` line by line: the fast shapes here, every other line with :class:`_Parser`."""
    p = _Parser(source, family)
    if _has_odd_breaks(text):
        text = "\n".join(text.splitlines())
    p.doc = text
    fast_rule = _fast_rule  # module attribute: tests replace it to check the general path
    general = p.line
    # _LINE matches every line exactly once (the last alternative takes any line), so the
    # n-th match is line n. A text ending in "\n" gives one more, empty, match: ignored.
    for lineno, m in enumerate(_LINE.finditer(text), 1):
        k = m.lastindex
        if k != _G_OTHER:
            table = p.table
            if table is not None:
                if k == _G_DECL:
                    # ':NAME - [p:b]' of a new user chain: what _declare does for this shape
                    name = m[_G_DECL]
                    if name not in table.chains:
                        table.chains[name] = Chain(name, [], None, False, lineno)
                        continue
                elif fast_rule(m, p, lineno) is not None:
                    continue
        general(lineno, m[0])
    return p.finish(text)


class _Parser:
    """The general, line-by-line parser: every command and option of the supported subset."""

    __slots__ = (
        "any_content", "block_v6", "ctx", "family", "header_family", "pending", "rs", "table",
        "last_chain_name", "last_chain", "last_target", "last_refs", "doc",
    )  # fmt: skip

    def __init__(self, source: str, family: str | None) -> None:
        self.rs = Ruleset(dialect="iptables", source=source)
        self.ctx = _Ctx(source, self.rs.warnings)
        self.family = family
        self.table: Table | None = None
        self.header_family: str | None = None
        self.block_v6 = False
        self.any_content = False
        self.pending: list[Rule] = []  # rules of the general path in the open table, resolved at COMMIT
        # _fast_rule's memory of the previous fast line (consecutive rules share their
        # chain, and often their target): chain name -> Chain, target -> referrers list
        self.last_chain_name: str | None = None
        self.last_chain: Chain | None = None
        self.last_target: str | None = None
        self.last_refs: list[Rule] | None = None
        self.doc = ""  # the text being parsed (fast rules keep it until first access)

    def line(self, lineno: int, raw: str) -> None:
        """Parse line number ``lineno`` (text ``raw``)."""
        self.last_chain_name = self.last_target = None  # this line may change chains or the table
        line = raw.strip()
        if not line:
            return
        ctx = self.ctx
        table = self.table
        c0 = line[0]
        if c0 == "#":
            if "ip6tables-save" in line:
                self.header_family = "ip6"
            elif "iptables-save" in line:
                self.header_family = "ip"
            return
        self.any_content = True
        ctx.line = lineno
        if c0 == "-" or c0 == "[":
            if table is None:
                raise ctx.error("expected a table header such as '*nat' before the first rule", line)
            if _command(line, table, ctx, self.pending)[1]:
                self.block_v6 = True
            return
        if c0 == ":":
            if table is None:
                raise ctx.error("expected a table header such as '*nat' before a chain declaration", line)
            _declare(line, table, ctx)
            return
        if c0 == "*":
            if table is not None:
                raise ctx.error(f"expected COMMIT to end table '{table.name}' before a new table", line)
            name = line[1:].strip()
            if name not in BUILTIN_CHAINS:
                raise ctx.error(
                    "expected a table name (raw, mangle, nat, filter or security) after '*'", line
                )
            table = self.table = Table(name=name, family="?", line=lineno)
            for b in BUILTIN_CHAINS[name]:
                table.chains[b] = Chain(name=b, policy="ACCEPT", builtin=True)
            self.block_v6 = False
            return
        if line == "COMMIT":
            if table is None:
                raise ctx.error("COMMIT without an open table (expected '*table' first)", line)
            fam = self.family or self.header_family or ("ip6" if self.block_v6 else "ip")
            table.family = fam
            _resolve(table, self.pending, ctx)
            key = (fam, table.name)
            if key in self.rs.tables:
                raise ctx.error(
                    f"table '{table.name}' ({fam}) appears twice; expected one block per table "
                    f"(first at line {self.rs.tables[key].line})"
                )
            self.rs.tables[key] = table
            self.table = None
            self.pending = []
            self.header_family = None
            return
        raise ctx.error(
            "expected '*table', ':CHAIN POLICY [packets:bytes]', '-A CHAIN rule...' or 'COMMIT'", line
        )

    def finish(self, text: str) -> Ruleset:
        """The ruleset, once every line of ``text`` has been read."""
        if self.table is not None:
            self.ctx.line = len(text.splitlines())
            raise self.ctx.error(f"expected COMMIT at the end of table '{self.table.name}' (input ended)")
        if not self.any_content:
            raise ConfigParseError(
                "empty input: expected iptables-save output (no tables found)", source=self.rs.source
            )
        if self.ctx.counters:
            self.rs.cache[SAVE_COUNTERS_KEY] = self.ctx.counters
        return self.rs


def _declare(line: str, table: Table, ctx: _Ctx) -> None:
    parts = line[1:].split()
    if not parts or len(parts) > 3:
        raise ctx.error("expected ':CHAIN POLICY [packets:bytes]'", line)
    name = parts[0]
    policy = parts[1] if len(parts) > 1 else "-"
    ch = table.chains.get(name)
    if ch is None:
        if policy != "-":
            raise ctx.error(f"built-in chain '{name}' does not exist in table '{table.name}'", line)
        table.chains[name] = Chain(name=name, line=ctx.line)
    else:
        if not ch.builtin and ch.line is not None:
            # iptables-save writes each chain once; iptables-restore would flush the chain here,
            # dropping the rules read so far: refused rather than guessed
            raise ctx.error(
                f"chain '{name}' is declared twice in table '{table.name}' (first at line {ch.line}); "
                "expected each chain once, as iptables-save writes it",
                line,
            )
        if ch.builtin:
            if policy not in ("ACCEPT", "DROP"):
                raise ctx.error(f"expected policy ACCEPT or DROP for built-in chain '{name}'", line)
            ch.policy = policy
        ch.line = ctx.line


#: ``Ruleset.cache`` key of the ``[p:b]`` counters of an ``iptables-save -c`` dump
#: (``Rule -> (packets, bytes)``)
SAVE_COUNTERS_KEY = "iptables-save-counters"
# the kernel's counters are 64-bit: at most 20 digits each
_SAVE_COUNTERS = re.compile(r"\[(\d{1,20}):(\d{1,20})\]")


def _command(line: str, table: Table, ctx: _Ctx, pending: list[Rule]) -> tuple[Rule | None, bool]:
    try:
        words, quoted = split_rule(line)
    except ValueError:
        raise ctx.error("expected a closing double quote", line) from None
    i = 0
    counters = None
    if words[0].startswith("["):  # [packets:bytes] counters (iptables-save -c)
        m = _SAVE_COUNTERS.fullmatch(words[0])
        if m is None:
            raise ctx.error("expected counters as [packets:bytes] before the command", line)
        counters = (int(m[1]), int(m[2]))
        i = 1
    if i >= len(words):
        raise ctx.error("expected a command such as -A CHAIN after the counters", line)
    cmd = words[i]
    if cmd in ("-A", "--append", "-I", "--insert"):
        if i + 1 >= len(words):
            raise ctx.error(f"expected a chain name after {cmd}", line)
        chain_name = words[i + 1]
        ch = table.chains.get(chain_name)
        if ch is None:
            raise ctx.error(
                f"chain '{chain_name}' does not exist in table '{table.name}' "
                f"(expected ':{chain_name} - [0:0]' or '-N {chain_name}' first)",
                line,
            )
        start = i + 2
        position = None
        if cmd in ("-I", "--insert") and start < len(words) and words[start].isdigit():
            position = int(words[start]) - 1
            start += 1
        ctx.text = line
        rule, v6 = _rule_body(words, quoted, start, table, chain_name, ctx)
        if position is None:
            if cmd in ("-I", "--insert"):
                ch.rules.insert(0, rule)
            else:
                ch.rules.append(rule)
        else:
            if position > len(ch.rules):
                raise ctx.error(f"expected an insert position of at most {len(ch.rules) + 1}", line)
            ch.rules.insert(position, rule)
        pending.append(rule)
        if counters is not None:
            ctx.counters[rule] = counters
        return rule, v6
    if cmd in ("-N", "--new-chain"):
        if i + 1 >= len(words):
            raise ctx.error("expected a chain name after -N", line)
        name = words[i + 1]
        if name not in table.chains:
            table.chains[name] = Chain(name=name, line=ctx.line)
        return None, False
    if cmd in ("-X", "--delete-chain"):
        if i + 1 < len(words):
            ch = table.chains.get(words[i + 1])
            if ch is not None and not ch.builtin:
                del table.chains[words[i + 1]]
        return None, False
    if cmd in ("-F", "--flush"):
        targets = [table.chains.get(words[i + 1])] if i + 1 < len(words) else list(table.chains.values())
        for ch in targets:
            if ch is not None:
                ch.rules.clear()
        return None, False
    if cmd in ("-P", "--policy"):
        if i + 2 >= len(words) or words[i + 2] not in ("ACCEPT", "DROP"):
            raise ctx.error("expected '-P CHAIN ACCEPT|DROP'", line)
        ch = table.chains.get(words[i + 1])
        if ch is None or not ch.builtin:
            raise ctx.error(f"expected a built-in chain after -P, got '{words[i + 1]}'", line)
        ch.policy = words[i + 2]
        return None, False
    if cmd in ("-Z", "--zero"):
        return None, False
    raise ctx.error("expected -A, -I, -N, -X, -F or -P at the start of a rule line", line)


def _rule_line(rule: Rule) -> int:
    return rule.line


def _resolve(table: Table, rules: list[Rule], ctx: _Ctx) -> None:
    """Turn ``-j NAME`` into jumps to declared chains or extension targets.

    ``rules`` are the rules of the general path, in line order. The fast path has
    already entered its rules in :attr:`Table.referrers` under their target's name
    without looking the name up: a name that is not a chain now hands its rules to
    the general resolution below (an extension such as ``NOTRACK``, or an error at
    the first such line). A referrer list that gets rules of both paths is sorted by
    line, as the general parser alone leaves it.
    """
    chains = table.chains
    refs = table.referrers
    unresolved = [name for name in refs if name not in chains]
    if unresolved:
        for name in unresolved:
            for r in refs.pop(name):
                r.target = Target("jump?", name, "-j " + name)
                rules.append(r)
        rules.sort(key=_rule_line)
    touched: set[str] = set()
    for r in rules:
        t = r.target
        if t.kind == "jump?":
            name = t.value
            if name in chains:
                r.target = Target("jump", name, t.text)
            elif name in _OPTIONLESS_EXTENSIONS:
                ctx.line = r.line
                ctx.warn(f"unknown target '-j {name}' kept as opaque (its effect is not modelled)")
                r.target = Target("opaque", (name, t.text), t.text)
                continue
            else:
                ctx.line = r.line
                raise ctx.error(f"chain '{name}' does not exist in table '{table.name}' (jump target)", r.text)
        elif t.kind == "goto" and t.value not in chains:
            ctx.line = r.line
            raise ctx.error(f"chain '{t.value}' does not exist in table '{table.name}' (goto target)", r.text)
        if r.target.kind in ("jump", "goto"):
            name = r.target.value
            lst = refs.get(name)
            if lst is None:
                refs[name] = [r]
            else:
                if lst[-1].line > r.line:
                    touched.add(name)
                lst.append(r)
    for name in touched:
        refs[name].sort(key=_rule_line)


# --------------------------------------------------------------------------- fast paths
#
# One regular expression recognises the lines kube-proxy's dumps consist of, in the form
# iptables-save prints them (the benchmark's and real dumps): a new user chain, and four
# rule shapes. Addresses, prefix lengths and ports are matched strictly (octets 0-255,
# prefix 0-32, ports 0-65535 without leading zeros) and a probability must convert, so a
# line taken here is fully validated when it is read (its jump target at COMMIT, as in
# the general parser); only its Match and Target objects are left for later (_LazyRule).
# Any other line, or any doubt (an undeclared chain, a target such as ACCEPT, a leading
# zero, IPv6, escaped quotes, tabs, extra spaces), goes to the general parser.

_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_IPV4 = rf"{_OCTET}\.{_OCTET}\.{_OCTET}\.{_OCTET}"
_CIDR4 = _IPV4 + r"/(?:3[0-2]|[12]?[0-9])"
_PORT = r"(?:6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[1-9][0-9]{0,3}|0)"
# A chain or target name. Narrower than what iptables allows (any other name takes the
# general path) because an ASCII class is much faster to match than one built on \s.
_NAME = r"[A-Za-z0-9_.-]+"


def _comment(group: str) -> str:
    return rf'-m comment --comment "(?P<{group}>[^"\\\n]*)"'


_LINE = re.compile(
    "^(?:"
    # ':KUBE-SEP-XXX - [0:0]'
    rf":(?P<decl>{_NAME}) - \[[0-9]+:[0-9]+\]"
    rf"|-A (?P<chain>{_NAME}) (?:"
    # endpoint hairpin: '-s 10.244.1.5/32 -m comment --comment "ns/svc:p" -j KUBE-MARK-MASQ'
    rf"-s (?P<src_src>{_CIDR4}) {_comment('src_comment')} -j (?P<src_target>{_NAME})"
    # endpoint DNAT: '-p tcp -m comment --comment "ns/svc:p" -m tcp -j DNAT --to-destination 10.244.1.5:8080'
    rf"|-p (?P<dnat_proto>tcp|udp|sctp) {_comment('dnat_comment')} -m (?P=dnat_proto)"
    rf" -j DNAT --to-destination (?P<dnat_to>{_IPV4}:{_PORT})"
    # cascade step, or a plain jump: '-m comment --comment "..." [-m statistic --mode random
    # --probability 0.25000000000] -j KUBE-SEP-XXX'
    rf"|{_comment('jump_comment')}(?: -m statistic --mode random --probability (?P<jump_prob>[0-9.]+))?"
    rf" -j (?P<jump_target>{_NAME})"
    # service portal: '[! -s 10.244.0.0/16 ]-d 10.96.0.10/32 -p tcp -m comment --comment
    # "ns/svc:p cluster IP" -m tcp --dport 80 -j KUBE-SVC-XXX'
    rf"|(?:(?P<dst_neg>!) -s (?P<dst_src>{_CIDR4}) )?-d (?P<dst_dst>{_CIDR4})"
    rf" -p (?P<dst_proto>tcp|udp|sctp) {_comment('dst_comment')} -m (?P=dst_proto)"
    rf" --dport (?P<dst_dport>{_PORT}) -j (?P<dst_target>{_NAME})"
    ")"
    # any other line (the general parser's)
    "|(?P<other>.*)"
    ")$",
    re.MULTILINE,
)
# Which alternative matched is told by m.lastindex: the last group of each alternative
# (for the rule shapes that jump, the group of the target name).
_G = _LINE.groupindex
_G_DECL, _G_CHAIN, _G_OTHER = _G["decl"], _G["chain"], _G["other"]
_G_SRC, _G_DNAT, _G_JUMP, _G_DST = _G["src_target"], _G["dnat_to"], _G["jump_target"], _G["dst_target"]
_G_COMMENT = {
    _G_SRC: _G["src_comment"], _G_DNAT: _G["dnat_comment"],
    _G_JUMP: _G["jump_comment"], _G_DST: _G["dst_comment"],
}  # fmt: skip
_G_PROB = _G["jump_prob"]

_COMMENT_MEMO: dict[str, Match] = {}
_RANDOM_MEMO: dict[str, Match] = {}
_PROTO_MATCH = {p: Match("proto", False, p, "-p " + p) for p in ("tcp", "udp", "sctp")}


def _comment_match(c: str) -> Match:
    m = _COMMENT_MEMO.get(c)
    if m is None:
        m = Match("always", False, ("comment", c), "-m comment")
        if len(_COMMENT_MEMO) < 200_000:
            _COMMENT_MEMO[c] = m
    return m


def _random_match(p: str) -> Match | None:
    """``-m statistic --mode random --probability p`` as ``_module`` builds it; ``None`` if invalid."""
    m = _RANDOM_MEMO.get(p)
    if m is None:
        try:
            k = probability_to_threshold(p)
        except ValueError:
            return None
        m = Match("random", False, k, "-m statistic --mode random --probability " + p)
        if len(_RANDOM_MEMO) < 100_000:
            _RANDOM_MEMO[p] = m
    return m


def _fast_rule(m: re.Match[str], p: _Parser, lineno: int) -> Rule | None:
    """Enter the rule of a line ``_LINE`` matched as a rule, or return ``None``.

    ``None`` sends the line to the general parser (which reports the error, if any).
    The rule is appended to its chain and, when it jumps, to the referrers of the
    target's name (checked at COMMIT, see :func:`_resolve`); its matches and target
    are built on first access (:class:`_LazyRule`).
    """
    table = p.table
    name = m[_G_CHAIN]
    if name == p.last_chain_name:
        chain = p.last_chain
    else:
        chain = table.chains.get(name)
        if chain is None:
            return None
        p.last_chain_name = name
        p.last_chain = chain
    k = m.lastindex
    if k == _G_DNAT:
        target = None
    else:
        target = m[k]
        if target in _KNOWN_TARGETS:
            return None  # -j ACCEPT, -j MASQUERADE...: targets the general parser builds
        if k == _G_JUMP:
            prob = m[_G_PROB]
            if prob is not None and prob not in _RANDOM_MEMO and _random_match(prob) is None:
                return None  # not a probability: the general parser says so
    rule = _new_object(_LazyRule)
    rule.table = table.name
    rule.chain = chain.name
    rule.line = lineno
    rule.source = p.rs.source
    rule._doc = p.doc
    rule._start = m.start()
    rule.sets_updated = ()
    chain.rules.append(rule)
    if target is not None:
        if target == p.last_target:
            p.last_refs.append(rule)  # type: ignore[union-attr]
        else:
            refs = table.referrers.get(target)
            if refs is None:
                refs = table.referrers[target] = [rule]
            else:
                refs.append(rule)
            p.last_target = target
            p.last_refs = refs
    return rule


def _fast_objects(text: str) -> tuple[tuple[Match, ...], Target, str]:
    """The matches, target and comment of a rule ``_fast_rule`` accepted (``text`` is its line).

    What the general parser builds for the same line (tested line by line).
    """
    m = _LINE.match(text)
    assert m is not None, text
    k = m.lastindex
    c = m[_G_COMMENT[k]]
    comment = _comment_match(c)
    if k == _G_DNAT:
        to = m["dnat_to"]
        return (_PROTO_MATCH[m["dnat_proto"]], comment), Target(
            "dnat", _nat_to(to), "-j DNAT --to-destination " + to
        ), c
    name = m[k]
    target = Target("jump", name, "-j " + name)
    if k == _G_SRC:
        src = m["src_src"]
        return (Match("src", False, (parse_cidr(src),), "-s " + src), comment), target, c
    if k == _G_JUMP:
        p = m[_G_PROB]
        if p is None:
            return (comment,), target, c
        random = _random_match(p)
        assert random is not None
        return (comment, random), target, c
    ms: list[Match] = []
    src = m["dst_src"]
    if src is not None:
        ms.append(Match("src", True, (parse_cidr(src),), "! -s " + src))
    dst = m["dst_dst"]
    ms.append(Match("dst", False, (parse_cidr(dst),), "-d " + dst))
    ms.append(_PROTO_MATCH[m["dst_proto"]])
    ms.append(comment)
    dport = m["dst_dport"]
    ms.append(Match("dport", False, _port_range(dport), "--dport " + dport))
    return tuple(ms), target, c


_new_object = object.__new__


class _LazyRule(Rule):
    """A :class:`Rule` read by the fast path: ``text``, ``comment``, ``matches`` and ``target`` come later.

    :func:`_fast_rule` sets the other attributes and, instead of the line's text, where
    the line is: the parsed document (kept in the ``matches`` slot, reached as
    ``_doc``) and the line's offset in it (kept in the ``text`` slot, as ``_start``).
    The first read or assignment of any of the four builds them from the line
    (:func:`_fast_objects`) and turns the object into a plain :class:`Rule` (same
    slots, so ``__class__`` can be reassigned); after that, reads cost what they cost
    on any rule. Copying or pickling one gives a plain :class:`Rule`, and so does
    calling the class (``dataclasses.replace``).
    """

    __slots__ = ()

    # Rule's slot descriptors under other names, past the properties below.
    _doc = Rule.matches
    _start = Rule.text

    def __new__(cls, *args: Any, **kwargs: Any) -> Rule:  # type: ignore[misc]
        return Rule(*args, **kwargs)  # _fast_rule uses object.__new__

    def _materialise(self) -> Rule:
        doc: str = self._doc  # type: ignore[assignment]
        start: int = self._start  # type: ignore[assignment]
        end = doc.find("\n", start)
        text = doc[start:end] if end >= 0 else doc[start:]
        matches, target, comment = _fast_objects(text)
        self.__class__ = Rule
        self.text = text
        self.comment = comment
        self.matches = matches
        self.target = target
        return self

    @property  # type: ignore[override]
    def text(self) -> str:
        return self._materialise().text

    @text.setter
    def text(self, value: str) -> None:
        self._materialise().text = value

    @property  # type: ignore[override]
    def comment(self) -> str | None:
        return self._materialise().comment

    @comment.setter
    def comment(self, value: str | None) -> None:
        self._materialise().comment = value

    @property  # type: ignore[override]
    def matches(self) -> tuple[Match, ...]:
        return self._materialise().matches

    @matches.setter
    def matches(self, value: tuple[Match, ...]) -> None:
        self._materialise().matches = value

    @property  # type: ignore[override]
    def target(self) -> Target:
        return self._materialise().target

    @target.setter
    def target(self, value: Target) -> None:
        self._materialise().target = value

    def __repr__(self) -> str:
        return repr(self._materialise())

    def __reduce_ex__(self, protocol: Any) -> Any:  # copy and pickle: a plain Rule
        return self._materialise().__reduce_ex__(protocol)


def _values(words: list[str], quoted: set[int] | None, j: int, n: int) -> int:
    """Index just past the option values that start at ``j``."""
    while j < n:
        w = words[j]
        if (w == "!" or (w[:1] == "-" and len(w) > 1 and not w[1].isdigit())) and (
            quoted is None or j not in quoted
        ):
            break
        j += 1
    return j


_ADDR_OPTS = {"-s": "src", "--source": "src", "--src": "src", "-d": "dst", "--destination": "dst", "--dst": "dst"}
_IF_OPTS = {"-i": "in_if", "--in-interface": "in_if", "-o": "out_if", "--out-interface": "out_if"}
_CODE = {
    **dict.fromkeys(_ADDR_OPTS, 1), "-p": 2, "--protocol": 2, **dict.fromkeys(_IF_OPTS, 3), "-f": 4,
    "--fragment": 4, "-m": 5, "--match": 5, "-c": 6, "--set-counters": 6, "-j": 7, "--jump": 7, "-g": 7,
    "--goto": 7, "!": 8,
}  # fmt: skip


def _rule_body(
    words: list[str], quoted: set[int] | None, i: int, table: Table, chain: str, ctx: _Ctx
) -> tuple[Rule, bool]:
    n = len(words)
    matches: list[Match] = []
    modules: list[list[Any]] = []  # [name, [(opt, neg, values)]]
    proto: str | None = None
    neg = False
    target = _NO_TARGET
    v6 = False
    code_of = _CODE.get
    while i < n:
        w = words[i]
        code = code_of(w, 0)
        if code and quoted is not None and i in quoted:
            code = 0
        if code == 0:
            if w[:2] == "--" and (quoted is None or i not in quoted):
                k = i + 1
                if k < n:
                    x = words[k]
                    # a first value may be negative ('--probability -0.25' is then refused as out of range)
                    if (x[:1] != "-" and x != "!") or x[1:2].isdigit() or (
                        quoted is not None and k in quoted
                    ):
                        k += 1
                        if k < n:
                            x = words[k]
                            if (x[:1] != "-" and x != "!") or (quoted is not None and k in quoted):
                                k = _values(words, quoted, k, n)
                vals = words[i + 1 : k]
                if modules and not neg:
                    last = modules[-1]
                    known = _MODULE_OPTS.get(last[0])
                    if known is not None and w in known:
                        last[1].append((w, False, vals))
                        i = k
                        continue
                _attach(w, neg, vals, modules, proto, ctx)
                neg = False
                i = k
                continue
            raise ctx.error("expected an option such as -s, -d, -p, -m or -j", w)
        if code == 8:
            if neg:
                raise ctx.error("expected an option after '!', got another '!'", ctx.text)
            neg = True
            i += 1
            continue
        if code == 5:
            if neg:
                raise ctx.error("expected an option after '!', not -m", ctx.text)
            if i + 1 >= n:
                raise ctx.error("expected a match name after -m", ctx.text)
            modules.append([words[i + 1], []])
            i += 2
            continue
        if code == 1:
            if i + 1 >= n:
                raise ctx.error(f"expected an address after {w}", ctx.text)
            val = words[i + 1]
            try:
                if "," in val:
                    nets = tuple(parse_cidr(x) for x in val.split(","))
                else:
                    nets = (_NET_CACHE.get(val) or parse_cidr(val),)
            except ValueError:
                raise ctx.error(f"expected an IP address or CIDR after {w}", val) from None
            if nets[0].version == 6:
                v6 = True
            matches.append(Match(_ADDR_OPTS[w], neg, nets, ("! " + w if neg else w) + " " + val))
            neg = False
            i += 2
            continue
        if code == 2:
            if i + 1 >= n:
                raise ctx.error("expected a protocol after -p", ctx.text)
            p = words[i + 1].lower()
            p = _PROTO_ALIASES.get(p, p)
            if not neg:
                proto = p
            matches.append(Match("proto", neg, p, "-p " + p))
            neg = False
            i += 2
            continue
        if code == 7:
            if i + 1 >= n:
                raise ctx.error(f"expected a target after {w}", ctx.text)
            name = words[i + 1]
            is_goto = w in ("-g", "--goto")
            if i + 2 == n and not is_goto and name not in _KNOWN_TARGETS:
                target = Target("jump?", name, "-j " + name)
                break
            opts = []
            j = i + 2
            while j < n:
                o = words[j]
                if o in ("-c", "--set-counters"):
                    j += 3
                    continue
                if o == "!":
                    raise ctx.error("expected a target option, got '!'", ctx.text)
                if not o.startswith("--") or (quoted is not None and j in quoted):
                    raise ctx.error(f"expected a --option of target {name}", o)
                k = _values(words, quoted, j + 1, n)
                opts.append((o, words[j + 1 : k]))
                j = k
            if not opts and not is_goto and name not in _KNOWN_TARGETS:
                target = Target("jump?", name, "-j " + name)
            else:
                target = _target(name, is_goto, opts, ctx, " ".join(words[i:]))
            break
        if code == 3:
            if i + 1 >= n:
                raise ctx.error(f"expected an interface name after {w}", ctx.text)
            matches.append(Match(_IF_OPTS[w], neg, words[i + 1], ("! " + w if neg else w) + " " + words[i + 1]))
            neg = False
            i += 2
            continue
        if code == 4:
            matches.append(Match("fragment", neg, None, "! -f" if neg else "-f"))
            neg = False
            i += 1
            continue
        # code == 6: counters
        i += 3
    if neg:
        raise ctx.error("expected an option after '!' at the end of the rule", ctx.text)
    comment: str | None = None
    sets_updated: tuple[str, ...] = ()
    for name, opts in modules:
        if len(opts) == 1:
            o, ng, v = opts[0]
            if name == "comment" and len(v) == 1 and not ng:
                matches.append(Match("always", False, ("comment", v[0]), "-m comment"))
                if comment is None:
                    comment = v[0]
                continue
            key: Any = (name, o, ng, *v)
        else:
            key = (name, *[(o, ng, *v) for o, ng, v in opts])
        hit = _MODULE_MEMO.get(key)
        if hit is None:
            hit = _module(name, opts, ctx)
            if not any(m.kind == "opaque" for m in hit[0]) and len(_MODULE_MEMO) < 100_000:
                _MODULE_MEMO[key] = hit
        m, c, upd = hit
        matches.extend(m)
        if c is not None and comment is None:
            comment = c
        if upd:
            sets_updated = (*sets_updated, upd)
    rule = Rule(table.name, chain, ctx.line, ctx.source, ctx.text, tuple(matches), target, comment, sets_updated)
    return rule, v6


def _attach(opt: str, neg: bool, vals: list[str], modules: list[list[Any]], proto: str | None, ctx: _Ctx) -> None:
    """Give ``--opt`` to the match module that defines it (the last one first)."""
    for mod in reversed(modules):
        known = _MODULE_OPTS.get(mod[0])
        if known is None or opt in known:
            mod[1].append((opt, neg, vals))
            return
    if proto in ("tcp", "udp", "sctp", "udplite") and opt in _MODULE_OPTS[proto]:
        # iptables loads the protocol's match implicitly for -p tcp --dport 80
        modules.append([proto, [(opt, neg, vals)]])
        return
    if modules:
        mod = modules[-1]
        if mod[0] in ("conntrack",):  # known module, unsupported option: opaque
            mod[1].append((opt, neg, vals))
            return
        raise ctx.error(f"unknown option {opt} for -m {mod[0]}", ctx.text)
    raise ctx.error(f"unknown option {opt} (expected -m MODULE before it)", ctx.text)


def _one(opt: str, vals: list[str], ctx: _Ctx, what: str) -> str:
    if len(vals) != 1:
        raise ctx.error(f"expected {what} after {opt}", ctx.text)
    return vals[0]


def _module(name: str, opts: list[tuple[str, bool, list[str]]], ctx: _Ctx) -> tuple[list[Match], str | None, str]:
    """Turn the options of one ``-m name`` into matches; returns (matches, comment, recent --set name)."""
    out: list[Match] = []
    text = f"-m {name} " + " ".join(
        ("! " if ng else "") + o + ("" if not v else " " + " ".join(v)) for o, ng, v in opts
    )
    text = text.strip()
    known = _MODULE_OPTS.get(name)
    if known is None:
        ctx.warn(f"unknown match '-m {name}' kept as opaque (traced as unknown)")
        return [Match("opaque", False, name, text)], None, ""
    for o, _ng, v in opts:
        if o in known and known[o] != len(v):
            what = "no value" if known[o] == 0 else ("a value" if known[o] == 1 else f"{known[o]} values")
            raise ctx.error(f"expected {what} after {o} (-m {name})", ctx.text)
    try:
        if name in ("tcp", "udp", "sctp", "udplite"):
            for o, ng, v in opts:
                if o in ("--sport", "--source-port", "--dport", "--destination-port"):
                    kind = "sport" if o in ("--sport", "--source-port") else "dport"
                    out.append(Match(kind, ng, _port_range(v[0]), f"{'! ' if ng else ''}{o} {v[0]}"))
                elif o == "--syn":
                    out.append(Match("syn", ng, None, f"{'! ' if ng else ''}--syn"))
                elif o == "--tcp-flags":
                    mask = frozenset(v[0].upper().split(","))
                    comp = frozenset(x for x in v[1].upper().split(",") if x != "NONE")
                    if "ALL" in mask:
                        mask = frozenset({"SYN", "ACK", "FIN", "RST", "URG", "PSH", "ECE", "CWR"})
                    out.append(Match("tcp_flags", ng, (mask, comp), f"--tcp-flags {v[0]} {v[1]}"))
                else:
                    ctx.warn(f"option {o} of -m {name} kept as opaque")
                    out.append(Match("opaque", False, name, f"{o} {' '.join(v)}"))
            return out, None, ""
        if name == "multiport":
            for o, ng, v in opts:
                ports = tuple(_port_range(x) for x in _one(o, v, ctx, "a port list").split(","))
                which = "src" if o in ("--sports", "--source-ports") else (
                    "dst" if o in ("--dports", "--destination-ports") else "any"
                )
                out.append(Match("multiport", ng, (which, ports), f"{'! ' if ng else ''}{o} {v[0]}"))
            return out, None, ""
        if name == "comment":
            c = opts[0][2][0] if opts and opts[0][2] else ""
            return [Match("always", False, ("comment", c), f'--comment "{c}"')], c, ""
        if name == "nfacct":
            nm = opts[0][2][0] if opts and opts[0][2] else ""
            return [Match("always", False, ("nfacct", nm), f"-m nfacct --nfacct-name {nm}")], None, ""
        if name == "statistic":
            d = {o: (ng, v) for o, ng, v in opts}
            mode = d.get("--mode", (False, ["random"]))[1][0]
            if mode == "random":
                if "--probability" not in d:
                    raise ctx.error("expected --probability with -m statistic --mode random", ctx.text)
                ng, v = d["--probability"]
                try:
                    k = probability_to_threshold(v[0])
                except ValueError:
                    raise ctx.error(
                        "expected a probability in [0, 1] after --probability", v[0]
                    ) from None
                return [Match("random", ng, k, text)], None, ""
            if mode == "nth":
                if "--every" not in d or "--packet" not in d:
                    raise ctx.error("expected --every N --packet P with -m statistic --mode nth", ctx.text)
                ng, v = d["--every"]
                every = int(v[0])
                packet = int(d["--packet"][1][0])
                if every < 1 or not 0 <= packet <= every - 1:
                    raise ctx.error("expected --every N >= 1 and --packet P with 0 <= P <= N-1", ctx.text)
                return [Match("nth", ng, (every, packet), text)], None, ""
            raise ctx.error("expected --mode random or --mode nth", mode)
        if name == "owner":
            for o, ng, v in opts:
                if o == "--uid-owner":
                    out.append(Match("uid", ng, _id_range(v[0]), f"{'! ' if ng else ''}--uid-owner {v[0]}"))
                elif o == "--gid-owner":
                    out.append(Match("gid", ng, _id_range(v[0]), f"{'! ' if ng else ''}--gid-owner {v[0]}"))
                elif o == "--socket-exists":
                    out.append(Match("socket", ng, None, f"{'! ' if ng else ''}--socket-exists"))
                else:
                    ctx.warn(f"option {o} of -m owner kept as opaque")
                    out.append(Match("opaque", False, name, o))
            return out, None, ""
        if name in ("mark", "connmark"):
            if not opts or opts[0][0] != "--mark":
                raise ctx.error(f"expected --mark VALUE[/MASK] with -m {name}", ctx.text)
            ng, v = opts[0][1], opts[0][2]
            return [Match(name, ng, _mark_mask(v[0]), f"{'! ' if ng else ''}-m {name} --mark {v[0]}")], None, ""
        if name == "recent":
            d = {o: (ng, v) for o, ng, v in opts}
            cmds = [c for c in ("--set", "--rcheck", "--update", "--remove") if c in d]
            if len(cmds) != 1:
                raise ctx.error("expected exactly one of --set, --rcheck, --update, --remove with -m recent", ctx.text)
            cmd = cmds[0][2:]
            ng = d[cmds[0]][0]
            list_name = d.get("--name", (False, ["DEFAULT"]))[1][0]
            seconds = int(d["--seconds"][1][0]) if "--seconds" in d else None
            hitcount = int(d["--hitcount"][1][0]) if "--hitcount" in d else None
            side = "dst" if "--rdest" in d else "src"
            value = {"name": list_name, "command": cmd, "seconds": seconds, "hitcount": hitcount,
                     "reap": "--reap" in d, "side": side}  # fmt: skip
            upd = list_name if cmd in ("set", "update") else ""
            return [Match("recent", ng, value, text)], None, upd
        if name == "addrtype":
            for o, ng, v in opts:
                if o in ("--src-type", "--dst-type"):
                    types = frozenset(v[0].upper().split(","))
                    out.append(Match("addrtype", ng, (o[2:5], types), f"{'! ' if ng else ''}{o} {v[0]}"))
            return out, None, ""
        if name in ("conntrack", "state"):
            for o, ng, v in opts:
                if o in ("--ctstate", "--state"):
                    states = frozenset(v[0].upper().split(","))
                    out.append(Match("ctstate", ng, states, f"{'! ' if ng else ''}{o} {v[0]}"))
                else:
                    ctx.warn(f"option {o} of -m {name} kept as opaque (traced as unknown)")
                    out.append(Match("opaque", ng, name, f"{'! ' if ng else ''}{o} {' '.join(v)}"))
            return out, None, ""
    except ConfigParseError:
        raise
    except (ValueError, IndexError):
        raise ctx.error(f"expected valid values for -m {name}", text) from None
    raise AssertionError(name)  # pragma: no cover


def _target(name: str, goto: bool, opts: list[tuple[str, list[str]]], ctx: _Ctx, text: str) -> Target:
    d = {o: v for o, v in opts}
    if goto:
        if opts:
            raise ctx.error("expected no options after -g CHAIN", text)
        return Target("goto", name, text)
    try:
        if name in ("ACCEPT", "DROP", "RETURN"):
            if opts:
                raise ctx.error(f"expected no options after -j {name}", text)
            return Target(name.lower(), None, text)
        if name == "REJECT":
            return Target("reject", d.get("--reject-with", ["icmp-port-unreachable"])[0], text)
        if name == "DNAT":
            to = d.get("--to-destination")
            if not to:
                raise ctx.error("expected --to-destination IP[:PORT] after -j DNAT", text)
            return Target("dnat", _nat_to(to[0]), text)
        if name == "SNAT":
            to = d.get("--to-source")
            if not to:
                raise ctx.error("expected --to-source IP[:PORT] after -j SNAT", text)
            return Target("snat", _nat_to(to[0]), text)
        if name == "REDIRECT":
            ports = d.get("--to-ports")
            return Target("redirect", _port_range(ports[0]) if ports else None, text)
        if name == "MASQUERADE":
            ports = d.get("--to-ports")
            return Target("masquerade", _port_range(ports[0]) if ports else None, text)
        if name == "MARK":
            return Target("mark", _mark_op(d, ctx, text), text)
        if name == "CONNMARK":
            return Target("connmark", _connmark_op(d, ctx, text), text)
        if name == "TPROXY":
            port = d.get("--on-port")
            if not port:
                raise ctx.error("expected --on-port PORT after -j TPROXY", text)
            mark = _mark_mask(d["--tproxy-mark"][0]) if "--tproxy-mark" in d else None
            on_ip = d.get("--on-ip", [None])[0]
            return Target("tproxy", (int(port[0]), on_ip, mark), text)
        if name == "CT":
            return Target("ct", {o: " ".join(v) for o, v in opts}, text)
        if name == "LOG":
            return Target("log", {o: " ".join(v) for o, v in opts}, text)
    except ConfigParseError:
        raise
    except (ValueError, IndexError, KeyError):
        raise ctx.error(f"expected valid options for -j {name}", text) from None
    if opts and name not in _KNOWN_TARGETS:
        ctx.warn(f"unknown target '-j {name}' kept as opaque (its effect is not modelled)")
        return Target("opaque", (name, text), text)
    return Target("jump?", name, text)  # a chain, or an extension without options: resolved at COMMIT


def _nat_to(text: str) -> tuple[str | None, tuple[int, int] | None, str]:
    """``IP[-IP][:PORT[-PORT]]`` or ``[v6]:PORT`` -> (address, port range, text)."""
    if text.startswith("["):
        addr, _, rest = text[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    elif text.count(":") > 1:  # bare IPv6 without port
        addr, port = text, ""
    else:
        addr, _, port = text.partition(":")
    if addr:
        first = addr.split("-")[0]
        parse_cidr(first)
    return (addr or None), (_port_range(port) if port else None), text


def _mark_op(d: dict[str, list[str]], ctx: _Ctx, text: str) -> tuple[int, int]:
    """MARK target as ``(mask, xor)``: new = (mark & ~mask) ^ xor (``xt_MARK.c: mark_tg``)."""
    if "--set-xmark" in d:
        v, m = _mark_mask(d["--set-xmark"][0])
        return m, v
    if "--set-mark" in d:
        v, m = _mark_mask(d["--set-mark"][0])
        return (v | m), v  # libxt_MARK: --set-mark v/m == --set-xmark v/(v|m)
    if "--or-mark" in d:
        v = _int(d["--or-mark"][0])
        return v, v
    if "--and-mark" in d:
        v = _int(d["--and-mark"][0])
        return (~v) & 0xFFFFFFFF, 0
    if "--xor-mark" in d:
        return 0, _int(d["--xor-mark"][0])
    raise ctx.error("expected --set-xmark, --set-mark, --or-mark, --and-mark or --xor-mark after -j MARK", text)


def _connmark_op(d: dict[str, list[str]], ctx: _Ctx, text: str) -> tuple[str, int, int]:
    """CONNMARK as ``(op, a, b)``: ``("set", mask, xor)``, ``("save"|"restore", nfmask, ctmask)``."""
    if "--set-xmark" in d or "--set-mark" in d:
        return ("set", *_mark_op(d, ctx, text))
    both = _int(d["--mask"][0]) if "--mask" in d else 0xFFFFFFFF
    nfmask = _int(d["--nfmask"][0]) if "--nfmask" in d else both
    ctmask = _int(d["--ctmask"][0]) if "--ctmask" in d else both
    if "--save-mark" in d:
        return ("save", nfmask, ctmask)
    if "--restore-mark" in d:
        return ("restore", nfmask, ctmask)
    raise ctx.error("expected --set-xmark, --save-mark or --restore-mark after -j CONNMARK", text)
