"""Traces across tables and hooks: mangle before nat, filter after it, the routing decision, partial inputs.

The kube-proxy rulesets are written as kube-proxy writes them (``tests/kube_proxy_rules.py``, a port of
``pkg/proxy/iptables/proxier.go: syncProxyRules``); the same shapes run on the real kernel in
``tests/conformance/test_kube_proxy_shapes.py``.
"""

from __future__ import annotations

import io
from fractions import Fraction

import pytest

from meshstat import netfilter as nf
from meshstat.errors import InvalidArgument
from meshstat.kubeproxy.iptables_filter import KUBE_PROXY_JUMPS, add_kube_proxy_jumps
from tests.kube_proxy_rules import Endpoint, Service, restore_text

E = Endpoint

MANGLE_CANARY = """*mangle
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A PREROUTING -d 10.96.0.20/32 -p tcp -m tcp --dport 80 -m statistic --mode random --probability 0.25000000000 -j MARK --set-xmark 0x1/0xffffffff
-A OUTPUT -d 10.96.0.20/32 -p tcp -m tcp --dport 80 -m statistic --mode random --probability 0.25000000000 -j MARK --set-xmark 0x1/0xffffffff
COMMIT
*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:CANARY - [0:0]
-A PREROUTING -d 10.96.0.20/32 -p tcp -m tcp --dport 80 -j CANARY
-A OUTPUT -d 10.96.0.20/32 -p tcp -m tcp --dport 80 -j CANARY
-A CANARY -p tcp -m mark --mark 0x1 -j DNAT --to-destination 10.244.1.2:8080
-A CANARY -p tcp -j DNAT --to-destination 10.244.1.1:8080
COMMIT
"""  # noqa: E501


def verdicts(r: nf.TraceResult) -> list[tuple[Fraction, str]]:
    return [(p.probability, str(p.verdict)) for p in r.paths]


def kube_proxy(*services: Service, **kw: object) -> nf.Ruleset:
    """kube-proxy's restore text, parsed, with its jumps from the built-in chains added."""
    rs = nf.parse_iptables(restore_text(services, **kw), "kube-proxy.restore")  # type: ignore[arg-type]
    add_kube_proxy_jumps(rs)
    return rs


NO_EPS = Service("ns2", "noeps", "172.30.1.3", 80, [], node_port=30003, external_ips=["192.0.2.3"])
ITP_NONE = Service("ns1", "itp", "172.30.1.1", 80, [E("10.244.2.1", 80, False)], internal_policy="Local")
LB = Service("ns4", "lb", "172.30.1.6", 80, [E("10.244.1.6", 80)], lb_ips=["192.0.2.6"],
             source_ranges=["198.18.5.0/24"], node_port=30006)  # fmt: skip
ETP = Service("ns3", "etp", "172.30.1.4", 80, [E("10.244.1.4", 80, True), E("10.244.2.4", 80, False)],
              external_policy="Local", node_port=30004)  # fmt: skip


# ------------------------------------------------------------------ mangle before nat


@pytest.mark.parametrize("hook", ["output", "prerouting"])
def test_a_mark_drawn_in_mangle_splits_the_nat_rule(hook: str) -> None:
    rs = nf.parse_iptables(MANGLE_CANARY, "canary")
    r = nf.trace(rs, nf.Packet(dst="10.96.0.20", dport=80), hook)
    assert verdicts(r) == [(Fraction(1, 4), "DNAT to 10.244.1.2:8080"), (Fraction(3, 4), "DNAT to 10.244.1.1:8080")]
    assert r.paths[0].path_string(with_table=True).startswith(f"mangle/{hook.upper()}:")
    assert r.total == 1 and not any(p.conditions for p in r.paths)
    # asked for nat alone, the trace says what it left out (and gives the nat-only answer)
    r = nf.trace(rs, nf.Packet(dst="10.96.0.20", dport=80), hook, tables=["nat"])
    assert verdicts(r) == [(1, "DNAT to 10.244.1.1:8080")]
    assert r.not_walked == ("tables mangle (left out by the tables asked for)", "tables raw, filter, security (not in the dump)")


