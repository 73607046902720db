"""Parser for nftables rulesets: ``nft list ruleset`` output and ``nft -f`` transactions.

Upstream format
---------------
The text printed by ``nft list ruleset`` / ``nft list table`` of nftables 1.0.6
(``table ip kube-proxy { chain x { ... } set s { ... } map m { ... } }``) and the
transaction lines ``nft -f`` reads (``add table|chain|rule|set|map|element ...``,
``insert rule``, ``flush ruleset|table|chain|set|map``, ``delete table|chain|set|map|element``;
``delete rule`` is not applied and warned about), in the form kubernetes' nftables proxy
writes them, including its partial syncs (``pkg/proxy/nftables/proxier.go``, through ``knftables``; fixture
``kube-proxy-nftables-overall.nft``).

Supported subset
----------------
Tables of families ``ip``, ``ip6``, ``inet``; base chains (``type T hook H
priority P; policy X;``, symbolic priorities ``raw mangle dstnat filter
security srcnat`` with ``+/- N``); named sets and maps with ``elements``,
``flags``, ``timeout``. Rule expressions: ``ip|ip6 saddr|daddr [!=] ADDR|CIDR|{...}|@set``,
``meta l4proto``, ``th|tcp|udp|sctp dport|sport`` (values, ranges, sets),
``meta mark`` / ``mark`` comparisons (``& M == V``, ``and M == V``),
``meta mark set ...`` (``| ^ &`` or ``or xor and``), ``fib saddr|daddr [. iif|. oif] type [!=]
TYPE|{TYPES}`` (other ``fib`` results are opaque), ``ct state``, ``ct status dnat|snat``, ``meta skuid|skgid``, ``iifname|oifname``, ``counter``,
``comment``, ``log``, ``update|add @set { ... }``, verdicts (``accept drop
return continue reject jump goto``), ``dnat|snat [ip|ip6] to ADDR[:PORT]``,
``masquerade``, ``redirect to :PORT``, concatenated-key verdict maps
(``ip daddr . meta l4proto . th dport vmap @m``), and the kube-proxy splits
``numgen random|inc mod N [offset K] vmap { 0 : goto a, 1-2 : goto b }`` and
``dnat ip addr . port to numgen random mod N map { 0 : ADDR . PORT, ... }``.
Any other expression is kept as an opaque match (its text and line) and
reported in :attr:`Ruleset.warnings`.

Semantics sources: kernel ``net/netfilter/nft_numgen.c`` (``numgen random`` is
``reciprocal_scale(get_random_u32(), N) + offset``; ``inc`` an atomic counter),
``nft_lookup.c``, ``nft_immediate.c``; nftables ``doc/`` man page
(``nft(8)``, sections CHAINS, SETS, MAPS, NUMGEN EXPRESSION).

Why this module is long: it is one parser over one token stream
(about 1,150 lines): the statement parser (tables, chains, sets, maps, elements, transaction
commands) and the rule expression parser (``_RuleParser``) share the parse
state and the set and verdict readers.

See Also
--------
meshstat.parsers.netfilter.ruleset : the structures every dialect shares (also :class:`NftSet`).
meshstat.parsers.netfilter.iptables_save : the iptables dialect.
"""

from __future__ import annotations

import re
from typing import Any, NamedTuple

from meshstat.errors import ConfigParseError
from meshstat.inputs import ascii_digits
from meshstat.parsers.netfilter.rules import parse_cidr
from meshstat.parsers.netfilter.ruleset import (
    Chain,
    Match,
    NftElement,
    NftSet,
    ParseWarning,
    Rule,
    Ruleset,
    Table,
    Target,
)

__all__ = ["flat_targets", "parse_nft"]

_PRIORITY_NAMES = {"raw": -300, "mangle": -150, "dstnat": -100, "filter": 0, "security": 50, "srcnat": 100,
                   "out": 100, "in": -200}  # fmt: skip
_FAMILIES = ("ip", "ip6", "inet", "arp", "bridge", "netdev")
_VERDICTS = ("accept", "drop", "return", "continue", "jump", "goto", "reject", "queue")
_STATEMENT_WORDS = {
    "ip", "ip6", "meta", "mark", "th", "tcp", "udp", "sctp", "fib", "ct", "numgen", "counter", "comment", "log",
    "update", "dnat", "snat", "masquerade", "redirect", "tproxy", "notrack", "iifname", "oifname", "limit",
    *_VERDICTS,
}  # fmt: skip


# --------------------------------------------------------------------------- tokenizer


class _Tok(NamedTuple):
    kind: str  # "w" word, "s" string, "{", "}", ",", ";", "nl"
    text: str
    line: int


_SPLIT = re.compile(r'"((?:[^"\\]|\\.)*)"|([{},;\n])|#[^\n]*|([^\s{},;"#]+)|[ \t\r]+')


def _tokens(text: str, source: str) -> list[_Tok]:
    out: list[_Tok] = []
    line = 1
    pos = 0
    n = len(text)
    while pos < n:
        m = _SPLIT.match(text, pos)
        if m is None:
            raise ConfigParseError("expected a closing double quote", source=source, line=line,
                                   snippet=text[pos:pos + 40])  # fmt: skip
        s, p, w = m.group(1), m.group(2), m.group(3)
        if s is not None:
            out.append(_Tok("s", s.replace('\\"', '"'), line))
        elif p is not None:
            if p == "\n":
                out.append(_Tok("nl", "", line))
                line += 1
            else:
                out.append(_Tok(p, p, line))
        elif w is not None:
            if len(w) > 1 and w.endswith(":") and ascii_digits(w[:-1].replace("-", "")):
                out.append(_Tok("w", w[:-1], line))
                out.append(_Tok("w", ":", line))
            else:
                out.append(_Tok("w", w, line))
        pos = m.end()
    return out


