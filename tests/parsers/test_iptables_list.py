"""``iptables -L`` listings and pasted iptables-save text, read by the listing parser.

The listings are (a) typed in from the seed article (``tests/data/iptables/article-*``,
copy-paste damage included), (b) printed by real iptables 1.8.9 from the fixtures
(``tests/data/iptables/listings``, captured beside the ``iptables-save`` of the same
rules), (c) written inline for the corner cases. Each must give the same rules,
traces and exact shares as the ``iptables-save`` of the same rules; what a listing
cannot say must be a warning, never a silent guess.
"""

from __future__ import annotations

import io
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from meshstat import kubeproxy as kp
from meshstat import netfilter as nf
from meshstat.cli import main
from meshstat.errors import ConfigParseError, InvalidArgument
from meshstat.inference.counters import check_counters
from meshstat.model import probability_to_threshold
from meshstat.parsers.netfilter.iptables_list import (
    Counters,
    listing_info,
    parse_iptables_list,
    parse_iptables_paste,
    probability_threshold_candidates,
    sniff_iptables_text,
    to_iptables_save,
)
from meshstat.parsers.netfilter.iptables_save import parse_iptables
from meshstat.parsers.netfilter.ruleset import Rule

DATA = Path(__file__).parents[1] / "data" / "iptables"
LISTINGS = DATA / "listings"
TWO31 = 1 << 31


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    rc = main(list(argv), stdout=out, stderr=err)
    return rc, out.getvalue(), err.getvalue()


# ------------------------------------------------------------------ helpers (conformance tests use them too)


def rule_key(rule: Rule, *, interfaces: bool = True) -> tuple:
    """What a rule means: its matches (kind, negation, value) and its target."""
    ms = sorted(
        (
            (m.kind, m.negated, repr(m.value))
            for m in rule.matches
            if interfaces or m.kind not in ("in_if", "out_if")
        ),
        key=str,
    )
    return tuple(ms), (rule.target.kind, repr(rule.target.value))


def same_rules(save: nf.Ruleset, listing: nf.Ruleset, table: str, *, interfaces: bool = True,
               texts: bool = True) -> list[str]:  # fmt: skip
    """Differences between the rules of ``table`` in two rulesets (empty: the same)."""
    diffs = []
    st_, lt = save.table(table), listing.table(table)
    assert st_ is not None and lt is not None
    for name, ch in st_.chains.items():
        lch = lt.chains.get(name)
        if lch is None:
            diffs.append(f"chain {name} missing")
            continue
        if ch.policy != lch.policy:
            diffs.append(f"{name}: policy {ch.policy} != {lch.policy}")
        if len(ch.rules) != len(lch.rules):
            diffs.append(f"{name}: {len(ch.rules)} rules != {len(lch.rules)}")
        for a, b in zip(ch.rules, lch.rules, strict=False):
            if rule_key(a, interfaces=interfaces) != rule_key(b, interfaces=interfaces):
                diffs.append(f"{name}: {a.text!r} != {b.text!r}")
            elif texts and _norm(a.text) != _norm(b.text):
                diffs.append(f"{name}: text {a.text!r} != {b.text!r}")
    extra = set(lt.chains) - set(st_.chains)
    if extra:
        diffs.append(f"extra chains {sorted(extra)}")
    return diffs


def _norm(text: str) -> str:
    """Rule text without counters and with single spaces (iptables-save prints 'nfacct-name  X')."""
    if text.startswith("["):
        text = text.split("] ", 1)[1]
    return " ".join(text.split())


def trace_sig(result: nf.TraceResult) -> list[tuple]:
    """A trace without line numbers: probability, verdict, conditions and the steps' actions."""
    return sorted(
        (str(p.probability), str(p.verdict), tuple(str(c) for c in p.conditions),
         tuple((s.table, s.chain, s.action) for s in p.steps))
        for p in result.paths
    )  # fmt: skip


def trace_brief(result: nf.TraceResult) -> list[tuple]:
    return sorted(
        (str(p.probability), str(p.verdict), tuple(str(c) for c in p.conditions)) for p in result.paths
    )


def warnings_of(rs: nf.Ruleset) -> str:
    return "\n".join(str(w) for w in rs.warnings)


# ------------------------------------------------------------------ the probability printed with 11 decimals


def test_eleven_decimals_always_give_back_the_stored_threshold() -> None:
    """Every k in 0..2**31 printed with ``%.11f`` reads back as k, proven over all residues.

    Printed: ``m = round(k * 10**11 / 2**31) = round(k * 5**11 / 2**20)`` (glibc printf
    rounds the exact binary value, ties to even); read back: ``lround(m * 2**20 / 5**11)``.
    That is k iff ``|m * 2**20 - k * 5**11| < 5**11 / 2``. The left side depends only on
    ``k * 5**11 mod 2**20``, i.e. on ``k mod 2**20`` (the tie rule changes the sign, not
    the size), so checking k in ``0..2**20-1`` checks every k. The largest error is
    ``2**19 / 5**11 = 0.0107`` of one step: far from 0.5. (An exhaustive loop over all
    2**31 + 1 values, 82 s here, found the same maximum and no failure.)
    """
    f = 5**11
    k = np.arange(1 << 20, dtype=np.int64)
    num = k * f
    q, r = np.divmod(num, 1 << 20)
    m = q + ((r > (1 << 19)) | ((r == (1 << 19)) & (q % 2 == 1)))
    diff = np.abs(m * (1 << 20) - num)
    assert int(diff.max()) == 1 << 19
    assert np.all(2 * diff < f)


@given(st.integers(min_value=0, max_value=TWO31))
def test_printed_probability_round_trips_through_the_parsers(k: int) -> None:
    printed = "%.11f" % (k / TWO31)
    assert probability_to_threshold(printed) == k
    assert probability_threshold_candidates(printed) == (k, k)


@pytest.mark.parametrize(
    "k", [0, 1, 2, 715827883, 1073741824, TWO31 - 2, TWO31 - 1, TWO31, 429496730, 357913941]
)
def test_printed_probability_edges(k: int) -> None:
    printed = "%.11f" % (k / TWO31)
    assert probability_to_threshold(printed) == k
    assert probability_threshold_candidates(printed) == (k, k)


