"""One reading of a service chain: the split of ``services``/``simulate``/``cascade`` is the tracer's.

A ``KUBE-SVC`` chain of kube-proxy's own shape is read as a cascade (fast); any other shape (a RETURN,
two statistic matches in a rule, ``--mode nth``, two rules to one endpoint chain, a DROP) is read by the
packet tracer, and a shape whose split depends on the packet is refused with the rule. The same chains
run on the real kernel in ``tests/conformance/test_kube_proxy_shapes.py``.
"""

from __future__ import annotations

import io
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meshstat import kubeproxy as kp
from meshstat import model
from meshstat import netfilter as nf
from meshstat.errors import ModelError
from meshstat.model import threshold_to_decimal
from meshstat.netfilter.split import chain_split

HEAD = """*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:KUBE-MARK-MASQ - [0:0]
:KUBE-SERVICES - [0:0]
:KUBE-SVC-X - [0:0]
:KUBE-SEP-1 - [0:0]
:KUBE-SEP-2 - [0:0]
:KUBE-SEP-3 - [0:0]
-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
-A OUTPUT -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
-A KUBE-MARK-MASQ -j MARK --set-xmark 0x4000/0x4000
-A KUBE-SERVICES -d 10.96.0.10/32 -p tcp -m comment --comment "default/web cluster IP" -m tcp --dport 80 -j KUBE-SVC-X
-A KUBE-SEP-1 -s 10.244.1.1/32 -m comment --comment default/web -j KUBE-MARK-MASQ
-A KUBE-SEP-1 -p tcp -m comment --comment default/web -m tcp -j DNAT --to-destination 10.244.1.1:8080
-A KUBE-SEP-2 -s 10.244.1.2/32 -m comment --comment default/web -j KUBE-MARK-MASQ
-A KUBE-SEP-2 -p tcp -m comment --comment default/web -m tcp -j DNAT --to-destination 10.244.1.2:8080
-A KUBE-SEP-3 -s 10.244.1.3/32 -m comment --comment default/web -j KUBE-MARK-MASQ
-A KUBE-SEP-3 -p tcp -m comment --comment default/web -m tcp -j DNAT --to-destination 10.244.1.3:8080
-A KUBE-SVC-X ! -s 10.244.0.0/16 -d 10.96.0.10/32 -p tcp -m comment --comment "default/web cluster IP" -m tcp --dport 80 -j KUBE-MARK-MASQ
"""  # noqa: E501
THIRD, HALF, QUARTER = "0.33333333349", "0.50000000000", "0.25000000000"
K3, K2 = 715827883, 1 << 30  # the stored thresholds of 1/3 and 1/2

SHAPES = {
    # kube-proxy's cascade with a RETURN in the middle: 1/3, 1/3 falling through, 1/3
    "return": [f"-m statistic --mode random --probability {THIRD} -j KUBE-SEP-1",
               f"-m statistic --mode random --probability {HALF} -j RETURN", "-j KUBE-SEP-2"],
    # two statistic matches in one rule: both must match (independent draws)
    "two-statistics": [f"-m statistic --mode random --probability {HALF} -m statistic --mode random "
                       f"--probability {HALF} -j KUBE-SEP-1", "-j KUBE-SEP-2"],
    # nth: a deterministic rotation
    "nth": ["-m statistic --mode nth --every 3 --packet 0 -j KUBE-SEP-1",
            "-m statistic --mode nth --every 2 --packet 0 -j KUBE-SEP-2", "-j KUBE-SEP-3"],
    # one endpoint chain reached by two rules
    "same-endpoint": [f"-m statistic --mode random --probability {QUARTER} -j KUBE-SEP-1",
                      f"-m statistic --mode random --probability {THIRD} -j KUBE-SEP-2",
                      f"-m statistic --mode random --probability {HALF} -j KUBE-SEP-1", "-j KUBE-SEP-3"],
    # a DROP in the chain
    "drop": [f"-m statistic --mode random --probability {HALF} -j DROP", "-j KUBE-SEP-1"],
    # a split that depends on the client's address
    "by-source": ["-s 10.0.0.0/8 -j KUBE-SEP-1", "-j KUBE-SEP-2"],
}  # fmt: skip


def text_of(shape: str) -> str:
    return HEAD + "".join(f"-A KUBE-SVC-X {r}\n" for r in SHAPES[shape]) + "COMMIT\n"


