"""One binomial p-value: simulate's p_value column, check and the counters check print the same number."""

from __future__ import annotations

import io
import json

import polars as pl
import pytest
from scipy import stats as ss

from meshstat import Weighted, inference, simulate, stats
from meshstat.cli import main
from meshstat.report.simulation import to_frame

#: The README's run: 10,000,000 requests at 90/10 land 8,999,266 / 1,000,734.
SEED = 104141507367158060801221443226407135984


def _run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    rc = main(list(argv), stdout=out, stderr=err)
    return rc, out.getvalue(), err.getvalue()


def test_one_function_everywhere() -> None:
    """check, the counters check (through ``inference.binomial_pvalue``) and simulate's table share it."""
    assert inference.binomial_pvalue is stats.binomial_pvalue


def test_simulate_frame_p_value_is_checks_p_value() -> None:
    r = simulate(Weighted.from_weights([90, 10]), 10_000_000, rng=SEED)
    assert r.counts.tolist() == [8_999_266, 1_000_734]
    pv = to_frame(r)["p_value"].to_list()
    check = inference.check_split(r.counts.tolist(), [90, 10])
    assert check.method == "exact binomial"
    assert pv[0] == check.pvalue  # the same call: 8,999,266 of 10,000,000 at 0.9
    assert pv[1] == pytest.approx(check.pvalue, rel=1e-12)  # its mirror: 1,000,734 at 0.1
    assert pv[0] == pytest.approx(ss.binomtest(8_999_266, 10_000_000, 0.9).pvalue, rel=1e-9)


def test_simulate_and_check_print_the_same_p_value() -> None:
    rc, out, err = _run("simulate", "--weights", "90,10", "-n", "1e7", "--seed", str(SEED), "--format", "csv")
    assert rc == 0, err
    sim = pl.read_csv(io.StringIO(out), schema_overrides={"seed": pl.String})
    assert sim["count"].to_list() == [8_999_266, 1_000_734]
    rc, out, err = _run("check", "--weights", "90,10", "--observed", "8999266,1000734", "--format", "json")
    assert rc == 0, err
    doc = json.loads(out)
    assert doc["headline_test"] == "exact binomial"
    assert sim["p_value"][0] == doc["headline_p_value"]
    assert doc["tests"][0]["pvalue"] == doc["headline_p_value"]
