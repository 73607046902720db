"""Big kube-proxy services on the command line: exact shares of thousands of endpoints, printed bounded.

A kube-proxy cascade of ``n`` endpoints has exact shares of ``31 n`` bits; from
486 endpoints their decimal text passed Python's 4,300-digit limit and every
command that printed them crashed. The dumps here are written in kube-proxy's
layout (:func:`meshstat.kubeproxy.kube_proxy_iptables_save`).
"""

from __future__ import annotations

import io
import json
from fractions import Fraction
from pathlib import Path

import polars as pl
import pytest

from meshstat.cli import main
from meshstat.kubeproxy import kube_proxy_iptables_save
from meshstat.model import (
    MAX_EXACT_RULES,
    MAX_SHARE_TEXT,
    kube_proxy_probabilities,
    probability_to_threshold,
)


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    rc = main(list(argv), stdout=out, stderr=err)
    return rc, out.getvalue(), err.getvalue()


def _dump(tmp_path: Path, n: int) -> str:
    eps = [f"10.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}:80" for i in range(n)]
    f = tmp_path / f"kp{n}.save"
    f.write_text(kube_proxy_iptables_save([("default/big:http", "tcp", "10.96.0.10", 80, eps)]))
    return str(f)


def _texts_ok(texts: list[str]) -> None:
    assert all(len(t) <= MAX_SHARE_TEXT + 1 for t in texts)
    assert any(t.startswith("~") for t in texts)  # the long ones are shortened and say so
    assert all("/" in t for t in texts if not t.startswith("~"))  # the short ones are exact fractions


def test_simulate_486_endpoints_exact_mode_prints_bounded_shares() -> None:
    rc, out, err = run("simulate", "--kube-proxy-endpoints", "486", "--mode", "exact", "-n", "1000",
                       "--format", "json", "--seed", "1")  # fmt: skip
    assert rc == 0, err
    rows = json.loads(out)
    assert len(rows) == 486 and sum(r["count"] for r in rows) == 1000
    _texts_ok([r["expected_exact"] for r in rows])
    k = probability_to_threshold(kube_proxy_probabilities(486)[0])
    first = Fraction(k, 2**31)  # rule 1 alone: exact, 31 bits
    assert rows[0]["expected_exact"] == f"{first.numerator}/{first.denominator}"


@pytest.mark.parametrize("command", ["services", "cascade", "simulate"])
def test_service_commands_on_a_486_endpoint_dump(tmp_path: Path, command: str) -> None:
    dump = _dump(tmp_path, 486)
    extra = ["-n", "1000", "--seed", "1"] if command == "simulate" else []
    rc, out, err = run(command, "--iptables", dump, "--service", "default/big:http", "--format", "csv",
                       *extra)  # fmt: skip
    assert rc == 0, err
    df = pl.read_csv(io.StringIO(out), infer_schema_length=0)
    col = {"services": "share", "cascade": "share_exact", "simulate": "expected_exact"}[command]
    assert df.height == 486
    _texts_ok(df[col].to_list())


def test_trace_of_a_486_endpoint_service(tmp_path: Path) -> None:
    rc, out, err = run("trace", "--iptables", _dump(tmp_path, 486), "--dst", "10.96.0.10:80",
                       "--src", "10.1.2.3", "--format", "csv")  # fmt: skip
    assert rc == 0, err
    df = pl.read_csv(io.StringIO(out), infer_schema_length=0)
    assert df.height == 486
    _texts_ok(df["probability"].to_list())
    assert "total probability 1" in err


def test_past_the_exact_limit_simulate_and_cascade_mark_the_same_shares() -> None:
    n = MAX_EXACT_RULES + 2  # one statistic rule past the limit: shares on the 2**-64 grid
    rc, out, err = run("simulate", "--kube-proxy-endpoints", str(n), "-n", "1000", "--format", "csv", "-q",
                       "--mode", "exact")  # fmt: skip
    assert rc == 0, err
    sim = pl.read_csv(io.StringIO(out), infer_schema_length=0)["expected_exact"].to_list()
    assert "2**-64 grid" in err
    rc, out, err = run("cascade", "--kube-proxy-endpoints", str(n), "--format", "csv")
    assert rc == 0, err
    cas = pl.read_csv(io.StringIO(out), infer_schema_length=0)["share_exact"].to_list()
    assert sim == cas and all(t.startswith("~") for t in sim)
    # the first rule's share is k/2**31, on the grid exactly, and still marked: it was not computed exactly
    first = Fraction(probability_to_threshold(kube_proxy_probabilities(n)[0]), 2**31)
    assert sim[0] == f"~{first.numerator}/{first.denominator}"


def test_at_the_exact_limit_shares_are_exact() -> None:
    rc, out, err = run("cascade", "--kube-proxy-endpoints", str(MAX_EXACT_RULES + 1), "--format", "csv")
    assert rc == 0, err
    cas = pl.read_csv(io.StringIO(out), infer_schema_length=0)["share_exact"].to_list()
    first = Fraction(probability_to_threshold(kube_proxy_probabilities(MAX_EXACT_RULES + 1)[0]), 2**31)
    assert cas[0] == f"{first.numerator}/{first.denominator}" and cas[-1].startswith("~0.0000999900006")
