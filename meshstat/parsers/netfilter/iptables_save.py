"""Parser for ``iptables-save`` output and ``iptables-restore`` input (IPv4 and IPv6).

Upstream format
---------------
The text read and written by ``iptables-save`` / ``iptables-restore`` (and their
``ip6tables-*`` twins) of iptables 1.8.9, both back ends (``nf_tables`` and
``legacy``): ``*table`` headers, ``:CHAIN POLICY [packets:bytes]`` declarations,
``-A CHAIN <rule>`` lines, ``COMMIT``. Both forms are accepted (see
``docs/measurements.md``, M5): what kube-proxy writes (options in its
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

A table block that declares no built-in chain is ``iptables-restore`` input
(kube-proxy writes its chains so and loads them with ``--noflush``); its jumps
may name chains an earlier load created (a partial sync rewrites only the
chains that changed). Such jumps are kept, named in one warning, and listed by
:func:`meshstat.parsers.netfilter.rules.missing_chains`; in a dump that declares its
built-in chains (``iptables-save`` output) they are an error.

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
  general parser (:class:`SaveParser`) one by one, exactly as before.
* A fast shape is fully validated by the expression itself: octets 0-255,
  prefix lengths 0-32 and ports 0-65535 are matched strictly, a probability must
  convert, the chain must exist; otherwise the line takes the general path,
  which reports the error. Jump targets are checked at ``COMMIT`` once per
  target name (:func:`resolve_jumps`), as the general parser does per rule.
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

The structures are those of :mod:`meshstat.parsers.netfilter.ruleset`; each rule
line is built by the shared rule builder :mod:`meshstat.parsers.netfilter.rules`.

See Also
--------
meshstat.parsers.netfilter.nft : the nftables dialect, producing the same structures.
meshstat.parsers.netfilter.iptables_list : ``iptables -L`` listings and pasted dumps.
meshstat.netfilter : tracing a packet and reading kube-proxy services.
"""

from __future__ import annotations

import gc
import re
from typing import Any

from meshstat.errors import ConfigParseError
from meshstat.inputs import ascii_digits
from meshstat.model import probability_to_threshold
from meshstat.parsers.netfilter.rules import (
    KNOWN_TARGETS,
    ParseContext,
    build_rule,
    nat_to,
    parse_cidr,
    port_range,
    resolve_jumps,
    split_rule,
)
from meshstat.parsers.netfilter.ruleset import (
    BUILTIN_CHAINS,
    FREEZE_RULES,
    Chain,
    Match,
    Rule,
    Ruleset,
    Table,
    Target,
)

__all__ = ["SAVE_COUNTERS_KEY", "SaveParser", "parse_iptables"]


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
        if rs.rule_count > FREEZE_RULES:
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
    """Read ``text`` line by line: the fast shapes here, every other line with :class:`SaveParser`."""
    p = SaveParser(source, family)
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


class SaveParser:
    """The general, line-by-line parser: every command and option of the supported subset.

    :func:`parse_iptables` gives it the lines of no fast shape; the pasted-dump reader
    of :mod:`meshstat.parsers.netfilter.iptables_list` feeds it lines itself (:meth:`line`,
    then :meth:`finish`).
    """

    __slots__ = (
        "any_content", "block_v6", "ctx", "family", "header_family", "pending", "rs", "table",
        "last_chain_name", "last_chain", "last_target", "last_refs", "doc",
    )  # fmt: skip

    def __init__(self, source: str, family: str | None) -> None:
        self.rs = Ruleset(dialect="iptables", source=source)
        self.ctx = ParseContext(source, self.rs.warnings)
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
            # iptables-save declares every built-in chain; a block that declares none is
            # iptables-restore input (kube-proxy's full and partial syncs, loaded with
            # --noflush), which may jump to chains an earlier load created
            restore_input = all(c.line is None for c in table.chains.values() if c.builtin)
            resolve_jumps(table, self.pending, ctx, missing_ok=restore_input)
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


def _declare(line: str, table: Table, ctx: ParseContext) -> None:
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
_MAX_SAVE_COUNTER = 2**64 - 1


def _command(line: str, table: Table, ctx: ParseContext, pending: list[Rule]) -> tuple[Rule | None, bool]:
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
        if max(counters) > _MAX_SAVE_COUNTER:
            raise ctx.error("expected counters below 2**64 (the kernel's u64) in [packets:bytes]", line)
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
        if cmd in ("-I", "--insert") and start < len(words) and ascii_digits(words[start]):
            position = int(words[start]) - 1
            start += 1
        ctx.text = line
        rule, v6 = build_rule(words, quoted, start, table, chain_name, ctx)
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


def _fast_rule(m: re.Match[str], p: SaveParser, lineno: int) -> Rule | None:
    """Enter the rule of a line ``_LINE`` matched as a rule, or return ``None``.

    ``None`` sends the line to the general parser (which reports the error, if any).
    The rule is appended to its chain and, when it jumps, to the referrers of the
    target's name (checked at COMMIT, see :func:`resolve_jumps`); its matches and target
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
        if target in KNOWN_TARGETS:
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
            "dnat", nat_to(to), "-j DNAT --to-destination " + to
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
    ms.append(Match("dport", False, port_range(dport), "--dport " + dport))
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