# ------------------------------------------------------------------ filter after nat (kube-proxy)


def test_no_endpoints_is_rejected_in_filter_not_dnat() -> None:
    rs = kube_proxy(NO_EPS)
    r = nf.trace(rs, nf.Packet(dst="172.30.1.3", dport=80, src="10.244.0.5", dst_local=False))
    assert verdicts(r) == [(1, "REJECT icmp-port-unreachable")]
    assert r.paths[0].path_string(with_table=True).endswith("filter/OUTPUT:assumed -> filter/KUBE-SERVICES:8")
    # from outside: forwarded (the cluster IP is not local), filter FORWARD -> KUBE-SERVICES rejects
    r = nf.trace(rs, nf.Packet(dst="172.30.1.3", dport=80, src="198.18.0.1", dst_local=False), "prerouting")
    assert verdicts(r) == [(1, "REJECT icmp-port-unreachable")]
    assert "filter/FORWARD" in r.tables
    # its external IP and node port: KUBE-EXTERNAL-SERVICES
    r = nf.trace(rs, nf.Packet(dst="192.0.2.3", dport=80, src="198.18.0.1", dst_local=True), "prerouting")
    assert verdicts(r) == [(1, "REJECT icmp-port-unreachable")]
    assert "filter/KUBE-EXTERNAL-SERVICES" in r.paths[0].path_string(with_table=True)
    r = nf.trace(rs, nf.Packet(dst="198.18.0.2", dport=30003, src="198.18.0.1", dst_local=True), "prerouting")
    assert verdicts(r) == [(1, "REJECT icmp-port-unreachable")]


def test_internal_traffic_policy_local_without_local_endpoints_is_dropped() -> None:
    rs = kube_proxy(ITP_NONE)
    r = nf.trace(rs, nf.Packet(dst="172.30.1.1", dport=80, src="10.244.0.5", dst_local=False))
    assert verdicts(r) == [(1, "DROP")]
    assert r.paths[0].steps[-1].text.endswith('"ns1/itp has no local endpoints" -m tcp -p tcp -d 172.30.1.1 --dport 80 -j DROP')


def test_prerouting_with_nat_and_filter_walks_filter_at_input_and_forward() -> None:
    """'--hook prerouting --tables nat,filter' used to skip filter (it has no PREROUTING chain)."""
    rs = kube_proxy(LB)
    outside = nf.Packet(dst="192.0.2.6", dport=80, src="198.18.0.1", dst_local=True)
    r = nf.trace(rs, outside, "prerouting", tables=["nat", "filter"])
    assert verdicts(r) == [(1, "DROP")]  # KUBE-FW falls through, KUBE-PROXY-FIREWALL drops
    assert r.paths[0].path_string(with_table=True).endswith("filter/INPUT:assumed -> filter/KUBE-PROXY-FIREWALL:8")
    assert r.tables == ("nat/PREROUTING", "filter/INPUT")  # the DROP ends it before nat INPUT
    allowed = nf.Packet(dst="192.0.2.6", dport=80, src="198.18.5.7", dst_local=True)
    r = nf.trace(rs, allowed, "prerouting", tables=["nat", "filter"])
    assert verdicts(r) == [(1, "DNAT to 10.244.1.6:80 (then MASQUERADE)")]  # ETP Cluster: masqueraded
    assert r.tables == ("nat/PREROUTING", "filter/FORWARD", "nat/POSTROUTING")


