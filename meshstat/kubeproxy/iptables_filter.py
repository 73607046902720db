"""kube-proxy's filter-table rules (iptables mode) by service, and its jumps from the built-in chains.

kubernetes ``pkg/proxy/iptables/proxier.go: syncProxyRules`` writes, for the
traffic it does not route, rules in the filter table whose comment names the
service port: ``"ns/svc:port has no endpoints"`` (REJECT, in ``KUBE-SERVICES``
for the cluster IP and ``KUBE-EXTERNAL-SERVICES`` for external IPs,
load-balancer IPs and node ports), ``"ns/svc:port has no local endpoints"``
(DROP, the same chains, for a Local traffic policy without an endpoint on this
node) and ``"ns/svc:port traffic not accepted by KUBE-FW-..."`` (DROP in
``KUBE-PROXY-FIREWALL``, load-balancer source ranges). :func:`filter_rules`
indexes them by service name.

kube-proxy installs its jumps from the built-in chains (``iptablesJumpChains``
in ``proxier.go``, and kubelet's ``KUBE-FIREWALL``) with ``iptables -I``, not
in the text it hands to ``iptables-restore``: a dump of that text (a full or a
partial sync) lacks them, and a trace would never reach kube-proxy's chains.
:func:`add_kube_proxy_jumps` adds them, in the order ``-I`` leaves them.
"""

from __future__ import annotations

from dataclasses import dataclass

from meshstat.parsers.netfilter import Chain, Rule, Ruleset, parse_iptables

__all__ = ["KUBE_PROXY_JUMPS", "FilterRule", "add_kube_proxy_jumps", "dst_port_proto", "filter_rules",
           "fw_source_ranges", "svc_from_comment"]  # fmt: skip

_SUFFIXES = (" cluster IP", " external IP", " loadbalancer IP", " has no endpoints", " has no local endpoints")
_FIREWALLED = " traffic not accepted by "


def svc_from_comment(c: str | None) -> tuple[str | None, str | None]:
    """``"ns/svc:p cluster IP"`` -> ``("ns/svc:p", "cluster IP")``; the kinds of kube-proxy's comments."""
    if not c:
        return None, None
    for suf in _SUFFIXES:
        if c.endswith(suf):
            return c[: -len(suf)], suf.strip()
    if _FIREWALLED in c:
        return c.split(_FIREWALLED, 1)[0], "traffic not accepted"
    if " -> " in c:
        return c.split(" -> ", 1)[0], "endpoint"
    if "/" in c and " " not in c:
        return c, None
    return None, None


@dataclass(frozen=True, slots=True)
class FilterRule:
    """A filter rule of kube-proxy's that names a service: what it drops or rejects."""

    name: str
    chain: str
    kind: str
    target: str
    ip: str | None
    port: int | None
    proto: str | None
    nodeport: bool
    line: int


def filter_rules(rs: Ruleset, family: str) -> dict[str, list[FilterRule]]:
    """Service name -> its DROP/REJECT rules in kube-proxy's filter chains (built once per ruleset)."""
    key = f"kube-proxy-filter:{family}"
    cached = rs.cache.get(key)
    if cached is not None:
        return cached
    out: dict[str, list[FilterRule]] = {}
    table = rs.tables.get((family, "filter"))
    for chain in ("KUBE-SERVICES", "KUBE-EXTERNAL-SERVICES", "KUBE-PROXY-FIREWALL"):
        ch = table.chains.get(chain) if table is not None else None
        for r in ch.rules if ch is not None else ():
            if r.target.kind not in ("drop", "reject"):
                continue
            name, kind = svc_from_comment(r.comment)
            if name is None or kind not in ("has no endpoints", "has no local endpoints", "traffic not accepted"):
                continue
            ip, port, proto = dst_port_proto(r)
            nodeport = any(m.kind == "addrtype" and m.value[0] == "dst" and not m.negated for m in r.matches)
            out.setdefault(name, []).append(
                FilterRule(name, chain, kind, r.target.kind, ip, port, proto, nodeport, r.line)
            )
    rs.cache[key] = out
    return out


def dst_port_proto(rule: Rule) -> tuple[str | None, int | None, str | None]:
    """A rule's destination (the address of a /32 or /128, else the CIDR), port and protocol matches.

    Negated matches are skipped; ``None`` where the rule has no such match.
    """
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


def fw_source_ranges(chain: Chain | None) -> tuple[str, ...]:
    """The ``-s`` ranges of a ``KUBE-FW-`` chain (``loadBalancerSourceRanges``, and the LB IPs themselves)."""
    out: list[str] = []
    for r in chain.rules if chain is not None else ():
        for m in r.matches:
            if m.kind == "src" and not m.negated:
                out += [n.text for n in m.value if n.text not in out]
    return tuple(out)