def test_fewer_decimals_leave_several_thresholds_and_are_warned() -> None:
    lo, hi = probability_threshold_candidates("0.333333")  # iptables < 1.4.11 printed %f
    assert hi - lo + 1 == 2147 and lo <= probability_to_threshold("0.333333") <= hi
    text = (
        "Chain KUBE-SVC-X (0 references)\n"
        "target prot opt source destination\n"
        "KUBE-SEP-A  all  --  0.0.0.0/0  0.0.0.0/0  statistic mode random probability 0.333333\n"
        "KUBE-SEP-B  all  --  0.0.0.0/0  0.0.0.0/0\n"
    )
    rs = parse_iptables_list(text, "old.txt")
    assert "probability 0.333333 has 6 decimals" in warnings_of(rs)
    assert "read as lround(p * 2**31)" in warnings_of(rs)
    rule = rs.table("nat").chains["KUBE-SVC-X"].rules[0]
    assert rule.matches[0].value == probability_to_threshold("0.333333")


# ------------------------------------------------------------------ the seed article's own listings


def test_article_listing_is_the_composed_iptables_save() -> None:
    lst = nf.load(str(DATA / "article-front-tomcat-pod-nat.vnL"))
    sav = nf.load(str(DATA / "article-front-tomcat-pod-nat.iptables-save-c"))
    assert lst.dialect == "iptables" and listing_info(lst) is not None
    assert same_rules(sav, lst, "nat") == []
    info = listing_info(lst)
    nat = lst.table("nat")
    got = {(r.chain, r.text): info.counters[r] for ch in nat.chains.values() for r in ch.rules}
    assert got[("PREROUTING", "-A PREROUTING -p tcp -j ISTIO_INBOUND")] == Counters(148, 8880)
    assert got[("ISTIO_INBOUND", "-A ISTIO_INBOUND -p tcp -m tcp --dport 15021 -j RETURN")] == Counters(
        143, 8580
    )
    assert got[("ISTIO_OUTPUT", "-A ISTIO_OUTPUT -m owner --uid-owner 1337 -j RETURN")] == Counters(8, 480)
    assert info.policies[("ip", "nat", "OUTPUT")] == Counters(46, 3926)
    assert info.references[("ip", "nat", "ISTIO_IN_REDIRECT")] == 3
    assert info.sections[0]["table_from"] == "command" and info.sections[0]["verbose"]
    w = warnings_of(lst)
    # the damage the article's copy shows: em dashes in the opt column, alignment lost
    assert (
        "article-front-tomcat-pod-nat.vnL:5: repaired copy-paste damage: '—' (em dash) in the opt column "
        "read as '--'" in w
    )
    assert "also lines 12, 19, 20" in w
    assert "column alignment is lost" in w
    assert len(lst.warnings) == 2  # nothing else was lost: -v, -n, every chain listed


HOOK_PACKETS = [
    ("output", nf.Packet(dst="10.108.203.9", dport=9999, uid=0, gid=0, out_if="eth0")),
    ("output", nf.Packet(dst="10.108.203.9", dport=9999, uid=1337, gid=1337, out_if="eth0")),
    ("output", nf.Packet(dst="10.108.203.9", dport=9999)),
    ("output", nf.Packet(dst="127.0.0.1", dport=15000, uid=1337, out_if="lo")),
    ("output", nf.Packet(dst="10.244.75.112", dport=8080, uid=1337, out_if="lo")),
    ("output", nf.Packet(dst="10.244.75.112", dport=8080, src="127.0.0.6", uid=1337, out_if="lo")),
    # the pod's own address: local (routed to INPUT after PREROUTING)
    ("prerouting", nf.Packet(dst="10.244.75.112", dport=8080, in_if="eth0", dst_local=True)),
    ("prerouting", nf.Packet(dst="10.244.75.112", dport=15021, in_if="eth0", dst_local=True)),
    ("prerouting", nf.Packet(dst="10.244.75.112", dport=22, in_if="eth0", dst_local=True)),
    ("prerouting", nf.Packet(dst="10.244.75.112", dport=15020, dst_local=True)),
]


@pytest.mark.parametrize(("hook", "pkt"), HOOK_PACKETS)
def test_article_listing_traces_like_its_iptables_save(hook: str, pkt: nf.Packet) -> None:
    lst = nf.load(str(DATA / "article-front-tomcat-pod-nat.vnL"))
    sav = nf.load(str(DATA / "article-front-tomcat-pod-nat.iptables-save-c"))
    assert trace_sig(nf.trace(lst, pkt, hook)) == trace_sig(nf.trace(sav, pkt, hook))


def test_article_listing_agrees_with_the_seed_dump_where_the_rules_agree() -> None:
    """The seed dump (newer Istio rules + kube-proxy's) answers the article's questions the same way.

    The application's outbound connection goes to Envoy's 15001 and an inbound one to
    15006 in both. Where the article's (older) Istio rules differ, the traces differ too:
    port 22 is excluded from capture in the article, and the seed dump also holds
    kube-proxy's chains, so Envoy's own (uid 1337) connection is DNATed there.
    """
    lst = nf.load(str(DATA / "article-front-tomcat-pod-nat.vnL"))
    seed = nf.load(str(DATA / "seed-front-tomcat-pod.iptables-save"))
    same = [HOOK_PACKETS[0], HOOK_PACKETS[3], HOOK_PACKETS[6]]
    for hook, pkt in same:
        assert trace_brief(nf.trace(lst, pkt, hook)) == trace_brief(nf.trace(seed, pkt, hook))
    app = nf.trace(lst, HOOK_PACKETS[0][1], "output")
    assert [(p.probability, str(p.verdict)) for p in app.paths] == [(1, "REDIRECT to port 15001")]
    hook, pkt = HOOK_PACKETS[8]
    assert str(nf.trace(lst, pkt, hook).paths[0].verdict).startswith("no NAT")
    assert str(nf.trace(seed, pkt, hook).paths[0].verdict) == "REDIRECT to port 15006"


