"""kube-proxy nftables mode after resyncs: stale (flushed, unreferenced) chains and services without endpoints.

The fixtures are kube-proxy's own expected tables after its syncs
(``pkg/proxy/nftables/proxier_test.go: TestSyncProxyRulesRepeated``): a deleted
service and an emptied one leave their chains flushed and unreferenced until a
later sync deletes them; the emptied one is rejected through
``no-endpoint-services``.
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from meshstat import kubeproxy as kp
from meshstat import netfilter as nf
from meshstat.cli import main
from meshstat.errors import ModelError

DATA = Path(__file__).parent.parent / "data" / "iptables"


def _key(rs: nf.Ruleset) -> list:
    return [
        (i.name, i.protocol, i.cluster_ip, i.port, [(e.address, e.share) for e in i.endpoints], i.rejected,
         i.state, i.internal_policy)
        for i in kp.services(rs)
    ]  # fmt: skip


def test_emptied_service_is_rejected_and_its_chains_skipped() -> None:
    rs = nf.load(str(DATA / "kube-proxy-nftables-repeated-emptied.nft"))
    infos = {i.name: i for i in kp.services(rs)}
    assert sorted(infos) == ["ns1/svc1:p80", "ns3/svc3:p80", "ns4/svc4:p80"]
    svc3 = infos["ns3/svc3:p80"]
    assert (svc3.cluster_ip, svc3.port, svc3.protocol, svc3.rejected, svc3.endpoints) == ("172.30.0.43", 80, "tcp",
                                                                                          True, ())  # fmt: skip
    assert svc3.cluster_chain is None
    assert kp.service_notes(rs) == [
        "table ip kube-proxy: skipped 1 stale service chain (service-4AT6LBPK-ns3/svc3/tcp/p80) and 2 stale "
        "endpoint chains: flushed and referenced by nothing, as kube-proxy leaves the chains of a deleted or "
        "emptied service until a later sync deletes them"
    ]
    assert kp.find_service(rs, "172.30.0.43:80") is svc3
    with pytest.raises(ModelError, match="has no endpoints \\(kube-proxy rejects its traffic\\)"):
        kp.load_service_route(rs, "ns3/svc3:p80")
    # the packet: rejected by the filter hook's service-endpoints-check, nothing in nat
    r = nf.trace(rs, nf.Packet(dst="172.30.0.43", dport=80, src="10.0.0.5"), tables=("nat", "filter"))
    assert [str(p.verdict) for p in r.paths] == ["REJECT"]
    assert r.paths[0].path_string().endswith("service-endpoints-check:53 -> reject-chain:48")


def test_deleted_service_is_gone() -> None:
    rs = nf.load(str(DATA / "kube-proxy-nftables-repeated-deleted.nft"))
    assert [i.name for i in kp.services(rs)] == ["ns1/svc1:p80", "ns3/svc3:p80"]
    (note,) = kp.service_notes(rs)
    assert "skipped 1 stale service chain (service-MHHHYRWA-ns2/svc2/tcp/p8080) and 1 stale endpoint chain:" in note
    r = nf.trace(rs, nf.Packet(dst="172.30.0.42", dport=8080, src="10.0.0.5"), tables=("nat", "filter"))
    assert [str(p.verdict) for p in r.paths] == ["DROP"]  # an unallocated cluster IP now: cluster-ips-check
    assert r.paths[0].path_string().endswith("cluster-ips-check:30")


def test_partial_sync_transaction_reaches_the_same_state() -> None:
    """The previous table plus the partial sync kube-proxy runs (add, 3 flushes, delete element)."""
    a = nf.load(str(DATA / "kube-proxy-nftables-partial-sync.nft"))
    b = nf.load(str(DATA / "kube-proxy-nftables-repeated-emptied.nft"))
    assert _key(a) == _key(b)
    assert kp.service_notes(a) == kp.service_notes(b)
    for dst, port in (("172.30.0.41", 80), ("172.30.0.43", 80), ("172.30.0.44", 80)):
        pkt = nf.Packet(dst=dst, dport=port, src="10.0.0.5")
        ra, rb = nf.trace(a, pkt, tables=("nat", "filter")), nf.trace(b, pkt, tables=("nat", "filter"))
        assert [(p.probability, str(p.verdict)) for p in ra.paths] == [(p.probability, str(p.verdict)) for p in rb.paths]


def test_later_sync_deletes_the_stale_chains() -> None:
    text = (DATA / "kube-proxy-nftables-partial-sync.nft").read_text() + "".join(
        f"delete chain ip kube-proxy {c}\n"
        for c in ("service-4AT6LBPK-ns3/svc3/tcp/p80", "endpoint-SWWHDC7X-ns3/svc3/tcp/p80__10.0.3.2/80",
                  "endpoint-TQ2QKHCZ-ns3/svc3/tcp/p80__10.0.3.3/80")
    )  # fmt: skip
    rs = nf.parse_nft(text, "later.nft")
    assert kp.service_notes(rs) == []
    assert [(i.name, i.rejected) for i in kp.services(rs)] == [
        ("ns1/svc1:p80", False), ("ns3/svc3:p80", True), ("ns4/svc4:p80", False)
    ]


def test_refilled_service_is_a_service_again() -> None:
    """Endpoints back before the stale chains age: the same chains are refilled and referenced again."""
    text = (DATA / "kube-proxy-nftables-partial-sync.nft").read_text() + (
        "delete element ip kube-proxy no-endpoint-services { 172.30.0.43 . tcp . 80 }\n"
        "add element ip kube-proxy service-ips { 172.30.0.43 . tcp . 80 : goto service-4AT6LBPK-ns3/svc3/tcp/p80 }\n"
        "add chain ip kube-proxy service-4AT6LBPK-ns3/svc3/tcp/p80\n"
        "flush chain ip kube-proxy service-4AT6LBPK-ns3/svc3/tcp/p80\n"
        "add rule ip kube-proxy service-4AT6LBPK-ns3/svc3/tcp/p80 numgen random mod 1 vmap "
        "{ 0 : goto endpoint-SWWHDC7X-ns3/svc3/tcp/p80__10.0.3.2/80 }\n"
        "add chain ip kube-proxy endpoint-SWWHDC7X-ns3/svc3/tcp/p80__10.0.3.2/80\n"
        "flush chain ip kube-proxy endpoint-SWWHDC7X-ns3/svc3/tcp/p80__10.0.3.2/80\n"
        "add rule ip kube-proxy endpoint-SWWHDC7X-ns3/svc3/tcp/p80__10.0.3.2/80 meta l4proto tcp dnat to 10.0.3.2:80\n"
    )
    rs = nf.parse_nft(text, "refill.nft")
    svc3 = kp.find_service(rs, "ns3/svc3:p80")
    assert (svc3.cluster_ip, svc3.rejected, [e.address for e in svc3.endpoints]) == ("172.30.0.43", False,
                                                                                     ["10.0.3.2:80"])  # fmt: skip
    (note,) = kp.service_notes(rs)
    assert "0 stale service chains and 1 stale endpoint chain" in note


ITP_LOCAL = """table ip kube-proxy {
	set cluster-ips {
		type ipv4_addr
		elements = { 172.30.0.41, 172.30.0.42 }
	}
	map no-endpoint-services {
		type ipv4_addr . inet_proto . inet_service : verdict
		elements = { 172.30.0.41 . tcp . 80 comment "ns1/svc1:p80" : drop,
			     172.30.0.42 . tcp . 80 comment "ns2/svc2:p80" : goto reject-chain,
			     192.168.99.22 . tcp . 80 comment "ns2/svc2:p80" : goto reject-chain }
	}
	map no-endpoint-nodeports {
		type inet_proto . inet_service : verdict
		elements = { tcp . 3001 comment "ns2/svc2:p80" : goto reject-chain }
	}
	chain reject-chain {
		reject
	}
	chain service-endpoints-check {
		ip daddr . meta l4proto . th dport vmap @no-endpoint-services
	}
}
"""  # syncProxyRules: internalTrafficPolicy Local without a local endpoint -> "drop" (ns1); no endpoints -> reject


def test_services_without_chains_drop_or_reject() -> None:
    rs = nf.parse_nft(ITP_LOCAL, "itp.nft")
    infos = {i.name: i for i in kp.services(rs)}
    one, two = infos["ns1/svc1:p80"], infos["ns2/svc2:p80"]
    assert (one.cluster_ip, one.port, one.cluster_state, one.rejected, one.internal_policy) == (
        "172.30.0.41", 80, "dropped", False, "Local")
    assert (two.cluster_state, two.external_state) == ("rejected", "rejected")
    assert (two.cluster_ip, two.rejected, two.external_ips, two.node_ports) == ("172.30.0.42", True,
                                                                                ("192.168.99.22:80",), (3001,))  # fmt: skip
    with pytest.raises(ModelError, match="internalTrafficPolicy Local and no endpoint on this node: kube-proxy"):
        kp.service_route(one)


def test_cli_prints_the_note_and_the_verdict() -> None:
    out, err = io.StringIO(), io.StringIO()
    rc = main(["services", "--nft", str(DATA / "kube-proxy-nftables-partial-sync.nft"), "--format", "csv"],
              stdout=out, stderr=err)  # fmt: skip
    assert rc == 0
    rows = out.getvalue().splitlines()
    assert rows[0].startswith("service,protocol,cluster_ip,port,endpoints")
    assert any(r.startswith("ns3/svc3:p80,tcp,172.30.0.43,80,0,0,None,,(no endpoints: rejected)") for r in rows)
    assert "note: table ip kube-proxy: skipped 1 stale service chain" in err.getvalue()


# ------------------------------------------------------------------ the conformance suite's writer of kube-proxy syncs

def _writer_services() -> tuple[list, list]:
    from meshstat.kubeproxy.nftables_writer import NftServicePort as S

    before = [S("ns1", "svc1", "p80", "172.30.0.41", 80, ("10.0.1.1:80",)),
              S("ns3", "svc3", "p80", "172.30.0.43", 80, ("10.0.3.2:80", "10.0.3.3:80")),
              S("ns4", "svc4", "p80", "172.30.0.44", 80, ("10.0.4.1:80",))]  # fmt: skip
    after = [before[0], S("ns3", "svc3", "p80", "172.30.0.43", 80, ()), before[2]]
    return before, after


def test_writer_matches_kube_proxys_expected_tables() -> None:
    """The oracle's writer gives kube-proxy's own expected service lines (TestSyncProxyRulesRepeated)."""
    from meshstat.kubeproxy.nftables_writer import kube_proxy_nft_stale_chains, kube_proxy_nft_sync

    before, after = _writer_services()
    full = kube_proxy_nft_sync(before, pod_cidr="10.0.0.0/8", service_cidr="172.30.0.0/16",
                               node_port_addresses=["192.168.0.2"])  # fmt: skip
    fixture = (DATA / "kube-proxy-nftables-partial-sync.nft").read_text()
    state, partial_fixture = fixture.split("# the next sync empties ns3/svc3")
    base = set((DATA / "kube-proxy-nftables-overall.nft").read_text().split("# svc1")[0].splitlines())
    expected = {ln for ln in state.splitlines() if ln and ln not in base}
    # the masquerade rule gained "tcp dport PORT" after the fixture's kube-proxy version (proxier.go @ b0f823e6)
    written = {ln.replace(" tcp dport 80", "") for ln in full.splitlines()
               if "-ns" in ln or "cluster-ips { 1" in ln}  # fmt: skip
    written = {ln for ln in written if not ln.startswith("flush chain")}
    assert written == expected
    partial = kube_proxy_nft_sync(after, previous=before, pod_cidr="10.0.0.0/8", service_cidr="172.30.0.0/16")
    got, want = partial.splitlines(), [ln for ln in partial_fixture.splitlines()[1:] if ln]
    # elements first, the flushes (in the order kube-proxy lists the existing chains), the deletions last
    assert (got[0], sorted(got[1:4]), got[4:]) == (want[0], sorted(want[1:4]), want[4:])
    assert sorted(kube_proxy_nft_stale_chains(before, after)) == [
        "endpoint-SWWHDC7X-ns3/svc3/tcp/p80__10.0.3.2/80", "endpoint-TQ2QKHCZ-ns3/svc3/tcp/p80__10.0.3.3/80",
        "service-4AT6LBPK-ns3/svc3/tcp/p80",
    ]  # fmt: skip
    emptied = nf.load(str(DATA / "kube-proxy-nftables-repeated-emptied.nft"))
    assert _key(nf.parse_nft(full + partial, "syncs.nft")) == _key(emptied)
