"""``simulate --lb ...`` through a parser built as meshstat.cli builds ``simulate`` (plus our group)."""

from __future__ import annotations

import io
import json

import pytest

from meshstat.cli import parser as cli_parser
from meshstat.cli import simulate as cli_simulate
from meshstat.cli.args import add_route_arguments
from meshstat.cli.balancers import add_simulate_arguments, run_simulate_lb, wants_lb
from meshstat.cli.context import Context
from meshstat.cli.status import UsageError
from meshstat.errors import InvalidArgument


def _run(argv: list[str]) -> tuple[int, str, str]:
    p = cli_parser._Parser(parents=[cli_parser._common_parser()])
    add_route_arguments(p)
    cli_simulate._simulation_arguments(p)
    add_simulate_arguments(p)
    args = p.parse_args(argv)
    assert wants_lb(args)
    out, err = io.StringIO(), io.StringIO()
    ctx = Context(out, err)
    ctx._fmt = args.format  # type: ignore[attr-defined]
    return run_simulate_lb(args, ctx), out.getvalue(), err.getvalue()


def _json(text: str) -> list[dict]:
    return json.loads(text)


def test_round_robin_weighted_json() -> None:
    rc, out, err = _run(["--lb", "round-robin", "--endpoint-weights", "1,2,3,4", "-n", "20000", "--seed", "1",
                         "--format", "json"])
    assert rc == 0
    rows = _json(out)
    assert [r["count"] for r in rows] == [2000, 4000, 6000, 8000]
    assert [r["expected_exact"] for r in rows] == ["1/10", "1/5", "3/10", "2/5"]
    assert "seed 1" in err


def test_round_robin_workers_table_has_per_worker_view() -> None:
    rc, out, _ = _run(["--lb", "round-robin", "--endpoints", "3", "--workers", "2", "--clients", "4",
                       "--requests-per-connection", "geometric:5", "-n", "3000", "--seed", "2"])
    assert rc == 0 and "per worker" in out and "MAX/MEAN" in out and "WORKER SHARE" in out


@pytest.mark.parametrize(
    "argv",
    [
        ["--lb", "random", "--endpoint-weights", "1,2,3"],
        ["--lb", "least-request", "--endpoints", "4", "--service-time", "exp:0.01;exp:0.01;exp:0.01;exp:0.04",
         "--servers", "2", "--choice-count", "3"],
        ["--lb", "ring-hash", "--endpoints", "5", "--keys", "300", "--zipf", "1.2", "--remove-endpoint", "2"],
        ["--lb", "maglev", "--endpoint-addresses", "10.0.0.1:80,10.0.0.2:80", "--table-size", "251",
         "--add-endpoint", "10.0.0.3:80"],
        ["--lb", "swrr", "--endpoint-weights", "5,1,1", "--swrr-down", "1"],
        ["--lb", "numgen-inc", "--endpoints", "3", "--requests-per-connection", "all", "--clients", "5"],
        ["--lb", "ipvs-wrr", "--endpoint-weights", "4,3,2"],
        ["--kube-proxy-endpoints", "3", "--requests-per-connection", "50", "--replicates", "20"],
        ["--affinity", "client-ip", "--endpoints", "2", "--clients", "150"],
        ["--affinity", "hash-source-ip", "--endpoints", "3", "--clients", "20"],
    ],
)
def test_every_lb_runs(argv: list[str]) -> None:
    rc, out, err = _run([*argv, "-n", "5000", "--seed", "3", "--format", "csv"])
    assert rc == 0
    assert out.count("\n") >= 3
    assert "seed 3" in err


def test_least_request_reports_latency() -> None:
    rc, out, _ = _run(["--lb", "least-request", "--endpoints", "2", "--service-time", "const:0.001", "-n", "2000",
                       "--seed", "1", "--format", "json"])
    rows = _json(out)
    assert rc == 0 and "latency_p99_ms" in rows[0] and rows[0]["latency_p50_ms"] >= 1.0 - 1e-9


def test_user_errors() -> None:
    with pytest.raises(InvalidArgument):
        _run(["--lb", "round-robin", "-n", "10"])
    with pytest.raises(InvalidArgument):
        _run(["--lb", "round-robin", "--endpoints", "3", "--endpoint-weights", "1,2", "-n", "10"])
    with pytest.raises(InvalidArgument):
        _run(["--lb", "round-robin", "--endpoints", "3", "--remove-endpoint", "1", "-n", "10"])
    with pytest.raises(InvalidArgument):
        _run(["--lb", "maglev", "--endpoints", "3", "--table-size", "100", "-n", "10"])
    with pytest.raises(InvalidArgument):
        _run(["--requests-per-connection", "0", "--weights", "1,1", "-n", "10"])
    with pytest.raises(UsageError):
        _run(["--lb", "weighted-magic", "--endpoints", "3"])
