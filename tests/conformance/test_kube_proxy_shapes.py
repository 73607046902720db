"""kube-proxy's iptables-mode shapes on the real kernel, traced by meshstat and by real packets.

Each case loads the rules kube-proxy writes (``tests/kube_proxy_rules.py``, a port of
``pkg/proxy/iptables/proxier.go: syncProxyRules``, with the jumps it adds by ``iptables -I``) into the
node namespace of a :class:`NetnsLab`, reads them back with ``iptables-save``, traces the packet with
:func:`meshstat.netfilter.trace` (every table and hook; the node's local addresses given, so the
routing decision is the lab's) and opens a few hundred real connections. Where meshstat says DNAT,
the counts per endpoint must fit its exact shares (chi-square at ALPHA, a false alarm per test
with probability ALPHA = 1e-5, tests/conformance/util.py) and no connection may reach an endpoint it gives probability 0; where it says
REJECT the real connections must be refused, where it says DROP they must time out. ``nth`` is exact.

The node is the backend namespace: pods and service VIPs are addresses on its loopback device, the
client namespace is "outside"; connections "from the node" are opened in the backend namespace.
Bounded: at most 600 connections a case; namespaces are removed by the lab, also on failure.
"""

from __future__ import annotations

from fractions import Fraction

import pytest

from meshstat import kubeproxy as kp
from meshstat import model
from meshstat import netfilter as nf
from meshstat.oracle.netns import CLIENT_ADDRESS, NetnsLab
from tests.conformance.util import assert_fits
from tests.kube_proxy_rules import Endpoint, Service, restore_text
from tests.kubeproxy.test_chain_reading import text_of
from tests.netfilter.test_trace_hooks import MANGLE_CANARY

pytestmark = [pytest.mark.conformance, pytest.mark.usefixtures("netfilter_ready")]

NODE = "198.18.0.2"  # the backend namespace's address on the link
E = Endpoint


def _kernel_rules(lab: NetnsLab) -> nf.Ruleset:
    """What the kernel holds, as iptables-save prints it (meshstat traces this)."""
    return nf.parse_iptables(lab.exec("backend", ["iptables-save"]), "node (iptables-save)")


def _local_addresses(lab: NetnsLab) -> tuple[str, ...]:
    out = lab.exec("backend", ["ip", "-o", "-4", "addr", "show"])
    return tuple(line.split()[3].split("/")[0] for line in out.splitlines())


def _split(rs: nf.Ruleset, lab: NetnsLab, hook: str, **packet: object) -> dict[str, Fraction]:
    """meshstat's outcome shares for one packet: DNAT target, "(dropped)", "(rejected)" or no NAT."""
    pkt = nf.Packet(local_addresses=_local_addresses(lab), **packet)  # type: ignore[arg-type]
    r = nf.trace(rs, pkt, hook)
    assert not any(p.conditions for p in r.paths), [(str(p.verdict), p.conditions) for p in r.paths]
    assert r.total == 1
    out: dict[str, Fraction] = {}
    for p in r.paths:
        v = p.verdict
        name = v.target if v.kind == "DNAT" else {"DROP": "(dropped)", "REJECT": "(rejected)"}.get(
            v.kind, model.FALL_THROUGH)
        out[name] = out.get(name, Fraction(0)) + p.probability  # type: ignore[index]
    return out


def _check_counts(record, case: str, shares: dict[str, Fraction], run) -> None:  # noqa: ANN001
    """The connections fit the DNAT shares; nothing reached an outcome meshstat rules out."""
    assert run.errors == 0, f"{case}: {run.errors} connections failed ({run.error_kinds})"
    got = run.counts()
    names = sorted(shares)
    assert set(got) <= set(names), f"{case}: connections reached {set(got) - set(names)}"
    assert_fits(record, case, names, [got.get(n, 0) for n in names], [shares[n] for n in names])


def _check_failures(record, case: str, verdict: str, run, n: int) -> None:  # noqa: ANN001
    kind = {"(rejected)": "refused", "(dropped)": "timeout"}[verdict]
    record(case=case, n=n, meshstat=verdict, error_kinds=run.error_kinds, completed=run.n)
    assert run.n == 0, f"{case}: {run.n} connections completed where meshstat says {verdict}"
    assert run.error_kinds.get(kind) == n, f"{case}: expected {n} {kind}, got {run.error_kinds}"