def test_external_traffic_policy_local_from_outside_and_from_the_node() -> None:
    rs = kube_proxy(ETP)
    pkt = nf.Packet(dst="198.18.0.2", dport=30004, src="198.18.0.1", dst_local=True, src_local=False)
    outside = nf.trace(rs, pkt, "prerouting")
    assert verdicts(outside) == [(1, "DNAT to 10.244.1.4:80")]  # KUBE-SVL: the local endpoint, source kept
    # whether the source is local is not guessed: KUBE-EXT's '--src-type LOCAL' rules split on it
    pkt = nf.Packet(dst="198.18.0.2", dport=30004, src="198.18.0.1", dst_local=True)
    unsure = nf.trace(rs, pkt, "prerouting")
    assert sorted((str(p.verdict), tuple(map(str, p.conditions))) for p in unsure.paths) == [
        ("DNAT to 10.244.1.4:80", ("source address type LOCAL: no",)),
        ("DNAT to 10.244.1.4:80 (then MASQUERADE)", ("source address type LOCAL: yes",)),
        ("DNAT to 10.244.2.4:80 (then MASQUERADE)", ("source address type LOCAL: yes",)),
    ]
    node = nf.trace(rs, nf.Packet(dst="198.18.0.2", dport=30004, src="198.18.0.2", dst_local=True))  # src local
    assert verdicts(node) == [
        (Fraction(1, 2), "DNAT to 10.244.1.4:80 (then MASQUERADE)"),
        (Fraction(1, 2), "DNAT to 10.244.2.4:80 (then MASQUERADE)"),
    ]
    assert any("route LOCAL traffic" in s.text for s in node.paths[0].steps)


# ------------------------------------------------------------------ the routing decision


def test_local_addresses_decide_input_or_forward() -> None:
    rs = kube_proxy(LB)
    pkt = dict(dst="192.0.2.6", dport=80, src="198.18.5.7")
    r = nf.trace(rs, nf.Packet(**pkt, local_addresses=("192.0.2.6", "10.244.1.0/24")), "prerouting")  # type: ignore[arg-type]
    assert verdicts(r) == [(1, "DNAT to 10.244.1.6:80")]  # delivered locally: no POSTROUTING, no masquerade
    assert "filter/INPUT" in r.tables and "filter/FORWARD" not in r.tables
    assert not any("assumed: the DNAT destination" in n for n in r.notes)
    # without them: the DNAT destination is assumed remote, and said so
    r = nf.trace(rs, nf.Packet(**pkt, dst_local=True), "prerouting")  # type: ignore[arg-type]
    assert "filter/FORWARD" in r.tables
    assert any("assumed: the DNAT destination 10.244.1.6 is not a local address" in n for n in r.notes)


def test_unknown_locality_splits_only_where_the_two_ways_differ() -> None:
    rs = kube_proxy(NO_EPS)
    r = nf.trace(rs, nf.Packet(dst="172.30.1.3", dport=80, src="198.18.0.1"), "prerouting")
    # the addrtype rule of KUBE-SERVICES asked first; the routing decision reuses its answer
    assert sorted((str(p.verdict), tuple(map(str, p.conditions))) for p in r.paths) == [
        ("REJECT icmp-port-unreachable", ("destination address type LOCAL: no",)),
        ("no NAT: falls through to the next hook", ("destination address type LOCAL: yes",)),
    ]
    assert r.total == 1
    # nat only, nothing in INPUT, FORWARD or POSTROUTING: no split
    rs = nf.parse_iptables("*nat\n:PREROUTING ACCEPT [0:0]\n-A PREROUTING -p tcp -j DNAT --to-destination 1.1.1.1:1\n"
                           "COMMIT\n", "t")  # fmt: skip
    r = nf.trace(rs, nf.Packet(dst="9.9.9.9", dport=80), "prerouting")
    assert verdicts(r) == [(1, "DNAT to 1.1.1.1:1")] and not r.paths[0].conditions


def test_loopback_return_walks_input_without_nat() -> None:
    text = (
        "*filter\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n"
        "-A INPUT -p tcp -m tcp --dport 8080 -j REJECT\nCOMMIT\n"
        "*nat\n:OUTPUT ACCEPT [0:0]\n-A OUTPUT -d 10.96.0.1/32 -p tcp -j DNAT --to-destination 10.244.1.1:8080\nCOMMIT\n"
    )
    rs = nf.parse_iptables(text, "t")
    local = nf.trace(rs, nf.Packet(dst="10.96.0.1", dport=80, local_addresses=("10.244.1.1",)))
    assert verdicts(local) == [(1, "REJECT icmp-port-unreachable (after DNAT to 10.244.1.1:8080)")]
    assert any("comes back in through lo" in n for n in local.notes)
    remote = nf.trace(rs, nf.Packet(dst="10.96.0.1", dport=80))
    assert verdicts(remote) == [(1, "DNAT to 10.244.1.1:8080")]


