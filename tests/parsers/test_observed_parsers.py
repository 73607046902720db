"""The parsers of observed traffic: Prometheus text and query JSON, Envoy admin outputs.

The Envoy files of ``tests/data/observed`` are real Envoy 1.40 answers (``capture_envoy.py``
there says how they were taken); every form of one snapshot must give the same counts.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from meshstat.errors import ConfigParseError
from meshstat.parsers.observed import (
    istio_cluster,
    load_envoy_stats,
    parse_envoy_stats,
    parse_exposition,
    parse_prometheus,
    parse_query_json,
    prometheus_cluster_key,
)

DATA = Path(__file__).resolve().parents[1] / "data" / "observed"
V1 = "outbound|9080|v1|reviews.default.svc.cluster.local"
V2 = "outbound|9080|v2|reviews.default.svc.cluster.local"
FORMS = ("stats.txt", "stats.json", "stats-prometheus.txt")
CLUSTER_FORMS = ("clusters.txt", "clusters.json")


# --------------------------------------------------------------------------- Prometheus exposition


def test_exposition_labels_escapes_values_and_timestamps() -> None:
    text = (
        "# HELP x_total A counter.\n"
        "# TYPE x_total counter\n"
        'x_total{a="1",b="q\\"uote",c="back\\\\slash",d="line\\nfeed",} 12 1717243200000\n'
        "x_total{} 3\n"
        'y{le="+Inf"} +Inf\n'
        "z NaN\n"
        "\n"
        "# any comment\n"
        'w_total{k="v"} 7 # {trace_id="abc"} 1.0\n'
        "# EOF\n"
        "ignored after EOF\n"
    )
    d = parse_exposition(text, "t.prom")
    assert d.form == "exposition"
    assert d.types == {"x_total": "counter"}
    first = d.series[0]
    assert first.name == "x_total"
    assert first.label("b") == 'q"uote'
    assert first.label("c") == "back\\slash"
    assert first.label("d") == "line\nfeed"
    assert first.points == ((1717243200.0, 12.0),)
    assert first.line == 3
    assert d.series[1].labels == (("__name__", "x_total"),)
    assert math.isnan(d.series[1].points[0][0])
    assert d.series[2].points[0][1] == math.inf
    assert math.isnan(d.series[3].points[0][1])
    assert d.series[4].points[0][1] == 7.0
    assert len(d.series) == 5


@pytest.mark.parametrize(
    ("text", "line", "phrase"),
    [
        ('ok 1\n{a="1"} 2\n', 2, "expected a metric name"),
        ('ok 1\nm{a="1} 2\n', 2, "expected a closing double quote"),
        ('m{a="1" b="2"} 2\n', 1, "expected ',' or '}' after a label value"),
        ("m{a=1} 2\n", 1, "expected a double-quoted value for label 'a'"),
        ('m{a="\\t"} 2\n', 1, "expected an escape"),
        ("m 12abc\n", 1, "expected the value of m"),
        ("m 1_000\n", 1, "expected the value of m"),
        ("m\n", 1, "expected the value of m"),
        ("m 1 2 3\n", 1, "expected 'value [timestamp]'"),
        ("m 1 yesterday\n", 1, "expected a timestamp in milliseconds"),
        ('m{a="1"} 1\nm{a="1"} 2\n', 2, "appears twice (first on line 1)"),
        ('m{a="1",a="2"} 1\n', 1, "label 'a' appears twice"),
        ("# TYPE m countr\nm 1\n", 1, "expected '# TYPE <metric name> counter"),
        ("# only comments\n", 1, "expected at least one sample line"),
    ],
)
def test_exposition_errors_name_the_line(text: str, line: int, phrase: str) -> None:
    with pytest.raises(ConfigParseError) as e:
        parse_exposition(text, "bad.prom")
    assert e.value.line == line
    assert phrase in str(e.value)
    assert str(e.value).startswith(f"bad.prom:{line}:")


# --------------------------------------------------------------------------- Prometheus query JSON


def _answer(rtype: str, result: list) -> str:
    return json.dumps({"status": "success", "data": {"resultType": rtype, "result": result}}, indent=1)


def test_vector_and_matrix_answers() -> None:
    v = parse_prometheus(
        _answer(
            "vector",
            [
                {"metric": {"__name__": "m", "a": "1"}, "value": [1717243200.5, "42"]},
                {"metric": {"a": "2"}, "value": [1717243200.5, "7"]},
            ],
        ),
        "v.json",
    )
    assert v.form == "vector"
    assert [s.points for s in v.series] == [((1717243200.5, 42.0),), ((1717243200.5, 7.0),)]
    assert v.series[1].name == ""
    assert v.series[0].line < v.series[1].line
    m = parse_query_json(
        _answer("matrix", [{"metric": {"a": "1"}, "values": [[1, "1"], [61, "5"], [121, "9"]]}])
    )
    assert m.form == "matrix"
    assert m.series[0].points == ((1.0, 1.0), (61.0, 5.0), (121.0, 9.0))


@pytest.mark.parametrize(
    ("doc", "phrase"),
    [
        (
            {"status": "error", "errorType": "bad_data", "error": "parse error at char 5"},
            "Prometheus answered bad_data: parse error at char 5",
        ),
        (
            {"status": "success", "data": {"resultType": "scalar", "result": [1, "2"]}},
            "expected resultType vector",
        ),
        (
            {"status": "success", "data": {"resultType": "vector", "result": []}},
            "the query answer has no series",
        ),
        (
            {
                "status": "success",
                "data": {"resultType": "vector", "result": [{"metric": {}, "value": [1, "x"]}]},
            },
            "expected a number as the value",
        ),
        (
            {
                "status": "success",
                "data": {"resultType": "matrix", "result": [{"metric": {}, "values": [[2, "1"], [1, "2"]]}]},
            },
            "expected increasing timestamps",
        ),
        (
            {
                "status": "success",
                "data": {
                    "resultType": "vector",
                    "result": [{"metric": {}, "histogram": [1, {"count": "2"}]}],
                },
            },
            "native histogram points are not counts",
        ),
        ({"data": 1}, "expected a Prometheus API answer"),
        (
            {
                "status": "success",
                "data": {"resultType": "vector", "result": [{"metric": {"a": 1}, "value": [1, "2"]}]},
            },
            "label 'a' must be a string",
        ),
    ],
)
def test_query_json_errors(doc: dict, phrase: str) -> None:
    with pytest.raises(ConfigParseError) as e:
        parse_query_json(json.dumps(doc, indent=1), "q.json")
    assert phrase in str(e.value)
    assert e.value.line is not None


def test_query_json_refuses_nan_and_bad_json() -> None:
    with pytest.raises(ConfigParseError, match="NaN is not a JSON number"):
        parse_query_json('{"status": NaN}', "q.json")
    with pytest.raises(ConfigParseError, match=r"q\.json:2:.*invalid JSON"):
        parse_query_json('{"status":\n "success",,}', "q.json")


# --------------------------------------------------------------------------- Envoy admin outputs (Envoy 1.40)


@pytest.mark.parametrize("when", ["before", "after"])
def test_every_stats_form_of_one_snapshot_gives_the_same_counters(when: str) -> None:
    got = []
    for form in FORMS:
        st = load_envoy_stats(str(DATA / f"envoy140-reviews-{when}-{form}"))
        got.append({(c.scope, c.name, c.stat): c.value for c in st.counters})
        assert st.find("cluster", V1, "upstream_rq_total") is not None
    assert got[0] == got[1]
    # /stats/prometheus cuts the Istio names at their first dot (Envoy's default tag); rebuilt, they are equal
    assert got[0] == got[2]
    text = (DATA / f"envoy140-reviews-{when}-stats-prometheus.txt").read_text()
    assert 'envoy_cluster_name="outbound|9080|v1|reviews"' in text


def test_clusters_forms_agree_and_sum_to_the_cluster_counter() -> None:
    st = load_envoy_stats(str(DATA / "envoy140-reviews-after-stats.txt"))
    for form in CLUSTER_FORMS:
        cl = load_envoy_stats(str(DATA / f"envoy140-reviews-after-{form}"))
        assert cl.form == form.replace(".txt", "").replace(".json", "-json")
        for name in (V1, V2):
            hosts = [h for h in cl.hosts if h.cluster == name]
            assert hosts
            assert sum(h.rq_total for h in hosts) == st.find("cluster", name, "upstream_rq_total").value
            assert all(h.address.startswith("127.0.0.1:") for h in hosts)


def test_istio_cluster_name_tag_keeps_the_whole_name() -> None:
    st = load_envoy_stats(str(DATA / "envoy140-uh-stats-prometheus.txt"))
    txt = load_envoy_stats(str(DATA / "envoy140-uh-stats.txt"))
    v3 = "outbound|9080|v3|reviews.default.svc.cluster.local"
    assert st.find("cluster", v3, "upstream_cx_none_healthy").value == 106
    assert txt.find("cluster", v3, "upstream_cx_none_healthy").value == 106
    assert {(c.scope, c.name, c.stat, c.value) for c in st.counters if c.scope == "cluster"} == {
        (c.scope, c.name, c.stat, c.value) for c in txt.counters if c.scope == "cluster"
    }


def test_prometheus_cluster_key_covers_both_tag_schemes() -> None:
    keys = prometheus_cluster_key(V1)
    assert "outbound|9080|v1|reviews\0default_svc_cluster_local_" in keys  # Envoy's default tag
    assert V1 + "\0" in keys  # Istio's cluster_name tag
    assert prometheus_cluster_key("plain") == {"plain\0"}


def test_clusters_text_reads_ipv6_hosts_and_skips_cluster_lines() -> None:
    text = (
        "version_info::static\n"
        "c1::observability_name::c1\n"
        "c1::default_priority::max_connections::1024\n"
        "c1::outlier::success_rate_average::-1\n"
        "c1::[::1]:8080::rq_total::5\n"
        "c1::[::1]:8080::health_flags::healthy\n"
        "c1::10.0.0.1:80::rq_total::7\n"
        "c1::10.0.0.1:80::hostname::\n"
    )
    st = parse_envoy_stats(text, "c.txt")
    assert [(h.address, h.rq_total, h.line) for h in st.hosts] == [
        ("[::1]:8080", 5, 5),
        ("10.0.0.1:80", 7, 7),
    ]
    assert st.hosts[0].health == "healthy"


def test_stats_text_skips_histograms_and_text_readouts() -> None:
    text = (
        "cluster.a.upstream_rq_total: 5\n"
        "cluster.a.upstream_rq_time: P0(nan,1) P25(nan,2)\n"
        "cluster.a.upstream_cx_length_ms: No recorded values\n"
        'server.version_text: "1.40.0"\n'
        "server.hot_restart_generation: 1\n"
        "http.front.no_cluster: 3\n"
    )
    st = parse_envoy_stats(text, "s.txt")
    assert [(c.scope, c.name, c.stat, c.value, c.line) for c in st.counters] == [
        ("cluster", "a", "upstream_rq_total", 5, 1),
        ("http", "front", "no_cluster", 3, 6),
    ]


@pytest.mark.parametrize(
    ("text", "line", "phrase"),
    [
        ("cluster.a.upstream_rq_total: 5\ngarbage here\n", 2, "expected 'name: value'"),
        ("cluster.a.upstream_rq_total: -5\n", 1, "expected a non-negative integer counter"),
        (
            "cluster.a.upstream_rq_total: 99999999999999999999999\n",
            1,
            "expected a non-negative integer counter",
        ),
        ("server.uptime: 5\n", 1, "expected cluster.<name>.upstream_rq_total"),
        ("c1::10.0.0.1:80::rq_total::x\n", 1, "expected a non-negative integer counter"),
        ("c1::10.0.0.1:80::rq_total::1\nc1 10.0.0.1\n", 2, "expected '<cluster>::<host>::<stat>::<value>'"),
        ('{"stats": 5}', 1, "expected Envoy admin JSON"),
        (
            '{"cluster_statuses": [{"name": "c", "host_statuses": [{"address": {}}]}]}',
            1,
            "expected host_statuses[].address.socket_address",
        ),
        (
            "# TYPE envoy_cluster_upstream_rq_total counter\nenvoy_cluster_upstream_rq_total 5\n",
            2,
            "expected a cluster name label",
        ),
    ],
)
def test_envoy_stats_errors_name_the_line(text: str, line: int, phrase: str) -> None:
    with pytest.raises(ConfigParseError) as e:
        parse_envoy_stats(text, "e.txt")
    assert phrase in str(e.value)
    assert e.value.line == line


def test_istio_cluster_names() -> None:
    ic = istio_cluster(V1)
    assert ic is not None
    assert (ic.direction, ic.port, ic.subset, ic.host) == (
        "outbound",
        9080,
        "v1",
        "reviews.default.svc.cluster.local",
    )
    assert istio_cluster("outbound|9080||reviews.default.svc.cluster.local").subset == ""  # type: ignore[union-attr]
    assert istio_cluster("xds-grpc") is None
    assert istio_cluster("outbound|http|v1|x") is None