def _service_route(lab: NetnsLab, prefix: str = "10.96.0.0/16", *, forward: bool = False) -> None:
    """Give the node a route for the service range, as a node's default route does.

    The route leads into a veth pair inside the node namespace where nothing answers
    (an address there is never resolved), so a packet no rule rewrote or stopped goes
    nowhere. With ``forward``, the node forwards (the FORWARD hook sees outside packets).
    """
    if forward:
        lab.exec("backend", ["sysctl", "-q", "-w", "net.ipv4.ip_forward=1"])
    lab.exec("backend", ["ip", "link", "add", "msfwd0", "type", "veth", "peer", "name", "msfwd1"])
    for dev in ("msfwd0", "msfwd1"):
        lab.exec("backend", ["ip", "link", "set", dev, "up"])
    lab.exec("backend", ["ip", "route", "add", prefix, "dev", "msfwd0"])


# ------------------------------------------------------------------ many endpoints


def test_a_service_with_1000_endpoints(record) -> None:  # noqa: ANN001
    eps = [E(f"10.244.{1 + i // 250}.{1 + i % 250}", 8080) for i in range(1000)]
    svc = Service("big", "web", "10.96.0.10", 80, eps)
    n = 600
    with NetnsLab() as lab:
        lab.load_iptables(restore_text([svc], jumps=True))
        lab.serve({e.text: e.text for e in eps})
        rs = _kernel_rules(lab)
        shares = _split(rs, lab, "prerouting", dst="10.96.0.10", dport=80, src=CLIENT_ADDRESS)
        run = lab.connect("10.96.0.10:80", n)
    assert sorted(shares) == sorted(e.text for e in eps) and sum(shares.values()) == 1
    assert shares == {e.address: e.share for e in kp.find_service(rs, "big/web").endpoints}  # services agrees
    assert run.errors == 0 and run.n == n and set(run.counts()) <= set(shares)
    order = sorted(shares)  # kube-proxy's order; ten groups of 100 consecutive endpoints
    groups = [order[g * 100:(g + 1) * 100] for g in range(10)]
    got = run.counts()
    assert_fits(record, "1000 endpoints, in 10 groups of 100", [f"group {g}" for g in range(10)],
                [sum(got.get(a, 0) for a in grp) for grp in groups],
                [sum((shares[a] for a in grp), Fraction(0)) for grp in groups])  # fmt: skip


# ------------------------------------------------------------------ traffic policies


ETP = Service("ns3", "etp", "10.96.0.30", 80, [E("10.244.1.1", 8080), E("10.244.1.2", 8080),
              E("10.244.2.1", 8080, False), E("10.244.2.2", 8080, False)], external_policy="Local",
              node_port=30080)  # fmt: skip


def test_external_traffic_policy_local_from_outside(record) -> None:  # noqa: ANN001
    with NetnsLab() as lab:
        lab.load_iptables(restore_text([ETP], jumps=True))
        lab.serve({e.text: e.text for e in ETP.endpoints})
        rs = _kernel_rules(lab)
        shares = _split(rs, lab, "prerouting", dst=NODE, dport=30080, src=CLIENT_ADDRESS)
        run = lab.connect(f"{NODE}:30080", 300)
    assert sorted(shares) == ["10.244.1.1:8080", "10.244.1.2:8080"]  # the node's own endpoints only
    _check_counts(record, "externalTrafficPolicy Local, from outside", shares, run)


def test_external_traffic_policy_local_from_the_node(record) -> None:  # noqa: ANN001
    with NetnsLab() as lab:
        lab.load_iptables(restore_text([ETP], jumps=True))
        lab.serve({e.text: e.text for e in ETP.endpoints})
        rs = _kernel_rules(lab)
        shares = _split(rs, lab, "output", dst=NODE, dport=30080, src=NODE)
        run = lab.connect(f"{NODE}:30080", 400, side="backend")
    assert len(shares) == 4  # from the node: every endpoint (KUBE-EXT routes LOCAL traffic to KUBE-SVC)
    _check_counts(record, "externalTrafficPolicy Local, from the node", shares, run)


def test_internal_traffic_policy_local_with_local_endpoints(record) -> None:  # noqa: ANN001
    svc = Service("ns1", "itp", "10.96.0.40", 80, [E("10.244.1.1", 8080), E("10.244.1.2", 8080),
                  E("10.244.2.1", 8080, False)], internal_policy="Local")  # fmt: skip
    with NetnsLab() as lab:
        lab.load_iptables(restore_text([svc], jumps=True))
        _service_route(lab)
        lab.serve({e.text: e.text for e in svc.endpoints})
        rs = _kernel_rules(lab)
        outside = _split(rs, lab, "prerouting", dst="10.96.0.40", dport=80, src=CLIENT_ADDRESS)
        node = _split(rs, lab, "output", dst="10.96.0.40", dport=80, src=NODE)
        run_out = lab.connect("10.96.0.40:80", 300)
        run_node = lab.connect("10.96.0.40:80", 300, side="backend")
    assert sorted(outside) == sorted(node) == ["10.244.1.1:8080", "10.244.1.2:8080"]
    _check_counts(record, "internalTrafficPolicy Local, from outside", outside, run_out)
    _check_counts(record, "internalTrafficPolicy Local, from the node", node, run_node)


