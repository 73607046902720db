"""Netfilter rulesets: packet traces with exact probabilities, and kube-proxy services.

Three things are built on the parsed rules (:mod:`meshstat.parsers.iptables`,
:mod:`meshstat.parsers.nft`):

:func:`trace`
    Walk one packet through the nat table (and mangle where ``TPROXY`` is used)
    of a hook, following jumps, gotos and returns, and list every path with its
    exact probability (:class:`fractions.Fraction`), the rules it passed and its
    verdict. A ``-m statistic --mode random`` rule matches with probability
    exactly ``k / 2**31`` (``k`` the stored integer, kernel
    ``net/netfilter/xt_statistic.c: statistic_mt``); nft ``numgen random mod N``
    picks slot ``s`` with probability ``#{r : floor(r*N/2**32) = s} / 2**32``
    (kernel ``net/netfilter/nft_numgen.c: nft_ng_random_eval`` via
    ``reciprocal_scale``). What the packet does not say (no ``--src``, no
    ``--uid``, a client's ``-m recent`` history, an opaque match) is never
    guessed: the path splits into both outcomes, each labelled with the
    assumption it rests on, and probabilities are conditional on those labels.
:func:`services` / :func:`find_service`
    The services of a kube-proxy dump (iptables or nftables mode): cluster IP,
    port, protocol, endpoints with their exact shares, session affinity,
    traffic policy. Chain names are recomputed as kube-proxy does
    (``base32(sha256(...))``, kubernetes ``pkg/proxy/iptables/proxier.go:
    portProtoHash, servicePortEndpointChainName`` and
    ``pkg/proxy/nftables/proxier.go: servicePortChainNameBase``), which both
    verifies the dump and finds a service by name when comments are missing.
:func:`load_service_route`
    A service as a :class:`meshstat.model.Route`: the kube-proxy cascade with
    the stored thresholds (:class:`meshstat.model.Cascade`) or the nft numgen
    split (:class:`Numgen`).
:func:`check_counters`
    The packet counters of an ``iptables -t nat -vnL`` listing (read by
    :mod:`meshstat.parsers.iptables_list`, which :func:`load` recognises) for a
    service's cascade: connections per endpoint against the exact split, with
    p-values from :mod:`meshstat.inference` and :mod:`meshstat.stats`.
"""

from __future__ import annotations

import base64
import bisect
import gc
import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from meshstat import model
from meshstat.errors import ConfigParseError, InvalidArgument, ModelError
from meshstat.parsers import sniff_netfilter_dialect
from meshstat.parsers.netfilter.iptables_save import parse_iptables
from meshstat.parsers.netfilter.nft import flat_targets
from meshstat.parsers.netfilter.rules import parse_cidr
from meshstat.parsers.netfilter.ruleset import FREEZE_RULES as _FREEZE_RULES
from meshstat.parsers.netfilter.ruleset import (
    TABLE_PRIORITY,
    Chain,
    Match,
    Net,
    NftElement,
    NftSet,
    Rule,
    Ruleset,
    Table,
    Target,
)

__all__ = [
    "Condition",
    "CounterCheck",
    "CounterRow",
    "EndpointInfo",
    "Numgen",
    "Packet",
    "ServiceInfo",
    "Step",
    "TracePath",
    "TraceResult",
    "Verdict",
    "check_counters",
    "find_service",
    "kube_chain_hash",
    "kube_nft_chain_hash",
    "load",
    "load_service_route",
    "kube_proxy_iptables_save",
    "nth_matches",
    "numgen_slot_counts",
    "parse_iptables",
    "parse_ipvsadm",
    "parse_nft",
    "service_route",
    "services",
    "trace",
]

_TWO32 = 1 << 32
_TWO64 = 1 << 64
#: Deepest chain nesting a trace follows before it reports over-deep recursion.
MAX_DEPTH = 64
#: Most paths one trace may produce before asking for more packet fields.
MAX_PATHS = 20_000


def parse_nft(text: str, source: str = "<input>") -> Ruleset:
    """Parse ``nft list ruleset`` output or an ``nft -f`` transaction (see :mod:`meshstat.parsers.nft`)."""
    from meshstat.parsers.netfilter.nft import parse_nft as _parse

    return _parse(text, source)


# =========================================================================== loading


def _read(source: str) -> tuple[str, str]:
    from meshstat.inputs import read_text, source_name

    return read_text(source, what="ruleset"), source_name(source)


def load(source: str | Ruleset, dialect: str | None = None, *, text: str | None = None) -> Ruleset:
    """Read and parse a dump: a path, ``"-"`` for standard input, or a parsed :class:`Ruleset`.

    Parameters
    ----------
    source : str or Ruleset
        File name or ``"-"``; a Ruleset is returned as is.
    dialect : {"iptables", "iptables-list", "nft"}, optional
        Default: sniffed from the text (``*table`` / ``-A`` lines are iptables,
        ``table`` / ``add`` lines are nft). ``"iptables"`` also reads an
        ``iptables -L`` listing (``Chain NAME (policy ...)`` lines) and pasted
        ``iptables-save`` text with copy-paste damage or without ``*table``
        lines, recognised by their first line
        (:mod:`meshstat.parsers.iptables_list`); ``"iptables-list"`` insists on
        a listing.
    text : str, optional
        The content, when already read (``source`` then only names it).

    Raises
    ------
    ConfigParseError
        Empty input, an unrecognised format, or a malformed line.
    """
    if isinstance(source, Ruleset):
        return source
    if text is None:
        text, name = _read(source)
    else:
        name = "<stdin>" if source == "-" else source
    if dialect not in (None, "iptables", "iptables-list", "nft"):
        raise InvalidArgument(f"dialect must be 'iptables', 'iptables-list' or 'nft', got {dialect!r}")
    if dialect != "nft":
        # iptables -L listings and damaged or partial iptables-save pastes (issue 10)
        from meshstat.parsers.netfilter import iptables_list

        form = "list" if dialect == "iptables-list" else iptables_list.sniff_iptables_text(text)
        if form == "list":
            return iptables_list.parse_iptables_list(text, name)
        if form == "paste":
            return iptables_list.parse_iptables_paste(text, name)
    if dialect is None:
        dialect = sniff_netfilter_dialect(text)
        if dialect is None:
            if not text.strip() or all(
                not ln.strip() or ln.lstrip().startswith("#") for ln in text.splitlines()
            ):
                raise ConfigParseError(
                    "empty input: expected iptables-save or nft list ruleset output", source=name
                )
            first = next(i for i, ln in enumerate(text.splitlines(), 1) if ln.strip())
            raise ConfigParseError(
                "expected iptables-save output ('*nat', ':CHAIN', '-A ...') or nft rules "
                "('table ip ...', 'add rule ...')",
                source=name,
                line=first,
                snippet=text.splitlines()[first - 1].strip(),
            )
    if dialect == "iptables":
        return parse_iptables(text, name)
    return parse_nft(text, name)


# =========================================================================== trace


@dataclass(frozen=True, slots=True)
class Packet:
    """The first packet of a connection, as far as it is known.

    Fields left ``None`` are unknown: a rule that tests them splits the trace
    into both outcomes (labelled), it is never guessed.

    Parameters
    ----------
    dst : str
        Destination address.
    dport : int, optional
        Destination port.
    src, sport : optional
        Source address and port.
    proto : str
        ``"tcp"``, ``"udp"``, ``"sctp"``, ``"icmp"``.
    uid, gid : int, optional
        Owner of the sending socket (hook ``output`` only).
    out_if, in_if : str, optional
        Interfaces (``out_if`` on ``output``, ``in_if`` on ``prerouting``).
    mark : int
        ``skb->mark`` when the packet enters the first table.
    ctstate : str
        Conntrack state(s), comma separated (``"NEW"`` for a first packet).
    dst_local, src_local : bool, optional
        Whether the address is local to the host (``-m addrtype``,
        ``fib ... type local``); ``src_local`` defaults to true on ``output``.
    """

    dst: str
    dport: int | None = None
    src: str | None = None
    sport: int | None = None
    proto: str = "tcp"
    uid: int | None = None
    gid: int | None = None
    out_if: str | None = None
    in_if: str | None = None
    mark: int = 0
    ctstate: str = "NEW"
    dst_local: bool | None = None
    src_local: bool | None = None

    def __post_init__(self) -> None:
        try:
            parse_cidr(self.dst)
            if self.src is not None:
                parse_cidr(self.src)
        except ValueError:
            raise InvalidArgument(f"expected an IP address, got {self.dst!r} / {self.src!r}") from None
        for name in ("dport", "sport"):
            v = getattr(self, name)
            if v is not None and not 0 <= v <= 65535:
                raise InvalidArgument(f"{name} must be within 0..65535, got {v}")


@dataclass(frozen=True, slots=True)
class Step:
    """A rule a path passed (it matched), or the policy at the end of a built-in chain."""

    table: str
    chain: str
    line: int | None
    action: str
    text: str = ""

    def label(self, with_table: bool = False) -> str:
        """``CHAIN:line`` (``table/CHAIN:line`` with ``with_table``)."""
        where = f"{self.chain}:{self.line if self.line is not None else 'policy'}"
        return f"{self.table}/{where}" if with_table else where


@dataclass(frozen=True, slots=True)
class Condition:
    """An assumption a path rests on: ``label`` is ``holds`` (true or false)."""

    label: str
    holds: bool
    line: int | None = None

    def __str__(self) -> str:
        return f"{self.label}: {'yes' if self.holds else 'no'}"


@dataclass(frozen=True, slots=True)
class Verdict:
    """How a path ends.

    ``kind`` is ``"DNAT"``, ``"REDIRECT"``, ``"SNAT"``, ``"MASQUERADE"``,
    ``"TPROXY"``, ``"CONTINUE"`` (no translation: the packet goes on to the next
    hook unchanged), ``"ACCEPT"`` (the same, by an explicit ACCEPT), ``"DROP"``,
    ``"REJECT"`` or ``"UNKNOWN"`` (an opaque target); ``target`` is
    ``"ip:port"`` for DNAT, the port for REDIRECT and TPROXY.
    """

    kind: str
    target: str | None = None
    detail: str = ""

    def __str__(self) -> str:
        if self.kind == "DNAT":
            return f"DNAT to {self.target}"
        if self.kind in ("REDIRECT", "TPROXY"):
            return f"{self.kind} to port {self.target}"
        if self.kind in ("SNAT",):
            return f"SNAT to {self.target}"
        if self.kind == "CONTINUE":
            return "no NAT: falls through to the next hook"
        if self.kind == "UNKNOWN":
            return f"unknown ({self.detail})"
        return self.kind + (f" {self.target}" if self.target else "")


@dataclass(frozen=True, slots=True)
class TracePath:
    """One way through the rules.

    Attributes
    ----------
    probability : Fraction
        Exact probability of this path, conditional on :attr:`conditions`.
    steps : tuple of Step
        The rules that matched, in order.
    verdict : Verdict
    conditions : tuple of Condition
        Unknowns this path assumed (empty when the packet decided everything).
    notes : tuple of str
        Modelling remarks (``nth`` counters read as 1/every, ...).
    mark : int
        ``skb->mark`` at the end.
    """

    probability: Fraction
    steps: tuple[Step, ...]
    verdict: Verdict
    conditions: tuple[Condition, ...] = ()
    notes: tuple[str, ...] = ()
    mark: int = 0
    branches: tuple[tuple[int, bool], ...] = field(default=(), repr=False)

    def path_string(self, with_table: bool = False) -> str:
        """``"OUTPUT:12 -> ISTIO_OUTPUT:20 -> ..."``."""
        return " -> ".join(s.label(with_table) for s in self.steps)


@dataclass(frozen=True, slots=True)
class TraceResult:
    """All paths of one packet through one hook.

    ``total`` is the sum of the path probabilities, read as a tree: at a random
    split the branches add up; where a path splits on an unknown (both outcomes
    listed, each conditional on its label) each side on its own must carry the
    mass that reached it. It is exactly 1 for a consistent trace.
    """

    packet: Packet
    hook: str
    tables: tuple[str, ...]
    paths: tuple[TracePath, ...]
    notes: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()

    @property
    def total(self) -> Fraction:
        """Sum of the path probabilities over the tree of unknowns (1 when consistent)."""
        return _tree_total(list(self.paths), 0)

    def by_verdict(self) -> dict[str, Fraction]:
        """Probability of every verdict, for traces without unknowns.

        Raises
        ------
        ModelError
            When some path depends on an unknown (sum over a condition instead).
        """
        if any(p.conditions for p in self.paths):
            raise ModelError("some paths depend on unknowns; their probabilities are conditional")
        out: dict[str, Fraction] = {}
        for p in self.paths:
            out[str(p.verdict)] = out.get(str(p.verdict), Fraction(0)) + p.probability
        return out