# --------------------------------------------------------------------------- parser


class _P:
    def __init__(self, toks: list[_Tok], source: str, rs: Ruleset) -> None:
        self.t = toks
        self.i = 0
        self.source = source
        self.rs = rs
        self.pending: list[tuple[Table, Rule]] = []

    # helpers
    def err(self, msg: str, tok: _Tok | None = None) -> ConfigParseError:
        tok = tok or (self.t[self.i] if self.i < len(self.t) else (self.t[-1] if self.t else None))
        return ConfigParseError(msg, source=self.source, line=tok.line if tok else None,
                                snippet=tok.text if tok and tok.text else None)  # fmt: skip

    def peek(self) -> _Tok | None:
        return self.t[self.i] if self.i < len(self.t) else None

    def next(self, what: str) -> _Tok:
        if self.i >= len(self.t):
            raise self.err(f"expected {what}, input ended")
        tok = self.t[self.i]
        self.i += 1
        return tok

    def word(self, what: str) -> str:
        tok = self.next(what)
        if tok.kind not in ("w", "s"):
            raise self.err(f"expected {what}", tok)
        return tok.text

    def skip_nl(self) -> None:
        while self.i < len(self.t) and self.t[self.i].kind in ("nl", ";"):
            self.i += 1

    def until_eol(self) -> list[_Tok]:
        """Tokens to the end of the statement (newline or ';' at brace depth 0)."""
        out: list[_Tok] = []
        depth = 0
        while self.i < len(self.t):
            tok = self.t[self.i]
            if depth == 0 and (tok.kind in ("nl", ";") or tok.kind == "}"):
                break
            self.i += 1
            if tok.kind == "{":
                depth += 1
            elif tok.kind == "}":
                depth -= 1
            if tok.kind == "nl":
                continue
            out.append(tok)
        return out

    def block(self) -> list[_Tok]:
        """Tokens of a ``{ ... }`` block (the braces excluded), newlines kept."""
        tok = self.next("'{'")
        if tok.kind != "{":
            raise self.err("expected '{'", tok)
        depth = 1
        start = self.i
        while self.i < len(self.t):
            k = self.t[self.i].kind
            if k == "{":
                depth += 1
            elif k == "}":
                depth -= 1
                if depth == 0:
                    body = self.t[start : self.i]
                    self.i += 1
                    return body
            self.i += 1
        raise self.err("expected '}' to close the block (input ended)", self.t[start - 1])

    def table(self, fam: str, name: str, line: int) -> Table:
        if fam not in _FAMILIES:
            raise self.err(f"expected a table family ({', '.join(_FAMILIES)})")
        key = (fam, name)
        t = self.rs.tables.get(key)
        if t is None:
            t = Table(name=name, family=fam, line=line)
            self.rs.tables[key] = t
        return t

    # top level
    def parse(self) -> None:
        while True:
            self.skip_nl()
            tok = self.peek()
            if tok is None:
                return
            if tok.kind != "w":
                raise self.err("expected 'table', 'add', 'insert', 'flush' or 'delete'", tok)
            self.i += 1
            w = tok.text
            if w == "table":
                fam_tok = self.peek()
                fam = self.word("a table family")
                if fam not in _FAMILIES:
                    nxt = self.peek()
                    if nxt is not None and nxt.kind == "w":  # 'table FAMILY NAME {' with an unknown family
                        families = ", ".join(_FAMILIES)
                        raise self.err(f"expected a table family ({families}) before the table name", fam_tok)
                    name, fam = fam, "ip"
                else:
                    name = self.word("a table name")
                t = self.table(fam, name, tok.line)
                self.table_body(t, self.block())
            elif w in ("add", "create", "insert"):
                self.command(w, tok)
            elif w in ("flush", "delete", "destroy"):
                self.flush(w, tok)
            else:
                raise self.err("expected 'table', 'add', 'insert', 'flush' or 'delete'", tok)

    def command(self, verb: str, tok: _Tok) -> None:
        obj = self.word("table, chain, rule, set, map or element")
        if obj == "table":
            fam, name = self.fam_name()
            self.table(fam, name, tok.line)
            if self.peek() is not None and self.peek().kind == "{":
                self.block()
            return
        if obj in ("chain", "rule", "set", "map", "element"):
            fam, tname = self.fam_name()
            t = self.table(fam, tname, tok.line)
            name = self.word(f"a {obj} name")
            if obj == "chain":
                ch = t.chains.get(name)
                if ch is None:
                    ch = t.chains[name] = Chain(name=name, line=tok.line)
                if self.peek() is not None and self.peek().kind == "{":
                    self.chain_spec(ch, self.block())
                return
            if obj == "rule":
                ch = t.chains.get(name)
                if ch is None:
                    raise self.err(f"chain '{name}' does not exist in table {fam} {tname} (add chain first)", tok)
                body = self.until_eol()
                rule = self.rule(t, ch, body, tok.line)
                if verb == "insert":
                    ch.rules.insert(0, rule)
                else:
                    ch.rules.append(rule)
                return
            if obj in ("set", "map"):
                s = t.sets.get(name)
                if s is None:
                    s = t.sets[name] = NftSet(name=name, is_map=obj == "map", line=tok.line)
                self.set_body(s, self.block())
                return
            s = t.sets.get(name)
            if s is None:
                raise self.err(f"set or map '{name}' does not exist in table {fam} {tname}", tok)
            s.elements.extend(self.elements(self.block(), s.is_map))
            return
        raise self.err("expected table, chain, rule, set, map or element after add", tok)

    def fam_name(self) -> tuple[str, str]:
        a = self.word("a table family or name")
        if a in _FAMILIES:
            return a, self.word("a table name")
        return "ip", a

    def flush(self, verb: str, tok: _Tok) -> None:
        """``flush|delete|destroy ruleset|table|chain|set|map|element|rule ...`` applied to the tables read so far.

        kube-proxy's syncs are transactions of this kind: a partial sync deletes
        the map elements of a deleted or emptied service and flushes its chains
        (``pkg/proxy/nftables/proxier.go: syncProxyRules``; knftables writes
        ``delete element ip kube-proxy service-ips { 172.30.0.43 . tcp . 80 }``).
        """
        obj = self.word("what to flush or delete")
        if obj == "ruleset":
            self.until_eol()
            self.rs.tables.clear()
            return
        if obj == "table":
            fam, tname = self.fam_name()
            self.until_eol()
            t = self.rs.tables.get((fam, tname))
            if t is None:
                return
            if verb == "flush":
                for ch in t.chains.values():
                    ch.rules.clear()
                for st in t.sets.values():
                    st.elements.clear()
            else:
                del self.rs.tables[(fam, tname)]
            return
        fam, tname = self.fam_name()
        t = self.rs.tables.get((fam, tname))
        if obj == "element":
            name = self.word("a set or map name")
            body = self.block()
            self.until_eol()
            s = t.sets.get(name) if t is not None else None
            if s is None:
                if verb == "delete":
                    raise self.err(f"set or map '{name}' does not exist in table {fam} {tname}", tok)
                return
            gone = {_key_id(el.key) for el in self.elements(body, False)}
            s.elements[:] = [el for el in s.elements if _key_id(el.key) not in gone]
            return
        rest = self.until_eol()
        if t is None or not rest:
            return
        name = rest[0].text
        if obj == "chain":
            ch = t.chains.get(name)
            if ch is not None:
                if verb == "flush":
                    ch.rules.clear()
                else:
                    del t.chains[name]
        elif obj in ("set", "map"):
            s = t.sets.get(name)
            if s is not None:
                if verb == "flush":
                    s.elements.clear()
                else:
                    del t.sets[name]
        elif obj == "rule":
            # rules are deleted by handle, which a listing prints only as a comment: not applied
            self.rs.warnings.append(
                ParseWarning(self.source, tok.line, f"'{verb} rule' not applied (rule handles are not read)")
            )

    def table_body(self, t: Table, body: list[_Tok]) -> None:
        sub = _P(body, self.source, self.rs)
        sub.pending = self.pending
        while True:
            sub.skip_nl()
            tok = sub.peek()
            if tok is None:
                return
            sub.i += 1
            w = tok.text
            if w == "chain":
                name = sub.word("a chain name")
                ch = t.chains.get(name)
                if ch is None:
                    ch = t.chains[name] = Chain(name=name, line=tok.line)
                sub.chain_body(t, ch, sub.block())
            elif w in ("set", "map"):
                name = sub.word(f"a {w} name")
                s = t.sets[name] = NftSet(name=name, is_map=w == "map", line=tok.line)
                sub.set_body(s, sub.block())
            elif w in ("comment", "flags"):
                sub.until_eol()
            elif w in ("flowtable", "counter", "quota", "ct", "secmark", "synproxy", "limit"):
                while sub.peek() is not None and sub.peek().kind != "{":
                    sub.i += 1
                sub.block()
            else:
                raise sub.err("expected chain, set, map or comment in a table block", tok)

    def chain_spec(self, ch: Chain, body: list[_Tok]) -> None:
        """``type T hook H priority P ; policy X ; comment "c"`` (base-chain declaration)."""
        words = [tok for tok in body if tok.kind in ("w", "s", ";")]
        i = 0
        while i < len(words):
            w = words[i].text
            if w == "type" and i + 1 < len(words):
                ch.chain_type = words[i + 1].text
                i += 2
            elif w == "hook" and i + 1 < len(words):
                ch.hook = words[i + 1].text
                i += 2
            elif w == "priority":
                expr = []
                i += 1
                while i < len(words) and words[i].kind != ";" and words[i].text not in ("policy", "comment", "device"):
                    expr.append(words[i].text)
                    i += 1
                ch.priority = self.priority(expr, words[i - 1])
            elif w == "policy" and i + 1 < len(words):
                ch.policy = words[i + 1].text.upper()
                i += 2
            else:
                i += 1
        if ch.hook is not None:
            ch.builtin = True
            ch.policy = ch.policy or "ACCEPT"

    def priority(self, expr: list[str], tok: _Tok) -> int:
        try:
            text = "".join(expr)
            m = re.fullmatch(r"([a-z]+|-?\d+)(?:([+-])(\d+))?", text)
            if m is None:
                raise ValueError
            base = _PRIORITY_NAMES[m.group(1)] if m.group(1)[0].isalpha() else int(m.group(1))
            if m.group(2):
                base += int(m.group(3)) * (1 if m.group(2) == "+" else -1)
            return base
        except (ValueError, KeyError):
            raise self.err("expected a chain priority (a number or dstnat, srcnat, filter, ... +/- N)", tok) from None

    def chain_body(self, t: Table, ch: Chain, body: list[_Tok]) -> None:
        sub = _P(body, self.source, self.rs)
        while True:
            sub.skip_nl()
            tok = sub.peek()
            if tok is None:
                return
            if tok.text == "type" and tok.kind == "w":
                spec = sub.until_eol()
                spec2 = []
                # "type ... priority P; policy accept;" : take the policy part too
                while sub.peek() is not None and sub.peek().kind == ";":
                    sub.i += 1
                    more = sub.until_eol()
                    if not more:
                        break
                    spec2 += [_Tok(";", ";", tok.line), *more]
                sub.chain_spec(ch, spec + spec2)
                continue
            if tok.text == "comment" and tok.kind == "w" and len(body) and sub.i + 1 < len(sub.t) and sub.t[
                sub.i + 1
            ].kind == "s" and (sub.i + 2 >= len(sub.t) or sub.t[sub.i + 2].kind in ("nl", ";")):
                sub.until_eol()
                continue
            if tok.text == "policy" and tok.kind == "w":
                words = sub.until_eol()
                if len(words) > 1:
                    ch.policy = words[1].text.upper()
                continue
            words = sub.until_eol()
            if words:
                ch.rules.append(self.rule(t, ch, words, words[0].line))

    def set_body(self, s: NftSet, body: list[_Tok]) -> None:
        sub = _P(body, self.source, self.rs)
        while True:
            sub.skip_nl()
            tok = sub.peek()
            if tok is None:
                return
            w = tok.text
            if w == "elements":
                sub.i += 1
                eq = sub.next("'='")
                if eq.text != "=":
                    raise sub.err("expected '=' after elements", eq)
                s.elements.extend(self.elements(sub.block(), s.is_map))
                continue
            words = sub.until_eol()
            if not words:
                sub.i += 1
                continue
            texts = [x.text for x in words]
            if texts[0] in ("type", "typeof"):
                joined = " ".join(texts[1:])
                key, _, data = joined.partition(" : ")
                s.key_type, s.data_type = key, (data or None)
            elif texts[0] == "flags":
                s.flags = frozenset(x for x in texts[1:] if x != ",")
            elif texts[0] == "timeout" and len(texts) > 1:
                s.timeout = _seconds(texts[1])
            elif texts[0] == "comment" and len(words) > 1:
                s.comment = words[1].text

    def elements(self, body: list[_Tok], is_map: bool) -> list[NftElement]:
        out: list[NftElement] = []
        cur: list[_Tok] = []
        depth = 0
        for tok in [*body, _Tok(",", ",", body[-1].line if body else 0)]:
            if tok.kind == "nl":
                continue
            if tok.kind == "{":
                depth += 1
            elif tok.kind == "}":
                depth -= 1
            if tok.kind == "," and depth == 0:
                if cur:
                    out.append(self.element(cur, is_map))
                cur = []
                continue
            cur.append(tok)
        return out

    def element(self, toks: list[_Tok], is_map: bool) -> NftElement:
        comment = None
        key_t: list[_Tok] = []
        data_t: list[_Tok] = []
        tgt = key_t
        i = 0
        while i < len(toks):
            tok = toks[i]
            if tok.kind == "w" and tok.text == "comment" and i + 1 < len(toks) and toks[i + 1].kind == "s":
                comment = toks[i + 1].text
                i += 2
                continue
            if tok.kind == "w" and tok.text in ("timeout", "expires") and tgt is key_t:
                i += 2
                continue
            if tok.kind == "w" and tok.text == ":" and tgt is key_t:
                tgt = data_t
                i += 1
                continue
            tgt.append(tok)
            i += 1
        if is_map and not data_t:
            raise self.err("expected 'key : value' in a map element", toks[0])
        key = _components(key_t, self)
        data: Any = None
        if data_t:
            if data_t[0].text in _VERDICTS:
                data = _verdict_words([x.text for x in data_t], self, data_t[0])
            else:
                data = _components(data_t, self)
        return NftElement(key, data, comment, toks[0].line)

    # rules
    def rule(self, t: Table, ch: Chain, words: list[_Tok], line: int) -> Rule:
        r = _RuleParser(words, self, t).parse()
        matches, targets, comment, updated = r
        if not targets:
            target = Target("none", None, "")
        elif len(targets) == 1:
            target = targets[0]
        else:
            target = Target("seq", tuple(targets), " ".join(x.text for x in targets))
        rule = Rule(
            table=t.name, chain=ch.name, line=line, source=self.source,
            text=" ".join(('"' + w.text + '"') if w.kind == "s" else w.text for w in words),
            matches=tuple(matches), target=target, comment=comment, sets_updated=tuple(updated),
        )  # fmt: skip
        self.pending.append((t, rule))
        return rule