def rs_of(shape: str) -> nf.Ruleset:
    return nf.parse_iptables(text_of(shape), f"{shape}.rules")


def shares_of(info: kp.ServiceInfo) -> dict[str, Fraction]:
    return {e.address: e.share for e in info.endpoints}


def kernel_split(rs: nf.Ruleset) -> dict[str, Fraction]:
    """What the tracer says the whole node does with a pod's connection (the outcome per verdict)."""
    r = nf.trace(rs, nf.Packet(dst="10.96.0.10", dport=80, src="10.244.9.9"))
    out: dict[str, Fraction] = {}
    for p in r.paths:
        name = p.verdict.target if p.verdict.kind == "DNAT" else (
            model.FALL_THROUGH if p.verdict.kind == "CONTINUE" else f"({p.verdict.kind.lower()}ped)")
        out[name] = out.get(name, Fraction(0)) + p.probability
    return out


def test_return_falls_through_with_its_own_share() -> None:
    rs = rs_of("return")
    info = kp.find_service(rs, "default/web")
    third = Fraction(K3, 1 << 31)
    assert shares_of(info) == {
        "10.244.1.1:8080": third, model.FALL_THROUGH: (1 - third) / 2, "10.244.1.2:8080": (1 - third) / 2
    }
    assert shares_of(info) == kernel_split(rs)
    assert any("line 24: -j RETURN" in n for n in info.notes)
    route = kp.service_route(info)
    assert [b.name for b in route.backends()] == ["10.244.1.1:8080", model.FALL_THROUGH, "10.244.1.2:8080"]
    assert sum(route.exact_shares()) == 1


def test_two_statistic_matches_multiply() -> None:
    info = kp.find_service(rs_of("two-statistics"), "default/web")
    assert shares_of(info) == {"10.244.1.1:8080": Fraction(1, 4), "10.244.1.2:8080": Fraction(3, 4)}
    assert shares_of(info) == kernel_split(rs_of("two-statistics"))


def test_nth_is_listed_with_its_long_run_shares_and_not_simulated() -> None:
    rs = rs_of("nth")
    info = kp.find_service(rs, "default/web")
    assert shares_of(info) == dict.fromkeys(("10.244.1.1:8080", "10.244.1.2:8080", "10.244.1.3:8080"), Fraction(1, 3))
    assert "deterministic per-rule counter" in (info.unmodelled or "")
    with pytest.raises(ModelError, match="--mode nth"):
        kp.service_route(info)


def test_one_endpoint_chain_reached_by_two_rules_gets_both_shares() -> None:
    rs = rs_of("same-endpoint")
    info = kp.find_service(rs, "default/web")
    q, t, h = Fraction(1, 4), Fraction(K3, 1 << 31), Fraction(1, 2)
    assert shares_of(info) == {
        "10.244.1.1:8080": q + (1 - q) * (1 - t) * h,
        "10.244.1.2:8080": (1 - q) * t,
        "10.244.1.3:8080": (1 - q) * (1 - t) * (1 - h),
    }
    assert shares_of(info) == kernel_split(rs)
    [ep] = [e for e in info.endpoints if e.chain == "KUBE-SEP-1"]
    assert any("all jump to KUBE-SEP-1: 10.244.1.1:8080 gets the sum of their shares" in n for n in info.notes)
    route = kp.service_route(info)  # was: "backend names must be unique in a route"
    assert len(route.backends()) == 3


def test_a_drop_is_an_outcome() -> None:
    info = kp.find_service(rs_of("drop"), "default/web")
    assert shares_of(info) == {"(dropped)": Fraction(1, 2), "10.244.1.1:8080": Fraction(1, 2)}
    assert shares_of(info) == kernel_split(rs_of("drop"))


def test_a_split_that_depends_on_the_packet_is_refused_with_the_rule() -> None:
    rs = rs_of("by-source")
    [info] = kp.services(rs)  # listing still works
    assert info.endpoints == () and "depends on the packet (source in 10.0.0.0/8, line 23)" in (info.unmodelled or "")
    with pytest.raises(ModelError, match="depends on the packet"):
        kp.service_route(info)


