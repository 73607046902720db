"""Listings printed by real iptables against the iptables-save of the same rules.

Every fixture is loaded into a throw-away namespace (``iptables-restore``), then
listed with ``iptables-save`` and with ``iptables -L`` in its common forms
(``-vnL``, ``-nL --line-numbers``, ``-L -n -x -v``, ``-L``); meshstat must read the
same rules from each listing (up to what the form does not print: interfaces
without ``-v``, names without ``-n``) and the same exact shares (as Fractions) and
traces. Counters: connections are sent through kube-proxy's cascade and the
listing's counters must equal the client's counts and ``iptables-save -c``'s,
with a consistency p-value. Addresses exist only inside the namespaces.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from meshstat import kubeproxy as kp
from meshstat import netfilter as nf
from meshstat.errors import MeshstatError
from meshstat.inference.counters import check_counters
from meshstat.oracle.netns import NetnsLab, kube_proxy_ruleset
from meshstat.parsers.netfilter.iptables_list import listing_info, parse_iptables_list, to_iptables_save
from meshstat.parsers.netfilter.iptables_save import parse_iptables
from tests.conformance.util import ALPHA
from tests.parsers.test_iptables_list import same_rules, trace_sig

pytestmark = [pytest.mark.conformance, pytest.mark.usefixtures("netfilter_ready")]

IPT_DATA = Path(__file__).resolve().parents[1] / "data" / "iptables"
FIXTURES = sorted(IPT_DATA.glob("*.iptables-save"))
FORMS = {
    "vnL": ["-vnL"],
    "nL --line-numbers": ["-nL", "--line-numbers"],
    "L -n -x -v": ["-L", "-n", "-x", "-v"],
    "L": ["-L"],
}
VIP = "10.96.0.10"


def _tables(text: str) -> list[str]:
    return re.findall(r"^\*\s*(\w+)", text, re.M)


def _shares(rs: nf.Ruleset) -> list[tuple]:
    try:
        infos = kp.services(rs)
    except MeshstatError:  # no nat table / no kube-proxy chains (a crash fails the test)
        return []
    return [(i.name, i.cluster_ip, i.port, tuple((e.address, e.share) for e in i.endpoints),
             tuple((e.address, e.share) for e in i.local_endpoints)) for i in infos]  # fmt: skip


def _packets(rs: nf.Ruleset) -> list[tuple[str, nf.Packet]]:
    """A few first packets: each service's cluster IP, a pod's own traffic, an inbound one."""
    pkts: list[tuple[str, nf.Packet]] = []
    for info in _safe_services(rs):
        if info.cluster_ip and info.port and ":" not in info.cluster_ip:
            pkts.append(("output", nf.Packet(dst=info.cluster_ip, dport=info.port, proto=info.protocol,
                                             uid=0, gid=0, out_if="eth0", src="10.244.9.9")))  # fmt: skip
    pkts.append(("output", nf.Packet(dst="10.1.2.3", dport=8080, uid=0, gid=0, out_if="eth0")))
    pkts.append(("output", nf.Packet(dst="10.1.2.3", dport=8080, uid=1337, gid=1337, out_if="lo")))
    pkts.append(("prerouting", nf.Packet(dst="10.1.2.3", dport=8080, in_if="eth0", src="10.9.9.9")))
    return pkts


def _safe_services(rs: nf.Ruleset) -> list[kp.ServiceInfo]:
    try:
        return kp.services(rs)
    except MeshstatError:
        return []


@pytest.mark.parametrize("fixture", FIXTURES, ids=lambda p: p.name.removesuffix(".iptables-save"))
def test_listings_give_the_answers_of_iptables_save(fixture: Path, record) -> None:  # noqa: ANN001
    text = fixture.read_text()
    outputs: dict[tuple[str, str], str] = {}
    with NetnsLab() as lab:
        lab.load_iptables(text)
        for table in _tables(text):
            outputs[(table, "save")] = lab.exec("backend", ["iptables-save", "-t", table])
            for form, opts in FORMS.items():
                outputs[(table, form)] = lab.exec("backend", ["iptables", "-t", table, *opts])
    for table in _tables(text):
        save = parse_iptables(outputs[(table, "save")], "iptables-save")
        for form in FORMS:
            listing = f"# iptables -t {table} {' '.join(FORMS[form])}\n" + outputs[(table, form)]
            lst = parse_iptables_list(listing, f"{fixture.name} {table} {form}")
            via, numeric = "v" in form, form != "L"
            diffs = same_rules(save, lst, table, interfaces=via, texts=via and numeric)
            if numeric:
                assert [d for d in diffs if "# listing:" not in d] == [], (form, diffs)
            else:
                assert all("# listing:" in d for d in diffs), (form, diffs)
            if table == "nat":
                shares = _shares(save)
                # the kube-proxy fixtures must give services (else the comparison would be empty)
                assert shares or "kube-proxy" not in fixture.name, fixture.name
                assert _shares(lst) == shares, form  # exact Fractions
                if via and numeric:
                    for hook, pkt in _packets(save):
                        assert trace_sig(nf.trace(lst, pkt, hook)) == trace_sig(nf.trace(save, pkt, hook)), (
                            form, hook, pkt,
                        )  # fmt: skip
        record(case=f"listing forms of {fixture.name}", table=table, forms=list(FORMS), rules=save.rule_count)


def test_legacy_backend_prints_the_same_forms() -> None:
    text = (IPT_DATA / "seed-front-tomcat-pod.iptables-save").read_text()
    with NetnsLab(iptables="legacy") as lab:
        lab.load_iptables(text)
        save = lab.exec("backend", ["iptables-legacy-save", "-t", "nat"])
        vnl = lab.exec("backend", ["iptables-legacy", "-t", "nat", "-vnL"])
    a = parse_iptables(save, "legacy-save")
    b = parse_iptables_list("# iptables-legacy -t nat -vnL\n" + vnl, "legacy-vnL")
    assert same_rules(a, b, "nat") == []
    assert _shares(a) == _shares(b)


def test_article_listing_is_what_iptables_prints_for_its_rules() -> None:
    """The article's typed listing (damaged) == a real -vnL of the composed rules, counters included."""
    text = (IPT_DATA / "article-front-tomcat-pod-nat.iptables-save-c").read_text()
    with NetnsLab() as lab:
        lab.exec("backend", ["iptables-restore", "--counters"], input=text)
        real = lab.exec("backend", ["iptables", "-t", "nat", "-vnL"])
    typed = nf.load(str(IPT_DATA / "article-front-tomcat-pod-nat.vnL"))
    printed = parse_iptables_list("# iptables -t nat -vnL\n" + real, "real")
    assert same_rules(printed, typed, "nat") == []
    ci, pi = listing_info(typed), listing_info(printed)
    typed_counts = [ci.counters[r] for ch in typed.table("nat").chains.values() for r in ch.rules]
    real_counts = [pi.counters[r] for ch in printed.table("nat").chains.values() for r in ch.rules]
    assert typed_counts == real_counts
    assert ci.policies == pi.policies
    assert printed.warnings == []  # real output needs no repair; the article's copy did
    assert typed.warnings