def test_internal_traffic_policy_local_without_local_endpoints_drops(record) -> None:  # noqa: ANN001
    svc = Service("ns1", "itp-none", "10.96.0.41", 80, [E("10.244.2.1", 8080, False)], internal_policy="Local")
    with NetnsLab() as lab:
        lab.load_iptables(restore_text([svc], jumps=True))
        _service_route(lab, forward=True)
        lab.serve({"remote pod": "10.244.2.1:8080"})
        rs = _kernel_rules(lab)
        assert kp.find_service(rs, "ns1/itp-none").cluster_state == "dropped"
        outside = _split(rs, lab, "prerouting", dst="10.96.0.41", dport=80, src=CLIENT_ADDRESS)
        node = _split(rs, lab, "output", dst="10.96.0.41", dport=80, src=NODE)
        run_out = lab.connect("10.96.0.41:80", 4, timeout=0.5)
        run_node = lab.connect("10.96.0.41:80", 4, side="backend", timeout=0.5)
    assert outside == node == {"(dropped)": 1}
    _check_failures(record, "internalTrafficPolicy Local, no local endpoints, from outside", "(dropped)", run_out, 4)
    _check_failures(record, "internalTrafficPolicy Local, no local endpoints, from the node", "(dropped)", run_node, 4)


def test_a_service_without_endpoints_is_rejected(record) -> None:  # noqa: ANN001
    svc = Service("ns2", "noeps", "10.96.0.50", 80, [], external_ips=["192.0.2.50"])
    with NetnsLab() as lab:
        lab.load_iptables(restore_text([svc], jumps=True))
        _service_route(lab, forward=True)
        lab.no_icmp_rate_limit()  # every REJECT answers, none is rate-limited into a timeout
        lab.add_addresses(["192.0.2.50"])  # the external IP routed to this node
        rs = _kernel_rules(lab)
        verdicts = {
            "cluster IP from outside": _split(rs, lab, "prerouting", dst="10.96.0.50", dport=80, src=CLIENT_ADDRESS),
            "cluster IP from the node": _split(rs, lab, "output", dst="10.96.0.50", dport=80, src=NODE),
            "external IP from outside": _split(rs, lab, "prerouting", dst="192.0.2.50", dport=80, src=CLIENT_ADDRESS),
        }
        runs = {
            "cluster IP from outside": lab.connect("10.96.0.50:80", 20, timeout=1.0),
            "cluster IP from the node": lab.connect("10.96.0.50:80", 20, side="backend", timeout=1.0),
            "external IP from outside": lab.connect("192.0.2.50:80", 20, timeout=1.0),
        }
    for case, shares in verdicts.items():
        assert shares == {"(rejected)": 1}, case
        _check_failures(record, f"no endpoints, {case}", "(rejected)", runs[case], 20)


def test_load_balancer_source_ranges(record) -> None:  # noqa: ANN001
    svc = Service("ns4", "lb", "10.96.0.60", 80, [E("10.244.1.1", 8080), E("10.244.1.2", 8080)],
                  lb_ips=["192.0.2.60"], source_ranges=["198.18.5.0/24"])  # fmt: skip
    allowed = "198.18.5.1"
    with NetnsLab() as lab:
        lab.load_iptables(restore_text([svc], jumps=True))
        lab.add_addresses(["192.0.2.60"])  # a VIP-like load balancer: the IP is on the node
        lab.serve({e.text: e.text for e in svc.endpoints})
        rs = _kernel_rules(lab)
        lab.add_client_sources([allowed])
        inside = _split(rs, lab, "prerouting", dst="192.0.2.60", dport=80, src=allowed)
        outside = _split(rs, lab, "prerouting", dst="192.0.2.60", dport=80, src=CLIENT_ADDRESS)
        run_in = lab.connect("192.0.2.60:80", 300, source_addresses=[allowed])
        run_out = lab.connect("192.0.2.60:80", 4, timeout=0.5)
    assert sorted(inside) == ["10.244.1.1:8080", "10.244.1.2:8080"] and outside == {"(dropped)": 1}
    _check_counts(record, "loadBalancerSourceRanges, source inside", inside, run_in)
    _check_failures(record, "loadBalancerSourceRanges, source outside", "(dropped)", run_out, 4)


# ------------------------------------------------------------------ chain shapes, mangle, partial sync


