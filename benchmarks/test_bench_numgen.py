"""nft ``numgen``: the work is bounded by the ruleset, not by the modulus.

Goal: ``trace`` and ``services`` of a
two-range ``numgen random mod 4294967295`` map finish within a second, i.e. cost
about what ``mod 2`` costs. Both are timed here in the same run, the ``mod 2``
map being the baseline; the ratio is asserted below ``3 * SLACK`` and the huge
modulus below ``1 s * SLACK`` (``MESHSTAT_BENCH_SLACK``, default 2, for shared
CI machines). Every benchmark asserts what it timed.
"""

from __future__ import annotations

import os
from fractions import Fraction

import pytest

from benchmarks.conftest import RESULTS, record
from meshstat import kubeproxy as kp
from meshstat import netfilter as nf
from meshstat.parsers.netfilter.nft import parse_nft

SLACK = float(os.environ.get("MESHSTAT_BENCH_SLACK", "2"))

_TEXT = """table ip kube-proxy {
	map service-ips {
		type ipv4_addr . inet_proto . inet_service : verdict
		elements = { 172.30.0.44 . tcp . 80 : goto service-LAUZTJTB-ns4/svc4/tcp/p80 }
	}
	chain nat-output {
		type nat hook output priority -100; policy accept;
		jump services
	}
	chain services {
		ip daddr . meta l4proto . th dport vmap @service-ips
	}
	chain service-LAUZTJTB-ns4/svc4/tcp/p80 {
		numgen random mod MOD vmap { 0-A : goto endpoint-UNZV3OEC-ns4/svc4/tcp/p80__10.180.0.4/80, B-C : goto endpoint-5RFCDDV7-ns4/svc4/tcp/p80__10.180.0.5/80 }
	}
	chain endpoint-5RFCDDV7-ns4/svc4/tcp/p80__10.180.0.5/80 {
		meta l4proto tcp dnat to 10.180.0.5:80
	}
	chain endpoint-UNZV3OEC-ns4/svc4/tcp/p80__10.180.0.4/80 {
		meta l4proto tcp dnat to 10.180.0.4:80
	}
}
"""


def _text(modulus: int) -> str:
    half = modulus // 2
    return (_TEXT.replace("MOD", str(modulus)).replace("0-A", f"0-{half - 1}")
            .replace("B-C", f"{half}-{modulus - 1}"))  # fmt: skip


def _trace_and_services(text: str) -> tuple[nf.TraceResult, list]:
    rs = parse_nft(text, "bench.nft")
    return nf.trace(rs, nf.Packet(dst="172.30.0.44", dport=80)), kp.services(rs)


@pytest.mark.parametrize("modulus", [2, (1 << 32) - 1])
def test_bench_numgen_modulus(benchmark, modulus: int) -> None:  # type: ignore[no-untyped-def]
    text = _text(modulus)
    r, infos = benchmark.pedantic(lambda: _trace_and_services(text), rounds=20, iterations=1, warmup_rounds=1)
    record(f"numgen_mod_{modulus}", benchmark)
    assert r.total == 1 and len(r.paths) == 2
    (info,) = infos
    assert [e.share for e in info.endpoints] == [p.probability for p in r.paths]
    if modulus == 2:
        assert [p.probability for p in r.paths] == [Fraction(1, 2)] * 2
    else:
        assert r.paths[0].probability == Fraction((1 << 31), 1 << 32)  # slots 0 .. 2**31-2: ceil((2**31-1) 2**32/N)
    assert benchmark.stats.stats.median < 1.0 * SLACK


def test_zz_ratio() -> None:
    need = ["numgen_mod_2", f"numgen_mod_{(1 << 32) - 1}"]
    missing = [x for x in need if x not in RESULTS]
    assert not missing, f"run the whole benchmark file: missing {missing}"
    ratio = RESULTS[need[1]] / RESULTS[need[0]]
    print(f"\nnumgen mod 4294967295 vs mod 2: {ratio:.2f}x ({RESULTS[need[1]] * 1e3:.2f} ms)")
    assert ratio < 3 * SLACK, f"mod 4294967295 costs {ratio:.1f}x mod 2"
