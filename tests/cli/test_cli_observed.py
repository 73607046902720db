"""``check --envoy-stats`` and ``check --prometheus`` through the command line (in-process)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from meshstat import cli
from meshstat.inference import check_split

DATA = Path(__file__).resolve().parents[1] / "data"
OBS = DATA / "observed"
ENVOY = DATA / "envoy"
COUNTS = json.loads((OBS / "envoy140-client-counts.json").read_text())


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    status = cli.main(list(argv), stdout=out, stderr=err)
    return status, out.getvalue(), err.getvalue()


def envoy_pair(form: str) -> list[str]:
    return [str(OBS / f"envoy140-reviews-{w}-{form}") for w in ("before", "after")]


def test_envoy_stats_table_prints_the_check_of_the_clients_counts() -> None:
    status, out, err = run("check", "--envoy-stats", *envoy_pair("stats.txt"), "--weights", "90,10")
    assert status == 0, err
    c = COUNTS["reviews"]["clusters"]
    v1, v2 = (c[f"outbound|9080|{v}|reviews.default.svc.cluster.local"] for v in ("v1", "v2"))
    p = check_split([v1, v2], [90, 10]).pvalue
    assert f"{v2} of {v1 + v2} at 10%" in out
    assert "exact binomial" in out
    assert "observed: Envoy /stats in" in out
    assert f"p = {p:.2f}" in out


@pytest.mark.parametrize("form", ["stats.json", "stats-prometheus.txt", "clusters.txt", "clusters.json"])
def test_every_envoy_form_gives_the_same_json_verdict(form: str) -> None:
    ref = json.loads(
        run("check", "--envoy-stats", *envoy_pair("stats.txt"), "--weights", "90,10", "--format", "json")[1]
    )
    status, out, err = run(
        "check", "--envoy-stats", *envoy_pair(form), "--weights", "90,10", "--format", "json"
    )
    assert status == 0, err
    doc = json.loads(out)
    assert doc["headline_p_value"] == ref["headline_p_value"]
    assert doc["backends"] == ref["backends"]
    assert doc["observed"]["files"] == envoy_pair(form)


def test_csv_carries_the_verdict() -> None:
    status, out, _ = run(
        "check", "--envoy-stats", *envoy_pair("stats.txt"), "--weights", "90,10", "--format", "csv"
    )
    assert status == 0
    assert out.splitlines()[0].endswith("verdict,headline_test,headline_p_value")


def test_prometheus_range_prints_per_window_verdicts() -> None:
    status, out, err = run(
        "check",
        "--prometheus",
        str(OBS / "istio-reviews-range.json"),
        "--service",
        "reviews",
        "--weights",
        "80,20",
        "--names",
        "v1,v2",
    )
    assert status == 0, err
    assert "95% BAND" in out and "VERDICT" in out
    assert "12 window(s) checked" in out
    assert "worst window 2024-06-01T12:09:00Z..12:10:00Z" in out
    doc = json.loads(
        run(
            "check",
            "--prometheus",
            str(OBS / "istio-reviews-range.json"),
            "--service",
            "reviews",
            "--weights",
            "80,20",
            "--names",
            "v1,v2",
            "--format",
            "json",
        )[1]
    )
    assert doc["worst_window"] == 10
    assert len(doc["windows"]) == 24
    assert {w["verdict"] for w in doc["windows"] if w["window"] == 10} == {"inconsistent"}
    assert doc["observed"]["reporter"] == "source"
    assert any("counter reset" in w for w in doc["warnings"])


def test_prometheus_with_the_route_of_the_manifests() -> None:
    status, out, err = run(
        "check",
        "--prometheus",
        str(OBS / "istio-demo-scrape.prom"),
        "-f",
        str(DATA / "istio-demo"),
        "--client",
        "istio-demo/front-tomcat-v1",
        "--service",
        "bill-service.istio-demo",
    )
    assert status == 0, err
    assert "split: sidecar (Envoy)" in out
    assert "consistent with 90/10" in out


def test_prometheus_with_an_envoy_dump_alone() -> None:
    dump = [
        str(ENVOY / f"istio-demo-istioctl-{x}.json") for x in ("listener", "route", "cluster", "endpoint")
    ]
    argv = [
        "check",
        "--prometheus",
        str(OBS / "istio-demo-scrape.prom"),
        "--client",
        "front-tomcat-v1",
        "--service",
        "bill-service.istio-demo.svc.cluster.local:9999",
    ]
    for d in dump:
        argv += ["--envoy", d]
    status, out, err = run(*argv)
    assert status == 0, err
    assert "versions read from the subsets" in out
    assert "consistent with 90/10" in out


def test_canary_ramp() -> None:
    status, out, err = run(
        "check",
        "--prometheus",
        str(OBS / "istio-reviews-ramp.json"),
        "--service",
        "reviews",
        "--canary",
        "v2",
        "--steps",
        "5,10,20,50",
        "--step-duration",
        "3m",
        "--wide",
    )
    assert status == 0, err
    assert "detectable_error_rate" in out
    assert "one window could detect 1% -> 5% errors at power 0.8 from step" in out


@pytest.mark.parametrize(
    ("argv", "phrase"),
    [
        (["--weights", "90,10", "-f", "x"], "give the split once"),
        (["--canary", "v2"], "--canary needs --steps"),
        (["--canary", "v2", "--steps", "5", "--weights", "1"], "does not go with --canary"),
        (["--weights", "90,10", "--by", "version"], "by version needs Istio's metrics"),
        (["--weights", "90,10", "--service", "ratings"], "no Istio cluster"),
    ],
)
def test_argument_errors(argv: list[str], phrase: str) -> None:
    status, _, err = run("check", "--envoy-stats", *envoy_pair("stats.txt"), *argv)
    assert status == 2
    assert err.startswith("meshstat: error: ")
    assert phrase in err
    assert err.count("\n") == 1