def test_counters_equal_the_connections_and_give_a_p_value(record) -> None:  # noqa: ANN001
    eps = sorted(f"10.244.1.{i}:8080" for i in range(1, 4))
    n = 2000
    with NetnsLab() as lab:
        lab.load_iptables(kube_proxy_ruleset(VIP, 80, eps, service="default/web:http"))
        lab.serve({e: e for e in eps})
        run = lab.connect(f"{VIP}:80", n)
        lab.stop_servers()
        vnxl = lab.exec("backend", ["iptables", "-t", "nat", "-vnxL"])
        vnl_ln = lab.exec("backend", ["iptables", "-t", "nat", "-vnL", "--line-numbers"])
        save_c = lab.exec("backend", ["iptables-save", "-c", "-t", "nat"])
    assert run.errors == 0 and run.n == n
    truth = {}
    for line in save_c.splitlines():
        m = re.match(r"\[(\d+):\d+\] -A (KUBE-SVC-\S+) .*-j (KUBE-SEP-\S+)$", line)
        if m:
            truth[m[3]] = int(m[1])
    for listing in (vnxl, vnl_ln):
        rs = parse_iptables_list("# iptables -t nat -vnL\n" + listing, "counters")
        res = check_counters(rs, "default/web:http")
        assert {r.chain: r.observed for r in res.rows} == truth
        assert {r.endpoint: r.observed for r in res.rows} == {e: run.counts().get(e, 0) for e in eps}
        assert res.n == n and res.entered == n and not res.approximate
        assert 0.0 <= res.pvalue <= 1.0 and res.method == "exact multinomial"
    # iptables-save -c carries the same counters as [packets:bytes]: the same check
    res_c = check_counters(parse_iptables(save_c, "iptables-save -c"), "default/web:http")
    assert [(r.endpoint, r.observed) for r in res_c.rows] == [(r.endpoint, r.observed) for r in res.rows]
    assert res_c.pvalue == res.pvalue and res_c.entered == n
    record(case="listing counters, kube-proxy 3 endpoints", n=n, counts=[r.observed for r in res.rows],
           expected=[float(r.share) for r in res.rows], pvalue=res.pvalue, chi2=res.chisquare_statistic,
           alpha=ALPHA)  # fmt: skip
    assert res.pvalue >= ALPHA, res.summary()


