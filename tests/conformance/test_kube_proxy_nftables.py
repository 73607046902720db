"""kube-proxy's nftables mode on the real kernel: meshstat's reading of the table against real packets.

Each test loads the transaction of one or two kube-proxy syncs
(:func:`meshstat.kubeproxy.nftables_writer.kube_proxy_nft_sync`, written as
``pkg/proxy/nftables/proxier.go`` writes them) into the backend namespace of a
lab (the node: ``198.18.0.2``; the client namespace is "outside", ``198.18.0.1``),
reads the table back with ``nft list table ip kube-proxy`` (the kernel's own
print form is what meshstat then parses), asks meshstat (``services`` and
``trace``) what happens to a connection, and opens real connections:

* counts of a split are tested against the trace's exact shares by chi-square
  at ALPHA (1e-5, tests/conformance/util.py; the kernel's random numbers cannot be seeded);
* a verdict of probability 1 is tested exactly (every connection where the
  trace says, none elsewhere);
* a REJECT is tested by every real connection being refused (a RST or an
  ICMP port unreachable: ``ClientRun.error_kinds`` ``refused``, the ICMP rate
  limit lifted), with a listener on the service address that would answer if
  the rule did not reject.

Every test is bounded (at most a few hundred connections per case) and its
lab is removed on exit, also on failure.
"""

from __future__ import annotations

from fractions import Fraction

import pytest

from meshstat import kubeproxy as kp
from meshstat import netfilter as nf
from meshstat.kubeproxy.nftables_writer import NftServicePort, kube_proxy_nft_stale_chains, kube_proxy_nft_sync
from meshstat.oracle.netns import BACKEND_LINK_ADDRESS, CLIENT_ADDRESS, NetnsLab
from tests.conformance.util import assert_fits

pytestmark = [pytest.mark.conformance, pytest.mark.usefixtures("netfilter_ready")]

NOT_REWRITTEN = "(not rewritten)"
LB = "198.51.100.12"  # TEST-NET-2: exists only as a route inside the lab

THREE = NftServicePort("conf", "three", "http", "10.96.0.10", 80,
                       ("10.244.1.1:8080", "10.244.1.2:8080", "10.244.1.3:8080"))  # fmt: skip
EMPTY = NftServicePort("conf", "empty", "http", "10.96.0.11", 80, ())
LOCAL = NftServicePort("conf", "local", "http", "10.96.0.12", 80,
                       ("10.244.1.21:8080", "10.244.2.22:8080", "10.244.2.23:8080"),
                       local=frozenset({"10.244.1.21:8080"}), node_port=30080, load_balancer_ips=(LB,),
                       external_policy="Local")  # fmt: skip
GONE = NftServicePort("conf", "gone", "http", "10.96.0.13", 80, ("10.244.3.1:8080", "10.244.3.2:8080"))


def _listing(lab: NetnsLab) -> nf.Ruleset:
    text = lab.exec("backend", ["nft", "list", "table", "ip", "kube-proxy"])
    return nf.parse_nft(text, "nft-list")


def _split(rs: nf.Ruleset, pkt: nf.Packet, hook: str) -> dict[str, Fraction]:
    """The trace's DNAT targets with their exact probabilities (the trace must not depend on unknowns)."""
    r = nf.trace(rs, pkt, hook)
    assert r.total == 1
    out: dict[str, Fraction] = {}
    for p in r.paths:  # the walk goes on to postrouting: a DNAT may be masqueraded there, the target is the same
        name = p.verdict.target if p.verdict.kind == "DNAT" else str(p.verdict)
        out[name] = out.get(name, Fraction(0)) + p.probability  # type: ignore[index]
    return out


def _serve_all(lab: NetnsLab, *services: NftServicePort) -> None:
    listen = {ep: ep for s in services for ep in s.endpoints}
    listen |= {f"{NOT_REWRITTEN} {s.cluster_ip}": f"{s.cluster_ip}:{s.port}" for s in services}
    lab.serve(listen)


