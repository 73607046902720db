"""Packet traces through netfilter rulesets, with exact probabilities.

:func:`trace` walks one packet through every table and hook it crosses, in
the kernel's order (raw, mangle, nat, filter, security; ``output`` then
``postrouting``; ``prerouting`` then ``input``, or ``forward`` and
``postrouting``, by the routing decision on the translated destination; see
:mod:`meshstat.netfilter.hooks`), following jumps, gotos and returns, and lists
every path with its exact probability (:class:`fractions.Fraction`), the rules
it passed and its verdict. A mark a mangle rule sets is seen by the nat and
filter rules after it; a DROP or REJECT in filter ends the path even after a
DNAT. What the trace did not walk (a table the dump lacks, one the caller left
out, a chain an ``iptables-restore --noflush`` input jumps to without defining
it) is named in the result, never guessed. A ``-m statistic --mode random`` rule matches with
probability exactly ``k / 2**31`` (``k`` the stored integer, kernel
``net/netfilter/xt_statistic.c: statistic_mt``); nft ``numgen random mod N``
picks slot ``s`` with probability ``#{r : floor(r*N/2**32) = s} / 2**32``
(kernel ``net/netfilter/nft_numgen.c: nft_ng_random_eval`` via
``reciprocal_scale``, :func:`meshstat.model.numgen.numgen_range_count`).
What the packet does not say (no ``--src``, no ``--uid``, a client's ``-m
recent`` history, an opaque match) is never guessed: the path splits into both
outcomes, each labelled with the assumption it rests on, and probabilities are
conditional on those labels. :func:`nth_matches` gives the exact packets an
``nth`` rule matches.

Why this module is long: the tracer is one algorithm:
``_Tracer``'s match decisions, target application, branching on unknowns and
numgen splits act on one ``_State`` and call each other, and the result types
carry the tree they build (:attr:`TracePath.branches`, summed back by
:attr:`TraceResult.total`). Cut apart, the pieces would import each other's
private helpers.
"""

from __future__ import annotations

import bisect
import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from meshstat.errors import InvalidArgument, ModelError
from meshstat.model import as_share, exact_sum, share_text
from meshstat.model.numgen import numgen_range_count
from meshstat.netfilter import hooks
from meshstat.parsers.netfilter import (
    Chain,
    Match,
    Net,
    Rule,
    Ruleset,
    Table,
    Target,
    parse_cidr,
)

__all__ = [
    "MAX_DEPTH",
    "MAX_PATHS",
    "Condition",
    "Packet",
    "TracePath",
    "TraceResult",
    "TraceStep",
    "Verdict",
    "host_port",
    "nth_matches",
    "trace",
]

_TWO32 = 1 << 32
#: Deepest chain nesting a trace follows before it reports over-deep recursion.
MAX_DEPTH = 64
#: Most paths one trace may produce before asking for more packet fields.
MAX_PATHS = 20_000


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
    local_addresses : tuple of str, optional
        The host's local addresses or prefixes (``"10.244.1.0/24"``), the
        complete list: the routing decision (``input`` or ``forward``, the
        loopback return of a locally generated packet) and ``addrtype`` matches
        on a translated address use it. Without it, ``dst_local`` answers for
        the original destination (unknown: the trace splits on it where it
        matters), ``127.0.0.0/8`` and ``::1`` are local, and a DNAT destination
        is assumed not local (a pod reached through forwarding), which the
        trace notes.
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
    local_addresses: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        try:
            parse_cidr(self.dst)
            if self.src is not None:
                parse_cidr(self.src)
        except ValueError:
            raise InvalidArgument(f"expected an IP address, got {self.dst!r} / {self.src!r}") from None
        if self.local_addresses is not None:
            if isinstance(self.local_addresses, str):
                raise InvalidArgument("local_addresses must be a sequence of addresses, not one string")
            object.__setattr__(self, "local_addresses", tuple(self.local_addresses))
            for a in self.local_addresses:
                try:
                    parse_cidr(a)
                except ValueError:
                    raise InvalidArgument(f"expected a local address or prefix, got {a!r}") from None
        for name in ("dport", "sport"):
            v = getattr(self, name)
            if v is not None and not 0 <= v <= 65535:
                raise InvalidArgument(f"{name} must be within 0..65535, got {v}")


