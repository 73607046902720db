"""Netfilter speed: a 10,000-service kube-proxy dump (parse, service lookup, one-packet trace).

Goals (issue "Real rulesets in"): a kube-proxy dump of 10,000 services with 1 to 20
endpoints each parses in under 2 s, a service lookup then takes under 10 ms and
the trace of one packet under 50 ms. The dump is generated here in kube-proxy's
layout (``meshstat.kubeproxy.kube_proxy_iptables_save``: ``KUBE-SERVICES`` rule,
masquerade rule, ``n`` cascade rules and ``2n`` ``KUBE-SEP`` rules per service),
which is 334,804 rules for these 10,000 services (the issue's "~100k rules" would
be 1 to 5 endpoints). The parse goal is checked as stated, for the whole dump
(median < 2 s), and also per 100,000 rules (the parse is linear in the rules).
Timings are asserted with a slack factor for shared CI machines
(``MESHSTAT_BENCH_SLACK``, default 2, as the other benchmarks' floors at half of
each goal). Every benchmark also asserts what it timed.

The parse is this fast because the rules of kube-proxy's shapes are validated
when read but their matches and target are built on first access (see
"Performance" in :mod:`meshstat.parsers.netfilter.iptables_save`); the lookup and the trace
below include building those of the rules they read.
"""

from __future__ import annotations

import os
import random
from fractions import Fraction

import pytest

from meshstat import kubeproxy as kp
from meshstat import netfilter as nf

SERVICES = 10_000
SLACK = float(os.environ.get("MESHSTAT_BENCH_SLACK", "2"))


def _spec() -> list[tuple[str, str, str, int, list[str]]]:
    rng = random.Random(20_240_601)
    out = []
    for i in range(SERVICES):
        n = rng.randint(1, 20)
        cip = f"10.{96 + i // 65536}.{(i // 256) % 256}.{i % 256}"
        proto = "udp" if i % 10 == 0 else "tcp"
        eps = [f"10.{244 + i % 8}.{(i * 21 + j) // 256 % 256}.{(i * 21 + j) % 256}:{8000 + i % 7}" for j in range(n)]
        out.append((f"ns{i % 97}/svc{i}:p{i % 3}", proto, cip, 80 + i % 5, eps))
    return out


@pytest.fixture(scope="module")
def spec() -> list[tuple[str, str, str, int, list[str]]]:
    return _spec()


@pytest.fixture(scope="module")
def dump(spec: list) -> str:
    return kp.kube_proxy_iptables_save(spec)


@pytest.fixture(scope="module")
def ruleset(dump: str) -> nf.Ruleset:
    return nf.parse_iptables(dump, "bench-10k")


def _expected_rules(spec: list) -> int:
    # per service: KUBE-SERVICES rule, masquerade rule, n cascade rules, 2n KUBE-SEP rules;
    # plus 3 portal/postrouting jumps, MARK-MASQ, 3 POSTROUTING rules and the nodeports rule
    return sum(2 + 3 * len(eps) for *_x, eps in spec) + 3 + 1 + 3 + 1


def test_bench_parse_10k_services(benchmark, dump: str, spec: list) -> None:  # type: ignore[no-untyped-def]
    rs = benchmark.pedantic(lambda: nf.parse_iptables(dump, "bench-10k"), rounds=3, iterations=1, warmup_rounds=0)
    rules = _expected_rules(spec)
    assert rs.rule_count == rules
    nat = rs.table("nat")
    assert len([c for c in nat.chains if c.startswith("KUBE-SVC-")]) == SERVICES
    median = benchmark.stats.stats.median
    per_100k = median * 100_000 / rules
    benchmark.extra_info.update({"rules": rules, "seconds_per_100k_rules": per_100k})
    # the goal as stated: the whole 10,000-service dump in under 2 s
    assert median < 2.0 * SLACK, f"parse {median:.2f} s for {SERVICES} services ({rules} rules)"
    assert per_100k < 2.0 * SLACK, f"{per_100k:.2f} s per 100k rules ({rules} rules in {median:.2f} s)"


def test_bench_service_lookup(benchmark, ruleset: nf.Ruleset, spec: list) -> None:  # type: ignore[no-untyped-def]
    rng = random.Random(5)
    picks = [spec[rng.randrange(SERVICES)] for _ in range(200)]
    it = iter(range(10**9))

    def lookup():  # type: ignore[no-untyped-def]
        name, proto, cip, port, eps = picks[next(it) % len(picks)]
        info = kp.find_service(ruleset, name)
        route = kp.service_route(info)
        return info, route, (name, proto, cip, port, eps)

    info, route, (name, proto, cip, port, eps) = benchmark.pedantic(lookup, rounds=200, iterations=1, warmup_rounds=1)
    assert (info.name, info.protocol, info.cluster_ip, info.port) == (name, proto, cip, port)
    assert [b.address for b in route.backends()] == sorted(eps)
    assert sum(route.exact_shares()) == 1
    median = benchmark.stats.stats.median
    assert median < 0.010 * SLACK, f"lookup {median * 1e3:.2f} ms"
    # by cluster IP:port too (index built once, outside the timing)
    kp.find_service(ruleset, f"{cip}:{port}/{proto}")
    for name, proto, cip, port, _eps in picks[:20]:
        assert kp.find_service(ruleset, f"{cip}:{port}/{proto}").name == name


def test_bench_trace_one_packet(benchmark, ruleset: nf.Ruleset, spec: list) -> None:  # type: ignore[no-untyped-def]
    rng = random.Random(9)
    picks = [spec[rng.randrange(SERVICES)] for _ in range(100)]
    it = iter(range(10**9))
    nf.trace(ruleset, nf.Packet(dst=picks[0][2], dport=picks[0][3], proto=picks[0][1], src="10.244.0.1"))  # index

    def one():  # type: ignore[no-untyped-def]
        name, proto, cip, port, eps = picks[next(it) % len(picks)]
        return nf.trace(ruleset, nf.Packet(dst=cip, dport=port, proto=proto, src="10.244.0.1")), eps

    result, eps = benchmark.pedantic(one, rounds=100, iterations=1, warmup_rounds=1)
    assert result.total == 1
    assert sorted(p.verdict.target for p in result.paths) == sorted(eps)
    assert all(p.probability > 0 and not p.conditions for p in result.paths)
    n = len(eps)
    assert [p.probability for p in result.paths][-1] == Fraction(1, 1) - sum(p.probability for p in result.paths[:-1])
    median = benchmark.stats.stats.median
    assert median < 0.050 * SLACK, f"trace {median * 1e3:.2f} ms for {n} endpoints"
