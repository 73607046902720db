"""Observed traffic: selecting, differencing and mapping series, and the check of the period and windows.

Istio-shaped samples (``tests/data/observed/istio-*``) are written by this project with
Istio's metric and label names (``make_istio_samples.py`` there says which); the Envoy
files are real Envoy 1.40 answers. Expected counts are read from the files here with a
plain regular expression, independently of meshstat's parsers.
"""

from __future__ import annotations

import json
import re
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from meshstat import model, stats
from meshstat.errors import ConfigParseError, InvalidArgument
from meshstat.inference import canary, check_split
from meshstat.inference.observed_check import check_observed, check_ramp, configured_route
from meshstat.inference.observed_split import match_split, split_from_route, split_from_weights
from meshstat.inference.observed_traffic import read_traffic

DATA = Path(__file__).resolve().parents[1] / "data"
OBS = DATA / "observed"
V = "outbound|9080|{}|reviews.default.svc.cluster.local"
CLIENT_COUNTS = json.loads((OBS / "envoy140-client-counts.json").read_text())


def sum_of(path: Path, **labels: str) -> int:
    """Sum of the istio_requests_total samples of a text exposition with these label values (by regex)."""
    total = 0
    for line in path.read_text().splitlines():
        if not line.startswith("istio_requests_total{"):
            continue
        if all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += int(line.rsplit(" ", 1)[1])
    return total


# --------------------------------------------------------------------------- Envoy (real Envoy 1.40 files)


def test_envoy_before_after_is_the_clients_2000_requests() -> None:
    for form in ("stats.txt", "stats.json", "stats-prometheus.txt", "clusters.txt", "clusters.json"):
        tr = read_traffic(
            envoy_stats=[str(OBS / f"envoy140-reviews-{w}-{form}") for w in ("before", "after")]
        )
        routed = {k: v for k, v in tr.totals.items() if tr.routed[k]}
        assert routed == CLIENT_COUNTS["reviews"]["clusters"], form
        assert tr.windows == ()


def test_envoy_one_snapshot_counts_since_start() -> None:
    tr = read_traffic(envoy_stats=[str(OBS / "envoy140-reviews-after-stats.txt")])
    c = CLIENT_COUNTS["reviews"]
    assert sum(v for k, v in tr.totals.items() if tr.routed[k]) == c["requests"] + c["after_warmup"]
    assert any("one snapshot" in n for n in tr.notes)


def test_envoy_counter_reset_is_detected_and_said() -> None:
    """The files swapped: every counter falls, as after a restart; only the second file's counts remain."""
    tr = read_traffic(envoy_stats=[str(OBS / f"envoy140-reviews-{w}-stats.txt") for w in ("after", "before")])
    assert tr.totals[V.format("v1")] == int(
        re.search(
            r"v1\|reviews\.default\.svc\.cluster\.local\.upstream_rq_total: (\d+)",
            (OBS / "envoy140-reviews-before-stats.txt").read_text(),
        ).group(1)
    )  # type: ignore[union-attr]
    assert any("counter reset" in w for w in tr.warnings)