@dataclass(frozen=True, slots=True)
class TraceStep:
    """A rule a path passed (it matched), or the policy at the end of a built-in chain.

    ``line`` is ``None`` for a policy and ``0`` for a rule the caller added to
    the dump as an assumption (kube-proxy's jumps from the built-in chains, which
    its ``iptables-restore`` input does not carry); the label shows ``assumed``.
    """

    table: str
    chain: str
    line: int | None
    action: str
    text: str = ""

    def label(self, with_table: bool = False) -> str:
        """``CHAIN:line`` (``table/CHAIN:line`` with ``with_table``)."""
        where = f"{self.chain}:{'policy' if self.line is None else self.line or 'assumed'}"
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
    ``"TPROXY"``, ``"CONTINUE"`` (no translation: the packet goes on
    unchanged), ``"ACCEPT"`` (the same, by an explicit ACCEPT), ``"DROP"``,
    ``"REJECT"`` or ``"UNKNOWN"`` (an opaque target, a chain not in the
    input); ``target`` is ``"ip:port"`` for DNAT, the port for REDIRECT and
    TPROXY. For a translation, ``detail`` names a source translation that
    followed it (``"then MASQUERADE"``); for DROP and REJECT, the translation
    that preceded it.
    """

    kind: str
    target: str | None = None
    detail: str = ""

    def __str__(self) -> str:
        extra = f" ({self.detail})" if self.detail else ""
        if self.kind == "DNAT":
            return f"DNAT to {self.target}{extra}"
        if self.kind in ("REDIRECT", "TPROXY"):
            return f"{self.kind} to port {self.target}{extra}"
        if self.kind in ("SNAT",):
            return f"SNAT to {self.target}"
        if self.kind == "CONTINUE":
            return "no NAT: falls through to the next hook"
        if self.kind == "UNKNOWN":
            return f"unknown ({self.detail})"
        return self.kind + (f" {self.target}" if self.target else "") + extra


@dataclass(frozen=True, slots=True)
class TracePath:
    """One way through the rules.

    Attributes
    ----------
    probability : Fraction
        Exact probability of this path, conditional on :attr:`conditions`.
    steps : tuple of TraceStep
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
    steps: tuple[TraceStep, ...]
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
    """All paths of one packet through the hooks it crosses.

    ``tables`` names the base chains some path walked (``"nat/OUTPUT"``), in
    order; ``not_walked`` what the trace did not walk and why (a table the
    dump lacks, one the caller left out, the hook's chains when the trace
    started in a named chain).

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
    not_walked: tuple[str, ...] = ()

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
        parts: dict[str, list[Fraction]] = {}
        for p in self.paths:
            parts.setdefault(str(p.verdict), []).append(p.probability)
        return {k: exact_sum(v) for k, v in parts.items()}


def _tree_total(paths: list[TracePath], depth: int) -> Fraction:
    parts: list[Fraction] = []
    groups: dict[int, tuple[list[TracePath], list[TracePath]]] = {}
    for p in paths:
        if len(p.branches) <= depth:
            parts.append(p.probability)
        else:
            node, holds = p.branches[depth]
            g = groups.setdefault(node, ([], []))
            g[0 if holds else 1].append(p)
    for node, (yes, no) in groups.items():
        a = _tree_total(yes, depth + 1)
        b = _tree_total(no, depth + 1)
        if a != b:
            raise ModelError(
                f"inconsistent trace: unknown #{node} carries {share_text(a)} on one side and {share_text(b)} "
                "on the other"
            )
        parts.append(a)
    return exact_sum(parts)


#: Targets that change nothing the tracer models (a rule with them needs no split on an unknown match).
_NO_EFFECT = ("none", "ct", "log")


class _State:
    __slots__ = (
        "assume", "branches", "chain", "conditions", "ctmark", "ctstates", "dport", "dst", "frames", "hook", "idx",
        "loop", "mark", "nat", "notes", "plan", "prob", "sets", "snat", "steps", "table", "verdict",
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
        s.plan = self.plan
        s.hook = self.hook
        s.snat = self.snat
        s.loop = self.loop
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
        self.local_nets = (
            None if packet.local_addresses is None else tuple(parse_cidr(a) for a in packet.local_addresses)
        )
        dst = parse_cidr(packet.dst)
        self.orig_dst = (dst.version, dst.network)
        src_local = packet.src_local
        if src_local is None and self.src is not None and self.local_nets is not None:
            src_local = self._is_local(self.src.version, self.src.network)
        self.src_local = src_local if src_local is not None else (True if hook == "output" else None)
        self.notes: set[str] = set()
        self.finished = 0
        #: base chains some path entered, in order ("table/CHAIN" -> None)
        self.walked: dict[str, None] = {}
        self.family = "ip" if dst.version == 4 else "ip6"
        self.tables: tuple[str, ...] | None = None
        self._way_cache: dict[str, tuple[tuple, tuple]] = {}
        #: translated destinations assumed not local (no local addresses given)
        self.assumed_remote: dict[tuple[int, int], None] = {}

    def _is_local(self, version: int, addr: int) -> bool | None:
        """Loopback, or in the caller's local addresses; None when the caller gave none."""
        if _is_loopback((version, addr)):
            return True
        if self.local_nets is None:
            return None
        return any(n.contains(version, addr) for n in self.local_nets)

    def dst_local(self, st: _State) -> bool | None:
        """Whether the packet's current destination is a local address (None: unknown)."""
        if st.nat is not None and st.nat.kind == "REDIRECT":
            return True  # REDIRECT rewrites the destination to a local address
        v, a = st.dst
        known = self._is_local(v, a)
        if known:
            return True
        if (v, a) == self.orig_dst:
            if self.pkt.dst_local is not None:
                return self.pkt.dst_local
            return known  # False with a list of local addresses, None without
        if known is None:
            self.assumed_remote.setdefault((v, a), None)
        return False

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
            h = st.hook
            present = h in ("prerouting", "input", "forward") if kind == "in_if" else h in (
                "output", "postrouting", "forward"
            )
            name = m.value
            if not present:  # no such device at this hook: only "+" matches
                return (name == "+") != neg
            known = self.pkt.out_if if kind == "out_if" else ("lo" if st.loop else self.pkt.in_if)
            if known is not None:
                return _if_match(name, known) != neg
            return self._unknown(st, kind, name, neg, f"{kind.replace('_', '-')} {name}")
        if kind in ("uid", "gid"):
            if self.hook != "output" or st.hook not in ("output", "postrouting"):
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
            return self._addrtype(st, m)
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

    def _addrtype(self, st: _State, m: Match) -> Any:
        """``-m addrtype --src-type|--dst-type`` and nft ``fib saddr|daddr [. iif|. oif] type``.

        Both ask the kernel's ``inet_dev_addr_type`` (``net/ipv4/fib_frontend.c``;
        ``xt_addrtype.c: addrtype_mt_v1``, ``nft_fib_ipv4.c: nft_fib4_eval_type``):
        ``BROADCAST`` for ``0.0.0.0/8`` and ``255.255.255.255``, ``MULTICAST`` for
        ``224.0.0.0/4`` (``ff00::/8``), ``LOCAL`` for an address of this host (with
        a device named, only when that device holds it, else ``UNICAST``), and
        ``UNICAST`` for any other address (a subnet's broadcast address, which
        the packet cannot tell, is read as unicast). Whether an address is local
        comes from the packet: the source from ``src_local`` (true on
        ``output``; else from ``local_addresses``), the current, possibly
        translated, destination from :meth:`dst_local` (``dst_local`` for the
        original one, ``local_addresses``, ``127.0.0.0/8`` and ``::1``, a
        REDIRECT). When unknown, the path splits on "the address is local",
        the same question the routing decision after DNAT asks (one key, so a
        path answers it once).
        """
        side, types, iface = m.value if len(m.value) == 3 else (*m.value, None)
        neg = m.negated
        if side == "src":
            addr = (self.src.version, self.src.network) if self.src is not None else None
            local = self.src_local
            key: tuple = ("addrtype", "src")
        else:
            addr = st.dst
            local = self.dst_local(st)
            key = ("addrtype", "dst", st.dst)
        special = _special_type(addr) if addr is not None else None
        if special is not None:
            return (special in types) != neg
        if local is None and addr is not None and _is_loopback(addr):
            local = True
        if local is False:
            return ("UNICAST" in types) != neg
        want_local, want_unicast = "LOCAL" in types, "UNICAST" in types
        if want_local == want_unicast:  # LOCAL and UNICAST both listed, or neither: the answer is the same
            return want_local != neg
        where = {"in": " on the input interface", "out": " on the output interface"}.get(iface, "")
        word = "source" if side == "src" else "destination"
        if local is True and iface is None:
            return want_local != neg
        if iface is not None:  # local on that device: a narrower question than local at all
            key = (*key, iface)
        # the match holds when the address is local (LOCAL listed) or when it is not (UNICAST listed)
        return self._unknown(st, key, _LOCAL, neg != want_unicast, f"{word} address type LOCAL{where}")

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

    def run(self, st: _State) -> list[_State]:
        """Walk ``st`` through its plan of base chains; returns finished states.

        ``st.plan`` holds ``(Table, Chain, hook)`` entries and routing markers
        (:data:`meshstat.netfilter.hooks.ROUTE`, :data:`~meshstat.netfilter.hooks.LOOPBACK`),
        which are replaced by the chains of the way the packet takes when it
        reaches them. Work items are ``(state, plan position, mode, payload)``:
        mode ``"start"`` enters the base chain at that position, ``"walk"``
        continues after the current rule, ``"apply"`` applies ``payload`` (a
        Target) of the rule at ``state.idx - 1`` first.
        """
        done: list[_State] = []
        work: list[tuple[_State, int, str, Any]] = [(st, 0, "start", None)]
        while work:
            s, ti, mode, payload = work.pop()
            if mode == "start":
                while ti < len(s.plan) and isinstance(s.plan[ti], str):
                    self._route(s, ti, work)
                if ti >= len(s.plan):
                    done.append(s)
                    self.finished += 1
                    if self.finished > self.max_paths:
                        raise ModelError(
                            f"the trace has more than {self.max_paths} paths; give more packet fields "
                            "(--src, --uid, --gid, --out-if) to narrow it"
                        )
                    continue
                table, chain, hook = s.plan[ti]
                s.table = (_table_key(self.rs, table), table.name)
                s.chain = chain
                s.hook = hook
                s.idx = 0
                s.frames = []
                self.walked.setdefault(f"{table.name}/{chain.name}", None)
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

    def _route(self, st: _State, ti: int, work: list) -> None:
        """Replace the routing marker at ``st.plan[ti]`` by the chains the packet crosses next.

        The destination decides (:meth:`dst_local`); when it is unknown and the
        two ways differ in some rule, the state splits on it (labelled), the
        other side queued as work.
        """
        marker = st.plan[ti]
        local_way, other_way = self._ways(marker)
        local = self.dst_local(st)
        if st.nat is not None and st.nat.kind == "TPROXY":
            local = True  # TPROXY delivers to a local socket (policy routing on its mark)
        key = ("addrtype", "dst", st.dst)
        if local is None:  # an earlier '-m addrtype --dst-type LOCAL' on this address may have said
            local = _implied(key, _LOCAL, st.assume.get(key, ()))
        if local is None:
            if not (hooks.effective([(t, c) for t, c, _h in local_way])
                    or hooks.effective([(t, c) for t, c, _h in other_way])):  # fmt: skip
                local = False  # neither way has a rule: nothing to decide
            else:
                self.node += 1
                other = st.copy()
                label = f"destination {_addr_text(*st.dst)} is a local address"
                _assume(st, key, _LOCAL, True, label, None, self.node)
                _assume(other, key, _LOCAL, False, label, None, self.node)
                other.plan = other.plan[:ti] + other_way + other.plan[ti + 1 :]
                work.append((other, ti, "start", None))
                local = True
        way = local_way if local else other_way
        st.plan = st.plan[:ti] + way + st.plan[ti + 1 :]
        if marker == hooks.LOOPBACK and local:
            st.loop = True
            if self.rs.dialect == "iptables" or any(h == "prerouting" for _t, _c, h in way):
                self.notes.add(
                    "a locally generated packet to a local address comes back in through lo: PREROUTING and "
                    "INPUT are walked again without the nat table (the connection's translation is set up)"
                )

    def _ways(self, marker: str) -> tuple[tuple, tuple]:
        """The chains after ``marker`` for a local destination, and for any other."""
        cache = self._way_cache.get(marker)
        if cache is not None:
            return cache

        def chains(hook: str, skip_nat: bool = False) -> tuple:
            found = hooks.base_chains(self.rs, hook, self.family, self.tables, skip_nat=skip_nat)
            return tuple((t, c, hook) for t, c in found)

        if marker == hooks.ROUTE:
            out = (chains("input"), chains("forward") + chains("postrouting"))
        else:  # LOOPBACK
            out = (chains("prerouting", True) + chains("input", True), ())
        self._way_cache[marker] = out
        return out

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
                    st.steps.append(TraceStep(tname, chain.name, None, "policy DROP"))
                    st.verdict = Verdict("DROP", None, f"policy of {tname}/{chain.name}")
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
            if uncertain and rule.target.kind in _NO_EFFECT and not rule.sets_updated:
                # matched or not, nothing the trace models changes: no split on it
                what = ", ".join(r[3] if isinstance(r, tuple) else "a random draw" for _m, r in uncertain)
                self.notes.add(
                    f"line {rule.line}: not decided whether it matches ({what}); its target "
                    f"({rule.target.text or 'none: it counts'}) changes nothing this trace models"
                )
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
            st.steps.append(TraceStep(tname, chain.name, rule.line, t.text or "no target (counts only)", rule.text))
            return False
        if kind in ("jump", "goto"):
            target = _table_obj(self.rs, st).chains.get(t.value)
            if target is None:  # iptables-restore --noflush input: defined by an earlier load
                action = f"{kind} {t.value} (not in the input)"
                st.steps.append(TraceStep(tname, chain.name, rule.line, action, rule.text))
                st.verdict = Verdict(
                    "UNKNOWN", t.value,
                    f"chain {t.value} is not in this input (line {rule.line} jumps to it; an earlier load "
                    "defined it)",
                )  # fmt: skip
                return True
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
            st.steps.append(TraceStep(tname, chain.name, rule.line, f"{kind} {t.value}", rule.text))
            if kind == "jump":
                st.frames.append((chain, st.idx))
            st.chain = target
            st.idx = 0
            return False
        if kind == "return":
            st.steps.append(TraceStep(tname, chain.name, rule.line, "RETURN", rule.text))
            if st.frames:
                st.chain, st.idx = st.frames.pop()
                return False
            st.idx = len(chain.rules)  # RETURN in a built-in chain: its policy
            return False
        if kind == "mark":
            mask, xor = t.value
            st.mark = ((st.mark & ~mask) ^ xor) & 0xFFFFFFFF
            st.steps.append(TraceStep(tname, chain.name, rule.line, f"MARK -> {st.mark:#x}", rule.text))
            return False
        if kind == "connmark":
            op, a, b = t.value
            if op == "set":
                st.ctmark = ((st.ctmark & ~a) ^ b) & 0xFFFFFFFF
            elif op == "save":
                st.ctmark = ((st.ctmark & ~b) ^ (st.mark & a)) & 0xFFFFFFFF
            else:
                st.mark = ((st.mark & ~a) ^ (st.ctmark & b)) & 0xFFFFFFFF
            st.steps.append(TraceStep(tname, chain.name, rule.line, f"CONNMARK {op}", rule.text))
            return False
        if kind == "accept":
            st.steps.append(TraceStep(tname, chain.name, rule.line, "ACCEPT", rule.text))
            if st.nat is None:
                st.nat = Verdict("ACCEPT")
            return True
        if kind in ("drop", "reject"):
            st.steps.append(TraceStep(tname, chain.name, rule.line, kind.upper(), rule.text))
            after = f"after {st.nat}" if st.nat is not None and st.nat.kind not in ("ACCEPT",) else ""
            st.verdict = Verdict(kind.upper(), t.value if kind == "reject" else None, after)
            return True
        if kind == "dnat":
            addr, ports, text = t.value
            port = ports[0] if ports else st.dport
            target = host_port(addr, port) if addr else f"(unchanged address):{port}"
            if ports and ports[0] != ports[1]:
                target = f"{addr}:{ports[0]}-{ports[1]}"
            st.steps.append(TraceStep(tname, chain.name, rule.line, f"DNAT {target}", rule.text))
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
            st.steps.append(TraceStep(tname, chain.name, rule.line, f"REDIRECT {port}", rule.text))
            self._set_nat(st, Verdict("REDIRECT", port))
            if ports is not None:
                st.dport = ports[0]
            if st.hook == "output":  # nf_nat_redirect: a locally generated packet goes to loopback
                st.dst = (4, 0x7F000001) if st.dst[0] == 4 else (6, 1)
            return True
        if kind in ("snat", "masquerade"):
            target = t.value[2] if kind == "snat" else None
            st.steps.append(TraceStep(tname, chain.name, rule.line, kind.upper(), rule.text))
            self._set_nat(st, Verdict(kind.upper(), target))
            return True
        if kind == "tproxy":
            port, _ip, mark = t.value
            if mark is not None:
                v, mask = mark
                st.mark = ((st.mark & ~mask) ^ v) & 0xFFFFFFFF
            st.steps.append(TraceStep(tname, chain.name, rule.line, f"TPROXY {port}", rule.text))
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
        st.steps.append(TraceStep(tname, chain.name, rule.line, f"-j {name} (opaque)", rule.text))
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
                st.steps.append(TraceStep(tname, st.chain.name, rule.line, "vmap (key unknown)", rule.text))
                st.verdict = Verdict("UNKNOWN", None, f"vmap at line {rule.line} needs the packet's {f}")
                return True
            values.append(v)
        for el in elements:
            if len(el.key) == len(values) and all(_comp_match(c, v) for c, v in zip(el.key, values, strict=True)):
                kind, arg = el.data
                return self._apply(st, rule, work, ti, Target(kind, arg, f"{kind} {arg}" if arg else kind))
        return False

    def _numgen(self, st: _State, rule: Rule, work: list, ti: int, t: Target) -> bool:
        """nft ``numgen random|inc mod N`` verdict or DNAT map: one branch per outcome.

        Slot ranges are counted in closed form (:func:`numgen_range_count`) and
        ranges with the same outcome are grouped, so the work is bounded by the
        number of map elements, not by the modulus.
        """
        mode, modulus, offset, slots = t.value
        if mode == "random":
            denom = _TWO32

            def mass_of(lo: int, hi: int) -> int:
                return numgen_range_count(modulus, lo - offset, hi - offset)
        else:
            denom = modulus

            def mass_of(lo: int, hi: int) -> int:
                return hi - lo + 1

            self.notes.add(
                f"line {rule.line}: numgen inc mod {modulus} is a round-robin counter (per rule); "
                f"a single-packet trace reads each slot as probability 1/{modulus}"
            )
        groups: dict[Any, list] = {}  # payload -> [payload, mass], in order of first appearance
        used = 0
        for lo, hi, payload in slots:
            mass = mass_of(lo, hi)
            used += mass
            try:
                g = groups.setdefault(payload, [payload, 0])
            except TypeError:  # an unhashable payload: its own group
                g = groups.setdefault(id(payload), [payload, 0])
            g[1] += mass
        branches: list[tuple[Fraction, Target | None]] = [(Fraction(m, denom), pl) for pl, m in groups.values() if m]
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
        elif v.kind in ("SNAT", "MASQUERADE") and st.snat is None:
            st.snat = v
        if v.kind in ("DNAT", "REDIRECT"):
            st.ctstates = st.ctstates | {"DNAT"}
        elif v.kind in ("SNAT", "MASQUERADE"):
            st.ctstates = st.ctstates | {"SNAT"}


