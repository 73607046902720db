"""Reproducible to the byte: the same seed gives the same JSON with 1 and 2 threads, any n, on every run.

Each run is a separate ``python -m meshstat`` process with ``NUMBA_NUM_THREADS``
set (numba fixes its thread count when it starts). The JSON tables carry no
timings (the run line with its timing goes to stderr for machine formats).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys

import numpy as np
import pytest

from meshstat.engine import seeding

ALIGNED = 4 * seeding.BLOCK_SIZE  # 1,048,576: whole blocks
UNALIGNED = 4 * seeding.BLOCK_SIZE + 12_345

COMMANDS = {
    "envoy-per-request": ["simulate", "--weights", "50,30,20", "--window", "100000"],
    "kube-proxy-faithful": ["simulate", "--kube-proxy-endpoints", "5", "--mode", "faithful"],
    "compare": ["compare", "--kube-proxy-endpoints", "2", "--weights", "90,10"],
}


def _run(argv: list[str], threads: int) -> bytes:
    env = {**os.environ, "NUMBA_NUM_THREADS": str(threads)}
    proc = subprocess.run(
        [sys.executable, "-m", "meshstat", *argv, "--seed", "20261126", "--format", "json"],
        env=env,
        capture_output=True,
        check=False,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr.decode()
    return proc.stdout


@pytest.mark.parametrize("name", sorted(COMMANDS))
@pytest.mark.parametrize("n", [ALIGNED, UNALIGNED])
def test_json_is_byte_identical_across_threads_and_runs(name: str, n: int) -> None:
    argv = [*COMMANDS[name], "-n", str(n)]
    one = _run(argv, 1)
    two = _run(argv, 2)
    again = _run(argv, 2)
    assert one, "no output"
    digests = {hashlib.sha256(x).hexdigest() for x in (one, two, again)}
    assert len(digests) == 1, f"{name} n={n}: outputs differ between threads or runs"


def test_cli_json_matches_the_library() -> None:
    """The JSON counts are the library's counts for the same seed (nothing else is mixed in)."""
    import json

    from meshstat import Weighted, simulate

    out = json.loads(_run(["simulate", "--weights", "50,30,20", "-n", str(UNALIGNED)], 2))
    lib = simulate(Weighted.from_weights([50, 30, 20]), UNALIGNED, rng=20261126)
    np.testing.assert_array_equal([row["count"] for row in out], lib.counts)


def test_compare_simulates_each_shape_once_with_the_same_counts() -> None:
    """Routes of one shape (same sampled masses) get the counts each would get alone, with their own route,
    exact shares and notes; a route of another shape, or the faithful mode, is simulated apart."""
    from meshstat import Backend, Route, Weighted, compare, simulate

    def split(a: str, b: str, w: tuple[int, int], note: str) -> Route:
        return Route(root=Weighted(children=(Backend(name=a), Backend(name=b)), weights=w), name=a, notes=(note,))

    routes = [split("x1", "x2", (90, 10), "first"), split("y1", "y2", (9, 1), "second"),
              split("z1", "z2", (50, 50), "third"), split("x1", "x2", (90, 10), "fourth")]
    for mode in ("auto", "faithful"):
        got = compare(routes, 10_000, rng=7, mode=mode)
        for r, res in zip(routes, got, strict=True):
            alone = simulate(r, 10_000, rng=7, mode=mode)
            assert res.route is r and res.notes == alone.notes and res.exact == alone.exact
            assert res.counts.tolist() == alone.counts.tolist()
    # 90/10 and 9/1 sample the same masses: the same counts, each under its own route's backends
    auto = compare(routes, 10_000, rng=7)
    assert auto[0].counts.tolist() == auto[1].counts.tolist() != auto[2].counts.tolist()
    assert [b.name for b in auto[1].route.backends()] == ["y1", "y2"]
