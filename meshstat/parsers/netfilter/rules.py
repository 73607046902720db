"""The rule builder shared by the netfilter dialect parsers: ``iptables-save`` words -> :class:`Rule`.

:func:`split_rule` splits a rule line into words as ``iptables-restore`` does;
:func:`build_rule` turns the words of one rule (``-s``/``-d``, ``-p``, ``-i``/``-o``,
``-f``, ``-m MODULE --options``, ``-j``/``-g TARGET --options``) into a
:class:`~meshstat.parsers.netfilter.ruleset.Rule` with its :class:`Match` and
:class:`Target` objects, reporting errors and opaque parts through a
:class:`ParseContext`; :func:`resolve_jumps` turns ``-j NAME`` into jumps to
declared chains or extension targets once a table is complete. The value
parsers (:func:`parse_cidr`, :func:`port_range`, :func:`nat_to`, marks, id
ranges) and the tables of known options, targets and protocol aliases are here.

Used by the ``iptables-save`` parser
(:mod:`meshstat.parsers.netfilter.iptables_save`), the ``iptables -L`` listing
parser (:mod:`meshstat.parsers.netfilter.iptables_list`, which translates each
listed rule into these words) and the nftables parser (:func:`parse_cidr`). The
supported subset and the upstream sources are described in
:mod:`meshstat.parsers.netfilter.iptables_save`.

Why this module is long: the three dialect parsers share one builder for every match and target option
they know, with its value parsers and option tables, so that a rule means the same whichever dump it came
from.

Pure Python, standard library only.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from meshstat.errors import ConfigParseError
from meshstat.inputs import ascii_digits
from meshstat.model import probability_to_threshold
from meshstat.parsers.netfilter.ruleset import Match, Net, ParseWarning, Rule, Table, Target

__all__ = [
    "KNOWN_TARGETS",
    "OPTIONLESS_EXTENSIONS",
    "ParseContext",
    "build_rule",
    "missing_chains",
    "nat_to",
    "parse_cidr",
    "port_range",
    "resolve_jumps",
    "split_rule",
]

_TERMINAL_BUILTIN = {"ACCEPT", "DROP", "RETURN", "REJECT"}
KNOWN_TARGETS = {
    "ACCEPT", "DROP", "RETURN", "REJECT", "DNAT", "SNAT", "REDIRECT", "MASQUERADE",
    "MARK", "CONNMARK", "TPROXY", "CT", "LOG",
}  # fmt: skip

_MODULE_MEMO: dict[Any, Any] = {}

# Target extensions that may appear without options; any other unknown ``-j NAME``
# that is not a declared chain is an error, as in iptables-restore.
OPTIONLESS_EXTENSIONS = {
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


_NO_TARGET = Target("none", None, "")
#: How many missing chain names the warning of :func:`resolve_jumps` prints (all are in :func:`missing_chains`).
MISSING_SHOWN = 20


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
            if not ascii_digits(o) or len(o) > 3:
                raise ValueError(text)
            b = int(o)
            if b > 255:
                raise ValueError(text)
            value = (value << 8) | b
        if not plen:
            prefix = 32
        elif ascii_digits(plen):
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


def port_range(text: str) -> tuple[int, int]:
    """``"80"``, ``"80:90"``, ``"80-90"``, ``":90"`` or ``"80:"`` -> ``(low, high)``; ``ValueError`` if invalid."""
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


# --------------------------------------------------------------------------- parse context, jump resolution


class ParseContext:
    """The file, line and rule text being read, the warnings list and the ``[p:b]`` counters of one parse."""

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


def _rule_line(rule: Rule) -> int:
    return rule.line


def resolve_jumps(table: Table, rules: list[Rule], ctx: ParseContext, *, missing_ok: bool = False) -> None:
    """Turn ``-j NAME`` into jumps to declared chains or extension targets.

    With ``missing_ok`` (``iptables-restore --noflush`` input, which may jump to
    chains an earlier load created: kube-proxy's partial syncs), a jump or goto
    to a chain the text does not define is kept as such and named in one
    warning; :func:`missing_chains` lists those names. Otherwise it is an error.

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
    missing: dict[str, int] = {}
    for r in rules:
        t = r.target
        if t.kind == "jump?":
            name = t.value
            if name in chains:
                r.target = Target("jump", name, t.text)
            elif name in OPTIONLESS_EXTENSIONS:
                ctx.line = r.line
                ctx.warn(f"unknown target '-j {name}' kept as opaque (its effect is not modelled)")
                r.target = Target("opaque", (name, t.text), t.text)
                continue
            elif missing_ok:
                r.target = Target("jump", name, t.text)
                missing.setdefault(name, r.line)
            else:
                ctx.line = r.line
                raise ctx.error(f"chain '{name}' does not exist in table '{table.name}' (jump target)", r.text)
        elif t.kind == "goto" and t.value not in chains:
            if not missing_ok:
                ctx.line = r.line
                raise ctx.error(f"chain '{t.value}' does not exist in table '{table.name}' (goto target)", r.text)
            missing.setdefault(t.value, r.line)
        if r.target.kind in ("jump", "goto"):
            name = r.target.value
            lst = refs.get(name)
            if lst is None:
                refs[name] = [r]
                continue
            if lst[-1].line > r.line:
                touched.add(name)
            lst.append(r)
    for name in touched:
        refs[name].sort(key=_rule_line)
    if missing:
        names = sorted(missing, key=missing.__getitem__)
        more, ctx.line = len(names) - MISSING_SHOWN, missing[names[0]]
        shown = ", ".join(names[:MISSING_SHOWN]) + (f" and {more} more" if more > 0 else "")
        ctx.warn(
            f"table '{table.name}' jumps to {len(names)} chain{'s' if len(names) > 1 else ''} this input does not "
            f"define: {shown} (iptables-restore --noflush input, as kube-proxy's partial sync writes it, uses "
            "chains an earlier load created; a trace that reaches one ends as unknown)"
        )


def missing_chains(table: Table) -> list[str]:
    """Chains that rules of ``table`` jump or go to but the input did not define (partial input)."""
    return sorted(name for name in table.referrers if name not in table.chains)


def _values(words: list[str], quoted: set[int] | None, j: int, n: int) -> int:
    """Index just past the option values that start at ``j``."""
    while j < n:
        w = words[j]
        if (w == "!" or (w[:1] == "-" and len(w) > 1 and not ascii_digits(w[1]))) and (
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


def build_rule(
    words: list[str], quoted: set[int] | None, i: int, table: Table, chain: str, ctx: ParseContext
) -> tuple[Rule, bool]:
    """The rule of ``words[i:]`` (from :func:`split_rule`) in ``chain``, and whether it has IPv6 addresses.

    ``-j NAME`` without options is left as a ``"jump?"`` target for :func:`resolve_jumps`.
    """
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
                    if (x[:1] != "-" and x != "!") or ascii_digits(x[1:2]) or (
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
            if i + 2 == n and not is_goto and name not in KNOWN_TARGETS:
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
            if not opts and not is_goto and name not in KNOWN_TARGETS:
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


def _attach(
    opt: str, neg: bool, vals: list[str], modules: list[list[Any]], proto: str | None, ctx: ParseContext
) -> None:
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


_ADDRTYPE_SIDE = {"--src-type": "src", "--dst-type": "dst"}


def _one(opt: str, vals: list[str], ctx: ParseContext, what: str) -> str:
    if len(vals) != 1:
        raise ctx.error(f"expected {what} after {opt}", ctx.text)
    return vals[0]


def _module(
    name: str, opts: list[tuple[str, bool, list[str]]], ctx: ParseContext
) -> tuple[list[Match], str | None, str]:
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
                    out.append(Match(kind, ng, port_range(v[0]), f"{'! ' if ng else ''}{o} {v[0]}"))
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
                ports = tuple(port_range(x) for x in _one(o, v, ctx, "a port list").split(","))
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
            # --limit-iface-in/out restrict the lookup to the packet's input/output device
            # (net/netfilter/xt_addrtype.c: addrtype_mt_v1 passes that device to the route lookup)
            iface = "in" if any(o == "--limit-iface-in" for o, _ng, _v in opts) else (
                "out" if any(o == "--limit-iface-out" for o, _ng, _v in opts) else None
            )
            limit = f" --limit-iface-{iface}" if iface else ""
            for o, ng, v in opts:
                side = _ADDRTYPE_SIDE.get(o)
                if side is not None:
                    types = frozenset(v[0].upper().split(","))
                    out.append(Match("addrtype", ng, (side, types, iface), f"{'! ' if ng else ''}{o} {v[0]}{limit}"))
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


def _target(name: str, goto: bool, opts: list[tuple[str, list[str]]], ctx: ParseContext, text: str) -> Target:
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
            return Target("dnat", nat_to(to[0]), text)
        if name == "SNAT":
            to = d.get("--to-source")
            if not to:
                raise ctx.error("expected --to-source IP[:PORT] after -j SNAT", text)
            return Target("snat", nat_to(to[0]), text)
        if name == "REDIRECT":
            ports = d.get("--to-ports")
            return Target("redirect", port_range(ports[0]) if ports else None, text)
        if name == "MASQUERADE":
            ports = d.get("--to-ports")
            return Target("masquerade", port_range(ports[0]) if ports else None, text)
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
    if opts and name not in KNOWN_TARGETS:
        ctx.warn(f"unknown target '-j {name}' kept as opaque (its effect is not modelled)")
        return Target("opaque", (name, text), text)
    return Target("jump?", name, text)  # a chain, or an extension without options: resolved at COMMIT


def nat_to(text: str) -> tuple[str | None, tuple[int, int] | None, str]:
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
    return (addr or None), (port_range(port) if port else None), text


def _mark_op(d: dict[str, list[str]], ctx: ParseContext, text: str) -> tuple[int, int]:
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


def _connmark_op(d: dict[str, list[str]], ctx: ParseContext, text: str) -> tuple[str, int, int]:
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