@pytest.mark.parametrize("shape", ["return", "two-statistics", "same-endpoint"])
def test_service_chain_shapes_as_services_reads_them(shape: str, record) -> None:  # noqa: ANN001
    """The split ``meshstat services`` gives for a chain of another shape is the kernel's."""
    text = text_of(shape)
    with NetnsLab() as lab:
        lab.load_iptables(text)
        addrs = ["10.244.1.1:8080", "10.244.1.2:8080", "10.244.1.3:8080"]
        lab.serve({a: a for a in addrs} | {model.FALL_THROUGH: "10.96.0.10:80"})
        run = lab.connect("10.96.0.10:80", 450)
    info = kp.find_service(nf.parse_iptables(text, shape), "default/web")
    shares = {e.address: e.share for e in info.endpoints}
    assert sum(shares.values()) == 1
    _check_counts(record, f"service chain shape: {shape}", shares, run)


def test_nth_is_an_exact_rotation(record) -> None:  # noqa: ANN001
    n = 300
    with NetnsLab() as lab:
        lab.load_iptables(text_of("nth"))
        lab.serve({a: a for a in ("10.244.1.1:8080", "10.244.1.2:8080", "10.244.1.3:8080")})
        run = lab.connect("10.96.0.10:80", n)
    info = kp.find_service(nf.parse_iptables(text_of("nth"), "nth"), "default/web")
    assert run.errors == 0 and run.n == n
    got = run.counts()
    record(case="nth rotation", n=n, counts=got, shares={e.address: str(e.share) for e in info.endpoints})
    assert got == {e.address: int(e.share * n) for e in info.endpoints}  # exact long-run shares
    seq = run.sequence_names()
    assert [i + 1 for i, a in enumerate(seq) if a == "10.244.1.1:8080"] == nf.nth_matches(3, 0, n)


@pytest.mark.parametrize(("hook", "side"), [("prerouting", "client"), ("output", "backend")])
def test_a_mark_drawn_in_mangle_splits_nat(hook: str, side: str, record) -> None:  # noqa: ANN001
    with NetnsLab() as lab:
        lab.load_iptables(MANGLE_CANARY)
        _service_route(lab)
        lab.serve({a: a for a in ("10.244.1.1:8080", "10.244.1.2:8080")})
        rs = _kernel_rules(lab)
        src = CLIENT_ADDRESS if side == "client" else NODE
        shares = _split(rs, lab, hook, dst="10.96.0.20", dport=80, src=src)
        run = lab.connect("10.96.0.20:80", 400, side=side)
    assert shares == {"10.244.1.2:8080": Fraction(1, 4), "10.244.1.1:8080": Fraction(3, 4)}
    _check_counts(record, f"mangle statistic mark, {hook}", shares, run)


def test_a_partial_sync_is_what_the_kernel_takes(record) -> None:  # noqa: ANN001
    """kube-proxy's partial sync loads with --noflush onto the earlier chains; meshstat reads it with a warning."""
    a = Service("ns1", "a", "10.96.0.71", 80, [E("10.244.1.1", 8080)])
    b = Service("ns1", "b", "10.96.0.72", 80, [E("10.244.1.2", 8080)])
    b2 = Service("ns1", "b", "10.96.0.72", 80, [E("10.244.1.2", 8080), E("10.244.1.3", 8080)])
    partial = restore_text([a, b2], changed=["ns1/b"])
    with NetnsLab() as lab:
        lab.load_iptables(restore_text([a, b], jumps=True))
        lab.load_iptables(partial, noflush=True)  # kube-proxy's own call
        lab.serve({x: x for x in ("10.244.1.1:8080", "10.244.1.2:8080", "10.244.1.3:8080")})
        rs = _kernel_rules(lab)
        shares_a = _split(rs, lab, "prerouting", dst="10.96.0.71", dport=80, src=CLIENT_ADDRESS)
        shares_b = _split(rs, lab, "prerouting", dst="10.96.0.72", dport=80, src=CLIENT_ADDRESS)
        run_a = lab.connect("10.96.0.71:80", 50)
        run_b = lab.connect("10.96.0.72:80", 300)
    read = nf.parse_iptables(partial, "partial")
    missing = a.chain("KUBE-SVC-")
    assert any(missing in w.message and "does not define" in w.message for w in read.warnings)
    assert kp.find_service(read, "ns1/a").cluster_state == "partial"
    assert {e.address: e.share for e in kp.find_service(read, "ns1/b").endpoints} == shares_b
    assert shares_a == {"10.244.1.1:8080": 1}
    _check_counts(record, "partial sync: unchanged service", shares_a, run_a)
    _check_counts(record, "partial sync: changed service", shares_b, run_b)