def _key_id(key: tuple[tuple[str, Any], ...]) -> tuple:
    """An element key in a comparable form (addresses by version, network and prefix length)."""
    return tuple((k, (v.version, v.network, v.prefixlen)) if k == "addr" else (k, v) for k, v in key)


def _seconds(text: str) -> int:
    total = 0
    for num, unit in re.findall(r"(\d+)([dhms]?)", text):
        total += int(num) * {"d": 86400, "h": 3600, "m": 60, "s": 1, "": 1}[unit]
    return total


def _component(text: str) -> tuple[str, Any]:
    try:
        return ("addr", parse_cidr(text))
    except ValueError:
        pass
    m = re.fullmatch(r"(\d{1,20})(?:-(\d{1,20}))?", text)
    if m:
        lo = int(m.group(1))
        return ("range", (lo, int(m.group(2)) if m.group(2) else lo))
    if re.fullmatch(r"0x[0-9a-fA-F]+", text):
        v = int(text, 16)
        return ("range", (v, v))
    return ("str", text.lower())


def _components(toks: list[_Tok], p: _P) -> tuple[tuple[str, Any], ...]:
    parts: list[list[str]] = [[]]
    for tok in toks:
        if tok.kind == "w" and tok.text == ".":
            parts.append([])
        else:
            parts[-1].append(tok.text)
    out = []
    for part in parts:
        if len(part) != 1:
            raise p.err("expected 'a . b . c' components in an element", toks[0] if toks else None)
        out.append(_component(part[0]))
    return tuple(out)


