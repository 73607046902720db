"""``compare -f`` on a generated mesh of many clients: remarks grouped by path, bounded beside a table, whole in json."""

from __future__ import annotations

import io
import json
from pathlib import Path

from meshstat.cli import main
from tests.cluster_gen import Plant, cluster, to_yaml


def _run(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    rc = main(argv, stdout=out, stderr=err)
    return rc, out.getvalue(), err.getvalue()


def test_compare_files_groups_who_takes_each_path(tmp_path: Path) -> None:
    f = tmp_path / "cluster.yaml"
    f.write_text(to_yaml(cluster(30, 5, Plant(no_injection=True))))
    rc, out, _ = _run(["compare", "-f", str(f), "-n", "1e3", "--seed", "1"])
    assert rc == 0
    taken = [line for line in out.splitlines() if "taken by" in line]
    # three kinds of path (no sidecar, sidecar, the sidecar's own traffic) to 30 services: one line each
    assert len(taken) == 3, taken
    assert all(" to 30 services (" in line and " and 27 more)" in line for line in taken)
    sidecar = next(line for line in taken if line.startswith("sidecar (Envoy)"))
    assert "taken by 60 client workloads in all (" in sidecar and "and 57 more)" in sidecar
    assert max(len(line) for line in out.splitlines()) < 300
    # a machine format keeps one line per (service, path) with every client, on stderr
    rc, out, err = _run(["compare", "-f", str(f), "-n", "1e3", "--seed", "1", "-o", "json"])
    assert rc == 0 and json.loads(out)
    full = [line for line in err.splitlines() if "taken by" in line]
    assert len(full) == 90
    line = next(x for x in full if x.startswith("svc0.ns0:8080 sidecar (Envoy): taken by "))
    assert len(line.split("taken by ")[1].split(", ")) == 58  # every sidecar workload but svc0's own two
