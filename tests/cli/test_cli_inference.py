"""CLI: check, plan, bands, canary, run in-process through meshstat.cli.main."""

from __future__ import annotations

import io
import json

import pytest

from meshstat.cli import main


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    rc = main(list(argv), stdout=out, stderr=err)
    return rc, out.getvalue(), err.getvalue()


def test_check_not_noise_exits_zero() -> None:
    rc, out, err = run("check", "--weights", "90,10", "--observed", "5,5", "--alternative", "50,50")
    assert rc == 0, err
    assert "not noise: 5 of 10 at 10% has p = 0.0016 (exact binomial)" in out
    assert "favour 50/50 over 90/10 by 165:1" in out
    assert "likelihood ratio 50/50 vs 90/10" in out  # the tests table
    assert err == ""


def test_check_machine_format_keeps_stdout_clean() -> None:
    rc, out, err = run("check", "--weights", "90,10", "--observed", "9,1", "--format", "json")
    assert rc == 0
    rows = json.loads(out)["backends"]
    assert [r["backend"] for r in rows] == ["b1", "b2"]
    assert err.startswith("consistent with 90/10")


def test_check_json_carries_the_verdict_and_the_tests(tmp_path) -> None:  # noqa: ANN001
    argv = ("check", "--weights", "90,10", "--observed", "5,5", "--alternative", "50,50", "--format", "json")
    rc, out, err = run(*argv)
    assert rc == 0
    doc = json.loads(out)
    assert doc["verdict"] == "inconsistent" and doc["consistent"] is False and doc["alpha"] == 0.05
    assert doc["headline_test"] == "exact binomial"
    assert doc["headline_p_value"] == pytest.approx(0.0016349374, rel=1e-9)
    assert doc["summary"].startswith("not noise: 5 of 10 at 10% has p = 0.0016")
    assert err.startswith("not noise")
    tests = {t["test"]: t for t in doc["tests"]}
    assert tests["exact binomial"]["pvalue"] == doc["headline_p_value"]
    assert {"chi-square", "G-test", "likelihood ratio 50/50 vs 90/10"} <= set(tests)
    assert tests["likelihood ratio 50/50 vs 90/10"]["log10_lr"] == pytest.approx(2.2184875, rel=1e-6)
    assert [r["observed"] for r in doc["backends"]] == [5, 5]
    # the same object in a file
    target = tmp_path / "check.json"
    rc, out, _ = run(*argv, "--output", str(target))
    assert rc == 0 and out == "" and json.loads(target.read_text()) == doc
    # impossible: a backend with weight 0 got traffic
    rc, out, _ = run("check", "--weights", "90,10,0", "--observed", "5,5,1", "--format", "json")
    assert rc == 0
    doc = json.loads(out)
    assert doc["verdict"] == "impossible" and doc["headline_p_value"] == 0.0
    rc, out, _ = run("check", "--weights", "90,10", "--observed", "9,1", "--format", "json")
    assert json.loads(out)["verdict"] == "consistent"


def test_check_csv_and_parquet_repeat_the_verdict_per_row(tmp_path) -> None:  # noqa: ANN001
    import polars as pl

    rc, out, _ = run("check", "--weights", "90,10", "--observed", "5,5", "--format", "csv")
    assert rc == 0
    df = pl.read_csv(io.StringIO(out))
    assert df["backend"].to_list() == ["b1", "b2"]
    assert df["verdict"].to_list() == ["inconsistent"] * 2
    assert df["headline_test"].to_list() == ["exact binomial"] * 2
    assert df["headline_p_value"].to_list() == [pytest.approx(0.0016349374, rel=1e-9)] * 2
    target = tmp_path / "check.parquet"
    rc, _, _ = run("check", "--weights", "90,10", "--observed", "5,5", "--format", "parquet", "--output",
                   str(target))
    assert rc == 0
    assert pl.read_parquet(target).select("verdict", "headline_test", "headline_p_value").equals(
        df.select("verdict", "headline_test", "headline_p_value")
    )


def test_check_table_output_has_no_verdict_columns() -> None:
    rc, out, _ = run("check", "--weights", "90,10", "--observed", "5,5")
    assert rc == 0 and "95% INTERVAL" in out and "headline_p_value" not in out and "verdict" not in out


