"""Benchmarks: every timing is compared with a baseline measured in the same run.

Each benchmark records its median into ``RESULTS``; ``test_zz_ratios`` (last
in its file) turns them into ratios, asserts the goals and writes them to
``$MESHSTAT_BENCH_JSON`` when set. Every benchmark also asserts that what it
timed is correct.
"""

from __future__ import annotations

import json
import os
import platform

import pytest

RESULTS: dict[str, float] = {}


def record(name: str, benchmark: object) -> float:
    """Store the median seconds of a finished pytest-benchmark fixture."""
    median = float(benchmark.stats.stats.median)  # type: ignore[attr-defined]
    RESULTS[name] = median
    return median


def machine() -> str:
    import numba
    import numpy as np

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:  # noqa: PTH123
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, numba {numba.__version__} ({numba.get_num_threads()} threads), numpy {np.__version__}"


def dump(ratios: dict[str, float]) -> None:
    path = os.environ.get("MESHSTAT_BENCH_JSON")
    if path:
        with open(path, "w") as fh:  # noqa: PTH123
            json.dump({"machine": machine(), "medians_s": RESULTS, "ratios": ratios}, fh, indent=2)


@pytest.fixture(scope="session", autouse=True)
def _warm() -> None:
    """Load (or compile) every kernel once before any timing."""
    from meshstat import Cascade, Weighted, simulate

    simulate(Weighted.from_weights([9, 1]), 1000, rng=0, destinations=True)
    simulate(Weighted.from_weights([1, 2, 3]), 1000, rng=0, destinations=True)
    simulate(Cascade.kube_proxy(3), 1000, rng=0, mode="faithful", destinations=True)