def test_article_second_listing_is_partial_and_says_so() -> None:
    lst = nf.load(str(DATA / "article-bill-service-v1-pod-nat.vnL"))
    w = warnings_of(lst)
    assert "does not say which table" in w and "read as table 'nat' (target REDIRECT exists only there)" in w
    assert "built-in chains OUTPUT, POSTROUTING of table 'nat' are not in the listing" in w
    assert "chain ISTIO_IN_REDIRECT has 3 references but the listing shows 1 rule jumping to it" in w
    sav = nf.load(str(DATA / "article-front-tomcat-pod-nat.iptables-save-c"))
    for hook, pkt in HOOK_PACKETS:
        if hook == "prerouting":  # the chains it lists are the first listing's
            assert trace_sig(nf.trace(lst, pkt, hook)) == trace_sig(nf.trace(sav, pkt, hook))
    out = nf.trace(lst, HOOK_PACKETS[0][1], "output")  # OUTPUT was not listed: unknown, not "no NAT"
    assert [str(p.verdict) for p in out.paths] == [
        "unknown (target OUTPUT (not listed) at line 1 is not modelled)"
    ]


def test_article_kube_proxy_lines_give_the_seed_split() -> None:
    """The article's iptables-save | grep output (en dashes, curly quotes, repeats) == the seed dump."""
    grep = nf.load(str(DATA / "article-kube-proxy-grep.paste"))
    seed = nf.load(str(DATA / "seed-front-tomcat-pod.iptables-save"))
    a = kp.find_service(grep, "istio-demo/bill-service:http")
    b = kp.find_service(seed, "istio-demo/bill-service:http")
    assert (
        [(e.address, e.share, e.threshold) for e in a.endpoints]
        == [(e.address, e.share, e.threshold) for e in b.endpoints]
        == [("10.244.75.113:80", Fraction(1, 2), 1 << 30), ("10.244.75.115:80", Fraction(1, 2), None)]
    )
    assert (a.cluster_ip, a.port, a.hash_ok) == ("10.108.203.9", 9999, True)
    pod = nf.Packet(dst="10.108.203.9", dport=9999, src="10.244.75.112")
    ta = nf.trace(grep, pod, "output", chain="KUBE-SERVICES")
    tb = nf.trace(seed, pod, "output", chain="KUBE-SERVICES")
    assert (
        trace_brief(ta)
        == trace_brief(tb)
        == [("1/2", "DNAT to 10.244.75.113:80", ()), ("1/2", "DNAT to 10.244.75.115:80", ())]
    )
    w = warnings_of(grep)
    assert 'curly quotes “ ” read as "' in w
    assert "'–' (en dash) before an option name read as a dash or two (–comment -> --comment)" in w
    assert "'–' (en dash) standing alone read as '-'" in w
    assert "line repeats line 2 (overlapping grep output?): kept once" in w
    assert "chain KUBE-MARK-MASQ is jumped to but not in the paste" in w
    # a source outside the pod CIDR jumps to KUBE-MARK-MASQ, which the paste lacks: unknown, not guessed
    outside = nf.trace(grep, nf.Packet(dst="10.108.203.9", dport=9999, src="192.168.1.9"), "output",
                       chain="KUBE-SERVICES")  # fmt: skip
    assert [str(p.verdict) for p in outside.paths] == [
        "unknown (target KUBE-MARK-MASQ (not listed) at line 3 is not modelled)"
    ]


def test_article_files_through_the_cli() -> None:
    listing = str(DATA / "article-front-tomcat-pod-nat.vnL")
    rc, out, err = run(
        "trace", "--iptables", listing, "--dst", "10.108.203.9:9999", "--uid", "0", "--gid", "0",
        "--out-if", "eth0",
    )  # fmt: skip
    assert rc == 0 and err == ""
    assert "REDIRECT to port 15001" in out and "warning:" in out and "em dash" in out
    rc, out, err = run("services", "--iptables", str(DATA / "article-kube-proxy-grep.paste"),
                       "--service", "istio-demo/bill-service:http")  # fmt: skip
    assert rc == 0 and "10.244.75.113:80" in out and "1/2" in out and "warning:" in out
    rc, out, err = run("simulate", "--iptables", str(DATA / "article-kube-proxy-grep.paste"),
                       "--service", "istio-demo/bill-service:http", "-n", "1000", "--seed", "1")  # fmt: skip
    assert rc == 0, err


# ------------------------------------------------------------------ listings printed by real iptables


def _captured() -> list[tuple[str, str, str]]:
    out = []
    for f in sorted(LISTINGS.iterdir()):
        if f.name.count(".") < 2:
            continue  # README.md
        stem, table, form = f.name.split(".", 2)
        if form.startswith("iptables-save") or stem in ("kube-proxy-3ep-counters",) or table == "source":
            continue
        out.append((stem, table, form))
    return out


@pytest.mark.parametrize(("stem", "table", "form"), _captured())
def test_captured_listing_equals_its_iptables_save(stem: str, table: str, form: str) -> None:
    save = parse_iptables((LISTINGS / f"{stem}.{table}.iptables-save").read_text(), "save")
    lst = nf.load(str(LISTINGS / f"{stem}.{table}.{form}"))
    via = "v" in form.replace("-v", "v").split("-")[0] or form in ("L-n-x-v", "legacy-vnL")
    numeric = form != "L"
    diffs = same_rules(save, lst, table, interfaces=via, texts=via and numeric)
    w = warnings_of(lst)
    if not via:
        assert "listing without -v: interface matches (-i/-o) are not printed" in w
    if numeric:
        # what this parser does not model is opaque in both; in the listing its text differs
        diffs = [d for d in diffs if "# listing:" not in d]
        assert diffs == []
    else:
        # names: resolved where every system agrees, kept opaque (with a warning) otherwise
        for d in diffs:
            assert "# listing:" in d, d
        if diffs:
            assert "listing without -n" in w
    if "listing without -v" not in w and numeric:
        assert "column alignment" not in w  # real output is never reported as damaged