def test_counters_check_machine_formats_carry_the_verdict(tmp_path) -> None:  # noqa: ANN001
    from pathlib import Path

    import polars as pl

    listing = str(Path(__file__).resolve().parents[1] / "data/iptables/listings/kube-proxy-3ep-counters.nat.vnxL")
    rc, out, err = run("check", "--iptables", listing, "--service", "default/web:http", "--format", "json")
    assert rc == 0, err
    doc = json.loads(out)
    assert doc["verdict"] == "consistent" and doc["headline_test"] == "exact multinomial"
    assert doc["headline_p_value"] == pytest.approx(0.264, abs=5e-4)
    assert [r["observed"] for r in doc["backends"]] == [999, 964, 1037] and "warnings" in doc
    rc, out, _ = run("check", "--iptables", listing, "--service", "default/web:http", "--format", "csv")
    df = pl.read_csv(io.StringIO(out))
    assert df["verdict"].to_list() == ["consistent"] * 3
    assert df["headline_p_value"][0] == doc["headline_p_value"]


def test_check_observed_file_with_names(tmp_path) -> None:  # noqa: ANN001
    f = tmp_path / "obs.csv"
    f.write_text("backend,count\ncanary,5\nstable,95\n")
    rc, out, err = run("check", "--weights", "90,10", "--names", "stable,canary", "--observed-file", str(f))
    assert rc == 0, err
    assert "stable" in out and "consistent with 90/10" in out
    rc, _, err = run("check", "--weights", "90,10", "--names", "a,b", "--observed-file", str(f))
    assert rc == 2 and "do not match --names" in err


def test_check_bad_file_is_one_line_with_file_and_line(tmp_path) -> None:  # noqa: ANN001
    f = tmp_path / "obs.csv"
    f.write_text("v1,95\nv2,lots\n")
    rc, out, err = run("check", "--weights", "90,10", "--observed-file", str(f))
    assert rc == 3
    assert err.startswith(f"meshstat: error: {f}:2: expected a non-negative integer count")
    assert err.count("\n") == 1 and out == ""


@pytest.mark.parametrize(
    ("argv", "msg"),
    [
        (("check", "--weights", "90,10", "--observed", "5,5,1"), "observed has 3 entries but weights has 2"),
        (("check", "--weights", "99.5,0.5", "--observed", "5,5"), "fractional"),
        (("plan", "--weights", "90,10", "--tolerance", "0.01", "--power", "0.9"), "--power goes with --detect"),
        (("plan", "--weights", "90,10"), "one of the arguments"),
        (("bands", "--weights", "90,10", "--seconds", "60"), "--seconds needs --qps"),
        (("canary", "--steps", "1,5", "--qps", "20", "--interval", "soon"), "duration"),
    ],
)
def test_bad_input_exits_2_with_one_line(argv: tuple[str, ...], msg: str) -> None:
    rc, out, err = run(*argv)
    assert rc == 2
    assert msg in err and err.count("\n") == 1


def test_plan_three_questions() -> None:
    rc, out, _ = run("plan", "--weights", "90,10", "--tolerance", "0.01", "--confidence", "0.95", "--qps", "20")
    assert rc == 0 and "normal approximation" in out and "3,458" in out and "at 20 req/s" in out
    rc, out, _ = run("plan", "--weights", "90,10", "--min-hits", "1", "--probability", "0.99")
    assert rc == 0 and out.splitlines()[-1].startswith("44 requests")
    rc, out, _ = run("plan", "--weights", "90,10", "--detect", "85,15", "--power", "0.8", "--alpha", "0.05")
    assert rc == 0 and "exact binomial test (equal-tailed)" in out
    rc, out, _ = run("plan", "--weights", "50,30,20", "--detect", "45,30,25")
    assert rc == 0 and "noncentral" in out


def test_plan_csv() -> None:
    rc, out, err = run("plan", "--weights", "95,5", "--min-hits", "1", "--format", "csv")
    assert rc == 0
    assert out.splitlines()[0].startswith("question,method,n,")
    assert err.startswith("90 requests")


def test_bands_with_plot_and_seed(tmp_path) -> None:  # noqa: ANN001
    png = tmp_path / "b.png"
    rc, out, err = run(
        "bands", "--weights", "90,10", "-n", "200", "--within", "0.05", "--seed", "7", "--sim-windows", "2000",
        "--plot", str(png),
    )
    assert rc == 0, err
    assert "b2 gets 12-29 (6%-14.5%) in 95% of samples" in out
    assert "(seed 7) agrees with exact" in out
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_bands_seconds_at_qps_markdown() -> None:
    rc, out, _ = run("bands", "--weights", "90,10", "--seconds", "1m", "--qps", "20", "--no-simulate",
                     "--format", "markdown")
    assert rc == 0 and "| backend" in out and "1,200 requests (1m at 20 req/s)" in out


def test_canary() -> None:
    rc, out, err = run(
        "canary", "--steps", "1,5,10,25,50,100", "--qps", "20", "--interval", "60s", "--error-rate", "0.001",
        "--detect-error-rate", "0.01",
    )
    assert rc == 0, err
    assert "the 1% step gets 12 canary requests per interval" in out
    assert "note: at 100% there is no baseline" in out
