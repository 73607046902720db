"""Address-type conditions: nft ``fib saddr|daddr [. iif|. oif] type`` and iptables ``-m addrtype``.

Both ask the kernel's ``inet_dev_addr_type``; each selector is read whole and
evaluated against its own address (kube-proxy's nftables mode uses ``fib saddr
type local`` for traffic from the node itself and ``fib daddr type local`` for
node ports).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from meshstat import netfilter as nf
from meshstat.errors import ConfigParseError
from meshstat.kubeproxy.iptables_filter import add_kube_proxy_jumps
from meshstat.parsers.netfilter.nft import parse_nft

DATA = Path(__file__).parents[1] / "data" / "iptables"

RULES = """table ip t {
	chain pre {
		type nat hook prerouting priority dstnat; policy accept;
		tcp dport 2 fib saddr type local dnat to 10.0.0.1:2
		tcp dport 2 fib daddr type local dnat to 10.0.0.2:2
		tcp dport 3 fib daddr . iif type local dnat to 10.0.0.3:3
		tcp dport 4 fib daddr type { local, unicast } dnat to 10.0.0.4:4
		tcp dport 5 fib daddr type != local dnat to 10.0.0.5:5
		tcp dport 6 fib daddr type unicast dnat to 10.0.0.6:6
		tcp dport 7 fib saddr . iif oif missing drop
		tcp dport 8 fib daddr . mark type local dnat to 10.0.0.8:8
	}
}
"""  # every rule here loads into nft 1.0.6 / kernel 6.18 as written


def _verdicts(dport: int, dst: str = "192.0.2.1", **kw: object) -> list[tuple[str, list[str]]]:
    r = nf.trace(parse_nft(RULES, "f.nft"), nf.Packet(dst=dst, dport=dport, src="198.51.100.7", **kw), "prerouting")
    assert r.total == 1
    return [(str(p.verdict), [str(c) for c in p.conditions]) for p in r.paths]


def test_selectors_are_read_whole() -> None:
    rs = parse_nft(RULES, "f.nft")
    fibs = [(m.value, m.negated, m.text) for r in rs.table("t").chains["pre"].rules for m in r.matches if m.kind == "fib"]
    assert fibs == [
        (("src", frozenset({"LOCAL"}), None), False, "fib saddr type local"),
        (("dst", frozenset({"LOCAL"}), None), False, "fib daddr type local"),
        (("dst", frozenset({"LOCAL"}), "in"), False, "fib daddr . iif type local"),
        (("dst", frozenset({"LOCAL", "UNICAST"}), None), False, "fib daddr type { local , unicast }"),
        (("dst", frozenset({"LOCAL"}), None), True, "fib daddr type != local"),
        (("dst", frozenset({"UNICAST"}), None), False, "fib daddr type unicast"),
    ]
    # an oif result (reverse-path filtering) and a mark-dependent lookup are not modelled: opaque, with warnings
    assert [w.message for w in rs.warnings] == [
        "unsupported nft expression 'fib saddr . iif oif missing' kept as opaque (traced as unknown)",
        "unsupported nft expression 'fib daddr . mark type local' kept as opaque (traced as unknown)",
    ]


def test_source_and_destination_are_separate_questions() -> None:
    # a local source, a remote destination: only the saddr rule matches
    assert _verdicts(2, src_local=True, dst_local=False) == [("DNAT to 10.0.0.1:2", [])]
    # a remote source, a local destination: only the daddr rule
    assert _verdicts(2, src_local=False, dst_local=True) == [("DNAT to 10.0.0.2:2", [])]
    assert _verdicts(2, src_local=False, dst_local=False) == [("no NAT: falls through to the next hook", [])]
    # unknown source: the path splits on the source's type, labelled as such
    assert _verdicts(2, dst_local=False) == [
        ("DNAT to 10.0.0.1:2", ["source address type LOCAL: yes"]),
        ("no NAT: falls through to the next hook", ["source address type LOCAL: no"]),
    ]


def test_device_bound_lookup() -> None:
    assert _verdicts(3, dst_local=False) == [("no NAT: falls through to the next hook", [])]
    assert _verdicts(3, dst_local=True) == [
        ("DNAT to 10.0.0.3:3", ["destination address type LOCAL on the input interface: yes"]),
        ("no NAT: falls through to the next hook", ["destination address type LOCAL on the input interface: no"]),
    ]


@pytest.mark.parametrize(
    ("dport", "dst", "dst_local", "hit"),
    [
        (4, "192.0.2.1", False, True),  # not local: UNICAST, which the set lists
        (4, "192.0.2.1", True, True),
        (5, "192.0.2.1", False, True),
        (5, "192.0.2.1", True, False),
        (6, "192.0.2.1", False, True),
        (6, "192.0.2.1", True, False),
        (6, "239.1.2.3", None, False),  # multicast, whatever the packet says
        (4, "255.255.255.255", None, False),  # broadcast
        (5, "127.0.0.1", None, False),  # loopback addresses are local
    ],
)
def test_address_types(dport: int, dst: str, dst_local: bool | None, hit: bool) -> None:
    want = f"DNAT to 10.0.0.{dport}:{dport}" if hit else "no NAT: falls through to the next hook"
    assert _verdicts(dport, dst=dst, dst_local=dst_local) == [(want, [])]


def test_output_hook_sources_are_local() -> None:
    rs = parse_nft(RULES.replace("prerouting priority dstnat", "output priority -100").replace(" . iif", " . oif"),
                   "o.nft")  # fmt: skip
    r = nf.trace(rs, nf.Packet(dst="192.0.2.1", dport=2, dst_local=False), "output")
    assert [(str(p.verdict), p.conditions) for p in r.paths] == [("DNAT to 10.0.0.1:2", ())]


def test_fib_needs_exactly_one_address() -> None:
    for bad in ("fib iif type local", "fib saddr . daddr type local", "fib saddr . iif . oif type local",
                "fib sad type local"):  # fmt: skip
        with pytest.raises(ConfigParseError, match="fib") as err:
            parse_nft(f"table ip t {{\n\tchain c {{\n\t\t{bad} accept\n\t}}\n}}\n", "b.nft")
        assert err.value.line == 3


def test_iptables_addrtype_limit_iface_is_kept() -> None:
    text = (
        "*nat\n:PREROUTING ACCEPT [0:0]\n"
        "-A PREROUTING -p tcp --dport 3 -m addrtype --dst-type LOCAL --limit-iface-in -j DNAT --to-destination 10.0.0.3:3\n"
        "-A PREROUTING -p tcp --dport 4 -m addrtype --dst-type LOCAL,UNICAST -j DNAT --to-destination 10.0.0.4:4\n"
        "COMMIT\n"
    )
    rs = nf.parse_iptables(text, "a.rules")
    m = [m for m in rs.table("nat").chains["PREROUTING"].rules[0].matches if m.kind == "addrtype"][0]
    assert m.value == ("dst", frozenset({"LOCAL"}), "in")
    r = nf.trace(rs, nf.Packet(dst="192.0.2.1", dport=3, dst_local=True), "prerouting")
    assert [str(c) for p in r.paths for c in p.conditions] == [
        "destination address type LOCAL on the input interface: yes",
        "destination address type LOCAL on the input interface: no",
    ]
    r = nf.trace(rs, nf.Packet(dst="192.0.2.1", dport=3, dst_local=False), "prerouting")
    assert [str(p.verdict) for p in r.paths] == ["no NAT: falls through to the next hook"]
    r = nf.trace(rs, nf.Packet(dst="192.0.2.1", dport=4, dst_local=False), "prerouting")
    assert [str(p.verdict) for p in r.paths] == ["DNAT to 10.0.0.4:4"]


def test_iptables_listing_addrtype_limit_iface() -> None:
    listing = (
        "Chain PREROUTING (policy ACCEPT)\n"
        "target     prot opt source               destination         \n"
        "ACCEPT     0    --  0.0.0.0/0            0.0.0.0/0            ADDRTYPE match dst-type LOCAL limit-in\n"
    )  # iptables v1.8.9 -t nat -nL, as printed here
    rs = nf.load("l.txt", "iptables-list", text=listing)
    m = [m for m in rs.table("nat").chains["PREROUTING"].rules[0].matches if m.kind == "addrtype"][0]
    assert m.value == ("dst", frozenset({"LOCAL"}), "in")


# ------------------------------------------------------------------ kube-proxy: node-local vs outside traffic

PACKETS = [
    # (hook, packet): traffic to ns2/svc2 (LoadBalancer 1.2.3.4, node port 3001, externalTrafficPolicy Local,
    # no endpoint on this node), from the node itself and from outside
    ("output", dict(dst="1.2.3.4", dport=80, src="192.168.0.2")),
    ("output", dict(dst="192.168.0.2", dport=3001, src="192.168.0.2", dst_local=True)),
    ("prerouting", dict(dst="1.2.3.4", dport=80, src="203.0.113.5", src_local=False)),
    ("prerouting", dict(dst="192.168.0.2", dport=3001, src="203.0.113.5", src_local=False, dst_local=True)),
    ("prerouting", dict(dst="1.2.3.4", dport=80, src="10.0.0.5", src_local=False)),
    ("prerouting", dict(dst="1.2.3.4", dport=80, src="203.0.113.5")),
]


@pytest.mark.parametrize(("hook", "pkt"), PACKETS)
def test_kube_proxy_modes_agree_on_local_traffic(hook: str, pkt: dict) -> None:
    """The nftables mode's ``fib saddr type local`` and the iptables mode's ``--src-type LOCAL`` agree."""
    nft = nf.load(str(DATA / "kube-proxy-nftables-overall.nft-list"))
    # the iptables fixture is kube-proxy's restore text with the built-in chains declared: as kube-proxy hands
    # it to iptables-restore (no declarations), with the jumps it adds by iptables -I, both walks are whole
    text = (DATA / "kube-proxy-iptables-overall.iptables-save").read_text()
    ipt = nf.parse_iptables(re.sub(r"(?m)^:(INPUT|FORWARD|OUTPUT|PREROUTING|POSTROUTING) .*\n", "", text), "ipt")
    assert add_kube_proxy_jumps(ipt)
    a = nf.trace(nft, nf.Packet(**pkt), hook)
    b = nf.trace(ipt, nf.Packet(**pkt), hook)

    def key(r: nf.TraceResult) -> set:
        return {(str(p.verdict), p.mark, tuple(str(c) for c in p.conditions if c.label.startswith("source")))
                for p in r.paths}  # fmt: skip

    assert key(a) == key(b)
    if hook == "output":  # from the node: short-circuited to the cluster-wide endpoint, masqueraded
        assert key(a) == {("DNAT to 10.180.0.2:80 (then MASQUERADE)", 0, ())}
    elif pkt.get("src_local") is False and pkt["src"].startswith("203."):  # from outside: no local endpoint
        assert key(a) == {("DROP", 0, ())}
