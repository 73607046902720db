"""nftables: parser (list and transaction forms), numgen exact shares, Numgen stage, traces."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from meshstat import kubeproxy as kp
from meshstat import model
from meshstat import netfilter as nf
from meshstat.errors import ConfigParseError, ModelError
from meshstat.model.numgen import _slot_counts
from meshstat.parsers.netfilter.nft import parse_nft

DATA = Path(__file__).parents[1] / "data" / "iptables"
TWO32 = 1 << 32


@pytest.mark.parametrize(("name", "rules"), [("kube-proxy-nftables-overall.nft", 57),
                                             ("kube-proxy-nftables-overall.nft-list", 57)])  # fmt: skip
def test_fixtures_parse(name: str, rules: int) -> None:
    rs = parse_nft((DATA / name).read_text(), name)
    assert rs.dialect == "nft"
    assert list(rs.tables) == [("ip", "kube-proxy")]
    assert rs.rule_count == rules
    assert rs.warnings == []
    t = rs.table("kube-proxy")
    assert t.chains["nat-output"].hook == "output" and t.chains["nat-output"].priority == -100
    assert t.chains["filter-prerouting-pre-dnat"].priority == -110  # "dstnat - 10" in the list form
    assert t.chains["nat-postrouting"].priority == 100
    assert len(t.sets["service-ips"].elements) == 9
    aff = t.sets["affinity-GTK6MW7G-ns5/svc5/tcp/p80__10.180.0.3/80"]
    assert aff.timeout == 10800 and aff.dynamic  # "timeout 10800s" and "timeout 3h"
    text = (DATA / name).read_text().splitlines()
    for c in t.chains.values():
        for r in c.rules:
            assert r.text.split()[0] in text[r.line - 1]


def test_both_forms_give_the_same_services_as_iptables_mode() -> None:
    def key(name: str) -> list:
        return [
            (i.name, i.protocol, i.cluster_ip, i.port, [(e.address, e.share) for e in i.endpoints], i.affinity_timeout,
             i.rejected, sorted(i.external_ips), i.node_ports)
            for i in kp.services(nf.load(str(DATA / name)))
        ]  # fmt: skip

    a = key("kube-proxy-nftables-overall.nft")
    assert a == key("kube-proxy-nftables-overall.nft-list")
    assert a == key("kube-proxy-iptables-overall.iptables-save")


def test_slot_counts_with_the_kernel_bias() -> None:
    assert nf.numgen_slot_counts(1) == (TWO32,)
    assert nf.numgen_slot_counts(2) == (TWO32 // 2, TWO32 // 2)
    assert nf.numgen_slot_counts(3) == (1431655766, 1431655765, 1431655765)
    for n in (1, 3, 5, 7, 10, 1000, 65537):
        assert sum(nf.numgen_slot_counts(n)) == TWO32


@pytest.mark.parametrize("bits", [6, 10])
def test_slot_counts_formula_by_enumeration(bits: int) -> None:
    for n in range(1, 40):
        counts = [0] * n
        for r in range(1 << bits):
            counts[(r * n) >> bits] += 1  # reciprocal_scale, literally
        assert tuple(counts) == _slot_counts(n, bits), n


@given(st.integers(1, 200), st.data())
def test_numgen_stage_shares_and_masses(n: int, data: st.DataObject) -> None:
    # a random partition of the slots over k children (weighted slot ranges)
    k = data.draw(st.integers(1, min(n, 6)))
    owner = [data.draw(st.integers(0, k - 1)) for _ in range(n)]
    owner[:k] = range(k)  # every child gets a slot
    slots = tuple(tuple((s, s) for s in range(n) if owner[s] == c) for c in range(k))
    stage = nf.Numgen(children=tuple(model.Backend(name=f"b{c}") for c in range(k)), modulus=n, slots=slots)
    counts = nf.numgen_slot_counts(n)
    expected = [Fraction(sum(counts[s] for s in range(n) if owner[s] == c), TWO32) for c in range(k)]
    assert list(stage.shares()) == expected
    assert sum(stage.masses64()) == 1 << 64
    assert [Fraction(m, 1 << 64) for m in stage.masses64()] == expected
    assert stage.masses64_exact() and stage.policy == "numgen"
    route = model.Route(root=stage)
    assert route.masses64() == (stage.masses64(), True)


def test_numgen_stage_validation() -> None:
    b = (model.Backend(name="a"), model.Backend(name="b"))
    with pytest.raises(ModelError, match="lead nowhere"):
        nf.Numgen(children=b, modulus=3, slots=(((0, 0),), ((1, 1),)))
    with pytest.raises(ModelError, match="mapped twice"):
        nf.Numgen(children=b, modulus=2, slots=(((0, 1),), ((1, 1),)))
    with pytest.raises(ModelError, match="outside"):
        nf.Numgen(children=b, modulus=2, slots=(((0, 0),), ((2, 2),)))
    s = nf.Numgen(children=b, modulus=2, offset=5, slots=(((5, 5),), ((6, 6),)))
    assert s.shares() == (Fraction(1, 2), Fraction(1, 2))


WEIGHTED = """table ip mst {
	chain ep0 {
		counter meta l4proto udp dnat to 127.0.0.1:9201
	}
	chain ep1 {
		counter meta l4proto udp dnat to 127.0.0.1:9202
	}
	chain out {
		type nat hook output priority -100; policy accept;
		udp dport 9200 numgen random mod 4 vmap { 0-2 : goto ep0, 3 : goto ep1 }
		udp dport 9300 counter meta l4proto udp dnat ip addr . port to numgen random mod 3 map { 0 : 127.0.0.1 . 9301, 1 : 127.0.0.1 . 9302, 2 : 127.0.0.1 . 9303 }
		udp dport 9400 counter dnat to numgen inc mod 3 map { 0 : 127.0.0.1 . 9401, 1 : 127.0.0.2 . 9401, 2 : 127.0.0.3 . 9401 }
		udp dport 9500 numgen random mod 3 vmap { 0 : goto ep0, 1 : goto ep1 }
	}
}
"""  # the measured numgen ruleset of docs/measurements.md, M8 (plus a partial map at 9500)


def test_weighted_slot_ranges_trace() -> None:
    rs = parse_nft(WEIGHTED, "w.nft")
    r = nf.trace(rs, nf.Packet(dst="127.0.0.1", dport=9200, proto="udp"))
    assert [(p.probability, str(p.verdict)) for p in r.paths] == [
        (Fraction(3, 4), "DNAT to 127.0.0.1:9201"), (Fraction(1, 4), "DNAT to 127.0.0.1:9202")
    ]
    assert r.paths[0].path_string() == "out:10 -> ep0:3"
    assert r.total == 1


def test_dnat_numgen_map_trace() -> None:
    rs = parse_nft(WEIGHTED, "w.nft")
    r = nf.trace(rs, nf.Packet(dst="127.0.0.1", dport=9300, proto="udp"))
    assert [(p.probability, str(p.verdict)) for p in r.paths] == [
        (Fraction(1431655766, TWO32), "DNAT to 127.0.0.1:9301"),
        (Fraction(1431655765, TWO32), "DNAT to 127.0.0.1:9302"),
        (Fraction(1431655765, TWO32), "DNAT to 127.0.0.1:9303"),
    ]
    r = nf.trace(rs, nf.Packet(dst="127.0.0.1", dport=9400, proto="udp"))
    assert [p.probability for p in r.paths] == [Fraction(1, 3)] * 3
    assert any("round-robin counter" in n for n in r.notes)
    r = nf.trace(rs, nf.Packet(dst="127.0.0.1", dport=9500, proto="udp"))
    assert sorted((p.probability, str(p.verdict)) for p in r.paths) == sorted([
        (Fraction(1431655766, TWO32), "DNAT to 127.0.0.1:9201"),
        (Fraction(1431655765, TWO32), "DNAT to 127.0.0.1:9202"),
        (Fraction(1431655765, TWO32), "no NAT: falls through to the next hook"),
    ])  # fmt: skip
    assert r.total == 1


NEWER = """table ip kube-proxy {
	map service-ips {
		type ipv4_addr . inet_proto . inet_service : verdict
		elements = { 172.30.0.44 . tcp . 80 : goto service-LAUZTJTB-ns4/svc4/tcp/p80,
			     172.30.0.41 . tcp . 80 : goto service-ULMVA6XW-ns1/svc1/tcp/p80 }
	}
	chain nat-output {
		type nat hook output priority -100; policy accept;
		jump services
	}
	chain services {
		ip daddr . meta l4proto . th dport vmap @service-ips
	}
	chain service-LAUZTJTB-ns4/svc4/tcp/p80 {
		ip daddr 172.30.0.44 ip saddr != 10.0.0.0/8 jump mark-for-masquerade
		meta l4proto tcp dnat ip addr . port to numgen random mod 3 map { 0 : 10.180.0.4 . 80, 1 : 10.180.0.5 . 80, 2 : 10.180.0.6 . 80 }
	}
	chain service-ULMVA6XW-ns1/svc1/tcp/p80 {
		meta l4proto tcp dnat to 10.180.0.1:80
	}
	chain mark-for-masquerade {
		meta mark set meta mark | 0x00004000
	}
}
"""  # the v1.36-line form (docs/measurements.md, M7): dnat straight from a numgen map; plain dnat for one ep


def test_newer_kube_proxy_forms() -> None:
    rs = parse_nft(NEWER, "newer.nft")
    infos = {i.name: i for i in kp.services(rs)}
    s4 = infos["ns4/svc4:p80"]
    assert (s4.cluster_ip, s4.port, s4.hash_ok) == ("172.30.0.44", 80, True)
    assert [(e.address, e.share) for e in s4.endpoints] == [
        ("10.180.0.4:80", Fraction(1431655766, TWO32)),
        ("10.180.0.5:80", Fraction(1431655765, TWO32)),
        ("10.180.0.6:80", Fraction(1431655765, TWO32)),
    ]
    assert [(e.address, e.share) for e in infos["ns1/svc1:p80"].endpoints] == [("10.180.0.1:80", 1)]
    r = nf.trace(rs, nf.Packet(dst="172.30.0.44", dport=80, src="192.168.0.9"))
    assert [p.mark for p in r.paths] == [0x4000] * 3
    assert [p.probability for p in r.paths] == [e.share for e in s4.endpoints]
    route = kp.load_service_route(rs, "ns4/svc4:p80")
    assert isinstance(route.root, nf.Numgen) and route.exact_shares() == tuple(e.share for e in s4.endpoints)


def test_overall_nft_traces() -> None:
    rs = nf.load(str(DATA / "kube-proxy-nftables-overall.nft-list"))
    r = nf.trace(rs, nf.Packet(dst="172.30.0.44", dport=80, src="10.0.0.5"))
    assert [(p.probability, str(p.verdict)) for p in r.paths] == [
        (Fraction(1, 2), "DNAT to 10.180.0.4:80"), (Fraction(1, 2), "DNAT to 10.180.0.5:80")
    ]
    # every base chain at output and postrouting, in priority order
    assert r.paths[0].path_string() == (
        "filter-output-pre-dnat:78 -> nat-output:115 -> services:138 -> service-LAUZTJTB-ns4/svc4/tcp/p80:189 -> "
        "endpoint-UNZV3OEC-ns4/svc4/tcp/p80__10.180.0.4/80:204 -> filter-output:95 -> filter-output:96 -> "
        "nat-postrouting:120 -> masquerading:108"
    )
    r = nf.trace(rs, nf.Packet(dst="172.30.0.44", dport=80, src="10.0.0.5"), tables=("nat",))
    assert r.paths[0].path_string() == (
        "nat-output:115 -> services:138 -> service-LAUZTJTB-ns4/svc4/tcp/p80:189 -> "
        "endpoint-UNZV3OEC-ns4/svc4/tcp/p80__10.180.0.4/80:204 -> nat-postrouting:120 -> masquerading:108"
    )
    assert r.not_walked and "left out by the chain types asked for" in r.not_walked[0]
    # affinity: both outcomes, conditional on the client's history
    r = nf.trace(rs, nf.Packet(dst="172.30.0.45", dport=80, src="10.0.0.5"))
    assert {str(c) for p in r.paths for c in p.conditions} == {
        "client seen before (set @affinity-GTK6MW7G-ns5/svc5/tcp/p80__10.180.0.3/80 within 10800 s): yes",
        "client seen before (set @affinity-GTK6MW7G-ns5/svc5/tcp/p80__10.180.0.3/80 within 10800 s): no",
    }
    assert r.total == 1
    # no endpoints: rejected by the filter chain at priority 0 after nat
    r = nf.trace(rs, nf.Packet(dst="172.30.0.46", dport=80, src="10.0.0.5"), tables=("nat", "filter"))
    assert [str(p.verdict) for p in r.paths] == ["REJECT"]
    assert r.paths[0].path_string() == (
        "filter-output-pre-dnat:78 -> nat-output:115 -> filter-output:95 -> service-endpoints-check:143 -> reject-chain:134"
    )
    # unknown port: the vmap key cannot be looked up
    r = nf.trace(rs, nf.Packet(dst="172.30.0.44", src="10.0.0.5"))
    assert r.paths[0].verdict.kind == "UNKNOWN"


def test_transaction_form_trace_matches_list_form() -> None:
    a = nf.load(str(DATA / "kube-proxy-nftables-overall.nft"))
    b = nf.load(str(DATA / "kube-proxy-nftables-overall.nft-list"))
    for dst in ("172.30.0.41", "172.30.0.44", "192.168.99.33", "5.6.7.8"):
        pkt = nf.Packet(dst=dst, dport=80, src="10.0.0.5")
        ra, rb = nf.trace(a, pkt), nf.trace(b, pkt)
        assert [(p.probability, str(p.verdict)) for p in ra.paths] == [(p.probability, str(p.verdict)) for p in rb.paths]


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("add table ip t\nadd rule ip t nope accept\n", 2, "chain 'nope' does not exist in table ip t (add chain first)"),
        ("add table ip t\nadd chain ip t c\nadd rule ip t c jump missing\n", 3,
         "chain 'missing' does not exist in table ip t (jump/goto target)"),
        ("table ip t {\n\tchain c {\n\t\tip daddr 10.0.0.300 accept\n\t}\n}\n", 3, "expected a valid value for ip daddr"),
        ("table ip t {\n\tchain c {\n\t\tnumgen random mod 2 vmap { 0 : goto c, 5 : goto c }\n\t}\n}\n", 3,
         "numgen slot 5-5 is outside 0..1"),
        ("table ip t {\n\tchain c {\n\t\taccept\n", 1, "expected '}' to close the block (input ended)"),
        ("bogus\n", 1, "expected 'table', 'add', 'insert', 'flush' or 'delete'"),
        ('table ip t {\n\tchain c {\n\t\tcomment "x\n', 3, "expected a closing double quote"),
    ],  # fmt: skip
)
def test_nft_errors(text: str, line: int, message: str) -> None:
    with pytest.raises(ConfigParseError) as err:
        parse_nft(text, "bad.nft")
    assert err.value.line == line
    assert str(err.value).startswith(f"bad.nft:{line}: {message}")


def test_unsupported_expression_is_opaque_with_a_warning() -> None:
    rs = parse_nft(
        "table ip t {\n\tchain c {\n\t\ttype nat hook output priority -100; policy accept;\n"
        "\t\tosf name \"Linux\" dnat to 1.1.1.1:1\n\t}\n}\n",
        "o.nft",
    )
    assert [str(w) for w in rs.warnings] == [
        "o.nft:4: unsupported nft expression 'osf name Linux' kept as opaque (traced as unknown)"
    ]
    r = nf.trace(rs, nf.Packet(dst="9.9.9.9", dport=80))
    assert sorted(str(p.verdict) for p in r.paths) == ["DNAT to 1.1.1.1:1", "no NAT: falls through to the next hook"]
    assert all(p.conditions for p in r.paths)


def test_ct_status_words_are_read_whole() -> None:
    rs = parse_nft(
        "table ip t {\n\tchain c {\n\t\tct status dnat accept\n\t\tct status { snat, dnat } accept\n"
        "\t\tct status assured accept\n\t\tct state new,established accept\n\t}\n}\n",
        "ct.nft",
    )
    rules = rs.table("t").chains["c"].rules
    assert [(m.kind, m.value) for m in rules[0].matches] == [("ctstate", frozenset({"DNAT"}))]
    assert [(m.kind, m.value) for m in rules[1].matches] == [("ctstate", frozenset({"SNAT", "DNAT"}))]
    assert [m.kind for m in rules[2].matches] == ["opaque"]  # a status bit the tracer does not follow
    assert [str(w) for w in rs.warnings] == [
        "ct.nft:5: unsupported nft expression 'ct status assured' kept as opaque (traced as unknown)"
    ]
    assert [(m.kind, m.value) for m in rules[3].matches] == [("ctstate", frozenset({"NEW", "ESTABLISHED"}))]


def test_transactions_flush_and_delete() -> None:
    base = (
        "add table ip t\nadd chain ip t a\nadd chain ip t b\nadd rule ip t a goto b\n"
        "add map ip t m { type ipv4_addr . inet_proto . inet_service : verdict ; }\n"
        "add element ip t m { 10.0.0.1 . tcp . 80 : goto a }\nadd element ip t m { 10.0.0.2 . tcp . 80 : goto b }\n"
        "add table ip u\nadd chain ip u x\n"
    )
    rs = parse_nft(base + "delete element ip t m { 10.0.0.1 . tcp . 80 }\n", "tx.nft")
    assert [el.key[0][1].text for el in rs.table("t").sets["m"].elements] == ["10.0.0.2"]
    # a flushed chain's old rules refer to nothing: the chain it went to may be deleted
    rs = parse_nft(base + "flush chain ip t a\ndelete element ip t m { 10.0.0.2 . tcp . 80 }\ndelete chain ip t b\n",
                   "tx.nft")  # fmt: skip
    assert set(rs.table("t").chains) == {"a"} and rs.table("t").chains["a"].rules == []
    rs = parse_nft(base + "flush table ip t\ndelete table ip u\n", "tx.nft")
    assert list(rs.tables) == [("ip", "t")]
    assert rs.rule_count == 0 and rs.table("t").sets["m"].elements == []
    rs = parse_nft(base + "flush ruleset\nadd table ip v\n", "tx.nft")
    assert list(rs.tables) == [("ip", "v")]
    rs = parse_nft(base + "delete rule ip t a handle 4\n", "tx.nft")
    assert [str(w) for w in rs.warnings] == ["tx.nft:10: 'delete rule' not applied (rule handles are not read)"]
    assert rs.table("t").chains["a"].rules[0].target.kind == "goto"
    with pytest.raises(ConfigParseError, match="set or map 'nope' does not exist in table ip t") as err:
        parse_nft(base + "delete element ip t nope { 1.2.3.4 }\n", "tx.nft")
    assert err.value.line == 10