def test_captured_forms_give_identical_services_and_shares() -> None:
    for stem in ("kube-proxy-iptables-overall", "kube-proxy-iptables-affinity-etp-local-terminating"):
        save = parse_iptables((LISTINGS / f"{stem}.nat.iptables-save").read_text(), "save")
        lst = nf.load(str(LISTINGS / f"{stem}.nat.vnL"))
        a, b = kp.services(save), kp.services(lst)
        assert [(i.name, i.cluster_ip, i.port, i.affinity_timeout, i.external_policy) for i in a] == [
            (i.name, i.cluster_ip, i.port, i.affinity_timeout, i.external_policy) for i in b
        ]
        for x, y in zip(a, b, strict=True):
            assert [(e.address, e.share, e.threshold) for e in x.endpoints] == [
                (e.address, e.share, e.threshold) for e in y.endpoints
            ]
            assert [(e.address, e.share) for e in x.local_endpoints] == [
                (e.address, e.share) for e in y.local_endpoints
            ]


def test_non_numeric_listing_resolves_only_what_every_system_agrees_on() -> None:
    lst = nf.load(str(LISTINGS / "print-forms.nat.L"))
    w = warnings_of(lst)
    assert "port name 'http' read as 80 (the IANA name)" in w
    assert "group name 'tty' is machine-specific; kept as an unknown match" in w
    assert "UID name 'root' read as 0" in w
    assert "host name 'localhost' read as 127.0.0.1" in w
    seed = nf.load(str(LISTINGS / "seed-front-tomcat-pod.nat.L"))
    assert kp.find_service(seed, "istio-demo/bill-service:http").endpoints[0].share == Fraction(1, 2)


def test_print_forms_listing_details() -> None:
    lst = nf.load(str(LISTINGS / "print-forms.nat.vnL"))
    nat = lst.table("nat")
    out = {r.line: r for r in nat.chains["OUTPUT"].rules}
    texts = [r.text for r in nat.chains["OUTPUT"].rules]
    assert "-A OUTPUT -m statistic --mode nth --every 3 --packet 0 -j X" in texts  # 'packet 0' is not printed
    assert "-A OUTPUT -m statistic --mode random ! --probability 0.29999999981 -j X" in texts
    assert "-A OUTPUT -g Y" in texts and "-A OUTPUT -s 10.0.0.0/255.0.255.0" in texts
    assert "-A OUTPUT -j MARK --set-xmark 0x0/0xffff" in texts  # printed 'MARK and 0xffff0000'
    assert "-A OUTPUT -j CONNMARK --save-mark --nfmask 0xff --ctmask 0xf0" in texts  # 'ctmask ~0xf0'
    assert "-A OUTPUT -p tcp -m tcp ! --dport 22:25 ! --tcp-flags FIN,SYN,RST,ACK SYN -j X" in texts
    unknown = [r for r in out.values() if "# listing:" in r.text]
    assert [r.text.split("# listing: ")[1] for r in unknown] == ["limit: avg 3/hour burst 5", "icmptype 8"]
    x = nat.chains["X"].rules
    assert x[0].comment == 'with "quote" and */ close'  # the comment's end is where the line still parses
    assert "a comment contains '*/'" in warnings_of(lst)
    legacy = nf.load(str(LISTINGS / "print-forms.nat.legacy-vnL"))
    assert same_rules(lst, legacy, "nat") == []


# ------------------------------------------------------------------ counters


def test_counters_of_a_real_run_are_read_exactly() -> None:
    """3,000 connections through kube-proxy's 3-endpoint cascade (captured in a namespace)."""
    lst = nf.load(str(LISTINGS / "kube-proxy-3ep-counters.nat.vnxL"))
    save_c = (LISTINGS / "kube-proxy-3ep-counters.nat.iptables-save-c").read_text()
    # iptables-save -c prints the same counters as "[packets:bytes] -A ..."
    truth = {}
    for line in save_c.splitlines():
        if line.startswith("[") and "-j KUBE-SEP-" in line and "KUBE-SVC-" in line.split()[2]:
            pk, _ = line[1:].split("]")[0].split(":")
            truth[line.split("-j ")[-1]] = int(pk)
    res = check_counters(lst, "default/web:http")
    assert {r.chain: r.observed for r in res.rows} == truth
    assert res.n == sum(truth.values()) == 3000 and res.entered == 3000 and res.affinity_hits == 0
    assert [r.share for r in res.rows] == list(kp.find_service(lst, "default/web:http").stage.shares())
    assert res.method == "exact multinomial" and 0 < res.pvalue <= 1 and res.consistent
    assert res.rows[0].reached == 3000 and res.rows[1].reached == 3000 - res.rows[0].observed
    assert res.rows[2].rule_probability is None and res.rows[0].rule_probability == Fraction(715827883, TWO31)
    # the same counters through -vnL --line-numbers (counts below 100,000 are exact without -x)
    ln = nf.load(str(LISTINGS / "kube-proxy-3ep-counters.nat.vnL-line-numbers"))
    res2 = check_counters(ln, "10.96.0.10:80")
    assert [r.observed for r in res2.rows] == [r.observed for r in res.rows] and not res2.approximate
    assert res2.pvalue == res.pvalue


def test_counter_check_statistics_are_the_inference_machinery() -> None:
    from meshstat import inference, stats

    res = check_counters(nf.load(str(LISTINGS / "kube-proxy-3ep-counters.nat.vnxL")), "default/web:http")
    obs = [r.observed for r in res.rows]
    shares = [r.share for r in res.rows]
    assert res.chisquare_pvalue == pytest.approx(stats.goodness_of_fit(obs, shares).pvalue, rel=1e-12)
    for r in res.rows:
        assert r.pvalue == inference.binomial_pvalue(r.observed, res.n, float(r.share))
    # the headline test is check_split's on the same counts (weights proportional to the shares)
    ref = inference.check_split(obs, [1, 1, 1])
    assert res.method == ref.method and res.pvalue == pytest.approx(ref.pvalue, rel=1e-6)