def _check_counts(record, case: str, run, split: dict[str, Fraction], n: int) -> None:  # noqa: ANN001
    assert run.errors == 0, f"{case}: {run.errors} connections failed ({run.error_kinds})"
    assert run.n == n and not run.timed_out
    got = run.counts()
    names = sorted(split)
    assert set(got) <= set(names), f"{case}: connections went to {sorted(set(got) - set(names))}"
    counts = [got.get(x, 0) for x in names]
    if len([x for x in names if split[x]]) == 1:  # one outcome of probability 1: exact
        record(case=case, n=n, counts=dict(zip(names, counts, strict=True)), exact=True)
        assert counts == [n if split[x] == 1 else 0 for x in names]
    else:
        assert_fits(record, case, names, counts, [split[x] for x in names])


def _check_refused(case: str, run, n: int) -> None:  # noqa: ANN001
    assert run.n == 0, f"{case}: {run.n} connections were answered ({run.counts()})"
    assert run.error_kinds == {"refused": n}, f"{case}: {run.error_kinds}"


def test_service_with_three_endpoints(record) -> None:  # noqa: ANN001
    with NetnsLab() as lab:
        lab.load_nft(kube_proxy_nft_sync([THREE]))
        rs = _listing(lab)
        (info,) = kp.services(rs)
        assert (info.name, info.cluster_ip, info.port) == ("conf/three:http", "10.96.0.10", 80)
        assert [e.address for e in info.endpoints] == list(THREE.endpoints)
        pkt = nf.Packet(dst="10.96.0.10", dport=80, src=CLIENT_ADDRESS, src_local=False)
        split = _split(rs, pkt, "prerouting")
        assert split == {e.address: e.share for e in info.endpoints}
        assert sorted(split.values()) == [Fraction(1431655765, 1 << 32)] * 2 + [Fraction(1431655766, 1 << 32)]
        _serve_all(lab, THREE)
        run = lab.connect("10.96.0.10:80", 600)
    _check_counts(record, "nft 3 endpoints, from outside", run, split, 600)


def test_service_without_endpoints_is_rejected(record) -> None:  # noqa: ANN001
    with NetnsLab() as lab:
        lab.load_nft(kube_proxy_nft_sync([EMPTY]))
        rs = _listing(lab)
        (info,) = kp.services(rs)
        assert (info.cluster_ip, info.port, info.rejected, info.endpoints) == ("10.96.0.11", 80, True, ())
        # from the node: filter-output runs service-endpoints-check before nat
        r = nf.trace(rs, nf.Packet(dst="10.96.0.11", dport=80), "output")
        assert [(p.probability, str(p.verdict)) for p in r.paths] == [(1, "REJECT")]
        # from outside: prerouting, then filter-input (the listener below puts the address on the node)
        r = nf.trace(rs, nf.Packet(dst="10.96.0.11", dport=80, src=CLIENT_ADDRESS, src_local=False, dst_local=True),
                     "prerouting")  # fmt: skip
        assert [(p.probability, str(p.verdict)) for p in r.paths] == [(1, "REJECT")]
        _serve_all(lab, EMPTY)  # a listener that would answer if nothing rejected the connections
        lab.no_icmp_rate_limit()
        outside = lab.connect("10.96.0.11:80", 50, max_errors=60, timeout=3.0)
        node = lab.connect("10.96.0.11:80", 50, side="backend", max_errors=60, timeout=3.0)
    record(case="nft no endpoints: rejected", outside=outside.error_kinds, node=node.error_kinds)
    _check_refused("from outside", outside, 50)
    _check_refused("from the node", node, 50)


CASES = [
    # (where from, target, hook of the trace, packet fields the kernel knows)
    ("node", f"{BACKEND_LINK_ADDRESS}:30080", "output", dict(src=BACKEND_LINK_ADDRESS, dst_local=True)),
    ("node", f"{LB}:80", "output", dict(src=BACKEND_LINK_ADDRESS, dst_local=False)),
    ("outside", f"{BACKEND_LINK_ADDRESS}:30080", "prerouting", dict(src=CLIENT_ADDRESS, src_local=False, dst_local=True)),
    ("outside", f"{LB}:80", "prerouting", dict(src=CLIENT_ADDRESS, src_local=False, dst_local=False)),
]  # fmt: skip


