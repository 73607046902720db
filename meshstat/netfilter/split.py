"""The exact split of one chain over its outcomes, read with the tracer's semantics.

A kube-proxy service chain (``KUBE-SVC-*``) in its usual shape is a cascade
of ``-m statistic --mode random`` rules jumping to endpoint chains, which
:class:`meshstat.model.Cascade` models. A chain of any other shape (a rule that
RETURNs, a rule with two ``-m statistic`` matches, ``--mode nth``, two rules
jumping to the same endpoint, a DROP) is read here the way the kernel runs it:
:func:`chain_split` traces a packet from the chain
(:func:`meshstat.netfilter.tracer.trace`, the one interpretation of a chain in
meshstat) and sums the paths by where they end: an endpoint (the address of
its DNAT), :data:`meshstat.model.FALL_THROUGH` (the packet left the chain
untranslated: a RETURN, or the end of the chain), ``(dropped)``,
``(rejected)``. Two rules that jump to the same endpoint chain give that
endpoint the sum of their shares.

Paths that depend on what the packet does not say are reduced as follows: an
assumption on which both outcomes give the same split (the masquerade rule's
``! -s CIDR``) is dropped; one on a client's ``-m recent`` history (session
affinity) is read as "not seen before" (the split of a client's first
connection, which is what the random rules decide); any other is refused with
the rule it rests on, since the split then depends on the packet.

``-m statistic --mode nth`` is a deterministic per-rule counter: its long-run
shares are exact, but the sequence is a rotation, not independent draws, which
:attr:`ChainSplitResult.deterministic` says (a simulation of independent
choices would be wrong for it).

:class:`ChainSplit` is the split as a :class:`meshstat.model.Stage`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction

from meshstat import model
from meshstat.errors import ModelError
from meshstat.netfilter.tracer import Packet, TracePath, trace
from meshstat.parsers.netfilter import Ruleset

__all__ = ["ChainSplit", "ChainSplitResult", "Outcome", "chain_split"]

_TWO64 = 1 << 64


@dataclass(frozen=True, slots=True)
class Outcome:
    """Where a share of the packets entering a chain ends.

    Attributes
    ----------
    name : str
        The endpoint's ``"ip:port"``, :data:`meshstat.model.FALL_THROUGH`,
        ``"(dropped)"``, ``"(rejected)"`` or the verdict's text.
    address : str or None
        ``"ip:port"`` of a DNAT.
    chain : str or None
        The chain the deciding rule jumped to (``KUBE-SEP-...``).
    probability : Fraction
        Exact share (the sum over every rule leading there).
    lines : tuple of int
        The deciding rules of the chain (several when two rules lead to the
        same endpoint chain).
    """

    name: str
    address: str | None
    chain: str | None
    probability: Fraction
    lines: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class ChainSplitResult:
    """The outcomes of one chain, their exact shares, and what the reading rests on."""

    chain: str
    outcomes: tuple[Outcome, ...]
    notes: tuple[str, ...] = ()
    deterministic: str | None = None

    def stage(self, *, provenance: model.Provenance | None = None) -> ChainSplit:
        """The split as a model stage (children: one backend per outcome)."""
        if self.deterministic:
            raise ModelError(self.deterministic)
        children = tuple(
            model.Backend(name=o.name, address=o.address, provenance=provenance) for o in self.outcomes
        )
        return ChainSplit(
            children=children,
            probabilities=tuple(o.probability for o in self.outcomes),
            unit="connection",
            name=self.chain,
            provenance=provenance,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class ChainSplit(model.Stage):
    """An exact split over outcomes, read from a chain by :func:`chain_split`.

    ``probabilities`` sum to 1; :meth:`masses64` rounds them to ``2**-64``
    (largest remainder) unless every one is a multiple of ``2**-64``.
    """

    probabilities: tuple[Fraction, ...] = field(default=())

    def __post_init__(self) -> None:
        if len(self.probabilities) != len(self.children):
            raise ModelError(f"{len(self.probabilities)} shares for {len(self.children)} outcomes")
        if model.exact_sum(self.probabilities) != 1 or any(p < 0 for p in self.probabilities):
            raise ModelError("the shares of a chain split must be non-negative and sum to 1")

    @property
    def policy(self) -> str:  # noqa: D102
        return "chain"

    def shares(self) -> tuple[Fraction, ...]:  # noqa: D102
        return tuple(self.probabilities)

    def masses64_exact(self) -> bool:  # noqa: D102
        return all((p * _TWO64).denominator == 1 for p in self.probabilities)


def _outcome_of(path: TracePath, chain: str) -> tuple[str, str | None, str | None, int | None]:
    """(name, address, jumped-to chain, deciding line) of a path that started in ``chain``."""
    own = [s for s in path.steps if s.chain == chain and s.table == path.steps[0].table] if path.steps else []
    last = own[-1] if own else None
    target = None
    if last is not None and last.action.startswith(("jump ", "goto ")):
        target = last.action.split()[1]
    v = path.verdict
    line = last.line if last is not None else None
    if v.kind == "UNKNOWN":
        raise ModelError(f"{v.detail}: the split of chain {chain} cannot be known from this input")
    if v.kind == "DNAT":
        return v.target or "?", v.target, target, line
    if v.kind in ("CONTINUE", "ACCEPT"):
        return model.FALL_THROUGH, None, None, line if last is not None and last.action == "RETURN" else None
    if v.kind == "DROP":
        return "(dropped)", None, target, line
    if v.kind == "REJECT":
        return "(rejected)", None, target, line
    return str(v), None, target, line


def _reduce(paths: list[TracePath], depth: int, chain: str, notes: set[str]) -> dict:
    """Outcome -> (probability, lines) over the tree of unknowns (see the module docstring)."""
    out: dict[tuple, list] = {}
    groups: dict[int, tuple[list[TracePath], list[TracePath], object]] = {}
    for p in paths:
        if len(p.branches) <= depth:
            name, addr, target, line = _outcome_of(p, chain)
            slot = out.setdefault((name, addr, target), [[], set()])
            slot[0].append(p.probability)
            if line is not None:
                slot[1].add(line)
        else:
            node, holds = p.branches[depth]
            g = groups.setdefault(node, ([], [], p.conditions[depth]))
            (g[0] if holds else g[1]).append(p)
    for yes, no, cond in groups.values():
        a = _reduce(yes, depth + 1, chain, notes)
        b = _reduce(no, depth + 1, chain, notes)
        if {k: v[0] for k, v in a.items()} == {k: v[0] for k, v in b.items()}:
            chosen = a
            for k, v in b.items():  # same shares: keep the deciding lines of both sides
                a[k][1] |= v[1]
        elif cond.label.startswith("client seen before"):
            notes.add(
                "session affinity: the split of a client's first connection (rules like "
                f"line {cond.line} send a returning client to its earlier endpoint)"
            )
            chosen = b
        else:
            raise ModelError(
                f"the split of chain {chain} depends on the packet ({cond.label}, line {cond.line}); "
                "give the packet field, or trace it"
            )
        for k, (prob, lines) in chosen.items():
            slot = out.setdefault(k, [[], set()])
            slot[0].append(prob)
            slot[1] |= lines
    return {k: [model.exact_sum(v[0]), v[1]] for k, v in out.items()}


def chain_split(
    ruleset: Ruleset, chain: str, packet: Packet, *, table: str = "nat", max_paths: int | None = None
) -> ChainSplitResult:
    """The exact split of ``chain`` over where packets leave it (see the module docstring).

    Parameters
    ----------
    ruleset : Ruleset
    chain : str
        The chain to start in (``KUBE-SVC-...``).
    packet : Packet
        The packet entering it (a service's cluster IP, port and protocol).
    table : str
        The table of ``chain`` (iptables).
    max_paths : int, optional
        Passed to :func:`meshstat.netfilter.tracer.trace`.

    Raises
    ------
    ModelError
        When the split depends on an unknown packet field, or a path reaches a
        chain or target the input does not define.
    """
    kw = {} if max_paths is None else {"max_paths": max_paths}
    tables = (table,) if ruleset.dialect == "iptables" else None
    r = trace(ruleset, packet, "output", tables=tables, chain=chain, **kw)
    notes: set[str] = set()
    reduced = _reduce(list(r.paths), 0, chain, notes)
    outcomes = [
        Outcome(name, addr, target, prob, tuple(sorted(lines)))
        for (name, addr, target), (prob, lines) in reduced.items()
        if prob
    ]
    outcomes.sort(key=lambda o: (o.lines[0] if o.lines else 1 << 40, o.name))
    names = [o.name for o in outcomes]
    for o in outcomes:
        if names.count(o.name) > 1:  # one address behind two endpoint chains: tell them apart
            named = Outcome(f"{o.name} ({o.chain})", o.address, o.chain, o.probability, o.lines)
            outcomes[outcomes.index(o)] = named
    for o in outcomes:
        if len(o.lines) > 1 and o.chain is not None:
            notes.add(
                f"lines {', '.join(map(str, o.lines))} all jump to {o.chain}: {o.name} gets the sum of their shares"
            )
    total = model.exact_sum(o.probability for o in outcomes)
    if total != 1:
        raise ModelError(f"the paths through chain {chain} sum to {float(total):.6g}, not 1")
    nth = [n for n in r.notes if "--mode nth" in n]
    deterministic = None
    if nth:
        deterministic = (
            f"chain {chain} uses -m statistic --mode nth ({nth[0].split(':', 1)[0]}): a deterministic per-rule "
            "counter, not independent random choices; its long-run shares are exact, but a simulation of "
            "independent draws would not be"
        )
    notes.update(n for n in r.notes if "--mode nth" not in n)
    return ChainSplitResult(
        chain=chain, outcomes=tuple(outcomes), notes=tuple(sorted(notes)), deterministic=deterministic
    )
