"""iptables-save / iptables-restore parser: every fixture, both forms, errors, tokenizer."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from meshstat import kubeproxy as kp
from meshstat import netfilter as nf
from meshstat.errors import ConfigParseError
from meshstat.model import CASCADE_ONE, probability_to_threshold, threshold_to_decimal
from meshstat.parsers import sniff_netfilter_dialect
from meshstat.parsers.netfilter import iptables_save as ipt

DATA = Path(__file__).parents[1] / "data" / "iptables"
IPTABLES_FILES = sorted(
    p.name for p in DATA.iterdir() if p.suffix in (".iptables-save", ".restore", ".golden")
)

# file -> {(family, table): rule count}; counted by hand from the files ('-A' lines per table)
EXPECTED_RULES = {
    "istio-cni-sidecar-basic.golden": {("ip", "nat"): 20},
    "istio-cni-sidecar-basic.iptables-save": {("ip", "nat"): 20},
    "istio-cni-sidecar-dns.iptables-save": {("ip", "raw"): 8, ("ip", "nat"): 23},
    "istio-cni-sidecar-include-exclude-ports.iptables-save": {("ip", "nat"): 20},
    "istio-cni-sidecar-tproxy.iptables-save": {("ip", "mangle"): 17, ("ip", "nat"): 15},
    "kube-proxy-iptables-3ep-itp-cluster.iptables-save": {("ip", "filter"): 4, ("ip", "nat"): 16},
    "kube-proxy-iptables-affinity-etp-local-terminating.iptables-save": {("ip", "filter"): 5, ("ip", "nat"): 28},
    "kube-proxy-iptables-generated-4-5-10ep.iptables-save": {("ip", "nat"): 64},
    "kube-proxy-iptables-generated-6ep-legacy-5digit.iptables-save": {("ip", "nat"): 21},
    "kube-proxy-iptables-overall.iptables-save": {("ip", "filter"): 10, ("ip", "nat"): 55},
    "kube-proxy-iptables-overall.restore": {("ip", "filter"): 10, ("ip", "nat"): 55},
    "seed-front-tomcat-pod.iptables-save": {("ip", "nat"): 36},
}


def load(name: str) -> ipt.Ruleset:
    return ipt.parse_iptables((DATA / name).read_text(), name)


def test_every_iptables_file_is_covered() -> None:
    assert set(IPTABLES_FILES) == set(EXPECTED_RULES)


@pytest.mark.parametrize("name", IPTABLES_FILES)
def test_fixture_parses_with_rule_counts(name: str) -> None:
    rs = load(name)
    counts = {k: sum(len(c.rules) for c in t.chains.values()) for k, t in rs.tables.items()}
    assert counts == EXPECTED_RULES[name]
    assert rs.warnings == []  # every match and target in the fixtures is modelled
    text = (DATA / name).read_text().splitlines()
    for t in rs.tables.values():
        for c in t.chains.values():
            for r in c.rules:
                assert text[r.line - 1].strip() == r.text  # file and line kept
                assert r.chain == c.name
                assert r.target.kind != "jump?"


@pytest.mark.parametrize("name", IPTABLES_FILES)
def test_fast_path_equals_general_parser(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The kube-proxy fast paths build exactly what the general parser builds."""
    fast = load(name)
    monkeypatch.setattr(ipt, "_fast_rule", lambda *a: None)
    slow = load(name)
    assert _dump(fast) == _dump(slow)


def _dump(rs: ipt.Ruleset) -> list:
    out = []
    for key, t in rs.tables.items():
        for c in t.chains.values():
            for r in c.rules:
                out.append((key, c.name, r.line, r.matches, r.target.kind, r.target.value, r.comment, r.sets_updated))
        out.append(sorted((k, sorted(x.line for x in v)) for k, v in t.referrers.items()))
    return out