@pytest.mark.parametrize(("where", "target", "hook", "fields"), CASES)
def test_external_traffic_policy_local(record, where: str, target: str, hook: str, fields: dict) -> None:  # noqa: ANN001
    """NodePort and LoadBalancer with ``externalTrafficPolicy: Local``: the node itself (``fib saddr type
    local``) reaches every endpoint, a client outside only the one on this node."""
    with NetnsLab() as lab:
        lab.load_nft(kube_proxy_nft_sync([LOCAL]))
        # the load balancer's address is routed towards the client, as a real node routes it off-node
        lab.exec("backend", ["ip", "route", "add", f"{LB}/32", "via", CLIENT_ADDRESS])
        rs = _listing(lab)
        (info,) = kp.services(rs)
        assert (info.external_policy, info.node_ports, info.external_ips) == ("Local", (30080,), (f"{LB}:80",))
        assert [e.address for e in info.local_endpoints] == ["10.244.1.21:8080"]
        ip, _, port = target.rpartition(":")
        split = _split(rs, nf.Packet(dst=ip, dport=int(port), **fields), hook)
        if where == "node":  # short-circuited to the service's cluster-wide chain
            assert split == {e.address: e.share for e in info.endpoints}
        else:
            assert split == {"10.244.1.21:8080": 1}
        split = {e: split.get(e, Fraction(0)) for e in LOCAL.endpoints}
        _serve_all(lab, LOCAL)
        n = 300 if where == "node" else 200
        run = lab.connect(target, n, side="backend" if where == "node" else "client")
    _check_counts(record, f"nft externalTrafficPolicy Local, {where} -> {target}", run, split, n)


def test_stale_flushed_chains(record) -> None:  # noqa: ANN001
    """An emptied service: its chains are flushed and left unreferenced by the partial sync, deleted later."""
    full = kube_proxy_nft_sync([THREE, GONE])
    emptied = GONE.__class__(**{**GONE.__dict__, "endpoints": ()})
    partial = kube_proxy_nft_sync([THREE, emptied], previous=[THREE, GONE])
    stale = kube_proxy_nft_stale_chains([THREE, GONE], [THREE, emptied])
    assert len(stale) == 3  # the service chain and its two endpoint chains
    with NetnsLab() as lab:
        lab.load_nft(full)
        lab.load_nft(partial)
        rs = _listing(lab)
        assert all(not rs.table("kube-proxy").chains[c].rules for c in stale)  # flushed, still there
        infos = {i.name: i for i in kp.services(rs)}
        assert sorted(infos) == ["conf/gone:http", "conf/three:http"]
        gone = infos["conf/gone:http"]
        assert (gone.cluster_ip, gone.rejected, gone.endpoints) == ("10.96.0.13", True, ())
        (note,) = kp.service_notes(rs)
        assert "skipped 1 stale service chain" in note and "2 stale endpoint chains" in note
        # the transactions themselves, read by meshstat, give the same services as the kernel's listing
        both = nf.parse_nft(full + partial, "syncs.nft")
        assert [(i.name, i.cluster_ip, i.rejected, [e.address for e in i.endpoints]) for i in kp.services(both)] == [
            (i.name, i.cluster_ip, i.rejected, [e.address for e in i.endpoints]) for i in kp.services(rs)
        ]
        r = nf.trace(rs, nf.Packet(dst="10.96.0.13", dport=80, src=CLIENT_ADDRESS, src_local=False, dst_local=True),
                     "prerouting")  # fmt: skip
        assert [str(p.verdict) for p in r.paths] == ["REJECT"]
        split = _split(rs, nf.Packet(dst="10.96.0.10", dport=80, src=CLIENT_ADDRESS, src_local=False), "prerouting")
        _serve_all(lab, THREE, GONE)
        lab.no_icmp_rate_limit()
        refused = lab.connect("10.96.0.13:80", 50, max_errors=60, timeout=3.0)
        run = lab.connect("10.96.0.10:80", 300)
        # a later sync deletes the stale chains: the kernel accepts it only if nothing refers to them
        lab.load_nft("".join(f"delete chain ip kube-proxy {c}\n" for c in stale))
        assert kp.service_notes(_listing(lab)) == []
    _check_refused("emptied service", refused, 50)
    _check_counts(record, "nft 3 endpoints beside a stale service", run, split, 300)