def _verdict_words(words: list[str], p: _P, tok: _Tok) -> tuple[str, Any]:
    v = words[0]
    if v in ("jump", "goto"):
        if len(words) < 2:
            raise p.err(f"expected a chain name after {v}", tok)
        return (v, words[1])
    return (v, None)


#: ``fib`` tuple words (nftables ``src/parser_bison.y: fib_flag``) and what each address word names.
_FIB_FLAGS = ("saddr", "daddr", "mark", "iif", "oif")
_FIB_SIDE = {"saddr": "src", "daddr": "dst"}

_FIELD = {("ip", "daddr"): "daddr", ("ip", "saddr"): "saddr", ("ip6", "daddr"): "daddr", ("ip6", "saddr"): "saddr",
          ("meta", "l4proto"): "l4proto", ("th", "dport"): "dport", ("th", "sport"): "sport",
          ("tcp", "dport"): "dport", ("udp", "dport"): "dport", ("sctp", "dport"): "dport",
          ("tcp", "sport"): "sport", ("udp", "sport"): "sport", ("sctp", "sport"): "sport",
          ("ip", "protocol"): "l4proto", ("ip6", "nexthdr"): "l4proto"}  # fmt: skip


class _RuleParser:
    def __init__(self, words: list[_Tok], p: _P, table: Table) -> None:
        self.w = words
        self.i = 0
        self.p = p
        self.table = table
        self.matches: list[Match] = []
        self.targets: list[Target] = []
        self.comment: str | None = None
        self.updated: list[str] = []

    def peek(self, k: int = 0) -> str | None:
        j = self.i + k
        return self.w[j].text if j < len(self.w) else None

    def take(self, what: str) -> str:
        if self.i >= len(self.w):
            raise self.p.err(f"expected {what} at the end of the rule", self.w[-1])
        t = self.w[self.i]
        self.i += 1
        return t.text

    def tok(self) -> _Tok:
        return self.w[min(self.i, len(self.w) - 1)]

    def err(self, msg: str) -> ConfigParseError:
        return self.p.err(msg, self.tok())

    def parse(self) -> tuple[list[Match], list[Target], str | None, list[str]]:
        while self.i < len(self.w):
            start = self.i
            w = self.peek()
            two = (w, self.peek(1))
            if two in _FIELD and self.peek(2) == ".":
                self.concat()
            elif two in _FIELD:
                self.i += 2
                self.compare(_FIELD[two], two)
            elif w in ("meta", "mark") and (self.peek(1) == "mark" or w == "mark"):
                self.mark()
            elif w == "meta" and self.peek(1) in ("skuid", "skgid", "oifname", "iifname"):
                self.i += 2
                self.compare(self.w[self.i - 1].text, (w, self.w[self.i - 1].text))
            elif w in ("oifname", "iifname"):
                self.i += 1
                self.compare(w, (w,))
            elif w == "fib":
                self.fib()
            elif w == "ct" and self.peek(1) == "state":
                self.i += 2
                self.compare("ctstate", ("ct", "state"))
            elif w == "ct" and self.peek(1) == "status" and self._ct_status_nat():
                self.i += 2
                self.compare("ctstate", ("ct", "status"))
            elif w == "numgen":
                self.numgen(None)
            elif w == "counter":
                self.i += 1
                while self.peek() in ("packets", "bytes"):
                    self.i += 2
            elif w == "comment":
                self.i += 1
                self.comment = self.take("a comment string")
            elif w == "log":
                self.i += 1
                while self.peek() in ("prefix", "level", "flags", "group", "snaplen", "queue-threshold"):
                    self.i += 2
                self.targets.append(Target("log", None, "log"))
            elif w in ("update", "add") and (self.peek(1) or "").startswith("@"):
                self.i += 1
                self.updated.append(self.take("a set")[1:])
                if self.peek() == "{":
                    self.skip_braces()
            elif w in _VERDICTS:
                self.verdict()
            elif w in ("dnat", "snat"):
                self.nat(w)
            elif w == "masquerade":
                self.i += 1
                while self.peek() in ("fully-random", "random", "persistent", ","):
                    self.i += 1
                self.targets.append(Target("masquerade", None, "masquerade"))
            elif w == "redirect":
                self.i += 1
                port = None
                if self.peek() == "to":
                    self.i += 1
                    val = self.take("a port").lstrip(":")
                    port = _range(val, self)
                self.targets.append(Target("redirect", port, "redirect"))
            elif w == "notrack":
                self.i += 1
                self.targets.append(Target("ct", None, "notrack"))
            else:
                self.opaque()
            if self.i == start:  # pragma: no cover - safety against loops
                raise self.err("could not parse this expression")
        return self.matches, self.targets, self.comment, self.updated

    def _ct_status_nat(self) -> bool:
        """``ct status [!=] dnat|snat|{...}``: the NAT bits the tracer follows (other status bits stay opaque)."""
        j = self.i + 2
        if self.peek(2) in ("!=", "=="):
            j += 1
        words: list[str] = []
        if j < len(self.w) and self.w[j].text == "{":
            while j < len(self.w) and self.w[j].text != "}":
                words.append(self.w[j].text)
                j += 1
            words = [x for x in words if x not in ("{", ",")]
        elif j < len(self.w):
            words = [self.w[j].text]
            while j + 2 < len(self.w) and self.w[j + 1].text == ",":
                words.append(self.w[j + 2].text)
                j += 2
        return bool(words) and all(x in ("dnat", "snat") for x in words)

    def skip_braces(self) -> list[_Tok]:
        if self.peek() != "{":
            return []
        depth = 0
        out = []
        while self.i < len(self.w):
            t = self.w[self.i]
            self.i += 1
            if t.kind == "{":
                depth += 1
            elif t.kind == "}":
                depth -= 1
                if depth == 0:
                    return out
            else:
                out.append(t)
        raise self.err("expected '}'")

    def opaque(self) -> None:
        start = self.i
        self.i += 1
        while self.i < len(self.w) and (self.peek() not in _STATEMENT_WORDS or self.peek() in ("ip", "meta")):
            if self.peek() == "{":
                self.skip_braces()
                continue
            if self.peek() in ("ip", "meta") and (self.peek(), self.peek(1)) in _FIELD:
                break
            self.i += 1
        text = " ".join(t.text for t in self.w[start : self.i])
        line = self.w[start].line
        self.p.rs.warnings.append(
            ParseWarning(self.p.source, line, f"unsupported nft expression '{text}' kept as opaque (traced as unknown)")
        )
        self.matches.append(Match("opaque", False, "nft", text))

    def values(self) -> list[str]:
        if self.peek() == "{":
            toks = self.skip_braces()
            return [t.text for t in toks if t.kind != "," and t.kind != "nl"]
        vals = [self.take("a value")]
        while self.peek() == ",":
            self.i += 1
            vals.append(self.take("a value"))
        return vals

    def compare(self, fld: str, words: tuple) -> None:
        neg = False
        if self.peek() in ("!=", "=="):
            neg = self.take("an operator") == "!="
        text = " ".join(words)
        if self.peek() is not None and self.peek().startswith("@"):
            name = self.take("a set")[1:]
            self.matches.append(Match("set", neg, (fld, name), f"{text} {'!= ' if neg else ''}@{name}"))
            return
        vals = self.values()
        shown = f"{text} {'!= ' if neg else ''}{','.join(vals)}"
        try:
            if fld in ("daddr", "saddr"):
                nets = tuple(parse_cidr(v) for v in vals)
                self.matches.append(Match("dst" if fld == "daddr" else "src", neg, nets, shown))
            elif fld in ("dport", "sport"):
                ranges = tuple(_range(v, self) for v in vals)
                if words[0] in ("tcp", "udp", "sctp"):
                    self.matches.append(Match("proto", False, words[0], words[0]))
                which = "dst" if fld == "dport" else "src"
                self.matches.append(Match("multiport", neg, (which, ranges), shown))
            elif fld == "l4proto":
                protos = tuple(_proto(v) for v in vals)
                if len(protos) == 1:
                    self.matches.append(Match("proto", neg, protos[0], shown))
                else:
                    self.matches.append(Match("l4proto", neg, frozenset(protos), shown))
            elif fld in ("skuid", "skgid"):
                lo, hi = _range(vals[0], self)
                self.matches.append(Match("uid" if fld == "skuid" else "gid", neg, (lo, hi), shown))
            elif fld in ("oifname", "iifname"):
                name = vals[0].replace("*", "+")
                self.matches.append(Match("out_if" if fld == "oifname" else "in_if", neg, name, shown))
            elif fld == "ctstate":
                self.matches.append(Match("ctstate", neg, frozenset(v.upper() for v in vals), shown))
        except ValueError:
            raise self.err(f"expected a valid value for {text}") from None

    def concat(self) -> None:
        fields = []
        while True:
            two = (self.peek(), self.peek(1))
            if two not in _FIELD:
                raise self.err("expected a field such as 'ip daddr' or 'th dport' in a concatenation")
            fields.append(_FIELD[two])
            self.i += 2
            if self.peek() != ".":
                break
            self.i += 1
        kw = self.take("vmap or @set after the concatenation")
        if kw == "vmap":
            ref = self.map_ref(verdicts=True)
            self.targets.append(Target("vmap", (tuple(fields), ref), f"{' . '.join(fields)} vmap"))
            return
        if kw.startswith("@"):
            self.matches.append(Match("opaque", False, "nft", f"{' . '.join(fields)} {kw}"))
            return
        raise self.err("expected vmap after a concatenated key")

    def map_ref(self, verdicts: bool) -> Any:
        if self.peek() is not None and self.peek().startswith("@"):
            return self.take("a map")[1:]
        if self.peek() != "{":
            raise self.err("expected '{' or @map")
        toks = self.skip_braces()
        return self.p.elements(toks, True)

    def mark(self) -> None:
        # meta mark set meta mark | 0x4000 ; mark set mark or 0x4000 ; meta mark & 0x4000 == 0 ; mark and 0x4000 == 0
        self.i += 2 if self.peek() == "meta" else 1
        if self.peek() == "set":
            self.i += 1
            words = []
            while self.i < len(self.w) and self.peek() not in _STATEMENT_WORDS - {"meta", "mark"}:
                words.append(self.take("a mark expression"))
            expr = [x for x in words if x not in ("meta", "mark")]
            try:
                if len(expr) == 1:
                    op = (0xFFFFFFFF, int(expr[0], 0))
                else:
                    o, v = expr[0], int(expr[1], 0)
                    op = {"|": (v, v), "or": (v, v), "^": (0, v), "xor": (0, v),
                          "&": ((~v) & 0xFFFFFFFF, 0), "and": ((~v) & 0xFFFFFFFF, 0)}[o]  # fmt: skip
            except (ValueError, KeyError, IndexError):
                raise self.err("expected 'mark set mark or|xor|and VALUE' or 'mark set VALUE'") from None
            self.targets.append(Target("mark", op, "mark set " + " ".join(expr)))
            return
        mask = 0xFFFFFFFF
        if self.peek() in ("&", "and"):
            self.i += 1
            mask = self.number("a mask")
        neg = False
        if self.peek() in ("==", "!="):
            neg = self.take("an operator") == "!="
        value = self.number("a mark value")
        self.matches.append(Match("mark_cmp", neg, (mask, value), f"mark & {mask:#x} {'!=' if neg else '=='} {value:#x}"))

    def number(self, what: str) -> int:
        """The next word as a 32-bit unsigned integer (decimal or 0x hex), else a parse error."""
        tok = self.tok()
        text = self.take(what)
        try:
            value = int(text, 0) if len(text) <= 20 else -1
        except ValueError:
            value = -1
        if not 0 <= value <= 0xFFFFFFFF:
            raise self.p.err(f"expected {what} (an integer in [0, 4294967295])", tok)
        return value

    def fib(self) -> None:
        """``fib saddr|daddr [. iif|oif|mark ...] type [!=] TYPE|{TYPES}``; other results stay opaque.

        The tuple names exactly one address (``saddr`` or ``daddr``) and
        optionally the device the lookup is limited to (``iif``, ``oif``); the
        kernel answers with ``inet_dev_addr_type`` (``net/ipv4/netfilter/nft_fib_ipv4.c:
        nft_fib4_eval_type``). Every word is read whole: nothing is recognised by
        a prefix.
        """
        start = self.i
        self.i += 1
        flags: list[str] = []
        while True:
            word = self.peek()
            if word not in _FIB_FLAGS:
                raise self.err("expected saddr, daddr, mark, iif or oif after 'fib'")
            flags.append(self.take("a fib flag"))
            if self.peek() != ".":
                break
            self.i += 1
        addrs = [f for f in flags if f in ("saddr", "daddr")]
        if len(addrs) != 1 or len(set(flags)) != len(flags) or ("iif" in flags and "oif" in flags):
            raise self.p.err("expected 'fib saddr|daddr [. iif|. oif|. mark]': exactly one address", self.w[start])
        result = self.take("type, oif or oifname after the fib tuple")
        if result not in ("type", "oif", "oifname"):
            raise self.p.err("expected type, oif or oifname after the fib tuple", self.w[self.i - 1])
        neg = False
        if self.peek() in ("!=", "=="):
            neg = self.take("an operator") == "!="
        vals = self.values()
        text = " ".join(t.text for t in self.w[start : self.i])
        if result != "type" or "mark" in flags:
            # an output device (reverse-path checks) or a lookup that depends on the mark's routing rules
            self.p.rs.warnings.append(ParseWarning(
                self.p.source, self.w[start].line, f"unsupported nft expression '{text}' kept as opaque (traced as unknown)"
            ))  # fmt: skip
            self.matches.append(Match("opaque", False, "nft", text))
            return
        side = _FIB_SIDE[addrs[0]]
        iface = "in" if "iif" in flags else ("out" if "oif" in flags else None)
        self.matches.append(Match("fib", neg, (side, frozenset(v.upper() for v in vals), iface), text))

    def numgen(self, dnat: str | None) -> Target | None:
        self.i += 1
        mode = self.take("random or inc")
        if mode not in ("random", "inc"):
            raise self.err("expected 'numgen random' or 'numgen inc'")
        if self.take("mod") != "mod":
            raise self.err("expected 'mod N' after numgen")
        tok = self.tok()
        try:
            modulus = int(self.take("the modulus"))
        except ValueError:
            raise self.p.err("expected an integer modulus after 'numgen ... mod'", tok) from None
        if not 1 <= modulus <= 0xFFFFFFFF:
            raise self.p.err("expected a modulus in [1, 4294967295] after 'numgen ... mod'", tok)
        offset = 0
        if self.peek() == "offset":
            self.i += 1
            offset = self.number("the offset")
        kw = self.take("vmap or map")
        if kw not in ("vmap", "map"):
            raise self.err("expected vmap or map after numgen ... mod N")
        elems = self.map_ref(verdicts=kw == "vmap")
        if isinstance(elems, str):
            s = self.table.sets.get(elems)
            if s is None:
                raise self.err(f"map @{elems} is not defined")
            elems = s.elements
        slots = []
        for el in elems:
            if len(el.key) != 1 or el.key[0][0] != "range":
                raise self.p.err("expected slot numbers (0, 1-2) as numgen map keys", self.tok())
            lo, hi = el.key[0][1]
            if lo < offset or hi >= offset + modulus:
                raise self.p.err(f"numgen slot {lo}-{hi} is outside {offset}..{offset + modulus - 1}", self.tok())
            if kw == "vmap":
                if not (isinstance(el.data, tuple) and len(el.data) == 2 and el.data[0] in _VERDICTS):
                    raise self.err("expected a verdict (goto CHAIN, accept, ...) for each numgen slot")
                v, arg = el.data
                payload = Target(v, arg, f"{v} {arg}" if arg else v)
            else:
                comps = el.data
                if dnat is None:
                    raise self.err("expected a verdict map (vmap) for numgen outside dnat")
                if not (isinstance(comps, tuple) and comps and all(isinstance(c, tuple) for c in comps)):
                    raise self.err("expected 'ADDRESS . PORT' for each numgen slot of the dnat map")
                addr = comps[0][1].text if comps[0][0] == "addr" else None
                port = comps[1][1] if len(comps) > 1 and comps[1][0] == "range" else None
                text = f"{addr}:{port[0]}" if port else str(addr)
                payload = Target("dnat", (addr, port, text), f"dnat to {text}")
            slots.append((lo, hi, payload))
        prev = None
        for lo, hi, _pl in sorted(slots, key=lambda x: (x[0], x[1])):
            if prev is not None and lo <= prev[1]:  # nft refuses these too ("conflicting intervals")
                raise self.p.err(f"numgen slots {prev[0]}-{prev[1]} and {lo}-{hi} overlap", self.tok())
            prev = (lo, hi)
        target = Target("numgen" if kw == "vmap" else "dnat_map", (mode, modulus, offset, tuple(slots)),
                        f"numgen {mode} mod {modulus} {kw}")  # fmt: skip
        if dnat is None:
            self.targets.append(target)
            return None
        return target

    def verdict(self) -> None:
        v = self.take("a verdict")
        if v in ("jump", "goto"):
            name = self.take(f"a chain name after {v}")
            self.targets.append(Target(v, name, f"{v} {name}"))
        elif v == "reject":
            what = None
            if self.peek() == "with":
                self.i += 1
                what = self.take("a reject type")
                if self.peek() not in _STATEMENT_WORDS and self.peek() is not None:
                    what += " " + self.take("a reject code")
            self.targets.append(Target("reject", what, "reject"))
        elif v == "queue":
            self.i -= 1
            self.opaque_target()
        else:
            self.targets.append(Target(v, None, v))

    def opaque_target(self) -> None:
        start = self.i
        self.i = len(self.w)
        text = " ".join(t.text for t in self.w[start:])
        line = self.w[start].line
        self.p.rs.warnings.append(ParseWarning(self.p.source, line, f"unsupported nft statement '{text}' kept as opaque"))
        self.targets.append(Target("opaque", ("nft", text), text))

    def nat(self, kind: str) -> None:
        self.i += 1
        while self.peek() in ("ip", "ip6", "addr", ".", "port"):
            self.i += 1
        if self.take("'to'") != "to":
            raise self.err(f"expected 'to' after {kind}")
        if self.peek() == "numgen":
            t = self.numgen(kind)
            if kind != "dnat":
                raise self.err("expected numgen maps only with dnat")
            self.targets.append(t)
            return
        val = self.take("an address")
        if val.startswith("@") or val in ("ip", "ip6", "meta"):
            self.i -= 1
            self.opaque_target()
            return
        addr, port = val, None
        if val.startswith("["):
            addr, _, rest = val[1:].partition("]")
            port = rest[1:] or None
        elif val.count(":") == 1:
            addr, port = val.split(":")
        if val.startswith(":"):
            addr = None
        try:
            if addr:
                parse_cidr(addr.split("-")[0])
            ports = _range(port, self) if port else None
        except ValueError:
            raise self.err(f"expected ADDRESS[:PORT] after {kind} to") from None
        while self.peek() in ("fully-random", "random", "persistent", ","):
            self.i += 1
        self.targets.append(Target(kind, (addr, ports, val), f"{kind} to {val}"))