def _counts_listing(counts: list[str], *, affinity: str | None = None) -> str:
    lines = [
        "# iptables -t nat -vnL",
        "Chain KUBE-SERVICES (2 references)",
        " pkts bytes target     prot opt in     out     source               destination",
        f"{counts[-1]:>5}   99 KUBE-SVC-AAAAAAAAAAAAAAAA  6    --  *      *       0.0.0.0/0            "
        "10.96.0.1"
        "            /* ns/s:http cluster IP */ tcp dpt:80",
        "",
        "Chain KUBE-SVC-AAAAAAAAAAAAAAAA (1 references)",
        " pkts bytes target     prot opt in     out     source               destination",
    ]
    if affinity is not None:
        lines.append(
            f"{affinity:>5}   99 KUBE-SEP-A  0    --  *      *       0.0.0.0/0            0.0.0.0/0         "
            "   "
            "/* ns/s:http -> 10.0.0.1:80 */ recent: CHECK seconds: 10800 reap name: KUBE-SEP-A side: source "
            "mask: 255.255.255.255"
        )
    lines += [
        f"{counts[0]:>5}   99 KUBE-SEP-A  0    --  *      *       0.0.0.0/0            0.0.0.0/0            "
        "/* ns/s:http -> 10.0.0.1:80 */ statistic mode random probability 0.33333333349",
        f"{counts[1]:>5}   99 KUBE-SEP-B  0    --  *      *       0.0.0.0/0            0.0.0.0/0            "
        "/* ns/s:http -> 10.0.0.2:80 */ statistic mode random probability 0.50000000000",
        f"{counts[2]:>5}   99 KUBE-SEP-C  0    --  *      *       0.0.0.0/0            0.0.0.0/0            "
        "/* ns/s:http -> 10.0.0.3:80 */",
    ]
    return "\n".join(lines) + "\n"


def test_counter_check_on_a_skewed_and_an_approximate_listing(tmp_path: Path) -> None:
    f = tmp_path / "skew.vnL"
    f.write_text(_counts_listing(["600", "200", "200", "1000"]))
    res = check_counters(nf.load(str(f)), "ns/s:http")
    assert [r.endpoint for r in res.rows] == ["KUBE-SEP-A", "KUBE-SEP-B", "KUBE-SEP-C"]  # chains not listed
    assert res.pvalue < 1e-20 and not res.consistent
    assert "jumped to but not in the listing" in "\n".join(res.warnings)
    f.write_text(_counts_listing(["334K", "333K", "333K", "1000K"]))
    res = check_counters(nf.load(str(f)), "ns/s:http")
    assert res.approximate and res.n == 1_000_000 and "over the counts the rounded listing allows" in res.summary()
    assert res.verdict == "undecidable" and res.pvalue_range is not None  # rounding of 1,000 vs noise of 577
    assert any("rounded by the listing" in n for n in res.notes)
    f.write_text(_counts_listing(["300", "300", "300", "1000"], affinity="100"))
    res = check_counters(nf.load(str(f)), "ns/s:http")
    assert res.affinity_hits == 100 and res.n == 900 and res.entered == 1000
    f.write_text(_counts_listing(["0", "0", "0", "0"]))
    with pytest.raises(InvalidArgument, match="all 0"):
        check_counters(nf.load(str(f)), "ns/s:http")
    with pytest.raises(InvalidArgument, match="no packet counters"):
        check_counters(
            nf.load(str(DATA / "kube-proxy-iptables-3ep-itp-cluster.iptables-save")), "ns1/svc1"
        )


def test_cli_check_with_a_listing() -> None:
    rc, out, err = run("check", "--iptables", str(LISTINGS / "kube-proxy-3ep-counters.nat.vnxL"),
                       "--service", "default/web:http")  # fmt: skip
    assert rc == 0 and err == ""
    assert "exact multinomial" in out and "3,000 connections counted in KUBE-SVC-" in out
    assert "p = 0.264 (exact multinomial): consistent with the random split" in out
    assert "999" in out
    rc, out, err = run("check", "--iptables", str(LISTINGS / "kube-proxy-3ep-counters.nat.vnxL"),
                       "--service", "default/web:http", "--wide")  # fmt: skip
    assert rc == 0 and "715827883/2147483648" in out  # the exact shares: every column
    rc, out, err = run("check", "--iptables", str(LISTINGS / "kube-proxy-3ep-counters.nat.vnxL"),
                       "--service", "default/web:http", "--format", "json")  # fmt: skip
    assert rc == 0 and '"observed":999' in out.replace(" ", "") and "p = 0.264" in err
    rc, out, err = run("check", "--iptables", "x", "--weights", "1,1", "--service", "a/b")
    assert rc == 2 and "does not go with --iptables" in err
    rc, out, err = run("check", "--observed", "1,2")
    assert rc == 2 and "--weights W1,W2,... is required" in err


# ------------------------------------------------------------------ listing forms, inline


V6 = """\
# ip6tables -t nat -vnL OUTPUT
Chain OUTPUT (policy ACCEPT 0 packets, 0 bytes)
 pkts bytes target     prot opt in     out     source               destination
    0     0 X          6    --  *      *       fd00::/8            !::1                  tcp dpt:80
    0     0 DNAT       6    --  *      *       ::/0                 fd00::1              statistic mode random probability 0.25000000000 to:[fd00::2]:8080
"""  # noqa: E501


def test_ip6tables_listing_of_one_chain() -> None:
    rs = parse_iptables_list(V6, "v6")
    nat = rs.table("nat", "ip6")
    assert nat is not None and nat.family == "ip6"
    texts = [r.text for r in nat.chains["OUTPUT"].rules]
    assert texts == [
        "-A OUTPUT -s fd00::/8 ! -d ::1/128 -p tcp -m tcp --dport 80 -j X",
        "-A OUTPUT -d fd00::1/128 -p tcp -m statistic --mode random --probability 0.25000000000 "
        "-j DNAT --to-destination [fd00::2]:8080",
    ]
    w = warnings_of(rs)
    assert "chain X is jumped to but not in the listing" in w
    assert "built-in chains PREROUTING, INPUT, POSTROUTING of table 'nat' are not in the listing" in w


