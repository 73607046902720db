"""kube-proxy's iptables mode: reading its services from a dump, and writing its nat table.

The reader follows the layout of kubernetes ``pkg/proxy/iptables/proxier.go``
(``KUBE-SERVICES`` -> ``KUBE-SVC-``/``KUBE-SVL-`` cascades of ``-m statistic
--mode random`` rules -> one ``KUBE-SEP-`` chain per endpoint with its DNAT);
:func:`kube_proxy_iptables_save` writes that layout as ``iptables-save``
prints it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from meshstat import model
from meshstat.errors import InvalidArgument
from meshstat.kubeproxy.service import EndpointInfo, ServiceInfo, kube_chain_hash
from meshstat.netfilter.trace import _join
from meshstat.parsers.netfilter import Chain, Match, Rule, Ruleset

__all__ = ["kube_proxy_iptables_save"]


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
        shares, shares_exact = stage.expected_shares()
        out = []
        for (addr, sep, k, line), share in zip(eps, shares, strict=False):
            h = None
            if name is not None and ":" in addr:
                proto = self.sep_proto(sep)
                if proto:
                    h = sep == "KUBE-SEP-" + kube_chain_hash(name, proto, addr)
            out.append(EndpointInfo(addr, sep, share, k, (), line, h, shares_exact))
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