#: kube-proxy's (and kubelet's) jumps from the built-in chains, in the order they end up in:
#: ``(table, built-in chain, rule)``. kubernetes ``pkg/proxy/iptables/proxier.go: iptablesJumpChains``
#: and ``iptablesKubeletJumpChains``, each inserted at the top (``EnsureRule(Prepend)``), after
#: kubelet's ``KUBE-FIREWALL`` jumps.
KUBE_PROXY_JUMPS: tuple[tuple[str, str, str], ...] = (
    ("filter", "INPUT", '-m conntrack --ctstate NEW -m comment --comment "kubernetes load balancer firewall" '
                        "-j KUBE-PROXY-FIREWALL"),
    ("filter", "INPUT", '-m comment --comment "kubernetes health check service ports" -j KUBE-NODEPORTS'),
    ("filter", "INPUT", '-m conntrack --ctstate NEW -m comment --comment "kubernetes externally-visible service '
                        'portals" -j KUBE-EXTERNAL-SERVICES'),
    ("filter", "INPUT", "-j KUBE-FIREWALL"),
    ("filter", "FORWARD", '-m conntrack --ctstate NEW -m comment --comment "kubernetes load balancer firewall" '
                          "-j KUBE-PROXY-FIREWALL"),
    ("filter", "FORWARD", '-m comment --comment "kubernetes forwarding rules" -j KUBE-FORWARD'),
    ("filter", "FORWARD", '-m conntrack --ctstate NEW -m comment --comment "kubernetes service portals" '
                          "-j KUBE-SERVICES"),
    ("filter", "FORWARD", '-m conntrack --ctstate NEW -m comment --comment "kubernetes externally-visible service '
                          'portals" -j KUBE-EXTERNAL-SERVICES'),
    ("filter", "OUTPUT", '-m conntrack --ctstate NEW -m comment --comment "kubernetes load balancer firewall" '
                         "-j KUBE-PROXY-FIREWALL"),
    ("filter", "OUTPUT", '-m conntrack --ctstate NEW -m comment --comment "kubernetes service portals" '
                         "-j KUBE-SERVICES"),
    ("filter", "OUTPUT", "-j KUBE-FIREWALL"),
    ("nat", "PREROUTING", '-m comment --comment "kubernetes service portals" -j KUBE-SERVICES'),
    ("nat", "OUTPUT", '-m comment --comment "kubernetes service portals" -j KUBE-SERVICES'),
    ("nat", "POSTROUTING", '-m comment --comment "kubernetes postrouting rules" -j KUBE-POSTROUTING'),
)  # fmt: skip


def add_kube_proxy_jumps(rs: Ruleset) -> list[str]:
    """Add kube-proxy's jumps from the built-in chains where the dump is its ``iptables-restore`` text.

    Only to a built-in chain the dump does not declare (``iptables-save`` declares
    every one, and a jump it lacks is really absent) and only towards a chain the
    table defines and the built-in chain does not jump to yet. The rules get line
    0 (shown as ``assumed`` in traces). Returns the rules added, as ``-t TABLE -A
    CHAIN ...`` lines.
    """
    added: list[str] = []
    for family in sorted({f for f, _n in rs.tables}):
        for tname in ("filter", "nat"):
            table = rs.tables.get((family, tname))
            if table is None:
                continue
            todo = [
                (chain, body) for t, chain, body in KUBE_PROXY_JUMPS
                if t == tname and chain in table.chains and table.chains[chain].builtin
                and table.chains[chain].line is None and body.rsplit(" ", 1)[1] in table.chains
                and not any(r.target.kind in ("jump", "goto") and r.target.value == body.rsplit(" ", 1)[1]
                            for r in table.chains[chain].rules)
            ]  # fmt: skip
            if not todo:
                continue
            targets = sorted({body.rsplit(" ", 1)[1] for _c, body in todo})
            text = "*" + tname + "\n" + "".join(f":{t} - [0:0]\n" for t in targets)
            text += "".join(f"-A {chain} {body}\n" for chain, body in todo) + "COMMIT\n"
            snippet = parse_iptables(text, "kube-proxy's jumps", family=family).tables[(family, tname)]
            by_chain: dict[str, list[Rule]] = {}
            for chain, _body in todo:
                if chain in by_chain:
                    continue
                new = [
                    Rule(table=tname, chain=chain, line=0, source=rs.source, text=r.text, matches=r.matches,
                         target=r.target, comment=r.comment)
                    for r in snippet.chains[chain].rules
                ]  # fmt: skip
                by_chain[chain] = new
                table.chains[chain].rules[:0] = new
                table.chains[chain].dst_index = None
                for r in new:
                    table.referrers.setdefault(r.target.value, []).insert(0, r)
                    added.append(f"-t {tname} {r.text}")
    return added