OLD_STYLE = """\
Chain KUBE-SVC-PK4BNTKC2JYVE7B2 (1 references)
target     prot opt source               destination
KUBE-MARK-MASQ  tcp  -- !10.244.0.0/16        10.108.203.9         /* istio-demo/bill-service:http cluster IP */ tcp dpt:9999
KUBE-SEP-6OOOSB56IIMYCEYA  all  --  0.0.0.0/0            0.0.0.0/0            /* istio-demo/bill-service:http */ statistic mode random probability 0.50000000000
KUBE-SEP-AM36T22CJQS6HCG4  all  --  0.0.0.0/0            0.0.0.0/0            /* istio-demo/bill-service:http */
"""  # noqa: E501


def test_one_kube_svc_chain_pasted_alone_still_gives_the_split() -> None:
    rs = parse_iptables_list(OLD_STYLE, "svc.txt")
    info = kp.find_service(rs, "istio-demo/bill-service:http")
    assert [(e.chain, e.share) for e in info.endpoints] == [
        ("KUBE-SEP-6OOOSB56IIMYCEYA", Fraction(1, 2)),
        ("KUBE-SEP-AM36T22CJQS6HCG4", Fraction(1, 2)),
    ]
    w = warnings_of(rs)
    assert "read as table 'nat' (chain KUBE-SVC-PK4BNTKC2JYVE7B2 is a nat chain of kube-proxy or Istio)" in w
    assert "listing without -v" in w


def test_listing_without_a_column_header_and_with_line_numbers() -> None:
    text = (
        "Chain OUTPUT (policy ACCEPT 10 packets, 600 bytes)\n"
        "1     10   600 RETURN     0    --  *      lo      0.0.0.0/0            0.0.0.0/0\n"
        "2      0     0            0    --  *      *       10.1.0.0/16          0.0.0.0/0\n"
    )
    rs = parse_iptables_list("# iptables -t nat -L -v -n --line-numbers\n" + text, "noheader")
    rules = rs.table("nat").chains["OUTPUT"].rules
    assert [r.text for r in rules] == ["-A OUTPUT -o lo -j RETURN", "-A OUTPUT -s 10.1.0.0/16"]
    assert rules[1].target.kind == "none"  # an empty target column: a counting rule
    assert (
        "no column header before the first rule of chain OUTPUT: columns read as num pkts bytes"
        in warnings_of(rs)
    )
    assert listing_info(rs).counters[rules[0]] == Counters(10, 600)


def test_two_tables_in_one_paste() -> None:
    text = (
        "$ iptables -t nat -nL\n"
        "Chain PREROUTING (policy ACCEPT)\ntarget prot opt source destination\n"
        "REDIRECT  tcp  --  0.0.0.0/0  0.0.0.0/0  redir ports 15006\n"
        "$ iptables -nL\n"
        "Chain INPUT (policy DROP)\ntarget prot opt source destination\n"
        "ACCEPT  all  --  0.0.0.0/0  0.0.0.0/0  ctstate RELATED,ESTABLISHED\n"
        "Chain FORWARD (policy ACCEPT)\ntarget prot opt source destination\n"
        "Chain OUTPUT (policy ACCEPT)\ntarget prot opt source destination\n"
    )
    rs = parse_iptables_list(text, "two")
    assert sorted(rs.tables) == [("ip", "filter"), ("ip", "nat")]
    assert rs.table("filter").chains["INPUT"].policy == "DROP"
    assert (
        rs.table("filter").chains["INPUT"].rules[0].text
        == "-A INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT"
    )


@pytest.mark.parametrize(
    ("text", "line", "expected"),
    [
        (
            "0 0 RETURN all -- * * 0.0.0.0/0 0.0.0.0/0\n",
            1,
            "expected 'Chain NAME (policy P ...)' or 'Chain NAME (N references)' before the rules",
        ),
        (
            "Chain X (1 references)\npkts bytes target prot opt in out source destination\n"
            "x 0 RETURN all -- * * 0.0.0.0/0 0.0.0.0/0\n",
            3,
            "expected packet and byte counters",
        ),
        (
            "Chain X (1 references)\ntarget prot opt source destination\nRETURN all ?? 0.0.0.0/0 0.0.0.0/0\n",
            3,
            "expected the columns target, prot and opt",
        ),
        ("Chain X (policy MAYBE)\n", 1, "expected policy ACCEPT or DROP, got 'MAYBE'"),
        ("Chain X (policy ACCEPT 1 packets)\n", 1, "expected 'Chain NAME (policy ACCEPT|DROP"),
        (
            "Chain X (1 references)\ntarget prot opt source destination\nRETURN all -- 0.0.0.0/0 300.1.1.1\n",
            3,
            "expected an IP address or prefix in the destination column, got '300.1.1.1'",
        ),
        (
            "Chain X (1 references)\ntarget prot opt source destination\n"
            "X all -- 0.0.0.0/0 0.0.0.0/0 statistic mode random probability 1.5\n",
            3,
            "expected a probability in [0, 1] after 'probability', got '1.5'",
        ),
        (
            "Chain X (1 references)\ntarget prot opt source destination\n"
            "DNAT tcp -- 0.0.0.0/0 0.0.0.0/0 to:10.0.0.1:80 bogus\n",
            3,
            "expected the options of target DNAT",
        ),
        (
            "Chain X (1 references)\ntarget prot opt source destination\n"
            "RETURN tcp -- 0.0.0.0/0 0.0.0.0/0 tcp dpt:70000\n",
            3,
            "expected a port 0-65535, got '70000'",
        ),
        (
            "Chain X (1 references)\nnum target prot opt source destination\n"
            "2 RETURN all -- 0.0.0.0/0 0.0.0.0/0\n",
            3,
            "expected rule number 1 in chain X, got 2",
        ),
        (
            "Chain INPUT (policy ACCEPT)\ntarget prot opt source destination\n"
            "DNAT tcp -- 0.0.0.0/0 0.0.0.0/0 to:10.0.0.1:80\nChain FORWARD (policy ACCEPT)\n",
            4,
            "chain 'FORWARD' has a policy, but table 'nat' has no built-in chain of that name",
        ),
        (
            "Chain X (1 references)\ntarget prot opt source destination\n"
            "RETURN tcp -- 0.0.0.0/0 0.0.0.0/0 owner UID\n",
            3,
            "expected 'owner UID match N', 'owner GID match N' or 'owner socket exists'",
        ),
    ],
)
def test_malformed_listing_lines_give_one_line_errors(text: str, line: int, expected: str) -> None:
    with pytest.raises(ConfigParseError) as err:
        parse_iptables_list(text, "bad.txt")
    assert err.value.line == line
    msg = str(err.value)
    assert msg.startswith(f"bad.txt:{line}: {expected}"), msg
    assert "\n" not in msg.split(" (got")[0]