#: The question an address-type match and the routing decision ask of an address: is it local?
_LOCAL = frozenset({"LOCAL"})


def _special_type(addr: tuple[int, int]) -> str | None:
    """``BROADCAST`` / ``MULTICAST`` when the address alone decides its type (``inet_dev_addr_type``)."""
    version, a = addr
    if version == 4:
        if a >> 24 == 0 or a == 0xFFFFFFFF:
            return "BROADCAST"
        if a >> 28 == 0xE:
            return "MULTICAST"
        return None
    return "MULTICAST" if a >> 120 == 0xFF else None


def _is_loopback(addr: tuple[int, int]) -> bool:
    version, a = addr
    return (a >> 24) == 127 if version == 4 else a == 1


def host_port(addr: str, port: int | None) -> str:
    """``addr:port`` (``[addr]:port`` for IPv6), or ``addr`` alone without a port."""
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


def _addr_text(version: int, addr: int) -> str:
    return str(ipaddress.IPv4Address(addr) if version == 4 else ipaddress.IPv6Address(addr))


def _not_walked(rs: Ruleset, family: str, tables: tuple[str, ...] | None) -> list[str]:
    """What a hook walk leaves out: tables the dump lacks, tables (nft: chain types) the caller excluded."""
    if rs.dialect == "iptables":
        present = [n for n in hooks.IPTABLES_TABLES if (family, n) in rs.tables]
        absent = [n for n in hooks.IPTABLES_TABLES if n not in present]
        out = []
        if tables is not None:
            excluded = [n for n in present if n not in tables]
            if excluded:
                out.append(f"tables {', '.join(excluded)} (left out by the tables asked for)")
        if absent:
            out.append(f"tables {', '.join(absent)} (not in the dump)")
        return out
    if tables is None:
        return []
    fams = ("ip", "inet") if family == "ip" else ("ip6", "inet")
    left = sorted(
        f"{t.family} {t.name}/{c.name} (type {c.chain_type or 'filter'})"
        for (f, _n), t in rs.tables.items() if f in fams
        for c in t.chains.values() if c.hook is not None and (c.chain_type or "filter") not in tables
    )  # fmt: skip
    return [f"base chains {', '.join(left)} (left out by the chain types asked for)"] if left else []