def test_envoy_uh_outcome_with_a_route_that_predicts_it() -> None:
    """Real Envoy: v3 has no endpoint (503 UH). The model route has the same empty cluster as a 503 leaf."""
    tr = read_traffic(envoy_stats=[str(OBS / "envoy140-uh-stats.txt")], service="reviews.default")
    assert tr.totals["503 UH"] == CLIENT_COUNTS["uh"]["other"]["503 no healthy upstream"]
    leaves = [
        model.Weighted(
            children=(model.Backend(name="u1"),), weights=(1,), name=f"ROUND_ROBIN {V.format('v1')}"
        ),
        model.Weighted(
            children=(model.Backend(name="u2"),), weights=(1,), name=f"ROUND_ROBIN {V.format('v2')}"
        ),
        model.Backend(name=f"503 no_healthy_upstream ({V.format('v3')})", labels=(("outcome", "503"),)),
    ]
    route = model.Route(root=model.Weighted(children=tuple(leaves), weights=(80, 10, 10)), name="route")
    split = split_from_route(route, "cluster", tr)
    assert split.names == (V.format("v1"), V.format("v2"), "503 UH")
    assert split.weights == (80, 10, 10)
    oc = check_observed(tr, split)
    counts = CLIENT_COUNTS["uh"]
    expected = [
        counts["clusters"][V.format("v1")],
        counts["clusters"][V.format("v2")],
        counts["other"]["503 no healthy upstream"],
    ]
    assert oc.result is not None
    assert list(oc.result.observed) == expected
    assert oc.result.pvalue == check_split(expected, [80, 10, 10]).pvalue
    # --weights without the outcome: it becomes an outcome of weight 0 (impossible), or is left out on request
    w = check_observed(tr, split_from_weights((80, 10, 10), ["v1", "v2", "v3"], tr))
    assert w.result is not None
    assert w.result.method == "impossible"
    assert w.matched.names[-1] == "503 UH"
    ex = check_observed(tr, split_from_weights((80, 10, 10), ["v1", "v2", "v3"], tr), exclude_unrouted=True)
    assert ex.result is not None
    assert "503 UH" not in ex.matched.names
    assert any("left out" in x for x in ex.warnings)


def test_envoy_plain_names_need_names_and_istio_names_need_a_service() -> None:
    with pytest.raises(InvalidArgument, match="no cluster named nope"):
        read_traffic(envoy_stats=[str(OBS / "envoy140-reviews-after-stats.txt")], names=["nope"])
    with pytest.raises(InvalidArgument, match="--client picks Istio's source_workload"):
        read_traffic(envoy_stats=[str(OBS / "envoy140-reviews-after-stats.txt")], client="x")
    with pytest.raises(InvalidArgument, match="no Istio cluster"):
        read_traffic(envoy_stats=[str(OBS / "envoy140-reviews-after-stats.txt")], service="ratings")
    plain = "cluster.a.upstream_rq_total: 5\ncluster.b.upstream_rq_total: 6\n"
    with pytest.raises(InvalidArgument, match="plain cluster names"):
        _traffic_of_text(plain, "plain.txt", envoy=True)


def _traffic_of_text(text: str, name: str, *, envoy: bool = False, tmp: Path | None = None, **kw: object):
    import tempfile

    folder = Path(tmp or tempfile.mkdtemp())
    p = folder / name
    p.write_text(text, encoding="utf-8")
    if envoy:
        return read_traffic(envoy_stats=[str(p)], **kw)  # type: ignore[arg-type]
    return read_traffic(prometheus=[str(p)], **kw)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- Istio samples


def test_istio_scrape_uses_one_reporter_and_picks_the_client() -> None:
    f = OBS / "istio-demo-scrape.prom"
    tr = read_traffic(prometheus=[str(f)], client="istio-demo/front-tomcat-v1")
    assert tr.reporter == "source"
    assert any("counted once by each" in w for w in tr.warnings)
    for v in ("v1", "v2"):
        assert tr.totals[v] == sum_of(
            f, reporter="source", source_workload="front-tomcat-v1", destination_version=v
        )
    dest = read_traffic(prometheus=[str(f)], client="front-tomcat-v1", reporter="destination")
    assert dest.totals == tr.totals  # the same requests, seen by the other side
    everyone = read_traffic(prometheus=[str(f)])
    assert everyone.totals["v1"] == sum_of(f, reporter="source", destination_version="v1")
    assert any("2 callers summed" in n for n in everyone.notes)
    with pytest.raises(InvalidArgument, match="callers there"):
        read_traffic(prometheus=[str(f)], client="nobody")


def test_istio_route_from_manifests() -> None:
    f = OBS / "istio-demo-scrape.prom"
    tr = read_traffic(
        prometheus=[str(f)], client="istio-demo/front-tomcat-v1", service="bill-service.istio-demo"
    )
    route = configured_route(
        [str(DATA / "istio-demo")], client="istio-demo/front-tomcat-v1", service="bill-service.istio-demo"
    )
    split = split_from_route(route, tr.by, tr)
    assert split.names == ("v1", "v2")
    assert split.weights == (90, 10)
    oc = check_observed(tr, split)
    assert oc.result is not None
    assert oc.result.observed == (tr.totals["v1"], tr.totals["v2"])
    assert oc.result.pvalue == check_split([tr.totals["v1"], tr.totals["v2"]], [90, 10]).pvalue