def test_malformed_listing_through_the_cli_is_one_line(tmp_path: Path) -> None:
    f = tmp_path / "bad.vnL"
    f.write_text("Chain X (1 references)\ntarget prot opt source destination\nRETURN all ?? a b\n")
    rc, out, err = run("services", "--iptables", str(f))
    assert rc == 3 and out == "" and err.count("\n") == 1
    assert err.startswith(f"meshstat: error: {f}:3: expected the columns target, prot and opt")


# ------------------------------------------------------------------ pastes of iptables-save text


def test_iptables_S_output_and_damaged_full_dumps() -> None:
    text = (
        "[root@node ~]# iptables -t nat -S KUBE-SVC-X\n"
        "-N KUBE-SVC-X\n"
        "-A KUBE-SVC-X -m statistic —mode random —probability 0.25 -j KUBE-SEP-A\n"
        "-A KUBE-SVC-X -j KUBE-SEP-B\n"
    )
    rs = parse_iptables_paste(text, "s.txt")
    rules = rs.table("nat").chains["KUBE-SVC-X"].rules
    assert rules[0].matches[0].value == 1 << 29
    assert "'—' (em dash) before an option name read as a dash or two (—mode -> --mode)" in warnings_of(rs)
    assert "rules without a '*table'" not in warnings_of(rs)  # the command named the table
    full = (DATA / "seed-front-tomcat-pod.iptables-save").read_text()
    damaged = full.replace("--comment", "–comment").replace("--probability", "–probability")
    assert sniff_iptables_text(damaged) == "paste" and sniff_iptables_text(full) is None
    a, b = nf.load("seed", text=damaged), nf.load("seed", text=full)
    assert same_rules(b, a, "nat") == []
    assert "en dash" in warnings_of(a)


def test_sniffing() -> None:
    assert sniff_iptables_text((DATA / "article-front-tomcat-pod-nat.vnL").read_text()) == "list"
    assert sniff_iptables_text((DATA / "article-kube-proxy-grep.paste").read_text()) == "paste"
    assert sniff_iptables_text((DATA / "kube-proxy-iptables-overall.iptables-save").read_text()) is None
    assert sniff_iptables_text("# Generated by iptables-save v1.8.9\n*nat\nCOMMIT\n") is None
    assert sniff_iptables_text("table ip kube-proxy {\n}\n") is None
    assert sniff_iptables_text("\n  Chain X (3 references)\n") == "list"
    assert sniff_iptables_text("$ iptables-save\n*nat\nCOMMIT\n") == "paste"


def test_listing_round_trips_to_iptables_save() -> None:
    lst = nf.load(str(LISTINGS / "kube-proxy-iptables-overall.nat.vnL"))
    back = parse_iptables(to_iptables_save(lst), "back")
    assert same_rules(back, lst, "nat") == []
    partial = parse_iptables_list(OLD_STYLE, "svc.txt")
    text = to_iptables_save(partial)
    assert "(chain " not in text and ":KUBE-SEP-AM36T22CJQS6HCG4 - [0:0]" in text
    parse_iptables(text, "partial")


# ------------------------------------------------------------------ damage that only a paste has, and fuzzing


def test_carriage_returns_byte_order_mark_and_odd_spaces() -> None:
    text = (DATA / "article-front-tomcat-pod-nat.vnL").read_text()
    damaged = "\ufeff" + text.replace("\n", "\r\n").replace("0.0.0.0/0 0.0.0.0/0", "0.0.0.0/0\u00a00.0.0.0/0")
    assert sniff_iptables_text(damaged) == "list"
    a, b = nf.load("a", text=text), nf.load("b", text=damaged)
    assert same_rules(a, b, "nat") == []
    assert "byte-order mark" in warnings_of(b)


_TOKENS = [
    "-1", "NaN", "1e309", "4294967296", "!", "-j", "x" * 300, "\r", "\ufeff", "\x00", "*/", "/*", "--",
    "—", "“", "[goto]", "to:", "Chain", "(1 references)", "0x", ":", "!!", "99999999999999999999K",
]  # fmt: skip
_SOURCES = [
    DATA / "article-front-tomcat-pod-nat.vnL", DATA / "article-kube-proxy-grep.paste",
    LISTINGS / "print-forms.nat.vnL", LISTINGS / "print-forms.nat.L",
    LISTINGS / "kube-proxy-3ep-counters.nat.vnxL",
]  # fmt: skip


@st.composite
def _mutated(draw: st.DrawFn) -> str:
    lines = draw(st.sampled_from(_SOURCES)).read_text().splitlines()
    for _ in range(draw(st.integers(1, 4))):
        if not lines:
            break
        i = draw(st.integers(0, len(lines) - 1))
        op = draw(st.integers(0, 4))
        if op == 0 and lines[i].split():
            words = lines[i].split()
            words[draw(st.integers(0, len(words) - 1))] = draw(st.sampled_from(_TOKENS))
            lines[i] = " ".join(words)
        elif op == 1:
            del lines[i]
        elif op == 2:
            lines.insert(i, lines[draw(st.integers(0, len(lines) - 1))])
        elif op == 3:
            lines = lines[:i]
        else:
            j = draw(st.integers(0, len(lines[i])))
            lines[i] = lines[i][:j] + draw(st.sampled_from(_TOKENS)) + lines[i][j:]
    return "\n".join(lines)


