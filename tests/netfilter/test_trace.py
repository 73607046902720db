"""Packet traces: the seed experiment, Istio captures, kube-proxy cascades, unknowns, errors."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from meshstat import netfilter as nf
from meshstat.errors import InvalidArgument, ModelError
from meshstat.model import Cascade, threshold_to_decimal

DATA = Path(__file__).parent.parent / "data" / "iptables"
SEED = "seed-front-tomcat-pod.iptables-save"


def rs_of(name: str) -> nf.Ruleset:
    return nf.load(str(DATA / name))


def verdicts(result: nf.TraceResult) -> list[tuple[Fraction, str]]:
    return [(p.probability, str(p.verdict)) for p in result.paths]


# ------------------------------------------------------------------ the seed experiment


def test_seed_uid0_is_redirected_to_envoy() -> None:
    rs = rs_of(SEED)
    pkt = nf.Packet(dst="10.108.203.9", dport=9999, src="10.244.75.100", uid=0, gid=0, out_if="eth0")
    r = nf.trace(rs, pkt)
    assert verdicts(r) == [(1, "REDIRECT to port 15001")]
    # nat OUTPUT, then nat POSTROUTING (kube-proxy's masquerade chain returns: no mark)
    assert r.paths[0].path_string() == (
        "OUTPUT:20 -> ISTIO_OUTPUT:39 -> ISTIO_REDIRECT:40 -> POSTROUTING:22 -> KUBE-POSTROUTING:42"
    )
    assert r.paths[0].conditions == ()
    assert r.total == 1
    assert r.tables == ("nat/OUTPUT", "nat/POSTROUTING")
    assert r.not_walked == ("tables raw, mangle, filter, security (not in the dump)",)


def test_seed_uid1337_returns_and_is_split_50_50_by_kube_proxy() -> None:
    rs = rs_of(SEED)
    pkt = nf.Packet(dst="10.108.203.9", dport=9999, src="10.244.75.100", uid=1337, gid=1337, out_if="eth0")
    r = nf.trace(rs, pkt)
    assert verdicts(r) == [
        (Fraction(1, 2), "DNAT to 10.244.75.113:80"),
        (Fraction(1, 2), "DNAT to 10.244.75.115:80"),
    ]
    assert r.paths[0].path_string() == (
        "OUTPUT:20 -> ISTIO_OUTPUT:34 -> OUTPUT:21 -> KUBE-SERVICES:49 -> KUBE-SVC-PK4BNTKC2JYVE7B2:52 "
        "-> KUBE-SEP-6OOOSB56IIMYCEYA:46 -> POSTROUTING:22 -> KUBE-POSTROUTING:42"
    )
    assert r.paths[1].path_string().endswith(
        "KUBE-SVC-PK4BNTKC2JYVE7B2:53 -> KUBE-SEP-AM36T22CJQS6HCG4:48 -> POSTROUTING:22 -> KUBE-POSTROUTING:42"
    )
    assert any("assumed: the DNAT destinations 10.244.75.113, 10.244.75.115 are not local addresses" in n
               for n in r.notes)
    assert [p.mark for p in r.paths] == [0, 0]  # pod source: no masquerade mark
    assert r.total == 1
    assert r.by_verdict() == {"DNAT to 10.244.75.113:80": Fraction(1, 2), "DNAT to 10.244.75.115:80": Fraction(1, 2)}


def test_seed_host_source_is_marked_for_masquerade() -> None:
    rs = rs_of(SEED)
    r = nf.trace(rs, nf.Packet(dst="10.108.203.9", dport=9999, src="192.168.1.5", uid=1337, gid=1337, out_if="eth0"))
    # ! -s 10.244.0.0/16 -> KUBE-MARK-MASQ in nat OUTPUT; nat POSTROUTING clears the mark and masquerades
    assert "KUBE-SVC-PK4BNTKC2JYVE7B2:51 -> KUBE-MARK-MASQ:41 -> KUBE-SVC-PK4BNTKC2JYVE7B2:52" in r.paths[0].path_string()
    assert [str(p.verdict) for p in r.paths] == [
        "DNAT to 10.244.75.113:80 (then MASQUERADE)", "DNAT to 10.244.75.115:80 (then MASQUERADE)"
    ]
    assert [p.mark for p in r.paths] == [0, 0]
    assert r.paths[0].path_string().endswith("POSTROUTING:22 -> KUBE-POSTROUTING:43 -> KUBE-POSTROUTING:44")
    pkt = nf.Packet(dst="10.108.203.9", dport=9999, src="192.168.1.5", uid=1337, gid=1337, out_if="eth0")
    only_nat_output = nf.trace(rs, pkt, chain="OUTPUT")
    assert [p.mark for p in only_nat_output.paths] == [0x4000, 0x4000]


def test_seed_inbound_port_80_goes_to_15006_but_15021_does_not() -> None:
    rs = rs_of(SEED)
    r = nf.trace(rs, nf.Packet(dst="10.244.75.100", dport=80, in_if="eth0", dst_local=True), hook="prerouting")
    assert verdicts(r) == [(1, "REDIRECT to port 15006")]
    assert r.paths[0].path_string() == "PREROUTING:18 -> ISTIO_INBOUND:27 -> ISTIO_IN_REDIRECT:28"
    r = nf.trace(rs, nf.Packet(dst="10.244.75.100", dport=15021, in_if="eth0", dst_local=True), hook="prerouting")
    assert verdicts(r) == [(1, "no NAT: falls through to the next hook")]
    assert r.paths[0].path_string().startswith("PREROUTING:18 -> ISTIO_INBOUND:25 -> PREROUTING:19 -> KUBE-SERVICES:50")


def test_seed_unknown_uid_splits_on_labelled_conditions() -> None:
    rs = rs_of(SEED)
    r = nf.trace(rs, nf.Packet(dst="10.108.203.9", dport=9999, src="10.244.75.100", out_if="eth0"))
    labels = [tuple(str(c) for c in p.conditions) for p in r.paths]
    assert ("uid 1337: no", "gid 1337: no") in labels
    assert any(lab == ("uid 1337: yes",) for lab in labels)
    by = {(str(p.verdict), tuple(str(c) for c in p.conditions)): p.probability for p in r.paths}
    assert by[("REDIRECT to port 15001", ("uid 1337: no", "gid 1337: no"))] == 1
    assert by[("DNAT to 10.244.75.113:80", ("uid 1337: yes",))] == Fraction(1, 2)
    assert r.total == 1


def test_seed_via_cli(capsys: pytest.CaptureFixture[str]) -> None:
    import io

    from meshstat.cli import main

    out, err = io.StringIO(), io.StringIO()
    rc = main(
        ["trace", "--iptables", str(DATA / SEED), "--dst", "10.108.203.9:9999", "--uid", "1337", "--gid", "1337",
         "--out-if", "eth0", "--src", "10.244.75.100", "--format", "csv"],
        stdout=out, stderr=err,
    )  # fmt: skip
    assert rc == 0, err.getvalue()
    lines = out.getvalue().splitlines()
    assert lines[0] == "path,probability,p,verdict,conditions,mark,rules"
    assert lines[1].startswith('1,1/2,0.5,DNAT to 10.244.75.113:80,"",0x0,OUTPUT:20 -> ISTIO_OUTPUT:34 -> OUTPUT:21')
    assert "total probability 1" in err.getvalue()


# ------------------------------------------------------------------ Istio fixtures


def test_istio_dns_capture() -> None:
    rs = rs_of("istio-cni-sidecar-dns.iptables-save")
    pkt = nf.Packet(dst="10.96.0.10", dport=53, sport=40000, proto="udp", uid=0, gid=0, out_if="eth0", src="10.1.1.1")
    r = nf.trace(rs, pkt)
    assert verdicts(r) == [(1, "REDIRECT to port 15053")]
    # raw OUTPUT, nat OUTPUT; the redirected query comes back in through lo: raw PREROUTING
    assert r.paths[0].path_string(with_table=True) == (
        "raw/OUTPUT:8 -> raw/ISTIO_OUTPUT_DNS:14 -> nat/OUTPUT:29 -> nat/ISTIO_OUTPUT:45 -> nat/ISTIO_OUTPUT_DNS:49 "
        "-> raw/PREROUTING:7"
    )
    assert any("comes back in through lo" in n for n in r.notes)
    # without the source port, the raw PREROUTING rule on lo ('--sport 53 -j CT --zone 1') is not decided,
    # and needs not be: its target changes nothing a trace models
    r = nf.trace(rs, nf.Packet(dst="10.96.0.10", dport=53, proto="udp", uid=0, gid=0, out_if="eth0", src="10.1.1.1"))
    assert verdicts(r) == [(1, "REDIRECT to port 15053")] and not r.paths[0].conditions
    assert "line 9: not decided whether it matches (sport 53); its target (-j CT --zone 1) changes nothing" in (
        " ".join(r.notes))
    r = nf.trace(rs, nf.Packet(dst="10.96.0.10", dport=53, proto="udp", uid=1337, gid=1337, out_if="eth0", src="10.1.1.1",
                               dst_local=False))  # fmt: skip
    assert verdicts(r) == [(1, "no NAT: falls through to the next hook")]
    # whether 10.96.0.10 is a local address decides whether raw PREROUTING sees the query again on lo
    r = nf.trace(rs, nf.Packet(dst="10.96.0.10", dport=53, sport=40000, proto="udp", uid=1337, gid=1337,
                               out_if="eth0", src="10.1.1.1"))  # fmt: skip
    assert [(str(p.verdict), [str(c) for c in p.conditions]) for p in r.paths] == [
        ("no NAT: falls through to the next hook", ["destination 10.96.0.10 is a local address: yes"]),
        ("no NAT: falls through to the next hook", ["destination 10.96.0.10 is a local address: no"]),
    ]
    r = nf.trace(rs, nf.Packet(dst="10.96.0.20", dport=8080, uid=0, gid=0, out_if="eth0", src="10.1.1.1"))
    assert verdicts(r) == [(1, "REDIRECT to port 15001")]


def test_istio_include_exclude_ports() -> None:
    rs = rs_of("istio-cni-sidecar-include-exclude-ports.iptables-save")
    out = nf.Packet(dst="10.96.0.20", dport=5555, uid=0, gid=0, out_if="eth0", src="10.1.1.1")
    assert verdicts(nf.trace(rs, out)) == [(1, "no NAT: falls through to the next hook")]
    out = nf.Packet(dst="10.96.0.20", dport=5556, uid=0, gid=0, out_if="eth0", src="10.1.1.1")
    assert verdicts(nf.trace(rs, out)) == [(1, "REDIRECT to port 15001")]
    for port, verdict in ((1111, "REDIRECT to port 15006"), (2222, "REDIRECT to port 15006"),
                          (80, "no NAT: falls through to the next hook")):  # fmt: skip
        r = nf.trace(rs, nf.Packet(dst="10.1.1.1", dport=port, in_if="eth0"), hook="prerouting")
        assert verdicts(r) == [(1, verdict)], port


def test_istio_basic_golden_and_save_trace_alike() -> None:
    a = rs_of("istio-cni-sidecar-basic.golden")
    b = rs_of("istio-cni-sidecar-basic.iptables-save")
    for pkt, hook in (
        (nf.Packet(dst="10.96.0.20", dport=80, uid=0, gid=0, out_if="eth0", src="10.1.1.1"), "output"),
        (nf.Packet(dst="10.96.0.20", dport=80, uid=1337, gid=1337, out_if="eth0", src="10.1.1.1"), "output"),
        (nf.Packet(dst="10.1.1.2", dport=80, uid=1337, out_if="lo", src="10.1.1.1"), "output"),
        (nf.Packet(dst="10.1.1.1", dport=9080, in_if="eth0"), "prerouting"),
        (nf.Packet(dst="10.1.1.1", dport=15090, in_if="eth0"), "prerouting"),
    ):
        assert verdicts(nf.trace(a, pkt, hook)) == verdicts(nf.trace(b, pkt, hook))
    # app calling its own service over lo: back to the inbound listener
    r = nf.trace(b, nf.Packet(dst="10.1.1.2", dport=80, uid=1337, out_if="lo", src="10.1.1.1"))
    assert verdicts(r) == [(1, "REDIRECT to port 15006")]


def test_istio_tproxy_walks_mangle_then_nat() -> None:
    rs = rs_of("istio-cni-sidecar-tproxy.iptables-save")
    r = nf.trace(rs, nf.Packet(dst="10.1.1.1", dport=8080, src="10.2.2.2", in_if="eth0"), hook="prerouting")
    assert r.tables == ("mangle/PREROUTING", "nat/PREROUTING", "mangle/INPUT", "nat/INPUT")  # TPROXY: local
    assert verdicts(r) == [(1, "TPROXY to port 15006")]
    assert r.paths[0].mark == 0x539
    assert r.paths[0].path_string(with_table=True) == (
        "mangle/PREROUTING:11 -> mangle/ISTIO_INBOUND:26 -> mangle/ISTIO_TPROXY:27"
    )
    r = nf.trace(rs, nf.Packet(dst="10.1.1.1", dport=15021, src="10.2.2.2", in_if="eth0"), hook="prerouting")
    assert verdicts(r) == [(1, "no NAT: falls through to the next hook")]
    # a packet already marked 0x539 returns at once, then CONNMARK saves the mark
    r = nf.trace(rs, nf.Packet(dst="10.1.1.1", dport=8080, src="10.2.2.2", in_if="eth0", mark=0x539), hook="prerouting")
    assert verdicts(r) == [(1, "no NAT: falls through to the next hook")]
    assert r.paths[0].path_string() == "PREROUTING:11 -> ISTIO_INBOUND:19 -> PREROUTING:12"


# ------------------------------------------------------------------ kube-proxy


@pytest.mark.parametrize(
    ("name", "dst", "dport", "proto", "chain"),
    [
        ("kube-proxy-iptables-3ep-itp-cluster.iptables-save", "172.30.1.1", 80, "tcp", "KUBE-SVC-AQI2S6QIMU7PVVRP"),
        ("kube-proxy-iptables-generated-4-5-10ep.iptables-save", "10.96.0.60", 9090, "tcp", "KUBE-SVC-BEA4T34QEWGUELNC"),
        ("kube-proxy-iptables-generated-4-5-10ep.iptables-save", "10.96.0.50", 80, "tcp", "KUBE-SVC-CDGGSHYLG3RE2FKL"),
        ("kube-proxy-iptables-generated-4-5-10ep.iptables-save", "10.96.0.10", 53, "udp", "KUBE-SVC-TCOU7JCQXEZGVUNU"),
        ("kube-proxy-iptables-generated-6ep-legacy-5digit.iptables-save", "10.96.0.50", 80, "tcp", "KUBE-SVC-CDGGSHYLG3RE2FKL"),
        ("kube-proxy-iptables-overall.iptables-save", "172.30.0.44", 80, "tcp", "KUBE-SVC-4SW47YFZTEDKD3PK"),
        ("kube-proxy-iptables-overall.restore", "172.30.0.44", 80, "tcp", "KUBE-SVC-4SW47YFZTEDKD3PK"),
    ],
)
def test_kube_proxy_trace_equals_the_cascade(name: str, dst: str, dport: int, proto: str, chain: str) -> None:
    rs = rs_of(name)
    r = nf.trace(rs, nf.Packet(dst=dst, dport=dport, proto=proto, src="10.0.0.99"), chain="KUBE-SERVICES")
    assert all(not p.conditions for p in r.paths)
    assert r.total == 1
    # independently: thresholds read from the text, exact shares from the model's cascade
    text = (DATA / name).read_text().splitlines()
    probs = [ln.split("--probability ")[1].split()[0] for ln in text
             if ln.startswith(f"-A {chain} ") and "--probability" in ln]  # fmt: skip
    targets = [ln.split("--to-destination ")[1] for ln in text if "DNAT --to-destination" in ln]
    expected = Cascade.from_probabilities(probs).shares()
    got = [p.probability for p in r.paths]
    assert got == list(expected)
    assert all(str(p.verdict).split()[-1] in targets for p in r.paths)
    assert [threshold_to_decimal(x) for x in Cascade.from_probabilities(probs).thresholds] == [
        f"{float(p):.11f}" for p in probs
    ] or name.endswith(".restore")


def test_kube_proxy_affinity_is_conditional_on_client_history() -> None:
    rs = rs_of("kube-proxy-iptables-affinity-etp-local-terminating.iptables-save")
    r = nf.trace(rs, nf.Packet(dst="172.30.1.1", dport=80, src="10.0.0.5"), chain="KUBE-SERVICES")
    assert r.total == 1
    fresh = [p for p in r.paths if all(not c.holds for c in p.conditions)]
    assert [p.probability for p in fresh] == [Fraction(715827883, 1 << 31), Fraction(1431655765, 1 << 32),
                                              Fraction(1431655765, 1 << 32)]  # fmt: skip
    assert all("client seen before (recent list KUBE-SEP-" in c.label for p in r.paths for c in p.conditions)
    sticky = [p for p in r.paths if p.conditions and p.conditions[-1].holds]
    assert sorted(str(p.verdict) for p in sticky) == ["DNAT to 10.0.1.1:80", "DNAT to 10.0.1.2:80", "DNAT to 10.0.1.5:80"]
    assert all(p.probability == 1 for p in sticky)
    with pytest.raises(ModelError, match="conditional"):
        r.by_verdict()


def test_kube_proxy_load_balancer_source_ranges() -> None:
    rs = rs_of("kube-proxy-iptables-overall.iptables-save")
    inside = nf.Packet(dst="5.6.7.8", dport=80, src="203.0.113.7")
    r = nf.trace(rs, inside, chain="KUBE-SERVICES")
    assert {str(p.verdict) for p in r.paths} == {"DNAT to 10.180.0.3:80"}
    assert "KUBE-FW-NUKIZ6OKUXPJNT4C:" in r.paths[0].path_string()
    outside = nf.Packet(dst="5.6.7.8", dport=80, src="198.51.100.1", dst_local=False)
    r = nf.trace(rs, outside, chain="KUBE-SERVICES")
    assert verdicts(r) == [(1, "no NAT: falls through to the next hook")]  # dropped later by KUBE-PROXY-FIREWALL
    assert r.paths[0].path_string().endswith("KUBE-SERVICES:91 -> KUBE-FW-NUKIZ6OKUXPJNT4C:60")


# ------------------------------------------------------------------ semantics on small rulesets


def _rs(body: str, chains: str = "") -> nf.Ruleset:
    decl = "".join(f":{c} - [0:0]\n" for c in chains.split())
    return nf.parse_iptables(f"*nat\n:OUTPUT ACCEPT [0:0]\n{decl}{body}COMMIT\n", "t.rules")


def test_marks_set_then_matched_in_the_same_walk() -> None:
    rs = _rs(
        "-A OUTPUT -j MARK --set-xmark 0x10/0xff\n"
        "-A OUTPUT -m mark --mark 0x10/0xf0 -j A\n"
        "-A OUTPUT -j DNAT --to-destination 1.1.1.1:1\n"
        "-A A -m mark ! --mark 0x110 -j DNAT --to-destination 2.2.2.2:2\n"
        "-A A -j MARK --or-mark 0x4000\n"
        "-A A -m mark --mark 0x4110 -j DNAT --to-destination 3.3.3.3:3\n",
        "A",
    )
    r = nf.trace(rs, nf.Packet(dst="9.9.9.9", dport=80, mark=0x101))
    assert verdicts(r) == [(1, "DNAT to 3.3.3.3:3")]
    assert r.paths[0].mark == 0x4110  # (0x101 & ~0xff) ^ 0x10, then | 0x4000


def test_opaque_match_gives_both_outcomes_as_unknown() -> None:
    rs = _rs("-A OUTPUT -m set --match-set S dst -j DNAT --to-destination 1.1.1.1:1\n")
    r = nf.trace(rs, nf.Packet(dst="9.9.9.9", dport=80, src="1.2.3.4"))
    assert [(str(p.verdict), [str(c) for c in p.conditions]) for p in r.paths] == [
        ("DNAT to 1.1.1.1:1", ["unknown match '-m set --match-set S dst' at line 3 (not modelled): yes"]),
        ("no NAT: falls through to the next hook", ["unknown match '-m set --match-set S dst' at line 3 (not modelled): no"]),
    ]
    assert r.total == 1
    assert any("unknown match '-m set'" in w for w in r.warnings)


def test_opaque_target_ends_the_path_as_unknown() -> None:
    rs = _rs("-A OUTPUT -p tcp -j NETMAP --to 10.0.0.0/24\n")
    r = nf.trace(rs, nf.Packet(dst="9.9.9.9", dport=80))
    assert r.paths[0].verdict.kind == "UNKNOWN"
    assert "NETMAP" in str(r.paths[0].verdict)


def test_nth_is_one_over_every_with_a_note() -> None:
    rs = _rs(
        "-A OUTPUT -m statistic --mode nth --every 3 --packet 0 -j DNAT --to-destination 1.1.1.1:1\n"
        "-A OUTPUT -m statistic --mode nth ! --every 2 --packet 1 -j DNAT --to-destination 2.2.2.2:2\n"
    )
    r = nf.trace(rs, nf.Packet(dst="9.9.9.9", dport=80))
    assert verdicts(r) == [
        (Fraction(1, 3), "DNAT to 1.1.1.1:1"),
        (Fraction(2, 3) * Fraction(1, 2), "DNAT to 2.2.2.2:2"),
        (Fraction(2, 3) * Fraction(1, 2), "no NAT: falls through to the next hook"),
    ] or sorted(verdicts(r)) == sorted([
        (Fraction(1, 3), "DNAT to 1.1.1.1:1"),
        (Fraction(1, 3), "DNAT to 2.2.2.2:2"),
        (Fraction(1, 3), "no NAT: falls through to the next hook"),
    ])  # fmt: skip
    assert r.total == 1
    assert any("deterministic per-rule counter" in n and "1/3" in n for n in r.notes)


def test_nth_counter_matches_the_measured_packets() -> None:
    # docs/measurements.md, M2 (measured on a kernel): packets matched among 1..9
    assert nf.nth_matches(3, 0, 9) == [1, 4, 7]
    assert nf.nth_matches(3, 1, 9) == [2, 5, 8]
    assert nf.nth_matches(3, 2, 9) == [3, 6, 9]
    assert nf.nth_matches(3, 0, 9, invert=True) == [2, 3, 5, 6, 8, 9]
    with pytest.raises(InvalidArgument):
        nf.nth_matches(3, 3, 9)


def test_negated_statistic_and_probability_one_and_zero() -> None:
    rs = _rs(
        "-A OUTPUT -m statistic --mode random --probability 0 -j DNAT --to-destination 1.1.1.1:1\n"
        "-A OUTPUT -m statistic --mode random ! --probability 0.29999999981 -j DNAT --to-destination 2.2.2.2:2\n"
        "-A OUTPUT -m statistic --mode random --probability 1 -j DNAT --to-destination 3.3.3.3:3\n"
    )
    r = nf.trace(rs, nf.Packet(dst="9.9.9.9", dport=80))
    k = 644245094
    assert sorted(verdicts(r)) == sorted([
        (1 - Fraction(k, 1 << 31), "DNAT to 2.2.2.2:2"),
        (Fraction(k, 1 << 31), "DNAT to 3.3.3.3:3"),
    ])  # fmt: skip


def test_jump_loop_is_a_clear_error() -> None:
    rs = _rs("-A OUTPUT -j A\n-A A -j B\n-A B -p tcp -j A\n", "A B")
    with pytest.raises(ModelError, match=r"t.rules:7: jump loop in table 'nat': A -> B -> A"):
        nf.trace(rs, nf.Packet(dst="9.9.9.9", dport=80))
    rs = _rs("-A OUTPUT -j A\n-A A -g A\n", "A")
    with pytest.raises(ModelError, match="jump loop"):
        nf.trace(rs, nf.Packet(dst="9.9.9.9", dport=80))


def test_over_deep_recursion_is_a_clear_error() -> None:
    names = [f"C{i}" for i in range(nf.MAX_DEPTH + 2)]
    body = "-A OUTPUT -j C0\n" + "".join(f"-A {a} -j {b}\n" for a, b in zip(names, names[1:], strict=False))
    rs = _rs(body, " ".join(names))
    with pytest.raises(ModelError, match=f"nested deeper than {nf.MAX_DEPTH} levels"):
        nf.trace(rs, nf.Packet(dst="9.9.9.9", dport=80))


def test_goto_returns_to_the_caller_of_the_calling_chain() -> None:
    rs = _rs(
        "-A OUTPUT -j A\n-A OUTPUT -j DNAT --to-destination 1.1.1.1:1\n"
        "-A A -g B\n-A A -j DNAT --to-destination 2.2.2.2:2\n-A B -j RETURN\n",
        "A B",
    )
    r = nf.trace(rs, nf.Packet(dst="9.9.9.9", dport=80))
    assert verdicts(r) == [(1, "DNAT to 1.1.1.1:1")]
    assert r.paths[0].path_string() == "OUTPUT:5 -> A:7 -> B:9 -> OUTPUT:6"


def test_policy_drop_and_errors() -> None:
    rs = nf.parse_iptables("*filter\n:OUTPUT DROP [0:0]\nCOMMIT\n", "f")
    r = nf.trace(rs, nf.Packet(dst="1.1.1.1", dport=1))  # a dump without nat: its filter table decides
    assert verdicts(r) == [(1, "DROP (policy of filter/OUTPUT)")]
    assert r.not_walked == ("tables raw, mangle, nat, security (not in the dump)",)
    r = nf.trace(rs, nf.Packet(dst="1.1.1.1", dport=1), tables=["filter"])
    assert verdicts(r) == [(1, "DROP (policy of filter/OUTPUT)")]
    with pytest.raises(InvalidArgument, match="f: no nat base chain at hook output for IPv4"):
        nf.trace(rs, nf.Packet(dst="1.1.1.1", dport=1), tables=["nat"])
    with pytest.raises(InvalidArgument, match="f: the dump has no table for IPv6"):
        nf.trace(rs, nf.Packet(dst="fd00::1", dport=1))
    with pytest.raises(InvalidArgument, match="unknown iptables table 'nta'"):
        nf.trace(rs, nf.Packet(dst="1.1.1.1", dport=1), tables=["nta"])
    with pytest.raises(InvalidArgument, match="hook"):
        nf.trace(rs, nf.Packet(dst="1.1.1.1"), hook="forward")
    with pytest.raises(InvalidArgument, match="IP address"):
        nf.Packet(dst="not-an-ip")


def test_too_many_paths_is_refused() -> None:
    body = "".join(f"-A OUTPUT -m set --match-set S{i} dst -j MARK --or-mark {1 << i}\n" for i in range(12))
    rs = _rs(body)
    with pytest.raises(ModelError, match="more than 100 paths"):
        nf.trace(rs, nf.Packet(dst="1.1.1.1", dport=1, src="2.2.2.2", out_if="eth0"), max_paths=100)


def test_assumptions_stay_consistent() -> None:
    # once "source in 10.0.0.0/8: no" is assumed, a later -s 10.1.0.0/16 cannot match
    rs = _rs(
        "-A OUTPUT -s 10.0.0.0/8 -j DNAT --to-destination 1.1.1.1:1\n"
        "-A OUTPUT -s 10.1.0.0/16 -j DNAT --to-destination 2.2.2.2:2\n"
        "-A OUTPUT -o lo -j DNAT --to-destination 3.3.3.3:3\n"
        "-A OUTPUT -o lo -j DNAT --to-destination 4.4.4.4:4\n"
    )
    r = nf.trace(rs, nf.Packet(dst="9.9.9.9", dport=80))
    vs = sorted(str(p.verdict) for p in r.paths)
    assert vs == ["DNAT to 1.1.1.1:1", "DNAT to 3.3.3.3:3", "no NAT: falls through to the next hook"]
    assert r.total == 1


@given(
    st.lists(st.tuples(st.integers(0, 1 << 31), st.booleans()), min_size=1, max_size=8),
    st.booleans(),
)
def test_random_cascades_sum_to_one_and_match_the_model(rules: list[tuple[int, bool]], last: bool) -> None:
    body = "".join(
        f"-A OUTPUT -m statistic --mode random {'! ' if neg else ''}--probability {threshold_to_decimal(k)} "
        f"-j DNAT --to-destination 10.0.0.{i}:80\n"
        for i, (k, neg) in enumerate(rules)
    )
    if last:
        body += "-A OUTPUT -j DNAT --to-destination 10.0.1.0:80\n"
    r = nf.trace(_rs(body), nf.Packet(dst="9.9.9.9", dport=80))
    assert r.total == 1
    ks = [(1 << 31) - k if neg else k for k, neg in rules]
    expected = Cascade(children=tuple(_b(i) for i in range(len(ks) + 1)), thresholds=tuple(ks)).shares()
    got: dict[str, Fraction] = {}
    for p in r.paths:
        got[str(p.verdict)] = got.get(str(p.verdict), Fraction(0)) + p.probability
    for i, share in enumerate(expected[:-1]):
        assert got.get(f"DNAT to 10.0.0.{i}:80", Fraction(0)) == share
    tail = "DNAT to 10.0.1.0:80" if last else "no NAT: falls through to the next hook"
    assert got.get(tail, Fraction(0)) == expected[-1]


def _b(i: int):  # noqa: ANN202
    from meshstat.model import Backend

    return Backend(name=f"b{i}")
