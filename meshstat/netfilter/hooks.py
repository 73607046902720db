"""The base chains a packet crosses, hook by hook, in the kernel's order.

A locally generated packet crosses ``OUTPUT`` and then ``POSTROUTING``; one
that arrives on an interface crosses ``PREROUTING`` and then, after the routing
decision on its (possibly DNATed) destination, ``INPUT`` when that address is
local or ``FORWARD`` and ``POSTROUTING`` when it is not. A locally generated
packet to a local address comes back in through the loopback device:
``PREROUTING`` and ``INPUT`` again, where the nat table is no longer consulted
(the connection's address translation was set up on the way out).

At each hook the iptables tables run in the order of their priorities
(kernel ``include/uapi/linux/netfilter_ipv4.h: nf_ip_hook_priorities``:
raw -300, mangle -150, nat -100 as destination NAT, filter 0, security 50,
nat 100 as source NAT), which gives the table order of :data:`HOOK_TABLES`
(``net/ipv4/netfilter/iptable_{raw,mangle,nat,filter,security}.c`` register
the hooks each table has). nft base chains are ordered by their ``priority``.

:func:`plan` lists the segments of a walk; :func:`base_chains` the base chains
of one hook. The tracer (:mod:`meshstat.netfilter.tracer`) follows them and
makes the routing decisions.
"""

from __future__ import annotations

from meshstat.parsers.netfilter import Chain, Ruleset, Table

__all__ = ["HOOKS", "HOOK_TABLES", "IPTABLES_TABLES", "base_chains", "effective", "plan"]

#: The netfilter hooks of the IPv4/IPv6 families, in the names nft uses.
HOOKS = ("prerouting", "input", "forward", "output", "postrouting")

#: iptables tables in the order they run at each hook (priority order).
HOOK_TABLES: dict[str, tuple[str, ...]] = {
    "prerouting": ("raw", "mangle", "nat"),
    "input": ("mangle", "filter", "security", "nat"),
    "forward": ("mangle", "filter", "security"),
    "output": ("raw", "mangle", "nat", "filter", "security"),
    "postrouting": ("mangle", "nat"),
}

#: Every iptables table meshstat reads.
IPTABLES_TABLES = ("raw", "mangle", "nat", "filter", "security")

#: Plan markers: the routing decision after ``PREROUTING`` (INPUT or FORWARD),
#: and the loopback return of a locally generated packet to a local address.
ROUTE = "route"
LOOPBACK = "loopback"


def base_chains(
    rs: Ruleset, hook: str, family: str, tables: tuple[str, ...] | None, *, skip_nat: bool = False
) -> list[tuple[Table, Chain]]:
    """The base chains of ``hook`` in the order the kernel runs them.

    Parameters
    ----------
    rs : Ruleset
    hook : str
        One of :data:`HOOKS`.
    family : {"ip", "ip6"}
    tables : tuple of str, optional
        iptables: the tables to walk (default all); nft: the base-chain types
        (``filter``, ``nat``, ``route``; default all).
    skip_nat : bool
        Leave the nat table (nft: ``type nat`` chains) out: the loopback return
        of a connection whose translation is already set up.
    """
    out: list[tuple[int, Table, Chain]] = []
    if rs.dialect == "iptables":
        for pos, name in enumerate(HOOK_TABLES[hook]):
            if (tables is not None and name not in tables) or (skip_nat and name == "nat"):
                continue
            t = rs.tables.get((family, name))
            if t is None:
                continue
            c = t.chains.get(hook.upper())
            if c is not None and c.builtin:
                out.append((pos, t, c))
    else:
        fams = ("ip", "inet") if family == "ip" else ("ip6", "inet")
        for (fam, _name), t in rs.tables.items():
            if fam not in fams:
                continue
            for c in t.chains.values():
                kind = c.chain_type or "filter"
                if c.hook != hook or (tables is not None and kind not in tables) or (skip_nat and kind == "nat"):
                    continue
                out.append((c.priority or 0, t, c))
    out.sort(key=lambda x: x[0])
    return [(t, c) for _, t, c in out]


def effective(chains: list[tuple[Table, Chain]]) -> bool:
    """Whether walking ``chains`` can change anything: a rule, or a DROP policy."""
    return any(c.rules or (c.policy or "ACCEPT").upper() == "DROP" for _t, c in chains)


def plan(hook: str) -> tuple[tuple[str, ...], ...]:
    """The segments of a walk that starts at ``hook`` (``"output"`` or ``"prerouting"``).

    Each segment is a hook name or a marker: :data:`ROUTE` (INPUT, or FORWARD
    then POSTROUTING, by the destination) and :data:`LOOPBACK` (back in through
    PREROUTING and INPUT without nat when the destination is local).
    """
    if hook == "output":
        return (("output",), ("postrouting",), (LOOPBACK,))
    return (("prerouting",), (ROUTE,))