def _tree_total(paths: list[TracePath], depth: int) -> Fraction:
    total = Fraction(0)
    groups: dict[int, tuple[list[TracePath], list[TracePath]]] = {}
    for p in paths:
        if len(p.branches) <= depth:
            total += p.probability
        else:
            node, holds = p.branches[depth]
            g = groups.setdefault(node, ([], []))
            g[0 if holds else 1].append(p)
    for node, (yes, no) in groups.items():
        a = _tree_total(yes, depth + 1)
        b = _tree_total(no, depth + 1)
        if a != b:
            raise ModelError(f"inconsistent trace: unknown #{node} carries {a} on one side and {b} on the other")
        total += a
    return total


class _State:
    __slots__ = (
        "assume", "branches", "chain", "conditions", "ctmark", "ctstates", "dport", "dst", "frames", "idx",
        "mark", "nat", "notes", "prob", "sets", "steps", "table", "verdict",
    )  # fmt: skip

    def copy(self) -> _State:
        s = _State.__new__(_State)
        s.prob = self.prob
        s.frames = list(self.frames)
        s.chain = self.chain
        s.idx = self.idx
        s.steps = list(self.steps)
        s.mark = self.mark
        s.ctmark = self.ctmark
        s.ctstates = self.ctstates
        s.dst = self.dst
        s.dport = self.dport
        s.assume = {k: list(v) for k, v in self.assume.items()}
        s.conditions = list(self.conditions)
        s.notes = list(self.notes)
        s.sets = self.sets
        s.nat = self.nat
        s.branches = list(self.branches)
        s.table = self.table
        s.verdict = self.verdict
        return s


class _Tracer:
    """One trace: the packet's fixed fields and the branch counter."""

    def __init__(self, ruleset: Ruleset, packet: Packet, hook: str, max_paths: int) -> None:
        self.rs = ruleset
        self.pkt = packet
        self.hook = hook
        self.max_paths = max_paths
        self.node = 0
        self.src = parse_cidr(packet.src) if packet.src is not None else None
        self.proto = packet.proto.lower()
        self.src_local = packet.src_local if packet.src_local is not None else (True if hook == "output" else None)
        self.notes: set[str] = set()
        self.finished = 0

    # ----------------------------------------------------------------- matches

    def decide(self, st: _State, m: Match, rule: Rule) -> Any:
        """True / False, a Fraction (random), or (key, label, desc) for an unknown."""
        kind = m.kind
        neg = m.negated
        if kind == "always":
            return True
        if kind == "dst":
            v, a = st.dst
            hit = any(n.contains(v, a) for n in m.value)
            return hit != neg
        if kind == "proto":
            hit = m.value in ("all", self.proto)
            return hit != neg
        if kind == "dport" or kind == "sport":
            port = st.dport if kind == "dport" else self.pkt.sport
            lo, hi = m.value
            if port is None:
                return self._unknown(st, kind, (lo, hi), neg, f"{kind} {lo}" + (f":{hi}" if hi != lo else ""))
            return (lo <= port <= hi) != neg
        if kind == "multiport":
            which, ranges = m.value
            ports = []
            if which in ("dst", "any"):
                ports.append(st.dport)
            if which in ("src", "any"):
                ports.append(self.pkt.sport)
            if any(p is None for p in ports):
                return self._opaque_like(st, m, rule, "port unknown")
            hit = any(lo <= p <= hi for p in ports for lo, hi in ranges)
            return hit != neg
        if kind == "src":
            if self.src is not None:
                hit = any(n.contains(self.src.version, self.src.network) for n in m.value)
                return hit != neg
            if len(m.value) != 1:
                return self._opaque_like(st, m, rule, "source unknown")
            return self._unknown(st, "src", m.value[0], neg, f"source in {m.value[0].text}")
        if kind in ("in_if", "out_if"):
            present = (kind == "out_if") == (self.hook == "output")
            name = m.value
            if not present:  # no such device at this hook: only "+" matches
                return (name == "+") != neg
            known = self.pkt.out_if if kind == "out_if" else self.pkt.in_if
            if known is not None:
                return _if_match(name, known) != neg
            return self._unknown(st, kind, name, neg, f"{kind.replace('_', '-')} {name}")
        if kind in ("uid", "gid"):
            if self.hook != "output":
                return neg  # no local socket: xt_owner matches only inverted options
            known = self.pkt.uid if kind == "uid" else self.pkt.gid
            lo, hi = m.value
            if known is not None:
                return (lo <= known <= hi) != neg
            return self._unknown(st, kind, (lo, hi), neg, f"{kind} {lo}" + (f"-{hi}" if hi != lo else ""))
        if kind == "socket":
            return (self.hook == "output") != neg
        if kind == "random":
            p = Fraction(m.value, 1 << 31)
            return 1 - p if neg else p
        if kind == "nth":
            every, packet = m.value
            self.notes.add(
                f"line {rule.line}: -m statistic --mode nth --every {every} --packet {packet} is a "
                f"deterministic per-rule counter (matches packets {packet + 1}, {packet + 1 + every}, ... "
                f"reaching the rule); a single-packet trace reads it as probability 1/{every}"
            )
            p = Fraction(1, every)
            return 1 - p if neg else p
        if kind == "mark":
            v, mask = m.value
            return ((st.mark & mask) == v) != neg
        if kind == "connmark":
            v, mask = m.value
            return ((st.ctmark & mask) == v) != neg
        if kind == "mark_cmp":  # nft: (mark & mask) OP value
            mask, value = m.value
            return ((st.mark & mask) == value) != neg
        if kind == "ctstate":
            return bool(st.ctstates & m.value) != neg
        if kind == "fragment":
            return neg
        if kind == "syn":
            return (self.proto == "tcp") != neg
        if kind == "tcp_flags":
            mask, comp = m.value
            flags = {"SYN"} & mask
            return (flags == comp) != neg
        if kind in ("addrtype", "fib"):
            side, types = m.value
            local = self.src_local if side == "src" else self.pkt.dst_local
            if side == "dst" and local is None and st.dst[0] == 4 and (st.dst[1] >> 24) == 127:
                local = True
            if local is not None and types <= {"LOCAL", "UNICAST"}:
                hit = ("LOCAL" in types and local) or (types == {"UNICAST"} and not local)
                return bool(hit) != neg
            return self._unknown(st, ("addrtype", side), types, neg, f"{side} address type {','.join(sorted(types))}")
        if kind == "recent":
            v = m.value
            if v["command"] == "set":
                return not neg
            name = v["name"]
            if name in st.sets and v["command"] in ("rcheck", "update") and not v["hitcount"]:
                return not neg
            secs = f" within {v['seconds']} s" if v["seconds"] else ""
            label = f"client seen before (recent list {name}{secs})"
            return self._unknown(st, ("recent", name), True, neg, label)
        if kind == "set":  # nft @set lookup
            fld, name = m.value
            return self._set_lookup(st, fld, name, neg, rule)
        return self._opaque_like(st, m, rule, "not modelled")

    def _opaque_like(self, st: _State, m: Match, rule: Rule, why: str) -> Any:
        key = ("opaque", rule.source, rule.line, m.text)
        return self._unknown(st, key, True, False, f"unknown match '{m.text}' at line {rule.line} ({why})")

    def _unknown(self, st: _State, attr: Any, desc: Any, neg: bool, label: str) -> Any:
        known = _implied(attr, desc, st.assume.get(attr, ()))
        if known is not None:
            return known != neg
        return (attr, desc, neg, label)

    def _set_lookup(self, st: _State, fld: str, name: str, neg: bool, rule: Rule) -> Any:
        table = self.rs.tables.get(st.table[0]) if isinstance(st.table, tuple) else None
        nset = table.sets.get(name) if table is not None else None
        if nset is None:
            return self._unknown(st, ("opaque", name), True, neg, f"set @{name} (not in the dump)")
        if nset.dynamic:
            if name in st.sets:
                return not neg
            t = f" within {nset.timeout} s" if nset.timeout else ""
            return self._unknown(st, ("recent", name), True, neg, f"client seen before (set @{name}{t})")
        if fld in ("daddr", "saddr"):
            if fld == "saddr" and self.src is None:
                return self._unknown(st, ("opaque", name, "saddr"), True, neg, f"source in @{name}")
            v, a = st.dst if fld == "daddr" else (self.src.version, self.src.network)
            hit = nset.contains_addr(v, a)
            return hit != neg
        return self._unknown(st, ("opaque", name, fld), True, neg, f"{fld} in @{name}")

    # ----------------------------------------------------------------- walking

    def run(self, tables: list[tuple[Table, Chain]], st: _State) -> list[_State]:
        """Walk ``st`` through the base chains in order; returns finished states.

        Work items are ``(state, table position, mode, payload)``: mode
        ``"start"`` enters the next base chain, ``"walk"`` continues after the
        current rule, ``"apply"`` applies ``payload`` (a Target) of the rule at
        ``state.idx - 1`` first.
        """
        done: list[_State] = []
        work: list[tuple[_State, int, str, Any]] = [(st, 0, "start", None)]
        while work:
            s, ti, mode, payload = work.pop()
            if mode == "start":
                if ti >= len(tables):
                    done.append(s)
                    self.finished += 1
                    if self.finished > self.max_paths:
                        raise ModelError(
                            f"the trace has more than {self.max_paths} paths; give more packet fields "
                            "(--src, --uid, --gid, --out-if) to narrow it"
                        )
                    continue
                table, chain = tables[ti]
                s.table = (_table_key(self.rs, table), table.name)
                s.chain = chain
                s.idx = 0
                s.frames = []
                s.verdict = None
            ended = False
            if mode == "apply":
                rule, target = payload
                ended = self._apply(s, rule, work, ti, target)
            if not ended:
                self._walk(s, work, ti)
            if s.verdict is not None and s.verdict.kind in ("DROP", "REJECT", "UNKNOWN"):
                done.append(s)
                self.finished += 1
                continue
            work.append((s, ti + 1, "start", None))
        return done

    def _walk(self, st: _State, work: list, ti: int) -> None:
        """Advance ``st`` in its current table until the table ends for it; branches are queued."""
        tname = st.table[1]
        while True:
            chain = st.chain
            rules = chain.rules
            idx = _next_candidate(chain, st, st.idx)
            if idx >= len(rules):
                if st.frames:
                    st.chain, st.idx = st.frames.pop()
                    continue
                pol = chain.policy or "ACCEPT"
                if pol.upper() == "DROP":
                    st.steps.append(Step(tname, chain.name, None, "policy DROP"))
                    st.verdict = Verdict("DROP", None, f"policy of {chain.name}")
                return
            rule = rules[idx]
            st.idx = idx + 1
            uncertain = []
            failed = False
            for m in rule.matches:
                r = self.decide(st, m, rule)
                if r is True:
                    continue
                if r is False:
                    failed = True
                    break
                uncertain.append((m, r))
            if failed:
                continue
            if uncertain:
                matched_self = False
                for s2, matched in reversed(self._branch(st, rule, uncertain)):  # LIFO: keep rule order
                    if s2 is st:
                        matched_self = matched
                    elif matched:
                        work.append((s2, ti, "apply", (rule, rule.target)))
                    else:
                        work.append((s2, ti, "walk", None))
                if not matched_self:
                    continue
            if self._apply(st, rule, work, ti, rule.target):
                return

    def _branch(self, st: _State, rule: Rule, uncertain: list) -> list[tuple[_State, bool]]:
        """Split ``st`` over the uncertain matches of ``rule``: [(state, rule matched)].

        ``st`` itself follows the "all matched" side as far as it goes.
        """
        out: list[tuple[_State, bool]] = []
        cur: _State | None = st
        for i, (m, r0) in enumerate(uncertain):
            r = r0 if i == 0 else self.decide(cur, m, rule)  # re-decide under this branch's assumptions
            if r is True:
                continue
            if r is False:
                out.append((cur, False))
                cur = None
                break
            if isinstance(r, Fraction):
                if r == 1:
                    continue
                if r == 0:
                    out.append((cur, False))
                    cur = None
                    break
                other = cur.copy()
                other.prob = cur.prob * (1 - r)
                cur.prob = cur.prob * r
                out.append((other, False))
            else:
                attr, desc, neg, label = r
                self.node += 1
                other = cur.copy()
                # on `cur` the match succeeds: the tested property holds unless the match is negated
                _assume(cur, attr, desc, not neg, label, rule.line, self.node)
                _assume(other, attr, desc, neg, label, rule.line, self.node)
                out.append((other, False))
        if cur is not None:
            out.append((cur, True))
        return out

    def _apply(self, st: _State, rule: Rule, work: list, ti: int, t: Any) -> bool:
        """Apply target ``t`` of the matched ``rule``; True when the table ends for ``st``."""
        kind = t.kind
        tname = st.table[1]
        chain = st.chain
        if rule.sets_updated and t is rule.target:
            st.sets = st.sets | set(rule.sets_updated)
        if kind in ("none", "ct", "log"):
            st.steps.append(Step(tname, chain.name, rule.line, t.text or "no target (counts only)", rule.text))
            return False
        if kind in ("jump", "goto"):
            target = _table_obj(self.rs, st).chains[t.value]
            active = [c.name for c, _ in st.frames] + [chain.name]
            if target.name in active:
                cycle = " -> ".join([*active[active.index(target.name):], target.name])
                raise ModelError(f"jump loop in table '{tname}': {cycle}", source=rule.source, line=rule.line)
            if len(st.frames) >= MAX_DEPTH:
                raise ModelError(
                    f"chains nested deeper than {MAX_DEPTH} levels (over-deep recursion) in table '{tname}'",
                    source=rule.source,
                    line=rule.line,
                )
            st.steps.append(Step(tname, chain.name, rule.line, f"{kind} {t.value}", rule.text))
            if kind == "jump":
                st.frames.append((chain, st.idx))
            st.chain = target
            st.idx = 0
            return False
        if kind == "return":
            st.steps.append(Step(tname, chain.name, rule.line, "RETURN", rule.text))
            if st.frames:
                st.chain, st.idx = st.frames.pop()
                return False
            st.idx = len(chain.rules)  # RETURN in a built-in chain: its policy
            return False
        if kind == "mark":
            mask, xor = t.value
            st.mark = ((st.mark & ~mask) ^ xor) & 0xFFFFFFFF
            st.steps.append(Step(tname, chain.name, rule.line, f"MARK -> {st.mark:#x}", rule.text))
            return False
        if kind == "connmark":
            op, a, b = t.value
            if op == "set":
                st.ctmark = ((st.ctmark & ~a) ^ b) & 0xFFFFFFFF
            elif op == "save":
                st.ctmark = ((st.ctmark & ~b) ^ (st.mark & a)) & 0xFFFFFFFF
            else:
                st.mark = ((st.mark & ~a) ^ (st.ctmark & b)) & 0xFFFFFFFF
            st.steps.append(Step(tname, chain.name, rule.line, f"CONNMARK {op}", rule.text))
            return False
        if kind == "accept":
            st.steps.append(Step(tname, chain.name, rule.line, "ACCEPT", rule.text))
            if st.nat is None:
                st.nat = Verdict("ACCEPT")
            return True
        if kind in ("drop", "reject"):
            st.steps.append(Step(tname, chain.name, rule.line, kind.upper(), rule.text))
            st.verdict = Verdict(kind.upper(), t.value if kind == "reject" else None)
            return True
        if kind == "dnat":
            addr, ports, text = t.value
            port = ports[0] if ports else st.dport
            target = _join(addr, port) if addr else f"(unchanged address):{port}"
            if ports and ports[0] != ports[1]:
                target = f"{addr}:{ports[0]}-{ports[1]}"
            st.steps.append(Step(tname, chain.name, rule.line, f"DNAT {target}", rule.text))
            self._set_nat(st, Verdict("DNAT", target))
            if addr and "-" not in addr:
                n = parse_cidr(addr)
                st.dst = (n.version, n.network)
            if ports:
                st.dport = ports[0]
            return True
        if kind == "redirect":
            ports = t.value
            port = str(st.dport) if ports is None else (str(ports[0]) if ports[0] == ports[1] else f"{ports[0]}-{ports[1]}")
            st.steps.append(Step(tname, chain.name, rule.line, f"REDIRECT {port}", rule.text))
            self._set_nat(st, Verdict("REDIRECT", port))
            return True
        if kind in ("snat", "masquerade"):
            target = t.value[2] if kind == "snat" else None
            st.steps.append(Step(tname, chain.name, rule.line, kind.upper(), rule.text))
            self._set_nat(st, Verdict(kind.upper(), target))
            return True
        if kind == "tproxy":
            port, _ip, mark = t.value
            if mark is not None:
                v, mask = mark
                st.mark = ((st.mark & ~mask) ^ v) & 0xFFFFFFFF
            st.steps.append(Step(tname, chain.name, rule.line, f"TPROXY {port}", rule.text))
            self._set_nat(st, Verdict("TPROXY", str(port)))
            return True
        if kind == "continue":
            return False
        if kind == "seq":
            for sub in t.value:
                if self._apply(st, rule, work, ti, sub):
                    return True
            return False
        if kind == "vmap":
            return self._vmap(st, rule, work, ti, t)
        if kind in ("numgen", "dnat_map"):
            return self._numgen(st, rule, work, ti, t)
        # opaque target
        name = t.value[0] if isinstance(t.value, tuple) else str(t.value)
        st.steps.append(Step(tname, chain.name, rule.line, f"-j {name} (opaque)", rule.text))
        st.verdict = Verdict("UNKNOWN", name, f"target {name} at line {rule.line} is not modelled")
        return True

    def _field(self, st: _State, fld: str) -> Any:
        """A packet field as a map key component value, or None when unknown."""
        if fld == "daddr":
            return ("addr", st.dst)
        if fld == "saddr":
            return None if self.src is None else ("addr", (self.src.version, self.src.network))
        if fld == "l4proto":
            return ("str", self.proto)
        if fld == "dport":
            return None if st.dport is None else ("int", st.dport)
        if fld == "sport":
            return None if self.pkt.sport is None else ("int", self.pkt.sport)
        return None

    def _vmap(self, st: _State, rule: Rule, work: list, ti: int, t: Target) -> bool:
        """nft ``key vmap @map|{...}``: the element's verdict, or fall through when none matches."""
        fields, ref = t.value
        tname = st.table[1]
        if isinstance(ref, str):
            nset = _table_obj(self.rs, st).sets.get(ref)
            elements = nset.elements if nset is not None else []
        else:
            elements = ref
        values = []
        for f in fields:
            v = self._field(st, f)
            if v is None:
                st.steps.append(Step(tname, st.chain.name, rule.line, "vmap (key unknown)", rule.text))
                st.verdict = Verdict("UNKNOWN", None, f"vmap at line {rule.line} needs the packet's {f}")
                return True
            values.append(v)
        for el in elements:
            if len(el.key) == len(values) and all(_comp_match(c, v) for c, v in zip(el.key, values, strict=True)):
                kind, arg = el.data
                return self._apply(st, rule, work, ti, Target(kind, arg, f"{kind} {arg}" if arg else kind))
        return False

    def _numgen(self, st: _State, rule: Rule, work: list, ti: int, t: Target) -> bool:
        """nft ``numgen random|inc mod N`` verdict or DNAT map: one branch per outcome."""
        mode, modulus, offset, slots = t.value
        if mode == "random":
            counts = numgen_slot_counts(modulus)
            denom = _TWO32
        else:
            counts = (1,) * modulus
            denom = modulus
            self.notes.add(
                f"line {rule.line}: numgen inc mod {modulus} is a round-robin counter (per rule); "
                f"a single-packet trace reads each slot as probability 1/{modulus}"
            )
        groups: dict[int, tuple[Target, int]] = {}
        used = 0
        for lo, hi, payload in slots:
            mass = sum(counts[s - offset] for s in range(lo, hi + 1))
            used += mass
            key = id(payload)
            for k, (pl, m) in groups.items():
                if pl == payload:
                    key = k
                    mass += m
                    break
            groups[key] = (payload, mass)
        branches: list[tuple[Fraction, Target | None]] = [
            (Fraction(m, denom), pl) for pl, m in groups.values() if m
        ]
        if used < denom:
            branches.append((Fraction(denom - used, denom), None))  # no element: the rule falls through
        keep = branches[0]
        base = st.prob
        for p, pl in reversed(branches[1:]):  # the work list is LIFO: keep slot order
            other = st.copy()
            other.prob = base * p
            if pl is None:
                work.append((other, ti, "walk", None))
            else:
                work.append((other, ti, "apply", (rule, pl)))
        p0, pl = keep
        st.prob = base * p0
        if pl is None:
            return False
        return self._apply(st, rule, work, ti, pl)

    def _set_nat(self, st: _State, v: Verdict) -> None:
        if st.nat is None or st.nat.kind in ("ACCEPT",):
            st.nat = v
        if v.kind in ("DNAT", "REDIRECT"):
            st.ctstates = st.ctstates | {"DNAT"}
        elif v.kind in ("SNAT", "MASQUERADE"):
            st.ctstates = st.ctstates | {"SNAT"}


