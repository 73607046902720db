"""kube-proxy's iptables-mode restore text for the service shapes a cluster has (test support).

A port of kubernetes ``pkg/proxy/iptables/proxier.go: syncProxyRules`` and
``writeServiceToEndpointRules`` (v1.28+ rule layout, as its
``proxier_test.go`` expects it) for the cases the tests need: ClusterIP,
``internalTrafficPolicy`` and ``externalTrafficPolicy`` Local, NodePort,
external IPs, LoadBalancer IPs with source ranges, services without
endpoints, session affinity off. The text is what kube-proxy hands to
``iptables-restore --noflush``: no built-in chain declarations and no jumps
from the built-in chains (kube-proxy adds those with ``iptables -I``;
:data:`JUMPS` are they, for loading the text into a kernel), the filter table
first, then nat; with ``changed`` it is a partial sync (only the named
services' nat chains, every ``KUBE-SERVICES`` rule).

Independent of :mod:`meshstat.kubeproxy` on purpose (the chain-name hash is
recomputed here with hashlib), so that the tests of the reader do not read
their own writer's assumptions.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

__all__ = ["JUMPS", "Endpoint", "Service", "chain_hash", "restore_text"]

CLUSTER_CIDR = "10.244.0.0/16"
MASQ = "0x4000"


def chain_hash(svc_port_name: str, proto: str, endpoint: str = "") -> str:
    """``base32(sha256(name + proto + endpoint))[:16]`` (``portProtoHash``, ``servicePortEndpointChainName``)."""
    return base64.b32encode(hashlib.sha256((svc_port_name + proto + endpoint).encode()).digest()).decode()[:16]


@dataclass(frozen=True)
class Endpoint:
    """A ready endpoint; ``local``: on this node."""

    ip: str
    port: int
    local: bool = True

    @property
    def text(self) -> str:
        return f"{self.ip}:{self.port}"


@dataclass(frozen=True)
class Service:
    """One service port and its endpoints."""

    namespace: str
    name: str
    cluster_ip: str
    port: int
    endpoints: Sequence[Endpoint] = ()
    port_name: str = ""
    protocol: str = "tcp"
    internal_policy: str = "Cluster"
    external_policy: str = "Cluster"
    node_port: int = 0
    external_ips: Sequence[str] = ()
    lb_ips: Sequence[str] = ()
    source_ranges: Sequence[str] = ()
    node_ip: str = ""

    @property
    def port_name_string(self) -> str:
        return f"{self.namespace}/{self.name}" + (f":{self.port_name}" if self.port_name else "")

    def chain(self, prefix: str) -> str:
        return prefix + chain_hash(self.port_name_string, self.protocol)

    def sep(self, ep: Endpoint) -> str:
        return "KUBE-SEP-" + chain_hash(self.port_name_string, self.protocol, ep.text)


def _probability(n: int) -> str:
    return f"{1.0 / n:0.10f}"


def _q(text: str) -> str:
    return f'"{text}"' if " " in text else text


#: kube-proxy's (and kubelet's) jumps from the built-in chains, as ``iptables -I`` leaves them.
JUMPS = {
    "filter": [
        '-A INPUT -m conntrack --ctstate NEW -m comment --comment "kubernetes load balancer firewall" '
        "-j KUBE-PROXY-FIREWALL",
        '-A INPUT -m comment --comment "kubernetes health check service ports" -j KUBE-NODEPORTS',
        '-A INPUT -m conntrack --ctstate NEW -m comment --comment "kubernetes externally-visible service portals" '
        "-j KUBE-EXTERNAL-SERVICES",
        "-A INPUT -j KUBE-FIREWALL",
        '-A FORWARD -m conntrack --ctstate NEW -m comment --comment "kubernetes load balancer firewall" '
        "-j KUBE-PROXY-FIREWALL",
        '-A FORWARD -m comment --comment "kubernetes forwarding rules" -j KUBE-FORWARD',
        '-A FORWARD -m conntrack --ctstate NEW -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
        '-A FORWARD -m conntrack --ctstate NEW -m comment --comment "kubernetes externally-visible service portals" '
        "-j KUBE-EXTERNAL-SERVICES",
        '-A OUTPUT -m conntrack --ctstate NEW -m comment --comment "kubernetes load balancer firewall" '
        "-j KUBE-PROXY-FIREWALL",
        '-A OUTPUT -m conntrack --ctstate NEW -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
        "-A OUTPUT -j KUBE-FIREWALL",
    ],
    "nat": [
        '-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
        '-A OUTPUT -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
        '-A POSTROUTING -m comment --comment "kubernetes postrouting rules" -j KUBE-POSTROUTING',
    ],
}


def _service_rules(s: Service, filt: list[str], nat_head: list[str], chains: list[str], rules: list[str]) -> None:
    p = s.protocol
    name = s.port_name_string
    eps = list(s.endpoints)
    accessible = bool(s.node_port or s.external_ips or s.lb_ips)
    uses_cluster_eps = s.internal_policy == "Cluster" or (accessible and s.external_policy == "Cluster")
    uses_local_eps = s.internal_policy == "Local" or (accessible and s.external_policy == "Local")
    cluster_eps = sorted(eps, key=lambda e: e.text) if uses_cluster_eps else []
    local_eps = sorted((e for e in eps if e.local), key=lambda e: e.text) if uses_local_eps else []
    reachable = sorted({e.text: e for e in [*cluster_eps, *local_eps]}.values(), key=lambda e: e.text)
    has_eps = bool(eps)
    svc, svl, ext, fw = s.chain("KUBE-SVC-"), s.chain("KUBE-SVL-"), s.chain("KUBE-EXT-"), s.chain("KUBE-FW-")
    uses_svc = bool(cluster_eps)
    uses_svl = bool(local_eps)
    internal_chain, has_internal = svc, has_eps
    if s.internal_policy == "Local":
        internal_chain = svl
        has_internal = has_eps and bool([e for e in eps if e.local])
    external_policy_chain, has_external = svc, has_eps
    if s.external_policy == "Local":
        external_policy_chain = svl
        has_external = has_eps and bool([e for e in eps if e.local])
    uses_ext = has_eps and accessible
    lb_chain = ext
    uses_fw = has_eps and bool(s.lb_ips) and bool(s.source_ranges)
    if uses_fw:
        lb_chain = fw
    if not has_eps:
        int_target, int_comment = "REJECT", f"{name} has no endpoints"
        ext_target, ext_comment = "REJECT", int_comment
    else:
        int_target, int_comment = "DROP", f"{name} has no local endpoints"
        ext_target, ext_comment = "DROP", int_comment
    match = f"-m {p} -p {p}"
    if has_internal:
        nat_head.append(f'-A KUBE-SERVICES -m comment --comment "{name} cluster IP" {match} -d {s.cluster_ip} '
                        f"--dport {s.port} -j {internal_chain}")
    else:
        filt.append(f'-A KUBE-SERVICES -m comment --comment "{int_comment}" {match} -d {s.cluster_ip} '
                    f"--dport {s.port} -j {int_target}")
    for ip in s.external_ips:
        if has_eps:
            nat_head.append(f'-A KUBE-SERVICES -m comment --comment "{name} external IP" {match} -d {ip} '
                            f"--dport {s.port} -j {ext}")
        if not has_external:
            filt.append(f'-A KUBE-EXTERNAL-SERVICES -m comment --comment "{ext_comment}" {match} -d {ip} '
                        f"--dport {s.port} -j {ext_target}")
    for ip in s.lb_ips:
        if has_eps:
            nat_head.append(f'-A KUBE-SERVICES -m comment --comment "{name} loadbalancer IP" {match} -d {ip} '
                            f"--dport {s.port} -j {lb_chain}")
        if uses_fw:
            filt.append(f'-A KUBE-PROXY-FIREWALL -m comment --comment "{name} traffic not accepted by {fw}" '
                        f"{match} -d {ip} --dport {s.port} -j DROP")
    if not has_external:
        for ip in s.lb_ips:
            filt.append(f'-A KUBE-EXTERNAL-SERVICES -m comment --comment "{ext_comment}" {match} -d {ip} '
                        f"--dport {s.port} -j {ext_target}")
    if s.node_port:
        if has_eps:
            nat_head.append(f"-A KUBE-NODEPORTS -m comment --comment {_q(name)} {match} --dport {s.node_port} -j {ext}")
        if not has_external:
            filt.append(f'-A KUBE-EXTERNAL-SERVICES -m comment --comment "{ext_comment}" -m addrtype --dst-type LOCAL '
                        f"{match} --dport {s.node_port} -j {ext_target}")
    if has_internal:
        rules.append(f'-A {internal_chain} -m comment --comment "{name} cluster IP" {match} -d {s.cluster_ip} '
                     f"--dport {s.port} ! -s {CLUSTER_CIDR} -j KUBE-MARK-MASQ")
    if uses_ext:
        chains.append(ext)
        if s.external_policy != "Local":
            rules.append(f'-A {ext} -m comment --comment "masquerade traffic for {name} external destinations" '
                         "-j KUBE-MARK-MASQ")
        else:
            rules.append(f'-A {ext} -m comment --comment "pod traffic for {name} external destinations" '
                         f"-s {CLUSTER_CIDR} -j {svc}")
            rules.append(f'-A {ext} -m comment --comment "masquerade LOCAL traffic for {name} external destinations" '
                         "-m addrtype --src-type LOCAL -j KUBE-MARK-MASQ")
            rules.append(f'-A {ext} -m comment --comment "route LOCAL traffic for {name} external destinations" '
                         f"-m addrtype --src-type LOCAL -j {svc}")
        if has_external:
            rules.append(f"-A {ext} -j {external_policy_chain}")
    if uses_fw:
        chains.append(fw)
        for cidr in s.source_ranges:
            rules.append(f'-A {fw} -m comment --comment "{name} loadbalancer IP" -s {cidr} -j {ext}')
        if s.node_ip and any(_contains(c, s.node_ip) for c in s.source_ranges):
            for ip in s.lb_ips:
                rules.append(f'-A {fw} -m comment --comment "{name} loadbalancer IP" -s {ip} -j {ext}')
        rules.append(f'-A {fw} -m comment --comment "other traffic to {name} will be dropped by KUBE-PROXY-FIREWALL"')
    for chain, used, chosen in ((svc, uses_svc, cluster_eps), (svl, uses_svl, local_eps)):
        if not used:
            continue
        chains.append(chain)
        n = len(chosen)
        for i, ep in enumerate(chosen):
            stat = f" -m statistic --mode random --probability {_probability(n - i)}" if i < n - 1 else ""
            rules.append(f'-A {chain} -m comment --comment "{name} -> {ep.text}"{stat} -j {s.sep(ep)}')
    for ep in reachable:
        sep = s.sep(ep)
        chains.append(sep)
        rules.append(f"-A {sep} -m comment --comment {_q(name)} -s {ep.ip} -j KUBE-MARK-MASQ")
        rules.append(f"-A {sep} -m comment --comment {_q(name)} {match} -j DNAT --to-destination {ep.text}")


def _contains(cidr: str, ip: str) -> bool:
    import ipaddress

    return ipaddress.ip_address(ip) in ipaddress.ip_network(cidr, strict=False)


def restore_text(services: Iterable[Service], *, changed: Iterable[str] | None = None, jumps: bool = False) -> str:
    """The text kube-proxy hands to ``iptables-restore --noflush`` for ``services``.

    Parameters
    ----------
    changed : iterable of str, optional
        A partial sync: only these services' (``"ns/name"``) nat chains are written.
    jumps : bool
        Add :data:`JUMPS` (what ``iptables -I`` adds), for loading into a fresh kernel.
    """
    changed_set = None if changed is None else set(changed)
    filt: list[str] = []
    nat_head: list[str] = []
    chains: list[str] = []
    rules: list[str] = []
    for s in sorted(services, key=lambda x: x.port_name_string):
        c: list[str] = []
        r: list[str] = []
        _service_rules(s, filt, nat_head, c, r)
        if changed_set is None or f"{s.namespace}/{s.name}" in changed_set:
            chains += c
            rules += r
    out = ["*filter"]
    out += [f":{c} - [0:0]" for c in ("KUBE-NODEPORTS", "KUBE-SERVICES", "KUBE-EXTERNAL-SERVICES", "KUBE-FIREWALL",
                                       "KUBE-FORWARD", "KUBE-PROXY-FIREWALL")]  # fmt: skip
    out += filt
    out.append('-A KUBE-FIREWALL -m comment --comment "block incoming localnet connections" -d 127.0.0.0/8 '
               "! -s 127.0.0.0/8 -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP")
    out.append("-A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP")
    out.append(f'-A KUBE-FORWARD -m comment --comment "kubernetes forwarding rules" -m mark --mark {MASQ}/{MASQ} '
               "-j ACCEPT")
    out.append('-A KUBE-FORWARD -m comment --comment "kubernetes forwarding conntrack rule" -m conntrack --ctstate '
               "RELATED,ESTABLISHED -j ACCEPT")
    if jumps:
        out += JUMPS["filter"]
    out.append("COMMIT")
    out.append("*nat")
    out += [f":{c} - [0:0]" for c in ("KUBE-NODEPORTS", "KUBE-SERVICES", "KUBE-MARK-MASQ", "KUBE-POSTROUTING")]
    out += [f":{c} - [0:0]" for c in chains]
    out += nat_head
    out.append('-A KUBE-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: this must be the last '
               'rule in this chain" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS')
    out.append(f"-A KUBE-MARK-MASQ -j MARK --or-mark {MASQ}")
    out.append(f"-A KUBE-POSTROUTING -m mark ! --mark {MASQ}/{MASQ} -j RETURN")
    out.append(f"-A KUBE-POSTROUTING -j MARK --xor-mark {MASQ}")
    out.append('-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE')
    out += rules
    if jumps:
        out += JUMPS["nat"]
    out.append("COMMIT")
    return "\n".join(out) + "\n"
