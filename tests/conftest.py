"""Shared test configuration.

Statistical tests use fixed seeds and the thresholds below, so that every test
states its false-alarm rate: a correct model fails a test at level ALPHA with
probability ALPHA per test (for exact tests, at most ALPHA).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

#: Per-test false-alarm rate of goodness-of-fit tests against exact shares.
ALPHA = 1e-3

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(__file__).resolve().parent / "data"
#: The shared fixtures (read-only copy beside the project in CI); tests use the
#: copies under tests/data, which keep SOURCES.md beside them.
SHARED = ROOT.parent / "shared"

settings.register_profile(
    "ci", deadline=None, max_examples=60, suppress_health_check=[HealthCheck.too_slow], derandomize=True
)
settings.register_profile("dev", deadline=None, max_examples=30, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture
def forks(monkeypatch):
    """Four processes allowed (meshstat.workers), whatever the machine has, and the pids of the children the test
    forks."""
    monkeypatch.setenv("MESHSTAT_JOBS", "4")
    pids: list[int] = []
    real = os.fork

    def fork() -> int:
        pid = real()
        if pid:
            pids.append(pid)
        return pid

    monkeypatch.setattr(os, "fork", fork)
    return pids
