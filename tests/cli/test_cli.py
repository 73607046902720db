from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from meshstat.cli import ExitStatus, main


def csv(text: str) -> pl.DataFrame:
    return pl.read_csv(io.StringIO(text), schema_overrides={"seed": pl.String})


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    rc = main(list(argv), stdout=out, stderr=err)
    return rc, out.getvalue(), err.getvalue()


def test_simulate_table() -> None:
    rc, out, err = run("simulate", "--weights", "90,10", "-n", "1e6", "--seed", "1")
    assert rc == 0, err
    assert "9/10" in out and "1/10" in out
    assert "seed 1 | n 1,000,000 | mode per_request" in out
    assert "M requests/s" in out


@pytest.mark.parametrize("text", ["1e6", "1_000_000", "1000000", "1E6"])
def test_n_spellings(text: str) -> None:
    rc, out, _ = run("simulate", "--weights", "1,1", "-n", text, "--seed", "2", "--format", "json")
    assert rc == 0
    rows = json.loads(out)
    assert sum(r["count"] for r in rows) == 1_000_000


@pytest.mark.parametrize("bad", ["1.5", "0", "-3", "1e-3", "ten", "2.5e0", "1e30"])
def test_bad_n_is_one_line_exit_2(bad: str) -> None:
    rc, out, err = run("simulate", "--weights", "90,10", "-n", bad)
    assert rc == ExitStatus.INVALID_INPUT
    assert err.count("\n") == 1 and err.startswith("meshstat: error:")
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["simulate", "--weights", "99.5,0.5"], "scale all weights"),
        (["simulate", "--weights", "0,0"], "greater than 0"),
        (["simulate", "--weights", "4294967295,1"], "exceeds 4294967295"),
        (["simulate", "--weights", "90,x"], "numbers"),
        (["simulate"], "exactly one of"),
        (["simulate", "--weights", "9,1", "--cascade", "0.5"], "exactly one of"),
        (["simulate", "--cascade", "1.5"], "within [0, 1]"),
        (["simulate", "--weights", "9,1", "--names", "a,b,c"], "--names has 3"),
        (["simulate", "--weights", "9,1", "--format", "parquet"], "--output"),
        (["simulate", "--weights", "9,1", "--mode", "fast"], "invalid choice"),
        (["simulate", "--weights", "9,1", "--mode", "faithful", "--seed", "-1"], "seed"),
        (["nonsense"], "invalid choice"),
    ],
)
def test_bad_arguments(argv: list[str], needle: str) -> None:
    rc, _, err = run(*argv)
    assert rc == ExitStatus.INVALID_INPUT, err
    assert needle in err
    assert err.count("\n") == 1


def test_cascade_fall_through_and_names() -> None:
    rc, out, err = run(
        "simulate", "--cascade", "0.3333333333,0.5", "--fall-through", "-n", "1e5", "--seed", "3", "--format", "csv"
    )
    assert rc == 0, err
    df = csv(out)
    assert df["backend"].to_list() == ["b1", "b2", "(fall-through)"]
    assert df["expected_exact"][0] == "715827883/2147483648"
    rc, out, _ = run("simulate", "--kube-proxy-endpoints", "3", "--names", "p1,p2,p3", "-n", "1e5", "--format", "csv")
    assert csv(out)["backend"].to_list() == ["p1", "p2", "p3"]


def test_formats_and_output(tmp_path: Path) -> None:
    base = ["simulate", "--weights", "90,10", "-n", "1e5", "--seed", "4"]
    rc, out, _ = run(*base, "--format", "markdown")
    assert rc == 0 and out.startswith("|")
    rc, out, err = run(*base, "--format", "csv")
    assert "seed 4" in err and "seed" not in out.splitlines()[-1][:4]
    target = tmp_path / "r.parquet"
    rc, out, _ = run(*base, "--format", "parquet", "--output", str(target))
    assert rc == 0
    df = pl.read_parquet(target)
    assert df.columns[:4] == ["route", "backend", "expected", "expected_exact"]
    assert df["count"].sum() == 100_000


def test_compare_headline_table() -> None:
    rc, out, err = run("compare", "--kube-proxy-endpoints", "2", "--weights", "90,10", "-n", "1e6", "--seed", "5", "--format", "csv")
    assert rc == 0, err
    df = csv(out)
    assert df["route"].to_list() == ["kube-proxy", "kube-proxy", "envoy", "envoy"]
    assert df["expected"].to_list() == [0.5, 0.5, 0.9, 0.1]
    assert set(df["n"].to_list()) == {1_000_000}
    assert {"expected", "count", "observed", "deviation", "p_value"} <= set(df.columns)


def test_exact_mode_and_window(tmp_path: Path) -> None:
    rc, out, _ = run("simulate", "--weights", "90,10", "-n", "1e12", "--mode", "exact", "--seed", "1")
    assert rc == 0 and "mode exact" in out
    png = tmp_path / "w.png"
    rc, out, err = run("simulate", "--weights", "90,10", "-n", "1e6", "--window", "1000", "--seed", "1", "--plot", str(png))
    assert rc == 0, err
    assert "worst window" in out and "WORST DEVIATION" in out
    assert png.stat().st_size > 10_000


def test_plot_compare(tmp_path: Path) -> None:
    png = tmp_path / "c.png"
    rc, _, err = run("compare", "--kube-proxy-endpoints", "2", "--weights", "90,10", "-n", "1e5", "--plot", str(png))
    assert rc == 0, err
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_python_dash_m_and_console_script_exit_codes() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "meshstat", "simulate", "--weights", "90,10", "-n", "1e5", "--seed", "1"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    assert "9/10" in proc.stdout
    bad = subprocess.run([sys.executable, "-m", "meshstat", "simulate", "-n", "0.5"], capture_output=True, text=True)
    assert bad.returncode == 2
    assert bad.stderr.count("\n") == 1 and "Traceback" not in bad.stderr


def test_help_exits_zero() -> None:
    rc, out, _ = run("--help")
    assert rc == 0


def test_cascade_command_both_ways() -> None:
    rc, out, err = run("cascade", "--weights", "90,10", "--format", "csv")
    assert rc == 0, err
    df = csv(out)
    assert df["k"].to_list()[0] == 1932735283
    assert df["probability_saved"].to_list()[0] == 0.89999999991
    assert abs(df["error"]).max() <= 2**-32
    rc, out, _ = run("cascade", "--kube-proxy-endpoints", "6", "--legacy", "--format", "csv")
    df = csv(out)
    assert df["probability_written"].to_list()[:5] == [0.16667, 0.2, 0.25, 0.33333, 0.5]
    assert [f"{x:.11f}" for x in df["probability_saved"].to_list()[:5]] == [
        "0.16667000018", "0.20000000019", "0.25000000000", "0.33332999982", "0.50000000000"
    ]
    rc, out, _ = run("cascade", "--cascade", "0.3,0.5", "--fall-through", "--format", "csv")
    df = csv(out)
    assert df["rule"].to_list() == ["1", "2", "fall-through"]
    assert df["share_exact"].to_list()[0] == "322122547/1073741824"