def _join(addr: str, port: int | None) -> str:
    if port is None:
        return addr
    return f"[{addr}]:{port}" if ":" in addr else f"{addr}:{port}"


def _comp_match(comp: tuple[str, Any], value: tuple[str, Any]) -> bool:
    kind, v = value
    ck, cv = comp
    if kind == "addr":
        return ck == "addr" and cv.contains(v[0], v[1])
    if kind == "int":
        return ck == "range" and cv[0] <= v <= cv[1]
    if ck == "str":
        return cv == v
    if ck == "range" and kind == "str":  # protocol numbers
        return {6: "tcp", 17: "udp", 132: "sctp", 1: "icmp"}.get(cv[0]) == v
    return False


def _if_match(pattern: str, name: str) -> bool:
    if pattern.endswith("+"):
        return name.startswith(pattern[:-1])
    return pattern == name


def _implied(attr: Any, desc: Any, facts: Iterable[tuple[Any, bool]]) -> bool | None:
    """What earlier assumptions on ``attr`` say about ``desc`` (None: nothing)."""
    for d, holds in facts:
        if d == desc:
            return holds
        rel = _relation(attr, d, desc)
        if rel is None:
            continue
        subset, disjoint = rel
        if holds and subset:  # value in d, d within desc
            return True
        if holds and disjoint:
            return False
        if not holds and _relation(attr, desc, d) is not None and _relation(attr, desc, d)[0]:
            return False  # value outside d, and desc within d
    return None


def _relation(attr: Any, a: Any, b: Any) -> tuple[bool, bool] | None:
    """(a within b, a and b disjoint) for the attribute's value sets, or None."""
    if attr == "src" and isinstance(a, Net) and isinstance(b, Net):
        return b.covers(a), not a.overlaps(b)
    if attr in ("uid", "gid", "dport", "sport"):
        (a0, a1), (b0, b1) = a, b
        return (b0 <= a0 and a1 <= b1), (a1 < b0 or b1 < a0)
    if attr in ("in_if", "out_if"):
        pa, pb = a.rstrip("+"), b.rstrip("+")
        a_wild, b_wild = a.endswith("+"), b.endswith("+")
        within = (pa.startswith(pb) and b_wild) or (a == b)
        disjoint = not (pa.startswith(pb) if b_wild else False) and not (pb.startswith(pa) if a_wild else False) and a != b
        return within, disjoint
    return None


def _assume(st: _State, attr: Any, desc: Any, holds: bool, label: str, line: int, node: int) -> None:
    st.assume.setdefault(attr, []).append((desc, holds))
    st.conditions.append(Condition(label, holds, line))
    st.branches.append((node, holds))
    if holds and isinstance(attr, tuple) and attr[0] == "recent":
        st.sets = st.sets | {attr[1]}


def _table_key(rs: Ruleset, table: Table) -> tuple[str, str]:
    for k, t in rs.tables.items():
        if t is table:
            return k
    raise AssertionError


def _table_obj(rs: Ruleset, st: _State) -> Table:
    return rs.tables[st.table[0]]


def _next_candidate(chain: Chain, st: _State, idx: int) -> int:
    """The next rule position >= idx that can match ``st``'s destination."""
    rules = chain.rules
    if len(rules) < 64:
        return idx
    index = chain.dst_index
    if index is None:
        index = chain.dst_index = _build_dst_index(chain)
    exact, generic, cache = index
    cand = cache.get(st.dst)
    if cand is None:
        cand = sorted(set(exact.get(st.dst, ())) | set(generic))
        if len(cache) > 4096:
            cache.clear()
        cache[st.dst] = cand
    j = bisect.bisect_left(cand, idx)
    return cand[j] if j < len(cand) else len(rules)


