"""The nginx upstream parser and SmoothWRR, nginx's smooth weighted round robin (no nginx)."""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from meshstat._kernels import balancers as kb
from meshstat.balancers.roundrobin import SmoothWRR
from meshstat.errors import ConfigParseError, ModelError
from meshstat.parsers.nginx import Upstream, parse_upstreams

pytestmark = pytest.mark.conformance


def smooth_wrr(weights: Sequence[int], n: int, *, down: Sequence[bool] | None = None) -> list[int]:
    """The first ``n`` picks of SmoothWRR over ``weights``."""
    return SmoothWRR(len(weights), list(weights), down=down).sequence(n).tolist()


def upstream_sequence(upstream: Upstream, n: int) -> list[int]:
    """Indices into ``upstream.servers`` of the first ``n`` picks."""
    return SmoothWRR.from_upstream(upstream).sequence(n).tolist()


def test_known_sequences() -> None:
    assert smooth_wrr([5, 1, 1], 7) == [0, 0, 1, 0, 2, 0, 0]
    assert smooth_wrr([9, 1], 10) == [0, 0, 0, 0, 0, 1, 0, 0, 0, 0]
    assert smooth_wrr([1, 1, 1], 6) == [0, 1, 2, 0, 1, 2]  # ties -> first


@given(st.lists(st.integers(1, 20), min_size=1, max_size=6))
def test_period_counts_are_exact(weights: list[int]) -> None:
    total = sum(weights)
    seq = smooth_wrr(weights, 3 * total)
    for k in range(3):
        block = seq[k * total:(k + 1) * total]
        assert [block.count(i) for i in range(len(weights))] == weights
    # smooth: no peer waits longer than needed; current weights return to 0 after a period
    current = np.zeros(len(weights), np.int64)
    kb.swrr_sequence(np.asarray(weights, np.int64), current, np.int64(total), np.empty(total, np.int32))
    assert current.tolist() == [0] * len(weights)


def test_down_never_and_all_down() -> None:
    assert 1 not in smooth_wrr([1, 5, 1], 50, down=[False, True, False])
    with pytest.raises(ModelError):
        smooth_wrr([1, 1], 1, down=[True, True])


def test_parse_full_config() -> None:
    text = """
    # comment { not a block
    events {}
    http {
        upstream "app" {
            zone app 64k;
            server 10.0.0.1:8080 weight=5 max_fails=3 fail_timeout=30s;
            server 10.0.0.2:8080;   # weight 1
            server 10.0.0.3:8080 backup;
            server 10.0.0.4:8080 down;
            keepalive 16;
        }
        upstream lc { least_conn; server a:1; server b:1 weight=2; }
        server { listen 80; location / { proxy_pass http://app; } }
    }
    """
    ups = parse_upstreams(text, source="nginx.conf")
    app = ups["app"]
    assert [s.weight for s in app.servers] == [5, 1, 1, 1]
    assert app.servers[0].max_fails == 3 and app.servers[0].fail_timeout == "30s"
    assert app.servers[2].backup and app.servers[3].down
    assert app.servers[1].line == 8
    assert app.shares() == (Fraction(5, 6), Fraction(1, 6), Fraction(0), Fraction(0))
    a, b = "10.0.0.1:8080", "10.0.0.2:8080"
    assert [app.servers[i].address for i in upstream_sequence(app, 6)] == [a, a, a, b, a, a]
    route = app.to_route()
    assert route.exact_shares() == app.shares()
    assert ups["lc"].balancer == "least_conn"
    with pytest.raises(ModelError, match="least_conn"):
        upstream_sequence(ups["lc"], 3)


@pytest.mark.parametrize(
    ("text", "line", "msg"),
    [
        ("upstream u {\n server a weight=0;\n}", 2, "weight=0"),
        ("upstream u {\n server a weight=x;\n}", 2, "weight=x"),
        ("upstream u {\n server a bogus;\n}", 2, "bogus"),
        ("upstream u {\n}", 1, "no servers"),
        ("upstream u {\n server a\n}", 2, "expected ';'"),
        ("http {\n upstream u { server a; }", 1, "expected '}'"),
        ("upstream u { server a; }\nupstream u { server b; }", 2, "duplicate"),
        ("http { }", 1, "at least one"),
        ('upstream u { server "a; }', 1, "unterminated"),
        ("upstream u { foo 1; server a; }", 1, "unknown directive"),
    ],
)
def test_parse_errors(text: str, line: int, msg: str) -> None:
    with pytest.raises(ConfigParseError, match=msg) as info:
        parse_upstreams(text, source="bad.conf")
    assert info.value.line == line
    assert str(info.value).startswith(f"bad.conf:{line}: ")