def trace(
    ruleset: Ruleset,
    packet: Packet,
    hook: str = "output",
    *,
    tables: Iterable[str] | None = None,
    chain: str | None = None,
    max_paths: int = MAX_PATHS,
) -> TraceResult:
    """Every path of ``packet`` through the tables and hooks it crosses, with exact probabilities.

    Parameters
    ----------
    ruleset : Ruleset
        From :func:`load`, :func:`parse_iptables` or :func:`parse_nft`.
    packet : Packet
        The first packet of a connection.
    hook : {"output", "prerouting"}
        ``output`` for a locally generated packet (then ``postrouting``, and
        ``prerouting``/``input`` again through loopback when its destination is
        local), ``prerouting`` for one arriving on an interface (then ``input``
        or ``forward`` and ``postrouting``, by its destination after DNAT:
        see :attr:`Packet.local_addresses`).
    tables : iterable of str, optional
        iptables tables to walk (default: all the dump has, in the kernel's
        order at every hook: raw, mangle, nat, filter, security); for nft,
        base-chain types (default: all). What is left out is named in
        :attr:`TraceResult.not_walked`.
    chain : str, optional
        Start in this chain (of the first table given, default ``nat``) and
        walk only it, e.g. ``"KUBE-SERVICES"``; falling off its end means no
        NAT. The hook's base chains are then not walked (said in
        :attr:`TraceResult.not_walked`).
    max_paths : int
        Refuse traces with more paths (unknown fields multiply them).

    Returns
    -------
    TraceResult

    Raises
    ------
    InvalidArgument
        For an unknown hook, or a dump with no base chain at the hook.
    ModelError
        For a jump loop, chains nested deeper than :data:`MAX_DEPTH`, or too many paths.
    """
    hook = hook.lower()
    if hook not in ("output", "prerouting"):
        raise InvalidArgument(f"hook must be 'output' or 'prerouting', got {hook!r}")
    dst = parse_cidr(packet.dst)
    family = "ip" if dst.version == 4 else "ip6"
    fam_name = "IPv4" if family == "ip" else "IPv6"
    tbl = tuple(tables) if tables is not None else None
    if tbl is not None and ruleset.dialect == "iptables":
        bad = [t for t in tbl if t not in hooks.IPTABLES_TABLES]
        if bad:
            raise InvalidArgument(f"unknown iptables table {bad[0]!r}: expected {', '.join(hooks.IPTABLES_TABLES)}")
    not_walked: list[str] = []
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
        plan: tuple = ((chains[0][0], chains[0][1], hook),)
        not_walked.append(
            f"the base chains of hook {hook} and the hooks after it (the trace started in chain {chain} "
            f"of table {chains[0][0].name} and walked only what it reaches)"
        )
    else:
        first = [(t, c, h) for h in hooks.plan(hook)[0] for t, c in hooks.base_chains(ruleset, h, family, tbl)]
        if not first:
            if ruleset.dialect == "iptables" and not any(f == family for f, _n in ruleset.tables):
                raise InvalidArgument(
                    f"{ruleset.source}: the dump has no table for {fam_name} "
                    "(expected a '*nat' or '*filter' block; iptables-save prints them)"
                )
            raise InvalidArgument(
                f"{ruleset.source}: no {'/'.join(tbl) if tbl else ''}{' ' if tbl else ''}base chain at hook {hook} "
                f"for {fam_name}"
            )
        plan = tuple(first)
        for seg in hooks.plan(hook)[1:]:
            for h in seg:
                if h in (hooks.ROUTE, hooks.LOOPBACK):
                    plan += (h,)
                else:
                    plan += tuple((t, c, h) for t, c in hooks.base_chains(ruleset, h, family, tbl))
        not_walked += _not_walked(ruleset, family, tbl)
    tr = _Tracer(ruleset, packet, hook, max_paths)
    tr.tables = tbl
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
    st.plan = plan
    st.hook = hook
    st.snat = None
    st.loop = False
    done = tr.run(st)
    paths = []
    for s in done:
        verdict = s.verdict or s.nat or Verdict("CONTINUE")
        if s.verdict is None and s.snat is not None and verdict.kind in ("DNAT", "REDIRECT", "TPROXY"):
            verdict = Verdict(verdict.kind, verdict.target, f"then {s.snat}")
        paths.append(
            TracePath(
                probability=as_share(s.prob),
                steps=tuple(s.steps),
                verdict=verdict,
                conditions=tuple(s.conditions),
                notes=tuple(s.notes),
                mark=s.mark,
                branches=tuple(s.branches),
            )
        )
    notes = sorted(tr.notes)
    if tr.assumed_remote:
        shown = [_addr_text(*a) for a in list(tr.assumed_remote)[:5]]
        more = len(tr.assumed_remote) - len(shown)
        notes.append(
            f"assumed: the DNAT destination{'s' if len(tr.assumed_remote) > 1 else ''} {', '.join(shown)}"
            f"{f' and {more} more' if more > 0 else ''} "
            f"{'are not local addresses' if len(tr.assumed_remote) > 1 else 'is not a local address'} of this host "
            "(pods reached by forwarding); give the host's local addresses to decide otherwise"
        )
    return TraceResult(
        packet=packet,
        hook=hook,
        tables=tuple(tr.walked),
        paths=tuple(paths),
        notes=tuple(notes),
        warnings=tuple(str(w) for w in ruleset.warnings),
        not_walked=tuple(not_walked),
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