def _build_dst_index(chain: Chain) -> tuple[dict, list[int], dict]:
    exact: dict[tuple[int, int], list[int]] = {}
    generic: list[int] = []
    for i, r in enumerate(chain.rules):
        key = None
        for m in r.matches:
            if m.kind == "dst" and not m.negated and len(m.value) == 1:
                n = m.value[0]
                if n.prefixlen == (32 if n.version == 4 else 128):
                    key = (n.version, n.network)
                break
        if key is None:
            generic.append(i)
        else:
            exact.setdefault(key, []).append(i)
    return exact, generic, {}


def _hook_chains(rs: Ruleset, hook: str, family: str, tables: tuple[str, ...] | None) -> list[tuple[Table, Chain]]:
    """Base chains of ``hook`` in priority order."""
    out: list[tuple[int, Table, Chain]] = []
    if rs.dialect == "iptables":
        want = tables
        if want is None:
            want = ("nat",)
            mangle = rs.tables.get((family, "mangle"))
            if mangle is not None and any(
                r.target.kind == "tproxy" for c in mangle.chains.values() for r in c.rules
            ):
                want = ("mangle", "nat")
        for name in want:
            t = rs.tables.get((family, name))
            if t is None:
                continue
            c = t.chains.get(hook.upper())
            if c is not None:
                out.append((TABLE_PRIORITY.get(name, 0), t, c))
    else:
        types = tables if tables is not None else ("nat",)
        fams = ("ip", "inet") if family == "ip" else ("ip6", "inet")
        for (fam, _name), t in rs.tables.items():
            if fam not in fams:
                continue
            for c in t.chains.values():
                if c.hook == hook and (c.chain_type or "filter") in types:
                    out.append((c.priority or 0, t, c))
    out.sort(key=lambda x: x[0])
    return [(t, c) for _, t, c in out]


def trace(
    ruleset: Ruleset,
    packet: Packet,
    hook: str = "output",
    *,
    tables: Iterable[str] | None = None,
    chain: str | None = None,
    max_paths: int = MAX_PATHS,
) -> TraceResult:
    """Every path of ``packet`` through ``hook``, with exact probabilities.

    Parameters
    ----------
    ruleset : Ruleset
        From :func:`load`, :func:`parse_iptables` or :func:`parse_nft`.
    packet : Packet
        The first packet of a connection.
    hook : {"output", "prerouting"}
        ``output`` for a locally generated packet, ``prerouting`` for one
        arriving on an interface.
    tables : iterable of str, optional
        iptables tables to walk in priority order (default: ``nat``, preceded by
        ``mangle`` when it contains ``TPROXY``); for nft, base-chain types
        (default ``nat``).
    chain : str, optional
        Start in this chain (of the first table given, default ``nat``)
        instead of the hook's base chains, e.g. ``"KUBE-SERVICES"`` for a dump
        that holds only kube-proxy's chains; falling off its end means no NAT.
    max_paths : int
        Refuse traces with more paths (unknown fields multiply them).

    Returns
    -------
    TraceResult

    Raises
    ------
    InvalidArgument
        For an unknown hook, or a dump with no nat table / no base chain at the hook.
    ModelError
        For a jump loop, chains nested deeper than :data:`MAX_DEPTH`, or too many paths.
    """
    hook = hook.lower()
    if hook not in ("output", "prerouting"):
        raise InvalidArgument(f"hook must be 'output' or 'prerouting', got {hook!r}")
    dst = parse_cidr(packet.dst)
    family = "ip" if dst.version == 4 else "ip6"
    tbl = tuple(tables) if tables is not None else None
    if chain is not None:
        chains = []
        for name in tbl or (("nat",) if ruleset.dialect == "iptables" else ()):
            t = ruleset.tables.get((family, name))
            if t is not None and chain in t.chains:
                chains = [(t, t.chains[chain])]
                break
        if ruleset.dialect == "nft" and tbl is None:
            fams = ("ip", "inet") if family == "ip" else ("ip6", "inet")
            chains = [(t, t.chains[chain]) for (f, _n), t in ruleset.tables.items() if f in fams and chain in t.chains][:1]
        if not chains:
            raise InvalidArgument(f"{ruleset.source}: no chain {chain!r} in table {'/'.join(tbl or ('nat',))}")
    else:
        chains = _hook_chains(ruleset, hook, family, tbl)
    if not chains:
        if ruleset.dialect == "iptables" and tbl is None:
            raise InvalidArgument(
                f"{ruleset.source}: the dump has no nat table for {'IPv4' if family == 'ip' else 'IPv6'} "
                "(expected a '*nat' block; iptables-save -t nat prints it)"
            )
        raise InvalidArgument(
            f"{ruleset.source}: no {'/'.join(tbl or ('nat',))} base chain at hook {hook} "
            f"for {'IPv4' if family == 'ip' else 'IPv6'}"
        )
    tr = _Tracer(ruleset, packet, hook, max_paths)
    st = _State.__new__(_State)
    st.prob = Fraction(1)
    st.frames = []
    st.chain = None
    st.idx = 0
    st.steps = []
    st.mark = packet.mark & 0xFFFFFFFF
    st.ctmark = 0
    st.ctstates = frozenset(x.strip().upper() for x in packet.ctstate.split(","))
    st.dst = (dst.version, dst.network)
    st.dport = packet.dport
    st.assume = {}
    st.conditions = []
    st.notes = []
    st.sets = frozenset()
    st.nat = None
    st.branches = []
    st.table = None
    st.verdict = None
    done = tr.run(chains, st)
    paths = []
    for s in done:
        verdict = s.verdict or s.nat or Verdict("CONTINUE")
        paths.append(
            TracePath(
                probability=s.prob,
                steps=tuple(s.steps),
                verdict=verdict,
                conditions=tuple(s.conditions),
                notes=tuple(s.notes),
                mark=s.mark,
                branches=tuple(s.branches),
            )
        )
    notes = sorted(tr.notes)
    names = tuple(f"{t.name}/{c.name}" for t, c in chains)
    return TraceResult(
        packet=packet,
        hook=hook,
        tables=names,
        paths=tuple(paths),
        notes=tuple(notes),
        warnings=tuple(str(w) for w in ruleset.warnings),
    )


def nth_matches(every: int, packet: int, count: int, *, invert: bool = False) -> list[int]:
    """Which of the first ``count`` packets reaching an ``nth`` rule match it (1-based).

    The kernel keeps one counter per rule, initialised to ``every - 1 - packet``
    (``libxt_statistic.c: statistic_check``) and advanced by every packet that
    reaches the rule; a packet matches when the counter wraps to 0
    (``xt_statistic.c: statistic_mt``).
    """
    if every < 1 or not 0 <= packet <= every - 1:
        raise InvalidArgument("expected every >= 1 and 0 <= packet <= every-1")
    cnt = (every - 1) - packet
    out = []
    for i in range(1, count + 1):
        cnt = 0 if cnt == every - 1 else cnt + 1
        if (cnt == 0) != invert:
            out.append(i)
    return out


# =========================================================================== numgen stage


def numgen_slot_counts(modulus: int) -> tuple[int, ...]:
    """How many of the 2**32 values of ``r`` give each slot of ``numgen random mod N``.

    The kernel computes ``reciprocal_scale(r, N) = (r * N) >> 32``
    (``include/linux/kernel.h``; ``net/netfilter/nft_numgen.c: nft_ng_random_gen``),
    so slot ``s`` gets ``ceil((s+1) 2**32 / N) - ceil(s 2**32 / N)`` values.
    """
    return _slot_counts(modulus, 32)