# ------------------------------------------------------------------ partial input, named starts


def test_partial_sync_reaches_an_undefined_chain_as_unknown() -> None:
    svcs = [Service("ns1", "a", "172.30.0.41", 80, [E("10.0.1.1", 80)]),
            Service("ns3", "c", "172.30.0.43", 80, [E("10.0.3.1", 80)])]  # fmt: skip
    rs = kube_proxy(*svcs, changed=["ns3/c"])
    assert any("jumps to 1 chain this input does not define: KUBE-SVC-" in w.message for w in rs.warnings)
    r = nf.trace(rs, nf.Packet(dst="172.30.0.41", dport=80, src="10.0.0.9"))
    assert len(r.paths) == 1 and r.paths[0].verdict.kind == "UNKNOWN"
    assert "is not in this input" in str(r.paths[0].verdict)
    r = nf.trace(rs, nf.Packet(dst="172.30.0.43", dport=80, src="10.244.0.9"))
    assert verdicts(r) == [(1, "DNAT to 10.0.3.1:80")]


def test_kube_proxy_jumps_are_added_only_where_the_text_lacks_them() -> None:
    rs = nf.parse_iptables(restore_text([NO_EPS]), "r")
    added = add_kube_proxy_jumps(rs)
    assert len(added) == len(KUBE_PROXY_JUMPS)
    assert add_kube_proxy_jumps(rs) == []  # idempotent
    assert rs.table("nat").chains["OUTPUT"].rules[0].target.value == "KUBE-SERVICES"
    with_jumps = nf.parse_iptables(restore_text([NO_EPS], jumps=True), "r")
    assert add_kube_proxy_jumps(with_jumps) == []
    saved = nf.load(str(_data("kube-proxy-iptables-overall.iptables-save")))  # declares its built-in chains
    assert add_kube_proxy_jumps(saved) == []


def test_a_named_start_says_what_it_did_not_walk() -> None:
    rs = kube_proxy(NO_EPS)
    r = nf.trace(rs, nf.Packet(dst="172.30.1.3", dport=80), chain="KUBE-SERVICES")
    assert r.not_walked and "started in chain KUBE-SERVICES" in r.not_walked[0]


def test_cli_trace_names_what_it_walked_and_assumed(tmp_path) -> None:  # noqa: ANN001
    from meshstat.cli import main

    f = tmp_path / "kube-proxy.restore"
    f.write_text(restore_text([NO_EPS]))
    out, err = io.StringIO(), io.StringIO()
    rc = main(["trace", "--iptables", str(f), "--dst", "172.30.1.3:80", "--src", "10.244.0.5", "--dst-local", "no",
               "--format", "csv"], stdout=out, stderr=err)  # fmt: skip
    assert rc == 0, err.getvalue()
    assert out.getvalue().splitlines()[1].startswith("1,1,1.0,REJECT icmp-port-unreachable,")
    e = err.getvalue()
    assert "walked: nat/OUTPUT, filter/OUTPUT (from hook output)" in e
    assert "not walked: tables raw, mangle, security (not in the dump)" in e
    assert "filter/OUTPUT -> KUBE-PROXY-FIREWALL, KUBE-SERVICES, KUBE-FIREWALL" in e
    rc = main(["trace", "--iptables", str(f), "--dst", "172.30.1.3:80", "--local", "10.0.0.1,not-an-ip"],
              stdout=out, stderr=(err := io.StringIO()))  # fmt: skip
    assert rc == 2 and err.getvalue().startswith("meshstat: error:") and "not-an-ip" in err.getvalue()


def test_bad_local_addresses_are_refused() -> None:
    with pytest.raises(InvalidArgument, match="local address"):
        nf.Packet(dst="1.1.1.1", local_addresses=("10.0.0.0/33",))
    with pytest.raises(InvalidArgument, match="not one string"):
        nf.Packet(dst="1.1.1.1", local_addresses="10.0.0.1")  # type: ignore[arg-type]


def _data(name: str):  # noqa: ANN202
    from pathlib import Path

    return Path(__file__).parent.parent / "data" / "iptables" / name
