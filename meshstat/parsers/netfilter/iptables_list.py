"""Parser for ``iptables -L`` listings and for pasted (damaged or partial) ``iptables-save`` text.

Upstream format
---------------
What ``iptables -L`` / ``ip6tables -L`` print (iptables 1.8.9, ``nf_tables`` and
``legacy`` back ends, and the older print forms seen in blog posts), in every
common combination of ``-n`` (numeric), ``-v`` (counters and interfaces), ``-x``
(exact counters) and ``--line-numbers``, for any table, several chains (and
several listings) in one paste::

    Chain KUBE-SVC-PK4BNTKC2JYVE7B2 (1 references)
     pkts bytes target     prot opt in     out     source               destination
        7   420 KUBE-SEP-6OOOSB56IIMYCEYA  0    --  *      *       0.0.0.0/0            0.0.0.0/0      ...
        ... /* istio-demo/bill-service:http */ statistic mode random probability 0.50000000000

(one line, broken here).

The layout is that of iptables ``iptables/xshared.c``: ``print_header`` (the
``Chain NAME (policy P N packets, M bytes)`` / ``(N references)`` line and the
column header), ``print_rule_details`` (line number, counters through
``libxtables/xtables.c: xtables_print_num``, which rounds to ``K``/``M``/``G``
above 99,999 unless ``-x``; target; ``!`` and protocol, a number under ``-n`` in
1.8.9 and a name in older releases), ``print_fragment`` (the ``opt`` column),
``print_ifaces`` (``in``/``out``, ``-v`` only; ``*`` or ``any``) and
``print_ipv4_addresses`` (``!`` glued to the address, ``/32`` omitted,
``anywhere`` without ``-n``); then ``[goto]``, each match's ``print`` function
and the target's. The print functions modelled (iptables ``extensions/``):
``libxt_comment`` (``/* text */``), ``libxt_tcp``/``libxt_udp`` (``tcp
spt:A dpts:!B:C flags:0x17/0x02 option=N``), ``libxt_multiport``,
``libxt_statistic.c: statistic_print`` (``statistic mode random [!] probability
%.11f``, ``mode nth [!] every N [packet P]``, ``packet 0`` omitted),
``libxt_owner`` (``[!] owner UID match N``, ``GID``, ``socket exists``),
``libxt_mark`` / ``libxt_connmark`` (``mark match [!] V[/M]``),
``libxt_recent`` (``recent: CHECK seconds: 10800 reap name: X side: source
mask: M``), ``libxt_addrtype`` (``ADDRTYPE match dst-type [!]LOCAL``),
``libxt_conntrack``/``libxt_state`` (``[!] ctstate X``, ``state X``),
``libxt_nfacct``; targets ``libxt_DNAT``/``SNAT`` (``to:IP[:PORT]``),
``libxt_REDIRECT`` (``redir ports P``), ``libxt_MASQUERADE`` (``masq ports:
P``), ``libxt_MARK.c: mark_tg_print`` (``MARK and|or|xor|set|xset V[/M]``, each
one exact ``--set-xmark``), ``libxt_CONNMARK`` (``CONNMARK save|restore|xset``),
``libxt_TPROXY``, ``libxt_CT``, ``libxt_LOG``, ``libipt_REJECT``. Any other
match or target is kept as *opaque* with its listing text and a warning, as
:mod:`meshstat.parsers.netfilter.iptables_save` does.

Each listing line is translated into the ``iptables-save`` words of the same
rule (``! -d 127.0.0.1/32 -o lo -p tcp -m tcp ! --dport 15008 -m owner
--uid-owner 1337 -j ISTIO_IN_REDIRECT``) and built by the ``iptables-save``
parser's own rule builder, so a listing gives the same :class:`Rule`,
:class:`Match` and :class:`Target` objects (and the same ``Rule.text``, in
``iptables-save``'s order and quoting, ``xtables_save_string``) as the
``iptables-save`` of the same rules; ``Rule.line`` is the listing's line.

What a listing loses, and what is done about it
-----------------------------------------------
* ``statistic ... probability %.11f``: the same 11 decimals ``iptables-save``
  prints, so the stored threshold ``k = lround(p * 2**31)`` is recovered
  exactly (:func:`probability_threshold_candidates`: a printed value is within
  ``5e-12`` of ``k / 2**31``, and ``5e-12 * 2**31 < 0.011``); fewer decimals
  (iptables before 1.4.11 printed ``%f``) leave several candidates: warned.
* Without ``-v`` there are no ``in``/``out`` columns: interface matches are not
  shown and cannot be recovered (warned; the rules are read without them), and
  there are no counters.
* Without ``-n`` addresses, ports, users and groups may be names: ``anywhere``,
  ``localhost``, well-known service names (``http``) and ``root`` are resolved,
  with a warning; other host, user and group names are kept as opaque matches
  (traced as unknown), never guessed.
* Without ``-x`` counters above 99,999 are rounded to ``K``/``M``/``G``/``T``:
  kept with ``exact=False``.
* A paste may hold only some chains (``iptables -t nat -vnL KUBE-SVC-X``): a
  chain that is jumped to but not listed, and a built-in chain not listed, get a
  single opaque rule (a trace reaching it ends as *unknown*, never as an empty
  chain), with a warning; a chain whose ``(N references)`` exceed the jumps
  seen is reported as partial.
* The table is not printed: it is taken from an ``iptables -t TABLE -L`` line
  in the paste, else inferred (targets such as ``DNAT`` exist only in ``nat``;
  the built-in chains) and the inference is warned.
* Comments are printed in full (both back ends store 255 bytes, the same in
  ``iptables-save``); a comment containing ``*/`` is ambiguous and its end is
  taken where the rest of the line still parses (warned).

Copy-paste damage (repaired where unambiguous, each with a warning naming the
lines): en/em dashes for ``--`` (in the ``opt`` column, or ``–comment`` in
``iptables-save`` text), curly double quotes for ``"``, non-breaking spaces,
stripped leading spaces and collapsed runs of spaces (the listing is read by
words, not columns), shell prompts and ``iptables`` command lines (which name
the table), and, for ``iptables-save`` lines pasted without ``*table`` /
``COMMIT`` (``iptables-save | grep X``, ``iptables -S``): the table is inferred,
chains are declared where first used, and repeated lines (overlapping greps)
are kept once.

Counters
--------
``-v`` listings carry the packet and byte counters of every rule and built-in
chain policy: kept beside the rules (:func:`listing_info`), not in :class:`Rule`
(whose fast path stays as it is). In the nat table they count the *first
packet of each connection* (conntrack), so a ``KUBE-SVC`` jump rule's packet
counter is the number of connections sent to that endpoint
(:func:`meshstat.netfilter.check_counters` tests them against the exact split).

Sources: iptables 1.8.9 ``iptables/xshared.c`` (``print_header``,
``print_rule_details``, ``print_fragment``, ``print_ifaces``,
``print_ipv4_addresses``, ``ipv4_addr_to_string``), ``iptables/iptables.c``
(``print_firewall`` of the legacy back end, same layout), ``libxtables/xtables.c``
(``xtables_print_num``, ``xtables_save_string``, ``xtables_chain_protos``),
the ``extensions/libxt_*.c`` print functions named above; checked against the
output of iptables v1.8.9 (nf_tables and legacy) on every fixture in
``tests/data/iptables`` (captured in ``tests/data/iptables/listings``).

Why this module is long: the listing reader and the pasted-dump reader (:func:`parse_iptables_paste`,
about 190 lines) share the shell prompt and command line detection, the tables
of copy-paste damage (dashes, curly quotes, odd spaces), the warning collector,
the table inference and the placeholder rules of chains the paste did not show;
splitting them would make a dozen of these internals public. Most of the length
is the translation of one listed rule back into ``iptables-save`` words
(``_RowBuilder``: one method per iptables print function modelled).

See Also
--------
meshstat.parsers.netfilter.iptables_save : the ``iptables-save`` parser whose structures this produces.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, NamedTuple

from meshstat.errors import ConfigParseError
from meshstat.inputs import ascii_digits
from meshstat.parsers.netfilter.iptables_save import SaveParser, parse_iptables
from meshstat.parsers.netfilter.rules import (
    KNOWN_TARGETS,
    OPTIONLESS_EXTENSIONS,
    ParseContext,
    build_rule,
    parse_cidr,
    resolve_jumps,
)
from meshstat.parsers.netfilter.ruleset import (
    BUILTIN_CHAINS,
    Chain,
    Match,
    ParseWarning,
    Rule,
    Ruleset,
    Table,
    Target,
)

__all__ = [
    "MAX_COUNTER",
    "Counters",
    "ListingInfo",
    "listing_info",
    "parse_iptables_list",
    "parse_iptables_paste",
    "printed_count_range",
    "probability_threshold_candidates",
    "rule_counters",
    "sniff_iptables_text",
    "to_iptables_save",
]

#: Key of the :class:`ListingInfo` in :attr:`Ruleset.cache`.
CACHE_KEY = "iptables-list"
#: Key set (to True) in :attr:`Ruleset.cache` of a ruleset read by :func:`parse_iptables_paste`.
PASTE_KEY = "iptables-paste"

_TWO31 = 1 << 31

#: ``ADDRTYPE match ... limit-in`` (libxt_addrtype print form) -> the iptables-save option
_ADDRTYPE_LIMITS = {"limit-in": "--limit-iface-in", "limit-out": "--limit-iface-out"}


class Counters(NamedTuple):
    """Packet and byte counters of a rule or a chain policy, as the listing printed them.

    ``exact`` (packets) and ``bytes_exact`` are False when the count was
    rounded: a listing without ``-x`` prints counts above 99,999 as ``12K``
    (``xtables_print_num`` rounds ``(n + 500) // 1000`` per step), kept as the
    printed value (12,000); :meth:`packets_range` is the interval of counts
    that print so (:func:`printed_count_range`: ``12K`` is 11,500 to 12,499).
    """

    packets: int
    bytes: int
    exact: bool = True
    bytes_exact: bool = True

    def packets_range(self) -> tuple[int, int]:
        """The packet counts the printed value stands for (one count when ``exact``)."""
        return printed_count_range(self.packets, self.exact)


#: The kernel's counters are ``u64``.
MAX_COUNTER = 2**64 - 1


def printed_count_range(value: int, exact: bool) -> tuple[int, int]:
    """Every count that ``iptables -L`` (without ``-x``) prints as ``value``: ``(low, high)``.

    ``value`` is the printed number times its suffix (``10M`` is 10,000,000);
    ``exact`` False means it had a suffix. iptables ``libxtables/xtables.c:
    xtables_print_num`` (``iptables/iptables.c: print_num`` before 1.8)
    prints a count up to 99,999 as it is; above, it divides by 1,000 rounding
    half up (``(n + 500) / 1000``) and prints ``K`` if the result is at most
    9,999, else divides again for ``M``, then ``G``, and prints ``T`` after the
    fourth division whatever the size. So ``x`` at level ``L`` (K = 1 .. T = 4)
    is every ``n`` with ``f^L(n) = x`` (``f(n) = (n + 500) // 1000``, whose
    inverse image of ``y`` is ``[1000 y - 500, 1000 y + 499]``) and, for the
    levels it went past, ``f^(L-1)(n) >= 10,000`` (``n >= 100,000`` for K).
    ``10M`` is 9,999,500 to 10,499,499 (not the 9,500,000 to 10,499,999 of
    rounding once), ``100K`` is 100,000 to 100,499.

    A value no iptables prints (``5K``: below the ``K`` range) gets the
    rounding interval of its suffix alone.

    Examples
    --------
    >>> printed_count_range(10_000_000, False)
    (9999500, 10499499)
    >>> printed_count_range(12_000, True)
    (12000, 12000)
    """
    if exact:
        return value, value
    level, x = 1, value // 1000
    while level < 4 and x > 9999:  # the suffix: the first level whose printed number is at most 9,999
        level, x = level + 1, x // 1000
    lo, hi = x, x
    for _ in range(level):
        lo, hi = 1000 * lo - 500, 1000 * hi + 499
    floor = 100_000
    if level > 1:
        floor = 10_000
        for _ in range(level - 1):
            floor = 1000 * floor - 500
    lo, hi = max(lo, 0), min(hi, MAX_COUNTER)
    return (max(lo, floor), hi) if max(lo, floor) <= hi else (lo, hi)


@dataclass(eq=False)
class ListingInfo:
    """What a listing holds beside the rules (``Ruleset.cache["iptables-list"]``).

    Attributes
    ----------
    counters : dict
        ``Rule -> Counters`` for every rule of a ``-v`` listing (by identity).
    policies : dict
        ``(family, table, chain) -> Counters`` of built-in chain policies.
    references : dict
        ``(family, table, chain) -> N`` from ``(N references)``.
    sections : list of dict
        Per listing in the paste: ``table``, ``family``, ``first_line``,
        ``numeric``, ``verbose``, ``exact``, ``line_numbers`` and ``table_from``
        (``"command"`` or ``"inferred"``).
    """

    counters: dict[Rule, Counters] = field(default_factory=dict)
    policies: dict[tuple[str, str, str], Counters] = field(default_factory=dict)
    references: dict[tuple[str, str, str], int] = field(default_factory=dict)
    sections: list[dict[str, Any]] = field(default_factory=list)


def listing_info(ruleset: Ruleset) -> ListingInfo | None:
    """The :class:`ListingInfo` of a ruleset read from a listing, else ``None``."""
    info = ruleset.cache.get(CACHE_KEY)
    return info if isinstance(info, ListingInfo) else None


def rule_counters(ruleset: Ruleset, rule: Rule) -> Counters | None:
    """The counters the listing printed for ``rule`` (``None``: not a ``-v`` listing)."""
    info = listing_info(ruleset)
    return None if info is None else info.counters.get(rule)


# --------------------------------------------------------------------------- probabilities


def probability_threshold_candidates(text: str) -> tuple[int, int]:
    """Every stored threshold ``k`` whose printed probability could read ``text``.

    iptables prints ``k / 2**31`` rounded to the decimals shown (``%.11f`` in
    ``iptables -L`` and ``iptables-save`` since 1.4.11, ``%f`` before:
    ``extensions/libxt_statistic.c: print_match``). Returns ``(k_lo, k_hi)``,
    the range of ``k`` with ``|k / 2**31 - p| <= 0.5 * 10**-d`` for ``d``
    decimals, computed exactly. With 11 decimals the half-width is
    ``5e-12 * 2**31 < 0.011``, so the range holds at most one ``k`` and it is
    ``lround(p * 2**31)``: the printed value always round-trips to the stored
    integer. ``k_lo > k_hi`` cannot happen for a value iptables printed.

    Raises
    ------
    ValueError
        If ``text`` is not a plain decimal in ``[0, 1]``.
    """
    t = text.strip()
    if not re.fullmatch(r"[0-9]+(?:\.[0-9]*)?", t):
        raise ValueError(text)
    p = Fraction(t)
    if p > 1:
        raise ValueError(text)
    decimals = len(t.partition(".")[2])
    half = Fraction(1, 2 * 10**decimals)
    lo = max(Fraction(0), (p - half) * _TWO31)
    hi = min(Fraction(_TWO31), (p + half) * _TWO31)
    k_lo = -((-lo.numerator) // lo.denominator)  # ceil
    k_hi = hi.numerator // hi.denominator  # floor
    return k_lo, k_hi


# --------------------------------------------------------------------------- small tables

# libxtables/xtables.c: xtables_chain_protos (the names iptables-save prints)
_PROTO_NUMBERS = {
    "0": "all", "1": "icmp", "6": "tcp", "17": "udp", "58": "ipv6-icmp", "132": "sctp", "136": "udplite",
    "50": "esp", "51": "ah", "135": "ipv6-mh",
}  # fmt: skip
_PROTO_NAMES = {
    "all",
    "tcp",
    "udp",
    "icmp",
    "ipv6-icmp",
    "icmpv6",
    "sctp",
    "udplite",
    "esp",
    "ah",
    "ipv6-mh",
    "mh",
}
# names /etc/protocols gives that iptables-save prints as numbers
_PROTO_OTHER = {
    "ip": "0", "igmp": "2", "ipencap": "4", "gre": "47", "ospf": "89", "vrrp": "112", "l2tp": "115",
    "ipip": "94", "pim": "103", "ipv6": "41", "dccp": "33",
}  # fmt: skip

# IANA well-known service names (the ones /etc/services has on every distribution)
_SERVICES = {
    "ftp-data": 20, "ftp": 21, "ssh": 22, "telnet": 23, "smtp": 25, "domain": 53, "bootps": 67, "bootpc": 68,
    "tftp": 69, "http": 80, "kerberos": 88, "pop3": 110, "sunrpc": 111, "ntp": 123, "netbios-ns": 137,
    "imap2": 143, "snmp": 161, "ldap": 389, "https": 443, "microsoft-ds": 445, "submission": 587,
    "ldaps": 636, "imaps": 993, "pop3s": 995, "mysql": 3306, "postgresql": 5432, "http-alt": 8080,
    "webcache": 8080,
    "cisco-sccp": 2000, "nfs": 2049, "redis": 6379, "x11": 6000,
}  # fmt: skip
# the names xtables_ipaddr_to_anyname prints for addresses every distribution names alike
# (/etc/hosts: localhost, ip6-localhost; /etc/networks: loopback, link-local)
_WELL_KNOWN_NAMES = {
    ("localhost", "ip"): "127.0.0.1", ("localhost", "ip6"): "::1", ("ip6-localhost", "ip6"): "::1",
    ("ip6-loopback", "ip6"): "::1", ("loopback", "ip"): "127.0.0.0", ("link-local", "ip"): "169.254.0.0",
}  # fmt: skip
# libxt_LOG.c: the --log-* flags, by bit
_LOG_FLAGS = ((1, "--log-tcp-sequence"), (2, "--log-tcp-options"), (4, "--log-ip-options"), (8, "--log-uid"),
              (0x20, "--log-macdecode"))  # fmt: skip
_SYSLOG_LEVELS = {"emerg": 0, "alert": 1, "crit": 2, "err": 3, "error": 3, "warning": 4, "warn": 4,
                  "notice": 5, "info": 6, "debug": 7}  # fmt: skip
# libxt_tcp.c: tcp_flag_names (print order)
_TCP_FLAGS = (("FIN", 0x01), ("SYN", 0x02), ("RST", 0x04), ("PSH", 0x08), ("ACK", 0x10), ("URG", 0x20),
              ("ECE", 0x40), ("CWR", 0x80))  # fmt: skip
_TCP_FLAG_BITS = dict(_TCP_FLAGS) | {"ALL": 0x3F, "NONE": 0}

# target extensions iptables knows beside those meshstat models (a listed name not
# declared as a chain is one of these, or a chain missing from the paste)
_EXTENSION_TARGETS = OPTIONLESS_EXTENSIONS | {
    "NFQUEUE", "NFLOG", "SET", "TEE", "CLASSIFY", "DSCP", "TOS", "TTL", "HL", "TCPMSS", "SECMARK",
    "CONNSECMARK", "AUDIT", "CHECKSUM", "IDLETIMER", "LED", "RATEEST", "SYNPROXY", "NETMAP", "HMARK",
    "TCPOPTSTRIP", "DNPT", "SNPT", "JOOL", "MIRROR", "SAME", "ULOG", "CLUSTERIP", "ECN",
}  # fmt: skip
_NAT_TARGETS = {"DNAT", "SNAT", "REDIRECT", "MASQUERADE", "NETMAP"}
_CT_KEYWORDS = {
    "ctproto", "ctorigsrc", "ctorigdst", "ctreplsrc", "ctrepldst", "ctorigsrcport", "ctorigdstport",
    "ctreplsrcport", "ctrepldstport", "ctstatus", "ctexpire", "ctdir",
}  # fmt: skip
# the first word of every match print this module reads
_PHRASE_WORDS = {
    "tcp", "udp", "sctp", "udplite", "multiport", "statistic", "owner", "mark", "connmark", "recent:",
    "ADDRTYPE", "ctstate", "state", "nfacct-name", "icmptype", "icmp", "[goto]", "limit:",
} | _CT_KEYWORDS  # fmt: skip

_DASHES = "\u2010\u2011\u2012\u2013\u2014\u2015\u2212\ufe58\ufe63\uff0d"
_DASH_NAMES = {"\u2013": "en dash", "\u2014": "em dash", "\u2212": "minus sign"}
_CURLY_DOUBLE = "\u201c\u201d\u201e\u201f\u2033\uff02"
_ODD_SPACES = "\u00a0\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u202f\u205f\u3000\t"
_ZERO_WIDTH = "\ufeff\u200b\u200c\u200d\u2060"
_ODD_SPACE_TABLE = str.maketrans({c: " " for c in _ODD_SPACES if c != "\t"} | dict.fromkeys(_ZERO_WIDTH, ""))

_CHAIN_HEADER = re.compile(
    r"^Chain\s+(?P<name>\S+)\s+\("
    r"(?:policy\s+(?P<policy>\S+)(?:\s+(?P<pp>\S+)\s+packets,\s+(?P<pb>\S+)\s+bytes)?"
    r"|(?P<refs>\d+)\s+references|ERROR obtaining refs)\)$"
)
_HEADER_WORDS = frozenset(
    {"num", "pkts", "bytes", "target", "prot", "opt", "in", "out", "source", "destination"}
)
_COUNTER = re.compile(r"([0-9]+)([KMGT]?)")
_WORD = re.compile(r"\S+")
# a shell prompt ("$ ", "# ", "[root@h ~]# ", "user@host:/$ ") or an iptables command line
_PROMPT = re.compile(r"^(?:\[[^\]]*\]\s*[#$%]|[\w.@~:/()-]*[$%>]|[\w.@~:/()-]+#|#)\s")
_COMMAND = re.compile(
    r"(?:^|[\s#$%>\]])(?:sudo\s+)?(?:\S*/)?(?P<prog>ip6?tables(?:-legacy|-nft)?(?:-save)?)(?:\s+(?P<args>.*))?$"
)
# comment lines iptables itself writes: never a command
_OWN_COMMENT = re.compile(r"^#\s*(?:Generated by|Completed on|Warning:)")


class _Command(NamedTuple):
    program: str
    table: str | None
    family: str
    listing: bool
    flags: frozenset[str]


def _command(line: str) -> _Command | None:
    """An ``iptables ... -L`` / ``iptables-save ...`` command in a prompt or comment line."""
    if _OWN_COMMENT.match(line):
        return None
    m = _COMMAND.search(line)
    if m is None:
        return None
    prog = m["prog"]
    args = re.split(r"\s*(?:\||;|&&)\s*", m["args"] or "", maxsplit=1)[0].split()
    table = None
    flags: set[str] = set()
    listing = False
    i = 0
    while i < len(args):
        a = args[i]
        if a in ("-t", "--table") and i + 1 < len(args):
            table = args[i + 1]
            i += 2
            continue
        if a.startswith("--table="):
            table = a.split("=", 1)[1]
        elif a in ("--list", "-L"):
            listing = True
        elif a in ("--numeric", "--verbose", "--exact", "--line-numbers", "--list-rules"):
            flags.add(a)
        elif a.startswith("-") and not a.startswith("--"):
            letters = a[1:]
            if "t" in letters and letters.endswith("t") and i + 1 < len(args):
                table = args[i + 1]
                letters = letters[:-1]
                i += 1
            flags.update(letters)
            listing = listing or "L" in letters
        i += 1
    if prog.endswith("-save"):
        listing = False
    elif not listing and "S" not in flags and "--list-rules" not in flags:
        return None
    if table is not None and table not in BUILTIN_CHAINS:
        table = None
    return _Command(prog, table, "ip6" if prog.startswith("ip6") else "ip", listing, frozenset(flags))


def _is_prompt(line: str) -> bool:
    return bool(_PROMPT.match(line))


# --------------------------------------------------------------------------- sniffing


def _head_lines(text: str, limit: int) -> Any:
    """The first ``limit`` lines of ``text``, without splitting (or copying) the rest of it."""
    pos = 0
    n = len(text)
    for _ in range(limit):
        if pos >= n:
            return
        end = text.find("\n", pos)
        if end < 0:
            end = n
        yield text[pos:end].rstrip("\r")
        pos = end + 1


def sniff_iptables_text(text: str) -> str | None:
    """``"list"`` for an ``iptables -L`` listing, ``"paste"`` for ``iptables-save`` text that
    needs repair (copy-paste damage, shell prompts, or rules without a ``*table`` line),
    ``None`` otherwise (clean ``iptables-save`` output, nft, anything else).

    Only the first meaningful line decides (shell prompts, ``iptables`` commands
    and ``#`` comments are skipped), plus, for an ``iptables-save`` dump, whether
    the text is pure ASCII (O(1) for Python strings): a large clean dump costs
    nothing here.
    """
    skipped_prompt = False
    for raw in _head_lines(text, 2000):
        line = raw.translate(_ODD_SPACE_TABLE).strip()
        if not line:
            continue
        cmd = _command(line) if "tables" in line else None
        if line.startswith("#") and cmd is None:
            continue
        if _is_prompt(line) or cmd is not None:
            skipped_prompt = True
            continue
        if line.startswith("Chain ") and _CHAIN_HEADER.match(" ".join(line.split())):
            return "list"
        head = line.split(None, 1)[0]
        if line[0] == "*":
            if skipped_prompt or (
                not text.isascii() and any(c in text for c in _DASHES + _CURLY_DOUBLE + _ZERO_WIDTH)
            ):
                return "paste"
            return None
        dashless = head.translate({ord(c): "-" for c in _DASHES})
        if line[0] in ":[" or dashless in ("-A", "-I", "-N", "-P", "-F", "-X", "--append", "--new-chain"):
            return "paste"
        return None
    return None


# --------------------------------------------------------------------------- warnings


class _Notes:
    """Warnings gathered by kind, reported once with every line they concern."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.groups: dict[str, tuple[str, list[int]]] = {}
        self.single: list[ParseWarning] = []

    def add(self, key: str, line: int, message: str) -> None:
        g = self.groups.get(key)
        if g is None:
            self.groups[key] = (message, [line])
        elif line not in g[1]:
            g[1].append(line)

    def warn(self, line: int, message: str) -> None:
        self.single.append(ParseWarning(self.source, line, message))

    def flush(self) -> list[ParseWarning]:
        out = list(self.single)
        for message, lines in self.groups.values():
            rest = lines[1:]
            more = ""
            if rest:
                shown = ", ".join(map(str, rest[:10]))
                more = (
                    f" (also line{'s' if len(rest) > 1 else ''} {shown}{', ...' if len(rest) > 10 else ''})"
                )
            out.append(ParseWarning(self.source, lines[0], message + more))
        out.sort(key=lambda w: w.line)
        return out


# --------------------------------------------------------------------------- the listing parser


class _Cols(NamedTuple):
    num: bool
    counters: bool
    via: bool


class _Row(NamedTuple):
    line: int
    chain: str
    num: int | None
    counters: Counters | None
    target: str
    prot: str
    frag: str
    in_if: str | None
    out_if: str | None
    src: str
    dst: str
    rest: str
    raw: str


@dataclass
class _Header:
    name: str
    line: int
    policy: str | None
    counters: Counters | None
    refs: int | None


@dataclass
class _Section:
    first_line: int
    command: _Command | None
    headers: dict[str, _Header] = field(default_factory=dict)
    rows: list[_Row] = field(default_factory=list)
    cols: _Cols | None = None
    numeric: bool = True
    header_seen: bool = False


def _counter(tok: str) -> tuple[int, bool] | None:
    """``(value, exact)`` of a packet or byte counter (``123``, ``45K``); None if not one.

    The kernel's counters are ``u64``: a larger value is not a counter (the
    line is then refused).
    """
    m = _COUNTER.fullmatch(tok)
    if m is None or len(m[1]) > 19:
        return None
    v = int(m[1])
    if m[2]:
        v *= 1000 ** ("KMGT".index(m[2]) + 1)
    if v > _MAX_COUNTER:
        return None
    return v, not m[2]


_MAX_COUNTER = MAX_COUNTER


def _opt(tok: str) -> str | None:
    """The ``opt`` column (``--``, ``-f``, ``!f``), repairing typographic dashes; None if not one."""
    norm = tok.translate({ord(c): "-" for c in _DASHES})
    if norm == "-" or norm == "--":
        return "--"
    if norm in ("-f", "!f"):
        return norm
    return None


class _ListParser:
    def __init__(self, source: str) -> None:
        self.source = source
        self.rs = Ruleset(dialect="iptables", source=source)
        self.info = ListingInfo()
        self.notes = _Notes(source)
        self.ctx = ParseContext(source, self.rs.warnings)
        self.sections: list[_Section] = []
        self.sec: _Section | None = None
        self.chain: str | None = None
        self.command: _Command | None = None
        self.collapsed: list[int] = []

    def error(self, line: int, message: str, snippet: str | None = None) -> ConfigParseError:
        return ConfigParseError(message, source=self.source, line=line, snippet=snippet)

    # ----------------------------------------------------------------- reading lines

    def parse(self, text: str) -> Ruleset:
        lines = text.splitlines()
        for lineno, raw in enumerate(lines, 1):
            self.line(lineno, raw)
        if not self.sections:
            raise ConfigParseError(
                "empty input: expected an iptables -L listing ('Chain NAME (policy ...)' lines)",
                source=self.source,
            )
        for sec in self.sections:
            self.build(sec)
        if self.collapsed:
            self.notes.add(
                "collapsed", self.collapsed[0],
                "repaired copy-paste damage: the listing's column alignment is lost (leading spaces stripped "
                "or runs of spaces collapsed); read word by word",
            )  # fmt: skip
        self.rs.warnings.extend(self.notes.flush())
        self.rs.warnings.sort(key=lambda w: w.line)
        self.rs.cache[CACHE_KEY] = self.info
        return self.rs

    def line(self, lineno: int, raw: str) -> None:
        clean = raw.translate(_ODD_SPACE_TABLE)
        if clean != raw and raw.strip():
            self.notes.add(
                "spaces", lineno,
                "repaired copy-paste damage: non-breaking, typographic or zero-width spaces (or a "
                "byte-order mark) "
                "read as spaces",
            )  # fmt: skip
        line = clean.strip()
        if not line:
            return
        cmd = _command(line) if "tables" in line else None
        if cmd is not None and (
            line.startswith("#") or _is_prompt(line) or line.split()[0].endswith(cmd.program)
        ):
            if cmd.listing:
                self.command = cmd
                self.sec = None
                self.chain = None
            return
        if line.startswith("#") or _is_prompt(line):
            return
        if line.startswith("Chain "):
            self.header(lineno, " ".join(line.split()), raw)
            return
        if self.chain is None:
            raise self.error(
                lineno,
                "expected 'Chain NAME (policy P ...)' or 'Chain NAME (N references)' before the rules",
                line,
            )
        words = line.split()
        if set(words) <= _HEADER_WORDS and ("target" in words or "source" in words):
            if "source" not in words or "destination" not in words:
                raise self.error(lineno, "expected a column header ending in 'source destination'", line)
            assert self.sec is not None
            self.sec.cols = _Cols("num" in words, "pkts" in words, "in" in words)
            self.sec.header_seen = True
            # print_header pads every column ("%-9s ", " %-19s "...) and right-aligns "pkts"
            if "  " not in line or (words[0] == "pkts" and not raw.startswith(" ")):
                self.collapsed.append(lineno)
            return
        self.row(lineno, line, raw)

    def header(self, lineno: int, line: str, raw: str) -> None:
        m = _CHAIN_HEADER.match(line)
        if m is None:
            raise self.error(
                lineno,
                "expected 'Chain NAME (policy ACCEPT|DROP [N packets, M bytes])' or 'Chain NAME (N "
                "references)'",
                line,
            )
        name = m["name"]
        sec = self.sec
        if sec is None or name in sec.headers:
            sec = self.sec = _Section(lineno, self.command)
            self.sections.append(sec)
            self.command = None
        counters = None
        if m["pp"] is not None:
            pp, pb = _counter(m["pp"]), _counter(m["pb"])
            if pp is None or pb is None:
                raise self.error(
                    lineno, "expected packet and byte counts in the policy ('N packets, M bytes')", line
                )
            counters = Counters(pp[0], pb[0], pp[1], pb[1])
        policy = m["policy"]
        if policy is not None and policy not in ("ACCEPT", "DROP"):
            raise self.error(lineno, f"expected policy ACCEPT or DROP, got '{policy}'", line)
        if m["refs"] and len(m["refs"]) > 10:
            raise self.error(lineno, "expected a number of references below 2**32 in '(N references)'", line)
        sec.headers[name] = _Header(name, lineno, policy, counters, int(m["refs"]) if m["refs"] else None)
        self.chain = name

    def row(self, lineno: int, line: str, raw: str) -> None:
        sec = self.sec
        assert sec is not None
        assert self.chain is not None
        toks = [(m.group(), m.start()) for m in _WORD.finditer(line)]
        if sec.cols is None:
            for cols in (_Cols(False, True, True), _Cols(False, False, False), _Cols(True, True, True),
                         _Cols(True, False, False)):  # fmt: skip
                try:
                    row = self.split_row(lineno, line, raw, toks, cols)
                except ConfigParseError:
                    continue
                sec.cols = cols
                self.notes.warn(
                    lineno,
                    "no column header before the first rule of chain "
                    f"{self.chain}: columns read as "
                    + " ".join(w for w, on in (("num", cols.num), ("pkts bytes", cols.counters)) if on)
                    + (" " if cols.num or cols.counters else "")
                    + "target prot opt"
                    + (" in out" if cols.via else "")
                    + " source destination",
                )
                break
            else:
                raise self.error(
                    lineno,
                    "expected a rule line: [num] [pkts bytes] target prot opt [in out] source destination "
                    "[matches]",
                    line,
                )
        else:
            row = self.split_row(lineno, line, raw, toks, sec.cols)
        # Without a column header to judge by: print_rule_details pads the columns, and
        # xtables_print_num right-aligns the packet count ("%5llu "), so a real line has runs of
        # spaces, and a -v line starts with one unless its packet count has 5 digits or more.
        if not sec.header_seen and (
            "  " not in line
            or (sec.cols.counters and not sec.cols.num and raw[:1] != " " and len(line.split()[0]) < 5)
        ):
            self.collapsed.append(lineno)
        sec.rows.append(row)

    def split_row(self, lineno: int, line: str, raw: str, toks: list[tuple[str, int]], cols: _Cols) -> _Row:
        i = 0
        n = len(toks)
        num = None
        if cols.num:
            if i >= n or not ascii_digits(toks[i][0]):
                raise self.error(
                    lineno, "expected the rule number (--line-numbers) in the first column", line
                )
            num = int(toks[i][0])
            i += 1
        counters = None
        if cols.counters:
            if i + 1 >= n:
                raise self.error(lineno, "expected packet and byte counters (a -v listing)", line)
            pk, by = _counter(toks[i][0]), _counter(toks[i + 1][0])
            if pk is None or by is None:
                raise self.error(
                    lineno,
                    "expected packet and byte counters (digits, optionally K/M/G/T) in the first columns",
                    line,
                )
            counters = Counters(pk[0], by[0], pk[1], by[1])
            i += 2
        rem = [t for t, _ in toks[i : i + 3]]
        if len(rem) >= 2 and _opt(rem[1]) is not None and _opt(rem[0]) is None:
            target, prot, opt_tok = "", rem[0], rem[1]
            i += 2
        elif len(rem) >= 3 and _opt(rem[2]) is not None:
            target, prot, opt_tok = rem[0], rem[1], rem[2]
            i += 3
        else:
            raise self.error(lineno, "expected the columns target, prot and opt ('--', '-f' or '!f')", line)
        frag = _opt(opt_tok)
        assert frag is not None
        if frag != opt_tok:
            bad = "".join(dict.fromkeys(c for c in opt_tok if c in _DASHES))
            what = " and ".join(_DASH_NAMES.get(c, f"U+{ord(c):04X}") for c in bad) or repr(opt_tok)
            self.notes.add(
                f"dash:{opt_tok}",
                lineno,
                f"repaired copy-paste damage: '{opt_tok}' ({what}) in the opt column read as '{frag}'",
            )
        if not re.fullmatch(r"!?[A-Za-z0-9_-]+", prot):
            raise self.error(lineno, f"expected a protocol in the prot column, got '{prot}'", line)
        in_if = out_if = None
        if cols.via:
            if i + 1 >= n:
                raise self.error(lineno, "expected the in and out interface columns (a -v listing)", line)
            in_if, out_if = toks[i][0], toks[i + 1][0]
            for x in (in_if, out_if):
                if not re.fullmatch(r"!?[A-Za-z0-9_.:@+*-]{1,17}", x):
                    raise self.error(lineno, f"expected an interface name, '*' or 'any', got '{x}'", line)
            i += 2
        if i + 1 >= n:
            raise self.error(lineno, "expected the source and destination columns", line)
        src, dst = toks[i][0], toks[i + 1][0]
        i += 2
        rest = line[toks[i][1] :] if i < n else ""
        return _Row(
            lineno, self.chain or "", num, counters, target, prot, frag, in_if, out_if, src, dst, rest, raw
        )

    # ----------------------------------------------------------------- building a table

    def build(self, sec: _Section) -> None:
        builtins = {h for h, hd in sec.headers.items() if hd.policy is not None}
        targets = {r.target for r in sec.rows}
        table_name = sec.command.table if sec.command is not None else None
        table_from = "command"
        if table_name is None and sec.command is not None and not sec.command.program.endswith("-save"):
            table_name = "filter"  # iptables -L without -t lists the filter table
        if table_name is None:
            table_name, why = _infer_table(builtins, targets, set(sec.headers))
            table_from = "inferred"
            self.notes.warn(
                sec.first_line,
                f"the paste does not say which table this listing is (no 'iptables -t TABLE -L' line): "
                f"read as table '{table_name}' ({why})",
            )
        family = sec.command.family if sec.command is not None else None
        if family is None:
            family = "ip6" if any(":" in x.lstrip("!") for r in sec.rows for x in (r.src, r.dst)) else "ip"
        key = (family, table_name)
        if key in self.rs.tables:
            raise self.error(
                sec.first_line,
                f"table '{table_name}' ({family}) is listed twice (first at line "
                f"{self.rs.tables[key].line}); "
                "expected one listing per table",
            )
        table = Table(name=table_name, family=family, line=sec.first_line)
        for b in BUILTIN_CHAINS[table_name]:
            table.chains[b] = Chain(name=b, policy="ACCEPT", builtin=True)
        for hd in sec.headers.values():
            if hd.policy is not None:
                ch = table.chains.get(hd.name)
                if ch is None or not ch.builtin:
                    raise self.error(
                        hd.line,
                        f"chain '{hd.name}' has a policy, but table '{table_name}' has no built-in chain of "
                        "that name "
                        "(expected 'iptables -t TABLE -L' before the listing)",
                    )
                ch.policy = hd.policy
                ch.line = hd.line
                if hd.counters is not None:
                    self.info.policies[(family, table_name, hd.name)] = hd.counters
            else:
                if hd.name in table.chains:
                    raise self.error(
                        hd.line, f"built-in chain '{hd.name}' printed with references, not a policy"
                    )
                table.chains[hd.name] = Chain(name=hd.name, line=hd.line)
                if hd.refs is not None:
                    self.info.references[(family, table_name, hd.name)] = hd.refs
        cols = sec.cols or _Cols(False, False, False)
        section_info = {
            "table": table_name, "family": family, "first_line": sec.first_line, "table_from": table_from,
            "verbose": cols.counters, "line_numbers": cols.num, "numeric": True,
            "exact": all(r.counters is None or r.counters.exact for r in sec.rows),
        }  # fmt: skip
        self.info.sections.append(section_info)
        if sec.rows and not cols.via:
            self.notes.warn(
                sec.rows[0].line,
                "listing without -v: interface matches (-i/-o) are not printed and cannot be recovered; "
                "the rules are read without them, and there are no counters (list with iptables -t "
                f"{table_name} -vnL)",
            )
        pending: list[Rule] = []
        numbers: dict[str, int] = {}
        missing: dict[str, int] = {}
        ctx = self.ctx
        for row in sec.rows:
            if row.num is not None:
                expect = numbers.get(row.chain, 0) + 1
                if row.num != expect:
                    raise self.error(
                        row.line, f"expected rule number {expect} in chain {row.chain}, got {row.num}"
                    )
                numbers[row.chain] = expect
            rule = _RowBuilder(self, table, row, family, sec).build()
            table.chains[row.chain].rules.append(rule)
            pending.append(rule)
            if row.counters is not None:
                self.info.counters[rule] = row.counters
            t = rule.target
            if (
                t.kind in ("jump?", "goto")
                and t.value not in table.chains
                and t.value not in _EXTENSION_TARGETS
            ):
                missing.setdefault(t.value, row.line)
        section_info["numeric"] = sec.numeric
        for name, line in missing.items():
            table.chains[name] = Chain(name=name, line=line)
            _unlisted(table, name, line, self.source, "jumped to but not in the listing")
        if missing:
            first = min(missing.values())
            self.notes.warn(
                first,
                f"chain{'s' if len(missing) > 1 else ''} {', '.join(missing)} "
                f"{'are' if len(missing) > 1 else 'is'} jumped to but not in the listing: a trace that "
                "reaches "
                "one ends as unknown (list the whole table to follow it)",
            )
        unlisted = [b for b in BUILTIN_CHAINS[table_name] if b not in sec.headers]
        if unlisted:
            for b in unlisted:
                _unlisted(table, b, sec.first_line, self.source, "a built-in chain not in the listing")
            self.notes.warn(
                sec.first_line,
                f"built-in chain{'s' if len(unlisted) > 1 else ''} {', '.join(unlisted)} of table "
                f"'{table_name}' "
                f"{'are' if len(unlisted) > 1 else 'is'} not in the listing: a trace through "
                f"{'them' if len(unlisted) > 1 else 'it'} ends as unknown",
            )
        ctx.line = sec.first_line
        resolve_jumps(table, pending, ctx)
        for (fam, tname, cname), refs in self.info.references.items():
            if (fam, tname) != key:
                continue
            seen = len(table.referrers.get(cname, ()))
            if seen < refs:
                self.notes.warn(
                    sec.headers[cname].line,
                    f"chain {cname} has {refs} references but the listing shows {seen} rule"
                    f"{'s' if seen != 1 else ''} jumping to it: part of the table is not in the paste",
                )
        self.rs.tables[key] = table


def _unlisted(table: Table, name: str, line: int, source: str, why: str) -> None:
    """Give chain ``name`` one opaque rule: whatever it holds is unknown (not an empty chain)."""
    text = f"(chain {name} is {why})"
    label = f"{name} (not listed)"
    rule = Rule(table.name, name, line, source, text, (), Target("opaque", (label, text), text), None)
    table.chains[name].rules[:] = [rule]


def _infer_table(builtins: set[str], targets: set[str], chains: set[str]) -> tuple[str, str]:
    """Which table a listing shows, from its targets and built-in chains; and why."""
    nat = sorted(_NAT_TARGETS & targets)
    if nat:
        return "nat", f"target {nat[0]} exists only there"
    if "TPROXY" in targets:
        return "mangle", "target TPROXY exists only there"
    if {"CT", "NOTRACK"} & targets:
        return "raw", "targets CT/NOTRACK are raw-table targets"
    if "FORWARD" in builtins:
        if builtins & {"PREROUTING", "POSTROUTING"}:
            return "mangle", "it has the built-in chains FORWARD and PREROUTING/POSTROUTING"
        return "filter", "it has the built-in chain FORWARD and no PREROUTING/POSTROUTING"
    if "POSTROUTING" in builtins or {"PREROUTING", "INPUT"} <= builtins:
        return "nat", "its built-in chains are nat's"
    if {"REJECT", "DROP"} & targets:
        return "filter", "it rejects or drops packets"
    prefixes = ("KUBE-SVC-", "KUBE-SEP-", "KUBE-SVL-", "KUBE-EXT-", "KUBE-MARK-MASQ", "ISTIO_")
    kube = [c for c in chains if c.startswith(prefixes)]
    if kube:
        return "nat", f"chain {sorted(kube)[0]} is a nat chain of kube-proxy or Istio"
    return "nat", "nothing in it names the table; nat is where load balancing happens"


# --------------------------------------------------------------------------- one rule


def _save_string(value: str) -> str:
    """Quote a value as iptables-save does (``libxtables/xtables.c: xtables_save_string``)."""
    if value and re.fullmatch(r"[A-Za-z0-9_-]+", value):
        return value
    return '"' + re.sub(r'(["\\\'])', r"\\\1", value) + '"'


class _Phrase(NamedTuple):
    module: str
    opts: list[tuple[str, bool, list[str]]]


class _RowBuilder:
    """Translates one listing row into iptables-save words and builds its :class:`Rule`."""

    def __init__(self, p: _ListParser, table: Table, row: _Row, family: str, sec: _Section) -> None:
        self.p = p
        self.sec = sec
        self.table = table
        self.row = row
        self.family = family
        self.words: list[str] = []
        self.quoted: set[int] = set()
        self.strings: set[int] = set()  # free text (comments, log prefixes): quoted as iptables-save does
        self.opaque: list[Match] = []

    def error(self, message: str, snippet: str | None = None) -> ConfigParseError:
        return self.p.error(self.row.line, message, snippet if snippet is not None else self.row.raw.strip())

    def note(self, key: str, message: str) -> None:
        self.p.notes.add(key, self.row.line, message)

    def add(self, *words: str, quoted: bool = False) -> None:
        for w in words:
            if quoted:
                self.quoted.add(len(self.words))
            self.words.append(w)

    def value(self, w: str, *, string: bool = False) -> None:
        if string:
            self.strings.add(len(self.words))
        self.add(w, quoted=True)

    # ----------------------------------------------------------------- the fixed columns

    def build(self) -> Rule:
        row = self.row
        for letter, tok in (("s", row.src), ("d", row.dst)):
            self.address(letter, tok)
        for letter, tok in (("i", row.in_if), ("o", row.out_if)):
            if tok is None:
                continue
            neg = tok.startswith("!")
            name = tok[1:] if neg else tok
            if name in ("*", "any"):
                if neg:
                    raise self.error(f"expected an interface after '!', got '{tok}'")
                continue
            if neg:
                self.add("!")
            self.add("-" + letter, name)
        self.protocol(row.prot)
        if row.frag != "--":
            if row.frag.startswith("!"):
                self.add("!")
            self.add("-f")
        goto, tail = self.matches(row.rest)
        target = row.target
        target_text = ""
        override: Target | None = None
        if goto:
            if not target:
                raise self.error("expected a chain name in the target column of a [goto] rule")
            self.add("-g", target)
        elif target:
            if target in KNOWN_TARGETS and target not in ("ACCEPT", "DROP", "RETURN"):
                self.target_options(target, tail)
            elif tail:
                if (
                    target in self.table.chains
                    or target in ("ACCEPT", "DROP", "RETURN")
                    or target not in _EXTENSION_TARGETS
                ):
                    raise self.error(f"expected no options after target {target}, got '{' '.join(tail)}'")
                target_text = f"-j {target} ({' '.join(tail)})"
                override = Target("opaque", (target, target_text), target_text)
                self.note(
                    f"target:{target}",
                    f"unknown target '{target} {' '.join(tail)}' kept as opaque (its effect is not modelled)",
                )
            else:
                self.add("-j", target)
        elif tail:
            raise self.error(f"expected a match, got '{' '.join(tail)}'")
        text = "-A " + row.chain + ("" if not self.words else " " + self.render())
        if override is not None:
            text += " -j " + override.value[0]
        if self.opaque or override is not None:
            # what the listing printed but meshstat does not translate stays visible
            untranslated = [m.text for m in self.opaque] + ([override.text] if override is not None else [])
            text += "  # listing: " + "; ".join(untranslated)
        ctx = self.p.ctx
        ctx.line = row.line
        ctx.text = text
        rule, _v6 = build_rule(self.words, self.quoted or None, 0, self.table, row.chain, ctx)
        if override is not None:
            rule.target = override
        if self.opaque:
            rule.matches = (*rule.matches, *self.opaque)
        return rule

    def render(self) -> str:
        return " ".join(_save_string(w) if i in self.strings else w for i, w in enumerate(self.words))

    def address(self, letter: str, tok: str) -> None:
        neg = tok.startswith("!")
        a = tok[1:] if neg else tok
        what = "source" if letter == "s" else "destination"
        if a in ("anywhere", "0.0.0.0/0", "::/0"):
            if a == "anywhere":
                self.sec.numeric = False
            if neg:
                raise self.error(f"expected an address after '!' in the {what} column, got '{tok}'")
            return
        host, slash, plen = a.partition("/")
        is_v4 = bool(re.fullmatch(r"[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+", host))
        is_v6 = ":" in host and bool(re.fullmatch(r"[0-9A-Fa-f:.]+", host))
        if not (is_v4 or is_v6):
            # a name (a listing without -n): xtables_ipaddr_to_anyname
            ip = _WELL_KNOWN_NAMES.get((host, "ip6" if self.family == "ip6" else "ip"))
            if ip is not None and (not slash or ascii_digits(plen)):
                self.note(
                    f"host:{host}",
                    f"listing without -n: {'network' if ip.endswith('.0') else 'host'} name '{host}' read "
                    f"as {ip} "
                    "(the name every distribution's /etc/hosts or /etc/networks gives it; list with -n to "
                    "be sure)",
                )
                host, is_v6, is_v4 = ip, ":" in ip, ":" not in ip
                if slash:
                    a = f"{ip}/{plen}"
            else:
                text = f"{'! ' if neg else ''}-{letter} {a} (a name: the listing was printed without -n)"
                self.opaque.append(Match("opaque", False, f"{what} name", text))
                self.note(
                    f"name:{a}",
                    f"listing without -n: {what} '{a}' is a host or network name whose address the listing "
                    "does not give; kept as an unknown match (list with -n)",
                )
                return
        if not slash:
            a = host + ("/128" if is_v6 else "/32")
        try:
            parse_cidr(a)
        except ValueError:
            raise self.error(f"expected an IP address or prefix in the {what} column, got '{tok}'") from None
        if neg:
            self.add("!")
        self.add("-" + letter, a)

    def protocol(self, tok: str) -> None:
        neg = tok.startswith("!")
        p = (tok[1:] if neg else tok).lower()
        if ascii_digits(p):
            if int(p) > 255:
                raise self.error(f"expected a protocol number 0-255, got '{tok}'")
            p = _PROTO_NUMBERS.get(p, p)
        elif p not in _PROTO_NAMES:
            num = _PROTO_OTHER.get(p)
            if num is None:
                try:
                    if not re.fullmatch(r"[a-z][a-z0-9._+-]{0,31}", p):
                        raise OSError(p)
                    import socket

                    num = str(socket.getprotobyname(p))
                except OSError:
                    raise self.error(
                        f"expected a protocol name or number in the prot column, got '{tok}'"
                    ) from None
            p = num
        if p in ("all", "0") and not neg:
            return
        if neg:
            self.add("!")
        self.add("-p", p)

    # ----------------------------------------------------------------- matches

    def matches(self, rest: str) -> tuple[bool, list[str]]:
        """Read the match prints; returns (goto, the target's words)."""
        goto = False
        target = self.row.target
        toks = _rest_tokens(rest)
        # comments containing '*/' make the token list ambiguous; try the readings in order
        for k, reading in enumerate(toks):
            saved = (list(self.words), set(self.quoted), list(self.opaque))
            try:
                goto, tail, phrases = self._phrases(reading, target)
            except ConfigParseError:
                self.words, self.quoted, self.opaque = saved
                if k == len(toks) - 1:
                    raise
                continue
            if len(toks) > 1:
                self.note(
                    "comment-end",
                    "a comment contains '*/': its end was taken where the rest of the line parses",
                )
            self.emit(phrases)
            return goto, tail
        return goto, []

    def emit(self, phrases: list[_Phrase]) -> None:
        merged: list[_Phrase] = []
        for ph in phrases:
            if merged and merged[-1].module == ph.module and ph.module in ("owner", "addrtype", "conntrack"):
                merged[-1].opts.extend(ph.opts)
            else:
                merged.append(_Phrase(ph.module, list(ph.opts)))
        for ph in merged:
            if not ph.opts and ph.module not in ("tcp", "udp", "sctp", "udplite"):
                continue  # an owner match whose only option was a name (kept as opaque)
            self.add("-m", ph.module)
            for opt, neg, vals in ph.opts:
                if neg:
                    self.add("!")
                self.add(opt)
                for v in vals:
                    self.value(v, string=opt == "--comment")

    def _phrases(self, toks: list[str], target: str) -> tuple[bool, list[str], list[_Phrase]]:
        out: list[_Phrase] = []
        goto = False
        i = 0
        n = len(toks)
        starts = _target_starts(target)

        def need(j: int, what: str) -> str:
            if j >= n:
                raise self.error(f"expected {what}")
            return toks[j]

        def negatable(j: int, neg: bool, what: str) -> tuple[bool, str, int]:
            """The value at ``j``, after a ``!`` word or prefix if any: (negated, value, its index)."""
            v = need(j, what)
            if v == "!":
                return True, need(j + 1, f"{what} after '!'"), j + 1
            if v.startswith("!"):
                return True, v[1:], j
            return neg, v, j

        while i < n:
            t = toks[i]
            if t == "[goto]":
                goto = True
                i += 1
                continue
            if t.startswith("/*"):
                inner = t[2:-2] if t.endswith("*/") else t[2:]
                inner = inner[1:] if inner.startswith(" ") else inner
                inner = inner[:-1] if inner.endswith(" ") else inner
                out.append(_Phrase("comment", [("--comment", False, [inner])]))
                i += 1
                continue
            if starts(t, toks[i + 1] if i + 1 < n else None):
                return goto, toks[i:], out
            neg = False
            j = i
            if t == "!" and i + 1 < n and toks[i + 1] in _PHRASE_WORDS:
                neg = True
                j = i + 1
                t = toks[j]
            if t in ("tcp", "udp", "sctp", "udplite"):
                j, ph = self.l4(t, toks, j + 1)
                out.append(ph)
            elif t == "multiport" and not neg:
                kind = need(j + 1, "sports, dports or ports after 'multiport'")
                if kind not in ("sports", "dports", "ports"):
                    raise self.error(f"expected sports, dports or ports after 'multiport', got '{kind}'")
                mneg, v, j = negatable(j + 2, False, f"a port list after 'multiport {kind}'")
                ports = ",".join(
                    ":".join(str(self.port(x, "tcp")) for x in part.split(":")) for part in v.split(",")
                )
                out.append(_Phrase("multiport", [("--" + kind, mneg, [ports])]))
                j += 1
            elif t == "statistic" and not neg:
                j, ph = self.statistic(toks, j + 1)
                out.append(ph)
            elif t == "owner":
                j, ph = self.owner(toks, j + 1, neg)
                out.append(ph)
            elif t in ("mark", "connmark") and j + 1 < n and toks[j + 1] == "match":
                mneg, v, j = negatable(j + 2, neg, f"a mark after '{t} match'")
                if not re.fullmatch(r"(?:0x[0-9a-fA-F]+|[0-9]+)(?:/(?:0x[0-9a-fA-F]+|[0-9]+))?", v):
                    raise self.error(f"expected a mark VALUE[/MASK] after '{t} match', got '{v}'")
                out.append(_Phrase(t, [("--mark", mneg, [v])]))
                j += 1
            elif t == "recent:":
                j, ph = self.recent(toks, j + 1, neg)
                out.append(ph)
            elif t == "ADDRTYPE" and j + 1 < n and toks[j + 1] == "match" and not neg:
                j, ph = self.addrtype(toks, j + 2)
                out.append(ph)
            elif t in ("ctstate", "state") or t in _CT_KEYWORDS:
                v = need(j + 1, f"a value after '{t}'")
                mod = "state" if t == "state" else "conntrack"
                out.append(_Phrase(mod, [("--" + t, neg, [v])]))
                j += 2
            elif t == "nfacct-name" and not neg:
                v = need(j + 1, "a name after 'nfacct-name'")
                out.append(_Phrase("nfacct", [("--nfacct-name", False, [v])]))
                j += 2
            else:
                # a match meshstat does not read: up to the next print it knows
                k = j + 1
                while (
                    k < n
                    and toks[k] not in _PHRASE_WORDS
                    and not toks[k].startswith("/*")
                    and not (toks[k] == "!" and k + 1 < n and toks[k + 1] in _PHRASE_WORDS)
                    and not starts(toks[k], toks[k + 1] if k + 1 < n else None)
                ):
                    k += 1
                if any(x.endswith("*/") for x in toks[j:k]):
                    raise self.error("expected the end of a comment ('*/') only after '/*'")
                if (
                    target
                    and target not in KNOWN_TARGETS
                    and target not in self.table.chains
                    and (target in _EXTENSION_TARGETS)
                    and k >= n
                ):
                    return goto, toks[i:], out  # an unknown target's options
                text = " ".join(toks[i:k])
                module = {"icmptype": "icmp", "ADDRTYPE": "addrtype", "statistic": "statistic"}.get(
                    t, t.rstrip(":")
                )
                self.opaque.append(Match("opaque", False, module, text))
                self.note(
                    f"match:{t}",
                    f"unknown match '{text}' (listing form) kept as opaque (traced as unknown)",
                )
                j = k
            i = j
        return goto, [], out

    def l4(self, proto: str, toks: list[str], j: int) -> tuple[int, _Phrase]:
        opts: list[tuple[str, bool, list[str]]] = []
        n = len(toks)
        while j < n:
            t = toks[j]
            m = re.fullmatch(r"(spt|dpt)(s?):(!?)(.+)", t)
            if m is not None:
                v = m[4]
                if m[2]:
                    lo, sep, hi = v.partition(":")
                    if not sep:
                        raise self.error(f"expected {m[1]}s:LOW:HIGH, got '{t}'")
                    v = f"{self.port(lo, proto)}:{self.port(hi, proto)}"
                else:
                    v = str(self.port(v, proto))
                opts.append(("--sport" if m[1] == "spt" else "--dport", bool(m[3]), [v]))
                j += 1
                continue
            m = re.fullmatch(r"flags:(!?)([^/]+)/(.+)", t)
            if m is not None and proto == "tcp":
                mask, comp = self.tcp_flags(m[2]), self.tcp_flags(m[3])
                opts.append(("--tcp-flags", bool(m[1]), [mask, comp]))
                j += 1
                continue
            m = re.fullmatch(r"option=(!?)([0-9]+)", t)
            if m is not None and proto == "tcp":
                opts.append(("--tcp-option", bool(m[1]), [m[2]]))
                j += 1
                continue
            break
        return j, _Phrase(proto, opts)

    def tcp_flags(self, text: str) -> str:
        if re.fullmatch(r"0x[0-9a-fA-F]+|[0-9]+", text):
            bits = int(text, 0)
        else:
            bits = 0
            for name in text.split(","):
                if name.upper() not in _TCP_FLAG_BITS:
                    raise self.error(f"expected TCP flag names or a hex mask, got '{text}'")
                bits |= _TCP_FLAG_BITS[name.upper()]
        if bits == 0:
            return "NONE"
        return ",".join(name for name, bit in _TCP_FLAGS if bits & bit)

    def port(self, text: str, proto: str) -> int:
        if ascii_digits(text):
            v = int(text)
            if v > 65535:
                raise self.error(f"expected a port 0-65535, got '{text}'")
            return v
        v = _SERVICES.get(text)
        how = "the IANA name"
        if v is None:
            try:
                if not re.fullmatch(r"[A-Za-z][A-Za-z0-9._+-]{0,31}", text):
                    raise OSError(text)
                import socket

                v = socket.getservbyname(text, proto if proto in ("tcp", "udp") else "tcp")
                how = "this machine's services database"
            except OSError:
                raise self.error(
                    f"expected a port number; '{text}' is a service name this machine does not know "
                    "(list with -n)"
                ) from None
        self.note(f"port:{text}", f"listing without -n: port name '{text}' read as {v} ({how})")
        return v

    def statistic(self, toks: list[str], j: int) -> tuple[int, _Phrase]:
        n = len(toks)
        if j + 1 >= n or toks[j] != "mode" or toks[j + 1] not in ("random", "nth"):
            raise self.error("expected 'statistic mode random ...' or 'statistic mode nth ...'")
        mode = toks[j + 1]
        j += 2
        neg = False
        if j < n and toks[j] == "!":
            neg = True
            j += 1
        if mode == "random":
            if j + 1 >= n or toks[j] != "probability":
                raise self.error("expected 'probability P' after 'statistic mode random'")
            p = toks[j + 1]
            try:
                k_lo, k_hi = probability_threshold_candidates(p)
            except ValueError:
                raise self.error(f"expected a probability in [0, 1] after 'probability', got '{p}'") from None
            if k_hi > k_lo:
                self.note(
                    f"prob:{p}",
                    f"probability {p} has {len(p.partition('.')[2])} decimals (iptables before 1.4.11 "
                    "printed %f): "
                    f"the stored threshold is one of {k_hi - k_lo + 1} values {k_lo}..{k_hi}; read as "
                    f"lround(p * 2**31) (list with a newer iptables, or use iptables-save)",
                )
            return j + 2, _Phrase("statistic", [("--mode", False, ["random"]), ("--probability", neg, [p])])
        if j + 1 >= n or toks[j] != "every" or not ascii_digits(toks[j + 1]):
            raise self.error("expected 'every N' after 'statistic mode nth'")
        every = toks[j + 1]
        j += 2
        packet = "0"  # statistic_print omits 'packet 0'
        if j + 1 < n and toks[j] == "packet" and ascii_digits(toks[j + 1]):
            packet = toks[j + 1]
            j += 2
        return j, _Phrase(
            "statistic",
            [("--mode", False, ["nth"]), ("--every", neg, [every]), ("--packet", False, [packet])],
        )

    def owner(self, toks: list[str], j: int, neg: bool) -> tuple[int, _Phrase]:
        n = len(toks)
        if j + 1 < n and toks[j] == "socket" and toks[j + 1] == "exists":
            return j + 2, _Phrase("owner", [("--socket-exists", neg, [])])
        if (
            j + 1 < n
            and toks[j] == "incl."
            and toks[j + 1] == "suppl."
            and j + 2 < n
            and toks[j + 2] == "groups"
        ):
            return j + 3, _Phrase("owner", [("--suppl-groups", neg, [])])
        if j + 2 < n and toks[j] in ("UID", "GID") and toks[j + 1] == "match":
            v = toks[j + 2]
            opt = "--uid-owner" if toks[j] == "UID" else "--gid-owner"
            if not re.fullmatch(r"[0-9]+(?:-[0-9]+)?", v):
                if v == "root":
                    self.note(f"user:{v}", f"listing without -n: {toks[j]} name 'root' read as 0")
                    v = "0"
                else:
                    text = f"{'! ' if neg else ''}owner {toks[j]} match {v}"
                    self.opaque.append(Match("opaque", False, "owner", text))
                    self.note(
                        f"user:{v}",
                        f"listing without -n: {'user' if toks[j] == 'UID' else 'group'} name '{v}' is "
                        "machine-specific; kept as an unknown match (list with -n)",
                    )
                    return j + 3, _Phrase("owner", [])
            return j + 3, _Phrase("owner", [(opt, neg, [v])])
        raise self.error("expected 'owner UID match N', 'owner GID match N' or 'owner socket exists'")

    def recent(self, toks: list[str], j: int, neg: bool) -> tuple[int, _Phrase]:
        n = len(toks)
        cmds = {"SET": "--set", "CHECK": "--rcheck", "UPDATE": "--update", "REMOVE": "--remove"}
        if j >= n or toks[j] not in cmds:
            raise self.error("expected SET, CHECK, UPDATE or REMOVE after 'recent:'")
        opts: list[tuple[str, bool, list[str]]] = [(cmds[toks[j]], neg, [])]
        j += 1
        side = "--rsource"
        while j < n:
            t = toks[j]
            if t in ("seconds:", "hit_count:", "name:", "mask:", "side:") and j + 1 < n:
                v = toks[j + 1]
                if t == "side:":
                    if v not in ("source", "dest"):
                        raise self.error(f"expected 'side: source' or 'side: dest', got '{v}'")
                    side = "--rsource" if v == "source" else "--rdest"
                else:
                    opts.append(({"seconds:": "--seconds", "hit_count:": "--hitcount", "name:": "--name",
                                  "mask:": "--mask"}[t], False, [v]))  # fmt: skip
                j += 2
            elif t == "reap":
                opts.append(("--reap", False, []))
                j += 1
            elif t == "TTL-Match":
                opts.append(("--rttl", False, []))
                j += 1
            else:
                break
        opts.append((side, False, []))
        return j, _Phrase("recent", opts)

    def addrtype(self, toks: list[str], j: int) -> tuple[int, _Phrase]:
        n = len(toks)
        opts: list[tuple[str, bool, list[str]]] = []
        while j < n:
            t = toks[j]
            if t in ("src-type", "dst-type") and j + 1 < n:
                v = toks[j + 1]
                neg = v.startswith("!")
                opts.append(("--" + t, neg, [v[1:] if neg else v]))
                j += 2
            elif t in _ADDRTYPE_LIMITS:
                opts.append((_ADDRTYPE_LIMITS[t], False, []))
                j += 1
            else:
                break
        if not opts:
            raise self.error("expected src-type or dst-type after 'ADDRTYPE match'")
        return j, _Phrase("addrtype", opts)

    # ----------------------------------------------------------------- targets

    def target_options(self, target: str, tail: list[str]) -> None:
        """Turn a target's print (``to:10.0.0.1:80``, ``MARK or 0x4000``...) into its save options."""
        self.add("-j", target)
        opts: list[tuple[str, list[str]]] = []
        i = 0
        n = len(tail)

        def bad() -> ConfigParseError:
            return self.error(f"expected the options of target {target}, got '{' '.join(tail[i:])}'")

        if target in ("DNAT", "SNAT"):
            while i < n:
                t = tail[i]
                if t.startswith("to:"):
                    opts.append(("--to-destination" if target == "DNAT" else "--to-source", [t[3:]]))
                elif t in ("random", "persistent", "random-fully"):
                    opts.append(("--" + t, []))
                else:
                    raise bad()
                i += 1
        elif target in ("REDIRECT", "MASQUERADE"):
            while i < n:
                t = tail[i]
                if target == "REDIRECT" and t == "redir" and i + 2 < n and tail[i + 1] == "ports":
                    opts.append(("--to-ports", [tail[i + 2]]))
                    i += 3
                    continue
                if target == "MASQUERADE" and t == "masq" and i + 2 < n and tail[i + 1] == "ports:":
                    opts.append(("--to-ports", [tail[i + 2]]))
                    i += 3
                    continue
                if t in ("random", "random-fully"):
                    opts.append(("--" + t, []))
                    i += 1
                    continue
                raise bad()
        elif target in ("MARK", "CONNMARK"):
            if i >= n or tail[i] != target:
                raise bad()
            i += 1
            if i >= n:
                raise bad()
            op = tail[i]
            if target == "CONNMARK" and op in ("save", "restore"):
                masks = {"nfmask": 0xFFFFFFFF, "ctmask": 0xFFFFFFFF}
                i += 1
                while i + 1 < n and tail[i] in ("mask", "nfmask", "ctmask"):
                    v = _int(tail[i + 1].lstrip("~"))
                    if v is None:
                        raise bad()
                    if tail[i] == "mask":
                        masks = {"nfmask": v, "ctmask": v}
                    else:
                        masks[tail[i]] = v
                    i += 2
                opts.append(("--save-mark" if op == "save" else "--restore-mark", []))
                opts.append(("--nfmask", [f"{masks['nfmask']:#x}"]))
                opts.append(("--ctmask", [f"{masks['ctmask']:#x}"]))
            else:
                if i + 1 >= n:
                    raise bad()
                val = tail[i + 1]
                v, _, m = val.partition("/")
                vi, mi = _int(v), (_int(m) if m else None)
                if vi is None or (m and mi is None):
                    raise bad()
                # libxt_MARK.c: mark_tg_print / libxt_CONNMARK.c: connmark_tg_print (each one --set-xmark)
                if op == "xset" and mi is not None:
                    mark, mask = vi, mi
                elif op == "set" and mi is None:
                    mark, mask = vi, 0xFFFFFFFF
                elif op == "and" and mi is None:
                    mark, mask = 0, (~vi) & 0xFFFFFFFF
                elif op == "or" and mi is None:
                    mark, mask = vi, vi
                elif op == "xor" and mi is None:
                    mark, mask = vi, 0
                else:
                    raise bad()
                opts.append(("--set-xmark", [f"{mark:#x}/{mask:#x}"]))
                i += 2
        elif target == "TPROXY":
            if n < 3 or tail[0] != "TPROXY" or tail[1] != "redirect":
                raise bad()
            ip, _, port = tail[2].rpartition(":")
            if not ascii_digits(port):
                raise bad()
            opts.append(("--on-port", [port]))
            opts.append(("--on-ip", [ip.strip("[]")]))
            i = 3
            if i + 1 < n and tail[i] == "mark":
                opts.append(("--tproxy-mark", [tail[i + 1]]))
                i += 2
        elif target == "CT":
            if i >= n or tail[0] != "CT":
                raise bad()
            i = 1
            while i < n:
                t = tail[i]
                if t in ("notrack",):
                    opts.append(("--notrack", []))
                    i += 1
                elif i + 1 < n:
                    opts.append(("--" + t, [tail[i + 1]]))
                    i += 2
                else:
                    raise bad()
        elif target == "LOG":
            if i >= n or tail[0] != "LOG":
                raise bad()
            i = 1
            log_flags: list[tuple[str, list[str]]] = []
            while i < n:
                t = tail[i]
                if t == "flags" and i + 1 < n:
                    bits = _int(tail[i + 1])
                    if bits is None:
                        raise bad()
                    for bit, opt in _LOG_FLAGS:
                        if bits & bit:
                            log_flags.append((opt, []))
                    i += 2
                elif t == "level" and i + 1 < n:
                    lv = tail[i + 1]
                    level = int(lv) if ascii_digits(lv) else _SYSLOG_LEVELS.get(lv)
                    if level is None:
                        raise bad()
                    if level != 4:  # iptables-save omits the default level
                        opts.append(("--log-level", [str(level)]))
                    i += 2
                elif t == "prefix" and i + 1 < n:
                    v = tail[i + 1]
                    if v.startswith('"') and v.endswith('"') and len(v) >= 2:
                        v = v[1:-1]
                    opts.insert(0, ("--log-prefix", [v]))
                    i += 2
                else:
                    raise bad()
            opts.extend(log_flags)  # libxt_LOG.c: LOG_save prints prefix, level, then the flags
        elif target == "REJECT" and tail:
            if n != 2 or tail[0] != "reject-with":
                raise bad()
            opts.append(("--reject-with", [tail[1]]))
            i = 2
        if i < n:
            raise bad()
        for opt, vals in opts:
            self.add(opt)
            for v in vals:
                self.value(v, string=opt == "--log-prefix")


def _int(text: str) -> int | None:
    try:
        return int(text, 0)
    except ValueError:
        return None


def _target_starts(target: str) -> Any:
    """A test ``(word, next word) -> bool``: does the print of ``target`` begin at ``word``?"""
    if target in ("DNAT", "SNAT"):
        return lambda t, nxt: t.startswith("to:") or t in ("random", "persistent", "random-fully")
    if target == "REDIRECT":
        return lambda t, nxt: (t == "redir" and nxt == "ports") or t == "random"
    if target == "MASQUERADE":
        return lambda t, nxt: (t == "masq" and nxt == "ports:") or t in ("random", "random-fully")
    if target in ("MARK", "CONNMARK", "TPROXY", "CT", "LOG"):
        return lambda t, nxt: t == target
    if target == "REJECT":
        return lambda t, nxt: t == "reject-with"
    return lambda t, nxt: False


def _rest_tokens(rest: str) -> list[list[str]]:
    """The words of the match/target part, comments (``/* ... */``) and quoted strings as one word.

    A comment that contains ``*/`` can end at several places: one word list per
    reading, the shortest comment first.
    """
    readings: list[list[str]] = []

    def scan(pos: int, acc: list[str]) -> None:
        if len(readings) >= 8:
            return
        n = len(rest)
        while pos < n:
            while pos < n and rest[pos].isspace():
                pos += 1
            if pos >= n:
                break
            if rest.startswith("/*", pos):
                ends = [m.start() for m in re.finditer(r"\*/", rest[pos + 2 :])]
                ends = [pos + 2 + e for e in ends if pos + 2 + e + 2 == n or rest[pos + 2 + e + 2].isspace()]
                if not ends:
                    acc.append(rest[pos:])
                    pos = n
                    break
                for e in ends[1:]:
                    scan(e + 2, [*acc, rest[pos : e + 2]])
                acc.append(rest[pos : ends[0] + 2])
                pos = ends[0] + 2
                continue
            if rest[pos] == '"':
                end = rest.find('"', pos + 1)
                while end > 0 and rest[end - 1] == "\\":
                    end = rest.find('"', end + 1)
                if end > 0:
                    acc.append(rest[pos : end + 1].replace('\\"', '"'))
                    pos = end + 1
                    continue
            m = _WORD.match(rest, pos)
            assert m is not None
            acc.append(m.group())
            pos = m.end()
        readings.append(acc)

    scan(0, [])
    # scan() finishes the readings with longer comments first: shortest comments first
    readings.reverse()
    return readings or [[]]


def parse_iptables_list(text: str, source: str = "<input>") -> Ruleset:
    """Parse ``iptables -L`` / ``ip6tables -L`` output (any of ``-n -v -x --line-numbers``).

    Parameters
    ----------
    text : str
        One or more listings (several tables: each after its ``iptables -t
        TABLE -L`` command line, or recognised by a repeated built-in chain).
    source : str
        Name used in error messages and provenance.

    Returns
    -------
    Ruleset
        ``dialect="iptables"``: the same structures
        :func:`meshstat.parsers.netfilter.iptables_save.parse_iptables` builds
        for the ``iptables-save`` of the same rules (``Rule.text`` in
        ``iptables-save`` form, ``Rule.line`` the listing's line). Counters,
        policies and references are in :func:`listing_info`; what the listing
        could not say, and every copy-paste repair, in :attr:`Ruleset.warnings`.

    Raises
    ------
    ConfigParseError
        ``file:line: expected ...`` for a line that is not part of a listing.
    """
    return _ListParser(source).parse(text)


# --------------------------------------------------------------------------- pasted iptables-save text


def _repair_save_line(line: str) -> tuple[str, list[str]]:
    """Undo typographic damage in one ``iptables-save`` line; returns (line, what was repaired)."""
    fixes: list[str] = []
    out = line.translate(_ODD_SPACE_TABLE)
    if out != line:
        fixes.append("non-breaking, typographic or zero-width spaces (or a byte-order mark) read as spaces")
    if any(c in out for c in _CURLY_DOUBLE) and '"' not in out:
        count = sum(out.count(c) for c in _CURLY_DOUBLE)
        if count % 2 == 0:
            out = out.translate({ord(c): '"' for c in _CURLY_DOUBLE})
            fixes.append('curly quotes “ ” read as "')
    if any(c in out for c in _DASHES):
        parts = re.split(r'("(?:[^"\\]|\\.)*")', out)
        changed: dict[tuple[str, bool], str] = {}

        def fix(m: re.Match[str]) -> str:
            dash, rest = m[1], m[2]
            if not rest:
                changed.setdefault((dash, False), "-")
                return "-"
            # a one-letter option is short (-j), a longer one long (--comment): iptables has no others
            new = ("-" if len(rest) == 1 else "--") + rest
            changed.setdefault((dash, True), f"{dash}{rest} -> {new}")
            return new

        for k in range(0, len(parts), 2):  # outside double quotes only
            parts[k] = re.sub(rf"(?:(?<=\s)|^)([{_DASHES}]+)([A-Za-z][A-Za-z0-9-]*)?(?=\s|$)", fix, parts[k])
        if changed:
            out = "".join(parts)
            for (dash, option), example in changed.items():
                name = " and ".join(dict.fromkeys(_DASH_NAMES.get(c, f"U+{ord(c):04X}") for c in dash))
                if option:
                    fixes.append(f"'{dash}' ({name}) before an option name read as a dash or two ({example})")
                else:
                    fixes.append(
                        f"'{dash}' ({name}) standing alone read as '-' (a chain declaration's policy)"
                    )
    return out, fixes


def parse_iptables_paste(text: str, source: str = "<input>") -> Ruleset:
    """Parse pasted ``iptables-save`` text: repair copy-paste damage, accept rules without ``*table``.

    Each line is repaired where the meaning is unambiguous (en/em dashes before
    option names, curly double quotes, odd spaces), shell prompt lines are
    skipped, and every repair is reported in :attr:`Ruleset.warnings` with its
    lines. A text with ``*table`` blocks is then read by
    :func:`meshstat.parsers.netfilter.iptables_save.parse_iptables` (line
    numbers unchanged).
    A text of bare rule lines (``iptables-save | grep ...``, ``iptables -S``) is
    read as one table, named by an ``iptables -t TABLE`` / ``iptables-save -t
    TABLE`` line in the paste or inferred (warned); chains are declared where
    first used, jump targets missing from the paste get one opaque rule (a trace
    reaching them ends as unknown), and a line repeating an earlier one
    (overlapping greps) is kept once.

    Raises
    ------
    ConfigParseError
        For a line that is not an ``iptables-save`` line after repair.
    """
    notes = _Notes(source)
    lines = text.splitlines()
    fixed: list[str] = []
    command: _Command | None = None
    for lineno, raw in enumerate(lines, 1):
        stripped = raw.strip()
        cmd = _command(stripped) if "tables" in stripped else None
        if cmd is not None and (
            stripped.startswith("#") or _is_prompt(stripped) or stripped.split()[0].endswith(cmd.program)
        ):
            command = cmd if command is None else command
            fixed.append("")
            continue
        if stripped and (_is_prompt(stripped) and not stripped.startswith("# ")):
            fixed.append("")
            continue
        line, fixes = _repair_save_line(stripped)
        for f in fixes:
            notes.add(f"fix:{f}", lineno, f"repaired copy-paste damage: {f}")
        fixed.append(line)
    has_table = any(ln.startswith("*") for ln in fixed)
    if has_table:
        rs = parse_iptables("\n".join(fixed) + "\n", source)
        rs.warnings[:0] = notes.flush()
        rs.warnings.sort(key=lambda w: w.line)
    else:
        rs = _parse_fragment(fixed, source, notes, command)
    rs.cache[PASTE_KEY] = True
    return rs


def _parse_fragment(lines: list[str], source: str, notes: _Notes, command: _Command | None) -> Ruleset:
    """Rules without ``*table``/``COMMIT``: one table, chains declared where used."""
    body = [(n, ln) for n, ln in enumerate(lines, 1) if ln and not ln.startswith("#")]
    if not body:
        raise ConfigParseError("empty input: expected iptables-save output (no rules found)", source=source)
    chains: list[str] = []
    targets: set[str] = set()
    for _n, ln in body:
        w = ln.split()
        k = 1 if w[0].startswith("[") else 0
        if len(w) > k + 1 and w[k] in ("-A", "-I", "-N", "-P", "--append", "--insert", "--new-chain"):
            chains.append(w[k + 1])
        elif ln.startswith(":"):
            chains.append(w[0][1:])
        if "-j" in w and w.index("-j") + 1 < len(w):
            targets.add(w[w.index("-j") + 1])
    if command is not None and command.table is not None:
        table_name = command.table
    else:
        builtins = {c for c in chains if c in ("PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING")}
        table_name, why = _infer_table(builtins, targets, set(chains))
        notes.warn(
            body[0][0],
            "rules without a '*table' line (a grep or 'iptables -S' of a dump?): read as table "
            f"'{table_name}' "
            f"({why})",
        )
    p = SaveParser(
        source, command.family if command is not None and command.program.startswith("ip6") else None
    )
    first = body[0][0]
    p.line(first, "*" + table_name)
    table = p.table
    assert table is not None
    seen: dict[str, int] = {}
    first_use: dict[str, int] = {}
    for lineno, ln in body:
        if ln.startswith("*") or ln == "COMMIT":
            raise ConfigParseError(
                "expected rule lines only (no '*table' or 'COMMIT' in a fragment)",
                source=source,
                line=lineno,
                snippet=ln,
            )
        key = " ".join(ln.split())
        if key in seen:
            notes.add(
                f"dup:{seen[key]}", lineno,
                f"line repeats line {seen[key]} (overlapping grep output?): kept once",
            )  # fmt: skip
            continue
        seen[key] = lineno
        w = ln.split()
        k = 1 if w[0].startswith("[") else 0
        if len(w) > k + 1 and w[k] in ("-A", "-I", "--append", "--insert") and w[k + 1] not in table.chains:
            # declared where first used; line None lets a ':CHAIN' line further down declare it
            table.chains[w[k + 1]] = Chain(name=w[k + 1], line=None)
            first_use.setdefault(w[k + 1], lineno)
        p.line(lineno, ln)
    for name, line in first_use.items():
        if table.chains[name].line is None:
            table.chains[name].line = line
    missing: dict[str, int] = {}
    for r in p.pending:
        t = r.target
        if (
            t.kind in ("jump?", "goto")
            and t.value not in table.chains
            and (t.kind == "goto" or t.value not in _EXTENSION_TARGETS)
        ):
            missing.setdefault(t.value, r.line)
    for name, line in missing.items():
        table.chains[name] = Chain(name=name, line=line)
        _unlisted(table, name, line, source, "jumped to but not in the paste")
    unlisted = [b for b in BUILTIN_CHAINS[table_name] if b not in chains]
    for b in unlisted:
        _unlisted(table, b, first, source, "a built-in chain not in the paste")
    if unlisted:
        notes.warn(
            first,
            f"built-in chain{'s' if len(unlisted) > 1 else ''} {', '.join(unlisted)} of table '{table_name}' "
            f"{'are' if len(unlisted) > 1 else 'is'} not in the paste: a trace through "
            f"{'them' if len(unlisted) > 1 else 'it'} ends as unknown (use --chain to start elsewhere)",
        )
    if missing:
        notes.warn(
            min(missing.values()),
            f"chain{'s' if len(missing) > 1 else ''} {', '.join(missing)} "
            f"{'are' if len(missing) > 1 else 'is'} jumped to but not in the paste: a trace that reaches "
            "one ends as unknown",
        )
    p.line(body[-1][0], "COMMIT")
    rs = p.finish("\n".join(lines))
    rs.warnings.extend(notes.flush())
    rs.warnings.sort(key=lambda w: w.line)
    return rs


# --------------------------------------------------------------------------- back to iptables-save


def to_iptables_save(ruleset: Ruleset) -> str:
    """``iptables-restore`` input for a ruleset read from a listing or a paste.

    Chains the listing did not show are declared and left empty; their opaque
    placeholder rules are not written. A rule with a match or target the listing
    parser kept as opaque (its text ends in ``# listing: ...``) cannot be written
    back and is written as a comment line. Counters are written as ``[0:0]``.
    """
    out: list[str] = []
    for (_fam, name), table in ruleset.tables.items():
        out.append(f"*{name}")
        for ch in table.chains.values():
            out.append(f":{ch.name} {ch.policy if ch.builtin else '-'} [0:0]")
        for ch in table.chains.values():
            for r in ch.rules:
                if r.text.startswith("(chain "):
                    continue  # the placeholder of a chain the listing did not show
                out.append(("# not translated: " + r.text) if "  # listing: " in r.text else r.text)
        out.append("COMMIT")
    return "\n".join(out) + "\n"