def _slot_counts(modulus: int, bits: int) -> tuple[int, ...]:
    """Slot sizes of ``(r * N) >> bits`` for uniform ``bits``-bit ``r`` (bits=32: the kernel's)."""
    if modulus < 1:
        raise InvalidArgument(f"numgen modulus must be >= 1, got {modulus}")
    one = 1 << bits

    def first(s: int) -> int:  # smallest r with (r*N) >> bits >= s, i.e. ceil(s * 2**bits / N)
        return -((-s * one) // modulus)

    return tuple(min(first(s + 1), one) - first(s) for s in range(modulus))


@dataclass(frozen=True, slots=True, kw_only=True)
class Numgen(model.Stage):
    """nft ``numgen random mod N [offset K] vmap|map { slots : outcome }``.

    ``slots[i]`` lists the slot ranges ``(lo, hi)`` (inclusive, offset
    included) that lead to ``children[i]``; a slot no element names makes the
    rule fall through (put a :data:`meshstat.model.FALL_THROUGH` backend there
    to model it). Shares are exact, with the kernel's ``reciprocal_scale`` bias
    (see :func:`numgen_slot_counts`).
    """

    modulus: int = 1
    offset: int = 0
    slots: tuple[tuple[tuple[int, int], ...], ...] = ()
    unit: model.Unit = "connection"

    def __post_init__(self) -> None:
        if not self.children:
            raise ModelError("a numgen stage needs at least one outcome")
        if self.modulus < 1:
            raise ModelError(f"numgen modulus must be >= 1, got {self.modulus}")
        if len(self.slots) != len(self.children):
            raise ModelError(f"{len(self.slots)} slot lists for {len(self.children)} numgen outcomes")
        seen: set[int] = set()
        for ranges in self.slots:
            for lo, hi in ranges:
                if lo > hi or lo < self.offset or hi >= self.offset + self.modulus:
                    raise ModelError(
                        f"numgen slot range {lo}-{hi} is outside {self.offset}..{self.offset + self.modulus - 1}"
                    )
                for s in range(lo, hi + 1):
                    if s in seen:
                        raise ModelError(f"numgen slot {s} is mapped twice")
                    seen.add(s)
        if len(seen) != self.modulus:
            missing = sorted(set(range(self.offset, self.offset + self.modulus)) - seen)
            raise ModelError(
                f"numgen slots {missing[:8]} lead nowhere; add a fall-through outcome for them"
            )

    @property
    def policy(self) -> str:  # noqa: D102
        return "numgen"

    def counts(self) -> tuple[int, ...]:
        """Values of ``r`` (out of ``2**32``) leading to each child."""
        per_slot = numgen_slot_counts(self.modulus)
        return tuple(
            sum(per_slot[s - self.offset] for lo, hi in ranges for s in range(lo, hi + 1)) for ranges in self.slots
        )

    def shares(self) -> tuple[Fraction, ...]:
        """Exact probability of each child: ``counts / 2**32``."""
        return tuple(Fraction(c, _TWO32) for c in self.counts())

    def masses64(self) -> tuple[int, ...]:
        """``counts * 2**32``: exact, sums to ``2**64``."""
        return tuple(c * _TWO32 for c in self.counts())

    def masses64_exact(self) -> bool:  # noqa: D102
        return True


# =========================================================================== kube-proxy services


def kube_chain_hash(service_port_name: str, protocol: str, endpoint: str = "") -> str:
    """kube-proxy's 16-character chain suffix (``KUBE-SVC-`` / ``KUBE-SEP-`` ...).

    ``base32(sha256(service_port_name + protocol.lower() + endpoint))[:16]``
    (kubernetes ``pkg/proxy/iptables/proxier.go: portProtoHash,
    servicePortEndpointChainName``).

    Examples
    --------
    >>> kube_chain_hash("kube-system/kube-dns:dns", "udp")
    'TCOU7JCQXEZGVUNU'
    """
    digest = hashlib.sha256((service_port_name + protocol.lower() + endpoint).encode()).digest()
    return base64.b32encode(digest).decode()[:16]


def kube_nft_chain_hash(base: str) -> str:
    """kube-proxy nftables mode's 8-character prefix of ``base`` (``"ns/svc/tcp/port"``).

    kubernetes ``pkg/proxy/nftables/proxier.go: hashAndTruncate``.
    """
    return base64.b32encode(hashlib.sha256(base.encode()).digest()).decode()[:8]


@dataclass(frozen=True, slots=True)
class EndpointInfo:
    """One endpoint of a service chain, with its exact share in that chain."""

    address: str
    chain: str | None
    share: Fraction
    threshold: int | None = None
    slots: tuple[tuple[int, int], ...] = ()
    line: int | None = None
    hash_ok: bool | None = None


@dataclass(frozen=True, slots=True)
class ServiceInfo:
    """A kube-proxy service port as found in a dump.

    Attributes
    ----------
    name : str
        ``"ns/svc:port"`` (``"ns/svc"`` for an unnamed port), or the chain name
        when the dump has no comment naming it.
    protocol : str
    cluster_ip : str or None
    port : int or None
    cluster_chain, local_chain : str or None
        ``KUBE-SVC-``/``KUBE-SVL-`` (nft: ``service-``/``local-``) chains.
    endpoints, local_endpoints : tuple of EndpointInfo
        The endpoints of the cluster-policy and local-policy chains.
    affinity_timeout : int or None
        ClientIP session affinity timeout in seconds (None: no affinity).
    internal_policy, external_policy : str or None
        ``"Cluster"`` or ``"Local"``.
    external_ips, node_ports : tuple
    hash_ok : bool or None
        Whether the chain name equals kube-proxy's hash of ``name`` and protocol.
    rejected : bool
        No endpoints: kube-proxy rejects the traffic.
    """

    name: str
    protocol: str
    cluster_ip: str | None
    port: int | None
    cluster_chain: str | None
    local_chain: str | None
    endpoints: tuple[EndpointInfo, ...]
    local_endpoints: tuple[EndpointInfo, ...] = ()
    affinity_timeout: int | None = None
    internal_policy: str | None = "Cluster"
    external_policy: str | None = None
    external_ips: tuple[str, ...] = ()
    node_ports: tuple[int, ...] = ()
    hash_ok: bool | None = None
    rejected: bool = False
    dialect: str = "iptables"
    source: str = ""
    line: int | None = None
    stage: Any = field(default=None, repr=False, compare=False)
    local_stage: Any = field(default=None, repr=False, compare=False)

    @property
    def namespace(self) -> str:
        """The namespace part of :attr:`name`."""
        return self.name.split("/", 1)[0]

    @property
    def session_affinity(self) -> str:
        """``"ClientIP"`` or ``"None"`` (the Service API's words)."""
        return "ClientIP" if self.affinity_timeout is not None else "None"


_SUFFIXES = (" cluster IP", " external IP", " loadbalancer IP", " has no endpoints", " has no local endpoints")


def _svc_from_comment(c: str | None) -> tuple[str | None, str | None]:
    """``"ns/svc:p cluster IP"`` -> ("ns/svc:p", "cluster IP")."""
    if not c:
        return None, None
    for suf in _SUFFIXES:
        if c.endswith(suf):
            return c[: -len(suf)], suf.strip()
    if " -> " in c:
        return c.split(" -> ", 1)[0], "endpoint"
    if "/" in c and " " not in c:
        return c, None
    return None, None


def _first(rule: Rule, kind: str) -> Match | None:
    for m in rule.matches:
        if m.kind == kind:
            return m
    return None


def _rule_dst_port_proto(rule: Rule) -> tuple[str | None, int | None, str | None]:
    ip = port = proto = None
    for m in rule.matches:
        if m.negated:
            continue
        if m.kind == "dst" and len(m.value) == 1:
            n = m.value[0]
            ip = n.text.split("/")[0] if n.prefixlen in (32, 128) else n.text
        elif m.kind == "dport":
            port = m.value[0]
        elif m.kind == "proto":
            proto = m.value
    return ip, port, proto


class _IptablesServices:
    """Reads kube-proxy's iptables layout (``pkg/proxy/iptables/proxier.go``)."""

    def __init__(self, rs: Ruleset, family: str) -> None:
        self.rs = rs
        self.nat = rs.tables.get((family, "nat"))
        self.filter = rs.tables.get((family, "filter"))
        if self.nat is None:
            raise InvalidArgument(
                f"{rs.source}: the dump has no nat table (expected a '*nat' block with kube-proxy's chains)"
            )

    def chain_endpoints(self, chain: Chain) -> tuple[tuple[EndpointInfo, ...], Any, int | None, str | None]:
        """Endpoints of a KUBE-SVC/SVL chain: (endpoints, Cascade, affinity seconds, service name)."""
        ks: list[int] = []
        children: list[model.Backend] = []
        eps: list[tuple[str, str, int | None, int]] = []
        affinity: int | None = None
        name: str | None = None
        unconditional = False
        for r in chain.rules:
            t = r.target
            if name is None:
                name = _svc_from_comment(r.comment)[0]
            if t.kind not in ("jump", "goto") or not t.value.startswith("KUBE-SEP-"):
                continue
            rec = _first(r, "recent")
            if rec is not None:
                if rec.value["command"] in ("rcheck", "update"):
                    affinity = rec.value["seconds"] if rec.value["seconds"] is not None else affinity
                continue
            rnd = _first(r, "random")
            addr = self.sep_address(t.value) or t.value
            if rnd is None:
                eps.append((addr, t.value, None, r.line))
                unconditional = True
                break
            eps.append((addr, t.value, rnd.value if not rnd.negated else (1 << 31) - rnd.value, r.line))
            ks.append(rnd.value if not rnd.negated else (1 << 31) - rnd.value)
        if not eps:
            return (), None, affinity, name
        names = [a for a, *_ in eps]
        for addr, sep, _k, line in eps:
            label = addr if names.count(addr) == 1 else f"{addr} ({sep})"
            children.append(
                model.Backend(name=label, address=addr if ":" in addr else None,
                              provenance=model.Provenance(self.rs.source, line))  # fmt: skip
            )
        if not unconditional:
            children.append(model.Backend(name=model.FALL_THROUGH))
        stage = model.Cascade(
            children=tuple(children),
            thresholds=tuple(ks),
            fall_through=not unconditional,
            unit="connection",
            name=chain.name,
            provenance=model.Provenance(self.rs.source, chain.rules[0].line if chain.rules else chain.line),
        )
        shares = stage.shares() if len(ks) <= model.MAX_EXACT_RULES else (None,) * len(children)
        out = []
        for (addr, sep, k, line), share in zip(eps, shares, strict=False):
            h = None
            if name is not None and ":" in addr:
                proto = self.sep_proto(sep)
                if proto:
                    h = sep == "KUBE-SEP-" + kube_chain_hash(name, proto, addr)
            out.append(EndpointInfo(addr, sep, share, k, (), line, h))
        return tuple(out), stage, affinity, name

    def sep_address(self, sep: str) -> str | None:
        ch = self.nat.chains.get(sep)
        if ch is None:
            return None
        for r in ch.rules:
            if r.target.kind == "dnat":
                addr, ports, text = r.target.value
                if addr and ports:
                    return _join(addr, ports[0])
                return text
        return None

    def sep_proto(self, sep: str) -> str | None:
        ch = self.nat.chains.get(sep)
        if ch is None:
            return None
        for r in ch.rules:
            if r.target.kind == "dnat":
                _ip, _port, proto = _rule_dst_port_proto(r)
                return proto
        return None

    def info(self, suffix: str, *, hint_name: str | None = None, hint_proto: str | None = None) -> ServiceInfo:
        nat = self.nat
        svc = nat.chains.get("KUBE-SVC-" + suffix)
        svl = nat.chains.get("KUBE-SVL-" + suffix)
        ext_name = "KUBE-EXT-" + suffix
        fw_name = "KUBE-FW-" + suffix
        cluster_ip = port = proto = None
        name = hint_name
        line = None
        internal = None
        external_ips: list[str] = []
        node_ports: list[int] = []
        for chain_name, is_local in (("KUBE-SVC-" + suffix, False), ("KUBE-SVL-" + suffix, True)):
            for r in nat.referrers.get(chain_name, ()):
                if r.chain == "KUBE-SERVICES":
                    ip, p, pr = _rule_dst_port_proto(r)
                    cluster_ip, port, proto = ip, p, pr
                    line = r.line
                    internal = "Local" if is_local else "Cluster"
                    nm, _kind = _svc_from_comment(r.comment)
                    name = name or nm
        for tgt in (ext_name, fw_name):
            for r in nat.referrers.get(tgt, ()):
                ip, p, pr = _rule_dst_port_proto(r)
                nm, _kind = _svc_from_comment(r.comment)
                name = name or nm
                proto = proto or pr
                if r.chain == "KUBE-SERVICES" and ip:
                    external_ips.append(f"{ip}:{p}")
                elif r.chain == "KUBE-NODEPORTS" and p is not None and p not in node_ports:
                    node_ports.append(p)
        external = None
        ext = nat.chains.get(ext_name)
        if ext is not None:
            external = "Local" if any(
                (r.target.kind in ("jump", "goto") and r.target.value == "KUBE-SVL-" + suffix)
                or (r.comment or "").startswith("pod traffic for")
                for r in ext.rules
            ) else "Cluster"
        eps: tuple[EndpointInfo, ...] = ()
        leps: tuple[EndpointInfo, ...] = ()
        stage = lstage = None
        affinity = None
        if svc is not None:
            eps, stage, affinity, nm = self.chain_endpoints(svc)
            name = name or nm
        if svl is not None:
            leps, lstage, aff2, nm = self.chain_endpoints(svl)
            affinity = affinity if affinity is not None else aff2
            name = name or nm
        if proto is None:
            for e in (*eps, *leps):
                if e.chain:
                    proto = self.sep_proto(e.chain)
                    if proto:
                        break
        proto = proto or hint_proto
        hash_ok = None
        if name is not None and proto is not None:
            hash_ok = kube_chain_hash(name, proto) == suffix
        if hash_ok and eps:
            eps = tuple(
                EndpointInfo(e.address, e.chain, e.share, e.threshold, e.slots, e.line,
                             e.chain == "KUBE-SEP-" + kube_chain_hash(name, proto, e.address))  # fmt: skip
                for e in eps
            )
        if internal is None:
            internal = "Local" if svl is not None and svc is None else "Cluster"
        return ServiceInfo(
            name=name or ("KUBE-SVC-" + suffix),
            protocol=proto or "?",
            cluster_ip=cluster_ip,
            port=port,
            cluster_chain=svc.name if svc is not None else None,
            local_chain=svl.name if svl is not None else None,
            endpoints=eps,
            local_endpoints=leps,
            affinity_timeout=affinity,
            internal_policy=internal,
            external_policy=external,
            external_ips=tuple(external_ips),
            node_ports=tuple(sorted(node_ports)),
            hash_ok=hash_ok,
            dialect="iptables",
            source=self.rs.source,
            line=line,
            stage=stage,
            local_stage=lstage,
        )

    def suffixes(self) -> list[str]:
        seen: dict[str, None] = {}
        for name in self.nat.chains:
            if name.startswith(("KUBE-SVC-", "KUBE-SVL-")):
                seen.setdefault(name[9:], None)
        return list(seen)

    def rejected(self) -> list[ServiceInfo]:
        """Services kube-proxy rejects in filter KUBE-SERVICES ("has no endpoints")."""
        out = []
        if self.filter is None:
            return out
        ch = self.filter.chains.get("KUBE-SERVICES")
        for r in ch.rules if ch is not None else ():
            nm, kind = _svc_from_comment(r.comment)
            if kind == "has no endpoints" and r.target.kind in ("reject", "drop"):
                ip, p, pr = _rule_dst_port_proto(r)
                out.append(
                    ServiceInfo(
                        name=nm, protocol=pr or "?", cluster_ip=ip, port=p, cluster_chain=None,
                        local_chain=None, endpoints=(), rejected=True, source=self.rs.source, line=r.line,
                        hash_ok=None,
                    )  # fmt: skip
                )
        return out


def _family_of(rs: Ruleset, family: str | None) -> str:
    if family is not None:
        return family
    if rs.dialect == "nft":
        for fam, _name in rs.tables:
            return fam
        return "ip"
    return "ip" if ("ip", "nat") in rs.tables or not any(f == "ip6" for f, _ in rs.tables) else "ip6"


def _service_index(rs: Ruleset, family: str | None = None) -> dict[str, Any]:
    """Name -> ServiceInfo and (ip, port, proto) -> ServiceInfo for every service (built once)."""
    fam = _family_of(rs, family)
    key = f"services:{fam}"
    idx = rs.cache.get(key)
    if idx is not None:
        return idx
    if rs.dialect == "nft":
        infos = _nft_services(rs, fam)
    else:
        reader = _IptablesServices(rs, fam)
        # Reading every service builds the matches of nearly every rule (the parser
        # builds them on first access): pause the cyclic collector as the parser does,
        # or its full collections rescan the new objects again and again (twice the
        # time for 10,000 services).
        gc_was_enabled = gc.isenabled()
        gc.disable()
        try:
            infos = [reader.info(s) for s in reader.suffixes()]
            known = {i.name for i in infos}
            infos += [i for i in reader.rejected() if i.name not in known]
            if rs.rule_count > _FREEZE_RULES:
                gc.freeze()  # acyclic, freed by reference counting (see parse_iptables)
        finally:
            if gc_was_enabled:
                gc.enable()
    infos.sort(key=lambda i: (i.name, i.protocol))
    by_name: dict[str, list[ServiceInfo]] = {}
    by_addr: dict[tuple[str, int, str], ServiceInfo] = {}
    for i in infos:
        by_name.setdefault(i.name, []).append(i)
        if "/" in i.name and ":" in i.name:  # "ns/svc" finds a service whose only port is named
            by_name.setdefault(i.name.split(":", 1)[0], []).append(i)
        if i.cluster_ip is not None and i.port is not None:
            by_addr[(i.cluster_ip, i.port, i.protocol)] = i
    idx = {"list": infos, "name": by_name, "addr": by_addr}
    rs.cache[key] = idx
    return idx


def services(ruleset: Ruleset, *, family: str | None = None) -> list[ServiceInfo]:
    """All kube-proxy services of a dump, sorted by name.

    Raises
    ------
    InvalidArgument
        When the dump has no nat table (iptables) or no kube-proxy table (nft).
    """
    return list(_service_index(ruleset, family)["list"])


def find_service(ruleset: Ruleset, service: str, *, family: str | None = None) -> ServiceInfo:
    """One service by ``"ns/name[:port]"``, ``"ns/name:port/proto"`` or ``"IP:PORT[/proto]"``.

    A name is found through kube-proxy's chain hash first (no index needed, works
    without comments), then through the comments. A service with several ports
    needs the port name.

    Raises
    ------
    InvalidArgument
        When the service is not in the dump (the message lists close names) or
        the name is ambiguous.
    """
    want = service.strip()
    proto_hint = None
    if want.count("/") == 2 or (want.count("/") == 1 and "." in want.split("/")[0] and want.split("/")[-1].isalpha()):
        head, _, p = want.rpartition("/")
        if p.lower() in ("tcp", "udp", "sctp"):
            want, proto_hint = head, p.lower()
    fam = _family_of(ruleset, family)
    # ip:port
    if "/" not in want:
        ip, _, port = want.rpartition(":")
        ip = ip.strip("[]")
        if not port.isdigit():
            raise InvalidArgument(f"expected a service as ns/name[:port] or IP:PORT, got {service!r}")
        idx = _service_index(ruleset, fam)
        for proto in ([proto_hint] if proto_hint else ["tcp", "udp", "sctp"]):
            hit = idx["addr"].get((ip, int(port), proto))
            if hit is not None:
                return hit
        raise InvalidArgument(f"{ruleset.source}: no service with cluster IP {want} in the dump")
    if ruleset.dialect == "iptables":
        nat = ruleset.tables.get((fam, "nat"))
        if nat is None:
            raise InvalidArgument(
                f"{ruleset.source}: the dump has no nat table (expected a '*nat' block with kube-proxy's chains)"
            )
        reader = _IptablesServices(ruleset, fam)
        for proto in ([proto_hint] if proto_hint else ["tcp", "udp", "sctp"]):
            suffix = kube_chain_hash(want, proto)
            if "KUBE-SVC-" + suffix in nat.chains or "KUBE-SVL-" + suffix in nat.chains:
                return reader.info(suffix, hint_name=want, hint_proto=proto)
    idx = _service_index(ruleset, fam)
    hits = [i for i in idx["name"].get(want, []) if proto_hint is None or i.protocol == proto_hint]
    if len(hits) == 1:
        return hits[0]
    if len(hits) > 1:
        choices = ", ".join(sorted(f"{h.name}/{h.protocol}" for h in hits))
        raise InvalidArgument(f"{service!r} is ambiguous in {ruleset.source}: give the port name ({choices})")
    names = sorted({i.name for i in idx["list"]})
    close = [n for n in names if want.split(":")[0] in n][:5] or names[:5]
    more = f"; services include {', '.join(close)}" if close else "; the dump has no kube-proxy services"
    raise InvalidArgument(f"{ruleset.source}: service {service!r} is not in the dump{more}")


def service_route(info: ServiceInfo, *, chain: str = "cluster") -> model.Route:
    """The :class:`meshstat.model.Route` of a found service (see :func:`load_service_route`)."""
    if chain not in ("cluster", "local"):
        raise InvalidArgument(f"chain must be 'cluster' or 'local', got {chain!r}")
    stage = info.stage if chain == "cluster" else info.local_stage
    eps = info.endpoints if chain == "cluster" else info.local_endpoints
    if info.rejected or stage is None or not eps:
        which = "" if chain == "cluster" else " local"
        raise ModelError(
            f"{info.source}: service {info.name} has no{which} endpoints"
            + (" (kube-proxy rejects its traffic)" if info.rejected else "")
        )
    notes = []
    chain_name = info.cluster_chain if chain == "cluster" else info.local_chain
    notes.append(
        f"chain {chain_name} ({'cluster' if chain == 'cluster' else 'local'} endpoints); "
        f"internalTrafficPolicy {info.internal_policy}"
        + (f", externalTrafficPolicy {info.external_policy}" if info.external_policy else "")
    )
    if info.affinity_timeout is not None:
        cap = (
            "xt_recent keeps at most 100 client IPs per endpoint list by default"
            if info.dialect == "iptables"
            else "the nft affinity sets hold up to 65535 clients"
        )
        notes.append(
            f"sessionAffinity ClientIP (timeout {info.affinity_timeout} s): the split applies to a client's "
            f"first connection; later ones within the timeout reuse its endpoint ({cap})"
        )
    else:
        notes.append("sessionAffinity None: every new connection is split independently")
    if info.hash_ok is False:
        notes.append(f"chain name does not match kube-proxy's hash of {info.name}: edited or foreign dump?")
    return model.Route(
        root=stage,  # a one-endpoint cascade (no statistic rule) is still a stage
        name=info.name,
        provenance=model.Provenance(info.source, info.line),
        notes=tuple(notes),
    )


def load_service_route(
    source: str | Ruleset,
    service: str,
    *,
    dialect: str | None = None,
    chain: str = "cluster",
) -> model.Route:
    """The routing model of one kube-proxy service in a dump.

    Parameters
    ----------
    source : str or Ruleset
        A path, ``"-"`` (standard input), or a parsed ruleset.
    service : str
        ``"ns/name[:port]"`` (port *name*, as kube-proxy's comments show it) or
        ``"CLUSTER_IP:PORT"``.
    dialect : {"iptables", "nft"}, optional
        Default: sniffed.
    chain : {"cluster", "local"}
        The ``KUBE-SVC`` (cluster policy) or ``KUBE-SVL`` (local policy) chain.

    Returns
    -------
    meshstat.model.Route
        Root :class:`meshstat.model.Cascade` (iptables: the stored thresholds,
        children ``Backend(name="ip:port", address="ip:port")`` in rule order)
        or :class:`Numgen` (nft). Session affinity and traffic policy are in
        ``Route.notes``.
    """
    rs = load(source, dialect)
    return service_route(find_service(rs, service), chain=chain)


# =========================================================================== observed counters (-vnL)


@dataclass(frozen=True, slots=True)
class CounterRow:
    """One endpoint of a :class:`CounterCheck`.

    Attributes
    ----------
    endpoint : str
        ``ip:port`` (from the ``KUBE-SEP`` chain's DNAT, or its name when the
        listing does not show that chain); ``"(fall-through)"`` for the
        connections no rule of a fall-through cascade took.
    chain : str or None
        The ``KUBE-SEP`` chain the rule jumps to.
    line : int or None
        The rule's line in the listing.
    observed : int
        The rule's packet counter: in the nat table, connections (conntrack
        runs the nat chains for the first packet of a connection only).
    share : Fraction
        The exact share of the cascade (``k / 2**31`` products).
    expected : float
        ``n * share``.
    pvalue : float
        Two-sided exact binomial p-value of ``observed`` out of ``n`` at ``share``.
    reached : int
        Connections that reached this rule: those the earlier cascade rules did not take.
    rule_probability : Fraction or None
        ``k / 2**31`` of the rule's statistic match (None: the unconditional last rule).
    step_pvalue : float or None
        Two-sided exact binomial p-value of ``observed`` out of ``reached`` at
        ``rule_probability``: the rule's own draw, tested on the connections it saw.
    exact : bool
        False when the listing rounded the counter (``12K``: no ``-x``).
    """

    endpoint: str
    chain: str | None
    line: int | None
    observed: int
    share: Fraction
    expected: float
    pvalue: float
    reached: int
    rule_probability: Fraction | None
    step_pvalue: float | None
    exact: bool = True


@dataclass(frozen=True)
class CounterCheck:
    """Observed per-endpoint connections (listing counters) against a service's exact cascade.

    Attributes
    ----------
    service, chain, source : str
        The service (``ns/name:port``), its ``KUBE-SVC``/``KUBE-SVL`` chain and the listing's file.
    unit : str
        ``"connections"`` (nat table) or ``"packets"``.
    rows : tuple of CounterRow
    n : int
        Connections counted by the cascade (affinity hits excluded).
    pvalue, method : float, str
        The headline test: exact binomial (two endpoints), exact multinomial
        (where enumerable), else chi-square; ``"impossible"`` when an endpoint
        with share 0 was chosen. The same choice as :func:`meshstat.inference.check_split`.
    chisquare_statistic, chisquare_pvalue, gtest_statistic, gtest_pvalue, dof
        Pearson's X^2 and the G-test (:func:`meshstat.stats.goodness_of_fit`).
    affinity_hits : int
        Connections sent by ``-m recent --rcheck`` session-affinity rules (not random draws).
    entered : int or None
        Connections that entered the chain (the counters of the rules jumping
        to it, when all are in the listing).
    approximate : bool
        Some counter was rounded (``K``/``M``/``G``: a listing without ``-x``).
    alpha : float
    notes, warnings : tuple of str
    """

    service: str
    chain: str
    source: str
    unit: str
    rows: tuple[CounterRow, ...]
    n: int
    pvalue: float
    method: str
    chisquare_statistic: float
    chisquare_pvalue: float
    gtest_statistic: float
    gtest_pvalue: float
    dof: int
    affinity_hits: int = 0
    entered: int | None = None
    approximate: bool = False
    alpha: float = 0.05
    notes: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()

    @property
    def consistent(self) -> bool:
        """Whether the counts are consistent with the random split at level ``alpha``."""
        return self.pvalue >= self.alpha

    def summary(self) -> str:
        """One line: the counts, the p-value and the verdict."""
        counts = ", ".join(f"{r.endpoint} {r.observed:,}/{float(r.share):.4g}" for r in self.rows)
        verdict = "consistent with" if self.consistent else "NOT consistent with"
        p = f"{self.pvalue:.3g}" if self.pvalue >= 1e-4 else f"{self.pvalue:.2e}"
        approx = " (approximate: rounded counters)" if self.approximate else ""
        return (
            f"{self.service}: {self.n:,} {self.unit} counted in {self.chain} (observed/share: {counts}); "
            f"p = {p} ({self.method}){approx}: {verdict} the random split at alpha {self.alpha:g}"
        )

    def to_frame(self) -> Any:
        """Per-endpoint table (polars): observed, exact share, expected, p-values."""
        from meshstat.report import netfilter as rep

        return rep.counters_frame(self)

    def tests_frame(self) -> Any:
        """One row per test: the headline test, chi-square, G-test."""
        from meshstat.report import netfilter as rep

        return rep.counters_tests_frame(self)


def check_counters(
    ruleset: Ruleset,
    service: str,
    *,
    chain: str = "cluster",
    alpha: float = 0.05,
    exact_limit: int | None = None,
) -> CounterCheck:
    """Are the packet counters of a service's cascade consistent with its exact random split?

    Parameters
    ----------
    ruleset : Ruleset
        From an ``iptables -t nat -vnL`` (better ``-vnxL``) listing
        (:func:`meshstat.parsers.iptables_list.parse_iptables_list`, or
        :func:`load` of such a file).
    service : str
        ``"ns/name[:port]"`` or ``"CLUSTER_IP:PORT"`` (as :func:`find_service`).
    chain : {"cluster", "local"}
        The ``KUBE-SVC`` or ``KUBE-SVL`` chain.
    alpha : float
        Level of the verdict.
    exact_limit : int, optional
        Largest number of outcome slices the exact multinomial test enumerates
        (default :data:`meshstat.inference.EXACT_MULTINOMIAL_LIMIT`).

    Returns
    -------
    CounterCheck

    Notes
    -----
    Rule ``i`` of a kube-proxy cascade sees the connections that the rules
    before it did not take, and its packet counter counts the ones it took: in
    the nat table these are connections, not packets (the nat chains run for
    the first packet of a connection only). So the counters of the jump rules
    are the connections each endpoint got, their sum ``n`` the connections that
    reached the random draws (``-m recent`` affinity hits are counted
    separately: they are not draws), and the split is multinomial with the
    exact shares of the stored thresholds. The headline test is the one
    :func:`meshstat.inference.check_split` uses; per endpoint, the marginal
    exact binomial test and the test of each rule's own draw on the
    connections that reached it are given too (the multinomial factors into
    these conditional binomials).

    Raises
    ------
    InvalidArgument
        When the ruleset has no counters, the service is not in it, or nothing was counted.
    """
    from meshstat import inference
    from meshstat.parsers.netfilter.iptables_list import Counters, ListingInfo, listing_info
    from meshstat.parsers.netfilter.iptables_save import SAVE_COUNTERS_KEY

    linfo = listing_info(ruleset)
    saved = ruleset.cache.get(SAVE_COUNTERS_KEY)
    if (linfo is None or not linfo.counters) and saved:
        # iptables-save -c: exact [packets:bytes] before every rule, no "(N references)"
        linfo = ListingInfo(counters={r: Counters(p, b) for r, (p, b) in saved.items()})
    if linfo is None or not linfo.counters:
        raise InvalidArgument(
            f"{ruleset.source}: no packet counters: expected a listing printed with -v "
            "(iptables -t nat -vnxL) or iptables-save -c"
        )
    if chain not in ("cluster", "local"):
        raise InvalidArgument(f"chain must be 'cluster' or 'local', got {chain!r}")
    alpha = float(alpha)
    if not 0.0 < alpha < 1.0:
        raise InvalidArgument(f"alpha must be in (0, 1), got {alpha!r}")
    info = find_service(ruleset, service)
    eps = info.endpoints if chain == "cluster" else info.local_endpoints
    stage = info.stage if chain == "cluster" else info.local_stage
    chain_name = info.cluster_chain if chain == "cluster" else info.local_chain
    if not eps or stage is None or chain_name is None:
        raise InvalidArgument(
            f"{ruleset.source}: service {info.name} has no {chain} endpoints in the listing"
        )
    fam = _family_of(ruleset, None)
    table = ruleset.tables[(fam, "nat")]
    ch = table.chains[chain_name]
    by_line = {r.line: r for r in ch.rules}

    def count(rule: Rule) -> tuple[int, bool]:
        c = linfo.counters.get(rule)
        if c is None:
            raise InvalidArgument(f"{rule.source}:{rule.line}: this rule has no counters in the listing")
        return c.packets, c.exact

    exact_all = True
    affinity = 0
    for r in ch.rules:
        rec = _first(r, "recent")
        if (
            r.target.kind in ("jump", "goto")
            and rec is not None
            and rec.value["command"] in ("rcheck", "update")
        ):
            c, ex = count(r)
            affinity += c
            exact_all &= ex
    entered = None
    refs = table.referrers.get(chain_name, [])
    # every rule jumping here must be in the listing, as many as its "(N references)" says
    declared = linfo.references.get((fam, "nat", chain_name))
    if refs and all(r in linfo.counters for r in refs) and (declared is None or declared == len(refs)):
        entered = sum(linfo.counters[r].packets for r in refs)
        exact_all &= all(linfo.counters[r].exact for r in refs)
    shares = list(stage.shares())
    obs: list[int] = []
    rows_in: list[tuple[str, str | None, int | None, int, int | None, bool]] = []
    for e in eps:
        r = by_line.get(e.line) if e.line is not None else None
        if r is None:
            raise InvalidArgument(
                f"{ruleset.source}: the rule of endpoint {e.address} is not in chain {chain_name}"
            )
        c, ex = count(r)
        exact_all &= ex
        obs.append(c)
        rows_in.append((e.address, e.chain, e.line, c, e.threshold, ex))
    notes: list[str] = []
    if stage.fall_through:
        if entered is None:
            raise InvalidArgument(
                f"{ruleset.source}: chain {chain_name} can fall through (no unconditional last rule) and the "
                "rules jumping to it are not all in the listing: the fall-through connections cannot be "
                "counted"
            )
        rest = entered - affinity - sum(obs)
        if rest < 0:
            why = (
                "counters zeroed or rules replaced between them?"
                if exact_all
                else "the listing rounds counters (K, M, G): print it with -x"
            )
            raise InvalidArgument(
                f"{ruleset.source}: the counters of chain {chain_name} exceed those of the rules jumping "
                f"to it ({why})"
            )
        if not exact_all:
            raise InvalidArgument(
                f"{ruleset.source}: chain {chain_name} can fall through and the listing rounds counters "
                "(K, M, G): the fall-through connections cannot be counted; print it with -x"
            )
        obs.append(rest)
        rows_in.append((model.FALL_THROUGH, None, None, rest, None, exact_all))
    n = sum(obs)
    if n == 0:
        raise InvalidArgument(
            f"{ruleset.source}: the counters of {chain_name} are all 0: no connection to {info.name} "
            "was counted yet"
        )
    rows: list[CounterRow] = []
    reached = n
    for (addr, sep, line, c, k, ex), share in zip(rows_in, shares, strict=True):
        q = Fraction(k, 1 << 31) if k is not None else None
        step = inference.binomial_pvalue(c, reached, float(q)) if q is not None and reached > 0 else None
        rows.append(
            CounterRow(
                addr,
                sep,
                line,
                c,
                share,
                n * float(share),
                inference.binomial_pvalue(c, n, float(share)),
                reached,
                q,
                step,
                ex,
            )
        )
        reached -= c
    limit = inference.EXACT_MULTINOMIAL_LIMIT if exact_limit is None else int(exact_limit)
    head = inference.headline_test(obs, shares, limit, notes, unit="endpoints")
    unit = "connections" if table.name == "nat" else "packets"
    notes.append(
        "nat rules run for the first packet of each connection only (conntrack), so each jump rule's packet "
        "counter is the number of connections sent to that endpoint"
    )
    notes.append(
        "counters accumulate from the time the chain was last written (kube-proxy rewrites a service's "
        "chains "
        "when its endpoints change), or zeroed (iptables -Z)"
    )
    if affinity:
        notes.append(
            f"{affinity:,} connections went by session affinity (-m recent) and are not part of the split"
        )
    if entered is not None and not stage.fall_through and entered != affinity + sum(obs):
        notes.append(
            f"the rules jumping to {chain_name} counted {entered:,} connections, the chain's rules "
            f"{affinity + sum(obs):,}: counters zeroed or rules replaced in between?"
        )
    if not exact_all:
        notes.append(
            "some counters were rounded by the listing (K/M/G: iptables -L without -x); counts and p-values "
            "are "
            "approximate: list with iptables -t nat -vnxL"
        )
    return CounterCheck(
        service=info.name,
        chain=chain_name,
        source=ruleset.source,
        unit=unit,
        rows=tuple(rows),
        n=n,
        **head._asdict(),
        affinity_hits=affinity,
        entered=entered,
        approximate=not exact_all,
        alpha=alpha,
        notes=tuple(notes),
        warnings=tuple(str(w) for w in ruleset.warnings),
    )


# =========================================================================== kube-proxy, nftables mode

_CHAIN_RE = re.compile(r"^(service|local|external|endpoint|firewall)-([A-Z2-7]{8})-(.*)$")


def _split_base(base: str) -> tuple[str, str, str, str] | None:
    """``"ns/svc/tcp/p80"`` -> (ns, svc, proto, port name)."""
    parts = base.split("/")
    if len(parts) != 4:
        return None
    return parts[0], parts[1], parts[2], parts[3]


def _endpoint_addr(t: Table, chain_name: str) -> str | None:
    ch = t.chains.get(chain_name)
    if ch is None:
        return None
    for r in ch.rules:
        for tg in flat_targets(r.target):
            if tg.kind == "dnat":
                addr, ports, text = tg.value
                if addr and ports:
                    return f"[{addr}]:{ports[0]}" if ":" in addr else f"{addr}:{ports[0]}"
                return text
    return None


def _chain_split(t: Table, ch: Chain, source: str) -> tuple[Any, list[tuple[str, str | None, tuple]], int | None]:
    """The numgen split of a service chain: (Numgen stage, [(address, endpoint chain, slots)], affinity s)."""
    affinity = None
    for r in ch.rules:
        for m in r.matches:
            if m.kind == "set" and m.value[1].startswith("affinity-"):
                s = t.sets.get(m.value[1])
                if s is not None and s.timeout is not None:
                    affinity = s.timeout
        for tg in flat_targets(r.target):
            if tg.kind in ("numgen", "dnat_map"):
                mode, modulus, offset, slots = tg.value
                per: dict[str, list[tuple[int, int]]] = {}
                chains: dict[str, str | None] = {}
                for lo, hi, pl in slots:
                    if pl.kind in ("goto", "jump"):
                        addr = _endpoint_addr(t, pl.value) or pl.value
                        chains.setdefault(addr, pl.value)
                    else:
                        addr = pl.value[2]
                        chains.setdefault(addr, None)
                    per.setdefault(addr, []).append((lo, hi))
                covered = sum(hi - lo + 1 for rs_ in per.values() for lo, hi in rs_)
                children = [model.Backend(name=a, address=a if ":" in a else None,
                                          provenance=model.Provenance(source, r.line)) for a in per]  # fmt: skip
                slot_list = [tuple(v) for v in per.values()]
                if covered < modulus:
                    used = {s for v in per.values() for lo, hi in v for s in range(lo, hi + 1)}
                    rest = [s for s in range(offset, offset + modulus) if s not in used]
                    children.append(model.Backend(name=model.FALL_THROUGH))
                    slot_list.append(tuple((s, s) for s in rest))
                if mode != "random":
                    return None, [(a, chains[a], tuple(v)) for a, v in per.items()], affinity
                stage = Numgen(children=tuple(children), modulus=modulus, offset=offset, slots=tuple(slot_list),
                               name=ch.name, provenance=model.Provenance(source, r.line))  # fmt: skip
                return stage, [(a, chains[a], tuple(v)) for a, v in per.items()], affinity
            if tg.kind == "dnat" and tg.value[0]:  # newer single-endpoint form: plain dnat
                addr = _endpoint_addr_from_target(tg)
                stage = Numgen(children=(model.Backend(name=addr, address=addr),), modulus=1, slots=(((0, 0),),),
                               name=ch.name, provenance=model.Provenance(source, r.line))  # fmt: skip
                return stage, [(addr, None, ((0, 0),))], affinity
    return None, [], affinity


def _element_port(el: NftElement, i: int, source: str) -> int:
    """The port number in component ``i`` of a kube-proxy map element (``ADDR . PROTO . PORT``)."""
    kind, value = el.key[i]
    if kind == "range" and value[0] == value[1] and 0 <= value[0] <= 65535:
        return int(value[0])
    raise ConfigParseError(
        f"expected a port number as component {i + 1} of the map element", source=source, line=el.line
    )


def _endpoint_addr_from_target(tg: Target) -> str:
    addr, ports, text = tg.value
    return f"{addr}:{ports[0]}" if ports else text


def _nft_services(rs: Ruleset, family: str) -> list[Any]:
    """kube-proxy services of an nftables-mode dump (``pkg/proxy/nftables/proxier.go`` layout)."""
    out = []
    found_table = False
    for (fam, _tname), t in rs.tables.items():
        if fam != family:
            continue
        bases: dict[str, dict[str, str]] = {}
        for name in t.chains:
            m = _CHAIN_RE.match(name)
            if m and m.group(1) in ("service", "local", "external"):
                bases.setdefault(m.group(3), {})[m.group(1)] = name
                bases[m.group(3)]["hash"] = m.group(2)
        if bases:
            found_table = True
        # dispatch: map elements pointing at service/local/external chains
        targets: dict[str, list[tuple[NftSet, NftElement]]] = {}
        for s in t.sets.values():
            for el in s.elements:
                if isinstance(el.data, tuple) and el.data and el.data[0] in ("goto", "jump"):
                    targets.setdefault(el.data[1], []).append((s, el))
        for base, names in bases.items():
            parts = _split_base(base)
            if parts is None:
                continue
            ns, svc, proto, portname = parts
            name = f"{ns}/{svc}" + (f":{portname}" if portname else "")
            hash_ok = kube_nft_chain_hash(base) == names["hash"]
            cluster_ip = port = None
            internal = None
            ext_ips: list[str] = []
            node_ports: list[int] = []
            line = None
            for kind in ("service", "local"):
                for s, el in targets.get(names.get(kind, ""), []):
                    if len(el.key) == 3 and el.key[0][0] == "addr":
                        cluster_ip = el.key[0][1].text.split("/")[0]
                        port = _element_port(el, 2, rs.source)
                        internal = "Cluster" if kind == "service" else "Local"
                        line = el.line
            for s, el in targets.get(names.get("external", ""), []):
                if len(el.key) == 3 and el.key[0][0] == "addr":
                    ext_ips.append(f"{el.key[0][1].text.split('/')[0]}:{_element_port(el, 2, rs.source)}")
                elif len(el.key) == 2:
                    node_ports.append(_element_port(el, 1, rs.source))
            external = None
            ext = t.chains.get(names.get("external", ""))
            if ext is not None:
                external = "Local" if any(
                    (tg.kind in ("goto", "jump") and tg.value == names.get("local"))
                    or (r.comment or "").startswith("short-circuit pod traffic")
                    for r in ext.rules for tg in flat_targets(r.target)
                ) else "Cluster"
            infos = {}
            affinity = None
            for kind in ("service", "local"):
                ch = t.chains.get(names.get(kind, ""))
                if ch is None:
                    infos[kind] = (None, ())
                    continue
                stage, eps, aff = _chain_split(t, ch, rs.source)
                affinity = affinity if affinity is not None else aff
                shares = stage.shares() if stage is not None else [Fraction(0)] * len(eps)
                ep_infos = []
                for (addr, chain, slots), share in zip(eps, shares, strict=False):
                    h = None
                    if chain is not None:
                        cm = _CHAIN_RE.match(chain)
                        if cm:
                            h = kube_nft_chain_hash(cm.group(3)) == cm.group(2)
                    ep_infos.append(EndpointInfo(addr, chain, share, None, slots, None, h))
                infos[kind] = (stage, tuple(ep_infos))
            out.append(
                ServiceInfo(
                    name=name, protocol=proto, cluster_ip=cluster_ip, port=port,
                    cluster_chain=names.get("service"), local_chain=names.get("local"),
                    endpoints=infos["service"][1], local_endpoints=infos["local"][1],
                    affinity_timeout=affinity, internal_policy=internal or "Cluster",
                    external_policy=external, external_ips=tuple(ext_ips), node_ports=tuple(sorted(node_ports)),
                    hash_ok=hash_ok, dialect="nft", source=rs.source, line=line,
                    stage=infos["service"][0], local_stage=infos["local"][0],
                )  # fmt: skip
            )
        # services without endpoints: no-endpoint map elements with a comment naming them
        known = {i.name for i in out}
        for s in t.sets.values():
            if s.name != "no-endpoint-services":
                continue
            for el in s.elements:
                if el.comment and el.comment not in known and el.data and el.data[0] in ("goto", "jump", "drop", "reject"):
                    proto = el.key[1][1] if len(el.key) == 3 else "?"
                    out.append(
                        ServiceInfo(
                            name=el.comment, protocol=proto,
                            cluster_ip=el.key[0][1].text.split("/")[0] if el.key[0][0] == "addr" else None,
                            port=_element_port(el, 2, rs.source) if len(el.key) == 3 else None,
                            cluster_chain=None,
                            local_chain=None, endpoints=(), rejected=True, dialect="nft", source=rs.source,
                            line=el.line,
                        )  # fmt: skip
                    )
                    known.add(el.comment)
    if not found_table and not out:
        fams = sorted({f for f, _ in rs.tables})
        if not rs.tables:
            raise _no_kube(rs, "the ruleset has no tables")
        raise _no_kube(rs, f"no kube-proxy service chains (service-HASH-ns/name/proto/port) in families {fams}")
    return out


def _no_kube(rs: Ruleset, why: str) -> Exception:
    return InvalidArgument(f"{rs.source}: {why}")




# =========================================================================== kube-proxy layout writer


def kube_proxy_iptables_save(
    service_ports: Iterable[tuple[str, str, str, int, Iterable[str]]],
    *,
    cluster_cidr: str = "10.244.0.0/16",
    legacy: bool = False,
    header: bool = True,
    extra_chains: Iterable[str] = (),
    pre_rules: dict[str, Iterable[str]] | None = None,
    extra_rules: Iterable[str] = (),
) -> str:
    """Write the nat table kube-proxy (iptables mode) would hold, as ``iptables-save`` prints it.

    For what-if questions, tests and benchmarks. Layout and names follow
    kubernetes ``pkg/proxy/iptables/proxier.go`` (``syncProxyRules``,
    ``writeServiceToEndpointRules``, ``portProtoHash``,
    ``servicePortEndpointChainName``): ClusterIP rules in ``KUBE-SERVICES``, the
    masquerade rule, the ``--probability "%0.10f" % (1/(n-i))`` cascade
    (``"%0.5f"`` with ``legacy``) over endpoints sorted as strings, one
    ``KUBE-SEP`` chain per endpoint with its hairpin masquerade and DNAT rule;
    then printed in ``iptables-save``'s normalised form (built-in chains first,
    user chains sorted, ``-d IP/32``, the probability as ``%.11f`` of ``k/2**31``).

    Parameters
    ----------
    service_ports : iterable of (svc_port_name, protocol, cluster_ip, port, endpoints)
        ``("istio-demo/bill-service:http", "tcp", "10.108.203.9", 9999, ["10.244.75.113:80", ...])``.
    cluster_cidr : str
        Pod CIDR of the masquerade rule (``! -s CIDR``).
    legacy : bool
        Pre-1.17 ``%0.5f`` probabilities.
    header : bool
        Print the ``# Generated by`` comment lines.
    extra_chains : iterable of str
        More user chains to declare (for composed dumps).
    pre_rules : dict, optional
        Built-in chain name -> rule bodies placed before kube-proxy's jump
        (``{"OUTPUT": ["-j ISTIO_OUTPUT"]}``).
    extra_rules : iterable of str
        More ``-A CHAIN ...`` lines, appended after the built-in chains' rules.
    """
    svc_rules: list[str] = []
    svc_chains: dict[str, list[str]] = {}
    sep_chains: dict[str, list[str]] = {}
    for name, proto, cip, port, endpoints in service_ports:
        proto = proto.lower()
        svc = "KUBE-SVC-" + kube_chain_hash(name, proto)
        svc_rules.append(
            f'-A KUBE-SERVICES -d {cip}/32 -p {proto} -m comment --comment "{name} cluster IP" '
            f"-m {proto} --dport {port} -j {svc}"
        )
        rules = [
            f'-A {svc} ! -s {cluster_cidr} -d {cip}/32 -p {proto} -m comment --comment "{name} cluster IP" '
            f"-m {proto} --dport {port} -j KUBE-MARK-MASQ"
        ]
        eps = sorted(endpoints)
        probs = model.kube_proxy_probabilities(len(eps), legacy=legacy) if eps else ()
        for i, ep in enumerate(eps):
            sep = "KUBE-SEP-" + kube_chain_hash(name, proto, ep)
            stat = ""
            if i < len(eps) - 1:
                k = model.probability_to_threshold(probs[i])
                stat = f" -m statistic --mode random --probability {model.threshold_to_decimal(k)}"
            rules.append(f'-A {svc} -m comment --comment "{name} -> {ep}"{stat} -j {sep}')
            ip = ep.rsplit(":", 1)[0].strip("[]")
            sep_chains[sep] = [
                f'-A {sep} -s {ip}/32 -m comment --comment "{name}" -j KUBE-MARK-MASQ',
                f'-A {sep} -p {proto} -m comment --comment "{name}" -m {proto} -j DNAT --to-destination {ep}',
            ]
        svc_chains[svc] = rules
    svc_rules.append(
        '-A KUBE-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: this must be the last '
        'rule in this chain" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS'
    )
    user = {
        "KUBE-MARK-MASQ": ["-A KUBE-MARK-MASQ -j MARK --set-xmark 0x4000/0x4000"],
        "KUBE-NODEPORTS": [],
        "KUBE-POSTROUTING": [
            "-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN",
            "-A KUBE-POSTROUTING -j MARK --set-xmark 0x4000/0x0",
            '-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE',
        ],
        "KUBE-SERVICES": svc_rules,
        **sep_chains,
        **svc_chains,
    }
    for c in extra_chains:
        user.setdefault(c, [])
    pre = pre_rules or {}
    out = []
    if header:
        out.append("# Generated by iptables-save v1.8.9 (nf_tables) (meshstat.netfilter.kube_proxy_iptables_save)")
    out.append("*nat")
    out += [f":{c} ACCEPT [0:0]" for c in ("PREROUTING", "INPUT", "OUTPUT", "POSTROUTING")]
    out += [f":{c} - [0:0]" for c in sorted(user)]
    portal = '-m comment --comment "kubernetes service portals" -j KUBE-SERVICES'
    for c in ("PREROUTING", "OUTPUT"):
        out += [f"-A {c} {r}" for r in pre.get(c, ())]
        out.append(f"-A {c} {portal}")
    out += [f"-A POSTROUTING {r}" for r in pre.get("POSTROUTING", ())]
    out.append('-A POSTROUTING -m comment --comment "kubernetes postrouting rules" -j KUBE-POSTROUTING')
    extra = list(extra_rules)
    for c in sorted(user):
        out += [r for r in extra if r.split()[1] == c]
        out += user[c]
    out.append("COMMIT")
    if header:
        out.append("# Completed by meshstat")
    return "\n".join(out) + "\n"


# =========================================================================== IPVS (ipvsadm -ln)


def _decimal(text: str, max_digits: int) -> bool:
    """ASCII digits only (``str.isdigit`` also takes ``'²'``), at most ``max_digits`` of them."""
    return 0 < len(text) <= max_digits and text.isascii() and text.isdigit()


def parse_ipvsadm(text: str, source: str = "<input>") -> list[ServiceInfo]:
    """Virtual services of ``ipvsadm -ln`` output (kube-proxy IPVS mode), as :class:`ServiceInfo`.

    Format: ``PROTO VIP:PORT SCHEDULER [persistent T]`` lines, each followed by
    ``-> RIP:PORT FORWARD WEIGHT ACTIVE INACTIVE`` lines (kubernetes
    ``pkg/proxy/ipvs/README.md``). An endpoint's ``share`` is its weight over the
    total: the long-run share of ``rr``/``wrr`` (a deterministic rotation, not an
    i.i.d. choice, so no route is built from it). ``persistent T`` is ClientIP
    affinity with timeout ``T``.

    Raises
    ------
    ConfigParseError
        For a line that is neither a header, a virtual service nor a real server.
    """
    out: list[ServiceInfo] = []
    cur: dict[str, Any] | None = None

    def flush() -> None:
        if cur is None:
            return
        total = sum(w for _a, w, _l in cur["eps"]) or 1
        eps = tuple(EndpointInfo(a, None, Fraction(w, total), None, (), ln, None) for a, w, ln in cur["eps"])
        out.append(
            ServiceInfo(
                name=cur["vip"], protocol=cur["proto"], cluster_ip=cur["vip"].rsplit(":", 1)[0].strip("[]"),
                port=int(cur["vip"].rsplit(":", 1)[1]), cluster_chain=None, local_chain=None, endpoints=eps,
                affinity_timeout=cur["persist"], internal_policy=f"IPVS {cur['sched']}", dialect="ipvs",
                source=source, line=cur["line"],
            )  # fmt: skip
        )

    any_line = False
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line:
            continue
        any_line = True
        parts = line.split()
        if line.startswith(("IP Virtual Server", "Prot LocalAddress", "-> RemoteAddress")):
            continue
        if parts[0] in ("TCP", "UDP", "SCTP") and len(parts) >= 3:
            vip_host, colon, vip_port = parts[1].rpartition(":")
            if not (colon and vip_host and _decimal(vip_port, 5) and int(vip_port) <= 65535):
                raise ConfigParseError(
                    "expected the virtual service as VIP:PORT (ipvsadm -ln)", source=source, line=n,
                    snippet=line,
                )
            flush()
            persist = None
            if "persistent" in parts:
                i = parts.index("persistent")
                persist = int(parts[i + 1]) if i + 1 < len(parts) and _decimal(parts[i + 1], 10) else 360
            cur = {"proto": parts[0].lower(), "vip": parts[1], "sched": parts[2], "persist": persist, "eps": [],
                   "line": n}  # fmt: skip
            continue
        if parts[0] == "->" and cur is not None and len(parts) >= 4 and _decimal(parts[3], 10):
            cur["eps"].append((parts[1], int(parts[3]), n))
            continue
        raise ConfigParseError(
            "expected 'PROTO VIP:PORT SCHEDULER' or '-> RIP:PORT FORWARD WEIGHT ...' (ipvsadm -ln)",
            source=source, line=n, snippet=line,
        )
    if not any_line:
        raise ConfigParseError("empty input: expected ipvsadm -ln output", source=source)
    flush()
    return out