def _range(text: str, rp: Any) -> tuple[int, int]:
    try:
        lo, sep, hi = text.partition("-")
        a = int(lo, 0)
        b = int(hi, 0) if sep else a
        if a > b:
            raise ValueError
        return a, b
    except ValueError:
        raise rp.err(f"expected a number or range, got {text!r}") from None


_PROTO_NUM = {"6": "tcp", "17": "udp", "132": "sctp", "1": "icmp", "58": "ipv6-icmp"}


def _proto(v: str) -> str:
    return _PROTO_NUM.get(v, v.lower())


def _resolve(p: _P) -> None:
    # only the rules still in place: a flushed or deleted chain's old rules refer to nothing
    live_tables = {id(t) for t in p.rs.tables.values()}
    live_rules = {id(r) for t in p.rs.tables.values() for c in t.chains.values() for r in c.rules}
    for t, rule in p.pending:
        if id(t) not in live_tables or id(rule) not in live_rules:
            continue
        for tgt in flat_targets(rule.target):
            names: list[str] = []
            if tgt.kind in ("jump", "goto"):
                names.append(tgt.value)
            elif tgt.kind == "numgen":
                names += [pl.value for _lo, _hi, pl in tgt.value[3] if pl.kind in ("jump", "goto")]
            elif tgt.kind == "vmap":
                ref = tgt.value[1]
                els = t.sets[ref].elements if isinstance(ref, str) and ref in t.sets else (
                    ref if not isinstance(ref, str) else []
                )
                if isinstance(ref, str) and ref not in t.sets:
                    raise ConfigParseError(f"map @{ref} is not defined in table {t.family} {t.name}",
                                           source=rule.source, line=rule.line)  # fmt: skip
                names += [el.data[1] for el in els if el.data and el.data[0] in ("jump", "goto")]
            for n in names:
                if n not in t.chains:
                    raise ConfigParseError(
                        f"chain '{n}' does not exist in table {t.family} {t.name} (jump/goto target)",
                        source=rule.source, line=rule.line,
                    )  # fmt: skip
                t.referrers.setdefault(n, []).append(rule)
        for m in rule.matches:
            if m.kind == "set" and m.value[1] not in t.sets:
                raise ConfigParseError(f"set @{m.value[1]} is not defined in table {t.family} {t.name}",
                                       source=rule.source, line=rule.line)  # fmt: skip
    # named verdict maps refer to chains too
    for t in p.rs.tables.values():
        for s in t.sets.values():
            for el in s.elements:
                if isinstance(el.data, tuple) and el.data and el.data[0] in ("jump", "goto"):
                    if el.data[1] not in t.chains:
                        raise ConfigParseError(
                            f"chain '{el.data[1]}' does not exist in table {t.family} {t.name} (map @{s.name})",
                            source=p.source, line=el.line,
                        )  # fmt: skip


def flat_targets(t: Target) -> list[Target]:
    """The targets of a rule (nft rules may carry several statements)."""
    return list(t.value) if t.kind == "seq" else [t]


def parse_nft(text: str, source: str = "<input>") -> Ruleset:
    """Parse ``nft list ruleset`` output or an ``nft -f`` transaction.

    Returns
    -------
    Ruleset
        ``dialect="nft"``, tables keyed ``(family, name)``; base chains carry
        ``chain_type``, ``hook`` and ``priority``.

    Raises
    ------
    ConfigParseError
        ``file:line: what was expected``; also for an empty input, and for a
        jump, goto or map element naming a chain that is not defined (nft
        refuses those too).
    """
    rs = Ruleset(dialect="nft", source=source)
    toks = _tokens(text, source)
    if not any(t.kind != "nl" for t in toks):
        raise ConfigParseError("empty input: expected nft list ruleset output (no tables found)", source=source)
    p = _P(toks, source, rs)
    p.parse()
    _resolve(p)
    return rs
