"""A real nginx against meshstat's smooth weighted round robin (SmoothWRR), request by request (exact)."""

from __future__ import annotations

import pytest

from meshstat.balancers.roundrobin import SmoothWRR
from meshstat.oracle.nginx import NginxOracle
from meshstat.parsers.nginx import UpstreamServer, parse_upstreams

pytestmark = [pytest.mark.conformance, pytest.mark.usefixtures("nginx_path")]


@pytest.mark.parametrize("weights", [(5, 1, 1), (9, 1), (1, 2, 3, 4), (3, 3, 1)], ids=str)
def test_smooth_wrr_sequence(weights: tuple[int, ...], record) -> None:  # noqa: ANN001
    n = 2_000
    with NginxOracle(list(weights)) as ngx:
        run = ngx.requests(n)
    model = SmoothWRR(len(weights), list(weights)).sequence(n).tolist()
    first_diff = next((i for i, (a, b) in enumerate(zip(run.sequence, model, strict=True)) if a != b), None)
    record(case=f"nginx smooth WRR {weights}", n=n, counts=run.counts(), first_mismatch=first_diff,
           first_picks="".join(str(i + 1) for i in run.sequence[:2 * sum(weights)]))
    assert run.errors == 0 and len(run.sequence) == n
    assert first_diff is None, f"request {first_diff}: nginx {run.sequence[first_diff:first_diff + 10]}"


def test_down_and_backup(record) -> None:  # noqa: ANN001
    """``down`` is never picked; ``backup`` only when every primary is down."""
    text = """
    http {
        upstream app {
            server 10.0.0.1:80 weight=3;
            server 10.0.0.2:80 weight=2 down;
            server 10.0.0.3:80;
            server 10.0.0.4:80 weight=4 backup;
        }
        upstream fallback {
            server 10.0.0.1:80 weight=5 down;
            server 10.0.0.2:80 down;
            server 10.0.0.3:80 weight=2 backup;
            server 10.0.0.4:80 backup;
        }
    }
    """
    ups = parse_upstreams(text, source="test.conf")
    for name, n in (("app", 400), ("fallback", 300)):
        up = ups[name]
        with NginxOracle.from_upstream(up) as ngx:
            run = ngx.requests(n)
        record(case=f"nginx {name} (down/backup)", n=n, counts=run.counts())
        assert run.errors == 0
        assert run.sequence == SmoothWRR.from_upstream(up).sequence(n).tolist()
        assert [c for c, s in zip(run.counts(), up.shares(), strict=True) if s == 0] == [0, 0]


def test_explicit_servers_roundtrip() -> None:
    servers = [UpstreamServer("", weight=2), UpstreamServer("", weight=1)]
    with NginxOracle(servers, names=["alpha", "beta"]) as ngx:
        run = ngx.requests(30)
    assert run.sequence_names()[:3] == ["alpha", "beta", "alpha"]