def test_fast_path_equals_general_parser_on_generated_dump(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = random.Random(7)
    svcs = [
        (f"ns{i}/svc{i}:p{i}", rng.choice(["tcp", "udp"]), f"10.96.{i}.1", 80 + i,
         [f"10.244.{i}.{j}:{8000 + j}" for j in range(rng.randint(1, 12))])
        for i in range(30)
    ]  # fmt: skip
    text = kp.kube_proxy_iptables_save(svcs)
    fast = ipt.parse_iptables(text, "gen")
    monkeypatch.setattr(ipt, "_fast_rule", lambda *a: None)
    slow = ipt.parse_iptables(text, "gen")
    assert _dump(fast) == _dump(slow)


def test_restore_and_save_forms_give_the_same_rules() -> None:
    """kube-proxy's restore input and iptables-save's output of it (docs/measurements.md, M5)."""
    save = load("kube-proxy-iptables-overall.iptables-save")
    restore = load("kube-proxy-iptables-overall.restore")

    def canon(rs: ipt.Ruleset) -> dict:
        out = {}
        for key, t in rs.tables.items():
            for c in t.chains.values():
                rules = []
                for r in c.rules:
                    ms = sorted(
                        (m.kind, m.negated, repr(tuple(n[:3] for n in m.value) if m.kind in ("src", "dst") else m.value))
                        for m in r.matches
                        if m.kind != "always"
                    )
                    rules.append((ms, r.target.kind, repr(r.target.value)[:60] if r.target.kind != "dnat" else r.target.value[:2], r.comment))
                out[(key, c.name)] = rules
        return out

    a, b = canon(save), canon(restore)
    assert a.keys() == b.keys()
    for k in a:
        assert a[k] == b[k], k
    # MARK --or-mark 0x4000 (restore) == --set-xmark 0x4000/0x4000 (save): same (mask, xor)
    mm = save.table("nat").chains["KUBE-MARK-MASQ"].rules[0].target
    assert mm.kind == "mark"
    assert mm.value == (0x4000, 0x4000)
    assert restore.table("nat").chains["KUBE-MARK-MASQ"].rules[0].target.value == mm.value


def test_probability_forms_give_the_same_threshold() -> None:
    save = load("kube-proxy-iptables-3ep-itp-cluster.iptables-save")
    ks = [m.value for r in save.table("nat").chains["KUBE-SVC-AQI2S6QIMU7PVVRP"].rules for m in r.matches if m.kind == "random"]
    assert ks == [715827883, 1 << 30]
    legacy = load("kube-proxy-iptables-generated-6ep-legacy-5digit.iptables-save")
    ks = [m.value for r in legacy.table("nat").chains["KUBE-SVC-CDGGSHYLG3RE2FKL"].rules for m in r.matches if m.kind == "random"]
    assert ks == [357921100, 429496730, 536870912, 715820724, 1073741824]  # docs/measurements.md, M1 values


@given(st.integers(min_value=0, max_value=CASCADE_ONE))
def test_printed_probability_reparses_to_the_same_k(k: int) -> None:
    text = (
        "*nat\n:X - [0:0]\n"
        f"-A X -m statistic --mode random --probability {threshold_to_decimal(k)} -j RETURN\nCOMMIT\n"
    )
    rs = ipt.parse_iptables(text, "t")
    assert rs.table("nat").chains["X"].rules[0].matches[0].value == k


def test_all_match_and_target_kinds() -> None:
    text = """*mangle
:PREROUTING ACCEPT [0:0]
:X - [0:0]
-A PREROUTING -i eth+ -p udp -m udp --sport 1000:2000 -m multiport --dports 53,80:90 -j X
-A X -m owner --uid-owner 10-20 ! --gid-owner 5 -m mark --mark 0x1/0xff -m connmark ! --mark 0x2 -j MARK --set-mark 0x10/0xf0
-A X -m recent --name L --rcheck --seconds 60 --hitcount 2 --rdest -m addrtype --src-type LOCAL -m conntrack --ctstate NEW,DNAT -m state --state NEW -j CONNMARK --save-mark --nfmask 0xff --ctmask 0xf
-A X -m statistic --mode nth --every 3 --packet 1 -m nfacct --nfacct-name  acct -m tcp --tcp-flags SYN,ACK SYN -j LOG --log-prefix "a b \\"c\\""
-A X -p tcp -j TPROXY --on-port 15006 --on-ip 0.0.0.0 --tproxy-mark 0x539/0xffffffff
-A X -f -j CT --zone 1
-A X -g X
-A X -j RETURN
COMMIT
*nat
:PREROUTING ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A PREROUTING -d 10.0.0.0/255.0.0.0 -p tcp -j DNAT --to-destination [fd00::1]:80
-A PREROUTING -p tcp -j REDIRECT --to-ports 15001-15002
-A POSTROUTING -s 1.2.3.4,5.6.7.0/24 -j SNAT --to-source 9.9.9.9:1000-2000
-A POSTROUTING -j MASQUERADE --random-fully
-A POSTROUTING -j REJECT --reject-with tcp-reset
COMMIT
"""
    rs = ipt.parse_iptables(text, "k")
    assert rs.warnings == []
    x = rs.table("mangle").chains["X"].rules
    kinds = [[m.kind for m in r.matches] for r in x]
    assert kinds[0] == ["uid", "gid", "mark", "connmark"]
    assert x[0].matches[0].value == (10, 20) and x[0].matches[1].negated
    assert x[0].target.value == (0xF0 | 0x10, 0x10)  # --set-mark v/m == --set-xmark v/(v|m)
    assert kinds[1] == ["recent", "addrtype", "ctstate", "ctstate"]
    assert x[1].matches[0].value["side"] == "dst" and x[1].matches[0].value["hitcount"] == 2
    assert x[1].target.value == ("save", 0xFF, 0xF)
    assert kinds[2] == ["nth", "always", "tcp_flags"]
    assert x[2].matches[0].value == (3, 1)
    assert x[2].target.kind == "log" and x[2].target.value["--log-prefix"] == 'a b "c"'
    assert x[3].target.value == (15006, "0.0.0.0", (0x539, 0xFFFFFFFF))
    assert [r.target.kind for r in x[4:]] == ["ct", "goto", "return"]
    pre = rs.table("mangle").chains["PREROUTING"].rules[0]
    assert [m.kind for m in pre.matches] == ["in_if", "proto", "sport", "multiport"]
    assert pre.matches[3].value == ("dst", ((53, 53), (80, 90)))
    nat = rs.table("nat")
    d = nat.chains["PREROUTING"].rules
    assert d[0].matches[0].value[0].prefixlen == 8
    assert d[0].target.value[:2] == ("fd00::1", (80, 80))
    assert d[1].target.value == (15001, 15002)
    post = nat.chains["POSTROUTING"].rules
    assert len(post[0].matches[0].value) == 2
    assert [r.target.kind for r in post] == ["snat", "masquerade", "reject"]


def test_ip6tables_dump_goes_to_family_ip6() -> None:
    text = """# Generated by ip6tables-save v1.8.9 (nf_tables)
*nat
:OUTPUT ACCEPT [0:0]
-A OUTPUT -d fd00::10/128 -p tcp -m tcp --dport 80 -j DNAT --to-destination [fd00::2]:8080
COMMIT
# Generated by iptables-save v1.8.9 (nf_tables)
*nat
:OUTPUT ACCEPT [0:0]
-A OUTPUT -d 10.0.0.10/32 -p tcp -m tcp --dport 80 -j DNAT --to-destination 10.0.0.2:8080
COMMIT
"""
    rs = ipt.parse_iptables(text, "dual")
    assert set(rs.tables) == {("ip6", "nat"), ("ip", "nat")}
    r6 = nf.trace(rs, nf.Packet(dst="fd00::10", dport=80))
    assert [str(p.verdict) for p in r6.paths] == ["DNAT to [fd00::2]:8080"]
    r4 = nf.trace(rs, nf.Packet(dst="10.0.0.10", dport=80))
    assert [str(p.verdict) for p in r4.paths] == ["DNAT to 10.0.0.2:8080"]


def test_unknown_match_and_target_are_kept_as_opaque_with_a_warning() -> None:
    text = """*nat
:PREROUTING ACCEPT [0:0]
-A PREROUTING -m set --match-set KUBE-CLUSTER-IP dst,dst -j ACCEPT
-A PREROUTING -p tcp -j NETMAP --to 10.0.0.0/24
-A PREROUTING -j NOTRACK
COMMIT
"""
    rs = ipt.parse_iptables(text, "o.rules")
    msgs = [str(w) for w in rs.warnings]
    assert msgs[0] == "o.rules:3: unknown match '-m set' kept as opaque (traced as unknown)"
    assert msgs[1].startswith("o.rules:4: unknown target '-j NETMAP'")
    assert msgs[2].startswith("o.rules:5: unknown target '-j NOTRACK'")
    rules = rs.table("nat").chains["PREROUTING"].rules
    assert rules[0].matches[0].kind == "opaque"
    assert "--match-set KUBE-CLUSTER-IP dst,dst" in rules[0].matches[0].text
    assert rules[1].target.kind == rules[2].target.kind == "opaque"


@pytest.mark.parametrize(
    ("text", "line", "expected"),
    [
        ("*nat\n-A OUTPUT -s 10.0.0.300 -j ACCEPT\nCOMMIT\n", 2, "expected an IP address or CIDR after -s"),
        ("*nat\n:X - [0:0]\n-A X -j\nCOMMIT\n", 3, "expected a target after -j"),
        ("*nat\n-A NOPE -j ACCEPT\nCOMMIT\n", 2, "chain 'NOPE' does not exist in table 'nat'"),
        ("*nat\n:OUTPUT ACCEPT [0:0]\n-A OUTPUT -j KUBE-SVC-X\nCOMMIT\n", 3,
         "chain 'KUBE-SVC-X' does not exist in table 'nat' (jump target)"),
        ("*nat\n:OUTPUT ACCEPT [0:0]\n-A OUTPUT -g KUBE-SVC-X\nCOMMIT\n", 3,
         "chain 'KUBE-SVC-X' does not exist in table 'nat' (goto target)"),
        ("*nat\n-A OUTPUT -m comment --comment \"abc -j ACCEPT\nCOMMIT\n", 2, "expected a closing double quote"),
        ("*nat\n-A OUTPUT -m statistic --mode random --probability 1.5 -j ACCEPT\nCOMMIT\n", 2,
         "expected a probability in [0, 1] after --probability"),
        ("*nat\n-A OUTPUT -m statistic --mode nth --every 3 --packet 3 -j ACCEPT\nCOMMIT\n", 2,
         "expected --every N >= 1 and --packet P with 0 <= P <= N-1"),
        ("*nat\n-A OUTPUT --dport 80 -j ACCEPT\nCOMMIT\n", 2, "unknown option --dport (expected -m MODULE before it)"),
        ("*nat\n-A OUTPUT -j DNAT\nCOMMIT\n", 2, "expected --to-destination IP[:PORT] after -j DNAT"),
        ("*nat\nfoo bar\nCOMMIT\n", 2, "expected '*table', ':CHAIN POLICY [packets:bytes]', '-A CHAIN rule...' or 'COMMIT'"),
        ("*nosuch\nCOMMIT\n", 1, "expected a table name (raw, mangle, nat, filter or security) after '*'"),
        ("-A OUTPUT -j ACCEPT\n", 1, "expected a table header such as '*nat' before the first rule"),
        ("*nat\n-A OUTPUT -j ACCEPT\n", 2, "expected COMMIT at the end of table 'nat' (input ended)"),
        ("*nat\n-A OUTPUT -p tcp -m tcp --dport 70000 -j ACCEPT\nCOMMIT\n", 2, "expected valid values for -m tcp"),
    ],  # fmt: skip
)
def test_malformed_lines_give_file_line_messages(text: str, line: int, expected: str) -> None:
    with pytest.raises(ConfigParseError) as err:
        ipt.parse_iptables(text, "bad.rules")
    assert err.value.line == line
    assert str(err.value).startswith(f"bad.rules:{line}: {expected}")


def test_empty_input() -> None:
    with pytest.raises(ConfigParseError, match="empty input"):
        ipt.parse_iptables("\n# only a comment\n", "e")


def test_tokenizer() -> None:
    assert ipt.split_rule('-A X -m comment --comment "a b" -j Y') == (
        ["-A", "X", "-m", "comment", "--comment", "a b", "-j", "Y"], {5}
    )
    words, quoted = ipt.split_rule('-m comment --comment "say \\"hi\\" -x" -j Y')
    assert words[3] == 'say "hi" -x' and quoted == {3}
    assert ipt.split_rule('--comment x"y z"w') == (["--comment", "xy zw"], {1})
    assert ipt.split_rule("a  b\tc") == (["a", "b", "c"], None)
    with pytest.raises(ValueError, match="unterminated"):
        ipt.split_rule('a "b')


def test_quoted_option_like_value_is_a_value() -> None:
    rs = ipt.parse_iptables('*nat\n:X - [0:0]\n-A X -m comment --comment "-j DROP" -j RETURN\nCOMMIT\n', "q")
    r = rs.table("nat").chains["X"].rules[0]
    assert r.comment == "-j DROP" and r.target.kind == "return"


def test_restore_commands_and_counters() -> None:
    text = """*filter
:INPUT DROP [5:300]
-N MINE
[3:120] -A INPUT -j MINE
-A MINE -j ACCEPT -c 1 2
-I MINE 1 -j RETURN
-I INPUT -j ACCEPT
-P INPUT ACCEPT
COMMIT
"""
    rs = ipt.parse_iptables(text, "r")
    t = rs.table("filter")
    assert t.chains["INPUT"].policy == "ACCEPT"
    assert [r.target.kind for r in t.chains["MINE"].rules] == ["return", "accept"]
    assert [r.target.kind for r in t.chains["INPUT"].rules] == ["accept", "jump"]


def test_cidr_parsing() -> None:
    n = ipt.parse_cidr("10.1.2.3/8")
    assert (n.version, n.network, n.prefixlen) == (4, 10 << 24, 8)
    assert n.contains(4, (10 << 24) + 5)
    assert not n.contains(6, 10 << 24)
    assert ipt.parse_cidr("fd00::/8").contains(6, 0xFD << 120)
    for bad in ("1.2.3", "1.2.3.256", "1.2.3.4/33", "a.b.c.d", "1.2.3.4/xx"):
        with pytest.raises(ValueError):
            ipt.parse_cidr(bad)


def test_sniffing() -> None:
    assert sniff_netfilter_dialect("# Generated by iptables-save v1.8.9\n*nat\n") == "iptables"
    assert sniff_netfilter_dialect("\n*filter\n") == "iptables"
    assert sniff_netfilter_dialect("table ip kube-proxy {\n") == "nft"
    assert sniff_netfilter_dialect("add table ip kube-proxy\n") == "nft"
    assert sniff_netfilter_dialect("IP Virtual Server version 1.2.1") is None
    assert sniff_netfilter_dialect("") is None


def test_probability_threshold_matches_model() -> None:
    # the parser uses the model's conversion: k from the decimal as written or printed
    assert probability_to_threshold("0.3333333333") == probability_to_threshold("0.33333333349") == 715827883