def test_commands_use_the_same_split(tmp_path) -> None:  # noqa: ANN001
    from meshstat.cli import main

    f = tmp_path / "return.rules"
    f.write_text(text_of("return"))
    out, err = io.StringIO(), io.StringIO()
    assert main(["services", "--iptables", str(f), "--service", "default/web", "--format", "csv"], stdout=out,
                stderr=err) == 0, err.getvalue()  # fmt: skip
    assert [ln.split(",")[0] for ln in out.getvalue().splitlines()[1:]] == [
        "10.244.1.1:8080", model.FALL_THROUGH, "10.244.1.2:8080"
    ]
    out, err = io.StringIO(), io.StringIO()
    assert main(["simulate", "--iptables", str(f), "--service", "default/web", "-n", "3000", "--seed", "1",
                 "--format", "csv"], stdout=out, stderr=err) == 0, err.getvalue()  # fmt: skip
    rows = out.getvalue().splitlines()[1:]
    assert [r.split(",")[1] for r in rows] == ["10.244.1.1:8080", model.FALL_THROUGH, "10.244.1.2:8080"]
    out, err = io.StringIO(), io.StringIO()
    assert main(["cascade", "--iptables", str(f), "--service", "default/web"], stdout=out, stderr=err) == 2
    assert "is not a statistic cascade" in err.getvalue() and "meshstat services" in err.getvalue()
    f = tmp_path / "nth.rules"
    f.write_text(text_of("nth"))
    out, err = io.StringIO(), io.StringIO()
    assert main(["simulate", "--iptables", str(f), "--service", "default/web", "-n", "100"], stdout=out,
                stderr=err) != 0  # fmt: skip
    assert "--mode nth" in err.getvalue() and err.getvalue().startswith("meshstat: error:")


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 1 << 31), st.booleans()), min_size=1, max_size=6),
    st.booleans(),
    st.booleans(),
)
def test_the_fast_path_reads_kube_proxys_shape_as_the_tracer_does(rules, last: bool, affinity: bool) -> None:  # noqa: ANN001
    """The cascade read from the thresholds equals the split of the tracer's paths, for any thresholds."""
    n = len(rules) + (1 if last else 0)
    head = "".join(f":KUBE-SEP-{i} - [0:0]\n" for i in range(n))
    body = ""
    if affinity:
        body += "".join(f"-A KUBE-SVC-X -m recent --name KUBE-SEP-{i} --rcheck --seconds 10800 --reap -j KUBE-SEP-{i}\n"
                        for i in range(n))  # fmt: skip
    for i, (k, neg) in enumerate(rules):
        body += (f"-A KUBE-SVC-X -m comment --comment \"default/web -> 10.0.0.{i}:80\" -m statistic --mode random "
                 f"{'! ' if neg else ''}--probability {threshold_to_decimal(k)} -j KUBE-SEP-{i}\n")  # fmt: skip
    if last:
        body += f"-A KUBE-SVC-X -j KUBE-SEP-{n - 1}\n"
    body += "".join(f"-A KUBE-SEP-{i} -p tcp -m tcp -j DNAT --to-destination 10.0.0.{i}:80\n" for i in range(n))
    text = HEAD.split(":KUBE-SEP-1")[0] + head + "".join(
        ln + "\n" for ln in HEAD.splitlines() if ln.startswith("-A") and "KUBE-SEP" not in ln
    ) + body + "COMMIT\n"
    rs = nf.parse_iptables(text, "t")
    info = kp.find_service(rs, "default/web")
    assert not info.notes  # kube-proxy's shape: the fast path
    fast = {e.address: e.share for e in info.endpoints}
    stage = info.stage
    if stage.fall_through:
        fast[model.FALL_THROUGH] = stage.shares()[-1]
    traced = {o.name: o.probability for o in chain_split(rs, "KUBE-SVC-X", nf.Packet(dst="10.96.0.10", dport=80)).outcomes}
    assert {k: v for k, v in fast.items() if v} == traced


def test_the_counters_check_refuses_a_chain_it_cannot_read_as_a_cascade() -> None:
    from meshstat.errors import InvalidArgument
    from meshstat.inference.counters import check_counters

    text = text_of("return").replace("-A KUBE-SVC-X ", "[10:600] -A KUBE-SVC-X ")
    rs = nf.parse_iptables(text, "return-c.rules")
    with pytest.raises(InvalidArgument, match=r"reads kube-proxy's statistic cascade; chain KUBE-SVC-X is not"):
        check_counters(rs, "default/web")
