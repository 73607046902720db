"""kube-proxy's iptables mode: reading its services from a dump, and writing its nat table.

The reader follows the layout of kubernetes ``pkg/proxy/iptables/proxier.go``
(``syncProxyRules``, ``writeServiceToEndpointRules``): ``KUBE-SERVICES`` ->
``KUBE-SVC-``/``KUBE-SVL-`` cascades of ``-m statistic --mode random`` rules ->
one ``KUBE-SEP-`` chain per endpoint with its DNAT; ``KUBE-EXT-`` and
``KUBE-FW-`` chains for external traffic and load-balancer source ranges.
What kube-proxy does not route is in the filter table: a service without
endpoints gets a REJECT rule (``"%s has no endpoints"``) in filter
``KUBE-SERVICES`` and ``KUBE-EXTERNAL-SERVICES`` and no nat chain at all; one
with ``internalTrafficPolicy: Local`` and no endpoint on this node a DROP rule
(``"%s has no local endpoints"``) instead of its cluster IP rule; one with
``externalTrafficPolicy: Local`` and none a DROP rule for its external
addresses; load-balancer traffic from outside the source ranges is dropped
by ``KUBE-PROXY-FIREWALL`` (``"%s traffic not accepted by KUBE-FW-..."``). Such
services are listed with their state (:attr:`ServiceInfo.state`), as are the
services of a partial sync whose chains the input jumps to without defining
them, and chains no rule reaches any more.

A service chain of kube-proxy's own shape (statistic rules and affinity rules
jumping to distinct endpoint chains, the masquerade rule) is read directly as
a :class:`meshstat.model.Cascade` (fast: a 10,000-service dump is read in
seconds). Any other shape (a RETURN, two statistic matches in a rule,
``--mode nth``, two rules to one endpoint chain, another target) is read by
the packet tracer (:func:`meshstat.netfilter.split.chain_split`), the one
interpretation of a chain meshstat has, or refused with the reason.
:func:`kube_proxy_iptables_save` writes kube-proxy's layout as
``iptables-save`` prints it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from meshstat import model
from meshstat.errors import InvalidArgument, ModelError
from meshstat.kubeproxy.iptables_filter import (
    dst_port_proto,
    filter_rules,
    fw_source_ranges,
    svc_from_comment,
)
from meshstat.kubeproxy.service import EndpointInfo, ServiceInfo, kube_chain_hash
from meshstat.netfilter.split import chain_split
from meshstat.netfilter.tracer import Packet, host_port
from meshstat.parsers.netfilter import Chain, Match, Rule, Ruleset, Table
from meshstat.parsers.netfilter.rules import missing_chains

__all__ = [
    "IptablesServices",
    "NodeServicePort",
    "first_match",
    "kube_proxy_iptables_save",
    "kube_proxy_node_iptables_save",
]


def first_match(rule: Rule, kind: str) -> Match | None:
    """The rule's first match of ``kind`` (``"recent"``, ``"random"``, ...), or ``None``."""
    for m in rule.matches:
        if m.kind == kind:
            return m
    return None