def test_counters_with_session_affinity_count_only_first_connections() -> None:
    eps = sorted(f"10.244.1.{i}:8080" for i in range(1, 3))
    sources = [f"198.18.1.{i}" for i in range(1, 41)]
    per = 5
    with NetnsLab() as lab:
        lab.load_iptables(kube_proxy_ruleset(VIP, 80, eps, service="default/web:http", affinity_timeout=600))
        lab.serve({e: e for e in eps})
        run = lab.connect(
            f"{VIP}:80", len(sources) * per, source_addresses=[s for s in sources for _ in range(per)]
        )
        lab.stop_servers()
        listing = lab.exec("backend", ["iptables", "-t", "nat", "-vnxL"])
    assert run.errors == 0
    first: dict[str, str] = {}
    for src, name in zip(run.sources, run.sequence_names(), strict=True):
        first.setdefault(src, name)
    rs = parse_iptables_list("# iptables -t nat -vnxL\n" + listing, "affinity")
    res = check_counters(rs, "default/web:http")
    assert res.n == len(sources) and res.affinity_hits == len(sources) * (per - 1)
    assert {r.endpoint: r.observed for r in res.rows} == {e: list(first.values()).count(e) for e in eps}


@pytest.mark.parametrize("name", ["seed-front-tomcat-pod", "kube-proxy-iptables-overall"])
def test_listing_translated_back_loads_into_the_kernel(name: str) -> None:
    """Listing -> meshstat -> iptables-restore -> listing: the kernel accepts the translation unchanged."""
    text = (IPT_DATA / f"{name}.iptables-save").read_text()
    with NetnsLab() as lab:
        lab.load_iptables(text)
        first = lab.exec("backend", ["iptables", "-t", "nat", "-vnL"])
    rs = parse_iptables_list("# iptables -t nat -vnL\n" + first, "first")
    back = to_iptables_save(rs)
    assert "# not translated" not in back
    with NetnsLab() as lab:
        if "nfacct" in back:
            for nm in sorted(set(re.findall(r"--nfacct-name\s+(\S+)", back))):
                lab.exec("backend", ["nfacct", "add", nm])
        lab.exec("backend", ["iptables-restore"], input=back)
        second = lab.exec("backend", ["iptables", "-t", "nat", "-vnL"])
    again = parse_iptables_list("# iptables -t nat -vnL\n" + second, "second")
    assert same_rules(rs, again, "nat") == []


def test_article_grep_paste_repaired_is_accepted_by_the_kernel() -> None:
    """The article's damaged grep lines, repaired, load with iptables-restore and list back the same."""
    paste = nf.load(str(IPT_DATA / "article-kube-proxy-grep.paste"))
    back = to_iptables_save(paste)
    with NetnsLab() as lab:
        lab.exec("backend", ["iptables-restore"], input=back)
        listing = lab.exec("backend", ["iptables", "-t", "nat", "-vnL"])
    again = parse_iptables_list("# iptables -t nat -vnL\n" + listing, "again")
    for name in (
        "KUBE-SERVICES",
        "KUBE-SVC-PK4BNTKC2JYVE7B2",
        "KUBE-SEP-6OOOSB56IIMYCEYA",
        "KUBE-SEP-AM36T22CJQS6HCG4",
    ):
        a, b = paste.table("nat").chains[name].rules, again.table("nat").chains[name].rules
        assert [r.text for r in a] == [r.text for r in b]
    assert _shares(again) == _shares(paste)
