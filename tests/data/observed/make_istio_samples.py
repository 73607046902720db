"""Write the Istio-shaped metric samples of this folder (run once; the files are committed).

Usage: ``python3 tests/data/observed/make_istio_samples.py``. The samples are written by
this project, not captured from a mesh: counts are drawn with a fixed seed from the
stated splits, and the series use Istio's standard metric ``istio_requests_total``
with the label names and values its proxy writes (istio/proxy
``source/extensions/filters/http/istio_stats/istio_stats.cc``; Istio's "Istio Standard
Metrics" reference): ``reporter`` (``source``: the client's sidecar, ``destination``:
the server's; each request is counted once by each), ``source_workload``,
``source_workload_namespace``, ``destination_service`` (FQDN),
``destination_service_name``, ``destination_service_namespace``,
``destination_workload``, ``destination_version``, ``response_code``,
``response_flags`` (``-`` when none) and the others of the standard set.
Prometheus adds ``namespace``/``pod`` target labels on a scrape.

Files
-----
``istio-demo-scrape.prom``
    A text exposition (as Prometheus federates it) for the istio-demo manifests:
    front-tomcat-v1 calls bill-service (VirtualService 90/10): 1,985 requests seen by
    both reporters, plus 400 requests of another caller (istio-ingressgateway) to v1.
``istio-demo-query-before.json``, ``istio-demo-query-after.json``
    ``/api/v1/query`` answers (vector) of ``istio_requests_total{reporter="source"}``
    for the same service at two times, 10 minutes apart.
``istio-reviews-range.json``
    An ``/api/v1/query_range`` answer (matrix, 13 points one minute apart: 12 windows)
    of ``istio_requests_total{destination_service="reviews.default.svc.cluster.local"}``
    from productpage-v1, both reporters; the route is 80/20 v1/v2 except in window 10,
    where v2 got 30%. The productpage sidecar restarted during window 7 (every
    source-reported counter resets), and a v2 series with response_code 500 first
    appears in window 4.
``istio-reviews-ramp.json``
    A range query of a canary ramp of reviews v2 at 5, 10, 20 and 50% for three
    one-minute windows each (13 points), about 600 requests a minute, reporter source.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
T0 = 1717243200  # 2024-06-01T12:00:00Z


def labels(
    reporter: str,
    src: tuple[str, str],
    svc: tuple[str, str],
    dst_workload: str,
    version: str,
    code: int,
    flags: str = "-",
) -> dict[str, str]:
    """Istio's standard labels of istio_requests_total (in the proxy's order)."""
    sname, sns = src
    dname, dns = svc
    unknown = dst_workload == "unknown"
    return {
        "reporter": reporter,
        "source_workload": sname,
        "source_canonical_service": sname.rsplit("-", 1)[0],
        "source_canonical_revision": "v1",
        "source_workload_namespace": sns,
        "source_principal": f"spiffe://cluster.local/ns/{sns}/sa/{sname.rsplit('-', 1)[0]}",
        "source_app": sname.rsplit("-", 1)[0],
        "source_version": "v1",
        "source_cluster": "Kubernetes",
        "destination_workload": dst_workload,
        "destination_workload_namespace": "unknown" if unknown else dns,
        "destination_principal": "unknown" if unknown else f"spiffe://cluster.local/ns/{dns}/sa/{dname}",
        "destination_app": "unknown" if unknown else dname,
        "destination_version": version,
        "destination_service": f"{dname}.{dns}.svc.cluster.local",
        "destination_canonical_service": "unknown" if unknown else dname,
        "destination_canonical_revision": version,
        "destination_service_name": dname,
        "destination_service_namespace": dns,
        "destination_cluster": "unknown" if unknown else "Kubernetes",
        "request_protocol": "http",
        "response_code": str(code),
        "grpc_response_status": "",
        "response_flags": flags,
        "connection_security_policy": "unknown" if reporter == "source" else "mutual_tls",
    }


def exposition_line(lab: dict[str, str], value: int) -> str:
    inner = ",".join(f'{k}="{v}"' for k, v in lab.items())
    return f"istio_requests_total{{{inner}}} {value}"


def scrape(rng: np.random.Generator) -> None:
    src, svc = ("front-tomcat-v1", "istio-demo"), ("bill-service", "istio-demo")
    n = 1985
    v1 = int(rng.binomial(n, 0.9))
    v2 = n - v1
    err = 3  # application 500s from v1: routed, answered by the backend
    lines = ["# HELP istio_requests_total Total requests.", "# TYPE istio_requests_total counter"]
    for rep in ("source", "destination"):
        extra = {
            "namespace": "istio-demo",
            "pod": "front-tomcat-v1-7d9c6f8b5-x2kqz" if rep == "source" else "",
        }
        for wl, ver, code, val in (
            ("bill-service-v1", "v1", 200, v1 - err),
            ("bill-service-v1", "v1", 500, err),
            ("bill-service-v2", "v2", 200, v2),
        ):
            pod = extra["pod"] or (f"{wl}-6b8d9c7f4-{'a' if ver == 'v1' else 'b'}h4tz")
            lines.append(
                exposition_line(
                    {**labels(rep, src, svc, wl, ver, code), "namespace": "istio-demo", "pod": pod}, val
                )
            )
    gw = labels("source", ("istio-ingressgateway", "istio-system"), svc, "bill-service-v1", "v1", 200)
    lines.append(
        exposition_line({**gw, "namespace": "istio-system", "pod": "istio-ingressgateway-5c4f8d-q8x7m"}, 400)
    )
    (HERE / "istio-demo-scrape.prom").write_text("\n".join(lines) + "\n", encoding="utf-8")


def vector(result: list[tuple[dict[str, str], float, int]]) -> str:
    doc = {
        "status": "success",
        "data": {
            "resultType": "vector",
            "result": [
                {"metric": {"__name__": "istio_requests_total", **m}, "value": [t, str(v)]}
                for m, t, v in result
            ],
        },
    }
    return json.dumps(doc, indent=1) + "\n"


def queries(rng: np.random.Generator) -> None:
    src, svc = ("front-tomcat-v1", "istio-demo"), ("bill-service", "istio-demo")
    before = {"v1": 52_310, "v2": 5_790}
    n = 6_000
    v1 = int(rng.binomial(n, 0.9))
    after = {"v1": before["v1"] + v1, "v2": before["v2"] + n - v1}
    for name, vals, t in (("before", before, T0), ("after", after, T0 + 600)):
        res = [(labels("source", src, svc, f"bill-service-{v}", v, 200), t, c) for v, c in vals.items()]
        (HERE / f"istio-demo-query-{name}.json").write_text(vector(res), encoding="utf-8")


def matrix(series: list[tuple[dict[str, str], list[tuple[int, int]]]]) -> str:
    doc = {
        "status": "success",
        "data": {
            "resultType": "matrix",
            "result": [
                {"metric": {"__name__": "istio_requests_total", **m}, "values": [[t, str(v)] for t, v in pts]}
                for m, pts in series
            ],
        },
    }
    return json.dumps(doc, indent=1) + "\n"


def reviews_range(rng: np.random.Generator) -> None:
    src, svc = ("productpage-v1", "default"), ("reviews", "default")
    times = [T0 + 60 * i for i in range(13)]
    keys = [("reviews-v1", "v1", 200), ("reviews-v2", "v2", 200), ("reviews-v2", "v2", 500)]
    cum = {
        (rep, k): 5_000 * (3 if k[1] == "v1" else 1) if k[2] == 200 else 0
        for rep in ("source", "destination")
        for k in keys
    }
    pts: dict[tuple, list[tuple[int, int]]] = {
        key: [(times[0], v)] for key, v in cum.items() if key[1][2] == 200
    }
    for w in range(1, 13):
        n = int(rng.poisson(1200))
        p2 = 0.3 if w == 10 else 0.2
        n2 = int(rng.binomial(n, p2))
        err = int(rng.binomial(n2, 0.01)) if w >= 4 else 0
        inc = {keys[0]: n - n2, keys[1]: n2 - err, keys[2]: err}
        after_restart = float(rng.uniform(0.3, 0.7))  # the sidecar restarted this far into window 7
        for rep in ("source", "destination"):
            for k in keys:
                key = (rep, k)
                if rep == "source" and w == 7:
                    cum[key] = int(
                        rng.binomial(inc[k], after_restart)
                    )  # counted again from 0 after the restart
                else:
                    cum[key] += inc[k]
                if k[2] == 500 and w < 4:
                    continue
                pts.setdefault(key, []).append((times[w], cum[key]))
    series = [(labels(rep, src, svc, wl, ver, code), p) for (rep, (wl, ver, code)), p in pts.items()]
    (HERE / "istio-reviews-range.json").write_text(matrix(series), encoding="utf-8")


def ramp(rng: np.random.Generator) -> None:
    src, svc = ("productpage-v1", "default"), ("reviews", "default")
    times = [T0 + 60 * i for i in range(13)]
    steps = [5, 5, 5, 10, 10, 10, 20, 20, 20, 50, 50, 50]
    cum = {"v1": 80_000, "v2": 0}
    pts: dict[str, list[tuple[int, int]]] = {"v1": [(times[0], cum["v1"])], "v2": []}
    for w, s in enumerate(steps, start=1):
        n = int(rng.poisson(600))
        n2 = int(rng.binomial(n, s / 100))
        cum["v1"] += n - n2
        cum["v2"] += n2
        pts["v1"].append((times[w], cum["v1"]))
        pts["v2"].append((times[w], cum["v2"]))
    series = [(labels("source", src, svc, f"reviews-{v}", v, 200), p) for v, p in pts.items()]
    (HERE / "istio-reviews-ramp.json").write_text(matrix(series), encoding="utf-8")


def main() -> None:
    rng = np.random.default_rng(20240601)
    scrape(rng)
    queries(rng)
    reviews_range(rng)
    ramp(rng)


if __name__ == "__main__":
    main()
