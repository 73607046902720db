"""The audit in parts (forked processes, meshstat.workers) gives exactly what one process gives: the same rows in
the same order, the same notes where a serial run makes them, the same count of audited ports."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from meshstat.audit import PRODUCERS, audit
from meshstat.audit import core as audit_core
from meshstat.audit.core import run_audit
from meshstat.mesh import Mesh
from meshstat.parsers.k8s import load_manifests, parse_manifest_text
from tests.cluster_gen import Plant, as_run_today, cluster, to_yaml, with_namespace_sidecars, with_zone_plants

DATA = Path(__file__).resolve().parents[1] / "data"

ALL = Plant(True, True, True, True, True, True, True, True)


def _unready(n: int, namespaces: int) -> dict:
    """A cluster as run today (its Pods listed) where every Pod is terminating: each routed Service port gets a
    note (kube-proxy falls back to them, the proxies have none)."""
    doc = as_run_today(cluster(n, namespaces))
    for item in doc["items"]:
        if item["kind"] == "Pod":
            item["metadata"]["deletionTimestamp"] = "2024-05-01T11:00:00Z"
    return doc


def _meshes() -> list[tuple[str, Mesh]]:
    gen = {
        "unready": _unready(9, 3),
        "planted": cluster(12, 3, ALL),
        "as run today": as_run_today(cluster(30, 6, ALL)),
        "zones": with_zone_plants(cluster(10, 3), 6),
        "sidecars": with_namespace_sidecars(cluster(16, 4, Plant(subset_no_pods=True, export_private=True))),
    }
    out = [(name, Mesh(parse_manifest_text(to_yaml(doc), f"{name}.yaml"))) for name, doc in gen.items()]
    for d in ("bookinfo", "bookinfo-ambient", "audit-ingress", "audit-waypoint-tcp", "gateway-api"):
        out.append((d, Mesh(load_manifests(str(DATA / d)))))
    return out


@pytest.fixture(scope="module")
def meshes() -> list[tuple[str, Mesh]]:
    return _meshes()



def test_parts_give_the_serial_result(meshes, forks) -> None:
    rows = notes = 0
    for name, mesh in meshes:
        one = run_audit(mesh, PRODUCERS, parts=1)
        assert not forks
        for parts in (2, 3, 4):
            got = run_audit(mesh, PRODUCERS, parts=parts)
            assert got.rows == one.rows, (name, parts)
            assert got.notes == one.notes, (name, parts)
            assert got.audited == one.audited, (name, parts)
        rows += len(one.rows)
        notes += len(one.notes)
        assert len(forks) == 6
        forks.clear()
    assert rows > 100 and notes > 0  # the meshes diverge, and some make notes


def test_a_failed_part_is_redone(meshes, forks, monkeypatch) -> None:
    """A part whose child fails is audited again in this process: the result does not change."""
    parent = os.getpid()
    _, mesh = meshes[1]
    one = run_audit(mesh, PRODUCERS, parts=1)

    def failing(ctx):
        if os.getpid() != parent:
            raise RuntimeError("in the child only")
        return iter(())

    got = run_audit(mesh, [*PRODUCERS, failing], parts=2)
    assert (got.rows, got.notes, got.audited) == (one.rows, one.notes, one.audited) and len(forks) == 1


def test_notes_are_said_once_where_a_serial_run_says_them(forks) -> None:
    """A note a memo makes (the first time any Service asks) comes once, in the place a serial run gives it, however
    the Services that ask are shared out."""
    mesh = Mesh(parse_manifest_text(to_yaml(_unready(8, 2)), "c.yaml"))
    one = run_audit(mesh, PRODUCERS, parts=1)
    assert sum("no pod is ready" in n for n in one.notes) == 8
    for parts in (2, 3, 5):
        assert run_audit(mesh, PRODUCERS, parts=parts).notes == one.notes


def test_big_meshes_are_audited_in_parts(meshes, forks, monkeypatch) -> None:
    """By default an audit of PARALLEL_MIN_SERVICES Services or more runs in parts; a smaller one does not."""
    _, mesh = meshes[1]
    n = len(mesh.manifests.services)
    monkeypatch.setattr(audit_core, "PARALLEL_MIN_SERVICES", n + 1)
    small = audit(mesh)
    assert forks == []
    monkeypatch.setattr(audit_core, "PARALLEL_MIN_SERVICES", n)
    assert audit(mesh) == small and len(forks) == 3