@given(_mutated())
def test_mutated_listings_raise_only_one_line_meshstat_errors(text: str) -> None:
    from meshstat.errors import MeshstatError

    messages: list[str] = []

    def attempt(fn: object) -> object:
        try:
            return fn()  # type: ignore[operator]
        except MeshstatError as exc:  # anything else fails the test
            messages.append(str(exc))
            return None

    rs = attempt(lambda: nf.load("fuzz", text=text))
    if rs is not None:
        for info in _services_or_none(rs):
            attempt(lambda i=info: check_counters(rs, i.name))
        attempt(lambda: nf.trace(rs, nf.Packet(dst="10.96.0.10", dport=80), "output"))
    assert all("\n" not in m for m in messages), messages


def _services_or_none(rs: nf.Ruleset) -> list:
    from meshstat.errors import MeshstatError

    try:
        return kp.services(rs)[:2]
    except MeshstatError:
        return []


# ------------------------------------------------------------------ fall-through counters, limits, ip6tables

_FALL_THROUGH = """\
# iptables -t nat -vnL
Chain KUBE-SERVICES (2 references)
 pkts bytes target     prot opt in     out     source               destination
 3000   99 KUBE-SVC-AAAAAAAAAAAAAAAA  6    --  *      *       0.0.0.0/0            10.96.0.1            \
/* ns/s:http cluster IP */ tcp dpt:80

Chain KUBE-SVC-AAAAAAAAAAAAAAAA ({refs} references)
 pkts bytes target     prot opt in     out     source               destination
 1000   99 KUBE-SEP-A  0    --  *      *       0.0.0.0/0            0.0.0.0/0            \
/* ns/s:http -> 10.0.0.1:80 */ statistic mode random probability 0.33333333349
  950   99 KUBE-SEP-B  0    --  *      *       0.0.0.0/0            0.0.0.0/0            \
/* ns/s:http -> 10.0.0.2:80 */ statistic mode random probability 0.50000000000
  {last}   99 KUBE-SEP-C  0    --  *      *       0.0.0.0/0            0.0.0.0/0            \
/* ns/s:http -> 10.0.0.3:80 */ statistic mode random probability 0.50000000000
"""


def test_fall_through_connections_are_counted_from_the_jumps_into_the_chain() -> None:
    rs = nf.load("ft.vnL", text=_FALL_THROUGH.format(refs=1, last=520))
    res = check_counters(rs, "ns/s:http")
    counts = [row.observed for row in res.rows]
    assert counts == [1000, 950, 520, 3000 - 1000 - 950 - 520]
    assert res.n == 3000


def test_fall_through_refused_when_a_jump_into_the_chain_is_missing() -> None:
    """'(2 references)' but one jumping rule in the paste: the fall-through count would be wrong."""
    rs = nf.load("ft2.vnL", text=_FALL_THROUGH.format(refs=2, last=520))
    with pytest.raises(InvalidArgument, match="cannot be counted"):
        check_counters(rs, "ns/s:http")


def test_fall_through_refused_with_rounded_counters() -> None:
    rs = nf.load("ftk.vnL", text=_FALL_THROUGH.format(refs=1, last="1K"))
    with pytest.raises(InvalidArgument, match="-x"):
        check_counters(rs, "ns/s:http")


@pytest.mark.parametrize("counter", ["9" * 5000, str(2**64), "9999999999999999T"], ids=["5000-digits", "2**64", "T"])
def test_counters_beyond_64_bits_are_refused_at_their_line(counter: str) -> None:
    text = _FALL_THROUGH.format(refs=1, last=counter)
    with pytest.raises(ConfigParseError, match=r"ft\.vnL:10: expected packet and byte counters"):
        nf.load("ft.vnL", text=text)


def test_ip6tables_command_lines_name_the_family() -> None:
    chain = (
        "Chain PREROUTING (policy ACCEPT 0 packets, 0 bytes)\n"
        " pkts bytes target     prot opt in     out     source               destination\n"
    )
    text = f"# iptables -t raw -vnL\n{chain}\n# ip6tables -t raw -vnL\n{chain}"
    rs = nf.load("both.vnL", text=text)
    assert sorted(rs.tables) == [("ip", "raw"), ("ip6", "raw")]


def test_counters_tests_frame_lists_each_test_once() -> None:
    from meshstat.report.netfilter import counters_tests_frame

    rs = nf.load("ft.vnL", text=_FALL_THROUGH.format(refs=1, last=520))
    res = check_counters(rs, "ns/s:http")  # 4 outcomes, n = 3000: the chi-square heads the verdict
    tests = counters_tests_frame(res)["test"].to_list()
    assert len(tests) == len(set(tests))
    assert res.method in tests


def test_iptables_save_c_counters_give_the_listings_check() -> None:
    """``iptables-save -c`` of the same rules and traffic as the -vnL listing: the same counts and p-value."""
    save_c = nf.load(str(DATA / "listings" / "kube-proxy-3ep-counters.nat.iptables-save-c"))
    listing = nf.load(str(DATA / "listings" / "kube-proxy-3ep-counters.nat.vnL-line-numbers"))
    a = check_counters(save_c, "default/web:http")
    b = check_counters(listing, "default/web:http")
    assert [(r.endpoint, r.observed) for r in a.rows] == [(r.endpoint, r.observed) for r in b.rows]
    assert [r.observed for r in a.rows] == [999, 964, 1037]
    assert a.pvalue == b.pvalue and a.entered == 3000


@pytest.mark.parametrize("prefix", ["[12:ab]", "[1:2:3]", "[" + "9" * 21 + ":0]"])
def test_malformed_save_counters_are_refused_at_their_line(prefix: str) -> None:
    text = f"*nat\n:OUTPUT ACCEPT [0:0]\n{prefix} -A OUTPUT -j ACCEPT\nCOMMIT\n"
    with pytest.raises(ConfigParseError, match=r"c\.txt:3: expected counters as \[packets:bytes\]"):
        parse_iptables(text, "c.txt")


def test_a_dump_without_counters_is_refused_by_check() -> None:
    rs = nf.load(str(DATA / "listings" / "kube-proxy-3ep-counters.nat.vnL-line-numbers"))
    plain = parse_iptables(to_iptables_save(rs), "plain.iptables-save")
    with pytest.raises(InvalidArgument, match="no packet counters"):
        check_counters(plain, "default/web:http")