def test_istio_before_after_vectors() -> None:
    b, a = OBS / "istio-demo-query-before.json", OBS / "istio-demo-query-after.json"
    tr = read_traffic(prometheus=[str(b), str(a)])
    vals = {}
    for f in (b, a):
        doc = json.loads(f.read_text())
        vals[f.name] = {r["metric"]["destination_version"]: int(r["value"][1]) for r in doc["data"]["result"]}
    for v in ("v1", "v2"):
        assert tr.totals[v] == vals[a.name][v] - vals[b.name][v]
    with pytest.raises(InvalidArgument, match="must be the earlier snapshot"):
        read_traffic(prometheus=[str(a), str(b)])


def test_istio_range_windows_reset_and_late_series() -> None:
    f = OBS / "istio-reviews-range.json"
    tr = read_traffic(prometheus=[str(f)], service="reviews")
    assert len(tr.windows) == 12
    for k in ("v1", "v2"):
        assert tr.totals[k] == sum(w.counts.get(k, 0) for w in tr.windows)
    assert any("counter reset" in w for w in tr.warnings)
    assert any("new counters, counted from 0" in n for n in tr.notes)
    # recompute window 4's v2 count from the JSON (the 500 series starts there and counts from 0)
    doc = json.loads(f.read_text())
    src = [
        r
        for r in doc["data"]["result"]
        if r["metric"]["reporter"] == "source" and r["metric"]["destination_version"] == "v2"
    ]
    expected = 0
    for r in src:
        pts = {int(t): int(v) for t, v in r["values"]}
        t3, t4 = 1717243200 + 180, 1717243200 + 240
        expected += pts[t4] - pts.get(t3, 0)
    assert tr.windows[3].counts["v2"] == expected
    oc = check_observed(tr, split_from_weights((80, 20), ["v1", "v2"], tr))
    assert oc.worst == 9
    for w in oc.windows:
        assert w.pvalue == check_split(list(w.observed), [80, 20]).pvalue
    counts = np.array([w.observed for w in oc.windows])
    band = stats.window_band(counts, counts.sum(axis=1), [Fraction(4, 5), Fraction(1, 5)])
    assert oc.band is not None
    np.testing.assert_array_equal(oc.band.max_deviation_pvalue, band.max_deviation_pvalue)
    p = oc.windows[9].pvalue
    assert oc.worst_any == pytest.approx(1 - (1 - p) ** 12, rel=1e-9)  # type: ignore[operator]
    assert "worst window 2024-06-01T12:09:00Z..12:10:00Z" in oc.summary()


