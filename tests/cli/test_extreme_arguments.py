"""Arguments at the edges: each ends with an answer or a one-line refusal (exit 2), never a crash or a hang.

The cases that once ran for minutes, ran out of memory or aborted: geometric
connection sizes of mean ``5e17`` and ``1e25``, ``--keys 1e8``,
``--affinity hash-source-ip --clients 1e8``, ``--threads 1000``,
``--choice-count 1e6``, ``plan --tolerance 1e-4`` and ``1e-6``. Timing goals
are in ``benchmarks/``; these tests assert the answers.
"""

from __future__ import annotations

import io

import polars as pl
import pytest

from meshstat.cli import main


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    rc = main(list(argv), stdout=out, stderr=err)
    return rc, out.getvalue(), err.getvalue()


def refused(rc: int, out: str, err: str, needle: str) -> None:
    assert rc == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("meshstat: error:") and needle in err


@pytest.mark.parametrize("mean", ["5e17", "1e25"])
def test_huge_geometric_connection_means_put_every_request_on_one_connection(mean: str) -> None:
    rc, out, err = run("simulate", "--kube-proxy-endpoints", "2", "--requests-per-connection",
                       f"geometric:{mean}", "-n", "10000", "--replicates", "20", "--seed", "1",
                       "--format", "csv", "-q")  # fmt: skip
    assert rc == 0, err
    df = pl.read_csv(io.StringIO(out), schema_overrides={"seed": pl.String})
    assert df["connections"].to_list() == [1, 1]
    assert df["mean_share"].min() >= 0 and df["mean_share"].max() <= 1
    assert set(df["share_p2.5"].to_list()) | set(df["share_p97.5"].to_list()) <= {0.0, 1.0}


def test_geometric_mean_must_be_finite() -> None:
    refused(*run("simulate", "--kube-proxy-endpoints", "2", "--requests-per-connection", "geometric:inf"),
            "finite")  # fmt: skip


def test_keys_beyond_the_bound_are_refused_and_below_it_answered() -> None:
    refused(*run("simulate", "--lb", "ring-hash", "--endpoints", "3", "--keys", "1e8", "-n", "1000"),
            "keys must be at most 16,777,216")  # fmt: skip
    rc, out, err = run("simulate", "--lb", "ring-hash", "--endpoints", "3", "--keys", "2e5", "-n", "1e4",
                       "--format", "csv", "-q")  # fmt: skip
    assert rc == 0, err
    df = pl.read_csv(io.StringIO(out), schema_overrides={"seed": pl.String})
    assert df["count"].sum() == 10_000 and df["expected_kind"].to_list() == ["keys"] * 3


def test_source_ip_affinity_clients_are_bounded_by_the_addresses() -> None:
    refused(*run("simulate", "--kube-proxy-endpoints", "3", "--affinity", "hash-source-ip",
                 "--clients", "1e8",
                 "-n", "1000"), "clients must be at most 16,320,000")  # fmt: skip
    rc, _, err = run("simulate", "--kube-proxy-endpoints", "3", "--affinity", "hash-source-ip",
                     "--clients", "1e6", "-n", "1e4", "-q")  # fmt: skip
    assert rc == 0, err


def test_more_clients_than_requests_cost_what_the_requests_cost() -> None:
    rc, out, err = run("simulate", "--kube-proxy-endpoints", "3", "--clients", "1e8",
                       "--requests-per-connection",
                       "10", "-n", "1e4", "--replicates", "10", "--format", "csv", "-q")  # fmt: skip
    assert rc == 0, err
    assert (
        pl.read_csv(io.StringIO(out), schema_overrides={"seed": pl.String})["connections"].to_list()
        == [10_000] * 3
    )  # one request per client


def test_threads_beyond_the_pool_are_refused() -> None:
    refused(
        *run("simulate", "--weights", "1,1", "-n", "1000", "--threads", "1000"), "--threads must be between 1"
    )
    rc, _, err = run("simulate", "--weights", "1,1", "-n", "1000", "--threads", "1", "-q")
    assert rc == 0, err


def test_a_million_least_request_choices() -> None:
    rc, out, err = run("simulate", "--lb", "least-request", "--endpoints", "3", "--choice-count", "1e6",
                       "-n", "1e4", "--format", "csv", "-q")  # fmt: skip
    assert rc == 0, err
    assert pl.read_csv(io.StringIO(out), schema_overrides={"seed": pl.String})["count"].sum() == 10_000


def test_plan_small_tolerances() -> None:
    rc, out, err = run("plan", "--weights", "1,1", "--tolerance", "1e-4", "--format", "csv")
    assert rc == 0, err
    assert "exact binomial (first n)" in out
    refused(*run("plan", "--weights", "1,1", "--tolerance", "1e-6"), "normal approximation")