class IptablesServices:
    """Reads kube-proxy's iptables layout (``pkg/proxy/iptables/proxier.go``) of one address family.

    :meth:`info` reads one service's chains into a :class:`ServiceInfo`;
    :func:`meshstat.kubeproxy.lookup.services` reads them all.
    """

    def __init__(self, rs: Ruleset, family: str) -> None:
        self.rs = rs
        self.family = family
        self.nat = rs.tables.get((family, "nat"))
        self.filter = rs.tables.get((family, "filter"))
        self.by_name = filter_rules(rs, family)
        if self.nat is None:
            if not self.by_name:
                raise InvalidArgument(
                    f"{rs.source}: the dump has no nat table (expected a '*nat' block with kube-proxy's chains)"
                )
            self.nat = Table(name="nat", family=family)  # filter only: services kube-proxy does not route

    # ------------------------------------------------------------- service chains

    def mark_only(self, name: str) -> bool:
        """Whether every rule of chain ``name`` only sets a mark: jumping there changes no split.

        kube-proxy's own ``KUBE-MARK-MASQ`` counts where a listing or a paste lacks it
        (a placeholder rule) or a partial input does not define it: it only ever sets
        the masquerade mark (``proxier.go``). Memoised per ruleset.
        """
        memo = self.rs.cache.setdefault(f"kube-proxy-mark-only:{self.family}", {})
        hit = memo.get(name)
        if hit is None:
            ch = self.nat.chains.get(name)
            if self._unseen(name):
                hit = name == "KUBE-MARK-MASQ"
            else:
                hit = all(r.target.kind == "mark" for r in ch.rules)  # type: ignore[union-attr]
            memo[name] = hit
        return hit

    def _unseen(self, name: str) -> bool:
        """A chain the input does not show (a listing's or paste's placeholder, or not defined): its rules
        are kube-proxy's, as far as anything here can tell."""
        ch = self.nat.chains.get(name)
        return ch is None or all(
            r.target.kind == "opaque" and str(r.target.value[0]).endswith("(not listed)") for r in ch.rules
        )

    def irregular(self, chain: Chain) -> str | None:
        """Why ``chain`` is not of kube-proxy's own shape (None: it is, and is read as a cascade).

        kube-proxy's shape: every rule is the masquerade jump (to a mark-only
        chain, any matches), an affinity rule (``-m recent --rcheck|--update``)
        or a cascade rule (at most one ``-m statistic --mode random``, nothing
        else but comments) that jumps to an endpoint chain the dump defines,
        each endpoint chain once.
        """
        seen: dict[str, int] = {}
        for r in chain.rules:
            t = r.target
            sep = t.kind in ("jump", "goto") and t.value.startswith("KUBE-SEP-")
            if not sep and t.kind == "jump" and self.mark_only(t.value):
                continue
            if not sep:
                return f"line {r.line}: {t.text or t.kind} (not a jump to an endpoint chain)"
            if self.sep(t.value)[0] is None and not self._unseen(t.value):
                return f"line {r.line}: {t.value} has no DNAT rule"
            rnd = rec = 0
            for m in r.matches:
                if m.kind == "always":
                    continue
                if m.kind == "random":
                    rnd += 1
                elif m.kind == "recent" and not m.negated and m.value["command"] in ("rcheck", "update"):
                    rec += 1
                else:
                    return f"line {r.line}: {m.text} on an endpoint rule"
            if rec:
                if rnd or rec > 1:
                    return f"line {r.line}: an affinity rule with other conditions"
                continue
            if rnd > 1:
                return f"line {r.line}: {rnd} statistic matches in one rule"
            if t.value in seen:
                return f"lines {seen[t.value]} and {r.line} both jump to {t.value}"
            seen[t.value] = r.line
            if not rnd:
                return None  # unconditional: what follows is never reached
        return None

    def chain_endpoints(
        self, chain: Chain, packet: tuple[str | None, int | None, str | None] = (None, None, None)
    ) -> tuple[tuple[EndpointInfo, ...], Any, int | None, str | None, tuple[str, ...], str | None]:
        """Endpoints of a KUBE-SVC/SVL chain.

        Returns (endpoints, stage, affinity seconds, service name, notes,
        unmodelled reason). ``packet`` is the (cluster IP, port, protocol) the
        tracer enters the chain with when the chain is not of kube-proxy's shape.
        """
        affinity: int | None = None
        name: str | None = None
        for r in chain.rules:
            if name is None:
                name = svc_from_comment(r.comment)[0]
            rec = first_match(r, "recent")
            if rec is not None and rec.value["command"] in ("rcheck", "update") and rec.value["seconds"] is not None:
                affinity = rec.value["seconds"] if affinity is None else affinity
        why = self.irregular(chain)
        if why is None:
            eps, stage = self._cascade(chain, name)
            return eps, stage, affinity, name, (), None
        eps, stage, notes, unmodelled = self._traced(chain, name, packet, why)
        return eps, stage, affinity, name, notes, unmodelled

    def _cascade(self, chain: Chain, name: str | None) -> tuple[tuple[EndpointInfo, ...], Any]:
        """The fast path: kube-proxy's cascade read from its thresholds."""
        ks: list[int] = []
        children: list[model.Backend] = []
        eps: list[tuple[str, str, int | None, int]] = []
        unconditional = False
        for r in chain.rules:
            t = r.target
            if not t.value.startswith("KUBE-SEP-") or first_match(r, "recent") is not None:
                continue  # the masquerade jump (irregular() checked it marks only), affinity rules
            rnd = first_match(r, "random")
            addr = self.sep(t.value)[0] or t.value
            if rnd is None:
                eps.append((addr, t.value, None, r.line))
                unconditional = True
                break
            k = rnd.value if not rnd.negated else (1 << 31) - rnd.value
            eps.append((addr, t.value, k, r.line))
            ks.append(k)
        if not eps:
            return (), None
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
            out.append(EndpointInfo(addr, sep, share, k, (), line, self._sep_hash_ok(name, sep, addr), shares_exact))
        return tuple(out), stage

    def _sep_hash_ok(self, name: str | None, sep: str | None, addr: str) -> bool | None:
        if name is None or sep is None or ":" not in addr:
            return None
        proto = self.sep(sep)[1]
        return sep == "KUBE-SEP-" + kube_chain_hash(name, proto, addr) if proto else None

    def _traced(
        self, chain: Chain, name: str | None, packet: tuple[str | None, int | None, str | None], why: str
    ) -> tuple[tuple[EndpointInfo, ...], Any, tuple[str, ...], str | None]:
        """The slow path: the chain as the tracer runs it: (endpoints, stage, notes, unmodelled reason)."""
        ip, port, proto = packet
        pkt = Packet(dst=ip if ip and "/" not in ip else "0.0.0.0", dport=port, proto=proto or "tcp")
        prov = model.Provenance(self.rs.source, chain.rules[0].line if chain.rules else chain.line)
        try:
            res = chain_split(self.rs, chain.name, pkt)
        except ModelError as exc:
            return (), None, (f"chain {chain.name} is not kube-proxy's cascade ({why})",), str(exc)
        eps = tuple(
            EndpointInfo(o.name, o.chain, o.probability, None, (), o.lines[0] if o.lines else None,
                         self._sep_hash_ok(name, o.chain, o.address) if o.address else None)
            for o in res.outcomes
        )  # fmt: skip
        note = (
            f"chain {chain.name} is not kube-proxy's cascade ({why}): its split is read as the kernel runs it "
            "(the packet tracer)"
        )
        stage = None if res.deterministic else res.stage(provenance=prov)
        return eps, stage, (note, *res.notes), res.deterministic

    def sep(self, sep: str) -> tuple[str | None, str | None]:
        """(``ip:port`` of the DNAT, its protocol) of an endpoint chain; (None, None) without one. Memoised."""
        memo = self.rs.cache.setdefault(f"kube-proxy-sep:{self.family}", {})
        hit = memo.get(sep)
        if hit is None:
            hit = (None, None)
            ch = self.nat.chains.get(sep)
            for r in ch.rules if ch is not None else ():
                if r.target.kind == "dnat":
                    addr, ports, text = r.target.value
                    hit = (host_port(addr, ports[0]) if addr and ports else text, dst_port_proto(r)[2])
                    break
            memo[sep] = hit
        return hit

    # ------------------------------------------------------------- one service

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
        reached = False
        for chain_name, is_local in (("KUBE-SVC-" + suffix, False), ("KUBE-SVL-" + suffix, True)):
            for r in nat.referrers.get(chain_name, ()):
                reached = True
                if r.chain == "KUBE-SERVICES":
                    ip, p, pr = dst_port_proto(r)
                    cluster_ip, port, proto = ip, p, pr
                    line = r.line
                    internal = "Local" if is_local else "Cluster"
                    nm, _kind = svc_from_comment(r.comment)
                    name = name or nm
        for tgt in (ext_name, fw_name):
            for r in nat.referrers.get(tgt, ()):
                reached = True
                ip, p, pr = dst_port_proto(r)
                nm, _kind = svc_from_comment(r.comment)
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
        if name is None:  # no comment on the way in: the chains' own comments
            for ch in (svc, svl):
                for r in ch.rules if ch is not None else ():
                    name = svc_from_comment(r.comment)[0]
                    if name:
                        break
                if name:
                    break
        filt = self.by_name.get(name, []) if name else []
        state = None
        notes: list[str] = []
        for f in filt:
            proto = proto or f.proto
            if f.chain == "KUBE-SERVICES" and f.kind == "has no local endpoints":
                state, internal = "dropped", "Local"
                cluster_ip, port, line = cluster_ip or f.ip, port or f.port, line or f.line
            elif f.chain == "KUBE-EXTERNAL-SERVICES" and f.kind == "has no local endpoints":
                external = "Local"
        if proto is None:
            for ch in (svc, svl):
                for r in ch.rules if ch is not None else ():
                    if r.target.kind in ("jump", "goto") and r.target.value.startswith("KUBE-SEP-"):
                        proto = self.sep(r.target.value)[1]
                        if proto:
                            break
                if proto:
                    break
        proto = proto or hint_proto
        packet = (cluster_ip, port, proto)
        eps: tuple[EndpointInfo, ...] = ()
        leps: tuple[EndpointInfo, ...] = ()
        stage = lstage = None
        affinity = None
        unmodelled = None
        if svc is not None:
            eps, stage, affinity, nm, more, unmodelled = self.chain_endpoints(svc, packet)
            name = name or nm
            notes += more
        if svl is not None:
            leps, lstage, aff2, nm, more, why = self.chain_endpoints(svl, packet)
            affinity = affinity if affinity is not None else aff2
            name = name or nm
            notes += [n for n in more if n not in notes]
            unmodelled = unmodelled or why
        hash_ok = None
        if name is not None and proto is not None:
            hash_ok = kube_chain_hash(name, proto) == suffix
        if internal is None:
            internal = "Local" if svl is not None and svc is None else "Cluster"
        if not reached and state is None:
            state = "stale"
            notes.append(
                f"no rule reaches {(svc or svl).name}: a chain kube-proxy left behind (it deletes stale chains "  # type: ignore[union-attr]
                "later in large clusters), not a service that receives traffic"
            )
        elif state == "dropped" and stage is not None:
            notes.append(
                "its cluster IP traffic is dropped (no local endpoint); this chain serves external traffic"
            )
        ext_state, ranges = self._external(name, fw_name, external_ips, node_ports)
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
            state=state,
            external_state=ext_state,
            source_ranges=ranges,
            notes=tuple(notes),
            unmodelled=unmodelled,
        )

    def _external(
        self, name: str | None, fw_name: str, external_ips: list[str], node_ports: list[int]
    ) -> tuple[str | None, tuple[str, ...]]:
        """State of external traffic and the load-balancer source ranges (adds filter-only addresses)."""
        state = "routed" if external_ips or node_ports or fw_name in self.nat.chains else None
        for f in self.by_name.get(name, []) if name else []:
            if f.chain != "KUBE-EXTERNAL-SERVICES":
                continue
            state = "dropped" if f.target == "drop" else "rejected"
            if f.nodeport and f.port is not None and f.port not in node_ports:
                node_ports.append(f.port)
            elif f.ip and f"{f.ip}:{f.port}" not in external_ips:
                external_ips.append(f"{f.ip}:{f.port}")
        return state, fw_source_ranges(self.nat.chains.get(fw_name))

    def suffixes(self) -> list[str]:
        seen: dict[str, None] = {}
        for name in self.nat.chains:
            if name.startswith(("KUBE-SVC-", "KUBE-SVL-")):
                seen.setdefault(name[9:], None)
        return list(seen)

    # ------------------------------------------------------------- services without chains here

    def rejected(self) -> list[ServiceInfo]:
        """Services kube-proxy does not route: only filter rules name them (REJECT or DROP)."""
        out = []
        for name, rules in self.by_name.items():
            internal = [f for f in rules if f.chain == "KUBE-SERVICES"]
            if not internal:
                continue
            f = internal[0]
            rejected = f.kind == "has no endpoints"
            ext: list[str] = []
            nps: list[int] = []
            ext_state, ranges = self._external(name, "", ext, nps)
            out.append(
                ServiceInfo(
                    name=name, protocol=f.proto or "?", cluster_ip=f.ip, port=f.port, cluster_chain=None,
                    local_chain=None, endpoints=(), rejected=rejected, source=self.rs.source, line=f.line,
                    hash_ok=None, internal_policy=None if rejected else "Local",
                    external_policy="Local" if ext_state == "dropped" else None,
                    state="rejected" if rejected else "dropped", external_state=ext_state,
                    external_ips=tuple(ext), node_ports=tuple(sorted(nps)), source_ranges=ranges,
                    notes=(
                        f"line {f.line}: kube-proxy {'rejects' if rejected else 'drops'} traffic to "
                        f"{f.ip}:{f.port} ({f.kind})",
                    ),
                )  # fmt: skip
            )
        return out

    def partial(self) -> list[ServiceInfo]:
        """Services of a partial sync: kube-proxy's rules jump to their chains, which the input does not define."""
        acc: dict[str, dict[str, Any]] = {}
        for target in missing_chains(self.nat):
            if not target.startswith(("KUBE-SVC-", "KUBE-SVL-", "KUBE-EXT-", "KUBE-FW-")):
                continue
            suffix = target.rsplit("-", 1)[1]
            if "KUBE-SVC-" + suffix in self.nat.chains or "KUBE-SVL-" + suffix in self.nat.chains:
                continue  # read with its chains
            for r in self.nat.referrers.get(target, ()):
                name, kind = svc_from_comment(r.comment)
                ip, p, pr = dst_port_proto(r)
                a = acc.setdefault(name or target, {
                    "proto": None, "ip": None, "port": None, "svc": None, "svl": None, "ext": [], "np": [],
                    "line": r.line, "miss": [],
                })  # fmt: skip
                a["proto"] = a["proto"] or pr
                a["miss"].append(target)
                if r.chain == "KUBE-SERVICES" and kind == "cluster IP":
                    a["ip"], a["port"], a["line"] = ip, p, r.line
                elif r.chain == "KUBE-SERVICES" and ip:
                    a["ext"].append(f"{ip}:{p}")
                elif r.chain == "KUBE-NODEPORTS" and p is not None:
                    a["np"].append(p)
                if target.startswith("KUBE-SVC-"):
                    a["svc"] = target
                elif target.startswith("KUBE-SVL-"):
                    a["svl"] = target
        out = []
        for name, a in acc.items():
            missing = ", ".join(dict.fromkeys(a["miss"]))
            out.append(
                ServiceInfo(
                    name=name, protocol=a["proto"] or "?", cluster_ip=a["ip"], port=a["port"],
                    cluster_chain=a["svc"] or ("KUBE-SVC-" + a["miss"][0].rsplit("-", 1)[1]),
                    local_chain=a["svl"], endpoints=(), internal_policy="Local" if a["svl"] else "Cluster",
                    external_ips=tuple(a["ext"]), node_ports=tuple(sorted(set(a["np"]))),
                    source=self.rs.source, line=a["line"], hash_ok=None,
                    state="partial" if a["ip"] is not None else None,
                    external_state="partial" if a["ext"] or a["np"] else None,
                    notes=(
                        f"{missing} not in this input: kube-proxy's partial sync writes only the chains that "
                        "changed; an earlier sync defined them",
                    ),
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
        rules += _endpoint_jumps(svc, name, proto, eps, legacy=legacy)
        for ep in eps:
            sep_chains.update(_sep_chain(name, proto, ep))
        svc_chains[svc] = rules
    svc_rules.append(_NODEPORTS_LAST)
    return _format_nat({"KUBE-SERVICES": svc_rules, **sep_chains, **svc_chains}, extra_chains=extra_chains,
                       pre_rules=pre_rules, extra_rules=extra_rules, header=header)


def _endpoint_jumps(chain: str, name: str, proto: str, eps: Sequence[str], *, legacy: bool = False) -> list[str]:
    """kube-proxy's probability cascade from ``chain`` to each endpoint's KUBE-SEP chain (the last unconditional)."""
    probs = model.kube_proxy_probabilities(len(eps), legacy=legacy) if eps else ()
    rules = []
    for i, ep in enumerate(eps):
        stat = ""
        if i < len(eps) - 1:
            k = model.probability_to_threshold(probs[i])
            stat = f" -m statistic --mode random --probability {model.threshold_to_decimal(k)}"
        sep = "KUBE-SEP-" + kube_chain_hash(name, proto, ep)
        rules.append(f'-A {chain} -m comment --comment "{name} -> {ep}"{stat} -j {sep}')
    return rules


def _sep_chain(name: str, proto: str, ep: str) -> dict[str, list[str]]:
    """One endpoint's KUBE-SEP chain: mark hairpin traffic for masquerade, DNAT to ``ep``."""
    sep = "KUBE-SEP-" + kube_chain_hash(name, proto, ep)
    ip = ep.rsplit(":", 1)[0].strip("[]")
    return {sep: [
        f'-A {sep} -s {ip}/32 -m comment --comment "{name}" -j KUBE-MARK-MASQ',
        f'-A {sep} -p {proto} -m comment --comment "{name}" -m {proto} -j DNAT --to-destination {ep}',
    ]}


_NODEPORTS_LAST = (
    '-A KUBE-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: this must be the last '
    'rule in this chain" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS'
)


def _format_nat(
    chains: dict[str, list[str]],
    *,
    extra_chains: Iterable[str] = (),
    pre_rules: dict[str, Iterable[str]] | None = None,
    extra_rules: Iterable[str] = (),
    header: bool = True,
    filter_rules: dict[str, list[str]] | None = None,
) -> str:
    """kube-proxy's service chains with its fixed chains, printed as ``iptables-save`` does."""
    user = {
        "KUBE-MARK-MASQ": ["-A KUBE-MARK-MASQ -j MARK --set-xmark 0x4000/0x4000"],
        "KUBE-NODEPORTS": [],
        "KUBE-POSTROUTING": [
            "-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN",
            "-A KUBE-POSTROUTING -j MARK --set-xmark 0x4000/0x0",
            '-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE',
        ],
    }
    for c, rules in chains.items():
        user[c] = user.get(c, []) + list(rules)
    for c in extra_chains:
        user.setdefault(c, [])
    pre = pre_rules or {}
    out = []
    if header:
        out.append("# Generated by iptables-save v1.8.9 (nf_tables) (meshstat.netfilter.kube_proxy_iptables_save)")
    if filter_rules is not None:
        # kubernetes pkg/proxy/iptables/proxier.go: syncProxyRules (the filter table's jumps, iptablesJumpChains)
        fchains = {"KUBE-EXTERNAL-SERVICES": [], "KUBE-NODEPORTS": [], "KUBE-SERVICES": []}
        for c, rules in filter_rules.items():
            fchains[c] = fchains.get(c, []) + list(rules)
        out.append("*filter")
        out += [f":{c} ACCEPT [0:0]" for c in ("INPUT", "FORWARD", "OUTPUT")]
        out += [f":{c} - [0:0]" for c in sorted(fchains)]
        new = "-m conntrack --ctstate NEW"
        out += [
            f'-A INPUT {new} -m comment --comment "kubernetes load balancer firewall" -j KUBE-EXTERNAL-SERVICES',
            '-A INPUT -m comment --comment "kubernetes health check service ports" -j KUBE-NODEPORTS',
            f'-A FORWARD {new} -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
            f'-A FORWARD {new} -m comment --comment "kubernetes externally-visible service portals" '
            "-j KUBE-EXTERNAL-SERVICES",
            f'-A OUTPUT {new} -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
        ]
        for c in sorted(fchains):
            out += fchains[c]
        out.append("COMMIT")
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


@dataclass(frozen=True, slots=True)
class NodeServicePort:
    """One service port as kube-proxy on one node sees it, after its topology filtering.

    ``cluster_endpoints`` / ``local_endpoints`` are the ``"ip:port"`` lists of kubernetes
    ``pkg/proxy/topology.go: CategorizeEndpoints`` (``None``: the service port does not use that policy,
    ``ServicePort.UsesClusterEndpoints`` / ``UsesLocalEndpoints``); ``has_endpoints`` is its fourth result
    (some usable endpoint anywhere in the cluster).
    """

    name: str
    protocol: str
    cluster_ip: str
    port: int
    cluster_endpoints: tuple[str, ...] | None
    local_endpoints: tuple[str, ...] | None = None
    has_endpoints: bool = True
    internal_local: bool = False
    external_local: bool = False
    node_port: int | None = None
    load_balancer_ips: tuple[str, ...] = ()


def kube_proxy_node_iptables_save(
    ports: Iterable[NodeServicePort],
    *,
    cluster_cidr: str = "10.244.0.0/16",
    header: bool = True,
) -> str:
    """The filter and nat tables kube-proxy (iptables mode) writes on one node, as ``iptables-save`` prints them.

    Follows kubernetes ``pkg/proxy/iptables/proxier.go: syncProxyRules`` rule by rule:

    * internal traffic: ``internalTrafficChain`` is ``KUBE-SVL-`` for ``internalTrafficPolicy: Local``, else
      ``KUBE-SVC-``; the ``"<svc> cluster IP"`` jump in nat ``KUBE-SERVICES`` when ``hasInternalEndpoints``,
      otherwise a filter ``KUBE-SERVICES`` rule: ``REJECT`` (``"has no endpoints"``) or ``DROP``
      (``"has no local endpoints"``); the off-cluster masquerade rule first in ``internalTrafficChain``
      (``localDetector.IfNotLocal``, here ``! -s CLUSTER_CIDR``);
    * external traffic (``usesExternalTrafficChain``: a nodePort or load-balancer IP and some endpoint):
      ``KUBE-NODEPORTS`` / ``"<svc> loadbalancer IP"`` jumps to ``KUBE-EXT-``, which masquerades and jumps to
      ``KUBE-SVC-`` for ``externalTrafficPolicy: Cluster``; for ``Local`` it sends pod traffic
      (``localDetector.IfLocal``) and ``--src-type LOCAL`` traffic to ``KUBE-SVC-`` and the rest to
      ``KUBE-SVL-`` (``hasExternalEndpoints``), with filter ``KUBE-EXTERNAL-SERVICES`` ``DROP`` rules when the
      node has no local endpoint;
    * ``KUBE-SVC-`` over the cluster endpoints and ``KUBE-SVL-`` over the local ones, each through
      ``writeServiceToEndpointRules`` (the ``--probability 1/(n-i)`` cascade over the endpoints sorted as
      ``"ip:port"`` strings, as ``pkg/proxy/endpointslicecache.go`` hands them over), then one
      ``KUBE-SEP-`` chain per locally reachable endpoint (hairpin masquerade, DNAT).
    """
    nat: dict[str, list[str]] = {"KUBE-SERVICES": [], "KUBE-NODEPORTS": []}
    flt: dict[str, list[str]] = {"KUBE-SERVICES": [], "KUBE-EXTERNAL-SERVICES": [], "KUBE-NODEPORTS": []}
    for sp in ports:
        name, proto = sp.name, sp.protocol.lower()
        svc = "KUBE-SVC-" + kube_chain_hash(name, proto)
        svl = "KUBE-SVL-" + kube_chain_hash(name, proto)
        ext = "KUBE-EXT-" + kube_chain_hash(name, proto)
        cluster_eps = sorted(sp.cluster_endpoints or ())
        local_eps = sorted(sp.local_endpoints or ())
        has_eps = sp.has_endpoints  # hasEndpoints: a usable endpoint on any node
        internal_chain, has_internal = (svl, bool(local_eps)) if sp.internal_local else (svc, has_eps)
        external_policy_chain, has_external = (svl, bool(local_eps)) if sp.external_local else (svc, has_eps)
        externally = sp.node_port is not None or bool(sp.load_balancer_ips)
        uses_ext = has_eps and externally
        dst = f"-d {sp.cluster_ip}/32 -p {proto}"
        cip = f'-m comment --comment "{name} cluster IP" -m {proto} --dport {sp.port}'
        if not has_eps:
            ftarget, fcomment = "REJECT --reject-with icmp-port-unreachable", f"{name} has no endpoints"
        else:
            ftarget, fcomment = "DROP", f"{name} has no local endpoints"
        if has_internal:
            nat["KUBE-SERVICES"].append(f"-A KUBE-SERVICES {dst} {cip} -j {internal_chain}")
            nat.setdefault(internal_chain, []).append(
                f"-A {internal_chain} ! -s {cluster_cidr} {dst} {cip} -j KUBE-MARK-MASQ"
            )
        else:
            flt["KUBE-SERVICES"].append(
                f'-A KUBE-SERVICES {dst} -m comment --comment "{fcomment}" -m {proto} --dport {sp.port} -j {ftarget}'
            )
        for lb in sp.load_balancer_ips:
            if has_eps:
                nat["KUBE-SERVICES"].append(
                    f'-A KUBE-SERVICES -d {lb}/32 -p {proto} -m comment --comment "{name} loadbalancer IP" '
                    f"-m {proto} --dport {sp.port} -j {ext}"
                )
            if not has_external:
                flt["KUBE-EXTERNAL-SERVICES"].append(
                    f'-A KUBE-EXTERNAL-SERVICES -d {lb}/32 -p {proto} -m comment --comment "{fcomment}" '
                    f"-m {proto} --dport {sp.port} -j {ftarget}"
                )
        if sp.node_port is not None:
            if has_eps:
                nat["KUBE-NODEPORTS"].append(
                    f'-A KUBE-NODEPORTS -p {proto} -m comment --comment "{name}" -m {proto} --dport {sp.node_port} '
                    f"-j {ext}"
                )
            if not has_external:
                flt["KUBE-EXTERNAL-SERVICES"].append(
                    f'-A KUBE-EXTERNAL-SERVICES -p {proto} -m comment --comment "{fcomment}" -m addrtype '
                    f"--dst-type LOCAL -m {proto} --dport {sp.node_port} -j {ftarget}"
                )
        if uses_ext:
            rules = nat.setdefault(ext, [])
            if not sp.external_local:
                rules.append(f'-A {ext} -m comment --comment "masquerade traffic for {name} external destinations" '
                             "-j KUBE-MARK-MASQ")  # fmt: skip
            else:
                rules += [
                    f'-A {ext} -s {cluster_cidr} -m comment --comment "pod traffic for {name} external destinations" '
                    f"-j {svc}",
                    f'-A {ext} -m comment --comment "masquerade LOCAL traffic for {name} external destinations" '
                    "-m addrtype --src-type LOCAL -j KUBE-MARK-MASQ",
                    f'-A {ext} -m comment --comment "route LOCAL traffic for {name} external destinations" '
                    f"-m addrtype --src-type LOCAL -j {svc}",
                ]
            if has_external:
                rules.append(f"-A {ext} -j {external_policy_chain}")
        reachable: dict[str, None] = {}
        for chain, eps, used in ((svc, cluster_eps, sp.cluster_endpoints is not None),
                                 (svl, local_eps, sp.local_endpoints is not None)):  # fmt: skip
            if not used or not eps:
                continue
            nat.setdefault(chain, []).extend(_endpoint_jumps(chain, name, proto, eps))
            reachable.update(dict.fromkeys(eps))
        for ep in reachable:
            nat.update(_sep_chain(name, proto, ep))
    nat["KUBE-SERVICES"].append(_NODEPORTS_LAST)
    return _format_nat(nat, header=header, filter_rules=flt)