def test_ramp_detection_matches_the_canary_planner() -> None:
    """Windows whose counts are canary()'s expected requests detect what canary() says."""
    steps, per = (5, 20, 50), 1000
    vals1, vals2, t = [0], [0], [0]
    for s in steps:
        vals1.append(vals1[-1] + per * (100 - s) // 100)
        vals2.append(vals2[-1] + per * s // 100)
        t.append(t[-1] + 60)
    res = []
    for v, vals in (("v1", vals1), ("v2", vals2)):
        res.append(
            {
                "metric": {
                    "__name__": "istio_requests_total",
                    "reporter": "source",
                    "destination_version": v,
                    "destination_workload": f"reviews-{v}",
                    "destination_service": "r.d.svc.cluster.local",
                },
                "values": [[1717243200 + x, str(y)] for x, y in zip(t, vals, strict=True)],
            }
        )
    doc = json.dumps({"status": "success", "data": {"resultType": "matrix", "result": res}})
    tr = _traffic_of_text(doc, "ramp.json")
    oc = check_ramp(tr, "v2", steps, error_rate=0.01, detect_error_rate=0.05, power=0.8)
    plan = canary(list(steps), qps=per / 60, interval=60, error_rate=0.01, detect_error_rate=0.05)
    for w, st in zip(oc.windows, plan.steps, strict=True):
        assert w.detectable_error_rate == pytest.approx(st.detectable_error_rate, rel=1e-9)
        assert w.result is not None
        assert w.result.pvalue == 1.0
    first = next(i for i, st in enumerate(plan.steps) if st.detectable_error_rate <= 0.05)
    assert oc.ramp is not None
    assert oc.ramp.first_window == first
    assert oc.ramp.first_step == steps[first]


def test_ramp_from_the_sample_and_its_errors() -> None:
    tr = read_traffic(prometheus=[str(OBS / "istio-reviews-ramp.json")], service="reviews")
    oc = check_ramp(tr, "v2", [5, 10, 20, 50], step_duration="3m")
    assert [w.step for w in oc.windows] == [5.0] * 3 + [10.0] * 3 + [20.0] * 3 + [50.0] * 3
    assert oc.ramp is not None
    assert oc.ramp.first_window is not None
    assert all(w.power < 0.8 for w in oc.windows[: oc.ramp.first_window])  # type: ignore[operator]
    with pytest.raises(InvalidArgument, match="12 windows for 4 steps"):
        check_ramp(tr, "v2", [5, 10, 20, 50])
    with pytest.raises(InvalidArgument, match="no 'v9' in the data"):
        check_ramp(tr, "v9", [5], step_duration="1h")
    snap = read_traffic(prometheus=[str(OBS / "istio-demo-scrape.prom")], client="front-tomcat-v1")
    with pytest.raises(InvalidArgument, match="needs a range query"):
        check_ramp(snap, "v2", [5])


def test_unrouted_istio_series_are_their_own_outcomes() -> None:
    base = (
        'reporter="source",source_workload="a",source_workload_namespace="ns",'
        'destination_service="s.ns.svc.cluster.local",destination_service_name="s",'
        'destination_service_namespace="ns"'
    )
    text = (
        "\n".join(
            [
                f'istio_requests_total{{{base},destination_workload="s-v1",destination_version="v1",response_code="200",'
                'response_flags="-"} 900',
                f'istio_requests_total{{{base},destination_workload="s-v2",destination_version="v2",response_code="200",'
                'response_flags="-"} 90',
                f'istio_requests_total{{{base},destination_workload="unknown",destination_version="unknown",'
                'response_code="503",response_flags="UH"} 6',
                f'istio_requests_total{{{base},destination_workload="unknown",destination_version="unknown",'
                'response_code="503",response_flags="NC"} 3',
                f'istio_requests_total{{{base},destination_workload="unknown",destination_version="unknown",'
                'response_code="500",response_flags="-"} 4',
                f'istio_requests_total{{{base},destination_workload="s-v1",destination_version="v1",response_code="503",'
                'response_flags="URX,UF"} 1',
            ]
        )
        + "\n"
    )
    tr = _traffic_of_text(text, "u.prom")
    assert dict(tr.totals) == {"v1": 901, "v2": 90, "503 UH": 6, "503 NC": 3, "500 no backend": 4}
    assert tr.routed == {"v1": True, "v2": True, "503 UH": False, "503 NC": False, "500 no backend": False}
    m = match_split(tr, split_from_weights((90, 10, 0), ["v1", "v2", "500 no backend"], tr))
    assert m.names == ("v1", "v2", "500 no backend", "503 UH", "503 NC")
    assert m.weights == (90, 10, 0, 0, 0)
    assert m.counts == (901, 90, 4, 6, 3)


def test_extrapolated_values_are_refused_with_the_line() -> None:
    doc = json.dumps(
        {
            "status": "success",
            "data": {
                "resultType": "vector",
                "result": [{"metric": {"destination_version": "v1"}, "value": [1, "12.5"]}],
            },
        },
        indent=1,
    )
    with pytest.raises(
        ConfigParseError, match=r"inc\.json:7: expected request counts .*rate\(\) and increase\(\)"
    ):
        _traffic_of_text(doc, "inc.json")


def test_several_services_need_a_choice() -> None:
    text = (
        'istio_requests_total{reporter="source",destination_service="a.ns.svc.cluster.local",'
        'destination_workload="a-v1",destination_version="v1"} 1\n'
        'istio_requests_total{reporter="source",destination_service="b.ns.svc.cluster.local",'
        'destination_workload="b-v1",destination_version="v1"} 1\n'
    )
    with pytest.raises(InvalidArgument, match="series of 2 services"):
        _traffic_of_text(text, "two.prom")
    tr = _traffic_of_text(text, "two.prom", service="ns/b")
    assert dict(tr.totals) == {"v1": 1}


def test_names_choose_version_or_workload_and_order() -> None:
    f = OBS / "istio-demo-scrape.prom"
    tr = read_traffic(
        prometheus=[str(f)], client="front-tomcat-v1", names=["bill-service-v2", "bill-service-v1"]
    )
    assert tr.by == "workload"
    split = split_from_weights((10, 90), ["bill-service-v2", "bill-service-v1"], tr)
    oc = check_observed(tr, split)
    assert oc.result is not None
    assert oc.result.observed == (tr.totals["bill-service-v2"], tr.totals["bill-service-v1"])
    auto = split_from_weights((90, 10), None, read_traffic(prometheus=[str(f)], client="front-tomcat-v1"))
    assert auto.names == ("v1", "v2")
    assert any("natural order" in n for n in auto.notes)
    with pytest.raises(InvalidArgument, match="the data has 2 backend"):
        split_from_weights((1, 1, 1), None, read_traffic(prometheus=[str(f)], client="front-tomcat-v1"))


def test_envoy_counters_through_prometheus_are_summed_over_proxies() -> None:
    """``envoy_cluster_upstream_rq_total`` from a Prometheus query: one series per proxy (pod), summed."""
    rows = []
    for pod, (a, b) in (("productpage-v1-a", (700, 80)), ("productpage-v1-b", (200, 20))):
        for sub, v in (("v1", a), ("v2", b)):
            rows.append(
                {
                    "metric": {
                        "__name__": "envoy_cluster_upstream_rq_total",
                        "pod": pod,
                        "cluster_name": V.format(sub),
                    },
                    "value": [1717243200, str(v)],
                }
            )
        rows.append(
            {
                "metric": {
                    "__name__": "envoy_http_no_cluster",
                    "pod": pod,
                    "http_conn_manager_prefix": "outbound_0.0.0.0_9080",
                },
                "value": [1717243200, "2"],
            }
        )
    doc = json.dumps({"status": "success", "data": {"resultType": "vector", "result": rows}})
    tr = _traffic_of_text(doc, "envoy.json", service="reviews")
    assert tr.form == "envoy_cluster_upstream_rq_total (Prometheus)"
    assert tr.totals[V.format("v1")] == 900
    assert tr.totals[V.format("v2")] == 100
    assert tr.totals["503 NC"] == 4
    assert tr.scope["503 NC"] == "listener"
    assert any("2 proxies" in n for n in tr.notes)
    oc = check_observed(tr, split_from_weights((90, 10), ["v1", "v2"], tr))
    assert oc.result is not None
    assert oc.result.observed == (900, 100)
    assert any("503 NC" in n and "not attributable" in n for n in oc.notes)
    # a split that has the outcome takes the listener's count
    with_nc = check_observed(tr, split_from_weights((90, 10, 0), ["v1", "v2", "503 NC"], tr))
    assert with_nc.result is not None
    assert with_nc.result.observed == (900, 100, 4)


def test_ambiguous_service_names_are_refused() -> None:
    text = (
        'istio_requests_total{reporter="source",destination_service="r.a.svc.cluster.local",'
        'destination_workload="r-v1",destination_version="v1"} 1\n'
        'istio_requests_total{reporter="source",destination_service="r.b.svc.cluster.local",'
        'destination_workload="r-v1",destination_version="v1"} 1\n'
        'istio_requests_total{reporter="source",destination_service="r:9080",'
        'destination_workload="unknown",destination_version="unknown",response_flags="NC"} 3\n'
    )
    with pytest.raises(InvalidArgument, match=r"is ambiguous: r\.a\.svc\.cluster\.local, r\.b\.svc"):
        _traffic_of_text(text, "amb.prom", service="r")
    tr = _traffic_of_text(text, "amb.prom", service="r.a")
    assert dict(tr.totals) == {"v1": 1}
